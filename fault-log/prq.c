/* SPDX-License-Identifier: MIT */
/*
 * Page-request queue: recoverable faults with page request group indexes,
 * answered in any order.
 */
#include "fl_internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"

struct prq_group {
	struct viommu_rid rid;
	uint32_t pasid;
	uint16_t group;
	int last_seen;
};

struct viommu_prq {
	struct valloc alloc;
	pthread_mutex_t lock;
	struct viommu_page_request *ring;
	uint32_t entries;
	uint64_t head, tail, seq;
	struct prq_group *groups; /* outstanding, at most `entries` */
	uint32_t nr_groups;
	uint64_t submitted, dropped, responded, auto_responded;
	viommu_fq_raise_fn raise;
	viommu_prq_respond_fn respond;
	void *ctx;
};

int viommu_prq_create(const struct viommu_prq_config *cfg, const struct viommu_alloc *alloc, viommu_prq **out)
{
	struct valloc va;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || cfg->size < sizeof(*cfg) || !cfg->entries || cfg->entries > (1u << 20) || !cfg->respond)
		return -EINVAL;
	ret = valloc_init(&va, alloc);
	if (ret)
		return ret;
	viommu_prq *q = valloc_zget(&va, sizeof(*q), 64);
	if (!q)
		return -ENOMEM;
	q->alloc = va;
	q->entries = cfg->entries;
	q->raise = cfg->raise;
	q->respond = cfg->respond;
	q->ctx = cfg->ctx;
	q->ring = valloc_get(&va, sizeof(*q->ring) * cfg->entries, 64);
	if (!q->ring) {
		ret = -ENOMEM;
		goto err_free;
	}
	q->groups = valloc_get(&va, sizeof(*q->groups) * cfg->entries, 64);
	if (!q->groups) {
		ret = -ENOMEM;
		goto err_ring;
	}
	if (pthread_mutex_init(&q->lock, NULL)) {
		ret = -ENOMEM;
		goto err_groups;
	}
	*out = q;
	return 0;

err_groups:
	valloc_put(&va, q->groups, sizeof(*q->groups) * cfg->entries, 64);
err_ring:
	valloc_put(&va, q->ring, sizeof(*q->ring) * cfg->entries, 64);
err_free:
	valloc_put(&va, q, sizeof(*q), 64);
	return ret;
}

void viommu_prq_destroy(viommu_prq *q)
{
	if (!q)
		return;
	struct valloc va = q->alloc;
	pthread_mutex_destroy(&q->lock);
	valloc_put(&va, q->groups, sizeof(*q->groups) * q->entries, 64);
	valloc_put(&va, q->ring, sizeof(*q->ring) * q->entries, 64);
	valloc_put(&va, q, sizeof(*q), 64);
}

static int group_eq(const struct prq_group *g, struct viommu_rid rid, uint32_t pasid, uint16_t group)
{
	return g->rid.segment == rid.segment && g->rid.bus == rid.bus && g->rid.devfn == rid.devfn &&
	       g->pasid == pasid && g->group == group;
}

static struct prq_group *group_find(viommu_prq *q, struct viommu_rid rid, uint32_t pasid, uint16_t group)
{
	for (uint32_t i = 0; i < q->nr_groups; i++)
		if (group_eq(&q->groups[i], rid, pasid, group))
			return &q->groups[i];
	return NULL;
}

static void group_remove(viommu_prq *q, struct prq_group *g)
{
	*g = q->groups[--q->nr_groups];
}

static int pasid_ok(uint32_t pasid)
{
	return pasid == VIOMMU_NO_PASID || pasid <= VIOMMU_PASID_MAX;
}

int viommu_prq_submit(viommu_prq *q, const struct viommu_page_request *req)
{
	if (!q || !req || req->group > 511 || !pasid_ok(req->pasid))
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	q->submitted++;
	struct prq_group *g = group_find(q, req->rid, req->pasid, req->group);
	if (q->tail - q->head >= q->entries || (!g && q->nr_groups >= q->entries)) {
		q->dropped++;
		int answer = !!req->last;
		if (answer) {
			q->auto_responded++;
			if (g)
				group_remove(q, g);
		}
		viommu_prq_respond_fn fn = q->respond;
		void *ctx = q->ctx;
		pthread_mutex_unlock(&q->lock);
		if (answer)
			fn(ctx, req->rid, req->pasid, req->group, VIOMMU_PRQ_SUCCESS);
		return -ENOSPC;
	}
	if (!g) {
		g = &q->groups[q->nr_groups++];
		memset(g, 0, sizeof(*g));
		g->rid = req->rid;
		g->pasid = req->pasid;
		g->group = req->group;
	}
	if (req->last)
		g->last_seen = 1;
	struct viommu_page_request *slot = &q->ring[q->tail % q->entries];
	*slot = *req;
	slot->seq = ++q->seq;
	slot->addr &= ~0xfffull;
	int was_empty = q->tail == q->head;
	q->tail++;
	viommu_fq_raise_fn rfn = q->raise;
	void *ctx = q->ctx;
	pthread_mutex_unlock(&q->lock);
	if (was_empty && rfn)
		rfn(ctx);
	return 0;
}

int viommu_prq_pop(viommu_prq *q, struct viommu_page_request *req)
{
	if (!q || !req)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	if (q->head == q->tail) {
		pthread_mutex_unlock(&q->lock);
		return -EAGAIN;
	}
	*req = q->ring[q->head % q->entries];
	q->head++;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

int viommu_prq_respond(viommu_prq *q, struct viommu_rid rid, uint32_t pasid, uint16_t group,
		       enum viommu_prq_response code)
{
	if (!q || group > 511 || !pasid_ok(pasid) ||
	    (code != VIOMMU_PRQ_SUCCESS && code != VIOMMU_PRQ_INVALID && code != VIOMMU_PRQ_FAILURE))
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	struct prq_group *g = group_find(q, rid, pasid, group);
	if (!g || !g->last_seen) {
		pthread_mutex_unlock(&q->lock);
		return -ENOENT;
	}
	group_remove(q, g);
	q->responded++;
	viommu_prq_respond_fn fn = q->respond;
	void *ctx = q->ctx;
	pthread_mutex_unlock(&q->lock);
	fn(ctx, rid, pasid, group, code);
	return 0;
}

void viommu_prq_get_status(viommu_prq *q, struct viommu_prq_status *st)
{
	if (!q || !st)
		return;
	pthread_mutex_lock(&q->lock);
	st->count = (uint32_t)(q->tail - q->head);
	st->entries = q->entries;
	st->submitted = q->submitted;
	st->dropped = q->dropped;
	st->responded = q->responded;
	st->auto_responded = q->auto_responded;
	st->groups_outstanding = q->nr_groups;
	pthread_mutex_unlock(&q->lock);
}
