/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the guest-memory interface (include/viommu/mem.h): create
 * validation, reads and writes within, across and outside regions, the
 * callbacks, read-only regions, viommu_mem_ptr, and allocation failure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/mem.h>

#include "check.h"
#include "test_alloc.h"

#define PAGE 4096u

static struct viommu_mem_config mem_cfg(const struct viommu_mem_region *r, uint32_t n)
{
	struct viommu_mem_config c;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.regions = r;
	c.nr_regions = n;
	return c;
}

static struct viommu_mem_region region(uint64_t gpa, uint64_t size, void *host, uint32_t flags)
{
	struct viommu_mem_region r;

	memset(&r, 0, sizeof(r));
	r.gpa = gpa;
	r.size = size;
	r.host = host;
	r.flags = flags;
	return r;
}

/* Create must fail with -EINVAL and leave nothing allocated. */
static void expect_create_einval(const struct viommu_mem_config *c, const char *what)
{
	struct test_alloc ta = { 0 };
	viommu_mem *m = NULL;
	int rc;

	check_context("create: %s", what);
	ta_init(&ta, 0);
	rc = viommu_mem_create(c, &ta.hooks, &m);
	CHECK_EQ(rc, -EINVAL);
	if (rc == 0)
		viommu_mem_destroy(m);
	CHECK_EQ(ta.bytes, 0);
	ta_release(&ta);
	check_context("%s", "");
}

static void test_create_validation(void)
{
	static uint8_t buf[8 * PAGE];
	struct viommu_mem_region r[VIOMMU_MEM_MAX_REGIONS + 1];
	struct viommu_mem_config c;
	viommu_mem *m = NULL;
	uint32_t i;
	int rc;

	/* NULL config or out pointer, config size too small. */
	c = mem_cfg(NULL, 0);
	CHECK_EQ(viommu_mem_create(NULL, NULL, &m), -EINVAL);
	CHECK_EQ(viommu_mem_create(&c, NULL, NULL), -EINVAL);
	c.size = 4;
	expect_create_einval(&c, "config size 4");
	c.size = 0;
	expect_create_einval(&c, "config size 0");

	/* nr_regions > 0 with no region array. */
	c = mem_cfg(NULL, 1);
	expect_create_einval(&c, "NULL regions with nr_regions 1");

	/* Zero size. */
	r[0] = region(0x1000, 0, buf, 0);
	c = mem_cfg(r, 1);
	expect_create_einval(&c, "zero-size region");

	/* NULL host pointer. */
	r[0] = region(0x1000, PAGE, NULL, 0);
	expect_create_einval(&c, "NULL host");

	/* Wrapping past 2^64. */
	r[0] = region(0xfffffffffffff000ull, 2 * PAGE, buf, 0);
	expect_create_einval(&c, "wraps past 2^64");
	r[0] = region(UINT64_MAX, 2, buf, 0);
	expect_create_einval(&c, "wraps past 2^64 by one byte");

	/* Overlaps: partial, containment, identical, in reverse order. */
	c = mem_cfg(r, 2);
	r[0] = region(0x10000, 2 * PAGE, buf, 0);
	r[1] = region(0x11000, 2 * PAGE, buf + 2 * PAGE, 0);
	expect_create_einval(&c, "partial overlap");
	r[1] = region(0x10800, 16, buf + 2 * PAGE, 0);
	expect_create_einval(&c, "contained region");
	r[1] = r[0];
	expect_create_einval(&c, "same region twice");
	r[0] = region(0x20000, PAGE, buf, 0);
	r[1] = region(0x1f000, PAGE + 1, buf + 2 * PAGE, 0);
	expect_create_einval(&c, "overlap by one byte, unsorted");
	c = mem_cfg(r, 3);
	r[0] = region(0x30000, PAGE, buf, 0);
	r[1] = region(0x50000, PAGE, buf + PAGE, 0);
	r[2] = region(0x50fff, PAGE, buf + 2 * PAGE, 0);
	expect_create_einval(&c, "third region overlaps second by one byte");

	/* Too many regions. */
	for (i = 0; i < VIOMMU_MEM_MAX_REGIONS + 1; i++)
		r[i] = region(0x100000ull + (uint64_t)i * 0x10000, 64, buf + i * 64, 0);
	c = mem_cfg(r, VIOMMU_MEM_MAX_REGIONS + 1);
	expect_create_einval(&c, "MAX_REGIONS + 1 regions");

	/* Exactly the maximum is fine, and every region is reachable. */
	check_context("create: MAX_REGIONS regions");
	c = mem_cfg(r, VIOMMU_MEM_MAX_REGIONS);
	rc = viommu_mem_create(&c, NULL, &m);
	CHECK_EQ(rc, 0);
	if (rc == 0) {
		for (i = 0; i < VIOMMU_MEM_MAX_REGIONS; i++) {
			uint8_t v = (uint8_t)(i * 7 + 1);
			uint8_t got = 0;

			CHECK_EQ(viommu_mem_write(m, r[i].gpa + 63, &v, 1), 0);
			CHECK_EQ(buf[i * 64 + 63], v);
			CHECK_EQ(viommu_mem_read(m, r[i].gpa + 63, &got, 1), 0);
			CHECK_EQ(got, v);
			/* the byte just past each region is a hole */
			CHECK_EQ(viommu_mem_read(m, r[i].gpa + 64, &got, 1), -EFAULT);
		}
		viommu_mem_destroy(m);
	}

	/* Adjacent regions do not overlap. */
	check_context("create: adjacent regions");
	r[0] = region(0x10000, PAGE, buf, 0);
	r[1] = region(0x11000, PAGE, buf + 4 * PAGE, 0);
	c = mem_cfg(r, 2);
	rc = viommu_mem_create(&c, NULL, &m);
	CHECK_EQ(rc, 0);
	if (rc == 0)
		viommu_mem_destroy(m);

	/* A region that ends exactly at 2^64 does not wrap past it. */
	check_context("create: region ending at 2^64");
	r[0] = region(0xfffffffffffff000ull, PAGE, buf, 0);
	c = mem_cfg(r, 1);
	rc = viommu_mem_create(&c, NULL, &m);
	CHECK_EQ(rc, 0);
	if (rc == 0) {
		uint8_t v = 0x3c, got = 0;

		CHECK_EQ(viommu_mem_write(m, UINT64_MAX, &v, 1), 0);
		CHECK_EQ(buf[PAGE - 1], 0x3c);
		CHECK_EQ(viommu_mem_read(m, UINT64_MAX, &got, 1), 0);
		CHECK_EQ(got, 0x3c);
		CHECK(viommu_mem_ptr(m, UINT64_MAX, 1, 1) == buf + PAGE - 1);
		CHECK(viommu_mem_ptr(m, 0xfffffffffffff000ull, PAGE, 0) == buf);
		viommu_mem_destroy(m);
	}

	/* No regions and no callbacks: valid, but nothing is reachable. */
	check_context("create: empty");
	c = mem_cfg(NULL, 0);
	rc = viommu_mem_create(&c, NULL, &m);
	CHECK_EQ(rc, 0);
	if (rc == 0) {
		uint64_t v = 0;

		CHECK_EQ(viommu_mem_read(m, 0, &v, sizeof(v)), -EFAULT);
		CHECK_EQ(viommu_mem_write(m, 0, &v, sizeof(v)), -EFAULT);
		CHECK(viommu_mem_ptr(m, 0, 8, 0) == NULL);
		viommu_mem_destroy(m);
	}
	viommu_mem_destroy(NULL);
	check_context("%s", "");
}

/* Two regions back to back in guest space with separate host buffers, a hole,
 * and a read-only region. */
struct layout {
	uint8_t *a, *b, *ro;
	viommu_mem *mem;
};

#define A_GPA  0x100000ull
#define B_GPA  (A_GPA + 2 * PAGE)           /* right after A */
#define HOLE   (B_GPA + 2 * PAGE)           /* 0x104000: nothing here */
#define RO_GPA 0x200000ull

static int layout_create(struct layout *l, const struct viommu_mem_config *extra)
{
	struct viommu_mem_region r[3];
	struct viommu_mem_config c;

	l->a = calloc(1, 2 * PAGE);
	l->b = calloc(1, 2 * PAGE);
	l->ro = calloc(1, PAGE);
	if (!l->a || !l->b || !l->ro)
		return -1;
	r[0] = region(B_GPA, 2 * PAGE, l->b, 0); /* deliberately not sorted */
	r[1] = region(A_GPA, 2 * PAGE, l->a, 0);
	r[2] = region(RO_GPA, PAGE, l->ro, VIOMMU_MEM_REGION_READONLY);
	if (extra)
		c = *extra;
	else
		memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.regions = r;
	c.nr_regions = 3;
	if (viommu_mem_create(&c, NULL, &l->mem))
		return -1;
	/* The regions are copied: scribbling on our array changes nothing. */
	memset(r, 0xee, sizeof(r));
	return 0;
}

static void layout_destroy(struct layout *l)
{
	viommu_mem_destroy(l->mem);
	free(l->a);
	free(l->b);
	free(l->ro);
}

static void test_read_write(void)
{
	struct layout l;
	uint8_t out[64], in[64];
	unsigned i;

	check_context("read/write");
	if (!CHECK(layout_create(&l, NULL) == 0))
		return;
	for (i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 3 + 1);

	/* Within one region. */
	CHECK_EQ(viommu_mem_write(l.mem, A_GPA + 0x123, out, 16), 0);
	CHECK(memcmp(l.a + 0x123, out, 16) == 0);
	memset(in, 0, sizeof(in));
	CHECK_EQ(viommu_mem_read(l.mem, A_GPA + 0x123, in, 16), 0);
	CHECK(memcmp(in, out, 16) == 0);
	/* the last 8 bytes of a region */
	CHECK_EQ(viommu_mem_write(l.mem, B_GPA + 2 * PAGE - 8, out, 8), 0);
	CHECK(memcmp(l.b + 2 * PAGE - 8, out, 8) == 0);

	/* Across the boundary of two adjacent regions (separate host buffers). */
	CHECK_EQ(viommu_mem_write(l.mem, B_GPA - 24, out, 64), 0);
	CHECK(memcmp(l.a + 2 * PAGE - 24, out, 24) == 0);
	CHECK(memcmp(l.b, out + 24, 40) == 0);
	memset(in, 0, sizeof(in));
	CHECK_EQ(viommu_mem_read(l.mem, B_GPA - 24, in, 64), 0);
	CHECK(memcmp(in, out, 64) == 0);

	/* A hole: entirely in it, starting before it, starting in it. */
	CHECK_EQ(viommu_mem_read(l.mem, HOLE, in, 8), -EFAULT);
	CHECK_EQ(viommu_mem_read(l.mem, HOLE - 8, in, 16), -EFAULT);
	CHECK_EQ(viommu_mem_read(l.mem, A_GPA - 4, in, 8), -EFAULT);
	CHECK_EQ(viommu_mem_write(l.mem, HOLE, out, 8), -EFAULT);
	CHECK_EQ(viommu_mem_read(l.mem, 0, in, 1), -EFAULT);
	CHECK_EQ(viommu_mem_read(l.mem, UINT64_MAX - 7, in, 8), -EFAULT);

	/* Read-only region: reads work, writes fail and change nothing. */
	l.ro[5] = 0x77;
	CHECK_EQ(viommu_mem_read(l.mem, RO_GPA + 5, in, 1), 0);
	CHECK_EQ(in[0], 0x77);
	CHECK_EQ(viommu_mem_write(l.mem, RO_GPA + 5, out, 1), -EFAULT);
	CHECK_EQ(l.ro[5], 0x77);
	CHECK_EQ(viommu_mem_write(l.mem, RO_GPA, out, PAGE > 64 ? 64 : PAGE), -EFAULT);
	CHECK_EQ(l.ro[0], 0);

	/* Bad arguments. */
	CHECK_EQ(viommu_mem_read(NULL, A_GPA, in, 1), -EINVAL);
	CHECK_EQ(viommu_mem_read(l.mem, A_GPA, NULL, 1), -EINVAL);
	CHECK_EQ(viommu_mem_write(NULL, A_GPA, out, 1), -EINVAL);
	CHECK_EQ(viommu_mem_write(l.mem, A_GPA, NULL, 1), -EINVAL);
	CHECK_EQ(viommu_mem_read(l.mem, UINT64_MAX, in, 2), -EINVAL);
	CHECK_EQ(viommu_mem_read(l.mem, 0xfffffffffffffff0ull, in, 64), -EINVAL);
	CHECK_EQ(viommu_mem_write(l.mem, UINT64_MAX, out, 2), -EINVAL);

	layout_destroy(&l);
	check_context("%s", "");
}

/* Callbacks: a fake device at every address no region covers. Records every
 * call so the test can see the requests were split at region boundaries. */
struct cb_log {
	unsigned nr_read, nr_write;
	uint64_t gpa[32];
	size_t len[32];
	int fail_read;          /* error to return from read, 0 = serve */
	int fail_write;
	uint64_t written_gpa;
	uint8_t written[64];
	size_t written_len;
};

static uint8_t cb_byte(uint64_t gpa)
{
	return (uint8_t)(gpa * 13 + 7);
}

static int cb_overlaps_region(uint64_t gpa, size_t len)
{
	static const uint64_t lo[] = { A_GPA, RO_GPA };
	static const uint64_t hi[] = { B_GPA + 2 * PAGE, RO_GPA + PAGE };
	unsigned i;

	for (i = 0; i < 2; i++)
		if (gpa < hi[i] && gpa + len > lo[i])
			return 1;
	return 0;
}

static int cb_read(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	struct cb_log *log = ctx;
	size_t i;

	if (log->nr_read + log->nr_write < 32) {
		log->gpa[log->nr_read + log->nr_write] = gpa;
		log->len[log->nr_read + log->nr_write] = len;
	}
	log->nr_read++;
	CHECK(!cb_overlaps_region(gpa, len));
	if (log->fail_read)
		return log->fail_read;
	for (i = 0; i < len; i++)
		((uint8_t *)buf)[i] = cb_byte(gpa + i);
	return 0;
}

static int cb_write(void *ctx, uint64_t gpa, const void *buf, size_t len)
{
	struct cb_log *log = ctx;

	if (log->nr_read + log->nr_write < 32) {
		log->gpa[log->nr_read + log->nr_write] = gpa;
		log->len[log->nr_read + log->nr_write] = len;
	}
	log->nr_write++;
	CHECK(!cb_overlaps_region(gpa, len));
	if (log->fail_write)
		return log->fail_write;
	log->written_gpa = gpa;
	log->written_len = len < sizeof(log->written) ? len : sizeof(log->written);
	memcpy(log->written, buf, log->written_len);
	return 0;
}

static void test_callbacks(void)
{
	struct viommu_mem_config extra;
	struct cb_log log;
	struct layout l;
	uint8_t in[64], out[64];
	unsigned i;
	int ok;

	check_context("callbacks");
	memset(&log, 0, sizeof(log));
	memset(&extra, 0, sizeof(extra));
	extra.read = cb_read;
	extra.write = cb_write;
	extra.ctx = &log;
	if (!CHECK(layout_create(&l, &extra) == 0))
		return;
	for (i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(0x80 + i);

	/* Entirely outside the regions. */
	CHECK_EQ(viommu_mem_read(l.mem, HOLE + 0x10, in, 16), 0);
	CHECK_EQ(log.nr_read, 1);
	CHECK_EQ(log.gpa[0], HOLE + 0x10);
	CHECK_EQ(log.len[0], 16);
	for (ok = 1, i = 0; i < 16; i++)
		ok &= in[i] == cb_byte(HOLE + 0x10 + i);
	CHECK(ok);

	/* Region tail then callback: the callback sees only its part. */
	memset(&log, 0, sizeof(log));
	memset(l.b + 2 * PAGE - 16, 0x42, 16);
	CHECK_EQ(viommu_mem_read(l.mem, HOLE - 16, in, 32), 0);
	CHECK_EQ(log.nr_read, 1);
	CHECK_EQ(log.gpa[0], HOLE);
	CHECK_EQ(log.len[0], 16);
	for (ok = 1, i = 0; i < 16; i++)
		ok &= in[i] == 0x42 && in[16 + i] == cb_byte(HOLE + i);
	CHECK(ok);

	/* Callback then region head. */
	memset(&log, 0, sizeof(log));
	memset(l.a, 0x24, 16);
	CHECK_EQ(viommu_mem_read(l.mem, A_GPA - 8, in, 24), 0);
	CHECK_EQ(log.nr_read, 1);
	CHECK_EQ(log.gpa[0], A_GPA - 8);
	CHECK_EQ(log.len[0], 8);
	for (ok = 1, i = 0; i < 8; i++)
		ok &= in[i] == cb_byte(A_GPA - 8 + i);
	for (i = 8; i < 24; i++)
		ok &= in[i] == 0x24;
	CHECK(ok);

	/* Region reads never reach the callback. */
	memset(&log, 0, sizeof(log));
	CHECK_EQ(viommu_mem_read(l.mem, A_GPA, in, 64), 0);
	CHECK_EQ(viommu_mem_read(l.mem, B_GPA - 8, in, 16), 0);
	CHECK_EQ(log.nr_read, 0);

	/* Writes outside go to the write callback, split the same way. */
	memset(&log, 0, sizeof(log));
	CHECK_EQ(viommu_mem_write(l.mem, HOLE - 8, out, 24), 0);
	CHECK_EQ(log.nr_write, 1);
	CHECK_EQ(log.written_gpa, HOLE);
	CHECK_EQ(log.written_len, 16);
	CHECK(memcmp(log.written, out + 8, 16) == 0);
	CHECK(memcmp(l.b + 2 * PAGE - 8, out, 8) == 0);

	/* A read-only region is a region: the write callback does not get it. */
	memset(&log, 0, sizeof(log));
	CHECK_EQ(viommu_mem_write(l.mem, RO_GPA + 8, out, 8), -EFAULT);
	CHECK_EQ(log.nr_write, 0);
	CHECK(viommu_mem_ptr(l.mem, HOLE, 8, 0) == NULL); /* callbacks give no pointer */

	/* Failing callbacks. */
	memset(&log, 0, sizeof(log));
	log.fail_read = -EFAULT;
	log.fail_write = -EFAULT;
	CHECK_EQ(viommu_mem_read(l.mem, HOLE, in, 8), -EFAULT);
	CHECK_EQ(viommu_mem_write(l.mem, HOLE, out, 8), -EFAULT);
	CHECK_EQ(viommu_mem_read(l.mem, HOLE - 8, in, 16), -EFAULT);
	log.fail_read = -EIO;
	CHECK(viommu_mem_read(l.mem, HOLE, in, 8) < 0);
	CHECK_EQ(log.nr_read, 3);
	layout_destroy(&l);

	/* A read callback and no write callback: writes outside fail. */
	memset(&log, 0, sizeof(log));
	memset(&extra, 0, sizeof(extra));
	extra.read = cb_read;
	extra.ctx = &log;
	if (CHECK(layout_create(&l, &extra) == 0)) {
		CHECK_EQ(viommu_mem_read(l.mem, HOLE, in, 8), 0);
		CHECK_EQ(viommu_mem_write(l.mem, HOLE, out, 8), -EFAULT);
		CHECK_EQ(viommu_mem_write(l.mem, A_GPA, out, 8), 0);
		layout_destroy(&l);
	}
	check_context("%s", "");
}

static void test_ptr(void)
{
	struct layout l;

	check_context("viommu_mem_ptr");
	if (!CHECK(layout_create(&l, NULL) == 0))
		return;
	CHECK(viommu_mem_ptr(l.mem, A_GPA, 1, 0) == l.a);
	CHECK(viommu_mem_ptr(l.mem, A_GPA + 0x234, 16, 1) == l.a + 0x234);
	CHECK(viommu_mem_ptr(l.mem, A_GPA, 2 * PAGE, 1) == l.a);         /* whole region */
	CHECK(viommu_mem_ptr(l.mem, B_GPA - 1, 1, 0) == l.a + 2 * PAGE - 1);
	CHECK(viommu_mem_ptr(l.mem, B_GPA, 8, 0) == l.b);
	CHECK(viommu_mem_ptr(l.mem, A_GPA, 2 * PAGE + 1, 0) == NULL);    /* into B */
	CHECK(viommu_mem_ptr(l.mem, B_GPA - 4, 8, 0) == NULL);           /* spans two */
	CHECK(viommu_mem_ptr(l.mem, B_GPA + 2 * PAGE - 4, 8, 0) == NULL); /* into the hole */
	CHECK(viommu_mem_ptr(l.mem, HOLE, 1, 0) == NULL);
	CHECK(viommu_mem_ptr(l.mem, A_GPA - 1, 1, 0) == NULL);
	CHECK(viommu_mem_ptr(l.mem, RO_GPA + 8, 8, 0) == l.ro + 8);
	CHECK(viommu_mem_ptr(l.mem, RO_GPA + 8, 8, 1) == NULL);           /* read-only */
	CHECK(viommu_mem_ptr(l.mem, UINT64_MAX, 2, 0) == NULL);           /* wraps */
	CHECK(viommu_mem_ptr(NULL, A_GPA, 1, 0) == NULL);
	layout_destroy(&l);
	check_context("%s", "");
}

/* Fail allocation number N of create, for every N until create succeeds. */
static void test_alloc_failure(void)
{
	static uint8_t buf[4 * PAGE];
	struct viommu_mem_region r[4];
	struct viommu_mem_config c;
	struct test_alloc ta = { 0 };
	unsigned long n;
	int done = 0;

	r[0] = region(0x1000, PAGE, buf, 0);
	r[1] = region(0x2000, PAGE, buf + PAGE, VIOMMU_MEM_REGION_READONLY);
	r[2] = region(0x9000, PAGE, buf + 2 * PAGE, 0);
	r[3] = region(0x7000, PAGE, buf + 3 * PAGE, 0);
	c = mem_cfg(r, 4);
	for (n = 1; n < 1000 && !done; n++) {
		viommu_mem *m = NULL;
		int rc;

		check_context("alloc failure at %lu", n);
		ta_init(&ta, n);
		rc = viommu_mem_create(&c, &ta.hooks, &m);
		if (ta.injected) {
			CHECK_EQ(rc, -ENOMEM);
			CHECK_EQ(ta.bytes, 0);
			CHECK_EQ(ta.allocs, ta.frees);
			if (rc == 0)
				viommu_mem_destroy(m);
		} else {
			uint32_t v = 0x12345678, got = 0;

			done = 1;
			CHECK_EQ(rc, 0);
			if (rc)
				break;
			CHECK(ta.allocs > 0); /* the object itself comes from the hooks */
			CHECK_EQ(viommu_mem_write(m, 0x9000 + 4, &v, 4), 0);
			CHECK_EQ(viommu_mem_read(m, 0x9000 + 4, &got, 4), 0);
			CHECK_EQ(got, v);
			viommu_mem_destroy(m);
			CHECK_EQ(ta.bytes, 0);
			CHECK_EQ(ta.allocs, ta.frees);
		}
		CHECK_EQ(ta.bad_frees, 0);
		CHECK_EQ(ta.bad_args, 0);
		ta_release(&ta);
	}
	CHECK(done);
	check_context("%s", "");
}

int main(void)
{
	test_create_validation();
	test_read_write();
	test_callbacks();
	test_ptr();
	test_alloc_failure();
	return check_report("test_mem");
}
