// SPDX-License-Identifier: GPL-2.0
/* HTTP monitor NF control code: configuration -> maps, maps -> rows. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "httpmon.h"
#include "httpmon.skel.h"

/* Histogram rows kept at most: a prealloc'd per-CPU hash. */
#define HTTP_STATS_MAX 32768

static const char *const http_pins[] = { "http_config", "http_conns", "http_tmpls",
					 "http_stats", "http_counters" };
#define NPINS (sizeof(http_pins) / sizeof(http_pins[0]))

const double httpmon_bucket_le[HTTP_NBUCKETS - 1] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const method_names[HTTP_M_MAX] = {
	[HTTP_M_GET] = "GET",	      [HTTP_M_HEAD] = "HEAD",
	[HTTP_M_POST] = "POST",	      [HTTP_M_PUT] = "PUT",
	[HTTP_M_DELETE] = "DELETE",   [HTTP_M_CONNECT] = "CONNECT",
	[HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_TRACE] = "TRACE",
	[HTTP_M_PATCH] = "PATCH",
};

const char *httpmon_method_name(unsigned int method)
{
	return method < HTTP_M_MAX && method_names[method] ? method_names[method] : "OTHER";
}

void httpmon_route_name(__u64 tmpl, const char *path, char *buf, size_t len)
{
	if (tmpl == HTTP_TMPL_OTHER)
		snprintf(buf, len, "other");
	else if (tmpl == HTTP_TMPL_PARTIAL)
		snprintf(buf, len, "partial");
	else if (path && path[0])
		snprintf(buf, len, "%.*s", HTTP_TMPL_LEN - 1, path);
	else
		snprintf(buf, len, "unknown");
}

int httpmon_opts_add_port(struct httpmon_opts *o, const char *text)
{
	char *end;
	unsigned long p;

	errno = 0;
	p = strtoul(text, &end, 10);
	if (errno || *end || !*text || p < 1 || p > 65535)
		return sl_err(-EINVAL, "--port '%s': need a TCP port from 1 to 65535", text);
	for (__u32 i = 0; i < o->nports; i++)
		if (o->ports[i] == p)
			return sl_err(-EINVAL, "--port %lu: given twice", p);
	if (o->nports >= HTTP_MAX_PORTS)
		return sl_err(-EINVAL, "--port %lu: at most %d ports per instance", p,
			      HTTP_MAX_PORTS);
	o->ports[o->nports++] = p;
	return 0;
}

int httpmon_opts_add_route(struct httpmon_opts *o, const char *text)
{
	size_t n = strlen(text);

	if (n < 2 || text[0] != '/' || text[n - 1] != '*' || n - 1 > HTTP_ROUTE_PREFIX_MAX)
		return sl_err(-EINVAL, "--route '%s': need '/', a prefix of at most %d bytes in all, then '*' (like /static/*)",
			      text, HTTP_ROUTE_PREFIX_MAX);
	for (size_t i = 0; i + 1 < n; i++)
		if (text[i] <= ' ' || text[i] >= 0x7f || text[i] == '?' || text[i] == '#' ||
		    text[i] == '*')
			return sl_err(-EINVAL, "--route '%s': byte %zu: no spaces, controls, '?', '#' or '*' before the final '*'",
				      text, i + 1);
	for (__u32 i = 0; i < o->nroutes; i++)
		if (!strcmp(o->routes[i], text))
			return sl_err(-EINVAL, "--route %s: given twice", text);
	if (o->nroutes >= HTTP_MAX_ROUTES)
		return sl_err(-EINVAL, "--route %s: at most %d routes per instance", text,
			      HTTP_MAX_ROUTES);
	snprintf(o->routes[o->nroutes++], HTTP_TMPL_LEN, "%s", text);
	return 0;
}

/* The kernel's form of a route: prefix words and masks. */
static void route_compile(const char *text, struct http_route *r)
{
	__u8 word[HTTP_ROUTE_PREFIX_MAX] = {}, mask[HTTP_ROUTE_PREFIX_MAX] = {};

	memset(r, 0, sizeof(*r));
	r->len = strlen(text) - 1; /* without the star */
	r->name_len = strlen(text);
	memcpy(word, text, r->len);
	memset(mask, 0xff, r->len);
	memcpy(r->word, word, sizeof(word));
	memcpy(r->mask, mask, sizeof(mask));
	memcpy(r->name, text, r->name_len);
}

static int cmp_route_len(const void *a, const void *b)
{
	const struct http_route *x = a, *y = b;

	return (int)y->len - (int)x->len;
}

static int check_opts(const struct httpmon_opts *o)
{
	if (!o->nports)
		return sl_err(-EINVAL, "need at least one --port");
	if (o->nports > HTTP_MAX_PORTS)
		return sl_err(-EINVAL, "at most %d ports per instance", HTTP_MAX_PORTS);
	if (o->max_templates > HTTP_TMPL_MAX)
		return sl_err(-EINVAL, "--max-templates: at most %d", HTTP_TMPL_MAX);
	if (o->nroutes > HTTP_MAX_ROUTES)
		return sl_err(-EINVAL, "at most %d routes per instance", HTTP_MAX_ROUTES);
	return 0;
}

int httpmon_load(struct sl_ctx *ctx, const char *name, const struct httpmon_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct http_config cfg = { .nports = o->nports };
	struct httpmon_bpf *skel = NULL;
	struct sl_instance inst;
	struct bpf_map *maps[NPINS];
	char stage[PATH_MAX];
	__u32 zero = 0, rows;
	int err = check_opts(o);

	if (err)
		return err;
	err = sl_instance_prepare(ctx, name, HTTPMON_TYPE, &inst);
	if (err)
		return err;
	memcpy(cfg.ports, o->ports, sizeof(cfg.ports));
	cfg.nroutes = o->nroutes;
	for (__u32 i = 0; i < o->nroutes; i++)
		route_compile(o->routes[i], &cfg.routes[i]);
	qsort(cfg.routes, cfg.nroutes, sizeof(cfg.routes[0]), cmp_route_len);
	cfg.max_templates = o->max_templates ? o->max_templates : HTTP_TMPL_DEFAULT;
	rows = o->nports * (HTTP_M_MAX - 1) * (cfg.max_templates + 2) * 5;
	if (rows > HTTP_STATS_MAX)
		rows = HTTP_STATS_MAX;

	skel = httpmon_bpf__open_opts(&opts);
	if (!skel)
		return sl_err(-errno, "cannot open the httpmon BPF object: %s",
			      strerror(errno));
	skel->rodata->http_slot = inst.slot;
	maps[0] = skel->maps.http_config;
	maps[1] = skel->maps.http_conns;
	maps[2] = skel->maps.http_tmpls;
	maps[3] = skel->maps.http_stats;
	maps[4] = skel->maps.http_counters;
	bpf_map__set_max_entries(maps[2], cfg.max_templates);
	bpf_map__set_max_entries(maps[3], rows);
	/* http_spans is pinned by name, shared with older instances. */
	err = sl_pins_check(sl_base(ctx), skel->obj);
	if (err)
		goto out;
	err = httpmon_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the httpmon BPF program: %s", strerror(-err));
		goto out;
	}
	if (bpf_map_update_elem(bpf_map__fd(maps[0]), &zero, &cfg, BPF_ANY)) {
		err = sl_err(-errno, "cannot write http_config: %s", strerror(errno));
		goto out;
	}
	err = sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	for (size_t i = 0; i < NPINS && !err; i++)
		err = sl_pin(stage, http_pins[i], bpf_map__fd(maps[i]));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.httpmon_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.httpmon_tc));
	err = err ?: sl_instance_commit(ctx, &inst,
					bpf_program__fd(skel->progs.httpmon_xdp),
					bpf_program__fd(skel->progs.httpmon_tc));
	if (err)
		sl_pin_dir_remove(stage);
out:
	httpmon_bpf__destroy(skel);
	return err;
}

/* Takes the instance in slot out of dev's chain on hook, if there. */
static void chain_drop(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		       __u32 slot)
{
	static char names[SL_MAX_SLOTS][SL_NAME_MAX];
	const char *keep[SL_CHAIN_MAX];
	struct sl_chain chain;
	int n = 0;

	if (sl_chain_get(ctx, dev, hook, &chain) || httpmon_slot_names(ctx, names))
		return;
	for (__u32 i = 0; i < chain.len && i < SL_CHAIN_MAX; i++)
		if (chain.slots[i] != slot && chain.slots[i] < SL_MAX_SLOTS)
			keep[n++] = names[chain.slots[i]];
	sl_chain_set(ctx, dev, hook, keep, n);
}

int httpmon_attach(struct sl_ctx *ctx, const char *dev, const char *name,
		   const struct httpmon_opts *o)
{
	struct sl_instance inst;
	bool existed = !sl_instance_get(ctx, name, &inst);
	int err = sl_ifindex(dev);

	if (err < 0)
		return err;
	err = sl_chain_check(ctx, dev, SL_HOOK_TC_IN, name);
	err = err ?: sl_chain_check(ctx, dev, SL_HOOK_TC_OUT, name);
	err = err ?: httpmon_load(ctx, name, o);
	if (err)
		return err;
	err = sl_chain_ensure(ctx, dev, SL_HOOK_TC_IN, name);
	err = err ?: sl_chain_ensure(ctx, dev, SL_HOOK_TC_OUT, name);
	if (err && !existed) {
		char msg[256];

		/* Keep the first error's message over the cleanup's. */
		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		if (!sl_instance_get(ctx, name, &inst))
			chain_drop(ctx, dev, SL_HOOK_TC_IN, inst.slot);
		sl_instance_delete(ctx, name);
		sl_err(err, "%s", msg);
	}
	return err;
}

int httpmon_detach(struct sl_ctx *ctx, const char *dev, const char *name)
{
	struct sl_instance inst;
	int err = sl_instance_get(ctx, name, &inst);

	if (err)
		return err;
	if (strcmp(inst.type, HTTPMON_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not an httpmon", name,
			      inst.type);
	err = sl_ifindex(dev);
	if (err < 0)
		return err;
	chain_drop(ctx, dev, SL_HOOK_TC_IN, inst.slot);
	chain_drop(ctx, dev, SL_HOOK_TC_OUT, inst.slot);
	/* Still in another interface's chain: keep it. */
	if (sl_slot_in_use(ctx, inst.slot))
		return 0;
	return sl_instance_delete(ctx, name);
}

static int sum_counters(int fd, struct http_counters *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct http_counters *per = calloc(ncpu, sizeof(*per));
	__u32 zero = 0;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!per)
		return sl_err(-ENOMEM, "out of memory");
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		err = sl_err(-errno, "cannot read http_counters: %s", strerror(errno));
		goto out;
	}
	for (int c = 0; c < ncpu; c++) {
		__u64 *dst = (__u64 *)out, *src = (__u64 *)&per[c];

		for (size_t i = 0; i < sizeof(*out) / sizeof(__u64); i++)
			dst[i] += src[i];
	}
out:
	free(per);
	return err;
}

static int read_rows(int stats_fd, int tmpls_fd, struct httpmon_info *info)
{
	int ncpu = libbpf_num_possible_cpus();
	struct http_stat *per = calloc(ncpu, sizeof(*per));
	struct http_stat_key key, next, *prev = NULL;
	size_t cap = 0;
	int err = 0;

	if (!per)
		return sl_err(-ENOMEM, "out of memory");
	while (!bpf_map_get_next_key(stats_fd, prev, &next)) {
		struct httpmon_row *r;
		struct http_tmpl t = {};

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(stats_fd, &key, per))
			continue; /* gone meanwhile */
		if (info->nrows == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			void *p = realloc(info->rows, ncap * sizeof(*r));

			if (!p) {
				err = sl_err(-ENOMEM, "out of memory");
				break;
			}
			info->rows = p;
			cap = ncap;
		}
		r = &info->rows[info->nrows++];
		memset(r, 0, sizeof(*r));
		snprintf(r->instance, sizeof(r->instance), "%s", info->name);
		r->port = key.port;
		r->method = key.method;
		r->status_class = key.status_class;
		r->tmpl = key.tmpl;
		if (key.tmpl >= 16)
			bpf_map_lookup_elem(tmpls_fd, &key.tmpl, &t);
		httpmon_route_name(key.tmpl, t.path, r->route, sizeof(r->route));
		for (int c = 0; c < ncpu; c++) {
			r->st.count += per[c].count;
			r->st.sum_ns += per[c].sum_ns;
			for (int b = 0; b < HTTP_NBUCKETS; b++)
				r->st.buckets[b] += per[c].buckets[b];
		}
	}
	free(per);
	return err;
}

static __u32 count_keys(int fd)
{
	__u64 key, next, *prev = NULL;
	__u32 n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next) && n < HTTP_TMPL_MAX * 2) {
		key = next;
		prev = &key;
		n++;
	}
	return n;
}

static int read_once(struct sl_ctx *ctx, const char *name, struct httpmon_info *info)
{
	int fds[NPINS], dir_fd, err = 0;
	struct sl_instance inst;
	__u32 zero = 0;

	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < NPINS; i++)
		fds[i] = -1;
	err = sl_instance_get(ctx, name, &inst);
	if (err)
		return err;
	if (strcmp(inst.type, HTTPMON_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not an httpmon", name,
			      inst.type);
	snprintf(info->name, sizeof(info->name), "%s", name);
	dir_fd = sl_instance_open_dir(ctx, name);
	if (dir_fd < 0)
		return dir_fd;
	for (size_t i = 0; i < NPINS && !err; i++) {
		fds[i] = sl_obj_get_at(dir_fd, http_pins[i]);
		if (fds[i] < 0)
			err = fds[i];
	}
	close(dir_fd);
	if (!err && bpf_map_lookup_elem(fds[0], &zero, &info->cfg))
		err = sl_err(-errno, "cannot read http_config of '%s'", name);
	err = err ?: sum_counters(fds[4], &info->cnt);
	err = err ?: read_rows(fds[3], fds[2], info);
	if (!err)
		info->ntemplates = count_keys(fds[2]);
	for (size_t i = 0; i < NPINS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (err)
		httpmon_info_free(info);
	return err;
}

int httpmon_read(struct sl_ctx *ctx, const char *name, struct httpmon_info *info)
{
	int err = -ENOENT;

	/* A reload may remove the generation being read: try the next. */
	for (int tries = 0; tries < 5 && err == -ENOENT; tries++)
		err = read_once(ctx, name, info);
	return err;
}

void httpmon_info_free(struct httpmon_info *info)
{
	free(info->rows);
	info->rows = NULL;
	info->nrows = 0;
}

struct foreach_arg {
	int (*cb)(const struct sl_instance *inst, void *arg);
	void *arg;
};

static int foreach_one(const struct sl_instance *inst, void *arg)
{
	struct foreach_arg *fa = arg;

	if (strcmp(inst->type, HTTPMON_TYPE))
		return 0;
	return fa->cb(inst, fa->arg);
}

int httpmon_foreach(struct sl_ctx *ctx,
		    int (*cb)(const struct sl_instance *inst, void *arg), void *arg)
{
	struct foreach_arg fa = { cb, arg };

	return sl_instance_foreach(ctx, foreach_one, &fa);
}

double httpmon_quantile(const struct http_stat *st, double q)
{
	double rank, lo = 0, seen = 0;

	if (!st->count)
		return 0;
	rank = q * st->count;
	for (int b = 0; b < HTTP_NBUCKETS; b++) {
		double n = st->buckets[b];

		if (b == HTTP_NBUCKETS - 1)
			return lo; /* +Inf: the highest finite bound */
		if (seen + n >= rank && n > 0)
			return lo + (httpmon_bucket_le[b] - lo) * (rank - seen) / n;
		seen += n;
		lo = httpmon_bucket_le[b];
	}
	return lo;
}

int httpmon_spans_fd(struct sl_ctx *ctx)
{
	return sl_obj_get(sl_base(ctx), "http_spans");
}

static int name_slot(const struct sl_instance *inst, void *arg)
{
	char (*names)[SL_NAME_MAX] = arg;

	if (inst->slot < SL_MAX_SLOTS)
		snprintf(names[inst->slot], SL_NAME_MAX, "%s", inst->name);
	return 0;
}

int httpmon_slot_names(struct sl_ctx *ctx, char (*names)[SL_NAME_MAX])
{
	memset(names, 0, SL_MAX_SLOTS * SL_NAME_MAX);
	return sl_instance_foreach(ctx, name_slot, names);
}
