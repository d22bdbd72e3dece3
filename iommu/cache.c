/* SPDX-License-Identifier: MIT */
/*
 * Set-associative translation caches (IOTLB, page-walk cache, nested TLB).
 *
 * Readers take no lock: they read a set's sequence count, the ways, and the
 * count again, and retry if a writer was there. Writers (insert, invalidate)
 * make the count odd with a compare-and-swap, which also excludes other
 * writers of the set.
 *
 * Staleness: an invalidation first moves the instance's generation on, then
 * empties the sets. A walk notes the generation before it reads any table and
 * inserts only if, inside the set's write section, the generation is still
 * that one. So a walk that may have read a table before an invalidation can
 * never leave its result behind after the invalidation returns.
 */
#include "core_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

int vcache_init(struct vcache *c, const struct valloc *a, uint32_t entries)
{
	uint32_t sets = 1;
	if (!entries)
		return -EINVAL;
	while ((uint64_t)sets * VCACHE_WAYS < entries)
		sets <<= 1;
	memset(c, 0, sizeof(*c));
	c->sets = valloc_zget(a, sizeof(*c->sets) * sets, 64);
	if (!c->sets)
		return -ENOMEM;
	c->nr_sets = sets;
	return 0;
}

void vcache_fini(struct vcache *c, const struct valloc *a)
{
	valloc_put(a, c->sets, sizeof(*c->sets) * c->nr_sets, 64);
	c->sets = NULL;
}

static void set_lock(struct vcache_set *s)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
		if (!(seq & 1) &&
		    __atomic_compare_exchange_n(&s->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		sched_yield();
	}
}

static void set_unlock(struct vcache_set *s)
{
	__atomic_fetch_add(&s->seq, 1, __ATOMIC_RELEASE);
}

static inline void way_write(struct vcache_entry *w, uint64_t tag, uint64_t key, uint64_t val)
{
	/* Readers check the sequence count afterwards; relaxed stores inside
	 * the odd window are enough, the release of set_unlock orders them. */
	__atomic_store_n(&w->tag, tag, __ATOMIC_RELAXED);
	__atomic_store_n(&w->key, key, __ATOMIC_RELAXED);
	__atomic_store_n(&w->val, val, __ATOMIC_RELAXED);
}

void vcache_insert(struct vcache *c, const uint64_t *gen_now, uint64_t gen, uint64_t tag, uint64_t key,
		   uint64_t val)
{
	struct vcache_set *s = &c->sets[vcache_set_index(c, tag, key)];
	set_lock(s);
	if (__atomic_load_n(gen_now, __ATOMIC_SEQ_CST) != gen)
		goto out;
	unsigned slot = VCACHE_WAYS;
	for (unsigned i = 0; i < VCACHE_WAYS; i++) {
		uint64_t t = __atomic_load_n(&s->way[i].tag, __ATOMIC_RELAXED);
		if (t == tag && __atomic_load_n(&s->way[i].key, __ATOMIC_RELAXED) == key) {
			slot = i;
			break;
		}
		if (!t && slot == VCACHE_WAYS)
			slot = i;
	}
	if (slot == VCACHE_WAYS) {
		/* Full: replace round-robin within the set, never the whole cache. */
		slot = s->victim++ % VCACHE_WAYS;
		__atomic_fetch_add(&c->evictions, 1, __ATOMIC_RELAXED);
	}
	way_write(&s->way[slot], tag, key, val);
out:
	set_unlock(s);
}

static int entry_matches(const struct vcache_match *m, uint64_t tag, uint64_t key)
{
	if (!tag)
		return 0;
	if (m->all)
		return 1;
	if (VCACHE_TAG_DOM(tag) != m->domid)
		return 0;
	if (!m->any_pasid && VCACHE_TAG_PASID(tag) != m->pasidx)
		return 0;
	if (!m->ranged)
		return 1;
	/* Keys are page numbers of 2^class bytes (class >= 12). */
	unsigned cls = VCACHE_TAG_CLS(tag);
	uint64_t first = key << cls;
	uint64_t last = first + ((1ull << cls) - 1);
	return !(last < m->first || first > m->last);
}

void vcache_invalidate(struct vcache *c, const struct vcache_match *m)
{
	for (uint32_t i = 0; i < c->nr_sets; i++) {
		struct vcache_set *s = &c->sets[i];
		/* Always under the set's lock: a peek without it could miss
		 * the entry of a walk that checked the generation just before
		 * it moved and whose stores are not visible yet. */
		set_lock(s);
		for (unsigned w = 0; w < VCACHE_WAYS; w++) {
			uint64_t tag = __atomic_load_n(&s->way[w].tag, __ATOMIC_RELAXED);
			uint64_t key = __atomic_load_n(&s->way[w].key, __ATOMIC_RELAXED);
			if (entry_matches(m, tag, key))
				way_write(&s->way[w], 0, 0, 0);
		}
		set_unlock(s);
	}
}

void vcache_drop(struct vcache *c, uint64_t tag, uint64_t key)
{
	struct vcache_set *s = &c->sets[vcache_set_index(c, tag, key)];
	set_lock(s);
	for (unsigned w = 0; w < VCACHE_WAYS; w++) {
		if (__atomic_load_n(&s->way[w].tag, __ATOMIC_RELAXED) == tag &&
		    __atomic_load_n(&s->way[w].key, __ATOMIC_RELAXED) == key)
			way_write(&s->way[w], 0, 0, 0);
	}
	set_unlock(s);
}
