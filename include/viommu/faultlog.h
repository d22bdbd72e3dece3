/* SPDX-License-Identifier: MIT */
/*
 * viommu: the fault log. Queues of fault records and of page requests, with
 * interrupts that have mask and pending semantics, and a JSON-lines writer.
 *
 * A fault queue holds up to `entries` records between a producer (the core,
 * when a request faults) and a consumer (a front-end copying records into the
 * guest's fault registers or event log, or a host tool). A record that finds
 * the queue full is not stored: the overflow flag is set and the lost counter
 * counts it, so a loss is never silent. Records keep their per-instance
 * sequence numbers, so a consumer can see exactly which ones it missed.
 *
 * Interrupt: when a record is stored the queue "raises" (calls the raise
 * callback) if it is unmasked; if it is masked the interrupt is left pending
 * and raised when it is unmasked, as a real IOMMU's fault event interrupt.
 * With VIOMMU_FQ_IRQ_ON_EMPTY it raises only when the queue goes from empty to
 * non-empty (the consumer drains on each interrupt).
 *
 * A page-request queue holds recoverable faults (PCIe page requests): each
 * carries a page request group index; the consumer answers a group (success,
 * invalid request, failure) in any order, and the device hears the answer
 * through its response callback, so it can retry.
 *
 * Thread-safety: every function may be called from any thread; producers and
 * consumers may run at once. Callbacks are called without the queue's lock
 * held and may call back into the queue.
 */
#ifndef VIOMMU_FAULTLOG_H
#define VIOMMU_FAULTLOG_H

#include <viommu/common.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct viommu_fault_queue viommu_fault_queue;

/* Called to raise the queue's interrupt. */
typedef void (*viommu_fq_raise_fn)(void *ctx);
/* Called for each record stored (after it is in the queue), for consumers
 * that prefer a push to polling. */
typedef void (*viommu_fq_notify_fn)(void *ctx, const struct viommu_fault_record *rec);

/** Raise only when the queue goes from empty to non-empty. */
#define VIOMMU_FQ_IRQ_ON_EMPTY (1u << 0)
/** Start masked. */
#define VIOMMU_FQ_MASKED (1u << 1)

struct viommu_fault_queue_config {
	uint32_t size;             /**< sizeof(struct viommu_fault_queue_config) */
	uint32_t entries;          /**< capacity, 1 to 2^20 */
	uint32_t flags;            /**< VIOMMU_FQ_* */
	viommu_fq_raise_fn raise;  /**< optional */
	viommu_fq_notify_fn notify;/**< optional */
	void *ctx;                 /**< first argument of both */
};

/** Errors: -EINVAL (bad config), -ENOMEM. */
VIOMMU_API int viommu_fault_queue_create(const struct viommu_fault_queue_config *cfg,
					 const struct viommu_alloc *alloc, viommu_fault_queue **out);
/** Takes NULL. Detach it from instances first. */
VIOMMU_API void viommu_fault_queue_destroy(viommu_fault_queue *q);

/**
 * Store a record. Returns 0, or -ENOSPC when the queue was full (the record
 * is counted lost and the overflow flag set), -EINVAL for NULL.
 */
VIOMMU_API int viommu_fault_queue_push(viommu_fault_queue *q, const struct viommu_fault_record *rec);

/** Take the oldest record. Returns 0, -EAGAIN when empty, -EINVAL. */
VIOMMU_API int viommu_fault_queue_pop(viommu_fault_queue *q, struct viommu_fault_record *rec);

struct viommu_fault_queue_status {
	uint64_t head;       /**< records popped so far (index of the next to pop) */
	uint64_t tail;       /**< records stored so far */
	uint32_t count;      /**< tail - head */
	uint32_t entries;    /**< capacity */
	int overflow;        /**< a record was lost since the flag was cleared */
	uint64_t lost;       /**< records lost in all */
	int masked;
	int pending;         /**< an interrupt waits for unmasking */
	uint64_t raised;     /**< interrupts raised */
	uint64_t suppressed; /**< interrupts a fault-injection rule lost */
};

VIOMMU_API void viommu_fault_queue_get_status(viommu_fault_queue *q, struct viommu_fault_queue_status *st);

/** Clear the overflow flag (the lost counter stays). */
VIOMMU_API void viommu_fault_queue_clear_overflow(viommu_fault_queue *q);

/** Mask or unmask the interrupt; unmasking raises a pending one. */
VIOMMU_API void viommu_fault_queue_set_mask(viommu_fault_queue *q, int masked);

/**
 * Send every fault of the instance to this queue too (besides the fault
 * callback); NULL detaches. Interrupt remapping faults included. Records
 * enter the queue in sequence-number order. The queue's callbacks may call
 * into the instance (deliver an interrupt, translate, even detach the
 * queue). When this returns, no push to the previous queue is still running
 * (except one on this very thread, if called from that queue's callback).
 * A queue serves one instance at a time: -EBUSY if another has it.
 */
VIOMMU_API int viommu_set_fault_queue(viommu *v, viommu_fault_queue *q);

/**
 * Write one record as a JSON object and a newline into buf (NUL-terminated),
 * like snprintf: returns the length it needs (without the NUL), so a return
 * >= len means it was cut short. Keys, in this order: seq, rid
 * ("SSSS:BB:DD.F"), segment, bus, dev, fn, pasid (null if none), addr (hex
 * string), access (string of r/w/x/p), reason (its name), reason_code, stage,
 * level, entry_addr, entry (hex strings).
 */
VIOMMU_API int viommu_fault_record_json(const struct viommu_fault_record *rec, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Page requests                                                            */

enum viommu_prq_response {
	VIOMMU_PRQ_SUCCESS = 0,  /**< the page is there now: retry */
	VIOMMU_PRQ_INVALID = 1,  /**< the request was bad: do not retry */
	VIOMMU_PRQ_FAILURE = 15, /**< a catastrophic error: stop requesting */
};

struct viommu_page_request {
	uint64_t seq;            /**< per queue, from 1 */
	struct viommu_rid rid;
	uint32_t pasid;          /**< VIOMMU_NO_PASID if none */
	uint64_t addr;           /**< page address (low 12 bits ignored) */
	uint32_t access;         /**< VIOMMU_ACCESS_* */
	uint16_t group;          /**< page request group index, 0 to 511 */
	int last;                /**< last request of its group */
};

typedef struct viommu_prq viommu_prq;

/* The device hears the response to one of its groups. */
typedef void (*viommu_prq_respond_fn)(void *ctx, struct viommu_rid rid, uint32_t pasid, uint16_t group,
				      enum viommu_prq_response code);

struct viommu_prq_config {
	uint32_t size;                 /**< sizeof(struct viommu_prq_config) */
	uint32_t entries;              /**< 1 to 2^20 */
	viommu_fq_raise_fn raise;      /**< optional: new request interrupt */
	viommu_prq_respond_fn respond; /**< required */
	void *ctx;
};

VIOMMU_API int viommu_prq_create(const struct viommu_prq_config *cfg, const struct viommu_alloc *alloc,
				 viommu_prq **out);
VIOMMU_API void viommu_prq_destroy(viommu_prq *q);

/**
 * A device asks for a page. Returns 0 when queued. When the queue is full the
 * request is not queued and, if it is the last of its group, the group is
 * answered at once with VIOMMU_PRQ_SUCCESS (the device retries and faults or
 * asks again: the PCIe rule for a full queue); returns -ENOSPC either way.
 * Errors: -EINVAL (NULL, group > 511, pasid out of range).
 */
VIOMMU_API int viommu_prq_submit(viommu_prq *q, const struct viommu_page_request *req);

/** The oldest request. 0, -EAGAIN when empty. */
VIOMMU_API int viommu_prq_pop(viommu_prq *q, struct viommu_page_request *req);

/**
 * Answer a group (in any order). Errors: -ENOENT when that (rid, pasid, group)
 * has no request whose last-of-group arrived unanswered, -EINVAL.
 */
VIOMMU_API int viommu_prq_respond(viommu_prq *q, struct viommu_rid rid, uint32_t pasid, uint16_t group,
				  enum viommu_prq_response code);

struct viommu_prq_status {
	uint32_t count, entries;
	uint64_t submitted, dropped, responded, auto_responded;
	uint32_t groups_outstanding;
};
VIOMMU_API void viommu_prq_get_status(viommu_prq *q, struct viommu_prq_status *st);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_FAULTLOG_H */
