/* SPDX-License-Identifier: MIT */
/*
 * The virtio-iommu front-end driven through its public API only: requests
 * laid out byte by byte as the specification (virtio 1.2, 5.13.6) has them,
 * DMA through the endpoints' devices after each step to see what the guest
 * would see, fault events, bypass, PROBE, limits, and a loop that fails
 * every allocation of a whole scenario in turn.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>
#include <viommu/virtio_iommu.h>

#include "check.h"
#include "test_alloc.h"
#include "le_bytes.h"

#define RAM_SIZE (4u << 20)

enum { S_OK, S_IOERR, S_UNSUPP, S_DEVERR, S_INVAL, S_RANGE, S_NOENT, S_FAULT, S_NOMEM };

#define FEAT(b) (1ull << VIOMMU_VIRTIO_IOMMU_F_##b)

struct env {
	uint8_t *ram;
	viommu *v;
	viommu_virtio_iommu *vi;
	viommu_dev *ep[3];
	unsigned events_raised;
	uint32_t probe_size;
};

/* Send a request; returns the status byte, or -1 if the call failed. */
static int req(struct env *e, const uint8_t *in, size_t in_len)
{
	uint8_t out[4] = { 0xff, 0xff, 0xff, 0xff };
	size_t written = 99;
	if (viommu_virtio_iommu_request(e->vi, in, in_len, out, sizeof(out), &written))
		return -1;
	if (written != 4)
		return -2;
	return out[0];
}

static int attach(struct env *e, uint32_t domain, uint32_t endpoint, uint32_t flags)
{
	uint8_t r[20] = { 1 };
	put32(r + 4, domain);
	put32(r + 8, endpoint);
	put32(r + 12, flags);
	return req(e, r, sizeof(r));
}

static int detach(struct env *e, uint32_t domain, uint32_t endpoint)
{
	uint8_t r[20] = { 2 };
	put32(r + 4, domain);
	put32(r + 8, endpoint);
	return req(e, r, sizeof(r));
}

static int map(struct env *e, uint32_t domain, uint64_t start, uint64_t end, uint64_t phys, uint32_t flags)
{
	uint8_t r[36] = { 3 };
	put32(r + 4, domain);
	put64(r + 8, start);
	put64(r + 16, end);
	put64(r + 24, phys);
	put32(r + 32, flags);
	return req(e, r, sizeof(r));
}

static int unmap(struct env *e, uint32_t domain, uint64_t start, uint64_t end)
{
	uint8_t r[28] = { 4 };
	put32(r + 4, domain);
	put64(r + 8, start);
	put64(r + 16, end);
	return req(e, r, sizeof(r));
}

#define RD 1u
#define WR 2u

/* DMA read of 8 bytes at iova through endpoint i: 0 and the value, or the
 * fault reason. */
static int dma_rd(struct env *e, int i, uint64_t iova, uint64_t *val)
{
	struct viommu_fault_record f;
	size_t done;
	int r = viommu_dma_read(e->ep[i], VIOMMU_NO_PASID, iova, val, 8, 0, &done, &f);
	return r == -EFAULT ? (int)f.reason : r;
}

static int dma_wr(struct env *e, int i, uint64_t iova, uint64_t val)
{
	struct viommu_fault_record f;
	size_t done;
	int r = viommu_dma_write(e->ep[i], VIOMMU_NO_PASID, iova, &val, 8, 0, &done, &f);
	return r == -EFAULT ? (int)f.reason : r;
}

static void on_event(void *ctx)
{
	((struct env *)ctx)->events_raised++;
}

static const struct viommu_virtio_iommu_resv msi_resv = {
	.start = 0xfee00000, .end = 0xfeefffff, .subtype = VIOMMU_VIRTIO_IOMMU_RESV_MSI,
};

static int env_init(struct env *e, struct viommu_virtio_iommu_config *vc, const struct viommu_alloc *hooks)
{
	memset(e, 0, sizeof(*e));
	e->ram = calloc(1, RAM_SIZE);
	if (!e->ram)
		return -ENOMEM;
	for (uint32_t i = 0; i < RAM_SIZE / 8; i++)
		memcpy(e->ram + 8 * i, &(uint64_t){ 0x5a00000000000000ull | (uint64_t)i * 8 }, 8);
	struct viommu_mem_region reg = { .gpa = 0, .size = RAM_SIZE, .host = e->ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
	};
	int r = viommu_create(&cfg, hooks, &e->v);
	if (r)
		return r;
	vc->event = on_event;
	vc->event_ctx = e;
	r = viommu_virtio_iommu_create(e->v, vc, hooks, &e->vi);
	if (r)
		return r;
	e->probe_size = vc->probe_size;
	for (int i = 0; i < 3; i++) {
		struct viommu_rid rid = { .bus = 0, .devfn = (uint8_t)((i + 2) << 3) };
		r = viommu_virtio_iommu_add_endpoint(e->vi, (uint32_t)(i + 2) << 3, rid, &e->ep[i]);
		if (r)
			return r;
	}
	return 0;
}

static void env_fini(struct env *e)
{
	viommu_virtio_iommu_destroy(e->vi);
	viommu_destroy(e->v);
	free(e->ram);
}

#define EP(i) ((uint32_t)((i) + 2) << 3)

static uint64_t ram_val(uint64_t gpa)
{
	return 0x5a00000000000000ull | gpa;
}

static void test_config_and_features(void)
{
	check_context("config");
	struct env e;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .resv = &msi_resv, .nr_resv = 1 };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	uint64_t f = viommu_virtio_iommu_device_features(e.vi);
	CHECK_EQ(f, FEAT(INPUT_RANGE) | FEAT(DOMAIN_RANGE) | FEAT(MAP_UNMAP) | FEAT(PROBE) | FEAT(BYPASS_CONFIG));
	uint8_t c[48];
	viommu_virtio_iommu_config_read(e.vi, 0, c, sizeof(c));
	CHECK_EQ(get(c, 8), (1ull << 12) | (1ull << 21) | (1ull << 30));
	CHECK_EQ(get(c + 8, 8), 0);
	CHECK_EQ(get(c + 16, 8), (1ull << 48) - 1);
	CHECK_EQ(get(c + 24, 4), 0);
	CHECK_EQ(get(c + 28, 4), 0xffffffffu);
	CHECK_EQ(get(c + 32, 4), 512);
	CHECK_EQ(c[36], 0);
	CHECK_EQ(get(c + 40, 8), 0); /* beyond the space: zeros */
	/* An unaligned read of part of a field. */
	viommu_virtio_iommu_config_read(e.vi, 17, c, 2);
	CHECK_EQ(get(c, 2), 0xffff);
	CHECK_EQ(vc.input_end, (1ull << 48) - 1);
	CHECK_EQ(vc.probe_size, 512);
	/* Features: only offered ones; the transport's are ignored. */
	CHECK_EQ(viommu_virtio_iommu_set_features(e.vi, FEAT(BYPASS)), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_set_features(e.vi, FEAT(MMIO)), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_set_features(e.vi, f | (1ull << 32) | (1ull << 33)), 0);
	/* The same requester or endpoint twice. */
	viommu_dev *d;
	CHECK_EQ(viommu_virtio_iommu_add_endpoint(e.vi, EP(0), (struct viommu_rid){ .devfn = 0x80 }, &d), -EEXIST);
	CHECK_EQ(viommu_virtio_iommu_add_endpoint(e.vi, 7, (struct viommu_rid){ .devfn = 2 << 3 }, &d), -EEXIST);
	env_fini(&e);

	/* Bad configurations. */
	viommu *v;
	struct viommu_config cfg = { .size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem) } };
	CHECK_EQ(viommu_create(&cfg, NULL, &v), 0);
	viommu_virtio_iommu *vi;
	struct viommu_virtio_iommu_config bad = { .size = sizeof(bad), .domain_start = 5, .domain_end = 4 };
	CHECK_EQ(viommu_virtio_iommu_create(v, &bad, NULL, &vi), -EINVAL);
	CHECK(vi == NULL);
	struct viommu_virtio_iommu_resv r2 = { .start = 2, .end = 1 };
	bad = (struct viommu_virtio_iommu_config){ .size = sizeof(bad), .resv = &r2, .nr_resv = 1 };
	CHECK_EQ(viommu_virtio_iommu_create(v, &bad, NULL, &vi), -EINVAL);
	bad = (struct viommu_virtio_iommu_config){ .size = 4 };
	CHECK_EQ(viommu_virtio_iommu_create(v, &bad, NULL, &vi), -EINVAL);
	bad = (struct viommu_virtio_iommu_config){ .size = sizeof(bad) };
	CHECK_EQ(viommu_virtio_iommu_create(v, &bad, NULL, &vi), 0);
	viommu_virtio_iommu *vi2;
	CHECK_EQ(viommu_virtio_iommu_create(v, &bad, NULL, &vi2), -EBUSY);
	viommu_virtio_iommu_destroy(vi);
	viommu_virtio_iommu_destroy(NULL);
	viommu_destroy(v);
}

static void test_map_unmap(void)
{
	check_context("map/unmap");
	struct env e;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc) };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP) | FEAT(PROBE));
	uint64_t val = 0;

	/* Before ATTACH: blocked, and a fault event says so. */
	CHECK_EQ(dma_rd(&e, 0, 0x1000, &val), VIOMMU_FAULT_BLOCKED);
	uint8_t ev[VIOMMU_VIRTIO_IOMMU_EVENT_SIZE];
	CHECK_EQ(e.events_raised, 1);
	if (CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), 0)) {
		CHECK_EQ(ev[0], 1);                       /* R_DOMAIN */
		CHECK_EQ(get(ev + 4, 4), (1u << 8) | 1u); /* ADDRESS | READ */
		CHECK_EQ(get(ev + 8, 4), EP(0));
		CHECK_EQ(get(ev + 16, 8), 0x1000);
	}
	CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), -EAGAIN);

	CHECK_EQ(attach(&e, 1, EP(0), 0), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x100000, &val), VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), 0);
	CHECK_EQ(ev[0], 2); /* R_MAPPING */
	CHECK_EQ(map(&e, 1, 0x100000, 0x10ffff, 0x20000, RD), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x100008, &val), 0);
	CHECK_EQ(val, ram_val(0x20008));
	CHECK_EQ(dma_rd(&e, 0, 0x10fff8, &val), 0);
	CHECK_EQ(val, ram_val(0x2fff8));
	/* Read-only: a write faults as a mapping fault with WRITE set. */
	CHECK_EQ(dma_wr(&e, 0, 0x100000, 1), VIOMMU_FAULT_PERMISSION);
	if (CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), 0)) {
		CHECK_EQ(ev[0], 2);
		CHECK_EQ(get(ev + 4, 4), (1u << 8) | 2u);
	}
	/* Write-only works too (no READ needed to express it). */
	CHECK_EQ(map(&e, 1, 0x200000, 0x200fff, 0x30000, WR), S_OK);
	CHECK_EQ(dma_wr(&e, 0, 0x200010, 0x1234), 0);
	CHECK_EQ(get(e.ram + 0x30010, 8), 0x1234);
	CHECK_EQ(dma_rd(&e, 0, 0x200010, &val), VIOMMU_FAULT_PERMISSION);

	/* MAP errors: overlap, alignment, range, domain, flags. */
	CHECK_EQ(map(&e, 1, 0x10f000, 0x110fff, 0x40000, RD), S_INVAL);
	CHECK_EQ(map(&e, 1, 0xff000, 0x100fff, 0x40000, RD), S_INVAL);
	CHECK_EQ(map(&e, 1, 0x300800, 0x300fff, 0x40000, RD), S_RANGE);
	CHECK_EQ(map(&e, 1, 0x300000, 0x3007ff, 0x40000, RD), S_RANGE);
	CHECK_EQ(map(&e, 1, 0x300000, 0x300fff, 0x40010, RD), S_RANGE);
	CHECK_EQ(map(&e, 1, 1ull << 48, (1ull << 48) + 0xfff, 0x40000, RD), S_RANGE);
	CHECK_EQ(map(&e, 1, 0x300000, 0x2fffff, 0x40000, RD), S_INVAL);
	CHECK_EQ(map(&e, 1, 0, UINT64_MAX, 0, RD), S_RANGE);
	CHECK_EQ(map(&e, 1, 0x300000, 0x300fff, UINT64_MAX - 0xfff, RD), S_RANGE);
	CHECK_EQ(map(&e, 9, 0x300000, 0x300fff, 0x40000, RD), S_NOENT);
	CHECK_EQ(map(&e, 1, 0x300000, 0x300fff, 0x40000, RD | 4u), S_INVAL); /* MMIO not negotiated */
	CHECK_EQ(map(&e, 1, 0x300000, 0x300fff, 0x40000, RD | 8u), S_INVAL);
	/* A mapping with no permission: kept (UNMAP finds it), every access
	 * faults, and it still blocks an overlapping MAP. */
	CHECK_EQ(map(&e, 1, 0x400000, 0x400fff, 0x40000, 0), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x400000, &val), VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(map(&e, 1, 0x400000, 0x400fff, 0x40000, RD), S_INVAL);

	/* UNMAP: a split is RANGE and removes nothing. */
	CHECK_EQ(unmap(&e, 1, 0x100000, 0x100fff), S_RANGE);
	CHECK_EQ(unmap(&e, 1, 0x0ff000, 0x100fff), S_RANGE);
	CHECK_EQ(dma_rd(&e, 0, 0x100000, &val), 0);
	/* Nothing there: OK. */
	CHECK_EQ(unmap(&e, 1, 0x900000, 0x9fffff), S_OK);
	CHECK_EQ(unmap(&e, 1, 0x900000, 0x8fffff), S_INVAL);
	CHECK_EQ(unmap(&e, 7, 0x100000, 0x10ffff), S_NOENT);
	/* The IOTLB holds 0x100000 now (read above): an UNMAP that covers
	 * two mappings and the holes between them drops both, cached
	 * translations included, before its status is written. */
	CHECK_EQ(dma_rd(&e, 0, 0x10f000, &val), 0);
	CHECK_EQ(unmap(&e, 1, 0x0f0000, 0x2fffff), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x100000, &val), VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(dma_rd(&e, 0, 0x10f000, &val), VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(dma_wr(&e, 0, 0x200010, 1), VIOMMU_FAULT_NOT_PRESENT);
	/* The range is free again. */
	CHECK_EQ(map(&e, 1, 0x100000, 0x1fffff, 0x200000, RD | WR), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x1ffff8, &val), 0);
	CHECK_EQ(val, ram_val(0x2ffff8));

	struct viommu_virtio_iommu_stats st;
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 1);
	CHECK_EQ(st.mappings, 2); /* the 2 MiB one and the no-permission one */
	CHECK_EQ(st.maps, 4);
	CHECK_EQ(st.unmaps, 2); /* the one of nothing counts */
	CHECK_EQ(st.status[S_RANGE], 8);
	env_fini(&e);
}

static void test_domains(void)
{
	check_context("domains");
	struct env e;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .domain_start = 1, .domain_end = 10 };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP) | FEAT(DOMAIN_RANGE));
	uint64_t val;
	struct viommu_virtio_iommu_stats st;

	CHECK_EQ(attach(&e, 11, EP(0), 0), S_RANGE);
	CHECK_EQ(attach(&e, 0, EP(0), 0), S_RANGE);
	CHECK_EQ(attach(&e, 1, 99, 0), S_NOENT);
	CHECK_EQ(attach(&e, 1, EP(0), 1), S_INVAL); /* bypass flag, not negotiated */
	CHECK_EQ(attach(&e, 1, EP(0), 2), S_INVAL);
	uint8_t r[20] = { 1 };
	put32(r + 4, 1);
	put32(r + 8, EP(0));
	r[16] = 1; /* reserved */
	CHECK_EQ(req(&e, r, sizeof(r)), S_INVAL);
	r[16] = 0;
	r[2] = 1; /* head reserved */
	CHECK_EQ(req(&e, r, sizeof(r)), S_INVAL);
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 0);

	/* Two endpoints share a domain and its mappings. */
	CHECK_EQ(attach(&e, 1, EP(0), 0), S_OK);
	CHECK_EQ(attach(&e, 1, EP(0), 0), S_OK); /* again: nothing changes */
	CHECK_EQ(attach(&e, 1, EP(1), 0), S_OK);
	CHECK_EQ(map(&e, 1, 0x10000, 0x10fff, 0x50000, RD), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x10000, &val), 0);
	CHECK_EQ(dma_rd(&e, 1, 0x10000, &val), 0);
	CHECK_EQ(dma_rd(&e, 2, 0x10000, &val), VIOMMU_FAULT_BLOCKED);
	/* DETACH: wrong domain, unknown domain, unknown endpoint. */
	CHECK_EQ(detach(&e, 2, EP(0)), S_INVAL); /* no such domain (5.13.6.4: INVAL) */
	CHECK_EQ(detach(&e, 1, EP(2)), S_INVAL);
	CHECK_EQ(detach(&e, 1, 77), S_NOENT);
	CHECK_EQ(detach(&e, 1, EP(0)), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x10000, &val), VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(dma_rd(&e, 1, 0x10000, &val), 0);
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 1);
	/* Moving the last endpoint ends domain 1 and its mappings. */
	CHECK_EQ(attach(&e, 2, EP(1), 0), S_OK);
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 1);
	CHECK_EQ(st.mappings, 0);
	CHECK_EQ(dma_rd(&e, 1, 0x10000, &val), VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(map(&e, 1, 0x10000, 0x10fff, 0x50000, RD), S_NOENT);
	CHECK_EQ(attach(&e, 1, EP(0), 0), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x10000, &val), VIOMMU_FAULT_NOT_PRESENT); /* a new domain 1 */
	CHECK_EQ(detach(&e, 1, EP(0)), S_OK);
	CHECK_EQ(detach(&e, 2, EP(1)), S_OK);
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 0);

	/* Bypass: per domain (ATTACH_F_BYPASS) and for unattached endpoints
	 * (the config field), both only with BYPASS_CONFIG negotiated. */
	uint8_t one = 1;
	viommu_virtio_iommu_config_write(e.vi, 36, &one, 1);
	CHECK_EQ(dma_rd(&e, 2, 0x10000, &val), VIOMMU_FAULT_BLOCKED); /* not negotiated: ignored */
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP) | FEAT(BYPASS_CONFIG));
	CHECK_EQ(attach(&e, 3, EP(0), 1), S_OK);
	CHECK_EQ(dma_rd(&e, 0, 0x10000, &val), 0);
	CHECK_EQ(val, ram_val(0x10000));
	CHECK_EQ(map(&e, 3, 0x10000, 0x10fff, 0x50000, RD), S_INVAL);
	CHECK_EQ(unmap(&e, 3, 0x10000, 0x10fff), S_INVAL);
	CHECK_EQ(attach(&e, 3, EP(1), 0), S_INVAL); /* domain 3 is a bypass one */
	viommu_virtio_iommu_config_write(e.vi, 32, (uint8_t[8]){ 0, 0, 0, 0, 1, 0, 0, 0 }, 8);
	uint8_t c[40];
	viommu_virtio_iommu_config_read(e.vi, 0, c, sizeof(c));
	CHECK_EQ(c[36], 1);
	CHECK_EQ(get(c + 32, 4), 512); /* probe_size is read-only */
	CHECK_EQ(dma_rd(&e, 2, 0x10008, &val), 0);
	CHECK_EQ(val, ram_val(0x10008));
	viommu_virtio_iommu_config_write(e.vi, 36, (uint8_t[1]){ 0 }, 1);
	CHECK_EQ(dma_rd(&e, 2, 0x10008, &val), VIOMMU_FAULT_BLOCKED);
	viommu_virtio_iommu_config_write(e.vi, 36, &one, 1);
	/* Reset: everything blocked, no domain, bypass 0, features gone. */
	viommu_virtio_iommu_reset(e.vi);
	viommu_virtio_iommu_config_read(e.vi, 36, c, 1);
	CHECK_EQ(c[0], 0);
	CHECK_EQ(dma_rd(&e, 0, 0x10000, &val), VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(dma_rd(&e, 2, 0x10000, &val), VIOMMU_FAULT_BLOCKED);
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.domains, 0);
	CHECK_EQ(attach(&e, 3, EP(0), 1), S_INVAL);
	env_fini(&e);
}

static void test_probe_and_malformed(void)
{
	check_context("probe");
	struct env e;
	struct viommu_virtio_iommu_resv resv[2] = {
		msi_resv, { .start = 0x1000000, .end = 0x1ffffff, .subtype = VIOMMU_VIRTIO_IOMMU_RESV_RESERVED },
	};
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .resv = resv, .nr_resv = 2, .probe_size = 32 };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	CHECK_EQ(vc.probe_size, 48); /* raised to what two properties need */
	uint8_t p[72] = { 5 };
	put32(p + 4, EP(1));
	uint8_t out[256];
	size_t w;
	/* Not negotiated: UNSUPP. */
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), out, 52, &w), 0);
	CHECK_EQ(w, 4);
	CHECK_EQ(out[0], S_UNSUPP);
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP) | FEAT(PROBE));
	memset(out, 0xee, sizeof(out));
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), out, 52, &w), 0);
	CHECK_EQ(w, 52);
	CHECK_EQ(out[48], S_OK);
	CHECK_EQ(get(out, 2), 1);       /* RESV_MEM */
	CHECK_EQ(get(out + 2, 2), 20);  /* its length */
	CHECK_EQ(out[4], 1);            /* MSI */
	CHECK_EQ(get(out + 8, 8), 0xfee00000);
	CHECK_EQ(get(out + 16, 8), 0xfeefffff);
	CHECK_EQ(get(out + 24, 2), 1);
	CHECK_EQ(out[28], 0);           /* RESERVED */
	CHECK_EQ(get(out + 32, 8), 0x1000000);
	CHECK_EQ(get(out + 40, 8), 0x1ffffff);
	/* With a larger probe_size the rest is zero (a NONE property). */
	env_fini(&e);
	vc = (struct viommu_virtio_iommu_config){ .size = sizeof(vc), .resv = resv, .nr_resv = 1 };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	viommu_virtio_iommu_set_features(e.vi, FEAT(PROBE));
	uint8_t big[512 + 4];
	memset(big, 0xee, sizeof(big));
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), big, sizeof(big), &w), 0);
	CHECK_EQ(w, 516);
	CHECK_EQ(big[512], S_OK);
	int zero = 1;
	for (int i = 24; i < 512; i++)
		zero &= big[i] == 0;
	CHECK(zero);
	/* Unknown endpoint; reserved bytes set; writable part too short. */
	put32(p + 4, 5);
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), big, sizeof(big), &w), 0);
	CHECK_EQ(big[512], S_NOENT);
	put32(p + 4, EP(1));
	p[40] = 1;
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), big, sizeof(big), &w), 0);
	CHECK_EQ(big[512], S_INVAL);
	p[40] = 0;
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, p, sizeof(p), big, 100, &w), 0);
	CHECK_EQ(w, 100);
	CHECK_EQ(big[96], S_INVAL);

	/* Malformed requests. */
	check_context("malformed");
	uint8_t m[64] = { 0 };
	CHECK_EQ(req(&e, m, 0), S_UNSUPP);
	m[0] = 0;
	CHECK_EQ(req(&e, m, 20), S_UNSUPP);
	m[0] = 6;
	CHECK_EQ(req(&e, m, 20), S_UNSUPP);
	m[0] = 0xff;
	CHECK_EQ(req(&e, m, 20), S_UNSUPP);
	for (uint8_t t = 1; t <= 4; t++) {
		m[0] = t;
		CHECK_EQ(req(&e, m, 3), S_INVAL);
		CHECK_EQ(req(&e, m, 40), S_INVAL);
	}
	m[0] = 1;
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, m, 20, out, 3, &w), -EINVAL);
	CHECK_EQ(w, 0);
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, NULL, 20, out, 4, &w), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_request(NULL, m, 20, out, 4, &w), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_request(e.vi, m, 20, NULL, 4, &w), -EINVAL);
	env_fini(&e);
}

static void test_limits_and_events(void)
{
	check_context("limits");
	struct env e;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .max_mappings = 3, .events = 4 };
	if (!CHECK_EQ(env_init(&e, &vc, NULL), 0))
		return;
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP));
	CHECK_EQ(attach(&e, 1, EP(0), 0), S_OK);
	CHECK_EQ(attach(&e, 2, EP(1), 0), S_OK);
	CHECK_EQ(map(&e, 1, 0x1000, 0x1fff, 0x1000, RD), S_OK);
	CHECK_EQ(map(&e, 2, 0x1000, 0x1fff, 0x1000, RD), S_OK);
	CHECK_EQ(map(&e, 1, 0x2000, 0x2fff, 0x1000, RD), S_OK);
	CHECK_EQ(map(&e, 1, 0x3000, 0x3fff, 0x1000, RD), S_NOMEM);
	CHECK_EQ(unmap(&e, 2, 0, 0xffffff), S_OK);
	CHECK_EQ(map(&e, 1, 0x3000, 0x3fff, 0x1000, RD), S_OK);
	/* A domain's end frees its share of the limit. */
	CHECK_EQ(detach(&e, 1, EP(0)), S_OK);
	CHECK_EQ(map(&e, 2, 0x1000, 0x1fff, 0x1000, RD), S_OK);

	/* Ten faults into four event slots: four events, six lost, counted;
	 * a raise for each record stored (a lost raise is made good by the
	 * next one), none for the lost ones. */
	uint64_t val;
	e.events_raised = 0;
	for (int i = 0; i < 10; i++)
		CHECK_EQ(dma_rd(&e, 2, 0x1000 * (uint64_t)i, &val), VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(e.events_raised, 4);
	uint8_t ev[VIOMMU_VIRTIO_IOMMU_EVENT_SIZE];
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), 0);
		CHECK_EQ(get(ev + 16, 8), 0x1000 * (uint64_t)i);
		CHECK_EQ(get(ev + 8, 4), EP(2));
	}
	CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), -EAGAIN);
	struct viommu_virtio_iommu_stats st;
	viommu_virtio_iommu_get_stats(e.vi, &st);
	CHECK_EQ(st.events, 4);
	CHECK_EQ(st.events_lost, 6);
	CHECK_EQ(dma_rd(&e, 2, 0x1000, &val), VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(e.events_raised, 5);
	/* A requester that is not an endpoint: its faults are not events. */
	viommu_dev *other;
	CHECK_EQ(viommu_dev_create(e.v, (struct viommu_rid){ .bus = 3 }, &other), 0);
	struct viommu_fault_record f;
	size_t done;
	CHECK_EQ(viommu_dma_read(other, VIOMMU_NO_PASID, 0, &val, 8, 0, &done, &f), -EFAULT);
	CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), 0); /* the endpoint's */
	CHECK_EQ(viommu_virtio_iommu_pop_event(e.vi, ev), -EAGAIN);
	viommu_dev_destroy(other);
	env_fini(&e);
}

/* One whole scenario. When memory runs out the first request that fails
 * must say NOMEM; what follows may fail otherwise (a domain that could not
 * be made is not there: NOENT), but nothing may crash or leak. Returns 0 if
 * it went through that way. */
static int scenario(const struct viommu_alloc *hooks, int *saw_nomem)
{
	struct env e;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .resv = &msi_resv, .nr_resv = 1 };
	int r = env_init(&e, &vc, hooks);
	if (r) {
		if (e.vi || e.v)
			env_fini(&e);
		else
			free(e.ram);
		return r == -ENOMEM ? 0 : r;
	}
	viommu_virtio_iommu_set_features(e.vi, FEAT(MAP_UNMAP) | FEAT(BYPASS_CONFIG));
	int bad = 0;
#define ST(x)                                     \
	do {                                      \
		int s_ = (x);                     \
		if (s_ != S_OK && !*saw_nomem) {  \
			if (s_ == S_NOMEM)        \
				*saw_nomem = 1;   \
			else                      \
				bad = 1;          \
		}                                 \
	} while (0)
	ST(attach(&e, 1, EP(0), 0));
	ST(attach(&e, 1, EP(1), 0));
	for (uint64_t i = 0; i < 40; i++)
		ST(map(&e, 1, 0x100000 + i * 0x3000, 0x100000 + i * 0x3000 + 0x1fff, i * 0x2000, RD | WR));
	ST(map(&e, 1, 0x40000000, 0x40000000 + 0x3fffff, 0, RD));
	ST(attach(&e, 2, EP(1), 1));
	ST(unmap(&e, 1, 0x100000, 0x100000 + 20 * 0x3000 - 1));
	ST(attach(&e, 4, EP(0), 0));
	ST(map(&e, 4, 0x1000, 0x1fff, 0x1000, RD));
	ST(detach(&e, 2, EP(1)));
#undef ST
	env_fini(&e);
	return bad;
}

static void test_alloc_failures(void)
{
	check_context("allocation failures");
	struct test_alloc ta;
	ta_init(&ta, 0);
	int nomem = 0;
	CHECK_EQ(scenario(&ta.hooks, &nomem), 0);
	CHECK_EQ(nomem, 0);
	unsigned long total = ta.calls;
	CHECK_EQ(ta.bytes, 0);
	CHECK(total > 10);
	unsigned long saw = 0;
	for (unsigned long n = 1; n <= total; n++) {
		check_context("allocation failures: call %lu of %lu", n, total);
		ta_init(&ta, n);
		nomem = 0;
		CHECK_EQ(scenario(&ta.hooks, &nomem), 0);
		CHECK_EQ(ta.bytes, 0);
		CHECK_EQ(ta.bad_frees, 0);
		saw += nomem;
		if (ta.bytes)
			ta_release(&ta);
	}
	check_context("allocation failures");
	CHECK(saw > 0);
	ta_release(&ta);
}

/* The ACPI VIOT table (Debian's iasl, 20200925, predates VIOT: the layout
 * is checked here byte by byte; Linux's parser reads it in the guest tests). */
static void test_viot(void)
{
	check_context("VIOT");
	uint8_t t[256];
	struct viommu_rid iommu = { .segment = 0, .bus = 0, .devfn = 0x10 };
	struct viommu_rid eps[2] = { { 0, 0, 0x08 }, { 0, 1, 0x1a } };
	int n = viommu_virtio_iommu_viot(iommu, eps, 2, t, sizeof(t));
	if (!CHECK_EQ(n, 48 + 16 + 2 * 24))
		return;
	uint8_t sum = 0;
	for (int i = 0; i < n; i++)
		sum = (uint8_t)(sum + t[i]);
	CHECK_EQ(sum, 0);
	CHECK(!memcmp(t, "VIOT", 4));
	CHECK_EQ(get(t + 4, 4), (uint64_t)n);
	CHECK_EQ(get(t + 36, 2), 3);  /* node count */
	CHECK_EQ(get(t + 38, 2), 48); /* node offset */
	/* The virtio-iommu PCI node. */
	CHECK_EQ(t[48], 3);
	CHECK_EQ(get(t + 50, 2), 16);
	CHECK_EQ(get(t + 52, 2), 0);    /* segment */
	CHECK_EQ(get(t + 54, 2), 0x10); /* BDF */
	/* PCI range nodes: endpoint ID = BDF, output node = the IOMMU's. */
	const uint8_t *r = t + 64;
	CHECK_EQ(r[0], 1);
	CHECK_EQ(get(r + 2, 2), 24);
	CHECK_EQ(get(r + 4, 4), 0x08);
	CHECK_EQ(get(r + 12, 2), 0x08);
	CHECK_EQ(get(r + 14, 2), 0x08);
	CHECK_EQ(get(r + 16, 2), 48);
	r += 24;
	CHECK_EQ(get(r + 4, 4), 0x11a);
	CHECK_EQ(get(r + 12, 2), 0x11a);
	CHECK_EQ(get(r + 14, 2), 0x11a);
	/* Too small, bad arguments. */
	CHECK_EQ(viommu_virtio_iommu_viot(iommu, eps, 2, t, 111), -ENOSPC);
	CHECK_EQ(viommu_virtio_iommu_viot(iommu, NULL, 2, t, sizeof(t)), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_viot(iommu, eps, 2, NULL, sizeof(t)), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_viot(iommu, eps, 257, t, sizeof(t)), -EINVAL);
	CHECK_EQ(viommu_virtio_iommu_viot(iommu, NULL, 0, t, sizeof(t)), 64);
}

int main(void)
{
	test_viot();
	test_config_and_features();
	test_map_unmap();
	test_domains();
	test_probe_and_malformed();
	test_limits_and_events();
	test_alloc_failures();
	return check_report("test_virtio_iommu");
}
