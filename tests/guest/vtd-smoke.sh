#!/usr/bin/env bash
# guest_vtd_*: Linux's intel_iommu driver on viommu-vmm's VT-d (iommu.strict=1): DMAR, queued
# invalidation and interrupt remapping in use, then virtio-blk data through the IOMMU.
# Builds (or reuses) the Debian guest image, then boots its bzImage under viommu-vmm
# -- directly where the host's KVM can boot Linux, else inside the
# nested L1 of scripts/nested-run -- with 2 vCPUs and a virtio-blk disk, and
# runs smoke.sh in the guest (CPUs online, disk checksum, write and re-read).
# Back on the host it checks that exactly the region the guest wrote changed.
#
#   tests/guest/vtd-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR x2apic|xapic|iq-thread [sm]
#
# iq-thread: x2APIC with --iommu vtd,iq-thread=on (register reads from the
# read-only mirror, the queue doorbell served by the I/O thread); the VMM's
# --stats must show doorbells served there.
# sm (guest_vtd_sm*): the unit in scalable mode (--iommu vtd,scalable=on;
# intel_iommu=on,sm_on), and the guest also runs vtd-sm-checks.sh: the unit
# offers scalable mode and runs in it (256-bit descriptors, RTADDR.TTM = 01), so
# each DMA is translated through the guest's PASID entry and first-level table.
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vtd-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: vtd-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: vtd-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR MODE}
MODE=${4:-x2apic}

fail() {
	echo "vtd-smoke: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vtd-smoke" "$IMG" "$WORK"
smoke_disk "$WORK"

SM=${5:-}
X2=on
EXTRA=""
IR_MODE=$MODE
GUEST_CHECKS=("$ROOT/tests/guest/vtd-checks.sh")
KARGS="intel_iommu=on"
if [ "$SM" = sm ]; then
	EXTRA=",scalable=on"
	GUEST_CHECKS+=("$ROOT/tests/guest/vtd-sm-checks.sh")
	# iomem=relaxed: vtd-sm-checks.sh reads the unit's registers with devmem.
	KARGS="intel_iommu=on,sm_on iomem=relaxed"
elif [ -n "$SM" ]; then
	fail "the fifth argument is 'sm' or nothing, not '$SM'"
fi
[ "$MODE" = xapic ] && X2=off
if [ "$MODE" = iq-thread ]; then
	# x2APIC, with register reads from the read-only mirror and the
	# invalidation queue served by the VMM's I/O thread.
	EXTRA="$EXTRA,iq-thread=on"
	IR_MODE=x2apic
fi
cat "${GUEST_CHECKS[@]}" "$ROOT/tests/guest/smoke.sh" | grep -v '^exit 0$' >"$WORK/vtd.sh"
echo "exit 0" >>"$WORK/vtd.sh"
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/vtd.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet $KARGS iommu.strict=1 vm.ir_mode=$IR_MODE vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF" \
	-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --serial stdio --iommu "vtd,x2apic=$X2$EXTRA" --stats \
	2>"$WORK/vmm.err"
rc=$?
cat "$WORK/vmm.err" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

smoke_disk_check "$WORK"
if [ "$MODE" = iq-thread ]; then
	# The guest's invalidations went through the ioeventfd doorbells.
	rung=$(sed -n 's/.*vtd iq_doorbells=\([0-9]*\).*/\1/p' "$WORK/vmm.err" | tail -n 1)
	[ -n "$rung" ] && [ "$rung" -gt 0 ] || fail "no invalidation queue doorbell was served by the I/O thread (iq_doorbells='$rung')"
	echo "vtd-smoke: PASS: $rung invalidation queue doorbells served by the I/O thread"
fi
echo "vtd-smoke: PASS: the guest's write is in the image at offset $OFF; the rest is unchanged"
