// SPDX-License-Identifier: GPL-2.0
/* sluice conntrack ...: connection tracking instances, their table in a
 * form close to `conntrack -L`, flush, counters and options.
 *
 * Writes go straight through libsluice under the writer lock, also when
 * sluiced runs (it takes the same lock); reads read the pinned state. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cli.h"
#include "out.h"
#include "conntrack.h"

#define NSEC 1000000000ULL

/* Options shared by the subcommands. */
struct ct_args {
	const char *name;
	const char *dev;
	enum sl_hook hook;
	/* list filters */
	int proto; /* -1: any */
	int family;
	__u8 src[16], dst[16];
	bool has_src, has_dst;
	int tcp_state; /* -1: any */
};

static int parse_proto(const char *s)
{
	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	if (!strcmp(s, "icmp"))
		return IPPROTO_ICMP;
	if (!strcmp(s, "icmpv6"))
		return IPPROTO_ICMPV6;
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s && !*end && v < 256)
		return v;
	return -1;
}

static int parse_addr(const char *opt, const char *s, __u8 *out, struct ct_args *a)
{
	int fam = strchr(s, ':') ? 6 : 4;

	if (inet_pton(fam == 6 ? AF_INET6 : AF_INET, s, out) != 1) {
		fprintf(stderr, "sluice: conntrack: %s: '%s' is not an IPv4 or IPv6 address\n",
			opt, s);
		return 2;
	}
	if (a->family && a->family != fam)
		return cli_bad_usage("conntrack: --src and --dst must be of one family");
	a->family = fam;
	return 0;
}

static int parse_state(const char *s)
{
	for (int i = CT_TCP_SYN_SENT; i < CT_TCP_MAX; i++)
		if (!strcasecmp(s, ct_tcp_state_name(i)))
			return i;
	return -1;
}

/* Parses [DEV] --name --hook and the list filters; `what` names the
 * command for messages; want_dev: DEV is required. */
static int ct_parse_args(const char *what, int argc, char **argv, bool want_dev,
			 bool filters, struct ct_args *a)
{
	memset(a, 0, sizeof(*a));
	a->hook = SL_HOOK_XDP;
	a->proto = -1;
	a->tcp_state = -1;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i];
		bool has_val = i + 1 < argc;

		if (!strcmp(o, "--name") && has_val) {
			a->name = argv[++i];
		} else if (!strcmp(o, "--hook") && has_val && want_dev) {
			if (sl_hook_parse(argv[++i], &a->hook))
				return cli_fail(-EINVAL);
		} else if (filters && (!strcmp(o, "-p") || !strcmp(o, "--proto")) && has_val) {
			a->proto = parse_proto(argv[++i]);
			if (a->proto < 0) {
				fprintf(stderr, "sluice: conntrack %s: -p: unknown protocol '%s' (tcp, udp, icmp, icmpv6 or a number)\n",
					what, argv[i]);
				return 2;
			}
		} else if (filters && (!strcmp(o, "-s") || !strcmp(o, "--src")) && has_val) {
			if (parse_addr(o, argv[++i], a->src, a))
				return 2;
			a->has_src = true;
		} else if (filters && (!strcmp(o, "-d") || !strcmp(o, "--dst")) && has_val) {
			if (parse_addr(o, argv[++i], a->dst, a))
				return 2;
			a->has_dst = true;
		} else if (filters && !strcmp(o, "--state") && has_val) {
			a->tcp_state = parse_state(argv[++i]);
			if (a->tcp_state < 0) {
				fprintf(stderr, "sluice: conntrack %s: --state: unknown TCP state '%s'\n",
					what, argv[i]);
				return 2;
			}
		} else if (want_dev && !a->dev && o[0] != '-') {
			a->dev = o;
		} else {
			fprintf(stderr, "sluice: conntrack %s: unexpected '%s'%s\n", what, o,
				o[0] == '-' && !has_val ? " (missing value?)" : "");
			return 2;
		}
	}
	if (want_dev && !a->dev) {
		fprintf(stderr, "sluice: conntrack %s: need DEV\n", what);
		return 2;
	}
	return 0;
}

/* ---- attach / detach / create / delete -------------------------------- */

static int ct_attach_cmd(int argc, char **argv)
{
	struct ct_args a;
	struct sl_ctx *ctx;
	int err = ct_parse_args("attach", argc, argv, true, false, &a);

	if (err)
		return err;
	if (!a.name)
		a.name = CT_DEFAULT_NAME;
	if (sl_ifindex(a.dev) < 0)
		return cli_fail(-ENODEV);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = ct_attach(ctx, a.dev, a.hook, a.name);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (!out_json())
		printf("%s: first on %s %s\n", a.name, a.dev, sl_hook_name(a.hook));
	return 0;
}

static int ct_detach_cmd(int argc, char **argv)
{
	struct ct_args a;
	struct sl_ctx *ctx;
	int err = ct_parse_args("detach", argc, argv, true, false, &a);

	if (err)
		return err;
	if (!a.name)
		a.name = CT_DEFAULT_NAME;
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = ct_chain_remove(ctx, a.dev, a.hook, a.name);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int parse_u32_opt(const char *opt, const char *s, __u32 min, __u32 max, __u32 *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max) {
		fprintf(stderr, "sluice: conntrack: %s: need a number from %u to %u, not '%s'\n",
			opt, min, max, s);
		return 2;
	}
	*out = v;
	return 0;
}

/* An option of create and config, applied to cfg (*set: one was); returns
 * 0, -1 when argv[*i] is none, or the exit code of a refusal. */
static int parse_cfg_opt(int argc, char **argv, int *i, struct ct_config *cfg, bool *flags_set)
{
	const char *o = argv[*i];
	bool has_val = *i + 1 < argc;

	if (!strcmp(o, "--strict")) {
		cfg->flags &= ~CT_CFG_LOOSE;
	} else if (!strcmp(o, "--loose")) {
		cfg->flags |= CT_CFG_LOOSE;
	} else if (!strcmp(o, "--drop-invalid")) {
		cfg->flags |= CT_CFG_DROP_INVALID;
	} else if (!strcmp(o, "--no-drop-invalid")) {
		cfg->flags &= ~CT_CFG_DROP_INVALID;
	} else if (!strcmp(o, "--timeout") && has_val) {
		if (ct_timeout_parse(argv[++*i], cfg))
			return cli_fail(-EINVAL);
	} else if (!strcmp(o, "--gc-interval") && has_val) {
		if (parse_u32_opt(o, argv[++*i], 10, 3600 * 1000, &cfg->gc_interval_ms))
			return 2;
	} else {
		return -1; /* not an option of the configuration */
	}
	*flags_set = true;
	return 0;
}

static int ct_create_cmd(int argc, char **argv)
{
	struct ct_options opt = {};
	const char *name = NULL;
	struct sl_ctx *ctx;
	int err;

	ct_config_default(&opt.cfg);
	for (int i = 0; i < argc; i++) {
		err = parse_cfg_opt(argc, argv, &i, &opt.cfg, &opt.cfg_set);
		if (err > 0)
			return err;
		if (!err)
			continue;
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			err = parse_u32_opt("--size", argv[++i], 1024, 1U << 24, &opt.max_entries);
			if (err)
				return err;
		} else if (!name && argv[i][0] != '-') {
			name = argv[i];
		} else {
			fprintf(stderr, "sluice: conntrack create: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	opt.cfg_set = true; /* flags start from the defaults above */
	if (!name)
		return cli_bad_usage("conntrack create: need NAME");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = ct_create(ctx, name, &opt);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (!out_json())
		printf("%s: created\n", name);
	return 0;
}

static int ct_delete_cmd(int argc, char **argv)
{
	struct sl_instance inst;
	struct sl_ctx *ctx;
	int err;

	if (argc != 1 || argv[0][0] == '-')
		return cli_bad_usage("conntrack delete: need NAME");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = sl_instance_get(ctx, argv[0], &inst);
	if (!err && strcmp(inst.type, CT_TYPE))
		err = sl_err(-EINVAL, "instance '%s' is a %s, not a %s", argv[0], inst.type,
			     CT_TYPE);
	err = err ?: sl_instance_delete(ctx, argv[0]);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

/* ---- reading: the instances to show ----------------------------------- */

struct ct_names {
	char v[64][SL_NAME_MAX];
	int n;
};

static int collect_cb(const struct sl_instance *inst, void *arg)
{
	struct ct_names *names = arg;

	if (!strcmp(inst->type, CT_TYPE) && names->n < 64)
		snprintf(names->v[names->n++], SL_NAME_MAX, "%s", inst->name);
	return 0;
}

/* The instances a read command works on: --name, or every conntrack. */
static int ct_targets(struct sl_ctx *ctx, const char *name, struct ct_names *names)
{
	struct sl_instance inst;
	int err;

	names->n = 0;
	if (name) {
		err = sl_instance_get(ctx, name, &inst);
		if (err)
			return err;
		if (strcmp(inst.type, CT_TYPE))
			return sl_err(-EINVAL, "instance '%s' is a %s, not a %s", name,
				      inst.type, CT_TYPE);
		snprintf(names->v[names->n++], SL_NAME_MAX, "%s", name);
		return 0;
	}
	return sl_instance_foreach(ctx, collect_cb, names);
}

/* ---- list --------------------------------------------------------------- */

struct list_state {
	const struct ct_args *a;
	const char *inst;
	__u64 shown;
};

static bool addr_is(const struct ct_conn *c, int end, const __u8 *want, int family)
{
	const struct ct_key *k = &c->key;
	int i = end ? !c->orig : c->orig;

	if (k->family != family)
		return false;
	return !memcmp(k->addr[i], want, family == 6 ? 16 : 4);
}

static void print_tuple(const struct ct_conn *c, int dir)
{
	const struct ct_key *k = &c->key;
	int from = dir ? !c->orig : c->orig;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];

	inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->addr[from], src, sizeof(src));
	inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->addr[!from], dst, sizeof(dst));
	out_open_obj(dir ? "reply" : "orig");
	out_str("src", NULL, src);
	out_str("dst", NULL, dst);
	if (k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6) {
		unsigned int req = k->port[1] & 0xff;
		unsigned int rep = k->proto == IPPROTO_ICMPV6 ? req + 1 : req == 8 ? 0 : req + 1;

		out_u64("type", NULL, dir ? rep : req);
		out_u64("code", NULL, k->port[1] >> 8);
		out_u64("id", NULL, k->port[0]);
	} else if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
		out_u64("sport", NULL, k->port[from]);
		out_u64("dport", NULL, k->port[!from]);
	}
	out_u64("packets", NULL, c->e.packets[dir]);
	out_u64("bytes", NULL, c->e.bytes[dir]);
	out_close_obj();
}

static int list_cb(const struct ct_conn *c, void *arg)
{
	struct list_state *ls = arg;
	const struct ct_args *a = ls->a;
	char pbuf[32], line[512];

	if (a->proto >= 0 && c->key.proto != a->proto)
		return 0;
	if (a->has_src && !addr_is(c, 0, a->src, a->family))
		return 0;
	if (a->has_dst && !addr_is(c, 1, a->dst, a->family))
		return 0;
	if (a->tcp_state >= 0 && (c->key.proto != IPPROTO_TCP ||
				  (int)(c->e.state & CT_ST_TCP_MASK) != a->tcp_state))
		return 0;
	ls->shown++;
	if (!out_json()) {
		ct_conn_format(c, line, sizeof(line));
		printf("%s\n", line);
		return 0;
	}
	out_open_obj(NULL);
	out_str("instance", NULL, ls->inst);
	out_str("family", NULL, c->key.family == 6 ? "ipv6" : "ipv4");
	out_str("proto", NULL, ct_proto_name(c->key.proto, pbuf, sizeof(pbuf)));
	out_u64("proto_num", NULL, c->key.proto);
	out_u64("timeout", NULL, (c->remaining_ns + NSEC - 1) / NSEC);
	if (c->key.proto == IPPROTO_TCP)
		out_str("state", NULL, ct_tcp_state_name(c->e.state & CT_ST_TCP_MASK));
	print_tuple(c, 0);
	print_tuple(c, 1);
	out_bool("assured", NULL, c->e.state & CT_ST_ASSURED);
	out_bool("unreplied", NULL, !(c->e.state & CT_ST_SEEN_REPLY));
	out_close_obj();
	return 0;
}

static int ct_list_cmd(int argc, char **argv)
{
	struct ct_names names;
	struct list_state ls = {};
	struct ct_args a;
	struct sl_ctx *ctx;
	int err = ct_parse_args("list", argc, argv, false, true, &a);

	if (err)
		return err;
	ls.a = &a;
	err = sl_open(&ctx, 0);
	if (err == -ENOENT && !a.name) {
		out_open_arr(NULL);
		out_close_arr();
		out_done();
		return 0;
	}
	if (err)
		return cli_fail(err);
	err = ct_targets(ctx, a.name, &names);
	if (err) {
		sl_close(ctx);
		return cli_fail(err);
	}
	out_open_arr(NULL);
	for (int i = 0; i < names.n && !err; i++) {
		ls.inst = names.v[i];
		err = ct_foreach(ctx, names.v[i], list_cb, &ls);
	}
	out_close_arr();
	out_done();
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (!out_json())
		fprintf(stderr, "sluice: %llu flow entries have been shown.\n",
			(unsigned long long)ls.shown);
	return 0;
}

/* ---- flush, stats, config ----------------------------------------------- */

static int ct_flush_cmd(int argc, char **argv)
{
	struct ct_names names;
	struct ct_args a;
	struct sl_ctx *ctx;
	__u64 total = 0, n;
	int err = ct_parse_args("flush", argc, argv, false, false, &a);

	if (err)
		return err;
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = ct_targets(ctx, a.name, &names);
	for (int i = 0; i < names.n && !err; i++) {
		n = 0;
		err = ct_flush(ctx, names.v[i], &n);
		total += n;
	}
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (out_json()) {
		out_open_obj(NULL);
		out_u64("deleted", NULL, total);
		out_close_obj();
		out_done();
	} else {
		printf("%llu entries deleted\n", (unsigned long long)total);
	}
	return 0;
}

static __u32 table_size(struct sl_ctx *ctx, const char *name)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char dir[256];
	int fd;

	sl_instance_dir(ctx, name, dir, sizeof(dir));
	fd = sl_obj_get(dir, "ct_table");
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.max_entries = 0;
	close(fd);
	return info.max_entries;
}

static int ct_stats_cmd(int argc, char **argv)
{
	struct ct_names names;
	struct ct_stats st;
	struct ct_args a;
	struct sl_ctx *ctx;
	__u64 entries;
	int err = ct_parse_args("stats", argc, argv, false, false, &a);

	if (err)
		return err;
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	err = ct_targets(ctx, a.name, &names);
	out_open_arr(NULL);
	for (int i = 0; i < names.n && !err; i++) {
		err = ct_stats_read(ctx, names.v[i], &st, &entries);
		if (err)
			break;
		out_open_obj(NULL);
		out_str("name", "%s:", names.v[i]);
		out_u64("entries", " entries %llu", entries);
		out_u64("max", " max %llu", table_size(ctx, names.v[i]));
		out_u64("new", " new %llu", st.new);
		out_u64("established", " established %llu", st.established);
		out_u64("related", " related %llu", st.related);
		out_u64("invalid", " invalid %llu", st.invalid);
		out_u64("untracked", " untracked %llu", st.untracked);
		out_u64("created", " created %llu", st.created);
		out_u64("expired", " expired %llu", st.expired);
		out_u64("killed", " killed %llu", st.killed);
		out_u64("gc_runs", " gc_runs %llu", st.gc_runs);
		out_u64("gc_deleted", " gc_deleted %llu", st.gc_deleted);
		out_text("\n");
		out_close_obj();
	}
	out_close_arr();
	out_done();
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static void print_config(const char *name, const struct ct_config *cfg)
{
	out_open_obj(NULL);
	out_str("name", "%s:", name);
	out_bool("loose", " loose %s", cfg->flags & CT_CFG_LOOSE);
	out_bool("drop_invalid", " drop-invalid %s", cfg->flags & CT_CFG_DROP_INVALID);
	out_u64("gc_interval_ms", " gc-interval %llu ms", cfg->gc_interval_ms);
	out_open_obj("timeouts");
	for (unsigned int i = 0; i < CT_TO_MAX; i++) {
		const char *t = ct_timeout_name(i);

		if (!t)
			continue;
		out_text("%s%s=", i % 5 ? " " : "\n  ", t);
		out_u64(t, "%llu", cfg->timeout_ns[i] / NSEC);
	}
	out_close_obj();
	out_text("\n");
	out_close_obj();
}

static int ct_config_cmd(int argc, char **argv)
{
	struct ct_config cfg, edit;
	const char *name = NULL;
	struct ct_names names;
	struct sl_ctx *ctx;
	bool changed = false;
	int err;

	/* Parse into a scratch copy first, to refuse bad input early. */
	ct_config_default(&edit);
	for (int i = 0; i < argc; i++) {
		err = parse_cfg_opt(argc, argv, &i, &edit, &changed);
		if (err > 0)
			return err;
		if (!err)
			continue;
		if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else {
			fprintf(stderr, "sluice: conntrack config: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	err = sl_open(&ctx, changed ? SL_OPEN_WRITE : 0);
	if (err)
		return cli_fail(err);
	err = ct_targets(ctx, name, &names);
	if (!err && !names.n)
		err = sl_err(-ENOENT, "no conntrack instance");
	if (!err && changed && names.n != 1)
		err = sl_err(-EINVAL, "%d conntrack instances: say which with --name", names.n);
	if (err)
		goto out;
	if (changed) {
		/* Apply the options given again, over the current ones. */
		err = ct_config_read(ctx, names.v[0], &cfg);
		for (int i = 0; i < argc && !err; i++) {
			bool dummy;

			if (!strcmp(argv[i], "--name")) {
				i++;
				continue;
			}
			if (parse_cfg_opt(argc, argv, &i, &cfg, &dummy))
				err = -EINVAL;
		}
		err = err ?: ct_config_write(ctx, names.v[0], &cfg);
		goto out;
	}
	out_open_arr(NULL);
	for (int i = 0; i < names.n && !err; i++) {
		err = ct_config_read(ctx, names.v[i], &cfg);
		if (!err)
			print_config(names.v[i], &cfg);
	}
	out_close_arr();
	out_done();
out:
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static const struct cmd ct_cmds[] = {
	{ "attach", ct_attach_cmd, " DEV [--hook HOOK] [--name NAME]   (creates NAME, default '"
	  CT_DEFAULT_NAME "', and puts it first on DEV's HOOK chain, default ingress)" },
	{ "detach", ct_detach_cmd, " DEV [--hook HOOK] [--name NAME]   (takes it off that chain)" },
	{ "create", ct_create_cmd, " NAME [--size N] [--strict] [--drop-invalid] [--timeout NAME=SEC ...] [--gc-interval MS]" },
	{ "delete", ct_delete_cmd, " NAME   (an instance in no chain)" },
	{ "list", ct_list_cmd, " [--name NAME] [-p PROTO] [-s ADDR] [-d ADDR] [--state TCPSTATE]   (like conntrack -L)" },
	{ "flush", ct_flush_cmd, " [--name NAME]" },
	{ "stats", ct_stats_cmd, " [--name NAME]" },
	{ "config", ct_config_cmd, " [--name NAME] [--loose|--strict] [--drop-invalid|--no-drop-invalid] "
	  "[--timeout NAME=SEC ...] [--gc-interval MS]   (no option: show)" },
	{},
};

static int do_conntrack(int argc, char **argv)
{
	return cli_dispatch(ct_cmds, "conntrack ", argc, argv);
}

CLI_COMMAND(conntrack_cmd, "conntrack", do_conntrack,
	    " attach|detach|create|delete|list|flush|stats|config ...   connection tracking", true);
