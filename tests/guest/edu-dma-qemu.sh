#!/usr/bin/env bash
# guest_edu_dma_qemu: proves the L2 test program edu-dma (tests/guest/edu-dma.c)
# against the reference, QEMU's own edu device, in two guest boots:
#   vfio    QEMU with -M q35,kernel-irqchip=split -device intel-iommu,intremap=on
#           -device edu; the guest boots with intel_iommu=on, loads vfio-pci and
#           runs edu-dma --vfio (data round trips through VFIO-mapped IOVAs, MSI
#           through an eventfd, DMAs to a read-only and to an unmapped IOVA
#           blocked), and finds the IOMMU's report of each blocked DMA in its
#           kernel log; then again with BAR0 through pread/pwrite (--no-mmap);
#   direct  QEMU with -device edu and no IOMMU; edu-dma --direct (guest-physical
#           addresses from /proc/self/pagemap).
# The same program later checks viommu-vmm's VFIO passthrough (L2 under
# viommu-vmm). The static binary goes into the guest as an extra cpio appended
# to the initramfs; tests/guest/edu-dma-guest.sh runs it.
#
#   tests/guest/edu-dma-qemu.sh IMAGE_DIR WORK_DIR EDU_DMA [vfio|direct]...
#
# Without a mode both run. Exit status: 0 pass, 77 skip (no kernel package can
# be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
USAGE="usage: edu-dma-qemu.sh IMAGE_DIR WORK_DIR EDU_DMA [vfio|direct]..."
IMG=${1:?$USAGE}
WORK=${2:?$USAGE}
PROGRAM=${3:?$USAGE}
shift 3
MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(vfio direct)
QEMU=${VIOMMU_QEMU:-qemu-system-x86_64}

fail() {
	echo "edu-dma-qemu: FAIL: $*" >&2
	exit 1
}

command -v "$QEMU" >/dev/null || fail "$QEMU not found; install the Debian package qemu-system-x86"
[ -x "$PROGRAM" ] || fail "$PROGRAM is not an executable (build the edu-dma target)"
for m in "${MODES[@]}"; do
	case "$m" in vfio | direct) ;; *) echo "$USAGE" >&2; exit 2 ;; esac
done

guest_prepare "edu-dma-qemu" "$IMG" "$WORK"
initrd_with "$IMG" "$WORK/initrd-edu-dma.img" "$PROGRAM" edu-dma

# 256 MiB keeps all guest RAM below edu's 28-bit DMA mask.
BASE=("$QEMU" -accel kvm -cpu host -m 256 -smp 1 -display none -nodefaults -no-reboot
	-no-user-config -serial stdio)
for m in "${MODES[@]}"; do
	case "$m" in
	vfio)
		# shellcheck disable=SC2054 # the commas belong to QEMU's option syntax
		VMM=("${BASE[@]}" -M q35,kernel-irqchip=split -device intel-iommu,intremap=on -device edu)
		APPEND="quiet intel_iommu=on vm.modules=vfio_pci,vfio_iommu_type1 vm.edu_mode=vfio"
		;;
	direct)
		VMM=("${BASE[@]}" -M q35 -device edu)
		APPEND="quiet vm.edu_mode=direct"
		;;
	esac
	"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinux" --initrd "$WORK/initrd-edu-dma.img" \
		--test "$ROOT/tests/guest/edu-dma-guest.sh" --workdir "$WORK/$m" --timeout 240 \
		--append "$APPEND" -- "${VMM[@]}"
	rc=$?
	[ "$rc" -eq 0 ] || fail "$m: scripts/guest-run failed with status $rc (log $WORK/$m/serial.log)"
	LOG=$WORK/$m/serial.log
	# Console lines end in \r\n. (A file, not a pipe into grep -q: with
	# pipefail, grep quitting early would fail the pipeline.)
	TXT=$WORK/$m/serial.txt
	tr -d '\r' <"$LOG" >"$TXT" || fail "cannot read $LOG"
	grep -qx "edu-dma-guest: $m PASS" "$TXT" || fail "$m: the guest's PASS line is not in $LOG"
	if [ "$m" = vfio ]; then
		grep -q '^edu-dma-guest: all [1-9][0-9]* blocked DMAs reported by the IOMMU$' "$TXT" ||
			fail "vfio: the fault reports were not all found (see $LOG)"
	fi
	echo "edu-dma-qemu: $m: $(grep -c '^edu-dma: PASS: ' "$TXT") checks passed in the guest"
done
echo "edu-dma-qemu: PASS (${MODES[*]})"
