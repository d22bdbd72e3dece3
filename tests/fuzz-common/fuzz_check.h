/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets' oracle: FAIL says which invariant broke, where (the
 * target's FUZZ_TARGET name and the line), and abort()s, which libFuzzer and
 * the corpus replay report as a crash. That is a test program's way: the
 * library itself never aborts. Define FUZZ_TARGET (the target's source file
 * name, a string literal) before including this.
 */
#ifndef VIOMMU_FUZZ_CHECK_H
#define VIOMMU_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET (the target's source file name) before including fuzz_check.h"
#endif

#define FAIL(...)                                                                      \
	do {                                                                           \
		fprintf(stderr, FUZZ_TARGET ":%d: invariant violated: ", __LINE__);    \
		fprintf(stderr, __VA_ARGS__);                                          \
		fputc('\n', stderr);                                                   \
		abort();                                                               \
	} while (0)

#define CHECK(cond, ...)                   \
	do {                               \
		if (!(cond))               \
			FAIL(__VA_ARGS__); \
	} while (0)

#endif /* VIOMMU_FUZZ_CHECK_H */
