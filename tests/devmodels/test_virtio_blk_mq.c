/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk with several request queues (VIRTIO_BLK_F_MQ), and with several
 * threads at the device at once, as a guest's vCPUs are:
 *  - the queue count is offered and reported (feature, num_queues in both the
 *    common and the device configuration), out-of-range counts are refused;
 *  - each queue is served and interrupts on its own MSI-X vector;
 *  - two threads share one queue the way Linux does (ring updates under the
 *    driver's lock, the notification outside it): every request is served
 *    exactly once with the right data;
 *  - two threads each on a queue of their own, while a third reads the
 *    common configuration: the same.
 * Labelled stress as well, so the ThreadSanitizer build runs it.
 */
#include <pthread.h>
#include <time.h>

#include "vblk_drv.h"

#define F_BLK_MQ 12
#define VBLK_CFG_NUM_QUEUES 0x22
#define REQS 1500u       /* requests per thread */
#define REQ_LEN 4096u    /* bytes per read */
#define G_THDR 0x240000u /* per thread: header at + t * 0x100, status at + 0x80 */
#define G_TBUF 0x300000u /* per thread: data at + t * 0x10000 */
#define MAX_VECTORS 8u

/* MSIs counted per vector (data - MSI_DATA_CONFIG), from any thread. */
static unsigned long msi_count[MAX_VECTORS];

static int count_msi(void *ctx, struct pcidev *dev, uint64_t addr, uint32_t data)
{
	(void)ctx;
	(void)dev;
	(void)addr;
	if (data >= MSI_DATA_CONFIG && data - MSI_DATA_CONFIG < MAX_VECTORS)
		__atomic_fetch_add(&msi_count[data - MSI_DATA_CONFIG], 1, __ATOMIC_RELAXED);
	return 0;
}

static void quiet_log(void *ctx, struct pcidev *dev, const char *msg)
{
	(void)ctx;
	(void)dev;
	fprintf(stderr, "  device log: %s\n", msg);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct shared {
	struct drv *v;
	pthread_mutex_t lock;   /* the driver's lock over a shared queue's avail ring */
	uint16_t avail_idx[4];  /* per queue, under `lock` */
	int img;
	volatile int stop_reader;
};

struct worker {
	pthread_t th;
	struct shared *sh;
	unsigned id, queue;
	unsigned served, bad_data, timeouts, bad_status;
};

/* Make head available on queue q (under the driver's lock when shared). */
static void publish_q(struct shared *sh, unsigned q, uint16_t head)
{
	struct drv *v = sh->v;
	pthread_mutex_lock(&sh->lock);
	uint16_t idx = sh->avail_idx[q];
	dm_put(v->env, qbase(q, 1) + 4 + 2 * (idx % v->qsize), 2, head);
	uint16_t next = (uint16_t)(idx + 1);
	__atomic_store_n((uint16_t *)(v->env->ram + qbase(q, 1) + 2), next, __ATOMIC_RELEASE); /* after the entry */
	sh->avail_idx[q] = next;
	pthread_mutex_unlock(&sh->lock);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct drv *v = w->sh->v;
	uint64_t hdr = G_THDR + w->id * 0x100u, st = hdr + 0x80, data = G_TBUF + w->id * 0x10000u;
	uint16_t head = (uint16_t)(w->id * 3u); /* descriptors [3 id, 3 id + 3) of the queue's table */
	uint8_t *expect = malloc(REQ_LEN);
	if (!expect)
		return NULL;
	for (unsigned i = 0; i < REQS; i++) {
		uint64_t sector = ((uint64_t)w->id * 977u + i * 8u) % (IMAGE_SECTORS - REQ_LEN / 512);
		dm_put(v->env, hdr, 4, T_IN);
		dm_put(v->env, hdr + 4, 4, 0);
		dm_put(v->env, hdr + 8, 8, sector);
		__atomic_store_n(&v->env->ram[st], 0xee, __ATOMIC_RELAXED);
		memset(v->env->ram + data, 0, REQ_LEN);
		struct buf b[3] = {{hdr, 16, 0}, {data, REQ_LEN, D_WRITE}, {st, 1, D_WRITE}};
		put_descs(v, qbase(w->queue, 0), head, b, 3);
		publish_q(w->sh, w->queue, head);
		/* The notification, outside the lock (virtio_blk does so). */
		wr(v, v->notify + w->queue * v->notify_mult, 2, w->queue);
		/* Another thread's notification may serve it: wait for the status. */
		double until = now_s() + 5.0;
		uint8_t s;
		while ((s = __atomic_load_n(&v->env->ram[st], __ATOMIC_ACQUIRE)) == 0xee && now_s() < until)
			sched_yield();
		if (s == 0xee) {
			w->timeouts++;
			break; /* lost: the queue is wedged, stop here */
		}
		if (s != ST_OK) {
			w->bad_status++;
			continue;
		}
		w->served++;
		if (pread(w->sh->img, expect, REQ_LEN, (off_t)(sector * 512)) != (ssize_t)REQ_LEN ||
		    memcmp(expect, v->env->ram + data, REQ_LEN))
			w->bad_data++;
	}
	free(expect);
	return NULL;
}

static void *reader_run(void *arg)
{
	struct shared *sh = arg;
	unsigned long bad = 0;
	while (!__atomic_load_n(&sh->stop_reader, __ATOMIC_ACQUIRE)) {
		uint8_t s = status(sh->v);
		if (s & S_NEEDS_RESET)
			bad++;
		(void)rd(sh->v, sh->v->common + C_NUMQ, 2);
		(void)rd(sh->v, sh->v->device + VBLK_CFG_NUM_QUEUES, 2);
		sched_yield();
	}
	return (void *)bad;
}

/* Run one worker per entry of queues[], with a configuration reader if asked. */
static void run_workers(struct drv *v, int img, const unsigned *queues, unsigned n, int reader)
{
	struct shared sh = {.v = v, .img = img};
	struct worker w[4];
	pthread_t rth;
	pthread_mutex_init(&sh.lock, NULL);
	memset(w, 0, sizeof(w));
	memset(msi_count, 0, sizeof(msi_count));
	if (reader && pthread_create(&rth, NULL, reader_run, &sh))
		reader = 0;
	for (unsigned i = 0; i < n; i++) {
		w[i] = (struct worker){.sh = &sh, .id = i, .queue = queues[i]};
		CHECK_EQ(pthread_create(&w[i].th, NULL, worker_run, &w[i]), 0);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(w[i].th, NULL);
	if (reader) {
		void *bad;
		__atomic_store_n(&sh.stop_reader, 1, __ATOMIC_RELEASE);
		pthread_join(rth, &bad);
		CHECK_EQ((unsigned long)(uintptr_t)bad, 0); /* no NEEDS_RESET seen */
	}
	unsigned per_queue[4] = {0};
	for (unsigned i = 0; i < n; i++) {
		CHECK_EQ(w[i].timeouts, 0);
		CHECK_EQ(w[i].bad_status, 0);
		CHECK_EQ(w[i].bad_data, 0);
		CHECK_EQ(w[i].served, REQS);
		per_queue[queues[i]] += REQS;
	}
	/* Every request used exactly once: the used index counts them, and
	 * each used element names a head of the thread that made it. */
	for (unsigned q = 0; q < 4; q++) {
		if (!per_queue[q])
			continue;
		uint16_t used = (uint16_t)dm_get(v->env, qbase(q, 2) + 2, 2);
		CHECK_EQ(used, (uint16_t)per_queue[q]);
		CHECK_EQ(sh.avail_idx[q], (uint16_t)per_queue[q]);
		unsigned last = per_queue[q] < v->qsize ? per_queue[q] : v->qsize;
		for (unsigned e = 0; e < last; e++) {
			uint32_t h = (uint32_t)dm_get(v->env, qbase(q, 2) + 4 + 8 * e, 4);
			CHECK(h % 3 == 0 && h / 3 < n && queues[h / 3] == q);
			CHECK_EQ(dm_get(v->env, qbase(q, 2) + 4 + 8 * e + 4, 4), REQ_LEN + 1);
		}
		/* No interrupt suppression asked: one MSI per used batch at least. */
		CHECK(msi_count[q + 1] > 0);
	}
	CHECK(!(status(v) & S_NEEDS_RESET));
	pthread_mutex_destroy(&sh.lock);
}

static void test_config(struct dm_env *env, viommu_dev *dma, const char *image)
{
	struct pcidev_host h = dm_host(env);
	struct pcidev *d = NULL;

	dm_case("one queue: no VIRTIO_BLK_F_MQ");
	struct virtio_blk_config_opts o = {.path = image};
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv v = {.env = env, .d = d};
		CHECK_EQ(drv_init(&v, WANT_ALL | (1ull << F_BLK_MQ), 1, 64), 0);
		CHECK(!(v.features & (1ull << F_BLK_MQ)));
		CHECK_EQ(rd(&v, v.common + C_NUMQ, 2), 1);
		pcidev_destroy(d);
	}

	dm_case("four queues: VIRTIO_BLK_F_MQ, num_queues 4, one MSI-X vector each");
	o.queues = 4;
	d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv v = {.env = env, .d = d, .nq = 4};
		CHECK_EQ(drv_init(&v, WANT_ALL | (1ull << F_BLK_MQ), 1, 64), 0);
		CHECK(v.features & (1ull << F_BLK_MQ));
		CHECK_EQ(rd(&v, v.common + C_NUMQ, 2), 4);
		CHECK_EQ(rd(&v, v.device + VBLK_CFG_NUM_QUEUES, 2), 4);
		/* MSI-X table size: the configuration vector and one per queue. */
		CHECK_EQ((cfg_r(d, v.msix + 2, 2) & 0x7ff) + 1, 5);
		/* Queue 5 does not exist: size 0 (4.1.4.3.2). */
		wr(&v, v.common + C_QSELECT, 2, 5);
		CHECK_EQ(rd(&v, v.common + C_QSIZE, 2), 0);
		pcidev_destroy(d);
	}

	dm_case("queue counts out of range refused");
	o.queues = VIRTIO_BLK_MAX_QUEUES + 1;
	d = (struct pcidev *)1;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), -EINVAL);
	o.queues = VIRTIO_BLK_MAX_QUEUES;
	d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	pcidev_destroy(d);
}

static void test_queues(struct dm_env *env, viommu_dev *dma, const char *image, int img)
{
	struct pcidev_host h = dm_host(env);
	h.msi = count_msi;
	h.log = quiet_log;

	dm_case("each queue served, interrupting on its own vector");
	struct virtio_blk_config_opts o = {.path = image, .queues = 2};
	struct pcidev *d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (!d)
		return;
	struct drv v = {.env = env, .d = d, .nq = 2};
	CHECK_EQ(drv_init(&v, WANT_ALL | (1ull << F_BLK_MQ), 1, 64), 0);
	struct shared sh = {.v = &v, .img = img};
	pthread_mutex_init(&sh.lock, NULL);
	memset(msi_count, 0, sizeof(msi_count));
	/* One request on queue 1, on this thread. */
	uint64_t st = G_THDR + 0x80;
	dm_put(env, G_THDR, 4, T_IN);
	dm_put(env, G_THDR + 8, 8, 24);
	env->ram[st] = 0xee;
	struct buf b[3] = {{G_THDR, 16, 0}, {G_TBUF, REQ_LEN, D_WRITE}, {st, 1, D_WRITE}};
	put_descs(&v, qbase(1, 0), 0, b, 3);
	publish_q(&sh, 1, 0);
	wr(&v, v.notify + 1 * v.notify_mult, 2, 1);
	CHECK_EQ(env->ram[st], ST_OK);
	CHECK_EQ(dm_get(env, qbase(1, 2) + 2, 2), 1);
	CHECK_EQ(dm_get(env, qbase(0, 2) + 2, 2), 0); /* queue 0 untouched */
	CHECK_EQ(msi_count[2], 1);                    /* queue 1's vector */
	CHECK_EQ(msi_count[1], 0);
	uint8_t expect[REQ_LEN];
	CHECK_EQ(pread(img, expect, REQ_LEN, 24 * 512), (ssize_t)REQ_LEN);
	CHECK(memcmp(expect, env->ram + G_TBUF, REQ_LEN) == 0);
	pthread_mutex_destroy(&sh.lock);
	pcidev_destroy(d);

	dm_case("two threads on one queue (driver lock, notifications outside it)");
	o.queues = 1;
	d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv v1 = {.env = env, .d = d};
		CHECK_EQ(drv_init(&v1, WANT_ALL, 1, 64), 0);
		const unsigned qs[2] = {0, 0};
		run_workers(&v1, img, qs, 2, 0);
		pcidev_destroy(d);
	}

	dm_case("two threads on two queues, a third reading the configuration");
	o.queues = 2;
	d = NULL;
	CHECK_EQ(virtio_blk_create(&o, (struct viommu_rid){0, 0, 0x08}, dma, &h, &d), 0);
	if (d) {
		struct drv v2 = {.env = env, .d = d, .nq = 2};
		CHECK_EQ(drv_init(&v2, WANT_ALL | (1ull << F_BLK_MQ), 1, 64), 0);
		const unsigned qs[2] = {0, 1};
		run_workers(&v2, img, qs, 2, 1);
		pcidev_destroy(d);
	}
}

int main(void)
{
	struct dm_env env;
	char image[512];
	if (dm_env_init(&env, RAM_SIZE)) {
		fprintf(stderr, "test bed failed\n");
		return 1;
	}
	int img = make_image(image, sizeof(image), IMAGE_SECTORS, 5);
	if (img < 0) {
		fprintf(stderr, "cannot create the temporary image\n");
		return 1;
	}
	viommu_dev *dma = dm_env_dev(&env, 0x08);
	CHECK(dma != NULL);
	if (dma) {
		test_config(&env, dma, image);
		test_queues(&env, dma, image, img);
	}
	close(img);
	unlink(image);
	dm_env_fini(&env);
	return dm_done("test_virtio_blk_mq");
}
