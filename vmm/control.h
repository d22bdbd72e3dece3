/* SPDX-License-Identifier: MIT */
/*
 * viommu-vmm's control socket (--control PATH): a Unix stream socket that
 * speaks JSON lines, one request object per line, one reply object per line.
 * One thread serves every client with poll(); vCPU and IOMMU threads only
 * hand fault records over (a short copy under a mutex and an eventfd write).
 *
 *   {"cmd":"stats"}                      the IOMMU's counters
 *   {"cmd":"faults"}                     the most recent fault records
 *   {"cmd":"faults","follow":true}       acknowledges, then streams every new
 *                                        fault record as one line
 *   {"cmd":"inject-add", rule fields}    {"ok":true,"id":N}
 *   {"cmd":"inject-list"}                the rules with their counters
 *   {"cmd":"inject-remove","id":N}
 *
 * Bad requests get {"ok":false,"error":"..."}; the VMM keeps running.
 */
#ifndef VIOMMU_VMM_CONTROL_H
#define VIOMMU_VMM_CONTROL_H

#include <viommu/iommu.h>

struct vmm;
struct vmm_control;

/* Longest request line accepted, newline excluded. */
#define CONTROL_MAX_LINE 4096u

/* Bind PATH (a stale socket there is replaced) and start the server thread.
 * Returns 0 or -errno (with a message logged). */
int control_start(struct vmm *vm, const char *path, struct vmm_control **out);
/* Stop the thread, close every client and remove the socket file. NULL is a
 * no-op. No control_fault may run during or after this. */
void control_stop(struct vmm_control *c);
/* From the IOMMU's fault callback (any thread): queue the record for the
 * fault stream. Never blocks for long. */
void control_fault(struct vmm_control *c, const struct viommu_fault_record *rec);

#endif
