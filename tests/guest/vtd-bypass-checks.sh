#!/bin/sh
# Guest side of guest_vtd_bypass (the host appends smoke.sh, which checks
# /dev/vda through the IOMMU, after this): the second disk, given to
# viommu-vmm with iommu=off, is behind no remapping unit. Linux's own
# intel_iommu driver must see that from the DMAR table alone: vda is in an
# IOMMU group with a strict DMA domain and its interrupts are remapped, vdb
# has no IOMMU group and no remapped MSI, and vdb's data is right both ways
# with its DMA untranslated.
#   vm.disk2_size=BYTES vm.disk2_sha256=HEX vm.write2_offset=BYTES
bfail() {
	echo "bypass: FAIL: $*"
	dmesg | grep -iE "DMAR|iommu|remap" | tail -40
	exit 1
}
i=0
while { [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; } && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] && [ -b /dev/vdb ] || bfail "want /dev/vda and /dev/vdb after 5 s; have: $(ls /dev/vd* 2>/dev/null | tr '\n' ' ')"
pci_of() { dirname "$(readlink -f "/sys/block/$1/device")"; }
a=$(pci_of vda)
b=$(pci_of vdb)
echo "bypass: vda on $(basename "$a"), vdb on $(basename "$b")"
[ -e "$a/iommu_group" ] || bfail "vda ($(basename "$a")) has no IOMMU group: the unit does not cover it"
type=$(cat "$a/iommu_group/type")
[ "$type" = DMA ] || bfail "vda's domain type is '$type', not DMA (strict)"
[ ! -e "$b/iommu_group" ] ||
	bfail "vdb ($(basename "$b")) is in IOMMU group $(basename "$(readlink "$b/iommu_group")"): iommu=off did not leave it out"
echo "bypass: vda in IOMMU group $(basename "$(readlink "$a/iommu_group")") (domain $type); vdb in none"
# Interrupts: /proc/interrupts names the chip; vdb's are virtio1*. Linux 6.1
# with interrupt remapping on gives a device that no unit covers no MSI
# domain at all (intel_irq_remap_add_device sets the unit's, which is none),
# so virtio falls back to INTx through the IOAPIC (itself remapped); with
# intremap=off it gets plain PCI-MSI. Either way its MSIs are never remapped.
grep -E "virtio" /proc/interrupts | sed 's/^/bypass: irq /' | tr -s ' '
va=$(basename "$(readlink -f /sys/block/vda/device)")
vb=$(basename "$(readlink -f /sys/block/vdb/device)")
if [ "${VM_IR_MODE:?vm.ir_mode missing}" = off ]; then
	# Remapping off (intremap=off): both disks get plain MSIs, vdb's
	# delivered by the VMM without the unit (and vda's through the unit's
	# remapping-off path).
	grep -E " PCI-MSI.*$va-" /proc/interrupts >/dev/null || bfail "vda ($va) has no plain PCI-MSI interrupt"
	grep -E " PCI-MSI.*$vb-" /proc/interrupts >/dev/null || bfail "vdb ($vb) has no plain PCI-MSI interrupt"
	echo "bypass: remapping off: vda's and vdb's interrupts are plain MSIs"
fi
grep -E "IR-PCI-MSI.*$va-" /proc/interrupts >/dev/null || [ "$VM_IR_MODE" = off ] || bfail "vda ($va) has no IR-PCI-MSI interrupt"
grep -E "IR-PCI-MSI.*$vb(-|\$)" /proc/interrupts >/dev/null && bfail "vdb ($vb)'s MSIs are remapped (IR-PCI-MSI)"
if grep -E " PCI-MSI.*$vb-" /proc/interrupts >/dev/null; then
	echo "bypass: vdb's interrupts are plain (not remapped) MSIs"
elif [ "$VM_IR_MODE" != off ] && grep -E "IO-APIC.*$vb\$" /proc/interrupts >/dev/null; then
	echo "bypass: vdb has no MSI domain with remapping on (Linux's rule for a device no unit covers): INTx through the IOAPIC"
else
	bfail "vdb ($vb) has neither a plain MSI nor an INTx interrupt"
fi
size=$(($(cat /sys/block/vdb/size) * 512))
[ "$size" = "${VM_DISK2_SIZE:?vm.disk2_size missing}" ] || bfail "/dev/vdb is $size bytes, expected $VM_DISK2_SIZE"
sum=$(sha256sum /dev/vdb | cut -d' ' -f1)
[ "$sum" = "${VM_DISK2_SHA256:?}" ] || bfail "/dev/vdb SHA-256 $sum, expected $VM_DISK2_SHA256"
echo "bypass: /dev/vdb $size bytes, SHA-256 matches"
off=${VM_WRITE2_OFFSET:?}
yes VIOMMU-BYPASS-PATTERN | head -c 65536 >/tmp/pattern2
want=$(sha256sum /tmp/pattern2 | cut -d' ' -f1)
dd if=/tmp/pattern2 of=/dev/vdb bs=4096 seek=$((off / 4096)) conv=notrunc,fsync 2>/dev/null || bfail "writing /dev/vdb at $off"
sync
echo 3 >/proc/sys/vm/drop_caches
blockdev --flushbufs /dev/vdb
got=$(dd if=/dev/vdb bs=4096 skip=$((off / 4096)) count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || bfail "re-read of vdb's written region: SHA-256 $got, expected $want"
echo "bypass: wrote and re-read 64 KiB of /dev/vdb at offset $off"
dmesg | grep -Ei "DMAR.*(fault|error|firmware bug)" && bfail "the driver logged faults, errors or firmware bugs"
exit 0
