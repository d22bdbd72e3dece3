#!/usr/bin/env bash
# guest_vtd_inject: a fault injected at run time through viommu-vmm's control
# socket reaches Linux's intel_iommu driver (intel_iommu=on iommu.strict=1).
# The guest (vtd-checks.sh, then vtd-inject-guest.sh) prints VTD-INJECT-READY;
# vtd-inject-vmm.sh, the VMM command given to scripts/guest-run, then adds a
# rule with viommu-ctl: 00:01.0's (virtio-blk) DMA reads fault with reason
# permission, once. The guest must log "DMAR: [DMA Read NO_PASID] Request
# device [00:01.0] fault addr ... [fault reason 0x06]" and see its DMAR fault
# interrupt count rise; back here, the fault stream that viommu-ctl followed
# must hold the same record (same requester, access, page), the rule must
# show one firing, and the stats must count the fault.
#
#   tests/guest/vtd-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR [sm]
#
# sm (guest_vtd_sm_inject): the unit in scalable mode (--iommu
# vtd,scalable=on; intel_iommu=on,sm_on), the guest also runs vtd-sm-checks.sh,
# and the fault reaches the driver through the scalable-mode fault records: the
# guest must log "[fault reason 0x86] SM: No read permission for Read/AtomicOp
# request" (SGN.7) instead of legacy 0x06.
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
VMM=${1:?usage: vtd-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
CTL=${2:?usage: vtd-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
IMG=${3:?usage: vtd-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}
WORK=${4:?usage: vtd-inject.sh VIOMMU_VMM VIOMMU_CTL IMAGE_DIR WORK_DIR}

fail() {
	echo "vtd-inject: FAIL: $*" >&2
	[ -f "$WORK/driver.log" ] && sed 's/^/  | /' "$WORK/driver.log" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"
[ -x "$CTL" ] || fail "$CTL is not an executable (build the viommu-ctl target)"

guest_prepare "vtd-inject" "$IMG" "$WORK"
WORK=$(cd "$WORK" && pwd -P)
DISK=$WORK/disk.img
head -c $((4 * 1024 * 1024)) /dev/urandom >"$DISK" || fail "cannot write $DISK"

SM=${5:-}
SM_OPT=""
KARGS="intel_iommu=on"
if [ "$SM" = sm ]; then
	SM_OPT=",scalable=on"
	KARGS="intel_iommu=on,sm_on iomem=relaxed"
	{
		cat "$ROOT/tests/guest/vtd-checks.sh" "$ROOT/tests/guest/vtd-sm-checks.sh"
		sed 's/fault reason 0x06/fault reason 0x86/; s/with reason 0x06/with reason 0x86/' "$ROOT/tests/guest/vtd-inject-guest.sh"
	} | grep -v '^exit 0$' >"$WORK/inject.sh"
	grep -q 'fault reason 0x86' "$WORK/inject.sh" || fail "could not adapt vtd-inject-guest.sh to scalable mode"
elif [ -z "$SM" ]; then
	cat "$ROOT/tests/guest/vtd-checks.sh" "$ROOT/tests/guest/vtd-inject-guest.sh" | grep -v '^exit 0$' >"$WORK/inject.sh"
else
	fail "the fifth argument is 'sm' or nothing, not '$SM'"
fi
echo "exit 0" >>"$WORK/inject.sh"
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$WORK/inject.sh" --workdir "$WORK" --timeout 280 \
	--append "quiet $KARGS iommu.strict=1 vm.ir_mode=x2apic vm.modules=virtio_pci,virtio_blk vm.timeout=200" \
	-- "$ROOT/tests/guest/vtd-inject-vmm.sh" "$CTL" "$WORK" \
	"$VMM" --memory 512 --cpus 2 --disk "$DISK" --serial stdio --iommu "vtd,x2apic=on$SM_OPT"
rc=$?
LOG=$WORK/serial.log
[ -f "$WORK/driver.log" ] && sed 's/^/vtd-inject: driver: /' "$WORK/driver.log"
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc (serial log: $LOG)"

# What the guest's driver logged.
gline=$(grep -a -m1 '^VTD-INJECT-FAULT: ' "$LOG" | tr -d '\r')
[ -n "$gline" ] || fail "the guest printed no VTD-INJECT-FAULT line"
gaddr=$(sed -nE 's/.*fault addr (0x[0-9a-f]+).*/\1/p' <<<"$gline")
[ -n "$gaddr" ] || fail "no fault address in: $gline"
echo "vtd-inject: guest: ${gline#VTD-INJECT-FAULT: }"

# The rule, the stats and the host's fault stream (lib.sh).
inject_check_host "$WORK"
echo "vtd-inject: host: $REC"
haddr=$HADDR
# VT-d's fault recording registers keep the page (bits 63:12) of the address.
[ $((haddr & ~0xfff)) -eq $((gaddr & ~0xfff)) ] ||
	fail "the guest's fault address $gaddr and the stream's $haddr are not on the same page"
if grep -q "the socket file is still there" "$WORK/driver.log"; then
	fail "the socket file was left behind"
fi
echo "vtd-inject: PASS: the injected fault at $haddr reached the guest's driver and the host's stream"
