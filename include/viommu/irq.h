/* SPDX-License-Identifier: MIT */
/*
 * viommu: interrupt remapping.
 *
 * A device's MSI (address/data) or an IOAPIC entry in remappable format names
 * an entry of the interrupt remapping table, which lives in guest memory.
 * The core reads it (through an entry cache), validates it (present bit,
 * index bound, reserved bits, source-ID verification) and produces the
 * interrupt to deliver (destination, vector, delivery and destination mode,
 * trigger), then hands it to the instance's MSI callback as a plain MSI. Any
 * failure is a fault with a named reason, recorded like translation faults
 * (unless the entry says fault processing is disabled), and the interrupt is
 * not delivered.
 *
 * The table format is chosen by the front-end; VT-d's 128-bit IRTE today
 * (Intel VT-d spec 5.1 and 9.10), AMD-Vi's next.
 *
 * Thread-safety: translate/deliver may run on many threads at once, beside
 * invalidation and reconfiguration. Once viommu_ir_invalidate() or
 * viommu_ir_configure() returns, no interrupt that starts afterwards uses an
 * entry cached before.
 */
#ifndef VIOMMU_IRQ_H
#define VIOMMU_IRQ_H

#include <viommu/common.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

enum viommu_ir_format {
	VIOMMU_IR_NONE = 0,  /**< remapping off: every MSI passes unchanged */
	VIOMMU_IR_VTD = 1,   /**< VT-d: 16-byte IRTEs, remappable MSI format */
};

/** x2APIC mode (VT-d IRTA.EIME): 32-bit destinations; else xAPIC (8-bit). */
#define VIOMMU_IR_F_X2APIC (1u << 0)
/** Let compatibility-format interrupts through (VT-d GSTS.CFIS); else they
 *  fault with VIOMMU_FAULT_IR_COMPAT_BLOCKED. */
#define VIOMMU_IR_F_ALLOW_COMPAT (1u << 1)

struct viommu_ir_config {
	uint32_t size;                 /**< sizeof(struct viommu_ir_config) */
	enum viommu_ir_format format;
	uint64_t table;                /**< guest address of the table (4 KiB aligned) */
	uint32_t entries;              /**< 1 to 65536 */
	uint32_t flags;                /**< VIOMMU_IR_F_* */
	uint32_t cache_entries;        /**< entry cache size; 0 = 256, at most 65536 */
};

/**
 * Turn remapping on with a table, change it, or (format NONE) turn it off.
 * Drops every cached entry. Errors: -EINVAL (unknown format or flags,
 * entries out of range, misaligned table), -ENOMEM.
 */
VIOMMU_API int viommu_ir_configure(viommu *v, const struct viommu_ir_config *cfg);

/** Drop cached entries [first, first + count); count 0 means all. */
VIOMMU_API void viommu_ir_invalidate(viommu *v, uint32_t first, uint32_t count);

/**
 * Told that interrupt translations may have changed: after
 * viommu_ir_configure (first 0, count 0) and after viommu_ir_invalidate
 * (its range; count 0 = every entry), once the entry cache no longer holds
 * what changed. A consumer that keeps translated interrupts outside the
 * library (a VMM's KVM irqfd routes for passthrough MSIs, IOAPIC pin routes)
 * recomputes the ones in the range here, before the guest's invalidation
 * completes. Called on the invalidating thread with no lock of the library
 * held except the notifier list's: it may call viommu_ir_lookup and
 * viommu_ir_translate, but must not add or remove IR notifiers.
 */
typedef void (*viommu_ir_notify_fn)(void *ctx, uint32_t first, uint32_t count);

typedef struct viommu_ir_notifier viommu_ir_notifier;

/** Register an IR notifier. Errors: -EINVAL (NULL), -ENOMEM. */
VIOMMU_API int viommu_ir_notifier_add(viommu *v, viommu_ir_notify_fn fn, void *ctx, viommu_ir_notifier **out);

/** Unregister; takes NULL. Once it returns, the notifier is not running and
 *  is never called again. Not from inside a notifier. */
VIOMMU_API void viommu_ir_notifier_remove(viommu_ir_notifier *n);

/* An interrupt ready for the platform. */
struct viommu_irq {
	uint32_t dest;       /**< APIC ID (x2APIC: 32 bits; xAPIC: 8 bits) */
	uint8_t vector;
	uint8_t delivery;    /**< 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT */
	uint8_t dest_logical;/**< destination mode: 1 logical, 0 physical */
	uint8_t level;       /**< trigger: 1 level, 0 edge */
	uint8_t redir_hint;
	int remapped;        /**< 0 for a compatibility-format interrupt let through */
	uint32_t index;      /**< the table entry used (remapped only) */
	/* The same interrupt as a plain MSI: address (with the destination's
	 * bits 31:8 in address bits 63:40 for x2APIC, as KVM takes them) and
	 * data. */
	uint64_t msi_addr;
	uint32_t msi_data;
};

/**
 * Remap one MSI write from `rid`. Returns 0 with @out filled, -EFAULT with
 * @fault filled (and recorded unless the entry has fault processing
 * disabled), -EINVAL for bad arguments. Does not deliver.
 */
VIOMMU_API int viommu_ir_translate(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data,
				   struct viommu_irq *out, struct viommu_fault_record *fault);

/**
 * As viommu_ir_translate, but a failure is not recorded as a fault: for a
 * VMM that mirrors what an interrupt would become (KVM's routing table)
 * before it is sent. Returns 0 or -EFAULT (with @fault filled if given).
 */
VIOMMU_API int viommu_ir_lookup(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data,
				struct viommu_irq *out, struct viommu_fault_record *fault);

/**
 * Remap and deliver through the instance's MSI callback. Returns 0 when
 * delivered (or lost on purpose by a LOSE_IRQ injection rule: then -ECANCELED),
 * -EFAULT when remapping faulted, the callback's error, or -ENODEV when the
 * instance has no MSI callback.
 */
VIOMMU_API int viommu_ir_deliver(viommu *v, struct viommu_rid rid, uint64_t msi_addr, uint32_t msi_data);

/**
 * The MSI an IOAPIC sends for redirection-table entry `rte` (64 bits, as the
 * guest wrote it) when it fires, in the configured format: a remappable RTE
 * (VT-d: bit 48) gives a remappable MSI naming its index; a compatibility RTE
 * gives a compatibility MSI. Errors: -EINVAL (NULL). Deliver the result with
 * viommu_ir_deliver(), with the IOAPIC's requester ID.
 */
VIOMMU_API int viommu_ir_ioapic_msi(viommu *v, uint64_t rte, uint64_t *msi_addr, uint32_t *msi_data);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_IRQ_H */
