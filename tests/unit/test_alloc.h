/* SPDX-License-Identifier: MIT */
/*
 * Allocation hooks for the unit tests: count every allocation and free, keep
 * the bytes outstanding, check that free gets back exactly the size and
 * alignment alloc was given, hand out memory full of garbage (the library must
 * not assume it zeroed), and fail the Nth allocation when asked to.
 */
#ifndef VIOMMU_TEST_ALLOC_H
#define VIOMMU_TEST_ALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/common.h>

struct ta_block {
	void *ptr;
	size_t size;
	size_t align;
};

struct test_alloc {
	struct viommu_alloc hooks;
	unsigned long calls;       /* alloc calls, failed ones included */
	unsigned long fail_at;     /* fail the call with this number (1-based); 0: never */
	unsigned long injected;    /* failures handed out */
	unsigned long allocs;      /* successful allocations */
	unsigned long frees;
	unsigned long bad_frees;   /* unknown pointer or wrong size/align */
	unsigned long bad_args;    /* align not a power of two or above 4096, size 0 */
	uint64_t bytes;            /* bytes outstanding */
	struct ta_block *live;
	size_t nr_live, cap_live;
};

static inline void *ta_alloc(void *ctx, size_t size, size_t align)
{
	struct test_alloc *ta = ctx;
	size_t rounded;
	void *p;

	ta->calls++;
	if (ta->fail_at && ta->calls == ta->fail_at) {
		ta->injected++;
		return NULL;
	}
	if (align == 0 || (align & (align - 1)) || align > 4096 || size == 0) {
		ta->bad_args++;
		return NULL;
	}
	if (align < sizeof(void *))
		align = sizeof(void *);
	rounded = (size + align - 1) & ~(align - 1);
	p = aligned_alloc(align, rounded);
	if (!p)
		return NULL;
	memset(p, 0xa5, rounded);
	if (ta->nr_live == ta->cap_live) {
		size_t cap = ta->cap_live ? ta->cap_live * 2 : 64;
		struct ta_block *n = realloc(ta->live, cap * sizeof(*n));

		if (!n) {
			free(p);
			return NULL;
		}
		ta->live = n;
		ta->cap_live = cap;
	}
	ta->live[ta->nr_live].ptr = p;
	ta->live[ta->nr_live].size = size;
	ta->live[ta->nr_live].align = align;
	ta->nr_live++;
	ta->allocs++;
	ta->bytes += size;
	return p;
}

static inline void ta_free(void *ctx, void *ptr, size_t size, size_t align)
{
	struct test_alloc *ta = ctx;
	size_t i;

	ta->frees++;
	if (align < sizeof(void *))
		align = sizeof(void *);
	for (i = ta->nr_live; i-- > 0;) {
		if (ta->live[i].ptr != ptr)
			continue;
		if (ta->live[i].size != size || ta->live[i].align != align)
			ta->bad_frees++;
		ta->bytes -= ta->live[i].size;
		ta->live[i] = ta->live[--ta->nr_live];
		memset(ptr, 0x5a, size); /* use after free shows up as garbage */
		free(ptr);
		return;
	}
	ta->bad_frees++; /* unknown pointer: leak it rather than crash */
}

/* Reset counters (after every block was freed) and arm failure number fail_at. */
static inline void ta_init(struct test_alloc *ta, unsigned long fail_at)
{
	struct ta_block *live = ta->live;
	size_t cap = ta->cap_live;

	memset(ta, 0, sizeof(*ta));
	ta->live = live;
	ta->cap_live = cap;
	ta->hooks.size = sizeof(ta->hooks);
	ta->hooks.alloc = ta_alloc;
	ta->hooks.free = ta_free;
	ta->hooks.ctx = ta;
	ta->fail_at = fail_at;
}

/* Free what leaked (after the leak was reported) so the next round starts clean. */
static inline void ta_release(struct test_alloc *ta)
{
	while (ta->nr_live) {
		ta->nr_live--;
		free(ta->live[ta->nr_live].ptr);
	}
	free(ta->live);
	ta->live = NULL;
	ta->cap_live = 0;
	ta->bytes = 0;
}

#endif /* VIOMMU_TEST_ALLOC_H */
