#!/usr/bin/env bash
# shellcheck disable=SC2015 # ok and bad always succeed: "A && ok || bad" is if-then-else
# viommu-vmm --control: the control socket, driven through viommu-ctl while
# the tiny spinning guest (tiny_spin.S) runs. Checks every request (stats,
# faults, faults --follow, inject-add/list/remove, raw lines and batches of
# lines on one connection), the errors for malformed JSON, unknown commands,
# over-long lines and bad rule fields, that several clients are served at
# once (an idle client and a follower do not hold the others up), that the
# VMM refuses a socket path it cannot use, and that SIGINT stops the VMM
# cleanly: status 3, the follower sees the end of the stream, the socket
# file is removed.
#
#   tests/vmm/test_control.sh VIOMMU_VMM VIOMMU_CTL TINY_SPIN_BIN
#
# Exit status: 0 pass, 77 skip (no usable /dev/kvm), 1 fail.
set -uo pipefail
VMM=${1:?usage: test_control.sh VIOMMU_VMM VIOMMU_CTL TINY_SPIN_BIN}
CTL=${2:?usage: test_control.sh VIOMMU_VMM VIOMMU_CTL TINY_SPIN_BIN}
SPIN=${3:?usage: test_control.sh VIOMMU_VMM VIOMMU_CTL TINY_SPIN_BIN}

if [ ! -c /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIPPED: /dev/kvm is not available for writing"
	exit 77
fi
for f in "$VMM" "$CTL"; do
	[ -x "$f" ] || { echo "FAIL: $f is not executable"; exit 1; }
done
[ -f "$SPIN" ] || { echo "FAIL: no $SPIN (build the tiny_spin target)"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmm-ctl.XXXXXX") || exit 1
SOCK=$WORK/ctl.sock
PID="" FPID="" IPID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	local p
	for p in $PID $FPID $IPID; do
		kill -KILL "$p" 2>/dev/null
	done
	exec 9>&- 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

fails=0 passes=0
ok() {
	passes=$((passes + 1))
	echo "ok: $*"
}
bad() {
	fails=$((fails + 1))
	echo "FAIL: $*"
}

# ctl NAME WANT_STATUS PATTERN ARGS...: run viommu-ctl, check its status and
# that its output matches the extended regex PATTERN.
ctl() {
	local name=$1 want=$2 pat=$3
	shift 3
	local out rc
	out=$(timeout 20 "$CTL" "$SOCK" "$@" 2>&1)
	rc=$?
	LAST=$out
	if [ "$rc" -ne "$want" ]; then
		bad "$name: viommu-ctl $* exited $rc, expected $want; output: $out"
	elif ! grep -Eq -- "$pat" <<<"$out"; then
		bad "$name: output does not match /$pat/: $out"
	else
		ok "$name: $(head -c 200 <<<"$out" | tr '\n' ' ')"
	fi
}
# raw NAME 'JSON' ERROR_REGEX: the VMM refuses the line with this error.
raw_err() {
	ctl "$1" 1 "^\\{\"ok\":false,\"error\":\".*$3" raw "$2"
}
alive() {
	kill -0 "$PID" 2>/dev/null || bad "the VMM died after: $*"
}

# --- refusals at start-up ----------------------------------------------------
touch "$WORK/not-a-socket"
"$VMM" --kernel "$SPIN" --append "busy x" --memory 64 --control "$WORK/not-a-socket" \
	</dev/null >"$WORK/r1.out" 2>"$WORK/r1.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "not a socket" "$WORK/r1.err" && [ -f "$WORK/not-a-socket" ]; then
	ok "a regular file as --control path: status 1, '$(head -1 "$WORK/r1.err")', file kept"
else
	bad "a regular file as --control path: status $rc, stderr: $(cat "$WORK/r1.err")"
fi
LONG=$WORK/$(printf 'x%.0s' $(seq 1 120)).sock
"$VMM" --kernel "$SPIN" --append "busy x" --memory 64 --control "$LONG" \
	</dev/null >"$WORK/r2.out" 2>"$WORK/r2.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q "longer than" "$WORK/r2.err"; then
	ok "an over-long socket path: status 1, '$(head -1 "$WORK/r2.err")'"
else
	bad "an over-long socket path: status $rc, stderr: $(cat "$WORK/r2.err")"
fi

# --- the VMM with its control socket -------------------------------------------
set -m # own process group, SIGINT not ignored (as from a terminal)
"$VMM" --kernel "$SPIN" --append "busy control test" --memory 64 --control "$SOCK" \
	</dev/null >"$WORK/vmm.out" 2>"$WORK/vmm.err" &
PID=$!
set +m
i=0
while ! grep -q "SPIN-READY" "$WORK/vmm.out" 2>/dev/null; do
	if ! kill -0 "$PID" 2>/dev/null || [ "$i" -ge 300 ]; then
		echo "FAIL: the guest did not print SPIN-READY within 30 s"
		sed 's/^/  | /' "$WORK/vmm.out" "$WORK/vmm.err"
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
[ -S "$SOCK" ] && ok "the socket $SOCK exists" || bad "no socket at $SOCK"

# A follower of the fault stream, and an idle client that never sends a whole
# line: neither may hold up the requests below.
"$CTL" "$SOCK" faults --follow >"$WORK/follow.out" 2>"$WORK/follow.err" &
FPID=$!
mkfifo "$WORK/idle.fifo"
"$CTL" "$SOCK" batch <"$WORK/idle.fifo" >"$WORK/idle.out" 2>&1 &
IPID=$!
exec 9>"$WORK/idle.fifo"
printf '{"cmd":"st' >&9 # half a request, never finished until the end
sleep 0.3
if [ "$(head -1 "$WORK/follow.out")" = '{"ok":true,"follow":true,"seen":0}' ]; then
	ok "faults --follow acknowledged: $(head -1 "$WORK/follow.out")"
else
	bad "faults --follow: first line '$(head -1 "$WORK/follow.out")', stderr $(cat "$WORK/follow.err")"
fi

# --- stats -----------------------------------------------------------------------
ctl stats 0 '^\{"ok":true,"translations":[0-9]+,"iotlb_hits":[0-9]+,"iotlb_misses":[0-9]+,"iotlb_evictions":[0-9]+,.*"walks":[0-9]+,"refs":[0-9]+,"faults":0,"invalidations":[0-9]+,.*"inject_rules":0' stats
ctl stats-raw 0 '^\{"ok":true,"translations":' raw '  { "cmd" : "stats" }  '
ctl faults-recent 0 '^\{"ok":true,"seen":0,"faults":\[\]\}$' faults

# --- inject-add / list / remove ------------------------------------------------------
ctl add-fault 0 '^\{"ok":true,"id":1\}$' inject-add action=fault rid=00:01.0 first=0x0 last=0xffffffffffff \
	access=r reason=permission
ctl add-corrupt 0 '^\{"ok":true,"id":2\}$' inject-add action=corrupt-read rid=0000:00:02.1 xor_mask=0x2 \
	trigger=nth n=3 max_fires=1
ctl add-drop-inval 0 '^\{"ok":true,"id":3\}$' inject-add action=drop-inval pasid=none first=4096 last=8191
ctl add-delay-inval 0 '^\{"ok":true,"id":4\}$' inject-add action=delay-inval delay_us=1000 pasid=7
ctl add-lose-irq 0 '^\{"ok":true,"id":5\}$' inject-add action=lose-irq rid=00:1f.0 trigger=probability \
	ppm=500000 seed=42
ctl add-drop-compl 0 '^\{"ok":true,"id":6\}$' inject-add action=drop-completion trigger=every-nth n=2
ctl add-delay-compl 0 '^\{"ok":true,"id":7\}$' raw \
	'{"cmd":"inject-add","action":"delay-completion","delay_us":250,"max_fires":3,"first":"0x10000","last":"0x1ffff"}'
ctl add-write-fault 0 '^\{"ok":true,"id":8\}$' raw \
	'{"cmd":"inject-add","action":"fault","access":"wp","reason":"not-present","first":0,"last":18446744073709551615}'
ctl list 0 '^\{"ok":true,"count":8,"rules":\[\{"id":1,"action":"fault","rid":"0000:00:01.0","first":"0x0","last":"0xffffffffffff","access":"r","trigger":"always","reason":"permission","matched":0,"fired":0\},\{"id":2,"action":"corrupt-read","rid":"0000:00:02.1","trigger":"nth","n":3,"max_fires":1,"xor_mask":"0x2",' inject-list
for want in '"id":3,"action":"drop-inval","pasid":"none","first":"0x1000","last":"0x1fff"' \
	'"id":4,"action":"delay-inval","pasid":7,"trigger":"always","delay_us":1000' \
	'"id":5,"action":"lose-irq","rid":"0000:00:1f.0","trigger":"probability","ppm":500000,"seed":42' \
	'"id":6,"action":"drop-completion","trigger":"every-nth","n":2' \
	'"id":7,"action":"delay-completion","first":"0x10000","last":"0x1ffff","trigger":"always","max_fires":3,"delay_us":250' \
	'"id":8,"action":"fault","first":"0x0","last":"0xffffffffffffffff","access":"wp","trigger":"always","reason":"not-present"'; do
	grep -qF -- "$want" <<<"$LAST" && ok "list has $want" || bad "inject-list lacks $want: $LAST"
done
ctl stats-rules 0 '"inject_rules":8' stats
ctl remove 0 '^\{"ok":true,"id":2\}$' inject-remove 2
ctl remove-again 1 '^\{"ok":false,"error":"no rule with id 2"\}$' inject-remove 2
ctl remove-raw-str 0 '^\{"ok":true,"id":3\}$' raw '{"cmd":"inject-remove","id":"3"}'
ctl remove-missing-id 1 'inject-remove needs \\"id\\"' raw '{"cmd":"inject-remove"}'
ctl remove-bad-id 1 '"ok":false' raw '{"cmd":"inject-remove","id":true}'
ctl remove-big-id 1 'at most 4294967295' raw '{"cmd":"inject-remove","id":4294967296}'
ctl list-after 0 '^\{"ok":true,"count":6,"rules":\[\{"id":1,.*\{"id":4,' inject-list
grep -q '"id":2,\|"id":3,' <<<"$LAST" && bad "removed rules still listed: $LAST" || ok "rules 2 and 3 are gone"
ctl client-usage 2 'inject-remove takes one rule id' inject-remove abc

# --- bad rule fields -------------------------------------------------------------
raw_err no-action '{"cmd":"inject-add"}' 'needs \\"action\\"'
raw_err bad-action '{"cmd":"inject-add","action":"explode"}' 'unknown action \\"explode\\"'
raw_err bad-rid '{"cmd":"inject-add","action":"fault","reason":"permission","rid":"00:20.0"}' 'bad \\"rid\\"'
raw_err bad-rid2 '{"cmd":"inject-add","action":"fault","reason":"permission","rid":"zz"}' 'bad \\"rid\\"'
raw_err rid-number '{"cmd":"inject-add","action":"fault","reason":"permission","rid":8}' '\\"rid\\" must be a string'
raw_err first-above-last '{"cmd":"inject-add","action":"fault","reason":"permission","first":"0x2000","last":"0x1000"}' 'is above'
raw_err bad-first '{"cmd":"inject-add","action":"fault","reason":"permission","first":"0xZZ"}' 'not a 64-bit integer'
raw_err neg-first '{"cmd":"inject-add","action":"fault","reason":"permission","first":-1}' 'must not be negative'
raw_err bool-last '{"cmd":"inject-add","action":"fault","reason":"permission","last":true}' 'not a boolean'
raw_err bad-access '{"cmd":"inject-add","action":"fault","reason":"permission","access":"rq"}' 'letters r, w, x, p only'
raw_err empty-access '{"cmd":"inject-add","action":"fault","reason":"permission","access":""}' 'is empty'
raw_err bad-trigger '{"cmd":"inject-add","action":"fault","reason":"permission","trigger":"sometimes"}' 'unknown trigger'
raw_err nth-no-n '{"cmd":"inject-add","action":"fault","reason":"permission","trigger":"nth"}' 'needs \\"n\\"'
raw_err nth-zero '{"cmd":"inject-add","action":"fault","reason":"permission","trigger":"nth","n":0}' 'refused the rule: Invalid argument'
raw_err ppm-big '{"cmd":"inject-add","action":"fault","reason":"permission","trigger":"probability","ppm":1000001}' 'at most 1000000'
raw_err prob-no-ppm '{"cmd":"inject-add","action":"fault","reason":"permission","trigger":"probability"}' 'needs \\"ppm\\"'
raw_err no-reason '{"cmd":"inject-add","action":"fault"}' 'needs a \\"reason\\"'
raw_err bad-reason '{"cmd":"inject-add","action":"fault","reason":"because"}' 'unknown fault reason \\"because\\"'
raw_err no-xor '{"cmd":"inject-add","action":"corrupt-read"}' 'non-zero \\"xor_mask\\"'
raw_err delay-zero '{"cmd":"inject-add","action":"delay-inval","delay_us":0}' 'from 1 to 60000000'
raw_err delay-big '{"cmd":"inject-add","action":"delay-completion","delay_us":60000001}' 'from 1 to 60000000'
raw_err pasid-big '{"cmd":"inject-add","action":"lose-irq","pasid":1048576}' 'at most 1048575'
raw_err unknown-field '{"cmd":"inject-add","action":"lose-irq","colour":"red"}' 'unknown field \\"colour\\" for inject-add'
ctl client-kv 2 'KEY=VALUE' inject-add action
alive "bad rule fields"

# --- malformed requests ---------------------------------------------------------
raw_err not-object '[1,2]' 'one JSON object per line'
raw_err not-json 'hello' 'one JSON object per line'
raw_err unterminated '{"cmd":"stats' 'unterminated string'
raw_err no-colon '{"cmd" "stats"}' "expected ':'"
raw_err no-close '{"cmd":"stats"' "expected ',' or '}'"
raw_err trailing '{"cmd":"stats"} x' 'trailing characters'
raw_err two-objects '{"cmd":"stats"}{"cmd":"stats"}' 'trailing characters'
raw_err nested '{"cmd":"stats","a":{"b":1}}' 'nested objects and arrays'
raw_err array '{"cmd":"stats","a":[]}' 'nested objects and arrays'
raw_err null '{"cmd":"stats","a":null}' 'null is not accepted'
raw_err float '{"cmd":"stats","a":1.5}' 'only integers'
raw_err exponent '{"cmd":"stats","a":1e3}' 'only integers'
raw_err leading-zero '{"cmd":"stats","a":01}' 'leading zero'
raw_err huge-number '{"cmd":"stats","a":18446744073709551616}' 'does not fit 64 bits'
raw_err bare-word '{"cmd":"stats","a":yes}' 'bad value'
raw_err dup-key '{"cmd":"stats","cmd":"stats"}' 'duplicate key'
raw_err bad-escape '{"cmd":"st\qats"}' 'bad escape'
raw_err nul-escape '{"cmd":"\u0000"}' 'is not accepted'
raw_err ctl-char "$(printf '{"cmd":"a\tb"}')" 'control character'
raw_err no-cmd '{"verb":"stats"}' 'no \\"cmd\\"'
raw_err cmd-number '{"cmd":5}' '\\"cmd\\" must be a string'
raw_err unknown-cmd '{"cmd":"reboot"}' 'unknown command \\"reboot\\"'
raw_err stats-extra '{"cmd":"stats","verbose":true}' 'unknown field \\"verbose\\" for stats'
raw_err follow-str '{"cmd":"faults","follow":"yes"}' '\\"follow\\" must be true or false'
ctl escapes 0 '^\{"ok":true,"id":9\}$' raw '{"cmd":"inject-add","action":"fault","reason":"perm\u0069ssion","rid":"00:01.\u0030"}'
ctl escaped-error 1 '^\{"ok":false,"error":"unknown command ' raw '{"cmd":"a\"b\\c\n"}'
grep -qF 'unknown command \"a\"b\\c\u000a\" (' <<<"$LAST" && ok "the error escapes the name: $LAST" ||
	bad "the error does not escape the name as JSON: $LAST"
ctl client-unknown 2 "unknown command 'frobnicate'" frobnicate
alive "malformed requests"

# Over-long lines: refused once each, and the connection goes on.
BIG=$(head -c 6000 /dev/zero | tr '\0' 'a')
HUGE=$(head -c 300000 /dev/zero | tr '\0' 'b')
{
	printf '{"cmd":"stats","pad":"%s"}\n' "$BIG"
	printf '{"cmd":"inject-list"}\n'
	printf '%s\n' "$HUGE"
	printf '\n   \n'
	printf '{"cmd":"bogus"}\n{"cmd":"faults"}\n'
	printf '{"cmd":"stats"%s}\n' "$(head -c 4080 /dev/zero | tr '\0' ' ')"
} >"$WORK/batch.in"
timeout 30 "$CTL" "$SOCK" batch <"$WORK/batch.in" >"$WORK/batch.out" 2>&1
rc=$?
mapfile -t R <"$WORK/batch.out"
if [ "$rc" -eq 0 ] && [ "${#R[@]}" -eq 6 ] &&
	[ "${R[0]}" = '{"ok":false,"error":"request line longer than 4096 bytes: ignored"}' ] &&
	[[ ${R[1]} == '{"ok":true,"count":7,"rules":['* ]] &&
	[ "${R[2]}" = '{"ok":false,"error":"request line longer than 4096 bytes: ignored"}' ] &&
	[[ ${R[3]} == *'unknown command \"bogus\"'* ]] &&
	[[ ${R[4]} == '{"ok":true,"seen":0,"faults":[]}' ]] &&
	[[ ${R[5]} == '{"ok":true,"translations":'* ]]; then
	ok "batch of 8 lines on one connection (6 KB and 300 KB lines refused, blank lines skipped, a 4096-byte line served): 6 replies in order"
else
	bad "batch: status $rc, ${#R[@]} replies: $(head -c 1500 "$WORK/batch.out")"
fi
alive "over-long lines"

# Several clients at once: 8 in parallel, each with a batch of 20 requests.
for k in 1 2 3 4 5 6 7 8; do
	for _ in $(seq 1 20); do echo '{"cmd":"stats"}'; done >"$WORK/par$k.in"
	timeout 30 "$CTL" "$SOCK" batch <"$WORK/par$k.in" >"$WORK/par$k.out" 2>&1 &
done
wait_ok=1
for job in $(jobs -p); do
	case " $PID $FPID $IPID " in *" $job "*) continue ;; esac
	wait "$job" || wait_ok=0
done
n=$(cat "$WORK"/par*.out | grep -c '^{"ok":true,"translations":')
if [ "$wait_ok" = 1 ] && [ "$n" -eq 160 ]; then
	ok "8 clients at once, 20 requests each: 160 replies"
else
	bad "parallel clients: $n of 160 replies (all exited 0: $wait_ok)"
fi

# The idle client is still connected and gets its reply once the line ends.
printf 'ats"}\n' >&9
exec 9>&-
wait "$IPID"
rc=$?
IPID=""
if [ "$rc" -eq 0 ] && grep -q '^{"ok":true,"translations":' "$WORK/idle.out"; then
	ok "the idle client, served last: $(head -c 60 "$WORK/idle.out")"
else
	bad "the idle client: status $rc, output: $(cat "$WORK/idle.out")"
fi
kill -0 "$FPID" 2>/dev/null && ok "the follower is still connected" || bad "the follower left early"
ctl final-stats 0 '"faults":0,' stats

# --- SIGINT: clean exit ------------------------------------------------------------
kill -INT -- "-$PID"
rc=0
for _ in $(seq 1 100); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$PID" 2>/dev/null; then
	bad "the VMM is still running 5 s after SIGINT"
	kill -KILL "$PID"
fi
wait "$PID"
rc=$?
PID=""
[ "$rc" -eq 3 ] && ok "VMM exit status 3 after SIGINT" || bad "VMM exit status $rc after SIGINT, expected 3: $(cat "$WORK/vmm.err")"
grep -q "stopped by signal 2" "$WORK/vmm.err" && ok "'stopped by signal 2'" || bad "no 'stopped by signal 2': $(cat "$WORK/vmm.err")"
[ -e "$SOCK" ] && bad "the socket file is still there" || ok "the socket file is removed"
for _ in $(seq 1 40); do
	kill -0 "$FPID" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$FPID" 2>/dev/null; then
	bad "the follower did not see the stream end"
else
	wait "$FPID"
	rc=$?
	FPID=""
	[ "$rc" -eq 0 ] && [ "$(wc -l <"$WORK/follow.out")" -eq 1 ] &&
		ok "the follower ended with status 0 (no fault records: the tiny guest does no DMA)" ||
		bad "the follower: status $rc, output $(cat "$WORK/follow.out") $(cat "$WORK/follow.err")"
fi
timeout 10 "$CTL" "$SOCK" stats >"$WORK/gone.out" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "cannot connect" "$WORK/gone.out" && ok "viommu-ctl with no VMM: status 2, $(cat "$WORK/gone.out")" ||
	bad "viommu-ctl with no VMM: status $rc, $(cat "$WORK/gone.out")"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ] && echo PASS
[ "$fails" -eq 0 ]
