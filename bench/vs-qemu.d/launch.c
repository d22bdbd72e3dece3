/* viommu-bench-launch: run a VMM, copy its console to a log, and time the
 * guest's progress with CLOCK_MONOTONIC as the console shows it.
 *
 *   viommu-bench-launch [--log FILE] [--err FILE] [--timeout S]
 *                       [--boot-marker STR] [--counter NAME=PATH]... -- CMD [ARGS...]
 *
 * CMD runs in a process group of its own, with stdin on /dev/null, its stdout (the guest's serial console)
 * on a pipe that this program reads and copies to --log, and its stderr on
 * --err (default: inherited). The clock starts just before CMD is started.
 * Events:
 *   boot   the first console line that contains --boot-marker (default
 *          "guest-init: kernel", the first line the guest's init prints)
 *   NAME   every console line that contains "@@NAME" (NAME: letters, digits,
 *          '_' and '-')
 *   exit   CMD has exited (or was killed at the timeout: SIGTERM to its
 *          process group, SIGKILL 5 s later); what it left running in its
 *          group is killed then
 * Each --counter NAME=PATH names a file holding one unsigned integer (say
 * KVM's /sys/kernel/debug/kvm/exits); it is read at the start and at every
 * event, and the event reports how far it moved since the start.
 *
 * Prints key=value lines on stdout:
 *   t0_mono=123.456789      the clock's start, CLOCK_MONOTONIC seconds (the
 *                           other times count from it)
 *   boot_s=12.345           boot.NAME=N (one per counter)
 *   phase.P.t=...           phase.P.NAME=N
 *   total_s=...             exit.NAME=N
 *   timed_out=0|1           exit_status=N or exit_signal=N
 * A counter that cannot be read reports -1.
 * Exit status: CMD's exit status (128+signal if it was killed); 124 when the
 * timeout struck; 125 when this program itself failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LAUNCH_MAX_COUNTERS 16
#define LAUNCH_LINE_MAX 4096
/* Short, because every console character costs the guest an exit, and a
 * marker's own output falls inside the interval it times. */
#define LAUNCH_PHASE_TAG "@@"
#define LAUNCH_KILL_GRACE_S 5.0

struct counter {
	const char *name;
	const char *path;
	int64_t start;
};

struct launch {
	struct counter counters[LAUNCH_MAX_COUNTERS];
	int ncounters;
	const char *boot_marker;
	int boot_seen;
	double t0;
	char line[LAUNCH_LINE_MAX];
	size_t line_len;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	g_stop = sig;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* counter_read: the integer in PATH, or -1 when it cannot be read. */
static int64_t counter_read(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf || v > INT64_MAX)
		return -1;
	return (int64_t)v;
}

/* event: print the time of event KEY and how far every counter moved. */
static void event(struct launch *l, const char *prefix, const char *time_key)
{
	printf("%s=%.3f\n", time_key, mono_now() - l->t0);
	for (int i = 0; i < l->ncounters; i++) {
		int64_t v = counter_read(l->counters[i].path);
		int64_t s = l->counters[i].start;
		printf("%s.%s=%" PRId64 "\n", prefix, l->counters[i].name, (v < 0 || s < 0) ? -1 : v - s);
	}
	fflush(stdout);
}

/* A phase name is what the guest wrote after the tag, up to the first
 * character that cannot be part of a key. */
static void phase_event(struct launch *l, const char *name)
{
	char phase[64];
	size_t n = 0;
	while (n < sizeof(phase) - 1 &&
	       ((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= 'A' && name[n] <= 'Z') ||
		(name[n] >= '0' && name[n] <= '9') || name[n] == '_' || name[n] == '-')) {
		phase[n] = name[n];
		n++;
	}
	if (n == 0)
		return;
	phase[n] = '\0';
	char prefix[80], tkey[96];
	snprintf(prefix, sizeof(prefix), "phase.%s", phase);
	snprintf(tkey, sizeof(tkey), "phase.%s.t", phase);
	event(l, prefix, tkey);
}

static void line_done(struct launch *l)
{
	l->line[l->line_len] = '\0';
	if (!l->boot_seen && strstr(l->line, l->boot_marker)) {
		l->boot_seen = 1;
		event(l, "boot", "boot_s");
	}
	const char *p = strstr(l->line, LAUNCH_PHASE_TAG);
	if (p)
		phase_event(l, p + strlen(LAUNCH_PHASE_TAG));
	l->line_len = 0;
}

static void feed(struct launch *l, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			line_done(l);
			continue;
		}
		/* A line longer than the buffer is matched on its head only. */
		if (l->line_len < sizeof(l->line) - 1)
			l->line[l->line_len++] = buf[i];
	}
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: viommu-bench-launch [--log FILE] [--err FILE] [--timeout S] [--boot-marker STR]\n"
		   "                           [--counter NAME=PATH]... -- CMD [ARGS...]\n");
}

int main(int argc, char **argv)
{
	static struct launch l;
	const char *log_path = NULL, *err_path = NULL;
	double timeout = 0;
	l.boot_marker = "guest-init: kernel";
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "viommu-bench-launch: %s needs a value\n", a);
			usage(stderr);
			return 125;
		}
		const char *v = argv[++i];
		if (strcmp(a, "--log") == 0) {
			log_path = v;
		} else if (strcmp(a, "--err") == 0) {
			err_path = v;
		} else if (strcmp(a, "--boot-marker") == 0) {
			if (!*v) {
				fprintf(stderr, "viommu-bench-launch: empty --boot-marker\n");
				return 125;
			}
			l.boot_marker = v;
		} else if (strcmp(a, "--timeout") == 0) {
			char *end;
			timeout = strtod(v, &end);
			if (end == v || *end || !(timeout > 0)) {
				fprintf(stderr, "viommu-bench-launch: --timeout wants a positive number, got '%s'\n", v);
				return 125;
			}
		} else if (strcmp(a, "--counter") == 0) {
			const char *eq = strchr(v, '=');
			if (!eq || eq == v || !eq[1] || l.ncounters == LAUNCH_MAX_COUNTERS) {
				fprintf(stderr, "viommu-bench-launch: --counter wants NAME=PATH (at most %d), got '%s'\n",
					LAUNCH_MAX_COUNTERS, v);
				return 125;
			}
			char *name = strndup(v, (size_t)(eq - v));
			if (!name)
				return 125;
			l.counters[l.ncounters].name = name;
			l.counters[l.ncounters].path = eq + 1;
			l.ncounters++;
		} else {
			fprintf(stderr, "viommu-bench-launch: unknown option '%s'\n", a);
			usage(stderr);
			return 125;
		}
	}
	if (i >= argc) {
		fprintf(stderr, "viommu-bench-launch: no command given\n");
		usage(stderr);
		return 125;
	}

	int log_fd = -1, err_fd = -1;
	if (log_path) {
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			fprintf(stderr, "viommu-bench-launch: %s: %s\n", log_path, strerror(errno));
			return 125;
		}
	}
	if (err_path) {
		err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (err_fd < 0) {
			fprintf(stderr, "viommu-bench-launch: %s: %s\n", err_path, strerror(errno));
			return 125;
		}
	}
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		fprintf(stderr, "viommu-bench-launch: pipe: %s\n", strerror(errno));
		return 125;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int c = 0; c < l.ncounters; c++)
		l.counters[c].start = counter_read(l.counters[c].path);
	l.t0 = mono_now();
	printf("t0_mono=%.6f\n", l.t0);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "viommu-bench-launch: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		/* A group of its own: the timeout stops whatever the command
		 * started too (a helper left holding the console pipe, say). */
		setpgid(0, 0);
		int null_fd = open("/dev/null", O_RDONLY);
		if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(pfd[1], 1) < 0 ||
		    (err_fd >= 0 && dup2(err_fd, 2) < 0))
			_exit(125);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[i], argv + i);
		fprintf(stderr, "viommu-bench-launch: cannot run %s: %s\n", argv[i], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* also here: no window before the child's own call */
	close(pfd[1]);

	int timed_out = 0, eof = 0, status = 0, reaped = 0;
	double kill_at = 0; /* when SIGKILL follows a SIGTERM we sent */
	char buf[4096];
	while (!reaped) {
		double now = mono_now();
		if (!kill_at && (g_stop || (timeout > 0 && now - l.t0 >= timeout))) {
			if (!g_stop)
				timed_out = 1;
			kill(-pid, SIGTERM);
			kill_at = now + LAUNCH_KILL_GRACE_S;
		} else if (kill_at && now >= kill_at) {
			kill(-pid, SIGKILL);
			kill_at = now + 3600;
		}
		if (!eof) {
			struct pollfd p = { .fd = pfd[0], .events = POLLIN };
			int r = poll(&p, 1, 200);
			if (r < 0 && errno != EINTR) {
				/* Stop reading; the child is still waited for. */
				fprintf(stderr, "viommu-bench-launch: poll: %s\n", strerror(errno));
				eof = 1;
			}
			if (r > 0) {
				ssize_t n = read(pfd[0], buf, sizeof(buf));
				if (n < 0 && errno != EINTR && errno != EAGAIN) {
					eof = 1;
				} else if (n == 0) {
					eof = 1;
				} else if (n > 0) {
					if (log_fd >= 0 && write_all(log_fd, buf, (size_t)n) != 0) {
						fprintf(stderr, "viommu-bench-launch: writing %s: %s\n", log_path,
							strerror(errno));
						close(log_fd);
						log_fd = -1;
					}
					feed(&l, buf, (size_t)n);
				}
			}
		}
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			reaped = 1;
		} else if (w < 0 && errno != EINTR) {
			fprintf(stderr, "viommu-bench-launch: waitpid: %s\n", strerror(errno));
			return 125;
		} else if (eof) {
			/* The child closed its stdout but lives on: wait for it,
			 * with the timeout still in force. */
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	/* The rest of the console, if the child exited before we read it all;
	 * non-blocking, in case a process the child left behind holds the pipe. */
	fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
	for (;;) {
		ssize_t n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (log_fd >= 0)
			(void)write_all(log_fd, buf, (size_t)n);
		feed(&l, buf, (size_t)n);
	}
	if (l.line_len > 0)
		line_done(&l);
	close(pfd[0]);
	if (log_fd >= 0)
		close(log_fd);
	if (err_fd >= 0)
		close(err_fd);

	/* Whatever the command left behind in its group goes with it. */
	kill(-pid, SIGKILL);
	event(&l, "exit", "total_s");
	printf("timed_out=%d\n", timed_out);
	int rc;
	if (WIFEXITED(status)) {
		printf("exit_status=%d\n", WEXITSTATUS(status));
		rc = WEXITSTATUS(status);
	} else {
		printf("exit_signal=%d\n", WTERMSIG(status));
		rc = 128 + WTERMSIG(status);
	}
	fflush(stdout);
	for (int c = 0; c < l.ncounters; c++)
		free((char *)l.counters[c].name);
	return timed_out ? 124 : rc;
}
