# shellcheck shell=bash
# Shared by the host-side tests that run viommu-vmm on the tiny spinning guest
# (sigint.sh, stuck-vcpu.sh); sourced, bash.
#
# spin_setup NAME VMM SPIN: skip (77) without a writable /dev/kvm, check the
# arguments, make WORK and a private copy of the kernel in KERNEL (its path
# finds any process of ours left over), and on exit kill PID if it still
# runs, call spin_cleanup_hook if the caller defined one, and remove WORK.
spin_setup() {
	local name=$1
	VMM=$2 SPIN=$3
	if [ ! -c /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "SKIPPED: /dev/kvm is not available for writing"
		exit 77
	fi
	[ -x "$VMM" ] || { echo "FAIL: $VMM is not executable"; exit 1; }
	[ -f "$SPIN" ] || { echo "FAIL: no $SPIN (build the tiny_spin target)"; exit 1; }
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmm-$name.XXXXXX") || exit 1
	KERNEL=$WORK/tiny-spin-$$.bin
	cp "$SPIN" "$KERNEL" || exit 1
	PID=""
	trap spin_cleanup EXIT
}

# shellcheck disable=SC2317 # called by the trap
spin_cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -KILL "$PID" 2>/dev/null
	fi
	if declare -F spin_cleanup_hook >/dev/null; then
		spin_cleanup_hook
	fi
	rm -rf "$WORK"
}

now_ms() {
	local t
	t=$(date +%s%N)
	echo $((t / 1000000))
}

# shellcheck disable=SC2034 # GONE_MS is read by the callers
# wait_gone PID MS: poll until PID is gone or a zombie (not yet reaped:
# kill -0 still succeeds then); SIGKILL it after MS ms. 0 when it went by
# itself, 1 when it had to be killed. Sets GONE_MS to when it went (now_ms).
wait_gone() {
	local pid=$1 deadline state
	deadline=$(($(now_ms) + $2))
	while :; do
		state=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null)
		if [ -z "$state" ] || [ "$state" = Z ]; then
			GONE_MS=$(now_ms)
			return 0
		fi
		if [ "$(now_ms)" -ge "$deadline" ]; then
			kill -KILL "$pid" 2>/dev/null
			GONE_MS=$(now_ms)
			return 1
		fi
		sleep 0.01
	done
}

# left_over: the processes (pid and command line) that run KERNEL; none when
# everything of ours is gone.
left_over() {
	local p
	for p in /proc/[0-9]*; do
		[ -r "$p/cmdline" ] || continue
		if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$KERNEL"; then
			echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)"
		fi
	done
}
