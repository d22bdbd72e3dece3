#!/usr/bin/env bash
# viommu-vmm stops cleanly on Ctrl-C (SIGINT) and SIGTERM: it boots the tiny
# spinning guest (tiny_spin.S), waits for the guest's line on the serial
# console, sends the signal to the VMM's process group (as a terminal's Ctrl-C
# does), and checks that the VMM
#   - exits within 2 s with status 3,
#   - says "stopped by signal N" on standard error,
#   - had started its vCPU threads, and leaves no process behind.
# Both ways a vCPU can be waiting are covered: running guest code ("busy")
# and halted in the in-kernel LAPIC ("halt"), with 1 and 2 vCPUs (the second
# one parked waiting for INIT/SIPI).
#
#   tests/vmm/sigint.sh VIOMMU_VMM TINY_SPIN_BIN
#
# Exit status: 0 pass, 77 skip (no usable /dev/kvm), 1 fail.
set -uo pipefail
# shellcheck source=tests/vmm/spin-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/spin-lib.sh"
spin_setup sigint "${1:?usage: sigint.sh VIOMMU_VMM TINY_SPIN_BIN}" "${2:?usage: sigint.sh VIOMMU_VMM TINY_SPIN_BIN}"

# Job control: each background job gets a process group of its own, and
# SIGINT is not ignored in it, as for a command started from a terminal.
set -m

fail=0
# run_case NAME SIGNAL SIGNUM CPUS MODE
run_case() {
	local name=$1 sig=$2 signum=$3 cpus=$4 mode=$5
	local out=$WORK/$name.out err=$WORK/$name.err
	"$VMM" --kernel "$KERNEL" --append "$mode spin test" --memory 64 --cpus "$cpus" \
		</dev/null >"$out" 2>"$err" &
	PID=$!
	# Wait for the guest's line (the VMM installs its handlers before the
	# vCPUs start, so the signal is handled from then on).
	local i=0
	while ! grep -q "SPIN-READY $mode" "$out" 2>/dev/null; do
		if ! kill -0 "$PID" 2>/dev/null || [ "$i" -ge 300 ]; then
			echo "FAIL [$name]: the guest did not print 'SPIN-READY $mode' within 30 s"
			sed 's/^/  | /' "$out" "$err"
			kill -KILL "$PID" 2>/dev/null
			wait "$PID" 2>/dev/null
			PID=""
			fail=1
			return
		fi
		sleep 0.1
		i=$((i + 1))
	done
	# Let the vCPU settle into its loop, then count the threads: the main
	# thread, the I/O thread and one per vCPU (not counting the kernel's own KVM workers,
	# such as kvm-nx-lpage-recovery, which show up as tasks of the VM's owner).
	sleep 0.2
	local threads=0 t
	for t in "/proc/$PID/task"/*; do
		case "$(cat "$t/comm" 2>/dev/null)" in
		kvm-* | "") ;;
		*) threads=$((threads + 1)) ;;
		esac
	done
	if [ "$threads" -ne $((cpus + 2)) ]; then
		echo "FAIL [$name]: $threads threads before the signal, expected $((cpus + 2))"
		fail=1
	fi
	local t0 t1 rc
	t0=$(now_ms)
	kill "-$sig" -- "-$PID"
	# A VMM that ignores the signal is killed after 10 s.
	local killed=0
	wait_gone "$PID" 10000 || killed=1
	t1=$GONE_MS
	wait "$PID"
	rc=$?
	local ms=$((t1 - t0))
	local ok=1
	if [ "$killed" = 1 ]; then
		echo "FAIL [$name]: still running 10 s after SIG$sig; killed"
		ok=0
	fi
	if [ "$rc" -ne 3 ]; then
		echo "FAIL [$name]: exit status $rc, expected 3"
		ok=0
	fi
	if [ "$ms" -gt 2000 ]; then
		echo "FAIL [$name]: took $ms ms to stop, expected under 2000"
		ok=0
	fi
	if ! grep -q "stopped by signal $signum" "$err"; then
		echo "FAIL [$name]: no 'stopped by signal $signum' on standard error"
		ok=0
	fi
	if kill -0 "$PID" 2>/dev/null || [ -d "/proc/$PID" ]; then
		echo "FAIL [$name]: process $PID still exists"
		ok=0
	fi
	# Nothing running the private kernel copy (no stray child, no VMM).
	local left
	left=$(left_over)
	if [ -n "$left" ]; then
		echo "FAIL [$name]: a process is left over: $left"
		ok=0
	fi
	if [ "$ok" = 1 ]; then
		echo "ok [$name]: SIG$sig to a $mode guest with $cpus vCPU(s) ($threads threads): status 3 in $ms ms;" \
			"$(grep -m1 'stopped by signal' "$err")"
	else
		sed 's/^/  | /' "$out" "$err"
		fail=1
	fi
	PID=""
}

run_case int-busy-1 INT 2 1 busy
run_case int-halt-2 INT 2 2 halt
run_case term-busy-2 TERM 15 2 busy
run_case term-halt-1 TERM 15 1 halt
[ "$fail" = 0 ] && echo PASS
exit "$fail"
