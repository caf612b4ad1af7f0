// SPDX-License-Identifier: GPL-2.0
/* sluice: the command line, a thin shell over libsluice.
 *   sluice [-j|--json] [-v] [--socket PATH] [--no-daemon] OBJECT COMMAND [ARGS]
 *   (-h anywhere for help). Writes go through sluiced when it serves this
 *   network namespace on PATH ($SLUICE_SOCKET, default
 *   /run/sluice/sluiced.sock), else directly; --no-daemon or
 *   SLUICE_NO_DAEMON=1: always directly. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include "sluice.h"
#include "events.h"
#include "firewall.h"
#include "config.h"
#include "out.h"
#include "client.h"
#include "cli.h"

/* Commands that change state go through sluiced when one serves this
 * network namespace (client.c), else straight through libsluice under the
 * same writer lock. Everything a direct write checks before changing state
 * is checked here first with the same library calls, so a refusal reads the
 * same in both modes; the daemon checks again under its lock. `apply`
 * (--dry-run too) sends the document as it is (POST /v1/apply); sluiced
 * parses and checks all of it before changing anything, the plan it answers
 * is printed as direct mode prints it, and a refusal names the file and
 * line as direct mode does. Commands that only read (show, list, status,
 * chain show, events, export, diff) always read the pinned state directly:
 * pinned state is readable by any root process, and one code path
 * guarantees identical output in both modes. `events config --sample N`
 * writes directly in both modes (under the writer lock): the API has no
 * route that sets sampling beyond one GET /v1/events reading. */


static int usage_of(const struct cmd *c, const char *prefix)
{
	fprintf(stderr, "Usage: sluice %s%s%s\n", prefix, c->name, c->usage);
	return 0;
}

static bool want_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

/* Runs the command named argv[0] from table; prints usage when unknown. */
int cli_dispatch(const struct cmd *table, const char *prefix, int argc,
		    char **argv)
{
	const struct cmd *c;

	if (argc < 1 || !strcmp(argv[0], "help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "--help")) {
		fprintf(stderr, "Usage:\n");
		for (c = table; c->name; c++)
			fprintf(stderr, "  sluice %s%s%s\n", prefix, c->name, c->usage);
		return argc < 1 ? 2 : 0;
	}
	for (c = table; c->name; c++) {
		if (strcmp(argv[0], c->name))
			continue;
		if (!c->group && want_help(argc - 1, argv + 1))
			return usage_of(c, prefix);
		return c->fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "sluice: unknown command '%s%s'; try 'sluice %shelp'\n",
		prefix, argv[0], prefix);
	return 2;
}

int cli_fail(int err)
{
	(void)err;
	fprintf(stderr, "sluice: %s\n", sl_errmsg());
	return 1;
}

int cli_bad_usage(const char *msg)
{
	fprintf(stderr, "sluice: %s\n", msg);
	return 2;
}

#define fail cli_fail
#define bad_usage cli_bad_usage
#define dispatch cli_dispatch

/* ---- chain ---------------------------------------------------------- */

static void print_chain(struct sl_ctx *ctx, __u32 ifindex, enum sl_hook hook,
			const struct sl_chain *chain);

/* Opens the state for reading, for the checks before a write through the
 * daemon: *ctx is NULL when this namespace has none yet. */
static int precheck_open(struct sl_ctx **ctx)
{
	int err = sl_open(ctx, 0);

	if (err == -ENOENT) {
		*ctx = NULL;
		return 0;
	}
	return err;
}

/* sl_chain_set()'s checks, then PUT /v1/chains/DEV/HOOK. */
static int api_chain_set(const char *dev, enum sl_hook hook, char **names, int n)
{
	struct sl_instance inst;
	struct sl_ctx *ctx;
	char path[256] = "/v1/chains/";
	json_t *body, *arr;
	int err;

	if (n > SL_CHAIN_MAX)
		return fail(sl_err(-E2BIG, "a chain holds at most %d instances", SL_CHAIN_MAX));
	err = sl_ifindex(dev);
	if (err < 0)
		return fail(err);
	err = precheck_open(&ctx);
	if (err)
		return fail(err);
	for (int i = 0; i < n && !err; i++) {
		err = ctx ? sl_instance_get(ctx, names[i], &inst)
			  : sl_err(-ENOENT, "no instance '%s'", names[i]);
		for (int j = 0; j < i && !err; j++)
			if (!strcmp(names[i], names[j]))
				err = sl_err(-EINVAL, "instance '%s' appears twice in the chain",
					     names[i]);
	}
	if (ctx)
		sl_close(ctx);
	if (err)
		return fail(err);
	arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_string(names[i]));
	body = json_pack("{s:o}", "instances", arr);
	cl_escape(path, sizeof(path), dev);
	strcat(path, "/");
	cl_escape(path, sizeof(path), sl_hook_name(hook));
	err = cl_call("PUT", path, body, NULL);
	json_decref(body);
	return err;
}

static int chain_set(int argc, char **argv)
{
	struct sl_ctx *ctx;
	enum sl_hook hook;
	int err;

	if (argc < 2)
		return bad_usage("chain set: need DEV and HOOK");
	if (sl_hook_parse(argv[1], &hook))
		return fail(-EINVAL);
	if (cl_daemon())
		return api_chain_set(argv[0], hook, argv + 2, argc - 2);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return fail(err);
	err = sl_chain_set(ctx, argv[0], hook, (const char *const *)argv + 2, argc - 2);
	sl_close(ctx);
	return err ? fail(err) : 0;
}

struct name_by_slot {
	__u32 slot;
	const char *name;
	char buf[SL_NAME_MAX];
};

static int find_slot_cb(const struct sl_instance *inst, void *arg)
{
	struct name_by_slot *q = arg;

	if (inst->slot != q->slot)
		return 0;
	snprintf(q->buf, sizeof(q->buf), "%s", inst->name);
	q->name = q->buf;
	return 1;
}

static void print_chain(struct sl_ctx *ctx, __u32 ifindex, enum sl_hook hook,
			const struct sl_chain *chain)
{
	char ifname[IF_NAMESIZE];

	if (!if_indextoname(ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "if%u", ifindex);
	out_open_obj(NULL);
	out_str("dev", "%s", ifname);
	out_str("hook", " %s:", sl_hook_name(hook));
	out_open_arr("instances");
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		struct name_by_slot q = { .slot = chain->slots[i], .name = "?" };

		sl_instance_foreach(ctx, find_slot_cb, &q);
		out_str(NULL, " %s", q.name);
	}
	out_close_arr();
	out_text("\n");
	out_close_obj();
}

static int print_chain_cb(__u32 ifindex, enum sl_hook hook,
			  const struct sl_chain *chain, void *arg)
{
	print_chain(arg, ifindex, hook, chain);
	return 0;
}

static int chain_show(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0);

	if (err == -ENOENT) {
		out_open_arr(NULL);
		out_close_arr();
		out_done();
		return 0;
	}
	if (err)
		return fail(err);
	out_open_arr(NULL);
	if (argc >= 1) {
		for (int h = 0; h < SL_HOOK_MAX; h++) {
			struct sl_chain chain;

			if (!sl_chain_get(ctx, argv[0], h, &chain))
				print_chain(ctx, sl_ifindex(argv[0]), h, &chain);
		}
	} else {
		sl_chain_foreach(ctx, print_chain_cb, ctx);
	}
	out_close_arr();
	out_done();
	sl_close(ctx);
	return 0;
}

static int chain_del(int argc, char **argv)
{
	char *args[2];

	if (argc != 2)
		return bad_usage("chain del: need DEV and HOOK");
	args[0] = argv[0];
	args[1] = argv[1];
	return chain_set(2, args);
}

static const struct cmd chain_cmds[] = {
	{ "set", chain_set, " DEV HOOK [INSTANCE ...]   (HOOK: ingress, tc-ingress, egress; no instance: detach)" },
	{ "show", chain_show, " [DEV]" },
	{ "del", chain_del, " DEV HOOK" },
	{}
};

static int do_chain(int argc, char **argv)
{
	return dispatch(chain_cmds, "chain ", argc, argv);
}

/* ---- firewall ------------------------------------------------------- */

struct fw_args {
	const char *dev;
	char name[SL_NAME_MAX];
	enum sl_hook hook;
	__u32 pos;
	int nrest;
	char **rest;
};

/* Parses "[DEV] [--name NAME] [--hook HOOK] [--pos N] REST..." where the
 * instance is NAME, or fw-DEV by default. */
static int fw_parse_args(int argc, char **argv, bool need_dev, struct fw_args *a)
{
	const char *name = NULL;
	int i;

	memset(a, 0, sizeof(*a));
	a->hook = SL_HOOK_XDP;
	a->rest = calloc(argc + 1, sizeof(char *));
	if (!a->rest)
		return -ENOMEM;
	/* With --name, DEV is only there when the command needs it. */
	for (i = 0; i + 1 < argc && !name; i++)
		if (!strcmp(argv[i], "--name"))
			name = argv[i + 1];
	bool want_dev = need_dev || !name;

	name = NULL;
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--hook") && i + 1 < argc) {
			if (sl_hook_parse(argv[++i], &a->hook))
				return fail(-EINVAL);
		} else if (!strcmp(argv[i], "--pos") && i + 1 < argc) {
			char *end;

			a->pos = strtoul(argv[++i], &end, 10);
			if (*end || !a->pos)
				return bad_usage("--pos: need a rule number from 1");
		} else if (!a->dev && want_dev && argv[i][0] != '-') {
			a->dev = argv[i];
		} else {
			a->rest[a->nrest++] = argv[i];
		}
	}
	if (need_dev && !a->dev)
		return bad_usage("need DEV");
	if (!name && !a->dev)
		return bad_usage("need DEV or --name NAME");
	if (name)
		snprintf(a->name, sizeof(a->name), "%s", name);
	else if ((size_t)snprintf(a->name, sizeof(a->name), "fw-%s", a->dev) >= sizeof(a->name))
		return bad_usage("interface name too long");
	return 0;
}

/* Loads rs into instance name and puts it on DEV's chain; a refusal of
 * either leaves no new instance behind. */
static int fw_load_on(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		      const char *name, const struct fw_ruleset *rs)
{
	struct sl_instance inst;
	bool existed = !sl_instance_get(ctx, name, &inst);
	int err = sl_chain_check(ctx, dev, hook, name);

	err = err ?: fw_load(ctx, name, rs, NULL);
	if (err)
		return err;
	err = sl_chain_ensure(ctx, dev, hook, name);
	if (err && !existed)
		sl_instance_delete(ctx, name);
	return err;
}

/* The checks a direct load makes on the name, then PUT /v1/firewalls/NAME
 * with the rules as the parser printed them back. */
static int api_fw_put(const char *dev, enum sl_hook hook, const char *name,
		      const struct fw_ruleset *rs)
{
	struct sl_instance inst;
	struct sl_ctx *ctx;
	char path[256] = "/v1/firewalls/", text[1024];
	json_t *body, *arr;
	int err = precheck_open(&ctx);

	if (err)
		return fail(err);
	if (ctx) {
		err = sl_instance_get(ctx, name, &inst);
		if (!err && strcmp(inst.type, FW_TYPE))
			err = sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s",
				     name, inst.type, FW_TYPE);
		sl_close(ctx);
		if (err && err != -ENOENT)
			return fail(err);
	}
	arr = json_array();
	for (__u32 i = 0; i < rs->n; i++) {
		fw_rule_format(&rs->rules[i], text, sizeof(text));
		json_array_append_new(arr, json_string(text));
	}
	body = json_pack("{s:s, s:s, s:o}", "dev", dev, "hook", sl_hook_name(hook),
			 "rules", arr);
	if (rs->has_default)
		json_object_set_new(body, "default",
				    json_string(rs->default_action == FW_DROP ? "drop" : "accept"));
	cl_escape(path, sizeof(path), name);
	err = cl_call("PUT", path, body, NULL);
	json_decref(body);
	return err;
}

static int fw_load_cmd(int argc, char **argv)
{
	struct fw_ruleset rs;
	struct fw_args a;
	struct sl_ctx *ctx;
	int err = fw_parse_args(argc, argv, true, &a);

	if (err)
		goto out_args;
	if (a.nrest != 1) {
		err = bad_usage("firewall load: need DEV FILE");
		goto out_args;
	}
	if (sl_ifindex(a.dev) < 0) {
		err = fail(-ENODEV);
		goto out_args;
	}
	/* Parse everything before touching any state. */
	err = fw_ruleset_parse_file(a.rest[0], &rs);
	if (err) {
		err = fail(err);
		goto out_args;
	}
	if (cl_daemon()) {
		err = api_fw_put(a.dev, a.hook, a.name, &rs);
		if (!err && !out_json())
			printf("%s: %u rules loaded on %s %s\n", a.name, rs.n, a.dev,
			       sl_hook_name(a.hook));
		goto out_rs;
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err) {
		err = fail(err);
		goto out_rs;
	}
	err = fw_load_on(ctx, a.dev, a.hook, a.name, &rs);
	if (err)
		err = fail(err);
	else if (!out_json())
		printf("%s: %u rules loaded on %s %s\n", a.name, rs.n, a.dev,
		       sl_hook_name(a.hook));
	sl_close(ctx);
out_rs:
	fw_ruleset_free(&rs);
out_args:
	free(a.rest);
	return err;
}

static int fw_show_cmd(int argc, char **argv)
{
	struct fw_ruleset rs;
	struct fw_counter *cnt = NULL;
	struct fw_args a;
	struct sl_ctx *ctx;
	char text[512];
	int err = fw_parse_args(argc, argv, false, &a);

	if (err)
		goto out_args;
	err = sl_open(&ctx, 0);
	if (err) {
		err = fail(err);
		goto out_args;
	}
	err = fw_read(ctx, a.name, &rs, &cnt, NULL);
	sl_close(ctx);
	if (err) {
		err = fail(err);
		goto out_args;
	}
	out_open_obj(NULL);
	out_str("name", "instance %s", a.name);
	out_str("default", " default %s", rs.default_action == FW_DROP ? "drop" : "accept");
	out_u64("default_packets", " (%llu packets", cnt[rs.n].packets);
	out_u64("default_bytes", " %llu bytes)\n", cnt[rs.n].bytes);
	out_open_arr("rules");
	for (__u32 i = 0; i < rs.n; i++) {
		fw_rule_format(&rs.rules[i], text, sizeof(text));
		out_open_obj(NULL);
		out_u64("index", "%5llu ", i + 1);
		out_u64("packets", "%12llu ", cnt[i].packets);
		out_u64("bytes", "%14llu  ", cnt[i].bytes);
		out_str("rule", "%s\n", text);
		out_close_obj();
	}
	out_close_arr();
	out_close_obj();
	out_done();
	free(cnt);
	fw_ruleset_free(&rs);
out_args:
	free(a.rest);
	return err;
}

/* Loads a rule set built from the loaded one by edit(). */
static int fw_modify(int argc, char **argv, bool need_dev,
		     int (*edit)(struct sl_ctx *ctx, struct fw_args *a),
		     int (*api_edit)(struct fw_args *a))
{
	struct fw_args a;
	struct sl_ctx *ctx;
	int err = fw_parse_args(argc, argv, need_dev, &a);

	if (err)
		goto out_args;
	if (cl_daemon()) {
		/* Prints its own errors: 1, or 2 for a usage error. */
		err = api_edit(&a);
		goto out_args;
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err) {
		err = fail(err);
		goto out_args;
	}
	err = edit(ctx, &a);
	sl_close(ctx);
	if (err > 0)
		goto out_args;
	if (err)
		err = fail(err);
out_args:
	free(a.rest);
	return err;
}

static int edit_flush(struct sl_ctx *ctx, struct fw_args *a)
{
	struct fw_ruleset rs, empty = {};
	int err = fw_read(ctx, a->name, &rs, NULL, NULL);

	if (err)
		return err;
	empty.default_action = rs.default_action;
	fw_ruleset_free(&rs);
	return fw_load(ctx, a->name, &empty, NULL);
}

static int edit_add(struct sl_ctx *ctx, struct fw_args *a)
{
	char text[1024] = "";
	struct fw_rule rule;
	size_t off = 0;
	int err;

	if (!a->nrest)
		return bad_usage("firewall add: need a rule, for example: drop proto tcp dport 22");
	for (int i = 0; i < a->nrest; i++)
		off += snprintf(text + off, off < sizeof(text) ? sizeof(text) - off : 0,
				"%s%s", i ? " " : "", a->rest[i]);
	err = fw_rule_parse(text, &rule);
	if (err)
		return err;
	err = fw_rule_insert(ctx, a->name, a->pos, &rule);
	if (err == -ENOENT && a->dev) {
		/* No firewall there yet: start one with this rule. */
		struct fw_ruleset rs = {};

		err = fw_ruleset_add(&rs, &rule, 0);
		err = err ?: fw_load_on(ctx, a->dev, a->hook, a->name, &rs);
		fw_ruleset_free(&rs);
	}
	return err;
}

static int edit_del(struct sl_ctx *ctx, struct fw_args *a)
{
	char *end;
	unsigned long pos;

	if (a->nrest != 1)
		return bad_usage("firewall del: need the rule number");
	pos = strtoul(a->rest[0], &end, 10);
	if (*end || !pos)
		return bad_usage("firewall del: the rule number starts from 1");
	return fw_rule_delete(ctx, a->name, pos);
}

static int edit_unload(struct sl_ctx *ctx, struct fw_args *a)
{
	struct sl_instance inst;
	struct sl_chain chain;
	const char *names[SL_CHAIN_MAX];
	struct name_by_slot q[SL_CHAIN_MAX];
	int err = sl_instance_get(ctx, a->name, &inst), n = 0;

	if (err)
		return err;
	/* Take it out of DEV's chain first, keeping the others in order. */
	if (a->dev && !sl_chain_get(ctx, a->dev, a->hook, &chain)) {
		for (__u32 i = 0; i < chain.len; i++) {
			if (chain.slots[i] == inst.slot)
				continue;
			q[n] = (struct name_by_slot){ .slot = chain.slots[i], .name = "?" };
			sl_instance_foreach(ctx, find_slot_cb, &q[n]);
			names[n] = q[n].name;
			n++;
		}
		err = sl_chain_set(ctx, a->dev, a->hook, names, n);
		if (err)
			return err;
	}
	return sl_instance_delete(ctx, a->name);
}

/* ---- the same edits through sluiced ---- */

static void fw_path(char *path, size_t len, const char *name, const char *rest)
{
	snprintf(path, len, "/v1/firewalls/");
	cl_escape(path, len, name);
	snprintf(path + strlen(path), len - strlen(path), "%s", rest);
}

static int api_flush(struct fw_args *a)
{
	char path[256];

	fw_path(path, sizeof(path), a->name, "/rules");
	return cl_call("DELETE", path, NULL, NULL);
}

static int api_add(struct fw_args *a)
{
	char text[1024] = "", path[256];
	struct fw_ruleset rs = {};
	struct fw_rule rule;
	struct sl_ctx *ctx;
	size_t off = 0;
	bool exists = false;
	json_t *body;
	int err;

	if (!a->nrest)
		return bad_usage("firewall add: need a rule, for example: drop proto tcp dport 22");
	for (int i = 0; i < a->nrest; i++)
		off += snprintf(text + off, off < sizeof(text) ? sizeof(text) - off : 0,
				"%s%s", i ? " " : "", a->rest[i]);
	err = fw_rule_parse(text, &rule);
	err = err ?: precheck_open(&ctx);
	if (err)
		return fail(err);
	if (ctx) {
		err = fw_read(ctx, a->name, &rs, NULL, NULL);
		sl_close(ctx);
		exists = !err;
		/* The position is checked as the direct insert checks it. */
		if (!err && a->pos)
			err = fw_ruleset_add(&rs, &rule, a->pos - 1);
		fw_ruleset_free(&rs);
		if (err && (err != -ENOENT || !a->dev))
			return fail(err);
	} else if (!a->dev) {
		return fail(sl_err(-ENOENT, "no instance '%s'", a->name));
	}
	if (!exists) {
		/* No firewall there yet: start one with this rule. */
		err = fw_ruleset_add(&rs, &rule, 0);
		if (err)
			return fail(err);
		rs.has_default = false;
		err = api_fw_put(a->dev, a->hook, a->name, &rs);
		fw_ruleset_free(&rs);
		return err;
	}
	body = json_pack("{s:s}", "rule", text);
	if (a->pos)
		json_object_set_new(body, "pos", json_integer(a->pos));
	fw_path(path, sizeof(path), a->name, "/rules");
	err = cl_call("POST", path, body, NULL);
	json_decref(body);
	return err;
}

static int api_del(struct fw_args *a)
{
	char *end, path[256], num[32];
	unsigned long pos;

	if (a->nrest != 1)
		return bad_usage("firewall del: need the rule number");
	pos = strtoul(a->rest[0], &end, 10);
	if (*end || !pos)
		return bad_usage("firewall del: the rule number starts from 1");
	snprintf(num, sizeof(num), "/rules/%lu", pos);
	fw_path(path, sizeof(path), a->name, num);
	return cl_call("DELETE", path, NULL, NULL);
}

static int api_unload(struct fw_args *a)
{
	char path[256];

	fw_path(path, sizeof(path), a->name, "?dev=");
	cl_escape(path, sizeof(path), a->dev);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "&hook=%s",
		 sl_hook_name(a->hook));
	return cl_call("DELETE", path, NULL, NULL);
}

static int fw_flush_cmd(int argc, char **argv) { return fw_modify(argc, argv, false, edit_flush, api_flush); }
static int fw_add_cmd(int argc, char **argv) { return fw_modify(argc, argv, false, edit_add, api_add); }
static int fw_del_cmd(int argc, char **argv) { return fw_modify(argc, argv, false, edit_del, api_del); }
static int fw_unload_cmd(int argc, char **argv) { return fw_modify(argc, argv, true, edit_unload, api_unload); }

static int fw_check_cmd(int argc, char **argv)
{
	struct fw_ruleset rs;
	struct fw_tree tree;
	int err;

	if (argc != 1)
		return bad_usage("firewall check: need FILE");
	err = fw_ruleset_parse_file(argv[0], &rs);
	if (err)
		return fail(err);
	err = fw_tree_build(&rs, &tree);
	if (err) {
		fw_ruleset_free(&rs);
		return fail(err);
	}
	out_open_obj(NULL);
	out_u64("rules", "%llu rules, ", rs.n);
	out_u64("trees", "%llu trees, ", tree.ntrees);
	out_u64("nodes", "%llu nodes, ", tree.nnodes);
	out_u64("leaf_entries", "%llu leaf entries, ", tree.nleaves);
	out_u64("depth", "depth %llu, ", tree.depth);
	out_u64("max_leaf", "longest leaf %llu\n", tree.max_leaf);
	out_close_obj();
	out_done();
	fw_tree_free(&tree);
	fw_ruleset_free(&rs);
	return 0;
}

static const struct cmd fw_cmds[] = {
	{ "load", fw_load_cmd, " DEV FILE|- [--name NAME] [--hook HOOK]   (replaces the whole rule set)" },
	{ "show", fw_show_cmd, " DEV | --name NAME" },
	{ "add", fw_add_cmd, " DEV|--name NAME [--pos N] ACTION [MATCH ...]" },
	{ "del", fw_del_cmd, " DEV|--name NAME N" },
	{ "flush", fw_flush_cmd, " DEV|--name NAME   (removes every rule, keeps the default)" },
	{ "unload", fw_unload_cmd, " DEV [--name NAME] [--hook HOOK]   (takes it off DEV and deletes it)" },
	{ "check", fw_check_cmd, " FILE   (parses and indexes a rule file, loads nothing)" },
	{}
};

static int do_firewall(int argc, char **argv)
{
	return dispatch(fw_cmds, "firewall ", argc, argv);
}

/* ---- instances, status, reset ----------------------------------------- */

static int print_instance_cb(const struct sl_instance *inst, void *arg)
{
	struct sl_ctx *ctx = arg;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];

	out_open_obj(NULL);
	out_str("name", "%-20s", inst->name);
	out_str("type", " %-10s", inst->type);
	out_u64("slot", " slot %-4llu", inst->slot);
	if (!sl_slot_stats(ctx, inst->slot, &st, drops)) {
		out_u64("packets", " packets %llu", st.packets);
		out_u64("bytes", " bytes %llu", st.bytes);
		out_u64("passed", " passed %llu", st.passed);
		out_u64("dropped", " dropped %llu", st.dropped);
		out_open_obj("drop_reasons");
		for (__u32 r = 0; r < SL_DROP_MAX; r++) {
			if (drops[r] && sl_drop_reason_name(r)) {
				out_text(" %s=", sl_drop_reason_name(r));
				out_u64(sl_drop_reason_name(r), "%llu", drops[r]);
			}
		}
		out_close_obj();
	}
	out_text("\n");
	out_close_obj();
	return 0;
}

static int nf_list(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0);

	if (err && err != -ENOENT)
		return fail(err);
	out_open_arr(NULL);
	if (!err) {
		sl_instance_foreach(ctx, print_instance_cb, ctx);
		sl_close(ctx);
	}
	out_close_arr();
	out_done();
	return 0;
}

static int nf_del(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return bad_usage("nf del: need NAME");
	if (cl_daemon()) {
		char path[256] = "/v1/instances/";

		cl_escape(path, sizeof(path), argv[0]);
		return cl_call("DELETE", path, NULL, NULL);
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return fail(err);
	err = sl_instance_delete(ctx, argv[0]);
	sl_close(ctx);
	return err ? fail(err) : 0;
}

static const struct cmd nf_cmds[] = {
	{ "list", nf_list, "   (instances with their counters and drop reasons)" },
	{ "del", nf_del, " NAME" },
	{}
};

static int do_nf(int argc, char **argv)
{
	return dispatch(nf_cmds, "nf ", argc, argv);
}

static int do_reset(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, SL_OPEN_RESET); /* state of any version */

	if (err == -ENOENT)
		return 0;
	if (err)
		return fail(err);
	sl_close(ctx);
	if (cl_daemon())
		return cl_call("POST", "/v1/reset", NULL, NULL);
	err = sl_open(&ctx, SL_OPEN_WRITE | SL_OPEN_RESET);
	if (err)
		return fail(err);
	err = sl_reset(ctx);
	sl_close(ctx);
	return err ? fail(err) : 0;
}

static int do_status(int argc, char **argv)
{
	struct sl_ctx *ctx;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
	int err = sl_open(&ctx, 0);

	if (err && err != -ENOENT)
		return fail(err);
	out_open_obj(NULL);
	out_bool("loaded", "state loaded: %s\n", !err);
	if (!err) {
		out_str("pin_dir", "pinned at %s\n", sl_base(ctx));
		if (!sl_slot_stats(ctx, 0, &st, drops)) {
			out_u64("root_packets", "root: packets %llu", st.packets);
			out_u64("root_dropped", " dropped %llu\n", st.dropped);
		}
		out_text("chains:\n");
		out_open_arr("chains");
		sl_chain_foreach(ctx, print_chain_cb, ctx);
		out_close_arr();
		out_text("instances:\n");
		out_open_arr("instances");
		sl_instance_foreach(ctx, print_instance_cb, ctx);
		out_close_arr();
		sl_close(ctx);
	}
	out_close_obj();
	out_done();
	return 0;
}

/* ---- events --------------------------------------------------------- */

static volatile sig_atomic_t events_stop;

static void events_signal(int sig)
{
	(void)sig;
	events_stop = 1;
}

struct events_read {
	long count; /* stop after this many; 0: no limit */
	long seen;
	bool bytes; /* print the captured packet bytes in hex */
};

static __u64 events_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int events_print(const struct sl_event_view *v, void *arg)
{
	struct events_read *r = arg;
	const struct sl_event *e = v->raw;
	bool ports = e->family && (e->ip_proto == 6 || e->ip_proto == 17) &&
		     (e->sport || e->dport);
	bool icmp = e->family && (e->ip_proto == 1 || e->ip_proto == 58);
	char when[64], hex[2 * SL_EVENT_SNAPLEN + 1];
	time_t sec = v->realtime_ns / 1000000000ULL;
	struct tm tm;

	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%06lluZ",
		 (unsigned long long)(v->realtime_ns % 1000000000ULL) / 1000);
	for (unsigned int i = 0; i < e->cap_len && i < SL_EVENT_SNAPLEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", e->data[i]);
	hex[2 * (e->cap_len < SL_EVENT_SNAPLEN ? e->cap_len : SL_EVENT_SNAPLEN)] = 0;

	out_init(out_json()); /* one document a line */
	out_open_obj(NULL);
	out_str("time", "%s", when);
	out_u64("ts_ns", NULL, e->ts_ns);
	out_str("type", " %s", v->type);
	out_str("dev", " %s", v->dev);
	out_u64("ifindex", NULL, e->ifindex);
	out_str("hook", " %s", v->hook);
	out_str("instance", " %s", v->instance);
	out_u64("slot", NULL, e->slot);
	out_str("reason", " %s", v->reason);
	if (e->type == SL_EVENT_PATH) { /* reason: the policy not followed */
		out_str("policy", NULL, v->policy);
		out_u64("trace_id", " trace %llu", v->trace_id);
	}
	if (e->family) {
		out_str("family", NULL, e->family == 4 ? "ipv4" : "ipv6");
		out_str("proto", " %s", v->proto);
		out_str("src", " %s", v->src);
		if (ports)
			out_u64("sport", ":%llu", e->sport);
		out_str("dst", " -> %s", v->dst);
		if (ports)
			out_u64("dport", ":%llu", e->dport);
		if (icmp) {
			out_u64("icmp_type", " type %llu", e->icmp_type);
			out_u64("icmp_code", " code %llu", e->icmp_code);
		}
		if (e->ip_proto == 6)
			out_u64("tcp_flags", NULL, e->tcp_flags);
	}
	out_u64("len", " len %llu", e->pkt_len);
	out_u64("cap_len", NULL, e->cap_len);
	if (r->bytes)
		out_str("data", " data %s", hex);
	out_close_obj();
	out_text("\n");
	out_done();
	if (r->count && ++r->seen >= r->count)
		return -ECANCELED; /* enough: stop reading */
	return 0;
}

static int events_parse_num(const char *opt, const char *s, long max, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || *end || end == s || *v < 0 || *v > max) {
		fprintf(stderr, "sluice: %s: need a number from 0 to %ld\n", opt, max);
		return -EINVAL;
	}
	return 0;
}

/* Sets drop sampling; the previous value in *old when old is given. */
static int events_set_sample(__u32 sample, __u32 *old)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, SL_OPEN_WRITE);

	if (err)
		return err;
	if (old)
		err = sl_events_get_config(ctx, old);
	err = err ?: sl_events_config(ctx, sample);
	sl_close(ctx);
	return err;
}

static int events_config_cmd(int argc, char **argv)
{
	struct sl_events_stats st;
	struct sl_ctx *ctx;
	__u32 sample = 0;
	long v;
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--sample") && i + 1 < argc) {
			if (events_parse_num("--sample", argv[++i], UINT32_MAX, &v))
				return 2;
			err = events_set_sample(v, NULL);
			if (err)
				return fail(err);
		} else {
			return bad_usage("events config: only --sample N");
		}
	}
	err = sl_open(&ctx, 0);
	if (err)
		return fail(err);
	err = sl_events_get_config(ctx, &sample);
	err = err ?: sl_events_stats(ctx, &st);
	sl_close(ctx);
	if (err)
		return fail(err);
	out_open_obj(NULL);
	out_u64("drop_sample", "drop events: %llu", sample);
	out_text(sample ? " (one drop in %u)\n" : " (off)\n", sample);
	out_u64("emitted", "events written %llu", st.emitted);
	out_u64("lost", ", lost to a full ring %llu\n", st.lost);
	out_close_obj();
	out_done();
	return 0;
}

static int do_events(int argc, char **argv)
{
	struct events_read r = {};
	struct sigaction sa = { .sa_handler = events_signal };
	struct sl_events *ev = NULL;
	struct sl_ctx *ctx = NULL;
	long sample = -1, timeout = 0;
	__u32 old_sample = 0;
	__u64 deadline = 0;
	int err, ret = 0;

	if (argc && !strcmp(argv[0], "config"))
		return events_config_cmd(argc - 1, argv + 1);
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];

		if (!strcmp(o, "--bytes")) {
			r.bytes = true;
			continue;
		}
		if (i + 1 >= argc)
			return bad_usage("events: unknown option or missing value; try 'sluice events -h'");
		if (!strcmp(o, "--count")) {
			if (events_parse_num(o, argv[++i], LONG_MAX, &r.count))
				return 2;
		} else if (!strcmp(o, "--timeout")) {
			if (events_parse_num(o, argv[++i], 86400 * 365, &timeout))
				return 2;
		} else if (!strcmp(o, "--sample")) {
			if (events_parse_num(o, argv[++i], UINT32_MAX, &sample))
				return 2;
		} else {
			return bad_usage("events: unknown option; try 'sluice events -h'");
		}
	}
	err = sl_open(&ctx, 0);
	if (err)
		return fail(err);
	err = sl_events_open(ctx, events_print, &r, &ev);
	if (err) {
		sl_close(ctx);
		return fail(err);
	}
	/* Sampling for this reading only: the old value comes back after. */
	if (sample >= 0) {
		err = events_set_sample(sample, &old_sample);
		if (err) {
			ret = fail(err);
			sample = -1;
			goto out;
		}
	}
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the wait ends */
	sigaction(SIGTERM, &sa, NULL);
	if (timeout)
		deadline = events_now_ms() + timeout * 1000;
	while (!events_stop) {
		int wait = 250;

		if (deadline) {
			__u64 now = events_now_ms();

			if (now >= deadline)
				break;
			if (deadline - now < (__u64)wait)
				wait = deadline - now;
		}
		err = sl_events_poll(ev, wait);
		if (err == -ECANCELED)
			break; /* --count reached */
		if (err < 0) {
			ret = fail(err);
			break;
		}
	}
out:
	sl_events_close(ev);
	sl_close(ctx);
	if (sample >= 0) {
		err = events_set_sample(old_sample, NULL);
		if (err)
			ret = fail(err);
	}
	return ret;
}

/* ---- declarative configuration: apply, diff, export ------------------ */

struct cfg_args {
	const char *file;
	const char *out;
	bool dry_run, quiet, exit_code;
};

static int cfg_parse_args(int argc, char **argv, bool want_file, struct cfg_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		if (want_file && (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
			a->file = argv[++i];
		else if (!want_file && (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
			a->out = argv[++i];
		else if (want_file && !strcmp(argv[i], "--dry-run"))
			a->dry_run = true;
		else if (want_file && (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")))
			a->quiet = true;
		else if (want_file && !strcmp(argv[i], "--exit-code"))
			a->exit_code = true;
		else
			return bad_usage(want_file ? "need -f FILE (or -f - for standard input)"
						   : "export: the only option is -o FILE");
	}
	if (want_file && !a->file)
		return bad_usage("need -f FILE (or -f - for standard input)");
	return 0;
}

/* ---- apply through sluiced ---- */

/* A string as the library's plan printer quotes it. */
static void plan_quoted(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *jstr(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static unsigned int jnum(json_t *o, const char *key)
{
	return (unsigned int)json_integer_value(json_object_get(o, key));
}

static void plan_names(json_t *arr, bool json)
{
	size_t i, n = json_array_size(arr);

	if (json)
		putchar('[');
	else if (!n)
		printf(" (none)");
	for (i = 0; i < n; i++) {
		const char *name = json_string_value(json_array_get(arr, i));

		if (json) {
			printf("%s", i ? ", " : "");
			plan_quoted(name);
		} else {
			printf(" %s", name ? name : "");
		}
	}
	if (json)
		putchar(']');
}

static char op_sign(const char *op)
{
	return !strcmp(op, "create") ? '+' : !strcmp(op, "replace") ? '~' : '-';
}

/* The plan sluiced answered (`sluice -j diff`'s object), printed as
 * sl_config_plan_print() and sl_config_plan_print_json() print the plan
 * in direct mode. */
static void plan_print_reply(json_t *plan, bool json)
{
	json_t *insts = json_object_get(plan, "instances"), *chains = json_object_get(plan, "chains");
	unsigned int changes = jnum(plan, "changes");
	size_t i, k;

	if (json)
		printf("{\"changes\": %u, \"instances\": [", changes);
	else if (!changes) {
		printf("no changes\n");
		return;
	}
	for (i = 0; i < json_array_size(insts); i++) {
		json_t *c = json_array_get(insts, i), *rc = json_object_get(c, "rule_changes");
		const char *op = jstr(c, "op");
		unsigned int nr = jnum(c, "rules");

		if (json) {
			printf("%s{\"op\": \"%s\", \"name\": ", i ? ", " : "", op);
			plan_quoted(jstr(c, "name"));
			printf(", \"type\": ");
			plan_quoted(jstr(c, "type"));
			if (json_object_get(c, "default"))
				printf(", \"default\": \"%s\", \"rules\": %u", jstr(c, "default"), nr);
			if (!strcmp(op, "replace"))
				printf(", \"old_default\": \"%s\", \"rule_changes\": [",
				       jstr(c, "old_default"));
		} else if (!strcmp(op, "create")) {
			printf("+ firewall %s: default %s, %u rule%s\n", jstr(c, "name"),
			       jstr(c, "default"), nr, nr == 1 ? "" : "s");
		} else if (!strcmp(op, "replace")) {
			printf("~ firewall %s: reloaded, %u rule%s\n", jstr(c, "name"), nr,
			       nr == 1 ? "" : "s");
			if (strcmp(jstr(c, "old_default"), jstr(c, "default")))
				printf("    default %s -> %s\n", jstr(c, "old_default"),
				       jstr(c, "default"));
		} else {
			printf("- %s %s: not in the document, deleted\n", jstr(c, "type"),
			       jstr(c, "name"));
		}
		if (strcmp(op, "replace"))
			goto next;
		for (k = 0; k < json_array_size(rc); k++) {
			json_t *r = json_array_get(rc, k);
			bool add = !strcmp(jstr(r, "op"), "add");

			if (json) {
				printf("%s{\"op\": \"%s\", \"index\": %u, \"rule\": ",
				       k ? ", " : "", add ? "add" : "remove", jnum(r, "index"));
				plan_quoted(jstr(r, "rule"));
				putchar('}');
			} else {
				printf("    %c rule %u: %s\n", add ? '+' : '-', jnum(r, "index"),
				       jstr(r, "rule"));
			}
		}
		if (json)
			putchar(']');
next:
		if (json)
			putchar('}');
	}
	if (json)
		printf("], \"chains\": [");
	for (i = 0; i < json_array_size(chains); i++) {
		json_t *c = json_array_get(chains, i);
		const char *op = jstr(c, "op");

		if (json) {
			printf("%s{\"op\": \"%s\", \"dev\": ", i ? ", " : "", op);
			plan_quoted(jstr(c, "dev"));
			printf(", \"hook\": \"%s\", \"instances\": ", jstr(c, "hook"));
			plan_names(json_object_get(c, "instances"), true);
			printf(", \"old_instances\": ");
			plan_names(json_object_get(c, "old_instances"), true);
			putchar('}');
			continue;
		}
		printf("%c chain %s %s:", op_sign(op), jstr(c, "dev"), jstr(c, "hook"));
		if (!strcmp(op, "delete")) {
			printf(" detached (was");
			plan_names(json_object_get(c, "old_instances"), false);
			printf(")\n");
			continue;
		}
		plan_names(json_object_get(c, "instances"), false);
		if (!strcmp(op, "replace")) {
			printf(" (was");
			plan_names(json_object_get(c, "old_instances"), false);
			printf(")");
		}
		putchar('\n');
	}
	if (json)
		printf("]}\n");
	else
		printf("%u change%s\n", changes, changes == 1 ? "" : "s");
}

/* A refused document. sluiced calls it "body" ("body:LINE: PATH: reason",
 * with "line" and "field"); direct mode names the file ("FILE:LINE: PATH:
 * reason"): the same message with the file's name. */
static void apply_error(int status, json_t *reply, const char *name)
{
	const char *err = json_string_value(json_object_get(reply, "error"));
	const char *field = json_string_value(json_object_get(reply, "field"));
	json_t *line = json_object_get(reply, "line");
	char prefix[64];
	size_t n;

	if (!err || strncmp(err, "body:", 5)) {
		cl_print_error(status, reply);
		return;
	}
	if (json_is_integer(line)) {
		n = snprintf(prefix, sizeof(prefix), "body:%lld: ",
			     (long long)json_integer_value(line));
		if (!strncmp(err, prefix, n)) {
			const char *rest = err + n;
			size_t fl = field ? strlen(field) : 0;

			if (fl && !strncmp(rest, field, fl) && !strncmp(rest + fl, ": ", 2))
				fprintf(stderr, "sluice: %s:%lld: %s: %s\n", name,
					(long long)json_integer_value(line), field, rest + fl + 2);
			else
				fprintf(stderr, "sluice: %s:%lld: %s\n", name,
					(long long)json_integer_value(line), rest);
			return;
		}
	}
	/* "body: larger than ..." and the like, without a line. */
	fprintf(stderr, "sluice: %s%s\n", name, err + 4);
}

/* POST /v1/apply (?dry_run=1) with the document as read; prints what
 * direct mode prints, and exits as it does. sluiced parses and checks the
 * whole document before it changes anything, as direct mode does. */
static int api_apply(const struct cfg_args *a, const char *text, size_t len)
{
	json_t *reply = NULL;
	int status, ret;

	if (cl_request("POST", a->dry_run ? "/v1/apply?dry_run=1" : "/v1/apply",
		       "application/yaml", text, len, &status, &reply))
		return 1;
	if (status < 200 || status >= 300) {
		apply_error(status, reply, sl_config_file_name(a->file));
		json_decref(reply);
		return 1;
	}
	if (!json_is_object(reply) || !json_is_integer(json_object_get(reply, "changes"))) {
		fprintf(stderr, "sluice: sluiced answered HTTP %d without a plan\n", status);
		json_decref(reply);
		return 1;
	}
	if (!a->quiet) {
		plan_print_reply(reply, out_json());
		if (!out_json() && json_is_true(json_object_get(reply, "applied")))
			printf("applied\n");
	}
	ret = a->exit_code && jnum(reply, "changes") ? 1 : 0;
	json_decref(reply);
	return ret;
}

static bool verbose;

/* Parses the document, then diffs it against the loaded state (and applies
 * it when apply): everything is validated before anything changes. apply
 * (with --dry-run too) goes through sluiced in daemon mode. */
static int cfg_run(int argc, char **argv, bool apply)
{
	struct sl_config *cfg = NULL;
	struct sl_config_plan *plan = NULL;
	struct sl_ctx *ctx = NULL;
	struct cfg_args a;
	char *text = NULL;
	size_t len;
	int err = cfg_parse_args(argc, argv, true, &a);

	if (err)
		return err;
	err = sl_config_read_file(a.file, &text, &len);
	if (err)
		return fail(err);
	if (apply && cl_daemon()) {
		if (len && len <= CL_BODY_MAX) {
			err = api_apply(&a, text, len);
			free(text);
			return err;
		}
		/* sluiced refuses an empty body in its own words: the parser
		 * below refuses it as direct mode does, changing nothing.
		 * Documents sluiced would refuse as too large are applied
		 * directly, under the same writer lock. */
		if (len && verbose)
			fprintf(stderr, "sluice: the document is over sluiced's %u MiB limit: applying directly\n",
				CL_BODY_MAX >> 20);
	}
	if (a.dry_run)
		apply = false;
	err = sl_config_parse(text, len, sl_config_file_name(a.file), &cfg);
	free(text);
	if (err)
		return fail(err);
	if (apply) {
		/* A namespace without state gets none when nothing changes. */
		err = sl_open(&ctx, 0);
		if (ctx)
			sl_close(ctx);
		ctx = NULL;
		if (err == -ENOENT) {
			err = sl_config_diff(NULL, cfg, &plan);
			if (err) {
				err = fail(err);
				goto out;
			}
			if (!sl_config_plan_empty(plan)) {
				sl_config_plan_free(plan);
				plan = NULL;
			}
		}
		/* The writer lock, held from the diff to the last change. */
		err = plan ? 0 : sl_open(&ctx, SL_OPEN_WRITE);
	} else {
		err = sl_open(&ctx, 0);
		if (err == -ENOENT)
			err = 0;
	}
	if (err) {
		err = fail(err);
		goto out;
	}
	if (!plan)
		err = sl_config_diff(ctx, cfg, &plan);
	if (err) {
		err = fail(err);
		goto out;
	}
	if (!a.quiet) {
		if (out_json())
			sl_config_plan_print_json(plan, stdout);
		else
			sl_config_plan_print(plan, stdout);
	}
	if (apply && !sl_config_plan_empty(plan)) {
		err = sl_config_apply(ctx, plan);
		if (err) {
			err = fail(err);
			goto out;
		}
		if (!a.quiet && !out_json())
			printf("applied\n");
	}
	err = a.exit_code && !sl_config_plan_empty(plan) ? 1 : 0;
out:
	sl_config_plan_free(plan);
	if (ctx)
		sl_close(ctx);
	sl_config_free(cfg);
	return err;
}

static int do_apply(int argc, char **argv) { return cfg_run(argc, argv, true); }
static int do_diff(int argc, char **argv) { return cfg_run(argc, argv, false); }

static int do_export(int argc, char **argv)
{
	struct sl_ctx *ctx = NULL;
	struct cfg_args a;
	char tmp[PATH_MAX];
	FILE *f = stdout;
	int err = cfg_parse_args(argc, argv, false, &a);

	if (err)
		return err;
	err = sl_open(&ctx, 0);
	if (err && err != -ENOENT)
		return fail(err);
	if (a.out && strcmp(a.out, "-")) {
		/* Written aside and renamed: the file is whole or untouched. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", a.out);
		f = fopen(tmp, "w");
		if (!f) {
			err = fail(sl_err(-errno, "%s: %s", tmp, strerror(errno)));
			if (ctx)
				sl_close(ctx);
			return err;
		}
	}
	err = sl_config_export(ctx, f, out_json());
	if (ctx)
		sl_close(ctx);
	if (f != stdout) {
		if (fclose(f) && !err)
			err = sl_err(-EIO, "%s: write error", tmp);
		if (!err && rename(tmp, a.out))
			err = sl_err(-errno, "%s: %s", a.out, strerror(errno));
		if (err)
			unlink(tmp);
	}
	return err ? fail(err) : 0;
}

static const struct cmd core_cmds[] = {
	{ "chain", do_chain, " set|show|del ...", true },
	{ "firewall", do_firewall, " load|show|add|del|flush|unload|check ...", true },
	{ "nf", do_nf, " list|del ...", true },
	{ "apply", do_apply, " -f FILE|- [--dry-run] [-q]   (makes the namespace's state what the document says; docs/config.md)" },
	{ "diff", do_diff, " -f FILE|- [--exit-code]   (what apply would change; --exit-code: 1 when something would)" },
	{ "export", do_export, " [-o FILE]   (the loaded state as a document for apply; -j: as JSON)" },
	{ "status", do_status, "" },
	{ "reset", do_reset, "   (removes all sluice state of this network namespace)" },
	{ "events", do_events, " [--sample N] [--count N] [--timeout SEC] [--bytes] | events config [--sample N]"
	  "   (data-plane events, one a line; --sample N: one drop in N while reading, 0: off)" },
	{}
};

/* Commands registered by other files with CLI_COMMAND (weak: maybe none). */
extern const struct cmd *const __start_sl_cli_cmds[] __attribute__((weak));
extern const struct cmd *const __stop_sl_cli_cmds[] __attribute__((weak));

/* The core commands followed by the registered ones. */
static const struct cmd *top_cmds(void)
{
	size_t ncore = sizeof(core_cmds) / sizeof(core_cmds[0]) - 1;
	size_t next = __start_sl_cli_cmds ? __stop_sl_cli_cmds - __start_sl_cli_cmds : 0;
	struct cmd *all = calloc(ncore + next + 1, sizeof(*all));

	if (!all)
		return core_cmds;
	memcpy(all, core_cmds, ncore * sizeof(*all));
	for (size_t i = 0; i < next; i++)
		all[ncore + i] = *__start_sl_cli_cmds[i];
	return all;
}

int main(int argc, char **argv)
{
	const char *socket_path = NULL;
	bool json = false, no_daemon = false;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			sl_set_verbose(verbose = true);
		else if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			socket_path = argv[++i];
		else if (!strncmp(argv[i], "--socket=", 9))
			socket_path = argv[i] + 9;
		else if (!strcmp(argv[i], "--no-daemon"))
			no_daemon = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			break;
		else
			return bad_usage("unknown option; options are -j/--json, -v, -h, --socket PATH, --no-daemon");
	}
	/* --json may also come after the command, as in many tools. */
	for (int k = i; k < argc; k++) {
		if (!strcmp(argv[k], "--json") || !strcmp(argv[k], "-j")) {
			json = true;
			memmove(&argv[k], &argv[k + 1], (argc - k) * sizeof(char *));
			argc--;
			k--;
		}
	}
	out_init(json);
	cl_setup(socket_path, no_daemon, verbose);
	return dispatch(top_cmds(), "", argc - i, argv + i);
}
