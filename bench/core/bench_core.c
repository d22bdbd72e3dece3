/* SPDX-License-Identifier: MIT */
/*
 * viommu-bench-core: the IOMMU core's translation and DMA costs.
 *
 *   iotlb_hit_ns               viommu_translate served from the IOTLB (one
 *                              thread, 1024 pages of a host-owned 4-level
 *                              x86-64 table, pseudo-random order)
 *   hash_lookup_ns             a bare open-addressing hash-table lookup of the
 *                              same keys in the same order (this file's own,
 *                              as many slots as the IOTLB has entries)
 *   iotlb_hit_vs_lookup_ratio  iotlb_hit_ns / hash_lookup_ns
 *   walk_miss_ns               a 4-level single-stage walk of a table in guest
 *                              RAM with the IOTLB missing (a 64-entry IOTLB,
 *                              16384 pages visited in pseudo-random order)
 *   nested_cold_refs/_ns       nested 4-level x 4-level, 4 KiB pages, every
 *                              cache empty (after viommu_invalidate_all)
 *   nested_warm_refs/_ns       the next pages of the same 2 MiB region: IOTLB
 *                              miss, page-walk cache and nested TLB warm
 *   dma_4k/64k_vs_memcpy_ratio viommu_dma_read throughput through an IOTLB-warm
 *                              host-owned paging domain mapped with 4 KiB
 *                              pages, over memcpy throughput of the same bytes
 *                              (same source offsets, same destination)
 *   dma_64k_2m_vs_memcpy_ratio the same for 64 KiB with 2 MiB mappings
 *   identity_translate_ns      viommu_translate through an identity domain
 *   dma_64k_identity_vs_memcpy_ratio  64 KiB reads through an identity domain
 *   inval_4k_ns                viommu_invalidate_range of one 4 KiB page of
 *                              a host-owned domain, all PASIDs, with 4096
 *                              IOTLB entries in use (what a strict-mode
 *                              guest's unmap costs)
 *   inval_domain_ns            viommu_invalidate_domain, the same IOTLB
 *   inval_1m_sparse_ns         viommu_invalidate_range of 256 pages (a strict
 *                              guest's unmap of 1 MiB) with 8 entries cached
 *
 * Output: `key=value` lines and `#` comments only. Each measurement runs for
 * about 0.3 s (0.03 s with --quick); ratios interleave their two sides over
 * TRIALS short trials (target / 100 each) and take the best of each, so that
 * on a busy machine each side has trials the scheduler left alone; the
 * nested figures are medians over rounds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#define PAGE 4096ull
#define RAM_BASE 0x40000000ull
#define RAM_SIZE (32ull << 20)
#define TBL_AREA (8ull << 20)          /* page tables from RAM_BASE up */
#define DATA_OFF (16ull << 20)         /* DMA source data */
#define DATA_SIZE (4ull << 20)
#define PADDR_FAR (1ull << 40)         /* outputs nobody reads */

#define HIT_PAGES 1024u
#define TRIALS 30
#define MISS_PAGES 16384u
#define SEQ_LEN 8192u

static double target = 0.3;
static int errors;
static uint8_t *ram;
static uint64_t bump;
static volatile uint64_t sink;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void error(const char *what, int rc)
{
	printf("# ERROR: %s: %d (%s)\n", what, rc, rc < 0 ? strerror(-rc) : "");
	errors++;
}

/* ------------------------------------------------------------------------ */
/* Guest RAM and a table allocator placing tables in it                     */

static int tbl_alloc(void *ctx, uint64_t *addr, void **host)
{
	(void)ctx;
	if (bump + PAGE > TBL_AREA)
		return -ENOMEM;
	*addr = RAM_BASE + bump;
	*host = ram + bump;
	bump += PAGE;
	return 0;
}

static void tbl_free(void *ctx, uint64_t addr, void *host)
{
	(void)ctx;
	(void)addr;
	(void)host; /* bump allocator: freed with the RAM at exit */
}

static const struct viommu_pt_table_ops tbl_ops = {
	.size = sizeof(tbl_ops), .alloc = tbl_alloc, .free = tbl_free,
};

static struct viommu_mem_region ram_region(void)
{
	struct viommu_mem_region r = { .gpa = RAM_BASE, .size = RAM_SIZE, .host = ram };
	return r;
}

static viommu *instance(uint32_t iotlb_entries)
{
	struct viommu_mem_region reg = ram_region();
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.iotlb_entries = iotlb_entries,
	};
	viommu *v = NULL;
	int rc = viommu_create(&cfg, NULL, &v);
	if (rc)
		error("viommu_create", rc);
	return v;
}

static struct viommu_pt_config pt_cfg(enum viommu_pt_format f, uint64_t pgsizes)
{
	struct viommu_pt_config c = { .size = sizeof(c), .format = f, .levels = 4, .pgsize_bitmap = pgsizes };
	return c;
}

static viommu_domain *domain(viommu *v, enum viommu_domain_type type, uint32_t flags, struct viommu_pt_config pt)
{
	struct viommu_domain_config dc = { .size = sizeof(dc), .type = type, .flags = flags, .pt = pt };
	viommu_domain *d = NULL;
	int rc = viommu_domain_create(v, &dc, &d);
	if (rc)
		error("viommu_domain_create", rc);
	return d;
}

static viommu_dev *device(viommu *v, uint8_t devfn)
{
	struct viommu_rid rid = { .bus = 0, .devfn = devfn };
	viommu_dev *dev = NULL;
	int rc = viommu_dev_create(v, rid, &dev);
	if (rc)
		error("viommu_dev_create", rc);
	return dev;
}

#define PROT_ALL (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER)

static int dmap(viommu_domain *d, uint64_t iova, uint64_t pa, uint64_t size)
{
	uint64_t done = 0;
	int rc = viommu_domain_map(d, iova, pa, size, PROT_ALL, &done);
	if (rc || done != size) {
		error("viommu_domain_map", rc ? rc : -EIO);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The baseline: a bare open-addressing hash table (linear probing)         */

struct ht_slot {
	uint64_t key; /* 0 = empty */
	uint64_t val;
};

static struct ht_slot *ht;
static uint64_t ht_mask;

static inline uint64_t ht_hash(uint64_t k)
{
	k *= 0x9e3779b97f4a7c15ull;
	return k ^ (k >> 29);
}

static void ht_put(uint64_t key, uint64_t val)
{
	uint64_t i = ht_hash(key) & ht_mask;
	while (ht[i].key && ht[i].key != key)
		i = (i + 1) & ht_mask;
	ht[i].key = key;
	ht[i].val = val;
}

/* The same job as an IOTLB hit: (domain, PASID, page) -> output address.
 * Not inlined, so both sides pay one call per lookup. The timed loops and
 * this are cache-line aligned: the baseline's speed then does not move with
 * the library's code layout (it did, by 10%). */
static __attribute__((noinline, aligned(64))) int ht_translate(uint32_t domid, uint64_t iova, uint64_t *oaddr)
{
	uint64_t key = (iova >> 12) | (uint64_t)domid << 40 | 1ull << 63;
	uint64_t i = ht_hash(key) & ht_mask;
	for (;;) {
		if (ht[i].key == key) {
			*oaddr = (ht[i].val & ~0xfffull) | (iova & 0xfff);
			return 0;
		}
		if (!ht[i].key)
			return -1;
		i = (i + 1) & ht_mask;
	}
}

/* ------------------------------------------------------------------------ */
/* IOTLB hit vs hash lookup                                                 */

#define HIT_IOVA 0x7f0000000000ull

static __attribute__((aligned(64))) double time_translate_loop(viommu_dev *dev, const uint64_t *seq, double secs,
								uint64_t *iters_out)
{
	uint64_t iters = 0, acc = 0;
	double t0 = now(), t;
	do {
		for (unsigned k = 0; k < SEQ_LEN; k++) {
			struct viommu_translation tr;
			viommu_translate(dev, VIOMMU_NO_PASID, seq[k], VIOMMU_ACCESS_READ, &tr);
			acc += tr.oaddr;
		}
		iters += SEQ_LEN;
		t = now();
	} while (t - t0 < secs);
	sink += acc;
	*iters_out = iters;
	return (t - t0) * 1e9 / (double)iters;
}

static __attribute__((aligned(64))) double time_ht_loop(uint32_t domid, const uint64_t *seq, double secs)
{
	uint64_t iters = 0, acc = 0;
	double t0 = now(), t;
	do {
		for (unsigned k = 0; k < SEQ_LEN; k++) {
			uint64_t o = 0;
			ht_translate(domid, seq[k], &o);
			acc += o;
		}
		iters += SEQ_LEN;
		t = now();
	} while (t - t0 < secs);
	sink += acc;
	return (t - t0) * 1e9 / (double)iters;
}

static void bench_iotlb_hit(void)
{
	viommu *v = instance(0); /* 4096 entries */
	if (!v)
		return;
	viommu_domain *d = domain(v, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				  pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K));
	viommu_dev *dev = device(v, 0x08);
	uint64_t *seq = malloc(SEQ_LEN * sizeof(*seq));
	if (!d || !dev || !seq)
		goto out;
	for (unsigned i = 0; i < HIT_PAGES; i++)
		if (dmap(d, HIT_IOVA + i * PAGE, PADDR_FAR + (uint64_t)i * 7 * PAGE, PAGE))
			goto out;
	int rc = viommu_dev_attach(dev, VIOMMU_NO_PASID, d, NULL);
	if (rc) {
		error("viommu_dev_attach", rc);
		goto out;
	}
	uint64_t r = 0x1234567;
	for (unsigned k = 0; k < SEQ_LEN; k++)
		seq[k] = HIT_IOVA + (rnd(&r) % HIT_PAGES) * PAGE + (rnd(&r) & 0xff8);

	/* Warm the IOTLB and build the baseline table with the same contents. */
	ht_mask = 4096 - 1;
	ht = calloc(ht_mask + 1, sizeof(*ht));
	if (!ht)
		goto out;
	uint32_t domid = viommu_domain_id(d);
	for (unsigned i = 0; i < HIT_PAGES; i++) {
		struct viommu_translation tr;
		uint64_t iova = HIT_IOVA + i * PAGE;
		rc = viommu_translate(dev, VIOMMU_NO_PASID, iova, VIOMMU_ACCESS_READ, &tr);
		if (rc) {
			error("viommu_translate (warm-up)", rc);
			goto out;
		}
		ht_put((iova >> 12) | (uint64_t)domid << 40 | 1ull << 63, tr.oaddr | tr.perms);
	}
	unsigned hits = 0;
	for (unsigned i = 0; i < HIT_PAGES; i++) {
		struct viommu_translation tr;
		uint64_t o = 0;
		uint64_t iova = HIT_IOVA + i * PAGE + 0x10;
		viommu_translate(dev, VIOMMU_NO_PASID, iova, VIOMMU_ACCESS_READ, &tr);
		hits += tr.iotlb_hit;
		if (ht_translate(domid, iova, &o) || o != tr.oaddr) {
			error("baseline table disagrees with the IOTLB", -EINVAL);
			goto out;
		}
	}
	if (hits != HIT_PAGES)
		printf("# WARNING: only %u of %u warm pages hit the IOTLB\n", hits, HIT_PAGES);

	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	double best_hit = 1e30, best_ht = 1e30;
	uint64_t total = 0;
	for (int trial = 0; trial < TRIALS; trial++) {
		uint64_t it;
		double a = time_translate_loop(dev, seq, target / 100, &it);
		double b = time_ht_loop(domid, seq, target / 100);
		total += it;
		if (a < best_hit)
			best_hit = a;
		if (b < best_ht)
			best_ht = b;
	}
	viommu_get_stats(v, &st1);
	uint64_t h = st1.iotlb_hits - st0.iotlb_hits;
	printf("# iotlb_hit: %" PRIu64 " translations, %" PRIu64 " IOTLB hits, %" PRIu64 " misses\n", total, h,
	       st1.iotlb_misses - st0.iotlb_misses);
	if (h != total)
		printf("# WARNING: not every timed translation was an IOTLB hit\n");
	double ratio = best_hit / best_ht;
	printf("iotlb_hit_ns=%.2f\n", best_hit);
	printf("hash_lookup_ns=%.2f\n", best_ht);
	printf("iotlb_hit_vs_lookup_ratio=%.2f\n", ratio);
	printf("iotlb_hit_vs_lookup_ratio_goal_met=%s\n", ratio <= 2.0 ? "yes" : "no");
out:
	free(ht);
	ht = NULL;
	free(seq);
	viommu_destroy(v);
}

/* ------------------------------------------------------------------------ */
/* 4-level walk, IOTLB miss                                                 */

#define MISS_IOVA 0x0000123400000000ull

static void bench_walk_miss(void)
{
	struct viommu_mem_region reg = ram_region();
	struct viommu_mem_config mc = { .size = sizeof(mc), .regions = &reg, .nr_regions = 1 };
	viommu_mem *mem = NULL;
	viommu_pt *pt = NULL;
	uint64_t *seq = NULL;
	viommu *v = instance(64); /* the smallest IOTLB */
	int rc = viommu_mem_create(&mc, NULL, &mem);
	if (rc || !v) {
		error("setup", rc);
		goto out;
	}
	struct viommu_pt_config c = pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K);
	rc = viommu_pt_create(&c, &tbl_ops, mem, NULL, &pt);
	if (rc) {
		error("viommu_pt_create", rc);
		goto out;
	}
	uint64_t done = 0;
	rc = viommu_pt_map(pt, MISS_IOVA, PADDR_FAR, MISS_PAGES * PAGE, PROT_ALL, &done);
	if (rc) {
		error("viommu_pt_map", rc);
		goto out;
	}
	viommu_domain *d = domain(v, VIOMMU_DOMAIN_PAGING, 0, pt_cfg(VIOMMU_PT_X86_64, 0));
	viommu_dev *dev = device(v, 0x10);
	if (!d || !dev)
		goto out;
	if ((rc = viommu_domain_set_root(d, viommu_pt_root(pt))) ||
	    (rc = viommu_dev_attach(dev, VIOMMU_NO_PASID, d, NULL))) {
		error("set_root/attach", rc);
		goto out;
	}
	seq = malloc(SEQ_LEN * sizeof(*seq));
	if (!seq)
		goto out;
	uint64_t r = 0x9876543;
	for (unsigned k = 0; k < SEQ_LEN; k++)
		seq[k] = MISS_IOVA + (rnd(&r) % MISS_PAGES) * PAGE;

	struct viommu_translation tr;
	viommu_invalidate_all(v);
	rc = viommu_translate(dev, VIOMMU_NO_PASID, seq[0], VIOMMU_ACCESS_READ, &tr);
	if (rc || tr.refs != 4)
		printf("# WARNING: a cold single-stage translation: rc %d, refs %u (expected 4)\n", rc, tr.refs);

	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	uint64_t iters = 0;
	double ns = 1e30;
	for (int trial = 0; trial < 5; trial++) {
		uint64_t it;
		double t = time_translate_loop(dev, seq, target / 5, &it);
		iters += it;
		if (t < ns)
			ns = t;
	}
	viommu_get_stats(v, &st1);
	uint64_t miss = st1.iotlb_misses - st0.iotlb_misses;
	uint64_t refs = st1.refs - st0.refs;
	printf("# walk_miss: %" PRIu64 " translations, %.1f%% IOTLB misses, %.2f refs per miss\n", iters,
	       100.0 * (double)miss / (double)iters, miss ? (double)refs / (double)miss : 0.0);
	printf("walk_miss_ns=%.1f\n", ns);
out:
	free(seq);
	viommu_destroy(v);
	viommu_pt_destroy(pt);
	viommu_mem_destroy(mem);
}

/* ------------------------------------------------------------------------ */
/* Nested, cold and warm                                                    */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, uint64_t n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n ? v[n / 2] : 0;
}

#define NEST_IOVA 0x0000555555400000ull /* 2 MiB aligned */
#define NEST_OUT_GPA 0x0000000200000000ull
#define NEST_OUT_HPA PADDR_FAR

static void bench_nested(void)
{
	struct viommu_mem_region reg = ram_region();
	struct viommu_mem_config mc = { .size = sizeof(mc), .regions = &reg, .nr_regions = 1 };
	viommu_mem *mem = NULL;
	viommu_pt *s1 = NULL;
	viommu *v = instance(0);
	int rc = viommu_mem_create(&mc, NULL, &mem);
	if (rc || !v) {
		error("setup", rc);
		goto out;
	}
	/* Stage 1 in guest RAM: 512 pages of one 2 MiB region. */
	struct viommu_pt_config c1 = pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K);
	uint64_t tables_from = RAM_BASE + bump;
	rc = viommu_pt_create(&c1, &tbl_ops, mem, NULL, &s1);
	uint64_t done = 0;
	if (!rc)
		rc = viommu_pt_map(s1, NEST_IOVA, NEST_OUT_GPA, 512 * PAGE, PROT_ALL, &done);
	if (rc) {
		error("stage-1 table", rc);
		goto out;
	}
	uint64_t tables_to = RAM_BASE + bump;
	/* Stage 2, host-owned, 4 KiB pages only: the stage-1 tables one to one,
	 * and the outputs. */
	viommu_domain *d = domain(v, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED,
				  pt_cfg(VIOMMU_PT_VTD_SL, VIOMMU_PGSIZE_4K));
	viommu_dev *dev = device(v, 0x18);
	if (!d || !dev || dmap(d, tables_from, tables_from, tables_to - tables_from) ||
	    dmap(d, NEST_OUT_GPA, NEST_OUT_HPA, 512 * PAGE))
		goto out;
	struct viommu_stage1 st1cfg = { .size = sizeof(st1cfg), .pt = c1, .root = viommu_pt_root(s1) };
	rc = viommu_dev_attach(dev, 1, d, &st1cfg);
	if (rc) {
		error("viommu_dev_attach", rc);
		goto out;
	}

	/* Timer overhead, to take off the single cold translation's time. */
	double ov = 1e30;
	for (int k = 0; k < 1000; k++) {
		double a = now(), b = now();
		if (b - a < ov)
			ov = b - a;
	}

	uint32_t cold_refs = 0, warm_refs = 0;
	uint64_t rounds = 0, cold_odd = 0, warm_odd = 0;
	double t_start = now();
	/* Per round times; the medians are reported (a round the scheduler
	 * interrupts does not move them). */
	enum { MAX_ROUNDS = 1 << 16 };
	double *cold_ts = malloc(MAX_ROUNDS * sizeof(double)), *warm_ts = malloc(MAX_ROUNDS * sizeof(double));
	if (!cold_ts || !warm_ts) {
		error("malloc", -ENOMEM);
		goto out_free;
	}
	do {
		struct viommu_translation tr;
		viommu_invalidate_all(v);
		double a = now();
		rc = viommu_translate(dev, 1, NEST_IOVA, VIOMMU_ACCESS_READ, &tr);
		double b = now();
		if (rc) {
			error("nested translate", rc);
			goto out_free;
		}
		cold_ts[rounds] = b - a - ov;
		if (!rounds)
			cold_refs = tr.refs;
		else if (tr.refs != cold_refs)
			cold_odd++;
		uint32_t refs_sum = 0, first = 0;
		a = now();
		for (unsigned p = 1; p < 512; p++) {
			viommu_translate(dev, 1, NEST_IOVA + p * PAGE, VIOMMU_ACCESS_READ, &tr);
			refs_sum += tr.refs;
			if (p == 1)
				first = tr.refs;
		}
		b = now();
		warm_ts[rounds] = (b - a) / 511;
		if (!rounds)
			warm_refs = first;
		if (refs_sum != 511u * warm_refs)
			warm_odd++;
		rounds++;
	} while (now() - t_start < target && rounds < MAX_ROUNDS);

	printf("# nested: %" PRIu64 " rounds of (invalidate_all, 1 cold + 511 warm translations); timer overhead "
	       "%.1f ns taken off each cold one\n", rounds, ov * 1e9);
	if (cold_odd || warm_odd)
		printf("# WARNING: %" PRIu64 " cold and %" PRIu64 " warm rounds had other reference counts\n",
		       cold_odd, warm_odd);
	printf("nested_cold_refs=%u\n", cold_refs);
	printf("nested_cold_ns=%.1f\n", median(cold_ts, rounds) * 1e9);
	printf("nested_warm_refs=%u\n", warm_refs);
	printf("nested_warm_ns=%.1f\n", median(warm_ts, rounds) * 1e9);
out_free:
	free(cold_ts);
	free(warm_ts);
out:
	viommu_destroy(v);
	viommu_pt_destroy(s1);
	viommu_mem_destroy(mem);
}

/* ------------------------------------------------------------------------ */
/* DMA vs memcpy                                                            */

#define DMA_IOVA 0x0000000800000000ull /* 2 MiB aligned */
#define WORKSET (512u << 10)           /* source bytes cycled through */

static uint8_t dst[64 << 10] __attribute__((aligned(64)));

static double time_memcpy(size_t len, double secs)
{
	uint64_t bytes = 0;
	double t0 = now(), t;
	do {
		for (size_t off = 0; off < WORKSET; off += len) {
			memcpy(dst, ram + DATA_OFF + off, len);
			__asm__ volatile("" : : "r"(dst) : "memory");
		}
		bytes += WORKSET;
		t = now();
	} while (t - t0 < secs);
	return (double)bytes / (t - t0);
}

static uint64_t dma_base = DMA_IOVA; /* where the bytes are for the device */

static double time_dma(viommu_dev *dev, size_t len, double secs)
{
	uint64_t bytes = 0;
	double t0 = now(), t;
	do {
		for (size_t off = 0; off < WORKSET; off += len) {
			int rc = viommu_dma_read(dev, VIOMMU_NO_PASID, dma_base + off, dst, len, 0, NULL, NULL);
			if (rc) {
				error("viommu_dma_read", rc);
				return 0;
			}
			__asm__ volatile("" : : "r"(dst) : "memory");
		}
		bytes += WORKSET;
		t = now();
	} while (t - t0 < secs);
	return (double)bytes / (t - t0);
}

/* Throughput ratio dma / memcpy for `len`-byte reads; best of TRIALS each. */
static double dma_ratio(viommu_dev *dev, size_t len, double *dma_gbs, double *cpy_gbs)
{
	double best_dma = 0, best_cpy = 0;
	for (int trial = 0; trial < TRIALS; trial++) {
		double c = time_memcpy(len, target / 100);
		double d = time_dma(dev, len, target / 100);
		if (c > best_cpy)
			best_cpy = c;
		if (d > best_dma)
			best_dma = d;
	}
	*dma_gbs = best_dma / 1e9;
	*cpy_gbs = best_cpy / 1e9;
	return best_cpy > 0 ? best_dma / best_cpy : 0;
}

static void bench_dma(void)
{
	viommu *v = instance(0);
	if (!v)
		return;
	viommu_domain *d4 = domain(v, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				   pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K));
	viommu_domain *d2 = domain(v, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				   pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M));
	viommu_domain *di = domain(v, VIOMMU_DOMAIN_IDENTITY, 0, (struct viommu_pt_config){ .size = 0 });
	viommu_dev *dev4 = device(v, 0x20), *dev2 = device(v, 0x28), *devi = device(v, 0x30);
	if (!d4 || !d2 || !di || !dev4 || !dev2 || !devi || dmap(d4, DMA_IOVA, RAM_BASE + DATA_OFF, DATA_SIZE) ||
	    dmap(d2, DMA_IOVA, RAM_BASE + DATA_OFF, DATA_SIZE))
		goto out;
	int rc = viommu_dev_attach(dev4, VIOMMU_NO_PASID, d4, NULL);
	if (!rc)
		rc = viommu_dev_attach(dev2, VIOMMU_NO_PASID, d2, NULL);
	if (!rc)
		rc = viommu_dev_attach(devi, VIOMMU_NO_PASID, di, NULL);
	if (rc) {
		error("viommu_dev_attach", rc);
		goto out;
	}
	for (uint64_t k = 0; k < DATA_SIZE / 8; k++)
		((uint64_t *)(ram + DATA_OFF))[k] = k * 0x9e3779b97f4a7c15ull;

	/* Correctness first: the DMA reads what memcpy reads. */
	static uint8_t check[64 << 10];
	rc = viommu_dma_read(dev4, VIOMMU_NO_PASID, DMA_IOVA + 8192, check, sizeof(check), 0, NULL, NULL);
	if (rc || memcmp(check, ram + DATA_OFF + 8192, sizeof(check))) {
		error("viommu_dma_read gave other bytes than memcpy", rc ? rc : -EIO);
		goto out;
	}
	/* Warm the IOTLB over the working set. */
	time_dma(dev4, 64 << 10, 0);
	time_dma(dev2, 64 << 10, 0);

	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	double dg, cg;
	double r4 = dma_ratio(dev4, 4096, &dg, &cg);
	printf("# dma 4 KiB reads, 4 KiB pages: dma %.2f GB/s, memcpy %.2f GB/s\n", dg, cg);
	double r64 = dma_ratio(dev4, 64 << 10, &dg, &cg);
	printf("# dma 64 KiB reads, 4 KiB pages: dma %.2f GB/s, memcpy %.2f GB/s\n", dg, cg);
	double r64l = dma_ratio(dev2, 64 << 10, &dg, &cg);
	printf("# dma 64 KiB reads, 2 MiB pages: dma %.2f GB/s, memcpy %.2f GB/s\n", dg, cg);
	viommu_get_stats(v, &st1);
	dma_base = RAM_BASE + DATA_OFF;
	double r64i = dma_ratio(devi, 64 << 10, &dg, &cg);
	printf("# dma 64 KiB reads, identity domain: dma %.2f GB/s, memcpy %.2f GB/s\n", dg, cg);
	dma_base = DMA_IOVA;
	/* One translation through the identity domain. */
	double best_id = 1e30;
	for (int trial = 0; trial < 5; trial++) {
		uint64_t n = 0, acc = 0;
		double t0 = now(), t;
		do {
			for (unsigned k = 0; k < 4096; k++) {
				struct viommu_translation tr;
				viommu_translate(devi, VIOMMU_NO_PASID, RAM_BASE + k * PAGE, VIOMMU_ACCESS_READ, &tr);
				acc += tr.oaddr;
			}
			n += 4096;
			t = now();
		} while (t - t0 < target / 10);
		sink += acc;
		if ((t - t0) * 1e9 / (double)n < best_id)
			best_id = (t - t0) * 1e9 / (double)n;
	}
	printf("# dma: %" PRIu64 " translations, %" PRIu64 " IOTLB misses (working set %u KiB)\n",
	       st1.translations - st0.translations, st1.iotlb_misses - st0.iotlb_misses, WORKSET >> 10);
	printf("dma_4k_vs_memcpy_ratio=%.3f\n", r4);
	printf("dma_64k_vs_memcpy_ratio=%.3f\n", r64);
	printf("dma_64k_vs_memcpy_ratio_goal_met=%s\n", r64 >= 0.9 ? "yes" : "no");
	printf("dma_64k_2m_vs_memcpy_ratio=%.3f\n", r64l);
	printf("dma_64k_identity_vs_memcpy_ratio=%.3f\n", r64i);
	printf("identity_translate_ns=%.2f\n", best_id);
out:
	viommu_destroy(v);
}

/* ------------------------------------------------------------------------ */
/* Invalidation of one page, and of a domain                                */

#define INV_IOVA 0x0000001000000000ull
#define INV_PAGES 4096u

/* Translate every page: the IOTLB (4096 entries) full of the domain's. */
static int inval_warm(viommu_dev *dev)
{
	for (unsigned i = 0; i < INV_PAGES; i++) {
		struct viommu_translation tr;
		int rc = viommu_translate(dev, VIOMMU_NO_PASID, INV_IOVA + i * PAGE, VIOMMU_ACCESS_READ, &tr);
		if (rc) {
			error("viommu_translate (warm-up)", rc);
			return -1;
		}
	}
	return 0;
}

static void bench_inval(void)
{
	viommu *v = instance(0); /* 4096 entries */
	if (!v)
		return;
	viommu_domain *d = domain(v, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED,
				  pt_cfg(VIOMMU_PT_X86_64, VIOMMU_PGSIZE_4K));
	viommu_dev *dev = device(v, 0x38);
	if (!d || !dev || dmap(d, INV_IOVA, PADDR_FAR, INV_PAGES * PAGE))
		goto out;
	int rc = viommu_dev_attach(dev, VIOMMU_NO_PASID, d, NULL);
	if (rc) {
		error("viommu_dev_attach", rc);
		goto out;
	}
	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	if (inval_warm(dev))
		goto out;
	viommu_get_stats(v, &st1);
	/* Rounds of 256 single-page invalidations, the IOTLB warmed again
	 * (untimed) between rounds. */
	uint64_t n = 0, r = 0x2468ace;
	double spent = 0, best = 1e30;
	while (spent < target / 2 || n < 1024) {
		double t0 = now();
		for (unsigned k = 0; k < 256; k++) {
			uint64_t p = rnd(&r) % INV_PAGES;
			rc = viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, INV_IOVA + p * PAGE, PAGE);
			if (rc) {
				error("viommu_invalidate_range", rc);
				goto out;
			}
		}
		double t = now() - t0;
		spent += t;
		n += 256;
		if (t / 256 < best)
			best = t / 256;
		if (inval_warm(dev))
			goto out;
	}
	printf("# inval: %" PRIu64 " single-page invalidations, IOTLB of 4096 entries warmed with %" PRIu64
	       " misses (%" PRIu64 " evictions) between rounds of 256\n",
	       n, st1.iotlb_misses - st0.iotlb_misses, st1.iotlb_evictions - st0.iotlb_evictions);
	printf("inval_4k_ns=%.1f\n", best * 1e9);
	best = 1e30;
	for (int k = 0; k < 20 || spent < target; k++) {
		double t0 = now();
		viommu_invalidate_domain(d);
		double t = now() - t0;
		spent += t;
		if (t < best)
			best = t;
		if (inval_warm(dev))
			goto out;
	}
	printf("inval_domain_ns=%.1f\n", best * 1e9);
	/* A strict guest's unmap of a 1 MiB buffer: 256 pages invalidated,
	 * with few entries cached (its rings' pages and the buffer's first). */
	viommu_invalidate_all(v);
	best = 1e30;
	spent = 0;
	for (int k = 0; k < 1000 || spent < target / 2; k++) {
		for (unsigned i = 0; i < 8; i++) {
			struct viommu_translation tr;
			rc = viommu_translate(dev, VIOMMU_NO_PASID, INV_IOVA + (i * 613u % INV_PAGES) * PAGE,
					      VIOMMU_ACCESS_READ, &tr);
			if (rc) {
				error("viommu_translate", rc);
				goto out;
			}
		}
		double t0 = now();
		rc = viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, INV_IOVA + 1024 * PAGE, 256 * PAGE);
		double t = now() - t0;
		if (rc) {
			error("viommu_invalidate_range", rc);
			goto out;
		}
		spent += t;
		if (t < best)
			best = t;
	}
	printf("inval_1m_sparse_ns=%.1f\n", best * 1e9);
out:
	viommu_destroy(v);
}

/* ------------------------------------------------------------------------ */
/* A large buffer mapped for zero-copy I/O (viommu_dma_map_ptr)             */

/* A strict guest's 1 MiB read, as virtio-blk maps it: a fresh mapping (its
 * range invalidated since the last use, so nothing of it is cached) mapped
 * for writing in one call. Against the same call through an identity
 * domain (no IOMMU). Best of many rounds, ns per 1 MiB: cold in the IOTLB,
 * the table itself warm in the CPU's caches. */
#define MAPPTR_IOVA 0x7ff00000ull /* mid-table: entries 256 to 511 of one last-level table */
static uint64_t map_ptr_rounds;
static double time_map_ptr(viommu_dev *dev, viommu_domain *d, uint64_t iova)
{
	double best = 1e30, spent = 0;
	for (int k = 0; k < 2000 || spent < target / 2; k++, map_ptr_rounds++) {
		if (d) {
			int rc = viommu_invalidate_range(d, VIOMMU_NO_PASID, 1, iova, 1u << 20);
			if (rc) {
				error("viommu_invalidate_range", rc);
				return -1;
			}
		}
		double t0 = now();
		uint64_t at = 0;
		while (at < (1u << 20)) {
			void *host;
			uint64_t got;
			struct viommu_fault_record f;
			int rc = viommu_dma_map_ptr(dev, VIOMMU_NO_PASID, iova + at, (1u << 20) - at, VIOMMU_ACCESS_WRITE,
						    &host, &got, &f);
			if (rc) {
				error("viommu_dma_map_ptr", rc);
				return -1;
			}
			sink += (uintptr_t)host;
			at += got;
		}
		double t = now() - t0;
		spent += t;
		if (t < best)
			best = t;
	}
	return best * 1e9;
}

static void bench_map_ptr(void)
{
	viommu *v = instance(0);
	if (!v)
		return;
	/* A guest-owned table, as a VT-d guest's: built here in guest RAM,
	 * read by the walks through the instance's memory. */
	struct viommu_pt_config c = pt_cfg(VIOMMU_PT_VTD_SL, VIOMMU_PGSIZE_4K);
	viommu_pt *pt = NULL;
	uint64_t done = 0;
	int rc = viommu_pt_create(&c, &tbl_ops, viommu_get_mem(v), NULL, &pt);
	if (!rc)
		rc = viommu_pt_map(pt, MAPPTR_IOVA, RAM_BASE + DATA_OFF, 1u << 20, PROT_ALL, &done);
	if (rc) {
		error("viommu_pt_create/map", rc);
		goto out;
	}
	viommu_domain *d = domain(v, VIOMMU_DOMAIN_PAGING, 0, pt_cfg(VIOMMU_PT_VTD_SL, VIOMMU_PGSIZE_4K));
	viommu_domain *id = domain(v, VIOMMU_DOMAIN_IDENTITY, 0, (struct viommu_pt_config){ .size = 0 });
	viommu_dev *dev = device(v, 0x40), *idev = device(v, 0x48);
	if (!d || !id || !dev || !idev)
		goto out;
	rc = viommu_domain_set_root(d, viommu_pt_root(pt));
	if (!rc)
		rc = viommu_dev_attach(dev, VIOMMU_NO_PASID, d, NULL);
	if (!rc)
		rc = viommu_dev_attach(idev, VIOMMU_NO_PASID, id, NULL);
	if (rc) {
		error("viommu_domain_set_root/viommu_dev_attach", rc);
		goto out;
	}
	struct viommu_stats st0, st1;
	viommu_get_stats(v, &st0);
	map_ptr_rounds = 0;
	double cold = time_map_ptr(dev, d, MAPPTR_IOVA);
	viommu_get_stats(v, &st1);
	uint64_t rounds = map_ptr_rounds ? map_ptr_rounds : 1;
	double ident = time_map_ptr(idev, NULL, RAM_BASE + DATA_OFF);
	if (cold < 0 || ident < 0)
		goto out;
	printf("# map_ptr: 1 MiB of 4 KiB pages (a guest-owned VT-d second-level table) mapped for writing, its "
	       "range invalidated before each; per 1 MiB: %.1f translations, %.1f walks, %.1f table references\n",
	       (double)(st1.translations - st0.translations) / (double)rounds,
	       (double)(st1.walks - st0.walks) / (double)rounds, (double)(st1.refs - st0.refs) / (double)rounds);
	printf("map_ptr_1m_cold_ns=%.1f\n", cold);
	printf("map_ptr_1m_identity_ns=%.1f\n", ident);
out:
	viommu_pt_destroy(pt);
	viommu_destroy(v);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			target = 0.03;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ram = aligned_alloc(PAGE, RAM_SIZE);
	if (!ram) {
		printf("# ERROR: out of memory\n");
		return 1;
	}
	memset(ram, 0, RAM_SIZE);
	double t0 = now();
	printf("# viommu-bench-core, library %s\n", viommu_version());
	bench_iotlb_hit();
	bench_walk_miss();
	bench_nested();
	bench_dma();
	bench_inval();
	bench_map_ptr();
	printf("# total %.1f s, %d error(s)\n", now() - t0, errors);
	free(ram);
	return errors ? 1 : 0;
}
