#!/bin/sh
# Guest side of guest_vmm_panic (runs under scripts/lib/guest-init, busybox sh):
# crash the kernel on purpose. guest-run boots with panic=-1, so the kernel
# resets the machine at once; the host side checks that the VMM ends with the
# status of a guest reset. Reaching the end of this script is a failure.
echo "panic-test: crashing the kernel through sysrq"
# Let the line drain before the kernel's panic output can interleave with it.
sleep 1
echo 1 >/proc/sys/kernel/sysrq || { echo "panic-test: FAIL: cannot enable sysrq"; exit 1; }
echo c >/proc/sysrq-trigger
sleep 5
echo "panic-test: FAIL: still running after the sysrq crash"
exit 1
