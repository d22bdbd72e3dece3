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
 * widths, the DMAR table, create errors and allocation failures.
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

int main(void)
{
	test_caps();
	test_create_errors();
	test_translate();
	test_context_faults();
	test_invalidation();
	test_ir();
	test_dmar();
	test_concurrency();
	test_allocfail();
	test_bounds();
	return vt_done("test_vtd");
}
