/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy transfers and the drain (viommu_dma_hold_*, viommu_dma_drain):
 * once a drain returns, no transfer that mapped before it is still in its
 * I/O. Deterministic cases first (a drain waits for a held transfer; a
 * transfer that mapped before a drain is told to map again; holds with no
 * drain in between go through), then a threaded run: holders "map" by
 * reading the current mapping number, a writer replaces the mapping,
 * drains, and only then retires the old number; a holder that sees its own
 * number retired during its I/O is a failure.
 *
 *   test_dma_hold_stress [SECONDS]   (default 2; VIOMMU_STRESS_SECONDS)
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#define HOLDERS 3

static uint8_t ram[1 << 16];
static int failures;
#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static viommu *v;
static viommu_dev *dev;
static uint64_t mapping = 1;  /* atomic: the current "translation" */
static uint64_t retired;      /* atomic: numbers <= this are gone */
static int stop;              /* atomic */
static uint64_t held_ios, retries, violations; /* atomic */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct drainer {
	int done;
};

static void *drain_thread(void *arg)
{
	struct drainer *d = arg;
	viommu_dma_drain(v);
	__atomic_store_n(&d->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void deterministic(void)
{
	struct viommu_dma_hold h;

	/* No drain between start and enter: held at once. */
	viommu_dma_hold_start(dev, &h);
	CHECK(viommu_dma_hold_enter(dev, &h) == 0);
	/* A drain waits for the held transfer. */
	struct drainer d = { 0 };
	pthread_t t;
	CHECK(pthread_create(&t, NULL, drain_thread, &d) == 0);
	usleep(50000);
	CHECK(__atomic_load_n(&d.done, __ATOMIC_SEQ_CST) == 0);
	viommu_dma_hold_end(dev, &h);
	pthread_join(t, NULL);
	CHECK(d.done == 1);

	/* Mapped before a drain, entering after it: map again. */
	viommu_dma_hold_start(dev, &h);
	viommu_dma_drain(v);
	CHECK(viommu_dma_hold_enter(dev, &h) == -EAGAIN);
	viommu_dma_hold_start(dev, &h);
	CHECK(viommu_dma_hold_enter(dev, &h) == 0);
	viommu_dma_hold_end(dev, &h);

	/* Two drains in a row with a transfer held across the first flip:
	 * the second still waits for it. */
	viommu_dma_hold_start(dev, &h);
	CHECK(viommu_dma_hold_enter(dev, &h) == 0);
	struct drainer d1 = { 0 };
	CHECK(pthread_create(&t, NULL, drain_thread, &d1) == 0);
	usleep(20000);
	CHECK(__atomic_load_n(&d1.done, __ATOMIC_SEQ_CST) == 0);
	viommu_dma_hold_end(dev, &h);
	pthread_join(t, NULL);
	viommu_dma_drain(v); /* nothing held: returns */

	CHECK(viommu_dma_hold_enter(NULL, &h) == -EINVAL);
	viommu_dma_drain(NULL);
}

static void *holder(void *arg)
{
	(void)arg;
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
		struct viommu_dma_hold h;
		uint64_t m;
		for (;;) {
			viommu_dma_hold_start(dev, &h);
			m = __atomic_load_n(&mapping, __ATOMIC_SEQ_CST); /* the "map" */
			if (viommu_dma_hold_enter(dev, &h) == 0)
				break;
			__atomic_fetch_add(&retries, 1, __ATOMIC_RELAXED);
		}
		/* The "I/O": the number it mapped must not be retired under it. */
		unsigned spin = rand_r(&seed) % 2000;
		for (unsigned i = 0; i < spin; i++)
			if (__atomic_load_n(&retired, __ATOMIC_SEQ_CST) >= m) {
				__atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
				break;
			}
		if (rand_r(&seed) % 8 == 0)
			sched_yield();
		viommu_dma_hold_end(dev, &h);
		__atomic_fetch_add(&held_ios, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double secs = 2;
	const char *env = getenv("VIOMMU_STRESS_SECONDS");
	if (argc > 1)
		secs = atof(argv[1]);
	else if (env)
		secs = atof(env);
	struct viommu_mem_region reg = { .gpa = 0, .size = sizeof(ram), .host = ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
	};
	if (viommu_create(&cfg, NULL, &v) || viommu_dev_create(v, (struct viommu_rid){ 0, 1, 0 }, &dev)) {
		printf("FAIL: set-up\n");
		return 1;
	}
	deterministic();

	pthread_t th[HOLDERS];
	for (uintptr_t i = 0; i < HOLDERS; i++)
		CHECK(pthread_create(&th[i], NULL, holder, (void *)(i + 1)) == 0);
	uint64_t drains = 0;
	double end = now() + secs;
	while (now() < end || drains < 1000) {
		uint64_t old = __atomic_fetch_add(&mapping, 1, __ATOMIC_SEQ_CST); /* invalidate */
		viommu_dma_drain(v);
		__atomic_store_n(&retired, old, __ATOMIC_SEQ_CST); /* reuse */
		drains++;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < HOLDERS; i++)
		pthread_join(th[i], NULL);
	printf("drains=%llu held_ios=%llu retries=%llu violations=%llu\n", (unsigned long long)drains,
	       (unsigned long long)held_ios, (unsigned long long)retries, (unsigned long long)violations);
	CHECK(violations == 0);
	CHECK(held_ios > 0);
	viommu_destroy(v);
	if (failures) {
		printf("test_dma_hold_stress: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_dma_hold_stress: ok\n");
	return 0;
}
