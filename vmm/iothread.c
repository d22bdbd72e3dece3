/* SPDX-License-Identifier: MIT */
/*
 * The VMM's I/O thread: one epoll loop that serves file descriptors (KVM
 * ioeventfds, VFIO interrupt eventfds, timers) off the vCPU threads, so a
 * guest's doorbell write costs an exit into KVM only, not a trip to
 * userspace on the vCPU that wrote it.
 *
 * Handlers are registered before the thread starts or while it runs; a
 * handler is never called after iothread_del returns (del waits for a call
 * in progress when it runs on another thread). Handlers run one at a time on
 * the I/O thread. Dispatching an event costs the same with one handler or
 * hundreds (the VT-d doorbell registers 256): a deleted handler is marked
 * dead and freed only once no event out of epoll can name it.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iothread.h"

struct io_handler {
	struct io_handler *next;
	int fd;
	int dead;       /* deleted: on the zombie list, never called again */
	iothread_fn fn;
	void *ctx;
};

struct iothread {
	int epfd;
	int stopfd;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;   /* the handler list */
	pthread_mutex_t run;    /* held while a handler runs */
	struct io_handler *handlers;
	/* Deleted handlers an event returned by the current epoll_wait may
	 * still name; the loop frees them before it waits again. */
	struct io_handler *zombies;
};

/* The iothread whose loop runs on this thread, if any: a handler that
 * deletes a handler of its own loop must not wait for itself. */
static __thread struct iothread *loop_of_thread;

int iothread_create(struct iothread **out)
{
	struct iothread *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->run, NULL);
	t->stopfd = -1;
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0)
		goto err;
	t->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->stopfd < 0)
		goto err;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->stopfd, &ev) < 0)
		goto err;
	*out = t;
	return 0;
err:;
	int e = -errno;
	iothread_destroy(t);
	return e;
}

int iothread_add(struct iothread *t, int fd, iothread_fn fn, void *ctx)
{
	struct io_handler *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->fd = fd;
	h->fn = fn;
	h->ctx = ctx;
	pthread_mutex_lock(&t->lock);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = h };
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = -errno;
		pthread_mutex_unlock(&t->lock);
		free(h);
		return e;
	}
	h->next = t->handlers;
	t->handlers = h;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int iothread_del(struct iothread *t, int fd)
{
	pthread_mutex_lock(&t->lock);
	struct io_handler **pp = &t->handlers;
	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	struct io_handler *h = *pp;
	if (!h) {
		pthread_mutex_unlock(&t->lock);
		return -ENOENT;
	}
	*pp = h->next;
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
	__atomic_store_n(&h->dead, 1, __ATOMIC_RELEASE);
	int zombie = t->started;
	if (zombie) {
		h->next = t->zombies;
		t->zombies = h;
	}
	pthread_mutex_unlock(&t->lock);
	/* An event for h may already be out of epoll_wait: wait for the loop to
	 * finish the handler it runs (unless we are that handler); the loop
	 * sees h dead before it would call it again. */
	if (!zombie)
		free(h);
	else if (loop_of_thread != t) {
		pthread_mutex_lock(&t->run);
		pthread_mutex_unlock(&t->run);
	}
	return 0;
}

static void free_list(struct io_handler *h)
{
	while (h) {
		struct io_handler *next = h->next;
		free(h);
		h = next;
	}
}

static void *loop(void *arg)
{
	struct iothread *t = arg;
	loop_of_thread = t;
	struct epoll_event evs[32];
	for (;;) {
		pthread_mutex_lock(&t->lock);
		struct io_handler *z = t->zombies;
		t->zombies = NULL;
		pthread_mutex_unlock(&t->lock);
		free_list(z);
		int n = epoll_wait(t->epfd, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct io_handler *h = evs[i].data.ptr;
			if (!h)
				return NULL; /* the stop eventfd */
			pthread_mutex_lock(&t->run);
			if (!__atomic_load_n(&h->dead, __ATOMIC_ACQUIRE))
				h->fn(h->ctx, h->fd);
			pthread_mutex_unlock(&t->run);
		}
	}
	return NULL;
}

int iothread_start(struct iothread *t)
{
	/* Started before the thread runs: a handler it calls that deletes a
	 * handler must find it so (and leave the freeing to the loop), not
	 * free one whose event the loop still holds. */
	pthread_mutex_lock(&t->lock);
	t->started = 1;
	pthread_mutex_unlock(&t->lock);
	int r = -pthread_create(&t->thread, NULL, loop, t);
	if (r) {
		pthread_mutex_lock(&t->lock);
		t->started = 0;
		pthread_mutex_unlock(&t->lock);
	}
	return r;
}

int iothread_realtime(struct iothread *t)
{
	if (!t->started)
		return -EINVAL;
	struct sched_param sp = { .sched_priority = 1 };
	return -pthread_setschedparam(t->thread, SCHED_FIFO, &sp);
}

void iothread_destroy(struct iothread *t)
{
	if (!t)
		return;
	if (t->started) {
		uint64_t one = 1;
		if (write(t->stopfd, &one, sizeof(one)) != sizeof(one)) {
			/* An eventfd write only fails when the counter would
			 * overflow, which means a stop is already pending. */
		}
		pthread_join(t->thread, NULL);
	}
	free_list(t->handlers);
	free_list(t->zombies);
	if (t->stopfd >= 0)
		close(t->stopfd);
	if (t->epfd >= 0)
		close(t->epfd);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->run);
	free(t);
}

int iothread_drain(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));
	return n == (ssize_t)sizeof(v) ? 1 : 0;
}
