/* SPDX-License-Identifier: MIT */
/*
 * Translation: the IOTLB fast path, one- and two-stage walks with the nested
 * TLB and the page-walk cache, and invalidation.
 */
#include "core_internal.h"

#include <errno.h>
#include <string.h>

#define PERM_BITS 0xfull
#define NTLB_SHIFT_BITS (0x3full << 4)
#define PWC_CLASS(level) (level)

static void fault_set(struct viommu_translation *out, viommu_dev *dev, uint32_t pasid, uint64_t iova,
		      uint32_t access, enum viommu_fault_reason why, uint32_t stage,
		      const struct viommu_pt_result *r)
{
	struct viommu_fault_record *f = &out->fault;
	memset(f, 0, sizeof(*f));
	f->rid = dev->rid;
	f->pasid = pasid;
	f->addr = iova;
	f->access = access;
	f->reason = why;
	f->stage = stage;
	if (r) {
		f->level = r->level;
		f->entry_addr = r->entry_addr;
		f->entry = r->entry;
	}
}

/* ------------------------------------------------------------------------ */
/* Stage 2 with the nested TLB                                              */

struct walk_ctx {
	viommu *v;
	struct inject_req who; /* for injection rules on guest reads */
	viommu_domain *d;
	uint64_t gen;
	uint32_t pasidx;
	uint32_t refs;          /* stage-2 references (table fetches + final) */
	int s2_faulted;
	struct viommu_pt_result s2res;
	/* stage-1 tables seen on the way down, for the page-walk cache */
	uint64_t s1_table[PT_MAX_LEVELS + 1];
	uint32_t s1_perms[PT_MAX_LEVELS + 1];
	uint32_t s1_seen;       /* bit per level */
};

/* Guest-owned tables are read through the injection hook. */
static int guest_acc_read(void *ctx, uint64_t addr, uint64_t *val)
{
	struct walk_ctx *w = ctx;
	return core_guest_read64(w->v, &w->who, addr, val);
}

static int guest_acc_or(void *ctx, uint64_t addr, uint64_t old, uint64_t bits)
{
	struct walk_ctx *w = ctx;
	return mem_or64(w->v->mem, addr, old, bits);
}

/* Entries read in place, but not while a rule may corrupt table reads:
 * those go through guest_acc_read one by one. */
static const uint64_t *guest_acc_map(void *ctx, uint64_t addr, uint64_t len)
{
	struct walk_ctx *w = ctx;
	if ((addr & 7) || inject_active(w->v, VIOMMU_INJECT_CORRUPT_READ))
		return NULL;
	return viommu_mem_ptr(w->v->mem, addr, (size_t)len, 0);
}

/*
 * Walk the domain's own table (one stage, or stage 2). With run_len > 0 the
 * walk goes on along the leaf's table (pt_walk_geom_run) over the pages of
 * [in, in + run_len) and *pages says how many translate alike; else one.
 */
static int domain_walk_run(struct walk_ctx *w, uint64_t in, uint32_t access, int ad, struct viommu_pt_result *res,
			   uint64_t run_len, uint64_t *pages)
{
	viommu_domain *d = w->d;
	struct pt_acc acc;
	uint64_t root;
	const struct pt_geom *g;

	memset(res, 0, sizeof(*res));
	if (d->pt) {
		pt_object_view(d->pt, &acc, &root, &g);
	} else {
		memset(&acc, 0, sizeof(acc));
		acc.read = guest_acc_read;
		acc.or = guest_acc_or;
		acc.map = guest_acc_map;
		acc.ctx = w;
		root = __atomic_load_n(&d->root, __ATOMIC_ACQUIRE);
		g = &d->g;
	}
	__atomic_fetch_add(&w->v->st_walks, 1, __ATOMIC_RELAXED);
	int ret;
	if (run_len) {
		*pages = pt_walk_geom_run(g, &acc, root, in, access, ad, res, run_len);
		ret = *pages ? 0 : -EFAULT;
	} else {
		ret = pt_walk_geom(g, &acc, root, in, access, ad, res);
		if (pages)
			*pages = 1;
	}
	__atomic_fetch_add(&w->v->st_refs, res->refs, __ATOMIC_RELAXED);
	return ret;
}

static int domain_walk(struct walk_ctx *w, uint64_t in, uint32_t access, int ad, struct viommu_pt_result *res)
{
	return domain_walk_run(w, in, access, ad, res, 0, NULL);
}

/*
 * Stage-2 translation of a guest-physical address through the nested TLB.
 * On success *hpa is the output of gpa, *shift the stage-2 page size, *perms
 * its permissions.
 */
static int s2_translate(struct walk_ctx *w, uint64_t gpa, uint32_t access, uint64_t *hpa, unsigned *shift,
			uint32_t *perms)
{
	viommu *v = w->v;
	uint64_t tag = vcache_tag(w->d->id, 0, 0, 12);
	uint64_t val;
	uint32_t need = perms_needed(access | VIOMMU_ACCESS_PRIV);

	if (vcache_lookup(&v->ntlb, tag, gpa >> 12, &val, 1) && (val & need) == need) {
		*hpa = (val & ~0xfffull) | (gpa & 0xfff);
		*shift = (unsigned)((val & NTLB_SHIFT_BITS) >> 4);
		*perms = (uint32_t)(val & PERM_BITS);
		return 0;
	}
	struct viommu_pt_result r;
	int ad = !!(w->d->g.flags & VIOMMU_PT_F_AD);
	int ret = domain_walk(w, gpa, access | VIOMMU_ACCESS_PRIV, 1, &r);
	w->refs += r.refs;
	if (ret) {
		w->s2_faulted = 1;
		w->s2res = r;
		return -EFAULT;
	}
	uint32_t p = r.perms;
	/* With A/D, a write must walk again to set the dirty bit. */
	if (ad && !(access & VIOMMU_ACCESS_WRITE))
		p &= ~VIOMMU_PERM_WRITE;
	unsigned s = (unsigned)__builtin_ctzll(r.page_size);
	vcache_insert(&v->ntlb, &v->gen, w->gen, tag, gpa >> 12,
		      (r.oaddr & ~0xfffull) | ((uint64_t)s << 4) | (p & PERM_BITS));
	*hpa = r.oaddr;
	*shift = s;
	*perms = r.perms;
	return 0;
}

/* Stage-1 accessor: table addresses are stage-2 inputs. */
static int s1_read(void *ctx, uint64_t gpa, uint64_t *val)
{
	struct walk_ctx *w = ctx;
	uint64_t hpa;
	unsigned shift;
	uint32_t perms;
	if (s2_translate(w, gpa, VIOMMU_ACCESS_READ, &hpa, &shift, &perms))
		return -EFAULT;
	return core_guest_read64(w->v, &w->who, hpa, val);
}

static int s1_or(void *ctx, uint64_t gpa, uint64_t old, uint64_t bits)
{
	struct walk_ctx *w = ctx;
	uint64_t hpa;
	unsigned shift;
	uint32_t perms;
	if (s2_translate(w, gpa, VIOMMU_ACCESS_WRITE, &hpa, &shift, &perms))
		return -EFAULT;
	return mem_or64(w->v->mem, hpa, old, bits);
}

static void s1_on_table(void *ctx, unsigned level, uint64_t table, uint32_t perms)
{
	struct walk_ctx *w = ctx;
	if (level > PT_MAX_LEVELS)
		return;
	w->s1_table[level] = table;
	w->s1_perms[level] = perms;
	w->s1_seen |= 1u << level;
}

/* ------------------------------------------------------------------------ */
/* The walk of one request (slow path), under the topology read lock        */

struct walk_out {
	uint64_t oaddr;
	uint64_t pages;   /* pages from the request's on that translate alike */
	unsigned shift;   /* page size of the combined translation */
	uint32_t perms;   /* for the request's check */
	uint32_t cperms;  /* for the IOTLB */
	int cacheable;
};

static int walk_request(struct walk_ctx *w, struct attach *a, uint64_t iova, uint32_t access, uint64_t run_len,
			struct walk_out *o, struct viommu_translation *out, viommu_dev *dev, uint32_t pasid)
{
	viommu_domain *d = w->d;
	struct viommu_pt_result r;
	int ad2 = d->type != VIOMMU_DOMAIN_BLOCKED && d->type != VIOMMU_DOMAIN_IDENTITY &&
		  (d->g.flags & VIOMMU_PT_F_AD);

	o->pages = 1;

	switch (d->type) {
	case VIOMMU_DOMAIN_BLOCKED:
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_BLOCKED, 0, NULL);
		return -EFAULT;
	case VIOMMU_DOMAIN_IDENTITY:
		o->oaddr = iova;
		o->shift = 62; /* one page as big as can be reported */
		o->perms = o->cperms = VIOMMU_PERM_ALL;
		o->cacheable = 0;
		return 0;
	case VIOMMU_DOMAIN_PAGING: {
		int ret = domain_walk_run(w, iova, access, 1, &r, run_len, &o->pages);
		out->refs += r.refs;
		if (ret) {
			fault_set(out, dev, pasid, iova, access, r.fault, 0, &r);
			return -EFAULT;
		}
		o->oaddr = r.oaddr;
		o->shift = (unsigned)__builtin_ctzll(r.page_size);
		o->perms = o->cperms = r.perms;
		if (ad2 && !(access & VIOMMU_ACCESS_WRITE))
			o->cperms &= ~VIOMMU_PERM_WRITE;
		o->cacheable = 1;
		return 0;
	}
	case VIOMMU_DOMAIN_NESTED:
		break;
	}

	/* Stage 1, from the deepest table the page-walk cache knows. */
	viommu *v = w->v;
	const struct pt_geom *g1 = &a->ctx->g;
	uint64_t table = a->ctx->root;
	unsigned level = g1->levels;
	uint32_t perms = VIOMMU_PERM_ALL;
	if (pt_input_ok(g1, iova)) {
		for (unsigned l = 1; l < g1->levels; l++) {
			uint64_t val;
			uint64_t key = iova >> pt_entry_shift(l + 1);
			if (vcache_lookup(&v->pwc, vcache_tag(d->id, w->pasidx, 1, PWC_CLASS(l)), key, &val, 1)) {
				table = val & ~0xfffull;
				perms = (uint32_t)(val & PERM_BITS);
				level = l;
				break;
			}
		}
	}
	struct pt_acc acc = { .read = s1_read, .or = s1_or, .on_table = s1_on_table, .ctx = w };
	memset(&r, 0, sizeof(r));
	__atomic_fetch_add(&v->st_walks, 1, __ATOMIC_RELAXED);
	int ret = pt_walk_geom_from(g1, &acc, table, level, perms, iova, access, 1, &r);
	__atomic_fetch_add(&v->st_refs, r.refs, __ATOMIC_RELAXED);
	out->refs += r.refs;
	if (ret) {
		out->refs += w->refs;
		if (w->s2_faulted)
			fault_set(out, dev, pasid, iova, access, w->s2res.fault, 2, &w->s2res);
		else
			fault_set(out, dev, pasid, iova, access, r.fault, 1, &r);
		return -EFAULT;
	}
	/* Remember the tables this walk went through. */
	for (unsigned l = 1; l < g1->levels; l++) {
		if (!(w->s1_seen & (1u << l)))
			continue;
		uint64_t key = iova >> pt_entry_shift(l + 1);
		vcache_insert(&v->pwc, &v->gen, w->gen, vcache_tag(d->id, w->pasidx, 1, PWC_CLASS(l)), key,
			      w->s1_table[l] | (w->s1_perms[l] & PERM_BITS));
	}

	/* Stage 2 of the output. */
	uint64_t hpa;
	unsigned s2shift;
	uint32_t s2perms;
	uint32_t s2access = access & (VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC);
	ret = s2_translate(w, r.oaddr, s2access, &hpa, &s2shift, &s2perms);
	out->refs += w->refs;
	if (ret) {
		fault_set(out, dev, pasid, iova, access, w->s2res.fault, 2, &w->s2res);
		return -EFAULT;
	}
	unsigned s1shift = (unsigned)__builtin_ctzll(r.page_size);
	o->shift = s1shift < s2shift ? s1shift : s2shift;
	o->oaddr = hpa;
	o->perms = r.perms & (s2perms | VIOMMU_PERM_USER);
	o->cperms = o->perms;
	int ad1 = !!(g1->flags & VIOMMU_PT_F_AD);
	if ((ad1 || ad2) && !(access & VIOMMU_ACCESS_WRITE))
		o->cperms &= ~VIOMMU_PERM_WRITE;
	o->cacheable = 1;
	if ((perms_needed(access) & o->perms) != perms_needed(access)) {
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_PERMISSION, 2, NULL);
		return -EFAULT;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Translation                                                              */

static void fill_out(struct viommu_translation *out, uint64_t iova, uint64_t base, unsigned shift,
		     uint32_t perms)
{
	/* shift is at most 62 (an identity domain's one big page). */
	uint64_t size = 1ull << shift;
	uint64_t off = iova & (size - 1);
	out->oaddr = base + off;
	out->perms = perms;
	out->len = size - off;
}

/* Fault injection and delayed invalidations, when any exist. */
static __attribute__((noinline)) int translate_inject(viommu_dev *dev, uint32_t pasid, uint64_t iova,
						      uint32_t access, struct viommu_translation *out)
{
	viommu *v = dev->v;
	inject_run_delayed(v, 0);
	if (inject_active(v, VIOMMU_INJECT_FAULT)) {
		struct viommu_inject_rule r;
		struct inject_req q = {
			.has_rid = 1, .rid = dev->rid, .has_pasid = 1, .pasid = pasid,
			.has_range = 1, .first = iova, .last = iova, .access = access,
		};
		if (inject_eval(v, VIOMMU_INJECT_FAULT, &q, &r)) {
			fault_set(out, dev, pasid, iova, access, r.reason, 0, NULL);
			return -EFAULT;
		}
	}
	return 0;
}

static __attribute__((noinline)) int translate_excl(viommu_dev *dev, uint32_t pasid, uint64_t iova,
						    uint32_t access, struct viommu_translation *out)
{
	/* Exclusion is per 4 KiB page: report no further than this one, and
	 * check it. */
	uint64_t to_page_end = 0x1000 - (out->oaddr & 0xfff);
	if (out->len > to_page_end)
		out->len = to_page_end;
	if (excl_check(dev->v, out->oaddr, 1)) {
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_EXCLUDED, 0, NULL);
		return -EFAULT;
	}
	return 0;
}

/* No attachment: ask the front-end's resolver, if there is one. 0 when it
 * attached something, else -EFAULT with the fault set. */
static __attribute__((noinline)) int translate_resolve(viommu_dev *dev, uint32_t pasid, uint64_t iova,
						       uint32_t access, struct viommu_translation *out)
{
	viommu *v = dev->v;
	viommu_resolve_fn fn = __atomic_load_n(&v->resolve, __ATOMIC_ACQUIRE);
	void *ctx = __atomic_load_n(&v->resolve_ctx, __ATOMIC_ACQUIRE);
	if (!fn) {
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_BLOCKED, 0, NULL);
		return -EFAULT;
	}
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	int r = fn(ctx, dev, pasid, &f);
	if (!r)
		return 0;
	enum viommu_fault_reason why = VIOMMU_FAULT_BLOCKED;
	if (r == -EFAULT && f.reason != VIOMMU_FAULT_NONE && (unsigned)f.reason < VIOMMU_FAULT_REASON_COUNT)
		why = f.reason;
	fault_set(out, dev, pasid, iova, access, why, 0, NULL);
	out->fault.level = f.level;
	out->fault.entry_addr = f.entry_addr;
	out->fault.entry = f.entry;
	return -EFAULT;
}

/* A walk context for a request of dev's at pasid, inserting into the caches
 * under generation `gen` (~0: never). */
static void walk_ctx_init(struct walk_ctx *w, viommu_dev *dev, uint32_t pasid, uint32_t access, uint64_t gen)
{
	memset(w, 0, sizeof(*w));
	w->v = dev->v;
	w->gen = gen;
	w->who = (struct inject_req){ .has_rid = 1, .rid = dev->rid, .has_pasid = 1, .pasid = pasid, .access = access };
}

/* The slow path: walk the tables under the topology read lock. With
 * run_len, a one-stage walk reports in out->len the pages after iova's that
 * translate alike (see core_translate_run). */
static __attribute__((noinline)) int translate_walk(viommu_dev *dev, struct attach *a, uint32_t pasid,
						    uint32_t pasidx, uint64_t iova, uint32_t access,
						    uint64_t run_len, struct viommu_translation *out)
{
	viommu *v = dev->v;
	/* The generation is read before anything the walk depends on, so an
	 * invalidation racing with it stops its insert. */
	struct walk_ctx w;
	uint64_t gen = __atomic_load_n(&v->gen, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&v->inval_active, __ATOMIC_SEQ_CST))
		gen = ~0ull; /* a generation never reached: no inserts */
	walk_ctx_init(&w, dev, pasid, access, gen);
	w.pasidx = pasidx;
	pthread_rwlock_rdlock(&v->topo);
	uint64_t word = __atomic_load_n(&a->word, __ATOMIC_ACQUIRE);
	if (!(word & ATT_VALID) || !a->dom) {
		pthread_rwlock_unlock(&v->topo);
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_BLOCKED, 0, NULL);
		return -EFAULT;
	}
	/* The attachment may have changed since the fast path looked: tag
	 * with what holds now, under the lock. */
	pasidx = (uint32_t)((word >> ATT_TAG_SHIFT) & ATT_TAG_MASK);
	w.pasidx = pasidx;
	w.d = a->dom;
	struct walk_out o;
	memset(&o, 0, sizeof(o));
	int ret = walk_request(&w, a, iova, access, run_len, &o, out, dev, pasid);
	if (!ret && o.cacheable) {
		/* Only the first page of a run is cached. Caching all of them
		 * was measured: strict 1 MiB reads fell from about 300 to
		 * 100-270 MB/s (each read then inserts and invalidates 256
		 * entries that are never used again), and lazy ones did not
		 * gain. */
		uint64_t tag = vcache_tag(w.d->id, pasidx, w.d->type == VIOMMU_DOMAIN_NESTED, o.shift);
		vcache_insert(&v->iotlb, &v->gen, w.gen, tag, iova >> o.shift,
			      (o.oaddr & ~((1ull << o.shift) - 1)) | (o.cperms & PERM_BITS));
		/* (Read first: an atomic OR on every walk costs more than the
		 * load when the size is known already, as it nearly always is.) */
		if (o.shift >= 12 && o.shift < 64 &&
		    !(__atomic_load_n(&a->sizes, __ATOMIC_RELAXED) & (1ull << (o.shift - 12))))
			__atomic_fetch_or(&a->sizes, 1ull << (o.shift - 12), __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&v->topo);
	if (ret)
		return ret;
	fill_out(out, iova, o.oaddr & ~((1ull << o.shift) - 1), o.shift, o.perms);
	if (o.pages > 1)
		out->len += (o.pages - 1) << o.shift;
	return 0;
}

/* The attachment's word is not valid: look again under the lock (an attach
 * replacing it clears it for a moment), else ask the resolver. 0 and *ap,
 * *wordp on success; else the fault is set and the request counted. */
static __attribute__((noinline)) int translate_attach(viommu_dev *dev, uint32_t pasid, uint64_t iova,
						      uint32_t access, struct viommu_translation *out,
						      struct attach **ap, uint64_t *wordp)
{
	viommu *v = dev->v;
	struct attach *a = *ap;
	uint64_t word = 0;
	if (a) {
		pthread_rwlock_rdlock(&v->topo);
		word = __atomic_load_n(&a->word, __ATOMIC_ACQUIRE);
		pthread_rwlock_unlock(&v->topo);
	}
	if (!(word & ATT_VALID)) {
		int ret = translate_resolve(dev, pasid, iova, access, out);
		if (ret) {
			stat_add(v, ST_REFUSED, 1);
			return ret;
		}
		a = pasid == VIOMMU_NO_PASID ? &dev->nopasid : dev_attach_slot(dev, pasid);
		if (a) {
			pthread_rwlock_rdlock(&v->topo);
			word = __atomic_load_n(&a->word, __ATOMIC_ACQUIRE);
			pthread_rwlock_unlock(&v->topo);
		}
		if (!(word & ATT_VALID)) {
			stat_add(v, ST_REFUSED, 1);
			fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_BLOCKED, 0, NULL);
			return -EFAULT;
		}
	}
	*ap = a;
	*wordp = word;
	return 0;
}

/* VIOMMU_DEBUG_VERIFY_IOTLB: a hit against a fresh walk of the tables. */
static __attribute__((noinline)) void verify_hit(viommu_dev *dev, struct attach *a, uint32_t pasid, uint64_t iova,
						 uint32_t access, const struct viommu_translation *hit)
{
	viommu *v = dev->v;
	struct walk_ctx w;
	walk_ctx_init(&w, dev, pasid, access, ~0ull); /* no inserts */
	struct viommu_translation t;
	memset(&t, 0, sizeof(t));
	struct walk_out o;
	memset(&o, 0, sizeof(o));
	pthread_rwlock_rdlock(&v->topo);
	uint64_t word = __atomic_load_n(&a->word, __ATOMIC_ACQUIRE);
	int ret = -1;
	if ((word & ATT_VALID) && a->dom) {
		w.pasidx = (uint32_t)((word >> ATT_TAG_SHIFT) & ATT_TAG_MASK);
		w.d = a->dom;
		ret = walk_request(&w, a, iova, access, 0, &o, &t, dev, pasid);
	}
	pthread_rwlock_unlock(&v->topo);
	uint64_t walked = ret ? ~0ull : (o.oaddr & ~((1ull << o.shift) - 1)) | (iova & ((1ull << o.shift) - 1));
	uint64_t cached = hit->oaddr;
	if (!ret && walked == cached)
		return;
	uint64_t n = __atomic_fetch_add(&v->debug_stale, 1, __ATOMIC_RELAXED);
	if (n < 20)
		core_log(v, VIOMMU_LOG_ERROR,
			 "debug: stale IOTLB hit #%llu: %02x:%02x.%u iova %#llx -> %#llx cached, the tables give %s %#llx",
			 (unsigned long long)n, dev->rid.bus, dev->rid.devfn >> 3, dev->rid.devfn & 7,
			 (unsigned long long)iova, (unsigned long long)cached, ret ? "a fault, reason" : "",
			 ret ? (unsigned long long)t.fault.reason : (unsigned long long)walked);
}

int core_translate(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access,
		   struct viommu_translation *out)
{
	return core_translate_run(dev, pasid, iova, access, 0, out);
}

int core_translate_run(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access, uint64_t run_len,
		       struct viommu_translation *out)
{
	viommu *v = dev->v;
	int ret;

	/* Only what a hit fills; the fault record is written when there is
	 * one (fault_set). */
	out->refs = 0;
	out->iotlb_hit = 0;
	out->fault.reason = VIOMMU_FAULT_NONE;
	/* Counted as a hit, a miss, or a request refused before the IOTLB:
	 * the sum is the translations. */
	if (__builtin_expect(__atomic_load_n(&v->inj_hot, __ATOMIC_ACQUIRE) != 0, 0)) {
		ret = translate_inject(dev, pasid, iova, access, out);
		if (ret) {
			stat_add(v, ST_REFUSED, 1);
			return ret;
		}
		run_len = 0; /* rules are per request address: one page */
	}
	/* Exclusion is checked per 4 KiB page (translate_excl): one page, so a
	 * write run does not mark pages dirty past an excluded one. */
	if (__builtin_expect(__atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) != 0, 0))
		run_len = 0;
	struct attach *a;
	if (__builtin_expect(pasid == VIOMMU_NO_PASID, 1)) {
		a = &dev->nopasid;
	} else if (pasid > VIOMMU_PASID_MAX) {
		stat_add(v, ST_REFUSED, 1);
		fault_set(out, dev, pasid, iova, access, VIOMMU_FAULT_BAD_REQUEST, 0, NULL);
		return -EFAULT;
	} else {
		a = dev_attach_slot(dev, pasid);
	}
	uint64_t word = a ? __atomic_load_n(&a->word, __ATOMIC_ACQUIRE) : 0;
	if (__builtin_expect(!(word & ATT_VALID), 0)) {
		ret = translate_attach(dev, pasid, iova, access, out, &a, &word);
		if (ret)
			return ret;
	}
	if (word & ATT_IDENTITY) {
		/* No table and nothing cached: no lock either. Counted as a
		 * miss, as a walk-less translation always was. */
		stat_add(v, ST_MISS, 1);
		fill_out(out, iova, iova & ~((1ull << 62) - 1), 62, VIOMMU_PERM_ALL);
		goto check_excl;
	}
	if (iotlb_fast(v, a, word, iova, perms_needed(access), &out->oaddr, &out->len, &out->perms)) {
		stat_add(v, ST_HIT, 1);
		out->iotlb_hit = 1;
		if (__builtin_expect(v->debug_verify, 0))
			verify_hit(dev, a, pasid, iova, access, out);
		goto check_excl;
	}
	stat_add(v, ST_MISS, 1);
	ret = translate_walk(dev, a, pasid, (uint32_t)((word >> ATT_TAG_SHIFT) & ATT_TAG_MASK), iova, access, run_len,
			     out);
	if (ret)
		return ret;
check_excl:
	if (__builtin_expect(__atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) != 0, 0))
		return translate_excl(dev, pasid, iova, access, out);
	return 0;
}

static __attribute__((noinline)) int translate_full(viommu_dev *dev, uint32_t pasid, uint64_t iova,
						    uint32_t access, struct viommu_translation *out)
{
	int ret = core_translate(dev, pasid, iova, access, out);
	if (ret == -EFAULT)
		core_report_fault(dev->v, &out->fault);
	return ret;
}

static __attribute__((noinline)) int count_hit(viommu *v)
{
	stat_add_slow(v, ST_HIT, 1);
	return 0;
}


/*
 * viommu_translate's fast path: an IOTLB hit without PASID in the smallest
 * page size the attachment has cached, in the line looked at first, no
 * injection rule, no exclusion. Written to need no call: every other case
 * goes (a tail call) to the full path, which looks at all of it again. No
 * validity or identity test is needed: an invalid word (0) or an identity
 * one (ATT_IDENTITY, bit 7) makes a tag that no cached entry has. 1 on a hit
 * (out filled, not counted yet), 0 for the full path.
 */
static inline __attribute__((always_inline)) int translate_hit(viommu_dev *dev, uint64_t iova, uint32_t access,
							       struct viommu_translation *out, unsigned shift)
{
	struct attach *a = &dev->nopasid;
	uint64_t key = iova >> shift;
	uint64_t h = vcache_region_hash(vcache_seed_cls(__atomic_load_n(&a->hseed, __ATOMIC_RELAXED), shift), key);
	struct vcache_set *s = vcache_set_h(&dev->iotlb, h, key);
	const struct vcache_line *ln = &s->line[vcache_hint_h(h) >> 1];
	uint32_t seq = __atomic_load_n(&ln->seq, __ATOMIC_ACQUIRE);
	const struct vcache_entry *w = &ln->way[0];
	if (__builtin_expect(seq & 1, 0))
		return 0;
	if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key) {
		w = &ln->way[1]; /* the other way of the line */
		if (__atomic_load_n(&w->key, __ATOMIC_ACQUIRE) != key)
			return 0;
	}
	/* (The same key under another tag in the first way: the full path.) */
	if (__atomic_load_n(&w->tag, __ATOMIC_ACQUIRE) !=
	    (__atomic_load_n(&a->word, __ATOMIC_ACQUIRE) | (uint64_t)shift << 1))
		return 0;
	uint64_t val = __atomic_load_n(&w->val, __ATOMIC_ACQUIRE);
	if (__builtin_expect(__atomic_load_n(&ln->seq, __ATOMIC_RELAXED) != seq || (~val & perms_needed(access)), 0))
		return 0;
	uint64_t size = 1ull << shift;
	uint64_t off = iova & (size - 1);
	out->oaddr = (val & ~0xfffull) + off;
	out->len = size - off;
	out->perms = (uint32_t)(val & PERM_BITS);
	out->refs = 0;
	out->iotlb_hit = 1;
	out->fault.reason = VIOMMU_FAULT_NONE;
	return 1;
}

/* The same when no 4 KiB page is cached: with the smallest size cached. */
static __attribute__((noinline)) int translate_sized(viommu_dev *dev, uint64_t iova, uint32_t access,
						     struct viommu_translation *out, uint64_t sizes)
{
	viommu *v = dev->v;
	if (!sizes ||
	    (__atomic_load_n(&v->inj_hot, __ATOMIC_ACQUIRE) | __atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) |
	     (uint64_t)v->debug_verify) ||
	    !translate_hit(dev, iova, access, out, 12 + (unsigned)__builtin_ctzll(sizes)))
		return translate_full(dev, VIOMMU_NO_PASID, iova, access, out);
	stat_add(dev->v, ST_HIT, 1);
	return 0;
}

int viommu_translate(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access,
		     struct viommu_translation *out)
{
	if (!dev || !out)
		return -EINVAL;
	if (access & ~(VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV))
		return -EINVAL;
	if (pasid != VIOMMU_NO_PASID)
		return translate_full(dev, pasid, iova, access, out);
	uint64_t sizes = __atomic_load_n(&dev->nopasid.sizes, __ATOMIC_ACQUIRE);
	/* 4 KiB pages cached (the common case): every shift a constant. */
	if (__builtin_expect(!(sizes & 1), 0))
		return translate_sized(dev, iova, access, out, sizes);
	viommu *v = dev->v;
	if (__builtin_expect(__atomic_load_n(&v->inj_hot, __ATOMIC_ACQUIRE) |
			     __atomic_load_n(&v->excl_pages, __ATOMIC_ACQUIRE) | (uint64_t)v->debug_verify, 0))
		return translate_full(dev, VIOMMU_NO_PASID, iova, access, out);
	if (!translate_hit(dev, iova, access, out, 12))
		return translate_full(dev, VIOMMU_NO_PASID, iova, access, out);
	/* dev->v read again rather than kept: one register less to keep
	 * across the lookup (the fast path then needs no stack frame). */
	if (__builtin_expect(stat_add_fast(dev->v, ST_HIT, 1), 1))
		return 0;
	return count_hit(dev->v); /* a tail call */
}

/* ------------------------------------------------------------------------ */
/* Invalidation                                                             */

void inval_request(viommu *v, const struct inval_req *q)
{
	inject_run_delayed(v, 0);
	__atomic_fetch_add(&v->st_invalidations, 1, __ATOMIC_RELAXED);
	if ((inject_active(v, VIOMMU_INJECT_DROP_INVAL) || inject_active(v, VIOMMU_INJECT_DELAY_INVAL)) &&
	    inject_invalidation(v, q))
		return;
	inval_do(v, q);
}

/*
 * Walks feed caches from caches: a walk may meet a page-walk-cache or
 * nested-TLB entry that this invalidation has not reached yet and put what it
 * made of it into the IOTLB. So while an invalidation runs, no walk may
 * insert anything: walks note the generation, then whether an invalidation
 * is active (cache.c has the rest of the argument).
 */
void inval_do(viommu *v, const struct inval_req *q)
{
	__atomic_fetch_add(&v->inval_active, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&v->gen, 1, __ATOMIC_SEQ_CST);
	if (!q->domid) {
		/* Domain ids start at 1: 0 stands for every domain. */
		struct vcache_match all = { .all = 1 };
		vcache_invalidate(&v->iotlb, &all);
		vcache_invalidate(&v->pwc, &all);
		vcache_invalidate(&v->ntlb, &all);
	} else {
		struct vcache_match m = {
			.domid = q->domid,
			.any_pasid = q->any_pasid,
			.pasidx = q->tagid,
			.nested = q->nested,
			.ranged = q->iotlb_ranged,
			.first = q->first,
			.last = q->last,
		};
		vcache_invalidate(&v->iotlb, &m);
		/* Only nested domains have walk-cache and nested-TLB entries. */
		if (q->nested) {
			struct vcache_match pm = m;
			pm.ranged = 0; /* walk-cache keys are prefixes, not pages */
			vcache_invalidate(&v->pwc, &pm);
		}
		if (q->ntlb && q->nested) {
			struct vcache_match nm = m;
			nm.any_pasid = 1;
			nm.nested = 0; /* nested-TLB tags: tag id 0, hashed by page */
			nm.ranged = q->ntlb == 2;
			vcache_invalidate(&v->ntlb, &nm);
		}
	}
	__atomic_fetch_sub(&v->inval_active, 1, __ATOMIC_SEQ_CST);
}

void viommu_invalidate_all(viommu *v)
{
	if (!v)
		return;
	struct inval_req q = { .domid = 0 };
	inval_request(v, &q);
	pthread_rwlock_rdlock(&v->topo);
	for (viommu_domain *d = v->domains; d; d = d->next)
		if (!d->pt && (d->type == VIOMMU_DOMAIN_PAGING || d->type == VIOMMU_DOMAIN_NESTED))
			notify_guest_range(d, 0, ~0ull);
	pthread_rwlock_unlock(&v->topo);
}

void viommu_invalidate_domain(viommu_domain *d)
{
	if (!d)
		return;
	struct inval_req q = { .domid = d->id, .any_pasid = 1, .ntlb = 1,
			       .nested = d->type == VIOMMU_DOMAIN_NESTED };
	inval_request(d->v, &q);
	if (!d->pt && (d->type == VIOMMU_DOMAIN_PAGING || d->type == VIOMMU_DOMAIN_NESTED))
		notify_guest_range(d, 0, ~0ull);
}

/* Invalidate the IOTLB and walk caches of one PASID of a domain: of each
 * stage-1 context it has when nested. */
static void inval_pasid(viommu_domain *d, uint32_t pasid, int ranged, uint64_t first, uint64_t last)
{
	uint32_t tags[64];
	viommu *v = d->v;
	pthread_rwlock_rdlock(&v->topo);
	int n = domain_pasid_tags(d, pasid, tags, 64);
	if (n >= 64) {
		/* Very many stage-1 tables on one PASID: take the domain. */
		pthread_rwlock_unlock(&v->topo);
		struct inval_req q = { .domid = d->id, .any_pasid = 1, .pasid = pasid,
				       .nested = d->type == VIOMMU_DOMAIN_NESTED };
		inval_request(v, &q);
		return;
	}
	pthread_rwlock_unlock(&v->topo);
	if (!n) {
		/* Nothing cached can carry it; still one invalidation for the
		 * counters and injection rules. */
		tags[0] = pasid_index(pasid) | 0x100000u;
		n = 1;
	}
	for (int i = 0; i < n; i++) {
		struct inval_req q = {
			.domid = d->id, .pasid = pasid, .tagid = tags[i], .nested = d->type == VIOMMU_DOMAIN_NESTED,
			.iotlb_ranged = ranged, .first = first, .last = last,
		};
		inval_request(v, &q);
	}
}

void viommu_invalidate_pasid(viommu_domain *d, uint32_t pasid)
{
	if (!d)
		return;
	inval_pasid(d, pasid, 0, 0, 0);
}

void inval_domain_range(viommu_domain *d, uint64_t first, uint64_t last)
{
	struct inval_req q = { .domid = d->id, .any_pasid = 1, .first = first, .last = last,
			       .nested = d->type == VIOMMU_DOMAIN_NESTED };
	if (d->type == VIOMMU_DOMAIN_NESTED) {
		/* A stage-2 change: IOTLB entries are tagged by stage-1
		 * input, so all of the domain's go; the nested TLB only in
		 * the range. */
		q.ntlb = 2;
	} else {
		q.iotlb_ranged = 1;
	}
	inval_request(d->v, &q);
}

int viommu_invalidate_range(viommu_domain *d, uint32_t pasid, int all_pasids, uint64_t iova, uint64_t size)
{
	uint64_t last;
	if (!d || !size || __builtin_add_overflow(iova, size - 1, &last))
		return -EINVAL;
	if (!all_pasids) {
		inval_pasid(d, pasid, 1, iova, last);
		return 0;
	}
	inval_domain_range(d, iova, last);
	if (!d->pt && (d->type == VIOMMU_DOMAIN_PAGING || d->type == VIOMMU_DOMAIN_NESTED))
		return notify_guest_range(d, iova, last);
	return 0;
}
