/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of fuzz_pt_walk (format in fuzz_pt_walk_input.h)
 * into a directory: valid tables of every format and depth, large pages,
 * AMD-Vi skipped levels and next-level-7 pages, accessed/dirty updates, and
 * hostile tables (reserved bits, pointers out of memory, loops, misaligned
 * roots, read-only memory, failing callbacks, bad configurations).
 *
 * Tables are written by hand from the specification bits, not with the
 * library, so the seeds do not inherit its mistakes.
 *
 *   gen_corpus DIR        (tests/fuzz/corpus/pt_walk in the source tree)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_pt_walk_input.h"

#define BIT(n) (1ull << (n))

enum { X86 = 0, VTD = 1, AMD = 2 };

/* x86-64 */
#define X_P BIT(0)
#define X_RW BIT(1)
#define X_US BIT(2)
#define X_A BIT(5)
#define X_D BIT(6)
#define X_PS BIT(7)
#define X_XD BIT(63)
/* VT-d second level */
#define V_R BIT(0)
#define V_W BIT(1)
#define V_X BIT(2)
#define V_PS BIT(7)
#define V_A BIT(8)
#define V_D BIT(9)
#define V_TM BIT(62)
/* AMD-Vi v1 */
#define A_PR BIT(0)
#define A_A BIT(5)
#define A_D BIT(6)
#define A_NL(n) ((uint64_t)(n) << 9)
#define A_U BIT(59)
#define A_FC BIT(60)
#define A_IR BIT(61)
#define A_IW BIT(62)

/* flags and accesses, as in viommu/pagetable.h */
#define F_AD 1u
#define F_NXE 2u
#define F_VTD_EXEC 4u
#define AC_R 1u
#define AC_W 2u
#define AC_X 4u
#define AC_PRIV 0x10u

#define PAGE(n) (FZ_IMAGE_GPA + (uint64_t)(n) * FZ_PAGE)

struct seed {
	struct fz_header h;
	uint8_t rec[FZ_RECORD_SIZE * 512];
	size_t n;
	int raw; /* write the image raw instead of as records */
	uint8_t image[FZ_PAGE * 4];
};

static const char *out_dir;
static unsigned written;

static void seed_init(struct seed *s, int fmt, unsigned levels, uint64_t iova, unsigned access)
{
	memset(s, 0, sizeof(*s));
	s->h.fmt = (uint8_t)fmt;
	s->h.levels = (uint8_t)levels;
	s->h.oas = 0;
	s->h.access = (uint8_t)access;
	s->h.memflags = FZ_M_SPARSE;
	s->h.pages = 7; /* 8 pages */
	s->h.iova = iova;
	s->h.root = 0; /* image page 0 */
	s->h.mem_off = 0x800;
	s->h.mem_len = 0x40;
}

static unsigned slot_of(uint64_t gpa)
{
	if (gpa >= FZ_IMAGE_GPA && gpa < FZ_IMAGE_GPA + FZ_IMAGE_MAX_PAGES * FZ_PAGE)
		return (unsigned)((gpa - FZ_IMAGE_GPA) / 8);
	if (gpa >= FZ_B_GPA && gpa < FZ_B_GPA + FZ_B_PAGES * FZ_PAGE)
		return FZ_SLOT_B + (unsigned)((gpa - FZ_B_GPA) / 8);
	if (gpa >= FZ_CB_GPA && gpa < FZ_CB_GPA + FZ_CB_PAGES * FZ_PAGE)
		return FZ_SLOT_CB + (unsigned)((gpa - FZ_CB_GPA) / 8);
	fprintf(stderr, "gen_corpus: 0x%llx is in no slot\n", (unsigned long long)gpa);
	exit(1);
}

static void put(struct seed *s, uint64_t gpa, uint64_t val)
{
	if (s->raw) {
		if (gpa < FZ_IMAGE_GPA || gpa - FZ_IMAGE_GPA >= sizeof(s->image)) {
			fprintf(stderr, "gen_corpus: raw seed entry 0x%llx outside image\n", (unsigned long long)gpa);
			exit(1);
		}
		fz_put_le(s->image + (gpa - FZ_IMAGE_GPA), val, 8);
		return;
	}
	if (s->n + FZ_RECORD_SIZE > sizeof(s->rec)) {
		fprintf(stderr, "gen_corpus: too many records\n");
		exit(1);
	}
	fz_put_le(s->rec + s->n, slot_of(gpa), 2);
	fz_put_le(s->rec + s->n + 2, val, 8);
	s->n += FZ_RECORD_SIZE;
}

static void emit(struct seed *s, const char *name)
{
	uint8_t hdr[FZ_HDR_SIZE];
	char path[4096];

	if (s->raw)
		s->h.memflags &= (uint8_t)~FZ_M_SPARSE;
	fz_header_encode(&s->h, hdr);
	snprintf(path, sizeof(path), "%s/seed-%s", out_dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	int ok = fwrite(hdr, 1, sizeof(hdr), f) == sizeof(hdr);
	if (s->raw) {
		size_t img = (size_t)((s->h.pages & 15) + 1) * FZ_PAGE;
		if (img > sizeof(s->image))
			img = sizeof(s->image);
		ok &= fwrite(s->image, 1, img, f) == img;
	} else {
		ok &= fwrite(s->rec, 1, s->n, f) == s->n;
	}
	if (fclose(f) || !ok) {
		fprintf(stderr, "gen_corpus: %s: write failed\n", path);
		exit(1);
	}
	written++;
}

static unsigned idx(uint64_t iova, unsigned level)
{
	return (unsigned)((iova >> (12 + 9 * (level - 1))) & 511);
}

/* Entry bits of a table pointer at `level` (AMD: pointing one level down). */
static uint64_t table_bits(int fmt, unsigned level)
{
	switch (fmt) {
	case X86:
		return X_P | X_RW | X_US;
	case VTD:
		return V_R | V_W | V_X;
	default:
		return A_PR | A_IR | A_IW | A_NL(level - 1);
	}
}

/*
 * Tables for `iova` from the root (image page `first`, level `top`) down to
 * `leaf_level`, one page per level, the leaf entry being `leaf`. Returns the
 * address of the leaf entry.
 */
static uint64_t chain(struct seed *s, int fmt, unsigned top, unsigned leaf_level, uint64_t iova,
		      uint64_t leaf, unsigned first)
{
	uint64_t table = PAGE(first);
	unsigned page = first;

	for (unsigned l = top; l > leaf_level; l--) {
		uint64_t next = PAGE(++page);
		put(s, table + idx(iova, l) * 8, next | table_bits(fmt, l));
		table = next;
	}
	put(s, table + idx(iova, leaf_level) * 8, leaf);
	return table + idx(iova, leaf_level) * 8;
}

static uint64_t leaf_bits(int fmt)
{
	switch (fmt) {
	case X86:
		return X_P | X_RW | X_US;
	case VTD:
		return V_R | V_W;
	default:
		return A_PR | A_IR | A_IW;
	}
}

static uint64_t size_of_level(unsigned level)
{
	return 1ull << (12 + 9 * (level - 1));
}

/* A valid mapping at every leaf level each format allows, for each depth. */
static void gen_valid(void)
{
	static const struct { int fmt; unsigned lo, hi; const char *name; } fmts[] = {
		{ X86, 4, 5, "x86" }, { VTD, 3, 5, "vtd" }, { AMD, 1, 6, "amd" },
	};
	struct seed s;
	char name[64];

	for (unsigned f = 0; f < 3; f++) {
		for (unsigned levels = fmts[f].lo; levels <= fmts[f].hi; levels++) {
			for (unsigned leaf = 1; leaf <= 3 && leaf <= levels; leaf++) {
				uint64_t sz = size_of_level(leaf);
				/* an address using several index bits at every level */
				uint64_t iova = 0x0000123456789abcull;
				unsigned ias_bits = fmts[f].fmt == X86 ? (levels == 4 ? 47 : 56)
						    : fmts[f].fmt == VTD ? 12 + 9 * levels
						    : levels == 6 ? 64 : 12 + 9 * levels;
				if (ias_bits < 64)
					iova &= (1ull << ias_bits) - 1;
				uint64_t out = 0x0000000c40000000ull | (0x5a5ull << 12);
				out &= ~(sz - 1);
				uint64_t e = out | leaf_bits(fmts[f].fmt);
				if (leaf > 1)
					e |= fmts[f].fmt == X86 ? X_PS : fmts[f].fmt == VTD ? V_PS : 0;
				unsigned access = AC_R | AC_W;
				seed_init(&s, fmts[f].fmt, levels, iova, access);
				s.h.walks = (uint8_t)(3 | (0 << 2)); /* 3 more walks, next 4K pages */
				chain(&s, fmts[f].fmt, levels, leaf, iova, e, 0);
				snprintf(name, sizeof(name), "%s-l%u-%s", fmts[f].name, levels,
					 leaf == 1 ? "4k" : leaf == 2 ? "2m" : "1g");
				emit(&s, name);
			}
		}
	}
}

static void gen_x86(void)
{
	struct seed s;
	uint64_t iova = 0x00007f0012345678ull;

	/* user access through a supervisor-only level: permission fault */
	seed_init(&s, X86, 4, iova, AC_R);
	chain(&s, X86, 4, 1, iova, 0x777000 | X_P | X_RW, 0);
	emit(&s, "x86-l4-supervisor-page");

	/* the same with PRIV: translated */
	s.h.access = AC_R | AC_W | AC_PRIV;
	emit(&s, "x86-l4-supervisor-page-priv");

	/* NXE with XD on the leaf; execute access */
	seed_init(&s, X86, 4, iova, AC_X | AC_R);
	s.h.flags = F_NXE;
	chain(&s, X86, 4, 1, iova, 0x777000 | X_P | X_US | X_XD, 0);
	emit(&s, "x86-l4-nxe-xd");

	/* XD without NXE is reserved */
	s.h.flags = 0;
	s.h.access = AC_R;
	emit(&s, "x86-l4-xd-reserved");

	/* read-only page written */
	seed_init(&s, X86, 4, iova, AC_W);
	chain(&s, X86, 4, 1, iova, 0x777000 | X_P | X_US, 0);
	emit(&s, "x86-l4-write-ro");

	/* accessed/dirty update on a write, and on a read-only image */
	seed_init(&s, X86, 4, iova, AC_W | AC_R);
	s.h.flags = F_AD;
	chain(&s, X86, 4, 2, iova, 0x40000000 | X_P | X_RW | X_US | X_PS, 0);
	emit(&s, "x86-l4-2m-ad");
	s.h.memflags |= FZ_M_IMAGE_RO;
	emit(&s, "x86-l4-2m-ad-ro");
	/* A/D already set everywhere: nothing to write even read-only */
	seed_init(&s, X86, 4, iova, AC_W | AC_R);
	s.h.flags = F_AD;
	s.h.memflags |= FZ_M_IMAGE_RO;
	{
		uint64_t t = PAGE(0);
		put(&s, t + idx(iova, 4) * 8, PAGE(1) | X_P | X_RW | X_US | X_A);
		put(&s, PAGE(1) + idx(iova, 3) * 8, 0x80000000ull | X_P | X_RW | X_US | X_A | X_D | X_PS);
	}
	emit(&s, "x86-l4-1g-ad-set-ro");

	/* PS at level 4 is reserved */
	seed_init(&s, X86, 4, iova, AC_R);
	put(&s, PAGE(0) + idx(iova, 4) * 8, PAGE(1) | X_P | X_US | X_PS);
	emit(&s, "x86-l4-ps-at-l4");

	/* 2 MiB leaf with bit 13 set (reserved; bit 12 is PAT and fine) */
	seed_init(&s, X86, 4, iova, AC_R);
	chain(&s, X86, 4, 2, iova, 0x40000000 | BIT(13) | X_P | X_US | X_PS, 0);
	emit(&s, "x86-l4-2m-rsvd13");
	seed_init(&s, X86, 4, iova, AC_R);
	chain(&s, X86, 4, 2, iova, 0x40000000 | BIT(12) | X_P | X_US | X_PS, 0);
	emit(&s, "x86-l4-2m-pat");

	/* an address beyond oas 36 in a table pointer */
	seed_init(&s, X86, 4, iova, AC_R);
	s.h.oas = 36;
	put(&s, PAGE(0) + idx(iova, 4) * 8, BIT(40) | PAGE(1) | X_P | X_US);
	emit(&s, "x86-l4-oas36");

	/* ignored bits 62:52 set everywhere */
	seed_init(&s, X86, 5, 0x00f0001234567000ull, AC_R);
	chain(&s, X86, 5, 1, 0x00f0001234567000ull, 0x1000 | X_P | X_US | (0x7ffull << 52), 0);
	emit(&s, "x86-l5-ignored-bits");

	/* non-canonical input, and the canonical upper half */
	seed_init(&s, X86, 4, 0x0000900000000000ull, AC_R);
	emit(&s, "x86-l4-noncanonical");
	seed_init(&s, X86, 4, 0xffff800000001000ull, AC_R);
	chain(&s, X86, 4, 1, 0xffff800000001000ull, 0x3000 | X_P | X_US, 0);
	emit(&s, "x86-l4-upper-half");

	/* not present in the middle */
	seed_init(&s, X86, 4, iova, AC_R);
	chain(&s, X86, 4, 2, iova, 0x40000000 | X_RW | X_US | X_PS, 0);
	emit(&s, "x86-l4-not-present");

	/* a pointer outside every region, one into region B, one into the
	 * callback window, one into its failing page */
	seed_init(&s, X86, 4, iova, AC_R);
	put(&s, PAGE(0) + idx(iova, 4) * 8, 0x7000000000ull | X_P | X_US);
	emit(&s, "x86-l4-outside");
	seed_init(&s, X86, 4, iova, AC_R);
	s.h.memflags |= FZ_M_REGION_B;
	put(&s, PAGE(0) + idx(iova, 4) * 8, FZ_B_GPA | X_P | X_US);
	put(&s, FZ_B_GPA + idx(iova, 3) * 8, (FZ_B_GPA + FZ_PAGE) | X_P | X_US);
	put(&s, FZ_B_GPA + FZ_PAGE + idx(iova, 2) * 8, 0x40000000 | X_P | X_US | X_PS);
	emit(&s, "x86-l4-region-b");
	s.h.oas = 32; /* region B sits at 2^32: its pointers are now reserved */
	emit(&s, "x86-l4-region-b-oas32");
	seed_init(&s, X86, 4, iova, AC_R | AC_W);
	s.h.memflags |= FZ_M_CB_READ | FZ_M_CB_WRITE;
	s.h.flags = F_AD;
	put(&s, PAGE(0) + idx(iova, 4) * 8, FZ_CB_GPA | X_P | X_US | X_RW);
	put(&s, FZ_CB_GPA + idx(iova, 3) * 8, (FZ_CB_GPA + 3 * FZ_PAGE) | X_P | X_US | X_RW);
	put(&s, FZ_CB_GPA + 3 * FZ_PAGE + idx(iova, 2) * 8, 0x40000000 | X_P | X_US | X_PS | X_RW);
	emit(&s, "x86-l4-callback-ad");
	seed_init(&s, X86, 4, iova, AC_R);
	s.h.memflags |= FZ_M_CB_READ;
	put(&s, PAGE(0) + idx(iova, 4) * 8, (FZ_CB_GPA + FZ_CB_READ_FAIL_PAGE * FZ_PAGE) | X_P | X_US);
	emit(&s, "x86-l4-callback-fails");
	seed_init(&s, X86, 4, iova, AC_R | AC_W);
	s.h.memflags |= FZ_M_CB_READ | FZ_M_CB_WRITE;
	s.h.flags = F_AD;
	put(&s, PAGE(0) + idx(iova, 4) * 8, (FZ_CB_GPA + FZ_CB_WRITE_FAIL_PAGE * FZ_PAGE) | X_P | X_US | X_RW);
	put(&s, FZ_CB_GPA + FZ_CB_WRITE_FAIL_PAGE * FZ_PAGE + idx(iova, 3) * 8,
	    0x40000000ull | X_P | X_US | X_RW | X_PS);
	emit(&s, "x86-l4-callback-write-fails");

	/* a table that points at itself (a self-map) */
	seed_init(&s, X86, 4, 0x0000000000000000ull, AC_R);
	put(&s, PAGE(0), PAGE(0) | X_P | X_RW | X_US);
	emit(&s, "x86-l4-self-map");
	s.h.flags = F_AD;
	s.h.access = AC_R | AC_W;
	emit(&s, "x86-l4-self-map-ad");

	/* misaligned roots, and a root outside memory */
	seed_init(&s, X86, 4, iova, AC_R);
	s.h.root = 0x808;
	emit(&s, "x86-l4-root-misaligned");
	seed_init(&s, X86, 4, 0x0000900000000000ull, AC_R);
	s.h.root = 0x10;
	emit(&s, "x86-l4-root-misaligned-noncanonical");
	seed_init(&s, X86, 5, iova, AC_R);
	s.h.memflags |= FZ_M_ROOT_RAW;
	s.h.root = 0xdead000;
	emit(&s, "x86-l5-root-outside");

	/* raw-image input: the tables are the bytes after the header */
	seed_init(&s, X86, 4, 0x1000, AC_R | AC_W);
	s.raw = 1;
	s.h.pages = 3;
	s.h.walks = 3;
	chain(&s, X86, 4, 1, 0x1000, 0xabc000 | X_P | X_RW | X_US, 0);
	put(&s, PAGE(3) + idx(0x2000, 1) * 8, 0xabd000 | X_P | X_US);
	emit(&s, "x86-l4-raw-image");
}

static void gen_vtd(void)
{
	struct seed s;
	uint64_t iova = 0x0000004512345000ull;

	/* write-only and read-only leaves */
	seed_init(&s, VTD, 4, iova, AC_W);
	chain(&s, VTD, 4, 1, iova, 0x999000 | V_W, 0);
	emit(&s, "vtd-l4-write-only");
	s.h.access = AC_R;
	emit(&s, "vtd-l4-write-only-read");

	/* R=W=0 with X set: not present */
	seed_init(&s, VTD, 3, iova & ((1ull << 39) - 1), AC_R);
	chain(&s, VTD, 3, 1, iova & ((1ull << 39) - 1), 0x999000 | V_X, 0);
	emit(&s, "vtd-l3-x-only");

	/* execute with and without the X-honouring flag */
	seed_init(&s, VTD, 4, iova, AC_X | AC_R);
	s.h.flags = F_VTD_EXEC;
	chain(&s, VTD, 4, 1, iova, 0x999000 | V_R, 0);
	emit(&s, "vtd-l4-exec-no-x");
	s.h.flags = 0;
	emit(&s, "vtd-l4-exec-by-read");

	/* TM bit reserved */
	seed_init(&s, VTD, 4, iova, AC_R);
	chain(&s, VTD, 4, 1, iova, 0x999000 | V_R | V_TM, 0);
	emit(&s, "vtd-l4-tm");

	/* super pages refused by the granted page sizes (4 KiB only) */
	seed_init(&s, VTD, 4, iova, AC_R);
	s.h.memflags |= FZ_M_PGSIZE;
	s.h.pgsize = 1; /* 4 KiB */
	chain(&s, VTD, 4, 2, iova, 0x200000 | V_R | V_PS, 0);
	emit(&s, "vtd-l4-2m-not-granted");
	s.h.pgsize = 1 | (1u << 9); /* 4 KiB + 2 MiB */
	emit(&s, "vtd-l4-2m-granted");

	/* 1 GiB leaf with bit 12 set (reserved) */
	seed_init(&s, VTD, 5, iova, AC_R);
	chain(&s, VTD, 5, 3, iova, 0x40000000 | BIT(12) | V_R | V_PS, 0);
	emit(&s, "vtd-l5-1g-rsvd12");

	/* PS at level 4 */
	seed_init(&s, VTD, 4, iova, AC_R);
	put(&s, PAGE(0) + idx(iova, 4) * 8, 0x8000000000ull | V_R | V_PS);
	emit(&s, "vtd-l4-ps-at-l4");

	/* beyond the input width */
	seed_init(&s, VTD, 3, 1ull << 39, AC_R);
	emit(&s, "vtd-l3-beyond-ias");

	/* A/D on a write */
	seed_init(&s, VTD, 4, iova, AC_R | AC_W);
	s.h.flags = F_AD | F_VTD_EXEC;
	s.h.walks = 1 | (9 << 2); /* and the next 2 MiB */
	chain(&s, VTD, 4, 2, iova, 0x600000 | V_R | V_W | V_X | V_PS, 0);
	emit(&s, "vtd-l4-2m-ad");
	s.h.memflags |= FZ_M_IMAGE_RO;
	emit(&s, "vtd-l4-2m-ad-ro");

	/* oas 39: a leaf address with bit 40 */
	seed_init(&s, VTD, 4, iova, AC_R);
	s.h.oas = 39;
	chain(&s, VTD, 4, 1, iova, BIT(40) | V_R, 0);
	emit(&s, "vtd-l4-oas39");
}

static void gen_amd(void)
{
	struct seed s;

	/* mode 4 root pointing straight to a level-2 table (level 3 skipped) */
	uint64_t iova = 0x0000120000345000ull; /* level-3 index bits are zero */
	seed_init(&s, AMD, 4, iova, AC_R | AC_W);
	put(&s, PAGE(0) + idx(iova, 4) * 8, PAGE(1) | A_PR | A_IR | A_IW | A_NL(2));
	put(&s, PAGE(1) + idx(iova, 2) * 8, PAGE(2) | A_PR | A_IR | A_IW | A_NL(1));
	put(&s, PAGE(2) + idx(iova, 1) * 8, 0x5000000 | A_PR | A_IR | A_IW);
	s.h.walks = 1 | (9 << 2);
	emit(&s, "amd-m4-skip-l3");
	/* the same with a non-zero level-3 index: address-width fault */
	s.h.iova = iova | (1ull << 31);
	emit(&s, "amd-m4-skip-l3-nonzero");

	/* mode 6 root skipping to level 1 */
	iova = 0x8000000000007000ull;
	seed_init(&s, AMD, 6, iova, AC_R);
	put(&s, PAGE(0) + idx(iova, 6) * 8, PAGE(1) | A_PR | A_IR | A_NL(1));
	put(&s, PAGE(1) + idx(iova, 1) * 8, 0x9000 | A_PR | A_IR | A_U | A_FC);
	emit(&s, "amd-m6-skip-to-l1");

	/* next-level 7: a 32 KiB page at level 1, replicated over 8 entries */
	iova = 0x0000000040218000ull;
	seed_init(&s, AMD, 4, iova | 0x5000, AC_R | AC_W);
	s.h.walks = 3;
	{
		uint64_t t = PAGE(0);
		put(&s, t + idx(iova, 4) * 8, PAGE(1) | table_bits(AMD, 4));
		put(&s, PAGE(1) + idx(iova, 3) * 8, PAGE(2) | table_bits(AMD, 3));
		put(&s, PAGE(2) + idx(iova, 2) * 8, PAGE(3) | table_bits(AMD, 2));
		/* 32 KiB: address bits 12,13 set, bit 14 clear: S = 2^(13+2) */
		uint64_t e = 0x7770000ull | 0x3000 | A_PR | A_IR | A_IW | A_NL(7);
		for (unsigned i = 0; i < 8; i++)
			put(&s, PAGE(3) + (idx(iova, 1) + i) * 8, e);
	}
	emit(&s, "amd-m4-nl7-32k");

	/* next-level 7 at level 2: a 4 MiB page (bits 12..20 set, 21 clear) */
	iova = 0x0000000080400000ull;
	seed_init(&s, AMD, 4, iova | 0x123456, AC_R);
	{
		put(&s, PAGE(0) + idx(iova, 4) * 8, PAGE(1) | table_bits(AMD, 4));
		put(&s, PAGE(1) + idx(iova, 3) * 8, PAGE(2) | table_bits(AMD, 3));
		uint64_t e = 0x3c00000ull | 0x1ff000 | A_PR | A_IR | A_NL(7);
		put(&s, PAGE(2) + idx(iova, 2) * 8, e);
		put(&s, PAGE(2) + (idx(iova, 2) + 1) * 8, e);
	}
	emit(&s, "amd-m4-nl7-4m");

	/* next-level 7 of a size its level cannot hold (2 MiB at level 1) */
	iova = 0x1000;
	seed_init(&s, AMD, 3, iova, AC_R);
	chain(&s, AMD, 3, 1, iova, 0x0ff000ull | A_PR | A_IR | A_NL(7), 0);
	emit(&s, "amd-m3-nl7-too-big");
	/* and 4 KiB at level 1 (no ones: S = 8 KiB ... with bit 12 clear S = 2^13) */
	seed_init(&s, AMD, 3, iova, AC_R);
	chain(&s, AMD, 3, 2, iova, 0x0000000ull | A_PR | A_IR | A_NL(7), 0);
	emit(&s, "amd-m3-nl7-l2-too-small");

	/* next-level not below the current level: loop */
	seed_init(&s, AMD, 3, 0, AC_R);
	put(&s, PAGE(0), PAGE(0) | A_PR | A_IR | A_NL(3));
	emit(&s, "amd-m3-loop-self");
	seed_init(&s, AMD, 3, 0, AC_R);
	put(&s, PAGE(0), PAGE(1) | A_PR | A_IR | A_NL(2));
	put(&s, PAGE(1), PAGE(0) | A_PR | A_IR | A_NL(5));
	emit(&s, "amd-m3-loop-up");

	/* reserved bits 58:52 */
	seed_init(&s, AMD, 3, 0x1000, AC_R);
	chain(&s, AMD, 3, 1, 0x1000, 0x2000 | A_PR | A_IR | BIT(55), 0);
	emit(&s, "amd-m3-rsvd55");

	/* write through a read-only level */
	seed_init(&s, AMD, 3, 0x1000, AC_W);
	put(&s, PAGE(0), PAGE(1) | A_PR | A_IR | A_NL(2));
	put(&s, PAGE(1), PAGE(2) | A_PR | A_IR | A_IW | A_NL(1));
	put(&s, PAGE(2) + 8, 0x2000 | A_PR | A_IR | A_IW);
	emit(&s, "amd-m3-iw-cleared-above");

	/* natural-size leaf at the root of mode 2 (a 1 GiB page) */
	seed_init(&s, AMD, 2, 0x2345678, AC_R);
	put(&s, PAGE(0) + idx(0x2345678, 2) * 8, 0xc0000000ull | A_PR | A_IR);
	emit(&s, "amd-m2-root-leaf");

	/* A/D */
	seed_init(&s, AMD, 5, 0x0012345678000ull, AC_R | AC_W);
	s.h.flags = F_AD;
	chain(&s, AMD, 5, 1, 0x0012345678000ull, 0xbeef000 | A_PR | A_IR | A_IW, 0);
	emit(&s, "amd-m5-ad");
	s.h.memflags |= FZ_M_IMAGE_RO;
	emit(&s, "amd-m5-ad-ro");

	/* beyond the input width of mode 3 */
	seed_init(&s, AMD, 3, 1ull << 40, AC_R);
	emit(&s, "amd-m3-beyond-ias");
}

/*
 * A racing guest (FZ_W_RACE): the walk reads the root entry from the image,
 * the next table through the callbacks, and each callback call flips a bit of
 * that root entry, so the accessed-bit update finds it changed and the walk
 * must start again.
 */
static void gen_race(void)
{
	struct seed s;
	uint64_t iova = 0x0000004540001000ull;
	unsigned off = idx(iova, 4) * 8;

	static const struct { unsigned bit; const char *name; } flips[] = {
		{ 9, "race-x86-l4-ignored-bit" }, /* the walk retries until it gives up */
		{ 0, "race-x86-l4-present-bit" }, /* the second pass finds it not present */
	};
	for (unsigned i = 0; i < 2; i++) {
		seed_init(&s, X86, 4, iova, AC_R | AC_W);
		s.h.flags = F_AD;
		s.h.memflags |= FZ_M_CB_READ | FZ_M_CB_WRITE;
		s.h.walks = FZ_W_RACE;
		s.h.pgsize = (flips[i].bit << 16) | off;
		put(&s, PAGE(0) + off, FZ_CB_GPA | X_P | X_RW | X_US);
		put(&s, FZ_CB_GPA + idx(iova, 3) * 8, 0x40000000ull | X_P | X_RW | X_US | X_PS);
		emit(&s, flips[i].name);
	}

	/* AMD-Vi: the level-2 entry in the image flips its IW bit */
	iova = 0x0000000000600000ull;
	seed_init(&s, AMD, 3, iova, AC_W);
	s.h.flags = F_AD;
	s.h.memflags |= FZ_M_CB_READ | FZ_M_CB_WRITE;
	s.h.walks = FZ_W_RACE | 1;
	put(&s, PAGE(0) + idx(iova, 3) * 8, PAGE(1) | A_PR | A_IR | A_IW | A_NL(2));
	put(&s, PAGE(1) + idx(iova, 2) * 8, FZ_CB_GPA | A_PR | A_IR | A_IW | A_NL(1));
	put(&s, FZ_CB_GPA + idx(iova, 1) * 8, 0x123000 | A_PR | A_IR | A_IW);
	s.h.pgsize = (62u << 16) | (FZ_PAGE + idx(iova, 2) * 8);
	emit(&s, "race-amd-m3-iw");
}

/* Configurations the validator must refuse, and memory-access shapes. */
static void gen_misc(void)
{
	struct seed s;

	seed_init(&s, X86, 6, 0x1000, AC_R);
	emit(&s, "cfg-x86-l6");
	seed_init(&s, VTD, 2, 0x1000, AC_R);
	emit(&s, "cfg-vtd-l2");
	seed_init(&s, AMD, 0, 0x1000, AC_R);
	emit(&s, "cfg-amd-m0");
	seed_init(&s, AMD, 7, 0x1000, AC_R);
	emit(&s, "cfg-amd-m7");
	seed_init(&s, FZ_FMT_RAW | (9 << 2), 4, 0x1000, AC_R);
	emit(&s, "cfg-format-9");
	seed_init(&s, FZ_FMT_RAW | (0 << 2), 4, 0x1000, AC_R);
	emit(&s, "cfg-format-0");
	seed_init(&s, X86, 4, 0x1000, AC_R);
	s.h.oas = 31;
	emit(&s, "cfg-oas31");
	s.h.oas = 53;
	emit(&s, "cfg-oas53");
	s.h.oas = 32;
	emit(&s, "cfg-oas32");
	seed_init(&s, VTD, 4, 0x1000, AC_R);
	s.h.flags = 0x8;
	emit(&s, "cfg-unknown-flag");
	seed_init(&s, AMD, 4, 0x1000, AC_R);
	s.h.memflags |= FZ_M_PGSIZE;
	s.h.pgsize = 0x10; /* 64 KiB only: no 4 KiB */
	emit(&s, "cfg-no-4k");
	s.h.pgsize = 0x11; /* 4 KiB + 64 KiB */
	emit(&s, "cfg-4k-64k");

	/* memory accesses across region edges, with every optional piece on */
	seed_init(&s, X86, 4, 0x1000, AC_R);
	s.h.memflags |= FZ_M_REGION_B | FZ_M_CB_READ | FZ_M_CB_WRITE | FZ_M_B_RO;
	s.h.pages = 1;
	s.h.mem_off = 0x7f0;
	s.h.mem_len = 0x2020;
	emit(&s, "mem-edges");
	s.h.mem_off = 0x1800;
	s.h.mem_len = 0x3000;
	s.h.memflags |= FZ_M_IMAGE_RO;
	emit(&s, "mem-edges-ro");
	s.h.memflags = FZ_M_SPARSE;
	s.h.pages = 15;
	s.h.mem_off = 0x810;
	s.h.mem_len = 0x3fff;
	emit(&s, "mem-image-16p");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	gen_valid();
	gen_x86();
	gen_vtd();
	gen_amd();
	gen_race();
	gen_misc();
	printf("gen_corpus: %u seeds written to %s\n", written, out_dir);
	return 0;
}
