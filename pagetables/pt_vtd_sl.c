/* SPDX-License-Identifier: MIT */
/*
 * Intel VT-d second-level tables, 3/4/5 levels (VT-d spec 3.7 "Second-Stage
 * Translation" and 9.8 "Second-Stage Paging Entries").
 */
#include "pt_internal.h"

#include <errno.h>

#define SL_R   (1ull << 0)
#define SL_W   (1ull << 1)
#define SL_X   (1ull << 2)  /* execute, with ECAP.SLEE */
#define SL_PS  (1ull << 7)  /* levels 2 and 3; reserved at 4 and 5 */
#define SL_A   (1ull << 8)  /* scalable mode with SLADE */
#define SL_D   (1ull << 9)  /* leaf only */
#define SL_TM  (1ull << 62) /* transient mapping: not offered (ECAP.DT = 0) */

static int sl_check(struct viommu_pt_config *cfg, uint64_t *supported)
{
	if (cfg->levels < 3 || cfg->levels > 5)
		return -EINVAL;
	if (cfg->flags & ~(VIOMMU_PT_F_AD | VIOMMU_PT_F_VTD_EXEC))
		return -EINVAL;
	cfg->ias = 12 + 9 * cfg->levels; /* 39, 48, 57: AGAW */
	*supported = VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
	return 0;
}

static void sl_decode(const struct pt_geom *g, uint64_t pte, unsigned level, struct pt_entry *e)
{
	uint64_t rsvd = g->oas_rsvd | SL_TM;

	/* No present bit: R = W = 0 is not present (9.8). */
	if (!(pte & (SL_R | SL_W))) {
		e->kind = PT_NONE;
		return;
	}
	e->perms = VIOMMU_PERM_USER;
	if (pte & SL_R)
		e->perms |= VIOMMU_PERM_READ;
	if (pte & SL_W)
		e->perms |= VIOMMU_PERM_WRITE;
	if (g->flags & VIOMMU_PT_F_VTD_EXEC ? (pte & SL_X) : (pte & SL_R))
		e->perms |= VIOMMU_PERM_EXEC;

	if (level == 1) {
		e->kind = PT_LEAF;
		e->size_shift = 12;
		e->addr = pte & PT_ADDR_MASK;
	} else if ((pte & SL_PS) && level <= 3) {
		unsigned shift = pt_entry_shift(level);
		uint64_t size = 1ull << shift;
		/* A super page of a size CAP.SLLPS does not offer. */
		if (!(g->pgsizes & size))
			rsvd |= SL_PS;
		rsvd |= (size - 1) & PT_ADDR_MASK;
		e->kind = PT_LEAF;
		e->size_shift = shift;
		e->addr = pte & PT_ADDR_MASK & ~(size - 1);
	} else {
		rsvd |= level >= 4 ? SL_PS : 0;
		e->kind = PT_TABLE;
		e->next_level = level - 1;
		e->addr = pte & PT_ADDR_MASK;
	}
	if (pte & rsvd)
		e->fault = VIOMMU_FAULT_RESERVED_BIT;
}

static uint64_t sl_mk_table(const struct pt_geom *g, uint64_t addr, unsigned level)
{
	(void)level;
	uint64_t pte = addr | SL_R | SL_W;
	if (g->flags & VIOMMU_PT_F_VTD_EXEC)
		pte |= SL_X;
	return pte;
}

static uint64_t sl_mk_leaf(const struct pt_geom *g, uint64_t pa, unsigned level, unsigned shift,
			   uint32_t perms)
{
	(void)shift;
	uint64_t pte = pa;
	if (perms & VIOMMU_PERM_READ)
		pte |= SL_R;
	if (perms & VIOMMU_PERM_WRITE)
		pte |= SL_W;
	if ((g->flags & VIOMMU_PT_F_VTD_EXEC) && (perms & VIOMMU_PERM_EXEC))
		pte |= SL_X;
	if (level > 1)
		pte |= SL_PS;
	return pte;
}

static uint64_t sl_ad_bits(const struct pt_geom *g, unsigned level, int leaf, int write)
{
	(void)g;
	(void)level;
	return SL_A | (leaf && write ? SL_D : 0);
}

static int sl_prot_ok(const struct pt_geom *g, uint32_t perms)
{
	(void)g;
	return !!(perms & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE));
}

const struct pt_fmt pt_fmt_vtd_sl = {
	.name = "vtd-sl",
	.check = sl_check,
	.decode = sl_decode,
	.mk_table = sl_mk_table,
	.mk_leaf = sl_mk_leaf,
	.ad_bits = sl_ad_bits,
	.prot_ok = sl_prot_ok,
	.canonical = 0,
};
