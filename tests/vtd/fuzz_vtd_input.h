/* SPDX-License-Identifier: MIT */
/*
 * Input format of fuzz_vtd (shared with its seed generator).
 *
 *   byte 0      config: bit 0 x2APIC (ECAP.EIM), bit 1 caching mode,
 *               bits 3:2 address width (0/3: 48, 1: 39, 2: 57), bit 4
 *               scalable mode
 *   byte 1      fault recording registers - 1, taken modulo 16
 *   then ops, each an opcode byte and its operands (little endian); an op
 *   cut short by the end of the input is not run:
 *
 *   OP_MMIO_W   off:2 len:1 val:8     register write (len bit 0: 8, else 4)
 *   OP_MMIO_R   off:2 len:1           register read
 *   OP_RAM_W    addr:3 val:8          8 bytes of guest RAM (addr mod RAM size)
 *   OP_DESC     lo:8 hi:8             a descriptor at the unit's queue tail
 *                                     (IQA and IQT as the registers say), then
 *                                     IQT advanced by one (a 32-bit write)
 *   OP_DMA      bus:1 devfn:1 iova:8 len:2 write:1
 *                                     DMA of (len mod 256) + 1 bytes
 *   OP_IRQ      bus:1 devfn:1 addr:4 data:4
 *                                     an MSI through viommu_ir_deliver
 *   OP_BOOT     (none)                Linux's boot sequence with the tables of
 *                                     OP_TABLES: root table, register-based
 *                                     flushes, QI, IR, translation on
 *   OP_TABLES   slroot_page:1 ctx_tt:1
 *                                     root entry of bus 0, a context entry
 *                                     for 00:01.0 (TT as given) with DID 1,
 *                                     and a 4 KiB mapping of IOVA 0x1000
 *   OP_INJECT   kind:1 n:1            add a completion rule: kind 0 drop,
 *                                     1 delay of 1 us; on the n-th match
 *   OP_SM_TABLES pgtt:1 flags:1       scalable-mode structures: root entry of
 *                                     bus 0 (both halves), a context entry for
 *                                     00:01.0 (PASIDE, RID_PASID 0), its
 *                                     PASID directory entry 0 and PASID
 *                                     entries 0 and 1 (PGTT pgtt mod 8, DID
 *                                     1, AW 2; flags bit 0 FPD, bit 1 FLPM 1),
 *                                     and IOVA 0x1000 mapped to FV_DATA in
 *                                     the second-level table of OP_TABLES and
 *                                     in a first-level table (flags bit 2:
 *                                     read-only, bit 3: supervisor)
 *   OP_SM_BOOT  (none)                Linux's scalable-mode boot: QI with
 *                                     256-bit descriptors, RTADDR.TTM = 01,
 *                                     IR, global flushes, translation on
 *   OP_DESC256  q0:8 q1:8 q2q3:1      a 256-bit descriptor at the tail (q2 and
 *                                     q3 are 0, or 1 when the byte's bit 0/1
 *                                     is set), then IQT advanced by 32 bytes
 *   OP_DMA_PASID bus:1 devfn:1 pasid:3 iova:8 len:2 write:1 priv:1
 *                                     DMA with a PASID (pasid mod 2^20)
 *   OP_PRQ      bus:1 devfn:1 pasid:3 addr:8 group:2 flags:1
 *                                     a page request to the unit's queue
 *                                     (scalable mode): pasid mod 2^20, or
 *                                     none with flags bit 0; group mod 512;
 *                                     flags bit 1 last, bits 4:2 R/W/X, bit
 *                                     5 privileged
 */
#ifndef VIOMMU_FUZZ_VTD_INPUT_H
#define VIOMMU_FUZZ_VTD_INPUT_H

#define FV_RAM_SIZE (1u << 20)

enum {
	OP_MMIO_W = 0,
	OP_MMIO_R = 1,
	OP_RAM_W = 2,
	OP_DESC = 3,
	OP_DMA = 4,
	OP_IRQ = 5,
	OP_BOOT = 6,
	OP_TABLES = 7,
	OP_INJECT = 8,
	OP_SM_TABLES = 9,
	OP_SM_BOOT = 10,
	OP_DESC256 = 11,
	OP_DMA_PASID = 12,
	OP_PRQ = 13,
	OP_COUNT
};

/* Guest RAM layout the canned ops use */
#define FV_ROOT  0x10000u
#define FV_CTX   0x11000u
#define FV_IQ    0x20000u
#define FV_STAT  0x30000u
#define FV_IRT   0x40000u
#define FV_SL    0x50000u /* second-level tables: 0x50000 + page * 0x1000 */
#define FV_SMDIR 0x60000u /* scalable mode: PASID directory of 00:01.0 */
#define FV_SMPT  0x61000u /* its PASID table */
#define FV_FL    0x62000u /* first-level tables: 0x62000 to 0x66000 */
#define FV_CTXHI 0x12000u /* upper scalable-mode context table of bus 0 */
#define FV_PRQ   0x70000u /* page request queue (OP_SM_BOOT) */
#define FV_DATA  0x80000u

#endif /* VIOMMU_FUZZ_VTD_INPUT_H */
