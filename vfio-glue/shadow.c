/* SPDX-License-Identifier: MIT */
/*
 * Shadowing: a guest that runs its own (virtual) IOMMU maps IOVA -> guest-
 * physical; a real device behind the host IOMMU needs IOVA -> host memory.
 * The core's map notifier tells us each change of the guest's mappings; we
 * turn it into host IOMMU calls through the container, keeping our own list
 * of what we mapped (host IOMMUs cannot split a mapping, so a partial unmap
 * needs the original extent).
 *
 * Ordering: the notifier runs inside the guest's invalidation (caching mode:
 * the guest invalidates after mapping too), so when it returns the host
 * agrees with the guest, and an UNMAP is never late: the invalidation that
 * removed a mapping completes only after the host stopped the device's DMA
 * there.
 */
#include "vfio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_4K 4096ull

struct shadow_map {
	uint64_t iova, size;
	uint8_t *host;
	uint32_t prot;
};

struct viommu_vfio_shadow {
	viommu_vfio_container *c;
	viommu_domain *dom;
	viommu_notifier *n;
	uint32_t flags;
	bool replaying;          /* inside viommu_notifier_add's replay */
	uint32_t nr_regions;
	struct viommu_mem_region regions[VIOMMU_MEM_MAX_REGIONS];
	pthread_mutex_t lock;
	struct shadow_map *maps; /* sorted by iova, disjoint */
	size_t nr_maps, cap_maps;
	struct shadow_map pend; /* DEFER_MAPS: the run not sent yet (size 0: none) */
	struct viommu_vfio_shadow_stats st;
};

static size_t lower_bound(const viommu_vfio_shadow *s, uint64_t iova)
{
	size_t lo = 0, hi = s->nr_maps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->maps[mid].iova + (s->maps[mid].size - 1) < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int reserve(viommu_vfio_shadow *s, size_t more)
{
	if (s->nr_maps + more <= s->cap_maps)
		return 0;
	size_t cap = s->cap_maps ? s->cap_maps : 16;
	while (cap < s->nr_maps + more)
		cap *= 2;
	struct shadow_map *m = realloc(s->maps, cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	s->maps = m;
	s->cap_maps = cap;
	return 0;
}

static void record_error(viommu_vfio_shadow *s, int *first, int err)
{
	s->st.errors++;
	if (!*first)
		*first = err;
}

/* One host mapping, recorded. Under s->lock. */
static int host_map(viommu_vfio_shadow *s, const struct shadow_map *m)
{
	int r = reserve(s, 1);
	if (r)
		return r;
	r = viommu_vfio_dma_map(s->c, m->iova, m->host, m->size, m->prot);
	if (r) {
		vfio_log(s->c->v, VIOMMU_LOG_ERROR, "shadow of domain %u: host map [%#llx, +%#llx): %d",
			 viommu_domain_id(s->dom), (unsigned long long)m->iova, (unsigned long long)m->size, r);
		return r;
	}
	size_t i = lower_bound(s, m->iova);
	memmove(&s->maps[i + 1], &s->maps[i], (s->nr_maps - i) * sizeof(*s->maps));
	s->maps[i] = *m;
	s->nr_maps++;
	s->st.host_maps++;
	s->st.mapped_bytes += m->size;
	return 0;
}

static int flush_locked(viommu_vfio_shadow *s)
{
	if (!s->pend.size)
		return 0;
	struct shadow_map m = s->pend;
	s->pend.size = 0;
	int r = host_map(s, &m);
	if (r)
		s->st.errors++;
	return r;
}

/* A host-virtual piece of a MAP: sent now, or merged into the pending run. */
static int add_piece(viommu_vfio_shadow *s, const struct shadow_map *m)
{
	if (!(s->flags & VIOMMU_VFIO_SHADOW_F_DEFER_MAPS) && !s->replaying)
		return host_map(s, m);
	struct shadow_map *p = &s->pend;
	if (p->size && p->iova + p->size == m->iova && p->host + p->size == m->host && p->prot == m->prot &&
	    p->size + m->size > p->size) {
		p->size += m->size;
		return 0;
	}
	int r = flush_locked(s);
	*p = *m;
	return r;
}

static const struct viommu_mem_region *region_of(const viommu_vfio_shadow *s, uint64_t gpa)
{
	for (uint32_t i = 0; i < s->nr_regions; i++)
		if (gpa >= s->regions[i].gpa && gpa - s->regions[i].gpa < s->regions[i].size)
			return &s->regions[i];
	return NULL;
}

/* The first region starting above gpa, or NULL. */
static const struct viommu_mem_region *region_above(const viommu_vfio_shadow *s, uint64_t gpa)
{
	const struct viommu_mem_region *best = NULL;
	for (uint32_t i = 0; i < s->nr_regions; i++)
		if (s->regions[i].gpa > gpa && (!best || s->regions[i].gpa < best->gpa))
			best = &s->regions[i];
	return best;
}

static int on_map(viommu_vfio_shadow *s, const struct viommu_map_event *ev)
{
	int first = 0;
	uint32_t prot = ev->perms & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE);
	if (!prot || !ev->size)
		return 0;
	uint64_t off = 0;
	while (off < ev->size) {
		uint64_t gpa = ev->paddr + off, left = ev->size - off;
		const struct viommu_mem_region *rg = region_of(s, gpa);
		if (!rg) {
			/* Not guest RAM (MMIO, or nothing): a device cannot
			 * reach it through the host IOMMU. */
			const struct viommu_mem_region *next = region_above(s, gpa);
			uint64_t skip = next && next->gpa - gpa < left ? next->gpa - gpa : left;
			vfio_log(s->c->v, VIOMMU_LOG_ERROR,
				 "shadow of domain %u: IOVA [%#llx, +%#llx) maps guest-physical %#llx, outside guest "
				 "RAM: not mapped in the host IOMMU",
				 viommu_domain_id(s->dom), (unsigned long long)(ev->iova + off),
				 (unsigned long long)skip, (unsigned long long)gpa);
			record_error(s, &first, -EFAULT);
			off += skip;
			continue;
		}
		uint64_t in_rg = rg->size - (gpa - rg->gpa);
		uint64_t len = in_rg < left ? in_rg : left;
		struct shadow_map m = { ev->iova + off, len, (uint8_t *)rg->host + (gpa - rg->gpa), prot };
		int r = add_piece(s, &m);
		if (r)
			record_error(s, &first, r);
		off += len;
	}
	return first;
}

static int on_unmap(viommu_vfio_shadow *s, uint64_t iova, uint64_t size)
{
	int first = 0;
	uint64_t last = iova + (size - 1);
	int r = flush_locked(s);
	if (r && !first)
		first = r;
	size_t lo = lower_bound(s, iova), hi = lo;
	while (hi < s->nr_maps && s->maps[hi].iova <= last)
		hi++;
	/* Backwards, so the pieces put back never move what is still to do. */
	for (size_t k = hi; k-- > lo;) {
		struct shadow_map m = s->maps[k];
		r = viommu_vfio_dma_unmap(s->c, m.iova, m.size);
		if (r) {
			record_error(s, &first, r);
			continue;
		}
		s->st.host_unmaps++;
		s->st.mapped_bytes -= m.size;
		memmove(&s->maps[k], &s->maps[k + 1], (s->nr_maps - k - 1) * sizeof(*s->maps));
		s->nr_maps--;
		/* What the guest still maps of it goes back (the host cannot
		 * unmap part of a mapping). */
		if (m.iova < iova) {
			struct shadow_map left = { m.iova, iova - m.iova, m.host, m.prot };
			s->st.splits++;
			r = host_map(s, &left);
			if (r)
				record_error(s, &first, r);
		}
		if (m.iova + (m.size - 1) > last) {
			uint64_t cut = last + 1 - m.iova;
			struct shadow_map right = { last + 1, m.size - cut, m.host + cut, m.prot };
			s->st.splits++;
			r = host_map(s, &right);
			if (r)
				record_error(s, &first, r);
		}
	}
	return first;
}

static int shadow_notify(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	viommu_vfio_shadow *s = ctx;
	(void)d;
	int r;
	pthread_mutex_lock(&s->lock);
	switch (ev->type) {
	case VIOMMU_EVENT_MAP:
		s->st.map_events++;
		r = on_map(s, ev);
		break;
	case VIOMMU_EVENT_UNMAP:
		s->st.unmap_events++;
		r = ev->size ? on_unmap(s, ev->iova, ev->size) : 0;
		break;
	default:
		s->st.errors++;
		r = -EINVAL;
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void unmap_all(viommu_vfio_shadow *s)
{
	s->pend.size = 0;
	while (s->nr_maps) {
		struct shadow_map *m = &s->maps[s->nr_maps - 1];
		int r = viommu_vfio_dma_unmap(s->c, m->iova, m->size);
		if (r)
			s->st.errors++;
		else
			s->st.host_unmaps++;
		s->st.mapped_bytes -= m->size;
		s->nr_maps--;
	}
}

int viommu_vfio_shadow_create(viommu_vfio_container *c, const struct viommu_vfio_shadow_config *cfg,
			      viommu_vfio_shadow **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!c || !cfg || cfg->size < sizeof(*cfg) || !cfg->domain || (cfg->flags & ~VIOMMU_VFIO_SHADOW_F_DEFER_MAPS) ||
	    cfg->nr_regions > VIOMMU_MEM_MAX_REGIONS || (!cfg->regions && cfg->nr_regions))
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->nr_regions; i++) {
		const struct viommu_mem_region *r = &cfg->regions[i];
		uint64_t end;
		if (!r->size || !r->host || __builtin_add_overflow(r->gpa, r->size - 1, &end) ||
		    ((r->gpa | r->size | (uintptr_t)r->host) & (PAGE_4K - 1)))
			return -EINVAL;
	}
	pthread_mutex_lock(&c->lock);
	bool ready = c->backend != VIOMMU_VFIO_BACKEND_AUTO;
	pthread_mutex_unlock(&c->lock);
	if (!ready) {
		vfio_log(c->v, VIOMMU_LOG_ERROR, "shadow created on a container without a device");
		return -EINVAL;
	}
	viommu_vfio_shadow *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		return -ENOMEM;
	}
	s->c = c;
	s->dom = cfg->domain;
	s->flags = cfg->flags;
	s->nr_regions = cfg->nr_regions;
	if (cfg->nr_regions)
		memcpy(s->regions, cfg->regions, cfg->nr_regions * sizeof(*cfg->regions));

	/* The replay maps what the domain has already (our notifier runs
	 * before viommu_notifier_add returns). It reports leaf by leaf: merge
	 * contiguous ones, to spare the host's DMA entries, and send the last
	 * run before returning. */
	s->replaying = true;
	int r = viommu_notifier_add(cfg->domain, shadow_notify, s, 1, &s->n);
	pthread_mutex_lock(&s->lock);
	s->replaying = false;
	if (!r)
		r = flush_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (r) {
		viommu_notifier_remove(s->n);
		unmap_all(s);
		free(s->maps);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

int viommu_vfio_shadow_flush(viommu_vfio_shadow *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	int r = flush_locked(s);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void viommu_vfio_shadow_get_stats(viommu_vfio_shadow *s, struct viommu_vfio_shadow_stats *out)
{
	if (!s || !out)
		return;
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	out->nr_mappings = (uint32_t)s->nr_maps;
	pthread_mutex_unlock(&s->lock);
}

void viommu_vfio_shadow_destroy(viommu_vfio_shadow *s)
{
	if (!s)
		return;
	/* No event can arrive once the notifier is gone. */
	viommu_notifier_remove(s->n);
	pthread_mutex_lock(&s->lock);
	unmap_all(s);
	pthread_mutex_unlock(&s->lock);
	free(s->maps);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
