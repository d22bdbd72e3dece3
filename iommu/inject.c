/* SPDX-License-Identifier: MIT */
/*
 * Fault injection: rules, their triggers and counters, and the delayed
 * invalidations they cause.
 */
#include "core_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define INJ_MAX_RULES 256u
#define INJ_MAX_DELAYED 64u

struct inj_rule {
	uint32_t id;
	struct viommu_inject_rule r;
	uint64_t matched, fired;
	uint64_t rng;
};

struct inj_delayed {
	uint64_t deadline_ns;
	struct inval_req req;
};

struct inj_state {
	pthread_mutex_t lock;
	struct inj_rule rules[INJ_MAX_RULES];
	uint32_t nr;
	uint32_t next_id;
	uint32_t nr_by_action[8]; /* atomic: fast "nothing to do" checks */
	struct inj_delayed delayed[INJ_MAX_DELAYED];
	uint32_t nr_delayed;      /* atomic */
};

int inject_init(viommu *v)
{
	struct inj_state *s = valloc_zget(&v->alloc, sizeof(*s), 64);
	if (!s)
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL)) {
		valloc_put(&v->alloc, s, sizeof(*s), 64);
		return -ENOMEM;
	}
	s->next_id = 1;
	v->inj = s;
	return 0;
}

void inject_fini(viommu *v)
{
	if (!v->inj)
		return;
	pthread_mutex_destroy(&v->inj->lock);
	valloc_put(&v->alloc, v->inj, sizeof(*v->inj), 64);
	v->inj = NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: small, seedable, the same sequence everywhere. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int rule_valid(const struct viommu_inject_rule *r)
{
	if (r->size < sizeof(*r))
		return 0;
	if (r->action < VIOMMU_INJECT_FAULT || r->action > VIOMMU_INJECT_DELAY_COMPLETION)
		return 0;
	if (r->match & ~(VIOMMU_INJECT_M_RID | VIOMMU_INJECT_M_PASID | VIOMMU_INJECT_M_RANGE | VIOMMU_INJECT_M_ACCESS))
		return 0;
	if ((r->match & VIOMMU_INJECT_M_RANGE) && r->first > r->last)
		return 0;
	if ((r->match & VIOMMU_INJECT_M_PASID) && r->pasid != VIOMMU_NO_PASID && r->pasid > VIOMMU_PASID_MAX)
		return 0;
	if ((r->match & VIOMMU_INJECT_M_ACCESS) &&
	    (!r->access ||
	     (r->access & ~(VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV))))
		return 0;
	switch (r->trigger) {
	case VIOMMU_INJECT_ALWAYS:
		break;
	case VIOMMU_INJECT_NTH:
	case VIOMMU_INJECT_EVERY_NTH:
		if (!r->n)
			return 0;
		break;
	case VIOMMU_INJECT_PROBABILITY:
		if (r->ppm > 1000000)
			return 0;
		break;
	default:
		return 0;
	}
	switch (r->action) {
	case VIOMMU_INJECT_FAULT:
		if (r->reason == VIOMMU_FAULT_NONE || (unsigned)r->reason >= VIOMMU_FAULT_REASON_COUNT)
			return 0;
		break;
	case VIOMMU_INJECT_CORRUPT_READ:
		if (!r->xor_mask)
			return 0;
		break;
	case VIOMMU_INJECT_DELAY_INVAL:
	case VIOMMU_INJECT_DELAY_COMPLETION:
		if (!r->delay_us || r->delay_us > 60000000ull)
			return 0;
		break;
	default:
		break;
	}
	return 1;
}

int viommu_inject_add(viommu *v, const struct viommu_inject_rule *rule, uint32_t *id)
{
	if (!v || !rule || !id || !rule_valid(rule))
		return -EINVAL;
	struct inj_state *s = v->inj;
	pthread_mutex_lock(&s->lock);
	if (s->nr >= INJ_MAX_RULES || !s->next_id) {
		pthread_mutex_unlock(&s->lock);
		return -ENOSPC;
	}
	struct inj_rule *r = &s->rules[s->nr++];
	memset(r, 0, sizeof(*r));
	r->id = s->next_id++;
	r->r = *rule;
	r->r.size = sizeof(r->r);
	r->rng = rule->seed;
	*id = r->id;
	__atomic_fetch_add(&s->nr_by_action[rule->action], 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&v->inj_hot, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int viommu_inject_remove(viommu *v, uint32_t id)
{
	if (!v)
		return -EINVAL;
	struct inj_state *s = v->inj;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->nr; i++) {
		if (s->rules[i].id != id)
			continue;
		__atomic_fetch_sub(&s->nr_by_action[s->rules[i].r.action], 1, __ATOMIC_RELEASE);
		__atomic_fetch_sub(&v->inj_hot, 1, __ATOMIC_RELEASE);
		memmove(&s->rules[i], &s->rules[i + 1], sizeof(s->rules[0]) * (s->nr - i - 1));
		s->nr--;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	return -ENOENT;
}

static void info_of(const struct inj_rule *r, struct viommu_inject_info *out)
{
	out->id = r->id;
	out->rule = r->r;
	out->matched = r->matched;
	out->fired = r->fired;
}

int viommu_inject_list(viommu *v, struct viommu_inject_info *out, uint32_t max)
{
	if (!v || (!out && max))
		return -EINVAL;
	struct inj_state *s = v->inj;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->nr && i < max; i++)
		info_of(&s->rules[i], &out[i]);
	int n = (int)s->nr;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int viommu_inject_get(viommu *v, uint32_t id, struct viommu_inject_info *out)
{
	if (!v || !out)
		return -EINVAL;
	struct inj_state *s = v->inj;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->nr; i++) {
		if (s->rules[i].id == id) {
			info_of(&s->rules[i], out);
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return -ENOENT;
}

int inject_active(viommu *v, enum viommu_inject_action action)
{
	return __atomic_load_n(&v->inj->nr_by_action[action], __ATOMIC_ACQUIRE) != 0;
}

static int rid_eq(struct viommu_rid a, struct viommu_rid b)
{
	return a.segment == b.segment && a.bus == b.bus && a.devfn == b.devfn;
}

/*
 * The first rule of `action` that matches and fires, copied to *fired.
 * Fields the caller cannot supply (rid NULL, pasid/range/access not known)
 * never match rules that ask for them.
 */
int inject_eval(viommu *v, enum viommu_inject_action action, const struct inject_req *q,
		struct viommu_inject_rule *fired)
{
	struct inj_state *s = v->inj;
	int ret = 0;

	if (!inject_active(v, action))
		return 0;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; i < s->nr && !ret; i++) {
		struct inj_rule *r = &s->rules[i];
		const struct viommu_inject_rule *m = &r->r;
		if (m->action != action)
			continue;
		if ((m->match & VIOMMU_INJECT_M_RID) && (!q->has_rid || !rid_eq(m->rid, q->rid)))
			continue;
		if ((m->match & VIOMMU_INJECT_M_PASID) && (!q->has_pasid || m->pasid != q->pasid))
			continue;
		if ((m->match & VIOMMU_INJECT_M_RANGE) &&
		    (!q->has_range || q->last < m->first || q->first > m->last))
			continue;
		if ((m->match & VIOMMU_INJECT_M_ACCESS) && !(q->access & m->access))
			continue;
		r->matched++;
		if (m->max_fires && r->fired >= m->max_fires)
			continue;
		int fire = 0;
		switch (m->trigger) {
		case VIOMMU_INJECT_ALWAYS:
			fire = 1;
			break;
		case VIOMMU_INJECT_NTH:
			fire = r->matched == m->n;
			break;
		case VIOMMU_INJECT_EVERY_NTH:
			fire = r->matched % m->n == 0;
			break;
		case VIOMMU_INJECT_PROBABILITY:
			fire = rng_next(&r->rng) % 1000000u < m->ppm;
			break;
		}
		if (fire) {
			r->fired++;
			if (fired)
				*fired = *m;
			ret = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

enum viommu_inject_completion viommu_inject_completion(viommu *v, uint32_t pasid, uint64_t first, uint64_t last,
							uint64_t *delay_us)
{
	struct viommu_inject_rule r;
	struct inject_req q = {
		.has_pasid = 1, .pasid = pasid, .has_range = 1, .first = first, .last = last,
	};
	if (!v)
		return VIOMMU_COMPLETE_NOW;
	if (inject_eval(v, VIOMMU_INJECT_DROP_COMPLETION, &q, NULL))
		return VIOMMU_COMPLETE_DROP;
	if (inject_eval(v, VIOMMU_INJECT_DELAY_COMPLETION, &q, &r)) {
		if (delay_us)
			*delay_us = r.delay_us;
		return VIOMMU_COMPLETE_DELAY;
	}
	return VIOMMU_COMPLETE_NOW;
}

/* An invalidation about to happen: 0 do it now, 1 dropped, 2 deferred. */
int inject_invalidation(viommu *v, const struct inval_req *req)
{
	struct viommu_inject_rule r;
	struct inject_req q = {
		.has_pasid = !req->any_pasid && req->domid, .pasid = req->pasid, .has_range = 1,
		.first = req->iotlb_ranged ? req->first : 0, .last = req->iotlb_ranged ? req->last : ~0ull,
	};
	if (inject_eval(v, VIOMMU_INJECT_DROP_INVAL, &q, NULL))
		return 1;
	if (!inject_eval(v, VIOMMU_INJECT_DELAY_INVAL, &q, &r))
		return 0;
	struct inj_state *s = v->inj;
	pthread_mutex_lock(&s->lock);
	uint32_t nr = __atomic_load_n(&s->nr_delayed, __ATOMIC_RELAXED);
	if (nr >= INJ_MAX_DELAYED) {
		/* No room to remember it: do it now rather than lose it. */
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	s->delayed[nr].deadline_ns = now_ns() + r.delay_us * 1000ull;
	s->delayed[nr].req = *req;
	__atomic_store_n(&s->nr_delayed, nr + 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&v->inj_hot, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	return 2;
}

void inject_run_delayed(viommu *v, int force)
{
	struct inj_state *s = v->inj;
	struct inj_delayed due[INJ_MAX_DELAYED];
	uint32_t n = 0;

	if (!__atomic_load_n(&s->nr_delayed, __ATOMIC_ACQUIRE))
		return;
	uint64_t t = now_ns();
	pthread_mutex_lock(&s->lock);
	uint32_t nr = s->nr_delayed;
	for (uint32_t i = 0; i < nr;) {
		if (force || s->delayed[i].deadline_ns <= t) {
			due[n++] = s->delayed[i];
			s->delayed[i] = s->delayed[--nr];
		} else {
			i++;
		}
	}
	__atomic_store_n(&s->nr_delayed, nr, __ATOMIC_RELEASE);
	if (n)
		__atomic_fetch_sub(&v->inj_hot, n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	for (uint32_t i = 0; i < n; i++)
		inval_do(v, &due[i].req);
}
