/* SPDX-License-Identifier: MIT */
/*
 * viommu: the memory interface through which the library reads and writes
 * structures the guest owns (page tables today; context tables, queues and
 * interrupt tables later).
 *
 * A viommu_mem holds a small table of guest-RAM regions (guest address, size,
 * host pointer) for the fast path, and optional read/write callbacks for every
 * address no region covers (MMIO, memory the caller wants to see each access
 * of). An address that no region covers and no callback accepts is an error
 * (-EFAULT), never a host access: page-table walks turn it into
 * VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY.
 *
 * Lifetime: the host memory of every region must stay mapped until the
 * viommu_mem is destroyed, and every object created over it (a viommu_pt, say)
 * must be destroyed before it.
 *
 * Thread-safety: regions are fixed at create time, so every accessor may be
 * called from many threads at once. The callbacks must be thread-safe
 * themselves if the caller uses the viommu_mem from several threads.
 */
#ifndef VIOMMU_MEM_H
#define VIOMMU_MEM_H

#include <viommu/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct viommu_mem viommu_mem;

/** The region is read-only: writes to it (accessed/dirty updates) fail. */
#define VIOMMU_MEM_REGION_READONLY (1u << 0)

struct viommu_mem_region {
	uint64_t gpa;   /**< first guest address of the region */
	uint64_t size;  /**< bytes; gpa + size must not wrap past 2^64 */
	void *host;     /**< host address of gpa */
	uint32_t flags; /**< VIOMMU_MEM_REGION_* */
};

/*
 * Callbacks for addresses outside every region. Return 0 when the whole access
 * was done, or a negative errno (-EFAULT for "nothing there"). They get the
 * request split so that it never crosses a region boundary.
 */
typedef int (*viommu_mem_read_fn)(void *ctx, uint64_t gpa, void *buf, size_t len);
typedef int (*viommu_mem_write_fn)(void *ctx, uint64_t gpa, const void *buf, size_t len);

#define VIOMMU_MEM_MAX_REGIONS 64

struct viommu_mem_config {
	uint32_t size;                          /**< sizeof(struct viommu_mem_config) */
	const struct viommu_mem_region *regions; /**< copied; may be NULL if nr_regions is 0 */
	uint32_t nr_regions;                    /**< at most VIOMMU_MEM_MAX_REGIONS */
	viommu_mem_read_fn read;                /**< optional */
	viommu_mem_write_fn write;              /**< optional */
	void *ctx;                              /**< first argument of the callbacks */
};

/**
 * Create a memory interface.
 * @alloc may be NULL (C library).
 * Errors: -EINVAL (NULL cfg or out, cfg->size too small, too many regions, a
 * region of size 0, with a NULL host pointer, wrapping past 2^64, or
 * overlapping another), -ENOMEM.
 */
VIOMMU_API int viommu_mem_create(const struct viommu_mem_config *cfg,
				 const struct viommu_alloc *alloc, viommu_mem **out);

/** Destroy; takes NULL. */
VIOMMU_API void viommu_mem_destroy(viommu_mem *mem);

/**
 * Copy `len` bytes at guest address `gpa` into `buf`, from regions or the read
 * callback, piece by piece. Errors: -EFAULT (some byte not reachable; `buf` may
 * be partly written), -EINVAL (NULL arguments, gpa + len wraps).
 */
VIOMMU_API int viommu_mem_read(viommu_mem *mem, uint64_t gpa, void *buf, size_t len);

/**
 * Copy `len` bytes from `buf` to guest address `gpa`. Errors: -EFAULT (some byte
 * not reachable or read-only; earlier pieces may have been written), -EINVAL.
 */
VIOMMU_API int viommu_mem_write(viommu_mem *mem, uint64_t gpa, const void *buf, size_t len);

/**
 * Host pointer for [gpa, gpa + len) if one region covers all of it, else NULL.
 * With `writable` set, a read-only region gives NULL. The pointer is valid as
 * long as the viommu_mem is.
 */
VIOMMU_API void *viommu_mem_ptr(viommu_mem *mem, uint64_t gpa, size_t len, int writable);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_MEM_H */
