/* SPDX-License-Identifier: MIT */
/* Internal: the memory interface's fast paths, for walkers. */
#ifndef VIOMMU_INTERNAL_MEM_H
#define VIOMMU_INTERNAL_MEM_H

#include <viommu/mem.h>

#include <stdint.h>
#include <string.h>

#include "alloc.h"

struct viommu_mem {
	struct valloc alloc;
	uint32_t nr_regions;
	struct viommu_mem_region *regions; /* sorted by gpa, non-overlapping */
	viommu_mem_read_fn read;
	viommu_mem_write_fn write;
	void *ctx;
};

/*
 * Store n bytes into guest memory as a device's write lands: a naturally
 * aligned write of 1, 2, 4 or 8 bytes is one store, never torn and never
 * repeated. memcpy is not that: glibc's copies a 4-byte word with two
 * overlapping stores, so a guest that sees the first one and writes the word
 * at once (Linux frees an invalidation wait's status word as soon as it reads
 * "done") has its write undone by the second. Longer writes are memcpy.
 */
static inline void mem_store(void *dst, const void *src, size_t n)
{
	uintptr_t a = (uintptr_t)dst;
	if (n && n <= 8 && !(n & (n - 1)) && !(a & (n - 1))) {
		switch (n) {
		case 1:
			__atomic_store_n((uint8_t *)dst, *(const uint8_t *)src, __ATOMIC_RELEASE);
			return;
		case 2: {
			uint16_t v;
			memcpy(&v, src, 2);
			__atomic_store_n((uint16_t *)dst, v, __ATOMIC_RELEASE);
			return;
		}
		case 4: {
			uint32_t v;
			memcpy(&v, src, 4);
			__atomic_store_n((uint32_t *)dst, v, __ATOMIC_RELEASE);
			return;
		}
		default: {
			uint64_t v;
			memcpy(&v, src, 8);
			__atomic_store_n((uint64_t *)dst, v, __ATOMIC_RELEASE);
			return;
		}
		}
	}
	memcpy(dst, src, n);
}

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
