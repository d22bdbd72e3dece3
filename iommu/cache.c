/* SPDX-License-Identifier: MIT */
/*
 * Set-associative translation caches (IOTLB, page-walk cache, nested TLB).
 *
 * Readers take no lock: they read a sequence count, a way, and the count
 * again, and take a miss if a writer was there. Writers (insert, invalidate)
 * make the count of the set's line 0 odd with a compare-and-swap, which also
 * excludes other writers of the set (core_internal.h has the layout).
 *
 * Staleness: an invalidation first moves the instance's generation on, then
 * empties the sets. A walk notes the generation before it reads any table and
 * inserts only if, inside the set's write section, the generation is still
 * that one. So a walk that may have read a table before an invalidation can
 * never leave its result behind after the invalidation returns.
 *
 * An invalidation may look at a set without its lock, and leave it alone when
 * nothing in it matches: it read the count even (seq_cst) after moving the
 * generation on, so a writer not yet in the set then takes the lock later
 * (seq_cst compare-and-swap) and finds the generation moved, and one that had
 * already left is seen whole (its release, our acquire). A count that changed
 * meanwhile sends it to the lock.
 *
 * Occupancy: a bit per set, set by an insert inside the set's write section
 * before it checks the generation, cleared only by an invalidation that left
 * the set empty, under the same lock. An invalidation that reads a set's bit
 * clear (seq_cst, after moving the generation on) skips the set: it was empty
 * then, and an insert that sets the bit later sees the generation moved. So a
 * sparse cache (a strict guest's: a few entries, each invalidated soon) costs
 * an invalidation a look at the bitmap, not at every set.
 */
#include "core_internal.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

static uint64_t occ_words(const struct vcache *c)
{
	return (c->g.set_mask + 64) / 64;
}

/* Set idx's occupancy word and bit. */
static inline uint64_t *occ_word(const struct vcache *c, uint64_t idx)
{
	return &c->occ[idx / 64];
}

static inline uint64_t occ_bit(uint64_t idx)
{
	return 1ull << (idx % 64);
}

int vcache_init(struct vcache *c, const struct valloc *a, uint32_t entries)
{
	uint32_t sets = 8;
	if (!entries)
		return -EINVAL;
	while ((uint64_t)sets * VCACHE_WAYS < entries)
		sets <<= 1;
	memset(c, 0, sizeof(*c));
	c->g.sets = valloc_zget(a, sizeof(*c->g.sets) * sets, _Alignof(struct vcache_set));
	if (!c->g.sets)
		return -ENOMEM;
	c->g.set_mask = sets - 1;
	c->occ = valloc_zget(a, sizeof(*c->occ) * occ_words(c), _Alignof(uint64_t));
	if (!c->occ) {
		valloc_put(a, c->g.sets, sizeof(*c->g.sets) * sets, _Alignof(struct vcache_set));
		c->g.sets = NULL;
		return -ENOMEM;
	}
	return 0;
}

void vcache_fini(struct vcache *c, const struct valloc *a)
{
	if (c->occ)
		valloc_put(a, c->occ, sizeof(*c->occ) * occ_words(c), _Alignof(uint64_t));
	c->occ = NULL;
	valloc_put(a, c->g.sets, sizeof(*c->g.sets) * (c->g.set_mask + 1), _Alignof(struct vcache_set));
	c->g.sets = NULL;
}

/* The set's lock: line 0's count made odd. */
static void set_lock(struct vcache_set *s)
{
	uint32_t *lock = &s->line[0].seq;
	for (;;) {
		uint32_t seq = __atomic_load_n(lock, __ATOMIC_RELAXED);
		/* seq_cst: ordered against the generation loads and stores
		 * (see the top of this file). */
		if (!(seq & 1) &&
		    __atomic_compare_exchange_n(lock, &seq, seq + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			return;
		sched_yield();
	}
}

static void set_unlock(struct vcache_set *s)
{
	__atomic_fetch_add(&s->line[0].seq, 1, __ATOMIC_RELEASE);
}

/*
 * Under the set's lock: write way i (and its fingerprint). Readers check a
 * count afterwards: line 0's is odd for the whole lock; another line's is
 * made odd around the write of its ways. The stores are release stores: a
 * reader whose (acquire) load sees one of them also sees the odd count that
 * came before it, on its second look at the count.
 */
static inline void way_write(struct vcache_set *s, unsigned i, uint64_t tag, uint64_t key, uint64_t val,
			     uint64_t fp)
{
	uint32_t *lq = (i >> 1) ? vcache_seq(s, i) : NULL;
	if (lq)
		__atomic_store_n(lq, __atomic_load_n(lq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
	struct vcache_entry *w = vcache_way(s, i);
	uint64_t fps = __atomic_load_n(&s->line[0].fp, __ATOMIC_RELAXED);
	fps = (fps & ~(0xffull << (8 * i))) | fp << (8 * i);
	__atomic_store_n(&w->tag, tag, __ATOMIC_RELEASE);
	__atomic_store_n(&w->key, key, __ATOMIC_RELEASE);
	__atomic_store_n(&w->val, val, __ATOMIC_RELEASE);
	__atomic_store_n(&s->line[0].fp, fps, __ATOMIC_RELEASE);
	if (lq)
		__atomic_store_n(lq, __atomic_load_n(lq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

void vcache_insert(struct vcache *c, const uint64_t *gen_now, uint64_t gen, uint64_t tag, uint64_t key,
		   uint64_t val)
{
	uint64_t seed = vcache_seed_of(tag);
	uint64_t h = vcache_region_hash(seed, key);
	struct vcache_set *s = vcache_set_h(&c->g, h, key);
	uint64_t cls = 1ull << VCACHE_TAG_CLS(tag);
	/* A walk that an invalidation already overtook inserts nothing (the
	 * check under the lock below decides; this one only saves marking the
	 * set occupied for nothing). */
	if (__atomic_load_n(gen_now, __ATOMIC_ACQUIRE) != gen)
		return;
	/* Before the entry exists, and seq_cst: an invalidation that does not
	 * see the class (and so skips its sets) moved the generation before
	 * this, and the insert below sees it moved. */
	if (!(__atomic_load_n(&c->classes, __ATOMIC_SEQ_CST) & cls))
		__atomic_fetch_or(&c->classes, cls, __ATOMIC_SEQ_CST);
	set_lock(s);
	/* The set's occupancy bit before the generation check (see the top
	 * of this file); it stays set while we hold the lock. */
	uint64_t idx = (uint64_t)(s - c->g.sets);
	if (!(__atomic_load_n(occ_word(c, idx), __ATOMIC_SEQ_CST) & occ_bit(idx)))
		__atomic_fetch_or(occ_word(c, idx), occ_bit(idx), __ATOMIC_SEQ_CST);
	if (__atomic_load_n(gen_now, __ATOMIC_SEQ_CST) != gen)
		goto out;
	uint64_t fps = __atomic_load_n(&s->line[0].fp, __ATOMIC_RELAXED);
	uint64_t fp = vcache_fp(seed, key);
	unsigned slot = VCACHE_WAYS;
	/* The entry itself, if there (it has this fingerprint)... */
	for (uint64_t mm = vcache_fp_match(fps, fp); mm; mm &= mm - 1) {
		unsigned i = (unsigned)__builtin_ctzll(mm) >> 3;
		if (__atomic_load_n(&vcache_way(s, i)->tag, __ATOMIC_RELAXED) == tag &&
		    __atomic_load_n(&vcache_way(s, i)->key, __ATOMIC_RELAXED) == key) {
			slot = i;
			break;
		}
	}
	if (slot == VCACHE_WAYS) {
		/* ...else a free way: one of the line looked at first if
		 * it has one (bit 7 of each byte of `free` is set for a free
		 * way). */
		uint64_t free = ~(((fps & 0x7f7f7f7f7f7f7f7full) + 0x7f7f7f7f7f7f7f7full) | fps | 0x7f7f7f7f7f7f7f7full);
		uint64_t pref = free & (0xffffull << (16 * (vcache_hint_h(h) >> 1)));
		if (pref)
			free = pref;
		if (free)
			slot = (unsigned)__builtin_ctzll(free) >> 3;
	}
	if (slot == VCACHE_WAYS) {
		/* Full: replace round-robin within the set, never the whole cache. */
		slot = s->line[0].victim++ % VCACHE_WAYS;
		__atomic_fetch_add(&c->evictions, 1, __ATOMIC_RELAXED);
	}
	way_write(s, slot, tag, key, val, fp);
out:
	set_unlock(s);
}

static inline __attribute__((always_inline)) int entry_matches(const struct vcache_match *m, uint64_t tag,
							  uint64_t key)
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

/* Drop the matching entries of set idx; without the lock when none matches.
 * A set it leaves empty loses its occupancy bit. */
static void set_invalidate(struct vcache *c, uint64_t idx, const struct vcache_match *m)
{
	struct vcache_set *s = &c->g.sets[idx];
	uint32_t seq = __atomic_load_n(&s->line[0].seq, __ATOMIC_SEQ_CST);
	if (!(seq & 1)) {
		uint64_t fps = __atomic_load_n(&s->line[0].fp, __ATOMIC_ACQUIRE);
		/* An empty set still marked occupied (an insert that found
		 * the generation moved) goes to the lock to lose its bit. */
		int any = !fps;
		for (unsigned w = 0; fps && w < VCACHE_WAYS && !any; w++, fps >>= 8) {
			if (!(fps & 0xff))
				continue;
			any = entry_matches(m, __atomic_load_n(&vcache_way(s, w)->tag, __ATOMIC_ACQUIRE),
					    __atomic_load_n(&vcache_way(s, w)->key, __ATOMIC_ACQUIRE));
		}
		if (!any && __atomic_load_n(&s->line[0].seq, __ATOMIC_SEQ_CST) == seq)
			return;
	}
	set_lock(s);
	/* Line by line: one odd window per line with ways to drop, one
	 * fingerprint store for the set. */
	uint64_t fps = __atomic_load_n(&s->line[0].fp, __ATOMIC_RELAXED), fps0 = fps;
	for (unsigned l = 0; l < VCACHE_WAYS / 2; l++) {
		struct vcache_line *ln = &s->line[l];
		int d0 = entry_matches(m, __atomic_load_n(&ln->way[0].tag, __ATOMIC_RELAXED),
				       __atomic_load_n(&ln->way[0].key, __ATOMIC_RELAXED));
		int d1 = entry_matches(m, __atomic_load_n(&ln->way[1].tag, __ATOMIC_RELAXED),
				       __atomic_load_n(&ln->way[1].key, __ATOMIC_RELAXED));
		if (!(d0 | d1))
			continue;
		if (l)
			__atomic_store_n(&ln->seq, __atomic_load_n(&ln->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
		if (d0) {
			__atomic_store_n(&ln->way[0].tag, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&ln->way[0].key, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&ln->way[0].val, 0, __ATOMIC_RELEASE);
			fps &= ~(0xffull << (16 * l));
		}
		if (d1) {
			__atomic_store_n(&ln->way[1].tag, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&ln->way[1].key, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&ln->way[1].val, 0, __ATOMIC_RELEASE);
			fps &= ~(0xff00ull << (16 * l));
		}
		if (l)
			__atomic_store_n(&ln->seq, __atomic_load_n(&ln->seq, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
	}
	if (fps != fps0)
		__atomic_store_n(&s->line[0].fp, fps, __ATOMIC_RELEASE);
	if (!fps)
		__atomic_fetch_and(occ_word(c, idx), ~occ_bit(idx), __ATOMIC_SEQ_CST);
	set_unlock(s);
}

/*
 * For a range: the number of set visits that cover it (one per page of each
 * class ever cached), or UINT64_MAX when the pages' sets cannot be known
 * (a nested domain's entries of every context hash by context).
 */
static uint64_t range_probes(const struct vcache *c, const struct vcache_match *m, uint64_t classes)
{
	if (m->all || !m->ranged || (m->any_pasid && m->nested))
		return UINT64_MAX;
	uint64_t n = 0;
	while (classes) {
		unsigned cls = (unsigned)__builtin_ctzll(classes);
		classes &= classes - 1;
		if (cls >= 64)
			return UINT64_MAX;
		n += (m->last >> cls) - (m->first >> cls) + 1;
		if (n > (c->g.set_mask + 1))
			return UINT64_MAX;
	}
	return n;
}

void vcache_invalidate(struct vcache *c, const struct vcache_match *m)
{
	/* Read after the caller moved the generation on (see vcache_insert). */
	uint64_t classes = __atomic_load_n(&c->classes, __ATOMIC_SEQ_CST);
	uint64_t probes = range_probes(c, m, classes);
	/* A small range: visit the sets of its pages, class by class, when
	 * that is fewer than a quarter of the sets. */
	if (probes <= (c->g.set_mask + 1) / 4) {
		uint64_t tag = vcache_tag(m->domid, m->pasidx, m->nested, 0);
		while (classes) {
			unsigned cls = (unsigned)__builtin_ctzll(classes);
			classes &= classes - 1;
			uint64_t seed = vcache_seed_of(tag | (uint64_t)cls << 1);
			for (uint64_t k = m->first >> cls;; k++) {
				uint64_t idx = (uint64_t)(vcache_set_at(&c->g, seed, k) - c->g.sets);
				if (__atomic_load_n(occ_word(c, idx), __ATOMIC_SEQ_CST) & occ_bit(idx))
					set_invalidate(c, idx, m);
				if (k == m->last >> cls)
					break;
			}
		}
		return;
	}
	/* Every set whose bit is set (a word at a time). */
	for (uint64_t w = 0; w < occ_words(c); w++) {
		for (uint64_t bits = __atomic_load_n(&c->occ[w], __ATOMIC_SEQ_CST); bits; bits &= bits - 1)
			set_invalidate(c, w * 64 + (uint64_t)__builtin_ctzll(bits), m);
	}
}
