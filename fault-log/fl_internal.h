/* SPDX-License-Identifier: MIT */
/* Internal: hooks the core sets on fault-log objects. */
#ifndef VIOMMU_INTERNAL_FL_H
#define VIOMMU_INTERNAL_FL_H

#include <viommu/faultlog.h>

/*
 * Asked before each interrupt the queue would raise; return non-zero to lose
 * it (fault injection). Set by the core when a queue is attached.
 */
typedef int (*fq_irq_filter_fn)(void *ctx);
void fq_set_irq_filter(viommu_fault_queue *q, fq_irq_filter_fn fn, void *ctx);

/* Claim the queue for one instance (0), or -EBUSY if another has it;
 * release with owner NULL. */
int fq_claim(viommu_fault_queue *q, void *owner);

/*
 * Push with the sequence number taken under the queue's lock from *seq, so
 * records enter the queue in sequence order whatever the threads do. Returns
 * as viommu_fault_queue_push.
 */
int fq_push_seq(viommu_fault_queue *q, struct viommu_fault_record *rec, uint64_t *seq);

#endif
