/* SPDX-License-Identifier: MIT */
/*
 * The Intel VT-d front-end (legacy translation mode).
 *
 * It decodes what the guest writes into the register page and into its root,
 * context and invalidation-queue structures, and turns it into calls of the
 * core: devices are attached on demand by a resolver that reads the guest's
 * root and context entries; a context-cache invalidation re-resolves the
 * devices it covers at once (an attach that replaces the old one, so DMA in
 * flight never finds them unattached); IOTLB invalidations become
 * viommu_invalidate_*; interrupt remapping is viommu_ir_configure;
 * the core's fault records are copied into the fault recording registers.
 * The translation, the caches and the fault records themselves are the
 * core's (DESIGN.md).
 *
 * Locks: `lock` guards the register file (every MMIO access, the fault
 * recording registers, the invalidation queue); `dom_lock` guards the device
 * table, the domain table and what the resolver reads of the register state
 * (TES and the latched root table address). Order: lock, then dom_lock. The
 * resolver is called by translating threads with no lock of the library
 * held and takes dom_lock only. The fault-queue notify callback takes lock
 * (then dom_lock). Interrupts (fault event, invalidation completion) are
 * decided under lock and sent after it is dropped.
 *
 * The internals of the core it uses (core_internal.h): the instance's
 * allocation hooks and log, a device's requester ID, and whether the
 * instance has a fault queue. Everything else is the public API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <viommu/faultlog.h>
#include <viommu/inject.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>
#include <viommu/vtd.h>

#include "core_internal.h"
#include "vtd_regs.h"

#define VTD_FQ_ENTRIES 1024u

/* A core paging domain for one (DID, second-level root, levels). */
struct vtd_domain {
	struct vtd_domain *next;
	viommu_domain *d;
	uint64_t root;
	uint16_t did;
	uint8_t levels;
	uint32_t users;     /* devices of this unit attached to it */
};

/* A requester the unit made (viommu_vtd_device). */
struct vtd_dev {
	viommu_dev *dev;        /* NULL: no requester at this RID */
	struct vtd_domain *dom; /* second-level domain attached, else NULL */
	uint16_t did;           /* of the context entry it was attached by */
	uint8_t attached;       /* its NO_PASID is attached (by the unit) */
	uint8_t fpd;            /* the context entry's FPD, as last read */
};

/* Interrupts to send once the register lock is dropped. */
struct vtd_irqs {
	int fault, compl;
	uint64_t fault_addr, compl_addr;
	uint32_t fault_data, compl_data;
};

struct viommu_vtd {
	viommu *v;
	struct valloc alloc;
	struct viommu_vtd_config cfg;
	uint64_t cap, ecap;
	uint64_t haw_rsvd;      /* address bits at or above the host address width */
	uint32_t nfr;           /* fault recording registers */
	uint32_t oas;           /* output address bits of the second-level tables */

	pthread_mutex_t lock;
	pthread_mutex_t dom_lock;

	/* Register file (under lock). */
	uint32_t gsts, fsts, fectl, fedata, feaddr, feuaddr;
	uint32_t pmen, plmbase, plmlimit;
	uint32_t ics, iectl, iedata, ieaddr, ieuaddr;
	uint64_t rtaddr, ccmd, aflog, phmbase, phmlimit;
	uint64_t iqh, iqt, iqa, iqercd, irta, iva, iotlb;
	uint64_t (*frcd)[2];    /* nfr records: low, high qword */
	uint32_t frcd_set;      /* records with F set (PPF = frcd_set != 0) */
	uint32_t fri;           /* FSTS.FRI */
	uint32_t fri_next;      /* where the next fault goes (7.3.1) */

	/* Latched by GCMD (under lock). */
	uint64_t iq_base;
	uint32_t iq_entries;
	uint64_t irta_latched;

	/* A wait descriptor whose completion is delayed by injection: the
	 * queue stalls at it (IQH names it) until the deadline, checked on
	 * every register access. */
	int wait_pending;
	uint64_t wait_deadline_ns;
	uint64_t wait_lo, wait_hi;

	/* Translation state (under dom_lock). */
	int tes;
	uint64_t rta;           /* latched root table address */
	struct vtd_dev *bus[256];
	uint32_t nr_devs;
	struct vtd_domain *domains;
	uint32_t nr_domains;
	viommu_domain *identity;

	viommu_fault_queue *fq;

	/* viommu_vtd_set_mirror: a copy of the register page, kept current
	 * under lock (64-bit stores, so a guest reading it sees whole values). */
	uint64_t *mirror;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint16_t rid_sid(struct viommu_rid rid)
{
	return (uint16_t)(rid.bus << 8 | rid.devfn);
}

static void vtd_log(struct viommu_vtd *t, enum viommu_log_level lvl, const char *msg)
{
	core_log(t->v, lvl, "vtd: %s", msg);
}

/* SAGAW bit of a context entry's AW value, 0 when the value is not one of
 * 39/48/57-bit. */
static uint64_t aw_sagaw_bit(unsigned aw)
{
	return aw >= 1 && aw <= 3 ? 1ull << (VTD_CAP_SAGAW_SHIFT + aw) : 0;
}

/* ------------------------------------------------------------------------ */
/* Interrupts: fault event and invalidation completion (11.4, FECTL/IECTL)  */

/* An interrupt condition of the fault event: pending while masked. */
static void fault_event(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	if (t->fectl & VTD_ECTL_IM) {
		t->fectl |= VTD_ECTL_IP;
		return;
	}
	irq->fault = 1;
	irq->fault_addr = (uint64_t)t->feuaddr << 32 | t->feaddr;
	irq->fault_data = t->fedata;
}

static void compl_event(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	if (t->iectl & VTD_ECTL_IM) {
		t->iectl |= VTD_ECTL_IP;
		return;
	}
	irq->compl = 1;
	irq->compl_addr = (uint64_t)t->ieuaddr << 32 | t->ieaddr;
	irq->compl_data = t->iedata;
}

/* Set FSTS bits; each one that goes from clear to set is an interrupt
 * condition (one already set is not a new one). */
static void fsts_set(struct viommu_vtd *t, uint32_t bits, struct vtd_irqs *irq)
{
	uint32_t fresh = bits & ~t->fsts;
	t->fsts |= bits;
	if (fresh)
		fault_event(t, irq);
}

/* Software serviced every condition before the interrupt went out: the
 * pending interrupt is dropped. */
static void fault_ip_update(struct viommu_vtd *t)
{
	if (!(t->fsts & (VTD_FSTS_PFO | VTD_FSTS_IQE | VTD_FSTS_ICE | VTD_FSTS_ITE)) && !t->frcd_set)
		t->fectl &= ~VTD_ECTL_IP;
}

static void irqs_send(struct viommu_vtd *t, const struct vtd_irqs *irq)
{
	/* The unit's own interrupts are not remapped; they come from the
	 * unit, which has no requester ID of its own: segment:00:00.0. */
	struct viommu_rid self = { .segment = t->cfg.segment };
	if (irq->fault)
		viommu_msi_send(t->v, self, irq->fault_addr, irq->fault_data);
	if (irq->compl)
		viommu_msi_send(t->v, self, irq->compl_addr, irq->compl_data);
}

/* ------------------------------------------------------------------------ */
/* Devices and domains (under dom_lock)                                     */

static struct vtd_dev *dev_slot(struct viommu_vtd *t, struct viommu_rid rid, int create)
{
	struct vtd_dev *b = t->bus[rid.bus];
	if (!b) {
		if (!create)
			return NULL;
		b = valloc_zget(&t->alloc, sizeof(*b) * 256, 64);
		if (!b)
			return NULL;
		t->bus[rid.bus] = b;
	}
	return &b[rid.devfn];
}

static void dev_detach(struct vtd_dev *vd)
{
	if (!vd->attached)
		return;
	viommu_dev_detach(vd->dev, VIOMMU_NO_PASID);
	if (vd->dom)
		vd->dom->users--;
	vd->dom = NULL;
	vd->attached = 0;
}

/* Attach to a second-level domain (vdom) or, with vdom NULL, identity. */
static int dev_attach(struct viommu_vtd *t, struct vtd_dev *vd, struct vtd_domain *vdom, uint16_t did)
{
	int r = viommu_dev_attach(vd->dev, VIOMMU_NO_PASID, vdom ? vdom->d : t->identity, NULL);
	if (r)
		return r;
	if (vd->dom != vdom) {
		if (vd->dom)
			vd->dom->users--;
		if (vdom)
			vdom->users++;
	}
	vd->dom = vdom;
	vd->did = did;
	vd->attached = 1;
	return 0;
}

typedef int (*dev_match_fn)(const struct vtd_dev *vd, struct viommu_rid rid, uint32_t a, uint32_t b);

static int match_did(const struct vtd_dev *vd, struct viommu_rid rid, uint32_t did, uint32_t unused)
{
	(void)rid;
	(void)unused;
	return vd->did == did;
}

/* Device-selective: the source ID with the function bits the mask names
 * ignored (FM 1: bit 2, 2: bits 2:1, 3: bits 2:0). */
static int match_sid(const struct vtd_dev *vd, struct viommu_rid rid, uint32_t sid, uint32_t fm)
{
	(void)vd;
	uint32_t ignore = ((1u << fm) - 1) << (3 - fm);
	return ((rid_sid(rid) ^ sid) & ~ignore & 0xffff) == 0;
}

static void domain_free(struct viommu_vtd *t, struct vtd_domain *vdom)
{
	viommu_domain_destroy(vdom->d);
	valloc_put(&t->alloc, vdom, sizeof(*vdom), 64);
	t->nr_domains--;
}

/* Free the domains no device uses (their cached translations go too,
 * which is always allowed: a cache may drop anything at any time). */
static void domains_gc(struct viommu_vtd *t)
{
	struct vtd_domain **pp = &t->domains;
	while (*pp) {
		struct vtd_domain *vdom = *pp;
		if (!vdom->users) {
			*pp = vdom->next;
			domain_free(t, vdom);
		} else {
			pp = &vdom->next;
		}
	}
}

static int domain_get(struct viommu_vtd *t, uint16_t did, uint64_t root, unsigned levels, struct vtd_domain **out)
{
	for (struct vtd_domain *vdom = t->domains; vdom; vdom = vdom->next) {
		if (vdom->did == did && vdom->root == root && vdom->levels == levels) {
			*out = vdom;
			return 0;
		}
	}
	/* A guest that keeps pointing context entries at new tables without
	 * a global invalidation must not grow the table without bound. */
	if (t->nr_domains >= 2 * t->nr_devs + 64)
		domains_gc(t);
	struct vtd_domain *vdom = valloc_zget(&t->alloc, sizeof(*vdom), 64);
	if (!vdom)
		return -ENOMEM;
	struct viommu_domain_config dc = {
		.size = sizeof(dc),
		.type = VIOMMU_DOMAIN_PAGING,
		.pt = { .size = sizeof(dc.pt), .format = VIOMMU_PT_VTD_SL, .levels = levels, .oas = t->oas },
	};
	int r = viommu_domain_create(t->v, &dc, &vdom->d);
	if (r)
		goto err_free;
	r = viommu_domain_set_root(vdom->d, root);
	if (r)
		goto err_domain;
	vdom->did = did;
	vdom->root = root;
	vdom->levels = (uint8_t)levels;
	vdom->next = t->domains;
	t->domains = vdom;
	t->nr_domains++;
	*out = vdom;
	return 0;

err_domain:
	viommu_domain_destroy(vdom->d);
err_free:
	valloc_put(&t->alloc, vdom, sizeof(*vdom), 64);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Root and context entries (9.1, 9.3): the resolver                        */

/*
 * Why a present context entry is not usable: 0 when it is, VTD_FR_CTX_RSVD
 * for a reserved field, VTD_FR_CTX_INVALID for a translation type or address
 * width the unit does not support. One qword at a time, so the fault record
 * (which carries one qword) gives the same answer again.
 */
static unsigned ctx_lo_check(const struct viommu_vtd *t, uint64_t lo)
{
	unsigned tt = (unsigned)((lo & VTD_CTX_TT_MASK) >> VTD_CTX_TT_SHIFT);
	if (lo & VTD_CTX_RSVD_LO)
		return VTD_FR_CTX_RSVD;
	if (tt == VTD_TT_SL) {
		if (lo & VTD_CTX_SLPT_MASK & t->haw_rsvd)
			return VTD_FR_CTX_RSVD;
		return 0;
	}
	if (tt == VTD_TT_PT && (t->ecap & VTD_ECAP_PT))
		return 0; /* SLPTPTR is ignored for pass-through */
	return VTD_FR_CTX_INVALID;
}

static unsigned ctx_hi_check(const struct viommu_vtd *t, uint64_t hi)
{
	if (hi & VTD_CTX_RSVD_HI)
		return VTD_FR_CTX_RSVD;
	if (!(aw_sagaw_bit((unsigned)(hi & VTD_CTX_AW_MASK)) & t->cap))
		return VTD_FR_CTX_INVALID;
	return 0;
}

static int res_fault(struct viommu_fault_record *f, enum viommu_fault_reason why, uint64_t addr, uint64_t entry)
{
	f->reason = why;
	f->level = 0;
	f->entry_addr = addr;
	f->entry = entry;
	return -EFAULT;
}

/* Guest structures (root and context entries, descriptors) are read
 * through the core's hook, so CORRUPT_READ injection rules reach them. */
static int read128(struct viommu_vtd *t, uint64_t addr, uint64_t *lo, uint64_t *hi)
{
	struct inject_req who;
	memset(&who, 0, sizeof(who));
	if (core_guest_read64(t->v, &who, addr, lo) || core_guest_read64(t->v, &who, addr + 8, hi))
		return -EFAULT;
	return 0;
}

/* Read the requester's root and context entries and attach it as they say
 * (9.1, 9.3; 3.4 "Mapping Devices to Domains" says how a legacy-mode request
 * finds its context entry). 0, -EFAULT with the fault named in *f, or
 * -ENOMEM. Under dom_lock. */
static int resolve_locked(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid,
			  struct viommu_fault_record *f)
{
	if (!t->tes) /* translation off: DMA passes untranslated */
		return dev_attach(t, vd, NULL, 0);
	uint64_t ra = t->rta + (uint64_t)rid.bus * VTD_ROOT_ENTRY_SIZE, rlo, rhi;
	if (read128(t, ra, &rlo, &rhi))
		return res_fault(f, VIOMMU_FAULT_ROOT_TABLE, ra, 0);
	if (!(rlo & VTD_ROOT_P))
		return res_fault(f, VIOMMU_FAULT_ROOT_NOT_PRESENT, ra, rlo);
	if (rlo & (VTD_ROOT_RSVD_LO | (VTD_ROOT_CTP_MASK & t->haw_rsvd)))
		return res_fault(f, VIOMMU_FAULT_ROOT_INVALID, ra, rlo);
	if (rhi)
		return res_fault(f, VIOMMU_FAULT_ROOT_INVALID, ra + 8, rhi);
	uint64_t ca = (rlo & VTD_ROOT_CTP_MASK) + (uint64_t)rid.devfn * VTD_CTX_ENTRY_SIZE, clo, chi;
	if (read128(t, ca, &clo, &chi))
		return res_fault(f, VIOMMU_FAULT_CTX_TABLE, ca, 0);
	if (!(clo & VTD_CTX_P))
		return res_fault(f, VIOMMU_FAULT_CTX_NOT_PRESENT, ca, clo);
	/* From here on the entry is present: its FPD decides whether the
	 * faults it leads to are recorded. */
	vd->fpd = !!(clo & VTD_CTX_FPD);
	if (ctx_lo_check(t, clo))
		return res_fault(f, VIOMMU_FAULT_CTX_INVALID, ca, clo);
	if (ctx_hi_check(t, chi))
		return res_fault(f, VIOMMU_FAULT_CTX_INVALID, ca + 8, chi);
	uint16_t did = (uint16_t)((chi >> VTD_CTX_DID_SHIFT) & ((1u << VTD_DID_BITS) - 1));
	unsigned tt = (unsigned)((clo & VTD_CTX_TT_MASK) >> VTD_CTX_TT_SHIFT);
	if (tt == VTD_TT_PT)
		return dev_attach(t, vd, NULL, did);
	unsigned levels = 2 + (unsigned)(chi & VTD_CTX_AW_MASK);
	struct vtd_domain *vdom;
	int r = domain_get(t, did, clo & VTD_CTX_SLPT_MASK, levels, &vdom);
	return r ? r : dev_attach(t, vd, vdom, did);
}

/* The core asks: which domain is this requester in? */
static int vtd_resolve(void *ctx, viommu_dev *dev, uint32_t pasid, struct viommu_fault_record *f)
{
	struct viommu_vtd *t = ctx;
	struct viommu_rid rid = dev->rid;
	int r = -ENOENT;

	/* Legacy mode translates requests without PASID only. */
	if (pasid != VIOMMU_NO_PASID || rid.segment != t->cfg.segment)
		return -ENOENT;
	pthread_mutex_lock(&t->dom_lock);
	struct vtd_dev *vd = dev_slot(t, rid, 0);
	if (vd && vd->dev == dev)
		r = resolve_locked(t, vd, rid, f);
	pthread_mutex_unlock(&t->dom_lock);
	return r;
}

/*
 * The guest invalidated the context cache (or switched translation) for the
 * devices `match` accepts (all with NULL): each attached one is resolved
 * again at once, so it goes from its old attachment straight to its new one
 * (viommu_dev_attach replaces), and DMA running meanwhile never finds it
 * unattached; one whose entries no longer resolve is detached, and its next
 * request faults with the reason. Under dom_lock.
 */
static void devs_refresh(struct viommu_vtd *t, dev_match_fn match, uint32_t a, uint32_t b)
{
	for (unsigned bus = 0; bus < 256; bus++) {
		struct vtd_dev *bv = t->bus[bus];
		if (!bv)
			continue;
		for (unsigned devfn = 0; devfn < 256; devfn++) {
			struct vtd_dev *vd = &bv[devfn];
			struct viommu_rid rid = { .segment = t->cfg.segment, .bus = (uint8_t)bus, .devfn = (uint8_t)devfn };
			struct viommu_fault_record f;
			/* Requesters not attached yet are resolved too: one
			 * whose DMA the core never translates (a passthrough
			 * device whose consumer follows its domain) has no
			 * other moment to be. */
			if (!vd->dev || (match && !match(vd, rid, a, b)))
				continue;
			memset(&f, 0, sizeof(f));
			if (resolve_locked(t, vd, rid, &f))
				dev_detach(vd);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Fault recording (7.3.1 primary fault logging)                            */

static int is_ir_reason(enum viommu_fault_reason r)
{
	return r == VIOMMU_FAULT_IR_INDEX || r == VIOMMU_FAULT_IR_NOT_PRESENT || r == VIOMMU_FAULT_IR_COMPAT_BLOCKED ||
	       r == VIOMMU_FAULT_IR_SOURCE_ID;
}

/* An interrupt-remapping fault: a named IR reason, or an IRTE that could
 * not be read or had reserved bits (the core names the entry it read: the
 * table's, for the index in addr; a walk's faults name a level). */
static int is_ir_fault(const struct viommu_vtd *t, const struct viommu_fault_record *r)
{
	if (is_ir_reason(r->reason))
		return 1;
	if (r->reason != VIOMMU_FAULT_RESERVED_BIT && r->reason != VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY)
		return 0;
	return r->level == 0 && r->stage == 0 && r->pasid == VIOMMU_NO_PASID && r->addr < 0x20000 &&
	       r->entry_addr == (t->irta_latched & VTD_IRTA_ADDR_MASK) + r->addr * 16;
}

static unsigned ir_code(enum viommu_fault_reason r)
{
	switch (r) {
	case VIOMMU_FAULT_IR_INDEX: return VTD_FR_IR_INDEX;
	case VIOMMU_FAULT_IR_NOT_PRESENT: return VTD_FR_IR_NOT_PRESENT;
	case VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY: return VTD_FR_IR_TABLE;
	case VIOMMU_FAULT_RESERVED_BIT: return VTD_FR_IR_RSVD;
	case VIOMMU_FAULT_IR_COMPAT_BLOCKED: return VTD_FR_IR_COMPAT;
	case VIOMMU_FAULT_IR_SOURCE_ID: return VTD_FR_IR_SID;
	default: return 0;
	}
}

/* The VT-d reason of a DMA fault, or 0 for one VT-d has no code for (it is
 * the host's business: exclusion, a bad target, a malformed request, a
 * requester the unit does not attach). */
static unsigned dma_code(const struct viommu_vtd *t, const struct viommu_fault_record *r)
{
	switch (r->reason) {
	case VIOMMU_FAULT_NOT_PRESENT:
	case VIOMMU_FAULT_PERMISSION:
		return (r->access & VIOMMU_ACCESS_WRITE) ? VTD_FR_WRITE : VTD_FR_READ;
	case VIOMMU_FAULT_RESERVED_BIT: return VTD_FR_PTE_RSVD;
	case VIOMMU_FAULT_ADDR_WIDTH: return VTD_FR_ADDR_WIDTH;
	case VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY:
	case VIOMMU_FAULT_WALK_LOOP:
	case VIOMMU_FAULT_ROOT_MISALIGNED:
	case VIOMMU_FAULT_TABLE_WRITE:
		return VTD_FR_PTE_ACCESS;
	case VIOMMU_FAULT_ROOT_NOT_PRESENT: return VTD_FR_ROOT_NOT_PRESENT;
	case VIOMMU_FAULT_ROOT_INVALID: return VTD_FR_ROOT_RSVD;
	case VIOMMU_FAULT_ROOT_TABLE: return VTD_FR_ROOT_TABLE;
	case VIOMMU_FAULT_CTX_NOT_PRESENT: return VTD_FR_CTX_NOT_PRESENT;
	case VIOMMU_FAULT_CTX_TABLE: return VTD_FR_CTX_TABLE;
	case VIOMMU_FAULT_CTX_INVALID: {
		/* The resolver names the qword at fault; an injected fault
		 * names none and counts as a reserved field. */
		unsigned c = (r->entry_addr & 8) ? ctx_hi_check(t, r->entry) : ctx_lo_check(t, r->entry);
		return c ? c : VTD_FR_CTX_RSVD;
	}
	default:
		return 0;
	}
}

/* Faults found before a present context entry was read are not subject to
 * its FPD. */
static int fpd_applies(enum viommu_fault_reason r)
{
	return r != VIOMMU_FAULT_ROOT_NOT_PRESENT && r != VIOMMU_FAULT_ROOT_INVALID && r != VIOMMU_FAULT_ROOT_TABLE &&
	       r != VIOMMU_FAULT_CTX_NOT_PRESENT && r != VIOMMU_FAULT_CTX_TABLE;
}

/* Record one fault in the next fault recording register (7.3.1). */
static void frcd_log(struct viommu_vtd *t, uint64_t lo, uint64_t hi, struct vtd_irqs *irq)
{
	/* While PFO is set nothing more is recorded. */
	if (t->fsts & VTD_FSTS_PFO)
		return;
	uint32_t idx = t->fri_next;
	if (t->frcd[idx][1] & VTD_FRCD_F) {
		fsts_set(t, VTD_FSTS_PFO, irq);
		return;
	}
	int ppf_was = t->frcd_set != 0;
	t->frcd[idx][0] = lo;
	t->frcd[idx][1] = hi | VTD_FRCD_F;
	t->frcd_set++;
	t->fri_next = (idx + 1) % t->nfr;
	if (!ppf_was) {
		/* FRI names the first record of a new batch. */
		t->fri = idx;
		fault_event(t, irq);
	}
}

static void fault_record(struct viommu_vtd *t, const struct viommu_fault_record *r, struct vtd_irqs *irq)
{
	uint64_t lo, hi = rid_sid(r->rid);
	unsigned code;

	if (is_ir_fault(t, r)) {
		if (!(t->gsts & VTD_GSTS_IRES))
			return;
		code = ir_code(r->reason);
		lo = (r->addr & 0xffff) << VTD_FRCD_IR_IDX_SHIFT;
	} else {
		/* DMA faults of this unit's requesters while translation is on. */
		if (!(t->gsts & VTD_GSTS_TES) || r->rid.segment != t->cfg.segment || r->pasid != VIOMMU_NO_PASID)
			return;
		pthread_mutex_lock(&t->dom_lock);
		struct vtd_dev *vd = dev_slot(t, r->rid, 0);
		int known = vd && vd->dev;
		int fpd = known && vd->fpd;
		pthread_mutex_unlock(&t->dom_lock);
		if (!known || (fpd && fpd_applies(r->reason)))
			return;
		code = dma_code(t, r);
		lo = r->addr & VTD_FRCD_FI_MASK;
		if (!(r->access & VIOMMU_ACCESS_WRITE))
			hi |= VTD_FRCD_T1;
	}
	if (!code)
		return;
	hi |= (uint64_t)code << VTD_FRCD_FR_SHIFT;
	frcd_log(t, lo, hi, irq);
}

/* The core stored a record in our queue: move everything there into the
 * fault recording registers, in sequence order. */
static void mirror_update(struct viommu_vtd *t);

static void vtd_fq_notify(void *ctx, const struct viommu_fault_record *unused)
{
	struct viommu_vtd *t = ctx;
	struct viommu_fault_record r;
	struct vtd_irqs irq = { 0 };
	(void)unused;

	pthread_mutex_lock(&t->lock);
	while (viommu_fault_queue_pop(t->fq, &r) == 0)
		fault_record(t, &r, &irq);
	struct viommu_fault_queue_status st;
	viommu_fault_queue_get_status(t->fq, &st);
	if (st.overflow) {
		/* Records the guest can never see: an overflow to it too. */
		viommu_fault_queue_clear_overflow(t->fq);
		fsts_set(t, VTD_FSTS_PFO, &irq);
	}
	mirror_update(t);
	pthread_mutex_unlock(&t->lock);
	irqs_send(t, &irq);
}

/* ------------------------------------------------------------------------ */
/* Invalidation (6.5): context cache, IOTLB, interrupt entry cache          */

static void cc_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint16_t sid, unsigned fm)
{
	pthread_mutex_lock(&t->dom_lock);
	if (g == VTD_CC_GLOBAL) {
		devs_refresh(t, NULL, 0, 0);
		domains_gc(t);
	} else if (g == VTD_CC_DOMAIN) {
		devs_refresh(t, match_did, did & ((1u << VTD_DID_BITS) - 1), 0);
	} else if (g == VTD_CC_DEVICE) {
		/* The DID is not compared: invalidating more than asked is
		 * always allowed. */
		devs_refresh(t, match_sid, sid, fm);
	}
	pthread_mutex_unlock(&t->dom_lock);
}

/* Returns the granularity actually done. */
static unsigned tlb_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint64_t addr, unsigned am)
{
	did &= (1u << VTD_DID_BITS) - 1;
	pthread_mutex_lock(&t->dom_lock);
	if (g == VTD_TLB_GLOBAL) {
		for (struct vtd_domain *vdom = t->domains; vdom; vdom = vdom->next)
			viommu_invalidate_domain(vdom->d);
		domains_gc(t);
	} else {
		uint64_t size = 0;
		if (g == VTD_TLB_PAGE && am <= VTD_MAMV_VALUE) {
			size = 4096ull << am;
			addr &= ~(size - 1);
		} else {
			g = VTD_TLB_DOMAIN;
		}
		for (struct vtd_domain *vdom = t->domains; vdom; vdom = vdom->next) {
			if (vdom->did != did)
				continue;
			if (!size || viommu_invalidate_range(vdom->d, VIOMMU_NO_PASID, 1, addr, size) == -EINVAL)
				viommu_invalidate_domain(vdom->d);
		}
	}
	pthread_mutex_unlock(&t->dom_lock);
	return g;
}

/* CCMD_REG written with ICC set (11.4.7). */
static void ccmd_run(struct viommu_vtd *t)
{
	unsigned cirg = (unsigned)((t->ccmd >> VTD_CCMD_CIRG_SHIFT) & 3);
	if (cirg)
		cc_invalidate(t, cirg, (uint16_t)(t->ccmd & VTD_CCMD_DID_MASK),
			      (uint16_t)(t->ccmd >> VTD_CCMD_SID_SHIFT), (unsigned)((t->ccmd >> VTD_CCMD_FM_SHIFT) & 3));
	/* CAIG 0 says the request was not carried out. */
	t->ccmd &= ~(VTD_CCMD_ICC | 3ull << VTD_CCMD_CAIG_SHIFT);
	t->ccmd |= (uint64_t)cirg << VTD_CCMD_CAIG_SHIFT;
}

/* IOTLB_REG written with IVT set (11.4.8.1). */
static void iotlb_run(struct viommu_vtd *t)
{
	unsigned iirg = (unsigned)((t->iotlb >> VTD_IOTLB_IIRG_SHIFT) & 3), iaig = 0;
	if (iirg)
		iaig = tlb_invalidate(t, iirg, (uint16_t)(t->iotlb >> VTD_IOTLB_DID_SHIFT), t->iva & VTD_IVA_ADDR_MASK,
				      (unsigned)(t->iva & VTD_IVA_AM_MASK));
	t->iotlb &= ~(VTD_IOTLB_IVT | 3ull << VTD_IOTLB_IAIG_SHIFT);
	t->iotlb |= (uint64_t)iaig << VTD_IOTLB_IAIG_SHIFT;
}

static void iec_invalidate(struct viommu_vtd *t, uint64_t lo)
{
	if (!(lo & VTD_IEC_DESC_G)) {
		viommu_ir_invalidate(t->v, 0, 0);
		return;
	}
	unsigned im = VTD_IEC_DESC_IM(lo);
	if (im > VTD_MHMV_VALUE) {
		viommu_ir_invalidate(t->v, 0, 0);
		return;
	}
	uint32_t count = 1u << im;
	viommu_ir_invalidate(t->v, VTD_IEC_DESC_IIDX(lo) & ~(count - 1), count);
}

/* ------------------------------------------------------------------------ */
/* Queued invalidation (6.5.2)                                              */

/* The wait descriptor's completion: status write, then interrupt (6.5.2.8). */
static void wait_complete(struct viommu_vtd *t, uint64_t lo, uint64_t hi, struct vtd_irqs *irq)
{
	if (lo & VTD_WAIT_SW) {
		uint32_t data = (uint32_t)(lo >> 32);
		uint8_t b[4] = { (uint8_t)data, (uint8_t)(data >> 8), (uint8_t)(data >> 16), (uint8_t)(data >> 24) };
		if (viommu_mem_write(viommu_get_mem(t->v), hi & ~VTD_WAIT_RSVD_HI, b, sizeof(b)))
			vtd_log(t, VIOMMU_LOG_WARN, "invalidation wait: status address outside memory");
	}
	if (lo & VTD_WAIT_IF) {
		/* An IWC already set is not a new interrupt condition. */
		if (!(t->ics & VTD_ICS_IWC)) {
			t->ics |= VTD_ICS_IWC;
			compl_event(t, irq);
		}
	}
}

/* 0 done, -EAGAIN to stall the queue at it, or an IQEI code. */
static int desc_run(struct viommu_vtd *t, uint64_t lo, uint64_t hi, struct vtd_irqs *irq)
{
	switch (VTD_DESC_TYPE(lo)) {
	case VTD_DESC_CC:
		if ((lo & VTD_CC_DESC_RSVD_LO) || hi || !VTD_DESC_G(lo))
			return VTD_IQEI_RESERVED;
		cc_invalidate(t, VTD_DESC_G(lo), VTD_CC_DESC_DID(lo), VTD_CC_DESC_SID(lo), VTD_CC_DESC_FM(lo));
		return 0;
	case VTD_DESC_IOTLB:
		if ((lo & VTD_IOTLB_DESC_RSVD_LO) || (hi & VTD_IOTLB_DESC_RSVD_HI) || !VTD_DESC_G(lo))
			return VTD_IQEI_RESERVED;
		tlb_invalidate(t, VTD_DESC_G(lo), VTD_IOTLB_DESC_DID(lo), hi & VTD_IVA_ADDR_MASK,
			       (unsigned)(hi & VTD_IVA_AM_MASK));
		return 0;
	case VTD_DESC_DEVTLB:
		/* No device TLBs here (ECAP.DT = 0): nothing to do. */
		if ((lo & VTD_DEVTLB_DESC_RSVD_LO) || (hi & VTD_DEVTLB_DESC_RSVD_HI))
			return VTD_IQEI_RESERVED;
		return 0;
	case VTD_DESC_IEC:
		if ((lo & VTD_IEC_DESC_RSVD_LO) || hi)
			return VTD_IQEI_RESERVED;
		iec_invalidate(t, lo);
		return 0;
	case VTD_DESC_WAIT: {
		if ((lo & VTD_WAIT_RSVD_LO) || ((lo & VTD_WAIT_SW) && (hi & VTD_WAIT_RSVD_HI)))
			return VTD_IQEI_RESERVED;
		/* Everything before it is done (synchronously): may its
		 * completion be signalled? */
		uint64_t delay_us = 0;
		enum viommu_inject_completion c = viommu_inject_completion(t->v, VIOMMU_NO_PASID, 0, ~0ull, &delay_us);
		if (c == VIOMMU_COMPLETE_DROP)
			return 0;
		if (c == VIOMMU_COMPLETE_DELAY) {
			t->wait_pending = 1;
			t->wait_deadline_ns = now_ns() + delay_us * 1000ull;
			t->wait_lo = lo;
			t->wait_hi = hi;
			return -EAGAIN;
		}
		wait_complete(t, lo, hi, irq);
		return 0;
	}
	default:
		/* PASID-based descriptors (types 6 to 8) are scalable mode's. */
		return VTD_IQEI_TYPE;
	}
}

static void iq_error(struct viommu_vtd *t, unsigned iqei, struct vtd_irqs *irq)
{
	t->iqercd = (t->iqercd & ~0xfull) | iqei;
	fsts_set(t, VTD_FSTS_IQE, irq);
}

/* Process the queue from IQH to IQT, synchronously. It stops at an invalid
 * descriptor (IQE, IQH left pointing at it: software fixes it and clears
 * IQE, which resumes), or at a wait descriptor whose completion is delayed. */
static void iq_run(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	if (!(t->gsts & VTD_GSTS_QIES) || (t->fsts & VTD_FSTS_IQE) || t->wait_pending)
		return;
	uint32_t tail = (uint32_t)((t->iqt & VTD_IQ_INDEX_MASK) >> VTD_IQ_INDEX_SHIFT);
	/* head < entries always; with tail < entries it meets tail within
	 * `entries` steps. */
	while ((uint32_t)((t->iqh & VTD_IQ_INDEX_MASK) >> VTD_IQ_INDEX_SHIFT) != tail) {
		uint32_t head = (uint32_t)((t->iqh & VTD_IQ_INDEX_MASK) >> VTD_IQ_INDEX_SHIFT);
		if (tail >= t->iq_entries) {
			iq_error(t, VTD_IQEI_TAIL, irq);
			return;
		}
		uint64_t lo, hi;
		if (read128(t, t->iq_base + (uint64_t)head * VTD_IQ_DESC_SIZE, &lo, &hi)) {
			iq_error(t, VTD_IQEI_FETCH, irq);
			return;
		}
		int r = desc_run(t, lo, hi, irq);
		if (r == -EAGAIN)
			return;
		if (r) {
			iq_error(t, (unsigned)r, irq);
			return;
		}
		t->iqh = (uint64_t)((head + 1) % t->iq_entries) << VTD_IQ_INDEX_SHIFT;
	}
}

/* A delayed completion whose time has come: signal it, move past it and go
 * on with the queue. */
static void deferred_poll(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	if (!t->wait_pending || now_ns() < t->wait_deadline_ns)
		return;
	t->wait_pending = 0;
	wait_complete(t, t->wait_lo, t->wait_hi, irq);
	uint32_t head = (uint32_t)((t->iqh & VTD_IQ_INDEX_MASK) >> VTD_IQ_INDEX_SHIFT);
	t->iqh = (uint64_t)((head + 1) % t->iq_entries) << VTD_IQ_INDEX_SHIFT;
	iq_run(t, irq);
}

/* ------------------------------------------------------------------------ */
/* Global command (11.4.4)                                                  */

static void ir_apply(struct viommu_vtd *t)
{
	struct viommu_ir_config c = { .size = sizeof(c), .format = VIOMMU_IR_NONE };
	if (t->gsts & VTD_GSTS_IRES) {
		int x2apic = !!(t->irta_latched & VTD_IRTA_EIME);
		c.format = VIOMMU_IR_VTD;
		c.table = t->irta_latched & VTD_IRTA_ADDR_MASK;
		c.entries = 2u << (t->irta_latched & VTD_IRTA_S_MASK);
		c.flags = x2apic ? VIOMMU_IR_F_X2APIC : 0;
		/* CFI is ignored in x2APIC mode: compatibility format is
		 * blocked there. */
		if ((t->gsts & VTD_GSTS_CFIS) && !x2apic)
			c.flags |= VIOMMU_IR_F_ALLOW_COMPAT;
	}
	if (viommu_ir_configure(t->v, &c))
		vtd_log(t, VIOMMU_LOG_ERROR, "interrupt remapping could not be configured (out of memory)");
}

static void gcmd_write(struct viommu_vtd *t, uint32_t val, struct vtd_irqs *irq)
{
	uint32_t g = t->gsts;
	int ir_changed = 0, te_changed = 0, qi_enabled = 0;

	if (val & VTD_GCMD_SRTP) {
		/* Only the legacy table mode is implemented: a root table
		 * pointer in another mode is not taken (RTPS stays as it is). */
		if (((t->rtaddr & VTD_RTADDR_TTM_MASK) >> VTD_RTADDR_TTM_SHIFT) == VTD_TTM_LEGACY) {
			pthread_mutex_lock(&t->dom_lock);
			t->rta = t->rtaddr & VTD_RTADDR_RTA_MASK;
			pthread_mutex_unlock(&t->dom_lock);
			g |= VTD_GSTS_RTPS;
		} else {
			vtd_log(t, VIOMMU_LOG_WARN, "SRTP with a translation table mode other than legacy ignored");
		}
	}
	if (val & VTD_GCMD_SIRTP) {
		t->irta_latched = t->irta;
		g |= VTD_GSTS_IRTPS;
		ir_changed = 1;
	}
	/* SFL, EAFL: no advanced fault logging (CAP.AFL = 0). WBF: no write
	 * buffer (CAP.RWBF = 0). Both are ignored. */
	if (!!(val & VTD_GCMD_TE) != !!(g & VTD_GSTS_TES)) {
		g ^= VTD_GSTS_TES;
		te_changed = 1;
	}
	if ((val & VTD_GCMD_QIE) && !(g & VTD_GSTS_QIES)) {
		t->iq_base = t->iqa & VTD_IQA_ADDR_MASK;
		t->iq_entries = 256u << (t->iqa & VTD_IQA_QS_MASK);
		g |= VTD_GSTS_QIES;
		qi_enabled = 1;
	} else if (!(val & VTD_GCMD_QIE) && (g & VTD_GSTS_QIES)) {
		g &= ~VTD_GSTS_QIES;
		t->iqh = 0;
		t->wait_pending = 0;
	}
	if (!!(val & VTD_GCMD_IRE) != !!(g & VTD_GSTS_IRES)) {
		g ^= VTD_GSTS_IRES;
		ir_changed = 1;
	}
	if (!!(val & VTD_GCMD_CFI) != !!(g & VTD_GSTS_CFIS)) {
		g ^= VTD_GSTS_CFIS;
		ir_changed = 1;
	}
	t->gsts = g;
	if (ir_changed)
		ir_apply(t);
	if (te_changed) {
		/* Every requester is resolved again: through its context entry
		 * with translation on, to the identity domain with it off. */
		pthread_mutex_lock(&t->dom_lock);
		t->tes = !!(g & VTD_GSTS_TES);
		devs_refresh(t, NULL, 0, 0);
		pthread_mutex_unlock(&t->dom_lock);
	}
	/* The fault record index restarts when both remapping functions are
	 * off (7.3.1). */
	if (!(g & (VTD_GSTS_TES | VTD_GSTS_IRES)))
		t->fri_next = 0;
	if (qi_enabled)
		iq_run(t, irq);
}

/* ------------------------------------------------------------------------ */
/* Register file                                                            */

/* A 64-bit register at an 8-aligned offset: 1 and its value, else 0. */
static int reg64_read(const struct viommu_vtd *t, uint64_t off, uint64_t *q)
{
	switch (off) {
	case VTD_REG_CAP: *q = t->cap; return 1;
	case VTD_REG_ECAP: *q = t->ecap; return 1;
	case VTD_REG_RTADDR: *q = t->rtaddr; return 1;
	case VTD_REG_CCMD: *q = t->ccmd; return 1;
	case VTD_REG_AFLOG: *q = t->aflog; return 1;
	case VTD_REG_PHMBASE: *q = t->phmbase; return 1;
	case VTD_REG_PHMLIMIT: *q = t->phmlimit; return 1;
	case VTD_REG_IQH: *q = t->iqh; return 1;
	case VTD_REG_IQT: *q = t->iqt; return 1;
	case VTD_REG_IQA: *q = t->iqa; return 1;
	case VTD_REG_IQERCD: *q = t->iqercd; return 1;
	case VTD_REG_IRTA: *q = t->irta; return 1;
	case VTD_REG_IVA: *q = t->iva; return 1;
	case VTD_REG_IOTLB: *q = t->iotlb; return 1;
	default: break;
	}
	if (off >= VTD_FRO && off < VTD_FRO + (uint64_t)t->nfr * VTD_FRCD_SIZE) {
		uint64_t i = (off - VTD_FRO) / VTD_FRCD_SIZE;
		*q = t->frcd[i][(off >> 3) & 1];
		return 1;
	}
	return 0;
}

static uint32_t fsts_read(const struct viommu_vtd *t)
{
	return t->fsts | (t->frcd_set ? VTD_FSTS_PPF : 0) | t->fri << VTD_FSTS_FRI_SHIFT;
}

static uint32_t reg32_read(const struct viommu_vtd *t, uint64_t off)
{
	uint64_t q;
	if (reg64_read(t, off & ~7ull, &q))
		return (off & 4) ? (uint32_t)(q >> 32) : (uint32_t)q;
	switch (off) {
	case VTD_REG_VER: return VTD_VER_VALUE;
	case VTD_REG_GSTS: return t->gsts;
	case VTD_REG_FSTS: return fsts_read(t);
	case VTD_REG_FECTL: return t->fectl;
	case VTD_REG_FEDATA: return t->fedata;
	case VTD_REG_FEADDR: return t->feaddr;
	case VTD_REG_FEUADDR: return t->feuaddr;
	case VTD_REG_PMEN: return t->pmen;
	case VTD_REG_PLMBASE: return t->plmbase;
	case VTD_REG_PLMLIMIT: return t->plmlimit;
	case VTD_REG_ICS: return t->ics;
	case VTD_REG_IECTL: return t->iectl;
	case VTD_REG_IEDATA: return t->iedata;
	case VTD_REG_IEADDR: return t->ieaddr;
	case VTD_REG_IEUADDR: return t->ieuaddr;
	default: return 0; /* GCMD reads 0 (write-only); reserved offsets too */
	}
}

static uint64_t merge(uint64_t old, uint64_t val, uint64_t mask)
{
	return (old & ~mask) | (val & mask);
}

/* A write to (part of) a 64-bit register: the bytes of `mask` are written. */
static void reg64_write(struct viommu_vtd *t, uint64_t off, uint64_t val, uint64_t mask, struct vtd_irqs *irq)
{
	switch (off) {
	case VTD_REG_RTADDR:
		t->rtaddr = merge(t->rtaddr, val, mask) & (VTD_RTADDR_RTA_MASK | VTD_RTADDR_TTM_MASK);
		return;
	case VTD_REG_CCMD:
		t->ccmd = merge(t->ccmd, val, mask & VTD_CCMD_RW_MASK);
		if (t->ccmd & VTD_CCMD_ICC)
			ccmd_run(t);
		return;
	case VTD_REG_AFLOG:
		t->aflog = merge(t->aflog, val, mask & ~0x1ffull);
		return;
	case VTD_REG_PHMBASE:
		t->phmbase = merge(t->phmbase, val, mask);
		return;
	case VTD_REG_PHMLIMIT:
		t->phmlimit = merge(t->phmlimit, val, mask);
		return;
	case VTD_REG_IQT:
		t->iqt = merge(t->iqt, val, mask & VTD_IQ_INDEX_MASK);
		iq_run(t, irq);
		return;
	case VTD_REG_IQA:
		/* DW (256-bit descriptors) is scalable mode's: reserved. */
		t->iqa = merge(t->iqa, val, mask & (VTD_IQA_ADDR_MASK | VTD_IQA_QS_MASK));
		return;
	case VTD_REG_IRTA:
		t->irta = merge(t->irta, val,
				mask & (VTD_IRTA_ADDR_MASK | VTD_IRTA_S_MASK |
					((t->ecap & VTD_ECAP_EIM) ? VTD_IRTA_EIME : 0)));
		return;
	case VTD_REG_IVA:
		t->iva = merge(t->iva, val, mask & VTD_IVA_RW_MASK);
		return;
	case VTD_REG_IOTLB:
		t->iotlb = merge(t->iotlb, val, mask & VTD_IOTLB_RW_MASK);
		if (t->iotlb & VTD_IOTLB_IVT)
			iotlb_run(t);
		return;
	default:
		break;
	}
	if (off >= VTD_FRO && off < VTD_FRO + (uint64_t)t->nfr * VTD_FRCD_SIZE && (off & 8)) {
		/* F is write-1-to-clear; the rest is read-only. */
		uint64_t *hi = &t->frcd[(off - VTD_FRO) / VTD_FRCD_SIZE][1];
		if ((val & mask & VTD_FRCD_F) && (*hi & VTD_FRCD_F)) {
			*hi &= ~VTD_FRCD_F;
			t->frcd_set--;
			fault_ip_update(t);
		}
	}
	/* CAP, ECAP, IQH, IQERCD and the low qwords of the records are
	 * read-only; anything else is reserved. */
}

/* Unmasking an event with an interrupt pending sends it. */
static void ectl_write(uint32_t *ctl, uint32_t val, int *send)
{
	int was_masked = !!(*ctl & VTD_ECTL_IM);
	*ctl = (*ctl & VTD_ECTL_IP) | (val & VTD_ECTL_IM);
	if (was_masked && !(val & VTD_ECTL_IM) && (*ctl & VTD_ECTL_IP)) {
		*ctl &= ~VTD_ECTL_IP;
		*send = 1;
	}
}

static void reg32_write(struct viommu_vtd *t, uint64_t off, uint32_t val, struct vtd_irqs *irq)
{
	int send = 0;
	switch (off) {
	case VTD_REG_GCMD:
		gcmd_write(t, val, irq);
		return;
	case VTD_REG_FSTS: {
		uint32_t clear = val & VTD_FSTS_RW1C & t->fsts;
		t->fsts &= ~clear;
		fault_ip_update(t);
		/* Software fixed the descriptor: the queue goes on (6.5.2.10). */
		if (clear & VTD_FSTS_IQE)
			iq_run(t, irq);
		return;
	}
	case VTD_REG_FECTL:
		ectl_write(&t->fectl, val, &send);
		if (send) {
			irq->fault = 1;
			irq->fault_addr = (uint64_t)t->feuaddr << 32 | t->feaddr;
			irq->fault_data = t->fedata;
		}
		return;
	case VTD_REG_FEDATA: t->fedata = val; return;
	case VTD_REG_FEADDR: t->feaddr = val & VTD_EADDR_MASK; return;
	case VTD_REG_FEUADDR: t->feuaddr = val; return;
	case VTD_REG_PMEN:
		/* No protected memory regions (CAP.PLMR = PHMR = 0): the
		 * status just follows the enable. */
		t->pmen = (val & VTD_PMEN_EPM) ? (VTD_PMEN_EPM | VTD_PMEN_PRS) : 0;
		return;
	case VTD_REG_PLMBASE: t->plmbase = val; return;
	case VTD_REG_PLMLIMIT: t->plmlimit = val; return;
	case VTD_REG_ICS:
		if (val & VTD_ICS_IWC & t->ics) {
			t->ics &= ~VTD_ICS_IWC;
			t->iectl &= ~VTD_ECTL_IP;
		}
		return;
	case VTD_REG_IECTL:
		ectl_write(&t->iectl, val, &send);
		if (send) {
			irq->compl = 1;
			irq->compl_addr = (uint64_t)t->ieuaddr << 32 | t->ieaddr;
			irq->compl_data = t->iedata;
		}
		return;
	case VTD_REG_IEDATA: t->iedata = val; return;
	case VTD_REG_IEADDR: t->ieaddr = val & VTD_EADDR_MASK; return;
	case VTD_REG_IEUADDR: t->ieuaddr = val; return;
	default: return; /* VER, GSTS: read-only; reserved offsets */
	}
}

static int access_ok(const struct viommu_vtd *t, uint64_t off, unsigned len)
{
	return t && (len == 4 || len == 8) && off < VIOMMU_VTD_MMIO_SIZE && !(off & (len - 1));
}

/* Under lock: the register page as a read would see it, into the mirror. */
static void mirror_update(struct viommu_vtd *t)
{
	if (!t->mirror)
		return;
	uint64_t end = VTD_FRO + (uint64_t)t->nfr * 16;
	for (uint64_t off = 0; off < end && off < VIOMMU_VTD_MMIO_SIZE; off += 8) {
		uint64_t q;
		if (!reg64_read(t, off, &q))
			q = reg32_read(t, off) | (uint64_t)reg32_read(t, off + 4) << 32;
		__atomic_store_n(&t->mirror[off / 8], q, __ATOMIC_RELEASE);
	}
}

int viommu_vtd_set_mirror(viommu_vtd *t, void *page)
{
	if (!t || ((uintptr_t)page & 7))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	t->mirror = page;
	if (page)
		memset(page, 0, VIOMMU_VTD_MMIO_SIZE);
	mirror_update(t);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

uint64_t viommu_vtd_poll(viommu_vtd *t)
{
	struct vtd_irqs irq = { 0 };
	uint64_t left = 0;
	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	deferred_poll(t, &irq);
	mirror_update(t);
	if (t->wait_pending) {
		uint64_t now = now_ns();
		left = t->wait_deadline_ns > now ? t->wait_deadline_ns - now : 1;
	}
	pthread_mutex_unlock(&t->lock);
	irqs_send(t, &irq);
	return left;
}

uint64_t viommu_vtd_mmio_read(viommu_vtd *t, uint64_t off, unsigned len)
{
	struct vtd_irqs irq = { 0 };
	uint64_t val;

	if (!access_ok(t, off, len))
		return 0;
	pthread_mutex_lock(&t->lock);
	deferred_poll(t, &irq);
	if (len == 8 && reg64_read(t, off, &val))
		;
	else if (len == 8)
		val = reg32_read(t, off) | (uint64_t)reg32_read(t, off + 4) << 32;
	else
		val = reg32_read(t, off);
	mirror_update(t);
	pthread_mutex_unlock(&t->lock);
	irqs_send(t, &irq);
	return val;
}

void viommu_vtd_mmio_write(viommu_vtd *t, uint64_t off, uint64_t val, unsigned len)
{
	struct vtd_irqs irq = { 0 };
	uint64_t q;

	if (!access_ok(t, off, len))
		return;
	pthread_mutex_lock(&t->lock);
	deferred_poll(t, &irq);
	if (reg64_read(t, off & ~7ull, &q)) {
		if (len == 8)
			reg64_write(t, off, val, ~0ull, &irq);
		else if (off & 4)
			reg64_write(t, off & ~7ull, val << 32, 0xffffffff00000000ull, &irq);
		else
			reg64_write(t, off, val & 0xffffffffull, 0xffffffffull, &irq);
	} else {
		reg32_write(t, off, (uint32_t)val, &irq);
		if (len == 8)
			reg32_write(t, off + 4, (uint32_t)(val >> 32), &irq);
	}
	mirror_update(t);
	pthread_mutex_unlock(&t->lock);
	irqs_send(t, &irq);
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */

viommu_dev *viommu_vtd_device(viommu_vtd *t, struct viommu_rid rid)
{
	viommu_dev *dev = NULL;

	if (!t || rid.segment != t->cfg.segment)
		return NULL;
	pthread_mutex_lock(&t->dom_lock);
	struct vtd_dev *vd = dev_slot(t, rid, 1);
	if (!vd)
		goto out;
	if (vd->dev) {
		dev = vd->dev;
		goto out;
	}
	/* A requester someone else made is theirs to destroy: the unit
	 * manages only its own. */
	if (viommu_dev_find(t->v, rid))
		goto out;
	if (viommu_dev_create(t->v, rid, &vd->dev))
		goto out;
	dev = vd->dev;
	t->nr_devs++;
	/* Attached now as the guest's structures say (untranslated while
	 * translation is off), so viommu_dev_domain answers before any DMA. A
	 * requester that cannot be resolved stays blocked and is resolved
	 * again on its first DMA, which records the fault. */
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	resolve_locked(t, vd, rid, &f);
out:
	pthread_mutex_unlock(&t->dom_lock);
	return dev;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static int instance_has_fq(viommu *v)
{
	pthread_mutex_lock(&v->fq_lock);
	int has = v->fq != NULL;
	pthread_mutex_unlock(&v->fq_lock);
	return has;
}

static void registers_reset(struct viommu_vtd *t)
{
	/* 11.4: the event interrupts come out of reset masked. */
	t->fectl = VTD_ECTL_IM;
	t->iectl = VTD_ECTL_IM;
}

int viommu_vtd_create(viommu *v, const struct viommu_vtd_config *cfg, viommu_vtd **out)
{
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!v || !cfg || cfg->size < sizeof(*cfg) ||
	    (cfg->flags & ~(VIOMMU_VTD_F_X2APIC | VIOMMU_VTD_F_CACHING_MODE)) || cfg->fault_records > VTD_MAX_FRCD)
		return -EINVAL;
	uint32_t aw = cfg->aw_bits ? cfg->aw_bits : 48;
	if (aw != 39 && aw != 48 && aw != 57)
		return -EINVAL;

	struct viommu_vtd *t = valloc_zget(&v->alloc, sizeof(*t), 64);
	if (!t)
		return -ENOMEM;
	t->v = v;
	t->alloc = v->alloc;
	t->cfg = *cfg;
	t->cfg.size = sizeof(t->cfg);
	t->cfg.aw_bits = aw;
	t->nfr = cfg->fault_records ? cfg->fault_records : 8;
	t->cfg.fault_records = t->nfr;
	t->oas = aw < 52 ? aw : 52;
	t->haw_rsvd = ~((1ull << t->oas) - 1);

	uint64_t sagaw = VTD_CAP_SAGAW_39 | (aw >= 48 ? VTD_CAP_SAGAW_48 : 0) | (aw >= 57 ? VTD_CAP_SAGAW_57 : 0);
	t->cap = VTD_CAP_ND(VTD_ND_VALUE) | sagaw | VTD_CAP_MGAW(aw - 1) | VTD_CAP_FRO(VTD_FRO / 16) |
		 VTD_CAP_SLLPS_2M | VTD_CAP_SLLPS_1G | VTD_CAP_PSI | VTD_CAP_NFR(t->nfr - 1) |
		 VTD_CAP_MAMV(VTD_MAMV_VALUE) | ((cfg->flags & VIOMMU_VTD_F_CACHING_MODE) ? VTD_CAP_CM : 0);
	/* Coherent page walks (C): the unit reads guest memory directly, so
	 * the guest need not flush its CPU caches after a table update. */
	t->ecap = VTD_ECAP_C | VTD_ECAP_QI | VTD_ECAP_IR | VTD_ECAP_PT | VTD_ECAP_IRO(VTD_IRO / 16) |
		  VTD_ECAP_MHMV(VTD_MHMV_VALUE) | ((cfg->flags & VIOMMU_VTD_F_X2APIC) ? VTD_ECAP_EIM : 0);
	registers_reset(t);

	t->frcd = valloc_zget(&t->alloc, sizeof(*t->frcd) * t->nfr, 64);
	if (!t->frcd) {
		r = -ENOMEM;
		goto err_free;
	}
	if (pthread_mutex_init(&t->lock, NULL)) {
		r = -ENOMEM;
		goto err_frcd;
	}
	if (pthread_mutex_init(&t->dom_lock, NULL)) {
		r = -ENOMEM;
		goto err_lock;
	}
	struct viommu_domain_config idc = { .size = sizeof(idc), .type = VIOMMU_DOMAIN_IDENTITY };
	r = viommu_domain_create(v, &idc, &t->identity);
	if (r)
		goto err_dom_lock;
	struct viommu_alloc hooks = { .size = sizeof(hooks), .alloc = t->alloc.alloc, .free = t->alloc.free,
				      .ctx = t->alloc.ctx };
	struct viommu_fault_queue_config fqc = {
		.size = sizeof(fqc), .entries = VTD_FQ_ENTRIES, .notify = vtd_fq_notify, .ctx = t,
	};
	r = viommu_fault_queue_create(&fqc, &hooks, &t->fq);
	if (r)
		goto err_identity;
	r = viommu_set_resolver(v, vtd_resolve, t);
	if (r)
		goto err_fq;
	if (instance_has_fq(v)) {
		r = -EBUSY;
		goto err_resolver;
	}
	r = viommu_set_fault_queue(v, t->fq);
	if (r)
		goto err_resolver;
	*out = t;
	return 0;

err_resolver:
	viommu_set_resolver(v, NULL, NULL);
err_fq:
	viommu_fault_queue_destroy(t->fq);
err_identity:
	viommu_domain_destroy(t->identity);
err_dom_lock:
	pthread_mutex_destroy(&t->dom_lock);
err_lock:
	pthread_mutex_destroy(&t->lock);
err_frcd:
	valloc_put(&t->alloc, t->frcd, sizeof(*t->frcd) * t->nfr, 64);
err_free:
	valloc_put(&v->alloc, t, sizeof(*t), 64);
	return r;
}

void viommu_vtd_destroy(viommu_vtd *t)
{
	if (!t)
		return;
	viommu *v = t->v;
	viommu_set_resolver(v, NULL, NULL);
	pthread_mutex_lock(&v->fq_lock);
	int ours = v->fq == t->fq;
	pthread_mutex_unlock(&v->fq_lock);
	if (ours)
		viommu_set_fault_queue(v, NULL);
	if (t->gsts & VTD_GSTS_IRES) {
		struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
		viommu_ir_configure(v, &off);
	}
	for (unsigned bus = 0; bus < 256; bus++) {
		struct vtd_dev *b = t->bus[bus];
		if (!b)
			continue;
		for (unsigned devfn = 0; devfn < 256; devfn++)
			if (b[devfn].dev)
				viommu_dev_destroy(b[devfn].dev);
		valloc_put(&t->alloc, b, sizeof(*b) * 256, 64);
	}
	while (t->domains) {
		struct vtd_domain *vdom = t->domains;
		t->domains = vdom->next;
		vdom->users = 0;
		domain_free(t, vdom);
	}
	viommu_domain_destroy(t->identity);
	viommu_fault_queue_destroy(t->fq);
	pthread_mutex_destroy(&t->dom_lock);
	pthread_mutex_destroy(&t->lock);
	valloc_put(&t->alloc, t->frcd, sizeof(*t->frcd) * t->nfr, 64);
	valloc_put(&t->alloc, t, sizeof(*t), 64);
}

/* ------------------------------------------------------------------------ */
/* ACPI DMAR table (8.1, 8.3, 8.3.1)                                        */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

#define VTD_DMAR_MAX_IOAPICS 256u

int viommu_vtd_dmar(const viommu_vtd *t, uint64_t reg_base, const struct viommu_vtd_ioapic *ioapics,
		    unsigned nr_ioapics, void *buf, size_t len)
{
	if (!t || !buf || (nr_ioapics && !ioapics) || nr_ioapics > VTD_DMAR_MAX_IOAPICS || (reg_base & 0xfff))
		return -EINVAL;
	size_t drhd_len = VTD_DRHD_LEN + (size_t)nr_ioapics * VTD_SCOPE_LEN;
	size_t total = VTD_DMAR_LEN + drhd_len;
	if (len < total)
		return -ENOSPC;
	uint8_t *p = buf;
	memset(p, 0, total);

	/* ACPI table header */
	memcpy(p, "DMAR", 4);
	put32(p + 4, (uint32_t)total);
	p[8] = VTD_DMAR_REVISION;
	memcpy(p + 10, "VIOMMU", 6);
	memcpy(p + 16, "VIOMMUVT", 8);
	put32(p + 24, 1);          /* OEM revision */
	memcpy(p + 28, "VIOM", 4); /* creator ID */
	put32(p + 32, 1);          /* creator revision */
	/* Host address width (N - 1) and flags: interrupt remapping; no
	 * x2APIC opt-out. */
	p[36] = (uint8_t)(t->cfg.aw_bits - 1);
	p[37] = VTD_DMAR_F_INTR_REMAP;

	uint8_t *d = p + VTD_DMAR_LEN;
	put16(d, VTD_DRHD_TYPE);
	put16(d + 2, (uint16_t)drhd_len);
	d[4] = VTD_DRHD_F_INCLUDE_PCI_ALL;
	d[5] = 0; /* register set size: 2^0 pages */
	put16(d + 6, t->cfg.segment);
	put64(d + 8, reg_base);
	for (unsigned i = 0; i < nr_ioapics; i++) {
		uint8_t *s = d + VTD_DRHD_LEN + (size_t)i * VTD_SCOPE_LEN;
		s[0] = VTD_SCOPE_IOAPIC;
		s[1] = VTD_SCOPE_LEN;
		s[4] = ioapics[i].id;              /* enumeration ID */
		s[5] = ioapics[i].rid.bus;         /* start bus */
		s[6] = ioapics[i].rid.devfn >> 3;  /* path: device */
		s[7] = ioapics[i].rid.devfn & 7;   /*       function */
	}
	uint8_t sum = 0;
	for (size_t i = 0; i < total; i++)
		sum = (uint8_t)(sum + p[i]);
	p[9] = (uint8_t)(0 - sum);
	return (int)total;
}
