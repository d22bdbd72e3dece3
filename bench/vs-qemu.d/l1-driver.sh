#!/usr/bin/env bash
# The part of bench/vs-qemu that runs inside L1 (scripts/nested-run), where
# /dev/kvm boots Linux: boots the benchmark guest under each configuration,
# run after run, alternating the configurations, and appends one record per
# boot to OUT/results.txt (key=value pairs on one line; see bench/vs-qemu).
# Not meant to be run by hand.
#
#   l1-driver.sh --out DIR --runs N --vmm FILE --launch FILE --kernel FILE
#                --initrd FILE [--qemu CMD] [--cpus N] [--memory MIB]
#                [--m1 N] [--k4 N] [--reps N] [--boot-timeout S] [--configs a,b,...]
#                [--trace 0|1] [--skip N]
#
# --skip N: leave out the first N boots of the sequence (they are in
# OUT/results.txt already: an earlier L1 ended while it ran the next one).
#
# Exit status: 0, or 3 when it cannot run at all (bad options, no /dev/kvm,
# no room for the guest's files): not nested-run's 124 or 125, so that
# bench/vs-qemu starts a new L1 only for L1's own failures.
set -uo pipefail

OUT="" RUNS=3 VMM="" LAUNCH="" KERNEL="" INITRD="" QEMU=qemu-system-x86_64
CPUS=2 MEMORY=512 M1=64 K4=512 REPS=3 BOOT_TIMEOUT=300 TRACE=0 SKIP=0
CONFIGS=qemu-vtd-strict,vmm-vtd-strict,qemu-off,vmm-off,qemu-vtd-lazy,vmm-vtd-lazy,vmm-vtd-pair
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2 ;;
	--runs) RUNS=$2 ;;
	--vmm) VMM=$2 ;;
	--launch) LAUNCH=$2 ;;
	--kernel) KERNEL=$2 ;;
	--initrd) INITRD=$2 ;;
	--qemu) QEMU=$2 ;;
	--cpus) CPUS=$2 ;;
	--memory) MEMORY=$2 ;;
	--m1) M1=$2 ;;
	--k4) K4=$2 ;;
	--reps) REPS=$2 ;;
	--boot-timeout) BOOT_TIMEOUT=$2 ;;
	--configs) CONFIGS=$2 ;;
	--trace) TRACE=$2 ;;
	--skip) SKIP=$2 ;;
	*) echo "l1-driver: unknown option $1" >&2; exit 3 ;;
	esac
	shift 2
done
for v in OUT VMM LAUNCH KERNEL INITRD; do
	[ -n "${!v}" ] || { echo "l1-driver: --${v,,} is required" >&2; exit 3; }
done
[ -e /dev/kvm ] || { echo "l1-driver: no /dev/kvm in L1" >&2; exit 3; }

# KVM's exit counters (summed over every VM, and only one runs at a time).
KVM_STATS=/sys/kernel/debug/kvm
[ -r "$KVM_STATS/exits" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
COUNTERS=()
for c in exits io_exits mmio_exits halt_exits irq_exits; do
	[ -r "$KVM_STATS/$c" ] && COUNTERS+=(--counter "$c=$KVM_STATS/$c")
done
[ "${#COUNTERS[@]}" -gt 0 ] || echo "l1-driver: KVM's debugfs counters are not readable; no exit counts" >&2

# --trace 1: L1's KVM trace of every boot (its events on L1's monotonic
# clock), kept in OUT/logs and split by trace-reads.py into where each
# sample's reads spent their time. Every event costs L1 a few microseconds:
# the figures of a traced run are slower than those of an untraced one.
TR=/sys/kernel/tracing
TRACE_EVENTS="kvm_exit kvm_entry kvm_userspace_exit kvm_mmio kvm_msr"
if [ "$TRACE" = 1 ]; then
	[ -d "$TR/events/kvm" ] || mount -t tracefs none "$TR" 2>/dev/null
	if [ ! -d "$TR/events/kvm" ] || ! command -v python3 >/dev/null; then
		echo "l1-driver: --trace: no tracefs with KVM events, or no python3, in L1; not tracing" >&2
		TRACE=0
	fi
fi
# The harness's own tracing (scripts/lib/guest-init: kvm_exit filtered to
# guest shutdowns, for nested-run's triple-fault report) is saved here and put
# back by trace_stop; each traced boot's events go to its own log instead.
# TRACE_SAVED: file under $TR -> its value, as it can be written back.
declare -A TRACE_SAVED=()
trace_files() {
	local e
	for e in $TRACE_EVENTS; do echo "events/kvm/$e/enable" "events/kvm/$e/filter"; done
	echo trace_clock buffer_size_kb
}
trace_start() {
	[ "$TRACE" = 1 ] || return 0
	local f e
	for f in $(trace_files) tracing_on; do
		case "$f" in
		trace_clock) TRACE_SAVED[$f]=$(sed 's/.*\[\(.*\)\].*/\1/' "$TR/$f") ;;   # "[local] global ..."
		buffer_size_kb) TRACE_SAVED[$f]=$(sed 's/[^0-9].*//' "$TR/$f") ;; # "256 (expanded: 1408)"
		*/filter) TRACE_SAVED[$f]=$(sed 's/^none$/0/' "$TR/$f") ;;       # "none": no filter
		*) TRACE_SAVED[$f]=$(cat "$TR/$f") ;;
		esac
	done
	echo 0 >"$TR/tracing_on"
	echo >"$TR/trace"
	echo mono >"$TR/trace_clock"
	echo 40000 >"$TR/buffer_size_kb"
	for e in $TRACE_EVENTS; do
		# The harness's own filter on kvm_exit (guest shutdowns) goes.
		echo 0 >"$TR/events/kvm/$e/filter"
		echo 1 >"$TR/events/kvm/$e/enable"
	done
	echo 1 >"$TR/tracing_on"
}
# trace_stop BASE KV LOG: stop, keep the trace as LOG, and print the
# trace_<phase>_* keys of each sampled phase (reads per phase: REPS samples;
# m1b, k4b and m1y are vmm-vtd-pair's samples of its pass-through disk, and
# only its boots have them).
trace_stop() {
	[ "$TRACE" = 1 ] || return 0
	local base=$1 kvf=$2 log=$3 t0 ph n w k s e
	echo 0 >"$TR/tracing_on"
	# Lost events would make every figure low: none then (counted before
	# the buffer is cleared, which resets the counts).
	local lost
	lost=$(cat "$TR"/per_cpu/cpu*/stats 2>/dev/null | awk '/^overrun:/ { n += $2 } END { print n + 0 }')
	cat "$TR/trace" >"$base.trace"
	echo >"$TR/trace"
	local f
	for f in $(trace_files) tracing_on; do
		echo "${TRACE_SAVED[$f]}" >"$TR/$f"
	done
	gzip -1 <"$base.trace" >"$log"
	if [ "$lost" != 0 ]; then
		echo "l1-driver: the trace lost $lost events (ring buffer overrun); no per-read figures for this boot" >&2
		rm -f "$base.trace"
		return 0
	fi
	t0=$(kv "$kvf" t0_mono)
	[ -n "$t0" ] || { rm -f "$base.trace"; return 0; }
	for ph in m1s:$M1 k4s:$K4 m1x:$M1 m1b:$M1 k4b:$K4 m1y:$M1; do
		n=${ph#*:} ph=${ph%%:*}
		w=()
		for ((k = 1; k <= REPS; k++)); do
			s=$(kv "$kvf" "phase.$ph$k.t")
			e=$(kv "$kvf" "phase.$ph${k}e.t")
			if [ -z "$s" ] || [ -z "$e" ]; then continue; fi
			w+=(--window "$(awk -v a="$t0" -v b="$s" -v c="$e" 'BEGIN { printf "%.6f:%.6f", a + b, a + c }')")
		done
		[ "${#w[@]}" -gt 0 ] || continue
		python3 "$(dirname "$0")/trace-reads.py" "${w[@]}" --reads $((n * ${#w[@]} / 2)) --prefix "trace_${ph}_" <"$base.trace" |
			tr '\n' ' '
	done
	rm -f "$base.trace"
}

# Everything the guests touch lives in L1's RAM (its /tmp is a tmpfs), so
# that no 9p traffic to the host lands inside a timed window: the kernel,
# the initramfs and the disk, which both VMMs read through their page cache.
W=$(mktemp -d /tmp/bench.XXXXXX) || exit 3
if ! cp "$KERNEL" "$W/vmlinuz" || ! cp "$INITRD" "$W/initrd.img"; then
	echo "l1-driver: cannot copy the guest image" >&2
	exit 3
fi
DISK_MIB=$(((M1 > K4 / 256 ? M1 : K4 / 256) + 1))
dd if=/dev/zero of="$W/disk.img" bs=1M count="$DISK_MIB" status=none || { echo "l1-driver: cannot write the disk" >&2; exit 3; }
# vmm-vtd-pair's second disk, which the guest passes through: the same size
# and content, in the same tmpfs, so that the two differ by the DMA
# remapping alone.
case ",$CONFIGS," in
*,vmm-vtd-pair,*)
	dd if=/dev/zero of="$W/disk2.img" bs=1M count="$DISK_MIB" status=none ||
		{ echo "l1-driver: cannot write the second disk" >&2; exit 3; }
	;;
esac
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.txt

# nokaslr: the guest RIP that nested-run reports for a triple fault reads
# straight off the kernel's System.map.
APPEND_BASE="console=ttyS0 panic=-1 nokaslr quiet vm.test=guest-bench.sh vm.modules=virtio_pci,virtio_blk vm.bench_m1=$M1 vm.bench_k4=$K4 vm.bench_reps=$REPS vm.timeout=$((BOOT_TIMEOUT - 10))"

# vmm_cmd CONFIG: the VMM command line of CONFIG into the array CMD.
# shellcheck disable=SC2054 # QEMU's options have commas
vmm_cmd() {
	local cfg=$1 strict=1 append
	case "$cfg" in *-lazy) strict=0 ;; esac
	# The guests without an IOMMU get the same options: with no DMAR table
	# they change nothing.
	append="$APPEND_BASE intel_iommu=on iommu.strict=$strict"
	case "$cfg" in
	qemu-vtd-*)
		# With caching mode, Linux's intel_iommu makes every domain strict
		# whatever iommu.strict says (the guest's check sees domain type DMA,
		# not DMA-FQ): lazy invalidation on QEMU needs caching-mode=off, and
		# so does the like-for-like optional qemu-vtd-nocm-strict.
		local cm=on
		case "$cfg" in qemu-vtd-lazy | qemu-vtd-nocm-strict) cm=off ;; esac
		append="$append vm.bench_iommu=vtd vm.bench_strict=$strict"
		CMD=("$QEMU" -accel kvm -cpu host -m "$MEMORY" -smp "$CPUS"
			-M q35,kernel-irqchip=split -device "intel-iommu,intremap=on,caching-mode=$cm"
			-display none -nodefaults -no-reboot -no-user-config -serial stdio
			-drive "file=$W/disk.img,format=raw,if=none,id=vd0"
			-device virtio-blk-pci,drive=vd0,iommu_platform=on,disable-legacy=on
			-kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$append")
		;;
	qemu-off)
		append="$append vm.bench_iommu=none"
		CMD=("$QEMU" -accel kvm -cpu host -m "$MEMORY" -smp "$CPUS"
			-M q35,kernel-irqchip=split
			-display none -nodefaults -no-reboot -no-user-config -serial stdio
			-drive "file=$W/disk.img,format=raw,if=none,id=vd0"
			-device virtio-blk-pci,drive=vd0,disable-legacy=on
			-kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$append")
		;;
	vmm-vtd-*)
		# The optional vmm-vtd-cm-strict: caching mode on, as QEMU's.
		# vmm-vtd-iq-strict: the invalidation queue doorbell on the I/O thread.
		local vtd=vtd
		[ "$cfg" != vmm-vtd-cm-strict ] || vtd=vtd,caching-mode=on
		[ "$cfg" != vmm-vtd-iq-strict ] || vtd=vtd,iq-thread=on
		# vmm-vtd-ind-strict: indirect descriptors offered, as QEMU does.
		local disk=$W/disk.img
		[ "$cfg" != vmm-vtd-ind-strict ] || disk=$W/disk.img,indirect=on
		# vmm-vtd-pt: the guest puts the disk in a pass-through domain.
		local mode=$strict
		[ "$cfg" != vmm-vtd-pt ] || { mode=pt; append="$append iommu.passthrough=1"; }
		# vmm-vtd-pair: a second disk (vdb: disks take PCI slots in order)
		# on the same unit, which guest-bench.sh moves to a pass-through
		# domain; the guest reads both in turn, sample by sample. Same
		# indirect setting as vda's (off behind the unit): the two differ
		# by the DMA remapping alone.
		local bench=vtd disk2=()
		[ "$cfg" != vmm-vtd-pair ] || { bench=pair; disk2=(--disk "$W/disk2.img"); }
		append="$append vm.bench_iommu=$bench vm.bench_strict=$mode"
		CMD=("$VMM" --memory "$MEMORY" --cpus "$CPUS" --disk "$disk" "${disk2[@]}" --serial stdio
			--iommu "$vtd" --stats --kernel "$W/vmlinuz" --initrd "$W/initrd.img" --append "$append")
		;;
	vmm-off)
		append="$append vm.bench_iommu=none"
		CMD=("$VMM" --memory "$MEMORY" --cpus "$CPUS" --disk "$W/disk.img" --serial stdio
			--iommu none --stats --kernel "$W/vmlinuz" --initrd "$W/initrd.img" --append "$append")
		;;
	qemu-virtio-strict | vmm-virtio-strict)
		# virtio-iommu (Debian's 6.12 guest: bench/vs-qemu then boots
		# every configuration of the run with it). The disk's probe
		# waits for the virtio_iommu module: load it first, and let the
		# kernel wait for it longer than its default 10 s.
		append="$append vm.modules=virtio_pci,virtio_iommu,virtio_blk deferred_probe_timeout=60"
		append="$append vm.bench_iommu=virtio vm.bench_strict=$strict"
		if [ "$cfg" = qemu-virtio-strict ]; then
			CMD=("$QEMU" -accel kvm -cpu host -m "$MEMORY" -smp "$CPUS"
				-M q35,kernel-irqchip=split -device virtio-iommu-pci
				-display none -nodefaults -no-reboot -no-user-config -serial stdio
				-drive "file=$W/disk.img,format=raw,if=none,id=vd0"
				-device virtio-blk-pci,drive=vd0,iommu_platform=on,disable-legacy=on
				-kernel "$W/vmlinuz" -initrd "$W/initrd.img" -append "$append")
		else
			CMD=("$VMM" --memory "$MEMORY" --cpus "$CPUS" --disk "$W/disk.img" --serial stdio
				--iommu virtio --stats --kernel "$W/vmlinuz" --initrd "$W/initrd.img" --append "$append")
		fi
		;;
	*) return 1 ;;
	esac
}

# kv FILE KEY: the value of KEY=... in FILE (last one wins), or empty.
kv() {
	sed -n "s/^$2=//p" "$1" | tail -n 1
}

# samples KV PREFIX BYTES: the speed (MB/s) of every sample PREFIX1 ..
# PREFIXn, from the times viommu-bench-launch gave its start and end markers
# (phase.PREFIXi.t and phase.PREFIXie.t), comma-separated.
samples() {
	awk -F= -v p="$2" -v bytes="$3" '
		index($1, "phase." p) == 1 && $1 ~ /\.t$/ {
			k = $1; sub(/^phase\./, "", k); sub(/\.t$/, "", k); t[k] = $2
		}
		END {
			out = ""
			for (i = 1; (p i) in t && (p i "e") in t; i++) {
				d = t[p i "e"] - t[p i]
				if (d <= 0) continue
				out = out (out == "" ? "" : ",") sprintf("%.2f", bytes / d / 1e6)
			}
			print out
		}' "$1"
}

# reps_of LIST...: every comma-separated LIST holds exactly REPS samples.
reps_of() {
	local l
	for l in "$@"; do
		[ "$(tr ',' '\n' <<<"$l" | grep -c .)" = "$REPS" ] || return 1
	done
}

# run_one RUN CONFIG: boot once, append the record.
run_one() {
	local run=$1 cfg=$2 base rec status=ok reason="" rc
	base=$W/run$run-$cfg
	vmm_cmd "$cfg" || { echo "run=$run config=$cfg status=fail reason=unknown_configuration" >>"$RESULTS"; return; }
	echo "l1-driver: run $run/$RUNS: $cfg" >&2
	trace_start
	"$LAUNCH" --log "$base.serial" --err "$base.stderr" --timeout "$BOOT_TIMEOUT" \
		"${COUNTERS[@]}" -- "${CMD[@]}" >"$base.kv" 2>"$base.launch-err"
	rc=$?
	local traced
	traced=$(trace_stop "$base" "$base.kv" "$OUT/logs/run$run-$cfg.trace.gz")
	local serial
	serial=$(tr -d '\r' <"$base.serial")
	# Every sample, comma-separated, timed on L1's clock by its markers
	# (the guest's own clock can stall under nesting: its figures are kept
	# as *_guest_mbps, for comparison only).
	local r1 r4 r1x g1 g4 boot
	r1=$(samples "$base.kv" m1s $((M1 * 1048576)))
	r4=$(samples "$base.kv" k4s $((K4 * 4096)))
	r1x=$(samples "$base.kv" m1x $((M1 * 1048576)))
	# vmm-vtd-pair: the same reads of the pass-through disk, each made
	# right before or after the sample of the same number above.
	local r1o="" r4o="" r1xo=""
	if [ "$cfg" = vmm-vtd-pair ]; then
		r1o=$(samples "$base.kv" m1b $((M1 * 1048576)))
		r4o=$(samples "$base.kv" k4b $((K4 * 4096)))
		r1xo=$(samples "$base.kv" m1y $((M1 * 1048576)))
	fi
	g1=$(grep -ao 'bench label=m1s[0-9]* .*' <<<"$serial" | sed -n 's/.* mbps=\([0-9.na]*\).*/\1/p' | paste -sd, -)
	g4=$(grep -ao 'bench label=k4s[0-9]* .*' <<<"$serial" | sed -n 's/.* mbps=\([0-9.na]*\).*/\1/p' | paste -sd, -)
	# How many physically contiguous pieces each 1 MiB sample's buffer was
	# (it decides the DMA segments per read; see odirect_read.c).
	local runs1
	runs1=$(grep -ao 'bench label=m1s[0-9]* .*' <<<"$serial" | sed -n 's/.* runs=\([0-9na]*\).*/\1/p' | paste -sd, -)
	local runs1x
	runs1x=$(grep -ao 'bench label=m1x[0-9]* .*' <<<"$serial" | sed -n 's/.* runs=\([0-9na]*\).*/\1/p' | paste -sd, -)
	boot=$(kv "$base.kv" boot_s)
	if [ "$(kv "$base.kv" timed_out)" = 1 ] || [ "$rc" = 124 ]; then
		status=fail reason="timed out after $BOOT_TIMEOUT s"
	elif grep -aq 'bench-guest: FAIL' <<<"$serial"; then
		status=fail reason=$(grep -a 'bench-guest: FAIL' <<<"$serial" | head -n 1 | sed 's/.*bench-guest: FAIL: //')
	elif ! grep -aqE 'VIOMMU-TEST-RESULT: PASS' <<<"$serial"; then
		status=fail reason="no PASS marker (VMM exit status $rc$(sed -n '1s/^/: /p' "$base.stderr" | tr -d '\n' | cut -c1-120))"
	elif [ "$rc" != 0 ]; then
		status=fail reason="the VMM exited with status $rc"
	elif [ -z "$r1" ] || [ -z "$r4" ] || [ -z "$r1x" ] || [ -z "$boot" ]; then
		status=fail reason="a figure is missing (read1m='$r1' read4k='$r4' read1mx='$r1x' boot='$boot')"
	elif ! reps_of "$r1" "$r4" "$r1x"; then
		status=fail reason="want $REPS samples of each read, got read1m='$r1' read4k='$r4' read1mx='$r1x'"
	elif [ "$cfg" = vmm-vtd-pair ] && ! reps_of "$r1o" "$r4o" "$r1xo"; then
		status=fail reason="want $REPS samples of each read of the pass-through disk, got read1m_off='$r1o' read4k_off='$r4o' read1mx_off='$r1xo'"
	fi
	rec="run=$run config=$cfg status=$status"
	[ -z "$boot" ] || rec="$rec boot_s=$boot"
	[ -z "$r1" ] || rec="$rec read1m_mbps=$r1"
	[ -z "$r4" ] || rec="$rec read4k_mbps=$r4"
	[ -z "$g1" ] || rec="$rec read1m_guest_mbps=$g1"
	[ -z "$g4" ] || rec="$rec read4k_guest_mbps=$g4"
	[ -z "$runs1" ] || rec="$rec read1m_buffer_runs=$runs1"
	[ -z "$r1x" ] || rec="$rec read1mx_mbps=$r1x"
	[ -z "$runs1x" ] || rec="$rec read1mx_buffer_runs=$runs1x"
	[ -z "$r1o" ] || rec="$rec read1m_off_mbps=$r1o"
	[ -z "$r4o" ] || rec="$rec read4k_off_mbps=$r4o"
	[ -z "$r1xo" ] || rec="$rec read1mx_off_mbps=$r1xo"
	rec="$rec total_s=$(kv "$base.kv" total_s)"
	[ -z "$traced" ] || rec="$rec ${traced% }"
	# The guest's own clock at init: what of the boot the kernel saw (the
	# rest went to the VMM's set-up, firmware and decompression).
	local up
	up=$(sed -nE 's/.*guest-init: kernel .* uptime ([0-9.]+) s.*/\1/p' <<<"$serial" | head -n 1)
	[ -z "$up" ] || rec="$rec guest_uptime_s=$up"
	# Exits per phase: each counter is sampled at the start of a phase.
	local c b ph a z i
	local phases=(read1m read4k read1mx done)
	for c in exits io_exits mmio_exits halt_exits irq_exits; do
		b=$(kv "$base.kv" "boot.$c")
		[ -z "$b" ] || [ "$b" = -1 ] || rec="$rec ${c}_boot=$b"
		for ((i = 0; i + 1 < ${#phases[@]}; i++)); do
			ph=${phases[i]}
			a=$(kv "$base.kv" "phase.$ph.$c")
			z=$(kv "$base.kv" "phase.${phases[i + 1]}.$c")
			if [ -n "$a" ] && [ -n "$z" ] && [ "$a" != -1 ] && [ "$z" != -1 ]; then
				rec="$rec ${c}_$ph=$((z - a))"
			fi
		done
	done
	# viommu-vmm --stats: "viommu-vmm: iommu translations=N iotlb_hits=N ..."
	local stats
	stats=$(sed -n 's/^viommu-vmm: iommu //p' "$base.stderr" | tail -n 1)
	for kvp in $stats; do
		rec="$rec iommu_$kvp"
	done
	# "viommu-vmm: vtd iq_doorbells=N (served by the I/O thread)"
	local db
	db=$(sed -n 's/^viommu-vmm: vtd iq_doorbells=\([0-9]*\).*/\1/p' "$base.stderr" | tail -n 1)
	[ -z "$db" ] || rec="$rec vtd_iq_doorbells=$db"
	# Spaces in the reason would split the record: it goes last, quoted by
	# nothing but its position.
	[ "$status" = ok ] || rec="$rec reason=$reason"
	echo "$rec" >>"$RESULTS"
	echo "l1-driver: $rec" >&2
	for f in serial stderr kv launch-err; do
		cp "$base.$f" "$OUT/logs/run$run-$cfg.$f" 2>/dev/null
	done
	rm -f "$base".*
}

IFS=, read -r -a CFGS <<<"$CONFIGS"
for ((run = 1; run <= RUNS; run++)); do
	order=("${CFGS[@]}")
	# Every other run goes through the configurations back to front, so that
	# neither VMM always runs right after the other.
	if ((run % 2 == 0)); then
		order=()
		for ((i = ${#CFGS[@]} - 1; i >= 0; i--)); do order+=("${CFGS[i]}"); done
	fi
	for cfg in "${order[@]}"; do
		if ((SKIP > 0)); then
			SKIP=$((SKIP - 1))
			continue
		fi
		run_one "$run" "$cfg"
	done
done
rm -rf "$W"
exit 0
