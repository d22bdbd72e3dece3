/* SPDX-License-Identifier: MIT */
/*
 * The Intel VT-d front-end, scalable mode (VT-d 3.x, RTADDR.TTM = 01).
 *
 * A request finds its translation through the scalable-mode root entry
 * (9.2), the 256-bit context entry (9.4), the PASID directory (9.5) and the
 * 512-bit PASID-table entry (9.6); a request without PASID uses the context
 * entry's RID_PASID. The PASID entry's PGTT decides what the core is asked
 * for (DESIGN.md: the front-end only decodes):
 *   first level   a paging domain over the guest's x86-64 table
 *   second level  a paging domain over the guest's VT-d second-level table
 *   nested        a nested domain (the second level) with the first level
 *                 as the attachment's stage 1
 *   pass-through  the unit's identity domain
 * Domains are shared per (DID, kind, table, levels), so PASID-granular
 * invalidations (PASID-based IOTLB: DID and PASID) reach every domain of
 * the DID, and the core's PASID-tagged caches drop exactly that PASID.
 *
 * Every malformed or absent structure is a fault: the core's record carries
 * the nearest reason of its enum (root, context: PASID directory and table
 * entries count as context entries), and the device keeps the scalable-mode
 * reason (SRT/SCT/SPD/SPT, 7.1.3) for the fault recording registers, matched
 * to the record by PASID, entry address and entry value.
 *
 * Everything here runs under the unit's dom_lock.
 */
#include <errno.h>
#include <string.h>

#include <viommu/iommu.h>

#include "vtd_internal.h"
#include "vtd_regs.h"

#define DID_MASK ((1u << VTD_DID_BITS) - 1)

/* A resolver failure: the core hears `why`, the fault recording registers
 * will say `code`; fpd says whether a FPD on the way suppresses it. */
static int sm_fail(struct vtd_dev *vd, uint32_t pasid, struct viommu_fault_record *f, enum viommu_fault_reason why,
		   unsigned code, uint64_t addr, uint64_t entry, int fpd)
{
	vd->fs_valid = 1;
	vd->fs_code = (uint8_t)code;
	vd->fs_fpd = (uint8_t)!!fpd;
	vd->fs_pasid = pasid;
	vd->fs_addr = addr;
	vd->fs_entry = entry;
	return vtd_res_fault(f, why, addr, entry);
}

/* Levels of a second-level table from an AW field, 0 when the unit does not
 * have that width (SAGAW). */
static unsigned sl_levels(const struct viommu_vtd *t, unsigned aw)
{
	return (vtd_aw_sagaw_bit(aw) & t->cap) ? 2 + aw : 0;
}

/* The PASID entry at pa (pe[0..7], present) of (device, pasid), reached
 * through RID_PASID or the request's PASID p: check it and attach as its
 * PGTT says (9.6). */
static int sm_pasid_entry(struct viommu_vtd *t, struct vtd_dev *vd, uint32_t pasid, uint32_t p, uint64_t pa,
			  const uint64_t *pe, int fpd, struct viommu_fault_record *f)
{
	uint64_t q0 = pe[0], q1 = pe[1], q2 = pe[2];

	/* Reserved fields: SPT.3, naming the qword that has them. */
	if ((q0 & VTD_PE_RSVD0) || ((q0 & VTD_PE_SLADE) && !(t->ecap & VTD_ECAP_SLADS)))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa, q0, fpd);
	if (q1 & VTD_PE_RSVD1)
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa + 8, q1, fpd);
	if (q2 & (VTD_PE_RSVD2 | VTD_PE_EAFE))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa + 16, q2, fpd);
	for (unsigned i = 3; i < 8; i++)
		if (pe[i])
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa + 8ull * i, pe[i], fpd);

	unsigned pgtt = VTD_PE_PGTT(q0);
	int fl = pgtt == VTD_PGTT_FL || pgtt == VTD_PGTT_NESTED;
	int sl = pgtt == VTD_PGTT_SL || pgtt == VTD_PGTT_NESTED;
	uint64_t need = pgtt == VTD_PGTT_FL ? VTD_ECAP_FLTS
			: pgtt == VTD_PGTT_SL	? VTD_ECAP_SLTS
			: pgtt == VTD_PGTT_NESTED ? VTD_ECAP_NEST
			: pgtt == VTD_PGTT_PT	? VTD_ECAP_PT
						: 0;
	/* Invalid programming (SPT.4): a translation type, width or request
	 * kind the unit does not have. */
	if (!need || !(t->ecap & need))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_INVALID, pa, q0, fpd);
	unsigned sl_lv = 0, fl_lv = 0;
	if (sl) {
		sl_lv = sl_levels(t, VTD_PE_AW(q0));
		if (!sl_lv)
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_INVALID, pa, q0, fpd);
		if (q0 & VTD_PE_PTR_MASK & t->haw_rsvd)
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa, q0, fpd);
	}
	if (fl) {
		unsigned flpm = VTD_PE_FLPM(q2);
		if (flpm > 1 || (flpm == 1 && !(t->cap & VTD_CAP_FL5LP)) ||
		    ((q2 & VTD_PE_SRE) && !(t->ecap & VTD_ECAP_SRS)) || ((q2 & VTD_PE_ERE) && !(t->ecap & VTD_ECAP_ERS)))
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_INVALID, pa + 16, q2, fpd);
		fl_lv = flpm ? 5 : 4;
		/* Nested: the first-level pointer is a second-level input,
		 * checked by the walk; else it is a host address. */
		if (pgtt == VTD_PGTT_FL && (q2 & VTD_PE_PTR_MASK & t->haw_rsvd))
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPT_RSVD, pa + 16, q2, fpd);
	}

	uint16_t did = (uint16_t)(VTD_PE_DID(q1) & DID_MASK);
	struct vtd_domain *vdom = NULL;
	struct viommu_stage1 s1, *s1p = NULL;
	int r = 0;
	switch (pgtt) {
	case VTD_PGTT_FL:
		r = vtd_domain_get(t, did, VTD_DOM_FL, q2 & VTD_PE_PTR_MASK, fl_lv, &vdom);
		break;
	case VTD_PGTT_SL:
		r = vtd_domain_get(t, did, VTD_DOM_SL, q0 & VTD_PE_PTR_MASK, sl_lv, &vdom);
		break;
	case VTD_PGTT_NESTED:
		r = vtd_domain_get(t, did, VTD_DOM_NESTED, q0 & VTD_PE_PTR_MASK, sl_lv, &vdom);
		memset(&s1, 0, sizeof(s1));
		s1.size = sizeof(s1);
		s1.pt.size = sizeof(s1.pt);
		s1.pt.format = VIOMMU_PT_X86_64;
		s1.pt.levels = fl_lv;
		s1.pt.flags = VIOMMU_PT_F_AD | VIOMMU_PT_F_NXE;
		s1.root = q2 & VTD_PE_PTR_MASK;
		s1p = &s1;
		break;
	default: /* pass-through: the identity domain */
		break;
	}
	if (r)
		return r;
	if (pasid == VIOMMU_NO_PASID)
		vd->rid_pasid = p;
	return vtd_attach(t, vd, pasid, vdom, did, (uint8_t)fpd, s1p);
}

int vtd_sm_resolve(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid, uint32_t pasid,
		   struct viommu_fault_record *f)
{
	/* Root entry (9.2): the low half for devices 0-127, the high one for
	 * 128-255. */
	uint64_t ra = t->rta + (uint64_t)rid.bus * VTD_ROOT_ENTRY_SIZE, re[2];
	if (vtd_read_guest(t, ra, re, 2))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_ROOT_TABLE, VTD_FR_SRT_TABLE, ra, 0, 0);
	unsigned upper = rid.devfn >= 128;
	uint64_t rent = re[upper], raddr = ra + 8ull * upper;
	if (!(rent & VTD_SM_ROOT_P))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_ROOT_NOT_PRESENT, VTD_FR_SRT_NOT_PRESENT, raddr, rent, 0);
	if (rent & (VTD_SM_ROOT_RSVD | (VTD_ROOT_CTP_MASK & t->haw_rsvd)))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_ROOT_INVALID, VTD_FR_SRT_RSVD, raddr, rent, 0);

	/* Context entry (9.4), 256 bits. */
	uint64_t ca = (rent & VTD_ROOT_CTP_MASK) + (uint64_t)(rid.devfn & 0x7f) * VTD_SM_CTX_ENTRY_SIZE, ce[4];
	if (vtd_read_guest(t, ca, ce, 4))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_TABLE, VTD_FR_SCT_TABLE, ca, 0, 0);
	if (!(ce[0] & VTD_SMC_P))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_NOT_PRESENT, VTD_FR_SCT_NOT_PRESENT, ca, ce[0], 0);
	/* From here on the faults are subject to the FPD of the entries
	 * read so far. */
	int fpd = !!(ce[0] & VTD_SMC_FPD);
	if ((ce[0] & VTD_SMC_RSVD0) || (ce[0] & VTD_SMC_DIR_MASK & t->haw_rsvd))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_RSVD, ca, ce[0], fpd);
	if ((ce[1] & VTD_SMC_RSVD1) || ((ce[1] & VTD_SMC_RID_PRIV) && !(t->ecap & VTD_ECAP_RPRIVS)))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_RSVD, ca + 8, ce[1], fpd);
	for (unsigned i = 2; i < 4; i++)
		if (ce[i])
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_RSVD, ca + 8ull * i, ce[i], fpd);
	/* Device TLB and page requests: the unit has neither. */
	if (((ce[0] & VTD_SMC_DTE) && !(t->ecap & VTD_ECAP_DT)) || ((ce[0] & VTD_SMC_PRE) && !(t->ecap & VTD_ECAP_PRS)))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_INVALID, ca, ce[0], fpd);

	uint32_t p;
	if (pasid == VIOMMU_NO_PASID) {
		/* Without ECAP.RPS the field is not used: PASID 0. */
		p = (t->ecap & VTD_ECAP_RPS) ? VTD_SMC_RID_PASID(ce[1]) : 0;
	} else {
		if (!(ce[0] & VTD_SMC_PASIDE))
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_PASIDE, ca, ce[0], fpd);
		p = pasid;
	}
	uint32_t dir_idx = p >> VTD_PASID_DIR_SHIFT;
	if (dir_idx >= (1u << (VTD_SMC_PDTS(ce[0]) + 7))) {
		if (pasid == VIOMMU_NO_PASID)
			return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_RID_PASID, ca + 8, ce[1], fpd);
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SCT_PASID_MAX, ca, ce[0], fpd);
	}

	/* PASID directory entry (9.5). */
	uint64_t da = (ce[0] & VTD_SMC_DIR_MASK) + (uint64_t)dir_idx * 8, de;
	if (vtd_read_guest(t, da, &de, 1))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_TABLE, VTD_FR_SPD_TABLE, da, 0, fpd);
	if (!(de & VTD_PDE_P))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_NOT_PRESENT, VTD_FR_SPD_NOT_PRESENT, da, de, fpd);
	fpd |= !!(de & VTD_PDE_FPD);
	if ((de & VTD_PDE_RSVD) || (de & VTD_PDE_PTR_MASK & t->haw_rsvd))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_INVALID, VTD_FR_SPD_RSVD, da, de, fpd);

	/* PASID table entry (9.6), 512 bits. */
	uint64_t pa = (de & VTD_PDE_PTR_MASK) + (uint64_t)(p & ((1u << VTD_PASID_DIR_SHIFT) - 1)) * VTD_PE_SIZE,
		 pe[8];
	if (vtd_read_guest(t, pa, pe, 8))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_TABLE, VTD_FR_SPT_TABLE, pa, 0, fpd);
	if (!(pe[0] & VTD_PE_P))
		return sm_fail(vd, pasid, f, VIOMMU_FAULT_CTX_NOT_PRESENT, VTD_FR_SPT_NOT_PRESENT, pa, pe[0], fpd);
	fpd |= !!(pe[0] & VTD_PE_FPD);
	return sm_pasid_entry(t, vd, pasid, p, pa, pe, fpd, f);
}

/* ------------------------------------------------------------------------ */
/* Fault reasons (7.1.3)                                                    */

/* A resolver fault whose record the device did not keep (an injected one,
 * or one another thread's failure replaced): the nearest reason. */
static unsigned res_code(enum viommu_fault_reason r)
{
	switch (r) {
	case VIOMMU_FAULT_ROOT_TABLE: return VTD_FR_SRT_TABLE;
	case VIOMMU_FAULT_ROOT_NOT_PRESENT: return VTD_FR_SRT_NOT_PRESENT;
	case VIOMMU_FAULT_ROOT_INVALID: return VTD_FR_SRT_RSVD;
	case VIOMMU_FAULT_CTX_TABLE: return VTD_FR_SCT_TABLE;
	case VIOMMU_FAULT_CTX_NOT_PRESENT: return VTD_FR_SCT_NOT_PRESENT;
	case VIOMMU_FAULT_CTX_INVALID: return VTD_FR_SCT_RSVD;
	default: return 0;
	}
}

/* x86-64 U/S (bit 2) of a first-level entry. */
#define FL_US (1ull << 2)

unsigned vtd_sm_fault_code(const struct vtd_dev *vd, const struct viommu_fault_record *r, int *fpd)
{
	*fpd = 0;
	switch (r->reason) {
	case VIOMMU_FAULT_ROOT_TABLE:
	case VIOMMU_FAULT_ROOT_NOT_PRESENT:
	case VIOMMU_FAULT_ROOT_INVALID:
	case VIOMMU_FAULT_CTX_TABLE:
	case VIOMMU_FAULT_CTX_NOT_PRESENT:
	case VIOMMU_FAULT_CTX_INVALID:
		if (vd->fs_valid && vd->fs_pasid == r->pasid && vd->fs_addr == r->entry_addr &&
		    vd->fs_entry == r->entry) {
			*fpd = vd->fs_fpd;
			return vd->fs_code;
		}
		return res_code(r->reason);
	default:
		break;
	}

	/* A walk's fault: first- or second-level reasons, by the stage of a
	 * nested walk or the kind of the domain the request is attached to. */
	const struct vtd_domain *dom = NULL;
	if (r->pasid == VIOMMU_NO_PASID) {
		if (vd->attached) {
			dom = vd->dom;
			*fpd = vd->fpd;
		}
	} else {
		const struct vtd_patt *pa = vtd_patt_find(vd, r->pasid);
		if (pa) {
			dom = pa->dom;
			*fpd = pa->fpd;
		}
	}
	int fl = r->stage == 1 || (r->stage == 0 && dom && dom->kind == VTD_DOM_FL);
	int write = !!(r->access & VIOMMU_ACCESS_WRITE);
	switch (r->reason) {
	case VIOMMU_FAULT_NOT_PRESENT:
		/* A second-level entry with R = W = 0 is a permission fault. */
		if (fl)
			return VTD_FR_SFL_NOT_PRESENT;
		return write ? VTD_FR_SGN_WRITE : VTD_FR_SGN_READ;
	case VIOMMU_FAULT_PERMISSION:
		if (fl && !(r->access & VIOMMU_ACCESS_PRIV) && r->level && !(r->entry & FL_US))
			return VTD_FR_SGN_USER;
		if (write)
			return VTD_FR_SGN_WRITE;
		if (r->access & VIOMMU_ACCESS_EXEC)
			return VTD_FR_SGN_EXEC;
		return VTD_FR_SGN_READ;
	case VIOMMU_FAULT_RESERVED_BIT:
		return fl ? VTD_FR_SFL_RSVD : VTD_FR_SSL_RSVD;
	case VIOMMU_FAULT_ADDR_WIDTH:
		return fl ? VTD_FR_SGN_CANONICAL : VTD_FR_SGN_ADDR_WIDTH;
	case VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY:
	case VIOMMU_FAULT_WALK_LOOP:
	case VIOMMU_FAULT_ROOT_MISALIGNED:
		return fl ? VTD_FR_SFL_ACCESS : VTD_FR_SSL_ACCESS;
	case VIOMMU_FAULT_TABLE_WRITE:
		if (r->stage == 1)
			return VTD_FR_SFL_AD_NESTED;
		return fl ? VTD_FR_SFL_ACCESS : VTD_FR_SSL_ACCESS;
	default:
		/* Exclusion, a bad target, a malformed request: the host's
		 * business, not the guest's. */
		return 0;
	}
}

/* ------------------------------------------------------------------------ */
/* PASID-granular invalidation (6.5.2.2, 6.5.2.4)                           */

/* Does the PASID-cache invalidation (g, did, pasid) cover an attachment of
 * DID adid through PASID apasid? */
static int pc_covers(unsigned g, uint16_t did, uint32_t pasid, uint16_t adid, uint32_t apasid)
{
	if (g == VTD_PC_G_GLOBAL)
		return 1;
	if (adid != did)
		return 0;
	return g == VTD_PC_G_DOMAIN || apasid == pasid;
}

void vtd_sm_pc_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint32_t pasid)
{
	did &= DID_MASK;
	pthread_mutex_lock(&t->dom_lock);
	for (unsigned bus = 0; bus < 256; bus++) {
		struct vtd_dev *bv = t->bus[bus];
		if (!bv)
			continue;
		for (unsigned devfn = 0; devfn < 256; devfn++) {
			struct vtd_dev *vd = &bv[devfn];
			struct viommu_rid rid = { .segment = t->cfg.segment, .bus = (uint8_t)bus, .devfn = (uint8_t)devfn };
			if (!vd->dev)
				continue;
			/* Requests without PASID are cached under RID_PASID. A
			 * requester not attached (its entry was cleared, or it
			 * never made a request) is resolved again too, as
			 * devs_refresh does: a passthrough device has no other
			 * moment to be. */
			if (!vd->attached || pc_covers(g, did, pasid, vd->did, vd->rid_pasid))
				vtd_refresh_att(t, vd, rid, VIOMMU_NO_PASID);
			/* Backwards: a detach moves the last one into its slot. */
			for (uint32_t i = vd->nr_patt; i-- > 0;) {
				if (i >= vd->nr_patt)
					continue;
				if (pc_covers(g, did, pasid, vd->patt[i].did, vd->patt[i].pasid))
					vtd_refresh_att(t, vd, rid, vd->patt[i].pasid);
			}
		}
	}
	pthread_mutex_unlock(&t->dom_lock);
}

void vtd_sm_piotlb_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint32_t pasid, uint64_t addr,
			      unsigned am)
{
	uint64_t size = 0;
	if (g == VTD_PIOTLB_G_PAGE && am <= VTD_MAMV_VALUE) {
		size = 4096ull << am;
		addr &= ~(size - 1);
	}
	did &= DID_MASK;
	pthread_mutex_lock(&t->dom_lock);
	for (struct vtd_domain *vdom = t->domains; vdom; vdom = vdom->next) {
		if (vdom->did != did || (!vdom->pasid_mixed && vdom->pasid_tag != pasid))
			continue;
		if (vdom->kind != VTD_DOM_NESTED) {
			/* The PASID's table is the domain's own (a domain is one
			 * table): drop the range for every PASID on it, and let
			 * the map notifiers hear the change (caching mode). */
			if (!size || viommu_invalidate_range(vdom->d, pasid, 1, addr, size) == -EINVAL)
				viommu_invalidate_domain(vdom->d);
			continue;
		}
		/* Nested: the PASID's first level. Requests without PASID are
		 * cached under VIOMMU_NO_PASID but tagged RID_PASID by the
		 * guest: drop those of the domain too (more than asked is
		 * always allowed). */
		for (int k = 0; k < 2; k++) {
			uint32_t tag = k ? VIOMMU_NO_PASID : pasid;
			if (k && !vdom->nopasid_users)
				break;
			if (!size || viommu_invalidate_range(vdom->d, tag, 0, addr, size))
				viommu_invalidate_pasid(vdom->d, tag);
		}
	}
	pthread_mutex_unlock(&t->dom_lock);
}

/* ------------------------------------------------------------------------ */
/* Page requests (7.5.1)                                                    */

/* One request into the guest's queue: 0, or -ENOSPC when the queue is full
 * or cannot be written. */
static int prq_put(struct viommu_vtd *t, const struct viommu_page_request *req)
{
	uint32_t entries = (4096u << (t->pqa & VTD_PQA_PQS_MASK)) / VTD_PRQ_DESC_SIZE;
	uint32_t tail = (uint32_t)((t->pqt & VTD_PQ_OFF_MASK) / VTD_PRQ_DESC_SIZE);
	uint32_t head = (uint32_t)((t->pqh & VTD_PQ_OFF_MASK) / VTD_PRQ_DESC_SIZE);
	/* A tail or head beyond the queue (software's doing): nothing fits. */
	if (tail >= entries || head >= entries || (tail + 1) % entries == head)
		return -ENOSPC;
	uint64_t q0 = VTD_PRD_TYPE | (uint64_t)(req->rid.bus << 8 | req->rid.devfn) << VTD_PRD_RID_SHIFT;
	if (req->pasid != VIOMMU_NO_PASID)
		q0 |= VTD_PRD_PASID_P | (uint64_t)(req->pasid & 0xfffff) << VTD_PRD_PASID_SHIFT;
	if (req->access & VIOMMU_ACCESS_EXEC)
		q0 |= VTD_PRD_EXE;
	if (req->access & VIOMMU_ACCESS_PRIV)
		q0 |= VTD_PRD_PRIV;
	uint64_t q1 = (req->addr & ~0xfffull) | (uint64_t)(req->group & 0x1ff) << VTD_PRD_PRGI_SHIFT;
	if (req->access & VIOMMU_ACCESS_READ)
		q1 |= VTD_PRD_RD;
	if (req->access & VIOMMU_ACCESS_WRITE)
		q1 |= VTD_PRD_WR;
	if (req->last)
		q1 |= VTD_PRD_LPIG;
	uint8_t b[VTD_PRQ_DESC_SIZE];
	memset(b, 0, sizeof(b));
	for (unsigned i = 0; i < 8; i++) {
		b[i] = (uint8_t)(q0 >> (8 * i));
		b[8 + i] = (uint8_t)(q1 >> (8 * i));
	}
	uint64_t a = (t->pqa & VTD_PQA_ADDR_MASK) + (uint64_t)tail * VTD_PRQ_DESC_SIZE;
	if (viommu_mem_write(viommu_get_mem(t->v), a, b, sizeof(b))) {
		vtd_log(t, VIOMMU_LOG_WARN, "page request queue outside memory");
		return -ENOSPC;
	}
	t->pqt = (uint64_t)((tail + 1) % entries) * VTD_PRQ_DESC_SIZE;
	return 0;
}

void vtd_sm_prq_drain(struct viommu_vtd *t, struct vtd_irqs *irq)
{
	struct viommu_page_request req;
	if (!t->prq)
		return;
	while (viommu_prq_pop(t->prq, &req) == 0) {
		/* The guest's responses name requesters of this unit's
		 * segment only: a request from another would never be
		 * answered, so it is refused at once. */
		if (req.rid.segment != t->cfg.segment) {
			if (req.last)
				viommu_prq_respond(t->prq, req.rid, req.pasid, req.group, VIOMMU_PRQ_INVALID);
			continue;
		}
		/* While PRO is set, or with no room, a request is not taken:
		 * the last one of its group is answered with success so the
		 * device asks again (7.5.1: as when the queue is full). */
		if ((t->prs & VTD_PRS_PRO) || prq_put(t, &req)) {
			if (!(t->prs & VTD_PRS_PRO)) {
				t->prs |= VTD_PRS_PRO;
				vtd_prq_event(t, irq);
			}
			if (req.last)
				viommu_prq_respond(t->prq, req.rid, req.pasid, req.group, VIOMMU_PRQ_SUCCESS);
			continue;
		}
		/* A request pending where none was: the event. */
		if (!(t->prs & VTD_PRS_PPR)) {
			t->prs |= VTD_PRS_PPR;
			vtd_prq_event(t, irq);
		}
	}
}

int vtd_sm_page_response(struct viommu_vtd *t, const uint64_t *q)
{
	uint64_t lo = q[0], hi = q[1];
	if ((lo & VTD_PGRP_RSVD_LO) || (hi & VTD_PGRP_RSVD_HI))
		return VTD_IQEI_RESERVED;
	unsigned code = VTD_PGRP_CODE(lo);
	if (code != VIOMMU_PRQ_SUCCESS && code != VIOMMU_PRQ_INVALID && code != VIOMMU_PRQ_FAILURE)
		return VTD_IQEI_RESERVED;
	uint16_t rid = VTD_PGRP_RID(lo);
	struct viommu_rid r = { .segment = t->cfg.segment, .bus = (uint8_t)(rid >> 8), .devfn = (uint8_t)rid };
	uint32_t pasid = (lo & VTD_PGRP_PASID_P) ? VTD_PGRP_PASID(lo) : VIOMMU_NO_PASID;
	/* A response to a group nobody asked about is dropped, as a device
	 * would drop it (not a descriptor error). */
	viommu_prq_respond(t->prq, r, pasid, VTD_PGRP_PRGI(hi), (enum viommu_prq_response)code);
	return 0;
}
