// SPDX-License-Identifier: GPL-2.0
/* sluice httpmon ... / sluice http ...: HTTP metrics measured in the kernel
 * and the spans of requests that carry a W3C traceparent. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "cli.h"
#include "client.h"
#include "out.h"
#include "httpmon.h"
#include "otlp.h"

/* ---- httpmon attach / detach ------------------------------------------ */

static int httpmon_name(char *buf, size_t len, const char *name, const char *dev)
{
	if (name)
		snprintf(buf, len, "%s", name);
	else if ((size_t)snprintf(buf, len, "http-%s", dev) >= len)
		return cli_bad_usage("interface name too long for a default instance name; use --name");
	return 0;
}

/* PUT /v1/httpmons/NAME, when a daemon serves this namespace. */
static int attach_via_daemon(const char *name, const char *dev,
			     const struct httpmon_opts *o)
{
	char path[128] = "/v1/httpmons/";
	json_t *body = json_pack("{s:s, s:[]}", "dev", dev, "ports");
	int err;

	if (!body)
		return cli_bad_usage("out of memory");
	for (__u32 i = 0; i < o->nports; i++)
		json_array_append_new(json_object_get(body, "ports"), json_integer(o->ports[i]));
	if (o->max_templates)
		json_object_set_new(body, "max_templates", json_integer(o->max_templates));
	if (o->nroutes) {
		json_t *r = json_array();

		for (__u32 i = 0; i < o->nroutes; i++)
			json_array_append_new(r, json_string(o->routes[i]));
		json_object_set_new(body, "routes", r);
	}
	cl_escape(path + strlen(path), sizeof(path) - strlen(path), name);
	err = cl_call("PUT", path, body, NULL);
	json_decref(body);
	return err;
}

static int httpmon_attach_cmd(int argc, char **argv)
{
	struct httpmon_opts o = {};
	const char *dev = NULL, *name = NULL;
	char inst[SL_NAME_MAX];
	struct sl_ctx *ctx;
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			if (httpmon_opts_add_port(&o, argv[++i]))
				return cli_fail(-EINVAL);
		} else if (!strcmp(argv[i], "--route") && i + 1 < argc) {
			if (httpmon_opts_add_route(&o, argv[++i]))
				return cli_fail(-EINVAL);
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "--max-templates") && i + 1 < argc) {
			char *end;

			o.max_templates = strtoul(argv[++i], &end, 10);
			if (*end || !o.max_templates || o.max_templates > HTTP_TMPL_MAX)
				return cli_bad_usage("--max-templates: need 1 to 1024");
		} else if (!dev && argv[i][0] != '-') {
			dev = argv[i];
		} else {
			fprintf(stderr, "sluice: httpmon attach: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!dev || !o.nports)
		return cli_bad_usage("httpmon attach: need DEV and --port P");
	err = httpmon_name(inst, sizeof(inst), name, dev);
	if (err)
		return err;
	if (sl_ifindex(dev) < 0)
		return cli_fail(-ENODEV);
	if (cl_daemon()) {
		err = attach_via_daemon(inst, dev, &o);
		if (err)
			return err;
	} else {
		err = sl_open(&ctx, SL_OPEN_WRITE);
		if (err)
			return cli_fail(err);
		err = httpmon_attach(ctx, dev, inst, &o);
		sl_close(ctx);
		if (err)
			return cli_fail(err);
	}
	if (!out_json()) {
		printf("%s: HTTP on %s ports", inst, dev);
		for (__u32 i = 0; i < o.nports; i++)
			printf("%s%u", i ? "," : " ", o.ports[i]);
		printf(" (tc-ingress, egress)\n");
	} else {
		out_open_obj(NULL);
		out_str("name", NULL, inst);
		out_str("dev", NULL, dev);
		out_close_obj();
		out_done();
	}
	return 0;
}

static int httpmon_detach_cmd(int argc, char **argv)
{
	const char *dev = NULL, *name = NULL;
	char inst[SL_NAME_MAX];
	struct sl_ctx *ctx;
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!dev && argv[i][0] != '-')
			dev = argv[i];
		else
			return cli_bad_usage("httpmon detach: DEV [--name NAME]");
	}
	if (!dev)
		return cli_bad_usage("httpmon detach: need DEV");
	err = httpmon_name(inst, sizeof(inst), name, dev);
	if (err)
		return err;
	if (cl_daemon()) {
		char path[256] = "/v1/httpmons/";

		cl_escape(path + strlen(path), sizeof(path) - strlen(path), inst);
		strcat(path, "?dev=");
		cl_escape(path + strlen(path), sizeof(path) - strlen(path), dev);
		return cl_call("DELETE", path, NULL, NULL);
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = httpmon_detach(ctx, dev, inst);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static const struct cmd httpmon_cmds[] = {
	{ "attach", httpmon_attach_cmd,
	  " DEV --port P [--port P...] [--route /PREFIX*...] [--name NAME] [--max-templates N]",
	  false },
	{ "detach", httpmon_detach_cmd, " DEV [--name NAME]", false },
	{},
};

static int do_httpmon(int argc, char **argv)
{
	return cli_dispatch(httpmon_cmds, "httpmon ", argc, argv);
}

CLI_COMMAND(httpmon_cmd, "httpmon", do_httpmon,
	    " attach|detach ...   HTTP metrics and spans at TC for TCP ports", true);

/* ---- http stats --------------------------------------------------------- */

static __u64 us(double seconds)
{
	return (__u64)(seconds * 1e6 + 0.5);
}

static void print_counters(const struct httpmon_info *in)
{
	const struct http_counters *c = &in->cnt;

	out_open_obj("counters");
	out_u64("requests", "  requests %llu", c->requests);
	out_u64("responses", " responses %llu", c->responses);
	out_u64("partial", " partial %llu", c->partial);
	out_u64("bad", " bad %llu", c->bad);
	out_u64("pipelined", " pipelined %llu", c->pipelined);
	out_u64("stale", " stale %llu", c->stale);
	out_u64("orphans", " orphans %llu", c->orphans);
	out_u64("informational", " informational %llu\n", c->informational);
	out_u64("traceparent_valid", "  traceparent valid %llu", c->tp_valid);
	out_u64("traceparent_invalid", " invalid %llu", c->tp_invalid);
	out_u64("spans", " spans %llu", c->spans);
	out_u64("spans_lost", " lost %llu", c->spans_lost);
	out_u64("template_overflow", " template overflow %llu", c->tmpl_overflow);
	out_u64("stats_full", " stats full %llu\n", c->stats_full);
	out_close_obj();
}

static int cmp_rows(const void *a, const void *b)
{
	const struct httpmon_row *x = a, *y = b;
	int d = (int)x->port - (int)y->port;

	d = d ?: strcmp(x->route, y->route);
	d = d ?: (int)x->method - (int)y->method;
	return d ?: (int)x->status_class - (int)y->status_class;
}

static void print_row(const struct httpmon_row *r)
{
	char cls[8];
	__u64 mean = r->st.count ? r->st.sum_ns / r->st.count / 1000 : 0;

	snprintf(cls, sizeof(cls), "%ux", r->status_class);
	cls[1] = cls[2] = 'x';
	out_open_obj(NULL);
	out_u64("port", "  %-5llu", r->port);
	out_str("method", " %-7s", httpmon_method_name(r->method));
	out_str("route", " %-32s", r->route);
	out_str("status", " %s", cls);
	out_u64("requests", " %8llu", r->st.count);
	out_u64("errors", " %7llu", r->status_class >= 4 ? r->st.count : 0);
	out_u64("client_errors", NULL, r->status_class == 4 ? r->st.count : 0);
	out_u64("server_errors", NULL, r->status_class == 5 ? r->st.count : 0);
	out_u64("p50_us", " %9llu", us(httpmon_quantile(&r->st, 0.5)));
	out_u64("p90_us", " %9llu", us(httpmon_quantile(&r->st, 0.9)));
	out_u64("p99_us", " %9llu", us(httpmon_quantile(&r->st, 0.99)));
	out_u64("mean_us", " %9llu\n", mean);
	out_u64("sum_ns", NULL, r->st.sum_ns);
	if (out_json()) {
		__u64 cum = 0;

		out_open_arr("buckets");
		for (int b = 0; b < HTTP_NBUCKETS; b++) {
			char le[32];

			cum += r->st.buckets[b];
			if (b < HTTP_NBUCKETS - 1)
				snprintf(le, sizeof(le), "%g", httpmon_bucket_le[b]);
			else
				snprintf(le, sizeof(le), "+Inf");
			out_open_obj(NULL);
			out_str("le", NULL, le);
			out_u64("count", NULL, cum);
			out_close_obj();
		}
		out_close_arr();
	}
	out_close_obj();
}

struct stats_arg {
	struct sl_ctx *ctx;
	const char *only;
	int err;
	int shown;
};

static int stats_one(const struct sl_instance *inst, void *arg)
{
	struct stats_arg *sa = arg;
	struct httpmon_info in;
	int err;

	if (sa->only && strcmp(sa->only, inst->name))
		return 0;
	err = httpmon_read(sa->ctx, inst->name, &in);
	if (err) {
		sa->err = err;
		return err;
	}
	sa->shown++;
	qsort(in.rows, in.nrows, sizeof(*in.rows), cmp_rows);
	out_open_obj(NULL);
	out_str("name", "%s", in.name);
	out_open_arr("ports");
	out_text(" ports");
	for (__u32 i = 0; i < in.cfg.nports && i < HTTP_MAX_PORTS; i++)
		out_u64(NULL, " %llu", in.cfg.ports[i]);
	out_close_arr();
	out_open_arr("routes");
	if (in.cfg.nroutes)
		out_text(" routes");
	for (__u32 i = 0; i < in.cfg.nroutes && i < HTTP_MAX_ROUTES; i++)
		out_str(NULL, " %s", in.cfg.routes[i].name);
	out_close_arr();
	out_u64("templates", " templates %llu", in.ntemplates);
	out_u64("max_templates", "/%llu\n", in.cfg.max_templates);
	print_counters(&in);
	out_text("  %-5s %-7s %-32s %s %8s %7s %9s %9s %9s %9s\n", "port", "method",
		 "route", "st", "requests", "errors", "p50(us)", "p90(us)", "p99(us)",
		 "mean(us)");
	out_open_arr("rows");
	for (size_t i = 0; i < in.nrows; i++)
		print_row(&in.rows[i]);
	out_close_arr();
	out_close_obj();
	httpmon_info_free(&in);
	return 0;
}

static int http_stats_cmd(int argc, char **argv)
{
	struct stats_arg sa = {};
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			sa.only = argv[++i];
		else
			return cli_bad_usage("http stats: [--name NAME] [--json]");
	}
	err = sl_open(&sa.ctx, 0);
	if (err)
		return cli_fail(err);
	out_open_obj(NULL);
	out_open_arr("instances");
	httpmon_foreach(sa.ctx, stats_one, &sa);
	out_close_arr();
	out_close_obj();
	out_done();
	sl_close(sa.ctx);
	if (sa.err)
		return cli_fail(sa.err);
	if (sa.only && !sa.shown)
		return cli_fail(sl_err(-ENOENT, "no httpmon instance '%s'", sa.only));
	return 0;
}

/* ---- http spans ----------------------------------------------------------- */

static volatile sig_atomic_t spans_stop;

static void on_signal(int sig)
{
	spans_stop = 1;
}

struct spans_arg {
	struct sl_ctx *ctx;
	struct otlp_exporter *exp;
	char (*names)[SL_NAME_MAX];
	__u64 seen;
	__u64 max;
};

static void print_span_text(const struct http_span *sp, char (*names)[SL_NAME_MAX])
{
	char c[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN], route[HTTP_TMPL_LEN];
	int af = sp->family == 4 ? AF_INET : AF_INET6;

	inet_ntop(af, sp->client, c, sizeof(c));
	inet_ntop(af, sp->server, s, sizeof(s));
	httpmon_route_name(sp->tmpl, sp->path, route, sizeof(route));
	printf("trace ");
	for (int i = 0; i < 16; i++)
		printf("%02x", sp->trace_id[i]);
	printf(" parent ");
	for (int i = 0; i < 8; i++)
		printf("%02x", sp->parent_id[i]);
	printf(" %s %s %s %u %.3f ms %s:%u -> %s:%u path", sp->hook == SL_HOOK_TC_IN ?
	       "server" : "client", httpmon_method_name(sp->method), route, sp->status,
	       (sp->t_end - sp->t_start) / 1e6, c, sp->cport, s, sp->sport);
	for (int i = 0; i < sp->nslots && i < SL_CHAIN_MAX; i++)
		printf("%s%s", i ? "," : " ",
		       sp->slots[i] < SL_MAX_SLOTS ? names[sp->slots[i]] : "?");
	if (sp->lb_backend)
		printf(" backend %u", sp->lb_backend);
	printf("\n");
}

static int on_span(void *arg, void *data, size_t size)
{
	struct spans_arg *sa = arg;
	struct http_span sp = {};

	if (sa->max && sa->seen >= sa->max)
		return 1;
	memcpy(&sp, data, size < sizeof(sp) ? size : sizeof(sp));
	sa->seen++;
	if (sa->exp)
		otlp_exporter_push(sa->exp, &sp, sa->names);
	if (out_json()) {
		char buf[4096];

		if (otlp_span_json(&sp, sa->names, buf, sizeof(buf)) > 0)
			printf("%s\n", buf);
	} else {
		print_span_text(&sp, sa->names);
	}
	fflush(stdout);
	return sa->max && sa->seen >= sa->max ? 1 : 0;
}

static int http_spans_cmd(int argc, char **argv)
{
	static char names[SL_MAX_SLOTS][SL_NAME_MAX];
	struct spans_arg sa = { .names = names };
	const char *endpoint = NULL;
	struct ring_buffer *rb = NULL;
	struct otlp_stats st;
	double timeout = 0;
	struct timespec t0, now;
	int fd = -1, err;

	for (int i = 0; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "--otlp-endpoint") && i + 1 < argc) {
			endpoint = argv[++i];
		} else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			sa.max = strtoull(argv[++i], &end, 10);
			if (*end || !sa.max)
				return cli_bad_usage("--count: need a number from 1");
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout = strtod(argv[++i], &end);
			if (*end || timeout <= 0)
				return cli_bad_usage("--timeout: need seconds above 0");
		} else {
			return cli_bad_usage("http spans: [--otlp-endpoint URL] [--count N] [--timeout SEC]");
		}
	}
	err = sl_open(&sa.ctx, 0);
	if (err)
		return cli_fail(err);
	fd = httpmon_spans_fd(sa.ctx);
	if (fd < 0) {
		err = cli_fail(sl_err(fd, "no span ring here: attach an httpmon first (%s)",
				      sl_errmsg()));
		goto out;
	}
	if (endpoint && !(sa.exp = otlp_exporter_new(endpoint))) {
		err = cli_fail(-EINVAL);
		goto out;
	}
	rb = ring_buffer__new(fd, on_span, &sa, NULL);
	if (!rb) {
		err = cli_fail(sl_err(-errno, "cannot read the span ring: %s", strerror(errno)));
		goto out;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!spans_stop && !(sa.max && sa.seen >= sa.max)) {
		httpmon_slot_names(sa.ctx, names);
		if (ring_buffer__poll(rb, 200) < 0 && errno != EINTR)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout && (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 >= timeout)
			break;
	}
	err = 0;
	if (sa.exp) {
		otlp_exporter_flush(sa.exp, 5000);
		otlp_exporter_stats(sa.exp, &st);
		fprintf(stderr, "otlp: %llu spans sent, %llu failed, %llu dropped, %llu posts\n",
			(unsigned long long)st.sent, (unsigned long long)st.failed,
			(unsigned long long)st.dropped, (unsigned long long)st.posts);
		if (st.failed || st.dropped)
			err = 1;
	}
	if (sa.max && sa.seen < sa.max) {
		fprintf(stderr, "sluice: %llu of %llu spans seen before the end\n",
			(unsigned long long)sa.seen, (unsigned long long)sa.max);
		err = 1;
	}
out:
	ring_buffer__free(rb);
	otlp_exporter_free(sa.exp, 1000);
	if (fd >= 0)
		close(fd);
	sl_close(sa.ctx);
	return err;
}

static const struct cmd http_cmds[] = {
	{ "stats", http_stats_cmd, " [--name NAME] [--json]", false },
	{ "spans", http_spans_cmd, " [--otlp-endpoint URL] [--count N] [--timeout SEC] [--json]",
	  false },
	{},
};

static int do_http(int argc, char **argv)
{
	return cli_dispatch(http_cmds, "http ", argc, argv);
}

CLI_COMMAND(http_cmd, "http", do_http,
	    " stats|spans ...      HTTP metrics, spans to OTLP/HTTP", true);
