// SPDX-License-Identifier: GPL-2.0
/* NAT metrics, read through nf/nat/nat.h: live mappings by kind and state,
 * and per rule (as the user wrote it) the flows translated and the flows
 * refused for want of a free port. Cardinality: at most 3 kinds times 2
 * states, and one series per rule (NAT_MAX_SPECS). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "nat.h"
#include "sluiced.h"
#include "metrics.h"

struct nat_counts {
	__u64 mappings[4][2]; /* by enum nat_kind, by replied */
};

static int nat_count_mapping(const struct nat_mapping *mp, void *arg)
{
	struct nat_counts *c = arg;

	if (mp->kind < 4)
		c->mappings[mp->kind][!!(mp->state & NAT_ST_REPLIED)]++;
	return 0;
}

struct nat_view {
	bool loaded;
	struct nat_specs specs;
	struct nat_rule rules[NAT_MAX_RULES];
	struct nat_counter counters[NAT_MAX_RULES];
	__u32 nrules;
	struct nat_counts counts;
};

static int nat_state_read(struct sl_ctx *ctx, struct nat_view *s)
{
	struct sl_instance inst;
	int err;

	if (!ctx || sl_instance_get(ctx, NAT_INSTANCE, &inst) || strcmp(inst.type, NAT_TYPE))
		return 0; /* no NAT instance: headers only */
	err = nat_read_specs(ctx, &s->specs);
	err = err ?: nat_read_rules(ctx, s->rules, s->counters, &s->nrules);
	err = err ?: nat_mappings_foreach(ctx, nat_count_mapping, &s->counts);
	s->loaded = !err;
	return err;
}

/* A rule's counter: the sum over the rules compiled from spec i. */
static __u64 nat_spec_sum(const struct nat_view *s, __u32 i, bool no_port)
{
	__u64 sum = 0;

	for (__u32 r = 0; r < s->nrules; r++)
		if (s->rules[r].spec == i)
			sum += no_port ? s->counters[r].no_port : s->counters[r].flows;
	return sum;
}

static void nat_rule_family(struct metrics_out *m, const struct nat_view *s, bool no_port)
{
	const char *fam = no_port ? "sluice_nat_rule_no_port_total" : "sluice_nat_rule_flows_total";

	metrics_family(m, fam, METRICS_COUNTER, no_port ?
		       "New flows a NAT rule could not translate: no free address and port (dropped, reason nat-no-port)." :
		       "Flows a NAT rule translated (one mapping each).");
	for (__u32 i = 0; s->loaded && i < s->specs.n; i++)
		metrics_sample_u64(m, fam, (const char *const[]){ "rule", s->specs.spec[i].name,
				   "text", s->specs.spec[i].text, NULL }, nat_spec_sum(s, i, no_port));
}

static int nat_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	static const __u8 kinds[] = { NAT_SNAT, NAT_DNAT }; /* SNAT covers masquerade */
	struct nat_view *s = calloc(1, sizeof(*s));
	int err;

	if (!s) {
		metrics_fail(m, "nat: out of memory");
		return -ENOMEM;
	}
	err = nat_state_read(ctx, s);
	if (err) {
		metrics_fail(m, "nat: %s", sl_errmsg());
		goto out;
	}
	metrics_family(m, "sluice_nat_mappings", METRICS_GAUGE,
		       "Live NAT mappings by kind (snat includes masquerade) and whether a reply came back.");
	for (size_t k = 0; s->loaded && k < sizeof(kinds); k++)
		for (int r = 0; r < 2; r++)
			metrics_sample_u64(m, "sluice_nat_mappings",
				(const char *const[]){ "kind", nat_kind_name(kinds[k]),
						       "state", r ? "replied" : "unreplied", NULL },
				s->counts.mappings[kinds[k]][r]);
	nat_rule_family(m, s, false);
	nat_rule_family(m, s, true);
out:
	free(s);
	return err;
}

METRICS_COLLECTOR(nat_metrics, nat_collect);
