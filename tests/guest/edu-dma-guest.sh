#!/bin/sh
# Guest side of guest_edu_dma_qemu (runs under scripts/lib/guest-init, busybox
# sh): runs the static program /bin/edu-dma (tests/guest/edu-dma.c, added to
# the initramfs by the host script) against the guest's edu device.
#   vm.edu_mode=vfio    the guest has an IOMMU (intel_iommu=on) and vfio-pci:
#                       edu-dma --vfio auto (BAR0 mmapped through VFIO), then
#                       every "expect-fault KIND IOVA" line it printed must have
#                       its fault report in the kernel log,
#                         DMAR: [DMA Write NO_PASID] Request device [BB:DD.F] fault addr IOVA
#                       then edu-dma --vfio auto --no-mmap (BAR0 by pread/pwrite;
#                       its fault lines are not checked: Linux rate-limits them
#                       to 10 lines in 5 s, and the first run used most)
#   vm.edu_mode=direct  no IOMMU: edu-dma --direct auto (guest-physical
#                       addresses from /proc/self/pagemap)
#   vm.edu_faults=host  (with vfio) the device is a host device assigned to
#                       this guest: its blocked DMAs stop in the host's IOMMU,
#                       which does not tell the guest (VFIO type1 has no fault
#                       report), so the guest prints the expected faults as
#                       "edu-dma-guest: host-fault KIND IOVA" for the host side
#                       to find in its own kernel log
# Prints "edu-dma-guest: <mode> PASS" at the end; exits non-zero on a failure.

PROG=/bin/edu-dma

fail() {
	echo "edu-dma-guest: FAIL: $*"
	exit 1
}

[ -x "$PROG" ] || fail "no $PROG in the initramfs"
mode=${VM_EDU_MODE:-}

# run_prog OUT ARGS...: run edu-dma, show and keep its output.
run_prog() {
	out=$1
	shift
	"$PROG" "$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	[ "$rc" -eq 0 ] || fail "edu-dma $* exited with status $rc"
	grep -q '^edu-dma: all [0-9]* checks passed$' "$out" || fail "edu-dma $* did not say that all checks passed"
}

# The edu device's bus:device.function as Linux prints it in DMAR lines.
edu_rid() {
	for d in /sys/bus/pci/devices/*; do
		if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
			b=${d##*/}
			echo "${b#*:}"
			return 0
		fi
	done
	return 1
}

case "$mode" in
vfio)
	[ -n "$(ls /sys/class/iommu 2>/dev/null)" ] ||
		fail "no IOMMU in this guest (/sys/class/iommu is empty): boot with intel_iommu=on"
	rid=$(edu_rid) || fail "no edu device (1234:11e8)"
	run_prog /tmp/vfio-mmap.out --vfio auto
	n=0
	grep '^edu-dma: expect-fault ' /tmp/vfio-mmap.out >/tmp/expect
	[ -s /tmp/expect ] || fail "edu-dma printed no expect-fault line"
	while read -r _ _ kind iova; do
		if [ "${VM_EDU_FAULTS:-}" = host ]; then
			echo "edu-dma-guest: host-fault $kind $iova"
			n=$((n + 1))
			continue
		fi
		case "$kind" in
		read) what="DMA Read" ;;
		write) what="DMA Write" ;;
		*) fail "unknown fault kind '$kind'" ;;
		esac
		want="DMAR: [$what NO_PASID] Request device [$rid] fault addr $iova "
		# The fault interrupt is handled asynchronously: allow it a moment.
		i=0
		until dmesg | grep -qF "$want"; do
			i=$((i + 1))
			[ "$i" -le 5 ] || fail "no fault report '$want' in the kernel log"
			sleep 1
		done
		line=$(dmesg | grep -F "$want" | head -n 1)
		echo "edu-dma-guest: fault reported: ${line#*DMAR: }"
		n=$((n + 1))
	done </tmp/expect
	if [ "${VM_EDU_FAULTS:-}" = host ]; then
		echo "edu-dma-guest: $n blocked DMAs for the host's IOMMU to report"
	else
		echo "edu-dma-guest: all $n blocked DMAs reported by the IOMMU"
	fi
	run_prog /tmp/vfio-rw.out --vfio auto --no-mmap
	grep -q 'BAR0 reached through pread/pwrite' /tmp/vfio-rw.out || fail "--no-mmap did not use pread/pwrite"
	;;
direct)
	[ -z "$(ls /sys/class/iommu 2>/dev/null)" ] || fail "this guest has an IOMMU: --direct wants none"
	run_prog /tmp/direct.out --direct auto
	;;
*)
	fail "vm.edu_mode is '$mode': want vfio or direct"
	;;
esac
echo "edu-dma-guest: $mode PASS"
exit 0
