/* SPDX-License-Identifier: MIT */
/*
 * Input format of fuzz_virtio_iommu (shared with its corpus generator).
 *
 * Byte 0: the driver's features (bit i = feature i of the front-end's; the
 * front-end refuses bits it does not offer, and then none are set).
 * Byte 1: the domain range: 0 = all, else [1, byte] .
 * Then operations, each an opcode byte and its arguments (little-endian);
 * an operation cut short by the end of the input is not run.
 *
 *   OP_ATTACH   domain u8, endpoint u8 (index 0..3; 3 is not an endpoint),
 *               flags u8, reserved byte u8 (non-zero: a reserved field set)
 *   OP_DETACH   domain u8, endpoint u8
 *   OP_MAP      domain u8, start page u16, pages u8 (+1), phys page u16,
 *               flags u8 (bit 7: virt_start 0x800 off a page; bit 6: near
 *               the top of the 48-bit input range)
 *   OP_UNMAP    domain u8, start page u16, end page u16 (inclusive; bit 15
 *               of the end: one byte short of the page's end)
 *   OP_PROBE    endpoint u8, writable length u16
 *   OP_RAW      length u8 (up to 96), that many bytes, writable length u8
 *   OP_DMA      endpoint u8, page u16, offset u16 (mod 4096), length u8
 *               (+1), write u8 (bit 0)
 *   OP_BYPASS   value u8 (config write of the bypass byte)
 *   OP_RESET
 *   OP_EVENTS   (pop every waiting event)
 */
#ifndef FUZZ_VIRTIO_IOMMU_INPUT_H
#define FUZZ_VIRTIO_IOMMU_INPUT_H

enum {
	OP_ATTACH = 0,
	OP_DETACH,
	OP_MAP,
	OP_UNMAP,
	OP_PROBE,
	OP_RAW,
	OP_DMA,
	OP_BYPASS,
	OP_RESET,
	OP_EVENTS,
	OP_COUNT
};

#define FZ_RAM_PAGES 256u /* guest RAM: 1 MiB at 0; phys pages above it have no memory */
#define FZ_ENDPOINTS 3u

#endif
