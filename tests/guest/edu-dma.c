/* SPDX-License-Identifier: MIT */
/*
 * edu-dma: drives the DMA engine and the interrupt of an edu device
 * (1234:11e8, QEMU docs/specs/edu.rst) from user space inside a Linux guest,
 * to prove a DMA path end to end. Built static, so it runs in the busybox
 * initramfs of scripts/guest-image.
 *
 *   edu-dma --vfio BDF|auto [--no-mmap]
 *       The guest has an IOMMU (intel_iommu=on, ...). The device is bound to
 *       vfio-pci (through driver_override and drivers_probe if it is not
 *       already) and driven through the VFIO container/group API (type1v2):
 *       buffers mapped at chosen IOVAs, data round trips through edu's
 *       buffer checked byte for byte, MSI through VFIO_DEVICE_SET_IRQS and an
 *       eventfd, DMA writes to read-only mappings and DMAs to an unmapped
 *       IOVA that must not reach memory. For each DMA the IOMMU should have
 *       blocked and reported it prints
 *           edu-dma: expect-fault read|write IOVA
 *       so the caller can look for the fault report (Linux logs
 *       "DMAR: [DMA Write NO_PASID] ... fault addr IOVA").
 *       --no-mmap reaches BAR0 with pread/pwrite on the device fd even when
 *       the region could be mmapped.
 *   edu-dma --direct BDF|auto
 *       No IOMMU in the guest: BAR0 through sysfs resource0, memory decoding
 *       and bus mastering set in config space, buffers locked in memory and
 *       their guest-physical addresses read from /proc/self/pagemap (needs
 *       root). Data round trips checked byte for byte.
 *
 * Every check prints "edu-dma: PASS: ..." or "edu-dma: FAIL: ...". Exit
 * status: 0 when every check passed, 1 when one failed or the setup did,
 * 2 on a usage error.
 *
 * QEMU's edu (7.2) has three traps this program keeps away from, since a
 * test program must not bring the VMM down:
 *  - a transfer must lie inside the 4 KiB buffer at 0x40000, else QEMU
 *    stops the VM (hw_error); the 7.2 check is off by one and refuses a
 *    transfer that ends at 0x41000, so transfers end strictly before it
 *    (4095 bytes at most);
 *  - DMA addresses are masked to 28 bits (dma_mask property): IOVAs and
 *    physical addresses stay below 256 MiB;
 *  - a DMA completes on a 100 ms timer of the virtual clock, and writes to
 *    the DMA registers while one runs are ignored: every DMA is waited for.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the edu device (QEMU docs/specs/edu.rst, hw/misc/edu.c) ------------- */
#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_BAR_SIZE (1u << 20)

#define EDU_REG_IDENT 0x00
#define EDU_REG_IRQ_STATUS 0x24
#define EDU_REG_IRQ_ACK 0x64
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98

#define EDU_IDENT_MAGIC 0xedu /* low byte of the identification register */
#define EDU_DMA_RUN 0x1u
#define EDU_DMA_TO_RAM 0x2u /* direction: 0 = RAM to device, 1 = device to RAM */
#define EDU_DMA_IRQ 0x4u    /* raise the DMA interrupt when done */
#define EDU_IRQ_DMA 0x100u  /* interrupt status bit of a finished DMA */

/* The device's buffer, in its DMA address space (not a BAR offset). */
#define EDU_BUF 0x40000u
#define EDU_BUF_SIZE 4096u
/* QEMU 7.2 wants the end of a transfer strictly inside the buffer. */
#define EDU_XFER_MAX (EDU_BUF_SIZE - 1)
/* QEMU's edu masks DMA addresses with its dma_mask property, 28 bits. */
#define EDU_DMA_LIMIT (1ull << 28)

/* PCI config space (PCI Local Bus 3.0, 6.2.2) */
#define PCI_CFG_COMMAND 0x04
#define PCI_CMD_MEMORY 0x0002u
#define PCI_CMD_MASTER 0x0004u

/* /proc/self/pagemap entry (Documentation/admin-guide/mm/pagemap.rst) */
#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)

/* IOVAs of the VFIO mode: page aligned, below EDU_DMA_LIMIT, and below the
 * x86 MSI window; the program checks them against the IOMMU's ranges. */
#define IOVA_SRC 0x100000ull  /* 2 pages, mapped read-only for the device */
#define IOVA_DST 0x200000ull  /* 2 pages, read-write */
#define IOVA_GONE 0x300000ull /* 1 page, mapped, then unmapped before use */
#define IOVA_RO 0x400000ull   /* 1 page, read-only, never used before the write */

#define DMA_TIMEOUT_MS 10000
#define IRQ_TIMEOUT_MS 10000

#define FILL_DST 0x5au
#define FILL_GONE 0xc3u

static unsigned int n_pass, n_fail;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("edu-dma: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
}

/* check(ok, fmt, ...): one PASS or FAIL line; returns ok. */
static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs(ok ? "edu-dma: PASS: " : "edu-dma: FAIL: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	if (ok)
		n_pass++;
	else
		n_fail++;
	return ok;
}

/* A setup step failed: counts as a failed check; the caller cleans up. */
static int fail_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_errno(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("edu-dma: FAIL: ", stdout);
	vprintf(fmt, ap);
	if (err)
		printf(": %s", strerror(err));
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	n_fail++;
	return err ? -err : -EIO;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- small file helpers -------------------------------------------------- */
static int read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

static int read_hex(const char *path, unsigned long *val)
{
	char buf[64], *end;
	int rc = read_text(path, buf, sizeof(buf));

	if (rc < 0)
		return rc;
	errno = 0;
	*val = strtoul(buf, &end, 16);
	if (errno || end == buf || *end)
		return -EINVAL;
	return 0;
}

/* The name of the driver bound to the device ("" when none). */
static int bound_driver(const char *bdf, char *name, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *base;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		if (errno == ENOENT) {
			name[0] = '\0';
			return 0;
		}
		return -errno;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	memcpy(name, base, strlen(base) + 1);
	return 0;
}

static bool is_edu(const char *bdf)
{
	char path[PATH_MAX];
	unsigned long vendor, device;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", bdf);
	if (read_hex(path, &vendor) < 0)
		return false;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", bdf);
	if (read_hex(path, &device) < 0)
		return false;
	return vendor == EDU_VENDOR && device == EDU_DEVICE;
}

/*
 * Resolve the BDF argument: "auto" is the first edu device in sysfs; a short
 * "BB:DD.F" gets the 0000 domain. The device must be an edu.
 */
static int resolve_bdf(const char *arg, char *bdf, size_t len)
{
	if (strcmp(arg, "auto") == 0) {
		DIR *d = opendir("/sys/bus/pci/devices");
		struct dirent *de;
		int found = 0;

		if (!d)
			return fail_errno(errno, "opening /sys/bus/pci/devices");
		while (!found && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' || strlen(de->d_name) >= len)
				continue;
			memcpy(bdf, de->d_name, strlen(de->d_name) + 1);
			found = is_edu(bdf);
		}
		closedir(d);
		if (!found)
			return fail_errno(0, "no edu device (1234:11e8) in /sys/bus/pci/devices");
		return 0;
	}
	if (strlen(arg) == 7)
		snprintf(bdf, len, "0000:%s", arg);
	else
		snprintf(bdf, len, "%s", arg);
	if (!is_edu(bdf))
		return fail_errno(0, "%s is not an edu device (1234:11e8) in /sys/bus/pci/devices", bdf);
	return 0;
}

/* ---- register access: an mmapped BAR, or pread/pwrite on a file ---------- */
struct edu {
	volatile uint32_t *bar; /* BAR0 mapped, or NULL */
	int io_fd;              /* with bar == NULL: BAR0 at io_off in this file */
	off_t io_off;
};

static int reg_read(const struct edu *e, uint32_t off, uint32_t *val)
{
	if (e->bar) {
		*val = e->bar[off / 4];
		return 0;
	}
	/* One 4-byte access: edu ignores other sizes below 0x80. */
	if (pread(e->io_fd, val, 4, e->io_off + off) != 4)
		return fail_errno(errno, "BAR0 read at 0x%02x", off);
	return 0;
}

static int reg_write(const struct edu *e, uint32_t off, uint32_t val)
{
	if (e->bar) {
		e->bar[off / 4] = val;
		return 0;
	}
	if (pwrite(e->io_fd, &val, 4, e->io_off + off) != 4)
		return fail_errno(errno, "BAR0 write at 0x%02x", off);
	return 0;
}

static int wait_dma_idle(const struct edu *e)
{
	uint64_t deadline = now_ms() + DMA_TIMEOUT_MS;
	uint32_t cmd;

	for (;;) {
		if (reg_read(e, EDU_REG_DMA_CMD, &cmd) < 0)
			return -EIO;
		if (!(cmd & EDU_DMA_RUN))
			return 0;
		if (now_ms() >= deadline)
			return fail_errno(ETIMEDOUT, "the DMA command register still has its run bit after %d ms (0x%x)",
					  DMA_TIMEOUT_MS, cmd);
		sleep_ms(2);
	}
}

/*
 * One DMA: RAM (dma_addr) to the device's buffer (edu_addr), or back with
 * to_ram. Waits until it is done. Refuses, before touching the device,
 * what would make QEMU's edu stop the VM or clamp the address.
 */
static int edu_dma(const struct edu *e, bool to_ram, uint64_t dma_addr, uint32_t edu_addr, uint32_t len,
		   bool irq)
{
	uint32_t cmd = EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0) | (irq ? EDU_DMA_IRQ : 0);
	int rc;

	if (len == 0 || edu_addr < EDU_BUF || edu_addr - EDU_BUF >= EDU_XFER_MAX ||
	    len > EDU_XFER_MAX - (edu_addr - EDU_BUF))
		return fail_errno(EINVAL, "internal: DMA of %u bytes at device address 0x%x is outside 0x%x + %u",
				  len, edu_addr, EDU_BUF, EDU_XFER_MAX);
	if (dma_addr >= EDU_DMA_LIMIT || len > EDU_DMA_LIMIT - dma_addr)
		return fail_errno(ERANGE, "DMA address 0x%" PRIx64 " + %u is above edu's 28-bit DMA mask", dma_addr,
				  len);
	rc = wait_dma_idle(e);
	if (rc < 0)
		return rc;
	if (reg_write(e, EDU_REG_DMA_SRC, to_ram ? edu_addr : (uint32_t)dma_addr) < 0 ||
	    reg_write(e, EDU_REG_DMA_DST, to_ram ? (uint32_t)dma_addr : edu_addr) < 0 ||
	    reg_write(e, EDU_REG_DMA_CNT, len) < 0 || reg_write(e, EDU_REG_DMA_CMD, cmd) < 0)
		return -EIO;
	return wait_dma_idle(e);
}

static int check_ident(const struct edu *e)
{
	uint32_t id;

	if (reg_read(e, EDU_REG_IDENT, &id) < 0)
		return -EIO;
	if (!check((id & 0xff) == EDU_IDENT_MAGIC, "identification register 0x%08x (low byte 0x%02x wanted)", id,
		   EDU_IDENT_MAGIC))
		return -ENODEV;
	return 0;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed | 1u;

	for (size_t i = 0; i < len; i++) {
		/* xorshift32: cheap, and no byte value repeats in step with a page */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

/* The first index in [from, to) where p[i] != val, or -1. */
static long first_not(const uint8_t *p, size_t from, size_t to, uint8_t val)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != val)
			return (long)i;
	return -1;
}

/*
 * dst[off, off + len) must equal src[0, len) and every other byte of dst
 * (dst_len in all) must still be `fill`.
 */
static bool check_copy(const char *what, const uint8_t *dst, size_t dst_len, size_t off, const uint8_t *src,
		       size_t len, uint8_t fill)
{
	long bad;

	for (size_t i = 0; i < len; i++)
		if (dst[off + i] != src[i])
			return check(false, "%s: byte %zu is 0x%02x, sent 0x%02x", what, i, dst[off + i], src[i]);
	bad = first_not(dst, 0, off, fill);
	if (bad < 0)
		bad = first_not(dst, off + len, dst_len, fill);
	if (bad >= 0)
		return check(false, "%s: byte %ld of the destination, outside the transfer, changed to 0x%02x", what,
			     bad, dst[bad]);
	return check(true, "%s: %zu bytes arrived intact, nothing around them changed", what, len);
}

static void *alloc_pages(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* ---- --direct: no IOMMU -------------------------------------------------- */
struct phys_buf {
	uint8_t *va;
	uint64_t pa;
};

static int virt_to_phys(int pagemap, const void *va, uint64_t *pa)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t ent;
	uintptr_t v = (uintptr_t)va;

	if (pread(pagemap, &ent, sizeof(ent), (off_t)(v / (uintptr_t)page * sizeof(ent))) != sizeof(ent))
		return fail_errno(errno, "reading /proc/self/pagemap");
	if (!(ent & PAGEMAP_PRESENT))
		return fail_errno(0, "page at %p is not present in /proc/self/pagemap", va);
	if ((ent & PAGEMAP_PFN_MASK) == 0)
		return fail_errno(0, "/proc/self/pagemap hides the frame number (run as root, CAP_SYS_ADMIN)");
	*pa = (ent & PAGEMAP_PFN_MASK) * (uint64_t)page + (v % (uintptr_t)page);
	return 0;
}

static int phys_buf_get(int pagemap, struct phys_buf *b, const char *name)
{
	long page = sysconf(_SC_PAGESIZE);

	b->va = alloc_pages((size_t)page);
	if (!b->va)
		return fail_errno(errno, "allocating the %s page", name);
	/* Locked, so the frame stays this one while the device uses it. */
	if (mlock(b->va, (size_t)page) < 0)
		return fail_errno(errno, "mlock of the %s page", name);
	memset(b->va, 0, (size_t)page);
	if (virt_to_phys(pagemap, b->va, &b->pa) < 0)
		return -EIO;
	if (b->pa + (uint64_t)page > EDU_DMA_LIMIT)
		return fail_errno(0, "the %s page is at guest-physical 0x%" PRIx64
				     ", above edu's 28-bit DMA mask (give the guest less than 256 MiB)",
				  name, b->pa);
	say("%s page: virtual %p, guest-physical 0x%" PRIx64, name, (void *)b->va, b->pa);
	return 0;
}

static int cfg_command_set(int fd, off_t base, uint16_t bits, const char *what)
{
	uint16_t cmd, got;

	if (pread(fd, &cmd, 2, base + PCI_CFG_COMMAND) != 2)
		return fail_errno(errno, "reading the command register through %s", what);
	cmd |= bits;
	if (pwrite(fd, &cmd, 2, base + PCI_CFG_COMMAND) != 2)
		return fail_errno(errno, "writing the command register through %s", what);
	if (pread(fd, &got, 2, base + PCI_CFG_COMMAND) != 2)
		return fail_errno(errno, "re-reading the command register through %s", what);
	if (!check((got & bits) == bits, "command register 0x%04x through %s: memory decoding and bus mastering on",
		   got, what))
		return -EIO;
	return 0;
}

static int run_direct(const char *bdf)
{
	long page = sysconf(_SC_PAGESIZE);
	char path[PATH_MAX], drv[256], what[160];
	struct edu e = { .io_fd = -1 };
	struct phys_buf src = { 0 }, dst = { 0 };
	int cfg = -1, res = -1, pagemap = -1, rc = -EIO;
	void *bar = MAP_FAILED;
	struct stat st;
	uint64_t pa;

	rc = bound_driver(bdf, drv, sizeof(drv));
	if (rc < 0) {
		fail_errno(-rc, "reading the driver of %s", bdf);
		rc = -EIO;
		goto out;
	}
	rc = -EIO;
	if (drv[0]) {
		fail_errno(0, "%s is bound to driver '%s': unbind it for --direct", bdf, drv);
		goto out;
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	cfg = open(path, O_RDWR | O_CLOEXEC);
	if (cfg < 0) {
		fail_errno(errno, "opening %s", path);
		goto out;
	}
	if (cfg_command_set(cfg, 0, PCI_CMD_MEMORY | PCI_CMD_MASTER, "sysfs config") < 0)
		goto out;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	res = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (res < 0 || fstat(res, &st) < 0) {
		fail_errno(errno, "opening %s", path);
		goto out;
	}
	if (st.st_size != EDU_BAR_SIZE) {
		fail_errno(0, "%s is %lld bytes, edu's BAR0 is %u", path, (long long)st.st_size, EDU_BAR_SIZE);
		goto out;
	}
	bar = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, res, 0);
	if (bar == MAP_FAILED) {
		fail_errno(errno, "mmap of %s", path);
		goto out;
	}
	e.bar = bar;
	say("BAR0 mapped from %s", path);
	if (check_ident(&e) < 0)
		goto out;

	pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap < 0) {
		fail_errno(errno, "opening /proc/self/pagemap");
		goto out;
	}
	if (phys_buf_get(pagemap, &src, "source") < 0 || phys_buf_get(pagemap, &dst, "destination") < 0)
		goto out;

	/* A page is physically contiguous; a pair of pages need not be, so
	 * no transfer crosses a page here. */
	fill_pattern(src.va, (size_t)page, 0x1234abcd);
	memset(dst.va, FILL_DST, (size_t)page);
	if (edu_dma(&e, false, src.pa, EDU_BUF, EDU_XFER_MAX, false) < 0 ||
	    edu_dma(&e, true, dst.pa, EDU_BUF, EDU_XFER_MAX, false) < 0)
		goto out;
	snprintf(what, sizeof(what), "round trip of 4095 bytes (RAM 0x%" PRIx64 " -> edu 0x40000 -> RAM 0x%" PRIx64 ")",
		 src.pa, dst.pa);
	check_copy(what, dst.va, (size_t)page, 0, src.va, EDU_XFER_MAX, FILL_DST);

	memset(dst.va, FILL_DST, (size_t)page);
	if (edu_dma(&e, false, src.pa + 0x123, EDU_BUF + 0x201, 301, false) < 0 ||
	    edu_dma(&e, true, dst.pa + 0xa07, EDU_BUF + 0x201, 301, false) < 0)
		goto out;
	snprintf(what, sizeof(what),
		 "unaligned round trip of 301 bytes (RAM 0x%" PRIx64 " -> edu 0x40201 -> RAM 0x%" PRIx64 ")",
		 src.pa + 0x123, dst.pa + 0xa07);
	check_copy(what, dst.va, (size_t)page, 0xa07, src.va + 0x123, 301, FILL_DST);

	/* The frames must not have moved under the device. */
	if (virt_to_phys(pagemap, src.va, &pa) == 0)
		check(pa == src.pa, "source page still at 0x%" PRIx64 " (now 0x%" PRIx64 ")", src.pa, pa);
	if (virt_to_phys(pagemap, dst.va, &pa) == 0)
		check(pa == dst.pa, "destination page still at 0x%" PRIx64 " (now 0x%" PRIx64 ")", dst.pa, pa);
	rc = 0;
out:
	if (src.va)
		munmap(src.va, (size_t)page);
	if (dst.va)
		munmap(dst.va, (size_t)page);
	if (bar != MAP_FAILED)
		munmap(bar, EDU_BAR_SIZE);
	if (pagemap >= 0)
		close(pagemap);
	if (res >= 0)
		close(res);
	if (cfg >= 0)
		close(cfg);
	return rc;
}

/* ---- --vfio: through the guest's IOMMU ----------------------------------- */
struct dma_map {
	const char *name;
	uint8_t *va;
	uint64_t iova;
	uint64_t size;
	uint32_t flags;
	bool mapped;
};

struct vfio {
	int container, group, device, efd;
	bool irq_on;
	void *bar_map;
	size_t bar_map_len;
	struct vfio_region_info bar, cfg;
};

static int bind_vfio_pci(const char *bdf)
{
	char path[PATH_MAX], drv[256];
	int rc;

	rc = bound_driver(bdf, drv, sizeof(drv));
	if (rc < 0)
		return fail_errno(-rc, "reading the driver of %s", bdf);
	if (strcmp(drv, "vfio-pci") == 0) {
		say("%s is bound to vfio-pci already", bdf);
		return 0;
	}
	if (access("/sys/bus/pci/drivers/vfio-pci", F_OK) < 0)
		return fail_errno(0, "no vfio-pci driver in /sys/bus/pci/drivers (modprobe vfio-pci)");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	rc = write_text(path, "vfio-pci");
	if (rc < 0)
		return fail_errno(-rc, "writing vfio-pci to %s", path);
	if (drv[0]) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
		rc = write_text(path, bdf);
		if (rc < 0)
			return fail_errno(-rc, "unbinding %s from %s", bdf, drv);
	}
	rc = write_text("/sys/bus/pci/drivers_probe", bdf);
	if (rc < 0)
		return fail_errno(-rc, "writing %s to /sys/bus/pci/drivers_probe", bdf);
	rc = bound_driver(bdf, drv, sizeof(drv));
	if (!check(rc == 0 && strcmp(drv, "vfio-pci") == 0, "%s bound to vfio-pci (driver now '%s')", bdf, drv))
		return -ENODEV;
	return 0;
}

static int iommu_group_of(const char *bdf, int *group)
{
	char path[PATH_MAX], target[PATH_MAX], *base, *end;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return fail_errno(errno, "%s has no IOMMU group (is the guest's IOMMU on? intel_iommu=on)", bdf);
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	errno = 0;
	*group = (int)strtol(base, &end, 10);
	if (errno || end == base || *end)
		return fail_errno(0, "cannot parse the IOMMU group '%s'", target);
	return 0;
}

/* The chosen IOVAs must lie in the ranges the IOMMU reports usable. */
static int check_iova_ranges(int container, const struct dma_map *maps, size_t n_maps)
{
	struct vfio_iommu_type1_info probe = { .argsz = sizeof(probe) };
	struct vfio_iommu_type1_info *info = NULL;
	uint32_t off;
	int rc = 0;

	if (ioctl(container, VFIO_IOMMU_GET_INFO, &probe) < 0)
		return fail_errno(errno, "VFIO_IOMMU_GET_INFO");
	if (probe.flags & VFIO_IOMMU_INFO_PGSIZES)
		say("IOMMU page sizes 0x%" PRIx64, (uint64_t)probe.iova_pgsizes);
	if (!(probe.flags & VFIO_IOMMU_INFO_CAPS) || probe.argsz <= sizeof(probe)) {
		say("the IOMMU reports no IOVA ranges; assuming the chosen IOVAs are usable");
		return 0;
	}
	info = calloc(1, probe.argsz);
	if (!info)
		return fail_errno(ENOMEM, "VFIO_IOMMU_GET_INFO buffer");
	info->argsz = probe.argsz;
	if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0) {
		rc = fail_errno(errno, "VFIO_IOMMU_GET_INFO with capabilities");
		goto out;
	}
	/* The kernel packs capabilities at 4-byte offsets: copy them out
	 * rather than point at them (their struct wants 8-byte alignment). The
	 * chain must move forward, so a bad one cannot loop. */
	for (off = info->cap_offset; off; ) {
		const uint8_t *base = (const uint8_t *)info;
		struct vfio_iommu_type1_info_cap_iova_range r;
		struct vfio_info_cap_header hdr;

		if (off < sizeof(*info) || off > info->argsz - sizeof(hdr)) {
			rc = fail_errno(0, "VFIO_IOMMU_GET_INFO: capability offset %u outside %u bytes", off,
					info->argsz);
			goto out;
		}
		memcpy(&hdr, base + off, sizeof(hdr));
		if (hdr.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
			if (off > info->argsz - sizeof(r)) {
				rc = fail_errno(0, "VFIO_IOMMU_GET_INFO: the IOVA range capability overruns the buffer");
				goto out;
			}
			memcpy(&r, base + off, sizeof(r));
			if ((uint64_t)r.nr_iovas * sizeof(struct vfio_iova_range) > info->argsz - off - sizeof(r)) {
				rc = fail_errno(0, "VFIO_IOMMU_GET_INFO: %u IOVA ranges overrun the buffer", r.nr_iovas);
				goto out;
			}
			for (size_t m = 0; m < n_maps; m++) {
				bool inside = false;

				for (uint32_t i = 0; i < r.nr_iovas; i++) {
					struct vfio_iova_range range;

					memcpy(&range, base + off + sizeof(r) + i * sizeof(range), sizeof(range));
					if (maps[m].iova >= range.start && maps[m].iova + maps[m].size - 1 <= range.end)
						inside = true;
				}
				if (!inside) {
					rc = fail_errno(0, "IOVA 0x%" PRIx64 " (%s) is not in a usable IOVA range",
							maps[m].iova, maps[m].name);
					goto out;
				}
			}
			say("IOVAs 0x%" PRIx64 "..0x%" PRIx64 " are inside the IOMMU's %u usable ranges", maps[0].iova,
			    maps[n_maps - 1].iova + maps[n_maps - 1].size - 1, r.nr_iovas);
		}
		if (hdr.next && hdr.next <= off) {
			rc = fail_errno(0, "VFIO_IOMMU_GET_INFO: capability chain goes back from %u to %u", off,
					hdr.next);
			goto out;
		}
		off = hdr.next;
	}
out:
	free(info);
	return rc;
}

static int dma_map(int container, struct dma_map *m)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = m->flags,
		.vaddr = (uintptr_t)m->va,
		.iova = m->iova,
		.size = m->size,
	};

	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0)
		return fail_errno(errno, "VFIO_IOMMU_MAP_DMA of %s at IOVA 0x%" PRIx64, m->name, m->iova);
	m->mapped = true;
	say("mapped %s: IOVA 0x%" PRIx64 " + 0x%" PRIx64 " (%s)", m->name, m->iova, m->size,
	    (m->flags & VFIO_DMA_MAP_FLAG_WRITE) ? "read-write" : "read-only for the device");
	return 0;
}

static int dma_unmap(int container, struct dma_map *m)
{
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap),
		.iova = m->iova,
		.size = m->size,
	};

	if (!m->mapped)
		return 0;
	if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
		return fail_errno(errno, "VFIO_IOMMU_UNMAP_DMA of %s at IOVA 0x%" PRIx64, m->name, m->iova);
	m->mapped = false;
	if (!check(unmap.size == m->size, "unmapped %s: IOVA 0x%" PRIx64 ", 0x%llx of 0x%" PRIx64 " bytes", m->name,
		   m->iova, (unsigned long long)unmap.size, m->size))
		return -EIO;
	return 0;
}

static int region_info(int device, uint32_t index, struct vfio_region_info *ri, const char *name)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	if (ioctl(device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
		return fail_errno(errno, "VFIO_DEVICE_GET_REGION_INFO for %s", name);
	say("region %s: offset 0x%llx size 0x%llx flags 0x%x%s", name, (unsigned long long)ri->offset,
	    (unsigned long long)ri->size, ri->flags, (ri->flags & VFIO_REGION_INFO_FLAG_MMAP) ? " (mmap)" : "");
	return 0;
}

static int irq_set(struct vfio *v, bool on)
{
	uint8_t buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
	int32_t fd = v->efd;

	memset(buf, 0, sizeof(buf));
	set->argsz = on ? sizeof(buf) : sizeof(*set);
	set->flags = (on ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSI_IRQ_INDEX;
	set->start = 0;
	set->count = on ? 1 : 0;
	if (on)
		memcpy(set->data, &fd, sizeof(fd));
	if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, set) < 0)
		return fail_errno(errno, "VFIO_DEVICE_SET_IRQS (MSI %s)", on ? "on" : "off");
	v->irq_on = on;
	return 0;
}

/* Waits for the eventfd; *count is what it had counted (0 on timeout). */
static int wait_irq(const struct vfio *v, int timeout_ms, uint64_t *count)
{
	struct pollfd pfd = { .fd = v->efd, .events = POLLIN };
	int n;

	*count = 0;
	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return fail_errno(errno, "poll on the MSI eventfd");
	if (n == 0)
		return 0;
	if (read(v->efd, count, sizeof(*count)) != sizeof(*count))
		return fail_errno(errno, "reading the MSI eventfd");
	return 0;
}

/* A DMA that raises the interrupt: counted once, status 0x100, acked. */
static void irq_round(const struct vfio *v, const struct edu *e, int round)
{
	uint64_t t0, count;
	uint32_t status;

	if (edu_dma(e, false, IOVA_SRC, EDU_BUF + 0x800, 64, true) < 0)
		return;
	t0 = now_ms();
	if (wait_irq(v, IRQ_TIMEOUT_MS, &count) < 0)
		return;
	check(count == 1, "interrupt %d: the MSI eventfd counted %" PRIu64 " (1 wanted) after %" PRIu64 " ms", round,
	      count, now_ms() - t0);
	if (reg_read(e, EDU_REG_IRQ_STATUS, &status) < 0)
		return;
	check(status == EDU_IRQ_DMA, "interrupt %d: status register 0x%x (0x%x: DMA done)", round, status,
	      EDU_IRQ_DMA);
	if (reg_write(e, EDU_REG_IRQ_ACK, status) < 0 || reg_read(e, EDU_REG_IRQ_STATUS, &status) < 0)
		return;
	check(status == 0, "interrupt %d: acknowledged, status register now 0x%x", round, status);
}

static int run_vfio(const char *bdf, bool use_mmap)
{
	long page = sysconf(_SC_PAGESIZE);
	struct vfio v = { .container = -1, .group = -1, .device = -1, .efd = -1 };
	struct edu e = { .io_fd = -1 };
	struct dma_map maps[] = {
		{ .name = "source", .iova = IOVA_SRC, .size = 2 * (uint64_t)page, .flags = VFIO_DMA_MAP_FLAG_READ },
		{ .name = "destination",
		  .iova = IOVA_DST,
		  .size = 2 * (uint64_t)page,
		  .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE },
		{ .name = "victim",
		  .iova = IOVA_GONE,
		  .size = (uint64_t)page,
		  .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE },
		{ .name = "read-only page", .iova = IOVA_RO, .size = (uint64_t)page, .flags = VFIO_DMA_MAP_FLAG_READ },
	};
	struct dma_map *src = &maps[0], *dst = &maps[1], *gone = &maps[2], *ro = &maps[3];
	const size_t n_maps = sizeof(maps) / sizeof(maps[0]);
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_device_info di = { .argsz = sizeof(di) };
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSI_IRQ_INDEX };
	char path[PATH_MAX];
	uint64_t count;
	int group_no = -1, rc = -EIO;
	long bad;

	if (bind_vfio_pci(bdf) < 0 || iommu_group_of(bdf, &group_no) < 0)
		goto out;

	v.container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v.container < 0) {
		fail_errno(errno, "opening /dev/vfio/vfio");
		goto out;
	}
	if (ioctl(v.container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		fail_errno(0, "VFIO API version is not %d", VFIO_API_VERSION);
		goto out;
	}
	if (ioctl(v.container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		fail_errno(0, "the VFIO container does not offer the type1v2 IOMMU");
		goto out;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_no);
	v.group = open(path, O_RDWR | O_CLOEXEC);
	if (v.group < 0) {
		fail_errno(errno, "opening %s", path);
		goto out;
	}
	if (ioctl(v.group, VFIO_GROUP_GET_STATUS, &gs) < 0) {
		fail_errno(errno, "VFIO_GROUP_GET_STATUS");
		goto out;
	}
	if (!check(gs.flags & VFIO_GROUP_FLAGS_VIABLE, "IOMMU group %d is viable (every device in it on vfio-pci)",
		   group_no))
		goto out;
	if (ioctl(v.group, VFIO_GROUP_SET_CONTAINER, &v.container) < 0) {
		fail_errno(errno, "VFIO_GROUP_SET_CONTAINER");
		goto out;
	}
	if (ioctl(v.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		fail_errno(errno, "VFIO_SET_IOMMU type1v2");
		goto out;
	}
	if (check_iova_ranges(v.container, maps, n_maps) < 0)
		goto out;

	v.device = ioctl(v.group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v.device < 0) {
		fail_errno(errno, "VFIO_GROUP_GET_DEVICE_FD %s", bdf);
		goto out;
	}
	if (ioctl(v.device, VFIO_DEVICE_GET_INFO, &di) < 0) {
		fail_errno(errno, "VFIO_DEVICE_GET_INFO");
		goto out;
	}
	say("device %s: flags 0x%x, %u regions, %u interrupt indexes", bdf, di.flags, di.num_regions, di.num_irqs);
	if (!(di.flags & VFIO_DEVICE_FLAGS_PCI) || di.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX ||
	    di.num_irqs <= VFIO_PCI_MSI_IRQ_INDEX) {
		fail_errno(0, "the VFIO device is not a PCI device with BAR0, config space and MSI");
		goto out;
	}

	/* Bus mastering: vfio-pci enables memory decoding, not DMA. */
	if (region_info(v.device, VFIO_PCI_CONFIG_REGION_INDEX, &v.cfg, "config") < 0 ||
	    cfg_command_set(v.device, (off_t)v.cfg.offset, PCI_CMD_MEMORY | PCI_CMD_MASTER, "the VFIO config region") < 0)
		goto out;

	if (region_info(v.device, VFIO_PCI_BAR0_REGION_INDEX, &v.bar, "BAR0") < 0)
		goto out;
	if (v.bar.size != EDU_BAR_SIZE ||
	    (v.bar.flags & (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)) !=
		    (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)) {
		fail_errno(0, "BAR0 region: size 0x%llx flags 0x%x, want 0x%x bytes, readable and writable",
			   (unsigned long long)v.bar.size, v.bar.flags, EDU_BAR_SIZE);
		goto out;
	}
	if (use_mmap && (v.bar.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		v.bar_map = mmap(NULL, EDU_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v.device, (off_t)v.bar.offset);
		if (v.bar_map == MAP_FAILED) {
			v.bar_map = NULL;
			fail_errno(errno, "mmap of BAR0 through the VFIO device");
			goto out;
		}
		v.bar_map_len = EDU_BAR_SIZE;
		e.bar = v.bar_map;
		say("BAR0 reached through an mmap of the VFIO region");
	} else {
		e.io_fd = v.device;
		e.io_off = (off_t)v.bar.offset;
		say("BAR0 reached through pread/pwrite on the VFIO device (%s)",
		    use_mmap ? "the region cannot be mmapped" : "--no-mmap");
	}
	if (check_ident(&e) < 0)
		goto out;

	for (size_t m = 0; m < n_maps; m++) {
		maps[m].va = alloc_pages(maps[m].size);
		if (!maps[m].va) {
			fail_errno(errno, "allocating the %s buffer", maps[m].name);
			goto out;
		}
		if (dma_map(v.container, &maps[m]) < 0)
			goto out;
	}

	/* Round trip 1: a whole edu buffer, landing across a page boundary of
	 * the destination (two IOMMU pages, frames not contiguous). */
	fill_pattern(src->va, src->size, 0xc0ffee11);
	memset(dst->va, FILL_DST, dst->size);
	if (edu_dma(&e, false, IOVA_SRC, EDU_BUF, EDU_XFER_MAX, false) < 0 ||
	    edu_dma(&e, true, IOVA_DST + 0x800, EDU_BUF, EDU_XFER_MAX, false) < 0)
		goto out;
	check_copy("round trip of 4095 bytes (IOVA 0x100000 -> edu 0x40000 -> IOVA 0x200800, across a page)", dst->va,
		   dst->size, 0x800, src->va, EDU_XFER_MAX, FILL_DST);

	/* Round trip 2: odd length and offsets, reading across a page of the
	 * source. */
	memset(dst->va, FILL_DST, dst->size);
	if (edu_dma(&e, false, IOVA_SRC + 0xf80, EDU_BUF + 0x201, 301, false) < 0 ||
	    edu_dma(&e, true, IOVA_DST + 0x1a3, EDU_BUF + 0x201, 301, false) < 0)
		goto out;
	check_copy("unaligned round trip of 301 bytes (IOVA 0x100f80 -> edu 0x40201 -> IOVA 0x2001a3)", dst->va,
		   dst->size, 0x1a3, src->va + 0xf80, 301, FILL_DST);

	/* MSI through an eventfd. */
	if (ioctl(v.device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0) {
		fail_errno(errno, "VFIO_DEVICE_GET_IRQ_INFO (MSI)");
		goto out;
	}
	if (!check(ii.count >= 1 && (ii.flags & VFIO_IRQ_INFO_EVENTFD), "MSI: %u vector(s), flags 0x%x", ii.count,
		   ii.flags))
		goto out;
	v.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v.efd < 0) {
		fail_errno(errno, "eventfd");
		goto out;
	}
	if (irq_set(&v, true) < 0)
		goto out;
	irq_round(&v, &e, 1);
	irq_round(&v, &e, 2);

	/* DMA writes into mappings the device may only read. First a page the
	 * device never touched, so no IOTLB holds its translation: the walk
	 * finds the missing write permission and the IOMMU records a fault. */
	fill_pattern(ro->va, ro->size, 0x0badf00d);
	memcpy(dst->va, ro->va, ro->size); /* a copy to compare with */
	say("expect-fault write 0x%" PRIx64, (uint64_t)IOVA_RO);
	if (edu_dma(&e, true, IOVA_RO, EDU_BUF, 256, false) < 0)
		goto out;
	check(memcmp(dst->va, ro->va, ro->size) == 0,
	      "DMA write of 256 bytes to read-only IOVA 0x%" PRIx64 " blocked: the page is unchanged",
	      (uint64_t)IOVA_RO);
	/* Then the source, whose translation the reads above may have cached:
	 * the permission must hold for a cached translation too. No fault line
	 * is promised: QEMU 7.2's intel-iommu checks the permission of an IOTLB
	 * hit in its memory core, which drops the write without recording a
	 * fault (real VT-d hardware records one). */
	memcpy(dst->va, src->va, src->size);
	if (edu_dma(&e, true, IOVA_SRC, EDU_BUF, 256, false) < 0)
		goto out;
	check(memcmp(dst->va, src->va, src->size) == 0,
	      "DMA write of 256 bytes to read-only IOVA 0x%" PRIx64 ", read by the device before, blocked: "
	      "the buffer is unchanged",
	      (uint64_t)IOVA_SRC);

	/* An IOVA that was mapped and is not any more: the IOMMU must stop the
	 * DMA, or the bytes would land in the page that backed it. */
	memset(gone->va, FILL_GONE, gone->size);
	if (dma_unmap(v.container, gone) < 0)
		goto out;
	say("expect-fault write 0x%" PRIx64, (uint64_t)IOVA_GONE);
	if (edu_dma(&e, true, IOVA_GONE, EDU_BUF, EDU_XFER_MAX, false) < 0)
		goto out;
	bad = first_not(gone->va, 0, gone->size, FILL_GONE);
	if (bad < 0)
		check(true, "DMA write of 4095 bytes to unmapped IOVA 0x%" PRIx64 ": the data did not arrive "
			    "(the page that backed it is unchanged)",
		      (uint64_t)IOVA_GONE);
	else
		check(false, "DMA write of 4095 bytes to unmapped IOVA 0x%" PRIx64 ": the data arrived "
			     "(byte %ld of the page that backed it is now 0x%02x)",
		      (uint64_t)IOVA_GONE, bad, gone->va[bad]);
	say("DMA to unmapped IOVA 0x%" PRIx64 " done; the IOMMU should report it as a DMA Write fault",
	    (uint64_t)IOVA_GONE);

	/* And a read from it: the device must not see the page's bytes. */
	memset(gone->va, FILL_GONE, gone->size);
	memset(dst->va, FILL_DST, dst->size);
	say("expect-fault read 0x%" PRIx64, (uint64_t)IOVA_GONE);
	if (edu_dma(&e, false, IOVA_GONE, EDU_BUF + 0x400, 512, false) < 0 ||
	    edu_dma(&e, true, IOVA_DST, EDU_BUF + 0x400, 512, false) < 0)
		goto out;
	bad = first_not(dst->va, 0, 512, FILL_GONE);
	if (bad >= 0)
		check(true, "DMA read of 512 bytes from unmapped IOVA 0x%" PRIx64 ": the device did not get the "
			    "page's bytes (it passed on 0x%02x...)",
		      (uint64_t)IOVA_GONE, dst->va[0]);
	else
		check(false, "DMA read of 512 bytes from unmapped IOVA 0x%" PRIx64 ": the device read the page "
			     "that backed it (all 512 bytes are its 0x%02x)",
		      (uint64_t)IOVA_GONE, FILL_GONE);

	/* Only the DMAs that asked for it raised an interrupt. */
	if (wait_irq(&v, 0, &count) == 0)
		check(count == 0, "no stray interrupt from the DMAs without the interrupt bit (eventfd %" PRIu64 ")",
		      count);
	rc = 0;
out:
	if (v.irq_on)
		irq_set(&v, false);
	if (v.efd >= 0)
		close(v.efd);
	for (size_t m = 0; m < n_maps; m++) {
		if (v.container >= 0 && maps[m].mapped && dma_unmap(v.container, &maps[m]) < 0)
			rc = -EIO;
		if (maps[m].va)
			munmap(maps[m].va, maps[m].size);
	}
	if (v.bar_map)
		munmap(v.bar_map, v.bar_map_len);
	if (v.device >= 0)
		close(v.device);
	if (v.group >= 0) {
		if (v.container >= 0)
			ioctl(v.group, VFIO_GROUP_UNSET_CONTAINER);
		close(v.group);
	}
	if (v.container >= 0)
		close(v.container);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: edu-dma --vfio BDF|auto [--no-mmap]\n"
		   "       edu-dma --direct BDF|auto\n"
		   "Drives an edu device's (1234:11e8) DMA and interrupt and checks the data;\n"
		   "BDF is 0000:BB:DD.F or BB:DD.F, auto the first edu device.\n");
}

int main(int argc, char **argv)
{
	const char *mode = NULL, *arg = NULL;
	bool use_mmap = true;
	char bdf[32];
	int rc;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "--vfio") == 0 || strcmp(argv[i], "--direct") == 0) && i + 1 < argc && !mode) {
			mode = argv[i];
			arg = argv[++i];
		} else if (strcmp(argv[i], "--no-mmap") == 0) {
			use_mmap = false;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!mode) {
		usage(stderr);
		return 2;
	}
	if (resolve_bdf(arg, bdf, sizeof(bdf)) < 0)
		return 1;
	say("%s mode on %s", mode + 2, bdf);
	if (strcmp(mode, "--vfio") == 0)
		rc = run_vfio(bdf, use_mmap);
	else
		rc = run_direct(bdf);
	if (rc == 0 && n_fail == 0)
		say("all %u checks passed", n_pass);
	else
		say("%u checks passed, %u failed", n_pass, n_fail);
	return n_fail == 0 && rc == 0 ? 0 : 1;
}
