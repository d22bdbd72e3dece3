/* SPDX-License-Identifier: MIT */
/*
 * The check harness of the core tests.
 *
 * CHECK(cond) and CHECK_EQ(got, exp) count a check, and on failure print
 * file:line, the case being run (core_case()), the expression, what was
 * expected and what came back; the test goes on. The _AT forms take the line
 * of a caller, so a helper that checks on behalf of a test names the test's
 * line. core_check_done() prints the totals and gives the exit status.
 *
 * One test is one translation unit: the counters are plain statics.
 */
#ifndef VIOMMU_CORE_CHECK_H
#define VIOMMU_CORE_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* After this many reported failures only the count goes on. */
#define CORE_CHECK_MAX_PRINTED 200

static unsigned long core_checks;
static unsigned long core_failures;
static char core_case_name[200];

static inline void core_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void core_case(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(core_case_name, sizeof(core_case_name), fmt, ap);
	va_end(ap);
}

static inline int core_fail_head(const char *file, int line)
{
	if (++core_failures > CORE_CHECK_MAX_PRINTED)
		return 0;
	fprintf(stderr, "%s:%d: FAIL", file, line);
	if (core_case_name[0])
		fprintf(stderr, " [%s]", core_case_name);
	return 1;
}

static inline int core_check_true(int ok, const char *file, int line, const char *expr)
{
	core_checks++;
	if (ok)
		return 1;
	if (core_fail_head(file, line))
		fprintf(stderr, ": %s\n", expr);
	return 0;
}

static inline int core_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge,
				const char *ee)
{
	core_checks++;
	if (got == exp)
		return 1;
	if (core_fail_head(file, line))
		fprintf(stderr, ": %s == %s: expected %#llx (%lld), got %#llx (%lld)\n", ge, ee,
			(unsigned long long)exp, (long long)exp, (unsigned long long)got, (long long)got);
	return 0;
}

#define CHECK(c) core_check_true(!!(c), __FILE__, __LINE__, #c)
#define CHECK_EQ(g, e) core_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, __LINE__, #g, #e)
#define CHECK_AT(line, c) core_check_true(!!(c), __FILE__, (line), #c)
#define CHECK_EQ_AT(line, g, e) core_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, (line), #g, #e)

static inline int core_check_done(const char *name)
{
	if (core_failures > CORE_CHECK_MAX_PRINTED)
		fprintf(stderr, "(%lu more failures not printed)\n", core_failures - CORE_CHECK_MAX_PRINTED);
	printf("%s: %lu checks, %lu failed\n", name, core_checks, core_failures);
	return core_failures ? 1 : 0;
}

#endif /* VIOMMU_CORE_CHECK_H */
