# shellcheck shell=bash
# Shared helpers for scripts/guest-image, scripts/nested-run and scripts/guest-run.
# Sourced, never run. Expects PROG (the calling script's name) to be set.

# die MSG...: print "PROG: MSG" on stderr and exit 125 (harness error).
die() {
	echo "$PROG: error: $*" >&2
	exit 125
}

warn() {
	echo "$PROG: $*" >&2
}

# need_cmd CMD PACKAGE: fail with the Debian package to install when CMD is missing.
need_cmd() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found; install the Debian package '$2' (apt-get install $2, or run scripts/deps.sh)"
}

# need_file FILE PACKAGE: same for a file that a package ships.
need_file() {
	[ -e "$1" ] ||
		die "'$1' not found; install the Debian package '$2' (apt-get install $2, or run scripts/deps.sh)"
}

# now_ms: wall clock in milliseconds.
now_ms() {
	local t
	t=$(date +%s%N)
	echo $((t / 1000000))
}

# fmt_ms MS: "12.345 s"
fmt_ms() {
	printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000))
}

# host_can_boot_linux: true when the host's KVM is hardware VT-x/AMD-V (vmx or
# svm in /proc/cpuinfo) and /dev/kvm is usable. A /dev/kvm without those flags
# (e.g. a PVM or other paravirtual KVM) cannot boot an unmodified Linux.
host_can_boot_linux() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	grep -qwE 'vmx|svm' /proc/cpuinfo
}

# kill_pid PID: TERM, then KILL after a grace period of 5 s.
kill_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}
