/* SPDX-License-Identifier: GPL-2.0 */
/* Prometheus metrics of sluiced: GET /metrics (the daemon's socket, and
 * --metrics-listen ADDR:PORT) in the text exposition format 0.0.4.
 *
 * The page is written by collectors. The core one (cmd/sluiced/metrics.c)
 * writes the per-instance, per-drop-reason, per-rule and event counters;
 * an NF adds its own from its own file with METRICS_COLLECTOR, which puts
 * a pointer in the section sl_metrics, walked in link order after the core.
 *
 * A collector writes whole families: metrics_family() once, then every
 * sample of that family, before the next family. Names are checked: a
 * family declared twice or a sample outside its family makes the page a
 * 500 (a bug, caught by tests/e2e_metrics.sh), never a page Prometheus
 * would refuse. Counters are named ..._total, as the format wants. */
#ifndef SLUICED_METRICS_H
#define SLUICED_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct sl_ctx;

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

/* The page being written; opaque to collectors. */
struct metrics_out;

/* Starts a family: its "# HELP" and "# TYPE" lines. name is the family's
 * full name (a counter's ends in _total). */
void metrics_family(struct metrics_out *m, const char *name,
		    enum metrics_type type, const char *help);

/* One sample of the current family. labels: name, value, name, value, ...,
 * NULL (or NULL itself: no labels); values are escaped here. */
void metrics_sample(struct metrics_out *m, const char *name,
		    const char *const *labels, double value);
/* The same for integer counters, exact beyond 2^53. */
void metrics_sample_u64(struct metrics_out *m, const char *name,
			const char *const *labels, __u64 value);

/* One histogram series of the current (histogram) family: buckets[i]
 * counts observations <= bounds[i] (not cumulative; summed here), +Inf
 * holds the rest; sum is the sum of the observations. */
void metrics_histogram(struct metrics_out *m, const char *const *labels,
		       const double *bounds, const __u64 *buckets, int nbuckets,
		       __u64 inf_bucket, double sum);

/* Marks the page failed (a collector could not read its state): the
 * scrape gets a 500 with msg rather than a page with holes. */
void metrics_fail(struct metrics_out *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A collector: writes its families for the namespace's state ctx, which
 * is NULL when the namespace has no sluice state yet (write the family
 * headers, no samples). Returns 0, or a negative errno (see metrics_fail). */
struct metrics_collector {
	const char *name;
	int (*fn)(struct metrics_out *m, struct sl_ctx *ctx);
};
#define METRICS_COLLECTOR(var, fn)                                             \
	static const struct metrics_collector var = { #var, fn };              \
	static const struct metrics_collector *const var##_ptr                 \
		__attribute__((used, section("sl_metrics"))) = &var

/* The whole page for the current namespace: 0 and *text (malloc'd), or a
 * negative errno and *text an error message (malloc'd). */
int metrics_render(char **text, size_t *len);

/* The content type of the page. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
