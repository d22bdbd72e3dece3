/* SPDX-License-Identifier: MIT */
/*
 * A guest for the VT-d front-end tests: RAM at guest address 0, an instance
 * over it whose MSI and fault callbacks record what they get, a VT-d unit,
 * register access helpers, and the structures a driver builds (root and
 * context entries, second-level tables, invalidation descriptors, IRTEs),
 * written here from the VT-d specification independently of the library's
 * own definitions, so the test checks the layout rather than repeat it.
 */
#ifndef VIOMMU_VTD_GUEST_H
#define VIOMMU_VTD_GUEST_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/iommu.h>
#include <viommu/vtd.h>

/* Register offsets (VT-d 11.4), and where CAP.FRO / ECAP.IRO put the rest
 * in this implementation (read back and checked by the test). */
enum {
	R_VER = 0x00, R_CAP = 0x08, R_ECAP = 0x10, R_GCMD = 0x18, R_GSTS = 0x1c, R_RTADDR = 0x20,
	R_CCMD = 0x28, R_FSTS = 0x34, R_FECTL = 0x38, R_FEDATA = 0x3c, R_FEADDR = 0x40, R_FEUADDR = 0x44,
	R_AFLOG = 0x58, R_PMEN = 0x64, R_PLMBASE = 0x68, R_PLMLIMIT = 0x6c, R_PHMBASE = 0x70,
	R_PHMLIMIT = 0x78, R_IQH = 0x80, R_IQT = 0x88, R_IQA = 0x90, R_ICS = 0x9c, R_IECTL = 0xa0,
	R_IEDATA = 0xa4, R_IEADDR = 0xa8, R_IEUADDR = 0xac, R_IQERCD = 0xb0, R_IRTA = 0xb8,
};

/* GCMD / GSTS bits (11.4.4, 11.4.5) */
#define G_TE    (1u << 31)
#define G_SRTP  (1u << 30)
#define G_SFL   (1u << 29)
#define G_EAFL  (1u << 28)
#define G_WBF   (1u << 27)
#define G_QIE   (1u << 26)
#define G_IRE   (1u << 25)
#define G_SIRTP (1u << 24)
#define G_CFI   (1u << 23)

/* FSTS */
#define FS_PFO (1u << 0)
#define FS_PPF (1u << 1)
#define FS_IQE (1u << 4)
#define FS_FRI(x) (((x) >> 8) & 0xff)
/* FECTL / IECTL */
#define CTL_IM (1u << 31)
#define CTL_IP (1u << 30)

/* Guest RAM layout of the tests */
#define VG_RAM_SIZE   (16u << 20)
#define VG_ROOT       0x010000ull /* root table */
#define VG_CTX0       0x011000ull /* context table of bus 0 */
#define VG_CTX2       0x012000ull /* context table of bus 2 */
#define VG_IQ         0x020000ull /* invalidation queue, 256 descriptors */
#define VG_STATUS     0x030000ull /* wait descriptor status words */
#define VG_IRT        0x040000ull /* interrupt remapping table */
#define VG_PT_FIRST   0x100000ull /* second-level tables from here */
#define VG_PT_END     0x400000ull
#define VG_DATA       0x800000ull /* data pages */

#define MSI_MAX 256

struct vg {
	uint8_t *ram;
	viommu *v;
	viommu_vtd *vtd;
	uint64_t pt_next;
	uint32_t iq_tail;  /* next free descriptor slot */
	uint32_t status_seq;
	/* MSIs the instance delivered */
	unsigned nmsi;
	uint64_t msi_addr[MSI_MAX];
	uint32_t msi_data[MSI_MAX];
	struct viommu_rid msi_rid[MSI_MAX];
	/* faults the core reported */
	unsigned nfault;
	int threaded;
	struct viommu_fault_record last_fault;
};

static int vg_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	struct vg *g = ctx;
	if (g->nmsi < MSI_MAX) {
		g->msi_addr[g->nmsi] = addr;
		g->msi_data[g->nmsi] = data;
		g->msi_rid[g->nmsi] = rid;
	}
	g->nmsi++;
	return 0;
}

static void vg_fault(void *ctx, const struct viommu_fault_record *rec)
{
	struct vg *g = ctx;
	/* DMA threads may fault at once: the count is atomic, and the last
	 * record is kept only by single-threaded tests */
	if (__atomic_add_fetch(&g->nfault, 1, __ATOMIC_RELAXED) && !g->threaded)
		g->last_fault = *rec;
}

static inline uint64_t vg_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void vg_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t vg_rd64(struct vg *g, uint64_t gpa) { return vg_le(g->ram + gpa, 8); }
static inline void vg_wr64(struct vg *g, uint64_t gpa, uint64_t v) { vg_put(g->ram + gpa, v, 8); }
static inline uint32_t vg_rd32(struct vg *g, uint64_t gpa) { return (uint32_t)vg_le(g->ram + gpa, 4); }
static inline void vg_wr32(struct vg *g, uint64_t gpa, uint32_t v) { vg_put(g->ram + gpa, v, 4); }

/* Instance and unit. Returns 0 or a negative errno. */
static inline int vg_init(struct vg *g, const struct viommu_vtd_config *vc)
{
	memset(g, 0, sizeof(*g));
	g->ram = aligned_alloc(4096, VG_RAM_SIZE);
	if (!g->ram)
		return -ENOMEM;
	memset(g->ram, 0, VG_RAM_SIZE);
	struct viommu_mem_region reg = { .gpa = 0, .size = VG_RAM_SIZE, .host = g->ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.msi = vg_msi, .msi_ctx = g,
		.fault = vg_fault, .fault_ctx = g,
	};
	int r = viommu_create(&cfg, NULL, &g->v);
	if (r)
		return r;
	if (vc) {
		r = viommu_vtd_create(g->v, vc, &g->vtd);
		if (r)
			return r;
	}
	g->pt_next = VG_PT_FIRST;
	return 0;
}

static inline void vg_fini(struct vg *g)
{
	viommu_vtd_destroy(g->vtd);
	viommu_destroy(g->v);
	free(g->ram);
	memset(g, 0, sizeof(*g));
}

static inline uint32_t r32(struct vg *g, uint64_t off) { return (uint32_t)viommu_vtd_mmio_read(g->vtd, off, 4); }
static inline uint64_t r64(struct vg *g, uint64_t off) { return viommu_vtd_mmio_read(g->vtd, off, 8); }
static inline void w32(struct vg *g, uint64_t off, uint32_t v) { viommu_vtd_mmio_write(g->vtd, off, v, 4); }
static inline void w64(struct vg *g, uint64_t off, uint64_t v) { viommu_vtd_mmio_write(g->vtd, off, v, 8); }

static inline struct viommu_rid vg_rid(uint8_t bus, uint8_t dev, uint8_t fn)
{
	struct viommu_rid r = { .segment = 0, .bus = bus, .devfn = (uint8_t)(dev << 3 | fn) };
	return r;
}

/* ------------------------------------------------------------------------ */
/* Second-level tables (VT-d 9.8): R 0, W 1, PS 7, address 51:12.           */

#define SL_R (1ull << 0)
#define SL_W (1ull << 1)
#define SL_PS (1ull << 7)

static inline uint64_t vg_page(struct vg *g)
{
	uint64_t p = g->pt_next;
	g->pt_next += 4096;
	memset(g->ram + p, 0, 4096);
	return p;
}

/* Map one 4 KiB page in a levels-deep table at root. */
static inline void sl_map(struct vg *g, uint64_t root, unsigned levels, uint64_t iova, uint64_t gpa, uint64_t perm)
{
	uint64_t table = root;
	for (unsigned l = levels; l > 1; l--) {
		uint64_t ea = table + ((iova >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t e = vg_rd64(g, ea);
		if (!(e & (SL_R | SL_W))) {
			e = vg_page(g) | SL_R | SL_W;
			vg_wr64(g, ea, e);
		}
		table = e & 0x000ffffffffff000ull;
	}
	vg_wr64(g, table + ((iova >> 12) & 511) * 8, gpa | perm);
}

/* ------------------------------------------------------------------------ */
/* Root and context entries (9.1, 9.3)                                      */

static inline void vg_root(struct vg *g, uint8_t bus, uint64_t ctx_table)
{
	vg_wr64(g, VG_ROOT + bus * 16ull, ctx_table | 1);
	vg_wr64(g, VG_ROOT + bus * 16ull + 8, 0);
}

/* tt: 0 second level, 2 pass-through; aw: 1/2/3 = 3/4/5 levels */
static inline void vg_ctx(struct vg *g, uint64_t ctx_table, uint8_t devfn, unsigned tt, uint64_t slpt, unsigned aw,
			  uint16_t did, int fpd)
{
	uint64_t lo = 1 | (fpd ? 2 : 0) | (uint64_t)tt << 2 | slpt;
	uint64_t hi = aw | (uint64_t)did << 8;
	vg_wr64(g, ctx_table + devfn * 16ull, lo);
	vg_wr64(g, ctx_table + devfn * 16ull + 8, hi);
}

/* ------------------------------------------------------------------------ */
/* Invalidation descriptors (6.5.2)                                         */

#define D_CC     0x1ull
#define D_IOTLB  0x2ull
#define D_DEVTLB 0x3ull
#define D_IEC    0x4ull
#define D_WAIT   0x5ull
#define D_PIOTLB 0x6ull
#define D_PC     0x7ull

static inline uint64_t d_cc(unsigned g, uint16_t did, uint16_t sid, unsigned fm)
{
	return D_CC | (uint64_t)g << 4 | (uint64_t)did << 16 | (uint64_t)sid << 32 | (uint64_t)fm << 48;
}

static inline uint64_t d_iotlb(unsigned g, uint16_t did)
{
	return D_IOTLB | (uint64_t)g << 4 | (uint64_t)did << 16;
}

/* Write one descriptor at the software tail (not yet made visible). */
static inline void qi_put(struct vg *g, uint64_t lo, uint64_t hi)
{
	uint64_t a = VG_IQ + (uint64_t)g->iq_tail * 16;
	vg_wr64(g, a, lo);
	vg_wr64(g, a + 8, hi);
	g->iq_tail = (g->iq_tail + 1) % 256;
}

/* Ring the doorbell as Linux does: a 32-bit write of IQT. */
static inline void qi_kick(struct vg *g)
{
	w32(g, R_IQT, g->iq_tail << 4);
}

/* Submit descriptors followed by a wait with status write, as Linux's
 * qi_submit_sync. Returns 1 when the status word was written. */
static inline int qi_sync(struct vg *g, const uint64_t *descs, unsigned n)
{
	uint32_t data = ++g->status_seq;
	uint64_t st = VG_STATUS + (g->status_seq % 64) * 4;
	vg_wr32(g, st, 0);
	for (unsigned i = 0; i < n; i++)
		qi_put(g, descs[2 * i], descs[2 * i + 1]);
	qi_put(g, D_WAIT | (1ull << 5) | (uint64_t)data << 32, st);
	qi_kick(g);
	return vg_rd32(g, st) == data;
}

/* ------------------------------------------------------------------------ */
/* IRTE (9.10): P 0, FPD 1, DM 2, RH 3, TM 4, DLM 7:5, vector 23:16,
 * destination 63:32; high: SID 15:0, SQ 17:16, SVT 19:18. */
static inline void vg_irte(struct vg *g, uint32_t index, uint8_t vector, uint32_t dest_x2apic, int present)
{
	uint64_t lo = (present ? 1u : 0u) | (uint64_t)vector << 16 | (uint64_t)dest_x2apic << 32;
	vg_wr64(g, VG_IRT + index * 16ull, lo);
	vg_wr64(g, VG_IRT + index * 16ull + 8, 0);
}

/* A remappable-format MSI naming `index` (5.1.5.2). */
static inline uint64_t msi_remap_addr(uint32_t index)
{
	return 0xfee00000ull | 1u << 4 | (uint64_t)(index & 0x7fff) << 5 | (uint64_t)((index >> 15) & 1) << 2;
}

#endif /* VIOMMU_VTD_GUEST_H */
