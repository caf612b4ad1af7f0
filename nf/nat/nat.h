/* SPDX-License-Identifier: GPL-2.0 */
/* NAT NF control code: rules as the user writes them -> compiled rules ->
 * maps, and the mappings back.
 *
 * One NAT instance per network namespace (NAT_INSTANCE) holds every rule;
 * it runs on TC ingress and egress of each interface a rule names. A rule
 * is stored as its text (NAT_KIND [--option VALUE]...) and compiled again
 * on every load, so masquerade rules pick up their interface's current
 * address on each reload. */
#ifndef SLUICE_NAT_H
#define SLUICE_NAT_H

#include <stdbool.h>
#include "sluice.h"
#include "nat_abi.h"

#define NAT_TYPE "nat"
#define NAT_INSTANCE "nat"
struct nat_specs {
	struct nat_spec spec[NAT_MAX_SPECS];
	__u32 n;
};

/* Checks a rule's text (words after its name) and compiles it into at most
 * max rules (masquerade makes one per family the interface has an address
 * of). Returns the number of rules, or -errno with a message naming the
 * rule and the option. */
int nat_spec_compile(const struct nat_spec *spec, __u8 index,
		     struct nat_rule *out, int max);
/* Joins words into a spec's text, checking them (compiling) first. */
int nat_spec_make(struct nat_spec *spec, const char *name, int argc,
		  char *const *argv);

/* Loads specs as the whole rule set and switches it in atomically; the
 * mappings stay (except those to an address no SNAT rule gives any more).
 * Puts the instance on the TC hooks of every interface a rule names and
 * takes it off the others. */
int nat_load(struct sl_ctx *ctx, const struct nat_specs *specs);
/* The loaded rules; -ENOENT when there is no NAT instance. */
int nat_read_specs(struct sl_ctx *ctx, struct nat_specs *specs);
/* The compiled rules and their summed counters (at most NAT_MAX_RULES). */
int nat_read_rules(struct sl_ctx *ctx, struct nat_rule *rules,
		   struct nat_counter *counters, __u32 *n);

int nat_rule_add(struct sl_ctx *ctx, const struct nat_spec *spec);
int nat_rule_del(struct sl_ctx *ctx, const char *name);
/* Compiles the loaded rules again (new masquerade addresses). */
int nat_reload(struct sl_ctx *ctx);

/* Puts the NAT instance on dev's XDP ingress chain, before the first
 * router (moving it there if it is after one): the fast path, where flows
 * the router forwards are translated (docs/nat.md). Makes the instance
 * with no rules when there is none. */
int nat_attach(struct sl_ctx *ctx, const char *dev);
/* Takes it off dev's XDP ingress chain. */
int nat_detach(struct sl_ctx *ctx, const char *dev);

/* A mapping: the flow as its first packet had it, and as translated. */
struct nat_mapping {
	__u8 kind; /* NAT_SNAT (masquerade too) or NAT_DNAT */
	__u8 state; /* enum nat_state */
	struct nat_key orig;
	struct nat_key xlat;
	__u64 expires_in_ns;
	__u32 ifindex;
};
typedef int (*nat_mapping_cb)(const struct nat_mapping *m, void *arg);
/* Visits the live mappings (SNAT then DNAT). */
int nat_mappings_foreach(struct sl_ctx *ctx, nat_mapping_cb cb, void *arg);
/* Removes every mapping; returns how many there were. */
int nat_flush(struct sl_ctx *ctx);

const char *nat_kind_name(__u8 kind);

#endif
