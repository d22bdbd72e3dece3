/* SPDX-License-Identifier: MIT */
/*
 * Counting allocation hooks for the part-2 tests: every block carries a
 * header (magic, size, alignment) so a free with the wrong size or alignment,
 * or of something not live, is caught (counted in bad_frees, not released).
 * New memory is filled with 0xa5 (the library must not assume zeroed memory).
 * fail_at makes one chosen call fail.
 */
#ifndef VIOMMU_P2_ALLOC_H
#define VIOMMU_P2_ALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/common.h>

#define P2A_LIVE 0x703261206c697665ull
#define P2A_DEAD 0x7032612064656164ull

struct p2a_head {
	uint64_t magic, size, align;
	void *base;
};

struct p2_alloc {
	struct viommu_alloc hooks;
	unsigned long calls;    /* alloc calls, failed ones included */
	unsigned long fail_at;  /* this call (1-based) fails; 0 never */
	unsigned long injected; /* failures handed out */
	unsigned long live;     /* blocks outstanding */
	uint64_t live_bytes;
	unsigned long bad_args, bad_frees;
};

static void *p2a_alloc(void *ctx, size_t size, size_t align)
{
	struct p2_alloc *a = ctx;

	a->calls++;
	if (a->fail_at && a->calls == a->fail_at) {
		a->injected++;
		return NULL;
	}
	if (!size || !align || (align & (align - 1)) || align > 4096) {
		a->bad_args++;
		return NULL;
	}
	size_t al = align < 32 ? 32 : align;
	size_t pad = al; /* >= sizeof(struct p2a_head) */
	size_t total = (pad + size + al - 1) & ~(al - 1);
	uint8_t *base = aligned_alloc(al, total);
	if (!base)
		return NULL;
	memset(base, 0xa5, total);
	struct p2a_head *h = (struct p2a_head *)(base + pad) - 1;
	h->magic = P2A_LIVE;
	h->size = size;
	h->align = align;
	h->base = base;
	a->live++;
	a->live_bytes += size;
	return base + pad;
}

static void p2a_free(void *ctx, void *ptr, size_t size, size_t align)
{
	struct p2_alloc *a = ctx;

	if (!ptr) {
		a->bad_frees++;
		return;
	}
	struct p2a_head *h = (struct p2a_head *)ptr - 1;
	if (h->magic != P2A_LIVE || h->size != size || h->align != align) {
		a->bad_frees++;
		return;
	}
	h->magic = P2A_DEAD;
	a->live--;
	a->live_bytes -= size;
	free(h->base);
}

static inline void p2_alloc_init(struct p2_alloc *a)
{
	memset(a, 0, sizeof(*a));
	a->hooks.size = sizeof(a->hooks);
	a->hooks.alloc = p2a_alloc;
	a->hooks.free = p2a_free;
	a->hooks.ctx = a;
}

/* Make the n-th call from now fail (1: the next one); 0 disarms. */
static inline void p2_alloc_fail_in(struct p2_alloc *a, unsigned long n)
{
	a->fail_at = n ? a->calls + n : 0;
}

#endif /* VIOMMU_P2_ALLOC_H */
