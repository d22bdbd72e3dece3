/* SPDX-License-Identifier: MIT */
/*
 * A program outside the tree that uses an installed viommu, the way a user
 * would: it is built against the installed headers and library only (through
 * pkg-config or find_package) and checks that the library it got works.
 *
 * Usage: viommu-consumer EXPECTED_VERSION
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <viommu/pagetable.h>

static int failures;

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "consumer: %s:%d: check failed: %s\n",   \
				__FILE__, __LINE__, #cond);                      \
			failures++;                                              \
		}                                                                \
	} while (0)

static int count_leaf(void *ctx, uint64_t iova, uint64_t paddr, uint64_t page_size, uint32_t perms)
{
	(void)iova;
	(void)paddr;
	(void)page_size;
	(void)perms;
	(*(unsigned *)ctx)++;
	return 0;
}

int main(int argc, char **argv)
{
	const char *version = viommu_version();
	struct viommu_pt_config cfg;
	struct viommu_pt_result res;
	viommu_pt *pt = NULL;
	uint64_t done = 0, phys = 0;
	unsigned leaves = 0;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "usage: %s EXPECTED_VERSION\n", argv[0]);
		return 2;
	}
	CHECK(version != NULL && strcmp(version, argv[1]) == 0);
	CHECK(strcmp(viommu_fault_reason_name(VIOMMU_FAULT_NOT_PRESENT), "not-present") == 0);

	memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	cfg.format = VIOMMU_PT_X86_64;
	cfg.levels = 4;
	cfg.oas = 48;
	ret = viommu_pt_create(&cfg, NULL, NULL, NULL, &pt);
	CHECK(ret == 0 && pt != NULL);
	if (ret != 0 || !pt) {
		fprintf(stderr, "consumer: viommu_pt_create: %d\n", ret);
		return 1;
	}
	CHECK(cfg.ias == 48);
	CHECK(cfg.pgsize_bitmap == (VIOMMU_PGSIZE_4K | VIOMMU_PGSIZE_2M | VIOMMU_PGSIZE_1G));

	/* 2 MiB aligned on both sides: one 2 MiB page, then one 4 KiB page. */
	ret = viommu_pt_map(pt, 0x40000000, 0x80000000, VIOMMU_PGSIZE_2M + VIOMMU_PGSIZE_4K,
			    VIOMMU_PERM_READ | VIOMMU_PERM_WRITE, &done);
	CHECK(ret == 0);
	CHECK(done == VIOMMU_PGSIZE_2M + VIOMMU_PGSIZE_4K);

	CHECK(viommu_pt_iova_to_phys(pt, 0x40123456, &phys) == 0);
	CHECK(phys == 0x80123456);
	CHECK(viommu_pt_iova_to_phys(pt, 0x40200abc, &phys) == 0);
	CHECK(phys == 0x80200abc);
	CHECK(viommu_pt_iova_to_phys(pt, 0x40201000, &phys) == -ENOENT);

	memset(&res, 0, sizeof(res));
	CHECK(viommu_pt_lookup(pt, 0x40000010, VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV, &res) == 0);
	CHECK(res.fault == VIOMMU_FAULT_NONE);
	CHECK(res.oaddr == 0x80000010);
	CHECK(res.page_size == VIOMMU_PGSIZE_2M);
	CHECK(res.level == 2);
	CHECK(res.refs == 3);

	CHECK(viommu_pt_for_each(pt, 0, 1ull << 47, count_leaf, &leaves) == 0);
	CHECK(leaves == 2);

	CHECK(viommu_pt_unmap(pt, 0x40000000, VIOMMU_PGSIZE_2M + VIOMMU_PGSIZE_4K, &done) == 0);
	CHECK(done == VIOMMU_PGSIZE_2M + VIOMMU_PGSIZE_4K);
	CHECK(viommu_pt_iova_to_phys(pt, 0x40123456, &phys) == -ENOENT);

	viommu_pt_destroy(pt);

	if (failures) {
		fprintf(stderr, "consumer: %d check(s) failed\n", failures);
		return 1;
	}
	printf("consumer: viommu %s works\n", version);
	return 0;
}
