#!/usr/bin/env bash
# guest_vtd_bypass: viommu-vmm --iommu vtd with two disks, the second given
# iommu=off. The DMAR table then lists the covered devices instead of
# including them all, and Linux's intel_iommu driver must leave the second
# disk out on its own: vtd-checks.sh (DMAR, queued invalidation, interrupt
# remapping), vtd-bypass-checks.sh (vdb in no IOMMU group, no remapped MSI, its data
# right both ways) and smoke.sh (vda through the IOMMU). Back on the host: each
# image holds its guest write and nothing else changed, and viommu-vmm
# recorded no fault. Twice: with interrupt remapping on (vdb on INTx through
# the remapped IOAPIC, as Linux gives a device no unit covers no MSI), and
# with intremap=off (vdb on plain MSIs, which the VMM delivers without the
# unit).
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
cat "$ROOT/tests/guest/vtd-checks.sh" "$ROOT/tests/guest/vtd-bypass-checks.sh" "$ROOT/tests/guest/smoke.sh" |
	grep -v '^exit 0$' >"$WORK/bypass.sh"
echo "exit 0" >>"$WORK/bypass.sh"

# boot IR_MODE EXTRA_APPEND: one boot in WORK/IR_MODE with fresh disks, and
# the host's checks after it.
boot() {
	local mode=$1 extra=$2 W=$WORK/$1
	mkdir -p "$W" || fail "cannot create $W"
	cp "$WORK/bypass.sh" "$W/bypass.sh" || fail "cannot copy the guest script"
	smoke_disk "$W"
	DISK2=$W/disk2.img
	SIZE2=$((3 * 1024 * 1024))
	OFF2=$((2 * 1024 * 1024))
	LEN2=65536
	head -c "$SIZE2" /dev/urandom >"$DISK2" || fail "cannot write $DISK2"
	cp "$DISK2" "$W/disk2.orig" || fail "cannot copy $DISK2"
	SHA2=$(sha256sum "$DISK2" | cut -d' ' -f1)

	"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
		--test "$W/bypass.sh" --workdir "$W" --timeout 240 \
		--append "quiet intel_iommu=on iommu.strict=1 $extra vm.ir_mode=$mode vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF vm.disk2_size=$SIZE2 vm.disk2_sha256=$SHA2 vm.write2_offset=$OFF2" \
		-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --disk "$DISK2,iommu=off" --serial stdio --iommu vtd --stats \
		2>"$W/vmm.err"
	rc=$?
	cat "$W/vmm.err" >&2
	[ "$rc" -eq 0 ] || fail "[$mode] scripts/guest-run failed with status $rc"

	smoke_disk_check "$W"
	yes VIOMMU-BYPASS-PATTERN | head -c "$LEN2" >"$W/pattern2"
	cmp -s -n "$LEN2" -i "$OFF2:0" "$DISK2" "$W/pattern2" ||
		fail "[$mode] the second image does not hold the pattern at offset $OFF2 after the guest wrote it"
	cmp -s -n "$OFF2" "$DISK2" "$W/disk2.orig" || fail "[$mode] the second image changed before offset $OFF2"
	cmp -s -i "$((OFF2 + LEN2))" "$DISK2" "$W/disk2.orig" || fail "[$mode] the second image changed after offset $((OFF2 + LEN2))"
	faults=$(sed -n 's/.*iommu translations=.* faults=\([0-9]*\) .*/\1/p' "$W/vmm.err" | tail -n 1)
	[ "$faults" = 0 ] || fail "[$mode] viommu-vmm counted faults='$faults' (want 0)"
	irq_faults=$(sed -n 's/.*iommu translations=.* irq_faults=\([0-9]*\).*/\1/p' "$W/vmm.err" | tail -n 1)
	[ "$irq_faults" = 0 ] || fail "[$mode] viommu-vmm counted irq_faults='$irq_faults' (want 0)"
	remapped=$(sed -n 's/.*iommu translations=.* irqs_remapped=\([0-9]*\) .*/\1/p' "$W/vmm.err" | tail -n 1)
	if [ "$mode" = off ]; then
		[ "$remapped" = 0 ] || fail "[$mode] viommu-vmm remapped $remapped interrupts with remapping off"
	else
		[ "${remapped:-0}" -gt 0 ] || fail "[$mode] viommu-vmm remapped no interrupt"
	fi
	echo "vtd-bypass: [$mode] both disks hold exactly their guest writes; vdb bypassed the IOMMU, vda went through it (irqs_remapped=$remapped)"
}

# Remapping on (x2APIC): Linux gives vdb, which no unit covers, no MSI at
# all, so it runs on INTx through the remapped IOAPIC.
boot x2apic ""
# Remapping off: vdb gets plain MSIs, which the VMM delivers without the
# unit (vmm_deliver_msi_direct).
boot off "intremap=off"
echo "vtd-bypass: PASS: both boots"
