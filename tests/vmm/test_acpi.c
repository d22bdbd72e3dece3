/* SPDX-License-Identifier: MIT */
/*
 * The VMM's ACPI tables: structure and checksums checked here, then every
 * table disassembled with iasl (acpica-tools); any error, warning or
 * checksum complaint fails the test.
 */
#include "vmm.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(c)                                                                  \
	do {                                                                      \
		if (!(c)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                               \
		}                                                                 \
	} while (0)

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static int run_iasl(const char *dir, const char *file)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl -d '%s' > '%s.log' 2>&1", dir, file, file);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "iasl -d %s failed (see %s/%s.log)\n", file, dir, file);
		return -1;
	}
	/* The disassembly must carry no complaints either. */
	char dsl[512];
	snprintf(dsl, sizeof(dsl), "%s/%s", dir, file);
	char *dot = strrchr(dsl, '.');
	if (dot)
		strcpy(dot, ".dsl");
	snprintf(cmd, sizeof(cmd), "grep -Eiq 'incorrect|invalid|error|warning' '%s' '%s/%s.log'", dsl, dir, file);
	st = system(cmd);
	if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		fprintf(stderr, "iasl found a problem in %s (see %s and the log)\n", file, dsl);
		return -1;
	}
	return 0;
}

static void check_set(const char *dir, unsigned cpus, int with_extra)
{
	static uint8_t mem[VMM_ACPI_SIZE];
	uint8_t extra[40];
	struct acpi_info ai = { .nr_cpus = cpus, .ecam_base = VMM_ECAM_BASE, .ecam_buses = VMM_ECAM_BUSES };
	if (with_extra) {
		/* A table from a front-end: header only, checksum left to
		 * the builder. */
		memset(extra, 0, sizeof(extra));
		memcpy(extra, "OEMX", 4);
		extra[4] = sizeof(extra);
		extra[8] = 1;
		memcpy(extra + 10, "VIOMMU", 6);
		ai.extra[0] = extra;
		ai.extra_len[0] = sizeof(extra);
		ai.nr_extra = 1;
	}
	uint64_t rsdp = acpi_build(&ai, mem, VMM_ACPI_BASE, sizeof(mem));
	CHECK(rsdp == VMM_ACPI_BASE);
	const uint8_t *r = mem + (rsdp - VMM_ACPI_BASE);
	CHECK(!memcmp(r, "RSD PTR ", 8));
	CHECK(sum(r, 20) == 0);
	CHECK(sum(r, 36) == 0);
	CHECK(r[15] == 2);
	uint64_t xsdt = le64(r + 24);
	const uint8_t *x = mem + (xsdt - VMM_ACPI_BASE);
	CHECK(!memcmp(x, "XSDT", 4));
	uint32_t xlen = le32(x + 4);
	CHECK(sum(x, xlen) == 0);
	unsigned n = (xlen - 36) / 8;
	CHECK(n == 3u + (with_extra ? 1u : 0u));

	mkdir(dir, 0755);
	char path[512];
	snprintf(path, sizeof(path), "%s/xsdt.dat", dir);
	FILE *f = fopen(path, "wb");
	fwrite(x, 1, xlen, f);
	fclose(f);
	CHECK(run_iasl(dir, "xsdt.dat") == 0);
	int seen_madt = 0;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = mem + (le64(x + 36 + 8 * i) - VMM_ACPI_BASE);
		uint32_t len = le32(t + 4);
		CHECK(sum(t, len) == 0);
		char name[16];
		snprintf(name, sizeof(name), "%.4s.dat", (const char *)t);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		f = fopen(path, "wb");
		fwrite(t, 1, len, f);
		fclose(f);
		if (memcmp(t, "OEMX", 4))
			CHECK(run_iasl(dir, name) == 0);
		if (!memcmp(t, "APIC", 4)) {
			seen_madt = 1;
			unsigned lapics = 0;
			for (uint32_t off = 44; off + 2 <= len; off += t[off + 1]) {
				CHECK(t[off + 1] >= 2);
				if (t[off + 1] < 2)
					break;
				lapics += t[off] == 0;
			}
			CHECK(lapics == cpus);
		}
		if (!memcmp(t, "FACP", 4)) {
			CHECK(len == 276);
			CHECK(le32(t + 112) & (1u << 20)); /* hardware-reduced */
			const uint8_t *d = mem + (le64(t + 140) - VMM_ACPI_BASE);
			CHECK(!memcmp(d, "DSDT", 4));
			CHECK(sum(d, le32(d + 4)) == 0);
			snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
			f = fopen(path, "wb");
			fwrite(d, 1, le32(d + 4), f);
			fclose(f);
			CHECK(run_iasl(dir, "dsdt.dat") == 0);
		}
	}
	CHECK(seen_madt);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "acpi-out";
	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		printf("SKIPPED: iasl (Debian package acpica-tools) is not installed\n");
		return 77;
	}
	char d1[512], d2[512], d3[512];
	snprintf(d1, sizeof(d1), "%s-1cpu", dir);
	snprintf(d2, sizeof(d2), "%s-8cpu", dir);
	snprintf(d3, sizeof(d3), "%s-extra", dir);
	check_set(d1, 1, 0);
	check_set(d2, 8, 0);
	check_set(d3, 2, 1);
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
