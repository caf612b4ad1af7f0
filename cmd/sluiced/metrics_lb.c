// SPDX-License-Identifier: GPL-2.0
/* Load balancer metrics, read through nf/lb/lb.h: per virtual service and
 * per backend, packets and bytes in each direction, connections, and the
 * backend's health and weight. Cardinality: one series per service and
 * per backend (times two directions), as configured; no per-flow series. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "lb.h"
#include "sluiced.h"
#include "metrics.h"

struct lb_inst {
	char name[SL_NAME_MAX];
	struct lb_conf conf;
};

struct lb_insts {
	struct sl_ctx *ctx;
	struct lb_inst *v;
	size_t n, cap;
	int err;
};

static int lb_inst_cb(const struct sl_instance *inst, void *arg)
{
	struct lb_insts *l = arg;
	struct lb_inst *li;

	if (strcmp(inst->type, LB_TYPE))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct lb_inst *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->err = sl_err(-ENOMEM, "out of memory");
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	li = &l->v[l->n++];
	memset(li, 0, sizeof(*li));
	snprintf(li->name, sizeof(li->name), "%s", inst->name);
	l->err = lb_list(l->ctx, inst->name, &li->conf);
	return l->err ? 1 : 0;
}

/* "tcp/10.0.0.1:80", "udp/[2001:db8::1]:53" */
static void lb_service_text(const struct lb_service_key *k, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->addr, a, sizeof(a));
	snprintf(buf, len, k->family == 6 ? "%s/[%s]:%u" : "%s/%s:%u",
		 k->proto == 17 ? "udp" : "tcp", a, k->port);
}

static void lb_backend_text(const struct lb_backend_addr *b, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(b->family == 6 ? AF_INET6 : AF_INET, b->addr, a, sizeof(a));
	snprintf(buf, len, b->family == 6 ? "[%s]:%u" : "%s:%u", a, b->port);
}

enum lb_field { LB_PKTS, LB_BYTES, LB_CONNS, LB_UP, LB_WEIGHT };

static __u64 lb_value(const struct lb_stats *st, enum lb_field f, bool out)
{
	switch (f) {
	case LB_PKTS: return out ? st->pkts_out : st->pkts_in;
	case LB_BYTES: return out ? st->bytes_out : st->bytes_in;
	default: return st->conns;
	}
}

/* One family over every service (backends false) or backend. */
static void lb_family(struct metrics_out *m, const struct lb_insts *l, const char *fam,
		      enum metrics_type type, const char *help, enum lb_field f, bool backends)
{
	char svc[64], be[64];
	bool directions = f == LB_PKTS || f == LB_BYTES;

	metrics_family(m, fam, type, help);
	for (size_t i = 0; i < l->n; i++) {
		for (__u32 s = 0; s < l->v[i].conf.n; s++) {
			const struct lb_service_info *si = &l->v[i].conf.svcs[s];

			lb_service_text(&si->key, svc, sizeof(svc));
			for (__u32 b = 0; b < (backends ? si->nbackends : 1); b++) {
				const struct lb_backend_info *bi = backends ? &si->backends[b] : NULL;
				const struct lb_stats *st = bi ? &bi->stats : &si->stats;

				if (bi)
					lb_backend_text(&bi->addr, be, sizeof(be));
				for (int d = 0; d < (directions ? 2 : 1); d++) {
					const char *labels[9];
					int k = 0;
					__u64 v = f == LB_UP ? bi->up : f == LB_WEIGHT ? bi->conf.weight :
						  lb_value(st, f, d);

					labels[k++] = "instance";
					labels[k++] = l->v[i].name;
					labels[k++] = "service";
					labels[k++] = svc;
					if (bi) {
						labels[k++] = "backend";
						labels[k++] = be;
					}
					if (directions) {
						labels[k++] = "direction";
						labels[k++] = d ? "out" : "in";
					}
					labels[k] = NULL;
					metrics_sample_u64(m, fam, labels, v);
				}
			}
		}
	}
}

static int lb_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	struct lb_insts l = { .ctx = ctx };
	int err = 0;

	if (ctx) {
		err = sl_instance_foreach(ctx, lb_inst_cb, &l);
		err = l.err ?: err;
		if (err) {
			metrics_fail(m, "lb: %s", sl_errmsg());
			goto out;
		}
	}
	lb_family(m, &l, "sluice_lb_service_packets_total", METRICS_COUNTER,
		  "Packets of a virtual service: in (client to service) and out (replies translated back).",
		  LB_PKTS, false);
	lb_family(m, &l, "sluice_lb_service_bytes_total", METRICS_COUNTER,
		  "Bytes of a virtual service, by direction.", LB_BYTES, false);
	lb_family(m, &l, "sluice_lb_service_connections_total", METRICS_COUNTER,
		  "Connections (flows) a virtual service scheduled.", LB_CONNS, false);
	lb_family(m, &l, "sluice_lb_backend_packets_total", METRICS_COUNTER,
		  "Packets sent to (in) and back from (out) a backend.", LB_PKTS, true);
	lb_family(m, &l, "sluice_lb_backend_bytes_total", METRICS_COUNTER,
		  "Bytes to and from a backend.", LB_BYTES, true);
	lb_family(m, &l, "sluice_lb_backend_connections_total", METRICS_COUNTER,
		  "Connections scheduled to a backend.", LB_CONNS, true);
	lb_family(m, &l, "sluice_lb_backend_up", METRICS_GAUGE,
		  "1 when the backend is up (health), 0 when down.", LB_UP, true);
	lb_family(m, &l, "sluice_lb_backend_weight", METRICS_GAUGE,
		  "The backend's weight (0: drained, no new connections).", LB_WEIGHT, true);
out:
	for (size_t i = 0; i < l.n; i++)
		lb_conf_free(&l.v[i].conf);
	free(l.v);
	return err;
}

METRICS_COLLECTOR(lb_metrics, lb_collect);
