/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM for the part-2 tests, and a viommu_pt table allocator that hands
 * out 4 KiB pages of it, so a viommu_pt built with it writes a table the
 * guest owns: the IOMMU core reads the very same bytes.
 *
 * Guest RAM starts at guest address 0 and is one host buffer.
 */
#ifndef VIOMMU_P2_GUEST_H
#define VIOMMU_P2_GUEST_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/iommu.h>
#include <viommu/pagetable.h>

#define P2_PAGE 4096ull

struct p2_tables {
	uint8_t *ram;       /* host address of guest address 0 */
	uint64_t next, end; /* pages [next, end) not handed out yet */
	uint64_t freed[256];
	unsigned nfreed;
	struct viommu_pt_table_ops ops;
};

static int p2_tab_alloc(void *ctx, uint64_t *addr, void **host)
{
	struct p2_tables *t = ctx;
	uint64_t a;

	if (t->nfreed)
		a = t->freed[--t->nfreed];
	else if (t->next < t->end)
		a = t->next, t->next += P2_PAGE;
	else
		return -ENOMEM;
	*addr = a;
	*host = t->ram + a;
	return 0;
}

static void p2_tab_free(void *ctx, uint64_t addr, void *host)
{
	struct p2_tables *t = ctx;
	(void)host;
	if (t->nfreed < sizeof(t->freed) / sizeof(t->freed[0]))
		t->freed[t->nfreed++] = addr;
}

/* Tables in guest pages [first, first + bytes). */
static inline void p2_tables_init(struct p2_tables *t, uint8_t *ram, uint64_t first, uint64_t bytes)
{
	memset(t, 0, sizeof(*t));
	t->ram = ram;
	t->next = first;
	t->end = first + bytes;
	t->ops.size = sizeof(t->ops);
	t->ops.alloc = p2_tab_alloc;
	t->ops.free = p2_tab_free;
	t->ops.ctx = t;
}

/* Guest RAM of `size` bytes (4 KiB aligned host buffer, zeroed). */
static inline uint8_t *p2_ram_alloc(uint64_t size)
{
	uint8_t *p = aligned_alloc(P2_PAGE, size);
	if (p)
		memset(p, 0, size);
	return p;
}

/* Fill every 8 bytes of the page at `gpa` with gpa + offset + tag: the data
 * then says which page a DMA landed on. */
static inline void p2_fill_page(uint8_t *ram, uint64_t gpa, uint64_t tag)
{
	for (uint64_t o = 0; o < P2_PAGE; o += 8) {
		uint64_t w = gpa + o + tag;
		memcpy(ram + gpa + o, &w, 8);
	}
}

static inline uint64_t p2_word(const void *buf, size_t off)
{
	uint64_t w;
	memcpy(&w, (const uint8_t *)buf + off, 8);
	return w;
}

static inline struct viommu_pt_config p2_pt_cfg(enum viommu_pt_format fmt, uint32_t levels)
{
	struct viommu_pt_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.format = fmt;
	c.levels = levels;
	c.pgsize_bitmap = VIOMMU_PGSIZE_4K;
	return c;
}

static inline struct viommu_rid p2_rid(uint16_t seg, uint8_t bus, uint8_t dev, uint8_t fn)
{
	struct viommu_rid r = { .segment = seg, .bus = bus, .devfn = (uint8_t)(dev << 3 | fn) };
	return r;
}

#endif /* VIOMMU_P2_GUEST_H */
