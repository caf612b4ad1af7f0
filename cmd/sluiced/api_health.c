// SPDX-License-Identifier: GPL-2.0
/* The LB's health checks in the daemon: the checker as a job (the same
 * loop as `sluice lb healthcheck run`, one per namespace through the
 * checker lock), GET /v1/lb/health (the same document as
 * `sluice -j lb healthcheck show`) and PUT/DELETE of one service's check
 * (`sluice lb healthcheck set/del`). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sluice.h"
#include "health.h"
#include "sluiced.h"

/* ---- GET /v1/lb/health ------------------------------------------------- */

static json_t *conf_json(const struct hc_conf *c)
{
	json_t *o = json_pack("{s:s}", "type", hc_type_name(c->type));
	char expect[32];

	if (c->type == HC_HTTP) {
		hc_expect_format(c->expect, expect, sizeof(expect));
		json_object_set_new(o, "path", json_string(c->path));
		json_object_set_new(o, "host", json_string(c->host));
		json_object_set_new(o, "expect", json_string(expect));
	}
	json_object_set_new(o, "port", json_integer(c->port));
	json_object_set_new(o, "interval_ms", json_integer(c->interval_ms));
	json_object_set_new(o, "timeout_ms", json_integer(c->timeout_ms));
	json_object_set_new(o, "rise", json_integer(c->rise));
	json_object_set_new(o, "fall", json_integer(c->fall));
	return o;
}

static json_t *backend_json(const struct hc_view *v,
			    const struct hc_view_backend *b)
{
	const struct hc_status *st = &b->st;
	char addr[64];
	json_t *o, *last;

	hc_addr_format(&b->addr, addr, sizeof(addr));
	o = json_pack("{s:s, s:s, s:s}", "backend", addr, "health",
		      !b->probed ? "unknown" : st->up ? "up" : "down", "lb",
		      b->lb_up ? "up" : "down");
	if (!b->probed)
		return o;
	last = json_pack("{s:s}", "result", hc_result_name(st->last.result));
	if (st->last.http_status)
		json_object_set_new(last, "http_status",
				    json_integer(st->last.http_status));
	if (st->last.result == HC_RES_CONNECT && st->last.err)
		json_object_set_new(last, "error",
				    json_string(strerror(st->last.err)));
	json_object_set_new(last, "latency_us", json_integer(st->last.latency_us));
	json_object_set_new(last, "age_ms",
			    json_integer(hc_age_ms(v, st->last_probe_ms)));
	json_object_set_new(o, "last", last);
	json_object_set_new(o, "rise_count", json_integer(st->rise_cnt));
	json_object_set_new(o, "fall_count", json_integer(st->fall_cnt));
	json_object_set_new(o, "probes", json_integer(st->probes));
	json_object_set_new(o, "failures", json_integer(st->failures));
	json_object_set_new(o, "changes", json_integer(st->changes));
	if (st->last_change_ms)
		json_object_set_new(o, "last_change_age_ms",
				    json_integer(hc_age_ms(v, st->last_change_ms)));
	return o;
}

static json_t *view_json(const struct hc_view *v)
{
	json_t *checker = json_pack("{s:b}", "running", v->running);
	json_t *svcs = json_array();
	char name[64];

	if (v->running) {
		json_object_set_new(checker, "pid", json_integer(v->pid));
		json_object_set_new(checker, "by", json_string(v->role));
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct hc_view_service *s = &v->svcs[i];
		json_t *bes = json_array(), *o;

		hc_addr_format(&s->svc, name, sizeof(name));
		o = json_pack("{s:s}", "service", name);
		if (s->inst[0])
			json_object_set_new(o, "instance", json_string(s->inst));
		json_object_set_new(o, "in_lb", json_boolean(s->inst[0]));
		json_object_set_new(o, "check", conf_json(&s->conf));
		for (size_t j = 0; j < s->n; j++)
			json_array_append_new(bes, backend_json(v, &s->backends[j]));
		json_object_set_new(o, "backends", bes);
		json_array_append_new(svcs, o);
	}
	return json_pack("{s:o, s:o}", "checker", checker, "services", svcs);
}

static int get_lb_health(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	struct hc_view v;
	int err;

	(void)req;
	if (api_open_read(&ctx, resp))
		return resp->status;
	err = hc_view_read(ctx, &v);
	api_ctx_close(ctx);
	if (err)
		return api_lib_error(resp, err, NULL);
	api_ok(resp, 200, view_json(&v));
	hc_view_free(&v);
	return 200;
}

/* ---- PUT and DELETE /v1/lb/health/{proto}/{endpoint} -------------------- */

static int service_param(struct api_req *req, struct api_resp *resp,
			 struct hc_addr *svc)
{
	const char *proto = req->params[0];
	__u8 p = !strcmp(proto, "tcp") ? IPPROTO_TCP :
		 !strcmp(proto, "udp") ? IPPROTO_UDP : 0;

	if (!p)
		return api_error(resp, 400, "proto", "proto: '%s' is not tcp or udp",
				 proto);
	if (hc_service_parse(req->params[1], p, svc))
		return api_error(resp, 400, "endpoint", "%s", sl_errmsg());
	return 0;
}

/* Opens the state for writing only when there is some: a refused request
 * must not create it. */
static int open_existing(struct sl_ctx **ctx, struct api_resp *resp,
			 const struct hc_addr *svc, const char *what)
{
	char name[64];

	if (api_open_read(ctx, resp))
		return resp->status;
	if (!*ctx) {
		hc_addr_format(svc, name, sizeof(name));
		return api_error(resp, 404, "endpoint", "service: %s %s", what,
				 name);
	}
	api_ctx_close(*ctx);
	*ctx = NULL;
	return api_open_write(ctx, resp);
}

static int body_uint(struct api_resp *resp, json_t *o, const char *key,
		     unsigned long max, __u32 *out)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (unsigned long)json_integer_value(v) > max)
		return api_error(resp, 400, key, "%s: not an integer in 0..%lu",
				 key, max);
	*out = json_integer_value(v);
	return 0;
}

static int body_str(struct api_resp *resp, json_t *o, const char *key,
		    char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) >= len)
		return api_error(resp, 400, key, "%s: not a string of at most %zu "
				 "characters", key, len - 1);
	snprintf(buf, len, "%s", json_string_value(v));
	return 0;
}

/* The body: the "check" object of GET /v1/lb/health; fields not given take
 * their defaults (PUT replaces the whole check). */
static int conf_from_body(struct api_resp *resp, json_t *o, struct hc_conf *c)
{
	char type[8] = "", expect[32] = "";
	__u32 port = 0, rise = c->rise, fall = c->fall;

	if (body_str(resp, o, "type", type, sizeof(type)) ||
	    body_str(resp, o, "path", c->path, sizeof(c->path)) ||
	    body_str(resp, o, "host", c->host, sizeof(c->host)) ||
	    body_str(resp, o, "expect", expect, sizeof(expect)) ||
	    body_uint(resp, o, "port", 65535, &port) ||
	    body_uint(resp, o, "interval_ms", HC_INTERVAL_MAX_MS, &c->interval_ms) ||
	    body_uint(resp, o, "timeout_ms", HC_INTERVAL_MAX_MS, &c->timeout_ms) ||
	    body_uint(resp, o, "rise", HC_THRESH_MAX, &rise) ||
	    body_uint(resp, o, "fall", HC_THRESH_MAX, &fall))
		return resp->status;
	if (type[0] && hc_type_parse(type, &c->type))
		return api_error(resp, 400, "type", "%s", sl_errmsg());
	if (expect[0] && hc_expect_parse(expect, &c->expect))
		return api_error(resp, 400, "expect", "%s", sl_errmsg());
	c->port = port;
	c->rise = rise;
	c->fall = fall;
	return 0;
}

static int put_lb_health(struct api_req *req, struct api_resp *resp)
{
	static const char *const fields[] = { "type", "path", "host", "expect",
					      "port", "interval_ms", "timeout_ms",
					      "rise", "fall", NULL };
	struct sl_ctx *ctx = NULL;
	struct hc_addr svc;
	struct hc_conf c;
	json_t *body;
	int err;

	if (service_param(req, resp, &svc))
		return resp->status;
	body = api_body_object(req, resp, fields);
	if (!body)
		return resp->status;
	hc_conf_init(&c);
	err = conf_from_body(resp, body, &c);
	json_decref(body);
	if (err)
		return resp->status;
	/* Checked before the state is opened: a bad check changes nothing. */
	if (hc_conf_check(&c)) {
		const char *msg = sl_errmsg(), *colon = strchr(msg, ':');
		char field[16];

		snprintf(field, sizeof(field), "%.*s",
			 colon ? (int)(colon - msg) : 0, msg);
		return api_error(resp, 400, field, "%s", msg);
	}
	if (open_existing(&ctx, resp, &svc, "no LB service"))
		return resp->status;
	err = hc_conf_set(ctx, &svc, &c);
	api_ctx_close(ctx);
	if (err)
		return api_lib_error(resp, err, err == -ENOENT ? "endpoint" : NULL);
	return api_ok(resp, 204, NULL);
}

static int del_lb_health(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	struct hc_addr svc;
	int err;

	if (service_param(req, resp, &svc))
		return resp->status;
	if (open_existing(&ctx, resp, &svc, "no health check for"))
		return resp->status;
	err = hc_conf_del(ctx, &svc);
	api_ctx_close(ctx);
	if (err)
		return api_lib_error(resp, err, err == -ENOENT ? "endpoint" : NULL);
	return api_ok(resp, 204, NULL);
}

API_ROUTE(route_lb_health, "GET", "/v1/lb/health", get_lb_health, NULL);
API_ROUTE(route_lb_health_put, "PUT", "/v1/lb/health/{proto}/{endpoint}",
	  put_lb_health, NULL);
API_ROUTE(route_lb_health_del, "DELETE", "/v1/lb/health/{proto}/{endpoint}",
	  del_lb_health, NULL);

/* ---- the checker job --------------------------------------------------- */

static void job_log(void *arg, enum hc_log_level lvl, const char *line)
{
	(void)arg;
	logm(lvl == HC_LOG_WARN ? LOG_LVL_WARN : LOG_LVL_INFO, "%s", line);
}

/* Sleeps up to ms, waking within 100 ms of api_stopping. */
static void job_sleep(unsigned int ms)
{
	struct timespec ts = { 0, 100 * 1000000L };

	for (unsigned int t = 0; t < ms && !api_stopping; t += 100)
		nanosleep(&ts, NULL);
}

/* Takes the checker lock (waiting while `sluice lb healthcheck run` holds
 * it) and runs the checks until the daemon stops. */
static void *health_job(void *arg)
{
	struct hc_run_opts o = { .stop = &api_stopping, .log = job_log };
	bool told = false;
	int lock = -1;

	(void)arg;
	while (!api_stopping) {
		lock = hc_lock_take("sluiced", NULL, NULL, 0);
		if (lock >= 0)
			break;
		if (!told)
			logm(LOG_LVL_WARN, "health: %s; checking again every 2 s",
			     sl_errmsg());
		told = true;
		job_sleep(2000);
	}
	if (api_stopping)
		return NULL;
	if (told)
		logm(LOG_LVL_INFO, "health: the other checker is gone; checking here");
	if (hc_run(&o))
		logm(LOG_LVL_ERROR, "health: checker stopped: %s", sl_errmsg());
	hc_lock_release(lock);
	return NULL;
}

API_JOB(job_health, "lb-health", health_job);
