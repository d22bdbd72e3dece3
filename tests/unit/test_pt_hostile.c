/* SPDX-License-Identifier: MIT */
/*
 * Walks of hand-built guest tables (viommu_pt_walk over a viommu_mem), entries
 * written byte by byte from the specifications, for every format:
 *  - a valid path of every leaf size translates (positive control);
 *  - each reserved-bit class, per format, per level -> RESERVED_BIT and
 *    nothing else, with res->level / entry_addr / entry naming the entry;
 *    bits the formats ignore do not fault; non-present entries with reserved
 *    bits are just not present;
 *  - permission bits on every level;
 *  - a table pointing at itself (x86, VT-d: a legal recursive mapping; AMD-Vi:
 *    a walk loop), AMD-Vi skipped levels, AMD-Vi next-level 7 page sizes;
 *  - tables outside guest memory, failing read callbacks, misaligned roots,
 *    accessed/dirty updates into read-only memory, x86 canonical addresses
 *    and XD with and without NXE.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#include "check.h"
#include "pt_helpers.h"

#define G_BASE  0x40000000ull /* 1 GiB: guest RAM for the tables */
#define G_PAGES 64u
#define G_END   (G_BASE + G_PAGES * 4096ull)
#define CB_BASE 0x900000000ull /* the same RAM seen through callbacks only */
#define OUTSIDE 0x70000000ull  /* nothing here */
#define PA      0x000000abc0000000ull /* leaf output, 1 GiB aligned, below 2^40 */

static uint8_t *g_host;   /* G_PAGES + 1 pages */
static viommu_mem *g_mem; /* region [G_BASE, G_END) */

struct fmtcase {
	enum viommu_pt_format fmt;
	uint32_t levels;
};

static const struct fmtcase cases[] = {
	{ VIOMMU_PT_X86_64, 4 }, { VIOMMU_PT_X86_64, 5 },
	{ VIOMMU_PT_VTD_SL, 3 }, { VIOMMU_PT_VTD_SL, 4 }, { VIOMMU_PT_VTD_SL, 5 },
	{ VIOMMU_PT_AMD_V1, 1 }, { VIOMMU_PT_AMD_V1, 2 }, { VIOMMU_PT_AMD_V1, 3 },
	{ VIOMMU_PT_AMD_V1, 4 }, { VIOMMU_PT_AMD_V1, 5 }, { VIOMMU_PT_AMD_V1, 6 },
};

#define ACC_R  (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV)
#define ACC_W  (VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV)
#define ACC_X  (VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV)

/* ---------------------------------------------------------------------------- */

static uint64_t tbl(unsigned i)
{
	return G_BASE + 4096ull * i;
}

static void wipe(void)
{
	memset(g_host, 0, (G_PAGES + 1) * 4096ull);
}

/* Guest addresses G_BASE.. and CB_BASE.. are both backed by g_host. */
static uint8_t *host_of(uint64_t gpa)
{
	if (gpa >= CB_BASE)
		return g_host + (gpa - CB_BASE);
	return g_host + (gpa - G_BASE);
}

static void put(uint64_t gpa, uint64_t v)
{
	memcpy(host_of(gpa), &v, sizeof(v)); /* little-endian host, as the entries */
}

static uint64_t get(uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, host_of(gpa), sizeof(v));
	return v;
}

static struct viommu_pt_config mkcfg(const struct fmtcase *fc, uint32_t oas, uint32_t flags, uint64_t pgsizes)
{
	struct viommu_pt_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fc->fmt;
	c.levels = fc->levels;
	c.oas = oas;
	c.flags = flags;
	c.pgsize_bitmap = pgsizes;
	return c;
}

static uint64_t lo_limit(const struct fmtcase *fc)
{
	uint32_t ias = fmt_ias(fc->fmt, fc->levels);

	if (fc->fmt == VIOMMU_PT_X86_64 || ias == 64)
		return 1ull << (ias - 1);
	return 1ull << ias;
}

/* An entry at `level` pointing at the table at `addr` (one level down),
 * granting everything. */
static uint64_t mk_ptr(enum viommu_pt_format f, uint32_t level, uint64_t addr)
{
	switch (f) {
	case VIOMMU_PT_X86_64:
		return addr | X86_P | X86_RW | X86_US;
	case VIOMMU_PT_VTD_SL:
		return addr | VTD_R | VTD_W | VTD_X;
	default:
		return addr | AMD_PR | AMD_IR | AMD_IW | AMD_NL(level - 1);
	}
}

/* A leaf at `level` of the level's natural size, granting everything. */
static uint64_t mk_leaf(enum viommu_pt_format f, uint32_t level, uint64_t pa)
{
	switch (f) {
	case VIOMMU_PT_X86_64:
		return pa | X86_P | X86_RW | X86_US | (level > 1 ? X86_PS : 0);
	case VIOMMU_PT_VTD_SL:
		return pa | VTD_R | VTD_W | VTD_X | (level > 1 ? VTD_PS : 0);
	default:
		return pa | AMD_PR | AMD_IR | AMD_IW;
	}
}

/* Build a path for `iova` from the root at `base` (tables at base, base +
 * 4 KiB, ...) down to a leaf at `leaf_lvl` mapping `pa`. addrs[L] is the
 * address of the entry at level L. Returns the root. */
static uint64_t build(const struct fmtcase *fc, uint64_t base, uint64_t iova, uint32_t leaf_lvl, uint64_t pa,
		      uint64_t addrs[8])
{
	uint64_t table = base;
	uint32_t level;

	for (level = fc->levels; level > leaf_lvl; level--) {
		addrs[level] = table + 8ull * level_index(iova, level);
		put(addrs[level], mk_ptr(fc->fmt, level, table + 4096));
		table += 4096;
	}
	addrs[leaf_lvl] = table + 8ull * level_index(iova, leaf_lvl);
	put(addrs[leaf_lvl], mk_leaf(fc->fmt, leaf_lvl, pa & ~(level_span(leaf_lvl) - 1)));
	return base;
}

static int walk(const struct viommu_pt_config *c, viommu_mem *m, uint64_t root, uint64_t iova, uint32_t acc,
		struct viommu_pt_result *r)
{
	int rc;

	memset(r, 0xcc, sizeof(*r));
	rc = viommu_pt_walk(c, m, root, iova, acc, r);
	CHECK(rc == 0 || rc == -EFAULT);
	CHECK_EQ(rc == 0, r->fault == VIOMMU_FAULT_NONE);
	return rc;
}

/* The walk translates iova to its place in a leaf at leaf_lvl of `pa`. */
static int expect_ok(const struct fmtcase *fc, const struct viommu_pt_config *c, viommu_mem *m, uint64_t root,
		     uint64_t iova, uint32_t acc, uint32_t leaf_lvl, uint64_t pa)
{
	struct viommu_pt_result r;
	uint64_t span = level_span(leaf_lvl);

	if (!CHECK_EQ(walk(c, m, root, iova, acc, &r), 0)) {
		CHECK_EQ(r.fault, VIOMMU_FAULT_NONE);
		return 0;
	}
	CHECK_EQ(r.oaddr, (pa & ~(span - 1)) + (iova & (span - 1)));
	CHECK_EQ(r.page_size, span);
	CHECK_EQ(r.level, leaf_lvl);
	CHECK_EQ(r.refs, fc->levels - leaf_lvl + 1);
	return 1;
}

/* The walk faults with `reason` at the entry at `addr` (level `level`), having
 * read every entry from the root down to it. */
static void expect_fault_at(const struct fmtcase *fc, const struct viommu_pt_config *c, viommu_mem *m,
			    uint64_t root, uint64_t iova, uint32_t acc, enum viommu_fault_reason reason,
			    uint32_t level, uint64_t addr)
{
	struct viommu_pt_result r;

	CHECK_EQ(walk(c, m, root, iova, acc, &r), -EFAULT);
	CHECK_EQ(r.fault, reason);
	CHECK_EQ(r.level, level);
	CHECK_EQ(r.entry_addr, addr);
	if (addr >= G_BASE && addr + 8 <= G_END)
		CHECK_EQ(r.entry, get(addr));
	CHECK_EQ(r.refs, fc->levels - level + 1);
	CHECK_EQ(r.writes, 0);
}

/* An iova inside the lower input space with a different index at each level. */
static uint64_t pick_iova(const struct fmtcase *fc)
{
	return 0x0000123456789abcull & (lo_limit(fc) - 1);
}

/* Leaf levels to try for a format. */
static int leaf_ok(const struct fmtcase *fc, uint32_t leaf_lvl)
{
	if (leaf_lvl > 3)
		return 0;
	switch (fc->fmt) {
	case VIOMMU_PT_X86_64:
		return leaf_lvl < fc->levels;
	case VIOMMU_PT_VTD_SL:
		return leaf_lvl <= fc->levels;
	default:
		/* a next-level-0 entry at the root is a page only at level 1 */
		return leaf_lvl < fc->levels || (fc->levels == 1 && leaf_lvl == 1);
	}
}

/* ---------------------------------------------------------------------------- */
/* Reserved bits                                                                */

static void one_reserved(const struct fmtcase *fc, const struct viommu_pt_config *c, uint64_t root,
			 uint64_t iova, uint64_t addr, uint32_t level, uint64_t set, uint64_t clear)
{
	uint64_t orig = get(addr);

	put(addr, (orig & ~clear) | set);
	expect_fault_at(fc, c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_RESERVED_BIT, level, addr);
	put(addr, orig);
}

static void one_ignored(const struct fmtcase *fc, const struct viommu_pt_config *c, uint64_t root, uint64_t iova,
			uint64_t addr, uint64_t set, uint32_t leaf_lvl)
{
	uint64_t orig = get(addr);

	put(addr, orig | set);
	expect_ok(fc, c, g_mem, root, iova, ACC_R, leaf_lvl, PA);
	put(addr, orig);
}

static uint64_t not_present(enum viommu_pt_format f, uint64_t e)
{
	if (f == VIOMMU_PT_X86_64)
		return e & ~X86_P;
	if (f == VIOMMU_PT_VTD_SL)
		return e & ~(VTD_R | VTD_W); /* X alone does not make it present */
	return e & ~AMD_PR;
}

static void test_reserved(const struct fmtcase *fc)
{
	uint32_t leaf_lvl, level, b;
	uint64_t addrs[8], iova = pick_iova(fc), root;

	for (leaf_lvl = 1; leaf_lvl <= 3; leaf_lvl++) {
		struct viommu_pt_config c52 = mkcfg(fc, 0, 0, 0), c40 = mkcfg(fc, 40, 0, 0);

		if (!leaf_ok(fc, leaf_lvl))
			continue;
		wipe();
		root = build(fc, G_BASE, iova, leaf_lvl, PA, addrs);
		check_context("%s levels=%u leaf=%u: positive", fmt_name(fc->fmt), fc->levels, leaf_lvl);
		expect_ok(fc, &c52, g_mem, root, iova, ACC_R, leaf_lvl, PA);
		expect_ok(fc, &c40, g_mem, root, iova, ACC_R, leaf_lvl, PA);

		for (level = fc->levels; level >= leaf_lvl; level--) {
			uint64_t a = addrs[level];
			int is_leaf = level == leaf_lvl;

			check_context("%s levels=%u leaf=%u entry level=%u", fmt_name(fc->fmt), fc->levels,
				      leaf_lvl, level);
			/* address bits at or above oas (40), up to bit 51 */
			for (b = 40; b <= 51; b++)
				one_reserved(fc, &c40, root, iova, a, level, 1ull << b, 0);
			/* and with oas 52 the same bits are address bits: no fault
			 * at the leaf (output just moves), a table elsewhere */
			if (is_leaf) {
				struct viommu_pt_result r;
				uint64_t orig = get(a);

				put(a, orig | (1ull << 45));
				if (CHECK_EQ(walk(&c52, g_mem, root, iova, ACC_R, &r), 0))
					CHECK_EQ(r.oaddr, (PA | (1ull << 45)) + (iova & (level_span(level) - 1)));
				put(a, orig);
			}
			/* a non-present entry's other bits do not matter */
			{
				uint64_t orig = get(a), v = not_present(fc->fmt, orig) | (1ull << 51);

				if (fc->fmt == VIOMMU_PT_X86_64)
					v |= X86_XD | X86_PS;
				else if (fc->fmt == VIOMMU_PT_VTD_SL)
					v |= VTD_TM | VTD_PS;
				else
					v |= 1ull << 52 | AMD_NL(7);
				put(a, v);
				expect_fault_at(fc, &c40, g_mem, root, iova, ACC_R, VIOMMU_FAULT_NOT_PRESENT, level, a);
				put(a, orig);
			}

			switch (fc->fmt) {
			case VIOMMU_PT_X86_64:
				/* XD without NXE */
				one_reserved(fc, &c52, root, iova, a, level, X86_XD, 0);
				/* PS at levels 4 and 5 */
				if (level >= 4)
					one_reserved(fc, &c52, root, iova, a, level, X86_PS, 0);
				/* large-page leaves: bits 20:13 (2 MiB), 29:13 (1 GiB) */
				if (is_leaf && level >= 2)
					for (b = 13; b < 12 + 9 * (level - 1); b++)
						one_reserved(fc, &c52, root, iova, a, level, 1ull << b, 0);
				/* ignored: bits 62:52 anywhere; PAT (bit 7 at level 1,
				 * bit 12 in a large leaf) */
				for (b = 52; b <= 62; b++)
					one_ignored(fc, &c52, root, iova, a, 1ull << b, leaf_lvl);
				if (is_leaf && level == 1)
					one_ignored(fc, &c52, root, iova, a, 1ull << 7, leaf_lvl);
				if (is_leaf && level >= 2)
					one_ignored(fc, &c52, root, iova, a, 1ull << 12, leaf_lvl);
				break;
			case VIOMMU_PT_VTD_SL:
				one_reserved(fc, &c52, root, iova, a, level, VTD_TM, 0);
				if (level >= 4)
					one_reserved(fc, &c52, root, iova, a, level, VTD_PS, 0);
				/* super-page leaves: bits 20:12 (2 MiB), 29:12 (1 GiB) */
				if (is_leaf && level >= 2) {
					for (b = 12; b < 12 + 9 * (level - 1); b++)
						one_reserved(fc, &c52, root, iova, a, level, 1ull << b, 0);
					/* PS of a size not granted */
					{
						struct viommu_pt_config c4k = mkcfg(fc, 0, 0, VIOMMU_PGSIZE_4K);
						struct viommu_pt_config cother =
							mkcfg(fc, 0, 0,
							      VIOMMU_PGSIZE_4K | (level == 2 ? VIOMMU_PGSIZE_1G
											       : VIOMMU_PGSIZE_2M));
						struct viommu_pt_config cthis =
							mkcfg(fc, 0, 0, VIOMMU_PGSIZE_4K | level_span(level));

						expect_fault_at(fc, &c4k, g_mem, root, iova, ACC_R,
								VIOMMU_FAULT_RESERVED_BIT, level, a);
						expect_fault_at(fc, &cother, g_mem, root, iova, ACC_R,
								VIOMMU_FAULT_RESERVED_BIT, level, a);
						expect_ok(fc, &cthis, g_mem, root, iova, ACC_R, leaf_lvl, PA);
					}
				}
				break;
			case VIOMMU_PT_AMD_V1:
				for (b = 52; b <= 58; b++)
					one_reserved(fc, &c52, root, iova, a, level, 1ull << b, 0);
				/* U and FC are not reserved */
				one_ignored(fc, &c52, root, iova, a, AMD_U, leaf_lvl);
				one_ignored(fc, &c52, root, iova, a, AMD_FC, leaf_lvl);
				break;
			}
			/* the table is back as it was */
			expect_ok(fc, &c40, g_mem, root, iova, ACC_R, leaf_lvl, PA);
		}
	}
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* Permissions on every level                                                   */

struct perm_case {
	uint64_t clear, set;
	uint32_t flags;
	uint32_t denied[4]; /* accesses that must fault PERMISSION (0-terminated) */
	uint32_t allowed[4];
};

static void test_perms(const struct fmtcase *fc)
{
	static const struct perm_case x86[] = {
		{ X86_RW, 0, 0, { ACC_W }, { ACC_R, ACC_X, VIOMMU_ACCESS_READ } },
		{ X86_US, 0, 0, { VIOMMU_ACCESS_READ, VIOMMU_ACCESS_WRITE }, { ACC_R, ACC_W, ACC_X } },
		{ 0, X86_XD, VIOMMU_PT_F_NXE, { ACC_X, VIOMMU_ACCESS_EXEC }, { ACC_R, ACC_W, VIOMMU_ACCESS_READ } },
	};
	static const struct perm_case vtd[] = {
		{ VTD_W, 0, 0, { ACC_W }, { ACC_R, ACC_X, VIOMMU_ACCESS_READ } },
		{ VTD_R, 0, 0, { ACC_R, ACC_X }, { ACC_W, VIOMMU_ACCESS_WRITE } },
		{ VTD_X, 0, VIOMMU_PT_F_VTD_EXEC, { ACC_X }, { ACC_R, ACC_W } },
		{ VTD_X, 0, 0, { 0 }, { ACC_X, ACC_R } },      /* X ignored without the flag */
	};
	static const struct perm_case amd[] = {
		{ AMD_IW, 0, 0, { ACC_W }, { ACC_R, ACC_X, VIOMMU_ACCESS_READ } },
		{ AMD_IR, 0, 0, { ACC_R, ACC_X }, { ACC_W, VIOMMU_ACCESS_WRITE } },
	};
	const struct perm_case *pc;
	size_t npc, i, j;
	uint32_t leaf_lvl, level;
	uint64_t addrs[8], iova = pick_iova(fc), root;

	if (fc->fmt == VIOMMU_PT_X86_64) {
		pc = x86;
		npc = sizeof(x86) / sizeof(x86[0]);
	} else if (fc->fmt == VIOMMU_PT_VTD_SL) {
		pc = vtd;
		npc = sizeof(vtd) / sizeof(vtd[0]);
	} else {
		pc = amd;
		npc = sizeof(amd) / sizeof(amd[0]);
	}
	for (leaf_lvl = 1; leaf_lvl <= 3; leaf_lvl++) {
		if (!leaf_ok(fc, leaf_lvl))
			continue;
		wipe();
		root = build(fc, G_BASE, iova, leaf_lvl, PA, addrs);
		for (level = fc->levels; level >= leaf_lvl; level--) {
			uint64_t a = addrs[level], orig = get(a);

			for (i = 0; i < npc; i++) {
				struct viommu_pt_config c = mkcfg(fc, 0, pc[i].flags, 0);

				check_context("%s levels=%u leaf=%u entry level=%u perm case %zu", fmt_name(fc->fmt),
					      fc->levels, leaf_lvl, level, i);
				put(a, (orig & ~pc[i].clear) | pc[i].set);
				for (j = 0; j < 4 && pc[i].denied[j]; j++) {
					struct viommu_pt_result r;

					CHECK_EQ(walk(&c, g_mem, root, iova, pc[i].denied[j], &r), -EFAULT);
					CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
					CHECK_EQ(r.refs, fc->levels - leaf_lvl + 1);
				}
				for (j = 0; j < 4 && pc[i].allowed[j]; j++)
					expect_ok(fc, &c, g_mem, root, iova, pc[i].allowed[j], leaf_lvl, PA);
				put(a, orig);
			}
			/* not present at this level */
			{
				struct viommu_pt_config c = mkcfg(fc, 0, 0, 0);

				put(a, not_present(fc->fmt, orig));
				expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_NOT_PRESENT, level, a);
				put(a, 0);
				expect_fault_at(fc, &c, g_mem, root, iova, ACC_W, VIOMMU_FAULT_NOT_PRESENT, level, a);
				put(a, orig);
			}
		}
		/* the permissions a full-grant path reports */
		{
			struct viommu_pt_config c = mkcfg(fc, 0, 0, 0);
			struct viommu_pt_result r;

			check_context("%s levels=%u leaf=%u perms", fmt_name(fc->fmt), fc->levels, leaf_lvl);
			if (CHECK_EQ(walk(&c, g_mem, root, iova, VIOMMU_ACCESS_READ, &r), 0))
				CHECK_EQ(r.perms, VIOMMU_PERM_ALL);
		}
	}
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* A table that points at itself                                                */

static void test_self_pointer(const struct fmtcase *fc)
{
	const unsigned i = 5;
	uint64_t root = tbl(0), iova = 0x123, slot = root + 8 * i;
	struct viommu_pt_config c = mkcfg(fc, 0, 0, 0);
	struct viommu_pt_result r;
	uint32_t level;

	check_context("%s levels=%u self-pointer", fmt_name(fc->fmt), fc->levels);
	for (level = 1; level <= fc->levels; level++)
		if (12 + 9 * (level - 1) < 64)
			iova |= (uint64_t)i << (12 + 9 * (level - 1));
	iova &= lo_limit(fc) - 1;
	wipe();

	if (fc->fmt != VIOMMU_PT_AMD_V1) {
		/* Recursive mapping: each level reads the same entry, level 1
		 * takes it as a 4 KiB page: the root table itself. */
		uint64_t full = fc->fmt == VIOMMU_PT_X86_64 ? (X86_P | X86_RW | X86_US) : (VTD_R | VTD_W | VTD_X);
		uint64_t no_w = fc->fmt == VIOMMU_PT_X86_64 ? X86_RW : VTD_W;

		put(slot, root | full);
		if (CHECK_EQ(walk(&c, g_mem, root, iova, ACC_W, &r), 0)) {
			CHECK_EQ(r.oaddr, root + 0x123);
			CHECK_EQ(r.page_size, 4096);
			CHECK_EQ(r.level, 1);
			CHECK_EQ(r.refs, fc->levels);
			CHECK_EQ(r.entry_addr, slot);
		}
		put(slot, (root | full) & ~no_w);
		CHECK_EQ(walk(&c, g_mem, root, iova, ACC_W, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
		CHECK_EQ(r.refs, fc->levels);
		if (CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), 0)) {
			CHECK_EQ(r.oaddr, root + 0x123);
			CHECK_EQ(r.refs, fc->levels);
		}
		if (fc->fmt == VIOMMU_PT_X86_64) {
			put(slot, root | X86_P | X86_RW);
			CHECK_EQ(walk(&c, g_mem, root, iova, VIOMMU_ACCESS_READ, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
			CHECK_EQ(r.refs, fc->levels);
		}
		put(slot, root & ~0ull); /* no permission bits: not present */
		expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_NOT_PRESENT, fc->levels, slot);
		/* With A/D the walk terminates too and marks the entry. */
		{
			struct viommu_pt_config cad = mkcfg(fc, 0, VIOMMU_PT_F_AD, 0);

			put(slot, root | full);
			if (CHECK_EQ(walk(&cad, g_mem, root, iova, ACC_W, &r), 0)) {
				CHECK_EQ(r.refs, fc->levels);
				CHECK_EQ(r.oaddr, root + 0x123);
			}
			CHECK(get(slot) & fmt_a_bit(fc->fmt));
			CHECK(get(slot) & fmt_d_bit(fc->fmt));
		}
	} else {
		uint64_t base = root | AMD_PR | AMD_IR | AMD_IW;

		/* next-level equal to, or above, the current level */
		put(slot, base | AMD_NL(fc->levels));
		expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_WALK_LOOP, fc->levels, slot);
		if (fc->levels < 6) {
			put(slot, base | AMD_NL(fc->levels + 1));
			expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_WALK_LOOP, fc->levels, slot);
		}
		if (fc->levels < 6) {
			put(slot, base | AMD_NL(6));
			expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_WALK_LOOP, fc->levels, slot);
		}
		/* pointing down at itself: the next level reads the same entry,
		 * whose next-level is now not below the level it is read at */
		if (fc->levels >= 2) {
			put(slot, base | AMD_NL(fc->levels - 1));
			expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_WALK_LOOP, fc->levels - 1,
					slot);
		}
	}
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* AMD-Vi: skipped levels and next-level 7 pages                                */

static void test_amd_skip(void)
{
	static const struct fmtcase m4 = { VIOMMU_PT_AMD_V1, 4 }, m6 = { VIOMMU_PT_AMD_V1, 6 };
	struct viommu_pt_config c4 = mkcfg(&m4, 0, 0, 0), c6 = mkcfg(&m6, 0, 0, 0);
	uint64_t root = tbl(0), iova, e4;
	struct viommu_pt_result r;

	/* mode 4: L4 -> (skip L3) L2 -> L1 -> 4 KiB page */
	check_context("amd skip L4->L2");
	wipe();
	iova = (3ull << 39) | (7ull << 21) | (9ull << 12) | 0x456;
	e4 = root + 8 * 3;
	put(e4, tbl(1) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(2));
	put(tbl(1) + 8 * 7, tbl(2) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(1));
	put(tbl(2) + 8 * 9, PA | AMD_PR | AMD_IR | AMD_IW);
	if (CHECK_EQ(walk(&c4, g_mem, root, iova, ACC_R, &r), 0)) {
		CHECK_EQ(r.oaddr, PA + 0x456);
		CHECK_EQ(r.refs, 3);
		CHECK_EQ(r.level, 1);
		CHECK_EQ(r.page_size, 4096);
	}
	/* non-zero bits of the skipped level 3 (38:30) */
	expect_fault_at(&m4, &c4, g_mem, root, iova | (1ull << 30), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 4, e4);
	expect_fault_at(&m4, &c4, g_mem, root, iova | (1ull << 38), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 4, e4);
	/* bits of the levels walked are fine */
	CHECK_EQ(walk(&c4, g_mem, root, iova | (1ull << 29), ACC_R, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_NOT_PRESENT);

	/* mode 4: L4 -> (skip L3, L2) L1 */
	check_context("amd skip L4->L1");
	wipe();
	iova = (2ull << 39) | (11ull << 12) | 0x10;
	e4 = root + 8 * 2;
	put(e4, tbl(1) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(1));
	put(tbl(1) + 8 * 11, PA | AMD_PR | AMD_IR | AMD_IW);
	if (CHECK_EQ(walk(&c4, g_mem, root, iova, ACC_R, &r), 0)) {
		CHECK_EQ(r.oaddr, PA + 0x10);
		CHECK_EQ(r.refs, 2);
	}
	expect_fault_at(&m4, &c4, g_mem, root, iova | (1ull << 21), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 4, e4);
	expect_fault_at(&m4, &c4, g_mem, root, iova | (1ull << 35), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 4, e4);

	/* mode 4: L4 -> L3 -> (skip L2) L1 */
	check_context("amd skip L3->L1");
	wipe();
	iova = (1ull << 39) | (5ull << 30) | (13ull << 12) | 0x20;
	put(root + 8 * 1, tbl(1) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(3));
	put(tbl(1) + 8 * 5, tbl(2) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(1));
	put(tbl(2) + 8 * 13, PA | AMD_PR | AMD_IR | AMD_IW);
	if (CHECK_EQ(walk(&c4, g_mem, root, iova, ACC_R, &r), 0)) {
		CHECK_EQ(r.oaddr, PA + 0x20);
		CHECK_EQ(r.refs, 3);
	}
	expect_fault_at(&m4, &c4, g_mem, root, iova | (1ull << 25), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 3,
			tbl(1) + 8 * 5);

	/* mode 6: L6 -> (skip L5, L4) L3 -> 1 GiB page */
	check_context("amd skip L6->L3");
	wipe();
	iova = (0x55ull << 57) | (6ull << 30) | 0x12345678;
	e4 = root + 8 * 0x55;
	put(e4, tbl(1) | AMD_PR | AMD_IR | AMD_IW | AMD_NL(3));
	put(tbl(1) + 8 * 6, PA | AMD_PR | AMD_IR | AMD_IW);
	if (CHECK_EQ(walk(&c6, g_mem, root, iova, ACC_R, &r), 0)) {
		CHECK_EQ(r.oaddr, PA + 0x12345678);
		CHECK_EQ(r.refs, 2);
		CHECK_EQ(r.level, 3);
		CHECK_EQ(r.page_size, GiB(1));
	}
	expect_fault_at(&m6, &c6, g_mem, root, iova | (1ull << 39), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 6, e4);
	expect_fault_at(&m6, &c6, g_mem, root, iova | (1ull << 56), ACC_R, VIOMMU_FAULT_ADDR_WIDTH, 6, e4);
	check_context("%s", "");
}

/* Next-level 7 at level L, size 2^(13 + n): a page replicated over the
 * entries it spans. */
static uint64_t nl7(uint64_t base, unsigned n)
{
	uint64_t ones = n >= 40 ? PT_ADDR_MASK : (((1ull << n) - 1) << 12);

	return (base & ~(((1ull << n) - 1) << 12)) | ones | AMD_PR | AMD_IR | AMD_IW | AMD_NL(7);
}

static void test_amd_nl7(void)
{
	static const struct fmtcase m4 = { VIOMMU_PT_AMD_V1, 4 };
	struct viommu_pt_config c = mkcfg(&m4, 0, 0, 0);
	/* indices 4 / 3 / 2 and a level-1 position with the low bits of a big
	 * page set everywhere */
	const uint64_t iova = (1ull << 39) | (0x95ull << 30) | (0x1a3ull << 21) | (0x156ull << 12) | 0x789;
	uint64_t root = tbl(0);
	uint32_t level;
	unsigned n;

	for (level = 1; level <= 4; level++) {
		unsigned lo = 9 * (level - 1), hi = 9 * level - 2; /* valid n: E_L < 2^(13+n) < E_{L+1} */
		uint64_t table = tbl(4 - level), addrs[8];
		uint64_t base = level == 4 ? (1ull << 47) : (1ull << 39);

		for (n = 0; n <= 40; n++) {
			uint64_t size, e, first, count, k, slot;
			int valid = n >= lo && n <= hi;

			if (!valid && n != lo - 1 && n != hi + 1 && n != 0 && n != 40)
				continue;
			if (level == 1 && n == lo - 1)
				continue;
			check_context("amd nl7 level=%u n=%u", level, n);
			wipe();
			build(&m4, G_BASE, iova, level, 0, addrs);
			CHECK_EQ(addrs[level], table + 8ull * level_index(iova, level));
			e = nl7(base, n);
			size = n >= 40 ? 0 : 1ull << (13 + n);
			slot = addrs[level];
			if (valid) {
				count = size / level_span(level);
				first = level_index(iova, level) & ~(count - 1);
				for (k = 0; k < count; k++)
					put(table + 8 * (first + k), e);
			} else {
				put(slot, e);
			}
			if (valid) {
				struct viommu_pt_result r;

				if (CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), 0)) {
					CHECK_EQ(r.oaddr, base + (iova & (size - 1)));
					CHECK_EQ(r.page_size, size);
					CHECK_EQ(r.level, level);
					CHECK_EQ(r.refs, 4 - level + 1);
					CHECK_EQ(r.entry_addr, slot);
				}
				/* only the entry the walk lands on matters */
				if (count > 1) {
					for (k = 0; k < count; k++)
						if (table + 8 * (first + k) != slot)
							put(table + 8 * (first + k), 0);
					if (CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), 0))
						CHECK_EQ(r.oaddr, base + (iova & (size - 1)));
				}
			} else {
				expect_fault_at(&m4, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_RESERVED_BIT, level,
						slot);
			}
		}
	}
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* Tables outside memory, callbacks, misaligned roots                           */

struct cbctx {
	uint64_t fail_lo, fail_hi; /* reads in [lo, hi) fail */
	int err;
	int allow_write;
	unsigned reads, writes;
};

static int cb_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct cbctx *cc = ctx;

	cc->reads++;
	if (gpa >= cc->fail_lo && gpa < cc->fail_hi)
		return cc->err;
	if (gpa < CB_BASE || gpa + len > CB_BASE + G_PAGES * 4096ull)
		return -EFAULT;
	memcpy(buf, host_of(gpa), len);
	return 0;
}

static int cb_write(void *ctx, uint64_t gpa, const void *buf, size_t len)
{
	struct cbctx *cc = ctx;

	cc->writes++;
	if (!cc->allow_write || gpa < CB_BASE || gpa + len > CB_BASE + G_PAGES * 4096ull)
		return -EFAULT;
	memcpy(host_of(gpa), buf, len);
	return 0;
}

static viommu_mem *mem_with(uint64_t gpa, uint64_t size, uint32_t flags, struct cbctx *cc, int with_write)
{
	struct viommu_mem_region reg;
	struct viommu_mem_config mc;
	viommu_mem *m = NULL;

	memset(&reg, 0, sizeof(reg));
	reg.gpa = gpa;
	reg.size = size;
	reg.host = g_host;
	reg.flags = flags;
	memset(&mc, 0, sizeof(mc));
	mc.size = sizeof(mc);
	mc.regions = size ? &reg : NULL;
	mc.nr_regions = size ? 1 : 0;
	if (cc) {
		mc.read = cb_read;
		mc.write = with_write ? cb_write : NULL;
		mc.ctx = cc;
	}
	CHECK_EQ(viommu_mem_create(&mc, NULL, &m), 0);
	return m;
}

static void test_outside(const struct fmtcase *fc)
{
	struct viommu_pt_config c = mkcfg(fc, 0, 0, 0);
	uint64_t iova = pick_iova(fc), addrs[8], root;
	struct viommu_pt_result r;
	uint32_t top = fc->levels;
	struct cbctx cc;
	viommu_mem *m;

	check_context("%s levels=%u outside", fmt_name(fc->fmt), fc->levels);
	/* root outside */
	CHECK_EQ(walk(&c, g_mem, OUTSIDE, iova, ACC_R, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	CHECK_EQ(r.entry_addr, OUTSIDE + 8ull * level_index(iova, top));
	CHECK_EQ(r.refs, 0);
	CHECK_EQ(walk(&c, g_mem, G_END, iova, ACC_R, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
	CHECK_EQ(walk(&c, g_mem, G_BASE - 4096, iova, ACC_R, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);

	if (top >= 2) {
		const uint32_t leaf_lvl = 1;
		uint64_t a;

		wipe();
		root = build(fc, G_BASE, iova, leaf_lvl, PA, addrs);
		expect_ok(fc, &c, g_mem, root, iova, ACC_R, leaf_lvl, PA);
		/* an intermediate table outside */
		a = addrs[top];
		put(a, mk_ptr(fc->fmt, top, OUTSIDE));
		CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.entry_addr, OUTSIDE + 8ull * level_index(iova, top - 1));
		CHECK_EQ(r.refs, 1);
		/* the table just past the end of the region */
		put(a, mk_ptr(fc->fmt, top, G_END));
		CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.entry_addr, G_END + 8ull * level_index(iova, top - 1));
		/* the lowest table outside */
		put(a, mk_ptr(fc->fmt, top, tbl(1)));
		expect_ok(fc, &c, g_mem, root, iova, ACC_R, leaf_lvl, PA);
		a = addrs[2];
		put(a, mk_ptr(fc->fmt, 2, OUTSIDE + 0x3000));
		CHECK_EQ(walk(&c, g_mem, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.refs, top - 1);
		put(a, mk_ptr(fc->fmt, 2, tbl(top - 1)));
		expect_ok(fc, &c, g_mem, root, iova, ACC_R, leaf_lvl, PA);
	}

	/* an entry straddling the end of a region: the region ends 4 bytes
	 * into the table after the last page */
	m = mem_with(G_BASE, G_PAGES * 4096ull + 4, 0, NULL, 0);
	if (m) {
		uint64_t iova0 = iova & ~(511ull << (12 + 9 * (top - 1))); /* index 0 at the root */

		if (top == 6)
			iova0 = iova & ~(127ull << 57);
		wipe();
		CHECK_EQ(walk(&c, m, G_END, iova0, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.entry_addr, G_END);
		viommu_mem_destroy(m);
	}

	/* tables served by read callbacks only */
	memset(&cc, 0, sizeof(cc));
	m = mem_with(0, 0, 0, &cc, 1);
	if (m) {
		wipe();
		root = build(fc, CB_BASE, iova, 1, PA, addrs);
		expect_ok(fc, &c, m, root, iova, ACC_R, 1, PA);
		CHECK(cc.reads >= fc->levels);
		/* the callback fails for the leaf table */
		cc.fail_lo = addrs[1] & ~4095ull;
		cc.fail_hi = cc.fail_lo + 4096;
		cc.err = -EIO;
		CHECK_EQ(walk(&c, m, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.entry_addr, addrs[1]);
		CHECK_EQ(r.refs, fc->levels - 1);
		cc.err = -EFAULT;
		CHECK_EQ(walk(&c, m, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		/* ... or for the root */
		cc.fail_lo = root;
		cc.fail_hi = root + 4096;
		CHECK_EQ(walk(&c, m, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(r.refs, 0);
		cc.fail_lo = cc.fail_hi = 0;
		/* A/D through callbacks: a refusing write callback is TABLE_WRITE,
		 * an accepting one gets the A bits */
		{
			struct viommu_pt_config cad = mkcfg(fc, 0, VIOMMU_PT_F_AD, 0);

			cc.allow_write = 0;
			CHECK_EQ(walk(&cad, m, root, iova, ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_WRITE);
			cc.allow_write = 1;
			if (CHECK_EQ(walk(&cad, m, root, iova, ACC_R, &r), 0)) {
				CHECK_EQ(r.writes, fc->levels);
				CHECK(get(addrs[1]) & fmt_a_bit(fc->fmt));
				CHECK(get(addrs[fc->levels]) & fmt_a_bit(fc->fmt));
			}
		}
		viommu_mem_destroy(m);
	}
	/* a read callback and no write callback */
	memset(&cc, 0, sizeof(cc));
	m = mem_with(0, 0, 0, &cc, 0);
	if (m) {
		struct viommu_pt_config cad = mkcfg(fc, 0, VIOMMU_PT_F_AD, 0);

		wipe();
		root = build(fc, CB_BASE, iova, 1, PA, addrs);
		CHECK_EQ(walk(&cad, m, root, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_WRITE);
		expect_ok(fc, &c, m, root, iova, ACC_R, 1, PA);
		viommu_mem_destroy(m);
	}

	/* misaligned roots */
	{
		static const uint64_t offs[] = { 8, 0x800, 1, 0xfff, 0x10 };
		size_t i;

		wipe();
		root = build(fc, G_BASE, iova, 1, PA, addrs);
		for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			CHECK_EQ(walk(&c, g_mem, root + offs[i], iova, ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_ROOT_MISALIGNED);
			CHECK_EQ(r.refs, 0);
			CHECK_EQ(r.level, 0);
		}
		CHECK_EQ(walk(&c, g_mem, OUTSIDE + 8, iova, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_ROOT_MISALIGNED);
	}
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* Accessed/dirty into read-only memory                                         */

static void test_ad_readonly(const struct fmtcase *fc)
{
	struct viommu_pt_config cad = mkcfg(fc, 0, VIOMMU_PT_F_AD, 0), c = mkcfg(fc, 0, 0, 0);
	uint64_t iova = pick_iova(fc), addrs[8], root, a = fmt_a_bit(fc->fmt), d = fmt_d_bit(fc->fmt);
	uint32_t leaf_lvl = fc->levels >= 3 ? 2 : 1, level;
	struct viommu_pt_result r;
	viommu_mem *ro;
	uint8_t *snap;

	check_context("%s levels=%u A/D read-only", fmt_name(fc->fmt), fc->levels);
	ro = mem_with(G_BASE, G_PAGES * 4096ull, VIOMMU_MEM_REGION_READONLY, NULL, 0);
	snap = malloc(G_PAGES * 4096ull);
	if (!ro || !snap) {
		viommu_mem_destroy(ro);
		free(snap);
		return;
	}
	wipe();
	root = build(fc, G_BASE, iova, leaf_lvl, PA, addrs);
	memcpy(snap, g_host, G_PAGES * 4096ull);
	/* without A/D nothing needs writing */
	expect_ok(fc, &c, ro, root, iova, ACC_W, leaf_lvl, PA);
	/* A clear: the walk cannot set it */
	CHECK_EQ(walk(&cad, ro, root, iova, ACC_R, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_TABLE_WRITE);
	CHECK(memcmp(snap, g_host, G_PAGES * 4096ull) == 0);
	/* A already set everywhere: a read needs no write */
	for (level = fc->levels; level >= leaf_lvl; level--)
		put(addrs[level], get(addrs[level]) | a);
	if (expect_ok(fc, &cad, ro, root, iova, ACC_R, leaf_lvl, PA)) {
		CHECK_EQ(walk(&cad, ro, root, iova, ACC_R, &r), 0);
		CHECK_EQ(r.writes, 0);
	}
	/* a write needs D on the leaf */
	expect_fault_at(fc, &cad, ro, root, iova, ACC_W, VIOMMU_FAULT_TABLE_WRITE, leaf_lvl, addrs[leaf_lvl]);
	put(addrs[leaf_lvl], get(addrs[leaf_lvl]) | d);
	if (CHECK_EQ(walk(&cad, ro, root, iova, ACC_W, &r), 0))
		CHECK_EQ(r.writes, 0);
	viommu_mem_destroy(ro);

	/* the same in writable memory: A on each level, D on the leaf only */
	wipe();
	root = build(fc, G_BASE, iova, leaf_lvl, PA, addrs);
	if (CHECK_EQ(walk(&cad, g_mem, root, iova, ACC_R, &r), 0))
		CHECK_EQ(r.writes, fc->levels - leaf_lvl + 1);
	for (level = fc->levels; level >= leaf_lvl; level--)
		CHECK_EQ(get(addrs[level]) & (a | d), a);
	/* a faulting write sets no D */
	put(addrs[leaf_lvl], get(addrs[leaf_lvl]) & ~(fc->fmt == VIOMMU_PT_X86_64   ? X86_RW
						      : fc->fmt == VIOMMU_PT_VTD_SL ? VTD_W
										    : AMD_IW));
	CHECK_EQ(walk(&cad, g_mem, root, iova, ACC_W, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
	CHECK_EQ(r.writes, 0);
	CHECK_EQ(get(addrs[leaf_lvl]) & d, 0);
	put(addrs[leaf_lvl], mk_leaf(fc->fmt, leaf_lvl, PA & ~(level_span(leaf_lvl) - 1)) | a);
	if (CHECK_EQ(walk(&cad, g_mem, root, iova, ACC_W, &r), 0))
		CHECK_EQ(r.writes, 1);
	for (level = fc->levels; level >= leaf_lvl; level--)
		CHECK_EQ(get(addrs[level]) & (a | d), level == leaf_lvl ? a | d : a);
	free(snap);
	check_context("%s", "");
}

/* ---------------------------------------------------------------------------- */
/* Input address width                                                          */

static void test_addr_width(const struct fmtcase *fc)
{
	struct viommu_pt_config c = mkcfg(fc, 0, 0, 0);
	uint32_t ias = fmt_ias(fc->fmt, fc->levels);
	struct viommu_pt_result r;
	uint64_t addrs[8], root;
	size_t i;

	check_context("%s levels=%u address width", fmt_name(fc->fmt), fc->levels);
	wipe();
	if (fc->fmt == VIOMMU_PT_X86_64) {
		uint64_t half = 1ull << (ias - 1);
		const uint64_t bad[] = { half, 0 - half - 4096, 1ull << 63, half | (1ull << 62), 0x0001000000000000ull,
					 0x8000000000000000ull | 0x123 };
		const uint64_t good[] = { 0, half - 1, 0 - half, UINT64_MAX };

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			if (ias == 57 && bad[i] == 0x0001000000000000ull)
				continue; /* bit 48 is an index bit with 5 levels */
			CHECK_EQ(walk(&c, g_mem, tbl(0), bad[i], ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_ADDR_WIDTH);
			CHECK_EQ(r.refs, 0);
			CHECK_EQ(r.level, 0);
		}
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			CHECK_EQ(walk(&c, g_mem, tbl(0), good[i], ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_NOT_PRESENT);
			CHECK_EQ(r.refs, 1);
		}
		/* 4 levels: 0x0000_8000_0000_0000 is not canonical, 5 levels: it is */
		CHECK_EQ(walk(&c, g_mem, tbl(0), 0x0000800000000000ull, ACC_R, &r), -EFAULT);
		CHECK_EQ(r.fault, ias == 48 ? VIOMMU_FAULT_ADDR_WIDTH : VIOMMU_FAULT_NOT_PRESENT);
		/* the upper half uses the upper root entries */
		{
			uint64_t iova = (0 - half) | 0x12345678ull;

			root = build(fc, G_BASE, iova, 1, PA, addrs);
			CHECK_EQ(addrs[fc->levels], tbl(0) + 8 * 256);
			expect_ok(fc, &c, g_mem, root, iova, ACC_R, 1, PA);
			/* the same low bits in the lower half are another page */
			CHECK_EQ(walk(&c, g_mem, root, iova & (half - 1), ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_NOT_PRESENT);
		}
	} else if (ias < 64) {
		const uint64_t bad[] = { 1ull << ias, (1ull << ias) | 0xfff, UINT64_MAX, 1ull << 63 };
		uint64_t last = (1ull << ias) - 1;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			CHECK_EQ(walk(&c, g_mem, tbl(0), bad[i], ACC_R, &r), -EFAULT);
			CHECK_EQ(r.fault, VIOMMU_FAULT_ADDR_WIDTH);
			CHECK_EQ(r.refs, 0);
			CHECK_EQ(r.level, 0);
		}
		root = build(fc, G_BASE, last, 1, PA, addrs);
		expect_ok(fc, &c, g_mem, root, last, ACC_R, 1, PA);
	} else {
		/* 64-bit input: the very last byte translates */
		root = build(fc, G_BASE, UINT64_MAX, 1, PA, addrs);
		CHECK_EQ(addrs[6], tbl(0) + 8 * 127);
		expect_ok(fc, &c, g_mem, root, UINT64_MAX, ACC_R, 1, PA);
	}
	check_context("%s", "");
}

/* x86 XD: reserved without NXE (covered per level in test_reserved), honoured
 * with it. */
static void test_x86_xd(const struct fmtcase *fc)
{
	struct viommu_pt_config cnxe = mkcfg(fc, 0, VIOMMU_PT_F_NXE, 0), c = mkcfg(fc, 0, 0, 0);
	uint64_t iova = pick_iova(fc), addrs[8], root;
	struct viommu_pt_result r;
	uint32_t level;

	if (fc->fmt != VIOMMU_PT_X86_64)
		return;
	wipe();
	root = build(fc, G_BASE, iova, 1, PA, addrs);
	for (level = fc->levels; level >= 1; level--) {
		uint64_t orig = get(addrs[level]);

		check_context("x86 levels=%u XD at level %u", fc->levels, level);
		put(addrs[level], orig | X86_XD);
		CHECK_EQ(walk(&cnxe, g_mem, root, iova, ACC_X, &r), -EFAULT);
		CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
		if (CHECK_EQ(walk(&cnxe, g_mem, root, iova, ACC_R, &r), 0))
			CHECK_EQ(r.perms, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER);
		expect_fault_at(fc, &c, g_mem, root, iova, ACC_R, VIOMMU_FAULT_RESERVED_BIT, level, addrs[level]);
		put(addrs[level], orig);
		if (CHECK_EQ(walk(&cnxe, g_mem, root, iova, ACC_X, &r), 0))
			CHECK_EQ(r.perms, VIOMMU_PERM_ALL);
	}
	check_context("%s", "");
}

int main(void)
{
	struct viommu_mem_region reg;
	struct viommu_mem_config mc;
	size_t i;

	g_host = aligned_alloc(4096, (G_PAGES + 1) * 4096ull);
	if (!g_host)
		return 2;
	memset(&reg, 0, sizeof(reg));
	reg.gpa = G_BASE;
	reg.size = G_PAGES * 4096ull;
	reg.host = g_host;
	memset(&mc, 0, sizeof(mc));
	mc.size = sizeof(mc);
	mc.regions = &reg;
	mc.nr_regions = 1;
	if (viommu_mem_create(&mc, NULL, &g_mem))
		return 2;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_reserved(&cases[i]);
		test_perms(&cases[i]);
		test_self_pointer(&cases[i]);
		test_outside(&cases[i]);
		test_ad_readonly(&cases[i]);
		test_addr_width(&cases[i]);
		test_x86_xd(&cases[i]);
	}
	test_amd_skip();
	test_amd_nl7();

	viommu_mem_destroy(g_mem);
	free(g_host);
	return check_report("test_pt_hostile");
}
