/* SPDX-License-Identifier: MIT */
/* Internal: the allocation hooks, resolved once at create time. */
#ifndef VIOMMU_INTERNAL_ALLOC_H
#define VIOMMU_INTERNAL_ALLOC_H

#include <viommu/common.h>

struct valloc {
	viommu_alloc_fn alloc;
	viommu_free_fn free;
	void *ctx;
};

/* Fill `out` from caller hooks (NULL: the C library). -EINVAL on bad hooks. */
int valloc_init(struct valloc *out, const struct viommu_alloc *hooks);
void *valloc_get(const struct valloc *a, size_t size, size_t align);
void *valloc_zget(const struct valloc *a, size_t size, size_t align);
void valloc_put(const struct valloc *a, void *ptr, size_t size, size_t align);

#endif
