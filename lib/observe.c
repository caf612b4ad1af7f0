// SPDX-License-Identifier: GPL-2.0
/* Capture and path tracing: the filter expression, the observation session
 * over the ring sl_obs, and the pinned path policies (bpf/include/events.h
 * has the records, bpf/include/pipeline.h the data plane's side). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "internal.h"
#include "observe.h"

/* ---- filter expressions ------------------------------------------------ */

struct filter_parser {
	char *words[64];
	int n, pos;
	struct sl_filter *f;
	char *buf;
};

static const char *peek(struct filter_parser *p)
{
	return p->pos < p->n ? p->words[p->pos] : NULL;
}

static int bad_word(struct filter_parser *p, const char *why)
{
	const char *w = peek(p);

	if (!w)
		return sl_err(-EINVAL, "filter: %s at the end of the expression",
			      why);
	return sl_err(-EINVAL, "filter: %s at '%s' (word %d)", why, w,
		      p->pos + 1);
}

/* Fills mask with the first len bits set (network order). */
static void prefix_mask(__u32 mask[4], int len)
{
	for (int i = 0; i < 4; i++, len -= 32) {
		if (len >= 32)
			mask[i] = 0xffffffff;
		else if (len <= 0)
			mask[i] = 0;
		else
			mask[i] = htonl(~0U << (32 - len));
	}
}

/* Parses ADDR or ADDR/LEN; host bits set behind LEN are refused. */
static int parse_cidr(const char *s, __u8 *family, __u32 addr[4],
		      __u32 mask[4], bool need_len)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long len;
	int max;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	else if (need_len)
		return -EINVAL;
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		*family = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*family = 6;
	else
		return -EINVAL;
	max = *family == 4 ? 32 : 128;
	len = max;
	if (slash) {
		errno = 0;
		len = strtol(slash + 1, &end, 10);
		if (errno || *end || end == slash + 1 || len < 0 || len > max)
			return -EINVAL;
	}
	prefix_mask(mask, len);
	for (int i = 0; i < 4; i++)
		if (addr[i] & ~mask[i])
			return -EDOM;
	return 0;
}

static int parse_addr_term(struct filter_parser *p, struct sl_filter_term *t,
			   __u8 dir, bool net)
{
	const char *w = peek(p);
	int err;

	if (!w)
		return bad_word(p, net ? "need a CIDR" : "need an address");
	err = parse_cidr(w, &t->family, t->addr, t->mask, net);
	if (err == -EDOM)
		return bad_word(p, "bits set behind the prefix length");
	if (err)
		return bad_word(p, net ? "bad CIDR (want ADDR/LEN)" :
				"bad address (want an IPv4 or IPv6 address)");
	t->kind = SL_FK_ADDR;
	t->dir = dir;
	p->pos++;
	return 0;
}

static int parse_port_term(struct filter_parser *p, struct sl_filter_term *t,
			   __u8 dir)
{
	const char *w = peek(p);
	char *end;
	long v;

	if (!w)
		return bad_word(p, "need a port number");
	errno = 0;
	v = strtol(w, &end, 10);
	if (errno || *end || end == w || v < 1 || v > 65535)
		return bad_word(p, "bad port (want 1..65535)");
	t->kind = SL_FK_PORT;
	t->dir = dir;
	t->port = v;
	p->pos++;
	return 0;
}

static int proto_term(const char *w, struct sl_filter_term *t)
{
	static const struct {
		const char *name;
		__u8 proto, family;
	} protos[] = {
		{ "tcp", 6, 0 }, { "udp", 17, 0 },
		{ "icmp", 1, 4 }, { "icmp6", 58, 6 }, { "icmpv6", 58, 6 },
	};

	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		if (!strcmp(w, protos[i].name)) {
			t->kind = SL_FK_PROTO;
			t->proto = protos[i].proto;
			t->family = protos[i].family;
			return 0;
		}
	}
	return -EINVAL;
}

/* One term: a primitive of tcpdump's syntax, the subset the BPF side has. */
static int parse_term(struct filter_parser *p, struct sl_filter_term *t)
{
	const char *w = peek(p);
	__u8 dir = SL_FD_ANY;

	if (!w)
		return bad_word(p, "need a term");
	if (!proto_term(w, t)) { /* tcp, udp, icmp, icmp6 alone */
		p->pos++;
		return 0;
	}
	if (!strcmp(w, "proto")) {
		p->pos++;
		w = peek(p);
		if (!w || proto_term(w, t))
			return bad_word(p, "unknown protocol (want tcp, udp, icmp or icmp6)");
		p->pos++;
		return 0;
	}
	if (!strcmp(w, "sport") || !strcmp(w, "dport")) {
		p->pos++;
		return parse_port_term(p, t, w[0] == 's' ? SL_FD_SRC : SL_FD_DST);
	}
	if (!strcmp(w, "src") || !strcmp(w, "dst")) {
		dir = w[0] == 's' ? SL_FD_SRC : SL_FD_DST;
		p->pos++;
		w = peek(p);
		if (!w)
			return bad_word(p, "need host, net, port or an address");
	}
	if (!strcmp(w, "port")) {
		p->pos++;
		return parse_port_term(p, t, dir);
	}
	if (!strcmp(w, "net")) {
		p->pos++;
		return parse_addr_term(p, t, dir, true);
	}
	if (!strcmp(w, "host")) {
		p->pos++;
		return parse_addr_term(p, t, dir, false);
	}
	if (dir != SL_FD_ANY) /* src ADDR, dst ADDR */
		return parse_addr_term(p, t, dir, false);
	return bad_word(p, "unknown term (want host, src, dst, net, port, sport, "
			"dport, proto, tcp, udp, icmp or icmp6)");
}

static int split_words(struct filter_parser *p, int argc, char **argv)
{
	size_t len = 1;
	char *s, *tok, *save;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	p->buf = calloc(1, len);
	if (!p->buf)
		return sl_err(-ENOMEM, "out of memory");
	for (int i = 0; i < argc; i++) {
		strcat(p->buf, argv[i]);
		strcat(p->buf, " ");
	}
	for (s = p->buf; (tok = strtok_r(s, " \t\n", &save)); s = NULL) {
		if (p->n == (int)(sizeof(p->words) / sizeof(p->words[0])))
			return sl_err(-E2BIG, "filter: too many words");
		p->words[p->n++] = tok;
	}
	return 0;
}

int sl_filter_parse(int argc, char **argv, struct sl_filter *out)
{
	struct filter_parser p = { .f = out };
	struct sl_filter f = {};
	bool or_next = false;
	int err;

	err = split_words(&p, argc, argv);
	while (!err && p.pos < p.n) {
		if (f.nterms == SL_FILTER_TERMS) {
			err = bad_word(&p, "too many terms (at most 8)");
			break;
		}
		f.terms[f.nterms].or_before = or_next;
		err = parse_term(&p, &f.terms[f.nterms]);
		if (err)
			break;
		f.nterms++;
		if (!peek(&p))
			break;
		if (!strcmp(peek(&p), "and") || !strcmp(peek(&p), "or")) {
			or_next = !strcmp(peek(&p), "or");
			p.pos++;
			if (!peek(&p))
				err = bad_word(&p, "need a term after 'and'/'or'");
		} else {
			err = bad_word(&p, "need 'and' or 'or' between terms");
		}
	}
	free(p.buf);
	if (!err)
		*out = f;
	return err;
}

/* ---- the observation session ------------------------------------------- */

/* Opens a pinned map of the namespace (a new fd, closed by the caller). */
static int obs_map(struct sl_ctx *ctx, const char *name)
{
	return sl_obj_get(sl_base(ctx), name);
}

struct sl_obs {
	struct sl_ctx *ctx;
	struct ring_buffer *rb;
	int ring_fd, cfg_fd, state_fd, evcfg_fd, lock_fd;
	__u32 flag; /* our bit in sl_evcfg.obs, while on */
	sl_obs_cb cb;
	void *arg;
};

static int obs_ring_cb(void *arg, void *data, size_t size)
{
	struct sl_obs *obs = arg;

	if (size < sizeof(__u64) + sizeof(__u16))
		return 0;
	return obs->cb(data, size, obs->arg);
}

static int discard_cb(void *arg, void *data, size_t size)
{
	return 0;
}

static __u64 clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

__s64 sl_obs_realtime_offset(void)
{
	return (__s64)(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
}

/* Sets or clears bits of sl_evcfg.obs, keeping drop_sample. */
static int evcfg_obs(struct sl_obs *obs, __u32 set, __u32 clear)
{
	return sl_evcfg_update(obs->ctx, obs->evcfg_fd, set, clear, NULL);
}

static int reset_percpu(int fd);

static int reset_state(struct sl_obs *obs)
{
	return reset_percpu(obs->state_fd);
}

/* Zeroes the one entry of a per-CPU sl_obsstate map. */
static int reset_percpu(int fd)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sl_obsstate *v;
	__u32 zero = 0;
	int err = 0;

	if (ncpu < 0)
		return sl_err(ncpu, "cannot count CPUs");
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return sl_err(-ENOMEM, "out of memory");
	if (bpf_map_update_elem(fd, &zero, v, BPF_ANY))
		err = sl_err(-errno, "cannot reset the per-CPU counters: %s",
			     strerror(errno));
	free(v);
	return err;
}

/* The per-CPU token bucket for rate packets per second plus burst: each
 * CPU has its own, so together they stay within the rate plus burst. */
static int make_bucket(__u32 rate, __u32 burst, __u64 *cost_ns,
		       __u64 *burst_ns)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 r = rate ?: SL_OBS_DEFAULT_RATE;
	__u64 b = burst ?: (r / 10 ?: 1);

	if (ncpu < 1)
		return sl_err(-EINVAL, "cannot count CPUs");
	*cost_ns = 1000000000ULL * ncpu / r ?: 1;
	*burst_ns = (b / ncpu ?: 1) * *cost_ns;
	return 0;
}

/* The configuration the data plane reads, from the options. */
static int make_config(const struct sl_obs_opts *o, struct sl_obscfg *c)
{
	if (o->snaplen > SL_CAPTURE_SNAPLEN_MAX)
		return sl_err(-EINVAL, "snaplen %u: at most %d", o->snaplen,
			      SL_CAPTURE_SNAPLEN_MAX);
	memset(c, 0, sizeof(*c));
	c->ifindex = o->ifindex;
	c->sample = o->sample;
	c->snaplen = o->snaplen ?: SL_CAPTURE_SNAPLEN_MAX;
	c->filter = o->filter;
	return make_bucket(o->rate, o->burst, &c->cost_ns, &c->burst_ns);
}

static int open_maps(struct sl_obs *obs)
{
	static const char *const names[] = { "sl_obs", "sl_obscfg",
					     "sl_obsstate", "sl_evcfg" };
	int *fds[] = { &obs->ring_fd, &obs->cfg_fd, &obs->state_fd,
		       &obs->evcfg_fd };

	for (int i = 0; i < 4; i++) {
		*fds[i] = obs_map(obs->ctx, names[i]);
		if (*fds[i] < 0) {
			int err = *fds[i];

			if (err == -ENOENT)
				return sl_err(err, "no %s in this state: it was made "
					      "by a sluice without capture; run "
					      "'sluice reset' and load again", names[i]);
			return err;
		}
	}
	return 0;
}

int sl_obs_open(struct sl_ctx *ctx, const struct sl_obs_opts *opts,
		sl_obs_cb cb, void *arg, struct sl_obs **out)
{
	static const __u32 flags[] = {
		[SL_OBS_MODE_DROPS] = SL_OBS_CAPTURE_DROPS,
		[SL_OBS_MODE_ALL] = SL_OBS_CAPTURE_ALL,
		[SL_OBS_MODE_TRACE] = SL_OBS_TRACE,
	};
	struct sl_obscfg cfg;
	struct sl_obs *obs;
	__u32 zero = 0;
	int err;

	*out = NULL;
	if ((unsigned int)opts->mode > SL_OBS_MODE_TRACE)
		return sl_err(-EINVAL, "unknown observation mode %d", opts->mode);
	err = make_config(opts, &cfg);
	if (err)
		return err;
	obs = calloc(1, sizeof(*obs));
	if (!obs)
		return sl_err(-ENOMEM, "out of memory");
	obs->ctx = ctx;
	obs->cb = cb;
	obs->arg = arg;
	obs->ring_fd = obs->cfg_fd = obs->state_fd = obs->evcfg_fd = -1;
	obs->lock_fd = sl_reader_lock(ctx, "obs");
	if (obs->lock_fd < 0) {
		err = obs->lock_fd;
		goto fail;
	}
	err = open_maps(obs);
	if (err)
		goto fail;
	/* A session that died left its flag on: nobody reads now. */
	err = evcfg_obs(obs, 0, SL_OBS_CAPTURE_DROPS | SL_OBS_CAPTURE_ALL |
			SL_OBS_TRACE);
	if (err)
		goto fail;
	obs->rb = ring_buffer__new(obs->ring_fd, discard_cb, NULL, NULL);
	if (!obs->rb) {
		err = sl_err(-errno, "cannot map the ring sl_obs: %s",
			     strerror(errno));
		goto fail;
	}
	ring_buffer__consume(obs->rb); /* what an earlier session left */
	ring_buffer__free(obs->rb);
	obs->rb = ring_buffer__new(obs->ring_fd, obs_ring_cb, obs, NULL);
	if (!obs->rb) {
		err = sl_err(-errno, "cannot map the ring sl_obs: %s",
			     strerror(errno));
		goto fail;
	}
	err = reset_state(obs);
	if (!err && bpf_map_update_elem(obs->cfg_fd, &zero, &cfg, BPF_ANY))
		err = sl_err(-errno, "cannot write sl_obscfg: %s", strerror(errno));
	if (err)
		goto fail;
	/* Last: the data plane reads a complete configuration. */
	obs->flag = flags[opts->mode];
	err = evcfg_obs(obs, obs->flag, 0);
	if (err) {
		obs->flag = 0;
		goto fail;
	}
	*out = obs;
	return 0;
fail:
	sl_obs_close(obs);
	return err;
}

int sl_obs_poll(struct sl_obs *obs, int timeout_ms)
{
	int n;

	/* A record written without a wakeup is read when the wait ends. */
	n = timeout_ms ? ring_buffer__poll(obs->rb, timeout_ms) : 0;
	if (n == 0 || n == -EINTR)
		n = ring_buffer__consume(obs->rb);
	if (n < 0 && n != -ECANCELED)
		sl_err(n, "cannot read the ring sl_obs: %s", strerror(-n));
	return n;
}

int sl_obs_stop(struct sl_obs *obs)
{
	int err;

	if (!obs->flag)
		return 0;
	err = evcfg_obs(obs, 0, obs->flag);
	if (!err)
		obs->flag = 0;
	return err;
}

static int state_sum(int fd, struct sl_obs_stats *st);

int sl_obs_stats(struct sl_obs *obs, struct sl_obs_stats *st)
{
	return state_sum(obs->state_fd, st);
}

void sl_obs_close(struct sl_obs *obs)
{
	if (!obs)
		return;
	if (obs->evcfg_fd >= 0)
		sl_obs_stop(obs);
	ring_buffer__free(obs->rb);
	for (int *fd = &obs->ring_fd; fd <= &obs->lock_fd; fd++)
		if (*fd >= 0)
			close(*fd);
	free(obs);
}

/* ---- path policies ----------------------------------------------------- */

static int pathpol_fd(struct sl_ctx *ctx)
{
	int fd = obs_map(ctx, "sl_pathpol");

	if (fd == -ENOENT)
		return sl_err(fd, "no sl_pathpol in this state: it was made by a "
			      "sluice without path policies; run 'sluice reset' "
			      "and load again");
	return fd;
}

static void format_cidr(__u8 family, const __u32 addr[4], const __u32 mask[4],
			char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int bits = 0;

	for (int i = 0; i < 4; i++)
		bits += __builtin_popcount(mask[i]);
	inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, a, sizeof(a));
	snprintf(buf, len, "%s/%d", a, bits);
}

static void policy_view(const struct sl_pathpol *v, __u32 index,
			struct sl_path_policy *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%.31s", v->name);
	snprintf(p->via, sizeof(p->via), "%.31s", v->via);
	format_cidr(v->family, v->src, v->src_mask, p->from, sizeof(p->from));
	format_cidr(v->family, v->dst, v->dst_mask, p->to, sizeof(p->to));
	p->via_slot = v->via_slot;
	p->index = index;
}

int sl_path_policy_foreach(struct sl_ctx *ctx, sl_path_policy_cb cb, void *arg)
{
	struct sl_path_policy p;
	struct sl_pathpol v;
	int fd = pathpol_fd(ctx), ret = 0;

	if (fd < 0)
		return fd;
	for (__u32 i = 0; i < SL_PATHPOL_MAX && !ret; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v)) {
			ret = sl_err(-errno, "cannot read sl_pathpol: %s",
				     strerror(errno));
			break;
		}
		if (!v.used)
			continue;
		policy_view(&v, i, &p);
		ret = cb(&p, arg);
	}
	close(fd);
	return ret;
}

int sl_path_policy_name(struct sl_ctx *ctx, __u32 index, char name[32])
{
	struct sl_pathpol v;
	int fd = obs_map(ctx, "sl_pathpol"), err = 0;

	name[0] = 0;
	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &index, &v))
		err = -errno;
	else if (v.used)
		snprintf(name, 32, "%.31s", v.name);
	close(fd);
	return err;
}

/* Finds the policy named name (its index), and a free index. */
static int find_policy(int fd, const char *name, int *found, int *free_idx)
{
	struct sl_pathpol v;

	*found = *free_idx = -1;
	for (__u32 i = 0; i < SL_PATHPOL_MAX; i++) {
		if (bpf_map_lookup_elem(fd, &i, &v))
			return sl_err(-errno, "cannot read sl_pathpol: %s",
				      strerror(errno));
		if (!v.used && *free_idx < 0)
			*free_idx = i;
		if (v.used && !strncmp(v.name, name, sizeof(v.name)))
			*found = i;
	}
	return 0;
}

static int valid_policy_name(const char *name)
{
	size_t len = strlen(name);

	if (!len || len >= 32)
		return sl_err(-EINVAL, "policy name '%s': 1 to 31 characters", name);
	for (const char *c = name; *c; c++)
		if (!(*c == '-' || *c == '_' || *c == '.' ||
		      (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= 'A' && *c <= 'Z')))
			return sl_err(-EINVAL, "policy name '%s': letters, digits, "
				      "'-', '_' and '.' only", name);
	return 0;
}

int sl_path_policy_add(struct sl_ctx *ctx, const char *name, const char *from,
		       const char *to, const char *via)
{
	struct sl_pathpol v = { .used = 1 };
	struct sl_instance inst;
	int fd, found, free_idx, err;
	__u8 fam_to;
	__u32 idx;

	err = valid_policy_name(name);
	if (err)
		return err;
	if (parse_cidr(from, &v.family, v.src, v.src_mask, false))
		return sl_err(-EINVAL, "--from '%s': want an address or CIDR "
			      "(ADDR/LEN, no bits behind LEN)", from);
	if (parse_cidr(to, &fam_to, v.dst, v.dst_mask, false))
		return sl_err(-EINVAL, "--to '%s': want an address or CIDR "
			      "(ADDR/LEN, no bits behind LEN)", to);
	if (fam_to != v.family)
		return sl_err(-EINVAL, "--from %s and --to %s: not the same "
			      "address family", from, to);
	err = sl_instance_get(ctx, via, &inst);
	if (err)
		return sl_err(err, "--via '%s': no such instance", via);
	v.via_slot = inst.slot;
	snprintf(v.name, sizeof(v.name), "%s", name);
	snprintf(v.via, sizeof(v.via), "%.31s", via);
	fd = pathpol_fd(ctx);
	if (fd < 0)
		return fd;
	err = find_policy(fd, name, &found, &free_idx);
	if (!err && found >= 0)
		err = sl_err(-EEXIST, "policy '%s' exists; delete it first", name);
	if (!err && free_idx < 0)
		err = sl_err(-ENOSPC, "no room for policy '%s': at most %d",
			     name, SL_PATHPOL_MAX);
	idx = free_idx;
	if (!err && bpf_map_update_elem(fd, &idx, &v, BPF_ANY))
		err = sl_err(-errno, "cannot write sl_pathpol: %s", strerror(errno));
	close(fd);
	return err;
}

int sl_path_policy_del(struct sl_ctx *ctx, const char *name)
{
	struct sl_pathpol v = {};
	int fd = pathpol_fd(ctx), found, free_idx, err;
	__u32 idx;

	if (fd < 0)
		return fd;
	err = find_policy(fd, name, &found, &free_idx);
	if (!err && found < 0)
		err = sl_err(-ENOENT, "no policy '%s'", name);
	idx = found;
	if (!err && bpf_map_update_elem(fd, &idx, &v, BPF_ANY))
		err = sl_err(-errno, "cannot write sl_pathpol: %s", strerror(errno));
	close(fd);
	return err;
}

/* ---- policy watching ------------------------------------------------------ */

static int state_sum(int fd, struct sl_obs_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sl_obsstate *v;
	__u32 zero = 0;
	int err = 0;

	memset(st, 0, sizeof(*st));
	if (ncpu < 0)
		return sl_err(ncpu, "cannot count CPUs");
	v = calloc(ncpu, sizeof(*v));
	if (!v)
		return sl_err(-ENOMEM, "out of memory");
	if (bpf_map_lookup_elem(fd, &zero, v)) {
		err = sl_err(-errno, "cannot read the per-CPU counters: %s",
			     strerror(errno));
	} else {
		for (int i = 0; i < ncpu; i++) {
			st->matched += v[i].matched;
			st->limited += v[i].limited;
			st->emitted += v[i].emitted;
			st->lost += v[i].lost;
			st->violations += v[i].violations;
		}
	}
	free(v);
	return err;
}

int sl_path_watch_set(struct sl_ctx *ctx, bool on, __u32 sample, __u32 rate,
		      __u32 burst)
{
	struct sl_obs obs = { .ctx = ctx };
	struct sl_polcfg cfg = { .sample = sample, .rate = rate, .burst = burst };
	int cfg_fd, state_fd, err;
	__u32 zero = 0;

	obs.evcfg_fd = obs_map(ctx, "sl_evcfg");
	if (obs.evcfg_fd < 0)
		return obs.evcfg_fd;
	cfg_fd = obs_map(ctx, "sl_polcfg");
	if (cfg_fd < 0) {
		close(obs.evcfg_fd);
		return cfg_fd == -ENOENT ? sl_err(cfg_fd, "no sl_polcfg in this "
			"state: run 'sluice reset' and load again") : cfg_fd;
	}
	if (!on) {
		err = evcfg_obs(&obs, 0, SL_OBS_POLICY_WATCH);
		goto out;
	}
	state_fd = obs_map(ctx, "sl_polstate");
	err = state_fd < 0 ? state_fd : reset_percpu(state_fd);
	if (state_fd >= 0)
		close(state_fd);
	if (err)
		goto out;
	cfg.rate = rate ?: SL_OBS_DEFAULT_RATE;
	cfg.burst = burst ?: (cfg.rate / 10 ?: 1);
	err = make_bucket(cfg.rate, cfg.burst, &cfg.cost_ns, &cfg.burst_ns);
	if (!err && bpf_map_update_elem(cfg_fd, &zero, &cfg, BPF_ANY))
		err = sl_err(-errno, "cannot write sl_polcfg: %s", strerror(errno));
	/* Last: the data plane reads a complete configuration. */
	err = err ?: evcfg_obs(&obs, SL_OBS_POLICY_WATCH, 0);
out:
	close(cfg_fd);
	close(obs.evcfg_fd);
	return err;
}

int sl_path_watch_get(struct sl_ctx *ctx, struct sl_path_watch *w)
{
	int fds[3] = { obs_map(ctx, "sl_evcfg"), obs_map(ctx, "sl_polcfg"),
		       obs_map(ctx, "sl_polstate") };
	struct sl_polcfg cfg;
	struct sl_evcfg ev;
	__u32 zero = 0;
	int err = 0;

	memset(w, 0, sizeof(*w));
	for (int i = 0; i < 3 && !err; i++)
		if (fds[i] < 0)
			err = fds[i];
	if (!err && (bpf_map_lookup_elem(fds[0], &zero, &ev) ||
		     bpf_map_lookup_elem(fds[1], &zero, &cfg)))
		err = sl_err(-errno, "cannot read the watch configuration: %s",
			     strerror(errno));
	if (!err) {
		w->on = ev.obs & SL_OBS_POLICY_WATCH;
		w->sample = cfg.sample;
		w->rate = cfg.rate;
		w->burst = cfg.burst;
		err = state_sum(fds[2], &w->stats);
	}
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return err;
}
