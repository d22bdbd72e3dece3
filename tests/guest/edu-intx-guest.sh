#!/bin/sh
# Guest side of guest_vfio_edu_direct (busybox sh in L2): edu-dma --direct
# (edu-dma-guest.sh), then edu's INTx through the assigned device's INTx path:
# uio_pci_generic handles the pin (it masks with the command register's
# INTx Disable and counts), edu's register 0x60 raises its interrupt, 0x64
# acknowledges it; each raise must count exactly once.
sh /bin/edu-dma-guest.sh || exit 1
fail() {
	echo "edu-intx: FAIL: $*"
	exit 1
}
ROUNDS=3
insmod /lib/uio/uio.ko || fail "insmod uio"
insmod /lib/uio/uio_pci_generic.ko || fail "insmod uio_pci_generic"
bdf=""
for d in /sys/bus/pci/devices/*; do
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		bdf=${d##*/}
	fi
done
[ -n "$bdf" ] || fail "no edu device"
d=/sys/bus/pci/devices/$bdf
echo "1234 11e8" >/sys/bus/pci/drivers/uio_pci_generic/new_id
drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null)
[ "$drv" = uio_pci_generic ] || fail "edu is bound to '${drv:-nothing}', not uio_pci_generic"
uio=$(ls "$d/uio" 2>/dev/null | head -n 1)
[ -c "/dev/$uio" ] || fail "no uio device node for $bdf (${uio:-none})"
irq=$(cat "$d/irq")
bar=$(head -n 1 "$d/resource" | cut -d' ' -f1)
echo "edu-intx: $bdf is /dev/$uio, IRQ $irq, BAR0 at $bar"
exec 3<"/dev/$uio"
for i in $(seq 1 $ROUNDS); do
	devmem $((bar + 0x60)) 32 1
	n=$(timeout 10 dd bs=4 count=1 <&3 2>/dev/null | od -An -tu4 | tr -d ' ')
	[ -n "$n" ] || fail "round $i: no interrupt within 10 s"
	st=$(devmem $((bar + 0x24)) 32)
	[ "$((st))" -eq 1 ] || fail "round $i: interrupt status $st (1 wanted)"
	devmem $((bar + 0x64)) 32 1
	# uio_pci_generic's handler set INTx Disable: clear it (config space
	# through sysfs, as that driver wants)
	cmd=$(od -An -tu2 -j4 -N2 "$d/config" | tr -d ' ')
	[ $((cmd & 0x400)) -ne 0 ] || fail "round $i: INTx Disable not set by the handler (command $cmd)"
	cmd=$((cmd & ~0x400))
	err=$(printf "\\$(printf %03o $((cmd & 0xff)))\\$(printf %03o $((cmd >> 8)))" |
		dd of="$d/config" bs=2 seek=2 count=1 conv=notrunc 2>&1) ||
		fail "round $i: cannot re-enable INTx: $err"
	echo "edu-intx: round $i: interrupt counted ($n so far)"
done
[ "$n" -eq "$ROUNDS" ] || fail "$n interrupts counted for $ROUNDS raised"
grep -E "^ *$irq:" /proc/interrupts
echo "edu-intx: PASS: $ROUNDS INTx interrupts, each counted once"
exit 0
