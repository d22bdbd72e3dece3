/* SPDX-License-Identifier: MIT */
/*
 * viommu-bench-pt: page-table throughput.
 *
 * For each format and depth (x86-64 4/5 levels, VT-d second level 3/4/5,
 * AMD-Vi v1 modes 3/4/6) and page size (4K, 2M, 1G; for AMD-Vi also 64K, a
 * next-level-7 page replicated over 16 entries):
 *   map     viommu_pt_map of one page per call over N consecutive pages, host-
 *           owned tables; pages/s and MiB/s. Repeated in rounds with unmap, so
 *           all but the first round find their tables already there.
 *   unmap   viommu_pt_unmap of one page per call, same pages.
 *   lookup  viommu_pt_lookup of pseudo-random addresses in the mapped range.
 *   walk    viommu_pt_walk over a viommu_mem "guest RAM" region that holds the
 *           very same kind of table (built by a viommu_pt with a table
 *           allocator placing its tables there); refs per walk is the mean
 *           number of entry reads a walk made.
 *
 * Output: `key=value` lines and `#` comments only. Every measurement does a
 * fixed amount of work, sized by a short pilot run to take about 0.2 s on the
 * machine at hand (0.02 s with --quick); one that overruns a lot stops
 * early (the rate stays right). The `#` lines say how long each took.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <viommu/pagetable.h>

struct fmt_case {
	const char *name;
	enum viommu_pt_format format;
	uint32_t levels;
};

static const struct fmt_case fmts[] = {
	{ "x86_64_l4", VIOMMU_PT_X86_64, 4 }, { "x86_64_l5", VIOMMU_PT_X86_64, 5 },
	{ "vtd_sl_l3", VIOMMU_PT_VTD_SL, 3 }, { "vtd_sl_l4", VIOMMU_PT_VTD_SL, 4 },
	{ "vtd_sl_l5", VIOMMU_PT_VTD_SL, 5 }, { "amd_v1_m3", VIOMMU_PT_AMD_V1, 3 },
	{ "amd_v1_m4", VIOMMU_PT_AMD_V1, 4 }, { "amd_v1_m6", VIOMMU_PT_AMD_V1, 6 },
};

/* pages: how many consecutive pages one round maps (and unmaps). */
struct size_case {
	const char *name;
	uint64_t size;
	int amd_only;
	uint64_t pages;
};

static const struct size_case sizes[] = {
	{ "4k", 1ull << 12, 0, 16384 },
	{ "64k", 1ull << 16, 1, 4096 },
	{ "2m", 1ull << 21, 0, 4096 },
	{ "1g", 1ull << 30, 0, 64 },
};

#define TARGET_SECONDS 0.2
#define PILOT_SECONDS 0.02
/* Guards against a bad pilot (a busy machine): stop a measurement early. */
#define MAX_MAP_UNMAP_SECONDS 0.5
#define MAX_TRANSLATE_SECONDS 0.3
#define PADDR_BASE (1ull << 40)
#define GUEST_RAM_GPA 0x10000000ull
#define GUEST_RAM_SIZE (32ull << 20)

static int quick;
static int failures;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *what, const char *fmt, const char *size, int rc)
{
	printf("# ERROR: %s %s %s: %d (%s)\n", what, fmt, size, rc, rc < 0 ? strerror(-rc) : "");
	failures++;
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 17;
}

/* -------- a table allocator over the guest RAM region -------- */

struct guest_ram {
	uint8_t *host;
	uint64_t gpa;
	uint64_t size;
	uint64_t next;    /* bump pointer (offset) */
	uint64_t *freed;  /* stack of freed offsets */
	uint64_t nfreed;
	uint64_t in_use;
};

static int ram_table_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct guest_ram *g = ctx;
	uint64_t off;

	if (g->nfreed) {
		off = g->freed[--g->nfreed];
	} else {
		if (g->next + 4096 > g->size)
			return -ENOMEM;
		off = g->next;
		g->next += 4096;
	}
	g->in_use++;
	*addr = g->gpa + off;
	*host = g->host + off;
	return 0;
}

static void ram_table_free(void *ctx, uint64_t addr, void *host)
{
	struct guest_ram *g = ctx;
	(void)host;
	g->freed[g->nfreed++] = addr - g->gpa;
	g->in_use--;
}

/* -------- measurements -------- */

static double target_s(void)
{
	return quick ? TARGET_SECONDS / 10 : TARGET_SECONDS;
}

/* How many units of work of `unit_s` seconds each make about the target. */
static uint64_t work_for(double unit_s)
{
	if (unit_s <= 0)
		unit_s = 1e-9;
	double n = target_s() / unit_s;
	return n < 1 ? 1 : n > 1e12 ? (uint64_t)1e12 : (uint64_t)n + 1;
}

static int map_range(viommu_pt *pt, const struct size_case *sc, uint64_t pages)
{
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t mapped = 0;
		int rc = viommu_pt_map(pt, i * sc->size, PADDR_BASE + i * sc->size, sc->size,
				       VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &mapped);
		if (rc || mapped != sc->size)
			return rc ? rc : -EIO;
	}
	return 0;
}

static int unmap_range(viommu_pt *pt, const struct size_case *sc, uint64_t pages)
{
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t unmapped = 0;
		int rc = viommu_pt_unmap(pt, i * sc->size, sc->size, &unmapped);
		if (rc || unmapped != sc->size)
			return rc ? rc : -EIO;
	}
	return 0;
}

/*
 * Translations of pseudo-random addresses of the mapped range, through
 * viommu_pt_lookup (pt set) or viommu_pt_walk. Prints <what>_<key>_per_s and
 * refs_per_<what>_<key>. Returns 0 or -1.
 */
static int measure_translate(const char *what, const char *key, const struct size_case *sc, uint64_t pages,
			     viommu_pt *pt, const struct viommu_pt_config *cfg, viommu_mem *mem, uint64_t root)
{
	const uint32_t access = VIOMMU_ACCESS_READ | VIOMMU_ACCESS_PRIV;
	uint64_t seed = 1, sum = 0, refs = 0, n = 0, target = 0;
	double t0 = now(), t1 = t0;

	/* a pilot of PILOT_SECONDS sizes the run; then `target` translations, timed */
	for (int pilot = 1; pilot >= 0; pilot--) {
		uint64_t todo = pilot ? UINT64_MAX : target;
		n = refs = 0;
		t0 = now();
		while (n < todo) {
			for (unsigned k = 0; k < 1024; k++, n++) {
				uint64_t r = lcg(&seed);
				uint64_t iova = (r % pages) * sc->size + ((r * 8) & (sc->size - 1));
				struct viommu_pt_result res;
				int rc = pt ? viommu_pt_lookup(pt, iova, access, &res)
					    : viommu_pt_walk(cfg, mem, root, iova, access, &res);
				if (rc || res.page_size != sc->size ||
				    res.oaddr != PADDR_BASE + (iova / sc->size) * sc->size + (iova & (sc->size - 1))) {
					printf("# ERROR: %s %s iova 0x%" PRIx64 ": rc %d fault %s page size %" PRIu64
					       " oaddr 0x%" PRIx64 "\n",
					       what, key, iova, rc, viommu_fault_reason_name(res.fault), res.page_size,
					       res.oaddr);
					failures++;
					return -1;
				}
				sum += res.oaddr;
				refs += res.refs;
			}
			t1 = now();
			if (t1 - t0 > (pilot ? PILOT_SECONDS : MAX_TRANSLATE_SECONDS))
				break;
		}
		target = work_for((t1 - t0) / (double)n);
	}
	printf("%s_%s_per_s=%.0f\n", what, key, (double)n / (t1 - t0));
	printf("refs_per_%s_%s=%.2f\n", what, key, (double)refs / (double)n);
	if (sum == 0)
		printf("# (checksum 0)\n");
	return 0;
}

/* Map, unmap and lookup over host-owned tables. */
static void measure(const struct fmt_case *fc, const struct size_case *sc)
{
	struct viommu_pt_config cfg = { .size = sizeof(cfg), .format = fc->format, .levels = fc->levels };
	viommu_pt *pt = NULL;
	char key[96];
	const uint64_t pages = sc->pages;
	int rc;

	rc = viommu_pt_create(&cfg, NULL, NULL, NULL, &pt);
	if (rc) {
		fail("create", fc->name, sc->name, rc);
		return;
	}
	if (!(cfg.pgsize_bitmap & sc->size)) {
		printf("# %s does not grant %s pages\n", fc->name, sc->name);
		viommu_pt_destroy(pt);
		return;
	}
	snprintf(key, sizeof(key), "%s_%s", fc->name, sc->name);

	/* A first round allocates the tables; pilot rounds size the run, so
	 * that the maps take about the target time. */
	double t0 = now();
	if ((rc = map_range(pt, sc, pages)) || (rc = unmap_range(pt, sc, pages))) {
		fail("map/unmap", fc->name, sc->name, rc);
		goto out;
	}
	double t1 = now(), t_pilot = 0;
	uint64_t pilot_rounds = 0;
	do {
		double a = now();
		if ((rc = map_range(pt, sc, pages))) {
			fail("map", fc->name, sc->name, rc);
			goto out;
		}
		t_pilot += now() - a;
		if ((rc = unmap_range(pt, sc, pages))) {
			fail("unmap", fc->name, sc->name, rc);
			goto out;
		}
		pilot_rounds++;
	} while (now() - t1 < PILOT_SECONDS);
	printf("# first round %s: %.3f ms (allocating tables); later map rounds %.3f ms\n", key,
	       (t1 - t0) * 1e3, t_pilot / (double)pilot_rounds * 1e3);
	uint64_t rounds = work_for(t_pilot / (double)pilot_rounds), done = 0;
	double t_map = 0, t_unmap = 0;
	for (uint64_t r = 0; r < rounds && t_map + t_unmap < MAX_MAP_UNMAP_SECONDS; r++) {
		double a = now();
		if ((rc = map_range(pt, sc, pages))) {
			fail("map", fc->name, sc->name, rc);
			goto out;
		}
		double b = now();
		if ((rc = unmap_range(pt, sc, pages))) {
			fail("unmap", fc->name, sc->name, rc);
			goto out;
		}
		double c = now();
		t_map += b - a;
		t_unmap += c - b;
		done += pages;
	}
	double mib = (double)done * (double)sc->size / (1024.0 * 1024.0);
	printf("map_%s_pages_per_s=%.0f\n", key, (double)done / t_map);
	printf("map_%s_mib_per_s=%.0f\n", key, mib / t_map);
	printf("unmap_%s_pages_per_s=%.0f\n", key, (double)done / t_unmap);
	printf("unmap_%s_mib_per_s=%.0f\n", key, mib / t_unmap);

	if ((rc = map_range(pt, sc, pages))) {
		fail("map", fc->name, sc->name, rc);
		goto out;
	}
	printf("tables_%s=%" PRIu64 "\n", key, viommu_pt_table_count(pt));
	measure_translate("lookup", key, sc, pages, pt, NULL, NULL, 0);
out:
	viommu_pt_destroy(pt);
}

/* Guest walks: the same mappings, tables in a viommu_mem region. */
static void measure_walk(const struct fmt_case *fc, const struct size_case *sc, struct guest_ram *g,
			 viommu_mem *mem)
{
	struct viommu_pt_config cfg = { .size = sizeof(cfg), .format = fc->format, .levels = fc->levels };
	struct viommu_pt_table_ops ops = {
		.size = sizeof(ops), .alloc = ram_table_alloc, .free = ram_table_free, .ctx = g,
	};
	viommu_pt *pt = NULL;
	char key[96];
	int rc;

	g->next = 0;
	g->nfreed = 0;
	g->in_use = 0;
	rc = viommu_pt_create(&cfg, &ops, mem, NULL, &pt);
	if (rc) {
		fail("create(guest)", fc->name, sc->name, rc);
		return;
	}
	if (!(cfg.pgsize_bitmap & sc->size))
		goto out;
	snprintf(key, sizeof(key), "%s_%s", fc->name, sc->name);
	if ((rc = map_range(pt, sc, sc->pages))) {
		fail("map(guest)", fc->name, sc->name, rc);
		goto out;
	}
	measure_translate("walk", key, sc, sc->pages, NULL, viommu_pt_get_config(pt), mem, viommu_pt_root(pt));
out:
	viommu_pt_destroy(pt);
	if (g->in_use) {
		printf("# ERROR: %s %s: %" PRIu64 " guest tables not freed by destroy\n", fc->name, sc->name,
		       g->in_use);
		failures++;
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}

	struct guest_ram g = { .gpa = GUEST_RAM_GPA, .size = GUEST_RAM_SIZE };
	g.host = aligned_alloc(4096, GUEST_RAM_SIZE);
	g.freed = malloc(GUEST_RAM_SIZE / 4096 * sizeof(uint64_t));
	if (!g.host || !g.freed) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	struct viommu_mem_region region = { .gpa = GUEST_RAM_GPA, .size = GUEST_RAM_SIZE, .host = g.host };
	struct viommu_mem_config mcfg = { .size = sizeof(mcfg), .regions = &region, .nr_regions = 1 };
	viommu_mem *mem = NULL;
	int rc = viommu_mem_create(&mcfg, NULL, &mem);
	if (rc) {
		fprintf(stderr, "viommu_mem_create: %d\n", rc);
		return 1;
	}

	printf("# viommu-bench-pt: viommu %s%s\n", viommu_version(), quick ? " (--quick)" : "");
	printf("# map/unmap: one page per call over consecutive pages; lookup: host tables; "
	       "walk: tables in guest memory\n");
	double t0 = now();
	for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			if (sizes[s].amd_only && fmts[f].format != VIOMMU_PT_AMD_V1)
				continue;
			double a = now();
			measure(&fmts[f], &sizes[s]);
			double b = now();
			measure_walk(&fmts[f], &sizes[s], &g, mem);
			printf("# %s_%s took %.2f s (map/unmap/lookup) + %.2f s (walk)\n", fmts[f].name,
			       sizes[s].name, b - a, now() - b);
			fflush(stdout);
		}
	}
	printf("total_s=%.2f\n", now() - t0);
	viommu_mem_destroy(mem);
	free(g.host);
	free(g.freed);
	if (failures) {
		printf("# %d measurement(s) failed\n", failures);
		return 1;
	}
	return 0;
}
