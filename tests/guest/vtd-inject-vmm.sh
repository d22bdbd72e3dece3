#!/usr/bin/env bash
# The "VMM" that guest_vtd_inject hands to scripts/guest-run: it runs
# viommu-vmm with a control socket and drives that socket with viommu-ctl
# from the same machine (inside the nested L1 when guest-run goes nested,
# where the socket lives). Bounded in time; the VMM's exit status is ours.
#
#   vtd-inject-vmm.sh VIOMMU_CTL OUTDIR VIOMMU_VMM [VMM ARGS...]
#
#   - puts the socket in a private folder under $TMPDIR or /tmp and adds
#     --control SOCK to the VMM's arguments;
#   - copies the VMM's serial output to its stdout (guest-run's log) and
#     follows the fault stream (viommu-ctl faults --follow) into
#     OUTDIR/faults.jsonl from the start;
#   - when the guest prints VTD-INJECT-READY, adds the rule (output in
#     OUTDIR/inject-add.out): 00:01.0's DMA reads fault with reason
#     permission, once (max_fires=1), anywhere in [0, 2^48);
#   - as soon as the fault stream shows a record (the guest then logs the
#     fault and waits 2 s), saves inject-list and stats (OUTDIR/inject-list.out,
#     OUTDIR/stats.out);
#   - waits for the VMM and writes what happened to OUTDIR/driver.log; a VMM
#     still running 30 s after the guest powered off gets each thread's
#     kernel state and stack and, with gdb, every thread's backtrace written
#     there and to stderr (a CI run of 2026-11 saw the VMM stay up after its
#     guest's power-off, once, with nothing to say where).
set -uo pipefail
CTL=${1:?usage: vtd-inject-vmm.sh VIOMMU_CTL OUTDIR VIOMMU_VMM [ARGS...]}
OUT=${2:?usage: vtd-inject-vmm.sh VIOMMU_CTL OUTDIR VIOMMU_VMM [ARGS...]}
shift 2
[ $# -ge 1 ] || { echo "vtd-inject-vmm: no VMM command" >&2; exit 125; }

LOGF=$OUT/driver.log
: >"$LOGF"
say() {
	echo "vtd-inject-vmm: $*" >>"$LOGF"
	echo "vtd-inject-vmm: $*" >&2
}
T=$(mktemp -d "${TMPDIR:-/tmp}/vtd-inject.XXXXXX" 2>/dev/null) || T=$(mktemp -d /tmp/vtd-inject.XXXXXX) ||
	{ say "cannot create a temporary folder"; exit 125; }
SOCK=$T/ctl.sock
SERIAL=$T/serial.out
: >"$SERIAL"
VPID="" FPID="" TPID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	local p
	for p in $FPID $TPID $VPID; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

"$@" --control "$SOCK" </dev/null >"$SERIAL" &
VPID=$!
tail -n +1 -f --pid="$VPID" "$SERIAL" &
TPID=$!
say "started $1 (pid $VPID) with --control $SOCK"

# The socket appears before the vCPUs start.
i=0
while [ ! -S "$SOCK" ] && [ "$i" -lt 300 ] && kill -0 "$VPID" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ -S "$SOCK" ]; then
	"$CTL" "$SOCK" faults --follow >"$OUT/faults.jsonl" 2>"$OUT/faults.err" &
	FPID=$!
	say "following the fault stream (pid $FPID)"
else
	say "no socket at $SOCK after $((i / 10)) s"
fi

# wait_for PATTERN FILE SECONDS: 0 once FILE has a line matching.
wait_for() {
	local n=0
	while ! grep -q -- "$1" "$2" 2>/dev/null; do
		kill -0 "$VPID" 2>/dev/null || return 1
		[ "$n" -lt $(($3 * 10)) ] || return 1
		sleep 0.1
		n=$((n + 1))
	done
}

if [ -n "$FPID" ] && wait_for VTD-INJECT-READY "$SERIAL" 240; then
	"$CTL" "$SOCK" inject-add action=fault rid=00:01.0 access=r first=0x0 last=0xffffffffffff \
		reason=permission max_fires=1 >"$OUT/inject-add.out" 2>&1
	say "inject-add: status $? $(cat "$OUT/inject-add.out")"
	if wait_for '"seq":' "$OUT/faults.jsonl" 120; then
		"$CTL" "$SOCK" inject-list >"$OUT/inject-list.out" 2>&1
		"$CTL" "$SOCK" stats >"$OUT/stats.out" 2>&1
		say "inject-list: $(cat "$OUT/inject-list.out")"
		say "stats: $(cat "$OUT/stats.out")"
	else
		say "no fault record in the stream within 120 s"
	fi
else
	say "the guest did not print VTD-INJECT-READY (or the socket is missing)"
fi

# A VMM that outlives its guest's power-off by 30 s is stuck: say where each
# of its threads is (kernel state and stack; user stacks when gdb is there),
# once, then keep waiting as before.
if wait_for 'reboot: Power down' "$SERIAL" 600; then
	n=0
	while kill -0 "$VPID" 2>/dev/null && [ "$n" -lt 300 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 "$VPID" 2>/dev/null; then
		echo "vtd-inject-vmm: the VMM still runs 30 s after the guest powered off; its threads:" >>"$LOGF"
		for t in /proc/"$VPID"/task/*; do
			echo "vtd-inject-vmm:   thread ${t##*/} $(cut -d' ' -f2,3 "$t/stat" 2>/dev/null) wchan=$(cat "$t/wchan" 2>/dev/null)" >>"$LOGF"
			sed 's/^/    /' "$t/stack" 2>/dev/null | head -n 12 >>"$LOGF"
		done
		if command -v gdb >/dev/null; then
			timeout 60 gdb -p "$VPID" -batch -ex 'thread apply all bt' >>"$LOGF" 2>&1
		fi
		sed -n '/still runs 30 s/,$p' "$LOGF" >&2
	fi
fi
wait "$VPID"
rc=$?
VPID=""
say "the VMM exited with status $rc"
# The follower sees the end of the stream when the VMM closes the socket.
n=0
while [ -n "$FPID" ] && kill -0 "$FPID" 2>/dev/null && [ "$n" -lt 50 ]; do
	sleep 0.1
	n=$((n + 1))
done
if [ -n "$FPID" ]; then
	if kill -0 "$FPID" 2>/dev/null; then
		say "the fault stream follower was still running 5 s after the VMM exited"
	else
		wait "$FPID"
		say "the fault stream follower exited with status $?"
		FPID=""
	fi
fi
[ -e "$SOCK" ] && say "the socket file is still there after the VMM exited"
wait "$TPID" 2>/dev/null
TPID=""
exit "$rc"
