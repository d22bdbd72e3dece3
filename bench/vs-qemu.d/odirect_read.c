/* viommu-bench-odirect: sequential O_DIRECT reads of a block device (or a
 * file), timed with CLOCK_MONOTONIC.
 *
 *   viommu-bench-odirect [--label NAME] [--scatter] PATH BLOCK_SIZE COUNT
 *
 * Reads COUNT blocks of BLOCK_SIZE bytes from offset 0, one pread() per block,
 * into a buffer with O_DIRECT, so that every block is a request to the
 * device (no page cache in between) and every request's DMA goes through the
 * guest's IOMMU mappings. Prints one line of key=value pairs:
 *
 *   bench label=NAME bs=4096 count=2048 bytes=8388608 seconds=1.234567 mbps=6.80 runs=1
 *
 * The buffer's physical layout decides how many DMA segments a read is, and
 * with an IOMMU how many mappings and (strict) invalidations: a 1 MiB read
 * into scattered pages is 256 of each, into contiguous memory 16 (the block
 * layer's 64 KiB segment limit). So that runs compare, the buffer is a 2 MiB
 * huge page (reserved ones first, else transparent), and runs= says how many
 * physically contiguous pieces it came out as (from /proc/self/pagemap; "na"
 * where the page frames are not readable, i.e. without CAP_SYS_ADMIN).
 * --scatter asks for the opposite case, as deterministic: 4 KiB pages of a
 * memory file mapped in reverse order, so that no two neighbours are
 * physically adjacent and every page is a segment of its own.
 *
 * (mbps is decimal megabytes per second, as dd reports it; "na" when the
 * clock did not advance). bench/vs-qemu times the reads on L1's clock instead
 * (a nested guest's clock can stall), and keeps this one for comparison. BLOCK_SIZE takes a
 * k/K or m/M suffix and must be a multiple of 512. Exit status: 0 when every
 * block was read in full, 1 on an I/O error or a short read (the device is
 * smaller than BLOCK_SIZE * COUNT), 2 on bad arguments.
 *
 * Built statically on the host (bench/CMakeLists.txt) and put into the
 * benchmark guest's initramfs by bench/vs-qemu: busybox's dd has neither
 * iflag=direct nor a speed report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* O_DIRECT needs buffer, offset and length aligned to the logical block
 * size; a page covers every block size Linux supports. */
#define ODR_ALIGN 4096u
#define ODR_HUGE (2u << 20) /* a transparent huge page */
#define ODR_MAX_BS (64u << 20)
#define ODR_MAX_COUNT 100000000ull

/* The number of physically contiguous pieces of buf[0, len), or -1 when
 * the page frame numbers cannot be read. */
static long phys_runs(const void *buf, size_t len)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	long runs = 0;
	uint64_t prev = 0;
	for (size_t off = 0; off < len; off += ODR_ALIGN) {
		uint64_t e;
		off_t at = (off_t)(((uintptr_t)buf + off) / ODR_ALIGN * sizeof(e));
		if (pread(fd, &e, sizeof(e), at) != (ssize_t)sizeof(e)) {
			runs = -1;
			break;
		}
		uint64_t pfn = e & ((1ull << 55) - 1);
		if (!(e >> 63) || pfn == 0) { /* not present, or frames hidden */
			runs = -1;
			break;
		}
		if (off == 0 || pfn != prev + 1)
			runs++;
		prev = pfn;
	}
	close(fd);
	return runs;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: viommu-bench-odirect [--label NAME] [--scatter] PATH BLOCK_SIZE COUNT\n"
		   "  BLOCK_SIZE: bytes, with an optional k/K or m/M suffix; a multiple of 512\n");
}

/* parse_size: "4k" -> 4096. 0 on success, -EINVAL otherwise. */
static int parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	uint64_t mul = 1;
	if (*end == 'k' || *end == 'K') {
		mul = 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		mul = 1024 * 1024;
		end++;
	}
	if (*end != '\0')
		return -EINVAL;
	uint64_t r;
	if (__builtin_mul_overflow((uint64_t)v, mul, &r) || r == 0 || r > max)
		return -EINVAL;
	*out = r;
	return 0;
}

/* A buffer of len bytes (a multiple of 4 KiB) whose pages are those of a
 * memory file in reverse order; NULL on failure. */
static void *scattered_buffer(size_t len)
{
	int fd = memfd_create("odirect", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	void *buf = MAP_FAILED;
	if (ftruncate(fd, (off_t)len) == 0)
		buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (buf != MAP_FAILED) {
		/* Allocate the file's pages in file order first. */
		memset(buf, 0, len);
		size_t pages = len / ODR_ALIGN;
		for (size_t i = 0; i < pages; i++) {
			void *at = (char *)buf + i * ODR_ALIGN;
			off_t file_off = (off_t)((pages - 1 - i) * ODR_ALIGN);
			if (mmap(at, ODR_ALIGN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, file_off) == MAP_FAILED) {
				munmap(buf, len);
				buf = MAP_FAILED;
				break;
			}
		}
	}
	close(fd);
	return buf == MAP_FAILED ? NULL : buf;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *label = "read";
	int i = 1;
	if (i < argc && (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	int scatter = 0;
	for (;;) {
		if (i + 1 < argc && strcmp(argv[i], "--label") == 0) {
			label = argv[i + 1];
			i += 2;
		} else if (i < argc && strcmp(argv[i], "--scatter") == 0) {
			scatter = 1;
			i++;
		} else {
			break;
		}
	}
	if (argc - i != 3) {
		usage(stderr);
		return 2;
	}
	const char *path = argv[i];
	uint64_t bs, count;
	if (parse_size(argv[i + 1], ODR_MAX_BS, &bs) != 0 || bs % 512 != 0) {
		fprintf(stderr, "viommu-bench-odirect: bad block size '%s' (a multiple of 512, at most %u MiB)\n",
			argv[i + 1], ODR_MAX_BS >> 20);
		return 2;
	}
	if (parse_size(argv[i + 2], ODR_MAX_COUNT, &count) != 0 || strpbrk(argv[i + 2], "kKmM")) {
		fprintf(stderr, "viommu-bench-odirect: bad count '%s' (1 to %llu)\n", argv[i + 2],
			(unsigned long long)ODR_MAX_COUNT);
		return 2;
	}

	int fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "viommu-bench-odirect: open %s with O_DIRECT: %s\n", path, strerror(errno));
		return 1;
	}
	/* A reserved huge page where the system has them (the benchmark guest
	 * reserves a few), else a transparent one if the kernel gives it: the
	 * reads work either way, and runs= tells. */
	size_t alloc = ((size_t)bs + ODR_HUGE - 1) / ODR_HUGE * ODR_HUGE;
	int mapped = 1;
	void *buf = MAP_FAILED;
	if (scatter) {
		alloc = ((size_t)bs + ODR_ALIGN - 1) / ODR_ALIGN * ODR_ALIGN;
		buf = scattered_buffer(alloc);
		if (!buf) {
			fprintf(stderr, "viommu-bench-odirect: cannot map a scattered buffer: %s\n", strerror(errno));
			close(fd);
			return 1;
		}
	} else {
		buf = mmap(NULL, alloc, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	}
	if (buf == MAP_FAILED) {
		mapped = 0;
		int rc = posix_memalign(&buf, ODR_HUGE, alloc);
		if (rc != 0) {
			fprintf(stderr, "viommu-bench-odirect: cannot allocate %" PRIu64 " bytes: %s\n", bs, strerror(rc));
			close(fd);
			return 1;
		}
		(void)madvise(buf, alloc, MADV_HUGEPAGE);
	}
	/* Touch the buffer first so that page faults on it are not timed. */
	memset(buf, 0, alloc);
	long runs = phys_runs(buf, (size_t)bs);
	char runs_s[24] = "na";
	if (runs > 0)
		snprintf(runs_s, sizeof(runs_s), "%ld", runs);

	uint64_t done = 0;
	int status = 0;
	double t0 = mono_now();
	for (uint64_t n = 0; n < count; n++) {
		uint64_t off = n * bs;
		size_t got = 0;
		while (got < bs) {
			ssize_t r = pread(fd, (char *)buf + got, (size_t)bs - got, (off_t)(off + got));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				fprintf(stderr, "viommu-bench-odirect: read %s at %" PRIu64 ": %s\n", path, off + got,
					strerror(errno));
				status = 1;
				goto out;
			}
			if (r == 0) {
				fprintf(stderr,
					"viommu-bench-odirect: %s ends at %" PRIu64 " bytes, before %" PRIu64
					" blocks of %" PRIu64 "\n",
					path, off + got, count, bs);
				status = 1;
				goto out;
			}
			got += (size_t)r;
		}
		done += bs;
	}
out:;
	double secs = mono_now() - t0;
	if (mapped)
		munmap(buf, alloc);
	else
		free(buf);
	close(fd);
	if (status != 0)
		return status;
	/* The reads succeeded whatever the clock says. A clock that did not
	 * move (a nested guest's kvmclock can stall) gives no speed, rather
	 * than infinity: mbps=na. */
	if (secs <= 0) {
		fprintf(stderr, "viommu-bench-odirect: the clock did not advance over the reads\n");
		printf("bench label=%s bs=%" PRIu64 " count=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f mbps=na runs=%s\n",
		       label, bs, count, done, secs, runs_s);
		return 0;
	}
	printf("bench label=%s bs=%" PRIu64 " count=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f mbps=%.2f runs=%s\n", label,
	       bs, count, done, secs, (double)done / secs / 1e6, runs_s);
	return 0;
}
