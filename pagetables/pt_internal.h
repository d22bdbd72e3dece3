/* SPDX-License-Identifier: MIT */
/*
 * Internal: the page-table engine. One walker and one map/unmap engine serve
 * every format; a format is a small ops table that decodes and encodes
 * entries (STYLE rule 7). The IOMMU core composes nesting above this by giving
 * the walker its own accessor.
 */
#ifndef VIOMMU_INTERNAL_PT_H
#define VIOMMU_INTERNAL_PT_H

#include <viommu/pagetable.h>

#define PT_TABLE_SIZE 4096u
#define PT_ENTRIES 512u
#define PT_ADDR_MASK 0x000ffffffffff000ull /* bits 51:12, every format */
#define PT_MAX_LEVELS 6u

/* log2 of the bytes one entry at `level` spans (level 1: 4 KiB). */
static inline unsigned pt_entry_shift(unsigned level)
{
	return 12u + 9u * (level - 1u);
}

static inline unsigned pt_index(uint64_t iova, unsigned level)
{
	unsigned shift = pt_entry_shift(level);
	return shift >= 64 ? 0 : (unsigned)((iova >> shift) & (PT_ENTRIES - 1));
}

enum pt_kind {
	PT_NONE = 0,
	PT_TABLE,
	PT_LEAF,
};

/* One entry, decoded. */
struct pt_entry {
	enum pt_kind kind;
	enum viommu_fault_reason fault; /* set by decode for a malformed entry */
	uint64_t addr;       /* table address, or page base (aligned to the page) */
	unsigned next_level; /* PT_TABLE: level of the table pointed at */
	unsigned size_shift; /* PT_LEAF: log2 of the page size */
	uint32_t perms;      /* VIOMMU_PERM_* this entry grants */
};

struct pt_geom;

struct pt_fmt {
	const char *name;
	/* Validate levels/flags, fill ias and the supported page sizes. */
	int (*check)(struct viommu_pt_config *cfg, uint64_t *supported);
	void (*decode)(const struct pt_geom *g, uint64_t pte, unsigned level, struct pt_entry *e);
	/* An entry at `level` pointing at a table of level - 1. */
	uint64_t (*mk_table)(const struct pt_geom *g, uint64_t addr, unsigned level);
	/* A leaf at `level` for a page of 2^shift bytes at pa. */
	uint64_t (*mk_leaf)(const struct pt_geom *g, uint64_t pa, unsigned level, unsigned shift,
			    uint32_t perms);
	/* Accessed/dirty bits a successful walk sets on an entry. */
	uint64_t (*ad_bits)(const struct pt_geom *g, unsigned level, int leaf, int write);
	/* Can map() express this protection? */
	int (*prot_ok)(const struct pt_geom *g, uint32_t perms);
	int canonical; /* input is sign-extended from bit ias-1 (x86-64) */
};

struct pt_geom {
	const struct pt_fmt *fmt;
	unsigned levels;
	unsigned ias;
	unsigned oas;
	uint32_t flags;
	uint64_t pgsizes;  /* granted */
	uint64_t oas_rsvd; /* entry address bits 51:oas */
};

extern const struct pt_fmt pt_fmt_x86_64;
extern const struct pt_fmt pt_fmt_vtd_sl;
extern const struct pt_fmt pt_fmt_amd_v1;

/* Validate cfg and build the geometry. */
int pt_geom_init(struct pt_geom *g, struct viommu_pt_config *cfg);

/*
 * How a walk reads entries and writes back accessed/dirty bits.
 * read: 0 or -EFAULT. or: as mem_or64 (0 done, 1 raced, -EFAULT).
 */
struct pt_acc {
	int (*read)(void *ctx, uint64_t addr, uint64_t *val);
	int (*or)(void *ctx, uint64_t addr, uint64_t old, uint64_t bits);
	/* Optional: the walk is about to read the table at `level` (below the
	 * first), with `perms` granted by the levels above it. */
	void (*on_table)(void *ctx, unsigned level, uint64_t table, uint32_t perms);
	/* Optional: a host pointer to [addr, addr + len) of one table, for
	 * reading entries directly (each once, whole), or NULL when they must
	 * go through read (not in plain memory, or reads are being altered). */
	const uint64_t *(*map)(void *ctx, uint64_t addr, uint64_t len);
	void *ctx;
};

/* The one walker. `ad`: honour VIOMMU_PT_F_AD. Returns 0 or -EFAULT. */
int pt_walk_geom(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t iova,
		 uint32_t access, int ad, struct viommu_pt_result *res);

/* The same, starting at a table of `level` that a page-walk cache gave,
 * with the permissions of the levels above it. */
int pt_walk_geom_from(const struct pt_geom *g, const struct pt_acc *acc, uint64_t table, unsigned level,
		      uint32_t perms, uint64_t iova, uint32_t access, int ad, struct viommu_pt_result *res);

/*
 * A walk of iova from the root (as pt_walk_geom) that goes on along the
 * leaf's table: the pages after iova's whose entries sit in the same table,
 * are leaves of its natural size, map the output right after the page before
 * and grant the same permissions (accessed/dirty bits set on each as a walk
 * would). Returns how many pages from iova's on translate so, no more than
 * hold [iova, iova + len) (len 0: one), or 0 when the walk of iova faulted
 * (res says why). res describes iova's page; its refs and writes count the
 * whole run.
 */
uint64_t pt_walk_geom_run(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t iova,
			  uint32_t access, int ad, struct viommu_pt_result *res, uint64_t len);

/*
 * Visit every leaf of a table that overlaps [first, last], in address order
 * (a replicated AMD-Vi page once). Entries that cannot be read or decode to a
 * fault are skipped as not mapped. A non-zero return of fn stops the visit
 * and is returned.
 */
typedef int (*pt_leaf_fn)(void *ctx, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms);
int pt_visit_range(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t first,
		   uint64_t last, pt_leaf_fn fn, void *ctx);

/* The accessor, root and geometry of a caller-owned table. */
void pt_object_view(viommu_pt *pt, struct pt_acc *acc, uint64_t *root, const struct pt_geom **g);

/* Accessor over a viommu_mem (ctx = the viommu_mem). */
extern const struct pt_acc pt_acc_mem_template;

/* Is the input address inside the format's input space? */
int pt_input_ok(const struct pt_geom *g, uint64_t iova);

#endif
