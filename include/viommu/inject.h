/* SPDX-License-Identifier: MIT */
/*
 * viommu: fault injection, a first-class tool for driver developers.
 *
 * A rule matches requests (requester, PASID, address range, access) and
 * fires on a trigger (always, the Nth match only, every Nth match, or with a
 * probability drawn from its own seeded generator), then acts:
 *
 *   VIOMMU_INJECT_FAULT          the request faults with the rule's reason
 *                                (before the IOTLB: cached translations do
 *                                not hide it); recorded like any fault.
 *   VIOMMU_INJECT_CORRUPT_READ   a read of a guest-owned structure (a page-
 *                                table entry, an interrupt-remapping entry)
 *                                at an address in the range gets its value
 *                                XORed with xor_mask; what follows is what the
 *                                hardware would do with that value.
 *   VIOMMU_INJECT_DROP_INVAL     an invalidation of a domain's range that
 *                                matches (PASID and range) is not carried
 *                                out: cached translations survive it. This
 *                                covers every invalidation the core makes
 *                                for its callers, the ones inside
 *                                viommu_domain_unmap and viommu_domain_set_root
 *                                included (their promise to drop cached
 *                                translations is what the rule breaks).
 *   VIOMMU_INJECT_DELAY_INVAL    such an invalidation takes effect only
 *                                delay_us later (checked on each translation).
 *   VIOMMU_INJECT_LOSE_IRQ       an interrupt is lost: a fault-queue interrupt
 *                                of the instance, or a remapped MSI whose
 *                                requester matches (address = the MSI address).
 *   VIOMMU_INJECT_DROP_COMPLETION, VIOMMU_INJECT_DELAY_COMPLETION
 *                                the invalidation is carried out, but its
 *                                completion is never signalled, or signalled
 *                                delay_us late. Front-ends ask
 *                                viommu_inject_completion() before they signal
 *                                one (for VT-d: the wait descriptor's status
 *                                write and interrupt).
 *
 * Determinism: rules keep their own match counters and generators, so a run
 * with the same requests in the same order fires the same way.
 *
 * Thread-safety: rules may be added and removed while requests run; the
 * counters of one rule are updated under a lock, so concurrent requests see
 * one global order of matches.
 */
#ifndef VIOMMU_INJECT_H
#define VIOMMU_INJECT_H

#include <viommu/common.h>
#include <viommu/fault.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

enum viommu_inject_action {
	VIOMMU_INJECT_FAULT = 1,
	VIOMMU_INJECT_CORRUPT_READ = 2,
	VIOMMU_INJECT_DROP_INVAL = 3,
	VIOMMU_INJECT_DELAY_INVAL = 4,
	VIOMMU_INJECT_LOSE_IRQ = 5,
	VIOMMU_INJECT_DROP_COMPLETION = 6,
	VIOMMU_INJECT_DELAY_COMPLETION = 7,
};

enum viommu_inject_trigger {
	VIOMMU_INJECT_ALWAYS = 0,
	VIOMMU_INJECT_NTH = 1,         /**< only the n-th match (from 1) */
	VIOMMU_INJECT_EVERY_NTH = 2,   /**< matches n, 2n, 3n, ... */
	VIOMMU_INJECT_PROBABILITY = 3, /**< each match with probability ppm / 10^6 */
};

/* Which match fields are in use. */
#define VIOMMU_INJECT_M_RID    (1u << 0)
#define VIOMMU_INJECT_M_PASID  (1u << 1)
#define VIOMMU_INJECT_M_RANGE  (1u << 2)
#define VIOMMU_INJECT_M_ACCESS (1u << 3) /**< any of `access` bits */

struct viommu_inject_rule {
	uint32_t size;                     /**< sizeof(struct viommu_inject_rule) */
	enum viommu_inject_action action;
	uint32_t match;                    /**< VIOMMU_INJECT_M_* */
	struct viommu_rid rid;
	uint32_t pasid;                    /**< may be VIOMMU_NO_PASID */
	uint64_t first, last;              /**< address range, inclusive */
	uint32_t access;                   /**< VIOMMU_ACCESS_* */
	enum viommu_inject_trigger trigger;
	uint64_t n;                        /**< NTH, EVERY_NTH: >= 1 */
	uint32_t ppm;                      /**< PROBABILITY: 0 to 1000000 */
	uint64_t seed;                     /**< PROBABILITY */
	uint64_t max_fires;                /**< stop firing after this many; 0 = no limit */
	enum viommu_fault_reason reason;   /**< FAULT: the reason to report */
	uint64_t xor_mask;                 /**< CORRUPT_READ: non-zero */
	uint64_t delay_us;                 /**< DELAY_*: 1 to 60,000,000 */
};

struct viommu_inject_info {
	uint32_t id;
	struct viommu_inject_rule rule;
	uint64_t matched; /**< requests that matched */
	uint64_t fired;   /**< times it acted */
};

/**
 * Add a rule; *id names it (ids are never reused in an instance).
 * Errors: -EINVAL (unknown action, trigger or match bits, n = 0 for NTH or
 * EVERY_NTH, ppm > 10^6, first > last, reason NONE or unknown for FAULT,
 * xor_mask 0 for CORRUPT_READ, delay out of range, pasid out of range),
 * -ENOSPC (256 rules already), -ENOMEM.
 */
VIOMMU_API int viommu_inject_add(viommu *v, const struct viommu_inject_rule *rule, uint32_t *id);

/** Remove a rule. Errors: -ENOENT, -EINVAL. */
VIOMMU_API int viommu_inject_remove(viommu *v, uint32_t id);

/**
 * Copy up to `max` rules with their counters into `out`, in the order they
 * were added; returns how many rules there are (which may exceed max), or
 * -EINVAL.
 */
VIOMMU_API int viommu_inject_list(viommu *v, struct viommu_inject_info *out, uint32_t max);

/** The counters of one rule. Errors: -ENOENT, -EINVAL. */
VIOMMU_API int viommu_inject_get(viommu *v, uint32_t id, struct viommu_inject_info *out);

enum viommu_inject_completion {
	VIOMMU_COMPLETE_NOW = 0,
	VIOMMU_COMPLETE_DROP = 1,  /**< never signal this completion */
	VIOMMU_COMPLETE_DELAY = 2, /**< signal it *delay_us later */
};

/**
 * For front-ends: an invalidation of (pasid, [first, last]) is done; may its
 * completion be signalled now? Consults the DROP_COMPLETION and
 * DELAY_COMPLETION rules (and counts them). @delay_us is set for
 * VIOMMU_COMPLETE_DELAY; may be NULL otherwise.
 */
VIOMMU_API enum viommu_inject_completion viommu_inject_completion(viommu *v, uint32_t pasid, uint64_t first,
								 uint64_t last, uint64_t *delay_us);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_INJECT_H */
