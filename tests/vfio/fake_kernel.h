/* SPDX-License-Identifier: MIT */
/*
 * A fake Linux kernel for the VFIO glue's unit tests: /dev/vfio/vfio
 * (type1v2 container), /dev/vfio/N (groups), /dev/iommu (iommufd with IOAS)
 * and /dev/vfio/devices/vfioN (device cdevs), with the rules of the real one
 * that the glue depends on (groups open once, no DMA map before an IOMMU is
 * set, type1v2 never splits a mapping, the DMA entry limit, a cdev unusable
 * before bind, mappings dropped when the last group leaves).
 *
 * It counts opens and closes, mmaps, device resets and host map/unmap calls,
 * and can fail the Nth call (open, ioctl, pread, pwrite, mmap; close and
 * munmap always work) with -EIO, so a test can sweep every failure.
 */
#ifndef VFIO_TEST_FAKE_KERNEL_H
#define VFIO_TEST_FAKE_KERNEL_H

#include <viommu/vfio.h>

#include <stdbool.h>
#include <stdint.h>

#define FK_MAX_DEVS 4
#define FK_MAX_FDS 64
#define FK_FD_BASE 1000 /* fds of the fake: FK_FD_BASE + index in fds[] */
#define FK_MAX_MAPS 4096
#define FK_BAR0_SIZE 0x10000u
#define FK_MSIX_VECTORS 8u

struct fk_dev {
	char bdf[24];
	int group;         /* IOMMU group number */
	int cdev;          /* N of vfioN, -1 for none */
	bool can_reset;
	uint8_t config[256];
	uint8_t bar0[FK_BAR0_SIZE];
	/* interrupt state as the device sees it */
	int msix_fds[FK_MSIX_VECTORS];
	int msi_fd;
	int intx_fd, intx_resample_fd;
	uint32_t intx_unmasks;
	uint32_t resets;   /* successful VFIO_DEVICE_RESET */
};

struct fk_map {
	uint64_t iova, size, vaddr;
	bool read, write;
};

enum fk_kind { FK_FREE = 0, FK_CONTAINER, FK_GROUP, FK_DEVICE, FK_IOMMUFD, FK_CDEV };

struct fk_fd {
	enum fk_kind kind;
	int dev;            /* FK_DEVICE/FK_CDEV: index in devs */
	int group;          /* FK_GROUP: group number */
	int container;      /* FK_GROUP: container fd it is in, -1 */
	bool iommu_set;     /* FK_CONTAINER */
	bool bound;         /* FK_CDEV: bound to an iommufd */
	int iommufd;        /* FK_CDEV: that iommufd */
	bool attached;      /* FK_CDEV */
	bool reset_seen;    /* FK_DEVICE/FK_CDEV: a reset was asked since open */
	uint32_t ioas;      /* FK_IOMMUFD: allocated IOAS id, 0 none */
};

struct fake_kernel {
	struct viommu_vfio_kernel ops;
	/* the machine */
	struct fk_dev devs[FK_MAX_DEVS];
	int nr_devs;
	uint32_t nr_ranges;
	struct viommu_vfio_iova_range ranges[4];
	uint32_t dma_limit;      /* type1 DMA entries per container */
	bool has_iommufd;        /* /dev/iommu exists */
	bool group_not_viable;   /* GROUP_GET_STATUS says not viable */
	/* fault injection */
	long calls;              /* calls counted so far */
	long fail_at;            /* fail the call with this number (from 1); 0 never */
	long failed_call;        /* the call that was failed, 0 none */
	/* bookkeeping */
	struct fk_fd fds[FK_MAX_FDS];
	int opens, closes;
	int mmaps_now;
	int reset_missing;       /* device fds closed without a reset asked */
	int bad_closes;          /* close of an fd that is not open */
	struct fk_map maps[FK_MAX_MAPS];
	int nr_maps;
	int map_calls, unmap_calls;
	int map_owner;           /* fd the maps belong to (container or iommufd), -1 */
	uint32_t next_ioas;
};

/* A machine with these devices; ranges default to x86's (MSI window reserved). */
void fk_init(struct fake_kernel *fk);
void fk_init_ranges_default(struct fake_kernel *fk);
int fk_add_dev(struct fake_kernel *fk, const char *bdf, int group, int cdev);
int fk_open_fds(const struct fake_kernel *fk);
/* The mapping covering iova, or NULL. */
const struct fk_map *fk_find_map(const struct fake_kernel *fk, uint64_t iova);

#endif
