/* SPDX-License-Identifier: MIT */
/*
 * dma-stress: a disk's data through the guest's DMA path under pressure,
 * checked word by word, while other processes churn memory and page tables
 * and check their own. Built static, so it runs in the busybox initramfs of
 * scripts/guest-image; the same binary writes the disk image on the host.
 *
 *   dma-stress --make-disk FILE MIB
 *       Write the disk: every 8-byte word at byte offset o of its first
 *       three quarters holds DISK_TAG | o (read-only part); the last quarter
 *       is scratch, zeroed.
 *   dma-stress DEVICE SECONDS [READERS WRITERS CHURNERS]
 *       For SECONDS, with O_DIRECT (so every byte is a DMA of the device):
 *       - readers read the read-only part at random 4 KiB-aligned offsets,
 *         4 KiB to 1 MiB, into freshly mapped buffers (one, or a scatter
 *         list of up to 8), and check every word;
 *       - writers each own a slice of the scratch part: they write a random
 *         range with a pattern of their own, read it back into another fresh
 *         buffer and check it;
 *       - churners fork children that map, fill and check memory with a
 *         pattern of their own and exit (pages and page tables freed and
 *         reused all the time).
 *       A strict IOMMU unmaps each buffer as its request completes and the
 *       allocator hands the page straight to someone else; a translation used
 *       after its invalidation puts disk data into a stranger's page (a
 *       churner sees a DISK_TAG word), leaves the reader's buffer unfilled,
 *       or writes a stranger's bytes to the disk.
 *
 * A wrong word is printed with what it looks like (disk data from offset X,
 * a writer's or a churner's pattern, zero). At the end it also says how many
 * of the I/O buffers' pages lay above 4 GiB of guest-physical memory (read
 * from /proc/self/pagemap, which shows frames to root), so a run in a guest
 * with memory up there shows that its DMA went there too. Exit status: 0 when every check
 * passed, 1 when one failed or an I/O error happened, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DISK_TAG 0xd15c000000000000ull
#define WRITE_TAG 0x3717000000000000ull
#define CHURN_TAG 0xc4a2000000000000ull
#define TAG_MASK 0xffff000000000000ull
#define PAGE 4096u
#define MAX_IO (1u << 20)
#define MAX_SEGS 8

struct counters {
	uint64_t reads, read_bytes, writes, write_bytes, churns, churn_bytes;
	uint64_t pages, pages_high; /* I/O buffer pages whose frame was seen, and those above 4 GiB */
};

static struct counters *ctr; /* shared between the processes */
static int pagemap = -1;     /* this process's /proc/self/pagemap, or -1 */
static volatile sig_atomic_t stop;

static void on_alarm(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void describe(char *out, size_t n, uint64_t w)
{
	switch (w & TAG_MASK) {
	case DISK_TAG:
		snprintf(out, n, "disk data from offset %#" PRIx64, (uint64_t)(w & ~TAG_MASK));
		break;
	case WRITE_TAG:
		snprintf(out, n, "a writer's pattern (writer %u)", (unsigned)(w >> 44) & 0xf);
		break;
	case CHURN_TAG:
		snprintf(out, n, "a churner's pattern");
		break;
	default:
		snprintf(out, n, w ? "unknown" : "zero (never written)");
	}
}

/* Check that word i of p is first_want + 8 * i (every pattern here counts
 * in bytes); print up to 4 wrong words, `where` being p's offset in what
 * they came from. Returns the wrong words. */
static uint64_t check_words(const char *who, const uint64_t *p, uint64_t nwords, uint64_t first_want,
			    uint64_t where)
{
	uint64_t bad = 0;
	for (uint64_t i = 0; i < nwords; i++) {
		uint64_t want = first_want + 8 * i;
		if (p[i] == want)
			continue;
		if (bad++ < 4) {
			char d[96];
			describe(d, sizeof(d), p[i]);
			printf("dma-stress: FAIL: %s: word at %#" PRIx64 ": 0x%016" PRIx64 ", expected 0x%016" PRIx64
			       " (it is %s)\n",
			       who, where + 8 * i, p[i], want, d);
		}
	}
	if (bad > 4)
		printf("dma-stress: FAIL: %s: %" PRIu64 " wrong words in all\n", who, bad);
	return bad;
}

static void *fresh(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A size of 4 KiB to 1 MiB, in 4 KiB steps, favouring the block layer's
 * common ones. */
static size_t pick_size(uint64_t *s)
{
	static const size_t common[] = { PAGE, 2 * PAGE, 4 * PAGE, 16 * PAGE, 32 * PAGE, 64 * PAGE, MAX_IO };
	uint64_t r = rnd(s);
	if (r & 1)
		return common[(r >> 1) % (sizeof(common) / sizeof(common[0]))];
	return PAGE * (1 + (size_t)((r >> 1) % (MAX_IO / PAGE)));
}

/* Split len (4 KiB multiple) into 1..MAX_SEGS page-multiple pieces, each in
 * its own fresh mapping. Returns the count; 0 if out of memory. */
static int scatter(uint64_t *s, size_t len, struct iovec *iov)
{
	int n = 1 + (int)(rnd(s) % MAX_SEGS);
	size_t pages = len / PAGE;
	if ((size_t)n > pages)
		n = (int)pages;
	size_t left = pages;
	for (int i = 0; i < n; i++) {
		size_t take = i == n - 1 ? left : 1 + (size_t)(rnd(s) % (left - (size_t)(n - 1 - i)));
		left -= take;
		iov[i].iov_len = take * PAGE;
		iov[i].iov_base = fresh(iov[i].iov_len);
		if (!iov[i].iov_base) {
			while (i--)
				munmap(iov[i].iov_base, iov[i].iov_len);
			return 0;
		}
	}
	return n;
}

static void unscatter(struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		munmap(iov[i].iov_base, iov[i].iov_len);
}

/* Count the pages of an I/O buffer by where they are in guest-physical
 * memory (/proc/self/pagemap: bit 63 present, bits 54:0 the frame, which
 * reads 0 without CAP_SYS_ADMIN), so a run can show that the device's DMA
 * reached memory above 4 GiB. */
static void count_frames(const struct iovec *iov, int n)
{
	uint64_t e[MAX_IO / PAGE], seen = 0, high = 0;
	for (int i = 0; i < n && pagemap >= 0; i++) {
		size_t pages = iov[i].iov_len / PAGE;
		off_t at = (off_t)((uintptr_t)iov[i].iov_base / PAGE * sizeof(e[0]));
		if (pages > MAX_IO / PAGE || pread(pagemap, e, pages * sizeof(e[0]), at) != (ssize_t)(pages * sizeof(e[0])))
			continue;
		for (size_t k = 0; k < pages; k++) {
			uint64_t pfn = e[k] & ((1ull << 55) - 1);
			if (!(e[k] >> 63) || !pfn)
				continue;
			seen++;
			high += pfn >= (1ull << 32) / PAGE;
		}
	}
	__atomic_fetch_add(&ctr->pages, seen, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ctr->pages_high, high, __ATOMIC_RELAXED);
}

static int full_io(int fd, struct iovec *iov, int n, off_t off, size_t len, int write, const char *who)
{
	ssize_t r = write ? pwritev(fd, iov, n, off) : preadv(fd, iov, n, off);
	if (r == (ssize_t)len) {
		count_frames(iov, n);
		return 0;
	}
	printf("dma-stress: FAIL: %s: %s of %zu bytes at %#llx in %d segment(s): %s\n", who, write ? "write" : "read",
	       len, (unsigned long long)off, n, r < 0 ? strerror(errno) : "short");
	return -1;
}

/* Read len bytes at off into a fresh scatter list and check that word i is
 * first + 8 * i. 0 when all are; 1 (and said why) when not, or on an error. */
static int read_check(int fd, uint64_t *s, off_t off, size_t len, uint64_t first, const char *what,
		      const char *who)
{
	struct iovec iov[MAX_SEGS];
	int n = scatter(s, len, iov);
	if (!n) {
		printf("dma-stress: FAIL: %s: out of memory\n", who);
		return 1;
	}
	if (full_io(fd, iov, n, off, len, 0, who)) {
		unscatter(iov, n);
		return 1;
	}
	uint64_t at = 0, bad = 0;
	for (int i = 0; i < n; i++) {
		bad += check_words(who, iov[i].iov_base, iov[i].iov_len / 8, first + at, (uint64_t)off + at);
		at += iov[i].iov_len;
	}
	unscatter(iov, n);
	if (bad)
		printf("dma-stress: FAIL: %s: %s of %zu bytes at %#llx in %d segment(s) had wrong data\n", who, what, len,
		       (unsigned long long)off, n);
	return bad != 0;
}

/* A worker's name ("KIND ID"), its O_DIRECT descriptor of dev and its
 * random seed. -1 (and said why) when dev does not open. */
static int worker_open(const char *dev, int flags, const char *kind, unsigned id, char *who, size_t n,
		       uint64_t *seed)
{
	snprintf(who, n, "%s %u", kind, id);
	*seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)getpid() << 20) ^ (uint64_t)time(NULL); /* per process */
	int fd = open(dev, flags | O_DIRECT);
	if (fd < 0)
		printf("dma-stress: FAIL: %s: open %s: %s\n", who, dev, strerror(errno));
	pagemap = open("/proc/self/pagemap", O_RDONLY);
	return fd;
}

static int reader(const char *dev, uint64_t ro_bytes, unsigned id)
{
	char who[32];
	uint64_t s;
	int fd = worker_open(dev, O_RDONLY, "reader", id, who, sizeof(who), &s);
	if (fd < 0)
		return 1;
	while (!stop) {
		size_t len = pick_size(&s);
		off_t off = (off_t)(PAGE * (rnd(&s) % ((ro_bytes - len) / PAGE + 1)));
		if (read_check(fd, &s, off, len, DISK_TAG | (uint64_t)off, "read", who))
			return 1;
		__atomic_fetch_add(&ctr->reads, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&ctr->read_bytes, len, __ATOMIC_RELAXED);
	}
	return 0;
}

static int writer(const char *dev, uint64_t slice_off, uint64_t slice_len, unsigned id)
{
	char who[32];
	uint64_t s;
	int fd = worker_open(dev, O_RDWR, "writer", id, who, sizeof(who), &s);
	if (fd < 0)
		return 1;
	for (uint32_t seq = 1; !stop; seq++) {
		size_t len = pick_size(&s);
		if (len > slice_len)
			len = (size_t)slice_len;
		off_t off = (off_t)(slice_off + PAGE * (rnd(&s) % ((slice_len - len) / PAGE + 1)));
		/* The writer's words: its tag and id, 12 bits of the sequence
		 * number (a write that never reached the disk shows, unless
		 * the range's last write had the same 12 bits) and the word's
		 * disk offset (so a misplaced word says where it belonged). */
		uint64_t first = WRITE_TAG | (uint64_t)(id & 0xf) << 44 | (uint64_t)(seq & 0xfff) << 32 | (uint64_t)off;
		struct iovec iov[MAX_SEGS];
		int n = scatter(&s, len, iov);
		if (!n) {
			printf("dma-stress: FAIL: %s: out of memory\n", who);
			return 1;
		}
		uint64_t w = first;
		for (int i = 0; i < n; i++) {
			uint64_t *p = iov[i].iov_base;
			for (size_t k = 0; k < iov[i].iov_len / 8; k++, w += 8)
				p[k] = w;
		}
		int r = full_io(fd, iov, n, off, len, 1, who);
		unscatter(iov, n);
		if (r)
			return 1;
		if (read_check(fd, &s, off, len, first, "read-back of a write", who))
			return 1;
		__atomic_fetch_add(&ctr->writes, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&ctr->write_bytes, len, __ATOMIC_RELAXED);
	}
	return 0;
}

/* One child's life: map 64 KiB to 4 MiB, fill it, let others run, check. */
static int churn_child(uint64_t seed)
{
	uint64_t s = seed;
	size_t len = PAGE * (16 + (size_t)(rnd(&s) % 1009));
	uint64_t *p = fresh(len);
	if (!p) {
		printf("dma-stress: FAIL: churner: out of memory\n");
		return 1;
	}
	uint64_t first = CHURN_TAG | ((uint64_t)getpid() << 24 & ~TAG_MASK);
	for (size_t i = 0; i < len / 8; i++)
		p[i] = first + 8 * i;
	/* Live a while (up to 20 ms) with the pattern in place: a stray
	 * write is caught only while it is there to be overwritten. */
	struct timespec nap = { 0, (long)(rnd(&s) % 20000000) };
	nanosleep(&nap, NULL);
	uint64_t bad = check_words("churner", p, len / 8, first, 0);
	if (bad)
		return 1;
	__atomic_fetch_add(&ctr->churns, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ctr->churn_bytes, len, __ATOMIC_RELAXED);
	return 0;
}

static int churner(unsigned id)
{
	uint64_t s = 0xbf58476d1ce4e5b9ull ^ ((uint64_t)getpid() << 16) ^ (uint64_t)time(NULL) ^ id;
	while (!stop) {
		uint64_t seed = rnd(&s) | 1;
		pid_t c = fork();
		if (c < 0) {
			printf("dma-stress: FAIL: churner %u: fork: %s\n", id, strerror(errno));
			return 1;
		}
		if (!c)
			_exit(churn_child(seed));
		int st;
		while (waitpid(c, &st, 0) < 0) {
			if (errno != EINTR) {
				printf("dma-stress: FAIL: churner %u: waitpid: %s\n", id, strerror(errno));
				return 1;
			}
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			printf("dma-stress: FAIL: churner %u: a child %s %d\n", id,
			       WIFEXITED(st) ? "exited with status" : "was killed by signal",
			       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			return 1;
		}
	}
	return 0;
}

/* The totals so far (after `secs` seconds), or at the end (0). */
static void report(const struct counters *c, unsigned secs)
{
	char when[32] = "";
	if (secs)
		snprintf(when, sizeof(when), "after %u s: ", secs);
	printf("dma-stress: %s%" PRIu64 " reads (%" PRIu64 " MiB), %" PRIu64 " writes (%" PRIu64 " MiB) checked; %" PRIu64
	       " churn children (%" PRIu64 " MiB) checked\n",
	       when, __atomic_load_n(&c->reads, __ATOMIC_RELAXED), __atomic_load_n(&c->read_bytes, __ATOMIC_RELAXED) >> 20,
	       __atomic_load_n(&c->writes, __ATOMIC_RELAXED), __atomic_load_n(&c->write_bytes, __ATOMIC_RELAXED) >> 20,
	       __atomic_load_n(&c->churns, __ATOMIC_RELAXED), __atomic_load_n(&c->churn_bytes, __ATOMIC_RELAXED) >> 20);
}

static int make_disk(const char *path, const char *mib_s)
{
	char *end;
	unsigned long mib = strtoul(mib_s, &end, 10);
	if (*end || mib < 4 || mib > 4096 || mib % 4) {
		fprintf(stderr, "dma-stress: the disk's size is 4 to 4096 MiB, a multiple of 4, not '%s'\n", mib_s);
		return 2;
	}
	FILE *f = fopen(path, "wb");
	if (!f) {
		fprintf(stderr, "dma-stress: %s: %s\n", path, strerror(errno));
		return 1;
	}
	uint64_t total = (uint64_t)mib << 20, ro = total / 4 * 3;
	static uint64_t buf[MAX_IO / 8];
	for (uint64_t off = 0; off < total; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf) / 8; i++)
			buf[i] = off < ro ? DISK_TAG | (off + 8 * i) : 0;
		if (fwrite(buf, sizeof(buf), 1, f) != 1) {
			fprintf(stderr, "dma-stress: %s: %s\n", path, strerror(errno));
			fclose(f);
			return 1;
		}
	}
	if (fclose(f)) {
		fprintf(stderr, "dma-stress: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static int parse_count(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "--make-disk"))
		return make_disk(argv[2], argv[3]);
	unsigned secs, nr = 2, nw = 1, nc = 2;
	if ((argc != 3 && argc != 6) || parse_count(argv[2], 86400, &secs) || !secs ||
	    (argc == 6 && (parse_count(argv[3], 16, &nr) || parse_count(argv[4], 16, &nw) ||
			   parse_count(argv[5], 16, &nc) || !(nr + nw)))) {
		fprintf(stderr, "usage: dma-stress --make-disk FILE MIB\n"
				"       dma-stress DEVICE SECONDS [READERS WRITERS CHURNERS]\n"
				"  (up to 16 of each; at least one reader or writer)\n");
		return 2;
	}
	const char *dev = argv[1];
	int fd = open(dev, O_RDONLY);
	if (fd < 0) {
		printf("dma-stress: FAIL: open %s: %s\n", dev, strerror(errno));
		return 1;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	close(fd);
	if (size < (4 << 20) || size % (4 << 20)) {
		printf("dma-stress: FAIL: %s is %lld bytes: not a disk from --make-disk\n", dev, (long long)size);
		return 1;
	}
	uint64_t ro = (uint64_t)size / 4 * 3, scratch = (uint64_t)size - ro;
	/* At least 1 MiB of scratch (a 4 MiB disk) over at most 16 writers. */
	uint64_t slice = nw ? scratch / nw / PAGE * PAGE : 0;
	ctr = mmap(NULL, sizeof(*ctr), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctr == MAP_FAILED) {
		printf("dma-stress: FAIL: mmap: %s\n", strerror(errno));
		return 1;
	}
	memset(ctr, 0, sizeof(*ctr));
	/* SA_RESTART: the deadline ends the loops, never an I/O halfway. */
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigaction(SIGALRM, &sa, NULL);

	pid_t kids[48];
	unsigned nk = 0;
	for (unsigned i = 0; i < nr + nw + nc; i++) {
		pid_t c = fork();
		if (c < 0) {
			printf("dma-stress: FAIL: fork: %s\n", strerror(errno));
			stop = 1;
			for (unsigned k = 0; k < nk; k++)
				kill(kids[k], SIGALRM);
			break;
		}
		if (!c) {
			alarm(secs);
			int rc = i < nr		 ? reader(dev, ro, i)
				 : i < nr + nw ? writer(dev, ro + (i - nr) * slice, slice, i - nr)
					       : churner(i - nr - nw);
			_exit(rc);
		}
		kids[nk++] = c;
	}
	printf("dma-stress: %u readers, %u writers, %u churners on %s (%lld MiB) for %u s\n", nr, nw, nc, dev,
	       (long long)(size >> 20), secs);
	/* Reap the workers; every 10 s say how far they are (a run the
	 * machine loses still shows how much was checked before). */
	int failed = stop;
	unsigned left = nk;
	for (unsigned tick = 1; left; tick++) {
		sleep(1);
		for (unsigned i = 0; i < nk; i++) {
			int st;
			if (!kids[i] || waitpid(kids[i], &st, WNOHANG) <= 0)
				continue;
			kids[i] = 0;
			left--;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				failed = 1;
				/* One failure is enough: stop the others. */
				for (unsigned k = 0; k < nk; k++)
					if (kids[k])
						kill(kids[k], SIGALRM);
			}
		}
		if (left && tick % 10 == 0)
			report(ctr, tick);
	}
	report(ctr, 0);
	printf("dma-stress: I/O buffer pages: %" PRIu64 " seen, %" PRIu64 " above 4 GiB\n", ctr->pages, ctr->pages_high);
	const char *idle = nr && !ctr->reads ? "read" : nw && !ctr->writes ? "write" : nc && !ctr->churns ? "churn" : NULL;
	if (!failed && idle) {
		printf("dma-stress: FAIL: no %s completed\n", idle);
		failed = 1;
	}
	printf("dma-stress: %s\n", failed ? "FAIL" : "PASS");
	return failed;
}
