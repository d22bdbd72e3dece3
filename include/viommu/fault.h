/* SPDX-License-Identifier: MIT */
/*
 * viommu: the one enum of fault reasons.
 *
 * Every failure of a translation, of a walk of guest-owned structures or of an
 * interrupt lookup carries one of these, so the fault log never has to guess.
 * Front-ends map them to their architectural codes (VT-d fault reasons, AMD-Vi
 * event types, virtio-iommu fault reasons); the mapping lives in the front-end.
 *
 * Thread-safety: the functions here are pure and may be called from any thread.
 */
#ifndef VIOMMU_FAULT_H
#define VIOMMU_FAULT_H

#include <viommu/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum viommu_fault_reason {
	/** No fault: the request was translated. */
	VIOMMU_FAULT_NONE = 0,
	/** An entry on the walk is not present (for VT-d second level: R=W=0). */
	VIOMMU_FAULT_NOT_PRESENT = 1,
	/** The accumulated permissions of the walk do not allow the access. */
	VIOMMU_FAULT_PERMISSION = 2,
	/** An entry has a reserved bit set (or an encoding the format reserves). */
	VIOMMU_FAULT_RESERVED_BIT = 3,
	/**
	 * The input address is beyond what the table can translate: above the
	 * format's input width, not canonical where the format requires it, or
	 * non-zero in the bits of a level the table skips (AMD-Vi).
	 */
	VIOMMU_FAULT_ADDR_WIDTH = 4,
	/** A table (or the root) lies outside every guest-memory region, or a
	 *  read or write of it through the memory callbacks failed. */
	VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY = 5,
	/** The walk would not end: a next-level pointer that does not descend
	 *  (AMD-Vi next-level >= current level), or more steps than levels. */
	VIOMMU_FAULT_WALK_LOOP = 6,
	/** The root pointer is not aligned to a table (4 KiB). */
	VIOMMU_FAULT_ROOT_MISALIGNED = 7,
	/** The accessed/dirty bits could not be written back (read-only memory). */
	VIOMMU_FAULT_TABLE_WRITE = 8,
	/** The requester (or its PASID) is not attached, or its domain blocks. */
	VIOMMU_FAULT_BLOCKED = 9,
	/** The output touches a page the exclusion vector or ranges protect. */
	VIOMMU_FAULT_EXCLUDED = 10,
	/** The request itself is malformed (PASID out of range, access of zero
	 *  bytes or wrapping past 2^64). */
	VIOMMU_FAULT_BAD_REQUEST = 11,
	/** The translated address is backed by no memory (no region, and the
	 *  memory callbacks refused it): the bus would abort the DMA. */
	VIOMMU_FAULT_DMA_TARGET = 12,
	/** Interrupt remapping: the index is beyond the table. For interrupt
	 *  remapping faults the record's addr holds the index. */
	VIOMMU_FAULT_IR_INDEX = 13,
	/** Interrupt remapping: the entry is not present. */
	VIOMMU_FAULT_IR_NOT_PRESENT = 14,
	/** Interrupt remapping: a compatibility-format interrupt while those are
	 *  blocked. */
	VIOMMU_FAULT_IR_COMPAT_BLOCKED = 15,
	/** Interrupt remapping: the requester fails the entry's source-ID check. */
	VIOMMU_FAULT_IR_SOURCE_ID = 16,
	/*
	 * The structures that say which domain a requester is in (VT-d root
	 * and context entries; AMD-Vi's device table entry counts as a
	 * context entry). A front-end's resolver reports these.
	 */
	/** The root entry for the requester's bus is not present. */
	VIOMMU_FAULT_ROOT_NOT_PRESENT = 17,
	/** The root entry has reserved bits set. */
	VIOMMU_FAULT_ROOT_INVALID = 18,
	/** The root table lies outside memory. */
	VIOMMU_FAULT_ROOT_TABLE = 19,
	/** The requester's context entry is not present. */
	VIOMMU_FAULT_CTX_NOT_PRESENT = 20,
	/** The context entry has reserved bits set or an invalid field
	 *  (address width, translation type). */
	VIOMMU_FAULT_CTX_INVALID = 21,
	/** The context table lies outside memory. */
	VIOMMU_FAULT_CTX_TABLE = 22,

	VIOMMU_FAULT_REASON_COUNT /**< number of reasons; not a reason */
};

/**
 * Returns a short stable name for a reason ("not-present", "permission", ...),
 * suitable for logs and JSON; "unknown" for a value outside the enum.
 */
VIOMMU_API const char *viommu_fault_reason_name(enum viommu_fault_reason reason);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_FAULT_H */
