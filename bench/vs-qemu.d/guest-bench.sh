#!/bin/sh
# The workload of bench/vs-qemu, run by the benchmark guest's init (busybox
# ash) as /tests/guest-bench.sh. It checks that the guest got the IOMMU setup
# the configuration promises, then makes O_DIRECT sequential reads of the
# virtio-blk disk with viommu-bench-odirect (in the initramfs as
# /bin/viommu-bench-odirect). Phases and samples are marked by lines
#   @@NAME
# that viommu-bench-launch in L1 timestamps on L1's clock (and samples KVM's
# exit counters at): read1m, m1s1 .. m1sN (each sample starts) and m1s1e ..
# (each ends), read4k, k4s1 .. k4sN, k4s1e .., done.
#
# Kernel command line (exported by init as VM_*):
#   vm.bench_iommu=vtd|none   the configuration: an IOMMU translating the
#                             disk's DMA, or none
#   vm.bench_strict=1|0|pt    with vtd: iommu.strict as passed to the kernel,
#                             or pt for iommu.passthrough=1
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
vtd)
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
	dmesg | grep -E "DMAR: IOMMU enabled|Using Queued invalidation|Enabled IRQ remapping" |
		sed 's/^\[[^]]*\] /bench-guest: dmesg: /'
	;;
none)
	[ ! -e "$pci/iommu_group" ] || fail "the disk is in an IOMMU group, but this configuration has no IOMMU"
	say "no IOMMU"
	;;
*) fail "vm.bench_iommu must be vtd or none, got '${VM_BENCH_IOMMU:-}'" ;;
esac

# Huge pages for the readers' buffers (viommu-bench-odirect): a read into
# one contiguous buffer is the same DMA segments in every run.
echo 4 >/proc/sys/vm/nr_hugepages 2>/dev/null || say "cannot reserve huge pages: buffers may be scattered"
m1=${VM_BENCH_M1:-64}
k4=${VM_BENCH_K4:-512}
reps=${VM_BENCH_REPS:-3}
# sample NAME BS COUNT: one timed read. The markers before and after it are
# what L1 times it by: the guest's own clock can stall under nesting. The
# reader's line (its own timing, kept for comparison) goes to a file, so that
# no console output falls between the markers.
sample() {
	echo "@@$1"
	/bin/viommu-bench-odirect --label "$1" ${4:-} /dev/vda "$2" "$3" >>/tmp/bench.out || fail "$1: reads of $2"
	echo "@@$1e"
}
# phase NAME PREFIX BS COUNT [READER OPTION]: the phase marker, then $reps
# samples PREFIX1..PREFIXn.
phase() {
	echo "@@$1"
	i=1
	while [ "$i" -le "$reps" ]; do
		sample "$2$i" "$3" "$4" ${5:-}
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
phase read1m m1s 1M "$m1"
irqs /tmp/irq1
phase read4k k4s 4k "$k4"
# The 1 MiB reads again into a buffer whose every 4 KiB page is its own
# DMA segment (and, strict, its own invalidation): the worst case of a
# fragmented buffer.
phase read1mx m1x 1M "$m1" --scatter
echo "@@done"
cat /tmp/bench.out
irq_delta /tmp/irq0 /tmp/irq1 read1m $((m1 * reps))
exit 0
