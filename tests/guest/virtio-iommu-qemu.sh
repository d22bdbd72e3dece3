#!/usr/bin/env bash
# guest_virtio_iommu_qemu: the reference for a virtio-iommu device. Builds (or
# reuses) the Debian 6.12 guest image (scripts/guest-image --kernel-version
# 6.12: only 6.12 has Linux's virtio-iommu driver and ACPI VIOT), then boots
# it under QEMU with KVM as the VMM -- directly where the host's KVM can boot
# Linux, else inside the nested L1 of scripts/nested-run -- on q35 with
# QEMU's virtio-iommu-pci and a virtio-blk disk behind it
# (iommu_platform=on,disable-legacy=on). The guest (iommu.strict=1) loads
# virtio_pci, virtio_iommu, virtio_blk in that order -- the disk's probe waits
# for the IOMMU driver -- and runs virtio-iommu-checks.sh (the driver bound,
# the device's PCI identity, features and configuration, the disk in an IOMMU
# group of type DMA, the VIOT table dumped), then smoke.sh (the disk's
# checksum, a write and its re-read). Back on the host it checks that exactly
# the region the guest wrote changed.
# Debian's 6.12 has virtio_pci built in, so the disk's PCI probe is deferred
# at boot until virtio_iommu registers the IOMMU named by the ACPI VIOT table;
# the kernel waits for that 10 s past its last initcall (deferred_probe_timeout)
# and then binds the disk without the IOMMU, which the checks report as a
# failure. Here virtio_iommu probes about 0.3 s after init starts.
#
#   tests/guest/virtio-iommu-qemu.sh IMAGE_DIR WORK_DIR
#
# IMAGE_DIR is the 6.12 image's directory (build/guest-6.12 by default).
# Exit status: 0 pass, 77 skip (no 6.12 kernel package can be obtained), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
IMG=${1:?usage: virtio-iommu-qemu.sh IMAGE_DIR WORK_DIR}
WORK=${2:?usage: virtio-iommu-qemu.sh IMAGE_DIR WORK_DIR}
QEMU=${VIOMMU_QEMU:-qemu-system-x86_64}

fail() {
	echo "virtio-iommu-qemu: FAIL: $*" >&2
	exit 1
}

command -v "$QEMU" >/dev/null || fail "$QEMU not found; install the Debian package qemu-system-x86"

guest_prepare "virtio-iommu-qemu" "$IMG" "$WORK" --kernel-version 6.12
KVER=$(cat "$IMG/kernel-version") || fail "no $IMG/kernel-version"
case "$KVER" in 6.12.*) ;; *) fail "$IMG holds kernel $KVER, not a 6.12 one" ;; esac
smoke_disk "$WORK"

cat "$ROOT/tests/guest/virtio-iommu-checks.sh" "$ROOT/tests/guest/smoke.sh" |
	grep -v '^exit 0$' >"$WORK/virtio-iommu.sh" || fail "cannot write $WORK/virtio-iommu.sh"
echo "exit 0" >>"$WORK/virtio-iommu.sh"

# iomem=relaxed: the checks read the device's virtio registers with devmem
# while the driver holds them. The disk is the only device behind the
# IOMMU (the virtio-iommu device itself is not translated).
# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinux" --initrd "$IMG/initrd.img" \
	--test "$WORK/virtio-iommu.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet iommu.strict=1 iomem=relaxed vm.iommu_type=DMA vm.modules=virtio_pci,virtio_iommu,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF" \
	-- "$QEMU" -accel kvm -cpu host -M q35 -m 512 -smp 2 -display none -nodefaults -no-reboot \
	-no-user-config -serial stdio -device virtio-iommu-pci \
	-drive "file=$DISK,format=raw,if=none,id=disk0" \
	-device virtio-blk-pci,drive=disk0,iommu_platform=on,disable-legacy=on
rc=$?
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc (log $WORK/serial.log)"

smoke_disk_check "$WORK"
TXT=$WORK/serial.txt
tr -d '\r' <"$WORK/serial.log" >"$TXT" || fail "cannot read $WORK/serial.log"
grep -q "^virtio-iommu: the disk's IOMMU group [0-9]*: type DMA," "$TXT" ||
	fail "the guest's report of the disk's IOMMU group is not in $WORK/serial.log"
grep -E "^virtio-iommu: (driver |device features|driver features|the disk's IOMMU group)" "$TXT"
echo "virtio-iommu-qemu: PASS: kernel $KVER; the disk's DMA went through virtio-iommu (strict);" \
	"the guest's write is in the image at offset $OFF, the rest is unchanged"
