/* SPDX-License-Identifier: MIT */
/*
 * devmodels: emulated PCI devices whose every access to guest memory goes
 * through the viommu DMA API.
 *
 * The contract between a bus (the VMM's PCI host bridge, or a test) and a
 * device model:
 *
 *  - The bus gives each device its requester ID, a viommu_dev for DMA, and
 *    the host callbacks below (interrupts, logging). It routes config-space
 *    accesses (CF8/CFC or ECAM) to pcidev_config_read/write and accesses to
 *    an enabled BAR to pcidev_bar_read/write, with the offset into the BAR.
 *  - The device owns its 4 KiB config space; writes are masked by a table
 *    (read-only, read-write, write-1-to-clear bits), so the guest can change
 *    only what real hardware lets it. BAR sizing (writing all-ones) works as
 *    on hardware. MSI and MSI-X capabilities are emulated here: the device
 *    calls pcidev_notify(vector) and the framework turns it into an MSI write
 *    (address/data from the MSI capability or the MSI-X table, honouring
 *    enable and mask bits, with pending bits), or INTx when neither is on.
 *  - Nothing a guest writes may crash the VMM: bad values end as a device
 *    error status, a recorded fault (from the DMA API), or are ignored.
 *
 * Threading: config and BAR accesses come from vCPU threads, one at a time
 * per device (the bus serializes per device); a device may run its own I/O
 * thread and call pcidev_notify from it.
 */
#ifndef VIOMMU_DEVMODELS_PCIDEV_H
#define VIOMMU_DEVMODELS_PCIDEV_H

#include <pthread.h>
#include <stdint.h>

#include <viommu/dma.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PCIDEV_CFG_SIZE 4096u
#define PCIDEV_NR_BARS 6u

enum pcidev_bar_type {
	PCIDEV_BAR_NONE = 0,
	PCIDEV_BAR_MEM32,
	PCIDEV_BAR_MEM64, /* takes two BAR slots */
	PCIDEV_BAR_IO,
};

struct pcidev;

/* What the bus provides to the device. */
struct pcidev_host {
	/* Deliver an MSI write of this device (the bus passes it through
	 * interrupt remapping and on to KVM). 0 or a negative errno. */
	int (*msi)(void *ctx, struct pcidev *dev, uint64_t addr, uint32_t data);
	/* Set the INTx line level (0/1). */
	void (*intx)(void *ctx, struct pcidev *dev, int level);
	/* Log a line (no newline); may be NULL. */
	void (*log)(void *ctx, struct pcidev *dev, const char *msg);
	void *ctx;
};

/* What a device model implements. All optional except the ones noted. */
struct pcidev_ops {
	const char *name;
	/* BAR access: offset within the BAR, len 1/2/4/8; reads return the value. */
	uint64_t (*bar_read)(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len);
	void (*bar_write)(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len);
	/* After a config write the framework did not fully handle itself
	 * (e.g. the command register changed). */
	void (*config_written)(struct pcidev *dev, unsigned off, unsigned len);
	/* Device reset (function level or VMM reset). */
	void (*reset)(struct pcidev *dev);
	/* Free the model's state (the framework frees the pcidev). */
	void (*destroy)(struct pcidev *dev);
};

struct pcidev_bar {
	enum pcidev_bar_type type;
	uint64_t size;      /* power of two, >= 16 (mem >= 4096 recommended) */
	uint64_t addr;      /* as the guest programmed it (0 = not placed) */
	int prefetchable;
};

struct pcidev {
	const struct pcidev_ops *ops;
	void *priv;                          /* the model's state */
	struct viommu_rid rid;
	viommu_dev *dma;                     /* DMA goes through here */
	struct pcidev_host host;
	pthread_mutex_t lock;                /* config space, MSI state */

	uint8_t cfg[PCIDEV_CFG_SIZE];
	uint8_t wmask[PCIDEV_CFG_SIZE];      /* 1 = guest-writable bit */
	uint8_t w1cmask[PCIDEV_CFG_SIZE];    /* 1 = write-1-to-clear bit */
	struct pcidev_bar bars[PCIDEV_NR_BARS];

	/* capabilities, as laid out by the framework (0 = absent) */
	uint8_t msi_cap, msix_cap;
	unsigned msix_bar, msix_nr;          /* table in this BAR at msix_table_off */
	uint64_t msix_table_off, msix_pba_off;
	uint8_t *msix_table;                 /* 16 bytes per vector */
	uint64_t *msix_pending;              /* bit per vector */
	uint8_t msi_pending_mask;            /* MSI vectors pending while masked */
	uint8_t next_cap;                    /* where the next capability goes */
};

/* Device identity for pcidev_init. */
struct pcidev_id {
	uint16_t vendor, device, subsys_vendor, subsys;
	uint8_t revision;
	uint32_t class_code; /* 24 bits: class, subclass, prog-if */
	uint8_t intx_pin;    /* 0 none, 1..4 = INTA..INTD */
};

/* Framework: set up config space (header type 0, capability list). */
int pcidev_init(struct pcidev *dev, const struct pcidev_ops *ops, void *priv, const struct pcidev_id *id,
		struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host);
/* Declare a BAR (before the guest sees the device). -EINVAL on a bad size. */
int pcidev_set_bar(struct pcidev *dev, unsigned bar, enum pcidev_bar_type type, uint64_t size, int prefetchable);
/* Add an MSI capability (64-bit, per-vector masking) with 2^log2_vectors vectors. */
int pcidev_add_msi(struct pcidev *dev, unsigned log2_vectors);
/* Add an MSI-X capability with `vectors` entries; table and PBA placed in
 * `bar` at the given offsets (the framework serves those ranges itself). */
int pcidev_add_msix(struct pcidev *dev, unsigned vectors, unsigned bar, uint64_t table_off, uint64_t pba_off);
/* Add a vendor-specific or other capability with `len` bytes of body (after
 * the 2-byte header); returns its offset or a negative errno. */
int pcidev_add_cap(struct pcidev *dev, uint8_t cap_id, const void *body, unsigned len);

/* Bus side: config and BAR accesses (len 1, 2, 4; off aligned to len). */
uint32_t pcidev_config_read(struct pcidev *dev, unsigned off, unsigned len);
void pcidev_config_write(struct pcidev *dev, unsigned off, unsigned len, uint32_t val);
uint64_t pcidev_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len);
void pcidev_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len);
/* Memory/IO decoding enabled in the command register? */
int pcidev_mem_enabled(const struct pcidev *dev);
int pcidev_io_enabled(const struct pcidev *dev);
int pcidev_bus_master(const struct pcidev *dev);

/* Device side: signal interrupt vector `vec` (MSI-X entry, MSI vector, or
 * INTx assert when neither is enabled). */
void pcidev_notify(struct pcidev *dev, unsigned vec);
/* INTx deassert (level-triggered devices). */
void pcidev_intx_clear(struct pcidev *dev);

void pcidev_reset(struct pcidev *dev);
void pcidev_destroy(struct pcidev *dev);

/* Device constructors. */
struct virtio_blk_config_opts {
	const char *path;   /* raw image */
	int readonly;
};
/* virtio-blk over the modern virtio-pci transport, offering
 * VIRTIO_F_ACCESS_PLATFORM (so the guest uses its DMA API and IOMMU). */
int virtio_blk_create(const struct virtio_blk_config_opts *opts, struct viommu_rid rid, viommu_dev *dma,
		      const struct pcidev_host *host, struct pcidev **out);
/* A DMA test engine with the register layout of QEMU's edu device
 * (1234:11e8, BAR0 1 MiB). */
int edu_create(struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host, struct pcidev **out);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_DEVMODELS_PCIDEV_H */
