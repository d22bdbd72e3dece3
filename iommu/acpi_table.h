/* SPDX-License-Identifier: MIT */
/* Internal: the ACPI system description table header (ACPI 6.5, 5.2.6) of
 * the tables the front-ends write (VT-d's DMAR, virtio-iommu's VIOT), and
 * its checksum. */
#ifndef VIOMMU_INTERNAL_ACPI_TABLE_H
#define VIOMMU_INTERNAL_ACPI_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "le.h"

#define ACPI_TABLE_HEADER_LEN 36

/* The 36-byte header: signature, length, revision, the OEM fields (OEM ID
 * "VIOMMU", table ID `table_id`, revision 1, creator "VIOM" revision 1);
 * the checksum (byte 9) is acpi_table_checksum's. */
static inline void acpi_table_header(uint8_t *p, const char sig[4], uint32_t len, uint8_t rev,
				     const char table_id[8])
{
	memcpy(p, sig, 4);
	put32(p + 4, len);
	p[8] = rev;
	p[9] = 0;
	memcpy(p + 10, "VIOMMU", 6);
	memcpy(p + 16, table_id, 8);
	put32(p + 24, 1);          /* OEM revision */
	memcpy(p + 28, "VIOM", 4); /* creator ID */
	put32(p + 32, 1);          /* creator revision */
}

/* Set byte 9 so that the len bytes of the table add up to 0. */
static inline void acpi_table_checksum(uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	p[9] = 0;
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	p[9] = (uint8_t)(0 - sum);
}

#endif
