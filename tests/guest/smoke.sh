#!/bin/sh
# Guest side of guest_qemu_smoke (runs under scripts/lib/guest-init, busybox sh).
# Parameters from the kernel command line:
#   vm.cpus=N             vCPUs the VMM was given: all must be online
#   vm.disk_size=BYTES    size of the virtio-blk disk
#   vm.disk_sha256=HEX    SHA-256 of its whole content as the host wrote it
#   vm.write_offset=BYTES where to write the 64 KiB pattern the host checks afterwards
# Exits non-zero on the first check that fails.

fail() {
	echo "smoke: FAIL: $*"
	exit 1
}

echo "smoke: kernel $(uname -r); cmdline: $(cat /proc/cmdline)"

# Both vCPUs online.
n=$(grep -c '^processor' /proc/cpuinfo)
[ "$n" = "${VM_CPUS:?vm.cpus missing}" ] || fail "$n CPUs in /proc/cpuinfo, expected $VM_CPUS"
online=$(cat /sys/devices/system/cpu/online)
[ "$online" = "0-$((VM_CPUS - 1))" ] || fail "online CPUs '$online', expected 0-$((VM_CPUS - 1))"
echo "smoke: $n CPUs online ($online)"

# virtio-blk: the disk is there, has the right size and content. It is
# /dev/vda unless a script before this one set VM_DISK_DEV (a guest with
# several disks, whose names follow the order they were probed in).
disk=${VM_DISK_DEV:-vda}
i=0
while [ ! -b /dev/$disk ] && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/$disk ] || fail "no /dev/$disk (virtio-blk) after 5 s; lsmod: $(lsmod | tr '\n' ' ')"
size=$(($(cat /sys/block/$disk/size) * 512))
[ "$size" = "${VM_DISK_SIZE:?}" ] || fail "/dev/$disk is $size bytes, expected $VM_DISK_SIZE"
sum=$(sha256sum /dev/$disk | cut -d' ' -f1)
[ "$sum" = "${VM_DISK_SHA256:?}" ] || fail "/dev/$disk SHA-256 $sum, expected $VM_DISK_SHA256"
echo "smoke: /dev/$disk $size bytes, SHA-256 matches"

# Write a region, flush, drop the page cache, read it back.
off=${VM_WRITE_OFFSET:?}
yes VIOMMU-SMOKE-PATTERN | head -c 65536 >/tmp/pattern
want=$(sha256sum /tmp/pattern | cut -d' ' -f1)
dd if=/tmp/pattern of=/dev/$disk bs=4096 seek=$((off / 4096)) conv=notrunc,fsync 2>/dev/null ||
	fail "writing /dev/$disk at $off"
sync
echo 3 >/proc/sys/vm/drop_caches
blockdev --flushbufs /dev/$disk
got=$(dd if=/dev/$disk bs=4096 skip=$((off / 4096)) count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "re-read of the written region: SHA-256 $got, expected $want"
echo "smoke: wrote and re-read 64 KiB at offset $off"
exit 0
