// SPDX-License-Identifier: GPL-2.0
/* Flow monitor resources: PUT /v1/flowmons/{name} creates one and puts it
 * on an interface's chains (`sluice flowmon attach`), GET reads its table
 * size and counters. The flows themselves are read by the CLI from the
 * pinned table and exported in /metrics (metrics_flowmon.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
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
	v = json_object_get(body, "dev");
	if (!json_is_string(v) || !*(dev = json_string_value(v))) {
		err = api_error(resp, 400, "dev", "'dev' (an interface name) is required");
		goto out;
	}
	if (sl_ifindex(dev) < 0) {
		err = api_error(resp, 404, "dev", "%s", sl_errmsg());
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

API_ROUTE(fm_put_route, "PUT", "/v1/flowmons/{name}", h_fm_put, NULL);
API_ROUTE(fm_get_route, "GET", "/v1/flowmons/{name}", h_fm_get, NULL);
