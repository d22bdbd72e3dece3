/* SPDX-License-Identifier: MIT */
#include "alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *libc_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	if (align < sizeof(void *))
		align = sizeof(void *);
	/* aligned_alloc wants a size that is a multiple of the alignment. */
	size_t rounded = (size + align - 1) & ~(align - 1);
	if (rounded < size)
		return NULL;
	return aligned_alloc(align, rounded);
}

static void libc_free(void *ctx, void *ptr, size_t size, size_t align)
{
	(void)ctx;
	(void)size;
	(void)align;
	free(ptr);
}

int valloc_init(struct valloc *out, const struct viommu_alloc *hooks)
{
	if (!hooks) {
		out->alloc = libc_alloc;
		out->free = libc_free;
		out->ctx = NULL;
		return 0;
	}
	if (hooks->size < sizeof(*hooks) || !hooks->alloc || !hooks->free)
		return -EINVAL;
	out->alloc = hooks->alloc;
	out->free = hooks->free;
	out->ctx = hooks->ctx;
	return 0;
}

void *valloc_get(const struct valloc *a, size_t size, size_t align)
{
	return a->alloc(a->ctx, size, align);
}

void *valloc_zget(const struct valloc *a, size_t size, size_t align)
{
	void *p = a->alloc(a->ctx, size, align);
	if (p)
		memset(p, 0, size);
	return p;
}

void valloc_put(const struct valloc *a, void *ptr, size_t size, size_t align)
{
	if (ptr)
		a->free(a->ctx, ptr, size, align);
}
