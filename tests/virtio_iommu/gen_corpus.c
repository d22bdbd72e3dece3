/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of fuzz_virtio_iommu (format:
 * fuzz_virtio_iommu_input.h) into the directory given: a driver's life
 * (attach, map, DMA, unmap, detach), bypass both ways, PROBE, splits and
 * overlaps, a domain range, raw malformed requests, resets, events. Run by
 * hand; its output is checked in.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_virtio_iommu_input.h"
#include "seed_stream.h"


static void attach(struct seed *s, uint8_t dom, uint8_t ep, uint8_t flags)
{
	byte(s, OP_ATTACH);
	byte(s, dom);
	byte(s, ep);
	byte(s, flags);
	byte(s, 0);
}

static void detach(struct seed *s, uint8_t dom, uint8_t ep)
{
	byte(s, OP_DETACH);
	byte(s, dom);
	byte(s, ep);
}

static void map(struct seed *s, uint8_t dom, uint16_t page, uint8_t pages_minus1, uint16_t phys, uint8_t flags)
{
	byte(s, OP_MAP);
	byte(s, dom);
	num(s, page, 2);
	byte(s, pages_minus1);
	num(s, phys, 2);
	byte(s, flags);
}

static void unmap(struct seed *s, uint8_t dom, uint16_t first, uint16_t last)
{
	byte(s, OP_UNMAP);
	byte(s, dom);
	num(s, first, 2);
	num(s, last, 2);
}

static void dma(struct seed *s, uint8_t ep, uint16_t page, uint16_t off, uint8_t len_minus1, int write)
{
	byte(s, OP_DMA);
	byte(s, ep);
	num(s, page, 2);
	num(s, off, 2);
	byte(s, len_minus1);
	byte(s, (uint8_t)write);
}

#define ALL_FEATURES 0x57 /* INPUT_RANGE, DOMAIN_RANGE, MAP_UNMAP, PROBE, BYPASS_CONFIG */

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	struct seed s;
	int rc = 0;

	/* A strict driver's life. */
	memset(&s, 0, sizeof(s));
	byte(&s, ALL_FEATURES);
	byte(&s, 0);
	dma(&s, 0, 1, 0, 15, 0); /* blocked */
	attach(&s, 1, 0, 0);
	map(&s, 1, 16, 3, 32, 3);
	dma(&s, 0, 16, 4090, 20, 0);
	dma(&s, 0, 19, 4000, 200, 1); /* runs off the mapping */
	map(&s, 1, 40, 0, 300, 1);      /* beyond RAM */
	dma(&s, 0, 40, 0, 7, 0);
	dma(&s, 0, 40, 0, 7, 1);        /* read-only */
	unmap(&s, 1, 16, 19);
	dma(&s, 0, 16, 0, 7, 0);
	detach(&s, 1, 0);
	byte(&s, OP_EVENTS);
	rc |= save(dir, "life", &s);

	/* Bypass: per domain and for unattached endpoints. */
	memset(&s, 0, sizeof(s));
	byte(&s, ALL_FEATURES);
	byte(&s, 0);
	attach(&s, 2, 1, 1);
	dma(&s, 1, 3, 0, 63, 1);
	map(&s, 2, 3, 0, 3, 3);
	attach(&s, 2, 0, 0);
	byte(&s, OP_BYPASS);
	byte(&s, 1);
	dma(&s, 2, 5, 8, 31, 0);
	byte(&s, OP_BYPASS);
	byte(&s, 0);
	dma(&s, 2, 5, 8, 31, 0);
	byte(&s, OP_RESET);
	dma(&s, 1, 3, 0, 63, 0);
	byte(&s, OP_EVENTS);
	rc |= save(dir, "bypass", &s);

	/* Splits, overlaps, two endpoints in one domain, moves. */
	memset(&s, 0, sizeof(s));
	byte(&s, ALL_FEATURES);
	byte(&s, 0);
	attach(&s, 7, 0, 0);
	attach(&s, 7, 1, 0);
	map(&s, 7, 100, 9, 10, 3);
	map(&s, 7, 105, 9, 10, 3);
	map(&s, 7, 110, 0, 20, 2);
	unmap(&s, 7, 101, 109);
	unmap(&s, 7, 100, 0x8000 | 109);
	dma(&s, 1, 101, 0, 255, 0);
	attach(&s, 8, 1, 0);
	dma(&s, 1, 101, 0, 7, 0);
	unmap(&s, 7, 0, 1023);
	dma(&s, 0, 110, 0, 7, 1);
	attach(&s, 8, 0, 0);
	rc |= save(dir, "split", &s);

	/* PROBE, a domain range, top of the input range, unknown endpoint. */
	memset(&s, 0, sizeof(s));
	byte(&s, ALL_FEATURES);
	byte(&s, 4);
	byte(&s, OP_PROBE);
	byte(&s, 0);
	num(&s, 516, 2);
	byte(&s, OP_PROBE);
	byte(&s, 3);
	num(&s, 516, 2);
	byte(&s, OP_PROBE);
	byte(&s, 1);
	num(&s, 100, 2);
	attach(&s, 5, 0, 0);
	attach(&s, 0, 0, 0);
	attach(&s, 4, 3, 0);
	attach(&s, 4, 2, 0);
	map(&s, 4, 60, 3, 1, 0x40 | 3);
	map(&s, 4, 63, 3, 1, 0x40 | 3);
	map(&s, 4, 1, 0, 1, 0x80 | 3);
	rc |= save(dir, "probe-range", &s);

	/* Raw requests: short, long, unknown types, no tail. */
	memset(&s, 0, sizeof(s));
	byte(&s, 0x04); /* MAP_UNMAP only */
	byte(&s, 0);
	static const uint8_t raw[][8] = {
		{ 0, 0, 0, 0 }, { 1, 0, 0, 0 }, { 3, 1, 0, 0 }, { 6, 0, 0, 0 }, { 0xff, 0xff, 0xff, 0xff },
	};
	for (unsigned i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		byte(&s, OP_RAW);
		byte(&s, 8);
		for (unsigned j = 0; j < 8; j++)
			byte(&s, raw[i][j]);
		byte(&s, (uint8_t)(i == 4 ? 2 : 4));
	}
	byte(&s, OP_RAW);
	byte(&s, 20);
	byte(&s, 1);
	for (unsigned j = 1; j < 20; j++)
		byte(&s, j == 8 ? 0x08 : 0);
	byte(&s, 4);
	dma(&s, 0, 0, 0, 3, 0);
	rc |= save(dir, "raw", &s);

	/* Features the device does not offer (so none), then a fault storm. */
	memset(&s, 0, sizeof(s));
	byte(&s, 0x7f);
	byte(&s, 0);
	for (int i = 0; i < 80; i++)
		dma(&s, (uint8_t)(i % 3), (uint16_t)i, 0, 0, i & 1);
	byte(&s, OP_EVENTS);
	rc |= save(dir, "storm", &s);
	return rc;
}
