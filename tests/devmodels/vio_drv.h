/* SPDX-License-Identifier: MIT */
/*
 * The small virtio-iommu guest driver of the device-model tests: brings the
 * device up (its rings at I_* in guest RAM, beside the disk driver's of
 * vblk_drv.h), sends requests on the requestq and gives and takes event
 * buffers. Included by the virtio-iommu device tests.
 */
#ifndef VIOMMU_TESTS_VIO_DRV_H
#define VIOMMU_TESTS_VIO_DRV_H

#include "vblk_drv.h"

#include <viommu/virtio_iommu.h>

/* The IOMMU driver's rings and buffers (beyond the disk driver's). */
#define I_REQ_DESC 0x600000u
#define I_REQ_AVAIL 0x601000u
#define I_REQ_USED 0x602000u
#define I_EV_DESC 0x603000u
#define I_EV_AVAIL 0x604000u
#define I_EV_USED 0x605000u
#define I_REQ 0x606000u   /* the request */
#define I_TAIL 0x607000u  /* its writable part */
#define I_EVBUF 0x608000u /* 8 event buffers of 64 bytes */
#define I_QSIZE 16u
#define IOVA_OFF 0x40000000ull /* the disk sees guest address + this */

#define F_IOMMU_INPUT_RANGE 0
#define F_IOMMU_DOMAIN_RANGE 1
#define F_IOMMU_MAP_UNMAP 2
#define F_IOMMU_PROBE 4
#define F_IOMMU_BYPASS_CONFIG 6

struct idrv {
	struct drv t; /* transport: capabilities, register access */
	uint16_t req_avail, req_used_seen, ev_avail, ev_used_seen;
};

static inline void iq_setup(struct idrv *v, unsigned q, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct drv *t = &v->t;
	memset(t->env->ram + desc, 0, 0x1000);
	memset(t->env->ram + avail, 0, 0x1000);
	memset(t->env->ram + used, 0, 0x1000);
	wr(t, t->common + C_QSELECT, 2, q);
	wr(t, t->common + C_QSIZE, 2, I_QSIZE);
	wr(t, t->common + C_QDESC, 8, desc);
	wr(t, t->common + C_QAVAIL, 8, avail);
	wr(t, t->common + C_QUSED, 8, used);
	wr(t, t->common + C_QMSIX, 2, q + 1);
	wr(t, t->common + C_QENABLE, 2, 1);
}

static inline int iommu_init(struct idrv *v, uint64_t want)
{
	struct drv *t = &v->t;
	struct pcidev *d = t->d;
	cfg_w(d, 0x14, 4, 0xfd000000);
	cfg_w(d, 0x20, 4, 0);
	cfg_w(d, 0x24, 4, 0x20); /* BAR4 at 128 GiB */
	cfg_w(d, 0x04, 2, 0x0006);
	find_caps(t);
	t->nq = 2;
	msix_setup(t);
	wr(t, t->common + C_STATUS, 1, 0);
	wr(t, t->common + C_STATUS, 1, S_ACK | S_DRIVER);
	wr(t, t->common + C_DFSELECT, 4, 0);
	uint64_t host = rd(t, t->common + C_DF, 4);
	wr(t, t->common + C_DFSELECT, 4, 1);
	host |= rd(t, t->common + C_DF, 4) << 32;
	t->features = host & want;
	wr(t, t->common + C_GFSELECT, 4, 0);
	wr(t, t->common + C_GF, 4, (uint32_t)t->features);
	wr(t, t->common + C_GFSELECT, 4, 1);
	wr(t, t->common + C_GF, 4, (uint32_t)(t->features >> 32));
	wr(t, t->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(status(t) & S_FEATURES_OK))
		return -1;
	wr(t, t->common + C_MSIX, 2, 0);
	iq_setup(v, 0, I_REQ_DESC, I_REQ_AVAIL, I_REQ_USED);
	iq_setup(v, 1, I_EV_DESC, I_EV_AVAIL, I_EV_USED);
	v->req_avail = v->req_used_seen = v->ev_avail = v->ev_used_seen = 0;
	wr(t, t->common + C_STATUS, 1, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return status(t) & S_DRIVER_OK ? 0 : -1;
}

/* Give the eventq n buffers of `len` bytes. */
static inline void give_event_buffers(struct idrv *v, unsigned n, uint32_t len)
{
	struct dm_env *env = v->t.env;
	for (unsigned i = 0; i < n; i++) {
		unsigned slot = v->ev_avail % I_QSIZE;
		uint64_t p = I_EV_DESC + 16 * slot;
		dm_put(env, p, 8, I_EVBUF + 64 * (uint64_t)(slot % 8));
		dm_put(env, p + 8, 4, len);
		dm_put(env, p + 12, 2, D_WRITE);
		dm_put(env, I_EV_AVAIL + 4 + 2 * slot, 2, slot);
		v->ev_avail++;
	}
	dm_put(env, I_EV_AVAIL + 2, 2, v->ev_avail);
	wr(&v->t, v->t.notify + 1 * v->t.notify_mult, 2, 1);
}

/* The next event the device returned: 1 with its 24 bytes, 0 if none. */
static inline int take_event(struct idrv *v, uint8_t *ev, uint32_t *len)
{
	struct dm_env *env = v->t.env;
	if ((uint16_t)dm_get(env, I_EV_USED + 2, 2) == v->ev_used_seen)
		return 0;
	uint64_t e = I_EV_USED + 4 + 8 * (v->ev_used_seen % I_QSIZE);
	uint32_t id = (uint32_t)dm_get(env, e, 4);
	*len = (uint32_t)dm_get(env, e + 4, 4);
	for (unsigned i = 0; i < 24; i++)
		ev[i] = (uint8_t)dm_get(env, I_EVBUF + 64 * (id % 8) + i, 1);
	v->ev_used_seen++;
	return 1;
}

/* One request: `in` (in_len readable bytes), then out_len writable bytes.
 * Returns the used length (~0u if the device used nothing). */
static inline uint32_t ireq_raw(struct idrv *v, const uint8_t *in, uint32_t in_len, uint32_t out_len)
{
	struct dm_env *env = v->t.env;
	memcpy(env->ram + I_REQ, in, in_len);
	memset(env->ram + I_TAIL, 0xee, out_len ? out_len : 4);
	unsigned slot = v->req_avail % I_QSIZE;
	unsigned d0 = (slot * 2) % I_QSIZE, d1 = (d0 + 1) % I_QSIZE;
	dm_put(env, I_REQ_DESC + 16 * d0, 8, I_REQ);
	dm_put(env, I_REQ_DESC + 16 * d0 + 8, 4, in_len);
	dm_put(env, I_REQ_DESC + 16 * d0 + 12, 2, out_len ? D_NEXT : 0);
	dm_put(env, I_REQ_DESC + 16 * d0 + 14, 2, d1);
	dm_put(env, I_REQ_DESC + 16 * d1, 8, I_TAIL);
	dm_put(env, I_REQ_DESC + 16 * d1 + 8, 4, out_len);
	dm_put(env, I_REQ_DESC + 16 * d1 + 12, 2, D_WRITE);
	dm_put(env, I_REQ_AVAIL + 4 + 2 * slot, 2, d0);
	v->req_avail++;
	dm_put(env, I_REQ_AVAIL + 2, 2, v->req_avail);
	wr(&v->t, v->t.notify, 2, 0);
	if ((uint16_t)dm_get(env, I_REQ_USED + 2, 2) == v->req_used_seen)
		return ~0u;
	uint64_t e = I_REQ_USED + 4 + 8 * (v->req_used_seen % I_QSIZE);
	CHECK_EQ(dm_get(env, e, 4), d0);
	v->req_used_seen++;
	return (uint32_t)dm_get(env, e + 4, 4);
}

/* A request with its 4-byte tail: the status, or 0xff. */
static inline unsigned ireq(struct idrv *v, const uint8_t *in, uint32_t in_len)
{
	uint32_t used = ireq_raw(v, in, in_len, 4);
	if (used != 4)
		return 0xff;
	return v->t.env->ram[I_TAIL];
}

static inline unsigned i_attach(struct idrv *v, uint32_t dom, uint32_t ep)
{
	uint8_t r[20] = { 1 };
	memcpy(r + 4, &dom, 4);
	memcpy(r + 8, &ep, 4);
	return ireq(v, r, sizeof(r));
}

static inline unsigned i_map(struct idrv *v, uint32_t dom, uint64_t start, uint64_t end, uint64_t phys, uint32_t flags)
{
	uint8_t r[36] = { 3 };
	memcpy(r + 4, &dom, 4);
	memcpy(r + 8, &start, 8);
	memcpy(r + 16, &end, 8);
	memcpy(r + 24, &phys, 8);
	memcpy(r + 32, &flags, 4);
	return ireq(v, r, sizeof(r));
}

static inline unsigned i_unmap(struct idrv *v, uint32_t dom, uint64_t start, uint64_t end)
{
	uint8_t r[28] = { 4 };
	memcpy(r + 4, &dom, 4);
	memcpy(r + 8, &start, 8);
	memcpy(r + 16, &end, 8);
	return ireq(v, r, sizeof(r));
}

#endif /* VIOMMU_TESTS_VIO_DRV_H */
