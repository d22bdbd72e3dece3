/* SPDX-License-Identifier: MIT */
/*
 * The input format of fuzz_dma_run (described at the top of fuzz_dma_run.c),
 * shared by the target and its seed generator (gen_dma_run_corpus.c).
 */
#ifndef VIOMMU_FUZZ_DMA_RUN_INPUT_H
#define VIOMMU_FUZZ_DMA_RUN_INPUT_H

#include <stddef.h>

#define DR_HDR_SIZE 40u
#define DR_OP_SIZE 16u
#define DR_REC_SIZE 16u
#define DR_MAX_OPS 4u
#define DR_MAX_RECORDS 1024u
#define DR_PAGE 4096u
#define DR_MAX_PAGES 1024u /* 4 MiB per region */
#define DR_GPA_MASK 0x000ffffffffff000ull
#define DR_LEN_MASK 0x3fffffu
#define DR_MAX_BYTES ((size_t)DR_MAX_PAGES * DR_PAGE)
#define DR_MAX_LEN ((size_t)DR_LEN_MASK + 1)

/* header byte 3 */
#define DR_F_AD 0x01u
#define DR_F_EXTRA 0x02u
#define DR_F_PGSIZE 0x04u
#define DR_F_2M 0x08u
#define DR_F_1G 0x10u

/* header byte 4 */
#define DR_M_B 0x01u
#define DR_M_A_RO 0x02u
#define DR_M_B_RO 0x04u
#define DR_M_ROOT_RAW 0x08u

/* operation byte 0 */
#define DR_OP_READ 0x01u
#define DR_OP_INVAL 0x02u

#endif /* VIOMMU_FUZZ_DMA_RUN_INPUT_H */
