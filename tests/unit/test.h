#ifndef POSTERN_TEST_H
#define POSTERN_TEST_H

/* The tiny shared unit-test helper. A test file defines test functions
 * and a main() that calls test_run() for each, then returns test_end().
 *
 *   static void test_foo(void) { TEST_ASSERT(1 + 1 == 2); }
 *   int main(void) { test_run("foo", test_foo); return test_end(); }
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int test_failures;
extern int test_checks;
extern const char *test_current;

#define TEST_ASSERT(cond)                                                   \
	do {                                                                \
		test_checks++;                                              \
		if (!(cond)) {                                              \
			test_failures++;                                    \
			fprintf(stderr, "FAIL %s: %s:%d: %s\n", test_current, \
				__FILE__, __LINE__, #cond);                  \
		}                                                           \
	} while (0)

#define TEST_ASSERT_STR(got, want)                                          \
	do {                                                                \
		const char *got_ = (got), *want_ = (want);                  \
		test_checks++;                                              \
		if (got_ == NULL || strcmp(got_, want_) != 0) {             \
			test_failures++;                                    \
			fprintf(stderr, "FAIL %s: %s:%d: %s\n  got:  %s\n  want: %s\n", \
				test_current, __FILE__, __LINE__, #got,     \
				got_ ? got_ : "(null)", want_);             \
		}                                                           \
	} while (0)

#define TEST_ASSERT_INT(got, want)                                          \
	do {                                                                \
		long long got_ = (long long)(got), want_ = (long long)(want); \
		test_checks++;                                              \
		if (got_ != want_) {                                        \
			test_failures++;                                    \
			fprintf(stderr, "FAIL %s: %s:%d: %s = %lld, want %lld\n", \
				test_current, __FILE__, __LINE__, #got, got_, want_); \
		}                                                           \
	} while (0)

void test_run(const char *name, void (*fn)(void));
int test_end(void);
/* A fresh empty directory under $TMPDIR for this test; removed by test_end(). */
const char *test_tmpdir(void);
/* Entries of root/sub (root alone when sub is NULL) not starting with '.'. */
size_t test_count_files(const char *root, const char *sub);

#endif
