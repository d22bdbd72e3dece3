#!/usr/bin/env bash
# guest_vtd_bypass: viommu-vmm --iommu vtd with two disks, the second given
# iommu=off. The DMAR table then lists the covered devices instead of
# including them all, and Linux's intel_iommu driver must leave the second
# disk out on its own: vtd-checks.sh (DMAR, queued invalidation, interrupt
# remapping), vtd-bypass-checks.sh (vdb in no IOMMU group, no remapped MSI, its data
# right both ways) and smoke.sh (vda through the IOMMU). Back on the host: each
# image holds its guest write and nothing else changed, and viommu-vmm
# recorded no fault.
#
#   tests/guest/vtd-bypass.sh VIOMMU_VMM IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vtd-bypass.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: vtd-bypass.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: vtd-bypass.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}

fail() {
	echo "vtd-bypass: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vtd-bypass" "$IMG" "$WORK"
smoke_disk "$WORK"
# The second disk: other random bytes, another size, its own write offset.
DISK2=$WORK/disk2.img
SIZE2=$((3 * 1024 * 1024))
OFF2=$((2 * 1024 * 1024))
LEN2=65536
head -c "$SIZE2" /dev/urandom >"$DISK2" || fail "cannot write $DISK2"
cp "$DISK2" "$WORK/disk2.orig" || fail "cannot copy $DISK2"
SHA2=$(sha256sum "$DISK2" | cut -d' ' -f1)

cat "$ROOT/tests/guest/vtd-checks.sh" "$ROOT/tests/guest/vtd-bypass-checks.sh" "$ROOT/tests/guest/smoke.sh" |
	grep -v '^exit 0$' >"$WORK/bypass.sh"
echo "exit 0" >>"$WORK/bypass.sh"
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/bypass.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet intel_iommu=on iommu.strict=1 vm.ir_mode=x2apic vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF vm.disk2_size=$SIZE2 vm.disk2_sha256=$SHA2 vm.write2_offset=$OFF2" \
	-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --disk "$DISK2,iommu=off" --serial stdio --iommu vtd --stats \
	2>"$WORK/vmm.err"
rc=$?
cat "$WORK/vmm.err" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

smoke_disk_check "$WORK"
yes VIOMMU-BYPASS-PATTERN | head -c "$LEN2" >"$WORK/pattern2"
cmp -s -n "$LEN2" -i "$OFF2:0" "$DISK2" "$WORK/pattern2" ||
	fail "the second image does not hold the pattern at offset $OFF2 after the guest wrote it"
cmp -s -n "$OFF2" "$DISK2" "$WORK/disk2.orig" || fail "the second image changed before offset $OFF2"
cmp -s -i "$((OFF2 + LEN2))" "$DISK2" "$WORK/disk2.orig" || fail "the second image changed after offset $((OFF2 + LEN2))"
faults=$(sed -n 's/.*iommu translations=.* faults=\([0-9]*\) .*/\1/p' "$WORK/vmm.err" | tail -n 1)
[ "$faults" = 0 ] || fail "viommu-vmm counted faults='$faults' (want 0)"
irq_faults=$(sed -n 's/.*iommu translations=.* irq_faults=\([0-9]*\).*/\1/p' "$WORK/vmm.err" | tail -n 1)
[ "$irq_faults" = 0 ] || fail "viommu-vmm counted irq_faults='$irq_faults' (want 0)"
echo "vtd-bypass: PASS: both disks hold exactly their guest writes; vdb bypassed the IOMMU, vda went through it"
