/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the VT-d front-end (include/viommu/vtd.h), through the public
 * API only: the register file is driven as Linux's intel-iommu driver drives
 * it at boot (root table, register-based global invalidations, queued
 * invalidation with wait descriptors, interrupt remapping, translation), root,
 * context and second-level tables are built in guest RAM, and devices DMA
 * through viommu_vtd_device. Checked: translation, pass-through, every
 * context/root fault reason, the fault recording registers (reason, SID,
 * address, type, PPF, FRI, overflow), the fault event interrupt with mask and
 * pending, FPD, queued invalidation (every descriptor type Linux issues, IQE on
 * a bad one and resumption, wait with status write and interrupt, injected
 * drop and delay of completions), IOTLB/context-cache/IEC invalidation seen
 * through DMA and interrupts, interrupt-remapping faults, register access
 * widths, the DMAR table, create errors and allocation failures. Scalable
 * mode: capabilities, first-level (with A/D), second-level, nested and
 * pass-through PASID entries through RID_PASID and PASIDs, every malformed or
 * absent scalable-mode structure with its fault reason (and FPD), 256-bit
 * descriptors, PASID-cache / PASID-based IOTLB / context-cache / IOTLB
 * invalidation seen as stale-before and fresh-after, allocation failures, DMA
 * racing PASID-entry changes, and page requests with their responses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <viommu/dma.h>
#include <viommu/faultlog.h>
#include <viommu/inject.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>
#include <viommu/vtd.h>

#include "vtd_check.h"
#include "vtd_guest.h"

static uint64_t g_iro, g_fro;

static struct viommu_vtd_config vcfg(uint32_t flags, uint32_t aw, uint32_t nfr)
{
	struct viommu_vtd_config c = { .size = sizeof(c), .flags = flags, .aw_bits = aw, .fault_records = nfr };
	return c;
}

static void frcd(struct vg *g, unsigned i, uint64_t *lo, uint64_t *hi)
{
	*lo = r64(g, g_fro + i * 16ull);
	*hi = r64(g, g_fro + i * 16ull + 8);
}

/* Clear every fault record and the fault status, as Linux's dmar_fault. */
static void faults_clear(struct vg *g, unsigned nfr)
{
	for (unsigned i = 0; i < nfr; i++)
		w32(g, g_fro + i * 16ull + 12, 1u << 31);
	w32(g, R_FSTS, FS_PFO | FS_PPF | (1u << 7));
}

/* The boot sequence of Linux's intel-iommu (legacy mode), up to and with
 * translation on. */
static void boot(struct vg *g, int x2apic)
{
	uint64_t cap = r64(g, R_CAP), ecap = r64(g, R_ECAP);
	g_fro = ((cap >> 24) & 0x3ff) * 16;
	g_iro = ((ecap >> 8) & 0x3ff) * 16;

	/* fault event interrupt: vector 0x41 to APIC 0, unmasked */
	w32(g, R_FEDATA, 0x41);
	w32(g, R_FEADDR, 0xfee00000u);
	w32(g, R_FEUADDR, 0);
	w32(g, R_FECTL, 0);
	CHECK_EQ(r32(g, R_FECTL), 0);

	/* root table */
	w64(g, R_RTADDR, VG_ROOT);
	w32(g, R_GCMD, G_SRTP);
	CHECK(r32(g, R_GSTS) & G_SRTP);
	CHECK_EQ(r64(g, R_RTADDR), VG_ROOT);

	/* register-based global invalidations */
	w64(g, R_CCMD, 1ull << 63 | 1ull << 61);
	uint64_t cc = r64(g, R_CCMD);
	CHECK_EQ(cc >> 63, 0);             /* ICC cleared when done */
	CHECK_EQ((cc >> 59) & 3, 1);       /* CAIG: global */
	w64(g, g_iro + 8, 1ull << 63 | 1ull << 60);
	uint64_t tlb = r64(g, g_iro + 8);
	CHECK_EQ(tlb >> 63, 0);            /* IVT cleared */
	CHECK_EQ((tlb >> 57) & 3, 1);      /* IAIG: global */

	/* queued invalidation */
	w32(g, R_IQT, 0);
	w64(g, R_IQA, VG_IQ);
	w32(g, R_GCMD, G_QIE);
	CHECK(r32(g, R_GSTS) & G_QIE);
	CHECK_EQ(r64(g, R_IQH), 0);
	g->iq_tail = 0;
	uint64_t iec[2] = { D_IEC, 0 };
	CHECK(qi_sync(g, iec, 1));
	CHECK_EQ(r64(g, R_IQH), 2u << 4);

	/* interrupt remapping: 256 entries */
	w64(g, R_IRTA, VG_IRT | (x2apic ? 1u << 11 : 0) | 7);
	w32(g, R_GCMD, G_QIE | G_SIRTP);
	CHECK(r32(g, R_GSTS) & G_SIRTP);
	CHECK(qi_sync(g, iec, 1));
	w32(g, R_GCMD, G_QIE | G_IRE);
	CHECK_EQ(r32(g, R_GSTS) & (G_IRE | G_QIE | G_TE), G_IRE | G_QIE);

	/* flush and translate */
	uint64_t fl[4] = { d_cc(1, 0, 0, 0), 0, d_iotlb(1, 0), 0 };
	CHECK(qi_sync(g, fl, 2));
	w32(g, R_GCMD, G_QIE | G_IRE | G_TE);
	CHECK_EQ(r32(g, R_GSTS) & (G_IRE | G_QIE | G_TE | G_SRTP | G_SIRTP), G_IRE | G_QIE | G_TE | G_SRTP | G_SIRTP);
}

/* ------------------------------------------------------------------------ */

static void test_caps(void)
{
	struct vg g;
	struct {
		uint32_t flags, aw, nfr;
		uint64_t sagaw;
		unsigned mgaw, nfr_out;
	} cases[] = {
		{ VIOMMU_VTD_F_X2APIC, 48, 0, 0x6, 47, 8 },
		{ 0, 39, 1, 0x2, 38, 1 },
		{ VIOMMU_VTD_F_CACHING_MODE, 57, 128, 0xe, 56, 128 },
		{ 0, 0, 16, 0x6, 47, 16 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vt_case("caps %u", i);
		struct viommu_vtd_config c = vcfg(cases[i].flags, cases[i].aw, cases[i].nfr);
		if (!CHECK_EQ(vg_init(&g, &c), 0))
			return;
		CHECK_EQ(r32(&g, R_VER), 0x10);
		uint64_t cap = r64(&g, R_CAP), ecap = r64(&g, R_ECAP);
		CHECK_EQ(cap & 7, 2);                          /* ND: 256 domains */
		CHECK_EQ((cap >> 8) & 0x1f, cases[i].sagaw);   /* SAGAW */
		CHECK_EQ((cap >> 16) & 0x3f, cases[i].mgaw);   /* MGAW */
		CHECK_EQ(((cap >> 24) & 0x3ff) * 16, 0x200);   /* FRO */
		CHECK_EQ((cap >> 34) & 0xf, 3);                /* SLLPS: 2M, 1G */
		CHECK_EQ((cap >> 39) & 1, 1);                  /* PSI */
		CHECK_EQ(((cap >> 40) & 0xff) + 1, cases[i].nfr_out);
		CHECK((cap >> 48) & 0x3f);                     /* MAMV */
		CHECK_EQ((cap >> 7) & 1, !!(cases[i].flags & VIOMMU_VTD_F_CACHING_MODE));
		CHECK_EQ(cap & (1ull << 4 | 1ull << 5 | 1ull << 6 | 3ull << 54 | 1ull << 59), 0); /* RWBF PLMR PHMR DRD DWD PI */
		CHECK_EQ((ecap >> 1) & 1, 1);                  /* QI */
		CHECK_EQ((ecap >> 3) & 1, 1);                  /* IR */
		CHECK_EQ((ecap >> 4) & 1, !!(cases[i].flags & VIOMMU_VTD_F_X2APIC));
		CHECK_EQ((ecap >> 6) & 1, 1);                  /* PT */
		CHECK_EQ(((ecap >> 8) & 0x3ff) * 16, 0x100);   /* IRO */
		CHECK_EQ(ecap & (1ull << 2 | 1ull << 26 | 1ull << 43), 0); /* DT, NEST, SMTS */
		/* reset state */
		CHECK_EQ(r32(&g, R_GSTS), 0);
		CHECK_EQ(r32(&g, R_FSTS), 0);
		CHECK_EQ(r32(&g, R_FECTL), CTL_IM);
		CHECK_EQ(r32(&g, R_IECTL), CTL_IM);
		/* 8-byte read of a 64-bit register = its two 4-byte halves */
		CHECK_EQ(r32(&g, R_CAP) | (uint64_t)r32(&g, R_CAP + 4) << 32, cap);
		/* unknown, misaligned and odd-sized accesses read 0 */
		CHECK_EQ(r32(&g, 0x48), 0);
		CHECK_EQ(r64(&g, 0xf00), 0);
		CHECK_EQ(viommu_vtd_mmio_read(g.vtd, R_CAP + 2, 4), 0);
		CHECK_EQ(viommu_vtd_mmio_read(g.vtd, R_CAP, 2), 0);
		CHECK_EQ(viommu_vtd_mmio_read(g.vtd, 0x1000, 4), 0);
		/* read-only registers ignore writes */
		w64(&g, R_CAP, 0);
		w32(&g, R_VER, 0x99);
		w32(&g, R_GSTS, 0xffffffffu);
		CHECK_EQ(r64(&g, R_CAP), cap);
		CHECK_EQ(r32(&g, R_VER), 0x10);
		CHECK_EQ(r32(&g, R_GSTS), 0);
		CHECK_EQ(r32(&g, R_GCMD), 0); /* write-only */
		vg_fini(&g);
	}
	vt_case("access widths");
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 48, 0);
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	/* 4-byte halves of 64-bit registers */
	w32(&g, R_IRTA, 0x12345000u | 0x800 | 3);
	w32(&g, R_IRTA + 4, 0x1);
	CHECK_EQ(r64(&g, R_IRTA), 0x112345000ull | 0x800 | 3);
	CHECK_EQ(r32(&g, R_IRTA + 4), 1);
	w64(&g, R_IQA, 0xabc000ull | 0x7f8 | 5); /* reserved 10:3, DW not writable */
	CHECK_EQ(r64(&g, R_IQA), 0xabc000ull | 5);
	/* 8-byte accesses over two 32-bit registers */
	w64(&g, R_FECTL, 0x55ull << 32 | CTL_IM);
	CHECK_EQ(r32(&g, R_FEDATA), 0x55);
	CHECK_EQ(r32(&g, R_FECTL), CTL_IM);
	w64(&g, R_FEADDR, 1ull << 32 | 0xfee01000u);
	CHECK_EQ(r32(&g, R_FEADDR), 0xfee01000u);
	CHECK_EQ(r32(&g, R_FEUADDR), 1);
	CHECK_EQ(r64(&g, R_FEADDR), 1ull << 32 | 0xfee01000u);
	/* a misaligned 8-byte write does nothing */
	viommu_vtd_mmio_write(g.vtd, R_FEDATA, 0x77, 8);
	CHECK_EQ(r32(&g, R_FEDATA), 0x55);
	w32(&g, R_FEADDR, 0xfee00003u); /* bits 1:0 reserved */
	CHECK_EQ(r32(&g, R_FEADDR), 0xfee00000u);
	w32(&g, R_PMEN, 1u << 31);
	CHECK_EQ(r32(&g, R_PMEN), 1u << 31 | 1);
	w32(&g, R_PMEN, 0);
	CHECK_EQ(r32(&g, R_PMEN), 0);
	w32(&g, R_PLMBASE, 0x100000);
	CHECK_EQ(r32(&g, R_PLMBASE), 0x100000);
	vg_fini(&g);
	/* without EIM, IRTA.EIME cannot be set */
	c = vcfg(0, 48, 0);
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	w64(&g, R_IRTA, 0x5000 | 0x800 | 1);
	CHECK_EQ(r64(&g, R_IRTA), 0x5000 | 1);
	vg_fini(&g);
}

static void test_create_errors(void)
{
	struct vg g;
	vt_case("create errors");
	if (!CHECK_EQ(vg_init(&g, NULL), 0))
		return;
	viommu_vtd *t = (viommu_vtd *)&g;
	struct viommu_vtd_config c = vcfg(0, 48, 0);
	CHECK_EQ(viommu_vtd_create(NULL, &c, &t), -EINVAL);
	CHECK(t == NULL);
	CHECK_EQ(viommu_vtd_create(g.v, NULL, &t), -EINVAL);
	CHECK_EQ(viommu_vtd_create(g.v, &c, NULL), -EINVAL);
	c.size = 4;
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t), -EINVAL);
	c = vcfg(1u << 7, 48, 0);
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t), -EINVAL);
	c = vcfg(0, 40, 0);
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t), -EINVAL);
	c = vcfg(0, 48, 129);
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t), -EINVAL);
	c = vcfg(0, 48, 0);
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t), 0);
	viommu_vtd *t2 = NULL;
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t2), -EBUSY); /* resolver taken */
	CHECK(t2 == NULL);
	viommu_vtd_destroy(t);
	viommu_vtd_destroy(NULL);
	/* an instance that already has a fault queue */
	struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 4 };
	viommu_fault_queue *q = NULL;
	CHECK_EQ(viommu_fault_queue_create(&qc, NULL, &q), 0);
	CHECK_EQ(viommu_set_fault_queue(g.v, q), 0);
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t2), -EBUSY);
	CHECK_EQ(viommu_set_fault_queue(g.v, NULL), 0);
	viommu_fault_queue_destroy(q);
	/* and the resolver is free again after that failure */
	CHECK_EQ(viommu_vtd_create(g.v, &c, &t2), 0);
	/* devices: other segments, and requesters someone else made */
	struct viommu_rid other = { .segment = 1, .bus = 0, .devfn = 8 };
	CHECK(viommu_vtd_device(t2, other) == NULL);
	viommu_dev *mine = NULL;
	CHECK_EQ(viommu_dev_create(g.v, vg_rid(0, 3, 0), &mine), 0);
	CHECK(viommu_vtd_device(t2, vg_rid(0, 3, 0)) == NULL);
	viommu_dev *d = viommu_vtd_device(t2, vg_rid(0, 4, 0));
	CHECK(d != NULL);
	CHECK(viommu_vtd_device(t2, vg_rid(0, 4, 0)) == d); /* the same one again */
	CHECK(viommu_dev_find(g.v, vg_rid(0, 4, 0)) == d);
	viommu_vtd_destroy(t2);
	CHECK(viommu_dev_find(g.v, vg_rid(0, 4, 0)) == NULL); /* its devices go */
	CHECK(viommu_dev_find(g.v, vg_rid(0, 3, 0)) == mine); /* others' stay */
	viommu_dev_destroy(mine);
	g.vtd = NULL;
	vg_fini(&g);
}

/* ------------------------------------------------------------------------ */

/* Translation off: untranslated; boot; translation on: as the tables say. */
static void test_translate(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 48, 0);
	vt_case("translate");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	viommu_dev *d1 = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	viommu_dev *d2 = viommu_vtd_device(g.vtd, vg_rid(0, 2, 0));
	viommu_dev *d3 = viommu_vtd_device(g.vtd, vg_rid(0, 3, 0));
	CHECK(d1 && d2 && d3);
	for (uint64_t i = 0; i < 4; i++)
		memset(g.ram + VG_DATA + i * 4096, (int)(0xa0 + i), 4096);
	uint8_t buf[64];
	size_t done = 0;
	struct viommu_fault_record f;

	/* translation off: DMA at guest physical addresses */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, VG_DATA + 4096, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xa1);

	/* tables: dev 1 second level (DID 1, 4-level), dev 2 pass-through */
	uint64_t slroot = vg_page(&g);
	sl_map(&g, slroot, 4, 0x10000000, VG_DATA, SL_R | SL_W);
	sl_map(&g, slroot, 4, 0x10001000, VG_DATA + 0x1000, SL_R);
	sl_map(&g, slroot, 4, 0x7f0000000000ull, VG_DATA + 0x2000, SL_R | SL_W);
	vg_root(&g, 0, VG_CTX0);
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, slroot, 2, 1, 0);
	vg_ctx(&g, VG_CTX0, 2 << 3, 2, 0, 2, 2, 0);
	boot(&g, 1);
	unsigned msis = g.nmsi;

	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10000010, buf, 16, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xa0);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x7f0000000100ull, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xa2);
	/* a read crossing into the next (read-only) page */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10000ff8, buf, 16, 0, &done, &f), 0);
	CHECK_EQ(buf[7], 0xa0);
	CHECK_EQ(buf[8], 0xa1);
	uint8_t w[4] = { 1, 2, 3, 4 };
	CHECK_EQ(viommu_dma_write(d1, VIOMMU_NO_PASID, 0x10000020, w, 4, 0, &done, &f), 0);
	CHECK_EQ(g.ram[VG_DATA + 0x20], 1);
	/* pass-through */
	CHECK_EQ(viommu_dma_read(d2, VIOMMU_NO_PASID, VG_DATA + 0x3000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xa3);
	CHECK_EQ(g.nmsi, msis);
	CHECK_EQ(r32(&g, R_FSTS), 0);

	/* write to a read-only page: reason 5, SID, page address, type write */
	vt_case("translate: faults");
	CHECK_EQ(viommu_dma_write(d1, VIOMMU_NO_PASID, 0x10001234, w, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_PERMISSION);
	uint32_t fsts = r32(&g, R_FSTS);
	CHECK_EQ(fsts & (FS_PPF | FS_PFO | FS_IQE), FS_PPF);
	CHECK_EQ(FS_FRI(fsts), 0);
	uint64_t lo, hi;
	frcd(&g, 0, &lo, &hi);
	CHECK_EQ(lo, 0x10001000);
	CHECK_EQ(hi & 0xffff, 0x0008);           /* SID 00:01.0 */
	CHECK_EQ((hi >> 32) & 0xff, 0x05);       /* write to a page without W */
	CHECK_EQ((hi >> 62) & 1, 0);             /* T1: write */
	CHECK_EQ(hi >> 63, 1);                   /* F */
	CHECK_EQ((hi >> 31) & 1, 0);             /* no PASID */
	/* the fault event interrupt */
	CHECK_EQ(g.nmsi, msis + 1);
	CHECK_EQ(g.msi_addr[msis], 0xfee00000u);
	CHECK_EQ(g.msi_data[msis], 0x41);
	CHECK_EQ(g.msi_rid[msis].bus, 0);
	CHECK_EQ(g.msi_rid[msis].devfn, 0);
	/* the 32-bit halves Linux reads */
	CHECK_EQ(r32(&g, g_fro + 12), (uint32_t)(hi >> 32));
	CHECK_EQ(r32(&g, g_fro + 8), (uint32_t)hi);

	/* read of an unmapped page: reason 6, type read; PPF already set, so
	 * no new interrupt */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x20000000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_NOT_PRESENT);
	frcd(&g, 1, &lo, &hi);
	CHECK_EQ(lo, 0x20000000);
	CHECK_EQ((hi >> 32) & 0xff, 0x06);
	CHECK_EQ((hi >> 62) & 1, 1);
	CHECK_EQ(hi >> 63, 1);
	CHECK_EQ(FS_FRI(r32(&g, R_FSTS)), 0);
	CHECK_EQ(g.nmsi, msis + 1);
	/* beyond the 48-bit address width: reason 4 */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 1ull << 48, buf, 4, 0, &done, &f), -EFAULT);
	frcd(&g, 2, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x04);
	/* reserved bit in a second-level entry (bit 62, TM): reason 0xc */
	sl_map(&g, slroot, 4, 0x10002000, VG_DATA | 1ull << 62, SL_R);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10002000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_RESERVED_BIT);
	frcd(&g, 3, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x0c);
	CHECK_EQ(lo, 0x10002000);
	/* a next-level pointer outside memory: reason 7 */
	sl_map(&g, slroot, 4, 0x10200000, 0, 0);
	uint64_t l2 = slroot; /* find the level-2 entry of 0x10200000 and point it away */
	for (unsigned l = 4; l > 2; l--)
		l2 = vg_rd64(&g, l2 + ((0x10200000ull >> (12 + 9 * (l - 1))) & 511) * 8) & 0xffffffffff000ull;
	vg_wr64(&g, l2 + ((0x10200000ull >> 21) & 511) * 8, 0x40000000ull | SL_R | SL_W);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10200000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	frcd(&g, 4, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x07);
	CHECK_EQ(g.nmsi, msis + 1);

	/* Linux's handler: clear each F, then FSTS; PPF goes with the last F */
	faults_clear(&g, 8);
	CHECK_EQ(r32(&g, R_FSTS) & (FS_PPF | FS_PFO), 0);
	/* the next fault goes to record 5 and raises again; FRI names it */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x30000000, buf, 4, 0, &done, &f), -EFAULT);
	fsts = r32(&g, R_FSTS);
	CHECK_EQ(fsts & FS_PPF, FS_PPF);
	CHECK_EQ(FS_FRI(fsts), 5);
	frcd(&g, 5, &lo, &hi);
	CHECK_EQ(lo, 0x30000000);
	CHECK_EQ(g.nmsi, msis + 2);
	faults_clear(&g, 8);

	/* masked: IP instead of an interrupt; unmasking sends it */
	vt_case("translate: masked fault event");
	w32(&g, R_FECTL, CTL_IM);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x30000000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(r32(&g, R_FECTL), CTL_IM | CTL_IP);
	CHECK_EQ(g.nmsi, msis + 2);
	w32(&g, R_FECTL, 0);
	CHECK_EQ(r32(&g, R_FECTL), 0);
	CHECK_EQ(g.nmsi, msis + 3);
	CHECK_EQ(g.msi_data[msis + 2], 0x41);
	faults_clear(&g, 8);
	/* masked, then serviced before unmasking: nothing pending any more */
	w32(&g, R_FECTL, CTL_IM);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x30000000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(r32(&g, R_FECTL), CTL_IM | CTL_IP);
	faults_clear(&g, 8);
	CHECK_EQ(r32(&g, R_FECTL), CTL_IM);
	w32(&g, R_FECTL, 0);
	CHECK_EQ(g.nmsi, msis + 3);

	/* overflow: 8 records fill, the 9th sets PFO (one interrupt for the
	 * first, one for PFO), the 10th is not recorded at all */
	vt_case("translate: overflow");
	unsigned base = g.nmsi;
	unsigned start = FS_FRI(r32(&g, R_FSTS)); /* FRI stays where the last batch began */
	(void)start;
	for (unsigned i = 0; i < 10; i++)
		viommu_dma_read(d1, VIOMMU_NO_PASID, 0x40000000 + i * 4096ull, buf, 4, 0, &done, &f);
	fsts = r32(&g, R_FSTS);
	CHECK_EQ(fsts & (FS_PPF | FS_PFO), FS_PPF | FS_PFO);
	CHECK_EQ(g.nmsi, base + 2);
	unsigned seen = 0;
	for (unsigned i = 0; i < 8; i++) {
		frcd(&g, i, &lo, &hi);
		CHECK_EQ(hi >> 63, 1);
		if (lo >= 0x40000000 && lo < 0x40008000)
			seen |= 1u << ((lo - 0x40000000) >> 12);
	}
	CHECK_EQ(seen, 0xff); /* the first 8 requests, none of the last 2 */
	/* while PFO is set, nothing is recorded even with free records */
	w32(&g, g_fro + 12, 1u << 31);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x50000000, buf, 4, 0, &done, &f), -EFAULT);
	frcd(&g, 0, &lo, &hi);
	CHECK_EQ(hi >> 63, 0);
	faults_clear(&g, 8);
	CHECK_EQ(r32(&g, R_FSTS) & (FS_PPF | FS_PFO), 0);

	/* host-side denials have no VT-d code: not recorded */
	vt_case("translate: excluded");
	CHECK_EQ(viommu_exclude_range(g.v, VG_DATA, 4096), 0);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10000000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(r32(&g, R_FSTS) & FS_PPF, 0);
	CHECK_EQ(viommu_unexclude_range(g.v, VG_DATA, 4096), 0);

	/* an injected fault is recorded with its reason's code */
	vt_case("translate: injected fault");
	struct viommu_inject_rule rule = {
		.size = sizeof(rule), .action = VIOMMU_INJECT_FAULT, .match = VIOMMU_INJECT_M_RID | VIOMMU_INJECT_M_ACCESS,
		.rid = vg_rid(0, 1, 0), .access = VIOMMU_ACCESS_READ, .reason = VIOMMU_FAULT_PERMISSION,
	};
	uint32_t id;
	CHECK_EQ(viommu_inject_add(g.v, &rule, &id), 0);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x10000000, buf, 4, 0, &done, &f), -EFAULT);
	frcd(&g, 0, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x06);
	CHECK_EQ(lo, 0x10000000);
	CHECK_EQ(viommu_inject_remove(g.v, id), 0);
	faults_clear(&g, 8);

	/* translation off again: untranslated */
	vt_case("translate: off");
	w32(&g, R_GCMD, G_QIE | G_IRE);
	CHECK_EQ(r32(&g, R_GSTS) & G_TE, 0);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, VG_DATA + 0x3000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xa3);
	/* and faults of DMA are not the unit's business then */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, VG_RAM_SIZE + 0x1000ull, buf, 8, 0, &done, &f), -EFAULT);
	CHECK_EQ(r32(&g, R_FSTS) & FS_PPF, 0);
	vg_fini(&g);
}

/* Root and context entry faults, FPD, address widths. */
static void test_context_faults(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(0, 48, 16);
	vt_case("context faults");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	uint64_t slroot = vg_page(&g);
	sl_map(&g, slroot, 4, 0x1000, VG_DATA, SL_R | SL_W);
	uint64_t sl3 = vg_page(&g);
	sl_map(&g, sl3, 3, 0x1000, VG_DATA + 0x1000, SL_R | SL_W);
	memset(g.ram + VG_DATA, 0x11, 4096);
	memset(g.ram + VG_DATA + 0x1000, 0x22, 4096);
	vg_root(&g, 0, VG_CTX0);
	/* bus 1: root entry not present; bus 2: present */
	vg_root(&g, 2, VG_CTX2);
	/* 00:01.0 fine (3-level); 00:03.0 not present; 00:04.0 TT=1;
	 * 00:05.0 reserved bit 7 of the high qword; 00:06.0 AW=3 (57-bit, not
	 * in SAGAW at 48); 00:07.0 FPD with an empty table; 00:08.0 AW=0;
	 * 00:09.0 TT=3; 00:0a.0 reserved bit 4 of the low qword */
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, sl3, 1, 1, 0);
	vg_ctx(&g, VG_CTX0, 4 << 3, 1, slroot, 2, 1, 0);
	vg_ctx(&g, VG_CTX0, 5 << 3, 0, slroot, 2, 1, 0);
	vg_wr64(&g, VG_CTX0 + (5 << 3) * 16ull + 8, vg_rd64(&g, VG_CTX0 + (5 << 3) * 16ull + 8) | 0x80);
	vg_ctx(&g, VG_CTX0, 6 << 3, 0, slroot, 3, 1, 0);
	vg_ctx(&g, VG_CTX0, 7 << 3, 0, vg_page(&g), 2, 3, 1);
	vg_ctx(&g, VG_CTX0, 8 << 3, 0, slroot, 0, 1, 0);
	vg_ctx(&g, VG_CTX0, 9 << 3, 3, slroot, 2, 1, 0);
	vg_ctx(&g, VG_CTX0, 10 << 3, 0, slroot, 2, 1, 0);
	vg_wr64(&g, VG_CTX0 + (10 << 3) * 16ull, vg_rd64(&g, VG_CTX0 + (10 << 3) * 16ull) | 0x10);
	/* bus 2 device 0: context table pointer with a bit above the host
	 * address width in the root entry -> root reserved */
	boot(&g, 0);

	struct {
		struct viommu_rid rid;
		enum viommu_fault_reason reason;
		unsigned code;
	} cases[] = {
		{ vg_rid(1, 0, 0), VIOMMU_FAULT_ROOT_NOT_PRESENT, 0x01 },
		{ vg_rid(0, 3, 0), VIOMMU_FAULT_CTX_NOT_PRESENT, 0x02 },
		{ vg_rid(2, 0, 0), VIOMMU_FAULT_CTX_NOT_PRESENT, 0x02 },
		{ vg_rid(0, 4, 0), VIOMMU_FAULT_CTX_INVALID, 0x03 },
		{ vg_rid(0, 5, 0), VIOMMU_FAULT_CTX_INVALID, 0x0b },
		{ vg_rid(0, 6, 0), VIOMMU_FAULT_CTX_INVALID, 0x03 },
		{ vg_rid(0, 8, 0), VIOMMU_FAULT_CTX_INVALID, 0x03 },
		{ vg_rid(0, 9, 0), VIOMMU_FAULT_CTX_INVALID, 0x03 },
		{ vg_rid(0, 10, 0), VIOMMU_FAULT_CTX_INVALID, 0x0b },
	};
	uint8_t buf[8];
	size_t done;
	struct viommu_fault_record f;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vt_case("context faults %u (%02x:%02x.%x)", i, cases[i].rid.bus, cases[i].rid.devfn >> 3,
			cases[i].rid.devfn & 7);
		viommu_dev *d = viommu_vtd_device(g.vtd, cases[i].rid);
		CHECK(d != NULL);
		unsigned before = g.nfault;
		CHECK_EQ(viommu_dma_read(d, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), -EFAULT);
		CHECK_EQ(f.reason, cases[i].reason);
		CHECK_EQ(g.nfault, before + 1);
		uint64_t lo, hi;
		frcd(&g, i, &lo, &hi);
		CHECK_EQ(hi >> 63, 1);
		CHECK_EQ((hi >> 32) & 0xff, cases[i].code);
		CHECK_EQ(hi & 0xffff, (uint32_t)cases[i].rid.bus << 8 | cases[i].rid.devfn);
		CHECK_EQ(lo, 0x1000);
		CHECK_EQ((hi >> 62) & 1, 1); /* a read */
	}
	unsigned n = sizeof(cases) / sizeof(cases[0]);

	vt_case("context faults: 3-level ok");
	viommu_dev *d1 = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0x22);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 1ull << 39, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_ADDR_WIDTH);
	uint64_t lo, hi;
	frcd(&g, n, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x04);
	n++;

	vt_case("context faults: FPD");
	viommu_dev *d7 = viommu_vtd_device(g.vtd, vg_rid(0, 7, 0));
	unsigned before = g.nfault;
	CHECK_EQ(viommu_dma_read(d7, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(g.nfault, before + 1); /* the host still hears of it */
	frcd(&g, n, &lo, &hi);
	CHECK_EQ(hi >> 63, 0);           /* the guest does not */

	vt_case("context faults: root reserved, root table outside memory");
	faults_clear(&g, 16);
	vg_wr64(&g, VG_ROOT + 2 * 16, VG_CTX2 | 1 | 1ull << 50);
	uint64_t cc[2] = { d_cc(1, 0, 0, 0), 0 };
	CHECK(qi_sync(&g, cc, 1));
	viommu_dev *d20 = viommu_vtd_device(g.vtd, vg_rid(2, 0, 0));
	CHECK_EQ(viommu_dma_read(d20, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_ROOT_INVALID);
	unsigned fri = FS_FRI(r32(&g, R_FSTS));
	frcd(&g, fri, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x0a);
	faults_clear(&g, 16);
	w64(&g, R_RTADDR, 0x40000000); /* 1 GiB: beyond the 16 MiB of RAM */
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE | G_SRTP);
	CHECK(qi_sync(&g, cc, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_ROOT_TABLE);
	fri = FS_FRI(r32(&g, R_FSTS));
	frcd(&g, fri, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x08);
	faults_clear(&g, 16);
	/* a context table outside memory */
	w64(&g, R_RTADDR, VG_ROOT);
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE | G_SRTP);
	vg_wr64(&g, VG_ROOT, 0x40000000ull | 1);
	CHECK(qi_sync(&g, cc, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_CTX_TABLE);
	fri = FS_FRI(r32(&g, R_FSTS));
	frcd(&g, fri, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x09);
	faults_clear(&g, 16);
	/* an SRTP with a table mode other than legacy is not taken */
	w64(&g, R_RTADDR, 0x40000000 | 1u << 10);
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE | G_SRTP);
	vg_root(&g, 0, VG_CTX0);
	CHECK(qi_sync(&g, cc, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, buf, 4, 0, &done, &f), 0);
	vg_fini(&g);
}

/* Invalidation: what stays cached until the guest invalidates, and what is
 * gone after; the queue's error and completion paths. */
static void test_invalidation(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 48, 0);
	vt_case("invalidation");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	for (unsigned i = 0; i < 8; i++)
		memset(g.ram + VG_DATA + i * 4096ull, 0x30 + i, 4096);
	uint64_t slroot = vg_page(&g);
	sl_map(&g, slroot, 4, 0x1000, VG_DATA, SL_R | SL_W);
	sl_map(&g, slroot, 4, 0x2000, VG_DATA + 0x1000, SL_R | SL_W);
	vg_root(&g, 0, VG_CTX0);
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, slroot, 2, 5, 0);
	vg_ctx(&g, VG_CTX0, 2 << 3, 0, slroot, 2, 5, 0);
	boot(&g, 1);
	viommu_dev *d1 = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	viommu_dev *d2 = viommu_vtd_device(g.vtd, vg_rid(0, 2, 0));
	uint8_t b;
	size_t done;
	struct viommu_fault_record f;
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x30);
	CHECK_EQ(viommu_dma_read(d2, VIOMMU_NO_PASID, 0x2000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x31);

	/* page-selective (QI): the cached translation stays until invalidated */
	vt_case("invalidation: PSI");
	sl_map(&g, slroot, 4, 0x1000, VG_DATA + 0x2000, SL_R | SL_W);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x30); /* stale, as on hardware */
	uint64_t psi[2] = { d_iotlb(3, 5), 0x1000 };
	CHECK(qi_sync(&g, psi, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x32);
	CHECK_EQ(viommu_dma_read(d2, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x32); /* the same domain (DID 5, same table) */
	/* an address mask: 2 pages at 0x0 (AM 1) covers 0x1000 */
	sl_map(&g, slroot, 4, 0x1000, VG_DATA + 0x3000, SL_R | SL_W);
	uint64_t psi_other[2] = { d_iotlb(3, 6), 0x0 | 1 };
	CHECK(qi_sync(&g, psi_other, 1)); /* another DID: nothing */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x32);
	uint64_t psi_am[2] = { d_iotlb(3, 5), 0x0 | 1 };
	CHECK(qi_sync(&g, psi_am, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x33);

	/* domain-selective (register-based) */
	vt_case("invalidation: DSI register");
	sl_map(&g, slroot, 4, 0x1000, VG_DATA + 0x4000, SL_R | SL_W);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x33);
	w64(&g, g_iro + 8, 1ull << 63 | 2ull << 60 | 5ull << 32);
	CHECK_EQ((r64(&g, g_iro + 8) >> 57) & 3, 2);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x34);
	/* page-selective through the registers */
	vt_case("invalidation: PSI register");
	sl_map(&g, slroot, 4, 0x1000, VG_DATA + 0x5000, SL_R | SL_W);
	w64(&g, g_iro, 0x1000);
	w64(&g, g_iro + 8, 1ull << 63 | 3ull << 60 | 5ull << 32);
	CHECK_EQ((r64(&g, g_iro + 8) >> 57) & 3, 3);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x35);
	/* global by QI */
	vt_case("invalidation: global");
	sl_map(&g, slroot, 4, 0x1000, VG_DATA + 0x6000, SL_R | SL_W);
	uint64_t glob[2] = { d_iotlb(1, 0), 0 };
	CHECK(qi_sync(&g, glob, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x36);

	/* context cache: a new context entry takes effect only after a
	 * context-cache invalidation of the device */
	vt_case("invalidation: context cache");
	vg_ctx(&g, VG_CTX0, 1 << 3, 2, 0, 2, 7, 0); /* pass-through now */
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x36);
	uint64_t ccd[2] = { d_cc(3, 5, 0x0010, 0), 0 }; /* another device */
	CHECK(qi_sync(&g, ccd, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x36);
	uint64_t ccd1[2] = { d_cc(3, 5, 0x0008, 0), 0 };
	CHECK(qi_sync(&g, ccd1, 1));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, VG_DATA + 0x7000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x37); /* untranslated */
	/* function mask: 00:02.0 invalidated by a device-selective request
	 * for 00:02.7 with FM = 3 (ignore function bits 2:0) */
	vg_ctx(&g, VG_CTX0, 2 << 3, 2, 0, 2, 7, 0);
	uint64_t ccfm[2] = { d_cc(3, 0, 0x0017, 3), 0 };
	CHECK(qi_sync(&g, ccfm, 1));
	CHECK_EQ(viommu_dma_read(d2, VIOMMU_NO_PASID, VG_DATA + 0x7000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x37);
	/* domain-selective by register: DID 7 */
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, slroot, 2, 5, 0);
	w64(&g, R_CCMD, 1ull << 63 | 2ull << 61 | 7);
	CHECK_EQ((r64(&g, R_CCMD) >> 59) & 3, 2);
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x36);

	/* a device-TLB descriptor is accepted (no device TLBs here) */
	vt_case("invalidation: device TLB");
	uint64_t dtlb[2] = { D_DEVTLB | 0x0008ull << 32, 0x1000 };
	CHECK(qi_sync(&g, dtlb, 1));
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);

	/* invalid descriptors: IQE, IQH left at it, fault event; the guest
	 * replaces it and clears IQE, and the queue goes on */
	struct {
		uint64_t lo, hi;
		unsigned iqei;
	} bad[] = {
		{ D_PIOTLB, 0, 3 },                     /* scalable-mode type */
		{ D_PC, 0, 3 },
		{ 0, 0, 3 },                            /* type 0 */
		{ 0x9, 0, 3 },
		{ D_CC | 1u << 9, 0, 3 },               /* type bits 11:9 */
		{ d_cc(1, 0, 0, 0) | 1u << 7, 0, 4 },   /* reserved 8:6 */
		{ d_cc(1, 0, 0, 0), 1, 4 },             /* high qword reserved */
		{ d_cc(0, 0, 0, 0), 0, 4 },             /* granularity 0 */
		{ d_iotlb(1, 0) | 1ull << 40, 0, 4 },
		{ d_iotlb(3, 1), 0x1000 | 1u << 8, 4 },
		{ D_IEC | 1ull << 50, 0, 4 },
		{ D_WAIT | 1u << 5, 0x30001, 4 },       /* status address bits 1:0 */
		{ D_WAIT | 1u << 12, 0, 4 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vt_case("invalidation: bad descriptor %u", i);
		unsigned msis = g.nmsi;
		uint32_t at = g.iq_tail;
		uint64_t none[2] = { bad[i].lo, bad[i].hi };
		CHECK(!qi_sync(&g, none, 1));
		CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, FS_IQE);
		CHECK_EQ(r64(&g, R_IQH), (uint64_t)at << 4);
		CHECK_EQ(r64(&g, R_IQERCD) & 0xf, bad[i].iqei);
		CHECK_EQ(g.nmsi, msis + 1);
		CHECK_EQ(g.msi_data[msis], 0x41);
		/* Linux copies the wait descriptor over the bad one */
		vg_wr64(&g, VG_IQ + at * 16ull, vg_rd64(&g, VG_IQ + ((at + 1) % 256) * 16ull));
		vg_wr64(&g, VG_IQ + at * 16ull + 8, vg_rd64(&g, VG_IQ + ((at + 1) % 256) * 16ull + 8));
		w32(&g, R_FSTS, FS_IQE);
		CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);
		CHECK_EQ(r64(&g, R_IQH), (uint64_t)g.iq_tail << 4);
		CHECK_EQ(vg_rd32(&g, VG_STATUS + (g.status_seq % 64) * 4), g.status_seq);
	}
	/* a tail beyond the queue */
	vt_case("invalidation: bad tail");
	uint64_t stale_iqh = r64(&g, R_IQH);
	w32(&g, R_IQT, 300u << 4); /* 256 entries */
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, FS_IQE);
	CHECK_EQ(r64(&g, R_IQERCD) & 0xf, 1);
	CHECK_EQ(r64(&g, R_IQH), stale_iqh);
	qi_kick(&g); /* back to a sane tail */
	w32(&g, R_FSTS, FS_IQE);
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);
	CHECK_EQ(r64(&g, R_IQH), stale_iqh);

	/* wait with interrupt flag: IWC and the completion interrupt */
	vt_case("invalidation: wait with IF");
	w32(&g, R_IEDATA, 0x52);
	w32(&g, R_IEADDR, 0xfee02000u);
	w32(&g, R_IECTL, 0);
	unsigned msis = g.nmsi;
	qi_put(&g, D_WAIT | 1u << 4, 0);
	qi_kick(&g);
	CHECK_EQ(r32(&g, R_ICS), 1);
	CHECK_EQ(g.nmsi, msis + 1);
	CHECK_EQ(g.msi_addr[msis], 0xfee02000u);
	CHECK_EQ(g.msi_data[msis], 0x52);
	/* IWC still set: not a new interrupt condition */
	qi_put(&g, D_WAIT | 1u << 4, 0);
	qi_kick(&g);
	CHECK_EQ(g.nmsi, msis + 1);
	w32(&g, R_ICS, 1);
	CHECK_EQ(r32(&g, R_ICS), 0);
	/* masked: pending, sent on unmask */
	w32(&g, R_IECTL, CTL_IM);
	qi_put(&g, D_WAIT | 1u << 4, 0);
	qi_kick(&g);
	CHECK_EQ(r32(&g, R_IECTL), CTL_IM | CTL_IP);
	CHECK_EQ(g.nmsi, msis + 1);
	w32(&g, R_IECTL, 0);
	CHECK_EQ(r32(&g, R_IECTL), 0);
	CHECK_EQ(g.nmsi, msis + 2);
	w32(&g, R_ICS, 1);

	/* injected completion drop and delay */
	vt_case("invalidation: completion dropped");
	struct viommu_inject_rule rule = { .size = sizeof(rule), .action = VIOMMU_INJECT_DROP_COMPLETION,
					   .trigger = VIOMMU_INJECT_NTH, .n = 1 };
	uint32_t id;
	CHECK_EQ(viommu_inject_add(g.v, &rule, &id), 0);
	uint64_t iec[2] = { D_IEC, 0 };
	CHECK(!qi_sync(&g, iec, 1));
	CHECK_EQ(r64(&g, R_IQH), (uint64_t)g.iq_tail << 4); /* consumed */
	CHECK(qi_sync(&g, iec, 1)); /* only the first */
	CHECK_EQ(viommu_inject_remove(g.v, id), 0);
	vt_case("invalidation: completion delayed");
	rule.action = VIOMMU_INJECT_DELAY_COMPLETION;
	rule.delay_us = 20000;
	CHECK_EQ(viommu_inject_add(g.v, &rule, &id), 0);
	uint32_t wait_at = g.iq_tail;
	CHECK(!qi_sync(&g, iec, 1));
	CHECK_EQ(r64(&g, R_IQH), (uint64_t)((wait_at + 1) % 256) << 4); /* stalled at the wait */
	uint64_t later[2] = { D_IEC, 0 };
	CHECK(!qi_sync(&g, later, 1)); /* queued behind it */
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	r32(&g, R_FSTS); /* Linux reads FSTS while it waits */
	CHECK_EQ(vg_rd32(&g, VG_STATUS + ((g.status_seq - 1) % 64) * 4), g.status_seq - 1);
	CHECK_EQ(vg_rd32(&g, VG_STATUS + (g.status_seq % 64) * 4), g.status_seq);
	CHECK_EQ(r64(&g, R_IQH), (uint64_t)g.iq_tail << 4);
	CHECK_EQ(viommu_inject_remove(g.v, id), 0);

	/* disabling QI resets the head */
	vt_case("invalidation: QI off");
	w32(&g, R_GCMD, G_IRE | G_TE);
	CHECK_EQ(r32(&g, R_GSTS) & G_QIE, 0);
	CHECK_EQ(r64(&g, R_IQH), 0);
	vg_fini(&g);
}

/* Interrupt remapping: enable, deliver, IEC, faults in the records. */
static void test_ir(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 48, 0);
	vt_case("interrupt remapping");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	vg_irte(&g, 3, 0x61, 0x102, 1);
	vg_irte(&g, 4, 0x62, 0, 0);
	struct viommu_rid src = vg_rid(0, 1, 0);
	/* IR off: MSIs pass unchanged */
	unsigned msis = g.nmsi;
	CHECK_EQ(viommu_ir_deliver(g.v, src, 0xfee01000u, 0x33), 0);
	CHECK_EQ(g.msi_addr[msis], 0xfee01000u);
	CHECK_EQ(g.msi_data[msis], 0x33);
	boot(&g, 1);
	msis = g.nmsi;
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(3), 0), 0);
	CHECK_EQ(g.nmsi, msis + 1);
	CHECK_EQ(g.msi_data[msis] & 0xff, 0x61);
	CHECK_EQ(g.msi_addr[msis], 0xfee00000ull | 0x02 << 12 | 0x1ull << 40); /* x2APIC destination 0x102 */
	/* the entry is cached until an IEC invalidation */
	vg_irte(&g, 3, 0x71, 0x102, 1);
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(3), 0), 0);
	CHECK_EQ(g.msi_data[msis + 1] & 0xff, 0x61);
	uint64_t iec_other[2] = { D_IEC | 1u << 4 | 8ull << 32, 0 }; /* index 8 only */
	CHECK(qi_sync(&g, iec_other, 1));
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(3), 0), 0);
	CHECK_EQ(g.msi_data[msis + 2] & 0xff, 0x61);
	uint64_t iec_idx[2] = { D_IEC | 1u << 4 | 2ull << 27 | 1ull << 32, 0 }; /* 4 entries from 0 */
	CHECK(qi_sync(&g, iec_idx, 1));
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(3), 0), 0);
	CHECK_EQ(g.msi_data[msis + 3] & 0xff, 0x71);
	vg_irte(&g, 3, 0x72, 0x102, 1);
	uint64_t iec_all[2] = { D_IEC, 0 };
	CHECK(qi_sync(&g, iec_all, 1));
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(3), 0), 0);
	CHECK_EQ(g.msi_data[msis + 4] & 0xff, 0x72);
	msis = g.nmsi;

	/* faults: not present (0x22), index beyond the table (0x21) */
	vt_case("interrupt remapping: faults");
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(4), 0), -EFAULT);
	uint64_t lo, hi;
	frcd(&g, 0, &lo, &hi);
	CHECK_EQ(hi >> 63, 1);
	CHECK_EQ((hi >> 32) & 0xff, 0x22);
	CHECK_EQ(lo, 4ull << 48);
	CHECK_EQ(hi & 0xffff, 0x0008);
	CHECK_EQ(g.nmsi, msis + 1); /* the fault event */
	CHECK_EQ(g.msi_data[msis], 0x41);
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(300), 0), -EFAULT);
	frcd(&g, 1, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x21);
	CHECK_EQ(lo, 300ull << 48);
	/* reserved field in a present IRTE (0x24) */
	vg_wr64(&g, VG_IRT + 5 * 16, 1 | 0x61ull << 16 | 1ull << 12);
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(5), 0), -EFAULT);
	frcd(&g, 2, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x24);
	CHECK_EQ(lo, 5ull << 48);
	/* source-ID check (0x26): SVT 1, SID 00:02.0 */
	vg_irte(&g, 6, 0x63, 0, 1);
	vg_wr64(&g, VG_IRT + 6 * 16 + 8, 0x0010 | 1ull << 18);
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(6), 0), -EFAULT);
	frcd(&g, 3, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x26);
	/* compatibility format: blocked in x2APIC mode (0x25) */
	CHECK_EQ(viommu_ir_deliver(g.v, src, 0xfee00000u, 0x30), -EFAULT);
	frcd(&g, 4, &lo, &hi);
	CHECK_EQ((hi >> 32) & 0xff, 0x25);
	/* FPD in the IRTE: not recorded */
	vg_wr64(&g, VG_IRT + 7 * 16, 2); /* not present, FPD */
	CHECK_EQ(viommu_ir_deliver(g.v, src, msi_remap_addr(7), 0), -EFAULT);
	frcd(&g, 5, &lo, &hi);
	CHECK_EQ(hi >> 63, 0);
	faults_clear(&g, 8);

	/* xAPIC mode with CFI: compatibility interrupts pass */
	vt_case("interrupt remapping: xAPIC, CFI");
	w64(&g, R_IRTA, VG_IRT | 7);
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE | G_SIRTP);
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE | G_CFI);
	CHECK(r32(&g, R_GSTS) & G_CFI);
	msis = g.nmsi;
	CHECK_EQ(viommu_ir_deliver(g.v, src, 0xfee00000u, 0x30), 0);
	CHECK_EQ(g.msi_data[msis], 0x30);
	w32(&g, R_GCMD, G_QIE | G_IRE | G_TE);
	CHECK_EQ(viommu_ir_deliver(g.v, src, 0xfee00000u, 0x30), -EFAULT);
	/* IR off: unchanged again; and IR faults then are not recorded */
	faults_clear(&g, 8);
	w32(&g, R_GCMD, G_QIE | G_TE);
	CHECK_EQ(r32(&g, R_GSTS) & G_IRE, 0);
	msis = g.nmsi;
	CHECK_EQ(viommu_ir_deliver(g.v, src, 0xfee01000u, 0x34), 0);
	CHECK_EQ(g.msi_data[msis], 0x34);
	vg_fini(&g);
}

/* The DMAR table, parsed back. */
static void test_dmar(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 39, 0);
	c.segment = 0;
	vt_case("DMAR");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	struct viommu_vtd_ioapic io[2] = {
		{ .id = 0, .rid = { .segment = 0, .bus = 0, .devfn = (uint8_t)(0x1f << 3) } },
		{ .id = 9, .rid = { .segment = 0, .bus = 0xf0, .devfn = (uint8_t)(0x1e << 3 | 2) } },
	};
	uint8_t buf[256];
	memset(buf, 0xee, sizeof(buf));
	int n = viommu_vtd_dmar(g.vtd, 0xfed90000ull, io, 2, buf, sizeof(buf));
	CHECK_EQ(n, 48 + 16 + 2 * 8);
	CHECK(!memcmp(buf, "DMAR", 4));
	CHECK_EQ(vg_le(buf + 4, 4), (uint64_t)n);
	CHECK_EQ(buf[8], 1); /* revision */
	uint8_t sum = 0;
	for (int i = 0; i < n; i++)
		sum = (uint8_t)(sum + buf[i]);
	CHECK_EQ(sum, 0);
	CHECK_EQ(buf[36], 38);     /* host address width - 1 */
	CHECK_EQ(buf[37], 1);      /* INTR_REMAP, no x2APIC opt-out */
	for (int i = 38; i < 48; i++)
		CHECK_EQ(buf[i], 0);
	const uint8_t *d = buf + 48;
	CHECK_EQ(vg_le(d, 2), 0);  /* DRHD */
	CHECK_EQ(vg_le(d + 2, 2), 16 + 2 * 8);
	CHECK_EQ(d[4], 1);         /* INCLUDE_PCI_ALL */
	CHECK_EQ(vg_le(d + 6, 2), 0);
	CHECK_EQ(vg_le(d + 8, 8), 0xfed90000ull);
	for (unsigned i = 0; i < 2; i++) {
		const uint8_t *s = d + 16 + i * 8;
		CHECK_EQ(s[0], 3);     /* IOAPIC */
		CHECK_EQ(s[1], 8);
		CHECK_EQ(s[2] | s[3], 0);
		CHECK_EQ(s[4], io[i].id);
		CHECK_EQ(s[5], io[i].rid.bus);
		CHECK_EQ(s[6], io[i].rid.devfn >> 3);
		CHECK_EQ(s[7], io[i].rid.devfn & 7);
	}
	CHECK_EQ(buf[n], 0xee); /* nothing written past the end */
	CHECK_EQ(viommu_vtd_dmar(g.vtd, 0xfed90000ull, io, 2, buf, (size_t)n - 1), -ENOSPC);
	CHECK_EQ(viommu_vtd_dmar(g.vtd, 0xfed90000ull, NULL, 2, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ(viommu_vtd_dmar(NULL, 0xfed90000ull, io, 2, buf, sizeof(buf)), -EINVAL);
	CHECK_EQ(viommu_vtd_dmar(g.vtd, 0xfed90000ull, NULL, 0, buf, sizeof(buf)), 48 + 16);
	vg_fini(&g);
}

/* An explicit device scope: the listed endpoints and the IOAPIC, no
 * INCLUDE_PCI_ALL (a device left out is behind no unit). */
static void test_dmar_scoped(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_X2APIC, 48, 0);
	c.segment = 0;
	vt_case("DMAR with an explicit device scope");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	struct viommu_vtd_ioapic io = { .id = 0, .rid = { .segment = 0, .bus = 0, .devfn = (uint8_t)(0x1f << 3) } };
	struct viommu_rid dev[3] = {
		{ .segment = 0, .bus = 0, .devfn = (uint8_t)(1 << 3) },
		{ .segment = 0, .bus = 0, .devfn = (uint8_t)(3 << 3) },
		{ .segment = 0, .bus = 5, .devfn = (uint8_t)(0x1c << 3 | 7) },
	};
	uint8_t buf[256];
	memset(buf, 0xee, sizeof(buf));
	int n = viommu_vtd_dmar_scoped(g.vtd, 0xfed90000ull, &io, 1, dev, 3, buf, sizeof(buf));
	CHECK_EQ(n, 48 + 16 + 4 * 8);
	CHECK_EQ(vg_le(buf + 4, 4), (uint64_t)n);
	uint8_t sum = 0;
	for (int i = 0; i < n; i++)
		sum = (uint8_t)(sum + buf[i]);
	CHECK_EQ(sum, 0);
	CHECK_EQ(buf[36], 47);
	const uint8_t *d = buf + 48;
	CHECK_EQ(vg_le(d, 2), 0);
	CHECK_EQ(vg_le(d + 2, 2), 16 + 4 * 8);
	CHECK_EQ(d[4], 0);         /* not INCLUDE_PCI_ALL */
	CHECK_EQ(vg_le(d + 8, 8), 0xfed90000ull);
	for (unsigned i = 0; i < 3; i++) {
		const uint8_t *s = d + 16 + i * 8;
		CHECK_EQ(s[0], 1);     /* PCI endpoint */
		CHECK_EQ(s[1], 8);
		CHECK_EQ(s[2] | s[3] | s[4], 0);
		CHECK_EQ(s[5], dev[i].bus);
		CHECK_EQ(s[6], dev[i].devfn >> 3);
		CHECK_EQ(s[7], dev[i].devfn & 7);
	}
	const uint8_t *s = d + 16 + 3 * 8;
	CHECK_EQ(s[0], 3);         /* the IOAPIC after the endpoints */
	CHECK_EQ(s[4], 0);
	CHECK_EQ(s[6], 0x1f);
	CHECK_EQ(buf[n], 0xee);
	/* No endpoint: the unit covers the IOAPIC alone, still no INCLUDE_PCI_ALL. */
	n = viommu_vtd_dmar_scoped(g.vtd, 0xfed90000ull, &io, 1, NULL, 0, buf, sizeof(buf));
	CHECK_EQ(n, 48 + 16 + 8);
	CHECK_EQ(buf[48 + 4], 0);
	CHECK_EQ(buf[48 + 16], 3);
	CHECK_EQ(viommu_vtd_dmar_scoped(g.vtd, 0xfed90000ull, &io, 1, dev, 3, buf, 48 + 16 + 4 * 8 - 1), -ENOSPC);
	CHECK_EQ(viommu_vtd_dmar_scoped(g.vtd, 0xfed90000ull, &io, 1, NULL, 3, buf, sizeof(buf)), -EINVAL);
	dev[1].segment = 1; /* another segment than the unit's */
	CHECK_EQ(viommu_vtd_dmar_scoped(g.vtd, 0xfed90000ull, &io, 1, dev, 3, buf, sizeof(buf)), -EINVAL);
	vg_fini(&g);
}

/* ------------------------------------------------------------------------ */
/* Concurrency: DMA on other threads while the guest invalidates            */

struct stress {
	struct vg *g;
	viommu_dev *dev;
	int faulting;      /* this thread's DMA faults on purpose */
	volatile int stop;
	unsigned long ok, bad, faults, passed;
};

static void *stress_dma(void *arg)
{
	struct stress *s = arg;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		uint8_t b[16];
		size_t done;
		struct viommu_fault_record f;
		int r = viommu_dma_read(s->dev, VIOMMU_NO_PASID, s->faulting ? 0x900000 : 0x1008, b, sizeof(b), 0, &done, &f);
		if (s->faulting) {
			if (r == -EFAULT && f.reason == VIOMMU_FAULT_NOT_PRESENT)
				__atomic_add_fetch(&s->faults, 1, __ATOMIC_RELAXED);
			else if (r == 0)
				__atomic_add_fetch(&s->passed, 1, __ATOMIC_RELAXED); /* translation was off a moment */
			else {
				s->bad++;
				fprintf(stderr, "stress: faulting DMA gave %d (reason %d)\n", r, r ? (int)f.reason : 0);
			}
		} else if (r == 0 && b[0] == 0x5c && b[15] == 0x5c) {
			__atomic_add_fetch(&s->ok, 1, __ATOMIC_RELAXED);
		} else if (r == 0 && b[0] == 0xa7 && b[15] == 0xa7) {
			/* translation was off a moment: guest physical 0x1008 */
			__atomic_add_fetch(&s->passed, 1, __ATOMIC_RELAXED);
		} else {
			s->bad++;
			fprintf(stderr, "stress: translated DMA gave %d (reason %d), data %#x\n", r, r ? (int)f.reason : 0, b[0]);
		}
	}
	return NULL;
}

static void test_concurrency(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(0, 48, 4);
	vt_case("concurrency");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	memset(g.ram + VG_DATA, 0x5c, 4096);
	memset(g.ram + 0x1000, 0xa7, 4096);
	uint64_t slroot = vg_page(&g);
	sl_map(&g, slroot, 4, 0x1000, VG_DATA, SL_R);
	vg_root(&g, 0, VG_CTX0);
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, slroot, 2, 1, 0);
	vg_ctx(&g, VG_CTX0, 2 << 3, 0, slroot, 2, 1, 0);
	boot(&g, 0);
	g.threaded = 1;
	struct stress st[2] = {
		{ .g = &g, .dev = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0)) },
		{ .g = &g, .dev = viommu_vtd_device(g.vtd, vg_rid(0, 2, 0)), .faulting = 1 },
	};
	pthread_t th[2];
	int started = 0;
	for (unsigned i = 0; i < 2; i++)
		started += !pthread_create(&th[i], NULL, stress_dma, &st[i]);
	CHECK_EQ(started, 2);
	uint64_t inv[][2] = {
		{ d_cc(1, 0, 0, 0), 0 }, { d_iotlb(1, 0), 0 }, { d_cc(3, 0, 0x0008, 0), 0 },
		{ d_iotlb(2, 1), 0 }, { d_iotlb(3, 1), 0x1000 }, { d_cc(2, 1, 0, 0), 0 }, { D_IEC, 0 },
	};
	unsigned synced = 0, round;
	/* until both threads have done a fair amount under it (bounded) */
	for (round = 0; round < 3000 || ((__atomic_load_n(&st[0].ok, __ATOMIC_RELAXED) < 20000 ||
					   __atomic_load_n(&st[1].faults, __ATOMIC_RELAXED) < 2000) &&
					  round < 3000000);
	     round++) {
		if (qi_sync(&g, inv[round % 7], 1))
			synced++;
		if (round % 50 == 0)
			faults_clear(&g, 4);
		if (round % 500 == 250) {
			/* translation off and on again under the DMA */
			w32(&g, R_GCMD, G_QIE | G_IRE);
			w32(&g, R_GCMD, G_QIE | G_IRE | G_TE);
		}
	}
	for (unsigned i = 0; i < 2; i++)
		__atomic_store_n(&st[i].stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(synced, round);
	CHECK_EQ(st[0].bad, 0);
	CHECK_EQ(st[1].bad, 0);
	printf("concurrency: %u invalidation rounds; DMA: %lu translated, %lu faulted, %lu untranslated\n", round,
	       st[0].ok, st[1].faults, st[0].passed + st[1].passed);
	CHECK(st[0].ok > 0);
	/* with translation off the faulting device reads RAM: that is the
	 * only time it may not fault */
	CHECK(st[1].faults > 0);
	/* the fault records are consistent: PPF iff some F */
	unsigned any = 0;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t lo, hi;
		frcd(&g, i, &lo, &hi);
		any |= (unsigned)(hi >> 63);
	}
	CHECK_EQ(!!(r32(&g, R_FSTS) & FS_PPF), any);
	vg_fini(&g);
}

/* ------------------------------------------------------------------------ */
/* Allocation failures                                                      */

struct fail_alloc {
	unsigned long calls, fail_at, live;
};

static void *fa_alloc(void *ctx, size_t size, size_t align)
{
	struct fail_alloc *a = ctx;
	if (++a->calls == a->fail_at)
		return NULL;
	void *p = aligned_alloc(align < sizeof(void *) ? sizeof(void *) : align,
				(size + align - 1) / align * align);
	if (p)
		a->live++;
	return p;
}

static void fa_free(void *ctx, void *ptr, size_t size, size_t align)
{
	struct fail_alloc *a = ctx;
	(void)size;
	(void)align;
	a->live--;
	free(ptr);
}

static void test_allocfail(void)
{
	uint8_t *ram = aligned_alloc(4096, 1 << 20);
	if (!CHECK(ram))
		return;
	memset(ram, 0, 1 << 20);
	struct viommu_mem_region reg = { .gpa = 0, .size = 1 << 20, .host = ram };
	unsigned ok = 0;
	for (unsigned long n = 1; n < 200 && !ok; n++) {
		vt_case("allocfail %lu", n);
		struct fail_alloc fa = { 0 };
		struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = fa_alloc, .free = fa_free, .ctx = &fa };
		struct viommu_config cfg = {
			.size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		};
		viommu *v = NULL;
		if (!CHECK_EQ(viommu_create(&cfg, &hooks, &v), 0))
			break;
		unsigned long base = fa.calls;
		fa.fail_at = base + n;
		struct viommu_vtd_config vc = vcfg(0, 48, 0);
		viommu_vtd *t = NULL;
		int r = viommu_vtd_create(v, &vc, &t);
		if (r) {
			CHECK_EQ(r, -ENOMEM);
			CHECK(t == NULL);
			/* nothing left behind: a second try works */
			fa.fail_at = 0;
			CHECK_EQ(viommu_vtd_create(v, &vc, &t), 0);
		} else {
			ok = 1;
		}
		/* a device and its resolution under allocation failure too */
		fa.fail_at = fa.calls + 1;
		viommu_dev *d = viommu_vtd_device(t, vg_rid(0, 1, 0));
		fa.fail_at = 0;
		if (!d)
			d = viommu_vtd_device(t, vg_rid(0, 1, 0));
		CHECK(d != NULL);
		viommu_vtd_destroy(t);
		viommu_destroy(v);
		CHECK_EQ(fa.live, 0);
	}
	CHECK(ok);
	free(ram);
}

/* A guest that keeps pointing a context entry at new tables (with only
 * device-selective invalidations) does not make the unit grow without
 * bound; requests with a PASID are not translated in legacy mode. */
static void test_bounds(void)
{
	uint8_t *ram = aligned_alloc(4096, VG_RAM_SIZE);
	if (!CHECK(ram))
		return;
	memset(ram, 0, VG_RAM_SIZE);
	struct viommu_mem_region reg = { .gpa = 0, .size = VG_RAM_SIZE, .host = ram };
	struct fail_alloc fa = { 0 };
	struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = fa_alloc, .free = fa_free, .ctx = &fa };
	struct viommu_config cfg = {
		.size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
	};
	struct vg g;
	memset(&g, 0, sizeof(g));
	g.ram = ram;
	vt_case("bounds");
	if (!CHECK_EQ(viommu_create(&cfg, &hooks, &g.v), 0))
		return;
	struct viommu_vtd_config c = vcfg(0, 48, 0);
	if (!CHECK_EQ(viommu_vtd_create(g.v, &c, &g.vtd), 0))
		return;
	g.pt_next = VG_PT_FIRST;
	vg_root(&g, 0, VG_CTX0);
	boot(&g, 0);
	viommu_dev *d = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	uint8_t b;
	size_t done;
	struct viommu_fault_record f;
	unsigned long live_first = 0, live_max = 0;
	unsigned faults = 0;
	for (unsigned i = 0; i < 2000; i++) {
		/* a fresh (empty) table each time, DID cycling */
		uint64_t root = VG_PT_FIRST + (i % 700) * 4096ull;
		vg_ctx(&g, VG_CTX0, 1 << 3, 0, root, 2, (uint16_t)(1 + i % 200), 0);
		uint64_t cc[2] = { d_cc(3, 0, 0x0008, 0), 0 };
		CHECK(qi_sync(&g, cc, 1));
		if (viommu_dma_read(d, VIOMMU_NO_PASID, 0x1000, &b, 1, 0, &done, &f) == -EFAULT &&
		    f.reason == VIOMMU_FAULT_NOT_PRESENT)
			faults++;
		if (i % 8 == 0)
			faults_clear(&g, 8);
		if (i == 10)
			live_first = fa.live;
		if (fa.live > live_max)
			live_max = fa.live;
	}
	CHECK_EQ(faults, 2000);
	/* a few dozen domains at most (64 + 2 per device), not 2000 */
	CHECK(live_max < live_first + 80 * 4);
	printf("bounds: %lu blocks live after 10 context switches, at most %lu over 2000\n", live_first, live_max);

	/* requests with a PASID: blocked, not recorded (legacy mode) */
	vt_case("bounds: PASID");
	faults_clear(&g, 8);
	struct viommu_translation t;
	CHECK_EQ(viommu_translate(d, 5, 0x1000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(t.fault.reason, VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(r32(&g, R_FSTS) & FS_PPF, 0);
	viommu_vtd_destroy(g.vtd);
	viommu_destroy(g.v);
	CHECK_EQ(fa.live, 0);
	free(ram);
}

/* ------------------------------------------------------------------------ */
/* Scalable mode                                                            */
/*
 * The structures below are written from the VT-d specification (9.2 root
 * entry, 9.4 context entry, 9.5 PASID directory entry, 9.6 PASID table entry,
 * 3.6 first-level paging = x86-64 paging), independently of the library.
 */

#define SM_TTM       (1ull << 10) /* RTADDR.TTM = 01 */
#define SM_IQA_DW    (1ull << 11) /* 256-bit descriptors */
#define FL_P  (1ull << 0)
#define FL_RW (1ull << 1)
#define FL_US (1ull << 2)
#define FL_A  (1ull << 5)
#define FL_D  (1ull << 6)
#define FL_PS (1ull << 7)
#define FL_XD (1ull << 63)
#define FL_ADDR 0x000ffffffffff000ull
#define PGTT_FL 1u
#define PGTT_SL 2u
#define PGTT_NESTED 3u
#define PGTT_PT 4u

/* Root entry (9.2): low qword devices 0-127, high qword 128-255. */
static void sm_root(struct vg *g, uint8_t bus, uint64_t lctp, uint64_t uctp)
{
	vg_wr64(g, VG_ROOT + bus * 16ull, lctp ? lctp | 1 : 0);
	vg_wr64(g, VG_ROOT + bus * 16ull + 8, uctp ? uctp | 1 : 0);
}

/* Context entry (9.4), 32 bytes at (devfn % 128): P 0, FPD 1, PASIDE 3,
 * PDTS 11:9, PASID directory 63:12; RID_PASID 19:0 of the second qword. */
static uint64_t sm_ctx(struct vg *g, uint64_t table, uint8_t devfn, uint64_t dir, unsigned pdts, int paside, int fpd,
		       uint32_t rid_pasid)
{
	uint64_t a = table + (devfn & 127) * 32ull;
	vg_wr64(g, a, 1 | (fpd ? 2u : 0u) | (paside ? 8u : 0u) | (uint64_t)pdts << 9 | dir);
	vg_wr64(g, a + 8, rid_pasid);
	vg_wr64(g, a + 16, 0);
	vg_wr64(g, a + 24, 0);
	return a;
}

/* PASID directory entry (9.5): P 0, FPD 1, PASID table 63:12. */
static uint64_t sm_pde(struct vg *g, uint64_t dir, uint32_t pasid, uint64_t table, int fpd)
{
	uint64_t a = dir + (pasid >> 6) * 8ull;
	vg_wr64(g, a, table | 1 | (fpd ? 2u : 0u));
	return a;
}

/* PASID table entry (9.6), 64 bytes: P 0, FPD 1, AW 4:2, PGTT 8:6, SLPTPTR
 * 63:12; DID 15:0; FLPM 3:2, FLPTPTR 63:12; the rest 0. */
static uint64_t sm_pe(struct vg *g, uint64_t table, uint32_t pasid, unsigned pgtt, uint16_t did, uint64_t slptr,
		      unsigned aw, uint64_t flptr, int fpd)
{
	uint64_t a = table + (pasid & 63) * 64ull;
	vg_wr64(g, a, 1 | (fpd ? 2u : 0u) | (uint64_t)aw << 2 | (uint64_t)pgtt << 6 | slptr);
	vg_wr64(g, a + 8, did);
	vg_wr64(g, a + 16, flptr);
	for (unsigned i = 3; i < 8; i++)
		vg_wr64(g, a + 8 * i, 0);
	return a;
}

/* Map a 4 KiB page in a 4-level first-level table (host address root).
 * Table pointers are written as host address + off (a nested first level
 * points at guest-physical addresses that its second level maps back). The
 * address of the leaf entry is returned. */
static uint64_t fl_map(struct vg *g, uint64_t root, uint64_t iova, uint64_t out, uint64_t flags, uint64_t off)
{
	uint64_t table = root;
	for (unsigned l = 4; l > 1; l--) {
		uint64_t ea = table + ((iova >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t e = vg_rd64(g, ea);
		if (!(e & FL_P)) {
			e = (vg_page(g) + off) | FL_P | FL_RW | FL_US;
			vg_wr64(g, ea, e);
		}
		table = (e & FL_ADDR) - off;
	}
	uint64_t la = table + ((iova >> 12) & 511) * 8;
	vg_wr64(g, la, out | flags);
	return la;
}

/* 256-bit descriptors in a queue of 256 (IQA.QS = 1: two pages). */
static void sm_qi_put(struct vg *g, uint64_t q0, uint64_t q1, uint64_t q2, uint64_t q3)
{
	uint64_t a = VG_IQ + (uint64_t)g->iq_tail * 32;
	vg_wr64(g, a, q0);
	vg_wr64(g, a + 8, q1);
	vg_wr64(g, a + 16, q2);
	vg_wr64(g, a + 24, q3);
	g->iq_tail = (g->iq_tail + 1) % 256;
}

static void sm_qi_kick(struct vg *g)
{
	w32(g, R_IQT, g->iq_tail << 5);
}

/* As qi_sync, with 256-bit descriptors (descs: pairs of qwords). */
static int sm_qi_sync(struct vg *g, const uint64_t *descs, unsigned n)
{
	uint32_t data = ++g->status_seq;
	uint64_t st = VG_STATUS + (g->status_seq % 64) * 4;
	vg_wr32(g, st, 0);
	for (unsigned i = 0; i < n; i++)
		sm_qi_put(g, descs[2 * i], descs[2 * i + 1], 0, 0);
	sm_qi_put(g, D_WAIT | (1ull << 5) | (uint64_t)data << 32, st, 0, 0);
	sm_qi_kick(g);
	return vg_rd32(g, st) == data;
}

#define D_PDEVTLB 0x8ull
/* PASID-cache (6.5.2.2) and PASID-based IOTLB (6.5.2.4): G 5:4, DID 31:16,
 * PASID 51:32; the latter's second qword AM 5:0, ADDR 63:12. */
static uint64_t d_pc(unsigned g, uint16_t did, uint32_t pasid)
{
	return D_PC | (uint64_t)g << 4 | (uint64_t)did << 16 | (uint64_t)pasid << 32;
}

static uint64_t d_piotlb(unsigned g, uint16_t did, uint32_t pasid)
{
	return D_PIOTLB | (uint64_t)g << 4 | (uint64_t)did << 16 | (uint64_t)pasid << 32;
}

/* Linux's scalable-mode boot: root table with TTM = 01, queued invalidation
 * with 256-bit descriptors, global context, PASID-cache and IOTLB flushes,
 * translation on. */
static void sm_boot(struct vg *g)
{
	uint64_t cap = r64(g, R_CAP), ecap = r64(g, R_ECAP);
	g_fro = ((cap >> 24) & 0x3ff) * 16;
	g_iro = ((ecap >> 8) & 0x3ff) * 16;
	w32(g, R_FEDATA, 0x41);
	w32(g, R_FEADDR, 0xfee00000u);
	w32(g, R_FECTL, 0);

	w32(g, R_IQT, 0);
	w64(g, R_IQA, VG_IQ | SM_IQA_DW | 1);
	CHECK_EQ(r64(g, R_IQA), VG_IQ | SM_IQA_DW | 1);
	w32(g, R_GCMD, G_QIE);
	CHECK(r32(g, R_GSTS) & G_QIE);
	g->iq_tail = 0;

	w64(g, R_RTADDR, VG_ROOT | SM_TTM);
	w32(g, R_GCMD, G_QIE | G_SRTP);
	CHECK(r32(g, R_GSTS) & G_SRTP);
	CHECK_EQ(r64(g, R_RTADDR), VG_ROOT | SM_TTM);
	uint64_t fl[6] = { d_cc(1, 0, 0, 0), 0, d_pc(3, 0, 0), 0, d_iotlb(1, 0), 0 };
	CHECK(sm_qi_sync(g, fl, 3));
	CHECK_EQ(r64(g, R_IQH), 4u << 5);
	CHECK_EQ(r32(g, R_FSTS) & FS_IQE, 0);
	w32(g, R_GCMD, G_QIE | G_TE);
	CHECK_EQ(r32(g, R_GSTS) & (G_QIE | G_TE | G_SRTP), G_QIE | G_TE | G_SRTP);
}

/* The fault record of the batch FSTS.FRI names (the only one, as the tests
 * clear the records after each fault): its high qword, and the low in *lo.
 * 0 when no fault is pending. The records are cleared afterwards. */
static uint64_t sm_fault(struct vg *g, uint64_t *lo)
{
	uint32_t fsts = r32(g, R_FSTS);
	uint64_t l = 0, h = 0;
	if (fsts & FS_PPF)
		frcd(g, FS_FRI(fsts), &l, &h);
	if (lo)
		*lo = l;
	faults_clear(g, 8);
	return h;
}

#define FR_CODE(hi) ((unsigned)(((hi) >> 32) & 0xff))
#define FR_PP(hi) ((unsigned)(((hi) >> 31) & 1))
#define FR_PV(hi) ((uint32_t)(((hi) >> 40) & 0xfffff))

static void test_sm_caps(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
	vt_case("sm caps");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	uint64_t cap = r64(&g, R_CAP), ecap = r64(&g, R_ECAP);
	CHECK_EQ(r32(&g, R_VER), 0x30);
	CHECK_EQ((ecap >> 43) & 1, 1); /* SMTS */
	CHECK_EQ((ecap >> 47) & 1, 1); /* FLTS */
	CHECK_EQ((ecap >> 46) & 1, 1); /* SLTS */
	CHECK_EQ((ecap >> 26) & 1, 1); /* NEST */
	CHECK_EQ((ecap >> 40) & 1, 1); /* PASID */
	CHECK_EQ((ecap >> 35) & 0x1f, 19); /* PSS: 20-bit PASIDs */
	CHECK_EQ((ecap >> 31) & 1, 1); /* SRS */
	CHECK_EQ((ecap >> 49) & 1, 1); /* RPS */
	CHECK_EQ((ecap >> 6) & 1, 1);  /* PT */
	CHECK_EQ((ecap >> 29) & 1, 1); /* PRS: page requests */
	CHECK_EQ((ecap >> 30) & 1, 0); /* ERS */
	CHECK_EQ((ecap >> 2) & 1, 0);  /* DT */
	CHECK_EQ((cap >> 56) & 1, 1);  /* FL1GP */
	CHECK_EQ((cap >> 60) & 1, 1);  /* FL5LP */
	/* TTM 01 is taken, 10 (reserved) is not */
	w64(&g, R_RTADDR, VG_ROOT | SM_TTM);
	w32(&g, R_GCMD, G_SRTP);
	CHECK(r32(&g, R_GSTS) & G_SRTP);
	vg_fini(&g);
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	w64(&g, R_RTADDR, VG_ROOT | 2ull << 10);
	w32(&g, R_GCMD, G_SRTP);
	CHECK_EQ(r32(&g, R_GSTS) & G_SRTP, 0);
	vg_fini(&g);

	/* a scalable-mode unit still runs a legacy-mode guest (sm_off):
	 * legacy tables, 128-bit descriptors */
	vt_case("sm caps: legacy guest");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	viommu_dev *d = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	uint64_t slroot = vg_page(&g);
	sl_map(&g, slroot, 4, 0x10000000, VG_DATA, SL_R | SL_W);
	g.ram[VG_DATA] = 0x77;
	vg_root(&g, 0, VG_CTX0);
	vg_ctx(&g, VG_CTX0, 1 << 3, 0, slroot, 2, 1, 0);
	boot(&g, 1);
	uint8_t b = 0;
	size_t done;
	struct viommu_fault_record f;
	CHECK_EQ(viommu_dma_read(d, VIOMMU_NO_PASID, 0x10000000, &b, 1, 0, &done, &f), 0);
	CHECK_EQ(b, 0x77);
	/* a request with PASID finds no translation in legacy mode, and is
	 * not recorded (legacy fault records carry no PASID) */
	CHECK_EQ(viommu_dma_read(d, 3, 0x10000000, &b, 1, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(r32(&g, R_FSTS) & FS_PPF, 0);
	vg_fini(&g);

	vt_case("sm caps: legacy unit");
	c = vcfg(0, 48, 0);
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	ecap = r64(&g, R_ECAP);
	CHECK_EQ(r32(&g, R_VER), 0x10);
	CHECK_EQ(ecap & (1ull << 43 | 1ull << 47 | 1ull << 46 | 1ull << 40), 0);
	CHECK_EQ((r64(&g, R_CAP) >> 56) & 1, 0);
	/* a scalable root table pointer is not taken, IQA.DW is reserved */
	w64(&g, R_RTADDR, VG_ROOT | SM_TTM);
	w32(&g, R_GCMD, G_SRTP);
	CHECK_EQ(r32(&g, R_GSTS) & G_SRTP, 0);
	w64(&g, R_IQA, VG_IQ | SM_IQA_DW);
	CHECK_EQ(r64(&g, R_IQA), VG_IQ);
	/* PASID-cache descriptors are unknown to it: IQE, invalid type */
	w32(&g, R_IQT, 0);
	w32(&g, R_GCMD, G_QIE);
	g.iq_tail = 0;
	uint64_t pc[2] = { d_pc(3, 0, 0), 0 };
	CHECK(!qi_sync(&g, pc, 1));
	CHECK(r32(&g, R_FSTS) & FS_IQE);
	CHECK_EQ(r64(&g, R_IQERCD) & 0xf, 3);
	CHECK_EQ(r64(&g, R_IQH), 0);
	vg_fini(&g);
}

/* Every translation type, through RID_PASID and with a PASID. */
static void test_sm_translate(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE | VIOMMU_VTD_F_X2APIC, 48, 0);
	vt_case("sm translate");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	for (uint64_t i = 0; i < 8; i++)
		memset(g.ram + VG_DATA + i * 4096, (int)(0xb0 + i), 4096);
	viommu_dev *dfl = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	viommu_dev *dsl = viommu_vtd_device(g.vtd, vg_rid(0, 2, 0));
	viommu_dev *dpt = viommu_vtd_device(g.vtd, vg_rid(0, 3, 0));
	viommu_dev *dnest = viommu_vtd_device(g.vtd, vg_rid(0, 4, 0));
	viommu_dev *dup = viommu_vtd_device(g.vtd, vg_rid(0, 16, 1)); /* devfn 0x81: upper half */
	CHECK(dfl && dsl && dpt && dnest && dup);

	uint64_t ctx_lo = VG_CTX0, ctx_hi = VG_CTX2;
	sm_root(&g, 0, ctx_lo, ctx_hi);

	/* 00:01.0: first level through RID_PASID 0 (DID 1), and PASID 5 with a
	 * table of its own (DID 1 too); its leaf entries start without A/D */
	uint64_t dir1 = vg_page(&g), pt1 = vg_page(&g), fl1 = vg_page(&g), fl1b = vg_page(&g);
	sm_ctx(&g, ctx_lo, 1 << 3, dir1, 0, 1, 0, 0);
	sm_pde(&g, dir1, 0, pt1, 0);
	sm_pe(&g, pt1, 0, PGTT_FL, 1, 0, 2, fl1, 0);
	sm_pe(&g, pt1, 5, PGTT_FL, 1, 0, 2, fl1b, 0);
	uint64_t la = fl_map(&g, fl1, 0x20000000, VG_DATA, FL_P | FL_RW | FL_US, 0);
	fl_map(&g, fl1, 0x20001000, VG_DATA + 0x1000, FL_P | FL_US, 0);            /* read-only */
	fl_map(&g, fl1, 0x20002000, VG_DATA + 0x2000, FL_P | FL_RW, 0);            /* supervisor */
	fl_map(&g, fl1b, 0x20000000, VG_DATA + 0x3000, FL_P | FL_RW | FL_US, 0);
	/* 00:02.0: second level, 4-level (AW 2), DID 2 */
	uint64_t dir2 = vg_page(&g), pt2 = vg_page(&g), sl2 = vg_page(&g);
	sm_ctx(&g, ctx_lo, 2 << 3, dir2, 0, 0, 0, 0);
	sm_pde(&g, dir2, 0, pt2, 0);
	sm_pe(&g, pt2, 0, PGTT_SL, 2, sl2, 2, 0, 0);
	sl_map(&g, sl2, 4, 0x30000000, VG_DATA + 0x4000, SL_R);
	/* 00:03.0: pass-through, through RID_PASID 70 (second directory entry) */
	uint64_t dir3 = vg_page(&g), pt3 = vg_page(&g);
	sm_ctx(&g, ctx_lo, 3 << 3, dir3, 0, 0, 0, 70);
	sm_pde(&g, dir3, 70, pt3, 0);
	sm_pe(&g, pt3, 70, PGTT_PT, 3, 0, 2, 0, 0);
	/* 00:04.0: nested (DID 4): a first level whose tables and outputs are
	 * guest-physical addresses 0x40000000 above the host ones, and a
	 * second level that maps them back */
	const uint64_t off = 0x40000000;
	uint64_t dir4 = vg_page(&g), pt4 = vg_page(&g), sl4 = vg_page(&g), fl4 = vg_page(&g);
	sm_ctx(&g, ctx_lo, 4 << 3, dir4, 0, 0, 0, 0);
	sm_pde(&g, dir4, 0, pt4, 0);
	uint64_t fl4_first = g.pt_next;
	fl_map(&g, fl4, 0x50000000, VG_DATA + 0x5000 + off, FL_P | FL_RW | FL_US | FL_A | FL_D, off);
	fl_map(&g, fl4, 0x50002000, VG_DATA + 0x7000 + off, FL_P | FL_RW | FL_US | FL_A | FL_D, off);
	for (uint64_t p = fl4; p < g.pt_next; p += 4096)
		if (p == fl4 || p >= fl4_first)
			sl_map(&g, sl4, 4, p + off, p, SL_R | SL_W);
	sl_map(&g, sl4, 4, VG_DATA + 0x5000 + off, VG_DATA + 0x5000, SL_R | SL_W);
	sm_pe(&g, pt4, 0, PGTT_NESTED, 4, sl4, 2, fl4 + off, 0);
	/* 00:10.1: first level again, from the upper context table */
	uint64_t dir5 = vg_page(&g), pt5 = vg_page(&g), fl5 = vg_page(&g);
	sm_ctx(&g, ctx_hi, 0x81, dir5, 0, 0, 0, 0);
	sm_pde(&g, dir5, 0, pt5, 0);
	sm_pe(&g, pt5, 0, PGTT_FL, 5, 0, 2, fl5, 0);
	fl_map(&g, fl5, 0x60000000, VG_DATA + 0x6000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);

	sm_boot(&g);
	uint8_t buf[16];
	size_t done;
	struct viommu_fault_record f;
	unsigned msis = g.nmsi;

	vt_case("sm translate: first level");
	CHECK_EQ(viommu_dma_read(dfl, VIOMMU_NO_PASID, 0x20000010, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb0);
	/* the unit set A on every entry it used (3.6.2), D only on a write */
	CHECK_EQ(vg_rd64(&g, la) & (FL_A | FL_D), FL_A);
	CHECK(vg_rd64(&g, fl1) & FL_A);
	uint8_t w[4] = { 9, 8, 7, 6 };
	CHECK_EQ(viommu_dma_write(dfl, VIOMMU_NO_PASID, 0x20000020, w, 4, 0, &done, &f), 0);
	CHECK_EQ(g.ram[VG_DATA + 0x20], 9);
	CHECK_EQ(vg_rd64(&g, la) & (FL_A | FL_D), FL_A | FL_D);
	CHECK_EQ(vg_rd64(&g, la) & FL_ADDR, VG_DATA);
	/* PASID 5 has its own table */
	CHECK_EQ(viommu_dma_read(dfl, 5, 0x20000000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb3);
	/* a supervisor page: a privileged request with PASID may read it */
	CHECK_EQ(viommu_dma_read(dfl, 5, 0x20000000, buf, 8, VIOMMU_DMA_PRIV, &done, &f), 0);

	vt_case("sm translate: second level, pass-through, nested, upper half");
	CHECK_EQ(viommu_dma_read(dsl, VIOMMU_NO_PASID, 0x30000000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb4);
	CHECK_EQ(viommu_dma_read(dpt, VIOMMU_NO_PASID, VG_DATA + 0x7000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb7);
	CHECK_EQ(viommu_dma_read(dnest, VIOMMU_NO_PASID, 0x50000000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb5);
	CHECK_EQ(viommu_dma_write(dnest, VIOMMU_NO_PASID, 0x50000100, w, 4, 0, &done, &f), 0);
	CHECK_EQ(g.ram[VG_DATA + 0x5100], 9);
	CHECK_EQ(viommu_dma_read(dup, VIOMMU_NO_PASID, 0x60000000, buf, 8, 0, &done, &f), 0);
	CHECK_EQ(buf[0], 0xb6);
	CHECK_EQ(r32(&g, R_FSTS), 0);
	CHECK_EQ(g.nmsi, msis);

	/* faults of the walks, with their scalable-mode reasons */
	struct {
		const char *what;
		viommu_dev *d;
		uint32_t pasid;
		uint64_t iova;
		int write;
		uint32_t attrs;
		enum viommu_fault_reason reason;
		unsigned code;
	} cases[] = {
		{ "fl write to read-only", dfl, VIOMMU_NO_PASID, 0x20001000, 1, 0, VIOMMU_FAULT_PERMISSION, 0x85 },
		{ "fl user read of supervisor page", dfl, VIOMMU_NO_PASID, 0x20002000, 0, 0, VIOMMU_FAULT_PERMISSION,
		  0x81 },
		{ "fl not present", dfl, VIOMMU_NO_PASID, 0x20003000, 0, 0, VIOMMU_FAULT_NOT_PRESENT, 0x71 },
		{ "fl not present, PASID", dfl, 5, 0x20001000, 0, 0, VIOMMU_FAULT_NOT_PRESENT, 0x71 },
		{ "fl not canonical", dfl, VIOMMU_NO_PASID, 0x0000900000000000ull, 0, 0, VIOMMU_FAULT_ADDR_WIDTH, 0x80 },
		{ "sl write to read-only", dsl, VIOMMU_NO_PASID, 0x30000000, 1, 0, VIOMMU_FAULT_PERMISSION, 0x85 },
		{ "sl not present", dsl, VIOMMU_NO_PASID, 0x30001000, 0, 0, VIOMMU_FAULT_NOT_PRESENT, 0x86 },
		{ "sl beyond the width", dsl, VIOMMU_NO_PASID, 1ull << 50, 0, 0, VIOMMU_FAULT_ADDR_WIDTH, 0x83 },
		{ "nested: first level not present", dnest, VIOMMU_NO_PASID, 0x50001000, 0, 0,
		  VIOMMU_FAULT_NOT_PRESENT, 0x71 },
		{ "nested: output not in the second level", dnest, VIOMMU_NO_PASID, 0x50002000, 0, 0,
		  VIOMMU_FAULT_NOT_PRESENT, 0x86 },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vt_case("sm translate: %s", cases[i].what);
		int r = cases[i].write ? viommu_dma_write(cases[i].d, cases[i].pasid, cases[i].iova, w, 4, cases[i].attrs,
							  &done, &f)
				       : viommu_dma_read(cases[i].d, cases[i].pasid, cases[i].iova, buf, 4,
							 cases[i].attrs, &done, &f);
		CHECK_EQ(r, -EFAULT);
		CHECK_EQ(f.reason, cases[i].reason);
		uint64_t lo, hi = sm_fault(&g, &lo);
		CHECK_EQ(FR_CODE(hi), cases[i].code);
		CHECK_EQ(lo, cases[i].iova & ~0xfffull);
		CHECK_EQ(hi & 0xffff, cases[i].d == dfl ? 0x08 : cases[i].d == dsl ? 0x10 : 0x20);
		CHECK_EQ((hi >> 62) & 1, !cases[i].write);
		CHECK_EQ(FR_PP(hi), cases[i].pasid != VIOMMU_NO_PASID);
		CHECK_EQ(FR_PV(hi), cases[i].pasid != VIOMMU_NO_PASID ? cases[i].pasid : 0);
	}
	vg_fini(&g);
}

/* Every malformed or absent scalable-mode structure: its fault reason in
 * the fault recording registers, and FPD. */
static void test_sm_faults(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
	vt_case("sm faults");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	memset(g.ram + VG_DATA, 0x5a, 4096);
	/* A good first-level table and PASID table to start from. */
	uint64_t fl = vg_page(&g);
	fl_map(&g, fl, 0x1000, VG_DATA, FL_P | FL_RW | FL_US, 0);
	uint64_t flbad = vg_page(&g);
	fl_map(&g, flbad, 0x1000, VG_DATA, FL_P | FL_RW | FL_US, 0);
	vg_wr64(&g, flbad, vg_rd64(&g, flbad) | FL_PS); /* PS in a PML4 entry: reserved */
	uint64_t sl = vg_page(&g);
	sl_map(&g, sl, 4, 0x1000, VG_DATA, SL_R | SL_W);
	uint64_t slbad = vg_page(&g);
	sl_map(&g, slbad, 4, 0x1000, VG_DATA, SL_R | SL_W);
	vg_wr64(&g, slbad, vg_rd64(&g, slbad) | (1ull << 7)); /* bit 7 of a non-leaf: reserved */
	const uint64_t outside = 0x40000000; /* beyond the 16 MiB of RAM */

	/* bus 0 lower: devfn 0-127, one case each, every one with its own
	 * PASID directory and table; bus 1 root entry not present; bus 2 root
	 * reserved bit; bus 3 context table outside RAM */
	sm_root(&g, 0, VG_CTX0, VG_CTX2);
	vg_wr64(&g, VG_ROOT + 2 * 16, VG_CTX2 | 1 | 0x10);
	vg_wr64(&g, VG_ROOT + 3 * 16, outside | 1);
	struct {
		const char *what;
		unsigned code;
		enum viommu_fault_reason reason;
		uint32_t pasid; /* of the request */
		int recorded;   /* 0: FPD suppresses the record */
	} cases[] = {
		/* 0 */ { "context not present", 0x41, VIOMMU_FAULT_CTX_NOT_PRESENT, VIOMMU_NO_PASID, 1 },
		/* 1 */ { "context reserved bit 5", 0x42, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 2 */ { "context qword 2 not 0", 0x42, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 3 */ { "context DTE without device TLBs", 0x43, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 4 */ { "request with PASID, PASIDE clear", 0x45, VIOMMU_FAULT_CTX_INVALID, 7, 1 },
		/* 5 */ { "PASID beyond the directory", 0x46, VIOMMU_FAULT_CTX_INVALID, 0x10000, 1 },
		/* 6 */ { "RID_PASID beyond the directory", 0x48, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 7 */ { "directory entry not present", 0x51, VIOMMU_FAULT_CTX_NOT_PRESENT, VIOMMU_NO_PASID, 1 },
		/* 8 */ { "directory entry reserved bit", 0x52, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 9 */ { "directory outside memory", 0x50, VIOMMU_FAULT_CTX_TABLE, VIOMMU_NO_PASID, 1 },
		/* 10 */ { "PASID entry not present", 0x59, VIOMMU_FAULT_CTX_NOT_PRESENT, VIOMMU_NO_PASID, 1 },
		/* 11 */ { "PASID entry reserved bit 10", 0x5a, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 12 */ { "PASID entry qword 5 not 0", 0x5a, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 13 */ { "PGTT 5", 0x5b, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 14 */ { "PGTT 0", 0x5b, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 15 */ { "second level AW 4", 0x5b, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 16 */ { "first level FLPM 2", 0x5b, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 17 */ { "first level ERE without ECAP.ERS", 0x5b, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 1 },
		/* 18 */ { "PASID table outside memory", 0x58, VIOMMU_FAULT_CTX_TABLE, VIOMMU_NO_PASID, 1 },
		/* 19 */ { "first-level reserved bit", 0x72, VIOMMU_FAULT_RESERVED_BIT, VIOMMU_NO_PASID, 1 },
		/* 20 */ { "second-level reserved bit", 0x7a, VIOMMU_FAULT_RESERVED_BIT, VIOMMU_NO_PASID, 1 },
		/* 21 */ { "first-level table outside memory", 0x70, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY, VIOMMU_NO_PASID, 1 },
		/* 22 */ { "FPD in the PASID entry", 0x71, VIOMMU_FAULT_NOT_PRESENT, VIOMMU_NO_PASID, 0 },
		/* 23 */ { "FPD in the directory entry", 0x59, VIOMMU_FAULT_CTX_NOT_PRESENT, VIOMMU_NO_PASID, 0 },
		/* 24 */ { "FPD in the context entry", 0x5a, VIOMMU_FAULT_CTX_INVALID, VIOMMU_NO_PASID, 0 },
		/* 25 */ { "first level, PASID entry with reserved DID bits", 0x5a, VIOMMU_FAULT_CTX_INVALID, 3, 1 },
		/* 26 */ { "PASID request, PASID entry not present", 0x59, VIOMMU_FAULT_CTX_NOT_PRESENT, 9, 1 },
	};
	unsigned n = sizeof(cases) / sizeof(cases[0]);
	uint64_t dirs[32], pts[32];
	for (unsigned i = 0; i < n; i++) {
		dirs[i] = vg_page(&g);
		pts[i] = vg_page(&g);
		if (i == 0)
			continue; /* context entry left 0 */
		uint64_t ca = sm_ctx(&g, VG_CTX0, (uint8_t)i, dirs[i], 0, 1, i == 24, 0);
		uint64_t da = sm_pde(&g, dirs[i], 0, pts[i], i == 23);
		uint64_t pa = sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, fl, i == 22);
		switch (i) {
		case 1: vg_wr64(&g, ca, vg_rd64(&g, ca) | 0x20); break;
		case 2: vg_wr64(&g, ca + 16, 1); break;
		case 3: vg_wr64(&g, ca, vg_rd64(&g, ca) | 0x4); break;
		case 4: vg_wr64(&g, ca, vg_rd64(&g, ca) & ~0x8ull); break;
		case 6: vg_wr64(&g, ca + 8, 0x10000); break;
		case 7: vg_wr64(&g, da, 0); break;
		case 8: vg_wr64(&g, da, vg_rd64(&g, da) | 0x4); break;
		case 9: vg_wr64(&g, ca, (vg_rd64(&g, ca) & 0xfff) | outside); break;
		case 10: vg_wr64(&g, pa, 0); break;
		case 11: vg_wr64(&g, pa, vg_rd64(&g, pa) | 0x400); break;
		case 12: vg_wr64(&g, pa + 40, 1); break;
		case 13: sm_pe(&g, pts[i], 0, 5, 1, sl, 2, fl, 0); break;
		case 14: sm_pe(&g, pts[i], 0, 0, 1, sl, 2, fl, 0); break;
		case 15: sm_pe(&g, pts[i], 0, PGTT_SL, 1, sl, 4, 0, 0); break;
		case 16: sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, fl | 8, 0); break;
		case 17: sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, fl | 2, 0); break;
		case 18: vg_wr64(&g, da, outside | 1); break;
		case 19: sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, flbad, 0); break;
		case 20: sm_pe(&g, pts[i], 0, PGTT_SL, 1, slbad, 2, 0, 0); break;
		case 21: sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, outside, 0); break;
		case 22: sm_pe(&g, pts[i], 0, PGTT_FL, 1, 0, 2, vg_page(&g), 1); break; /* empty table */
		case 23: vg_wr64(&g, pa, 0); break;
		case 24: vg_wr64(&g, pa, vg_rd64(&g, pa) | 0x400); break;
		case 25: sm_pe(&g, pts[i], 3, PGTT_FL, 1, 0, 2, fl, 0); vg_wr64(&g, pts[i] + 3 * 64 + 8, 1 | 0x10000); break;
		default: break;
		}
	}
	sm_boot(&g);
	uint8_t buf[8];
	size_t done;
	struct viommu_fault_record f;
	for (unsigned i = 0; i < n; i++) {
		vt_case("sm faults %u: %s", i, cases[i].what);
		viommu_dev *d = viommu_vtd_device(g.vtd, vg_rid(0, (uint8_t)(i >> 3), (uint8_t)(i & 7)));
		unsigned nf = g.nfault;
		CHECK_EQ(viommu_dma_read(d, cases[i].pasid, 0x1000, buf, 8, 0, &done, &f), -EFAULT);
		CHECK_EQ(f.reason, cases[i].reason);
		CHECK_EQ(g.nfault, nf + 1);
		uint64_t lo, hi = sm_fault(&g, &lo);
		if (!cases[i].recorded) {
			CHECK_EQ(hi, 0);
			continue;
		}
		CHECK_EQ(FR_CODE(hi), cases[i].code);
		CHECK_EQ(hi & 0xffff, i);
		CHECK_EQ(lo, 0x1000);
		CHECK_EQ(FR_PP(hi), cases[i].pasid != VIOMMU_NO_PASID);
		if (cases[i].pasid != VIOMMU_NO_PASID)
			CHECK_EQ(FR_PV(hi), cases[i].pasid);
		/* the same again: the same reason (nothing was attached) */
		CHECK_EQ(viommu_dma_read(d, cases[i].pasid, 0x1000, buf, 8, 0, &done, &f), -EFAULT);
		CHECK_EQ(FR_CODE(sm_fault(&g, NULL)), cases[i].code);
	}
	struct {
		const char *what;
		struct viommu_rid rid;
		unsigned code;
	} roots[] = {
		{ "root entry not present", vg_rid(1, 0, 0), 0x39 },
		{ "root entry upper half not present", vg_rid(1, 16, 0), 0x39 },
		{ "root entry reserved bit", vg_rid(2, 0, 0), 0x3a },
		{ "context table outside memory", vg_rid(3, 0, 0), 0x40 },
	};
	for (unsigned i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		vt_case("sm faults: %s", roots[i].what);
		viommu_dev *d = viommu_vtd_device(g.vtd, roots[i].rid);
		CHECK_EQ(viommu_dma_read(d, VIOMMU_NO_PASID, 0x1000, buf, 8, 0, &done, &f), -EFAULT);
		uint64_t hi = sm_fault(&g, NULL);
		CHECK_EQ(FR_CODE(hi), roots[i].code);
		CHECK_EQ(hi & 0xffff, (unsigned)roots[i].rid.bus << 8 | roots[i].rid.devfn);
	}
	/* the root table itself outside memory */
	vt_case("sm faults: root table outside memory");
	w64(&g, R_RTADDR, outside | SM_TTM);
	w32(&g, R_GCMD, G_QIE | G_TE | G_SRTP);
	uint64_t cc[2] = { d_cc(1, 0, 0, 0), 0 };
	CHECK(sm_qi_sync(&g, cc, 1));
	viommu_dev *d1 = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	CHECK_EQ(viommu_dma_read(d1, VIOMMU_NO_PASID, 0x1000, buf, 8, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_ROOT_TABLE);
	CHECK_EQ(FR_CODE(sm_fault(&g, NULL)), 0x38);
	vg_fini(&g);
}

struct sm_events {
	unsigned maps, unmaps;
	uint64_t last_paddr;
};

static int sm_event(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	struct sm_events *e = ctx;
	(void)d;
	if (ev->type == VIOMMU_EVENT_MAP) {
		e->maps++;
		e->last_paddr = ev->paddr;
	} else {
		e->unmaps++;
	}
	return 0;
}

/* 256-bit descriptors, and what PASID-cache, PASID-based IOTLB, context-cache
 * and IOTLB invalidations drop in scalable mode: a guest table changed, the
 * stale translation seen before, the fresh one after. */
static void test_sm_invalidation(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
	vt_case("sm invalidation");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	for (uint64_t i = 0; i < 8; i++)
		memset(g.ram + VG_DATA + i * 4096, (int)(0xc0 + i), 4096);
	viommu_dev *d1 = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	viommu_dev *d2 = viommu_vtd_device(g.vtd, vg_rid(0, 2, 0));
	sm_root(&g, 0, VG_CTX0, 0);
	/* 00:01.0: first level, DID 1, RID_PASID 0 and PASID 5 (tables fa, fb);
	 * PASID 6 through a table fc */
	uint64_t dir = vg_page(&g), pt = vg_page(&g), fa = vg_page(&g), fb = vg_page(&g), fc = vg_page(&g);
	uint64_t ca = sm_ctx(&g, VG_CTX0, 1 << 3, dir, 0, 1, 0, 0);
	sm_pde(&g, dir, 0, pt, 0);
	uint64_t pe0 = sm_pe(&g, pt, 0, PGTT_FL, 1, 0, 2, fa, 0);
	uint64_t pe5 = sm_pe(&g, pt, 5, PGTT_FL, 1, 0, 2, fb, 0);
	sm_pe(&g, pt, 1, PGTT_FL, 1, 0, 2, fc, 0);
	uint64_t la = fl_map(&g, fa, 0x10000, VG_DATA, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	uint64_t lb = fl_map(&g, fb, 0x10000, VG_DATA + 0x1000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	fl_map(&g, fb, 0x11000, VG_DATA + 0x1000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	fl_map(&g, fc, 0x10000, VG_DATA + 0x2000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	/* 00:02.0: nested, DID 2 */
	const uint64_t off = 0x40000000;
	uint64_t dir2 = vg_page(&g), pt2 = vg_page(&g), sl2 = vg_page(&g), fl2 = vg_page(&g);
	sm_ctx(&g, VG_CTX0, 2 << 3, dir2, 0, 0, 0, 0);
	sm_pde(&g, dir2, 0, pt2, 0);
	uint64_t first = g.pt_next;
	uint64_t l2 = fl_map(&g, fl2, 0x10000, VG_DATA + 0x3000 + off, FL_P | FL_RW | FL_US | FL_A | FL_D, off);
	sl_map(&g, sl2, 4, fl2 + off, fl2, SL_R | SL_W);
	for (uint64_t p = first; p < g.pt_next; p += 4096)
		sl_map(&g, sl2, 4, p + off, p, SL_R | SL_W);
	uint64_t s2leaf_iova = VG_DATA + 0x3000 + off;
	sl_map(&g, sl2, 4, s2leaf_iova, VG_DATA + 0x3000, SL_R | SL_W);
	sm_pe(&g, pt2, 0, PGTT_NESTED, 2, sl2, 2, fl2 + off, 0);
	sm_boot(&g);

	uint8_t b = 0;
	size_t done;
	struct viommu_fault_record f;
#define RD(d, pasid, iova) (viommu_dma_read((d), (pasid), (iova), &b, 1, 0, &done, &f) ? -1 : (int)b)

	vt_case("sm invalidation: PASID-based IOTLB, PASID-selective (RID_PASID)");
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc0);
	/* a map notifier on the first-level domain (as VFIO shadowing in
	 * caching mode follows it) */
	struct sm_events ev;
	memset(&ev, 0, sizeof(ev));
	viommu_domain *dom = viommu_dev_domain(d1, VIOMMU_NO_PASID);
	viommu_notifier *nt = NULL;
	CHECK(dom != NULL);
	CHECK_EQ(viommu_notifier_add(dom, sm_event, &ev, 1, &nt), 0);
	CHECK_EQ(ev.maps, 1); /* replay: the one page */
	CHECK_EQ(ev.last_paddr, VG_DATA);
	vg_wr64(&g, la, (VG_DATA + 0x4000) | FL_P | FL_RW | FL_US | FL_A | FL_D);
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc0); /* stale: cached */
	uint64_t other_did[2] = { d_piotlb(2, 7, 0), 0 };
	CHECK(sm_qi_sync(&g, other_did, 1));
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc0); /* another DID: still stale */
	CHECK_EQ(ev.unmaps, 0);
	uint64_t pi0[2] = { d_piotlb(2, 1, 0), 0 };
	CHECK(sm_qi_sync(&g, pi0, 1));
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc4); /* fresh */
	CHECK_EQ(ev.unmaps, 1);                            /* and the notifier heard it */
	CHECK_EQ(ev.maps, 2);
	CHECK_EQ(ev.last_paddr, VG_DATA + 0x4000);
	viommu_notifier_remove(nt);

	vt_case("sm invalidation: PASID-based IOTLB, page-selective (PASID 5)");
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc1);
	CHECK_EQ(RD(d1, 5, 0x11000), 0xc1);
	vg_wr64(&g, lb, (VG_DATA + 0x5000) | FL_P | FL_RW | FL_US | FL_A | FL_D);
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc1);
	uint64_t pg_other[2] = { d_piotlb(3, 1, 5), 0x11000 }; /* another page */
	CHECK(sm_qi_sync(&g, pg_other, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc1);
	uint64_t pg_pasid[2] = { d_piotlb(3, 1, 6), 0x10000 }; /* another PASID */
	CHECK(sm_qi_sync(&g, pg_pasid, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc1);
	uint64_t pg[2] = { d_piotlb(3, 1, 5), 0x10000 };
	CHECK(sm_qi_sync(&g, pg, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc5);
	/* an address mask: 2 pages from 0x10000 */
	vg_wr64(&g, lb, (VG_DATA + 0x6000) | FL_P | FL_RW | FL_US | FL_A | FL_D);
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc5);
	uint64_t pg2[2] = { d_piotlb(3, 1, 5), 0x11000 | 1 };
	CHECK(sm_qi_sync(&g, pg2, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc6);

	vt_case("sm invalidation: PASID cache");
	/* the PASID entry now points at another table */
	sm_pe(&g, pt, 5, PGTT_FL, 1, 0, 2, fc, 0);
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc6); /* stale: the PASID entry is cached */
	uint64_t pc_other[2] = { d_pc(1, 1, 4), 0 };
	CHECK(sm_qi_sync(&g, pc_other, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc6);
	uint64_t pc_dom_other[2] = { d_pc(0, 3, 0), 0 };
	CHECK(sm_qi_sync(&g, pc_dom_other, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc6);
	uint64_t pc5[2] = { d_pc(1, 1, 5), 0 };
	CHECK(sm_qi_sync(&g, pc5, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc2); /* fresh: table fc */
	/* RID_PASID untouched by it */
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc4);
	/* PASID entry cleared, domain-selective invalidation: faults */
	vg_wr64(&g, pe5, 0);
	CHECK_EQ(RD(d1, 5, 0x10000), 0xc2);
	uint64_t pcdom[2] = { d_pc(0, 1, 0), 0 };
	CHECK(sm_qi_sync(&g, pcdom, 1));
	CHECK_EQ(RD(d1, 5, 0x10000), -1);
	CHECK_EQ(f.reason, VIOMMU_FAULT_CTX_NOT_PRESENT);
	CHECK_EQ(FR_CODE(sm_fault(&g, NULL)), 0x59);

	vt_case("sm invalidation: context cache re-reads RID_PASID");
	vg_wr64(&g, ca + 8, 1); /* RID_PASID 1: table fc */
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc4);
	uint64_t ccdev[2] = { d_cc(3, 0, 1 << 3, 0), 0 };
	CHECK(sm_qi_sync(&g, ccdev, 1));
	CHECK_EQ(RD(d1, VIOMMU_NO_PASID, 0x10000), 0xc2);
	(void)pe0;

	vt_case("sm invalidation: nested, second-level change by IOTLB invalidation");
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc3);
	sl_map(&g, sl2, 4, s2leaf_iova, VG_DATA + 0x7000, SL_R | SL_W);
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc3);
	uint64_t tlb_other[2] = { d_iotlb(2, 1), 0 };
	CHECK(sm_qi_sync(&g, tlb_other, 1));
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc3);
	uint64_t tlb2[2] = { d_iotlb(2, 2), 0 };
	CHECK(sm_qi_sync(&g, tlb2, 1));
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc7);
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);

	vt_case("sm invalidation: nested, first-level change by PASID-based IOTLB invalidation");
	sl_map(&g, sl2, 4, VG_DATA + 0x6000 + off, VG_DATA + 0x6000, SL_R | SL_W);
	vg_wr64(&g, l2, (VG_DATA + 0x6000 + off) | FL_P | FL_RW | FL_US | FL_A | FL_D);
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc7);
	uint64_t pn_other[2] = { d_piotlb(3, 2, 0), 0x20000 };
	CHECK(sm_qi_sync(&g, pn_other, 1));
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc7);
	uint64_t pn[2] = { d_piotlb(3, 2, 0), 0x10000 };
	CHECK(sm_qi_sync(&g, pn, 1));
	CHECK_EQ(RD(d2, VIOMMU_NO_PASID, 0x10000), 0xc6);

	vt_case("sm invalidation: malformed 256-bit descriptors");
	struct {
		const char *what;
		uint64_t q[4];
		unsigned iqei;
	} bad[] = {
		{ "qword 2 of a wait", { D_WAIT | (1ull << 5), VG_STATUS, 1, 0 }, 4 },
		{ "qword 3 of a context-cache", { d_cc(1, 0, 0, 0), 0, 0, 1ull << 63 }, 4 },
		{ "PASID cache G 2", { d_pc(2, 1, 0), 0, 0, 0 }, 4 },
		{ "PASID cache reserved bit 52", { d_pc(1, 1, 0) | 1ull << 52, 0, 0, 0 }, 4 },
		{ "PASID cache qword 1", { d_pc(1, 1, 0), 1, 0, 0 }, 4 },
		{ "PASID IOTLB G 0", { d_piotlb(0, 1, 0), 0, 0, 0 }, 4 },
		{ "PASID IOTLB reserved bit 7 of qword 1", { d_piotlb(3, 1, 0), 0x10080, 0, 0 }, 4 },
		{ "PASID device TLB reserved bit 1 of qword 1", { D_PDEVTLB, 2, 0, 0 }, 4 },
		{ "type 10", { 0xa, 0, 0, 0 }, 3 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vt_case("sm invalidation: IQE for %s", bad[i].what);
		uint64_t head = r64(&g, R_IQH);
		sm_qi_put(&g, bad[i].q[0], bad[i].q[1], bad[i].q[2], bad[i].q[3]);
		uint32_t data = ++g.status_seq;
		uint64_t st = VG_STATUS + (g.status_seq % 64) * 4;
		vg_wr32(&g, st, 0);
		sm_qi_put(&g, D_WAIT | (1ull << 5) | (uint64_t)data << 32, st, 0, 0);
		sm_qi_kick(&g);
		CHECK(r32(&g, R_FSTS) & FS_IQE);
		CHECK_EQ(r64(&g, R_IQERCD) & 0xf, bad[i].iqei);
		CHECK_EQ(r64(&g, R_IQH), head); /* stopped at it */
		CHECK_EQ(vg_rd32(&g, st), 0);
		/* software fixes it (a harmless IEC descriptor) and clears IQE:
		 * the queue goes on */
		uint64_t a = VG_IQ + (head >> 5) * 32;
		vg_wr64(&g, a, D_IEC);
		for (unsigned k = 1; k < 4; k++)
			vg_wr64(&g, a + 8 * k, 0);
		w32(&g, R_FSTS, FS_IQE);
		CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);
		CHECK_EQ(vg_rd32(&g, st), data);
		CHECK_EQ(r64(&g, R_IQH), (uint64_t)g.iq_tail << 5);
	}
	vt_case("sm invalidation: PASID device TLB is accepted");
	uint64_t pdev[2] = { D_PDEVTLB | (uint64_t)(1 << 3) << 16, 0x1000 };
	CHECK(sm_qi_sync(&g, pdev, 1));
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);

	vt_case("sm invalidation: tail not 256-bit aligned");
	w32(&g, R_IQT, (g.iq_tail << 5) | 0x10);
	CHECK(r32(&g, R_FSTS) & FS_IQE);
	CHECK_EQ(r64(&g, R_IQERCD) & 0xf, 6);
	w32(&g, R_IQT, g.iq_tail << 5);
	w32(&g, R_FSTS, FS_IQE);
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);
	uint64_t iec[2] = { D_IEC, 0 };
	CHECK(sm_qi_sync(&g, iec, 1));
#undef RD
	vg_fini(&g);
}

/* Allocation failures on the scalable-mode paths: a device's first DMA
 * through RID_PASID and through a PASID (domains, PASID attachments) with
 * the n-th allocation failing fails cleanly, the next try works, and nothing
 * leaks. */
static void test_sm_allocfail(void)
{
	uint8_t *ram = aligned_alloc(4096, 1 << 20);
	if (!CHECK(ram))
		return;
	memset(ram, 0, 1 << 20);
	struct vg g;
	memset(&g, 0, sizeof(g));
	g.ram = ram;
	g.pt_next = 0x80000;
	/* tables for 00:01.0: first level through RID_PASID, nested through
	 * PASID 1 (its first level at the same guest-physical addresses: the
	 * second level maps the tables one to one), second level through 2 */
	uint64_t dir = vg_page(&g), pt = vg_page(&g), fl = vg_page(&g), sl = vg_page(&g);
	uint64_t first = g.pt_next;
	fl_map(&g, fl, 0x1000, 0x70000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	sl_map(&g, sl, 4, fl, fl, SL_R | SL_W);
	uint64_t last = g.pt_next;
	for (uint64_t p = first; p < last; p += 4096)
		sl_map(&g, sl, 4, p, p, SL_R | SL_W);
	sl_map(&g, sl, 4, 0x70000, 0x70000, SL_R | SL_W);
	sl_map(&g, sl, 4, 0x1000, 0x70000, SL_R | SL_W);
	ram[0x70000] = 0x3c;
	vg_wr64(&g, VG_ROOT, VG_CTX0 | 1);
	sm_ctx(&g, VG_CTX0, 1 << 3, dir, 0, 1, 0, 0);
	sm_pde(&g, dir, 0, pt, 0);
	sm_pe(&g, pt, 0, PGTT_FL, 1, 0, 2, fl, 0);
	sm_pe(&g, pt, 1, PGTT_NESTED, 2, sl, 2, fl, 0);
	sm_pe(&g, pt, 2, PGTT_SL, 3, sl, 2, 0, 0);
	struct viommu_mem_region reg = { .gpa = 0, .size = 1 << 20, .host = ram };
	unsigned ok = 0;
	for (unsigned long n = 1; n < 100 && !ok; n++) {
		vt_case("sm allocfail %lu", n);
		struct fail_alloc fa = { 0 };
		struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = fa_alloc, .free = fa_free, .ctx = &fa };
		struct viommu_config cfg = {
			.size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		};
		viommu *v = NULL;
		if (!CHECK_EQ(viommu_create(&cfg, &hooks, &v), 0))
			break;
		struct viommu_vtd_config vc = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
		viommu_vtd *t = NULL;
		if (!CHECK_EQ(viommu_vtd_create(v, &vc, &t), 0)) {
			viommu_destroy(v);
			break;
		}
		viommu_dev *d = viommu_vtd_device(t, vg_rid(0, 1, 0));
		CHECK(d != NULL);
		viommu_vtd_mmio_write(t, R_RTADDR, VG_ROOT | SM_TTM, 8);
		viommu_vtd_mmio_write(t, R_GCMD, G_SRTP, 4);
		viommu_vtd_mmio_write(t, R_GCMD, G_TE, 4);
		unsigned long fail_at = fa.calls + n;
		fa.fail_at = fail_at;
		uint8_t b = 0;
		size_t done;
		struct viommu_fault_record f;
		int fails = 0;
		uint32_t pasids[3] = { VIOMMU_NO_PASID, 1, 2 };
		for (unsigned k = 0; k < 3; k++) {
			int r = viommu_dma_read(d, pasids[k], 0x1000, &b, 1, 0, &done, &f);
			if (r) {
				CHECK_EQ(r, -EFAULT);
				CHECK_EQ(f.reason, VIOMMU_FAULT_BLOCKED);
				fails++;
			} else {
				CHECK_EQ(b, 0x3c);
			}
		}
		fa.fail_at = 0;
		/* done once the n-th allocation is beyond what the DMA needs */
		ok = fa.calls < fail_at;
		if (ok)
			CHECK_EQ(fails, 0);
		/* everything works once memory is there again */
		for (unsigned k = 0; k < 3; k++) {
			b = 0;
			CHECK_EQ(viommu_dma_read(d, pasids[k], 0x1000, &b, 1, 0, &done, &f), 0);
			CHECK_EQ(b, 0x3c);
		}
		viommu_vtd_destroy(t);
		viommu_destroy(v);
		CHECK_EQ(fa.live, 0);
	}
	CHECK(ok);
	free(ram);
}

struct sm_stress {
	viommu_dev *dev;
	uint32_t pasid;
	volatile int stop;
	unsigned long ok, bad;
};

static void *sm_stress_dma(void *arg)
{
	struct sm_stress *s = arg;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		uint8_t b[16];
		size_t done;
		struct viommu_fault_record f;
		int r = viommu_dma_read(s->dev, s->pasid, 0x1008, b, sizeof(b), 0, &done, &f);
		if (r == 0 && (b[0] == 0xd1 || b[0] == 0xd2) && b[15] == b[0]) {
			__atomic_add_fetch(&s->ok, 1, __ATOMIC_RELAXED);
		} else {
			s->bad++;
			if (s->bad < 5)
				fprintf(stderr, "sm stress: DMA gave %d (reason %d), data %#x\n", r, r ? (int)f.reason : 0,
					b[0]);
		}
	}
	return NULL;
}

/* DMA through RID_PASID and PASIDs while the guest swaps the first-level
 * tables of its PASID entries and invalidates (PASID cache, PASID-based
 * IOTLB, context cache): every DMA sees one of the two tables' data, never
 * a fault or other bytes. */
static void test_sm_concurrency(void)
{
	struct vg g;
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
	vt_case("sm concurrency");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	memset(g.ram + VG_DATA, 0xd1, 4096);
	memset(g.ram + VG_DATA + 0x1000, 0xd2, 4096);
	viommu_dev *d = viommu_vtd_device(g.vtd, vg_rid(0, 1, 0));
	uint64_t dir = vg_page(&g), pt = vg_page(&g), fa = vg_page(&g), fb = vg_page(&g);
	sm_root(&g, 0, VG_CTX0, 0);
	sm_ctx(&g, VG_CTX0, 1 << 3, dir, 0, 1, 0, 0);
	sm_pde(&g, dir, 0, pt, 0);
	fl_map(&g, fa, 0x1000, VG_DATA, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	fl_map(&g, fb, 0x1000, VG_DATA + 0x1000, FL_P | FL_RW | FL_US | FL_A | FL_D, 0);
	uint64_t pe[4];
	for (uint32_t p = 0; p < 4; p++)
		pe[p] = sm_pe(&g, pt, p, PGTT_FL, (uint16_t)(1 + p), 0, 2, fa, 0);
	sm_boot(&g);
	struct sm_stress s[4];
	pthread_t th[4];
	for (unsigned i = 0; i < 4; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].dev = d;
		s[i].pasid = i == 0 ? VIOMMU_NO_PASID : i;
		CHECK_EQ(pthread_create(&th[i], NULL, sm_stress_dma, &s[i]), 0);
	}
	unsigned rounds = 0;
	/* until every thread has done a fair amount under it (bounded) */
	for (; rounds < 2000 || ((__atomic_load_n(&s[0].ok, __ATOMIC_RELAXED) < 2000 ||
				  __atomic_load_n(&s[1].ok, __ATOMIC_RELAXED) < 2000 ||
				  __atomic_load_n(&s[2].ok, __ATOMIC_RELAXED) < 2000 ||
				  __atomic_load_n(&s[3].ok, __ATOMIC_RELAXED) < 2000) &&
				 rounds < 1000000);
	     rounds++) {
		uint32_t p = rounds % 4;
		/* one 64-bit store: the entry is never half written */
		__atomic_store_n((uint64_t *)(g.ram + pe[p] + 16), (rounds / 4) % 2 ? fb : fa, __ATOMIC_RELEASE);
		uint64_t inv[4];
		switch (rounds % 3) {
		case 0: inv[0] = d_pc(1, (uint16_t)(1 + p), p); break;
		case 1: inv[0] = d_pc(0, (uint16_t)(1 + p), 0); break;
		default: inv[0] = d_cc(1, 0, 0, 0); break;
		}
		inv[1] = 0;
		inv[2] = d_piotlb(2, (uint16_t)(1 + p), p);
		inv[3] = 0;
		if (!CHECK(sm_qi_sync(&g, inv, 2)))
			break;
	}
	for (unsigned i = 0; i < 4; i++) {
		__atomic_store_n(&s[i].stop, 1, __ATOMIC_RELEASE);
		pthread_join(th[i], NULL);
		CHECK_EQ(s[i].bad, 0);
		CHECK(s[i].ok > 0);
	}
	printf("sm concurrency: %u rounds; DMA: %lu %lu %lu %lu\n", rounds, s[0].ok, s[1].ok, s[2].ok, s[3].ok);
	CHECK_EQ(r32(&g, R_FSTS), 0);
	vg_fini(&g);
}

/* Page requests (VT-d 7.5.1): registers PQH 0xc0, PQT 0xc8, PQA 0xd0, PRS
 * 0xdc (PPR 0, PRO 1), PECTL 0xe0, PEDATA 0xe4, PEADDR 0xe8; the 256-bit
 * page request descriptor; the page group response descriptor (type 9). */
enum { R_PQH = 0xc0, R_PQT = 0xc8, R_PQA = 0xd0, R_PRS = 0xdc, R_PECTL = 0xe0, R_PEDATA = 0xe4, R_PEADDR = 0xe8 };
#define VG_PRQ 0x50000ull

struct prq_answers {
	unsigned n;
	struct viommu_rid rid[64];
	uint32_t pasid[64];
	uint16_t group[64];
	enum viommu_prq_response code[64];
};

static void prq_answer(void *ctx, struct viommu_rid rid, uint32_t pasid, uint16_t group, enum viommu_prq_response code)
{
	struct prq_answers *a = ctx;
	if (a->n < 64) {
		a->rid[a->n] = rid;
		a->pasid[a->n] = pasid;
		a->group[a->n] = group;
		a->code[a->n] = code;
	}
	a->n++;
}

static uint64_t d_pgrp(uint16_t rid, uint32_t pasid, unsigned code)
{
	return 0x9 | (pasid != VIOMMU_NO_PASID ? 1u << 4 : 0u) | (uint64_t)code << 12 | (uint64_t)rid << 16 |
	       (uint64_t)(pasid != VIOMMU_NO_PASID ? pasid : 0) << 32;
}

static void test_sm_prq(void)
{
	struct vg g;
	struct prq_answers ans;
	memset(&ans, 0, sizeof(ans));
	struct viommu_vtd_config c = vcfg(VIOMMU_VTD_F_SCALABLE, 48, 0);
	c.prq_respond = prq_answer;
	c.prq_ctx = &ans;
	vt_case("sm page requests");
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	CHECK_EQ((r64(&g, R_ECAP) >> 29) & 1, 1); /* PRS */
	viommu_prq *q = viommu_vtd_prq(g.vtd);
	CHECK(q != NULL);
	sm_boot(&g);
	/* Linux's setup: event interrupt, then an empty queue of one page */
	CHECK_EQ(r32(&g, R_PECTL), CTL_IM);
	w32(&g, R_PEDATA, 0x42);
	w32(&g, R_PEADDR, 0xfee00000u);
	w32(&g, R_PECTL, 0);
	w64(&g, R_PQH, 0);
	w64(&g, R_PQT, 0);
	w64(&g, R_PQA, VG_PRQ);
	CHECK_EQ(r64(&g, R_PQA), VG_PRQ);
	unsigned msis = g.nmsi;
	/* a register mirror (a VMM serving reads from it) follows the queue
	 * as devices fill it, not only at register accesses */
	uint64_t *mirror = aligned_alloc(4096, VIOMMU_VTD_MMIO_SIZE);
	CHECK(mirror != NULL);
	if (mirror)
		CHECK_EQ(viommu_vtd_set_mirror(g.vtd, mirror), 0);

	struct viommu_page_request req = {
		.rid = vg_rid(0, 1, 0), .pasid = 5, .addr = 0x12345678,
		.access = VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV, .group = 7, .last = 1,
	};
	CHECK_EQ(viommu_prq_submit(q, &req), 0);
	if (mirror) {
		CHECK_EQ(__atomic_load_n(&mirror[R_PQT / 8], __ATOMIC_ACQUIRE), 32);
		CHECK_EQ(__atomic_load_n(&mirror[R_PRS / 8], __ATOMIC_ACQUIRE) >> 32 & 3, 1); /* PRS at 0xdc */
	}
	CHECK_EQ(r64(&g, R_PQT), 32);
	uint64_t q0 = vg_rd64(&g, VG_PRQ), q1 = vg_rd64(&g, VG_PRQ + 8);
	CHECK_EQ(q0 & 0xff, 1);                   /* type: page request */
	CHECK_EQ((q0 >> 8) & 1, 1);               /* PASID present */
	CHECK_EQ((q0 >> 16) & 0xffff, 0x0008);    /* RID 00:01.0 */
	CHECK_EQ((q0 >> 32) & 0xfffff, 5);        /* PASID */
	CHECK_EQ((q0 >> 52) & 3, 2);              /* privileged, not execute */
	CHECK_EQ(q1 & 7, 7);                      /* read, write, last in group */
	CHECK_EQ((q1 >> 3) & 0x1ff, 7);           /* group index */
	CHECK_EQ(q1 & ~0xfffull, 0x12345000);
	CHECK_EQ(vg_rd64(&g, VG_PRQ + 16) | vg_rd64(&g, VG_PRQ + 24), 0);
	CHECK_EQ(r32(&g, R_PRS) & 3, 1);          /* PPR */
	CHECK_EQ(g.nmsi, msis + 1);
	CHECK_EQ(g.msi_data[msis], 0x42);
	CHECK_EQ(g.msi_addr[msis], 0xfee00000u);

	/* a second request (no PASID, not last) while PPR is set: queued, no
	 * new interrupt */
	struct viommu_page_request req2 = { .rid = vg_rid(0, 2, 0), .pasid = VIOMMU_NO_PASID, .addr = 0x9000,
					    .access = VIOMMU_ACCESS_READ, .group = 3, .last = 0 };
	CHECK_EQ(viommu_prq_submit(q, &req2), 0);
	CHECK_EQ(r64(&g, R_PQT), 64);
	q0 = vg_rd64(&g, VG_PRQ + 32);
	CHECK_EQ((q0 >> 8) & 1, 0);
	CHECK_EQ((q0 >> 16) & 0xffff, 0x0010);
	CHECK_EQ(vg_rd64(&g, VG_PRQ + 40) & 7, 1);
	CHECK_EQ(g.nmsi, msis + 1);

	/* the guest takes them (as Linux: PPR cleared, head = tail) and
	 * answers the first group */
	w32(&g, R_PRS, 1);
	CHECK_EQ(r32(&g, R_PRS), 0);
	w64(&g, R_PQH, 64);
	vt_case("sm page requests: response");
	uint64_t resp[2] = { d_pgrp(0x0008, 5, 0), 1ull << 2 | 7ull << 3 };
	CHECK(sm_qi_sync(&g, resp, 1));
	CHECK_EQ(ans.n, 1);
	CHECK_EQ(ans.rid[0].devfn, 1 << 3);
	CHECK_EQ(ans.pasid[0], 5);
	CHECK_EQ(ans.group[0], 7);
	CHECK_EQ(ans.code[0], VIOMMU_PRQ_SUCCESS);
	/* a response for a group whose last request never came: not passed on */
	uint64_t resp2[2] = { d_pgrp(0x0010, VIOMMU_NO_PASID, 1), 3ull << 3 };
	CHECK(sm_qi_sync(&g, resp2, 1));
	CHECK_EQ(ans.n, 1);
	/* a bad response code, a reserved bit: IQE */
	uint64_t bad[2] = { d_pgrp(0x0008, 5, 2), 7ull << 3 };
	CHECK(!sm_qi_sync(&g, bad, 1));
	CHECK(r32(&g, R_FSTS) & FS_IQE);
	CHECK_EQ(r64(&g, R_IQERCD) & 0xf, 4);
	/* fixed into an IEC descriptor, the queue goes on */
	uint64_t head = r64(&g, R_IQH);
	vg_wr64(&g, VG_IQ + (head >> 5) * 32, D_IEC);
	vg_wr64(&g, VG_IQ + (head >> 5) * 32 + 8, 0);
	w32(&g, R_FSTS, FS_IQE);
	CHECK_EQ(r32(&g, R_FSTS) & FS_IQE, 0);

	vt_case("sm page requests: overflow");
	/* one page: 128 slots, 127 usable; head at 64 */
	unsigned before = ans.n, m0 = g.nmsi;
	unsigned taken = 0;
	for (unsigned i = 0; i < 130; i++) {
		struct viommu_page_request r = { .rid = vg_rid(0, 3, 0), .pasid = 9, .addr = 0x1000ull * i,
						 .access = VIOMMU_ACCESS_READ, .group = (uint16_t)(i % 512), .last = 1 };
		CHECK_EQ(viommu_prq_submit(q, &r), 0);
		if (!(r32(&g, R_PRS) & 2))
			taken = i + 1;
	}
	CHECK_EQ(taken, 127);
	CHECK_EQ(r32(&g, R_PRS) & 3, 3);          /* PPR and PRO */
	CHECK_EQ(r64(&g, R_PQT), 32);             /* wrapped, one short of the head */
	CHECK_EQ(ans.n, before + 3);              /* the 3 that found it full: success */
	CHECK_EQ(ans.code[before], VIOMMU_PRQ_SUCCESS);
	CHECK_EQ(ans.group[before], 127);
	CHECK(g.nmsi > m0);
	/* the guest drains and clears PRO: requests go in again */
	w64(&g, R_PQH, 32);
	w32(&g, R_PRS, 3);
	CHECK_EQ(r32(&g, R_PRS), 0);
	struct viommu_page_request r3 = { .rid = vg_rid(0, 3, 0), .pasid = 9, .addr = 0x5000,
					  .access = VIOMMU_ACCESS_WRITE, .group = 200, .last = 1 };
	unsigned m1 = g.nmsi;
	CHECK_EQ(viommu_prq_submit(q, &r3), 0);
	CHECK_EQ(r64(&g, R_PQT), 64);
	CHECK_EQ(r32(&g, R_PRS) & 3, 1);
	CHECK_EQ(g.nmsi, m1 + 1);

	vt_case("sm page requests: masked event");
	w32(&g, R_PRS, 1);
	w32(&g, R_PECTL, CTL_IM);
	unsigned m2 = g.nmsi;
	r3.group = 201;
	CHECK_EQ(viommu_prq_submit(q, &r3), 0);
	CHECK_EQ(g.nmsi, m2);
	CHECK_EQ(r32(&g, R_PECTL), CTL_IM | CTL_IP);
	w32(&g, R_PECTL, 0);
	CHECK_EQ(g.nmsi, m2 + 1);
	CHECK_EQ(r32(&g, R_PECTL), 0);
	CHECK_EQ(viommu_vtd_set_mirror(g.vtd, NULL), 0);
	vg_fini(&g);
	free(mirror);

	vt_case("sm page requests: legacy unit");
	c = vcfg(0, 48, 0);
	if (!CHECK_EQ(vg_init(&g, &c), 0))
		return;
	CHECK(viommu_vtd_prq(g.vtd) == NULL);
	CHECK_EQ((r64(&g, R_ECAP) >> 29) & 1, 0);
	w64(&g, R_PQA, VG_PRQ);
	w32(&g, R_PECTL, 0);
	CHECK_EQ(r64(&g, R_PQA), 0);
	CHECK_EQ(r32(&g, R_PECTL), 0);
	vg_fini(&g);
}

int main(void)
{
	test_caps();
	test_create_errors();
	test_translate();
	test_context_faults();
	test_invalidation();
	test_ir();
	test_dmar();
	test_dmar_scoped();
	test_concurrency();
	test_allocfail();
	test_bounds();
	test_sm_caps();
	test_sm_translate();
	test_sm_faults();
	test_sm_invalidation();
	test_sm_allocfail();
	test_sm_concurrency();
	test_sm_prq();
	return vt_done("test_vtd");
}
