#!/bin/sh
# Guest side of guest_vtd_*: Linux's own intel_iommu driver runs on viommu's
# VT-d. Checks what the driver says and what /proc shows, then (the host
# appends smoke.sh after this) the virtio-blk data checks through the IOMMU.
#   vm.ir_mode=x2apic|xapic|off   the interrupt remapping mode expected (off:
#                                 the guest booted with intremap=off)
vfail() {
	echo "vtd: FAIL: $*"
	dmesg | grep -iE "DMAR|iommu|remap" | tail -40
	exit 1
}
want() { # regex description
	dmesg | grep -Eq "$1" || vfail "dmesg has no '$1' ($2)"
	echo "vtd: dmesg: $(dmesg | grep -E "$1" | head -1 | sed 's/^\[[^]]*\] //')"
}
want "DMAR: IOMMU enabled" "the driver took the unit"
want "dmar[0-9]+: Using Queued invalidation" "queued invalidation in use"
if [ "${VM_IR_MODE:?vm.ir_mode missing}" = off ]; then
	dmesg | grep -Eq "DMAR-IR: Enabled IRQ remapping" && vfail "interrupt remapping is on (want it off: intremap=off)"
	echo "vtd: interrupt remapping off, as asked (intremap=off)"
else
	want "DMAR-IR: Enabled IRQ remapping in $VM_IR_MODE mode" "interrupt remapping"
fi
dmesg | grep -Ei "DMAR.*(fault|error)|DMAR-IR:.*(fail|error)" && vfail "the driver logged faults or errors during boot"
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
grep -E "virtio" /proc/interrupts | sed 's/^/vtd: irq /' | tr -s ' '
if [ "$VM_IR_MODE" = off ]; then
	grep -E " PCI-MSI.*virtio" /proc/interrupts >/dev/null || vfail "no plain PCI-MSI interrupt for the virtio device"
	grep -E "IR-PCI-MSI" /proc/interrupts >/dev/null && vfail "a remapped (IR-PCI-MSI) interrupt with remapping off"
	echo "vtd: the virtio device's interrupts are plain MSIs (remapping off)"
else
	grep -E "IR-PCI-MSI.*virtio" /proc/interrupts >/dev/null || vfail "no IR-PCI-MSI interrupt for the virtio device"
	echo "vtd: the virtio device's interrupts are remapped (IR-PCI-MSI)"
fi
