/* SPDX-License-Identifier: MIT */
/*
 * virtio-iommu fault events under concurrency, as in a VMM: three threads'
 * DMA faults (each one an event, raised on the faulting thread) while the
 * driver, on the main thread, keeps giving the event queue buffers, takes the
 * events back and sends ATTACH and DETACH requests that move one endpoint
 * between blocked (events with reason DOMAIN) and an empty domain (reason
 * MAPPING). Every fault must come out once: as an event the driver took, or
 * counted lost by the front-end's queue; nothing may deadlock while the
 * driver's notification holds the queue (an event raised by the thread that
 * holds it is test_virtio_iommu_dev's case). Labelled stress as well, so the
 * ThreadSanitizer build runs it.
 */
#include <pthread.h>
#include <sched.h>

#include "vio_drv.h"

#define THREADS 3
#define FAULTS_PER_THREAD 3000u
#define EV_OUTSTANDING 8u /* event buffers the driver keeps posted (I_EVBUF has 8) */

static struct pcidev *g_dev;
static viommu_dev *g_ep[THREADS];
static int g_done[THREADS];

static void on_events(void *ctx)
{
	(void)ctx;
	struct pcidev *d = __atomic_load_n(&g_dev, __ATOMIC_ACQUIRE);
	if (d)
		virtio_iommu_events(d);
}

static void *faulter(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < FAULTS_PER_THREAD; i++) {
		uint64_t v;
		struct viommu_fault_record f;
		size_t done;
		/* One page per access: each is one fault record. */
		int r = viommu_dma_read(g_ep[t], VIOMMU_NO_PASID, (uint64_t)i << 12, &v, 8, 0, &done, &f);
		if (r != -EFAULT)
			__atomic_store_n(&g_done[t], -1, __ATOMIC_RELEASE);
		/* Let the driver keep up now and then (most events should
		 * reach it, not all be lost). */
		if (i % 8 == 7)
			sched_yield();
	}
	if (__atomic_load_n(&g_done[t], __ATOMIC_ACQUIRE) == 0)
		__atomic_store_n(&g_done[t], 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(void)
{
	struct dm_env env;
	if (dm_env_init(&env, 16u << 20)) {
		fprintf(stderr, "test bed\n");
		return 1;
	}
	dm_case("create");
	viommu_virtio_iommu *vi = NULL;
	struct viommu_virtio_iommu_config vc = { .size = sizeof(vc), .event = on_events, .events = 1024 };
	if (!CHECK_EQ(viommu_virtio_iommu_create(env.v, &vc, NULL, &vi), 0))
		return dm_done("test_virtio_iommu_events_mt");
	for (unsigned t = 0; t < THREADS; t++) {
		struct viommu_rid rid = { 0, 0, (uint8_t)((t + 1) << 3) };
		CHECK_EQ(viommu_virtio_iommu_add_endpoint(vi, rid.devfn, rid, &g_ep[t]), 0);
	}
	struct pcidev_host h = dm_host(&env);
	struct pcidev *dev = NULL;
	CHECK_EQ(virtio_iommu_create(vi, (struct viommu_rid){ 0, 0, 0x80 }, dm_env_dev(&env, 0x80), &h,
				     &dev),
		 0);
	if (!dev)
		return dm_done("test_virtio_iommu_events_mt");
	struct idrv iv = { .t = { .env = &env, .d = dev } };
	uint64_t want = (1ull << F_VERSION_1) | (1ull << F_IOMMU_MAP_UNMAP);
	CHECK_EQ(iommu_init(&iv, want), 0);
	__atomic_store_n(&g_dev, dev, __ATOMIC_RELEASE);
	give_event_buffers(&iv, EV_OUTSTANDING, 64);
	unsigned posted = EV_OUTSTANDING;

	dm_case("storm");
	pthread_t th[THREADS];
	for (unsigned t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, faulter, (void *)(uintptr_t)t);
	unsigned long got = 0, by_reason[3] = { 0 }, rounds = 0;
	int attached = 0;
	for (;;) {
		uint8_t ev[24];
		uint32_t len;
		unsigned took = 0;
		while (take_event(&iv, ev, &len)) {
			CHECK_EQ(len, 24);
			if (ev[0] <= 2)
				by_reason[ev[0]]++;
			CHECK(ev[8] == 0x08 || ev[8] == 0x10 || ev[8] == 0x18);
			got++;
			took++;
		}
		posted -= took;
		if (posted < EV_OUTSTANDING) {
			give_event_buffers(&iv, EV_OUTSTANDING - posted, 64);
			posted = EV_OUTSTANDING;
		}
		/* Move endpoint 0x08 in and out of a domain now and then. */
		if (++rounds % 4 == 0) {
			uint8_t r[20] = { (uint8_t)(attached ? 2 : 1) };
			r[4] = 1;
			r[8] = 0x08;
			CHECK_EQ(ireq(&iv, r, sizeof(r)), 0);
			attached = !attached;
		}
		int all = 1;
		for (unsigned t = 0; t < THREADS; t++)
			all &= __atomic_load_n(&g_done[t], __ATOMIC_ACQUIRE) != 0;
		if (all && !took)
			break;
	}
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		CHECK_EQ(g_done[t], 1);
	}
	/* Whatever still waits comes out with more buffers. */
	for (int i = 0; i < 200; i++) {
		uint8_t ev[24];
		uint32_t len;
		unsigned took = 0;
		while (take_event(&iv, ev, &len)) {
			if (ev[0] <= 2)
				by_reason[ev[0]]++;
			got++;
			took++;
		}
		posted -= took;
		give_event_buffers(&iv, EV_OUTSTANDING - posted, 64);
		posted = EV_OUTSTANDING;
		if (!took)
			break;
	}
	struct viommu_virtio_iommu_stats st;
	viommu_virtio_iommu_get_stats(vi, &st);
	uint64_t faults = (uint64_t)THREADS * FAULTS_PER_THREAD;
	printf("events taken %lu (domain %lu, mapping %lu), lost %llu, of %llu faults; %lu driver rounds\n", got,
	       by_reason[1], by_reason[2], (unsigned long long)st.events_lost, (unsigned long long)faults, rounds);
	CHECK_EQ(got + st.events_lost, faults);
	CHECK_EQ(st.events, got);
	CHECK(by_reason[1] > 0);
	CHECK_EQ(by_reason[0], 0);
	CHECK(!(status(&iv.t) & S_NEEDS_RESET));

	__atomic_store_n(&g_dev, NULL, __ATOMIC_RELEASE);
	pcidev_destroy(dev);
	viommu_virtio_iommu_destroy(vi);
	dm_env_fini(&env);
	return dm_done("test_virtio_iommu_events_mt");
}
