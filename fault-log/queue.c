/* SPDX-License-Identifier: MIT */
/*
 * Fault record queues: a ring under a mutex, an overflow flag and a lost
 * counter, and an interrupt with mask and pending semantics.
 */
#include "fl_internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"

struct viommu_fault_queue {
	struct valloc alloc;
	pthread_mutex_t lock;
	struct viommu_fault_record *ring;
	uint32_t entries;
	uint32_t flags;
	uint64_t head, tail;
	int overflow, masked, pending;
	uint64_t lost, raised, suppressed;
	viommu_fq_raise_fn raise;
	viommu_fq_notify_fn notify;
	void *ctx;
	fq_irq_filter_fn filter;
	void *filter_ctx;
	void *owner;
};

int viommu_fault_queue_create(const struct viommu_fault_queue_config *cfg, const struct viommu_alloc *alloc,
			      viommu_fault_queue **out)
{
	struct valloc va;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || cfg->size < sizeof(*cfg) || !cfg->entries || cfg->entries > (1u << 20) ||
	    (cfg->flags & ~(VIOMMU_FQ_IRQ_ON_EMPTY | VIOMMU_FQ_MASKED)))
		return -EINVAL;
	ret = valloc_init(&va, alloc);
	if (ret)
		return ret;
	viommu_fault_queue *q = valloc_zget(&va, sizeof(*q), 64);
	if (!q)
		return -ENOMEM;
	q->alloc = va;
	q->ring = valloc_get(&va, sizeof(*q->ring) * cfg->entries, 64);
	if (!q->ring) {
		ret = -ENOMEM;
		goto err_free;
	}
	if (pthread_mutex_init(&q->lock, NULL)) {
		ret = -ENOMEM;
		goto err_ring;
	}
	q->entries = cfg->entries;
	q->flags = cfg->flags;
	q->masked = !!(cfg->flags & VIOMMU_FQ_MASKED);
	q->raise = cfg->raise;
	q->notify = cfg->notify;
	q->ctx = cfg->ctx;
	*out = q;
	return 0;

err_ring:
	valloc_put(&va, q->ring, sizeof(*q->ring) * cfg->entries, 64);
err_free:
	valloc_put(&va, q, sizeof(*q), 64);
	return ret;
}

void viommu_fault_queue_destroy(viommu_fault_queue *q)
{
	if (!q)
		return;
	struct valloc va = q->alloc;
	pthread_mutex_destroy(&q->lock);
	valloc_put(&va, q->ring, sizeof(*q->ring) * q->entries, 64);
	valloc_put(&va, q, sizeof(*q), 64);
}

void fq_set_irq_filter(viommu_fault_queue *q, fq_irq_filter_fn fn, void *ctx)
{
	pthread_mutex_lock(&q->lock);
	q->filter = fn;
	q->filter_ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

int fq_claim(viommu_fault_queue *q, void *owner)
{
	int ret = 0;
	pthread_mutex_lock(&q->lock);
	if (owner && q->owner && q->owner != owner)
		ret = -EBUSY;
	else
		q->owner = owner;
	pthread_mutex_unlock(&q->lock);
	return ret;
}

/* Under the lock: an interrupt condition. Returns 1 if the caller must
 * raise after unlocking. */
static int irq_condition(viommu_fault_queue *q)
{
	if (q->masked) {
		q->pending = 1;
		return 0;
	}
	if (q->filter && q->filter(q->filter_ctx)) {
		q->suppressed++;
		return 0;
	}
	q->raised++;
	return q->raise != NULL;
}

static int push(viommu_fault_queue *q, struct viommu_fault_record *rec, uint64_t *seq)
{
	pthread_mutex_lock(&q->lock);
	if (seq)
		rec->seq = __atomic_add_fetch(seq, 1, __ATOMIC_RELAXED);
	uint64_t count = q->tail - q->head;
	if (count >= q->entries) {
		q->overflow = 1;
		q->lost++;
		pthread_mutex_unlock(&q->lock);
		return -ENOSPC;
	}
	q->ring[q->tail % q->entries] = *rec;
	q->tail++;
	int raise = 0;
	if (!(q->flags & VIOMMU_FQ_IRQ_ON_EMPTY) || count == 0)
		raise = irq_condition(q);
	viommu_fq_raise_fn rfn = q->raise;
	viommu_fq_notify_fn nfn = q->notify;
	void *ctx = q->ctx;
	pthread_mutex_unlock(&q->lock);
	if (nfn)
		nfn(ctx, rec);
	if (raise)
		rfn(ctx);
	return 0;
}

int viommu_fault_queue_push(viommu_fault_queue *q, const struct viommu_fault_record *rec)
{
	if (!q || !rec)
		return -EINVAL;
	struct viommu_fault_record local = *rec;
	return push(q, &local, NULL);
}

int fq_push_seq(viommu_fault_queue *q, struct viommu_fault_record *rec, uint64_t *seq)
{
	return push(q, rec, seq);
}

int viommu_fault_queue_pop(viommu_fault_queue *q, struct viommu_fault_record *rec)
{
	if (!q || !rec)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	if (q->head == q->tail) {
		pthread_mutex_unlock(&q->lock);
		return -EAGAIN;
	}
	*rec = q->ring[q->head % q->entries];
	q->head++;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void viommu_fault_queue_get_status(viommu_fault_queue *q, struct viommu_fault_queue_status *st)
{
	if (!q || !st)
		return;
	pthread_mutex_lock(&q->lock);
	st->head = q->head;
	st->tail = q->tail;
	st->count = (uint32_t)(q->tail - q->head);
	st->entries = q->entries;
	st->overflow = q->overflow;
	st->lost = q->lost;
	st->masked = q->masked;
	st->pending = q->pending;
	st->raised = q->raised;
	st->suppressed = q->suppressed;
	pthread_mutex_unlock(&q->lock);
}

void viommu_fault_queue_clear_overflow(viommu_fault_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->overflow = 0;
	pthread_mutex_unlock(&q->lock);
}

void viommu_fault_queue_set_mask(viommu_fault_queue *q, int masked)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	int raise = 0;
	q->masked = !!masked;
	if (!q->masked && q->pending) {
		q->pending = 0;
		raise = irq_condition(q);
	}
	viommu_fq_raise_fn rfn = q->raise;
	void *ctx = q->ctx;
	pthread_mutex_unlock(&q->lock);
	if (raise)
		rfn(ctx);
}
