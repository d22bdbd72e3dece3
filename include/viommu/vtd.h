/* SPDX-License-Identifier: MIT */
/*
 * viommu: the Intel VT-d front-end.
 *
 * Presents one VT-d remapping hardware unit (Intel VT-d specification, rev
 * 3.x) to a guest: its register file, the legacy root and context tables,
 * scalable mode (optional), the second-level and first-level page tables,
 * register-based and queued invalidation, interrupt remapping, primary fault
 * logging with the fault event interrupt, and page requests. It only
 * decodes what the guest writes into calls of the core (viommu/iommu.h,
 * viommu/irq.h, viommu/faultlog.h): the translation, the caches and the fault
 * records are the core's.
 *
 * A VMM creates one per PCI segment it gives an IOMMU, maps its register page
 * at the address it advertises in the ACPI DMAR table (viommu_vtd_dmar), routes
 * the guest's MMIO accesses there to viommu_vtd_mmio_read/write, and has each
 * emulated device DMA through the viommu_dev that viommu_vtd_device gives for
 * its requester ID. Interrupts of devices and IOAPICs go through
 * viommu_ir_deliver() as usual: the front-end switches remapping on and off as
 * the guest's GCMD says. Fault event, invalidation completion and page
 * request interrupts are sent through the instance's MSI callback (they are
 * not remapped), with the requester ID segment:00:00.0.
 *
 * Translation modes: legacy root and context tables (RTADDR.TTM = 00), and
 * with VIOMMU_VTD_F_SCALABLE scalable mode (TTM = 01; VT-d 3.x chapter 9):
 * scalable-mode root and context entries, PASID directories and 512-bit
 * PASID-table entries whose PGTT selects first-level (x86-64 paging over
 * guest-physical addresses), second-level, nested (first level over second
 * level) or pass-through translation; requests without PASID go through the
 * context entry's RID_PASID entry. A root table pointer in another mode is
 * not taken (GSTS.RTPS unchanged). First-level accessed and dirty flags are
 * set by the unit as the specification says (3.6.2; Linux sets them itself
 * in its DMA tables, so it sees no writes); XD is honoured; WPE = 0 is not
 * emulated (supervisor writes always need R/W); the memory-type fields of a
 * PASID entry are accepted and ignored. Supervisor requests (SRE) are not
 * refused by the unit: a request's privilege only decides whether U/S is
 * needed. Page requests (ECAP.PRS): see viommu_vtd_prq.
 * Scalable-mode faults are recorded with the scalable-mode reasons (SRT,
 * SCT, SPD, SPT, SFL, SSL, SGN; 7.1.3), with PP/PV for requests with a
 * PASID, and the FPD of context, PASID-directory and PASID entries
 * honoured. 256-bit invalidation descriptors (IQA.DW) and the PASID-cache,
 * PASID-based IOTLB, PASID-based device-TLB and page group response
 * descriptors are decoded; a PASID-cache or context-cache invalidation
 * re-reads the entries it covers at once. Each (DID, translation type, table)
 * is one core domain: a PASID-based IOTLB invalidation of a first- or
 * second-level table drops the range on that domain and tells its map
 * notifiers (viommu_dev_domain, caching mode), one of a nested domain drops
 * that PASID's first-level translations. The page request event interrupt is
 * sent like the fault event one.
 * Invalidation runs synchronously: a write of IQT processes the queue up to
 * it before the write returns (CCMD and IOTLB register commands likewise),
 * and a context-cache invalidation re-reads the affected requesters' context
 * entries at once. A DELAY_COMPLETION injection rule stalls the queue at the
 * wait descriptor; the completion is signalled at the first register access
 * after the delay (Linux reads FSTS while it waits). A DROP_COMPLETION rule
 * consumes the wait descriptor without its status write and interrupt.
 *
 * Fault recording (primary fault logging, VT-d 7.3): DMA faults of the
 * unit's requesters while translation is on, and interrupt-remapping faults
 * while remapping is on, land in the fault recording registers with their
 * VT-d reason codes; the context entry's FPD suppresses the ones it covers.
 * Denials VT-d has no reason for (exclusion, a translated address without
 * memory, a malformed request) reach only the instance's fault callback.
 *
 * Thread-safety: MMIO accesses are serialized internally; DMA through the
 * devices may run on any thread at the same time.
 */
#ifndef VIOMMU_VTD_H
#define VIOMMU_VTD_H

#include <viommu/common.h>
#include <viommu/faultlog.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct viommu_vtd viommu_vtd;

/** Extended interrupt mode: x2APIC (32-bit destination) interrupt
 *  remapping (ECAP.EIM). */
#define VIOMMU_VTD_F_X2APIC       (1u << 0)
/** Caching mode (CAP.CM): the guest must invalidate after making entries
 *  present too, so map notifiers see every mapping. */
#define VIOMMU_VTD_F_CACHING_MODE (1u << 1)
/** Scalable mode (ECAP.SMTS and what goes with it): RTADDR.TTM = 01,
 *  PASID tables, first-level, second-level, nested and pass-through
 *  translation, 256-bit invalidation descriptors. Legacy mode stays
 *  available to the guest. */
#define VIOMMU_VTD_F_SCALABLE     (1u << 2)

/** Size of the register page to map (VT-d 10.4). */
#define VIOMMU_VTD_MMIO_SIZE 0x1000u

struct viommu_vtd_config {
	uint32_t size;          /**< sizeof(struct viommu_vtd_config) */
	uint32_t flags;         /**< VIOMMU_VTD_F_* */
	uint32_t aw_bits;       /**< 39, 48 or 57 (0 = 48): widest second-level
				     table the guest may use (SAGAW) and MGAW */
	uint32_t fault_records; /**< fault recording registers, 1 to 128 (0 = 8) */
	uint16_t segment;       /**< the PCI segment this unit covers */
	/** Scalable mode: a device hears the answer to its page request group
	 *  (the guest's page group response, or success when the guest's page
	 *  request queue was full). Optional. Called with locks of the unit
	 *  held: it must not call into the unit nor submit page requests from
	 *  inside (a device retries later, from its own thread). */
	viommu_prq_respond_fn prq_respond;
	void *prq_ctx;
};

/**
 * Create a VT-d unit over an instance. It installs itself as the instance's
 * resolver (to attach devices as the guest's context entries say) and fault
 * queue (to fill its fault recording registers). Errors: -EINVAL, -EBUSY (the
 * instance already has a resolver or fault queue), -ENOMEM.
 */
VIOMMU_API int viommu_vtd_create(viommu *v, const struct viommu_vtd_config *cfg, viommu_vtd **out);

/** Destroy (the core devices and domains it made go too); takes NULL. It
 *  removes its resolver and fault queue from the instance and turns
 *  interrupt remapping off if the guest had it on. No call on the unit, and
 *  no DMA through its devices, may be running. */
VIOMMU_API void viommu_vtd_destroy(viommu_vtd *vtd);

/** A register read of 4 or 8 bytes at `off` in the register page (the
 *  halves of a 64-bit register may be read alone; 8 bytes at a 32-bit
 *  register read it and the next). Unknown offsets, misaligned accesses and
 *  other sizes read 0. */
VIOMMU_API uint64_t viommu_vtd_mmio_read(viommu_vtd *vtd, uint64_t off, unsigned len);

/** A register write of 4 or 8 bytes, as for reads; read-only and reserved
 *  bits are ignored, as on hardware, and so are unknown offsets, misaligned
 *  accesses and other sizes. */
VIOMMU_API void viommu_vtd_mmio_write(viommu_vtd *vtd, uint64_t off, uint64_t val, unsigned len);

/**
 * The device a requester DMAs through (created on first use; the same one
 * again afterwards). While the guest has translation off its DMA passes
 * untranslated; with translation on it is translated as its context entry
 * says. The unit owns it: viommu_vtd_destroy destroys it. NULL on allocation
 * failure, for a requester of another segment than the unit's, and for one
 * the instance already has from someone else (the unit manages only the
 * devices it made).
 */
VIOMMU_API viommu_dev *viommu_vtd_device(viommu_vtd *vtd, struct viommu_rid rid);

/**
 * Scalable mode: the queue devices submit page requests (PCIe PRI) to
 * (viommu_prq_submit). The unit moves each into the guest's page request
 * queue (PQA/PQH/PQT) with the page request event (PECTL), and passes the
 * guest's page group responses to cfg.prq_respond; when the guest's queue is
 * full it sets PRS.PRO and answers the group with success, so the device
 * asks again. NULL for a unit without scalable mode. Owned by the unit.
 */
VIOMMU_API viommu_prq *viommu_vtd_prq(viommu_vtd *vtd);

/**
 * Keep a copy of the register page in `page` (VIOMMU_VTD_MMIO_SIZE bytes,
 * 8-byte aligned, the caller's), current after every access and every fault
 * recorded: each register reads there as viommu_vtd_mmio_read would return it.
 * A VMM can map it read-only into the guest (a KVM read-only memory slot), so
 * register reads need no exit while writes still come to
 * viommu_vtd_mmio_write. A value is in the copy before the interrupt that
 * announces it is sent. With a mirror, call viommu_vtd_poll when the time it
 * returned has passed (register reads no longer reach the unit to notice).
 * NULL stops. Errors: -EINVAL (NULL unit, misaligned page).
 */
VIOMMU_API int viommu_vtd_set_mirror(viommu_vtd *vtd, void *page);

/**
 * Do what is due by now (a completion delayed by an injection rule) and
 * return the nanoseconds until the next thing that waits for time, or 0 when
 * nothing does. Without a mirror, register accesses do this themselves.
 */
VIOMMU_API uint64_t viommu_vtd_poll(viommu_vtd *vtd);

/* An IOAPIC the unit remaps, for the DMAR table's device scope. */
struct viommu_vtd_ioapic {
	uint8_t id;             /**< its IOAPIC id (as in the MADT) */
	struct viommu_rid rid;  /**< its requester ID */
};

/**
 * Write the ACPI DMAR table (with header, checksummed) for this unit: one
 * DRHD with INCLUDE_PCI_ALL at `reg_base`, the IOAPICs in its device scope,
 * and the host address width (aw_bits - 1); interrupt remapping is
 * advertised and x2APIC is not opted out of. Returns the table's length, or
 * -ENOSPC when `len` is too small (nothing written), -EINVAL (NULL, ioapics
 * NULL with nr_ioapics, more than 256 IOAPICs, reg_base not 4 KiB aligned).
 */
VIOMMU_API int viommu_vtd_dmar(const viommu_vtd *vtd, uint64_t reg_base, const struct viommu_vtd_ioapic *ioapics,
			       unsigned nr_ioapics, void *buf, size_t len);

/**
 * The same DMAR table with an explicit device scope: the DRHD lists exactly
 * `devices` (PCI endpoints on a root bus: each entry's start bus is the
 * device's bus and its path one (device, function) step) and the
 * IOAPICs, without INCLUDE_PCI_ALL, so a PCI device left out is behind no
 * remapping unit: the guest neither translates its DMA nor remaps its
 * interrupts (the VMM delivers them untranslated), as QEMU's bypass_iommu.
 * nr_devices 0 is a unit for the IOAPICs alone. Same returns as
 * viommu_vtd_dmar; also -EINVAL for devices NULL with nr_devices, more than
 * 256 devices, or a device in another segment than the unit's.
 */
VIOMMU_API int viommu_vtd_dmar_scoped(const viommu_vtd *vtd, uint64_t reg_base,
				      const struct viommu_vtd_ioapic *ioapics, unsigned nr_ioapics,
				      const struct viommu_rid *devices, unsigned nr_devices, void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_VTD_H */
