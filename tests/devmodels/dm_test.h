/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the device-model tests: a check harness, and a test bed
 * of one viommu instance over a malloc'd guest RAM, with the bus-side host
 * callbacks of a pcidev recording every MSI, INTx level change and log line,
 * and the instance's fault callback recording every fault.
 *
 * CHECK(cond) / CHECK_EQ(got, exp) count a check and, on failure, print
 * file:line, the case being run (dm_case()), the expression, and expected
 * versus got; the test goes on. dm_done() prints the totals and gives the
 * exit status. One test is one translation unit (the state is static).
 */
#ifndef VIOMMU_TESTS_DM_TEST_H
#define VIOMMU_TESTS_DM_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#include "pcidev.h"

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */

static unsigned long dm_checks, dm_failures;
static char dm_case_name[160];

static inline void dm_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void dm_case(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dm_case_name, sizeof(dm_case_name), fmt, ap);
	va_end(ap);
}

static inline int dm_check(int ok, const char *file, int line, const char *expr)
{
	dm_checks++;
	if (ok)
		return 1;
	if (++dm_failures <= 200)
		fprintf(stderr, "%s:%d: FAIL [%s]: %s\n", file, line, dm_case_name, expr);
	return 0;
}

static inline int dm_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge,
			      const char *ee)
{
	dm_checks++;
	if (got == exp)
		return 1;
	if (++dm_failures <= 200)
		fprintf(stderr, "%s:%d: FAIL [%s]: %s == %s: expected %#llx, got %#llx\n", file, line, dm_case_name, ge,
			ee, (unsigned long long)exp, (unsigned long long)got);
	return 0;
}

#define CHECK(c) dm_check(!!(c), __FILE__, __LINE__, #c)
#define CHECK_EQ(g, e) dm_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, __LINE__, #g, #e)

static inline int dm_done(const char *name)
{
	printf("%s: %lu checks, %lu failed\n", name, dm_checks, dm_failures);
	return dm_failures ? 1 : 0;
}

/* A deterministic PRNG (xorshift64*) for the storm tests. */
static inline uint64_t dm_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ------------------------------------------------------------------------ */
/* Test bed                                                                 */

#define DM_MAX_MSIS 4096
#define DM_MAX_FAULTS 256

struct dm_msi {
	uint64_t addr;
	uint32_t data;
};

struct dm_env {
	uint8_t *ram;
	uint64_t ram_size; /* guest RAM at guest address 0 */
	viommu *v;
	viommu_domain *identity;
	/* recorded by the callbacks */
	struct dm_msi msis[DM_MAX_MSIS];
	unsigned nr_msis;
	int intx_level;
	unsigned intx_changes;
	unsigned nr_logs;
	struct viommu_fault_record faults[DM_MAX_FAULTS];
	unsigned nr_faults;
	int verbose;
};

static inline int dm_host_msi(void *ctx, struct pcidev *dev, uint64_t addr, uint32_t data)
{
	struct dm_env *env = ctx;
	(void)dev;
	if (env->nr_msis < DM_MAX_MSIS) {
		env->msis[env->nr_msis].addr = addr;
		env->msis[env->nr_msis].data = data;
	}
	env->nr_msis++;
	return 0;
}

static inline void dm_host_intx(void *ctx, struct pcidev *dev, int level)
{
	struct dm_env *env = ctx;
	(void)dev;
	env->intx_level = level;
	env->intx_changes++;
}

static inline void dm_host_log(void *ctx, struct pcidev *dev, const char *msg)
{
	struct dm_env *env = ctx;
	env->nr_logs++;
	if (env->verbose)
		fprintf(stderr, "  log: %s %02x.%u: %s\n", dev->ops && dev->ops->name ? dev->ops->name : "?",
			dev->rid.devfn >> 3, dev->rid.devfn & 7u, msg);
}

static inline void dm_fault_cb(void *ctx, const struct viommu_fault_record *rec)
{
	struct dm_env *env = ctx;
	/* Any thread may fault (test_virtio_iommu_events_mt): each takes
	 * its own slot. */
	unsigned n = __atomic_fetch_add(&env->nr_faults, 1, __ATOMIC_RELAXED);
	if (n < DM_MAX_FAULTS)
		env->faults[n] = *rec;
}

static inline struct pcidev_host dm_host(struct dm_env *env)
{
	struct pcidev_host h;
	memset(&h, 0, sizeof(h));
	h.msi = dm_host_msi;
	h.intx = dm_host_intx;
	h.log = dm_host_log;
	h.ctx = env;
	return h;
}

/* The last fault recorded (a zeroed record if none). */
static inline struct viommu_fault_record dm_last_fault(const struct dm_env *env)
{
	struct viommu_fault_record r;
	memset(&r, 0, sizeof(r));
	if (env->nr_faults && env->nr_faults <= DM_MAX_FAULTS)
		r = env->faults[env->nr_faults - 1];
	return r;
}

static inline int dm_env_init(struct dm_env *env, uint64_t ram_size)
{
	memset(env, 0, sizeof(*env));
	env->verbose = getenv("DM_VERBOSE") != NULL;
	env->ram_size = ram_size;
	env->ram = calloc(1, ram_size);
	if (!env->ram)
		return -ENOMEM;
	struct viommu_mem_region region = {.gpa = 0, .size = ram_size, .host = env->ram, .flags = 0};
	struct viommu_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.mem.size = sizeof(cfg.mem);
	cfg.mem.regions = &region;
	cfg.mem.nr_regions = 1;
	cfg.fault = dm_fault_cb;
	cfg.fault_ctx = env;
	int r = viommu_create(&cfg, NULL, &env->v);
	if (r)
		return r;
	struct viommu_domain_config dc;
	memset(&dc, 0, sizeof(dc));
	dc.size = sizeof(dc);
	dc.type = VIOMMU_DOMAIN_IDENTITY;
	return viommu_domain_create(env->v, &dc, &env->identity);
}

/* A requester attached (no PASID) to the identity domain. */
static inline viommu_dev *dm_env_dev(struct dm_env *env, uint8_t devfn)
{
	struct viommu_rid rid = {.segment = 0, .bus = 0, .devfn = devfn};
	viommu_dev *d = NULL;
	if (viommu_dev_create(env->v, rid, &d))
		return NULL;
	if (viommu_dev_attach(d, VIOMMU_NO_PASID, env->identity, NULL))
		return NULL;
	return d;
}

/* A host-owned one-stage domain (VT-d second-level, 4 levels). */
static inline viommu_domain *dm_env_paging(struct dm_env *env)
{
	struct viommu_domain_config dc;
	viommu_domain *d = NULL;
	memset(&dc, 0, sizeof(dc));
	dc.size = sizeof(dc);
	dc.type = VIOMMU_DOMAIN_PAGING;
	dc.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
	dc.pt.size = sizeof(dc.pt);
	dc.pt.format = VIOMMU_PT_VTD_SL;
	dc.pt.levels = 4;
	if (viommu_domain_create(env->v, &dc, &d))
		return NULL;
	return d;
}

static inline void dm_env_fini(struct dm_env *env)
{
	viommu_destroy(env->v);
	free(env->ram);
	env->v = NULL;
	env->ram = NULL;
}

/* Little-endian guest memory helpers (the test plays the guest). */
static inline void dm_put(struct dm_env *env, uint64_t gpa, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		env->ram[gpa + i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t dm_get(const struct dm_env *env, uint64_t gpa, unsigned len)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)env->ram[gpa + i] << (8 * i);
	return v;
}

/* Config-space helpers for a test that plays the firmware. */
static inline uint32_t cfg_r(struct pcidev *d, unsigned off, unsigned len)
{
	return pcidev_config_read(d, off, len);
}

static inline void cfg_w(struct pcidev *d, unsigned off, unsigned len, uint32_t v)
{
	pcidev_config_write(d, off, len, v);
}

/* Find a capability by ID (the n-th one), walking the list; 0 if absent.
 * Gives up after 48 hops (a loop is a failure of the device). */
static inline unsigned dm_find_cap(struct pcidev *d, uint8_t id, unsigned nth)
{
	if (!(cfg_r(d, 0x06, 2) & 0x10))
		return 0;
	unsigned off = cfg_r(d, 0x34, 1);
	for (unsigned hops = 0; off && hops < 48; hops++) {
		if (cfg_r(d, off, 1) == id && nth-- == 0)
			return off;
		off = cfg_r(d, off + 1, 1);
	}
	return 0;
}

#endif /* VIOMMU_TESTS_DM_TEST_H */
