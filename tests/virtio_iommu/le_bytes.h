/* SPDX-License-Identifier: MIT */
/* The virtio-iommu tests' view of guest bytes: little-endian stores and a
 * load of n bytes (requests and replies are laid out byte by byte). */
#ifndef VIOMMU_TESTS_LE_BYTES_H
#define VIOMMU_TESTS_LE_BYTES_H

#include <stdint.h>

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
