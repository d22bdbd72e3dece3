/* SPDX-License-Identifier: MIT */
/*
 * test_inval_stress: the invalidation guarantee under concurrency.
 *
 *   "Once an invalidate call returns, no translation that starts afterwards
 *    can use a stale entry, also with other threads translating at the same
 *    moment." (include/viommu/iommu.h)
 *
 * Each scenario runs one writer thread and TRANSLATORS translator threads on
 * one instance for a bounded time. The writer changes the mapping of NP
 * tracked pages over and over. Version v maps tracked page i to data page
 * slot(i, v % POOL); every data page holds its own stamp from the start (so
 * DMA never reads memory the writer is changing). For each version the writer
 *
 *     writing = v;  change the tables;  invalidate;  published = v;
 *
 * and a translator reads P = published before it starts a request and
 * W = writing after it ended. The request may legitimately see any version in
 * [P, W]; one older than P is a stale translation handed out after the
 * invalidation that removed it had returned: a failure. (When W - P >= POOL
 * the slot no longer names one version and the request is counted unjudged;
 * so is an older version in nested-s2 while a change is in flight, where the
 * guest's half-done change may legitimately meet cached entries of any age.)
 *
 * Scenarios:
 *   paging-guest  one stage, x86-64 4-level table in guest RAM; leaf rewrites
 *                 and swaps of a level-1 table pointer; invalidate_range
 *                 (all PASIDs, one call or one per page), _domain, _all;
 *                 requests without PASID and with PASID 7
 *   paging-host   host-owned table: viommu_domain_unmap (range, per page, or
 *                 a whole 2 MiB region so tables are freed) + map of new pages;
 *                 not-present is allowed only while a change is in flight
 *   nested-s1     stage-1 leaf rewrites and level-1 table pointer swaps, then
 *                 invalidate_range(pasid) / _pasid / _domain / _all; a second
 *                 PASID with a fixed stage 1 must never be disturbed
 *   nested-s2     guest-owned stage 2 (VT-d second level): data pages remapped
 *                 in stage 2, and stage-1 level-1 tables moved in stage 2 (the
 *                 nested TLB's job), then invalidate_range(all_pasids) (one
 *                 call or per page) / _domain / _all; two PASIDs
 *   attach        attach/detach while translating: a nested PASID (re-attached
 *                 with another stage-1 root each time) and a requester without
 *                 PASID (re-attached to another paging domain). After a detach
 *                 returns, a new request must fault BLOCKED; after an attach
 *                 returns, it must use the new attachment
 *
 * Every fault a translator sees must have reached the fault callback exactly
 * once. Each scenario runs twice, with the smallest caches and with big ones.
 * Usage: test_inval_stress [seconds per run] (default 0.5, or
 * VIOMMU_STRESS_SECONDS); VIOMMU_STRESS_ONLY=<scenario> runs just that one.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#define TRANSLATORS 3
/* A run goes on past its time until the writer made this many changes (at
 * most MAX_STRETCH times its time). */
#define MIN_CHANGES 30
#define MAX_STRETCH 8

/* The "big" caches; smaller under ThreadSanitizer, where clearing 2^18
 * entries per invalidation would leave too few changes in a run. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifdef UNDER_TSAN
#define BIG_IOTLB (1u << 15)
#define BIG_WALK_CACHE (1u << 13)
#else
#define BIG_IOTLB (1u << 18)
#define BIG_WALK_CACHE (1u << 16)
#endif

#define PAGE 4096ull
#define RAM_BASE 0x80000000ull
#define RAM_SIZE (16ull << 20)
#define TBL_AREA (8ull << 20)            /* tables from RAM_BASE up */
#define POOL_OFF (8ull << 20)            /* data pages */
#define NP 8u                            /* tracked pages */
#define POOL 64u                         /* data pages per tracked page */
#define WIN_BASE (RAM_BASE + RAM_SIZE)   /* stage-2 inputs beyond RAM */
#define WIN_T (WIN_BASE)                 /* stage-1 level-1 tables (per chain) */
#define WIN_A (WIN_BASE + 0x100000ull)   /* data windows A and B */
#define WIN_B (WIN_BASE + 0x200000ull)
#define WIN_SPAN 0x300000ull
/* Pages 0-3 and 4-7 sit under different level-3, -2 and -1 entries. */
#define IOVA_BASE ((1ull << 38) - 4 * PAGE)
#define NCHAIN 2u

#define STAMP_MAGIC 0x5354414d00000000ull
#define STAMP(i, s) (STAMP_MAGIC | (uint64_t)(i) << 16 | (uint64_t)(s))

#define X86_FLAGS 0x7ull /* P | RW | US */
#define VTD_FLAGS 0x3ull /* R | W */
#define ADDR_MASK 0x000ffffffffff000ull

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define INC(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)

static double seconds_per_scenario = 0.5;
static int total_failures;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* ------------------------------------------------------------------------ */
/* Guest RAM and hand-built tables                                          */

static uint8_t *ram;
static uint64_t bump; /* next free table offset */

static uint64_t *host_of(uint64_t gpa)
{
	if (gpa < RAM_BASE || gpa - RAM_BASE >= RAM_SIZE) {
		fprintf(stderr, "test bug: gpa %#" PRIx64 " outside RAM\n", gpa);
		abort();
	}
	return (uint64_t *)(ram + (gpa - RAM_BASE));
}

static uint64_t slot_addr(unsigned i, unsigned s)
{
	return RAM_BASE + POOL_OFF + ((uint64_t)i * POOL + s) * PAGE;
}

static uint64_t iova_of(unsigned i)
{
	return IOVA_BASE + (uint64_t)i * PAGE;
}

static unsigned chain_of(unsigned i)
{
	return (iova_of(i) >> 21) != (IOVA_BASE >> 21);
}

/* A data page address -> tracked page and slot; -1 if it is none. */
static int decode_slot(uint64_t oaddr, unsigned *i, unsigned *s)
{
	uint64_t base = RAM_BASE + POOL_OFF;
	if (oaddr < base || oaddr - base >= (uint64_t)NP * POOL * PAGE)
		return -1;
	uint64_t n = (oaddr - base) / PAGE;
	*i = (unsigned)(n / POOL);
	*s = (unsigned)(n % POOL);
	return 0;
}

static void ram_reset_tables(void)
{
	memset(ram, 0, TBL_AREA);
	bump = 0;
}

static uint64_t tbl_alloc(void)
{
	if (bump + PAGE > TBL_AREA) {
		fprintf(stderr, "test bug: table area full\n");
		abort();
	}
	uint64_t gpa = RAM_BASE + bump;
	bump += PAGE;
	memset(host_of(gpa), 0, PAGE);
	return gpa;
}

enum fmt { FMT_X86, FMT_VTD };

static uint64_t ent(enum fmt f, uint64_t addr)
{
	return addr | (f == FMT_X86 ? X86_FLAGS : VTD_FLAGS);
}

static unsigned idx_at(uint64_t iova, unsigned level)
{
	return (unsigned)(iova >> (12 + 9 * (level - 1))) & 511;
}

/* The entry of a 4-level table at `level` for iova; tables above it are
 * made as needed. */
static uint64_t *tb_entry(enum fmt f, uint64_t root, uint64_t iova, unsigned level)
{
	uint64_t table = root;
	for (unsigned l = 4; l > level; l--) {
		uint64_t *e = host_of(table) + idx_at(iova, l);
		uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);
		if (!v) {
			v = ent(f, tbl_alloc());
			STORE(e, v);
		}
		table = v & ADDR_MASK;
	}
	return host_of(table) + idx_at(iova, level);
}

static uint64_t *tb_map(enum fmt f, uint64_t root, uint64_t iova, uint64_t out)
{
	uint64_t *e = tb_entry(f, root, iova, 1);
	STORE(e, ent(f, out));
	return e;
}

/* ------------------------------------------------------------------------ */
/* Scenario state                                                           */

struct target {
	viommu_dev *dev;
	uint32_t pasid;
	int fixed_slot; /* >= 0: always maps page i to slot(i, fixed_slot) */
	int toggled;    /* attach scenario: attached/detached by the writer */
};

struct scen;
typedef const char *(*change_fn)(struct scen *s, uint64_t v);

struct scen {
	const char *name;
	const char *caches;          /* "small" or "big" */
	uint32_t iotlb_entries, walk_cache_entries;
	viommu *v;
	struct target tg[4];
	unsigned nr_tg;
	change_fn change;
	int host_owned;   /* not-present allowed while a change is in flight */
	int inflight_mix; /* while a change is in flight, older versions may show */
	int attach_mode;  /* the attach scenario's rules */

	uint64_t published, writing; /* atomic */
	int stop;                    /* atomic */
	const char *method[256];     /* per version % 256, for messages (atomic) */

	/* scenario-specific */
	viommu_domain *dom, *dom2[2];
	uint64_t *leaf[2][NP];        /* [copy][page] leaf entries (stage 1 / one stage) */
	uint64_t *l2e[NCHAIN];        /* level-2 entries pointing at level-1 tables */
	uint64_t l1[NCHAIN][2];       /* level-1 table copies (their addresses) */
	uint64_t *s2g[2][NP];         /* nested-s2: stage-2 leaves of windows A, B */
	uint64_t *s2t[NCHAIN];        /* nested-s2: stage-2 leaves of T */
	unsigned cur[NCHAIN];         /* the copy in use per chain */
	uint64_t s1root[2];           /* attach: stage-1 roots */
	viommu_dev *dev1, *dev2;

	/* counters (atomic) */
	uint64_t n_translate, n_dma, n_judged, n_unjudged, n_inflight, n_faults, fault_cb;
	uint64_t n_blocked_ok;
	int failures;
};

static void fault_cb(void *ctx, const struct viommu_fault_record *rec)
{
	(void)rec;
	struct scen *s = ctx;
	INC(&s->fault_cb);
}

static void failf(struct scen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void failf(struct scen *s, const char *fmt, ...)
{
	int n = __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
	STORE(&s->stop, 1);
	if (n > 5)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("FAIL [%s] %s\n", s->name, buf);
	fflush(stdout);
}

static const char *method_of(struct scen *s, uint64_t v)
{
	const char *m = __atomic_load_n(&s->method[v % 256], __ATOMIC_SEQ_CST);
	return m ? m : "setup";
}

static int create_instance(struct scen *s)
{
	struct viommu_mem_region reg = { .gpa = RAM_BASE, .size = RAM_SIZE, .host = ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.fault = fault_cb,
		.fault_ctx = s,
		.iotlb_entries = s->iotlb_entries,
		.walk_cache_entries = s->walk_cache_entries,
	};
	int ret = viommu_create(&cfg, NULL, &s->v);
	if (ret)
		printf("FAIL [%s] viommu_create: %d\n", s->name, ret);
	return ret;
}

static viommu_dev *make_dev(struct scen *s, uint8_t devfn)
{
	struct viommu_rid rid = { .segment = 0, .bus = 1, .devfn = devfn };
	viommu_dev *d = NULL;
	int ret = viommu_dev_create(s->v, rid, &d);
	if (ret)
		printf("FAIL [%s] viommu_dev_create: %d\n", s->name, ret);
	return d;
}

static struct viommu_pt_config pt_cfg(enum viommu_pt_format f)
{
	struct viommu_pt_config c = { .size = sizeof(c), .format = f, .levels = 4 };
	return c;
}

static int domain_new(struct scen *s, enum viommu_domain_type type, uint32_t flags, enum viommu_pt_format f,
		      viommu_domain **out)
{
	struct viommu_domain_config dc = { .size = sizeof(dc), .type = type, .flags = flags, .pt = pt_cfg(f) };
	int ret = viommu_domain_create(s->v, &dc, out);
	if (ret)
		printf("FAIL [%s] viommu_domain_create: %d\n", s->name, ret);
	return ret;
}

static int attach_s1(viommu_dev *dev, uint32_t pasid, viommu_domain *d, uint64_t root)
{
	struct viommu_stage1 s1 = { .size = sizeof(s1), .pt = pt_cfg(VIOMMU_PT_X86_64), .root = root };
	return viommu_dev_attach(dev, pasid, d, &s1);
}

static int host_map(viommu_domain *d, uint64_t iova, uint64_t pa, uint64_t size)
{
	uint64_t done = 0;
	int ret = viommu_domain_map(d, iova, pa, size, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER,
				    &done);
	if (ret || done != size) {
		printf("FAIL map %#" PRIx64 " -> %#" PRIx64 " +%#" PRIx64 ": %d, done %#" PRIx64 "\n", iova, pa,
		       size, ret, done);
		return ret ? ret : -EIO;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Judging one result                                                       */

/*
 * Slot s was seen by a request that started with P published and ended with
 * W being written. 0: some version in [P, W] maps to s; 1: cannot tell (W - P
 * spans the whole pool); -1: only versions older than P do. *ver: the newest
 * version <= W that maps to s (or UINT64_MAX if none).
 */
static int judge(uint64_t P, uint64_t W, unsigned s, uint64_t *ver)
{
	if (W < P)
		W = P;
	*ver = UINT64_MAX;
	if (W - P >= POOL)
		return 1;
	uint64_t diff = (W % POOL + POOL - s) % POOL;
	if (diff > W)
		return -1;
	*ver = W - diff;
	return *ver >= P ? 0 : -1;
}

/* One request's outcome. */
struct outcome {
	int ret;                       /* 0 or -EFAULT */
	enum viommu_fault_reason why;  /* on -EFAULT */
	int have_slot;                 /* decoded */
	unsigned i, s;                 /* tracked page and slot seen */
	uint64_t oaddr;
	int is_dma;
};

static void check_versioned(struct scen *s, const struct target *t, unsigned page, uint64_t P, uint64_t W,
			    const struct outcome *o)
{
	const char *kind = o->is_dma ? "dma_read" : "translate";
	if (o->ret) {
		if (s->host_owned && o->why == VIOMMU_FAULT_NOT_PRESENT && W > P) {
			INC(&s->n_inflight);
			return;
		}
		failf(s, "%s pasid %#x page %u: fault %s (published %" PRIu64 ", writing %" PRIu64 ")", kind,
		      t->pasid, page, viommu_fault_reason_name(o->why), P, W);
		return;
	}
	if (!o->have_slot || o->i != page) {
		failf(s, "%s pasid %#x page %u: output %#" PRIx64 " is not one of the page's data pages", kind,
		      t->pasid, page, o->oaddr);
		return;
	}
	if (t->fixed_slot >= 0) {
		if (o->s != (unsigned)t->fixed_slot)
			failf(s, "%s pasid %#x page %u (never changed): got slot %u, expected %d", kind, t->pasid,
			      page, o->s, t->fixed_slot);
		else
			INC(&s->n_judged);
		return;
	}
	uint64_t ver;
	int j = judge(P, W, o->s, &ver);
	if (j > 0) {
		INC(&s->n_unjudged);
		return;
	}
	if (j < 0 && s->inflight_mix && W > P) {
		INC(&s->n_unjudged);
		return;
	}
	if (j < 0) {
		if (ver == UINT64_MAX)
			failf(s, "%s pasid %#x page %u: slot %u belongs to no version <= %" PRIu64
			      " (published %" PRIu64 " before the request)", kind, t->pasid, page, o->s, W, P);
		else
			failf(s, "%s pasid %#x page %u: STALE: got the mapping of version %" PRIu64
			      ", but version %" PRIu64 " had been published (its change + %s had returned) "
			      "before the request started; writer at %" PRIu64, kind, t->pasid, page, ver, P,
			      method_of(s, P), W);
		return;
	}
	INC(&s->n_judged);
}

/*
 * The attach scenario. Op k (published/started counters): odd = detach, even
 * = attach with stage-1 root / domain (k / 2) % 2.
 */
static void check_toggled(struct scen *s, const struct target *t, unsigned page, uint64_t P, uint64_t S,
			  const struct outcome *o)
{
	const char *kind = o->is_dma ? "dma_read" : "translate";
	if (S < P)
		S = P;
	if (o->ret) {
		if (o->why != VIOMMU_FAULT_BLOCKED) {
			failf(s, "%s pasid %#x page %u: fault %s, expected none or blocked", kind, t->pasid, page,
			      viommu_fault_reason_name(o->why));
			return;
		}
		if ((P & 1) || S > P) {
			INC(&s->n_blocked_ok);
			return;
		}
		failf(s, "%s pasid %#x page %u: blocked, but attach op %" PRIu64 " had returned before the request "
		      "and no detach had started", kind, t->pasid, page, P);
		return;
	}
	if (!o->have_slot || o->i != page) {
		failf(s, "%s pasid %#x page %u: output %#" PRIx64 " is not one of the page's data pages", kind,
		      t->pasid, page, o->oaddr);
		return;
	}
	int ok = 0;
	for (uint64_t k = P; k <= S && k < P + 4; k++)
		if (!(k & 1) && o->s == (unsigned)((k / 2) % 2))
			ok = 1;
	if (S >= P + 4)
		ok = o->s < 2;
	if (!ok) {
		if ((P & 1) && S == P)
			failf(s, "%s pasid %#x page %u: TRANSLATED (slot %u) after detach op %" PRIu64
			      " had returned, no attach started", kind, t->pasid, page, o->s, P);
		else
			failf(s, "%s pasid %#x page %u: STALE ATTACHMENT: got slot %u, the mapping of an "
			      "attachment that detach op %" PRIu64 " had removed before the request started "
			      "(ops published %" PRIu64 ", started %" PRIu64 "; attach op k maps slot k/2 %% 2)",
			      kind, t->pasid, page, o->s, (P & 1) ? P : P - 1, P, S);
		return;
	}
	INC(&s->n_judged);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */

struct tctx {
	struct scen *s;
	uint64_t seed;
	pthread_t th;
};

static void *translator(void *arg)
{
	struct tctx *tc = arg;
	struct scen *s = tc->s;
	uint64_t r = tc->seed;
	static _Thread_local uint64_t buf[PAGE / 8];

	while (!LOAD(&s->stop)) {
		uint64_t x = rnd(&r);
		unsigned page = (unsigned)(x % NP);
		const struct target *t = &s->tg[(x >> 8) % s->nr_tg];
		unsigned op = (unsigned)(x >> 16) % 8;
		uint64_t off = ((x >> 24) % 512) * 8;
		struct outcome o = { 0 };

		uint64_t P = LOAD(&s->published);
		if (op < 5) {
			struct viommu_translation tr;
			uint64_t iova = iova_of(page) + off;
			o.ret = viommu_translate(t->dev, t->pasid, iova, VIOMMU_ACCESS_READ, &tr);
			if (!o.ret) {
				o.oaddr = tr.oaddr;
				if ((tr.oaddr & 0xfff) != off) {
					failf(s, "translate pasid %#x: offset %#" PRIx64 " came out as %#" PRIx64,
					      t->pasid, off, tr.oaddr);
				}
				o.have_slot = decode_slot(tr.oaddr, &o.i, &o.s) == 0;
			} else if (o.ret == -EFAULT) {
				o.why = tr.fault.reason;
			}
			INC(&s->n_translate);
		} else {
			struct viommu_fault_record fr;
			size_t done = 1234;
			size_t len = op == 7 ? PAGE : 8;
			uint64_t iova = iova_of(page) + (op == 7 ? 0 : off);
			o.is_dma = 1;
			o.ret = viommu_dma_read(t->dev, t->pasid, iova, buf, len, 0, &done, &fr);
			if (!o.ret) {
				if (done != len)
					failf(s, "dma_read ok but done %zu of %zu", done, len);
				uint64_t stamp = buf[0];
				for (size_t k = 1; k < len / 8; k++)
					if (buf[k] != stamp) {
						failf(s, "dma_read of page %u: word %zu is %#" PRIx64 ", word 0 %#" PRIx64,
						      page, k, buf[k], stamp);
						break;
					}
				if ((stamp & 0xffffffff00000000ull) == STAMP_MAGIC && ((stamp >> 16) & 0xffff) < NP &&
				    (stamp & 0xffff) < POOL) {
					o.have_slot = 1;
					o.i = (unsigned)((stamp >> 16) & 0xffff);
					o.s = (unsigned)(stamp & 0xffff);
					o.oaddr = slot_addr(o.i, o.s);
				} else {
					o.oaddr = stamp;
				}
			} else if (o.ret == -EFAULT) {
				if (done != 0)
					failf(s, "dma_read faulted at its first page but done = %zu", done);
				o.why = fr.reason;
			}
			INC(&s->n_dma);
		}
		uint64_t W = LOAD(&s->writing);

		if (o.ret && o.ret != -EFAULT) {
			failf(s, "request returned %d", o.ret);
			continue;
		}
		if (o.ret)
			INC(&s->n_faults);
		if (s->attach_mode && t->toggled)
			check_toggled(s, t, page, P, W, &o);
		else
			check_versioned(s, t, page, P, W, &o);
	}
	return NULL;
}

static void *writer(void *arg)
{
	struct scen *s = arg;
	double start = now();
	double end = start + seconds_per_scenario;
	double hard_end = start + seconds_per_scenario * MAX_STRETCH;
	uint64_t v = 0;
	for (;;) {
		double t = now();
		if (LOAD(&s->stop) || t >= hard_end || (t >= end && v >= MIN_CHANGES))
			break;
		v++;
		STORE(&s->writing, v);
		const char *m = s->change(s, v);
		if (!m) {
			STORE(&s->stop, 1);
			break;
		}
		__atomic_store_n(&s->method[v % 256], m, __ATOMIC_SEQ_CST);
		STORE(&s->published, v);
		/* Let translators run after each change, also on one CPU: a
		 * stale entry left behind is seen before the next change
		 * would wipe it. */
		if (v % 4 == 0) {
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		} else {
			sched_yield();
		}
	}
	STORE(&s->stop, 1);
	return NULL;
}

static int run_threads(struct scen *s)
{
	struct tctx tc[TRANSLATORS];
	pthread_t w;
	int started = 0;
	for (unsigned k = 0; k < TRANSLATORS; k++) {
		tc[k].s = s;
		tc[k].seed = 0x9e3779b97f4a7c15ull * (k + 1) ^ (uint64_t)(uintptr_t)s;
		if (pthread_create(&tc[k].th, NULL, translator, &tc[k])) {
			printf("FAIL [%s] pthread_create\n", s->name);
			STORE(&s->stop, 1);
			break;
		}
		started++;
	}
	int wok = started == TRANSLATORS && !pthread_create(&w, NULL, writer, s);
	if (!wok)
		STORE(&s->stop, 1);
	for (int k = 0; k < started; k++)
		pthread_join(tc[k].th, NULL);
	if (wok)
		pthread_join(w, NULL);
	return wok ? 0 : -1;
}

/* After the threads: every target translates every page to the final
 * version, one thread, no race. */
static void final_sweep(struct scen *s)
{
	uint64_t P = LOAD(&s->published);
	for (unsigned k = 0; k < s->nr_tg; k++) {
		const struct target *t = &s->tg[k];
		if (t->toggled)
			continue;
		for (unsigned i = 0; i < NP; i++) {
			struct viommu_translation tr;
			struct outcome o = { 0 };
			o.ret = viommu_translate(t->dev, t->pasid, iova_of(i), VIOMMU_ACCESS_READ, &tr);
			if (o.ret)
				o.why = tr.fault.reason;
			else {
				o.oaddr = tr.oaddr;
				o.have_slot = decode_slot(tr.oaddr, &o.i, &o.s) == 0;
			}
			if (o.ret == -EFAULT)
				INC(&s->n_faults);
			check_versioned(s, t, i, P, P, &o);
		}
	}
}

static void finish(struct scen *s)
{
	struct viommu_stats st;
	viommu_get_stats(s->v, &st);
	uint64_t seen = LOAD(&s->n_faults), cb = LOAD(&s->fault_cb);
	if (seen != cb)
		failf(s, "requests saw %" PRIu64 " faults, the fault callback got %" PRIu64, seen, cb);
	uint64_t versions = LOAD(&s->published);
	uint64_t judged = LOAD(&s->n_judged);
	if (!s->failures && (versions < MIN_CHANGES || judged < 1000))
		failf(s, "too little progress: %" PRIu64 " changes, %" PRIu64 " judged requests", versions, judged);
	printf("%-13s %-5s %s: changes=%" PRIu64 " translate=%" PRIu64 " dma_read=%" PRIu64 " judged=%" PRIu64
	       " unjudged=%" PRIu64 " inflight_faults=%" PRIu64 " blocked_ok=%" PRIu64 " faults=%" PRIu64
	       " iotlb_hits=%" PRIu64 " iotlb_misses=%" PRIu64 " pwc_hits=%" PRIu64 " ntlb_hits=%" PRIu64
	       " invalidations=%" PRIu64 "\n",
	       s->name, s->caches, s->failures ? "FAIL" : "ok", versions, LOAD(&s->n_translate), LOAD(&s->n_dma), judged,
	       LOAD(&s->n_unjudged), LOAD(&s->n_inflight), LOAD(&s->n_blocked_ok), seen, st.iotlb_hits,
	       st.iotlb_misses, st.pwc_hits, st.ntlb_hits, st.invalidations);
	fflush(stdout);
	total_failures += s->failures;
}

/* ------------------------------------------------------------------------ */
/* Level-1 table copies shared by the guest-table scenarios                 */

/* Build `root` (x86-64) mapping page i -> out[i], plus a second level-1 table
 * per chain; remember the leaves of both copies and the level-2 entries. */
static void build_s1_with_copies(struct scen *s, uint64_t root, const uint64_t *out)
{
	for (unsigned i = 0; i < NP; i++)
		s->leaf[0][i] = tb_map(FMT_X86, root, iova_of(i), out[i]);
	for (unsigned c = 0; c < NCHAIN; c++) {
		unsigned first = c == 0 ? 0 : NP;
		for (unsigned i = 0; i < NP; i++)
			if (chain_of(i) == c && first == NP)
				first = i;
		s->l2e[c] = tb_entry(FMT_X86, root, iova_of(first), 2);
		s->l1[c][0] = LOAD(s->l2e[c]) & ADDR_MASK;
		s->l1[c][1] = tbl_alloc();
		s->cur[c] = 0;
	}
	for (unsigned i = 0; i < NP; i++) {
		s->leaf[1][i] = host_of(s->l1[chain_of(i)][1]) + idx_at(iova_of(i), 1);
		STORE(s->leaf[1][i], ent(FMT_X86, out[i]));
	}
}

/* A change of stage 1 (or the one stage): leaf rewrite, or a fresh level-1
 * table swapped in. */
static void s1_change(struct scen *s, uint64_t v, int swap)
{
	if (!swap) {
		for (unsigned i = 0; i < NP; i++)
			STORE(s->leaf[s->cur[chain_of(i)]][i], ent(FMT_X86, slot_addr(i, (unsigned)(v % POOL))));
		return;
	}
	for (unsigned c = 0; c < NCHAIN; c++) {
		unsigned x = 1 - s->cur[c];
		for (unsigned i = 0; i < NP; i++)
			if (chain_of(i) == c)
				STORE(s->leaf[x][i], ent(FMT_X86, slot_addr(i, (unsigned)(v % POOL))));
		STORE(s->l2e[c], ent(FMT_X86, s->l1[c][x]));
		s->cur[c] = x;
	}
}

static int check_inval(struct scen *s, int ret, const char *what)
{
	if (ret) {
		failf(s, "%s returned %d", what, ret);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* paging-guest                                                             */

static const char *change_paging_guest(struct scen *s, uint64_t v)
{
	int swap = v % 3 == 0;
	unsigned m = (unsigned)(v / 3) % 4;
	s1_change(s, v, swap);
	switch (m) {
	case 0:
		if (check_inval(s, viommu_invalidate_range(s->dom, 0, 1, IOVA_BASE, NP * PAGE), "invalidate_range"))
			return NULL;
		return swap ? "L1 swap + invalidate_range(all_pasids)" : "leaf + invalidate_range(all_pasids)";
	case 1:
		for (unsigned i = 0; i < NP; i++)
			if (check_inval(s, viommu_invalidate_range(s->dom, 0, 1, iova_of(i), PAGE), "invalidate_range"))
				return NULL;
		return swap ? "L1 swap + invalidate_range per page" : "leaf + invalidate_range per page";
	case 2:
		viommu_invalidate_domain(s->dom);
		return swap ? "L1 swap + invalidate_domain" : "leaf + invalidate_domain";
	default:
		viommu_invalidate_all(s->v);
		return swap ? "L1 swap + invalidate_all" : "leaf + invalidate_all";
	}
}

static int setup_paging_guest(struct scen *s)
{
	if (create_instance(s) || domain_new(s, VIOMMU_DOMAIN_PAGING, 0, VIOMMU_PT_X86_64, &s->dom))
		return -1;
	uint64_t root = tbl_alloc(), out[NP];
	for (unsigned i = 0; i < NP; i++)
		out[i] = slot_addr(i, 0);
	build_s1_with_copies(s, root, out);
	s->dev1 = make_dev(s, 0x08);
	if (!s->dev1 || viommu_domain_set_root(s->dom, root) ||
	    viommu_dev_attach(s->dev1, VIOMMU_NO_PASID, s->dom, NULL) || viommu_dev_attach(s->dev1, 7, s->dom, NULL))
		return -1;
	s->tg[0] = (struct target){ .dev = s->dev1, .pasid = VIOMMU_NO_PASID, .fixed_slot = -1 };
	s->tg[1] = (struct target){ .dev = s->dev1, .pasid = 7, .fixed_slot = -1 };
	s->nr_tg = 2;
	s->change = change_paging_guest;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* paging-host                                                              */

static const char *change_paging_host(struct scen *s, uint64_t v)
{
	unsigned m = (unsigned)(v % 3);
	uint64_t done = 0;
	int ret = 0;
	const char *name;
	switch (m) {
	case 0:
		ret = viommu_domain_unmap(s->dom, IOVA_BASE, NP * PAGE, &done);
		ret = ret ? ret : done == NP * PAGE ? 0 : -EIO;
		name = "unmap range + map";
		break;
	case 1:
		for (unsigned i = 0; i < NP && !ret; i++) {
			ret = viommu_domain_unmap(s->dom, iova_of(i), PAGE, &done);
			ret = ret ? ret : done == PAGE ? 0 : -EIO;
		}
		name = "unmap per page + map";
		break;
	default: {
		/* Both 2 MiB regions whole: their level-1 tables are freed. */
		uint64_t first = IOVA_BASE & ~((1ull << 21) - 1);
		uint64_t size = (iova_of(NP - 1) | ((1ull << 21) - 1)) + 1 - first;
		ret = viommu_domain_unmap(s->dom, first, size, &done);
		ret = ret ? ret : done == size ? 0 : -EIO;
		name = "unmap 2 MiB regions (tables freed) + map";
		break;
	}
	}
	if (check_inval(s, ret, "viommu_domain_unmap"))
		return NULL;
	for (unsigned i = 0; i < NP; i++)
		if (host_map(s->dom, iova_of(i), slot_addr(i, (unsigned)(v % POOL)), PAGE)) {
			failf(s, "viommu_domain_map failed");
			return NULL;
		}
	return name;
}

static int setup_paging_host(struct scen *s)
{
	if (create_instance(s) ||
	    domain_new(s, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, VIOMMU_PT_X86_64, &s->dom))
		return -1;
	for (unsigned i = 0; i < NP; i++)
		if (host_map(s->dom, iova_of(i), slot_addr(i, 0), PAGE))
			return -1;
	s->dev1 = make_dev(s, 0x10);
	if (!s->dev1 || viommu_dev_attach(s->dev1, VIOMMU_NO_PASID, s->dom, NULL) ||
	    viommu_dev_attach(s->dev1, 7, s->dom, NULL))
		return -1;
	s->tg[0] = (struct target){ .dev = s->dev1, .pasid = VIOMMU_NO_PASID, .fixed_slot = -1 };
	s->tg[1] = (struct target){ .dev = s->dev1, .pasid = 7, .fixed_slot = -1 };
	s->nr_tg = 2;
	s->host_owned = 1;
	s->change = change_paging_host;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* nested-s1                                                                */

static const char *change_nested_s1(struct scen *s, uint64_t v)
{
	int swap = v % 3 == 0;
	unsigned m = (unsigned)(v / 3) % 5;
	s1_change(s, v, swap);
	switch (m) {
	case 0:
		if (check_inval(s, viommu_invalidate_range(s->dom, 1, 0, IOVA_BASE, NP * PAGE), "invalidate_range"))
			return NULL;
		return swap ? "s1 L1 swap + invalidate_range(pasid 1)" : "s1 leaf + invalidate_range(pasid 1)";
	case 1:
		for (unsigned i = 0; i < NP; i++)
			if (check_inval(s, viommu_invalidate_range(s->dom, 1, 0, iova_of(i), PAGE), "invalidate_range"))
				return NULL;
		return swap ? "s1 L1 swap + invalidate_range(pasid 1) per page"
			    : "s1 leaf + invalidate_range(pasid 1) per page";
	case 2:
		viommu_invalidate_pasid(s->dom, 1);
		return swap ? "s1 L1 swap + invalidate_pasid(1)" : "s1 leaf + invalidate_pasid(1)";
	case 3:
		viommu_invalidate_domain(s->dom);
		return swap ? "s1 L1 swap + invalidate_domain" : "s1 leaf + invalidate_domain";
	default:
		viommu_invalidate_all(s->v);
		return swap ? "s1 L1 swap + invalidate_all" : "s1 leaf + invalidate_all";
	}
}

static int setup_nested_s1(struct scen *s)
{
	if (create_instance(s) ||
	    domain_new(s, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED, VIOMMU_PT_VTD_SL, &s->dom) ||
	    host_map(s->dom, RAM_BASE, RAM_BASE, RAM_SIZE))
		return -1;
	uint64_t root = tbl_alloc(), root2 = tbl_alloc(), out[NP];
	for (unsigned i = 0; i < NP; i++) {
		out[i] = slot_addr(i, 0);
		tb_map(FMT_X86, root2, iova_of(i), slot_addr(i, POOL - 1));
	}
	build_s1_with_copies(s, root, out);
	s->dev1 = make_dev(s, 0x18);
	if (!s->dev1 || attach_s1(s->dev1, 1, s->dom, root) || attach_s1(s->dev1, 2, s->dom, root2))
		return -1;
	s->tg[0] = (struct target){ .dev = s->dev1, .pasid = 1, .fixed_slot = -1 };
	s->tg[1] = (struct target){ .dev = s->dev1, .pasid = 2, .fixed_slot = POOL - 1 };
	s->nr_tg = 2;
	s->change = change_nested_s1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* nested-s2                                                                */

/* Stage-1 page i -> window (A or B) page i; stage 2 maps the window page to
 * the data page, and T (per chain) to the level-1 table copy in use. */
static uint64_t win_page(unsigned copy, unsigned i)
{
	return (copy ? WIN_B : WIN_A) + (uint64_t)i * PAGE;
}

static const char *change_nested_s2(struct scen *s, uint64_t v)
{
	int move = v % 3 == 0;
	unsigned m = (unsigned)(v / 3) % 4;
	unsigned slot = (unsigned)(v % POOL);
	unsigned touched[NCHAIN]; /* window copy whose pages changed, per chain */

	for (unsigned c = 0; c < NCHAIN; c++) {
		unsigned x = move ? 1 - s->cur[c] : s->cur[c];
		touched[c] = x;
		for (unsigned i = 0; i < NP; i++)
			if (chain_of(i) == c)
				STORE(s->s2g[x][i], ent(FMT_VTD, slot_addr(i, slot)));
		if (move) {
			STORE(s->s2t[c], ent(FMT_VTD, s->l1[c][x]));
			s->cur[c] = x;
		}
	}
	switch (m) {
	case 0:
		if (check_inval(s, viommu_invalidate_range(s->dom, 0, 1, WIN_BASE, WIN_SPAN), "invalidate_range"))
			return NULL;
		return move ? "s2 move of s1 L1 tables + invalidate_range(all_pasids)"
			    : "s2 leaf + invalidate_range(all_pasids)";
	case 1:
		for (unsigned i = 0; i < NP; i++)
			if (check_inval(s, viommu_invalidate_range(s->dom, 0, 1, win_page(touched[chain_of(i)], i), PAGE),
					"invalidate_range"))
				return NULL;
		if (move)
			for (unsigned c = 0; c < NCHAIN; c++)
				if (check_inval(s, viommu_invalidate_range(s->dom, 0, 1, WIN_T + c * PAGE, PAGE),
						"invalidate_range"))
					return NULL;
		return move ? "s2 move of s1 L1 tables + invalidate_range(all_pasids) per page"
			    : "s2 leaf + invalidate_range(all_pasids) per page";
	case 2:
		viommu_invalidate_domain(s->dom);
		return move ? "s2 move of s1 L1 tables + invalidate_domain" : "s2 leaf + invalidate_domain";
	default:
		viommu_invalidate_all(s->v);
		return move ? "s2 move of s1 L1 tables + invalidate_all" : "s2 leaf + invalidate_all";
	}
}

static int setup_nested_s2(struct scen *s)
{
	if (create_instance(s) || domain_new(s, VIOMMU_DOMAIN_NESTED, 0, VIOMMU_PT_VTD_SL, &s->dom))
		return -1;
	uint64_t s2root = tbl_alloc();
	/* Stage 2: RAM one to one (4 KiB pages; tables come from the table area
	 * as they are needed, all of them inside RAM). */
	for (uint64_t gpa = RAM_BASE; gpa < RAM_BASE + RAM_SIZE; gpa += PAGE)
		tb_map(FMT_VTD, s2root, gpa, gpa);
	/* Stage 1: page i -> window A, then a level-1 copy per chain for B. */
	uint64_t root = tbl_alloc(), out[NP];
	for (unsigned i = 0; i < NP; i++)
		out[i] = win_page(0, i);
	build_s1_with_copies(s, root, out);
	for (unsigned i = 0; i < NP; i++)
		STORE(s->leaf[1][i], ent(FMT_X86, win_page(1, i)));
	for (unsigned c = 0; c < NCHAIN; c++) {
		/* The level-2 entry now points at T, which stage 2 maps to copy A. */
		s->s2t[c] = tb_map(FMT_VTD, s2root, WIN_T + c * PAGE, s->l1[c][0]);
		STORE(s->l2e[c], ent(FMT_X86, WIN_T + c * PAGE));
	}
	for (unsigned i = 0; i < NP; i++)
		for (unsigned x = 0; x < 2; x++)
			s->s2g[x][i] = tb_map(FMT_VTD, s2root, win_page(x, i), slot_addr(i, 0));
	s->dev1 = make_dev(s, 0x20);
	if (!s->dev1 || viommu_domain_set_root(s->dom, s2root) || attach_s1(s->dev1, 1, s->dom, root) ||
	    attach_s1(s->dev1, 5, s->dom, root))
		return -1;
	s->tg[0] = (struct target){ .dev = s->dev1, .pasid = 1, .fixed_slot = -1 };
	s->tg[1] = (struct target){ .dev = s->dev1, .pasid = 5, .fixed_slot = -1 };
	s->nr_tg = 2;
	/* A move changes the stage 2 of the other window's pages, whose nested
	 * TLB entries may be many versions old: until the invalidation, a walk
	 * may combine the new T with them. */
	s->inflight_mix = 1;
	s->change = change_nested_s2;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* attach                                                                   */

static const char *change_attach(struct scen *s, uint64_t k)
{
	int ret1, ret2;
	if (k & 1) {
		ret1 = viommu_dev_detach(s->dev1, 3);
		ret2 = viommu_dev_detach(s->dev2, VIOMMU_NO_PASID);
		if (ret1 || ret2) {
			failf(s, "detach: %d, %d", ret1, ret2);
			return NULL;
		}
		return "detach";
	}
	unsigned j = (unsigned)(k / 2) % 2;
	ret1 = attach_s1(s->dev1, 3, s->dom, s->s1root[j]);
	ret2 = viommu_dev_attach(s->dev2, VIOMMU_NO_PASID, s->dom2[j], NULL);
	if (ret1 || ret2) {
		failf(s, "attach: %d, %d", ret1, ret2);
		return NULL;
	}
	return j ? "attach (stage-1 root 1, domain 1)" : "attach (stage-1 root 0, domain 0)";
}

static int setup_attach(struct scen *s)
{
	if (create_instance(s) ||
	    domain_new(s, VIOMMU_DOMAIN_NESTED, VIOMMU_DOMAIN_F_HOST_OWNED, VIOMMU_PT_VTD_SL, &s->dom) ||
	    host_map(s->dom, RAM_BASE, RAM_BASE, RAM_SIZE))
		return -1;
	for (unsigned j = 0; j < 2; j++) {
		s->s1root[j] = tbl_alloc();
		if (domain_new(s, VIOMMU_DOMAIN_PAGING, VIOMMU_DOMAIN_F_HOST_OWNED, VIOMMU_PT_X86_64, &s->dom2[j]))
			return -1;
		for (unsigned i = 0; i < NP; i++) {
			tb_map(FMT_X86, s->s1root[j], iova_of(i), slot_addr(i, j));
			if (host_map(s->dom2[j], iova_of(i), slot_addr(i, j), PAGE))
				return -1;
		}
	}
	s->dev1 = make_dev(s, 0x28);
	s->dev2 = make_dev(s, 0x30);
	if (!s->dev1 || !s->dev2 || attach_s1(s->dev1, 3, s->dom, s->s1root[0]) ||
	    attach_s1(s->dev1, 4, s->dom, s->s1root[0]) ||
	    viommu_dev_attach(s->dev2, VIOMMU_NO_PASID, s->dom2[0], NULL))
		return -1;
	s->tg[0] = (struct target){ .dev = s->dev1, .pasid = 3, .fixed_slot = -1, .toggled = 1 };
	s->tg[1] = (struct target){ .dev = s->dev2, .pasid = VIOMMU_NO_PASID, .fixed_slot = -1, .toggled = 1 };
	s->tg[2] = (struct target){ .dev = s->dev1, .pasid = 4, .fixed_slot = 0 };
	s->nr_tg = 3;
	s->attach_mode = 1;
	s->change = change_attach;
	return 0;
}

/* ------------------------------------------------------------------------ */

static void teardown(struct scen *s)
{
	/* Destroying the instance takes every device and domain with it. */
	viommu_destroy(s->v);
	s->v = NULL;
}

/*
 * Cache sizes: "small" (the minimum: 64 entries, so the tracked pages also
 * meet evictions) and "big" (2^18 IOTLB and 2^16 walk-cache entries, 2^15
 * and 2^13 under ThreadSanitizer: an
 * invalidation then takes long enough that translators, even on one CPU, run
 * in the middle of it).
 */
static const char *only; /* VIOMMU_STRESS_ONLY: run just this scenario */

static void run(const char *name, int (*setup)(struct scen *), int big)
{
	if (only && strcmp(only, name))
		return;
	struct scen *s = calloc(1, sizeof(*s));
	if (!s) {
		printf("FAIL [%s] out of memory\n", name);
		total_failures++;
		return;
	}
	s->name = name;
	s->caches = big ? "big" : "small";
	s->iotlb_entries = big ? BIG_IOTLB : 64;
	s->walk_cache_entries = big ? BIG_WALK_CACHE : 64;
	ram_reset_tables();
	if (setup(s)) {
		printf("FAIL [%s] setup\n", name);
		total_failures++;
		teardown(s);
		free(s);
		return;
	}
	if (run_threads(s))
		s->failures++;
	if (!s->failures)
		final_sweep(s);
	finish(s);
	teardown(s);
	free(s);
}

int main(int argc, char **argv)
{
	const char *env = getenv("VIOMMU_STRESS_SECONDS");
	if (argc > 1)
		env = argv[1];
	if (env) {
		double d = strtod(env, NULL);
		if (d > 0 && d < 600)
			seconds_per_scenario = d;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	only = getenv("VIOMMU_STRESS_ONLY");

	ram = aligned_alloc(PAGE, RAM_SIZE);
	if (!ram) {
		printf("FAIL out of memory\n");
		return 1;
	}
	memset(ram, 0, RAM_SIZE);
	for (unsigned i = 0; i < NP; i++)
		for (unsigned sl = 0; sl < POOL; sl++) {
			uint64_t *p = host_of(slot_addr(i, sl));
			for (unsigned k = 0; k < PAGE / 8; k++)
				p[k] = STAMP(i, sl);
		}
	if (chain_of(0) != 0 || chain_of(NP - 1) != 1) {
		printf("test bug: tracked pages do not span two chains\n");
		return 1;
	}

	printf("# %u translator threads + 1 writer, %.2f s per run\n", TRANSLATORS, seconds_per_scenario);
	for (int big = 0; big < 2; big++) {
		run("paging-guest", setup_paging_guest, big);
		run("paging-host", setup_paging_host, big);
		run("nested-s1", setup_nested_s1, big);
		run("nested-s2", setup_nested_s2, big);
		run("attach", setup_attach, big);
	}

	free(ram);
	printf("%s: %d failure(s)\n", total_failures ? "FAILED" : "PASSED", total_failures);
	return total_failures ? 1 : 0;
}
