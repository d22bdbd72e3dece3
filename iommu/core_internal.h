/* SPDX-License-Identifier: MIT */
/* Internal: the IOMMU core's objects. */
#ifndef VIOMMU_INTERNAL_CORE_H
#define VIOMMU_INTERNAL_CORE_H

#include <pthread.h>

#include <viommu/dma.h>
#include <viommu/faultlog.h>
#include <viommu/inject.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>

#include "alloc.h"
#include "mem_internal.h"
#include "pt_internal.h"

/* ------------------------------------------------------------------------ */
/* Caches: set-associative, readers lock-free under per-line sequence counts */

#define VCACHE_WAYS 8u

/*
 * A set is four cache lines of two ways each. A way: tag (0 = empty), key
 * (page or prefix number), value (an address with VIOMMU_PERM_* in its low 4
 * bits). Each line has a sequence count, odd while a writer changes its ways;
 * the count of line 0 is also the set's lock (writers of any line hold it).
 * Line 0 also has a fingerprint byte per way (0 = empty). A lookup reads the
 * count of the line it looks at first, its ways, and the count again: one
 * cache line; the fingerprints only when that line does not have it.
 * Every word is read and written atomically.
 */
struct vcache_entry {
	uint64_t tag;
	uint64_t key;
	uint64_t val;
};

struct vcache_line {
	uint32_t seq;                  /* odd while a writer is in the line */
	uint32_t victim;               /* line 0: next way to replace (under the lock) */
	struct vcache_entry way[2];
	uint64_t fp;                   /* line 0: byte i, fingerprint of way i */
};

struct vcache_set {
	struct vcache_line line[VCACHE_WAYS / 2];
} __attribute__((aligned(64)));

static inline struct vcache_entry *vcache_way(struct vcache_set *s, unsigned i)
{
	return &s->line[i >> 1].way[i & 1];
}

static inline uint32_t *vcache_seq(struct vcache_set *s, unsigned i)
{
	return &s->line[i >> 1].seq;
}

/* Where a cache's sets are: fixed at creation (devices keep a copy of the
 * IOTLB's, next to their attachment words, for the hit path). */
struct vcache_geom {
	struct vcache_set *sets;
	uint64_t set_mask;  /* number of sets - 1 (a power of two, at least 8) */
};

struct vcache {
	struct vcache_geom g;
	uint64_t hits, misses, evictions; /* atomic counters */
	uint64_t classes; /* atomic: bit n = entries of class n were ever inserted */
	uint64_t *occ;    /* atomic words: bit i = set i may hold entries (cache.c) */
};

/*
 * tag = domain id << 32 | tag id << 11 | nested << 10 | class << 1 | 1.
 * The tag id is a PASID index, or a nested domain's stage-1 context id
 * (struct attach). Bits 7-9 are zero.
 */
#define VCACHE_TAG_NESTED (1ull << 10)
#define VCACHE_TAG_ID_MASK (0x1fffffull << 11)
static inline uint64_t vcache_tag(uint32_t domid, uint32_t tagid, int nested, unsigned cls)
{
	return (uint64_t)domid << 32 | (uint64_t)(tagid & 0x1fffff) << 11 | (nested ? VCACHE_TAG_NESTED : 0) |
	       (uint64_t)(cls & 0x3f) << 1 | 1u;
}

#define VCACHE_TAG_DOM(t)   ((uint32_t)((t) >> 32))
#define VCACHE_TAG_PASID(t) ((uint32_t)(((t) >> 11) & 0x1fffff))
#define VCACHE_TAG_CLS(t)   ((unsigned)(((t) >> 1) & 0x3f))

/* PASID values as cache tags: VIOMMU_NO_PASID is 2^20. */
static inline uint32_t pasid_index(uint32_t pasid)
{
	return pasid == VIOMMU_NO_PASID ? (VIOMMU_PASID_MAX + 1) : pasid;
}

int vcache_init(struct vcache *c, const struct valloc *a, uint32_t entries);
void vcache_fini(struct vcache *c, const struct valloc *a);

/*
 * Where an entry lives. Keys (page numbers) go by regions of
 * 2^VCACHE_REGION_BITS pages: the pages of a region sit in consecutive sets
 * from a first one that is a hash of the tag and the region, and each looks
 * first at one line of its set, the same for the whole region (also from the
 * hash). So a dense buffer spreads evenly over the sets, buffers elsewhere
 * overlap it only where their hashes say, and a DMA over consecutive pages
 * finds the next page one set on, in the same line. Scattered pages spread
 * by the hash.
 *
 * The tag enters through its seed. Without nesting every PASID of a domain
 * translates alike and the tag id is left out of the seed, so one set holds
 * a page of a domain whatever the PASID: a range invalidation of all PASIDs
 * can then visit only the sets of the range's pages (vcache_invalidate).
 * Stage-1 contexts of a nested domain map the same addresses differently:
 * their tag ids count.
 */
#define VCACHE_REGION_BITS 4u
#define VCACHE_HASH_MUL 0xff51afd7ed558ccdull
#define VCACHE_KEY_MUL 0x9e3779b97f4a7c15ull
static inline uint64_t vcache_seed(uint64_t tag)
{
	uint64_t keep = VCACHE_TAG_ID_MASK & (0 - ((tag >> 10) & 1));
	return (tag & (~VCACHE_TAG_ID_MASK | keep)) * VCACHE_HASH_MUL;
}

/* The seed of a tag with a class (bits 1-6): the class-less tag's seed plus
 * the class, so one seed serves every page size of an attachment. */
#define VCACHE_TAG_CLS_MASK (0x3full << 1)
static inline uint64_t vcache_seed_cls(uint64_t seed, unsigned cls)
{
	return seed + cls;
}

static inline uint64_t vcache_seed_of(uint64_t tag)
{
	return vcache_seed_cls(vcache_seed(tag & ~VCACHE_TAG_CLS_MASK), VCACHE_TAG_CLS(tag));
}

/* A region's hash: its first set (bits 32 up) and its line (bits 57-58). */
static inline uint64_t vcache_region_hash(uint64_t seed, uint64_t key)
{
	return ((key >> VCACHE_REGION_BITS) + seed) * VCACHE_KEY_MUL;
}

/* The set of key, from its region's hash. */
static inline struct vcache_set *vcache_set_h(const struct vcache_geom *g, uint64_t h, uint64_t key)
{
	return &g->sets[((h >> 32) + key) & g->set_mask];
}

static inline struct vcache_set *vcache_set_at(const struct vcache_geom *g, uint64_t seed, uint64_t key)
{
	return vcache_set_h(g, vcache_region_hash(seed, key), key);
}

/* The ways looked at first, from the region's hash: the two of a line (one
 * shift and mask from the set to them and their line's count). */
static inline unsigned vcache_hint_h(uint64_t h)
{
	return (unsigned)(h >> 56) & 6;
}

/* A way's fingerprint (never 0): low bits of the key mixed with the seed. */
static inline uint64_t vcache_fp(uint64_t seed, uint64_t key)
{
	return 0x80 | ((key ^ (seed >> 40)) & 0x7f);
}

/* Bit 7 of each byte of fps that equals fp (plus, rarely, a byte above a
 * match: candidates are checked against the tag and key anyway). */
static inline uint64_t vcache_fp_match(uint64_t fps, uint64_t fp)
{
	uint64_t x = fps ^ (fp * 0x0101010101010101ull);
	return (x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull;
}

/*
 * 1 and *val on a hit, lock-free: the count of the line looked at first,
 * its two ways, the count again; failing that, the set's count (line 0's),
 * the ways whose fingerprints match, the count again. A writer there, or one
 * that came and went meanwhile, makes it a miss (always correct: the caller
 * walks); no retry loop.
 */
static inline __attribute__((always_inline)) int vcache_lookup_s(const struct vcache_geom *g, uint64_t seed,
								 uint64_t tag, uint64_t key, uint64_t *val)
{
	uint64_t h = vcache_region_hash(seed, key);
	struct vcache_set *s = vcache_set_h(g, h, key);
	const struct vcache_line *ln = &s->line[vcache_hint_h(h) >> 1];
	const uint32_t *sq = &ln->seq;
	uint32_t seq = __atomic_load_n(sq, __ATOMIC_ACQUIRE);
	const struct vcache_entry *w = &ln->way[0];
	if (__builtin_expect(seq & 1, 0))
		goto scan;
	if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key || __atomic_load_n(&w->tag, __ATOMIC_ACQUIRE) != tag) {
		w = &ln->way[1];
		if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key ||
		    __atomic_load_n(&w->tag, __ATOMIC_ACQUIRE) != tag) {
scan:
			/* Elsewhere in the set, if anywhere: under the set's
			 * count (writers of any line hold it). */
			sq = vcache_seq(s, 0);
			seq = __atomic_load_n(sq, __ATOMIC_ACQUIRE);
			if (seq & 1)
				return 0;
			uint64_t m = vcache_fp_match(__atomic_load_n(&s->line[0].fp, __ATOMIC_ACQUIRE),
						     vcache_fp(seed, key));
			for (;;) {
				if (!m)
					return 0;
				w = vcache_way(s, __builtin_ctzll(m) >> 3);
				m &= m - 1;
				if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) == key &&
				    __atomic_load_n(&w->tag, __ATOMIC_ACQUIRE) == tag)
					break;
			}
		}
	}
	uint64_t v = __atomic_load_n(&w->val, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(sq, __ATOMIC_RELAXED) != seq)
		return 0;
	*val = v;
	return 1;
}

static inline int vcache_lookup(struct vcache *c, uint64_t tag, uint64_t key, uint64_t *val, int count)
{
	int hit = vcache_lookup_s(&c->g, vcache_seed_of(tag), tag, key, val);
	if (count)
		__atomic_fetch_add(hit ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
	return hit;
}

/* Insert unless the instance's invalidation generation moved past `gen`. */
void vcache_insert(struct vcache *c, const uint64_t *gen_now, uint64_t gen, uint64_t tag, uint64_t key,
		   uint64_t val);

/* What an invalidation drops. */
struct vcache_match {
	int all;              /* everything */
	uint32_t domid;       /* else: this domain */
	int any_pasid;        /* of every PASID */
	uint32_t pasidx;      /* else this PASID index */
	int nested;           /* the domain is nested (its tags have the bit) */
	int ranged;           /* else only entries overlapping [first, last] */
	uint64_t first, last; /* keys are page numbers of 2^class bytes */
};
void vcache_invalidate(struct vcache *c, const struct vcache_match *m);

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */

struct viommu_notifier {
	struct viommu_notifier *next;
	viommu_domain *dom;
	viommu_map_notify_fn fn;
	void *ctx;
};

struct viommu_domain {
	viommu *v;
	uint32_t id;
	enum viommu_domain_type type;
	uint32_t flags;
	struct pt_geom g;               /* paging/nested: the domain's table */
	struct viommu_pt_config ptcfg;
	viommu_pt *pt;                  /* host-owned table */
	uint64_t root;                  /* guest-owned root (atomic) */
	uint32_t attached;              /* (device, PASID) attachments */
	struct viommu_domain *next;     /* instance list */
	struct s1ctx **ctx;             /* nested: stage-1 contexts */
	uint32_t nr_ctx, cap_ctx;
	/* Notifiers, and for guest-owned tables the mappings last reported. */
	pthread_mutex_t notify_lock;
	struct viommu_notifier *notifiers;
	viommu_pt *shadow;
};

/*
 * Per (device, PASID) attachment. The hit path reads `word` (one atomic
 * load: valid, the domain id and the cache tag id together: the word is the
 * attachment's IOTLB tag without the page-size class), `hseed` (the hash of
 * that tag, see vcache_set_at; a stale one only costs a miss) and `sizes` (a
 * hint of the page sizes cached: a stale hint only costs a walk).
 *
 * Cache tags are (domain id, tag id). Without nesting the tag id is the PASID
 * index: every device of a domain shares its translations. With nesting each
 * distinct stage 1 (PASID, root, format) of a domain is a context with a tag
 * id of its own, so two devices with the same PASID but different stage-1
 * tables never see each other's translations.
 */
#define ATT_VALID    1ull               /* the tag's own bit 0 */
#define ATT_NESTED   VCACHE_TAG_NESTED
#define ATT_IDENTITY (1ull << 7)        /* an identity domain: no table, no cache */
#define ATT_TAG_SHIFT 11
#define ATT_TAG_MASK 0x1fffffull
struct attach {
	uint64_t word;          /* atomic: domain id << 32 | tag id << 11 | ATT_* */
	uint64_t hseed;         /* atomic: vcache_seed(word) */
	uint64_t sizes;         /* atomic: bit n = pages of 2^(12+n) bytes cached */
	viommu_domain *dom;     /* under the topology lock */
	struct s1ctx *ctx;      /* nested: the stage-1 context (under the lock) */
};

/* A stage-1 context of a nested domain (under the topology lock). */
struct s1ctx {
	uint32_t pasid;
	uint32_t tagid;
	uint32_t refs;
	uint64_t root;
	struct pt_geom g;
};

#define ATT_CHUNK 64u
struct viommu_dev {
	viommu *v;
	struct vcache_geom iotlb;  /* v->iotlb's (one load less on the hit path) */
	/* atomic: the guest-RAM region this device's last DMA copied to or
	 * from (regions are fixed with the memory): a hint, checked on use */
	const struct viommu_mem_region *last_region;
	struct viommu_rid rid;
	viommu_attach_notify_fn attach_fn; /* under the topology lock */
	void *attach_ctx;
	struct viommu_dev *next;   /* hash chain */
	struct attach nopasid;
	/* PASIDs: chunks of ATT_CHUNK slots, allocated on first attach, kept
	 * until the device goes (the hit path may be reading them). */
	struct attach **chunks;    /* (VIOMMU_PASID_MAX + 1) / ATT_CHUNK pointers */
};

#define DEV_HASH 256u

/* Exclusion: a radix of bitmaps over page numbers (bits 51:12). */
#define EXCL_TOP_BITS 14u
#define EXCL_MID_BITS 11u
#define EXCL_LEAF_BITS 15u

struct inj_state;
struct ir_state;

#define STAT_SHARD_BITS 6u
#define STAT_SHARDS (1u << STAT_SHARD_BITS)

/* The translations counted in shards: refused before the IOTLB, IOTLB hits,
 * IOTLB misses (the sum is the translations). */
enum { ST_REFUSED, ST_HIT, ST_MISS, ST_COUNT };

struct stat_shard {
	uint64_t owner;         /* atomic: the owning thread's pointer (stat_me), 0 = free */
	uint64_t n[ST_COUNT];   /* atomic; written by the owner only */
} __attribute__((aligned(64)));

struct viommu {
	/* Read by every translation, written rarely: one cache line. */
	struct vcache iotlb;
	uint64_t excl_pages;       /* atomic: pages protected now */
	uint32_t inj_hot;          /* atomic: rules or delayed invalidations exist */
	/* VIOMMU_DEBUG_VERIFY_IOTLB=1 in the environment: every IOTLB hit is
	 * checked against a fresh walk of the tables, and a hit the tables no
	 * longer give is logged (a debugging aid: slow). */
	int debug_verify;
	uint64_t debug_stale;      /* atomic: stale hits seen */

	struct valloc alloc;
	viommu_mem *mem;
	viommu_msi_fn msi;
	void *msi_ctx;
	viommu_fault_fn fault;
	void *fault_ctx;
	viommu_log_fn log;
	void *log_ctx;

	pthread_rwlock_t topo;     /* devices, domains, attachments */
	pthread_mutex_t excl_lock; /* writers of the exclusion vector */

	uint64_t gen;              /* invalidation generation (atomic) */
	uint64_t inval_active;     /* invalidations in progress (atomic) */
	uint64_t fault_seq;        /* atomic */
	uint32_t next_domid;

	struct vcache pwc, ntlb;

	struct viommu_dev *devs[DEV_HASH];
	struct viommu_domain *domains;

	uint64_t **excl_top[1u << EXCL_TOP_BITS]; /* -> mid -> leaf bitmap */

	viommu_resolve_fn resolve; /* under topo; read with the lock or atomically */
	void *resolve_ctx;
	struct inj_state *inj;
	viommu_fault_queue *fq;    /* under fq_lock */
	pthread_mutex_t fq_lock;   /* attach/detach of fq */
	pthread_cond_t fq_cond;    /* fq_users dropped */
	uint32_t fq_users;         /* pushes in progress (under fq_lock) */
	struct ir_state *ir;       /* under ir_lock */
	pthread_rwlock_t ir_lock;
	struct viommu_ir_notifier *ir_notifiers; /* under ir_notify_lock */
	pthread_mutex_t ir_notify_lock;

	/* Translation counters, sharded by thread so that the hit path makes
	 * no locked read-modify-write (see stat_add()). */
	struct stat_shard stat_shards[STAT_SHARDS];
	uint64_t stat_shared[ST_COUNT]; /* atomic: threads without a shard */

	/* Zero-copy transfers (viommu_dma_hold_*) and their drain: a
	 * generation the drain bumps, and per epoch the holds in flight. */
	uint64_t hold_gen;         /* atomic */
	uint32_t hold_epoch;       /* atomic: 0 or 1 */
	uint64_t hold_count[2];    /* atomic */
	uint32_t drain_busy;       /* atomic: one drain at a time */

	/* counters (atomic) */
	uint64_t st_irq_remapped, st_irq_passed, st_irq_faults;
	uint64_t st_walks, st_refs, st_faults, st_invalidations;
};

/*
 * Counting without a locked add and without losing counts: a thread is known
 * by its thread pointer (distinct among live threads; a thread that reuses a
 * dead one's inherits its shards, which no one else writes). Its shard is
 * picked by a hash of that pointer, the same in every instance; stat_off
 * remembers its offset. The first thread to reach a shard of an instance owns
 * it and adds to it with a plain load and store; a thread whose hash picks a
 * shard another owns adds to the shared counters with a locked add.
 */
extern __thread uint32_t stat_off __attribute__((tls_model("initial-exec"))); /* slot * sizeof(shard) */
void stat_add_slow(struct viommu *v, unsigned which, uint64_t n);

static inline uintptr_t stat_me(void)
{
	return (uintptr_t)__builtin_thread_pointer();
}

/* 1 when the calling thread owns its shard and added n there. */
static inline __attribute__((always_inline)) int stat_add_fast(struct viommu *v, unsigned which, uint64_t n)
{
	struct stat_shard *sh = (struct stat_shard *)((char *)v->stat_shards + stat_off);
	if (__builtin_expect(__atomic_load_n(&sh->owner, __ATOMIC_RELAXED) != stat_me(), 0))
		return 0;
	__atomic_store_n(&sh->n[which], __atomic_load_n(&sh->n[which], __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
	return 1;
}

static inline void stat_add(struct viommu *v, unsigned which, uint64_t n)
{
	if (!stat_add_fast(v, which, n))
		stat_add_slow(v, which, n);
}

/* core.c */
void core_log(viommu *v, enum viommu_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int excl_check(viommu *v, uint64_t addr, uint64_t len);
struct attach *dev_attach_slot(viommu_dev *dev, uint32_t pasid);
int domain_pasid_tags(viommu_domain *d, uint32_t pasid, uint32_t *tags, int max);
void core_report_fault(viommu *v, struct viommu_fault_record *rec);

/* The fault queue the instance sends its records to now (NULL: none); for
 * a front-end that installs its own (viommu_set_fault_queue). */
static inline viommu_fault_queue *instance_fq(viommu *v)
{
	pthread_mutex_lock(&v->fq_lock);
	viommu_fault_queue *q = v->fq;
	pthread_mutex_unlock(&v->fq_lock);
	return q;
}

/* The reasons only interrupt remapping gives. */
static inline int fault_reason_is_ir(enum viommu_fault_reason r)
{
	return r == VIOMMU_FAULT_IR_INDEX || r == VIOMMU_FAULT_IR_NOT_PRESENT || r == VIOMMU_FAULT_IR_COMPAT_BLOCKED ||
	       r == VIOMMU_FAULT_IR_SOURCE_ID;
}

/* translate.c */
/*
 * The IOTLB alone, lock-free, counting nothing: nonzero on a hit of an
 * attachment (its word, seed and sizes hint as the caller read them) that
 * grants `need`, with the output address, the bytes to the end of the cached
 * page and (iotlb_fast) the permissions; iotlb_probe returns the permissions
 * | 0x100 | the page shift << 16. 0 means: take the full path. An
 * invalid word (0) or an identity one (ATT_IDENTITY) makes a tag no entry
 * has: a miss.
 */
static inline __attribute__((always_inline)) int iotlb_probe(struct viommu *v, uint64_t word, uint64_t seed,
								uint64_t sizes, uint64_t iova, uint32_t need,
								uint64_t *oaddr, uint64_t *len)
{
	while (sizes) {
		unsigned shift = 12 + (unsigned)__builtin_ctzll(sizes);
		sizes &= sizes - 1;
		uint64_t val, key = iova >> shift;
		if (vcache_lookup_s(&v->iotlb.g, vcache_seed_cls(seed, shift), word | (uint64_t)shift << 1, key, &val)) {
			if (~val & need)
				return 0; /* permissions may have grown: walk */
			/* Entries hold the page's base; shift is at most 62. */
			uint64_t size = 1ull << shift;
			uint64_t off = iova & (size - 1);
			*oaddr = (val & ~0xfffull) + off;
			*len = size - off;
			/* Nonzero: the permissions, and the page size. */
			return (int)(val & 0xf) | 0x100 | (int)shift << 16;
		}
	}
	return 0;
}

static inline __attribute__((always_inline)) int iotlb_fast(struct viommu *v, struct attach *a, uint64_t word,
							     uint64_t iova, uint32_t need, uint64_t *oaddr,
							     uint64_t *len, uint32_t *perms)
{
	int r = iotlb_probe(v, word, __atomic_load_n(&a->hseed, __ATOMIC_RELAXED),
			    __atomic_load_n(&a->sizes, __ATOMIC_ACQUIRE), iova, need, oaddr, len);
	*perms = (uint32_t)r & 0xf;
	return r;
}

/* What a request needs of a translation's permissions: its read, write and
 * execute bits, and user unless it is privileged. A table, indexed by the
 * VIOMMU_ACCESS_* bits (callers have refused any other). */
static inline uint32_t perms_needed(uint32_t access)
{
#define PN_(a) (((a) & 7u) | (((a) & VIOMMU_ACCESS_PRIV) ? 0u : VIOMMU_PERM_USER))
#define PN4_(a) PN_(a), PN_((a) + 1), PN_((a) + 2), PN_((a) + 3)
	static const uint8_t tab[32] = {
		PN4_(0), PN4_(4), PN4_(8), PN4_(12), PN4_(16), PN4_(20), PN4_(24), PN4_(28),
	};
#undef PN4_
#undef PN_
	return tab[access & 31];
}

/* The translation of one request; `rec` filled on -EFAULT but not reported. */
int core_translate(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access,
		   struct viommu_translation *out);

/*
 * The same for a request over [iova, iova + run_len): when the translation
 * comes from a walk of a one-stage table, out->len also covers the pages
 * after iova's in the same last-level table that translate alike (output
 * following on, same permissions), up to the end of the range. One walk and
 * one translation in the counters for the lot; only iova's page is cached.
 * run_len 0, an IOTLB hit, a nested domain, injection rules or exclusion
 * ranges: iova's page only, as core_translate.
 */
int core_translate_run(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access, uint64_t run_len,
		       struct viommu_translation *out);

/* notify.c */
int notify_host_event(viommu_domain *d, const struct viommu_map_event *ev);
int notify_guest_range(viommu_domain *d, uint64_t first, uint64_t last);
void notify_domain_fini(viommu_domain *d);

/* invalidation (translate.c) */
struct inval_req {
	uint32_t domid;      /* 0: every domain, every cache */
	int any_pasid;
	uint32_t pasid;      /* for injection rules */
	uint32_t tagid;      /* cache tag id (see struct attach) */
	int nested;          /* the domain is nested: only such have walk-cache
			      * entries, and their tags have the nested bit */
	int iotlb_ranged;    /* IOTLB: only [first, last] (inputs of the request) */
	int ntlb;            /* nested TLB: 0 untouched, 1 the whole domain, 2 [first, last] */
	uint64_t first, last;
};
/* Apply injection rules, then invalidate (or drop/defer it). */
void inval_request(viommu *v, const struct inval_req *q);
/* Invalidate now. */
void inval_do(viommu *v, const struct inval_req *q);
/* A change of a domain's own table over [first, last]. */
void inval_domain_range(viommu_domain *d, uint64_t first, uint64_t last);

/* inject.c */
struct inject_req {
	int has_rid;
	struct viommu_rid rid;
	int has_pasid;
	uint32_t pasid;
	int has_range;
	uint64_t first, last;
	uint32_t access;
};
int inject_init(viommu *v);
void inject_fini(viommu *v);
int inject_active(viommu *v, enum viommu_inject_action action);
int inject_eval(viommu *v, enum viommu_inject_action action, const struct inject_req *q,
		struct viommu_inject_rule *fired);
int inject_invalidation(viommu *v, const struct inval_req *q);
void inject_run_delayed(viommu *v, int force);
/* A read of a guest-owned 64-bit value, with CORRUPT_READ applied. */
int core_guest_read64(viommu *v, const struct inject_req *who, uint64_t addr, uint64_t *val);

/* irq.c */
int ir_init(viommu *v);
void ir_fini(viommu *v);

#endif
