// SPDX-License-Identifier: GPL-2.0
/* Flow monitor NF control code: loads an instance (its set-associative flow
 * table and programs), reads the table back as oriented flows, and parses the small
 * filter language of `sluice flows` and `sluice top`. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "flowmon.h"
#include "flowmon.skel.h"

static const char *const fm_pins[] = { "fm_flows", "fm_stats", "fm_index", "fm_alloc" };

int fm_load(struct sl_ctx *ctx, const char *name, __u32 max_flows)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct flowmon_bpf *skel;
	struct sl_instance inst;
	char stage[PATH_MAX];
	int err;

	if (!max_flows)
		max_flows = FM_FLOWS_DEFAULT;
	if (max_flows < FM_FLOWS_MIN || max_flows > FM_FLOWS_MAX)
		return sl_err(-EINVAL, "max flows %u: between %u and %u", max_flows,
			      FM_FLOWS_MIN, FM_FLOWS_MAX);
	if (!sl_instance_get(ctx, name, &inst)) {
		if (strcmp(inst.type, FM_TYPE))
			return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s",
				      name, inst.type, FM_TYPE);
		return 0; /* keep its flows */
	}
	err = sl_instance_prepare(ctx, name, FM_TYPE, &inst);
	if (err)
		return err;
	skel = flowmon_bpf__open_opts(&opts);
	if (!skel)
		return sl_err(-errno, "cannot open the flowmon BPF object: %s",
			      strerror(errno));
	skel->rodata->fm_slot = inst.slot;
	skel->rodata->fm_sets = max_flows / FM_WAYS;
	skel->rodata->fm_max = max_flows;
	bpf_map__set_max_entries(skel->maps.fm_index, max_flows / FM_WAYS);
	bpf_map__set_max_entries(skel->maps.fm_flows, max_flows);
	err = flowmon_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the flowmon BPF program: %s", strerror(-err));
		goto out;
	}
	err = sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	err = err ?: sl_pin(stage, fm_pins[0], bpf_map__fd(skel->maps.fm_flows));
	err = err ?: sl_pin(stage, fm_pins[1], bpf_map__fd(skel->maps.fm_stats));
	err = err ?: sl_pin(stage, fm_pins[2], bpf_map__fd(skel->maps.fm_index));
	err = err ?: sl_pin(stage, fm_pins[3], bpf_map__fd(skel->maps.fm_alloc));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.flowmon_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.flowmon_tc));
	err = err ?: sl_instance_commit(ctx, &inst, bpf_program__fd(skel->progs.flowmon_xdp),
					bpf_program__fd(skel->progs.flowmon_tc));
	if (err)
		sl_pin_dir_remove(stage);
out:
	flowmon_bpf__destroy(skel);
	return err;
}

int fm_attach(struct sl_ctx *ctx, const char *name, const char *dev,
	      const enum sl_hook *hooks, int nhooks, __u32 max_flows)
{
	struct sl_instance inst;
	bool existed = !sl_instance_get(ctx, name, &inst);
	int err = 0;

	if (nhooks < 1)
		return sl_err(-EINVAL, "no hook to attach to");
	for (int i = 0; i < nhooks && !err; i++)
		err = sl_chain_check(ctx, dev, hooks[i], name);
	err = err ?: fm_load(ctx, name, max_flows);
	for (int i = 0; i < nhooks && !err; i++)
		err = sl_chain_ensure(ctx, dev, hooks[i], name);
	/* Remove only what this call created (a refused name created nothing). */
	if (err && !existed && !sl_instance_get(ctx, name, &inst)) {
		char msg[256];

		/* Keep the first message: the clean-up may fail with its own. */
		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		if (sl_instance_delete(ctx, name))
			sl_err(err, "%s (instance '%s' left behind: %s)", msg, name,
			       sl_errmsg());
		else
			sl_err(err, "%s", msg);
	}
	return err;
}

/* ---- reading ------------------------------------------------------------ */

/* Opens one pin of a flow monitor instance. */
static int fm_open_pin(struct sl_ctx *ctx, const char *name, const char *pin)
{
	struct sl_instance inst;
	int dir_fd, fd, err = sl_instance_get(ctx, name, &inst);

	if (err)
		return err;
	if (strcmp(inst.type, FM_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a flow monitor",
			      name, inst.type);
	dir_fd = sl_instance_open_dir(ctx, name);
	if (dir_fd < 0)
		return dir_fd;
	fd = sl_obj_get_at(dir_fd, pin);
	close(dir_fd);
	return fd;
}

static void fm_view(const char *inst, const struct fm_key *k,
		    const struct fm_flow *f, struct fm_flow_view *v)
{
	/* Forward is the opener's direction: a to b unless it was b. */
	int fwd = f->init_dir == FM_DIR_BA ? FM_DIR_BA : FM_DIR_AB, rev = !fwd;

	memset(v, 0, sizeof(*v));
	snprintf(v->instance, sizeof(v->instance), "%s", inst);
	v->family = k->family;
	v->proto = k->proto;
	memcpy(v->src, fwd == FM_DIR_AB ? k->addr_a : k->addr_b, 16);
	memcpy(v->dst, fwd == FM_DIR_AB ? k->addr_b : k->addr_a, 16);
	v->sport = fwd == FM_DIR_AB ? k->port_a : k->port_b;
	v->dport = fwd == FM_DIR_AB ? k->port_b : k->port_a;
	v->packets[0] = f->count[fwd].packets;
	v->packets[1] = f->count[rev].packets;
	v->bytes[0] = f->count[fwd].bytes;
	v->bytes[1] = f->count[rev].bytes;
	v->tcp_flags[0] = f->tcp_flags[fwd];
	v->tcp_flags[1] = f->tcp_flags[rev];
	v->retrans[0] = f->retrans[fwd];
	v->retrans[1] = f->retrans[rev];
	v->rtt_ns = f->rtt_state == FM_RTT_DONE ? f->syn_rtt_ns : 0;
	v->first_ns = f->first_ns;
	v->last_ns = f->last_ns;
	v->key = *k;
}

struct fm_list {
	struct fm_flow_view *v;
	size_t n, cap;
};

static int fm_list_add(struct fm_list *l, struct fm_flow_view **out)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct fm_flow_view *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return sl_err(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	*out = &l->v[l->n++];
	return 0;
}

/* The entries in use of an instance's table, one per flow. */
struct fm_table {
	struct fm_entry *e;
	size_t n;
	__u32 max_entries;
};

static int fm_entry_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct fm_entry *)a)->key,
		      &((const struct fm_entry *)b)->key, sizeof(struct fm_key));
}

/* Adds the record of b to a, the same flow: two CPUs that saw its first
 * packet at once may each have given it an entry. */
static void fm_flow_merge(struct fm_flow *a, const struct fm_flow *b)
{
	if (a->rtt_state != FM_RTT_DONE && b->rtt_state != FM_RTT_NONE) {
		a->syn_rtt_ns = b->syn_rtt_ns;
		a->rtt_state = b->rtt_state;
		a->init_dir = b->init_dir;
	}
	for (int d = 0; d < 2; d++) {
		a->count[d].packets += b->count[d].packets;
		a->count[d].bytes += b->count[d].bytes;
		a->retrans[d] += b->retrans[d];
		a->tcp_flags[d] |= b->tcp_flags[d];
	}
	if (b->first_ns < a->first_ns)
		a->first_ns = b->first_ns;
	if (b->last_ns > a->last_ns)
		a->last_ns = b->last_ns;
}

/* Sorts the entries by key and merges those of one flow. */
static void fm_table_merge(struct fm_table *t)
{
	size_t out = 0;

	qsort(t->e, t->n, sizeof(*t->e), fm_entry_cmp);
	for (size_t i = 0; i < t->n; i++)
		if (out && !fm_entry_cmp(&t->e[out - 1], &t->e[i]))
			fm_flow_merge(&t->e[out - 1].flow, &t->e[i].flow);
		else
			t->e[out++] = t->e[i];
	t->n = out;
}

/* Maps a table of instance name read-only: n values of size bytes, or
 * an error when the pin is not such a table (an instance of an older
 * sluice). */
static const void *fm_map(struct sl_ctx *ctx, const char *name, const char *pin,
			  __u32 size, __u32 *n, size_t *len, int *err)
{
	int fd = fm_open_pin(ctx, name, pin);
	struct bpf_map_info mi = {};
	__u32 mlen = sizeof(mi);
	void *p = NULL;

	*err = 0;
	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	if (bpf_obj_get_info_by_fd(fd, &mi, &mlen)) {
		*err = sl_err(-errno, "cannot read flowmon '%s': %s", name, strerror(errno));
	} else if (mi.type != BPF_MAP_TYPE_ARRAY || mi.value_size != size ||
		   !(mi.map_flags & BPF_F_MMAPABLE) || !mi.max_entries) {
		*err = sl_err(-EINVAL, "flowmon '%s' has the flow table of an older sluice: "
			      "delete the instance and attach it again", name);
	} else {
		*n = mi.max_entries;
		*len = (size_t)mi.max_entries * size;
		p = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			*err = sl_err(-errno, "cannot map flowmon '%s': %s", name,
				      strerror(errno));
			p = NULL;
		}
	}
	close(fd);
	return p;
}

/* Reads the table of instance name in place: a snapshot of a moving
 * table, never exact, but each flow once and bounded by the table's size.
 * An entry is kept only when its index word is the same before and after
 * the copy: one replaced under us is left out, not read half old, half
 * new. */
static int fm_table_read(struct sl_ctx *ctx, const char *name, struct fm_table *t)
{
	const struct fm_entry *pool = NULL;
	const struct fm_set *index;
	size_t ilen = 0, plen = 0;
	__u32 nsets = 0, npool = 0;
	int err;

	memset(t, 0, sizeof(*t));
	index = fm_map(ctx, name, "fm_index", sizeof(*index), &nsets, &ilen, &err);
	if (index)
		pool = fm_map(ctx, name, "fm_flows", sizeof(*pool), &npool, &plen, &err);
	if (err)
		goto out;
	t->max_entries = npool;
	t->e = malloc((size_t)nsets * FM_WAYS * sizeof(*t->e));
	if (!t->e) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (size_t s = 0; s < nsets; s++)
		for (int i = 0; i < FM_WAYS; i++) {
			const __u64 *slot = &index[s].slot[i];
			__u64 w = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

			if (!FM_SLOT_USED(w) || FM_SLOT_IDX(w) >= npool)
				continue;
			memcpy(&t->e[t->n], &pool[FM_SLOT_IDX(w)], sizeof(*t->e));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(slot, __ATOMIC_RELAXED) == w)
				t->n++;
		}
	fm_table_merge(t);
out:
	if (index)
		munmap((void *)index, ilen);
	if (pool)
		munmap((void *)pool, plen);
	return err;
}

/* Appends the flows of one instance. */
static int fm_read_one(struct sl_ctx *ctx, const char *name, struct fm_list *l)
{
	struct fm_flow_view *v = NULL;
	struct fm_table t;
	int err = fm_table_read(ctx, name, &t);

	for (size_t i = 0; i < t.n && !err; i++) {
		err = fm_list_add(l, &v);
		if (!err)
			fm_view(name, &t.e[i].key, &t.e[i].flow, v);
	}
	free(t.e);
	return err;
}

struct fm_walk {
	struct sl_ctx *ctx;
	struct fm_list *l;
	int err;
};

static int fm_walk_cb(const struct sl_instance *inst, void *arg)
{
	struct fm_walk *w = arg;

	if (strcmp(inst->type, FM_TYPE))
		return 0;
	w->err = fm_read_one(w->ctx, inst->name, w->l);
	return w->err ? 1 : 0;
}

int fm_flows_read(struct sl_ctx *ctx, const char *name,
		  struct fm_flow_view **flows, size_t *n)
{
	struct fm_list l = {};
	struct fm_walk w = { ctx, &l, 0 };
	int err;

	if (name) {
		err = fm_read_one(ctx, name, &l);
	} else {
		err = sl_instance_foreach(ctx, fm_walk_cb, &w);
		err = w.err ?: err;
	}
	if (err) {
		free(l.v);
		return err;
	}
	*flows = l.v;
	*n = l.n;
	return 0;
}

int fm_info_read(struct sl_ctx *ctx, const char *name, struct fm_info *info)
{
	int ncpu = libbpf_num_possible_cpus();
	int stats_fd = -1, err = 0;
	struct fm_table t = {};
	struct fm_stats *per;
	__u32 zero = 0;

	memset(info, 0, sizeof(*info));
	/* The per-CPU lookup writes ncpu values: no guess when unknown. */
	if (ncpu < 1)
		return sl_err(ncpu < 0 ? ncpu : -EINVAL, "cannot count CPUs");
	per = calloc(ncpu, sizeof(*per));
	if (!per)
		return sl_err(-ENOMEM, "out of memory");
	stats_fd = fm_open_pin(ctx, name, "fm_stats");
	if (stats_fd < 0) {
		err = stats_fd;
		goto out;
	}
	if (bpf_map_lookup_elem(stats_fd, &zero, per)) {
		err = sl_err(-errno, "cannot read flowmon '%s': %s", name, strerror(errno));
		goto out;
	}
	err = fm_table_read(ctx, name, &t);
	if (err)
		goto out;
	info->max_flows = t.max_entries;
	info->flows = t.n;
	for (int c = 0; c < ncpu; c++) {
		info->stats.created += per[c].created;
		info->stats.insert_failed += per[c].insert_failed;
		info->stats.skipped += per[c].skipped;
		info->stats.retrans += per[c].retrans;
		info->stats.rtt_sum_ns += per[c].rtt_sum_ns;
		for (int b = 0; b < FM_RTT_BUCKETS; b++)
			info->stats.rtt_buckets[b] += per[c].rtt_buckets[b];
	}
out:
	if (stats_fd >= 0)
		close(stats_fd);
	free(t.e);
	free(per);
	return err;
}

/* ---- filters ---------------------------------------------------------- */

enum fm_what { T_SRC, T_DST, T_HOST, T_SPORT, T_DPORT, T_PORT, T_PROTO };

static const struct {
	const char *word;
	enum fm_what what;
} fm_words[] = {
	{ "src", T_SRC }, { "dst", T_DST }, { "host", T_HOST },
	{ "sport", T_SPORT }, { "dport", T_DPORT }, { "port", T_PORT },
	{ "proto", T_PROTO },
};

static int fm_parse_addr(const char *s, struct fm_term *t)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long plen;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (inet_pton(AF_INET, buf, t->addr) == 1)
		t->family = 4;
	else if (inet_pton(AF_INET6, buf, t->addr) == 1)
		t->family = 6;
	else
		return -EINVAL;
	t->plen = t->family == 4 ? 32 : 128;
	if (slash) {
		plen = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || plen < 0 || plen > t->plen)
			return -EINVAL;
		t->plen = plen;
	}
	return 0;
}

static int fm_parse_proto(const char *s, __u8 *proto)
{
	static const struct { const char *name; __u8 num; } names[] = {
		{ "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmpv6", 58 },
	};
	char *end;
	long v;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name)) {
			*proto = names[i].num;
			return 0;
		}
	v = strtol(s, &end, 10);
	if (!*s || *end || v < 0 || v > 255)
		return -EINVAL;
	*proto = v;
	return 0;
}

int fm_filter_parse(int argc, char *const *argv, struct fm_filter *f)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i], *v;
		struct fm_term *t;
		size_t k;
		char *end;
		long port;

		if (!strcmp(w, "and") && f->n && i + 1 < argc)
			continue;
		for (k = 0; k < sizeof(fm_words) / sizeof(fm_words[0]); k++)
			if (!strcmp(w, fm_words[k].word))
				break;
		if (k == sizeof(fm_words) / sizeof(fm_words[0]))
			return sl_err(-EINVAL, "filter: unknown word '%s' (src dst host ADDR[/LEN], sport dport port N, proto P, and)",
				      w);
		if (i + 1 >= argc)
			return sl_err(-EINVAL, "filter: '%s' needs a value", w);
		if (f->n >= FM_FILTER_MAX)
			return sl_err(-EINVAL, "filter: more than %d terms", FM_FILTER_MAX);
		v = argv[++i];
		t = &f->terms[f->n];
		t->what = fm_words[k].what;
		switch (t->what) {
		case T_SRC:
		case T_DST:
		case T_HOST:
			if (fm_parse_addr(v, t))
				return sl_err(-EINVAL, "filter: %s '%s': not an address or ADDR/LEN", w, v);
			break;
		case T_SPORT:
		case T_DPORT:
		case T_PORT:
			port = strtol(v, &end, 10);
			if (!*v || *end || port < 0 || port > 65535)
				return sl_err(-EINVAL, "filter: %s '%s': not a port (0-65535)", w, v);
			t->port = port;
			break;
		case T_PROTO:
			if (fm_parse_proto(v, &t->proto))
				return sl_err(-EINVAL, "filter: proto '%s': tcp, udp, icmp, icmpv6 or 0-255", v);
			break;
		}
		f->n++;
	}
	return 0;
}

static bool fm_prefix_match(const struct fm_term *t, int family, const __u8 *addr)
{
	int full = t->plen / 8, rest = t->plen % 8;

	if (family != t->family)
		return false;
	if (memcmp(addr, t->addr, full))
		return false;
	return !rest || !((addr[full] ^ t->addr[full]) & (0xff << (8 - rest)));
}

static bool fm_term_match(const struct fm_term *t, const struct fm_flow_view *v)
{
	switch (t->what) {
	case T_SRC: return fm_prefix_match(t, v->family, v->src);
	case T_DST: return fm_prefix_match(t, v->family, v->dst);
	case T_HOST: return fm_prefix_match(t, v->family, v->src) ||
			    fm_prefix_match(t, v->family, v->dst);
	case T_SPORT: return v->sport == t->port;
	case T_DPORT: return v->dport == t->port;
	case T_PORT: return v->sport == t->port || v->dport == t->port;
	case T_PROTO: return v->proto == t->proto;
	}
	return false;
}

bool fm_filter_match(const struct fm_filter *f, const struct fm_flow_view *v)
{
	for (int i = 0; i < f->n; i++)
		if (!fm_term_match(&f->terms[i], v))
			return false;
	return true;
}

/* ---- sorting and names --------------------------------------------------- */

int fm_sort_parse(const char *s, enum fm_sort *sort)
{
	if (!strcmp(s, "bytes"))
		*sort = FM_SORT_BYTES;
	else if (!strcmp(s, "pkts") || !strcmp(s, "packets"))
		*sort = FM_SORT_PKTS;
	else if (!strcmp(s, "rtt"))
		*sort = FM_SORT_RTT;
	else
		return sl_err(-EINVAL, "--sort '%s': bytes, pkts or rtt", s);
	return 0;
}

static int fm_cmp_u64_desc(__u64 a, __u64 b)
{
	return a > b ? -1 : a < b ? 1 : 0;
}

static int fm_cmp_bytes(const void *x, const void *y)
{
	const struct fm_flow_view *a = x, *b = y;

	return fm_cmp_u64_desc(a->bytes[0] + a->bytes[1], b->bytes[0] + b->bytes[1]);
}

static int fm_cmp_pkts(const void *x, const void *y)
{
	const struct fm_flow_view *a = x, *b = y;

	return fm_cmp_u64_desc(a->packets[0] + a->packets[1],
			       b->packets[0] + b->packets[1]);
}

static int fm_cmp_rtt(const void *x, const void *y)
{
	const struct fm_flow_view *a = x, *b = y;

	if (!a->rtt_ns != !b->rtt_ns)
		return a->rtt_ns ? -1 : 1;
	return fm_cmp_u64_desc(a->rtt_ns, b->rtt_ns);
}

void fm_flows_sort(struct fm_flow_view *flows, size_t n, enum fm_sort sort)
{
	int (*cmp[])(const void *, const void *) = { fm_cmp_bytes, fm_cmp_pkts, fm_cmp_rtt };

	if (n > 1)
		qsort(flows, n, sizeof(*flows), cmp[sort]);
}

void fm_flags_format(__u8 flags, char *buf, size_t len)
{
	static const char *const names[] = { "FIN", "SYN", "RST", "PSH",
					     "ACK", "URG", "ECE", "CWR" };
	size_t off = 0;

	buf[0] = 0;
	for (int i = 0; i < 8; i++)
		if (flags & (1 << i))
			off += snprintf(buf + off, off < len ? len - off : 0, "%s%s",
					off ? "," : "", names[i]);
	if (!off)
		snprintf(buf, len, "-");
}

const char *fm_proto_name(__u8 proto, char buf[8])
{
	switch (proto) {
	case 6: return "tcp";
	case 17: return "udp";
	case 1: return "icmp";
	case 58: return "icmpv6";
	}
	snprintf(buf, 8, "%u", proto);
	return buf;
}
