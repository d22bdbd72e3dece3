/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure, for every N: fail the Nth allocation of a whole scenario
 * (create, map ranges of mixed sizes, partial unmaps that split large pages,
 * unmap everything, destroy), for N = 1, 2, 3, ... until a run goes through
 * without hitting the failure. At each N:
 *  - the call that met the failure returns -ENOMEM (create: fails cleanly);
 *  - the progress it reports is exact: what it says is mapped translates,
 *    what it says is unmapped does not, and nothing else changed (checked
 *    against a model of the whole input space with for_each and lookups);
 *  - the object stays usable: the rest of the operation then succeeds;
 *  - after destroy every allocation was freed (bytes outstanding == 0).
 * Once with the allocation hooks failing (tables in host memory), once with a
 * table allocator (tables in guest memory) failing the Nth table.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
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
	{ VIOMMU_PT_AMD_V1, 3 }, { VIOMMU_PT_AMD_V1, 4 }, { VIOMMU_PT_AMD_V1, 5 },
	{ VIOMMU_PT_AMD_V1, 6 },
};

#define GR_GPA   0x80000000ull
#define GR_PAGES 512

enum { OP_MAP, OP_UNMAP };

struct op {
	int kind;
	uint64_t iova, pa, len;
	int x86_only;
};

#define PROT (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)

/* Everything below 2^39 (the smallest input space here) but the x86 range at
 * the top of the canonical upper half. */
static const struct op scenario[] = {
	/* 1 GiB + 2 MiB + 3 x 4 KiB */
	{ OP_MAP, GiB(1), GiB(65), GiB(1) + MiB(2) + KiB(12), 0 },
	/* 4 KiB, 2 MiB pages, 4 KiB (AMD: 4K, 2M, 4M, 2M, 8K ...) */
	{ OP_MAP, 0x2001ff000ull, 0x4201ff000ull, MiB(4) + KiB(8), 0 },
	{ OP_MAP, GiB(64), GiB(3), MiB(2), 0 },
	/* small pages and AMD-Vi non-natural sizes */
	{ OP_MAP, GiB(128) + KiB(64), GiB(129) + KiB(64), MiB(4) + KiB(64), 0 },
	/* the top 2 MiB of the x86 upper half */
	{ OP_MAP, 0 - MiB(2), GiB(5), MiB(2), 1 },
	/* split the end of the 1 GiB page and the start of the 2 MiB after it */
	{ OP_UNMAP, GiB(2) - KiB(8), 0, KiB(16), 0 },
	/* a hole in the middle of a 2 MiB page */
	{ OP_UNMAP, 0x200300000ull, 0, KiB(4), 0 },
	/* all of a 2 MiB page but its first and last 4 KiB */
	{ OP_UNMAP, GiB(64) + KiB(4), 0, MiB(2) - KiB(8), 0 },
	/* across several pages of the small-page range */
	{ OP_UNMAP, GiB(128) + KiB(128), 0, MiB(2) + KiB(8), 0 },
	/* a 4 KiB hole in the top x86 page */
	{ OP_UNMAP, 0 - MiB(1), 0, KiB(4), 1 },
	/* map again into the holes */
	{ OP_MAP, GiB(2) - KiB(8), GiB(66) - KiB(8), KiB(16), 0 },
	{ OP_MAP, GiB(64) + KiB(4), GiB(3) + KiB(4), MiB(2) - KiB(8), 0 },
};

/* --- a model of what is mapped: sorted, disjoint intervals ------------------ */

struct ival {
	uint64_t iova, len, pa;
};

struct model {
	struct ival v[256];
	size_t n;
};

static void model_add(struct model *m, uint64_t iova, uint64_t len, uint64_t pa)
{
	size_t i;

	if (!len)
		return;
	if (!CHECK(m->n < 256))
		return;
	for (i = m->n; i > 0 && m->v[i - 1].iova > iova; i--)
		m->v[i] = m->v[i - 1];
	m->v[i].iova = iova;
	m->v[i].len = len;
	m->v[i].pa = pa;
	m->n++;
}

static void model_remove(struct model *m, uint64_t iova, uint64_t len)
{
	uint64_t last = iova + len - 1;
	struct model out;
	size_t i;

	if (!len)
		return;
	out.n = 0;
	for (i = 0; i < m->n; i++) {
		const struct ival *v = &m->v[i];
		uint64_t vlast = v->iova + v->len - 1;

		if (vlast < iova || v->iova > last) {
			out.v[out.n++] = *v;
			continue;
		}
		if (v->iova < iova)
			out.v[out.n++] = (struct ival){ v->iova, iova - v->iova, v->pa };
		if (vlast > last)
			out.v[out.n++] = (struct ival){ last + 1, vlast - last, v->pa + (last + 1 - v->iova) };
	}
	*m = out;
}

/* --- the object under test ---------------------------------------------------- */

struct run {
	const struct fmtcase *fc;
	int use_tables;
	uint32_t ias;
	struct test_alloc ta;
	struct guest_ram gr;
	viommu_pt *pt;
	struct model model;
	struct leaf_list ll;
};

static unsigned long injected(struct run *r)
{
	return r->use_tables ? r->gr.injected : r->ta.injected;
}

/* for_each over the input space (in halves where it has two) shows exactly
 * the model; lookups at the edges of every interval agree. */
static void verify(struct run *r)
{
	uint64_t spans[2][2];
	size_t nspans, s, i, k = 0;
	uint64_t total = 0, want = 0;

	if (r->fc->fmt == VIOMMU_PT_X86_64) {
		uint64_t half = 1ull << (r->ias - 1);

		spans[0][0] = 0;
		spans[0][1] = half;
		spans[1][0] = 0 - half;
		spans[1][1] = half;
		nspans = 2;
	} else if (r->ias == 64) {
		spans[0][0] = 0;
		spans[0][1] = 1ull << 63;
		spans[1][0] = 1ull << 63;
		spans[1][1] = 1ull << 63;
		nspans = 2;
	} else {
		spans[0][0] = 0;
		spans[0][1] = 1ull << r->ias;
		nspans = 1;
	}
	leaf_list_reset(&r->ll);
	for (s = 0; s < nspans; s++)
		CHECK_EQ(viommu_pt_for_each(r->pt, spans[s][0], spans[s][1], leaf_visit, &r->ll), 0);
	for (i = 0; i < r->model.n; i++)
		want += r->model.v[i].len;
	for (i = 0; i < r->ll.n; i++) {
		const struct leaf *l = &r->ll.v[i];
		uint64_t pos = l->iova, llast = l->iova + l->size - 1;

		CHECK_EQ(l->perms & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE), PROT);
		/* the leaf must lie in model intervals, at their offsets */
		while (k < r->model.n && r->model.v[k].iova + r->model.v[k].len - 1 < pos)
			k++;
		for (;;) {
			const struct ival *v;
			uint64_t vlast;

			if (!CHECK(k < r->model.n && r->model.v[k].iova <= pos)) {
				fprintf(stderr, "  leaf iova 0x%llx size 0x%llx is not in the model\n",
					(unsigned long long)l->iova, (unsigned long long)l->size);
				break;
			}
			v = &r->model.v[k];
			vlast = v->iova + v->len - 1;
			CHECK_EQ(l->paddr + (pos - l->iova), v->pa + (pos - v->iova));
			if (vlast >= llast)
				break;
			pos = vlast + 1;
			k++;
		}
		total += l->size;
	}
	CHECK_EQ(total, want);
	for (i = 0; i < r->model.n; i++) {
		const struct ival *v = &r->model.v[i];
		uint64_t phys = 0;

		CHECK_EQ(viommu_pt_iova_to_phys(r->pt, v->iova, &phys), 0);
		CHECK_EQ(phys, v->pa);
		CHECK_EQ(viommu_pt_iova_to_phys(r->pt, v->iova + v->len - 1, &phys), 0);
		CHECK_EQ(phys, v->pa + v->len - 1);
		if (v->iova >= SZ_4K && (i == 0 || r->model.v[i - 1].iova + r->model.v[i - 1].len < v->iova))
			CHECK_EQ(viommu_pt_iova_to_phys(r->pt, v->iova - 1, &phys), -ENOENT);
		if (r->use_tables) {
			/* the guest's view of the same tables */
			struct viommu_pt_result w;

			CHECK_EQ(viommu_pt_walk(viommu_pt_get_config(r->pt), r->gr.mem, viommu_pt_root(r->pt),
						v->iova + v->len - 1, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV, &w), 0);
			CHECK_EQ(w.oaddr, v->pa + v->len - 1);
		}
	}
	if (r->use_tables)
		CHECK_EQ(r->gr.live, viommu_pt_table_count(r->pt));
}

static void do_map(struct run *r, const struct op *o)
{
	unsigned long before = injected(r);
	uint64_t mapped = 0xdead;
	int rc;

	rc = viommu_pt_map(r->pt, o->iova, o->pa, o->len, PROT, &mapped);
	if (injected(r) != before) {
		CHECK_EQ(rc, -ENOMEM);
		CHECK(mapped < o->len && !(mapped & 4095));
		if (mapped > o->len)
			mapped = 0;
		model_add(&r->model, o->iova, mapped, o->pa);
		verify(r);
		/* the rest still maps */
		{
			uint64_t rest = 0xdead;

			CHECK_EQ(viommu_pt_map(r->pt, o->iova + mapped, o->pa + mapped, o->len - mapped, PROT, &rest),
				 0);
			CHECK_EQ(rest, o->len - mapped);
			model_add(&r->model, o->iova + mapped, o->len - mapped, o->pa + mapped);
		}
	} else {
		CHECK_EQ(rc, 0);
		CHECK_EQ(mapped, o->len);
		model_add(&r->model, o->iova, o->len, o->pa);
	}
	verify(r);
}

static void do_unmap(struct run *r, const struct op *o)
{
	unsigned long before = injected(r);
	uint64_t unmapped = 0xdead;
	int rc;

	rc = viommu_pt_unmap(r->pt, o->iova, o->len, &unmapped);
	if (injected(r) != before) {
		CHECK_EQ(rc, -ENOMEM);
		CHECK(unmapped < o->len && !(unmapped & 4095));
		if (unmapped > o->len)
			unmapped = 0;
		/* what was processed is gone, the large page that could not be
		 * split is whole and mapped */
		model_remove(&r->model, o->iova, unmapped);
		verify(r);
		{
			uint64_t rest = 0xdead;

			CHECK_EQ(viommu_pt_unmap(r->pt, o->iova + unmapped, o->len - unmapped, &rest), 0);
			CHECK_EQ(rest, o->len - unmapped);
		}
		model_remove(&r->model, o->iova + unmapped, o->len - unmapped);
	} else {
		CHECK_EQ(rc, 0);
		CHECK_EQ(unmapped, o->len);
		model_remove(&r->model, o->iova, o->len);
	}
	verify(r);
}

static void unmap_everything(struct run *r)
{
	uint64_t a[2][2];
	size_t n, i;

	if (r->fc->fmt == VIOMMU_PT_X86_64) {
		uint64_t half = 1ull << (r->ias - 1);

		a[0][0] = 0;
		a[0][1] = half;
		a[1][0] = 0 - half;
		a[1][1] = half;
		n = 2;
	} else if (r->ias == 64) {
		a[0][0] = 0;
		a[0][1] = 1ull << 63;
		a[1][0] = 1ull << 63;
		a[1][1] = 1ull << 63;
		n = 2;
	} else {
		a[0][0] = 0;
		a[0][1] = 1ull << r->ias;
		n = 1;
	}
	for (i = 0; i < n; i++) {
		uint64_t done = 0xdead;

		/* covering whole tables never needs a split, so never allocates */
		CHECK_EQ(viommu_pt_unmap(r->pt, a[i][0], a[i][1], &done), 0);
		CHECK_EQ(done, a[i][1]);
	}
	r->model.n = 0;
	verify(r);
	CHECK_EQ(viommu_pt_table_count(r->pt), 1);
}

/* One run with failure number n armed. Returns 1 when nothing was injected
 * (the whole scenario went through). */
static int run_once(const struct fmtcase *fc, int use_tables, unsigned long n)
{
	struct viommu_pt_config cfg;
	struct run r;
	size_t i;
	int rc, clean;

	memset(&r, 0, sizeof(r));
	r.fc = fc;
	r.use_tables = use_tables;
	r.ias = fmt_ias(fc->fmt, fc->levels);
	ta_init(&r.ta, use_tables ? 0 : n);
	if (use_tables) {
		if (!CHECK(gr_init(&r.gr, GR_GPA, GR_PAGES, 0) == 0))
			return 1;
		r.gr.fail_at = n;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.format = fc->fmt;
	cfg.levels = fc->levels;
	rc = viommu_pt_create(&cfg, use_tables ? &r.gr.ops : NULL, use_tables ? r.gr.mem : NULL, &r.ta.hooks,
			      &r.pt);
	if (rc) {
		CHECK(injected(&r) > 0);
		CHECK_EQ(rc, -ENOMEM);
		r.pt = NULL;
	} else {
		CHECK_EQ(viommu_pt_table_count(r.pt), 1);
		for (i = 0; i < sizeof(scenario) / sizeof(scenario[0]); i++) {
			const struct op *o = &scenario[i];

			if (o->x86_only && fc->fmt != VIOMMU_PT_X86_64)
				continue;
			check_context("%s levels=%u %s fail_at=%lu op %zu", fmt_name(fc->fmt), fc->levels,
				      use_tables ? "tables" : "hooks", n, i);
			if (o->kind == OP_MAP)
				do_map(&r, o);
			else
				do_unmap(&r, o);
		}
		check_context("%s levels=%u %s fail_at=%lu unmap all", fmt_name(fc->fmt), fc->levels,
			      use_tables ? "tables" : "hooks", n);
		unmap_everything(&r);
		viommu_pt_destroy(r.pt);
	}
	check_context("%s levels=%u %s fail_at=%lu after destroy", fmt_name(fc->fmt), fc->levels,
		      use_tables ? "tables" : "hooks", n);
	CHECK_EQ(r.ta.bytes, 0);
	CHECK_EQ(r.ta.allocs, r.ta.frees);
	CHECK_EQ(r.ta.bad_frees, 0);
	CHECK_EQ(r.ta.bad_args, 0);
	clean = injected(&r) == 0;
	if (use_tables) {
		CHECK_EQ(r.gr.live, 0);
		CHECK_EQ(r.gr.allocs, r.gr.frees);
		CHECK_EQ(r.gr.bad_frees, 0);
		gr_fini(&r.gr);
	}
	ta_release(&r.ta);
	leaf_list_free(&r.ll);
	check_context("%s", "");
	return clean;
}

int main(void)
{
	size_t c;
	int use_tables;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (use_tables = 0; use_tables < 2; use_tables++) {
			unsigned long n;
			int done = 0;

			for (n = 1; n <= 4000 && !done; n++)
				done = run_once(&cases[c], use_tables, n);
			check_context("%s levels=%u %s", fmt_name(cases[c].fmt), cases[c].levels,
				      use_tables ? "tables" : "hooks");
			CHECK(done);
			check_context("%s", "");
			printf("%s levels=%u %s: %lu failure points, then a clean run\n", fmt_name(cases[c].fmt),
			       cases[c].levels, use_tables ? "tables" : "hooks", n - 2);
		}
	}
	return check_report("test_pt_allocfail");
}
