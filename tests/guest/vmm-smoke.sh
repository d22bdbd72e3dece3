#!/usr/bin/env bash
# guest_vmm_smoke: real Debian Linux on viommu-vmm, every virtio-blk DMA through libviommu.
# Builds (or reuses) the Debian guest image, then boots its bzImage under viommu-vmm
# -- directly where the host's KVM can boot Linux, else inside the
# nested L1 of scripts/nested-run -- with 2 vCPUs and a virtio-blk disk, and
# runs smoke.sh in the guest (CPUs online, disk checksum, write and re-read).
# Back on the host it checks that exactly the region the guest wrote changed.
#
#   tests/guest/vmm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vmm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
IMG=${2:?usage: vmm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}
WORK=${3:?usage: vmm-smoke.sh VIOMMU_VMM IMAGE_DIR WORK_DIR}

fail() {
	echo "vmm-smoke: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vmm-smoke" "$IMG" "$WORK"
smoke_disk "$WORK"

"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$ROOT/tests/guest/smoke.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet vm.modules=virtio_pci,virtio_blk vm.cpus=2 vm.disk_size=$SIZE vm.disk_sha256=$SHA vm.write_offset=$OFF" \
	-- "$VMM" --memory 512 --cpus 2 --disk "$DISK" --serial stdio
rc=$?
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"

smoke_disk_check "$WORK"
echo "vmm-smoke: PASS: the guest's write is in the image at offset $OFF; the rest is unchanged"
