/* SPDX-License-Identifier: MIT */
/*
 * An 8250/16550A UART at COM1 (0x3f8, IRQ 4): output to stdout or a file,
 * input from stdin when it is the console. The transmitter is always ready,
 * so the THR-empty interrupt fires as soon as the guest enables it.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UART_RBR 0 /* read, DLAB 0 */
#define UART_THR 0 /* write, DLAB 0 */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define MCR_OUT2 0x08

#define RX_SIZE 256

struct serial {
	struct vmm *vm;
	pthread_mutex_t lock;
	int out_fd;
	int in_fd; /* -1 without input */
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	int thr_empty_pending; /* THR-empty interrupt condition not yet read */
	uint8_t rx[RX_SIZE];
	unsigned rx_head, rx_tail;
	int irq_level;
	char obuf[4096];
	size_t olen;
};

static void flush_locked(struct serial *s)
{
	size_t done = 0;
	while (done < s->olen) {
		ssize_t n = write(s->out_fd, s->obuf + done, s->olen - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	s->olen = 0;
}

static int rx_ready(const struct serial *s)
{
	return s->rx_head != s->rx_tail;
}

/* The interrupt identification, by priority. */
static uint8_t iir_locked(const struct serial *s)
{
	if ((s->ier & IER_RDI) && rx_ready(s))
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thr_empty_pending)
		return IIR_THRI;
	return IIR_NONE;
}

static void update_irq_locked(struct serial *s)
{
	int level = iir_locked(s) != IIR_NONE;
	/* ISA IRQs are edge-triggered at the IOAPIC: raise on each rise. */
	if (level != s->irq_level) {
		s->irq_level = level;
		ioapic_set_irq(s->vm->ioapic, VMM_COM1_IRQ, level);
	}
}

static uint64_t serial_read(void *ctx, uint64_t off, unsigned len)
{
	struct serial *s = ctx;
	uint8_t v = 0xff;
	(void)len;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
		} else if (rx_ready(s)) {
			v = s->rx[s->rx_tail];
			s->rx_tail = (s->rx_tail + 1) % RX_SIZE;
		} else {
			v = 0;
		}
		break;
	case UART_IER:
		v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case UART_IIR:
		v = iir_locked(s) | ((s->fcr & 1) ? IIR_FIFO : 0);
		/* Reading IIR clears a THR-empty condition it reports. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_empty_pending = 0;
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | (rx_ready(s) ? LSR_DR : 0);
		break;
	case UART_MSR:
		/* CTS, DSR, DCD asserted (or looped back from MCR). */
		v = (s->mcr & MCR_LOOP) ? (uint8_t)((s->mcr & 0x0f) << 4) : 0xb0;
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
	return v;
}

static void serial_write(void *ctx, uint64_t off, uint64_t val, unsigned len)
{
	struct serial *s = ctx;
	uint8_t v = (uint8_t)val;
	(void)len;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_THR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & MCR_LOOP) {
			s->rx[s->rx_head] = v;
			s->rx_head = (s->rx_head + 1) % RX_SIZE;
		} else {
			s->obuf[s->olen++] = (char)v;
			if (v == '\n' || s->olen == sizeof(s->obuf))
				flush_locked(s);
		}
		s->thr_empty_pending = 1;
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI with the THR empty raises at once. */
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thr_empty_pending = 1;
			s->ier = v & 0x0f;
		}
		break;
	case UART_FCR:
		s->fcr = v;
		if (v & 2)
			s->rx_head = s->rx_tail = 0;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_poll_input(struct serial *s)
{
	if (!s || s->in_fd < 0)
		return;
	struct pollfd p = { .fd = s->in_fd, .events = POLLIN };
	if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
		return;
	uint8_t buf[64];
	ssize_t n = read(s->in_fd, buf, sizeof(buf));
	if (n <= 0) {
		s->in_fd = -1; /* end of input */
		return;
	}
	pthread_mutex_lock(&s->lock);
	for (ssize_t i = 0; i < n; i++) {
		unsigned next = (s->rx_head + 1) % RX_SIZE;
		if (next == s->rx_tail)
			break; /* overrun: drop */
		s->rx[s->rx_head] = buf[i];
		s->rx_head = next;
	}
	update_irq_locked(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_flush(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	flush_locked(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_create(struct vmm *vm, const char *where, struct serial **out)
{
	struct serial *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->vm = vm;
	pthread_mutex_init(&s->lock, NULL);
	s->in_fd = -1;
	if (!where || !strcmp(where, "stdio")) {
		s->out_fd = STDOUT_FILENO;
		if (isatty(STDIN_FILENO))
			s->in_fd = STDIN_FILENO;
	} else {
		s->out_fd = open(where, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (s->out_fd < 0) {
			int e = -errno;
			vmm_log(vm, "cannot open serial output %s: %s", where, strerror(errno));
			free(s);
			return e;
		}
	}
	struct io_range r = {
		.base = VMM_PORT_COM1, .size = 8, .name = "serial", .ctx = s, .read = serial_read, .write = serial_write,
	};
	int ret = vmm_add_pio(vm, &r);
	if (ret) {
		if (s->out_fd != STDOUT_FILENO)
			close(s->out_fd);
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	serial_flush(s);
	if (s->out_fd != STDOUT_FILENO)
		close(s->out_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
