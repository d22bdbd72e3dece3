/* SPDX-License-Identifier: MIT */
/*
 * test_dma_burst_stress: multi-page viommu_dma_read calls (the burst path of
 * iommu/dma.c) while a writer remaps pages under them.
 *
 * The contract (include/viommu/dma.h, "Ordering with changes made while a DMA
 * call runs", and the invalidation guarantee of include/viommu/iommu.h): every
 * page of a DMA call is looked up on its own, so an unmap or invalidation that
 * returned before the call started is honoured for every page of the call; a
 * page may fault only if it was unmapped at some instant during the call; a
 * fault stops the copy at its first byte, reports it once, and says how many
 * bytes were done.
 *
 * A window of IOVA pages is mapped; each data page behind it holds a stamp,
 * (IOVA page index, generation), repeated over the whole page. "Units" are the
 * mappings: one per 4 KiB page, plus, in the 2m-mix variants, one 2 MiB page in
 * the middle of the window. One writer thread remaps units over and over to
 * fresh data (stamped with the unit's next generation):
 *
 *   host-owned table:  seq odd; viommu_domain_unmap; killed = old gen;
 *                      viommu_domain_map; published = new gen; seq even
 *   guest-owned table: rewrite the leaf (or 2 MiB) entry; invalidate_range;
 *                      killed = old gen; published = new gen  -- or, one time
 *                      in four, clear the entry and invalidate (seq odd), then
 *                      set the new one and invalidate (seq even)
 *
 * single units, runs of 2..16 consecutive 4 KiB units moved together onto
 * consecutive data pages (so the burst path sees long contiguous runs), and,
 * for guest-owned tables, batches of units with one invalidate_range over the
 * whole window. Reader threads read random sub-ranges of 1..48 pages (start
 * and end at any byte, the first and last piece at least 8 bytes) and check,
 * for every page copied:
 *   - all its bytes carry one stamp (no torn page), for that IOVA page;
 *   - its generation > killed as read BEFORE the call (older = STALE: data
 *     through a mapping removed before the call started), and <= the newest
 *     generation the writer had started stamping when the call returned;
 * and for the call:
 *   - 0 with done == len, or -EFAULT with done < len, the fault at a page
 *     start (or the call's first byte), fault.addr = iova + done, reason
 *     NOT_PRESENT, on a page whose seq was odd before the call or changed
 *     during it (else a fault the contract does not allow), and the buffer
 *     past done left untouched;
 *   - every -EFAULT reached the fault callback exactly once.
 * A data page is only restamped for reuse once every reader that was in a call
 * when its mapping was removed has returned (a grace period over the readers'
 * call-start epochs), so a correct library can never show a torn page.
 *
 * Variants: host-4k, host-2m-mix, guest-4k, guest-2m-mix, each with the
 * default IOTLB (4096 entries) and with a 64-entry one (the minimum: the
 * window then does not fit, and evictions happen inside bursts).
 *
 * Usage: test_dma_burst_stress [seconds per variant] (default 2, or
 * VIOMMU_STRESS_SECONDS); VIOMMU_STRESS_ONLY=<variant> runs the variants of
 * that name; VIOMMU_STRESS_SEED=<n> changes the fixed seeds (printed).
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

#define READERS 3
#define MIN_CHANGES 40
#define MAX_STRETCH 8
#define MIN_PAGES_CHECKED 2000

#define PAGE 4096ull
#define HUGE (2ull << 20)
#define RAM_BASE 0x80000000ull          /* 2 MiB aligned */
#define RAM_SIZE (16ull << 20)
#define TBL_AREA (1ull << 20)           /* guest tables from RAM_BASE up */
#define DATA4K_OFF (2ull << 20)         /* 4 KiB data pages: NBANK banks of NU4 */
#define DATA2M_OFF (8ull << 20)         /* 2 MiB data blocks */
#define NU4 64u                         /* 4 KiB units in every variant */
#define NBANK 24u
#define NB2 3u
#define MAXPG 48u                       /* longest read, in pages */
/* The window starts 32 pages below 1 GiB: the 4 KiB pages straddle a 2 MiB
 * (and a 1 GiB) boundary, so they sit under two level-1 tables. In the 2m-mix
 * layout, [1 GiB, 1 GiB + 2 MiB) is one 2 MiB unit between 32 + 32 pages. */
#define WIN ((1ull << 30) - 32 * PAGE)
#define HUGE_IOVA (1ull << 30)
#define NPG_MAX (NU4 + 512u)

#define STAMP_MAGIC 0xb5a7000000000000ull
#define STAMP(p, g) (STAMP_MAGIC | (uint64_t)(p) << 32 | ((uint64_t)(g) & 0xffffffffull))
#define STAMP_PAGE(st) ((unsigned)(((st) >> 32) & 0xffff))
#define STAMP_GEN(st) ((uint64_t)(st) & UINT64_C(0xffffffff))
#define POISON 0xa5

#define X86_P 0x1ull
#define X86_RW 0x2ull
#define X86_US 0x4ull
#define X86_PS 0x80ull /* SDM vol. 3, 4.5: a level-2 entry mapping 2 MiB */
#define X86_FLAGS (X86_P | X86_RW | X86_US)
#define ADDR_MASK 0x000ffffffffff000ull

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define INC(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)
#define ADD(p, n) __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)

#define IDLE UINT64_MAX

static double seconds_per_variant = 2.0;
static uint64_t seed_base = 0x6275727374ull;
static int total_failures;
static uint8_t *ram;

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

static uint8_t *host_of(uint64_t gpa)
{
	if (gpa < RAM_BASE || gpa - RAM_BASE >= RAM_SIZE) {
		fprintf(stderr, "test bug: gpa %#" PRIx64 " outside RAM\n", gpa);
		abort();
	}
	return ram + (gpa - RAM_BASE);
}

static uint64_t slot4k(unsigned k, unsigned bank)
{
	return RAM_BASE + DATA4K_OFF + ((uint64_t)bank * NU4 + k) * PAGE;
}

static uint64_t block2m(unsigned b)
{
	return RAM_BASE + DATA2M_OFF + (uint64_t)b * HUGE;
}

/* ------------------------------------------------------------------------ */
/* Variant state                                                            */

struct unit {
	uint64_t iova, size;
	unsigned first, npages; /* window pages */
	int huge;
	unsigned k;             /* 4 KiB units: index of its data slots */
	uint64_t *entry;        /* guest-owned: its leaf / 2 MiB entry */
	unsigned cur;           /* bank or block in use (writer only) */
	uint64_t gen;           /* current generation (writer only) */
	uint64_t kstep[NBANK];  /* step at which a bank was last unmapped (writer) */
	/* shared with the readers (atomic) */
	uint64_t writing;       /* newest generation stamped so far */
	uint64_t killed;        /* newest generation whose removal returned */
	uint64_t published;     /* newest generation mapped (map/inval returned) */
	uint64_t seq;           /* odd while the unit is (possibly) unmapped */
	const char *last_op;
};

struct var {
	const char *name;
	const char *caches;
	int guest, mix;
	uint32_t iotlb_entries;
	unsigned vidx;
	viommu *v;
	viommu_domain *dom;
	viommu_dev *dev;
	uint64_t root;
	uint64_t bump;

	struct unit u[NU4 + 1];
	unsigned nu;
	unsigned npg;                 /* window pages */
	unsigned page_unit[NPG_MAX];

	uint64_t step;                /* atomic: grace-period epochs */
	uint64_t act[READERS];        /* atomic: epoch of a reader's call, IDLE */
	int stop;                     /* atomic */
	int failures;                 /* atomic */

	/* counters (atomic) */
	uint64_t changes, calls, calls_multi, pages, bytes, faults, fault_cb, raced, huge_mixed, grace_waits;
	uint64_t calls_fault_mid;
};

static void failf(struct var *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void failf(struct var *s, const char *fmt, ...)
{
	int n = __atomic_add_fetch(&s->failures, 1, __ATOMIC_SEQ_CST);
	STORE(&s->stop, 1);
	if (n > 5)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("FAIL [%s %s] %s\n", s->name, s->caches, buf);
	fflush(stdout);
}

static void fault_cb(void *ctx, const struct viommu_fault_record *rec)
{
	(void)rec;
	struct var *s = ctx;
	INC(&s->fault_cb);
}

/* Fill a data page with its stamp. */
static void stamp_page(uint64_t gpa, unsigned page, uint64_t gen)
{
	uint64_t *p = (uint64_t *)host_of(gpa), st = STAMP(page, gen);
	for (unsigned i = 0; i < PAGE / 8; i++)
		p[i] = st;
}

static uint64_t unit_data(const struct unit *u, unsigned bank)
{
	return u->huge ? block2m(bank) : slot4k(u->k, bank);
}

static void stamp_unit(const struct unit *u, unsigned bank, uint64_t gen)
{
	uint64_t base = unit_data(u, bank);
	for (unsigned i = 0; i < u->npages; i++)
		stamp_page(base + i * PAGE, u->first + i, gen);
}

/* ------------------------------------------------------------------------ */
/* Guest tables (x86-64, 4 levels)                                          */

static uint64_t tbl_alloc(struct var *s)
{
	if (s->bump + PAGE > TBL_AREA) {
		fprintf(stderr, "test bug: table area full\n");
		abort();
	}
	uint64_t gpa = RAM_BASE + s->bump;
	s->bump += PAGE;
	memset(host_of(gpa), 0, PAGE);
	return gpa;
}

static unsigned idx_at(uint64_t iova, unsigned level)
{
	return (unsigned)(iova >> (12 + 9 * (level - 1))) & 511;
}

static uint64_t *tb_entry(struct var *s, uint64_t iova, unsigned level)
{
	uint64_t table = s->root;
	for (unsigned l = 4; l > level; l--) {
		uint64_t *e = (uint64_t *)host_of(table) + idx_at(iova, l);
		uint64_t v = LOAD(e);
		if (!v) {
			v = tbl_alloc(s) | X86_FLAGS;
			STORE(e, v);
		}
		table = v & ADDR_MASK;
	}
	return (uint64_t *)host_of(table) + idx_at(iova, level);
}

static uint64_t unit_entry_val(const struct unit *u, unsigned bank)
{
	return unit_data(u, bank) | X86_FLAGS | (u->huge ? X86_PS : 0);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static int host_map(struct var *s, uint64_t iova, uint64_t pa, uint64_t size)
{
	uint64_t done = 0;
	int ret = viommu_domain_map(s->dom, iova, pa, size, VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER,
				    &done);
	if (ret || done != size) {
		failf(s, "viommu_domain_map %#" PRIx64 " -> %#" PRIx64 " +%#" PRIx64 ": %d, done %#" PRIx64, iova, pa,
		      size, ret, done);
		return ret ? ret : -EIO;
	}
	return 0;
}

static int host_unmap(struct var *s, uint64_t iova, uint64_t size)
{
	uint64_t done = 0;
	int ret = viommu_domain_unmap(s->dom, iova, size, &done);
	if (ret || done != size) {
		failf(s, "viommu_domain_unmap %#" PRIx64 " +%#" PRIx64 ": %d, done %#" PRIx64, iova, size, ret, done);
		return ret ? ret : -EIO;
	}
	return 0;
}

static void layout(struct var *s)
{
	unsigned p = 0, k = 0;
	s->nu = 0;
	for (unsigned i = 0; i < NU4 + (s->mix ? 1u : 0u); i++) {
		struct unit *u = &s->u[s->nu++];
		memset(u, 0, sizeof(*u));
		u->huge = s->mix && i == NU4 / 2;
		u->first = p;
		u->npages = u->huge ? 512 : 1;
		u->size = u->huge ? HUGE : PAGE;
		u->iova = WIN + (uint64_t)p * PAGE;
		u->k = u->huge ? 0 : k++;
		for (unsigned j = 0; j < u->npages; j++)
			s->page_unit[p + j] = (unsigned)(u - s->u);
		p += u->npages;
	}
	s->npg = p;
	if (s->mix && s->u[NU4 / 2].iova != HUGE_IOVA) {
		fprintf(stderr, "test bug: 2 MiB unit at %#" PRIx64 "\n", s->u[NU4 / 2].iova);
		abort();
	}
}

static int setup(struct var *s)
{
	struct viommu_mem_region reg = { .gpa = RAM_BASE, .size = RAM_SIZE, .host = ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.fault = fault_cb,
		.fault_ctx = s,
		.iotlb_entries = s->iotlb_entries,
	};
	int ret = viommu_create(&cfg, NULL, &s->v);
	if (ret) {
		failf(s, "viommu_create: %d", ret);
		return -1;
	}
	struct viommu_domain_config dc = {
		.size = sizeof(dc),
		.type = VIOMMU_DOMAIN_PAGING,
		.flags = s->guest ? 0 : VIOMMU_DOMAIN_F_HOST_OWNED,
		.pt = { .size = sizeof(dc.pt), .format = VIOMMU_PT_X86_64, .levels = 4 },
	};
	if ((ret = viommu_domain_create(s->v, &dc, &s->dom))) {
		failf(s, "viommu_domain_create: %d", ret);
		return -1;
	}
	layout(s);
	memset(ram, 0, RAM_SIZE);
	s->bump = 0;
	if (s->guest)
		s->root = tbl_alloc(s);
	for (unsigned i = 0; i < s->nu; i++) {
		struct unit *u = &s->u[i];
		u->gen = 1;
		u->cur = 0;
		stamp_unit(u, 0, 1);
		STORE(&u->writing, 1);
		STORE(&u->published, 1);
		u->last_op = "setup";
		if (s->guest) {
			u->entry = tb_entry(s, u->iova, u->huge ? 2 : 1);
			STORE(u->entry, unit_entry_val(u, 0));
		} else if (host_map(s, u->iova, unit_data(u, 0), u->size)) {
			return -1;
		}
	}
	if (s->guest && (ret = viommu_domain_set_root(s->dom, s->root))) {
		failf(s, "viommu_domain_set_root: %d", ret);
		return -1;
	}
	struct viommu_rid rid = { .segment = 0, .bus = 2, .devfn = 0x08 };
	if ((ret = viommu_dev_create(s->v, rid, &s->dev)) ||
	    (ret = viommu_dev_attach(s->dev, VIOMMU_NO_PASID, s->dom, NULL)) ||
	    (ret = viommu_dev_attach(s->dev, 7, s->dom, NULL))) {
		failf(s, "device setup: %d", ret);
		return -1;
	}
	STORE(&s->step, 1);
	for (unsigned r = 0; r < READERS; r++)
		STORE(&s->act[r], IDLE);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

/*
 * Data that was reachable through a mapping removed at epoch `kstep` may be
 * restamped once no reader is still in a call that started before that: a
 * call that starts later cannot look it up (that is the guarantee under
 * test), so a correct library never copies from it while it changes.
 */
static void wait_grace(struct var *s, uint64_t kstep)
{
	for (int waited = 0;; waited = 1) {
		int busy = 0;
		for (unsigned r = 0; r < READERS; r++)
			if (LOAD(&s->act[r]) < kstep)
				busy = 1;
		if (!busy)
			return;
		if (!waited)
			INC(&s->grace_waits);
		sched_yield();
	}
}

/* The oldest free bank of a run of units (one bank for all of them, not in
 * use by any), its data free to restamp. */
static unsigned pick_bank(struct var *s, struct unit **us, unsigned n)
{
	unsigned nb = us[0]->huge ? NB2 : NBANK, best = nb;
	uint64_t best_age = UINT64_MAX;
	for (unsigned b = 0; b < nb; b++) {
		uint64_t age = 0;
		int used = 0;
		for (unsigned i = 0; i < n; i++) {
			if (us[i]->cur == b)
				used = 1;
			if (us[i]->kstep[b] > age)
				age = us[i]->kstep[b];
		}
		if (!used && age < best_age) {
			best_age = age;
			best = b;
		}
	}
	if (best == nb) {
		fprintf(stderr, "test bug: no free bank\n");
		abort();
	}
	wait_grace(s, best_age);
	return best;
}

/* The removal of the units' current mappings has returned. */
static void killed(struct var *s, struct unit **us, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		STORE(&us[i]->killed, us[i]->gen);
	uint64_t k = __atomic_add_fetch(&s->step, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < n; i++)
		us[i]->kstep[us[i]->cur] = k;
}

static void published(struct unit **us, unsigned n, unsigned bank, const char *op)
{
	for (unsigned i = 0; i < n; i++) {
		us[i]->gen++;
		us[i]->cur = bank;
		STORE(&us[i]->last_op, op);
		STORE(&us[i]->published, us[i]->gen);
	}
}

static int inval(struct var *s, uint64_t iova, uint64_t size)
{
	int ret = viommu_invalidate_range(s->dom, 0, 1, iova, size);
	if (ret)
		failf(s, "viommu_invalidate_range %#" PRIx64 " +%#" PRIx64 ": %d", iova, size, ret);
	return ret;
}

/* Remap n units that are consecutive in IOVA (and, for n > 1, 4 KiB ones:
 * their new data pages are consecutive too) onto a fresh bank. */
static int remap_run(struct var *s, struct unit **us, unsigned n, int clear, uint64_t *x)
{
	unsigned b = pick_bank(s, us, n);
	for (unsigned i = 0; i < n; i++) {
		STORE(&us[i]->writing, us[i]->gen + 1);
		stamp_unit(us[i], b, us[i]->gen + 1);
	}
	uint64_t iova = us[0]->iova, size = us[n - 1]->iova + us[n - 1]->size - iova;
	const char *op;
	if (!s->guest) {
		for (unsigned i = 0; i < n; i++)
			INC(&us[i]->seq);
		/* One unmap for the run, or one per unit. */
		int per = n > 1 && (rnd(x) & 1);
		if (per) {
			for (unsigned i = 0; i < n; i++)
				if (host_unmap(s, us[i]->iova, us[i]->size))
					return -1;
		} else if (host_unmap(s, iova, size)) {
			return -1;
		}
		killed(s, us, n);
		/* Sometimes leave the hole open a while: readers then meet it
		 * inside their bursts, not only at a call's first page. */
		if (!(rnd(x) & 3))
			sched_yield();
		if (host_map(s, iova, unit_data(us[0], b), size))
			return -1;
		op = n == 1 ? (us[0]->huge ? "host unmap+map 2M" : "host unmap+map")
			    : per ? "host run: unmap per page, one map" : "host run: one unmap, one map";
		published(us, n, b, op);
		for (unsigned i = 0; i < n; i++)
			INC(&us[i]->seq);
		return 0;
	}
	if (clear) {
		for (unsigned i = 0; i < n; i++) {
			INC(&us[i]->seq);
			STORE(us[i]->entry, 0);
		}
		if (inval(s, iova, size))
			return -1;
		killed(s, us, n);
		if (!(rnd(x) & 3))
			sched_yield();
		for (unsigned i = 0; i < n; i++)
			STORE(us[i]->entry, unit_entry_val(us[i], b));
		if (inval(s, iova, size))
			return -1;
		published(us, n, b, "guest clear+inval, set+inval");
		for (unsigned i = 0; i < n; i++)
			INC(&us[i]->seq);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		STORE(us[i]->entry, unit_entry_val(us[i], b));
	/* One invalidation for the run, or one per unit. */
	int per = n > 1 && (rnd(x) & 1);
	if (per) {
		for (unsigned i = 0; i < n; i++)
			if (inval(s, us[i]->iova, us[i]->size))
				return -1;
	} else if (inval(s, iova, size)) {
		return -1;
	}
	killed(s, us, n);
	op = n == 1 ? (us[0]->huge ? "guest rewrite 2M entry+inval" : "guest rewrite+inval")
		    : per ? "guest run rewrite+inval per page" : "guest run rewrite+one inval";
	published(us, n, b, op);
	return 0;
}

/* Guest-owned: several scattered units rewritten, one invalidation of the
 * whole window. */
static int remap_batch(struct var *s, uint64_t *x)
{
	struct unit *us[8];
	unsigned n = 2 + (unsigned)(rnd(x) % 7), bank[8];
	for (unsigned i = 0; i < n; i++) {
		struct unit *u;
		int dup;
		do {
			u = &s->u[rnd(x) % s->nu];
			dup = 0;
			for (unsigned j = 0; j < i; j++)
				dup |= us[j] == u;
		} while (dup || (u->huge && (rnd(x) & 3)));
		us[i] = u;
		bank[i] = pick_bank(s, &us[i], 1);
		STORE(&u->writing, u->gen + 1);
		stamp_unit(u, bank[i], u->gen + 1);
	}
	for (unsigned i = 0; i < n; i++)
		STORE(us[i]->entry, unit_entry_val(us[i], bank[i]));
	uint64_t end = WIN + (uint64_t)s->npg * PAGE;
	if (inval(s, WIN, end - WIN))
		return -1;
	killed(s, us, n);
	for (unsigned i = 0; i < n; i++)
		published(&us[i], 1, bank[i], "guest batch rewrite+inval of the window");
	return 0;
}

static int writer_op(struct var *s, uint64_t *x)
{
	uint64_t r = rnd(x);
	unsigned kind = (unsigned)(r % 100);
	struct unit *us[16];
	int clear = s->guest && ((r >> 8) & 3) == 0;
	if (s->guest && kind >= 85)
		return remap_batch(s, x);
	if (kind < 60) {
		struct unit *u = &s->u[(r >> 16) % s->nu];
		/* The 2 MiB unit costs 512 pages of stamping: less often. */
		if (u->huge && ((r >> 40) & 3))
			u = &s->u[0];
		us[0] = u;
		return remap_run(s, us, 1, clear, x);
	}
	/* A run of 2..16 consecutive 4 KiB units on one side. */
	unsigned n = 2 + (unsigned)((r >> 16) % 15);
	unsigned side4 = s->mix ? NU4 / 2 : NU4;
	unsigned first = (unsigned)((r >> 24) % (side4 - n + 1));
	if (s->mix && ((r >> 40) & 1))
		first += NU4 / 2 + 1; /* the units after the 2 MiB one */
	for (unsigned i = 0; i < n; i++)
		us[i] = &s->u[first + i];
	return remap_run(s, us, n, clear, x);
}

static void *writer(void *arg)
{
	struct var *s = arg;
	uint64_t x = seed_base * 0x9e3779b97f4a7c15ull + s->vidx * 7919 + 1;
	double start = now(), end = start + seconds_per_variant, hard_end = start + seconds_per_variant * MAX_STRETCH;
	uint64_t n = 0;
	for (;;) {
		double t = now();
		if (LOAD(&s->stop) || t >= hard_end || (t >= end && n >= MIN_CHANGES))
			break;
		if (writer_op(s, &x))
			break;
		n++;
		INC(&s->changes);
		/* Let readers run between changes, also on one CPU. */
		if (n % 4 == 0) {
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		} else {
			sched_yield();
		}
	}
	STORE(&s->stop, 1);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */

struct rctx {
	struct var *s;
	unsigned r;
	pthread_t th;
};

struct snap {
	uint64_t killed, published, seq0, seq1, writing;
};

/* The first byte where [buf, buf + n) differs from the page image at
 * offset o, or n. */
static size_t first_diff(const uint8_t *buf, const uint8_t *img, size_t o, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != img[o + i])
			return i;
	return n;
}

static void *reader(void *arg)
{
	struct rctx *rc = arg;
	struct var *s = rc->s;
	uint64_t x = seed_base * 0xbf58476d1ce4e5b9ull + s->vidx * 104729 + rc->r * 1299709 + 1;
	uint8_t *buf = malloc(MAXPG * PAGE);
	uint64_t *img = malloc(PAGE);
	struct snap *sn = malloc(MAXPG * sizeof(*sn));
	if (!buf || !img || !sn) {
		failf(s, "reader: out of memory");
		goto out;
	}
	while (!LOAD(&s->stop)) {
		uint64_t r = rnd(&x);
		unsigned npg = 1 + (unsigned)(r % MAXPG), sp;
		if (s->mix && ((r >> 8) & 1)) {
			/* Across a 4 KiB / 2 MiB boundary. */
			unsigned bnd = ((r >> 9) & 1) ? NU4 / 2 : NU4 / 2 + 512;
			unsigned back = npg > 1 ? 1 + (unsigned)((r >> 10) % (npg - 1)) : 0;
			sp = bnd > back ? bnd - back : 0;
			if (sp + npg > s->npg)
				sp = s->npg - npg;
		} else {
			sp = (unsigned)((r >> 10) % (s->npg - npg + 1));
		}
		uint64_t r2 = rnd(&x);
		size_t off0 = (r2 & 1) ? 0 : (size_t)((r2 >> 1) % (PAGE - 8 + 1));
		size_t endo = (r2 & 2) ? PAGE : 8 + (size_t)((r2 >> 20) % (PAGE - 8 + 1));
		if (npg == 1 && endo < off0 + 8)
			endo = off0 + 8;
		size_t len = (size_t)(npg - 1) * PAGE + endo - off0;
		uint64_t iova = WIN + (uint64_t)sp * PAGE + off0;
		uint32_t pasid = (r2 >> 40) & 1 ? 7 : VIOMMU_NO_PASID;

		/* The epoch first: the writer restamps nothing this call might
		 * legitimately still copy from. */
		STORE(&s->act[rc->r], LOAD(&s->step));
		for (unsigned j = 0; j < npg; j++) {
			struct unit *u = &s->u[s->page_unit[sp + j]];
			sn[j].seq0 = LOAD(&u->seq);
			sn[j].killed = LOAD(&u->killed);
			sn[j].published = LOAD(&u->published);
		}
		memset(buf, POISON, len);
		struct viommu_fault_record fr;
		memset(&fr, 0, sizeof(fr));
		size_t done = (size_t)-1;
		int ret = viommu_dma_read(s->dev, pasid, iova, buf, len, 0, &done, &fr);
		for (unsigned j = 0; j < npg; j++) {
			struct unit *u = &s->u[s->page_unit[sp + j]];
			sn[j].writing = LOAD(&u->writing);
			sn[j].seq1 = LOAD(&u->seq);
		}
		uint64_t killed_after[MAXPG];
		for (unsigned j = 0; j < npg; j++)
			killed_after[j] = LOAD(&s->u[s->page_unit[sp + j]].killed);
		STORE(&s->act[rc->r], IDLE);

		INC(&s->calls);
		if (npg > 1)
			INC(&s->calls_multi);
#define CALL_FMT "dma_read(pasid %#x, iova %#" PRIx64 " = window page %u + %#zx, len %#zx = %u pages): "
#define CALL_ARGS pasid, iova, sp, off0, len, npg
		if (ret != 0 && ret != -EFAULT) {
			failf(s, CALL_FMT "returned %d", CALL_ARGS, ret);
			continue;
		}
		if (ret == 0 && done != len) {
			failf(s, CALL_FMT "returned 0 with done %#zx", CALL_ARGS, done);
			continue;
		}
		if (ret == -EFAULT) {
			INC(&s->faults);
			if (done >= len) {
				failf(s, CALL_FMT "-EFAULT with done %#zx", CALL_ARGS, done);
				continue;
			}
			unsigned jf = (unsigned)((off0 + done) / PAGE);
			struct snap *f = &sn[jf];
			struct unit *uf = &s->u[s->page_unit[sp + jf]];
			if (done && (off0 + done) % PAGE) {
				failf(s, CALL_FMT "-EFAULT with done %#zx, inside window page %u", CALL_ARGS, done,
				      sp + jf);
				continue;
			}
			if (fr.addr != iova + done || fr.reason != VIOMMU_FAULT_NOT_PRESENT) {
				failf(s, CALL_FMT "fault record addr %#" PRIx64 " reason %s, expected addr %#" PRIx64
				      " NOT_PRESENT", CALL_ARGS, fr.addr, viommu_fault_reason_name(fr.reason),
				      iova + done);
				continue;
			}
			if (!(f->seq0 & 1) && f->seq1 == f->seq0) {
				failf(s, CALL_FMT "FAULT NOT ALLOWED at window page %u (done %#zx): its unit (iova %#" PRIx64
				      ") stayed mapped during the whole call (seq %" PRIu64 " before and after, generation "
				      "%" PRIu64 " published, last op %s)", CALL_ARGS, sp + jf, done, uf->iova, f->seq0,
				      f->published, LOAD(&uf->last_op));
				continue;
			}
			if (jf)
				INC(&s->calls_fault_mid);
			for (size_t i = done; i < len; i++)
				if (buf[i] != POISON) {
					failf(s, CALL_FMT "-EFAULT with done %#zx, but buffer byte %#zx past it was written",
					      CALL_ARGS, done, i);
					break;
				}
		}
		/* Every page copied. */
		uint64_t huge_gen = 0;
		for (unsigned j = 0; j < npg; j++) {
			size_t o0 = j ? 0 : off0, o1 = j + 1 < npg ? PAGE : endo;
			size_t b0 = (size_t)j * PAGE + o0 - off0;
			if (b0 >= done)
				break;
			size_t n = o1 - o0;
			if (b0 + n > done) {
				failf(s, CALL_FMT "done %#zx ends inside window page %u", CALL_ARGS, done, sp + j);
				break;
			}
			/* The stamp from the first 8 bytes (the page repeats it every 8). */
			uint64_t st = 0;
			for (unsigned t = 0; t < 8; t++)
				((uint8_t *)&st)[(o0 + t) % 8] = buf[b0 + t];
			for (unsigned i = 0; i < PAGE / 8; i++)
				img[i] = st;
			size_t d = first_diff(buf + b0, (const uint8_t *)img, o0, n);
			struct unit *u = &s->u[s->page_unit[sp + j]];
			if (d != n) {
				uint64_t other = 0;
				size_t a = (o0 + d) & ~7ull;
				if (a + 8 <= o1 && a >= o0)
					memcpy(&other, buf + b0 + (a - o0), 8);
				failf(s, CALL_FMT "TORN window page %u: bytes from %#zx on carry stamp %#" PRIx64
				      " (page %u gen %" PRIu64 "), the page starts with %#" PRIx64 " (page %u gen %" PRIu64 ")",
				      CALL_ARGS, sp + j, o0 + d, other, STAMP_PAGE(other), STAMP_GEN(other), st,
				      STAMP_PAGE(st), STAMP_GEN(st));
				break;
			}
			if ((st & 0xffff000000000000ull) != STAMP_MAGIC || STAMP_PAGE(st) != sp + j) {
				failf(s, CALL_FMT "window page %u holds %#" PRIx64 ", not a stamp of that page", CALL_ARGS,
				      sp + j, st);
				break;
			}
			uint64_t g = STAMP_GEN(st);
			if (g <= sn[j].killed) {
				failf(s, CALL_FMT "STALE window page %u (unit iova %#" PRIx64 "): read generation %" PRIu64
				      ", but the removal of generation %" PRIu64 " had returned before the call "
				      "(published before: %" PRIu64 ", last op %s)", CALL_ARGS, sp + j, u->iova, g,
				      sn[j].killed, sn[j].published, LOAD(&u->last_op));
				break;
			}
			if (g > sn[j].writing) {
				failf(s, CALL_FMT "window page %u: generation %" PRIu64 " from the future (newest "
				      "stamped: %" PRIu64 ")", CALL_ARGS, sp + j, g, sn[j].writing);
				break;
			}
			if (g <= killed_after[j])
				INC(&s->raced); /* an old mapping used while its removal ran */
			if (u->huge) {
				if (huge_gen && huge_gen != g)
					INC(&s->huge_mixed);
				huge_gen = g;
			}
			INC(&s->pages);
			ADD(&s->bytes, n);
		}
	}
out:
	free(buf);
	free(img);
	free(sn);
	return NULL;
}

/* ------------------------------------------------------------------------ */

static int run_threads(struct var *s)
{
	struct rctx rc[READERS];
	pthread_t w;
	unsigned started = 0;
	for (unsigned r = 0; r < READERS; r++) {
		rc[r] = (struct rctx){ .s = s, .r = r };
		if (pthread_create(&rc[r].th, NULL, reader, &rc[r])) {
			failf(s, "pthread_create");
			break;
		}
		started++;
	}
	int wok = started == READERS && !pthread_create(&w, NULL, writer, s);
	if (!wok)
		STORE(&s->stop, 1);
	for (unsigned r = 0; r < started; r++)
		pthread_join(rc[r].th, NULL);
	if (wok)
		pthread_join(w, NULL);
	return wok ? 0 : -1;
}

/* One thread, nothing changing: the whole window reads back as published. */
static void final_sweep(struct var *s)
{
	uint8_t *buf = malloc(MAXPG * PAGE);
	if (!buf) {
		failf(s, "out of memory");
		return;
	}
	for (unsigned sp = 0; sp < s->npg && !s->failures; sp += MAXPG) {
		unsigned npg = s->npg - sp < MAXPG ? s->npg - sp : MAXPG;
		size_t done = 0;
		struct viommu_fault_record fr;
		int ret = viommu_dma_read(s->dev, VIOMMU_NO_PASID, WIN + (uint64_t)sp * PAGE, buf, npg * PAGE, 0, &done,
					  &fr);
		if (ret) {
			INC(&s->faults);
			failf(s, "final sweep: dma_read of window pages %u..%u: %d (done %#zx)", sp, sp + npg - 1, ret,
			      done);
			break;
		}
		for (unsigned j = 0; j < npg; j++) {
			struct unit *u = &s->u[s->page_unit[sp + j]];
			uint64_t want = STAMP(sp + j, u->gen), *w = (uint64_t *)(buf + (size_t)j * PAGE);
			for (unsigned i = 0; i < PAGE / 8; i++)
				if (w[i] != want) {
					failf(s, "final sweep: window page %u word %u is %#" PRIx64 ", expected %#" PRIx64,
					      sp + j, i, w[i], want);
					j = npg;
					break;
				}
		}
	}
	free(buf);
}

static void finish(struct var *s)
{
	struct viommu_stats st;
	viommu_get_stats(s->v, &st);
	uint64_t faults = LOAD(&s->faults), cb = LOAD(&s->fault_cb);
	if (faults != cb)
		failf(s, "calls returned -EFAULT %" PRIu64 " times, the fault callback ran %" PRIu64 " times", faults,
		      cb);
	uint64_t changes = LOAD(&s->changes), pages = LOAD(&s->pages);
	if (!s->failures && (changes < MIN_CHANGES || pages < MIN_PAGES_CHECKED))
		failf(s, "too little progress: %" PRIu64 " changes, %" PRIu64 " pages checked", changes, pages);
	printf("%-12s %-7s %s: changes=%" PRIu64 " calls=%" PRIu64 " multi_page=%" PRIu64 " pages_checked=%" PRIu64
	       " MiB=%.1f faults=%" PRIu64 " (mid-call %" PRIu64 ", callback %" PRIu64 ") raced_old=%" PRIu64
	       " huge_mixed=%" PRIu64 " grace_waits=%" PRIu64 " iotlb_hits=%" PRIu64 " misses=%" PRIu64
	       " evictions=%" PRIu64 " invalidations=%" PRIu64 "\n",
	       s->name, s->caches, s->failures ? "FAIL" : "ok", changes, LOAD(&s->calls), LOAD(&s->calls_multi), pages,
	       (double)LOAD(&s->bytes) / (1 << 20), faults, LOAD(&s->calls_fault_mid), cb, LOAD(&s->raced),
	       LOAD(&s->huge_mixed), LOAD(&s->grace_waits), st.iotlb_hits, st.iotlb_misses, st.iotlb_evictions,
	       st.invalidations);
	fflush(stdout);
	total_failures += s->failures;
}

static const char *only;

static void run(const char *name, int guest, int mix, int small, unsigned vidx)
{
	if (only && strcmp(only, name))
		return;
	struct var *s = calloc(1, sizeof(*s));
	if (!s) {
		printf("FAIL [%s] out of memory\n", name);
		total_failures++;
		return;
	}
	s->name = name;
	s->guest = guest;
	s->mix = mix;
	s->caches = small ? "iotlb64" : "default";
	s->iotlb_entries = small ? 64 : 0;
	s->vidx = vidx;
	if (!setup(s) && !run_threads(s) && !s->failures)
		final_sweep(s);
	if (s->v)
		finish(s);
	else
		total_failures += s->failures ? s->failures : 1;
	viommu_destroy(s->v);
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
			seconds_per_variant = d;
	}
	const char *seed = getenv("VIOMMU_STRESS_SEED");
	if (seed)
		seed_base = strtoull(seed, NULL, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	only = getenv("VIOMMU_STRESS_ONLY");

	ram = aligned_alloc(HUGE, RAM_SIZE);
	if (!ram) {
		printf("FAIL out of memory\n");
		return 1;
	}
	printf("# %d reader threads + 1 writer, %.2f s per variant, seed %#" PRIx64 "\n", READERS,
	       seconds_per_variant, seed_base);
	unsigned vidx = 0;
	for (int small = 0; small < 2; small++) {
		run("host-4k", 0, 0, small, vidx++);
		run("host-2m-mix", 0, 1, small, vidx++);
		run("guest-4k", 1, 0, small, vidx++);
		run("guest-2m-mix", 1, 1, small, vidx++);
	}
	free(ram);
	printf("%s: %d failure(s)\n", total_failures ? "FAILED" : "PASSED", total_failures);
	return total_failures ? 1 : 0;
}
