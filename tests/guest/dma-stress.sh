#!/usr/bin/env bash
# guest_dma_stress_*: Linux's virtio-blk driver moving data through viommu-vmm
# under pressure, every word checked (tests/guest/dma-stress.c): O_DIRECT reads
# and write-then-read-backs of random sizes and scatter lists on both vCPUs,
# while other processes fork, fill and check memory so freed pages are reused
# at once. With a strict IOMMU each buffer is unmapped as its request
# completes; a translation used after its invalidation would put disk data in
# a stranger's page, leave a buffer unfilled or write the wrong bytes.
# Builds (or reuses) the Debian guest image; runs the VMM directly where the
# host's KVM can boot Linux, else in the nested L1 of scripts/nested-run.
#
#   tests/guest/dma-stress.sh VIOMMU_VMM|qemu IMAGE_DIR WORK_DIR DMA_STRESS MODE [SECONDS [R,W,C]]
#
# MODE: strict (VT-d, iommu.strict=1), lazy (VT-d, iommu.strict=0),
# sm (VT-d in scalable mode, strict), pt (VT-d, the disk in the guest's
# pass-through domain: iommu.passthrough=1) or none (no IOMMU). SECONDS of stress in
# the guest (default 60); R,W,C readers, writers and churners (default
# 2,1,2). The guest boots without `quiet`, so a kernel
# warning reaches the log. `qemu` instead of viommu-vmm runs the same guest
# and checks under QEMU (the reference): intel-iommu with caching mode for
# strict, without for lazy (with it Linux makes every domain strict); no sm.
# DMA_STRESS_MEMORY_MIB sets the guest's memory (default 512); past 3072 MiB
# the rest lies above 4 GiB (viommu-vmm moves RAM past 3 GiB there), and from
# 4096 MiB on (1 GiB up there) the run must show I/O buffers up there
# (dma-stress reads their frames).
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
USAGE="usage: dma-stress.sh VIOMMU_VMM|qemu IMAGE_DIR WORK_DIR DMA_STRESS strict|lazy|sm|pt|none [SECONDS [R,W,C]]"
VMM=${1:?$USAGE}
IMG=${2:?$USAGE}
WORK=${3:?$USAGE}
PROGRAM=${4:?$USAGE}
MODE=${5:?$USAGE}
SECS=${6:-60}
WORKERS=${7:-2,1,2}
MEMORY=${DMA_STRESS_MEMORY_MIB:-512}

fail() {
	echo "dma-stress ($MODE): FAIL: $*" >&2
	exit 1
}

[ -x "$PROGRAM" ] || fail "$PROGRAM is not an executable (build the dma-stress target)"
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] || fail "SECONDS must be a positive number, not '$SECS'"
if ! [[ "$WORKERS" =~ ^([0-9]|1[0-6]),([0-9]|1[0-6]),([0-9]|1[0-6])$ ]] || [[ "$WORKERS" == 0,0,* ]]; then
	fail "R,W,C must be three counts of 0 to 16, with a reader or a writer, not '$WORKERS'"
fi
if ! [[ "$MEMORY" =~ ^[1-9][0-9]*$ ]] || [ "$MEMORY" -lt 256 ] || [ "$MEMORY" -gt 16384 ]; then
	fail "DMA_STRESS_MEMORY_MIB must be 256 to 16384, not '$MEMORY'"
fi
case "$MODE" in
strict) IOMMU=vtd; KARGS="intel_iommu=on iommu.strict=1"; GROUP=DMA ;;
lazy) IOMMU=vtd; KARGS="intel_iommu=on iommu.strict=0"; GROUP=DMA-FQ ;;
sm) IOMMU=vtd,scalable=on; KARGS="intel_iommu=on,sm_on iommu.strict=1"; GROUP=DMA ;;
pt) IOMMU=vtd; KARGS="intel_iommu=on iommu.passthrough=1"; GROUP=identity ;;
none) IOMMU=none; KARGS=""; GROUP=none ;;
*) echo "$USAGE" >&2; exit 2 ;;
esac
if [ "$VMM" = qemu ]; then
	QEMU=${VIOMMU_QEMU:-qemu-system-x86_64}
	command -v "$QEMU" >/dev/null || fail "$QEMU not found; install the Debian package qemu-system-x86"
	[ "$MODE" != sm ] || fail "mode sm is viommu-vmm's only"
fi
[ "$VMM" = qemu ] || [ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "dma-stress ($MODE)" "$IMG" "$WORK"
DISK=$WORK/disk.img
DISK_MIB=64 # its first three quarters are read-only (dma-stress.c)
"$PROGRAM" --make-disk "$DISK" "$DISK_MIB" || fail "cannot write $DISK"
cp "$DISK" "$WORK/disk.orig" || fail "cannot copy $DISK"
initrd_with "$IMG" "$WORK/initrd-dma-stress.img" "$PROGRAM" dma-stress
cat >"$WORK/guest.sh" <<'EOF'
#!/bin/sh
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -b /dev/vda ] || { echo "dma-stress: FAIL: no /dev/vda after 5 s"; exit 1; }
# The disk's PCI function is in an IOMMU group of the expected type (DMA:
# strict, DMA-FQ: lazy, identity: pass-through), or in none without an IOMMU.
pci=$(readlink -f /sys/block/vda/device/..)
type=$(cat "$pci/iommu_group/type" 2>/dev/null || echo none)
echo "dma-stress: ${pci##*/}: IOMMU domain type $type"
[ "$type" = "${VM_STRESS_GROUP:?}" ] || { echo "dma-stress: FAIL: domain type $type, expected $VM_STRESS_GROUP"; exit 1; }
if [ "$type" != none ]; then
	dmesg | grep -q "DMAR: IOMMU enabled" || { echo "dma-stress: FAIL: DMA remapping is not enabled"; exit 1; }
fi
# readers, writers and churners: R,W,C split on the commas
dma-stress /dev/vda "${VM_STRESS_SECONDS:?}" $(echo "${VM_STRESS_WORKERS:?}" | tr , ' ') || exit 1
# No DMA was blocked or reported: a strict guest's buffers stay mapped
# while the device uses them.
if dmesg | grep -Ei "DMAR.*(fault|error)"; then
	echo "dma-stress: FAIL: the IOMMU reported faults or errors"
	exit 1
fi
EOF

if [ "$VMM" = qemu ]; then
	VMM_CMD=("$QEMU" -accel kvm -cpu host -m "$MEMORY" -smp 2 -M q35,kernel-irqchip=split
		-display none -nodefaults -no-reboot -no-user-config -serial stdio
		-drive "file=$DISK,format=raw,if=none,id=vd0")
	case "$MODE" in
	none) VMM_CMD+=(-device "virtio-blk-pci,drive=vd0,disable-legacy=on") ;;
	*)
		cm=on
		[ "$MODE" = strict ] || cm=off
		VMM_CMD+=(-device "intel-iommu,intremap=on,caching-mode=$cm"
			-device "virtio-blk-pci,drive=vd0,iommu_platform=on,disable-legacy=on")
		;;
	esac
else
	VMM_CMD=("$VMM" --memory "$MEMORY" --cpus 2 --disk "$DISK" --serial stdio --iommu "$IOMMU" --stats)
fi
"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$WORK/initrd-dma-stress.img" \
	--test "$WORK/guest.sh" --workdir "$WORK" --timeout $((SECS + 240)) \
	--nested-args "--memory $((MEMORY > 2048 ? MEMORY + 1024 : 3072))" \
	--append "$KARGS vm.modules=virtio_pci,virtio_blk vm.stress_seconds=$SECS vm.stress_workers=$WORKERS vm.stress_group=$GROUP" \
	-- "${VMM_CMD[@]}" \
	2>"$WORK/vmm.err"
rc=$?
cat "$WORK/vmm.err" >&2
TXT=$WORK/serial.txt
tr -d '\r' <"$WORK/serial.log" >"$TXT" || fail "cannot read $WORK/serial.log"
# A kernel warning is a failure even when the checks passed, but for one the
# nested harness causes under any VMM (QEMU's too): L1 is QEMU 7.2's TCG, whose
# SVM does not intercept XSETBV, so L1's KVM never sees the guest enable its
# XSAVE features, CPUID 0xD keeps the size of the initial XCR0 and the guest
# warns ("XSAVE consistency problem") and runs with FXSAVE.
warned=$(grep -aE '\[ *[0-9.]+\] (WARNING:|BUG:|kernel BUG|general protection fault|Oops|watchdog: |rcu: INFO: |INFO: task .* blocked)' "$TXT" |
	grep -av 'fpu__init_system_xstate')
if [ -n "$warned" ]; then
	echo "$warned" >&2
	fail "the guest kernel warned (above; log $WORK/serial.log)"
fi
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc (log $WORK/serial.log)"
line=$(grep -a '^dma-stress: [0-9]* reads' "$TXT" | tail -n 1)
[ -n "$line" ] || fail "the guest printed no totals (log $WORK/serial.log)"
# Where the buffers were: with memory above 4 GiB, some of them there.
pages=$(grep -a '^dma-stress: I/O buffer pages:' "$TXT" | tail -n 1)
[ -n "$pages" ] || fail "the guest printed no buffer page count (log $WORK/serial.log)"
high=$(sed -E 's/.* ([0-9]+) above 4 GiB.*/\1/' <<<"$pages")
if [ "$MEMORY" -ge 4096 ] && ! [ "$high" -gt 0 ] 2>/dev/null; then
	fail "a guest with $MEMORY MiB had no I/O buffer above 4 GiB (${pages#dma-stress: })"
fi
# The read-only part is as the host wrote it.
# shellcheck disable=SC2017 # the read-only part as dma-stress.c computes it
cmp -s -n $(((DISK_MIB << 20) / 4 * 3)) "$DISK" "$WORK/disk.orig" || fail "the read-only part of the disk changed"
echo "dma-stress ($MODE): PASS: ${line#dma-stress: }; ${pages#dma-stress: }"
