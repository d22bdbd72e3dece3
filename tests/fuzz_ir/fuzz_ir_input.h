/* SPDX-License-Identifier: MIT */
/*
 * The input of fuzz_ir: a fixed header, then a guest-memory image.
 *
 *   offset size
 *   0      1    flags (FZI_F_*)
 *   1      1    cache: cache_entries = 0 if 0, else 1 << (cache % 17)
 *   2      2    entries - 1 (little endian): 1 to 65536 entries
 *   4      4    MSI address, low 32 bits
 *   8      4    MSI data
 *   12     1    requester bus
 *   13     1    requester devfn
 *   14     1    table page: the table is at FZI_IMAGE_GPA + (int8)this * 4 KiB,
 *               so it may start before the image and run into it
 *   15     1    MSI address, bits 39:32 (used with FZI_F_HIGH_ADDR)
 *   16     8    IOAPIC redirection entry (used with FZI_F_IOAPIC)
 *   24     ...  the image: guest memory at FZI_IMAGE_GPA, exactly this long
 *               (no memory at all if empty)
 */
#ifndef VIOMMU_FUZZ_IR_INPUT_H
#define VIOMMU_FUZZ_IR_INPUT_H

#include <stdint.h>

#define FZI_F_X2APIC       (1u << 0) /* VIOMMU_IR_F_X2APIC */
#define FZI_F_ALLOW_COMPAT (1u << 1) /* VIOMMU_IR_F_ALLOW_COMPAT */
#define FZI_F_OFF          (1u << 2) /* format NONE: remapping off */
#define FZI_F_IOAPIC       (1u << 3) /* the MSI comes from the RTE */
#define FZI_F_HIGH_ADDR    (1u << 4) /* address bits 39:32 from byte 15 */
#define FZI_F_NO_CACHE_HIT (1u << 5) /* invalidate between the lookups */

#define FZI_HEADER_SIZE 24u
#define FZI_IMAGE_GPA   0x1000000ull /* 16 MiB */
#define FZI_MAX_IMAGE   (1u << 20)

#endif
