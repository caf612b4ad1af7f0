// SPDX-License-Identifier: GPL-2.0
/* Flow monitor commands:
 *   sluice flowmon attach DEV [--hook HOOK]... [--name NAME] [--max-flows N]
 *   sluice flowmon show NAME
 *   sluice flows [--name NAME] [--sort bytes|pkts|rtt] [--limit N] [FILTER]
 *   sluice top [--name NAME] [--sort bytes|pkts] [--limit N]
 *              [--interval SEC] [--iterations N] [FILTER]
 * FILTER: words ANDed, e.g. "proto tcp dport 80 src 10.0.0.0/8" (flowmon.h).
 * Reads go to the pinned tables directly; attach goes through sluiced when
 * one serves the namespace (PUT /v1/flowmons/NAME), as every write does. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "sluice.h"
#include "flowmon.h"
#include "out.h"
#include "client.h"
#include "cli.h"

#define FLOWS_LIMIT_DEFAULT 0 /* flows: all */
#define TOP_LIMIT_DEFAULT 20

/* ---- flowmon attach / show --------------------------------------------- */

static int parse_u32(const char *opt, const char *s, __u32 min, __u32 max, __u32 *v)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || n < min || n > max) {
		fprintf(stderr, "sluice: %s '%s': a number from %u to %u\n", opt, s, min, max);
		return -EINVAL;
	}
	*v = n;
	return 0;
}

static int attach_via_daemon(const char *name, const char *dev,
			     const enum sl_hook *hooks, int nhooks, __u32 max_flows)
{
	char path[128] = "/v1/flowmons/";
	json_t *body = json_pack("{s:s, s:[]}", "dev", dev, "hooks");
	int err;

	if (!body)
		return cli_bad_usage("out of memory");
	for (int i = 0; i < nhooks; i++)
		json_array_append_new(json_object_get(body, "hooks"),
				      json_string(sl_hook_name(hooks[i])));
	if (max_flows)
		json_object_set_new(body, "max_flows", json_integer(max_flows));
	cl_escape(path + strlen(path), sizeof(path) - strlen(path), name);
	err = cl_call("PUT", path, body, NULL);
	json_decref(body);
	return err;
}

static int flowmon_attach(int argc, char **argv)
{
	enum sl_hook hooks[SL_HOOK_MAX];
	const char *dev = NULL, *name = NULL;
	char defname[SL_NAME_MAX];
	__u32 max_flows = 0;
	struct sl_ctx *ctx = NULL;
	int nhooks = 0, err;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--hook") && i + 1 < argc) {
			if (nhooks == SL_HOOK_MAX || sl_hook_parse(argv[++i], &hooks[nhooks]))
				return cli_bad_usage("--hook: ingress, tc-ingress or egress, each once");
			for (int k = 0; k < nhooks; k++)
				if (hooks[k] == hooks[nhooks])
					return cli_bad_usage("--hook given twice for one hook");
			nhooks++;
		} else if (!strcmp(a, "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(a, "--max-flows") && i + 1 < argc) {
			if (parse_u32("--max-flows", argv[++i], FM_FLOWS_MIN, FM_FLOWS_MAX, &max_flows))
				return 2;
		} else if (a[0] == '-' || dev) {
			fprintf(stderr, "sluice: flowmon attach: unexpected '%s'\n", a);
			return 2;
		} else {
			dev = a;
		}
	}
	if (!dev)
		return cli_bad_usage("flowmon attach: need DEV");
	if (sl_ifindex(dev) < 0)
		return cli_fail(-ENODEV);
	if (!nhooks) { /* both directions of DEV's traffic */
		hooks[0] = SL_HOOK_XDP;
		hooks[1] = SL_HOOK_TC_OUT;
		nhooks = 2;
	}
	if (!name) {
		if ((size_t)snprintf(defname, sizeof(defname), "fm-%s", dev) >= sizeof(defname))
			return cli_bad_usage("interface name too long for a default name: use --name");
		name = defname;
	}
	if (cl_daemon()) {
		err = attach_via_daemon(name, dev, hooks, nhooks, max_flows);
	} else {
		err = sl_open(&ctx, SL_OPEN_WRITE);
		err = err ?: fm_attach(ctx, name, dev, hooks, nhooks, max_flows);
		if (ctx)
			sl_close(ctx);
		err = err ? cli_fail(err) : 0;
	}
	if (!err && !out_json()) {
		printf("%s: flow monitor on %s", name, dev);
		for (int i = 0; i < nhooks; i++)
			printf(" %s", sl_hook_name(hooks[i]));
		printf("\n");
	}
	return err;
}

static int flowmon_show(int argc, char **argv)
{
	struct fm_info info;
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return cli_bad_usage("flowmon show: need NAME");
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	err = fm_info_read(ctx, argv[0], &info);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	out_open_obj(NULL);
	out_str("name", "%s:", argv[0]);
	out_u64("flows", " %llu flows", info.flows);
	out_u64("max_flows", " (table of %llu)", info.max_flows);
	out_u64("flows_created", ", %llu created", info.stats.created);
	out_u64("insert_failed", ", %llu inserts failed", info.stats.insert_failed);
	out_u64("skipped", ", %llu non-IP packets skipped\n", info.stats.skipped);
	out_close_obj();
	out_done();
	return 0;
}

static const struct cmd flowmon_cmds[] = {
	{ "attach", flowmon_attach, " DEV [--hook HOOK]... [--name NAME] [--max-flows N]   (default hooks: ingress and egress; name fm-DEV)" },
	{ "show", flowmon_show, " NAME   (table size and counters)" },
	{},
};

static int do_flowmon(int argc, char **argv)
{
	return cli_dispatch(flowmon_cmds, "flowmon ", argc, argv);
}

CLI_COMMAND(flowmon_cmd, "flowmon", do_flowmon, " attach|show ...", true);

/* ---- common: options, reading, printing ----------------------------------- */

struct flows_args {
	const char *name; /* NULL: every flow monitor */
	enum fm_sort sort;
	__u32 limit;
	__u32 interval_ms;
	__u32 iterations; /* top: 0 runs until interrupted */
	struct fm_filter filter;
};

/* Options anywhere; the words left are the filter. */
static int flows_parse(int argc, char **argv, bool top, struct flows_args *a)
{
	char **words = calloc(argc + 1, sizeof(*words));
	int nwords = 0, err = 0;
	__u32 secs_x10;

	if (!words)
		return cli_bad_usage("out of memory");
	a->limit = top ? TOP_LIMIT_DEFAULT : FLOWS_LIMIT_DEFAULT;
	a->interval_ms = 1000;
	for (int i = 0; i < argc && !err; i++) {
		const char *o = argv[i];
		bool has = i + 1 < argc;

		if (!strcmp(o, "--name") && has) {
			a->name = argv[++i];
		} else if (!strcmp(o, "--sort") && has) {
			if (fm_sort_parse(argv[++i], &a->sort) ||
			    (top && a->sort == FM_SORT_RTT))
				err = cli_bad_usage(top ? "--sort: bytes or pkts (rates)"
							: "--sort: bytes, pkts or rtt");
		} else if (!strcmp(o, "--limit") && has) {
			err = parse_u32("--limit", argv[++i], 1, 1000000, &a->limit) ? 2 : 0;
		} else if (top && !strcmp(o, "--iterations") && has) {
			err = parse_u32("--iterations", argv[++i], 1, 1000000, &a->iterations) ? 2 : 0;
		} else if (top && !strcmp(o, "--interval") && has) {
			/* Tenths of a second: 0.1 to 60. */
			char *end;
			double s = strtod(argv[++i], &end);

			secs_x10 = s * 10 + 0.5;
			if (*end || end == argv[i] || !(s >= 0.1 && s <= 60)) {
				fprintf(stderr, "sluice: --interval '%s': 0.1 to 60 seconds\n", argv[i]);
				err = 2;
			}
			a->interval_ms = secs_x10 * 100;
		} else if (o[0] == '-' && o[1]) {
			fprintf(stderr, "sluice: unknown option '%s'\n", o);
			err = 2;
		} else {
			words[nwords++] = argv[i];
		}
	}
	if (!err && fm_filter_parse(nwords, words, &a->filter)) {
		fprintf(stderr, "sluice: %s\n", sl_errmsg());
		err = 2;
	}
	free(words);
	return err;
}

/* Reads the flows the filter keeps. */
static int flows_read(struct sl_ctx *ctx, const struct flows_args *a,
		      struct fm_flow_view **out, size_t *n)
{
	struct fm_flow_view *v;
	size_t total, kept = 0;
	int err = fm_flows_read(ctx, a->name, &v, &total);

	if (err)
		return err;
	for (size_t i = 0; i < total; i++)
		if (fm_filter_match(&a->filter, &v[i]))
			v[kept++] = v[i];
	*out = v;
	*n = kept;
	return 0;
}

static void addr_text(const struct fm_flow_view *v, const __u8 *addr, __u16 port,
		      char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	bool ports = v->proto == 6 || v->proto == 17;

	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, addr, a, sizeof(a));
	if (!ports)
		snprintf(buf, len, "%s", a);
	else if (v->family == 6)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
}

static __u64 mono_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

/* A short human duration: 850us, 12.3ms, 4.2s, 3m10s. */
static void dur_text(__u64 ns, char *buf, size_t len)
{
	if (ns < 1000000)
		snprintf(buf, len, "%lluus", (unsigned long long)ns / 1000);
	else if (ns < 1000000000ULL)
		snprintf(buf, len, "%.1fms", ns / 1e6);
	else if (ns < 60000000000ULL)
		snprintf(buf, len, "%.1fs", ns / 1e9);
	else
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(ns / 60000000000ULL),
			 (unsigned long long)(ns / 1000000000ULL % 60));
}

/* 1234567 -> 1.2M */
static void num_text(double v, char *buf, size_t len)
{
	if (v < 1000)
		snprintf(buf, len, "%.0f", v);
	else if (v < 1e6)
		snprintf(buf, len, "%.1fK", v / 1e3);
	else if (v < 1e9)
		snprintf(buf, len, "%.1fM", v / 1e6);
	else
		snprintf(buf, len, "%.1fG", v / 1e9);
}

/* ---- sluice flows ------------------------------------------------------------ */

static void flow_json(const struct fm_flow_view *v, __u64 now)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], f0[64], f1[64], pb[8];

	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->src, src, sizeof(src));
	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->dst, dst, sizeof(dst));
	fm_flags_format(v->tcp_flags[0], f0, sizeof(f0));
	fm_flags_format(v->tcp_flags[1], f1, sizeof(f1));
	out_open_obj(NULL);
	out_str("instance", NULL, v->instance);
	out_u64("family", NULL, v->family);
	out_str("proto", NULL, fm_proto_name(v->proto, pb));
	out_str("src", NULL, src);
	out_u64("sport", NULL, v->sport);
	out_str("dst", NULL, dst);
	out_u64("dport", NULL, v->dport);
	out_u64("packets", NULL, v->packets[0] + v->packets[1]);
	out_u64("bytes", NULL, v->bytes[0] + v->bytes[1]);
	out_u64("packets_fwd", NULL, v->packets[0]);
	out_u64("packets_rev", NULL, v->packets[1]);
	out_u64("bytes_fwd", NULL, v->bytes[0]);
	out_u64("bytes_rev", NULL, v->bytes[1]);
	out_str("tcp_flags_fwd", NULL, f0);
	out_str("tcp_flags_rev", NULL, f1);
	out_u64("rtt_us", NULL, v->rtt_ns / 1000);
	out_u64("retrans_fwd", NULL, v->retrans[0]);
	out_u64("retrans_rev", NULL, v->retrans[1]);
	out_u64("age_ms", NULL, now > v->first_ns ? (now - v->first_ns) / 1000000 : 0);
	out_u64("idle_ms", NULL, now > v->last_ns ? (now - v->last_ns) / 1000000 : 0);
	out_close_obj();
}

static void flow_text(const struct fm_flow_view *v, __u64 now)
{
	char src[64], dst[64], f0[64], f1[64], pb[8], rtt[16], age[16], idle[16];
	char pk[40], by[40], n0[16], n1[16];

	addr_text(v, v->src, v->sport, src, sizeof(src));
	addr_text(v, v->dst, v->dport, dst, sizeof(dst));
	fm_flags_format(v->tcp_flags[0], f0, sizeof(f0));
	fm_flags_format(v->tcp_flags[1], f1, sizeof(f1));
	if (v->rtt_ns)
		dur_text(v->rtt_ns, rtt, sizeof(rtt));
	else
		snprintf(rtt, sizeof(rtt), "-");
	dur_text(now > v->first_ns ? now - v->first_ns : 0, age, sizeof(age));
	dur_text(now > v->last_ns ? now - v->last_ns : 0, idle, sizeof(idle));
	snprintf(pk, sizeof(pk), "%llu/%llu", (unsigned long long)v->packets[0],
		 (unsigned long long)v->packets[1]);
	num_text(v->bytes[0], n0, sizeof(n0));
	num_text(v->bytes[1], n1, sizeof(n1));
	snprintf(by, sizeof(by), "%s/%s", n0, n1);
	printf("%-6s %-22s %-22s %13s %15s %6s %5u/%-4u %-8s %-8s %s/%s\n",
	       fm_proto_name(v->proto, pb), src, dst, pk, by, rtt, v->retrans[0],
	       v->retrans[1], age, idle, f0, f1);
}

static int do_flows(int argc, char **argv)
{
	struct flows_args a = {};
	struct fm_flow_view *v = NULL;
	struct sl_ctx *ctx;
	size_t n = 0;
	__u64 now;
	int err = flows_parse(argc, argv, false, &a);

	if (err)
		return err;
	err = sl_open(&ctx, 0);
	if (err == -ENOENT) {
		ctx = NULL; /* no state: no flows */
	} else if (err) {
		return cli_fail(err);
	}
	if (ctx) {
		err = flows_read(ctx, &a, &v, &n);
		sl_close(ctx);
		if (err)
			return cli_fail(err);
	}
	fm_flows_sort(v, n, a.sort);
	if (a.limit && n > a.limit)
		n = a.limit;
	now = mono_now_ns();
	out_open_arr(NULL);
	if (!out_json())
		printf("%-6s %-22s %-22s %13s %15s %6s %10s %-8s %-8s %s\n", "PROTO",
		       "SRC", "DST", "PKTS ->/<-", "BYTES ->/<-", "RTT", "RETRANS",
		       "AGE", "IDLE", "FLAGS ->/<-");
	for (size_t i = 0; i < n; i++) {
		if (out_json())
			flow_json(&v[i], now);
		else
			flow_text(&v[i], now);
	}
	out_close_arr();
	out_done();
	free(v);
	return 0;
}

CLI_COMMAND(flows_cmd, "flows", do_flows,
	    " [--name NAME] [--sort bytes|pkts|rtt] [--limit N] [FILTER]   (FILTER: src|dst|host ADDR[/LEN], sport|dport|port N, proto P; ANDed)",
	    false);

/* ---- sluice top ------------------------------------------------------------------ */

/* A flow with its rates over the last interval. */
struct top_row {
	struct fm_flow_view v;
	double pps, bps; /* both directions */
};

static int key_cmp(const void *x, const void *y)
{
	const struct fm_flow_view *a = x, *b = y;
	int c = strcmp(a->instance, b->instance);

	return c ?: memcmp(&a->key, &b->key, sizeof(a->key));
}

static int row_cmp_bytes(const void *x, const void *y)
{
	const struct top_row *a = x, *b = y;

	return a->bps < b->bps ? 1 : a->bps > b->bps ? -1 : 0;
}

static int row_cmp_pkts(const void *x, const void *y)
{
	const struct top_row *a = x, *b = y;

	return a->pps < b->pps ? 1 : a->pps > b->pps ? -1 : 0;
}

static volatile sig_atomic_t top_stop;

static void top_on_signal(int sig)
{
	(void)sig;
	top_stop = 1;
}

/* Rates from the previous snapshot prev (sorted by key): a flow it lacks
 * is new and all its counts are from this interval. */
static struct top_row *top_rates(const struct fm_flow_view *cur, size_t n,
				 const struct fm_flow_view *prev, size_t nprev,
				 double secs)
{
	struct top_row *rows = calloc(n ? n : 1, sizeof(*rows));

	if (!rows)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct fm_flow_view *p = bsearch(&cur[i], prev, nprev, sizeof(*prev), key_cmp);
		__u64 pk = cur[i].packets[0] + cur[i].packets[1];
		__u64 by = cur[i].bytes[0] + cur[i].bytes[1];

		/* An evicted flow that came back starts from zero again. */
		if (p && p->packets[0] + p->packets[1] <= pk && p->bytes[0] + p->bytes[1] <= by) {
			pk -= p->packets[0] + p->packets[1];
			by -= p->bytes[0] + p->bytes[1];
		}
		rows[i].v = cur[i];
		rows[i].pps = pk / secs;
		rows[i].bps = by / secs;
	}
	return rows;
}

static void top_frame(const struct top_row *rows, size_t n, size_t shown,
		      double secs, bool tty)
{
	char ts[16], src[64], dst[64], pb[8], rtt[16], r1[16], r2[16], tot[16];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	if (out_json()) {
		out_init(true); /* each frame is a document of its own */
		out_open_obj(NULL);
		out_str("time", NULL, ts);
		out_u64("flows", NULL, n);
		out_open_arr("top");
		for (size_t i = 0; i < shown; i++) {
			out_open_obj(NULL);
			addr_text(&rows[i].v, rows[i].v.src, rows[i].v.sport, src, sizeof(src));
			addr_text(&rows[i].v, rows[i].v.dst, rows[i].v.dport, dst, sizeof(dst));
			out_str("instance", NULL, rows[i].v.instance);
			out_str("proto", NULL, fm_proto_name(rows[i].v.proto, pb));
			out_str("src", NULL, src);
			out_str("dst", NULL, dst);
			out_u64("packets_per_s", NULL, rows[i].pps + 0.5);
			out_u64("bytes_per_s", NULL, rows[i].bps + 0.5);
			out_u64("bytes", NULL, rows[i].v.bytes[0] + rows[i].v.bytes[1]);
			out_u64("rtt_us", NULL, rows[i].v.rtt_ns / 1000);
			out_close_obj();
		}
		out_close_arr();
		out_close_obj();
		out_done();
		return;
	}
	if (tty)
		printf("\033[H\033[2J"); /* home, clear */
	printf("%ssluice top%s - %s - %zu flows, rates over %.1fs\n", tty ? "\033[1m" : "",
	       tty ? "\033[0m" : "", ts, n, secs);
	printf("%s%-6s %-22s %-22s %10s %10s %10s %8s%s\n", tty ? "\033[7m" : "", "PROTO",
	       "SRC", "DST", "PKTS/s", "BYTES/s", "BYTES", "RTT", tty ? "\033[0m" : "");
	for (size_t i = 0; i < shown; i++) {
		const struct fm_flow_view *v = &rows[i].v;

		addr_text(v, v->src, v->sport, src, sizeof(src));
		addr_text(v, v->dst, v->dport, dst, sizeof(dst));
		num_text(rows[i].pps, r1, sizeof(r1));
		num_text(rows[i].bps, r2, sizeof(r2));
		num_text(v->bytes[0] + v->bytes[1], tot, sizeof(tot));
		if (v->rtt_ns)
			dur_text(v->rtt_ns, rtt, sizeof(rtt));
		else
			snprintf(rtt, sizeof(rtt), "-");
		printf("%-6s %-22s %-22s %10s %10s %10s %8s\n", fm_proto_name(v->proto, pb),
		       src, dst, r1, r2, tot, rtt);
	}
	if (!tty)
		printf("\n");
	fflush(stdout);
}

static int top_snapshot(const struct flows_args *a, struct fm_flow_view **v, size_t *n)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0);

	*v = NULL;
	*n = 0;
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = flows_read(ctx, a, v, n);
	sl_close(ctx);
	if (!err && *n > 1)
		qsort(*v, *n, sizeof(**v), key_cmp);
	return err;
}

static int do_top(int argc, char **argv)
{
	struct flows_args a = {};
	struct fm_flow_view *prev = NULL, *cur = NULL;
	size_t nprev = 0, ncur = 0;
	bool tty = isatty(STDOUT_FILENO) && !out_json();
	__u64 t_prev, t_cur;
	int err = flows_parse(argc, argv, true, &a);

	if (err)
		return err;
	top_stop = 0;
	signal(SIGINT, top_on_signal);
	signal(SIGTERM, top_on_signal);
	err = top_snapshot(&a, &prev, &nprev);
	t_prev = mono_now_ns();
	for (__u32 it = 0; !err && !top_stop && (!a.iterations || it < a.iterations); it++) {
		struct timespec d = { a.interval_ms / 1000, (a.interval_ms % 1000) * 1000000L };
		struct top_row *rows;
		double secs;

		nanosleep(&d, NULL); /* a signal cuts it short */
		if (top_stop)
			break;
		err = top_snapshot(&a, &cur, &ncur);
		if (err)
			break;
		t_cur = mono_now_ns();
		secs = (t_cur - t_prev) / 1e9;
		rows = top_rates(cur, ncur, prev, nprev, secs > 0 ? secs : 1);
		if (!rows) {
			err = sl_err(-ENOMEM, "out of memory");
			break;
		}
		qsort(rows, ncur, sizeof(*rows), a.sort == FM_SORT_PKTS ? row_cmp_pkts : row_cmp_bytes);
		top_frame(rows, ncur, ncur < a.limit ? ncur : a.limit, secs, tty);
		free(rows);
		free(prev);
		prev = cur;
		nprev = ncur;
		cur = NULL;
		t_prev = t_cur;
	}
	free(prev);
	free(cur);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return err ? cli_fail(err) : 0;
}

CLI_COMMAND(top_cmd, "top", do_top,
	    " [--name NAME] [--sort bytes|pkts] [--limit N] [--interval SEC] [--iterations N] [FILTER]   (live top flows by rate; Ctrl-C ends)",
	    false);
