/* SPDX-License-Identifier: MIT */
/*
 * AMD-Vi host (v1) I/O page tables (AMD I/O Virtualization Technology (IOMMU)
 * Specification, 2.2.3 "I/O Page Tables for Host Translations").
 */
#include "pt_internal.h"

#include <errno.h>

#define AMD_PR   (1ull << 0)
#define AMD_A    (1ull << 5)
#define AMD_D    (1ull << 6) /* PTE only */
#define AMD_NL_SHIFT 9       /* NextLevel, bits 11:9 */
#define AMD_NL_MASK  (7ull << AMD_NL_SHIFT)
#define AMD_RSVD (0x7full << 52) /* bits 58:52 */
#define AMD_U    (1ull << 59)
#define AMD_FC   (1ull << 60)
#define AMD_IR   (1ull << 61)
#define AMD_IW   (1ull << 62)

/* NextLevel 7: the page size is coded in the address field. */
#define AMD_NL_SIZED 7u

static int amd_check(struct viommu_pt_config *cfg, uint64_t *supported)
{
	static const unsigned ias_of_mode[7] = { 0, 21, 30, 39, 48, 57, 64 };

	if (cfg->levels < 1 || cfg->levels > 6)
		return -EINVAL;
	if (cfg->flags & ~VIOMMU_PT_F_AD)
		return -EINVAL;
	cfg->ias = ias_of_mode[cfg->levels];
	/* Every power of two from 4 KiB: natural sizes with NextLevel 0, the
	 * others with NextLevel 7 replicated over the entries they span. */
	unsigned max_shift = cfg->ias - 1 < 39 ? cfg->ias - 1 : 39;
	*supported = 0;
	for (unsigned s = 12; s <= max_shift; s++)
		*supported |= 1ull << s;
	return 0;
}

static void amd_decode(const struct pt_geom *g, uint64_t pte, unsigned level, struct pt_entry *e)
{
	uint64_t rsvd = g->oas_rsvd | AMD_RSVD;
	unsigned nl = (unsigned)((pte & AMD_NL_MASK) >> AMD_NL_SHIFT);

	if (!(pte & AMD_PR)) {
		e->kind = PT_NONE;
		return;
	}
	e->perms = VIOMMU_PERM_USER;
	if (pte & AMD_IR)
		e->perms |= VIOMMU_PERM_READ | VIOMMU_PERM_EXEC;
	if (pte & AMD_IW)
		e->perms |= VIOMMU_PERM_WRITE;

	if (nl == 0) {
		/* A page of the level's own size; address bits below it are
		 * not used. */
		unsigned shift = pt_entry_shift(level);
		uint64_t size = shift >= 64 ? 0 : 1ull << shift;
		e->kind = PT_LEAF;
		if (!size || shift > g->oas) {
			e->fault = VIOMMU_FAULT_RESERVED_BIT;
			return;
		}
		e->size_shift = shift;
		e->addr = pte & PT_ADDR_MASK & ~(size - 1);
	} else if (nl == AMD_NL_SIZED) {
		uint64_t field = (pte & PT_ADDR_MASK) >> 12;
		unsigned ones = (unsigned)__builtin_ctzll(~field); /* field < 2^40: ~field != 0 */
		unsigned shift = 13 + ones;
		e->kind = PT_LEAF;
		/* Bigger than the level's entries, smaller than the next's. */
		if (shift <= pt_entry_shift(level) || shift >= pt_entry_shift(level + 1) ||
		    shift > g->oas) {
			e->fault = VIOMMU_FAULT_RESERVED_BIT;
			return;
		}
		e->kind = PT_LEAF;
		e->size_shift = shift;
		e->addr = pte & PT_ADDR_MASK & ~((1ull << shift) - 1);
		/* The coding bits sit below the page size; only the base is an
		 * address that the output width limits. */
		if (e->addr & g->oas_rsvd)
			e->fault = VIOMMU_FAULT_RESERVED_BIT;
		rsvd &= ~g->oas_rsvd;
	} else {
		/* NextLevel must descend; the walker checks it against the
		 * current level (a loop otherwise). */
		e->kind = PT_TABLE;
		e->next_level = nl;
		e->addr = pte & PT_ADDR_MASK;
	}
	if (pte & rsvd)
		e->fault = VIOMMU_FAULT_RESERVED_BIT;
}

static uint64_t amd_mk_table(const struct pt_geom *g, uint64_t addr, unsigned level)
{
	(void)g;
	return addr | AMD_PR | AMD_IR | AMD_IW | ((uint64_t)(level - 1) << AMD_NL_SHIFT);
}

static uint64_t amd_mk_leaf(const struct pt_geom *g, uint64_t pa, unsigned level, unsigned shift,
			    uint32_t perms)
{
	(void)g;
	uint64_t pte = pa | AMD_PR;
	if (perms & VIOMMU_PERM_READ)
		pte |= AMD_IR;
	if (perms & VIOMMU_PERM_WRITE)
		pte |= AMD_IW;
	if (shift != pt_entry_shift(level)) {
		/* Ones from bit 12 up to bit shift - 2, a zero at shift - 1. */
		pte |= ((1ull << (shift - 1)) - 1) & PT_ADDR_MASK;
		pte |= (uint64_t)AMD_NL_SIZED << AMD_NL_SHIFT;
	}
	return pte;
}

static uint64_t amd_ad_bits(const struct pt_geom *g, unsigned level, int leaf, int write)
{
	(void)g;
	(void)level;
	return AMD_A | (leaf && write ? AMD_D : 0);
}

static int amd_prot_ok(const struct pt_geom *g, uint32_t perms)
{
	(void)g;
	return !!(perms & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE));
}

const struct pt_fmt pt_fmt_amd_v1 = {
	.name = "amd-v1",
	.check = amd_check,
	.decode = amd_decode,
	.mk_table = amd_mk_table,
	.mk_leaf = amd_mk_leaf,
	.ad_bits = amd_ad_bits,
	.prot_ok = amd_prot_ok,
	.canonical = 0,
};
