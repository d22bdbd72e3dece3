/* SPDX-License-Identifier: MIT */
/*
 * The VMM's I/O thread: events reach their handler, a deleted handler is
 * never called again (deleted from another thread, from its own handler, or
 * while an event for it is already out of epoll), many handlers each get
 * their own events, and the real-time request reports what it got.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../vmm/iothread.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); failures++; } } while (0)

#define N 300

struct slot {
	struct iothread *t;
	int fd;
	int calls;       /* atomic */
	int del_self;    /* delete itself on its first call */
	int deleted;     /* set (atomically) once it was deleted */
	int late;        /* calls seen after deletion */
	int running;     /* atomic: inside the handler now */
};

static void on_event(void *ctx, int fd)
{
	struct slot *s = ctx;
	__atomic_store_n(&s->running, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->deleted, __ATOMIC_ACQUIRE))
		__atomic_fetch_add(&s->late, 1, __ATOMIC_RELAXED);
	iothread_drain(fd);
	/* Long enough that a delete which did not wait for a call in
	 * progress would return while this one still runs. */
	usleep(200);
	__atomic_fetch_add(&s->calls, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->running, 0, __ATOMIC_SEQ_CST);
	if (s->del_self && !__atomic_load_n(&s->deleted, __ATOMIC_RELAXED)) {
		__atomic_store_n(&s->deleted, 1, __ATOMIC_RELEASE);
		CHECK(iothread_del(s->t, fd) == 0);
	}
}

/* A handler that deletes another one whose event is in the same batch. */
struct killer {
	struct iothread *t;
	struct slot *victim;
	int calls;
};

static void on_kill(void *ctx, int fd)
{
	struct killer *k = ctx;
	iothread_drain(fd);
	__atomic_store_n(&k->victim->deleted, 1, __ATOMIC_RELEASE);
	CHECK(iothread_del(k->t, k->victim->fd) == 0);
	__atomic_fetch_add(&k->calls, 1, __ATOMIC_RELEASE);
}

static void ring(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof(one)) != sizeof(one))
		CHECK(0);
}

static int wait_calls(struct slot *s, int n)
{
	for (int i = 0; i < 2000; i++) {
		if (__atomic_load_n(&s->calls, __ATOMIC_RELAXED) >= n)
			return 1;
		usleep(1000);
	}
	return 0;
}

int main(void)
{
	struct iothread *t;
	CHECK(iothread_create(&t) == 0);
	static struct slot slots[N];
	for (int i = 0; i < N; i++) {
		slots[i].t = t;
		slots[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		CHECK(slots[i].fd >= 0);
		slots[i].del_self = (i % 7 == 3);
		CHECK(iothread_add(t, slots[i].fd, on_event, &slots[i]) == 0);
	}
	/* Deleted before the thread starts: freed at once, never called. */
	__atomic_store_n(&slots[0].deleted, 1, __ATOMIC_RELEASE);
	CHECK(iothread_del(t, slots[0].fd) == 0);
	CHECK(iothread_del(t, slots[0].fd) == -ENOENT);
	/* Both rung before the loop's first epoll_wait, the killer first: its
	 * handler deletes the victim whose event is already in the batch. */
	struct slot victim = { .t = t, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
	struct killer k = { .t = t, .victim = &victim };
	int kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(victim.fd >= 0 && kfd >= 0);
	CHECK(iothread_add(t, kfd, on_kill, &k) == 0);
	CHECK(iothread_add(t, victim.fd, on_event, &victim) == 0);
	ring(kfd);
	ring(victim.fd);
	CHECK(iothread_start(t) == 0);
	ring(slots[0].fd);
	for (int i = 0; i < 2000 && !__atomic_load_n(&k.calls, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	CHECK(k.calls == 1);
	usleep(10000);
	CHECK(victim.calls == 0);

	/* Every other handler gets its event. */
	for (int i = 1; i < N; i++)
		ring(slots[i].fd);
	for (int i = 1; i < N; i++)
		CHECK(wait_calls(&slots[i], 1));
	/* The self-deleted ones are gone: ring again, only the others answer. */
	for (int i = 1; i < N; i++)
		ring(slots[i].fd);
	for (int i = 1; i < N; i++)
		if (!slots[i].del_self)
			CHECK(wait_calls(&slots[i], 2));

	/* Deletion from this thread while events for the handlers are pending
	 * or already out of epoll: after del returns, no call. */
	for (int round = 0; round < 50; round++)
		for (int i = 1; i < N; i++)
			if (!slots[i].del_self && i % 5 == round % 5)
				ring(slots[i].fd);
	for (int i = 1; i < N; i++) {
		if (slots[i].del_self || i % 2)
			continue;
		ring(slots[i].fd);
		usleep(100); /* often while its handler runs */
		CHECK(iothread_del(t, slots[i].fd) == 0);
		/* del waited for a call in progress */
		CHECK(__atomic_load_n(&slots[i].running, __ATOMIC_SEQ_CST) == 0);
		__atomic_store_n(&slots[i].deleted, 1, __ATOMIC_RELEASE);
		ring(slots[i].fd);
	}
	usleep(20000);
	for (int i = 0; i < N; i++)
		CHECK(__atomic_load_n(&slots[i].late, __ATOMIC_RELAXED) == 0);

	/* The real-time request either works or says why not. */
	int r = iothread_realtime(t);
	CHECK(r == 0 || r == -EPERM);
	printf("iothread_realtime: %s\n", r ? strerror(-r) : "SCHED_FIFO");
	int before = __atomic_load_n(&slots[1].calls, __ATOMIC_RELAXED);
	ring(slots[1].fd);
	CHECK(wait_calls(&slots[1], before + 1));

	iothread_destroy(t);
	for (int i = 0; i < N; i++)
		close(slots[i].fd);
	close(kfd);
	close(victim.fd);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("iothread: ok\n");
	return 0;
}
