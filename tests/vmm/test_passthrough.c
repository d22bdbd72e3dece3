/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of an assigned device's BAR memory slots and interrupt wiring
 * (vmm/passthrough.c), without KVM and without a host device.
 *
 * vmm/passthrough.c is compiled into this program with the VFIO glue on the
 * fake kernel of its own tests (tests/vfio/fake_kernel.c: a device with a
 * 64 KiB BAR0 whose MSI-X table page at 0x2000 is left out of its sparse
 * mmap areas, INTx, MSI and 8 MSI-X vectors). What it calls in the rest of
 * the VMM is faked here and recorded:
 *  - KVM memory slots (vmm_memslot_add/del): which guest ranges are mapped,
 *    and whether the device still decoded memory when a slot went;
 *  - KVM irqfds (vmm_irqfd) and the GSI routing table (vmm_route_*);
 *  - the I/O thread: its handlers are called by the test when an eventfd
 *    that is not a KVM irqfd is signalled ("the device interrupts");
 *  - the IOAPIC's EOI hooks: called by the test as a guest's EOI would.
 * A real viommu instance does the interrupt remapping (off, then VT-d
 * format with an IRTE table in its guest memory), so routes are what
 * viommu_ir_lookup makes of the guest's messages, and the IR notifier is the
 * library's.
 */
#define _GNU_SOURCE
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <viommu/vfio.h>

#include "fake_kernel.h"
#include "iothread.h"
#include "vfio_test.h"

/* The unit under test, compiled in here so that the BAR splitting
 * (bar_pieces) can be checked on layouts the fake kernel does not offer. */
#include "passthrough.c"

#define BDF "0000:01:00.0"
#define RAM_SIZE (1u << 20)
#define IRT_GPA 0x10000u /* the interrupt remapping table in guest RAM */

static struct fake_kernel fk;
static struct vt_log logbuf;
static uint8_t *ram;

/* ------------------------------------------------------------------------ */
/* Fakes of the rest of the VMM                                             */

static unsigned nr_logs;
static char last_log[512];

void vmm_log(struct vmm *vm, const char *fmt, ...)
{
	(void)vm;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_log, sizeof(last_log), fmt, ap);
	va_end(ap);
	nr_logs++;
	if (logbuf.print)
		fprintf(stderr, "vmm: %s\n", last_log);
}

unsigned vmm_ram_regions(struct vmm *vm, struct viommu_mem_region regs[2])
{
	(void)vm;
	regs[0] = (struct viommu_mem_region){ .gpa = 0, .size = RAM_SIZE, .host = ram };
	return 1;
}

#define MAX_SLOTS 64
static struct slot {
	int used;
	uint64_t gpa, size;
	void *host;
} slots[MAX_SLOTS];
static int slot_add_error;      /* the next vmm_memslot_add fails with it */
static unsigned slot_dels_while_decoding, slot_dels;

int vmm_memslot_add(struct vmm *vm, uint64_t gpa, uint64_t size, void *host, unsigned *slot)
{
	(void)vm;
	if (slot_add_error) {
		int e = slot_add_error;
		slot_add_error = 0;
		return e;
	}
	if (!size || ((gpa | size | (uintptr_t)host) & 0xfff))
		return -EINVAL;
	for (unsigned s = 0; s < MAX_SLOTS; s++)
		if (slots[s].used && gpa < slots[s].gpa + slots[s].size && slots[s].gpa < gpa + size)
			return -EEXIST;
	for (unsigned s = VMM_MEMSLOT_FIRST; s < MAX_SLOTS; s++) {
		if (!slots[s].used) {
			slots[s] = (struct slot){ 1, gpa, size, host };
			*slot = s;
			return 0;
		}
	}
	return -ENOSPC;
}

int vmm_memslot_del(struct vmm *vm, unsigned slot)
{
	(void)vm;
	if (slot >= MAX_SLOTS || !slots[slot].used)
		return -EINVAL;
	slots[slot].used = 0;
	slot_dels++;
	/* Memory decoding still on at the device: VFIO has not revoked the
	 * mmap under the slot yet. */
	if (fk.devs[0].config[4] & 0x2)
		slot_dels_while_decoding++;
	return 0;
}

/* The slot mapping gpa, or NULL. */
static struct slot *slot_at(uint64_t gpa)
{
	for (unsigned s = 0; s < MAX_SLOTS; s++)
		if (slots[s].used && gpa >= slots[s].gpa && gpa < slots[s].gpa + slots[s].size)
			return &slots[s];
	return NULL;
}

static unsigned nr_slots(void)
{
	unsigned n = 0;
	for (unsigned s = 0; s < MAX_SLOTS; s++)
		n += slots[s].used;
	return n;
}

#define MAX_FDS 1024
static int irqfd_gsi[MAX_FDS];  /* fd -> GSI it is an irqfd on, -1 */
static unsigned irqfd_assigns, irqfd_deassigns;
static int irqfd_error;

int vmm_irqfd(struct vmm *vm, int fd, unsigned gsi, int resample_fd, int assign)
{
	(void)vm;
	if (fd < 0 || fd >= MAX_FDS || resample_fd != -1)
		return -EINVAL;
	if (assign) {
		if (irqfd_error)
			return irqfd_error;
		if (irqfd_gsi[fd] >= 0)
			return -EBUSY; /* KVM refuses the same eventfd twice */
		irqfd_gsi[fd] = (int)gsi;
		irqfd_assigns++;
	} else {
		if (irqfd_gsi[fd] != (int)gsi)
			return -ENOENT;
		irqfd_gsi[fd] = -1;
		irqfd_deassigns++;
	}
	return 0;
}

static struct route {
	int used, valid;
	uint64_t addr;
	uint32_t data;
} routes[VMM_MAX_GSI];
static unsigned route_commits;

int vmm_route_alloc(struct vmm *vm, unsigned *gsi)
{
	(void)vm;
	for (unsigned g = VMM_IOAPIC_PINS; g < VMM_MAX_GSI; g++) {
		if (!routes[g].used) {
			routes[g] = (struct route){ .used = 1 };
			*gsi = g;
			return 0;
		}
	}
	return -ENOSPC;
}

void vmm_route_free(struct vmm *vm, unsigned gsi)
{
	(void)vm;
	if (gsi < VMM_MAX_GSI)
		routes[gsi] = (struct route){ 0 };
}

int vmm_route_set(struct vmm *vm, const struct vmm_route_update *u, unsigned n)
{
	(void)vm;
	for (unsigned i = 0; i < n; i++) {
		if (u[i].gsi >= VMM_MAX_GSI || !routes[u[i].gsi].used)
			continue;
		struct route *r = &routes[u[i].gsi];
		r->valid = u[i].valid;
		r->addr = u[i].valid ? u[i].addr : 0;
		r->data = u[i].valid ? u[i].data : 0;
	}
	route_commits++;
	return 0;
}

static unsigned nr_routes(void)
{
	unsigned n = 0;
	for (unsigned g = 0; g < VMM_MAX_GSI; g++)
		n += routes[g].used;
	return n;
}

static struct handler {
	iothread_fn fn;
	void *ctx;
} handlers[MAX_FDS];

int iothread_add(struct iothread *t, int fd, iothread_fn fn, void *ctx)
{
	(void)t;
	if (fd < 0 || fd >= MAX_FDS || handlers[fd].fn)
		return -EEXIST;
	handlers[fd] = (struct handler){ fn, ctx };
	return 0;
}

int iothread_del(struct iothread *t, int fd)
{
	(void)t;
	if (fd < 0 || fd >= MAX_FDS || !handlers[fd].fn)
		return -ENOENT;
	handlers[fd] = (struct handler){ 0 };
	return 0;
}

int iothread_drain(int fd)
{
	uint64_t v;
	return read(fd, &v, sizeof(v)) == sizeof(v) && v;
}

static unsigned kvm_injected[VMM_MAX_GSI]; /* by "KVM", through an irqfd */

/* The device signals eventfd fd: KVM takes it when it is an irqfd, else
 * the I/O thread's handler runs. */
static void signal_fd(int fd)
{
	uint64_t one = 1;
	CHECK(fd >= 0 && fd < MAX_FDS);
	if (fd < 0 || fd >= MAX_FDS)
		return;
	if (irqfd_gsi[fd] >= 0) {
		CHECK(routes[irqfd_gsi[fd]].valid); /* never an irqfd without a route */
		kvm_injected[irqfd_gsi[fd]]++;
		return;
	}
	CHECK_EQ(write(fd, &one, sizeof(one)), sizeof(one));
	CHECK(handlers[fd].fn != NULL);
	if (handlers[fd].fn)
		handlers[fd].fn(handlers[fd].ctx, fd);
}

static struct {
	ioapic_eoi_fn fn;
	void *ctx;
	unsigned pin;
} eoi_hook;
static unsigned eoi_hooks;

int ioapic_eoi_hook_add(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx)
{
	(void)io;
	eoi_hook.fn = fn;
	eoi_hook.ctx = ctx;
	eoi_hook.pin = pin;
	eoi_hooks++;
	return 0;
}

void ioapic_eoi_hook_del(struct ioapic *io, unsigned pin, ioapic_eoi_fn fn, void *ctx)
{
	(void)io;
	if (eoi_hooks && fn == eoi_hook.fn && ctx == eoi_hook.ctx && pin == eoi_hook.pin)
		eoi_hooks--;
}

/* The bus's callbacks: MSIs through remapping (as pci.c does), INTx level. */
static viommu *iommu;
static unsigned msis_sent, msis_refused, intx_changes;
static int intx_level;
static uint64_t last_msi_addr;
static uint32_t last_msi_data;
static unsigned faults;

static int host_msi(void *ctx, struct pcidev *dev, uint64_t addr, uint32_t data)
{
	(void)ctx;
	int r = viommu_ir_deliver(iommu, dev->rid, addr, data);
	if (r)
		msis_refused++;
	return r;
}

static void host_intx(void *ctx, struct pcidev *dev, int level)
{
	(void)ctx;
	(void)dev;
	intx_level = level;
	intx_changes++;
}

static void host_log(void *ctx, struct pcidev *dev, const char *msg)
{
	(void)ctx;
	(void)dev;
	snprintf(last_log, sizeof(last_log), "%s", msg);
	nr_logs++;
	if (logbuf.print)
		fprintf(stderr, "pcidev: %s\n", msg);
}

static int iommu_msi(void *ctx, uint64_t addr, uint32_t data, struct viommu_rid rid)
{
	(void)ctx;
	(void)rid;
	msis_sent++;
	last_msi_addr = addr;
	last_msi_data = data;
	return 0;
}

static void iommu_fault(void *ctx, const struct viommu_fault_record *rec)
{
	(void)ctx;
	(void)rec;
	faults++;
}

/* ------------------------------------------------------------------------ */
/* The device                                                               */

/* Config space of the fake device: BAR0 32-bit memory, INTA, MSI (one
 * vector, 64-bit) at 0x40, MSI-X (8 vectors, table at BAR0 0x2000, PBA at
 * 0x2800: the page the fake's sparse areas leave out) at 0x50. */
static void device_config(struct fk_dev *d)
{
	uint8_t *c = d->config;
	c[0x06] = 0x10; /* status: capability list */
	c[0x0a] = 0xff;
	c[0x0b] = 0x00; /* class 00ff00 */
	c[0x10] = 0x00; /* BAR0: 32-bit memory */
	c[0x34] = 0x40;
	c[0x3d] = 1;    /* INTA */
	c[0x40] = 0x05;
	c[0x41] = 0x50;
	c[0x42] = 0x80; /* 64-bit, 1 vector */
	c[0x50] = 0x11;
	c[0x51] = 0x00;
	c[0x52] = 7;    /* 8 vectors */
	c[0x54] = 0x00;
	c[0x55] = 0x20; /* table: BAR0 + 0x2000 */
	c[0x58] = 0x00;
	c[0x59] = 0x28; /* PBA: BAR0 + 0x2800 */
}

static struct vmm vm;
static int dummy_io, dummy_ioapic;

static void cfg_w(struct pcidev *d, unsigned off, unsigned len, uint32_t v)
{
	pcidev_config_write(d, off, len, v);
}

static uint32_t cfg_r32(struct pcidev *d, unsigned off)
{
	return pcidev_config_read(d, off, 4);
}

static void msix_entry(struct pcidev *d, unsigned vec, uint64_t addr, uint32_t data, uint32_t ctrl)
{
	pcidev_bar_write(d, 0, 0x2000 + vec * 16 + 0, (uint32_t)addr, 4);
	pcidev_bar_write(d, 0, 0x2000 + vec * 16 + 4, addr >> 32, 4);
	pcidev_bar_write(d, 0, 0x2000 + vec * 16 + 8, data, 4);
	pcidev_bar_write(d, 0, 0x2000 + vec * 16 + 12, ctrl, 4);
}

/* The GSI a vector's eventfd is an irqfd on (-1: none). */
static int vec_irqfd_gsi(unsigned vec)
{
	int fd = fk.devs[0].msix_fds[vec];
	return fd >= 0 && fd < MAX_FDS ? irqfd_gsi[fd] : -1;
}

/* A remappable MSI naming IRTE `index` (VT-d 5.1.2.2). */
static uint64_t remappable(unsigned index)
{
	return 0xfee00000ull | (1u << 4) | ((uint64_t)(index & 0x7fff) << 5);
}

/* IRTE `index`: present, fixed, xAPIC destination `dest`, `vector`, no
 * source check (VT-d 9.10). */
static void irte_set(unsigned index, uint8_t vector, uint8_t dest, int present)
{
	uint64_t lo = (present ? 1ull : 0) | (uint64_t)vector << 16 | (uint64_t)dest << 40, hi = 0;
	memcpy(ram + IRT_GPA + index * 16, &lo, 8);
	memcpy(ram + IRT_GPA + index * 16 + 8, &hi, 8);
}

/* One layout: region flags and sparse areas, the MSI-X table and PBA
 * (vectors 0: none), and the pieces expected ({0, 0} ends the list). */
static void pieces_case(const char *name, uint32_t flags, uint64_t bytes, const uint64_t (*sparse)[2], unsigned nr_sparse,
			unsigned vectors, uint64_t table, uint64_t pba, const uint64_t (*want)[2])
{
	struct passthrough pt;
	struct pcidev dev;
	struct pt_piece got[PT_MAX_PIECES];
	memset(&pt, 0, sizeof(pt));
	memset(&dev, 0, sizeof(dev));
	pt.pci = &dev;
	pt.bar[2] = (struct viommu_vfio_region_info){ .size = sizeof(pt.bar[2]), .index = 2, .flags = flags,
						       .bytes = bytes, .nr_sparse = nr_sparse };
	for (unsigned k = 0; k < nr_sparse; k++) {
		pt.bar[2].sparse[k].offset = sparse[k][0];
		pt.bar[2].sparse[k].size = sparse[k][1];
	}
	if (vectors) {
		dev.msix_cap = 0x50;
		dev.msix_bar = 2;
		dev.msix_nr = vectors;
		dev.msix_table_off = table;
		dev.msix_pba_off = pba;
	}
	vt_set_case("BAR pieces: %s", name);
	unsigned n = bar_pieces(&pt, 2, got), w = 0;
	while (want[w][1])
		w++;
	CHECK_EQ(n, w);
	for (unsigned k = 0; k < n && k < w; k++) {
		CHECK_EQ(got[k].off, want[k][0]);
		CHECK_EQ(got[k].len, want[k][1]);
	}
	/* Another BAR of the same device: no MSI-X holes there. */
	if (vectors) {
		dev.msix_bar = 0;
		n = bar_pieces(&pt, 2, got);
		CHECK(n >= 1);
	}
}

static void test_pieces(void)
{
	const uint32_t MM = VIOMMU_VFIO_REGION_F_MMAP, SP = VIOMMU_VFIO_REGION_F_SPARSE;
	static const uint64_t none[][2] = { { 0, 0 } };
	static const uint64_t whole[][2] = { { 0, 0x100000 }, { 0, 0 } };
	pieces_case("whole region", MM, 0x100000, NULL, 0, 0, 0, 0, whole);
	pieces_case("not mmappable", VIOMMU_VFIO_REGION_F_READ, 0x100000, NULL, 0, 0, 0, 0, none);
	pieces_case("no region", MM, 0, NULL, 0, 0, 0, 0, none);
	pieces_case("smaller than a page", MM, 0x800, NULL, 0, 0, 0, 0, none);
	static const uint64_t two_holes[][2] = { { 0, 0x2000 }, { 0x3000, 0x1000 }, { 0x5000, 0xb000 }, { 0, 0 } };
	pieces_case("table and PBA pages apart", MM, 0x10000, NULL, 0, 16, 0x2000, 0x4000, two_holes);
	static const uint64_t one_hole[][2] = { { 0, 0x2000 }, { 0x3000, 0xd000 }, { 0, 0 } };
	pieces_case("table and PBA in one page", MM, 0x10000, NULL, 0, 16, 0x2000, 0x2800, one_hole);
	pieces_case("PBA before the table", MM, 0x10000, NULL, 0, 16, 0x2800, 0x2000, one_hole);
	static const uint64_t at_ends[][2] = { { 0x1000, 0xe000 }, { 0, 0 } };
	pieces_case("table first, PBA last", MM, 0x10000, NULL, 0, 8, 0, 0xf000, at_ends);
	/* 300 vectors: a table of 4800 bytes over two pages */
	static const uint64_t big_table[][2] = { { 0, 0x1000 }, { 0x4000, 0xc000 }, { 0, 0 } };
	pieces_case("table over two pages", MM, 0x10000, NULL, 0, 300, 0x1800, 0x3000, big_table);
	static const uint64_t sp[][2] = { { 0, 0x2000 }, { 0x3000, 0xd000 } };
	pieces_case("sparse areas", MM | SP, 0x10000, sp, 2, 8, 0x2000, 0x2800, one_hole);
	/* Unaligned areas shrink to whole pages; an area past the region or
	 * wrapping is ignored. */
	static const uint64_t odd[][2] = { { 0x100, 0x2000 }, { 0x4000, 0x800 }, { 0x8000, 0x10000 }, { ~0ull, 2 } };
	static const uint64_t odd_want[][2] = { { 0x1000, 0x1000 }, { 0, 0 } };
	pieces_case("unaligned sparse areas", MM | SP, 0x10000, odd, 4, 0, 0, 0, odd_want);
	static const uint64_t none_sparse[][2] = { { 0, 0 } };
	pieces_case("sparse without areas", MM | SP, 0x10000, none_sparse, 0, 0, 0, 0, none);
	/* As many areas as VFIO may list, two of them cut by the MSI-X holes:
	 * the most pieces a BAR can have (PT_MAX_PIECES). */
	uint64_t many[VIOMMU_VFIO_MAX_SPARSE][2], many_want[PT_MAX_PIECES + 1][2];
	unsigned nw = 0;
	for (unsigned k = 0; k < VIOMMU_VFIO_MAX_SPARSE; k++) {
		many[k][0] = k * 0x4000;
		many[k][1] = 0x3000;
		if (k == 3 || k == 9) { /* table at 0xd000, PBA at 0x25000 */
			many_want[nw][0] = k * 0x4000;
			many_want[nw++][1] = 0x1000;
			many_want[nw][0] = k * 0x4000 + 0x2000;
			many_want[nw++][1] = 0x1000;
		} else {
			many_want[nw][0] = k * 0x4000;
			many_want[nw++][1] = 0x3000;
		}
	}
	many_want[nw][0] = many_want[nw][1] = 0;
	CHECK_EQ(nw, PT_MAX_PIECES);
	pieces_case("sixteen sparse areas, two cut", MM | SP, 0x40000, (const uint64_t(*)[2])many,
		    VIOMMU_VFIO_MAX_SPARSE, 8, 0xd000, 0x25000, (const uint64_t(*)[2])many_want);
}

static void test_passthrough(viommu_vfio *v, viommu_vfio_container *c)
{
	struct pcidev *dev = NULL;
	struct viommu_rid rid = { .segment = 0, .bus = 0, .devfn = 3 << 3 };
	struct pcidev_host host = { .msi = host_msi, .intx = host_intx, .log = host_log };

	vt_set_case("create");
	int r = passthrough_create(&vm, v, c, BDF, rid, NULL, &host, &dev);
	CHECK_EQ(r, 0);
	if (r)
		return;
	CHECK_EQ(dev->bars[0].type, PCIDEV_BAR_MEM32);
	CHECK_EQ(dev->bars[0].size, FK_BAR0_SIZE);
	CHECK(dev->msi_cap && dev->msix_cap);
	CHECK_EQ(dev->msix_nr, 8);
	CHECK_EQ(eoi_hooks, 1);
	CHECK_EQ(eoi_hook.pin, VMM_PCI_INTX_GSI(3, 0));
	CHECK_EQ(nr_slots(), 0);

	/* --- BARs as memory slots ------------------------------------------ */
	vt_set_case("BAR0 placed, decoding off: no slot");
	cfg_w(dev, 0x10, 4, 0xc0000000);
	CHECK_EQ(nr_slots(), 0);
	CHECK_EQ(fk.mmaps_now, 0);
	/* The first config write wired INTx (neither MSI nor MSI-X is on). */
	CHECK(fk.devs[0].intx_fd >= 0);
	CHECK(fk.devs[0].intx_resample_fd >= 0);

	vt_set_case("decoding on: BAR0 split around the MSI-X page");
	cfg_w(dev, 0x04, 2, 0x0002);
	CHECK_EQ(fk.devs[0].config[4] & 0x2, 0x2); /* forwarded */
	CHECK_EQ(nr_slots(), 2);
	CHECK_EQ(fk.mmaps_now, 2);
	struct slot *s0 = slot_at(0xc0000000), *s1 = slot_at(0xc0003000);
	CHECK(s0 && s0->gpa == 0xc0000000 && s0->size == 0x2000);
	CHECK(s1 && s1->gpa == 0xc0003000 && s1->size == FK_BAR0_SIZE - 0x3000);
	CHECK(slot_at(0xc0002000) == NULL); /* the table and PBA stay trapped */

	vt_set_case("trapped accesses: only what has no slot, the MSI-X table not at all");
	fk.devs[0].bar0[0x2f00] = 0x5a;
	CHECK_EQ(pcidev_bar_read(dev, 0, 0x2f00, 1), 0x5a);
	pcidev_bar_write(dev, 0, 0x2f04, 0xa5, 1);
	CHECK_EQ(fk.devs[0].bar0[0x2f04], 0xa5);
	CHECK_EQ(pcidev_bar_read(dev, 0, 0x200c, 4), 1); /* MSI-X vector 0 control: masked */

	vt_set_case("the BAR moves: the old slots go first");
	unsigned dels = slot_dels;
	cfg_w(dev, 0x10, 4, 0xc0100000);
	CHECK_EQ(slot_dels, dels + 2);
	CHECK_EQ(nr_slots(), 2);
	CHECK(slot_at(0xc0000000) == NULL);
	CHECK(slot_at(0xc0100000) != NULL && slot_at(0xc0103000) != NULL);
	CHECK_EQ(fk.mmaps_now, 2);

	vt_set_case("decoding off: slots go before the device stops decoding");
	dels = slot_dels;
	slot_dels_while_decoding = 0;
	cfg_w(dev, 0x04, 2, 0x0000);
	CHECK_EQ(slot_dels, dels + 2);
	CHECK_EQ(slot_dels_while_decoding, 2);
	CHECK_EQ(nr_slots(), 0);
	CHECK_EQ(fk.mmaps_now, 0);
	CHECK_EQ(fk.devs[0].config[4] & 0x2, 0);

	vt_set_case("a slot KVM refuses stays trapped, nothing leaks");
	slot_add_error = -EEXIST;
	unsigned logs = nr_logs;
	cfg_w(dev, 0x04, 2, 0x0002);
	CHECK_EQ(nr_slots(), 1);
	CHECK_EQ(fk.mmaps_now, 1);
	CHECK(nr_logs > logs);
	CHECK(strstr(last_log, "stays trapped") != NULL);
	cfg_w(dev, 0x04, 2, 0x0000);
	CHECK_EQ(fk.mmaps_now, 0);
	/* Each kernel call of turning decoding on fails in turn (forwarding
	 * the command register, each mmap): never a slot over memory that is
	 * not mapped, or while the device does not decode; all gone after. */
	for (long k = 1; k <= 8; k++) {
		vt_set_case("turning decoding on, kernel call %ld fails", k);
		fk.fail_at = fk.calls + k;
		cfg_w(dev, 0x04, 2, 0x0002);
		fk.fail_at = 0;
		CHECK_EQ(fk.mmaps_now, (int)nr_slots());
		CHECK(nr_slots() == 0 || (fk.devs[0].config[4] & 0x2));
		cfg_w(dev, 0x04, 2, 0x0000);
		CHECK_EQ(nr_slots(), 0);
		CHECK_EQ(fk.mmaps_now, 0);
	}
	vt_set_case("decoding on again");
	cfg_w(dev, 0x04, 2, 0x0006); /* memory decode and bus mastering for what follows */
	CHECK_EQ(nr_slots(), 2);

	/* --- INTx ----------------------------------------------------------- */
	vt_set_case("INTx: trigger asserts the pin, EOI deasserts and unmasks");
	int trig = fk.devs[0].intx_fd, resample = fk.devs[0].intx_resample_fd;
	CHECK(trig >= 0 && resample >= 0);
	unsigned changes = intx_changes;
	signal_fd(trig);
	CHECK_EQ(intx_level, 1);
	CHECK_EQ(intx_changes, changes + 1);
	CHECK(iothread_drain(resample) == 0); /* not unmasked before the EOI */
	eoi_hook.fn(eoi_hook.ctx, eoi_hook.pin);
	CHECK_EQ(intx_level, 0);
	CHECK(iothread_drain(resample) == 1); /* VFIO unmasks */
	/* An EOI of the pin with nothing of ours pending (a shared pin). */
	eoi_hook.fn(eoi_hook.ctx, eoi_hook.pin);
	CHECK(iothread_drain(resample) == 0);
	CHECK_EQ(intx_changes, changes + 2);
	/* Interrupt Status reads as the device has it, whatever the line. */
	fk.devs[0].config[6] |= 0x08;
	CHECK_EQ(pcidev_config_read(dev, 0x06, 2) & 0x08, 0x08);
	CHECK_EQ(pcidev_config_read(dev, 0x04, 4) & 0x80000, 0x80000);
	CHECK_EQ(pcidev_config_read(dev, 0x06, 1) & 0x18, 0x18); /* with the capability list bit */
	fk.devs[0].config[6] &= (uint8_t)~0x08;
	signal_fd(trig); /* asserted by us, not by the device (any more) */
	CHECK_EQ(intx_level, 1);
	CHECK_EQ(pcidev_config_read(dev, 0x06, 2) & 0x08, 0);
	eoi_hook.fn(eoi_hook.ctx, eoi_hook.pin);
	CHECK_EQ(intx_level, 0);
	CHECK(iothread_drain(resample) == 1);

	/* --- MSI-X as irqfds ------------------------------------------------ */
	vt_set_case("MSI-X on: INTx unwired, vectors wired, masked ones without irqfd");
	cfg_w(dev, dev->msix_cap + 2, 2, 0x8000);
	CHECK_EQ(fk.devs[0].intx_fd, -1);
	for (unsigned i = 0; i < 8; i++) {
		CHECK(fk.devs[0].msix_fds[i] >= 0);
		CHECK_EQ(vec_irqfd_gsi(i), -1);
	}
	CHECK_EQ(nr_routes(), 8);

	vt_set_case("an unmasked vector becomes an irqfd routed to its message");
	msix_entry(dev, 2, 0xfee01000, 0x4031, 0);
	int g2 = vec_irqfd_gsi(2);
	CHECK(g2 >= (int)VMM_IOAPIC_PINS);
	if (g2 >= 0) {
		CHECK(routes[g2].valid);
		CHECK_EQ(routes[g2].addr, 0xfee01000);
		CHECK_EQ(routes[g2].data, 0x4031);
	}
	unsigned sent = msis_sent;
	signal_fd(fk.devs[0].msix_fds[2]);
	if (g2 >= 0)
		CHECK_EQ(kvm_injected[g2], 1);
	CHECK_EQ(msis_sent, sent); /* not through userspace */

	vt_set_case("the guest rewrites the message: the route follows");
	pcidev_bar_write(dev, 0, 0x2000 + 2 * 16 + 8, 0x4035, 4);
	CHECK_EQ(vec_irqfd_gsi(2), g2);
	if (g2 >= 0)
		CHECK_EQ(routes[g2].data, 0x4035);

	vt_set_case("a masked vector: the I/O thread sets its pending bit");
	msix_entry(dev, 3, 0xfee00000, 0x4040, 1);
	CHECK_EQ(vec_irqfd_gsi(3), -1);
	signal_fd(fk.devs[0].msix_fds[3]);
	CHECK_EQ(msis_sent, sent);
	CHECK_EQ(pcidev_bar_read(dev, 0, 0x2800, 8), 1u << 3);
	/* Unmasked: the pending message goes (framework), then an irqfd. */
	pcidev_bar_write(dev, 0, 0x2000 + 3 * 16 + 12, 0, 4);
	CHECK_EQ(msis_sent, sent + 1);
	CHECK_EQ(last_msi_data, 0x4040);
	CHECK_EQ(pcidev_bar_read(dev, 0, 0x2800, 8), 0);
	CHECK(vec_irqfd_gsi(3) >= 0);
	/* Masked again: irqfd gone before the route. */
	pcidev_bar_write(dev, 0, 0x2000 + 3 * 16 + 12, 1, 4);
	CHECK_EQ(vec_irqfd_gsi(3), -1);
	/* The function mask takes every irqfd away. */
	cfg_w(dev, dev->msix_cap + 3, 1, 0xc0);
	CHECK_EQ(vec_irqfd_gsi(2), -1);
	signal_fd(fk.devs[0].msix_fds[2]);
	CHECK_EQ(pcidev_bar_read(dev, 0, 0x2800, 8), 1u << 2);
	cfg_w(dev, dev->msix_cap + 3, 1, 0x80);
	CHECK_EQ(msis_sent, sent + 2);
	CHECK_EQ(vec_irqfd_gsi(2), g2);
	/* Bus mastering off: the device could not send; no irqfd either. */
	cfg_w(dev, 0x04, 2, 0x0002);
	CHECK_EQ(vec_irqfd_gsi(2), -1);
	cfg_w(dev, 0x04, 2, 0x0006);
	CHECK_EQ(vec_irqfd_gsi(2), g2);

	vt_set_case("KVM_IRQFD refused: the I/O thread delivers");
	irqfd_error = -ENOSYS;
	msix_entry(dev, 4, 0xfee00000, 0x4044, 0);
	irqfd_error = 0;
	CHECK_EQ(vec_irqfd_gsi(4), -1);
	sent = msis_sent;
	signal_fd(fk.devs[0].msix_fds[4]);
	CHECK_EQ(msis_sent, sent + 1);
	CHECK_EQ(last_msi_data, 0x4044);
	msix_entry(dev, 4, 0xfee00000, 0x4044, 1);

	/* --- interrupt remapping -------------------------------------------- */
	vt_set_case("remapping on: an entry not present gets no route, its fault is recorded");
	struct viommu_ir_config irc = {
		.size = sizeof(irc), .format = VIOMMU_IR_VTD, .table = IRT_GPA, .entries = 256,
	};
	irte_set(7, 0x51, 2, 0);
	msix_entry(dev, 5, remappable(7), 0, 0);
	CHECK_EQ(viommu_ir_configure(iommu, &irc), 0); /* the notifier recomputes every route */
	CHECK_EQ(vec_irqfd_gsi(5), -1);
	/* vector 2's compatibility-format message is blocked now too */
	CHECK_EQ(vec_irqfd_gsi(2), -1);
	unsigned f0 = faults, refused = msis_refused;
	signal_fd(fk.devs[0].msix_fds[5]);
	CHECK_EQ(faults, f0 + 1);
	CHECK_EQ(msis_refused, refused + 1);

	vt_set_case("the guest fills the entry and invalidates: the route follows (IR notifier)");
	irte_set(7, 0x51, 2, 1);
	viommu_ir_invalidate(iommu, 7, 1);
	int g5 = vec_irqfd_gsi(5);
	CHECK(g5 >= 0);
	if (g5 >= 0) {
		CHECK(routes[g5].valid);
		CHECK_EQ(routes[g5].addr, 0xfee02000);    /* destination 2, physical */
		CHECK_EQ(routes[g5].data & 0xff, 0x51);   /* vector from the IRTE */
	}
	sent = msis_sent;
	signal_fd(fk.devs[0].msix_fds[5]);
	if (g5 >= 0)
		CHECK_EQ(kvm_injected[g5], 1);
	CHECK_EQ(msis_sent, sent);
	vt_set_case("the entry is retargeted");
	irte_set(7, 0x62, 3, 1);
	viommu_ir_invalidate(iommu, 0, 0);
	CHECK_EQ(vec_irqfd_gsi(5), g5);
	if (g5 >= 0) {
		CHECK_EQ(routes[g5].addr, 0xfee03000);
		CHECK_EQ(routes[g5].data & 0xff, 0x62);
	}
	vt_set_case("the entry is cleared: the irqfd goes, the fault is recorded again");
	irte_set(7, 0x62, 3, 0);
	viommu_ir_invalidate(iommu, 7, 1);
	CHECK_EQ(vec_irqfd_gsi(5), -1);
	f0 = faults;
	signal_fd(fk.devs[0].msix_fds[5]);
	CHECK_EQ(faults, f0 + 1);
	struct viommu_ir_config off = { .size = sizeof(off), .format = VIOMMU_IR_NONE };
	CHECK_EQ(viommu_ir_configure(iommu, &off), 0);
	CHECK_EQ(vec_irqfd_gsi(2), g2);

	/* --- MSI ------------------------------------------------------------ */
	vt_set_case("MSI-X off, MSI on: one vector, the routes of MSI-X freed");
	cfg_w(dev, dev->msix_cap + 2, 2, 0);
	unsigned msi = dev->msi_cap;
	cfg_w(dev, msi + 4, 4, 0xfee00000);
	cfg_w(dev, msi + 8, 4, 0);
	cfg_w(dev, msi + 12, 2, 0x4077);
	cfg_w(dev, msi + 2, 2, 1);
	CHECK(fk.devs[0].msi_fd >= 0);
	for (unsigned i = 0; i < 8; i++)
		CHECK_EQ(fk.devs[0].msix_fds[i], -1);
	CHECK_EQ(nr_routes(), 1);
	int msi_fd = fk.devs[0].msi_fd;
	int gm = msi_fd >= 0 && msi_fd < MAX_FDS ? irqfd_gsi[msi_fd] : -1;
	CHECK(gm >= 0);
	if (gm >= 0)
		CHECK_EQ(routes[gm].data, 0x4077);
	cfg_w(dev, msi + 0x10, 4, 1); /* per-vector mask */
	CHECK_EQ(irqfd_gsi[msi_fd], -1);
	signal_fd(msi_fd);
	CHECK_EQ(cfg_r32(dev, msi + 0x14), 1); /* pending */
	cfg_w(dev, msi + 0x10, 4, 0);
	CHECK_EQ(irqfd_gsi[msi_fd], gm);
	CHECK_EQ(last_msi_data, 0x4077);

	vt_set_case("teardown");
	logs = nr_logs;
	pcidev_destroy(dev);
	CHECK_EQ(nr_slots(), 0);
	CHECK_EQ(fk.mmaps_now, 0);
	CHECK_EQ(nr_routes(), 0);
	CHECK_EQ(irqfd_assigns, irqfd_deassigns);
	CHECK_EQ(eoi_hooks, 0);
	for (int fd = 0; fd < MAX_FDS; fd++)
		CHECK(handlers[fd].fn == NULL);
	CHECK_EQ(fk_open_fds(&fk), 0);
	CHECK_EQ(fk.reset_missing, 0);
	/* --stats: the counters of this run */
	CHECK(strstr(last_log, "bar_traps=2 ") != NULL);
	CHECK(strstr(last_log, "intx=2 intx_eoi=2") != NULL);
	printf("%s\n", last_log);
}

int main(void)
{
	logbuf.print = getenv("VIOMMU_TEST_VERBOSE") != NULL;
	for (int i = 0; i < MAX_FDS; i++)
		irqfd_gsi[i] = -1;
	const char *root = vt_sysfs_create();
	if (!root) {
		fprintf(stderr, "cannot make a temporary sysfs tree\n");
		return 1;
	}
	struct vt_pci_dev sd = { .bdf = BDF, .vendor = 0x1234, .device = 0x11e8, .class_code = 0x00ff00,
				 .group = 5, .driver = "vfio-pci", .vfio_dev = -1 };
	CHECK_EQ(vt_sysfs_add(root, &sd), 0);
	fk_init(&fk);
	fk_add_dev(&fk, BDF, 5, -1);
	device_config(&fk.devs[0]);

	ram = calloc(1, RAM_SIZE);
	struct viommu_mem_region reg = { .gpa = 0, .size = RAM_SIZE, .host = ram };
	struct viommu_config cfg = {
		.size = sizeof(cfg),
		.mem = { .size = sizeof(cfg.mem), .regions = &reg, .nr_regions = 1 },
		.msi = iommu_msi,
		.fault = iommu_fault,
	};
	CHECK(ram != NULL);
	CHECK_EQ(viommu_create(&cfg, NULL, &iommu), 0);
	vm.iommu = iommu;
	vm.io = (struct iothread *)(void *)&dummy_io;
	vm.ioapic = (struct ioapic *)(void *)&dummy_ioapic;
	vm.opts.stats = 1;

	struct viommu_vfio_config vc = { .size = sizeof(vc), .sysfs_root = root, .backend = VIOMMU_VFIO_BACKEND_TYPE1,
					 .kernel = &fk.ops, .log = vt_log_fn, .log_ctx = &logbuf };
	viommu_vfio *v = NULL;
	viommu_vfio_container *c = NULL;
	CHECK_EQ(viommu_vfio_create(&vc, &v), 0);
	if (v)
		CHECK_EQ(viommu_vfio_container_create(v, &c), 0);
	test_pieces();
	if (v && c && iommu && ram)
		test_passthrough(v, c);
	viommu_vfio_container_destroy(c);
	viommu_vfio_destroy(v);
	viommu_destroy(iommu);
	free(ram);
	vt_sysfs_remove(root);
	return vt_done("test_passthrough");
}
