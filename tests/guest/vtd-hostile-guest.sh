#!/bin/sh
# Guest side of guest_vtd_hostile (busybox sh): a hostile program drives
# viommu-vmm's VT-d unit directly through /dev/mem, the guest's own
# intel_iommu driver having left it alone (intel_iommu=off intremap=off), and
# checks that it gets the architectural errors (VT-d spec, chapter 7 fault
# reasons, 6.5.2 queued invalidation, 11.4 registers):
#   (a) a root table pointer outside RAM with translation on: an edu DMA gets
#       fault reason 0x08 in fault recording register FRI, FSTS.PPF set;
#   (b) more faults than fault recording registers: FSTS.PFO, the records
#       keep the first faults, clearing F (32- and 64-bit writes) and PFO
#       works, and recording resumes; a hand-built root, context and
#       second-level table then translates, and the reasons 0x01, 0x02, 0x06
#       and 0x05 come out of it;
#   (c) queued invalidation in a reserved region: an unknown descriptor type,
#       a reserved bit and a tail beyond the queue each set FSTS.IQE with
#       IQH at the bad descriptor; once fixed and IQE cleared the queue goes
#       on, and wait descriptors write their status (and set ICS.IWC).
# The VMM must survive it all: the host checks that the guest powers off and
# viommu-vmm exits 0.
#   vm.hostile_base=ADDR  a 1 MiB region of guest-physical memory the kernel
#                         does not use (memmap=1M$ADDR): tables and queue
# Registers are read and written with busybox devmem in 32- and 64-bit widths.

VTD=0xfed90000
B=$((${VM_HOSTILE_BASE:?vm.hostile_base missing}))
NOWHERE=0x4000000000 # 256 GiB: neither RAM nor MMIO in viommu-vmm's map
BURST=120            # faulting DMAs in a row in (b)

# Also from inside $(...): the message goes to the console, and the whole
# script stops ($$ is the script's shell, even in a subshell).
fail() {
	echo "vtd-hostile: FAIL: $*" >&2
	kill -TERM $$ 2>/dev/null
	exit 1
}
say() {
	echo "vtd-hostile: $*"
}
hex() {
	printf '0x%08x' "$1"
}

busybox --list | grep -qx devmem || fail "busybox has no devmem applet"
[ -c /dev/mem ] || fail "no /dev/mem"

# ---- register and memory access ------------------------------------------
rd32() { # rd32 ADDR: the 32-bit value, as a number
	v=$(devmem "$1" 32) || fail "devmem read of $1 failed"
	echo $((v))
}
wr32() { # wr32 ADDR VALUE
	devmem "$1" 32 "$2" || fail "devmem write of $2 at $1 failed"
}
rd64() { # rd64 ADDR: sets HI and LO (numbers) from one 64-bit read
	v=$(devmem "$1" 64) || fail "devmem 64-bit read of $1 failed"
	v=${v#0x}
	v=${v#0X}
	while [ ${#v} -lt 16 ]; do v=0$v; done
	HI=$((0x${v%????????}))
	LO=$((0x${v#????????}))
}
wr64() { # wr64 ADDR HI LO: one 64-bit write
	devmem "$1" 64 "$(printf '0x%08x%08x' "$2" "$3")" || fail "devmem 64-bit write at $1 failed"
}
reg() { # reg OFFSET: the address of a VT-d register
	echo $((VTD + $1))
}
expect32() { # expect32 WHAT GOT WANT
	[ $(($2)) -eq $(($3)) ] || fail "$1 is $(hex "$2"), expected $(hex "$3")"
}

# Registers (VT-d 11.4)
VER=0x000 CAP=0x008 ECAP=0x010 GCMD=0x018 GSTS=0x01c RTADDR=0x020
FSTS=0x034 FECTL=0x038 IQH=0x080 IQT=0x088 IQA=0x090 ICS=0x09c IECTL=0x0a0 IQERCD=0x0b0
GCMD_TE=0x80000000 GCMD_SRTP=0x40000000 GCMD_QIE=0x04000000
GSTS_TES=0x80000000 GSTS_RTPS=0x40000000 GSTS_QIES=0x04000000 GSTS_IRES=0x02000000
FSTS_PFO=0x1 FSTS_PPF=0x2 FSTS_IQE=0x10
ECTL_IM=0x80000000 ECTL_IP=0x40000000

fsts() { # the low byte of FSTS (status bits; FRI is 15:8)
	echo $(($(rd32 "$(reg $FSTS)") & 0xff))
}
fri() {
	echo $((($(rd32 "$(reg $FSTS)") >> 8) & 0xff))
}

# ---- the unit, as the guest's kernel left it --------------------------------
dmesg | grep -q "DMAR: IOMMU enabled" && fail "the guest's intel_iommu driver took the unit (want intel_iommu=off)"
expect32 "VER" "$(rd32 "$(reg $VER)")" 0x10
g=$(rd32 "$(reg $GSTS)")
[ $((g & (GSTS_TES | GSTS_QIES | GSTS_IRES))) -eq 0 ] ||
	fail "GSTS is $(hex "$g"): the guest's kernel left translation, QI or IR on (want intremap=off intel_iommu=off)"
rd64 "$(reg $CAP)"
CAP_HI=$HI CAP_LO=$LO
# The same register as two 32-bit reads.
expect32 "CAP[31:0] (32-bit read)" "$(rd32 "$(reg $CAP)")" "$CAP_LO"
expect32 "CAP[63:32] (32-bit read)" "$(rd32 $(($(reg $CAP) + 4)))" "$CAP_HI"
FRO=$((((CAP_LO >> 24) & 0xff | (CAP_HI & 3) << 8) * 16))
NFR=$((((CAP_HI >> 8) & 0xff) + 1))
rd64 "$(reg $ECAP)"
[ $((LO & 2)) -ne 0 ] || fail "ECAP $(printf '0x%08x%08x' "$HI" "$LO") has no QI"
say "VER 0x10, CAP $(printf '0x%08x%08x' "$CAP_HI" "$CAP_LO"): fault recording registers at $(hex $FRO), $NFR of them; GSTS $(hex "$g")"
[ "$NFR" -ge 2 ] || fail "CAP.NFR says $NFR fault recording register(s); this test needs at least 2"
expect32 "FECTL at reset" "$(rd32 "$(reg $FECTL)")" $ECTL_IM

frcd() { # frcd I: the address of fault recording register I
	echo $((VTD + FRO + 16 * $1))
}

# ---- the edu device -----------------------------------------------------------
dev=""
for d in /sys/bus/pci/devices/*; do
	[ -r "$d/vendor" ] || continue
	if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
		dev=$d
		break
	fi
done
[ -n "$dev" ] || fail "no edu device (1234:11e8)"
bdf=${dev##*/} # 0000:BB:DD.F
bus=$((0x$(echo "$bdf" | cut -d: -f2)))
slot=$((0x$(echo "$bdf" | cut -d: -f3 | cut -d. -f1)))
fn=$(echo "$bdf" | cut -d. -f2)
DEVFN=$((slot << 3 | fn))
SID=$((bus << 8 | DEVFN))
cmd=$(dd if="$dev/config" bs=2 skip=2 count=1 2>/dev/null | od -An -tu2 | tr -d ' ')
new=$((cmd | 0x6)) # memory space, bus master
# shellcheck disable=SC2059 # the format holds the two bytes as octal escapes
printf "$(printf '\\%03o\\%03o' $((new & 0xff)) $((new >> 8)))" |
	dd of="$dev/config" bs=2 seek=2 count=1 conv=notrunc 2>/dev/null || fail "cannot write the command register"
read -r rstart _ <"$dev/resource" || fail "cannot read $dev/resource"
EDU=$((rstart))
[ "$EDU" -ne 0 ] || fail "edu BAR0 is not assigned"
say "edu at $bdf (source ID $(printf '0x%04x' $SID)), BAR0 $(hex $EDU)"

EDU_BUF=0x40000
# dma DIR IOVA: one 8-byte DMA by edu; DIR "read" = memory to device (the
# device reads IOVA), "write" = device to memory. Sets DMA_ERR to edu's error
# register (0 ok, 2 the DMA faulted).
dma() {
	if [ "$1" = read ]; then
		wr64 $((EDU + 0x80)) $(($2 >> 32)) $(($2 & 0xffffffff))
		wr64 $((EDU + 0x88)) 0 $EDU_BUF
		c=1
	else
		wr64 $((EDU + 0x80)) 0 $EDU_BUF
		wr64 $((EDU + 0x88)) $(($2 >> 32)) $(($2 & 0xffffffff))
		c=3
	fi
	wr32 $((EDU + 0x90)) 8
	wr32 $((EDU + 0x98)) $c
	DMA_ERR=$(rd32 $((EDU + 0xa0)))
}
dma_ok() { # dma_ok DIR IOVA
	dma "$1" "$2"
	e=$DMA_ERR
	[ "$e" -eq 0 ] || fail "edu DMA $1 at $(printf '0x%x' "$2") failed: edu error $e, expected success"
}
dma_fault() { # dma_fault DIR IOVA
	dma "$1" "$2"
	e=$DMA_ERR
	[ "$e" -eq 2 ] || fail "edu DMA $1 at $(printf '0x%x' "$2"): edu error $e, expected 2 (DMA fault)"
}

# check_record I IOVA REASON DIR: fault recording register I holds a fault
# (F set) of edu's source ID with that reason, page address and type
# (T1, bit 126: 1 read, 0 write).
check_record() {
	rd64 "$(frcd "$1")"
	lo=$LO hi=$HI
	[ $((lo ^ ($2 & 0xfffff000) | hi ^ ($2 >> 32))) -eq 0 ] ||
		fail "record $1: fault info $(printf '0x%08x%08x' "$hi" "$lo"), expected page $(printf '0x%x' "$2")"
	rd64 $(($(frcd "$1") + 8))
	t1=0
	[ "$4" = read ] && t1=1
	[ $((HI >> 31 & 1)) -eq 1 ] || fail "record $1: F is clear (high qword $(printf '0x%08x%08x' "$HI" "$LO"))"
	[ $((HI & 0xff)) -eq $(($3)) ] ||
		fail "record $1: fault reason $(printf '0x%02x' $((HI & 0xff))), expected $(printf '0x%02x' "$3")"
	[ $((HI >> 30 & 1)) -eq "$t1" ] || fail "record $1: T1 is $((HI >> 30 & 1)), expected $t1 ($4)"
	[ $((LO & 0xffff)) -eq "$SID" ] || fail "record $1: source ID $(printf '0x%04x' $((LO & 0xffff))), expected $(printf '0x%04x' $SID)"
	say "record $1: $(printf '0x%08x%08x_%08x%08x' "$HI" "$LO" "$hi" "$lo") = F, reason $(printf '0x%02x' "$3"), $4, page $(printf '0x%x' "$2")"
}
f_clear() { # f_clear I: write 1 to F of record I, 32-bit at the top dword
	wr32 $(($(frcd "$1") + 12)) 0x80000000
}

# ---- sanity: translation off, edu's DMA passes untranslated --------------------
SRC=$((B + 0x2000)) DST=$((B + 0x3000)) STATUS=$((B + 0x1000)) IQ=$B
wr64 $SRC 0x5a5aa5a5 0x12345678
wr64 $DST 0 0
dma_ok read $SRC
dma_ok write $DST
rd64 $DST
[ $((HI ^ 0x5a5aa5a5 | LO ^ 0x12345678)) -eq 0 ] ||
	fail "with translation off edu copied $(printf '0x%08x%08x' "$HI" "$LO"), expected 0x5a5aa5a512345678"
expect32 "FSTS after DMA with translation off" "$(fsts)" 0
say "translation off: edu copied 8 bytes from $(hex $SRC) to $(hex $DST) untranslated"

# ---- (a) the root table outside RAM ---------------------------------------------
wr64 "$(reg $RTADDR)" $((NOWHERE >> 32)) $((NOWHERE & 0xffffffff))
rd64 "$(reg $RTADDR)"
[ $((HI ^ (NOWHERE >> 32) | LO)) -eq 0 ] || fail "RTADDR reads $(printf '0x%08x%08x' "$HI" "$LO"), wrote $NOWHERE"
wr32 "$(reg $GCMD)" $GCMD_SRTP
g=$(rd32 "$(reg $GSTS)")
[ $((g & GSTS_RTPS)) -ne 0 ] || fail "GSTS $(hex "$g") after SRTP: RTPS clear"
wr32 "$(reg $GCMD)" $GCMD_TE
g=$(rd32 "$(reg $GSTS)")
[ $((g & GSTS_TES)) -ne 0 ] || fail "GSTS $(hex "$g") after TE: TES clear"
say "(a) RTADDR $NOWHERE latched, translation on: GSTS $(hex "$g")"
dma_fault read 0x1000
s=$(fsts)
expect32 "FSTS after the first fault" "$s" $FSTS_PPF
expect32 "FSTS.FRI after the first fault" "$(fri)" 0
check_record 0 0x1000 0x08 read
# The fault event interrupt is masked (IM, as at reset): it is pending.
expect32 "FECTL with a fault pending" "$(rd32 "$(reg $FECTL)")" $((ECTL_IM | ECTL_IP))
say "(a) PASS: root table outside RAM -> reason 0x08, FSTS $(hex "$s"), FECTL IM|IP"

# ---- (b) overflow of the fault recording registers ------------------------------
i=1
while [ "$i" -lt "$NFR" ]; do
	if [ $((i & 1)) -eq 1 ]; then dma_fault write $(((i + 1) << 12)); else dma_fault read $(((i + 1) << 12)); fi
	i=$((i + 1))
done
expect32 "FSTS with every record full" "$(fsts)" $FSTS_PPF
# Two more: no free record -> PFO; neither is recorded.
dma_fault read $(((NFR + 1) << 12))
dma_fault write $(((NFR + 2) << 12))
s=$(fsts)
expect32 "FSTS after overflowing" "$s" $((FSTS_PPF | FSTS_PFO))
i=0
while [ "$i" -lt "$NFR" ]; do
	dir='read'
	[ $((i & 1)) -eq 1 ] && dir='write'
	check_record "$i" $(((i + 1) << 12)) 0x08 $dir
	i=$((i + 1))
done
say "(b) $((NFR + 2)) faults, $NFR records: FSTS $(hex "$s") (PPF|PFO), the first $NFR faults kept"
# A burst: the last DMA again and again (only its command register written),
# as fast as devmem goes. Nothing more is recorded while PFO is set, but the
# VMM still counts and reports every fault: the host checks that the fault
# lines it printed on standard error and the ones it counted as left out (at
# most 20 are printed a second) add up to its fault count (vtd-hostile.sh).
# Each must still fault.
i=0
while [ "$i" -lt "$BURST" ]; do
	wr32 $((EDU + 0x98)) 3
	i=$((i + 1))
done
e=$(rd32 $((EDU + 0xa0)))
[ "$e" -eq 2 ] || fail "after the burst, edu error $e, expected 2 (DMA fault)"
expect32 "FSTS after the burst" "$(fsts)" $((FSTS_PPF | FSTS_PFO))
say "(b) burst of $BURST faulting DMAs: FSTS still PPF|PFO; faults made so far: $((NFR + 2 + BURST))"
# Clear record 0 with a 32-bit write of its top dword: PFO still blocks
# recording, so another fault is not recorded there.
f_clear 0
rd64 $(($(frcd 0) + 8))
[ $((HI >> 31)) -eq 0 ] || fail "record 0: F still set after writing 1 to it"
expect32 "FSTS with records 1.. still pending" "$(fsts)" $((FSTS_PPF | FSTS_PFO))
dma_fault read 0x20000
rd64 $(($(frcd 0) + 8))
[ $((HI >> 31)) -eq 0 ] || fail "a fault was recorded in record 0 while PFO was set"
# The rest with 64-bit writes of the high qword.
i=1
while [ "$i" -lt "$NFR" ]; do
	wr64 $(($(frcd "$i") + 8)) 0x80000000 0
	i=$((i + 1))
done
expect32 "FSTS with every F clear" "$(fsts)" $FSTS_PFO
wr32 "$(reg $FSTS)" $FSTS_PFO
expect32 "FSTS after clearing PFO" "$(fsts)" 0
expect32 "FECTL after servicing everything" "$(rd32 "$(reg $FECTL)")" $ECTL_IM
# Recording resumes, at the next index (0, after a wrap).
dma_fault write 0x30000
expect32 "FSTS after a fault with room again" "$(fsts)" $FSTS_PPF
expect32 "FSTS.FRI" "$(fri)" 0
check_record 0 0x30000 0x08 write
f_clear 0
expect32 "FSTS" "$(fsts)" 0
say "(b) PASS: PFO set on overflow, F and PFO cleared, recording resumed"

# ---- (b') a table built by hand: other reasons, and a working translation --------
# expect_fault DIR IOVA REASON: the DMA faults and lands in record FRI.
expect_fault() {
	dma_fault "$1" "$2"
	expect32 "FSTS after a $1 fault at $2" "$(fsts)" $FSTS_PPF
	n=$(fri)
	check_record "$n" "$2" "$3" "$1"
	f_clear "$n"
	expect32 "FSTS after clearing record $n" "$(fsts)" 0
}
ROOT=$((B + 0x4000)) CTX=$((B + 0x5000)) L4=$((B + 0x6000)) L3=$((B + 0x7000)) L2=$((B + 0x8000)) L1=$((B + 0x9000))
ZERO=$((B + 0xa000))
for a in $ROOT $CTX $L4 $L3 $L2 $L1 $ZERO; do
	dd if=/dev/zero of=/dev/mem bs=4096 count=1 seek=$((a / 4096)) 2>/dev/null ||
		fail "cannot zero $(hex "$a") through /dev/mem"
done
rd64 $((ROOT + 16 * bus))
[ $((HI | LO)) -eq 0 ] || fail "the root table at $(hex $ROOT) is not zero after zeroing it"
wr64 "$(reg $RTADDR)" 0 $ROOT
wr32 "$(reg $GCMD)" $((GCMD_TE | GCMD_SRTP))
expect_fault read 0x1000 0x01 # root entry not present
wr64 $((ROOT + 16 * bus)) 0 $((CTX | 1))
expect_fault read 0x1000 0x02 # context entry not present
# Context entry: SLPTPTR = L4, TT 0, P; AW 2 (4-level), DID 1.
wr64 $((CTX + 16 * DEVFN + 8)) 0 0x102
wr64 $((CTX + 16 * DEVFN)) 0 $((L4 | 1))
wr64 $L4 0 $((L3 | 3))
wr64 $L3 0 $((L2 | 3))
wr64 $L2 0 $((L1 | 3))
wr64 $((L1 + 8)) 0 $((SRC | 1))   # iova 0x1000 -> SRC, read-only
wr64 $((L1 + 24)) 0 $((ZERO | 1)) # iova 0x3000 -> ZERO, read-only
expect_fault read 0x2000 0x06     # not present: a read -> 0x06
wr64 $DST 0 0
dma_ok read 0x3000               # edu's buffer = ZERO's 8 bytes
dma_ok read 0x1000               # edu's buffer = SRC's 8 bytes, through the tables
expect_fault write 0x1000 0x05    # a write to a read-only page
wr32 "$(reg $GCMD)" 0
dma_ok write $DST # translation off again: straight to DST
rd64 $DST
[ $((HI ^ 0x5a5aa5a5 | LO ^ 0x12345678)) -eq 0 ] ||
	fail "edu's buffer after the translated read holds $(printf '0x%08x%08x' "$HI" "$LO"), expected SRC's 0x5a5aa5a512345678"
say "(b') PASS: reasons 0x01, 0x02, 0x06, 0x05 from hand-built tables; iova 0x1000 read SRC's bytes through them"
g=$(rd32 "$(reg $GSTS)")
[ $((g & GSTS_TES)) -eq 0 ] || fail "GSTS $(hex "$g") after GCMD 0: TES still set"

# ---- (c) queued invalidation -------------------------------------------------------
# desc I LO_HI LO_LO HI_HI HI_LO: write descriptor I of the queue.
desc() {
	wr64 $((IQ + 16 * $1)) "$2" "$3"
	wr64 $((IQ + 16 * $1 + 8)) "$4" "$5"
}
# A wait descriptor with status write of DATA to STATUS (+ IF when $2 = if).
wait_desc() { # wait_desc I DATA [if]
	f=0x25 # type 5, SW
	[ "${3:-}" = if ] && f=0x35
	desc "$1" "$2" $f 0 $STATUS
}
iqh() {
	rd64 "$(reg $IQH)"
	echo "$LO"
}
iqt() { # iqt INDEX
	wr64 "$(reg $IQT)" 0 $(($1 << 4))
}
iqei() {
	rd64 "$(reg $IQERCD)"
	echo $((LO & 0xf))
}
status() {
	rd32 $STATUS
}
wr32 $STATUS 0
dd if=/dev/zero of=/dev/mem bs=4096 count=1 seek=$((IQ / 4096)) 2>/dev/null || fail "cannot zero the queue"
wr64 "$(reg $IQT)" 0 0
wr64 "$(reg $IQA)" 0 $IQ # QS 0: 256 descriptors
rd64 "$(reg $IQA)"
expect32 "IQA" "$LO" $IQ
wr32 "$(reg $GCMD)" $GCMD_QIE
g=$(rd32 "$(reg $GSTS)")
[ $((g & GSTS_QIES)) -ne 0 ] || fail "GSTS $(hex "$g") after QIE: QIES clear"
expect32 "IQH after enabling" "$(iqh)" 0
# 0: a good wait descriptor.
wait_desc 0 0x600d0001
iqt 1
expect32 "IQH after a wait descriptor" "$(iqh)" 0x10
expect32 "the status word" "$(status)" 0x600d0001
expect32 "FSTS" "$(fsts)" 0
say "(c) QI on with the queue at $(hex $IQ): a wait descriptor wrote its status"
# 1: an unknown descriptor type (15); 2: a good wait behind it.
desc 1 0 0xf 0 0
wait_desc 2 0x600d0002
iqt 3
expect32 "FSTS after an unknown descriptor type" "$(fsts)" $FSTS_IQE
expect32 "IQH at the bad descriptor" "$(iqh)" 0x10
expect32 "IQERCD.IQEI (invalid descriptor type)" "$(iqei)" 3
expect32 "the status word (queue stopped)" "$(status)" 0x600d0001
expect32 "FECTL with IQE pending" "$(rd32 "$(reg $FECTL)")" $((ECTL_IM | ECTL_IP))
say "(c) unknown type: FSTS IQE, IQH 0x10, IQEI 3, the next wait not run"
# Fix it (an interrupt entry cache global invalidation) and clear IQE.
desc 1 0 0x4 0 0
wr32 "$(reg $FSTS)" $FSTS_IQE
expect32 "FSTS after clearing IQE" "$(fsts)" 0
expect32 "IQH after the fix" "$(iqh)" 0x30
expect32 "the status word after the fix" "$(status)" 0x600d0002
expect32 "FECTL after servicing IQE" "$(rd32 "$(reg $FECTL)")" $ECTL_IM
# 3: a wait descriptor with a reserved bit (12) set.
desc 3 0x600d0003 $((0x25 | 1 << 12)) 0 $STATUS
iqt 4
expect32 "FSTS after a reserved bit" "$(fsts)" $FSTS_IQE
expect32 "IQH at the bad descriptor" "$(iqh)" 0x30
expect32 "IQERCD.IQEI (reserved field)" "$(iqei)" 4
expect32 "the status word (not written)" "$(status)" 0x600d0002
wait_desc 3 0x600d0004 if
wr32 "$(reg $FSTS)" $FSTS_IQE
expect32 "IQH after the fix" "$(iqh)" 0x40
expect32 "the status word" "$(status)" 0x600d0004
expect32 "ICS (wait with IF)" "$(rd32 "$(reg $ICS)")" 1
expect32 "IECTL (masked, pending)" "$(rd32 "$(reg $IECTL)")" $((ECTL_IM | ECTL_IP))
wr32 "$(reg $ICS)" 1
expect32 "ICS after clearing IWC" "$(rd32 "$(reg $ICS)")" 0
expect32 "IECTL after clearing IWC" "$(rd32 "$(reg $IECTL)")" $ECTL_IM
say "(c) reserved bit: FSTS IQE, IQEI 4; fixed: status written, ICS.IWC and IECTL.IP set, then cleared"
# A tail beyond the 256-descriptor queue.
iqt 256
expect32 "FSTS after a tail beyond the queue" "$(fsts)" $FSTS_IQE
expect32 "IQERCD.IQEI (invalid tail)" "$(iqei)" 1
expect32 "IQH" "$(iqh)" 0x40
iqt 4
wr32 "$(reg $FSTS)" $FSTS_IQE
expect32 "FSTS after fixing the tail" "$(fsts)" 0
# And the queue works on: context-cache global, IOTLB global, wait.
desc 4 0 0x11 0 0
desc 5 0 0x12 0 0
wait_desc 6 0x600d0005
iqt 7
expect32 "IQH" "$(iqh)" 0x70
expect32 "FSTS" "$(fsts)" 0
expect32 "the status word" "$(status)" 0x600d0005
wr32 "$(reg $GCMD)" 0
g=$(rd32 "$(reg $GSTS)")
[ $((g & (GSTS_QIES | GSTS_TES))) -eq 0 ] || fail "GSTS $(hex "$g") after GCMD 0"
say "(c) PASS: tail beyond the queue -> IQEI 1; after the fixes context-cache, IOTLB and wait descriptors ran; QI off (GSTS $(hex "$g"))"
say "all checks passed; the VMM is still running"
exit 0
