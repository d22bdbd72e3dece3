#!/usr/bin/env bash
# guest_virtio_iommu: Linux's virtio_iommu driver on viommu-vmm's virtio-iommu
# (--iommu virtio), iommu.strict=1, with a virtio-blk disk behind it. Builds (or
# reuses) the Debian 6.12 guest image (only 6.12 has the virtio_iommu driver
# and ACPI VIOT), boots it under viommu-vmm -- directly where the host's KVM
# can boot Linux, else inside the nested L1 of scripts/nested-run -- and runs
# the same guest checks as the QEMU reference (guest_virtio_iommu_qemu):
# virtio-iommu-checks.sh (the driver bound, the device's identity, features
# and configuration, the disk in an IOMMU group of type DMA, the VIOT table)
# and smoke.sh (checksum, write, re-read); a second disk given with iommu=off
# is in no IOMMU group and reads right (virtio-iommu-bypass-checks.sh, first). Back on the host: exactly the
# region the guest wrote changed, and the VMM's --stats show that the guest
# attached the disk and mapped and unmapped its buffers through the device
# (strict: an UNMAP per request), with no request refused.
#
#   tests/guest/virtio-iommu-vmm.sh VIOMMU_VMM IMAGE_DIR WORK_DIR
#
# deferred_probe_timeout=60: Debian's 6.12 has virtio_pci built in, so the
# disk's probe waits for the virtio_iommu module; the kernel's default wait
# (10 s past its last initcall) is short for a nested, emulated boot.
# Exit status: 0 pass, 77 skip (no 6.12 kernel package can be obtained), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: virtio-iommu-vmm.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: virtio-iommu-vmm.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: virtio-iommu-vmm.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}

fail() {
	echo "virtio-iommu-vmm: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"
guest_prepare "virtio-iommu-vmm" "$IMG" "$WORK" --kernel-version 6.12
KVER=$(cat "$IMG/kernel-version") || fail "no $IMG/kernel-version"
case "$KVER" in 6.12.*) ;; *) fail "$IMG holds kernel $KVER, not a 6.12 one" ;; esac
smoke_disk "$WORK"

# A second disk with iommu=off: left out of the VIOT table, untranslated.
DISK2=$WORK/disk2.img
head -c $((1024 * 1024)) /dev/urandom >"$DISK2" || fail "cannot write $DISK2"
SHA2=$(sha256sum "$DISK2" | cut -d' ' -f1)

cat "$ROOT/tests/guest/virtio-iommu-bypass-checks.sh" "$ROOT/tests/guest/virtio-iommu-checks.sh" "$ROOT/tests/guest/smoke.sh" |
	grep -v '^exit 0$' >"$WORK/virtio-iommu.sh" || fail "cannot write $WORK/virtio-iommu.sh"
echo "exit 0" >>"$WORK/virtio-iommu.sh"

"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/virtio-iommu.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet iommu.strict=1 deferred_probe_timeout=60 vm.devmem=0 vm.iommu_type=DMA vm.modules=virtio_pci,virtio_iommu,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF vm.vdb_sha256=$SHA2" \
	-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --disk "$DISK2,ro,iommu=off" --serial stdio --iommu virtio --stats \
	2>"$WORK/vmm.err"
rc=$?
cat "$WORK/vmm.err" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

smoke_disk_check "$WORK"
TXT=$WORK/serial.txt
tr -d '\r' <"$WORK/serial.log" >"$TXT" || fail "cannot read $WORK/serial.log"
grep -q "^virtio-iommu: the disk's IOMMU group [0-9]*: type DMA," "$TXT" ||
	fail "the guest's report of the disk's IOMMU group is not in $WORK/serial.log"
grep -E "^virtio-iommu: (driver |device features|driver features|the disk's IOMMU group)" "$TXT"
grep -q "^virtio-iommu-bypass: the iommu=off disk, .* is in no IOMMU group and its SHA-256 matches" "$TXT" ||
	fail "the guest's report of the iommu=off disk is not in $WORK/serial.log"

# The VMM's view: the guest attached the disk and mapped and unmapped
# through the device, and no request was refused.
line=$(grep 'viommu-vmm: virtio-iommu requests=' "$WORK/vmm.err" | tail -n 1)
[ -n "$line" ] || fail "no virtio-iommu counters in the VMM's --stats"
stat() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$line"; }
[ "$(stat attaches)" -ge 1 ] || fail "the guest attached nothing ($line)"
[ "$(stat maps)" -ge 100 ] || fail "fewer than 100 MAP requests ($line)"
[ "$(stat unmaps)" -ge 100 ] || fail "fewer than 100 UNMAP requests: not strict? ($line)"
[ "$(stat failed)" -eq 0 ] || fail "requests refused ($line)"
echo "virtio-iommu-vmm: PASS: kernel $KVER; the disk's DMA went through viommu-vmm's virtio-iommu (strict):" \
	"${line#viommu-vmm: }; the guest's write is in the image at offset $OFF, the rest is unchanged"
