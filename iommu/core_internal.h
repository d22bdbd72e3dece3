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
/* Caches: set-associative, readers lock-free under a per-set sequence count */

#define VCACHE_WAYS 8u

/*
 * An entry: tag (0 = empty), key (page or prefix number), value (an address
 * with VIOMMU_PERM_* in its low 4 bits). Each word is read and written
 * atomically; a reader that sees the set's sequence change retries.
 */
struct vcache_entry {
	uint64_t tag;
	uint64_t key;
	uint64_t val;
};

struct vcache_set {
	uint32_t seq; /* odd while a writer is in the set */
	uint32_t victim;
	struct vcache_entry way[VCACHE_WAYS];
};

struct vcache {
	struct vcache_set *sets;
	uint32_t nr_sets; /* power of two */
	uint64_t hits, misses, evictions; /* atomic counters */
};

/* tag = domain id << 32 | pasid index << 11 | class << 1 | 1 */
static inline uint64_t vcache_tag(uint32_t domid, uint32_t pasidx, unsigned cls)
{
	return (uint64_t)domid << 32 | (uint64_t)pasidx << 11 | (uint64_t)(cls & 0x3f) << 1 | 1u;
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

static inline uint32_t vcache_set_index(const struct vcache *c, uint64_t tag, uint64_t key)
{
	uint64_t h = (key ^ (tag * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
	h ^= h >> 29;
	return (uint32_t)h & (c->nr_sets - 1);
}

/* 1 and *val on a hit, lock-free (cache.c explains the protocol). Counts
 * hits/misses only when `count` is set. */
static inline int vcache_lookup(struct vcache *c, uint64_t tag, uint64_t key, uint64_t *val, int count)
{
	struct vcache_set *s = &c->sets[vcache_set_index(c, tag, key)];
	int hit;
	uint64_t v = 0;

	for (;;) {
		uint32_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		hit = 0;
		if (seq & 1)
			break; /* a writer is in the set: a miss is always correct */
		for (unsigned i = 0; i < VCACHE_WAYS; i++) {
			if (__atomic_load_n(&s->way[i].key, __ATOMIC_ACQUIRE) == key &&
			    __atomic_load_n(&s->way[i].tag, __ATOMIC_ACQUIRE) == tag) {
				v = __atomic_load_n(&s->way[i].val, __ATOMIC_ACQUIRE);
				hit = 1;
				break;
			}
		}
		if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	if (count)
		__atomic_fetch_add(hit ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
	if (hit)
		*val = v;
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
	int ranged;           /* else only entries overlapping [first, last] */
	uint64_t first, last; /* keys are page numbers of 2^class bytes */
};
void vcache_invalidate(struct vcache *c, const struct vcache_match *m);
/* Drop the entries of key range for one tag (for small ranges). */
void vcache_drop(struct vcache *c, uint64_t tag, uint64_t key);

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
 * load: valid, the domain id and the cache tag id together) and `sizes` (a
 * hint of the page sizes cached: a stale hint only costs a walk).
 *
 * Cache tags are (domain id, tag id). Without nesting the tag id is the PASID
 * index: every device of a domain shares its translations. With nesting each
 * distinct stage 1 (PASID, root, format) of a domain is a context with a tag
 * id of its own, so two devices with the same PASID but different stage-1
 * tables never see each other's translations.
 */
#define ATT_VALID   (1ull << 63)
#define ATT_NESTED  (1ull << 62)
#define ATT_TAG_SHIFT 32
#define ATT_TAG_MASK 0x1fffffull
struct attach {
	uint64_t word;          /* atomic: ATT_* | tag id << 32 | domain id */
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

#define STAT_SHARDS 64u

struct viommu {
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

	struct vcache iotlb, pwc, ntlb;

	struct viommu_dev *devs[DEV_HASH];
	struct viommu_domain *domains;

	uint64_t **excl_top[1u << EXCL_TOP_BITS]; /* -> mid -> leaf bitmap */
	uint64_t excl_pages;       /* atomic: pages protected now */

	viommu_resolve_fn resolve; /* under topo; read with the lock or atomically */
	void *resolve_ctx;
	struct inj_state *inj;
	uint32_t inj_hot;          /* atomic: rules or delayed invalidations exist */
	viommu_fault_queue *fq;    /* under fq_lock */
	pthread_mutex_t fq_lock;   /* attach/detach of fq */
	pthread_cond_t fq_cond;    /* fq_users dropped */
	uint32_t fq_users;         /* pushes in progress (under fq_lock) */
	struct ir_state *ir;       /* under ir_lock */
	pthread_rwlock_t ir_lock;
	struct viommu_ir_notifier *ir_notifiers; /* under ir_notify_lock */
	pthread_mutex_t ir_notify_lock;

	/* Hot counters, sharded by thread so the IOTLB-hit path makes no
	 * locked read-modify-write (see stat_shard()). */
	struct stat_shard {
		uint64_t translations, hits, misses;
		uint64_t pad[5];
	} shards[STAT_SHARDS];

	/* counters (atomic) */
	uint64_t st_irq_remapped, st_irq_passed, st_irq_faults;
	uint64_t st_walks, st_refs, st_faults, st_invalidations;
};

/*
 * The shard of the calling thread: picked from the address of a thread-local
 * byte (different for every live thread). Increments are a relaxed load and
 * store, not a locked add: exact for a thread alone in its shard; two threads
 * that share one may rarely lose a count.
 */
extern __thread char stat_anchor;
static inline struct stat_shard *stat_shard(struct viommu *v)
{
	uintptr_t a = (uintptr_t)&stat_anchor;
	return &v->shards[((a >> 12) ^ (a >> 20)) % STAT_SHARDS];
}

static inline void stat_inc(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* core.c */
void core_log(viommu *v, enum viommu_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int excl_check(viommu *v, uint64_t addr, uint64_t len);
struct attach *dev_attach_slot(viommu_dev *dev, uint32_t pasid);
int domain_pasid_tags(viommu_domain *d, uint32_t pasid, uint32_t *tags, int max);
void core_report_fault(viommu *v, struct viommu_fault_record *rec);

/* translate.c */
/* The translation of one request; `rec` filled on -EFAULT but not reported. */
int core_translate(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access,
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
