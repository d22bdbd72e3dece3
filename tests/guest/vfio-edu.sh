#!/usr/bin/env bash
# guest_vfio_edu_direct / guest_vfio_edu_vtd: viommu-vmm --vfio-pci assigns a
# real PCI device to its guest through the real kernel VFIO. In the nested
# harness, L1's QEMU provides the device (QEMU's edu, behind its own
# intel-iommu, -M kernel-irqchip=split) and L1's Linux binds it to vfio-pci
# (tests/guest/vfio-bind.sh); viommu-vmm in L1 gives it to the L2 guest, where
# edu-dma (tests/guest/edu-dma.c, proven against QEMU's own edu by
# guest_edu_dma_qemu) drives its DMA and interrupt:
#   direct  no IOMMU in L2: all L2 RAM is mapped in L1's IOMMU at IOVA =
#           guest-physical; edu-dma --direct checks data both ways; then
#           L2 binds edu to uio_pci_generic and raises edu's interrupt three
#           times with MSI off: INTx through VFIO's trigger eventfd, unmasked
#           at the host at the IOAPIC's EOI (VFIO's resample), each
#           interrupt counted once in L2;
#   vtd     viommu's VT-d in L2 (intel_iommu=on) and L2's own vfio-pci:
#           the mappings L2 makes are shadowed into L1's IOMMU as L2
#           invalidates them (caching mode); edu-dma --vfio checks data both
#           ways, the MSI (remapped by viommu), and that DMAs to a read-only
#           and to an unmapped IOVA are stopped; each such DMA must then show
#           up as a fault in L1's kernel log (the host IOMMU's report: VFIO
#           type1 does not pass it on to userspace, so L2 does not see it);
#   virtio  the same with viommu's virtio-iommu in L2 (--iommu virtio, the
#           Debian 6.12 image: IMAGE_DIR is its folder): L2's MAP and UNMAP
#           requests shadowed into L1's IOMMU before their status is written;
#           no interrupt remapping (L2's vfio_iommu_type1 gets
#           allow_unsafe_interrupts=1), the MSI still a KVM irqfd.
# Both: viommu-vmm --stats prints the assigned device's counters; edu's BAR0
# must have been a KVM memory slot (no trapped BAR access), with VT-d the MSI
# a KVM irqfd (none through the VMM's I/O thread).
#
#   tests/guest/vfio-edu.sh direct|vtd|virtio VIOMMU_VMM IMAGE_DIR WORK_DIR EDU_DMA
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
USAGE="usage: vfio-edu.sh direct|vtd|virtio VIOMMU_VMM IMAGE_DIR WORK_DIR EDU_DMA"
MODE=${1:?$USAGE}
VMM=${2:?$USAGE}
IMG=${3:?$USAGE}
WORK=${4:?$USAGE}
PROGRAM=${5:?$USAGE}

fail() {
	echo "vfio-edu ($MODE): FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"
[ -x "$PROGRAM" ] || fail "$PROGRAM is not an executable (build the edu-dma target)"
IMGOPT=()
[ "$MODE" = virtio ] && IMGOPT=(--kernel-version 6.12)
guest_prepare "vfio-edu ($MODE)" "$IMG" "$WORK" "${IMGOPT[@]}"
mkdir -p "$WORK/overlay/bin" || fail "cannot create $WORK/overlay"
install -m 0755 "$PROGRAM" "$WORK/overlay/bin/edu-dma" || fail "cannot copy $PROGRAM"
GUEST_TEST=$ROOT/tests/guest/edu-dma-guest.sh
if [ "$MODE" = direct ]; then
	# INTx too: after edu-dma --direct, L2 binds edu to uio_pci_generic
	# (its modules added here) and raises edu's interrupt with MSI off
	# (tests/guest/edu-intx-guest.sh).
	KVER=$(cat "$IMG/kernel-version") || fail "no $IMG/kernel-version"
	UIO=$IMG/kernel-$KVER/lib/modules/$KVER/kernel/drivers/uio
	mkdir -p "$WORK/overlay/lib/uio" || fail "cannot create $WORK/overlay/lib/uio"
	cp "$UIO/uio.ko" "$UIO/uio_pci_generic.ko" "$WORK/overlay/lib/uio/" || fail "no uio modules in $UIO"
	install -m 0755 "$GUEST_TEST" "$WORK/overlay/bin/edu-dma-guest.sh" || fail "cannot copy $GUEST_TEST"
	GUEST_TEST=$ROOT/tests/guest/edu-intx-guest.sh
fi
initrd_overlay "$IMG" "$WORK/initrd-edu-dma.img" "$WORK/overlay"

# L2's RAM stays below 256 MiB: QEMU's edu masks DMA addresses to 28 bits.
VMM_CMD=("$ROOT/tests/guest/vfio-bind.sh" 1234:11e8 "$VMM" --memory 200 --cpus 1 --serial stdio --stats)
case "$MODE" in
direct)
	APPEND="quiet vm.edu_mode=direct"
	;;
vtd)
	VMM_CMD+=(--iommu vtd)
	APPEND="quiet intel_iommu=on vm.modules=vfio_pci,vfio_iommu_type1 vm.edu_mode=vfio vm.edu_faults=host"
	;;
virtio)
	# Debian 6.12's virtio_iommu (IMAGE_DIR is the 6.12 image); no
	# interrupt remapping, so VFIO in L2 needs allow_unsafe_interrupts.
	VMM_CMD+=(--iommu virtio)
	APPEND="quiet deferred_probe_timeout=60 vfio_iommu_type1.allow_unsafe_interrupts=1 vm.modules=virtio_iommu,vfio_pci,vfio_iommu_type1 vm.edu_mode=vfio vm.edu_faults=host"
	;;
*) echo "$USAGE" >&2; exit 2 ;;
esac

# After the VMM, L1 shows its IOMMU's fault lines (the wrapper's stderr).
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$WORK/initrd-edu-dma.img" \
	--test "$GUEST_TEST" --workdir "$WORK" --timeout 280 --append "$APPEND" \
	--nested-arg --qemu-args \
	--nested-arg "-M kernel-irqchip=split -device intel-iommu,intremap=on,caching-mode=on -device edu" \
	--nested-args "--append intel_iommu=on --append iommu=pt --modules vfio,vfio_iommu_type1,vfio_pci" \
	-- env VFIO_BIND_DMESG=1 "${VMM_CMD[@]}" 2>"$WORK/l1.err"
rc=$?
cat "$WORK/l1.err" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc (log $WORK/serial.log)"
TXT=$WORK/serial.txt
tr -d '\r' <"$WORK/serial.log" >"$TXT" || fail "cannot read $WORK/serial.log"
grep -qx "edu-dma-guest: $MODE PASS" "$TXT" || grep -qx "edu-dma-guest: vfio PASS" "$TXT" ||
	fail "the guest's PASS line is not in $WORK/serial.log"
checks=$(grep -c '^edu-dma: PASS: ' "$TXT")
if [ "$MODE" != direct ]; then
	n=0
	while read -r _ _ kind iova; do
		case "$kind" in
		read) what="DMA Read" ;;
		write) what="DMA Write" ;;
		*) fail "unknown fault kind '$kind'" ;;
		esac
		want="DMAR: [$what NO_PASID] Request device [00:01.0] fault addr $iova "
		line=$(grep -F "$want" "$WORK/l1.err" | head -n 1)
		[ -n "$line" ] || fail "L1's IOMMU did not report the blocked DMA '$want' (see $WORK/l1.err)"
		echo "vfio-edu ($MODE): host IOMMU fault: ${line#*DMAR: }"
		n=$((n + 1))
	done < <(grep '^edu-dma-guest: host-fault ' "$TXT")
	[ "$n" -gt 0 ] || fail "the guest named no blocked DMA"
	echo "vfio-edu ($MODE): $checks checks passed in L2, $n blocked DMAs reported by L1's IOMMU"
else
	echo "vfio-edu (direct): $checks checks passed in L2"
fi

# The assigned device's counters (--stats, printed as it is destroyed): edu's
# BAR0 was a KVM memory slot, so none of L2's accesses to it exited to the
# VMM; with VT-d in L2 its MSI was a KVM irqfd (routed through viommu's
# interrupt remapping), so none passed through the VMM's I/O thread, while
# edu-dma counted each interrupt it asked for.
stats=$(grep -E '^viommu-vmm: vfio [0-9a-f:.]+: bar_traps=' "$WORK/l1.err" | tail -n 1)
[ -n "$stats" ] || fail "no device counters from --stats in $WORK/l1.err"
echo "vfio-edu ($MODE): ${stats#viommu-vmm: }"
counter() {
	local v
	v=$(printf '%s\n' "$stats" | grep -oE " $1=[0-9]+" | cut -d= -f2)
	[ -n "$v" ] || fail "counter $1 missing from '$stats'"
	echo "$v"
}
traps=$(counter bar_traps) || exit 1
slots=$(counter bar_slots) || exit 1
[ "$slots" -ge 1 ] || fail "edu's BAR0 never became a memory slot (bar_slots=$slots)"
[ "$traps" -eq 0 ] || fail "$traps BAR accesses were trapped by the VMM (0 wanted with BAR0 as a memory slot)"
if [ "$MODE" = direct ]; then
	# edu's INTx: VFIO's trigger eventfd asserted the pin, the IOAPIC's EOI
	# of it deasserted it and unmasked INTx at the host (VFIO's resample).
	grep -q '^edu-intx: PASS: ' "$TXT" || fail "L2 did not count edu's INTx interrupts"
	intx=$(counter intx) || exit 1
	eoi=$(counter intx_eoi) || exit 1
	[ "$intx" -ge 3 ] || fail "$intx INTx interrupts through VFIO (3 wanted)"
	[ "$eoi" -ge 3 ] || fail "$eoi INTx unmasks at the EOI (3 wanted)"
	echo "vfio-edu (direct): edu's INTx: $intx through VFIO's eventfd, $eoi EOIs resampled"
fi
if [ "$MODE" != direct ]; then
	irqfd=$(counter irqfd_wired) || exit 1
	io=$(counter irqs_iothread) || exit 1
	grep -q '^edu-dma: PASS: interrupt 2: ' "$TXT" || fail "edu-dma did not check its second interrupt"
	[ "$irqfd" -ge 1 ] || fail "the edu MSI never became a KVM irqfd (irqfd_wired=$irqfd)"
	[ "$io" -eq 0 ] || fail "$io MSIs went through the I/O thread (0 wanted: they are irqfds)"
	echo "vfio-edu ($MODE): the edu interrupts arrived through a KVM irqfd ($irqfd wired, $io through the I/O thread)"
fi
echo "vfio-edu ($MODE): PASS"
