// SPDX-License-Identifier: GPL-2.0
/* Flow monitor metrics: per instance the table's size and counters, and
 * the top FM_METRICS_TOP flows by bytes. Cardinality is bounded: at most
 * FM_METRICS_TOP series per instance in each per-flow family, whatever
 * the number of flows; `sluice flows` shows them all. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "flowmon.h"
#include "sluiced.h"
#include "metrics.h"

#define FM_METRICS_TOP 10

struct fm_inst {
	char name[SL_NAME_MAX];
	struct fm_info info;
	struct fm_flow_view *top; /* the largest flows, at most FM_METRICS_TOP */
	size_t ntop;
};

struct fm_insts {
	struct sl_ctx *ctx;
	struct fm_inst *v;
	size_t n, cap;
	int err;
};

static int fm_inst_read(struct sl_ctx *ctx, const char *name, struct fm_inst *fi)
{
	size_t n;
	int err;

	snprintf(fi->name, sizeof(fi->name), "%s", name);
	err = fm_info_read(ctx, name, &fi->info);
	err = err ?: fm_flows_read(ctx, name, &fi->top, &n);
	if (err)
		return err;
	fm_flows_sort(fi->top, n, FM_SORT_BYTES);
	fi->ntop = n < FM_METRICS_TOP ? n : FM_METRICS_TOP;
	return 0;
}

static int fm_inst_cb(const struct sl_instance *inst, void *arg)
{
	struct fm_insts *l = arg;

	if (strcmp(inst->type, FM_TYPE))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		struct fm_inst *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->err = -ENOMEM;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->err = fm_inst_read(l->ctx, inst->name, &l->v[l->n]);
	l->n++; /* freed either way */
	return l->err ? 1 : 0;
}

/* One per-instance family. */
static void fm_write_inst(struct metrics_out *m, const struct fm_insts *l,
			  const char *fam, enum metrics_type type, const char *help,
			  __u64 (*get)(const struct fm_info *))
{
	metrics_family(m, fam, type, help);
	for (size_t i = 0; i < l->n; i++)
		metrics_sample_u64(m, fam, (const char *const[]){ "instance", l->v[i].name, NULL },
				   get(&l->v[i].info));
}

static __u64 get_flows(const struct fm_info *i) { return i->flows; }
static __u64 get_max(const struct fm_info *i) { return i->max_flows; }
static __u64 get_created(const struct fm_info *i) { return i->stats.created; }
static __u64 get_failed(const struct fm_info *i) { return i->stats.insert_failed; }
static __u64 get_retrans(const struct fm_info *i) { return i->stats.retrans; }

/* Handshake times per instance: counted in BPF as they are measured, so
 * the histogram only grows (evictions do not touch it). */
static void fm_write_rtt(struct metrics_out *m, const struct fm_insts *l)
{
	static const __u32 bounds_us[FM_RTT_BUCKETS - 1] = FM_RTT_BOUNDS_US;
	double bounds[FM_RTT_BUCKETS - 1];

	for (int b = 0; b < FM_RTT_BUCKETS - 1; b++)
		bounds[b] = bounds_us[b] / 1e6;
	metrics_family(m, "sluice_flowmon_handshake_seconds", METRICS_HISTOGRAM,
		       "SYN to SYN-ACK times a flow monitor measured, one per TCP flow.");
	for (size_t i = 0; i < l->n; i++) {
		const struct fm_stats *st = &l->v[i].info.stats;

		metrics_histogram(m, (const char *const[]){ "instance", l->v[i].name, NULL },
				  bounds, st->rtt_buckets, FM_RTT_BUCKETS - 1,
				  st->rtt_buckets[FM_RTT_BUCKETS - 1], st->rtt_sum_ns / 1e9);
	}
}

enum fm_top_field { TOP_BYTES, TOP_PACKETS, TOP_RTT };

static void fm_write_top(struct metrics_out *m, const struct fm_insts *l,
			 enum fm_top_field f)
{
	static const char *const fams[] = { "sluice_flowmon_top_flow_bytes_total",
					    "sluice_flowmon_top_flow_packets_total",
					    "sluice_flowmon_top_flow_rtt_seconds" };
	static const char *const helps[] = {
		"Bytes of the largest flows (both directions; at most 10 flows per instance).",
		"Packets of the largest flows (both directions; at most 10 flows per instance).",
		"SYN to SYN-ACK time of the largest TCP flows, as seen by the monitor.",
	};
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], sp[8], dp[8], pb[8];

	metrics_family(m, fams[f], f == TOP_RTT ? METRICS_GAUGE : METRICS_COUNTER, helps[f]);
	for (size_t i = 0; i < l->n; i++) {
		for (size_t k = 0; k < l->v[i].ntop; k++) {
			const struct fm_flow_view *v = &l->v[i].top[k];
			const char *const labels[] = {
				"instance", l->v[i].name, "proto", fm_proto_name(v->proto, pb),
				"src", src, "sport", sp, "dst", dst, "dport", dp, NULL
			};

			if (f == TOP_RTT && !v->rtt_ns)
				continue;
			inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->src, src, sizeof(src));
			inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->dst, dst, sizeof(dst));
			snprintf(sp, sizeof(sp), "%u", v->sport);
			snprintf(dp, sizeof(dp), "%u", v->dport);
			if (f == TOP_RTT)
				metrics_sample(m, fams[f], labels, v->rtt_ns / 1e9);
			else
				metrics_sample_u64(m, fams[f], labels, f == TOP_BYTES ?
						   v->bytes[0] + v->bytes[1] :
						   v->packets[0] + v->packets[1]);
		}
	}
}

static int fm_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	struct fm_insts l = { .ctx = ctx };
	int err = 0;

	if (ctx) {
		err = sl_instance_foreach(ctx, fm_inst_cb, &l);
		err = l.err ?: err;
		if (err) {
			metrics_fail(m, "flowmon: %s", sl_errmsg());
			goto out;
		}
	}
	fm_write_inst(m, &l, "sluice_flowmon_flows", METRICS_GAUGE,
		      "Flows in a flow monitor's table now.", get_flows);
	fm_write_inst(m, &l, "sluice_flowmon_max_flows", METRICS_GAUGE,
		      "Size of a flow monitor's table (the least recently seen flows go first).",
		      get_max);
	fm_write_inst(m, &l, "sluice_flowmon_flows_created_total", METRICS_COUNTER,
		      "Flows a flow monitor inserted.", get_created);
	fm_write_inst(m, &l, "sluice_flowmon_insert_failed_total", METRICS_COUNTER,
		      "Packets whose flow could not be inserted.", get_failed);
	fm_write_inst(m, &l, "sluice_flowmon_retransmits_total", METRICS_COUNTER,
		      "TCP data segments a flow monitor counted as retransmitted.", get_retrans);
	fm_write_rtt(m, &l);
	fm_write_top(m, &l, TOP_BYTES);
	fm_write_top(m, &l, TOP_PACKETS);
	fm_write_top(m, &l, TOP_RTT);
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].top);
	free(l.v);
	return err;
}

METRICS_COLLECTOR(flowmon_metrics, fm_collect);
