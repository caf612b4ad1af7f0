// SPDX-License-Identifier: GPL-2.0
/* Router resources: PUT /v1/routers/{name} creates the forwarding fast path
 * and appends it to an interface's chain (`sluice router attach`); GET reads
 * its counters (`sluice -j router show`). */
#include <errno.h>
#include <string.h>
#include "sluice.h"
#include "router.h"
#include "sluiced.h"

static int rt_reply(struct sl_ctx *ctx, const char *name, struct api_resp *resp)
{
	struct rt_stats st;
	int err = rt_stats_read(ctx, name, &st);
	json_t *o;

	if (err)
		return api_lib_error(resp, err, NULL);
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "name", name,
		      "type", RT_TYPE, "forwarded", (json_int_t)st.forwarded,
		      "local", (json_int_t)st.local, "no_neigh", (json_int_t)st.no_neigh,
		      "frag_needed", (json_int_t)st.frag_needed,
		      "ttl_expired", (json_int_t)st.ttl_expired,
		      "unroutable", (json_int_t)st.unroutable, "other", (json_int_t)st.other);
	if (!o)
		return api_error(resp, 500, NULL, "out of memory");
	return api_ok(resp, 200, o);
}

static int h_rt_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const keys[] = { "dev", "hook", NULL };
	json_t *body = api_body_object(req, resp, keys), *v;
	enum sl_hook hook = SL_HOOK_XDP;
	const char *dev;
	struct sl_ctx *ctx;
	int err;

	if (!body)
		return resp->status;
	dev = api_body_dev(body, resp);
	if (!dev) {
		err = resp->status;
		goto out;
	}
	v = json_object_get(body, "hook");
	if (v && (!json_is_string(v) || sl_hook_parse(json_string_value(v), &hook) ||
		  hook == SL_HOOK_TC_OUT)) {
		err = api_error(resp, 400, "hook", "'hook': ingress or tc-ingress");
		goto out;
	}
	if (api_open_write(&ctx, resp)) {
		err = resp->status;
		goto out;
	}
	err = rt_attach(ctx, req->params[0], dev, hook);
	err = err ? api_lib_error(resp, err, NULL) : rt_reply(ctx, req->params[0], resp);
	api_ctx_close(ctx);
out:
	json_decref(body);
	return err;
}

static int h_rt_get(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err;

	if (api_open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no instance '%s'", req->params[0]);
	err = rt_reply(ctx, req->params[0], resp);
	api_ctx_close(ctx);
	return err;
}

API_ROUTE(rt_put_route, "PUT", "/v1/routers/{name}", h_rt_put, NULL);
API_ROUTE(rt_get_route, "GET", "/v1/routers/{name}", h_rt_get, NULL);
