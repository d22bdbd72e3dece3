/* SPDX-License-Identifier: MIT */
/*
 * The memory interface: guest-RAM regions for the fast path, callbacks for the
 * rest. Every access is bounds-checked against a region with overflow-safe
 * arithmetic before a host pointer is formed.
 */
#include "mem_internal.h"

#include <errno.h>
#include <string.h>

static int region_cmp_sort(const struct viommu_mem_region *a, const struct viommu_mem_region *b)
{
	return a->gpa < b->gpa ? -1 : a->gpa > b->gpa;
}

static int mem_config_validate(const struct viommu_mem_config *cfg)
{
	if (cfg->size < sizeof(*cfg))
		return -EINVAL;
	if (cfg->nr_regions > VIOMMU_MEM_MAX_REGIONS)
		return -EINVAL;
	if (cfg->nr_regions && !cfg->regions)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->nr_regions; i++) {
		const struct viommu_mem_region *r = &cfg->regions[i];
		uint64_t last;
		if (!r->size || !r->host)
			return -EINVAL;
		if (r->flags & ~VIOMMU_MEM_REGION_READONLY)
			return -EINVAL;
		if (__builtin_add_overflow(r->gpa, r->size - 1, &last))
			return -EINVAL;
		/* The host range must not wrap either. */
		uintptr_t hlast;
		if (r->size - 1 > UINTPTR_MAX ||
		    __builtin_add_overflow((uintptr_t)r->host, (uintptr_t)(r->size - 1), &hlast))
			return -EINVAL;
	}
	return 0;
}

int viommu_mem_create(const struct viommu_mem_config *cfg, const struct viommu_alloc *alloc,
		      viommu_mem **out)
{
	struct valloc va;
	struct viommu_mem *mem;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	ret = valloc_init(&va, alloc);
	if (ret)
		return ret;
	ret = mem_config_validate(cfg);
	if (ret)
		return ret;

	mem = valloc_zget(&va, sizeof(*mem), _Alignof(struct viommu_mem));
	if (!mem)
		return -ENOMEM;
	mem->alloc = va;
	mem->read = cfg->read;
	mem->write = cfg->write;
	mem->ctx = cfg->ctx;
	if (cfg->nr_regions) {
		size_t bytes = sizeof(*mem->regions) * cfg->nr_regions;
		mem->regions = valloc_get(&va, bytes, _Alignof(struct viommu_mem_region));
		if (!mem->regions) {
			ret = -ENOMEM;
			goto err_free_mem;
		}
		memcpy(mem->regions, cfg->regions, bytes);
		/* Insertion sort: at most VIOMMU_MEM_MAX_REGIONS entries. */
		for (uint32_t i = 1; i < cfg->nr_regions; i++) {
			struct viommu_mem_region tmp = mem->regions[i];
			uint32_t j = i;
			while (j > 0 && region_cmp_sort(&mem->regions[j - 1], &tmp) > 0) {
				mem->regions[j] = mem->regions[j - 1];
				j--;
			}
			mem->regions[j] = tmp;
		}
		for (uint32_t i = 1; i < cfg->nr_regions; i++) {
			const struct viommu_mem_region *p = &mem->regions[i - 1];
			/* p->gpa + p->size - 1 cannot wrap (validated). */
			if (mem->regions[i].gpa <= p->gpa + (p->size - 1)) {
				ret = -EINVAL;
				goto err_free_regions;
			}
		}
		mem->nr_regions = cfg->nr_regions;
	}
	*out = mem;
	return 0;

err_free_regions:
	valloc_put(&va, mem->regions, sizeof(*mem->regions) * cfg->nr_regions,
		   _Alignof(struct viommu_mem_region));
err_free_mem:
	valloc_put(&va, mem, sizeof(*mem), _Alignof(struct viommu_mem));
	return ret;
}

void viommu_mem_destroy(viommu_mem *mem)
{
	if (!mem)
		return;
	struct valloc va = mem->alloc;
	valloc_put(&va, mem->regions, sizeof(*mem->regions) * mem->nr_regions,
		   _Alignof(struct viommu_mem_region));
	valloc_put(&va, mem, sizeof(*mem), _Alignof(struct viommu_mem));
}

/* The region containing gpa (binary search), or NULL. */
static const struct viommu_mem_region *region_at(const struct viommu_mem *mem, uint64_t gpa)
{
	uint32_t lo = 0, hi = mem->nr_regions;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct viommu_mem_region *r = &mem->regions[mid];
		if (gpa < r->gpa)
			hi = mid;
		else if (gpa - r->gpa >= r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/* The first region starting above gpa, for splitting callback accesses. */
static const struct viommu_mem_region *region_after(const struct viommu_mem *mem, uint64_t gpa)
{
	for (uint32_t i = 0; i < mem->nr_regions; i++)
		if (mem->regions[i].gpa > gpa)
			return &mem->regions[i];
	return NULL;
}

const struct viommu_mem_region *mem_find(const struct viommu_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct viommu_mem_region *r = region_at(mem, gpa);
	if (!r)
		return NULL;
	if (len - 1 > r->size - 1 - (gpa - r->gpa))
		return NULL;
	return r;
}

/*
 * Walk [gpa, gpa + len) piece by piece: region pieces are copied, the rest goes
 * to the callback, split at region boundaries.
 */
static int mem_access(struct viommu_mem *mem, uint64_t gpa, void *buf, size_t len, int is_write)
{
	uint8_t *p = buf;
	uint64_t last;

	if (!mem || (!buf && len))
		return -EINVAL;
	if (!len)
		return 0;
	if (__builtin_add_overflow(gpa, (uint64_t)len - 1, &last))
		return -EINVAL;

	while (len) {
		const struct viommu_mem_region *r = region_at(mem, gpa);
		size_t chunk;
		if (r) {
			uint64_t avail = r->size - (gpa - r->gpa);
			chunk = avail < len ? (size_t)avail : len;
			uint8_t *host = (uint8_t *)r->host + (gpa - r->gpa);
			if (is_write) {
				if (r->flags & VIOMMU_MEM_REGION_READONLY)
					return -EFAULT;
				mem_store(host, p, chunk);
			} else {
				memcpy(p, host, chunk);
			}
		} else {
			const struct viommu_mem_region *next = region_after(mem, gpa);
			chunk = len;
			if (next && next->gpa - gpa < chunk)
				chunk = (size_t)(next->gpa - gpa);
			int ret;
			if (is_write)
				ret = mem->write ? mem->write(mem->ctx, gpa, p, chunk) : -EFAULT;
			else
				ret = mem->read ? mem->read(mem->ctx, gpa, p, chunk) : -EFAULT;
			if (ret)
				return ret < 0 ? ret : -EFAULT;
		}
		p += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int viommu_mem_read(viommu_mem *mem, uint64_t gpa, void *buf, size_t len)
{
	return mem_access(mem, gpa, buf, len, 0);
}

int viommu_mem_write(viommu_mem *mem, uint64_t gpa, const void *buf, size_t len)
{
	return mem_access(mem, gpa, (void *)buf, len, 1);
}

void *viommu_mem_ptr(viommu_mem *mem, uint64_t gpa, size_t len, int writable)
{
	if (!mem || !len)
		return NULL;
	const struct viommu_mem_region *r = mem_find(mem, gpa, len);
	if (!r || (writable && (r->flags & VIOMMU_MEM_REGION_READONLY)))
		return NULL;
	return (uint8_t *)r->host + (gpa - r->gpa);
}

int mem_read64(struct viommu_mem *mem, uint64_t gpa, uint64_t *val)
{
	const struct viommu_mem_region *r = mem_find(mem, gpa, 8);
	if (r && !(gpa & 7)) {
		const uint64_t *host = (const uint64_t *)((const uint8_t *)r->host + (gpa - r->gpa));
		/* The guest may be writing the entry: read it once, whole. */
		*val = __atomic_load_n(host, __ATOMIC_ACQUIRE);
		return 0;
	}
	uint8_t b[8];
	int ret = mem_access(mem, gpa, b, 8, 0);
	if (ret)
		return -EFAULT;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	*val = v;
	return 0;
}

int mem_or64(struct viommu_mem *mem, uint64_t gpa, uint64_t old, uint64_t bits)
{
	if ((old | bits) == old)
		return 0;
	const struct viommu_mem_region *r = mem_find(mem, gpa, 8);
	if (r && !(gpa & 7)) {
		if (r->flags & VIOMMU_MEM_REGION_READONLY)
			return -EFAULT;
		uint64_t *host = (uint64_t *)((uint8_t *)r->host + (gpa - r->gpa));
		uint64_t expected = old;
		/* Like the hardware's locked update: only if the guest has not
		 * changed the entry since the walk read it. */
		if (__atomic_compare_exchange_n(host, &expected, old | bits, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
		return 1;
	}
	/* Callback memory: no atomicity is possible; write the new value. */
	uint64_t v = old | bits;
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return mem_access(mem, gpa, b, 8, 1) ? -EFAULT : 0;
}
