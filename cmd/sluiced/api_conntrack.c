// SPDX-License-Identifier: GPL-2.0
/* Conntrack resources: GET /v1/conntrack lists the live connections as
 * `sluice -j conntrack list` does; DELETE /v1/conntrack flushes them
 * (`sluice conntrack flush`). Both take ?name= for one instance (default:
 * every conntrack instance); GET also ?proto=. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "conntrack.h"
#include "sluiced.h"

#define NSEC 1000000000ULL

struct ct_names {
	char v[64][SL_NAME_MAX];
	int n;
};

static int collect_cb(const struct sl_instance *inst, void *arg)
{
	struct ct_names *names = arg;

	if (!strcmp(inst->type, CT_TYPE) && names->n < 64)
		snprintf(names->v[names->n++], SL_NAME_MAX, "%s", inst->name);
	return 0;
}

/* The instances a request works on: ?name=, or every conntrack. */
static int ct_targets(struct sl_ctx *ctx, const char *name, struct ct_names *names,
		      struct api_resp *resp)
{
	struct sl_instance inst;
	int err;

	names->n = 0;
	if (!name)
		return sl_instance_foreach(ctx, collect_cb, names);
	err = sl_instance_get(ctx, name, &inst);
	if (err)
		return api_lib_error(resp, err, "name");
	if (strcmp(inst.type, CT_TYPE))
		return api_error(resp, 400, "name", "instance '%s' is a %s, not a %s", name,
				 inst.type, CT_TYPE);
	snprintf(names->v[names->n++], SL_NAME_MAX, "%s", name);
	return 0;
}

static json_t *tuple_json(const struct ct_conn *c, int dir)
{
	const struct ct_key *k = &c->key;
	int from = dir ? !c->orig : c->orig, af = k->family == 6 ? AF_INET6 : AF_INET;
	char src[INET6_ADDRSTRLEN] = "?", dst[INET6_ADDRSTRLEN] = "?";
	json_t *o;

	inet_ntop(af, k->addr[from], src, sizeof(src));
	inet_ntop(af, k->addr[!from], dst, sizeof(dst));
	o = json_pack("{s:s, s:s, s:I, s:I}", "src", src, "dst", dst, "packets",
		      (json_int_t)c->e.packets[dir], "bytes", (json_int_t)c->e.bytes[dir]);
	if (!o)
		return NULL;
	if (k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6) {
		unsigned int req = k->port[1];
		unsigned int rep = k->proto == IPPROTO_ICMPV6 ? req + 1 : req == 8 ? 0 : req + 1;

		json_object_set_new(o, "type", json_integer(dir ? rep : req));
		json_object_set_new(o, "code", json_integer(0));
		json_object_set_new(o, "id", json_integer(k->port[0]));
	} else if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP) {
		json_object_set_new(o, "sport", json_integer(k->port[from]));
		json_object_set_new(o, "dport", json_integer(k->port[!from]));
	}
	return o;
}

struct list_ctx {
	const char *inst;
	int proto; /* -1: any */
	json_t *arr;
};

static int list_cb(const struct ct_conn *c, void *arg)
{
	struct list_ctx *l = arg;
	char pbuf[32];
	json_t *o;

	if (l->proto >= 0 && c->key.proto != l->proto)
		return 0;
	o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o, s:o, s:b, s:b}", "instance", l->inst,
		      "family", c->key.family == 6 ? "ipv6" : "ipv4", "proto",
		      ct_proto_name(c->key.proto, pbuf, sizeof(pbuf)), "proto_num", c->key.proto,
		      "timeout", (json_int_t)((c->remaining_ns + NSEC - 1) / NSEC), "orig",
		      tuple_json(c, 0), "reply", tuple_json(c, 1), "assured",
		      !!(c->e.state & CT_ST_ASSURED), "unreplied",
		      !(c->e.state & CT_ST_SEEN_REPLY));
	if (!o)
		return -ENOMEM;
	if (c->key.proto == IPPROTO_TCP)
		json_object_set_new(o, "state",
				    json_string(ct_tcp_state_name(c->e.state & CT_ST_TCP_MASK)));
	json_array_append_new(l->arr, o);
	return 0;
}

static int parse_proto(const char *s)
{
	char *end;
	unsigned long v;

	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	if (!strcmp(s, "icmp"))
		return IPPROTO_ICMP;
	if (!strcmp(s, "icmpv6"))
		return IPPROTO_ICMPV6;
	v = strtoul(s, &end, 10);
	return *s && !*end && v < 256 ? (int)v : -1;
}

static int h_ct_list(struct api_req *req, struct api_resp *resp)
{
	const char *name = api_query(req, "name"), *proto = api_query(req, "proto");
	struct list_ctx l = { .proto = -1 };
	struct ct_names names;
	struct sl_ctx *ctx;
	int err = 0;

	if (proto) {
		l.proto = parse_proto(proto);
		if (l.proto < 0)
			return api_error(resp, 400, "proto",
					 "proto '%s': tcp, udp, icmp, icmpv6 or a number", proto);
	}
	if (api_open_read(&ctx, resp))
		return resp->status;
	l.arr = json_array();
	if (!l.arr) {
		api_ctx_close(ctx);
		return api_error(resp, 500, NULL, "out of memory");
	}
	if (!ctx) {
		if (name) {
			json_decref(l.arr);
			return api_error(resp, 404, "name", "no instance '%s'", name);
		}
		return api_ok(resp, 200, l.arr);
	}
	if (ct_targets(ctx, name, &names, resp)) {
		api_ctx_close(ctx);
		json_decref(l.arr);
		return resp->status;
	}
	for (int i = 0; i < names.n && !err; i++) {
		l.inst = names.v[i];
		err = ct_foreach(ctx, names.v[i], list_cb, &l);
	}
	api_ctx_close(ctx);
	if (err) {
		json_decref(l.arr);
		return api_lib_error(resp, err, NULL);
	}
	return api_ok(resp, 200, l.arr);
}

static int h_ct_flush(struct api_req *req, struct api_resp *resp)
{
	const char *name = api_query(req, "name");
	struct ct_names names;
	struct sl_ctx *ctx;
	__u64 total = 0, n;
	int err = 0;

	if (api_open_write(&ctx, resp))
		return resp->status;
	if (ct_targets(ctx, name, &names, resp)) {
		api_ctx_close(ctx);
		return resp->status;
	}
	for (int i = 0; i < names.n && !err; i++) {
		n = 0;
		err = ct_flush(ctx, names.v[i], &n);
		total += n;
	}
	api_ctx_close(ctx);
	if (err)
		return api_lib_error(resp, err, NULL);
	return api_ok(resp, 200, json_pack("{s:I}", "deleted", (json_int_t)total));
}

API_ROUTE(ct_list_route, "GET", "/v1/conntrack", h_ct_list,
	  (const char *const[]){ "name", "proto", NULL });
API_ROUTE(ct_flush_route, "DELETE", "/v1/conntrack", h_ct_flush,
	  (const char *const[]){ "name", NULL });
