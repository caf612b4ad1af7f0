// SPDX-License-Identifier: GPL-2.0
/* Prometheus families of the HTTP monitor: requests, errors and latency
 * histograms per instance, service port, method, route and status class;
 * the parser's own counters; the OTLP exporter's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "httpmon.h"
#include "metrics.h"
#include "api_otlp.h"

struct http_all {
	struct httpmon_info *v;
	size_t n, cap;
	int err;
	struct sl_ctx *ctx;
};

static int read_one(const struct sl_instance *inst, void *arg)
{
	struct http_all *a = arg;
	int err;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		void *p = realloc(a->v, cap * sizeof(*a->v));

		if (!p)
			return a->err = -ENOMEM;
		a->v = p;
		a->cap = cap;
	}
	err = httpmon_read(a->ctx, inst->name, &a->v[a->n]);
	if (err == -ENOENT)
		return 0; /* deleted meanwhile */
	if (err)
		return a->err = err;
	a->n++;
	return 0;
}

/* Labels of a row: instance, port, method, route, status_class. */
struct row_labels {
	char port[8], cls[4];
	const char *l[11];
};

static void row_labels(struct row_labels *rl, const struct httpmon_row *r)
{
	snprintf(rl->port, sizeof(rl->port), "%u", r->port);
	snprintf(rl->cls, sizeof(rl->cls), "%uxx", r->status_class % 10);
	rl->l[0] = "instance", rl->l[1] = r->instance;
	rl->l[2] = "port", rl->l[3] = rl->port;
	rl->l[4] = "method", rl->l[5] = httpmon_method_name(r->method);
	rl->l[6] = "route", rl->l[7] = r->route;
	rl->l[8] = "status_class", rl->l[9] = rl->cls;
	rl->l[10] = NULL;
}

static void write_rows(struct metrics_out *m, const struct http_all *a)
{
	struct row_labels rl;

	metrics_family(m, "sluice_http_requests_total", METRICS_COUNTER,
		       "HTTP requests answered, by service port, method, route template and status class.");
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < a->v[i].nrows; k++) {
			row_labels(&rl, &a->v[i].rows[k]);
			metrics_sample_u64(m, "sluice_http_requests_total", rl.l,
					   a->v[i].rows[k].st.count);
		}
	metrics_family(m, "sluice_http_request_errors_total", METRICS_COUNTER,
		       "HTTP requests answered with 4xx (client) or 5xx (server) status.");
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < a->v[i].nrows; k++) {
			const struct httpmon_row *r = &a->v[i].rows[k];

			if (r->status_class < 4)
				continue;
			row_labels(&rl, r);
			metrics_sample_u64(m, "sluice_http_request_errors_total", rl.l, r->st.count);
		}
	metrics_family(m, "sluice_http_request_duration_seconds", METRICS_HISTOGRAM,
		       "Time from a request's first segment to its response's, seen at TC.");
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < a->v[i].nrows; k++) {
			const struct httpmon_row *r = &a->v[i].rows[k];

			row_labels(&rl, r);
			metrics_histogram(m, rl.l, httpmon_bucket_le, r->st.buckets,
					  HTTP_NBUCKETS - 1, r->st.buckets[HTTP_NBUCKETS - 1],
					  r->st.sum_ns / 1e9);
		}
}

static void write_parser(struct metrics_out *m, const struct http_all *a)
{
	static const char *const names[] = {
		"requests", "responses", "partial", "bad", "pipelined", "stale", "orphans",
		"informational", "traceparent_valid", "traceparent_invalid",
		"template_overflow", "spans", "spans_lost", "stats_full",
	};
	static const size_t offs[] = {
		offsetof(struct http_counters, requests),
		offsetof(struct http_counters, responses),
		offsetof(struct http_counters, partial),
		offsetof(struct http_counters, bad),
		offsetof(struct http_counters, pipelined),
		offsetof(struct http_counters, stale),
		offsetof(struct http_counters, orphans),
		offsetof(struct http_counters, informational),
		offsetof(struct http_counters, tp_valid),
		offsetof(struct http_counters, tp_invalid),
		offsetof(struct http_counters, tmpl_overflow),
		offsetof(struct http_counters, spans),
		offsetof(struct http_counters, spans_lost),
		offsetof(struct http_counters, stats_full),
	};

	metrics_family(m, "sluice_http_parser_events_total", METRICS_COUNTER,
		       "What the HTTP monitor's parser saw: requests tracked, lines split or bad, pipelining, traceparents, spans.");
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			const char *l[] = { "instance", a->v[i].name, "event", names[k], NULL };
			__u64 v = *(const __u64 *)((const char *)&a->v[i].cnt + offs[k]);

			metrics_sample_u64(m, "sluice_http_parser_events_total", l, v);
		}
	metrics_family(m, "sluice_http_templates", METRICS_GAUGE,
		       "Distinct route templates an HTTP monitor keeps (the rest count as 'other').");
	for (size_t i = 0; i < a->n; i++) {
		const char *l[] = { "instance", a->v[i].name, NULL };

		metrics_sample_u64(m, "sluice_http_templates", l, a->v[i].ntemplates);
	}
}

static void write_otlp(struct metrics_out *m)
{
	struct otlp_stats st;
	bool on = api_otlp_stats(&st);

	metrics_family(m, "sluice_otlp_spans_total", METRICS_COUNTER,
		       "Spans of the OTLP export (--otlp-endpoint): sent, failed (collector error or away), dropped (queue full).");
	if (!on)
		return;
	metrics_sample_u64(m, "sluice_otlp_spans_total",
			   (const char *const[]){ "result", "sent", NULL }, st.sent);
	metrics_sample_u64(m, "sluice_otlp_spans_total",
			   (const char *const[]){ "result", "failed", NULL }, st.failed);
	metrics_sample_u64(m, "sluice_otlp_spans_total",
			   (const char *const[]){ "result", "dropped", NULL }, st.dropped);
}

static int collect_http(struct metrics_out *m, struct sl_ctx *ctx)
{
	struct http_all a = { .ctx = ctx };

	if (ctx)
		httpmon_foreach(ctx, read_one, &a);
	if (a.err) {
		metrics_fail(m, "cannot read the HTTP monitors: %s", sl_errmsg());
	} else {
		write_rows(m, &a);
		write_parser(m, &a);
		write_otlp(m);
	}
	for (size_t i = 0; i < a.n; i++)
		httpmon_info_free(&a.v[i]);
	free(a.v);
	return a.err;
}

METRICS_COLLECTOR(http_metrics, collect_http);
