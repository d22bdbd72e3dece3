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

# virtio-blk: the disk is there, has the right size and content.
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/vda ] || fail "no /dev/vda (virtio-blk) after 5 s; lsmod: $(lsmod | tr '\n' ' ')"
size=$(($(cat /sys/block/vda/size) * 512))
[ "$size" = "${VM_DISK_SIZE:?}" ] || fail "/dev/vda is $size bytes, expected $VM_DISK_SIZE"
sum=$(sha256sum /dev/vda | cut -d' ' -f1)
[ "$sum" = "${VM_DISK_SHA256:?}" ] || fail "/dev/vda SHA-256 $sum, expected $VM_DISK_SHA256"
echo "smoke: /dev/vda $size bytes, SHA-256 matches"

# Write a region, flush, drop the page cache, read it back.
off=${VM_WRITE_OFFSET:?}
yes VIOMMU-SMOKE-PATTERN | head -c 65536 >/tmp/pattern
want=$(sha256sum /tmp/pattern | cut -d' ' -f1)
dd if=/tmp/pattern of=/dev/vda bs=4096 seek=$((off / 4096)) conv=notrunc,fsync 2>/dev/null ||
	fail "writing /dev/vda at $off"
sync
echo 3 >/proc/sys/vm/drop_caches
blockdev --flushbufs /dev/vda
got=$(dd if=/dev/vda bs=4096 skip=$((off / 4096)) count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "re-read of the written region: SHA-256 $got, expected $want"
echo "smoke: wrote and re-read 64 KiB at offset $off"
exit 0
