/* SPDX-License-Identifier: MIT */
/*
 * Allocation hooks for the core tests: count calls, what is outstanding (blocks
 * and bytes), check that free gets exactly the pointer, size and alignment
 * alloc handed out, fill new memory with garbage (the library must not assume
 * it is zeroed), and fail the Nth call when asked.
 *
 * Every block carries a header in front of it: a magic word, its size and its
 * alignment. A free that names another size or alignment, or a pointer that is
 * not a live block, is counted in bad_frees (and the block is not released, so
 * nothing is freed twice).
 */
#ifndef VIOMMU_CORE_ALLOC_H
#define VIOMMU_CORE_ALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/common.h>

#define CA_MAGIC_LIVE 0x6c6976652d626c6bull /* "live-blk" */
#define CA_MAGIC_DEAD 0x646561642d626c6bull /* "dead-blk" */

struct ca_head {
	uint64_t magic;
	uint64_t size;
	uint64_t align;
	void *base;
};

struct core_alloc {
	struct viommu_alloc hooks;
	unsigned long calls;     /* alloc calls, the failed ones too */
	unsigned long fail_at;   /* make call number fail_at (1-based) fail; 0: never */
	unsigned long injected;  /* failures handed out */
	unsigned long live;      /* blocks outstanding */
	uint64_t live_bytes;
	unsigned long bad_args;  /* size 0, align not a power of two or above 4096 */
	unsigned long bad_frees;
};

/* The header sits this far in front of the block. */
static inline size_t ca_pad(size_t align)
{
	size_t pad = sizeof(struct ca_head);
	return align > pad ? align : pad;
}

static void *ca_alloc(void *ctx, size_t size, size_t align)
{
	struct core_alloc *ca = ctx;

	ca->calls++;
	if (ca->fail_at && ca->calls == ca->fail_at) {
		ca->injected++;
		return NULL;
	}
	if (!size || !align || (align & (align - 1)) || align > 4096) {
		ca->bad_args++;
		return NULL;
	}
	size_t a = align < 16 ? 16 : align;
	size_t pad = ca_pad(a);
	size_t total = (pad + size + a - 1) & ~(a - 1);
	uint8_t *base = aligned_alloc(a, total);
	if (!base)
		return NULL;
	memset(base, 0xa5, total);
	struct ca_head *h = (struct ca_head *)(base + pad) - 1;
	h->magic = CA_MAGIC_LIVE;
	h->size = size;
	h->align = align;
	h->base = base;
	ca->live++;
	ca->live_bytes += size;
	return base + pad;
}

static void ca_free(void *ctx, void *ptr, size_t size, size_t align)
{
	struct core_alloc *ca = ctx;

	if (!ptr || !align || (align & (align - 1)) || align > 4096) {
		ca->bad_frees++;
		return;
	}
	struct ca_head *h = (struct ca_head *)ptr - 1;
	if (h->magic != CA_MAGIC_LIVE || h->size != size || h->align != align) {
		ca->bad_frees++;
		return;
	}
	h->magic = CA_MAGIC_DEAD;
	ca->live--;
	ca->live_bytes -= size;
	free(h->base);
}

static inline void core_alloc_init(struct core_alloc *ca)
{
	memset(ca, 0, sizeof(*ca));
	ca->hooks.size = sizeof(ca->hooks);
	ca->hooks.alloc = ca_alloc;
	ca->hooks.free = ca_free;
	ca->hooks.ctx = ca;
}

/* Fail the nth call from now on (1: the very next one); 0 disarms. */
static inline void core_alloc_fail_in(struct core_alloc *ca, unsigned long n)
{
	ca->fail_at = n ? ca->calls + n : 0;
}

#endif /* VIOMMU_CORE_ALLOC_H */
