#!/usr/bin/env bash
# guest_virtio_iommu_inject: a fault injected at run time through viommu-vmm's
# control socket reaches Linux's virtio_iommu driver (Debian 6.12 guest,
# iommu.strict=1) as a fault event on the virtio-iommu's event queue. The
# guest (virtio-iommu-checks.sh, then virtio-iommu-inject-guest.sh) prints
# VTD-INJECT-READY; vtd-inject-vmm.sh, the VMM command given to
# scripts/guest-run (the same driver as guest_vtd_inject's), then adds a rule
# with viommu-ctl: 00:01.0's (virtio-blk) DMA reads fault with reason
# permission, once. The guest must log "page fault from EP 8 at ADDR [R]"
# and see the event queue's interrupt count rise; back here, the fault
# stream that viommu-ctl followed must hold the same record (same requester,
# access and address: a virtio-iommu event carries the whole address), the
# rule must show one firing, and the front-end must count one event sent.
#
#   tests/guest/virtio-iommu-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no 6.12 kernel package can be obtained), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: virtio-iommu-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
CTL=${2:?usage: virtio-iommu-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
IMG=${3:?usage: virtio-iommu-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
WORK=${4:?usage: virtio-iommu-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}

fail() {
	echo "virtio-iommu-inject: FAIL: $*" >&2
	[ -f "$WORK/driver.log" ] && sed 's/^/  | /' "$WORK/driver.log" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"
[ -x "$CTL" ] || fail "$CTL is not an executable (build the viommu-ctl target)"

guest_prepare "virtio-iommu-inject" "$IMG" "$WORK" --kernel-version 6.12
WORK=$(cd "$WORK" && pwd -P)
DISK=$WORK/disk.img
head -c $((4 * 1024 * 1024)) /dev/urandom >"$DISK" || fail "cannot write $DISK"
cat "$ROOT/tests/guest/virtio-iommu-checks.sh" "$ROOT/tests/guest/virtio-iommu-inject-guest.sh" |
	grep -v '^exit 0$' >"$WORK/inject.sh"
echo "exit 0" >>"$WORK/inject.sh"
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/inject.sh" --workdir "$WORK" --timeout 280 \
	--append "quiet iommu.strict=1 deferred_probe_timeout=60 vm.devmem=0 vm.iommu_type=DMA vm.modules=virtio_pci,virtio_iommu,virtio_blk vm.timeout=200" \
	-- "$ROOT/tests/guest/vtd-inject-vmm.sh" "$CTL" "$WORK" \
	"$VMM" --memory 512 --cpus 2 --disk "$DISK" --serial stdio --iommu virtio
rc=$?
LOG=$WORK/serial.log
[ -f "$WORK/driver.log" ] && sed 's/^/virtio-iommu-inject: driver: /' "$WORK/driver.log"
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc (serial log: $LOG)"

gline=$(grep -a -m1 '^VIO-INJECT-FAULT: ' "$LOG" | tr -d '\r')
[ -n "$gline" ] || fail "the guest printed no VIO-INJECT-FAULT line"
gaddr=$(sed -nE 's/.* at (0x[0-9a-f]+) .*/\1/p' <<<"$gline")
[ -n "$gaddr" ] || fail "no fault address in: $gline"
echo "virtio-iommu-inject: guest: ${gline#VIO-INJECT-FAULT: }"

inject_check_host "$WORK"
echo "virtio-iommu-inject: host: $REC"
haddr=$HADDR
# A virtio-iommu fault event carries the whole address.
[ $((haddr)) -eq $((gaddr)) ] || fail "the guest's fault address $gaddr is not the stream's $haddr"
echo "virtio-iommu-inject: PASS: the injected fault at $haddr reached the guest's virtio_iommu driver as an event and the host's stream"
