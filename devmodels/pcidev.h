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
 * thread and call pcidev_notify from it. The framework's state (config space,
 * MSI/MSI-X) is guarded by dev->lock, a recursive mutex; the host callbacks
 * (msi, intx, log) are called with it held, so they must not wait for another
 * thread that accesses the same device. Model callbacks (ops) are called
 * without it.
 *
 * Ownership: a constructor (virtio_blk_create, edu_create) returns a pcidev
 * the caller owns until pcidev_destroy. A model that builds its own calls
 * pcidev_init on zeroed memory from calloc (pcidev_destroy frees it with
 * free); a pcidev embedded in another structure is released with
 * pcidev_fini instead.
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
	 * (e.g. the command register changed): `val` is what the guest wrote
	 * (the bytes outside the write mask are not in the config space). */
	void (*config_written)(struct pcidev *dev, unsigned off, unsigned len, uint32_t val);
	/* After the framework read config bytes [off, off + len): may replace
	 * the value (e.g. a window onto a BAR). Called without dev->lock. */
	uint32_t (*config_read)(struct pcidev *dev, unsigned off, unsigned len, uint32_t val);
	/* Device reset (function level or VMM reset); the framework has already
	 * restored the config space and the MSI/MSI-X state. */
	void (*reset)(struct pcidev *dev);
	/* Free the model's state (the framework frees the pcidev). */
	void (*destroy)(struct pcidev *dev);
	/* After the guest changed what MSI or MSI-X vectors send or whether
	 * they may send: an MSI-X table write (vectors [first, first + count)),
	 * or a config write that touches the command register or the MSI or
	 * MSI-X capability (count ~0u: every vector; after config_written).
	 * pcidev_vector_state says what each vector does now. For a model
	 * whose interrupts bypass pcidev_notify while a vector is live (an
	 * assigned device's vectors as KVM irqfds). Called without dev->lock. */
	void (*vectors_changed)(struct pcidev *dev, unsigned first, unsigned count);
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
	uint32_t msi_pending_mask;           /* MSI vectors pending while masked */
	uint8_t next_cap;                    /* where the next capability goes */
	uint8_t last_cap;                    /* last capability in the list (0 = none) */
	uint8_t intx_asserted;               /* the device asserts INTx (status bit 3) */
	uint8_t intx_level;                  /* the level last given to host->intx */
	unsigned log_budget;                 /* lines left before logging goes quiet */
	uint8_t cfg_reset[PCIDEV_CFG_SIZE];  /* config space after init (for reset) */
};

/* Device identity for pcidev_init. */
struct pcidev_id {
	uint16_t vendor, device, subsys_vendor, subsys;
	uint8_t revision;
	uint32_t class_code; /* 24 bits: class, subclass, prog-if */
	uint8_t intx_pin;    /* 0 none, 1..4 = INTA..INTD */
};

/* Framework: set up config space (header type 0, capability list).
 * Errors: -EINVAL (NULL dev, ops or id, bad intx_pin), or a mutex error. */
int pcidev_init(struct pcidev *dev, const struct pcidev_ops *ops, void *priv, const struct pcidev_id *id,
		struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host);
/* Declare a BAR (before the guest sees the device). Sizes: memory BARs a
 * power of two from 16 bytes (MEM32 up to 2 GiB, MEM64 up to 2^40); IO BARs
 * 4 to 256 bytes. A MEM64 BAR takes slots bar and bar + 1. -EINVAL on a bad
 * index, type or size, -EBUSY when a slot is taken. */
int pcidev_set_bar(struct pcidev *dev, unsigned bar, enum pcidev_bar_type type, uint64_t size, int prefetchable);
/* Add an MSI capability (64-bit, per-vector masking) with 2^log2_vectors
 * vectors (log2_vectors 0..5). -EINVAL, -EEXIST (already there), -ENOSPC. */
int pcidev_add_msi(struct pcidev *dev, unsigned log2_vectors);
/* Add an MSI-X capability with `vectors` entries (1..2048); table and PBA
 * placed in `bar` (declared already) at the given offsets (8-byte aligned,
 * inside the BAR, not overlapping); the framework serves those ranges
 * itself. -EINVAL, -EEXIST, -ENOSPC, -ENOMEM. */
int pcidev_add_msix(struct pcidev *dev, unsigned vectors, unsigned bar, uint64_t table_off, uint64_t pba_off);
/* Add a vendor-specific or other capability with `len` bytes of body (after
 * the 2-byte header); returns its offset or a negative errno. */
int pcidev_add_cap(struct pcidev *dev, uint8_t cap_id, const void *body, unsigned len);

/* Bus side: config and BAR accesses (config: len 1, 2, 4; BAR: 1, 2, 4, 8;
 * off aligned to len). Anything else (bad length, misaligned, out of range,
 * an undeclared BAR) reads as all ones and is ignored on write. */
uint32_t pcidev_config_read(struct pcidev *dev, unsigned off, unsigned len);
void pcidev_config_write(struct pcidev *dev, unsigned off, unsigned len, uint32_t val);
uint64_t pcidev_bar_read(struct pcidev *dev, unsigned bar, uint64_t off, unsigned len);
void pcidev_bar_write(struct pcidev *dev, unsigned bar, uint64_t off, uint64_t val, unsigned len);
/* Memory/IO decoding enabled in the command register? */
int pcidev_mem_enabled(const struct pcidev *dev);
int pcidev_io_enabled(const struct pcidev *dev);
int pcidev_bus_master(const struct pcidev *dev);
/* MSI / MSI-X enable bits of the capabilities (0 when absent). */
int pcidev_msi_enabled(const struct pcidev *dev);
int pcidev_msix_enabled(const struct pcidev *dev);

/* What pcidev_notify(dev, vec) would do now. */
enum pcidev_vector_state {
	PCIDEV_VECTOR_OFF = 0, /* neither MSI nor MSI-X is on (INTx), vec is beyond the
				  MSI-X table, or bus mastering is off (dropped) */
	PCIDEV_VECTOR_MASKED,  /* masked (vector or function): its pending bit is set */
	PCIDEV_VECTOR_LIVE,    /* the message *addr / *data is sent */
};
/* The state of vector `vec` and, when LIVE, its message (MSI: the data with
 * the vector in its low bits, as sent; a vector beyond the enabled ones
 * aliases as pcidev_notify does). addr and data may be NULL. Returns an enum
 * pcidev_vector_state, or -EINVAL (NULL dev). */
int pcidev_vector_state(struct pcidev *dev, unsigned vec, uint64_t *addr, uint32_t *data);

/* Device side: signal interrupt vector `vec` (MSI-X entry, MSI vector, or
 * INTx assert when neither is enabled). */
void pcidev_notify(struct pcidev *dev, unsigned vec);
/* INTx deassert (level-triggered devices). */
void pcidev_intx_clear(struct pcidev *dev);
/* Log a line through host->log (printf format, no newline; the host adds
 * which device it is). A device logs at most a bounded number of lines
 * between resets, so a guest cannot flood the host's log. */
void pcidev_logf(struct pcidev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Function-level reset: config space as after init (BARs unplaced, command
 * register 0, MSI/MSI-X disabled, every MSI-X vector masked, nothing
 * pending), INTx deasserted, then the model's reset. */
void pcidev_reset(struct pcidev *dev);
/* The model's destroy, then the framework's state; takes NULL. */
void pcidev_destroy(struct pcidev *dev);
/* As pcidev_destroy, without freeing `dev` itself: for a pcidev the caller
 * embeds in its own (zeroed) structure, such as a host bridge. Takes NULL, a
 * zeroed pcidev whose pcidev_init failed, and one already finished. */
void pcidev_fini(struct pcidev *dev);

/* Device constructors. */
struct virtio_blk_config_opts {
	const char *path;   /* raw image (capacity: its size rounded down to 512) */
	int readonly;       /* open read-only, offer VIRTIO_BLK_F_RO */
	/* Do not offer indirect descriptors. An indirect table is one more DMA
	 * mapping per request: behind an IOMMU that the guest runs strict, one
	 * more invalidation (and with caching mode, one more map
	 * notification); a request then takes a ring entry per buffer. */
	int no_indirect;
	/* Request queues, 1..VIRTIO_BLK_MAX_QUEUES (0: one). More than one
	 * offers VIRTIO_BLK_F_MQ: Linux then gives each vCPU a queue of its own
	 * whose interrupt goes to that vCPU, so a request served on the vCPU
	 * that submitted it completes there, without waking another. */
	unsigned queues;
};
#define VIRTIO_BLK_MAX_QUEUES 32u
/* virtio-blk over the modern virtio-pci transport, offering
 * VIRTIO_F_ACCESS_PLATFORM (so the guest uses its DMA API and IOMMU).
 * Layout: BAR1 (32-bit memory, 4 KiB) holds the MSI-X table (2 vectors:
 * config and the request queue); BAR4 (64-bit prefetchable memory, 16 KiB)
 * the common, ISR, device and notify structures. One request queue of up to
 * 256 entries, indirect descriptors unless no_indirect. The image is read and written with
 * pread/pwrite from the notifying vCPU thread.
 * Errors: -EINVAL (NULL arguments), -ENOMEM, or the negative errno of
 * opening or sizing the image. */
int virtio_blk_create(const struct virtio_blk_config_opts *opts, struct viommu_rid rid, viommu_dev *dma,
		      const struct pcidev_host *host, struct pcidev **out);
/* A DMA test engine with the register layout of QEMU's edu device
 * (1234:11e8, BAR0 1 MiB, one MSI vector or INTA). DMA runs synchronously
 * on the write of the command register. Extensions over QEMU's (which stops
 * the VM on a bad transfer): a refused or faulting transfer sets status bit
 * 8 (cleared by the next start) and register 0xa0 to its reason
 * (EDU_ERR_*), and the command still completes (interrupt if asked).
 * Errors: -EINVAL, -ENOMEM. */
#define EDU_ERR_NONE 0u
#define EDU_ERR_RANGE 1u      /* touches outside the 4 KiB buffer at 0x40000 */
#define EDU_ERR_DMA_FAULT 2u  /* the DMA faulted (the fault log has it) */
#define EDU_ERR_NO_MASTER 3u  /* bus mastering disabled: nothing done */
int edu_create(struct viommu_rid rid, viommu_dev *dma, const struct pcidev_host *host, struct pcidev **out);
/* A virtio-iommu device (virtio 1.2, 5.13) serving the front-end `vi`
 * (viommu/virtio_iommu.h; the caller keeps it, and it must outlive the
 * device). `dma` is the device's own requester, which must not be one of
 * vi's endpoints. Call virtio_iommu_events() from the front-end's event
 * callback. Errors: -EINVAL, -ENOMEM. */
struct viommu_virtio_iommu;
int virtio_iommu_create(struct viommu_virtio_iommu *vi, struct viommu_rid rid, viommu_dev *dma,
			const struct pcidev_host *host, struct pcidev **out);
/* Fault events wait: put them in the driver's buffers. Any thread. */
void virtio_iommu_events(struct pcidev *dev);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_DEVMODELS_PCIDEV_H */
