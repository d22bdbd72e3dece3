/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of fuzz_ir (format in fuzz_ir_input.h) into a
 * directory: valid IRTEs in xAPIC and x2APIC mode, every delivery mode,
 * subhandles, handle bit 15, each class of reserved field, source-ID checks,
 * FPD, compatibility format, remapping off, IOAPIC entries, tables outside
 * or partly outside memory, non-interrupt addresses.
 *
 * Entries are written by hand from the VT-d bits, not with the library.
 *
 *   fuzz_ir_gen_corpus DIR        (tests/fuzz_ir/corpus in the source tree)
 *
 * The find-* files beside the seeds are inputs that fuzzing runs found to
 * add coverage (merged with -merge=1), kept as they are.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_ir_input.h"

#define BIT(n) (1ull << (n))
#define P_ BIT(0)
#define FPD BIT(1)
#define DM BIT(2)
#define RH BIT(3)
#define TM BIT(4)
#define DLM(x) ((uint64_t)(x) << 5)
#define VEC(x) ((uint64_t)(x) << 16)
#define DST(x) ((uint64_t)(x) << 32)
#define XAPIC(x) ((uint64_t)(x) << 40)
#define SQ(x) ((uint64_t)(x) << 16)
#define SVT(x) ((uint64_t)(x) << 18)

#define MAX_IMG 4096

struct seed {
	uint8_t h[FZI_HEADER_SIZE];
	uint8_t img[MAX_IMG];
	size_t len;
	int tpage;
};

static const char *outdir;
static int failed;

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t msi(uint32_t h, int shv)
{
	return 0xfee00000u | 1u << 4 | (shv ? 1u << 3 : 0) | ((h >> 15) & 1) << 2 | (h & 0x7fff) << 5;
}

static void init(struct seed *s, unsigned flags, uint32_t entries, uint32_t addr, uint32_t data, uint8_t bus,
		 uint8_t devfn, int tpage)
{
	memset(s, 0, sizeof(*s));
	s->h[0] = (uint8_t)flags;
	put_le(s->h + 2, entries - 1, 2);
	put_le(s->h + 4, addr, 4);
	put_le(s->h + 8, data, 4);
	s->h[12] = bus;
	s->h[13] = devfn;
	s->h[14] = (uint8_t)(int8_t)tpage;
	s->tpage = tpage;
}

/* Entry `idx` of the table, wherever it falls in the image. */
static void irte(struct seed *s, uint32_t idx, uint64_t lo, uint64_t hi)
{
	int64_t off = (int64_t)s->tpage * 4096 + (int64_t)idx * 16;
	if (off < 0 || off + 16 > MAX_IMG) {
		fprintf(stderr, "gen_corpus: entry %u outside the image\n", idx);
		failed = 1;
		return;
	}
	put_le(s->img + off, lo, 8);
	put_le(s->img + off + 8, hi, 8);
	if ((size_t)off + 16 > s->len)
		s->len = (size_t)off + 16;
}

static void emit(const struct seed *s, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/seed-%s", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->h, 1, sizeof(s->h), f) != sizeof(s->h) || fwrite(s->img, 1, s->len, f) != s->len) {
		fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
		failed = 1;
	}
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	struct seed s;
	char name[64];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];

	/* valid entries */
	init(&s, 0, 16, msi(1, 0), 0, 0x12, 0x1d, 0);
	irte(&s, 1, P_ | DM | RH | TM | DLM(1) | VEC(0x41) | XAPIC(0x12), 0);
	emit(&s, "xapic-all-bits");
	static const unsigned dlms[] = { 0, 1, 2, 4, 5, 7 };
	for (unsigned i = 0; i < 6; i++) {
		init(&s, 0, 8, msi(0, 0), 0, 0, 0, 0);
		irte(&s, 0, P_ | DLM(dlms[i]) | VEC(0x20 + i) | XAPIC(i), 0);
		snprintf(name, sizeof(name), "xapic-dlm%u", dlms[i]);
		emit(&s, name);
	}
	init(&s, FZI_F_X2APIC, 16, msi(2, 0), 0, 1, 0, 0);
	irte(&s, 2, P_ | TM | VEC(0x55) | DST(0x12345678), 0);
	emit(&s, "x2apic");
	init(&s, FZI_F_X2APIC | FZI_F_NO_CACHE_HIT, 16, msi(2, 0), 0, 1, 0, 0);
	irte(&s, 2, P_ | RH | DM | VEC(0xfe) | DST(0xffffffffu), 0);
	emit(&s, "x2apic-max-dest");
	init(&s, 0, 16, msi(3, 1), 2, 0, 8, 0);
	irte(&s, 5, P_ | VEC(0x35) | XAPIC(3), 0);
	emit(&s, "subhandle");
	init(&s, 0, 16, msi(3, 1), 0xffff0004u, 0, 8, 0);
	irte(&s, 7, P_ | VEC(0x37), 0);
	emit(&s, "subhandle-high-data");
	/* handle bit 15: a table starting 128 pages before the image puts
	 * entry 0x8000 at the image's first byte */
	init(&s, 0, 65536, msi(0x8001, 0), 0, 0, 0, -128);
	irte(&s, 0x8001, P_ | VEC(0x81) | XAPIC(0x81), 0);
	emit(&s, "handle15");
	init(&s, 0, 65536, msi(0x7fff, 1), 2, 0, 0, -128);
	irte(&s, 0x8001, P_ | VEC(0x82), 0);
	emit(&s, "subhandle-carry");
	init(&s, 0, 256, msi(0, 0), 0, 0, 0, 0);
	s.h[1] = 17; /* a cache of one entry */
	irte(&s, 0, P_ | VEC(0x10), 0);
	irte(&s, 1, P_ | VEC(0x11), 0);
	emit(&s, "cache-one");

	/* faults */
	init(&s, 0, 4, msi(9, 0), 0, 0, 0, 0);
	irte(&s, 3, P_ | VEC(0x23), 0);
	emit(&s, "index-beyond");
	init(&s, 0, 4, msi(3, 1), 1, 0, 0, 0);
	irte(&s, 3, P_ | VEC(0x23), 0);
	emit(&s, "index-beyond-subhandle");
	init(&s, 0, 16, msi(0, 0), 0, 0, 0, 0);
	irte(&s, 0, VEC(0x20) | XAPIC(1), 0);
	emit(&s, "not-present");
	static const struct {
		const char *n;
		uint64_t lo, hi;
	} rsvd[] = {
		{ "lo12", BIT(12), 0 }, { "lo14", BIT(14), 0 }, { "im", BIT(15), 0 }, { "lo24", BIT(24), 0 },
		{ "lo31", BIT(31), 0 }, { "xapic33", BIT(33), 0 }, { "xapic48", BIT(48), 0 },
		{ "xapic63", BIT(63), 0 }, { "hi20", 0, BIT(20) }, { "hi63", 0, BIT(63) },
		{ "dlm3", DLM(3), 0 }, { "dlm6", DLM(6), 0 }, { "svt3", 0, SVT(3) },
	};
	for (unsigned i = 0; i < sizeof(rsvd) / sizeof(rsvd[0]); i++) {
		init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
		irte(&s, 1, P_ | VEC(0x40) | XAPIC(1) | rsvd[i].lo, rsvd[i].hi);
		snprintf(name, sizeof(name), "reserved-%s", rsvd[i].n);
		emit(&s, name);
	}
	init(&s, FZI_F_X2APIC, 16, msi(1, 0), 0, 0, 0, 0);
	irte(&s, 1, P_ | VEC(0x40) | BIT(33) | BIT(63), 0);
	emit(&s, "x2apic-not-reserved");

	/* source-ID verification: requester 12:03.5 */
	static const struct {
		const char *n;
		uint8_t bus, devfn;
		uint64_t hi;
	} sids[] = {
		{ "svt1-sq0-ok", 0x12, 0x1d, SVT(1) | SQ(0) | 0x121d },
		{ "svt1-sq0-bad", 0x12, 0x1c, SVT(1) | SQ(0) | 0x121d },
		{ "svt1-sq1-ok", 0x12, 0x19, SVT(1) | SQ(1) | 0x121d },
		{ "svt1-sq2-ok", 0x12, 0x1b, SVT(1) | SQ(2) | 0x121d },
		{ "svt1-sq3-ok", 0x12, 0x18, SVT(1) | SQ(3) | 0x121d },
		{ "svt1-sq3-bad", 0x13, 0x1d, SVT(1) | SQ(3) | 0x121d },
		{ "svt2-ok", 0x15, 0x00, SVT(2) | 0x1020 },
		{ "svt2-low", 0x0f, 0x00, SVT(2) | 0x1020 },
		{ "svt2-high", 0x21, 0x00, SVT(2) | 0x1020 },
	};
	for (unsigned i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
		init(&s, 0, 16, msi(2, 0), 0, sids[i].bus, sids[i].devfn, 0);
		irte(&s, 2, P_ | VEC(0x42) | XAPIC(2), sids[i].hi);
		snprintf(name, sizeof(name), "sid-%s", sids[i].n);
		emit(&s, name);
	}

	/* fault processing disabled */
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
	irte(&s, 1, FPD, 0);
	emit(&s, "fpd-not-present");
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
	irte(&s, 1, P_ | FPD | BIT(13), 0);
	emit(&s, "fpd-reserved");
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
	irte(&s, 1, P_ | FPD | VEC(0x44), SVT(1) | 0x0100);
	emit(&s, "fpd-sid");

	/* compatibility format and remapping off */
	init(&s, 0, 16, 0xfee0300cu, 0xc141, 0, 0, 0);
	irte(&s, 0, 0, 0);
	emit(&s, "compat-blocked");
	init(&s, FZI_F_ALLOW_COMPAT, 16, 0xfee0300cu, 0xc141, 0, 0, 0);
	irte(&s, 0, 0, 0);
	emit(&s, "compat-allowed");
	init(&s, FZI_F_OFF, 16, msi(1, 0), 0x4021, 0, 0, 0);
	irte(&s, 1, P_ | VEC(0x40), 0);
	emit(&s, "remapping-off");

	/* IOAPIC */
	init(&s, FZI_F_IOAPIC, 16, 0, 0, 0xf0, 0xf8, 0);
	put_le(s.h + 16, BIT(48) | 1ull << 49 | BIT(15) | 0x20, 8);
	irte(&s, 1, P_ | TM | VEC(0x21) | XAPIC(4), 0);
	emit(&s, "ioapic-remappable");
	init(&s, FZI_F_IOAPIC, 65536, 0, 0, 0xf0, 0xf8, -128);
	put_le(s.h + 16, BIT(48) | 2ull << 49 | BIT(11) | 0x20, 8);
	irte(&s, 0x8002, P_ | VEC(0x22), 0);
	emit(&s, "ioapic-index15");
	init(&s, FZI_F_IOAPIC | FZI_F_ALLOW_COMPAT, 16, 0, 0, 0xf0, 0xf8, 0);
	put_le(s.h + 16, 0x05ull << 56 | BIT(11) | 1ull << 8 | BIT(15) | 0x31, 8);
	emit(&s, "ioapic-compat");
	init(&s, FZI_F_IOAPIC, 16, 0, 0, 0xf0, 0xf8, 0);
	put_le(s.h + 16, 0x0aull << 56 | 0x40, 8);
	emit(&s, "ioapic-compat-blocked");

	/* tables out of memory */
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 64);
	s.len = 64;
	emit(&s, "table-outside");
	init(&s, 0, 512, msi(256, 0), 0, 0, 0, -1);
	irte(&s, 256, P_ | VEC(0x56), 0);
	emit(&s, "table-straddle-in");
	init(&s, 0, 512, msi(255, 0), 0, 0, 0, -1);
	irte(&s, 256, P_ | VEC(0x56), 0);
	emit(&s, "table-straddle-out");
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
	irte(&s, 1, P_ | VEC(0x40), 0);
	s.len = 24; /* entry 1 cut in half */
	emit(&s, "table-cut");
	init(&s, 0, 16, msi(1, 0), 0, 0, 0, 0);
	emit(&s, "no-memory");

	/* not interrupt addresses */
	init(&s, 0, 16, 0xfed00010u, 0, 0, 0, 0);
	irte(&s, 0, P_, 0);
	emit(&s, "not-interrupt");
	init(&s, FZI_F_HIGH_ADDR, 16, msi(0, 0), 0, 0, 0, 0);
	s.h[15] = 1;
	irte(&s, 0, P_, 0);
	emit(&s, "high-address");

	return failed;
}
