/* SPDX-License-Identifier: MIT */
/*
 * The page-table engine: configuration, the one walker, and caller-owned
 * tables (map, unmap with large-page splitting, lookup, for_each).
 */
#include "pt_internal.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "mem_internal.h"

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

static const struct pt_fmt *fmt_of(enum viommu_pt_format f)
{
	switch (f) {
	case VIOMMU_PT_X86_64:
		return &pt_fmt_x86_64;
	case VIOMMU_PT_VTD_SL:
		return &pt_fmt_vtd_sl;
	case VIOMMU_PT_AMD_V1:
		return &pt_fmt_amd_v1;
	}
	return NULL;
}

int pt_geom_init(struct pt_geom *g, struct viommu_pt_config *cfg)
{
	uint64_t supported = 0;
	const struct pt_fmt *fmt;
	int ret;

	if (!cfg || cfg->size < sizeof(*cfg))
		return -EINVAL;
	fmt = fmt_of(cfg->format);
	if (!fmt)
		return -EINVAL;
	if (cfg->flags & ~VIOMMU_PT_F_ALL)
		return -EINVAL;
	unsigned oas = cfg->oas ? cfg->oas : 52;
	if (oas < 32 || oas > 52)
		return -EINVAL;
	ret = fmt->check(cfg, &supported);
	if (ret)
		return ret;
	uint64_t granted = cfg->pgsize_bitmap ? (cfg->pgsize_bitmap & supported) : supported;
	/* No page may be bigger than the output space. */
	if (oas < 64)
		granted &= (1ull << oas) | ((1ull << oas) - 1);
	if (!(granted & VIOMMU_PGSIZE_4K))
		return -EINVAL;
	cfg->oas = oas;
	cfg->pgsize_bitmap = granted;

	memset(g, 0, sizeof(*g));
	g->fmt = fmt;
	g->levels = cfg->levels;
	g->ias = cfg->ias;
	g->oas = oas;
	g->flags = cfg->flags;
	g->pgsizes = granted;
	g->oas_rsvd = PT_ADDR_MASK & ~((1ull << oas) - 1);
	return 0;
}

int viommu_pt_config_check(struct viommu_pt_config *cfg)
{
	struct pt_geom g;
	return pt_geom_init(&g, cfg);
}

int pt_input_ok(const struct pt_geom *g, uint64_t iova)
{
	if (g->ias >= 64)
		return 1;
	if (g->fmt->canonical) {
		/* Bits 63 down to ias - 1 all equal. */
		int64_t top = (int64_t)iova >> (g->ias - 1);
		return top == 0 || top == -1;
	}
	return (iova >> g->ias) == 0;
}

/* ------------------------------------------------------------------------ */
/* The walker                                                               */

static void walk_fault(struct viommu_pt_result *res, enum viommu_fault_reason why)
{
	res->fault = why;
}

/* One pass of a walk. Returns 0, -EFAULT, or -EAGAIN when an A/D write-back
 * found the entry changed under it (the caller walks again). */
static int walk_once(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root,
		     unsigned start_level, uint32_t start_perms, uint64_t iova, uint32_t access, int ad,
		     struct viommu_pt_result *res, uint32_t *upper)
{
	struct {
		uint64_t addr, val;
		unsigned level;
	} path[PT_MAX_LEVELS];
	unsigned depth = 0;
	unsigned level = start_level;
	uint64_t table = root;
	uint32_t perms = start_perms;
	struct pt_entry e;

	if (root & (PT_TABLE_SIZE - 1)) {
		walk_fault(res, VIOMMU_FAULT_ROOT_MISALIGNED);
		return -EFAULT;
	}
	if (!pt_input_ok(g, iova)) {
		walk_fault(res, VIOMMU_FAULT_ADDR_WIDTH);
		return -EFAULT;
	}

	for (;;) {
		uint64_t ea, pte;

		/* Levels strictly descend, so this cannot trip; it bounds the
		 * walk whatever a format's decode says. */
		if (depth >= g->levels) {
			walk_fault(res, VIOMMU_FAULT_WALK_LOOP);
			return -EFAULT;
		}
		if (__builtin_add_overflow(table, (uint64_t)pt_index(iova, level) * 8, &ea)) {
			walk_fault(res, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
			return -EFAULT;
		}
		res->level = level;
		res->entry_addr = ea;
		res->entry = 0;
		if (acc->read(acc->ctx, ea, &pte)) {
			walk_fault(res, VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY);
			return -EFAULT;
		}
		res->refs++;
		res->entry = pte;

		memset(&e, 0, sizeof(e));
		g->fmt->decode(g, pte, level, &e);
		if (e.fault != VIOMMU_FAULT_NONE) {
			walk_fault(res, e.fault);
			return -EFAULT;
		}
		if (e.kind == PT_NONE) {
			walk_fault(res, VIOMMU_FAULT_NOT_PRESENT);
			return -EFAULT;
		}
		if (e.kind == PT_LEAF && upper)
			*upper = perms; /* what the levels above the leaf grant */
		perms &= e.perms;
		path[depth].addr = ea;
		path[depth].val = pte;
		path[depth].level = level;
		depth++;
		if (e.kind == PT_LEAF)
			break;

		if (e.next_level >= level || e.next_level == 0) {
			walk_fault(res, VIOMMU_FAULT_WALK_LOOP);
			return -EFAULT;
		}
		/* Skipped levels (AMD-Vi): their input bits must be zero. */
		if (e.next_level + 1 < level) {
			unsigned lo = pt_entry_shift(e.next_level + 1);
			unsigned hi = pt_entry_shift(level);
			uint64_t mask = (hi >= 64 ? ~0ull : (1ull << hi) - 1) & ~((1ull << lo) - 1);
			if (iova & mask) {
				walk_fault(res, VIOMMU_FAULT_ADDR_WIDTH);
				return -EFAULT;
			}
		}
		table = e.addr;
		level = e.next_level;
		if (acc->on_table)
			acc->on_table(acc->ctx, level, table, perms);
	}

	uint64_t size = 1ull << e.size_shift;
	res->page_size = size;
	res->oaddr = e.addr | (iova & (size - 1));
	res->perms = perms;

	uint32_t need = access & (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC);
	if (!(access & VIOMMU_ACCESS_PRIV))
		need |= VIOMMU_PERM_USER;
	if ((perms & need) != need) {
		walk_fault(res, VIOMMU_FAULT_PERMISSION);
		return -EFAULT;
	}

	if (ad && (g->flags & VIOMMU_PT_F_AD)) {
		int write = !!(access & VIOMMU_ACCESS_WRITE);
		for (unsigned i = 0; i < depth; i++) {
			int leaf = i + 1 == depth;
			uint64_t bits = g->fmt->ad_bits(g, path[i].level, leaf, write);
			if ((path[i].val & bits) == bits)
				continue;
			int r = acc->or(acc->ctx, path[i].addr, path[i].val, bits);
			if (r < 0) {
				res->level = path[i].level;
				res->entry_addr = path[i].addr;
				res->entry = path[i].val;
				walk_fault(res, VIOMMU_FAULT_TABLE_WRITE);
				return -EFAULT;
			}
			if (r > 0)
				return -EAGAIN;
			res->writes++;
			/* A table that points at itself has this entry again
			 * deeper down: it now holds the bits too. */
			for (unsigned j = i + 1; j < depth; j++)
				if (path[j].addr == path[i].addr)
					path[j].val |= bits;
		}
	}
	return 0;
}

static int walk_retry(const struct pt_geom *g, const struct pt_acc *acc, uint64_t table, unsigned level,
		      uint32_t perms, uint64_t iova, uint32_t access, int ad, struct viommu_pt_result *res,
		      uint32_t *upper, int *no_ad)
{
	int ret;
	unsigned tries = 0;

	do {
		uint32_t refs = res->refs, writes = res->writes;
		memset(res, 0, sizeof(*res));
		/* References made by an abandoned pass were still made. */
		res->refs = refs;
		res->writes = writes;
		ret = walk_once(g, acc, table, level, perms, iova, access, ad, res, upper);
	} while (ret == -EAGAIN && ++tries < 8);
	if (ret == -EAGAIN) {
		/* The guest keeps rewriting the entries of this walk: the
		 * translation read is still one the guest had in place. */
		ret = walk_once(g, acc, table, level, perms, iova, access, 0, res, upper);
		if (no_ad)
			*no_ad = 1;
	}
	return ret;
}

int pt_walk_geom_from(const struct pt_geom *g, const struct pt_acc *acc, uint64_t table, unsigned level,
		      uint32_t perms, uint64_t iova, uint32_t access, int ad, struct viommu_pt_result *res)
{
	return walk_retry(g, acc, table, level, perms, iova, access, ad, res, NULL, NULL);
}

/* Whether entry pte of the run's table is a leaf of the natural size at
 * `level` mapping addr with the run's permissions. */
static int run_entry_ok(const struct pt_geom *g, uint64_t pte, unsigned level, unsigned shift, uint64_t addr,
			uint32_t upper, uint32_t perms)
{
	struct pt_entry e;
	memset(&e, 0, sizeof(e));
	g->fmt->decode(g, pte, level, &e);
	return e.kind == PT_LEAF && e.fault == VIOMMU_FAULT_NONE && e.size_shift == shift && e.addr == addr &&
	       (upper & e.perms) == perms;
}

/*
 * The run's entries compared raw, without decoding each: entry n that equals
 * the first plus n pages (in the address field, every other bit the same)
 * decodes as the first does, n pages on, provided the address field neither
 * carries out nor leaves what the format accepts (its reserved high bits)
 * anywhere in the run. Checked once: by decoding the first entry and the run's
 * last possible one (entries in between have addresses in between, and each
 * format's address checks only bound it from above). Entries from `limit` on
 * are not looked at. Returns how many entries from the first match so (each
 * counted in res->refs); the caller's decoding loop goes on from there.
 */
static uint64_t run_raw(const struct pt_geom *g, const struct pt_acc *acc, struct viommu_pt_result *res,
			unsigned level, unsigned shift, uint64_t base, uint32_t upper, uint64_t bits, uint64_t limit)
{
	const uint64_t *t = acc->map(acc->ctx, res->entry_addr, limit * 8);
	if (!t)
		return 1;
	uint64_t step = 1ull << shift;
	/* Read again: the walk may have set its accessed/dirty bits. */
	uint64_t first = __atomic_load_n(&t[0], __ATOMIC_ACQUIRE);
	if ((bits && (first & bits) != bits) || !run_entry_ok(g, first, level, shift, base, upper, res->perms) ||
	    !run_entry_ok(g, first + (limit - 1) * step, level, shift, base + (limit - 1) * step, upper, res->perms))
		return 1;
	uint64_t n = 1;
	while (n < limit && __atomic_load_n(&t[n], __ATOMIC_ACQUIRE) == first + n * step)
		n++;
	res->refs += (uint32_t)(n - 1);
	return n;
}

uint64_t pt_walk_geom_run(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t iova,
			  uint32_t access, int ad, struct viommu_pt_result *res, uint64_t len)
{
	uint32_t upper = 0;
	int no_ad = 0;
	if (walk_retry(g, acc, root, g->levels, VIOMMU_PERM_ALL, iova, access, ad, res, &upper, &no_ad))
		return 0;
	if (no_ad)
		return 1; /* the guest kept rewriting the path: no run on it */
	/* Along the leaf's own table: entries of the same kind, each a page
	 * of the table's natural size (not a replicated larger one), whose
	 * output follows on and which grant exactly what the first grants
	 * (so one permission describes the run). */
	unsigned level = res->level;
	unsigned shift = pt_entry_shift(level);
	if (res->page_size != 1ull << shift || level == 0 || level >= g->levels)
		return 1;
	uint64_t base = res->oaddr & ~(res->page_size - 1);
	unsigned idx = pt_index(iova, level);
	uint64_t n = 1;
	uint64_t off = iova & (res->page_size - 1);
	/* Pages holding [iova, iova + len): len - 1 + off cannot wrap (the
	 * caller's range does not). */
	uint64_t max_pages = len ? ((off + (len - 1)) >> shift) + 1 : 1;
	int adw = ad && (g->flags & VIOMMU_PT_F_AD);
	uint64_t bits = adw ? g->fmt->ad_bits(g, level, 1, !!(access & VIOMMU_ACCESS_WRITE)) : 0;
	uint64_t limit = max_pages < PT_ENTRIES - idx ? max_pages : PT_ENTRIES - idx;
	/* run_raw decodes two entries itself: for runs of two or fewer
	 * pages the decoding loop is no dearer. */
	if (acc->map && limit > 2)
		n = run_raw(g, acc, res, level, shift, base, upper, bits, limit);
	while (n < limit) {
		uint64_t ea = res->entry_addr + n * 8, pte;
		struct pt_entry e;
		if (acc->read(acc->ctx, ea, &pte))
			break;
		res->refs++;
		memset(&e, 0, sizeof(e));
		g->fmt->decode(g, pte, level, &e);
		if (e.kind != PT_LEAF || e.fault != VIOMMU_FAULT_NONE || e.size_shift != shift ||
		    e.addr != base + (n << shift) || (upper & e.perms) != res->perms)
			break;
		if (bits && (pte & bits) != bits) {
			/* As a walk of this page would: the leaf's accessed
			 * (and for a write dirty) bits. The levels above are
			 * the first walk's and have them already. */
			if (acc->or(acc->ctx, ea, pte, bits))
				break;
			res->writes++;
		}
		n++;
	}
	return n;
}

int pt_walk_geom(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t iova,
		 uint32_t access, int ad, struct viommu_pt_result *res)
{
	return pt_walk_geom_from(g, acc, root, g->levels, VIOMMU_PERM_ALL, iova, access, ad, res);
}

/* The input address of index `idx` of a table at `level` whose span starts
 * at `base`, sign-extended where the format is canonical. */
static uint64_t visit_iova(const struct pt_geom *g, uint64_t base, unsigned level, unsigned idx)
{
	uint64_t iova = base + ((uint64_t)idx << pt_entry_shift(level));
	if (g->fmt->canonical && g->ias < 64 && ((iova >> (g->ias - 1)) & 1))
		iova |= ~0ull << (g->ias - 1);
	return iova;
}

static int visit_table(const struct pt_geom *g, const struct pt_acc *acc, uint64_t table, unsigned level,
		       uint64_t base, uint32_t perms, uint64_t first, uint64_t last, pt_leaf_fn fn, void *ctx)
{
	unsigned eshift = pt_entry_shift(level);
	uint64_t emask = eshift >= 64 ? ~0ull : (1ull << eshift) - 1;
	unsigned lo = first > base ? pt_index(first, level) : 0;
	/* The root of AMD-Vi mode 6 has 128 entries (bits 63:57). */
	unsigned n = PT_ENTRIES;
	if (level == g->levels && g->ias - eshift < 9)
		n = 1u << (g->ias - eshift);
	for (unsigned idx = lo; idx < n; idx++) {
		uint64_t eiova = visit_iova(g, base, level, idx);
		if (eiova > last)
			break;
		if ((eiova | emask) < first)
			continue;
		uint64_t pte;
		struct pt_entry e;
		if (acc->read(acc->ctx, table + (uint64_t)idx * 8, &pte))
			continue;
		memset(&e, 0, sizeof(e));
		g->fmt->decode(g, pte, level, &e);
		if (e.kind == PT_NONE || e.fault != VIOMMU_FAULT_NONE)
			continue;
		if (e.kind == PT_TABLE) {
			if (e.next_level >= level || e.next_level == 0)
				continue;
			/* Skipped levels: only inputs with zero bits there
			 * translate, i.e. the first part of the entry's span. */
			uint64_t sub_last = eiova | ((1ull << pt_entry_shift(e.next_level + 1)) - 1);
			if (sub_last < first)
				continue;
			int r = visit_table(g, acc, e.addr, e.next_level, eiova, perms & e.perms, first,
					    last < sub_last ? last : sub_last, fn, ctx);
			if (r)
				return r;
			continue;
		}
		uint64_t psize = 1ull << e.size_shift;
		uint64_t piova = eiova & ~(psize - 1);
		/* A replicated page is reported at its first entry in view. */
		if (e.size_shift > eshift && piova != eiova && idx != lo)
			continue;
		int r = fn(ctx, piova, e.addr, psize, perms & e.perms);
		if (r)
			return r;
	}
	return 0;
}

int pt_visit_range(const struct pt_geom *g, const struct pt_acc *acc, uint64_t root, uint64_t first,
		   uint64_t last, pt_leaf_fn fn, void *ctx)
{
	if (root & (PT_TABLE_SIZE - 1))
		return 0;
	uint64_t base = 0;
	return visit_table(g, acc, root, g->levels, base, VIOMMU_PERM_ALL, first, last, fn, ctx);
}

static int acc_mem_read(void *ctx, uint64_t addr, uint64_t *val)
{
	return mem_read64(ctx, addr, val);
}

static int acc_mem_or(void *ctx, uint64_t addr, uint64_t old, uint64_t bits)
{
	return mem_or64(ctx, addr, old, bits);
}

const struct pt_acc pt_acc_mem_template = { .read = acc_mem_read, .or = acc_mem_or };

int viommu_pt_walk(const struct viommu_pt_config *cfg, viommu_mem *mem, uint64_t root, uint64_t iova,
		   uint32_t access, struct viommu_pt_result *res)
{
	struct viommu_pt_config c;
	struct pt_geom g;

	if (!cfg || !mem || !res)
		return -EINVAL;
	if (access & ~(VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV))
		return -EINVAL;
	if (cfg->size < sizeof(c))
		return -EINVAL;
	c = *cfg;
	if (pt_geom_init(&g, &c))
		return -EINVAL;
	const struct pt_acc acc = { .read = acc_mem_read, .or = acc_mem_or, .ctx = mem };
	memset(res, 0, sizeof(*res));
	return pt_walk_geom(&g, &acc, root, iova, access, 1, res);
}

/* ------------------------------------------------------------------------ */
/* Caller-owned tables                                                      */

/*
 * Tables in host memory get addresses of the object's own: id << 12, ids from
 * 1, found through a two-level directory that only grows, so a lookup running
 * beside a map never sees a directory move. A free slot holds (next free id
 * << 1) | 1.
 */
#define DIR_CHUNK_SHIFT 9u
#define DIR_CHUNK (1u << DIR_CHUNK_SHIFT)
#define DIR_CHUNKS 4096u
#define SLOT_FREE 1u

struct viommu_pt {
	struct pt_geom g;
	struct viommu_pt_config cfg;
	struct valloc alloc;
	int custom; /* tables from a table allocator, read through mem */
	struct viommu_pt_table_ops tops;
	viommu_mem *mem;
	uint64_t root;
	uint64_t *root_host;
	uint64_t nr_tables;
	/* host-memory tables */
	uint32_t next_id;   /* never used yet */
	uint32_t free_head; /* 0: none */
	uint32_t max_id;
	uintptr_t *dir[DIR_CHUNKS];
};

static uintptr_t *slot_of(const struct viommu_pt *pt, uint32_t id)
{
	uintptr_t *chunk = __atomic_load_n(&pt->dir[id >> DIR_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
	return chunk ? &chunk[id & (DIR_CHUNK - 1)] : NULL;
}

/* Host pointer of one of our tables, or NULL if addr is not one. */
static uint64_t *table_host(const struct viommu_pt *pt, uint64_t addr)
{
	if (pt->custom)
		return viommu_mem_ptr(pt->mem, addr & ~(uint64_t)(PT_TABLE_SIZE - 1), PT_TABLE_SIZE, 1);
	uint64_t id = addr >> 12;
	if (!id || id >= pt->max_id)
		return NULL;
	uintptr_t *slot = slot_of(pt, (uint32_t)id);
	if (!slot)
		return NULL;
	uintptr_t v = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (!v || (v & SLOT_FREE))
		return NULL;
	return (uint64_t *)v;
}

static int table_alloc(struct viommu_pt *pt, uint64_t *addr, uint64_t **host)
{
	if (pt->custom) {
		void *h = NULL;
		uint64_t a = 0;
		int ret = pt->tops.alloc(pt->tops.ctx, &a, &h);
		if (ret)
			return ret < 0 ? ret : -ENOMEM;
		if (!h || (a & (PT_TABLE_SIZE - 1)) || (a & ~PT_ADDR_MASK) || (a & pt->g.oas_rsvd) ||
		    viommu_mem_ptr(pt->mem, a, PT_TABLE_SIZE, 1) != h) {
			/* The allocator broke its contract: the walker could
			 * not read this table back. */
			pt->tops.free(pt->tops.ctx, a, h);
			return -EINVAL;
		}
		memset(h, 0, PT_TABLE_SIZE);
		*addr = a;
		*host = h;
		pt->nr_tables++;
		return 0;
	}

	uint32_t id;
	uintptr_t *slot;
	int from_free = 0;
	if (pt->free_head) {
		id = pt->free_head;
		from_free = 1;
		slot = slot_of(pt, id);
		assert(slot && (*slot & SLOT_FREE));
	} else {
		if (pt->next_id >= pt->max_id)
			return -ENOMEM;
		id = pt->next_id;
		uint32_t c = id >> DIR_CHUNK_SHIFT;
		if (!pt->dir[c]) {
			uintptr_t *chunk = valloc_zget(&pt->alloc, DIR_CHUNK * sizeof(uintptr_t),
						       _Alignof(uintptr_t));
			if (!chunk)
				return -ENOMEM;
			__atomic_store_n(&pt->dir[c], chunk, __ATOMIC_RELEASE);
		}
		slot = &pt->dir[c][id & (DIR_CHUNK - 1)];
	}
	uint64_t *t = valloc_get(&pt->alloc, PT_TABLE_SIZE, PT_TABLE_SIZE);
	if (!t)
		return -ENOMEM;
	memset(t, 0, PT_TABLE_SIZE);
	if (from_free)
		pt->free_head = (uint32_t)(*slot >> 1);
	else
		pt->next_id++;
	/* Publish the zeroed table before any entry can point at it. */
	__atomic_store_n(slot, (uintptr_t)t, __ATOMIC_RELEASE);
	*addr = (uint64_t)id << 12;
	*host = t;
	pt->nr_tables++;
	return 0;
}

static void table_free(struct viommu_pt *pt, uint64_t addr, uint64_t *host)
{
	pt->nr_tables--;
	if (pt->custom) {
		pt->tops.free(pt->tops.ctx, addr, host);
		return;
	}
	uint32_t id = (uint32_t)(addr >> 12);
	uintptr_t *slot = slot_of(pt, id);
	assert(slot && *slot == (uintptr_t)host);
	__atomic_store_n(slot, ((uintptr_t)pt->free_head << 1) | SLOT_FREE, __ATOMIC_RELEASE);
	pt->free_head = id;
	valloc_put(&pt->alloc, host, PT_TABLE_SIZE, PT_TABLE_SIZE);
}

static inline uint64_t pte_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void pte_store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void decode(const struct viommu_pt *pt, uint64_t pte, unsigned level, struct pt_entry *e)
{
	memset(e, 0, sizeof(*e));
	pt->g.fmt->decode(&pt->g, pte, level, e);
}

/* Free a table and everything below it. */
static void free_subtree(struct viommu_pt *pt, uint64_t addr, unsigned level)
{
	uint64_t *t = table_host(pt, addr);
	if (!t)
		return;
	if (level > 1) {
		for (unsigned i = 0; i < PT_ENTRIES; i++) {
			struct pt_entry e;
			decode(pt, pte_load(&t[i]), level, &e);
			if (e.kind == PT_TABLE && e.fault == VIOMMU_FAULT_NONE)
				free_subtree(pt, e.addr, e.next_level);
		}
	}
	table_free(pt, addr, t);
}

/* Does the table hold no mapping at all, at any depth? */
static int subtree_empty(const struct viommu_pt *pt, uint64_t addr, unsigned level)
{
	uint64_t *t = table_host(pt, addr);
	if (!t)
		return 0;
	for (unsigned i = 0; i < PT_ENTRIES; i++) {
		struct pt_entry e;
		decode(pt, pte_load(&t[i]), level, &e);
		if (e.kind == PT_LEAF)
			return 0;
		if (e.kind == PT_TABLE && !subtree_empty(pt, e.addr, e.next_level))
			return 0;
	}
	return 1;
}

static int pt_acc_read(void *ctx, uint64_t addr, uint64_t *val)
{
	const struct viommu_pt *pt = ctx;
	if (pt->custom)
		return mem_read64(pt->mem, addr, val);
	uint64_t *t = table_host(pt, addr);
	if (!t)
		return -EFAULT;
	*val = pte_load(&t[(addr & (PT_TABLE_SIZE - 1)) / 8]);
	return 0;
}

static int pt_acc_or(void *ctx, uint64_t addr, uint64_t old, uint64_t bits)
{
	struct viommu_pt *pt = ctx;
	if (pt->custom)
		return mem_or64(pt->mem, addr, old, bits);
	uint64_t *t = table_host(pt, addr);
	if (!t)
		return -EFAULT;
	uint64_t expected = old;
	if (__atomic_compare_exchange_n(&t[(addr & (PT_TABLE_SIZE - 1)) / 8], &expected, old | bits, 0,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return 0;
	return 1;
}

/* Entries of one table: [addr, addr + len) must not leave it. */
static const uint64_t *pt_acc_map(void *ctx, uint64_t addr, uint64_t len)
{
	const struct viommu_pt *pt = ctx;
	uint64_t off = addr & (PT_TABLE_SIZE - 1);
	if ((addr & 7) || len > PT_TABLE_SIZE - off)
		return NULL;
	const uint64_t *t = table_host(pt, addr);
	return t ? t + off / 8 : NULL;
}

void pt_object_view(viommu_pt *pt, struct pt_acc *acc, uint64_t *root, const struct pt_geom **g)
{
	memset(acc, 0, sizeof(*acc));
	acc->read = pt_acc_read;
	acc->or = pt_acc_or;
	acc->map = pt_acc_map;
	acc->ctx = pt;
	*root = pt->root;
	*g = &pt->g;
}

int viommu_pt_create(struct viommu_pt_config *cfg, const struct viommu_pt_table_ops *tables,
		     viommu_mem *mem, const struct viommu_alloc *alloc, viommu_pt **out)
{
	struct valloc va;
	struct pt_geom g;
	struct viommu_pt *pt;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	ret = valloc_init(&va, alloc);
	if (ret)
		return ret;
	ret = pt_geom_init(&g, cfg);
	if (ret)
		return ret;
	if (tables) {
		if (tables->size < sizeof(*tables) || !tables->alloc || !tables->free || !mem)
			return -EINVAL;
	} else if (mem) {
		return -EINVAL;
	}

	pt = valloc_zget(&va, sizeof(*pt), _Alignof(struct viommu_pt));
	if (!pt)
		return -ENOMEM;
	pt->g = g;
	pt->cfg = *cfg;
	pt->alloc = va;
	pt->mem = mem;
	if (tables) {
		pt->custom = 1;
		pt->tops = *tables;
	}
	pt->next_id = 1;
	/* Table addresses must stay below 2^oas, like any output address. */
	uint64_t max_id = (uint64_t)DIR_CHUNKS * DIR_CHUNK;
	if ((max_id << 12) > (1ull << g.oas))
		max_id = (1ull << g.oas) >> 12;
	pt->max_id = (uint32_t)max_id;

	ret = table_alloc(pt, &pt->root, &pt->root_host);
	if (ret)
		goto err_free_pt;
	*out = pt;
	return 0;

err_free_pt:
	for (unsigned c = 0; c < DIR_CHUNKS; c++)
		valloc_put(&va, pt->dir[c], DIR_CHUNK * sizeof(uintptr_t), _Alignof(uintptr_t));
	valloc_put(&va, pt, sizeof(*pt), _Alignof(struct viommu_pt));
	return ret;
}

void viommu_pt_destroy(viommu_pt *pt)
{
	if (!pt)
		return;
	if (pt->root_host)
		free_subtree(pt, pt->root, pt->g.levels);
	for (unsigned c = 0; c < DIR_CHUNKS; c++)
		valloc_put(&pt->alloc, pt->dir[c], DIR_CHUNK * sizeof(uintptr_t), _Alignof(uintptr_t));
	struct valloc va = pt->alloc;
	valloc_put(&va, pt, sizeof(*pt), _Alignof(struct viommu_pt));
}

uint64_t viommu_pt_root(const viommu_pt *pt)
{
	return pt ? pt->root : 0;
}

const struct viommu_pt_config *viommu_pt_get_config(const viommu_pt *pt)
{
	return pt ? &pt->cfg : NULL;
}

uint64_t viommu_pt_table_count(const viommu_pt *pt)
{
	return pt ? pt->nr_tables : 0;
}

/* The input range [iova, iova + size) is inside the input space, in one
 * canonical half for x86-64. */
static int range_ok(const struct pt_geom *g, uint64_t iova, uint64_t size)
{
	uint64_t last;
	if (!size || __builtin_add_overflow(iova, size - 1, &last))
		return 0;
	if (!pt_input_ok(g, iova) || !pt_input_ok(g, last))
		return 0;
	if (g->fmt->canonical && g->ias < 64 && ((iova ^ last) >> 63))
		return 0;
	return 1;
}

/* The level whose entries a page of 2^shift bytes is built from. */
static unsigned level_for_shift(unsigned shift)
{
	return (shift - 12) / 9 + 1;
}

/* Map one page of 2^shift bytes (iova and pa aligned to it). */
static int map_one(struct viommu_pt *pt, uint64_t iova, uint64_t pa, unsigned shift, uint32_t perms)
{
	const struct pt_geom *g = &pt->g;
	unsigned target = level_for_shift(shift);
	unsigned count = 1u << (shift - pt_entry_shift(target));
	unsigned level = g->levels;
	uint64_t *t = pt->root_host;
	struct pt_entry e;
	int ret;

	assert(target <= g->levels);
	while (level > target) {
		uint64_t *p = &t[pt_index(iova, level)];
		uint64_t pte = pte_load(p);
		decode(pt, pte, level, &e);
		if (e.kind == PT_NONE) {
			uint64_t addr;
			uint64_t *nt;
			ret = table_alloc(pt, &addr, &nt);
			if (ret)
				return ret;
			pte_store(p, g->fmt->mk_table(g, addr, level));
			t = nt;
		} else if (e.kind == PT_LEAF || e.fault != VIOMMU_FAULT_NONE) {
			return -EEXIST;
		} else {
			/* Our own tables always descend one level at a time. */
			assert(e.next_level == level - 1);
			t = table_host(pt, e.addr);
			if (!t)
				return -EIO;
		}
		level--;
	}

	unsigned first = pt_index(iova, level);
	assert(first + count <= PT_ENTRIES);
	/* Every slot must be free, or hold only an empty table (left behind
	 * by unmaps), before anything is written. */
	for (unsigned i = 0; i < count; i++) {
		decode(pt, pte_load(&t[first + i]), level, &e);
		if (e.kind == PT_LEAF || (e.kind != PT_NONE && e.fault != VIOMMU_FAULT_NONE))
			return -EEXIST;
		if (e.kind == PT_TABLE && !subtree_empty(pt, e.addr, e.next_level))
			return -EEXIST;
	}
	uint64_t leaf = g->fmt->mk_leaf(g, pa, level, shift, perms);
	for (unsigned i = 0; i < count; i++) {
		uint64_t old = pte_load(&t[first + i]);
		decode(pt, old, level, &e);
		pte_store(&t[first + i], leaf);
		if (e.kind == PT_TABLE)
			free_subtree(pt, e.addr, e.next_level);
	}
	return 0;
}

int viommu_pt_map(viommu_pt *pt, uint64_t iova, uint64_t paddr, uint64_t size, uint32_t prot,
		  uint64_t *mapped)
{
	uint64_t done = 0;
	int ret = 0;

	if (mapped)
		*mapped = 0;
	if (!pt || !mapped)
		return -EINVAL;
	const struct pt_geom *g = &pt->g;
	if ((iova | paddr | size) & (PT_TABLE_SIZE - 1))
		return -EINVAL;
	if (!range_ok(g, iova, size))
		return -EINVAL;
	uint64_t plast;
	if (__builtin_add_overflow(paddr, size - 1, &plast) || (plast >> g->oas))
		return -EINVAL;
	if (prot & ~VIOMMU_PERM_ALL || !g->fmt->prot_ok(g, prot))
		return -EINVAL;

	while (done < size) {
		uint64_t va = iova + done, pa = paddr + done, left = size - done;
		unsigned shift = 12;
		for (unsigned s = 63; s > 12; s--) {
			uint64_t sz = 1ull << s;
			if ((g->pgsizes & sz) && !((va | pa) & (sz - 1)) && left >= sz) {
				shift = s;
				break;
			}
		}
		ret = map_one(pt, va, pa, shift, prot);
		if (ret)
			break;
		done += 1ull << shift;
	}
	*mapped = done;
	return ret;
}

/*
 * Build a table of `level` that maps 2^(shift of level + 9) bytes at pa with
 * perms, from the largest granted leaves that fit an entry of the level, or
 * tables below when none does. On failure everything built is freed.
 */
static int build_split(struct viommu_pt *pt, unsigned level, uint64_t pa, uint32_t perms, uint64_t *addr_out)
{
	const struct pt_geom *g = &pt->g;
	unsigned eshift = pt_entry_shift(level);
	uint64_t addr, *t;
	int ret = table_alloc(pt, &addr, &t);
	if (ret)
		return ret;
	if (g->pgsizes & (1ull << eshift)) {
		for (unsigned i = 0; i < PT_ENTRIES; i++)
			t[i] = g->fmt->mk_leaf(g, pa + ((uint64_t)i << eshift), level, eshift, perms);
	} else {
		assert(level > 1);
		for (unsigned i = 0; i < PT_ENTRIES; i++) {
			uint64_t sub;
			ret = build_split(pt, level - 1, pa + ((uint64_t)i << eshift), perms, &sub);
			if (ret) {
				/* Entries past i are zero: free_subtree sees
				 * only what was built. */
				free_subtree(pt, addr, level);
				return ret;
			}
			t[i] = g->fmt->mk_table(g, sub, level);
		}
	}
	*addr_out = addr;
	return 0;
}

int viommu_pt_unmap(viommu_pt *pt, uint64_t iova, uint64_t size, uint64_t *unmapped)
{
	if (unmapped)
		*unmapped = 0;
	if (!pt || !unmapped)
		return -EINVAL;
	const struct pt_geom *g = &pt->g;
	if ((iova | size) & (PT_TABLE_SIZE - 1))
		return -EINVAL;
	if (!range_ok(g, iova, size))
		return -EINVAL;

	const uint64_t last = iova + (size - 1);
	uint64_t pos = iova;
	int finished = 0;

	while (!finished) {
		unsigned level = g->levels;
		uint64_t *t = pt->root_host;
		uint64_t span_last; /* last byte this step dealt with */

		for (;;) {
			unsigned eshift = pt_entry_shift(level);
			uint64_t emask = eshift >= 64 ? ~0ull : (1ull << eshift) - 1;
			uint64_t *p = &t[pt_index(pos, level)];
			uint64_t pte = pte_load(p);
			struct pt_entry e;
			decode(pt, pte, level, &e);

			if (e.kind == PT_NONE || e.fault != VIOMMU_FAULT_NONE) {
				span_last = pos | emask;
				if (e.kind != PT_NONE)
					pte_store(p, 0); /* cannot happen in our tables */
				break;
			}
			if (e.kind == PT_TABLE) {
				uint64_t start = pos & ~emask;
				if (start == pos && (pos | emask) <= last) {
					pte_store(p, 0);
					free_subtree(pt, e.addr, e.next_level);
					span_last = pos | emask;
					break;
				}
				t = table_host(pt, e.addr);
				if (!t) {
					*unmapped = pos - iova;
					return -EIO;
				}
				level = e.next_level;
				continue;
			}

			/* A leaf; AMD-Vi pages bigger than an entry are
			 * replicated over a group of entries. */
			uint64_t pmask = (1ull << e.size_shift) - 1;
			uint64_t pstart = pos & ~pmask;
			unsigned count = e.size_shift > eshift ? 1u << (e.size_shift - eshift) : 1u;
			unsigned first = pt_index(pstart, level);
			if (pstart == pos && (pos | pmask) <= last) {
				for (unsigned i = 0; i < count; i++)
					pte_store(&t[first + i], 0);
				span_last = pos | pmask;
				break;
			}
			if (count > 1) {
				/* Rewrite the group as pages of the entry size;
				 * no allocation needed. */
				for (unsigned i = 0; i < count; i++)
					pte_store(&t[first + i],
						  g->fmt->mk_leaf(g, e.addr + ((uint64_t)i << eshift), level,
								  eshift, e.perms));
				continue;
			}
			/* Split one entry's page into a table below. */
			assert(level > 1);
			uint64_t sub;
			int ret = build_split(pt, level - 1, e.addr, e.perms, &sub);
			if (ret) {
				*unmapped = pos - iova;
				return ret;
			}
			pte_store(p, g->fmt->mk_table(g, sub, level));
			/* The walk goes on into the new table. */
		}
		if (span_last >= last)
			finished = 1;
		else
			pos = span_last + 1;
	}
	*unmapped = size;
	return 0;
}

int viommu_pt_lookup(viommu_pt *pt, uint64_t iova, uint32_t access, struct viommu_pt_result *res)
{
	if (!pt || !res)
		return -EINVAL;
	if (access & ~(VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV))
		return -EINVAL;
	const struct pt_acc acc = { .read = pt_acc_read, .or = pt_acc_or, .ctx = pt };
	memset(res, 0, sizeof(*res));
	return pt_walk_geom(&pt->g, &acc, pt->root, iova, access, 1, res);
}

int viommu_pt_iova_to_phys(viommu_pt *pt, uint64_t iova, uint64_t *phys)
{
	struct viommu_pt_result res;

	if (!pt || !phys)
		return -EINVAL;
	const struct pt_acc acc = { .read = pt_acc_read, .or = pt_acc_or, .ctx = pt };
	memset(&res, 0, sizeof(res));
	/* Any permission: a privileged access asking for nothing. */
	if (pt_walk_geom(&pt->g, &acc, pt->root, iova, VIOMMU_ACCESS_PRIV, 0, &res))
		return -ENOENT;
	*phys = res.oaddr;
	return 0;
}

int viommu_pt_for_each(viommu_pt *pt, uint64_t iova, uint64_t size, viommu_pt_visit_fn fn, void *ctx)
{
	if (!pt || !fn)
		return -EINVAL;
	const struct pt_geom *g = &pt->g;
	if (!range_ok(g, iova, size))
		return -EINVAL;

	const uint64_t last = iova + (size - 1);
	uint64_t pos = iova;
	for (;;) {
		unsigned level = g->levels;
		uint64_t *t = pt->root_host;
		uint64_t span_last;
		for (;;) {
			unsigned eshift = pt_entry_shift(level);
			uint64_t emask = eshift >= 64 ? ~0ull : (1ull << eshift) - 1;
			struct pt_entry e;
			decode(pt, pte_load(&t[pt_index(pos, level)]), level, &e);
			if (e.kind == PT_NONE || e.fault != VIOMMU_FAULT_NONE) {
				span_last = pos | emask;
				break;
			}
			if (e.kind == PT_TABLE) {
				t = table_host(pt, e.addr);
				if (!t)
					return -EIO;
				level = e.next_level;
				continue;
			}
			uint64_t pmask = (1ull << e.size_shift) - 1;
			uint64_t pstart = pos & ~pmask;
			uint32_t perms = e.perms;
			int r = fn(ctx, pstart, e.addr, pmask + 1, perms);
			if (r)
				return r;
			span_last = pos | pmask;
			break;
		}
		/* In x86-64's upper half, the walk indexes bits below ias only;
		 * positions stay canonical because ranges never cross halves. */
		if (span_last >= last)
			return 0;
		pos = span_last + 1;
	}
}
