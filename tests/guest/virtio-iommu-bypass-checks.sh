#!/bin/sh
# Guest side of guest_virtio_iommu, run before virtio-iommu-checks.sh and
# smoke.sh: of the guest's two disks, the one given to viommu-vmm with
# iommu=off is behind no IOMMU (the VIOT table leaves it out): its PCI
# function has no IOMMU group, and its data reads right (vm.vdb_sha256: the
# host's checksum of its image). Its probe does not wait for the IOMMU
# driver, so it usually comes first and takes the name vda: this finds which
# disk is which and sets VM_DISK_DEV to the translated one for the scripts
# after it.
bfail() {
	echo "virtio-iommu-bypass: FAIL: $*"
	exit 1
}
[ -n "${VM_VDB_SHA256:-}" ] || bfail "no vm.vdb_sha256 on the command line"
i=0
while { [ ! -b /dev/vda ] || [ ! -b /dev/vdb ]; } && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/vda ] && [ -b /dev/vdb ] || bfail "not two disks after 10 s: $(ls /dev/vd* 2>/dev/null | tr '\n' ' ')"
bypass="" translated=""
for d in vda vdb; do
	pci=$(basename "$(readlink -f "/sys/block/$d/device/..")")
	if [ -e "/sys/bus/pci/devices/$pci/iommu_group" ]; then
		translated=$d
	else
		bypass=$d
		bpci=$pci
	fi
done
[ -n "$bypass" ] || bfail "both disks are in an IOMMU group"
[ -n "$translated" ] || bfail "neither disk is in an IOMMU group"
sum=$(sha256sum "/dev/$bypass" | cut -d' ' -f1)
[ "$sum" = "$VM_VDB_SHA256" ] || bfail "/dev/$bypass's SHA-256 is $sum, the host's $VM_VDB_SHA256"
echo "virtio-iommu-bypass: the iommu=off disk, /dev/$bypass ($bpci), is in no IOMMU group and its SHA-256 matches; the translated one is /dev/$translated"
VM_DISK_DEV=$translated
