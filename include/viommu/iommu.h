/* SPDX-License-Identifier: MIT */
/*
 * viommu: the vendor-neutral IOMMU core.
 *
 * Objects:
 *   viommu         one IOMMU instance: guest memory, caches, counters. Several
 *                  may live in one process; nothing is global.
 *   viommu_domain  an address space: blocked, identity, paging (one stage, any
 *                  page-table format) or nested (stage 1 per attached PASID
 *                  over the domain's stage 2). Its table is host-owned (built
 *                  with viommu_domain_map/unmap) or guest-owned (a root in
 *                  guest memory, walked on demand and cached).
 *   viommu_dev     a requester: PCI segment/bus/device/function. Each PASID
 *                  of it (and VIOMMU_NO_PASID for requests without one) is
 *                  attached to a domain, or is blocked.
 *
 * A request is (device, PASID, address, access). Translation walks the tables
 * (ANDing permissions through every level of both stages), checks the
 * exclusion vector and ranges on the output, and caches the result in the
 * IOTLB tagged by domain and PASID. A nested walk's stage-1 table pointers are
 * stage-2 inputs: a nested TLB (stage-2 results for stage-1 table pages) and a
 * page-walk cache (stage-1 table pointers) cut its memory references down.
 *
 * Every denial is a fault with a named reason (viommu/fault.h), handed to the
 * fault callback when one is installed and counted.
 *
 * Thread-safety: translation (viommu_translate, the DMA API) may run on any
 * number of threads at once, beside invalidations, map/unmap of host-owned
 * tables and notifier registration. Topology changes (create/destroy of
 * domains and devices, attach/detach, exclusion updates) are serialized
 * internally, and may run beside translations; see each function for what a
 * translation already in flight may still see.
 */
#ifndef VIOMMU_IOMMU_H
#define VIOMMU_IOMMU_H

#include <viommu/common.h>
#include <viommu/fault.h>
#include <viommu/mem.h>
#include <viommu/pagetable.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct viommu viommu;
typedef struct viommu_domain viommu_domain;
typedef struct viommu_dev viommu_dev;

/** The PASID value of a request that carries none. */
#define VIOMMU_NO_PASID 0xffffffffu
/** PASIDs are 20 bits wide (PCIe). */
#define VIOMMU_PASID_MAX 0xfffffu

/** A PCI requester: segment, bus, device (0-31), function (0-7). */
struct viommu_rid {
	uint16_t segment;
	uint8_t bus;
	uint8_t devfn; /**< device << 3 | function */
};

/* A fault, as the core reports it. */
struct viommu_fault_record {
	uint64_t seq;                    /**< per instance, from 1, no gaps */
	struct viommu_rid rid;
	uint32_t pasid;                  /**< VIOMMU_NO_PASID if none */
	uint64_t addr;                   /**< the request's input address */
	uint32_t access;                 /**< VIOMMU_ACCESS_* of the request */
	enum viommu_fault_reason reason;
	uint32_t stage;                  /**< 1 or 2 for a nested walk (2 also for
					      a stage-1 table fetch), 0 otherwise */
	uint32_t level;                  /**< level of the faulting entry, 0 if none */
	uint64_t entry_addr;             /**< its address (0 if none) */
	uint64_t entry;                  /**< its value */
};

/*
 * Called once per fault, from the thread whose request faulted, with no lock
 * of the library held (it may call viommu_* functions, but not destroy the
 * instance). Records are never dropped on this path: every fault reaches it.
 */
typedef void (*viommu_fault_fn)(void *ctx, const struct viommu_fault_record *rec);

/* Delivery of a (remapped) MSI to the platform; 0 or a negative errno. */
typedef int (*viommu_msi_fn)(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid);

struct viommu_config {
	uint32_t size;                     /**< sizeof(struct viommu_config) */
	struct viommu_mem_config mem;      /**< guest memory (copied) */
	viommu_msi_fn msi;                 /**< optional */
	void *msi_ctx;
	viommu_fault_fn fault;             /**< optional */
	void *fault_ctx;
	viommu_log_fn log;                 /**< optional */
	void *log_ctx;
	uint32_t iotlb_entries;            /**< in: 0 = 4096; rounded up to a power
					        of two, at least 64, at most 2^20 */
	uint32_t walk_cache_entries;       /**< in: page-walk cache and nested TLB
					        size each; 0 = 1024; same bounds */
};

/**
 * Create an instance.
 * @alloc: NULL for the C library; used for everything the instance allocates.
 * Errors: -EINVAL (bad config; the memory config as viommu_mem_create), -ENOMEM.
 */
VIOMMU_API int viommu_create(const struct viommu_config *cfg, const struct viommu_alloc *alloc,
			     viommu **out);

/** Destroy, with every domain and device still in it. Takes NULL. No call on
 *  the instance may be running or start. */
VIOMMU_API void viommu_destroy(viommu *v);

/** The instance's memory interface (valid until viommu_destroy). */
VIOMMU_API viommu_mem *viommu_get_mem(viommu *v);

/* ------------------------------------------------------------------------ */
/* Domains                                                                  */

enum viommu_domain_type {
	VIOMMU_DOMAIN_BLOCKED = 1,  /**< every request faults (VIOMMU_FAULT_BLOCKED) */
	VIOMMU_DOMAIN_IDENTITY = 2, /**< output = input (exclusions still apply) */
	VIOMMU_DOMAIN_PAGING = 3,   /**< one stage */
	VIOMMU_DOMAIN_NESTED = 4,   /**< stage 1 per (device, PASID) over stage 2 */
};

/** The domain's table (paging: the only stage; nested: stage 2) is built
 *  with viommu_domain_map/unmap. Otherwise it is guest-owned: set its root
 *  with viommu_domain_set_root. */
#define VIOMMU_DOMAIN_F_HOST_OWNED (1u << 0)

struct viommu_domain_config {
	uint32_t size;                   /**< sizeof(struct viommu_domain_config) */
	enum viommu_domain_type type;
	uint32_t flags;                  /**< VIOMMU_DOMAIN_F_* (paging, nested) */
	struct viommu_pt_config pt;      /**< paging, nested: in/out as in
					      viommu_pt_config_check */
};

/**
 * Create a domain. Its id (viommu_domain_id) is unique in the instance for
 * its lifetime and never reused.
 * Errors: -EINVAL (bad type, flags or table config), -ENOMEM.
 */
VIOMMU_API int viommu_domain_create(viommu *v, struct viommu_domain_config *cfg, viommu_domain **out);

/**
 * Destroy a domain. Errors: -EBUSY while a device PASID is attached to it
 * (nothing done), -EINVAL for NULL. Its cached translations are dropped.
 */
VIOMMU_API int viommu_domain_destroy(viommu_domain *d);

VIOMMU_API uint32_t viommu_domain_id(const viommu_domain *d);

/** The domain's type (0 for NULL). */
VIOMMU_API enum viommu_domain_type viommu_domain_get_type(const viommu_domain *d);

/**
 * Guest-owned table: point the domain at a new root (guest address). The
 * domain's cached translations are dropped before this returns.
 * Errors: -EINVAL (NULL, host-owned or no table), -EPERM is never returned: a
 * bad root is accepted and faults at translation time with its reason.
 */
VIOMMU_API int viommu_domain_set_root(viommu_domain *d, uint64_t root);

/**
 * Host-owned table: map/unmap as viommu_pt_map/viommu_pt_unmap, with the
 * progress in *done. Unmap also drops the range's cached translations (of
 * every PASID of the domain) before it returns, and tells the notifiers.
 * Errors: as viommu_pt_map/unmap, plus -EINVAL for a domain that is not
 * host-owned.
 */
VIOMMU_API int viommu_domain_map(viommu_domain *d, uint64_t iova, uint64_t paddr, uint64_t size,
				 uint32_t prot, uint64_t *done);
VIOMMU_API int viommu_domain_unmap(viommu_domain *d, uint64_t iova, uint64_t size, uint64_t *done);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */

/**
 * Add a requester. Errors: -EEXIST (already there), -EINVAL, -ENOMEM.
 * Every PASID of a new device is blocked.
 */
VIOMMU_API int viommu_dev_create(viommu *v, struct viommu_rid rid, viommu_dev **out);

/** Remove a requester (detaching everything). Takes NULL. No translation for
 *  this device may be running or start. */
VIOMMU_API void viommu_dev_destroy(viommu_dev *dev);

/** The device with this requester ID, or NULL. */
VIOMMU_API viommu_dev *viommu_dev_find(viommu *v, struct viommu_rid rid);

/* Stage 1 of a nested attachment: a guest-owned table whose table pointers
 * and outputs are stage-2 inputs. */
struct viommu_stage1 {
	uint32_t size;               /**< sizeof(struct viommu_stage1) */
	struct viommu_pt_config pt;  /**< in/out */
	uint64_t root;               /**< stage-2 input address of the root */
};

/**
 * Attach (device, PASID) to a domain; @pasid may be VIOMMU_NO_PASID.
 * @s1: required for a nested domain, NULL otherwise.
 * Replaces an earlier attachment of the same PASID; translations of it that
 * start after this returns use the new one and nothing cached for the old
 * one. Devices attached to one domain share its cached translations, except
 * that in a nested domain each distinct stage 1 (PASID, root, format) has
 * its own: two devices with the same PASID and different stage-1 tables never
 * see each other's mappings.
 * Errors: -EINVAL (bad PASID, NULL, s1 missing or given when not nested, bad
 * s1 config), -ENOMEM.
 */
VIOMMU_API int viommu_dev_attach(viommu_dev *dev, uint32_t pasid, viommu_domain *d,
				 const struct viommu_stage1 *s1);

/** Block (device, PASID) again; once this returns, nothing cached for the
 *  attachment is used. Errors: -ENOENT (not attached), -EINVAL. */
VIOMMU_API int viommu_dev_detach(viommu_dev *dev, uint32_t pasid);

/**
 * The domain (device, PASID) is attached to now, or NULL (blocked). It stays
 * valid while the attachment lasts: a consumer that keeps it (a map notifier
 * on it) hears of the change through the attach notifier first.
 */
VIOMMU_API viommu_domain *viommu_dev_domain(viommu_dev *dev, uint32_t pasid);

/*
 * Told after an attachment of the device changed: viommu_dev_attach (d = the
 * domain, also when it is the same one again) and viommu_dev_detach (d =
 * NULL), once the change has taken effect. A consumer that follows the
 * device's translations outside the library (VFIO shadowing a passthrough
 * device's domain into the host IOMMU) moves to the new domain here, before
 * the attach returns to the front-end that made it (so before the guest's
 * context invalidation completes). Called on the attaching thread with no
 * lock of the core held (a front-end may hold its own): it may call
 * viommu_dev_domain and add or remove map notifiers, but must not attach or
 * detach this device.
 */
typedef void (*viommu_attach_notify_fn)(void *ctx, viommu_dev *dev, uint32_t pasid, viommu_domain *d);

/** Install (fn NULL: remove) the device's attach notifier; one per device.
 *  Errors: -EINVAL. */
VIOMMU_API int viommu_dev_set_attach_notify(viommu_dev *dev, viommu_attach_notify_fn fn, void *ctx);

/* ------------------------------------------------------------------------ */
/* Exclusion (in the spirit of AMD's Device Exclusion Vector)               */

/**
 * Protect output pages from every DMA of the instance, whatever the tables
 * say: a request whose output touches a protected page faults with
 * VIOMMU_FAULT_EXCLUDED. Pages are 4 KiB; [addr, addr + size) is rounded out
 * to pages. Takes effect for every translation that starts after it returns.
 * Errors: -EINVAL (zero size, wrap), -ENOMEM.
 */
VIOMMU_API int viommu_exclude_range(viommu *v, uint64_t addr, uint64_t size);
/** Remove protection from pages (no error for pages not protected). */
VIOMMU_API int viommu_unexclude_range(viommu *v, uint64_t addr, uint64_t size);
/**
 * The exclusion vector: set (or clear) the bit of each 4 KiB page below
 * nr_pages * 4 KiB from a bitmap (bit i of byte i / 8 = page i), as AMD's DEV.
 * Errors: -EINVAL, -ENOMEM.
 */
VIOMMU_API int viommu_set_exclusion_bitmap(viommu *v, const uint8_t *bitmap, uint64_t nr_pages);

/* ------------------------------------------------------------------------ */
/* Translation                                                              */

struct viommu_translation {
	uint64_t oaddr;     /**< output address of the input address */
	uint64_t len;       /**< bytes from oaddr on that the same page maps */
	uint32_t perms;     /**< VIOMMU_PERM_* of both stages together */
	uint32_t refs;      /**< memory references this translation made (0 on
			         an IOTLB hit) */
	int iotlb_hit;      /**< 1 if served from the IOTLB */
	struct viommu_fault_record fault; /**< on -EFAULT: what happened (the
					      seq is the one reported) */
};

/**
 * Translate one request of `access` (VIOMMU_ACCESS_*) at `iova`.
 * Returns 0 with @out filled, -EFAULT when it faults (out->fault says why; the
 * fault callback has been called), -EINVAL for bad arguments.
 */
VIOMMU_API int viommu_translate(viommu_dev *dev, uint32_t pasid, uint64_t iova, uint32_t access,
				struct viommu_translation *out);

/* ------------------------------------------------------------------------ */
/* Invalidation                                                             */

/*
 * Once one of these returns, no translation that starts afterwards can use
 * a cached translation (IOTLB, page-walk cache, nested TLB) of what it
 * invalidated, whatever other threads are doing at the time.
 */
VIOMMU_API void viommu_invalidate_all(viommu *v);
VIOMMU_API void viommu_invalidate_domain(viommu_domain *d);
/** One PASID of a domain (its IOTLB and stage-1 walk caches). */
VIOMMU_API void viommu_invalidate_pasid(viommu_domain *d, uint32_t pasid);
/**
 * [iova, iova + size) of a domain: with @all_pasids set, of every PASID (a
 * change of the domain's own table), else of `pasid` only (a stage-1 change;
 * @pasid may be VIOMMU_NO_PASID). Drops the page-walk caches of the PASIDs
 * concerned too. With @all_pasids and a guest-owned table, the notifiers hear
 * what changed in the range before this returns. Errors: -EINVAL (NULL, zero
 * size, wrap), -ENOMEM (the notifiers' record of the guest's mappings could
 * not grow: they may have missed changes; re-register with replay), or a
 * notifier's error (the caches are dropped all the same in every case).
 */
VIOMMU_API int viommu_invalidate_range(viommu_domain *d, uint32_t pasid, int all_pasids, uint64_t iova,
				       uint64_t size);

/* ------------------------------------------------------------------------ */
/* Map/unmap notifiers                                                      */

enum viommu_map_event_type {
	VIOMMU_EVENT_MAP = 1,   /**< [iova, iova + size) now maps to paddr */
	VIOMMU_EVENT_UNMAP = 2, /**< [iova, iova + size) no longer maps */
};

struct viommu_map_event {
	enum viommu_map_event_type type;
	uint64_t iova;
	uint64_t paddr; /**< MAP only */
	uint64_t size;
	uint32_t perms; /**< MAP only */
};

/*
 * Called for the single-stage (or stage-2) mappings of a domain: on
 * viommu_domain_map/unmap for host-owned tables, and on viommu_invalidate_range
 * / _domain / _all for guest-owned ones (the core walks the guest's table over
 * the range and reports the difference with what it reported before: an
 * UNMAP for each mapping that went away or changed, then a MAP for each new
 * one). Called with the domain's notifier lock held: it must not call back
 * into the same domain's notifier functions. Return 0, or a negative errno,
 * which the core logs and passes back from the call that triggered it.
 */
typedef int (*viommu_map_notify_fn)(void *ctx, viommu_domain *d, const struct viommu_map_event *ev);

typedef struct viommu_notifier viommu_notifier;

/**
 * Register a notifier. With @replay set, it first hears a MAP for every
 * mapping the domain has now (guest-owned: as the guest's table says now).
 * Errors: -EINVAL, -ENOMEM, or the notifier's error during replay (then it is
 * not registered).
 */
VIOMMU_API int viommu_notifier_add(viommu_domain *d, viommu_map_notify_fn fn, void *ctx, int replay,
				   viommu_notifier **out);
/** Unregister; takes NULL. */
VIOMMU_API void viommu_notifier_remove(viommu_notifier *n);
/** Replay every current mapping to one notifier (MAP events). */
VIOMMU_API int viommu_notifier_replay(viommu_notifier *n);

/* ------------------------------------------------------------------------ */
/* Front-ends                                                               */

/*
 * A resolver attaches requesters on demand: a translation for a (device,
 * PASID) that has no attachment calls it (with no lock of the library held)
 * before faulting. It reads the guest's structures (context entries, say),
 * calls viommu_dev_attach and returns 0, and the translation is tried again
 * once; or it returns -EFAULT with fault->reason (and level, entry_addr,
 * entry) set to why the requester has no domain; or -ENOENT to leave it
 * blocked (VIOMMU_FAULT_BLOCKED). It may be called from many threads at once.
 */
typedef int (*viommu_resolve_fn)(void *ctx, viommu_dev *dev, uint32_t pasid, struct viommu_fault_record *fault);

/** Install (or with fn NULL remove) the resolver. Errors: -EBUSY (another
 *  one is installed), -EINVAL. */
VIOMMU_API int viommu_set_resolver(viommu *v, viommu_resolve_fn fn, void *ctx);

/**
 * Send an MSI that is not subject to remapping (an IOMMU's own fault event or
 * completion interrupt) through the instance's MSI callback. A LOSE_IRQ
 * injection rule may lose it (-ECANCELED). Errors: -ENODEV (no MSI callback),
 * -EINVAL, or the callback's.
 */
VIOMMU_API int viommu_msi_send(viommu *v, struct viommu_rid rid, uint64_t addr, uint32_t data);

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */

struct viommu_stats {
	uint64_t translations;
	uint64_t iotlb_hits, iotlb_misses, iotlb_evictions;
	uint64_t pwc_hits, pwc_misses;     /**< stage-1 page-walk cache */
	uint64_t ntlb_hits, ntlb_misses;   /**< nested TLB (stage-2 of table pages) */
	uint64_t walks;                    /**< table walks started */
	uint64_t refs;                     /**< memory references made by walks */
	uint64_t faults;
	uint64_t invalidations;
	uint64_t irqs_remapped;            /**< interrupts translated through the
					        remapping table */
	uint64_t irqs_passed;              /**< interrupts let through unremapped
					        (remapping off, or compatibility
					        format allowed) */
	uint64_t irq_faults;               /**< interrupts refused by remapping */
};

/** A snapshot of the counters (each read atomically, not all at one instant). */
VIOMMU_API void viommu_get_stats(viommu *v, struct viommu_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_IOMMU_H */
