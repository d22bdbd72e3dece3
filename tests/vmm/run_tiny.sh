#!/bin/sh
# Run viommu-vmm on the tiny test kernel and check its exit status and output.
# usage: run_tiny.sh VMM KERNEL EXPECTED_STATUS EXPECTED_REGEX [VMM ARGS...]
set -u
vmm=$1 kernel=$2 want_rc=$3 want_re=$4
shift 4
if [ ! -c /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIPPED: /dev/kvm is not available for writing"
	exit 77
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 60 "$vmm" --kernel "$kernel" "$@" >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne "$want_rc" ]; then
	echo "FAIL: exit status $rc, expected $want_rc"
	exit 1
fi
if ! grep -Eq -- "$want_re" "$out"; then
	echo "FAIL: output does not match /$want_re/"
	exit 1
fi
echo "PASS"
