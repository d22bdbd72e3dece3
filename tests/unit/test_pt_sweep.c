/* SPDX-License-Identifier: MIT */
/*
 * Sweep of caller-owned page tables through the public API only:
 * every format x every levels value x every page size the format grants (AMD-Vi:
 * natural and non-natural sizes) x tables in host memory (tables = NULL) and
 * tables in a guest-RAM region (a table allocator over a viommu_mem), where
 * every lookup is cross-checked against viommu_pt_walk() from viommu_pt_root().
 *
 * For each case: empty table, config in/out, map of one page (largest size
 * chosen, refs per size), overlapping maps, iova_to_phys at first/middle/last
 * byte, permissions (x86 USER vs privileged), splitting a large page by a
 * partial unmap and remapping the hole, unmap of everything (back to one
 * table), the last pages of the input space and the address-width faults past
 * them, ranges of mixed sizes read back with for_each, argument validation, and
 * accessed/dirty update read back from guest memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#include "check.h"
#include "pt_helpers.h"
#include "test_alloc.h"

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

/* Natural sizes of every format, plus AMD-Vi next-level-7 sizes at levels 1,
 * 2 and 3. Sizes a configuration does not grant are skipped. */
static const uint64_t sizes[] = {
	KiB(4), KiB(8), KiB(64), MiB(1), MiB(2), MiB(4), MiB(256), GiB(1), GiB(4),
	1ull << 38, 1ull << 39,
};

#define ALL_PROT (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_EXEC | VIOMMU_PERM_USER)
#define PRIV_READ (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV)

/* Guest RAM for the tables: below 2^32 so any oas will do. */
#define GR_GPA   0x80000000ull
#define GR_PAGES 1024

struct env {
	enum viommu_pt_format fmt;
	uint32_t levels, ias, flags;
	int guest;
	struct viommu_pt_config cfg; /* as granted */
	viommu_pt *pt;
	struct test_alloc ta;
	struct guest_ram gr;
	struct leaf_list ll;
};

/* One past the last address of the lower input space (x86: of the lower
 * canonical half; AMD mode 6: 2^63, the half of the 64-bit space). */
static uint64_t lo_limit(const struct env *e)
{
	if (e->fmt == VIOMMU_PT_X86_64 || e->ias == 64)
		return 1ull << (e->ias - 1);
	return 1ull << e->ias;
}

static int env_setup(struct env *e, const struct fmtcase *fc, int guest, uint32_t flags,
		     uint64_t pgsize_req, uint32_t oas)
{
	int rc;

	memset(e, 0, sizeof(*e));
	e->fmt = fc->fmt;
	e->levels = fc->levels;
	e->ias = fmt_ias(fc->fmt, fc->levels);
	e->flags = flags;
	e->guest = guest;
	ta_init(&e->ta, 0);
	if (guest && !CHECK(gr_init(&e->gr, GR_GPA, GR_PAGES, 0) == 0))
		return -1;
	e->cfg.size = sizeof(e->cfg);
	e->cfg.format = fc->fmt;
	e->cfg.levels = fc->levels;
	e->cfg.oas = oas;
	e->cfg.flags = flags;
	e->cfg.pgsize_bitmap = pgsize_req;
	rc = viommu_pt_create(&e->cfg, guest ? &e->gr.ops : NULL, guest ? e->gr.mem : NULL,
			      &e->ta.hooks, &e->pt);
	if (!CHECK_EQ(rc, 0)) {
		if (guest)
			gr_fini(&e->gr);
		return -1;
	}
	CHECK_EQ(e->cfg.ias, e->ias);
	CHECK_EQ(e->cfg.pgsize_bitmap,
		 pgsize_req ? pgsize_req & fmt_pgsizes(e->fmt, e->levels) : fmt_pgsizes(e->fmt, e->levels));
	CHECK_EQ(viommu_pt_table_count(e->pt), 1);
	if (guest) {
		uint64_t root = viommu_pt_root(e->pt);

		CHECK_EQ(e->gr.live, 1);
		CHECK(root >= GR_GPA && root < GR_GPA + GR_PAGES * 4096ull && !(root & 4095));
	} else {
		/* host tables get the object's own dense addresses from 0x1000 up */
		CHECK_EQ(viommu_pt_root(e->pt), 0x1000);
	}
	return 0;
}

static void env_teardown(struct env *e)
{
	viommu_pt_destroy(e->pt);
	CHECK_EQ(e->ta.bytes, 0);
	CHECK_EQ(e->ta.allocs, e->ta.frees);
	CHECK_EQ(e->ta.bad_frees, 0);
	CHECK_EQ(e->ta.bad_args, 0);
	if (e->guest) {
		CHECK_EQ(e->gr.live, 0);
		CHECK_EQ(e->gr.bad_frees, 0);
		gr_fini(&e->gr);
	}
	ta_release(&e->ta);
	leaf_list_free(&e->ll);
}

static uint64_t ad_mask(enum viommu_pt_format f)
{
	return fmt_a_bit(f) | fmt_d_bit(f);
}

static int entry_present(enum viommu_pt_format f, uint64_t e)
{
	if (f == VIOMMU_PT_X86_64)
		return !!(e & X86_P);
	if (f == VIOMMU_PT_VTD_SL)
		return !!(e & (VTD_R | VTD_W));
	return !!(e & AMD_PR);
}

/* A lookup; in the guest-RAM variant also a walk from viommu_pt_root() over
 * the viommu_mem, which must give the same answer. */
static int lk(struct env *e, uint64_t iova, uint32_t access, struct viommu_pt_result *res)
{
	int rc;

	memset(res, 0xcc, sizeof(*res));
	rc = viommu_pt_lookup(e->pt, iova, access, res);
	CHECK(rc == 0 || rc == -EFAULT);
	CHECK_EQ(rc == 0, res->fault == VIOMMU_FAULT_NONE);
	if (!(e->flags & VIOMMU_PT_F_AD) || rc != 0)
		CHECK_EQ(res->writes, 0); /* only successful walks set A/D */
	if (e->guest) {
		struct viommu_pt_result w;
		int wrc;

		memset(&w, 0xcc, sizeof(w));
		wrc = viommu_pt_walk(viommu_pt_get_config(e->pt), e->gr.mem, viommu_pt_root(e->pt), iova,
				     access, &w);
		CHECK_EQ(wrc, rc);
		CHECK_EQ(w.fault, res->fault);
		CHECK_EQ(w.level, res->level);
		CHECK_EQ(w.entry_addr, res->entry_addr);
		CHECK_EQ(w.entry & ~ad_mask(e->fmt), res->entry & ~ad_mask(e->fmt));
		CHECK_EQ(w.refs, res->refs);
		CHECK_EQ(w.writes, 0); /* the lookup already set what was needed */
		if (rc == 0) {
			CHECK_EQ(w.oaddr, res->oaddr);
			CHECK_EQ(w.page_size, res->page_size);
			CHECK_EQ(w.perms, res->perms);
		}
	}
	return rc;
}

static void expect_map(struct env *e, uint64_t iova, uint64_t pa, uint64_t size, uint32_t prot)
{
	uint64_t mapped = 0xdead;

	CHECK_EQ(viommu_pt_map(e->pt, iova, pa, size, prot, &mapped), 0);
	CHECK_EQ(mapped, size);
}

static void expect_unmap(struct env *e, uint64_t iova, uint64_t size)
{
	uint64_t unmapped = 0xdead;

	CHECK_EQ(viommu_pt_unmap(e->pt, iova, size, &unmapped), 0);
	CHECK_EQ(unmapped, size);
}

static void expect_map_err(struct env *e, uint64_t iova, uint64_t pa, uint64_t size, uint32_t prot,
			   int err, uint64_t progress)
{
	uint64_t mapped = 0xdead;

	CHECK_EQ(viommu_pt_map(e->pt, iova, pa, size, prot, &mapped), err);
	CHECK_EQ(mapped, progress);
}

/* `iova` translates to `pa` through a leaf of `page_size`. */
static void expect_tr(struct env *e, uint64_t iova, uint64_t pa, uint64_t page_size, uint32_t prot)
{
	struct viommu_pt_result r;
	uint64_t phys = 0;
	uint32_t level = leaf_level(page_size);

	CHECK_EQ(viommu_pt_iova_to_phys(e->pt, iova, &phys), 0);
	CHECK_EQ(phys, pa);
	if (!CHECK_EQ(lk(e, iova, PRIV_READ, &r), 0))
		return;
	CHECK_EQ(r.oaddr, pa);
	CHECK_EQ(r.page_size, page_size);
	CHECK_EQ(r.level, level);
	CHECK_EQ(r.refs, e->levels - level + 1);
	CHECK_EQ(r.perms, expected_perms(e->fmt, e->flags, prot));
}

/* `iova` translates to `pa` through a leaf smaller than `below`. */
static void expect_tr_small(struct env *e, uint64_t iova, uint64_t pa, uint64_t below)
{
	struct viommu_pt_result r;
	uint64_t phys = 0;

	CHECK_EQ(viommu_pt_iova_to_phys(e->pt, iova, &phys), 0);
	CHECK_EQ(phys, pa);
	if (!CHECK_EQ(lk(e, iova, PRIV_READ, &r), 0))
		return;
	CHECK_EQ(r.oaddr, pa);
	CHECK(r.page_size < below);
	CHECK_EQ(r.refs, e->levels - r.level + 1);
}

/* Nothing at `iova`. */
static void expect_none(struct env *e, uint64_t iova)
{
	struct viommu_pt_result r;
	uint64_t phys = 0;

	CHECK_EQ(viommu_pt_iova_to_phys(e->pt, iova, &phys), -ENOENT);
	CHECK_EQ(lk(e, iova, PRIV_READ, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_NOT_PRESENT);
	if (CHECK(r.level >= 1 && r.level <= e->levels))
		CHECK_EQ(r.refs, e->levels - r.level + 1);
	CHECK(!entry_present(e->fmt, r.entry));
}

/* Every mapping of the range, as for_each sees it. */
static int collect(struct env *e, uint64_t iova, uint64_t size)
{
	leaf_list_reset(&e->ll);
	return viommu_pt_for_each(e->pt, iova, size, leaf_visit, &e->ll);
}

struct seg {
	uint64_t iova, len, pa;
};

/* for_each over [iova, iova + len) visits, in order and without overlap,
 * leaves that cover exactly the segments (sorted), each at its offset. */
static void expect_coverage(struct env *e, uint64_t iova, uint64_t len, const struct seg *segs, size_t n,
			    uint32_t prot)
{
	uint64_t total = 0, want = 0, next = iova;
	size_t i, s = 0;

	CHECK_EQ(collect(e, iova, len), 0);
	for (i = 0; i < n; i++)
		want += segs[i].len;
	for (i = 0; i < e->ll.n; i++) {
		const struct leaf *l = &e->ll.v[i];

		if (!CHECK(l->size && !(l->size & (l->size - 1)) && !(l->iova & (l->size - 1))))
			continue;
		CHECK(l->iova >= next); /* ordered, no overlap */
		next = l->iova + l->size;
		while (s < n && segs[s].iova + segs[s].len <= l->iova)
			s++;
		if (!CHECK(s < n && l->iova >= segs[s].iova && l->iova + l->size <= segs[s].iova + segs[s].len))
			continue;
		CHECK_EQ(l->paddr, segs[s].pa + (l->iova - segs[s].iova));
		CHECK_EQ(l->perms, expected_perms(e->fmt, e->flags, prot));
		total += l->size;
	}
	CHECK_EQ(total, want);
}

/* Unmap the whole input space: afterwards only the root is left. */
static void unmap_everything(struct env *e)
{
	if (e->fmt == VIOMMU_PT_X86_64) {
		uint64_t half = 1ull << (e->ias - 1);

		expect_unmap(e, 0, half);
		expect_unmap(e, 0 - half, half);
	} else if (e->ias == 64) {
		expect_unmap(e, 0, 1ull << 63);
		expect_unmap(e, 1ull << 63, 1ull << 63);
	} else {
		expect_unmap(e, 0, 1ull << e->ias);
	}
	CHECK_EQ(viommu_pt_table_count(e->pt), 1);
	if (e->guest)
		CHECK_EQ(e->gr.live, 1);
	CHECK_EQ(collect(e, 0, lo_limit(e)), 0);
	CHECK_EQ(e->ll.n, 0);
}

/* Read the entries a walk of `iova` uses, root first, straight from guest
 * memory. Returns how many. */
static int read_path(struct env *e, uint64_t iova, uint64_t *addrs, uint64_t *vals)
{
	uint64_t table = viommu_pt_root(e->pt);
	uint32_t level = e->levels;
	int n = 0;

	while (n < 8 && level >= 1) {
		uint64_t a = table + 8ull * level_index(iova, level), v = 0;

		if (viommu_mem_read(e->gr.mem, a, &v, sizeof(v)))
			return -1;
		addrs[n] = a;
		vals[n] = v;
		n++;
		if (!entry_present(e->fmt, v) || entry_is_leaf(e->fmt, level, v))
			break;
		table = v & PT_ADDR_MASK;
		level = entry_next_level(e->fmt, level, v);
	}
	return n;
}

/* Accessed/dirty bits, read back from guest memory: A on every level after a
 * use, D on the leaf only, and only after a write. */
static void check_ad(struct env *e, uint64_t iova, uint32_t leaf_lvl)
{
	uint64_t addrs[8], vals[8], a = fmt_a_bit(e->fmt), d = fmt_d_bit(e->fmt);
	struct viommu_pt_result r;
	int n, i, clear_a = 0, ok;

	n = read_path(e, iova, addrs, vals);
	if (!CHECK_EQ(n, (int)(e->levels - leaf_lvl + 1)))
		return;
	for (i = 0; i < n; i++) {
		CHECK(!(vals[i] & d));
		clear_a += !(vals[i] & a);
	}
	CHECK_EQ(lk(e, iova, PRIV_READ, &r), 0);
	CHECK_EQ(r.writes, clear_a);
	CHECK_EQ(r.refs, n);
	CHECK_EQ(r.entry_addr, addrs[n - 1]);
	read_path(e, iova, addrs, vals);
	for (ok = 1, i = 0; i < n; i++)
		ok &= (vals[i] & a) && !(vals[i] & d);
	CHECK(ok);
	CHECK_EQ(lk(e, iova, PRIV_READ, &r), 0);
	CHECK_EQ(r.writes, 0);

	CHECK_EQ(lk(e, iova, VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV, &r), 0);
	CHECK_EQ(r.writes, 1);
	CHECK_EQ(r.refs, n);
	read_path(e, iova, addrs, vals);
	for (ok = 1, i = 0; i < n; i++)
		ok &= (vals[i] & a) && (i == n - 1 ? !!(vals[i] & d) : !(vals[i] & d));
	CHECK(ok);
	CHECK_EQ(lk(e, iova, VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV, &r), 0);
	CHECK_EQ(r.writes, 0);
}

static uint64_t pick_iova(struct env *e, uint64_t page)
{
	uint64_t lim = lo_limit(e);
	uint64_t c = (0x5a5a5a5a5a5a5a5aull & (lim / 2 - 1)) & ~(page - 1);

	if (c < KiB(16))
		c = (KiB(16) + page - 1) & ~(page - 1);
	CHECK(c + page <= lim);
	return c;
}

static uint64_t pick_pa(uint64_t page)
{
	uint64_t c = 0x000c3c3c3c3c3000ull & ~(page - 1);

	return c ? c : page;
}

static const uint32_t prots[] = {
	VIOMMU_PERM_READ,
	VIOMMU_PERM_WRITE,
	VIOMMU_PERM_READ | VIOMMU_PERM_WRITE,
	VIOMMU_PERM_READ | VIOMMU_PERM_EXEC,
	VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_EXEC,
	VIOMMU_PERM_READ | VIOMMU_PERM_USER,
	VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER,
	VIOMMU_PERM_WRITE | VIOMMU_PERM_USER,
	ALL_PROT,
};

static const uint32_t accesses[] = {
	VIOMMU_ACCESS_READ, VIOMMU_ACCESS_WRITE, VIOMMU_ACCESS_EXEC,
	VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE,
};

static void check_perms(struct env *e, uint64_t iova, uint64_t pa, uint64_t page)
{
	uint32_t level = leaf_level(page);
	size_t i, j;

	for (i = 0; i < sizeof(prots) / sizeof(prots[0]); i++) {
		uint32_t perms = expected_perms(e->fmt, e->flags, prots[i]);
		uint64_t phys = 0, mapped = 0;

		check_context("%s levels=%u page=0x%llx %s prot=0x%x", fmt_name(e->fmt), e->levels,
			      (unsigned long long)page, e->guest ? "guest" : "host", prots[i]);
		/* Every prot with READ or WRITE is valid, except write-only on x86-64,
		 * which cannot express it: refused rather than widened to read-write. */
		if (e->fmt == VIOMMU_PT_X86_64 && !(prots[i] & VIOMMU_PERM_READ)) {
			CHECK_EQ(viommu_pt_map(e->pt, iova, pa, page, prots[i], &mapped), -EINVAL);
			CHECK_EQ(mapped, 0);
			CHECK_EQ(viommu_pt_iova_to_phys(e->pt, iova, &phys), -ENOENT);
			continue;
		}
		if (!CHECK_EQ(viommu_pt_map(e->pt, iova, pa, page, prots[i], &mapped), 0))
			continue;
		CHECK_EQ(mapped, page);
		/* iova_to_phys does not care about permissions */
		CHECK_EQ(viommu_pt_iova_to_phys(e->pt, iova + page - 8, &phys), 0);
		CHECK_EQ(phys, pa + page - 8);
		for (j = 0; j < 2 * sizeof(accesses) / sizeof(accesses[0]); j++) {
			uint32_t acc = accesses[j / 2] | (j & 1 ? VIOMMU_ACCESS_PRIV : 0);
			struct viommu_pt_result r;
			int rc;

			check_context("%s levels=%u page=0x%llx %s prot=0x%x access=0x%x", fmt_name(e->fmt),
				      e->levels, (unsigned long long)page, e->guest ? "guest" : "host",
				      prots[i], acc);
			rc = lk(e, iova + page / 2, acc, &r);
			if (access_allowed(perms, acc)) {
				CHECK_EQ(rc, 0);
				CHECK_EQ(r.perms, perms);
				CHECK_EQ(r.oaddr, pa + page / 2);
			} else {
				CHECK_EQ(rc, -EFAULT);
				CHECK_EQ(r.fault, VIOMMU_FAULT_PERMISSION);
				CHECK_EQ(r.level, level);
				CHECK_EQ(r.refs, e->levels - level + 1);
			}
		}
		expect_unmap(e, iova, page);
	}
}

static void sweep_page(const struct fmtcase *fc, uint64_t page, int guest)
{
	uint32_t flags = 0, level = leaf_level(page);
	uint64_t iova, pa, pa2 = 0x0000012345600000ull, mapped;
	struct viommu_pt_result r;
	struct leaf pre[4];
	struct env e;
	size_t npre, i;
	char ctx[128];

	if (guest) {
		flags = VIOMMU_PT_F_AD;
		if (fc->fmt == VIOMMU_PT_X86_64)
			flags |= VIOMMU_PT_F_NXE;
		if (fc->fmt == VIOMMU_PT_VTD_SL)
			flags |= VIOMMU_PT_F_VTD_EXEC;
	}
	snprintf(ctx, sizeof(ctx), "%s levels=%u page=0x%llx %s", fmt_name(fc->fmt), fc->levels,
		 (unsigned long long)page, guest ? "guest" : "host");
	check_context("%s", ctx);
	if (env_setup(&e, fc, guest, flags, 0, 0))
		return;
	iova = pick_iova(&e, page);
	pa = pick_pa(page);

	/* An empty table translates nothing; the walk stops at the root. */
	CHECK_EQ(lk(&e, iova, PRIV_READ, &r), -EFAULT);
	CHECK_EQ(r.fault, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(r.level, e.levels);
	CHECK_EQ(r.refs, 1);
	CHECK_EQ(r.entry_addr, viommu_pt_root(e.pt) + 8ull * level_index(iova, e.levels));
	expect_none(&e, iova + page - 1);
	CHECK_EQ(collect(&e, 0, lo_limit(&e)), 0);
	CHECK_EQ(e.ll.n, 0);

	/* One page of this size: one leaf of exactly this size. */
	expect_map(&e, iova, pa, page, ALL_PROT);
	CHECK_EQ(viommu_pt_table_count(e.pt), e.levels - level + 1);
	if (guest) {
		CHECK_EQ(e.gr.live, viommu_pt_table_count(e.pt));
		check_ad(&e, iova, level);
	}
	expect_tr(&e, iova, pa, page, ALL_PROT);
	expect_tr(&e, iova + page / 2 + 0x123, pa + page / 2 + 0x123, page, ALL_PROT);
	expect_tr(&e, iova + page - 1, pa + page - 1, page, ALL_PROT);
	CHECK_EQ(lk(&e, iova, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC, &r), 0);
	CHECK_EQ(collect(&e, 0, lo_limit(&e)), 0);
	if (CHECK_EQ(e.ll.n, 1)) {
		CHECK_EQ(e.ll.v[0].iova, iova);
		CHECK_EQ(e.ll.v[0].paddr, pa);
		CHECK_EQ(e.ll.v[0].size, page);
	}

	/* Overlapping maps: refused at the first page already mapped, with the
	 * pages before it done. */
	npre = greedy_split(e.cfg.pgsize_bitmap, iova - KiB(8), pa2, KiB(8), ALL_PROT, pre, 4);
	expect_map_err(&e, iova - KiB(8), pa2, KiB(12), ALL_PROT, -EEXIST, KiB(8));
	for (i = 0; i < npre && i < 4; i++)
		expect_tr(&e, pre[i].iova, pre[i].paddr, pre[i].size, ALL_PROT);
	expect_tr(&e, iova, pa, page, ALL_PROT);
	expect_unmap(&e, iova - KiB(8), KiB(8));
	expect_none(&e, iova - KiB(8));
	expect_none(&e, iova - KiB(4));
	expect_map_err(&e, iova, pa, page, ALL_PROT, -EEXIST, 0);
	expect_map_err(&e, iova, pa2, SZ_4K, ALL_PROT, -EEXIST, 0);
	if (page > SZ_4K)
		expect_map_err(&e, iova + page / 2, pa2, SZ_4K, ALL_PROT, -EEXIST, 0);
	if (iova + page + SZ_4K <= lo_limit(&e)) {
		expect_map_err(&e, iova + page - SZ_4K, pa2, KiB(8), ALL_PROT, -EEXIST, 0);
		expect_none(&e, iova + page);
	}
	expect_tr(&e, iova, pa, page, ALL_PROT);
	expect_tr(&e, iova + page - 1, pa + page - 1, page, ALL_PROT);

	/* A partial unmap splits the page; the rest stays where it was. */
	if (page > SZ_4K) {
		uint64_t hole = iova + page / 2 + (page >= KiB(16) ? SZ_4K : 0);
		struct seg two[2] = {
			{ iova, hole - iova, pa },
			{ hole + SZ_4K, iova + page - hole - SZ_4K, pa + (hole - iova) + SZ_4K },
		};
		struct seg one = { iova, page, pa };

		expect_unmap(&e, hole, SZ_4K);
		expect_none(&e, hole);
		expect_none(&e, hole + SZ_4K - 1);
		expect_tr_small(&e, hole - SZ_4K, pa + (hole - iova) - SZ_4K, page);
		expect_tr_small(&e, hole - 1, pa + (hole - iova) - 1, page);
		if (hole + SZ_4K < iova + page) {
			expect_tr_small(&e, hole + SZ_4K, pa + (hole - iova) + SZ_4K, page);
			expect_tr_small(&e, iova + page - 1, pa + page - 1, page);
		}
		expect_tr_small(&e, iova, pa, page);
		expect_coverage(&e, iova, page, two, two[1].len ? 2 : 1, ALL_PROT);
		/* the split did not disturb the neighbours */
		if (iova >= SZ_4K)
			expect_none(&e, iova - 1);
		if (iova + page < lo_limit(&e))
			expect_none(&e, iova + page);

		/* Remap the hole with one 4 KiB page. */
		expect_map(&e, hole, pa + (hole - iova), SZ_4K, ALL_PROT);
		expect_tr(&e, hole, pa + (hole - iova), SZ_4K, ALL_PROT);
		expect_coverage(&e, iova, page, &one, 1, ALL_PROT);
		expect_map_err(&e, hole, pa, SZ_4K, ALL_PROT, -EEXIST, 0);
	}

	/* Unmap the whole page. */
	expect_unmap(&e, iova, page);
	expect_none(&e, iova);
	expect_none(&e, iova + page / 2);
	expect_none(&e, iova + page - 1);
	CHECK_EQ(collect(&e, iova, page), 0);
	CHECK_EQ(e.ll.n, 0);
	expect_unmap(&e, iova, page); /* again: holes are fine */

	/* Permissions, per leaf of this size. */
	check_perms(&e, iova, pa, page);
	check_context("%s", ctx);

	/* The last pages of the input space map and translate; just past them
	 * the address width faults. */
	{
		uint64_t tops[2];
		size_t ntops = 0;

		if (e.fmt == VIOMMU_PT_X86_64) {
			tops[ntops++] = 0 - page;              /* canonical top */
			tops[ntops++] = lo_limit(&e) - page;   /* last lower-half page */
		} else {
			tops[ntops++] = (e.ias == 64 ? 0 : 1ull << e.ias) - page;
		}
		for (i = 0; i < ntops; i++) {
			expect_map(&e, tops[i], pa, page, ALL_PROT);
			expect_tr(&e, tops[i], pa, page, ALL_PROT);
			expect_tr(&e, tops[i] + page - 1, pa + page - 1, page, ALL_PROT);
		}
		if (e.fmt == VIOMMU_PT_X86_64) {
			uint64_t half = 1ull << (e.ias - 1);
			uint64_t bad[] = { half, 0 - half - SZ_4K, 0 - half - 1, 1ull << 63, half + (1ull << 62) };

			for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
				uint64_t phys;

				CHECK_EQ(lk(&e, bad[i], PRIV_READ, &r), -EFAULT);
				CHECK_EQ(r.fault, VIOMMU_FAULT_ADDR_WIDTH);
				CHECK_EQ(r.refs, 0);
				CHECK_EQ(r.level, 0);
				CHECK(viommu_pt_iova_to_phys(e.pt, bad[i], &phys) < 0);
			}
			expect_map_err(&e, half, pa, SZ_4K, ALL_PROT, -EINVAL, 0);
			expect_map_err(&e, 0 - half - SZ_4K, pa, SZ_4K, ALL_PROT, -EINVAL, 0);
			expect_map_err(&e, half - SZ_4K, pa2, KiB(8), ALL_PROT, -EINVAL, 0); /* across the hole */
			CHECK_EQ(viommu_pt_unmap(e.pt, half - SZ_4K, KiB(8), &mapped), -EINVAL);
			CHECK_EQ(viommu_pt_unmap(e.pt, half, SZ_4K, &mapped), -EINVAL);
		} else if (e.ias < 64) {
			uint64_t lim = 1ull << e.ias;
			uint64_t bad[] = { lim, lim + SZ_4K - 1, 0xfffffffffffff000ull, 1ull << 63 };

			for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
				uint64_t phys;

				CHECK_EQ(lk(&e, bad[i], PRIV_READ, &r), -EFAULT);
				CHECK_EQ(r.fault, VIOMMU_FAULT_ADDR_WIDTH);
				CHECK_EQ(r.refs, 0);
				CHECK_EQ(r.level, 0);
				CHECK(viommu_pt_iova_to_phys(e.pt, bad[i], &phys) < 0);
			}
			expect_map_err(&e, lim, pa, SZ_4K, ALL_PROT, -EINVAL, 0);
			expect_map_err(&e, lim - SZ_4K, pa2, KiB(8), ALL_PROT, -EINVAL, 0);
			CHECK_EQ(viommu_pt_unmap(e.pt, lim, SZ_4K, &mapped), -EINVAL);
			CHECK_EQ(viommu_pt_unmap(e.pt, lim - SZ_4K, KiB(8), &mapped), -EINVAL);
		} else {
			/* 64-bit input: a range may not wrap around 2^64 */
			expect_map_err(&e, 0 - SZ_4K, pa2, KiB(8), ALL_PROT, -EINVAL, 0);
			CHECK_EQ(viommu_pt_unmap(e.pt, 0 - SZ_4K, KiB(8), &mapped), -EINVAL);
		}
		for (i = 0; i < ntops; i++) {
			expect_unmap(&e, tops[i], page);
			expect_none(&e, tops[i]);
			expect_none(&e, tops[i] + page - 1);
		}
	}

	/* Map again, then unmap everything: only the root table is left. */
	expect_map(&e, iova, pa, page, ALL_PROT);
	unmap_everything(&e);
	expect_none(&e, iova);
	env_teardown(&e);
	check_context("%s", "");
}

/* Ranges of mixed sizes: for_each must show the greedy decomposition. */
struct rng {
	uint64_t ioff, poff, len;
};

static const struct rng big_ranges[] = {
	{ 0, 0, MiB(2) + KiB(8) },
	{ MiB(4) + KiB(4), MiB(4) + KiB(4), MiB(4) },
	{ MiB(16), MiB(16) + KiB(4), KiB(64) },
	{ MiB(32) + KiB(8), MiB(34) + KiB(8), MiB(2) + KiB(64) },
	{ GiB(1), GiB(1), GiB(1) + MiB(2) + KiB(4) },
};

static const struct rng small_ranges[] = {
	{ 0, 0, KiB(64) + KiB(8) },
	{ KiB(128) + KiB(4), KiB(128) + KiB(4), KiB(256) },
	{ MiB(1), MiB(1) + KiB(4), KiB(64) },
	{ MiB(1) + KiB(512), MiB(1) + KiB(512), KiB(512) },
};

#define MAX_LEAVES 2048

static void check_leaves(struct env *e, const struct leaf *want, size_t n)
{
	size_t i;

	if (!CHECK_EQ(e->ll.n, n))
		return;
	for (i = 0; i < n; i++) {
		CHECK_EQ(e->ll.v[i].iova, want[i].iova);
		CHECK_EQ(e->ll.v[i].paddr, want[i].paddr);
		CHECK_EQ(e->ll.v[i].size, want[i].size);
		CHECK_EQ(e->ll.v[i].perms, want[i].perms);
	}
}

static void sweep_mixed(const struct fmtcase *fc, int guest, uint64_t pgsize_req)
{
	static struct leaf want[MAX_LEAVES], all[MAX_LEAVES];
	const uint32_t prot = VIOMMU_PERM_READ | VIOMMU_PERM_WRITE;
	const struct rng *set = big_ranges;
	size_t nset = sizeof(big_ranges) / sizeof(big_ranges[0]);
	uint64_t base, pbase = GiB(256), lim, span_end = 0;
	size_t i, j, n, nall = 0, used = 0;
	uint32_t perms;
	struct env e;

	check_context("mixed %s levels=%u %s pgsizes=0x%llx", fmt_name(fc->fmt), fc->levels,
		      guest ? "guest" : "host", (unsigned long long)pgsize_req);
	if (env_setup(&e, fc, guest, 0, pgsize_req, 0))
		return;
	perms = expected_perms(e.fmt, 0, prot);
	lim = lo_limit(&e);
	base = lim >= GiB(8) ? GiB(4) : 0;
	for (i = 0; i < nset; i++)
		used += base + set[i].ioff + set[i].len <= lim;
	if (!used) {
		set = small_ranges;
		nset = sizeof(small_ranges) / sizeof(small_ranges[0]);
	}
	for (i = 0; i < nset; i++) {
		const struct rng *g = &set[i];
		struct viommu_pt_result r;

		if (base + g->ioff + g->len > lim)
			continue;
		expect_map(&e, base + g->ioff, pbase + g->poff, g->len, prot);
		n = greedy_split(e.cfg.pgsize_bitmap, base + g->ioff, pbase + g->poff, g->len, perms, want,
				 MAX_LEAVES);
		if (!CHECK(n != (size_t)-1 && nall + n <= MAX_LEAVES))
			continue;
		CHECK_EQ(collect(&e, base + g->ioff, g->len), 0);
		check_leaves(&e, want, n);
		for (j = 0; j < n; j++) {
			/* every leaf: page size, level and refs of a walk */
			if (j < 64 || j + 64 > n) {
				if (!CHECK_EQ(lk(&e, want[j].iova + want[j].size - 1, PRIV_READ, &r), 0))
					continue;
				CHECK_EQ(r.oaddr, want[j].paddr + want[j].size - 1);
				CHECK_EQ(r.page_size, want[j].size);
				CHECK_EQ(r.level, leaf_level(want[j].size));
				CHECK_EQ(r.refs, e.levels - leaf_level(want[j].size) + 1);
			}
			all[nall++] = want[j];
		}
		/* just before and after the range: nothing */
		if (base + g->ioff)
			expect_none(&e, base + g->ioff - 1);
		span_end = base + g->ioff + g->len;
		if (span_end < lim)
			expect_none(&e, span_end);
	}
	if (!nall) {
		env_teardown(&e);
		return;
	}
	/* the whole span at once */
	CHECK_EQ(collect(&e, base, span_end - base), 0);
	check_leaves(&e, all, nall);
	/* a range starting inside a leaf visits the whole leaf */
	for (i = 0; i < nall && all[i].size == SZ_4K; i++)
		;
	if (i < nall) {
		CHECK_EQ(collect(&e, all[i].iova + SZ_4K, SZ_4K), 0);
		check_leaves(&e, &all[i], 1);
	}
	/* the callback's value stops the visit and is returned */
	if (nall >= 3) {
		leaf_list_reset(&e.ll);
		e.ll.stop_after = 2;
		CHECK_EQ(viommu_pt_for_each(e.pt, base, span_end - base, leaf_visit, &e.ll), 42);
		CHECK_EQ(e.ll.n, 2);
	}
	/* unmap each range exactly */
	for (i = 0; i < nset; i++) {
		const struct rng *g = &set[i];

		if (base + g->ioff + g->len > lim)
			continue;
		expect_unmap(&e, base + g->ioff, g->len);
		CHECK_EQ(collect(&e, base + g->ioff, g->len), 0);
		CHECK_EQ(e.ll.n, 0);
		expect_none(&e, base + g->ioff);
	}
	unmap_everything(&e);
	env_teardown(&e);
	check_context("%s", "");
}

/* A range over a table emptied by an earlier unmap still gets the large page;
 * one over a live smaller mapping is refused at its first step. */
static void sweep_replace_empty(const struct fmtcase *fc, int guest)
{
	uint64_t x = MiB(6), pa = GiB(3);
	struct viommu_pt_result r;
	struct env e;

	check_context("replace-empty %s levels=%u %s", fmt_name(fc->fmt), fc->levels, guest ? "guest" : "host");
	if (env_setup(&e, fc, guest, 0, 0, 0))
		return;
	if (!(e.cfg.pgsize_bitmap & MiB(2)) || x + MiB(2) > lo_limit(&e)) {
		env_teardown(&e);
		return;
	}
	expect_map(&e, x + SZ_4K, pa + SZ_4K, SZ_4K, VIOMMU_PERM_READ);
	expect_unmap(&e, x + SZ_4K, SZ_4K);
	expect_map(&e, x, pa, MiB(2), VIOMMU_PERM_READ);
	if (CHECK_EQ(lk(&e, x + SZ_4K, PRIV_READ, &r), 0)) {
		CHECK_EQ(r.page_size, MiB(2));
		CHECK_EQ(r.level, 2);
		CHECK_EQ(r.oaddr, pa + SZ_4K);
	}
	expect_map_err(&e, x + SZ_4K, pa, SZ_4K, VIOMMU_PERM_READ, -EEXIST, 0);
	expect_unmap(&e, x, MiB(2));

	expect_map(&e, x + KiB(8), pa + KiB(8), SZ_4K, VIOMMU_PERM_READ);
	expect_map_err(&e, x, pa, MiB(2), VIOMMU_PERM_READ, -EEXIST, 0);
	expect_none(&e, x);
	expect_tr(&e, x + KiB(8), pa + KiB(8), SZ_4K, VIOMMU_PERM_READ);
	unmap_everything(&e);
	env_teardown(&e);
	check_context("%s", "");
}

/* Config in/out and bad configurations. */
static void sweep_config(const struct fmtcase *fc)
{
	struct viommu_pt_config c;
	uint64_t all = fmt_pgsizes(fc->fmt, fc->levels);
	uint64_t sub;

	check_context("config %s levels=%u", fmt_name(fc->fmt), fc->levels);
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fc->fmt;
	c.levels = fc->levels;
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	CHECK_EQ(c.ias, fmt_ias(fc->fmt, fc->levels));
	CHECK_EQ(c.pgsize_bitmap, all);

	/* a subset is granted as asked */
	sub = fc->fmt == VIOMMU_PT_AMD_V1 ? (KiB(4) | KiB(64) | (all & MiB(1))) : (KiB(4) | MiB(2));
	c.pgsize_bitmap = sub;
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	CHECK_EQ(c.pgsize_bitmap, sub);
	/* sizes the format does not have are not granted */
	c.pgsize_bitmap = KiB(4) | KiB(2) | (1ull << 40) | (fc->fmt == VIOMMU_PT_AMD_V1 ? 0 : KiB(8));
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	CHECK_EQ(c.pgsize_bitmap, KiB(4));
	if (fc->fmt == VIOMMU_PT_AMD_V1) {
		c.pgsize_bitmap = ~0ull;
		CHECK_EQ(viommu_pt_config_check(&c), 0);
		CHECK_EQ(c.pgsize_bitmap, all);
	}
	/* no 4 KiB, or nothing left */
	c.pgsize_bitmap = MiB(2) | (all & KiB(64));
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.pgsize_bitmap = KiB(2);
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.pgsize_bitmap = 0;

	/* oas 32..52 */
	c.oas = 32;
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	c.oas = 52;
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	c.oas = 31;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.oas = 53;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.oas = 0;

	/* flags */
	c.flags = VIOMMU_PT_F_AD;
	CHECK_EQ(viommu_pt_config_check(&c), 0);
	c.flags = 1u << 3;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.flags = 1u << 31;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.flags = 0;

	/* levels out of range */
	{
		uint32_t lo = fc->fmt == VIOMMU_PT_X86_64 ? 4 : fc->fmt == VIOMMU_PT_VTD_SL ? 3 : 1;
		uint32_t hi = fc->fmt == VIOMMU_PT_AMD_V1 ? 6 : 5;

		c.levels = lo - 1;
		CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
		c.levels = hi + 1;
		CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
		c.levels = 0;
		CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
		c.levels = fc->levels;
	}
	/* size, format, NULL */
	c.size = 4;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.size = sizeof(c);
	c.format = (enum viommu_pt_format)0;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	c.format = (enum viommu_pt_format)4;
	CHECK_EQ(viommu_pt_config_check(&c), -EINVAL);
	CHECK_EQ(viommu_pt_config_check(NULL), -EINVAL);
	check_context("%s", "");
}

/* Argument validation of create, map, unmap, lookup, iova_to_phys, walk. */
static int fail_table_alloc(void *ctx, uint64_t *addr, void **host)
{
	(void)ctx;
	(void)addr;
	(void)host;
	return -ENOSPC;
}

static void sweep_validation(const struct fmtcase *fc)
{
	struct viommu_pt_config c;
	struct viommu_pt_result r;
	struct viommu_pt_table_ops ops;
	struct test_alloc ta = { 0 };
	struct guest_ram gr;
	viommu_pt *pt = NULL;
	uint64_t iova, pa = GiB(2), mapped, phys;
	struct env e;

	check_context("validation %s levels=%u", fmt_name(fc->fmt), fc->levels);
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fc->fmt;
	c.levels = fc->levels;
	if (!CHECK(gr_init(&gr, GR_GPA, 16, 0) == 0))
		return;
	ta_init(&ta, 0);

	CHECK_EQ(viommu_pt_create(NULL, NULL, NULL, &ta.hooks, &pt), -EINVAL);
	CHECK_EQ(viommu_pt_create(&c, NULL, NULL, &ta.hooks, NULL), -EINVAL);
	CHECK_EQ(viommu_pt_create(&c, &gr.ops, NULL, &ta.hooks, &pt), -EINVAL);   /* tables need mem */
	CHECK_EQ(viommu_pt_create(&c, NULL, gr.mem, &ta.hooks, &pt), -EINVAL);    /* mem without tables */
	ops = gr.ops;
	ops.size = 4;
	CHECK_EQ(viommu_pt_create(&c, &ops, gr.mem, &ta.hooks, &pt), -EINVAL);
	ops = gr.ops;
	ops.alloc = NULL;
	CHECK_EQ(viommu_pt_create(&c, &ops, gr.mem, &ta.hooks, &pt), -EINVAL);
	ops = gr.ops;
	ops.free = NULL;
	CHECK_EQ(viommu_pt_create(&c, &ops, gr.mem, &ta.hooks, &pt), -EINVAL);
	ta.hooks.size = 4;
	CHECK_EQ(viommu_pt_create(&c, NULL, NULL, &ta.hooks, &pt), -EINVAL);
	ta.hooks.size = sizeof(ta.hooks);
	ta.hooks.alloc = NULL;
	CHECK_EQ(viommu_pt_create(&c, NULL, NULL, &ta.hooks, &pt), -EINVAL);
	ta_init(&ta, 0);
	c.levels = 9;
	CHECK_EQ(viommu_pt_create(&c, NULL, NULL, &ta.hooks, &pt), -EINVAL);
	c.levels = fc->levels;
	/* the table allocator's own error comes back */
	ops = gr.ops;
	ops.alloc = fail_table_alloc;
	CHECK_EQ(viommu_pt_create(&c, &ops, gr.mem, &ta.hooks, &pt), -ENOSPC);
	CHECK_EQ(ta.bytes, 0);
	CHECK_EQ(gr.live, 0);
	ta_release(&ta);
	/* the C library allocator */
	if (CHECK_EQ(viommu_pt_create(&c, NULL, NULL, NULL, &pt), 0)) {
		CHECK_EQ(viommu_pt_map(pt, KiB(64), pa, SZ_4K, VIOMMU_PERM_READ, &mapped), 0);
		CHECK_EQ(viommu_pt_iova_to_phys(pt, KiB(68) - 1, &phys), 0);
		CHECK_EQ(phys, pa + SZ_4K - 1);
		viommu_pt_destroy(pt);
	}
	viommu_pt_destroy(NULL);
	gr_fini(&gr);

	/* walk arguments */
	if (!CHECK(gr_init(&gr, GR_GPA, 16, 0) == 0))
		return;
	c.pgsize_bitmap = 0;
	CHECK_EQ(viommu_pt_walk(NULL, gr.mem, GR_GPA, 0, PRIV_READ, &r), -EINVAL);
	CHECK_EQ(viommu_pt_walk(&c, NULL, GR_GPA, 0, PRIV_READ, &r), -EINVAL);
	CHECK_EQ(viommu_pt_walk(&c, gr.mem, GR_GPA, 0, PRIV_READ, NULL), -EINVAL);
	c.levels = 9;
	CHECK_EQ(viommu_pt_walk(&c, gr.mem, GR_GPA, 0, PRIV_READ, &r), -EINVAL);
	c.levels = fc->levels;
	c.flags = 1u << 7;
	CHECK_EQ(viommu_pt_walk(&c, gr.mem, GR_GPA, 0, PRIV_READ, &r), -EINVAL);
	c.flags = 0;
	gr_fini(&gr);

	/* map / unmap / lookup / iova_to_phys */
	if (env_setup(&e, fc, 0, 0, 0, 40))
		return;
	iova = pick_iova(&e, MiB(2) <= lo_limit(&e) / 4 ? MiB(2) : KiB(64));
	mapped = 0xdead;
	CHECK_EQ(viommu_pt_map(NULL, iova, pa, SZ_4K, VIOMMU_PERM_READ, &mapped), -EINVAL);
	expect_map_err(&e, iova, pa, 0, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova + 0x800, pa, SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova + 8, pa, SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, pa + 1, SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, pa + 0x800, SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K + 512, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, 0, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, VIOMMU_PERM_EXEC, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, VIOMMU_PERM_USER, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, VIOMMU_PERM_EXEC | VIOMMU_PERM_USER, -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, VIOMMU_PERM_READ | (1u << 4), -EINVAL, 0);
	expect_map_err(&e, iova, pa, SZ_4K, VIOMMU_PERM_READ | (1u << 31), -EINVAL, 0);
	/* output beyond 2^oas (oas 40 here), or wrapping */
	expect_map_err(&e, iova, 1ull << 40, SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, (1ull << 40) - SZ_4K, KiB(8), VIOMMU_PERM_READ, -EINVAL, 0);
	expect_map_err(&e, iova, 0xfffffffffffff000ull, KiB(8), VIOMMU_PERM_READ, -EINVAL, 0);
	/* a size that wraps the input */
	expect_map_err(&e, iova, 0, 0 - iova + SZ_4K, VIOMMU_PERM_READ, -EINVAL, 0);
	CHECK_EQ(viommu_pt_table_count(e.pt), 1);
	CHECK_EQ(collect(&e, 0, lo_limit(&e)), 0);
	CHECK_EQ(e.ll.n, 0);
	/* the last page below 2^oas is fine */
	expect_map(&e, iova, (1ull << 40) - SZ_4K, SZ_4K, VIOMMU_PERM_READ);
	expect_tr(&e, iova + 5, (1ull << 40) - SZ_4K + 5, SZ_4K, VIOMMU_PERM_READ);

	CHECK_EQ(viommu_pt_unmap(NULL, iova, SZ_4K, &mapped), -EINVAL);
	CHECK_EQ(viommu_pt_unmap(e.pt, iova, 0, &mapped), -EINVAL);
	CHECK_EQ(viommu_pt_unmap(e.pt, iova + 0x800, SZ_4K, &mapped), -EINVAL);
	CHECK_EQ(viommu_pt_unmap(e.pt, iova, SZ_4K + 8, &mapped), -EINVAL);
	CHECK_EQ(viommu_pt_unmap(e.pt, iova, 0 - iova + SZ_4K, &mapped), -EINVAL);
	expect_tr(&e, iova, (1ull << 40) - SZ_4K, SZ_4K, VIOMMU_PERM_READ);

	CHECK_EQ(viommu_pt_iova_to_phys(e.pt, iova, NULL), -EINVAL);
	CHECK_EQ(viommu_pt_iova_to_phys(NULL, iova, &phys), -EINVAL);
	CHECK_EQ(viommu_pt_lookup(e.pt, iova, PRIV_READ, NULL), -EINVAL);
	CHECK_EQ(viommu_pt_lookup(NULL, iova, PRIV_READ, &r), -EINVAL);
	CHECK(viommu_pt_get_config(e.pt) != NULL);
	if (viommu_pt_get_config(e.pt)) {
		const struct viommu_pt_config *g = viommu_pt_get_config(e.pt);

		CHECK_EQ(g->format, fc->fmt);
		CHECK_EQ(g->levels, fc->levels);
		CHECK_EQ(g->ias, e.ias);
		CHECK_EQ(g->oas, 40);
		CHECK_EQ(g->pgsize_bitmap, fmt_pgsizes(fc->fmt, fc->levels));
	}
	unmap_everything(&e);
	env_teardown(&e);
	check_context("%s", "");
}

int main(void)
{
	size_t c, s;
	int guest;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct fmtcase *fc = &cases[c];
		uint64_t granted = fmt_pgsizes(fc->fmt, fc->levels);

		sweep_config(fc);
		sweep_validation(fc);
		for (guest = 0; guest < 2; guest++) {
			for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
				if (granted & sizes[s])
					sweep_page(fc, sizes[s], guest);
			sweep_mixed(fc, guest, 0);
			sweep_replace_empty(fc, guest);
		}
		/* a restricted set of sizes: only those are used */
		if (fmt_ias(fc->fmt, fc->levels) >= 39)
			sweep_mixed(fc, 1, fc->fmt == VIOMMU_PT_AMD_V1 ? (KiB(4) | KiB(64) | MiB(2)) :
								 (KiB(4) | MiB(2)));
	}
	return check_report("test_pt_sweep");
}
