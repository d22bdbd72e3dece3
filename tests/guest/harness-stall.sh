#!/usr/bin/env bash
# guest_harness_stall: scripts/nested-run --stall-file F --stall S stops an L1
# whose command stopped writing F for S seconds (exit status 124 and a
# "stalled" message, long before --timeout), after the command was sent
# SIGTERM (so a VMM can still say where its guest was; SIGKILL 15 s later
# for one that ignores it), and leaves alone a command that keeps writing F
# for longer than S in all; and that it stops an L1 whose kernel reports a
# soft lockup at once.
#
#   tests/guest/harness-stall.sh IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
IMG=${1:?usage: harness-stall.sh IMAGE_DIR WORK_DIR}
WORK=${2:?usage: harness-stall.sh IMAGE_DIR WORK_DIR}

fail() {
	echo "harness-stall: FAIL: $*" >&2
	exit 1
}

guest_prepare "harness-stall" "$IMG" "$WORK"
WORK=$(realpath "$WORK")
P=$WORK/progress

# stalled WHAT ERR SCRIPT: SCRIPT (run in L1; it writes F once, then hangs)
# is stopped 8 s after its write, long before the timeout, with status 124
# and the "stalled" message; nested-run's stderr in ERR.
stalled() {
	local what=$1 err=$2 rc t t0
	rm -f "$P"
	t0=$(date +%s)
	"$ROOT/scripts/nested-run" --image "$IMG" --timeout 280 --rw "$WORK" --stall-file "$P" --stall 8 \
		-- sh -c "$3" 2>"$err"
	rc=$? t=$(($(date +%s) - t0))
	cat "$err" >&2
	[ "$rc" -eq 124 ] || fail "$what gave status $rc, want 124"
	grep -q "stalled: $P unchanged for 8 s" "$err" || fail "$what: no 'stalled' message"
	[ -s "$P" ] || fail "$what never wrote $P (L1 did not run it)"
	[ "$t" -lt 200 ] || fail "$what: L1 ran $t s, --stall did not stop it early"
}

# One that takes SIGTERM (and notes it in F).
stalled "a stalled command" "$WORK/err1" "trap 'echo TERM >>\"$P\"; exit 3' TERM; echo 1 >'$P'; sleep 270 & wait"
grep -qx TERM "$P" || fail "the stalled command was not sent SIGTERM before L1 was stopped"

# One that ignores SIGTERM: SIGKILL 15 s later.
stalled "a stalled command that ignores SIGTERM" "$WORK/err3" "trap '' TERM; echo 1 >'$P'; sleep 270"
grep -q "SIGKILL to the command" "$WORK/err3" || fail "L1 did not say it sent SIGKILL (see $WORK/err3)"

# An L1 kernel that reports a lasting soft lockup (stuck for 45 s or more, as
# the kernel's second report of one says): stopped at once (status 124, the
# lockup quoted), long before the timeout, without --stall; and a single
# report of a shorter one is let be (a CPU that TCG starved for a while). The
# reports are written to the kernel's log (/dev/kmsg), which L1 prints on its
# console as it would real ones: a real lockup cannot be made to order.
rm -f "$P"
t0=$(date +%s)
"$ROOT/scripts/nested-run" --image "$IMG" --timeout 280 --rw "$WORK" \
	-- sh -c "trap 'echo TERM >>\"$P\"; exit 3' TERM; echo 1 >'$P';
		echo 'watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [viommu-vmm:99]' >/dev/kmsg; sleep 4; echo 2 >>'$P';
		echo 'watchdog: BUG: soft lockup - CPU#1 stuck for 49s! [viommu-vmm:99]' >/dev/kmsg; sleep 270 & wait" \
	2>"$WORK/err4"
rc=$? t=$(($(date +%s) - t0))
cat "$WORK/err4" >&2
[ "$rc" -eq 124 ] || fail "a lasting soft lockup gave status $rc, want 124"
grep -qx 2 "$P" || fail "the command was stopped at the 23 s lockup report (want: only at the 49 s one)"
grep -q "L1's kernel reports a soft lockup (watchdog: BUG: soft lockup - CPU#1 stuck for 49s" "$WORK/err4" ||
	fail "no 'reports a soft lockup' message quoting the 49 s report"
grep -qx TERM "$P" || fail "the command was not sent SIGTERM after the soft lockup"
[ "$t" -lt 200 ] || fail "L1 ran $t s after a soft lockup"

# A command that writes every 3 s for 18 s: never stalled.
rm -f "$P"
"$ROOT/scripts/nested-run" --image "$IMG" --timeout 280 --rw "$WORK" --stall-file "$P" --stall 8 \
	-- sh -c "for i in 1 2 3 4 5 6; do echo \$i >>'$P'; sleep 3; done" 2>"$WORK/err2"
rc=$?
cat "$WORK/err2" >&2
[ "$rc" -eq 0 ] || fail "a command that kept writing gave status $rc, want 0"
[ "$(wc -l <"$P")" -eq 6 ] || fail "the command wrote $(wc -l <"$P") lines, want 6"
echo "harness-stall: PASS"
