/* SPDX-License-Identifier: MIT */
/* Internal: the memory interface's fast paths, for walkers. */
#ifndef VIOMMU_INTERNAL_MEM_H
#define VIOMMU_INTERNAL_MEM_H

#include <viommu/mem.h>

#include "alloc.h"

struct viommu_mem {
	struct valloc alloc;
	uint32_t nr_regions;
	struct viommu_mem_region *regions; /* sorted by gpa, non-overlapping */
	viommu_mem_read_fn read;
	viommu_mem_write_fn write;
	void *ctx;
};

/* The region holding [gpa, gpa + len), or NULL. len >= 1, no wrap. */
const struct viommu_mem_region *mem_find(const struct viommu_mem *mem, uint64_t gpa, uint64_t len);

/* Read one naturally aligned 64-bit little-endian entry (atomically when it
 * is in a region). 0 or -EFAULT. */
int mem_read64(struct viommu_mem *mem, uint64_t gpa, uint64_t *val);

/*
 * Set `bits` in the 64-bit entry at gpa if it still equals `old`. Returns 0
 * when written (or nothing to do), 1 when the entry changed under us (the
 * caller may retry or give up), -EFAULT when it cannot be written.
 */
int mem_or64(struct viommu_mem *mem, uint64_t gpa, uint64_t old, uint64_t bits);

#endif
