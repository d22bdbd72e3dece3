#!/usr/bin/env bash
# guest_vtd_hostile: a hostile guest program against viommu-vmm's VT-d unit.
# The guest boots with intel_iommu=off intremap=off, so its own driver leaves
# the unit alone (with interrupt remapping on, Linux would own the
# invalidation queue too), and iomem=relaxed so /dev/mem reaches the register
# page the DMAR code has claimed. memmap=1M$BASE keeps 1 MiB of RAM away from
# the kernel: the program builds its root/context/page tables and its
# invalidation queue there. tests/guest/vtd-hostile-guest.sh then, with busybox
# devmem (32- and 64-bit) and the edu device's DMA engine: points the root
# table outside RAM (fault reason 0x08, FSTS.PPF), overflows the fault
# recording registers (FSTS.PFO, clearing F and PFO), and sends malformed
# invalidation descriptors (FSTS.IQE, IQH at the bad one, IQERCD.IQEI), fixing
# each and going on. The VMM has to take all of it and exit 0 when the guest
# powers off (scripts/guest-run checks both).
#
#   tests/guest/vtd-hostile.sh VIOMMU_VMM IMAGE_DIR WORK_DIR
#
# Exit status: 0 pass, 77 skip (no kernel package can be downloaded), else fail.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/guest/lib.sh
. "$ROOT/tests/guest/lib.sh"
USAGE="usage: vtd-hostile.sh VIOMMU_VMM IMAGE_DIR WORK_DIR"
VMM=${1:?$USAGE}
IMG=${2:?$USAGE}
WORK=${3:?$USAGE}
BASE=0x8000000 # 128 MiB: below the initrd, which viommu-vmm puts at the top of low RAM

fail() {
	echo "vtd-hostile: FAIL: $*" >&2
	exit 1
}

[ -x "$VMM" ] || fail "$VMM is not an executable (build the viommu-vmm target)"

guest_prepare "vtd-hostile" "$IMG" "$WORK"

"$ROOT/scripts/guest-run" --kernel "$IMG/vmlinuz" --initrd "$IMG/initrd.img" \
	--test "$ROOT/tests/guest/vtd-hostile-guest.sh" --workdir "$WORK" --timeout 240 \
	--append "quiet intel_iommu=off intremap=off iomem=relaxed memmap=1M\$$BASE vm.hostile_base=$BASE" \
	-- "$VMM" --memory 256 --cpus 1 --edu --serial stdio --iommu vtd --stats \
	2>"$WORK/stderr.log"
rc=$?
cat "$WORK/stderr.log" >&2
[ "$rc" -eq 0 ] || fail "scripts/guest-run failed with status $rc"
# The VMM's fault lines (standard error): every fault either printed or
# counted in a "not printed" line, and the guest's burst (more than 20 faults
# a second) has some left out, so the limit took effect.
ERRLOG=$WORK/stderr.log
total=$(tr -d '\r' <"$ERRLOG" | sed -n 's/^viommu-vmm: iommu translations=.* faults=\([0-9]*\) .*/\1/p' | tail -1)
printed=$(tr -d '\r' <"$ERRLOG" | grep -c '^viommu-vmm: fault {')
left=$(tr -d '\r' <"$ERRLOG" | sed -n 's/^viommu-vmm: \([0-9]*\) more faults in that second not printed.*/\1/p' |
	awk '{ n += $1 } END { print n + 0 }')
[ -n "$total" ] || fail "no 'faults=' count from --stats on the VMM's standard error ($ERRLOG)"
# (a) 1, (b) 8 + 2 with 8 recording registers, the burst 120, and more after.
[ "$total" -ge 130 ] || fail "the VMM counted $total faults; the guest made at least 130"
[ "$left" -gt 0 ] || fail "no fault line was left out ($printed printed of $total): the burst did not reach 20 a second?"
[ $((printed + left)) -eq "$total" ] ||
	fail "$printed fault lines printed and $left left out, but the VMM counted $total faults"
echo "vtd-hostile: $total faults: $printed lines printed, $left left out and counted"
LOG=$WORK/serial.log
for want in "(a) PASS" "(b) PASS" "(b') PASS" "(c) PASS" "all checks passed"; do
	grep -qF "vtd-hostile: $want" < <(tr -d '\r' <"$LOG") || fail "the guest's '$want' line is not in $LOG"
done
echo "vtd-hostile: PASS: architectural errors seen by the guest; viommu-vmm stayed up and exited 0"
