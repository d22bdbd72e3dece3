/* SPDX-License-Identifier: MIT */
/*
 * viommu: I/O page tables.
 *
 * Three formats sit behind one set of operations:
 *
 *   VIOMMU_PT_X86_64   x86-64 paging, 4 or 5 levels (48- or 57-bit canonical
 *                      input). Used for VT-d first-level, AMD-Vi guest (v2)
 *                      tables and any stage 1. 4 KiB, 2 MiB and 1 GiB pages;
 *                      P/RW/US/XD; accessed/dirty update as an option.
 *   VIOMMU_PT_VTD_SL   Intel VT-d second-level, 3, 4 or 5 levels (39/48/57-bit
 *                      input). R/W/X; 2 MiB and 1 GiB super pages. No present
 *                      bit: an entry with R=W=0 is not present.
 *   VIOMMU_PT_AMD_V1   AMD-Vi host (v1) tables, modes 1 to 6 (21/30/39/48/57/64-
 *                      bit input). The next-level field may skip levels; a
 *                      next-level of 0 below the top marks a page of the level's
 *                      natural size, and next-level 7 a page whose size is coded
 *                      in the address field (replicated over the entries it
 *                      spans). IR/IW permission bits.
 *
 * Two ways to use them:
 *
 *  - viommu_pt_walk(): walk a table the guest owns, in guest memory, read
 *    through a viommu_mem. Stateless; hostile tables give a named fault.
 *  - a viommu_pt object: a table the caller owns, built with map/unmap (which
 *    report how many bytes they did) and read back with iova_to_phys, lookup
 *    and for_each. Its tables live in host memory from the allocation hooks, or
 *    wherever a table allocator puts them (for instance in guest memory, so a
 *    guest or viommu_pt_walk() can read the very same tables).
 *
 * Levels are numbered as the specifications do: level 1 holds the entries that
 * map 4 KiB pages, the root is level `levels`.
 *
 * Errors follow one convention: 0 or a negative errno. A translation fault is
 * not an API error: the walk functions return -EFAULT and name the reason in
 * the result.
 */
#ifndef VIOMMU_PAGETABLE_H
#define VIOMMU_PAGETABLE_H

#include <viommu/common.h>
#include <viommu/fault.h>
#include <viommu/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

enum viommu_pt_format {
	VIOMMU_PT_X86_64 = 1,
	VIOMMU_PT_VTD_SL = 2,
	VIOMMU_PT_AMD_V1 = 3,
};

/* Permissions (in map's prot and in a walk's accumulated result). */
#define VIOMMU_PERM_READ  (1u << 0)
#define VIOMMU_PERM_WRITE (1u << 1)
#define VIOMMU_PERM_EXEC  (1u << 2)
/** Unprivileged (user) requests may use the page. Only x86-64 paging encodes
 *  it (US); the other formats always grant it. */
#define VIOMMU_PERM_USER  (1u << 3)
#define VIOMMU_PERM_ALL   (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_EXEC | VIOMMU_PERM_USER)

/* The access a request makes (a walk's `access`): any of READ, WRITE, EXEC,
 * plus PRIV for a privileged (supervisor) request. An unprivileged request
 * needs VIOMMU_PERM_USER on every level. */
#define VIOMMU_ACCESS_READ  VIOMMU_PERM_READ
#define VIOMMU_ACCESS_WRITE VIOMMU_PERM_WRITE
#define VIOMMU_ACCESS_EXEC  VIOMMU_PERM_EXEC
#define VIOMMU_ACCESS_PRIV  (1u << 4)

/* Page sizes, for pgsize_bitmap. */
#define VIOMMU_PGSIZE_4K (1ull << 12)
#define VIOMMU_PGSIZE_2M (1ull << 21)
#define VIOMMU_PGSIZE_1G (1ull << 30)

/* Config flags. */
/** Set accessed bits on every entry a successful walk used, and the dirty bit
 *  of the leaf on a write (x86-64: A/D; VT-d SL: bits 8/9 of the leaf (and A
 *  of the tables); AMD-Vi: A on every entry, D on the leaf). */
#define VIOMMU_PT_F_AD       (1u << 0)
/** x86-64: honour XD (bit 63). Without it XD is a reserved bit, as on a CPU
 *  with EFER.NXE clear. */
#define VIOMMU_PT_F_NXE      (1u << 1)
/** VT-d SL: honour the X bit (bit 2) on every level for execute requests
 *  (ECAP.SLEE). Without it, execute needs read permission. */
#define VIOMMU_PT_F_VTD_EXEC (1u << 2)
#define VIOMMU_PT_F_ALL      (VIOMMU_PT_F_AD | VIOMMU_PT_F_NXE | VIOMMU_PT_F_VTD_EXEC)

/*
 * Format configuration. Goes in with what the caller wants, comes back with
 * what was granted (viommu_pt_config_check() and viommu_pt_create() fill the
 * "out" fields).
 */
struct viommu_pt_config {
	uint32_t size;               /**< in: sizeof(struct viommu_pt_config) */
	enum viommu_pt_format format;/**< in */
	uint32_t levels;             /**< in: x86-64: 4, 5; VT-d SL: 3, 4, 5;
				          AMD-Vi: the mode, 1 to 6 */
	uint32_t oas;                /**< in: output address bits, 32 to 52
				          (0 means 52). Address bits at or above
				          it in an entry are reserved bits. */
	uint32_t flags;              /**< in: VIOMMU_PT_F_*; unknown ones -EINVAL */
	uint64_t pgsize_bitmap;      /**< in: page sizes map may use (0: all the
				          format has); out: those granted */
	uint32_t ias;                /**< out: input address bits */
};

/**
 * Validate a configuration and fill in what is granted.
 * Errors: -EINVAL (NULL, size too small, unknown format or flags, levels or oas
 * out of range, a pgsize_bitmap that leaves no size, or asks for 4 KiB not at
 * all).
 */
VIOMMU_API int viommu_pt_config_check(struct viommu_pt_config *cfg);

/* The outcome of one walk. */
struct viommu_pt_result {
	enum viommu_fault_reason fault; /**< VIOMMU_FAULT_NONE when translated */
	uint64_t oaddr;      /**< output address of the input address */
	uint64_t page_size;  /**< bytes the leaf maps (a power of two) */
	uint32_t perms;      /**< VIOMMU_PERM_* granted by every level together */
	uint32_t level;      /**< level of the leaf, or of the entry that faulted
			          (0 when the walk never read one) */
	uint64_t entry_addr; /**< address of that entry */
	uint64_t entry;      /**< its value as read */
	uint32_t refs;       /**< memory reads of table entries made */
	uint32_t writes;     /**< accessed/dirty write-backs made */
};

/**
 * Walk a guest-owned table for one request.
 * @cfg:    a configuration (validated on the way in; not modified)
 * @mem:    the memory the tables are read through (and A/D written to)
 * @root:   address of the root table (4 KiB aligned)
 * @iova:   input address
 * @access: VIOMMU_ACCESS_* the request makes
 * @res:    filled in every case but -EINVAL
 * Returns 0 when translated, -EFAULT when the walk faulted (res->fault names
 * why), -EINVAL for NULL arguments or a bad configuration.
 * Thread-safe; any number of walks may run at once over one viommu_mem.
 */
VIOMMU_API int viommu_pt_walk(const struct viommu_pt_config *cfg, viommu_mem *mem, uint64_t root,
			      uint64_t iova, uint32_t access, struct viommu_pt_result *res);

/* ------------------------------------------------------------------------ */
/* Caller-owned tables                                                      */

typedef struct viommu_pt viommu_pt;

/*
 * A table allocator: where a viommu_pt puts its 4 KiB tables. alloc returns 0
 * with the table's address (as entries will point at it, 4 KiB aligned, below
 * 2^oas) and a host pointer to it, or a negative errno. The table need not be
 * zeroed. free gets back what alloc gave.
 */
typedef int (*viommu_pt_table_alloc_fn)(void *ctx, uint64_t *addr, void **host);
typedef void (*viommu_pt_table_free_fn)(void *ctx, uint64_t addr, void *host);

struct viommu_pt_table_ops {
	uint32_t size;                  /**< sizeof(struct viommu_pt_table_ops) */
	viommu_pt_table_alloc_fn alloc; /**< required */
	viommu_pt_table_free_fn free;   /**< required */
	void *ctx;
};

/**
 * Create an empty caller-owned table.
 * @cfg:    in/out as for viommu_pt_config_check(); the object keeps a copy
 * @tables: NULL: tables in host memory from @alloc, given addresses of the
 *          object's own (dense, from 0x1000 up), readable only through this
 *          object. Otherwise the allocator above; then @mem is required and
 *          must cover every table it hands out, and viommu_pt_walk() over @mem
 *          from viommu_pt_root() sees exactly this table.
 * @mem:    see @tables; NULL when @tables is NULL
 * @alloc:  allocation hooks for the object itself (and its tables when @tables
 *          is NULL); NULL for the C library
 * Errors: -EINVAL (bad arguments or configuration), -ENOMEM, or the table
 * allocator's error.
 */
VIOMMU_API int viommu_pt_create(struct viommu_pt_config *cfg, const struct viommu_pt_table_ops *tables,
				viommu_mem *mem, const struct viommu_alloc *alloc, viommu_pt **out);

/** Destroy, freeing every table; takes NULL. */
VIOMMU_API void viommu_pt_destroy(viommu_pt *pt);

/** The address of the root table, as a walker would be given it. */
VIOMMU_API uint64_t viommu_pt_root(const viommu_pt *pt);

/** The configuration as granted. */
VIOMMU_API const struct viommu_pt_config *viommu_pt_get_config(const viommu_pt *pt);

/**
 * Map [iova, iova + size) to [paddr, paddr + size) with `prot`
 * (VIOMMU_PERM_*), using the largest granted page size that alignment and the
 * remaining length allow at each step.
 * @mapped: set to the bytes mapped from iova on, also on error (the mappings
 *          made stay; the caller unmaps them if it wants them gone)
 * Errors: -EINVAL (NULL, zero size, iova/paddr/size not 4 KiB aligned, range
 * beyond the input space (or across the x86-64 canonical hole), paddr + size
 * beyond 2^oas, prot without READ or WRITE or with unknown bits, or asking for
 * what the format cannot express: x86-64 has no write-only pages, so there
 * prot must include READ rather than be silently widened), -EEXIST (some
 * page of the range is already mapped; nothing of that page was changed),
 * -ENOMEM (a table could not be allocated).
 */
VIOMMU_API int viommu_pt_map(viommu_pt *pt, uint64_t iova, uint64_t paddr, uint64_t size,
			     uint32_t prot, uint64_t *mapped);

/**
 * Remove every mapping inside [iova, iova + size). Holes are fine. A large page
 * that the range covers only in part is split first, so the rest of it stays
 * mapped. Tables left with nothing in them are freed when the range covers
 * all they span.
 * @unmapped: set to the bytes of the range processed from iova on, also on
 *            error
 * Errors: -EINVAL (NULL, zero size, unaligned, beyond the input space),
 * -ENOMEM (a split needed a table that could not be allocated; the large page
 * is left whole and mapped).
 */
VIOMMU_API int viommu_pt_unmap(viommu_pt *pt, uint64_t iova, uint64_t size, uint64_t *unmapped);

/**
 * The output address `iova` maps to (any permission).
 * Errors: -ENOENT (not mapped), -EINVAL.
 */
VIOMMU_API int viommu_pt_iova_to_phys(viommu_pt *pt, uint64_t iova, uint64_t *phys);

/**
 * A full walk of this object's table for one request, as viommu_pt_walk()
 * (reference counts, accessed/dirty update and faults included).
 */
VIOMMU_API int viommu_pt_lookup(viommu_pt *pt, uint64_t iova, uint32_t access,
				struct viommu_pt_result *res);

/*
 * Visit the leaf mappings that overlap [iova, iova + size), in address order.
 * A replicated AMD-Vi page is visited once. Return non-zero from the callback
 * to stop; that value is returned.
 */
typedef int (*viommu_pt_visit_fn)(void *ctx, uint64_t iova, uint64_t paddr, uint64_t page_size,
				  uint32_t perms);
VIOMMU_API int viommu_pt_for_each(viommu_pt *pt, uint64_t iova, uint64_t size, viommu_pt_visit_fn fn,
				  void *ctx);

/** Tables the object holds now (the root included). */
VIOMMU_API uint64_t viommu_pt_table_count(const viommu_pt *pt);

/*
 * Thread-safety of a viommu_pt: map and unmap must be serialized by the caller.
 * lookup, iova_to_phys and for_each may run at any time with each other and
 * with map; with unmap, only for ranges it does not touch (as with hardware, a
 * translation of a range being unmapped needs an invalidation afterwards
 * anyway).
 */

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_PAGETABLE_H */
