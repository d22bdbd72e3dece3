/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the page-table unit tests: what each format grants
 * (written out from the specifications, independently of the library), entry
 * bits for building and reading guest tables, and a table allocator that puts
 * a viommu_pt's tables in a "guest RAM" region of a viommu_mem.
 */
#ifndef VIOMMU_TEST_PT_HELPERS_H
#define VIOMMU_TEST_PT_HELPERS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/pagetable.h>

#include "check.h"

#define KiB(x) ((uint64_t)(x) << 10)
#define MiB(x) ((uint64_t)(x) << 20)
#define GiB(x) ((uint64_t)(x) << 30)
#define SZ_4K  KiB(4)

/* --- entry bits (Intel SDM vol. 3 4.5; VT-d spec 9.8; AMD IOMMU spec 2.2.3) --- */
#define X86_P    (1ull << 0)
#define X86_RW   (1ull << 1)
#define X86_US   (1ull << 2)
#define X86_A    (1ull << 5)
#define X86_D    (1ull << 6)
#define X86_PS   (1ull << 7)
#define X86_XD   (1ull << 63)

#define VTD_R    (1ull << 0)
#define VTD_W    (1ull << 1)
#define VTD_X    (1ull << 2)
#define VTD_PS   (1ull << 7)
#define VTD_A    (1ull << 8)
#define VTD_D    (1ull << 9)
#define VTD_TM   (1ull << 62)

#define AMD_PR   (1ull << 0)
#define AMD_A    (1ull << 5)
#define AMD_D    (1ull << 6)
#define AMD_NL_SHIFT 9
#define AMD_NL(n) ((uint64_t)(n) << AMD_NL_SHIFT)
#define AMD_NL_MASK AMD_NL(7)
#define AMD_U    (1ull << 59)
#define AMD_FC   (1ull << 60)
#define AMD_IR   (1ull << 61)
#define AMD_IW   (1ull << 62)

#define PT_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12 */

static inline const char *fmt_name(enum viommu_pt_format f)
{
	return f == VIOMMU_PT_X86_64 ? "x86" : f == VIOMMU_PT_VTD_SL ? "vtd-sl" : "amd-v1";
}

static inline uint32_t fmt_ias(enum viommu_pt_format f, uint32_t levels)
{
	static const uint32_t amd[7] = { 0, 21, 30, 39, 48, 57, 64 };

	if (f == VIOMMU_PT_AMD_V1)
		return amd[levels];
	return 12 + 9 * levels; /* x86 4/5 -> 48/57, VT-d 3/4/5 -> 39/48/57 */
}

static inline uint64_t fmt_pgsizes(enum viommu_pt_format f, uint32_t levels)
{
	uint32_t ias, top, b;
	uint64_t m = 0;

	if (f != VIOMMU_PT_AMD_V1)
		return VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
	ias = fmt_ias(f, levels);
	top = ias - 1 < 39 ? ias - 1 : 39;
	for (b = 12; b <= top; b++)
		m |= 1ull << b;
	return m;
}

/* Bytes one entry at level L spans. */
static inline uint64_t level_span(uint32_t level)
{
	return 1ull << (12 + 9 * (level - 1));
}

static inline unsigned level_index(uint64_t iova, uint32_t level)
{
	return (unsigned)((iova >> (12 + 9 * (level - 1))) & 511);
}

static inline uint32_t log2u64(uint64_t v)
{
	return 63 - (uint32_t)__builtin_clzll(v);
}

/* The level whose entries hold a page of this size (for AMD-Vi next-level 7
 * pages, the level with E_L < size < E_{L+1}). */
static inline uint32_t leaf_level(uint64_t page_size)
{
	return (log2u64(page_size) - 12) / 9 + 1;
}

/* Accessed and dirty bits of the format. */
static inline uint64_t fmt_a_bit(enum viommu_pt_format f)
{
	return f == VIOMMU_PT_X86_64 ? X86_A : f == VIOMMU_PT_VTD_SL ? VTD_A : AMD_A;
}

static inline uint64_t fmt_d_bit(enum viommu_pt_format f)
{
	return f == VIOMMU_PT_X86_64 ? X86_D : f == VIOMMU_PT_VTD_SL ? VTD_D : AMD_D;
}

/* The permissions a walk must report for a page mapped with `prot`, from the
 * encodings of each format. */
static inline uint32_t expected_perms(enum viommu_pt_format f, uint32_t flags, uint32_t prot)
{
	uint32_t p = 0;

	switch (f) {
	case VIOMMU_PT_X86_64:
		/* READ always; no way to say "not readable" */
		p = VIOMMU_PERM_READ | (prot & (VIOMMU_PERM_WRITE | VIOMMU_PERM_USER));
		if (!(flags & VIOMMU_PT_F_NXE) || (prot & VIOMMU_PERM_EXEC))
			p |= VIOMMU_PERM_EXEC;
		break;
	case VIOMMU_PT_VTD_SL:
		p = (prot & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)) | VIOMMU_PERM_USER;
		if (flags & VIOMMU_PT_F_VTD_EXEC)
			p |= prot & VIOMMU_PERM_EXEC;
		else if (prot & VIOMMU_PERM_READ)
			p |= VIOMMU_PERM_EXEC;
		break;
	case VIOMMU_PT_AMD_V1:
		p = (prot & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE)) | VIOMMU_PERM_USER;
		if (prot & VIOMMU_PERM_READ)
			p |= VIOMMU_PERM_EXEC;
		break;
	}
	return p;
}

/* Whether a request `access` (VIOMMU_ACCESS_*) is allowed by `perms`. */
static inline int access_allowed(uint32_t perms, uint32_t access)
{
	uint32_t need = access & (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC);

	if (need & ~perms)
		return 0;
	if (!(access & VIOMMU_ACCESS_PRIV) && !(perms & VIOMMU_PERM_USER))
		return 0;
	return 1;
}

/* Is this entry (present, at level L) a leaf? */
static inline int entry_is_leaf(enum viommu_pt_format f, uint32_t level, uint64_t e)
{
	if (f == VIOMMU_PT_AMD_V1) {
		uint64_t nl = (e & AMD_NL_MASK) >> AMD_NL_SHIFT;

		return nl == 0 || nl == 7;
	}
	return level == 1 || (e & X86_PS); /* PS is bit 7 in both */
}

static inline uint32_t entry_next_level(enum viommu_pt_format f, uint32_t level, uint64_t e)
{
	if (f == VIOMMU_PT_AMD_V1)
		return (uint32_t)((e & AMD_NL_MASK) >> AMD_NL_SHIFT);
	return level - 1;
}

/* --- a table allocator over a guest-RAM region ------------------------------ */

struct guest_ram {
	uint64_t gpa;           /* first guest address */
	size_t nr_pages;
	uint8_t *host;          /* nr_pages * 4096, 4 KiB aligned */
	uint8_t *used;
	size_t cursor;
	viommu_mem *mem;        /* covers the region */
	unsigned long calls, allocs, frees, live, bad_frees;
	unsigned long fail_at;  /* fail this alloc call (1-based); 0: never */
	unsigned long injected;
	int fail_err;           /* what a failure returns */
	struct viommu_pt_table_ops ops;
};

static inline int gr_table_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct guest_ram *gr = ctx;
	size_t i, n;

	gr->calls++;
	if (gr->fail_at && gr->calls == gr->fail_at) {
		gr->injected++;
		return gr->fail_err;
	}
	for (n = 0; n < gr->nr_pages; n++) {
		i = (gr->cursor + n) % gr->nr_pages;
		if (gr->used[i])
			continue;
		gr->used[i] = 1;
		gr->cursor = i + 1;
		/* Not zeroed: garbage that looks present in every format. */
		memset(gr->host + i * 4096, 0xa5, 4096);
		*addr = gr->gpa + i * 4096;
		*host = gr->host + i * 4096;
		gr->allocs++;
		gr->live++;
		return 0;
	}
	return -ENOMEM;
}

static inline void gr_table_free(void *ctx, uint64_t addr, void *host)
{
	struct guest_ram *gr = ctx;
	size_t i;

	gr->frees++;
	if (addr < gr->gpa || ((addr - gr->gpa) & 4095) || (addr - gr->gpa) / 4096 >= gr->nr_pages) {
		gr->bad_frees++;
		return;
	}
	i = (addr - gr->gpa) / 4096;
	if (!gr->used[i] || host != gr->host + i * 4096) {
		gr->bad_frees++;
		return;
	}
	memset(host, 0x5a, 4096); /* a use after free reads garbage */
	gr->used[i] = 0;
	gr->live--;
}

/* Set up `pages` tables of guest RAM at `gpa`, a viommu_mem over them, and the
 * table ops. Returns 0 or -1. */
static inline int gr_init(struct guest_ram *gr, uint64_t gpa, size_t pages, uint32_t region_flags)
{
	struct viommu_mem_region r;
	struct viommu_mem_config c;

	memset(gr, 0, sizeof(*gr));
	gr->gpa = gpa;
	gr->nr_pages = pages;
	gr->host = aligned_alloc(4096, pages * 4096);
	gr->used = calloc(pages, 1);
	if (!gr->host || !gr->used)
		return -1;
	memset(gr->host, 0xa5, pages * 4096);
	memset(&r, 0, sizeof(r));
	r.gpa = gpa;
	r.size = pages * 4096;
	r.host = gr->host;
	r.flags = region_flags;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.regions = &r;
	c.nr_regions = 1;
	if (viommu_mem_create(&c, NULL, &gr->mem))
		return -1;
	gr->fail_err = -ENOMEM;
	gr->ops.size = sizeof(gr->ops);
	gr->ops.alloc = gr_table_alloc;
	gr->ops.free = gr_table_free;
	gr->ops.ctx = gr;
	return 0;
}

static inline void gr_fini(struct guest_ram *gr)
{
	viommu_mem_destroy(gr->mem);
	free(gr->host);
	free(gr->used);
	memset(gr, 0, sizeof(*gr));
}

/* --- leaf lists from for_each ------------------------------------------------ */

struct leaf {
	uint64_t iova, paddr, size;
	uint32_t perms;
};

struct leaf_list {
	struct leaf *v;
	size_t n, cap;
	size_t stop_after;  /* return 42 after this many visits; 0: never */
};

static inline int leaf_visit(void *ctx, uint64_t iova, uint64_t paddr, uint64_t page_size, uint32_t perms)
{
	struct leaf_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct leaf *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].iova = iova;
	l->v[l->n].paddr = paddr;
	l->v[l->n].size = page_size;
	l->v[l->n].perms = perms;
	l->n++;
	if (l->stop_after && l->n == l->stop_after)
		return 42;
	return 0;
}

static inline void leaf_list_reset(struct leaf_list *l)
{
	l->n = 0;
	l->stop_after = 0;
}

static inline void leaf_list_free(struct leaf_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The decomposition map must make: at each step the largest granted size that
 * the alignment of iova and paddr and the remaining length allow. */
static inline size_t greedy_split(uint64_t bitmap, uint64_t iova, uint64_t paddr, uint64_t len,
				  uint32_t perms, struct leaf *out, size_t max)
{
	size_t n = 0;

	while (len) {
		uint64_t s = 0, m = bitmap;

		while (m) {
			uint64_t c = 1ull << log2u64(m);

			if (c <= len && !(iova & (c - 1)) && !(paddr & (c - 1))) {
				s = c;
				break;
			}
			m &= ~c;
		}
		if (!s || n == max)
			return (size_t)-1;
		out[n].iova = iova;
		out[n].paddr = paddr;
		out[n].size = s;
		out[n].perms = perms;
		n++;
		iova += s;
		paddr += s;
		len -= s;
	}
	return n;
}

#endif /* VIOMMU_TEST_PT_HELPERS_H */
