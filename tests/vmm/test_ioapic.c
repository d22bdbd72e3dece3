/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of viommu-vmm's userspace IOAPIC (vmm/ioapic.c), without KVM.
 *
 * vmm/ioapic.c is compiled into this program; what it calls in the rest of
 * the VMM is faked here:
 *  - vmm_add_mmio records the range (the tests then drive the IOAPIC through
 *    its read/write handlers, as a vCPU's MMIO exit would);
 *  - vmm_log counts and keeps the last message;
 *  - vmm_deliver_msi records each MSI as the IOAPIC composed it, then sends it
 *    through a real viommu instance (interrupt remapping off) whose MSI
 *    callback records what arrives;
 *  - ioctl is wrapped at link time (-Wl,--wrap=ioctl): KVM_SET_GSI_ROUTING on
 *    the fake VM's descriptor (an fd of /dev/null) is captured, so the tests
 *    check the routes mirrored for KVM's EOI tracking. Every other call goes
 *    to the real ioctl; one test uses vm_fd = -1 to see the error logged.
 *
 * Register facts: 82093AA IOAPIC datasheet (IOREGSEL 0x00, IOWIN 0x10; ID,
 * VER, ARB, redirection table at 0x10 + 2 * pin), version 0x20 with the EOI
 * register at 0x40 (as QEMU's and KVM's IOAPICs); the MSI it sends: Intel
 * SDM vol. 3, 11.11 (address 0xfee00000 | dest << 12 | DM << 2; data vector,
 * delivery mode << 8, level << 14, trigger << 15).
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int failures;
static int checks;

#define CHECK(c)                                                                          \
	do {                                                                              \
		checks++;                                                                 \
		if (!(c)) {                                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                       \
		}                                                                         \
	} while (0)

#define CHECK_EQ(a, b)                                                                          \
	do {                                                                                    \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
		checks++;                                                                       \
		if (a_ != b_) {                                                                 \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%#llx != %#llx)\n",     \
				__FILE__, __LINE__, #a, #b, a_, b_);                            \
			failures++;                                                             \
		}                                                                               \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Fakes of the rest of the VMM                                             */

#define MAX_MSIS 64

struct msi {
	struct viommu_rid rid;
	uint64_t addr;
	uint32_t data;
};

static struct msi sent[MAX_MSIS];    /* as vmm_deliver_msi got them */
static unsigned nr_sent;
static struct msi arrived[MAX_MSIS]; /* as the viommu MSI callback got them */
static unsigned nr_arrived;
static int deliver_error;            /* vmm_deliver_msi fails with this when set */
static unsigned long per_vector[256]; /* MSIs sent, by vector (atomic) */

static struct io_range mmio;
static unsigned nr_mmio;
static int add_mmio_error;

static unsigned nr_logs;
static char last_log[256];

static int fake_vm_fd = -1; /* KVM_SET_GSI_ROUTING on this fd is captured */
static unsigned nr_routing_calls;
static struct kvm_irq_routing_entry routes[VMM_MAX_GSI];
static unsigned nr_routes;

int vmm_add_mmio(struct vmm *vm, const struct io_range *r)
{
	(void)vm;
	if (add_mmio_error)
		return add_mmio_error;
	mmio = *r;
	nr_mmio++;
	return 0;
}

void vmm_log(struct vmm *vm, const char *fmt, ...)
{
	(void)vm;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	nr_logs++;
}

int vmm_deliver_msi(struct vmm *vm, struct viommu_rid rid, uint64_t addr, uint32_t data)
{
	/* Called under the IOAPIC's lock, but from several threads in
	 * test_threads: keep the counters atomic. */
	unsigned n = __atomic_fetch_add(&nr_sent, 1, __ATOMIC_RELAXED);
	if (n < MAX_MSIS)
		sent[n] = (struct msi){ .rid = rid, .addr = addr, .data = data };
	__atomic_fetch_add(&per_vector[data & 0xff], 1, __ATOMIC_RELAXED);
	if (deliver_error)
		return deliver_error;
	return viommu_ir_deliver(vm->iommu, rid, addr, data);
}

static int on_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	(void)ctx;
	unsigned n = __atomic_fetch_add(&nr_arrived, 1, __ATOMIC_RELAXED);
	if (n < MAX_MSIS)
		arrived[n] = (struct msi){ .rid = rid, .addr = addr, .data = data };
	return 0;
}

int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fd >= 0 && fd == fake_vm_fd && req == KVM_SET_GSI_ROUTING) {
		const struct kvm_irq_routing *rt = arg;
		nr_routing_calls++;
		if (rt->nr > VMM_MAX_GSI || rt->flags) {
			errno = EINVAL;
			return -1;
		}
		nr_routes = rt->nr;
		memcpy(routes, rt->entries, rt->nr * sizeof(routes[0]));
		return 0;
	}
	return __real_ioctl(fd, req, arg);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

#define REGSEL 0x00
#define WIN    0x10
#define EOIREG 0x40

#define RTE_DELIVS     (1u << 12)
#define RTE_POLARITY   (1u << 13)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_LEVEL      (1u << 15)
#define RTE_MASKED     (1u << 16)
#define RTE_LOGICAL    (1u << 11)
#define DLM(m)         ((uint32_t)(m) << 8)

#define MSI_BASE   0xfee00000ull
#define MSI_DM     (1u << 2)
#define MSI_TM     (1u << 15)
#define MSI_ASSERT (1u << 14)

static struct vmm vm;
static struct ioapic *io;

static uint32_t rd(uint64_t off)
{
	return (uint32_t)mmio.read(mmio.ctx, off, 4);
}

static void wr(uint64_t off, uint32_t v)
{
	mmio.write(mmio.ctx, off, v, 4);
}

static uint32_t reg_read(uint32_t reg)
{
	wr(REGSEL, reg);
	return rd(WIN);
}

static void reg_write(uint32_t reg, uint32_t v)
{
	wr(REGSEL, reg);
	wr(WIN, v);
}

static uint32_t rte_lo(unsigned pin)
{
	return reg_read(0x10 + 2 * pin);
}

static uint32_t rte_hi(unsigned pin)
{
	return reg_read(0x10 + 2 * pin + 1);
}

/* Program a pin: the high half first, as Linux does, so that the unmask in
 * the low half comes last. */
static void rte_set(unsigned pin, uint32_t lo, uint8_t dest)
{
	reg_write(0x10 + 2 * pin + 1, (uint32_t)dest << 24);
	reg_write(0x10 + 2 * pin, lo);
}

static void reset_records(void)
{
	nr_sent = nr_arrived = 0;
	memset(sent, 0, sizeof(sent));
	memset(arrived, 0, sizeof(arrived));
	memset(per_vector, 0, sizeof(per_vector));
}

/* Every register the guest can read: ID, VER, ARB and the 48 RTE halves. */
static void snapshot(uint32_t *out)
{
	out[0] = reg_read(0);
	out[1] = reg_read(1);
	out[2] = reg_read(2);
	for (unsigned i = 0; i < 2 * VMM_IOAPIC_PINS; i++)
		out[3 + i] = reg_read(0x10 + i);
}

/* A fresh IOAPIC, every pin masked and low. */
static void fresh(void)
{
	if (io)
		ioapic_destroy(io);
	io = NULL;
	nr_mmio = 0;
	CHECK_EQ(ioapic_create(&vm, &io), 0);
	CHECK(io != NULL);
	CHECK_EQ(nr_mmio, 1);
	reset_records();
}

/* The last MSI sent must be (addr, data), from the IOAPIC's requester ID,
 * and it must have arrived through viommu unchanged (remapping is off). */
static void check_last_msi(uint64_t addr, uint32_t data, int line)
{
	checks++;
	if (nr_sent == 0 || nr_sent > MAX_MSIS) {
		fprintf(stderr, "%s:%d: no MSI recorded (%u)\n", __FILE__, line, nr_sent);
		failures++;
		return;
	}
	const struct msi *m = &sent[nr_sent - 1];
	if (m->addr != addr || m->data != data || m->rid.segment != 0 || m->rid.bus != 0 || m->rid.devfn != 0xf8) {
		fprintf(stderr, "%s:%d: MSI sent addr %#llx data %#x rid %u:%02x.%u, expected addr %#llx data %#x rid 0:00:1f.0\n",
			__FILE__, line, (unsigned long long)m->addr, m->data, m->rid.bus, m->rid.devfn >> 3,
			m->rid.devfn & 7, (unsigned long long)addr, data);
		failures++;
	}
	if (nr_arrived != nr_sent || arrived[nr_arrived - 1].addr != addr || arrived[nr_arrived - 1].data != data) {
		fprintf(stderr, "%s:%d: %u MSIs arrived for %u sent (last addr %#llx data %#x)\n", __FILE__, line,
			nr_arrived, nr_sent, nr_arrived ? (unsigned long long)arrived[nr_arrived - 1].addr : 0ull,
			nr_arrived ? arrived[nr_arrived - 1].data : 0u);
		failures++;
	}
}
#define CHECK_LAST_MSI(a, d) check_last_msi((a), (d), __LINE__)

/* The route KVM holds for `pin`, or NULL. */
static const struct kvm_irq_routing_entry *route_of(unsigned pin)
{
	for (unsigned i = 0; i < nr_routes; i++)
		if (routes[i].gsi == pin)
			return &routes[i];
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

static void test_create(void)
{
	fresh();
	CHECK_EQ(mmio.base, 0xfec00000ull);
	CHECK_EQ(mmio.size, 0x1000);
	CHECK(mmio.read != NULL && mmio.write != NULL);

	/* A failing registration is reported and leaves *out alone. */
	struct ioapic *other = (struct ioapic *)&vm;
	add_mmio_error = -EBUSY;
	CHECK_EQ(ioapic_create(&vm, &other), -EBUSY);
	CHECK(other == (struct ioapic *)&vm);
	add_mmio_error = 0;

	/* NULL is a no-op everywhere. */
	ioapic_set_irq(NULL, 1, 1);
	ioapic_eoi(NULL, 0x30);
	ioapic_destroy(NULL);
	CHECK_EQ(nr_sent, 0);
}

static void test_id_ver_arb(void)
{
	fresh();
	/* Version 0x20 (EOI register), maximum redirection entry 23. */
	CHECK_EQ(reg_read(1), 0x00170020);
	CHECK_EQ(((reg_read(1) >> 16) & 0xff) + 1, 24);
	CHECK_EQ(reg_read(0), 0);
	CHECK_EQ(reg_read(2), 0);

	/* ID: bits 27:24, writable; ARB follows it. */
	reg_write(0, 0x05000000);
	CHECK_EQ(reg_read(0), 0x05000000);
	CHECK_EQ(reg_read(2), 0x05000000);
	reg_write(0, 0xffffffff);
	CHECK_EQ(reg_read(0), 0x0f000000);
	reg_write(0, 0);
	CHECK_EQ(reg_read(0), 0);

	/* VER and ARB are read-only. */
	reg_write(1, 0xffffffff);
	CHECK_EQ(reg_read(1), 0x00170020);
	reg_write(2, 0x0a000000);
	CHECK_EQ(reg_read(2), 0);

	/* IOREGSEL reads back what was selected. */
	wr(REGSEL, 0x2b);
	CHECK_EQ(rd(REGSEL), 0x2b);
	wr(REGSEL, 0x01);
	CHECK_EQ(rd(REGSEL), 0x01);
}

static void test_rte_rw(void)
{
	fresh();
	/* Reset state: every pin masked, everything else zero. */
	for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++) {
		CHECK_EQ(rte_lo(pin), RTE_MASKED);
		CHECK_EQ(rte_hi(pin), 0);
	}

	/* Both halves, independently (pin 23: the last one). */
	uint32_t lo = RTE_MASKED | RTE_LEVEL | RTE_POLARITY | RTE_LOGICAL | DLM(1) | 0x5a;
	reg_write(0x10 + 2 * 23, lo);
	CHECK_EQ(rte_lo(23), lo);
	CHECK_EQ(rte_hi(23), 0);
	reg_write(0x10 + 2 * 23 + 1, 0xa5000000);
	CHECK_EQ(rte_hi(23), 0xa5000000);
	CHECK_EQ(rte_lo(23), lo);
	reg_write(0x10 + 2 * 23, RTE_MASKED | 0x31);
	CHECK_EQ(rte_lo(23), RTE_MASKED | 0x31);
	CHECK_EQ(rte_hi(23), 0xa5000000);
	/* Other pins untouched. */
	CHECK_EQ(rte_lo(22), RTE_MASKED);
	CHECK_EQ(rte_hi(22), 0);
	CHECK_EQ(rte_lo(0), RTE_MASKED);

	/* Delivery status and Remote IRR are read-only: writing ones leaves
	 * them clear. */
	reg_write(0x10 + 2 * 7, RTE_MASKED | RTE_LEVEL | RTE_REMOTE_IRR | RTE_DELIVS | 0x47);
	CHECK_EQ(rte_lo(7), RTE_MASKED | RTE_LEVEL | 0x47);
	reg_write(0x10 + 2 * 7, 0xffffffff);
	CHECK_EQ(rte_lo(7) & (RTE_REMOTE_IRR | RTE_DELIVS), 0);
	CHECK_EQ(rte_lo(7) & (RTE_MASKED | RTE_LEVEL | 0xff), RTE_MASKED | RTE_LEVEL | 0xff);
	CHECK_EQ(nr_sent, 0);

	/* Remote IRR, once set by a delivery, survives a write of zero to it
	 * and a rewrite of the other fields. */
	fresh();
	rte_set(8, RTE_LEVEL | 0x48, 0);
	ioapic_set_irq(io, 8, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK(rte_lo(8) & RTE_REMOTE_IRR);
	reg_write(0x10 + 2 * 8, RTE_LEVEL | 0x48);
	CHECK(rte_lo(8) & RTE_REMOTE_IRR);
	reg_write(0x10 + 2 * 8 + 1, 0x01000000);
	CHECK(rte_lo(8) & RTE_REMOTE_IRR);
	CHECK_EQ(nr_sent, 1);
}

static void test_bad_registers(void)
{
	fresh();
	rte_set(3, RTE_MASKED | 0x33, 2);
	reg_write(0, 0x03000000);
	uint32_t before[3 + 2 * VMM_IOAPIC_PINS], after[3 + 2 * VMM_IOAPIC_PINS];
	snapshot(before);

	/* Register numbers with nothing behind them read 0 and ignore writes. */
	static const uint32_t bad[] = { 0x03, 0x04, 0x0f, 0x10 + 2 * VMM_IOAPIC_PINS, 0x41, 0x7f, 0x80, 0xfe, 0xff };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(reg_read(bad[i]), 0);
		reg_write(bad[i], 0xffffffff);
		CHECK_EQ(reg_read(bad[i]), 0);
	}
	/* Offsets in the page that are no register. */
	static const uint64_t offs[] = { 0x04, 0x08, 0x14, 0x20, 0x30, 0x44, 0x80, 0xffc };
	for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		CHECK_EQ(rd(offs[i]), 0);
		wr(offs[i], 0xffffffff);
	}
	snapshot(after);
	CHECK(memcmp(before, after, sizeof(before)) == 0);
	CHECK_EQ(nr_sent, 0);
	/* The EOI register reads as 0. */
	CHECK_EQ(rd(EOIREG), 0);
}

static void test_bad_pins(void)
{
	fresh();
	for (unsigned pin = 0; pin < VMM_IOAPIC_PINS; pin++)
		rte_set(pin, 0x20 + pin, 0);
	reset_records();
	ioapic_set_irq(io, VMM_IOAPIC_PINS, 1);
	ioapic_set_irq(io, 255, 1);
	ioapic_set_irq(io, 0xffffffffu, 1);
	ioapic_set_irq(io, VMM_IOAPIC_PINS, 0);
	CHECK_EQ(nr_sent, 0);
	/* The last valid pin works. */
	ioapic_set_irq(io, VMM_IOAPIC_PINS - 1, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_LAST_MSI(MSI_BASE, 0x20 + VMM_IOAPIC_PINS - 1);
}

static void test_masked(void)
{
	fresh();
	rte_set(4, RTE_MASKED | 0x34, 0);
	rte_set(9, RTE_MASKED | RTE_LEVEL | 0x39, 0);
	ioapic_set_irq(io, 4, 1);
	ioapic_set_irq(io, 4, 0);
	ioapic_set_irq(io, 4, 1);
	ioapic_set_irq(io, 9, 1);
	CHECK_EQ(nr_sent, 0);
	CHECK_EQ(rte_lo(9) & RTE_REMOTE_IRR, 0);
	ioapic_eoi(io, 0x39);
	CHECK_EQ(nr_sent, 0);
	/* An edge seen while masked is lost: unmasking sends nothing. */
	rte_set(4, 0x34, 0);
	CHECK_EQ(nr_sent, 0);
	/* Masking again stops an asserted level pin from firing on EOI. */
	rte_set(9, RTE_LEVEL | 0x39, 0); /* fires: line high */
	CHECK_EQ(nr_sent, 1);
	rte_set(9, RTE_MASKED | RTE_LEVEL | 0x39, 0);
	ioapic_eoi(io, 0x39);
	CHECK_EQ(nr_sent, 1);
	CHECK_EQ(rte_lo(9) & RTE_REMOTE_IRR, 0);
}

static void test_edge(void)
{
	fresh();
	rte_set(4, 0x31, 0);
	CHECK_EQ(nr_sent, 0);
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_LAST_MSI(MSI_BASE, 0x31);
	/* Held high: no new edge. */
	ioapic_set_irq(io, 4, 1);
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(nr_sent, 1);
	/* Falling edge: nothing. */
	ioapic_set_irq(io, 4, 0);
	CHECK_EQ(nr_sent, 1);
	ioapic_set_irq(io, 4, 0);
	CHECK_EQ(nr_sent, 1);
	/* The next rising edge fires again. */
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(nr_sent, 2);
	CHECK_LAST_MSI(MSI_BASE, 0x31);
	/* Any non-zero level is "high". */
	ioapic_set_irq(io, 4, 0);
	ioapic_set_irq(io, 4, 7);
	CHECK_EQ(nr_sent, 3);
	/* Edge pins never set Remote IRR, and an EOI of their vector does
	 * nothing. */
	CHECK_EQ(rte_lo(4) & RTE_REMOTE_IRR, 0);
	ioapic_eoi(io, 0x31);
	wr(EOIREG, 0x31);
	CHECK_EQ(nr_sent, 3);
	/* Edge pins are not re-sent by unmasking either. */
	rte_set(4, RTE_MASKED | 0x31, 0);
	rte_set(4, 0x31, 0);
	CHECK_EQ(nr_sent, 3);
}

static void test_level(void)
{
	fresh();
	rte_set(9, RTE_LEVEL | 0x39, 1);
	ioapic_set_irq(io, 9, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_LAST_MSI(MSI_BASE | 1u << 12, 0x39 | MSI_TM | MSI_ASSERT);
	CHECK(rte_lo(9) & RTE_REMOTE_IRR);

	/* No re-delivery while Remote IRR is set, whatever the line does. */
	ioapic_set_irq(io, 9, 1);
	ioapic_set_irq(io, 9, 0);
	ioapic_set_irq(io, 9, 1);
	CHECK_EQ(nr_sent, 1);
	/* An EOI of another vector leaves it alone. */
	ioapic_eoi(io, 0x3a);
	wr(EOIREG, 0x38);
	CHECK_EQ(nr_sent, 1);
	CHECK(rte_lo(9) & RTE_REMOTE_IRR);

	/* EOI through the register with the line still high: cleared, then
	 * sent again at once, so Remote IRR is set again. */
	wr(EOIREG, 0x39);
	CHECK_EQ(nr_sent, 2);
	CHECK_LAST_MSI(MSI_BASE | 1u << 12, 0x39 | MSI_TM | MSI_ASSERT);
	CHECK(rte_lo(9) & RTE_REMOTE_IRR);

	/* The line drops, then EOI through ioapic_eoi() (KVM's EOI exit):
	 * cleared, nothing sent. */
	ioapic_set_irq(io, 9, 0);
	CHECK_EQ(nr_sent, 2);
	ioapic_eoi(io, 0x39);
	CHECK_EQ(nr_sent, 2);
	CHECK_EQ(rte_lo(9) & RTE_REMOTE_IRR, 0);
	/* A second EOI changes nothing. */
	ioapic_eoi(io, 0x39);
	CHECK_EQ(nr_sent, 2);

	/* Raised again: delivered. */
	ioapic_set_irq(io, 9, 1);
	CHECK_EQ(nr_sent, 3);
	CHECK(rte_lo(9) & RTE_REMOTE_IRR);
	/* EOI through the register with the line low after all. */
	ioapic_set_irq(io, 9, 0);
	wr(EOIREG, 0x39);
	CHECK_EQ(nr_sent, 3);
	CHECK_EQ(rte_lo(9) & RTE_REMOTE_IRR, 0);

	/* Only the low 8 bits of an EOI register write name the vector. */
	ioapic_set_irq(io, 9, 1);
	CHECK_EQ(nr_sent, 4);
	ioapic_set_irq(io, 9, 0);
	wr(EOIREG, 0xff00 | 0x39);
	CHECK_EQ(rte_lo(9) & RTE_REMOTE_IRR, 0);

	/* Two level pins sharing a vector: one EOI clears both, and the one
	 * still asserted fires again. */
	fresh();
	rte_set(16, RTE_LEVEL | 0x50, 0);
	rte_set(17, RTE_LEVEL | 0x50, 0);
	ioapic_set_irq(io, 16, 1);
	ioapic_set_irq(io, 17, 1);
	CHECK_EQ(nr_sent, 2);
	CHECK(rte_lo(16) & RTE_REMOTE_IRR);
	CHECK(rte_lo(17) & RTE_REMOTE_IRR);
	ioapic_set_irq(io, 16, 0);
	ioapic_eoi(io, 0x50);
	CHECK_EQ(rte_lo(16) & RTE_REMOTE_IRR, 0);
	CHECK(rte_lo(17) & RTE_REMOTE_IRR);
	CHECK_EQ(nr_sent, 3);

	/* Switching a level pin to edge drops Remote IRR (Linux does this to
	 * clear it on IOAPICs without the EOI register). */
	fresh();
	rte_set(11, RTE_LEVEL | 0x3b, 0);
	ioapic_set_irq(io, 11, 1);
	ioapic_set_irq(io, 11, 0);
	CHECK(rte_lo(11) & RTE_REMOTE_IRR);
	rte_set(11, RTE_MASKED | 0x3b, 0);
	CHECK_EQ(rte_lo(11) & RTE_REMOTE_IRR, 0);
	rte_set(11, RTE_LEVEL | 0x3b, 0);
	CHECK_EQ(rte_lo(11) & RTE_REMOTE_IRR, 0);
	ioapic_set_irq(io, 11, 1);
	CHECK_EQ(nr_sent, 2);
}

static void test_unmask_pending(void)
{
	fresh();
	rte_set(10, RTE_MASKED | RTE_LEVEL | 0x3a, 3);
	ioapic_set_irq(io, 10, 1);
	CHECK_EQ(nr_sent, 0);
	/* Rewriting the high half of a masked pin sends nothing. */
	reg_write(0x10 + 2 * 10 + 1, 3u << 24);
	CHECK_EQ(nr_sent, 0);
	/* Unmasking the asserted level pin sends it. */
	reg_write(0x10 + 2 * 10, RTE_LEVEL | 0x3a);
	CHECK_EQ(nr_sent, 1);
	CHECK_LAST_MSI(MSI_BASE | 3u << 12, 0x3a | MSI_TM | MSI_ASSERT);
	CHECK(rte_lo(10) & RTE_REMOTE_IRR);
	/* Rewriting it unmasked again does not resend. */
	reg_write(0x10 + 2 * 10, RTE_LEVEL | 0x3a);
	CHECK_EQ(nr_sent, 1);
	/* Mask and unmask with Remote IRR still set: nothing. */
	reg_write(0x10 + 2 * 10, RTE_MASKED | RTE_LEVEL | 0x3a);
	reg_write(0x10 + 2 * 10, RTE_LEVEL | 0x3a);
	CHECK_EQ(nr_sent, 1);
	/* A deasserted level pin unmasked sends nothing. */
	rte_set(12, RTE_MASKED | RTE_LEVEL | 0x3c, 0);
	ioapic_set_irq(io, 12, 1);
	ioapic_set_irq(io, 12, 0);
	rte_set(12, RTE_LEVEL | 0x3c, 0);
	CHECK_EQ(nr_sent, 1);
}

static void test_msi_format(void)
{
	static const struct {
		uint32_t lo;
		uint8_t dest;
		uint64_t addr;
		uint32_t data;
	} cases[] = {
		/* physical, fixed, edge */
		{ 0x41, 0x05, MSI_BASE | 0x05u << 12, 0x41 },
		{ 0xfe, 0xff, MSI_BASE | 0xffu << 12, 0xfe },
		/* logical destination */
		{ RTE_LOGICAL | 0x42, 0x0f, MSI_BASE | 0x0fu << 12 | MSI_DM, 0x42 },
		/* lowest priority, logical */
		{ RTE_LOGICAL | DLM(1) | 0x43, 0x03, MSI_BASE | 0x03u << 12 | MSI_DM, DLM(1) | 0x43 },
		/* SMI, NMI, INIT, ExtINT */
		{ DLM(2) | 0x00, 0x01, MSI_BASE | 0x01u << 12, DLM(2) },
		{ DLM(4) | 0x00, 0x02, MSI_BASE | 0x02u << 12, DLM(4) },
		{ DLM(5) | 0x00, 0x00, MSI_BASE, DLM(5) },
		{ DLM(7) | 0x00, 0x00, MSI_BASE, DLM(7) },
		/* active-low polarity does not show in the message */
		{ RTE_POLARITY | 0x44, 0x01, MSI_BASE | 0x01u << 12, 0x44 },
		/* level: trigger mode and assert */
		{ RTE_LEVEL | 0x45, 0x02, MSI_BASE | 0x02u << 12, 0x45 | MSI_TM | MSI_ASSERT },
		{ RTE_LEVEL | RTE_LOGICAL | DLM(1) | RTE_POLARITY | 0x46, 0x80, MSI_BASE | 0x80u << 12 | MSI_DM,
		  0x46 | DLM(1) | MSI_TM | MSI_ASSERT },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fresh();
		unsigned pin = 1 + i % (VMM_IOAPIC_PINS - 1);
		rte_set(pin, cases[i].lo, cases[i].dest);
		ioapic_set_irq(io, pin, 1);
		checks++;
		if (nr_sent != 1) {
			fprintf(stderr, "%s:%d: case %u: %u MSIs sent\n", __FILE__, __LINE__, i, nr_sent);
			failures++;
			continue;
		}
		if (sent[0].addr != cases[i].addr || sent[0].data != cases[i].data) {
			fprintf(stderr, "%s:%d: case %u (RTE %#x dest %#x): MSI %#llx/%#x, expected %#llx/%#x\n", __FILE__,
				__LINE__, i, cases[i].lo, cases[i].dest, (unsigned long long)sent[0].addr, sent[0].data,
				(unsigned long long)cases[i].addr, cases[i].data);
			failures++;
		}
		CHECK_LAST_MSI(cases[i].addr, cases[i].data);
		/* KVM's route for the pin is the same message. */
		const struct kvm_irq_routing_entry *e = route_of(pin);
		CHECK(e != NULL);
		if (e) {
			CHECK_EQ(e->type, KVM_IRQ_ROUTING_MSI);
			CHECK_EQ((uint64_t)e->u.msi.address_hi << 32 | e->u.msi.address_lo, cases[i].addr);
			CHECK_EQ(e->u.msi.data, cases[i].data);
		}
	}
}

static void test_delivery_failure(void)
{
	fresh();
	rte_set(5, RTE_LEVEL | 0x35, 0);
	deliver_error = -EFAULT;
	ioapic_set_irq(io, 5, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_EQ(nr_arrived, 0);
	/* Nothing arrived, so no EOI will come: Remote IRR stays clear and
	 * the next assertion tries again. */
	CHECK_EQ(rte_lo(5) & RTE_REMOTE_IRR, 0);
	deliver_error = 0;
	ioapic_set_irq(io, 5, 1);
	CHECK_EQ(nr_sent, 2);
	CHECK_EQ(nr_arrived, 1);
	CHECK(rte_lo(5) & RTE_REMOTE_IRR);
}

static void test_routes(void)
{
	fresh();
	unsigned before = nr_routing_calls;
	rte_set(1, 0x21, 1);
	rte_set(2, RTE_MASKED | 0x22, 2);
	rte_set(3, RTE_LEVEL | RTE_LOGICAL | 0x23, 4);
	CHECK(nr_routing_calls > before);
	CHECK_EQ(nr_logs, 0);
	/* Exactly the unmasked pins, at GSI = pin. */
	CHECK_EQ(nr_routes, 2);
	const struct kvm_irq_routing_entry *e = route_of(1);
	CHECK(e != NULL);
	if (e) {
		CHECK_EQ(e->type, KVM_IRQ_ROUTING_MSI);
		CHECK_EQ(e->u.msi.address_lo, MSI_BASE | 1u << 12);
		CHECK_EQ(e->u.msi.address_hi, 0);
		CHECK_EQ(e->u.msi.data, 0x21);
	}
	CHECK(route_of(2) == NULL);
	e = route_of(3);
	CHECK(e != NULL);
	if (e) {
		CHECK_EQ(e->u.msi.address_lo, MSI_BASE | 4u << 12 | MSI_DM);
		CHECK_EQ(e->u.msi.data, 0x23 | MSI_TM | MSI_ASSERT);
	}
	/* Masking drops the route, a new vector replaces it. */
	rte_set(1, RTE_MASKED | 0x21, 1);
	CHECK(route_of(1) == NULL);
	rte_set(3, RTE_LEVEL | RTE_LOGICAL | 0x63, 4);
	e = route_of(3);
	CHECK(e != NULL && e->u.msi.data == (0x63 | MSI_TM | MSI_ASSERT));
	CHECK_EQ(nr_routes, 1);
	/* No route call is needed to deliver. */
	before = nr_routing_calls;
	ioapic_set_irq(io, 3, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_EQ(nr_routing_calls, before);
	/* A refresh (remapping changed) with nothing changed writes nothing;
	 * the table keeps the pin's route. */
	ioapic_refresh_routes(io);
	CHECK_EQ(nr_routing_calls, before);
	CHECK(route_of(3) != NULL);
	/* Routes of other users (irqfd GSIs) live beside the pins' in the
	 * one table KVM is given. */
	unsigned gsi = 0;
	CHECK_EQ(vmm_route_alloc(&vm, &gsi), 0);
	CHECK(gsi >= VMM_IOAPIC_PINS);
	struct vmm_route_update u = { .gsi = gsi, .valid = 1, .addr = MSI_BASE, .data = 0x99 };
	CHECK_EQ(vmm_route_set(&vm, &u, 1), 0);
	CHECK_EQ(nr_routes, 2);
	CHECK(route_of(3) != NULL);
	rte_set(3, RTE_MASKED | 0x63, 4);
	CHECK_EQ(nr_routes, 1); /* the pin's went, the irqfd's stays */
	CHECK_EQ(routes[0].gsi, gsi);
	vmm_route_free(&vm, gsi);
	CHECK_EQ(nr_routes, 0);
	rte_set(3, RTE_LEVEL | RTE_LOGICAL | 0x63, 4);

	/* Without a VM descriptor the routing update fails: logged, and the
	 * IOAPIC still works. */
	int saved = vm.vm_fd;
	vm.vm_fd = -1;
	fresh();
	nr_logs = 0;
	rte_set(6, 0x26, 0);
	CHECK(nr_logs > 0);
	CHECK(strstr(last_log, "KVM_SET_GSI_ROUTING") != NULL);
	ioapic_set_irq(io, 6, 1);
	CHECK_EQ(nr_sent, 1);
	CHECK_LAST_MSI(MSI_BASE, 0x26);
	vm.vm_fd = saved;
	nr_logs = 0;
}

/* vCPU threads (MMIO, EOI exits) and device threads (lines) at once. */
#define ROUNDS 20000

static void *edge_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		ioapic_set_irq(io, 2, 1);
		ioapic_set_irq(io, 2, 0);
	}
	return NULL;
}

static void *level_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		ioapic_set_irq(io, 3, 1);
		ioapic_set_irq(io, 3, 0);
	}
	return NULL;
}

static unsigned long eois;

static void *eoi_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		if (i & 1)
			ioapic_eoi(io, 0x63);
		else
			wr(EOIREG, 0x63);
		__atomic_fetch_add(&eois, 1, __ATOMIC_RELAXED);
		wr(EOIREG, 0x62); /* an edge pin's vector: no effect */
	}
	return NULL;
}

static void *rte_thread(void *arg)
{
	(void)arg;
	/* The only user of IOREGSEL/IOWIN meanwhile (a guest serializes
	 * them with a lock of its own). */
	for (int i = 0; i < ROUNDS / 4; i++) {
		reg_write(0x10 + 2 * 5, RTE_MASKED | (uint32_t)(0x70 + (i & 7)));
		(void)reg_read(0x10 + 2 * 3);
	}
	return NULL;
}

static void test_threads(void)
{
	fresh();
	rte_set(2, 0x62, 0);
	rte_set(3, RTE_LEVEL | 0x63, 0);
	eois = 0;
	pthread_t t[4];
	void *(*fn[4])(void *) = { edge_thread, level_thread, eoi_thread, rte_thread };
	for (int i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, fn[i], NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* Every rising edge of the edge pin, exactly once. */
	CHECK_EQ(per_vector[0x62], ROUNDS);
	/* The level pin: once, then at most once per EOI. */
	CHECK(per_vector[0x63] >= 1);
	CHECK(per_vector[0x63] <= eois + 1);
	CHECK_EQ(nr_arrived, nr_sent);
	CHECK_EQ(per_vector[0x62] + per_vector[0x63], nr_sent);
	/* Line low and a last EOI: Remote IRR clear, nothing more sent. */
	unsigned before = nr_sent;
	ioapic_eoi(io, 0x63);
	CHECK_EQ(rte_lo(3) & RTE_REMOTE_IRR, 0);
	CHECK_EQ(nr_sent, before);
	CHECK_EQ(rte_lo(5) & RTE_MASKED, RTE_MASKED);
	printf("test_ioapic: threads: %lu edge MSIs, %lu level MSIs for %lu EOIs\n", per_vector[0x62],
	       per_vector[0x63], eois);
}

/* An EOI hook as an assigned device's INTx uses it: records each call and
 * lowers the line when asked to (the device stopped asserting). */
static struct {
	unsigned calls;
	unsigned pin;
	int lower;      /* deassert the pin from the hook */
	uint32_t irr;   /* Remote IRR of the pin as the hook saw it */
} hk[2];

static void eoi_hook(void *ctx, unsigned pin)
{
	unsigned i = (unsigned)(uintptr_t)ctx;
	hk[i].calls++;
	hk[i].pin = pin;
	hk[i].irr = rte_lo(pin) & RTE_REMOTE_IRR;
	if (hk[i].lower)
		ioapic_set_irq(io, pin, 0); /* no IOAPIC lock is held here */
}

static void test_eoi_hooks(void)
{
	fresh();
	memset(hk, 0, sizeof(hk));
	CHECK_EQ(ioapic_eoi_hook_add(io, 19, eoi_hook, (void *)0), 0);
	CHECK_EQ(ioapic_eoi_hook_add(io, 20, eoi_hook, (void *)1), 0);
	CHECK_EQ(ioapic_eoi_hook_add(io, VMM_IOAPIC_PINS, eoi_hook, NULL), -EINVAL);
	CHECK_EQ(ioapic_eoi_hook_add(NULL, 1, eoi_hook, NULL), -EINVAL);
	CHECK_EQ(ioapic_eoi_hook_add(io, 1, NULL, NULL), -EINVAL);
	rte_set(19, RTE_LEVEL | 0x61, 0);
	rte_set(20, 0x62, 0); /* edge: no Remote IRR, no EOI hook */

	/* The device asserts; the guest's EOI runs the hook after Remote IRR
	 * is cleared, and the hook deasserts: nothing fires again. */
	hk[0].lower = 1;
	ioapic_set_irq(io, 19, 1);
	CHECK_EQ(nr_sent, 1);
	ioapic_eoi(io, 0x60); /* another vector */
	CHECK_EQ(hk[0].calls, 0);
	ioapic_eoi(io, 0x61);
	CHECK_EQ(hk[0].calls, 1);
	CHECK_EQ(hk[0].pin, 19);
	CHECK_EQ(hk[0].irr, 0);
	CHECK_EQ(nr_sent, 1);
	CHECK_EQ(rte_lo(19) & RTE_REMOTE_IRR, 0);
	/* An EOI with no Remote IRR on the pin does not call it. */
	ioapic_eoi(io, 0x61);
	CHECK_EQ(hk[0].calls, 1);

	/* The hook leaves the line up (the device still asserts after the
	 * unmask): the pin fires again once the hook returned. */
	hk[0].lower = 0;
	ioapic_set_irq(io, 19, 1);
	CHECK_EQ(nr_sent, 2);
	wr(EOIREG, 0x61);
	CHECK_EQ(hk[0].calls, 2);
	CHECK_EQ(nr_sent, 3);
	CHECK(rte_lo(19) & RTE_REMOTE_IRR);

	/* Edge pins have no EOI to hook. */
	ioapic_set_irq(io, 20, 1);
	ioapic_eoi(io, 0x62);
	CHECK_EQ(hk[1].calls, 0);

	/* Removed: not called again; removing twice is harmless. */
	ioapic_eoi_hook_del(io, 19, eoi_hook, (void *)0);
	ioapic_eoi_hook_del(io, 19, eoi_hook, (void *)0);
	ioapic_set_irq(io, 19, 0);
	ioapic_eoi(io, 0x61);
	CHECK_EQ(hk[0].calls, 2);
	ioapic_eoi_hook_del(io, 20, eoi_hook, (void *)1);

	/* A table of VMM_IOAPIC_EOI_HOOKS, then -ENOSPC. */
	for (unsigned i = 0; i < VMM_IOAPIC_EOI_HOOKS; i++)
		CHECK_EQ(ioapic_eoi_hook_add(io, i, eoi_hook, (void *)0), 0);
	CHECK_EQ(ioapic_eoi_hook_add(io, 0, eoi_hook, (void *)1), -ENOSPC);
}

int main(void)
{
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem) },
		.msi = on_msi,
	};
	if (viommu_create(&cfg, NULL, &vm.iommu)) {
		fprintf(stderr, "viommu_create failed\n");
		return 1;
	}
	fake_vm_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fake_vm_fd < 0) {
		perror("/dev/null");
		return 1;
	}
	vm.vm_fd = fake_vm_fd;
	if (vmm_routes_create(&vm)) {
		fprintf(stderr, "vmm_routes_create failed\n");
		return 1;
	}

	test_create();
	test_id_ver_arb();
	test_rte_rw();
	test_bad_registers();
	test_bad_pins();
	test_masked();
	test_edge();
	test_level();
	test_unmask_pending();
	test_msi_format();
	test_delivery_failure();
	test_routes();
	test_eoi_hooks();
	test_threads();

	/* Routing updates on the fake descriptor all succeeded. */
	CHECK_EQ(nr_logs, 0);
	ioapic_destroy(io);
	vmm_routes_destroy(&vm);
	viommu_destroy(vm.iommu);
	close(fake_vm_fd);
	printf("test_ioapic: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
