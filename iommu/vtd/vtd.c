/* SPDX-License-Identifier: MIT */
/*
 * The Intel VT-d front-end: register file, legacy translation mode,
 * invalidation and fault recording (scalable mode's structures: vtd_sm.c).
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
 * (TES, the latched root table address and mode). Order: lock, then
 * dom_lock. The resolver is called by translating threads with no lock of
 * the library held and takes dom_lock only. The fault-queue notify callback
 * and the page request queue's raise callback take lock (then dom_lock).
 * Interrupts (fault event, invalidation completion, page request) are
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

#include "acpi_table.h"
#include "core_internal.h"
#include "le.h"
#include "vtd_internal.h"
#include "vtd_regs.h"

#define VTD_FQ_ENTRIES 1024u
#define VTD_PRQ_ENTRIES 512u

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

void vtd_log(struct viommu_vtd *t, enum viommu_log_level lvl, const char *msg)
{
	core_log(t->v, lvl, "vtd: %s", msg);
}

/* SAGAW bit of a context entry's AW value, 0 when the value is not one of
 * 39/48/57-bit. */
uint64_t vtd_aw_sagaw_bit(unsigned aw)
{
	return aw >= 1 && aw <= 3 ? 1ull << (VTD_CAP_SAGAW_SHIFT + aw) : 0;
}

/* ------------------------------------------------------------------------ */
/* Interrupts: fault event and invalidation completion (11.4, FECTL/IECTL)  */

/* The message of an event from its data and address registers. */
static void event_msi(struct vtd_msi *m, uint32_t data, uint32_t addr, uint32_t uaddr)
{
	m->send = 1;
	m->addr = (uint64_t)uaddr << 32 | addr;
	m->data = data;
}

/* An interrupt condition of an event (fault, completion, page request):
 * pending while masked, else the message goes out. */
static void event_raise(uint32_t *ctl, struct vtd_msi *m, uint32_t data, uint32_t addr, uint32_t uaddr)
{
	if (*ctl & VTD_ECTL_IM) {
		*ctl |= VTD_ECTL_IP;
		return;
	}
	event_msi(m, data, addr, uaddr);
}

static void fault_event(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	event_raise(&t->fectl, &irq->fault, t->fedata, t->feaddr, t->feuaddr);
}

static void compl_event(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	event_raise(&t->iectl, &irq->compl, t->iedata, t->ieaddr, t->ieuaddr);
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

void vtd_prq_event(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	event_raise(&t->pectl, &irq->prq, t->pedata, t->peaddr, t->peuaddr);
}

static void irqs_send(struct viommu_vtd *t, const struct vtd_irqs *irq)
{
	/* The unit's own interrupts are not remapped; they come from the
	 * unit, which has no requester ID of its own: segment:00:00.0. */
	struct viommu_rid self = { .segment = t->cfg.segment };
	const struct vtd_msi *m[] = { &irq->fault, &irq->compl, &irq->prq };
	for (unsigned i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (m[i]->send)
			viommu_msi_send(t->v, self, m[i]->addr, m[i]->data);
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

struct vtd_patt *vtd_patt_find(const struct vtd_dev *vd, uint32_t pasid)
{
	for (uint32_t i = 0; i < vd->nr_patt; i++)
		if (vd->patt[i].pasid == pasid)
			return &vd->patt[i];
	return NULL;
}

static void dom_unuse(struct vtd_domain *vdom, uint32_t pasid)
{
	if (!vdom)
		return;
	vdom->users--;
	if (pasid == VIOMMU_NO_PASID)
		vdom->nopasid_users--;
}

static void dom_use(struct vtd_domain *vdom, uint32_t pasid, uint32_t tag)
{
	if (!vdom)
		return;
	if (!vdom->users) {
		vdom->pasid_tag = tag;
		vdom->pasid_mixed = 0;
	} else if (vdom->pasid_tag != tag) {
		vdom->pasid_mixed = 1;
	}
	vdom->users++;
	if (pasid == VIOMMU_NO_PASID)
		vdom->nopasid_users++;
}

/* Block (device, PASID) again, if the unit had attached it. */
void vtd_detach(struct viommu_vtd *t, struct vtd_dev *vd, uint32_t pasid)
{
	if (pasid == VIOMMU_NO_PASID) {
		if (!vd->attached)
			return;
		viommu_dev_detach(vd->dev, VIOMMU_NO_PASID);
		dom_unuse(vd->dom, pasid);
		vd->dom = NULL;
		vd->attached = 0;
		return;
	}
	struct vtd_patt *pa = vtd_patt_find(vd, pasid);
	if (!pa)
		return;
	viommu_dev_detach(vd->dev, pasid);
	dom_unuse(pa->dom, pasid);
	*pa = vd->patt[--vd->nr_patt];
	t->nr_patt--;
}

/*
 * Attach (device, PASID) to vdom (NULL: identity), with s1 for a nested
 * domain. It replaces an earlier attachment (viommu_dev_attach does so at
 * once, so DMA in flight never finds the PASID unattached).
 */
int vtd_attach(struct viommu_vtd *t, struct vtd_dev *vd, uint32_t pasid, struct vtd_domain *vdom, uint16_t did,
	       uint8_t fpd, const struct viommu_stage1 *s1)
{
	struct vtd_patt *pa = NULL;
	if (pasid != VIOMMU_NO_PASID) {
		pa = vtd_patt_find(vd, pasid);
		if (!pa && vd->nr_patt == vd->cap_patt) {
			/* Grow first, so a failure leaves everything as it was. */
			uint32_t cap = vd->cap_patt ? 2 * vd->cap_patt : 4;
			struct vtd_patt *n = valloc_zget(&t->alloc, sizeof(*n) * cap, 64);
			if (!n)
				return -ENOMEM;
			if (vd->nr_patt)
				memcpy(n, vd->patt, sizeof(*n) * vd->nr_patt);
			if (vd->patt)
				valloc_put(&t->alloc, vd->patt, sizeof(*n) * vd->cap_patt, 64);
			vd->patt = n;
			vd->cap_patt = cap;
		}
	}
	int r = viommu_dev_attach(vd->dev, pasid, vdom ? vdom->d : t->identity, s1);
	if (r)
		return r;
	uint32_t tag = pasid != VIOMMU_NO_PASID ? pasid : t->ttm == VTD_TTM_SCALABLE ? vd->rid_pasid : 0;
	if (pasid == VIOMMU_NO_PASID) {
		if (vd->attached)
			dom_unuse(vd->dom, pasid);
		dom_use(vdom, pasid, tag);
		vd->dom = vdom;
		vd->did = did;
		vd->fpd = fpd;
		vd->attached = 1;
		return 0;
	}
	if (pa) {
		dom_unuse(pa->dom, pasid);
	} else {
		pa = &vd->patt[vd->nr_patt++];
		pa->pasid = pasid;
		t->nr_patt++;
	}
	dom_use(vdom, pasid, tag);
	pa->dom = vdom;
	pa->did = did;
	pa->fpd = fpd;
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

/* The core domain for (DID, kind, root, levels): first-level tables are
 * x86-64 paging over guest-physical addresses (VT-d 3.6) whose accessed and
 * dirty flags the unit sets as the CPU would (3.6.2), with XD honoured;
 * second-level ones the VT-d format (3.7); a nested domain's table is its
 * second level, the first levels come with each attachment. */
int vtd_domain_get(struct viommu_vtd *t, uint16_t did, enum vtd_dom_kind kind, uint64_t root, unsigned levels,
		   struct vtd_domain **out)
{
	for (struct vtd_domain *vdom = t->domains; vdom; vdom = vdom->next) {
		if (vdom->did == did && vdom->kind == kind && vdom->root == root && vdom->levels == levels) {
			*out = vdom;
			return 0;
		}
	}
	/* A guest that keeps pointing its entries at new tables without a
	 * global invalidation must not grow the table without bound. */
	if (t->nr_domains >= 2 * (t->nr_devs + t->nr_patt) + 64)
		domains_gc(t);
	struct vtd_domain *vdom = valloc_zget(&t->alloc, sizeof(*vdom), 64);
	if (!vdom)
		return -ENOMEM;
	struct viommu_domain_config dc = {
		.size = sizeof(dc),
		.type = kind == VTD_DOM_NESTED ? VIOMMU_DOMAIN_NESTED : VIOMMU_DOMAIN_PAGING,
		.pt = { .size = sizeof(dc.pt), .format = VIOMMU_PT_VTD_SL, .levels = levels, .oas = t->oas },
	};
	if (kind == VTD_DOM_FL) {
		dc.pt.format = VIOMMU_PT_X86_64;
		dc.pt.flags = VIOMMU_PT_F_AD | VIOMMU_PT_F_NXE;
		/* 1 GiB pages as CAP.FL1GP says. */
		dc.pt.pgsize_bitmap = VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G;
	}
	int r = viommu_domain_create(t->v, &dc, &vdom->d);
	if (r)
		goto err_free;
	r = viommu_domain_set_root(vdom->d, root);
	if (r)
		goto err_domain;
	vdom->did = did;
	vdom->kind = (uint8_t)kind;
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
	if (!(vtd_aw_sagaw_bit((unsigned)(hi & VTD_CTX_AW_MASK)) & t->cap))
		return VTD_FR_CTX_INVALID;
	return 0;
}

int vtd_res_fault(struct viommu_fault_record *f, enum viommu_fault_reason why, uint64_t addr, uint64_t entry)
{
	f->reason = why;
	f->level = 0;
	f->entry_addr = addr;
	f->entry = entry;
	return -EFAULT;
}

/* Guest structures (root, context and PASID entries, descriptors) are read
 * through the core's hook, so CORRUPT_READ injection rules reach them: nq
 * qwords from addr. */
int vtd_read_guest(struct viommu_vtd *t, uint64_t addr, uint64_t *q, unsigned nq)
{
	struct inject_req who;
	memset(&who, 0, sizeof(who));
	for (unsigned i = 0; i < nq; i++)
		if (core_guest_read64(t->v, &who, addr + 8ull * i, &q[i]))
			return -EFAULT;
	return 0;
}

/* Read the requester's root and context entries and attach it as they say
 * (9.1, 9.3; 3.4 "Mapping Devices to Domains" says how a legacy-mode request
 * finds its context entry). 0, -EFAULT with the fault named in *f, or
 * -ENOMEM. Under dom_lock. */
static int legacy_resolve(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid,
			  struct viommu_fault_record *f)
{
	uint64_t ra = t->rta + (uint64_t)rid.bus * VTD_ROOT_ENTRY_SIZE, re[2];
	if (vtd_read_guest(t, ra, re, 2))
		return vtd_res_fault(f, VIOMMU_FAULT_ROOT_TABLE, ra, 0);
	if (!(re[0] & VTD_ROOT_P))
		return vtd_res_fault(f, VIOMMU_FAULT_ROOT_NOT_PRESENT, ra, re[0]);
	if (re[0] & (VTD_ROOT_RSVD_LO | (VTD_ROOT_CTP_MASK & t->haw_rsvd)))
		return vtd_res_fault(f, VIOMMU_FAULT_ROOT_INVALID, ra, re[0]);
	if (re[1])
		return vtd_res_fault(f, VIOMMU_FAULT_ROOT_INVALID, ra + 8, re[1]);
	uint64_t ca = (re[0] & VTD_ROOT_CTP_MASK) + (uint64_t)rid.devfn * VTD_CTX_ENTRY_SIZE, ce[2];
	if (vtd_read_guest(t, ca, ce, 2))
		return vtd_res_fault(f, VIOMMU_FAULT_CTX_TABLE, ca, 0);
	uint64_t clo = ce[0], chi = ce[1];
	if (!(clo & VTD_CTX_P))
		return vtd_res_fault(f, VIOMMU_FAULT_CTX_NOT_PRESENT, ca, clo);
	/* From here on the entry is present: its FPD decides whether the
	 * faults it leads to are recorded. */
	vd->fpd = !!(clo & VTD_CTX_FPD);
	if (ctx_lo_check(t, clo))
		return vtd_res_fault(f, VIOMMU_FAULT_CTX_INVALID, ca, clo);
	if (ctx_hi_check(t, chi))
		return vtd_res_fault(f, VIOMMU_FAULT_CTX_INVALID, ca + 8, chi);
	uint16_t did = (uint16_t)((chi >> VTD_CTX_DID_SHIFT) & ((1u << VTD_DID_BITS) - 1));
	unsigned tt = (unsigned)((clo & VTD_CTX_TT_MASK) >> VTD_CTX_TT_SHIFT);
	if (tt == VTD_TT_PT)
		return vtd_attach(t, vd, VIOMMU_NO_PASID, NULL, did, vd->fpd, NULL);
	unsigned levels = 2 + (unsigned)(chi & VTD_CTX_AW_MASK);
	struct vtd_domain *vdom;
	int r = vtd_domain_get(t, did, VTD_DOM_SL, clo & VTD_CTX_SLPT_MASK, levels, &vdom);
	return r ? r : vtd_attach(t, vd, VIOMMU_NO_PASID, vdom, did, vd->fpd, NULL);
}

static int resolve_locked(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid, uint32_t pasid,
			  struct viommu_fault_record *f)
{
	if (!t->tes) /* translation off: DMA passes untranslated */
		return vtd_attach(t, vd, pasid, NULL, 0, 0, NULL);
	if (t->ttm == VTD_TTM_SCALABLE)
		return vtd_sm_resolve(t, vd, rid, pasid, f);
	/* Legacy mode translates requests without PASID only. */
	if (pasid != VIOMMU_NO_PASID)
		return -ENOENT;
	return legacy_resolve(t, vd, rid, f);
}

/* The core asks: which domain is this requester (or its PASID) in? */
static int vtd_resolve(void *ctx, viommu_dev *dev, uint32_t pasid, struct viommu_fault_record *f)
{
	struct viommu_vtd *t = ctx;
	struct viommu_rid rid = dev->rid;
	int r = -ENOENT;

	if (rid.segment != t->cfg.segment)
		return -ENOENT;
	pthread_mutex_lock(&t->dom_lock);
	struct vtd_dev *vd = dev_slot(t, rid, 0);
	if (vd && vd->dev == dev)
		r = resolve_locked(t, vd, rid, pasid, f);
	pthread_mutex_unlock(&t->dom_lock);
	return r;
}

/* Resolve every attachment of a device again; those that no longer resolve
 * are detached, and their next request faults with the reason. */
static void dev_refresh(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid)
{
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	if (resolve_locked(t, vd, rid, VIOMMU_NO_PASID, &f) && vd->attached)
		vtd_detach(t, vd, VIOMMU_NO_PASID);
	/* Backwards: a detach moves the last attachment into its slot. */
	for (uint32_t i = vd->nr_patt; i-- > 0;) {
		if (i >= vd->nr_patt)
			continue;
		uint32_t pasid = vd->patt[i].pasid;
		memset(&f, 0, sizeof(f));
		if (resolve_locked(t, vd, rid, pasid, &f))
			vtd_detach(t, vd, pasid);
	}
}

void vtd_refresh_att(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid, uint32_t pasid)
{
	struct viommu_fault_record f;
	memset(&f, 0, sizeof(f));
	if (resolve_locked(t, vd, rid, pasid, &f))
		vtd_detach(t, vd, pasid);
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
			/* Requesters not attached yet are resolved too: one
			 * whose DMA the core never translates (a passthrough
			 * device whose consumer follows its domain) has no
			 * other moment to be. */
			if (!vd->dev || (match && !match(vd, rid, a, b)))
				continue;
			dev_refresh(t, vd, rid);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Fault recording (7.3.1 primary fault logging)                            */

/* An interrupt-remapping fault: a named IR reason, or an IRTE that could
 * not be read or had reserved bits (the core names the entry it read: the
 * table's, for the index in addr; a walk's faults name a level). */
static int is_ir_fault(const struct viommu_vtd *t, const struct viommu_fault_record *r)
{
	if (fault_reason_is_ir(r->reason))
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
		if (!(t->gsts & VTD_GSTS_TES) || r->rid.segment != t->cfg.segment)
			return;
		pthread_mutex_lock(&t->dom_lock);
		int sm = t->ttm == VTD_TTM_SCALABLE;
		struct vtd_dev *vd = dev_slot(t, r->rid, 0);
		int known = vd && vd->dev, fpd = 0;
		if (known && sm) {
			code = vtd_sm_fault_code(vd, r, &fpd);
		} else {
			fpd = known && vd->fpd && fpd_applies(r->reason);
			code = known && r->pasid == VIOMMU_NO_PASID ? dma_code(t, r) : 0;
		}
		pthread_mutex_unlock(&t->dom_lock);
		if (!known || fpd)
			return;
		lo = r->addr & VTD_FRCD_FI_MASK;
		if (!(r->access & VIOMMU_ACCESS_WRITE))
			hi |= VTD_FRCD_T1;
		if (sm) {
			/* Scalable mode reports the request's PASID and its
			 * privilege and execute attributes (7.1.3). */
			if (r->pasid != VIOMMU_NO_PASID)
				hi |= VTD_FRCD_PP | (uint64_t)(r->pasid & 0xfffff) << VTD_FRCD_PV_SHIFT;
			if (r->access & VIOMMU_ACCESS_PRIV)
				hi |= VTD_FRCD_PRIV;
			if (r->access & VIOMMU_ACCESS_EXEC)
				hi |= VTD_FRCD_EXE;
		}
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
		/* Scalable-mode context entries carry no DID: every device. */
		if (t->ttm == VTD_TTM_SCALABLE)
			devs_refresh(t, NULL, 0, 0);
		else
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
	/* Transfers still using what went: done before ICC reads clear. */
	viommu_dma_drain(t->v);
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
	viommu_dma_drain(t->v); /* as in ccmd_run */
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
	/* Zero-copy transfers that may use a translation the descriptors
	 * before this one removed finish first (the drain a real unit does
	 * for requests it translated already). */
	viommu_dma_drain(t->v);
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

/* Scalable-mode descriptors (types 6 to 8; 6.5.2.2, 6.5.2.4, 6.5.2.6):
 * 0 done, or an IQEI code. */
static int pdesc_run(struct viommu_vtd *t, const uint64_t *q)
{
	uint64_t lo = q[0], hi = q[1];
	/* A unit without scalable mode knows no such types. */
	if (!t->sm)
		return VTD_IQEI_TYPE;
	switch (VTD_DESC_TYPE(lo)) {
	case VTD_DESC_PC:
		if ((lo & VTD_PDESC_RSVD_LO) || hi || VTD_DESC_G(lo) == 2)
			return VTD_IQEI_RESERVED;
		vtd_sm_pc_invalidate(t, VTD_DESC_G(lo), VTD_PDESC_DID(lo), VTD_PDESC_PASID(lo));
		return 0;
	case VTD_DESC_PIOTLB:
		if ((lo & VTD_PDESC_RSVD_LO) || (hi & VTD_PIOTLB_RSVD_HI) || VTD_DESC_G(lo) < VTD_PIOTLB_G_PASID)
			return VTD_IQEI_RESERVED;
		vtd_sm_piotlb_invalidate(t, VTD_DESC_G(lo), VTD_PDESC_DID(lo), VTD_PDESC_PASID(lo),
					 hi & VTD_IVA_ADDR_MASK, (unsigned)(hi & VTD_IVA_AM_MASK));
		return 0;
	case VTD_DESC_PGRP:
		return vtd_sm_page_response(t, q);
	default:
		/* PASID-based device TLB: none here (ECAP.DT = 0). */
		if (hi & VTD_PDEVTLB_RSVD_HI)
			return VTD_IQEI_RESERVED;
		return 0;
	}
}

/* One descriptor, q[0..1] (and q[2..3], reserved, of a 256-bit one):
 * 0 done, -EAGAIN to stall the queue at it, or an IQEI code. */
static int desc_run(struct viommu_vtd *t, const uint64_t *q, struct vtd_irqs *irq)
{
	uint64_t lo = q[0], hi = q[1];
	/* Bits 255:128 are reserved, but for a page group response's
	 * private data. */
	if (t->iq_dw && (q[2] || q[3]) && !(VTD_DESC_TYPE(lo) == VTD_DESC_PGRP && (lo & VTD_PGRP_PDP)))
		return VTD_IQEI_RESERVED;
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
	case VTD_DESC_PIOTLB:
	case VTD_DESC_PC:
	case VTD_DESC_PDEVTLB:
	case VTD_DESC_PGRP:
		return pdesc_run(t, q);
	default:
		return VTD_IQEI_TYPE;
	}
}

static void iq_error(struct viommu_vtd *t, unsigned iqei, struct vtd_irqs *irq)
{
	t->iqercd = (t->iqercd & ~0xfull) | iqei;
	fsts_set(t, VTD_FSTS_IQE, irq);
}

/* IQH/IQT hold byte offsets: index << 4 for 128-bit descriptors, << 5 for
 * 256-bit ones. */
static unsigned iq_shift(const struct viommu_vtd *t)
{
	return t->iq_dw ? 5 : 4;
}

/* Process the queue from IQH to IQT, synchronously. It stops at an invalid
 * descriptor (IQE, IQH left pointing at it: software fixes it and clears
 * IQE, which resumes), or at a wait descriptor whose completion is delayed. */
static void iq_run(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	if (!(t->gsts & VTD_GSTS_QIES) || (t->fsts & VTD_FSTS_IQE) || t->wait_pending)
		return;
	unsigned shift = iq_shift(t);
	uint64_t toff = t->iqt & VTD_IQ_OFF_MASK;
	if (toff == (t->iqh & VTD_IQ_OFF_MASK))
		return;
	if (t->iq_dw && (toff & VTD_IQ_DESC_SIZE)) {
		iq_error(t, VTD_IQEI_TAIL_ALIGN, irq);
		return;
	}
	uint32_t tail = (uint32_t)(toff >> shift);
	/* head < entries always; with tail < entries it meets tail within
	 * `entries` steps. */
	while ((uint32_t)((t->iqh & VTD_IQ_OFF_MASK) >> shift) != tail) {
		uint32_t head = (uint32_t)((t->iqh & VTD_IQ_OFF_MASK) >> shift);
		if (tail >= t->iq_entries) {
			iq_error(t, VTD_IQEI_TAIL, irq);
			return;
		}
		uint64_t q[4] = { 0, 0, 0, 0 };
		if (vtd_read_guest(t, t->iq_base + ((uint64_t)head << shift), q, t->iq_dw ? 4 : 2)) {
			iq_error(t, VTD_IQEI_FETCH, irq);
			return;
		}
		int r = desc_run(t, q, irq);
		if (r == -EAGAIN)
			return;
		if (r) {
			iq_error(t, (unsigned)r, irq);
			return;
		}
		t->iqh = (uint64_t)((head + 1) % t->iq_entries) << shift;
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
	unsigned shift = iq_shift(t);
	uint32_t head = (uint32_t)((t->iqh & VTD_IQ_OFF_MASK) >> shift);
	t->iqh = (uint64_t)((head + 1) % t->iq_entries) << shift;
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
		/* Legacy mode, and scalable mode on a unit that has it; a root
		 * table pointer in another mode is not taken (RTPS stays as it
		 * is). */
		unsigned ttm = (unsigned)((t->rtaddr & VTD_RTADDR_TTM_MASK) >> VTD_RTADDR_TTM_SHIFT);
		if (ttm == VTD_TTM_LEGACY || (ttm == VTD_TTM_SCALABLE && t->sm)) {
			pthread_mutex_lock(&t->dom_lock);
			t->rta = t->rtaddr & VTD_RTADDR_RTA_MASK;
			t->ttm = ttm;
			pthread_mutex_unlock(&t->dom_lock);
			g |= VTD_GSTS_RTPS;
		} else {
			vtd_log(t, VIOMMU_LOG_WARN, "SRTP with a translation table mode the unit does not have ignored");
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
		t->iq_dw = !!(t->iqa & VTD_IQA_DW); /* writable only in scalable mode */
		t->iq_entries = (4096u << (t->iqa & VTD_IQA_QS_MASK)) >> iq_shift(t);
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
	if (t->sm && (off == VTD_REG_PQH || off == VTD_REG_PQT || off == VTD_REG_PQA)) {
		*q = off == VTD_REG_PQH ? t->pqh : off == VTD_REG_PQT ? t->pqt : t->pqa;
		return 1;
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
	case VTD_REG_VER: return t->sm ? VTD_VER_SM_VALUE : VTD_VER_VALUE;
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
	default: break;
	}
	uint32_t v = 0; /* GCMD reads 0 (write-only); reserved offsets too */
	if (t->sm && off >= VTD_REG_PRS && off <= VTD_REG_PEUADDR) {
		switch (off) {
		case VTD_REG_PRS: v = t->prs; break;
		case VTD_REG_PECTL: v = t->pectl; break;
		case VTD_REG_PEDATA: v = t->pedata; break;
		case VTD_REG_PEADDR: v = t->peaddr; break;
		case VTD_REG_PEUADDR: v = t->peuaddr; break;
		default: break;
		}
	}
	return v;
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
		t->iqt = merge(t->iqt, val, mask & VTD_IQ_OFF_MASK);
		iq_run(t, irq);
		return;
	case VTD_REG_IQA:
		/* DW (256-bit descriptors) is scalable mode's: reserved
		 * without it. */
		t->iqa = merge(t->iqa, val, mask & (VTD_IQA_ADDR_MASK | VTD_IQA_QS_MASK | (t->sm ? VTD_IQA_DW : 0)));
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
	case VTD_REG_PQH:
	case VTD_REG_PQT:
	case VTD_REG_PQA:
		if (!t->sm)
			return;
		if (off == VTD_REG_PQH) {
			/* Software consumed requests: room for more. */
			t->pqh = merge(t->pqh, val, mask & VTD_PQ_OFF_MASK);
			vtd_sm_prq_drain(t, irq);
		} else if (off == VTD_REG_PQT) {
			/* Software sets it up (to 0) before enabling requests. */
			t->pqt = merge(t->pqt, val, mask & VTD_PQ_OFF_MASK);
		} else {
			t->pqa = merge(t->pqa, val, mask & (VTD_PQA_ADDR_MASK | VTD_PQA_PQS_MASK));
		}
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

/* A write of an event control register: unmasking sends the pending
 * interrupt. */
static void ectl_write(uint32_t *ctl, uint32_t val, struct vtd_msi *m, uint32_t data, uint32_t addr, uint32_t uaddr)
{
	int was_masked = !!(*ctl & VTD_ECTL_IM);
	*ctl = (*ctl & VTD_ECTL_IP) | (val & VTD_ECTL_IM);
	if (was_masked && !(val & VTD_ECTL_IM) && (*ctl & VTD_ECTL_IP)) {
		*ctl &= ~VTD_ECTL_IP;
		event_msi(m, data, addr, uaddr);
	}
}

static void prq_reg32_write(struct viommu_vtd *t, uint64_t off, uint32_t val, struct vtd_irqs *irq);

static void reg32_write(struct viommu_vtd *t, uint64_t off, uint32_t val, struct vtd_irqs *irq)
{
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
		ectl_write(&t->fectl, val, &irq->fault, t->fedata, t->feaddr, t->feuaddr);
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
		ectl_write(&t->iectl, val, &irq->compl, t->iedata, t->ieaddr, t->ieuaddr);
		return;
	case VTD_REG_IEDATA: t->iedata = val; return;
	case VTD_REG_IEADDR: t->ieaddr = val & VTD_EADDR_MASK; return;
	case VTD_REG_IEUADDR: t->ieuaddr = val; return;
	default: break; /* VER, GSTS: read-only; reserved offsets */
	}
	if (t->sm && off >= VTD_REG_PRS && off <= VTD_REG_PEUADDR)
		prq_reg32_write(t, off, val, irq);
}

/* The page request registers (scalable mode). */
static void prq_reg32_write(struct viommu_vtd *t, uint64_t off, uint32_t val, struct vtd_irqs *irq)
{
	switch (off) {
	case VTD_REG_PRS: {
		uint32_t clear = val & (VTD_PRS_PPR | VTD_PRS_PRO) & t->prs;
		t->prs &= ~clear;
		if (!t->prs)
			t->pectl &= ~VTD_ECTL_IP;
		/* Room again after an overflow: requests waiting go in. */
		if (clear & VTD_PRS_PRO)
			vtd_sm_prq_drain(t, irq);
		return;
	}
	case VTD_REG_PECTL:
		ectl_write(&t->pectl, val, &irq->prq, t->pedata, t->peaddr, t->peuaddr);
		return;
	case VTD_REG_PEDATA: t->pedata = val; return;
	case VTD_REG_PEADDR: t->peaddr = val & VTD_EADDR_MASK; return;
	case VTD_REG_PEUADDR: t->peuaddr = val; return;
	default: return;
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
	resolve_locked(t, vd, rid, VIOMMU_NO_PASID, &f);
out:
	pthread_mutex_unlock(&t->dom_lock);
	return dev;
}

/* ------------------------------------------------------------------------ */
/* Page requests (scalable mode)                                            */

/* A device submitted a page request to an empty queue: move what is there
 * into the guest's page request queue. */
static void vtd_prq_raise(void *ctx)
{
	struct viommu_vtd *t = ctx;
	struct vtd_irqs irq = { 0 };
	pthread_mutex_lock(&t->lock);
	vtd_sm_prq_drain(t, &irq);
	mirror_update(t);
	pthread_mutex_unlock(&t->lock);
	irqs_send(t, &irq);
}

/* The guest (or the queue, when full) answered a page request group. */
static void vtd_prq_respond(void *ctx, struct viommu_rid rid, uint32_t pasid, uint16_t group,
			    enum viommu_prq_response code)
{
	struct viommu_vtd *t = ctx;
	if (t->cfg.prq_respond)
		t->cfg.prq_respond(t->cfg.prq_ctx, rid, pasid, group, code);
}

viommu_prq *viommu_vtd_prq(viommu_vtd *t)
{
	return t ? t->prq : NULL;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static void registers_reset(struct viommu_vtd *t)
{
	/* 11.4: the event interrupts come out of reset masked. */
	t->fectl = VTD_ECTL_IM;
	t->iectl = VTD_ECTL_IM;
	t->pectl = VTD_ECTL_IM;
}

int viommu_vtd_create(viommu *v, const struct viommu_vtd_config *cfg, viommu_vtd **out)
{
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!v || !cfg || cfg->size < sizeof(*cfg) ||
	    (cfg->flags & ~(VIOMMU_VTD_F_X2APIC | VIOMMU_VTD_F_CACHING_MODE | VIOMMU_VTD_F_SCALABLE)) ||
	    cfg->fault_records > VTD_MAX_FRCD)
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
	if (cfg->flags & VIOMMU_VTD_F_SCALABLE) {
		/* Scalable mode (VT-d 3.x): first-level, second-level, nested
		 * and pass-through PASID entries, 20-bit PASIDs, RID_PASID,
		 * supervisor requests, page requests (PRS: devices submit them
		 * through viommu_vtd_prq); page walks are coherent in scalable
		 * mode too (SMPWC). No execute requests (ERS), no device TLBs,
		 * no second-level A/D (SLADS). */
		t->sm = 1;
		/* First-level tables are x86-64 paging whatever MGAW is: 4
		 * and 5 levels, 1 GiB pages. */
		t->cap |= VTD_CAP_FL1GP | VTD_CAP_FL5LP;
		t->ecap |= VTD_ECAP_SMTS | VTD_ECAP_FLTS | VTD_ECAP_SLTS | VTD_ECAP_NEST | VTD_ECAP_PASID |
			   VTD_ECAP_PSS(VTD_PSS_VALUE) | VTD_ECAP_SRS | VTD_ECAP_SMPWC | VTD_ECAP_RPS | VTD_ECAP_PRS;
	}
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
	if (t->sm) {
		struct viommu_prq_config pc = {
			.size = sizeof(pc), .entries = VTD_PRQ_ENTRIES, .raise = vtd_prq_raise,
			.respond = vtd_prq_respond, .ctx = t,
		};
		r = viommu_prq_create(&pc, &hooks, &t->prq);
		if (r)
			goto err_fq;
	}
	r = viommu_set_resolver(v, vtd_resolve, t);
	if (r)
		goto err_prq;
	if (instance_fq(v)) {
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
err_prq:
	viommu_prq_destroy(t->prq);
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
	if (instance_fq(v) == t->fq)
		viommu_set_fault_queue(v, NULL);
	if (t->gsts & VTD_GSTS_IRES) {
		struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
		viommu_ir_configure(v, &off);
	}
	for (unsigned bus = 0; bus < 256; bus++) {
		struct vtd_dev *b = t->bus[bus];
		if (!b)
			continue;
		for (unsigned devfn = 0; devfn < 256; devfn++) {
			if (b[devfn].dev)
				viommu_dev_destroy(b[devfn].dev);
			if (b[devfn].patt)
				valloc_put(&t->alloc, b[devfn].patt, sizeof(*b[devfn].patt) * b[devfn].cap_patt, 64);
		}
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
	viommu_prq_destroy(t->prq);
	pthread_mutex_destroy(&t->dom_lock);
	pthread_mutex_destroy(&t->lock);
	valloc_put(&t->alloc, t->frcd, sizeof(*t->frcd) * t->nfr, 64);
	valloc_put(&t->alloc, t, sizeof(*t), 64);
}

/* ------------------------------------------------------------------------ */
/* ACPI DMAR table (8.1, 8.3, 8.3.1)                                        */

/* put16, put32, put64: le.h */

#define VTD_DMAR_MAX_IOAPICS 256u
#define VTD_DMAR_MAX_DEVICES 256u

/* One DRHD at reg_base: with include_all it covers every PCI device of its
 * segment (INCLUDE_PCI_ALL); otherwise exactly the nr_devices listed. */
static int vtd_dmar_build(const viommu_vtd *t, uint64_t reg_base, const struct viommu_vtd_ioapic *ioapics,
			  unsigned nr_ioapics, int include_all, const struct viommu_rid *devices, unsigned nr_devices,
			  void *buf, size_t len)
{
	if (!t || !buf || (nr_ioapics && !ioapics) || nr_ioapics > VTD_DMAR_MAX_IOAPICS || (reg_base & 0xfff))
		return -EINVAL;
	if ((nr_devices && !devices) || nr_devices > VTD_DMAR_MAX_DEVICES)
		return -EINVAL;
	for (unsigned i = 0; i < nr_devices; i++)
		if (devices[i].segment != t->cfg.segment)
			return -EINVAL; /* a DRHD's scope lies in its own segment */
	size_t drhd_len = VTD_DRHD_LEN + ((size_t)nr_ioapics + nr_devices) * VTD_SCOPE_LEN;
	size_t total = VTD_DMAR_LEN + drhd_len;
	if (len < total)
		return -ENOSPC;
	uint8_t *p = buf;
	memset(p, 0, total);

	acpi_table_header(p, "DMAR", (uint32_t)total, VTD_DMAR_REVISION, "VIOMMUVT");
	/* Host address width (N - 1) and flags: interrupt remapping; no
	 * x2APIC opt-out. */
	p[36] = (uint8_t)(t->cfg.aw_bits - 1);
	p[37] = VTD_DMAR_F_INTR_REMAP;

	uint8_t *d = p + VTD_DMAR_LEN;
	put16(d, VTD_DRHD_TYPE);
	put16(d + 2, (uint16_t)drhd_len);
	d[4] = include_all ? VTD_DRHD_F_INCLUDE_PCI_ALL : 0;
	d[5] = 0; /* register set size: 2^0 pages */
	put16(d + 6, t->cfg.segment);
	put64(d + 8, reg_base);
	uint8_t *s = d + VTD_DRHD_LEN;
	/* Endpoints first, then the IOAPICs (the order is free; a table
	 * lists each entry once). */
	for (unsigned i = 0; i < nr_devices; i++, s += VTD_SCOPE_LEN) {
		s[0] = VTD_SCOPE_PCI_ENDPOINT;
		s[1] = VTD_SCOPE_LEN;
		s[4] = 0;                        /* enumeration ID: unused */
		s[5] = devices[i].bus;           /* start bus */
		s[6] = devices[i].devfn >> 3;    /* path: device */
		s[7] = devices[i].devfn & 7;     /*       function */
	}
	for (unsigned i = 0; i < nr_ioapics; i++, s += VTD_SCOPE_LEN) {
		s[0] = VTD_SCOPE_IOAPIC;
		s[1] = VTD_SCOPE_LEN;
		s[4] = ioapics[i].id;              /* enumeration ID */
		s[5] = ioapics[i].rid.bus;         /* start bus */
		s[6] = ioapics[i].rid.devfn >> 3;  /* path: device */
		s[7] = ioapics[i].rid.devfn & 7;   /*       function */
	}
	acpi_table_checksum(p, total);
	return (int)total;
}

int viommu_vtd_dmar(const viommu_vtd *t, uint64_t reg_base, const struct viommu_vtd_ioapic *ioapics,
		    unsigned nr_ioapics, void *buf, size_t len)
{
	return vtd_dmar_build(t, reg_base, ioapics, nr_ioapics, 1, NULL, 0, buf, len);
}

int viommu_vtd_dmar_scoped(const viommu_vtd *t, uint64_t reg_base, const struct viommu_vtd_ioapic *ioapics,
			   unsigned nr_ioapics, const struct viommu_rid *devices, unsigned nr_devices, void *buf,
			   size_t len)
{
	/* Zero devices is a unit that covers no PCI device (its IOAPICs only). */
	return vtd_dmar_build(t, reg_base, ioapics, nr_ioapics, 0, devices, nr_devices, buf, len);
}
