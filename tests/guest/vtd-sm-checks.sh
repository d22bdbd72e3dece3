#!/bin/sh
# Guest side of guest_vtd_sm: Linux's intel_iommu driver runs viommu's VT-d in
# scalable mode (intel_iommu=on,sm_on). Runs after vtd-checks.sh (DMAR on,
# queued invalidation, interrupt remapping) and before smoke.sh (virtio-blk
# data through the IOMMU). Checks that the unit offers scalable mode, that the
# driver asked for it and set up its PASID entries without complaint, and that
# the root table pointer the unit took is a scalable-mode one (RTADDR.TTM =
# 01, read with busybox devmem: the host boots the guest with iomem=relaxed, as
# the driver holds the register page) with translation on (GSTS.TES).
smfail() {
	echo "vtd-sm: FAIL: $*"
	dmesg | grep -iE "DMAR|iommu|pasid" | tail -40
	exit 1
}
dmesg | grep -q "DMAR: Enable scalable mode if hardware supports" ||
	smfail "the driver did not see sm_on"
line=$(dmesg | grep -E "DMAR: dmar0: reg_base_addr [0-9a-f]+ ver [0-9]+:[0-9]+ cap [0-9a-f]+ ecap [0-9a-f]+" | head -1)
[ -n "$line" ] || smfail "no 'dmar0: reg_base_addr ... ecap' line in dmesg"
echo "vtd-sm: dmesg: $(echo "$line" | sed 's/^\[[^]]*\] //')"
base=$(echo "$line" | sed -E 's/.*reg_base_addr ([0-9a-f]+) .*/\1/')
ver=$(echo "$line" | sed -E 's/.* ver ([0-9]+):([0-9]+) .*/\1/')
ecap=$(echo "$line" | sed -E 's/.* ecap ([0-9a-f]+).*/\1/')
[ "$ver" -ge 3 ] || smfail "the unit reports version $ver, scalable mode is a 3.x feature"
# ECAP: SMTS 43, SLTS 46, FLTS 47, PASID 40
for b in 40 43 46 47; do
	[ $(((0x$ecap >> b) & 1)) -eq 1 ] || smfail "ECAP bit $b clear in $ecap"
done
echo "vtd-sm: ECAP $ecap has SMTS, FLTS, SLTS and PASID"
dmesg | grep -Ei "RID2PASID failed|PASID table allocation failed|No (first|second) level translation support|No supervisor request support|Domain context map failed" &&
	smfail "the driver could not set up its scalable-mode structures"
busybox --list | grep -qx devmem || smfail "busybox has no devmem applet"
rta=$(devmem $((0x$base + 0x20)) 32) || smfail "devmem read of RTADDR failed"
gsts=$(devmem $((0x$base + 0x1c)) 32) || smfail "devmem read of GSTS failed"
echo "vtd-sm: RTADDR low $rta GSTS $gsts"
[ $(((rta >> 10) & 3)) -eq 1 ] || smfail "RTADDR.TTM is $(((rta >> 10) & 3)), not 01 (scalable mode)"
[ $(((gsts >> 31) & 1)) -eq 1 ] || smfail "GSTS.TES clear: translation is off"
[ $(((gsts >> 30) & 1)) -eq 1 ] || smfail "GSTS.RTPS clear: no root table taken"
echo "vtd-sm: scalable mode in use: RTADDR.TTM = 01, translation on"
# Page requests (ECAP.PRS): the driver set up its page request queue (PQA) and
# the queue's interrupt.
[ $(((0x$ecap >> 29) & 1)) -eq 1 ] || smfail "ECAP.PRS clear in $ecap"
pqa=$(devmem $((0x$base + 0xd0)) 32) || smfail "devmem read of PQA failed"
[ $((pqa & ~0xfff)) -ne 0 ] || smfail "PQA is $pqa: no page request queue"
grep -Eq "dmar[0-9]+-prq" /proc/interrupts || smfail "no dmar-prq interrupt in /proc/interrupts"
echo "vtd-sm: page request queue at PQA $pqa, $(grep -Eo "dmar[0-9]+-prq" /proc/interrupts | head -1) interrupt"
# The virtio device is in a translating (DMA) domain, not an identity one: with
# both first- and second-level translation offered, Linux 6.1 gives DMA domains
# first-level tables, so its DMA below goes through the PASID entry's
# first-level table.
type=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1af4 ] && type=$(cat "$d/iommu_group/type" 2>/dev/null)
done
[ "$type" = DMA ] || smfail "the virtio device's IOMMU group is of type '$type', not DMA"
echo "vtd-sm: the virtio device's IOMMU group is a DMA domain"
