#!/usr/bin/env bash
# guest_qemu_smoke: proves the guest harness end to end until viommu-vmm exists.
# Builds (or reuses) the Debian guest image, then boots it under QEMU with KVM
# as the VMM -- directly where the host's KVM can boot Linux, else inside the
# nested L1 of scripts/nested-run -- with 2 vCPUs and a virtio-blk disk, and
# runs smoke.sh in the guest (CPUs online, disk checksum, write and re-read).
# Back on the host it checks that exactly the region the guest wrote changed.
#
#   tests/guest/qemu-smoke.sh IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
IMG=${1:?usage: qemu-smoke.sh IMAGE_DIR WORK_DIR}
WORK=${2:?usage: qemu-smoke.sh IMAGE_DIR WORK_DIR}
QEMU=${VIOMMU_QEMU:-qemu-system-x86_64}

fail() {
	echo "qemu-smoke: FAIL: $*" >&2
	exit 1
}

command -v "$QEMU" >/dev/null || fail "$QEMU not found; install the Debian package qemu-system-x86"

guest_prepare "qemu-smoke" "$IMG" "$WORK"
DISK=$WORK/disk.img
SIZE=$((4 * 1024 * 1024))
OFF=$((1024 * 1024))
LEN=65536
head -c "$SIZE" /dev/urandom >"$DISK" || fail "cannot write $DISK"
cp "$DISK" "$WORK/disk.orig"
SHA=$(sha256sum "$DISK" | cut -d' ' -f1)

"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinux" --initrd "$IMG/initrd.img" \
	--test "$ROOT/tests/guest/smoke.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF" \
	-- "$QEMU" -accel kvm -cpu host -m 512 -smp 2 -display none -nodefaults -no-reboot \
	-no-user-config -serial stdio -drive "file=$DISK,format=raw,if=virtio"
rc=$?
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

# The guest's write reached the image, and nothing else changed.
yes VIOMMU-SMOKE-PATTERN | head -c "$LEN" >"$WORK/pattern"
cmp -s -n "$LEN" -i "$OFF:0" "$DISK" "$WORK/pattern" ||
	fail "the image does not hold the pattern at offset $OFF after the guest wrote it"
cmp -s -n "$OFF" "$DISK" "$WORK/disk.orig" || fail "the image changed before offset $OFF"
cmp -s -i "$((OFF + LEN))" "$DISK" "$WORK/disk.orig" || fail "the image changed after offset $((OFF + LEN))"
echo "qemu-smoke: PASS: the guest's write is in the image at offset $OFF; the rest is unchanged"
