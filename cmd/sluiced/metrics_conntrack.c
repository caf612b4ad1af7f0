// SPDX-License-Identifier: GPL-2.0
/* Conntrack metrics, read through nf/conntrack/conntrack.h: live entries
 * by protocol and state, and each instance's counters. Cardinality: per
 * instance at most 5 protocols (tcp, udp, icmp, icmpv6, other) times the
 * TCP states (or replied/unreplied) in sluice_ct_entries. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "conntrack.h"
#include "sluiced.h"
#include "metrics.h"

#define CT_GROUPS_MAX 64

struct ct_group {
	const char *proto;
	const char *state;
	__u64 n;
};

struct ct_inst {
	char name[SL_NAME_MAX];
	struct ct_stats st;
	struct ct_group groups[CT_GROUPS_MAX];
	int ngroups;
};

struct ct_insts {
	struct sl_ctx *ctx;
	struct ct_inst *v;
	size_t n, cap;
	int err;
};

static const char *ct_proto_class(__u8 proto)
{
	switch (proto) {
	case 6: return "tcp";
	case 17: return "udp";
	case 1: return "icmp";
	case 58: return "icmpv6";
	}
	return "other";
}

static int ct_count_conn(const struct ct_conn *c, void *arg)
{
	struct ct_inst *ci = arg;
	const char *proto = ct_proto_class(c->key.proto), *state;

	if (c->key.proto == 6)
		state = ct_tcp_state_name(c->e.state & CT_ST_TCP_MASK);
	else
		state = c->e.state & CT_ST_SEEN_REPLY ? "replied" : "unreplied";
	if (!state)
		state = "unknown";
	for (int i = 0; i < ci->ngroups; i++) {
		if (ci->groups[i].proto == proto && !strcmp(ci->groups[i].state, state)) {
			ci->groups[i].n++;
			return 0;
		}
	}
	if (ci->ngroups == CT_GROUPS_MAX)
		return 0; /* cannot happen: the states are a short fixed list */
	ci->groups[ci->ngroups++] = (struct ct_group){ proto, state, 1 };
	return 0;
}

static int ct_inst_cb(const struct sl_instance *inst, void *arg)
{
	struct ct_insts *l = arg;
	struct ct_inst *ci;

	if (strcmp(inst->type, CT_TYPE))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct ct_inst *v = realloc(l->v, cap * sizeof(*v));

		if (!v) {
			l->err = sl_err(-ENOMEM, "out of memory");
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	ci = &l->v[l->n++];
	memset(ci, 0, sizeof(*ci));
	snprintf(ci->name, sizeof(ci->name), "%s", inst->name);
	l->err = ct_stats_read(l->ctx, inst->name, &ci->st, NULL);
	l->err = l->err ?: ct_foreach(l->ctx, inst->name, ct_count_conn, ci);
	return l->err ? 1 : 0;
}

/* One counter family; label (unless NULL) takes each field's value. */
struct ct_field {
	const char *value;
	size_t off; /* in struct ct_stats */
};

static void ct_counter(struct metrics_out *m, const struct ct_insts *l, const char *fam,
		       const char *help, const char *label, const struct ct_field *f, int nf)
{
	metrics_family(m, fam, METRICS_COUNTER, help);
	for (size_t i = 0; i < l->n; i++) {
		for (int k = 0; k < nf; k++) {
			__u64 v = *(const __u64 *)((const char *)&l->v[i].st + f[k].off);

			metrics_sample_u64(m, fam, (const char *const[]){ "instance", l->v[i].name,
					   label, label ? f[k].value : NULL, NULL }, v);
		}
	}
}

#define CT_F(v, field) { v, offsetof(struct ct_stats, field) }

static int ct_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	static const struct ct_field classes[] = {
		CT_F("new", new), CT_F("established", established), CT_F("related", related),
		CT_F("invalid", invalid), CT_F("untracked", untracked),
	};
	static const struct ct_field removed[] = {
		CT_F("expired-on-lookup", expired), CT_F("expired-by-sweep", gc_deleted),
		CT_F("killed", killed),
	};
	static const struct ct_field created[] = { CT_F("created", created) };
	static const struct ct_field sweeps[] = { CT_F("sweep", gc_runs) };
	struct ct_insts l = { .ctx = ctx };
	int err = 0;

	if (ctx) {
		err = sl_instance_foreach(ctx, ct_inst_cb, &l);
		err = l.err ?: err;
		if (err) {
			metrics_fail(m, "conntrack: %s", sl_errmsg());
			goto out;
		}
	}
	metrics_family(m, "sluice_ct_entries", METRICS_GAUGE,
		       "Live connections by protocol and state (TCP states as the kernel names them; others replied or unreplied).");
	for (size_t i = 0; i < l.n; i++)
		for (int g = 0; g < l.v[i].ngroups; g++)
			metrics_sample_u64(m, "sluice_ct_entries",
				(const char *const[]){ "instance", l.v[i].name,
						       "proto", l.v[i].groups[g].proto,
						       "state", l.v[i].groups[g].state, NULL },
				l.v[i].groups[g].n);
	ct_counter(m, &l, "sluice_ct_packets_total",
		   "Packets conntrack classified, by the state it gave them.", "ct_state",
		   classes, sizeof(classes) / sizeof(classes[0]));
	ct_counter(m, &l, "sluice_ct_entries_created_total", "Connections created.", NULL,
		   created, 1);
	ct_counter(m, &l, "sluice_ct_entries_removed_total",
		   "Connections removed: expired (found by a packet or by the sweep) or killed by TCP.",
		   "reason", removed, sizeof(removed) / sizeof(removed[0]));
	ct_counter(m, &l, "sluice_ct_sweeps_total", "Runs of the in-kernel expiry sweep.", NULL,
		   sweeps, 1);
out:
	free(l.v);
	return err;
}

METRICS_COLLECTOR(conntrack_metrics, ct_collect);
