/* SPDX-License-Identifier: MIT */
/*
 * Guest-owned tables for the core tests: a viommu_pt table allocator that
 * hands out 4 KiB pages of a guest-RAM buffer, so a viommu_pt built with it
 * writes its tables where the IOMMU core (or viommu_pt_walk) reads them.
 *
 * The addresses the tables get are "addr_base + i * 4 KiB" (a guest-physical
 * or, for a nested stage 1, a stage-2 input address); the host pointer is the
 * same page of the buffer. The first allocations are logged in order, so a
 * test can find, say, the level-3 table of a fresh 4-level table (the root is
 * allocation 0, then levels 3, 2 and 1 of the first mapping).
 */
#ifndef VIOMMU_CORE_GUEST_H
#define VIOMMU_CORE_GUEST_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#define GTAB_LOG 64

struct gtab {
	uint8_t *host;       /* host address of the first page */
	uint64_t addr_base;  /* address of the first page, as entries hold it */
	uint64_t pages;      /* capacity */
	uint64_t next;       /* pages never handed out start here */
	uint64_t *stack;     /* freed pages */
	uint64_t nstack;
	uint64_t live;
	uint64_t log[GTAB_LOG];
	unsigned nlog;
	struct viommu_pt_table_ops ops;
};

static int gtab_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct gtab *g = ctx;
	uint64_t page;

	if (g->nstack)
		page = g->stack[--g->nstack];
	else if (g->next < g->pages)
		page = g->next++;
	else
		return -ENOMEM;
	*addr = g->addr_base + page * 4096;
	*host = g->host + page * 4096;
	g->live++;
	if (g->nlog < GTAB_LOG)
		g->log[g->nlog++] = *addr;
	return 0;
}

static void gtab_free(void *ctx, uint64_t addr, void *host)
{
	struct gtab *g = ctx;
	(void)host;
	g->stack[g->nstack++] = (addr - g->addr_base) / 4096;
	g->live--;
}

/* Returns 0 or -ENOMEM (host memory for the free stack). */
static inline int gtab_init(struct gtab *g, uint8_t *host, uint64_t addr_base, uint64_t bytes)
{
	memset(g, 0, sizeof(*g));
	g->host = host;
	g->addr_base = addr_base;
	g->pages = bytes / 4096;
	g->stack = calloc(g->pages ? g->pages : 1, sizeof(*g->stack));
	if (!g->stack)
		return -ENOMEM;
	g->ops.size = sizeof(g->ops);
	g->ops.alloc = gtab_alloc;
	g->ops.free = gtab_free;
	g->ops.ctx = g;
	return 0;
}

static inline void gtab_fini(struct gtab *g)
{
	free(g->stack);
	g->stack = NULL;
}

/* A viommu_mem of one region: [gpa, gpa + size) at host. NULL on error. */
static inline viommu_mem *gmem_one(uint64_t gpa, uint64_t size, void *host)
{
	struct viommu_mem_region r = { .gpa = gpa, .size = size, .host = host };
	struct viommu_mem_config c = { .size = sizeof(c), .regions = &r, .nr_regions = 1 };
	viommu_mem *m = NULL;
	return viommu_mem_create(&c, NULL, &m) ? NULL : m;
}

static inline struct viommu_pt_config pt_cfg(enum viommu_pt_format fmt, uint32_t levels, uint32_t flags,
					     uint64_t pgsizes)
{
	struct viommu_pt_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fmt;
	c.levels = levels;
	c.flags = flags;
	c.pgsize_bitmap = pgsizes;
	return c;
}

/* A guest-owned table of this configuration in the pages of g, read and
 * written through mem (which must cover them). NULL on error. */
static inline viommu_pt *gpt_create(struct gtab *g, viommu_mem *mem, struct viommu_pt_config cfg)
{
	viommu_pt *pt = NULL;
	return viommu_pt_create(&cfg, &g->ops, mem, NULL, &pt) ? NULL : pt;
}

#endif /* VIOMMU_CORE_GUEST_H */
