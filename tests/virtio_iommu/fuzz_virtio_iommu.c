/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the virtio-iommu front-end driven by a hostile driver. The
 * input is a sequence of requests (ATTACH, DETACH, MAP, UNMAP, PROBE built
 * from a few fields, and raw byte strings), DMA through the endpoints,
 * config writes of the bypass byte, resets and event pops (format:
 * fuzz_virtio_iommu_input.h). Guest RAM is its own heap block of exactly its
 * size, so ASan sees any access outside it.
 *
 * The oracle is a second, naive model of the specification's semantics
 * (linear lists, no page table): every structured request must get the
 * status the model gives, and every DMA must succeed or fail as the model
 * says (the fault reason and the bytes done), reading or writing the guest
 * RAM the model says. A raw request that changed state (status OK of a type
 * that changes it) ends the comparison for the rest of the input; the
 * invariants below still hold:
 *  - a request always gets its tail (written 4, or probe_size + 4 for a
 *    PROBE with room for it) and a status the specification defines;
 *  - a fault event has a known reason, only known flags, zero reserved
 *    bytes, and an endpoint that exists;
 *  - the counters agree with the model (domains, mappings).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>
#include <viommu/virtio_iommu.h>

#include "fuzz_virtio_iommu_input.h"
#include "le_bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET "fuzz_virtio_iommu.c"
#include "fuzz_check.h"

enum { S_OK, S_IOERR, S_UNSUPP, S_DEVERR, S_INVAL, S_RANGE, S_NOENT, S_FAULT, S_NOMEM };

#define PAGE 4096ull
#define INPUT_END ((1ull << 48) - 1)
#define MAX_MAPS 512
#define MAX_DOMS 8

struct mmap_ {
	uint64_t start, end, phys;
	uint32_t flags;
};

struct mdom {
	int used;
	uint32_t id;
	int bypass;
	unsigned eps;
	struct mmap_ maps[MAX_MAPS];
	unsigned nr;
};

struct model {
	uint64_t features;
	uint32_t dom_lo, dom_hi;
	uint8_t bypass;
	int ep_dom[FZ_ENDPOINTS]; /* index into doms, -1: none */
	struct mdom doms[MAX_DOMS];
	int valid; /* still comparable */
};

struct fz {
	uint8_t *ram;
	viommu *v;
	viommu_virtio_iommu *vi;
	viommu_dev *ep[FZ_ENDPOINTS];
	uint32_t probe_size;
	struct model m;
	const uint8_t *p, *end;
};

static const uint32_t ep_id[FZ_ENDPOINTS + 1] = { 0x08, 0x10, 0x18, 0x77 };

static int take(struct fz *z, void *out, size_t n)
{
	if ((size_t)(z->end - z->p) < n)
		return -1;
	memcpy(out, z->p, n);
	z->p += n;
	return 0;
}

static int feat(const struct model *m, unsigned bit)
{
	return (m->features >> bit) & 1;
}

static int m_dom(struct model *m, uint32_t id)
{
	for (int i = 0; i < MAX_DOMS; i++)
		if (m->doms[i].used && m->doms[i].id == id)
			return i;
	return -1;
}

static unsigned m_nr_doms(const struct model *m, unsigned *maps)
{
	unsigned n = 0;
	*maps = 0;
	for (int i = 0; i < MAX_DOMS; i++)
		if (m->doms[i].used) {
			n++;
			*maps += m->doms[i].nr;
		}
	return n;
}

/* Send a request; returns the status (checked for shape). */
static uint8_t send(struct fz *z, const uint8_t *in, size_t in_len, size_t out_len, uint8_t *out)
{
	size_t written = 12345;
	int r = viommu_virtio_iommu_request(z->vi, in, in_len, out, out_len, &written);
	if (out_len < 4) {
		CHECK(r == -EINVAL && written == 0, "a request with no room for its tail: %d, %zu", r, written);
		return 0xff;
	}
	CHECK(r == 0, "request failed: %d", r);
	CHECK(written >= 4 && written <= out_len, "written %zu of %zu", written, out_len);
	uint8_t st = out[written - 4];
	CHECK(st <= S_NOMEM, "status %u", st);
	CHECK(out[written - 3] == 0 && out[written - 2] == 0 && out[written - 1] == 0, "tail reserved bytes");
	if (in_len && in[0] == 5 && in_len == 72 && out_len >= (size_t)z->probe_size + 4 && feat(&z->m, 4))
		CHECK(written == (size_t)z->probe_size + 4, "PROBE wrote %zu", written);
	else if (!(in_len == 72 && in[0] == 5 && feat(&z->m, 4)))
		CHECK(written == 4, "written %zu for type %u", written, in_len ? in[0] : 0);
	return st;
}

static void expect(struct fz *z, uint8_t got, uint8_t want, const char *what)
{
	if (z->m.valid)
		CHECK(got == want, "%s: status %u, the model says %u", what, got, want);
}

static int m_attach(struct model *m, uint32_t domain, unsigned e, uint32_t flags, int rsvd)
{
	uint32_t known = feat(m, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG) ? 1u : 0u;
	if (rsvd || (flags & ~known))
		return S_INVAL;
	if (e >= FZ_ENDPOINTS)
		return S_NOENT;
	if (domain < m->dom_lo || domain > m->dom_hi)
		return S_RANGE;
	int bypass = flags & 1;
	int d = m_dom(m, domain);
	if (d >= 0 && m->doms[d].bypass != bypass)
		return S_INVAL;
	if (d >= 0 && m->ep_dom[e] == d)
		return S_OK;
	if (d < 0) {
		for (d = 0; d < MAX_DOMS && m->doms[d].used; d++)
			;
		CHECK(d < MAX_DOMS, "model out of domains");
		memset(&m->doms[d], 0, sizeof(m->doms[d]));
		m->doms[d].used = 1;
		m->doms[d].id = domain;
		m->doms[d].bypass = bypass;
	}
	int old = m->ep_dom[e];
	m->ep_dom[e] = d;
	m->doms[d].eps++;
	if (old >= 0 && --m->doms[old].eps == 0)
		m->doms[old].used = 0;
	return S_OK;
}

static int m_detach(struct model *m, uint32_t domain, unsigned e)
{
	if (e >= FZ_ENDPOINTS)
		return S_NOENT;
	int d = m_dom(m, domain);
	if (d < 0 || m->ep_dom[e] != d)
		return S_INVAL;
	m->ep_dom[e] = -1;
	if (--m->doms[d].eps == 0)
		m->doms[d].used = 0;
	return S_OK;
}

static int m_map(struct model *m, uint32_t domain, uint64_t start, uint64_t end, uint64_t phys, uint32_t flags)
{
	if (flags & ~3u)
		return S_INVAL;
	int d = m_dom(m, domain);
	if (d < 0)
		return S_NOENT;
	struct mdom *md = &m->doms[d];
	if (md->bypass || end < start)
		return S_INVAL;
	if ((start & (PAGE - 1)) || (phys & (PAGE - 1)) || ((end + 1) & (PAGE - 1)) || end > INPUT_END)
		return S_RANGE;
	for (unsigned i = 0; i < md->nr; i++)
		if (md->maps[i].start <= end && start <= md->maps[i].end)
			return S_INVAL;
	if (md->nr == MAX_MAPS)
		return -1; /* beyond the model: stop comparing */
	md->maps[md->nr++] = (struct mmap_){ start, end, phys, flags };
	return S_OK;
}

static int m_unmap(struct model *m, uint32_t domain, uint64_t start, uint64_t end)
{
	int d = m_dom(m, domain);
	if (d < 0)
		return S_NOENT;
	struct mdom *md = &m->doms[d];
	if (md->bypass || end < start)
		return S_INVAL;
	for (unsigned i = 0; i < md->nr; i++) {
		const struct mmap_ *x = &md->maps[i];
		if (x->start <= end && start <= x->end && (x->start < start || x->end > end))
			return S_RANGE;
	}
	for (unsigned i = 0; i < md->nr;) {
		if (md->maps[i].start >= start && md->maps[i].end <= end)
			md->maps[i] = md->maps[--md->nr];
		else
			i++;
	}
	return S_OK;
}

/* The model's translation of one page-aligned address: 0 with *out, or a
 * fault reason. */
static int m_translate(const struct model *m, unsigned e, uint64_t iova, int write, uint64_t *out)
{
	int d = m->ep_dom[e];
	if (d < 0) {
		if (feat(m, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG) && m->bypass) {
			*out = iova;
			return 0;
		}
		return VIOMMU_FAULT_BLOCKED;
	}
	const struct mdom *md = &m->doms[d];
	if (md->bypass) {
		*out = iova;
		return 0;
	}
	if (iova > INPUT_END)
		return VIOMMU_FAULT_ADDR_WIDTH;
	for (unsigned i = 0; i < md->nr; i++) {
		const struct mmap_ *x = &md->maps[i];
		if (iova < x->start || iova > x->end)
			continue;
		if (!(x->flags & 3))
			return VIOMMU_FAULT_NOT_PRESENT;
		if (!(x->flags & (write ? 2u : 1u)))
			return VIOMMU_FAULT_PERMISSION;
		*out = x->phys + (iova - x->start);
		return 0;
	}
	return VIOMMU_FAULT_NOT_PRESENT;
}

static void op_dma(struct fz *z)
{
	uint8_t e, len1, w;
	uint16_t page, off;
	if (take(z, &e, 1) || take(z, &page, 2) || take(z, &off, 2) || take(z, &len1, 1) || take(z, &w, 1))
		return;
	e %= FZ_ENDPOINTS;
	uint64_t iova = (uint64_t)(page % 1024) * PAGE + off % PAGE;
	size_t len = (size_t)len1 + 1;
	int write = w & 1;
	uint8_t buf[256];
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(0xa0 + i);
	struct viommu_fault_record f;
	size_t done = 0;
	int r = write ? viommu_dma_write(z->ep[e], VIOMMU_NO_PASID, iova, buf, len, 0, &done, &f)
		      : viommu_dma_read(z->ep[e], VIOMMU_NO_PASID, iova, buf, len, 0, &done, &f);
	CHECK(r == 0 || r == -EFAULT, "DMA returned %d", r);
	CHECK(done <= len, "done %zu of %zu", done, len);
	if (r == -EFAULT)
		CHECK(f.reason > VIOMMU_FAULT_NONE && f.reason < VIOMMU_FAULT_REASON_COUNT, "reason %d", f.reason);
	if (!z->m.valid)
		return;
	/* The model: page by page, up to the first failure. */
	size_t want_done = 0;
	int want_reason = 0;
	for (size_t pos = 0; pos < len;) {
		uint64_t a = iova + pos, out;
		size_t chunk = (size_t)(PAGE - (a & (PAGE - 1)));
		if (chunk > len - pos)
			chunk = len - pos;
		int reason = m_translate(&z->m, e, a & ~(PAGE - 1), write, &out);
		if (!reason && ((out >> 12) >= FZ_RAM_PAGES))
			reason = VIOMMU_FAULT_DMA_TARGET;
		if (reason) {
			want_reason = reason;
			break;
		}
		uint64_t pa = out + (a & (PAGE - 1));
		if (r == 0 || pos + chunk <= done) {
			if (write)
				CHECK(memcmp(z->ram + pa, buf + pos, chunk) == 0, "write of iova %#llx not at %#llx",
				      (unsigned long long)a, (unsigned long long)pa);
			else
				CHECK(memcmp(z->ram + pa, buf + pos, chunk) == 0, "read of iova %#llx not from %#llx",
				      (unsigned long long)a, (unsigned long long)pa);
		}
		pos += chunk;
		want_done = pos;
	}
	if (want_reason) {
		CHECK(r == -EFAULT, "DMA at %#llx (+%zu) succeeded; the model says reason %d", (unsigned long long)iova,
		      len, want_reason);
		CHECK((int)f.reason == want_reason, "DMA at %#llx: reason %d, the model says %d",
		      (unsigned long long)iova, f.reason, want_reason);
		CHECK(done == want_done, "DMA at %#llx: done %zu, the model says %zu", (unsigned long long)iova, done,
		      want_done);
	} else {
		CHECK(r == 0, "DMA at %#llx (+%zu) faulted (reason %d); the model says it succeeds",
		      (unsigned long long)iova, len, f.reason);
	}
}

static void op_events(struct fz *z)
{
	uint8_t ev[VIOMMU_VIRTIO_IOMMU_EVENT_SIZE];
	for (int n = 0; n < 4096; n++) {
		int r = viommu_virtio_iommu_pop_event(z->vi, ev);
		if (r == -EAGAIN)
			return;
		CHECK(r == 0, "pop_event %d", r);
		CHECK(ev[0] <= 2, "event reason %u", ev[0]);
		CHECK(!ev[1] && !ev[2] && !ev[3] && !get(ev + 12, 4), "event reserved bytes");
		CHECK(!(get(ev + 4, 4) & ~0x107u), "event flags %#llx", (unsigned long long)get(ev + 4, 4));
		uint32_t id = (uint32_t)get(ev + 8, 4);
		CHECK(id == ep_id[0] || id == ep_id[1] || id == ep_id[2], "event endpoint %#x", id);
	}
	FAIL("more than 4096 events waiting");
}

static void check_counts(struct fz *z)
{
	if (!z->m.valid)
		return;
	struct viommu_virtio_iommu_stats st;
	viommu_virtio_iommu_get_stats(z->vi, &st);
	unsigned maps, doms = m_nr_doms(&z->m, &maps);
	CHECK(st.domains == doms, "domains %llu, the model has %u", (unsigned long long)st.domains, doms);
	CHECK(st.mappings == maps, "mappings %llu, the model has %u", (unsigned long long)st.mappings, maps);
}

static void run(struct fz *z)
{
	uint8_t out[1100];
	uint8_t op;
	while (!take(z, &op, 1)) {
		switch (op % OP_COUNT) {
		case OP_ATTACH: {
			uint8_t dom, e, flags, rsvd;
			if (take(z, &dom, 1) || take(z, &e, 1) || take(z, &flags, 1) || take(z, &rsvd, 1))
				return;
			e %= FZ_ENDPOINTS + 1;
			uint8_t r[20] = { 1 };
			put32(r + 4, dom);
			put32(r + 8, ep_id[e]);
			put32(r + 12, flags);
			r[16] = rsvd;
			uint8_t st = send(z, r, sizeof(r), 4, out);
			expect(z, st, (uint8_t)m_attach(&z->m, dom, e, flags, rsvd != 0), "ATTACH");
			break;
		}
		case OP_DETACH: {
			uint8_t dom, e;
			if (take(z, &dom, 1) || take(z, &e, 1))
				return;
			e %= FZ_ENDPOINTS + 1;
			uint8_t r[20] = { 2 };
			put32(r + 4, dom);
			put32(r + 8, ep_id[e]);
			uint8_t st = send(z, r, sizeof(r), 4, out);
			expect(z, st, (uint8_t)m_detach(&z->m, dom, e), "DETACH");
			break;
		}
		case OP_MAP: {
			uint8_t dom, n, flags;
			uint16_t sp, pp;
			if (take(z, &dom, 1) || take(z, &sp, 2) || take(z, &n, 1) || take(z, &pp, 2) || take(z, &flags, 1))
				return;
			uint64_t start = (uint64_t)(sp % 1024) * PAGE;
			if (flags & 0x40)
				start = INPUT_END + 1 - 64 * PAGE + (uint64_t)(sp % 128) * PAGE;
			if (flags & 0x80)
				start += 0x800;
			uint64_t end = start + ((uint64_t)n + 1) * PAGE - 1;
			uint64_t phys = (uint64_t)(pp % 512) * PAGE;
			uint32_t f = flags & 0x0f;
			uint8_t r[36] = { 3 };
			put32(r + 4, dom);
			put64(r + 8, start);
			put64(r + 16, end);
			put64(r + 24, phys);
			put32(r + 32, f);
			uint8_t st = send(z, r, sizeof(r), 4, out);
			int want = m_map(&z->m, dom, start, end, phys, f);
			if (want < 0)
				z->m.valid = 0;
			else
				expect(z, st, (uint8_t)want, "MAP");
			break;
		}
		case OP_UNMAP: {
			uint8_t dom;
			uint16_t sp, ep;
			if (take(z, &dom, 1) || take(z, &sp, 2) || take(z, &ep, 2))
				return;
			uint64_t start = (uint64_t)(sp % 1024) * PAGE;
			uint64_t end = (uint64_t)(ep & 0x3ff) * PAGE + PAGE - 1 - ((ep & 0x8000) ? 1 : 0);
			uint8_t r[28] = { 4 };
			put32(r + 4, dom);
			put64(r + 8, start);
			put64(r + 16, end);
			uint8_t st = send(z, r, sizeof(r), 4, out);
			expect(z, st, (uint8_t)m_unmap(&z->m, dom, start, end), "UNMAP");
			break;
		}
		case OP_PROBE: {
			uint8_t e;
			uint16_t olen;
			if (take(z, &e, 1) || take(z, &olen, 2))
				return;
			e %= FZ_ENDPOINTS + 1;
			size_t ol = olen % sizeof(out);
			uint8_t r[72] = { 5 };
			put32(r + 4, ep_id[e]);
			uint8_t st = send(z, r, sizeof(r), ol, out);
			if (ol < 4)
				break;
			uint8_t want = !feat(&z->m, 4)		    ? S_UNSUPP
				       : ol < z->probe_size + 4u ? S_INVAL
				       : e >= FZ_ENDPOINTS	    ? S_NOENT
								    : S_OK;
			/* (the implementation checks the length before the
			 * endpoint: both are errors the driver caused) */
			expect(z, st, want, "PROBE");
			if (st == S_OK) {
				CHECK(get(out, 2) == 1 && get(out + 2, 2) == 20 && out[4] == 1, "PROBE property");
				CHECK(get(out + 8, 8) == 0xfee00000 && get(out + 16, 8) == 0xfeefffff, "PROBE MSI range");
				for (size_t i = 24; i < z->probe_size; i++)
					CHECK(out[i] == 0, "PROBE byte %zu not zero", i);
			}
			break;
		}
		case OP_RAW: {
			uint8_t n, ol;
			uint8_t in[96];
			if (take(z, &n, 1))
				return;
			n %= sizeof(in) + 1;
			if (take(z, in, n) || take(z, &ol, 1))
				return;
			uint8_t st = send(z, in, n, ol, out);
			/* A raw request that may have changed state ends the
			 * comparison with the model. */
			if (st == S_OK && n && in[0] >= 1 && in[0] <= 4)
				z->m.valid = 0;
			break;
		}
		case OP_DMA:
			op_dma(z);
			break;
		case OP_BYPASS: {
			uint8_t b;
			if (take(z, &b, 1))
				return;
			viommu_virtio_iommu_config_write(z->vi, 36, &b, 1);
			if (feat(&z->m, VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG))
				z->m.bypass = b & 1;
			uint8_t c[VIOMMU_VIRTIO_IOMMU_CONFIG_SIZE];
			viommu_virtio_iommu_config_read(z->vi, 0, c, sizeof(c));
			CHECK(c[36] == z->m.bypass, "bypass reads %u, the model says %u", c[36], z->m.bypass);
			break;
		}
		case OP_RESET: {
			viommu_virtio_iommu_reset(z->vi);
			uint64_t f = z->m.features;
			int valid = z->m.valid;
			uint32_t lo = z->m.dom_lo, hi = z->m.dom_hi;
			memset(&z->m, 0, sizeof(z->m));
			for (unsigned i = 0; i < FZ_ENDPOINTS; i++)
				z->m.ep_dom[i] = -1;
			z->m.dom_lo = lo;
			z->m.dom_hi = hi;
			z->m.valid = valid;
			/* Reset clears the features; the driver negotiates
			 * the same ones again. */
			CHECK(viommu_virtio_iommu_set_features(z->vi, f) == 0, "features again");
			z->m.features = f;
			break;
		}
		case OP_EVENTS:
			op_events(z);
			break;
		}
		check_counts(z);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct fz z;
	memset(&z, 0, sizeof(z));
	z.ram = malloc(FZ_RAM_PAGES * PAGE);
	if (!z.ram)
		return 0;
	for (size_t i = 0; i < FZ_RAM_PAGES * PAGE; i++)
		z.ram[i] = (uint8_t)(i * 7 + (i >> 12));
	struct viommu_mem_region reg = { .gpa = 0, .size = FZ_RAM_PAGES * PAGE, .host = z.ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg), .mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
	};
	CHECK(viommu_create(&cfg, NULL, &z.v) == 0, "viommu_create");
	static const struct viommu_virtio_iommu_resv msi = { 0xfee00000, 0xfeefffff, VIOMMU_VIRTIO_IOMMU_RESV_MSI };
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .resv = &msi, .nr_resv = 1, .events = 64 };
	if (data[1]) {
		vc.domain_start = 1;
		vc.domain_end = data[1];
	}
	CHECK(viommu_virtio_iommu_create(z.v, &vc, NULL, &z.vi) == 0, "front-end create");
	z.probe_size = vc.probe_size;
	z.m.dom_lo = vc.domain_start;
	z.m.dom_hi = vc.domain_end;
	z.m.valid = 1;
	for (unsigned i = 0; i < FZ_ENDPOINTS; i++) {
		z.m.ep_dom[i] = -1;
		struct viommu_rid rid = { .bus = 0, .devfn = (uint8_t)ep_id[i] };
		CHECK(viommu_virtio_iommu_add_endpoint(z.vi, ep_id[i], rid, &z.ep[i]) == 0, "endpoint");
	}
	uint64_t f = data[0] & 0x7f;
	int r = viommu_virtio_iommu_set_features(z.vi, f);
	uint64_t offered = viommu_virtio_iommu_device_features(z.vi);
	CHECK((r == 0) == !(f & ~offered), "set_features(%#llx) = %d", (unsigned long long)f, r);
	z.m.features = r == 0 ? f : 0;
	z.p = data + 2;
	z.end = data + size;
	run(&z);
	op_events(&z);
	viommu_virtio_iommu_destroy(z.vi);
	viommu_destroy(z.v);
	free(z.ram);
	return 0;
}
