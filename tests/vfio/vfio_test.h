/* SPDX-License-Identifier: MIT */
/*
 * Shared by the VFIO glue's tests: a check harness (CHECK, CHECK_EQ count and
 * report, the test goes on; check_done() gives the exit status), a fake sysfs
 * tree built in a temporary directory, and a log callback that keeps the
 * last error line.
 */
#ifndef VFIO_TEST_H
#define VFIO_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <viommu/common.h>

extern unsigned long vt_checks, vt_failures;
extern char vt_case[200];

#define CHECK(cond) vt_check_true(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(got, exp) vt_check_eq((uint64_t)(got), (uint64_t)(exp), __FILE__, __LINE__, #got, #exp)

int vt_check_true(int ok, const char *file, int line, const char *expr);
int vt_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge, const char *ee);
void vt_set_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vt_done(const char *name);

/* --- a fake sysfs tree -------------------------------------------------- */

struct vt_bar {
	uint64_t start, size, flags; /* resource file columns (flags: kernel IORESOURCE_* | BAR low bits) */
};

struct vt_pci_dev {
	const char *bdf;       /* "dddd:bb:dd.f" */
	uint16_t vendor, device, subsys_vendor, subsys_device;
	uint32_t class_code;   /* 0xCCSSPP */
	uint8_t revision;
	uint8_t header_type;   /* 0 endpoint, 1 bridge */
	int group;             /* -1: no iommu_group link */
	const char *driver;    /* NULL: none */
	int vfio_dev;          /* -1: no vfio-dev node */
	struct vt_bar bars[6];
	bool caps;             /* MSI at 0x40, MSI-X at 0x50, PCIe at 0x70; AER at 0x100, ACS at 0x140 */
};

/* Make an empty tree (bus/pci/devices, kernel/iommu_groups); returns its path
 * (static storage) or NULL. */
const char *vt_sysfs_create(void);
/* Add a device (dirs, attribute files, 4 KiB config, links). 0 or -1. */
int vt_sysfs_add(const char *root, const struct vt_pci_dev *d);
/* Its config space as vt_sysfs_add writes it. */
void vt_config_image(const struct vt_pci_dev *d, uint8_t cfg[4096]);
/* Remove a tree. */
void vt_sysfs_remove(const char *root);

/* --- logging -------------------------------------------------------------- */

struct vt_log {
	unsigned errors, lines;
	char last_error[1024];
	bool print;            /* echo to stderr (VIOMMU_TEST_VERBOSE) */
};
void vt_log_fn(void *ctx, enum viommu_log_level level, const char *msg);

#endif
