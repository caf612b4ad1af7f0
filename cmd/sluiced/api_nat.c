// SPDX-License-Identifier: GPL-2.0
/* NAT resources, the same operations as `sluice nat`:
 *   GET    /v1/nat                 rules and what they compiled to (nat show)
 *   PUT    /v1/nat/rules/{name}    {"rule": "masquerade --out eth0 ..."} (nat add)
 *   DELETE /v1/nat/rules/{name}    (nat del)
 *   GET    /v1/nat/mappings        live translations (nat mappings)
 *   POST   /v1/nat/flush           forget every mapping (nat flush)
 *   POST   /v1/nat/reload          compile the rules again (nat reload) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include "sluice.h"
#include "nat.h"
#include "sluiced.h"

#define NAT_API_WORDS 32

static json_t *addr_json(__u8 family, const __u32 *a)
{
	char buf[INET6_ADDRSTRLEN];

	inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *dev_json(__u32 ifindex)
{
	char dev[IF_NAMESIZE];

	if (!if_indextoname(ifindex, dev))
		snprintf(dev, sizeof(dev), "if%u", ifindex);
	return json_string(dev);
}

static json_t *compiled_json(const struct nat_rule *r, const struct nat_counter *c)
{
	int w = r->family == 4 ? 0 : 3;
	__u32 last[4];
	json_t *o;

	memcpy(last, r->to_lo, 16);
	last[w] = htonl(ntohl(r->to_lo[w]) + r->naddrs - 1);
	o = json_pack("{s:s, s:o, s:i, s:o, s:o, s:I, s:I}", "kind", nat_kind_name(r->kind),
		      "dev", dev_json(r->ifindex), "family", r->family,
		      "to", addr_json(r->family, r->to_lo), "to_last", addr_json(r->family, last),
		      "flows", (json_int_t)c->flows, "no_port", (json_int_t)c->no_port);
	if (r->port_lo)
		json_object_set_new(o, "ports", json_pack("[i, i]", r->port_lo, r->port_hi));
	return o;
}

static int h_nat_get(struct api_req *req, struct api_resp *resp)
{
	struct nat_specs *specs = calloc(1, sizeof(*specs));
	struct nat_rule *rules = calloc(NAT_MAX_RULES, sizeof(*rules));
	struct nat_counter *cnt = calloc(NAT_MAX_RULES, sizeof(*cnt));
	struct sl_ctx *ctx = NULL;
	json_t *arr;
	__u32 n = 0;
	int err;

	if (!specs || !rules || !cnt) {
		err = api_error(resp, 500, NULL, "out of memory");
		goto out;
	}
	if (api_open_read(&ctx, resp)) {
		err = resp->status;
		goto out;
	}
	err = ctx ? nat_read_specs(ctx, specs) : -ENOENT;
	if (err == -ENOENT)
		err = specs->n = 0;
	else
		err = err ?: nat_read_rules(ctx, rules, cnt, &n);
	if (err) {
		err = api_lib_error(resp, err, NULL);
		goto out;
	}
	arr = json_array();
	for (__u32 i = 0; i < specs->n; i++) {
		json_t *comp = json_array();

		for (__u32 j = 0; j < n; j++)
			if (rules[j].spec == i)
				json_array_append_new(comp, compiled_json(&rules[j], &cnt[j]));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "name", specs->spec[i].name,
						     "rule", specs->spec[i].text, "compiled", comp));
	}
	err = api_ok(resp, 200, json_pack("{s:o}", "rules", arr));
out:
	api_ctx_close(ctx);
	free(specs);
	free(rules);
	free(cnt);
	return err;
}

static int h_nat_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const keys[] = { "rule", NULL };
	json_t *body = api_body_object(req, resp, keys), *v;
	char text[NAT_TEXT_MAX], *words[NAT_API_WORDS];
	struct nat_spec spec;
	struct sl_ctx *ctx;
	int n = 0, err;

	if (!body)
		return resp->status;
	v = json_object_get(body, "rule");
	if (!json_is_string(v) || !*json_string_value(v) ||
	    strlen(json_string_value(v)) >= sizeof(text)) {
		err = api_error(resp, 400, "rule",
				"'rule' (the words after the name in `sluice nat add NAME`) is required, at most %d characters",
				NAT_TEXT_MAX - 1);
		goto out;
	}
	strcpy(text, json_string_value(v));
	for (char *w = strtok(text, " \t"); w; w = strtok(NULL, " \t")) {
		if (n == NAT_API_WORDS) {
			err = api_error(resp, 400, "rule", "more than %d words", NAT_API_WORDS);
			goto out;
		}
		words[n++] = w;
	}
	/* The whole rule is checked before any state is touched. */
	err = nat_spec_make(&spec, req->params[0], n, words);
	if (err) {
		err = api_error(resp, err == -ENODEV ? 404 : 400, "rule", "%s", sl_errmsg());
		goto out;
	}
	if (api_open_write(&ctx, resp)) {
		err = resp->status;
		goto out;
	}
	err = nat_rule_add(ctx, &spec);
	err = err ? api_lib_error(resp, err, "rule")
		  : api_ok(resp, 201, json_pack("{s:s, s:s}", "name", spec.name, "rule", spec.text));
	api_ctx_close(ctx);
out:
	json_decref(body);
	return err;
}

static int h_nat_delete(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err;

	if (api_open_write(&ctx, resp))
		return resp->status;
	err = nat_rule_del(ctx, req->params[0]);
	err = err ? api_lib_error(resp, err, NULL) : api_ok(resp, 204, NULL);
	api_ctx_close(ctx);
	return err;
}

static json_t *tuple_json(const struct nat_key *k)
{
	return json_pack("{s:o, s:i, s:o, s:i}", "src", addr_json(k->family, k->saddr), "sport",
			 k->sport, "dst", addr_json(k->family, k->daddr), "dport", k->dport);
}

static int mapping_cb(const struct nat_mapping *m, void *arg)
{
	static const char *const states[] = { "replied", "fin-orig", "fin-reply", "rst" };
	json_t *st = json_array();

	for (int i = 0; i < 4; i++)
		if (m->state & (1 << i))
			json_array_append_new(st, json_string(states[i]));
	json_array_append_new(arg, json_pack("{s:s, s:i, s:i, s:o, s:o, s:o, s:I, s:o}",
		"kind", m->kind == NAT_DNAT ? "dnat" : "snat", "family", m->orig.family,
		"proto", m->orig.proto, "orig", tuple_json(&m->orig),
		"translated", tuple_json(&m->xlat), "dev", dev_json(m->ifindex),
		"expires", (json_int_t)((m->expires_in_ns + 999999999ULL) / 1000000000ULL),
		"state", st));
	return 0;
}

static int h_nat_mappings(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	json_t *arr = json_array();
	int err = 0;

	if (api_open_read(&ctx, resp)) {
		json_decref(arr);
		return resp->status;
	}
	if (ctx)
		err = nat_mappings_foreach(ctx, mapping_cb, arr);
	api_ctx_close(ctx);
	if (err) {
		json_decref(arr);
		return api_lib_error(resp, err, NULL);
	}
	return api_ok(resp, 200, arr);
}

static int h_nat_flush(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int n;

	if (api_open_write(&ctx, resp))
		return resp->status;
	n = nat_flush(ctx);
	api_ctx_close(ctx);
	return api_ok(resp, 200, json_pack("{s:i}", "flushed", n));
}

static int h_nat_reload(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err;

	if (api_open_write(&ctx, resp))
		return resp->status;
	err = nat_reload(ctx);
	err = err ? api_lib_error(resp, err, NULL) : api_ok(resp, 204, NULL);
	api_ctx_close(ctx);
	return err;
}

API_ROUTE(nat_get_route, "GET", "/v1/nat", h_nat_get, NULL);
API_ROUTE(nat_put_route, "PUT", "/v1/nat/rules/{name}", h_nat_put, NULL);
API_ROUTE(nat_delete_route, "DELETE", "/v1/nat/rules/{name}", h_nat_delete, NULL);
API_ROUTE(nat_mappings_route, "GET", "/v1/nat/mappings", h_nat_mappings, NULL);
API_ROUTE(nat_flush_route, "POST", "/v1/nat/flush", h_nat_flush, NULL);
API_ROUTE(nat_reload_route, "POST", "/v1/nat/reload", h_nat_reload, NULL);
