#!/bin/sh
# Runs in L1 (the nested harness) as the VMM command of a VFIO guest test:
# binds the host PCI function with the given vendor:device to vfio-pci, then
# runs the VMM with `--vfio-pci BDF` in front of its other arguments.
#
#   vfio-bind.sh VENDOR:DEVICE VMM [ARGS...]
#
# L1's QEMU provides the device (e.g. -device edu) behind its own IOMMU; its
# kernel needs the vfio, vfio_iommu_type1 and vfio_pci modules. With
# VFIO_BIND_DMESG=1 the VMM's status is kept and L1's IOMMU fault lines
# (DMAR: [DMA ...]) follow on stderr once it exits.
set -u
want=${1:?usage: vfio-bind.sh VENDOR:DEVICE VMM [ARGS...]}
shift
vendor=0x${want%%:*}
device=0x${want#*:}
bdf=""
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = "$vendor" ] && [ "$(cat "$d/device")" = "$device" ]; then
		bdf=${d##*/}
		break
	fi
done
if [ -z "$bdf" ]; then
	echo "vfio-bind: no $want device in L1" >&2
	exit 1
fi
d=/sys/bus/pci/devices/$bdf
if [ -e "$d/driver" ] && [ "$(basename "$(readlink "$d/driver")")" != vfio-pci ]; then
	echo "$bdf" >"$d/driver/unbind"
fi
echo vfio-pci >"$d/driver_override"
echo "$bdf" >/sys/bus/pci/drivers_probe
drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
if [ "$drv" != vfio-pci ]; then
	echo "vfio-bind: $bdf is bound to '${drv:-nothing}', not vfio-pci" >&2
	exit 1
fi
echo "vfio-bind: $want at $bdf bound to vfio-pci (IOMMU group $(basename "$(readlink "$d/iommu_group")"))" >&2
if [ "${VFIO_BIND_DMESG:-0}" = 1 ]; then
	# Keep the VMM's status, then show what L1's IOMMU reported meanwhile.
	"$@" --vfio-pci "$bdf"
	rc=$?
	dmesg | grep 'DMAR: \[DMA' >&2
	exit "$rc"
fi
exec "$@" --vfio-pci "$bdf"
