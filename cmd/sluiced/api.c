// SPDX-License-Identifier: GPL-2.0
/* sluiced: the REST resources, one static route table over libsluice.
 *
 * Every handler opens the namespace's state for the request and closes it
 * before answering: writes take the same writer lock as the CLI
 * (sl_open(SL_OPEN_WRITE)) and the daemon holds nothing between requests.
 * Request bodies are parsed and checked in full before any state is opened,
 * so a refused request changes nothing. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <strings.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include "sluice.h"
#include "firewall.h"
#include "config.h"
#include "events.h"
#include "sluiced.h"

int (*api_state_open)(struct sl_ctx **ctx, unsigned int flags) = sl_open;
volatile int api_stopping;

#define route api_route

/* ---- errors and helpers ------------------------------------------------ */

/* sl_close() of nothing: the error paths close whatever they opened. */
static void ctx_close(struct sl_ctx *ctx)
{
	if (ctx)
		sl_close(ctx);
}

/* A JSON string of text that may quote what the client sent: bytes that
 * are not UTF-8 (a path, a query argument) become '?'. */
static json_t *text_json(const char *text)
{
	json_t *j = json_string(text);
	char *copy;

	if (j)
		return j;
	copy = strdup(text);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

int api_error(struct api_resp *resp, int status, const char *field,
	      const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(resp->body);
	resp->body = json_pack("{s:o}", "error", text_json(msg));
	if (field && resp->body)
		json_object_set_new(resp->body, "field", text_json(field));
	resp->status = status;
	return status;
}

/* The HTTP status of a libsluice error. */
static int status_of(int err)
{
	switch (-err) {
	case ENOENT:
	case ENODEV:
		return 404;
	case EINVAL:
	case ERANGE:
		return 400;
	case EEXIST:
	case EBUSY:
	case E2BIG:
	case ENOSPC:
	case ESTALE: /* state of another sluice version */
		return 409;
	default:
		return 500;
	}
}

/* Answers a failed libsluice call with its message. */
static int lib_error(struct api_resp *resp, int err, const char *field)
{
	return api_error(resp, status_of(err), field, "%s", sl_errmsg());
}

static int ok(struct api_resp *resp, int status, json_t *body)
{
	json_decref(resp->body);
	resp->status = status;
	resp->body = body;
	if (!body && status != 204)
		return api_error(resp, 500, NULL, "out of memory");
	return status;
}

static const char *query(const struct api_req *req, const char *key)
{
	for (int i = 0; i < req->nquery; i++)
		if (!strcmp(req->qkey[i], key))
			return req->qval[i];
	return NULL;
}

/* Refuses query arguments not in allowed (NULL-terminated). */
static int check_query(const struct api_req *req, struct api_resp *resp,
		       const char *const *allowed)
{
	for (int i = 0; i < req->nquery; i++) {
		const char *const *a;

		for (a = allowed; *a && strcmp(*a, req->qkey[i]); a++)
			;
		if (!*a)
			return api_error(resp, 400, req->qkey[i],
					 "unknown query argument '%s'", req->qkey[i]);
	}
	return 0;
}

/* Parses the body as one JSON object whose keys are all in allowed
 * (NULL-terminated): unknown fields are refused, never ignored. */
static json_t *body_object(const struct api_req *req, struct api_resp *resp,
			   const char *const *allowed)
{
	json_error_t e;
	const char *key;
	json_t *j, *v;

	if (!req->body_len) {
		api_error(resp, 400, NULL, "a JSON object body is required");
		return NULL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		api_error(resp, 400, NULL, "malformed JSON at line %d, column %d: %s",
			  e.line, e.column, e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		api_error(resp, 400, NULL, "the body must be a JSON object");
		json_decref(j);
		return NULL;
	}
	json_object_foreach(j, key, v) {
		const char *const *a;
		char list[256] = "";
		size_t off = 0;

		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (*a)
			continue;
		for (a = allowed; *a; a++)
			off += snprintf(list + off, off < sizeof(list) ? sizeof(list) - off : 0,
					"%s%s", a == allowed ? "" : ", ", *a);
		api_error(resp, 400, key, "unknown field '%s' (fields: %s)", key, list);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* A string field: *out is NULL when absent and not required. */
static int field_str(json_t *obj, const char *key, bool required,
		     const char **out, struct api_resp *resp)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return api_error(resp, 400, key, "missing field '%s'", key);
		return 0;
	}
	if (!json_is_string(v))
		return api_error(resp, 400, key, "'%s' must be a string", key);
	*out = json_string_value(v);
	if (strlen(*out) != json_string_length(v))
		return api_error(resp, 400, key, "'%s' contains a NUL character", key);
	return 0;
}

static int check_name(const char *name, struct api_resp *resp, const char *field)
{
	size_t n = strlen(name);

	if (!n || n >= SL_NAME_MAX)
		return api_error(resp, 400, field,
				 "instance name '%s' must have 1 to %d characters",
				 name, SL_NAME_MAX - 1);
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return api_error(resp, 400, field,
					 "instance name '%s': use letters, digits, '-' and '_'",
					 name);
	return 0;
}

static int check_hook(const char *name, enum sl_hook *hook,
		      struct api_resp *resp, const char *field)
{
	if (sl_hook_parse(name, hook))
		return api_error(resp, 400, field, "%s", sl_errmsg());
	return 0;
}

static int check_dev(const char *dev, struct api_resp *resp, const char *field)
{
	if (strlen(dev) >= IF_NAMESIZE || !*dev)
		return api_error(resp, 400, field, "'%s' is not an interface name", dev);
	if (sl_ifindex(dev) < 0)
		return api_error(resp, 404, field, "%s", sl_errmsg());
	return 0;
}

/* Opens the state for reading; *ctx is NULL (and 0 returned) when this
 * namespace has no state yet. */
static int open_read(struct sl_ctx **ctx, struct api_resp *resp)
{
	int err = api_state_open(ctx, 0);

	if (err == -ENOENT)
		return 0;
	return err ? lib_error(resp, err, NULL) : 0;
}

static int open_write(struct sl_ctx **ctx, struct api_resp *resp)
{
	int err = api_state_open(ctx, SL_OPEN_WRITE);

	return err ? lib_error(resp, err, NULL) : 0;
}

/* Opens for writing only when state exists: a delete or an edit of what
 * is not there must not create the state. */
static int open_write_existing(struct sl_ctx **ctx, struct api_resp *resp,
			       const char *what)
{
	int err = api_state_open(ctx, 0);

	if (err == -ENOENT)
		return api_error(resp, 404, NULL, "%s", what);
	if (err)
		return lib_error(resp, err, NULL);
	ctx_close(*ctx);
	return open_write(ctx, resp);
}

/* The helpers for handlers in other files (sluiced.h). */
int api_ok(struct api_resp *resp, int status, json_t *body)
{
	return ok(resp, status, body);
}

int api_lib_error(struct api_resp *resp, int err, const char *field)
{
	return lib_error(resp, err, field);
}

const char *api_query(const struct api_req *req, const char *key)
{
	return query(req, key);
}

json_t *api_body_object(const struct api_req *req, struct api_resp *resp,
			const char *const *allowed)
{
	return body_object(req, resp, allowed);
}

int api_open_read(struct sl_ctx **ctx, struct api_resp *resp)
{
	return open_read(ctx, resp);
}

int api_open_write(struct sl_ctx **ctx, struct api_resp *resp)
{
	return open_write(ctx, resp);
}

void api_ctx_close(struct sl_ctx *ctx)
{
	ctx_close(ctx);
}

const char *api_body_dev(json_t *body, struct api_resp *resp)
{
	json_t *v = json_object_get(body, "dev");
	const char *dev;

	if (!json_is_string(v) || !*(dev = json_string_value(v))) {
		api_error(resp, 400, "dev", "'dev' (an interface name) is required");
		return NULL;
	}
	if (sl_ifindex(dev) < 0) {
		api_error(resp, 404, "dev", "%s", sl_errmsg());
		return NULL;
	}
	return dev;
}

/* ---- JSON views (the shapes of `sluice -j`) ----------------------------- */

struct name_by_slot {
	__u32 slot;
	char name[SL_NAME_MAX];
	bool found;
};

static int find_slot_cb(const struct sl_instance *inst, void *arg)
{
	struct name_by_slot *q = arg;

	if (inst->slot != q->slot)
		return 0;
	snprintf(q->name, sizeof(q->name), "%s", inst->name);
	q->found = true;
	return 1;
}

static void slot_name(struct sl_ctx *ctx, __u32 slot, char name[SL_NAME_MAX])
{
	struct name_by_slot q = { .slot = slot };

	sl_instance_foreach(ctx, find_slot_cb, &q);
	snprintf(name, SL_NAME_MAX, "%s", q.found ? q.name : "?");
}

static json_t *chain_json(struct sl_ctx *ctx, __u32 ifindex, enum sl_hook hook,
			  const struct sl_chain *chain)
{
	char ifname[IF_NAMESIZE], name[SL_NAME_MAX];
	json_t *arr = json_array();

	if (!if_indextoname(ifindex, ifname))
		snprintf(ifname, sizeof(ifname), "if%u", ifindex);
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		slot_name(ctx, chain->slots[i], name);
		json_array_append_new(arr, json_string(name));
	}
	return json_pack("{s:s, s:s, s:o}", "dev", ifname, "hook",
			 sl_hook_name(hook), "instances", arr);
}

struct chain_list {
	struct sl_ctx *ctx;
	json_t *arr;
	__u32 slot; /* with want_slot: only chains running it */
	bool want_slot;
};

static int chain_list_cb(__u32 ifindex, enum sl_hook hook,
			 const struct sl_chain *chain, void *arg)
{
	struct chain_list *l = arg;

	if (l->want_slot) {
		bool in = false;

		for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++)
			in |= chain->slots[i] == l->slot;
		if (!in)
			return 0;
	}
	json_array_append_new(l->arr, chain_json(l->ctx, ifindex, hook, chain));
	return 0;
}

static json_t *chains_json(struct sl_ctx *ctx)
{
	struct chain_list l = { .ctx = ctx, .arr = json_array() };

	if (ctx)
		sl_chain_foreach(ctx, chain_list_cb, &l);
	return l.arr;
}

static json_t *instance_json(struct sl_ctx *ctx, const struct sl_instance *inst)
{
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
	json_t *o = json_pack("{s:s, s:s, s:I}", "name", inst->name, "type",
			      inst->type, "slot", (json_int_t)inst->slot);

	if (o && !sl_slot_stats(ctx, inst->slot, &st, drops)) {
		json_t *reasons = json_object();

		json_object_set_new(o, "packets", json_integer(st.packets));
		json_object_set_new(o, "bytes", json_integer(st.bytes));
		json_object_set_new(o, "passed", json_integer(st.passed));
		json_object_set_new(o, "dropped", json_integer(st.dropped));
		for (__u32 r = 0; r < SL_DROP_MAX; r++)
			if (drops[r] && sl_drop_reason_name(r))
				json_object_set_new(reasons, sl_drop_reason_name(r),
						    json_integer(drops[r]));
		json_object_set_new(o, "drop_reasons", reasons);
	}
	return o;
}

struct inst_list {
	struct sl_ctx *ctx;
	json_t *arr;
	const char *type; /* only instances of this type, when set */
};

static int inst_list_cb(const struct sl_instance *inst, void *arg)
{
	struct inst_list *l = arg;

	if (l->type && strcmp(l->type, inst->type))
		return 0;
	json_array_append_new(l->arr, instance_json(l->ctx, inst));
	return 0;
}

static json_t *instances_json(struct sl_ctx *ctx, const char *type)
{
	struct inst_list l = { .ctx = ctx, .arr = json_array(), .type = type };

	if (ctx)
		sl_instance_foreach(ctx, inst_list_cb, &l);
	return l.arr;
}

/* `sluice -j firewall show` plus "chains": where the instance runs. */
static int firewall_json(struct sl_ctx *ctx, const char *name, json_t **out,
			 struct api_resp *resp)
{
	struct fw_ruleset rs;
	struct fw_counter *cnt = NULL;
	struct sl_instance inst;
	char text[1024];
	json_t *o, *rules;
	int err = sl_instance_get(ctx, name, &inst);

	if (err)
		return lib_error(resp, err, NULL);
	if (strcmp(inst.type, FW_TYPE))
		return api_error(resp, 404, NULL, "instance '%s' is a %s, not a firewall",
				 name, inst.type);
	err = fw_read(ctx, name, &rs, &cnt, NULL);
	if (err)
		return lib_error(resp, err, NULL);
	rules = json_array();
	for (__u32 i = 0; i < rs.n; i++) {
		fw_rule_format(&rs.rules[i], text, sizeof(text));
		json_array_append_new(rules, json_pack("{s:I, s:I, s:I, s:s}",
			"index", (json_int_t)i + 1, "packets", (json_int_t)cnt[i].packets,
			"bytes", (json_int_t)cnt[i].bytes, "rule", text));
	}
	o = json_pack("{s:s, s:s, s:I, s:I, s:o}", "name", name, "default",
		      rs.default_action == FW_DROP ? "drop" : "accept",
		      "default_packets", (json_int_t)cnt[rs.n].packets,
		      "default_bytes", (json_int_t)cnt[rs.n].bytes, "rules", rules);
	if (o) {
		struct chain_list l = { .ctx = ctx, .arr = json_array(),
					.slot = inst.slot, .want_slot = true };

		sl_chain_foreach(ctx, chain_list_cb, &l);
		json_object_set_new(o, "chains", l.arr);
	}
	free(cnt);
	fw_ruleset_free(&rs);
	if (!o)
		return api_error(resp, 500, NULL, "out of memory");
	*out = o;
	return 0;
}

/* ---- health, status ------------------------------------------------------ */

static int h_health(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err = api_state_open(&ctx, 0);

	if (!err)
		ctx_close(ctx);
	return ok(resp, 200, json_pack("{s:b, s:b}", "ok", 1, "state_loaded", !err));
}

static int h_status(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
	json_t *o;

	if (open_read(&ctx, resp))
		return resp->status;
	o = json_pack("{s:b}", "loaded", ctx != NULL);
	if (ctx) {
		json_object_set_new(o, "pin_dir", json_string(sl_base(ctx)));
		if (!sl_slot_stats(ctx, 0, &st, drops)) {
			json_object_set_new(o, "root_packets", json_integer(st.packets));
			json_object_set_new(o, "root_dropped", json_integer(st.dropped));
		}
		json_object_set_new(o, "chains", chains_json(ctx));
		json_object_set_new(o, "instances", instances_json(ctx, NULL));
		ctx_close(ctx);
	}
	return ok(resp, 200, o);
}

static int h_reset(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	int err = api_state_open(&ctx, SL_OPEN_RESET); /* any version */

	if (err == -ENOENT)
		return ok(resp, 204, NULL);
	if (err)
		return lib_error(resp, err, NULL);
	ctx_close(ctx);
	err = api_state_open(&ctx, SL_OPEN_WRITE | SL_OPEN_RESET);
	if (err)
		return lib_error(resp, err, NULL);
	err = sl_reset(ctx);
	ctx_close(ctx);
	return err ? lib_error(resp, err, NULL) : ok(resp, 204, NULL);
}

/* ---- chains ------------------------------------------------------------- */

static int h_chains_list(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	json_t *arr;

	if (open_read(&ctx, resp))
		return resp->status;
	arr = chains_json(ctx);
	ctx_close(ctx);
	return ok(resp, 200, arr);
}

static int h_chain_get(struct api_req *req, struct api_resp *resp)
{
	const char *dev = req->params[0];
	struct sl_ctx *ctx = NULL;
	struct sl_chain chain;
	enum sl_hook hook;
	json_t *o;
	int err;

	if (check_hook(req->params[1], &hook, resp, "hook") ||
	    check_dev(dev, resp, "dev"))
		return resp->status;
	if (open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no chain on %s %s", dev,
				 sl_hook_name(hook));
	err = sl_chain_get(ctx, dev, hook, &chain);
	if (err) {
		ctx_close(ctx);
		return lib_error(resp, err, NULL);
	}
	o = chain_json(ctx, sl_ifindex(dev), hook, &chain);
	ctx_close(ctx);
	return ok(resp, 200, o);
}

static int h_chain_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const fields[] = { "instances", NULL };
	const char *dev = req->params[0];
	const char *names[SL_CHAIN_MAX];
	struct sl_ctx *ctx;
	struct sl_chain chain;
	enum sl_hook hook;
	json_t *body, *arr, *v, *o = NULL;
	size_t i, n;
	char field[32];
	int err;

	if (check_hook(req->params[1], &hook, resp, "hook") ||
	    check_dev(dev, resp, "dev"))
		return resp->status;
	body = body_object(req, resp, fields);
	if (!body)
		return resp->status;
	arr = json_object_get(body, "instances");
	if (!arr) {
		api_error(resp, 400, "instances", "missing field 'instances'");
		goto out;
	}
	if (!json_is_array(arr)) {
		api_error(resp, 400, "instances", "'instances' must be an array of instance names");
		goto out;
	}
	n = json_array_size(arr);
	if (n > SL_CHAIN_MAX) {
		api_error(resp, 400, "instances", "a chain holds at most %d instances",
			  SL_CHAIN_MAX);
		goto out;
	}
	json_array_foreach(arr, i, v) {
		snprintf(field, sizeof(field), "instances[%zu]", i);
		if (!json_is_string(v)) {
			api_error(resp, 400, field, "%s: must be a string", field);
			goto out;
		}
		names[i] = json_string_value(v);
		if (check_name(names[i], resp, field))
			goto out;
	}
	if (open_write(&ctx, resp))
		goto out;
	for (i = 0; i < n; i++) {
		struct sl_instance inst;

		if (sl_instance_get(ctx, names[i], &inst)) {
			snprintf(field, sizeof(field), "instances[%zu]", i);
			api_error(resp, 404, field, "%s: no instance '%s'", field, names[i]);
			goto out_ctx;
		}
	}
	err = sl_chain_set(ctx, dev, hook, names, n);
	if (err) {
		lib_error(resp, err, "instances");
		goto out_ctx;
	}
	if (!n)
		ok(resp, 204, NULL);
	else if (!sl_chain_get(ctx, dev, hook, &chain))
		o = chain_json(ctx, sl_ifindex(dev), hook, &chain), ok(resp, 200, o);
	else
		lib_error(resp, -EIO, NULL);
out_ctx:
	ctx_close(ctx);
out:
	json_decref(body);
	return resp->status;
}

static int h_chain_delete(struct api_req *req, struct api_resp *resp)
{
	const char *dev = req->params[0];
	struct sl_ctx *ctx;
	struct sl_chain chain;
	enum sl_hook hook;
	int err;

	if (check_hook(req->params[1], &hook, resp, "hook") ||
	    check_dev(dev, resp, "dev"))
		return resp->status;
	if (open_write_existing(&ctx, resp, "no sluice state in this network namespace"))
		return resp->status;
	err = sl_chain_get(ctx, dev, hook, &chain);
	err = err ?: sl_chain_set(ctx, dev, hook, NULL, 0);
	ctx_close(ctx);
	return err ? lib_error(resp, err, NULL) : ok(resp, 204, NULL);
}

/* ---- instances ---------------------------------------------------------- */

static int h_instances_list(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	json_t *arr;

	if (open_read(&ctx, resp))
		return resp->status;
	arr = instances_json(ctx, NULL);
	ctx_close(ctx);
	return ok(resp, 200, arr);
}

static int h_instance_get(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	struct sl_instance inst;
	json_t *o;
	int err;

	if (check_name(req->params[0], resp, "name") || open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no instance '%s'", req->params[0]);
	err = sl_instance_get(ctx, req->params[0], &inst);
	if (err) {
		ctx_close(ctx);
		return lib_error(resp, err, NULL);
	}
	o = instance_json(ctx, &inst);
	ctx_close(ctx);
	return ok(resp, 200, o);
}

static int h_instance_delete(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx;
	char msg[64];
	int err;

	if (check_name(req->params[0], resp, "name"))
		return resp->status;
	snprintf(msg, sizeof(msg), "no instance '%s'", req->params[0]);
	if (open_write_existing(&ctx, resp, msg))
		return resp->status;
	err = sl_instance_delete(ctx, req->params[0]);
	ctx_close(ctx);
	return err ? lib_error(resp, err, NULL) : ok(resp, 204, NULL);
}

/* ---- firewalls ---------------------------------------------------------- */

static int h_firewalls_list(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	json_t *arr;

	if (open_read(&ctx, resp))
		return resp->status;
	arr = instances_json(ctx, FW_TYPE);
	ctx_close(ctx);
	return ok(resp, 200, arr);
}

static int h_fw_get(struct api_req *req, struct api_resp *resp)
{
	struct sl_ctx *ctx = NULL;
	json_t *o = NULL;

	if (check_name(req->params[0], resp, "name") || open_read(&ctx, resp))
		return resp->status;
	if (!ctx)
		return api_error(resp, 404, NULL, "no instance '%s'", req->params[0]);
	if (!firewall_json(ctx, req->params[0], &o, resp))
		ok(resp, 200, o);
	ctx_close(ctx);
	return resp->status;
}

/* Parses {"rules": [...], "default": ...} into rs; errors name the field,
 * rules[i] for a rule. */
static int parse_rules(json_t *body, struct fw_ruleset *rs, bool need_rules,
		       struct api_resp *resp)
{
	json_t *arr = json_object_get(body, "rules"), *v;
	const char *def;
	char field[32];
	size_t i;

	memset(rs, 0, sizeof(*rs));
	if (field_str(body, "default", false, &def, resp))
		return resp->status;
	if (def && strcmp(def, "accept") && strcmp(def, "drop"))
		return api_error(resp, 400, "default",
				 "default: '%s' is not accept or drop", def);
	rs->default_action = def && !strcmp(def, "drop") ? FW_DROP : FW_ACCEPT;
	rs->has_default = def != NULL;
	if (!arr && need_rules)
		return api_error(resp, 400, "rules", "missing field 'rules'");
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return api_error(resp, 400, "rules", "'rules' must be an array of strings");
	if (json_array_size(arr) > FW_MAX_RULES)
		return api_error(resp, 400, "rules", "more than %d rules", FW_MAX_RULES);
	json_array_foreach(arr, i, v) {
		struct fw_rule rule;
		int err;

		snprintf(field, sizeof(field), "rules[%zu]", i);
		if (!json_is_string(v)) {
			fw_ruleset_free(rs);
			return api_error(resp, 400, field, "%s: must be a string", field);
		}
		err = fw_rule_parse(json_string_value(v), &rule);
		err = err ?: fw_ruleset_add(rs, &rule, rs->n);
		if (err) {
			fw_ruleset_free(rs);
			return api_error(resp, err == -ENOMEM ? 500 : 400, field,
					 "%s: %s", field, sl_errmsg());
		}
	}
	return 0;
}

static int h_fw_put(struct api_req *req, struct api_resp *resp)
{
	static const char *const fields[] = { "dev", "hook", "rules", "default", NULL };
	const char *name = req->params[0], *dev, *hookname;
	struct fw_ruleset rs = {};
	struct sl_instance inst;
	struct sl_ctx *ctx;
	enum sl_hook hook = SL_HOOK_XDP;
	json_t *body, *o = NULL;
	bool existed;
	int err;

	if (check_name(name, resp, "name"))
		return resp->status;
	body = body_object(req, resp, fields);
	if (!body)
		return resp->status;
	/* Everything is checked before the state is opened. */
	if (field_str(body, "dev", true, &dev, resp) ||
	    field_str(body, "hook", false, &hookname, resp) ||
	    (hookname && check_hook(hookname, &hook, resp, "hook")) ||
	    check_dev(dev, resp, "dev") || parse_rules(body, &rs, true, resp))
		goto out;
	if (open_write(&ctx, resp))
		goto out;
	existed = !sl_instance_get(ctx, name, &inst);
	if (existed && strcmp(inst.type, FW_TYPE)) {
		api_error(resp, 409, NULL, "instance '%s' exists and is a %s, not a firewall",
			  name, inst.type);
		goto out_ctx;
	}
	/* As `sluice firewall load`: a refusal leaves no new instance. */
	err = sl_chain_check(ctx, dev, hook, name);
	err = err ?: fw_load(ctx, name, &rs, NULL);
	if (err) {
		lib_error(resp, err, NULL);
		goto out_ctx;
	}
	err = sl_chain_ensure(ctx, dev, hook, name);
	if (err) {
		lib_error(resp, err, NULL);
		if (!existed)
			sl_instance_delete(ctx, name);
		goto out_ctx;
	}
	if (!firewall_json(ctx, name, &o, resp))
		ok(resp, existed ? 200 : 201, o);
out_ctx:
	ctx_close(ctx);
out:
	fw_ruleset_free(&rs);
	json_decref(body);
	return resp->status;
}

/* Opens for writing and checks that name is a firewall. */
static int open_firewall(const char *name, struct sl_ctx **ctx,
			 struct fw_ruleset *rs, struct api_resp *resp)
{
	struct sl_instance inst;
	char msg[64];
	int err;

	snprintf(msg, sizeof(msg), "no instance '%s'", name);
	if (open_write_existing(ctx, resp, msg))
		return resp->status;
	err = sl_instance_get(*ctx, name, &inst);
	if (!err && strcmp(inst.type, FW_TYPE))
		api_error(resp, 404, NULL, "instance '%s' is a %s, not a firewall",
			  name, inst.type);
	else if (!err)
		err = fw_read(*ctx, name, rs, NULL, NULL);
	if (err)
		lib_error(resp, err, NULL);
	if (err || resp->status) {
		ctx_close(*ctx);
		*ctx = NULL;
		return resp->status;
	}
	return 0;
}

static int reply_firewall(struct sl_ctx *ctx, const char *name, int status,
			  struct api_resp *resp)
{
	json_t *o = NULL;

	if (!firewall_json(ctx, name, &o, resp))
		ok(resp, status, o);
	return resp->status;
}

static int h_fw_rule_add(struct api_req *req, struct api_resp *resp)
{
	static const char *const fields[] = { "rule", "pos", NULL };
	const char *name = req->params[0], *text;
	struct fw_ruleset rs = {};
	struct fw_rule rule;
	struct sl_ctx *ctx = NULL;
	json_int_t pos = 0;
	json_t *body, *p;
	int err;

	if (check_name(name, resp, "name"))
		return resp->status;
	body = body_object(req, resp, fields);
	if (!body)
		return resp->status;
	if (field_str(body, "rule", true, &text, resp))
		goto out;
	p = json_object_get(body, "pos");
	if (p && !json_is_null(p)) {
		if (!json_is_integer(p)) {
			api_error(resp, 400, "pos", "'pos' must be an integer");
			goto out;
		}
		pos = json_integer_value(p);
		if (pos < 1 || pos > FW_MAX_RULES) {
			api_error(resp, 400, "pos", "pos: %lld is out of range (1 to the rule count + 1; absent appends)",
				  (long long)pos);
			goto out;
		}
	}
	if (fw_rule_parse(text, &rule)) {
		api_error(resp, 400, "rule", "rule: %s", sl_errmsg());
		goto out;
	}
	if (open_firewall(name, &ctx, &rs, resp))
		goto out;
	if (pos > (json_int_t)rs.n + 1) {
		api_error(resp, 400, "pos", "pos: %lld is out of range ('%s' has %u rules)",
			  (long long)pos, name, rs.n);
		goto out;
	}
	err = fw_rule_insert(ctx, name, pos, &rule);
	if (err)
		lib_error(resp, err, NULL);
	else
		reply_firewall(ctx, name, 201, resp);
out:
	ctx_close(ctx);
	fw_ruleset_free(&rs);
	json_decref(body);
	return resp->status;
}

static int h_fw_rule_delete(struct api_req *req, struct api_resp *resp)
{
	const char *name = req->params[0], *s = req->params[1];
	struct fw_ruleset rs = {};
	struct sl_ctx *ctx = NULL;
	unsigned long n;
	char *end;
	int err;

	if (check_name(name, resp, "name"))
		return resp->status;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || !n || n > FW_MAX_RULES)
		return api_error(resp, 400, "n", "rule number '%s': need 1 to the rule count", s);
	if (open_firewall(name, &ctx, &rs, resp))
		goto out;
	if (n > rs.n) {
		api_error(resp, 404, "n", "no rule %lu in '%s' (it has %u rules)", n, name, rs.n);
		goto out;
	}
	err = fw_rule_delete(ctx, name, n);
	if (err)
		lib_error(resp, err, NULL);
	else
		reply_firewall(ctx, name, 200, resp);
out:
	ctx_close(ctx);
	fw_ruleset_free(&rs);
	return resp->status;
}

/* Flush: no rules left, the default stays. */
static int h_fw_rules_flush(struct api_req *req, struct api_resp *resp)
{
	const char *name = req->params[0];
	struct fw_ruleset rs = {}, empty = {};
	struct sl_ctx *ctx = NULL;
	int err;

	if (check_name(name, resp, "name") || open_firewall(name, &ctx, &rs, resp))
		goto out;
	empty.default_action = rs.default_action;
	err = fw_load(ctx, name, &empty, NULL);
	if (err)
		lib_error(resp, err, NULL);
	else
		reply_firewall(ctx, name, 200, resp);
out:
	ctx_close(ctx);
	fw_ruleset_free(&rs);
	return resp->status;
}

struct chain_ref {
	__u32 ifindex;
	enum sl_hook hook;
	struct sl_chain chain;
};

struct chain_refs {
	__u32 slot;
	struct chain_ref *refs;
	int n, cap;
};

static int collect_chains_cb(__u32 ifindex, enum sl_hook hook,
			     const struct sl_chain *chain, void *arg)
{
	struct chain_refs *c = arg;
	bool in = false;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++)
		in |= chain->slots[i] == c->slot;
	if (!in)
		return 0;
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 8;
		struct chain_ref *r = realloc(c->refs, cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		c->refs = r;
		c->cap = cap;
	}
	c->refs[c->n++] = (struct chain_ref){ ifindex, hook, *chain };
	return 0;
}

/* Takes the instance in slot out of a chain, keeping the others in order. */
static int chain_remove_slot(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
			     const struct sl_chain *chain, __u32 slot)
{
	char names[SL_CHAIN_MAX][SL_NAME_MAX];
	const char *ptrs[SL_CHAIN_MAX];
	int n = 0;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		if (chain->slots[i] == slot)
			continue;
		slot_name(ctx, chain->slots[i], names[n]);
		ptrs[n] = names[n];
		n++;
	}
	return sl_chain_set(ctx, dev, hook, ptrs, n);
}

/* Unload: with ?dev= (and ?hook=, ingress by default) takes the firewall
 * out of that chain first, as `sluice firewall unload`; without dev, out of
 * every chain that runs it. Then deletes it. */
static int h_fw_delete(struct api_req *req, struct api_resp *resp)
{
	const char *name = req->params[0], *dev = query(req, "dev");
	const char *hookname = query(req, "hook");
	struct fw_ruleset rs = {};
	struct sl_ctx *ctx = NULL;
	struct sl_instance inst;
	struct sl_chain chain;
	enum sl_hook hook = SL_HOOK_XDP;
	int err = 0;

	if (check_name(name, resp, "name"))
		return resp->status;
	if (hookname && !dev)
		return api_error(resp, 400, "hook", "hook needs dev");
	if ((hookname && check_hook(hookname, &hook, resp, "hook")) ||
	    (dev && check_dev(dev, resp, "dev")))
		return resp->status;
	if (open_firewall(name, &ctx, &rs, resp))
		goto out;
	sl_instance_get(ctx, name, &inst);
	if (dev) {
		if (!sl_chain_get(ctx, dev, hook, &chain))
			err = chain_remove_slot(ctx, dev, hook, &chain, inst.slot);
	} else {
		struct chain_refs c = { .slot = inst.slot };

		err = sl_chain_foreach(ctx, collect_chains_cb, &c);
		if (err < 0)
			err = sl_err(err, "cannot list the chains");
		for (int i = 0; i < c.n && !err; i++) {
			char ifname[IF_NAMESIZE];

			if (!if_indextoname(c.refs[i].ifindex, ifname))
				continue; /* its interface is gone; pruned */
			err = chain_remove_slot(ctx, ifname, c.refs[i].hook,
						&c.refs[i].chain, inst.slot);
		}
		free(c.refs);
	}
	err = err ?: sl_instance_delete(ctx, name);
	if (err)
		lib_error(resp, err, NULL);
	else
		ok(resp, 204, NULL);
out:
	ctx_close(ctx);
	fw_ruleset_free(&rs);
	return resp->status;
}

/* Parses and indexes a rule set, loads nothing (`sluice firewall check`). */
static int h_fw_check(struct api_req *req, struct api_resp *resp)
{
	static const char *const fields[] = { "rules", "default", NULL };
	struct fw_ruleset rs = {};
	struct fw_tree tree;
	json_t *body = body_object(req, resp, fields);
	int err;

	if (!body)
		return resp->status;
	if (parse_rules(body, &rs, true, resp))
		goto out;
	err = fw_tree_build(&rs, &tree);
	if (err) {
		lib_error(resp, err, NULL);
		goto out;
	}
	ok(resp, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
				"rules", (json_int_t)rs.n, "trees", (json_int_t)tree.ntrees,
				"nodes", (json_int_t)tree.nnodes,
				"leaf_entries", (json_int_t)tree.nleaves,
				"depth", (json_int_t)tree.depth,
				"max_leaf", (json_int_t)tree.max_leaf));
	fw_tree_free(&tree);
out:
	fw_ruleset_free(&rs);
	json_decref(body);
	return resp->status;
}

/* ---- declarative configuration: apply, diff, export ------------------------ */

/* The document's media type: YAML or JSON (JSON is YAML to the parser);
 * absent is taken as YAML. */
static int check_doc_type(const struct api_req *req, struct api_resp *resp)
{
	static const char *const types[] = {
		"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
		"application/json", "text/plain", NULL,
	};
	const char *ct = req->content_type, *end;
	size_t n;

	if (!ct || !*ct)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	end = strchrnul(ct, ';');
	while (end > ct && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	n = end - ct;
	for (const char *const *t = types; *t; t++)
		if (strlen(*t) == n && !strncasecmp(*t, ct, n))
			return 0;
	return api_error(resp, 415, NULL,
			 "Content-Type '%s': send the document as application/yaml or application/json",
			 req->content_type);
}

/* A refused document: 400 with the message of sl_config_parse() ("body:LINE:
 * PATH: reason"), "field" the PATH and "line" the LINE when it names them. */
static int config_error(struct api_resp *resp, int err)
{
	const char *msg = sl_errmsg(), *p = msg, *path, *pe;
	unsigned long line;
	char *end;

	if (err == -E2BIG)
		return api_error(resp, 413, NULL, "%s", msg);
	if (err != -EINVAL)
		return lib_error(resp, err, NULL);
	api_error(resp, 400, NULL, "%s", msg);
	if (strncmp(p, "body:", 5))
		return resp->status;
	p += 5;
	if (*p < '0' || *p > '9')
		return resp->status;
	line = strtoul(p, &end, 10);
	json_object_set_new(resp->body, "line", json_integer(line));
	if (strncmp(end, ": ", 2))
		return resp->status;
	path = end + 2;
	pe = strstr(path, ": ");
	/* A field path has no spaces: "firewalls.web.rules[1]", "chains[0].dev". */
	if (pe && pe > path && !memchr(path, ' ', pe - path))
		json_object_set_new(resp->body, "field", json_stringn(path, pe - path));
	return resp->status;
}

static int parse_doc(const struct api_req *req, struct api_resp *resp,
		     struct sl_config **cfg)
{
	int err;

	*cfg = NULL;
	if (check_doc_type(req, resp))
		return resp->status;
	if (!req->body_len)
		return api_error(resp, 400, NULL, "a YAML or JSON document body is required");
	err = sl_config_parse(req->body, req->body_len, "body", cfg);
	return err ? config_error(resp, err) : 0;
}

/* Runs f(arg, FILE) into a string. */
static int print_to_string(int (*f)(const void *arg, FILE *out, bool json), const void *arg,
			   bool json, char **text, size_t *len)
{
	FILE *mf = open_memstream(text, len);
	int err;

	if (!mf)
		return sl_err(-ENOMEM, "out of memory");
	err = f(arg, mf, json);
	if (fclose(mf) && !err)
		err = sl_err(-ENOMEM, "out of memory");
	if (err) {
		free(*text);
		*text = NULL;
	}
	return err;
}

static int plan_print(const void *plan, FILE *f, bool json)
{
	return sl_config_plan_print_json(plan, f);
}

/* The plan as `sluice -j diff` prints it, plus "applied". */
static int reply_plan(const struct sl_config_plan *plan, bool applied,
		      struct api_resp *resp)
{
	char *text = NULL;
	size_t len = 0;
	json_error_t e;
	json_t *o;
	int err = print_to_string(plan_print, plan, true, &text, &len);

	if (err)
		return lib_error(resp, err, NULL);
	o = json_loadb(text, len, 0, &e);
	free(text);
	if (!json_is_object(o)) {
		json_decref(o);
		return api_error(resp, 500, NULL, "the plan is not a JSON object");
	}
	json_object_set_new(o, "applied", json_boolean(applied));
	return ok(resp, 200, o);
}

static int query_bool(const struct api_req *req, struct api_resp *resp,
		      const char *key, bool *out)
{
	const char *v = query(req, key);

	*out = false;
	if (!v)
		return 0;
	if (!*v || !strcmp(v, "1") || !strcmp(v, "true"))
		*out = true;
	else if (strcmp(v, "0") && strcmp(v, "false"))
		return api_error(resp, 400, key, "%s: '%s' is not 1, 0, true or false", key, v);
	return 0;
}

/* Parses and checks the whole document first: a refused one changes
 * nothing. Then, as `sluice apply`: a namespace without state gets none
 * when nothing changes; otherwise the writer lock is held from the diff to
 * the last change. */
static int cfg_run(struct api_req *req, struct api_resp *resp, bool apply)
{
	struct sl_config *cfg = NULL;
	struct sl_config_plan *plan = NULL;
	struct sl_ctx *ctx = NULL;
	bool dry_run = false;
	int err;

	if (apply && query_bool(req, resp, "dry_run", &dry_run))
		return resp->status;
	if (dry_run)
		apply = false;
	if (parse_doc(req, resp, &cfg))
		return resp->status;
	err = api_state_open(&ctx, 0);
	if (err && err != -ENOENT) {
		lib_error(resp, err, NULL);
		goto out;
	}
	if (err == -ENOENT || !apply) {
		err = sl_config_diff(ctx, cfg, &plan);
		if (err) {
			lib_error(resp, err, NULL);
			goto out;
		}
		if (!apply || sl_config_plan_empty(plan)) {
			reply_plan(plan, false, resp);
			goto out;
		}
		sl_config_plan_free(plan);
		plan = NULL;
	}
	if (ctx)
		ctx_close(ctx);
	ctx = NULL;
	if (open_write(&ctx, resp))
		goto out;
	err = sl_config_diff(ctx, cfg, &plan);
	if (!err && !sl_config_plan_empty(plan))
		err = sl_config_apply(ctx, plan);
	if (err)
		lib_error(resp, err, NULL);
	else
		reply_plan(plan, !sl_config_plan_empty(plan), resp);
out:
	sl_config_plan_free(plan);
	if (ctx)
		ctx_close(ctx);
	sl_config_free(cfg);
	return resp->status;
}

static int h_apply(struct api_req *req, struct api_resp *resp)
{
	return cfg_run(req, resp, true);
}

static int h_diff(struct api_req *req, struct api_resp *resp)
{
	return cfg_run(req, resp, false);
}

static int export_print(const void *ctx, FILE *f, bool json)
{
	return sl_config_export((struct sl_ctx *)ctx, f, json);
}

/* The loaded state as a document for apply: YAML, or JSON when the client
 * accepts JSON and not YAML. */
static int h_export(struct api_req *req, struct api_resp *resp)
{
	bool json = req->accept && strstr(req->accept, "json") && !strstr(req->accept, "yaml");
	struct sl_ctx *ctx = NULL;
	char *text = NULL;
	size_t len = 0;
	int err;

	if (open_read(&ctx, resp))
		return resp->status;
	err = print_to_string(export_print, ctx, json, &text, &len);
	if (ctx)
		ctx_close(ctx);
	if (err)
		return lib_error(resp, err, NULL);
	json_decref(resp->body);
	resp->body = NULL;
	resp->text = text;
	resp->text_len = len;
	resp->content_type = json ? "application/json" : "application/yaml";
	resp->status = 200;
	return 200;
}

/* ---- events: a stream of JSON lines ------------------------------------------ */

struct api_stream {
	struct sl_ctx *ctx;
	struct sl_events *ev;
	long count, seen; /* stop after count events (0: no limit) */
	bool bytes; /* with the captured bytes in hex */
	bool restore; /* sampling changed: old_sample comes back at the end */
	__u32 old_sample;
	char *buf; /* lines not yet sent: buf[off..len) */
	size_t len, off, cap;
	bool done;
	int err;
};

static int stream_append(struct api_stream *s, const char *text, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *b;

		while (cap < s->len + n)
			cap *= 2;
		b = realloc(s->buf, cap);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, text, n);
	s->len += n;
	return 0;
}

/* One event as `sluice -j events` prints it, one line. */
static int stream_event(const struct sl_event_view *v, void *arg)
{
	struct api_stream *s = arg;
	const struct sl_event *e = v->raw;
	bool ports = e->family && (e->ip_proto == 6 || e->ip_proto == 17) &&
		     (e->sport || e->dport);
	bool icmp = e->family && (e->ip_proto == 1 || e->ip_proto == 58);
	char when[64], hex[2 * SL_EVENT_SNAPLEN + 1];
	time_t sec = v->realtime_ns / 1000000000ULL;
	unsigned int cap = e->cap_len < SL_EVENT_SNAPLEN ? e->cap_len : SL_EVENT_SNAPLEN;
	struct tm tm;
	char *line;
	json_t *o;
	int err;

	if (s->count && s->seen >= s->count)
		return -ECANCELED;
	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%06lluZ",
		 (unsigned long long)(v->realtime_ns % 1000000000ULL) / 1000);
	o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:s}",
		      "time", when, "ts_ns", (json_int_t)e->ts_ns, "type", v->type,
		      "dev", v->dev, "ifindex", (json_int_t)e->ifindex, "hook", v->hook,
		      "instance", v->instance, "slot", (json_int_t)e->slot,
		      "reason", v->reason ? v->reason : "");
	if (!o)
		return -ENOMEM;
	if (e->type == SL_EVENT_PATH) { /* reason: the policy not followed */
		json_object_set_new(o, "policy", json_string(v->policy));
		json_object_set_new(o, "trace_id", json_integer(v->trace_id));
	}
	if (e->family) {
		json_object_set_new(o, "family", json_string(e->family == 4 ? "ipv4" : "ipv6"));
		json_object_set_new(o, "proto", json_string(v->proto));
		json_object_set_new(o, "src", json_string(v->src));
		if (ports)
			json_object_set_new(o, "sport", json_integer(e->sport));
		json_object_set_new(o, "dst", json_string(v->dst));
		if (ports)
			json_object_set_new(o, "dport", json_integer(e->dport));
		if (icmp) {
			json_object_set_new(o, "icmp_type", json_integer(e->icmp_type));
			json_object_set_new(o, "icmp_code", json_integer(e->icmp_code));
		}
		if (e->ip_proto == 6)
			json_object_set_new(o, "tcp_flags", json_integer(e->tcp_flags));
	}
	json_object_set_new(o, "len", json_integer(e->pkt_len));
	json_object_set_new(o, "cap_len", json_integer(e->cap_len));
	if (s->bytes) {
		for (unsigned int i = 0; i < cap; i++)
			snprintf(hex + 2 * i, 3, "%02x", e->data[i]);
		hex[2 * cap] = 0;
		json_object_set_new(o, "data", json_string(hex));
	}
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return -ENOMEM;
	err = stream_append(s, line, strlen(line));
	err = err ?: stream_append(s, "\n", 1);
	free(line);
	if (err)
		return err;
	if (s->count && ++s->seen >= s->count)
		return -ECANCELED; /* enough: the rest stays in the ring */
	return 0;
}

/* Sets drop sampling (under the writer lock); the old value in *old. */
static int set_sample(__u32 sample, __u32 *old)
{
	struct sl_ctx *ctx;
	int err = api_state_open(&ctx, SL_OPEN_WRITE);

	if (err)
		return err;
	if (old)
		err = sl_events_get_config(ctx, old);
	err = err ?: sl_events_config(ctx, sample);
	ctx_close(ctx);
	return err;
}

static int query_num(const struct api_req *req, struct api_resp *resp,
		     const char *key, long max, long *out)
{
	const char *v = query(req, key);
	char *end;

	if (!v)
		return 0;
	errno = 0;
	*out = strtol(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || *out > max)
		return api_error(resp, 400, key, "%s: '%s' is not a number from 0 to %ld",
				 key, v, max);
	return 0;
}

void api_stream_free(struct api_stream *s)
{
	if (!s)
		return;
	sl_events_close(s->ev);
	if (s->ctx)
		ctx_close(s->ctx);
	if (s->restore && set_sample(s->old_sample, NULL))
		logm(LOG_LVL_WARN, "events: cannot restore drop sampling %u: %s",
		     s->old_sample, sl_errmsg());
	free(s->buf);
	free(s);
}

/* GET /v1/events: one JSON object a line for each event as it comes, until
 * count events (if given) or the client goes away. */
static int h_events(struct api_req *req, struct api_resp *resp)
{
	struct api_stream *s;
	long sample = -1, count = 0;
	bool bytes;
	int err;

	if (query_num(req, resp, "sample", UINT32_MAX, &sample) ||
	    query_num(req, resp, "count", LONG_MAX, &count) ||
	    query_bool(req, resp, "bytes", &bytes))
		return resp->status;
	s = calloc(1, sizeof(*s));
	if (!s)
		return api_error(resp, 500, NULL, "out of memory");
	s->count = count;
	s->bytes = bytes;
	err = api_state_open(&s->ctx, 0);
	if (err == -ENOENT) {
		api_error(resp, 404, NULL, "no sluice state in this namespace: nothing reports events");
		goto fail;
	}
	if (err) {
		lib_error(resp, err, NULL);
		goto fail;
	}
	err = sl_events_open(s->ctx, stream_event, s, &s->ev);
	if (err) {
		/* -EBUSY: another reader (the CLI, another stream) has the ring. */
		lib_error(resp, err, NULL);
		goto fail;
	}
	if (sample >= 0) {
		err = set_sample(sample, &s->old_sample);
		if (err) {
			lib_error(resp, err, "sample");
			goto fail;
		}
		s->restore = true;
	}
	json_decref(resp->body);
	resp->body = NULL;
	resp->stream = s;
	resp->content_type = "application/x-ndjson";
	resp->status = 200;
	return 200;
fail:
	api_stream_free(s);
	return resp->status;
}

ssize_t api_stream_read(struct api_stream *s, int client_fd, char *buf, size_t max)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sl_events_fd(s->ev), .events = POLLIN },
			{ .fd = client_fd, .events = POLLRDHUP },
		};
		int err;

		if (s->off < s->len) {
			size_t n = s->len - s->off < max ? s->len - s->off : max;

			memcpy(buf, s->buf + s->off, n);
			s->off += n;
			if (s->off == s->len)
				s->off = s->len = 0;
			return n;
		}
		if (s->done)
			return 0;
		if (api_stopping)
			return -1;
		if (poll(pfd, client_fd >= 0 ? 2 : 1, 250) < 0 && errno != EINTR)
			return -1;
		if (client_fd >= 0 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return -1; /* the client went away */
		err = sl_events_poll(s->ev, 0);
		if (err == -ECANCELED)
			s->done = true;
		else if (err < 0) {
			logm(LOG_LVL_WARN, "events: %s", sl_errmsg());
			return -1;
		}
	}
}

void api_resp_free(struct api_resp *resp)
{
	json_decref(resp->body);
	resp->body = NULL;
	free(resp->text);
	resp->text = NULL;
	api_stream_free(resp->stream);
	resp->stream = NULL;
}

/* ---- the route table ------------------------------------------------------ */

/* The one table of routes: `sluiced --routes` prints it and
 * tests/api_routes.sh compares it with docs/api/openapi.yaml. */
static const struct route core_routes[] = {
	{ "GET", "/v1/health", h_health },
	{ "GET", "/v1/status", h_status },
	{ "POST", "/v1/reset", h_reset },
	{ "GET", "/v1/chains", h_chains_list },
	{ "GET", "/v1/chains/{dev}/{hook}", h_chain_get },
	{ "PUT", "/v1/chains/{dev}/{hook}", h_chain_put },
	{ "DELETE", "/v1/chains/{dev}/{hook}", h_chain_delete },
	{ "GET", "/v1/instances", h_instances_list },
	{ "GET", "/v1/instances/{name}", h_instance_get },
	{ "DELETE", "/v1/instances/{name}", h_instance_delete },
	{ "GET", "/v1/firewalls", h_firewalls_list },
	{ "GET", "/v1/firewalls/{name}", h_fw_get },
	{ "PUT", "/v1/firewalls/{name}", h_fw_put },
	{ "DELETE", "/v1/firewalls/{name}", h_fw_delete,
	  (const char *const[]){ "dev", "hook", NULL } },
	{ "POST", "/v1/firewalls/{name}/rules", h_fw_rule_add },
	{ "DELETE", "/v1/firewalls/{name}/rules", h_fw_rules_flush },
	{ "DELETE", "/v1/firewalls/{name}/rules/{n}", h_fw_rule_delete },
	{ "POST", "/v1/check/firewall", h_fw_check },
	{ "POST", "/v1/apply", h_apply, (const char *const[]){ "dry_run", NULL } },
	{ "POST", "/v1/diff", h_diff },
	{ "GET", "/v1/export", h_export },
	{ "GET", "/v1/events", h_events,
	  (const char *const[]){ "sample", "count", "bytes", NULL } },
	{},
};

/* Routes registered by other files with API_ROUTE (weak: there may be none). */
extern const struct api_route *const __start_sl_api_routes[] __attribute__((weak));
extern const struct api_route *const __stop_sl_api_routes[] __attribute__((weak));

/* The core table followed by the registered routes, built once. */
static const struct route *routes;
static pthread_once_t routes_once = PTHREAD_ONCE_INIT;

static void routes_build(void)
{
	size_t ncore = sizeof(core_routes) / sizeof(core_routes[0]) - 1;
	size_t next = __start_sl_api_routes ? __stop_sl_api_routes - __start_sl_api_routes : 0;
	struct route *all = calloc(ncore + next + 1, sizeof(*all));

	if (!all) {
		routes = core_routes;
		return;
	}
	memcpy(all, core_routes, ncore * sizeof(*all));
	for (size_t i = 0; i < next; i++)
		all[ncore + i] = *__start_sl_api_routes[i];
	routes = all;
}

static const struct route *route_table(void)
{
	pthread_once(&routes_once, routes_build);
	return routes;
}

void api_print_routes(void)
{
	for (const struct route *r = route_table(); r->method; r++)
		printf("%s %s\n", r->method, r->pattern);
}

static int api_error_log(const char *name, int err)
{
	logm(LOG_LVL_ERROR, "job %s: cannot start: %s", name, strerror(err));
	return -err;
}

extern const struct api_job *const __start_sl_api_jobs[] __attribute__((weak));
extern const struct api_job *const __stop_sl_api_jobs[] __attribute__((weak));
static pthread_t job_threads[32];
static size_t njobs;

int api_jobs_start(void)
{
	size_t n = __start_sl_api_jobs ? __stop_sl_api_jobs - __start_sl_api_jobs : 0;

	for (size_t i = 0; i < n && njobs < 32; i++) {
		const struct api_job *j = __start_sl_api_jobs[i];
		int err = pthread_create(&job_threads[njobs], NULL, j->fn, NULL);

		if (err)
			return api_error_log(j->name, err);
		njobs++;
	}
	return 0;
}

void api_jobs_stop(void)
{
	api_stopping = 1;
	for (size_t i = 0; i < njobs; i++)
		pthread_join(job_threads[i], NULL);
	njobs = 0;
}

/* Matches path against pattern; captures go to req->params (pointing into
 * buf, a writable copy of the path). */
static bool match(const char *pattern, char *buf, struct api_req *req)
{
	const char *p = pattern;
	char *s = buf;

	req->nparams = 0;
	while (*p && *s) {
		const char *pe;
		char *se;

		if (*p != '/' || *s != '/')
			return false;
		p++, s++;
		pe = strchrnul(p, '/');
		se = strchrnul(s, '/');
		if (*p == '{') {
			if (se == s || req->nparams >= API_PARAMS_MAX)
				return false;
			req->params[req->nparams++] = s;
		} else if ((size_t)(pe - p) != (size_t)(se - s) || strncmp(p, s, pe - p)) {
			return false;
		}
		p = pe;
		s = se;
	}
	return !*p && !*s;
}

void api_dispatch(struct api_req *req, struct api_resp *resp)
{
	const struct route *r, *found = NULL;
	size_t len = strlen(req->path), off = 0;
	char *buf = malloc(len + 1), *work = malloc(len + 1);
	bool path_known = false;

	resp->status = 0;
	resp->body = NULL;
	resp->allow[0] = 0;
	resp->text = NULL;
	resp->text_len = 0;
	resp->content_type = NULL;
	resp->stream = NULL;
	if (!buf || !work) {
		api_error(resp, 500, NULL, "out of memory");
		goto out;
	}
	memcpy(buf, req->path, len + 1);
	/* A trailing slash names the same resource. */
	if (len > 1 && buf[len - 1] == '/')
		buf[len - 1] = 0;
	for (r = route_table(); r->method; r++) {
		memcpy(work, buf, strlen(buf) + 1);
		if (!match(r->pattern, work, req))
			continue;
		path_known = true;
		off += snprintf(resp->allow + off,
				off < sizeof(resp->allow) ? sizeof(resp->allow) - off : 0,
				"%s%s", off ? ", " : "", r->method);
		if (!strcmp(r->method, req->method) && !found)
			found = r;
	}
	if (!found && !path_known) {
		api_error(resp, 404, NULL, "no resource %s", req->path);
		goto out;
	}
	if (!found) {
		api_error(resp, 405, NULL, "method %s not allowed on %s (allowed: %s)",
			  req->method, req->path, resp->allow);
		goto out;
	}
	memcpy(work, buf, strlen(buf) + 1);
	match(found->pattern, work, req);
	if (check_query(req, resp, found->query ? found->query
						: (const char *const[]){ NULL }))
		goto out;
	/* Split the captures in place. */
	for (int i = 0; i < req->nparams; i++)
		*strchrnul((char *)req->params[i], '/') = 0;
	if (!found->fn(req, resp) && !resp->status)
		api_error(resp, 500, NULL, "no answer");
	resp->allow[0] = 0;
out:
	free(buf);
	if (resp->status != 405)
		resp->allow[0] = 0;
	/* work holds the captures until here. */
	free(work);
	req->nparams = 0;
}
