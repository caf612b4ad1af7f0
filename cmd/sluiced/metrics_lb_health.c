// SPDX-License-Identifier: GPL-2.0
/* LB health-check metrics, read through nf/lb/health.h: whether a checker
 * runs, and per checked backend its health, probes, failures, changes and
 * the last probe's latency. Cardinality: one series per backend of a
 * checked service (at most HC_MAX_BACKENDS). */
#include <errno.h>
#include <stdio.h>
#include "sluice.h"
#include "health.h"
#include "sluiced.h"
#include "metrics.h"

typedef void (*hc_sample_fn)(struct metrics_out *m, const char *const *labels,
			     const struct hc_view_backend *b);

static void up_sample(struct metrics_out *m, const char *const *labels,
		      const struct hc_view_backend *b)
{
	metrics_sample(m, "sluice_lb_health_up", labels, b->st.up);
}

static void probes_sample(struct metrics_out *m, const char *const *labels,
			  const struct hc_view_backend *b)
{
	metrics_sample_u64(m, "sluice_lb_health_probes_total", labels,
			   b->st.probes);
}

static void failures_sample(struct metrics_out *m, const char *const *labels,
			    const struct hc_view_backend *b)
{
	metrics_sample_u64(m, "sluice_lb_health_failures_total", labels,
			   b->st.failures);
}

static void changes_sample(struct metrics_out *m, const char *const *labels,
			   const struct hc_view_backend *b)
{
	metrics_sample_u64(m, "sluice_lb_health_changes_total", labels,
			   b->st.changes);
}

static void latency_sample(struct metrics_out *m, const char *const *labels,
			   const struct hc_view_backend *b)
{
	metrics_sample(m, "sluice_lb_health_last_latency_seconds", labels,
		       b->st.last.latency_us / 1e6);
}

/* One family: a sample for every probed backend of every checked service. */
static void family(struct metrics_out *m, const struct hc_view *v,
		   const char *name, enum metrics_type type, const char *help,
		   hc_sample_fn fn)
{
	metrics_family(m, name, type, help);
	for (size_t i = 0; i < v->n; i++) {
		const struct hc_view_service *s = &v->svcs[i];
		char svc[64];

		hc_addr_format(&s->svc, svc, sizeof(svc));
		for (size_t j = 0; j < s->n; j++) {
			const struct hc_view_backend *b = &s->backends[j];
			char be[64];
			const char *labels[] = { "instance", s->inst, "service", svc,
						 "backend", be, NULL };

			if (!b->probed)
				continue;
			hc_addr_format(&b->addr, be, sizeof(be));
			fn(m, labels, b);
		}
	}
}

static int hc_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	struct hc_view v;
	int err = hc_view_read(ctx, &v);

	if (err) {
		metrics_fail(m, "lb health: %s", sl_errmsg());
		return err;
	}
	metrics_family(m, "sluice_lb_health_checker_running", METRICS_GAUGE,
		       "1 when a health checker runs in this namespace (sluiced or "
		       "sluice lb healthcheck run)");
	metrics_sample(m, "sluice_lb_health_checker_running", NULL, v.running);
	family(m, &v, "sluice_lb_health_up", METRICS_GAUGE,
	       "Backend health as the checker last found it (1 up, 0 down)",
	       up_sample);
	family(m, &v, "sluice_lb_health_probes_total", METRICS_COUNTER,
	       "Health probes of the backend", probes_sample);
	family(m, &v, "sluice_lb_health_failures_total", METRICS_COUNTER,
	       "Failed health probes of the backend", failures_sample);
	family(m, &v, "sluice_lb_health_changes_total", METRICS_COUNTER,
	       "Health changes (up to down or down to up) of the backend",
	       changes_sample);
	family(m, &v, "sluice_lb_health_last_latency_seconds", METRICS_GAUGE,
	       "Duration of the backend's last health probe", latency_sample);
	hc_view_free(&v);
	return 0;
}

METRICS_COLLECTOR(lb_health_metrics, hc_collect);
