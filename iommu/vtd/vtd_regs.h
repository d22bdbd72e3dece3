/* SPDX-License-Identifier: MIT */
/*
 * Internal: Intel VT-d register and structure layouts (Intel Virtualization
 * Technology for Directed I/O, Architecture Specification, rev. 3.x/4.x).
 * Sections are cited by number and name: chapter 11 (Register Descriptions),
 * chapter 9 (Translation Structure Formats), 6.5 (Invalidation), 7 (Fault
 * Reporting), 8 (BIOS Considerations: the ACPI DMAR table).
 *
 * Legacy and scalable translation modes (RTADDR.TTM 00 and 01).
 */
#ifndef VIOMMU_VTD_REGS_H
#define VIOMMU_VTD_REGS_H

#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Register offsets (11.4, "Register Descriptions")                         */

#define VTD_REG_VER      0x000u /* 32: Version */
#define VTD_REG_CAP      0x008u /* 64: Capability */
#define VTD_REG_ECAP     0x010u /* 64: Extended Capability */
#define VTD_REG_GCMD     0x018u /* 32: Global Command (write-only) */
#define VTD_REG_GSTS     0x01cu /* 32: Global Status */
#define VTD_REG_RTADDR   0x020u /* 64: Root Table Address */
#define VTD_REG_CCMD     0x028u /* 64: Context Command */
#define VTD_REG_FSTS     0x034u /* 32: Fault Status */
#define VTD_REG_FECTL    0x038u /* 32: Fault Event Control */
#define VTD_REG_FEDATA   0x03cu /* 32: Fault Event Data */
#define VTD_REG_FEADDR   0x040u /* 32: Fault Event Address */
#define VTD_REG_FEUADDR  0x044u /* 32: Fault Event Upper Address */
#define VTD_REG_AFLOG    0x058u /* 64: Advanced Fault Log */
#define VTD_REG_PMEN     0x064u /* 32: Protected Memory Enable */
#define VTD_REG_PLMBASE  0x068u /* 32: Protected Low-Memory Base */
#define VTD_REG_PLMLIMIT 0x06cu /* 32: Protected Low-Memory Limit */
#define VTD_REG_PHMBASE  0x070u /* 64: Protected High-Memory Base */
#define VTD_REG_PHMLIMIT 0x078u /* 64: Protected High-Memory Limit */
#define VTD_REG_IQH      0x080u /* 64: Invalidation Queue Head */
#define VTD_REG_IQT      0x088u /* 64: Invalidation Queue Tail */
#define VTD_REG_IQA      0x090u /* 64: Invalidation Queue Address */
#define VTD_REG_ICS      0x09cu /* 32: Invalidation Completion Status */
#define VTD_REG_IECTL    0x0a0u /* 32: Invalidation Event Control */
#define VTD_REG_IEDATA   0x0a4u /* 32: Invalidation Event Data */
#define VTD_REG_IEADDR   0x0a8u /* 32: Invalidation Event Address */
#define VTD_REG_IEUADDR  0x0acu /* 32: Invalidation Event Upper Address */
#define VTD_REG_IQERCD   0x0b0u /* 64: Invalidation Queue Error Record */
#define VTD_REG_IRTA     0x0b8u /* 64: Interrupt Remapping Table Address */
#define VTD_REG_PQH      0x0c0u /* 64: Page Request Queue Head */
#define VTD_REG_PQT      0x0c8u /* 64: Page Request Queue Tail */
#define VTD_REG_PQA      0x0d0u /* 64: Page Request Queue Address */
#define VTD_REG_PRS      0x0dcu /* 32: Page Request Status */
#define VTD_REG_PECTL    0x0e0u /* 32: Page Request Event Control */
#define VTD_REG_PEDATA   0x0e4u /* 32: Page Request Event Data */
#define VTD_REG_PEADDR   0x0e8u /* 32: Page Request Event Address */
#define VTD_REG_PEUADDR  0x0ecu /* 32: Page Request Event Upper Address */

/* Where this implementation puts the IOTLB registers (ECAP.IRO) and the
 * fault recording registers (CAP.FRO): both offsets are in 16-byte units in
 * the capability registers. 128 records of 16 bytes end at 0xa00. */
#define VTD_IRO          0x100u /* IVA at +0, IOTLB at +8 (11.4.8) */
#define VTD_REG_IVA      (VTD_IRO + 0x0u)
#define VTD_REG_IOTLB    (VTD_IRO + 0x8u)
#define VTD_FRO          0x200u
#define VTD_FRCD_SIZE    16u
#define VTD_MAX_FRCD     128u

/* ------------------------------------------------------------------------ */
/* VER_REG (11.4.1): major 7:4, minor 3:0. 1.0, as QEMU's unit reports. */
#define VTD_VER_VALUE 0x10u
#define VTD_VER_SM_VALUE 0x30u /* 3.0 for a unit with scalable mode */

/* CAP_REG (11.4.2) */
#define VTD_CAP_ND(x)      ((uint64_t)(x) & 7)          /* 2: 256 domains, 8-bit DIDs */
#define VTD_CAP_RWBF       (1ull << 4)
#define VTD_CAP_PLMR       (1ull << 5)
#define VTD_CAP_PHMR       (1ull << 6)
#define VTD_CAP_CM         (1ull << 7)                  /* caching mode */
#define VTD_CAP_SAGAW_SHIFT 8                           /* 12:8 */
#define VTD_CAP_SAGAW_39   (1ull << 9)                  /* bit 1: 3-level */
#define VTD_CAP_SAGAW_48   (1ull << 10)                 /* bit 2: 4-level */
#define VTD_CAP_SAGAW_57   (1ull << 11)                 /* bit 3: 5-level */
#define VTD_CAP_MGAW(x)    (((uint64_t)(x) & 0x3f) << 16) /* width - 1 */
#define VTD_CAP_FRO(x)     (((uint64_t)(x) & 0x3ff) << 24) /* offset / 16 */
#define VTD_CAP_SLLPS_2M   (1ull << 34)
#define VTD_CAP_SLLPS_1G   (1ull << 35)
#define VTD_CAP_PSI        (1ull << 39)
#define VTD_CAP_NFR(x)     (((uint64_t)(x) & 0xff) << 40) /* records - 1 */
#define VTD_CAP_MAMV(x)    (((uint64_t)(x) & 0x3f) << 48)
#define VTD_CAP_FL1GP      (1ull << 56)                 /* first-level 1 GiB pages */
#define VTD_CAP_FL5LP      (1ull << 60)                 /* first-level 5-level paging */

#define VTD_ND_VALUE   2u   /* CAP.ND: 256 domains */
#define VTD_DID_BITS   8u   /* the DID bits a context entry's DID uses */
#define VTD_MAMV_VALUE 18u  /* page-selective invalidation up to 2^18 pages */

/* ECAP_REG (11.4.3) */
#define VTD_ECAP_C         (1ull << 0)  /* page-walk coherency */
#define VTD_ECAP_QI        (1ull << 1)
#define VTD_ECAP_DT        (1ull << 2)
#define VTD_ECAP_IR        (1ull << 3)
#define VTD_ECAP_EIM       (1ull << 4)
#define VTD_ECAP_PT        (1ull << 6)
#define VTD_ECAP_SC        (1ull << 7)
#define VTD_ECAP_IRO(x)    (((uint64_t)(x) & 0x3ff) << 8) /* offset / 16 */
#define VTD_ECAP_MHMV(x)   (((uint64_t)(x) & 0xf) << 20)
#define VTD_ECAP_NEST      (1ull << 26) /* nested translation (PGTT 011) */
#define VTD_ECAP_PRS       (1ull << 29) /* page requests */
#define VTD_ECAP_ERS       (1ull << 30) /* execute requests */
#define VTD_ECAP_SRS       (1ull << 31) /* supervisor requests */
#define VTD_ECAP_PSS(x)    (((uint64_t)(x) & 0x1f) << 35) /* PASID bits - 1 */
#define VTD_ECAP_PASID     (1ull << 40)
#define VTD_ECAP_SMTS      (1ull << 43) /* scalable-mode translation */
#define VTD_ECAP_SLADS     (1ull << 45) /* second-level accessed/dirty */
#define VTD_ECAP_SLTS      (1ull << 46) /* second-level translation (PGTT 010) */
#define VTD_ECAP_FLTS      (1ull << 47) /* first-level translation (PGTT 001) */
#define VTD_ECAP_SMPWC     (1ull << 48) /* scalable-mode page-walk coherency */
#define VTD_ECAP_RPS       (1ull << 49) /* RID_PASID field honoured */
#define VTD_ECAP_RPRIVS    (1ull << 53) /* RID_PRIV field honoured */

#define VTD_PSS_VALUE 19u   /* 20-bit PASIDs */

#define VTD_MHMV_VALUE 15u  /* IEC index-selective invalidation, mask up to 15 */

/* GCMD_REG (11.4.4) and GSTS_REG (11.4.5): command bit n and its status
 * bit n share a position. TE, EAFL, QIE, IRE and CFI are persistent states
 * (software writes them back with every command); SRTP, SFL, WBF and SIRTP
 * are one-shot commands. */
#define VTD_GCMD_CFI   (1u << 23)
#define VTD_GCMD_SIRTP (1u << 24)
#define VTD_GCMD_IRE   (1u << 25)
#define VTD_GCMD_QIE   (1u << 26)
#define VTD_GCMD_WBF   (1u << 27)
#define VTD_GCMD_EAFL  (1u << 28)
#define VTD_GCMD_SFL   (1u << 29)
#define VTD_GCMD_SRTP  (1u << 30)
#define VTD_GCMD_TE    (1u << 31)

#define VTD_GSTS_CFIS  (1u << 23)
#define VTD_GSTS_IRTPS (1u << 24)
#define VTD_GSTS_IRES  (1u << 25)
#define VTD_GSTS_QIES  (1u << 26)
#define VTD_GSTS_WBFS  (1u << 27)
#define VTD_GSTS_AFLS  (1u << 28)
#define VTD_GSTS_FLS   (1u << 29)
#define VTD_GSTS_RTPS  (1u << 30)
#define VTD_GSTS_TES   (1u << 31)

/* RTADDR_REG (11.4.6): RTA 63:12, TTM 11:10 (00 legacy, 01 scalable,
 * 10 reserved, 11 abort-DMA), 9:0 reserved. */
#define VTD_RTADDR_RTA_MASK  0xfffffffffffff000ull
#define VTD_RTADDR_TTM_SHIFT 10
#define VTD_RTADDR_TTM_MASK  (3ull << VTD_RTADDR_TTM_SHIFT)
#define VTD_TTM_LEGACY       0u
#define VTD_TTM_SCALABLE     1u

/* CCMD_REG (11.4.7) */
#define VTD_CCMD_DID_MASK    0xffffull          /* 15:0 */
#define VTD_CCMD_SID_SHIFT   16                 /* 31:16 */
#define VTD_CCMD_FM_SHIFT    32                 /* 33:32 */
#define VTD_CCMD_CAIG_SHIFT  59                 /* 60:59 */
#define VTD_CCMD_CIRG_SHIFT  61                 /* 62:61 */
#define VTD_CCMD_ICC         (1ull << 63)
#define VTD_CCMD_RW_MASK     (VTD_CCMD_ICC | 3ull << VTD_CCMD_CIRG_SHIFT | 3ull << VTD_CCMD_FM_SHIFT | \
			      0xffffull << VTD_CCMD_SID_SHIFT | VTD_CCMD_DID_MASK)
/* Granularities, as CIRG/CAIG and as the G field of the context-cache
 * invalidation descriptor. */
#define VTD_CC_GLOBAL  1u
#define VTD_CC_DOMAIN  2u
#define VTD_CC_DEVICE  3u

/* IOTLB_REG (11.4.8.1) and IVA_REG (11.4.8.2) */
#define VTD_IOTLB_DID_SHIFT  32                 /* 47:32 */
#define VTD_IOTLB_DW         (1ull << 48)
#define VTD_IOTLB_DR         (1ull << 49)
#define VTD_IOTLB_IAIG_SHIFT 57                 /* 58:57 */
#define VTD_IOTLB_IIRG_SHIFT 60                 /* 61:60 */
#define VTD_IOTLB_IVT        (1ull << 63)
#define VTD_IOTLB_RW_MASK    (VTD_IOTLB_IVT | 3ull << VTD_IOTLB_IIRG_SHIFT | VTD_IOTLB_DR | VTD_IOTLB_DW | \
			      0xffffull << VTD_IOTLB_DID_SHIFT)
#define VTD_IVA_AM_MASK      0x3full            /* 5:0 */
#define VTD_IVA_IH           (1ull << 6)
#define VTD_IVA_ADDR_MASK    0xfffffffffffff000ull
#define VTD_IVA_RW_MASK      (VTD_IVA_ADDR_MASK | VTD_IVA_IH | VTD_IVA_AM_MASK)
/* Granularities, as IIRG/IAIG and as the G field of the IOTLB invalidation
 * descriptor. */
#define VTD_TLB_GLOBAL 1u
#define VTD_TLB_DOMAIN 2u
#define VTD_TLB_PAGE   3u

/* FSTS_REG (11.4, "Fault Status Register"): PFO, IQE, ICE, ITE are
 * RW1CS; PPF is the OR of the fault records' F bits; FRI is read-only. */
#define VTD_FSTS_PFO       (1u << 0)
#define VTD_FSTS_PPF       (1u << 1)
#define VTD_FSTS_AFO       (1u << 2)
#define VTD_FSTS_APF       (1u << 3)
#define VTD_FSTS_IQE       (1u << 4)
#define VTD_FSTS_ICE       (1u << 5)
#define VTD_FSTS_ITE       (1u << 6)
#define VTD_FSTS_FRI_SHIFT 8                    /* 15:8 */
#define VTD_FSTS_RW1C      (VTD_FSTS_PFO | VTD_FSTS_IQE | VTD_FSTS_ICE | VTD_FSTS_ITE)
/* Status bits whose setting is a fault-event interrupt condition. */
#define VTD_FSTS_EVENTS    (VTD_FSTS_PFO | VTD_FSTS_PPF | VTD_FSTS_IQE | VTD_FSTS_ICE | VTD_FSTS_ITE)

/* FECTL_REG / IECTL_REG: IM 31 (set at reset), IP 30 (read-only). */
#define VTD_ECTL_IM (1u << 31)
#define VTD_ECTL_IP (1u << 30)
/* FEADDR/IEADDR: message address 31:2 (1:0 reserved). FEDATA/IEDATA:
 * IMD 15:0 (31:16 were EIMD in older revisions: kept as written). */
#define VTD_EADDR_MASK 0xfffffffcu

/* PMEN_REG: EPM 31 (RW), PRS 0 (status of EPM). */
#define VTD_PMEN_EPM (1u << 31)
#define VTD_PMEN_PRS (1u << 0)

/* IQH_REG / IQT_REG (11.4, "Invalidation Queue Head/Tail"): the byte offset
 * of a descriptor in the queue, bits 18:4: with 128-bit descriptors the index
 * is in bits 18:4, with 256-bit ones in bits 18:5 (bit 4 of IQT must then be
 * 0). IQA_REG: IQA 63:12, DW 11 (256-bit descriptors; reserved unless
 * ECAP.SMTS), QS 2:0 (2^QS 4 KiB pages). */
#define VTD_IQ_OFF_MASK    0x7fff0ull
#define VTD_IQA_ADDR_MASK  0xfffffffffffff000ull
#define VTD_IQA_DW         (1ull << 11)
#define VTD_IQA_QS_MASK    7ull
#define VTD_IQ_DESC_SIZE   16u /* bit 4 of IQT: must be 0 with 256-bit ones */

/* ICS_REG: IWC 0 (RW1CS). */
#define VTD_ICS_IWC (1u << 0)

/* IQERCD_REG: IQEI 3:0, why the queue stopped. */
#define VTD_IQEI_NONE      0u
#define VTD_IQEI_TAIL      1u /* tail pointer beyond the queue */
#define VTD_IQEI_FETCH     2u /* the descriptor could not be read */
#define VTD_IQEI_TYPE      3u /* unknown or unsupported descriptor type */
#define VTD_IQEI_RESERVED  4u /* reserved field set */
#define VTD_IQEI_TAIL_ALIGN 6u /* IQT bit 4 set with 256-bit descriptors */

/* Page request queue (7.5.1, 11.4 "Page Request Queue ..."): PQH/PQT hold
 * the byte offset of a 256-bit descriptor (bits 18:5); PQA: PQA 63:12, PQS
 * 2:0 (2^PQS 4 KiB pages); PRS: PPR 0 (a request is pending), PRO 1 (a
 * request found the queue full), both RW1C; PECTL/PEDATA/PEADDR/PEUADDR
 * as FECTL and the rest. */
#define VTD_PQ_OFF_MASK    0x7ffe0ull
#define VTD_PQA_ADDR_MASK  0xfffffffffffff000ull
#define VTD_PQA_PQS_MASK   7ull
#define VTD_PRS_PPR        (1u << 0)
#define VTD_PRS_PRO        (1u << 1)
#define VTD_PRQ_DESC_SIZE  32u

/* Page request descriptor (7.5.1.1), written by the unit, 256 bits:
 *   qw0: type 7:0 (1), PASID present 8, private data present 9, RID 31:16,
 *        PASID 51:32, execute 52, privileged 53
 *   qw1: read 0, write 1, last page in group 2, group index 11:3, address
 *        63:12
 *   qw2, qw3: private data (none here). */
#define VTD_PRD_TYPE       1ull
#define VTD_PRD_PASID_P    (1ull << 8)
#define VTD_PRD_RID_SHIFT  16
#define VTD_PRD_PASID_SHIFT 32
#define VTD_PRD_EXE        (1ull << 52)
#define VTD_PRD_PRIV       (1ull << 53)
#define VTD_PRD_RD         (1ull << 0)
#define VTD_PRD_WR         (1ull << 1)
#define VTD_PRD_LPIG       (1ull << 2)
#define VTD_PRD_PRGI_SHIFT 3

/* IRTA_REG (11.4, "Interrupt Remapping Table Address"): IRTA 63:12,
 * EIME 11, S 3:0 (2^(S+1) entries). */
#define VTD_IRTA_ADDR_MASK 0xfffffffffffff000ull
#define VTD_IRTA_EIME      (1ull << 11)
#define VTD_IRTA_S_MASK    0xfull

/* Fault recording register (11.4, "Fault Recording Registers [n]"),
 * 128 bits as two qwords:
 *   low:  FI 63:12 (DMA faults: the page address of the request; interrupt
 *         remapping faults: the interrupt index in 63:48, 47:12 clear)
 *   high: SID 15:0, T2 28, PRIV 29, EXE 30, PP 31, FR 39:32, PV 59:40,
 *         AT 61:60, T1 62 (0 write, 1 read), F 63 (RW1CS). */
#define VTD_FRCD_FI_MASK      0xfffffffffffff000ull
#define VTD_FRCD_IR_IDX_SHIFT 48
#define VTD_FRCD_SID_MASK     0xffffull
#define VTD_FRCD_PRIV         (1ull << 29)
#define VTD_FRCD_EXE          (1ull << 30)
#define VTD_FRCD_PP           (1ull << 31)
#define VTD_FRCD_FR_SHIFT     32
#define VTD_FRCD_PV_SHIFT     40
#define VTD_FRCD_T1           (1ull << 62)
#define VTD_FRCD_F            (1ull << 63)

/* ------------------------------------------------------------------------ */
/* Root entry, legacy mode (9.1): 128 bits.
 *   low:  P 0, reserved 11:1, CTP 63:12 (bits at or above HAW reserved)
 *   high: reserved. */
#define VTD_ROOT_P         (1ull << 0)
#define VTD_ROOT_RSVD_LO   0xffeull
#define VTD_ROOT_CTP_MASK  0xfffffffffffff000ull
#define VTD_ROOT_ENTRY_SIZE 16u

/* Context entry, legacy mode (9.3): 128 bits.
 *   low:  P 0, FPD 1, TT 3:2, reserved 11:4, SLPTPTR 63:12
 *   high: AW 2:0, ignored 6:3, reserved 7, DID 23:8, reserved 63:24. */
#define VTD_CTX_P          (1ull << 0)
#define VTD_CTX_FPD        (1ull << 1)
#define VTD_CTX_TT_SHIFT   2
#define VTD_CTX_TT_MASK    (3ull << VTD_CTX_TT_SHIFT)
#define VTD_CTX_RSVD_LO    0xff0ull
#define VTD_CTX_SLPT_MASK  0xfffffffffffff000ull
#define VTD_CTX_AW_MASK    7ull
#define VTD_CTX_RSVD_HI    (0xffffffffff000000ull | (1ull << 7))
#define VTD_CTX_DID_SHIFT  8
#define VTD_CTX_ENTRY_SIZE 16u
/* Translation types (legacy) */
#define VTD_TT_SL          0u /* untranslated requests: second level */
#define VTD_TT_DEVTLB      1u /* and translated requests (needs ECAP.DT) */
#define VTD_TT_PT          2u /* pass-through (needs ECAP.PT) */
/* AW values: 1 = 39-bit (3-level), 2 = 48-bit (4-level), 3 = 57-bit (5-level) */

/* ------------------------------------------------------------------------ */
/* Scalable mode (9.2, 9.4, 9.5, 9.6).
 *
 * Root entry (9.2), 128 bits: low qword for device numbers 0-127 (LP 0,
 * reserved 11:1, LCTP 63:12), high qword likewise for 128-255 (UP, UCTP).
 * A scalable-mode context table holds 128 entries of 256 bits. */
#define VTD_SM_ROOT_P        (1ull << 0)
#define VTD_SM_ROOT_RSVD     0xffeull
#define VTD_SM_CTX_ENTRY_SIZE 32u

/* Scalable-mode context entry (9.4), 256 bits:
 *   qw0: P 0, FPD 1, DTE 2, PASIDE 3, PRE 4, reserved 8:5, PDTS 11:9
 *        (the PASID directory has 2^(PDTS + 7) entries), PASIDDIRPTR 63:12
 *   qw1: RID_PASID 19:0, RID_PRIV 20, reserved 63:21
 *   qw2, qw3: reserved. */
#define VTD_SMC_P            (1ull << 0)
#define VTD_SMC_FPD          (1ull << 1)
#define VTD_SMC_DTE          (1ull << 2)
#define VTD_SMC_PASIDE       (1ull << 3)
#define VTD_SMC_PRE          (1ull << 4)
#define VTD_SMC_RSVD0        0x1e0ull
#define VTD_SMC_PDTS(lo)     ((unsigned)(((lo) >> 9) & 7))
#define VTD_SMC_DIR_MASK     0xfffffffffffff000ull
#define VTD_SMC_RID_PASID(hi) ((uint32_t)((hi) & 0xfffff))
#define VTD_SMC_RID_PRIV     (1ull << 20)
#define VTD_SMC_RSVD1        0xffffffffffe00000ull

/* PASID directory entry (9.5), 64 bits: P 0, FPD 1, reserved 11:2,
 * SMPTBLPTR 63:12. It covers PASIDs 64 * index to 64 * index + 63. */
#define VTD_PDE_P            (1ull << 0)
#define VTD_PDE_FPD          (1ull << 1)
#define VTD_PDE_RSVD         0xffcull
#define VTD_PDE_PTR_MASK     0xfffffffffffff000ull
#define VTD_PASID_DIR_SHIFT  6

/* Scalable-mode PASID table entry (9.6), 512 bits:
 *   qw0: P 0, FPD 1, AW 4:2, SLEE 5, PGTT 8:6, SLADE 9, reserved 11:10,
 *        SLPTPTR 63:12
 *   qw1: DID 15:0, reserved 22:16, PWSNP 23, PGSNP 24, CD 25, EMTE 26,
 *        EMT 29:27, PWT 30, PCD 31, PAT 63:32 (memory-type hints: accepted
 *        and ignored, the unit has no caches whose type they could set)
 *   qw2: SRE 0, ERE 1, FLPM 3:2, WPE 4, NXE 5, SMEP 6, EAFE 7,
 *        reserved 11:8, FLPTPTR 63:12
 *   qw3 to qw7: reserved. */
#define VTD_PE_SIZE          64u
#define VTD_PE_P             (1ull << 0)
#define VTD_PE_FPD           (1ull << 1)
#define VTD_PE_AW(q0)        ((unsigned)(((q0) >> 2) & 7))
#define VTD_PE_SLEE          (1ull << 5)
#define VTD_PE_PGTT(q0)      ((unsigned)(((q0) >> 6) & 7))
#define VTD_PE_SLADE         (1ull << 9)
#define VTD_PE_RSVD0         0xc00ull
#define VTD_PE_PTR_MASK      0xfffffffffffff000ull
#define VTD_PE_DID(q1)       ((uint16_t)((q1) & 0xffff))
#define VTD_PE_RSVD1         0x7f0000ull
#define VTD_PE_SRE           (1ull << 0)
#define VTD_PE_ERE           (1ull << 1)
#define VTD_PE_FLPM(q2)      ((unsigned)(((q2) >> 2) & 3))
#define VTD_PE_EAFE          (1ull << 7)
#define VTD_PE_RSVD2         0xf00ull
/* PASID granular translation types */
#define VTD_PGTT_FL          1u /* first level only */
#define VTD_PGTT_SL          2u /* second level only */
#define VTD_PGTT_NESTED      3u /* first level over second level */
#define VTD_PGTT_PT          4u /* pass-through */

/* ------------------------------------------------------------------------ */
/* Invalidation descriptors, 128-bit (6.5.2). Type = bits 3:0 | 11:9 << 4. */
#define VTD_DESC_TYPE(lo)  ((unsigned)(((lo) & 0xf) | (((lo) >> 9) & 7) << 4))
#define VTD_DESC_G(lo)     ((unsigned)(((lo) >> 4) & 3))

#define VTD_DESC_CC        0x1u /* context-cache invalidate (6.5.2.1) */
#define VTD_DESC_IOTLB     0x2u /* IOTLB invalidate (6.5.2.3) */
#define VTD_DESC_DEVTLB    0x3u /* device-TLB invalidate (6.5.2.5) */
#define VTD_DESC_IEC       0x4u /* interrupt entry cache invalidate (6.5.2.7) */
#define VTD_DESC_WAIT      0x5u /* invalidation wait (6.5.2.8) */
#define VTD_DESC_PIOTLB    0x6u /* PASID-based IOTLB (scalable mode) */
#define VTD_DESC_PC        0x7u /* PASID-cache (scalable mode) */
#define VTD_DESC_PDEVTLB   0x8u /* PASID-based device-TLB (scalable mode) */
#define VTD_DESC_PGRP      0x9u /* page group response (scalable mode) */

/* 6.5.2.1: G 5:4, DID 31:16, SID 47:32, FM 49:48; reserved 8:6, 15:12,
 * 63:50 and the whole high qword. */
#define VTD_CC_DESC_RSVD_LO   (0x1c0ull | 0xf000ull | 0xfffc000000000000ull)
#define VTD_CC_DESC_DID(lo)   ((uint16_t)((lo) >> 16))
#define VTD_CC_DESC_SID(lo)   ((uint16_t)((lo) >> 32))
#define VTD_CC_DESC_FM(lo)    ((unsigned)(((lo) >> 48) & 3))

/* 6.5.2.3: G 5:4, DW 6, DR 7, DID 31:16; reserved 8, 15:12, 63:32.
 * High: AM 5:0, IH 6, reserved 11:7, ADDR 63:12. */
#define VTD_IOTLB_DESC_RSVD_LO (0x100ull | 0xf000ull | 0xffffffff00000000ull)
#define VTD_IOTLB_DESC_RSVD_HI 0xf80ull
#define VTD_IOTLB_DESC_DID(lo) ((uint16_t)((lo) >> 16))

/* 6.5.2.5: reserved 8:4, 31:21, 51:48; high: S 0, reserved 11:1. */
#define VTD_DEVTLB_DESC_RSVD_LO (0x1f0ull | 0xffe00000ull | 0x000f000000000000ull)
#define VTD_DEVTLB_DESC_RSVD_HI 0xffeull

/* 6.5.2.7: G 4 (0 global, 1 index-selective), IM 31:27, IIDX 47:32;
 * reserved 8:5, 26:12, 63:48 and the high qword. */
#define VTD_IEC_DESC_G          (1ull << 4)
#define VTD_IEC_DESC_RSVD_LO    (0x1e0ull | 0x7fff000ull | 0xffff000000000000ull)
#define VTD_IEC_DESC_IM(lo)     ((unsigned)(((lo) >> 27) & 0x1f))
#define VTD_IEC_DESC_IIDX(lo)   ((uint32_t)(((lo) >> 32) & 0xffff))

/* 6.5.2.8: IF 4, SW 5, FN 6, PD 7, reserved 8, 31:12, status data 63:32;
 * high: reserved 1:0, status address 63:2. */
#define VTD_WAIT_IF             (1ull << 4)
#define VTD_WAIT_SW             (1ull << 5)
#define VTD_WAIT_FN             (1ull << 6)
#define VTD_WAIT_PD             (1ull << 7)
#define VTD_WAIT_RSVD_LO        (0x100ull | 0xfffff000ull)
#define VTD_WAIT_RSVD_HI        3ull

/* Scalable-mode descriptors (6.5.2.2, 6.5.2.4, 6.5.2.6). The PASID-cache
 * and PASID-based IOTLB ones share qw0: G 5:4, reserved 8:6 and 15:12, DID
 * 31:16, PASID 51:32, reserved 63:52. PASID-cache: qw1 reserved; G 0
 * domain-selective, 1 PASID-selective, 3 global (2 reserved). PASID-based
 * IOTLB: qw1 AM 5:0, IH 6, reserved 11:7, ADDR 63:12; G 2 PASID-selective,
 * 3 page-selective within a PASID (0 and 1 reserved). PASID-based device
 * TLB: qw1 G 0, reserved 10:1, S 11, ADDR 63:12. In a 256-bit descriptor
 * qw2 and qw3 are reserved, whatever the type. */
#define VTD_PDESC_RSVD_LO       (0x1c0ull | 0xf000ull | 0xfff0000000000000ull)
#define VTD_PDESC_DID(lo)       ((uint16_t)((lo) >> 16))
#define VTD_PDESC_PASID(lo)     ((uint32_t)(((lo) >> 32) & 0xfffff))
#define VTD_PC_G_DOMAIN         0u
#define VTD_PC_G_PASID          1u
#define VTD_PC_G_GLOBAL         3u
#define VTD_PIOTLB_G_PASID      2u
#define VTD_PIOTLB_G_PAGE       3u
#define VTD_PIOTLB_RSVD_HI      0xf80ull
#define VTD_PDEVTLB_RSVD_HI     0x7feull

/* Page group response (6.5.2.x): qw0 PASID present 4, private data present
 * 5, reserved 8:6 and 63:52, response code 15:12, RID 31:16, PASID 51:32;
 * qw1 reserved 1:0 and 63:12, last page in group 2, group index 11:3; qw2
 * and qw3 the private data (when PDP). */
#define VTD_PGRP_PASID_P        (1ull << 4)
#define VTD_PGRP_PDP            (1ull << 5)
#define VTD_PGRP_RSVD_LO        (0x1c0ull | 0xfff0000000000000ull)
#define VTD_PGRP_CODE(lo)       ((unsigned)(((lo) >> 12) & 0xf))
#define VTD_PGRP_RID(lo)        ((uint16_t)((lo) >> 16))
#define VTD_PGRP_PASID(lo)      ((uint32_t)(((lo) >> 32) & 0xfffff))
#define VTD_PGRP_RSVD_HI        (0x3ull | 0xfffffffffffff000ull)
#define VTD_PGRP_PRGI(hi)       ((uint16_t)(((hi) >> 3) & 0x1ff))

/* ------------------------------------------------------------------------ */
/* Fault reasons (7.1.3, and the table of non-recoverable fault reason
 * encodings). */
#define VTD_FR_ROOT_NOT_PRESENT 0x01 /* root entry P clear */
#define VTD_FR_CTX_NOT_PRESENT  0x02 /* context entry P clear */
#define VTD_FR_CTX_INVALID      0x03 /* AW or TT not supported */
#define VTD_FR_ADDR_WIDTH       0x04 /* input above the AGAW / MGAW */
#define VTD_FR_WRITE            0x05 /* write to a page without W */
#define VTD_FR_READ             0x06 /* read of a page without R */
#define VTD_FR_PTE_ACCESS       0x07 /* second-level entry unreadable */
#define VTD_FR_ROOT_TABLE       0x08 /* root table unreadable */
#define VTD_FR_CTX_TABLE        0x09 /* context table unreadable */
#define VTD_FR_ROOT_RSVD        0x0a /* reserved field in a present root entry */
#define VTD_FR_CTX_RSVD         0x0b /* reserved field in a present context entry */
#define VTD_FR_PTE_RSVD         0x0c /* reserved field in a second-level entry */
#define VTD_FR_IR_REQ_RSVD      0x20 /* reserved field in the interrupt request */
#define VTD_FR_IR_INDEX         0x21 /* index beyond the table (IRTA.S) */
#define VTD_FR_IR_NOT_PRESENT   0x22 /* IRTE P clear */
#define VTD_FR_IR_TABLE         0x23 /* IRTE unreadable */
#define VTD_FR_IR_RSVD          0x24 /* reserved field in a present IRTE */
#define VTD_FR_IR_COMPAT        0x25 /* compatibility-format interrupt blocked */
#define VTD_FR_IR_SID           0x26 /* source-ID verification failed */
/* Scalable mode (the SRT/SCT/SPD/SPT/SFL/SSL/SGN conditions of 7.1.3) */
#define VTD_FR_SRT_TABLE        0x38 /* SRT.1: root entry unreadable */
#define VTD_FR_SRT_NOT_PRESENT  0x39 /* SRT.2: LP/UP clear */
#define VTD_FR_SRT_RSVD         0x3a /* SRT.3: reserved field in the root entry */
#define VTD_FR_SCT_TABLE        0x40 /* SCT.1: context entry unreadable */
#define VTD_FR_SCT_NOT_PRESENT  0x41 /* SCT.2: P clear */
#define VTD_FR_SCT_RSVD         0x42 /* SCT.3: reserved field */
#define VTD_FR_SCT_INVALID      0x43 /* SCT.4: invalid programming */
#define VTD_FR_SCT_PASIDE       0x45 /* SCT.6: request with PASID, PASIDE clear */
#define VTD_FR_SCT_PASID_MAX    0x46 /* SCT.7: PASID beyond the directory (PDTS) */
#define VTD_FR_SCT_RID_PASID    0x48 /* SCT.9: RID_PASID beyond the directory */
#define VTD_FR_SPD_TABLE        0x50 /* SPD.1: PASID directory entry unreadable */
#define VTD_FR_SPD_NOT_PRESENT  0x51 /* SPD.2: P clear */
#define VTD_FR_SPD_RSVD         0x52 /* SPD.3: reserved field */
#define VTD_FR_SPT_TABLE        0x58 /* SPT.1: PASID table entry unreadable */
#define VTD_FR_SPT_NOT_PRESENT  0x59 /* SPT.2: P clear */
#define VTD_FR_SPT_RSVD         0x5a /* SPT.3: reserved field */
#define VTD_FR_SPT_INVALID      0x5b /* SPT.4: PGTT, AW, FLPM, SRE or ERE not supported */
#define VTD_FR_SFL_ACCESS       0x70 /* SFL.1: first-level entry unreadable */
#define VTD_FR_SFL_NOT_PRESENT  0x71 /* SFL.2: first-level entry P clear */
#define VTD_FR_SFL_RSVD         0x72 /* SFL.3: reserved field in a first-level entry */
#define VTD_FR_SFL_AD_NESTED    0x77 /* SFL.8: A/D write of a nested first-level entry refused */
#define VTD_FR_SSL_ACCESS       0x78 /* SSL.1: second-level entry unreadable */
#define VTD_FR_SSL_RSVD         0x7a /* SSL.3: reserved field in a second-level entry */
#define VTD_FR_SGN_CANONICAL    0x80 /* SGN.1: first-level input not canonical */
#define VTD_FR_SGN_USER         0x81 /* SGN.2: user request, U/S clear */
#define VTD_FR_SGN_EXEC         0x82 /* SGN.3: execute request, no execute permission */
#define VTD_FR_SGN_ADDR_WIDTH   0x83 /* SGN.4: input beyond the second-level width */
#define VTD_FR_SGN_WRITE        0x85 /* SGN.6: write without write permission */
#define VTD_FR_SGN_READ         0x86 /* SGN.7: read without read permission */

/* ------------------------------------------------------------------------ */
/* ACPI DMAR table (8.1 DMAR, 8.3 DRHD, 8.3.1 Device Scope) */
#define VTD_DMAR_HDR_LEN          36u /* the ACPI table header */
#define VTD_DMAR_LEN              48u /* + HAW, flags, 10 reserved */
#define VTD_DMAR_REVISION         1u
#define VTD_DMAR_F_INTR_REMAP     (1u << 0)
#define VTD_DMAR_F_X2APIC_OPT_OUT (1u << 1)
#define VTD_DRHD_TYPE             0u
#define VTD_DRHD_LEN              16u
#define VTD_DRHD_F_INCLUDE_PCI_ALL (1u << 0)
#define VTD_SCOPE_PCI_ENDPOINT    1u
#define VTD_SCOPE_IOAPIC          3u
#define VTD_SCOPE_LEN             8u /* 6 + one (device, function) path */

#endif /* VIOMMU_VTD_REGS_H */
