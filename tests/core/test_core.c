/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the IOMMU core through its public API (viommu/iommu.h,
 * viommu/dma.h): instances, domain types, devices and PASIDs, guest-owned and
 * nested translation with its reference counts and fault stages, exclusion,
 * the IOTLB and its invalidation, map notifiers, the DMA API, and the fault
 * callback's sequence numbers.
 *
 * Guest memory of every instance here: region 0 at guest address 0 (16 MiB)
 * and region 1 right after it (1 MiB, another host buffer), nothing above.
 * Guest-owned tables are built with a viommu_pt whose table allocator hands
 * out pages of region 0 (core_guest.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/fault.h>
#include <viommu/iommu.h>
#include <viommu/mem.h>
#include <viommu/pagetable.h>

#include "core_alloc.h"
#include "core_check.h"
#include "core_guest.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

#define RAM0_GPA 0ull
#define RAM0_SIZE (16 * MiB)
#define RAM1_GPA (16 * MiB)
#define RAM1_SIZE (1 * MiB)

/* Pages of region 0 for guest tables: single-stage ones and nested stage 1. */
#define GT_GPA (8 * MiB)
#define GT_SIZE (2 * MiB)
#define S1T_HPA (10 * MiB)
#define S1T_SIZE (2 * MiB)

#define R VIOMMU_ACCESS_READ
#define W VIOMMU_ACCESS_WRITE
#define X VIOMMU_ACCESS_EXEC
#define P VIOMMU_ACCESS_PRIV
#define PR VIOMMU_PERM_READ
#define PW VIOMMU_PERM_WRITE
#define PX VIOMMU_PERM_EXEC
#define PU VIOMMU_PERM_USER
#define NOPASID VIOMMU_NO_PASID

/* ------------------------------------------------------------------------ */
/* The environment: one instance over two RAM regions                      */

struct flog {
	uint64_t n;        /* faults seen */
	uint64_t bad_seq;  /* records whose seq was not the previous one + 1 */
	struct viommu_fault_record last;
};

static void flog_cb(void *ctx, const struct viommu_fault_record *rec)
{
	struct flog *f = ctx;
	if (rec->seq != f->n + 1)
		f->bad_seq++;
	f->n++;
	f->last = *rec;
}

struct env {
	struct core_alloc ca;
	struct flog fl;
	unsigned stale_logs; /* "stale IOTLB hit" messages (VIOMMU_DEBUG_VERIFY_IOTLB) */
	uint8_t *ram0, *ram1;
	viommu *v;
	viommu_mem *gm;   /* guest-physical view of region 0, for building tables */
	struct gtab gt;   /* single-stage guest tables, GT_GPA.. */
};

static void env_log(void *ctx, enum viommu_log_level lvl, const char *msg)
{
	struct env *e = ctx;
	(void)lvl;
	if (strstr(msg, "stale IOTLB hit"))
		e->stale_logs++;
}

static int env_init(struct env *e, uint32_t iotlb_entries)
{
	memset(e, 0, sizeof(*e));
	core_alloc_init(&e->ca);
	e->ram0 = aligned_alloc(4096, RAM0_SIZE);
	e->ram1 = aligned_alloc(4096, RAM1_SIZE);
	if (!e->ram0 || !e->ram1)
		return -ENOMEM;
	memset(e->ram0, 0, RAM0_SIZE);
	memset(e->ram1, 0, RAM1_SIZE);
	struct viommu_mem_region regs[2] = {
		{ .gpa = RAM0_GPA, .size = RAM0_SIZE, .host = e->ram0 },
		{ .gpa = RAM1_GPA, .size = RAM1_SIZE, .host = e->ram1 },
	};
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = regs;
	c.mem.nr_regions = 2;
	c.fault = flog_cb;
	c.fault_ctx = &e->fl;
	c.iotlb_entries = iotlb_entries;
	c.log = env_log;
	c.log_ctx = e;
	int r = viommu_create(&c, &e->ca.hooks, &e->v);
	if (r)
		return r;
	e->gm = gmem_one(RAM0_GPA, RAM0_SIZE, e->ram0);
	if (!e->gm)
		return -ENOMEM;
	return gtab_init(&e->gt, e->ram0 + GT_GPA, GT_GPA, GT_SIZE);
}

static void env_fini_at(int line, struct env *e)
{
	struct viommu_stats st;
	viommu_get_stats(e->v, &st);
	CHECK_EQ_AT(line, st.faults, e->fl.n);
	CHECK_EQ_AT(line, e->fl.bad_seq, 0);
	viommu_destroy(e->v);
	e->v = NULL;
	CHECK_EQ_AT(line, e->ca.live, 0);
	CHECK_EQ_AT(line, e->ca.live_bytes, 0);
	CHECK_EQ_AT(line, e->ca.bad_frees, 0);
	CHECK_EQ_AT(line, e->ca.bad_args, 0);
	viommu_mem_destroy(e->gm);
	gtab_fini(&e->gt);
	free(e->ram0);
	free(e->ram1);
}
#define env_fini(e) env_fini_at(__LINE__, e)

/* The last translation a helper made, for checks beyond the helper's. */
static struct viommu_translation T;

/* Translate and check that a fault (and only a fault) reached the callback
 * exactly once, with the record the call returned. */
static int xl_at(int line, struct env *e, viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t acc)
{
	uint64_t n0 = e->fl.n;
	memset(&T, 0xcc, sizeof(T));
	int r = viommu_translate(dev, pasid, iova, acc, &T);
	if (r == -EFAULT) {
		CHECK_EQ_AT(line, e->fl.n, n0 + 1);
		CHECK_EQ_AT(line, e->fl.last.seq, T.fault.seq);
		CHECK_EQ_AT(line, e->fl.last.reason, T.fault.reason);
		CHECK_EQ_AT(line, e->fl.last.addr, iova);
		CHECK_EQ_AT(line, e->fl.last.pasid, pasid);
		CHECK_EQ_AT(line, e->fl.last.access, acc);
		CHECK_EQ_AT(line, T.fault.addr, iova);
		CHECK_EQ_AT(line, T.fault.pasid, pasid);
	} else {
		CHECK_EQ_AT(line, e->fl.n, n0);
	}
	return r;
}

static void xok_at(int line, struct env *e, viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t acc,
		   uint64_t oaddr)
{
	int r = xl_at(line, e, dev, pasid, iova, acc);
	if (!CHECK_EQ_AT(line, r, 0)) {
		if (r == -EFAULT)
			fprintf(stderr, "    (fault %s, stage %u, level %u)\n", viommu_fault_reason_name(T.fault.reason),
				T.fault.stage, T.fault.level);
		return;
	}
	CHECK_EQ_AT(line, T.oaddr, oaddr);
	CHECK_AT(line, T.len >= 1);
}

static void xfault_at(int line, struct env *e, viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t acc,
		      enum viommu_fault_reason why)
{
	int r = xl_at(line, e, dev, pasid, iova, acc);
	if (!CHECK_EQ_AT(line, r, -EFAULT)) {
		if (!r)
			fprintf(stderr, "    (translated to %#llx)\n", (unsigned long long)T.oaddr);
		return;
	}
	if (!CHECK_EQ_AT(line, T.fault.reason, why))
		fprintf(stderr, "    (expected %s, got %s)\n", viommu_fault_reason_name(why),
			viommu_fault_reason_name(T.fault.reason));
}

#define XOK(e, dev, pasid, iova, acc, oaddr) xok_at(__LINE__, e, dev, pasid, iova, acc, oaddr)
#define XFAULT(e, dev, pasid, iova, acc, why) xfault_at(__LINE__, e, dev, pasid, iova, acc, why)

static viommu_domain *dom_new_at(int line, struct env *e, enum viommu_domain_type type, uint32_t flags,
				 struct viommu_pt_config pt)
{
	struct viommu_domain_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.type = type;
	c.flags = flags;
	c.pt = pt;
	viommu_domain *d = NULL;
	CHECK_EQ_AT(line, viommu_domain_create(e->v, &c, &d), 0);
	CHECK_AT(line, d != NULL);
	return d;
}
#define DOM(e, type, flags, pt) dom_new_at(__LINE__, e, type, flags, pt)

static struct viommu_pt_config no_pt(void)
{
	struct viommu_pt_config c;
	memset(&c, 0, sizeof(c));
	return c;
}

static viommu_dev *dev_new_at(int line, struct env *e, uint8_t bus, uint8_t devfn)
{
	struct viommu_rid rid = { .segment = 0, .bus = bus, .devfn = devfn };
	viommu_dev *d = NULL;
	CHECK_EQ_AT(line, viommu_dev_create(e->v, rid, &d), 0);
	CHECK_AT(line, d != NULL);
	return d;
}
#define DEV(e, bus, devfn) dev_new_at(__LINE__, e, bus, devfn)

static void map_at(int line, viommu_domain *d, uint64_t iova, uint64_t pa, uint64_t size, uint32_t prot)
{
	uint64_t done = 1234;
	CHECK_EQ_AT(line, viommu_domain_map(d, iova, pa, size, prot, &done), 0);
	CHECK_EQ_AT(line, done, size);
}
static void unmap_at(int line, viommu_domain *d, uint64_t iova, uint64_t size)
{
	uint64_t done = 1234;
	CHECK_EQ_AT(line, viommu_domain_unmap(d, iova, size, &done), 0);
	CHECK_EQ_AT(line, done, size);
}
#define MAP(d, iova, pa, size, prot) map_at(__LINE__, d, iova, pa, size, prot)
#define UNMAP(d, iova, size) unmap_at(__LINE__, d, iova, size)

static void ptmap_at(int line, viommu_pt *pt, uint64_t iova, uint64_t pa, uint64_t size, uint32_t prot)
{
	uint64_t done = 1234;
	CHECK_EQ_AT(line, viommu_pt_map(pt, iova, pa, size, prot, &done), 0);
	CHECK_EQ_AT(line, done, size);
}
static void ptunmap_at(int line, viommu_pt *pt, uint64_t iova, uint64_t size)
{
	uint64_t done = 1234;
	CHECK_EQ_AT(line, viommu_pt_unmap(pt, iova, size, &done), 0);
	CHECK_EQ_AT(line, done, size);
}
#define PTMAP(pt, iova, pa, size, prot) ptmap_at(__LINE__, pt, iova, pa, size, prot)
#define PTUNMAP(pt, iova, size) ptunmap_at(__LINE__, pt, iova, size)

#define ATTACH(dev, pasid, d, s1) CHECK_EQ(viommu_dev_attach(dev, pasid, d, s1), 0)

/* ------------------------------------------------------------------------ */
/* Instances                                                                */

static void test_create(void)
{
	core_case("create");
	struct core_alloc ca;
	core_alloc_init(&ca);
	uint8_t *ram = aligned_alloc(4096, 2 * MiB);
	CHECK(ram != NULL);
	if (!ram)
		return;
	struct viommu_mem_region regs[VIOMMU_MEM_MAX_REGIONS + 1];
	memset(regs, 0, sizeof(regs));
	for (unsigned i = 0; i <= VIOMMU_MEM_MAX_REGIONS; i++) {
		regs[i].gpa = (uint64_t)i * 4096;
		regs[i].size = 4096;
		regs[i].host = ram + i * 4096;
	}
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = regs;
	c.mem.nr_regions = 2;
	viommu *v = NULL;

	CHECK_EQ(viommu_create(NULL, &ca.hooks, &v), -EINVAL);
	CHECK_EQ(viommu_create(&c, &ca.hooks, NULL), -EINVAL);
	c.size = sizeof(c) - 1;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	c.size = 0;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	c.size = sizeof(c);

	/* The memory configuration is validated as viommu_mem_create does. */
	c.mem.size = 0;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	c.mem.size = sizeof(c.mem);
	c.mem.nr_regions = VIOMMU_MEM_MAX_REGIONS + 1;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	c.mem.nr_regions = VIOMMU_MEM_MAX_REGIONS;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), 0);
	viommu_destroy(v);
	v = NULL;
	c.mem.nr_regions = 2;
	regs[1].size = 0;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	regs[1].size = 4096;
	regs[1].host = NULL;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	regs[1].host = ram + 4096;
	regs[1].gpa = 0x800; /* overlaps region 0 */
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	regs[1].gpa = ~0ull - 0xfff + 0x10; /* wraps past 2^64 */
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	regs[1].gpa = 4096;
	c.mem.regions = NULL;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), -EINVAL);
	c.mem.regions = regs;

	/* Bad allocation hooks. */
	struct viommu_alloc bad = ca.hooks;
	bad.size = 0;
	CHECK_EQ(viommu_create(&c, &bad, &v), -EINVAL);
	bad = ca.hooks;
	bad.alloc = NULL;
	CHECK_EQ(viommu_create(&c, &bad, &v), -EINVAL);
	bad = ca.hooks;
	bad.free = NULL;
	CHECK_EQ(viommu_create(&c, &bad, &v), -EINVAL);
	CHECK_EQ(ca.live, 0);

	/* No memory at all is a valid (if useless) instance. */
	c.mem.nr_regions = 0;
	c.mem.regions = NULL;
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), 0);
	CHECK(viommu_get_mem(v) != NULL);
	viommu_destroy(v);
	c.mem.regions = regs;
	c.mem.nr_regions = 2;

	/* Cache sizes are rounded and clamped, never refused. */
	static const uint32_t sizes[] = { 0, 1, 63, 64, 100, 4096, 5000, 1u << 20, (1u << 20) + 1, 0xffffffffu };
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		core_case("create iotlb_entries=%u", sizes[i]);
		c.iotlb_entries = sizes[i];
		c.walk_cache_entries = sizes[i] > 4096 ? 0 : sizes[i];
		v = NULL;
		CHECK_EQ(viommu_create(&c, &ca.hooks, &v), 0);
		CHECK(v != NULL);
		struct viommu_stats st;
		memset(&st, 0xff, sizeof(st));
		viommu_get_stats(v, &st);
		CHECK_EQ(st.translations, 0);
		CHECK_EQ(st.faults, 0);
		viommu_destroy(v);
		CHECK_EQ(ca.live, 0);
	}
	core_case("create");
	c.iotlb_entries = 0;
	c.walk_cache_entries = 0;

	/* The memory interface is the configured guest memory. */
	CHECK_EQ(viommu_create(&c, &ca.hooks, &v), 0);
	viommu_mem *m = viommu_get_mem(v);
	CHECK(m != NULL);
	ram[4096 + 0x123] = 0x5a;
	uint8_t b = 0;
	CHECK_EQ(viommu_mem_read(m, 4096 + 0x123, &b, 1), 0);
	CHECK_EQ(b, 0x5a);
	CHECK_EQ(viommu_mem_read(m, 3 * 4096, &b, 1), -EFAULT);
	CHECK(viommu_get_mem(NULL) == NULL);
	viommu_destroy(v);
	viommu_destroy(NULL);
	CHECK_EQ(ca.live, 0);
	CHECK_EQ(ca.bad_frees, 0);
	CHECK(viommu_version() != NULL);
	free(ram);
}

static int ev_nop(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	(void)ctx;
	(void)d;
	(void)ev;
	return 0;
}

/* Destroy an instance with one of everything still in it. */
static void test_destroy_live(void)
{
	struct env e;
	core_case("destroy with live objects");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *blk = DOM(&e, VIOMMU_DOMAIN_BLOCKED, 0, no_pt());
	viommu_domain *idm = DOM(&e, VIOMMU_DOMAIN_IDENTITY, 0, no_pt());
	viommu_domain *hp = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
	viommu_domain *gp = DOM(&e, VIOMMU_DOMAIN_PAGING, 0, pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0));
	viommu_domain *ns = DOM(&e, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED,
				pt_cfg(VIOMMU_PT_AMD_V1, 4, 0, 0));
	viommu_pt *gpt = gpt_create(&e.gt, e.gm, pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0));
	CHECK(gpt != NULL);
	PTMAP(gpt, 0x1000, 0x2000, 0x3000, PR | PW);
	CHECK_EQ(viommu_domain_set_root(gp, viommu_pt_root(gpt)), 0);
	MAP(hp, 0x400000, 0x200000, 0x201000, PR | PW | PU);
	MAP(ns, 0x0, 0x0, 4 * MiB, PR | PW);
	viommu_dev *d1 = DEV(&e, 0, 0x08), *d2 = DEV(&e, 1, 0x10), *d3 = DEV(&e, 2, 0x00);
	ATTACH(d1, NOPASID, hp, NULL);
	ATTACH(d1, 3, gp, NULL);
	ATTACH(d1, 700, idm, NULL);
	ATTACH(d2, 0, blk, NULL);
	ATTACH(d2, VIOMMU_PASID_MAX, hp, NULL);
	struct viommu_stage1 s1;
	memset(&s1, 0, sizeof(s1));
	s1.size = sizeof(s1);
	s1.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0);
	s1.root = 0x100000;
	ATTACH(d3, 1, ns, &s1);
	(void)d3;
	viommu_notifier *n1 = NULL, *n2 = NULL, *n3 = NULL;
	CHECK_EQ(viommu_notifier_add(hp, ev_nop, NULL, 1, &n1), 0);
	CHECK_EQ(viommu_notifier_add(gp, ev_nop, NULL, 1, &n2), 0);
	CHECK_EQ(viommu_notifier_add(ns, ev_nop, NULL, 0, &n3), 0);
	CHECK_EQ(viommu_exclude_range(e.v, 0x1000000, 0x10000), 0);
	CHECK_EQ(viommu_exclude_range(e.v, 0xfff000000000ull, 0x3000), 0);
	uint8_t bm[4] = { 0, 0, 0xf0, 0x80 }; /* pages 20-23 and 31 */
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, bm, 32), 0);
	XOK(&e, d1, NOPASID, 0x400010, R, 0x200010);
	XOK(&e, d1, 3, 0x1008, R | P, 0x2008);
	XFAULT(&e, d2, 0, 0x1000, R, VIOMMU_FAULT_BLOCKED);
	viommu_pt_destroy(gpt);
	CHECK_EQ(e.gt.live, 0);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Domains                                                                  */

static void test_domain_create(void)
{
	struct env e;
	core_case("domain create");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	struct viommu_domain_config c;
	viommu_domain *d = NULL;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.type = VIOMMU_DOMAIN_IDENTITY;
	CHECK_EQ(viommu_domain_create(NULL, &c, &d), -EINVAL);
	CHECK_EQ(viommu_domain_create(e.v, NULL, &d), -EINVAL);
	CHECK_EQ(viommu_domain_create(e.v, &c, NULL), -EINVAL);
	c.size = sizeof(c) - 1;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.size = sizeof(c);
	c.type = 0;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.type = 5;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.type = VIOMMU_DOMAIN_BLOCKED;
	c.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.type = VIOMMU_DOMAIN_PAGING;
	c.flags = 1u << 1;
	c.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
	c.pt = pt_cfg(VIOMMU_PT_X86_64, 3, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.pt = pt_cfg(VIOMMU_PT_X86_64, 4, VIOMMU_PT_F_VTD_EXEC, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.pt = pt_cfg(VIOMMU_PT_AMD_V1, 7, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.pt = pt_cfg(9, 4, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	c.type = VIOMMU_DOMAIN_NESTED;
	c.pt = pt_cfg(VIOMMU_PT_VTD_SL, 2, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), -EINVAL);
	CHECK_EQ(e.ca.live_bytes > 0, 1);

	/* The table configuration comes back with what was granted. */
	c.type = VIOMMU_DOMAIN_PAGING;
	c.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
	c.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), 0);
	CHECK_EQ(c.pt.ias, 48);
	CHECK_EQ(c.pt.pgsize_bitmap, VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G);
	viommu_domain *d1 = d;
	c.pt = pt_cfg(VIOMMU_PT_VTD_SL, 3, 0, VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M);
	c.flags = 0;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), 0);
	CHECK_EQ(c.pt.ias, 39);
	CHECK_EQ(c.pt.pgsize_bitmap, VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M);
	viommu_domain *d2 = d;
	c.type = VIOMMU_DOMAIN_BLOCKED;
	c.flags = 0;
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), 0);
	viommu_domain *d3 = d;

	/* Ids: non-zero, unique, never reused. */
	uint32_t id1 = viommu_domain_id(d1), id2 = viommu_domain_id(d2), id3 = viommu_domain_id(d3);
	CHECK(id1 && id2 && id3);
	CHECK(id1 != id2 && id2 != id3 && id1 != id3);
	CHECK_EQ(viommu_domain_destroy(d3), 0);
	CHECK_EQ(viommu_domain_create(e.v, &c, &d), 0);
	CHECK(viommu_domain_id(d) != id1 && viommu_domain_id(d) != id2 && viommu_domain_id(d) != id3);
	CHECK_EQ(viommu_domain_id(NULL), 0);
	CHECK_EQ(viommu_domain_destroy(NULL), -EINVAL);

	/* Which calls fit which domain. */
	uint64_t done = 77;
	CHECK_EQ(viommu_domain_set_root(d1, 0x1000), -EINVAL);  /* host-owned */
	CHECK_EQ(viommu_domain_set_root(d, 0x1000), -EINVAL);   /* blocked */
	CHECK_EQ(viommu_domain_set_root(NULL, 0x1000), -EINVAL);
	CHECK_EQ(viommu_domain_set_root(d2, 0x1000), 0);
	CHECK_EQ(viommu_domain_map(d2, 0, 0, 4096, PR, &done), -EINVAL); /* guest-owned */
	CHECK_EQ(done, 0);
	done = 77;
	CHECK_EQ(viommu_domain_map(d, 0, 0, 4096, PR, &done), -EINVAL); /* blocked */
	CHECK_EQ(done, 0);
	CHECK_EQ(viommu_domain_unmap(d2, 0, 4096, &done), -EINVAL);
	CHECK_EQ(viommu_domain_map(d1, 0, 0, 4096, PR, NULL), -EINVAL);

	/* Map errors of the table come through. */
	done = 77;
	CHECK_EQ(viommu_domain_map(d1, 0x1800, 0, 4096, PR, &done), -EINVAL);
	CHECK_EQ(done, 0);
	CHECK_EQ(viommu_domain_map(d1, 0x1000, 0, 0, PR, &done), -EINVAL);
	CHECK_EQ(viommu_domain_map(d1, 0x1000, 0, 4096, 0, &done), -EINVAL);
	CHECK_EQ(viommu_domain_map(d1, 0x1000, 0, 4096, PW, &done), -EINVAL); /* x86: no write-only */
	CHECK_EQ(viommu_domain_map(d1, 0x1000, 0, 4096, 1u << 7, &done), -EINVAL);
	CHECK_EQ(viommu_domain_map(d1, 1ull << 47, 0, 4096, PR, &done), -EINVAL); /* non-canonical */
	MAP(d1, 0x1000, 0x5000, 0x3000, PR);
	done = 77;
	CHECK_EQ(viommu_domain_map(d1, 0x0, 0x9000, 0x3000, PR, &done), -EEXIST);
	CHECK_EQ(done, 0x1000);
	UNMAP(d1, 0x0, 0x1000);
	/* Unmapping holes is fine. */
	UNMAP(d1, 0x100000, 0x200000);
	env_fini(&e);
}

static void test_blocked_identity(void)
{
	struct env e;
	core_case("blocked and identity");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_dev *dev = DEV(&e, 3, 0x21);
	/* A new device blocks every PASID. */
	XFAULT(&e, dev, NOPASID, 0x1000, R, VIOMMU_FAULT_BLOCKED);
	XFAULT(&e, dev, 0, 0x1000, R, VIOMMU_FAULT_BLOCKED);
	XFAULT(&e, dev, VIOMMU_PASID_MAX, 0x1000, W, VIOMMU_FAULT_BLOCKED);

	viommu_domain *blk = DOM(&e, VIOMMU_DOMAIN_BLOCKED, 0, no_pt());
	ATTACH(dev, NOPASID, blk, NULL);
	ATTACH(dev, 9, blk, NULL);
	static const uint32_t accs[] = { R, W, X, R | W, R | P, W | P, X | P, R | W | X | P, 0 };
	for (unsigned i = 0; i < sizeof(accs) / sizeof(accs[0]); i++) {
		core_case("blocked access %#x", accs[i]);
		XFAULT(&e, dev, NOPASID, 0x1000 + i * 0x123, accs[i], VIOMMU_FAULT_BLOCKED);
		CHECK_EQ(T.fault.stage, 0);
		CHECK_EQ(T.fault.rid.bus, 3);
		CHECK_EQ(T.fault.rid.devfn, 0x21);
		CHECK_EQ(T.fault.rid.segment, 0);
		XFAULT(&e, dev, 9, 0xfff000 + i, accs[i], VIOMMU_FAULT_BLOCKED);
	}
	core_case("blocked dma");
	uint8_t buf[64];
	size_t done = 99;
	struct viommu_fault_record f;
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x2000, buf, sizeof(buf), 0, &done, &f), -EFAULT);
	CHECK_EQ(done, 0);
	CHECK_EQ(f.reason, VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(f.seq, e.fl.n);

	core_case("identity");
	viommu_domain *idm = DOM(&e, VIOMMU_DOMAIN_IDENTITY, 0, no_pt());
	ATTACH(dev, NOPASID, idm, NULL);
	XOK(&e, dev, NOPASID, 0x1234, R, 0x1234);
	CHECK(T.perms & PR);
	CHECK(T.perms & PW);
	CHECK(T.len >= 0x1000 - 0x234);
	XOK(&e, dev, NOPASID, 0xdeadbeef000ull, W, 0xdeadbeef000ull);
	XOK(&e, dev, NOPASID, 0xfffffffffffff000ull, R | W | X, 0xfffffffffffff000ull);
	XOK(&e, dev, NOPASID, 0x5555, X, 0x5555);
	XFAULT(&e, dev, 9, 0x1234, R, VIOMMU_FAULT_BLOCKED); /* PASID 9 still blocked */
	/* DMA through identity lands at the same guest address. */
	memset(buf, 0x3c, sizeof(buf));
	CHECK_EQ(viommu_dma_write(dev, NOPASID, 0x7ff0, buf, sizeof(buf), 0, &done, NULL), 0);
	CHECK_EQ(done, sizeof(buf));
	CHECK_EQ(e.ram0[0x7ff0], 0x3c);
	CHECK_EQ(e.ram0[0x7ff0 + 63], 0x3c);
	CHECK_EQ(e.ram0[0x7ff0 + 64], 0);
	/* Exclusions still apply. */
	CHECK_EQ(viommu_exclude_range(e.v, 0x5000, 0x1000), 0);
	XFAULT(&e, dev, NOPASID, 0x5abc, R, VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(T.fault.stage, 0);
	XFAULT(&e, dev, NOPASID, 0x5000, W, VIOMMU_FAULT_EXCLUDED);
	XOK(&e, dev, NOPASID, 0x4fff, R, 0x4fff);
	CHECK_EQ(T.len, 1); /* the page behind is excluded: at most to the page end */
	XOK(&e, dev, NOPASID, 0x6000, R, 0x6000);
	CHECK_EQ(viommu_unexclude_range(e.v, 0x5000, 0x1000), 0);
	XOK(&e, dev, NOPASID, 0x5abc, R, 0x5abc);
	/* Identity output outside guest memory: the DMA has no target. */
	done = 99;
	memset(&f, 0, sizeof(f));
	uint64_t n0 = e.fl.n;
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x40000000, buf, 16, 0, &done, &f), -EFAULT);
	CHECK_EQ(done, 0);
	CHECK_EQ(f.reason, VIOMMU_FAULT_DMA_TARGET);
	CHECK_EQ(f.stage, 0);
	CHECK_EQ(e.fl.n, n0 + 1);
	CHECK_EQ(e.fl.last.seq, f.seq);
	CHECK_EQ(viommu_domain_destroy(blk), -EBUSY);
	CHECK_EQ(viommu_dev_detach(dev, 9), 0);
	CHECK_EQ(viommu_domain_destroy(blk), 0);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Paging, host-owned: formats and permissions                              */

struct fmtcase {
	const char *name;
	enum viommu_pt_format fmt;
	uint32_t levels, flags;
};

static const struct fmtcase fmtcases[] = {
	{ "x86-4", VIOMMU_PT_X86_64, 4, 0 },
	{ "x86-4-nxe", VIOMMU_PT_X86_64, 4, VIOMMU_PT_F_NXE },
	{ "x86-5-nxe-ad", VIOMMU_PT_X86_64, 5, VIOMMU_PT_F_NXE | VIOMMU_PT_F_AD },
	{ "vtd-3", VIOMMU_PT_VTD_SL, 3, 0 },
	{ "vtd-4-x", VIOMMU_PT_VTD_SL, 4, VIOMMU_PT_F_VTD_EXEC },
	{ "vtd-5-ad", VIOMMU_PT_VTD_SL, 5, VIOMMU_PT_F_AD },
	{ "amd-3", VIOMMU_PT_AMD_V1, 3, 0 },
	{ "amd-4-ad", VIOMMU_PT_AMD_V1, 4, VIOMMU_PT_F_AD },
	{ "amd-6", VIOMMU_PT_AMD_V1, 6, 0 },
};

/* What a leaf mapped with `prot` grants, per the format's encoding. */
static uint32_t granted(const struct fmtcase *fc, uint32_t prot)
{
	uint32_t p = 0;
	switch (fc->fmt) {
	case VIOMMU_PT_X86_64:
		p = PR | (prot & PW) | (prot & PU);
		if (!(fc->flags & VIOMMU_PT_F_NXE) || (prot & PX))
			p |= PX;
		break;
	case VIOMMU_PT_VTD_SL:
		p = PU | (prot & (PR | PW));
		if (fc->flags & VIOMMU_PT_F_VTD_EXEC ? (prot & PX) && (prot & (PR | PW)) : (prot & PR))
			p |= PX;
		break;
	case VIOMMU_PT_AMD_V1:
		p = PU | (prot & (PR | PW));
		if (prot & PR)
			p |= PX;
		break;
	}
	return p;
}

static int prot_valid(const struct fmtcase *fc, uint32_t prot)
{
	if (fc->fmt == VIOMMU_PT_X86_64)
		return !!(prot & PR);
	return !!(prot & (PR | PW));
}

static uint32_t needed(uint32_t acc)
{
	uint32_t n = acc & (R | W | X);
	if (!(acc & P))
		n |= PU;
	return n;
}

static void test_paging_host(void)
{
	for (unsigned f = 0; f < sizeof(fmtcases) / sizeof(fmtcases[0]); f++) {
		const struct fmtcase *fc = &fmtcases[f];
		struct env e;
		core_case("paging host %s", fc->name);
		if (!CHECK_EQ(env_init(&e, 0), 0))
			return;
		viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				       pt_cfg(fc->fmt, fc->levels, fc->flags, 0));
		viommu_dev *dev = DEV(&e, 0, 0x18);
		ATTACH(dev, NOPASID, d, NULL);
		uint64_t ias = fc->fmt == VIOMMU_PT_X86_64 ? (fc->levels == 4 ? 48 : 57)
			     : fc->fmt == VIOMMU_PT_VTD_SL ? 12 + 9 * fc->levels
			     : (uint64_t[]){ 0, 21, 30, 39, 48, 57, 64 }[fc->levels];

		/* A 4 KiB page: cold walk, then an IOTLB hit. */
		uint32_t rw = PR | PW | PU | PX;
		MAP(d, 0x40000000, 0x123000, 0x1000, rw);
		XOK(&e, dev, NOPASID, 0x40000abc, R, 0x123abc);
		CHECK_EQ(T.len, 0x1000 - 0xabc);
		CHECK_EQ(T.perms, granted(fc, rw));
		CHECK_EQ(T.iotlb_hit, 0);
		CHECK_EQ(T.refs, fc->levels);
		XOK(&e, dev, NOPASID, 0x40000010, R, 0x123010);
		CHECK_EQ(T.iotlb_hit, 1);
		CHECK_EQ(T.refs, 0);
		XOK(&e, dev, NOPASID, 0x40000ff8, W, 0x123ff8);
		CHECK(T.perms & PW);

		/* A 2 MiB page is one leaf a level up. */
		MAP(d, 0x40200000, 0x400000, 0x200000, rw);
		XOK(&e, dev, NOPASID, 0x40212345, R, 0x412345);
		CHECK_EQ(T.len, 0x200000 - 0x12345);
		CHECK_EQ(T.refs, fc->levels - 1);
		XOK(&e, dev, NOPASID, 0x403fffff, W, 0x5fffff);
		CHECK_EQ(T.len, 1);
		/* With A/D the first write walks again, to set the dirty bit. */
		CHECK_EQ(T.iotlb_hit, (fc->flags & VIOMMU_PT_F_AD) ? 0 : 1);
		XOK(&e, dev, NOPASID, 0x403ffffe, W, 0x5ffffe);
		CHECK_EQ(T.iotlb_hit, 1);

		/* Not mapped, beyond the input space. */
		XFAULT(&e, dev, NOPASID, 0x40400000, R, VIOMMU_FAULT_NOT_PRESENT);
		CHECK_EQ(T.fault.stage, 0);
		CHECK(T.fault.level >= 1 && T.fault.level <= fc->levels);
		XFAULT(&e, dev, NOPASID, 0x3ffff000, R, VIOMMU_FAULT_NOT_PRESENT);
		if (ias < 64)
			XFAULT(&e, dev, NOPASID, 1ull << ias, R, VIOMMU_FAULT_ADDR_WIDTH);
		if (fc->fmt == VIOMMU_PT_X86_64) {
			/* Non-canonical, and the upper half. */
			XFAULT(&e, dev, NOPASID, 1ull << (ias - 1), R, VIOMMU_FAULT_ADDR_WIDTH);
			uint64_t hi = ~0ull << (ias - 1);
			MAP(d, hi, 0x7000, 0x1000, rw);
			XOK(&e, dev, NOPASID, hi + 0x18, R, 0x7018);
			XOK(&e, dev, NOPASID, hi + 0x18, R, 0x7018);
			CHECK_EQ(T.iotlb_hit, 1);
			UNMAP(d, hi, 0x1000);
			XFAULT(&e, dev, NOPASID, hi + 0x18, R, VIOMMU_FAULT_NOT_PRESENT);
		}

		/* Every expressible protection against every access. */
		uint64_t iova = 0x80000000;
		for (uint32_t prot = 0; prot <= VIOMMU_PERM_ALL; prot++) {
			uint64_t done = 0;
			int r = viommu_domain_map(d, iova, 0x600000, 0x1000, prot, &done);
			core_case("paging host %s prot %#x", fc->name, prot);
			if (!prot_valid(fc, prot)) {
				CHECK_EQ(r, -EINVAL);
				CHECK_EQ(done, 0);
				continue;
			}
			if (!CHECK_EQ(r, 0))
				continue;
			for (uint32_t ai = 0; ai < 16; ai++) {
				uint32_t acc = (ai & 7) | (ai & 8 ? P : 0);
				core_case("paging host %s prot %#x access %#x", fc->name, prot, acc);
				/* Twice: the walk, then the IOTLB. */
				for (int k = 0; k < 2; k++) {
					uint32_t g = granted(fc, prot);
					if ((g & needed(acc)) == needed(acc)) {
						XOK(&e, dev, NOPASID, iova + 0x40, acc, 0x600040);
						if (!(fc->flags & VIOMMU_PT_F_AD))
							CHECK_EQ(T.perms, g);
						else /* A/D: a cached entry may hold back write */
							CHECK((T.perms & g) == T.perms && (T.perms & needed(acc)) == needed(acc));
					} else {
						XFAULT(&e, dev, NOPASID, iova + 0x40, acc, VIOMMU_FAULT_PERMISSION);
						CHECK_EQ(T.fault.stage, 0);
						CHECK(T.fault.level >= 1);
					}
				}
			}
			iova += 0x1000;
		}
		core_case("paging host %s", fc->name);

		/* Unmap drops the cached translation itself. */
		XOK(&e, dev, NOPASID, 0x40000010, R, 0x123010);
		CHECK_EQ(T.iotlb_hit, 1);
		UNMAP(d, 0x40000000, 0x1000);
		XFAULT(&e, dev, NOPASID, 0x40000010, R, VIOMMU_FAULT_NOT_PRESENT);
		/* Part of a 2 MiB page: the rest stays, the cached whole goes. */
		XOK(&e, dev, NOPASID, 0x40300000, R, 0x500000);
		UNMAP(d, 0x40300000, 0x1000);
		XFAULT(&e, dev, NOPASID, 0x40300010, R, VIOMMU_FAULT_NOT_PRESENT);
		XOK(&e, dev, NOPASID, 0x402ff010, R, 0x4ff010);
		XOK(&e, dev, NOPASID, 0x40301010, W, 0x501010);
		XOK(&e, dev, NOPASID, 0x40200000, R, 0x400000);
		/* Remap it elsewhere, read-only. */
		MAP(d, 0x40300000, 0x9000, 0x1000, PR | PU);
		XOK(&e, dev, NOPASID, 0x40300010, R, 0x9010);
		XFAULT(&e, dev, NOPASID, 0x40300010, W, VIOMMU_FAULT_PERMISSION);
		uint64_t done = 0;
		CHECK_EQ(viommu_domain_map(d, 0x40300000, 0x9000, 0x1000, PR, &done), -EEXIST);
		CHECK_EQ(done, 0);
		env_fini(&e);
	}
}

/* ------------------------------------------------------------------------ */
/* Paging, guest-owned                                                      */

/* VIOMMU_DEBUG_VERIFY_IOTLB=1: a hit that the tables no longer give (the
 * guest changed an entry and did not invalidate) is logged; hits the
 * tables agree with are not. */
static void test_debug_verify(void)
{
	struct env e;
	core_case("VIOMMU_DEBUG_VERIFY_IOTLB reports stale hits");
	setenv("VIOMMU_DEBUG_VERIFY_IOTLB", "1", 1);
	int r = env_init(&e, 0);
	unsetenv("VIOMMU_DEBUG_VERIFY_IOTLB");
	if (!CHECK_EQ(r, 0))
		return;
	struct viommu_pt_config pc = pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0);
	viommu_pt *pt = gpt_create(&e.gt, e.gm, pc);
	if (!CHECK(pt != NULL))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, 0, pc);
	viommu_dev *dev = DEV(&e, 0, 0x20);
	ATTACH(dev, NOPASID, d, NULL);
	PTMAP(pt, 0x1000, 0x200000, 0x1000, PR | PW);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
	XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
	CHECK_EQ(T.iotlb_hit, 1);
	CHECK_EQ(e.stale_logs, 0);
	/* Moved without an invalidation: the hit is stale, and said so. */
	PTUNMAP(pt, 0x1000, 0x1000);
	PTMAP(pt, 0x1000, 0x300000, 0x1000, PR | PW);
	XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc); /* still the cached one, as hardware */
	CHECK_EQ(T.iotlb_hit, 1);
	CHECK_EQ(e.stale_logs, 1);
	/* Gone without an invalidation: stale too. */
	PTUNMAP(pt, 0x1000, 0x1000);
	XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
	CHECK_EQ(e.stale_logs, 2);
	/* After the invalidation, no more. */
	CHECK_EQ(viommu_invalidate_range(d, NOPASID, 1, 0x1000, 0x1000), 0);
	XFAULT(&e, dev, NOPASID, 0x1abc, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(e.stale_logs, 2);
	viommu_pt_destroy(pt);
	env_fini(&e);
}

/* A fresh environment with a paging domain over a guest-owned table of fc's
 * format, and a device at bus 0, devfn, attached to it without a PASID.
 * Nonzero (a check failed) when it could not be built. */
struct gpaging {
	struct viommu_pt_config pc;
	viommu_pt *pt;
	viommu_domain *d;
	viommu_dev *dev;
};

static int gpaging_init(struct env *e, const struct fmtcase *fc, uint8_t devfn, struct gpaging *gp)
{
	if (!CHECK_EQ(env_init(e, 0), 0))
		return -1;
	gp->pc = pt_cfg(fc->fmt, fc->levels, fc->flags, 0);
	gp->pt = gpt_create(&e->gt, e->gm, gp->pc);
	if (!CHECK(gp->pt != NULL))
		return -1;
	gp->d = DOM(e, VIOMMU_DOMAIN_PAGING, 0, gp->pc);
	gp->dev = DEV(e, 0, devfn);
	ATTACH(gp->dev, NOPASID, gp->d, NULL);
	return 0;
}

static void test_paging_guest(void)
{
	static const struct fmtcase cases[] = {
		{ "x86-4", VIOMMU_PT_X86_64, 4, VIOMMU_PT_F_NXE },
		{ "vtd-4", VIOMMU_PT_VTD_SL, 4, 0 },
		{ "amd-4", VIOMMU_PT_AMD_V1, 4, 0 },
		{ "x86-5-ad", VIOMMU_PT_X86_64, 5, VIOMMU_PT_F_AD },
	};
	for (unsigned f = 0; f < sizeof(cases) / sizeof(cases[0]); f++) {
		const struct fmtcase *fc = &cases[f];
		struct env e;
		core_case("paging guest %s", fc->name);
		struct gpaging gp;
		if (gpaging_init(&e, fc, 0x20, &gp))
			return;
		viommu_pt *pt = gp.pt;
		viommu_domain *d = gp.d;
		viommu_dev *dev = gp.dev;
		uint32_t rw = PR | PW | PU | PX;
		PTMAP(pt, 0x1000, 0x200000, 0x1000, rw);
		PTMAP(pt, 0x2000, 0x201000, 0x1000, PR | PU);
		PTMAP(pt, 0x40000000, 0x400000, 0x200000, rw);
		CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
		XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
		CHECK_EQ(T.refs, fc->levels);
		CHECK_EQ(T.iotlb_hit, 0);
		CHECK_EQ(T.perms & (PR | PW | PU), PR | PW | PU);
		XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
		CHECK_EQ(T.iotlb_hit, 1);
		XOK(&e, dev, NOPASID, 0x2abc, R, 0x201abc);
		XFAULT(&e, dev, NOPASID, 0x2abc, W, VIOMMU_FAULT_PERMISSION);
		XOK(&e, dev, NOPASID, 0x40123456, W, 0x523456);
		CHECK_EQ(T.refs, fc->levels - 1);
		XFAULT(&e, dev, NOPASID, 0x3000, R, VIOMMU_FAULT_NOT_PRESENT);
		CHECK_EQ(T.fault.level, 1);
		/* The entry that faulted is the guest's, in its table page. */
		CHECK(T.fault.entry_addr >= GT_GPA && T.fault.entry_addr < GT_GPA + GT_SIZE);
		CHECK_EQ(T.fault.entry, 0);
		XFAULT(&e, dev, NOPASID, 0x80000000, R, VIOMMU_FAULT_NOT_PRESENT);
		CHECK(T.fault.level >= 2);

		/* Bad roots are accepted and fault with their reason. */
		uint64_t root = viommu_pt_root(pt);
		CHECK_EQ(viommu_domain_set_root(d, root + 0x800), 0);
		XFAULT(&e, dev, NOPASID, 0x1abc, R, VIOMMU_FAULT_ROOT_MISALIGNED);
		CHECK_EQ(viommu_domain_set_root(d, root + 8), 0);
		XFAULT(&e, dev, NOPASID, 0x1abc, R, VIOMMU_FAULT_ROOT_MISALIGNED);
		CHECK_EQ(viommu_domain_set_root(d, 0x40000000000ull), 0);
		XFAULT(&e, dev, NOPASID, 0x1abc, R, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(T.fault.level, fc->levels);
		CHECK_EQ(viommu_domain_set_root(d, RAM1_GPA + RAM1_SIZE), 0); /* just past RAM */
		XFAULT(&e, dev, NOPASID, 0x1abc, R, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(viommu_domain_set_root(d, root), 0);
		XOK(&e, dev, NOPASID, 0x1abc, R, 0x200abc);
		CHECK_EQ(T.iotlb_hit, 0);

		/* A table pointer out of guest memory, written by the guest. */
		uint64_t top = (uint64_t)0x7f << (12 + 9 * (fc->levels - 1));
		if (fc->fmt == VIOMMU_PT_X86_64)
			top = 0x7full << (12 + 9 * (fc->levels - 1)); /* lower half still */
		uint64_t pte = 0x7000000000ull | 0x3; /* x86: P|RW; VT-d: R|W */
		if (fc->fmt == VIOMMU_PT_AMD_V1)
			pte = 0x7000000000ull | 1 | (3ull << 61) | ((uint64_t)(fc->levels - 1) << 9);
		if (fc->fmt == VIOMMU_PT_X86_64)
			pte |= 0x4;
		uint64_t slot = root + 8 * ((top >> (12 + 9 * (fc->levels - 1))) & 511);
		memcpy(e.ram0 + slot, &pte, 8);
		XFAULT(&e, dev, NOPASID, top + 0x1000, R, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
		CHECK_EQ(T.fault.level, fc->levels - 1);
		memset(e.ram0 + slot, 0, 8);

		/* Guest-owned tables are never written by viommu_domain_map. */
		uint64_t done = 1;
		CHECK_EQ(viommu_domain_map(d, 0x5000, 0x5000, 0x1000, PR, &done), -EINVAL);
		CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
		CHECK_EQ(viommu_domain_destroy(d), 0);
		viommu_pt_destroy(pt);
		CHECK_EQ(e.gt.live, 0);
		env_fini(&e);
	}
}

/*
 * viommu_dma_map_ptr over guest-owned one-stage tables translates in runs: a
 * walk goes on along the last-level table (core_translate_run), so a buffer
 * of many pages costs a walk per table, with the same results as page by
 * page: where the output stops following on, a permission changes, a page is
 * missing or the table ends. A write sets the dirty bit of every page of the
 * run, as a walk of each would.
 */
static uint64_t walks_of(struct env *e)
{
	struct viommu_stats st;
	viommu_get_stats(e->v, &st);
	return st.walks;
}

static void test_map_ptr_runs(void)
{
	static const struct fmtcase cases[] = {
		{ "vtd-4", VIOMMU_PT_VTD_SL, 4, 0 },
		{ "x86-4-ad", VIOMMU_PT_X86_64, 4, VIOMMU_PT_F_AD },
		{ "amd-4", VIOMMU_PT_AMD_V1, 4, 0 },
	};
	for (unsigned f = 0; f < sizeof(cases) / sizeof(cases[0]); f++) {
		const struct fmtcase *fc = &cases[f];
		struct env e;
		core_case("map_ptr runs %s", fc->name);
		struct gpaging gp;
		if (gpaging_init(&e, fc, 0x28, &gp))
			return;
		struct viommu_pt_config pc = gp.pc;
		viommu_pt *pt = gp.pt;
		viommu_domain *d = gp.d;
		viommu_dev *dev = gp.dev;
		uint32_t rw = PR | PW | PU;
		const uint64_t A = 0x40000000ull; /* 2 MiB aligned: one last-level table */
		/* Page by page: 4 KiB leaves in every format (AMD-Vi would map a
		 * larger aligned range with larger pages). */
#define PTMAP4K(iova, pa, pages, prot)                                                  \
	for (uint64_t k_ = 0; k_ < (pages); k_++)                                         \
		PTMAP(pt, (iova) + k_ * 0x1000, (pa) + k_ * 0x1000, 0x1000, prot)
		PTMAP4K(A, 0x600000, 64, rw);
		/* A gap in the output after 10 pages. */
		PTMAP4K(A + 0x100000, 0x700000, 10, rw);
		PTMAP4K(A + 0x10a000, 0x780000, 4, rw);
		/* The permission changes after 5 pages (both readable). */
		PTMAP4K(A + 0x120000, 0x800000, 5, rw);
		PTMAP4K(A + 0x125000, 0x805000, 5, PR | PU);
		/* A missing page after 7. */
		PTMAP4K(A + 0x140000, 0x900000, 7, rw);
		PTMAP4K(A + 0x148000, 0x908000, 4, rw);
		/* Across a last-level table's end: 4 pages before it, 4 after. */
		PTMAP4K(A + 0x200000 - 0x4000, 0xa00000, 8, rw);
#undef PTMAP4K
		CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);

		void *host = NULL;
		uint64_t ml = 0, w0 = walks_of(&e), n0 = e.fl.n;
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x10, 64 * 0x1000 - 0x10, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x600010);
		CHECK_EQ(ml, 64 * 0x1000 - 0x10);
		CHECK_EQ(walks_of(&e) - w0, 1);
		/* Page by page it translates the same. */
		for (unsigned i = 0; i < 64; i += 7)
			XOK(&e, dev, NOPASID, A + i * 0x1000ull + 0x123, R, 0x600123 + i * 0x1000ull);

		/* Two walks: the run, and the next page's (which does not
		 * follow on; it is cached, so the second call starts with a hit
		 * and walks once for the rest). */
		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x100000, 14 * 0x1000, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x700000);
		CHECK_EQ(ml, 10 * 0x1000);
		CHECK_EQ(walks_of(&e) - w0, 2);
		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x10a000, 4 * 0x1000, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x780000);
		CHECK_EQ(ml, 4 * 0x1000);
		CHECK_EQ(walks_of(&e) - w0, 1);

		/* Read: both parts; the run stops where the permission changes and
		 * the next walk goes on. Write: only the writable part. */
		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x120000, 10 * 0x1000, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x800000);
		CHECK_EQ(ml, 10 * 0x1000);
		CHECK_EQ(walks_of(&e) - w0, 2);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x121000, 9 * 0x1000, W, &host, &ml, NULL), 0);
		CHECK_EQ(ml, 4 * 0x1000);

		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x140000, 12 * 0x1000, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x900000);
		CHECK_EQ(ml, 7 * 0x1000);
		CHECK_EQ(e.fl.n, n0); /* a fault past the first page is not reported */

		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x200000 - 0x4000, 8 * 0x1000, R, &host, &ml, NULL), 0);
		CHECK(host == e.ram0 + 0xa00000);
		CHECK_EQ(ml, 8 * 0x1000);
		CHECK_EQ(walks_of(&e) - w0, 2);

		/* Runs of 2 MiB pages: four of them, one walk. */
		PTMAP(pt, A + 0x40000000ull, 0x0, 4 * 0x200000, rw);
		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x40000000ull + 0x1000, 4 * 0x200000 - 0x1000, R, &host,
					    &ml, NULL), 0);
		CHECK(host == e.ram0 + 0x1000);
		CHECK_EQ(ml, 4 * 0x200000 - 0x1000);
		CHECK_EQ(walks_of(&e) - w0, 1);

		/* Copies translate in runs too. */
		viommu_invalidate_all(e.v);
		static uint8_t cbuf[64 * 0x1000];
		size_t cdone = 0;
		w0 = walks_of(&e);
		CHECK_EQ(viommu_dma_read(dev, NOPASID, A + 0x800, cbuf, sizeof(cbuf) - 0x800, 0, &cdone, NULL), 0);
		CHECK_EQ(cdone, sizeof(cbuf) - 0x800);
		CHECK(!memcmp(cbuf, e.ram0 + 0x600800, sizeof(cbuf) - 0x800));
		CHECK_EQ(walks_of(&e) - w0, 1);
		/* Up to a missing page: the bytes before it, and its fault. */
		struct viommu_fault_record cf;
		memset(&cf, 0, sizeof(cf));
		n0 = e.fl.n;
		CHECK_EQ(viommu_dma_read(dev, NOPASID, A + 0x140000, cbuf, 12 * 0x1000, 0, &cdone, &cf), -EFAULT);
		CHECK_EQ(cdone, 7 * 0x1000);
		CHECK_EQ(cf.addr, A + 0x147000);
		CHECK_EQ(cf.reason, VIOMMU_FAULT_NOT_PRESENT);
		CHECK_EQ(e.fl.n, n0 + 1);

		/* Dirty bits: a write run marks each page it covers, and no other. */
		if (fc->flags & VIOMMU_PT_F_AD) {
			CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x3000, 16 * 0x1000, W, &host, &ml, NULL), 0);
			CHECK_EQ(ml, 16 * 0x1000);
			for (unsigned i = 2; i < 20; i++) {
				struct viommu_pt_result res;
				/* A read walk sets A only: D is the run's. */
				CHECK_EQ(viommu_pt_walk(&pc, e.gm, viommu_pt_root(pt), A + i * 0x1000ull, R | P, &res), 0);
				int dirty = !!(res.entry & (1ull << 6));
				core_case("map_ptr runs %s: dirty bit of page %u", fc->name, i);
				CHECK_EQ(dirty, i >= 3 && i < 19);
			}
			/* With an excluded page in the way, a write stops before it and
			 * marks nothing past it (the excluded page's own walk sets its
			 * bit, as a walk page by page does). */
			CHECK_EQ(viommu_exclude_range(e.v, 0x600000 + 0x24000, 0x1000), 0);
			CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A + 0x20000, 8 * 0x1000, W, &host, &ml, NULL), 0);
			CHECK_EQ(ml, 4 * 0x1000);
			for (unsigned i = 0x20; i < 0x28; i++) {
				struct viommu_pt_result res;
				CHECK_EQ(viommu_pt_walk(&pc, e.gm, viommu_pt_root(pt), A + i * 0x1000ull, R | P, &res), 0);
				core_case("map_ptr runs %s: dirty bit of page %#x beside an exclusion", fc->name, i);
				CHECK_EQ(!!(res.entry & (1ull << 6)), i <= 0x24);
			}
			CHECK_EQ(viommu_unexclude_range(e.v, 0x600000 + 0x24000, 0x1000), 0);
		}
		CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
		CHECK_EQ(viommu_domain_destroy(d), 0);
		viommu_pt_destroy(pt);
		env_fini(&e);
	}
}

/*
 * A run's entries are compared raw where they can be (the entry equal to the
 * first plus n pages), and the result must be what decoding each gives (the
 * first case passes with or without the raw compare; the second fails
 * without its last-entry check):
 * - an entry that differs from that only in bits the format ignores (x86's
 *   bits 11:9) still continues the run, through the decoding loop;
 * - an output address that leaves what the format accepts ends the run, even
 *   where the raw entry is exactly the first plus n pages: with oas 32, bit 32
 *   is reserved, and guest memory lies on both sides of 4 GiB here, so a run
 *   that went on past it would copy from above 4 GiB instead of faulting.
 */
static void test_map_ptr_runs_raw(void)
{
	struct env e;
	core_case("map_ptr runs: raw compare");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	static uint8_t low[64 * 1024] __attribute__((aligned(4096))), high[64 * 1024] __attribute__((aligned(4096)));
	for (size_t i = 0; i < sizeof(low); i++) {
		low[i] = (uint8_t)(i * 7 + 1);
		high[i] = 0xee;
	}
	/* A second instance over the same tables (in RAM0) and 64 KiB on each
	 * side of 4 GiB. */
	struct viommu_mem_region regs[3] = {
		{ .gpa = RAM0_GPA, .size = RAM0_SIZE, .host = e.ram0 },
		{ .gpa = 4 * GiB - sizeof(low), .size = sizeof(low), .host = low },
		{ .gpa = 4 * GiB, .size = sizeof(high), .host = high },
	};
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = regs;
	c.mem.nr_regions = 3;
	viommu *v = NULL;
	if (!CHECK_EQ(viommu_create(&c, NULL, &v), 0)) {
		env_fini(&e);
		return;
	}
	struct viommu_pt_config pc = pt_cfg(VIOMMU_PT_X86_64, 4, 0, VIOMMU_PGSIZE_4K);
	pc.oas = 32;
	viommu_pt *pt = gpt_create(&e.gt, e.gm, pc);
	if (!CHECK(pt != NULL)) {
		viommu_destroy(v);
		env_fini(&e);
		return;
	}
	const uint64_t A = 0x40000000ull, B = A + 0x100000;
	uint32_t rw = PR | PW | PU;
	PTMAP(pt, A, 0x600000, 16 * 0x1000, rw);
	PTMAP(pt, B, 4 * GiB - 0x2000, 0x2000, rw);
	struct viommu_pt_result r;
	CHECK_EQ(viommu_pt_walk(&pc, e.gm, viommu_pt_root(pt), A, R, &r), 0);
	uint64_t *ea = (uint64_t *)(e.ram0 + r.entry_addr);
	ea[5] |= 1ull << 9;
	ea[9] |= 1ull << 10;
	CHECK_EQ(viommu_pt_walk(&pc, e.gm, viommu_pt_root(pt), B, R, &r), 0);
	uint64_t *eb = (uint64_t *)(e.ram0 + r.entry_addr);
	eb[2] = eb[0] + 2 * 0x1000; /* 4 GiB: bit 32, reserved at oas 32 */
	eb[3] = eb[0] + 3 * 0x1000;

	struct viommu_domain_config dc;
	memset(&dc, 0, sizeof(dc));
	dc.size = sizeof(dc);
	dc.type = VIOMMU_DOMAIN_PAGING;
	dc.pt = pc;
	viommu_domain *d = NULL;
	viommu_dev *dev = NULL;
	struct viommu_rid rid = { .bus = 0, .devfn = 0x30 };
	CHECK_EQ(viommu_domain_create(v, &dc, &d), 0);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	CHECK_EQ(viommu_dev_create(v, rid, &dev), 0);
	CHECK_EQ(viommu_dev_attach(dev, NOPASID, d, NULL), 0);

	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	void *host = NULL;
	uint64_t ml = 0;
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, A, 16 * 0x1000, R, &host, &ml, NULL), 0);
	viommu_get_stats(v, &st1);
	CHECK(host == e.ram0 + 0x600000);
	CHECK_EQ(ml, 16 * 0x1000);
	CHECK_EQ(st1.walks - st0.walks, 1);
	CHECK_EQ(st1.refs - st0.refs, 4 + 15);

	static uint8_t buf[4 * 0x1000];
	memset(buf, 0, sizeof(buf));
	size_t done = 0;
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	CHECK_EQ(viommu_dma_read(dev, NOPASID, B, buf, sizeof(buf), 0, &done, &f), -EFAULT);
	CHECK_EQ(done, 0x2000);
	CHECK(!memcmp(buf, low + sizeof(low) - 0x2000, 0x2000));
	CHECK_EQ(f.addr, B + 0x2000);
	CHECK_EQ(f.reason, VIOMMU_FAULT_RESERVED_BIT);
	CHECK_EQ(buf[0x2000], 0); /* nothing from above 4 GiB */

	CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
	viommu_destroy(v);
	viommu_pt_destroy(pt);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Nested                                                                   */

/* Stage-2 input window: GPA S2_GPA + x is HPA x for x < S2_SIZE. */
#define S2_GPA (4 * GiB)
#define S2_SIZE (12 * MiB)
#define I1 0x12345600000ull /* a stage-1 IOVA, 2 MiB aligned */

struct nested {
	struct gtab g1;          /* stage-1 tables: HPA S1T_HPA.., GPA S2_GPA + S1T_HPA.. */
	viommu_mem *s1mem;       /* the GPA view of the window */
};

static int nested_init(struct nested *n, struct env *e)
{
	memset(n, 0, sizeof(*n));
	n->s1mem = gmem_one(S2_GPA, S2_SIZE, e->ram0);
	if (!n->s1mem)
		return -ENOMEM;
	return gtab_init(&n->g1, e->ram0 + S1T_HPA, S2_GPA + S1T_HPA, S1T_SIZE);
}

static void nested_fini(struct nested *n)
{
	CHECK_EQ(n->g1.live, 0);
	gtab_fini(&n->g1);
	viommu_mem_destroy(n->s1mem);
}

static struct viommu_stage1 s1_of(viommu_pt *pt)
{
	struct viommu_stage1 s;
	memset(&s, 0, sizeof(s));
	s.size = sizeof(s);
	s.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, VIOMMU_PGSIZE_4K);
	s.root = viommu_pt_root(pt);
	return s;
}

static void nested_common(struct env *e, struct nested *n, viommu_domain *s2, int host_owned,
			  viommu_pt *s2pt)
{
	const uint32_t urw = PR | PW | PU;
	struct viommu_pt_config c1 = pt_cfg(VIOMMU_PT_X86_64, 4, 0, VIOMMU_PGSIZE_4K);
	viommu_pt *pt1 = gpt_create(&n->g1, n->s1mem, c1);
	if (!CHECK(pt1 != NULL))
		return;
	for (unsigned k = 0; k < 16; k++)
		PTMAP(pt1, I1 + k * 0x1000ull, S2_GPA + 1 * MiB + k * 0x2000ull, 0x1000, urw);
	viommu_dev *dev = DEV(e, 0, 0x30), *dev2 = DEV(e, 0, 0x31);
	struct viommu_stage1 s1 = s1_of(pt1);
	ATTACH(dev, 1, s2, &s1);

	struct viommu_stats st0, st1;
	viommu_get_stats(e->v, &st0);
	XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	CHECK_EQ(T.refs, 24);
	CHECK_EQ(T.iotlb_hit, 0);
	CHECK_EQ(T.perms & (PR | PW | PU), PR | PW | PU);
	viommu_get_stats(e->v, &st1);
	CHECK_EQ(st1.refs - st0.refs, 24);
	CHECK_EQ(st1.iotlb_misses - st0.iotlb_misses, 1);
	XOK(e, dev, 1, I1 + 0x1020, R, 1 * MiB + 0x2020);
	CHECK_EQ(T.refs, 5);
	CHECK_EQ(T.iotlb_hit, 0);
	struct viommu_stats st2;
	viommu_get_stats(e->v, &st2);
	CHECK(st2.pwc_hits > st1.pwc_hits);
	CHECK(st2.ntlb_hits > st1.ntlb_hits);
	XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	CHECK_EQ(T.refs, 0);
	CHECK_EQ(T.iotlb_hit, 1);
	XOK(e, dev, 1, I1 + 0x1ff8, W, 1 * MiB + 0x2ff8);
	CHECK_EQ(T.iotlb_hit, 1);
	/* The fourth page: walk cache and nested TLB for the tables, a cold
	 * stage 2 for the output. */
	XOK(e, dev, 1, I1 + 0x3000, W, 1 * MiB + 0x6000);
	CHECK_EQ(T.refs, 5);

	/* A stage-1 fault. */
	XFAULT(e, dev, 1, I1 + 0x10000, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(T.fault.stage, 1);
	CHECK_EQ(T.fault.level, 1);
	/* Stage-1 output outside stage 2. */
	PTMAP(pt1, I1 + 0x100000, S2_GPA + 64 * MiB, 0x1000, urw);
	XFAULT(e, dev, 1, I1 + 0x100000, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(T.fault.stage, 2);

	/* A stage-2 fault while fetching a stage-1 table. */
	unsigned log0 = n->g1.nlog;
	viommu_pt *pt2 = gpt_create(&n->g1, n->s1mem, c1);
	if (!CHECK(pt2 != NULL))
		return;
	PTMAP(pt2, I1, S2_GPA + 5 * MiB, 0x1000, urw);
	PTMAP(pt2, I1 + 0x1000, S2_GPA + 5 * MiB + 0x1000, 0x1000, PR | PU);
	CHECK_EQ(n->g1.nlog, log0 + 4);
	uint64_t l2gpa = n->g1.log[log0 + 2]; /* root, L3, L2, L1 */
	struct viommu_stage1 s12 = s1_of(pt2);
	ATTACH(dev, 2, s2, &s12);
	uint64_t *s2pte = NULL, s2saved = 0;
	if (host_owned) {
		UNMAP(s2, l2gpa, 0x1000);
	} else {
		/* The guest's stage-2 4 KiB leaf of that GPA: level 1. */
		struct viommu_pt_result pr;
		CHECK_EQ(viommu_pt_lookup(s2pt, l2gpa, R | P, &pr), 0);
		s2pte = (uint64_t *)(e->ram0 + pr.entry_addr);
		s2saved = *s2pte;
		*s2pte = 0;
		CHECK_EQ(viommu_invalidate_range(s2, 0, 1, l2gpa, 0x1000), 0);
	}
	XFAULT(e, dev, 2, I1 + 0x10, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(T.fault.stage, 2);
	CHECK_EQ(T.fault.level, 1);
	if (host_owned) {
		MAP(s2, l2gpa, l2gpa - S2_GPA, 0x1000, PR | PW);
	} else {
		*s2pte = s2saved;
		CHECK_EQ(viommu_invalidate_range(s2, 0, 1, l2gpa, 0x1000), 0);
	}
	XOK(e, dev, 2, I1 + 0x10, R, 5 * MiB + 0x10);
	/* Each PASID has its stage 1. */
	XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	XOK(e, dev, 2, I1 + 0x10, R, 5 * MiB + 0x10);

	/* Permissions are ANDed: stage-1 read-only over stage-2 read-write. */
	XOK(e, dev, 2, I1 + 0x1010, R, 5 * MiB + 0x1010);
	CHECK_EQ(T.perms & (PR | PW), PR);
	XFAULT(e, dev, 2, I1 + 0x1010, W, VIOMMU_FAULT_PERMISSION);
	CHECK_EQ(T.fault.stage, 1);
	if (host_owned) {
		/* Stage-1 read-write over stage-2 read-only. */
		PTMAP(pt1, I1 + 0x101000, S2_GPA + 2 * MiB, 0x1000, urw);
		UNMAP(s2, S2_GPA + 2 * MiB, 0x1000);
		MAP(s2, S2_GPA + 2 * MiB, 2 * MiB, 0x1000, PR);
		XOK(e, dev, 1, I1 + 0x101010, R, 2 * MiB + 0x10);
		CHECK_EQ(T.perms & (PR | PW), PR);
		XFAULT(e, dev, 1, I1 + 0x101010, W, VIOMMU_FAULT_PERMISSION);
		CHECK_EQ(T.fault.stage, 2);
		XOK(e, dev, 1, I1 + 0x101020, R, 2 * MiB + 0x20);
		CHECK_EQ(T.iotlb_hit, 1);
		XFAULT(e, dev, 1, I1 + 0x101010, W, VIOMMU_FAULT_PERMISSION);

		/* Host unmap of stage 2 drops what was cached through it. */
		XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
		XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
		CHECK_EQ(T.iotlb_hit, 1);
		UNMAP(s2, S2_GPA + 1 * MiB, 0x1000);
		core_case("nested: stage-2 unmap invalidates the IOTLB entries through it");
		XFAULT(e, dev, 1, I1 + 0x10, R, VIOMMU_FAULT_NOT_PRESENT);
		CHECK_EQ(T.fault.stage, 2);
		core_case("nested host-owned");
		MAP(s2, S2_GPA + 1 * MiB, 1 * MiB, 0x1000, PR | PW);
		XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	}

	/* Guest change of stage 1, then a PASID-selective invalidation. */
	XOK(e, dev, 1, I1 + 0x5010, R, 1 * MiB + 0xa010);
	PTUNMAP(pt1, I1 + 0x5000, 0x1000);
	PTMAP(pt1, I1 + 0x5000, S2_GPA + 7 * MiB, 0x1000, urw);
	XOK(e, dev, 1, I1 + 0x5010, R, 1 * MiB + 0xa010); /* stale, as hardware */
	CHECK_EQ(T.iotlb_hit, 1);
	CHECK_EQ(viommu_invalidate_range(s2, 1, 0, I1 + 0x5000, 0x1000), 0);
	XOK(e, dev, 1, I1 + 0x5010, R, 7 * MiB + 0x10);
	/* Gone from stage 1, invalidated per PASID. */
	PTUNMAP(pt1, I1 + 0x5000, 0x1000);
	viommu_invalidate_pasid(s2, 1);
	XFAULT(e, dev, 1, I1 + 0x5010, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(T.fault.stage, 1);

	/* Two devices, one PASID value, two stage 1s. */
	core_case("nested: same PASID on two devices with different stage 1");
	ATTACH(dev2, 1, s2, &s12);
	XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	XOK(e, dev2, 1, I1 + 0x10, R, 5 * MiB + 0x10);
	XOK(e, dev, 1, I1 + 0x10, R, 1 * MiB + 0x10);
	core_case("nested");

	/* A new stage 1 for a PASID replaces the old one at once. */
	XOK(e, dev, 1, I1 + 0x20, R, 1 * MiB + 0x20);
	ATTACH(dev, 1, s2, &s12);
	XOK(e, dev, 1, I1 + 0x20, R, 5 * MiB + 0x20);
	ATTACH(dev, 1, s2, &s1);
	XOK(e, dev, 1, I1 + 0x20, R, 1 * MiB + 0x20);

	/* Attach arguments. */
	CHECK_EQ(viommu_dev_attach(dev, 3, s2, NULL), -EINVAL);
	struct viommu_stage1 bad = s1;
	bad.pt.levels = 3;
	CHECK_EQ(viommu_dev_attach(dev, 3, s2, &bad), -EINVAL);
	bad = s1;
	bad.size = 0;
	CHECK_EQ(viommu_dev_attach(dev, 3, s2, &bad), -EINVAL);
	XFAULT(e, dev, 3, I1, R, VIOMMU_FAULT_BLOCKED);

	/* Stage-1 root itself not mapped by stage 2, or misaligned. */
	struct viommu_stage1 s13 = s1;
	s13.root = S2_GPA + 100 * MiB;
	ATTACH(dev, 4, s2, &s13);
	XFAULT(e, dev, 4, I1, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(T.fault.stage, 2);
	s13.root = s1.root + 0x10;
	ATTACH(dev, 4, s2, &s13);
	XFAULT(e, dev, 4, I1, R, VIOMMU_FAULT_ROOT_MISALIGNED);
	CHECK_EQ(T.fault.stage, 1);

	viommu_dev_destroy(dev);
	viommu_dev_destroy(dev2);
	CHECK_EQ(viommu_domain_destroy(s2), 0);
	viommu_pt_destroy(pt1);
	viommu_pt_destroy(pt2);
}

static void test_nested(void)
{
	struct env e;
	struct nested n;

	core_case("nested host-owned");
	if (!CHECK_EQ(env_init(&e, 0), 0) || !CHECK_EQ(nested_init(&n, &e), 0))
		return;
	/* Paging domains cannot take a stage 1. */
	viommu_domain *pg = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0));
	viommu_dev *d0 = DEV(&e, 9, 0);
	struct viommu_stage1 s1x;
	memset(&s1x, 0, sizeof(s1x));
	s1x.size = sizeof(s1x);
	s1x.pt = pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0);
	CHECK_EQ(viommu_dev_attach(d0, 1, pg, &s1x), -EINVAL);

	struct viommu_pt_config c2 = pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, VIOMMU_PGSIZE_4K);
	viommu_domain *s2 = DOM(&e, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED, c2);
	MAP(s2, S2_GPA, 0, S2_SIZE, PR | PW);
	nested_common(&e, &n, s2, 1, NULL);
	nested_fini(&n);
	env_fini(&e);

	core_case("nested guest-owned stage 2");
	if (!CHECK_EQ(env_init(&e, 0), 0) || !CHECK_EQ(nested_init(&n, &e), 0))
		return;
	viommu_pt *s2pt = gpt_create(&e.gt, e.gm, c2);
	if (!CHECK(s2pt != NULL))
		return;
	PTMAP(s2pt, S2_GPA, 0, S2_SIZE, PR | PW);
	s2 = DOM(&e, VIOMMU_DOMAIN_NESTED, 0, c2);
	CHECK_EQ(viommu_domain_set_root(s2, viommu_pt_root(s2pt)), 0);
	nested_common(&e, &n, s2, 0, s2pt);
	viommu_pt_destroy(s2pt);
	nested_fini(&n);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Devices and PASIDs                                                       */

static void test_devices(void)
{
	struct env e;
	core_case("devices");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	struct viommu_rid rid = { .segment = 1, .bus = 0x80, .devfn = 0x3f };
	viommu_dev *dev = NULL, *other = NULL;
	CHECK_EQ(viommu_dev_create(e.v, rid, &dev), 0);
	CHECK_EQ(viommu_dev_create(e.v, rid, &other), -EEXIST);
	CHECK_EQ(viommu_dev_create(NULL, rid, &other), -EINVAL);
	CHECK_EQ(viommu_dev_create(e.v, rid, NULL), -EINVAL);
	CHECK(viommu_dev_find(e.v, rid) == dev);
	struct viommu_rid rid2 = rid;
	rid2.segment = 0; /* another segment, another device */
	CHECK(viommu_dev_find(e.v, rid2) == NULL);
	CHECK_EQ(viommu_dev_create(e.v, rid2, &other), 0);
	CHECK(viommu_dev_find(e.v, rid2) == other);
	CHECK(viommu_dev_find(e.v, rid) == dev);
	CHECK(viommu_dev_find(NULL, rid) == NULL);
	/* Many devices hashing anywhere. */
	viommu_dev *many[300];
	for (unsigned i = 0; i < 300; i++) {
		struct viommu_rid r = { .segment = 2, .bus = (uint8_t)(i >> 8), .devfn = (uint8_t)i };
		CHECK_EQ(viommu_dev_create(e.v, r, &many[i]), 0);
	}
	for (unsigned i = 0; i < 300; i++) {
		struct viommu_rid r = { .segment = 2, .bus = (uint8_t)(i >> 8), .devfn = (uint8_t)i };
		CHECK(viommu_dev_find(e.v, r) == many[i]);
	}
	for (unsigned i = 0; i < 300; i += 2)
		viommu_dev_destroy(many[i]);
	for (unsigned i = 0; i < 300; i++) {
		struct viommu_rid r = { .segment = 2, .bus = (uint8_t)(i >> 8), .devfn = (uint8_t)i };
		CHECK(viommu_dev_find(e.v, r) == (i % 2 ? many[i] : NULL));
	}
	viommu_dev_destroy(NULL);

	/* One domain per PASID, each mapping 0x1000 somewhere else. */
	static const uint32_t pasids[] = { NOPASID, 0, 1, 63, 64, 4096, VIOMMU_PASID_MAX };
	enum { NP = sizeof(pasids) / sizeof(pasids[0]) };
	viommu_domain *doms[NP];
	for (unsigned i = 0; i < NP; i++) {
		doms[i] = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_AMD_V1, 3, 0, 0));
		MAP(doms[i], 0x1000, 0x100000 * (i + 1), 0x1000, PR | PW);
		ATTACH(dev, pasids[i], doms[i], NULL);
	}
	for (unsigned i = 0; i < NP; i++) {
		core_case("devices pasid %#x", pasids[i]);
		XOK(&e, dev, pasids[i], 0x1008, R, 0x100000 * (i + 1) + 8);
		XFAULT(&e, other, pasids[i], 0x1008, R, VIOMMU_FAULT_BLOCKED);
	}
	core_case("devices");
	XFAULT(&e, dev, 2, 0x1008, R, VIOMMU_FAULT_BLOCKED);
	XFAULT(&e, dev, 65, 0x1008, R, VIOMMU_FAULT_BLOCKED);
	XFAULT(&e, dev, VIOMMU_PASID_MAX - 1, 0x1008, R, VIOMMU_FAULT_BLOCKED);

	/* PASIDs above 20 bits. */
	CHECK_EQ(viommu_dev_attach(dev, VIOMMU_PASID_MAX + 1, doms[0], NULL), -EINVAL);
	CHECK_EQ(viommu_dev_attach(dev, 0xfffffffeu, doms[0], NULL), -EINVAL);
	CHECK_EQ(viommu_dev_detach(dev, VIOMMU_PASID_MAX + 1), -EINVAL);
	XFAULT(&e, dev, VIOMMU_PASID_MAX + 1, 0x1008, R, VIOMMU_FAULT_BAD_REQUEST);
	CHECK_EQ(T.fault.stage, 0);
	XFAULT(&e, dev, 0xfffffffeu, 0x1008, R, VIOMMU_FAULT_BAD_REQUEST);
	XFAULT(&e, dev, 0x80000000u, 0x1008, R, VIOMMU_FAULT_BAD_REQUEST);
	uint8_t b;
	size_t done = 9;
	struct viommu_fault_record f;
	CHECK_EQ(viommu_dma_read(dev, VIOMMU_PASID_MAX + 1, 0x1008, &b, 1, 0, &done, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_BAD_REQUEST);
	CHECK_EQ(done, 0);

	/* Other bad arguments. */
	CHECK_EQ(viommu_dev_attach(NULL, 0, doms[0], NULL), -EINVAL);
	CHECK_EQ(viommu_dev_attach(dev, 0, NULL, NULL), -EINVAL);
	CHECK_EQ(viommu_translate(NULL, 0, 0, R, &T), -EINVAL);
	CHECK_EQ(viommu_translate(dev, 0, 0, R, NULL), -EINVAL);
	uint64_t n0 = e.fl.n;
	CHECK_EQ(viommu_translate(dev, 0, 0x1000, 1u << 5, &T), -EINVAL);
	CHECK_EQ(e.fl.n, n0);

	/* Detach per PASID. */
	CHECK_EQ(viommu_dev_detach(dev, 1), 0);
	XFAULT(&e, dev, 1, 0x1008, R, VIOMMU_FAULT_BLOCKED);
	XOK(&e, dev, 0, 0x1008, R, 0x200008);
	XOK(&e, dev, 63, 0x1008, R, 0x400008);
	CHECK_EQ(viommu_dev_detach(dev, 1), -ENOENT);
	CHECK_EQ(viommu_dev_detach(dev, 77), -ENOENT);
	CHECK_EQ(viommu_dev_detach(dev, 70000), -ENOENT);
	CHECK_EQ(viommu_dev_detach(NULL, 1), -EINVAL);
	CHECK_EQ(viommu_dev_detach(other, NOPASID), -ENOENT);
	/* A cached translation does not outlive its attachment. */
	XOK(&e, dev, NOPASID, 0x1008, R, 0x100008);
	CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
	XFAULT(&e, dev, NOPASID, 0x1008, R, VIOMMU_FAULT_BLOCKED);

	/* Busy domains. */
	CHECK_EQ(viommu_domain_destroy(doms[2]), 0); /* PASID 1: detached */
	CHECK_EQ(viommu_domain_destroy(doms[3]), -EBUSY);
	XOK(&e, dev, 63, 0x1008, R, 0x400008);
	/* Re-attach replaces, cached or not. */
	ATTACH(dev, 63, doms[4], NULL);
	XOK(&e, dev, 63, 0x1008, R, 0x500008);
	CHECK_EQ(viommu_domain_destroy(doms[3]), 0);
	/* The same domain on two PASIDs and two devices. */
	ATTACH(other, 5, doms[4], NULL);
	ATTACH(dev, 64, doms[4], NULL);
	XOK(&e, other, 5, 0x1008, R, 0x500008);
	CHECK_EQ(viommu_dev_detach(dev, 63), 0);
	CHECK_EQ(viommu_domain_destroy(doms[4]), -EBUSY);
	CHECK_EQ(viommu_dev_detach(dev, 64), 0);
	CHECK_EQ(viommu_domain_destroy(doms[4]), -EBUSY);
	/* Destroying the device detaches it. */
	viommu_dev_destroy(other);
	CHECK(viommu_dev_find(e.v, rid2) == NULL);
	CHECK_EQ(viommu_domain_destroy(doms[4]), 0);
	viommu_dev_destroy(dev);
	for (unsigned i = 0; i < NP; i++)
		if (i < 2 || i > 4)
			CHECK_EQ(viommu_domain_destroy(doms[i]), 0);
	/* A device and a domain of two instances. */
	struct env e2;
	if (CHECK_EQ(env_init(&e2, 0), 0)) {
		viommu_dev *x = DEV(&e, 0, 1);
		viommu_domain *y = DOM(&e2, VIOMMU_DOMAIN_IDENTITY, 0, no_pt());
		CHECK_EQ(viommu_dev_attach(x, NOPASID, y, NULL), -EINVAL);
		env_fini(&e2);
	}
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Exclusion                                                                */

static void test_exclusion(void)
{
	struct env e;
	core_case("exclusion");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0));
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	MAP(d, 0x100000, 0x0, 0x10000, PR | PW);         /* pages 0..15 */
	MAP(d, 0x200000, 0x200000, 0x200000, PR | PW);   /* one 2 MiB page */
	for (unsigned i = 0; i < 16; i++)
		XOK(&e, dev, NOPASID, 0x100000 + i * 0x1000 + 0x10, R, i * 0x1000 + 0x10);
	XOK(&e, dev, NOPASID, 0x200010, R, 0x200010);
	CHECK_EQ(T.len, 0x200000 - 0x10);

	/* [0x3800, 0x4800) is pages 3 and 4. Cached translations are checked
	 * too: the exclusion applies to every translation after it. */
	CHECK_EQ(viommu_exclude_range(e.v, 0x3800, 0x1000), 0);
	XOK(&e, dev, NOPASID, 0x102ff0, R, 0x2ff0);
	CHECK_EQ(T.len, 0x10);
	XFAULT(&e, dev, NOPASID, 0x103000, R, VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(T.fault.stage, 0);
	XFAULT(&e, dev, NOPASID, 0x104fff, W, VIOMMU_FAULT_EXCLUDED);
	XOK(&e, dev, NOPASID, 0x105000, R, 0x5000);
	/* With exclusions about, a large page is reported a 4 KiB page at a time. */
	XOK(&e, dev, NOPASID, 0x200010, R, 0x200010);
	CHECK_EQ(T.len, 0x1000 - 0x10);
	CHECK_EQ(viommu_exclude_range(e.v, 0x3fffff, 2), 0); /* pages 0x3ff and 0x400 */
	XFAULT(&e, dev, NOPASID, 0x3ff000, R, VIOMMU_FAULT_EXCLUDED);
	XOK(&e, dev, NOPASID, 0x3fe000, R, 0x3fe000);
	CHECK_EQ(viommu_unexclude_range(e.v, 0x3ff000, 0x2000), 0);
	XOK(&e, dev, NOPASID, 0x3ff000, R, 0x3ff000);

	/* Unexclude: pages protected or not. */
	CHECK_EQ(viommu_unexclude_range(e.v, 0x4000, 0x1000), 0);
	XOK(&e, dev, NOPASID, 0x104000, R, 0x4000);
	XFAULT(&e, dev, NOPASID, 0x103000, R, VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(viommu_unexclude_range(e.v, 0x0, 0x100000), 0);
	XOK(&e, dev, NOPASID, 0x103000, R, 0x3000);

	/* The bitmap: bit i of byte i/8 is page i. */
	uint8_t bm[4] = { 0x05, 0x80, 0, 0 }; /* pages 0, 2, 15 */
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, bm, 32), 0);
	for (unsigned i = 0; i < 16; i++) {
		if (i == 0 || i == 2 || i == 15)
			XFAULT(&e, dev, NOPASID, 0x100000 + i * 0x1000, R, VIOMMU_FAULT_EXCLUDED);
		else
			XOK(&e, dev, NOPASID, 0x100000 + i * 0x1000, R, i * 0x1000);
	}
	/* Bits beyond nr_pages are not looked at. */
	uint8_t bm2[1] = { 0xff };
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, bm2, 3), 0); /* pages 0..2 set */
	XFAULT(&e, dev, NOPASID, 0x101000, R, VIOMMU_FAULT_EXCLUDED);
	XOK(&e, dev, NOPASID, 0x103000, R, 0x3000);
	XFAULT(&e, dev, NOPASID, 0x10f000, R, VIOMMU_FAULT_EXCLUDED);
	/* A clear bitmap clears, ranges included. */
	CHECK_EQ(viommu_exclude_range(e.v, 0x5000, 0x1000), 0);
	uint8_t zero[4] = { 0, 0, 0, 0 };
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, zero, 32), 0);
	for (unsigned i = 0; i < 16; i++)
		XOK(&e, dev, NOPASID, 0x100000 + i * 0x1000, R, i * 0x1000);
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, NULL, 0), 0);

	/* Errors. */
	CHECK_EQ(viommu_exclude_range(e.v, 0x1000, 0), -EINVAL);
	CHECK_EQ(viommu_exclude_range(e.v, ~0ull - 0xfff, 0x2000), -EINVAL);
	CHECK_EQ(viommu_exclude_range(NULL, 0x1000, 0x1000), -EINVAL);
	CHECK_EQ(viommu_unexclude_range(e.v, 0x1000, 0), -EINVAL);
	CHECK_EQ(viommu_set_exclusion_bitmap(e.v, NULL, 8), -EINVAL);
	CHECK_EQ(viommu_set_exclusion_bitmap(NULL, bm, 8), -EINVAL);

	/* DMA stops at an excluded page; map_ptr stops before it. */
	CHECK_EQ(viommu_exclude_range(e.v, 0x9000, 0x1000), 0);
	uint8_t buf[0x3000];
	memset(buf, 0x77, sizeof(buf));
	size_t done = 0;
	struct viommu_fault_record f;
	CHECK_EQ(viommu_dma_write(dev, NOPASID, 0x108800, buf, 0x2000, 0, &done, &f), -EFAULT);
	CHECK_EQ(done, 0x800);
	CHECK_EQ(f.reason, VIOMMU_FAULT_EXCLUDED);
	CHECK_EQ(f.addr, 0x109000);
	CHECK_EQ(e.ram0[0x8800], 0x77);
	CHECK_EQ(e.ram0[0x9000], 0);
	void *host = NULL;
	uint64_t ml = 0;
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x107000, 0x4000, R, &host, &ml, NULL), 0);
	CHECK(host == e.ram0 + 0x7000);
	CHECK_EQ(ml, 0x2000);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x109000, 0x1000, R, &host, &ml, &f), -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_EXCLUDED);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* IOTLB                                                                    */

static void test_iotlb(void)
{
	struct env e;
	core_case("iotlb counters");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	MAP(d, 0x10000000, 0x1000, 256 * 0x1000, PR | PW | PU);
	struct viommu_stats a, b, c;
	viommu_get_stats(e.v, &a);
	for (unsigned i = 0; i < 256; i++)
		XOK(&e, dev, NOPASID, 0x10000000 + i * 0x1000ull + i, R, 0x1000 + i * 0x1000ull + i);
	viommu_get_stats(e.v, &b);
	CHECK_EQ(b.translations - a.translations, 256);
	CHECK_EQ(b.iotlb_misses - a.iotlb_misses, 256);
	CHECK_EQ(b.iotlb_hits - a.iotlb_hits, 0);
	CHECK_EQ(b.walks - a.walks, 256);
	CHECK_EQ(b.refs - a.refs, 256 * 4);
	for (unsigned i = 0; i < 256; i++)
		XOK(&e, dev, NOPASID, 0x10000000 + i * 0x1000ull + 8, W, 0x1000 + i * 0x1000ull + 8);
	viommu_get_stats(e.v, &c);
	CHECK_EQ(c.translations - b.translations, 256);
	CHECK_EQ(c.iotlb_hits - b.iotlb_hits, 256);
	CHECK_EQ(c.iotlb_misses - b.iotlb_misses, 0);
	CHECK_EQ(c.walks - b.walks, 0);
	CHECK_EQ(c.refs - b.refs, 0);
	CHECK_EQ(c.iotlb_evictions, 0);
	/* Faults are counted as translations and faults. */
	XFAULT(&e, dev, NOPASID, 0x20000000, R, VIOMMU_FAULT_NOT_PRESENT);
	viommu_get_stats(e.v, &a);
	CHECK_EQ(a.translations - c.translations, 1);
	CHECK_EQ(a.faults - c.faults, 1);
	env_fini(&e);

	/* A 64-entry IOTLB and 4096 pages: evictions, results still right. */
	core_case("iotlb small");
	if (!CHECK_EQ(env_init(&e, 64), 0))
		return;
	d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_AMD_V1, 4, 0, 0));
	dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	/* paddr 4 KiB-aligned only: every page a leaf of its own. */
	MAP(d, 0x40000000, 0x1000, 4096 * 0x1000ull, PR | PW);
	viommu_get_stats(e.v, &a);
	for (int pass = 0; pass < 3; pass++)
		for (unsigned i = 0; i < 4096; i++) {
			unsigned p = pass == 1 ? 4095 - i : (i * 2654435761u) % 4096;
			uint64_t iova = 0x40000000 + p * 0x1000ull + (p & 0xfff);
			struct viommu_translation t;
			int r = viommu_translate(dev, NOPASID, iova, R, &t);
			CHECK_EQ(r, 0);
			CHECK_EQ(t.oaddr, 0x1000 + p * 0x1000ull + (p & 0xfff));
		}
	viommu_get_stats(e.v, &b);
	CHECK_EQ(b.translations - a.translations, 3 * 4096);
	CHECK_EQ(b.iotlb_hits + b.iotlb_misses - a.iotlb_hits - a.iotlb_misses, 3 * 4096);
	/* At most 64 entries can hit per pass change; every insert into a
	 * full set evicts, and only the first 64 find a free way. */
	CHECK(b.iotlb_misses - a.iotlb_misses >= 3 * 4096 - 2 * 64);
	CHECK(b.iotlb_evictions - a.iotlb_evictions >= b.iotlb_misses - a.iotlb_misses - 64);
	CHECK_EQ(b.faults, 0);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Invalidation                                                             */

static void test_invalidation(void)
{
	struct env e;
	core_case("invalidation");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	struct viommu_pt_config pc = pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0);
	viommu_pt *pt = gpt_create(&e.gt, e.gm, pc), *pt2 = gpt_create(&e.gt, e.gm, pc);
	if (!CHECK(pt && pt2))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, 0, pc);
	viommu_domain *d2 = DOM(&e, VIOMMU_DOMAIN_PAGING, 0, pc);
	viommu_dev *dev = DEV(&e, 0, 8), *dev2 = DEV(&e, 0, 9);
	ATTACH(dev, NOPASID, d, NULL);
	ATTACH(dev, 5, d, NULL);
	ATTACH(dev2, NOPASID, d2, NULL);
	for (unsigned i = 0; i < 8; i++)
		PTMAP(pt, 0x10000 + i * 0x1000, 0x100000 + i * 0x1000, 0x1000, PR | PW);
	PTMAP(pt2, 0x10000, 0x300000, 0x1000, PR | PW);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	CHECK_EQ(viommu_domain_set_root(d2, viommu_pt_root(pt)), 0);

	/* The guest moves page A; the old translation may be used until it
	 * invalidates (hardware does the same), and never after. */
	const uint64_t A = 0x10000, B = 0x11000;
	XOK(&e, dev, NOPASID, A + 4, R, 0x100004);
	XOK(&e, dev, 5, A + 4, R, 0x100004);
	XOK(&e, dev2, NOPASID, A + 4, R, 0x100004);
	PTUNMAP(pt, A, 0x1000);
	PTMAP(pt, A, 0x200000, 0x1000, PR | PW);
	XOK(&e, dev, NOPASID, A + 4, R, 0x100004);
	CHECK_EQ(T.iotlb_hit, 1);
	struct viommu_stats s0, s1;
	viommu_get_stats(e.v, &s0);
	/* A range that misses A. */
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, B, 0x1000), 0);
	viommu_get_stats(e.v, &s1);
	CHECK(s1.invalidations > s0.invalidations);
	/* One PASID only. */
	CHECK_EQ(viommu_invalidate_range(d, 5, 0, A, 0x1000), 0);
	XOK(&e, dev, 5, A + 4, R, 0x200004);
	/* Every PASID of the domain, a range covering A. */
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, A - 0x3000, 0x5000), 0);
	XOK(&e, dev, NOPASID, A + 4, R, 0x200004);
	/* The other domain still has its own entry; its domain invalidation. */
	XOK(&e, dev2, NOPASID, A + 4, R, 0x100004);
	CHECK_EQ(T.iotlb_hit, 1);
	viommu_invalidate_domain(d2);
	XOK(&e, dev2, NOPASID, A + 4, R, 0x200004);

	/* invalidate_pasid. */
	XOK(&e, dev, 5, B + 4, R, 0x101004);
	XOK(&e, dev, NOPASID, B + 4, R, 0x101004);
	PTUNMAP(pt, B, 0x1000);
	XOK(&e, dev, 5, B + 4, R, 0x101004);
	viommu_invalidate_pasid(d, 5);
	XFAULT(&e, dev, 5, B + 4, R, VIOMMU_FAULT_NOT_PRESENT);
	viommu_invalidate_pasid(d, NOPASID);
	XFAULT(&e, dev, NOPASID, B + 4, R, VIOMMU_FAULT_NOT_PRESENT);

	/* invalidate_domain and invalidate_all. */
	const uint64_t C = 0x12000;
	XOK(&e, dev, NOPASID, C, W, 0x102000);
	XOK(&e, dev, 5, C, W, 0x102000);
	PTUNMAP(pt, C, 0x1000);
	PTMAP(pt, C, 0x202000, 0x1000, PR);
	viommu_invalidate_domain(d);
	XOK(&e, dev, NOPASID, C, R, 0x202000);
	XFAULT(&e, dev, 5, C, W, VIOMMU_FAULT_PERMISSION);
	const uint64_t D = 0x13000;
	XOK(&e, dev, NOPASID, D, W, 0x103000);
	XOK(&e, dev2, NOPASID, D, W, 0x103000);
	PTUNMAP(pt, D, 0x1000);
	viommu_invalidate_all(e.v);
	XFAULT(&e, dev, NOPASID, D, W, VIOMMU_FAULT_NOT_PRESENT);
	XFAULT(&e, dev2, NOPASID, D, R, VIOMMU_FAULT_NOT_PRESENT);

	/* set_root drops what the domain cached. */
	XOK(&e, dev, NOPASID, A + 8, R, 0x200008);
	XOK(&e, dev, 5, A + 8, R, 0x200008);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt2)), 0);
	XOK(&e, dev, NOPASID, A + 8, R, 0x300008);
	CHECK_EQ(T.iotlb_hit, 0);
	XOK(&e, dev, 5, A + 8, R, 0x300008);
	XFAULT(&e, dev, NOPASID, 0x14000, R, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	XOK(&e, dev, NOPASID, 0x14000, R, 0x104000);

	/* A range invalidation of a large page by a part of it. */
	PTMAP(pt, 0x400000, 0x600000, 0x200000, PR | PW);
	XOK(&e, dev, NOPASID, 0x500000, R, 0x700000);
	PTUNMAP(pt, 0x400000, 0x200000);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0x5ff000, 0x1000), 0);
	XFAULT(&e, dev, NOPASID, 0x500000, R, VIOMMU_FAULT_NOT_PRESENT);

	/* Errors. */
	CHECK_EQ(viommu_invalidate_range(NULL, 0, 1, 0, 0x1000), -EINVAL);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0x1000, 0), -EINVAL);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, ~0ull - 0xfff, 0x2000), -EINVAL);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, ~0ull), 0);
	viommu_invalidate_all(NULL);
	viommu_invalidate_domain(NULL);
	viommu_invalidate_pasid(NULL, 0);

	viommu_dev_destroy(dev);
	viommu_dev_destroy(dev2);
	viommu_pt_destroy(pt);
	viommu_pt_destroy(pt2);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* Notifiers                                                                */

#define EVMAX 2048
struct evlog {
	struct viommu_map_event ev[EVMAX];
	unsigned n;
	int ret;             /* what the callback returns */
	viommu_domain *dom;  /* the domain it must be called for */
	unsigned bad_dom;
};

static int ev_cb(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	struct evlog *l = ctx;
	if (l->dom && d != l->dom)
		l->bad_dom++;
	if (l->n < EVMAX)
		l->ev[l->n] = *ev;
	l->n++;
	return l->ret;
}

/* How many events of the log are exactly this one. */
static unsigned ev_count(const struct evlog *l, enum viommu_map_event_type type, uint64_t iova, uint64_t pa,
			 uint64_t size, uint32_t perms)
{
	unsigned c = 0;
	for (unsigned i = 0; i < l->n && i < EVMAX; i++) {
		const struct viommu_map_event *e = &l->ev[i];
		if (e->type != type || e->iova != iova || e->size != size)
			continue;
		if (type == VIOMMU_EVENT_MAP && (e->paddr != pa || e->perms != perms))
			continue;
		c++;
	}
	return c;
}
#define EV_MAP(l, iova, pa, size, perms) CHECK_EQ(ev_count(l, VIOMMU_EVENT_MAP, iova, pa, size, perms), 1)
#define EV_UNMAP(l, iova, size) CHECK_EQ(ev_count(l, VIOMMU_EVENT_UNMAP, iova, 0, size, 0), 1)

static void ev_dump(const struct evlog *l)
{
	for (unsigned i = 0; i < l->n && i < EVMAX; i++)
		fprintf(stderr, "    event %u: %s iova %#llx paddr %#llx size %#llx perms %#x\n", i,
			l->ev[i].type == VIOMMU_EVENT_MAP ? "MAP" : "UNMAP", (unsigned long long)l->ev[i].iova,
			(unsigned long long)l->ev[i].paddr, (unsigned long long)l->ev[i].size, l->ev[i].perms);
}

static void test_notifiers_host(void)
{
	struct env e;
	core_case("notifiers host-owned");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
	static struct evlog l1, l2, l3;
	memset(&l1, 0, sizeof(l1));
	memset(&l2, 0, sizeof(l2));
	memset(&l3, 0, sizeof(l3));
	l1.dom = l2.dom = l3.dom = d;
	viommu_notifier *n1 = NULL, *n2 = NULL, *n3 = NULL;
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l1, 1, &n1), 0);
	CHECK_EQ(l1.n, 0); /* nothing mapped yet */
	CHECK_EQ(viommu_notifier_add(NULL, ev_cb, &l1, 0, &n2), -EINVAL);
	CHECK_EQ(viommu_notifier_add(d, NULL, &l1, 0, &n2), -EINVAL);
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l1, 0, NULL), -EINVAL);

	MAP(d, 0x10000, 0x200000, 0x3000, PR | PW);
	CHECK_EQ(l1.n, 1);
	EV_MAP(&l1, 0x10000, 0x200000, 0x3000, PR | PW);
	MAP(d, 0x400000, 0x600000, 0x200000, PR | PU);
	CHECK_EQ(l1.n, 2);
	EV_MAP(&l1, 0x400000, 0x600000, 0x200000, PR | PU);
	uint64_t hi = 0xffff800000000000ull;
	MAP(d, hi, 0x9000, 0x1000, PR | PW | PU | PX);
	EV_MAP(&l1, hi, 0x9000, 0x1000, PR | PW | PU | PX);
	UNMAP(d, 0x11000, 0x1000);
	CHECK_EQ(l1.n, 4);
	EV_UNMAP(&l1, 0x11000, 0x1000);
	/* An unmap over holes may or may not be reported; it changes nothing. */
	UNMAP(d, 0x800000, 0x100000);
	CHECK(l1.n == 4 || l1.n == 5);

	/* Replay on add: what is mapped now, leaf by leaf. */
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l2, 1, &n2), 0);
	if (!CHECK_EQ(l2.n, 4))
		ev_dump(&l2);
	EV_MAP(&l2, 0x10000, 0x200000, 0x1000, PR | PW | PX);
	EV_MAP(&l2, 0x12000, 0x202000, 0x1000, PR | PW | PX);
	EV_MAP(&l2, 0x400000, 0x600000, 0x200000, PR | PU | PX);
	EV_MAP(&l2, hi, 0x9000, 0x1000, PR | PW | PU | PX);
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l3, 0, &n3), 0);
	CHECK_EQ(l3.n, 0);
	l2.n = 0;
	CHECK_EQ(viommu_notifier_replay(n2), 0);
	CHECK_EQ(l2.n, 4);
	CHECK_EQ(viommu_notifier_replay(NULL), -EINVAL);

	/* Every notifier hears it; removed ones no more. */
	l1.n = l2.n = l3.n = 0;
	MAP(d, 0x20000, 0x30000, 0x1000, PR);
	CHECK_EQ(l1.n, 1);
	CHECK_EQ(l2.n, 1);
	CHECK_EQ(l3.n, 1);
	viommu_notifier_remove(n2);
	viommu_notifier_remove(NULL);
	UNMAP(d, 0x20000, 0x1000);
	CHECK_EQ(l1.n, 2);
	CHECK_EQ(l2.n, 1);
	CHECK_EQ(l3.n, 2);

	/* A notifier's error comes back from the call that triggered it; the
	 * table change itself was made. */
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	l3.ret = -EIO;
	uint64_t done = 0;
	CHECK_EQ(viommu_domain_map(d, 0x30000, 0x50000, 0x2000, PR | PU, &done), -EIO);
	CHECK_EQ(done, 0x2000);
	CHECK_EQ(l1.n, 3); /* the others heard it all the same */
	XOK(&e, dev, NOPASID, 0x31000, R, 0x51000);
	CHECK_EQ(viommu_domain_unmap(d, 0x30000, 0x2000, &done), -EIO);
	CHECK_EQ(done, 0x2000);
	XFAULT(&e, dev, NOPASID, 0x31000, R, VIOMMU_FAULT_NOT_PRESENT);
	/* Replay refused: not registered. */
	static struct evlog l4;
	memset(&l4, 0, sizeof(l4));
	l4.ret = -ENOSPC;
	viommu_notifier *n4 = (viommu_notifier *)&l4;
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l4, 1, &n4), -ENOSPC);
	CHECK_EQ(l4.n, 1); /* it stopped at the first */
	l4.ret = 0;
	l4.n = 0;
	l3.ret = 0;
	MAP(d, 0x40000, 0x50000, 0x1000, PR);
	CHECK_EQ(l4.n, 0);
	CHECK_EQ(viommu_notifier_replay(n3), 0);
	l3.ret = -EPERM;
	CHECK_EQ(viommu_notifier_replay(n3), -EPERM);
	l3.ret = 0;
	CHECK_EQ(l1.bad_dom + l2.bad_dom + l3.bad_dom + l4.bad_dom, 0);
	viommu_notifier_remove(n1);
	/* n3 stays registered: destroy takes it. */
	env_fini(&e);
}

static void test_notifiers_guest(void)
{
	struct env e;
	core_case("notifiers guest-owned");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	struct viommu_pt_config pc = pt_cfg(VIOMMU_PT_VTD_SL, 4, 0, 0);
	viommu_pt *pt = gpt_create(&e.gt, e.gm, pc);
	if (!CHECK(pt != NULL))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, 0, pc);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	const uint32_t RW = PR | PW | PU | PX, RO = PR | PU | PX; /* VT-d: EXEC = READ */
	const uint64_t A = 0x10000, B = 0x11000, C = 0x12000, Dd = 0x13000, Wb = 0x200000, E = 0x500000;
	PTMAP(pt, A, 0x300000, 0x1000, PR | PW);
	PTMAP(pt, B, 0x301000, 0x1000, PR | PW);
	PTMAP(pt, C, 0x302000, 0x1000, PR);
	PTMAP(pt, Wb, 0x400000, 0x200000, PR | PW);

	static struct evlog l, l2;
	memset(&l, 0, sizeof(l));
	memset(&l2, 0, sizeof(l2));
	l.dom = l2.dom = d;
	viommu_notifier *n = NULL, *n2 = NULL;
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l, 1, &n), 0);
	if (!CHECK_EQ(l.n, 4))
		ev_dump(&l);
	EV_MAP(&l, A, 0x300000, 0x1000, RW);
	EV_MAP(&l, B, 0x301000, 0x1000, RW);
	EV_MAP(&l, C, 0x302000, 0x1000, RO);
	EV_MAP(&l, Wb, 0x400000, 0x200000, RW);

	/* The guest changes its table: A goes, B moves, D comes, C and the
	 * large page stay. */
	XOK(&e, dev, NOPASID, B, R, 0x301000);
	PTUNMAP(pt, A, 0x1000);
	PTUNMAP(pt, B, 0x1000);
	PTMAP(pt, B, 0x305000, 0x1000, PR | PW);
	PTMAP(pt, Dd, 0x303000, 0x1000, PR | PW);
	l.n = 0;
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 0x400000), 0);
	if (!CHECK_EQ(l.n, 4))
		ev_dump(&l);
	EV_UNMAP(&l, A, 0x1000);
	EV_UNMAP(&l, B, 0x1000);
	EV_MAP(&l, B, 0x305000, 0x1000, RW);
	EV_MAP(&l, Dd, 0x303000, 0x1000, RW);
	/* UNMAPs come first. */
	if (l.n == 4) {
		CHECK_EQ(l.ev[0].type, VIOMMU_EVENT_UNMAP);
		CHECK_EQ(l.ev[1].type, VIOMMU_EVENT_UNMAP);
		CHECK_EQ(l.ev[2].type, VIOMMU_EVENT_MAP);
		CHECK_EQ(l.ev[3].type, VIOMMU_EVENT_MAP);
	}
	XOK(&e, dev, NOPASID, B, R, 0x305000);
	/* Nothing changed, nothing heard. */
	l.n = 0;
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 0x400000), 0);
	CHECK_EQ(l.n, 0);
	/* Only what changed inside the range is reported. */
	PTUNMAP(pt, C, 0x1000);
	PTMAP(pt, E, 0x600000, 0x1000, PR);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, E, 0x1000), 0);
	if (!CHECK_EQ(l.n, 1))
		ev_dump(&l);
	EV_MAP(&l, E, 0x600000, 0x1000, RO);
	l.n = 0;
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, C, 0x1000), 0);
	if (!CHECK_EQ(l.n, 1))
		ev_dump(&l);
	EV_UNMAP(&l, C, 0x1000);
	/* A permission change is an UNMAP and a MAP. */
	l.n = 0;
	PTUNMAP(pt, Dd, 0x1000);
	PTMAP(pt, Dd, 0x303000, 0x1000, PR);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, Dd, 0x1000), 0);
	if (!CHECK_EQ(l.n, 2))
		ev_dump(&l);
	EV_UNMAP(&l, Dd, 0x1000);
	EV_MAP(&l, Dd, 0x303000, 0x1000, RO);
	/* A PASID-only invalidation is a stage-1 matter: no events. */
	PTUNMAP(pt, E, 0x1000);
	l.n = 0;
	CHECK_EQ(viommu_invalidate_range(d, 0, 0, E, 0x1000), 0);
	CHECK_EQ(l.n, 0);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, E, 0x1000), 0);
	if (!CHECK_EQ(l.n, 1))
		ev_dump(&l);
	EV_UNMAP(&l, E, 0x1000);
	l.n = 0;
	/* The large page splits in the guest: its old leaf goes, the new ones
	 * come. */
	PTUNMAP(pt, Wb + 0x1000, 0x1000);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, Wb + 0x1000, 0x1000), 0);
	EV_UNMAP(&l, Wb, 0x200000);
	EV_MAP(&l, Wb, 0x400000, 0x1000, RW);
	EV_MAP(&l, Wb + 0x2000, 0x402000, 0x1000, RW);
	EV_MAP(&l, Wb + 0x1ff000, 0x5ff000, 0x1000, RW);
	CHECK_EQ(ev_count(&l, VIOMMU_EVENT_MAP, Wb + 0x1000, 0x401000, 0x1000, RW), 0);
	if (!CHECK_EQ(l.n, 1 + 511))
		ev_dump(&l);
	else
		CHECK_EQ(l.ev[0].type, VIOMMU_EVENT_UNMAP);

	/* Replay: the guest's mappings as they are now. */
	CHECK_EQ(viommu_notifier_add(d, ev_cb, &l2, 1, &n2), 0);
	if (!CHECK_EQ(l2.n, 2 + 511))
		ev_dump(&l2);
	EV_MAP(&l2, B, 0x305000, 0x1000, RW);
	EV_MAP(&l2, Dd, 0x303000, 0x1000, RO);
	EV_MAP(&l2, Wb + 0x3000, 0x403000, 0x1000, RW);
	l2.n = 0;
	CHECK_EQ(viommu_notifier_replay(n2), 0);
	CHECK_EQ(l2.n, 2 + 511);

	/* invalidate_domain and invalidate_all tell the notifiers too. */
	l.n = l2.n = 0;
	PTUNMAP(pt, B, 0x1000);
	viommu_invalidate_domain(d);
	CHECK_EQ(l.n, 1);
	CHECK_EQ(l2.n, 1);
	EV_UNMAP(&l, B, 0x1000);
	PTMAP(pt, B, 0x307000, 0x1000, PR | PW);
	viommu_invalidate_all(e.v);
	CHECK_EQ(l.n, 2);
	EV_MAP(&l, B, 0x307000, 0x1000, RW);
	/* set_root is a new table. */
	viommu_pt *pt2 = gpt_create(&e.gt, e.gm, pc);
	PTMAP(pt2, 0x7000, 0x8000, 0x1000, PR | PW);
	l.n = 0;
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt2)), 0);
	XOK(&e, dev, NOPASID, 0x7000, R, 0x8000);
	/* Whether set_root reports at once is not specified; an invalidation
	 * after it must leave the notifier in step with the new table. */
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 1ull << 48), 0);
	l2.n = 0;
	CHECK_EQ(viommu_notifier_replay(n2), 0);
	CHECK_EQ(l2.n, 1);
	EV_MAP(&l2, 0x7000, 0x8000, 0x1000, RW);
	CHECK_EQ(ev_count(&l, VIOMMU_EVENT_MAP, 0x7000, 0x8000, 0x1000, RW), 1);
	CHECK_EQ(ev_count(&l, VIOMMU_EVENT_UNMAP, B, 0, 0x1000, 0), 1);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(pt)), 0);
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, 0, 1ull << 48), 0);

	/* A notifier's error comes back from the invalidation; the caches are
	 * dropped all the same. */
	XOK(&e, dev, NOPASID, Dd, R, 0x303000);
	PTUNMAP(pt, Dd, 0x1000);
	PTMAP(pt, Dd, 0x309000, 0x1000, PR);
	l2.ret = -EIO;
	CHECK_EQ(viommu_invalidate_range(d, 0, 1, Dd, 0x1000), -EIO);
	XOK(&e, dev, NOPASID, Dd, R, 0x309000);
	l2.ret = 0;
	CHECK_EQ(l.bad_dom + l2.bad_dom, 0);

	viommu_notifier_remove(n);
	viommu_notifier_remove(n2);
	viommu_dev_destroy(dev);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	viommu_pt_destroy(pt);
	viommu_pt_destroy(pt2);
	CHECK_EQ(e.gt.live, 0);
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* DMA                                                                      */

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* A DMA call that must fault once with this reason after `done` bytes. */
static void dma_fault_at(int line, struct env *e, int r, size_t done, size_t exp_done,
			 const struct viommu_fault_record *f, enum viommu_fault_reason why, uint64_t n0)
{
	CHECK_EQ_AT(line, r, -EFAULT);
	CHECK_EQ_AT(line, done, exp_done);
	CHECK_EQ_AT(line, f->reason, why);
	CHECK_EQ_AT(line, e->fl.n, n0 + 1);
	CHECK_EQ_AT(line, e->fl.last.seq, f->seq);
	CHECK_EQ_AT(line, e->fl.last.reason, why);
}
#define DMA_FAULT(e, r, done, exp, f, why, n0) dma_fault_at(__LINE__, e, r, done, exp, f, why, n0)

static void test_dma(void)
{
	struct env e;
	core_case("dma");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
			       pt_cfg(VIOMMU_PT_X86_64, 4, VIOMMU_PT_F_NXE, 0));
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, NOPASID, d, NULL);
	const uint32_t URW = PR | PW | PU;
	/* Three IOVA pages on scattered output pages. */
	MAP(d, 0x100000, 0x300000, 0x1000, URW);
	MAP(d, 0x101000, 0x305000, 0x1000, URW);
	MAP(d, 0x102000, 0x302000, 0x1000, URW);
	static uint8_t buf[0x10000], back[0x10000];
	fill(buf, sizeof(buf), 1);
	size_t done = 0;
	struct viommu_fault_record f;
	uint64_t n0 = e.fl.n;

	CHECK_EQ(viommu_dma_write(dev, NOPASID, 0x100800, buf, 0x2000, 0, &done, &f), 0);
	CHECK_EQ(done, 0x2000);
	CHECK(!memcmp(e.ram0 + 0x300800, buf, 0x800));
	CHECK(!memcmp(e.ram0 + 0x305000, buf + 0x800, 0x1000));
	CHECK(!memcmp(e.ram0 + 0x302000, buf + 0x1800, 0x800));
	CHECK_EQ(e.ram0[0x3007ff], 0);
	CHECK_EQ(e.ram0[0x302800], 0);
	CHECK_EQ(e.ram0[0x301000], 0);
	memset(back, 0xee, sizeof(back));
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x100800, back, 0x2000, 0, &done, NULL), 0);
	CHECK_EQ(done, 0x2000);
	CHECK(!memcmp(back, buf, 0x2000));
	CHECK_EQ(back[0x2000], 0xee);
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x100000, back, 0x3000, 0, NULL, NULL), 0);
	CHECK(!memcmp(back + 0x800, buf, 0x2000));
	CHECK_EQ(e.fl.n, n0);
	/* Zero bytes: nothing to do. */
	done = 5;
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x900000, back, 0, 0, &done, NULL), 0);
	CHECK_EQ(done, 0);
	CHECK_EQ(e.fl.n, n0);

	/* A fault in the middle: the bytes before it are done, no more. */
	UNMAP(d, 0x101000, 0x1000);
	memset(back, 0xee, sizeof(back));
	int r = viommu_dma_read(dev, NOPASID, 0x100800, back, 0x2000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x800, &f, VIOMMU_FAULT_NOT_PRESENT, n0);
	CHECK_EQ(f.addr, 0x101000);
	CHECK_EQ(f.access, R);
	CHECK(!memcmp(back, buf, 0x800));
	CHECK_EQ(back[0x800], 0xee);
	CHECK_EQ(back[0x1fff], 0xee);
	/* Write to a read-only page in the middle. */
	MAP(d, 0x101000, 0x305000, 0x1000, PR | PU);
	uint8_t snap[0x1000];
	memcpy(snap, e.ram0 + 0x305000, 0x1000);
	fill(buf, sizeof(buf), 2);
	n0 = e.fl.n;
	r = viommu_dma_write(dev, NOPASID, 0x100100, buf, 0x2000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0xf00, &f, VIOMMU_FAULT_PERMISSION, n0);
	CHECK_EQ(f.addr, 0x101000);
	CHECK_EQ(f.access, W);
	CHECK(!memcmp(e.ram0 + 0x300100, buf, 0xf00));
	CHECK(!memcmp(e.ram0 + 0x305000, snap, 0x1000));
	/* Attributes: privileged, exec. */
	MAP(d, 0x110000, 0x310000, 0x1000, PR | PW); /* no USER, no EXEC */
	n0 = e.fl.n;
	r = viommu_dma_read(dev, NOPASID, 0x110000, back, 16, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0, &f, VIOMMU_FAULT_PERMISSION, n0);
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x110000, back, 16, VIOMMU_DMA_PRIV, &done, NULL), 0);
	CHECK_EQ(done, 16);
	n0 = e.fl.n;
	r = viommu_dma_read(dev, NOPASID, 0x110000, back, 16, VIOMMU_DMA_PRIV | VIOMMU_DMA_EXEC, &done, &f);
	DMA_FAULT(&e, r, done, 0, &f, VIOMMU_FAULT_PERMISSION, n0);
	CHECK_EQ(f.access, R | X | P);
	MAP(d, 0x111000, 0x311000, 0x1000, PR | PX);
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x111000, back, 16, VIOMMU_DMA_PRIV | VIOMMU_DMA_EXEC, &done, NULL), 0);
	/* Bad arguments. */
	CHECK_EQ(viommu_dma_read(NULL, NOPASID, 0x100000, back, 16, 0, &done, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x100000, NULL, 16, 0, &done, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_write(dev, NOPASID, ~0ull - 7, buf, 16, 0, &done, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_read(dev, NOPASID, 0x100000, back, 16, 1u << 9, &done, NULL), -EINVAL);

	/* Scatter-gather, with a fault in a later segment. */
	MAP(d, 0x120000, 0x320000, 0x4000, URW);
	struct viommu_dma_seg segs[3] = {
		{ 0x120f00, 0x200 },  /* across a page */
		{ 0x123000, 0x100 },
		{ 0x100f00, 0x300 },  /* page 0x101000 is read-only */
	};
	fill(buf, sizeof(buf), 3);
	n0 = e.fl.n;
	r = viommu_dma_write_sg(dev, NOPASID, segs, 3, buf, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x200 + 0x100 + 0x100, &f, VIOMMU_FAULT_PERMISSION, n0);
	CHECK(!memcmp(e.ram0 + 0x320f00, buf, 0x200));
	CHECK(!memcmp(e.ram0 + 0x323000, buf + 0x200, 0x100));
	CHECK(!memcmp(e.ram0 + 0x300f00, buf + 0x300, 0x100));
	segs[2].iova = 0x101f00; /* read-only but readable; into 0x102000 */
	memset(back, 0xee, sizeof(back));
	CHECK_EQ(viommu_dma_read_sg(dev, NOPASID, segs, 3, back, 0, &done, NULL), 0);
	CHECK_EQ(done, 0x600);
	CHECK(!memcmp(back, buf, 0x300));
	CHECK(!memcmp(back + 0x300, e.ram0 + 0x305f00, 0x100));
	CHECK(!memcmp(back + 0x400, e.ram0 + 0x302000, 0x200));
	segs[1].iova = 0x124000; /* not mapped */
	memset(back, 0xee, sizeof(back));
	n0 = e.fl.n;
	r = viommu_dma_read_sg(dev, NOPASID, segs, 3, back, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x200, &f, VIOMMU_FAULT_NOT_PRESENT, n0);
	CHECK_EQ(f.addr, 0x124000);
	CHECK_EQ(back[0x200], 0xee);
	segs[1].iova = 0x123f80; /* the fault half way through the segment */
	n0 = e.fl.n;
	r = viommu_dma_read_sg(dev, NOPASID, segs, 3, back, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x280, &f, VIOMMU_FAULT_NOT_PRESENT, n0);
	CHECK_EQ(viommu_dma_read_sg(dev, NOPASID, NULL, 1, back, 0, &done, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_read_sg(dev, NOPASID, segs, 3, NULL, 0, &done, NULL), -EINVAL);
	struct viommu_dma_seg huge[2] = { { 0, ~0ull >> 1 }, { 0, ~0ull >> 1 } };
	huge[1].len += 2;
	CHECK_EQ(viommu_dma_read_sg(dev, NOPASID, huge, 2, back, 0, &done, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_read_sg(dev, NOPASID, segs, 0, NULL, 0, &done, NULL), 0);
	CHECK_EQ(done, 0);

	/* map_ptr: the longest contiguous prefix. */
	MAP(d, 0x130000, 0x400000, 0x3000, URW);
	MAP(d, 0x133000, 0x500000, 0x1000, URW);
	void *host = NULL;
	uint64_t ml = 0;
	n0 = e.fl.n;
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x130100, 0x4000, R, &host, &ml, NULL), 0);
	CHECK(host == e.ram0 + 0x400100);
	CHECK_EQ(ml, 0x3000 - 0x100);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x130100, 0x10, R | W, &host, &ml, NULL), 0);
	CHECK(host == e.ram0 + 0x400100);
	CHECK_EQ(ml, 0x10);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x133ff0, 0x100, W, &host, &ml, NULL), 0);
	CHECK(host == e.ram0 + 0x500ff0);
	CHECK_EQ(ml, 0x10);
	/* A next page that faults ends the prefix, unreported. */
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x133000, 0x2000, R, &host, &ml, NULL), 0);
	CHECK_EQ(ml, 0x1000);
	CHECK_EQ(e.fl.n, n0);
	/* A next page without the permission asked ends it too. */
	MAP(d, 0x134000, 0x501000, 0x1000, PR | PU);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x133000, 0x2000, R, &host, &ml, NULL), 0);
	CHECK_EQ(ml, 0x2000);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x133000, 0x2000, R | W, &host, &ml, NULL), 0);
	CHECK_EQ(ml, 0x1000);
	CHECK_EQ(e.fl.n, n0);
	/* The first page faults: reported. */
	r = viommu_dma_map_ptr(dev, NOPASID, 0x134000, 0x10, W, &host, &ml, &f);
	CHECK_EQ(r, -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_PERMISSION);
	CHECK(host == NULL);
	CHECK_EQ(ml, 0);
	CHECK_EQ(e.fl.n, n0 + 1);
	CHECK_EQ(e.fl.last.seq, f.seq);
	/* Contiguous in guest addresses but across two regions: one region. */
	MAP(d, 0x140000, RAM1_GPA - 0x2000, 0x4000, URW);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x140000, 0x4000, R, &host, &ml, NULL), 0);
	CHECK(host == e.ram0 + RAM1_GPA - 0x2000);
	CHECK_EQ(ml, 0x2000);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x142000, 0x4000, R, &host, &ml, NULL), 0);
	CHECK(host == e.ram1);
	CHECK_EQ(ml, 0x2000);
	/* A copy across them is fine. */
	fill(buf, sizeof(buf), 4);
	CHECK_EQ(viommu_dma_write(dev, NOPASID, 0x141800, buf, 0x1000, 0, &done, NULL), 0);
	CHECK(!memcmp(e.ram0 + RAM1_GPA - 0x800, buf, 0x800));
	CHECK(!memcmp(e.ram1, buf + 0x800, 0x800));
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x130000, 0, R, &host, &ml, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x130000, 16, X, &host, &ml, NULL), -EINVAL);
	CHECK_EQ(viommu_dma_map_ptr(dev, NOPASID, 0x130000, 16, R, NULL, &ml, NULL), -EINVAL);

	/* Output outside guest memory. */
	MAP(d, 0x150000, 0x40000000, 0x1000, URW);
	n0 = e.fl.n;
	r = viommu_dma_read(dev, NOPASID, 0x150010, back, 16, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0, &f, VIOMMU_FAULT_DMA_TARGET, n0);
	CHECK_EQ(f.stage, 0);
	CHECK_EQ(f.addr, 0x150010);
	n0 = e.fl.n;
	r = viommu_dma_write(dev, NOPASID, 0x14f800, buf, 0x1000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0, &f, VIOMMU_FAULT_NOT_PRESENT, n0);
	MAP(d, 0x14f000, 0x3ff000, 0x1000, URW);
	n0 = e.fl.n;
	r = viommu_dma_write(dev, NOPASID, 0x14f800, buf, 0x1000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x800, &f, VIOMMU_FAULT_DMA_TARGET, n0);
	CHECK_EQ(f.addr, 0x150000);
	n0 = e.fl.n;
	r = viommu_dma_map_ptr(dev, NOPASID, 0x150000, 0x10, R, &host, &ml, &f);
	CHECK_EQ(r, -EFAULT);
	CHECK_EQ(f.reason, VIOMMU_FAULT_DMA_TARGET);
	CHECK_EQ(e.fl.n, n0 + 1);
	/* One large page whose end lies past guest memory: the bytes before
	 * the first one that has no target are done. */
	core_case("dma: one 2 MiB page across the end of guest memory");
	MAP(d, 0x40000000, RAM1_GPA, 0x200000, URW);
	fill(buf, sizeof(buf), 5);
	n0 = e.fl.n;
	r = viommu_dma_write(dev, NOPASID, 0x40000000 + RAM1_SIZE - 0x800, buf, 0x1000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x800, &f, VIOMMU_FAULT_DMA_TARGET, n0);
	CHECK(!memcmp(e.ram1 + RAM1_SIZE - 0x800, buf, 0x800));
	memset(back, 0xee, sizeof(back));
	n0 = e.fl.n;
	r = viommu_dma_read(dev, NOPASID, 0x40000000 + RAM1_SIZE - 0x800, back, 0x1000, 0, &done, &f);
	DMA_FAULT(&e, r, done, 0x800, &f, VIOMMU_FAULT_DMA_TARGET, n0);
	CHECK(!memcmp(back, buf, 0x800));
	core_case("dma");
	env_fini(&e);
}

/* ------------------------------------------------------------------------ */
/* The fault callback under a burst                                         */

static void test_fault_seq(void)
{
	struct env e;
	core_case("fault sequence");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	viommu_domain *d = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_VTD_SL, 3, 0, 0));
	viommu_dev *dev = DEV(&e, 0, 8);
	ATTACH(dev, 7, d, NULL);
	MAP(d, 0x1000, 0x1000, 0x1000, PR);
	uint64_t expect = 0;
	uint8_t b[8];
	for (unsigned i = 0; i < 3000; i++) {
		struct viommu_translation t;
		struct viommu_fault_record f;
		int r;
		switch (i % 5) {
		case 0:
			r = viommu_translate(dev, 7, 0x1000, W, &t);
			f = t.fault;
			break;
		case 1:
			r = viommu_translate(dev, 8, 0x1000, R, &t);
			f = t.fault;
			break;
		case 2:
			r = viommu_dma_write(dev, 7, 0x1000, b, 8, 0, NULL, &f);
			break;
		case 3:
			r = viommu_dma_read(dev, 7, 0x2000, b, 8, 0, NULL, &f);
			break;
		default:
			r = viommu_translate(dev, 7, 0x1000, R, &t); /* no fault */
			CHECK_EQ(r, 0);
			continue;
		}
		expect++;
		CHECK_EQ(r, -EFAULT);
		CHECK_EQ(f.seq, expect);
		CHECK_EQ(e.fl.n, expect);
		CHECK_EQ(e.fl.last.seq, expect);
	}
	CHECK_EQ(e.fl.bad_seq, 0);
	env_fini(&e);
}

/* The attach notifier and the queries a consumer that follows a device's
 * domain uses. */
struct attach_note {
	unsigned calls;
	uint32_t pasid;
	viommu_domain *d;
	viommu_domain *seen; /* viommu_dev_domain inside the notifier */
};

static void on_attach(void *ctx, viommu_dev *dev, uint32_t pasid, viommu_domain *d)
{
	struct attach_note *n = ctx;
	n->calls++;
	n->pasid = pasid;
	n->d = d;
	n->seen = viommu_dev_domain(dev, pasid);
}

static void test_attach_notify(void)
{
	struct env e;
	struct attach_note n = { 0 };
	core_case("attach notifier");
	if (!CHECK_EQ(env_init(&e, 0), 0))
		return;
	struct viommu_rid rid = { .segment = 0, .bus = 3, .devfn = 8 };
	viommu_dev *dev = NULL;
	CHECK_EQ(viommu_dev_create(e.v, rid, &dev), 0);
	viommu_domain *a = DOM(&e, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
	viommu_domain *b = DOM(&e, VIOMMU_DOMAIN_IDENTITY, 0, pt_cfg(VIOMMU_PT_X86_64, 4, 0, 0));
	CHECK_EQ(viommu_domain_get_type(a), VIOMMU_DOMAIN_PAGING);
	CHECK_EQ(viommu_domain_get_type(b), VIOMMU_DOMAIN_IDENTITY);
	CHECK_EQ(viommu_domain_get_type(NULL), 0);
	CHECK(viommu_dev_domain(dev, NOPASID) == NULL);
	CHECK(viommu_dev_domain(NULL, NOPASID) == NULL);
	CHECK(viommu_dev_domain(dev, VIOMMU_PASID_MAX + 1) == NULL);
	CHECK_EQ(viommu_dev_set_attach_notify(NULL, on_attach, &n), -EINVAL);
	CHECK_EQ(viommu_dev_set_attach_notify(dev, on_attach, &n), 0);
	ATTACH(dev, NOPASID, a, NULL);
	CHECK_EQ(n.calls, 1);
	CHECK_EQ(n.pasid, NOPASID);
	CHECK(n.d == a);
	CHECK(n.seen == a); /* told after the change took effect */
	ATTACH(dev, 5, b, NULL);
	CHECK_EQ(n.calls, 2);
	CHECK_EQ(n.pasid, 5);
	CHECK(n.d == b && n.seen == b);
	CHECK(viommu_dev_domain(dev, NOPASID) == a);
	ATTACH(dev, NOPASID, a, NULL); /* the same domain again is told too */
	CHECK_EQ(n.calls, 3);
	CHECK_EQ(viommu_dev_detach(dev, NOPASID), 0);
	CHECK_EQ(n.calls, 4);
	CHECK(n.d == NULL && n.seen == NULL);
	CHECK_EQ(viommu_dev_detach(dev, NOPASID), -ENOENT); /* nothing changed: not told */
	CHECK_EQ(n.calls, 4);
	/* A failed attach changes nothing and is not told. */
	CHECK_EQ(viommu_dev_attach(dev, VIOMMU_PASID_MAX + 1, a, NULL), -EINVAL);
	CHECK_EQ(n.calls, 4);
	CHECK_EQ(viommu_dev_set_attach_notify(dev, NULL, NULL), 0);
	ATTACH(dev, NOPASID, b, NULL);
	CHECK_EQ(n.calls, 4);
	CHECK(viommu_dev_domain(dev, NOPASID) == b);
	env_fini(&e);
}

int main(void)
{
	test_create();
	test_destroy_live();
	test_domain_create();
	test_blocked_identity();
	test_paging_host();
	test_paging_guest();
	test_map_ptr_runs();
	test_map_ptr_runs_raw();
	test_debug_verify();
	test_nested();
	test_devices();
	test_exclusion();
	test_iotlb();
	test_invalidation();
	test_notifiers_host();
	test_notifiers_guest();
	test_dma();
	test_fault_seq();
	test_attach_notify();
	core_case("%s", "");
	return core_check_done("test_core");
}
