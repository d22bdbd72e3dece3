/* SPDX-License-Identifier: MIT */
/*
 * PCI configuration-space layout used by the device models (internal).
 * Type 0 header: PCI Local Bus Specification 3.0, section 6.2;
 * MSI: section 6.8.1; MSI-X: section 6.8.2 (PCI Express Base 4.0, 7.7).
 */
#ifndef VIOMMU_DEVMODELS_PCI_REGS_H
#define VIOMMU_DEVMODELS_PCI_REGS_H

/* Type 0 header (PCI 3.0, 6.2) */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_COMMAND_IO (1u << 0)
#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)
#define PCI_COMMAND_PARITY (1u << 6)
#define PCI_COMMAND_SERR (1u << 8)
#define PCI_COMMAND_INTX_DISABLE (1u << 10)
#define PCI_STATUS 0x06
#define PCI_STATUS_INTERRUPT (1u << 3)
#define PCI_STATUS_CAP_LIST (1u << 4)
/* Error bits, write-1-to-clear: master data parity error, signaled target
 * abort, received target abort, received master abort, signaled system
 * error, detected parity error. */
#define PCI_STATUS_W1C 0xf900u
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BASE_ADDRESS_0 0x10
#define PCI_BASE_ADDRESS_SPACE_IO 0x1u
#define PCI_BASE_ADDRESS_MEM_TYPE_64 0x4u
#define PCI_BASE_ADDRESS_MEM_PREFETCH 0x8u
#define PCI_BASE_ADDRESS_MEM_MASK (~0xfu)
#define PCI_BASE_ADDRESS_IO_MASK (~0x3u)
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d
#define PCI_CAP_START 0x40 /* first byte after the type 0 header */
#define PCI_CAP_END 0x100  /* capabilities live in the first 256 bytes */

/* Capability IDs */
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* MSI capability, 64-bit with per-vector masking (PCI 3.0, 6.8.1) */
#define PCI_MSI_FLAGS 0x02
#define PCI_MSI_FLAGS_ENABLE (1u << 0)
#define PCI_MSI_FLAGS_QMASK (7u << 1)  /* multiple message capable */
#define PCI_MSI_FLAGS_QSIZE (7u << 4)  /* multiple message enable */
#define PCI_MSI_FLAGS_64BIT (1u << 7)
#define PCI_MSI_FLAGS_MASKBIT (1u << 8)
#define PCI_MSI_ADDRESS_LO 0x04
#define PCI_MSI_ADDRESS_HI 0x08
#define PCI_MSI_DATA_64 0x0c
#define PCI_MSI_MASK_64 0x10
#define PCI_MSI_PENDING_64 0x14
#define PCI_MSI_CAP_LEN 0x18

/* MSI-X capability (PCI 3.0, 6.8.2) */
#define PCI_MSIX_FLAGS 0x02
#define PCI_MSIX_FLAGS_QSIZE 0x07ffu
#define PCI_MSIX_FLAGS_MASKALL (1u << 14)
#define PCI_MSIX_FLAGS_ENABLE (1u << 15)
#define PCI_MSIX_TABLE 0x04
#define PCI_MSIX_PBA 0x08
#define PCI_MSIX_BIR_MASK 0x7u
#define PCI_MSIX_CAP_LEN 0x0c
/* MSI-X table entry (PCI 3.0, 6.8.2.6-6.8.2.9) */
#define PCI_MSIX_ENTRY_SIZE 16u
#define PCI_MSIX_ENTRY_ADDR_LO 0x0
#define PCI_MSIX_ENTRY_ADDR_HI 0x4
#define PCI_MSIX_ENTRY_DATA 0x8
#define PCI_MSIX_ENTRY_CTRL 0xc
#define PCI_MSIX_ENTRY_CTRL_MASKBIT (1u << 0)
#define PCI_MSIX_MAX_VECTORS 2048u

#endif /* VIOMMU_DEVMODELS_PCI_REGS_H */
