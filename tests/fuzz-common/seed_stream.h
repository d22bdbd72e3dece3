/* SPDX-License-Identifier: MIT */
/*
 * For the corpus generators whose inputs are a byte stream of opcodes and
 * little-endian arguments (fuzz_vtd, fuzz_virtio_iommu): a seed being
 * written, its bytes and numbers, and its file.
 */
#ifndef VIOMMU_FUZZ_SEED_STREAM_H
#define VIOMMU_FUZZ_SEED_STREAM_H

#include <stdint.h>
#include <stdio.h>

struct seed {
	uint8_t b[4096];
	size_t n;
};

/* One byte (a seed that is full drops the rest). */
static inline void byte(struct seed *s, uint8_t v)
{
	if (s->n < sizeof(s->b))
		s->b[s->n++] = v;
}

/* The low n bytes of v, little-endian. */
static inline void num(struct seed *s, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		byte(s, (uint8_t)(v >> (8 * i)));
}

/* Write the seed to DIR/NAME: 0, or 1 (said on stderr). */
static inline int save(const char *dir, const char *name, const struct seed *s)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n) {
		perror(path);
		if (f)
			fclose(f);
		return 1;
	}
	return fclose(f) ? 1 : 0;
}

#endif
