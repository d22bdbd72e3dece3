#!/usr/bin/env bash
# The report of bench/vs-qemu, from the records its L1 part wrote.
#
#   bench/vs-qemu.d/report.sh OUT
#
# Reads OUT/results.txt (one line per boot: run=N config=NAME status=ok|fail
# key=value ... [reason=free text, last]), OUT/meta.txt and, when present,
# OUT/core.txt and OUT/part2.txt (the core microbenchmarks). Writes
# OUT/report.md, OUT/stats.txt (config metric n median min max), the chart
# OUT/chart.png (with its gnuplot script and data beside it, when gnuplot is
# installed) and prints on stdout the key=value lines of issue 8 and one
# verdict line per goal. Exit status 0, or 125 when OUT has no results.
set -euo pipefail

OUT=${1:?usage: report.sh OUT}
RES=$OUT/results.txt
[ -f "$RES" ] || { echo "report.sh: no $RES" >&2; exit 125; }
meta() { sed -n "s/^$1=//p" "$OUT/meta.txt" 2>/dev/null | tail -n 1; }
RUNS=$(meta runs)
RUNS=${RUNS:-0}
K4=$(meta k4)
M1=$(meta m1)
REPS=$(meta reps)
REPS=${REPS:-1}
CONFIGS=$(meta configs)
CONFIGS=${CONFIGS:-qemu-vtd-strict,vmm-vtd-strict,qemu-off,vmm-off,qemu-vtd-lazy,vmm-vtd-lazy}

# ---- statistics: median, min, max of every metric of the good boots ----------
# stats.txt: "config metric n median min max"; status lines: "config status
# ok fail"; failure lines: "config fail run reason".
# The awk functions both statistics below use: sort a[1..n] numerically, and
# the median of a sorted a[1..n].
AWK_MEDIAN='
function sortn(a, n,    i, j, t) {
	for (i = 2; i <= n; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
}
function median_sorted(a, n) {
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'
# One bootstrap draw over boots: n of the n boots in lists (each a
# comma-separated list of one boot's values) drawn with replacement, their
# values pooled, the median; values that are not numbers are skipped, as the
# statistics below skip them. Callers seed rand() (srand(8): the same records
# give the same interval).
AWK_BOOT='
function boot_median(lists, n,    i, k, x, t, v, cnt) {
	cnt = 0
	for (i = 1; i <= n; i++) {
		k = split(lists[int(rand() * n) + 1], t, ",")
		for (x = 1; x <= k; x++)
			if (t[x] ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) v[++cnt] = t[x] + 0
	}
	sortn(v, cnt)
	return cnt ? median_sorted(v, cnt) : 0
}'
awk "$AWK_MEDIAN"'
{
	reason = ""
	line = $0
	if (match(line, / reason=.*/)) {
		reason = substr(line, RSTART + 8)
		line = substr(line, 1, RSTART - 1)
	}
	delete f
	nf = split(line, w, " ")
	for (i = 1; i <= nf; i++) {
		eq = index(w[i], "=")
		if (eq > 1) f[substr(w[i], 1, eq - 1)] = substr(w[i], eq + 1)
	}
	c = f["config"]
	if (c == "") next
	cfgs[c] = 1
	if (f["status"] != "ok") {
		fail[c]++
		fails[++nfails] = c " fail " f["run"] " " (reason == "" ? "(no reason given)" : reason)
		next
	}
	ok[c]++
	for (k in f) {
		if (k == "run" || k == "config" || k == "status") continue
		# A comma-separated value is several samples of one boot.
		ns = split(f[k], sv, ",")
		for (j = 1; j <= ns; j++) {
			if (sv[j] !~ /^-?[0-9]+(\.[0-9]+)?$/) continue
			cnt[c, k]++
			v[c, k, cnt[c, k]] = sv[j] + 0
			keys[c, k] = 1
		}
	}
}
END {
	for (c in cfgs) printf "%s status %d %d\n", c, ok[c] + 0, fail[c] + 0
	for (i = 1; i <= nfails; i++) print fails[i]
	for (ck in keys) {
		split(ck, p, SUBSEP)
		n = cnt[p[1], p[2]]
		delete a
		for (i = 1; i <= n; i++) a[i] = v[p[1], p[2], i]
		sortn(a, n)
		med = median_sorted(a, n)
		printf "%s %s %d %.6g %.6g %.6g\n", p[1], p[2], n, med, a[1], a[n]
	}
}' "$RES" | LC_ALL=C sort >"$OUT/stats.txt"

# st CONFIG METRIC FIELD: n, med, min or max; empty when there is no figure.
st() {
	awk -v c="$1" -v m="$2" -v fld="$3" '
		$1 == c && $2 == m {
			if (fld == "n") print $3; else if (fld == "med") print $4
			else if (fld == "min") print $5; else if (fld == "max") print $6
		}' "$OUT/stats.txt"
}
nok() { awk -v c="$1" '$1 == c && $2 == "status" { print $3 }' "$OUT/stats.txt"; }
nfail() { awk -v c="$1" '$1 == c && $2 == "status" { print $4 }' "$OUT/stats.txt"; }
in_configs() { [[ ",$CONFIGS," == *",$1,"* ]]; }
# fmt DECIMALS VALUE
fmt() { [ -z "$2" ] || printf "%.$1f" "$2"; }
# ratio A B DECIMALS: A / B, empty when either is missing or B is 0.
ratio() {
	[ -n "$1" ] && [ -n "$2" ] || return 0
	awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b + 0 != 0) printf "%.*f", d, a / b }'
}
# cell CONFIG METRIC DECIMALS: "**median** (min..max)" for the table.
cell() {
	local cfg=$1 m=$2 d=$3 n med failed
	if ! in_configs "$cfg"; then
		echo "not run"
		return
	fi
	n=$(st "$cfg" "$m" n)
	failed=$(nfail "$cfg")
	failed=${failed:-0}
	if [ -z "$n" ]; then
		if [ "$failed" -gt 0 ]; then echo "no data ($failed failed)"; else echo "no data (never ran)"; fi
		return
	fi
	med=$(st "$cfg" "$m" med)
	printf '**%s** (%s..%s)' "$(fmt "$d" "$med")" "$(fmt "$d" "$(st "$cfg" "$m" min)")" "$(fmt "$d" "$(st "$cfg" "$m" max)")"
	# Fewer good boots than runs: say how many the figure stands on.
	local good
	good=$(nok "$cfg")
	[ "${good:-0}" -ge "$RUNS" ] || printf ' n=%s' "${good:-0}"
	[ "$failed" -eq 0 ] || printf ', %s failed' "$failed"
	echo
}
med() { st "$1" "$2" med; }

# ---- the figures issue 8 asks for ----------------------------------------------
R_4K_STRICT=$(ratio "$(med vmm-vtd-strict read4k_mbps)" "$(med qemu-vtd-strict read4k_mbps)")
# virtio-iommu (--configs ...,qemu-virtio-strict,vmm-virtio-strict)
RV_4K=$(ratio "$(med vmm-virtio-strict read4k_mbps)" "$(med qemu-virtio-strict read4k_mbps)")
RV_1M=$(ratio "$(med vmm-virtio-strict read1m_mbps)" "$(med qemu-virtio-strict read1m_mbps)")
RV_BOOT=$(ratio "$(med vmm-virtio-strict boot_s)" "$(med qemu-virtio-strict boot_s)")
VV_ONOFF_1M=$(ratio "$(med vmm-virtio-strict read1m_mbps)" "$(med vmm-off read1m_mbps)")
QV_ONOFF_1M=$(ratio "$(med qemu-virtio-strict read1m_mbps)" "$(med qemu-off read1m_mbps)")
VV_ONOFF_4K=$(ratio "$(med vmm-virtio-strict read4k_mbps)" "$(med vmm-off read4k_mbps)")
QV_ONOFF_4K=$(ratio "$(med qemu-virtio-strict read4k_mbps)" "$(med qemu-off read4k_mbps)")
R_1M_STRICT=$(ratio "$(med vmm-vtd-strict read1m_mbps)" "$(med qemu-vtd-strict read1m_mbps)")
R_4K_LAZY=$(ratio "$(med vmm-vtd-lazy read4k_mbps)" "$(med qemu-vtd-lazy read4k_mbps)")
R_1M_LAZY=$(ratio "$(med vmm-vtd-lazy read1m_mbps)" "$(med qemu-vtd-lazy read1m_mbps)")
V_ONOFF_1M=$(ratio "$(med vmm-vtd-strict read1m_mbps)" "$(med vmm-off read1m_mbps)")
Q_ONOFF_1M=$(ratio "$(med qemu-vtd-strict read1m_mbps)" "$(med qemu-off read1m_mbps)")
V_ONOFF_4K=$(ratio "$(med vmm-vtd-strict read4k_mbps)" "$(med vmm-off read4k_mbps)")
Q_ONOFF_4K=$(ratio "$(med qemu-vtd-strict read4k_mbps)" "$(med qemu-off read4k_mbps)")
V_ONOFF_1M_LAZY=$(ratio "$(med vmm-vtd-lazy read1m_mbps)" "$(med vmm-off read1m_mbps)")
Q_ONOFF_1M_LAZY=$(ratio "$(med qemu-vtd-lazy read1m_mbps)" "$(med qemu-off read1m_mbps)")
V_ONOFF_4K_LAZY=$(ratio "$(med vmm-vtd-lazy read4k_mbps)" "$(med vmm-off read4k_mbps)")
Q_ONOFF_4K_LAZY=$(ratio "$(med qemu-vtd-lazy read4k_mbps)" "$(med qemu-off read4k_mbps)")
R_1MX_STRICT=$(ratio "$(med vmm-vtd-strict read1mx_mbps)" "$(med qemu-vtd-strict read1mx_mbps)")
R_1MX_LAZY=$(ratio "$(med vmm-vtd-lazy read1mx_mbps)" "$(med qemu-vtd-lazy read1mx_mbps)")
V_ONOFF_1MX=$(ratio "$(med vmm-vtd-strict read1mx_mbps)" "$(med vmm-off read1mx_mbps)")
Q_ONOFF_1MX=$(ratio "$(med qemu-vtd-strict read1mx_mbps)" "$(med qemu-off read1mx_mbps)")
V_ONOFF_1MX_LAZY=$(ratio "$(med vmm-vtd-lazy read1mx_mbps)" "$(med vmm-off read1mx_mbps)")
Q_ONOFF_1MX_LAZY=$(ratio "$(med qemu-vtd-lazy read1mx_mbps)" "$(med qemu-off read1mx_mbps)")
# per_run A B METRIC: for each run with a good boot of both A and B, the
# median of A's samples over the median of B's (comma-separated, by run):
# how far one run's ratio moves from the next on this harness.
per_run() {
	awk -v a="$1" -v b="$2" -v m="$3" "$AWK_MEDIAN"'
	function median(str,    n, v, i) {
		n = split(str, v, ",")
		for (i = 1; i <= n; i++) v[i] += 0
		sortn(v, n)
		return median_sorted(v, n)
	}
	/ status=ok / {
		r = ""; c = ""; val = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^run=/) r = substr($i, 5)
			else if ($i ~ /^config=/) c = substr($i, 8)
			else if (index($i, m "=") == 1) val = substr($i, length(m) + 2)
		}
		if (val == "" || r == "") next
		if (c == a) va[r] = median(val)
		if (c == b) vb[r] = median(val)
		if (r + 0 > maxr) maxr = r + 0
	}
	END {
		out = ""
		for (r = 1; r <= maxr; r++)
			if ((r in va) && (r in vb) && vb[r] > 0)
				out = out (out == "" ? "" : ",") sprintf("%.2f", va[r] / vb[r])
		print out
	}' "$RES"
}
# spread LIST: "min..max" of a comma-separated list, or empty.
spread() {
	[ -n "$1" ] || return 0
	tr ',' '\n' <<<"$1" | sort -g | sed -n '1p;$p' | paste -sd' ' | awk '{ print $1 ".." ($2 == "" ? $1 : $2) }'
}
P_ONOFF_1M=$(per_run vmm-vtd-strict vmm-off read1m_mbps)
P_4K_STRICT=$(per_run vmm-vtd-strict qemu-vtd-strict read4k_mbps)
V_BOOT=$(fmt 2 "$(med vmm-vtd-strict boot_s)")
Q_BOOT=$(fmt 2 "$(med qemu-vtd-strict boot_s)")
R_BOOT=$(ratio "$(med vmm-vtd-strict boot_s)" "$(med qemu-vtd-strict boot_s)")
FAILED=$(grep -c 'status=fail' "$RES" || true)
EXPECTED=$((RUNS * $(tr ',' '\n' <<<"$CONFIGS" | grep -c .)))
DONE=$(grep -c 'config=' "$RES" || true)
MISSING=$((EXPECTED > DONE ? EXPECTED - DONE : 0))

# boot_ci A B METRIC: how far the ratio of the medians median(A) / median(B)
# can move with the boots this run happened to get: a bootstrap over boots
# (each configuration's good boots drawn again with replacement, as many as
# it has, their samples pooled, the ratio of the two medians; 2000 draws
# with a fixed seed, so the same records give the same interval). Boots, not
# samples, are drawn because the samples of one boot move together; on this
# harness boots differ far more than samples. Prints "NA NB LO HI" (LO and HI
# the 5th and 95th percentiles: a 90% interval), or nothing without boots.
boot_ci() {
	awk -v a="$1" -v b="$2" -v m="$3" "$AWK_MEDIAN$AWK_BOOT"'
	/ status=ok / {
		c = ""; val = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^reason=/) break
			if ($i ~ /^config=/) c = substr($i, 8)
			else if (index($i, m "=") == 1) val = substr($i, length(m) + 2)
		}
		if (val == "") next
		if (c == a) sa[++na] = val
		else if (c == b) sb[++nb] = val
	}
	END {
		if (na < 1 || nb < 1) exit
		srand(8)
		R = 2000
		for (r = 1; r <= R; r++) {
			mb = boot_median(sb, nb)
			q[r] = mb > 0 ? boot_median(sa, na) / mb : 0
		}
		sortn(q, R)
		printf "%d %d %.6f %.6f\n", na, nb, q[int(R * 0.05) + 1], q[int(R * 0.95)]
	}' "$RES"
}
# ci_range CI: "LO..HI" (two decimals) of boot_ci's line, or n/a.
ci_range() {
	if [ -n "$1" ]; then awk '{ printf "%.2f..%.2f", $3, $4 }' <<<"$1"; else echo n/a; fi
}
# goal VALUE THRESHOLD CI: the verdict. With at least 3 good boots of each
# configuration it goes by the 90% interval: MET when all of it is at or
# above the threshold, NOT MET when all of it is below, UNSETTLED when it
# spans the threshold (this run cannot tell, whatever its median says).
# With fewer boots, by the ratio of the medians alone, and it says so. The
# verdicts compare unrounded figures: 0.896 is not 0.9.
goal() {
	[ -n "$1" ] || { echo "NOT MET (no figure)"; return; }
	if [ -n "$3" ] && awk '{ exit !($1 >= 3 && $2 >= 3) }' <<<"$3"; then
		awk -v t="$2" '{
			if ($3 + 0 >= t + 0) print "MET"
			else if ($4 + 0 < t + 0) print "NOT MET"
			else printf "UNSETTLED (its 90%% interval %.2f..%.2f spans %s)\n", $3, $4, t
		}' <<<"$3"
		return
	fi
	if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; then echo "MET (by the medians alone: fewer than 3 boots)"
	else echo "NOT MET (by the medians alone: fewer than 3 boots)"; fi
}
CI_4K=$(boot_ci vmm-vtd-strict qemu-vtd-strict read4k_mbps)
CI_ONOFF=$(boot_ci vmm-vtd-strict vmm-off read1m_mbps)
CI_ONOFF_X=$(boot_ci vmm-vtd-strict vmm-off read1mx_mbps)
G_4K=$(goal "$(ratio "$(med vmm-vtd-strict read4k_mbps)" "$(med qemu-vtd-strict read4k_mbps)" 6)" 2 "$CI_4K")
G_ONOFF=$(goal "$(ratio "$(med vmm-vtd-strict read1m_mbps)" "$(med vmm-off read1m_mbps)" 6)" 0.9 "$CI_ONOFF")
G_ONOFF_X=$(goal "$(ratio "$(med vmm-vtd-strict read1mx_mbps)" "$(med vmm-off read1mx_mbps)" 6)" 0.9 "$CI_ONOFF_X")

# ---- DMA remapping on and off in one boot (vmm-vtd-pair) -----------------------
# paired ON_KEY OFF_KEY: every good vmm-vtd-pair boot read each sample i from
# its disk in a strict DMA domain (ON_KEY, vda) and from its disk in a
# pass-through domain of the same unit (OFF_KEY, vdb) back to back, so
# on_i / off_i is free of the spread between boots that the ratio of
# vmm-vtd-strict's and vmm-off's medians carries.
# Prints "median min max n per_boot lo hi boots" of those ratios over every
# sample of every good boot (unrounded; per_boot: each boot's median,
# comma-separated in the order of results.txt, i.e. by run; lo..hi: their
# 90% interval over boots, drawn with boot_median as boot_ci draws: boots
# again with replacement, the median of their pooled ratios), or nothing
# when there is no pair.
paired() {
	awk -v on="$1" -v off="$2" "$AWK_MEDIAN$AWK_BOOT"'
	{
		c = ""; s = ""; von = ""; voff = ""
		for (i = 1; i <= NF; i++) {
			# The reason, free text, comes last.
			if ($i ~ /^reason=/) break
			if ($i ~ /^config=/) c = substr($i, 8)
			else if ($i ~ /^status=/) s = substr($i, 8)
			else if (index($i, on "=") == 1) von = substr($i, length(on) + 2)
			else if (index($i, off "=") == 1) voff = substr($i, length(off) + 2)
		}
		if (c != "vmm-vtd-pair" || s != "ok" || von == "" || voff == "") next
		non = split(von, va, ",")
		noff = split(voff, vb, ",")
		nb = 0
		l = ""
		for (i = 1; i <= non && i <= noff; i++) {
			if (vb[i] + 0 <= 0) continue
			all[++n] = va[i] / vb[i]
			rb[++nb] = va[i] / vb[i]
			l = l (l == "" ? "" : ",") (va[i] / vb[i])
		}
		if (nb == 0) next
		boot[++nboots] = l
		sortn(rb, nb)
		per = per (per == "" ? "" : ",") sprintf("%.2f", median_sorted(rb, nb))
	}
	END {
		if (n == 0) exit
		sortn(all, n)
		# The 90% interval over boots, drawn as boot_ci draws them.
		srand(8)
		R = 2000
		for (r = 1; r <= R; r++)
			q[r] = boot_median(boot, nboots)
		sortn(q, R)
		printf "%.6f %.6f %.6f %d %s %.6f %.6f %d\n", median_sorted(all, n), all[1], all[n], n, per,
			q[int(R * 0.05) + 1], q[int(R * 0.95)], nboots
	}' "$RES"
}
# pf PAIRED FIELD: one field of paired's line (1 median .. 5 per_boot, 6 lo,
# 7 hi, 8 boots).
pf() { [ -z "$1" ] || awk -v f="$2" '{ print $f }' <<<"$1"; }
PAIR_1M=$(paired read1m_mbps read1m_off_mbps)
PAIR_4K=$(paired read4k_mbps read4k_off_mbps)
PAIR_1MX=$(paired read1mx_mbps read1mx_off_mbps)
PAIR_N=$(nok vmm-vtd-pair)
PAIR_N=${PAIR_N:-0}
V_PAIR_1M=$(fmt 2 "$(pf "$PAIR_1M" 1)")
V_PAIR_4K=$(fmt 2 "$(pf "$PAIR_4K" 1)")
V_PAIR_1MX=$(fmt 2 "$(pf "$PAIR_1MX" 1)")
P_PAIR_1M=$(pf "$PAIR_1M" 5)
# As boot_ci prints it: "NB NB LO HI".
CI_PAIR_1M=$([ -z "$PAIR_1M" ] || awk '{ print $8, $8, $6, $7 }' <<<"$PAIR_1M")

# ---- the chart ----------------------------------------------------------------
# Three panels (1 MiB reads, 4 KiB reads, boot time), bars per configuration
# with min..max error bars; "?" leaves a bar out. Rows: strict, lazy, and
# vmm-vtd-pair's two disks (strict and pass-through in one boot).
dat_row() { # LABEL then CONFIG METRIC pairs
	local label=$1 out cfg m
	shift
	out=$label
	while [ $# -ge 2 ]; do
		cfg=$1 m=$2
		shift 2
		if [ "$cfg" = - ] || [ -z "$(st "$cfg" "$m" n)" ]; then
			out="$out ? ? ?"
		else
			out="$out $(med "$cfg" "$m") $(st "$cfg" "$m" min) $(st "$cfg" "$m" max)"
		fi
	done
	echo "$out"
}
for m in read1m_mbps read4k_mbps boot_s; do
	{
		echo "# workload  qemu-vtd(med min max)  qemu-off  vmm-vtd  vmm-off"
		dat_row strict qemu-vtd-strict "$m" qemu-off "$m" vmm-vtd-strict "$m" vmm-off "$m"
		dat_row lazy qemu-vtd-lazy "$m" - - vmm-vtd-lazy "$m" - -
		# vmm-vtd-pair: its strict disk in the VT-d column, its
		# pass-through disk beside it (same boot, same unit).
		dat_row one-boot-strict/pt - - - - vmm-vtd-pair "$m" vmm-vtd-pair "${m%_mbps}_off_mbps"
	} >"$OUT/chart-$m.dat"
done
# has_bars FILE...: some row of the chart data has a figure (not only "?").
has_bars() { grep -hv '^#' "$@" | cut -d' ' -f2- | grep -q '[0-9]'; }
# A panel without a single bar gets a fixed y range (autoscaling would have
# nothing to go by, and gnuplot gives up on the whole chart).
yrange_of() { if has_bars "$OUT/chart-$1.dat"; then echo '[0:*]'; else echo '[0:1]'; fi; }
cat >"$OUT/chart.gp" <<EOF
# gnuplot script written by bench/vs-qemu.d/report.sh
set terminal pngcairo size 1500,520 font ",10" noenhanced
set output "$OUT/chart.png"
set datafile missing "?"
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
# The three rows, whether or not each has a bar (a panel without any would
# leave autoscaling nothing to go by).
set xrange [-0.5:2.5]
# Head room above the tallest bar for the key.
set offsets 0, 0, graph 0.3, 0
set key top right
set multiplot layout 1,3 title "viommu-vmm vs QEMU 7.2 (nested, L2 Debian 6.1): median, bars min..max, $RUNS run(s)"
set title "1 MiB O_DIRECT reads (MB/s, higher is better)"
set yrange $(yrange_of read1m_mbps)
plot "$OUT/chart-read1m_mbps.dat" using 2:3:4:xtic(1) title "QEMU intel-iommu" lc rgb "#c0504d", \
     '' using 5:6:7 title "QEMU no IOMMU" lc rgb "#e6b9b8", \
     '' using 8:9:10 title "viommu-vmm VT-d (one-boot: its strict disk)" lc rgb "#4f81bd", \
     '' using 11:12:13 title "viommu-vmm no IOMMU (one-boot: its pass-through disk)" lc rgb "#b9cde5"
set title "4 KiB O_DIRECT reads (MB/s, higher is better)"
set yrange $(yrange_of read4k_mbps)
plot "$OUT/chart-read4k_mbps.dat" using 2:3:4:xtic(1) notitle lc rgb "#c0504d", \
     '' using 5:6:7 notitle lc rgb "#e6b9b8", \
     '' using 8:9:10 notitle lc rgb "#4f81bd", \
     '' using 11:12:13 notitle lc rgb "#b9cde5"
set title "boot to init (s, lower is better)"
set yrange $(yrange_of boot_s)
plot "$OUT/chart-boot_s.dat" using 2:3:4:xtic(1) notitle lc rgb "#c0504d", \
     '' using 5:6:7 notitle lc rgb "#e6b9b8", \
     '' using 8:9:10 notitle lc rgb "#4f81bd", \
     '' using 11:12:13 notitle lc rgb "#b9cde5"
unset multiplot
EOF
CHART=""
rm -f "$OUT/chart.png" # not one from an earlier report of other records
if ! has_bars "$OUT"/chart-*.dat; then
	echo "report.sh: no figure to chart" >&2
elif command -v gnuplot >/dev/null 2>&1; then
	if gnuplot "$OUT/chart.gp" 2>"$OUT/chart.err" && [ -s "$OUT/chart.png" ]; then
		CHART=chart.png
		rm -f "$OUT/chart.err"
	else
		echo "report.sh: gnuplot failed; see $OUT/chart.err" >&2
	fi
else
	echo "report.sh: no gnuplot (Debian package gnuplot-nox): no chart" >&2
fi

# ---- report.md ----------------------------------------------------------------
per_read_us() { # MBPS BLOCK_BYTES -> microseconds per block
	[ -n "$1" ] || return 0
	awk -v r="$1" -v b="$2" 'BEGIN { if (r > 0) printf "%.0f", b / r }'
}
per() { # TOTAL COUNT DECIMALS
	if [ -z "$1" ] || [ -z "$2" ]; then
		echo "-"
		return 0
	fi
	awk -v t="$1" -v n="$2" -v d="${3:-1}" 'BEGIN { if (n > 0) printf "%.*f", d, t / n }'
}
NAMES=(qemu-vtd-strict qemu-vtd-lazy qemu-vtd-nocm-strict qemu-virtio-strict qemu-off vmm-vtd-strict vmm-vtd-lazy vmm-vtd-cm-strict vmm-vtd-iq-strict vmm-vtd-ind-strict vmm-vtd-pt vmm-virtio-strict vmm-off vmm-vtd-pair)
declare -A TITLE=([qemu-vtd-strict]="QEMU intel-iommu, strict" [qemu-vtd-lazy]="QEMU intel-iommu (caching-mode=off), lazy"
	[qemu-vtd-nocm-strict]="QEMU intel-iommu (caching-mode=off), strict"
	[qemu-off]="QEMU, no IOMMU" [vmm-vtd-strict]="viommu-vmm VT-d, strict"
	[vmm-vtd-lazy]="viommu-vmm VT-d, lazy" [vmm-vtd-cm-strict]="viommu-vmm VT-d (caching-mode=on), strict"
	[vmm-vtd-iq-strict]="viommu-vmm VT-d (iq-thread=on), strict"
	[vmm-vtd-ind-strict]="viommu-vmm VT-d (indirect descriptors), strict"
	[vmm-vtd-pt]="viommu-vmm VT-d, guest pass-through (iommu.passthrough=1)"
	[qemu-virtio-strict]="QEMU virtio-iommu, strict" [vmm-virtio-strict]="viommu-vmm virtio-iommu, strict"
	[vmm-off]="viommu-vmm, no IOMMU"
	[vmm-vtd-pair]="viommu-vmm VT-d, strict + a pass-through disk (paired)")
PER1M=$((M1 * REPS))
PER4K=$((K4 * REPS))
{
	echo "# viommu-vmm vs QEMU: virtio-blk O_DIRECT reads and boot time"
	echo
	cmd=$(meta command)
	echo "Made by \`${cmd:-bench/vs-qemu --runs $RUNS}\` on $(meta date) (commit $(meta commit), $(meta build_type) build);"
	echo "guest: Debian's $(meta kernel) kernel, $(meta cpus) vCPUs, 512 MiB, busybox initramfs;"
	echo "$(meta qemu). Per boot, O_DIRECT sequential reads from a virtio-blk disk held in L1's RAM:"
	echo "$REPS samples of $M1 reads of 1 MiB, then $REPS samples of $K4 reads of 4 KiB, each timed on L1's"
	echo "monotonic clock between console markers the guest prints around it (the L2 guest's own clock"
	echo "can stall under this nesting; its figures are in results.txt as \*_guest_mbps, for comparison)."
	echo "Boot = VMM start to the first line of the guest's init, on L1's clock. Each cell: **median**"
	echo "(min..max) over every sample of every good boot ($RUNS boots a configuration, alternating"
	echo "within each run). QEMU: \`-M q35,kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on\`,"
	echo "virtio-blk \`iommu_platform=on,disable-legacy=on\`; viommu-vmm: \`--iommu vtd\` (caching mode off)."
	echo "With caching mode, Linux keeps every domain strict whatever iommu.strict says, so QEMU's"
	echo "lazy rows use caching-mode=off."
	echo
	echo "Where: the nested harness (L2 guests under KVM inside an L1 Linux that QEMU runs under TCG),"
	echo "on a machine with $(meta host_cpus) CPUs shared with other jobs (load average $(meta host_load) before,"
	echo "$(meta host_load_after) after). Every figure is slow and noisy; compare the ratios measured in one run."
	echo
	echo "## Figures"
	echo
	echo "| workload | QEMU intel-iommu | QEMU no IOMMU | viommu-vmm VT-d | viommu-vmm no IOMMU |"
	echo "|---|---|---|---|---|"
	echo "| 1 MiB reads, iommu.strict=1 (MB/s) | $(cell qemu-vtd-strict read1m_mbps 1) | $(cell qemu-off read1m_mbps 1) | $(cell vmm-vtd-strict read1m_mbps 1) | $(cell vmm-off read1m_mbps 1) |"
	echo "| 1 MiB reads, scattered buffer, iommu.strict=1 (MB/s) | $(cell qemu-vtd-strict read1mx_mbps 1) | $(cell qemu-off read1mx_mbps 1) | $(cell vmm-vtd-strict read1mx_mbps 1) | $(cell vmm-off read1mx_mbps 1) |"
	echo "| 4 KiB reads, iommu.strict=1 (MB/s) | $(cell qemu-vtd-strict read4k_mbps 2) | $(cell qemu-off read4k_mbps 2) | $(cell vmm-vtd-strict read4k_mbps 2) | $(cell vmm-off read4k_mbps 2) |"
	echo "| 1 MiB reads, iommu.strict=0 (MB/s) | $(cell qemu-vtd-lazy read1m_mbps 1) | (no IOMMU) | $(cell vmm-vtd-lazy read1m_mbps 1) | (no IOMMU) |"
	echo "| 1 MiB reads, scattered buffer, iommu.strict=0 (MB/s) | $(cell qemu-vtd-lazy read1mx_mbps 1) | (no IOMMU) | $(cell vmm-vtd-lazy read1mx_mbps 1) | (no IOMMU) |"
	echo "| 4 KiB reads, iommu.strict=0 (MB/s) | $(cell qemu-vtd-lazy read4k_mbps 2) | (no IOMMU) | $(cell vmm-vtd-lazy read4k_mbps 2) | (no IOMMU) |"
	echo "| boot to init, strict (s) | $(cell qemu-vtd-strict boot_s 2) | $(cell qemu-off boot_s 2) | $(cell vmm-vtd-strict boot_s 2) | $(cell vmm-off boot_s 2) |"
	echo "| boot to init, lazy (s) | $(cell qemu-vtd-lazy boot_s 2) | | $(cell vmm-vtd-lazy boot_s 2) | |"
	echo
	echo "## Ratios (of the medians)"
	echo
	echo "| workload | viommu VT-d / QEMU intel-iommu | QEMU IOMMU on / off | viommu IOMMU on / off |"
	echo "|---|---|---|---|"
	echo "| 1 MiB reads, strict | ${R_1M_STRICT:-n/a} | ${Q_ONOFF_1M:-n/a} | ${V_ONOFF_1M:-n/a} |"
	echo "| 1 MiB reads, scattered buffer, strict | ${R_1MX_STRICT:-n/a} | ${Q_ONOFF_1MX:-n/a} | ${V_ONOFF_1MX:-n/a} |"
	echo "| 4 KiB reads, strict | ${R_4K_STRICT:-n/a} | ${Q_ONOFF_4K:-n/a} | ${V_ONOFF_4K:-n/a} |"
	echo "| 1 MiB reads, lazy | ${R_1M_LAZY:-n/a} | ${Q_ONOFF_1M_LAZY:-n/a} | ${V_ONOFF_1M_LAZY:-n/a} |"
	echo "| 1 MiB reads, scattered buffer, lazy | ${R_1MX_LAZY:-n/a} | ${Q_ONOFF_1MX_LAZY:-n/a} | ${V_ONOFF_1MX_LAZY:-n/a} |"
	echo "| 4 KiB reads, lazy | ${R_4K_LAZY:-n/a} | ${Q_ONOFF_4K_LAZY:-n/a} | ${V_ONOFF_4K_LAZY:-n/a} |"
	echo "| boot time, strict (lower is better) | ${R_BOOT:-n/a} | | |"
	echo
	echo "## Goals (issue 8)"
	echo
	if [ "$(meta trace)" = 1 ]; then
		echo "This run recorded L1's KVM trace (\`--trace\`), which slows every exit: its figures are for"
		echo "finding where the time goes, not for these verdicts."
		echo
	fi
	echo "| goal | measured | 90% interval | run by run (min..max) | verdict |"
	echo "|---|---|---|---|---|"
	echo "| viommu VT-d / QEMU intel-iommu, 4 KiB strict reads >= 2 | ${R_4K_STRICT:-n/a} | $(ci_range "$CI_4K") | $(spread "$P_4K_STRICT") | $G_4K |"
	echo "| viommu IOMMU on / off, 1 MiB strict reads >= 0.9 | ${V_ONOFF_1M:-n/a} | $(ci_range "$CI_ONOFF") | $(spread "$P_ONOFF_1M") | $G_ONOFF |"
	echo "| the same, reads into a scattered buffer (every 4 KiB page its own segment) | ${V_ONOFF_1MX:-n/a} | $(ci_range "$CI_ONOFF_X") | | $G_ONOFF_X |"
	if in_configs vmm-vtd-pair || [ "$PAIR_N" -gt 0 ]; then
		echo "| for reference, not the goal's measure: strict / pass-through in one boot (vmm-vtd-pair), 1 MiB reads | ${V_PAIR_1M:-n/a} | $(ci_range "$CI_PAIR_1M") | $(spread "$P_PAIR_1M") | - |"
	fi
	echo
	echo "Measured: the ratio of the medians over every good boot. 90% interval: how far that ratio"
	echo "moves with the boots this run happened to get (a bootstrap over boots: each configuration's"
	echo "good boots drawn again with replacement, 2000 times). With at least 3 good boots of each"
	echo "configuration the verdict goes by it: MET when all of it clears the goal, NOT MET when none"
	echo "of it does, UNSETTLED when it spans the goal (this run cannot tell, whatever its median says);"
	echo "with fewer, by the measured ratio alone. Run by run: the same ratio within each run (one boot"
	echo "of each configuration, back to back), which shows how far this harness moves one run's figure."
	if in_configs vmm-vtd-pair || [ "$PAIR_N" -gt 0 ]; then
		echo "For reference: the DMA remapping's share of that cost, without the spread between boots: the"
		echo "median of strict / pass-through over every pair of samples read back to back in one boot"
		echo "(see \"DMA remapping on and off in one boot\"); run by run: each boot's median."
	fi
	echo
	echo "The 1 MiB reads go into one huge page, so each is a few DMA segments (and, strict, a few"
	echo "invalidations) in every run; the scattered-buffer rows read into 256 separate pages, 256 mappings"
	echo "and, strict, 256 invalidations per read, each an exit. A buffer of ordinary pages lies between."
	echo
	if in_configs vmm-vtd-cm-strict || in_configs qemu-vtd-nocm-strict; then
		echo "## Like for like: caching mode"
		echo
		echo "Caching mode makes the guest invalidate after every map as well as after every unmap."
		echo
		echo "| configuration | 1 MiB reads, strict (MB/s) | 4 KiB reads, strict (MB/s) | boot to init (s) |"
		echo "|---|---|---|---|"
		for c in qemu-vtd-strict qemu-vtd-nocm-strict vmm-vtd-strict vmm-vtd-cm-strict; do
			in_configs "$c" || continue
			echo "| ${TITLE[$c]} | $(cell "$c" read1m_mbps 1) | $(cell "$c" read4k_mbps 2) | $(cell "$c" boot_s 2) |"
		done
		r=$(ratio "$(med vmm-vtd-cm-strict read4k_mbps)" "$(med qemu-vtd-strict read4k_mbps)")
		r2=$(ratio "$(med vmm-vtd-strict read4k_mbps)" "$(med qemu-vtd-nocm-strict read4k_mbps)")
		echo
		echo "4 KiB strict, viommu / QEMU with caching mode on both: ${r:-n/a}; off on both: ${r2:-n/a}."
		echo
	fi
	if in_configs vmm-vtd-ind-strict; then
		echo "## Like for like: indirect descriptors"
		echo
		echo "viommu-vmm's virtio-blk offers no indirect descriptors behind its VT-d (an indirect table is one"
		echo "more DMA mapping per request, and strict, one more invalidation); QEMU's does. With them:"
		echo
		echo "| configuration | 1 MiB reads, strict (MB/s) | 4 KiB reads, strict (MB/s) | exits per 4 KiB read |"
		echo "|---|---|---|---|"
		for c in vmm-vtd-strict vmm-vtd-ind-strict; do
			echo "| ${TITLE[$c]} | $(cell "$c" read1m_mbps 1) | $(cell "$c" read4k_mbps 2) | $(per "$(med "$c" exits_read4k)" "$PER4K" 1) |"
		done
		echo
	fi
	if in_configs vmm-vtd-iq-strict; then
		echo "## The invalidation queue doorbell on the I/O thread"
		echo
		echo "\`--iommu vtd,iq-thread=on\`: a write of IQT is a KVM ioeventfd served by the VMM's I/O thread"
		echo "(real-time priority) and register reads come from a read-only mirror, so a strict guest's"
		echo "invalidation costs an exit into L1's KVM but no trip to user space on the vCPU."
		echo
		echo "| configuration | 1 MiB reads, strict (MB/s) | 4 KiB reads, strict (MB/s) | on / off, 1 MiB | on / off, 4 KiB | doorbells per boot |"
		echo "|---|---|---|---|---|---|"
		for c in vmm-vtd-strict vmm-vtd-iq-strict; do
			echo "| ${TITLE[$c]} | $(cell "$c" read1m_mbps 1) | $(cell "$c" read4k_mbps 2) |" \
				"$(ratio "$(med "$c" read1m_mbps)" "$(med vmm-off read1m_mbps)") | $(ratio "$(med "$c" read4k_mbps)" "$(med vmm-off read4k_mbps)") |" \
				"$(med "$c" vtd_iq_doorbells) |"
		done
		echo
	fi
	if in_configs vmm-vtd-pt; then
		echo "## Where the IOMMU's cost lies"
		echo
		echo "IOMMU on / off for viommu-vmm, step by step. Pass-through: the guest maps nothing and viommu's"
		echo "VT-d passes the disk's DMA through (its context entries and interrupt remapping still in the"
		echo "path). Lazy: the guest maps and unmaps every buffer and viommu translates every DMA, but"
		echo "invalidates only now and then. Strict: the same with an invalidation, an exit, per unmap."
		echo
		echo "| configuration | 1 MiB reads (MB/s) | on / off | 4 KiB reads (MB/s) | on / off |"
		echo "|---|---|---|---|---|"
		for c in vmm-off vmm-vtd-pt vmm-vtd-lazy vmm-vtd-strict; do
			in_configs "$c" || continue
			echo "| ${TITLE[$c]} | $(cell "$c" read1m_mbps 1) | $(ratio "$(med "$c" read1m_mbps)" "$(med vmm-off read1m_mbps)") |" \
				"$(cell "$c" read4k_mbps 2) | $(ratio "$(med "$c" read4k_mbps)" "$(med vmm-off read4k_mbps)") |"
		done
		echo
	fi
	if in_configs vmm-virtio-strict || in_configs qemu-virtio-strict; then
		echo "## virtio-iommu"
		echo
		echo "viommu-vmm \`--iommu virtio\` and QEMU's \`-device virtio-iommu-pci\`, guest iommu.strict=1: the"
		echo "driver sends a MAP request before each DMA and an UNMAP after it, each a request on the"
		echo "device's queue (a notify, an exit, and a wait for the reply). Every configuration of this run"
		echo "booted Debian's $(meta kernel) kernel (6.1 has no virtio-iommu driver), the ones without an"
		echo "IOMMU included, so on / off compares like with like."
		echo
		echo "| configuration | 1 MiB reads (MB/s) | on / off | 1 MiB reads, scattered (MB/s) | 4 KiB reads (MB/s) | on / off | exits per 4 KiB read | boot (s) |"
		echo "|---|---|---|---|---|---|---|---|"
		for c in qemu-virtio-strict qemu-off vmm-virtio-strict vmm-off; do
			in_configs "$c" || continue
			off=vmm-off
			[ "${c#qemu-}" = "$c" ] || off=qemu-off
			echo "| ${TITLE[$c]} | $(cell "$c" read1m_mbps 1) | $(ratio "$(med "$c" read1m_mbps)" "$(med "$off" read1m_mbps)") |" \
				"$(cell "$c" read1mx_mbps 1) | $(cell "$c" read4k_mbps 2) | $(ratio "$(med "$c" read4k_mbps)" "$(med "$off" read4k_mbps)") |" \
				"$(per "$(med "$c" exits_read4k)" "$PER4K" 1) | $(cell "$c" boot_s 2) |"
		done
		echo
		echo "viommu-vmm virtio-iommu / QEMU virtio-iommu: 1 MiB reads ${RV_1M:-n/a}, 4 KiB reads ${RV_4K:-n/a}, boot time ${RV_BOOT:-n/a} (lower is better)."
		echo
	fi
	if [ "$PAIR_N" -gt 0 ]; then
		echo "## DMA remapping on and off in one boot (vmm-vtd-pair)"
		echo
		echo "viommu-vmm \`--iommu vtd\`, guest intel_iommu=on iommu.strict=1, with two disks of the same size"
		echo "in L1's RAM on the same unit: /dev/vda in a strict DMA domain (as vmm-vtd-strict), and /dev/vdb,"
		echo "which the guest moves to a pass-through (identity) domain before it reads. Both disks' interrupts"
		echo "are remapped alike, so the two differ by the DMA remapping alone: the guest's mapping and"
		echo "invalidations, the unit's translation. Each sample is read from both disks back to back (odd"
		echo "samples vda first, even ones vdb first), so the ratio of a pair compares reads made moments"
		echo "apart in one boot: free of the spread between boots that the ratio of vmm-vtd-strict's and"
		echo "vmm-off's medians carries. What it leaves out is what the IOMMU costs beyond the disk's DMA"
		echo "(interrupt remapping, a pass-through domain's own cost): the \"Where the IOMMU's cost lies\" split"
		echo "(\`--configs vmm-off,vmm-vtd-pt,...\`) measures that step across boots."
		echo
		echo "Strict and pass-through: **median** (min..max) over every sample of every good boot. Strict /"
		echo "pass-through, paired: for each sample i of each good boot, strict_i / pass-through_i: **median**"
		echo "(min..max) of them all, then each boot's median, by run."
		echo
		echo "| workload | strict, vda (MB/s) | pass-through, vdb (MB/s) | strict / pass-through, paired | per boot |"
		echo "|---|---|---|---|---|"
		for w in "1 MiB reads:read1m:1:$PAIR_1M" "4 KiB reads:read4k:2:$PAIR_4K" "1 MiB reads, scattered buffer:read1mx:1:$PAIR_1MX"; do
			IFS=: read -r wname wkey wd wpair <<<"$w"
			if [ -n "$wpair" ]; then
				wr="**$(fmt 2 "$(pf "$wpair" 1)")** ($(fmt 2 "$(pf "$wpair" 2)")..$(fmt 2 "$(pf "$wpair" 3)"))"
				wb=$(pf "$wpair" 5)
				wb=${wb//,/, }
			else
				wr="no data" wb=""
			fi
			echo "| $wname | $(cell vmm-vtd-pair "${wkey}_mbps" "$wd") | $(cell vmm-vtd-pair "${wkey}_off_mbps" "$wd") | $wr | $wb |"
		done
		echo
		echo "For comparison, over separate boots (vmm-vtd-strict / vmm-off, the ratio of the medians):"
		echo "1 MiB ${V_ONOFF_1M:-n/a}, 4 KiB ${V_ONOFF_4K:-n/a}, 1 MiB scattered ${V_ONOFF_1MX:-n/a}."
		echo
	fi
	[ -z "$CHART" ] || { echo "![chart](chart.png)"; echo; }
	echo "## Where the time goes"
	echo
	echo "KVM exits in L1 (its debugfs counters, sampled when the guest's console shows each phase),"
	echo "medians over the good boots. A 4 KiB O_DIRECT read is one virtio request; its time is"
	echo "1 / (4 KiB reads per second)."
	echo
	echo "The last column divides the time of a 4 KiB read by its exits: far above the cost of one exit"
	echo "(HARNESS.md measured about 10 us on the host's own KVM), the time goes elsewhere, in the VMMs'"
	echo "own work or in waiting for L1's CPUs. Boot: VMM start to init as L1 timed it, and the guest"
	echo "kernel's uptime at init (the difference is the VMM's set-up, firmware and decompression)."
	if in_configs vmm-vtd-pair; then
		echo "vmm-vtd-pair's phases read both of its disks: its exits are per read of either disk, and its"
		echo "time per 4 KiB read is the mean of the two disks'."
	fi
	echo
	echo "| configuration | boot: L1 / guest uptime (s) | exits to init | exits per 1 MiB read (io / mmio / halt / irq) | exits per scattered 1 MiB read (mmio) | exits per 4 KiB read (io / mmio / halt / irq) | us per 4 KiB read | us per exit (4 KiB phase) |"
	echo "|---|---|---|---|---|---|---|---|"
	for c in "${NAMES[@]}"; do
		in_configs "$c" || continue
		us=$(per_read_us "$(med "$c" read4k_mbps)" 4096)
		# Reads per phase (n1m, n4k): vmm-vtd-pair's read both disks, and
		# its time per read is the mean of the two disks'.
		n1m=$PER1M n4k=$PER4K
		if [ "$c" = vmm-vtd-pair ]; then
			n1m=$((2 * PER1M)) n4k=$((2 * PER4K))
			us=$(awk -v a="$(med "$c" read4k_mbps)" -v b="$(med "$c" read4k_off_mbps)" \
				'BEGIN { if (a > 0 && b > 0) printf "%.0f", (4096 / a + 4096 / b) / 2 }')
		fi
		e4=$(med "$c" exits_read4k)
		eb=$(med "$c" exits_boot)
		bl=$(fmt 1 "$(med "$c" boot_s)")
		bu=$(fmt 1 "$(med "$c" guest_uptime_s)")
		echo "| ${TITLE[$c]} | ${bl:--} / ${bu:--} | ${eb:--} |" \
			"$(per "$(med "$c" exits_read1m)" "$n1m" 0) ($(per "$(med "$c" io_exits_read1m)" "$n1m" 0) / $(per "$(med "$c" mmio_exits_read1m)" "$n1m" 0) / $(per "$(med "$c" halt_exits_read1m)" "$n1m" 0) / $(per "$(med "$c" irq_exits_read1m)" "$n1m" 0)) |" \
			"$(per "$(med "$c" exits_read1mx)" "$n1m" 0) ($(per "$(med "$c" mmio_exits_read1mx)" "$n1m" 0)) |" \
			"$(per "$e4" "$n4k" 1) ($(per "$(med "$c" io_exits_read4k)" "$n4k" 1) / $(per "$(med "$c" mmio_exits_read4k)" "$n4k" 1) / $(per "$(med "$c" halt_exits_read4k)" "$n4k" 1) / $(per "$(med "$c" irq_exits_read4k)" "$n4k" 1)) |" \
			"${us:--} | $( [ -n "$e4" ] && [ -n "$us" ] && per "$us" "$(per "$e4" "$n4k" 3)" 0 || echo -) |"
	done
	echo
	if grep -q 'read1m_buffer_runs=' "$RES"; then
		echo "How many physically contiguous pieces the 1 MiB reads' buffer was (a read is at least one DMA"
		echo "segment per piece and per 64 KiB; with an IOMMU each segment is a mapping and, strict, an"
		echo "invalidation): median (min..max) over the samples."
		echo
		for c in "${NAMES[@]}"; do
			in_configs "$c" || continue
			[ -n "$(med "$c" read1m_buffer_runs)" ] || continue
			echo "- ${TITLE[$c]}: $(fmt 0 "$(med "$c" read1m_buffer_runs)") ($(st "$c" read1m_buffer_runs min)..$(st "$c" read1m_buffer_runs max))"
		done
		echo
	fi
	if grep -q 'iommu_translations=' "$RES"; then
		echo "viommu-vmm's IOMMU counters for a whole boot (\`--stats\`, medians):"
		echo
		echo "| configuration | translations | IOTLB hits | IOTLB misses | walks | invalidations | IRQs remapped |"
		echo "|---|---|---|---|---|---|---|"
		for c in vmm-vtd-strict vmm-vtd-lazy vmm-vtd-cm-strict vmm-vtd-iq-strict vmm-vtd-ind-strict vmm-off vmm-vtd-pair; do
			in_configs "$c" || continue
			row="| ${TITLE[$c]} |"
			for k in translations iotlb_hits iotlb_misses walks invalidations irqs_remapped; do
				v=$(med "$c" "iommu_$k")
				row="$row ${v:--} |"
			done
			echo "$row"
		done
		echo
	fi
	if grep -q 'trace_m1s_read_us=' "$RES"; then
		echo "### Per read, from L1's KVM trace (\`--trace\`)"
		echo
		echo "Every vCPU's time inside the timed samples, per read (medians over the good boots, both"
		echo "vCPUs added up): in the guest, in L1's KVM handling an exit, and out in the VMM's user space"
		echo "for an exit (the VMM's own work plus the KVM_RUN round trip). IOMMU: exits on the VT-d"
		echo "registers (a strict guest's invalidations); MMIO: the other MMIO exits (the virtio notify,"
		echo "whose user-space time is viommu-vmm's disk read); other: every other exit but halts. Read:"
		echo "the sample's wall-clock time per read, which includes starting the reader. The trace costs"
		echo "every exit a few microseconds more, so these runs are slower than untraced ones. Each cell:"
		echo "exits per read, then microseconds in KVM / in user space."
		echo
		for ph in m1s:"1 MiB reads" k4s:"4 KiB reads"; do
			local_ph=${ph%%:*}
			grep -q "trace_${local_ph}_read_us=" "$RES" || continue
			echo "| ${ph#*:} | read (us) | guest (us) | IOMMU exits | MMIO exits | other exits | halted (us) |"
			echo "|---|---|---|---|---|---|---|"
			for c in "${NAMES[@]}"; do
				in_configs "$c" || continue
				[ -n "$(med "$c" "trace_${local_ph}_read_us")" ] || continue
				row="| ${TITLE[$c]} | $(fmt 0 "$(med "$c" "trace_${local_ph}_read_us")") | $(fmt 0 "$(med "$c" "trace_${local_ph}_guest_us")") |"
				for k in iommu mmio other; do
					row="$row $(fmt 2 "$(med "$c" "trace_${local_ph}_${k}_exits")"): $(fmt 0 "$(med "$c" "trace_${local_ph}_${k}_kernel_us")") / $(fmt 0 "$(med "$c" "trace_${local_ph}_${k}_user_us")") |"
				done
				echo "$row $(fmt 0 "$(med "$c" "trace_${local_ph}_halt_us")") |"
			done
			echo
		done
	fi
	echo "## Boots"
	echo
	echo "$DONE of $EXPECTED boots recorded, $FAILED failed$([ "$MISSING" -eq 0 ] || echo ", $MISSING never ran (the session ended early)")."
	echo
	RESTARTS=$(grep -c '^l1_restart=' "$OUT/meta.txt" 2>/dev/null || true)
	if [ "${RESTARTS:-0}" -gt 0 ]; then
		echo "L1 itself ended early $RESTARTS time(s) (its kernel failed under the emulation, or it hung),"
		echo "and a new L1 went on with the boots not yet recorded:"
		echo
		sed -n 's/^l1_restart=\([0-9]*\) \(.*\)/- try \1, \2/p' "$OUT/meta.txt"
		echo
	fi
	echo "| configuration | good | failed |"
	echo "|---|---|---|"
	for c in "${NAMES[@]}"; do
		in_configs "$c" || continue
		g=$(nok "$c")
		b=$(nfail "$c")
		echo "| ${TITLE[$c]} | ${g:-0} | ${b:-0} |"
	done
	if [ "$FAILED" -gt 0 ]; then
		echo
		echo "Failed boots (the consoles are in \`logs/\`):"
		echo
		awk '$2 == "fail" { r = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", r); printf "- run %s, %s: %s\n", $3, $1, r }' "$OUT/stats.txt"
	fi
	echo
	echo "## Core microbenchmarks (host, no guest)"
	for f in core part2; do
		[ -f "$OUT/$f.txt" ] || continue
		echo
		[ "$f" = core ] && echo "\`viommu-bench-core\`:" || echo "\`viommu-bench-part2\`:"
		echo
		echo '```'
		cat "$OUT/$f.txt"
		echo '```'
	done
} >"$OUT/report.md"

# ---- key=value lines ------------------------------------------------------------
cat <<EOF
vtd_vs_qemu_4k_strict_ratio=${R_4K_STRICT:-n/a}
vtd_vs_qemu_4k_strict_ratio_per_run=${P_4K_STRICT:-n/a}
vtd_vs_qemu_4k_strict_ratio_ci90=$(ci_range "$CI_4K")
vtd_vs_qemu_1m_strict_ratio=${R_1M_STRICT:-n/a}
vtd_vs_qemu_4k_lazy_ratio=${R_4K_LAZY:-n/a}
vtd_vs_qemu_1m_lazy_ratio=${R_1M_LAZY:-n/a}
viommu_on_off_1m_ratio=${V_ONOFF_1M:-n/a}
viommu_on_off_1m_ratio_per_run=${P_ONOFF_1M:-n/a}
viommu_on_off_1m_ratio_ci90=$(ci_range "$CI_ONOFF")
qemu_on_off_1m_ratio=${Q_ONOFF_1M:-n/a}
vtd_vs_qemu_1m_scattered_strict_ratio=${R_1MX_STRICT:-n/a}
viommu_on_off_1m_scattered_ratio=${V_ONOFF_1MX:-n/a}
qemu_on_off_1m_scattered_ratio=${Q_ONOFF_1MX:-n/a}
viommu_on_off_4k_ratio=${V_ONOFF_4K:-n/a}
qemu_on_off_4k_ratio=${Q_ONOFF_4K:-n/a}
viommu_strict_pt_1m_paired_ratio=${V_PAIR_1M:-n/a}
viommu_strict_pt_1m_paired_ratio_per_boot=${P_PAIR_1M:-n/a}
viommu_strict_pt_1m_paired_ratio_ci90=$(ci_range "$CI_PAIR_1M")
viommu_strict_pt_4k_paired_ratio=${V_PAIR_4K:-n/a}
viommu_strict_pt_1m_scattered_paired_ratio=${V_PAIR_1MX:-n/a}
viommu_boot_s=${V_BOOT:-n/a}
qemu_boot_s=${Q_BOOT:-n/a}
virtio_vs_qemu_1m_strict_ratio=${RV_1M:-n/a}
virtio_vs_qemu_4k_strict_ratio=${RV_4K:-n/a}
viommu_virtio_on_off_1m_ratio=${VV_ONOFF_1M:-n/a}
viommu_virtio_on_off_4k_ratio=${VV_ONOFF_4K:-n/a}
qemu_virtio_on_off_1m_ratio=${QV_ONOFF_1M:-n/a}
qemu_virtio_on_off_4k_ratio=${QV_ONOFF_4K:-n/a}
boots_failed=$FAILED
boots_missing=$MISSING
report=$OUT/report.md
chart=${CHART:+$OUT/$CHART}
goal vtd_vs_qemu_4k_strict_ratio >= 2: $G_4K
goal viommu_on_off_1m_ratio >= 0.9: $G_ONOFF
goal viommu_on_off_1m_scattered_ratio >= 0.9: $G_ONOFF_X
EOF
