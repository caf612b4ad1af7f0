// SPDX-License-Identifier: GPL-2.0
/* Conntrack NF control code: loads an instance (its table, options and
 * in-kernel sweep), places it in chains, reads the table back. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "conntrack.h"
#include "conntrack.skel.h"

#define NSEC 1000000000ULL

static const char *const ct_pins[] = { "ct_table", "ct_config", "ct_stats", "ct_gc",
				       "ct_table6" };
#define CT_NPINS (sizeof(ct_pins) / sizeof(ct_pins[0]))

static const char *const timeout_names[CT_TO_MAX] = {
	[CT_TO_TCP_UNACK] = "tcp_unacknowledged",
	[CT_TCP_SYN_SENT] = "tcp_syn_sent",
	[CT_TCP_SYN_RECV] = "tcp_syn_recv",
	[CT_TCP_ESTABLISHED] = "tcp_established",
	[CT_TCP_FIN_WAIT] = "tcp_fin_wait",
	[CT_TCP_CLOSE_WAIT] = "tcp_close_wait",
	[CT_TCP_LAST_ACK] = "tcp_last_ack",
	[CT_TCP_TIME_WAIT] = "tcp_time_wait",
	[CT_TCP_CLOSE] = "tcp_close",
	[CT_TCP_SYN_SENT2] = "tcp_syn_sent2",
	[CT_TO_UDP] = "udp",
	[CT_TO_UDP_STREAM] = "udp_stream",
	[CT_TO_ICMP] = "icmp",
	[CT_TO_ICMPV6] = "icmpv6",
	[CT_TO_GENERIC] = "generic",
};

/* The kernel's defaults, in seconds (nf_conntrack_*_timeout*). */
static const __u32 timeout_defaults[CT_TO_MAX] = {
	[CT_TO_TCP_UNACK] = 300,
	[CT_TCP_SYN_SENT] = 120,
	[CT_TCP_SYN_RECV] = 60,
	[CT_TCP_ESTABLISHED] = 432000,
	[CT_TCP_FIN_WAIT] = 120,
	[CT_TCP_CLOSE_WAIT] = 60,
	[CT_TCP_LAST_ACK] = 30,
	[CT_TCP_TIME_WAIT] = 120,
	[CT_TCP_CLOSE] = 10,
	[CT_TCP_SYN_SENT2] = 120,
	[CT_TO_UDP] = 30,
	[CT_TO_UDP_STREAM] = 120,
	[CT_TO_ICMP] = 30,
	[CT_TO_ICMPV6] = 30,
	[CT_TO_GENERIC] = 600,
};

const char *ct_timeout_name(unsigned int idx)
{
	return idx < CT_TO_MAX ? timeout_names[idx] : NULL;
}

void ct_config_default(struct ct_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (int i = 0; i < CT_TO_MAX; i++)
		cfg->timeout_ns[i] = timeout_defaults[i] * NSEC;
	cfg->flags = CT_CFG_LOOSE;
	cfg->gc_interval_ms = CT_DEFAULT_GC_MS;
}

int ct_timeout_parse(const char *arg, struct ct_config *cfg)
{
	const char *eq = strchr(arg, '=');
	unsigned long long secs;
	char *end;

	if (!eq)
		return sl_err(-EINVAL, "timeout '%s': expected NAME=SECONDS", arg);
	for (int i = 0; i < CT_TO_MAX; i++) {
		if (!timeout_names[i] || strlen(timeout_names[i]) != (size_t)(eq - arg) ||
		    strncmp(arg, timeout_names[i], eq - arg))
			continue;
		errno = 0;
		secs = strtoull(eq + 1, &end, 10);
		if (errno || end == eq + 1 || *end || secs == 0 || secs > 365ULL * 86400 * 10)
			return sl_err(-EINVAL, "timeout '%s': SECONDS must be 1 to %llu",
				      arg, 365ULL * 86400 * 10);
		cfg->timeout_ns[i] = secs * NSEC;
		return 0;
	}
	return sl_err(-EINVAL, "timeout '%.*s': unknown; names are tcp_syn_sent, tcp_syn_recv, "
			       "tcp_established, tcp_fin_wait, tcp_close_wait, tcp_last_ack, "
			       "tcp_time_wait, tcp_close, tcp_syn_sent2, tcp_unacknowledged, udp, "
			       "udp_stream, icmp, icmpv6, generic",
		      (int)(eq - arg), arg);
}

/* Starts (or restarts) the sweep: runs ct_gc_arm once. */
static int ct_gc_arm(int prog_fd, const char *name)
{
	char pkt[64] = {};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt));

	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return sl_err(-errno, "cannot start the sweep of '%s': %s", name,
			      strerror(errno));
	if (opts.retval)
		return sl_err(-EIO, "cannot start the sweep of '%s' (step %u)", name,
			      opts.retval);
	return 0;
}

int ct_create(struct sl_ctx *ctx, const char *name, const struct ct_options *opt)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts, .pin_root_path = sl_base(ctx));
	struct ct_options def = {};
	struct ct_config cfg;
	struct conntrack_bpf *skel;
	struct sl_instance inst;
	struct bpf_map *maps[CT_NPINS];
	char stage[PATH_MAX];
	__u32 zero = 0, size;
	int err;

	if (!opt)
		opt = &def;
	size = opt->max_entries ? opt->max_entries : CT_DEFAULT_MAX;
	err = sl_instance_get(ctx, name, &inst);
	if (!err)
		return sl_err(-EEXIST, "instance '%s' exists (a %s)", name, inst.type);
	if (err != -ENOENT)
		return err;
	ct_config_default(&cfg);
	for (int i = 0; i < CT_TO_MAX; i++)
		if (opt->cfg.timeout_ns[i])
			cfg.timeout_ns[i] = opt->cfg.timeout_ns[i];
	if (opt->cfg_set)
		cfg.flags = opt->cfg.flags;
	if (opt->cfg.gc_interval_ms)
		cfg.gc_interval_ms = opt->cfg.gc_interval_ms;
	if (opt->max_entries > (1U << 24))
		return sl_err(-EINVAL, "table size %u: at most %u entries", opt->max_entries,
			      1U << 24);
	err = sl_instance_prepare(ctx, name, CT_TYPE, &inst);
	if (err)
		return err;

	skel = conntrack_bpf__open_opts(&oopts);
	if (!skel)
		return sl_err(-errno, "cannot open the conntrack BPF object: %s",
			      strerror(errno));
	skel->rodata->ct_slot = inst.slot;
	/* Each family's table holds up to size connections. */
	bpf_map__set_max_entries(skel->maps.ct_table, size);
	bpf_map__set_max_entries(skel->maps.ct_table6, size);
	err = conntrack_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the conntrack BPF program: %s", strerror(-err));
		goto out;
	}
	maps[0] = skel->maps.ct_table;
	maps[1] = skel->maps.ct_config;
	maps[2] = skel->maps.ct_stats;
	maps[3] = skel->maps.ct_gc;
	maps[4] = skel->maps.ct_table6;
	if (bpf_map_update_elem(bpf_map__fd(maps[1]), &zero, &cfg, BPF_ANY)) {
		err = sl_err(-errno, "cannot write ct_config: %s", strerror(errno));
		goto out;
	}
	err = sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	for (size_t i = 0; i < CT_NPINS && !err; i++)
		err = sl_pin(stage, ct_pins[i], bpf_map__fd(maps[i]));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.conntrack_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.conntrack_tc));
	err = err ?: sl_pin(stage, "prog_gc_arm", bpf_program__fd(skel->progs.ct_gc_arm));
	if (err) {
		sl_pin_dir_remove(stage);
		goto out;
	}
	err = sl_instance_commit(ctx, &inst, bpf_program__fd(skel->progs.conntrack_xdp),
				 bpf_program__fd(skel->progs.conntrack_tc));
	if (err) {
		sl_pin_dir_remove(stage);
		goto out;
	}
	/* The timer lives with the pinned ct_gc map, not with this process. */
	err = ct_gc_arm(bpf_program__fd(skel->progs.ct_gc_arm), name);
	if (err)
		sl_instance_delete(ctx, name);
out:
	conntrack_bpf__destroy(skel);
	return err;
}

int ct_instance_ensure(struct sl_ctx *ctx, const char *name)
{
	struct sl_instance inst;
	int err = sl_instance_get(ctx, name, &inst);

	if (!err) {
		if (strcmp(inst.type, CT_TYPE))
			return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s",
				      name, inst.type, CT_TYPE);
		return 0;
	}
	if (err != -ENOENT)
		return err;
	return ct_create(ctx, name, NULL);
}

static int ct_get(struct sl_ctx *ctx, const char *name, struct sl_instance *inst)
{
	int err = sl_instance_get(ctx, name, inst);

	if (err)
		return err;
	if (strcmp(inst->type, CT_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a %s", name, inst->type,
			      CT_TYPE);
	return 0;
}

/* Names of the instances of a chain, in order. */
static int chain_names(struct sl_ctx *ctx, const struct sl_chain *chain,
		       char names[SL_CHAIN_MAX][SL_NAME_MAX]);

struct slot_name {
	__u32 slot;
	char *out;
};

static int slot_name_cb(const struct sl_instance *inst, void *arg)
{
	struct slot_name *q = arg;

	if (inst->slot != q->slot)
		return 0;
	snprintf(q->out, SL_NAME_MAX, "%s", inst->name);
	return 1;
}

static int chain_names(struct sl_ctx *ctx, const struct sl_chain *chain,
		       char names[SL_CHAIN_MAX][SL_NAME_MAX])
{
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		struct slot_name q = { .slot = chain->slots[i], .out = names[i] };

		if (sl_instance_foreach(ctx, slot_name_cb, &q) != 1)
			return sl_err(-ENOENT, "the chain holds slot %u, which no instance owns",
				      chain->slots[i]);
	}
	return 0;
}

static int chain_rewrite(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
			 const char *name, bool add)
{
	char names[SL_CHAIN_MAX][SL_NAME_MAX];
	const char *order[SL_CHAIN_MAX];
	struct sl_chain chain = {};
	struct sl_instance inst;
	bool found = false;
	int n = 0, err;

	err = ct_get(ctx, name, &inst);
	if (err)
		return err;
	err = sl_chain_get(ctx, dev, hook, &chain);
	if (err && err != -ENOENT)
		return err;
	err = chain_names(ctx, &chain, names);
	if (err)
		return err;
	if (add)
		order[n++] = name;
	for (__u32 i = 0; i < chain.len; i++) {
		if (!strcmp(names[i], name)) {
			found = true;
			continue;
		}
		if (n >= SL_CHAIN_MAX)
			return sl_err(-E2BIG, "the chain of %s %s is full (%d instances)", dev,
				      sl_hook_name(hook), SL_CHAIN_MAX);
		order[n++] = names[i];
	}
	if (!add && !found)
		return sl_err(-ENOENT, "'%s' is not in the chain of %s %s", name, dev,
			      sl_hook_name(hook));
	if (add && found && !strcmp(names[0], name))
		return 0; /* already first */
	if (add) {
		err = sl_chain_check(ctx, dev, hook, name);
		if (err)
			return err;
	}
	return sl_chain_set(ctx, dev, hook, order, n);
}

int ct_chain_first(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		   const char *name)
{
	return chain_rewrite(ctx, dev, hook, name, true);
}

int ct_attach(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
	      const char *name)
{
	struct sl_instance inst;
	bool existed = !sl_instance_get(ctx, name, &inst);
	int err = sl_ifindex(dev);

	if (err < 0)
		return err;
	if (existed && strcmp(inst.type, CT_TYPE))
		return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a %s", name,
			      inst.type, CT_TYPE);
	err = sl_chain_check(ctx, dev, hook, name);
	err = err ?: ct_instance_ensure(ctx, name);
	err = err ?: ct_chain_first(ctx, dev, hook, name);
	if (err && !existed) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", sl_errmsg());
		sl_instance_delete(ctx, name);
		sl_err(err, "%s", msg);
	}
	return err;
}

int ct_chain_remove(struct sl_ctx *ctx, const char *dev, enum sl_hook hook,
		    const char *name)
{
	return chain_rewrite(ctx, dev, hook, name, false);
}

/* Opens one pinned map of the instance. */
static int ct_map(struct sl_ctx *ctx, const char *name, const char *map)
{
	struct sl_instance inst;
	int dir_fd, fd, err = ct_get(ctx, name, &inst);

	if (err)
		return err;
	dir_fd = sl_instance_open_dir(ctx, name);
	if (dir_fd < 0)
		return dir_fd;
	fd = sl_obj_get_at(dir_fd, map);
	close(dir_fd);
	return fd;
}

int ct_config_read(struct sl_ctx *ctx, const char *name, struct ct_config *cfg)
{
	__u32 zero = 0;
	int fd = ct_map(ctx, name, "ct_config"), err = 0;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, &zero, cfg))
		err = sl_err(-errno, "cannot read the options of '%s': %s", name,
			     strerror(errno));
	close(fd);
	return err;
}

int ct_config_write(struct sl_ctx *ctx, const char *name, const struct ct_config *cfg)
{
	__u32 zero = 0;
	int fd, err = 0;

	for (int i = 0; i < CT_TO_MAX; i++)
		if (timeout_names[i] && !cfg->timeout_ns[i])
			return sl_err(-EINVAL, "timeout %s: must not be 0", timeout_names[i]);
	if (cfg->flags & ~(CT_CFG_LOOSE | CT_CFG_DROP_INVALID))
		return sl_err(-EINVAL, "unknown conntrack flags 0x%x", cfg->flags);
	if (cfg->gc_interval_ms < 10 || cfg->gc_interval_ms > 3600 * 1000)
		return sl_err(-EINVAL, "gc interval %u ms: must be 10 ms to 1 h",
			      cfg->gc_interval_ms);
	fd = ct_map(ctx, name, "ct_config");
	if (fd < 0)
		return fd;
	if (bpf_map_update_elem(fd, &zero, cfg, BPF_ANY))
		err = sl_err(-errno, "cannot write the options of '%s': %s", name,
			     strerror(errno));
	close(fd);
	return err;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec;
}

/* The key of a table of family (4: struct ct_key4) read back as a ct_key. */
static void key_read(int family, const void *raw, struct ct_key *key)
{
	if (family == 4)
		ct_key_of4(raw, key);
	else
		memcpy(key, raw, sizeof(*key));
}

static int foreach_table(int fd, int family, __u64 now, ct_conn_cb cb, void *arg)
{
	struct ct_key raw, next;
	struct ct_conn c;
	void *prev = NULL;
	int err = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		raw = next;
		prev = &raw;
		memset(&c, 0, sizeof(c));
		if (bpf_map_lookup_elem(fd, &raw, &c.e) || c.e.expires_ns <= now)
			continue;
		key_read(family, &raw, &c.key);
		c.remaining_ns = c.e.expires_ns - now;
		c.orig = !!(c.e.state & CT_ST_ORIG_IS_1);
		err = cb(&c, arg);
		if (err)
			break;
	}
	return err;
}

int ct_foreach(struct sl_ctx *ctx, const char *name, ct_conn_cb cb, void *arg)
{
	int fd4 = ct_map(ctx, name, "ct_table"), fd6, err;
	__u64 now = mono_ns();

	if (fd4 < 0)
		return fd4;
	fd6 = ct_map(ctx, name, "ct_table6");
	if (fd6 < 0) {
		close(fd4);
		return fd6;
	}
	err = foreach_table(fd4, 4, now, cb, arg);
	err = err ?: foreach_table(fd6, 6, now, cb, arg);
	close(fd4);
	close(fd6);
	return err;
}

/* Removes every entry of one table; adds how many to *done. */
static int flush_table(int fd, __u64 *done)
{
	struct ct_key *keys = NULL, *k;
	size_t nkeys = 0, cap = 0;
	void *prev = NULL;
	int err = 0;

	/* Keys first, deletes after: deleting while walking restarts it.
	 * (A struct ct_key holds either family's key.) */
	for (;;) {
		if (nkeys == cap) {
			cap = cap ? cap * 2 : 1024;
			k = realloc(keys, cap * sizeof(*keys));
			if (!k) {
				err = sl_err(-ENOMEM, "out of memory");
				goto out;
			}
			keys = k;
		}
		if (bpf_map_get_next_key(fd, prev, &keys[nkeys]))
			break;
		prev = &keys[nkeys++];
	}
	for (size_t i = 0; i < nkeys; i++)
		if (!bpf_map_delete_elem(fd, &keys[i]))
			(*done)++;
out:
	free(keys);
	return err;
}

int ct_flush(struct sl_ctx *ctx, const char *name, __u64 *n)
{
	int fd4 = ct_map(ctx, name, "ct_table"), fd6, err;
	__u64 done = 0;

	if (fd4 < 0)
		return fd4;
	fd6 = ct_map(ctx, name, "ct_table6");
	if (fd6 < 0) {
		close(fd4);
		return fd6;
	}
	err = flush_table(fd4, &done);
	err = err ?: flush_table(fd6, &done);
	if (n)
		*n = done;
	close(fd4);
	close(fd6);
	return err;
}

static int count_cb(const struct ct_conn *c, void *arg)
{
	(*(__u64 *)arg)++;
	return 0;
}

int ct_stats_read(struct sl_ctx *ctx, const char *name, struct ct_stats *st,
		  __u64 *entries)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ct_stats *per;
	__u32 zero = 0;
	int fd, err = 0;

	memset(st, 0, sizeof(*st));
	if (ncpu <= 0)
		return sl_err(-EIO, "cannot count CPUs");
	fd = ct_map(ctx, name, "ct_stats");
	if (fd < 0)
		return fd;
	per = calloc(ncpu, sizeof(*per));
	if (!per) {
		close(fd);
		return sl_err(-ENOMEM, "out of memory");
	}
	if (bpf_map_lookup_elem(fd, &zero, per)) {
		err = sl_err(-errno, "cannot read the counters of '%s': %s", name,
			     strerror(errno));
		goto out;
	}
	for (int c = 0; c < ncpu; c++) {
		__u64 *dst = (__u64 *)st, *src = (__u64 *)&per[c];

		for (size_t i = 0; i < sizeof(*st) / sizeof(__u64); i++)
			dst[i] += src[i];
	}
	if (entries) {
		*entries = 0;
		err = ct_foreach(ctx, name, count_cb, entries);
	}
out:
	free(per);
	close(fd);
	return err;
}

const char *ct_proto_name(__u8 proto, char *buf, size_t len)
{
	struct protoent *pe;

	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	case IPPROTO_ICMPV6:
		return "icmpv6";
	}
	pe = getprotobynumber(proto);
	snprintf(buf, len, "%s", pe ? pe->p_name : "unknown");
	return buf;
}

const char *ct_tcp_state_name(unsigned int state)
{
	static const char *const names[] = {
		"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
		"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
	};

	return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}

static void addr_text(const struct ct_key *k, int i, char *buf, size_t len)
{
	if (!inet_ntop(k->family == 6 ? AF_INET6 : AF_INET, k->addr[i & 1], buf, len))
		snprintf(buf, len, "?");
}

void ct_conn_addr(const struct ct_conn *c, int i, char *buf, size_t len)
{
	addr_text(&c->key, i ? !c->orig : c->orig, buf, len);
}

static bool is_icmp(const struct ct_key *k)
{
	return k->proto == IPPROTO_ICMP || k->proto == IPPROTO_ICMPV6;
}

/* The reply type of an ICMP request type (the entry keeps the request's). */
static unsigned int icmp_reply_type(const struct ct_key *k)
{
	unsigned int req = k->port[1] & 0xff;

	if (k->proto == IPPROTO_ICMPV6)
		return req + 1;
	return req == 8 ? 0 : req + 1;
}

/* One direction: "src=A dst=B sport=P dport=Q packets=N bytes=M". */
static int tuple_format(const struct ct_conn *c, int dir, char *buf, size_t len)
{
	int from = dir ? !c->orig : c->orig;
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
	const struct ct_key *k = &c->key;
	int n;

	addr_text(k, from, src, sizeof(src));
	addr_text(k, !from, dst, sizeof(dst));
	n = snprintf(buf, len, "src=%s dst=%s", src, dst);
	if (is_icmp(k))
		n += snprintf(buf + n, len > (size_t)n ? len - n : 0, " type=%u code=%u id=%u",
			      dir ? icmp_reply_type(k) : k->port[1] & 0xff,
			      k->port[1] >> 8, k->port[0]);
	else if (k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP)
		n += snprintf(buf + n, len > (size_t)n ? len - n : 0, " sport=%u dport=%u",
			      k->port[from], k->port[!from]);
	n += snprintf(buf + n, len > (size_t)n ? len - n : 0, " packets=%llu bytes=%llu",
		      (unsigned long long)c->e.packets[dir],
		      (unsigned long long)c->e.bytes[dir]);
	return n;
}

int ct_conn_format(const struct ct_conn *c, char *buf, size_t len)
{
	char pbuf[32], t0[160], t1[160];
	const char *proto = ct_proto_name(c->key.proto, pbuf, sizeof(pbuf));
	bool replied = c->e.state & CT_ST_SEEN_REPLY;
	int n;

	tuple_format(c, 0, t0, sizeof(t0));
	tuple_format(c, 1, t1, sizeof(t1));
	n = snprintf(buf, len, "%-8s %u %llu ", proto, c->key.proto,
		     (unsigned long long)((c->remaining_ns + NSEC - 1) / NSEC));
	if (c->key.proto == IPPROTO_TCP)
		n += snprintf(buf + n, len > (size_t)n ? len - n : 0, "%s ",
			      ct_tcp_state_name(c->e.state & CT_ST_TCP_MASK));
	n += snprintf(buf + n, len > (size_t)n ? len - n : 0, "%s %s%s%s", t0,
		      replied ? "" : "[UNREPLIED] ", t1,
		      c->e.state & CT_ST_ASSURED ? " [ASSURED]" : "");
	return n;
}
