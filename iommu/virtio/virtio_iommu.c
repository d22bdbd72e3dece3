/* SPDX-License-Identifier: MIT */
/*
 * The virtio-iommu front-end (virtio 1.2, 5.13): requests in, core calls out.
 *
 * Each virtio-iommu domain is one core domain (host-owned paging table, or
 * identity for a bypass domain) plus the list of the mappings MAP created,
 * sorted by address: the specification's unit of UNMAP is the mapping, so an
 * UNMAP that would split one must be refused whole, and the page table alone
 * cannot say where a mapping begins. Endpoints are core devices this object
 * creates; an endpoint that no domain holds is detached (blocked), or
 * attached to the shared identity domain while the driver has set the
 * config's bypass field.
 *
 * Faults come from the core through a fault queue installed on the instance;
 * pop_event turns the oldest record of one of our endpoints into a fault
 * event. `lock` guards the domains, the features and the config; `ep_lock`
 * the endpoint table, which is all pop_event needs: pop_event runs on
 * whatever thread a fault raised the event on, which may be in the middle of
 * a zero-copy transfer (a DMA hold), while a request holding `lock` waits in
 * viommu_dma_drain for that transfer to end. Order: lock, then ep_lock. The
 * fault queue has its own lock.
 *
 * An UNMAP, and an ATTACH or DETACH that takes an endpoint out of a domain,
 * drain the instance's zero-copy transfers (viommu_dma_drain) before their
 * status is written, as the VT-d front-end does after an invalidation: a
 * transfer that translated before the change may still be moving data to
 * what was mapped, and the driver may reuse the page once it has the status.
 *
 * The internals of the core used (core_internal.h): the instance's
 * allocation hooks, its fault queue and the interrupt-remapping reasons.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <viommu/faultlog.h>
#include <viommu/iommu.h>
#include <viommu/virtio_iommu.h>

#include "acpi_table.h"
#include "alloc.h"
#include "core_internal.h"
#include "le.h"

/* 5.13.6: request types and status values. */
#define T_ATTACH 1
#define T_DETACH 2
#define T_MAP 3
#define T_UNMAP 4
#define T_PROBE 5

#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define S_DEVERR 3
#define S_INVAL 4
#define S_RANGE 5
#define S_NOENT 6
#define S_FAULT 7
#define S_NOMEM 8

/* 5.13.6.3: ATTACH flags; 5.13.6.5: MAP flags. */
#define ATTACH_F_BYPASS (1u << 0)
#define MAP_F_READ (1u << 0)
#define MAP_F_WRITE (1u << 1)
#define MAP_F_MMIO (1u << 2)

/* 5.13.6.7: probe property types. */
#define PROBE_T_RESV_MEM 1
#define PROBE_RESV_MEM_LEN 20 /* value bytes after the 4-byte property head */

/* 5.13.6.8: fault reasons and flags. */
#define FAULT_R_UNKNOWN 0
#define FAULT_R_DOMAIN 1
#define FAULT_R_MAPPING 2
#define FAULT_F_READ (1u << 0)
#define FAULT_F_WRITE (1u << 1)
#define FAULT_F_EXEC (1u << 2)
#define FAULT_F_ADDRESS (1u << 8)

/* The device-readable size of each request (head + body). */
#define ATTACH_LEN 20
#define DETACH_LEN 20
#define MAP_LEN 36
#define UNMAP_LEN 28
#define PROBE_LEN 72
#define TAIL_LEN 4

/* 5.13.4: configuration space offsets. */
#define CFG_PAGE_SIZE_MASK 0
#define CFG_INPUT_START 8
#define CFG_INPUT_END 16
#define CFG_DOMAIN_START 24
#define CFG_DOMAIN_END 28
#define CFG_PROBE_SIZE 32
#define CFG_BYPASS 36

#define MAX_RESV 16
#define PAGE_MASK 0xfffull
#define INPUT_BITS 48

struct vi_map {
	uint64_t start, end, phys; /* [start, end] */
	uint32_t flags;
};

struct vi_dom {
	uint32_t id;
	int bypass;
	viommu_domain *d;
	uint32_t nr_eps;
	struct vi_map *maps;
	uint32_t nr_maps, cap_maps;
};

struct vi_ep {
	uint32_t id;
	viommu_dev *dev;
	struct vi_dom *dom; /* NULL: not attached */
};

struct viommu_virtio_iommu {
	viommu *v;
	struct valloc alloc;
	pthread_mutex_t lock;
	pthread_mutex_t ep_lock;
	struct viommu_virtio_iommu_config cfg;
	struct viommu_virtio_iommu_resv resv[MAX_RESV];
	uint64_t offered, features;
	uint8_t bypass;               /* the config field */
	viommu_domain *identity;      /* for bypass, created at create time */
	struct vi_ep *eps;
	uint32_t nr_eps, cap_eps;
	struct vi_dom **doms;
	uint32_t nr_doms, cap_doms;
	uint64_t nr_mappings;
	viommu_fault_queue *fq;
	struct viommu_virtio_iommu_stats st; /* under lock, but events, foreign and undelivered: atomic */
	uint64_t foreign;     /* fault records of requesters that are not endpoints */
	uint64_t undelivered; /* events popped whose buffer could not take them */
};

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Grow an array of `size`-byte elements to hold at least `want`. */
static int grow(const struct valloc *a, void **arr, uint32_t *cap, uint32_t want, size_t size)
{
	if (want <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 8;
	while (n < want) {
		if (n > UINT32_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	void *p = valloc_get(a, (size_t)n * size, 16);
	if (!p)
		return -ENOMEM;
	if (*arr) {
		memcpy(p, *arr, (size_t)*cap * size);
		valloc_put(a, *arr, (size_t)*cap * size, 16);
	}
	*arr = p;
	*cap = n;
	return 0;
}

static int negotiated(const viommu_virtio_iommu *vi, unsigned bit)
{
	return (vi->features >> bit) & 1;
}

static struct vi_ep *ep_find(viommu_virtio_iommu *vi, uint32_t id)
{
	for (uint32_t i = 0; i < vi->nr_eps; i++)
		if (vi->eps[i].id == id)
			return &vi->eps[i];
	return NULL;
}

static struct vi_dom *dom_find(viommu_virtio_iommu *vi, uint32_t id)
{
	for (uint32_t i = 0; i < vi->nr_doms; i++)
		if (vi->doms[i]->id == id)
			return vi->doms[i];
	return NULL;
}

/* An endpoint that no domain holds: blocked, or the identity domain while
 * the driver asked for bypass (5.13.4, the bypass field). */
static int ep_park(viommu_virtio_iommu *vi, struct vi_ep *ep)
{
	ep->dom = NULL;
	if (negotiated(vi, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG) && vi->bypass)
		return viommu_dev_attach(ep->dev, VIOMMU_NO_PASID, vi->identity, NULL);
	int r = viommu_dev_detach(ep->dev, VIOMMU_NO_PASID);
	return r == -ENOENT ? 0 : r;
}

static void dom_free(viommu_virtio_iommu *vi, struct vi_dom *dom)
{
	/* Every endpoint left it first: the core cannot refuse. */
	if (dom->d && viommu_domain_destroy(dom->d))
		core_log(vi->v, VIOMMU_LOG_ERROR, "virtio-iommu: domain %u could not be destroyed", dom->id);
	vi->nr_mappings -= dom->nr_maps;
	if (dom->maps)
		valloc_put(&vi->alloc, dom->maps, (size_t)dom->cap_maps * sizeof(*dom->maps), 16);
	valloc_put(&vi->alloc, dom, sizeof(*dom), 16);
}

/* Remove a domain with no endpoint left from the table and free it (5.13.6.4:
 * the domain, and its mappings, end with its last endpoint). */
static void dom_drop(viommu_virtio_iommu *vi, struct vi_dom *dom)
{
	for (uint32_t i = 0; i < vi->nr_doms; i++) {
		if (vi->doms[i] == dom) {
			vi->doms[i] = vi->doms[--vi->nr_doms];
			break;
		}
	}
	dom_free(vi, dom);
}

static uint8_t errno_status(int r)
{
	return r == -ENOMEM ? S_NOMEM : S_DEVERR;
}

static uint8_t do_attach(viommu_virtio_iommu *vi, const uint8_t *req)
{
	uint32_t domain = get32(req + 4), endpoint = get32(req + 8), flags = get32(req + 12);
	uint32_t known = negotiated(vi, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG) ? ATTACH_F_BYPASS : 0;

	/* 5.13.6.3: reserved fields or unknown flags: INVAL, nothing done. */
	if (!all_zero(req + 1, 3) || !all_zero(req + 16, 4) || (flags & ~known))
		return S_INVAL;
	struct vi_ep *ep = ep_find(vi, endpoint);
	if (!ep)
		return S_NOENT;
	if (domain < vi->cfg.domain_start || domain > vi->cfg.domain_end)
		return S_RANGE;
	int bypass = !!(flags & ATTACH_F_BYPASS);
	struct vi_dom *dom = dom_find(vi, domain);
	if (dom && dom->bypass != bypass)
		return S_INVAL;
	if (dom && ep->dom == dom)
		return S_OK;
	int created = 0;
	if (!dom) {
		if (grow(&vi->alloc, (void **)&vi->doms, &vi->cap_doms, vi->nr_doms + 1, sizeof(*vi->doms)))
			return S_NOMEM;
		dom = valloc_zget(&vi->alloc, sizeof(*dom), 16);
		if (!dom)
			return S_NOMEM;
		dom->id = domain;
		dom->bypass = bypass;
		struct viommu_domain_config dc = { .size = sizeof(dc) };
		if (bypass) {
			dc.type = VIOMMU_DOMAIN_IDENTITY;
		} else {
			dc.type = VIOMMU_DOMAIN_PAGING;
			dc.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
			dc.pt.size = sizeof(dc.pt);
			dc.pt.format = VIOMMU_PT_VTD_SL;
			dc.pt.levels = 4;
		}
		int r = viommu_domain_create(vi->v, &dc, &dom->d);
		if (r) {
			valloc_put(&vi->alloc, dom, sizeof(*dom), 16);
			return errno_status(r);
		}
		vi->doms[vi->nr_doms++] = dom;
		created = 1;
	}
	/* An endpoint attached elsewhere moves: as a DETACH, then the ATTACH.
	 * The core attach replaces the old attachment in one step, so DMA in
	 * flight never sees the endpoint unattached in between. */
	int r = viommu_dev_attach(ep->dev, VIOMMU_NO_PASID, dom->d, NULL);
	if (r) {
		if (created)
			dom_drop(vi, dom);
		return errno_status(r);
	}
	struct vi_dom *old = ep->dom;
	ep->dom = dom;
	dom->nr_eps++;
	if (old && --old->nr_eps == 0)
		dom_drop(vi, old);
	/* A transfer that went through the old domain may still be moving
	 * data (see the top). */
	if (old)
		viommu_dma_drain(vi->v);
	return S_OK;
}

static uint8_t do_detach(viommu_virtio_iommu *vi, const uint8_t *req)
{
	uint32_t domain = get32(req + 4), endpoint = get32(req + 8);

	if (!all_zero(req + 1, 3) || !all_zero(req + 12, 8))
		return S_INVAL;
	struct vi_ep *ep = ep_find(vi, endpoint);
	if (!ep)
		return S_NOENT;
	/* 5.13.6.4: a domain that does not exist, or one the endpoint is not
	 * attached to. */
	struct vi_dom *dom = dom_find(vi, domain);
	if (!dom || ep->dom != dom)
		return S_INVAL;
	int r = ep_park(vi, ep);
	if (r)
		return errno_status(r);
	if (--dom->nr_eps == 0)
		dom_drop(vi, dom);
	viommu_dma_drain(vi->v);
	return S_OK;
}

/* The index of the first mapping whose end is >= addr. */
static uint32_t map_lower(const struct vi_dom *dom, uint64_t addr)
{
	uint32_t lo = 0, hi = dom->nr_maps;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (dom->maps[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* What MAP and UNMAP check first: the domain (NOENT), that it is not a
 * bypass domain (5.13.6.5, 5.13.6.6: it has no mappings; INVAL), and that
 * the range does not end before it starts (INVAL). */
static uint8_t map_target(viommu_virtio_iommu *vi, uint32_t domain, uint64_t start, uint64_t end,
			  struct vi_dom **out)
{
	struct vi_dom *dom = dom_find(vi, domain);
	if (!dom)
		return S_NOENT;
	if (dom->bypass || end < start)
		return S_INVAL;
	*out = dom;
	return S_OK;
}

static uint8_t do_map(viommu_virtio_iommu *vi, const uint8_t *req)
{
	uint32_t domain = get32(req + 4), flags = get32(req + 32);
	uint64_t start = get64(req + 8), end = get64(req + 16), phys = get64(req + 24);
	uint32_t known = MAP_F_READ | MAP_F_WRITE | (negotiated(vi, VIOMMU_VIRTIO_IOMMU_F_MMIO) ? MAP_F_MMIO : 0);

	if (!all_zero(req + 1, 3) || (flags & ~known))
		return S_INVAL;
	struct vi_dom *dom;
	uint8_t st = map_target(vi, domain, start, end, &dom);
	if (st != S_OK)
		return st;
	/* Page granularity and the input range (end <= input_end, so size
	 * cannot wrap to 0); the output must fit the table's 52 address bits. */
	if ((start & PAGE_MASK) || (phys & PAGE_MASK) || ((end + 1) & PAGE_MASK) || end > vi->cfg.input_end)
		return S_RANGE;
	uint64_t size = end - start + 1;
	if (phys + size - 1 < phys || ((phys + size - 1) >> 52))
		return S_RANGE;
	uint32_t at = map_lower(dom, start);
	if (at < dom->nr_maps && dom->maps[at].start <= end)
		return S_INVAL; /* overlaps a mapping */
	if (vi->nr_mappings >= vi->cfg.max_mappings)
		return S_NOMEM;
	if (grow(&vi->alloc, (void **)&dom->maps, &dom->cap_maps, dom->nr_maps + 1, sizeof(*dom->maps)))
		return S_NOMEM;
	uint32_t prot = ((flags & MAP_F_READ) ? VIOMMU_PERM_READ : 0) | ((flags & MAP_F_WRITE) ? VIOMMU_PERM_WRITE : 0);
	/* A mapping with neither READ nor WRITE is kept (an UNMAP must find
	 * it) but puts nothing in the table: every access to it faults. */
	if (prot) {
		uint64_t done = 0;
		int r = viommu_domain_map(dom->d, start, phys, size, prot, &done);
		if (r) {
			if (done) {
				uint64_t undone = 0;
				viommu_domain_unmap(dom->d, start, done, &undone);
			}
			return r == -ENOMEM ? S_NOMEM : (r == -EINVAL ? S_RANGE : S_DEVERR);
		}
	}
	memmove(&dom->maps[at + 1], &dom->maps[at], (size_t)(dom->nr_maps - at) * sizeof(*dom->maps));
	dom->maps[at] = (struct vi_map){ .start = start, .end = end, .phys = phys, .flags = flags };
	dom->nr_maps++;
	vi->nr_mappings++;
	return S_OK;
}

static uint8_t do_unmap(viommu_virtio_iommu *vi, const uint8_t *req)
{
	uint32_t domain = get32(req + 4);
	uint64_t start = get64(req + 8), end = get64(req + 16);

	if (!all_zero(req + 1, 3) || !all_zero(req + 24, 4))
		return S_INVAL;
	struct vi_dom *dom;
	uint8_t st = map_target(vi, domain, start, end, &dom);
	if (st != S_OK)
		return st;
	uint32_t first = map_lower(dom, start), last = first;
	while (last < dom->nr_maps && dom->maps[last].start <= end)
		last++;
	if (first == last)
		return S_OK; /* nothing mapped there: not an error (5.13.6.6) */
	/* 5.13.6.6: a range that would split a mapping removes nothing. */
	if (dom->maps[first].start < start || dom->maps[last - 1].end > end)
		return S_RANGE;
	uint8_t status = S_OK;
	for (uint32_t i = first; i < last; i++) {
		const struct vi_map *m = &dom->maps[i];
		if (!(m->flags & (MAP_F_READ | MAP_F_WRITE)))
			continue;
		uint64_t done = 0;
		/* The core drops the range's cached translations before it
		 * returns, so the status below is written after the last
		 * translation of it can be handed out. */
		int r = viommu_domain_unmap(dom->d, m->start, m->end - m->start + 1, &done);
		if (r)
			status = errno_status(r);
	}
	uint32_t n = last - first;
	memmove(&dom->maps[first], &dom->maps[last], (size_t)(dom->nr_maps - last) * sizeof(*dom->maps));
	dom->nr_maps -= n;
	vi->nr_mappings -= n;
	viommu_dma_drain(vi->v);
	return status;
}

/* PROBE: the properties go into out[0, probe_size), zero-filled after the
 * last one (a NONE property ends the list). */
static uint8_t do_probe(viommu_virtio_iommu *vi, const uint8_t *req, uint8_t *props)
{
	uint32_t endpoint = get32(req + 4);

	if (!all_zero(req + 1, 3) || !all_zero(req + 8, 64))
		return S_INVAL;
	if (!ep_find(vi, endpoint))
		return S_NOENT;
	size_t off = 0;
	for (uint32_t i = 0; i < vi->cfg.nr_resv; i++) {
		uint8_t *p = props + off;
		put16(p, PROBE_T_RESV_MEM);
		put16(p + 2, PROBE_RESV_MEM_LEN);
		p[4] = (uint8_t)vi->resv[i].subtype;
		p[5] = p[6] = p[7] = 0;
		put64(p + 8, vi->resv[i].start);
		put64(p + 16, vi->resv[i].end);
		off += 4 + PROBE_RESV_MEM_LEN;
	}
	return S_OK;
}

int viommu_virtio_iommu_request(viommu_virtio_iommu *vi, const void *in, size_t in_len, void *out, size_t out_len,
				size_t *written)
{
	if (written)
		*written = 0;
	if (!vi || !out || out_len < TAIL_LEN || !written || (!in && in_len))
		return -EINVAL;
	const uint8_t *req = in;
	uint8_t *o = out;
	uint8_t status;
	size_t tail_at = 0;

	pthread_mutex_lock(&vi->lock);
	vi->st.requests++;
	uint8_t type = in_len ? req[0] : 0;
	switch (type) {
	case T_ATTACH:
		status = in_len == ATTACH_LEN ? do_attach(vi, req) : S_INVAL;
		break;
	case T_DETACH:
		status = in_len == DETACH_LEN ? do_detach(vi, req) : S_INVAL;
		break;
	case T_MAP:
		status = in_len == MAP_LEN ? do_map(vi, req) : S_INVAL;
		break;
	case T_UNMAP:
		status = in_len == UNMAP_LEN ? do_unmap(vi, req) : S_INVAL;
		break;
	case T_PROBE:
		if (!negotiated(vi, VIOMMU_VIRTIO_IOMMU_F_PROBE)) {
			status = S_UNSUPP;
		} else if (in_len != PROBE_LEN || out_len < (size_t)vi->cfg.probe_size + TAIL_LEN) {
			/* The tail goes after probe_size bytes of properties:
			 * a writable part too short for it has no place for
			 * it, so the status goes in its last 4 bytes. */
			status = S_INVAL;
			if (in_len == PROBE_LEN) {
				tail_at = out_len - TAIL_LEN;
				memset(o, 0, tail_at);
			}
		} else {
			memset(o, 0, vi->cfg.probe_size);
			status = do_probe(vi, req, o);
			tail_at = vi->cfg.probe_size;
		}
		break;
	default:
		status = S_UNSUPP;
		break;
	}
	vi->st.status[status]++;
	if (status == S_OK) {
		vi->st.attaches += type == T_ATTACH;
		vi->st.detaches += type == T_DETACH;
		vi->st.maps += type == T_MAP;
		vi->st.unmaps += type == T_UNMAP;
	}
	pthread_mutex_unlock(&vi->lock);

	o[tail_at] = status;
	o[tail_at + 1] = o[tail_at + 2] = o[tail_at + 3] = 0;
	*written = tail_at + TAIL_LEN;
	return 0;
}

uint64_t viommu_virtio_iommu_device_features(const viommu_virtio_iommu *vi)
{
	return vi ? vi->offered : 0;
}

int viommu_virtio_iommu_set_features(viommu_virtio_iommu *vi, uint64_t features)
{
	if (!vi)
		return -EINVAL;
	/* The transport's bits (24 and up) are not ours. */
	uint64_t mine = features & ((1ull << 24) - 1);
	if (mine & ~vi->offered)
		return -EINVAL;
	pthread_mutex_lock(&vi->lock);
	vi->features = mine;
	pthread_mutex_unlock(&vi->lock);
	return 0;
}

static void config_bytes(const viommu_virtio_iommu *vi, uint8_t *c)
{
	memset(c, 0, VIOMMU_VIRTIO_IOMMU_CONFIG_SIZE);
	put64(c + CFG_PAGE_SIZE_MASK, vi->cfg.page_size_mask);
	put64(c + CFG_INPUT_START, 0);
	put64(c + CFG_INPUT_END, vi->cfg.input_end);
	put32(c + CFG_DOMAIN_START, vi->cfg.domain_start);
	put32(c + CFG_DOMAIN_END, vi->cfg.domain_end);
	put32(c + CFG_PROBE_SIZE, vi->cfg.probe_size);
	c[CFG_BYPASS] = vi->bypass;
}

void viommu_virtio_iommu_config_read(viommu_virtio_iommu *vi, uint32_t off, void *buf, uint32_t len)
{
	if (!buf)
		return;
	memset(buf, 0, len);
	if (!vi)
		return;
	uint8_t c[VIOMMU_VIRTIO_IOMMU_CONFIG_SIZE];
	pthread_mutex_lock(&vi->lock);
	config_bytes(vi, c);
	pthread_mutex_unlock(&vi->lock);
	for (uint32_t i = 0; i < len; i++) {
		uint64_t at = (uint64_t)off + i;
		if (at < sizeof(c))
			((uint8_t *)buf)[i] = c[at];
	}
}

void viommu_virtio_iommu_config_write(viommu_virtio_iommu *vi, uint32_t off, const void *buf, uint32_t len)
{
	if (!vi || !buf)
		return;
	/* Only the bypass byte is writable (5.13.4). */
	if (off > CFG_BYPASS || (uint64_t)off + len <= CFG_BYPASS)
		return;
	uint8_t val = ((const uint8_t *)buf)[CFG_BYPASS - off];
	pthread_mutex_lock(&vi->lock);
	if (negotiated(vi, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG) && (val & 1) != vi->bypass) {
		vi->bypass = val & 1;
		for (uint32_t i = 0; i < vi->nr_eps; i++)
			if (!vi->eps[i].dom && ep_park(vi, &vi->eps[i]))
				core_log(vi->v, VIOMMU_LOG_ERROR, "virtio-iommu: endpoint %#x kept its old bypass state",
					 vi->eps[i].id);
	}
	pthread_mutex_unlock(&vi->lock);
}

int viommu_virtio_iommu_add_endpoint(viommu_virtio_iommu *vi, uint32_t endpoint, struct viommu_rid rid,
				     viommu_dev **dev)
{
	if (!vi || !dev)
		return -EINVAL;
	*dev = NULL;
	int r;
	pthread_mutex_lock(&vi->lock);
	if (ep_find(vi, endpoint)) {
		r = -EEXIST;
		goto out;
	}
	/* pop_event reads the table under ep_lock only. */
	pthread_mutex_lock(&vi->ep_lock);
	r = grow(&vi->alloc, (void **)&vi->eps, &vi->cap_eps, vi->nr_eps + 1, sizeof(*vi->eps));
	pthread_mutex_unlock(&vi->ep_lock);
	if (r)
		goto out;
	viommu_dev *d;
	r = viommu_dev_create(vi->v, rid, &d);
	if (r)
		goto out;
	struct vi_ep *ep = &vi->eps[vi->nr_eps];
	*ep = (struct vi_ep){ .id = endpoint, .dev = d };
	r = ep_park(vi, ep);
	if (r) {
		viommu_dev_destroy(d);
		goto out;
	}
	pthread_mutex_lock(&vi->ep_lock);
	vi->nr_eps++;
	pthread_mutex_unlock(&vi->ep_lock);
	*dev = d;
out:
	pthread_mutex_unlock(&vi->lock);
	return r;
}

static struct vi_ep *ep_by_rid(viommu_virtio_iommu *vi, struct viommu_rid rid)
{
	for (uint32_t i = 0; i < vi->nr_eps; i++) {
		struct viommu_rid e = vi->eps[i].dev->rid;
		if (e.segment == rid.segment && e.bus == rid.bus && e.devfn == rid.devfn)
			return &vi->eps[i];
	}
	return NULL;
}

int viommu_virtio_iommu_pop_event(viommu_virtio_iommu *vi, uint8_t *ev)
{
	if (!vi || !ev)
		return -EINVAL;
	struct viommu_fault_record rec;
	for (;;) {
		if (viommu_fault_queue_pop(vi->fq, &rec))
			return -EAGAIN;
		/* ep_lock only: see the top. */
		pthread_mutex_lock(&vi->ep_lock);
		struct vi_ep *ep = ep_by_rid(vi, rec.rid);
		uint32_t id = ep ? ep->id : 0;
		pthread_mutex_unlock(&vi->ep_lock);
		/* Interrupt faults and other requesters' faults (the device's
		 * own, an iommu=off device's) are not the device's to report:
		 * counted, not sent. */
		if (!ep || fault_reason_is_ir(rec.reason)) {
			__atomic_fetch_add(&vi->foreign, 1, __ATOMIC_RELAXED);
			continue;
		}
		uint8_t reason = FAULT_R_UNKNOWN;
		switch (rec.reason) {
		case VIOMMU_FAULT_BLOCKED:
			reason = FAULT_R_DOMAIN;
			break;
		case VIOMMU_FAULT_NOT_PRESENT:
		case VIOMMU_FAULT_PERMISSION:
		case VIOMMU_FAULT_ADDR_WIDTH:
			reason = FAULT_R_MAPPING;
			break;
		default:
			break;
		}
		uint32_t flags = FAULT_F_ADDRESS | ((rec.access & VIOMMU_ACCESS_READ) ? FAULT_F_READ : 0) |
				 ((rec.access & VIOMMU_ACCESS_WRITE) ? FAULT_F_WRITE : 0) |
				 ((rec.access & VIOMMU_ACCESS_EXEC) ? FAULT_F_EXEC : 0);
		memset(ev, 0, VIOMMU_VIRTIO_IOMMU_EVENT_SIZE);
		ev[0] = reason;
		put32(ev + 4, flags);
		put32(ev + 8, id);
		put64(ev + 16, rec.addr);
		__atomic_fetch_add(&vi->st.events, 1, __ATOMIC_RELAXED);
		return 0;
	}
}

void viommu_virtio_iommu_event_lost(viommu_virtio_iommu *vi)
{
	if (!vi)
		return;
	__atomic_fetch_sub(&vi->st.events, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&vi->undelivered, 1, __ATOMIC_RELAXED);
}

static void fq_raise(void *ctx)
{
	viommu_virtio_iommu *vi = ctx;
	if (vi->cfg.event)
		vi->cfg.event(vi->cfg.event_ctx);
}

/* Every domain gone, every endpoint parked (blocked: bypass is 0 after). */
static void drop_all(viommu_virtio_iommu *vi)
{
	for (uint32_t i = 0; i < vi->nr_eps; i++) {
		vi->eps[i].dom = NULL;
		viommu_dev_detach(vi->eps[i].dev, VIOMMU_NO_PASID);
	}
	while (vi->nr_doms)
		dom_free(vi, vi->doms[--vi->nr_doms]);
}

void viommu_virtio_iommu_reset(viommu_virtio_iommu *vi)
{
	if (!vi)
		return;
	pthread_mutex_lock(&vi->lock);
	vi->features = 0;
	vi->bypass = 0;
	drop_all(vi);
	pthread_mutex_unlock(&vi->lock);
	struct viommu_fault_record rec;
	while (!viommu_fault_queue_pop(vi->fq, &rec))
		;
}

void viommu_virtio_iommu_get_stats(viommu_virtio_iommu *vi, struct viommu_virtio_iommu_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!vi)
		return;
	pthread_mutex_lock(&vi->lock);
	*out = vi->st;
	out->domains = vi->nr_doms;
	out->mappings = vi->nr_mappings;
	pthread_mutex_unlock(&vi->lock);
	out->events = __atomic_load_n(&vi->st.events, __ATOMIC_RELAXED);
	out->events_foreign = __atomic_load_n(&vi->foreign, __ATOMIC_RELAXED);
	struct viommu_fault_queue_status fs;
	viommu_fault_queue_get_status(vi->fq, &fs);
	out->events_lost = fs.lost + __atomic_load_n(&vi->undelivered, __ATOMIC_RELAXED);
}

/* ACPI VIOT (virtio 1.2 appendix / ACPI 6.5 5.2.30): sizes and node types. */
#define VIOT_HDR_LEN 48
#define VIOT_NODE_PCI_RANGE 1
#define VIOT_NODE_VIRTIO_IOMMU_PCI 3
#define VIOT_PCI_RANGE_LEN 24
#define VIOT_IOMMU_PCI_LEN 16
#define VIOT_MAX_ENDPOINTS 256

int viommu_virtio_iommu_viot(struct viommu_rid iommu, const struct viommu_rid *endpoints, unsigned n, void *buf,
			     size_t len)
{
	if (!buf || (n && !endpoints) || n > VIOT_MAX_ENDPOINTS)
		return -EINVAL;
	size_t total = VIOT_HDR_LEN + VIOT_IOMMU_PCI_LEN + (size_t)n * VIOT_PCI_RANGE_LEN;
	if (len < total)
		return -ENOSPC;
	uint8_t *p = buf;
	memset(p, 0, total);
	acpi_table_header(p, "VIOT", (uint32_t)total, 0, "VIOMMUVI");
	put16(p + 36, (uint16_t)(n + 1));   /* node count */
	put16(p + 38, VIOT_HDR_LEN);        /* first node */
	uint8_t *d = p + VIOT_HDR_LEN;
	d[0] = VIOT_NODE_VIRTIO_IOMMU_PCI;
	put16(d + 2, VIOT_IOMMU_PCI_LEN);
	put16(d + 4, iommu.segment);
	put16(d + 6, (uint16_t)(iommu.bus << 8 | iommu.devfn));
	for (unsigned i = 0; i < n; i++) {
		uint8_t *r = p + VIOT_HDR_LEN + VIOT_IOMMU_PCI_LEN + (size_t)i * VIOT_PCI_RANGE_LEN;
		uint16_t bdf = (uint16_t)(endpoints[i].bus << 8 | endpoints[i].devfn);
		r[0] = VIOT_NODE_PCI_RANGE;
		put16(r + 2, VIOT_PCI_RANGE_LEN);
		put32(r + 4, bdf);                   /* endpoint_start */
		put16(r + 8, endpoints[i].segment);  /* segment_start */
		put16(r + 10, endpoints[i].segment); /* segment_end */
		put16(r + 12, bdf);                  /* bdf_start */
		put16(r + 14, bdf);                  /* bdf_end */
		put16(r + 16, VIOT_HDR_LEN);         /* output node: the IOMMU */
	}
	acpi_table_checksum(p, total);
	return (int)total;
}

static int config_check(struct viommu_virtio_iommu_config *c)
{
	if (c->size < sizeof(*c) || c->domain_end < c->domain_start || c->nr_resv > MAX_RESV ||
	    (c->nr_resv && !c->resv))
		return -EINVAL;
	for (uint32_t i = 0; i < c->nr_resv; i++)
		if (c->resv[i].end < c->resv[i].start || c->resv[i].subtype > VIOMMU_VIRTIO_IOMMU_RESV_MSI)
			return -EINVAL;
	if (!c->domain_start && !c->domain_end)
		c->domain_end = UINT32_MAX;
	uint32_t need = c->nr_resv * (4 + PROBE_RESV_MEM_LEN);
	if (!c->probe_size)
		c->probe_size = 512;
	if (c->probe_size < need)
		c->probe_size = need;
	if (c->probe_size > 65536)
		return -EINVAL;
	/* Each mapping may need a leaf table of its own (4 KiB), and the
	 * list is kept sorted by moving its tail: 65536 bounds what a guest
	 * can make the host allocate to about 256 MiB of tables. */
	if (!c->max_mappings)
		c->max_mappings = 1u << 16;
	if (!c->events)
		c->events = 256;
	if (c->events > (1u << 20))
		return -EINVAL;
	c->input_end = (1ull << INPUT_BITS) - 1;
	c->page_size_mask = VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
	return 0;
}

int viommu_virtio_iommu_create(viommu *v, struct viommu_virtio_iommu_config *cfg, const struct viommu_alloc *alloc,
			       viommu_virtio_iommu **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!v || !cfg)
		return -EINVAL;
	struct viommu_virtio_iommu_config c = *cfg;
	int r = config_check(&c);
	if (r)
		return r;
	struct valloc a;
	if (alloc) {
		r = valloc_init(&a, alloc);
		if (r)
			return r;
	} else {
		a = v->alloc;
	}
	viommu_virtio_iommu *vi = valloc_zget(&a, sizeof(*vi), 64);
	if (!vi)
		return -ENOMEM;
	vi->v = v;
	vi->alloc = a;
	vi->cfg = c;
	vi->cfg.size = sizeof(vi->cfg);
	if (c.nr_resv)
		memcpy(vi->resv, c.resv, c.nr_resv * sizeof(*c.resv));
	vi->cfg.resv = vi->resv;
	vi->offered = 1ull << VIOMMU_VIRTIO_IOMMU_F_INPUT_RANGE | 1ull << VIOMMU_VIRTIO_IOMMU_F_DOMAIN_RANGE |
		      1ull << VIOMMU_VIRTIO_IOMMU_F_MAP_UNMAP | 1ull << VIOMMU_VIRTIO_IOMMU_F_PROBE |
		      1ull << VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG;
	if (pthread_mutex_init(&vi->lock, NULL)) {
		r = -ENOMEM;
		goto err_free;
	}
	if (pthread_mutex_init(&vi->ep_lock, NULL)) {
		pthread_mutex_destroy(&vi->lock);
		r = -ENOMEM;
		goto err_free;
	}
	struct viommu_domain_config idc = { .size = sizeof(idc), .type = VIOMMU_DOMAIN_IDENTITY };
	r = viommu_domain_create(v, &idc, &vi->identity);
	if (r)
		goto err_lock;
	struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = a.alloc, .free = a.free, .ctx = a.ctx };
	struct viommu_fault_queue_config fqc = {
		/* A raise per record, not only on empty to non-empty: a raise
		 * that a LOSE_IRQ rule swallowed is made good by the next. */
		.size = sizeof(fqc), .entries = c.events, .raise = fq_raise, .ctx = vi,
	};
	r = viommu_fault_queue_create(&fqc, &hooks, &vi->fq);
	if (r)
		goto err_identity;
	if (instance_fq(v)) {
		r = -EBUSY;
		goto err_fq;
	}
	r = viommu_set_fault_queue(v, vi->fq);
	if (r)
		goto err_fq;
	cfg->domain_end = c.domain_end;
	cfg->probe_size = c.probe_size;
	cfg->input_end = c.input_end;
	cfg->page_size_mask = c.page_size_mask;
	*out = vi;
	return 0;

err_fq:
	viommu_fault_queue_destroy(vi->fq);
err_identity:
	viommu_domain_destroy(vi->identity);
err_lock:
	pthread_mutex_destroy(&vi->ep_lock);
	pthread_mutex_destroy(&vi->lock);
err_free:
	valloc_put(&a, vi, sizeof(*vi), 64);
	return r;
}

void viommu_virtio_iommu_destroy(viommu_virtio_iommu *vi)
{
	if (!vi)
		return;
	viommu *v = vi->v;
	if (instance_fq(v) == vi->fq)
		viommu_set_fault_queue(v, NULL);
	drop_all(vi);
	for (uint32_t i = 0; i < vi->nr_eps; i++)
		viommu_dev_destroy(vi->eps[i].dev);
	if (vi->eps)
		valloc_put(&vi->alloc, vi->eps, (size_t)vi->cap_eps * sizeof(*vi->eps), 16);
	if (vi->doms)
		valloc_put(&vi->alloc, vi->doms, (size_t)vi->cap_doms * sizeof(*vi->doms), 16);
	viommu_domain_destroy(vi->identity);
	viommu_fault_queue_destroy(vi->fq);
	pthread_mutex_destroy(&vi->ep_lock);
	pthread_mutex_destroy(&vi->lock);
	struct valloc a = vi->alloc;
	valloc_put(&a, vi, sizeof(*vi), 64);
}
