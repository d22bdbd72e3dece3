/* SPDX-License-Identifier: MIT */
/*
 * viommu: the virtio-iommu front-end (virtio 1.2, section 5.13).
 *
 * Decodes the requests of a virtio-iommu device (ATTACH, DETACH, MAP, UNMAP,
 * PROBE) into calls of the core (viommu/iommu.h) and turns the core's DMA
 * faults of its endpoints into virtio-iommu fault events. A virtio-iommu
 * domain is one core domain: a paging domain with a host-owned table (VT-d
 * second-level format, 48-bit input) that MAP and UNMAP build, or an
 * identity domain for an ATTACH with VIRTIO_IOMMU_ATTACH_F_BYPASS. The
 * translation, the IOTLB and the fault records are the core's.
 *
 * What this object does not do is the virtio transport: a device model owns
 * the virtqueues. For each request chain it gathers the device-readable
 * bytes and hands them to viommu_virtio_iommu_request() with the
 * device-writable area, then returns the chain with the length written. It
 * offers the features of viommu_virtio_iommu_device_features(), reports the
 * driver's choice with viommu_virtio_iommu_set_features(), serves its
 * device-specific configuration space from viommu_virtio_iommu_config_read /
 * _write, and when told a fault event waits (the config's event callback)
 * fills the driver's event buffers from viommu_virtio_iommu_pop_event().
 *
 * Endpoints: every requester behind the device is added with
 * viommu_virtio_iommu_add_endpoint (the endpoint ID is the one the firmware
 * table gives the guest, ACPI VIOT for PCI: endpoint_start + BDF offset).
 * Until the driver attaches it an endpoint's DMA is refused
 * (VIOMMU_FAULT_BLOCKED), or passes untranslated while the driver has
 * VIRTIO_IOMMU_F_BYPASS_CONFIG and has set the config's bypass field.
 *
 * Semantics kept from the specification (5.13.6): a mapping is what one MAP
 * created; MAP of a range that overlaps one is INVAL; UNMAP removes every
 * mapping inside its range and fails with RANGE (removing nothing) when it
 * would split one; a domain exists from its first ATTACH until its last
 * endpoint leaves it, and its mappings go with it; ATTACH of an endpoint
 * attached elsewhere moves it. An UNMAP's status is written only once no
 * translation of the range can be handed out any more.
 *
 * Thread-safety: requests, config accesses, feature and endpoint calls are
 * serialized internally; DMA through the endpoints' viommu_devs may run on
 * any thread at the same time.
 */
#ifndef VIOMMU_VIRTIO_IOMMU_H
#define VIOMMU_VIRTIO_IOMMU_H

#include <viommu/common.h>
#include <viommu/iommu.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct viommu_virtio_iommu viommu_virtio_iommu;

/* The virtio device ID (5.13.1) and the PCI device ID of a modern device. */
#define VIOMMU_VIRTIO_IOMMU_DEVICE_ID 23
#define VIOMMU_VIRTIO_IOMMU_PCI_DEVICE_ID (0x1040 + VIOMMU_VIRTIO_IOMMU_DEVICE_ID)

/* Feature bits (5.13.3). */
#define VIOMMU_VIRTIO_IOMMU_F_INPUT_RANGE 0
#define VIOMMU_VIRTIO_IOMMU_F_DOMAIN_RANGE 1
#define VIOMMU_VIRTIO_IOMMU_F_MAP_UNMAP 2
#define VIOMMU_VIRTIO_IOMMU_F_BYPASS 3
#define VIOMMU_VIRTIO_IOMMU_F_PROBE 4
#define VIOMMU_VIRTIO_IOMMU_F_MMIO 5
#define VIOMMU_VIRTIO_IOMMU_F_BYPASS_CONFIG 6

/* Size of the device-specific configuration space (5.13.4). */
#define VIOMMU_VIRTIO_IOMMU_CONFIG_SIZE 40
/* Size of one fault event (struct virtio_iommu_fault, 5.13.6.8). */
#define VIOMMU_VIRTIO_IOMMU_EVENT_SIZE 24

/* Reserved-memory property subtypes (5.13.6.7.1). */
#define VIOMMU_VIRTIO_IOMMU_RESV_RESERVED 0
#define VIOMMU_VIRTIO_IOMMU_RESV_MSI 1

/* A reserved region PROBE reports for every endpoint: [start, end]. */
struct viommu_virtio_iommu_resv {
	uint64_t start;
	uint64_t end;     /**< inclusive */
	uint32_t subtype; /**< VIOMMU_VIRTIO_IOMMU_RESV_* */
};

/* Called (with no lock of the object held) each time a fault record is
 * queued, on the thread whose DMA faulted: the device model should pop events
 * into the driver's buffers when it has some. That thread may be in the
 * middle of a zero-copy transfer (a DMA hold) that an UNMAP, holding the
 * object's request lock, waits for: the callback must not wait for a
 * request to finish (pop_event does not). */
typedef void (*viommu_virtio_iommu_event_fn)(void *ctx);

struct viommu_virtio_iommu_config {
	uint32_t size;          /**< sizeof(struct viommu_virtio_iommu_config) */
	uint32_t domain_start;  /**< domain IDs the driver may use: [start, end] */
	uint32_t domain_end;    /**< 0 with start 0: 0 to 2^32 - 1 */
	uint32_t probe_size;    /**< in: PROBE's property buffer, 0 = 512;
				     out: at least what the reserved regions need */
	uint32_t max_mappings;  /**< live mappings over all domains; a MAP beyond
				     it fails with NOMEM. 0 = 65536 (each may
				     cost a 4 KiB table: this bounds what a
				     guest makes the host allocate) */
	uint32_t events;        /**< fault events that may wait, 0 = 256; more
				     are counted lost */
	const struct viommu_virtio_iommu_resv *resv; /**< copied */
	uint32_t nr_resv;       /**< at most 16 */
	viommu_virtio_iommu_event_fn event; /**< optional */
	void *event_ctx;
	uint64_t input_end;     /**< out: the last IOVA (2^48 - 1) */
	uint64_t page_size_mask;/**< out: the page sizes offered */
};

/**
 * Create the front-end on an instance. It installs a fault queue on the
 * instance (viommu_set_fault_queue): -EBUSY if one is installed already.
 * @alloc: NULL for the C library.
 * Errors: -EINVAL (bad config: unknown size, domain_end < domain_start,
 * nr_resv over 16, a region with end < start or an unknown subtype),
 * -EBUSY, -ENOMEM.
 */
VIOMMU_API int viommu_virtio_iommu_create(viommu *v, struct viommu_virtio_iommu_config *cfg,
					  const struct viommu_alloc *alloc, viommu_virtio_iommu **out);

/** Destroy: every domain, mapping and endpoint device it made. Takes NULL.
 *  No DMA through its endpoints may be running or start. */
VIOMMU_API void viommu_virtio_iommu_destroy(viommu_virtio_iommu *vi);

/**
 * Put a requester behind the device as `endpoint`. Creates the core device
 * (blocked until the driver attaches it) and returns it in *dev (the device
 * model's DMA goes through it).
 * Errors: -EEXIST (the endpoint ID or the requester is there already),
 * -EINVAL, -ENOMEM.
 */
VIOMMU_API int viommu_virtio_iommu_add_endpoint(viommu_virtio_iommu *vi, uint32_t endpoint, struct viommu_rid rid,
						viommu_dev **dev);

/** The device's feature bits (1ull << VIOMMU_VIRTIO_IOMMU_F_*, plus nothing
 *  of the transport's). */
VIOMMU_API uint64_t viommu_virtio_iommu_device_features(const viommu_virtio_iommu *vi);

/** The features the driver accepted (the transport's bits are ignored).
 *  Errors: -EINVAL (a device-specific bit that was not offered). */
VIOMMU_API int viommu_virtio_iommu_set_features(viommu_virtio_iommu *vi, uint64_t features);

/** Read the configuration space; bytes beyond it read as 0. */
VIOMMU_API void viommu_virtio_iommu_config_read(viommu_virtio_iommu *vi, uint32_t off, void *buf, uint32_t len);
/** Write it: only `bypass` (offset 36) is writable, and only with
 *  VIRTIO_IOMMU_F_BYPASS_CONFIG negotiated; other writes are ignored. */
VIOMMU_API void viommu_virtio_iommu_config_write(viommu_virtio_iommu *vi, uint32_t off, const void *buf,
						 uint32_t len);

/**
 * Process one request. @in, @in_len: the device-readable bytes (head and
 * body); @out, @out_len: the device-writable area (the tail; for PROBE the
 * properties, then the tail). On return *written holds the bytes written into
 * @out (the used length): the status is in the tail, whatever the request
 * did, and the return is 0. -EINVAL only when no status can be written
 * (NULL, or @out_len below the 4-byte tail): the chain should go back with
 * nothing written.
 */
VIOMMU_API int viommu_virtio_iommu_request(viommu_virtio_iommu *vi, const void *in, size_t in_len, void *out,
					   size_t out_len, size_t *written);

/** Take the oldest waiting fault event (VIOMMU_VIRTIO_IOMMU_EVENT_SIZE bytes,
 *  little-endian as the guest reads it). 0, or -EAGAIN when none waits.
 *  Take a buffer from the driver first: an event popped is the caller's.
 *  It takes no lock that a request holds while it drains DMA (see the
 *  config's event callback), so it may run on a faulting thread. */
VIOMMU_API int viommu_virtio_iommu_pop_event(viommu_virtio_iommu *vi, uint8_t *ev);

/** The event last popped could not be delivered (the driver's buffer could
 *  not be written): counted in events_lost instead of events. */
VIOMMU_API void viommu_virtio_iommu_event_lost(viommu_virtio_iommu *vi);

/** Device reset: every endpoint detached (blocked), every domain and
 *  mapping gone, features cleared, bypass 0, waiting events dropped. */
VIOMMU_API void viommu_virtio_iommu_reset(viommu_virtio_iommu *vi);

/**
 * Write the ACPI VIOT table (with header, checksummed) that tells a guest
 * where the device is and what it translates: one virtio-iommu PCI node for
 * `iommu`, and one PCI range node per endpoint, whose endpoint ID is its
 * BDF (bus << 8 | devfn), the ID to give viommu_virtio_iommu_add_endpoint.
 * A PCI device not listed is not behind the IOMMU. Returns the table's
 * length, or -ENOSPC when `len` is too small (nothing written), -EINVAL
 * (NULL, endpoints NULL with n, more than 256 endpoints).
 */
VIOMMU_API int viommu_virtio_iommu_viot(struct viommu_rid iommu, const struct viommu_rid *endpoints, unsigned n,
					void *buf, size_t len);

struct viommu_virtio_iommu_stats {
	uint64_t requests;           /**< requests processed */
	uint64_t status[9];          /**< by status: OK, IOERR, UNSUPP, DEVERR,
					  INVAL, RANGE, NOENT, FAULT, NOMEM */
	uint64_t maps, unmaps;       /**< MAP / UNMAP requests that succeeded */
	uint64_t attaches, detaches; /**< ATTACH / DETACH requests that succeeded */
	uint64_t domains;            /**< live domains */
	uint64_t mappings;           /**< live mappings */
	uint64_t events;             /**< fault events handed to the driver */
	uint64_t events_lost;        /**< fault events lost: the queue was full,
					  or the driver's buffer could not take it */
	uint64_t events_foreign;     /**< fault records of requesters that are
					  not endpoints (not the device's to report) */
};
VIOMMU_API void viommu_virtio_iommu_get_stats(viommu_virtio_iommu *vi, struct viommu_virtio_iommu_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_VIRTIO_IOMMU_H */
