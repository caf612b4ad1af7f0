// SPDX-License-Identifier: GPL-2.0
/* Flow monitor resources: PUT /v1/flowmons/{name} creates one and puts it
 * on an interface's chains (`sluice flowmon attach`), GET reads its table
 * size and counters; GET /v1/flows lists flows as `sluice -j flows` does.
 * The largest flows are also in /metrics (metrics_flowmon.c). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sluice.h"
#include "flowmon.h"
#include "sluiced.h"

static json_t *fm_info_json(const char *name, const struct fm_info *info)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "name", name,
			 "type", FM_TYPE, "max_flows", (json_int_t)info->max_flows,
			 "flows", (json_int_t)info->flows,
			 "flows_created", (json_int_t)info->stats.created,
			 "insert_failed", (json_int_t)info->stats.insert_failed,
			 "skipped", (json_int_t)info->stats.skipped);
}

static int fm_reply(struct sl_ctx *ctx, const char *name, int status,
		    struct api_resp *resp)
{
	struct fm_info info;
	int err = fm_info_read(ctx, name, &info);
	json_t *o;

	if (err)
		return api_lib_error(resp, err, NULL);
	o = fm_info_json(name, &info);
	if (!o)
		return api_error(resp, 500, NULL, "out of memory");
	return api_ok(resp, status, o);
}

/* The body's hooks (default: ingress and egress, both directions). */
static int fm_body_hooks(json_t *body, enum sl_hook *hooks, int *n,
			 struct api_resp *resp)
{
	json_t *arr = json_object_get(body, "hooks"), *v;
	size_t i;

	if (!arr) {
		hooks[0] = SL_HOOK_XDP;
		hooks[1] = SL_HOOK_TC_OUT;
		*n = 2;
		return 0;
	}
	if (!json_is_array(arr) || !json_array_size(arr) ||
	    json_array_size(arr) > SL_HOOK_MAX)
		return api_error(resp, 400, "hooks", "'hooks' must be a list of 1 to %d hook names",
				 SL_HOOK_MAX);
	*n = 0;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || sl_hook_parse(json_string_value(v), &hooks[*n]))
			return api_error(resp, 400, "hooks", "hooks[%zu]: ingress, tc-ingress or egress", i);
		for (int k = 0; k < *n; k++)
			if (hooks[k] == hooks[*n])
				return api_error(resp, 400, "hooks", "hooks[%zu] given twice", i);
		(*n)++;
	}
	return 0;
}

static int h_fm_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const keys[] = { "dev", "hooks", "max_flows", NULL };
	const char *name = req->params[0], *dev;
	enum sl_hook hooks[SL_HOOK_MAX];
	json_t *body = api_body_object(req, resp, keys), *v;
	json_int_t max_flows = 0;
	struct sl_ctx *ctx;
	int nhooks = 0, err;

	if (!body)
		return resp->status;
	dev = api_body_dev(body, resp);
	if (!dev) {
		err = resp->status;
		goto out;
	}
	v = json_object_get(body, "max_flows");
	if (v && (!json_is_integer(v) || (max_flows = json_integer_value(v)) < FM_FLOWS_MIN ||
		  max_flows > FM_FLOWS_MAX)) {
		err = api_error(resp, 400, "max_flows", "'max_flows' must be %u to %u",
				FM_FLOWS_MIN, FM_FLOWS_MAX);
		goto out;
	}
	err = fm_body_hooks(body, hooks, &nhooks, resp);
	if (err || api_open_write(&ctx, resp)) {
		err = resp->status;
		goto out;
	}
	err = fm_attach(ctx, name, dev, hooks, nhooks, max_flows);
	err = err ? api_lib_error(resp, err, NULL) : fm_reply(ctx, name, 200, resp);
	api_ctx_close(ctx);
out:
	json_decref(body);
	return err;
}

static int h_fm_get(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err;

	if (api_open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no instance '%s'", req->params[0]);
	err = fm_reply(ctx, req->params[0], 200, resp);
	api_ctx_close(ctx);
	return err;
}

/* One flow, with the keys of `sluice -j flows`. */
static json_t *fm_flow_json(const struct fm_flow_view *v, __u64 now)
{
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], f0[64], f1[64], pb[8];
	json_t *o;

	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->src, src, sizeof(src));
	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, v->dst, dst, sizeof(dst));
	fm_flags_format(v->tcp_flags[0], f0, sizeof(f0));
	fm_flags_format(v->tcp_flags[1], f1, sizeof(f1));
	o = json_pack("{s:s, s:i, s:s, s:s, s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I}",
		      "instance", v->instance, "family", v->family,
		      "proto", fm_proto_name(v->proto, pb), "src", src, "sport", v->sport,
		      "dst", dst, "dport", v->dport,
		      "packets", (json_int_t)(v->packets[0] + v->packets[1]),
		      "bytes", (json_int_t)(v->bytes[0] + v->bytes[1]),
		      "packets_fwd", (json_int_t)v->packets[0],
		      "packets_rev", (json_int_t)v->packets[1],
		      "bytes_fwd", (json_int_t)v->bytes[0], "bytes_rev", (json_int_t)v->bytes[1]);
	if (!o)
		return NULL;
	json_object_set_new(o, "tcp_flags_fwd", json_string(f0));
	json_object_set_new(o, "tcp_flags_rev", json_string(f1));
	json_object_set_new(o, "rtt_us", json_integer(v->rtt_ns / 1000));
	json_object_set_new(o, "retrans_fwd", json_integer(v->retrans[0]));
	json_object_set_new(o, "retrans_rev", json_integer(v->retrans[1]));
	json_object_set_new(o, "age_ms", json_integer(now > v->first_ns ? (now - v->first_ns) / 1000000 : 0));
	json_object_set_new(o, "idle_ms", json_integer(now > v->last_ns ? (now - v->last_ns) / 1000000 : 0));
	return o;
}

/* Query filter: the words of `sluice flows`, separated by spaces. */
static int fm_query_filter(const char *q, struct fm_filter *f, struct api_resp *resp)
{
	char *copy = strdup(q ? q : ""), *words[2 * FM_FILTER_MAX + 2], *save = NULL, *w;
	int n = 0, err;

	if (!copy)
		return api_error(resp, 500, NULL, "out of memory");
	for (w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (n == (int)(sizeof(words) / sizeof(words[0]))) {
			free(copy);
			return api_error(resp, 400, "filter", "filter: too many words");
		}
		words[n++] = w;
	}
	err = fm_filter_parse(n, words, f);
	free(copy);
	return err ? api_error(resp, 400, "filter", "%s", sl_errmsg()) : 0;
}

static int h_flows(struct api_req *req, struct api_resp *resp)
{
	const char *name = api_query(req, "instance"), *sort_s = api_query(req, "sort");
	const char *limit_s = api_query(req, "limit");
	enum fm_sort sort = FM_SORT_BYTES;
	struct fm_flow_view *v = NULL;
	struct fm_filter filter;
	unsigned long limit = 0;
	struct sl_ctx *ctx;
	struct timespec ts;
	size_t n = 0, kept = 0;
	json_t *arr;
	char *end;
	int err;

	if (sort_s && fm_sort_parse(sort_s, &sort))
		return api_error(resp, 400, "sort", "%s", sl_errmsg());
	if (limit_s) {
		limit = strtoul(limit_s, &end, 10);
		if (!*limit_s || *end || *limit_s == '-' || !limit || limit > 1000000)
			return api_error(resp, 400, "limit", "limit '%s': 1 to 1000000", limit_s);
	}
	if (fm_query_filter(api_query(req, "filter"), &filter, resp))
		return resp->status;
	if (api_open_read(&ctx, resp))
		return resp->status;
	if (ctx) {
		err = fm_flows_read(ctx, name, &v, &n);
		api_ctx_close(ctx);
		if (err)
			return api_lib_error(resp, err, name ? "instance" : NULL);
	}
	for (size_t i = 0; i < n; i++)
		if (fm_filter_match(&filter, &v[i]))
			v[kept++] = v[i];
	fm_flows_sort(v, kept, sort);
	if (limit && kept > limit)
		kept = limit;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	arr = json_array();
	for (size_t i = 0; arr && i < kept; i++)
		json_array_append_new(arr, fm_flow_json(&v[i], ts.tv_sec * 1000000000ULL + ts.tv_nsec));
	free(v);
	if (!arr)
		return api_error(resp, 500, NULL, "out of memory");
	return api_ok(resp, 200, arr);
}

API_ROUTE(fm_flows_route, "GET", "/v1/flows", h_flows,
	  (const char *const[]){ "instance", "sort", "limit", "filter", NULL });
API_ROUTE(fm_put_route, "PUT", "/v1/flowmons/{name}", h_fm_put, NULL);
API_ROUTE(fm_get_route, "GET", "/v1/flowmons/{name}", h_fm_get, NULL);
