/* SPDX-License-Identifier: MIT */
/*
 * Shadowing against a real viommu instance and the fake kernel: a domain's
 * map/unmap events (host-owned table: viommu_domain_map/unmap; guest-owned
 * table: the guest's own VT-d second-level table in guest RAM and
 * viommu_invalidate_range) become host IOMMU mappings IOVA -> host address of
 * the guest page, checked in the fake host IOMMU right after the call that
 * caused them returns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/iommu.h>
#include <viommu/pagetable.h>
#include <viommu/vfio.h>

#include "fake_kernel.h"
#include "vfio_test.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define RW (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)

static struct vt_log logbuf;
static const char *root;

/* Guest RAM: region 0 at 0 (4 MiB; guest tables in its upper 2 MiB), region 1
 * at 4 GiB (1 MiB). */
#define RAM0_SIZE (4 * MiB)
#define RAM1_GPA (4 * GiB)
#define RAM1_SIZE (1 * MiB)
#define GT_GPA (2 * MiB)

struct env {
	struct fake_kernel fk;
	uint8_t *ram0, *ram1;
	struct viommu_mem_region regions[2];
	viommu *v;
	viommu_vfio *vf;
	viommu_vfio_container *c;
	viommu_vfio_device *d;
	/* guest tables */
	uint64_t gt_next;
};

static uint64_t hv(const struct env *e, const void *p)
{
	(void)e;
	return (uint64_t)(uintptr_t)p;
}

static void env_init(struct env *e, enum viommu_vfio_backend b)
{
	memset(e, 0, sizeof(*e));
	e->ram0 = aligned_alloc(4096, RAM0_SIZE);
	e->ram1 = aligned_alloc(4096, RAM1_SIZE);
	memset(e->ram0, 0, RAM0_SIZE);
	memset(e->ram1, 0, RAM1_SIZE);
	e->regions[0] = (struct viommu_mem_region){ .gpa = 0, .size = RAM0_SIZE, .host = e->ram0 };
	e->regions[1] = (struct viommu_mem_region){ .gpa = RAM1_GPA, .size = RAM1_SIZE, .host = e->ram1 };
	struct viommu_config vc = { .size = sizeof(vc), .mem = { .size = sizeof(vc.mem), .regions = e->regions,
								   .nr_regions = 2 } };
	CHECK_EQ(viommu_create(&vc, NULL, &e->v), 0);

	fk_init(&e->fk);
	e->fk.has_iommufd = true;
	fk_add_dev(&e->fk, "0000:01:00.0", 5, 0);
	struct viommu_vfio_config cfg = { .size = sizeof(cfg), .sysfs_root = root, .backend = b,
					  .kernel = &e->fk.ops, .log = vt_log_fn, .log_ctx = &logbuf };
	CHECK_EQ(viommu_vfio_create(&cfg, &e->vf), 0);
	CHECK_EQ(viommu_vfio_container_create(e->vf, &e->c), 0);
	CHECK_EQ(viommu_vfio_device_open(e->c, "0000:01:00.0", &e->d), 0);
	e->gt_next = GT_GPA;
}

static void env_fini(struct env *e)
{
	viommu_vfio_device_close(e->d);
	viommu_vfio_container_destroy(e->c);
	viommu_vfio_destroy(e->vf);
	CHECK_EQ(fk_open_fds(&e->fk), 0);
	viommu_destroy(e->v);
	free(e->ram0);
	free(e->ram1);
}

static viommu_domain *domain(struct env *e, uint32_t flags)
{
	struct viommu_domain_config dc = {
		.size = sizeof(dc), .type = VIOMMU_DOMAIN_PAGING, .flags = flags,
		.pt = { .size = sizeof(dc.pt), .format = VIOMMU_PT_VTD_SL, .levels = 4 },
	};
	viommu_domain *d = NULL;
	CHECK_EQ(viommu_domain_create(e->v, &dc, &d), 0);
	return d;
}

static viommu_vfio_shadow *shadow(struct env *e, viommu_domain *d, uint32_t flags)
{
	struct viommu_vfio_shadow_config sc = { .size = sizeof(sc), .domain = d, .regions = e->regions,
						.nr_regions = 2, .flags = flags };
	viommu_vfio_shadow *s = NULL;
	CHECK_EQ(viommu_vfio_shadow_create(e->c, &sc, &s), 0);
	return s;
}

/* The fake host IOMMU maps exactly [iova, iova + size) to host, with these rights. */
#define CHECK_HOST_MAP(e, iova_, size_, host_, w_)                                                     \
	do {                                                                                          \
		const struct fk_map *m_ = fk_find_map(&(e)->fk, (iova_));                             \
		if (CHECK(m_ != NULL)) {                                                              \
			CHECK_EQ(m_->iova, (iova_));                                                  \
			CHECK_EQ(m_->size, (size_));                                                  \
			CHECK_EQ(m_->vaddr, hv((e), (host_)));                                        \
			CHECK_EQ(m_->write, (w_));                                                    \
		}                                                                                     \
	} while (0)

static void test_host_owned(enum viommu_vfio_backend b, const char *name)
{
	static struct env e;
	uint64_t done;
	struct viommu_vfio_shadow_stats st;
	env_init(&e, b);
	viommu_domain *d = domain(&e, VIOMMU_DOMAIN_F_HOST_OWNED);

	vt_set_case("%s host-owned: replay of what was there", name);
	CHECK_EQ(viommu_domain_map(d, 0x10000, 0x2000, 0x4000, RW, &done), 0);
	/* The VMM's own mapping elsewhere is none of the shadow's business. */
	CHECK_EQ(viommu_vfio_dma_map(e.c, 512 * MiB, e.ram1, 4096, VIOMMU_PERM_READ), 0);
	viommu_vfio_shadow *s = shadow(&e, d, 0);
	CHECK_EQ(e.fk.nr_maps, 2);
	CHECK_HOST_MAP(&e, 0x10000, 0x4000, e.ram0 + 0x2000, true);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.map_events, 4); /* the replay goes leaf by leaf */
	CHECK_EQ(st.host_maps, 1);  /* one run */
	CHECK_EQ(st.nr_mappings, 1);
	CHECK_EQ(st.mapped_bytes, 0x4000);

	vt_set_case("%s host-owned: map to the second RAM region, read-only", name);
	CHECK_EQ(viommu_domain_map(d, 0x100000, RAM1_GPA + 0x1000, 0x2000, VIOMMU_PERM_READ, &done), 0);
	CHECK_HOST_MAP(&e, 0x100000, 0x2000, e.ram1 + 0x1000, false);

	vt_set_case("%s host-owned: a mapping that runs off guest RAM", name);
	unsigned errs = logbuf.errors;
	CHECK_EQ(viommu_domain_map(d, 0x200000, RAM0_SIZE - 0x1000, 0x2000, RW, &done), -EFAULT);
	CHECK_HOST_MAP(&e, 0x200000, 0x1000, e.ram0 + RAM0_SIZE - 0x1000, true);
	CHECK(!fk_find_map(&e.fk, 0x201000));
	CHECK(logbuf.errors > errs && strstr(logbuf.last_error, "outside guest RAM"));
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.errors, 1);

	vt_set_case("%s host-owned: an unmap inside a host mapping", name);
	CHECK_EQ(viommu_domain_unmap(d, 0x11000, 0x1000, &done), 0);
	/* Already in the host when the unmap returns. */
	CHECK(!fk_find_map(&e.fk, 0x11000));
	CHECK_HOST_MAP(&e, 0x10000, 0x1000, e.ram0 + 0x2000, true);
	CHECK_HOST_MAP(&e, 0x12000, 0x2000, e.ram0 + 0x4000, true);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.splits, 2);
	CHECK_EQ(st.unmap_events, 1);

	vt_set_case("%s host-owned: one unmap over several host mappings", name);
	CHECK_EQ(viommu_domain_unmap(d, 0, 1 * GiB, &done), 0);
	CHECK_EQ(e.fk.nr_maps, 1); /* the VMM's own one stays */
	CHECK(fk_find_map(&e.fk, 512 * MiB) != NULL);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.nr_mappings, 0);
	CHECK_EQ(st.mapped_bytes, 0);

	vt_set_case("%s host-owned: the host refuses a map", name);
	e.fk.fail_at = e.fk.calls + 1;
	CHECK_EQ(viommu_domain_map(d, 0x300000, 0x1000, 0x1000, RW, &done), -EIO);
	e.fk.fail_at = 0;
	CHECK(!fk_find_map(&e.fk, 0x300000));
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.errors, 2);

	vt_set_case("%s host-owned: destroy unmaps what the shadow made", name);
	CHECK_EQ(viommu_domain_map(d, 0x310000, 0x1000, 0x3000, RW, &done), 0);
	CHECK_EQ(e.fk.nr_maps, 2);
	viommu_vfio_shadow_destroy(s);
	CHECK_EQ(e.fk.nr_maps, 1);
	/* No notifier any more. */
	CHECK_EQ(viommu_domain_map(d, 0x400000, 0x1000, 0x1000, RW, &done), 0);
	CHECK_EQ(e.fk.nr_maps, 1);

	vt_set_case("%s host-owned: deferred maps", name);
	CHECK_EQ(viommu_domain_unmap(d, 0, 1 * GiB, &done), 0);
	s = shadow(&e, d, VIOMMU_VFIO_SHADOW_F_DEFER_MAPS);
	int calls = e.fk.map_calls;
	for (int i = 0; i < 8; i++)
		CHECK_EQ(viommu_domain_map(d, 0x500000 + i * 0x1000ull, 0x100000 + i * 0x1000ull, 0x1000, RW, &done), 0);
	CHECK_EQ(e.fk.map_calls, calls); /* pending */
	CHECK_EQ(viommu_vfio_shadow_flush(s), 0);
	CHECK_EQ(e.fk.map_calls, calls + 1);
	CHECK_HOST_MAP(&e, 0x500000, 0x8000, e.ram0 + 0x100000, true);
	/* A break in the run sends the pending one. */
	CHECK_EQ(viommu_domain_map(d, 0x600000, 0x200000, 0x1000, RW, &done), 0);
	CHECK_EQ(viommu_domain_map(d, 0x700000, 0x300000, 0x1000, RW, &done), 0);
	CHECK_HOST_MAP(&e, 0x600000, 0x1000, e.ram0 + 0x200000, true);
	CHECK(!fk_find_map(&e.fk, 0x700000));
	/* An unmap sends it too, then unmaps. */
	CHECK_EQ(viommu_domain_unmap(d, 0x503000, 0x1000, &done), 0);
	CHECK_HOST_MAP(&e, 0x700000, 0x1000, e.ram0 + 0x300000, true);
	CHECK(!fk_find_map(&e.fk, 0x503000));
	CHECK_HOST_MAP(&e, 0x500000, 0x3000, e.ram0 + 0x100000, true);
	CHECK_HOST_MAP(&e, 0x504000, 0x4000, e.ram0 + 0x104000, true);
	viommu_vfio_shadow_destroy(s);
	CHECK_EQ(e.fk.nr_maps, 1);

	vt_set_case("%s shadow_create errors", name);
	struct viommu_vfio_shadow_config sc = { .size = sizeof(sc), .domain = d, .regions = e.regions,
						.nr_regions = 2, .flags = 4 };
	CHECK_EQ(viommu_vfio_shadow_create(e.c, &sc, &s), -EINVAL);
	sc.flags = 0;
	struct viommu_mem_region odd = { .gpa = 0x800, .size = 0x1000, .host = e.ram0 };
	sc.regions = &odd;
	sc.nr_regions = 1;
	CHECK_EQ(viommu_vfio_shadow_create(e.c, &sc, &s), -EINVAL);
	sc.regions = e.regions;
	sc.nr_regions = 2;
	sc.domain = NULL;
	CHECK_EQ(viommu_vfio_shadow_create(e.c, &sc, &s), -EINVAL);
	sc.domain = d;
	/* A replay the host refuses: nothing stays mapped, no notifier stays. */
	e.fk.fail_at = e.fk.calls + 2;
	CHECK_EQ(viommu_vfio_shadow_create(e.c, &sc, &s), -EIO);
	e.fk.fail_at = 0;
	CHECK(s == NULL);
	CHECK_EQ(e.fk.nr_maps, 1);
	CHECK_EQ(viommu_domain_map(d, 0x800000, 0x1000, 0x1000, RW, &done), 0);
	CHECK_EQ(e.fk.nr_maps, 1);
	viommu_vfio_shadow_destroy(NULL);

	CHECK_EQ(viommu_vfio_dma_unmap(e.c, 512 * MiB, 4096), 0);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	env_fini(&e);

	vt_set_case("%s shadow on a container without a device", name);
	static struct fake_kernel fk;
	fk_init(&fk);
	struct viommu_vfio_config cfg = { .size = sizeof(cfg), .sysfs_root = root, .kernel = &fk.ops };
	viommu_vfio *vf;
	viommu_vfio_container *c;
	CHECK_EQ(viommu_vfio_create(&cfg, &vf), 0);
	CHECK_EQ(viommu_vfio_container_create(vf, &c), 0);
	sc.domain = (viommu_domain *)&fk; /* never used: refused before */
	CHECK_EQ(viommu_vfio_shadow_create(c, &sc, &s), -EINVAL);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(vf);
}

/* --- guest-owned: the guest's VT-d second-level table in guest RAM ------- */

static int gt_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct env *e = ctx;
	if (e->gt_next >= RAM0_SIZE)
		return -ENOMEM;
	*addr = e->gt_next;
	*host = e->ram0 + e->gt_next;
	memset(*host, 0, 4096);
	e->gt_next += 4096;
	return 0;
}

static void gt_free(void *ctx, uint64_t addr, void *host)
{
	(void)ctx;
	(void)addr;
	(void)host;
}

static void test_guest_owned(enum viommu_vfio_backend b, uint32_t flags, const char *name)
{
	static struct env e;
	uint64_t done;
	struct viommu_vfio_shadow_stats st;
	env_init(&e, b);
	viommu_domain *d = domain(&e, 0);
	viommu_mem *mem = viommu_get_mem(e.v);
	struct viommu_pt_table_ops tops = { .size = sizeof(tops), .alloc = gt_alloc, .free = gt_free, .ctx = &e };
	struct viommu_pt_config pc = { .size = sizeof(pc), .format = VIOMMU_PT_VTD_SL, .levels = 4 };
	viommu_pt *gpt = NULL;
	CHECK_EQ(viommu_pt_create(&pc, &tops, mem, NULL, &gpt), 0);
	/* The guest maps three pages, then programs the root. */
	CHECK_EQ(viommu_pt_map(gpt, 0x40000, 0x10000, 0x3000, RW, &done), 0);
	CHECK_EQ(viommu_domain_set_root(d, viommu_pt_root(gpt)), 0);
	bool defer = flags & VIOMMU_VFIO_SHADOW_F_DEFER_MAPS;

	vt_set_case("%s guest-owned: replay", name);
	viommu_vfio_shadow *s = shadow(&e, d, flags);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.map_events, 3);
	/* Three leaves, one run: one host mapping. */
	CHECK_EQ(e.fk.nr_maps, 1);
	CHECK_HOST_MAP(&e, 0x40000, 0x3000, e.ram0 + 0x10000, true);

	vt_set_case("%s guest-owned: contiguous new leaves", name);
	int calls = e.fk.map_calls;
	CHECK_EQ(viommu_pt_map(gpt, 0x60000, 0x30000, 0x4000, RW, &done), 0);
	CHECK_EQ(viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0x60000, 0x4000), 0);
	if (defer) {
		CHECK_EQ(e.fk.map_calls, calls); /* until the flush */
		CHECK_EQ(viommu_vfio_shadow_flush(s), 0);
		CHECK_EQ(e.fk.map_calls, calls + 1);
		CHECK_HOST_MAP(&e, 0x60000, 0x4000, e.ram0 + 0x30000, true);
	} else {
		/* Each leaf reaches the host before the invalidation returns. */
		CHECK_EQ(e.fk.map_calls, calls + 4);
		for (int i = 0; i < 4; i++)
			CHECK_HOST_MAP(&e, 0x60000 + i * 0x1000ull, 0x1000, e.ram0 + 0x30000 + i * 0x1000, true);
	}

	vt_set_case("%s guest-owned: a 2 MiB page, seen at the guest's invalidation", name);
	CHECK_EQ(viommu_pt_map(gpt, 0x400000, 0, 2 * MiB, VIOMMU_PERM_READ, &done), 0);
	CHECK(!fk_find_map(&e.fk, 0x400000)); /* not before the guest invalidates */
	CHECK_EQ(viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0x400000, 2 * MiB), 0);
	if (defer)
		CHECK_EQ(viommu_vfio_shadow_flush(s), 0);
	CHECK_HOST_MAP(&e, 0x400000, 2 * MiB, e.ram0, false);

	vt_set_case("%s guest-owned: the guest unmaps the middle page", name);
	CHECK_EQ(viommu_pt_unmap(gpt, 0x41000, 0x1000, &done), 0);
	CHECK(fk_find_map(&e.fk, 0x41000) != NULL); /* stale until the invalidation */
	CHECK_EQ(viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0x41000, 0x1000), 0);
	/* Gone from the host when the invalidation returns. */
	CHECK(!fk_find_map(&e.fk, 0x41000));
	CHECK(fk_find_map(&e.fk, 0x40000) != NULL);
	CHECK(fk_find_map(&e.fk, 0x42000) != NULL);
	/* The replayed run was cut in two: both ends put back. */
	CHECK_HOST_MAP(&e, 0x40000, 0x1000, e.ram0 + 0x10000, true);
	CHECK_HOST_MAP(&e, 0x42000, 0x1000, e.ram0 + 0x12000, true);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.splits, 2);

	vt_set_case("%s guest-owned: the guest remaps a page elsewhere", name);
	CHECK_EQ(viommu_pt_unmap(gpt, 0x42000, 0x1000, &done), 0);
	CHECK_EQ(viommu_pt_map(gpt, 0x42000, RAM1_GPA + 0x5000, 0x1000, RW, &done), 0);
	CHECK_EQ(viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0x42000, 0x1000), 0);
	if (defer)
		CHECK_EQ(viommu_vfio_shadow_flush(s), 0);
	CHECK_HOST_MAP(&e, 0x42000, 0x1000, e.ram1 + 0x5000, true);

	vt_set_case("%s guest-owned: the guest maps MMIO", name);
	CHECK_EQ(viommu_pt_map(gpt, 0x800000, 0xfe000000, 0x1000, RW, &done), 0);
	int r = viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0x800000, 0x1000);
	CHECK_EQ(r, -EFAULT);
	CHECK(!fk_find_map(&e.fk, 0x800000));
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.errors, 1);

	vt_set_case("%s guest-owned: the guest drops everything", name);
	CHECK_EQ(viommu_pt_unmap(gpt, 0, 1 * GiB, &done), 0);
	CHECK_EQ(viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, 0, 1 * GiB), 0);
	CHECK_EQ(e.fk.nr_maps, 0);
	viommu_vfio_shadow_get_stats(s, &st);
	CHECK_EQ(st.nr_mappings, 0);

	viommu_vfio_shadow_destroy(s);
	CHECK_EQ(viommu_domain_destroy(d), 0);
	viommu_pt_destroy(gpt);
	env_fini(&e);
}

/* Every host IOMMU call of a shadow's life failing once, in turn: the error
 * comes back from the call that caused it and is counted; nothing is left
 * behind once the shadow and the device are gone. */
static void sweep(enum viommu_vfio_backend b, const char *name)
{
	static struct env e;
	int runs = 0;
	for (long n = 1; n < 1000; n++, runs++) {
		vt_set_case("%s shadow sweep: call %ld fails", name, n);
		uint64_t done;
		env_init(&e, b);
		viommu_domain *d = domain(&e, VIOMMU_DOMAIN_F_HOST_OWNED);
		CHECK_EQ(viommu_domain_map(d, 0x10000, 0x2000, 0x4000, RW, &done), 0);
		CHECK_EQ(viommu_domain_map(d, 0x20000, 0x8000, 0x1000, RW, &done), 0);
		e.fk.fail_at = e.fk.calls + n;
		struct viommu_vfio_shadow_config sc = { .size = sizeof(sc), .domain = d, .regions = e.regions,
							.nr_regions = 2 };
		viommu_vfio_shadow *s = NULL;
		int r[5] = { 0 };
		long failed_before[5];
		unsigned step = 0;
		failed_before[step] = e.fk.failed_call;
		r[step++] = viommu_vfio_shadow_create(e.c, &sc, &s);
		if (s) {
			failed_before[step] = e.fk.failed_call;
			r[step++] = viommu_domain_map(d, 0x100000, 0x100000, 0x3000, RW, &done);
			failed_before[step] = e.fk.failed_call;
			r[step++] = viommu_domain_unmap(d, 0x101000, 0x1000, &done);
			failed_before[step] = e.fk.failed_call;
			r[step++] = viommu_domain_unmap(d, 0, 1 * GiB, &done);
			struct viommu_vfio_shadow_stats st;
			viommu_vfio_shadow_get_stats(s, &st);
			if (e.fk.failed_call)
				CHECK(st.errors >= 1 || !e.fk.failed_call);
			failed_before[step] = e.fk.failed_call;
			viommu_vfio_shadow_destroy(s);
			step++;
		}
		/* The step in which the call failed said so; the others did not fail. */
		for (unsigned i = 0; i < step && i < 4; i++) {
			long after = i + 1 < step ? failed_before[i + 1] : e.fk.failed_call;
			bool hit = after != failed_before[i];
			CHECK_EQ(r[i], hit ? -EIO : 0);
		}
		bool hit_any = e.fk.failed_call != 0;
		e.fk.fail_at = 0;
		viommu_domain_destroy(d);
		env_fini(&e);
		CHECK_EQ(e.fk.nr_maps, 0);
		if (!hit_any)
			break;
	}
	printf("%s shadow sweep: %d runs\n", name, runs + 1);
	CHECK(runs > 5);
}

/* Two domains, each with its shadow on one container, changed from two
 * threads at once: the container serializes the host calls. */
struct worker {
	viommu_domain *d;
	uint64_t iova_base, pa_base;
	int errors;
};

#define WORKER_ROUNDS 2000

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < WORKER_ROUNDS; i++) {
		uint64_t done, off = (uint64_t)(i % 64) * 0x1000;
		if (viommu_domain_map(w->d, w->iova_base + off, w->pa_base + off, 0x1000, RW, &done))
			w->errors++;
		if (viommu_domain_unmap(w->d, w->iova_base + off, 0x1000, &done))
			w->errors++;
	}
	return NULL;
}

static void test_threads(void)
{
	static struct env e;
	vt_set_case("two shadows, two threads, one container");
	env_init(&e, VIOMMU_VFIO_BACKEND_TYPE1);
	struct worker w[2] = {
		{ .d = domain(&e, VIOMMU_DOMAIN_F_HOST_OWNED), .iova_base = 0x1000000, .pa_base = 0 },
		{ .d = domain(&e, VIOMMU_DOMAIN_F_HOST_OWNED), .iova_base = 0x2000000, .pa_base = 0x100000 },
	};
	viommu_vfio_shadow *s0 = shadow(&e, w[0].d, 0), *s1 = shadow(&e, w[1].d, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker_fn, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(w[0].errors + w[1].errors, 0);
	CHECK_EQ(e.fk.nr_maps, 0);
	CHECK_EQ(e.fk.map_calls, 2 * WORKER_ROUNDS);
	struct viommu_vfio_shadow_stats st;
	viommu_vfio_shadow_get_stats(s0, &st);
	CHECK_EQ(st.host_maps, WORKER_ROUNDS);
	CHECK_EQ(st.host_unmaps, WORKER_ROUNDS);
	CHECK_EQ(st.errors, 0);
	viommu_vfio_shadow_destroy(s0);
	viommu_vfio_shadow_destroy(s1);
	viommu_domain_destroy(w[0].d);
	viommu_domain_destroy(w[1].d);
	env_fini(&e);
}

int main(void)
{
	logbuf.print = getenv("VIOMMU_TEST_VERBOSE") != NULL;
	root = vt_sysfs_create();
	if (!root) {
		fprintf(stderr, "cannot make a temporary sysfs tree\n");
		return 1;
	}
	struct vt_pci_dev dev = { .bdf = "0000:01:00.0", .vendor = 0x1234, .device = 0x11e8, .class_code = 0x00ff00,
				  .group = 5, .driver = "vfio-pci", .vfio_dev = 0 };
	CHECK_EQ(vt_sysfs_add(root, &dev), 0);

	test_host_owned(VIOMMU_VFIO_BACKEND_TYPE1, "type1");
	test_host_owned(VIOMMU_VFIO_BACKEND_IOMMUFD, "iommufd");
	test_guest_owned(VIOMMU_VFIO_BACKEND_TYPE1, 0, "type1");
	test_guest_owned(VIOMMU_VFIO_BACKEND_IOMMUFD, 0, "iommufd");
	test_guest_owned(VIOMMU_VFIO_BACKEND_TYPE1, VIOMMU_VFIO_SHADOW_F_DEFER_MAPS, "type1 deferred");
	sweep(VIOMMU_VFIO_BACKEND_TYPE1, "type1");
	test_threads();
	sweep(VIOMMU_VFIO_BACKEND_IOMMUFD, "iommufd");

	vt_sysfs_remove(root);
	return vt_done("test_vfio_shadow");
}
