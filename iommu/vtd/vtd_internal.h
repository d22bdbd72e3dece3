/* SPDX-License-Identifier: MIT */
/*
 * Internal: the VT-d front-end's objects, shared by vtd.c (register file,
 * legacy mode, invalidation, fault recording) and vtd_sm.c (scalable mode:
 * root/context/PASID structures, PASID-granular invalidation, scalable-mode
 * fault reasons).
 */
#ifndef VIOMMU_VTD_INTERNAL_H
#define VIOMMU_VTD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <viommu/faultlog.h>
#include <viommu/iommu.h>
#include <viommu/vtd.h>

#include "core_internal.h"

/* What a core domain of the unit translates with. */
enum vtd_dom_kind {
	VTD_DOM_SL = 0,     /* paging, VT-d second-level table */
	VTD_DOM_FL = 1,     /* paging, x86-64 first-level table (scalable mode) */
	VTD_DOM_NESTED = 2, /* nested: first level per PASID over a second level */
};

/* A core domain for one (DID, kind, table root, levels). */
struct vtd_domain {
	struct vtd_domain *next;
	viommu_domain *d;
	uint64_t root;
	uint16_t did;
	uint8_t levels;
	uint8_t kind;           /* enum vtd_dom_kind */
	uint32_t users;         /* attachments (device, PASID) of this unit to it */
	uint32_t nopasid_users; /* of those, requests without PASID */
	/* The PASID its attachments go through (RID_PASID for requests
	 * without one), as the guest tags the PASID-granular caches; mixed
	 * once two differ (kept until the domain has no user). */
	uint32_t pasid_tag;
	uint8_t pasid_mixed;
};

/* A PASID of a device attached by the unit (scalable mode). */
struct vtd_patt {
	uint32_t pasid;
	struct vtd_domain *dom; /* NULL: identity (pass-through, translation off) */
	uint16_t did;
	uint8_t fpd;            /* FPD of a context, directory or PASID entry on its way */
};

/* A requester the unit made (viommu_vtd_device). */
struct vtd_dev {
	viommu_dev *dev;        /* NULL: no requester at this RID */
	/* Requests without PASID */
	struct vtd_domain *dom; /* domain attached, else NULL (identity) */
	uint16_t did;           /* of the entry it was attached by */
	uint8_t attached;       /* its NO_PASID is attached (by the unit) */
	uint8_t fpd;            /* FPD of the entries it was last resolved through */
	uint32_t rid_pasid;     /* scalable mode: the PASID entry it goes through
				   (set before the attach) */
	/* Requests with PASID (scalable mode) */
	struct vtd_patt *patt;
	uint32_t nr_patt, cap_patt;
	/* The last resolver failure in scalable mode: the VT-d reason the core's
	 * enum cannot carry, matched to the fault record by PASID and entry. */
	uint8_t fs_valid, fs_code, fs_fpd;
	uint32_t fs_pasid;
	uint64_t fs_addr, fs_entry;
};

/* Interrupts to send once the register lock is dropped. */
/* An interrupt message of the unit, composed under the lock, sent after. */
struct vtd_msi {
	int send;
	uint64_t addr;
	uint32_t data;
};

struct vtd_irqs {
	struct vtd_msi fault, compl, prq;
};

struct viommu_vtd {
	viommu *v;
	struct valloc alloc;
	struct viommu_vtd_config cfg;
	uint64_t cap, ecap;
	uint64_t haw_rsvd;      /* address bits at or above the host address width */
	uint32_t nfr;           /* fault recording registers */
	uint32_t oas;           /* output address bits of the second-level tables */
	int sm;                 /* created with VIOMMU_VTD_F_SCALABLE */

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
	/* Page request queue (scalable mode; vtd_sm.c) */
	uint64_t pqh, pqt, pqa;
	uint32_t prs, pectl, pedata, peaddr, peuaddr;
	viommu_prq *prq;        /* devices submit here; drained into the guest's queue */

	/* Latched by GCMD (under lock). */
	uint64_t iq_base;
	uint32_t iq_entries;
	uint32_t iq_dw;         /* 256-bit descriptors */
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
	unsigned ttm;           /* latched translation table mode */
	struct vtd_dev *bus[256];
	uint32_t nr_devs;
	uint32_t nr_patt;       /* PASID attachments of every device */
	struct vtd_domain *domains;
	uint32_t nr_domains;
	viommu_domain *identity;

	viommu_fault_queue *fq;

	/* viommu_vtd_set_mirror: a copy of the register page, kept current
	 * under lock (64-bit stores, so a guest reading it sees whole values). */
	uint64_t *mirror;
};

/* vtd.c, for vtd_sm.c (all under dom_lock unless said otherwise) */
void vtd_log(struct viommu_vtd *t, enum viommu_log_level lvl, const char *msg);
int vtd_read_guest(struct viommu_vtd *t, uint64_t addr, uint64_t *q, unsigned nq);
int vtd_res_fault(struct viommu_fault_record *f, enum viommu_fault_reason why, uint64_t addr, uint64_t entry);
uint64_t vtd_aw_sagaw_bit(unsigned aw);
int vtd_domain_get(struct viommu_vtd *t, uint16_t did, enum vtd_dom_kind kind, uint64_t root, unsigned levels,
		   struct vtd_domain **out);
int vtd_attach(struct viommu_vtd *t, struct vtd_dev *vd, uint32_t pasid, struct vtd_domain *vdom, uint16_t did,
	       uint8_t fpd, const struct viommu_stage1 *s1);
void vtd_detach(struct viommu_vtd *t, struct vtd_dev *vd, uint32_t pasid);
struct vtd_patt *vtd_patt_find(const struct vtd_dev *vd, uint32_t pasid);
/* The page request event (PECTL): an interrupt condition, pending while
 * masked. Under lock. */
void vtd_prq_event(struct viommu_vtd *t, struct vtd_irqs *irq);

/* Resolve one attachment again (a PASID-cache invalidation reached it); one
 * that no longer resolves is detached. */
void vtd_refresh_att(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid, uint32_t pasid);

/* vtd_sm.c */
/* Resolve (device, PASID) through the scalable-mode structures; as the
 * legacy resolver: 0, -EFAULT with the fault named, or -ENOMEM. */
int vtd_sm_resolve(struct viommu_vtd *t, struct vtd_dev *vd, struct viommu_rid rid, uint32_t pasid,
		   struct viommu_fault_record *f);
/* The VT-d reason of a DMA fault of vd in scalable mode (0: none VT-d
 * has), and in *fpd whether a FPD on the way suppresses it. */
unsigned vtd_sm_fault_code(const struct vtd_dev *vd, const struct viommu_fault_record *r, int *fpd);
/* PASID-cache invalidation (6.5.2.2): g as the descriptor's G. */
void vtd_sm_pc_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint32_t pasid);
/* Move the page requests devices submitted into the guest's page request
 * queue (7.5.1). Under lock. */
void vtd_sm_prq_drain(struct viommu_vtd *t, struct vtd_irqs *irq);
/* A page group response descriptor (q[0..1]): 0, or an IQEI code. Under
 * lock. */
int vtd_sm_page_response(struct viommu_vtd *t, const uint64_t *q);
/* PASID-based IOTLB invalidation (6.5.2.4). */
void vtd_sm_piotlb_invalidate(struct viommu_vtd *t, unsigned g, uint16_t did, uint32_t pasid, uint64_t addr,
			      unsigned am);

#endif /* VIOMMU_VTD_INTERNAL_H */
