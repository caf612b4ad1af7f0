// SPDX-License-Identifier: GPL-2.0
/* sluice lb healthcheck: active health checks of the LB's backends.
 *   set -t|-u VIP:PORT [--type tcp|http] [--path P] [--host H]
 *       [--expect 2xx,3xx] [--port N] [--interval S] [--timeout S]
 *       [--rise N] [--fall N]
 *   del -t|-u VIP:PORT
 *   show [-t|-u VIP:PORT]
 *   run [--refresh MS]     (the checker in the foreground, when no sluiced)
 * set and del go through sluiced when it serves this namespace (PUT and
 * DELETE /v1/lb/health/{proto}/{endpoint}), else straight to the pinned
 * settings under the writer lock; the checker, in sluiced or in `run`,
 * reads them again every second. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <jansson.h>
#include "sluice.h"
#include "health.h"
#include "out.h"
#include "client.h"
#include "cli.h"

#define USAGE_SET " -t|-u VIP:PORT [--type tcp|http] [--path PATH] [--host HOST] " \
	"[--expect 2xx,3xx] [--port PORT] [--interval SEC] [--timeout SEC] " \
	"[--rise N] [--fall N]"

/* -t/-u VIP:PORT at argv[*i]; moves *i past the value. */
static int service_opt(int argc, char **argv, int *i, struct hc_addr *svc)
{
	__u8 proto = !strcmp(argv[*i], "-t") || !strcmp(argv[*i], "--tcp-service") ?
			     IPPROTO_TCP : IPPROTO_UDP;

	if (*i + 1 >= argc)
		return cli_bad_usage("healthcheck: -t/-u needs VIP:PORT");
	if (hc_service_parse(argv[++*i], proto, svc))
		return cli_bad_usage(sl_errmsg());
	return 0;
}

static bool is_service_opt(const char *o)
{
	return !strcmp(o, "-t") || !strcmp(o, "-u") ||
	       !strcmp(o, "--tcp-service") || !strcmp(o, "--udp-service");
}

static int number_opt(const char *o, const char *v, long min, long max,
		      long *out)
{
	char *end;

	errno = 0;
	*out = strtol(v, &end, 10);
	if (errno || *end || end == v || *out < min || *out > max) {
		fprintf(stderr, "sluice: %s: '%s' is not a number in %ld..%ld\n",
			o + 2, v, min, max);
		return 2;
	}
	return 0;
}

struct find_conf {
	const struct hc_addr *svc;
	struct hc_conf *c;
};

static int find_conf_cb(const struct hc_addr *svc, const struct hc_conf *c,
			void *arg)
{
	struct find_conf *f = arg;

	if (memcmp(svc, f->svc, sizeof(*svc)))
		return 0;
	*f->c = *c;
	return 0;
}

/* Reads the current check of svc into c (left as it is when none); the
 * state must exist: a check needs an LB service. */
static int current_conf(const struct hc_addr *svc, struct hc_conf *c)
{
	struct find_conf f = { svc, c };
	struct sl_ctx *ctx;
	char name[64];
	int err = sl_open(&ctx, 0);

	if (err == -ENOENT) {
		hc_addr_format(svc, name, sizeof(name));
		return sl_err(-ENOENT, "service: no LB service %s", name);
	}
	if (err)
		return err;
	err = hc_conf_foreach(ctx, find_conf_cb, &f);
	sl_close(ctx);
	return err;
}

/* Applies one option of set to c; 0, or 2 (bad usage, printed). */
static int set_option(struct hc_conf *c, const char *o, const char *v)
{
	long n;
	int err = 0;

	if (!strcmp(o, "--type")) {
		err = hc_type_parse(v, &c->type);
	} else if (!strcmp(o, "--path")) {
		if (strlen(v) >= sizeof(c->path))
			err = sl_err(-EINVAL, "path: longer than %zu characters",
				     sizeof(c->path) - 1);
		else
			snprintf(c->path, sizeof(c->path), "%s", v);
	} else if (!strcmp(o, "--host")) {
		if (strlen(v) >= sizeof(c->host))
			err = sl_err(-EINVAL, "host: longer than %zu characters",
				     sizeof(c->host) - 1);
		else
			snprintf(c->host, sizeof(c->host), "%s", v);
	} else if (!strcmp(o, "--expect")) {
		err = hc_expect_parse(v, &c->expect);
	} else if (!strcmp(o, "--interval")) {
		err = hc_seconds_parse("interval", v, &c->interval_ms);
	} else if (!strcmp(o, "--timeout")) {
		err = hc_seconds_parse("timeout", v, &c->timeout_ms);
	} else if (!strcmp(o, "--port")) {
		if (number_opt(o, v, 0, 65535, &n))
			return 2;
		c->port = n;
	} else if (!strcmp(o, "--rise") || !strcmp(o, "--fall")) {
		if (number_opt(o, v, 1, HC_THRESH_MAX, &n))
			return 2;
		if (o[2] == 'r')
			c->rise = n;
		else
			c->fall = n;
	} else {
		fprintf(stderr, "sluice: healthcheck set: unknown option '%s'\n", o);
		return 2;
	}
	if (err)
		return cli_bad_usage(sl_errmsg());
	return 0;
}

/* "/v1/lb/health/tcp/10.0.0.1:80" */
static void api_path(const struct hc_addr *svc, char *buf, size_t len)
{
	struct hc_addr a = *svc;
	char ep[64];
	size_t n;

	a.proto = 0;
	hc_addr_format(&a, ep, sizeof(ep));
	n = snprintf(buf, len, "/v1/lb/health/%s/",
		     svc->proto == IPPROTO_UDP ? "udp" : "tcp");
	cl_escape(buf + n, len - n, ep);
}

/* PUT of the whole check, as GET shows it. */
static int put_conf(const struct hc_addr *svc, const struct hc_conf *c)
{
	char path[160], expect[32];
	json_t *body;
	int ret;

	api_path(svc, path, sizeof(path));
	hc_expect_format(c->expect, expect, sizeof(expect));
	body = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i}",
			 "type", hc_type_name(c->type), "path", c->path,
			 "host", c->host, "expect", expect, "port", c->port,
			 "interval_ms", c->interval_ms, "timeout_ms", c->timeout_ms,
			 "rise", c->rise, "fall", c->fall);
	if (!body)
		return cli_fail(sl_err(-ENOMEM, "out of memory"));
	ret = cl_call("PUT", path, body, NULL);
	json_decref(body);
	return ret;
}

/* Options not given keep the current check's values, or the defaults. */
static int do_set(int argc, char **argv)
{
	struct hc_addr svc;
	struct hc_conf c;
	struct sl_ctx *ctx;
	bool has_svc = false;
	int err, i;

	for (i = 0; i < argc; i++) {
		if (is_service_opt(argv[i])) {
			if (service_opt(argc, argv, &i, &svc))
				return 2;
			has_svc = true;
		}
	}
	if (!has_svc)
		return cli_bad_usage("healthcheck set: which service? (-t|-u VIP:PORT)");
	hc_conf_init(&c);
	err = current_conf(&svc, &c);
	if (err)
		return cli_fail(err);
	for (i = 0; i < argc; i++) {
		if (is_service_opt(argv[i])) {
			i++;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "sluice: healthcheck set: '%s' needs a value\n",
				argv[i]);
			return 2;
		}
		err = set_option(&c, argv[i], argv[i + 1]);
		i++;
		if (err)
			return err;
	}
	if (hc_conf_check(&c))
		return cli_bad_usage(sl_errmsg());
	if (cl_daemon())
		return put_conf(&svc, &c);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = hc_conf_set(ctx, &svc, &c);
	sl_close(ctx);
	if (err == -EINVAL)
		return cli_bad_usage(sl_errmsg());
	return err ? cli_fail(err) : 0;
}

static int do_del(int argc, char **argv)
{
	struct hc_addr svc;
	struct sl_ctx *ctx;
	int err, i = 0;

	if (argc != 2 || !is_service_opt(argv[0]))
		return cli_bad_usage("usage: sluice lb healthcheck del -t|-u VIP:PORT");
	if (service_opt(argc, argv, &i, &svc))
		return 2;
	if (cl_daemon()) {
		char path[160];

		api_path(&svc, path, sizeof(path));
		return cl_call("DELETE", path, NULL, NULL);
	}
	err = sl_open(&ctx, 0);
	if (err == -ENOENT)
		return cli_fail(sl_err(-ENOENT, "service: no health check for %s",
				       argv[1]));
	if (err)
		return cli_fail(err);
	sl_close(ctx);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = hc_conf_del(ctx, &svc);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

/* ---- show ----------------------------------------------------------------- */

static void print_conf(const struct hc_conf *c)
{
	char expect[32];

	hc_expect_format(c->expect, expect, sizeof(expect));
	out_open_obj("check");
	out_str("type", "%s", hc_type_name(c->type));
	if (c->type == HC_HTTP) {
		out_str("path", " GET %s", c->path);
		out_str("host", c->host[0] ? " Host %s" : NULL, c->host);
		out_str("expect", " expect %s", expect);
	}
	out_u64("port", c->port ? " port %llu" : NULL, c->port);
	out_text(", every %.3g s, timeout %.3g s", c->interval_ms / 1000.0,
		 c->timeout_ms / 1000.0);
	out_u64("interval_ms", NULL, c->interval_ms);
	out_u64("timeout_ms", NULL, c->timeout_ms);
	out_u64("rise", ", rise %llu", c->rise);
	out_u64("fall", ", fall %llu", c->fall);
	out_close_obj();
}

static void print_backend(const struct hc_view *v, const struct hc_conf *c,
			  const struct hc_view_backend *b)
{
	const struct hc_status *st = &b->st;
	char addr[64], buf[64];

	hc_addr_format(&b->addr, addr, sizeof(addr));
	out_open_obj(NULL);
	out_str("backend", "  %-24s", addr);
	out_str("health", " %-8s", !b->probed ? "unknown" : st->up ? "up" : "down");
	out_str("lb", " lb %-5s", b->lb_up ? "up" : "down");
	if (!b->probed) {
		out_text(" not probed yet\n");
		out_close_obj();
		return;
	}
	out_open_obj("last");
	out_str("result", " last %s", hc_result_name(st->last.result));
	if (st->last.http_status)
		out_u64("http_status", " %llu", st->last.http_status);
	if (st->last.result == HC_RES_CONNECT && st->last.err) {
		snprintf(buf, sizeof(buf), "%s", strerror(st->last.err));
		out_str("error", " (%s)", buf);
	}
	out_u64("latency_us", NULL, st->last.latency_us);
	if (st->last.result == HC_RES_OK)
		out_text(" in %.1f ms", st->last.latency_us / 1000.0);
	out_u64("age_ms", NULL, hc_age_ms(v, st->last_probe_ms));
	out_text(", %.1f s ago", (hc_age_ms(v, st->last_probe_ms)) / 1000.0);
	out_close_obj();
	out_u64("rise_count", NULL, st->rise_cnt);
	out_u64("fall_count", NULL, st->fall_cnt);
	if (!st->up)
		out_text(", %u/%u to rise", st->rise_cnt, c->rise);
	else if (st->fall_cnt)
		out_text(", %u/%u to fall", st->fall_cnt, c->fall);
	out_u64("probes", "; probes %llu", st->probes);
	out_u64("failures", ", failures %llu", st->failures);
	out_u64("changes", ", changes %llu", st->changes);
	if (st->last_change_ms)
		out_u64("last_change_age_ms", NULL, hc_age_ms(v, st->last_change_ms));
	out_text("\n");
	out_close_obj();
}

static void print_view(const struct hc_view *v, const struct hc_addr *only)
{
	char svc[64];
	int pid = v->pid;

	out_open_obj(NULL);
	out_open_obj("checker");
	out_bool("running", NULL, v->running);
	if (v->running) {
		out_u64("pid", NULL, pid);
		out_str("by", NULL, v->role);
	}
	out_close_obj();
	out_open_arr("services");
	for (size_t i = 0; i < v->n; i++) {
		const struct hc_view_service *s = &v->svcs[i];

		if (only && memcmp(only, &s->svc, sizeof(*only)))
			continue;
		hc_addr_format(&s->svc, svc, sizeof(svc));
		out_open_obj(NULL);
		out_str("service", "%s", svc);
		if (s->inst[0])
			out_str("instance", " (%s): ", s->inst);
		else
			out_text(" (no such LB service): ");
		out_bool("in_lb", NULL, s->inst[0]);
		print_conf(&s->conf);
		out_text("\n");
		out_open_arr("backends");
		for (size_t j = 0; j < s->n; j++)
			print_backend(v, &s->conf, &s->backends[j]);
		out_close_arr();
		out_close_obj();
	}
	out_close_arr();
	if (v->running)
		out_text("checker: running (%s, pid %d)\n", v->role, pid);
	else
		out_text("checker: not running (start sluiced, or `sluice lb "
			 "healthcheck run`)\n");
	out_close_obj();
	out_done();
}

static int do_show(int argc, char **argv)
{
	struct hc_addr svc;
	struct hc_view v;
	struct sl_ctx *ctx = NULL;
	bool only = false;
	int err, i = 0;

	if (argc == 2 && is_service_opt(argv[0])) {
		if (service_opt(argc, argv, &i, &svc))
			return 2;
		only = true;
	} else if (argc) {
		return cli_bad_usage("usage: sluice lb healthcheck show [-t|-u VIP:PORT]");
	}
	err = sl_open(&ctx, 0);
	if (err && err != -ENOENT)
		return cli_fail(err);
	err = hc_view_read(ctx, &v);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	print_view(&v, only ? &svc : NULL);
	hc_view_free(&v);
	return 0;
}

/* ---- run ------------------------------------------------------------------ */

static volatile int run_stop;

static void run_signal(int sig)
{
	(void)sig;
	run_stop = 1;
}

static void run_log(void *arg, enum hc_log_level lvl, const char *line)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	(void)arg;
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	if (out_json()) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "time", ts, "level",
				      lvl == HC_LOG_WARN ? "warn" : "info",
				      "msg", line);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
	} else {
		printf("%s %s\n", ts, line);
	}
	fflush(stdout);
}

static int do_run(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = run_signal };
	struct hc_run_opts o = { .stop = &run_stop, .log = run_log };
	long refresh = 1000;
	int lock, err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--refresh") && i + 1 < argc) {
			if (number_opt(argv[i], argv[i + 1], 50, 60000, &refresh))
				return 2;
			i++;
		} else {
			return cli_bad_usage("usage: sluice lb healthcheck run "
					     "[--refresh MS]");
		}
	}
	o.refresh_ms = refresh;
	lock = hc_lock_take("sluice", NULL, NULL, 0);
	if (lock < 0)
		return cli_fail(lock);
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: waits end at once */
	sigaction(SIGTERM, &sa, NULL);
	run_log(NULL, HC_LOG_INFO, "health: checker started");
	err = hc_run(&o);
	run_log(NULL, HC_LOG_INFO, "health: checker stopped");
	hc_lock_release(lock);
	return err ? cli_fail(err) : 0;
}

static const struct cmd healthcheck_cmds[] = {
	{ "set", do_set, USAGE_SET, false },
	{ "del", do_del, " -t|-u VIP:PORT", false },
	{ "show", do_show, " [-t|-u VIP:PORT]", false },
	{ "run", do_run, " [--refresh MS]   (the checker, in the foreground)", false },
	{ NULL, NULL, NULL, false },
};

int lb_healthcheck_cmd(int argc, char **argv)
{
	return cli_dispatch(healthcheck_cmds, "lb healthcheck ", argc, argv);
}
