#!/bin/sh
# Guest side of guest_virtio_iommu_inject (appended after
# virtio-iommu-checks.sh): a fault injected through viommu-vmm's control
# socket while this runs must reach Linux's virtio_iommu driver as a fault
# event on the device's event queue.
#   1. read the event queue's interrupt count from /proc/interrupts, check a
#      block read works, print VTD-INJECT-READY (the host side waits for it,
#      then adds a rule that faults 00:01.0's DMA reads);
#   2. issue O_DIRECT reads of /dev/vda in the background until the driver
#      logs the fault, at most vm.inject_wait seconds (default 90);
#   3. check the "virtio_iommu virtioN: page fault from EP 8 at 0x... [R]"
#      line (endpoint 8 is 00:01.0's BDF, as the VIOT table says; "page" is
#      VIRTIO_IOMMU_FAULT_R_MAPPING) and that the event queue's interrupt
#      count rose, print the line as VIO-INJECT-FAULT for the host to
#      compare, and stay up 2 s more (the host reads the rule's counters).
# The injected fault leaves the disk waiting for a reset (its ring could not
# be read), so the reads still in flight are left behind.
ifail() {
	echo "virtio-iommu-inject: FAIL: $*"
	dmesg | grep -E "iommu|virtio" | tail -20
	grep -E "virtio" /proc/interrupts
	exit 1
}
ev_irqs() { # the sum of the per-CPU counts of the event queue's interrupt
	awk '/virtio[0-9]+-event/ { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; else break } END { print s + 0 }' /proc/interrupts
}
grep -Eq "virtio[0-9]+-event" /proc/interrupts || ifail "no virtio-iommu event queue interrupt in /proc/interrupts"
echo "virtio-iommu-inject: $(grep -E 'virtio[0-9]+-event' /proc/interrupts | tr -s ' ')"
before=$(ev_irqs)
dd if=/dev/vda of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null || ifail "a block read failed before the rule"
dmesg | grep -q "fault from EP" && ifail "a fault before the rule: $(dmesg | grep 'fault from EP' | head -1)"
echo "virtio-iommu-inject: event interrupts before: $before"
echo "VTD-INJECT-READY"
i=0 k=1 line=""
wait_s=${VM_INJECT_WAIT:-90}
while [ "$i" -lt $((wait_s * 4)) ]; do
	line=$(dmesg | grep -m1 "fault from EP")
	[ -n "$line" ] && break
	if [ $((i % 4)) -eq 0 ]; then
		dd if=/dev/vda of=/dev/null bs=4096 count=1 skip=$k iflag=direct 2>/dev/null &
		k=$((k + 1))
	fi
	sleep 0.25
	i=$((i + 1))
done
[ -n "$line" ] || ifail "no 'fault from EP' line in dmesg within $wait_s s of VTD-INJECT-READY"
line=$(echo "$line" | sed 's/^\[[^]]*\] //')
echo "VIO-INJECT-FAULT: $line"
echo "$line" | grep -Eq "^virtio_iommu virtio[0-9]+: page fault from EP 8 at 0x[0-9a-f]+ \[R\]$" ||
	ifail "the fault line is not a page fault of a read by endpoint 8: $line"
j=0
after=$(ev_irqs)
while [ "$after" -le "$before" ] && [ "$j" -lt 20 ]; do
	sleep 0.1
	after=$(ev_irqs)
	j=$((j + 1))
done
echo "virtio-iommu-inject: event interrupts after: $after"
[ "$after" -gt "$before" ] || ifail "the event queue's interrupt count did not rise ($before -> $after)"
sleep 2
echo "virtio-iommu-inject: PASS"
exit 0
