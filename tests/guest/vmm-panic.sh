#!/usr/bin/env bash
# guest_vmm_panic: a Linux guest (2 vCPUs) whose kernel panics (sysrq 'c', with
# guest-run's panic=-1) makes viommu-vmm exit with status 2 and say "guest reset" on
# standard error, and the panic is in the serial log. The guest never prints
# its PASS marker, so scripts/guest-run reports a failure (status 1) by design;
# this wrapper checks the VMM's own status and messages, which a small shell
# around the VMM records in the work directory (shared read-write with L1 in
# nested mode).
#
#   tests/guest/vmm-panic.sh VIOMMU_VMM IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vmm-panic.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: vmm-panic.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: vmm-panic.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}

fail() {
	echo "vmm-panic: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vmm-panic" "$IMG" "$WORK"
WORK=$(realpath "$WORK")

# The VMM runs under a shell that keeps its exit status and standard error in
# WORK (the environment reaches the VMM's side in nested mode too); guest-run
# appends --kernel, --initrd and --append after "$@".
export VIOMMU_PANIC_WORK=$WORK
echo "vmm-panic: the guest never prints a PASS marker: guest-run reports a failure below, as expected"
# shellcheck disable=SC2016 # expanded by that shell
WRAP='"$0" "$@" 2>"$VIOMMU_PANIC_WORK/vmm.stderr"; s=$?; cat "$VIOMMU_PANIC_WORK/vmm.stderr" >&2; echo "$s" >"$VIOMMU_PANIC_WORK/vmm.status"; exit "$s"'
LOG=$WORK/serial.log
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$ROOT/tests/guest/panic.sh" --workdir "$WORK" --timeout 240 --append quiet \
	-- bash -c "$WRAP" "$VMM" --memory 256 --cpus 2 --serial stdio &
GPID=$!
# shellcheck disable=SC2317 # called by the traps
stop_run() {
	[ -z "$GPID" ] || kill -TERM "$GPID" 2>/dev/null
}
trap stop_run EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Once the panic is on the console the VMM has seconds to end; a VMM that
# misses the guest's reset would otherwise hold the run until the timeout.
GRACE=30
panic_at=""
hung=0
while kill -0 "$GPID" 2>/dev/null; do
	if [ -z "$panic_at" ] && grep -q 'Kernel panic - not syncing' < <(tr -d '\r' <"$LOG" 2>/dev/null); then
		panic_at=$SECONDS
	fi
	if [ -n "$panic_at" ] && [ $((SECONDS - panic_at)) -ge "$GRACE" ]; then
		hung=1
		kill -TERM "$GPID" 2>/dev/null
		break
	fi
	sleep 0.5
done
wait "$GPID"
rc=$?
GPID=""
[ "$hung" = 0 ] ||
	fail "viommu-vmm was still running $GRACE s after the guest's panic: it missed the guest's reset (see $LOG)"

# guest-run: 1 = no PASS marker (expected); 124 timeout and 125 harness
# errors are failures of this test.
[ "$rc" -eq 1 ] || fail "scripts/guest-run exited with status $rc, expected 1 (no marker after the panic)"
[ -s "$WORK/vmm.status" ] || fail "the VMM's exit status was not recorded (did it run?)"
status=$(cat "$WORK/vmm.status")
# The test's own line, or (should the panic's output interleave with it) the
# sysrq handler's, shows the test ran.
tr -d '\r' <"$LOG" | grep -Eq 'panic-test: crashing the kernel|sysrq: Trigger a crash' ||
	fail "the guest did not reach the test (see $LOG)"
grep -q 'Kernel panic - not syncing: sysrq triggered crash' < <(tr -d '\r' <"$LOG") ||
	fail "no 'Kernel panic - not syncing: sysrq triggered crash' in $LOG"
if grep -q 'panic-test: FAIL' < <(tr -d '\r' <"$LOG"); then
	fail "the guest kept running after the crash (see $LOG)"
fi
[ "$status" = 2 ] || fail "viommu-vmm exited with status $status, expected 2 (guest reset); stderr: $(cat "$WORK/vmm.stderr")"
msg=$(grep -m1 'guest reset' "$WORK/vmm.stderr") || fail "no 'guest reset' message from viommu-vmm; stderr: $(cat "$WORK/vmm.stderr")"
echo "vmm-panic: PASS: the guest panicked and viommu-vmm exited with status 2: $msg"
