/* SPDX-License-Identifier: GPL-2.0 */
/* Firewall NF control code: rule files -> rule set -> decision tree -> maps,
 * and back (rules with their counters). */
#ifndef SLUICE_FIREWALL_H
#define SLUICE_FIREWALL_H

#include <stdio.h>
#include <linux/bpf.h> /* struct bpf_spin_lock in firewall_abi.h */
#include "sluice.h"
#include "firewall_abi.h"

#define FW_TYPE "firewall"

struct fw_ruleset {
	struct fw_rule *rules;
	__u32 n;
	__u32 cap;
	__u32 default_action; /* enum fw_action */
	bool has_default;
};

void fw_ruleset_free(struct fw_ruleset *rs);

/* Parses one rule (no ACTION-less lines, no comments) from its words.
 * On error returns -EINVAL with the reason in sl_errmsg(). */
int fw_rule_parse(const char *text, struct fw_rule *rule);
/* Parses a rule file (path "-" is standard input). Errors name the file,
 * the line and what is wrong; nothing is returned on error. */
int fw_ruleset_parse_file(const char *path, struct fw_ruleset *rs);
int fw_ruleset_parse_stream(FILE *f, const char *name, struct fw_ruleset *rs);
int fw_ruleset_add(struct fw_ruleset *rs, const struct fw_rule *rule,
		   __u32 pos);
/* Prints a rule back in rule-file syntax. */
int fw_rule_format(const struct fw_rule *rule, char *buf, size_t len);

/* The decision tree as the BPF program reads it. */
struct fw_tree {
	struct fw_node *nodes;
	__u32 nnodes, cap_nodes;
	__u32 *leaves;
	__u32 nleaves, cap_leaves;
	__u32 ntrees;
	__u32 roots[FW_MAX_TREES];
	__u32 depth; /* deepest leaf */
	__u32 max_leaf; /* longest candidate list */
	/* The same trees packed as the BPF program walks them. */
	struct fw_snode *snodes;
	__u32 nsnodes, cap_snodes;
	__u32 sroots[FW_MAX_TREES];
};
int fw_tree_build(const struct fw_ruleset *rs, struct fw_tree *tree);
void fw_tree_free(struct fw_tree *tree);
/* Reference classifier: the first rule matching a packet key, linear. */
int fw_classify_linear(const struct fw_ruleset *rs, const __u64 *key,
		       __u8 tcp_flags);
/* The same through the tree, as the BPF program does it. */
int fw_classify_tree(const struct fw_ruleset *rs, const struct fw_tree *tree,
		     const __u64 *key, __u8 tcp_flags);

/* Loads rs as the whole rule set of instance name (created if needed) and
 * switches it in atomically. counters, when not NULL, holds per-CPU values
 * (per-rule, as read by fw_read) to carry over: counters[i] for rule i. */
int fw_load(struct sl_ctx *ctx, const char *name, const struct fw_ruleset *rs,
	    const struct fw_counter *const *carry);

/* Everything a rule set beyond plain rules needs (iptables): blocks,
 * chains, counters shared between rules, limits, log prefixes, and a text
 * kept pinned with it (read back by fw_blob_read). */
struct fw_load_opts {
	const char *type; /* instance type; FW_TYPE when NULL */
	__u32 mode; /* enum fw_mode */
	const struct fw_block *blocks;
	__u32 nblocks;
	__u32 top[2][FW_CHAINS];
	__u32 ncounters;
	const struct fw_limit *limits;
	__u32 nlimits;
	const char (*logs)[FW_LOG_PREFIX];
	__u32 nlogs;
	const void *blob;
	size_t blob_len;
	const struct fw_ifaddr *ifaddrs; /* by ifindex, for REJECT answers */
	__u32 nifaddrs;
	/* Per-CPU values to start counter i with (NULL: zero). */
	const struct fw_counter *const *carry;
};
#define FW_BLOB_CHUNK 4096
int fw_load_ex(struct sl_ctx *ctx, const char *name, const struct fw_ruleset *rs,
	       const struct fw_load_opts *opts);
/* The blob pinned with a rule set, from its instance folder (malloc'd,
 * NUL-terminated). */
int fw_blob_read(int dir_fd, char **text);

/* Reads back the loaded rule set and summed counters (n + 1 entries: the
 * last is the default policy). *percpu, when asked, gets per-CPU values. */
int fw_read(struct sl_ctx *ctx, const char *name, struct fw_ruleset *rs,
	    struct fw_counter **counters, struct fw_counter ***percpu);
void fw_percpu_free(struct fw_counter **percpu, __u32 n);

/* Inserts a rule before position pos (1-based; 0 appends) or deletes the
 * rule at pos, keeping the other rules' counters. */
int fw_rule_insert(struct sl_ctx *ctx, const char *name, __u32 pos,
		   const struct fw_rule *rule);
int fw_rule_delete(struct sl_ctx *ctx, const char *name, __u32 pos);

#endif
