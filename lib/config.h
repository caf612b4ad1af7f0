/* SPDX-License-Identifier: GPL-2.0 */
/* Declarative configuration: a YAML document describing the whole sluice
 * state of a network namespace (its instances, NAT rules and chains), the
 * difference from what is loaded, applying it, and exporting the loaded
 * state as the same YAML. See docs/config.md for the schema.
 *
 *   sl_config_parse()   text -> desired state; validates everything (every
 *                       rule, every device, every reference), touches no
 *                       sluice state
 *   sl_config_diff()    desired state vs. loaded state -> plan
 *   sl_config_apply()   runs a plan (under the writer lock the caller holds)
 *   sl_config_export()  loaded state -> YAML (or JSON) that parses back to a
 *                       plan with no change
 *
 * Errors follow libsluice: 0 or -errno, the message in sl_errmsg(). Parse
 * errors read "NAME:LINE: PATH: reason", PATH naming the field, e.g.
 * "web.yaml:7: firewalls.web-in.rules[1]: dport: bad port or range '80-x'". */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdio.h>
#include "sluice.h"
#include "firewall.h"
#include "conntrack.h"
#include "flowmon.h"
#include "httpmon.h"
#include "router.h"
#include "nat.h"
#include "lb.h"

/* Documents larger than this are refused (a 65,536-rule firewall is about
 * 3 MiB of YAML). */
#define SL_CONFIG_MAX_BYTES (64u << 20)

struct sl_config_fw {
	char name[SL_NAME_MAX];
	struct fw_ruleset rs; /* parsed rules, default in rs.default_action */
	unsigned int line; /* where the document defines it (1-based) */
};

/* A load balancer as the document describes it. */
struct sl_config_lb {
	bool forward, decap; /* sluice lb forward, sluice lb decap */
	/* services sorted by protocol, family, VIP and port, their backends
	 * by address and port; mh_size 0 unless the scheduler is mh */
	struct lb_conf conf;
};

/* An instance of another NF type the schema describes: conntrack,
 * flowmon, router, httpmon, nat or lb (type says which; the other fields
 * stay 0). nat and lb own what they point to. */
struct sl_config_nf {
	char name[SL_NAME_MAX];
	char type[16];
	unsigned int line;
	struct ct_options ct; /* conntrack: table size and options (cfg_set) */
	__u32 max_flows; /* flowmon */
	struct httpmon_opts http; /* httpmon: ports and routes sorted */
	struct nat_specs *nat; /* nat (named NAT_INSTANCE): its rules, in order */
	struct sl_config_lb *lb; /* lb */
};

struct sl_config_chain {
	char dev[32];
	__u32 ifindex;
	enum sl_hook hook;
	__u32 n;
	char names[SL_CHAIN_MAX][SL_NAME_MAX];
	unsigned int line;
};

/* The desired state, as the document says it. */
struct sl_config {
	struct sl_config_fw *fws; /* sorted by name */
	__u32 nfws;
	struct sl_config_nf *nfs; /* sorted by name */
	__u32 nnfs;
	struct sl_config_chain *chains; /* in document order */
	__u32 nchains;
};

/* Parses a document (YAML 1.1; JSON is accepted as YAML). name labels
 * error messages (a file name, or "<stdin>"). On error nothing is returned
 * and sl_errmsg() names the line and field path. */
int sl_config_parse(const char *text, size_t len, const char *name,
		    struct sl_config **cfg);
/* The same from a file; path "-" reads standard input. */
int sl_config_parse_file(const char *path, struct sl_config **cfg);
/* Reads a document as sl_config_parse_file() does, with its errors (the
 * file, its size): *text NUL-terminated (it may hold NULs before *len),
 * for the caller to free. */
int sl_config_read_file(const char *path, char **text, size_t *len);
/* The name sl_config_parse_file() gives path in its messages ("<stdin>"
 * for "-"). */
const char *sl_config_file_name(const char *path);
void sl_config_free(struct sl_config *cfg);

enum sl_config_op {
	SL_CFG_CREATE,
	SL_CFG_REPLACE,
	SL_CFG_DELETE,
};

/* One instance to create, replace or delete. */
struct sl_config_inst_change {
	enum sl_config_op op;
	char name[SL_NAME_MAX];
	char type[16];
	const struct sl_config_fw *fw; /* desired (create, replace) */
	const struct sl_config_nf *nf; /* desired, another type */
	struct sl_config_nf old_nf; /* loaded (replace or delete of another type; owned) */
	struct fw_ruleset old; /* loaded (replace, delete of a firewall) */
	/* replace: for each desired rule, the index of the same rule in old
	 * (its counters carry over), or -1 for a new rule; from[n] is 0 when
	 * the default stays the same (its counter carries over), else -1 */
	__s32 *from;
};

/* One chain to set (create or change) or delete. */
struct sl_config_chain_change {
	enum sl_config_op op;
	char dev[32];
	__u32 ifindex;
	enum sl_hook hook;
	__u32 n, old_n; /* instances wanted, and loaded before */
	char names[SL_CHAIN_MAX][SL_NAME_MAX];
	char old_names[SL_CHAIN_MAX][SL_NAME_MAX];
};

struct sl_config_plan {
	struct sl_config_inst_change *insts; /* creates and replaces by name, then deletes */
	__u32 ninsts;
	struct sl_config_chain_change *chains;
	__u32 nchains;
};

/* Computes what applying cfg would change. ctx may be NULL when the
 * namespace has no sluice state yet (everything is created). The plan
 * points into cfg: keep cfg until the plan is freed. Refuses (-EBUSY etc.)
 * what apply would certainly fail on, e.g. an interface whose XDP hook
 * another program holds, or an instance name taken by another NF type. */
int sl_config_diff(struct sl_ctx *ctx, const struct sl_config *cfg,
		   struct sl_config_plan **plan);
void sl_config_plan_free(struct sl_config_plan *plan);
bool sl_config_plan_empty(const struct sl_config_plan *plan);
/* Prints the plan for people: one line per change, '+' create, '~'
 * replace, '-' delete, with the rules that differ; "no changes" when
 * empty. */
int sl_config_plan_print(const struct sl_config_plan *plan, FILE *f);
/* The same as one JSON object {"changes": N, "instances": [...], "chains": [...]}. */
int sl_config_plan_print_json(const struct sl_config_plan *plan, FILE *f);

/* Applies a plan computed by sl_config_diff() on the same ctx, which must
 * be opened with SL_OPEN_WRITE (one lock for the whole apply). Order:
 * instances created and replaced (each atomically), then chains set, then
 * unused instances deleted, so no packet sees a chain naming a deleted
 * instance. If the kernel refuses a step, the steps done so far are undone
 * as far as possible and the error is returned. */
int sl_config_apply(struct sl_ctx *ctx, const struct sl_config_plan *plan);

/* Writes cfg as a document (json: as JSON) that sl_config_parse() reads
 * back into the same configuration. */
int sl_config_write(const struct sl_config *cfg, FILE *f, bool json);
/* The loaded state as a configuration (ctx NULL: empty); firewalls sorted
 * by name, chains by interface name and hook. Fails on an instance this
 * schema cannot describe. */
int sl_config_read_state(struct sl_ctx *ctx, struct sl_config **cfg);

/* Writes the loaded state as a document (json: as JSON) that
 * sl_config_parse() reads back into a plan with no change. Firewalls are
 * sorted by name, chains by interface and hook; the output is stable. ctx
 * may be NULL (no state: an empty document). */
int sl_config_export(struct sl_ctx *ctx, FILE *f, bool json);

#endif
