/* SPDX-License-Identifier: MIT */
/*
 * The check harness of the VT-d front-end tests: CHECK(cond) and
 * CHECK_EQ(got, exp) count a check; a failure prints file:line, the current
 * case (vt_case()), the expression and, for CHECK_EQ, expected and got. The
 * test carries on; vt_done() prints the totals and gives the exit status.
 */
#ifndef VIOMMU_VTD_CHECK_H
#define VIOMMU_VTD_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static unsigned long vt_checks, vt_failures;
static char vt_case_name[160];

static inline void vt_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void vt_case(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(vt_case_name, sizeof(vt_case_name), fmt, ap);
	va_end(ap);
}

static inline int vt_fail_head(const char *file, int line)
{
	if (++vt_failures > 100)
		return 0;
	fprintf(stderr, "%s:%d: FAIL", file, line);
	if (vt_case_name[0])
		fprintf(stderr, " [%s]", vt_case_name);
	return 1;
}

static inline int vt_check(int ok, const char *file, int line, const char *expr)
{
	vt_checks++;
	if (!ok && vt_fail_head(file, line))
		fprintf(stderr, ": %s\n", expr);
	return ok;
}

static inline int vt_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge, const char *ee)
{
	vt_checks++;
	if (got == exp)
		return 1;
	if (vt_fail_head(file, line))
		fprintf(stderr, ": %s == %s: expected %#llx, got %#llx\n", ge, ee, (unsigned long long)exp,
			(unsigned long long)got);
	return 0;
}

#define CHECK(c) vt_check(!!(c), __FILE__, __LINE__, #c)
#define CHECK_EQ(g, e) vt_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, __LINE__, #g, #e)

static inline int vt_done(const char *name)
{
	if (vt_failures > 100)
		fprintf(stderr, "(%lu more failures not printed)\n", vt_failures - 100);
	printf("%s: %lu checks, %lu failed\n", name, vt_checks, vt_failures);
	return vt_failures ? 1 : 0;
}

#endif /* VIOMMU_VTD_CHECK_H */
