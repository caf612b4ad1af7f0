// SPDX-License-Identifier: GPL-2.0
/* sluice lb: the L4 load balancer, in ipvsadm's own syntax for services
 * and backends, plus attach/detach, save and restore.
 *   sluice lb [--name NAME] -A|-E|-D -t|-u VIP:PORT [-s mh|rr|wrr] [--mh-size M]
 *   sluice lb [--name NAME] -a|-e|-d -t|-u VIP:PORT -r RIP[:PORT] [-m|-g|-i] [-w W]
 *   sluice lb [--name NAME] -L|-l [-n] [--stats] [-t|-u VIP:PORT]   (-j: JSON)
 *   sluice lb [--name NAME] -C | save | restore [FILE] | attach DEV... | detach DEV
 *   sluice lb [--name NAME] decap on|off   (a backend of an IPIP service)
 *   sluice lb [--name NAME] forward [on|off]   (NAT packets leave by redirect)
 * Every write is checked whole before anything changes. Writes go straight
 * through libsluice under the writer lock (sluiced has no lb routes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "sluice.h"
#include "lb.h"
#include "health.h"
#include "out.h"
#include "cli.h"

/* The instance every subcommand works on (--name, default "lb"). */
static const char *lb_inst = LB_DEFAULT_NAME;

static int lb_write(int (*fn)(struct sl_ctx *ctx, void *arg), void *arg)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, SL_OPEN_WRITE);

	if (err)
		return cli_fail(err);
	err = fn(ctx, arg);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

/* ---- attach / detach ----------------------------------------------------- */

struct attach_args {
	int ndev;
	char **devs;
	enum sl_hook hook;
};

static int attach_fn(struct sl_ctx *ctx, void *arg)
{
	struct attach_args *a = arg;
	int err = 0;

	/* Check every interface first, so a bad name attaches nothing. */
	for (int i = 0; i < a->ndev && !err; i++)
		err = sl_chain_check(ctx, a->devs[i], a->hook, lb_inst);
	for (int i = 0; i < a->ndev && !err; i++)
		err = lb_attach(ctx, lb_inst, a->devs[i], a->hook);
	return err;
}

static int lb_attach_cmd(int argc, char **argv)
{
	struct attach_args a = { .devs = calloc(argc + 1, sizeof(char *)),
				 .hook = SL_HOOK_XDP };
	int rc;

	if (!a.devs)
		return cli_bad_usage("out of memory");
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--tc")) {
			a.hook = SL_HOOK_TC_IN;
		} else if (argv[i][0] == '-') {
			free(a.devs);
			fprintf(stderr, "sluice: lb attach: unknown option '%s'\n", argv[i]);
			return 2;
		} else {
			a.devs[a.ndev++] = argv[i];
		}
	}
	if (!a.ndev) {
		free(a.devs);
		return cli_bad_usage("lb attach: need DEV [DEV ...]");
	}
	rc = lb_write(attach_fn, &a);
	if (!rc && !out_json())
		for (int i = 0; i < a.ndev; i++)
			printf("load balancer %s attached to %s (%s)\n", lb_inst, a.devs[i],
			       sl_hook_name(a.hook));
	free(a.devs);
	return rc;
}

static int detach_fn(struct sl_ctx *ctx, void *arg)
{
	return lb_detach(ctx, lb_inst, arg);
}

static int lb_detach_cmd(int argc, char **argv)
{
	if (argc != 1 || argv[0][0] == '-')
		return cli_bad_usage("lb detach: need DEV");
	return lb_write(detach_fn, argv[0]);
}

static int decap_fn(struct sl_ctx *ctx, void *arg)
{
	return lb_set_decap(ctx, lb_inst, *(bool *)arg);
}

static int lb_decap_cmd(int argc, char **argv)
{
	bool on;

	if (argc != 1 || (strcmp(argv[0], "on") && strcmp(argv[0], "off")))
		return cli_bad_usage("lb decap: on|off");
	on = !strcmp(argv[0], "on");
	return lb_write(decap_fn, &on);
}

static int forward_fn(struct sl_ctx *ctx, void *arg)
{
	return lb_set_forward(ctx, lb_inst, *(bool *)arg);
}

/* forward on|off sets; forward alone shows the setting. */
static int lb_forward_cmd(int argc, char **argv)
{
	struct sl_ctx *ctx = NULL;
	bool on = false;
	int err;

	if (argc == 1 && (!strcmp(argv[0], "on") || !strcmp(argv[0], "off"))) {
		on = !strcmp(argv[0], "on");
		return lb_write(forward_fn, &on);
	}
	if (argc)
		return cli_bad_usage("lb forward: [on|off]");
	err = sl_open(&ctx, 0);
	err = err ?: lb_get_forward(ctx, lb_inst, &on);
	if (ctx)
		sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (out_json())
		printf("{\"forward\": %s}\n", on ? "true" : "false");
	else
		printf("forward %s\n", on ? "on" : "off");
	return 0;
}

static int flush_fn(struct sl_ctx *ctx, void *arg)
{
	int n = lb_flush_flows(ctx, lb_inst);

	if (n >= 0 && !out_json())
		printf("%d flow%s forgotten\n", n, n == 1 ? "" : "s");
	return n < 0 ? n : 0;
}

static int lb_flush_cmd(int argc, char **argv)
{
	if (argc)
		return cli_bad_usage("lb flush: takes no argument");
	return lb_write(flush_fn, NULL);
}

/* ---- listing --------------------------------------------------------------- */

static void ep_text(__u8 family, const __u8 *addr, __u16 port, char *buf, size_t len)
{
	lb_format_endpoint(family, addr, port, buf, len);
}

static const char *fwd_word(__u8 fwd)
{
	return fwd == LB_FWD_NAT ? "nat" : fwd == LB_FWD_IPIP ? "ipip" : "mac";
}

static void json_stats(const struct lb_stats *s)
{
	out_open_obj("stats");
	out_u64("conns", NULL, s->conns);
	out_u64("in_packets", NULL, s->pkts_in);
	out_u64("out_packets", NULL, s->pkts_out);
	out_u64("in_bytes", NULL, s->bytes_in);
	out_u64("out_bytes", NULL, s->bytes_out);
	out_close_obj();
}

static void print_json(const struct lb_conf *c)
{
	char a[64];

	out_open_obj(NULL);
	out_str("name", NULL, lb_inst);
	out_open_arr("services");
	for (__u32 i = 0; i < c->n; i++) {
		const struct lb_service_info *s = &c->svcs[i];

		out_open_obj(NULL);
		out_str("protocol", NULL, s->key.proto == IPPROTO_UDP ? "udp" : "tcp");
		ep_text(s->key.family, s->key.addr, 0, a, sizeof(a));
		out_str("address", NULL, a);
		out_u64("port", NULL, s->key.port);
		out_str("scheduler", NULL, lb_sched_name(s->conf.sched));
		out_u64("mh_size", NULL, s->conf.mh_size);
		out_u64("id", NULL, s->id);
		json_stats(&s->stats);
		out_open_arr("backends");
		for (__u32 j = 0; j < s->nbackends; j++) {
			const struct lb_backend_info *b = &s->backends[j];

			out_open_obj(NULL);
			ep_text(b->addr.family, b->addr.addr, 0, a, sizeof(a));
			out_str("address", NULL, a);
			out_u64("port", NULL, b->addr.port);
			out_str("forward", NULL, fwd_word(b->conf.fwd));
			out_u64("weight", NULL, b->conf.weight);
			out_bool("up", NULL, b->up);
			out_u64("id", NULL, b->id);
			json_stats(&b->stats);
			out_close_obj();
		}
		out_close_arr();
		out_close_obj();
	}
	out_close_arr();
	out_close_obj();
	out_done();
}

/* As ipvsadm -L -n: ActiveConn/InActConn become the flows scheduled to
 * the backend and its health state (no TCP state is kept). */
static void print_text(const struct lb_conf *c, bool stats)
{
	char a[80];

	printf("sluice lb %s (%u service%s)\n", lb_inst, c->n, c->n == 1 ? "" : "s");
	if (stats)
		printf("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n"
		       "  -> RemoteAddress:Port\n");
	else
		printf("Prot LocalAddress:Port Scheduler Flags\n"
		       "  -> RemoteAddress:Port           Forward Weight Conns      State\n");
	for (__u32 i = 0; i < c->n; i++) {
		const struct lb_service_info *s = &c->svcs[i];
		const char *prot = s->key.proto == IPPROTO_UDP ? "UDP" : "TCP";

		ep_text(s->key.family, s->key.addr, s->key.port, a, sizeof(a));
		if (stats)
			printf("%s  %-30s %8llu %8llu %8llu %8llu %8llu\n", prot, a,
			       (unsigned long long)s->stats.conns,
			       (unsigned long long)s->stats.pkts_in,
			       (unsigned long long)s->stats.pkts_out,
			       (unsigned long long)s->stats.bytes_in,
			       (unsigned long long)s->stats.bytes_out);
		else if (s->conf.sched == LB_SCHED_MH)
			printf("%s  %s mh (table %u)\n", prot, a, s->conf.mh_size);
		else
			printf("%s  %s %s\n", prot, a, lb_sched_name(s->conf.sched));
		for (__u32 j = 0; j < s->nbackends; j++) {
			const struct lb_backend_info *b = &s->backends[j];

			ep_text(b->addr.family, b->addr.addr, b->addr.port, a, sizeof(a));
			if (stats)
				printf("  -> %-30s %8llu %8llu %8llu %8llu %8llu\n", a,
				       (unsigned long long)b->stats.conns,
				       (unsigned long long)b->stats.pkts_in,
				       (unsigned long long)b->stats.pkts_out,
				       (unsigned long long)b->stats.bytes_in,
				       (unsigned long long)b->stats.bytes_out);
			else
				printf("  -> %-28s %-7s %-6u %-10llu %s\n", a,
				       lb_fwd_name(b->conf.fwd), b->conf.weight,
				       (unsigned long long)b->stats.conns, b->up ? "up" : "down");
		}
	}
}

/* Reads the configuration; no instance reads as an empty one. */
static int read_conf(struct lb_conf *c)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0);

	memset(c, 0, sizeof(*c));
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = lb_list(ctx, lb_inst, c);
	sl_close(ctx);
	return err == -ENOENT ? 0 : err;
}

static int lb_list_cmd(int argc, char **argv)
{
	struct lb_service_key only = {};
	bool stats = false, filter = false;
	struct lb_conf c;
	int err;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-L") || !strcmp(a, "-l") || !strcmp(a, "--list") ||
		    !strcmp(a, "-n") || !strcmp(a, "--numeric") || !strcmp(a, "--exact"))
			continue;
		if (!strcmp(a, "--stats")) {
			stats = true;
		} else if ((!strcmp(a, "-t") || !strcmp(a, "-u")) && i + 1 < argc && !filter) {
			only.proto = a[1] == 't' ? IPPROTO_TCP : IPPROTO_UDP;
			if (lb_parse_endpoint(argv[++i], true, &only.family, only.addr, &only.port))
				return cli_fail(-EINVAL);
			filter = true;
		} else {
			fprintf(stderr, "sluice: lb -L: unknown option '%s' (-n, --stats, --exact, -t|-u VIP:PORT)\n",
				a);
			return 2;
		}
	}
	err = read_conf(&c);
	if (err)
		return cli_fail(err);
	if (filter) {
		__u32 k = 0;

		for (__u32 i = 0; i < c.n; i++) {
			if (!memcmp(&c.svcs[i].key, &only, sizeof(only)))
				c.svcs[k++] = c.svcs[i];
			else
				free(c.svcs[i].backends);
		}
		c.n = k;
		if (!k) {
			lb_conf_free(&c);
			fprintf(stderr, "sluice: no such service\n");
			return 1;
		}
	}
	if (out_json())
		print_json(&c);
	else
		print_text(&c, stats);
	lb_conf_free(&c);
	return 0;
}

/* ---- save / restore -------------------------------------------------------- */

static int lb_save_cmd(int argc, char **argv)
{
	struct lb_conf c;
	char a[80];
	int err;

	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "-n"))
			return cli_bad_usage("lb save: takes only -n");
	err = read_conf(&c);
	if (err)
		return cli_fail(err);
	for (__u32 i = 0; i < c.n; i++) {
		const struct lb_service_info *s = &c.svcs[i];
		const char *t = s->key.proto == IPPROTO_UDP ? "-u" : "-t";
		char svc[80];

		ep_text(s->key.family, s->key.addr, s->key.port, svc, sizeof(svc));
		printf("-A %s %s -s %s", t, svc, lb_sched_name(s->conf.sched));
		if (s->conf.mh_size != LB_MH_DEFAULT)
			printf(" --mh-size %u", s->conf.mh_size);
		printf("\n");
		for (__u32 j = 0; j < s->nbackends; j++) {
			const struct lb_backend_info *b = &s->backends[j];

			ep_text(b->addr.family, b->addr.addr, b->addr.port, a, sizeof(a));
			printf("-a %s %s -r %s %s -w %u\n", t, svc, a,
			       b->conf.fwd == LB_FWD_NAT ? "-m" : b->conf.fwd == LB_FWD_IPIP ? "-i" : "-g",
			       b->conf.weight);
		}
	}
	lb_conf_free(&c);
	return 0;
}

struct restore_args {
	FILE *f;
	const char *name;
	__u32 nsvc;
};

static int restore_fn(struct sl_ctx *ctx, void *arg)
{
	struct restore_args *r = arg;
	struct lb_conf c = {};
	int err = lb_list(ctx, lb_inst, &c);

	if (err == -ENOENT)
		err = 0;
	err = err ?: lb_restore_parse(r->f, r->name, &c);
	err = err ?: lb_apply(ctx, lb_inst, &c);
	r->nsvc = c.n;
	lb_conf_free(&c);
	return err;
}

static int lb_restore_cmd(int argc, char **argv)
{
	struct restore_args r = { .f = stdin, .name = "<stdin>" };
	int rc;

	if (argc > 1 || (argc == 1 && argv[0][0] == '-' && argv[0][1]))
		return cli_bad_usage("lb restore: [FILE] (default: standard input)");
	if (argc == 1 && strcmp(argv[0], "-")) {
		r.f = fopen(argv[0], "r");
		r.name = argv[0];
		if (!r.f) {
			fprintf(stderr, "sluice: cannot open %s: %s\n", argv[0], strerror(errno));
			return 1;
		}
	}
	rc = lb_write(restore_fn, &r);
	if (r.f != stdin)
		fclose(r.f);
	if (!rc && !out_json())
		printf("load balancer %s: %u service%s\n", lb_inst, r.nsvc, r.nsvc == 1 ? "" : "s");
	return rc;
}

/* ---- ipvsadm commands ------------------------------------------------------ */

static int op_fn(struct sl_ctx *ctx, void *arg)
{
	return lb_op_commit(ctx, lb_inst, arg);
}

static int lb_ipvsadm(int argc, char **argv)
{
	struct lb_op op;

	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "-L") || !strcmp(argv[i], "-l") || !strcmp(argv[i], "--list"))
			return lb_list_cmd(argc, argv);
	/* Parse and check the whole command before opening the state. */
	if (lb_op_parse(argc, argv, &op))
		return cli_fail(-EINVAL);
	return lb_write(op_fn, &op);
}

/* Subcommands by name; ipvsadm's options (argv[0] starting with '-') go
 * to lb_ipvsadm. New subcommands: one line here. */
static const struct cmd lb_cmds[] = {
	{ "attach", lb_attach_cmd, " DEV [DEV ...] [--tc]   (XDP ingress; --tc: TC ingress)" },
	{ "detach", lb_detach_cmd, " DEV" },
	{ "decap", lb_decap_cmd, " on|off   (backends: strip IP-in-IP where attached)" },
	{ "forward", lb_forward_cmd, " [on|off]   (NAT packets leave by redirect, no router run)" },
	{ "flush", lb_flush_cmd, "   (forget every flow, as conntrack -F)" },
	{ "save", lb_save_cmd, " [-n]   (ipvsadm-save -n format)" },
	{ "restore", lb_restore_cmd, " [FILE]   (ipvsadm-save -n lines; all or nothing)" },
	{ "list", lb_list_cmd, " [--stats] [-t|-u VIP:PORT]   (as -L -n)" },
	{ "healthcheck", lb_healthcheck_cmd, " set|del|show|run ...   (active health checks)", true },
	{ NULL, NULL, NULL },
};

static int do_lb(int argc, char **argv)
{
	/* --name NAME may come anywhere. */
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--name"))
			continue;
		if (i + 1 >= argc)
			return cli_bad_usage("lb: --name needs a value");
		lb_inst = argv[i + 1];
		memmove(&argv[i], &argv[i + 2], (argc - i - 2) * sizeof(char *));
		argc -= 2;
		i--;
	}
	if (argc > 0 && argv[0][0] == '-' && strcmp(argv[0], "-h") && strcmp(argv[0], "--help"))
		return lb_ipvsadm(argc, argv);
	if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
		fprintf(stderr,
			"Usage: sluice lb [--name NAME] -A|-E|-D -t|-u VIP:PORT [-s mh|rr|wrr] [--mh-size M]\n"
			"       sluice lb [--name NAME] -a|-e|-d -t|-u VIP:PORT -r RIP[:PORT] [-m|-g|-i] [-w WEIGHT]\n"
			"       sluice lb [--name NAME] -L -n [--stats] | -C\n");
		return cli_dispatch(lb_cmds, "lb ", argc < 1 ? 0 : 1, argv);
	}
	return cli_dispatch(lb_cmds, "lb ", argc, argv);
}

CLI_COMMAND(lb_cmd, "lb", do_lb,
	    " [--name NAME] -A|-E|-D|-a|-e|-d|-L|-C ... (ipvsadm syntax) | attach DEV... | detach DEV | save | restore [FILE]",
	    true);
