#!/usr/bin/env bash
# bench_vs_qemu_odirect: viommu-bench-odirect reads exactly what it is told,
# with O_DIRECT, reports bytes and a speed, and fails on short devices and bad
# arguments.
#
#   test-odirect.sh VIOMMU_BENCH_ODIRECT WORK_DIR
#
# Exit status: 0 pass, 77 skip (the work directory's filesystem refuses
# O_DIRECT), 1 fail.
set -uo pipefail
BIN=${1:?usage: test-odirect.sh BIN WORK_DIR}
WORK=${2:?usage: test-odirect.sh BIN WORK_DIR}
fail() { echo "test-odirect: FAIL: $*" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK" || fail "cannot create $WORK"
F=$WORK/disk.img
head -c $((3 * 1024 * 1024)) /dev/urandom >"$F" || fail "cannot write $F"

out=$("$BIN" --label big "$F" 1M 3 2>"$WORK/err")
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'Invalid argument' "$WORK/err"; then
	echo "test-odirect: SKIP: the filesystem of $WORK refuses O_DIRECT"
	exit 77
fi
[ "$rc" -eq 0 ] || fail "1 MiB x 3 exited with $rc: $(cat "$WORK/err")"
[[ "$out" =~ ^bench\ label=big\ bs=1048576\ count=3\ bytes=3145728\ seconds=[0-9]+\.[0-9]{6}\ mbps=[0-9]+\.[0-9]{2}\ runs=([0-9]+|na)$ ]] ||
	fail "unexpected output '$out'"
mbps=${out##*mbps=}
awk -v m="$mbps" 'BEGIN { exit !(m > 0) }' || fail "speed $mbps is not positive"

# A scattered buffer reads the same bytes.
out=$("$BIN" --label sc --scatter "$F" 1M 3) || fail "1 MiB x 3 into a scattered buffer failed"
[[ "$out" =~ ^bench\ label=sc\ bs=1048576\ count=3\ bytes=3145728\ .*\ runs=([0-9]+|na)$ ]] ||
	fail "unexpected output with --scatter: '$out'"

out=$("$BIN" "$F" 4k 768) || fail "4 KiB x 768 (the whole file) failed"
[[ "$out" == "bench label=read bs=4096 count=768 bytes=3145728 "* ]] || fail "unexpected output '$out'"

# One block more than the file holds: a short read is an error, not a speed.
out=$("$BIN" "$F" 4k 769 2>"$WORK/err")
rc=$?
[ "$rc" -eq 1 ] || fail "a read past the end exited with $rc, want 1"
[ -z "$out" ] || fail "a read past the end printed '$out'"
grep -q 'ends at 3145728 bytes' "$WORK/err" || fail "no short-read message: $(cat "$WORK/err")"

# Bad arguments: status 2 and nothing on stdout.
for args in "$F 1000 1" "$F 4k 0" "$F 0 1" "$F 4k -1" "$F 65M 1" "$F 4k 2k" "$F 4x 1" "$F 4k" ""; do
	# shellcheck disable=SC2086 # split on purpose
	out=$("$BIN" $args 2>/dev/null)
	rc=$?
	[ "$rc" -eq 2 ] || fail "arguments '$args' exited with $rc, want 2"
	[ -z "$out" ] || fail "arguments '$args' printed '$out'"
done
"$BIN" "$WORK/missing" 4k 1 2>/dev/null && fail "a missing file was read"
echo "test-odirect: PASS"
