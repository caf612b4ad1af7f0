// SPDX-License-Identifier: GPL-2.0
/* Declarative configuration: YAML document <-> desired state, the plan from
 * the loaded state to it, applying the plan, exporting the loaded state.
 *
 * Schema (docs/config.md):
 *   version: 1                      # optional
 *   firewalls:                      # name -> firewall; absent: none
 *     NAME:
 *       default: accept|drop        # optional, accept
 *       rules: [RULE, ...]          # rule-file lines; optional, none
 *   chains:                         # absent: none
 *     - dev: DEV
 *       hook: ingress|tc-ingress|egress   # optional, ingress
 *       instances: [NAME, ...]      # in order; [] means no chain
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <yaml.h>
#include "config.h"

#define RULE_TEXT_MAX 1024

/* ---- parsing ---------------------------------------------------------- */

struct pctx {
	yaml_document_t *doc;
	const char *name;
	unsigned char *seen; /* per node: visited (aliases would revisit) */
	size_t nnodes;
};

/* A key or value shown in a message: printable, bounded. */
static const char *shown(const char *s, size_t len, char *buf, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 4 < size; i++) {
		unsigned char c = s[i];

		buf[o++] = (c >= 0x20 && c < 0x7f) ? c : '?';
	}
	if (o + 4 >= size && len > o) {
		buf[o++] = '.';
		buf[o++] = '.';
		buf[o++] = '.';
	}
	buf[o] = '\0';
	return buf;
}

static int perr(struct pctx *c, const yaml_node_t *n, const char *path,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int perr(struct pctx *c, const yaml_node_t *n, const char *path,
		const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && *path)
		return sl_err(-EINVAL, "%s:%lu: %s: %s", c->name,
			      n ? (unsigned long)n->start_mark.line + 1 : 1UL, path, msg);
	return sl_err(-EINVAL, "%s:%lu: %s", c->name,
		      n ? (unsigned long)n->start_mark.line + 1 : 1UL, msg);
}

static yaml_node_t *get_node(struct pctx *c, int idx, const yaml_node_t *parent,
			     const char *path, int *err)
{
	yaml_node_t *n = yaml_document_get_node(c->doc, idx);

	if (!n) {
		*err = perr(c, parent, path, "missing value");
		return NULL;
	}
	if (c->seen[idx - 1]) {
		/* The document keeps no position for an alias: name its parent's. */
		*err = perr(c, parent, path, "aliases (*name) are not supported; write the value out");
		return NULL;
	}
	c->seen[idx - 1] = 1;
	return n;
}

static bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return !n->data.scalar.length || !strcmp(v, "~") || !strcmp(v, "null") ||
	       !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_SCALAR_NODE: return is_null(n) ? "nothing" : "a string";
	default: return "nothing";
	}
}

/* A scalar as a C string: no NUL inside, not null unless allowed. */
static int scalar(struct pctx *c, const yaml_node_t *n, const char *path,
		  const char *what, const char **out)
{
	if (n->type != YAML_SCALAR_NODE || is_null(n))
		return perr(c, n, path, "expected %s, found %s", what, kind(n));
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return perr(c, n, path, "NUL character in a string");
	*out = (const char *)n->data.scalar.value;
	return 0;
}

static bool name_ok(const char *s)
{
	size_t len = strlen(s);

	if (!len || len >= SL_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!(ch == '-' || ch == '_' || (ch >= '0' && ch <= '9') ||
		      (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
			return false;
	}
	return true;
}

static void join(char *out, size_t size, const char *path, const char *key)
{
	char b[48];

	shown(key, strlen(key), b, sizeof(b));
	if (*path)
		snprintf(out, size, "%s.%s", path, b);
	else
		snprintf(out, size, "%s", b);
}

/* Walks a mapping's pairs: string keys, no duplicates. cb gets each pair. */
typedef int (*pair_cb)(struct pctx *c, const char *key, yaml_node_t *knode,
		       yaml_node_t *val, const char *path, void *arg);

static int each_pair(struct pctx *c, yaml_node_t *map, const char *path,
		     pair_cb cb, void *arg)
{
	yaml_node_pair_t *p, *q;
	char vpath[256];
	int err = 0;

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = get_node(c, p->key, map, path, &err), *v;
		const char *key;

		if (!k)
			return err;
		if (k->type != YAML_SCALAR_NODE || is_null(k))
			return perr(c, k, path, "a key must be a string, found %s", kind(k));
		err = scalar(c, k, path, "a key", &key);
		if (err)
			return err;
		for (q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = yaml_document_get_node(c->doc, q->key);

			if (k2 && k2->type == YAML_SCALAR_NODE &&
			    k2->data.scalar.length == k->data.scalar.length &&
			    !memcmp(k2->data.scalar.value, k->data.scalar.value,
				    k->data.scalar.length)) {
				char b[48];

				return perr(c, k, path, "'%s' given twice (first on line %lu)",
					    shown(key, k->data.scalar.length, b, sizeof(b)),
					    (unsigned long)k2->start_mark.line + 1);
			}
		}
		join(vpath, sizeof(vpath), path, key);
		v = get_node(c, p->value, k, vpath, &err);
		if (!v)
			return err;
		err = cb(c, key, k, v, path, arg);
		if (err)
			return err;
	}
	return 0;
}

static int unknown_key(struct pctx *c, yaml_node_t *k, const char *path,
		       const char *key, const char *known)
{
	char b[48];

	return perr(c, k, path, "unknown key '%s' (%s)",
		    shown(key, strlen(key), b, sizeof(b)), known);
}


/* -- firewalls -- */

struct fw_parse {
	struct sl_config_fw *fw;
	bool has_default_key;
	yaml_node_t *rules;
};

static int fw_pair(struct pctx *c, const char *key, yaml_node_t *k,
		   yaml_node_t *v, const char *path, void *arg)
{
	struct fw_parse *fp = arg;
	char sub[256];
	const char *s;
	int err;

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "default")) {
		err = scalar(c, v, sub, "accept or drop", &s);
		if (err)
			return err;
		if (!strcmp(s, "accept"))
			fp->fw->rs.default_action = FW_ACCEPT;
		else if (!strcmp(s, "drop"))
			fp->fw->rs.default_action = FW_DROP;
		else {
			char b[48];

			return perr(c, v, sub, "'%s' is not accept or drop",
				    shown(s, strlen(s), b, sizeof(b)));
		}
		fp->has_default_key = true;
		fp->fw->rs.has_default = true;
		return 0;
	}
	if (!strcmp(key, "rules")) {
		if (v->type != YAML_SEQUENCE_NODE && !is_null(v))
			return perr(c, v, sub, "expected a list of rules, found %s", kind(v));
		fp->rules = v;
		return 0;
	}
	return unknown_key(c, k, path, key, "default, rules");
}

/* Reads the rules after the keys, so a "default" line in the list can be
 * checked against the "default" key wherever either is. */
static int fw_rules(struct pctx *c, struct fw_parse *fp, const char *path)
{
	yaml_node_item_t *it;
	yaml_node_t *seq = fp->rules;
	bool line_default = false;
	char sub[256], rpath[300];
	int err = 0;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return 0;
	join(sub, sizeof(sub), path, "rules");
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *n;
		struct fw_rule rule;
		const char *text;

		snprintf(rpath, sizeof(rpath), "%s[%ld]", sub,
			 (long)(it - seq->data.sequence.items.start));
		n = get_node(c, *it, seq, rpath, &err);
		if (!n)
			return err;
		err = scalar(c, n, rpath, "a rule (a rule-file line)", &text);
		if (err)
			return err;
		if (strchr(text, '\n'))
			return perr(c, n, rpath, "a rule is one line");
		while (*text == ' ' || *text == '\t')
			text++;
		if (!strncmp(text, "default", 7) && (!text[7] || text[7] == ' ' || text[7] == '\t')) {
			const char *a = text + 7;
			char word[16];

			while (*a == ' ' || *a == '\t')
				a++;
			snprintf(word, sizeof(word), "%s", a);
			for (char *e = word + strlen(word); e > word && (e[-1] == ' ' || e[-1] == '\t');)
				*--e = '\0';
			if (fp->has_default_key || line_default)
				return perr(c, n, rpath, "a second default (the 'default' key or line)");
			if (!strcmp(word, "accept"))
				fp->fw->rs.default_action = FW_ACCEPT;
			else if (!strcmp(word, "drop"))
				fp->fw->rs.default_action = FW_DROP;
			else
				return perr(c, n, rpath, "default: not accept or drop");
			fp->fw->rs.has_default = true;
			line_default = true;
			continue;
		}
		err = fw_rule_parse(text, &rule);
		if (!err)
			err = fw_ruleset_add(&fp->fw->rs, &rule, fp->fw->rs.n);
		if (err) {
			char msg[300];

			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return perr(c, n, rpath, "%s", msg);
		}
	}
	return 0;
}

static int fws_pair(struct pctx *c, const char *key, yaml_node_t *k,
		    yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config *cfg = arg;
	struct fw_parse fp = {};
	struct sl_config_fw *fw;
	char sub[256];
	int err;

	join(sub, sizeof(sub), path, key);
	if (!name_ok(key)) {
		char b[48];

		return perr(c, k, path, "bad firewall name '%s': 1 to %d letters, digits, '-' or '_'",
			    shown(key, strlen(key), b, sizeof(b)), SL_NAME_MAX - 1);
	}
	if (cfg->nfws >= SL_MAX_SLOTS - 1)
		return perr(c, k, path, "more than %d instances", SL_MAX_SLOTS - 1);
	if (v->type != YAML_MAPPING_NODE && !is_null(v))
		return perr(c, v, sub, "expected a mapping (default, rules), found %s", kind(v));
	fw = realloc(cfg->fws, (cfg->nfws + 1) * sizeof(*fw));
	if (!fw)
		return sl_err(-ENOMEM, "out of memory");
	cfg->fws = fw;
	fw = &cfg->fws[cfg->nfws++];
	memset(fw, 0, sizeof(*fw));
	snprintf(fw->name, sizeof(fw->name), "%s", key);
	fw->rs.default_action = FW_ACCEPT;
	fw->line = k->start_mark.line + 1;
	fp.fw = fw;
	if (v->type != YAML_MAPPING_NODE)
		return 0;
	err = each_pair(c, v, sub, fw_pair, &fp);
	return err ?: fw_rules(c, &fp, sub);
}

/* -- other NF types: conntrack, flowmon, router, httpmon -- */

#define NSEC 1000000000ULL
#define CT_SIZE_MIN 1024u
#define CT_SIZE_MAX (1u << 24)
#define CT_GC_MIN 10u
#define CT_GC_MAX (3600u * 1000)

/* A decimal number from min to max. */
static int get_u32(struct pctx *c, yaml_node_t *v, const char *path, __u32 min,
		   __u32 max, __u32 *out)
{
	unsigned long long x;
	const char *s;
	char *end, b[48];
	int err = scalar(c, v, path, "a number", &s);

	if (err)
		return err;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || x < min || x > max)
		return perr(c, v, path, "'%s': need a number from %u to %u",
			    shown(s, strlen(s), b, sizeof(b)), min, max);
	*out = x;
	return 0;
}

static int get_bool(struct pctx *c, yaml_node_t *v, const char *path, bool *out)
{
	const char *s;
	char b[48];
	int err = scalar(c, v, path, "true or false", &s);

	if (err)
		return err;
	if (strcmp(s, "true") && strcmp(s, "false"))
		return perr(c, v, path, "'%s' is not true or false",
			    shown(s, strlen(s), b, sizeof(b)));
	*out = !strcmp(s, "true");
	return 0;
}

/* A list of scalars, each given to add (a libsluice parser) as text. */
static int get_list(struct pctx *c, yaml_node_t *v, const char *path, const char *what,
		    int (*add)(struct httpmon_opts *o, const char *text),
		    struct httpmon_opts *o)
{
	yaml_node_item_t *it;
	char ipath[300], msg[300];
	int err = 0;

	if (v->type != YAML_SEQUENCE_NODE)
		return perr(c, v, path, "expected a list of %s, found %s", what, kind(v));
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *n;
		const char *s;

		snprintf(ipath, sizeof(ipath), "%s[%ld]", path,
			 (long)(it - v->data.sequence.items.start));
		n = get_node(c, *it, v, ipath, &err);
		if (!n)
			return err;
		err = scalar(c, n, ipath, what, &s);
		if (err)
			return err;
		if (add(o, s)) {
			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return perr(c, n, ipath, "%s", msg);
		}
	}
	return 0;
}

static int ct_timeouts_pair(struct pctx *c, const char *key, yaml_node_t *k,
			    yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config_nf *nf = arg;
	char sub[256], text[96], msg[400];
	const char *s;
	int err;

	join(sub, sizeof(sub), path, key);
	err = scalar(c, v, sub, "seconds", &s);
	if (err)
		return err;
	snprintf(text, sizeof(text), "%.40s=%.40s", key, s);
	if (ct_timeout_parse(text, &nf->ct.cfg)) {
		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		return perr(c, v, sub, "%s", msg);
	}
	return 0;
}

static int ct_pair(struct pctx *c, const char *key, yaml_node_t *k,
		   yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config_nf *nf = arg;
	struct ct_config *cfg = &nf->ct.cfg;
	char sub[256], b[48];
	const char *s;
	bool on = false;
	int err;

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "size"))
		return get_u32(c, v, sub, CT_SIZE_MIN, CT_SIZE_MAX, &nf->ct.max_entries);
	if (!strcmp(key, "gc_interval_ms"))
		return get_u32(c, v, sub, CT_GC_MIN, CT_GC_MAX, &cfg->gc_interval_ms);
	if (!strcmp(key, "tcp")) {
		err = scalar(c, v, sub, "loose or strict", &s);
		if (err)
			return err;
		if (!strcmp(s, "loose"))
			cfg->flags |= CT_CFG_LOOSE;
		else if (!strcmp(s, "strict"))
			cfg->flags &= ~CT_CFG_LOOSE;
		else
			return perr(c, v, sub, "'%s' is not loose or strict",
				    shown(s, strlen(s), b, sizeof(b)));
		return 0;
	}
	if (!strcmp(key, "drop_invalid")) {
		err = get_bool(c, v, sub, &on);
		if (err)
			return err;
		cfg->flags = on ? cfg->flags | CT_CFG_DROP_INVALID : cfg->flags & ~CT_CFG_DROP_INVALID;
		return 0;
	}
	if (!strcmp(key, "timeouts")) {
		if (is_null(v))
			return 0;
		if (v->type != YAML_MAPPING_NODE)
			return perr(c, v, sub, "expected a mapping of timeout names to seconds, found %s",
				    kind(v));
		return each_pair(c, v, sub, ct_timeouts_pair, nf);
	}
	return unknown_key(c, k, path, key, "size, tcp, drop_invalid, gc_interval_ms, timeouts");
}

static int fm_pair(struct pctx *c, const char *key, yaml_node_t *k,
		   yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config_nf *nf = arg;
	char sub[256];

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "max_flows"))
		return get_u32(c, v, sub, FM_FLOWS_MIN, FM_FLOWS_MAX, &nf->max_flows);
	return unknown_key(c, k, path, key, "max_flows");
}

static int rt_pair(struct pctx *c, const char *key, yaml_node_t *k,
		   yaml_node_t *v, const char *path, void *arg)
{
	return unknown_key(c, k, path, key, "a router has no settings: write {}");
}

static int http_port_add(struct httpmon_opts *o, const char *text)
{
	return httpmon_opts_add_port(o, text);
}

static int http_route_add(struct httpmon_opts *o, const char *text)
{
	return httpmon_opts_add_route(o, text);
}

static int http_pair(struct pctx *c, const char *key, yaml_node_t *k,
		     yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config_nf *nf = arg;
	char sub[256];

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "ports"))
		return get_list(c, v, sub, "ports", http_port_add, &nf->http);
	if (!strcmp(key, "routes"))
		return is_null(v) ? 0 : get_list(c, v, sub, "routes (/PREFIX*)", http_route_add,
						  &nf->http);
	if (!strcmp(key, "max_templates"))
		return get_u32(c, v, sub, 1, HTTP_TMPL_MAX, &nf->http.max_templates);
	return unknown_key(c, k, path, key, "ports, routes, max_templates");
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const __u16 *)a - (int)*(const __u16 *)b;
}

static int cmp_route(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* One order for ports and routes (the kernel keeps routes by length), so
 * the document and the loaded state compare and export the same. */
static void http_normalize(struct httpmon_opts *o)
{
	qsort(o->ports, o->nports, sizeof(o->ports[0]), cmp_u16);
	qsort(o->routes, o->nroutes, sizeof(o->routes[0]), cmp_route);
	if (!o->max_templates)
		o->max_templates = HTTP_TMPL_DEFAULT;
}

/* -- lb: load balancers (services, backends, switches) -- */

static bool is_prime(__u32 n)
{
	if (n < 2)
		return false;
	for (__u32 d = 2; d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

/* "tcp 10.0.0.1:80", as plans and messages name a service. */
static void svc_text(const struct lb_service_key *k, char *buf, size_t len)
{
	char ep[64];

	lb_format_endpoint(k->family, k->addr, k->port, ep, sizeof(ep));
	snprintf(buf, len, "%s %s", k->proto == IPPROTO_UDP ? "udp" : "tcp", ep);
}

static const char *const lb_methods[] = { [LB_FWD_NAT] = "nat", [LB_FWD_IPIP] = "ipip",
					   [LB_FWD_MAC] = "mac" };

struct be_parse {
	struct lb_backend_info *b;
	yaml_node_t *addr;
};

static int lb_backend_pair(struct pctx *c, const char *key, yaml_node_t *k,
			   yaml_node_t *v, const char *path, void *arg)
{
	struct be_parse *bp = arg;
	char sub[256], b[48], msg[300];
	const char *s;
	int err;

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "address")) {
		err = scalar(c, v, sub, "ADDR[:PORT] or [ADDR6]:PORT", &s);
		if (err)
			return err;
		if (lb_parse_endpoint(s, false, &bp->b->addr.family, bp->b->addr.addr,
				      &bp->b->addr.port)) {
			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return perr(c, v, sub, "%s", msg);
		}
		bp->addr = v;
		return 0;
	}
	if (!strcmp(key, "method")) {
		err = scalar(c, v, sub, "nat, ipip or mac", &s);
		if (err)
			return err;
		for (__u8 i = 0; i < 3; i++) {
			if (!strcmp(s, lb_methods[i])) {
				bp->b->conf.fwd = i;
				return 0;
			}
		}
		return perr(c, v, sub, "'%s' is not nat, ipip or mac",
			    shown(s, strlen(s), b, sizeof(b)));
	}
	if (!strcmp(key, "weight"))
		return get_u32(c, v, sub, 0, 65535, &bp->b->conf.weight);
	return unknown_key(c, k, path, key, "address, method, weight");
}

struct svc_parse {
	struct lb_service_info *s;
	yaml_node_t *proto, *vip, *mh, *backends;
};

static int lb_service_pair(struct pctx *c, const char *key, yaml_node_t *k,
			   yaml_node_t *v, const char *path, void *arg)
{
	struct svc_parse *sp = arg;
	char sub[256], b[48], msg[300];
	const char *s;
	int err;

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "proto")) {
		err = scalar(c, v, sub, "tcp or udp", &s);
		if (err)
			return err;
		if (strcmp(s, "tcp") && strcmp(s, "udp"))
			return perr(c, v, sub, "'%s' is not tcp or udp",
				    shown(s, strlen(s), b, sizeof(b)));
		sp->s->key.proto = !strcmp(s, "tcp") ? IPPROTO_TCP : IPPROTO_UDP;
		sp->proto = v;
		return 0;
	}
	if (!strcmp(key, "vip")) {
		err = scalar(c, v, sub, "VIP:PORT or [VIP6]:PORT", &s);
		if (err)
			return err;
		if (lb_parse_endpoint(s, true, &sp->s->key.family, sp->s->key.addr,
				      &sp->s->key.port)) {
			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return perr(c, v, sub, "%s", msg);
		}
		sp->vip = v;
		return 0;
	}
	if (!strcmp(key, "scheduler")) {
		err = scalar(c, v, sub, "mh, rr or wrr", &s);
		if (err)
			return err;
		if (lb_sched_parse(s, &sp->s->conf.sched)) {
			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return perr(c, v, sub, "%s", msg);
		}
		return 0;
	}
	if (!strcmp(key, "mh_size")) {
		err = get_u32(c, v, sub, 7, LB_MH_MAX, &sp->s->conf.mh_size);
		if (err)
			return err;
		if (!is_prime(sp->s->conf.mh_size))
			return perr(c, v, sub, "%u is not a prime (Maglev's table size must be one)",
				    sp->s->conf.mh_size);
		sp->mh = v;
		return 0;
	}
	if (!strcmp(key, "backends")) {
		if (v->type != YAML_SEQUENCE_NODE && !is_null(v))
			return perr(c, v, sub, "expected a list of backends, found %s", kind(v));
		sp->backends = v;
		return 0;
	}
	return unknown_key(c, k, path, key, "proto, vip, scheduler, mh_size, backends");
}

static bool same_be_addr(const struct lb_backend_addr *a, const struct lb_backend_addr *b)
{
	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

static bool same_svc_key(const struct lb_service_key *a, const struct lb_service_key *b)
{
	return a->family == b->family && a->proto == b->proto && a->port == b->port &&
	       !memcmp(a->addr, b->addr, 16);
}

static int lb_backend_item(struct pctx *c, struct lb_service_info *s, yaml_node_t *n,
			   const char *path, unsigned int *lines)
{
	struct lb_backend_info *b = &s->backends[s->nbackends];
	struct be_parse bp = { .b = b };
	char sub[300], ep[64];
	int err;

	if (n->type != YAML_MAPPING_NODE)
		return perr(c, n, path, "expected a mapping (address, method, weight), found %s",
			    kind(n));
	memset(b, 0, sizeof(*b));
	b->conf.fwd = LB_FWD_MAC; /* as ipvsadm -a */
	b->conf.weight = 1;
	b->up = true;
	err = each_pair(c, n, path, lb_backend_pair, &bp);
	if (err)
		return err;
	if (!bp.addr)
		return perr(c, n, path, "missing key 'address'");
	join(sub, sizeof(sub), path, "address");
	if (!b->addr.port)
		b->addr.port = s->key.port;
	lb_format_endpoint(b->addr.family, b->addr.addr, b->addr.port, ep, sizeof(ep));
	if (b->addr.family != s->key.family)
		return perr(c, bp.addr, sub, "%s is IPv%u, the service IPv%u", ep,
			    b->addr.family, s->key.family);
	if (b->conf.fwd != LB_FWD_NAT && b->addr.port != s->key.port)
		return perr(c, bp.addr, sub, "method %s (direct server return) keeps the service's port %u",
			    lb_methods[b->conf.fwd], s->key.port);
	for (__u32 j = 0; j < s->nbackends; j++)
		if (same_be_addr(&s->backends[j].addr, &b->addr))
			return perr(c, bp.addr, sub, "backend %s given twice (first on line %u)",
				    ep, lines[j]);
	lines[s->nbackends++] = n->start_mark.line + 1;
	return 0;
}

static int lb_service_item(struct pctx *c, struct sl_config_lb *lb, yaml_node_t *n,
			   const char *path, unsigned int *svc_lines, __u32 *nbackends)
{
	struct lb_service_info *s = &lb->conf.svcs[lb->conf.n];
	struct svc_parse sp = { .s = s };
	yaml_node_item_t *it;
	unsigned int *lines = NULL;
	char sub[256], ipath[300], name[80];
	int err = 0;

	if (n->type != YAML_MAPPING_NODE)
		return perr(c, n, path, "expected a mapping (proto, vip, scheduler, mh_size, backends), found %s",
			    kind(n));
	memset(s, 0, sizeof(*s));
	s->conf.sched = LB_SCHED_MH;
	lb->conf.n++; /* freed with the configuration from here on */
	err = each_pair(c, n, path, lb_service_pair, &sp);
	if (err)
		return err;
	if (!sp.proto)
		return perr(c, n, path, "missing key 'proto' (tcp or udp)");
	if (!sp.vip)
		return perr(c, n, path, "missing key 'vip' (VIP:PORT)");
	if (sp.mh && s->conf.sched != LB_SCHED_MH) {
		join(sub, sizeof(sub), path, "mh_size");
		return perr(c, sp.mh, sub, "only the mh scheduler has a table size");
	}
	if (s->conf.sched == LB_SCHED_MH && !s->conf.mh_size)
		s->conf.mh_size = LB_MH_DEFAULT;
	svc_text(&s->key, name, sizeof(name));
	for (__u32 j = 0; j + 1 < lb->conf.n; j++)
		if (same_svc_key(&lb->conf.svcs[j].key, &s->key)) {
			join(sub, sizeof(sub), path, "vip");
			return perr(c, sp.vip, sub, "service %s given twice (first on line %u)",
				    name, svc_lines[j]);
		}
	svc_lines[lb->conf.n - 1] = n->start_mark.line + 1;
	if (!sp.backends || sp.backends->type != YAML_SEQUENCE_NODE)
		return 0;
	join(sub, sizeof(sub), path, "backends");
	{
		size_t cnt = sp.backends->data.sequence.items.top -
			     sp.backends->data.sequence.items.start;

		s->backends = calloc(cnt + 1, sizeof(*s->backends));
		lines = calloc(cnt + 1, sizeof(*lines));
		if (!s->backends || !lines) {
			free(lines);
			return sl_err(-ENOMEM, "out of memory");
		}
	}
	for (it = sp.backends->data.sequence.items.start;
	     it < sp.backends->data.sequence.items.top && !err; it++) {
		yaml_node_t *bn;

		snprintf(ipath, sizeof(ipath), "%s[%ld]", sub,
			 (long)(it - sp.backends->data.sequence.items.start));
		bn = get_node(c, *it, sp.backends, ipath, &err);
		if (!bn)
			break;
		err = lb_backend_item(c, s, bn, ipath, lines);
		if (!err && ++*nbackends >= LB_MAX_BACKENDS / 2)
			err = perr(c, bn, ipath, "more than %d backends", LB_MAX_BACKENDS / 2 - 1);
	}
	free(lines);
	if (!err && s->conf.sched == LB_SCHED_MH && s->nbackends > s->conf.mh_size / 10 + 1)
		err = perr(c, n, path, "%u backends need a Maglev table (mh_size) of at least %u",
			   s->nbackends, s->nbackends * 10);
	return err;
}

static int cmp_lb_svc(const void *a, const void *b)
{
	const struct lb_service_key *x = &((const struct lb_service_info *)a)->key;
	const struct lb_service_key *y = &((const struct lb_service_info *)b)->key;

	if (x->proto != y->proto)
		return x->proto - y->proto;
	if (x->family != y->family)
		return x->family - y->family;
	if (memcmp(x->addr, y->addr, 16))
		return memcmp(x->addr, y->addr, 16);
	return (int)x->port - (int)y->port;
}

static int cmp_lb_be(const void *a, const void *b)
{
	const struct lb_backend_addr *x = &((const struct lb_backend_info *)a)->addr;
	const struct lb_backend_addr *y = &((const struct lb_backend_info *)b)->addr;

	if (x->family != y->family)
		return x->family - y->family;
	if (memcmp(x->addr, y->addr, 16))
		return memcmp(x->addr, y->addr, 16);
	return (int)x->port - (int)y->port;
}

/* One order and one form, so the document and the loaded state compare
 * and export the same: the table size only where the scheduler uses it. */
static void lb_normalize(struct lb_conf *conf)
{
	if (conf->n > 1)
		qsort(conf->svcs, conf->n, sizeof(*conf->svcs), cmp_lb_svc);
	for (__u32 i = 0; i < conf->n; i++) {
		struct lb_service_info *s = &conf->svcs[i];

		if (s->conf.sched != LB_SCHED_MH)
			s->conf.mh_size = 0;
		else if (!s->conf.mh_size)
			s->conf.mh_size = LB_MH_DEFAULT;
		if (s->nbackends > 1)
			qsort(s->backends, s->nbackends, sizeof(*s->backends), cmp_lb_be);
	}
}

static int lb_services(struct pctx *c, struct sl_config_lb *lb, yaml_node_t *v,
		       const char *path)
{
	size_t cnt = v->data.sequence.items.top - v->data.sequence.items.start;
	unsigned int *lines;
	yaml_node_item_t *it;
	char ipath[300];
	__u32 nbackends = 0;
	int err = 0;

	if (cnt >= LB_MAX_SERVICES)
		return perr(c, v, path, "more than %d services", LB_MAX_SERVICES - 1);
	lb->conf.svcs = calloc(cnt + 1, sizeof(*lb->conf.svcs));
	lines = calloc(cnt + 1, sizeof(*lines));
	if (!lb->conf.svcs || !lines) {
		free(lines);
		return sl_err(-ENOMEM, "out of memory");
	}
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top && !err; it++) {
		yaml_node_t *n;

		snprintf(ipath, sizeof(ipath), "%s[%ld]", path,
			 (long)(it - v->data.sequence.items.start));
		n = get_node(c, *it, v, ipath, &err);
		if (!n)
			break;
		err = lb_service_item(c, lb, n, ipath, lines, &nbackends);
	}
	free(lines);
	return err;
}

static int lb_pair(struct pctx *c, const char *key, yaml_node_t *k,
		   yaml_node_t *v, const char *path, void *arg)
{
	struct sl_config_nf *nf = arg;
	char sub[256];

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "forward"))
		return get_bool(c, v, sub, &nf->lb->forward);
	if (!strcmp(key, "decap"))
		return get_bool(c, v, sub, &nf->lb->decap);
	if (!strcmp(key, "services")) {
		if (is_null(v))
			return 0;
		if (v->type != YAML_SEQUENCE_NODE)
			return perr(c, v, sub, "expected a list of services, found %s", kind(v));
		return lb_services(c, nf->lb, v, sub);
	}
	return unknown_key(c, k, path, key, "forward, decap, services");
}

/* -- nat: its one instance (NAT_INSTANCE) and the rules, in order -- */

#define NAT_RULE_WORDS 64

/* A rule as `sluice nat add` takes it: NAME KIND [--option VALUE]... */
static int nat_rule_item(struct pctx *c, yaml_node_t *n, const char *path,
			 struct nat_specs *specs, unsigned int *lines)
{
	char buf[SL_NAME_MAX + NAT_TEXT_MAX + 64], msg[400], b[48];
	char *words[NAT_RULE_WORDS], *save = NULL, *w;
	const char *text;
	int nw = 0, err;

	err = scalar(c, n, path, "a rule (NAME KIND [--option VALUE]...)", &text);
	if (err)
		return err;
	if (strchr(text, '\n'))
		return perr(c, n, path, "a rule is one line");
	if (strlen(text) >= sizeof(buf))
		return perr(c, n, path, "longer than %zu characters", sizeof(buf) - 1);
	strcpy(buf, text);
	for (w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (nw == NAT_RULE_WORDS)
			return perr(c, n, path, "more than %d words", NAT_RULE_WORDS);
		words[nw++] = w;
	}
	if (nw < 2)
		return perr(c, n, path, "expected NAME KIND [--option VALUE]... (as sluice nat add takes it)");
	if (specs->n >= NAT_MAX_SPECS)
		return perr(c, n, path, "more than %d nat rules", NAT_MAX_SPECS);
	for (__u32 i = 0; i < specs->n; i++)
		if (!strcmp(specs->spec[i].name, words[0]))
			return perr(c, n, path, "nat rule '%s' given twice (first on line %u)",
				    shown(words[0], strlen(words[0]), b, sizeof(b)), lines[i]);
	if (nat_spec_make(&specs->spec[specs->n], words[0], nw - 1, words + 1)) {
		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		return perr(c, n, path, "%s", msg);
	}
	lines[specs->n++] = n->start_mark.line + 1;
	return 0;
}

struct nat_parse {
	struct sl_config_nf *nf;
	unsigned int *lines;
};

static int nat_pair(struct pctx *c, const char *key, yaml_node_t *k,
		    yaml_node_t *v, const char *path, void *arg)
{
	struct nat_parse *np = arg;
	yaml_node_item_t *it;
	char sub[256], ipath[300];
	int err = 0;

	join(sub, sizeof(sub), path, key);
	if (strcmp(key, "rules"))
		return unknown_key(c, k, path, key, "rules");
	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return perr(c, v, sub, "expected a list of rules (NAME KIND [--option VALUE]...), found %s",
			    kind(v));
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
		yaml_node_t *n;

		snprintf(ipath, sizeof(ipath), "%s[%ld]", sub,
			 (long)(it - v->data.sequence.items.start));
		n = get_node(c, *it, v, ipath, &err);
		if (!n)
			return err;
		err = nat_rule_item(c, n, ipath, np->nf->nat, np->lines);
		if (err)
			return err;
	}
	return 0;
}

/* The sections by type, in the order documents and exports write them. */
static const struct nf_section {
	const char *key; /* the top-level key */
	const char *type;
	const char *fields; /* for messages */
	pair_cb pair;
} nf_sections[] = {
	{ "conntrack", CT_TYPE, "size, tcp, drop_invalid, gc_interval_ms, timeouts", ct_pair },
	{ "flowmon", FM_TYPE, "max_flows", fm_pair },
	{ "router", RT_TYPE, "no settings", rt_pair },
	{ "httpmon", HTTPMON_TYPE, "ports, routes, max_templates", http_pair },
	{ "lb", LB_TYPE, "forward, decap, services", lb_pair },
};
#define NF_SECTIONS (sizeof(nf_sections) / sizeof(nf_sections[0]))

/* Frees what an instance of another type points to (nat, lb). */
static void nf_release(struct sl_config_nf *nf)
{
	free(nf->nat);
	nf->nat = NULL;
	if (nf->lb)
		lb_conf_free(&nf->lb->conf);
	free(nf->lb);
	nf->lb = NULL;
}

/* Defaults, as the NF's own create command gives them; nat and lb get
 * their (empty) rules and services. */
static int nf_defaults(struct sl_config_nf *nf, const char *type)
{
	memset(nf, 0, sizeof(*nf));
	snprintf(nf->type, sizeof(nf->type), "%s", type);
	ct_config_default(&nf->ct.cfg);
	nf->ct.max_entries = CT_DEFAULT_MAX;
	nf->ct.cfg_set = true;
	nf->max_flows = FM_FLOWS_DEFAULT;
	nf->http.max_templates = HTTP_TMPL_DEFAULT;
	if (strcmp(type, CT_TYPE))
		memset(&nf->ct, 0, sizeof(nf->ct));
	if (strcmp(type, FM_TYPE))
		nf->max_flows = 0;
	if (strcmp(type, HTTPMON_TYPE))
		nf->http.max_templates = 0;
	if (!strcmp(type, NAT_TYPE))
		nf->nat = calloc(1, sizeof(*nf->nat));
	if (!strcmp(type, LB_TYPE))
		nf->lb = calloc(1, sizeof(*nf->lb));
	if ((!strcmp(type, NAT_TYPE) && !nf->nat) || (!strcmp(type, LB_TYPE) && !nf->lb))
		return sl_err(-ENOMEM, "out of memory");
	return 0;
}

struct nfs_parse {
	struct sl_config *cfg;
	const struct nf_section *sec;
};

static int nfs_pair(struct pctx *c, const char *key, yaml_node_t *k,
		    yaml_node_t *v, const char *path, void *arg)
{
	struct nfs_parse *np = arg;
	struct sl_config *cfg = np->cfg;
	struct sl_config_nf *nf;
	char sub[256], b[48];
	int err;

	join(sub, sizeof(sub), path, key);
	if (!name_ok(key))
		return perr(c, k, path, "bad %s name '%s': 1 to %d letters, digits, '-' or '_'",
			    np->sec->type, shown(key, strlen(key), b, sizeof(b)), SL_NAME_MAX - 1);
	if (cfg->nfws + cfg->nnfs >= SL_MAX_SLOTS - 1)
		return perr(c, k, path, "more than %d instances", SL_MAX_SLOTS - 1);
	if (v->type != YAML_MAPPING_NODE && !is_null(v))
		return perr(c, v, sub, "expected a mapping (%s), found %s", np->sec->fields, kind(v));
	nf = realloc(cfg->nfs, (cfg->nnfs + 1) * sizeof(*nf));
	if (!nf)
		return sl_err(-ENOMEM, "out of memory");
	cfg->nfs = nf;
	nf = &cfg->nfs[cfg->nnfs++];
	err = nf_defaults(nf, np->sec->type);
	if (err)
		return err;
	snprintf(nf->name, sizeof(nf->name), "%s", key);
	nf->line = k->start_mark.line + 1;
	if (v->type == YAML_MAPPING_NODE) {
		err = each_pair(c, v, sub, np->sec->pair, nf);
		if (err)
			return err;
	}
	if (!strcmp(nf->type, HTTPMON_TYPE)) {
		if (!nf->http.nports)
			return perr(c, v, sub, "missing key 'ports' (an httpmon watches 1 to %d ports)",
				    HTTP_MAX_PORTS);
		http_normalize(&nf->http);
	}
	if (nf->lb)
		lb_normalize(&nf->lb->conf);
	return 0;
}

/* The nat section: the NAT instance itself (nat: {} has no rules; no
 * section, no instance). */
static int nat_section(struct pctx *c, struct sl_config *cfg, yaml_node_t *k,
		       yaml_node_t *v, unsigned int *lines)
{
	struct sl_config_nf *nf;
	struct nat_parse np = { .lines = lines };

	if (cfg->nfws + cfg->nnfs >= SL_MAX_SLOTS - 1)
		return perr(c, v, "nat", "more than %d instances", SL_MAX_SLOTS - 1);
	nf = realloc(cfg->nfs, (cfg->nnfs + 1) * sizeof(*nf));
	if (!nf)
		return sl_err(-ENOMEM, "out of memory");
	cfg->nfs = nf;
	nf = &cfg->nfs[cfg->nnfs++];
	if (nf_defaults(nf, NAT_TYPE))
		return -ENOMEM;
	snprintf(nf->name, sizeof(nf->name), "%s", NAT_INSTANCE);
	nf->line = k->start_mark.line + 1;
	np.nf = nf;
	return v->type == YAML_MAPPING_NODE ? each_pair(c, v, "nat", nat_pair, &np) : 0;
}

/* -- chains -- */

struct chain_parse {
	struct sl_config_chain *ch;
	yaml_node_t *dev, *insts;
};

static int chain_pair(struct pctx *c, const char *key, yaml_node_t *k,
		      yaml_node_t *v, const char *path, void *arg)
{
	struct chain_parse *cp = arg;
	char sub[256], b[48];
	const char *s;
	int err;

	join(sub, sizeof(sub), path, key);
	if (!strcmp(key, "dev")) {
		err = scalar(c, v, sub, "an interface name", &s);
		if (err)
			return err;
		if (strlen(s) >= IF_NAMESIZE || strchr(s, '/'))
			return perr(c, v, sub, "'%s' is not an interface name",
				    shown(s, strlen(s), b, sizeof(b)));
		snprintf(cp->ch->dev, sizeof(cp->ch->dev), "%s", s);
		cp->dev = v;
		return 0;
	}
	if (!strcmp(key, "hook")) {
		err = scalar(c, v, sub, "a hook", &s);
		if (err)
			return err;
		for (int h = 0; h < SL_HOOK_MAX; h++) {
			if (!strcmp(s, sl_hook_name(h))) {
				cp->ch->hook = h;
				return 0;
			}
		}
		return perr(c, v, sub, "unknown hook '%s' (ingress, tc-ingress, egress)",
			    shown(s, strlen(s), b, sizeof(b)));
	}
	if (!strcmp(key, "instances")) {
		if (v->type != YAML_SEQUENCE_NODE && !is_null(v))
			return perr(c, v, sub, "expected a list of instance names, found %s",
				    kind(v));
		cp->insts = v;
		return 0;
	}
	return unknown_key(c, k, path, key, "dev, hook, instances");
}

static const struct sl_config_fw *find_fw(const struct sl_config *cfg, const char *name)
{
	for (__u32 i = 0; i < cfg->nfws; i++)
		if (!strcmp(cfg->fws[i].name, name))
			return &cfg->fws[i];
	return NULL;
}

static const struct sl_config_nf *find_nf(const struct sl_config *cfg, const char *name)
{
	for (__u32 i = 0; i < cfg->nnfs; i++)
		if (!strcmp(cfg->nfs[i].name, name))
			return &cfg->nfs[i];
	return NULL;
}

static int chain_item(struct pctx *c, struct sl_config *cfg, yaml_node_t *n,
		      const char *path)
{
	struct chain_parse cp = {};
	struct sl_config_chain *ch;
	yaml_node_item_t *it;
	char sub[256], ipath[300], b[48];
	int err, idx;

	if (n->type != YAML_MAPPING_NODE)
		return perr(c, n, path, "expected a mapping (dev, hook, instances), found %s",
			    kind(n));
	ch = realloc(cfg->chains, (cfg->nchains + 1) * sizeof(*ch));
	if (!ch)
		return sl_err(-ENOMEM, "out of memory");
	cfg->chains = ch;
	ch = &cfg->chains[cfg->nchains++];
	memset(ch, 0, sizeof(*ch));
	ch->hook = SL_HOOK_XDP;
	ch->line = n->start_mark.line + 1;
	cp.ch = ch;
	err = each_pair(c, n, path, chain_pair, &cp);
	if (err)
		return err;
	join(sub, sizeof(sub), path, "dev");
	if (!cp.dev)
		return perr(c, n, path, "missing key 'dev'");
	idx = if_nametoindex(ch->dev);
	if (!idx)
		return perr(c, cp.dev, sub, "no interface '%s'",
			    shown(ch->dev, strlen(ch->dev), b, sizeof(b)));
	ch->ifindex = idx;
	for (struct sl_config_chain *o = cfg->chains; o < ch; o++)
		if (o->ifindex == ch->ifindex && o->hook == ch->hook)
			return perr(c, n, path, "a second chain for %s %s (first on line %u)",
				    ch->dev, sl_hook_name(ch->hook), o->line);
	join(sub, sizeof(sub), path, "instances");
	if (!cp.insts)
		return perr(c, n, path, "missing key 'instances' (write [] for no chain)");
	if (cp.insts->type != YAML_SEQUENCE_NODE)
		return 0;
	for (it = cp.insts->data.sequence.items.start; it < cp.insts->data.sequence.items.top; it++) {
		yaml_node_t *in;
		const char *s;

		snprintf(ipath, sizeof(ipath), "%s[%ld]", sub,
			 (long)(it - cp.insts->data.sequence.items.start));
		in = get_node(c, *it, cp.insts, ipath, &err);
		if (!in)
			return err;
		err = scalar(c, in, ipath, "an instance name", &s);
		if (err)
			return err;
		if (ch->n >= SL_CHAIN_MAX)
			return perr(c, in, sub, "a chain holds at most %d instances", SL_CHAIN_MAX);
		if (!find_fw(cfg, s) && !find_nf(cfg, s))
			return perr(c, in, ipath, "no instance '%s' in this document (under firewalls, conntrack, flowmon, router, httpmon, lb or nat)",
				    shown(s, strlen(s), b, sizeof(b)));
		if (ch->hook == SL_HOOK_TC_OUT && find_nf(cfg, s) &&
		    !strcmp(find_nf(cfg, s)->type, LB_TYPE))
			return perr(c, in, ipath, "lb '%s' runs on ingress or tc-ingress, not egress", s);
		for (__u32 j = 0; j < ch->n; j++)
			if (!strcmp(ch->names[j], s))
				return perr(c, in, ipath, "'%s' appears twice in the chain", s);
		snprintf(ch->names[ch->n++], SL_NAME_MAX, "%s", s);
	}
	return 0;
}

struct top_parse {
	struct sl_config *cfg;
	yaml_node_t *fws, *chains, *nat, *nat_key;
	yaml_node_t *nfs[NF_SECTIONS];
	unsigned int nat_lines[NAT_MAX_SPECS];
};

static int top_pair(struct pctx *c, const char *key, yaml_node_t *k,
		    yaml_node_t *v, const char *path, void *arg)
{
	struct top_parse *tp = arg;
	const char *s;
	int err;

	if (!strcmp(key, "version")) {
		err = scalar(c, v, "version", "a version", &s);
		if (err)
			return err;
		if (strcmp(s, "1"))
			return perr(c, v, "version", "this sluice reads version 1");
		return 0;
	}
	if (!strcmp(key, "firewalls")) {
		if (v->type != YAML_MAPPING_NODE && !is_null(v))
			return perr(c, v, "firewalls", "expected a mapping of names to firewalls, found %s",
				    kind(v));
		tp->fws = v;
		return 0;
	}
	if (!strcmp(key, "chains")) {
		if (v->type != YAML_SEQUENCE_NODE && !is_null(v))
			return perr(c, v, "chains", "expected a list of chains, found %s", kind(v));
		tp->chains = v;
		return 0;
	}
	if (!strcmp(key, "nat")) {
		if (v->type != YAML_MAPPING_NODE && !is_null(v))
			return perr(c, v, "nat", "expected a mapping (rules), found %s", kind(v));
		tp->nat = v;
		tp->nat_key = k;
		return 0;
	}
	for (size_t i = 0; i < NF_SECTIONS; i++) {
		if (strcmp(key, nf_sections[i].key))
			continue;
		if (v->type != YAML_MAPPING_NODE && !is_null(v))
			return perr(c, v, key, "expected a mapping of names to %s instances, found %s",
				    nf_sections[i].type, kind(v));
		tp->nfs[i] = v;
		return 0;
	}
	return unknown_key(c, k, path, key,
			   "version, firewalls, conntrack, flowmon, router, httpmon, lb, nat, chains");
}

static int cmp_fw(const void *a, const void *b)
{
	return strcmp(((const struct sl_config_fw *)a)->name,
		      ((const struct sl_config_fw *)b)->name);
}

static int cmp_nf(const void *a, const void *b)
{
	return strcmp(((const struct sl_config_nf *)a)->name,
		      ((const struct sl_config_nf *)b)->name);
}

/* Instance names are one namespace, whatever the section. */
static int check_names(struct pctx *c, const struct sl_config *cfg)
{
	for (__u32 i = 0; i < cfg->nnfs; i++) {
		const struct sl_config_nf *nf = &cfg->nfs[i];
		const struct sl_config_fw *fw = find_fw(cfg, nf->name);
		unsigned int other = fw ? fw->line : 0;

		for (__u32 j = 0; j < cfg->nnfs && !other; j++)
			if (j != i && !strcmp(cfg->nfs[j].name, nf->name) &&
			    cfg->nfs[j].line < nf->line)
				other = cfg->nfs[j].line;
		if (other)
			return sl_err(-EINVAL, "%s:%u: %s.%s: the name '%s' is already an instance on line %u",
				      c->name, nf->line, nf->type, nf->name, nf->name, other);
	}
	return 0;
}

static bool chain_runs(const struct sl_config_chain *ch, const char *name)
{
	for (__u32 i = 0; i < ch->n; i++)
		if (!strcmp(ch->names[i], name))
			return true;
	return false;
}

/* Where nat rules put the NAT instance, as `sluice nat add` does: on the
 * tc-ingress and egress chains of every interface a rule names. A chain
 * the document leaves out there is made ([nat]); one it writes must name
 * nat; nat on another interface's TC chain is refused (its next reload
 * would take it off). XDP chains are the operator's (nat attach). */
static int nat_chains(struct pctx *c, struct sl_config *cfg, const unsigned int *lines)
{
	static const enum sl_hook hooks[2] = { SL_HOOK_TC_IN, SL_HOOK_TC_OUT };
	const struct sl_config_nf *nat = find_nf(cfg, NAT_INSTANCE);
	__u32 devs[NAT_MAX_SPECS * 2], nchains = cfg->nchains;
	__u8 who[NAT_MAX_SPECS * 2];
	struct nat_rule rules[2];
	__u32 ndevs = 0;

	if (!nat || strcmp(nat->type, NAT_TYPE))
		return 0;
	for (__u32 i = 0; i < nat->nat->n; i++) {
		int n = nat_spec_compile(&nat->nat->spec[i], i, rules, 2);

		if (n < 0) {
			char msg[300];

			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return sl_err(n, "%s:%u: nat.rules[%u]: %s", c->name, lines[i], i, msg);
		}
		for (int k = 0; k < n; k++) {
			__u32 j;

			for (j = 0; j < ndevs && devs[j] != rules[k].ifindex; j++)
				;
			if (j == ndevs) {
				who[ndevs] = i;
				devs[ndevs++] = rules[k].ifindex;
			}
		}
	}
	for (__u32 i = 0; i < nchains; i++) {
		const struct sl_config_chain *ch = &cfg->chains[i];
		__u32 j;

		if (ch->hook == SL_HOOK_XDP || !chain_runs(ch, NAT_INSTANCE))
			continue;
		for (j = 0; j < ndevs && devs[j] != ch->ifindex; j++)
			;
		if (j == ndevs)
			return sl_err(-EINVAL, "%s:%u: chains[%u].instances: no nat rule names %s (nat runs on the tc-ingress and egress chains of the interfaces its rules name, on ingress where you put it)",
				      c->name, ch->line, i, ch->dev);
	}
	for (__u32 d = 0; d < ndevs; d++) {
		for (int h = 0; h < 2; h++) {
			struct sl_config_chain *ch = NULL, *v;

			for (__u32 i = 0; i < nchains && !ch; i++)
				if (cfg->chains[i].ifindex == devs[d] && cfg->chains[i].hook == hooks[h])
					ch = &cfg->chains[i];
			if (ch && !chain_runs(ch, NAT_INSTANCE))
				return sl_err(-EINVAL, "%s:%u: chains[%ld].instances: nat rule '%s' runs on %s %s: name nat in this chain (or leave the chain out: the rule makes it)",
					      c->name, ch->line, (long)(ch - cfg->chains),
					      nat->nat->spec[who[d]].name, ch->dev,
					      sl_hook_name(hooks[h]));
			if (ch)
				continue;
			v = realloc(cfg->chains, (cfg->nchains + 1) * sizeof(*v));
			if (!v)
				return sl_err(-ENOMEM, "out of memory");
			cfg->chains = v;
			ch = &cfg->chains[cfg->nchains++];
			memset(ch, 0, sizeof(*ch));
			ch->ifindex = devs[d];
			if (!if_indextoname(devs[d], ch->dev))
				return sl_err(-ENODEV, "%s:%u: nat.rules[%u]: interface %u is gone",
					      c->name, lines[who[d]], who[d], devs[d]);
			ch->hook = hooks[h];
			ch->n = 1;
			snprintf(ch->names[0], SL_NAME_MAX, "%s", NAT_INSTANCE);
			ch->line = lines[who[d]];
		}
	}
	return 0;
}

static int parse_doc(struct pctx *c, struct sl_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	struct top_parse tp = { .cfg = cfg };
	char path[64];
	int err;

	if (!root || (root->type == YAML_SCALAR_NODE && is_null(root)))
		return perr(c, root, NULL,
			    "empty document (write 'firewalls: {}' to remove every instance)");
	c->seen[0] = 1;
	if (root->type != YAML_MAPPING_NODE)
		return perr(c, root, NULL,
			    "expected a mapping (version, firewalls, conntrack, flowmon, router, httpmon, lb, nat, chains), found %s",
			    kind(root));
	err = each_pair(c, root, "", top_pair, &tp);
	if (err)
		return err;
	/* Firewalls first: chains refer to them wherever they are written. */
	if (tp.fws && tp.fws->type == YAML_MAPPING_NODE) {
		err = each_pair(c, tp.fws, "firewalls", fws_pair, cfg);
		if (err)
			return err;
	}
	if (cfg->nfws > 1)
		qsort(cfg->fws, cfg->nfws, sizeof(*cfg->fws), cmp_fw);
	for (size_t i = 0; i < NF_SECTIONS; i++) {
		struct nfs_parse np = { .cfg = cfg, .sec = &nf_sections[i] };

		if (!tp.nfs[i] || tp.nfs[i]->type != YAML_MAPPING_NODE)
			continue;
		err = each_pair(c, tp.nfs[i], nf_sections[i].key, nfs_pair, &np);
		if (err)
			return err;
	}
	if (tp.nat && tp.nat->type == YAML_MAPPING_NODE) {
		err = nat_section(c, cfg, tp.nat_key, tp.nat, tp.nat_lines);
		if (err)
			return err;
	}
	err = check_names(c, cfg);
	if (err)
		return err;
	if (cfg->nnfs > 1)
		qsort(cfg->nfs, cfg->nnfs, sizeof(*cfg->nfs), cmp_nf);
	if (tp.chains && tp.chains->type == YAML_SEQUENCE_NODE) {
		yaml_node_item_t *it, *start = tp.chains->data.sequence.items.start;

		for (it = start; it < tp.chains->data.sequence.items.top; it++) {
			yaml_node_t *n;

			snprintf(path, sizeof(path), "chains[%ld]", (long)(it - start));
			n = get_node(c, *it, tp.chains, path, &err);
			if (!n)
				return err;
			err = chain_item(c, cfg, n, path);
			if (err)
				return err;
		}
	}
	return nat_chains(c, cfg, tp.nat_lines);
}

void sl_config_free(struct sl_config *cfg)
{
	if (!cfg)
		return;
	for (__u32 i = 0; i < cfg->nfws; i++)
		fw_ruleset_free(&cfg->fws[i].rs);
	for (__u32 i = 0; i < cfg->nnfs; i++)
		nf_release(&cfg->nfs[i]);
	free(cfg->fws);
	free(cfg->nfs);
	free(cfg->chains);
	free(cfg);
}

int sl_config_parse(const char *text, size_t len, const char *name,
		    struct sl_config **out)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct sl_config *cfg;
	struct pctx c = { .doc = &doc, .name = name ? name : "<config>" };
	int err;

	*out = NULL;
	if (len > SL_CONFIG_MAX_BYTES)
		return sl_err(-E2BIG, "%s: larger than %u MiB", c.name,
			      SL_CONFIG_MAX_BYTES >> 20);
	if (!yaml_parser_initialize(&parser))
		return sl_err(-ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		err = sl_err(-EINVAL, "%s:%lu: %s%s%s", c.name,
			     (unsigned long)parser.problem_mark.line + 1,
			     parser.problem ? parser.problem : "YAML error",
			     parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return err;
	}
	/* One document only: a second one would be silently ignored. */
	if (yaml_document_get_root_node(&doc)) {
		if (!yaml_parser_load(&parser, &extra)) {
			err = sl_err(-EINVAL, "%s:%lu: %s%s%s", c.name,
				     (unsigned long)parser.problem_mark.line + 1,
				     parser.problem ? parser.problem : "YAML error",
				     parser.context ? " " : "",
				     parser.context ? parser.context : "");
			goto out_doc;
		}
		if (yaml_document_get_root_node(&extra)) {
			err = sl_err(-EINVAL, "%s:%lu: a second document ('---'): write one document",
				     c.name, (unsigned long)extra.start_mark.line + 1);
			yaml_document_delete(&extra);
			goto out_doc;
		}
		yaml_document_delete(&extra);
	}
	c.nnodes = doc.nodes.top - doc.nodes.start;
	c.seen = calloc(c.nnodes + 1, 1);
	cfg = calloc(1, sizeof(*cfg));
	if (!c.seen || !cfg) {
		free(cfg);
		err = sl_err(-ENOMEM, "out of memory");
		goto out_doc;
	}
	err = parse_doc(&c, cfg);
	if (err)
		sl_config_free(cfg);
	else
		*out = cfg;
out_doc:
	free(c.seen);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return err;
}

int sl_config_read_file(const char *path, char **text, size_t *tlen)
{
	bool in = !strcmp(path, "-");
	FILE *f = in ? stdin : fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, got;
	int err = 0;

	*text = NULL;
	*tlen = 0;
	if (!f)
		return sl_err(-errno, "%s: %s", path, strerror(errno));
	for (;;) {
		if (cap - len < 65536) {
			char *nb;

			cap = cap ? cap * 2 : 1 << 20;
			if (cap > SL_CONFIG_MAX_BYTES + (2u << 20)) {
				err = sl_err(-E2BIG, "%s: larger than %u MiB", path,
					     SL_CONFIG_MAX_BYTES >> 20);
				goto out;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				err = sl_err(-ENOMEM, "out of memory");
				goto out;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (!got)
			break;
	}
	if (ferror(f)) {
		err = sl_err(-EIO, "%s: read error", path);
		goto out;
	}
	buf[len] = 0; /* cap - len >= 65536 here */
	*text = buf;
	*tlen = len;
	buf = NULL;
out:
	free(buf);
	if (!in)
		fclose(f);
	return err;
}

const char *sl_config_file_name(const char *path)
{
	return strcmp(path, "-") ? path : "<stdin>";
}

int sl_config_parse_file(const char *path, struct sl_config **cfg)
{
	char *buf;
	size_t len;
	int err;

	*cfg = NULL;
	err = sl_config_read_file(path, &buf, &len);
	if (err)
		return err;
	err = sl_config_parse(buf, len, sl_config_file_name(path), cfg);
	free(buf);
	return err;
}

/* ---- writing ------------------------------------------------------------ */

/* Plain YAML scalars for what sluice writes (names, hooks, rules); anything
 * else is double-quoted. */
static bool yaml_plain_ok(const char *s)
{
	static const char *const special[] = { "null", "Null", "NULL", "~", "true", "false",
						"True", "False", "TRUE", "FALSE", "yes", "no",
						"on", "off", "y", "n", "Yes", "No", "On", "Off" };
	size_t len = strlen(s);

	if (!len || s[len - 1] == ' ' || s[0] == ' ' || s[0] == '-' || s[0] == '!')
		return false;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(s, special[i]))
			return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr(" _./!,-", ch)))
			return false;
		if (ch == ' ' && (s[i + 1] == ' ' || s[i + 1] == '#'))
			return false;
	}
	return true;
}

static void write_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = *s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void write_str(FILE *f, const char *s, bool json)
{
	if (!json && yaml_plain_ok(s))
		fputs(s, f);
	else
		write_quoted(f, s);
}

/* A load balancer's body: YAML at two spaces, or JSON members (the
 * JSON service and backend objects on one line each). */
static void write_lb_body(FILE *f, const struct sl_config_lb *lb, bool json)
{
	const char *q = json ? "\"" : "";
	const char *ind = json ? "\n      " : "\n    ";
	const char *sep = json ? ", " : "\n        ";
	char ep[64];

	fprintf(f, "%s%sforward%s: %s%s", ind, q, q, lb->forward ? "true" : "false",
		json ? "," : "");
	fprintf(f, "%s%sdecap%s: %s%s", ind, q, q, lb->decap ? "true" : "false",
		json ? "," : "");
	fprintf(f, "%s%sservices%s:%s", ind, q, q, json || !lb->conf.n ? " [" : "");
	for (__u32 i = 0; i < lb->conf.n; i++) {
		const struct lb_service_info *s = &lb->conf.svcs[i];

		lb_format_endpoint(s->key.family, s->key.addr, s->key.port, ep, sizeof(ep));
		if (json)
			fprintf(f, "%s\n        {", i ? "," : "");
		else
			fprintf(f, "\n      - ");
		fprintf(f, "%sproto%s: %s%s%s%s%svip%s: ", q, q, q,
			s->key.proto == IPPROTO_UDP ? "udp" : "tcp", q, sep, q, q);
		write_str(f, ep, json);
		fprintf(f, "%s%sscheduler%s: %s%s%s", sep, q, q, q, lb_sched_name(s->conf.sched), q);
		if (s->conf.sched == LB_SCHED_MH)
			fprintf(f, "%s%smh_size%s: %u", sep, q, q, s->conf.mh_size);
		fprintf(f, "%s%sbackends%s:%s", sep, q, q, json || !s->nbackends ? " [" : "");
		for (__u32 j = 0; j < s->nbackends; j++) {
			const struct lb_backend_info *b = &s->backends[j];

			lb_format_endpoint(b->addr.family, b->addr.addr, b->addr.port, ep,
					   sizeof(ep));
			if (json)
				fprintf(f, "%s\n          {\"address\": ", j ? "," : "");
			else
				fprintf(f, "\n          - {address: ");
			write_str(f, ep, json);
			fprintf(f, ", %smethod%s: %s%s%s, %sweight%s: %u}", q, q, q,
				lb_methods[b->conf.fwd], q, q, q, b->conf.weight);
		}
		if (json)
			fprintf(f, "%s]}", s->nbackends ? "\n        " : "");
		else if (!s->nbackends)
			fputc(']', f);
	}
	if (json)
		fprintf(f, "%s]", lb->conf.n ? ind : "");
	else if (!lb->conf.n)
		fputc(']', f);
}

/* The sections of the other NF types, those with instances only, after
 * the firewalls: YAML at two spaces, or JSON members (each preceded by a
 * comma: firewalls come first). */
static void write_nf_body(FILE *f, const struct sl_config_nf *nf, bool json)
{
	const char *ind = json ? "\n      " : "\n    ";
	const char *sep = json ? "," : "";
	const char *q = json ? "\"" : "";

	if (!strcmp(nf->type, CT_TYPE)) {
		const struct ct_config *cfg = &nf->ct.cfg;
		bool first = true;

		fprintf(f, "%s%ssize%s: %u%s", ind, q, q, nf->ct.max_entries, sep);
		fprintf(f, "%s%stcp%s: %s%s%s%s", ind, q, q, q,
			cfg->flags & CT_CFG_LOOSE ? "loose" : "strict", q, sep);
		fprintf(f, "%s%sdrop_invalid%s: %s%s", ind, q, q,
			cfg->flags & CT_CFG_DROP_INVALID ? "true" : "false", sep);
		fprintf(f, "%s%sgc_interval_ms%s: %u%s", ind, q, q, cfg->gc_interval_ms, sep);
		fprintf(f, "%s%stimeouts%s:%s", ind, q, q, json ? " {" : "");
		for (unsigned int i = 0; i < CT_TO_MAX; i++) {
			if (!ct_timeout_name(i))
				continue;
			fprintf(f, "%s%s  %s%s%s: %llu", first ? "" : sep, ind, q,
				ct_timeout_name(i), q,
				(unsigned long long)(cfg->timeout_ns[i] / NSEC));
			first = false;
		}
		fprintf(f, "%s", json ? "}" : "");
	} else if (!strcmp(nf->type, FM_TYPE)) {
		fprintf(f, "%s%smax_flows%s: %u", ind, q, q, nf->max_flows);
	} else if (!strcmp(nf->type, HTTPMON_TYPE)) {
		const struct httpmon_opts *o = &nf->http;

		fprintf(f, "%s%sports%s: [", ind, q, q);
		for (__u32 i = 0; i < o->nports; i++)
			fprintf(f, "%s%u", i ? ", " : "", o->ports[i]);
		fprintf(f, "]%s%s%sroutes%s: [", sep, ind, q, q);
		for (__u32 i = 0; i < o->nroutes; i++) {
			fprintf(f, "%s", i ? ", " : "");
			write_str(f, o->routes[i], json);
		}
		fprintf(f, "]%s%s%smax_templates%s: %u", sep, ind, q, q, o->max_templates);
	} else if (!strcmp(nf->type, LB_TYPE)) {
		write_lb_body(f, nf->lb, json);
	}
}

/* The nat section (after the others): its rules, one string each. */
static void write_nat(FILE *f, const struct sl_config *cfg, bool json)
{
	const struct sl_config_nf *nat = find_nf(cfg, NAT_INSTANCE);
	char text[SL_NAME_MAX + NAT_TEXT_MAX + 2];

	if (!nat || !nat->nat)
		return;
	if (json)
		fprintf(f, ",\n  \"nat\": {\"rules\": [");
	else
		fprintf(f, "nat:\n  rules:%s\n", nat->nat->n ? "" : " []");
	for (__u32 i = 0; i < nat->nat->n; i++) {
		snprintf(text, sizeof(text), "%s %s", nat->nat->spec[i].name,
			 nat->nat->spec[i].text);
		if (json)
			fprintf(f, "%s\n    ", i ? "," : "");
		else
			fprintf(f, "    - ");
		write_str(f, text, json);
		if (!json)
			fputc('\n', f);
	}
	if (json)
		fprintf(f, "%s]}", nat->nat->n ? "\n  " : "");
}

static void write_nfs(FILE *f, const struct sl_config *cfg, bool json)
{
	for (size_t s = 0; s < NF_SECTIONS; s++) {
		const struct nf_section *sec = &nf_sections[s];
		bool any = false;

		for (__u32 i = 0; i < cfg->nnfs; i++) {
			const struct sl_config_nf *nf = &cfg->nfs[i];
			bool empty = !strcmp(nf->type, RT_TYPE);

			if (strcmp(nf->type, sec->type))
				continue;
			if (json) {
				if (!any)
					fprintf(f, ",\n  \"%s\": {", sec->key);
				fprintf(f, "%s\n    ", any ? "," : "");
				write_quoted(f, nf->name);
				fprintf(f, ": {");
				write_nf_body(f, nf, true);
				fprintf(f, "%s}", empty ? "" : "\n    ");
			} else {
				if (!any)
					fprintf(f, "%s:\n", sec->key);
				fprintf(f, "  ");
				write_str(f, nf->name, false);
				fprintf(f, ":%s", empty ? " {}" : "");
				write_nf_body(f, nf, false);
				fputc('\n', f);
			}
			any = true;
		}
		if (json && any)
			fprintf(f, "\n  }");
	}
}

int sl_config_write(const struct sl_config *cfg, FILE *f, bool json)
{
	char text[RULE_TEXT_MAX];

	if (json) {
		fprintf(f, "{\n  \"version\": 1,\n  \"firewalls\": {");
		for (__u32 i = 0; i < cfg->nfws; i++) {
			const struct sl_config_fw *fw = &cfg->fws[i];

			fprintf(f, "%s\n    ", i ? "," : "");
			write_quoted(f, fw->name);
			fprintf(f, ": {\n      \"default\": \"%s\",\n      \"rules\": [",
				fw->rs.default_action == FW_DROP ? "drop" : "accept");
			for (__u32 r = 0; r < fw->rs.n; r++) {
				if (fw_rule_format(&fw->rs.rules[r], text, sizeof(text)))
					return sl_err(-ENOSPC, "rule %u of '%s' is too long", r + 1,
						      fw->name);
				fprintf(f, "%s\n        ", r ? "," : "");
				write_quoted(f, text);
			}
			fprintf(f, "%s]\n    }", fw->rs.n ? "\n      " : "");
		}
		fprintf(f, "%s}", cfg->nfws ? "\n  " : "");
		write_nfs(f, cfg, true);
		write_nat(f, cfg, true);
		fprintf(f, ",\n  \"chains\": [");
		for (__u32 i = 0; i < cfg->nchains; i++) {
			const struct sl_config_chain *ch = &cfg->chains[i];

			fprintf(f, "%s\n    {\"dev\": ", i ? "," : "");
			write_quoted(f, ch->dev);
			fprintf(f, ", \"hook\": \"%s\", \"instances\": [", sl_hook_name(ch->hook));
			for (__u32 j = 0; j < ch->n; j++) {
				fprintf(f, "%s", j ? ", " : "");
				write_quoted(f, ch->names[j]);
			}
			fprintf(f, "]}");
		}
		fprintf(f, "%s]\n}\n", cfg->nchains ? "\n  " : "");
		return ferror(f) ? sl_err(-EIO, "write error") : 0;
	}
	fprintf(f, "# sluice configuration: sluice apply -f FILE (docs/config.md)\nversion: 1\n");
	fprintf(f, "firewalls:%s\n", cfg->nfws ? "" : " {}");
	for (__u32 i = 0; i < cfg->nfws; i++) {
		const struct sl_config_fw *fw = &cfg->fws[i];

		fprintf(f, "  ");
		write_str(f, fw->name, false);
		fprintf(f, ":\n    default: %s\n    rules:%s\n",
			fw->rs.default_action == FW_DROP ? "drop" : "accept",
			fw->rs.n ? "" : " []");
		for (__u32 r = 0; r < fw->rs.n; r++) {
			if (fw_rule_format(&fw->rs.rules[r], text, sizeof(text)))
				return sl_err(-ENOSPC, "rule %u of '%s' is too long", r + 1,
					      fw->name);
			fprintf(f, "      - ");
			write_str(f, text, false);
			fputc('\n', f);
		}
	}
	write_nfs(f, cfg, false);
	write_nat(f, cfg, false);
	fprintf(f, "chains:%s\n", cfg->nchains ? "" : " []");
	for (__u32 i = 0; i < cfg->nchains; i++) {
		const struct sl_config_chain *ch = &cfg->chains[i];

		fprintf(f, "  - dev: ");
		write_str(f, ch->dev, false);
		fprintf(f, "\n    hook: %s\n    instances: [", sl_hook_name(ch->hook));
		for (__u32 j = 0; j < ch->n; j++) {
			fprintf(f, "%s", j ? ", " : "");
			write_str(f, ch->names[j], false);
		}
		fprintf(f, "]\n");
	}
	return ferror(f) ? sl_err(-EIO, "write error") : 0;
}

/* ---- the loaded state ---------------------------------------------------- */

/* The NF types this schema describes; apply refuses to run beside others. */
static bool describable(const char *type)
{
	for (size_t i = 0; i < NF_SECTIONS; i++)
		if (!strcmp(type, nf_sections[i].type))
			return true;
	return !strcmp(type, FW_TYPE) || !strcmp(type, NAT_TYPE);
}

/* The table size of a conntrack instance, as `sluice conntrack stats`
 * reads it. */
static int ct_size_read(struct sl_ctx *ctx, const char *name, __u32 *size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char dir[256];
	int fd, err = 0;

	sl_instance_dir(ctx, name, dir, sizeof(dir));
	fd = sl_obj_get(dir, "ct_table");
	if (fd < 0)
		return sl_err(fd, "cannot open the table of '%s'", name);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = sl_err(-errno, "cannot read the table of '%s': %s", name, strerror(errno));
	close(fd);
	*size = info.max_entries;
	return err;
}

/* Reads a loaded instance of a described type other than firewall. */
static int nf_read(struct sl_ctx *ctx, const struct sl_instance *inst,
		   struct sl_config_nf *nf)
{
	struct fm_info fi;
	struct httpmon_info hi = {};
	int err = nf_defaults(nf, inst->type);

	if (err)
		return err;
	snprintf(nf->name, sizeof(nf->name), "%s", inst->name);
	if (!strcmp(inst->type, NAT_TYPE)) {
		err = nat_read_specs(ctx, nf->nat);
	} else if (!strcmp(inst->type, LB_TYPE)) {
		err = lb_list(ctx, nf->name, &nf->lb->conf);
		err = err ?: lb_get_forward(ctx, nf->name, &nf->lb->forward);
		err = err ?: lb_get_decap(ctx, nf->name, &nf->lb->decap);
		if (!err)
			lb_normalize(&nf->lb->conf);
	} else if (!strcmp(inst->type, CT_TYPE)) {
		err = ct_config_read(ctx, nf->name, &nf->ct.cfg);
		err = err ?: ct_size_read(ctx, nf->name, &nf->ct.max_entries);
	} else if (!strcmp(inst->type, FM_TYPE)) {
		err = fm_info_read(ctx, nf->name, &fi);
		nf->max_flows = fi.max_flows;
	} else if (!strcmp(inst->type, HTTPMON_TYPE)) {
		err = httpmon_read(ctx, nf->name, &hi);
		if (!err) {
			struct httpmon_opts *o = &nf->http;

			o->nports = hi.cfg.nports < HTTP_MAX_PORTS ? hi.cfg.nports : HTTP_MAX_PORTS;
			memcpy(o->ports, hi.cfg.ports, sizeof(o->ports));
			o->nroutes = hi.cfg.nroutes < HTTP_MAX_ROUTES ? hi.cfg.nroutes : HTTP_MAX_ROUTES;
			for (__u32 i = 0; i < o->nroutes; i++)
				snprintf(o->routes[i], HTTP_TMPL_LEN, "%.*s",
					 (int)(hi.cfg.routes[i].name_len < HTTP_TMPL_LEN ?
					       hi.cfg.routes[i].name_len : HTTP_TMPL_LEN - 1),
					 hi.cfg.routes[i].name);
			o->max_templates = hi.cfg.max_templates;
			http_normalize(o);
		}
		httpmon_info_free(&hi);
	}
	return err;
}


struct inst_list {
	struct sl_instance *v;
	__u32 n;
	int err;
};

static int collect_inst(const struct sl_instance *inst, void *arg)
{
	struct inst_list *l = arg;
	struct sl_instance *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v) {
		l->err = sl_err(-ENOMEM, "out of memory");
		return 1;
	}
	l->v = v;
	l->v[l->n++] = *inst;
	return 0;
}

struct chain_list {
	struct sl_config *cfg;
	const struct inst_list *insts;
	int err;
};

static int collect_chain(__u32 ifindex, enum sl_hook hook,
			 const struct sl_chain *chain, void *arg)
{
	struct chain_list *l = arg;
	struct sl_config *cfg = l->cfg;
	struct sl_config_chain *ch = realloc(cfg->chains, (cfg->nchains + 1) * sizeof(*ch));

	if (!ch) {
		l->err = sl_err(-ENOMEM, "out of memory");
		return 1;
	}
	cfg->chains = ch;
	ch = &cfg->chains[cfg->nchains++];
	memset(ch, 0, sizeof(*ch));
	ch->ifindex = ifindex;
	ch->hook = hook;
	if (!if_indextoname(ifindex, ch->dev))
		snprintf(ch->dev, sizeof(ch->dev), "if%u", ifindex);
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		__u32 k;

		for (k = 0; k < l->insts->n; k++)
			if (l->insts->v[k].slot == chain->slots[i])
				break;
		if (k == l->insts->n) {
			l->err = sl_err(-ENOENT, "the chain of %s %s runs slot %u, which no instance owns",
					ch->dev, sl_hook_name(hook), chain->slots[i]);
			return 1;
		}
		snprintf(ch->names[ch->n++], SL_NAME_MAX, "%s", l->insts->v[k].name);
	}
	return 0;
}

static int cmp_chain(const void *a, const void *b)
{
	const struct sl_config_chain *x = a, *y = b;
	int d = strcmp(x->dev, y->dev);

	return d ? d : (int)x->hook - (int)y->hook;
}

/* The loaded state: firewalls and chains in cfg, every instance in insts. */
static int read_state(struct sl_ctx *ctx, struct sl_config **out, struct inst_list *insts)
{
	struct sl_config *cfg = calloc(1, sizeof(*cfg));
	struct chain_list cl = { .cfg = cfg, .insts = insts };
	int err = 0;

	*out = NULL;
	memset(insts, 0, sizeof(*insts));
	if (!cfg)
		return sl_err(-ENOMEM, "out of memory");
	if (!ctx) {
		*out = cfg;
		return 0;
	}
	sl_instance_foreach(ctx, collect_inst, insts);
	if (insts->err) {
		err = insts->err;
		goto fail;
	}
	cfg->fws = calloc(insts->n ? insts->n : 1, sizeof(*cfg->fws));
	if (!cfg->fws) {
		err = sl_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (__u32 i = 0; i < insts->n; i++) {
		struct sl_config_fw *fw = &cfg->fws[cfg->nfws];

		if (strcmp(insts->v[i].type, FW_TYPE))
			continue;
		snprintf(fw->name, sizeof(fw->name), "%s", insts->v[i].name);
		err = fw_read(ctx, fw->name, &fw->rs, NULL, NULL);
		if (err)
			goto fail;
		cfg->nfws++;
	}
	if (cfg->nfws > 1)
		qsort(cfg->fws, cfg->nfws, sizeof(*cfg->fws), cmp_fw);
	cfg->nfs = calloc(insts->n ? insts->n : 1, sizeof(*cfg->nfs));
	if (!cfg->nfs) {
		err = sl_err(-ENOMEM, "out of memory");
		goto fail;
	}
	for (__u32 i = 0; i < insts->n; i++) {
		if (!strcmp(insts->v[i].type, FW_TYPE) || !describable(insts->v[i].type))
			continue;
		err = nf_read(ctx, &insts->v[i], &cfg->nfs[cfg->nnfs]);
		if (err) {
			nf_release(&cfg->nfs[cfg->nnfs]);
			goto fail;
		}
		cfg->nnfs++;
	}
	if (cfg->nnfs > 1)
		qsort(cfg->nfs, cfg->nnfs, sizeof(*cfg->nfs), cmp_nf);
	sl_chain_foreach(ctx, collect_chain, &cl);
	if (cl.err) {
		err = cl.err;
		goto fail;
	}
	if (cfg->nchains > 1)
		qsort(cfg->chains, cfg->nchains, sizeof(*cfg->chains), cmp_chain);
	*out = cfg;
	return 0;
fail:
	sl_config_free(cfg);
	free(insts->v);
	memset(insts, 0, sizeof(*insts));
	return err;
}

int sl_config_read_state(struct sl_ctx *ctx, struct sl_config **cfg)
{
	struct inst_list insts;
	int err = read_state(ctx, cfg, &insts);

	if (err)
		return err;
	for (__u32 i = 0; i < insts.n; i++) {
		if (!describable(insts.v[i].type)) {
			err = sl_err(-EOPNOTSUPP, "instance '%s' is a %s, which the configuration cannot describe yet",
				     insts.v[i].name, insts.v[i].type);
			sl_config_free(*cfg);
			*cfg = NULL;
			break;
		}
	}
	free(insts.v);
	return err;
}

int sl_config_export(struct sl_ctx *ctx, FILE *f, bool json)
{
	struct sl_config *cfg;
	int err = sl_config_read_state(ctx, &cfg);

	if (err)
		return err;
	err = sl_config_write(cfg, f, json);
	sl_config_free(cfg);
	return err;
}

/* ---- the plan -------------------------------------------------------------- */

/* Every rule of rs as text, the form compared and shown. */
static char **rule_texts(const struct fw_ruleset *rs)
{
	char **t = calloc(rs->n + 1, sizeof(*t));
	char buf[RULE_TEXT_MAX];

	if (!t)
		return NULL;
	for (__u32 i = 0; i < rs->n; i++) {
		if (fw_rule_format(&rs->rules[i], buf, sizeof(buf)))
			buf[sizeof(buf) - 1] = '\0';
		t[i] = strdup(buf);
		if (!t[i]) {
			for (__u32 j = 0; j < i; j++)
				free(t[j]);
			free(t);
			return NULL;
		}
	}
	return t;
}

static void texts_free(char **t, __u32 n)
{
	if (!t)
		return;
	for (__u32 i = 0; i < n; i++)
		free(t[i]);
	free(t);
}

#define LCS_MAX_CELLS (4u << 20)

/* Which new rules are old rules (a longest common subsequence, found in
 * full when the part that differs is small): from[j] = i or -1. */
static int match_rules(char **a, __u32 n, char **b, __u32 m, __s32 *from)
{
	__u32 p = 0, s = 0, N, M;
	__u32 *t;

	for (__u32 j = 0; j < m; j++)
		from[j] = -1;
	while (p < n && p < m && !strcmp(a[p], b[p])) {
		from[p] = p;
		p++;
	}
	while (s < n - p && s < m - p && !strcmp(a[n - 1 - s], b[m - 1 - s])) {
		from[m - 1 - s] = n - 1 - s;
		s++;
	}
	N = n - p - s;
	M = m - p - s;
	if (!N || !M || (uint64_t)(N + 1) * (M + 1) > LCS_MAX_CELLS)
		return 0;
	t = calloc((size_t)(N + 1) * (M + 1), sizeof(*t));
	if (!t)
		return sl_err(-ENOMEM, "out of memory");
#define T(i, j) t[(size_t)(i) * (M + 1) + (j)]
	for (__u32 i = N; i-- > 0;)
		for (__u32 j = M; j-- > 0;)
			T(i, j) = !strcmp(a[p + i], b[p + j]) ? T(i + 1, j + 1) + 1 :
				  T(i + 1, j) > T(i, j + 1) ? T(i + 1, j) : T(i, j + 1);
	for (__u32 i = 0, j = 0; i < N && j < M;) {
		if (!strcmp(a[p + i], b[p + j])) {
			from[p + j] = p + i;
			i++;
			j++;
		} else if (T(i + 1, j) >= T(i, j + 1)) {
			i++;
		} else {
			j++;
		}
	}
#undef T
	free(t);
	return 0;
}

void sl_config_plan_free(struct sl_config_plan *plan)
{
	if (!plan)
		return;
	for (__u32 i = 0; i < plan->ninsts; i++) {
		fw_ruleset_free(&plan->insts[i].old);
		free(plan->insts[i].from);
		nf_release(&plan->insts[i].old_nf);
	}
	free(plan->insts);
	free(plan->chains);
	free(plan);
}

bool sl_config_plan_empty(const struct sl_config_plan *plan)
{
	return !plan->ninsts && !plan->nchains;
}

static struct sl_config_inst_change *add_inst(struct sl_config_plan *plan)
{
	struct sl_config_inst_change *v = realloc(plan->insts, (plan->ninsts + 1) * sizeof(*v));

	if (!v)
		return NULL;
	plan->insts = v;
	memset(&v[plan->ninsts], 0, sizeof(*v));
	return &v[plan->ninsts++];
}

static struct sl_config_chain_change *add_chain(struct sl_config_plan *plan)
{
	struct sl_config_chain_change *v = realloc(plan->chains, (plan->nchains + 1) * sizeof(*v));

	if (!v)
		return NULL;
	plan->chains = v;
	memset(&v[plan->nchains], 0, sizeof(*v));
	return &v[plan->nchains++];
}

/* Compares a desired firewall with the loaded one; *same when equal, else
 * from[] says which rules stay. */
static int fw_compare(const struct sl_config_fw *want, const struct sl_config_fw *have,
		      bool *same, __s32 **from)
{
	char **a = rule_texts(&have->rs), **b = rule_texts(&want->rs);
	int err = 0;

	*same = false;
	*from = NULL;
	if (!a || !b) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (want->rs.n == have->rs.n &&
	    want->rs.default_action == have->rs.default_action) {
		__u32 i;

		for (i = 0; i < want->rs.n && !strcmp(a[i], b[i]); i++)
			;
		if (i == want->rs.n) {
			*same = true;
			goto out;
		}
	}
	*from = calloc(want->rs.n + 1, sizeof(**from));
	if (!*from) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	err = match_rules(a, have->rs.n, b, want->rs.n, *from);
	(*from)[want->rs.n] = want->rs.default_action == have->rs.default_action ? 0 : -1;
out:
	texts_free(a, have->rs.n);
	texts_free(b, want->rs.n);
	return err;
}

static int copy_ruleset(struct fw_ruleset *dst, const struct fw_ruleset *src)
{
	*dst = *src;
	dst->cap = src->n ? src->n : 1;
	dst->rules = malloc(dst->cap * sizeof(*dst->rules));
	if (!dst->rules) {
		memset(dst, 0, sizeof(*dst));
		return sl_err(-ENOMEM, "out of memory");
	}
	memcpy(dst->rules, src->rules, src->n * sizeof(*src->rules));
	return 0;
}

static const struct sl_config_chain *find_chain(const struct sl_config *cfg, __u32 ifindex,
						enum sl_hook hook)
{
	for (__u32 i = 0; i < cfg->nchains; i++)
		if (cfg->chains[i].ifindex == ifindex && cfg->chains[i].hook == hook)
			return &cfg->chains[i];
	return NULL;
}

static int plan_chains(struct sl_ctx *ctx, const struct sl_config *cfg,
		       const struct sl_config *cur, struct sl_config_plan *plan)
{
	for (__u32 i = 0; i < cfg->nchains; i++) {
		const struct sl_config_chain *w = &cfg->chains[i];
		const struct sl_config_chain *h = find_chain(cur, w->ifindex, w->hook);
		struct sl_config_chain_change *c;
		__u32 prog_id = 0;

		if (!w->n && !h)
			continue;
		if (h && h->n == w->n &&
		    !memcmp(h->names, w->names, sizeof(h->names[0]) * w->n))
			continue;
		/* An interface has one XDP program: ours, or someone else's. */
		if (w->hook == SL_HOOK_XDP && w->n && !h &&
		    !bpf_xdp_query_id(w->ifindex, 0, &prog_id) && prog_id)
			return sl_err(-EBUSY, "chains[%u].dev: %s already has another XDP program attached (id %u)",
				      i, w->dev, prog_id);
		c = add_chain(plan);
		if (!c)
			return sl_err(-ENOMEM, "out of memory");
		c->op = !w->n ? SL_CFG_DELETE : h ? SL_CFG_REPLACE : SL_CFG_CREATE;
		snprintf(c->dev, sizeof(c->dev), "%s", w->dev);
		c->ifindex = w->ifindex;
		c->hook = w->hook;
		c->n = w->n;
		memcpy(c->names, w->names, sizeof(c->names));
		if (h) {
			c->old_n = h->n;
			memcpy(c->old_names, h->names, sizeof(c->old_names));
		}
	}
	for (__u32 i = 0; i < cur->nchains; i++) {
		const struct sl_config_chain *h = &cur->chains[i];
		struct sl_config_chain_change *c;

		if (find_chain(cfg, h->ifindex, h->hook))
			continue;
		c = add_chain(plan);
		if (!c)
			return sl_err(-ENOMEM, "out of memory");
		c->op = SL_CFG_DELETE;
		snprintf(c->dev, sizeof(c->dev), "%s", h->dev);
		c->ifindex = h->ifindex;
		c->hook = h->hook;
		c->old_n = h->n;
		memcpy(c->old_names, h->names, sizeof(c->old_names));
	}
	(void)ctx;
	return 0;
}

static bool http_same(const struct httpmon_opts *a, const struct httpmon_opts *b)
{
	if (a->nports != b->nports || a->nroutes != b->nroutes ||
	    a->max_templates != b->max_templates)
		return false;
	for (__u32 i = 0; i < a->nports; i++)
		if (a->ports[i] != b->ports[i])
			return false;
	for (__u32 i = 0; i < a->nroutes; i++)
		if (strcmp(a->routes[i], b->routes[i]))
			return false;
	return true;
}

static bool nat_same(const struct nat_specs *a, const struct nat_specs *b)
{
	if (a->n != b->n)
		return false;
	for (__u32 i = 0; i < a->n; i++)
		if (strcmp(a->spec[i].name, b->spec[i].name) ||
		    strcmp(a->spec[i].text, b->spec[i].text))
			return false;
	return true;
}

static const struct lb_backend_info *find_backend(const struct lb_service_info *s,
						  const struct lb_backend_addr *a)
{
	for (__u32 i = 0; s && i < s->nbackends; i++)
		if (same_be_addr(&s->backends[i].addr, a))
			return &s->backends[i];
	return NULL;
}

static const struct lb_service_info *find_service(const struct lb_conf *conf,
						  const struct lb_service_key *k)
{
	for (__u32 i = 0; i < conf->n; i++)
		if (same_svc_key(&conf->svcs[i].key, k))
			return &conf->svcs[i];
	return NULL;
}

/* A service as the document means it (health states aside): scheduler,
 * table size, the same backends with the same method and weight. */
static bool svc_same(const struct lb_service_info *w, const struct lb_service_info *h)
{
	__u32 wm = w->conf.sched == LB_SCHED_MH ? (w->conf.mh_size ?: LB_MH_DEFAULT) : 0;
	__u32 hm = h->conf.sched == LB_SCHED_MH ? (h->conf.mh_size ?: LB_MH_DEFAULT) : 0;

	if (w->conf.sched != h->conf.sched || wm != hm || w->nbackends != h->nbackends)
		return false;
	for (__u32 i = 0; i < w->nbackends; i++) {
		const struct lb_backend_info *b = find_backend(h, &w->backends[i].addr);

		if (!b || b->conf.fwd != w->backends[i].conf.fwd ||
		    b->conf.weight != w->backends[i].conf.weight)
			return false;
	}
	return true;
}

static bool lb_same(const struct sl_config_lb *a, const struct sl_config_lb *b)
{
	if (a->forward != b->forward || a->decap != b->decap || a->conf.n != b->conf.n)
		return false;
	for (__u32 i = 0; i < a->conf.n; i++) {
		const struct lb_service_info *h = find_service(&b->conf, &a->conf.svcs[i].key);

		if (!h || !svc_same(&a->conf.svcs[i], h))
			return false;
	}
	return true;
}

/* Copies a service with its backends. */
static int svc_copy(struct lb_service_info *dst, const struct lb_service_info *src)
{
	*dst = *src;
	dst->backends = calloc(src->nbackends + 1, sizeof(*dst->backends));
	if (!dst->backends)
		return sl_err(-ENOMEM, "out of memory");
	memcpy(dst->backends, src->backends, src->nbackends * sizeof(*src->backends));
	return 0;
}

static int lb_conf_copy(struct lb_conf *dst, const struct lb_conf *src)
{
	int err = 0;

	dst->n = 0;
	dst->svcs = calloc(src->n + 1, sizeof(*dst->svcs));
	if (!dst->svcs)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < src->n && !err; i++) {
		err = svc_copy(&dst->svcs[i], &src->svcs[i]);
		if (!err)
			dst->n++;
	}
	if (err)
		lb_conf_free(dst);
	return err;
}

/* A deep copy of a loaded instance, for the plan to keep. */
static int nf_copy(struct sl_config_nf *dst, const struct sl_config_nf *src)
{
	*dst = *src;
	dst->nat = NULL;
	dst->lb = NULL;
	if (src->nat) {
		dst->nat = malloc(sizeof(*dst->nat));
		if (!dst->nat)
			return sl_err(-ENOMEM, "out of memory");
		*dst->nat = *src->nat;
	}
	if (src->lb) {
		dst->lb = calloc(1, sizeof(*dst->lb));
		if (!dst->lb)
			return sl_err(-ENOMEM, "out of memory");
		*dst->lb = *src->lb;
		if (lb_conf_copy(&dst->lb->conf, &src->lb->conf)) {
			free(dst->lb);
			dst->lb = NULL;
			return -ENOMEM;
		}
	}
	return 0;
}

/* Compares a desired instance of another type with the loaded one: *same,
 * or a change its NF can make in place (conntrack options, as `sluice
 * conntrack config`; httpmon settings, reloaded as `sluice http attach`
 * does). A table size cannot change on a live instance: refused. */
static int nf_compare(const struct sl_config_nf *w, const struct sl_config_nf *h, bool *same)
{
	*same = true;
	if (!strcmp(w->type, CT_TYPE)) {
		if (w->ct.max_entries != h->ct.max_entries)
			return sl_err(-EBUSY, "conntrack.%s.size: the table of a live instance cannot be resized (%u -> %u entries), nor can 'sluice conntrack'; remove the instance from the document, apply, then add it back (its connections are forgotten)",
				      w->name, h->ct.max_entries, w->ct.max_entries);
		*same = !memcmp(&w->ct.cfg, &h->ct.cfg, sizeof(w->ct.cfg));
	} else if (!strcmp(w->type, FM_TYPE)) {
		if (w->max_flows != h->max_flows)
			return sl_err(-EBUSY, "flowmon.%s.max_flows: the table of a live instance cannot be resized (%u -> %u flows), nor can 'sluice flows'; remove the instance from the document, apply, then add it back (its flows are forgotten)",
				      w->name, h->max_flows, w->max_flows);
	} else if (!strcmp(w->type, HTTPMON_TYPE)) {
		*same = http_same(&w->http, &h->http);
	} else if (!strcmp(w->type, NAT_TYPE)) {
		*same = nat_same(w->nat, h->nat);
	} else if (!strcmp(w->type, LB_TYPE)) {
		*same = lb_same(w->lb, h->lb);
	}
	return 0;
}

static int plan_nfs(const struct sl_config *cfg, const struct sl_config *cur,
		    const struct inst_list *insts, struct sl_config_plan *plan)
{
	struct sl_config_inst_change *c;
	bool same;
	int err;

	for (__u32 i = 0; i < cfg->nnfs; i++) {
		const struct sl_config_nf *w = &cfg->nfs[i];
		const struct sl_config_nf *h = find_nf(cur, w->name);

		for (__u32 k = 0; k < insts->n; k++)
			if (!strcmp(insts->v[k].name, w->name) && strcmp(insts->v[k].type, w->type))
				return sl_err(-EEXIST, "%s.%s: instance '%s' exists and is a %s; delete it first",
					      w->type, w->name, w->name, insts->v[k].type);
		if (h) {
			err = nf_compare(w, h, &same);
			if (err)
				return err;
			if (same)
				continue;
		}
		c = add_inst(plan);
		if (!c)
			return sl_err(-ENOMEM, "out of memory");
		c->op = h ? SL_CFG_REPLACE : SL_CFG_CREATE;
		snprintf(c->name, sizeof(c->name), "%s", w->name);
		snprintf(c->type, sizeof(c->type), "%s", w->type);
		c->nf = w;
		if (h) {
			err = nf_copy(&c->old_nf, h);
			if (err)
				return err;
		}
	}
	for (__u32 i = 0; i < cur->nnfs; i++) {
		const struct sl_config_nf *h = &cur->nfs[i];

		if (find_nf(cfg, h->name) || find_fw(cfg, h->name))
			continue;
		c = add_inst(plan);
		if (!c)
			return sl_err(-ENOMEM, "out of memory");
		c->op = SL_CFG_DELETE;
		snprintf(c->name, sizeof(c->name), "%s", h->name);
		snprintf(c->type, sizeof(c->type), "%s", h->type);
		err = nf_copy(&c->old_nf, h);
		if (err)
			return err;
	}
	return 0;
}

int sl_config_diff(struct sl_ctx *ctx, const struct sl_config *cfg,
		   struct sl_config_plan **out)
{
	struct sl_config_plan *plan = calloc(1, sizeof(*plan));
	struct sl_config *cur = NULL;
	struct inst_list insts = {};
	struct sl_config_inst_change *c;
	int err;

	*out = NULL;
	if (!plan)
		return sl_err(-ENOMEM, "out of memory");
	err = read_state(ctx, &cur, &insts);
	if (err)
		goto fail;
	/* Instances created or replaced, by name. */
	for (__u32 i = 0; i < cfg->nfws; i++) {
		const struct sl_config_fw *w = &cfg->fws[i];
		const struct sl_config_fw *h = find_fw(cur, w->name);
		bool same;
		__s32 *from;

		if (!h) {
			for (__u32 k = 0; k < insts.n; k++) {
				if (!strcmp(insts.v[k].name, w->name)) {
					err = sl_err(-EEXIST, "firewalls.%s: instance '%s' exists and is a %s; delete it first",
						     w->name, w->name, insts.v[k].type);
					goto fail;
				}
			}
			c = add_inst(plan);
			if (!c) {
				err = sl_err(-ENOMEM, "out of memory");
				goto fail;
			}
			c->op = SL_CFG_CREATE;
			snprintf(c->name, sizeof(c->name), "%s", w->name);
			snprintf(c->type, sizeof(c->type), "%s", FW_TYPE);
			c->fw = w;
			continue;
		}
		err = fw_compare(w, h, &same, &from);
		if (err)
			goto fail;
		if (same)
			continue;
		c = add_inst(plan);
		if (!c) {
			free(from);
			err = sl_err(-ENOMEM, "out of memory");
			goto fail;
		}
		c->op = SL_CFG_REPLACE;
		snprintf(c->name, sizeof(c->name), "%s", w->name);
		snprintf(c->type, sizeof(c->type), "%s", FW_TYPE);
		c->fw = w;
		c->from = from;
		err = copy_ruleset(&c->old, &h->rs);
		if (err)
			goto fail;
	}
	/* Instances the document does not name, sorted by name. */
	for (__u32 i = 0; i < cur->nfws; i++) {
		if (find_fw(cfg, cur->fws[i].name))
			continue;
		c = add_inst(plan);
		if (!c) {
			err = sl_err(-ENOMEM, "out of memory");
			goto fail;
		}
		c->op = SL_CFG_DELETE;
		snprintf(c->name, sizeof(c->name), "%s", cur->fws[i].name);
		snprintf(c->type, sizeof(c->type), "%s", FW_TYPE);
		err = copy_ruleset(&c->old, &cur->fws[i].rs);
		if (err)
			goto fail;
	}
	err = plan_nfs(cfg, cur, &insts, plan);
	if (err)
		goto fail;
	/* The document cannot name them, so it would always delete them: an
	 * operator applying firewalls would wipe a load balancer. */
	for (__u32 k = 0; k < insts.n; k++) {
		if (describable(insts.v[k].type))
			continue;
		err = sl_err(-EBUSY, "instance '%s' is a %s, which the configuration cannot describe: the document cannot keep it, and apply never deletes it (nothing applied; delete it first, or manage this namespace without apply)",
			     insts.v[k].name, insts.v[k].type);
		goto fail;
	}
	err = plan_chains(ctx, cfg, cur, plan);
	if (err)
		goto fail;
	sl_config_free(cur);
	free(insts.v);
	*out = plan;
	return 0;
fail:
	sl_config_free(cur);
	free(insts.v);
	sl_config_plan_free(plan);
	return err;
}

/* ---- showing the plan ------------------------------------------------------ */

static __u32 plan_changes(const struct sl_config_plan *plan)
{
	return plan->ninsts + plan->nchains;
}

typedef void (*rule_line_cb)(FILE *f, char sign, __u32 pos, const char *text, bool *first);

/* Walks a replace as removed and added rules, in rule order. */
static int walk_rule_diff(const struct sl_config_inst_change *c, FILE *f, rule_line_cb cb)
{
	const struct fw_ruleset *want = &c->fw->rs;
	char **a = rule_texts(&c->old), **b = rule_texts(want);
	__s32 *next_old = NULL;
	__u32 i = 0;
	bool first = true;
	int err = 0;

	if (!a || !b || !(next_old = calloc(want->n + 1, sizeof(*next_old)))) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	/* next_old[j]: the old index of the first kept rule at or after j. */
	next_old[want->n] = c->old.n;
	for (__u32 j = want->n; j-- > 0;)
		next_old[j] = c->from[j] >= 0 ? c->from[j] : next_old[j + 1];
	for (__u32 j = 0; j < want->n; j++) {
		for (; i < (__u32)next_old[j]; i++)
			cb(f, '-', i + 1, a[i], &first);
		if (c->from[j] >= 0)
			i = c->from[j] + 1;
		else
			cb(f, '+', j + 1, b[j], &first);
	}
	for (; i < c->old.n; i++)
		cb(f, '-', i + 1, a[i], &first);
out:
	free(next_old);
	texts_free(a, c->old.n);
	texts_free(b, want->n);
	return err;
}

static const char *action_name(__u32 a)
{
	return a == FW_DROP ? "drop" : "accept";
}

static void text_rule_line(FILE *f, char sign, __u32 pos, const char *text, bool *first)
{
	fprintf(f, "    %c rule %u: %s\n", sign, pos, text);
}

static void names_text(FILE *f, const char (*names)[SL_NAME_MAX], __u32 n)
{
	if (!n)
		fprintf(f, " (none)");
	for (__u32 i = 0; i < n; i++)
		fprintf(f, " %s", names[i]);
}

/* One line about an instance of another type: its settings. */
static void nf_summary(FILE *f, const struct sl_config_nf *nf)
{
	if (!strcmp(nf->type, CT_TYPE)) {
		fprintf(f, "size %u, tcp %s, drop_invalid %s, gc_interval_ms %u",
			nf->ct.max_entries, nf->ct.cfg.flags & CT_CFG_LOOSE ? "loose" : "strict",
			nf->ct.cfg.flags & CT_CFG_DROP_INVALID ? "true" : "false",
			nf->ct.cfg.gc_interval_ms);
	} else if (!strcmp(nf->type, FM_TYPE)) {
		fprintf(f, "max_flows %u", nf->max_flows);
	} else if (!strcmp(nf->type, HTTPMON_TYPE)) {
		fprintf(f, "ports");
		for (__u32 i = 0; i < nf->http.nports; i++)
			fprintf(f, " %u", nf->http.ports[i]);
		fprintf(f, ", routes");
		for (__u32 i = 0; i < nf->http.nroutes; i++)
			fprintf(f, " %s", nf->http.routes[i]);
		if (!nf->http.nroutes)
			fprintf(f, " (none)");
		fprintf(f, ", max_templates %u", nf->http.max_templates);
	} else if (!strcmp(nf->type, NAT_TYPE)) {
		fprintf(f, "%u rule%s", nf->nat->n, nf->nat->n == 1 ? "" : "s");
		for (__u32 i = 0; i < nf->nat->n; i++)
			fprintf(f, "%s %s", i ? "," : ":", nf->nat->spec[i].name);
	} else if (!strcmp(nf->type, LB_TYPE)) {
		__u32 nb = 0;

		for (__u32 i = 0; i < nf->lb->conf.n; i++)
			nb += nf->lb->conf.svcs[i].nbackends;
		fprintf(f, "%u service%s, %u backend%s, forward %s, decap %s", nf->lb->conf.n,
			nf->lb->conf.n == 1 ? "" : "s", nb, nb == 1 ? "" : "s",
			nf->lb->forward ? "on" : "off", nf->lb->decap ? "on" : "off");
	} else {
		fprintf(f, "created");
	}
}

/* Walks what differs in a nat or lb instance, one item a call: sign '+'
 * added, '-' removed, '~' changed. */
typedef void (*item_cb)(FILE *f, char sign, const char *text, bool *first);

static void nat_walk_items(FILE *f, const struct nat_specs *old, const struct nat_specs *now,
			   item_cb cb, bool *first)
{
	char text[SL_NAME_MAX + 2 * NAT_TEXT_MAX + 64];
	__u32 kept = 0, i, j;
	bool moved = false;

	for (i = 0; i < old->n; i++) {
		for (j = 0; j < now->n && strcmp(now->spec[j].name, old->spec[i].name); j++)
			;
		if (j == now->n) {
			snprintf(text, sizeof(text), "rule %s: %s", old->spec[i].name,
				 old->spec[i].text);
			cb(f, '-', text, first);
		}
	}
	for (j = 0; j < now->n; j++) {
		for (i = 0; i < old->n && strcmp(now->spec[j].name, old->spec[i].name); i++)
			;
		if (i == old->n) {
			snprintf(text, sizeof(text), "rule %s: %s", now->spec[j].name,
				 now->spec[j].text);
			cb(f, '+', text, first);
			continue;
		}
		/* kept rules must come in the same order as before */
		moved |= i < kept;
		kept = i;
		if (strcmp(now->spec[j].text, old->spec[i].text)) {
			snprintf(text, sizeof(text), "rule %s: %s -> %s", now->spec[j].name,
				 old->spec[i].text, now->spec[j].text);
			cb(f, '~', text, first);
		}
	}
	if (moved) {
		size_t n = snprintf(text, sizeof(text), "order:");

		for (j = 0; j < now->n && n < sizeof(text); j++)
			n += snprintf(text + n, sizeof(text) - n, " %s", now->spec[j].name);
		cb(f, '~', text, first);
	}
}

static void be_text(const struct lb_service_info *s, const struct lb_backend_info *b,
		    char *buf, size_t len)
{
	char svc[80], ep[64];

	svc_text(&s->key, svc, sizeof(svc));
	lb_format_endpoint(b->addr.family, b->addr.addr, b->addr.port, ep, sizeof(ep));
	snprintf(buf, len, "backend %s -> %s", svc, ep);
}

static void svc_settings(const struct lb_service_info *s, char *buf, size_t len)
{
	size_t n = snprintf(buf, len, "%s", lb_sched_name(s->conf.sched));

	if (s->conf.sched == LB_SCHED_MH && n < len)
		n += snprintf(buf + n, len - n, " (table %u)", s->conf.mh_size ?: LB_MH_DEFAULT);
	if (n < len)
		snprintf(buf + n, len - n, ", %u backend%s", s->nbackends,
			 s->nbackends == 1 ? "" : "s");
}

static void lb_walk_svc(FILE *f, const struct lb_service_info *o,
			const struct lb_service_info *w, item_cb cb, bool *first)
{
	char text[256], name[80], a[64], b[64];

	svc_text(&w->key, name, sizeof(name));
	if (!o) {
		svc_settings(w, a, sizeof(a));
		snprintf(text, sizeof(text), "service %s: %s", name, a);
		cb(f, '+', text, first);
	} else if (o->conf.sched != w->conf.sched || o->conf.mh_size != w->conf.mh_size) {
		svc_settings(o, a, sizeof(a));
		svc_settings(w, b, sizeof(b));
		snprintf(text, sizeof(text), "service %s: %s -> %s", name, a, b);
		cb(f, '~', text, first);
	}
	for (__u32 i = 0; o && i < o->nbackends; i++) {
		if (find_backend(w, &o->backends[i].addr))
			continue;
		be_text(o, &o->backends[i], text, sizeof(text));
		cb(f, '-', text, first);
	}
	for (__u32 i = 0; i < w->nbackends; i++) {
		const struct lb_backend_info *nb = &w->backends[i];
		const struct lb_backend_info *ob = find_backend(o, &nb->addr);
		size_t n;

		if (ob && ob->conf.fwd == nb->conf.fwd && ob->conf.weight == nb->conf.weight)
			continue;
		be_text(w, nb, text, sizeof(text));
		n = strlen(text);
		if (!ob)
			snprintf(text + n, sizeof(text) - n, ": %s, weight %u",
				 lb_methods[nb->conf.fwd], nb->conf.weight);
		else
			snprintf(text + n, sizeof(text) - n, ": %s, weight %u -> %s, weight %u",
				 lb_methods[ob->conf.fwd], ob->conf.weight,
				 lb_methods[nb->conf.fwd], nb->conf.weight);
		cb(f, ob ? '~' : '+', text, first);
	}
}

static void lb_walk_items(FILE *f, const struct sl_config_lb *old,
			  const struct sl_config_lb *now, item_cb cb, bool *first)
{
	char text[256];

	for (__u32 i = 0; i < old->conf.n; i++) {
		if (find_service(&now->conf, &old->conf.svcs[i].key))
			continue;
		svc_text(&old->conf.svcs[i].key, text, sizeof(text));
		memmove(text + 8, text, strlen(text) + 1);
		memcpy(text, "service ", 8);
		cb(f, '-', text, first);
	}
	for (__u32 i = 0; i < now->conf.n; i++)
		lb_walk_svc(f, find_service(&old->conf, &now->conf.svcs[i].key),
			    &now->conf.svcs[i], cb, first);
	if (old->forward != now->forward) {
		snprintf(text, sizeof(text), "forward: %s -> %s", old->forward ? "on" : "off",
			 now->forward ? "on" : "off");
		cb(f, '~', text, first);
	}
	if (old->decap != now->decap) {
		snprintf(text, sizeof(text), "decap: %s -> %s", old->decap ? "on" : "off",
			 now->decap ? "on" : "off");
		cb(f, '~', text, first);
	}
}

static void nf_walk_items(FILE *f, const struct sl_config_nf *old,
			  const struct sl_config_nf *nf, item_cb cb)
{
	bool first = true;

	if (nf->nat)
		nat_walk_items(f, old->nat, nf->nat, cb, &first);
	else if (nf->lb)
		lb_walk_items(f, old->lb, nf->lb, cb, &first);
}

static void text_item(FILE *f, char sign, const char *text, bool *first)
{
	fprintf(f, "    %c %s\n", sign, text);
}

static void json_item(FILE *f, char sign, const char *text, bool *first)
{
	fprintf(f, "%s{\"op\": \"%s\", \"item\": ", *first ? "" : ", ",
		sign == '+' ? "add" : sign == '-' ? "remove" : "change");
	write_quoted(f, text);
	fputc('}', f);
	*first = false;
}

typedef void (*field_cb)(FILE *f, const char *field, const char *from, const char *to,
			 bool *first);

static void field_u32(FILE *f, field_cb cb, const char *field, __u32 a, __u32 b, bool *first)
{
	char x[16], y[16];

	if (a == b)
		return;
	snprintf(x, sizeof(x), "%u", a);
	snprintf(y, sizeof(y), "%u", b);
	cb(f, field, x, y, first);
}

static void http_text(const struct httpmon_opts *o, bool routes, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (__u32 i = 0; i < (routes ? o->nroutes : o->nports) && n < len; i++) {
		if (routes)
			n += snprintf(buf + n, len - n, "%s%s", i ? " " : "", o->routes[i]);
		else
			n += snprintf(buf + n, len - n, "%s%u", i ? " " : "", o->ports[i]);
	}
	if (!buf[0])
		snprintf(buf, len, "(none)");
}

/* Walks the settings that differ between a loaded and a desired instance. */
static void nf_walk_changes(FILE *f, const struct sl_config_nf *old,
			    const struct sl_config_nf *nf, field_cb cb)
{
	bool first = true;

	if (!strcmp(nf->type, CT_TYPE)) {
		const struct ct_config *a = &old->ct.cfg, *b = &nf->ct.cfg;
		char field[64];

		if ((a->flags ^ b->flags) & CT_CFG_LOOSE)
			cb(f, "tcp", a->flags & CT_CFG_LOOSE ? "loose" : "strict",
			   b->flags & CT_CFG_LOOSE ? "loose" : "strict", &first);
		if ((a->flags ^ b->flags) & CT_CFG_DROP_INVALID)
			cb(f, "drop_invalid", a->flags & CT_CFG_DROP_INVALID ? "true" : "false",
			   b->flags & CT_CFG_DROP_INVALID ? "true" : "false", &first);
		field_u32(f, cb, "gc_interval_ms", a->gc_interval_ms, b->gc_interval_ms, &first);
		for (unsigned int i = 0; i < CT_TO_MAX; i++) {
			if (!ct_timeout_name(i))
				continue;
			snprintf(field, sizeof(field), "timeouts.%s", ct_timeout_name(i));
			field_u32(f, cb, field, a->timeout_ns[i] / NSEC, b->timeout_ns[i] / NSEC,
				  &first);
		}
	} else if (!strcmp(nf->type, HTTPMON_TYPE)) {
		char x[HTTP_MAX_ROUTES * HTTP_TMPL_LEN + 16], y[sizeof(x)];

		for (int r = 0; r < 2; r++) {
			http_text(&old->http, r, x, sizeof(x));
			http_text(&nf->http, r, y, sizeof(y));
			if (strcmp(x, y))
				cb(f, r ? "routes" : "ports", x, y, &first);
		}
		field_u32(f, cb, "max_templates", old->http.max_templates,
			  nf->http.max_templates, &first);
	}
}

static void text_field(FILE *f, const char *field, const char *from, const char *to,
		       bool *first)
{
	fprintf(f, "    %s: %s -> %s\n", field, from, to);
}

static void json_field(FILE *f, const char *field, const char *from, const char *to,
		       bool *first)
{
	fprintf(f, "%s{\"field\": \"%s\", \"old\": ", *first ? "" : ", ", field);
	write_quoted(f, from);
	fprintf(f, ", \"new\": ");
	write_quoted(f, to);
	fputc('}', f);
	*first = false;
}

static void nf_print(FILE *f, const struct sl_config_inst_change *c)
{
	switch (c->op) {
	case SL_CFG_CREATE:
		fprintf(f, "+ %s %s: ", c->type, c->name);
		nf_summary(f, c->nf);
		fputc('\n', f);
		break;
	case SL_CFG_REPLACE:
		fprintf(f, "~ %s %s: %s\n", c->type, c->name,
			!strcmp(c->type, CT_TYPE) ? "options set in place (its connections stay)" :
			!strcmp(c->type, NAT_TYPE) ? "rules reloaded atomically (mappings and counters stay)" :
			!strcmp(c->type, LB_TYPE) ? "services switched atomically (unchanged backends keep their flows)" :
			"reloaded (its counters start from zero)");
		nf_walk_changes(f, &c->old_nf, c->nf, text_field);
		nf_walk_items(f, &c->old_nf, c->nf, text_item);
		break;
	case SL_CFG_DELETE:
		fprintf(f, "- %s %s: not in the document, deleted\n", c->type, c->name);
		break;
	}
}

int sl_config_plan_print(const struct sl_config_plan *plan, FILE *f)
{
	int err;

	if (sl_config_plan_empty(plan)) {
		fprintf(f, "no changes\n");
		return 0;
	}
	for (__u32 i = 0; i < plan->ninsts; i++) {
		const struct sl_config_inst_change *c = &plan->insts[i];

		if (strcmp(c->type, FW_TYPE)) {
			nf_print(f, c);
			continue;
		}
		switch (c->op) {
		case SL_CFG_CREATE:
			fprintf(f, "+ firewall %s: default %s, %u rule%s\n", c->name,
				action_name(c->fw->rs.default_action), c->fw->rs.n,
				c->fw->rs.n == 1 ? "" : "s");
			break;
		case SL_CFG_REPLACE:
			fprintf(f, "~ firewall %s: reloaded, %u rule%s\n", c->name,
				c->fw->rs.n, c->fw->rs.n == 1 ? "" : "s");
			if (c->old.default_action != c->fw->rs.default_action)
				fprintf(f, "    default %s -> %s\n", action_name(c->old.default_action),
					action_name(c->fw->rs.default_action));
			err = walk_rule_diff(c, f, text_rule_line);
			if (err)
				return err;
			break;
		case SL_CFG_DELETE:
			fprintf(f, "- %s %s: not in the document, deleted\n", c->type, c->name);
			break;
		}
	}
	for (__u32 i = 0; i < plan->nchains; i++) {
		const struct sl_config_chain_change *c = &plan->chains[i];

		fprintf(f, "%c chain %s %s:", c->op == SL_CFG_CREATE ? '+' :
			c->op == SL_CFG_REPLACE ? '~' : '-', c->dev, sl_hook_name(c->hook));
		if (c->op == SL_CFG_DELETE) {
			fprintf(f, " detached (was");
			names_text(f, c->old_names, c->old_n);
			fprintf(f, ")\n");
			continue;
		}
		names_text(f, c->names, c->n);
		if (c->op == SL_CFG_REPLACE) {
			fprintf(f, " (was");
			names_text(f, c->old_names, c->old_n);
			fprintf(f, ")");
		}
		fputc('\n', f);
	}
	fprintf(f, "%u change%s\n", plan_changes(plan), plan_changes(plan) == 1 ? "" : "s");
	return ferror(f) ? sl_err(-EIO, "write error") : 0;
}

static const char *op_name(enum sl_config_op op)
{
	return op == SL_CFG_CREATE ? "create" : op == SL_CFG_REPLACE ? "replace" : "delete";
}

static void json_rule_line(FILE *f, char sign, __u32 pos, const char *text, bool *first)
{
	fprintf(f, "%s{\"op\": \"%s\", \"index\": %u, \"rule\": ", *first ? "" : ", ",
		sign == '+' ? "add" : "remove", pos);
	write_quoted(f, text);
	fputc('}', f);
	*first = false;
}

static void names_json(FILE *f, const char (*names)[SL_NAME_MAX], __u32 n)
{
	fputc('[', f);
	for (__u32 i = 0; i < n; i++) {
		fprintf(f, "%s", i ? ", " : "");
		write_quoted(f, names[i]);
	}
	fputc(']', f);
}

int sl_config_plan_print_json(const struct sl_config_plan *plan, FILE *f)
{
	int err;

	fprintf(f, "{\"changes\": %u, \"instances\": [", plan_changes(plan));
	for (__u32 i = 0; i < plan->ninsts; i++) {
		const struct sl_config_inst_change *c = &plan->insts[i];

		fprintf(f, "%s{\"op\": \"%s\", \"name\": ", i ? ", " : "", op_name(c->op));
		write_quoted(f, c->name);
		fprintf(f, ", \"type\": ");
		write_quoted(f, c->type);
		if (c->fw)
			fprintf(f, ", \"default\": \"%s\", \"rules\": %u",
				action_name(c->fw->rs.default_action), c->fw->rs.n);
		if (c->nf && c->op == SL_CFG_REPLACE) {
			fprintf(f, ", \"field_changes\": [");
			nf_walk_changes(f, &c->old_nf, c->nf, json_field);
			fputc(']', f);
			if (c->nf->nat || c->nf->lb) {
				fprintf(f, ", \"item_changes\": [");
				nf_walk_items(f, &c->old_nf, c->nf, json_item);
				fputc(']', f);
			}
		} else if (c->op == SL_CFG_REPLACE) {
			fprintf(f, ", \"old_default\": \"%s\", \"rule_changes\": [",
				action_name(c->old.default_action));
			err = walk_rule_diff(c, f, json_rule_line);
			if (err)
				return err;
			fputc(']', f);
		}
		fputc('}', f);
	}
	fprintf(f, "], \"chains\": [");
	for (__u32 i = 0; i < plan->nchains; i++) {
		const struct sl_config_chain_change *c = &plan->chains[i];

		fprintf(f, "%s{\"op\": \"%s\", \"dev\": ", i ? ", " : "", op_name(c->op));
		write_quoted(f, c->dev);
		fprintf(f, ", \"hook\": \"%s\", \"instances\": ", sl_hook_name(c->hook));
		names_json(f, c->names, c->n);
		fprintf(f, ", \"old_instances\": ");
		names_json(f, c->old_names, c->old_n);
		fputc('}', f);
	}
	fprintf(f, "]}\n");
	return ferror(f) ? sl_err(-EIO, "write error") : 0;
}

/* ---- applying --------------------------------------------------------------- */

static int set_chain(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		     const char (*names)[SL_NAME_MAX], __u32 n)
{
	const char *v[SL_CHAIN_MAX];

	for (__u32 i = 0; i < n && i < SL_CHAIN_MAX; i++)
		v[i] = names[i];
	return sl_chain_set(ctx, dev, hook, v, n);
}

/* Reloads a replaced firewall, carrying the counters of the rules that stay.
 * *old_per gets the loaded per-CPU counters (to undo with). */
static int replace_fw(struct sl_ctx *ctx, const struct sl_config_inst_change *c,
		      struct fw_counter ***old_per, __u32 *old_n)
{
	const struct fw_ruleset *want = &c->fw->rs;
	const struct fw_counter **carry;
	struct fw_ruleset now;
	int err = fw_read(ctx, c->name, &now, NULL, old_per);

	if (err)
		return err;
	*old_n = now.n + 1;
	fw_ruleset_free(&now);
	if (*old_n != c->old.n + 1) {
		/* Changed since the diff: carry nothing rather than the wrong counters. */
		return fw_load(ctx, c->name, want, NULL);
	}
	carry = calloc(want->n + 1, sizeof(*carry));
	if (!carry)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 j = 0; j < want->n; j++)
		if (c->from[j] >= 0)
			carry[j] = (*old_per)[c->from[j]];
	if (c->from[want->n] >= 0)
		carry[want->n] = (*old_per)[c->old.n];
	err = fw_load(ctx, c->name, want, carry);
	free(carry);
	return err;
}

/* Creates an instance of another type, or sets its settings (to nf: the
 * desired ones, or the old ones when undoing). */
static int nf_set(struct sl_ctx *ctx, enum sl_config_op op, const struct sl_config_nf *nf)
{
	if (!strcmp(nf->type, CT_TYPE))
		return op == SL_CFG_CREATE ? ct_create(ctx, nf->name, &nf->ct) :
		       ct_config_write(ctx, nf->name, &nf->ct.cfg);
	if (!strcmp(nf->type, FM_TYPE))
		return fm_load(ctx, nf->name, nf->max_flows);
	if (!strcmp(nf->type, RT_TYPE))
		return rt_load(ctx, nf->name);
	if (!strcmp(nf->type, HTTPMON_TYPE))
		return httpmon_load(ctx, nf->name, &nf->http);
	return sl_err(-EOPNOTSUPP, "%s: no such NF type", nf->type);
}

struct chain_ref {
	__u32 ifindex;
	enum sl_hook hook;
};

struct slot_chains {
	__u32 slot;
	struct chain_ref v[64];
	int n;
};

static int slot_chains_cb(__u32 ifindex, enum sl_hook hook, const struct sl_chain *chain,
			  void *arg)
{
	struct slot_chains *sc = arg;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX && sc->n < 64; i++) {
		if (chain->slots[i] == sc->slot) {
			sc->v[sc->n].ifindex = ifindex;
			sc->v[sc->n++].hook = hook;
			break;
		}
	}
	return 0;
}

/* Takes an instance off every chain that runs it, then deletes it: undoes
 * a create, also of an NF that put itself on chains (nat rules do). */
static void instance_remove(struct sl_ctx *ctx, const char *name)
{
	struct slot_chains sc = {};
	struct inst_list insts = {};
	struct sl_instance inst;

	if (sl_instance_get(ctx, name, &inst))
		return;
	sc.slot = inst.slot;
	sl_chain_foreach(ctx, slot_chains_cb, &sc);
	sl_instance_foreach(ctx, collect_inst, &insts);
	for (int i = 0; i < sc.n && !insts.err; i++) {
		const char *names[SL_CHAIN_MAX];
		struct sl_chain chain;
		char dev[IF_NAMESIZE];
		__u32 n = 0;

		if (!if_indextoname(sc.v[i].ifindex, dev) ||
		    sl_chain_get(ctx, dev, sc.v[i].hook, &chain))
			continue;
		for (__u32 j = 0; j < chain.len && j < SL_CHAIN_MAX; j++)
			for (__u32 k = 0; k < insts.n; k++)
				if (chain.slots[j] != inst.slot && insts.v[k].slot == chain.slots[j])
					names[n++] = insts.v[k].name;
		sl_chain_set(ctx, dev, sc.v[i].hook, names, n);
	}
	free(insts.v);
	sl_instance_delete(ctx, name);
}

/* What lb_apply() gets: a service the document leaves as it is passes as
 * loaded (its backends' order and health states), so lb_apply() does not
 * touch it; a changed one keeps the health state of the backends it keeps
 * (new ones start up). */
static int lb_merge(const struct sl_config_lb *want, const struct lb_conf *now,
		    struct lb_conf *out)
{
	int err = 0;

	out->n = 0;
	out->svcs = calloc(want->conf.n + 1, sizeof(*out->svcs));
	if (!out->svcs)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < want->conf.n && !err; i++) {
		const struct lb_service_info *w = &want->conf.svcs[i];
		const struct lb_service_info *h = find_service(now, &w->key);

		err = svc_copy(&out->svcs[i], h && svc_same(w, h) ? h : w);
		if (err)
			break;
		out->n++;
		if (h && svc_same(w, h))
			continue;
		for (__u32 j = 0; j < w->nbackends; j++) {
			const struct lb_backend_info *b = find_backend(h, &w->backends[j].addr);

			out->svcs[i].backends[j].up = b ? b->up : true;
		}
	}
	if (err)
		lb_conf_free(out);
	return err;
}

static int lb_flags(struct sl_ctx *ctx, const char *name, bool forward, bool decap)
{
	int err = lb_set_forward(ctx, name, forward);

	return err ?: lb_set_decap(ctx, name, decap);
}

/* Puts an instance back as the plan found it (old_lb: the load balancer
 * as lb_list() read it before the change). */
static void nf_undo(struct sl_ctx *ctx, const struct sl_config_inst_change *c,
		    const struct lb_conf *old_lb)
{
	if (c->op == SL_CFG_CREATE) {
		instance_remove(ctx, c->name);
	} else if (c->nf->nat) {
		nat_load(ctx, c->old_nf.nat);
	} else if (c->nf->lb) {
		lb_apply(ctx, c->name, old_lb);
		lb_flags(ctx, c->name, c->old_nf.lb->forward, c->old_nf.lb->decap);
	} else {
		nf_set(ctx, SL_CFG_REPLACE, &c->old_nf);
	}
}

/* Creates or changes an instance of another type, all or nothing: a
 * failed step is undone before returning. */
static int nf_change(struct sl_ctx *ctx, const struct sl_config_inst_change *c,
		     struct lb_conf *old_lb)
{
	struct lb_conf merged = {};
	char msg[512];
	int err;

	if (c->nf->nat) {
		err = nat_load(ctx, c->nf->nat);
	} else if (c->nf->lb) {
		/* read under the writer lock: the health states as they are */
		err = c->op == SL_CFG_REPLACE ? lb_list(ctx, c->name, old_lb) : 0;
		if (err)
			return err;
		err = lb_merge(c->nf->lb, old_lb, &merged);
		err = err ?: lb_apply(ctx, c->name, &merged);
		err = err ?: lb_flags(ctx, c->name, c->nf->lb->forward, c->nf->lb->decap);
		lb_conf_free(&merged);
	} else {
		return nf_set(ctx, c->op, c->nf);
	}
	if (err) {
		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		nf_undo(ctx, c, old_lb);
		sl_err(err, "%s", msg);
	}
	return err;
}

int sl_config_apply(struct sl_ctx *ctx, const struct sl_config_plan *plan)
{
	struct fw_counter ***old_per = calloc(plan->ninsts + 1, sizeof(*old_per));
	__u32 *old_n = calloc(plan->ninsts + 1, sizeof(*old_n));
	struct lb_conf *old_lb = calloc(plan->ninsts + 1, sizeof(*old_lb));
	__u32 done_insts = 0, done_chains = 0;
	char msg[512];
	int err = 0;

	if (!old_per || !old_n || !old_lb) {
		free(old_per);
		free(old_n);
		free(old_lb);
		return sl_err(-ENOMEM, "out of memory");
	}
	/* 1. Create and replace instances; no chain runs the new ones yet, and
	 * a replaced one switches atomically in its slot. */
	for (; done_insts < plan->ninsts; done_insts++) {
		const struct sl_config_inst_change *c = &plan->insts[done_insts];

		if (c->nf && c->op != SL_CFG_DELETE)
			err = nf_change(ctx, c, &old_lb[done_insts]);
		else if (c->op == SL_CFG_CREATE)
			err = fw_load(ctx, c->name, &c->fw->rs, NULL);
		else if (c->op == SL_CFG_REPLACE)
			err = replace_fw(ctx, c, &old_per[done_insts], &old_n[done_insts]);
		if (err) {
			snprintf(msg, sizeof(msg), "%s %s: %s", c->type, c->name, sl_errmsg());
			goto undo;
		}
	}
	/* 2. Chains, each set whole in one map update. */
	for (; done_chains < plan->nchains; done_chains++) {
		const struct sl_config_chain_change *c = &plan->chains[done_chains];

		err = set_chain(ctx, c->dev, c->hook, c->names, c->n);
		if (err) {
			snprintf(msg, sizeof(msg), "chain %s %s: %s", c->dev,
				 sl_hook_name(c->hook), sl_errmsg());
			goto undo;
		}
	}
	/* 3. Instances no chain runs any more. */
	for (__u32 i = 0; i < plan->ninsts; i++) {
		const struct sl_config_inst_change *c = &plan->insts[i];
		int e;

		if (c->op != SL_CFG_DELETE)
			continue;
		e = sl_instance_delete(ctx, c->name);
		if (e && !err) {
			err = e;
			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		}
	}
	if (err)
		sl_err(err, "%s (the rest was applied)", msg);
	goto out;
undo:
	/* Back to the loaded state, as far as the kernel lets us. */
	while (done_chains-- > 0) {
		const struct sl_config_chain_change *c = &plan->chains[done_chains];

		set_chain(ctx, c->dev, c->hook, c->old_names, c->old_n);
	}
	while (done_insts-- > 0) {
		const struct sl_config_inst_change *c = &plan->insts[done_insts];

		if (c->op == SL_CFG_CREATE)
			instance_remove(ctx, c->name);
		else if (c->op == SL_CFG_REPLACE && c->nf)
			nf_undo(ctx, c, &old_lb[done_insts]);
		else if (c->op == SL_CFG_REPLACE)
			fw_load(ctx, c->name, &c->old,
				old_n[done_insts] == c->old.n + 1 ?
				(const struct fw_counter *const *)old_per[done_insts] : NULL);
	}
	sl_err(err, "%s (nothing applied)", msg);
out:
	for (__u32 i = 0; i < plan->ninsts; i++) {
		fw_percpu_free(old_per[i], old_n[i]);
		lb_conf_free(&old_lb[i]);
	}
	free(old_per);
	free(old_n);
	free(old_lb);
	return err;
}
