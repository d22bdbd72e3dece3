/* SPDX-License-Identifier: MIT */
/*
 * Reference walker; see pt_ref.h. One loop per format, no shared cleverness,
 * so that a disagreement with the library points at one of the two.
 */
#include "pt_ref.h"

#include <errno.h>
#include <string.h>

#include <viommu/pagetable.h>

#define BIT(n) (1ull << (n))
/* bits hi..lo set */
#define BITS(hi, lo) ((~0ull >> (63 - (hi))) & ~(BIT(lo) - 1))
#define ADDR_FIELD BITS(51, 12)

static unsigned level_shift(unsigned level)
{
	return 12 + 9 * (level - 1);
}

unsigned ref_ias(int format, unsigned levels)
{
	switch (format) {
	case VIOMMU_PT_X86_64:
		return levels == 4 ? 48 : levels == 5 ? 57 : 0;
	case VIOMMU_PT_VTD_SL:
		return levels == 3 ? 39 : levels == 4 ? 48 : levels == 5 ? 57 : 0;
	case VIOMMU_PT_AMD_V1: {
		static const unsigned ias[] = { 0, 21, 30, 39, 48, 57, 64 };
		return levels >= 1 && levels <= 6 ? ias[levels] : 0;
	}
	default:
		return 0;
	}
}

uint64_t ref_format_sizes(int format, unsigned ias, unsigned oas)
{
	if (format == VIOMMU_PT_AMD_V1) {
		/* up to min(2^39, 2^(ias-1)), and no page larger than the
		 * output space */
		unsigned top = ias - 1 < 39 ? ias - 1 : 39;
		if (top > oas)
			top = oas;
		return BITS(top, 12);
	}
	return VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
}

/* Address bits at or above oas (up to bit 51) are reserved. */
static uint64_t oas_reserved(unsigned oas)
{
	return oas >= 52 ? 0 : BITS(51, oas);
}

static int fault_at(struct ref_result *r, int reason, unsigned level, uint64_t addr, uint64_t val)
{
	r->fault = reason;
	r->level = level;
	r->entry_addr = addr;
	r->entry = val;
	return -EFAULT;
}

static int read_entry(struct ref_result *r, ref_read_fn rd, void *ctx, uint64_t addr, unsigned level,
		      uint64_t *val)
{
	if (rd(ctx, addr, val))
		return fault_at(r, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY, level, addr, 0);
	r->refs++;
	if (r->n < REF_MAX_PATH) {
		r->path_addr[r->n] = addr;
		r->path_val[r->n] = *val;
		r->path_level[r->n] = level;
		r->n++;
	}
	return 0;
}

static int leaf(struct ref_result *r, uint64_t base, unsigned size_shift, uint64_t iova, uint32_t perms,
		uint32_t access, unsigned level, uint64_t addr, uint64_t val)
{
	uint64_t size = BIT(size_shift);
	uint32_t want = access & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_EXEC);

	r->level = level;
	r->entry_addr = addr;
	r->entry = val;
	r->page_size = size;
	r->perms = perms;
	r->oaddr = (base & ~(size - 1)) | (iova & (size - 1));
	if ((want & perms) != want)
		return fault_at(r, VIOMMU_FAULT_PERMISSION, level, addr, val);
	if (!(access & VIOMMU_ACCESS_PRIV) && !(perms & VIOMMU_PERM_USER))
		return fault_at(r, VIOMMU_FAULT_PERMISSION, level, addr, val);
	r->fault = VIOMMU_FAULT_NONE;
	return 0;
}

/* x86-64 paging (Intel SDM vol. 3A, 4.5) */
#define X86_P    BIT(0)
#define X86_RW   BIT(1)
#define X86_US   BIT(2)
#define X86_PS   BIT(7)
#define X86_XD   BIT(63)

static int walk_x86(const struct ref_cfg *cfg, ref_read_fn rd, void *ctx, uint64_t root, uint64_t iova,
		    uint32_t access, struct ref_result *r)
{
	uint64_t table = root;
	uint32_t perms = VIOMMU_PERM_ALL;

	for (unsigned level = cfg->levels; level >= 1; level--) {
		uint64_t addr = table + ((iova >> level_shift(level)) & 511) * 8;
		uint64_t e;
		if (read_entry(r, rd, ctx, addr, level, &e))
			return -EFAULT;
		if (!(e & X86_P))
			return fault_at(r, VIOMMU_FAULT_NOT_PRESENT, level, addr, e);
		uint64_t rsvd = oas_reserved(cfg->oas);
		if (!(cfg->flags & VIOMMU_PT_F_NXE))
			rsvd |= X86_XD;
		int is_leaf = level == 1 || ((level == 2 || level == 3) && (e & X86_PS));
		if (level >= 4)
			rsvd |= X86_PS;
		/* a large page of a size not granted is reserved, as 1 GiB
		 * pages are on a CPU without PDPE1GB */
		if (is_leaf && level >= 2 && !(cfg->pgsize_bitmap & BIT(level_shift(level))))
			rsvd |= X86_PS;
		if (is_leaf && level == 2)
			rsvd |= BITS(20, 13);
		if (is_leaf && level == 3)
			rsvd |= BITS(29, 13);
		if (e & rsvd)
			return fault_at(r, VIOMMU_FAULT_RESERVED_BIT, level, addr, e);
		if (!(e & X86_RW))
			perms &= ~VIOMMU_PERM_WRITE;
		if (!(e & X86_US))
			perms &= ~VIOMMU_PERM_USER;
		if ((cfg->flags & VIOMMU_PT_F_NXE) && (e & X86_XD))
			perms &= ~VIOMMU_PERM_EXEC;
		if (is_leaf)
			return leaf(r, e & ADDR_FIELD, level_shift(level), iova, perms, access, level, addr, e);
		table = e & ADDR_FIELD;
	}
	return fault_at(r, VIOMMU_FAULT_WALK_LOOP, 0, 0, 0); /* not reached */
}

/* VT-d second-level (VT-d spec 9.8) */
#define SL_R   BIT(0)
#define SL_W   BIT(1)
#define SL_X   BIT(2)
#define SL_PS  BIT(7)
#define SL_TM  BIT(62)

static int walk_vtd(const struct ref_cfg *cfg, ref_read_fn rd, void *ctx, uint64_t root, uint64_t iova,
		    uint32_t access, struct ref_result *r)
{
	uint64_t table = root;
	int r_ok = 1, w_ok = 1, x_ok = 1;

	for (unsigned level = cfg->levels; level >= 1; level--) {
		uint64_t addr = table + ((iova >> level_shift(level)) & 511) * 8;
		uint64_t e;
		if (read_entry(r, rd, ctx, addr, level, &e))
			return -EFAULT;
		if (!(e & (SL_R | SL_W)))
			return fault_at(r, VIOMMU_FAULT_NOT_PRESENT, level, addr, e);
		uint64_t rsvd = oas_reserved(cfg->oas) | SL_TM;
		int is_leaf = level == 1;
		if (e & SL_PS) {
			if (level >= 4)
				rsvd |= SL_PS;
			else if (level >= 2 && !(cfg->pgsize_bitmap & BIT(level_shift(level))))
				rsvd |= SL_PS;
			else if (level >= 2)
				is_leaf = 1;
		}
		if (is_leaf && level >= 2)
			rsvd |= BITS(level_shift(level) - 1, 12);
		if (e & rsvd)
			return fault_at(r, VIOMMU_FAULT_RESERVED_BIT, level, addr, e);
		r_ok &= !!(e & SL_R);
		w_ok &= !!(e & SL_W);
		x_ok &= !!(e & SL_X);
		if (is_leaf) {
			uint32_t perms = VIOMMU_PERM_USER;
			if (r_ok)
				perms |= VIOMMU_PERM_READ;
			if (w_ok)
				perms |= VIOMMU_PERM_WRITE;
			if ((cfg->flags & VIOMMU_PT_F_VTD_EXEC) ? x_ok : r_ok)
				perms |= VIOMMU_PERM_EXEC;
			return leaf(r, e & ADDR_FIELD, level_shift(level), iova, perms, access, level, addr, e);
		}
		table = e & ADDR_FIELD;
	}
	return fault_at(r, VIOMMU_FAULT_WALK_LOOP, 0, 0, 0); /* not reached */
}

/* AMD-Vi v1 (AMD IOMMU spec 2.2.3) */
#define AMD_PR   BIT(0)
#define AMD_NL_SHIFT 9
#define AMD_RSVD BITS(58, 52)
#define AMD_IR   BIT(61)
#define AMD_IW   BIT(62)

static int walk_amd(const struct ref_cfg *cfg, ref_read_fn rd, void *ctx, uint64_t root, uint64_t iova,
		    uint32_t access, struct ref_result *r)
{
	uint64_t table = root;
	int r_ok = 1, w_ok = 1;
	unsigned level = cfg->levels;

	for (;;) {
		uint64_t addr = table + ((iova >> level_shift(level)) & 511) * 8;
		uint64_t e;
		if (read_entry(r, rd, ctx, addr, level, &e))
			return -EFAULT;
		if (!(e & AMD_PR))
			return fault_at(r, VIOMMU_FAULT_NOT_PRESENT, level, addr, e);
		if (e & (AMD_RSVD | oas_reserved(cfg->oas)))
			return fault_at(r, VIOMMU_FAULT_RESERVED_BIT, level, addr, e);
		unsigned nl = (e >> AMD_NL_SHIFT) & 7;
		r_ok &= !!(e & AMD_IR);
		w_ok &= !!(e & AMD_IW);
		uint32_t perms = VIOMMU_PERM_USER;
		if (r_ok)
			perms |= VIOMMU_PERM_READ | VIOMMU_PERM_EXEC;
		if (w_ok)
			perms |= VIOMMU_PERM_WRITE;
		/*
		 * A page larger than the output space is reserved (the AMD-Vi
		 * rules we follow are silent; the library decided so). The
		 * address bits below the size of a natural-size page are not
		 * used.
		 */
		if (nl == 0) {
			unsigned s = level_shift(level);
			if (s > cfg->oas)
				return fault_at(r, VIOMMU_FAULT_RESERVED_BIT, level, addr, e);
			return leaf(r, e & ADDR_FIELD, s, iova, perms, access, level, addr, e);
		}
		if (nl == 7) {
			unsigned ones = 0;
			while (12 + ones <= 51 && (e & BIT(12 + ones)))
				ones++;
			unsigned s = 13 + ones;
			if (!(s > level_shift(level) && s < level_shift(level) + 9) || s > cfg->oas)
				return fault_at(r, VIOMMU_FAULT_RESERVED_BIT, level, addr, e);
			return leaf(r, e & ADDR_FIELD, s, iova, perms, access, level, addr, e);
		}
		if (nl >= level)
			return fault_at(r, VIOMMU_FAULT_WALK_LOOP, level, addr, e);
		/* levels nl+1 .. level-1 are skipped: their index bits must be 0 */
		if (nl + 1 < level) {
			uint64_t skipped = BITS(level_shift(level) - 1, level_shift(nl + 1));
			if (iova & skipped)
				return fault_at(r, VIOMMU_FAULT_ADDR_WIDTH, level, addr, e);
		}
		table = e & ADDR_FIELD;
		level = nl;
	}
}

int ref_walk(const struct ref_cfg *cfg, ref_read_fn rd, void *ctx, uint64_t root, uint64_t iova,
	     uint32_t access, struct ref_result *r)
{
	memset(r, 0, sizeof(*r));
	if (cfg->format == VIOMMU_PT_X86_64) {
		/* canonical: bits 63..ias-1 all equal */
		int64_t s = (int64_t)(iova << (64 - cfg->ias)) >> (64 - cfg->ias);
		if ((uint64_t)s != iova)
			return fault_at(r, VIOMMU_FAULT_ADDR_WIDTH, 0, 0, 0);
	} else if (cfg->ias < 64 && (iova >> cfg->ias)) {
		return fault_at(r, VIOMMU_FAULT_ADDR_WIDTH, 0, 0, 0);
	}
	if (root & 0xfff)
		return fault_at(r, VIOMMU_FAULT_ROOT_MISALIGNED, 0, 0, 0);
	switch (cfg->format) {
	case VIOMMU_PT_X86_64:
		return walk_x86(cfg, rd, ctx, root, iova, access, r);
	case VIOMMU_PT_VTD_SL:
		return walk_vtd(cfg, rd, ctx, root, iova, access, r);
	default:
		return walk_amd(cfg, rd, ctx, root, iova, access, r);
	}
}
