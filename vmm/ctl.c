/* SPDX-License-Identifier: MIT */
/*
 * viommu-ctl: the client of viommu-vmm's control socket (--control PATH).
 *
 *   viommu-ctl SOCK stats
 *   viommu-ctl SOCK faults [--follow]
 *   viommu-ctl SOCK inject-add KEY=VALUE...   (action=fault rid=00:01.0 ...)
 *   viommu-ctl SOCK inject-list
 *   viommu-ctl SOCK inject-remove ID
 *   viommu-ctl SOCK raw 'JSON' [--follow]
 *   viommu-ctl SOCK batch < REQUESTS         (one request per line)
 *
 * Prints each reply line as it comes. In inject-add, a VALUE of decimal
 * digits is sent as a JSON integer, true/false as a boolean, anything else
 * (0x... hex included) as a string. Exit status: 0 when the reply says
 * "ok":true, 1 when it says false, 2 on a usage or connection error or when
 * no reply came within 10 s. With --follow it prints the fault stream until
 * the VMM closes the socket (status 0) or it is interrupted. batch sends
 * standard input as it is, closes its sending side and prints every reply
 * until the VMM closes the connection (status 0 then, whatever the replies).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define REPLY_TIMEOUT_MS 10000

static void usage(FILE *f)
{
	fprintf(f, "usage: viommu-ctl SOCKET COMMAND [ARGS]\n"
		   "\n"
		   "Talks to viommu-vmm --control SOCKET (JSON lines) and prints the replies.\n"
		   "\n"
		   "  stats                      the IOMMU's counters\n"
		   "  faults [--follow]          recent fault records; --follow streams new ones\n"
		   "  inject-add KEY=VALUE...    add a fault-injection rule; keys: action (fault,\n"
		   "                             corrupt-read, drop-inval, delay-inval, lose-irq,\n"
		   "                             drop-completion, delay-completion), rid (BB:DD.F),\n"
		   "                             pasid, first, last, access (r/w/x/p), trigger\n"
		   "                             (always, nth, every-nth, probability), n, ppm, seed,\n"
		   "                             max_fires, reason (e.g. permission), xor_mask, delay_us\n"
		   "  inject-list                the rules with their counters\n"
		   "  inject-remove ID           remove a rule\n"
		   "  raw JSON [--follow]        send one request line as given\n"
		   "  batch                      send standard input (request lines) and print\n"
		   "                             every reply until the VMM closes the connection\n"
		   "\n"
		   "Example: viommu-ctl vm.sock inject-add action=fault rid=00:01.0 first=0x0 \\\n"
		   "           last=0xffffffffffff access=r reason=permission\n"
		   "Exit status: 0 ok, 1 the VMM refused the request, 2 usage or connection error.\n");
}

struct buf {
	char *p;
	size_t len, cap;
};

static int add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

static int adds(struct buf *b, const char *s)
{
	return add(b, s, strlen(s));
}

static int add_json_str(struct buf *b, const char *s)
{
	if (adds(b, "\""))
		return -1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			if (add(b, tmp, 2))
				return -1;
		} else if (c < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			if (adds(b, tmp))
				return -1;
		} else if (add(b, (const char *)&c, 1)) {
			return -1;
		}
	}
	return adds(b, "\"");
}

static int is_decimal(const char *s)
{
	if (!*s || (s[0] == '0' && s[1]))
		return 0;
	if (strlen(s) > 19)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "viommu-ctl: socket path too long: %s\n", path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "viommu-ctl: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static volatile sig_atomic_t interrupted;
static void on_sig(int s)
{
	(void)s;
	interrupted = 1;
}

/* Print reply lines. Without follow: the first line decides the status.
 * With follow: the first line must be ok, then every line until EOF. */
static int read_replies(int fd, int follow)
{
	char buf[65536];
	size_t len = 0;
	int status = -1;
	for (;;) {
		if (interrupted)
			return status < 0 ? 2 : status;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, follow && status == 0 ? 1000 : REPLY_TIMEOUT_MS);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		if (r == 0) {
			if (follow && status == 0)
				continue;
			fprintf(stderr, "viommu-ctl: no reply within %d s\n", REPLY_TIMEOUT_MS / 1000);
			return 2;
		}
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "viommu-ctl: read: %s\n", strerror(errno));
			return status < 0 ? 2 : status;
		}
		if (n == 0) {
			if (len) {
				fwrite(buf, 1, len, stdout);
				fputc('\n', stdout);
			}
			fflush(stdout);
			if (status < 0)
				fprintf(stderr, "viommu-ctl: the VMM closed the connection without a reply\n");
			return status < 0 ? 2 : status;
		}
		len += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < len; i++) {
			if (buf[i] != '\n')
				continue;
			buf[i] = 0;
			const char *line = buf + start;
			puts(line);
			if (status < 0)
				status = strstr(line, "\"ok\":true") == line + 1 ? 0 : 1;
			start = i + 1;
			if (!follow || status != 0) {
				fflush(stdout);
				return status;
			}
		}
		fflush(stdout);
		memmove(buf, buf + start, len - start);
		len -= start;
		if (len == sizeof(buf) - 1) { /* a line longer than the buffer: print it in pieces */
			fwrite(buf, 1, len, stdout);
			len = 0;
		}
	}
}

/* Send standard input, then print replies until EOF. */
static int batch(const char *sock)
{
	signal(SIGPIPE, SIG_IGN);
	int fd = connect_to(sock);
	if (fd < 0)
		return 2;
	char buf[65536];
	int sending = 1;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
		int r = poll(p, sending ? 2 : 1, REPLY_TIMEOUT_MS);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return 2;
		}
		if (r == 0 && !sending) {
			fprintf(stderr, "viommu-ctl: batch: nothing from the VMM for %d s\n", REPLY_TIMEOUT_MS / 1000);
			return 2;
		}
		if (p[0].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fflush(stdout);
				if (n < 0)
					fprintf(stderr, "viommu-ctl: read: %s\n", strerror(errno));
				close(fd);
				return n < 0 ? 2 : 0;
			}
			fwrite(buf, 1, (size_t)n, stdout);
			fflush(stdout);
		}
		if (sending && p[1].revents) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				shutdown(fd, SHUT_WR);
				sending = 0;
			} else if (write_all(fd, buf, (size_t)n)) {
				fprintf(stderr, "viommu-ctl: batch: send: %s\n", strerror(errno));
				return 2;
			}
		}
	}
}

static struct buf *req_buf;
static void free_req(void)
{
	if (req_buf)
		free(req_buf->p);
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 3) {
		usage(stderr);
		return 2;
	}
	const char *sock = argv[1], *cmd = argv[2];
	static struct buf req; /* freed at exit: no leak on the error paths */
	req_buf = &req;
	atexit(free_req);
	int follow = 0;
	if (!strcmp(cmd, "stats") || !strcmp(cmd, "inject-list")) {
		if (argc != 3) {
			fprintf(stderr, "viommu-ctl: %s takes no arguments\n", cmd);
			return 2;
		}
		adds(&req, "{\"cmd\":");
		add_json_str(&req, cmd);
		adds(&req, "}");
	} else if (!strcmp(cmd, "faults")) {
		if (argc == 4 && !strcmp(argv[3], "--follow")) {
			follow = 1;
		} else if (argc != 3) {
			fprintf(stderr, "viommu-ctl: faults takes only --follow\n");
			return 2;
		}
		adds(&req, follow ? "{\"cmd\":\"faults\",\"follow\":true}" : "{\"cmd\":\"faults\"}");
	} else if (!strcmp(cmd, "inject-remove")) {
		if (argc != 4 || !is_decimal(argv[3])) {
			fprintf(stderr, "viommu-ctl: inject-remove takes one rule id (a decimal number)\n");
			return 2;
		}
		adds(&req, "{\"cmd\":\"inject-remove\",\"id\":");
		adds(&req, argv[3]);
		adds(&req, "}");
	} else if (!strcmp(cmd, "inject-add")) {
		adds(&req, "{\"cmd\":\"inject-add\"");
		for (int i = 3; i < argc; i++) {
			char *eq = strchr(argv[i], '=');
			if (!eq || eq == argv[i]) {
				fprintf(stderr, "viommu-ctl: inject-add takes KEY=VALUE arguments, not '%s'\n", argv[i]);
				return 2;
			}
			*eq = 0;
			const char *val = eq + 1;
			adds(&req, ",");
			add_json_str(&req, argv[i]);
			adds(&req, ":");
			if (is_decimal(val) || !strcmp(val, "true") || !strcmp(val, "false"))
				adds(&req, val);
			else
				add_json_str(&req, val);
		}
		adds(&req, "}");
	} else if (!strcmp(cmd, "batch")) {
		if (argc != 3) {
			fprintf(stderr, "viommu-ctl: batch reads its requests from standard input\n");
			return 2;
		}
		return batch(sock);
	} else if (!strcmp(cmd, "raw")) {
		if (argc == 5 && !strcmp(argv[4], "--follow")) {
			follow = 1;
		} else if (argc != 4) {
			fprintf(stderr, "viommu-ctl: raw takes one request (and optionally --follow)\n");
			return 2;
		}
		if (strchr(argv[3], '\n')) {
			fprintf(stderr, "viommu-ctl: raw: the request must be one line\n");
			return 2;
		}
		adds(&req, argv[3]);
	} else {
		fprintf(stderr, "viommu-ctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (!req.p) {
		fprintf(stderr, "viommu-ctl: out of memory\n");
		return 2;
	}
	adds(&req, "\n");

	struct sigaction sa = { .sa_handler = on_sig };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int fd = connect_to(sock);
	if (fd < 0)
		return 2;
	if (write_all(fd, req.p, req.len)) {
		fprintf(stderr, "viommu-ctl: cannot send the request: %s\n", strerror(errno));
		return 2;
	}
	int rc = read_replies(fd, follow);
	close(fd);
	return rc;
}
