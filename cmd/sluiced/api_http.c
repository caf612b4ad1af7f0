// SPDX-License-Identifier: GPL-2.0
/* HTTP monitor resources: PUT /v1/httpmons/{name} loads one for some ports
 * and puts it on an interface's TC chains (`sluice httpmon attach`),
 * DELETE takes it off an interface (`sluice httpmon detach`), GET reads its
 * counters and histogram rows (`sluice -j http stats --name NAME`). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "sluice.h"
#include "httpmon.h"
#include "sluiced.h"

static json_t *row_json(const struct httpmon_row *r)
{
	char cls[4];
	json_t *b = json_array();
	__u64 cum = 0;

	snprintf(cls, sizeof(cls), "%uxx", r->status_class % 10);
	for (int i = 0; i < HTTP_NBUCKETS; i++) {
		char le[32];

		cum += r->st.buckets[i];
		if (i < HTTP_NBUCKETS - 1)
			snprintf(le, sizeof(le), "%g", httpmon_bucket_le[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		json_array_append_new(b, json_pack("{s:s, s:I}", "le", le, "count", (json_int_t)cum));
	}
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
			 "port", r->port, "method", httpmon_method_name(r->method),
			 "route", r->route, "status", cls, "requests", (json_int_t)r->st.count,
			 "client_errors", (json_int_t)(r->status_class == 4 ? r->st.count : 0),
			 "server_errors", (json_int_t)(r->status_class == 5 ? r->st.count : 0),
			 "p50_us", (json_int_t)(httpmon_quantile(&r->st, 0.5) * 1e6 + 0.5),
			 "p90_us", (json_int_t)(httpmon_quantile(&r->st, 0.9) * 1e6 + 0.5),
			 "p99_us", (json_int_t)(httpmon_quantile(&r->st, 0.99) * 1e6 + 0.5),
			 "sum_ns", (json_int_t)r->st.sum_ns, "buckets", b);
}

static json_t *info_json(const struct httpmon_info *in)
{
	const struct http_counters *c = &in->cnt;
	json_t *ports = json_array(), *rows = json_array(), *routes = json_array();

	for (__u32 i = 0; i < in->cfg.nports && i < HTTP_MAX_PORTS; i++)
		json_array_append_new(ports, json_integer(in->cfg.ports[i]));
	for (__u32 i = 0; i < in->cfg.nroutes && i < HTTP_MAX_ROUTES; i++)
		json_array_append_new(routes, json_stringn(in->cfg.routes[i].name,
							   strnlen(in->cfg.routes[i].name,
								   HTTP_TMPL_LEN)));
	for (size_t i = 0; i < in->nrows; i++)
		json_array_append_new(rows, row_json(&in->rows[i]));
	return json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			 " s:I, s:I, s:I, s:I, s:I, s:I}, s:o}",
			 "name", in->name, "type", HTTPMON_TYPE, "ports", ports, "routes", routes,
			 "templates", (json_int_t)in->ntemplates,
			 "max_templates", (json_int_t)in->cfg.max_templates, "counters",
			 "requests", (json_int_t)c->requests, "responses", (json_int_t)c->responses,
			 "partial", (json_int_t)c->partial, "bad", (json_int_t)c->bad,
			 "pipelined", (json_int_t)c->pipelined, "stale", (json_int_t)c->stale,
			 "orphans", (json_int_t)c->orphans,
			 "informational", (json_int_t)c->informational,
			 "traceparent_valid", (json_int_t)c->tp_valid,
			 "traceparent_invalid", (json_int_t)c->tp_invalid,
			 "template_overflow", (json_int_t)c->tmpl_overflow,
			 "spans", (json_int_t)c->spans, "spans_lost", (json_int_t)c->spans_lost,
			 "stats_full", (json_int_t)c->stats_full, "rows", rows);
}

static int reply(struct sl_ctx *ctx, const char *name, struct api_resp *resp)
{
	struct httpmon_info in;
	int err = httpmon_read(ctx, name, &in);
	json_t *o;

	if (err)
		return api_lib_error(resp, err, NULL);
	o = info_json(&in);
	httpmon_info_free(&in);
	if (!o)
		return api_error(resp, 500, NULL, "out of memory");
	return api_ok(resp, 200, o);
}

/* The body's ports into o; non-zero (resp set) when they are not 1 to 8
 * distinct TCP ports. */
static int body_ports(json_t *body, struct httpmon_opts *o, struct api_resp *resp)
{
	json_t *arr = json_object_get(body, "ports"), *v;
	size_t i;

	if (!json_is_array(arr) || !json_array_size(arr))
		return api_error(resp, 400, "ports", "'ports' (a list of 1 to %d TCP ports) is required",
				 HTTP_MAX_PORTS);
	json_array_foreach(arr, i, v) {
		char text[24];

		if (!json_is_integer(v))
			return api_error(resp, 400, "ports", "ports[%zu]: need a number", i);
		snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
		if (httpmon_opts_add_port(o, text))
			return api_error(resp, 400, "ports", "ports[%zu]: %s", i, sl_errmsg());
	}
	return 0;
}

static int body_routes(json_t *body, struct httpmon_opts *o, struct api_resp *resp)
{
	json_t *arr = json_object_get(body, "routes"), *v;
	size_t i;

	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return api_error(resp, 400, "routes", "'routes' must be a list of prefixes ending in '*'");
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			return api_error(resp, 400, "routes", "routes[%zu]: need a string", i);
		if (httpmon_opts_add_route(o, json_string_value(v)))
			return api_error(resp, 400, "routes", "routes[%zu]: %s", i, sl_errmsg());
	}
	return 0;
}

static int h_http_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const keys[] = { "dev", "ports", "routes", "max_templates", NULL };
	const char *name = req->params[0], *dev;
	json_t *body = api_body_object(req, resp, keys), *v;
	struct httpmon_opts o = {};
	struct sl_ctx *ctx;
	int err;

	if (!body)
		return resp->status;
	v = json_object_get(body, "dev");
	if (!json_is_string(v) || !*(dev = json_string_value(v))) {
		err = api_error(resp, 400, "dev", "'dev' (an interface name) is required");
		goto out;
	}
	v = json_object_get(body, "max_templates");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
		  json_integer_value(v) > HTTP_TMPL_MAX)) {
		err = api_error(resp, 400, "max_templates", "'max_templates' must be 1 to %d",
				HTTP_TMPL_MAX);
		goto out;
	}
	o.max_templates = v ? json_integer_value(v) : 0;
	if (body_ports(body, &o, resp) || body_routes(body, &o, resp)) {
		err = resp->status;
		goto out;
	}
	if (sl_ifindex(dev) < 0) {
		err = api_error(resp, 404, "dev", "%s", sl_errmsg());
		goto out;
	}
	if (api_open_write(&ctx, resp)) {
		err = resp->status;
		goto out;
	}
	err = httpmon_attach(ctx, dev, name, &o);
	err = err ? api_lib_error(resp, err, NULL) : reply(ctx, name, resp);
	api_ctx_close(ctx);
out:
	json_decref(body);
	return err;
}

static int h_http_delete(struct api_req *req, struct api_resp *resp)
{
	const char *dev = api_query(req, "dev");
	struct sl_ctx *ctx;
	int err;

	if (!dev || !*dev)
		return api_error(resp, 400, "dev", "query argument 'dev' (an interface name) is required");
	if (api_open_write(&ctx, resp))
		return resp->status;
	err = httpmon_detach(ctx, dev, req->params[0]);
	err = err ? api_lib_error(resp, err, NULL) : api_ok(resp, 204, NULL);
	api_ctx_close(ctx);
	return err;
}

static int h_http_get(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err;

	if (api_open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no instance '%s'", req->params[0]);
	err = reply(ctx, req->params[0], resp);
	api_ctx_close(ctx);
	return err;
}

API_ROUTE(http_put_route, "PUT", "/v1/httpmons/{name}", h_http_put, NULL);
API_ROUTE(http_get_route, "GET", "/v1/httpmons/{name}", h_http_get, NULL);
API_ROUTE(http_delete_route, "DELETE", "/v1/httpmons/{name}", h_http_delete,
	  (const char *const[]){ "dev", NULL });
