/* SPDX-License-Identifier: MIT */
/*
 * Allocation failure, for every N: fail the Nth allocation of fault-queue
 * create, page-request-queue create, viommu_create (which sets up injection
 * and interrupt-remapping state too), viommu_ir_configure and
 * viommu_inject_add, and of a whole scenario using them together. Each
 * failure must be a clean -ENOMEM that changes nothing, and after teardown
 * no byte may be outstanding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <viommu/faultlog.h>
#include <viommu/inject.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>

#include "p2_alloc.h"
#include "p2_check.h"
#include "p2_guest.h"

#define RAM_SIZE (1ull << 20)
#define TABLE_A 0x10000ull
#define TABLE_B 0x20000ull
#define MAX_N 100000ul

static uint8_t *ram;

static void check_clean(int line, const struct p2_alloc *a)
{
	CHECK_EQ_AT(line, a->live, 0);
	CHECK_EQ_AT(line, a->live_bytes, 0);
	CHECK_EQ_AT(line, a->bad_frees, 0);
	CHECK_EQ_AT(line, a->bad_args, 0);
}

static void noop_respond(void *ctx, struct viommu_rid rid, uint32_t pasid, uint16_t group,
			 enum viommu_prq_response code)
{
	(void)ctx, (void)rid, (void)pasid, (void)group, (void)code;
}

static void test_fault_queue(void)
{
	struct viommu_fault_queue_config c = { .size = sizeof(c), .entries = 100 };
	unsigned long n, fails = 0;

	p2_case("fault queue create");
	for (n = 1; n < MAX_N; n++) {
		struct p2_alloc a;
		viommu_fault_queue *q = NULL;
		p2_alloc_init(&a);
		p2_alloc_fail_in(&a, n);
		int r = viommu_fault_queue_create(&c, &a.hooks, &q);
		if (!a.injected) {
			CHECK_EQ(r, 0);
			if (q) {
				struct viommu_fault_record rec = { .seq = 1 };
				CHECK_EQ(viommu_fault_queue_push(q, &rec), 0);
			}
			viommu_fault_queue_destroy(q);
			check_clean(__LINE__, &a);
			break;
		}
		fails++;
		CHECK_EQ(r, -ENOMEM);
		CHECK(q == NULL);
		check_clean(__LINE__, &a);
	}
	CHECK(fails >= 1);
	printf("fault queue create: %lu allocation points\n", fails);
}

static void test_prq(void)
{
	struct viommu_prq_config c = { .size = sizeof(c), .entries = 100, .respond = noop_respond };
	unsigned long n, fails = 0;

	p2_case("prq create");
	for (n = 1; n < MAX_N; n++) {
		struct p2_alloc a;
		viommu_prq *q = NULL;
		p2_alloc_init(&a);
		p2_alloc_fail_in(&a, n);
		int r = viommu_prq_create(&c, &a.hooks, &q);
		if (!a.injected) {
			CHECK_EQ(r, 0);
			if (q) {
				struct viommu_page_request req = { .pasid = 1, .group = 3, .last = 1 };
				CHECK_EQ(viommu_prq_submit(q, &req), 0);
				CHECK_EQ(viommu_prq_respond(q, req.rid, 1, 3, VIOMMU_PRQ_SUCCESS), 0);
			}
			viommu_prq_destroy(q);
			check_clean(__LINE__, &a);
			break;
		}
		fails++;
		CHECK_EQ(r, -ENOMEM);
		CHECK(q == NULL);
		check_clean(__LINE__, &a);
	}
	CHECK(fails >= 1);
	printf("prq create: %lu allocation points\n", fails);
}

static struct viommu_config inst_cfg(struct viommu_mem_region *reg)
{
	struct viommu_config c;
	memset(&c, 0, sizeof(c));
	*reg = (struct viommu_mem_region){ .gpa = 0, .size = RAM_SIZE, .host = ram };
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = reg;
	c.mem.nr_regions = 1;
	c.iotlb_entries = 64;
	c.walk_cache_entries = 64;
	return c;
}

static void test_viommu_create(void)
{
	struct viommu_mem_region reg;
	struct viommu_config c = inst_cfg(&reg);
	unsigned long n, fails = 0;

	p2_case("viommu_create");
	for (n = 1; n < MAX_N; n++) {
		struct p2_alloc a;
		viommu *v = NULL;
		p2_alloc_init(&a);
		p2_alloc_fail_in(&a, n);
		int r = viommu_create(&c, &a.hooks, &v);
		if (!a.injected) {
			CHECK_EQ(r, 0);
			if (v) {
				/* the injection and IR state work */
				struct viommu_inject_rule rule = { .size = sizeof(rule), .action = VIOMMU_INJECT_LOSE_IRQ };
				uint32_t id;
				CHECK_EQ(viommu_inject_add(v, &rule, &id), 0);
				struct viommu_irq irq;
				CHECK_EQ(viommu_ir_translate(v, (struct viommu_rid){ 0 }, 0xfee00000ull, 0x30, &irq, NULL),
					 0);
			}
			viommu_destroy(v);
			check_clean(__LINE__, &a);
			break;
		}
		fails++;
		CHECK_EQ(r, -ENOMEM);
		CHECK(v == NULL);
		check_clean(__LINE__, &a);
	}
	CHECK(fails >= 3);
	printf("viommu_create: %lu allocation points\n", fails);
}

static void put_irte(uint64_t table, unsigned idx, uint8_t vec)
{
	uint64_t lo = 1 | (uint64_t)vec << 16, hi = 0;
	memcpy(ram + table + idx * 16, &lo, 8);
	memcpy(ram + table + idx * 16 + 8, &hi, 8);
}

static int vector_of(viommu *v, unsigned idx)
{
	struct viommu_irq irq;
	uint64_t addr = 0xfee00000ull | 1u << 4 | idx << 5;
	if (viommu_ir_translate(v, (struct viommu_rid){ 0 }, addr, 0, &irq, NULL))
		return -1;
	return irq.vector;
}

static void test_ir_configure(void)
{
	struct viommu_mem_region reg;
	struct viommu_config c = inst_cfg(&reg);
	unsigned long n, fails = 0;

	p2_case("viommu_ir_configure");
	put_irte(TABLE_A, 1, 0xa1);
	put_irte(TABLE_B, 1, 0xb1);
	for (n = 1; n < MAX_N; n++) {
		struct p2_alloc a;
		viommu *v = NULL;
		p2_alloc_init(&a);
		if (viommu_create(&c, &a.hooks, &v)) {
			CHECK(0);
			return;
		}
		struct viommu_ir_config ic = { .size = sizeof(ic), .format = VIOMMU_IR_VTD, .table = TABLE_A,
					       .entries = 16, .cache_entries = 4000 };
		CHECK_EQ(viommu_ir_configure(v, &ic), 0);
		CHECK_EQ(vector_of(v, 1), 0xa1);
		ic.table = TABLE_B;
		ic.cache_entries = 0;
		p2_alloc_fail_in(&a, n);
		int r = viommu_ir_configure(v, &ic);
		int done = !a.injected;
		if (done) {
			CHECK_EQ(r, 0);
			CHECK_EQ(vector_of(v, 1), 0xb1);
		} else {
			fails++;
			CHECK_EQ(r, -ENOMEM);
			CHECK_EQ(vector_of(v, 1), 0xa1); /* still the old table */
		}
		/* and turning it off allocates nothing */
		struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
		p2_alloc_fail_in(&a, 1);
		CHECK_EQ(viommu_ir_configure(v, &off), 0);
		p2_alloc_fail_in(&a, 0);
		viommu_destroy(v);
		check_clean(__LINE__, &a);
		if (done)
			break;
	}
	CHECK(fails >= 1);
	printf("viommu_ir_configure: %lu allocation points\n", fails);
}

static void test_inject_add(void)
{
	struct viommu_mem_region reg;
	struct viommu_config c = inst_cfg(&reg);
	unsigned long n, fails = 0;
	struct p2_alloc a;
	viommu *v = NULL;

	p2_case("viommu_inject_add");
	p2_alloc_init(&a);
	if (viommu_create(&c, &a.hooks, &v)) {
		CHECK(0);
		return;
	}
	int count = 0;
	for (n = 1; n <= 300; n++) {
		struct viommu_inject_rule rule = { .size = sizeof(rule), .action = VIOMMU_INJECT_FAULT,
						   .reason = VIOMMU_FAULT_PERMISSION, .match = VIOMMU_INJECT_M_RANGE,
						   .first = n * 0x1000, .last = n * 0x1000 + 0xfff };
		uint32_t id = 0;
		/* fail each of the next few allocations in turn */
		p2_alloc_fail_in(&a, 1 + n % 4);
		int r = viommu_inject_add(v, &rule, &id);
		if (a.injected) {
			fails++;
			a.injected = 0;
			CHECK(r == -ENOMEM || r == 0 || (r == -ENOSPC && count == 256));
			if (r == 0)
				count++;
		} else {
			CHECK(r == 0 || (r == -ENOSPC && count == 256));
			if (r == 0)
				count++;
		}
		p2_alloc_fail_in(&a, 0);
		CHECK_EQ(viommu_inject_list(v, NULL, 0), count);
	}
	CHECK_EQ(count, 256);
	viommu_destroy(v);
	check_clean(__LINE__, &a);
	printf("viommu_inject_add: %lu injected failures hit it\n", fails);
}

/* A whole scenario: instance, queue attached, rules, IR, a fault. Every step
 * may fail with -ENOMEM; nothing may leak. Returns 1 when it ran through. */
static int scenario(struct p2_alloc *a)
{
	struct viommu_mem_region reg;
	struct viommu_config c = inst_cfg(&reg);
	viommu *v = NULL;
	viommu_fault_queue *q = NULL;
	viommu_prq *pq = NULL;
	int ok = 0, r;

	r = viommu_create(&c, &a->hooks, &v);
	if (r) {
		CHECK_EQ(r, -ENOMEM);
		goto out;
	}
	struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 8 };
	r = viommu_fault_queue_create(&qc, &a->hooks, &q);
	if (r) {
		CHECK_EQ(r, -ENOMEM);
		goto out;
	}
	CHECK_EQ(viommu_set_fault_queue(v, q), 0);
	struct viommu_prq_config pc = { .size = sizeof(pc), .entries = 4, .respond = noop_respond };
	r = viommu_prq_create(&pc, &a->hooks, &pq);
	if (r) {
		CHECK_EQ(r, -ENOMEM);
		goto out;
	}
	struct viommu_inject_rule rule = { .size = sizeof(rule), .action = VIOMMU_INJECT_LOSE_IRQ };
	uint32_t id;
	r = viommu_inject_add(v, &rule, &id);
	if (r) {
		CHECK_EQ(r, -ENOMEM);
		goto out;
	}
	struct viommu_ir_config ic = { .size = sizeof(ic), .format = VIOMMU_IR_VTD, .table = TABLE_A,
				       .entries = 16 };
	r = viommu_ir_configure(v, &ic);
	if (r) {
		CHECK_EQ(r, -ENOMEM);
		goto out;
	}
	/* an IR fault lands in the queue, its interrupt lost by the rule */
	struct viommu_irq irq;
	CHECK_EQ(viommu_ir_translate(v, (struct viommu_rid){ 0 }, 0xfee00000ull | 1u << 4 | 20u << 5, 0, &irq, NULL),
		 -EFAULT);
	struct viommu_fault_queue_status st;
	viommu_fault_queue_get_status(q, &st);
	CHECK_EQ(st.count, 1);
	CHECK_EQ(st.suppressed, 1);
	ok = 1;
out:
	viommu_destroy(v);
	viommu_fault_queue_destroy(q);
	viommu_prq_destroy(pq);
	return ok;
}

static void test_scenario(void)
{
	unsigned long n, fails = 0;

	p2_case("scenario");
	for (n = 1; n < MAX_N; n++) {
		struct p2_alloc a;
		p2_alloc_init(&a);
		p2_alloc_fail_in(&a, n);
		int ok = scenario(&a);
		check_clean(__LINE__, &a);
		if (!a.injected) {
			CHECK(ok);
			break;
		}
		fails++;
	}
	CHECK(fails >= 5);
	printf("scenario: %lu allocation points\n", fails);
}

int main(void)
{
	ram = p2_ram_alloc(RAM_SIZE);
	if (!ram)
		return 1;
	test_fault_queue();
	test_prq();
	test_viommu_create();
	test_ir_configure();
	test_inject_add();
	test_scenario();
	free(ram);
	return p2_done("test_part2_allocfail");
}
