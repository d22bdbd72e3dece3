/* SPDX-License-Identifier: MIT */
/*
 * A tiny check harness for the unit tests: CHECK(cond) and CHECK_EQ(got, exp)
 * print file:line, the expression, what was expected and what came back, count
 * failures and let the test go on. check_report() prints the totals and gives
 * the exit status (non-zero when anything failed).
 *
 * check_context() names the case a sweep is in, so a failure deep in a loop
 * says which format, level and page size it was.
 *
 * Each test is one translation unit, so the counters are plain statics.
 */
#ifndef VIOMMU_TEST_CHECK_H
#define VIOMMU_TEST_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/* Past this many failures only the count goes on; a broken sweep would
 * otherwise print for ever. */
#define CHECK_MAX_REPORTS 300

static unsigned long check_total;
static unsigned long check_failed;
static char check_ctx[256];

static inline void check_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void check_context(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(check_ctx, sizeof(check_ctx), fmt, ap);
	va_end(ap);
}

static inline int check_fail_begin(const char *file, int line)
{
	check_failed++;
	if (check_failed > CHECK_MAX_REPORTS)
		return 0;
	fprintf(stderr, "%s:%d: FAIL", file, line);
	if (check_ctx[0])
		fprintf(stderr, " [%s]", check_ctx);
	return 1;
}

static inline int check_true(int ok, const char *file, int line, const char *expr)
{
	check_total++;
	if (ok)
		return 1;
	if (check_fail_begin(file, line))
		fprintf(stderr, ": %s\n", expr);
	return 0;
}

static inline int check_eq(uint64_t got, uint64_t exp, const char *file, int line,
			   const char *got_expr, const char *exp_expr)
{
	check_total++;
	if (got == exp)
		return 1;
	if (check_fail_begin(file, line))
		fprintf(stderr, ": %s == %s: expected 0x%llx (%lld), got 0x%llx (%lld)\n",
			got_expr, exp_expr, (unsigned long long)exp, (long long)exp,
			(unsigned long long)got, (long long)got);
	return 0;
}

/* Both evaluate their arguments once and give 1 when the check held. */
#define CHECK(cond) check_true(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(got, exp) \
	check_eq((uint64_t)(got), (uint64_t)(exp), __FILE__, __LINE__, #got, #exp)

static inline int check_report(const char *name)
{
	if (check_failed > CHECK_MAX_REPORTS)
		fprintf(stderr, "(%lu more failures not shown)\n", check_failed - CHECK_MAX_REPORTS);
	printf("%s: %lu checks, %lu failed\n", name, check_total, check_failed);
	return check_failed ? 1 : 0;
}

#endif /* VIOMMU_TEST_CHECK_H */
