// SPDX-License-Identifier: GPL-2.0
/* Unit test of the metrics page writer (cmd/sluiced/metrics.c), built
 * under ASan/UBSan by tests/metrics_unit.sh: escaping, number formats,
 * histograms, and every rule the writer enforces for collectors (each
 * refusal makes the page an error naming the problem). A collector
 * registered here plays one scenario per render; the state is stubbed out
 * (no namespace state: the core collector writes headers only).
 * With an argument, writes the page of the "good" scenario to that file
 * for the parsers (promtool, prometheus_client) to read. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "sluiced.h"
#include "metrics.h"
#include "check.h"

/* ---- stubs of the daemon around metrics.c ------------------------------- */

static int no_state(struct sl_ctx **ctx, unsigned int flags)
{
	*ctx = NULL;
	return -ENOENT;
}

int (*api_state_open)(struct sl_ctx **ctx, unsigned int flags) = no_state;

void logm(enum log_level level, const char *fmt, ...)
{
}

int api_error(struct api_resp *resp, int status, const char *field,
	      const char *fmt, ...)
{
	resp->status = status;
	return status;
}

/* ---- scenarios ------------------------------------------------------------- */

enum scenario {
	S_GOOD,
	S_TWICE,
	S_OUTSIDE,
	S_NO_TOTAL,
	S_BAD_NAME,
	S_BAD_LABEL,
	S_RESERVED_LABEL,
	S_NO_VALUE,
	S_BAD_BOUNDS,
	S_NOT_HISTOGRAM,
	S_FAIL,
	S_ERRNO,
	S_CORE_NAME,
};

static enum scenario scenario;

static int test_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	static const double bounds[] = { 0.005, 0.1, 1 };
	static const __u64 buckets[] = { 1, 2, 3 };

	switch (scenario) {
	case S_GOOD:
		metrics_family(m, "t_escape_total", METRICS_COUNTER,
			       "Help with a \\ backslash,\na newline and \"quotes\".");
		metrics_sample_u64(m, "t_escape_total",
				   (const char *const[]){ "v", "a\"b\\c\nd", "w", "", NULL }, 7);
		metrics_sample_u64(m, "t_escape_total", NULL, 18446744073709551615ULL);
		metrics_family(m, "t_numbers", METRICS_GAUGE, "Numbers.");
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "tenth", NULL }, 0.1);
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "nano", NULL }, 1e-9);
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "third", NULL }, 1.0 / 3);
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "nan", NULL }, NAN);
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "inf", NULL }, INFINITY);
		metrics_sample(m, "t_numbers", (const char *const[]){ "n", "ninf", NULL }, -INFINITY);
		metrics_family(m, "t_seconds", METRICS_HISTOGRAM, "A histogram.");
		metrics_histogram(m, (const char *const[]){ "path", "/a", NULL }, bounds, buckets,
				  3, 4, 12.5);
		metrics_histogram(m, NULL, bounds, buckets, 0, 0, 0);
		return 0;
	case S_TWICE:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_family(m, "t_b", METRICS_GAUGE, "B.");
		metrics_family(m, "t_a", METRICS_GAUGE, "A again.");
		return 0;
	case S_OUTSIDE:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_family(m, "t_b", METRICS_GAUGE, "B.");
		metrics_sample(m, "t_a", NULL, 1);
		return 0;
	case S_NO_TOTAL:
		metrics_family(m, "t_requests", METRICS_COUNTER, "No _total.");
		return 0;
	case S_BAD_NAME:
		metrics_family(m, "9lives", METRICS_GAUGE, "Starts with a digit.");
		return 0;
	case S_BAD_LABEL:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_sample(m, "t_a", (const char *const[]){ "a-b", "x", NULL }, 1);
		return 0;
	case S_RESERVED_LABEL:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_sample(m, "t_a", (const char *const[]){ "__name__", "x", NULL }, 1);
		return 0;
	case S_NO_VALUE:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_sample(m, "t_a", (const char *const[]){ "a", NULL }, 1);
		return 0;
	case S_BAD_BOUNDS:
		metrics_family(m, "t_h", METRICS_HISTOGRAM, "H.");
		metrics_histogram(m, NULL, (const double[]){ 1, 1 }, buckets, 2, 0, 0);
		return 0;
	case S_NOT_HISTOGRAM:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_histogram(m, NULL, bounds, buckets, 3, 0, 0);
		return 0;
	case S_FAIL:
		metrics_family(m, "t_a", METRICS_GAUGE, "A.");
		metrics_fail(m, "cannot read table %d", 7);
		return -EIO;
	case S_ERRNO:
		return -EIO;
	case S_CORE_NAME:
		metrics_family(m, "sluice_nf_packets_total", METRICS_COUNTER, "Clash.");
		return 0;
	}
	return 0;
}

METRICS_COLLECTOR(test_metrics, test_collect);

/* ---- checks ------------------------------------------------------------------ */

static char *render(enum scenario s, int *err)
{
	char *text = NULL;
	size_t len = 0;

	scenario = s;
	*err = metrics_render(&text, &len);
	if (text && strlen(text) != len) {
		check_report(false, "metrics_unit: length matches the text", NULL);
	}
	return text;
}

static void expect_line(const char *page, const char *line, const char *name)
{
	char *want;
	bool ok;

	if (asprintf(&want, "\n%s\n", line) < 0)
		return;
	ok = page && strstr(page, want);
	if (!ok)
		printf("  want line: %s\n", line);
	check_report(ok, name, NULL);
	free(want);
}

static void expect_error(enum scenario s, const char *msg, const char *name)
{
	int err;
	char *text = render(s, &err);
	bool ok = err < 0 && text && strstr(text, msg);

	if (!ok)
		printf("  err %d, text: %.200s\n", err, text ? text : "(null)");
	check_report(ok, name, NULL);
	free(text);
}

int main(int argc, char **argv)
{
	int err;
	char *page = render(S_GOOD, &err);

	if (!check_report(!err && page, "metrics_unit: the good page renders", page))
		return check_exit();
	expect_line(page, "# HELP t_escape_total Help with a \\\\ backslash,\\na newline and \"quotes\".",
		    "metrics_unit: HELP escapes backslash and newline, not quotes");
	expect_line(page, "t_escape_total{v=\"a\\\"b\\\\c\\nd\",w=\"\"} 7",
		    "metrics_unit: label values escape quote, backslash, newline");
	expect_line(page, "t_escape_total 18446744073709551615",
		    "metrics_unit: u64 counters exact to 2^64-1");
	expect_line(page, "t_numbers{n=\"tenth\"} 0.1", "metrics_unit: 0.1 prints as 0.1");
	expect_line(page, "t_numbers{n=\"nano\"} 1e-09", "metrics_unit: 1e-9");
	expect_line(page, "t_numbers{n=\"third\"} 0.33333333333333331",
		    "metrics_unit: 1/3 with the digits that read back the same double");
	expect_line(page, "t_numbers{n=\"nan\"} NaN", "metrics_unit: NaN");
	expect_line(page, "t_numbers{n=\"inf\"} +Inf", "metrics_unit: +Inf");
	expect_line(page, "t_numbers{n=\"ninf\"} -Inf", "metrics_unit: -Inf");
	expect_line(page, "t_seconds_bucket{path=\"/a\",le=\"0.005\"} 1", "metrics_unit: histogram bucket 1");
	expect_line(page, "t_seconds_bucket{path=\"/a\",le=\"0.1\"} 3", "metrics_unit: buckets are cumulative");
	expect_line(page, "t_seconds_bucket{path=\"/a\",le=\"1\"} 6", "metrics_unit: bucket 3");
	expect_line(page, "t_seconds_bucket{path=\"/a\",le=\"+Inf\"} 10", "metrics_unit: +Inf bucket");
	expect_line(page, "t_seconds_sum{path=\"/a\"} 12.5", "metrics_unit: histogram sum");
	expect_line(page, "t_seconds_count{path=\"/a\"} 10", "metrics_unit: count = +Inf bucket");
	expect_line(page, "t_seconds_bucket{le=\"+Inf\"} 0", "metrics_unit: a histogram without labels or buckets");
	expect_line(page, "sluice_state_loaded 0", "metrics_unit: the core collector runs without state");
	if (argc > 1) {
		FILE *f = fopen(argv[1], "w");

		if (f) {
			fputs(page, f);
			fclose(f);
		}
	}
	free(page);

	expect_error(S_TWICE, "family 't_a' written twice", "metrics_unit: a family written twice is refused");
	expect_error(S_OUTSIDE, "sample 't_a' outside its family", "metrics_unit: a sample away from its family is refused");
	expect_error(S_NO_TOTAL, "counter 't_requests' must end in _total", "metrics_unit: a counter without _total is refused");
	expect_error(S_BAD_NAME, "metric name '9lives' is not valid", "metrics_unit: a bad metric name is refused");
	expect_error(S_BAD_LABEL, "label name 'a-b' is not valid", "metrics_unit: a bad label name is refused");
	expect_error(S_RESERVED_LABEL, "label name '__name__' is not valid", "metrics_unit: reserved label names are refused");
	expect_error(S_NO_VALUE, "label 'a' of 't_a' has no value", "metrics_unit: a label without value is refused");
	expect_error(S_BAD_BOUNDS, "bucket bounds must increase", "metrics_unit: histogram bounds must increase");
	expect_error(S_NOT_HISTOGRAM, "'t_a' is not a histogram", "metrics_unit: histogram samples in a gauge family are refused");
	expect_error(S_FAIL, "cannot read table 7", "metrics_unit: metrics_fail's message is the answer");
	expect_error(S_ERRNO, "collector test_metrics: Input/output error",
		     "metrics_unit: a collector's error without a message names the collector");
	expect_error(S_CORE_NAME, "family 'sluice_nf_packets_total' written twice",
		     "metrics_unit: a collector cannot take a core family's name");
	page = render(S_GOOD, &err);
	check_report(!err && page && !strstr(page, "t_a"),
		     "metrics_unit: a refused page leaves nothing behind for the next", NULL);
	free(page);
	return check_exit();
}
