/* SPDX-License-Identifier: MIT */
/*
 * Unit test of the fault log (viommu/faultlog.h): fault queues (order, status,
 * overflow and lost counting, interrupts with mask and pending, notify), a
 * concurrent fault flood, the JSON writer, the page-request queue, and
 * viommu_set_fault_queue on a real instance.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <viommu/dma.h>
#include <viommu/faultlog.h>
#include <viommu/iommu.h>
#include <viommu/irq.h>

#include "p2_check.h"
#include "p2_guest.h"

static struct viommu_fault_record mkrec(uint64_t seq)
{
	struct viommu_fault_record r;
	memset(&r, 0, sizeof(r));
	r.seq = seq;
	r.rid = p2_rid(0, (uint8_t)(seq >> 32), 1, 2);
	r.pasid = (uint32_t)(seq & 0xfffff);
	r.addr = seq * 0x1000;
	r.access = VIOMMU_ACCESS_READ;
	r.reason = VIOMMU_FAULT_NOT_PRESENT;
	r.stage = 0;
	r.level = 1;
	r.entry_addr = seq ^ 0x5555;
	r.entry = ~seq;
	return r;
}

static int rec_eq(const struct viommu_fault_record *a, const struct viommu_fault_record *b)
{
	return a->seq == b->seq && a->rid.segment == b->rid.segment && a->rid.bus == b->rid.bus &&
	       a->rid.devfn == b->rid.devfn && a->pasid == b->pasid && a->addr == b->addr &&
	       a->access == b->access && a->reason == b->reason && a->stage == b->stage &&
	       a->level == b->level && a->entry_addr == b->entry_addr && a->entry == b->entry;
}

/* Interrupt and notify counters of one queue. */
struct irqs {
	unsigned long raised;   /* atomic */
	unsigned long notified; /* atomic */
	uint64_t last_notified[4]; /* per producer (rid.bus), notify order */
	unsigned long notify_order_bad; /* atomic */
};

static void on_raise(void *ctx)
{
	struct irqs *s = ctx;
	__atomic_add_fetch(&s->raised, 1, __ATOMIC_RELAXED);
}

static void on_notify(void *ctx, const struct viommu_fault_record *rec)
{
	struct irqs *s = ctx;
	unsigned p = rec->rid.bus & 3;
	/* Each producer's notifies run on its own thread, in its order. */
	if (rec->seq <= s->last_notified[p])
		__atomic_add_fetch(&s->notify_order_bad, 1, __ATOMIC_RELAXED);
	s->last_notified[p] = rec->seq;
	__atomic_add_fetch(&s->notified, 1, __ATOMIC_RELAXED);
}

static viommu_fault_queue *mkq(uint32_t entries, uint32_t flags, struct irqs *s)
{
	struct viommu_fault_queue_config c = {
		.size = sizeof(c), .entries = entries, .flags = flags,
		.raise = on_raise, .notify = on_notify, .ctx = s,
	};
	viommu_fault_queue *q = NULL;
	if (s)
		memset(s, 0, sizeof(*s));
	else
		c.raise = NULL, c.notify = NULL;
	int r = viommu_fault_queue_create(&c, NULL, &q);
	CHECK_EQ(r, 0);
	return q;
}

static struct viommu_fault_queue_status qst(viommu_fault_queue *q)
{
	struct viommu_fault_queue_status st;
	memset(&st, 0xee, sizeof(st));
	viommu_fault_queue_get_status(q, &st);
	return st;
}

/* ------------------------------------------------------------------------ */

static void test_create_validation(void)
{
	viommu_fault_queue *q = (viommu_fault_queue *)&q;
	struct viommu_fault_queue_config c = { .size = sizeof(c), .entries = 8 };

	p2_case("fault queue create validation");
	CHECK_EQ(viommu_fault_queue_create(NULL, NULL, &q), -EINVAL);
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, NULL), -EINVAL);
	c.size = sizeof(c) - 1;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), -EINVAL);
	c.size = sizeof(c);
	c.entries = 0;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), -EINVAL);
	c.entries = (1u << 20) + 1;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), -EINVAL);
	c.entries = 8;
	c.flags = 1u << 2;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), -EINVAL);
	c.flags = 0x80000000u;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), -EINVAL);
	/* bad allocation hooks */
	struct viommu_alloc bad = { .size = sizeof(bad) };
	c.flags = 0;
	CHECK_EQ(viommu_fault_queue_create(&c, &bad, &q), -EINVAL);

	/* the bounds themselves are fine */
	q = NULL;
	c.entries = 1;
	c.flags = VIOMMU_FQ_IRQ_ON_EMPTY | VIOMMU_FQ_MASKED;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), 0);
	CHECK(q != NULL);
	struct viommu_fault_queue_status st = qst(q);
	CHECK_EQ(st.entries, 1);
	CHECK_EQ(st.masked, 1);
	CHECK_EQ(st.count, 0);
	viommu_fault_queue_destroy(q);
	q = NULL;
	c.entries = 1u << 20;
	c.flags = 0;
	CHECK_EQ(viommu_fault_queue_create(&c, NULL, &q), 0);
	CHECK(q != NULL);
	if (q) {
		st = qst(q);
		CHECK_EQ(st.entries, 1u << 20);
		CHECK_EQ(st.masked, 0);
		/* fill it: every slot of a 2^20 ring takes a record */
		int bad_push = 0;
		for (uint64_t i = 1; i <= (1u << 20); i++) {
			struct viommu_fault_record r = mkrec(i);
			if (viommu_fault_queue_push(q, &r))
				bad_push++;
		}
		CHECK_EQ(bad_push, 0);
		struct viommu_fault_record r = mkrec(7);
		CHECK_EQ(viommu_fault_queue_push(q, &r), -ENOSPC);
		st = qst(q);
		CHECK_EQ(st.count, 1u << 20);
		CHECK_EQ(st.lost, 1);
	}
	viommu_fault_queue_destroy(q);
	viommu_fault_queue_destroy(NULL);
}

static void test_push_pop_order(void)
{
	struct irqs s;
	viommu_fault_queue *q = mkq(4, 0, &s);
	struct viommu_fault_record r, got;
	struct viommu_fault_queue_status st;

	p2_case("push/pop order and status");
	if (!q)
		return;
	st = qst(q);
	CHECK_EQ(st.head, 0);
	CHECK_EQ(st.tail, 0);
	CHECK_EQ(st.count, 0);
	CHECK_EQ(st.entries, 4);
	CHECK_EQ(st.overflow, 0);
	CHECK_EQ(st.lost, 0);
	CHECK_EQ(st.pending, 0);
	CHECK_EQ(st.raised, 0);
	CHECK_EQ(st.suppressed, 0);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), -EAGAIN);
	CHECK_EQ(viommu_fault_queue_push(NULL, &r), -EINVAL);
	CHECK_EQ(viommu_fault_queue_push(q, NULL), -EINVAL);
	CHECK_EQ(viommu_fault_queue_pop(NULL, &got), -EINVAL);
	CHECK_EQ(viommu_fault_queue_pop(q, NULL), -EINVAL);

	/* many laps around the ring: FIFO order and whole records */
	uint64_t next_push = 1, next_pop = 1;
	for (int round = 0; round < 50; round++) {
		int n = 1 + round % 4;
		/* make room: never more than 4 in the queue */
		while (next_push - next_pop + (uint64_t)n > 4) {
			CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
			struct viommu_fault_record exp = mkrec(next_pop++);
			CHECK(rec_eq(&got, &exp));
		}
		for (int i = 0; i < n; i++) {
			r = mkrec(next_push++);
			CHECK_EQ(viommu_fault_queue_push(q, &r), 0);
		}
		st = qst(q);
		CHECK_EQ(st.tail, next_push - 1);
		CHECK_EQ(st.head, next_pop - 1);
		CHECK_EQ(st.count, next_push - next_pop);
		int m = (round % 3 == 0) ? n : n - (n > 1);
		for (int i = 0; i < m; i++) {
			memset(&got, 0, sizeof(got));
			CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
			struct viommu_fault_record exp = mkrec(next_pop++);
			CHECK(rec_eq(&got, &exp));
		}
	}
	while (next_pop < next_push) {
		CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
		struct viommu_fault_record exp = mkrec(next_pop++);
		CHECK(rec_eq(&got, &exp));
	}
	CHECK_EQ(viommu_fault_queue_pop(q, &got), -EAGAIN);
	st = qst(q);
	CHECK_EQ(st.head, next_pop - 1);
	CHECK_EQ(st.tail, next_push - 1);
	CHECK_EQ(st.count, 0);
	CHECK_EQ(st.lost, 0);
	CHECK_EQ(st.overflow, 0);
	/* every stored record raised (flags 0) and was notified */
	CHECK_EQ(st.raised, next_push - 1);
	CHECK_EQ(s.raised, next_push - 1);
	CHECK_EQ(s.notified, next_push - 1);
	viommu_fault_queue_destroy(q);
}

static void test_overflow(void)
{
	struct irqs s;
	viommu_fault_queue *q = mkq(4, 0, &s);
	struct viommu_fault_record r, got;
	struct viommu_fault_queue_status st;

	p2_case("overflow and lost records");
	if (!q)
		return;
	for (uint64_t i = 1; i <= 4; i++) {
		r = mkrec(i);
		CHECK_EQ(viommu_fault_queue_push(q, &r), 0);
	}
	st = qst(q);
	CHECK_EQ(st.overflow, 0);
	for (uint64_t i = 5; i <= 7; i++) {
		r = mkrec(i);
		CHECK_EQ(viommu_fault_queue_push(q, &r), -ENOSPC);
	}
	st = qst(q);
	CHECK_EQ(st.count, 4);
	CHECK_EQ(st.tail, 4);
	CHECK_EQ(st.overflow, 1);
	CHECK_EQ(st.lost, 3);
	/* lost records neither raise nor notify */
	CHECK_EQ(st.raised, 4);
	CHECK_EQ(s.raised, 4);
	CHECK_EQ(s.notified, 4);
	viommu_fault_queue_clear_overflow(q);
	st = qst(q);
	CHECK_EQ(st.overflow, 0);
	CHECK_EQ(st.lost, 3);
	/* what is in the queue is what was stored: 1..4 */
	CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
	CHECK_EQ(got.seq, 1);
	/* room for one: 8 goes in, 9 is lost again */
	r = mkrec(8);
	CHECK_EQ(viommu_fault_queue_push(q, &r), 0);
	r = mkrec(9);
	CHECK_EQ(viommu_fault_queue_push(q, &r), -ENOSPC);
	st = qst(q);
	CHECK_EQ(st.overflow, 1);
	CHECK_EQ(st.lost, 4);
	uint64_t want[] = { 2, 3, 4, 8 };
	for (unsigned i = 0; i < 4; i++) {
		CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
		CHECK_EQ(got.seq, want[i]);
	}
	CHECK_EQ(viommu_fault_queue_pop(q, &got), -EAGAIN);
	/* the flag stays until cleared, even once the queue drained */
	st = qst(q);
	CHECK_EQ(st.overflow, 1);
	viommu_fault_queue_clear_overflow(q);
	CHECK_EQ(qst(q).overflow, 0);
	viommu_fault_queue_clear_overflow(NULL);
	viommu_fault_queue_destroy(q);
}

static void test_irq_modes(void)
{
	struct irqs s;
	struct viommu_fault_record r, got;
	struct viommu_fault_queue_status st;
	viommu_fault_queue *q;

	p2_case("interrupt on every record");
	q = mkq(8, 0, &s);
	if (q) {
		for (uint64_t i = 1; i <= 5; i++) {
			r = mkrec(i);
			viommu_fault_queue_push(q, &r);
			CHECK_EQ(s.raised, i);
		}
		CHECK_EQ(qst(q).raised, 5);
		viommu_fault_queue_destroy(q);
	}

	p2_case("interrupt on empty -> non-empty");
	q = mkq(8, VIOMMU_FQ_IRQ_ON_EMPTY, &s);
	if (q) {
		for (uint64_t i = 1; i <= 3; i++) {
			r = mkrec(i);
			viommu_fault_queue_push(q, &r);
		}
		CHECK_EQ(s.raised, 1);
		CHECK_EQ(s.notified, 3);
		/* not empty yet: no new interrupt */
		viommu_fault_queue_pop(q, &got);
		r = mkrec(4);
		viommu_fault_queue_push(q, &r);
		CHECK_EQ(s.raised, 1);
		/* drained: the next record raises again */
		while (viommu_fault_queue_pop(q, &got) == 0)
			;
		r = mkrec(5);
		viommu_fault_queue_push(q, &r);
		CHECK_EQ(s.raised, 2);
		st = qst(q);
		CHECK_EQ(st.raised, 2);
		viommu_fault_queue_destroy(q);
	}

	p2_case("masked: pending, unmask raises once");
	q = mkq(8, VIOMMU_FQ_MASKED, &s);
	if (q) {
		st = qst(q);
		CHECK_EQ(st.masked, 1);
		CHECK_EQ(st.pending, 0);
		for (uint64_t i = 1; i <= 3; i++) {
			r = mkrec(i);
			viommu_fault_queue_push(q, &r);
		}
		st = qst(q);
		CHECK_EQ(s.raised, 0);
		CHECK_EQ(st.raised, 0);
		CHECK_EQ(st.pending, 1);
		CHECK_EQ(s.notified, 3); /* notify is not an interrupt */
		viommu_fault_queue_set_mask(q, 0);
		st = qst(q);
		CHECK_EQ(s.raised, 1);
		CHECK_EQ(st.raised, 1);
		CHECK_EQ(st.pending, 0);
		CHECK_EQ(st.masked, 0);
		viommu_fault_queue_set_mask(q, 0);
		CHECK_EQ(s.raised, 1);
		/* unmasked now: each record raises */
		r = mkrec(4);
		viommu_fault_queue_push(q, &r);
		CHECK_EQ(s.raised, 2);
		/* mask with nothing new, unmask: nothing pending, no raise */
		viommu_fault_queue_set_mask(q, 1);
		CHECK_EQ(qst(q).masked, 1);
		viommu_fault_queue_set_mask(q, 0);
		CHECK_EQ(s.raised, 2);
		/* mask, record, mask again, unmask: still exactly one */
		viommu_fault_queue_set_mask(q, 1);
		r = mkrec(5);
		viommu_fault_queue_push(q, &r);
		viommu_fault_queue_set_mask(q, 1);
		CHECK_EQ(qst(q).pending, 1);
		CHECK_EQ(s.raised, 2);
		viommu_fault_queue_set_mask(q, 0);
		CHECK_EQ(s.raised, 3);
		/* a lost record (full queue) while masked raises nothing */
		viommu_fault_queue_set_mask(q, 1);
		for (uint64_t i = 6; i <= 12; i++) {
			r = mkrec(i);
			viommu_fault_queue_push(q, &r);
		}
		st = qst(q);
		CHECK_EQ(st.count, 8);
		CHECK_EQ(st.lost, 4);
		viommu_fault_queue_set_mask(q, 0);
		CHECK_EQ(s.raised, 4);
		viommu_fault_queue_set_mask(NULL, 0);
		viommu_fault_queue_destroy(q);
	}

	p2_case("masked with IRQ_ON_EMPTY");
	q = mkq(8, VIOMMU_FQ_MASKED | VIOMMU_FQ_IRQ_ON_EMPTY, &s);
	if (q) {
		r = mkrec(1);
		viommu_fault_queue_push(q, &r);
		r = mkrec(2);
		viommu_fault_queue_push(q, &r);
		CHECK_EQ(s.raised, 0);
		CHECK_EQ(qst(q).pending, 1);
		viommu_fault_queue_set_mask(q, 0);
		CHECK_EQ(s.raised, 1);
		CHECK_EQ(qst(q).pending, 0);
		r = mkrec(3);
		viommu_fault_queue_push(q, &r); /* not empty: nothing */
		CHECK_EQ(s.raised, 1);
		viommu_fault_queue_destroy(q);
	}

	p2_case("no raise callback: raised still counted");
	q = mkq(8, 0, NULL);
	if (q) {
		r = mkrec(1);
		CHECK_EQ(viommu_fault_queue_push(q, &r), 0);
		CHECK_EQ(qst(q).raised, 1);
		viommu_fault_queue_destroy(q);
	}
}

/* A callback that calls back into the queue (allowed by the header). */
struct reentrant {
	viommu_fault_queue *q;
	unsigned long popped, raises;
};

static void reent_raise(void *ctx)
{
	struct reentrant *re = ctx;
	struct viommu_fault_record got;
	struct viommu_fault_queue_status st;
	re->raises++;
	viommu_fault_queue_get_status(re->q, &st);
	while (viommu_fault_queue_pop(re->q, &got) == 0)
		re->popped++;
	viommu_fault_queue_set_mask(re->q, 0);
}

static void reent_notify(void *ctx, const struct viommu_fault_record *rec)
{
	struct reentrant *re = ctx;
	struct viommu_fault_queue_status st;
	(void)rec;
	viommu_fault_queue_get_status(re->q, &st);
}

static void test_reentrant_callbacks(void)
{
	struct reentrant re = { 0 };
	struct viommu_fault_queue_config c = {
		.size = sizeof(c), .entries = 2, .flags = VIOMMU_FQ_IRQ_ON_EMPTY,
		.raise = reent_raise, .notify = reent_notify, .ctx = &re,
	};
	p2_case("callbacks that call into the queue");
	if (viommu_fault_queue_create(&c, NULL, &re.q)) {
		CHECK(0);
		return;
	}
	for (uint64_t i = 1; i <= 100; i++) {
		struct viommu_fault_record r = mkrec(i);
		CHECK_EQ(viommu_fault_queue_push(re.q, &r), 0);
	}
	/* the raise handler drains, so every record raises and none is lost */
	CHECK_EQ(re.popped, 100);
	CHECK_EQ(re.raises, 100);
	CHECK_EQ(qst(re.q).lost, 0);
	viommu_fault_queue_destroy(re.q);
}

/* ------------------------------------------------------------------------ */
/* Fault flood: 2 producers, 1 consumer, a 64-entry queue, 100k records.    */

#define FLOOD_PER_PRODUCER 50000u
#define FLOOD_PRODUCERS 2u

struct flood {
	viommu_fault_queue *q;
	int done_producers;        /* atomic */
	unsigned long pushed[FLOOD_PRODUCERS];
	unsigned long lost[FLOOD_PRODUCERS];
	unsigned long bad_ret;
	unsigned long popped[FLOOD_PRODUCERS];
	unsigned long order_bad, content_bad;
	int slow_consumer;
};

struct producer_arg {
	struct flood *f;
	unsigned id;
};

static void *producer(void *p)
{
	struct producer_arg *a = p;
	struct flood *f = a->f;
	for (uint64_t i = 1; i <= FLOOD_PER_PRODUCER; i++) {
		struct viommu_fault_record r = mkrec((uint64_t)(a->id + 1) << 32 | i);
		r.rid.bus = (uint8_t)(a->id + 1);
		int ret = viommu_fault_queue_push(f->q, &r);
		f->pushed[a->id]++;
		if (ret == -ENOSPC)
			f->lost[a->id]++;
		else if (ret != 0)
			f->bad_ret++;
		/* let the consumer in now and then, so pushes and pops
		 * interleave rather than one side running alone */
		if (i % 256 == 0)
			sched_yield();
	}
	__atomic_add_fetch(&f->done_producers, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *consumer(void *p)
{
	struct flood *f = p;
	uint64_t last[FLOOD_PRODUCERS] = { 0 };
	unsigned long n = 0;
	for (;;) {
		int done = __atomic_load_n(&f->done_producers, __ATOMIC_ACQUIRE) == FLOOD_PRODUCERS;
		struct viommu_fault_record r;
		int ret = viommu_fault_queue_pop(f->q, &r);
		if (ret == -EAGAIN) {
			if (done)
				break;
			continue;
		}
		if (ret != 0) {
			f->content_bad++;
			continue;
		}
		unsigned id = (unsigned)(r.seq >> 32) - 1;
		if (id >= FLOOD_PRODUCERS) {
			f->content_bad++;
			continue;
		}
		struct viommu_fault_record exp = mkrec(r.seq);
		exp.rid.bus = (uint8_t)(id + 1);
		if (!rec_eq(&r, &exp))
			f->content_bad++;
		if (r.seq <= last[id])
			f->order_bad++;
		last[id] = r.seq;
		f->popped[id]++;
		/* a consumer slower than the producers: the queue overflows */
		if (f->slow_consumer && ++n % 512 == 0)
			usleep(10);
	}
	return NULL;
}

static void run_flood(uint32_t flags, const char *name)
{
	struct irqs s;
	struct flood f;
	pthread_t pt[FLOOD_PRODUCERS], ct;
	struct producer_arg pa[FLOOD_PRODUCERS];

	p2_case("fault flood (%s)", name);
	memset(&f, 0, sizeof(f));
	f.q = mkq(64, flags, &s);
	if (!f.q)
		return;
	f.slow_consumer = 1;
	CHECK_EQ(pthread_create(&ct, NULL, consumer, &f), 0);
	for (unsigned i = 0; i < FLOOD_PRODUCERS; i++) {
		pa[i].f = &f;
		pa[i].id = i;
		CHECK_EQ(pthread_create(&pt[i], NULL, producer, &pa[i]), 0);
	}
	for (unsigned i = 0; i < FLOOD_PRODUCERS; i++)
		pthread_join(pt[i], NULL);
	pthread_join(ct, NULL);

	unsigned long pushed = 0, lost = 0, popped = 0;
	for (unsigned i = 0; i < FLOOD_PRODUCERS; i++) {
		pushed += f.pushed[i];
		lost += f.lost[i];
		popped += f.popped[i];
		/* per producer: every record either popped or lost */
		CHECK_EQ(f.popped[i] + f.lost[i], FLOOD_PER_PRODUCER);
	}
	CHECK_EQ(pushed, FLOOD_PRODUCERS * FLOOD_PER_PRODUCER);
	CHECK_EQ(popped + lost, pushed);
	CHECK_EQ(f.bad_ret, 0);
	CHECK_EQ(f.order_bad, 0);
	CHECK_EQ(f.content_bad, 0);
	CHECK(lost > 0); /* the slow consumer makes the queue overflow */
	struct viommu_fault_queue_status st = qst(f.q);
	CHECK_EQ(st.lost, lost);
	CHECK_EQ(st.tail, pushed - lost);
	CHECK_EQ(st.head, popped);
	CHECK_EQ(st.count, 0);
	CHECK_EQ(st.overflow, lost > 0);
	/* the notify callback saw every stored record, once, in order */
	CHECK_EQ(s.notified, pushed - lost);
	CHECK_EQ(s.notify_order_bad, 0);
	if (flags & VIOMMU_FQ_MASKED) {
		CHECK_EQ(st.raised, 0);
		CHECK_EQ(s.raised, 0);
		CHECK_EQ(st.pending, 1);
		viommu_fault_queue_set_mask(f.q, 0);
		CHECK_EQ(s.raised, 1);
		CHECK_EQ(qst(f.q).raised, 1);
		CHECK_EQ(qst(f.q).pending, 0);
	} else if (flags & VIOMMU_FQ_IRQ_ON_EMPTY) {
		CHECK_EQ(s.raised, st.raised);
		CHECK(st.raised >= 1);
		CHECK(st.raised <= pushed - lost);
	} else {
		CHECK_EQ(st.raised, pushed - lost);
		CHECK_EQ(s.raised, pushed - lost);
	}
	viommu_fault_queue_clear_overflow(f.q);
	st = qst(f.q);
	CHECK_EQ(st.overflow, 0);
	CHECK_EQ(st.lost, lost);
	printf("flood %s: pushed %lu popped %lu lost %lu raised %llu\n", name, pushed, popped, lost,
	       (unsigned long long)st.raised);
	viommu_fault_queue_destroy(f.q);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */

/* A flat JSON object parser: {"key":value,...} then "\n". Values: strings
 * without escapes, unsigned integers, null. Returns the number of keys, or
 * -1 when the text is not such an object. */
struct jkv {
	char key[32];
	char val[80]; /* strings with their quotes */
};

static int json_flat(const char *s, struct jkv *kv, int max)
{
	int n = 0;
	if (*s++ != '{')
		return -1;
	for (;;) {
		if (n == max || *s++ != '"')
			return -1;
		const char *k = s;
		while (*s && *s != '"')
			s++;
		if (*s != '"' || (size_t)(s - k) >= sizeof(kv[n].key))
			return -1;
		memcpy(kv[n].key, k, (size_t)(s - k));
		kv[n].key[s - k] = 0;
		s++;
		if (*s++ != ':')
			return -1;
		const char *v = s;
		if (*s == '"') {
			s++;
			while (*s && *s != '"' && *s != '\\')
				s++;
			if (*s != '"')
				return -1;
			s++;
		} else if (!strncmp(s, "null", 4)) {
			s += 4;
		} else if (*s >= '0' && *s <= '9') {
			while (*s >= '0' && *s <= '9')
				s++;
		} else {
			return -1;
		}
		if ((size_t)(s - v) >= sizeof(kv[n].val))
			return -1;
		memcpy(kv[n].val, v, (size_t)(s - v));
		kv[n].val[s - v] = 0;
		n++;
		if (*s == ',') {
			s++;
			continue;
		}
		if (*s++ != '}')
			return -1;
		break;
	}
	if (strcmp(s, "\n"))
		return -1;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (!strcmp(kv[i].key, kv[j].key))
				return -1;
	return n;
}

static const char *jget(const struct jkv *kv, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].val;
	return NULL;
}

/* Checks one record's JSON: the exact line, then key by key. */
static void check_json(int line, const struct viommu_fault_record *rec, const char *exp_line,
		       const char *const exp_kv[][2])
{
	char buf[512];
	memset(buf, 'Z', sizeof(buf));
	int n = viommu_fault_record_json(rec, buf, sizeof(buf));
	CHECK_EQ_AT(line, n, strlen(exp_line));
	p2_check_str(buf, exp_line, __FILE__, line, "json line");
	struct jkv kv[32];
	int nk = json_flat(buf, kv, 32);
	CHECK_EQ_AT(line, nk, 15);
	for (int i = 0; exp_kv[i][0]; i++) {
		const char *got = jget(kv, nk < 0 ? 0 : nk, exp_kv[i][0]);
		p2_check_str(got, exp_kv[i][1], __FILE__, line, exp_kv[i][0]);
	}
	/* snprintf semantics: the length needed, cut short with a NUL */
	CHECK_EQ_AT(line, viommu_fault_record_json(rec, NULL, 0), strlen(exp_line));
	size_t cuts[] = { 1, 2, 10, strlen(exp_line) / 2, strlen(exp_line), strlen(exp_line) + 1 };
	for (unsigned c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		char small[512];
		memset(small, 'Z', sizeof(small));
		int m = viommu_fault_record_json(rec, small, cuts[c]);
		CHECK_EQ_AT(line, m, strlen(exp_line));
		CHECK_EQ_AT(line, strlen(small), cuts[c] - 1);
		CHECK_AT(line, !strncmp(small, exp_line, cuts[c] - 1));
		CHECK_EQ_AT(line, small[cuts[c]], 'Z'); /* nothing written past len */
	}
	char one = 'Z';
	viommu_fault_record_json(rec, &one, 0); /* len 0: nothing written */
	CHECK_EQ_AT(line, one, 'Z');
}

static void test_json(void)
{
	struct viommu_fault_record r;

	p2_case("json: a full record");
	memset(&r, 0, sizeof(r));
	r.seq = 42;
	r.rid = p2_rid(1, 2, 3, 4);
	r.pasid = 5;
	r.addr = 0xdeadb000;
	r.access = VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_PRIV;
	r.reason = VIOMMU_FAULT_PERMISSION;
	r.stage = 1;
	r.level = 3;
	r.entry_addr = 0x1000;
	r.entry = 0x8000000000001003ull;
	static const char *const kv1[][2] = {
		{ "seq", "42" }, { "segment", "1" }, { "bus", "2" }, { "dev", "3" }, { "fn", "4" },
		{ "rid", "\"0001:02:03.4\"" }, { "pasid", "5" }, { "addr", "\"0xdeadb000\"" },
		{ "access", "\"rwp\"" }, { "reason", "\"permission\"" }, { "reason_code", "2" },
		{ "stage", "1" }, { "level", "3" }, { "entry_addr", "\"0x1000\"" },
		{ "entry", "\"0x8000000000001003\"" }, { NULL, NULL },
	};
	check_json(__LINE__, &r,
		   "{\"seq\":42,\"rid\":\"0001:02:03.4\",\"segment\":1,\"bus\":2,\"dev\":3,\"fn\":4,"
		   "\"pasid\":5,\"addr\":\"0xdeadb000\",\"access\":\"rwp\",\"reason\":\"permission\","
		   "\"reason_code\":2,\"stage\":1,\"level\":3,\"entry_addr\":\"0x1000\","
		   "\"entry\":\"0x8000000000001003\"}\n",
		   kv1);

	p2_case("json: no PASID, no access, interrupt reason");
	memset(&r, 0, sizeof(r));
	r.seq = 1;
	r.pasid = VIOMMU_NO_PASID;
	r.reason = VIOMMU_FAULT_IR_SOURCE_ID;
	static const char *const kv2[][2] = {
		{ "seq", "1" }, { "rid", "\"0000:00:00.0\"" }, { "pasid", "null" }, { "addr", "\"0x0\"" },
		{ "access", "\"\"" }, { "reason", "\"ir-source-id\"" }, { "reason_code", "16" },
		{ "stage", "0" }, { "level", "0" }, { "entry_addr", "\"0x0\"" }, { "entry", "\"0x0\"" },
		{ NULL, NULL },
	};
	check_json(__LINE__, &r,
		   "{\"seq\":1,\"rid\":\"0000:00:00.0\",\"segment\":0,\"bus\":0,\"dev\":0,\"fn\":0,"
		   "\"pasid\":null,\"addr\":\"0x0\",\"access\":\"\",\"reason\":\"ir-source-id\","
		   "\"reason_code\":16,\"stage\":0,\"level\":0,\"entry_addr\":\"0x0\",\"entry\":\"0x0\"}\n",
		   kv2);

	p2_case("json: extremes, unknown reason");
	memset(&r, 0, sizeof(r));
	r.seq = UINT64_MAX;
	r.rid.segment = 0xffff;
	r.rid.bus = 0xff;
	r.rid.devfn = 0xff;
	r.pasid = VIOMMU_PASID_MAX;
	r.addr = UINT64_MAX;
	r.access = VIOMMU_ACCESS_READ | VIOMMU_ACCESS_WRITE | VIOMMU_ACCESS_EXEC | VIOMMU_ACCESS_PRIV;
	r.reason = (enum viommu_fault_reason)77;
	r.stage = 2;
	r.level = 5;
	r.entry_addr = 0xfffffffffffff000ull;
	r.entry = 0xabcdef;
	static const char *const kv3[][2] = {
		{ "seq", "18446744073709551615" }, { "segment", "65535" }, { "bus", "255" }, { "dev", "31" },
		{ "fn", "7" }, { "rid", "\"ffff:ff:1f.7\"" }, { "pasid", "1048575" },
		{ "addr", "\"0xffffffffffffffff\"" }, { "access", "\"rwxp\"" }, { "reason", "\"unknown\"" },
		{ "reason_code", "77" }, { NULL, NULL },
	};
	check_json(__LINE__, &r,
		   "{\"seq\":18446744073709551615,\"rid\":\"ffff:ff:1f.7\",\"segment\":65535,\"bus\":255,"
		   "\"dev\":31,\"fn\":7,\"pasid\":1048575,\"addr\":\"0xffffffffffffffff\",\"access\":\"rwxp\","
		   "\"reason\":\"unknown\",\"reason_code\":77,\"stage\":2,\"level\":5,"
		   "\"entry_addr\":\"0xfffffffffffff000\",\"entry\":\"0xabcdef\"}\n",
		   kv3);

	p2_case("json: every reason has its name");
	for (unsigned reason = 0; reason < VIOMMU_FAULT_REASON_COUNT; reason++) {
		char buf[512], want[64];
		memset(&r, 0, sizeof(r));
		r.pasid = VIOMMU_NO_PASID;
		r.reason = (enum viommu_fault_reason)reason;
		viommu_fault_record_json(&r, buf, sizeof(buf));
		struct jkv kv[32];
		int nk = json_flat(buf, kv, 32);
		CHECK_EQ(nk, 15);
		snprintf(want, sizeof(want), "\"%s\"", viommu_fault_reason_name(r.reason));
		CHECK_STR(jget(kv, nk < 0 ? 0 : nk, "reason"), want);
		CHECK(strcmp(want, "\"unknown\""));
	}
}

/* ------------------------------------------------------------------------ */
/* Page requests                                                            */

#define MAX_RESP 64
struct resp_log {
	unsigned n;
	struct {
		struct viommu_rid rid;
		uint32_t pasid;
		uint16_t group;
		enum viommu_prq_response code;
	} r[MAX_RESP];
	unsigned raised;
};

static void on_respond(void *ctx, struct viommu_rid rid, uint32_t pasid, uint16_t group,
		       enum viommu_prq_response code)
{
	struct resp_log *l = ctx;
	if (l->n < MAX_RESP) {
		l->r[l->n].rid = rid;
		l->r[l->n].pasid = pasid;
		l->r[l->n].group = group;
		l->r[l->n].code = code;
	}
	l->n++;
}

static void on_prq_raise(void *ctx)
{
	struct resp_log *l = ctx;
	l->raised++;
}

/* How many responses went to (rid, pasid, group), and the code of the last. */
static unsigned resp_count(const struct resp_log *l, struct viommu_rid rid, uint32_t pasid, uint16_t group,
			   enum viommu_prq_response *code)
{
	unsigned c = 0;
	for (unsigned i = 0; i < l->n && i < MAX_RESP; i++) {
		if (l->r[i].rid.segment == rid.segment && l->r[i].rid.bus == rid.bus &&
		    l->r[i].rid.devfn == rid.devfn && l->r[i].pasid == pasid && l->r[i].group == group) {
			c++;
			if (code)
				*code = l->r[i].code;
		}
	}
	return c;
}

static struct viommu_page_request preq(struct viommu_rid rid, uint32_t pasid, uint64_t addr, uint16_t group,
				       int last)
{
	struct viommu_page_request q;
	memset(&q, 0, sizeof(q));
	q.rid = rid;
	q.pasid = pasid;
	q.addr = addr;
	q.access = VIOMMU_ACCESS_READ;
	q.group = group;
	q.last = last;
	return q;
}

static void test_prq(void)
{
	struct resp_log log;
	struct viommu_prq_config c = {
		.size = sizeof(c), .entries = 16, .raise = on_prq_raise, .respond = on_respond, .ctx = &log,
	};
	viommu_prq *q = NULL;
	struct viommu_prq_status st;
	struct viommu_page_request got;

	p2_case("prq create validation");
	memset(&log, 0, sizeof(log));
	CHECK_EQ(viommu_prq_create(NULL, NULL, &q), -EINVAL);
	CHECK_EQ(viommu_prq_create(&c, NULL, NULL), -EINVAL);
	c.size = 4;
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), -EINVAL);
	c.size = sizeof(c);
	c.entries = 0;
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), -EINVAL);
	c.entries = (1u << 20) + 1;
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), -EINVAL);
	c.entries = 16;
	c.respond = NULL;
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), -EINVAL);
	c.respond = on_respond;
	viommu_prq_destroy(NULL);

	p2_case("prq: several devices and PASIDs, answered out of order");
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), 0);
	if (!q)
		return;
	struct viommu_rid A = p2_rid(0, 1, 0, 0), B = p2_rid(0, 2, 3, 1), C = p2_rid(1, 1, 0, 0);
	struct viommu_page_request reqs[] = {
		preq(A, 1, 0x10123, 5, 0),   /* group 5 of (A,1), not last yet */
		preq(B, 1, 0x20000, 5, 1),   /* same group number, other device */
		preq(A, 2, 0x30fff, 5, 1),   /* same device, other PASID */
		preq(A, 1, 0x11000, 5, 1),   /* last of (A,1,5) */
		preq(C, VIOMMU_NO_PASID, 0x40000, 511, 1),
		preq(A, 1, 0x50000, 6, 0),   /* (A,1,6): never gets its last */
	};
	unsigned nreq = sizeof(reqs) / sizeof(reqs[0]);
	for (unsigned i = 0; i < nreq; i++)
		CHECK_EQ(viommu_prq_submit(q, &reqs[i]), 0);
	CHECK(log.raised >= 1);
	viommu_prq_get_status(q, &st);
	CHECK_EQ(st.count, nreq);
	CHECK_EQ(st.entries, 16);
	CHECK_EQ(st.submitted, nreq);
	CHECK_EQ(st.dropped, 0);
	CHECK_EQ(st.groups_outstanding, 5);
	for (unsigned i = 0; i < nreq; i++) {
		memset(&got, 0, sizeof(got));
		CHECK_EQ(viommu_prq_pop(q, &got), 0);
		CHECK_EQ(got.seq, i + 1);
		CHECK_EQ(got.rid.bus, reqs[i].rid.bus);
		CHECK_EQ(got.rid.devfn, reqs[i].rid.devfn);
		CHECK_EQ(got.rid.segment, reqs[i].rid.segment);
		CHECK_EQ(got.pasid, reqs[i].pasid);
		CHECK_EQ(got.addr & ~0xfffull, reqs[i].addr & ~0xfffull);
		CHECK_EQ(got.group, reqs[i].group);
		CHECK_EQ(got.last, reqs[i].last);
		CHECK_EQ(got.access, VIOMMU_ACCESS_READ);
	}
	CHECK_EQ(viommu_prq_pop(q, &got), -EAGAIN);
	CHECK_EQ(log.n, 0); /* nobody answered yet */

	/* unknown groups and groups whose last has not come */
	CHECK_EQ(viommu_prq_respond(q, A, 1, 7, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(viommu_prq_respond(q, A, 3, 5, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(viommu_prq_respond(q, p2_rid(0, 1, 0, 1), 1, 5, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(viommu_prq_respond(q, p2_rid(1, 2, 3, 1), 1, 5, VIOMMU_PRQ_SUCCESS), -ENOENT); /* segment */
	CHECK_EQ(viommu_prq_respond(q, A, 1, 6, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(viommu_prq_respond(q, C, 0, 511, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(log.n, 0);
	/* bad arguments */
	CHECK_EQ(viommu_prq_respond(NULL, A, 1, 5, VIOMMU_PRQ_SUCCESS), -EINVAL);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 512, VIOMMU_PRQ_SUCCESS), -EINVAL);
	CHECK_EQ(viommu_prq_respond(q, A, VIOMMU_PASID_MAX + 1, 5, VIOMMU_PRQ_SUCCESS), -EINVAL);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 5, (enum viommu_prq_response)2), -EINVAL);
	CHECK_EQ(log.n, 0);

	/* out of order: B, C, (A,2), (A,1) */
	CHECK_EQ(viommu_prq_respond(q, B, 1, 5, VIOMMU_PRQ_INVALID), 0);
	CHECK_EQ(viommu_prq_respond(q, C, VIOMMU_NO_PASID, 511, VIOMMU_PRQ_FAILURE), 0);
	CHECK_EQ(viommu_prq_respond(q, A, 2, 5, VIOMMU_PRQ_SUCCESS), 0);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 5, VIOMMU_PRQ_SUCCESS), 0);
	/* answered groups are gone */
	CHECK_EQ(viommu_prq_respond(q, B, 1, 5, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 5, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(log.n, 4);
	enum viommu_prq_response code = (enum viommu_prq_response)99;
	CHECK_EQ(resp_count(&log, B, 1, 5, &code), 1);
	CHECK_EQ(code, VIOMMU_PRQ_INVALID);
	CHECK_EQ(resp_count(&log, C, VIOMMU_NO_PASID, 511, &code), 1);
	CHECK_EQ(code, VIOMMU_PRQ_FAILURE);
	CHECK_EQ(resp_count(&log, A, 2, 5, &code), 1);
	CHECK_EQ(code, VIOMMU_PRQ_SUCCESS);
	CHECK_EQ(resp_count(&log, A, 1, 5, &code), 1);
	CHECK_EQ(resp_count(&log, A, 1, 6, NULL), 0);
	CHECK_EQ(log.r[0].rid.bus, B.bus); /* the order we answered in */
	CHECK_EQ(log.r[3].pasid, 1);
	viommu_prq_get_status(q, &st);
	CHECK_EQ(st.responded, 4);
	CHECK_EQ(st.groups_outstanding, 1); /* (A,1,6) */
	/* its last arrives: now it can be answered */
	struct viommu_page_request l6 = preq(A, 1, 0x51000, 6, 1);
	CHECK_EQ(viommu_prq_submit(q, &l6), 0);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 6, VIOMMU_PRQ_SUCCESS), 0);
	CHECK_EQ(resp_count(&log, A, 1, 6, NULL), 1);
	/* the group index may be used again after its answer */
	CHECK_EQ(viommu_prq_submit(q, &reqs[1]), 0);
	CHECK_EQ(viommu_prq_respond(q, B, 1, 5, VIOMMU_PRQ_SUCCESS), 0);
	CHECK_EQ(resp_count(&log, B, 1, 5, NULL), 2);

	/* bad submissions */
	struct viommu_page_request bad = preq(A, 1, 0, 512, 1);
	CHECK_EQ(viommu_prq_submit(q, &bad), -EINVAL);
	bad = preq(A, VIOMMU_PASID_MAX + 1, 0, 1, 1);
	CHECK_EQ(viommu_prq_submit(q, &bad), -EINVAL);
	CHECK_EQ(viommu_prq_submit(q, NULL), -EINVAL);
	CHECK_EQ(viommu_prq_submit(NULL, &reqs[0]), -EINVAL);
	CHECK_EQ(viommu_prq_pop(NULL, &got), -EINVAL);
	viommu_prq_destroy(q);
	q = NULL;

	p2_case("prq: full queue");
	memset(&log, 0, sizeof(log));
	c.entries = 2;
	CHECK_EQ(viommu_prq_create(&c, NULL, &q), 0);
	if (!q)
		return;
	struct viommu_page_request f1 = preq(A, 1, 0x1000, 1, 0);
	struct viommu_page_request f2 = preq(B, 2, 0x2000, 2, 1);
	CHECK_EQ(viommu_prq_submit(q, &f1), 0);
	CHECK_EQ(viommu_prq_submit(q, &f2), 0);
	/* full: a request that is not last is dropped without an answer */
	struct viommu_page_request f3 = preq(C, 3, 0x3000, 3, 0);
	CHECK_EQ(viommu_prq_submit(q, &f3), -ENOSPC);
	CHECK_EQ(log.n, 0);
	/* full: a last request is answered SUCCESS at once */
	struct viommu_page_request f4 = preq(C, 3, 0x4000, 3, 1);
	CHECK_EQ(viommu_prq_submit(q, &f4), -ENOSPC);
	CHECK_EQ(log.n, 1);
	CHECK_EQ(resp_count(&log, C, 3, 3, &code), 1);
	CHECK_EQ(code, VIOMMU_PRQ_SUCCESS);
	/* and nobody can answer it a second time */
	CHECK_EQ(viommu_prq_respond(q, C, 3, 3, VIOMMU_PRQ_SUCCESS), -ENOENT);
	/* the last of a group already queued in part, on a full queue:
	 * answered once, and the earlier part cannot be answered again */
	struct viommu_page_request f5 = preq(A, 1, 0x5000, 1, 1);
	CHECK_EQ(viommu_prq_submit(q, &f5), -ENOSPC);
	CHECK_EQ(resp_count(&log, A, 1, 1, &code), 1);
	CHECK_EQ(code, VIOMMU_PRQ_SUCCESS);
	CHECK_EQ(viommu_prq_respond(q, A, 1, 1, VIOMMU_PRQ_SUCCESS), -ENOENT);
	CHECK_EQ(resp_count(&log, A, 1, 1, NULL), 1);
	viommu_prq_get_status(q, &st);
	CHECK_EQ(st.count, 2);
	CHECK_EQ(st.submitted, 5);
	CHECK_EQ(st.dropped, 3);
	CHECK_EQ(st.auto_responded, 2);
	CHECK_EQ(st.responded, 0);
	/* the queued B request is still answerable, once */
	CHECK_EQ(viommu_prq_respond(q, B, 2, 2, VIOMMU_PRQ_INVALID), 0);
	CHECK_EQ(viommu_prq_respond(q, B, 2, 2, VIOMMU_PRQ_INVALID), -ENOENT);
	CHECK_EQ(resp_count(&log, B, 2, 2, NULL), 1);
	/* drain: room again */
	CHECK_EQ(viommu_prq_pop(q, &got), 0);
	CHECK_EQ(got.seq, 1);
	CHECK_EQ(viommu_prq_pop(q, &got), 0);
	CHECK_EQ(got.seq, 2);
	CHECK_EQ(viommu_prq_submit(q, &f4), 0);
	CHECK_EQ(viommu_prq_pop(q, &got), 0);
	CHECK_EQ(got.seq, 3); /* dropped requests took no sequence number */
	CHECK_EQ(viommu_prq_respond(q, C, 3, 3, VIOMMU_PRQ_SUCCESS), 0);
	CHECK_EQ(resp_count(&log, C, 3, 3, NULL), 2);
	viommu_prq_destroy(q);
}

/* ------------------------------------------------------------------------ */
/* viommu_set_fault_queue on a real instance                                */

#define RAM_SIZE (1ull << 20)

struct fault_log {
	unsigned n;
	struct viommu_fault_record last;
};

static void on_fault(void *ctx, const struct viommu_fault_record *rec)
{
	struct fault_log *l = ctx;
	l->n++;
	l->last = *rec;
}

struct inst {
	viommu *v;
	viommu_domain *d;
	viommu_dev *dev, *lone;
	struct fault_log faults;
};

static int inst_create(struct inst *in, uint8_t *ram, uint8_t bus)
{
	struct viommu_mem_region reg = { .gpa = 0, .size = RAM_SIZE, .host = ram };
	struct viommu_config c;
	memset(in, 0, sizeof(*in));
	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.mem.size = sizeof(c.mem);
	c.mem.regions = &reg;
	c.mem.nr_regions = 1;
	c.fault = on_fault;
	c.fault_ctx = &in->faults;
	if (viommu_create(&c, NULL, &in->v))
		return -1;
	struct viommu_domain_config dc = { .size = sizeof(dc), .type = VIOMMU_DOMAIN_PAGING,
					   .flags = VIOMMU_DOMAIN_F_HOST_OWNED,
					   .pt = p2_pt_cfg(VIOMMU_PT_X86_64, 4) };
	uint64_t done;
	if (viommu_domain_create(in->v, &dc, &in->d) || viommu_dev_create(in->v, p2_rid(0, bus, 1, 0), &in->dev) ||
	    viommu_dev_create(in->v, p2_rid(0, bus, 2, 0), &in->lone) ||
	    viommu_dev_attach(in->dev, VIOMMU_NO_PASID, in->d, NULL) ||
	    viommu_domain_map(in->d, 0x1000, 0x2000, 0x1000,
			      VIOMMU_PERM_READ | VIOMMU_PERM_WRITE | VIOMMU_PERM_USER, &done))
		return -1;
	return 0;
}

static void test_set_fault_queue(void)
{
	uint8_t *ram = p2_ram_alloc(RAM_SIZE);
	struct inst a, b;
	struct irqs s, s2;
	struct viommu_translation t;
	struct viommu_fault_record got;
	viommu_fault_queue *q = NULL, *q2 = NULL;

	p2_case("viommu_set_fault_queue");
	if (!ram || inst_create(&a, ram, 1) || inst_create(&b, ram, 2)) {
		CHECK(0);
		return;
	}
	q = mkq(8, 0, &s);
	q2 = mkq(8, 0, &s2);
	CHECK_EQ(viommu_set_fault_queue(NULL, q), -EINVAL);
	CHECK_EQ(viommu_set_fault_queue(a.v, q), 0);
	CHECK_EQ(viommu_set_fault_queue(a.v, q), 0); /* again: still its queue */

	/* a mapped page translates: nothing recorded */
	CHECK_EQ(viommu_translate(a.dev, VIOMMU_NO_PASID, 0x1000, VIOMMU_ACCESS_READ, &t), 0);
	CHECK_EQ(qst(q).tail, 0);
	/* a translation fault lands in the queue with its reason */
	CHECK_EQ(viommu_translate(a.dev, VIOMMU_NO_PASID, 0x5000, VIOMMU_ACCESS_WRITE, &t), -EFAULT);
	CHECK_EQ(t.fault.reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
	CHECK_EQ(got.reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(got.seq, t.fault.seq);
	CHECK_EQ(got.seq, 1);
	CHECK_EQ(got.addr, 0x5000);
	CHECK_EQ(got.access & VIOMMU_ACCESS_WRITE, VIOMMU_ACCESS_WRITE);
	CHECK_EQ(got.rid.bus, 1);
	CHECK_EQ(got.rid.devfn, 1 << 3);
	CHECK_EQ(got.pasid, VIOMMU_NO_PASID);
	CHECK_EQ(a.faults.n, 1); /* the fault callback still hears it */
	CHECK_EQ(a.faults.last.seq, 1);
	CHECK_EQ(s.raised, 1);
	CHECK_EQ(s.notified, 1);
	/* a device that is not attached: blocked */
	CHECK_EQ(viommu_translate(a.lone, VIOMMU_NO_PASID, 0x1000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
	CHECK_EQ(got.reason, VIOMMU_FAULT_BLOCKED);
	CHECK_EQ(got.seq, 2);
	CHECK_EQ(got.rid.devfn, 2 << 3);
	/* a DMA fault too */
	uint8_t buf[16];
	size_t done = 99;
	struct viommu_fault_record df;
	CHECK_EQ(viommu_dma_read(a.dev, VIOMMU_NO_PASID, 0x1ff8, buf, 16, 0, &done, &df), -EFAULT);
	CHECK_EQ(done, 8);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
	CHECK_EQ(got.reason, VIOMMU_FAULT_NOT_PRESENT);
	CHECK_EQ(got.addr, 0x2000);
	CHECK_EQ(got.seq, df.seq);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), -EAGAIN);

	/* a queue serves one instance */
	CHECK_EQ(viommu_set_fault_queue(b.v, q), -EBUSY);
	CHECK_EQ(viommu_translate(b.dev, VIOMMU_NO_PASID, 0x5000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(qst(q).tail, 3); /* b's fault is not in it */
	CHECK_EQ(b.faults.n, 1);

	/* a second queue replaces the first on the instance */
	CHECK_EQ(viommu_set_fault_queue(a.v, q2), 0);
	CHECK_EQ(viommu_translate(a.dev, VIOMMU_NO_PASID, 0x6000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(qst(q).tail, 3);
	CHECK_EQ(qst(q2).tail, 1);
	/* ...and the first is free for another instance */
	CHECK_EQ(viommu_set_fault_queue(b.v, q), 0);
	CHECK_EQ(viommu_translate(b.dev, VIOMMU_NO_PASID, 0x7000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(viommu_fault_queue_pop(q, &got), 0);
	CHECK_EQ(got.addr, 0x7000);
	CHECK_EQ(got.seq, 2); /* b's own sequence */
	CHECK_EQ(got.rid.bus, 2);

	/* detach: faults stop landing; the queue can move */
	CHECK_EQ(viommu_set_fault_queue(b.v, NULL), 0);
	CHECK_EQ(viommu_translate(b.dev, VIOMMU_NO_PASID, 0x8000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(qst(q).tail, 4);
	CHECK_EQ(viommu_set_fault_queue(a.v, NULL), 0);
	CHECK_EQ(viommu_translate(a.dev, VIOMMU_NO_PASID, 0x8000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(qst(q2).tail, 1);
	CHECK_EQ(viommu_set_fault_queue(a.v, q), 0);
	CHECK_EQ(viommu_set_fault_queue(b.v, q2), 0);
	CHECK_EQ(viommu_translate(b.dev, VIOMMU_NO_PASID, 0x9000, VIOMMU_ACCESS_READ, &t), -EFAULT);
	CHECK_EQ(qst(q2).tail, 2);
	/* destroying an instance releases its queue */
	viommu_destroy(b.v);
	b.v = NULL;
	CHECK_EQ(viommu_set_fault_queue(a.v, q2), 0);
	CHECK_EQ(viommu_set_fault_queue(a.v, NULL), 0);
	viommu_destroy(a.v);
	viommu_fault_queue_destroy(q);
	viommu_fault_queue_destroy(q2);
	free(ram);
}

/* ------------------------------------------------------------------------ */
/* Queue callbacks that call into the instance                              */

/*
 * A raise callback is where a front-end or VMM signals the queue's interrupt,
 * and the natural thing for it to do is to call into the instance: deliver
 * the IOMMU's own interrupt through viommu_ir_deliver() (which may fault),
 * or detach the queue. Each case runs on its own thread under a watchdog, so
 * a deadlock is reported as a failure instead of hanging the test.
 */
enum cb_action { CB_DELIVER_FAULTING, CB_DETACH, CB_TRANSLATE_FAULTING };

struct cb_case {
	viommu *v;
	viommu_dev *dev;
	viommu_fault_queue *q;
	enum cb_action action;
	int in_cb;            /* recursion guard */
	int cb_calls, cb_ret;
};

static void cb_act(struct cb_case *c)
{
	if (c->in_cb)
		return;
	c->in_cb = 1;
	c->cb_calls++;
	if (c->action == CB_DELIVER_FAULTING) {
		/* a compatibility-format MSI while those are blocked */
		c->cb_ret = viommu_ir_deliver(c->v, p2_rid(0, 0, 0, 0), 0xfee00000ull, 0x30);
	} else if (c->action == CB_DETACH) {
		c->cb_ret = viommu_set_fault_queue(c->v, NULL);
	} else {
		struct viommu_translation t;
		c->cb_ret = viommu_translate(c->dev, VIOMMU_NO_PASID, 0x9000, VIOMMU_ACCESS_READ, &t);
	}
	c->in_cb = 0;
}

static void cb_raise(void *ctx)
{
	struct cb_case *c = ctx;
	if (c->action != CB_TRANSLATE_FAULTING)
		cb_act(c);
}

static void cb_notify(void *ctx, const struct viommu_fault_record *rec)
{
	struct cb_case *c = ctx;
	(void)rec;
	if (c->action == CB_TRANSLATE_FAULTING)
		cb_act(c);
}

static void *cb_body(void *p)
{
	struct cb_case *c = p;
	struct viommu_translation t;
	/* the fault that sets it all off: a device with nothing attached */
	viommu_translate(c->dev, VIOMMU_NO_PASID, 0x1000, VIOMMU_ACCESS_READ, &t);
	return NULL;
}

static void test_callbacks_into_instance(void)
{
	static const char *const names[] = { "raise delivers a faulting MSI", "raise detaches the queue",
					     "notify makes a faulting request" };
	for (int act = CB_DELIVER_FAULTING; act <= CB_TRANSLATE_FAULTING; act++) {
		struct cb_case *c = calloc(1, sizeof(*c));
		struct viommu_config vc;
		struct viommu_ir_config ic = { .size = sizeof(ic), .format = VIOMMU_IR_VTD, .table = 0, .entries = 1 };
		struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 16, .raise = cb_raise,
							.notify = cb_notify };
		p2_case("callback into the instance: %s", names[act]);
		if (!c) {
			CHECK(0);
			return;
		}
		c->action = (enum cb_action)act;
		qc.ctx = c;
		memset(&vc, 0, sizeof(vc));
		vc.size = sizeof(vc);
		vc.mem.size = sizeof(vc.mem);
		if (viommu_create(&vc, NULL, &c->v) || viommu_ir_configure(c->v, &ic) ||
		    viommu_dev_create(c->v, p2_rid(0, 5, 0, 0), &c->dev) ||
		    viommu_fault_queue_create(&qc, NULL, &c->q) || viommu_set_fault_queue(c->v, c->q)) {
			CHECK(0);
			return;
		}
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, cb_body, c), 0);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		int r = pthread_timedjoin_np(t, NULL, &ts);
		if (!CHECK_EQ(r, 0)) {
			fprintf(stderr, "  deadlock: the callback did not return within 5 s (case left hanging)\n");
			continue; /* the instance is stuck: leave it */
		}
		CHECK_EQ(c->cb_calls, 1);
		if (act == CB_DETACH)
			CHECK_EQ(c->cb_ret, 0);
		else
			CHECK_EQ(c->cb_ret, -EFAULT);
		viommu_set_fault_queue(c->v, NULL);
		viommu_destroy(c->v);
		viommu_fault_queue_destroy(c->q);
		free(c);
	}
}

/* ------------------------------------------------------------------------ */
/* Faults from many threads: the queue holds them in sequence order         */

#define SEQ_THREADS 4
#define SEQ_PER_THREAD 25000

struct seq_arg {
	viommu_dev *dev;
};

static void *seq_body(void *p)
{
	struct seq_arg *a = p;
	struct viommu_translation t;
	for (uint64_t i = 0; i < SEQ_PER_THREAD; i++)
		viommu_translate(a->dev, VIOMMU_NO_PASID, i << 12, VIOMMU_ACCESS_READ, &t);
	return NULL;
}

static void test_concurrent_seq_order(void)
{
	/*
	 * "Records keep their per-instance sequence numbers, so a consumer can
	 * see exactly which ones it missed": a consumer that counts gaps in
	 * the sequence can only do so if the queue holds records in sequence
	 * order, also when several threads fault at once.
	 */
	unsigned long inversions = 0, missing = 0, total = 0;
	for (int round = 0; round < 3; round++) {
		viommu *v = NULL;
		viommu_fault_queue *q = NULL;
		struct viommu_config vc;
		struct viommu_fault_queue_config qc = { .size = sizeof(qc), .entries = 1u << 17 };
		struct seq_arg args[SEQ_THREADS];
		pthread_t th[SEQ_THREADS];

		p2_case("concurrent faults in sequence order (round %d)", round);
		memset(&vc, 0, sizeof(vc));
		vc.size = sizeof(vc);
		vc.mem.size = sizeof(vc.mem);
		if (viommu_create(&vc, NULL, &v) || viommu_fault_queue_create(&qc, NULL, &q) ||
		    viommu_set_fault_queue(v, q)) {
			CHECK(0);
			return;
		}
		for (int i = 0; i < SEQ_THREADS; i++)
			CHECK_EQ(viommu_dev_create(v, p2_rid(0, (uint8_t)(i + 1), 0, 0), &args[i].dev), 0);
		for (int i = 0; i < SEQ_THREADS; i++)
			pthread_create(&th[i], NULL, seq_body, &args[i]);
		for (int i = 0; i < SEQ_THREADS; i++)
			pthread_join(th[i], NULL);
		uint8_t *seen = calloc(SEQ_THREADS * SEQ_PER_THREAD + 1, 1);
		struct viommu_fault_record r;
		uint64_t last = 0;
		while (viommu_fault_queue_pop(q, &r) == 0) {
			if (r.seq <= last)
				inversions++;
			last = r.seq;
			if (seen && r.seq >= 1 && r.seq <= SEQ_THREADS * SEQ_PER_THREAD)
				seen[r.seq] = 1;
			total++;
		}
		for (uint64_t s = 1; seen && s <= SEQ_THREADS * SEQ_PER_THREAD; s++)
			missing += !seen[s];
		free(seen);
		viommu_set_fault_queue(v, NULL);
		viommu_destroy(v);
		viommu_fault_queue_destroy(q);
	}
	CHECK_EQ(total, 3ul * SEQ_THREADS * SEQ_PER_THREAD);
	CHECK_EQ(missing, 0);
	CHECK_EQ(inversions, 0);
	if (inversions)
		fprintf(stderr, "  %lu records came out of the queue before a record with a lower seq\n", inversions);
}

int main(void)
{
	test_create_validation();
	test_push_pop_order();
	test_overflow();
	test_irq_modes();
	test_reentrant_callbacks();
	run_flood(0, "irq on every record");
	run_flood(VIOMMU_FQ_IRQ_ON_EMPTY, "irq on empty");
	run_flood(VIOMMU_FQ_MASKED, "masked");
	test_json();
	test_prq();
	test_set_fault_queue();
	test_callbacks_into_instance();
	test_concurrent_seq_order();
	return p2_done("test_faultlog");
}
