#!/bin/sh
# Guest side of guest_vtd_inject (appended after vtd-checks.sh): a fault
# injected through viommu-vmm's control socket while this runs must reach
# Linux's intel_iommu driver as a real VT-d fault.
#   1. read the DMAR fault interrupt count from /proc/interrupts, check a
#      block read works, print VTD-INJECT-READY (the host side waits for it,
#      then adds a rule that faults 00:01.0's DMA reads);
#   2. issue O_DIRECT reads of /dev/vda in the background (the device reads
#      its rings, which now fault) until the driver logs the fault, at most
#      vm.inject_wait seconds (default 90);
#   3. check the "DMAR: [DMA Read NO_PASID] Request device [00:01.0] fault
#      addr ... [fault reason 0x06]" line and that the DMAR interrupt count
#      rose, print the line as VTD-INJECT-FAULT for the host to compare, and
#      stay up 2 s more (the host reads the rule's counters meanwhile).
# The injected fault leaves the virtio device waiting for a reset (its ring
# could not be read), so the reads still in flight are left behind.
ifail() {
	echo "vtd-inject: FAIL: $*"
	dmesg | grep -E "DMAR|virtio" | tail -20
	grep -E "DMAR" /proc/interrupts
	exit 1
}
dmar_irqs() { # the sum of the per-CPU counts of the DMAR fault interrupt(s)
	awk '/DMAR/ { for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; else break } END { print s + 0 }' /proc/interrupts
}
grep -q DMAR /proc/interrupts || ifail "no DMAR interrupt in /proc/interrupts"
echo "vtd-inject: $(grep DMAR /proc/interrupts | tr -s ' ')"
before=$(dmar_irqs)
dd if=/dev/vda of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null || ifail "a block read failed before the rule"
dmesg | grep -q "DMAR: \[DMA" && ifail "a DMAR fault before the rule: $(dmesg | grep 'DMAR: \[DMA' | head -1)"
echo "vtd-inject: DMAR fault interrupts before: $before"
echo "VTD-INJECT-READY"
i=0 k=1 line=""
wait_s=${VM_INJECT_WAIT:-90}
while [ "$i" -lt $((wait_s * 4)) ]; do
	line=$(dmesg | grep -m1 "DMAR: \[DMA Read")
	[ -n "$line" ] && break
	# A new read every second (each one kicks the device); the ones that
	# hit the rule never complete.
	if [ $((i % 4)) -eq 0 ]; then
		dd if=/dev/vda of=/dev/null bs=4096 count=1 skip=$k iflag=direct 2>/dev/null &
		k=$((k + 1))
	fi
	sleep 0.25
	i=$((i + 1))
done
[ -n "$line" ] || ifail "no 'DMAR: [DMA Read' fault in dmesg within $wait_s s of VTD-INJECT-READY"
line=$(echo "$line" | sed 's/^\[[^]]*\] //')
echo "VTD-INJECT-FAULT: $line"
echo "$line" | grep -Eq "^DMAR: \[DMA Read NO_PASID\] Request device \[00:01\.0\] fault addr 0x[0-9a-f]+ \[fault reason 0x06\]" ||
	ifail "the fault line is not a DMA read of 00:01.0 with reason 0x06: $line"
j=0
after=$(dmar_irqs)
while [ "$after" -le "$before" ] && [ "$j" -lt 20 ]; do
	sleep 0.1
	after=$(dmar_irqs)
	j=$((j + 1))
done
echo "vtd-inject: DMAR fault interrupts after: $after"
[ "$after" -gt "$before" ] || ifail "the DMAR fault interrupt count did not rise ($before -> $after)"
n=$(dmesg | grep -c "DMAR: \[DMA")
echo "vtd-inject: $n DMAR fault line(s) in dmesg"
# The host side reads the rule's counters and the stats once the record is
# in its stream; give it time before powering off.
sleep 2
echo "vtd-inject: PASS"
exit 0
