#!/usr/bin/env bash
# A vCPU thread that does not stop when the VM does: viommu-vmm must say which
# vCPU, and where, instead of hanging without a word, and a second signal
# must end it. The vCPU is made to block for real: its standard output is a
# full pipe that nobody reads (a console piped into a pager that was left
# alone), so the guest's first line blocks the vCPU in write(2) while it
# handles the serial port's exit. Then
#   - SIGTERM asks the VM to stop; the vCPU cannot, so within 10 s the VMM
#     names it on standard error: user space, a port write at 0x3f8, its
#     thread and its kernel wait channel; and it is still running (the
#     teardown is unsafe beside a live vCPU thread);
#   - a second SIGTERM ends it within 2 s, status 3, saying it exits
#     without cleaning up; nothing is left running;
#   - and the same with its standard error on the full pipe too: the report
#     cannot be written (7 s after SIGTERM the main thread is blocked writing
#     it, beside the vCPU), and the second SIGTERM still ends it within 2 s.
#
#   tests/vmm/stuck-vcpu.sh VIOMMU_VMM TINY_SPIN_BIN
#
# Exit status: 0 pass, 77 skip (no usable /dev/kvm), 1 fail.
set -uo pipefail
# shellcheck source=tests/vmm/spin-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/spin-lib.sh"
spin_setup stuck "${1:?usage: stuck-vcpu.sh VIOMMU_VMM TINY_SPIN_BIN}" "${2:?usage: stuck-vcpu.sh VIOMMU_VMM TINY_SPIN_BIN}"
# shellcheck disable=SC2317 # called by spin_cleanup
spin_cleanup_hook() { exec 3>&-; }

fail() {
	echo "FAIL: $*"
	sed 's/^/  | /' "$ERR" 2>/dev/null
	exit 1
}

# The pipe: held open for reading and writing on fd 3 (so that opening it
# does not wait for a reader), then filled until a write would block.
FIFO=$WORK/console
ERR=$WORK/err
mkfifo "$FIFO" || exit 1
exec 3<>"$FIFO"
timeout 2 dd if=/dev/zero of="$FIFO" bs=4096 count=1024 status=none
[ $? -eq 124 ] || fail "could not fill the pipe (dd did not block)"

# start_blocked ERR_TO: the VMM on the tiny guest, its console on the full
# pipe and its standard error to ERR_TO; returns once one of its threads is
# blocked writing to the pipe (the vCPU, at the guest's first line).
start_blocked() {
	"$VMM" --kernel "$KERNEL" --append "busy spin test" --memory 64 --cpus 1 \
		</dev/null >"$FIFO" 2>"$1" 3>&- &
	PID=$!
	local i=0
	while [ "$(in_pipe_write)" -eq 0 ]; do
		kill -0 "$PID" 2>/dev/null || fail "the VMM exited on its own (status: $(wait "$PID"; echo $?))"
		[ "$i" -lt 300 ] || fail "no thread of the VMM blocked writing to the full pipe within 30 s"
		sleep 0.1
		i=$((i + 1))
	done
}
# in_pipe_write: how many of the VMM's threads are blocked writing to a pipe
# (pipe_write, or anon_pipe_write on newer kernels).
in_pipe_write() {
	local t n=0
	for t in "/proc/$PID/task"/*; do
		case "$(cat "$t/wchan" 2>/dev/null)" in *pipe_write) n=$((n + 1)) ;; esac
	done
	echo "$n"
}

# second_sigterm LABEL: the second SIGTERM ends the VMM within 2 s with
# status 3 and nothing of ours left running; END_MS: how long it took.
second_sigterm() {
	local t0 rc
	t0=$(now_ms)
	kill -TERM "$PID"
	wait_gone "$PID" 10000 || fail "${1}still running 10 s after the second SIGTERM; killed"
	END_MS=$((GONE_MS - t0))
	wait "$PID"
	rc=$?
	PID=""
	[ "$rc" -eq 3 ] || fail "${1}exit status $rc after the second SIGTERM, expected 3"
	[ "$END_MS" -le 2000 ] || fail "${1}took $END_MS ms to end after the second SIGTERM"
	left=$(left_over)
	[ -z "$left" ] || fail "${1}a process is left over: $left"
}

# ---- 1: standard error to a file: the report, then the way out --------------
start_blocked "$ERR"
t0=$(now_ms)
kill -TERM "$PID"
i=0
while ! grep -q "vCPU 0 has not stopped" "$ERR"; do
	kill -0 "$PID" 2>/dev/null || fail "the VMM exited after one SIGTERM with its vCPU blocked (status: $(wait "$PID"; echo $?))"
	[ "$i" -lt 150 ] || fail "nothing said about the vCPU that did not stop, 15 s after SIGTERM"
	sleep 0.1
	i=$((i + 1))
done
t1=$(now_ms)
line=$(grep -m1 "vCPU 0 has not stopped" "$ERR")
for want in "stopped by signal 15" "in user space, handling an exit" "a port write of 1 bytes at 0x3f8" \
	"kernel wait channel " "pipe_write"; do
	case "$line" in
	*"$want"*) ;;
	*) fail "the message does not say '$want': $line" ;;
	esac
done
[ $((t1 - t0)) -ge 5000 ] || fail "the message came $((t1 - t0)) ms after SIGTERM, before the 5 s wait"
kill -0 "$PID" 2>/dev/null || fail "the VMM ended after its message, with its vCPU still blocked"
echo "ok: after $((t1 - t0)) ms: $line"

second_sigterm ""
grep -q "exiting without cleaning up" "$ERR" || fail "no 'exiting without cleaning up' on standard error"
echo "ok: the second SIGTERM ended it in $END_MS ms, status 3: $(grep -m1 'exiting without' "$ERR")"

# ---- 2: standard error blocked too: the report cannot go out, and the second
# signal still ends the VMM (it does not wait on standard error again) --------
start_blocked "$FIFO"
kill -TERM "$PID"
sleep 7
kill -0 "$PID" 2>/dev/null || fail "[stderr blocked] the VMM exited after one SIGTERM with its vCPU blocked"
n=$(in_pipe_write)
[ "$n" -ge 2 ] || fail "[stderr blocked] $n thread(s) in a pipe write 7 s after SIGTERM; want the vCPU and the main thread's report"
second_sigterm "[stderr blocked] "
echo "ok: with standard error blocked as well, the second SIGTERM ended it in $END_MS ms, status 3"
echo PASS
