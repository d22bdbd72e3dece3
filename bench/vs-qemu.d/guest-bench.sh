#!/bin/sh
# The workload of bench/vs-qemu, run by the benchmark guest's init (busybox
# ash) as /tests/guest-bench.sh. It checks that the guest got the IOMMU setup
# the configuration promises, then makes O_DIRECT sequential reads of the
# virtio-blk disk with viommu-bench-odirect (in the initramfs as
# /bin/viommu-bench-odirect). Phases and samples are marked by lines
#   @@NAME
# that viommu-bench-launch in L1 timestamps on L1's clock (and samples KVM's
# exit counters at): read1m, m1s1 .. m1sN (each sample starts) and m1s1e ..
# (each ends), read4k, k4s1 .. k4sN, k4s1e .., read1mx, m1x1 .. m1xN (the
# 1 MiB reads into a scattered buffer), m1x1e .., done.
#
# With vm.bench_iommu=pair the guest has a second disk, /dev/vdb, on the same
# IOMMU, which this script moves to a pass-through (identity) domain before
# it reads, and every sample is read from both disks back to back: the
# sample of vda (strict DMA domain) keeps the names above, the one of vdb
# (pass-through) is named
#   m1b1 .. m1bN   1 MiB reads        (m1b1e .. at their ends)
#   k4b1 .. k4bN   4 KiB reads        (k4b1e ..)
#   m1y1 .. m1yN   1 MiB reads into a scattered buffer (m1y1e ..)
# Odd samples read vda first, even ones vdb first, so that neither disk
# always gets the place right after the other's read. Each phase marker
# then covers both disks' samples.
#
# Kernel command line (exported by init as VM_*):
#   vm.bench_iommu=vtd|virtio|none|pair   the configuration: an IOMMU translating
#                             the disk's DMA, or none; pair: vda translated
#                             and vdb passed through, in one boot
#   vm.bench_strict=1|0|pt    with vtd or pair: iommu.strict as passed to the
#                             kernel, or pt for iommu.passthrough=1 (for
#                             vda)
#   vm.bench_m1=N             1 MiB blocks to read
#   vm.bench_k4=N             4 KiB blocks to read
#   vm.bench_reps=N           how many times each read is made in a row (each
#                             one a sample: on a shared machine one boot's
#                             samples show its noise)
set -u
say() { echo "bench-guest: $*"; }
fail() {
	echo "bench-guest: FAIL: $*"
	exit 1
}

[ -b /dev/vda ] || fail "no virtio-blk disk /dev/vda"
[ -x /bin/viommu-bench-odirect ] || fail "no /bin/viommu-bench-odirect in the initramfs"

# The PCI function behind vda: /sys/block/vda/device is the virtio device,
# whose parent is the PCI device that does the DMA.
pci=$(dirname "$(readlink -f /sys/block/vda/device)")
say "disk /dev/vda on $(basename "$pci"), $(($(cat /sys/block/vda/size) / 2048)) MiB"

# The default domain type tells what the kernel really does with the
# device's DMA: "DMA" is strict (an IOTLB invalidation on every unmap),
# "DMA-FQ" is lazy (flush queue), "identity" would bypass translation.
case "${VM_BENCH_IOMMU:-}" in
vtd | pair | virtio)
	[ -e "$pci/iommu_group" ] || fail "the disk has no IOMMU group: the IOMMU is not in use"
	type=$(cat "$pci/iommu_group/type" 2>/dev/null)
	case "${VM_BENCH_STRICT:-}" in
	1) want=DMA ;;
	0) want=DMA-FQ ;;
	pt) want=identity ;;
	*) fail "vm.bench_strict must be 0, 1 or pt, got '${VM_BENCH_STRICT:-}'" ;;
	esac
	[ "$type" = "$want" ] || fail "the disk's IOMMU domain is '$type', not '$want' (vm.bench_strict=$VM_BENCH_STRICT)"
	say "IOMMU group $(basename "$(readlink "$pci/iommu_group")"), domain type $type"
	dmesg | grep -E "DMAR: IOMMU enabled|Using Queued invalidation|Enabled IRQ remapping|virtio_iommu" |
		sed 's/^\[[^]]*\] /bench-guest: dmesg: /'
	;;
none)
	[ ! -e "$pci/iommu_group" ] || fail "the disk is in an IOMMU group, but this configuration has no IOMMU"
	say "no IOMMU"
	;;
*) fail "vm.bench_iommu must be vtd, virtio, none or pair, got '${VM_BENCH_IOMMU:-}'" ;;
esac
# pair: vdb is a disk of its own on the same IOMMU, moved here to a
# pass-through (identity) domain: Linux lets a group change its default
# domain while no driver holds it. Its DMA then goes through the same unit
# and its interrupts through the same remapping as vda's, and only the DMA
# remapping differs: the guest's mapping and invalidations, the unit's
# translation. (A disk behind no unit at all, viommu-vmm's iommu=off, would
# run on INTx here: Linux gives a device outside every unit no MSI while
# interrupt remapping is on.)
disk2=/dev/vdb
if [ "$VM_BENCH_IOMMU" = pair ]; then
	# Both disks are probed when virtio_blk loads; the wait is for a slow
	# probe, not the usual case.
	n=0
	while [ ! -b /dev/vdb ] && [ "$n" -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	[ -b /dev/vdb ] || fail "no second virtio-blk disk /dev/vdb after 5 s (vm.bench_iommu=pair wants one)"
	pci2=$(dirname "$(readlink -f /sys/block/vdb/device)")
	bdf2=$(basename "$pci2")
	[ "$pci2" != "$pci" ] || fail "/dev/vda and /dev/vdb are on the same PCI device $bdf2"
	[ -e "$pci2/iommu_group" ] || fail "/dev/vdb ($bdf2) has no IOMMU group: vm.bench_iommu=pair wants it on the IOMMU"
	grp2=$(readlink -f "$pci2/iommu_group")
	[ "$grp2" != "$(readlink -f "$pci/iommu_group")" ] || fail "/dev/vda and /dev/vdb share IOMMU group $(basename "$grp2")"
	[ -e "$pci2/driver" ] || fail "$bdf2 has no driver to unbind"
	drv2=$(basename "$(readlink -f "$pci2/driver")")
	echo "$bdf2" >"/sys/bus/pci/drivers/$drv2/unbind" || fail "cannot unbind $bdf2 from $drv2"
	echo identity >"$grp2/type" || fail "cannot make IOMMU group $(basename "$grp2") pass-through"
	echo "$bdf2" >"/sys/bus/pci/drivers/$drv2/bind" || fail "cannot bind $bdf2 to $drv2 again"
	# The disk comes back under the name its new probe gets (vdb again
	# when the old one was freed in time): found through the device.
	disk2=""
	n=0
	while [ -z "$disk2" ] && [ "$n" -lt 50 ]; do
		for b in "$pci2"/virtio*/block/*; do
			[ -e "$b" ] && [ -b "/dev/$(basename "$b")" ] && disk2=/dev/$(basename "$b")
		done
		[ -n "$disk2" ] || sleep 0.1
		n=$((n + 1))
	done
	[ -n "$disk2" ] || fail "$bdf2 has no block device 5 s after it went pass-through"
	type2=$(cat "$grp2/type")
	[ "$type2" = identity ] || fail "$disk2's IOMMU domain is '$type2', not 'identity'"
	size2=$(cat "/sys/block/${disk2#/dev/}/size")
	say "disk $disk2 on $bdf2, $((size2 / 2048)) MiB, IOMMU group $(basename "$grp2"), domain type $type2"
fi

# Huge pages for the readers' buffers (viommu-bench-odirect): a read into
# one contiguous buffer is the same DMA segments in every run.
echo 4 >/proc/sys/vm/nr_hugepages 2>/dev/null || say "cannot reserve huge pages: buffers may be scattered"
m1=${VM_BENCH_M1:-64}
k4=${VM_BENCH_K4:-512}
reps=${VM_BENCH_REPS:-3}
# sample NAME DISK BS COUNT [READER OPTION]: one timed read of DISK. The
# markers before and after it are what L1 times it by: the guest's own clock
# can stall under nesting. The reader's line (its own timing, kept for
# comparison) goes to a file, so that no console output falls between the
# markers.
sample() {
	echo "@@$1"
	/bin/viommu-bench-odirect --label "$1" ${5:+"$5"} "$2" "$3" "$4" >>/tmp/bench.out || fail "$1: reads of $3 from $2"
	echo "@@$1e"
}
# phase NAME PREFIX BYPASS_PREFIX BS COUNT [READER OPTION]: the phase marker,
# then $reps samples PREFIX1..PREFIXn of vda; with pair, each followed or
# preceded (odd or even i) by BYPASS_PREFIXi, the same read of vdb.
phase() {
	echo "@@$1"
	i=1
	while [ "$i" -le "$reps" ]; do
		if [ "$VM_BENCH_IOMMU" != pair ]; then
			sample "$2$i" /dev/vda "$4" "$5" ${6:+"$6"}
		elif [ $((i % 2)) = 1 ]; then
			sample "$2$i" /dev/vda "$4" "$5" ${6:+"$6"}
			sample "$3$i" "$disk2" "$4" "$5" ${6:+"$6"}
		else
			sample "$3$i" "$disk2" "$4" "$5" ${6:+"$6"}
			sample "$2$i" /dev/vda "$4" "$5" ${6:+"$6"}
		fi
		i=$((i + 1))
	done
}
# irqs FILE: the interrupt counts per CPU now. irq_delta A B NAME: after the
# run, a line per interrupt that moved between two snapshots, with how many
# per read on each CPU ("bench-guest: irqs read1m LOC 12.0 0.5 Local timer
# interrupts"): which CPU a read wakes, and why.
irqs() { cat /proc/interrupts >"$1" 2>/dev/null; }
irq_delta() {
	awk -v name="$3" -v reads="$4" '
	NR == FNR { if (FNR == 1) next; a[$1] = $0; next }
	FNR == 1 { ncpu = NF; next }
	{
		if (!($1 in a)) next
		split(a[$1], o)
		line = ""; moved = 0
		for (c = 2; c <= ncpu + 1; c++) {
			d = $c - o[c]; if (d != 0) moved = 1
			line = line sprintf(" %.1f", d / reads)
		}
		desc = ""
		for (c = ncpu + 2; c <= NF; c++) desc = desc " " $c
		if (moved) print "bench-guest: irqs " name " " $1 line " " desc
	}' "$1" "$2"
}
irqs /tmp/irq0
phase read1m m1s m1b 1M "$m1"
irqs /tmp/irq1
phase read4k k4s k4b 4k "$k4"
# The 1 MiB reads again into a buffer whose every 4 KiB page is its own
# DMA segment (and, strict, its own invalidation): the worst case of a
# fragmented buffer.
phase read1mx m1x m1y 1M "$m1" --scatter
echo "@@done"
cat /tmp/bench.out
# pair: the read1m phase read both disks.
disks=1
[ "$VM_BENCH_IOMMU" != pair ] || disks=2
irq_delta /tmp/irq0 /tmp/irq1 read1m $((m1 * reps * disks))
exit 0
