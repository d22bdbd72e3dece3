/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of fuzz_dma_run (the input format is described at
 * the top of fuzz_dma_run.c, its constants in fuzz_dma_run_input.h) into a
 * directory:
 * guest-owned tables of every format with long runs of contiguous leaves in
 * last-level tables, and what ends a run early or must end it: ignored bits
 * that differ, permission changes, holes, output gaps, outputs crossing 2^oas
 * (and 2^52) inside guest memory, runs of large pages, accessed/dirty updates
 * in writable and read-only memory, tables mapped onto themselves, runs
 * crossing a table or a region's end, and bad roots.
 *
 * Tables are written by hand from the specification bits, not with the
 * library, so the seeds do not inherit its mistakes.
 *
 *   gen_dma_run_corpus DIR        (tests/fuzz/corpus/dma_run in the source tree)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_dma_run_input.h"
enum { STEP_0 = 0, STEP_4K = 1, STEP_2M = 2, STEP_1G = 3 };

#define BIT(n) (1ull << (n))
#define KiB 0x400ull
#define MiB 0x100000ull
#define GiB 0x40000000ull

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
/* AMD-Vi v1 */
#define A_PR BIT(0)
#define A_A BIT(5)
#define A_D BIT(6)
#define A_NL(n) ((uint64_t)(n) << 9)
#define A_IR BIT(61)
#define A_IW BIT(62)

/* accesses (VIOMMU_ACCESS_*) */
#define AC_R 1u
#define AC_W 2u
#define AC_X 4u
#define AC_PRIV 0x10u

/* Where the seeds put things: tables in region A, data in region B. */
#define A_GPA 0x1000000ull
#define A_PAGES 32u
#define B_GPA 0x80000000ull
#define IOVA 0x40000000ull /* 1 GiB: 2 MiB aligned, index 0 below level 3 */

struct tbl {
	unsigned level;
	uint64_t prefix; /* iova >> the span of the table */
	uint64_t gpa;
};

struct seed {
	int fmt;
	unsigned levels;
	uint8_t flags;
	uint8_t memflags;
	unsigned a_pages, b_pages;
	uint64_t a_gpa, b_gpa, root;
	uint8_t ops[DR_MAX_OPS][DR_OP_SIZE];
	unsigned nops;
	uint8_t rec[DR_MAX_RECORDS][DR_REC_SIZE];
	unsigned nrec;
	unsigned oas;
	struct tbl tbl[64];
	unsigned ntbl;
	unsigned next_page; /* next free table page of A */
};

static const char *out_dir;
static unsigned written;

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "gen_dma_run_corpus: %s\n", what);
	exit(1);
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static unsigned shift_of(unsigned level)
{
	return 12 + 9 * (level - 1);
}

static unsigned idx(uint64_t iova, unsigned level)
{
	return (unsigned)((iova >> shift_of(level)) & 511);
}

static void seed_init(struct seed *s, int fmt, unsigned levels, unsigned oas, uint8_t flags)
{
	memset(s, 0, sizeof(*s));
	s->fmt = fmt;
	s->levels = levels;
	s->oas = oas;
	s->flags = flags;
	s->memflags = DR_M_B;
	s->a_gpa = A_GPA;
	s->a_pages = A_PAGES;
	s->b_gpa = B_GPA;
	s->b_pages = 1024;
	s->root = 0;
	s->tbl[0] = (struct tbl){ .level = levels, .prefix = 0, .gpa = A_GPA };
	s->ntbl = 1;
	s->next_page = 1;
}

static void op(struct seed *s, unsigned kind, unsigned access, uint64_t iova, uint64_t len)
{
	if (s->nops == DR_MAX_OPS || len == 0 || len > 4 * MiB)
		die("bad operation");
	uint8_t *p = s->ops[s->nops++];
	memset(p, 0, DR_OP_SIZE);
	p[0] = (uint8_t)kind;
	p[1] = (uint8_t)access;
	put_le(p + 4, len - 1, 4);
	put_le(p + 8, iova, 8);
}

/* count words from gpa on: value + i * step */
static void run(struct seed *s, uint64_t gpa, unsigned count, uint64_t value, unsigned step)
{
	uint64_t a_size = (uint64_t)s->a_pages * 4096, b_size = (uint64_t)s->b_pages * 4096;
	unsigned region;
	uint64_t off;

	if (gpa >= s->a_gpa && gpa - s->a_gpa < a_size) {
		region = 0;
		off = gpa - s->a_gpa;
	} else if ((s->memflags & DR_M_B) && gpa >= s->b_gpa && gpa - s->b_gpa < b_size) {
		region = 1;
		off = gpa - s->b_gpa;
	} else {
		die("a record outside both regions");
	}
	if (s->nrec == DR_MAX_RECORDS || count == 0 || count > 512)
		die("bad record");
	uint8_t *p = s->rec[s->nrec++];
	p[0] = (uint8_t)region;
	p[1] = (uint8_t)step;
	put_le(p + 2, count - 1, 2);
	put_le(p + 4, off, 4);
	put_le(p + 8, value, 8);
}

static void put(struct seed *s, uint64_t gpa, uint64_t value)
{
	run(s, gpa, 1, value, STEP_0);
}

static void emit(struct seed *s, const char *name)
{
	uint8_t hdr[DR_HDR_SIZE];
	char path[4096];
	static const unsigned level_base[3] = { 4, 3, 1 };

	memset(hdr, 0, sizeof(hdr));
	hdr[0] = (uint8_t)s->fmt;
	hdr[1] = (uint8_t)(s->levels - level_base[s->fmt]);
	hdr[2] = (uint8_t)(s->oas - 32);
	hdr[3] = s->flags;
	hdr[4] = s->memflags;
	if (!s->nops)
		die("a seed without operations");
	hdr[5] = (uint8_t)(s->nops - 1);
	put_le(hdr + 6, s->a_pages - 1, 2);
	put_le(hdr + 8, s->b_pages - 1, 2);
	put_le(hdr + 16, s->a_gpa, 8);
	put_le(hdr + 24, s->b_gpa, 8);
	put_le(hdr + 32, s->root, 8);

	snprintf(path, sizeof(path), "%s/seed-%s", out_dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "gen_dma_run_corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	int ok = fwrite(hdr, 1, sizeof(hdr), f) == sizeof(hdr);
	for (unsigned i = 0; i < s->nops; i++)
		ok &= fwrite(s->ops[i], 1, DR_OP_SIZE, f) == DR_OP_SIZE;
	for (unsigned i = 0; i < s->nrec; i++)
		ok &= fwrite(s->rec[i], 1, DR_REC_SIZE, f) == DR_REC_SIZE;
	if (fclose(f) || !ok) {
		fprintf(stderr, "gen_dma_run_corpus: %s: write failed\n", path);
		exit(1);
	}
	written++;
}

/* ------------------------------------------------------------------------ */
/* entries                                                                  */

/* A pointer at `level` to a table one level down. */
static uint64_t table_entry(const struct seed *s, uint64_t gpa, unsigned level)
{
	switch (s->fmt) {
	case X86:
		return gpa | X_P | X_RW | X_US;
	case VTD:
		return gpa | V_R | V_W | V_X;
	default:
		return gpa | A_PR | A_IR | A_IW | A_NL(level - 1);
	}
}

/* A read/write (user) page of the level's natural size. */
static uint64_t leaf_entry(const struct seed *s, uint64_t pa, unsigned level)
{
	switch (s->fmt) {
	case X86:
		return pa | X_P | X_RW | X_US | (level > 1 ? X_PS : 0);
	case VTD:
		return pa | V_R | V_W | (level > 1 ? V_PS : 0);
	default:
		return pa | A_PR | A_IR | A_IW;
	}
}

/* The same page without write permission. */
static uint64_t read_only(const struct seed *s, uint64_t pte)
{
	switch (s->fmt) {
	case X86:
		return pte & ~X_RW;
	case VTD:
		return pte & ~V_W;
	default:
		return pte & ~A_IW;
	}
}

/* A bit no format looks at in a leaf. */
static uint64_t ignored_bit(const struct seed *s)
{
	switch (s->fmt) {
	case X86:
		return BIT(9);
	case VTD:
		return BIT(11);
	default:
		return BIT(7);
	}
}

static uint64_t ad_bits(const struct seed *s, int dirty)
{
	if (s->fmt == VTD)
		return V_A | (dirty ? V_D : 0);
	return X_A | (dirty ? X_D : 0);
}

/* The table at `level` that holds iova's entry, made (one page of A each,
 * linked from the root) when missing. */
static uint64_t table_for(struct seed *s, uint64_t iova, unsigned level)
{
	uint64_t t = s->tbl[0].gpa;

	for (unsigned l = s->levels; l > level; l--) {
		uint64_t prefix = iova >> shift_of(l);
		uint64_t next = 0;
		for (unsigned i = 0; i < s->ntbl; i++)
			if (s->tbl[i].level == l - 1 && s->tbl[i].prefix == prefix)
				next = s->tbl[i].gpa;
		if (!next) {
			if (s->ntbl == sizeof(s->tbl) / sizeof(s->tbl[0]) || s->next_page >= s->a_pages)
				die("out of table pages");
			next = s->a_gpa + (uint64_t)s->next_page++ * 4096;
			s->tbl[s->ntbl++] = (struct tbl){ .level = l - 1, .prefix = prefix, .gpa = next };
			put(s, t + idx(iova, l) * 8, table_entry(s, next, l));
		}
		t = next;
	}
	return t;
}

/* The address of iova's entry at `level`. */
static uint64_t slot(struct seed *s, uint64_t iova, unsigned level)
{
	return table_for(s, iova, level) + idx(iova, level) * 8;
}

/* count leaves of the level's size from iova on, mapping pa on, in one
 * table (the run must not leave it), each `bits` more. */
static void leaves(struct seed *s, uint64_t iova, unsigned level, unsigned count, uint64_t pa, uint64_t bits)
{
	if (idx(iova, level) + count > 512)
		die("a run leaves its table");
	unsigned step = level == 1 ? STEP_4K : level == 2 ? STEP_2M : STEP_1G;
	run(s, slot(s, iova, level), count, leaf_entry(s, pa, level) | bits, step);
}

/* ------------------------------------------------------------------------ */
/* seeds                                                                    */

struct fmtcase {
	int fmt;
	unsigned levels;
	const char *name;
};

static const struct fmtcase cases[] = {
	{ X86, 4, "x86" }, { X86, 5, "x86l5" }, { VTD, 3, "vtd3" }, { VTD, 4, "vtd" },
	{ AMD, 3, "amd3" }, { AMD, 4, "amd" },  { AMD, 6, "amd6" },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void name_of(char *buf, size_t n, const char *what, const struct fmtcase *c, const char *suffix)
{
	snprintf(buf, n, "%s-%s%s", what, c->name, suffix);
}

/* Two full last-level tables: 1024 pages mapping all of B, in and across. */
static void gen_long(void)
{
	struct seed s;
	char name[128];

	for (unsigned i = 0; i < NCASES; i++) {
		for (int ad = 0; ad < 2; ad++) {
			const struct fmtcase *c = &cases[i];
			seed_init(&s, c->fmt, c->levels, 48, ad ? DR_F_AD : 0);
			leaves(&s, IOVA, 1, 512, B_GPA, 0);
			leaves(&s, IOVA + 2 * MiB, 1, 512, B_GPA + 2 * MiB, 0);
			if (ad) /* the first 100 of the second table already accessed */
				leaves(&s, IOVA + 2 * MiB, 1, 100, B_GPA + 2 * MiB, ad_bits(&s, 0));
			op(&s, 0, AC_R, IOVA + 0x10, 4 * MiB - 0x10);
			op(&s, DR_OP_READ, 0, IOVA + 0x800, 2 * MiB);
			op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA + 0x1000, 3 * MiB);
			op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 2 * MiB - 0x1000, 2 * MiB + 0x1000);
			name_of(name, sizeof(name), "long", c, ad ? "-ad" : "");
			emit(&s, name);
		}
	}
}

/* Runs broken (and not broken) by what differs between entries. */
static void gen_breaks(void)
{
	struct seed s;
	char name[128];

	for (unsigned i = 0; i < NCASES; i++) {
		const struct fmtcase *c = &cases[i];

		/* Ignored bits: the raw compare stops, decoding goes on. */
		seed_init(&s, c->fmt, c->levels, 48, 0);
		leaves(&s, IOVA, 1, 300, B_GPA, 0);
		uint64_t t = table_for(&s, IOVA, 1);
		put(&s, t + 5 * 8, leaf_entry(&s, B_GPA + 5 * 4096, 1) | ignored_bit(&s));
		put(&s, t + 9 * 8, leaf_entry(&s, B_GPA + 9 * 4096, 1) | ignored_bit(&s));
		put(&s, t + 200 * 8, leaf_entry(&s, B_GPA + 200 * 4096, 1) | ignored_bit(&s));
		op(&s, 0, AC_R, IOVA, 300 * 4096);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 0x123, 300 * 4096 - 0x123);
		op(&s, DR_OP_INVAL, AC_R, IOVA + 6 * 4096, 400 * 4096);
		name_of(name, sizeof(name), "ignored", c, "");
		emit(&s, name);

		/* The permission changes after 20 pages, and back after 40. */
		seed_init(&s, c->fmt, c->levels, 48, 0);
		leaves(&s, IOVA, 1, 64, B_GPA, 0);
		t = table_for(&s, IOVA, 1);
		run(&s, t + 20 * 8, 20, read_only(&s, leaf_entry(&s, B_GPA + 20 * 4096, 1)), STEP_4K);
		op(&s, 0, AC_R, IOVA, 64 * 4096);
		op(&s, DR_OP_INVAL, AC_W, IOVA, 64 * 4096);
		op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA + 10 * 4096, 30 * 4096);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA, 64 * 4096);
		name_of(name, sizeof(name), "perm", c, "");
		emit(&s, name);

		/* A hole after 7 pages, an output gap after 12, a page mapping
		 * backwards after 30. */
		seed_init(&s, c->fmt, c->levels, 48, 0);
		leaves(&s, IOVA, 1, 7, B_GPA, 0);
		leaves(&s, IOVA + 8 * 4096, 1, 4, B_GPA + 8 * 4096, 0);
		leaves(&s, IOVA + 12 * 4096, 1, 18, B_GPA + 100 * 4096, 0);
		leaves(&s, IOVA + 30 * 4096, 1, 34, B_GPA, 0);
		op(&s, 0, AC_R, IOVA, 64 * 4096);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 0x800, 64 * 4096);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 8 * 4096, 56 * 4096);
		op(&s, DR_OP_INVAL, AC_R, IOVA + 8 * 4096, 56 * 4096);
		name_of(name, sizeof(name), "gap", c, "");
		emit(&s, name);

		/* Across a table's end: into a full table, and into a missing one. */
		seed_init(&s, c->fmt, c->levels, 48, 0);
		leaves(&s, IOVA + 2 * MiB - 16 * 4096, 1, 16, B_GPA, 0);
		leaves(&s, IOVA + 2 * MiB, 1, 512, B_GPA + 16 * 4096, 0);
		leaves(&s, IOVA + 6 * MiB - 4 * 4096, 1, 4, B_GPA + 3 * MiB, 0);
		op(&s, 0, AC_R, IOVA + 2 * MiB - 16 * 4096, 1 * MiB);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 2 * MiB - 16 * 4096 + 8, 2 * MiB);
		op(&s, DR_OP_INVAL, AC_R, IOVA + 6 * MiB - 4 * 4096, 1 * MiB);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 6 * MiB - 3 * 4096, 1 * MiB);
		name_of(name, sizeof(name), "table-end", c, "");
		emit(&s, name);
	}
}

/*
 * Outputs that go past 2^oas inside guest memory: a region across 2^oas, and
 * leaves that are raw-equal to the first plus n pages all the way. The run
 * must end at 2^oas (the address is a reserved bit there). With oas 52 the
 * address field carries into bit 52 instead (ignored in x86-64 and VT-d
 * leaves: address 0 follows 2^52 - 4 KiB there).
 */
static void gen_oas(void)
{
	static const unsigned oases[] = { 32, 39, 46, 52 };
	struct seed s;
	char name[128], sfx[32];

	for (unsigned i = 0; i < NCASES; i++) {
		const struct fmtcase *c = &cases[i];
		for (unsigned k = 0; k < sizeof(oases) / sizeof(oases[0]); k++) {
			unsigned oas = oases[k];
			uint64_t top = 1ull << oas;
			seed_init(&s, c->fmt, c->levels, oas, 0);
			s.b_gpa = top - 1 * MiB;
			s.b_pages = 512; /* 1 MiB on each side */
			/* 64 pages below 2^oas, then on past it. */
			leaves(&s, IOVA, 1, 512, top - 64 * 4096, 0);
			/* A short run (16 pages, then a hole) whose last possible
			 * entry would lie past 2^oas. */
			leaves(&s, IOVA + 2 * MiB, 1, 16, top - 32 * 4096, 0);
			op(&s, 0, AC_R, IOVA, 2 * MiB);
			op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 8, 1 * MiB);
			op(&s, DR_OP_INVAL, AC_R, IOVA + 2 * MiB, 1 * MiB);
			op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA + 60 * 4096, 8 * 4096);
			snprintf(sfx, sizeof(sfx), "-oas%u", oas);
			name_of(name, sizeof(name), "cross", c, sfx);
			emit(&s, name);
		}
	}
}

/* Runs of 2 MiB pages (level 2), including one past the region's end. */
static void gen_large(void)
{
	struct seed s;
	char name[128];

	for (unsigned i = 0; i < NCASES; i++) {
		const struct fmtcase *c = &cases[i];
		seed_init(&s, c->fmt, c->levels, 48, DR_F_AD);
		leaves(&s, IOVA, 2, 3, B_GPA, 0);
		/* 4 KiB pages in the next 2 MiB of iova: a different table. */
		leaves(&s, IOVA + 6 * MiB, 1, 32, B_GPA + 4096, 0);
		op(&s, 0, AC_R, IOVA + 0x1000, 4 * MiB);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 2 * MiB - 0x800, 2 * MiB + 0x1000);
		op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA + 4 * MiB - 0x3000, 3 * MiB);
		op(&s, DR_OP_READ, 0, IOVA + 4 * MiB, 4 * MiB);
		name_of(name, sizeof(name), "large", c, "-ad");
		emit(&s, name);
	}

	/* AMD-Vi: 2 MiB pages with NextLevel 0 and junk in the unused address
	 * bits; pages with NextLevel 7 (8 KiB, replicated) in a level-1 table. */
	seed_init(&s, AMD, 4, 48, 0);
	uint64_t t = table_for(&s, IOVA, 2);
	run(&s, t, 3, leaf_entry(&s, B_GPA, 2) | 0x1ff000, STEP_2M); /* the third past B */
	t = table_for(&s, IOVA + 2 * GiB, 1);
	for (unsigned k = 0; k < 64; k++)
		put(&s, t + k * 8, (B_GPA + (k / 2) * 0x2000) | A_PR | A_IR | A_IW | A_NL(7));
	op(&s, 0, AC_R, IOVA, 4 * MiB);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 0x10, 4 * MiB - 0x10);
	op(&s, DR_OP_INVAL, AC_R, IOVA + 2 * GiB, 64 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 2 * GiB, 64 * 4096);
	emit(&s, "large-amd-nl");
}

/* Accessed/dirty: set during a run, in memory that refuses it, and on tables
 * the DMA reads itself. */
static void gen_ad(void)
{
	struct seed s;
	char name[128];

	for (unsigned i = 0; i < NCASES; i++) {
		const struct fmtcase *c = &cases[i];

		/* Tables in read-only memory: the first 40 leaves accessed, the
		 * first 20 dirty too; the table pointers accessed. */
		seed_init(&s, c->fmt, c->levels, 48, DR_F_AD);
		s.memflags |= DR_M_A_RO;
		leaves(&s, IOVA, 1, 20, B_GPA, ad_bits(&s, 1));
		leaves(&s, IOVA + 20 * 4096, 1, 20, B_GPA + 20 * 4096, ad_bits(&s, 0));
		leaves(&s, IOVA + 40 * 4096, 1, 24, B_GPA + 40 * 4096, 0);
		for (unsigned k = 0; k < s.ntbl; k++) {
			if (s.tbl[k].level == 1)
				continue;
			/* every pointer of the path gets its accessed bit */
			uint64_t below = table_for(&s, IOVA, s.tbl[k].level - 1);
			put(&s, s.tbl[k].gpa + idx(IOVA, s.tbl[k].level) * 8,
			    table_entry(&s, below, s.tbl[k].level) | ad_bits(&s, 0));
		}
		op(&s, 0, AC_R, IOVA, 64 * 4096);
		op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA, 64 * 4096);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 4, 64 * 4096);
		op(&s, DR_OP_INVAL, AC_W, IOVA + 20 * 4096, 4096);
		name_of(name, sizeof(name), "ro-tables", c, "-ad");
		emit(&s, name);

		/* The leaf table maps region A itself: the copy reads the
		 * entries whose bits the run is setting. */
		seed_init(&s, c->fmt, c->levels, 48, DR_F_AD);
		s.memflags = 0; /* no region B */
		leaves(&s, IOVA, 1, A_PAGES, A_GPA, 0);
		op(&s, DR_OP_READ, 0, IOVA, A_PAGES * 4096);
		op(&s, DR_OP_INVAL, AC_R | AC_W, IOVA + 0x100, A_PAGES * 4096 - 0x100);
		op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA, A_PAGES * 4096);
		name_of(name, sizeof(name), "self", c, "-ad");
		emit(&s, name);
	}
}

/* Permission bits of one format or another, regions side by side, roots. */
static void gen_misc(void)
{
	struct seed s;

	/* x86-64: user and privileged requests, no-execute pages. */
	seed_init(&s, X86, 4, 48, DR_F_EXTRA);
	leaves(&s, IOVA, 1, 64, B_GPA, 0);
	uint64_t t = table_for(&s, IOVA, 1);
	run(&s, t + 16 * 8, 16, (leaf_entry(&s, B_GPA + 16 * 4096, 1) & ~X_US), STEP_4K);
	run(&s, t + 40 * 8, 8, leaf_entry(&s, B_GPA + 40 * 4096, 1) | X_XD, STEP_4K);
	op(&s, 0, AC_R, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_R | AC_PRIV, IOVA, 64 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, AC_X | AC_PRIV, IOVA + 32 * 4096, 32 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, AC_PRIV, IOVA, 64 * 4096);
	emit(&s, "perm-x86-us-xd");

	/* VT-d with execute: X on some pages only. */
	seed_init(&s, VTD, 4, 48, DR_F_EXTRA);
	leaves(&s, IOVA, 1, 32, B_GPA, V_X);
	leaves(&s, IOVA + 32 * 4096, 1, 32, B_GPA + 32 * 4096, 0);
	op(&s, DR_OP_READ, AC_X, IOVA, 64 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_R, IOVA, 64 * 4096);
	emit(&s, "perm-vtd-exec");

	/* x86-64 without 2 MiB pages granted: the large leaves are reserved. */
	seed_init(&s, X86, 4, 48, DR_F_PGSIZE);
	leaves(&s, IOVA, 2, 2, B_GPA, 0);
	op(&s, 0, AC_R, IOVA, 4 * MiB);
	op(&s, DR_OP_READ, 0, IOVA, 4096);
	emit(&s, "pgsize-x86-4k");

	/* Region B right after A: one run of outputs across both. */
	seed_init(&s, VTD, 4, 48, 0);
	s.b_gpa = A_GPA + A_PAGES * 4096;
	s.b_pages = 64;
	leaves(&s, IOVA, 1, 64, A_GPA + (A_PAGES - 16) * 4096, 0);
	op(&s, 0, AC_R, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_R, IOVA + 16 * 4096, 48 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 0x10, 64 * 4096);
	emit(&s, "adjacent-vtd");

	/* Region B read-only: writes to it are refused as DMA targets. */
	seed_init(&s, X86, 4, 48, DR_F_AD);
	s.memflags |= DR_M_B_RO;
	leaves(&s, IOVA, 1, 32, B_GPA, 0);
	leaves(&s, IOVA + 32 * 4096, 1, 32, A_GPA + 8 * 4096, 0);
	op(&s, 0, AC_W, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_R, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_W, IOVA + 32 * 4096, 64 * 4096);
	op(&s, DR_OP_READ, 0, IOVA, 64 * 4096);
	emit(&s, "ro-data-x86-ad");

	/* Outputs past memory's end, and into no memory at all. */
	seed_init(&s, AMD, 3, 48, 0);
	s.b_pages = 16;
	leaves(&s, IOVA, 1, 64, B_GPA, 0);
	leaves(&s, IOVA + 64 * 4096, 1, 8, 0x7000000000ull, 0);
	op(&s, 0, AC_R, IOVA, 64 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA, 64 * 4096);
	op(&s, DR_OP_INVAL, AC_R, IOVA + 64 * 4096, 8 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA + 64 * 4096, 8 * 4096);
	emit(&s, "no-memory-amd");

	/* A table pointing at itself (read as the next level's). */
	seed_init(&s, X86, 4, 48, DR_F_AD);
	t = table_for(&s, IOVA, 2);
	put(&s, t + idx(IOVA, 2) * 8, table_entry(&s, t, 2));
	for (unsigned k = 1; k < 40; k++)
		put(&s, t + k * 8, leaf_entry(&s, t + k * 4096, 1));
	op(&s, 0, AC_R | AC_W, IOVA, 40 * 4096);
	op(&s, DR_OP_READ | DR_OP_INVAL, 0, IOVA, 40 * 4096);
	op(&s, DR_OP_INVAL, AC_R, IOVA + 4096, 39 * 4096);
	emit(&s, "loop-x86-ad");

	/* Roots: out of memory (raw), and misaligned. */
	seed_init(&s, VTD, 3, 48, 0);
	s.memflags |= DR_M_ROOT_RAW;
	s.root = 0xdead000000ull;
	op(&s, 0, AC_R, IOVA, 4096);
	op(&s, DR_OP_READ, 0, IOVA, 8192);
	emit(&s, "root-outside");
	seed_init(&s, X86, 4, 48, 0);
	leaves(&s, IOVA, 1, 16, B_GPA, 0);
	s.root = 4;
	op(&s, 0, AC_R, IOVA, 16 * 4096);
	op(&s, DR_OP_READ, 0, IOVA, 16 * 4096);
	emit(&s, "root-misaligned");

	/* Lengths at the edges: one byte, a range that wraps, the top page. */
	seed_init(&s, AMD, 6, 52, 0);
	leaves(&s, IOVA, 1, 8, B_GPA, 0);
	op(&s, 0, AC_R, IOVA + 4095, 1);
	op(&s, DR_OP_READ, 0, IOVA + 4095, 2);
	op(&s, 0, AC_R, ~0ull - 0xfff, 0x2000);
	op(&s, DR_OP_READ, 0, ~0ull - 0xfff, 0x1000);
	emit(&s, "edges-amd6");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	gen_long();
	gen_breaks();
	gen_oas();
	gen_large();
	gen_ad();
	gen_misc();
	printf("gen_dma_run_corpus: %u seeds written to %s\n", written, out_dir);
	return 0;
}
