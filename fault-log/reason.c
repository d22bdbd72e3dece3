/* SPDX-License-Identifier: MIT */
#include <viommu/fault.h>

static const char *const reason_names[VIOMMU_FAULT_REASON_COUNT] = {
	[VIOMMU_FAULT_NONE] = "none",
	[VIOMMU_FAULT_NOT_PRESENT] = "not-present",
	[VIOMMU_FAULT_PERMISSION] = "permission",
	[VIOMMU_FAULT_RESERVED_BIT] = "reserved-bit",
	[VIOMMU_FAULT_ADDR_WIDTH] = "address-width",
	[VIOMMU_FAULT_TABLE_OUTSIDE_MEMORY] = "table-outside-memory",
	[VIOMMU_FAULT_WALK_LOOP] = "walk-loop",
	[VIOMMU_FAULT_ROOT_MISALIGNED] = "root-misaligned",
	[VIOMMU_FAULT_TABLE_WRITE] = "table-write",
	[VIOMMU_FAULT_BLOCKED] = "blocked",
	[VIOMMU_FAULT_EXCLUDED] = "excluded",
	[VIOMMU_FAULT_BAD_REQUEST] = "bad-request",
	[VIOMMU_FAULT_DMA_TARGET] = "dma-target",
	[VIOMMU_FAULT_IR_INDEX] = "ir-index",
	[VIOMMU_FAULT_IR_NOT_PRESENT] = "ir-not-present",
	[VIOMMU_FAULT_IR_COMPAT_BLOCKED] = "ir-compat-blocked",
	[VIOMMU_FAULT_IR_SOURCE_ID] = "ir-source-id",
	[VIOMMU_FAULT_ROOT_NOT_PRESENT] = "root-not-present",
	[VIOMMU_FAULT_ROOT_INVALID] = "root-invalid",
	[VIOMMU_FAULT_ROOT_TABLE] = "root-table",
	[VIOMMU_FAULT_CTX_NOT_PRESENT] = "context-not-present",
	[VIOMMU_FAULT_CTX_INVALID] = "context-invalid",
	[VIOMMU_FAULT_CTX_TABLE] = "context-table",
};

const char *viommu_fault_reason_name(enum viommu_fault_reason reason)
{
	if ((unsigned)reason >= VIOMMU_FAULT_REASON_COUNT || !reason_names[reason])
		return "unknown";
	return reason_names[reason];
}
