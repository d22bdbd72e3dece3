#!/bin/sh
# Guest side of guest_edu_qemu and guest_edu_vmm (runs under scripts/lib/guest-init,
# busybox sh): drives an edu device (1234:11e8, QEMU docs/specs/edu.rst) from
# user space -- QEMU's own under QEMU, viommu-vmm's --edu under viommu-vmm -- so
# both answer the same program the same way:
#   - find it in /sys/bus/pci/devices;
#   - enable memory decoding and bus mastering by writing its command register
#     through the sysfs config file (busybox has no setpci);
#   - with busybox devmem on BAR0: the identification register, the liveness
#     register (reads back the inverse of what was written), the factorial
#     unit (write N, wait for status bit 0 to clear, read N!).
# Exits non-zero on the first check that fails.

fail() {
	echo "edu-test: FAIL: $*"
	exit 1
}

hex() {
	printf '0x%08x' "$1"
}

busybox --list | grep -qx devmem || fail "busybox has no devmem applet"
[ -c /dev/mem ] || fail "no /dev/mem"

# ---- find the device --------------------------------------------------------
dev=""
for d in /sys/bus/pci/devices/*; do
	[ -r "$d/vendor" ] || continue
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		dev=$d
		break
	fi
done
[ -n "$dev" ] || fail "no 1234:11e8 in /sys/bus/pci/devices: $(cd /sys/bus/pci/devices && for d in *; do printf '%s=%s:%s ' "$d" "$(cat "$d/vendor")" "$(cat "$d/device")"; done)"
# What a driver matches on, as QEMU's edu has it (QEMU hw/misc/edu.c: revision
# 0x10, class PCI_CLASS_OTHERS = class 0x00, subclass 0xff; QEMU's default
# subsystem 1af4:1100).
id="revision $(cat "$dev/revision") class $(cat "$dev/class") subsystem $(cat "$dev/subsystem_vendor"):$(cat "$dev/subsystem_device")"
echo "edu-test: edu at ${dev##*/}: $id"
[ "$id" = "revision 0x10 class 0x00ff00 subsystem 0x1af4:0x1100" ] ||
	fail "identity: $id, QEMU's edu has revision 0x10 class 0x00ff00 subsystem 0x1af4:0x1100"

# ---- the command register (config offset 4, 16 bits, little-endian) ---------
cmd_read() {
	dd if="$dev/config" bs=2 skip=2 count=1 2>/dev/null | od -An -tu2 | tr -d ' '
}
cmd=$(cmd_read)
[ -n "$cmd" ] || fail "cannot read the command register from $dev/config"
new=$((cmd | 0x6)) # memory space, bus master
# shellcheck disable=SC2059 # the format is built to hold the two bytes as octal escapes
printf "$(printf '\\%03o\\%03o' $((new & 0xff)) $((new >> 8)))" |
	dd of="$dev/config" bs=2 seek=2 count=1 conv=notrunc 2>/dev/null ||
	fail "cannot write the command register through $dev/config"
got=$(cmd_read)
[ $((got & 0x6)) -eq 6 ] || fail "command register $(hex "$cmd") -> wrote $(hex "$new"), reads $(hex "$got")"
echo "edu-test: command register $(hex "$cmd") -> $(hex "$got") (memory decoding and bus mastering on)"

# ---- BAR0 -------------------------------------------------------------------
# resource, first line: start end flags
read -r rstart rend _ <"$dev/resource" || fail "cannot read $dev/resource"
start=$((rstart)) end=$((rend))
[ "$start" -ne 0 ] || fail "BAR0 is not assigned: $(head -n 1 "$dev/resource")"
size=$((end - start + 1))
[ "$size" -eq $((1 << 20)) ] || fail "BAR0 is $size bytes, expected 1 MiB"
echo "edu-test: BAR0 at $(hex "$start"), $((size >> 10)) KiB"

rd() { # rd OFFSET: the 32-bit register, as a number
	v=$(devmem $((start + $1)) 32) || fail "devmem read at BAR0 + $(hex "$1") failed"
	echo $((v))
}
wr() { # wr OFFSET VALUE
	devmem $((start + $1)) 32 "$2" || fail "devmem write of $2 at BAR0 + $(hex "$1") failed"
}

# ---- identification ---------------------------------------------------------
id=$(rd 0x00)
[ "$id" -eq $((0x010000ed)) ] || fail "ident register reads $(hex "$id"), expected 0x010000ed"
echo "edu-test: ident $(hex "$id") (version 1.0)"

# ---- liveness: reads back the bitwise inverse --------------------------------
for v in 0x12345678 0x00000000 0xffffffff 0xa5a55a5a; do
	wr 0x04 "$v"
	got=$(rd 0x04)
	want=$(((~v) & 0xffffffff))
	[ "$got" -eq "$want" ] || fail "liveness: wrote $v, read $(hex "$got"), expected $(hex "$want")"
done
echo "edu-test: liveness returns the inverse of 4 patterns"

# ---- factorial --------------------------------------------------------------
for n in 5 0 1 10 12; do
	wr 0x08 "$n"
	i=0
	while [ $(($(rd 0x20) & 1)) -ne 0 ]; do
		i=$((i + 1))
		[ "$i" -lt 1000 ] || fail "factorial of $n: status bit 0 still set after 1000 polls"
	done
	got=$(rd 0x08)
	want=1
	k=2
	while [ "$k" -le "$n" ]; do
		want=$((want * k))
		k=$((k + 1))
	done
	[ "$got" -eq "$want" ] || fail "factorial of $n: read $got, expected $want"
	echo "edu-test: $n! = $got (status polled $i times)"
done
exit 0
