/* SPDX-License-Identifier: MIT */
/*
 * viommu: VFIO glue -- host PCI devices assigned to a guest.
 *
 * Objects:
 *   viommu_vfio            a context: where sysfs and /dev are, how to reach
 *                          the kernel (the real system calls, or a fake one for
 *                          tests), the log callback. Nothing is process-wide.
 *   viommu_vfio_container  one address space of the host IOMMU that devices
 *                          share: a type1 (v2) container with its groups, or
 *                          an iommufd IOAS. Its kind is fixed when the first
 *                          device is added (see viommu_vfio_device_open).
 *   viommu_vfio_device     one host PCI function opened through VFIO.
 *   viommu_vfio_shadow     a viommu domain's mappings followed into the
 *                          container (IOVA -> host memory of guest RAM), for
 *                          a guest that runs its own virtual IOMMU.
 *
 * A VMM assigning a device:
 *   viommu_vfio_create(&cfg, &v);
 *   viommu_vfio_group_check(v, "0000:01:00.0", why, sizeof(why)); (optional:
 *       device_open does it too, and logs the same explanation)
 *   viommu_vfio_container_create(v, &c);
 *   viommu_vfio_device_open(c, "0000:01:00.0", &d);      (reset on open)
 *   no virtual IOMMU: viommu_vfio_map_ram(c, ram, nr, 0, &done);
 *   virtual IOMMU:    viommu_vfio_shadow_create(c, &shadow_cfg, &s);
 *   viommu_vfio_device_region_info / _mmap   BARs into KVM memory slots
 *   viommu_vfio_device_set_irq_eventfds       MSI/MSI-X vectors -> KVM irqfds
 *   viommu_vfio_device_set_intx               INTx with a resample eventfd
 *   viommu_vfio_device_config_read / _write   config space pass-through
 *   ... run ...
 *   viommu_vfio_shadow_destroy(s); viommu_vfio_device_close(d) (reset);
 *   viommu_vfio_container_destroy(c); viommu_vfio_destroy(v);
 *
 * Errors: every fallible function returns 0 or a negative errno, and says
 * why through the context's log callback (at VIOMMU_LOG_ERROR) whenever the
 * errno alone would leave a user guessing (a group that is not viable, RAM
 * over a reserved IOVA range, the type1 DMA entry limit).
 *
 * Thread-safety: DMA map/unmap on a container (and the shadows that call
 * them from the core's notifiers) may run on several threads at once; they
 * are serialized inside the container. Calls on one device must not run
 * concurrently with each other (a VMM serializes a device's config-space and
 * interrupt changes anyway); different devices are independent. Discovery
 * may run on any thread. Create/destroy of an object must not race with
 * other calls on it.
 */
#ifndef VIOMMU_VFIO_H
#define VIOMMU_VFIO_H

#include <viommu/common.h>
#include <viommu/iommu.h>
#include <viommu/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The glue is its own static library (viommu_vfio, linked with libpci), not
 * part of libviommu.so: hypervisors that do not assign host devices need
 * neither it nor libpci. Its functions are marked with this macro rather than
 * VIOMMU_API, which names what libviommu.so exports.
 */
#define VIOMMU_VFIO_API

typedef struct viommu_vfio viommu_vfio;
typedef struct viommu_vfio_container viommu_vfio_container;
typedef struct viommu_vfio_device viommu_vfio_device;
typedef struct viommu_vfio_shadow viommu_vfio_shadow;

/* ------------------------------------------------------------------------ */
/* The kernel interface                                                     */

/*
 * How the glue reaches the kernel. Every VFIO and iommufd call goes through
 * this table, so a test (or a sandbox that receives its fds from a privileged
 * helper) can stand in for the kernel. Each function returns what the system
 * call would, with failures as a negative errno instead of -1 and errno.
 * Pass NULL in the config for the real system calls.
 */
struct viommu_vfio_kernel {
	uint32_t size; /**< sizeof(struct viommu_vfio_kernel) */
	void *ctx;     /**< first argument of every function */
	/** open(2) with O_RDWR | O_CLOEXEC: an fd, or -errno. */
	int (*open)(void *ctx, const char *path);
	/** close(2): 0 or -errno (the fd is gone either way). */
	int (*close)(void *ctx, int fd);
	/** ioctl(2): its non-negative result, or -errno. `arg` is an integer
	 *  or a pointer, as the request wants. */
	int (*ioctl)(void *ctx, int fd, unsigned long request, unsigned long arg);
	/** pread(2)/pwrite(2): bytes transferred, or -errno. */
	int64_t (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t offset);
	int64_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, uint64_t offset);
	/** mmap(2) of `fd` shared with PROT_* `prot`: 0 with *out, or -errno. */
	int (*mmap)(void *ctx, int fd, uint64_t offset, size_t len, int prot, void **out);
	/** munmap(2): 0 or -errno. */
	int (*munmap)(void *ctx, void *addr, size_t len);
};

/* ------------------------------------------------------------------------ */
/* Context                                                                  */

enum viommu_vfio_backend {
	VIOMMU_VFIO_BACKEND_AUTO = 0,    /**< iommufd when <dev>/iommu opens and the
					      device has a vfio-dev node in sysfs,
					      else type1 */
	VIOMMU_VFIO_BACKEND_TYPE1 = 1,   /**< /dev/vfio/vfio container + groups, type1v2 */
	VIOMMU_VFIO_BACKEND_IOMMUFD = 2, /**< /dev/iommu + /dev/vfio/devices/vfioN */
};

struct viommu_vfio_config {
	uint32_t size;             /**< sizeof(struct viommu_vfio_config) */
	const char *sysfs_root;    /**< NULL: "/sys". Both libpci (its sysfs.path)
				        and the glue's own sysfs reads use it. */
	const char *dev_root;      /**< NULL: "/dev" (vfio/vfio, vfio/N, iommu,
				        vfio/devices/vfioN are below it) */
	const char *pci_dump;      /**< NULL, or an `lspci -x`-style dump file that
				        discovery reads instead of sysfs (libpci's
				        dump method); IOMMU group and driver then
				        come from sysfs_root if it has the device */
	enum viommu_vfio_backend backend;
	const struct viommu_vfio_kernel *kernel; /**< NULL: the real kernel (copied) */
	viommu_log_fn log;         /**< optional */
	void *log_ctx;
};

/**
 * Create a context. Strings are copied.
 * Errors: -EINVAL (NULL, size too small, unknown backend, kernel table with a
 * NULL function or a size too small, a path longer than PATH_MAX), -ENOMEM.
 */
VIOMMU_VFIO_API int viommu_vfio_create(const struct viommu_vfio_config *cfg, viommu_vfio **out);

/** Destroy; takes NULL. Every container of it must be destroyed first. */
VIOMMU_VFIO_API void viommu_vfio_destroy(viommu_vfio *v);

/* ------------------------------------------------------------------------ */
/* Discovery                                                                */

/* BAR flags (from the kernel's resource flags, or the BAR register in a dump). */
#define VIOMMU_VFIO_BAR_IO       (1u << 0) /**< I/O space */
#define VIOMMU_VFIO_BAR_MEM64    (1u << 1) /**< 64-bit memory BAR (takes two slots) */
#define VIOMMU_VFIO_BAR_PREFETCH (1u << 2) /**< prefetchable */

struct viommu_vfio_bar {
	uint64_t addr;  /**< host bus address; 0 if unassigned */
	uint64_t size;  /**< bytes; 0 if none (or unknown: a dump has no sizes) */
	uint32_t flags; /**< VIOMMU_VFIO_BAR_* */
};

#define VIOMMU_VFIO_CAP_EXTENDED (1u << 0) /**< a PCIe extended capability */

struct viommu_vfio_cap {
	uint16_t id;     /**< PCI_CAP_ID_* / PCI_EXT_CAP_ID_* */
	uint16_t offset; /**< in config space */
	uint32_t flags;  /**< VIOMMU_VFIO_CAP_* */
};

#define VIOMMU_VFIO_MAX_CAPS 48

struct viommu_vfio_pci_info {
	uint32_t size;              /**< sizeof(struct viommu_vfio_pci_info) */
	char bdf[24];               /**< canonical "dddd:bb:dd.f" */
	uint32_t domain;
	uint8_t bus, dev, func;
	uint8_t header_type;        /**< low 7 bits: 0 endpoint, 1 bridge, 2 cardbus */
	uint16_t vendor_id, device_id;
	uint16_t subsys_vendor_id, subsys_id;
	uint32_t class_code;        /**< base << 16 | sub << 8 | prog-if */
	uint8_t revision;
	struct viommu_vfio_bar bars[6];
	uint32_t nr_caps;           /**< capabilities found (at most VIOMMU_VFIO_MAX_CAPS) */
	struct viommu_vfio_cap caps[VIOMMU_VFIO_MAX_CAPS];
	int iommu_group;            /**< -1: none (no IOMMU) or unknown */
	char driver[64];            /**< bound driver, "" for none */
	int vfio_dev;               /**< N of /dev/vfio/devices/vfioN, -1 if none */
};

/**
 * Describe a host PCI function.
 * @bdf: "dddd:bb:dd.f" (a domain of up to 8 hex digits) or "bb:dd.f" (domain 0).
 * Errors: -EINVAL (NULL, malformed BDF), -ENODEV (no such device), -EIO
 * (libpci could not read the tree or the dump; logged).
 */
VIOMMU_VFIO_API int viommu_vfio_pci_probe(viommu_vfio *v, const char *bdf, struct viommu_vfio_pci_info *out);

/**
 * Can the device's IOMMU group be given to VFIO? The device must be bound to
 * vfio-pci, and every other device of its group bound to vfio-pci, to
 * pci-stub or to no driver; bridges (a header type other than 0) are left
 * out, as the kernel does.
 * @why: if not NULL, receives a NUL-terminated explanation on -EBUSY/-ENODEV
 *       naming each device in the way, its driver, and the commands that
 *       fix it (truncated to why_len).
 * Errors: -EBUSY (not viable), -ENODEV (no such device, or it has no IOMMU
 * group: the host IOMMU is off), -EINVAL.
 */
VIOMMU_VFIO_API int viommu_vfio_group_check(viommu_vfio *v, const char *bdf, char *why, size_t why_len);

/* ------------------------------------------------------------------------ */
/* Containers: host IOMMU address spaces                                    */

/** Create an empty container (no kernel call yet). Errors: -EINVAL, -ENOMEM. */
VIOMMU_VFIO_API int viommu_vfio_container_create(viommu_vfio *v, viommu_vfio_container **out);

/** Destroy: every device of it must be closed first (else nothing happens and
 *  an error is logged). Its DMA mappings go with it. Takes NULL. */
VIOMMU_VFIO_API void viommu_vfio_container_destroy(viommu_vfio_container *c);

#define VIOMMU_VFIO_MAX_RANGES 32

struct viommu_vfio_iova_range {
	uint64_t first, last; /**< inclusive */
};

struct viommu_vfio_container_info {
	uint32_t size;                    /**< sizeof(struct viommu_vfio_container_info) */
	enum viommu_vfio_backend backend; /**< AUTO while no device was added */
	uint64_t pgsizes;                 /**< IOMMU page sizes (type1), or the
					       IOVA alignment (iommufd) */
	uint32_t nr_ranges;               /**< usable IOVA ranges; everything
					       between them is reserved */
	struct viommu_vfio_iova_range ranges[VIOMMU_VFIO_MAX_RANGES];
	int dma_limit_known;              /**< type1 reported dma_avail */
	uint32_t dma_avail;               /**< DMA mappings the host still allows */
	uint32_t nr_mappings;             /**< mappings made through this container */
};

/** What the host IOMMU allows. Errors: -EINVAL. */
VIOMMU_VFIO_API int viommu_vfio_container_get_info(viommu_vfio_container *c, struct viommu_vfio_container_info *out);

/**
 * Map [iova, iova + size) to the host memory at vaddr, for device reads
 * (prot VIOMMU_PERM_READ) and/or writes (VIOMMU_PERM_WRITE). Page aligned.
 * Errors: -EINVAL (no device added yet, bad alignment or prot, zero size,
 * wrap), -ERANGE (outside the usable IOVA ranges), -EEXIST (overlaps a
 * mapping), -ENOSPC (the type1 DMA entry limit is reached; logged with the
 * limit), or the kernel's error.
 */
VIOMMU_VFIO_API int viommu_vfio_dma_map(viommu_vfio_container *c, uint64_t iova, void *vaddr, uint64_t size,
				   uint32_t prot);

/**
 * Unmap every mapping inside [iova, iova + size). A mapping that the range
 * covers only in part is refused (the host IOMMUs cannot split one):
 * -EINVAL and nothing done. A range with no mapping is fine.
 * Errors: -EINVAL, or the kernel's error.
 */
VIOMMU_VFIO_API int viommu_vfio_dma_unmap(viommu_vfio_container *c, uint64_t iova, uint64_t size);

/** Skip the parts of guest RAM that fall in a reserved IOVA range instead of
 *  failing (the device cannot reach them). */
#define VIOMMU_VFIO_MAP_SKIP_RESERVED (1u << 0)

/**
 * No virtual IOMMU: map every guest-RAM region IOVA = guest-physical, to its
 * host memory (read-only regions for device reads only). Each region is split
 * at the boundaries of the usable IOVA ranges. Everything is checked before
 * the first kernel call; on a kernel failure the mappings made are undone.
 * @done: if not NULL, receives the bytes mapped.
 * Errors: -EINVAL (bad arguments, unaligned region, unknown flags, no device
 * yet), -ERANGE (RAM over a reserved range without SKIP_RESERVED; logged with
 * the range), -ENOSPC (more mappings needed than the type1 limit allows;
 * logged), -EEXIST, or the kernel's error.
 */
VIOMMU_VFIO_API int viommu_vfio_map_ram(viommu_vfio_container *c, const struct viommu_mem_region *regions,
				   uint32_t nr_regions, uint32_t flags, uint64_t *done);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */

/**
 * Open a host PCI function and add it to the container. Checks its group
 * (viommu_vfio_group_check), picks the backend on the container's first
 * device, sets up the address space (type1: API version, TYPE1v2 extension,
 * group viable, group into the container, IOMMU type, IOMMU info with the
 * IOVA ranges and DMA limit; iommufd: IOAS, bind, attach, IOVA ranges), gets
 * the device and resets it. On any error everything this call did is undone
 * (a device that was opened is reset before it is closed).
 * Errors: -EINVAL, -ENODEV (no device, no IOMMU group), -EBUSY (group not
 * viable; logged with what to do), -EXDEV (the device needs the other backend
 * than the container has), -EPROTO (unexpected VFIO API version or no
 * TYPE1v2, not a PCI device), -ENOMEM, or the kernel's error.
 */
VIOMMU_VFIO_API int viommu_vfio_device_open(viommu_vfio_container *c, const char *bdf, viommu_vfio_device **out);

/**
 * Disable its interrupts, reset it, close it (and its group when it was the
 * group's last device). Mappings of its regions made with _region_mmap must
 * be gone. When it is the container's last device, the container's DMA
 * mappings go too (the kernel drops a type1 container's IOMMU with its last
 * group; an iommufd IOAS is destroyed alike), and the container is as new:
 * destroy the container's shadows before. Takes NULL.
 */
VIOMMU_VFIO_API void viommu_vfio_device_close(viommu_vfio_device *d);

/**
 * The fd to hand to KVM's VFIO pseudo-device (KVM_DEV_VFIO_FILE_ADD, formerly
 * KVM_DEV_VFIO_GROUP_ADD): the group's fd with the type1 backend, the device
 * cdev's fd with iommufd. Borrowed: valid until the device is closed (type1:
 * until the group's last device is). Errors: -EINVAL.
 */
VIOMMU_VFIO_API int viommu_vfio_device_kvm_fd(viommu_vfio_device *d);

#define VIOMMU_VFIO_DEVICE_F_RESET (1u << 0) /**< supports VFIO_DEVICE_RESET */

struct viommu_vfio_device_info {
	uint32_t size;        /**< sizeof(struct viommu_vfio_device_info) */
	uint32_t flags;       /**< VIOMMU_VFIO_DEVICE_F_* */
	uint32_t num_regions; /**< region indexes: BAR0-5 = 0-5, ROM = 6, config = 7 */
	uint32_t num_irqs;    /**< irq indexes: INTx = 0, MSI = 1, MSI-X = 2 */
};

VIOMMU_VFIO_API int viommu_vfio_device_get_info(viommu_vfio_device *d, struct viommu_vfio_device_info *out);

#define VIOMMU_VFIO_REGION_BAR0   0
#define VIOMMU_VFIO_REGION_ROM    6
#define VIOMMU_VFIO_REGION_CONFIG 7

#define VIOMMU_VFIO_REGION_F_READ          (1u << 0)
#define VIOMMU_VFIO_REGION_F_WRITE         (1u << 1)
#define VIOMMU_VFIO_REGION_F_MMAP          (1u << 2)
/** The region's mmap is limited to the sparse areas listed. */
#define VIOMMU_VFIO_REGION_F_SPARSE        (1u << 3)
/** The MSI-X table and PBA in this BAR may be mmapped (the VMM still traps
 *  them for the guest; it may map the rest of their page). */
#define VIOMMU_VFIO_REGION_F_MSIX_MAPPABLE (1u << 4)

#define VIOMMU_VFIO_MAX_SPARSE 16

struct viommu_vfio_region_info {
	uint32_t size;      /**< sizeof(struct viommu_vfio_region_info) */
	uint32_t index;
	uint32_t flags;     /**< VIOMMU_VFIO_REGION_F_* */
	uint64_t bytes;     /**< region size (0: the device has no such region) */
	uint64_t offset;    /**< in the device fd */
	uint32_t nr_sparse; /**< mmappable areas (with F_SPARSE) */
	struct {
		uint64_t offset, size; /**< relative to the region */
	} sparse[VIOMMU_VFIO_MAX_SPARSE];
};

/**
 * Describe a region (VFIO_DEVICE_GET_REGION_INFO with its capabilities).
 * Errors: -EINVAL (bad index), -E2BIG (more sparse areas than
 * VIOMMU_VFIO_MAX_SPARSE), -EPROTO (malformed capability chain), -ENOMEM, or
 * the kernel's.
 */
VIOMMU_VFIO_API int viommu_vfio_device_region_info(viommu_vfio_device *d, uint32_t index,
					      struct viommu_vfio_region_info *out);

/** Read/write `len` bytes at `off` of a region (all or an error).
 *  Errors: -EINVAL (range outside the region), -EIO (short transfer), or the
 *  kernel's. */
VIOMMU_VFIO_API int viommu_vfio_device_region_read(viommu_vfio_device *d, uint32_t index, uint64_t off, void *buf,
					      size_t len);
VIOMMU_VFIO_API int viommu_vfio_device_region_write(viommu_vfio_device *d, uint32_t index, uint64_t off,
					       const void *buf, size_t len);

/** Config space through the config region. Errors: as region_read/write. */
VIOMMU_VFIO_API int viommu_vfio_device_config_read(viommu_vfio_device *d, uint32_t off, void *buf, size_t len);
VIOMMU_VFIO_API int viommu_vfio_device_config_write(viommu_vfio_device *d, uint32_t off, const void *buf, size_t len);

/**
 * mmap [off, off + len) of a region (PROT_* in prot), for a KVM memory slot.
 * Unmap with viommu_vfio_device_region_munmap before closing the device.
 * Errors: -EINVAL (not mmappable there: outside the region or its sparse
 * areas, unaligned), or the kernel's.
 */
VIOMMU_VFIO_API int viommu_vfio_device_region_mmap(viommu_vfio_device *d, uint32_t index, uint64_t off, size_t len,
					      int prot, void **out);
VIOMMU_VFIO_API int viommu_vfio_device_region_munmap(viommu_vfio_device *d, void *addr, size_t len);

#define VIOMMU_VFIO_IRQ_INTX 0
#define VIOMMU_VFIO_IRQ_MSI  1
#define VIOMMU_VFIO_IRQ_MSIX 2

#define VIOMMU_VFIO_IRQ_F_EVENTFD    (1u << 0)
#define VIOMMU_VFIO_IRQ_F_MASKABLE   (1u << 1)
#define VIOMMU_VFIO_IRQ_F_AUTOMASKED (1u << 2) /**< INTx: masked by the host on
						    each interrupt, unmask after EOI */
#define VIOMMU_VFIO_IRQ_F_NORESIZE   (1u << 3) /**< vectors can't be added while enabled */

struct viommu_vfio_irq_info {
	uint32_t size;  /**< sizeof(struct viommu_vfio_irq_info) */
	uint32_t index;
	uint32_t flags; /**< VIOMMU_VFIO_IRQ_F_* */
	uint32_t count; /**< vectors (0: the device has none of this kind) */
};

VIOMMU_VFIO_API int viommu_vfio_device_irq_info(viommu_vfio_device *d, uint32_t index, struct viommu_vfio_irq_info *out);

/**
 * MSI or MSI-X: vectors [start, start + count) signal these eventfds (a -1
 * leaves that vector without one). The caller owns the eventfds (typically
 * KVM irqfds) and keeps them open while they are set.
 * Errors: -EINVAL (bad index, range beyond the vector count, count 0),
 * -ENOMEM, or the kernel's.
 */
VIOMMU_VFIO_API int viommu_vfio_device_set_irq_eventfds(viommu_vfio_device *d, uint32_t index, uint32_t start,
						   uint32_t count, const int *fds);

/** Disable every vector of an interrupt index. Errors: -EINVAL, kernel's. */
VIOMMU_VFIO_API int viommu_vfio_device_irq_disable(viommu_vfio_device *d, uint32_t index);

/**
 * INTx: the interrupt signals `trigger_fd`; the host masks it on each one
 * (it is level-triggered) and unmasks it when `resample_fd` is signalled
 * (KVM's irqfd resampler does so at the guest's EOI). resample_fd -1: unmask
 * by hand with viommu_vfio_device_intx_unmask.
 * Errors: -EINVAL, or the kernel's (on a failure of the second step the first
 * is undone).
 */
VIOMMU_VFIO_API int viommu_vfio_device_set_intx(viommu_vfio_device *d, int trigger_fd, int resample_fd);
VIOMMU_VFIO_API int viommu_vfio_device_intx_unmask(viommu_vfio_device *d);

/** VFIO_DEVICE_RESET. Errors: -ENOTTY (the device cannot be reset), kernel's. */
VIOMMU_VFIO_API int viommu_vfio_device_reset(viommu_vfio_device *d);

/* ------------------------------------------------------------------------ */
/* Shadowing a virtual IOMMU's mappings into the host IOMMU                 */

/** Merge contiguous MAP events into one host mapping, sent when the run
 *  breaks, on an UNMAP, or at viommu_vfio_shadow_flush (which the caller then
 *  must call before the guest's invalidation completes). Without it every MAP
 *  event reaches the host before the notifier returns. */
#define VIOMMU_VFIO_SHADOW_F_DEFER_MAPS (1u << 0)

struct viommu_vfio_shadow_config {
	uint32_t size;                             /**< sizeof(struct viommu_vfio_shadow_config) */
	viommu_domain *domain;                     /**< the guest's domain (host- or guest-owned) */
	const struct viommu_mem_region *regions;   /**< guest RAM: guest-physical -> host (copied) */
	uint32_t nr_regions;                       /**< at most VIOMMU_MEM_MAX_REGIONS */
	uint32_t flags;                            /**< VIOMMU_VFIO_SHADOW_F_* */
};

/**
 * Follow a domain: registers a map notifier (with replay, so what is mapped
 * already reaches the host now) that turns each MAP of IOVA -> guest-physical
 * into a host mapping IOVA -> host address of that guest page, and each UNMAP
 * into a host unmap before the notifier returns. A host mapping that an UNMAP
 * covers only in part is unmapped whole and its remainder mapped again
 * (counted in `splits`). Guest-physical addresses outside guest RAM are not
 * mapped: an error, counted and logged.
 * Errors: -EINVAL (bad config, unknown flags, container without a device),
 * -ENOMEM, or the first error of the replay (then nothing stays mapped).
 */
VIOMMU_VFIO_API int viommu_vfio_shadow_create(viommu_vfio_container *c, const struct viommu_vfio_shadow_config *cfg,
					 viommu_vfio_shadow **out);

/** Send the pending run of a DEFER_MAPS shadow. Errors: as dma_map. */
VIOMMU_VFIO_API int viommu_vfio_shadow_flush(viommu_vfio_shadow *s);

struct viommu_vfio_shadow_stats {
	uint64_t map_events, unmap_events; /**< heard from the core */
	uint64_t host_maps, host_unmaps;   /**< host IOMMU calls made */
	uint64_t splits;                   /**< host mappings re-made around a partial unmap */
	uint64_t errors;                   /**< events that could not be followed */
	uint64_t mapped_bytes;             /**< in the host now */
	uint32_t nr_mappings;              /**< host mappings now */
};

VIOMMU_VFIO_API void viommu_vfio_shadow_get_stats(viommu_vfio_shadow *s, struct viommu_vfio_shadow_stats *out);

/** Unregister the notifier and unmap everything the shadow mapped. Takes NULL. */
VIOMMU_VFIO_API void viommu_vfio_shadow_destroy(viommu_vfio_shadow *s);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_VFIO_H */
