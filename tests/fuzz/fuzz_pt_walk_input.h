/* SPDX-License-Identifier: MIT */
/*
 * The input format of fuzz_pt_walk, shared by the target and by the seed
 * generator (gen_corpus.c).
 *
 * An input is a 32-byte header followed by the guest memory the walk reads:
 *
 *   off  size  field
 *   0    1     format: low 2 bits 0/1/2 = x86-64 / VT-d SL / AMD-Vi v1;
 *              3 = the raw value (byte >> 2), to reach unknown formats
 *   1    1     levels (raw; also the AMD-Vi mode)
 *   2    1     oas (raw)
 *   3    1     flags (raw, so unknown flags reach the validator)
 *   4    1     access (& FZ_ACCESS_MASK)
 *   5    1     memory flags FZ_M_*
 *   6    1     pages of the image region: (byte & 15) + 1
 *   7    1     extra walks: (byte & 3) more walks at iova + k * 2^(12 + ((byte >> 2) & 31));
 *              bit 7 (FZ_W_RACE): a racing guest, see below
 *   8    4     pgsize: with FZ_M_PGSIZE, pgsize_bitmap = pgsize << 12, else 0
 *   12   8     iova
 *   20   8     root: with FZ_M_ROOT_RAW the raw value, else FZ_IMAGE_GPA + (uint32_t)root
 *   28   2     mem_off: viommu_mem_read/write checks start at <region> - 0x800 + mem_off
 *   30   2     mem_len: their length is mem_len & 0x3fff
 *
 * All fields little-endian. The memory: the image region (FZ_IMAGE_GPA, 1 to
 * 16 pages), an optional region B (FZ_B_GPA, 2 pages), and a window served by
 * read/write callbacks (FZ_CB_GPA, 4 pages; reads of page FZ_CB_READ_FAIL_PAGE
 * and writes of page FZ_CB_WRITE_FAIL_PAGE fail, as does everything outside).
 *
 * Without FZ_M_SPARSE, the bytes after the header fill, in this order, the
 * image, region B and the callback window (zero after the input ends). With
 * FZ_M_SPARSE, all memory starts zeroed and the bytes after the header are
 * 10-byte records (u16 slot, u64 value): slot % FZ_SLOTS is the index of an
 * 8-byte entry in the concatenation image (16 pages, of which those beyond
 * the image's size are dropped) + region B + window.
 *
 * With FZ_W_RACE, every call of a memory callback during the walks flips bit
 * (pgsize >> 16) & 63 of the 8-byte word at image offset (pgsize & 0xfff8)
 * modulo the image size: a guest rewriting an entry while the walk runs.
 */
#ifndef FUZZ_PT_WALK_INPUT_H
#define FUZZ_PT_WALK_INPUT_H

#include <stdint.h>

#define FZ_HDR_SIZE 32u

#define FZ_PAGE 4096u
#define FZ_IMAGE_GPA 0x100000ull
#define FZ_IMAGE_MAX_PAGES 16u
#define FZ_B_GPA 0x100000000ull
#define FZ_B_PAGES 2u
#define FZ_CB_GPA 0x200000000ull
#define FZ_CB_PAGES 4u
#define FZ_CB_READ_FAIL_PAGE 2u
#define FZ_CB_WRITE_FAIL_PAGE 1u

#define FZ_SLOTS_PER_PAGE (FZ_PAGE / 8u)
#define FZ_SLOT_B (FZ_IMAGE_MAX_PAGES * FZ_SLOTS_PER_PAGE)
#define FZ_SLOT_CB (FZ_SLOT_B + FZ_B_PAGES * FZ_SLOTS_PER_PAGE)
#define FZ_SLOTS (FZ_SLOT_CB + FZ_CB_PAGES * FZ_SLOTS_PER_PAGE)
#define FZ_RECORD_SIZE 10u

/* header byte 0 */
#define FZ_FMT_X86 0u
#define FZ_FMT_VTD 1u
#define FZ_FMT_AMD 2u
#define FZ_FMT_RAW 3u

/* header byte 5 */
#define FZ_M_REGION_B 0x01u /* region B exists */
#define FZ_M_CB_READ  0x02u /* the read callback exists */
#define FZ_M_IMAGE_RO 0x04u /* the image region is read-only */
#define FZ_M_CB_WRITE 0x08u /* the write callback exists */
#define FZ_M_B_RO     0x10u /* region B is read-only */
#define FZ_M_PGSIZE   0x20u /* pgsize_bitmap from the pgsize field */
#define FZ_M_ROOT_RAW 0x40u /* root is the raw field */
#define FZ_M_SPARSE   0x80u /* memory from sparse records */

/* header byte 7 */
#define FZ_W_RACE 0x80u

/* access bits the target passes: READ, WRITE, EXEC, PRIV */
#define FZ_ACCESS_MASK 0x17u

struct fz_header {
	uint8_t fmt;
	uint8_t levels;
	uint8_t oas;
	uint8_t flags;
	uint8_t access;
	uint8_t memflags;
	uint8_t pages;
	uint8_t walks;
	uint32_t pgsize;
	uint64_t iova;
	uint64_t root;
	uint16_t mem_off;
	uint16_t mem_len;
};

static inline uint64_t fz_get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void fz_put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void fz_header_decode(const uint8_t *p, struct fz_header *h)
{
	h->fmt = p[0];
	h->levels = p[1];
	h->oas = p[2];
	h->flags = p[3];
	h->access = p[4];
	h->memflags = p[5];
	h->pages = p[6];
	h->walks = p[7];
	h->pgsize = (uint32_t)fz_get_le(p + 8, 4);
	h->iova = fz_get_le(p + 12, 8);
	h->root = fz_get_le(p + 20, 8);
	h->mem_off = (uint16_t)fz_get_le(p + 28, 2);
	h->mem_len = (uint16_t)fz_get_le(p + 30, 2);
}

static inline void fz_header_encode(const struct fz_header *h, uint8_t *p)
{
	p[0] = h->fmt;
	p[1] = h->levels;
	p[2] = h->oas;
	p[3] = h->flags;
	p[4] = h->access;
	p[5] = h->memflags;
	p[6] = h->pages;
	p[7] = h->walks;
	fz_put_le(p + 8, h->pgsize, 4);
	fz_put_le(p + 12, h->iova, 8);
	fz_put_le(p + 20, h->root, 8);
	fz_put_le(p + 28, h->mem_off, 2);
	fz_put_le(p + 30, h->mem_len, 2);
}

#endif
