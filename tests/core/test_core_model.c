/* SPDX-License-Identifier: MIT */
/*
 * Property test of the IOMMU core against a small reference model.
 *
 * Random (seeded) sequences of: host-owned paging domains of random formats
 * (and a few identity and blocked ones), devices and PASIDs attached and
 * detached, map/unmap of random ranges (4 KiB to 2 MiB, aligned to invite
 * large pages or not) with random permissions, exclusion ranges and bitmaps,
 * invalidations of every kind, domain and device teardown, and above all
 * translations and DMA (copies, scatter-gather, map_ptr).
 *
 * The model is a plain map (domain, IOVA page) -> (output page, protection)
 * plus a set of excluded output pages. Every translation must be what the
 * model says: the right output, length and permissions, or the right fault
 * reason, reported once. Host-owned tables invalidate on unmap by themselves,
 * so no stale translation is ever allowed here. DMA must move exactly the
 * bytes the model allows (guest RAM is compared with a shadow copy, read
 * buffers past `done` must be untouched) and touch no address outside guest
 * RAM except where the model predicts DMA_TARGET (the memory callbacks
 * count every such access). A map notifier on every paging domain keeps its
 * own picture of the mappings, which must match the model too.
 *
 * Seed: argv[1], else VIOMMU_TEST_SEED, else from the clock; it is printed.
 * Size: at least 1,000,000 viommu_translate calls, times VIOMMU_MODEL_SCALE
 * percent (default 100; a sanitizer build defaults lower, see CMakeLists).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#include "core_check.h"

#ifndef CORE_MODEL_DEFAULT_SCALE
#define CORE_MODEL_DEFAULT_SCALE 100
#endif

#define PG ((uint64_t)4096)
#define RAM_SIZE ((uint64_t)32 << 20)         /* guest RAM: [0, 32 MiB) */
#define PA_SPACE ((uint64_t)128 << 20)         /* outputs are drawn below this */
#define PA_PAGES (PA_SPACE / PG)
#define NDOM 8
#define NWIN 4
#define NDEV 4
#define NPAS 6
#define RECENT 32

#define R VIOMMU_ACCESS_READ
#define W VIOMMU_ACCESS_WRITE
#define X VIOMMU_ACCESS_EXEC
#define P VIOMMU_ACCESS_PRIV
#define PR VIOMMU_PERM_READ
#define PW VIOMMU_PERM_WRITE
#define PX VIOMMU_PERM_EXEC
#define PU VIOMMU_PERM_USER

static const uint32_t pasids[NPAS] = { VIOMMU_NO_PASID, 0, 1, 63, 64, VIOMMU_PASID_MAX };

/* ------------------------------------------------------------------------ */
/* Random numbers                                                           */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static int chance(unsigned percent)
{
	return below(100) < percent;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                */

/* A page entry: output page << 5 | prot << 1 | 1 (0: not mapped). */
#define ENT(ppage, prot) (((uint32_t)(ppage) << 5) | ((prot) << 1) | 1u)
#define ENT_PPAGE(e) ((e) >> 5)
#define ENT_PROT(e) (((e) >> 1) & 0xfu)

struct mdom {
	viommu_domain *d;
	enum viommu_domain_type type;
	struct viommu_pt_config pt;
	uint64_t win_base[NWIN];   /* IOVA of each window */
	uint64_t wpages;           /* pages per window */
	uint32_t *pg[NWIN];        /* the model */
	uint32_t *seen[NWIN];      /* what the notifier heard */
	unsigned attached;
	viommu_notifier *n;
	unsigned bad_events;
	struct { unsigned w; uint64_t first, n; } recent[RECENT];
	unsigned nrecent;
};

struct memcb {
	uint64_t calls;
	uint64_t last_addr;
	int allowed;          /* a callback access may happen now */
	uint64_t allowed_addr;
	uint64_t bad;
};

struct model {
	viommu *v;
	uint8_t *ram, *shadow;
	struct mdom dom[NDOM];
	viommu_dev *dev[NDEV];
	int att[NDEV][NPAS];       /* domain slot, or -1 */
	uint8_t excl[PA_PAGES / 8];
	uint64_t nexcl;
	uint64_t faults_expected;
	uint64_t faults_seen, bad_seq;
	struct memcb cb;
	uint64_t translations;
	uint64_t step;
	/* statistics of what was exercised */
	uint64_t n_ok, n_fault[VIOMMU_FAULT_REASON_COUNT], n_dma, n_dma_bytes, n_maps, n_unmaps, n_eexist,
		n_ptr, n_sg;
};

static struct model M;

static int excluded(uint64_t addr)
{
	uint64_t p = addr / PG;
	return p < PA_PAGES && ((M.excl[p / 8] >> (p % 8)) & 1);
}

static void excl_set(uint64_t p, int on)
{
	if (p >= PA_PAGES)
		return;
	uint8_t bit = (uint8_t)(1u << (p % 8));
	if (on && !(M.excl[p / 8] & bit)) {
		M.excl[p / 8] |= bit;
		M.nexcl++;
	} else if (!on && (M.excl[p / 8] & bit)) {
		M.excl[p / 8] &= (uint8_t)~bit;
		M.nexcl--;
	}
}

static uint32_t fmt_granted(const struct viommu_pt_config *c, uint32_t prot)
{
	uint32_t p = 0;
	switch (c->format) {
	case VIOMMU_PT_X86_64:
		p = PR | (prot & PW) | (prot & PU);
		if (!(c->flags & VIOMMU_PT_F_NXE) || (prot & PX))
			p |= PX;
		break;
	case VIOMMU_PT_VTD_SL:
		p = PU | (prot & (PR | PW));
		if (c->flags & VIOMMU_PT_F_VTD_EXEC ? (prot & PX) : (prot & PR))
			p |= PX;
		break;
	case VIOMMU_PT_AMD_V1:
		p = PU | (prot & (PR | PW));
		if (prot & PR)
			p |= PX;
		break;
	}
	return p;
}

static int prot_valid(const struct viommu_pt_config *c, uint32_t prot)
{
	if (prot & ~VIOMMU_PERM_ALL)
		return 0;
	if (c->format == VIOMMU_PT_X86_64)
		return !!(prot & PR);
	return !!(prot & (PR | PW));
}

static uint32_t needed(uint32_t acc)
{
	uint32_t n = acc & (R | W | X);
	if (!(acc & P))
		n |= PU;
	return n;
}

static int input_ok(const struct mdom *m, uint64_t iova)
{
	unsigned ias = m->pt.ias;
	if (m->pt.format == VIOMMU_PT_X86_64) {
		uint64_t top = iova >> (ias - 1);
		return top == 0 || top == (~0ull >> (ias - 1));
	}
	return ias >= 64 || !(iova >> ias);
}

/* The window and page index of an IOVA, or -1. */
static int win_of(const struct mdom *m, uint64_t iova, uint64_t *idx)
{
	for (int w = 0; w < NWIN; w++) {
		uint64_t off = iova - m->win_base[w];
		if (off < m->wpages * PG) {
			*idx = off / PG;
			return w;
		}
	}
	return -1;
}

struct expect {
	int ok;
	enum viommu_fault_reason why;
	uint64_t oaddr;
	uint32_t perms;
	int slot;          /* domain slot, -1 if none */
};

/* What the translation of (dev, pasid index or raw pasid) must give. */
static void predict(int dv, uint32_t pasid, int pi, uint64_t iova, uint32_t acc, struct expect *e)
{
	memset(e, 0, sizeof(*e));
	e->slot = -1;
	if (pasid != VIOMMU_NO_PASID && pasid > VIOMMU_PASID_MAX) {
		e->why = VIOMMU_FAULT_BAD_REQUEST;
		return;
	}
	int s = pi >= 0 ? M.att[dv][pi] : -1;
	if (s < 0) {
		e->why = VIOMMU_FAULT_BLOCKED;
		return;
	}
	e->slot = s;
	const struct mdom *m = &M.dom[s];
	switch (m->type) {
	case VIOMMU_DOMAIN_BLOCKED:
		e->why = VIOMMU_FAULT_BLOCKED;
		return;
	case VIOMMU_DOMAIN_IDENTITY:
		e->oaddr = iova;
		e->perms = VIOMMU_PERM_ALL;
		break;
	default: {
		if (!input_ok(m, iova)) {
			e->why = VIOMMU_FAULT_ADDR_WIDTH;
			return;
		}
		uint64_t idx;
		int w = win_of(m, iova, &idx);
		uint32_t ent = w >= 0 ? m->pg[w][idx] : 0;
		if (!ent) {
			e->why = VIOMMU_FAULT_NOT_PRESENT;
			return;
		}
		e->perms = fmt_granted(&m->pt, ENT_PROT(ent));
		if ((e->perms & needed(acc)) != needed(acc)) {
			e->why = VIOMMU_FAULT_PERMISSION;
			return;
		}
		e->oaddr = (uint64_t)ENT_PPAGE(ent) * PG + (iova % PG);
		break;
	}
	}
	if (excluded(e->oaddr)) {
		e->why = VIOMMU_FAULT_EXCLUDED;
		return;
	}
	e->ok = 1;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                */

static void fault_cb(void *ctx, const struct viommu_fault_record *rec)
{
	(void)ctx;
	if (rec->seq != M.faults_seen + 1)
		M.bad_seq++;
	M.faults_seen++;
}

static int mem_cb(uint64_t gpa)
{
	M.cb.calls++;
	M.cb.last_addr = gpa;
	if (!M.cb.allowed || gpa != M.cb.allowed_addr)
		M.cb.bad++;
	M.cb.allowed = 0; /* once */
	return -EFAULT;
}

static int mem_read_cb(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return mem_cb(gpa);
}

static int mem_write_cb(void *ctx, uint64_t gpa, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return mem_cb(gpa);
}

/* The notifier's own picture of a domain. */
static int notify_cb(void *ctx, viommu_domain *d, const struct viommu_map_event *ev)
{
	struct mdom *m = ctx;
	if (d != m->d) {
		m->bad_events++;
		return 0;
	}
	for (uint64_t off = 0; off < ev->size; off += PG) {
		uint64_t idx;
		int w = win_of(m, ev->iova + off, &idx);
		if (w < 0) {
			m->bad_events++;
			continue;
		}
		if (ev->type == VIOMMU_EVENT_MAP)
			m->seen[w][idx] = ENT((ev->paddr + off) / PG, ev->perms & 0xf);
		else
			m->seen[w][idx] = 0;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Domains                                                                  */

static void random_pt(struct viommu_pt_config *c)
{
	memset(c, 0, sizeof(*c));
	c->size = sizeof(*c);
	switch (below(3)) {
	case 0:
		c->format = VIOMMU_PT_X86_64;
		c->levels = 4 + (uint32_t)below(2);
		c->flags = (chance(50) ? VIOMMU_PT_F_NXE : 0) | (chance(25) ? VIOMMU_PT_F_AD : 0);
		break;
	case 1:
		c->format = VIOMMU_PT_VTD_SL;
		c->levels = 3 + (uint32_t)below(3);
		c->flags = (chance(50) ? VIOMMU_PT_F_VTD_EXEC : 0) | (chance(25) ? VIOMMU_PT_F_AD : 0);
		break;
	default:
		c->format = VIOMMU_PT_AMD_V1;
		c->levels = 1 + (uint32_t)below(6);
		c->flags = chance(25) ? VIOMMU_PT_F_AD : 0;
		break;
	}
	switch (below(3)) {
	case 0:
		c->pgsize_bitmap = 0;
		break;
	case 1:
		c->pgsize_bitmap = VIOMMU_PGSIZE_4K;
		break;
	default:
		c->pgsize_bitmap = VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M;
		break;
	}
}

static void dom_create(int s)
{
	struct mdom *m = &M.dom[s];
	struct viommu_domain_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	unsigned r = (unsigned)below(10);
	c.type = r == 0 ? VIOMMU_DOMAIN_IDENTITY : r == 1 ? VIOMMU_DOMAIN_BLOCKED : VIOMMU_DOMAIN_PAGING;
	if (c.type == VIOMMU_DOMAIN_PAGING) {
		c.flags = VIOMMU_DOMAIN_F_HOST_OWNED;
		random_pt(&c.pt);
	}
	core_case("step %" PRIu64 ": domain create slot %d", M.step, s);
	m->d = NULL;
	if (!CHECK_EQ(viommu_domain_create(M.v, &c, &m->d), 0))
		exit(2);
	m->type = c.type;
	m->pt = c.pt;
	m->attached = 0;
	m->nrecent = 0;
	m->n = NULL;
	if (c.type != VIOMMU_DOMAIN_PAGING)
		return;
	/* Windows: the bottom, the top, two in between (x86-64: the top is
	 * the upper canonical half). */
	unsigned ias = c.pt.ias;
	uint64_t space_pages = ias >= 64 ? (1ull << 52) : (1ull << (ias - 12));
	m->wpages = space_pages / 4 < 65536 ? space_pages / 4 : 65536;
	uint64_t nslots = space_pages / m->wpages;
	uint64_t slots[NWIN] = { 0, nslots - 1, 0, 0 };
	for (int w = 2; w < NWIN; w++) {
		uint64_t cand;
		int dup;
		do {
			cand = below(nslots);
			dup = 0;
			for (int k = 0; k < w; k++)
				dup |= slots[k] == cand;
		} while (dup);
		slots[w] = cand;
	}
	for (int w = 0; w < NWIN; w++) {
		uint64_t base = slots[w] * m->wpages * PG;
		if (c.pt.format == VIOMMU_PT_X86_64 && (base >> (ias - 1)))
			base |= ~0ull << (ias - 1);
		m->win_base[w] = base;
		memset(m->pg[w], 0, 65536 * sizeof(uint32_t));
		memset(m->seen[w], 0, 65536 * sizeof(uint32_t));
	}
	CHECK_EQ(viommu_notifier_add(m->d, notify_cb, m, 1, &m->n), 0);
}

static void dom_destroy(int s)
{
	struct mdom *m = &M.dom[s];
	core_case("step %" PRIu64 ": domain destroy slot %d", M.step, s);
	int r = viommu_domain_destroy(m->d);
	if (m->attached) {
		CHECK_EQ(r, -EBUSY);
		return;
	}
	CHECK_EQ(r, 0);
	m->d = NULL;
	dom_create(s);
}

/* Compare the notifier's picture with the model. */
static void check_seen(void)
{
	for (int s = 0; s < NDOM; s++) {
		struct mdom *m = &M.dom[s];
		if (m->type != VIOMMU_DOMAIN_PAGING)
			continue;
		core_case("step %" PRIu64 ": notifier picture of slot %d", M.step, s);
		CHECK_EQ(m->bad_events, 0);
		for (int w = 0; w < NWIN; w++)
			if (memcmp(m->pg[w], m->seen[w], m->wpages * sizeof(uint32_t))) {
				for (uint64_t i = 0; i < m->wpages; i++)
					if (m->pg[w][i] != m->seen[w][i]) {
						CHECK_EQ(m->seen[w][i], m->pg[w][i]);
						fprintf(stderr, "    iova %#" PRIx64 "\n", m->win_base[w] + i * PG);
						break;
					}
			}
	}
}

/* ------------------------------------------------------------------------ */
/* Picking addresses                                                        */

static void recent_add(struct mdom *m, unsigned w, uint64_t first, uint64_t n)
{
	unsigned i = m->nrecent < RECENT ? m->nrecent++ : (unsigned)below(RECENT);
	m->recent[i].w = w;
	m->recent[i].first = first;
	m->recent[i].n = n;
}

/* An IOVA worth translating in domain slot s. */
static uint64_t pick_iova(int s)
{
	struct mdom *m = s >= 0 ? &M.dom[s] : NULL;
	uint64_t off = chance(50) ? below(PG) : below(PG / 64) * 64;
	if (!m || m->type != VIOMMU_DOMAIN_PAGING) {
		if (chance(90))
			return below(PA_SPACE + PA_SPACE / 8);
		return rnd();
	}
	unsigned r = (unsigned)below(100);
	if (r < 75 && m->nrecent) {
		unsigned i = (unsigned)below(m->nrecent);
		uint64_t pg = m->recent[i].first + below(m->recent[i].n + 1); /* one past too */
		if (pg >= m->wpages)
			pg = m->wpages - 1;
		return m->win_base[m->recent[i].w] + pg * PG + off;
	}
	if (r < 90) {
		unsigned w = (unsigned)below(NWIN);
		return m->win_base[w] + below(m->wpages) * PG + off;
	}
	if (r < 95)
		return m->win_base[below(NWIN)] - PG + off; /* just below a window */
	return rnd();
}

static uint32_t pick_access(void)
{
	static const uint32_t a[] = { R, R, R, W, W, R | W, X, R | X, 0 };
	uint32_t acc = a[below(sizeof(a) / sizeof(a[0]))];
	if (chance(50))
		acc |= P;
	return acc;
}

/* A (device, PASID index) pair; mostly one that is attached. */
static void pick_requester(int *dv, int *pi)
{
	for (int tries = 0; tries < 8; tries++) {
		*dv = (int)below(NDEV);
		*pi = (int)below(NPAS);
		if (M.att[*dv][*pi] >= 0 || chance(5))
			return;
	}
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */

static void op_translate(void)
{
	int dv, pi;
	pick_requester(&dv, &pi);
	uint32_t pasid = pasids[pi];
	if (chance(1)) {
		pasid = VIOMMU_PASID_MAX + 1 + (uint32_t)below(0xfff00000u);
		if (pasid == VIOMMU_NO_PASID)
			pasid--;
		pi = -1;
	}
	int s = pi >= 0 ? M.att[dv][pi] : -1;
	/* A few pages, each translated several times: the IOTLB gets hits. */
	uint64_t hot[8];
	unsigned nhot = 1 + (unsigned)below(8);
	for (unsigned k = 0; k < nhot; k++)
		hot[k] = pick_iova(s) & ~(PG - 1);
	unsigned n = 8 + (unsigned)below(40);
	for (unsigned k = 0; k < n; k++) {
		uint64_t iova = hot[below(nhot)] | (chance(50) ? below(PG) : below(PG / 8) * 8);
		uint32_t acc = pick_access();
		struct expect e;
		struct viommu_translation t;
		predict(dv, pasid, pi, iova, acc, &e);
		uint64_t f0 = M.faults_seen;
		int r = viommu_translate(M.dev[dv], pasid, iova, acc, &t);
		M.translations++;
		core_case("step %" PRIu64 ": translate dev %d pasid %#x iova %#" PRIx64 " access %#x (slot %d)", M.step,
			  dv, pasid, iova, acc, e.slot);
		if (!e.ok) {
			M.faults_expected++;
			M.n_fault[e.why]++;
			if (!CHECK_EQ(r, -EFAULT)) {
				if (!r)
					fprintf(stderr, "    expected %s, translated to %#" PRIx64 "\n",
						viommu_fault_reason_name(e.why), t.oaddr);
				continue;
			}
			if (!CHECK_EQ(t.fault.reason, e.why))
				fprintf(stderr, "    expected %s, got %s\n", viommu_fault_reason_name(e.why),
					viommu_fault_reason_name(t.fault.reason));
			CHECK_EQ(t.fault.addr, iova);
			CHECK_EQ(t.fault.pasid, pasid);
			CHECK_EQ(t.fault.access, acc);
			CHECK_EQ(t.fault.stage, 0);
			CHECK_EQ(t.fault.seq, M.faults_seen);
			CHECK_EQ(M.faults_seen, f0 + 1);
			continue;
		}
		M.n_ok++;
		if (!CHECK_EQ(r, 0)) {
			fprintf(stderr, "    expected %#" PRIx64 ", got fault %s\n", e.oaddr,
				viommu_fault_reason_name(t.fault.reason));
			continue;
		}
		CHECK_EQ(M.faults_seen, f0);
		CHECK_EQ(t.oaddr, e.oaddr);
		const struct mdom *m = &M.dom[e.slot];
		if (m->type == VIOMMU_DOMAIN_PAGING && (m->pt.flags & VIOMMU_PT_F_AD))
			CHECK((t.perms & e.perms) == t.perms && (t.perms & needed(acc)) == needed(acc));
		else
			CHECK_EQ(t.perms, e.perms);
		CHECK(t.len >= 1);
		if (M.nexcl)
			CHECK(t.len <= PG - (iova % PG));
		if (m->type != VIOMMU_DOMAIN_PAGING)
			continue;
		/* The length: the same mapping, contiguous, to its end. */
		CHECK(t.len <= (2ull << 20));
		CHECK_EQ((iova + t.len) % PG, 0);
		uint64_t npg = (iova % PG + t.len + PG - 1) / PG;
		uint64_t step = (M.translations % 16) ? (npg > 1 ? npg - 1 : 1) : 1;
		uint64_t idx0 = 0;
		int w = win_of(m, iova, &idx0);
		for (uint64_t i = step; i < npg; i += step) {
			uint64_t idx = idx0 + i;
			uint32_t ent = idx < m->wpages ? m->pg[w][idx] : 0;
			if (!CHECK(ent && ENT_PPAGE(ent) == ENT_PPAGE(m->pg[w][idx0]) + i &&
				   ENT_PROT(ent) == ENT_PROT(m->pg[w][idx0]))) {
				fprintf(stderr, "    len %#" PRIx64 " reaches page %" PRIu64 " which maps elsewhere\n", t.len, i);
				break;
			}
		}
	}
}

/* One DMA copy (or one segment of a list), predicted page by page.
 * Returns the bytes the model says are done; *why the fault (or NONE). */
static uint64_t dma_predict(int dv, int pi, uint64_t iova, uint64_t len, uint32_t acc, int is_write,
			    const uint8_t *src, uint8_t *dst, enum viommu_fault_reason *why, uint64_t *fault_oaddr)
{
	uint64_t pos = 0;
	*why = VIOMMU_FAULT_NONE;
	while (pos < len) {
		uint64_t cur = iova + pos;
		struct expect e;
		predict(dv, pasids[pi], pi, cur, acc, &e);
		if (!e.ok) {
			*why = e.why;
			return pos;
		}
		uint64_t chunk = PG - (cur % PG);
		if (chunk > len - pos)
			chunk = len - pos;
		if (e.oaddr >= RAM_SIZE || e.oaddr + chunk > RAM_SIZE) {
			*why = VIOMMU_FAULT_DMA_TARGET;
			*fault_oaddr = e.oaddr;
			return pos;
		}
		if (is_write)
			memcpy(M.shadow + e.oaddr, src + pos, chunk);
		else
			memcpy(dst + pos, M.shadow + e.oaddr, chunk);
		pos += chunk;
	}
	return pos;
}

static uint8_t dbuf[4 * 0x4000 + 64], ebuf[4 * 0x4000 + 64];

/* Identity outputs are one page of any length: a copy across the end of
 * guest RAM inside one translation is test_core's "one 2 MiB page across
 * the end of guest memory" case; here copies stay clear of it. */
static int crosses_ram_end(int s, uint64_t iova, uint64_t len)
{
	return s >= 0 && M.dom[s].type == VIOMMU_DOMAIN_IDENTITY && iova < RAM_SIZE && iova + len > RAM_SIZE;
}

static void op_dma(void)
{
	int dv, pi;
	pick_requester(&dv, &pi);
	int s = M.att[dv][pi];
	int is_write = chance(50);
	uint32_t attrs = (chance(50) ? VIOMMU_DMA_PRIV : 0) | (!is_write && chance(10) ? VIOMMU_DMA_EXEC : 0);
	uint32_t acc = (is_write ? W : R) | (attrs & VIOMMU_DMA_PRIV) | (attrs & VIOMMU_DMA_EXEC ? X : 0);
	int sg = chance(25);
	struct viommu_dma_seg segs[4];
	unsigned nseg = sg ? 1 + (unsigned)below(4) : 1;
	uint64_t total = 0;
	for (unsigned i = 0; i < nseg; i++) {
		do {
			segs[i].iova = pick_iova(s);
			segs[i].len = chance(20) ? PG : 1 + below(sg ? 0x4000 : 3 * PG);
			if (chance(20))
				segs[i].iova &= ~(PG - 1);
		} while (segs[i].iova + segs[i].len < segs[i].iova || crosses_ram_end(s, segs[i].iova, segs[i].len));
		total += segs[i].len;
	}
	for (uint64_t i = 0; i < total; i++)
		dbuf[i] = (uint8_t)rnd();
	memset(dbuf + total, 0x5c, 64);
	if (!is_write)
		memset(dbuf, 0x5c, total + 64);
	memset(ebuf, 0x5c, total + 64);

	/* The model. */
	enum viommu_fault_reason why = VIOMMU_FAULT_NONE;
	uint64_t done_exp = 0, foaddr = 0;
	for (unsigned i = 0; i < nseg && why == VIOMMU_FAULT_NONE; i++)
		done_exp += dma_predict(dv, pi, segs[i].iova, segs[i].len, acc, is_write, dbuf + done_exp,
					ebuf + done_exp, &why, &foaddr);
	M.cb.allowed = why == VIOMMU_FAULT_DMA_TARGET;
	M.cb.allowed_addr = foaddr;

	size_t done = 12345;
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	uint64_t f0 = M.faults_seen;
	uint64_t t0 = M.translations;
	int r;
	core_case("step %" PRIu64 ": dma %s%s dev %d pasid %#x iova %#" PRIx64 " len %#" PRIx64 " attrs %#x slot %d",
		  M.step, sg ? "sg " : "", is_write ? "write" : "read", dv, pasids[pi], segs[0].iova, segs[0].len,
		  attrs, s);
	if (sg)
		r = is_write ? viommu_dma_write_sg(M.dev[dv], pasids[pi], segs, nseg, dbuf, attrs, &done, &f)
			     : viommu_dma_read_sg(M.dev[dv], pasids[pi], segs, nseg, dbuf, attrs, &done, &f);
	else
		r = is_write ? viommu_dma_write(M.dev[dv], pasids[pi], segs[0].iova, dbuf, segs[0].len, attrs, &done, &f)
			     : viommu_dma_read(M.dev[dv], pasids[pi], segs[0].iova, dbuf, segs[0].len, attrs, &done, &f);
	(void)t0;
	M.n_dma++;
	M.n_sg += sg;
	M.n_dma_bytes += done_exp;
	M.cb.allowed = 0;
	if (why != VIOMMU_FAULT_NONE) {
		M.faults_expected++;
		M.n_fault[why]++;
		CHECK_EQ(r, -EFAULT);
		if (!CHECK_EQ(f.reason, why))
			fprintf(stderr, "    expected %s, got %s\n", viommu_fault_reason_name(why),
				viommu_fault_reason_name(f.reason));
		CHECK_EQ(M.faults_seen, f0 + 1);
		CHECK_EQ(f.seq, M.faults_seen);
	} else {
		CHECK_EQ(r, 0);
		CHECK_EQ(M.faults_seen, f0);
	}
	CHECK_EQ(done, done_exp);
	if (!is_write) {
		/* What was read is what the model holds; nothing past done. */
		uint64_t n = done < done_exp ? done : done_exp;
		if (!CHECK(!memcmp(dbuf, ebuf, n)))
			fprintf(stderr, "    read data differ from the model\n");
		if (!CHECK(!memcmp(dbuf + done_exp, ebuf + done_exp, total + 64 - done_exp)))
			fprintf(stderr, "    bytes past done were written\n");
	} else if (done != done_exp || r != (why == VIOMMU_FAULT_NONE ? 0 : -EFAULT)) {
		/* Resync the shadow so one failure does not cascade. */
		memcpy(M.shadow, M.ram, RAM_SIZE);
	}
}

static void op_map_ptr(void)
{
	int dv, pi;
	pick_requester(&dv, &pi);
	int s = M.att[dv][pi];
	uint64_t iova = pick_iova(s);
	uint64_t len = 1 + below(chance(50) ? 5 * PG : 64);
	if (iova + len < iova)
		return;
	static const uint32_t accs[] = { R, W, R | W };
	uint32_t acc = accs[below(3)] | (chance(50) ? P : 0);

	struct expect e;
	predict(dv, pasids[pi], pi, iova, acc, &e);
	int exp_ret = 0;
	enum viommu_fault_reason why = VIOMMU_FAULT_NONE;
	uint64_t exp_len = 0;
	if (!e.ok) {
		exp_ret = -EFAULT;
		why = e.why;
	} else if (e.oaddr >= RAM_SIZE) {
		exp_ret = -EFAULT;
		why = VIOMMU_FAULT_DMA_TARGET;
	} else {
		uint64_t start = e.oaddr;
		uint64_t got = PG - iova % PG;
		if (s >= 0 && M.dom[s].type == VIOMMU_DOMAIN_IDENTITY && !M.nexcl)
			got = len;
		if (got > len)
			got = len;
		while (got < len) {
			struct expect n;
			predict(dv, pasids[pi], pi, iova + got, acc, &n);
			if (!n.ok || n.oaddr != start + got)
				break;
			got += PG < len - got ? PG : len - got;
		}
		if (start + got > RAM_SIZE)
			got = RAM_SIZE - start;
		exp_len = got;
	}
	void *host = NULL;
	uint64_t ml = 0;
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	uint64_t f0 = M.faults_seen;
	core_case("step %" PRIu64 ": map_ptr dev %d pasid %#x iova %#" PRIx64 " len %#" PRIx64 " access %#x slot %d",
		  M.step, dv, pasids[pi], iova, len, acc, s);
	int r = viommu_dma_map_ptr(M.dev[dv], pasids[pi], iova, len, acc, &host, &ml, &f);
	M.n_ptr++;
	CHECK_EQ(r, exp_ret);
	if (exp_ret) {
		M.faults_expected++;
		M.n_fault[why]++;
		CHECK_EQ(f.reason, why);
		CHECK_EQ(M.faults_seen, f0 + 1);
		CHECK(host == NULL);
		return;
	}
	CHECK_EQ(M.faults_seen, f0);
	CHECK(host == M.ram + e.oaddr);
	CHECK_EQ(ml, exp_len);
}

static void pick_range(struct mdom *m, unsigned *w, uint64_t *first, uint64_t *n)
{
	*w = (unsigned)below(NWIN);
	unsigned r = (unsigned)below(10);
	*n = r < 3 ? 1 : r < 6 ? 2 + below(15) : r < 9 ? 17 + below(496) : 512;
	if (*n > m->wpages)
		*n = m->wpages;
	uint64_t room = m->wpages - *n + 1;
	*first = below(room);
	if (chance(40) && m->wpages >= 512)
		*first &= ~511ull;
}

static void op_map(void)
{
	int s = (int)below(NDOM);
	struct mdom *m = &M.dom[s];
	if (m->type != VIOMMU_DOMAIN_PAGING)
		return;
	unsigned w;
	uint64_t first, n;
	pick_range(m, &w, &first, &n);
	uint64_t size = n * PG;
	uint64_t pa;
	do {
		pa = below(PA_PAGES - n + 1) * PG;
		if (chance(50))
			pa &= ~((2ull << 20) - 1);
		if (chance(75) && n * PG <= RAM_SIZE)
			pa %= RAM_SIZE - size + PG, pa &= ~(PG - 1);
	} while (pa + size > PA_SPACE);
	uint32_t prot = (uint32_t)below(16);
	if (chance(95))
		while (!prot_valid(&m->pt, prot))
			prot = (uint32_t)below(16);
	if (chance(2))
		prot |= 1u << 6; /* unknown */
	uint64_t iova = m->win_base[w] + first * PG;

	/* The first page of the range already mapped. */
	uint64_t conflict = n;
	for (uint64_t i = 0; i < n; i++)
		if (m->pg[w][first + i]) {
			conflict = i;
			break;
		}
	uint64_t done = 777;
	core_case("step %" PRIu64 ": map slot %d iova %#" PRIx64 " pa %#" PRIx64 " size %#" PRIx64 " prot %#x", M.step,
		  s, iova, pa, size, prot);
	int r = viommu_domain_map(m->d, iova, pa, size, prot, &done);
	M.n_maps++;
	if (!prot_valid(&m->pt, prot)) {
		CHECK_EQ(r, -EINVAL);
		CHECK_EQ(done, 0);
		return;
	}
	if (conflict == n) {
		CHECK_EQ(r, 0);
		CHECK_EQ(done, size);
	} else {
		M.n_eexist++;
		CHECK_EQ(r, -EEXIST);
		CHECK(done % PG == 0 && done <= conflict * PG);
		if (done > conflict * PG)
			done = conflict * PG;
	}
	for (uint64_t i = 0; i < done / PG; i++)
		m->pg[w][first + i] = ENT(pa / PG + i, prot);
	if (done)
		recent_add(m, w, first, done / PG);
}

static void op_unmap(void)
{
	int s = (int)below(NDOM);
	struct mdom *m = &M.dom[s];
	if (m->type != VIOMMU_DOMAIN_PAGING)
		return;
	unsigned w;
	uint64_t first, n;
	pick_range(m, &w, &first, &n);
	if (chance(50) && m->nrecent) {
		/* Part or all of something mapped. */
		unsigned i = (unsigned)below(m->nrecent);
		w = m->recent[i].w;
		first = m->recent[i].first + below(m->recent[i].n);
		n = 1 + below(m->recent[i].n);
		if (first + n > m->wpages)
			n = m->wpages - first;
	}
	uint64_t iova = m->win_base[w] + first * PG;
	uint64_t done = 777;
	core_case("step %" PRIu64 ": unmap slot %d iova %#" PRIx64 " size %#" PRIx64, M.step, s, iova, n * PG);
	CHECK_EQ(viommu_domain_unmap(m->d, iova, n * PG, &done), 0);
	CHECK_EQ(done, n * PG);
	M.n_unmaps++;
	memset(&m->pg[w][first], 0, n * sizeof(uint32_t));
}

static void op_attach(void)
{
	int dv = (int)below(NDEV), pi = (int)below(NPAS), s = (int)below(NDOM);
	core_case("step %" PRIu64 ": attach dev %d pasid %#x slot %d", M.step, dv, pasids[pi], s);
	if (!CHECK_EQ(viommu_dev_attach(M.dev[dv], pasids[pi], M.dom[s].d, NULL), 0))
		return;
	if (M.att[dv][pi] >= 0)
		M.dom[M.att[dv][pi]].attached--;
	M.att[dv][pi] = s;
	M.dom[s].attached++;
}

static void op_detach(void)
{
	int dv = (int)below(NDEV), pi = (int)below(NPAS);
	core_case("step %" PRIu64 ": detach dev %d pasid %#x", M.step, dv, pasids[pi]);
	int r = viommu_dev_detach(M.dev[dv], pasids[pi]);
	if (M.att[dv][pi] < 0) {
		CHECK_EQ(r, -ENOENT);
		return;
	}
	CHECK_EQ(r, 0);
	M.dom[M.att[dv][pi]].attached--;
	M.att[dv][pi] = -1;
}

static void dev_make(int dv)
{
	struct viommu_rid rid = { .segment = (uint16_t)dv, .bus = (uint8_t)(0x10 + dv), .devfn = (uint8_t)(dv * 9) };
	M.dev[dv] = NULL;
	if (!CHECK_EQ(viommu_dev_create(M.v, rid, &M.dev[dv]), 0))
		exit(2);
	for (int p = 0; p < NPAS; p++)
		M.att[dv][p] = -1;
}

static void op_dev_recreate(void)
{
	int dv = (int)below(NDEV);
	core_case("step %" PRIu64 ": device %d destroy", M.step, dv);
	viommu_dev_destroy(M.dev[dv]);
	for (int p = 0; p < NPAS; p++)
		if (M.att[dv][p] >= 0)
			M.dom[M.att[dv][p]].attached--;
	dev_make(dv);
}

static void op_exclusion(void)
{
	unsigned r = (unsigned)below(100);
	core_case("step %" PRIu64 ": exclusion op %u", M.step, r);
	if (r < 45 || r >= 90) {
		/* A few pages, often where outputs are. */
		uint64_t addr = below(r < 90 ? RAM_SIZE : PA_SPACE);
		uint64_t size = 1 + below(8 * PG);
		int on = r < 45;
		if (on && M.nexcl > PA_PAGES / 50)
			on = 0;
		CHECK_EQ(on ? viommu_exclude_range(M.v, addr, size) : viommu_unexclude_range(M.v, addr, size), 0);
		for (uint64_t p = addr / PG; p <= (addr + size - 1) / PG; p++)
			excl_set(p, on);
	} else if (r < 80) {
		CHECK_EQ(viommu_unexclude_range(M.v, 0, PA_SPACE), 0);
		for (uint64_t p = 0; p < PA_PAGES; p++)
			excl_set(p, 0);
	} else {
		static uint8_t bm[PA_PAGES / 8];
		uint64_t nr = 1 + below(PA_PAGES);
		memset(bm, 0, sizeof(bm));
		for (unsigned k = 0; k < nr / 256 + 1; k++) {
			uint64_t p = below(nr);
			bm[p / 8] |= (uint8_t)(1u << (p % 8));
		}
		CHECK_EQ(viommu_set_exclusion_bitmap(M.v, bm, nr), 0);
		for (uint64_t p = 0; p < nr; p++)
			excl_set(p, (bm[p / 8] >> (p % 8)) & 1);
	}
}

static void op_invalidate(void)
{
	int s = (int)below(NDOM);
	struct mdom *m = &M.dom[s];
	unsigned r = (unsigned)below(5);
	core_case("step %" PRIu64 ": invalidate %u slot %d", M.step, r, s);
	switch (r) {
	case 0:
		viommu_invalidate_all(M.v);
		break;
	case 1:
		viommu_invalidate_domain(m->d);
		break;
	case 2:
		viommu_invalidate_pasid(m->d, pasids[below(NPAS)]);
		break;
	default: {
		uint64_t iova = m->type == VIOMMU_DOMAIN_PAGING ? m->win_base[below(NWIN)] + below(m->wpages) * PG : rnd();
		uint64_t size = 1 + below(1ull << 22);
		if (iova + size < iova)
			size = 0 - iova;
		CHECK_EQ(viommu_invalidate_range(m->d, pasids[below(NPAS)], (int)below(2), iova, size), 0);
		break;
	}
	}
}

/* ------------------------------------------------------------------------ */
/* Epochs                                                                   */

static void epoch(unsigned e, uint64_t translations)
{
	static const uint32_t iotlb[] = { 64, 256, 0, 4096, 100 };
	struct viommu_mem_region reg = { .gpa = 0, .size = RAM_SIZE, .host = M.ram };
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = &reg;
	c.mem.nr_regions = 1;
	c.mem.read = mem_read_cb;
	c.mem.write = mem_write_cb;
	c.fault = fault_cb;
	c.iotlb_entries = iotlb[e % 5];
	c.walk_cache_entries = e % 2 ? 64 : 0;
	memset(M.ram, 0, RAM_SIZE);
	memset(M.shadow, 0, RAM_SIZE);
	memset(M.excl, 0, sizeof(M.excl));
	M.nexcl = 0;
	M.faults_expected = M.faults_seen = 0;
	M.cb.calls = M.cb.bad = 0;
	core_case("epoch %u: create", e);
	if (!CHECK_EQ(viommu_create(&c, NULL, &M.v), 0))
		exit(2);
	for (int s = 0; s < NDOM; s++)
		dom_create(s);
	for (int d = 0; d < NDEV; d++)
		dev_make(d);
	/* Most requesters start attached, mostly to paging domains. */
	for (int d = 0; d < NDEV; d++)
		for (int p = 0; p < NPAS; p++) {
			if (chance(25))
				continue;
			int s = (int)below(NDOM);
			if (M.dom[s].type != VIOMMU_DOMAIN_PAGING && chance(70))
				s = (int)below(NDOM);
			core_case("epoch %u: attach dev %d pasid %#x slot %d", e, d, pasids[p], s);
			if (CHECK_EQ(viommu_dev_attach(M.dev[d], pasids[p], M.dom[s].d, NULL), 0)) {
				M.att[d][p] = s;
				M.dom[s].attached++;
			}
		}

	uint64_t until = M.translations + translations;
	while (M.translations < until) {
		M.step++;
		unsigned r = (unsigned)below(1000);
		if (r < 100)
			op_map();
		else if (r < 160)
			op_unmap();
		else if (r < 175)
			op_attach();
		else if (r < 180)
			op_detach();
		else if (r < 184)
			op_exclusion();
		else if (r < 200)
			op_invalidate();
		else if (r < 202)
			dom_destroy((int)below(NDOM));
		else if (r < 203 && chance(20))
			op_dev_recreate();
		else if (r < 300)
			op_dma();
		else if (r < 340)
			op_map_ptr();
		else
			op_translate();
		if (M.step % 4096 == 0) {
			core_case("step %" PRIu64 ": guest RAM against the model", M.step);
			if (!CHECK(!memcmp(M.ram, M.shadow, RAM_SIZE))) {
				for (uint64_t i = 0; i < RAM_SIZE; i++)
					if (M.ram[i] != M.shadow[i]) {
						fprintf(stderr, "    first difference at %#" PRIx64 "\n", i);
						break;
					}
				memcpy(M.shadow, M.ram, RAM_SIZE);
			}
			check_seen();
		}
		if (core_failures > 50) {
			fprintf(stderr, "too many failures; stopping (seed above)\n");
			return;
		}
	}
	core_case("epoch %u: end", e);
	CHECK(!memcmp(M.ram, M.shadow, RAM_SIZE));
	check_seen();
	struct viommu_stats st;
	viommu_get_stats(M.v, &st);
	CHECK_EQ(st.faults, M.faults_seen);
	CHECK_EQ(M.faults_seen, M.faults_expected);
	CHECK_EQ(M.bad_seq, 0);
	CHECK_EQ(M.cb.bad, 0);
	printf("epoch %u: iotlb %u, %" PRIu64 " translations, hits %" PRIu64 " misses %" PRIu64 " evictions %" PRIu64
	       ", %" PRIu64 " faults, %" PRIu64 " callback accesses\n",
	       e, c.iotlb_entries, st.translations, st.iotlb_hits, st.iotlb_misses, st.iotlb_evictions, st.faults,
	       M.cb.calls);
	/* Tear down in a random order: some explicitly, the rest with the
	 * instance. */
	for (int d = 0; d < NDEV; d++)
		if (chance(50)) {
			viommu_dev_destroy(M.dev[d]);
			for (int p = 0; p < NPAS; p++)
				if (M.att[d][p] >= 0)
					M.dom[M.att[d][p]].attached--;
			M.dev[d] = NULL;
		}
	for (int s = 0; s < NDOM; s++)
		if (!M.dom[s].attached && chance(50))
			CHECK_EQ(viommu_domain_destroy(M.dom[s].d), 0);
	viommu_destroy(M.v);
	M.v = NULL;
}

int main(int argc, char **argv)
{
	uint64_t seed;
	const char *env = getenv("VIOMMU_TEST_SEED");
	if (argc > 1)
		seed = strtoull(argv[1], NULL, 0);
	else if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
	unsigned scale = CORE_MODEL_DEFAULT_SCALE;
	const char *sc = getenv("VIOMMU_MODEL_SCALE");
	if (sc && *sc)
		scale = (unsigned)strtoul(sc, NULL, 0);
	uint64_t total = 1000000ull * scale / 100;
	if (!total)
		total = 1000;
	printf("test_core_model: seed %#" PRIx64 " (rerun: test_core_model %#" PRIx64 "), %" PRIu64
	       " translations (scale %u%%)\n",
	       seed, seed, total, scale);
	fflush(stdout);
	rng_state = seed;

	M.ram = aligned_alloc(4096, RAM_SIZE);
	M.shadow = malloc(RAM_SIZE);
	for (int s = 0; s < NDOM; s++)
		for (int w = 0; w < NWIN; w++) {
			M.dom[s].pg[w] = calloc(65536, sizeof(uint32_t));
			M.dom[s].seen[w] = calloc(65536, sizeof(uint32_t));
			if (!M.dom[s].pg[w] || !M.dom[s].seen[w])
				return 2;
		}
	if (!M.ram || !M.shadow)
		return 2;

	const unsigned epochs = 10;
	for (unsigned e = 0; e < epochs && core_failures <= 50; e++)
		epoch(e, total / epochs + 1);

	printf("exercised: %" PRIu64 " steps, %" PRIu64 " translations (%" PRIu64 " translated), %" PRIu64 " maps (%" PRIu64
	       " -EEXIST), %" PRIu64 " unmaps, %" PRIu64 " DMAs (%" PRIu64 " scatter-gather, %" PRIu64 " bytes), %" PRIu64
	       " map_ptr\n",
	       M.step, M.translations, M.n_ok, M.n_maps, M.n_eexist, M.n_unmaps, M.n_dma, M.n_sg, M.n_dma_bytes, M.n_ptr);
	printf("faults predicted:");
	for (unsigned i = 1; i < VIOMMU_FAULT_REASON_COUNT; i++)
		if (M.n_fault[i])
			printf(" %s %" PRIu64, viommu_fault_reason_name(i), M.n_fault[i]);
	printf("\n");
	if (core_failures)
		printf("FAILED with seed %#" PRIx64 "\n", seed);
	for (int s = 0; s < NDOM; s++)
		for (int w = 0; w < NWIN; w++) {
			free(M.dom[s].pg[w]);
			free(M.dom[s].seen[w]);
		}
	free(M.ram);
	free(M.shadow);
	core_case("%s", "");
	return core_check_done("test_core_model");
}
