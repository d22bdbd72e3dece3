/* SPDX-License-Identifier: MIT */
/*
 * Map/unmap notifiers. Host-owned tables report what map/unmap did. For
 * guest-owned tables the core keeps a shadow of the mappings it last reported
 * (a caller-owned viommu_pt of its own) and, when the guest invalidates a
 * range, walks the guest's table there and reports the difference.
 */
#include "core_internal.h"

#include <errno.h>
#include <string.h>

static int guest_owned(const viommu_domain *d)
{
	return !d->pt && (d->type == VIOMMU_DOMAIN_PAGING || d->type == VIOMMU_DOMAIN_NESTED);
}

static int has_table(const viommu_domain *d)
{
	return d->type == VIOMMU_DOMAIN_PAGING || d->type == VIOMMU_DOMAIN_NESTED;
}

/* Tell every notifier; the first error is returned, all hear it. */
static int broadcast(viommu_domain *d, const struct viommu_map_event *ev)
{
	int ret = 0;
	for (struct viommu_notifier *n = d->notifiers; n; n = n->next) {
		int r = n->fn(n->ctx, d, ev);
		if (r && !ret) {
			ret = r;
			core_log(d->v, VIOMMU_LOG_WARN, "domain %u: notifier refused %s [%#llx, +%#llx): %d", d->id,
				 ev->type == VIOMMU_EVENT_MAP ? "map" : "unmap", (unsigned long long)ev->iova,
				 (unsigned long long)ev->size, r);
		}
	}
	return ret;
}

int notify_host_event(viommu_domain *d, const struct viommu_map_event *ev)
{
	pthread_mutex_lock(&d->notify_lock);
	int ret = d->notifiers ? broadcast(d, ev) : 0;
	pthread_mutex_unlock(&d->notify_lock);
	return ret;
}

/* The guest's table, for walks and visits. */
static void guest_view(viommu_domain *d, struct pt_acc *acc, uint64_t *root)
{
	*acc = pt_acc_mem_template;
	acc->ctx = d->v->mem;
	*root = __atomic_load_n(&d->root, __ATOMIC_ACQUIRE);
}

struct leaf {
	uint64_t iova, pa, size;
	uint32_t perms;
};

struct leaf_list {
	const struct valloc *a;
	struct leaf *v;
	size_t n, cap;
	int oom;
};

static int list_push(struct leaf_list *l, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct leaf *nv = valloc_get(l->a, cap * sizeof(*nv), _Alignof(struct leaf));
		if (!nv) {
			l->oom = 1;
			return -ENOMEM;
		}
		if (l->n)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		valloc_put(l->a, l->v, l->cap * sizeof(*nv), _Alignof(struct leaf));
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = (struct leaf){ iova, pa, size, perms };
	return 0;
}

static void list_free(struct leaf_list *l)
{
	valloc_put(l->a, l->v, l->cap * sizeof(*l->v), _Alignof(struct leaf));
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Consumers of events care for read and write; the shadow keeps just those. */
static int same_rw(uint32_t a, uint32_t b)
{
	const uint32_t rw = VIOMMU_PERM_READ | VIOMMU_PERM_WRITE;
	return (a & rw) == (b & rw);
}

/* Does the guest map exactly this leaf now? */
static int guest_has(viommu_domain *d, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	struct pt_acc acc;
	uint64_t root;
	struct viommu_pt_result r;
	guest_view(d, &acc, &root);
	memset(&r, 0, sizeof(r));
	if (pt_walk_geom(&d->g, &acc, root, iova, VIOMMU_ACCESS_PRIV, 0, &r))
		return 0;
	return r.oaddr == pa && r.page_size == size && same_rw(r.perms, perms);
}

struct diff_ctx {
	viommu_domain *d;
	struct leaf_list list;
};

static int collect_stale(void *ctx, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	struct diff_ctx *c = ctx;
	if (guest_has(c->d, iova, pa, size, perms))
		return 0;
	return list_push(&c->list, iova, pa, size, perms);
}

static int collect_guest(void *ctx, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	struct diff_ctx *c = ctx;
	struct viommu_pt_result r;
	memset(&r, 0, sizeof(r));
	if (!viommu_pt_lookup(c->d->shadow, iova, VIOMMU_ACCESS_PRIV, &r) && r.oaddr == pa && r.page_size == size &&
	    same_rw(r.perms, perms))
		return 0;
	return list_push(&c->list, iova, pa, size, perms);
}

static int shadow_create(viommu_domain *d)
{
	viommu *v = d->v;
	/* AMD-Vi mode 6 holds any input address and every page size. */
	struct viommu_pt_config c = { .size = sizeof(c), .format = VIOMMU_PT_AMD_V1, .levels = 6, .oas = 52 };
	struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = v->alloc.alloc, .free = v->alloc.free,
				      .ctx = v->alloc.ctx };
	return viommu_pt_create(&c, NULL, NULL, &hooks, &d->shadow);
}

/* The shadow can hold read/write, not user/exec distinctions of x86. */
static uint32_t shadow_prot(uint32_t perms)
{
	uint32_t p = perms & (VIOMMU_PERM_READ | VIOMMU_PERM_WRITE);
	return p ? p : VIOMMU_PERM_READ;
}

/* Under notify_lock: bring the shadow in line with the guest over
 * [first, last] and report the difference. */
static int sync_range(viommu_domain *d, uint64_t first, uint64_t last)
{
	struct diff_ctx c = { .d = d, .list = { .a = &d->v->alloc } };
	int ret = 0, r;

	if (!d->shadow) {
		ret = shadow_create(d);
		if (ret)
			return ret;
	}
	/* Mappings that went away or changed. */
	r = viommu_pt_for_each(d->shadow, first, last - first + 1 ? last - first + 1 : ~0ull, collect_stale, &c);
	if (r)
		ret = r;
	for (size_t i = 0; i < c.list.n; i++) {
		struct leaf *l = &c.list.v[i];
		struct viommu_map_event ev = { .type = VIOMMU_EVENT_UNMAP, .iova = l->iova, .size = l->size };
		uint64_t done;
		r = broadcast(d, &ev);
		if (r && !ret)
			ret = r;
		viommu_pt_unmap(d->shadow, l->iova, l->size, &done);
		/* The guest may map that whole span differently now. */
		if (l->iova < first)
			first = l->iova;
		if (l->iova + (l->size - 1) > last)
			last = l->iova + (l->size - 1);
	}
	c.list.n = 0;

	/* Mappings that are new. */
	struct pt_acc acc;
	uint64_t root;
	guest_view(d, &acc, &root);
	r = pt_visit_range(&d->g, &acc, root, first, last, collect_guest, &c);
	if (r && !ret)
		ret = r;
	for (size_t i = 0; i < c.list.n; i++) {
		struct leaf *l = &c.list.v[i];
		uint64_t done;
		struct viommu_map_event ev = {
			.type = VIOMMU_EVENT_MAP, .iova = l->iova, .paddr = l->pa, .size = l->size, .perms = l->perms,
		};
		/* Anything left overlapping in the shadow goes first. */
		viommu_pt_unmap(d->shadow, l->iova, l->size, &done);
		r = viommu_pt_map(d->shadow, l->iova, l->pa, l->size, shadow_prot(l->perms), &done);
		if (r && !ret)
			ret = r;
		r = broadcast(d, &ev);
		if (r && !ret)
			ret = r;
	}
	list_free(&c.list);
	return ret;
}

int notify_guest_range(viommu_domain *d, uint64_t first, uint64_t last)
{
	pthread_mutex_lock(&d->notify_lock);
	int ret = d->notifiers ? sync_range(d, first, last) : 0;
	pthread_mutex_unlock(&d->notify_lock);
	return ret;
}

void notify_domain_fini(viommu_domain *d)
{
	while (d->notifiers) {
		struct viommu_notifier *n = d->notifiers;
		d->notifiers = n->next;
		valloc_put(&d->v->alloc, n, sizeof(*n), _Alignof(struct viommu_notifier));
	}
	viommu_pt_destroy(d->shadow);
	d->shadow = NULL;
}

struct replay_ctx {
	struct viommu_notifier *n;
};

static int replay_leaf(void *ctx, uint64_t iova, uint64_t pa, uint64_t size, uint32_t perms)
{
	struct replay_ctx *c = ctx;
	struct viommu_map_event ev = {
		.type = VIOMMU_EVENT_MAP, .iova = iova, .paddr = pa, .size = size, .perms = perms,
	};
	return c->n->fn(c->n->ctx, c->n->dom, &ev);
}

/* Under notify_lock. */
static int replay_locked(struct viommu_notifier *n)
{
	viommu_domain *d = n->dom;
	struct replay_ctx c = { .n = n };
	const struct viommu_pt_config *cfg;
	if (!has_table(d))
		return 0;
	if (d->pt) {
		cfg = viommu_pt_get_config(d->pt);
		uint64_t lo = 0, size = cfg->ias >= 64 ? ~0ull : (1ull << cfg->ias);
		if (d->g.fmt->canonical) {
			/* Both canonical halves. */
			size = 1ull << (cfg->ias - 1);
			int r = viommu_pt_for_each(d->pt, lo, size, replay_leaf, &c);
			if (r)
				return r;
			return viommu_pt_for_each(d->pt, ~0ull << (cfg->ias - 1), size, replay_leaf, &c);
		}
		return viommu_pt_for_each(d->pt, lo, size, replay_leaf, &c);
	}
	/* Guest-owned: as the guest's table says now (the shadow was brought
	 * up to date with it by the caller). */
	struct pt_acc acc;
	uint64_t root;
	guest_view(d, &acc, &root);
	return pt_visit_range(&d->g, &acc, root, 0, ~0ull, replay_leaf, &c);
}

int viommu_notifier_add(viommu_domain *d, viommu_map_notify_fn fn, void *ctx, int replay, viommu_notifier **out)
{
	if (!d || !fn || !out)
		return -EINVAL;
	*out = NULL;
	struct viommu_notifier *n = valloc_zget(&d->v->alloc, sizeof(*n), _Alignof(struct viommu_notifier));
	if (!n)
		return -ENOMEM;
	n->dom = d;
	n->fn = fn;
	n->ctx = ctx;
	pthread_mutex_lock(&d->notify_lock);
	int ret = 0;
	if (guest_owned(d)) {
		/* Bring the shadow up to date; the notifiers there already
		 * hear of changes the guest made without invalidating yet. */
		ret = d->notifiers ? sync_range(d, 0, ~0ull) : 0;
		if (!d->notifiers && !ret) {
			viommu_pt_destroy(d->shadow);
			d->shadow = NULL;
			struct viommu_notifier *saved = d->notifiers;
			/* Build the shadow quietly: nobody listens yet. */
			d->notifiers = NULL;
			ret = shadow_create(d);
			if (!ret) {
				struct diff_ctx c = { .d = d, .list = { .a = &d->v->alloc } };
				struct pt_acc acc;
				uint64_t root;
				guest_view(d, &acc, &root);
				ret = pt_visit_range(&d->g, &acc, root, 0, ~0ull, collect_guest, &c);
				for (size_t i = 0; !ret && i < c.list.n; i++) {
					uint64_t done;
					ret = viommu_pt_map(d->shadow, c.list.v[i].iova, c.list.v[i].pa,
							    c.list.v[i].size, shadow_prot(c.list.v[i].perms), &done);
				}
				list_free(&c.list);
			}
			d->notifiers = saved;
		}
	}
	if (!ret && replay)
		ret = replay_locked(n);
	if (ret) {
		if (!d->notifiers) {
			viommu_pt_destroy(d->shadow);
			d->shadow = NULL;
		}
		pthread_mutex_unlock(&d->notify_lock);
		valloc_put(&d->v->alloc, n, sizeof(*n), _Alignof(struct viommu_notifier));
		return ret;
	}
	n->next = d->notifiers;
	d->notifiers = n;
	pthread_mutex_unlock(&d->notify_lock);
	*out = n;
	return 0;
}

void viommu_notifier_remove(viommu_notifier *n)
{
	if (!n)
		return;
	viommu_domain *d = n->dom;
	pthread_mutex_lock(&d->notify_lock);
	for (struct viommu_notifier **pp = &d->notifiers; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	if (!d->notifiers) {
		viommu_pt_destroy(d->shadow);
		d->shadow = NULL;
	}
	pthread_mutex_unlock(&d->notify_lock);
	valloc_put(&d->v->alloc, n, sizeof(*n), _Alignof(struct viommu_notifier));
}

int viommu_notifier_replay(viommu_notifier *n)
{
	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->dom->notify_lock);
	int ret = replay_locked(n);
	pthread_mutex_unlock(&n->dom->notify_lock);
	return ret;
}
