/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_virtqueue into a directory:
 *   fuzz_virtqueue_gen_corpus DIR
 * Each seed is a header (see fuzz_virtqueue.c) and a RAM image (trailing
 * zeros left out: the target zero-fills RAM) holding a
 * queue: well-formed chains (direct, indirect, wrapping indices, many
 * chains), and the classic hostile ones (loops, indexes out of range,
 * lengths past 4 GiB, rings across the end of RAM). The output is checked in
 * under corpus/virtqueue; rerun this after changing the input format.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RAM_BASE 0x100000ull
#define IMG 0x4000u /* seeds carry the first 16 KiB of RAM */
#define HDR 20u

static uint8_t buf[HDR + IMG];

static void put(unsigned off, unsigned len, uint64_t v)
{
	for (unsigned i = 0; i < len; i++)
		buf[off + i] = (uint8_t)(v >> (8 * i));
}

/* header */
static void header(unsigned flags, unsigned size_log, uint32_t desc, uint32_t avail, uint32_t used, uint16_t start,
		   unsigned pops)
{
	memset(buf, 0, sizeof(buf));
	buf[0] = (uint8_t)flags;
	buf[1] = (uint8_t)size_log;
	put(2, 2, 0);
	put(4, 4, desc);
	put(8, 4, avail);
	put(12, 4, used);
	put(16, 2, start);
	buf[18] = (uint8_t)pops;
	buf[19] = 7;
}

/* RAM offset helpers (offsets into the image) */
static void desc(uint32_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	unsigned p = HDR + table + 16 * i;
	put(p, 8, addr);
	put(p + 8, 4, len);
	put(p + 12, 2, flags);
	put(p + 14, 2, next);
}

static void avail(uint32_t ring, unsigned size, uint16_t idx_from, const uint16_t *heads, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		put(HDR + ring + 4 + 2 * ((idx_from + k) % size), 2, heads[k]);
	put(HDR + ring + 2, 2, (uint16_t)(idx_from + n));
}

static int emit(const char *dir, const char *name, size_t len)
{
	char path[1024];
	/* RAM past the input is zero: leave trailing zeros out */
	while (len > HDR && buf[len - 1] == 0)
		len--;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return 1;
	}
	size_t w = fwrite(buf, 1, len, f);
	int bad = fclose(f) != 0 || w != len;
	if (bad)
		fprintf(stderr, "%s: write failed\n", path);
	return bad;
}

int main(int argc, char **argv)
{
	int bad = 0;
	const uint32_t D = 0x0000, A = 0x200, U = 0x400, IND = 0x600;
	const uint64_t DATA = RAM_BASE + 0x800;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];

	/* one well-formed request: header, data, status */
	header(1, 4, D, A, U, 0, 8);
	desc(D, 0, DATA, 16, 1, 1);
	desc(D, 1, DATA + 16, 512, 3, 2);
	desc(D, 2, DATA + 600, 1, 2, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-simple", sizeof(buf));

	/* indirect table */
	header(1, 4, D, A, U, 0, 8);
	desc(D, 0, RAM_BASE + IND, 48, 4, 0);
	desc(IND, 0, DATA, 16, 1, 1);
	desc(IND, 1, DATA + 16, 1024, 3, 2);
	desc(IND, 2, DATA + 1100, 1, 2, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-indirect", sizeof(buf));

	/* several chains, indices wrapping past 0xffff */
	header(1, 3, D, A, U, 0xfffe, 16);
	for (unsigned i = 0; i < 4; i++) {
		desc(D, 2 * i, DATA + 64 * i, 16, 1, (uint16_t)(2 * i + 1));
		desc(D, 2 * i + 1, DATA + 64 * i + 16, 1, 2, 0);
	}
	avail(A, 8, 0xfffe, (const uint16_t[]){0, 2, 4, 6}, 4);
	bad |= emit(dir, "seed-wrap", sizeof(buf));

	/* hostile: a loop */
	header(0, 4, D, A, U, 0, 4);
	desc(D, 0, DATA, 16, 1, 1);
	desc(D, 1, DATA, 16, 1, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-loop", sizeof(buf));

	/* hostile: loop inside an indirect table */
	header(1, 4, D, A, U, 0, 4);
	desc(D, 0, RAM_BASE + IND, 32, 4, 0);
	desc(IND, 0, DATA, 16, 1, 1);
	desc(IND, 1, DATA, 16, 1, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-indirect-loop", sizeof(buf));

	/* hostile: head and next out of range, avail idx far ahead */
	header(0, 4, D, A, U, 0, 4);
	desc(D, 0, DATA, 16, 1, 200);
	avail(A, 16, 0, (const uint16_t[]){0, 77}, 2);
	bad |= emit(dir, "seed-next-range", sizeof(buf));
	header(0, 4, D, A, U, 0, 4);
	put(HDR + A + 2, 2, 0x8000);
	bad |= emit(dir, "seed-avail-ahead", sizeof(buf));

	/* hostile: lengths past 4 GiB, readable after writable, wrap */
	header(0, 4, D, A, U, 0, 4);
	desc(D, 0, DATA, 0x80000000u, 3, 1);
	desc(D, 1, DATA, 0x80000000u, 2, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-4g", sizeof(buf));
	header(0, 4, D, A, U, 0, 4);
	desc(D, 0, DATA, 1, 3, 1);
	desc(D, 1, DATA, 1, 0, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-order", sizeof(buf));
	header(0, 4, D, A, U, 0, 4);
	desc(D, 0, ~0ull - 8, 64, 0, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-addr-wrap", sizeof(buf));

	/* rings across the end of RAM and buffers outside it */
	header(1, 4, 0xfff0, A, U, 0, 4);
	avail(A, 16, 0, (const uint16_t[]){1}, 1); /* descriptor 1 is past the end */
	bad |= emit(dir, "seed-desc-past-end", sizeof(buf));
	header(1, 4, D, A, 0xfffc, 0, 4);
	desc(D, 0, RAM_BASE - 8, 16, 1, 1);
	desc(D, 1, RAM_BASE + 0xfff8, 16, 2, 0);
	avail(A, 16, 0, (const uint16_t[]){0}, 1);
	bad |= emit(dir, "seed-outside", sizeof(buf));

	/* a full queue of 256 one-descriptor chains */
	header(1, 8, D, 0x1000, 0x1400, 0, 255);
	uint16_t heads[256];
	for (unsigned i = 0; i < 256; i++) {
		desc(D, i, DATA + 4 * i, 2, i % 2 ? 2 : 0, 0);
		heads[i] = (uint16_t)(255 - i);
	}
	avail(0x1000, 256, 0, heads, 256);
	bad |= emit(dir, "seed-full", sizeof(buf));

	/* a raw, invalid size */
	header(2, 0, D, A, U, 0, 4);
	put(2, 2, 100);
	bad |= emit(dir, "seed-bad-size", HDR + 64);
	return bad;
}
