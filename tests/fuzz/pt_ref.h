/* SPDX-License-Identifier: MIT */
/*
 * A reference walker for the three page-table formats, written straight from
 * the specification facts (Intel SDM paging, VT-d second level, AMD IOMMU v1
 * tables), as simply as possible and independently of the library. The fuzz
 * target compares the library's walk with it. It does not update accessed/
 * dirty bits; it reports the entries it used so the caller can predict them.
 */
#ifndef FUZZ_PT_REF_H
#define FUZZ_PT_REF_H

#include <stdint.h>

/* Read the 8-byte little-endian entry at gpa: 0, or -1 when unreachable. */
typedef int (*ref_read_fn)(void *ctx, uint64_t gpa, uint64_t *val);

#define REF_MAX_PATH 8

struct ref_cfg {
	int format;             /* enum viommu_pt_format value */
	unsigned levels;
	unsigned oas;           /* effective: 32..52 */
	unsigned flags;         /* VIOMMU_PT_F_* */
	uint64_t pgsize_bitmap; /* as granted */
	unsigned ias;
};

struct ref_result {
	int fault;              /* enum viommu_fault_reason value */
	uint64_t oaddr;
	uint64_t page_size;
	uint32_t perms;
	uint32_t level;
	uint64_t entry_addr;
	uint64_t entry;
	uint32_t refs;
	/* the entries read, root first */
	uint32_t n;
	uint64_t path_addr[REF_MAX_PATH];
	uint64_t path_val[REF_MAX_PATH];
	uint32_t path_level[REF_MAX_PATH];
};

/* Returns 0 when translated, -EFAULT with r->fault set otherwise. */
int ref_walk(const struct ref_cfg *cfg, ref_read_fn rd, void *ctx, uint64_t root, uint64_t iova,
	     uint32_t access, struct ref_result *r);

/* The input width of a format and levels, or 0 when invalid. */
unsigned ref_ias(int format, unsigned levels);

/* Every page size a format can map with the given input and output widths. */
uint64_t ref_format_sizes(int format, unsigned ias, unsigned oas);

#endif
