/* SPDX-License-Identifier: MIT */
/*
 * viommu-vmm: command line.
 *
 *   viommu-vmm --kernel FILE [--initrd FILE] [--append STR] [--memory MiB]
 *              [--cpus N] [--disk FILE[,ro][,indirect=on|off][,queues=N][,iommu=off]]...
 *              [--iommu none|virtio|vtd[,OPTS]] [--serial stdio|FILE]
 *              [--edu] [--vfio-pci BDF]... [--stats[=exits]] [--control PATH]
 *
 * Exit status: 0 when the guest powers off, 1 on a VMM error, 2 when the guest
 * resets (a kernel panic with panic=-1 ends this way), 3 when stopped by a
 * signal; the reason is printed on standard error.
 */
#include "vmm.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: viommu-vmm --kernel FILE [options]\n"
		"\n"
		"Boots a Linux bzImage on KVM with every device DMA going through libviommu.\n"
		"\n"
		"  --kernel FILE        Linux bzImage (64-bit boot protocol 2.12 or newer)\n"
		"  --initrd FILE        initial ramdisk\n"
		"  --append STR         kernel command line (e.g. \"console=ttyS0\")\n"
		"  --memory MiB         guest RAM (default 512; at least 64)\n"
		"  --cpus N             vCPUs (default 1, at most %u)\n"
		"  --disk FILE[,ro][,indirect=on|off][,queues=N][,iommu=off]\n"
		"                       a raw disk image as virtio-blk (read-only with ,ro);\n"
		"                       repeatable (at most %u), each disk in the next PCI slot;\n"
		"                       indirect=off: no indirect descriptors (one DMA mapping\n"
		"                       less per request; default off behind --iommu vtd, else on);\n"
		"                       queues=N: request queues, 1..%u (default: one per vCPU,\n"
		"                       so a request completes on the vCPU that made it);\n"
		"                       iommu=off: the disk is behind no virtual IOMMU (left\n"
		"                       out of the DMAR table's scope: its DMA is not translated\n"
		"                       and its interrupts are not remapped)\n"
		"  --iommu none         no IOMMU for the guest (devices DMA through an identity\n"
		"                       domain, still checked against guest memory)\n"
		"  --iommu vtd[,x2apic=on|off][,scalable=on|off][,fault-records=N][,aw-bits=39|48|57]\n"
		"             [,caching-mode=on|off]\n"
		"                       an Intel VT-d IOMMU for the guest (DMA remapping, queued\n"
		"                       invalidation, interrupt remapping in x2APIC or xAPIC mode;\n"
		"                       scalable=on adds scalable mode: PASID tables, first-level,\n"
		"                       second-level, nested and pass-through translation;\n"
		"                       iq-thread=on: register reads from a read-only mirror and\n"
		"                       the invalidation queue served by the I/O thread)\n"
		"  --iommu virtio       a virtio-iommu device for the guest (ACPI VIOT; Linux 5.14 or\n"
		"                       later with CONFIG_VIRTIO_IOMMU; no interrupt remapping)\n"
		"  --serial stdio|FILE  where COM1 goes (default stdio)\n"
		"  --edu                add a DMA test device with QEMU edu's registers\n"
		"  --vfio-pci BDF       assign the host PCI function BDF (bound to vfio-pci) to\n"
		"                       the guest; repeatable (at most %u)\n"
		"  --stats[=exits]      print the IOMMU's counters (key=value) on exit; =exits\n"
		"                       also where the vCPUs' exits to user space went (three\n"
		"                       clock reads per exit)\n"
		"  --control PATH       a control socket (JSON lines; see viommu-ctl): counters,\n"
		"                       the fault stream, fault-injection rules at run time\n"
		"  --help               this text\n"
		"\n"
		"Exit status: 0 guest powered off, 1 VMM error, 2 guest reset or panic, 3 signal.\n",
		VMM_MAX_CPUS, VMM_MAX_DISKS, VIRTIO_BLK_MAX_QUEUES, VMM_MAX_VFIO);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

/* --iommu none | virtio | vtd[,x2apic=on|off][,scalable=on|off][,fault-records=N][,aw-bits=39|48|57]
 *                   [,caching-mode=on|off] */
/* --disk FILE[,ro][,indirect=on|off][,queues=N][,iommu=off|on]: options are taken
 * off the end, so a file name may hold commas. */
static int parse_disk(struct vmm_opts *o, const char *arg)
{
	if (o->nr_disks >= VMM_MAX_DISKS) {
		fprintf(stderr, "viommu-vmm: at most %u --disk options\n", VMM_MAX_DISKS);
		return -1;
	}
	struct vmm_disk *d = &o->disks[o->nr_disks];
	d->indirect = -1;
	char *p = strdup(arg);
	if (!p)
		return -1;
	for (;;) {
		char *c = strrchr(p, ',');
		if (!c)
			break;
		if (!strcmp(c + 1, "ro"))
			d->ro = 1;
		else if (!strcmp(c + 1, "indirect=on"))
			d->indirect = 1;
		else if (!strcmp(c + 1, "indirect=off"))
			d->indirect = 0;
		else if (!strcmp(c + 1, "iommu=off"))
			d->bypass = 1;
		else if (!strcmp(c + 1, "iommu=on"))
			d->bypass = 0;
		else if (!strncmp(c + 1, "queues=", 7)) {
			char *end;
			unsigned long n = strtoul(c + 8, &end, 10);
			if (c[8] < '0' || c[8] > '9' || *end || n < 1 || n > VIRTIO_BLK_MAX_QUEUES) {
				fprintf(stderr, "viommu-vmm: --disk: queues takes 1..%u, not '%s'\n",
					VIRTIO_BLK_MAX_QUEUES, c + 8);
				free(p);
				return -1;
			}
			d->queues = (unsigned)n;
		} else
			break;
		*c = 0;
	}
	if (!*p) {
		fprintf(stderr, "viommu-vmm: --disk needs a file name before its options ('%s')\n", arg);
		free(p);
		return -1;
	}
	d->path = p; /* lives as long as the process */
	o->nr_disks++;
	return 0;
}

static int parse_iommu(struct vmm_opts *o, const char *arg)
{
	o->iommu = arg;
	o->vtd = 0;
	o->virtio_iommu = 0;
	if (!strcmp(arg, "none"))
		return 0;
	if (!strcmp(arg, "virtio")) {
		o->virtio_iommu = 1;
		return 0;
	}
	if (strncmp(arg, "vtd", 3) || (arg[3] && arg[3] != ',')) {
		fprintf(stderr, "viommu-vmm: --iommu takes 'none', 'virtio' or 'vtd[,options]', not '%s'\n", arg);
		return -1;
	}
	o->vtd = 1;
	o->vtd_flags = VIOMMU_VTD_F_X2APIC;
	o->vtd_aw = 48;
	o->vtd_fault_records = 8;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", arg[3] ? arg + 4 : "");
	for (char *save = NULL, *opt = strtok_r(buf, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(opt, '=');
		if (!eq) {
			fprintf(stderr, "viommu-vmm: --iommu vtd: option '%s' needs a value\n", opt);
			return -1;
		}
		*eq = 0;
		const char *val = eq + 1;
		int on = !strcmp(val, "on"), off = !strcmp(val, "off");
		uint64_t n;
		if (!strcmp(opt, "x2apic") && (on || off)) {
			o->vtd_flags = on ? (o->vtd_flags | VIOMMU_VTD_F_X2APIC) : (o->vtd_flags & ~VIOMMU_VTD_F_X2APIC);
		} else if (!strcmp(opt, "caching-mode") && (on || off)) {
			o->vtd_flags = on ? (o->vtd_flags | VIOMMU_VTD_F_CACHING_MODE)
					  : (o->vtd_flags & ~VIOMMU_VTD_F_CACHING_MODE);
		} else if (!strcmp(opt, "scalable") && (on || off)) {
			o->vtd_flags = on ? (o->vtd_flags | VIOMMU_VTD_F_SCALABLE) : (o->vtd_flags & ~VIOMMU_VTD_F_SCALABLE);
		} else if (!strcmp(opt, "fault-records") && !parse_u64(val, &n) && n >= 1 && n <= 128) {
			o->vtd_fault_records = (uint32_t)n;
		} else if (!strcmp(opt, "aw-bits") && !parse_u64(val, &n) && (n == 39 || n == 48 || n == 57)) {
			o->vtd_aw = (uint32_t)n;
		} else if (!strcmp(opt, "iq-thread") && (on || off)) {
			o->vtd_iq_thread = on;
		} else {
			fprintf(stderr, "viommu-vmm: --iommu vtd: bad option '%s=%s' (x2apic=on|off, scalable=on|off, "
				"caching-mode=on|off, fault-records=1..128, aw-bits=39|48|57, iq-thread=on|off)\n", opt, val);
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' }, { "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },   { "disk", required_argument, NULL, 'd' },
		{ "iommu", required_argument, NULL, 'I' },  { "serial", required_argument, NULL, 's' },
		{ "edu", no_argument, NULL, 'e' },           { "help", no_argument, NULL, 'h' },
		{ "stats", optional_argument, NULL, 'S' },
		{ "vfio-pci", required_argument, NULL, 'V' },
		{ "control", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	static struct vmm vm;
	struct vmm_opts *o = &vm.opts;
	o->mem_mib = 512;
	o->cpus = 1;
	o->serial = "stdio";
	o->iommu = "none";

	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'a':
			o->append = optarg;
			break;
		case 'm':
			if (parse_u64(optarg, &v) || v < 64 || v > (1ull << 20)) {
				fprintf(stderr, "viommu-vmm: --memory takes MiB from 64 to 1048576, not '%s'\n", optarg);
				return 1;
			}
			o->mem_mib = v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) || v < 1 || v > VMM_MAX_CPUS) {
				fprintf(stderr, "viommu-vmm: --cpus takes 1 to %u, not '%s'\n", VMM_MAX_CPUS, optarg);
				return 1;
			}
			o->cpus = (unsigned)v;
			break;
		case 'd':
			if (parse_disk(o, optarg))
				return 1;
			break;
		case 'I':
			if (parse_iommu(o, optarg))
				return 1;
			break;
		case 's':
			o->serial = optarg;
			break;
		case 'e':
			o->edu = 1;
			break;
		case 'S':
			if (optarg && strcmp(optarg, "exits")) {
				fprintf(stderr, "viommu-vmm: --stats takes no value or =exits, not '%s'\n", optarg);
				return 1;
			}
			o->stats = optarg ? 2 : 1;
			break;
		case 'V':
			if (o->nr_vfio >= VMM_MAX_VFIO) {
				fprintf(stderr, "viommu-vmm: at most %u --vfio-pci devices\n", VMM_MAX_VFIO);
				return 1;
			}
			o->vfio[o->nr_vfio++] = optarg;
			break;
		case 'C': /* --control PATH (control.c) */
			if (!*optarg) {
				fprintf(stderr, "viommu-vmm: --control needs a socket path\n");
				return 1;
			}
			o->control = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "viommu-vmm: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	if (!o->kernel) {
		fprintf(stderr, "viommu-vmm: --kernel is required\n");
		usage(stderr);
		return 1;
	}
	for (unsigned i = 0; i < o->nr_disks; i++) {
		struct vmm_disk *d = &o->disks[i];
		if (d->bypass && !o->vtd && !o->virtio_iommu)
			fprintf(stderr,
				"viommu-vmm: --disk %s,iommu=off: no virtual IOMMU to bypass without --iommu vtd or virtio\n",
				d->path);
		/* Behind a virtual IOMMU an indirect table costs the guest one
		 * more mapping per request, and a strict guest one more
		 * invalidation: an exit. Without one it only saves ring entries. */
		if (d->indirect < 0)
			d->indirect = !(o->vtd || o->virtio_iommu) || d->bypass;
		/* As QEMU does: a queue per vCPU (Linux maps each CPU to a queue
		 * and steers the queue's interrupt to it). */
		if (!d->queues)
			d->queues = o->cpus < VIRTIO_BLK_MAX_QUEUES ? o->cpus : VIRTIO_BLK_MAX_QUEUES;
	}
	int code = vmm_run(&vm);
	if (vm.exit_msg[0])
		fprintf(stderr, "viommu-vmm: %s\n", vm.exit_msg);
	if (o->stats && vm.iommu) {
		struct viommu_stats st;
		viommu_get_stats(vm.iommu, &st);
		fprintf(stderr,
			"viommu-vmm: iommu translations=%llu iotlb_hits=%llu iotlb_misses=%llu walks=%llu refs=%llu "
			"faults=%llu invalidations=%llu irqs_remapped=%llu irqs_passed=%llu irq_faults=%llu\n",
			(unsigned long long)st.translations, (unsigned long long)st.iotlb_hits,
			(unsigned long long)st.iotlb_misses, (unsigned long long)st.walks, (unsigned long long)st.refs,
			(unsigned long long)st.faults, (unsigned long long)st.invalidations,
			(unsigned long long)st.irqs_remapped, (unsigned long long)st.irqs_passed,
			(unsigned long long)st.irq_faults);
		if (vm.vtd_doorbells)
			fprintf(stderr, "viommu-vmm: vtd iq_doorbells=%llu (served by the I/O thread)\n",
				(unsigned long long)__atomic_load_n(&vm.vtd_doorbells_rung, __ATOMIC_RELAXED));
		if (vm.vio) {
			struct viommu_virtio_iommu_stats vs;
			viommu_virtio_iommu_get_stats(vm.vio, &vs);
			fprintf(stderr,
				"viommu-vmm: virtio-iommu requests=%llu attaches=%llu detaches=%llu maps=%llu unmaps=%llu "
				"domains=%llu mappings=%llu events=%llu events_lost=%llu events_foreign=%llu failed=%llu (inval=%llu range=%llu "
				"noent=%llu nomem=%llu unsupp=%llu)\n",
				(unsigned long long)vs.requests, (unsigned long long)vs.attaches,
				(unsigned long long)vs.detaches, (unsigned long long)vs.maps, (unsigned long long)vs.unmaps,
				(unsigned long long)vs.domains, (unsigned long long)vs.mappings,
				(unsigned long long)vs.events, (unsigned long long)vs.events_lost,
				(unsigned long long)vs.events_foreign, (unsigned long long)(vs.requests - vs.status[0]), (unsigned long long)vs.status[4],
				(unsigned long long)vs.status[5], (unsigned long long)vs.status[6],
				(unsigned long long)vs.status[8], (unsigned long long)vs.status[2]);
		}
		vmm_vtd_print_queue(&vm, stderr);
		vmm_print_vcpus(&vm, stderr);
	}
	if (o->stats > 1)
		vmm_print_exit_profile(&vm, stderr);
	vmm_teardown(&vm);
	if (code < 0)
		code = VMM_EXIT_ERROR;
	return code;
}
