/* SPDX-License-Identifier: MIT */
/*
 * The check harness of the part-2 tests (fault log, injection, interrupt
 * remapping).
 *
 * CHECK(cond) and CHECK_EQ(got, exp) count a check; a failure prints
 * file:line, the current case (p2_case()), the expression and, for CHECK_EQ,
 * expected and got. The test carries on. p2_done() prints the totals and
 * gives the exit status. One test is one translation unit: the counters are
 * statics. The counters are atomic, so helper threads may check too.
 */
#ifndef VIOMMU_P2_CHECK_H
#define VIOMMU_P2_CHECK_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define P2_MAX_PRINTED 100

static unsigned long p2_checks;
static unsigned long p2_failures;
static char p2_case_name[160];

static inline void p2_case(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void p2_case(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p2_case_name, sizeof(p2_case_name), fmt, ap);
	va_end(ap);
}

static inline int p2_fail_head(const char *file, int line)
{
	if (__atomic_add_fetch(&p2_failures, 1, __ATOMIC_RELAXED) > P2_MAX_PRINTED)
		return 0;
	fprintf(stderr, "%s:%d: FAIL", file, line);
	if (p2_case_name[0])
		fprintf(stderr, " [%s]", p2_case_name);
	return 1;
}

static inline int p2_check_true(int ok, const char *file, int line, const char *expr)
{
	__atomic_add_fetch(&p2_checks, 1, __ATOMIC_RELAXED);
	if (ok)
		return 1;
	if (p2_fail_head(file, line))
		fprintf(stderr, ": %s\n", expr);
	return 0;
}

static inline int p2_check_eq(uint64_t got, uint64_t exp, const char *file, int line, const char *ge,
			      const char *ee)
{
	__atomic_add_fetch(&p2_checks, 1, __ATOMIC_RELAXED);
	if (got == exp)
		return 1;
	if (p2_fail_head(file, line))
		fprintf(stderr, ": %s == %s: expected %#llx (%lld), got %#llx (%lld)\n", ge, ee,
			(unsigned long long)exp, (long long)exp, (unsigned long long)got, (long long)got);
	return 0;
}

static inline int p2_check_str(const char *got, const char *exp, const char *file, int line, const char *ge)
{
	__atomic_add_fetch(&p2_checks, 1, __ATOMIC_RELAXED);
	if (got && exp && !strcmp(got, exp))
		return 1;
	if (p2_fail_head(file, line))
		fprintf(stderr, ": %s:\n  expected \"%s\"\n  got      \"%s\"\n", ge, exp ? exp : "(null)",
			got ? got : "(null)");
	return 0;
}

#define CHECK(c) p2_check_true(!!(c), __FILE__, __LINE__, #c)
#define CHECK_EQ(g, e) p2_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, __LINE__, #g, #e)
#define CHECK_STR(g, e) p2_check_str((g), (e), __FILE__, __LINE__, #g)
#define CHECK_AT(line, c) p2_check_true(!!(c), __FILE__, (line), #c)
#define CHECK_EQ_AT(line, g, e) p2_check_eq((uint64_t)(g), (uint64_t)(e), __FILE__, (line), #g, #e)

static inline int p2_done(const char *name)
{
	unsigned long f = __atomic_load_n(&p2_failures, __ATOMIC_RELAXED);
	if (f > P2_MAX_PRINTED)
		fprintf(stderr, "(%lu more failures not printed)\n", f - P2_MAX_PRINTED);
	printf("%s: %lu checks, %lu failed\n", name, __atomic_load_n(&p2_checks, __ATOMIC_RELAXED), f);
	return f ? 1 : 0;
}

#endif /* VIOMMU_P2_CHECK_H */
