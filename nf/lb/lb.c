// SPDX-License-Identifier: GPL-2.0
/* L4 load balancer NF control code. The configuration lives in the
 * instance's pinned maps (no file, no process): lb_list() reads it back as
 * a struct lb_conf, every change edits that model and lb_apply() writes the
 * difference, service by service: new backend records first, then the
 * service's new table in its spare slot, then the one map update of the
 * service entry that switches packets to it, then the cleanup. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "lb.h"
#include "lb.skel.h"

/* ---- names and endpoints ---------------------------------------------- */

static const char *const sched_names[] = { "mh", "rr", "wrr" };
static const char *const fwd_names[] = { "Masq", "Tunnel", "Route" };

int lb_sched_parse(const char *s, __u8 *sched)
{
	for (__u8 i = 0; i < 3; i++) {
		if (!strcmp(s, sched_names[i])) {
			*sched = i;
			return 0;
		}
	}
	return sl_err(-EINVAL, "scheduler '%s' is not supported (mh, rr, wrr)", s);
}

const char *lb_sched_name(__u8 sched)
{
	return sched < 3 ? sched_names[sched] : "?";
}

const char *lb_fwd_name(__u8 fwd)
{
	return fwd < 3 ? fwd_names[fwd] : "?";
}

static int parse_port(const char *s, const char *what, __u16 *port)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v < 1 || v > 65535)
		return sl_err(-EINVAL, "%s: bad port '%s' (1-65535)", what, s);
	*port = v;
	return 0;
}

int lb_parse_endpoint(const char *s, bool need_port, __u8 *family,
		      __u8 addr[16], __u16 *port)
{
	char buf[INET6_ADDRSTRLEN + 16];
	const char *host = buf, *p = NULL;

	if (strlen(s) >= sizeof(buf))
		return sl_err(-EINVAL, "bad address '%s'", s);
	strcpy(buf, s);
	memset(addr, 0, 16);
	*port = 0;
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || (close[1] && close[1] != ':'))
			return sl_err(-EINVAL, "bad address '%s' (IPv6: [ADDR]:PORT)", s);
		*close = 0;
		host = buf + 1;
		p = close[1] ? close + 2 : NULL;
	} else {
		char *colon = strchr(buf, ':');

		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* bare IPv6, no port */
		if (colon) {
			*colon = 0;
			p = colon + 1;
		}
	}
	if (inet_pton(AF_INET, host, addr) == 1)
		*family = 4;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		*family = 6;
	else
		return sl_err(-EINVAL, "bad address '%s'", s);
	if (p)
		return parse_port(p, s, port);
	if (need_port)
		return sl_err(-EINVAL, "'%s' needs a port (ADDR:PORT, [ADDR6]:PORT)", s);
	return 0;
}

void lb_format_endpoint(__u8 family, const __u8 addr[16], __u16 port,
			char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, a, sizeof(a));
	if (!port)
		snprintf(buf, len, "%s", a);
	else if (family == 6)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
}

/* ---- Maglev ------------------------------------------------------------ */

static __u64 fnv1a(const char *s, __u64 seed)
{
	__u64 h = 0xcbf29ce484222325ULL ^ seed;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	/* splitmix64's finaliser: names differing in one character must
	 * still get unrelated permutations. */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static bool is_prime(__u32 n)
{
	if (n < 2)
		return false;
	for (__u32 d = 2; (__u64)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

static __u32 gcd(__u32 a, __u32 b)
{
	while (b) {
		__u32 t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Maglev's population (paper, pseudocode 1) with weights: in round r,
 * backend i claims one entry when floor((r + 1) w_i / w_max) moves past
 * floor(r w_i / w_max), so the heaviest backends claim one entry a round
 * (plain Maglev) and the others in proportion, spread evenly through the
 * rounds, which keeps the disruption of a change close to unweighted. */
int lb_maglev_build(const char *const *names, const __u32 *weights, __u32 n,
		    __u32 m, __u32 *table)
{
	__u32 *offset = calloc(n, sizeof(__u32)), *skip = calloc(n, sizeof(__u32));
	__u32 *next = calloc(n, sizeof(__u32));
	__u32 wmax = 0, filled = 0;
	int err = 0;

	if (!offset || !skip || !next) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (__u32 i = 0; i < n; i++)
		wmax = weights[i] > wmax ? weights[i] : wmax;
	if (!wmax) {
		err = sl_err(-EINVAL, "no backend with a weight");
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		offset[i] = fnv1a(names[i], 0x9e3779b97f4a7c15ULL) % m;
		skip[i] = fnv1a(names[i], 0x7f4a7c159e3779b9ULL) % (m - 1) + 1;
	}
	for (__u32 j = 0; j < m; j++)
		table[j] = UINT32_MAX;
	for (__u64 r = 0; filled < m; r++) {
		for (__u32 i = 0; i < n && filled < m; i++) {
			__u32 c;

			if ((r + 1) * weights[i] / wmax == r * weights[i] / wmax)
				continue; /* not this backend's turn */
			c = (offset[i] + (__u64)next[i] * skip[i]) % m;
			while (table[c] != UINT32_MAX) {
				next[i]++;
				c = (offset[i] + (__u64)next[i] * skip[i]) % m;
			}
			table[c] = i;
			next[i]++;
			filled++;
		}
	}
out:
	free(offset);
	free(skip);
	free(next);
	return err;
}

/* rr: every available backend once; wrr: smooth weighted round robin (as
 * nginx), so a heavy backend's turns are spread through the sequence. */
static int build_sequence(const __u32 *weights, __u32 n, bool weighted,
			  __u32 *seq, __u32 *len)
{
	__u64 total = 0;
	__u32 g = 0, w[n ? n : 1];
	__s64 cur[n ? n : 1];

	*len = 0;
	for (__u32 i = 0; i < n; i++)
		if (weights[i])
			g = gcd(g, weights[i]);
	for (__u32 i = 0; i < n; i++) {
		w[i] = !weights[i] ? 0 : weighted ? weights[i] / g : 1;
		total += w[i];
		cur[i] = 0;
	}
	if (total > LB_SEQ_MAX) {
		__u64 t2 = 0;

		for (__u32 i = 0; i < n; i++) {
			if (w[i])
				w[i] = (__u64)w[i] * LB_SEQ_MAX / total ?: 1;
			t2 += w[i];
		}
		total = t2;
	}
	for (__u64 k = 0; k < total; k++) {
		__u32 best = 0;

		for (__u32 i = 0; i < n; i++) {
			cur[i] += w[i];
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= total;
		seq[(*len)++] = best;
	}
	return 0;
}

/* ---- the instance and its maps ------------------------------------------ */

struct lb_maps {
	int svcs, backends, tables, rr, flows, svc_stats, be_stats, state, owners;
};

static const char *const map_pins[] = { "lb_svcs", "lb_backends", "lb_tables",
					"lb_rr", "lb_flows", "lb_svc_stats",
					"lb_be_stats", "lb_state", "lb_nat_owners" };
#define LB_NMAPS 9

static void maps_close(struct lb_maps *m)
{
	int *fds = (int *)m;

	for (int i = 0; i < LB_NMAPS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static const char *inst_name(const char *inst)
{
	return inst ? inst : LB_DEFAULT_NAME;
}

static int maps_open(struct sl_ctx *ctx, const char *inst, struct lb_maps *m)
{
	int *fds = (int *)m, dir, err = 0;
	struct sl_instance in;

	for (int i = 0; i < LB_NMAPS; i++)
		fds[i] = -1;
	err = sl_instance_get(ctx, inst, &in);
	if (err)
		return err;
	if (strcmp(in.type, LB_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a load balancer",
			      inst, in.type);
	dir = sl_instance_open_dir(ctx, inst);
	if (dir < 0)
		return dir;
	for (int i = 0; i < LB_NMAPS && !err; i++) {
		fds[i] = sl_obj_get_at(dir, map_pins[i]);
		if (fds[i] < 0)
			err = fds[i];
	}
	close(dir);
	if (err)
		maps_close(m);
	return err;
}

int lb_create(struct sl_ctx *ctx, const char *inst)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct sl_instance in;
	struct lb_bpf *skel;
	struct bpf_map *maps[LB_NMAPS];
	char stage[PATH_MAX];
	int err;

	inst = inst_name(inst);
	err = sl_instance_get(ctx, inst, &in);
	if (!err)
		return strcmp(in.type, LB_TYPE) ?
			       sl_err(-EEXIST, "instance '%s' exists and is a %s, not a load balancer",
				      inst, in.type) : 0;
	err = sl_instance_prepare(ctx, inst, LB_TYPE, &in);
	if (err)
		return err;
	skel = lb_bpf__open_opts(&opts);
	if (!skel)
		return sl_err(-errno, "cannot open the lb BPF object: %s", strerror(errno));
	skel->rodata->lb_slot = in.slot;
	err = lb_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the lb BPF program: %s", strerror(-err));
		goto out;
	}
	maps[0] = skel->maps.lb_svcs;
	maps[1] = skel->maps.lb_backends;
	maps[2] = skel->maps.lb_tables;
	maps[3] = skel->maps.lb_rr;
	maps[4] = skel->maps.lb_flows;
	maps[5] = skel->maps.lb_svc_stats;
	maps[6] = skel->maps.lb_be_stats;
	maps[7] = skel->maps.lb_state;
	maps[8] = skel->maps.lb_nat_owners;
	err = sl_instance_stage_dir(ctx, &in, stage, sizeof(stage));
	for (int i = 0; i < LB_NMAPS && !err; i++)
		err = sl_pin(stage, map_pins[i], bpf_map__fd(maps[i]));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.lb_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.lb_tc));
	err = err ?: sl_instance_commit(ctx, &in, bpf_program__fd(skel->progs.lb_xdp),
					bpf_program__fd(skel->progs.lb_tc));
	if (err)
		sl_pin_dir_remove(stage);
out:
	lb_bpf__destroy(skel);
	return err;
}

/* ---- reading ------------------------------------------------------------ */

void lb_conf_free(struct lb_conf *conf)
{
	if (!conf)
		return;
	for (__u32 i = 0; i < conf->n; i++)
		free(conf->svcs[i].backends);
	free(conf->svcs);
	conf->svcs = NULL;
	conf->n = 0;
}

static int read_stats(int fd, __u32 id, struct lb_stats *st)
{
	int ncpu = libbpf_num_possible_cpus();
	struct lb_counters *per = calloc(ncpu, sizeof(*per));

	memset(st, 0, sizeof(*st));
	if (!per)
		return sl_err(-ENOMEM, "out of memory");
	if (!bpf_map_lookup_elem(fd, &id, per)) {
		for (int c = 0; c < ncpu; c++) {
			st->pkts_in += per[c].pkts_in;
			st->bytes_in += per[c].bytes_in;
			st->pkts_out += per[c].pkts_out;
			st->bytes_out += per[c].bytes_out;
			st->conns += per[c].conns;
		}
	}
	free(per);
	return 0;
}

static void zero_stats(int fd, __u32 id)
{
	int ncpu = libbpf_num_possible_cpus();
	struct lb_counters *per = calloc(ncpu, sizeof(*per));

	if (per)
		bpf_map_update_elem(fd, &id, per, BPF_ANY);
	free(per);
}

static void key_to_vip(const struct lb_service_key *k, struct lb_vip_key *v)
{
	memset(v, 0, sizeof(*v));
	memcpy(v->addr, k->addr, 16);
	v->port = k->port;
	v->proto = k->proto;
	v->family = k->family;
}

static void vip_to_key(const struct lb_vip_key *v, struct lb_service_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->addr, v->addr, 16);
	k->port = v->port;
	k->proto = v->proto;
	k->family = v->family;
}

static int cmp_svc(const void *a, const void *b)
{
	const struct lb_service_info *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Appends backend id (record be) to its service in conf. */
static int add_backend_info(struct lb_conf *conf, const struct lb_maps *m,
			    __u32 id, const struct lb_be *be)
{
	for (__u32 i = 0; i < conf->n; i++) {
		struct lb_service_info *s = &conf->svcs[i];
		struct lb_backend_info *b, *nb;

		if (s->id != be->svc_id)
			continue;
		nb = realloc(s->backends, (s->nbackends + 1) * sizeof(*nb));
		if (!nb)
			return sl_err(-ENOMEM, "out of memory");
		s->backends = nb;
		b = &nb[s->nbackends++];
		memset(b, 0, sizeof(*b));
		b->addr.family = be->family;
		b->addr.port = be->port;
		memcpy(b->addr.addr, be->addr, 16);
		b->conf.fwd = be->fwd;
		b->conf.weight = be->weight;
		b->up = be->flags & LB_BE_UP;
		b->id = id;
		return read_stats(m->be_stats, id, &b->stats);
	}
	return 0; /* a record of a service being removed: not listed */
}

/* Every live backend record, read in batches (65,536 single lookups
 * would take a noticeable time at every change). */
static int list_backends(const struct lb_maps *m, struct lb_conf *conf)
{
	enum { CHUNK = 4096 };
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys = calloc(CHUNK, sizeof(*keys)), out_batch, count;
	struct lb_be *recs = calloc(CHUNK, sizeof(*recs));
	void *in = NULL;
	int err = 0, rc;

	if (!keys || !recs) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	do {
		count = CHUNK;
		rc = bpf_map_lookup_batch(m->backends, in, &out_batch, keys, recs, &count, &opts);
		if (rc && errno != ENOENT) {
			err = sl_err(-errno, "cannot read the backends: %s", strerror(errno));
			break;
		}
		for (__u32 i = 0; i < count && !err; i++)
			if (keys[i] && (recs[i].flags & LB_BE_LIVE))
				err = add_backend_info(conf, m, keys[i], &recs[i]);
		in = &out_batch;
	} while (!rc && !err);
out:
	free(keys);
	free(recs);
	return err;
}

static int list_maps(const struct lb_maps *m, struct lb_conf *out)
{
	struct lb_conf conf = {};
	struct lb_vip_key key, next;
	struct lb_svc svc;
	void *prev = NULL;
	int err = 0;

	while (!err && !bpf_map_get_next_key(m->svcs, prev, &next)) {
		struct lb_service_info *s, *ns;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(m->svcs, &key, &svc))
			continue;
		ns = realloc(conf.svcs, (conf.n + 1) * sizeof(*ns));
		if (!ns) {
			err = sl_err(-ENOMEM, "out of memory");
			break;
		}
		conf.svcs = ns;
		s = &ns[conf.n++];
		memset(s, 0, sizeof(*s));
		vip_to_key(&key, &s->key);
		s->conf.sched = svc.sched;
		s->conf.mh_size = svc.mh_size;
		s->id = svc.id;
		err = read_stats(m->svc_stats, svc.id, &s->stats);
	}
	if (conf.n)
		qsort(conf.svcs, conf.n, sizeof(*conf.svcs), cmp_svc);
	if (conf.n)
		err = err ?: list_backends(m, &conf);
	if (err) {
		lb_conf_free(&conf);
		return err;
	}
	*out = conf;
	return 0;
}

int lb_list(struct sl_ctx *ctx, const char *inst, struct lb_conf *out)
{
	struct lb_maps m;
	int err = maps_open(ctx, inst_name(inst), &m);

	if (err)
		return err;
	err = list_maps(&m, out);
	maps_close(&m);
	return err;
}

/* ---- checking a configuration ------------------------------------------ */

static bool same_svc(const struct lb_service_key *a, const struct lb_service_key *b)
{
	return a->family == b->family && a->proto == b->proto && a->port == b->port &&
	       !memcmp(a->addr, b->addr, 16);
}

static bool same_be(const struct lb_backend_addr *a, const struct lb_backend_addr *b)
{
	return a->family == b->family && a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

static void svc_text(const struct lb_service_key *k, char *buf, size_t len)
{
	char ep[64];

	lb_format_endpoint(k->family, k->addr, k->port, ep, sizeof(ep));
	snprintf(buf, len, "%s %s", k->proto == IPPROTO_UDP ? "udp" : "tcp", ep);
}

static int check_service(const struct lb_service_info *s)
{
	char name[80], be[64];
	__u32 m = s->conf.mh_size ?: LB_MH_DEFAULT;

	svc_text(&s->key, name, sizeof(name));
	if ((s->key.family != 4 && s->key.family != 6) || !s->key.port ||
	    (s->key.proto != IPPROTO_TCP && s->key.proto != IPPROTO_UDP))
		return sl_err(-EINVAL, "service %s: bad family, protocol or port", name);
	if (s->conf.sched > LB_SCHED_WRR)
		return sl_err(-EINVAL, "service %s: bad scheduler %u", name, s->conf.sched);
	if (!is_prime(m) || m > LB_MH_MAX || m < 7)
		return sl_err(-EINVAL, "service %s: Maglev table size %u must be a prime from 7 to %u",
			      name, m, LB_MH_MAX);
	if (s->conf.sched == LB_SCHED_MH && s->nbackends > m / 10 + 1)
		return sl_err(-EINVAL, "service %s: %u backends need a Maglev table of at least %u",
			      name, s->nbackends, s->nbackends * 10);
	for (__u32 i = 0; i < s->nbackends; i++) {
		const struct lb_backend_info *b = &s->backends[i];

		lb_format_endpoint(b->addr.family, b->addr.addr, b->addr.port, be, sizeof(be));
		if (b->addr.family != s->key.family)
			return sl_err(-EINVAL, "service %s: backend %s is not of the service's address family",
				      name, be);
		if (!b->addr.port)
			return sl_err(-EINVAL, "service %s: backend %s has no port", name, be);
		if (b->conf.fwd > LB_FWD_MAC)
			return sl_err(-EINVAL, "service %s: backend %s: bad forwarding mode", name, be);
		if (b->conf.fwd != LB_FWD_NAT && b->addr.port != s->key.port)
			return sl_err(-EINVAL, "service %s: backend %s: direct server return (-g, -i) keeps the service's port",
				      name, be);
		if (b->conf.weight > 65535)
			return sl_err(-EINVAL, "service %s: backend %s: weight %u is over 65535",
				      name, be, b->conf.weight);
		for (__u32 j = 0; j < i; j++)
			if (same_be(&b->addr, &s->backends[j].addr))
				return sl_err(-EEXIST, "service %s: backend %s listed twice", name, be);
	}
	return 0;
}

static int check_conf(const struct lb_conf *conf)
{
	__u32 nbe = 0;
	int err;

	if (conf->n >= LB_MAX_SERVICES)
		return sl_err(-E2BIG, "at most %d services", LB_MAX_SERVICES - 1);
	for (__u32 i = 0; i < conf->n; i++) {
		err = check_service(&conf->svcs[i]);
		if (err)
			return err;
		nbe += conf->svcs[i].nbackends;
		for (__u32 j = 0; j < i; j++) {
			if (same_svc(&conf->svcs[i].key, &conf->svcs[j].key)) {
				char name[80];

				svc_text(&conf->svcs[i].key, name, sizeof(name));
				return sl_err(-EEXIST, "service %s listed twice", name);
			}
		}
	}
	if (nbe >= LB_MAX_BACKENDS / 2)
		return sl_err(-E2BIG, "at most %d backends", LB_MAX_BACKENDS / 2 - 1);
	return 0;
}

/* The address this host sends from toward the backend (the IPIP outer
 * source), found as the kernel would: a connected UDP socket. Sending one
 * empty datagram to the discard port also makes the kernel resolve the
 * backend's MAC, which the MAC-rewrite mode reads through bpf_fib_lookup. */
static int local_toward(const struct lb_backend_addr *b, bool prime_neigh,
			__u32 local[4])
{
	struct sockaddr_storage ss = {};
	socklen_t len = sizeof(ss);
	char be[64];
	int fd, err = 0;

	lb_format_endpoint(b->family, b->addr, b->port, be, sizeof(be));
	if (b->family == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(9);
		memcpy(&sin->sin_addr, b->addr, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(9);
		memcpy(&sin6->sin6_addr, b->addr, 16);
		len = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sl_err(-errno, "backend %s: socket: %s", be, strerror(errno));
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		err = sl_err(-errno, "backend %s: no route: %s", be, strerror(errno));
		goto out;
	}
	if (prime_neigh)
		(void)!send(fd, "", 0, MSG_DONTWAIT);
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len)) {
		err = sl_err(-errno, "backend %s: getsockname: %s", be, strerror(errno));
		goto out;
	}
	memset(local, 0, 16);
	if (b->family == 4)
		memcpy(local, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else
		memcpy(local, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
out:
	close(fd);
	return err;
}

/* ---- writing ----------------------------------------------------------- */

/* Finds a free backend id, round robin from the last one given, so a
 * removed backend's id (and its flows' record) is reused as late as
 * possible. taken marks ids handed out during this apply. */
static int alloc_backend(const struct lb_maps *m, const __u8 *taken, __u32 *id,
			 struct lb_be *old)
{
	struct lb_state st = {};
	__u32 zero = 0;

	bpf_map_lookup_elem(m->state, &zero, &st);
	for (__u32 k = 0; k < LB_MAX_BACKENDS; k++) {
		__u32 c = (st.next_backend + k) % LB_MAX_BACKENDS;

		if (!c || taken[c])
			continue;
		if (bpf_map_lookup_elem(m->backends, &c, old))
			memset(old, 0, sizeof(*old));
		if (old->flags & LB_BE_LIVE)
			continue;
		*id = c;
		st.next_backend = c + 1;
		bpf_map_update_elem(m->state, &zero, &st, BPF_ANY);
		return 0;
	}
	return sl_err(-ENOSPC, "no free backend id");
}

/* taken marks the ids of the services kept and of those given out. */
static int alloc_service(const __u8 *taken, __u32 *id)
{
	for (__u32 c = 1; c < LB_MAX_SERVICES; c++) {
		if (!taken[c]) {
			*id = c;
			return 0;
		}
	}
	return sl_err(-ENOSPC, "no free service id");
}

/* Builds the service's table of backend ids from its usable backends. */
static int build_table(const struct lb_service_info *s, const __u32 *ids,
		       __u32 **table, __u32 *len)
{
	__u32 n = s->nbackends, m = s->conf.mh_size ?: LB_MH_DEFAULT, k = 0;
	__u32 *w = calloc(n + 1, sizeof(*w)), *idx = NULL;
	char (*names)[64] = calloc(n + 1, 64);
	const char **np = calloc(n + 1, sizeof(*np));
	bool any = false;
	int err = 0;

	*table = NULL;
	*len = 0;
	if (!w || !names || !np) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		const struct lb_backend_info *b = &s->backends[i];

		w[i] = b->up ? b->conf.weight : 0;
		any |= w[i] > 0;
		lb_format_endpoint(b->addr.family, b->addr.addr, b->addr.port, names[i], 64);
		np[i] = names[i];
	}
	if (!any)
		goto out; /* no backend takes new flows: an empty table */
	idx = calloc(s->conf.sched == LB_SCHED_MH ? m : LB_SEQ_MAX + n, sizeof(*idx));
	if (!idx) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (s->conf.sched == LB_SCHED_MH) {
		err = lb_maglev_build(np, w, n, m, idx);
		k = m;
	} else {
		err = build_sequence(w, n, s->conf.sched == LB_SCHED_WRR, idx, &k);
	}
	if (err)
		goto out;
	for (__u32 j = 0; j < k; j++)
		idx[j] = ids[idx[j]];
	*table = idx;
	*len = k;
	idx = NULL;
out:
	free(idx);
	free(w);
	free(names);
	free(np);
	return err;
}

/* A new inner map holding table (len entries); returns its fd. Tables
 * are memory-mapped arrays, filled in place rather than by one update per
 * entry. An array's elements are 8 bytes apart (values rounded up). */
static int make_table(const __u32 *table, __u32 len)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__u32 n = len ?: 1, *mem;
	size_t size = ((size_t)n * 8 + 4095) & ~(size_t)4095;
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "lb_table", 4, 4, n, &opts);

	if (fd < 0)
		return sl_err(-errno, "cannot create a lookup table: %s", strerror(errno));
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		close(fd);
		return sl_err(-errno, "cannot fill a lookup table: %s", strerror(errno));
	}
	for (__u32 j = 0; j < len; j++)
		mem[2 * j] = table[j];
	munmap(mem, size);
	return fd;
}

/* A backend leaves its service: its address is kept so that its flows
 * carry on, unless the whole service goes (gone). */
static void retire_backend(const struct lb_maps *m, __u32 id, bool gone)
{
	struct lb_be be;

	if (bpf_map_lookup_elem(m->backends, &id, &be))
		return;
	be.flags &= ~LB_BE_LIVE;
	if (gone)
		be.flags |= LB_BE_GONE;
	bpf_map_update_elem(m->backends, &id, &be, BPF_ANY);
}

static const struct lb_service_info *find_svc(const struct lb_conf *c,
					      const struct lb_service_key *k)
{
	for (__u32 i = 0; i < c->n; i++)
		if (same_svc(&c->svcs[i].key, k))
			return &c->svcs[i];
	return NULL;
}

static const struct lb_backend_info *find_be(const struct lb_service_info *s,
					     const struct lb_backend_addr *a)
{
	for (__u32 i = 0; s && i < s->nbackends; i++)
		if (same_be(&s->backends[i].addr, a))
			return &s->backends[i];
	return NULL;
}

/* Whether s is what the maps hold already (same order, same settings):
 * then nothing is written, which keeps a one-backend edit of a large
 * configuration to that one service. */
static bool svc_unchanged(const struct lb_service_info *old,
			  const struct lb_service_info *s)
{
	if (!old || old->nbackends != s->nbackends || old->conf.sched != s->conf.sched ||
	    old->conf.mh_size != (s->conf.mh_size ?: LB_MH_DEFAULT))
		return false;
	for (__u32 i = 0; i < s->nbackends; i++) {
		const struct lb_backend_info *a = &old->backends[i], *b = &s->backends[i];

		if (!same_be(&a->addr, &b->addr) || a->conf.fwd != b->conf.fwd ||
		    a->conf.weight != b->conf.weight || a->up != b->up)
			return false;
	}
	return true;
}

/* One service's change, prepared aside: its new table is built but not
 * yet installed, its service entry not yet switched. */
struct svc_change {
	const struct lb_service_info *old, *s;
	struct lb_vip_key vk;
	struct lb_svc sv;
	__u32 prev_table; /* the table it leaves (when old) */
	int fd; /* the new table */
};

/* A backend record as it was before this apply, to put back on failure. */
struct be_undo {
	__u32 id;
	struct lb_be rec;
};

/* An apply in progress. Each table switch of a map-in-map waits for an
 * RCU grace period (~10 ms), so every table is built first, then all are
 * installed with one batch update and the old ones dropped with one batch
 * delete: two grace periods per apply, whatever its size. */
struct apply {
	const struct lb_maps *m;
	const struct lb_conf *cur;
	__u8 *svc_taken, *be_taken;
	struct svc_change *chg;
	__u32 nchg;
	struct be_undo *undo;
	__u32 nundo, undo_cap;
	struct lb_svc *removed; /* entries of cur's services being removed */
};

static int note_undo(struct apply *a, __u32 id, const struct lb_be *rec)
{
	if (a->nundo == a->undo_cap) {
		__u32 cap = a->undo_cap ? 2 * a->undo_cap : 256;
		struct be_undo *u = realloc(a->undo, cap * sizeof(*u));

		if (!u)
			return sl_err(-ENOMEM, "out of memory");
		a->undo = u;
		a->undo_cap = cap;
	}
	a->undo[a->nundo].id = id;
	a->undo[a->nundo++].rec = *rec;
	return 0;
}

/* Writes the backends of s (new ids for new ones) and fills ids. */
static int write_backends(struct apply *a, const struct lb_service_info *old,
			  const struct lb_service_info *s, __u32 svc_id, __u32 *ids)
{
	const struct lb_maps *m = a->m;
	int err = 0;

	for (__u32 i = 0; i < s->nbackends && !err; i++) {
		const struct lb_backend_info *b = &s->backends[i];
		const struct lb_backend_info *ob = find_be(old, &b->addr);
		struct lb_be rec = {};

		if (ob) {
			ids[i] = ob->id;
			bpf_map_lookup_elem(m->backends, &ids[i], &rec);
		} else {
			err = alloc_backend(m, a->be_taken, &ids[i], &rec);
			if (err)
				break;
		}
		err = note_undo(a, ids[i], &rec);
		if (err)
			break;
		if (!ob) {
			rec.gen++;
			zero_stats(m->be_stats, ids[i]);
		}
		a->be_taken[ids[i]] = 1;
		memcpy(rec.addr, b->addr.addr, 16);
		rec.port = b->addr.port;
		rec.family = b->addr.family;
		rec.fwd = b->conf.fwd;
		rec.svc_id = svc_id;
		rec.weight = b->conf.weight;
		rec.flags = LB_BE_LIVE | (b->up ? LB_BE_UP : 0);
		if (rec.fwd != LB_FWD_NAT)
			err = local_toward(&b->addr, true, rec.local);
		if (!err && bpf_map_update_elem(m->backends, &ids[i], &rec, BPF_ANY))
			err = sl_err(-errno, "cannot write a backend: %s", strerror(errno));
	}
	return err;
}

/* Prepares one service: backends written, table built aside. */
static int prepare_service(struct apply *a, const struct lb_service_info *s)
{
	const struct lb_service_info *old = find_svc(a->cur, &s->key);
	struct svc_change *c = &a->chg[a->nchg];
	struct lb_svc prev = {};
	__u32 *ids, *table = NULL, len;
	int err = 0;

	if (svc_unchanged(old, s)) {
		for (__u32 i = 0; i < s->nbackends; i++)
			a->be_taken[old->backends[i].id] = 1;
		return 0;
	}
	ids = calloc(s->nbackends + 1, sizeof(*ids));
	if (!ids)
		return sl_err(-ENOMEM, "out of memory");
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->old = old;
	c->s = s;
	key_to_vip(&s->key, &c->vk);
	if (old) {
		c->sv.id = old->id;
		bpf_map_lookup_elem(a->m->svcs, &c->vk, &prev);
		c->prev_table = prev.table_id;
	} else {
		err = alloc_service(a->svc_taken, &c->sv.id);
		if (err)
			goto out;
		zero_stats(a->m->svc_stats, c->sv.id);
	}
	a->svc_taken[c->sv.id] = 1;
	err = write_backends(a, old, s, c->sv.id, ids);
	err = err ?: build_table(s, ids, &table, &len);
	if (err)
		goto out;
	c->sv.table_id = c->sv.id * 2 + (old ? (prev.table_id & 1) ^ 1 : 0);
	c->sv.table_len = len;
	c->sv.mh_size = s->conf.mh_size ?: LB_MH_DEFAULT;
	c->sv.sched = s->conf.sched;
	c->fd = make_table(table, len);
	if (c->fd < 0)
		err = c->fd;
	else
		a->nchg++;
out:
	free(table);
	free(ids);
	return err;
}

/* Installs every prepared table in its (spare) slot: one batch. */
static int install_tables(struct apply *a)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys = calloc(a->nchg + 1, sizeof(*keys)), count = a->nchg;
	int *fds = calloc(a->nchg + 1, sizeof(*fds)), err = 0;

	if (!keys || !fds) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (__u32 i = 0; i < a->nchg; i++) {
		keys[i] = a->chg[i].sv.table_id;
		fds[i] = a->chg[i].fd;
	}
	if (a->nchg && bpf_map_update_batch(a->m->tables, keys, fds, &count, &opts))
		for (__u32 i = 0; i < a->nchg && !err; i++)
			if (bpf_map_update_elem(a->m->tables, &keys[i], &fds[i], BPF_ANY))
				err = sl_err(-errno, "cannot install a lookup table: %s",
					     strerror(errno));
out:
	free(keys);
	free(fds);
	return err;
}

/* Whether slot tid is one this apply installs (then it is not dropped). */
static bool installed(const struct apply *a, __u32 tid)
{
	for (__u32 i = 0; i < a->nchg; i++)
		if (a->chg[i].sv.table_id == tid)
			return true;
	return false;
}

static void note_dead(const struct apply *a, __u32 tid, __u32 *dead, __u32 *n)
{
	__u32 map_id;

	if (!installed(a, tid) && !bpf_map_lookup_elem(a->m->tables, &tid, &map_id))
		dead[(*n)++] = tid;
}

/* Drops the tables no service uses any more. The kernel has no batch
 * delete for map-in-maps and each delete waits for a grace period: the
 * slots get an empty table instead, in one batch update (one wait), which
 * frees the old tables as well. */
static void drop_tables(const struct apply *a, const __u32 *dead, __u32 n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int *fds = calloc(n + 1, sizeof(*fds)), fd = make_table(NULL, 0);
	__u32 count = n;

	if (n && fds && fd >= 0) {
		for (__u32 i = 0; i < n; i++)
			fds[i] = fd;
		if (!bpf_map_update_batch(a->m->tables, dead, fds, &count, &opts))
			n = 0;
	}
	for (__u32 i = 0; i < n; i++)
		bpf_map_delete_elem(a->m->tables, &dead[i]);
	if (fd >= 0)
		close(fd);
	free(fds);
}

/* Services not in conf stop taking packets, before any table is
 * installed (a new service may take over a removed one's id and table
 * slot); with put_back, they come back as they were (a failed install). */
static void unlink_removed(struct apply *a, const struct lb_conf *conf, bool put_back)
{
	for (__u32 i = 0; i < a->cur->n; i++) {
		const struct lb_service_info *s = &a->cur->svcs[i];
		struct lb_vip_key vk;

		if (find_svc(conf, &s->key))
			continue;
		key_to_vip(&s->key, &vk);
		if (!put_back)
			bpf_map_lookup_elem(a->m->svcs, &vk, &a->removed[i]);
		if (put_back && a->removed[i].id)
			bpf_map_update_elem(a->m->svcs, &vk, &a->removed[i], BPF_ANY);
		else if (!put_back)
			bpf_map_delete_elem(a->m->svcs, &vk);
	}
}

/* After the tables are in: changed services switched (each with one map
 * update: packets see the old entry or the new one), backends gone
 * retired, then the tables no service uses dropped. */
static int switch_services(struct apply *a, const struct lb_conf *conf)
{
	const struct lb_conf *cur = a->cur;
	__u32 *dead = calloc(2 * (cur->n + a->nchg) + 1, sizeof(*dead)), ndead = 0;
	int err = 0;

	if (!dead)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < cur->n; i++) {
		const struct lb_service_info *s = &cur->svcs[i];

		if (find_svc(conf, &s->key))
			continue;
		note_dead(a, s->id * 2, dead, &ndead);
		note_dead(a, s->id * 2 + 1, dead, &ndead);
		for (__u32 j = 0; j < s->nbackends; j++)
			retire_backend(a->m, s->backends[j].id, true);
	}
	for (__u32 i = 0; i < a->nchg && !err; i++) {
		const struct svc_change *c = &a->chg[i];

		if (bpf_map_update_elem(a->m->svcs, &c->vk, &c->sv, BPF_ANY)) {
			err = sl_err(-errno, "cannot write a service: %s", strerror(errno));
			break;
		}
		if (c->old && c->prev_table != c->sv.table_id)
			note_dead(a, c->prev_table, dead, &ndead);
		for (__u32 j = 0; c->old && j < c->old->nbackends; j++)
			if (!find_be(c->s, &c->old->backends[j].addr))
				retire_backend(a->m, c->old->backends[j].id, false);
	}
	drop_tables(a, dead, ndead);
	free(dead);
	return err;
}

/* A failed apply: backend records back as they were (new ids free again).
 * Tables already installed sit in spare slots no service points at. */
static void undo_backends(const struct apply *a)
{
	for (__u32 i = a->nundo; i-- > 0;)
		bpf_map_update_elem(a->m->backends, &a->undo[i].id, &a->undo[i].rec, BPF_ANY);
}

/* Reads up to max entries of map fd (keys of ksz, values of vsz bytes)
 * in batches; *n gets the count. */
static int read_all(int fd, size_t ksz, size_t vsz, __u32 max, void *keys, void *vals,
		    __u32 *n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 token, count, got = 0;
	void *in = NULL;
	int rc;

	do {
		count = max - got;
		if (!count)
			break;
		rc = bpf_map_lookup_batch(fd, in, &token, (char *)keys + got * ksz,
					  (char *)vals + got * vsz, &count, &opts);
		if (rc && errno != ENOENT)
			return sl_err(-errno, "cannot read a map: %s", strerror(errno));
		got += count;
		in = &token;
	} while (!rc);
	*n = got;
	return 0;
}

/* Everything sync_owners works from: services by id, backend records by
 * id, and which ids own their endpoint. */
struct owner_sync {
	struct lb_vip_key *svc_by_id; /* family 0: no such service */
	struct lb_be *recs;
	__u8 *owns;
};

/* The endpoint key of record r (its service gives the protocol) and the
 * owner entry it would have; false when r is no NAT backend of a service. */
static bool owner_of(const struct owner_sync *o, __u32 id, struct lb_vip_key *ek,
		     struct lb_nat_owner *ow)
{
	const struct lb_be *r = &o->recs[id];
	const struct lb_vip_key *vk;

	if (!r->family || r->fwd != LB_FWD_NAT || (r->flags & LB_BE_GONE) ||
	    r->svc_id >= LB_MAX_SERVICES || !o->svc_by_id[r->svc_id].family)
		return false;
	vk = &o->svc_by_id[r->svc_id];
	memset(ek, 0, sizeof(*ek));
	memcpy(ek->addr, r->addr, 16);
	ek->port = r->port;
	ek->proto = vk->proto;
	ek->family = r->family;
	memset(ow, 0, sizeof(*ow));
	ow->backend = id;
	ow->gen = r->gen;
	memcpy(ow->vip, vk->addr, 16);
	ow->vport = vk->port;
	return true;
}

static int set_lazy(const struct lb_maps *m, struct owner_sync *o, __u32 id, bool lazy)
{
	struct lb_be *r = &o->recs[id];

	if (!!(r->flags & LB_BE_LAZY) == lazy)
		return 0;
	r->flags ^= LB_BE_LAZY;
	if (bpf_map_update_elem(m->backends, &id, r, BPF_ANY))
		return sl_err(-errno, "cannot write a backend: %s", strerror(errno));
	return 0;
}

/* Owner entries that no longer name their record as it is (id reused,
 * service or backend gone, no longer NAT) go; the others stay as long as
 * their record does, since its flows answer through them. */
static int drop_stale_owners(const struct lb_maps *m, struct owner_sync *o)
{
	struct lb_vip_key *eks = calloc(LB_MAX_BACKENDS, sizeof(*eks)), ek;
	struct lb_nat_owner *ows = calloc(LB_MAX_BACKENDS, sizeof(*ows)), ow;
	__u32 n = 0;
	int err = 0;

	if (!eks || !ows)
		err = sl_err(-ENOMEM, "out of memory");
	err = err ?: read_all(m->owners, sizeof(*eks), sizeof(*ows), LB_MAX_BACKENDS, eks, ows,
			      &n);
	for (__u32 i = 0; i < n && !err; i++) {
		__u32 id = ows[i].backend;

		if (id && id < LB_MAX_BACKENDS && owner_of(o, id, &ek, &ow) &&
		    !memcmp(&ek, &eks[i], sizeof(ek)) && !memcmp(&ow, &ows[i], sizeof(ow))) {
			o->owns[id] = 1;
			continue;
		}
		if (bpf_map_delete_elem(m->owners, &eks[i]) && errno != ENOENT)
			err = sl_err(-errno, "cannot remove a NAT owner: %s", strerror(errno));
	}
	free(eks);
	free(ows);
	return err;
}

/* Gives every NAT real server endpoint its lazy backend (lb_abi.h: struct
 * lb_nat_owner): a live record of an endpoint without an owner becomes
 * it, entry first, then its LB_BE_LAZY flag, so a record is lazy only
 * while the entry names it. Records of an endpoint owned by another one
 * (a real server in several services) record reply entries with each
 * new flow, as before. */
static int sync_owners(const struct lb_maps *m)
{
	struct owner_sync o = {
		.svc_by_id = calloc(LB_MAX_SERVICES, sizeof(*o.svc_by_id)),
		.recs = calloc(LB_MAX_BACKENDS, sizeof(*o.recs)),
		.owns = calloc(LB_MAX_BACKENDS, 1),
	};
	struct lb_vip_key *vks = calloc(LB_MAX_SERVICES, sizeof(*vks)), ek;
	struct lb_svc *svs = calloc(LB_MAX_SERVICES, sizeof(*svs));
	__u32 *ids = calloc(LB_MAX_BACKENDS, sizeof(*ids)), n = 0, nb = 0;
	struct lb_be *tmp = calloc(LB_MAX_BACKENDS, sizeof(*tmp));
	struct lb_nat_owner ow, cur;
	int err = 0;

	if (!o.svc_by_id || !o.recs || !o.owns || !vks || !svs || !ids || !tmp)
		err = sl_err(-ENOMEM, "out of memory");
	err = err ?: read_all(m->svcs, sizeof(*vks), sizeof(*svs), LB_MAX_SERVICES, vks, svs, &n);
	for (__u32 i = 0; i < n && !err; i++)
		if (svs[i].id < LB_MAX_SERVICES)
			o.svc_by_id[svs[i].id] = vks[i];
	err = err ?: read_all(m->backends, sizeof(*ids), sizeof(*tmp), LB_MAX_BACKENDS, ids, tmp,
			      &nb);
	for (__u32 i = 0; i < nb && !err; i++)
		if (ids[i] < LB_MAX_BACKENDS)
			o.recs[ids[i]] = tmp[i];
	err = err ?: drop_stale_owners(m, &o);
	for (__u32 id = 1; id < LB_MAX_BACKENDS && !err; id++) {
		bool lazy = o.owns[id];

		/* No room for an owner: the record stays eager (as correct,
		 * one insert more per new flow). */
		if (!lazy && (o.recs[id].flags & LB_BE_LIVE) && owner_of(&o, id, &ek, &ow) &&
		    bpf_map_lookup_elem(m->owners, &ek, &cur))
			lazy = !bpf_map_update_elem(m->owners, &ek, &ow, BPF_NOEXIST);
		err = err ?: set_lazy(m, &o, id, lazy);
	}
	free(o.svc_by_id);
	free(o.recs);
	free(o.owns);
	free(vks);
	free(svs);
	free(ids);
	free(tmp);
	return err;
}

static int apply_maps(const struct lb_maps *m, const struct lb_conf *conf)
{
	struct lb_conf cur = {};
	struct apply a = { .m = m, .cur = &cur };
	int err = check_conf(conf);

	a.svc_taken = calloc(LB_MAX_SERVICES, 1);
	a.be_taken = calloc(LB_MAX_BACKENDS, 1);
	a.chg = calloc(conf->n + 1, sizeof(*a.chg));
	if (!a.svc_taken || !a.be_taken || !a.chg)
		err = err ?: sl_err(-ENOMEM, "out of memory");
	err = err ?: list_maps(m, &cur);
	if (!err && !(a.removed = calloc(cur.n + 1, sizeof(*a.removed))))
		err = sl_err(-ENOMEM, "out of memory");
	if (err)
		goto out;
	for (__u32 i = 0; i < cur.n; i++)
		if (find_svc(conf, &cur.svcs[i].key))
			a.svc_taken[cur.svcs[i].id] = 1;
	for (__u32 i = 0; i < conf->n && !err; i++)
		err = prepare_service(&a, &conf->svcs[i]);
	if (err) {
		undo_backends(&a);
		goto out;
	}
	unlink_removed(&a, conf, false);
	err = install_tables(&a);
	if (err) {
		unlink_removed(&a, conf, true);
		undo_backends(&a);
	} else {
		err = switch_services(&a, conf);
		err = err ?: sync_owners(m);
	}
out:
	for (__u32 i = 0; a.chg && i < a.nchg; i++)
		close(a.chg[i].fd);
	lb_conf_free(&cur);
	free(a.svc_taken);
	free(a.be_taken);
	free(a.chg);
	free(a.undo);
	free(a.removed);
	return err;
}

int lb_apply(struct sl_ctx *ctx, const char *inst, const struct lb_conf *conf)
{
	struct lb_maps m;
	int err = check_conf(conf);

	inst = inst_name(inst);
	err = err ?: lb_create(ctx, inst);
	err = err ?: maps_open(ctx, inst, &m);
	if (err)
		return err;
	err = apply_maps(&m, conf);
	maps_close(&m);
	return err;
}

/* ---- edits through the model ------------------------------------------ */

int lb_op_commit(struct sl_ctx *ctx, const char *inst, const struct lb_op *op)
{
	struct lb_conf conf = {};
	int err;

	inst = inst_name(inst);
	err = lb_list(ctx, inst, &conf);
	if (err == -ENOENT && (op->cmd == 'A' || op->cmd == 'C'))
		err = 0; /* a first service creates the instance */
	err = err ?: lb_op_apply(&conf, op);
	err = err ?: lb_apply(ctx, inst, &conf);
	lb_conf_free(&conf);
	return err;
}

int lb_service_add(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc, const struct lb_service_conf *conf)
{
	struct lb_op op = { .cmd = 'A', .svc = *svc, .sconf = *conf,
			    .has_sched = true, .has_mh_size = true };

	return lb_op_commit(ctx, inst, &op);
}

int lb_service_edit(struct sl_ctx *ctx, const char *inst,
		    const struct lb_service_key *svc, const struct lb_service_conf *conf)
{
	struct lb_op op = { .cmd = 'E', .svc = *svc, .sconf = *conf,
			    .has_sched = true, .has_mh_size = true };

	return lb_op_commit(ctx, inst, &op);
}

int lb_service_del(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc)
{
	struct lb_op op = { .cmd = 'D', .svc = *svc };

	return lb_op_commit(ctx, inst, &op);
}

static int backend_op(struct sl_ctx *ctx, const char *inst, char cmd,
		      const struct lb_service_key *svc, const struct lb_backend_addr *be,
		      const struct lb_backend_conf *conf)
{
	struct lb_op op = { .cmd = cmd, .svc = *svc, .be = *be };

	if (conf) {
		op.bconf = *conf;
		op.has_fwd = op.has_weight = true;
	}
	return lb_op_commit(ctx, inst, &op);
}

int lb_backend_add(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc, const struct lb_backend_addr *be,
		   const struct lb_backend_conf *conf)
{
	return backend_op(ctx, inst, 'a', svc, be, conf);
}

int lb_backend_edit(struct sl_ctx *ctx, const char *inst,
		    const struct lb_service_key *svc, const struct lb_backend_addr *be,
		    const struct lb_backend_conf *conf)
{
	return backend_op(ctx, inst, 'e', svc, be, conf);
}

int lb_backend_del(struct sl_ctx *ctx, const char *inst,
		   const struct lb_service_key *svc, const struct lb_backend_addr *be)
{
	return backend_op(ctx, inst, 'd', svc, be, NULL);
}

int lb_clear(struct sl_ctx *ctx, const char *inst)
{
	struct lb_op op = { .cmd = 'C' };

	return lb_op_commit(ctx, inst, &op);
}

int lb_backend_set_up(struct sl_ctx *ctx, const char *inst,
		      const struct lb_service_key *svc, const struct lb_backend_addr *be,
		      bool up)
{
	struct lb_conf conf = {};
	struct lb_backend_info *b = NULL;
	char name[80], ep[64];
	int err;

	inst = inst_name(inst);
	err = lb_list(ctx, inst, &conf);
	if (err)
		return err;
	for (__u32 i = 0; i < conf.n && !b; i++) {
		if (!same_svc(&conf.svcs[i].key, svc))
			continue;
		for (__u32 j = 0; j < conf.svcs[i].nbackends && !b; j++) {
			struct lb_backend_addr a = *be;

			if (!a.port)
				a.port = svc->port;
			if (same_be(&conf.svcs[i].backends[j].addr, &a))
				b = &conf.svcs[i].backends[j];
		}
	}
	if (!b) {
		svc_text(svc, name, sizeof(name));
		lb_format_endpoint(be->family, be->addr, be->port, ep, sizeof(ep));
		err = sl_err(-ENOENT, "no backend %s in service %s", ep, name);
	} else if (b->up != up) {
		b->up = up;
		err = lb_apply(ctx, inst, &conf);
	}
	lb_conf_free(&conf);
	return err;
}

/* Empties the flow table; returns the connections forgotten (forward
 * entries; NAT reply entries go with them). */
static int flush_flows(int fd)
{
	struct lb_flow_key k;
	struct lb_flow f;
	int n = 0;

	while (!bpf_map_get_next_key(fd, NULL, &k)) {
		bool fwd = !bpf_map_lookup_elem(fd, &k, &f) && f.kind == LB_FLOW_FWD;

		if (!bpf_map_delete_elem(fd, &k) && fwd)
			n++;
	}
	return n;
}

int lb_flush_flows(struct sl_ctx *ctx, const char *inst)
{
	struct lb_maps m;
	int err = maps_open(ctx, inst_name(inst), &m), n;

	if (err)
		return err;
	n = flush_flows(m.flows);
	maps_close(&m);
	return n;
}

/* Sets (set) or reads one setting of lb_state, at offset off. */
static int state_flag(struct sl_ctx *ctx, const char *inst, size_t off,
		      bool set, bool *on)
{
	struct lb_state st = {};
	struct lb_maps m;
	__u32 zero = 0;
	int err = 0;

	inst = inst_name(inst);
	if (set)
		err = lb_create(ctx, inst);
	err = err ?: maps_open(ctx, inst, &m);
	if (err)
		return err;
	if (bpf_map_lookup_elem(m.state, &zero, &st))
		err = sl_err(-errno, "cannot read lb_state: %s", strerror(errno));
	if (!err && set) {
		*(__u32 *)((char *)&st + off) = *on;
		if (bpf_map_update_elem(m.state, &zero, &st, BPF_ANY))
			err = sl_err(-errno, "cannot write lb_state: %s", strerror(errno));
	}
	*on = *(__u32 *)((char *)&st + off);
	maps_close(&m);
	return err;
}

int lb_set_decap(struct sl_ctx *ctx, const char *inst, bool on)
{
	return state_flag(ctx, inst, offsetof(struct lb_state, decap), true, &on);
}

int lb_get_decap(struct sl_ctx *ctx, const char *inst, bool *on)
{
	return state_flag(ctx, inst, offsetof(struct lb_state, decap), false, on);
}

int lb_set_forward(struct sl_ctx *ctx, const char *inst, bool on)
{
	return state_flag(ctx, inst, offsetof(struct lb_state, forward), true, &on);
}

int lb_get_forward(struct sl_ctx *ctx, const char *inst, bool *on)
{
	return state_flag(ctx, inst, offsetof(struct lb_state, forward), false, on);
}

/* ---- attaching ---------------------------------------------------------- */

int lb_attach(struct sl_ctx *ctx, const char *inst, const char *dev, enum sl_hook hook)
{
	struct sl_instance in;
	bool existed;
	int err;

	inst = inst_name(inst);
	if (hook != SL_HOOK_XDP && hook != SL_HOOK_TC_IN)
		return sl_err(-EINVAL, "the load balancer runs on ingress (XDP) or tc-ingress");
	existed = !sl_instance_get(ctx, inst, &in);
	err = sl_chain_check(ctx, dev, hook, inst);
	err = err ?: lb_create(ctx, inst);
	if (err)
		return err;
	err = sl_chain_ensure(ctx, dev, hook, inst);
	if (err && !existed) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		sl_instance_delete(ctx, inst); /* a refused attach leaves nothing */
		err = sl_err(err, "%s", msg);
	}
	return err;
}

struct slot_name {
	__u32 slot;
	char name[SL_NAME_MAX];
};

static int find_slot(const struct sl_instance *in, void *arg)
{
	struct slot_name *sn = arg;

	if (in->slot == sn->slot)
		snprintf(sn->name, sizeof(sn->name), "%s", in->name);
	return 0;
}

int lb_detach(struct sl_ctx *ctx, const char *inst, const char *dev)
{
	static const enum sl_hook hooks[] = { SL_HOOK_XDP, SL_HOOK_TC_IN };
	struct sl_instance in;
	bool found_any = false;
	int err;

	inst = inst_name(inst);
	err = sl_instance_get(ctx, inst, &in);
	if (err)
		return err;
	for (int h = 0; h < 2 && !err; h++) {
		struct slot_name names[SL_CHAIN_MAX];
		const char *keep[SL_CHAIN_MAX];
		struct sl_chain chain;
		bool found = false;
		int n = 0;

		if (sl_chain_get(ctx, dev, hooks[h], &chain))
			continue;
		for (__u32 i = 0; i < chain.len && i < SL_CHAIN_MAX; i++) {
			if (chain.slots[i] == in.slot) {
				found = true;
				continue;
			}
			names[n].slot = chain.slots[i];
			names[n].name[0] = 0;
			sl_instance_foreach(ctx, find_slot, &names[n]);
			keep[n] = names[n].name;
			n++;
		}
		if (found)
			err = sl_chain_set(ctx, dev, hooks[h], keep, n);
		found_any |= found;
	}
	if (!err && !found_any)
		return sl_err(-ENOENT, "load balancer '%s' is not attached to %s", inst, dev);
	return err;
}
