#!/usr/bin/env bash
# guest_edu_qemu and guest_edu_vmm: one guest program (edu-test.sh) drives an edu
# device (1234:11e8) under two VMMs -- QEMU with its own `-device edu`, and
# viommu-vmm with `--edu` -- so our device is held to QEMU's behaviour: ident,
# liveness and factorial registers through busybox devmem on BAR0, after
# enabling memory decoding and bus mastering through the config space.
# Builds (or reuses) the Debian guest image; runs the VMM directly where the
# host's KVM can boot Linux, else in the nested L1 of scripts/nested-run.
#
#   tests/guest/edu.sh qemu IMAGE_DIR WORK_DIR
#   tests/guest/edu.sh vmm IMAGE_DIR WORK_DIR VIOMMU_VMM
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
USAGE="usage: edu.sh qemu|vmm IMAGE_DIR WORK_DIR [VIOMMU_VMM]"
WHICH=${1:?$USAGE}
IMG=${2:?$USAGE}
WORK=${3:?$USAGE}

fail() {
	echo "edu ($WHICH): FAIL: $*" >&2
	exit 1
}

case "$WHICH" in
qemu)
	QEMU=${VIOMMU_QEMU:-qemu-system-x86_64}
	command -v "$QEMU" >/dev/null || fail "$QEMU not found; install the Debian package qemu-system-x86"
	# QEMU boots the uncompressed kernel through its PVH entry point.
	KERNEL=vmlinux
	VMM_CMD=("$QEMU" -accel kvm -cpu host -m 256 -smp 1 -display none -nodefaults -no-reboot
		-no-user-config -serial stdio -device edu)
	;;
vmm)
	VMM=${4:?$USAGE}
	[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"
	KERNEL=vmlinuz
	VMM_CMD=("$VMM" --memory 256 --cpus 1 --edu --serial stdio)
	;;
*) echo "$USAGE" >&2; exit 2 ;;
esac

guest_prepare "edu ($WHICH)" "$IMG" "$WORK"

"$ROOT/scripts/guest-run" --kernel "$IMG/$KERNEL" --initrd "$IMG/initrd.img" \
	--test "$ROOT/tests/guest/edu-test.sh" --workdir "$WORK" --timeout 240 --append quiet \
	-- "${VMM_CMD[@]}"
rc=$?
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"
grep -q 'edu-test: 12! = 479001600' "$WORK/serial.log" || fail "the guest's last check is not in $WORK/serial.log"
echo "edu ($WHICH): PASS"
