#!/bin/sh
# The demo's workload, run inside the guest by scripts/demo: show what the
# guest sees of the machine viommu-vmm gave it, then read and write its
# virtio-blk disk (every byte of that DMA goes through libviommu).
set -u
say() { echo "demo: $*"; }
fail() { echo "demo: FAIL: $*"; exit 1; }

say "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs online ($(cat /sys/devices/system/cpu/online))"
say "memory: $(grep MemTotal /proc/meminfo | tr -s ' ')"
dmesg | grep -E "DMAR: IOMMU enabled|Using Queued invalidation|Enabled IRQ remapping" | sed 's/^\[[^]]*\] /demo: dmesg: /'
for d in /sys/bus/pci/devices/*; do
	say "pci $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")" \
		"driver $(basename "$(readlink "$d/driver" 2>/dev/null || echo none)")"
done
[ -b /dev/vda ] || fail "no virtio-blk disk /dev/vda"
size=$(cat /sys/block/vda/size)
say "disk /dev/vda: $((size * 512)) bytes"
sum=$(sha256sum /dev/vda | cut -d' ' -f1)
say "disk sha256 (read through the IOMMU): $sum"
[ "$sum" = "${VM_DISK_SHA256:-}" ] || fail "the checksum differs from the host's ${VM_DISK_SHA256:-}"
say "checksum matches the host's"
t0=$(cat /proc/uptime | cut -d' ' -f1)
dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null
t1=$(cat /proc/uptime | cut -d' ' -f1)
say "read $((size / 2048)) MiB in $(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') s"
yes viommu-demo | head -c 65536 > /tmp/pattern
dd if=/tmp/pattern of=/dev/vda bs=4096 seek=256 conv=fsync 2>/dev/null || fail "write"
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/back bs=4096 skip=256 count=16 2>/dev/null || fail "re-read"
cmp -s /tmp/pattern /tmp/back || fail "what was read back differs from what was written"
say "wrote 64 KiB at 1 MiB and read it back: identical"
grep -E "virtio|ttyS|DMAR" /proc/interrupts | sed 's/^/demo: irq /' | tr -s ' '
exit 0
