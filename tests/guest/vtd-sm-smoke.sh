#!/usr/bin/env bash
# guest_vtd_sm: Linux's intel_iommu driver on viommu-vmm's VT-d in scalable mode
# (--iommu vtd,scalable=on; intel_iommu=on,sm_on iommu.strict=1): DMAR, queued
# invalidation (256-bit descriptors) and interrupt remapping in use, the unit in
# scalable mode (vtd-sm-checks.sh), then virtio-blk data through the IOMMU, each
# DMA translated through the guest's PASID entry and first-level table.
# Builds (or reuses) the Debian guest image, then boots its bzImage under viommu-vmm
# -- directly where the host's KVM can boot Linux, else inside the
# nested L1 of scripts/nested-run -- with 2 vCPUs and a virtio-blk disk, and
# runs vtd-checks.sh, vtd-sm-checks.sh and smoke.sh in the guest (CPUs online, disk
# checksum, write and re-read).
# Back on the host it checks that exactly the region the guest wrote changed.
#
#   tests/guest/vtd-sm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR x2apic|xapic|iq-thread
#
# iq-thread: x2APIC with --iommu vtd,scalable=on,iq-thread=on (register reads,
# devmem's included, from the read-only mirror; the doorbell of the queue of
# 256-bit descriptors served by the VMM's I/O thread, whose --stats count must
# show it was).
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vtd-sm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: vtd-sm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: vtd-sm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR MODE}
MODE=${4:-x2apic}

fail() {
	echo "vtd-sm-smoke: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vtd-sm-smoke" "$IMG" "$WORK"
smoke_disk "$WORK"

X2=on
EXTRA=""
IR_MODE=$MODE
[ "$MODE" = xapic ] && X2=off
if [ "$MODE" = iq-thread ]; then
	EXTRA=",iq-thread=on"
	IR_MODE=x2apic
fi
cat "$ROOT/tests/guest/vtd-checks.sh" "$ROOT/tests/guest/vtd-sm-checks.sh" "$ROOT/tests/guest/smoke.sh" |
	grep -v '^exit 0$' >"$WORK/vtd.sh"
echo "exit 0" >>"$WORK/vtd.sh"
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/vtd.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet intel_iommu=on,sm_on iommu.strict=1 iomem=relaxed vm.ir_mode=$IR_MODE vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF" \
	-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --serial stdio --iommu "vtd,x2apic=$X2,scalable=on$EXTRA" --stats \
	2>"$WORK/vmm.err"
rc=$?
cat "$WORK/vmm.err" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

# The guest's write reached the image, and nothing else changed.
smoke_disk_check "$WORK"
if [ "$MODE" = iq-thread ]; then
	rung=$(sed -n 's/.*vtd iq_doorbells=\([0-9]*\).*/\1/p' "$WORK/vmm.err" | tail -n 1)
	[ -n "$rung" ] && [ "$rung" -gt 0 ] || fail "no invalidation queue doorbell was served by the I/O thread (iq_doorbells='$rung')"
	echo "vtd-sm-smoke: PASS: $rung invalidation queue doorbells served by the I/O thread"
fi
echo "vtd-sm-smoke: PASS: the guest's write is in the image at offset $OFF; the rest is unchanged"
