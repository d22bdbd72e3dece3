/* SPDX-License-Identifier: MIT */
/* The VMM's I/O thread (iothread.c). */
#ifndef VIOMMU_VMM_IOTHREAD_H
#define VIOMMU_VMM_IOTHREAD_H

struct iothread;

/* Called on the I/O thread when fd is readable (level-triggered: read what
 * is there, e.g. with iothread_drain for an eventfd). */
typedef void (*iothread_fn)(void *ctx, int fd);

/* 0 or a negative errno. */
int iothread_create(struct iothread **out);
int iothread_start(struct iothread *t);
/* Run the thread at the lowest real-time priority (SCHED_FIFO 1), so that
 * a handler it is woken for runs at once instead of waiting for a vCPU
 * thread that spins in the guest to use up its time slice. After start;
 * 0, or -EPERM without CAP_SYS_NICE. */
int iothread_realtime(struct iothread *t);
/* Register fd (the caller keeps owning it). 0, -ENOMEM or epoll's -errno. */
int iothread_add(struct iothread *t, int fd, iothread_fn fn, void *ctx);
/* Unregister; once this returns the handler is not running and is never
 * called again. -ENOENT if fd is not registered. */
int iothread_del(struct iothread *t, int fd);
/* Stop the thread and free everything (fds stay the callers'). Takes NULL. */
void iothread_destroy(struct iothread *t);
/* Read an eventfd's counter (non-blocking fds): 1 if it was signalled. */
int iothread_drain(int fd);

#endif
