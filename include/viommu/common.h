/* SPDX-License-Identifier: MIT */
/*
 * viommu: things every public header shares: the export macro, the allocation
 * hooks and the log callback.
 *
 * Thread-safety: the structures here are plain descriptions; the library copies
 * them at create time and never writes to them.
 */
#ifndef VIOMMU_COMMON_H
#define VIOMMU_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VIOMMU_BUILDING_LIBRARY) && defined(__GNUC__)
#define VIOMMU_API __attribute__((visibility("default")))
#else
#define VIOMMU_API
#endif

/** Library version, also in viommu.pc and the CMake package. */
#define VIOMMU_VERSION_MAJOR 0
#define VIOMMU_VERSION_MINOR 1
#define VIOMMU_VERSION_PATCH 0

/** Returns "MAJOR.MINOR.PATCH" of the library actually linked. Never fails. */
VIOMMU_API const char *viommu_version(void);

/*
 * Allocation hooks. Every byte the library allocates goes through these, so a
 * caller (or a test) can account for memory or fail the Nth allocation.
 *
 * alloc: return memory of at least `size` bytes aligned to `align` (a power of
 *        two, at most 4096), or NULL. The library never assumes it is zeroed.
 * free:  release memory from alloc; `size` and `align` are the values alloc got.
 *        Never called with NULL.
 * Pass NULL where a `const struct viommu_alloc *` is asked for to use the C
 * library (aligned_alloc/free).
 */
typedef void *(*viommu_alloc_fn)(void *ctx, size_t size, size_t align);
typedef void (*viommu_free_fn)(void *ctx, void *ptr, size_t size, size_t align);

struct viommu_alloc {
	uint32_t size;          /**< sizeof(struct viommu_alloc): versioning */
	viommu_alloc_fn alloc;  /**< required */
	viommu_free_fn free;    /**< required */
	void *ctx;              /**< first argument of both */
};

/* Log levels, most severe first. */
enum viommu_log_level {
	VIOMMU_LOG_ERROR = 0,
	VIOMMU_LOG_WARN = 1,
	VIOMMU_LOG_INFO = 2,
	VIOMMU_LOG_DEBUG = 3,
};

/*
 * The library never prints. It reports through this callback when one is
 * installed; `msg` is a NUL-terminated line without a trailing newline, valid
 * only during the call. The callback may be called from any thread that is
 * inside a library call.
 */
typedef void (*viommu_log_fn)(void *ctx, enum viommu_log_level level, const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* VIOMMU_COMMON_H */
