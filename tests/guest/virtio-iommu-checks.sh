#!/bin/sh
# Guest side of guest_virtio_iommu_qemu (busybox sh under scripts/lib/guest-init,
# Debian's 6.12 kernel): Linux's virtio_iommu driver runs on a virtio-iommu
# device and the virtio-blk disk's DMA goes through it. Checks, and prints as
# a reference for other implementations of the device:
#   - the virtio_iommu driver bound to the device and registered an IOMMU
#     (/sys/class/iommu), and what it logged;
#   - the virtio-iommu device as the guest sees it: PCI vendor, device, class
#     and BDF; the virtio feature bits the device offers and those the driver
#     accepted, read from the device's common configuration (so the guest needs
#     iomem=relaxed: the driver holds those registers) and from sysfs; its
#     device-specific configuration (page size mask, input and domain ranges,
#     probe size, bypass);
#   - every PCI device with its driver and IOMMU group;
#   - the disk's device sits in an IOMMU group whose domain type is DMA or
#     DMA-FQ (DMA when the kernel got iommu.strict=1), its reserved regions;
#   - the ACPI VIOT table, dumped;
# then (the host appends smoke.sh after this) the disk's checksum, a write
# and its re-read, all through the IOMMU.
#   vm.iommu_type=DMA|DMA-FQ   the domain type the disk's group must have
vfail() {
	echo "virtio-iommu: FAIL: $*"
	dmesg | grep -iE "iommu|viot|virtio|defer" | tail -40
	exit 1
}
say() {
	echo "virtio-iommu: $*"
}

# rd32 FILE OFFSET: the little-endian 32-bit word at OFFSET of FILE, decimal.
rd32() {
	od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' '
}
rd8() {
	od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' '
}

# bits HEX32 BASE: the numbers of the bits set in HEX32, plus BASE.
bits() {
	v=$(($1))
	b=0
	out=""
	while [ "$b" -lt 32 ]; do
		[ $(((v >> b) & 1)) -eq 0 ] || out="$out $((b + $2))"
		b=$((b + 1))
	done
	echo "${out# }"
}

# virtio_cap BDF TYPE: "BAR OFFSET" of the device's virtio-pci capability of
# cfg_type TYPE (1 common, 2 notify, 3 ISR, 4 device-specific), if any.
virtio_cap() {
	cfg=/sys/bus/pci/devices/$1/config
	p=$(rd8 "$cfg" 52)
	n=0
	while [ "${p:-0}" -ne 0 ] && [ "$n" -lt 48 ]; do
		if [ "$(rd8 "$cfg" "$p")" -eq 9 ] && [ "$(rd8 "$cfg" $((p + 3)))" -eq "$2" ]; then
			echo "$(rd8 "$cfg" $((p + 4))) $(rd32 "$cfg" $((p + 8)))"
			return 0
		fi
		p=$(rd8 "$cfg" $((p + 1)))
		n=$((n + 1))
	done
	return 1
}

# pci_caps BDF: the device's PCI capabilities on one line: ID@OFFSET, and
# for the virtio-pci ones (ID 0x09) cfg_type, BAR, offset and length (and the
# notify offset multiplier), for MSI-X its table size.
pci_caps() {
	cfg=/sys/bus/pci/devices/$1/config
	p=$(rd8 "$cfg" 52)
	n=0
	out=""
	while [ "${p:-0}" -ne 0 ] && [ "$n" -lt 48 ]; do
		id=$(rd8 "$cfg" "$p")
		c=$(printf '0x%02x@0x%02x' "$id" "$p")
		case "$id" in
		9)
			c="$c(virtio type $(rd8 "$cfg" $((p + 3))) bar $(rd8 "$cfg" $((p + 4)))"
			c="$c off $(printf '0x%x' "$(rd32 "$cfg" $((p + 8)))") len $(printf '0x%x' "$(rd32 "$cfg" $((p + 12)))")"
			[ "$(rd8 "$cfg" $((p + 3)))" -ne 2 ] || c="$c mult $(rd32 "$cfg" $((p + 16)))"
			c="$c)"
			;;
		17) c="$c(MSI-X $(($(od -An -tu2 -j $((p + 2)) -N 2 "$cfg" | tr -d ' ') % 2048 + 1)) vectors)" ;;
		esac
		out="$out $c"
		p=$(rd8 "$cfg" $((p + 1)))
		n=$((n + 1))
	done
	echo "${out# }"
}

# bar_addr BDF BAR: the BAR's physical address (sysfs resource line BAR+1).
bar_addr() {
	sed -n "$(($2 + 1))p" "/sys/bus/pci/devices/$1/resource" | cut -d' ' -f1
}

# group_devices GROUP_DIR: the devices of an IOMMU group, on one line.
group_devices() {
	for gd in "$1"/devices/*; do
		printf '%s ' "$(basename "$gd")"
	done
}

# ---- the driver ---------------------------------------------------------------
lsmod | grep -q '^virtio_iommu' || vfail "the virtio_iommu module is not loaded"
dev=""
for d in /sys/bus/virtio/drivers/virtio_iommu/virtio*; do
	[ -e "$d" ] && dev=$d
done
[ -n "$dev" ] || vfail "no virtio device bound to the virtio_iommu driver"
vdev=$(basename "$dev")
say "driver virtio_iommu bound to $vdev (virtio device id $(cat "$dev/device"), vendor $(cat "$dev/vendor"))"
[ -n "$(ls /sys/class/iommu/ 2>/dev/null)" ] || vfail "/sys/class/iommu is empty"
for u in /sys/class/iommu/*; do
	say "/sys/class/iommu/$(basename "$u") -> $(readlink "$u")"
done
say "dmesg lines about the IOMMU:"
dmesg | grep -iE "iommu|viot" | grep -v "ommand line:" | sed 's/^/virtio-iommu:   /'
dmesg | grep -iE "deferred probe timeout|deferred probe pending" &&
	vfail "the kernel gave up waiting for the IOMMU driver (deferred probe timeout)"

# ---- the device -----------------------------------------------------------------
pci=$(basename "$(readlink -f "$dev/..")")
[ -e "/sys/bus/pci/devices/$pci" ] || vfail "$vdev's parent $pci is not a PCI device"
say "PCI $pci vendor $(cat "/sys/bus/pci/devices/$pci/vendor") device $(cat "/sys/bus/pci/devices/$pci/device")" \
	"subsystem $(cat "/sys/bus/pci/devices/$pci/subsystem_vendor"):$(cat "/sys/bus/pci/devices/$pci/subsystem_device")" \
	"class $(cat "/sys/bus/pci/devices/$pci/class") revision $(cat "/sys/bus/pci/devices/$pci/revision")"
say "  capabilities: $(pci_caps "$pci")"
say "  BARs: $(sed -n 1,6p "/sys/bus/pci/devices/$pci/resource" | awk '$1 != "0x0000000000000000" { printf "%s%d %s-%s", s, NR - 1, $1, $2; s = ", " }')"
f=$(cat "$dev/features")
say "sysfs features (driver's view, bit 0 first): $f"
say "  bits set: $(echo "$f" | awk '{ s = ""; for (i = 1; i <= length($0); i++) if (substr($0, i, 1) == "1") s = s " " (i - 1); print substr(s, 2) }')"
# vm.devmem=0: leave the registers alone (viommu-vmm's tests: its virtio
# BARs are 64-bit ones above 512 GiB, and reads of them from user space
# through /dev/mem hung or crashed L1 now and then in the nested harness;
# the driver's own accesses, from the kernel, are what the disk test uses).
if [ "${VM_DEVMEM:-1}" = 0 ]; then
	say "registers not read (vm.devmem=0)"
elif cap=$(virtio_cap "$pci" 1); then
	base=$(bar_addr "$pci" "${cap% *}")
	common=$((base + ${cap#* }))
	say "common configuration: BAR${cap% *} ($base) + ${cap#* } = $(printf '0x%x' "$common")"
	# device_feature_select (0x00) / device_feature (0x04),
	# driver_feature_select (0x08) / driver_feature (0x0c). The driver
	# reads and writes these only while it probes.
	{ devmem "$common" 32 0 >/dev/null && lo=$(devmem $((common + 4)) 32) &&
		devmem "$common" 32 1 >/dev/null && hi=$(devmem $((common + 4)) 32) &&
		devmem $((common + 8)) 32 0 >/dev/null && glo=$(devmem $((common + 12)) 32) &&
		devmem $((common + 8)) 32 1 >/dev/null && ghi=$(devmem $((common + 12)) 32); } ||
		vfail "cannot read the common configuration with devmem (iomem=relaxed missing?)"
	say "device features offered: $hi:$lo, bits $(bits "$lo" 0) $(bits "$hi" 32)"
	say "driver features accepted: $ghi:$glo, bits $(bits "$glo" 0) $(bits "$ghi" 32)"
	say "device_status $(devmem $((common + 20)) 8), num_queues $(devmem $((common + 18)) 16)"
else
	say "no virtio-pci common configuration capability found"
fi
if [ "${VM_DEVMEM:-1}" != 0 ] && cap=$(virtio_cap "$pci" 4); then
	dc=$(($(bar_addr "$pci" "${cap% *}") + ${cap#* }))
	# struct virtio_iommu_config: page_size_mask u64, input_range {start, end}
	# u64 each, domain_range {start, end} u32 each, probe_size u32, bypass u8.
	w() { devmem $((dc + $1)) 32; }
	say "device config at $(printf '0x%x' "$dc"): page_size_mask $(w 4):$(w 0)," \
		"input_range $(w 12):$(w 8)..$(w 20):$(w 16), domain_range $(w 24)..$(w 28)," \
		"probe_size $(w 32), bypass $(devmem $((dc + 36)) 8)"
fi

say "PCI devices (BDF vendor:device class driver iommu_group):"
for p in /sys/bus/pci/devices/*; do
	drv=-
	[ ! -e "$p/driver" ] || drv=$(basename "$(readlink "$p/driver")")
	grp=-
	[ ! -e "$p/iommu_group" ] || grp=$(basename "$(readlink "$p/iommu_group")")
	say "  $(basename "$p") $(cat "$p/vendor"):$(cat "$p/device") $(cat "$p/class") $drv group $grp"
done

# ---- the disk -------------------------------------------------------------------
# /dev/vda, or VM_DISK_DEV if a script before this one set it.
disk=${VM_DISK_DEV:-vda}
i=0
while [ ! -b /dev/$disk ] && [ "$i" -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/$disk ] || vfail "no /dev/$disk after 10 s (its probe waits for the IOMMU driver); lsmod: $(lsmod | tr '\n' ' ')"
bdev=$(readlink -f /sys/block/$disk/device)
bpci=$(basename "$(readlink -f "$bdev/..")")
say "/dev/$disk: $(basename "$bdev") on PCI $bpci, sysfs features $(cat "$bdev/features")"
say "  capabilities: $(pci_caps "$bpci")"
[ -e "/sys/bus/pci/devices/$bpci/iommu_group" ] || vfail "the disk's device $bpci is in no IOMMU group"
grp=$(readlink -f "/sys/bus/pci/devices/$bpci/iommu_group")
type=$(cat "$grp/type")
say "the disk's IOMMU group $(basename "$grp"): type $type, devices $(group_devices "$grp")"
while read -r line; do
	say "  reserved region: $line"
done <"$grp/reserved_regions"
case "$type" in DMA | DMA-FQ) ;; *) vfail "the disk's group has type $type, not DMA or DMA-FQ" ;; esac
[ -z "$VM_IOMMU_TYPE" ] || [ "$type" = "$VM_IOMMU_TYPE" ] || vfail "the disk's group has type $type, expected $VM_IOMMU_TYPE"
say "IOMMU groups:"
for g in /sys/kernel/iommu_groups/*; do
	say "  group $(basename "$g"): type $(cat "$g/type"), devices $(group_devices "$g")"
done

if [ -r /sys/firmware/acpi/tables/VIOT ]; then
	say "ACPI VIOT table ($(wc -c </sys/firmware/acpi/tables/VIOT) bytes):"
	hexdump -C /sys/firmware/acpi/tables/VIOT | sed 's/^/virtio-iommu:   /'
else
	say "no ACPI VIOT table"
fi
grep -iE "virtio" /proc/interrupts | tr -s ' ' | sed 's/^/virtio-iommu: irq /'
say "uptime $(cut -d' ' -f1 /proc/uptime) s; the driver's checks passed"
