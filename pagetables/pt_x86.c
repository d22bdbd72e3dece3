/* SPDX-License-Identifier: MIT */
/*
 * x86-64 paging, 4 and 5 levels (Intel SDM vol. 3A, 4.5 "4-level paging and
 * 5-level paging"; the same format is VT-d first-level, VT-d spec 3.6, and the
 * AMD-Vi guest (v2) table).
 */
#include "pt_internal.h"

#include <errno.h>

/* Entry bits, SDM tables 4-15 to 4-20. */
#define X86_P   (1ull << 0)
#define X86_RW  (1ull << 1)
#define X86_US  (1ull << 2)
#define X86_A   (1ull << 5)
#define X86_D   (1ull << 6)
#define X86_PS  (1ull << 7) /* levels 2 and 3; reserved above; PAT at level 1 */
#define X86_XD  (1ull << 63)
/* In a 2 MiB / 1 GiB leaf, bit 12 is PAT; the bits from 13 up to the page
 * size are reserved. */
#define X86_LARGE_PAT (1ull << 12)

static int x86_check(struct viommu_pt_config *cfg, uint64_t *supported)
{
	if (cfg->levels != 4 && cfg->levels != 5)
		return -EINVAL;
	if (cfg->flags & ~(VIOMMU_PT_F_AD | VIOMMU_PT_F_NXE))
		return -EINVAL;
	cfg->ias = cfg->levels == 4 ? 48 : 57;
	*supported = VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
	return 0;
}

static void x86_decode(const struct pt_geom *g, uint64_t pte, unsigned level, struct pt_entry *e)
{
	uint64_t rsvd = g->oas_rsvd;
	int nxe = !!(g->flags & VIOMMU_PT_F_NXE);

	if (!(pte & X86_P)) {
		e->kind = PT_NONE;
		return;
	}
	if (!nxe)
		rsvd |= X86_XD;
	e->perms = VIOMMU_PERM_READ;
	if (pte & X86_RW)
		e->perms |= VIOMMU_PERM_WRITE;
	if (pte & X86_US)
		e->perms |= VIOMMU_PERM_USER;
	if (!(nxe && (pte & X86_XD)))
		e->perms |= VIOMMU_PERM_EXEC;

	if (level == 1) {
		e->kind = PT_LEAF;
		e->size_shift = 12;
		e->addr = pte & PT_ADDR_MASK;
	} else if ((pte & X86_PS) && level <= 3) {
		unsigned shift = pt_entry_shift(level);
		uint64_t size = 1ull << shift;
		/* A 1 GiB page where 1 GiB pages are not granted (no
		 * PDPE1GB) is a reserved bit, as on such a CPU. */
		if (!(g->pgsizes & size))
			rsvd |= X86_PS;
		rsvd |= (size - 1) & PT_ADDR_MASK & ~X86_LARGE_PAT;
		e->kind = PT_LEAF;
		e->size_shift = shift;
		e->addr = pte & PT_ADDR_MASK & ~(size - 1);
	} else {
		rsvd |= level >= 4 ? X86_PS : 0;
		e->kind = PT_TABLE;
		e->next_level = level - 1;
		e->addr = pte & PT_ADDR_MASK;
	}
	if (pte & rsvd)
		e->fault = VIOMMU_FAULT_RESERVED_BIT;
}

static uint64_t x86_mk_table(const struct pt_geom *g, uint64_t addr, unsigned level)
{
	(void)g;
	(void)level;
	/* Permissions are decided at the leaf; tables grant everything. */
	return addr | X86_P | X86_RW | X86_US;
}

static uint64_t x86_mk_leaf(const struct pt_geom *g, uint64_t pa, unsigned level, unsigned shift,
			    uint32_t perms)
{
	(void)shift;
	uint64_t pte = pa | X86_P;
	if (perms & VIOMMU_PERM_WRITE)
		pte |= X86_RW;
	if (perms & VIOMMU_PERM_USER)
		pte |= X86_US;
	if ((g->flags & VIOMMU_PT_F_NXE) && !(perms & VIOMMU_PERM_EXEC))
		pte |= X86_XD;
	if (level > 1)
		pte |= X86_PS;
	return pte;
}

static uint64_t x86_ad_bits(const struct pt_geom *g, unsigned level, int leaf, int write)
{
	(void)g;
	(void)level;
	return X86_A | (leaf && write ? X86_D : 0);
}

static int x86_prot_ok(const struct pt_geom *g, uint32_t perms)
{
	(void)g;
	/* Every present x86 page is readable: write-only cannot be expressed. */
	return !!(perms & VIOMMU_PERM_READ);
}

const struct pt_fmt pt_fmt_x86_64 = {
	.name = "x86-64",
	.check = x86_check,
	.decode = x86_decode,
	.mk_table = x86_mk_table,
	.mk_leaf = x86_mk_leaf,
	.ad_bits = x86_ad_bits,
	.prot_ok = x86_prot_ok,
	.canonical = 1,
};
