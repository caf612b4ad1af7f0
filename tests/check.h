/* SPDX-License-Identifier: GPL-2.0 */
/* Minimal assertions for C tests: each check prints PASS/FAIL with a name,
 * returns whether it held, and never aborts, so a test reaches its cleanup. */
#ifndef SLUICE_TEST_CHECK_H
#define SLUICE_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>

static int check_passed, check_failed;

static inline bool check_report(bool ok, const char *name, const char *detail)
{
	if (ok) {
		check_passed++;
		printf("PASS: %s\n", name);
	} else {
		check_failed++;
		printf("FAIL: %s%s%s\n", name, detail ? ": " : "", detail ? detail : "");
	}
	return ok;
}

#define CHECK(cond, name) check_report(!!(cond), name, #cond)

static inline int check_exit(void)
{
	fflush(stdout);
	return check_failed ? 1 : 0;
}

#endif
