/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure of the IOMMU core: for each call that allocates, fail
 * its 1st allocation, then its 2nd, and so on until the call goes through
 * with no failure injected. Each time:
 *   - the call returns a negative errno (-ENOMEM) and does not crash,
 *   - what it leaves behind is consistent (the instance goes on working; a
 *     partial map is exactly what `done` says, a notifier that failed to
 *     register hears nothing, a notifier that missed events catches up on
 *     the next invalidation),
 *   - after teardown every allocation has been freed, with the size and
 *     alignment it was made with (core_alloc.h counts them).
 * A fresh instance per attempt: each attempt starts from the same state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#include "core_alloc.h"
#include "core_check.h"
#include "core_guest.h"

#define MiB ((uint64_t)1 << 20)
#define PG ((uint64_t)4096)
#define RAM_SIZE (16 * MiB)
#define GT_GPA (8 * MiB)
#define GT_SIZE (4 * MiB)
#define PR VIOMMU_PERM_READ
#define PW VIOMMU_PERM_WRITE
#define PU VIOMMU_PERM_USER
#define NOPASID VIOMMU_NO_PASID

/* At most this many failure points per call; more means a loop. */
#define MAX_POINTS 4000

struct fx {
	struct core_alloc ca;
	uint8_t *ram;
	viommu *v;
	viommu_mem *gm;
	struct gtab gt;
};

static struct viommu_config base_cfg(struct viommu_mem_region *reg, uint8_t *ram)
{
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	reg->gpa = 0;
	reg->size = RAM_SIZE;
	reg->host = ram;
	reg->flags = 0;
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = reg;
	c.mem.nr_regions = 1;
	return c;
}

static int fx_init(struct fx *f, int with_instance)
{
	memset(f, 0, sizeof(*f));
	core_alloc_init(&f->ca);
	f->ram = aligned_alloc(4096, RAM_SIZE);
	if (!f->ram)
		return -ENOMEM;
	memset(f->ram, 0, RAM_SIZE);
	f->gm = gmem_one(0, RAM_SIZE, f->ram);
	if (!f->gm || gtab_init(&f->gt, f->ram + GT_GPA, GT_GPA, GT_SIZE))
		return -ENOMEM;
	if (!with_instance)
		return 0;
	struct viommu_mem_region reg;
	struct viommu_config c = base_cfg(&reg, f->ram);
	return viommu_create(&c, &f->ca.hooks, &f->v);
}

static void fx_fini_at(int line, struct fx *f)
{
	viommu_destroy(f->v);
	f->v = NULL;
	CHECK_EQ_AT(line, f->ca.live, 0);
	CHECK_EQ_AT(line, f->ca.live_bytes, 0);
	CHECK_EQ_AT(line, f->ca.bad_frees, 0);
	CHECK_EQ_AT(line, f->ca.bad_args, 0);
	viommu_mem_destroy(f->gm);
	gtab_fini(&f->gt);
	free(f->ram);
}

/* Arm: the nth allocation from now fails. */
static void arm(struct fx *f, unsigned long n)
{
	f->ca.injected = 0;
	core_alloc_fail_in(&f->ca, n);
}

/*
 * Disarm and judge the call. Returns 1 when it went through with nothing
 * injected (the loop is over), else 0.
 */
static int judge_at(int line, struct fx *f, int ret)
{
	unsigned long inj = f->ca.injected;
	core_alloc_fail_in(&f->ca, 0);
	if (ret == 0)
		return inj == 0;
	/* A failure the test did not cause is a bug in itself. */
	CHECK_EQ_AT(line, inj, 1);
	CHECK_EQ_AT(line, ret, -ENOMEM);
	return 0;
}
#define JUDGE(f, ret) judge_at(__LINE__, f, ret)

static viommu_domain *dom_new(struct fx *f, enum viommu_domain_type type, uint32_t flags,
			      struct viommu_pt_config pt, int *ret)
{
	struct viommu_domain_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.type = type;
	c.flags = flags;
	c.pt = pt;
	viommu_domain *d = (viommu_domain *)&c; /* must be overwritten */
	*ret = viommu_domain_create(f->v, &c, &d);
	if (*ret)
		CHECK(d == NULL);
	return *ret ? NULL : d;
}

static viommu_dev *dev_new(struct fx *f, uint8_t devfn)
{
	struct viommu_rid rid = { .segment = 0, .bus = 1, .devfn = devfn };
	viommu_dev *d = NULL;
	CHECK_EQ(viommu_dev_create(f->v, rid, &d), 0);
	return d;
}

static int translates_to(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint64_t oaddr)
{
	struct viommu_translation t;
	return !viommu_translate(dev, pasid, iova, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV, &t) && t.oaddr == oaddr;
}

static enum viommu_fault_reason fault_of(viommu_dev *dev, uint32_t pasid, uint64_t iova)
{
	struct viommu_translation t;
	if (!viommu_translate(dev, pasid, iova, VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV, &t))
		return VIOMMU_FAULT_NONE;
	return t.fault.reason;
}

/* ------------------------------------------------------------------------ */
/* A notifier that keeps a picture of a domain over [0, PIC_SPAN)           */

#define PIC_SPAN (64 * MiB)
#define PIC_PAGES (PIC_SPAN / PG)

struct picture {
	uint64_t pa[PIC_PAGES]; /* paddr | 1, or 0 */
	unsigned long events;
	unsigned long outside;
};

static int pic_cb(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	struct picture *p = ctx;
	(void)d;
	p->events++;
	for (uint64_t off = 0; off < ev->size; off += PG) {
		uint64_t a = ev->iova + off;
		if (a >= PIC_SPAN) {
			p->outside++;
			continue;
		}
		p->pa[a / PG] = ev->type == VIOMMU_EVENT_MAP ? (ev->paddr + off) | 1 : 0;
	}
	return 0;
}

static int pic_visit(void *ctx, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	uint64_t *want = ctx;
	(void)perms;
	for (uint64_t off = 0; off < size; off += PG)
		if (iova + off < PIC_SPAN)
			want[(iova + off) / PG] = (pa + off) | 1;
	return 0;
}

/* Does the picture match the guest's table? */
static int pic_matches(const struct picture *p, viommu_pt *pt)
{
	static uint64_t want[PIC_PAGES];
	memset(want, 0, sizeof(want));
	if (viommu_pt_for_each(pt, 0, PIC_SPAN, pic_visit, want))
		return 0;
	for (uint64_t i = 0; i < PIC_PAGES; i++)
		if (p->pa[i] != want[i]) {
			fprintf(stderr, "    picture: iova %#" PRIx64 " is %#" PRIx64 ", guest has %#" PRIx64 "\n", i * PG,
				p->pa[i], want[i]);
			return 0;
		}
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Scenarios: each returns 1 once the call went through uninjected         */

static int sc_create(struct fx *f, unsigned long n)
{
	struct viommu_mem_region reg;
	struct viommu_config c = base_cfg(&reg, f->ram);
	c.iotlb_entries = 128;
	arm(f, n);
	viommu *v = (viommu *)f; /* must be overwritten */
	int r = viommu_create(&c, &f->ca.hooks, &v);
	int done = JUDGE(f, r);
	if (r) {
		CHECK(v == NULL);
		CHECK_EQ(f->ca.live, 0);
		return done;
	}
	f->v = v;
	return done;
}

static struct viommu_pt_config pt_of(enum viommu_pt_format fmt, uint32_t levels)
{
	return pt_cfg(fmt, levels, 0, 0);
}

static int sc_domain(struct fx *f, unsigned long n, enum viommu_domain_type type, uint32_t flags,
		     struct viommu_pt_config pt)
{
	viommu_dev *dev = dev_new(f, 8);
	int r;
	arm(f, n);
	viommu_domain *d = dom_new(f, type, flags, pt, &r);
	int done = JUDGE(f, r);
	if (r) {
		/* The instance goes on: the same call works now. */
		d = dom_new(f, type, flags, pt, &r);
		CHECK_EQ(r, 0);
	}
	if (d && (flags & VIOMMU_DOMAIN_F_HOST_OWNED)) {
		uint64_t m = 0;
		CHECK_EQ(viommu_domain_map(d, 0x200000, 0x1000, PG, PR | PW | PU, &m), 0);
		if (type == VIOMMU_DOMAIN_PAGING) {
			CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);
			CHECK(translates_to(dev, NOPASID, 0x200010, 0x1010));
		}
	}
	return done;
}

static int sc_dom_x86(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_of(VIOMMU_PT_X86_64, 4));
}
static int sc_dom_vtd(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_of(VIOMMU_PT_VTD_SL, 5));
}
static int sc_dom_amd(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_of(VIOMMU_PT_AMD_V1, 6));
}
static int sc_dom_guest(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_PAGING, 0, pt_of(VIOMMU_PT_VTD_SL, 4));
}
static int sc_dom_nested_host(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED, pt_of(VIOMMU_PT_VTD_SL, 4));
}
static int sc_dom_nested_guest(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_NESTED, 0, pt_of(VIOMMU_PT_AMD_V1, 4));
}
static int sc_dom_identity(struct fx *f, unsigned long n)
{
	return sc_domain(f, n, VIOMMU_DOMAIN_IDENTITY, 0, pt_of(0, 0));
}

static int sc_dev(struct fx *f, unsigned long n)
{
	struct viommu_rid rid = { .segment = 3, .bus = 2, .devfn = 1 };
	viommu_dev *d = (viommu_dev *)f;
	arm(f, n);
	int r = viommu_dev_create(f->v, rid, &d);
	int done = JUDGE(f, r);
	if (r) {
		CHECK(d == NULL);
		CHECK(viommu_dev_find(f->v, rid) == NULL);
		CHECK_EQ(viommu_dev_create(f->v, rid, &d), 0);
	}
	CHECK(viommu_dev_find(f->v, rid) == d);
	return done;
}

/* Attach PASIDs: the first needs the chunk table and a chunk, a PASID in
 * another chunk one more; NO_PASID needs nothing. */
static int sc_attach(struct fx *f, unsigned long n, int nested)
{
	int r;
	viommu_domain *d = nested ? dom_new(f, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED,
					    pt_of(VIOMMU_PT_VTD_SL, 4), &r)
				  : dom_new(f, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
					    pt_of(VIOMMU_PT_AMD_V1, 4), &r);
	viommu_dev *dev = dev_new(f, 8);
	if (!CHECK(d && dev))
		return 1;
	uint64_t m;
	struct viommu_stage1 s1, *s1p = NULL;
	viommu_pt *pt = NULL;
	if (nested) {
		/* Stage 1 in guest RAM at its own GPAs; stage 2 identity over
		 * RAM. */
		CHECK_EQ(viommu_domain_map(d, 0, 0, RAM_SIZE, PR | PW, &m), 0);
		pt = gpt_create(&f->gt, f->gm, pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
		if (!CHECK(pt != NULL))
			return 1;
		uint64_t mm;
		CHECK_EQ(viommu_pt_map(pt, 0x200000, 0x3000, PG, PR | PW | PU, &mm), 0);
		memset(&s1, 0, sizeof(s1));
		s1.size = sizeof(s1);
		s1.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0);
		s1.root = viommu_pt_root(pt);
		s1p = &s1;
		CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, s1p), 0);
		CHECK(translates_to(dev, NOPASID, 0x200010, 0x3010));
	} else {
		CHECK_EQ(viommu_domain_map(d, 0x200000, 0x3000, PG, PR | PW, &m), 0);
		CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);
	}
	static const uint32_t pas[] = { 5, 6, 200, VIOMMU_PASID_MAX };
	int done = 1;
	for (unsigned i = 0; i < sizeof(pas) / sizeof(pas[0]); i++) {
		arm(f, n);
		r = viommu_dev_attach(dev, pas[i], d, s1p);
		int ok = JUDGE(f, r);
		done &= ok;
		if (r) {
			CHECK_EQ(fault_of(dev, pas[i], 0x200010), VIOMMU_FAULT_BLOCKED);
			CHECK_EQ(viommu_dev_attach(dev, pas[i], d, s1p), 0);
		}
		CHECK(translates_to(dev, pas[i], 0x200010, 0x3010));
		CHECK(translates_to(dev, NOPASID, 0x200010, 0x3010));
	}
	/* Detach and the domain goes. */
	for (unsigned i = 0; i < sizeof(pas) / sizeof(pas[0]); i++)
		CHECK_EQ(viommu_dev_detach(dev, pas[i]), 0);
	CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	viommu_pt_destroy(pt);
	return done;
}

static int sc_attach_paging(struct fx *f, unsigned long n)
{
	return sc_attach(f, n, 0);
}
static int sc_attach_nested(struct fx *f, unsigned long n)
{
	return sc_attach(f, n, 1);
}

static int ev_count_cb(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	(void)d;
	uint64_t *c = ctx;
	c[0]++;
	c[1] += ev->type == VIOMMU_EVENT_MAP ? ev->size : 0;
	return 0;
}

/* Map a range that needs many new tables. */
static int sc_map(struct fx *f, unsigned long n, enum viommu_pt_format fmt, uint32_t levels)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_of(fmt, levels), &r);
	viommu_dev *dev = dev_new(f, 8);
	if (!CHECK(d && dev))
		return 1;
	CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);
	uint64_t ev[2] = { 0, 0 };
	viommu_notifier *nt = NULL;
	CHECK_EQ(viommu_notifier_add(d, ev_count_cb, ev, 0, &nt), 0);
	/* 4 KiB-aligned output: 4 KiB leaves across three level-2 entries. */
	/* Across a 512 GiB boundary: new tables at every level below the root. */
	const uint64_t iova = 0x7fffe00000ull, pa = 0x1000, size = 4 * MiB + 2 * PG;
	uint64_t done = 12345;
	arm(f, n);
	r = viommu_domain_map(d, iova, pa, size, PR | PW | PU, &done);
	int ok = JUDGE(f, r);
	if (r) {
		CHECK(done < size && done % PG == 0);
	} else {
		CHECK_EQ(done, size);
	}
	/* Exactly `done` bytes are mapped, and the notifier heard exactly
	 * them. */
	CHECK_EQ(ev[1], done);
	CHECK_EQ(ev[0], done ? 1 : 0);
	for (uint64_t off = 0; off < size; off += PG) {
		if (off < done)
			CHECK(translates_to(dev, NOPASID, iova + off + 8, pa + off + 8));
		else
			CHECK_EQ(fault_of(dev, NOPASID, iova + off + 8), VIOMMU_FAULT_NOT_PRESENT);
	}
	if (done) {
		CHECK(translates_to(dev, NOPASID, iova + done - 8, pa + done - 8));
		if (done < size)
			CHECK_EQ(fault_of(dev, NOPASID, iova + done), VIOMMU_FAULT_NOT_PRESENT);
	}
	/* The rest maps now. */
	if (r) {
		uint64_t more = 0;
		CHECK_EQ(viommu_domain_map(d, iova + done, pa + done, size - done, PR | PW | PU, &more), 0);
		CHECK_EQ(more, size - done);
		CHECK(translates_to(dev, NOPASID, iova + size - 8, pa + size - 8));
	}
	return ok;
}

static int sc_map_x86(struct fx *f, unsigned long n)
{
	return sc_map(f, n, VIOMMU_PT_X86_64, 4);
}
static int sc_map_amd(struct fx *f, unsigned long n)
{
	return sc_map(f, n, VIOMMU_PT_AMD_V1, 6);
}

/* Unmap 4 KiB out of a 2 MiB page: the split needs a table. */
static int sc_unmap_split(struct fx *f, unsigned long n)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				   pt_of(VIOMMU_PT_X86_64, 4), &r);
	viommu_dev *dev = dev_new(f, 8);
	if (!CHECK(d && dev))
		return 1;
	CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);
	uint64_t done;
	CHECK_EQ(viommu_domain_map(d, 0x40000000, 0x200000, 0x200000, PR | PW, &done), 0);
	CHECK(translates_to(dev, NOPASID, 0x40100010, 0x300010));
	arm(f, n);
	r = viommu_domain_unmap(d, 0x40100000, PG, &done);
	int ok = JUDGE(f, r);
	if (r) {
		/* The large page is left whole and mapped. */
		CHECK_EQ(done, 0);
		CHECK(translates_to(dev, NOPASID, 0x40100010, 0x300010));
		CHECK_EQ(viommu_domain_unmap(d, 0x40100000, PG, &done), 0);
	}
	CHECK_EQ(fault_of(dev, NOPASID, 0x40100010), VIOMMU_FAULT_NOT_PRESENT);
	CHECK(translates_to(dev, NOPASID, 0x40101010, 0x301010));
	CHECK(translates_to(dev, NOPASID, 0x400ff010, 0x2ff010));
	return ok;
}

/* A guest table with `count` 4 KiB pages from 1 MiB up, on scattered outputs. */
static viommu_pt *guest_table(struct fx *f, unsigned count)
{
	viommu_pt *pt = gpt_create(&f->gt, f->gm, pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0));
	if (!pt)
		return NULL;
	for (unsigned i = 0; i < count; i++) {
		uint64_t m;
		if (viommu_pt_map(pt, MiB + i * PG, (uint64_t)((i * 7u) % 1024) * PG, PG, PR | PW, &m))
			return NULL;
	}
	uint64_t m;
	if (viommu_pt_map(pt, 32 * MiB, 4 * MiB, 2 * MiB, PR, &m))
		return NULL;
	return pt;
}

static int sc_notifier_host(struct fx *f, unsigned long n)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				   pt_of(VIOMMU_PT_VTD_SL, 4), &r);
	if (!CHECK(d != NULL))
		return 1;
	uint64_t m;
	for (unsigned i = 0; i < 100; i++)
		CHECK_EQ(viommu_domain_map(d, MiB + i * 2 * PG, i * PG, PG, PR, &m), 0);
	static struct picture pic;
	memset(&pic, 0, sizeof(pic));
	viommu_notifier *nt = (viommu_notifier *)f;
	arm(f, n);
	r = viommu_notifier_add(d, pic_cb, &pic, 1, &nt);
	int ok = JUDGE(f, r);
	if (r) {
		CHECK(nt == NULL);
		unsigned long ev = pic.events;
		CHECK_EQ(viommu_domain_map(d, 0x100000000ull, 0, PG, PR, &m), 0);
		CHECK_EQ(pic.events, ev); /* not registered */
		return ok;
	}
	CHECK_EQ(pic.events, 100);
	CHECK_EQ(pic.pa[(MiB + 2 * PG) / PG], PG | 1);
	CHECK_EQ(viommu_domain_unmap(d, MiB, PG, &m), 0);
	CHECK_EQ(pic.events, 101);
	return ok;
}

/* Register on a guest-owned domain (the shadow of its mappings is built
 * then), alone or beside a notifier already there. */
static int sc_notifier_guest(struct fx *f, unsigned long n, int second)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_PAGING, 0, pt_of(VIOMMU_PT_VTD_SL, 4), &r);
	viommu_pt *pt = guest_table(f, 300);
	if (!CHECK(d && pt))
		return 1;
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	static struct picture first, pic;
	memset(&first, 0, sizeof(first));
	memset(&pic, 0, sizeof(pic));
	viommu_notifier *n1 = NULL, *nt = NULL;
	if (second) {
		CHECK_EQ(viommu_notifier_add(d, pic_cb, &first, 1, &n1), 0);
		/* The guest changes a little before the second comes. */
		uint64_t m;
		CHECK_EQ(viommu_pt_unmap(pt, MiB, 10 * PG, &m), 0);
		CHECK_EQ(viommu_pt_map(pt, 3 * MiB, 0x5000, PG, PR, &m), 0);
	}
	arm(f, n);
	r = viommu_notifier_add(d, pic_cb, &pic, 1, &nt);
	int ok = JUDGE(f, r);
	if (r) {
		CHECK(nt == NULL);
		/* Not registered: hears nothing of what follows. */
		unsigned long ev = pic.events;
		uint64_t m;
		CHECK_EQ(viommu_pt_unmap(pt, MiB + 20 * PG, PG, &m), 0);
		CHECK_EQ(viommu_invalidate_range(d, 0, 1, MiB + 20 * PG, PG), 0);
		CHECK_EQ(pic.events, ev);
		CHECK_EQ(pic.outside, 0);
		if (second) {
			/* The first is still in step once the guest invalidates. */
			CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 64 * MiB), 0);
			CHECK(pic_matches(&first, pt));
		}
	} else {
		CHECK(pic_matches(&pic, pt));
		if (second) {
			CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 64 * MiB), 0);
			CHECK(pic_matches(&first, pt));
		}
	}
	viommu_notifier_remove(nt);
	viommu_notifier_remove(n1);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	viommu_pt_destroy(pt);
	CHECK_EQ(f->gt.live, 0);
	return ok;
}

static int sc_notifier_guest1(struct fx *f, unsigned long n)
{
	return sc_notifier_guest(f, n, 0);
}
static int sc_notifier_guest2(struct fx *f, unsigned long n)
{
	return sc_notifier_guest(f, n, 1);
}

/* The guest changes a lot, then invalidates: the notifier's sync. */
static int sc_guest_sync(struct fx *f, unsigned long n)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_PAGING, 0, pt_of(VIOMMU_PT_VTD_SL, 4), &r);
	viommu_pt *pt = guest_table(f, 300);
	if (!CHECK(d && pt))
		return 1;
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	static struct picture pic;
	memset(&pic, 0, sizeof(pic));
	viommu_notifier *nt = NULL;
	CHECK_EQ(viommu_notifier_add(d, pic_cb, &pic, 1, &nt), 0);
	CHECK(pic_matches(&pic, pt));
	uint64_t m;
	/* 150 move, 50 go, 150 new in a fresh region, the large page splits. */
	for (unsigned i = 0; i < 150; i++) {
		CHECK_EQ(viommu_pt_unmap(pt, MiB + i * PG, PG, &m), 0);
		CHECK_EQ(viommu_pt_map(pt, MiB + i * PG, (uint64_t)(2000 + i) * PG, PG, PR | PW, &m), 0);
	}
	CHECK_EQ(viommu_pt_unmap(pt, MiB + 150 * PG, 50 * PG, &m), 0);
	for (unsigned i = 0; i < 150; i++)
		CHECK_EQ(viommu_pt_map(pt, 40 * MiB + i * 3 * PG, (uint64_t)(3000 + i) * PG, PG, PR, &m), 0);
	CHECK_EQ(viommu_pt_unmap(pt, 32 * MiB + 5 * PG, PG, &m), 0);

	arm(f, n);
	r = viommu_invalidate_range(d, 0, 1, 0, 64 * MiB);
	int ok = JUDGE(f, r);
	CHECK_EQ(pic.outside, 0);
	if (!r)
		CHECK(pic_matches(&pic, pt));
	/* Whatever was missed comes with the next invalidation. */
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 64 * MiB), 0);
	if (!CHECK(pic_matches(&pic, pt)))
		fprintf(stderr, "    (after a failed sync and a retry)\n");
	/* And a fresh replay agrees. */
	static struct picture again;
	memset(&again, 0, sizeof(again));
	viommu_notifier *n2 = NULL;
	CHECK_EQ(viommu_notifier_add(d, pic_cb, &again, 1, &n2), 0);
	CHECK(pic_matches(&again, pt));
	viommu_notifier_remove(nt);
	viommu_notifier_remove(n2);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	viommu_pt_destroy(pt);
	CHECK_EQ(f->gt.live, 0);
	return ok;
}

/* Exclusion ranges and the bitmap allocate their vector on demand. */
static int sc_exclude(struct fx *f, unsigned long n)
{
	int r;
	viommu_domain *d = dom_new(f, VIOMMU_DOMAIN_IDENTITY, 0, pt_of(0, 0), &r);
	viommu_dev *dev = dev_new(f, 8);
	if (!CHECK(d && dev))
		return 1;
	CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);
	/* Three far-apart ranges: a new part of the vector each. */
	static const uint64_t at[] = { 0x5000, 0x12340000000ull, 0xfffff0000000ull };
	int ok = 1;
	for (unsigned i = 0; i < 3; i++) {
		arm(f, n);
		r = viommu_exclude_range(f->v, at[i], 3 * PG);
		ok &= JUDGE(f, r);
		if (r)
			CHECK_EQ(viommu_exclude_range(f->v, at[i], 3 * PG), 0);
		CHECK_EQ(fault_of(dev, NOPASID, at[i] + PG), VIOMMU_FAULT_EXCLUDED);
		CHECK_EQ(fault_of(dev, NOPASID, at[i] + 3 * PG), VIOMMU_FAULT_NONE);
	}
	uint8_t bm[64];
	memset(bm, 0x11, sizeof(bm));
	arm(f, n);
	r = viommu_set_exclusion_bitmap(f->v, bm, sizeof(bm) * 8);
	ok &= JUDGE(f, r);
	if (r)
		CHECK_EQ(viommu_set_exclusion_bitmap(f->v, bm, sizeof(bm) * 8), 0);
	CHECK_EQ(fault_of(dev, NOPASID, 4 * PG), VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(fault_of(dev, NOPASID, 5 * PG), VIOMMU_FAULT_NONE);
	CHECK_EQ(viommu_unexclude_range(f->v, 0, 512 * PG), 0);
	CHECK_EQ(fault_of(dev, NOPASID, 4 * PG), VIOMMU_FAULT_NONE);
	return ok;
}

/* ------------------------------------------------------------------------ */

static void run(const char *name, int (*fn)(struct fx *, unsigned long), int with_instance)
{
	unsigned long n;
	for (n = 1; n <= MAX_POINTS; n++) {
		struct fx f;
		core_case("%s: fail allocation %lu", name, n);
		if (!CHECK_EQ(fx_init(&f, with_instance), 0))
			return;
		int done = fn(&f, n);
		fx_fini_at(__LINE__, &f);
		if (done)
			break;
	}
	core_case("%s", name);
	CHECK(n <= MAX_POINTS);
	printf("%-22s %4lu failure points, then success\n", name, n - 1);
}

int main(void)
{
	run("viommu_create", sc_create, 0);
	run("domain paging x86", sc_dom_x86, 1);
	run("domain paging vtd", sc_dom_vtd, 1);
	run("domain paging amd", sc_dom_amd, 1);
	run("domain paging guest", sc_dom_guest, 1);
	run("domain nested host", sc_dom_nested_host, 1);
	run("domain nested guest", sc_dom_nested_guest, 1);
	run("domain identity", sc_dom_identity, 1);
	run("dev create", sc_dev, 1);
	run("attach pasids", sc_attach_paging, 1);
	run("attach pasids nested", sc_attach_nested, 1);
	run("map x86", sc_map_x86, 1);
	run("map amd", sc_map_amd, 1);
	run("unmap split", sc_unmap_split, 1);
	run("notifier host replay", sc_notifier_host, 1);
	run("notifier guest", sc_notifier_guest1, 1);
	run("notifier guest second", sc_notifier_guest2, 1);
	run("guest notifier sync", sc_guest_sync, 1);
	run("exclusion", sc_exclude, 1);
	core_case("%s", "");
	return core_check_done("test_core_allocfail");
}
