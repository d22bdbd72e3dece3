/* SPDX-License-Identifier: MIT */
/*
 * The IOMMU core: instances, domains, devices and their attachments, the
 * exclusion vector, counters and fault reporting.
 */
#include "core_internal.h"
#include "fl_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread uint32_t stat_off __attribute__((tls_model("initial-exec")));

void stat_add_slow(struct viommu *v, unsigned which, uint64_t n)
{
	uintptr_t me = stat_me();
	uint32_t slot = (uint32_t)((uint64_t)(me >> 6) * 0x9e3779b97f4a7c15ull >> (64 - STAT_SHARD_BITS));
	stat_off = slot * (uint32_t)sizeof(struct stat_shard);
	struct stat_shard *sh = &v->stat_shards[slot];
	uint64_t owner = __atomic_load_n(&sh->owner, __ATOMIC_RELAXED);
	if (owner == me ||
	    (!owner && __atomic_compare_exchange_n(&sh->owner, &owner, me, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)))
		__atomic_store_n(&sh->n[which], __atomic_load_n(&sh->n[which], __ATOMIC_RELAXED) + n,
				 __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&v->stat_shared[which], n, __ATOMIC_RELAXED);
}

void core_log(viommu *v, enum viommu_log_level lvl, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!v->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	v->log(v->log_ctx, lvl, buf);
}

static uint32_t clamp_entries(uint32_t n, uint32_t dflt)
{
	if (!n)
		n = dflt;
	if (n < 64)
		n = 64;
	if (n > (1u << 20))
		n = 1u << 20;
	return n;
}

int viommu_create(const struct viommu_config *cfg, const struct viommu_alloc *alloc, viommu **out)
{
	struct valloc va;
	viommu *v;
	int ret;

	if (!cfg || !out || cfg->size < sizeof(*cfg))
		return -EINVAL;
	*out = NULL;
	ret = valloc_init(&va, alloc);
	if (ret)
		return ret;

	v = valloc_zget(&va, sizeof(*v), 64);
	if (!v)
		return -ENOMEM;
	v->alloc = va;
	v->msi = cfg->msi;
	v->msi_ctx = cfg->msi_ctx;
	v->fault = cfg->fault;
	v->fault_ctx = cfg->fault_ctx;
	v->log = cfg->log;
	v->log_ctx = cfg->log_ctx;
	v->next_domid = 1;
	const char *dbg = getenv("VIOMMU_DEBUG_VERIFY_IOTLB");
	v->debug_verify = dbg && dbg[0] == '1';

	ret = viommu_mem_create(&cfg->mem, alloc, &v->mem);
	if (ret)
		goto err_free;
	ret = vcache_init(&v->iotlb, &va, clamp_entries(cfg->iotlb_entries, 4096));
	if (ret)
		goto err_mem;
	uint32_t wc = clamp_entries(cfg->walk_cache_entries, 1024);
	ret = vcache_init(&v->pwc, &va, wc);
	if (ret)
		goto err_iotlb;
	ret = vcache_init(&v->ntlb, &va, wc);
	if (ret)
		goto err_pwc;
	if (pthread_rwlock_init(&v->topo, NULL)) {
		ret = -ENOMEM;
		goto err_ntlb;
	}
	if (pthread_mutex_init(&v->excl_lock, NULL)) {
		ret = -ENOMEM;
		goto err_topo;
	}
	if (pthread_mutex_init(&v->fq_lock, NULL)) {
		ret = -ENOMEM;
		goto err_excl;
	}
	if (pthread_cond_init(&v->fq_cond, NULL)) {
		pthread_mutex_destroy(&v->fq_lock);
		ret = -ENOMEM;
		goto err_excl;
	}
	ret = inject_init(v);
	if (ret)
		goto err_fq;
	ret = ir_init(v);
	if (ret)
		goto err_inject;
	*out = v;
	return 0;

err_inject:
	inject_fini(v);
err_fq:
	pthread_cond_destroy(&v->fq_cond);
	pthread_mutex_destroy(&v->fq_lock);
err_excl:
	pthread_mutex_destroy(&v->excl_lock);
err_topo:
	pthread_rwlock_destroy(&v->topo);
err_ntlb:
	vcache_fini(&v->ntlb, &va);
err_pwc:
	vcache_fini(&v->pwc, &va);
err_iotlb:
	vcache_fini(&v->iotlb, &va);
err_mem:
	viommu_mem_destroy(v->mem);
err_free:
	valloc_put(&va, v, sizeof(*v), 64);
	return ret;
}

static void dev_free(viommu_dev *dev);
static void domain_free(viommu_domain *d);

void viommu_destroy(viommu *v)
{
	if (!v)
		return;
	for (unsigned b = 0; b < DEV_HASH; b++) {
		while (v->devs[b]) {
			viommu_dev *dev = v->devs[b];
			v->devs[b] = dev->next;
			dev_free(dev);
		}
	}
	while (v->domains) {
		viommu_domain *d = v->domains;
		v->domains = d->next;
		domain_free(d);
	}
	for (unsigned t = 0; t < (1u << EXCL_TOP_BITS); t++) {
		uint64_t **mid = v->excl_top[t];
		if (!mid)
			continue;
		for (unsigned m = 0; m < (1u << EXCL_MID_BITS); m++)
			valloc_put(&v->alloc, mid[m], (1u << EXCL_LEAF_BITS) / 8, 64);
		valloc_put(&v->alloc, mid, sizeof(*mid) << EXCL_MID_BITS, 64);
	}
	viommu_set_fault_queue(v, NULL);
	ir_fini(v);
	inject_fini(v);
	pthread_cond_destroy(&v->fq_cond);
	pthread_mutex_destroy(&v->fq_lock);
	pthread_mutex_destroy(&v->excl_lock);
	pthread_rwlock_destroy(&v->topo);
	vcache_fini(&v->ntlb, &v->alloc);
	vcache_fini(&v->pwc, &v->alloc);
	vcache_fini(&v->iotlb, &v->alloc);
	viommu_mem_destroy(v->mem);
	struct valloc va = v->alloc;
	valloc_put(&va, v, sizeof(*v), 64);
}

viommu_mem *viommu_get_mem(viommu *v)
{
	return v ? v->mem : NULL;
}

/* ------------------------------------------------------------------------ */
/* Faults and counters                                                      */

/*
 * Pushes run without the instance's lock (the queue calls raise and notify,
 * which may call back into the instance), counted in fq_users so a detach can
 * wait for them to finish. A push made from inside a queue callback of the
 * same instance (a raise that detaches the queue, say) is not waited for by
 * its own thread: this thread-local note says how deep this thread is.
 */
static __thread struct {
	viommu *v;
	unsigned depth;
} fq_tls;

void core_report_fault(viommu *v, struct viommu_fault_record *rec)
{
	viommu_fault_queue *q = NULL;
	pthread_mutex_lock(&v->fq_lock);
	if (v->fq) {
		q = v->fq;
		v->fq_users++;
	}
	pthread_mutex_unlock(&v->fq_lock);
	__atomic_fetch_add(&v->st_faults, 1, __ATOMIC_RELAXED);
	if (q) {
		/* The queue numbers the record under its own lock: records
		 * enter it in sequence order. */
		typeof(fq_tls) saved = fq_tls;
		fq_tls.v = v;
		fq_tls.depth = saved.v == v ? saved.depth + 1 : 1;
		fq_push_seq(q, rec, &v->fault_seq);
		fq_tls = saved;
		pthread_mutex_lock(&v->fq_lock);
		v->fq_users--;
		pthread_cond_broadcast(&v->fq_cond);
		pthread_mutex_unlock(&v->fq_lock);
	} else {
		rec->seq = __atomic_add_fetch(&v->fault_seq, 1, __ATOMIC_RELAXED);
	}
	if (v->fault)
		v->fault(v->fault_ctx, rec);
}

static int fq_lose_irq(void *ctx)
{
	viommu *v = ctx;
	struct inject_req none = { 0 };
	return inject_eval(v, VIOMMU_INJECT_LOSE_IRQ, &none, NULL);
}

int viommu_set_fault_queue(viommu *v, viommu_fault_queue *q)
{
	if (!v)
		return -EINVAL;
	if (q) {
		int ret = fq_claim(q, v);
		if (ret)
			return ret;
		fq_set_irq_filter(q, fq_lose_irq, v);
	}
	pthread_mutex_lock(&v->fq_lock);
	viommu_fault_queue *old = v->fq;
	v->fq = q;
	/* No push may still be using the old queue when this returns, but
	 * this thread's own (we are inside its callback) cannot be waited for. */
	unsigned own = fq_tls.v == v ? fq_tls.depth : 0;
	while (v->fq_users > own)
		pthread_cond_wait(&v->fq_cond, &v->fq_lock);
	pthread_mutex_unlock(&v->fq_lock);
	if (old && old != q) {
		fq_set_irq_filter(old, NULL, NULL);
		fq_claim(old, NULL);
	}
	return 0;
}

int viommu_set_resolver(viommu *v, viommu_resolve_fn fn, void *ctx)
{
	if (!v)
		return -EINVAL;
	pthread_rwlock_wrlock(&v->topo);
	if (fn && v->resolve && (v->resolve != fn || v->resolve_ctx != ctx)) {
		pthread_rwlock_unlock(&v->topo);
		return -EBUSY;
	}
	__atomic_store_n(&v->resolve_ctx, fn ? ctx : NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&v->resolve, fn, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&v->topo);
	return 0;
}

int core_guest_read64(viommu *v, const struct inject_req *who, uint64_t addr, uint64_t *val)
{
	if (mem_read64(v->mem, addr, val))
		return -EFAULT;
	if (inject_active(v, VIOMMU_INJECT_CORRUPT_READ)) {
		struct viommu_inject_rule r;
		struct inject_req q = *who;
		q.has_range = 1;
		q.first = addr;
		q.last = addr + 7;
		if (inject_eval(v, VIOMMU_INJECT_CORRUPT_READ, &q, &r))
			*val ^= r.xor_mask;
	}
	return 0;
}

void viommu_get_stats(viommu *v, struct viommu_stats *out)
{
	if (!v || !out)
		return;
	memset(out, 0, sizeof(*out));
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
	uint64_t n[ST_COUNT];
	for (unsigned k = 0; k < ST_COUNT; k++) {
		n[k] = LD(v->stat_shared[k]);
		for (unsigned i = 0; i < STAT_SHARDS; i++)
			n[k] += LD(v->stat_shards[i].n[k]);
	}
	out->translations = n[ST_REFUSED] + n[ST_HIT] + n[ST_MISS];
	out->iotlb_hits = n[ST_HIT];
	out->iotlb_misses = n[ST_MISS];
	out->iotlb_evictions = LD(v->iotlb.evictions);
	out->pwc_hits = LD(v->pwc.hits);
	out->pwc_misses = LD(v->pwc.misses);
	out->ntlb_hits = LD(v->ntlb.hits);
	out->ntlb_misses = LD(v->ntlb.misses);
	out->walks = LD(v->st_walks);
	out->refs = LD(v->st_refs);
	out->faults = LD(v->st_faults);
	out->invalidations = LD(v->st_invalidations);
	out->irqs_remapped = LD(v->st_irq_remapped);
	out->irqs_passed = LD(v->st_irq_passed);
	out->irq_faults = LD(v->st_irq_faults);
#undef LD
}

/* ------------------------------------------------------------------------ */
/* Domains                                                                  */

int viommu_domain_create(viommu *v, struct viommu_domain_config *cfg, viommu_domain **out)
{
	viommu_domain *d;
	int ret;

	if (!v || !cfg || !out || cfg->size < sizeof(*cfg))
		return -EINVAL;
	*out = NULL;
	switch (cfg->type) {
	case VIOMMU_DOMAIN_BLOCKED:
	case VIOMMU_DOMAIN_IDENTITY:
		if (cfg->flags)
			return -EINVAL;
		break;
	case VIOMMU_DOMAIN_PAGING:
	case VIOMMU_DOMAIN_NESTED:
		if (cfg->flags & ~VIOMMU_DOMAIN_F_HOST_OWNED)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}

	d = valloc_zget(&v->alloc, sizeof(*d), _Alignof(viommu_domain));
	if (!d)
		return -ENOMEM;
	d->v = v;
	d->type = cfg->type;
	d->flags = cfg->flags;
	if (pthread_mutex_init(&d->notify_lock, NULL)) {
		ret = -ENOMEM;
		goto err_free;
	}
	if (cfg->type == VIOMMU_DOMAIN_PAGING || cfg->type == VIOMMU_DOMAIN_NESTED) {
		ret = pt_geom_init(&d->g, &cfg->pt);
		if (ret)
			goto err_mutex;
		d->ptcfg = cfg->pt;
		if (cfg->flags & VIOMMU_DOMAIN_F_HOST_OWNED) {
			struct viommu_alloc hooks = {
				.size = sizeof(hooks),
				.alloc = v->alloc.alloc,
				.free = v->alloc.free,
				.ctx = v->alloc.ctx,
			};
			ret = viommu_pt_create(&d->ptcfg, NULL, NULL, &hooks, &d->pt);
			if (ret)
				goto err_mutex;
		}
	}

	pthread_rwlock_wrlock(&v->topo);
	if (v->next_domid == 0) {
		/* 2^32 - 1 domains made: ids are never reused. */
		pthread_rwlock_unlock(&v->topo);
		ret = -ENOSPC;
		goto err_pt;
	}
	d->id = v->next_domid++;
	d->next = v->domains;
	v->domains = d;
	pthread_rwlock_unlock(&v->topo);
	*out = d;
	return 0;

err_pt:
	viommu_pt_destroy(d->pt);
err_mutex:
	pthread_mutex_destroy(&d->notify_lock);
err_free:
	valloc_put(&v->alloc, d, sizeof(*d), _Alignof(viommu_domain));
	return ret;
}

static void domain_free(viommu_domain *d)
{
	viommu *v = d->v;
	for (uint32_t i = 0; i < d->nr_ctx; i++)
		valloc_put(&v->alloc, d->ctx[i], sizeof(*d->ctx[i]), _Alignof(struct s1ctx));
	valloc_put(&v->alloc, d->ctx, sizeof(*d->ctx) * d->cap_ctx, _Alignof(struct s1ctx *));
	notify_domain_fini(d);
	viommu_pt_destroy(d->pt);
	pthread_mutex_destroy(&d->notify_lock);
	valloc_put(&v->alloc, d, sizeof(*d), _Alignof(viommu_domain));
}

int viommu_domain_destroy(viommu_domain *d)
{
	if (!d)
		return -EINVAL;
	viommu *v = d->v;
	pthread_rwlock_wrlock(&v->topo);
	if (d->attached) {
		pthread_rwlock_unlock(&v->topo);
		return -EBUSY;
	}
	for (viommu_domain **pp = &v->domains; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	pthread_rwlock_unlock(&v->topo);
	/* Nothing is attached, so no new translation can tag entries with
	 * this id; drop what is cached. */
	viommu_invalidate_domain(d);
	domain_free(d);
	return 0;
}

uint32_t viommu_domain_id(const viommu_domain *d)
{
	return d ? d->id : 0;
}

enum viommu_domain_type viommu_domain_get_type(const viommu_domain *d)
{
	return d ? d->type : 0;
}

int viommu_domain_set_root(viommu_domain *d, uint64_t root)
{
	if (!d || (d->type != VIOMMU_DOMAIN_PAGING && d->type != VIOMMU_DOMAIN_NESTED) || d->pt)
		return -EINVAL;
	__atomic_store_n(&d->root, root, __ATOMIC_RELEASE);
	viommu_invalidate_domain(d);
	return 0;
}

int viommu_domain_map(viommu_domain *d, uint64_t iova, uint64_t paddr, uint64_t size, uint32_t prot,
		      uint64_t *done)
{
	if (done)
		*done = 0;
	if (!d || !d->pt || !done)
		return -EINVAL;
	/* Walks run under the topology read lock: a map (which may free empty
	 * tables it covers) never pulls a table from under one. */
	pthread_rwlock_wrlock(&d->v->topo);
	int ret = viommu_pt_map(d->pt, iova, paddr, size, prot, done);
	pthread_rwlock_unlock(&d->v->topo);
	if (*done) {
		/* A failed walk is never cached, so new mappings need no
		 * invalidation; consumers still hear of them. */
		struct viommu_map_event ev = {
			.type = VIOMMU_EVENT_MAP, .iova = iova, .paddr = paddr, .size = *done, .perms = prot,
		};
		int nret = notify_host_event(d, &ev);
		if (!ret)
			ret = nret;
	}
	return ret;
}

int viommu_domain_unmap(viommu_domain *d, uint64_t iova, uint64_t size, uint64_t *done)
{
	if (done)
		*done = 0;
	if (!d || !d->pt || !done)
		return -EINVAL;
	pthread_rwlock_wrlock(&d->v->topo);
	int ret = viommu_pt_unmap(d->pt, iova, size, done);
	pthread_rwlock_unlock(&d->v->topo);
	if (*done) {
		inval_domain_range(d, iova, iova + (*done - 1));
		struct viommu_map_event ev = { .type = VIOMMU_EVENT_UNMAP, .iova = iova, .size = *done };
		int nret = notify_host_event(d, &ev);
		if (!ret)
			ret = nret;
	}
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */

static unsigned rid_hash(struct viommu_rid rid)
{
	uint32_t k = (uint32_t)rid.segment << 16 | (uint32_t)rid.bus << 8 | rid.devfn;
	return (k * 2654435761u) >> 24;
}

static int rid_eq(struct viommu_rid a, struct viommu_rid b)
{
	return a.segment == b.segment && a.bus == b.bus && a.devfn == b.devfn;
}

static viommu_dev *dev_find_locked(viommu *v, struct viommu_rid rid)
{
	for (viommu_dev *d = v->devs[rid_hash(rid)]; d; d = d->next)
		if (rid_eq(d->rid, rid))
			return d;
	return NULL;
}

#define NR_CHUNKS ((VIOMMU_PASID_MAX + 1) / ATT_CHUNK)

int viommu_dev_create(viommu *v, struct viommu_rid rid, viommu_dev **out)
{
	if (!v || !out)
		return -EINVAL;
	*out = NULL;
	viommu_dev *dev = valloc_zget(&v->alloc, sizeof(*dev), _Alignof(viommu_dev));
	if (!dev)
		return -ENOMEM;
	dev->v = v;
	dev->iotlb = v->iotlb.g;
	dev->rid = rid;
	pthread_rwlock_wrlock(&v->topo);
	if (dev_find_locked(v, rid)) {
		pthread_rwlock_unlock(&v->topo);
		valloc_put(&v->alloc, dev, sizeof(*dev), _Alignof(viommu_dev));
		return -EEXIST;
	}
	unsigned h = rid_hash(rid);
	dev->next = v->devs[h];
	v->devs[h] = dev;
	pthread_rwlock_unlock(&v->topo);
	*out = dev;
	return 0;
}

viommu_dev *viommu_dev_find(viommu *v, struct viommu_rid rid)
{
	if (!v)
		return NULL;
	pthread_rwlock_rdlock(&v->topo);
	viommu_dev *d = dev_find_locked(v, rid);
	pthread_rwlock_unlock(&v->topo);
	return d;
}

/* The slot of a PASID, or NULL if never attached. Lock-free. */
struct attach *dev_attach_slot(viommu_dev *dev, uint32_t pasid)
{
	if (pasid == VIOMMU_NO_PASID)
		return &dev->nopasid;
	if (pasid > VIOMMU_PASID_MAX)
		return NULL;
	struct attach **chunks = __atomic_load_n(&dev->chunks, __ATOMIC_ACQUIRE);
	if (!chunks)
		return NULL;
	struct attach *c = __atomic_load_n(&chunks[pasid / ATT_CHUNK], __ATOMIC_ACQUIRE);
	return c ? &c[pasid % ATT_CHUNK] : NULL;
}

/* The slot of a PASID, allocated if needed. Under the topology write lock. */
static struct attach *dev_attach_slot_alloc(viommu_dev *dev, uint32_t pasid)
{
	viommu *v = dev->v;
	if (pasid == VIOMMU_NO_PASID)
		return &dev->nopasid;
	if (!dev->chunks) {
		struct attach **chunks = valloc_zget(&v->alloc, sizeof(*chunks) * NR_CHUNKS, 64);
		if (!chunks)
			return NULL;
		__atomic_store_n(&dev->chunks, chunks, __ATOMIC_RELEASE);
	}
	struct attach *c = dev->chunks[pasid / ATT_CHUNK];
	if (!c) {
		c = valloc_zget(&v->alloc, sizeof(*c) * ATT_CHUNK, 64);
		if (!c)
			return NULL;
		__atomic_store_n(&dev->chunks[pasid / ATT_CHUNK], c, __ATOMIC_RELEASE);
	}
	return &c[pasid % ATT_CHUNK];
}

static void attach_release(struct attach *a, uint32_t pasid);

static void dev_free(viommu_dev *dev)
{
	viommu *v = dev->v;
	attach_release(&dev->nopasid, VIOMMU_NO_PASID);
	if (dev->chunks) {
		for (unsigned i = 0; i < NR_CHUNKS; i++) {
			struct attach *c = dev->chunks[i];
			if (!c)
				continue;
			for (unsigned j = 0; j < ATT_CHUNK; j++)
				attach_release(&c[j], i * ATT_CHUNK + j);
			valloc_put(&v->alloc, c, sizeof(*c) * ATT_CHUNK, 64);
		}
		valloc_put(&v->alloc, dev->chunks, sizeof(*dev->chunks) * NR_CHUNKS, 64);
	}
	valloc_put(&v->alloc, dev, sizeof(*dev), _Alignof(viommu_dev));
}

void viommu_dev_destroy(viommu_dev *dev)
{
	if (!dev)
		return;
	viommu *v = dev->v;
	pthread_rwlock_wrlock(&v->topo);
	for (viommu_dev **pp = &v->devs[rid_hash(dev->rid)]; *pp; pp = &(*pp)->next) {
		if (*pp == dev) {
			*pp = dev->next;
			break;
		}
	}
	dev_free(dev);
	pthread_rwlock_unlock(&v->topo);
}

/* Under the topology write lock: the context of (pasid, root, format) in a
 * nested domain, with a reference taken; created if needed. */
static struct s1ctx *ctx_get(viommu_domain *d, uint32_t pasid, uint64_t root, const struct pt_geom *g)
{
	viommu *v = d->v;
	for (uint32_t i = 0; i < d->nr_ctx; i++) {
		struct s1ctx *c = d->ctx[i];
		if (c->pasid == pasid && c->root == root && !memcmp(&c->g, g, sizeof(*g))) {
			c->refs++;
			return c;
		}
	}
	if (d->nr_ctx == d->cap_ctx) {
		uint32_t cap = d->cap_ctx ? d->cap_ctx * 2 : 8;
		if (cap > ATT_TAG_MASK)
			return NULL;
		struct s1ctx **nc = valloc_get(&v->alloc, sizeof(*nc) * cap, _Alignof(struct s1ctx *));
		if (!nc)
			return NULL;
		if (d->nr_ctx)
			memcpy(nc, d->ctx, sizeof(*nc) * d->nr_ctx);
		valloc_put(&v->alloc, d->ctx, sizeof(*nc) * d->cap_ctx, _Alignof(struct s1ctx *));
		d->ctx = nc;
		d->cap_ctx = cap;
	}
	/* The lowest tag id no live context has (ids of dead contexts had
	 * their cached entries dropped when they died). */
	uint32_t tagid = 1;
	for (int again = 1; again;) {
		again = 0;
		for (uint32_t i = 0; i < d->nr_ctx; i++) {
			if (d->ctx[i]->tagid == tagid) {
				tagid++;
				again = 1;
			}
		}
	}
	struct s1ctx *c = valloc_zget(&v->alloc, sizeof(*c), _Alignof(struct s1ctx));
	if (!c)
		return NULL;
	c->pasid = pasid;
	c->root = root;
	c->g = *g;
	c->tagid = tagid;
	c->refs = 1;
	d->ctx[d->nr_ctx++] = c;
	return c;
}

/* Under the topology write lock: drop a reference; the last one drops the
 * context's cached translations too. */
static void ctx_put(viommu_domain *d, struct s1ctx *c)
{
	if (--c->refs)
		return;
	struct inval_req q = { .domid = d->id, .pasid = c->pasid, .tagid = c->tagid, .nested = 1 };
	inval_do(d->v, &q);
	for (uint32_t i = 0; i < d->nr_ctx; i++) {
		if (d->ctx[i] == c) {
			d->ctx[i] = d->ctx[--d->nr_ctx];
			break;
		}
	}
	valloc_put(&d->v->alloc, c, sizeof(*c), _Alignof(struct s1ctx));
}

/* Under the topology write lock: undo an attachment. The caller has made
 * the word invalid. */
static void attach_release(struct attach *a, uint32_t pasid)
{
	viommu_domain *old = a->dom;
	if (!old)
		return;
	if (a->ctx) {
		ctx_put(old, a->ctx);
		a->ctx = NULL;
	} else {
		struct inval_req q = { .domid = old->id, .pasid = pasid, .tagid = pasid_index(pasid),
				       .nested = old->type == VIOMMU_DOMAIN_NESTED };
		inval_do(old->v, &q);
	}
	old->attached--;
	a->dom = NULL;
	__atomic_store_n(&a->sizes, 0, __ATOMIC_RELAXED);
}

int viommu_dev_attach(viommu_dev *dev, uint32_t pasid, viommu_domain *d, const struct viommu_stage1 *s1)
{
	struct pt_geom s1g;
	uint64_t s1_root = 0;

	if (!dev || !d || d->v != dev->v)
		return -EINVAL;
	if (pasid != VIOMMU_NO_PASID && pasid > VIOMMU_PASID_MAX)
		return -EINVAL;
	if (d->type == VIOMMU_DOMAIN_NESTED) {
		if (!s1 || s1->size < sizeof(*s1))
			return -EINVAL;
		struct viommu_pt_config c = s1->pt;
		if (pt_geom_init(&s1g, &c))
			return -EINVAL;
		s1_root = s1->root;
	} else if (s1) {
		return -EINVAL;
	}

	viommu *v = dev->v;
	pthread_rwlock_wrlock(&v->topo);
	struct attach *a = dev_attach_slot_alloc(dev, pasid);
	if (!a) {
		pthread_rwlock_unlock(&v->topo);
		return -ENOMEM;
	}
	struct s1ctx *ctx = NULL;
	if (d->type == VIOMMU_DOMAIN_NESTED) {
		/* Taken before the old one is released, so an unchanged stage 1
		 * keeps its context and its cached translations. */
		ctx = ctx_get(d, pasid, s1_root, &s1g);
		if (!ctx) {
			pthread_rwlock_unlock(&v->topo);
			return -ENOMEM;
		}
	}
	/* Readers see the word go invalid, then the new attachment whole; in
	 * between, what only the old attachment used is dropped, so nothing
	 * of it is found under the new one. */
	__atomic_store_n(&a->word, 0, __ATOMIC_RELEASE);
	if (a->dom == d && !ctx) {
		/* The same domain again: its translations stay valid. */
	} else {
		attach_release(a, pasid);
		d->attached++;
	}
	a->dom = d;
	a->ctx = ctx;
	uint32_t tagid = ctx ? ctx->tagid : pasid_index(pasid);
	/* The IOTLB tag of the attachment, less its class. */
	uint64_t word = vcache_tag(d->id, tagid, !!ctx, 0);
	if (d->type == VIOMMU_DOMAIN_IDENTITY)
		word |= ATT_IDENTITY;
	__atomic_store_n(&a->hseed, vcache_seed(word), __ATOMIC_RELAXED);
	__atomic_store_n(&a->word, word, __ATOMIC_RELEASE);
	viommu_attach_notify_fn fn = dev->attach_fn;
	void *fn_ctx = dev->attach_ctx;
	pthread_rwlock_unlock(&v->topo);
	if (fn)
		fn(fn_ctx, dev, pasid, d);
	return 0;
}

int viommu_dev_detach(viommu_dev *dev, uint32_t pasid)
{
	if (!dev || (pasid != VIOMMU_NO_PASID && pasid > VIOMMU_PASID_MAX))
		return -EINVAL;
	viommu *v = dev->v;
	pthread_rwlock_wrlock(&v->topo);
	struct attach *a = dev_attach_slot(dev, pasid);
	if (!a || !a->dom) {
		pthread_rwlock_unlock(&v->topo);
		return -ENOENT;
	}
	/* After detach returns, nothing of the old attachment is used: its
	 * cached translations go too (attach_release). */
	__atomic_store_n(&a->word, 0, __ATOMIC_RELEASE);
	attach_release(a, pasid);
	viommu_attach_notify_fn fn = dev->attach_fn;
	void *fn_ctx = dev->attach_ctx;
	pthread_rwlock_unlock(&v->topo);
	if (fn)
		fn(fn_ctx, dev, pasid, NULL);
	return 0;
}

int viommu_dev_set_attach_notify(viommu_dev *dev, viommu_attach_notify_fn fn, void *ctx)
{
	if (!dev)
		return -EINVAL;
	pthread_rwlock_wrlock(&dev->v->topo);
	dev->attach_fn = fn;
	dev->attach_ctx = ctx;
	pthread_rwlock_unlock(&dev->v->topo);
	return 0;
}

viommu_domain *viommu_dev_domain(viommu_dev *dev, uint32_t pasid)
{
	if (!dev || (pasid != VIOMMU_NO_PASID && pasid > VIOMMU_PASID_MAX))
		return NULL;
	pthread_rwlock_rdlock(&dev->v->topo);
	struct attach *a = dev_attach_slot(dev, pasid);
	viommu_domain *d = a ? a->dom : NULL;
	pthread_rwlock_unlock(&dev->v->topo);
	return d;
}

/* Under the topology read lock: the cache tag ids a PASID of a domain uses. */
int domain_pasid_tags(viommu_domain *d, uint32_t pasid, uint32_t *tags, int max)
{
	if (d->type != VIOMMU_DOMAIN_NESTED) {
		tags[0] = pasid_index(pasid);
		return 1;
	}
	int n = 0;
	for (uint32_t i = 0; i < d->nr_ctx && n < max; i++)
		if (d->ctx[i]->pasid == pasid)
			tags[n++] = d->ctx[i]->tagid;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Exclusion                                                                */

/* The bitmap word of page number pfn; allocated when `create`. */
static uint64_t *excl_word(viommu *v, uint64_t pfn, int create)
{
	unsigned t = (unsigned)(pfn >> (EXCL_MID_BITS + EXCL_LEAF_BITS)) & ((1u << EXCL_TOP_BITS) - 1);
	unsigned m = (unsigned)(pfn >> EXCL_LEAF_BITS) & ((1u << EXCL_MID_BITS) - 1);
	unsigned l = (unsigned)pfn & ((1u << EXCL_LEAF_BITS) - 1);
	uint64_t **mid = __atomic_load_n(&v->excl_top[t], __ATOMIC_ACQUIRE);
	if (!mid) {
		if (!create)
			return NULL;
		mid = valloc_zget(&v->alloc, sizeof(*mid) << EXCL_MID_BITS, 64);
		if (!mid)
			return NULL;
		__atomic_store_n(&v->excl_top[t], mid, __ATOMIC_RELEASE);
	}
	uint64_t *leaf = __atomic_load_n(&mid[m], __ATOMIC_ACQUIRE);
	if (!leaf) {
		if (!create)
			return NULL;
		leaf = valloc_zget(&v->alloc, (1u << EXCL_LEAF_BITS) / 8, 64);
		if (!leaf)
			return NULL;
		__atomic_store_n(&mid[m], leaf, __ATOMIC_RELEASE);
	}
	return &leaf[l / 64];
}

/* Set or clear the bits of pages [first, last]. Under excl_lock. */
static int excl_update(viommu *v, uint64_t first, uint64_t last, int set)
{
	for (uint64_t pfn = first;; pfn++) {
		uint64_t *w = excl_word(v, pfn, set);
		uint64_t bit = 1ull << (pfn % 64);
		if (w) {
			uint64_t old = set ? __atomic_fetch_or(w, bit, __ATOMIC_RELEASE)
					   : __atomic_fetch_and(w, ~bit, __ATOMIC_RELEASE);
			if (set && !(old & bit))
				__atomic_fetch_add(&v->excl_pages, 1, __ATOMIC_RELEASE);
			if (!set && (old & bit))
				__atomic_fetch_sub(&v->excl_pages, 1, __ATOMIC_RELEASE);
		} else if (set) {
			return -ENOMEM;
		}
		if (pfn == last)
			return 0;
	}
}

static int excl_range_args(uint64_t addr, uint64_t size, uint64_t *first, uint64_t *last)
{
	uint64_t end;
	if (!size || __builtin_add_overflow(addr, size - 1, &end))
		return -EINVAL;
	/* The vector covers the 52-bit output space. */
	if (end >> 52)
		return -EINVAL;
	*first = addr >> 12;
	*last = end >> 12;
	return 0;
}

int viommu_exclude_range(viommu *v, uint64_t addr, uint64_t size)
{
	uint64_t first, last;
	if (!v || excl_range_args(addr, size, &first, &last))
		return -EINVAL;
	pthread_mutex_lock(&v->excl_lock);
	int ret = excl_update(v, first, last, 1);
	pthread_mutex_unlock(&v->excl_lock);
	return ret;
}

int viommu_unexclude_range(viommu *v, uint64_t addr, uint64_t size)
{
	uint64_t first, last;
	if (!v || excl_range_args(addr, size, &first, &last))
		return -EINVAL;
	pthread_mutex_lock(&v->excl_lock);
	int ret = excl_update(v, first, last, 0);
	pthread_mutex_unlock(&v->excl_lock);
	return ret;
}

int viommu_set_exclusion_bitmap(viommu *v, const uint8_t *bitmap, uint64_t nr_pages)
{
	if (!v || (!bitmap && nr_pages) || nr_pages > (1ull << 40))
		return -EINVAL;
	int ret = 0;
	pthread_mutex_lock(&v->excl_lock);
	for (uint64_t p = 0; p < nr_pages && !ret; p++)
		ret = excl_update(v, p, p, (bitmap[p / 8] >> (p % 8)) & 1);
	pthread_mutex_unlock(&v->excl_lock);
	return ret;
}

/* 0 if no page of [addr, addr + len) is protected, else -EACCES. */
int excl_check(viommu *v, uint64_t addr, uint64_t len)
{
	if (!__atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE))
		return 0;
	uint64_t last;
	if (!len || __builtin_add_overflow(addr, len - 1, &last))
		return -EACCES;
	for (uint64_t pfn = addr >> 12; pfn <= last >> 12; pfn++) {
		if ((pfn >> 40) != 0)
			return 0; /* beyond the 52-bit space: nothing protected */
		uint64_t *w = excl_word(v, pfn, 0);
		if (w && (__atomic_load_n(w, __ATOMIC_ACQUIRE) >> (pfn % 64)) & 1)
			return -EACCES;
	}
	return 0;
}
