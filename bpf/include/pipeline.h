/* SPDX-License-Identifier: GPL-2.0 */
/* The pipeline seen from BPF: shared maps (pinned by name, so every object
 * loaded in one network namespace uses the same ones), per-packet metadata,
 * and how an NF ends: next, pass, redirect or drop with a reason. */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "sluice_abi.h"

#define SL_TCX_NEXT (-1) /* TC_ACT_UNSPEC: let later tc programs run */
#define SL_TC_ACT_SHOT 2

/* Programs of the NF instances, by slot; one array per program type because
 * a tail call never crosses program types. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_progs_xdp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SL_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_progs_tc SEC(".maps");

/* One entry per hook: XDP and TC never nest on one CPU for our programs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct sl_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct sl_nf_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_nf_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_MAX_SLOTS * SL_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_drops SEC(".maps");

/* Events to user space (bpf/include/events.h): the ring, its
 * configuration and per-CPU counters. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SL_EVENTS_RING_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_evcfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_evcfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_evstats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_evstats SEC(".maps");

/* Capture and path tracing (bpf/include/events.h): the ring of the one
 * observation session, its configuration, per-CPU state (token bucket,
 * counters), a per-CPU scratch frame per hook, and the path policies. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SL_OBS_RING_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_obs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_obscfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_obscfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_obsstate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_obsstate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_PATHPOL_MAX);
	__type(key, __u32);
	__type(value, struct sl_pathpol);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_pathpol SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_polcfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_polcfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sl_obsstate);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_polstate SEC(".maps");

/* A capture record is built here, then copied to the ring at its length. */
struct sl_capbuf {
	__u8 bytes[sizeof(struct sl_cap_rec) + SL_CAPTURE_SNAPLEN_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct sl_capbuf);
} sl_capbuf SEC(".maps");

static __always_inline struct sl_meta *sl_meta_get(__u32 hook)
{
	return bpf_map_lookup_elem(&sl_meta, &hook);
}

/* Counts one packet through the instance in slot; returns its stats. */
static __always_inline struct sl_nf_stats *sl_count(__u32 slot, __u32 len)
{
	struct sl_nf_stats *st = bpf_map_lookup_elem(&sl_nf_stats, &slot);

	if (st) {
		st->packets++;
		st->bytes += len;
	}
	return st;
}

static __always_inline void sl_count_drop(struct sl_nf_stats *st, __u32 slot,
					  int verdict)
{
	__u32 reason = -verdict;
	__u32 idx;
	__u64 *cnt;

	if (reason >= SL_DROP_MAX)
		reason = SL_DROP_UNKNOWN;
	idx = SL_DROP_INDEX(slot, reason);
	cnt = bpf_map_lookup_elem(&sl_drops, &idx);
	if (cnt)
		*cnt += 1;
	if (st)
		st->dropped++;
}

/* Drop events. With sampling off (the default) a drop costs one array
 * lookup (inlined by the verifier) and one branch more; passed packets
 * nothing. With sampling N, one drop in N per CPU is reserved in the ring,
 * filled from meta and the packet's first bytes, and submitted; a full ring
 * counts the event as lost and never waits. */
static __always_inline bool sl_event_drop_sampled(const struct sl_evcfg *cfg)
{
	__u32 zero = 0, every = cfg->drop_sample;
	struct sl_evstats *es;

	es = bpf_map_lookup_elem(&sl_evstats, &zero);
	if (!es)
		return false;
	if (++es->drop_tick < every)
		return false;
	es->drop_tick = 0;
	return true;
}

/* Reserves an event of type and fills all but the packet bytes. */
static __always_inline struct sl_event *
sl_event_begin(struct sl_meta *m, __u32 type, __u32 slot, __u32 reason)
{
	__u32 zero = 0;
	struct sl_evstats *es;
	struct sl_event *e;

	e = bpf_ringbuf_reserve(&sl_events, sizeof(*e), 0);
	es = bpf_map_lookup_elem(&sl_evstats, &zero);
	if (!e) {
		if (es)
			es->lost++;
		return NULL;
	}
	if (es)
		es->emitted++;
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->size = sizeof(*e);
	e->ifindex = m->ifindex;
	e->slot = slot;
	e->pkt_len = m->pkt_len;
	e->hook = m->hook;
	e->reason = reason < SL_DROP_MAX ? reason : SL_DROP_UNKNOWN;
	e->family = m->flags & SL_F_IPV4 ? 4 : m->flags & SL_F_IPV6 ? 6 : 0;
	e->ip_proto = m->ip_proto;
	e->sport = m->sport;
	e->dport = m->dport;
	e->tcp_flags = m->tcp_flags;
	e->icmp_type = m->icmp_type;
	e->icmp_code = m->icmp_code;
	e->version = SL_EVENT_VERSION;
	e->cap_len = 0;
	e->pad = 0;
	e->trace_id = m->trace_id;
	e->policy = 0;
	__builtin_memcpy(e->saddr, m->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, m->daddr, sizeof(e->daddr));
	return e;
}

static __always_inline struct sl_event *
sl_event_drop_begin(struct sl_meta *m, __u32 slot, int verdict)
{
	return sl_event_begin(m, SL_EVENT_DROP, slot, -verdict);
}

/* Bytes to copy, 1..SL_EVENT_SNAPLEN (len > 0), in a form whose bounds the
 * verifier sees (SL_EVENT_SNAPLEN is a power of two). */
static __always_inline __u32 sl_event_caplen(__u32 len)
{
	__u32 cap = len < SL_EVENT_SNAPLEN ? len : SL_EVENT_SNAPLEN;

	return ((cap - 1) & (SL_EVENT_SNAPLEN - 1)) + 1;
}

static __noinline int sl_event_drop_xdp(struct xdp_md *ctx, struct sl_meta *m,
					__u32 slot, int verdict,
					const struct sl_evcfg *cfg)
{
	struct sl_event *e;
	__u32 cap;

	if (!sl_event_drop_sampled(cfg))
		return 0;
	e = sl_event_drop_begin(m, slot, verdict);
	if (!e)
		return 0;
	cap = sl_event_caplen(m->pkt_len);
	if (m->pkt_len && !bpf_xdp_load_bytes(ctx, 0, e->data, cap))
		e->cap_len = cap;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __noinline int sl_event_drop_tc(struct __sk_buff *skb,
				       struct sl_meta *m, __u32 slot,
				       int verdict, const struct sl_evcfg *cfg)
{
	struct sl_event *e;
	__u32 cap;

	if (!sl_event_drop_sampled(cfg))
		return 0;
	e = sl_event_drop_begin(m, slot, verdict);
	if (!e)
		return 0;
	cap = sl_event_caplen(skb->len);
	if (skb->len && !bpf_skb_load_bytes(skb, 0, e->data, cap))
		e->cap_len = cap;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ---- Capture and path tracing ---------------------------------------- */

static __always_inline struct sl_obsstate *sl_obsstate_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&sl_obsstate, &zero);
}

static __always_inline bool sl_addr_in(const __u32 *a, const __u32 *net,
				       const __u32 *mask, __u8 family)
{
	if (family == 4)
		return (a[0] & mask[0]) == net[0];
	return (a[0] & mask[0]) == net[0] && (a[1] & mask[1]) == net[1] &&
	       (a[2] & mask[2]) == net[2] && (a[3] & mask[3]) == net[3];
}

static __always_inline __u8 sl_meta_family(const struct sl_meta *m)
{
	return m->flags & SL_F_IPV4 ? 4 : m->flags & SL_F_IPV6 ? 6 : 0;
}

static __always_inline bool sl_term_match(const struct sl_filter_term *t,
					  const struct sl_meta *m)
{
	__u8 fam = sl_meta_family(m);

	switch (t->kind) {
	case SL_FK_ADDR:
		if (t->family != fam)
			return false;
		if (t->dir != SL_FD_DST &&
		    sl_addr_in(m->saddr, t->addr, t->mask, fam))
			return true;
		return t->dir != SL_FD_SRC &&
		       sl_addr_in(m->daddr, t->addr, t->mask, fam);
	case SL_FK_PORT:
		if (m->ip_proto != 6 && m->ip_proto != 17)
			return false;
		if (!(m->flags & SL_F_L4))
			return false;
		if (t->dir != SL_FD_DST && m->sport == t->port)
			return true;
		return t->dir != SL_FD_SRC && m->dport == t->port;
	case SL_FK_PROTO:
		return fam && m->ip_proto == t->proto &&
		       (!t->family || t->family == fam);
	}
	return false;
}

struct sl_filter_walk {
	const struct sl_filter *f;
	const struct sl_meta *m;
	bool group; /* the terms of the current and-group so far */
	bool match;
};

static long sl_filter_step(__u32 i, void *arg)
{
	struct sl_filter_walk *w = arg;
	const struct sl_filter_term *t;

	if (i >= SL_FILTER_TERMS)
		return 1;
	t = &w->f->terms[i];
	if (t->or_before) {
		if (w->group) {
			w->match = true;
			return 1;
		}
		w->group = true;
	}
	if (w->group && !sl_term_match(t, w->m))
		w->group = false;
	return 0;
}

/* Whether meta matches the filter: any and-group whose terms all match. */
static __always_inline bool sl_filter_match(const struct sl_filter *f,
					    const struct sl_meta *m)
{
	struct sl_filter_walk w = { .f = f, .m = m, .group = true };
	__u32 n = f->nterms;

	bpf_loop(n < SL_FILTER_TERMS ? n : SL_FILTER_TERMS, sl_filter_step, &w,
		 0);
	return w.match || w.group;
}

/* Sampling (one in sample) and the per-CPU token bucket: whether this
 * matching packet is taken. Never waits: an excess packet is counted. */
static __always_inline bool sl_bucket_admit(__u32 sample, __u64 cost_ns,
					    __u64 burst_ns,
					    struct sl_obsstate *st)
{
	__u64 now, credit;

	st->matched++;
	if (sample > 1) {
		if (++st->sample_tick < sample)
			return false;
		st->sample_tick = 0;
	}
	now = bpf_ktime_get_ns();
	credit = st->credit_ns + (now - st->last_ns);
	st->last_ns = now;
	if (credit > burst_ns)
		credit = burst_ns;
	if (credit < cost_ns) {
		st->credit_ns = credit;
		st->limited++;
		return false;
	}
	st->credit_ns = credit - cost_ns;
	return true;
}

static __always_inline bool sl_obs_admit(const struct sl_obscfg *cfg,
					 struct sl_obsstate *st)
{
	return sl_bucket_admit(cfg->sample, cfg->cost_ns, cfg->burst_ns, st);
}

/* A trace id: the CPU in bits 24-30, a per-CPU counter below; bit 31 set
 * for packets sampled by policy watching rather than a trace session. */
static __always_inline __u32 sl_trace_id(struct sl_obsstate *st, __u32 high)
{
	return high | ((bpf_get_smp_processor_id() & 0x7f) << 24) |
	       (st->next_trace++ & 0xffffff);
}

/* Whether the packet in meta is one the session wants: interface, filter,
 * sampling and rate. */
static __always_inline bool sl_obs_wanted(const struct sl_obscfg *cfg,
					  struct sl_obsstate *st,
					  const struct sl_meta *m)
{
	if (cfg->ifindex && cfg->ifindex != m->ifindex)
		return false;
	if (!sl_filter_match(&cfg->filter, m))
		return false;
	return sl_obs_admit(cfg, st);
}

/* Root: marks a packet for --all capture or tracing when the session asks
 * for it. */
static __always_inline void sl_observe_session(struct sl_meta *m, __u32 obs)
{
	__u32 zero = 0;
	struct sl_obscfg *cfg = bpf_map_lookup_elem(&sl_obscfg, &zero);
	struct sl_obsstate *st = sl_obsstate_get();

	if (!cfg || !st || !sl_obs_wanted(cfg, st, m))
		return;
	if (obs & SL_OBS_CAPTURE_ALL)
		m->trace |= SL_MT_CAPTURE;
	if (obs & SL_OBS_TRACE) {
		m->trace |= SL_MT_TRACE;
		m->trace_id = sl_trace_id(st, 0);
		m->t_start = bpf_ktime_get_ns();
	}
}

/* Root: picks a packet for path-policy watching (sampled, rate-limited). */
static __always_inline void sl_observe_policy(struct sl_meta *m)
{
	__u32 zero = 0;
	struct sl_polcfg *cfg = bpf_map_lookup_elem(&sl_polcfg, &zero);
	struct sl_obsstate *st = bpf_map_lookup_elem(&sl_polstate, &zero);

	if (!cfg || !st ||
	    !sl_bucket_admit(cfg->sample, cfg->cost_ns, cfg->burst_ns, st))
		return;
	m->trace |= SL_MT_POLICY;
	m->trace_id = sl_trace_id(st, 1U << 31);
}

/* Out of line, as every path taken only while observing: the hot path of
 * each program stays short (fewer instruction cache lines per packet). */
static __noinline int sl_observe_mark(struct sl_meta *m, __u32 obs)
{
	if (obs & (SL_OBS_CAPTURE_ALL | SL_OBS_TRACE))
		sl_observe_session(m, obs);
	/* A traced packet has its policies checked already. */
	if ((obs & SL_OBS_POLICY_WATCH) && !(m->trace & SL_MT_TRACE))
		sl_observe_policy(m);
	return 0;
}

/* Root, every packet: one lookup (inlined) and one branch when off. */
static __always_inline void sl_observe_root(struct sl_meta *m)
{
	__u32 zero = 0;
	struct sl_evcfg *ev = bpf_map_lookup_elem(&sl_evcfg, &zero);

	if (ev && (ev->obs & (SL_OBS_CAPTURE_ALL | SL_OBS_TRACE |
			      SL_OBS_POLICY_WATCH)))
		sl_observe_mark(m, ev->obs);
}

/* Copies len > 0 frame bytes, already in buf, as one capture record. */
static __always_inline void sl_capture_emit(struct sl_meta *m, __u32 slot,
					    int verdict, __u8 *buf, __u32 cap)
{
	struct sl_cap_rec *r = (struct sl_cap_rec *)buf;
	struct sl_obsstate *st = sl_obsstate_get();

	r->ts_ns = bpf_ktime_get_ns();
	r->type = SL_OBS_CAPTURE;
	r->cap_len = cap;
	r->ifindex = m->ifindex;
	r->slot = slot;
	r->verdict = verdict;
	r->hook = m->hook;
	r->pad[0] = r->pad[1] = r->pad[2] = 0;
	if (!st)
		return;
	if (bpf_ringbuf_output(&sl_obs, buf, sizeof(*r) + cap, 0))
		st->lost++;
	else
		st->emitted++;
}

/* Bytes to copy, 1..SL_CAPTURE_SNAPLEN_MAX, bounds visible to the verifier. */
static __always_inline __u32 sl_capture_len(__u32 len, __u32 snaplen)
{
	__u32 cap = len < snaplen ? len : snaplen;

	return ((cap - 1) & (SL_CAPTURE_SNAPLEN_MAX - 1)) + 1;
}

static __always_inline __u8 *sl_capture_buf(struct sl_meta *m, __u32 *snaplen)
{
	__u32 zero = 0, hook = m->hook;
	struct sl_obscfg *cfg = bpf_map_lookup_elem(&sl_obscfg, &zero);

	if (!cfg)
		return NULL;
	*snaplen = cfg->snaplen;
	return bpf_map_lookup_elem(&sl_capbuf, &hook);
}

static __noinline int sl_capture_xdp(struct xdp_md *ctx, struct sl_meta *m,
				     __u32 slot, int verdict)
{
	__u32 snaplen, len = ctx->data_end - ctx->data, cap;
	__u8 *buf = sl_capture_buf(m, &snaplen);

	if (!buf || !len || !snaplen)
		return 0;
	cap = sl_capture_len(len, snaplen);
	if (bpf_xdp_load_bytes(ctx, 0, buf + sizeof(struct sl_cap_rec), cap))
		return 0;
	((struct sl_cap_rec *)buf)->pkt_len = len;
	sl_capture_emit(m, slot, verdict, buf, cap);
	return 0;
}

static __noinline int sl_capture_tc(struct __sk_buff *skb, struct sl_meta *m,
				    __u32 slot, int verdict)
{
	__u32 snaplen, len = skb->len, cap;
	__u8 *buf = sl_capture_buf(m, &snaplen);

	if (!buf || !len || !snaplen)
		return 0;
	cap = sl_capture_len(len, snaplen);
	if (bpf_skb_load_bytes(skb, 0, buf + sizeof(struct sl_cap_rec), cap))
		return 0;
	((struct sl_cap_rec *)buf)->pkt_len = len;
	sl_capture_emit(m, slot, verdict, buf, cap);
	return 0;
}

/* A drop while a --drops capture runs: filter, sample, rate, copy. */
static __noinline bool sl_capture_drop_wanted(struct sl_meta *m)
{
	__u32 zero = 0;
	struct sl_obscfg *cfg = bpf_map_lookup_elem(&sl_obscfg, &zero);
	struct sl_obsstate *st = sl_obsstate_get();

	return cfg && st && sl_obs_wanted(cfg, st, m);
}

/* Whether the packet leaves the chain with this verdict. */
static __always_inline bool sl_chain_ends(const struct sl_meta *m,
					  int verdict)
{
	return verdict != SL_NEXT || m->chain_pos >= m->chain_len;
}

struct sl_path_walk {
	const struct sl_meta *m;
	__u32 violated; /* 1 + policy index */
	__u32 via_slot;
};

static __always_inline bool sl_path_passed(const struct sl_meta *m,
					   __u32 slot)
{
	/* The NFs run so far are slots[0 .. chain_pos - 1]. */
	for (int i = 0; i < SL_CHAIN_MAX; i++) {
		if (i >= m->chain_pos)
			break;
		if (m->slots[i] == slot)
			return true;
	}
	return false;
}

static long sl_path_step(__u32 i, void *arg)
{
	struct sl_path_walk *w = arg;
	const struct sl_meta *m = w->m;
	struct sl_pathpol *p = bpf_map_lookup_elem(&sl_pathpol, &i);

	if (!p || !p->used || p->family != sl_meta_family(m))
		return 0;
	if (!sl_addr_in(m->saddr, p->src, p->src_mask, p->family) ||
	    !sl_addr_in(m->daddr, p->dst, p->dst_mask, p->family))
		return 0;
	if (sl_path_passed(m, p->via_slot))
		return 0;
	w->violated = i + 1;
	w->via_slot = p->via_slot;
	return 1;
}

/* A traced packet leaving the chain alive: the first path policy it does
 * not follow (1 + index; 0: none), reported as an SL_EVENT_PATH event. */
static __noinline __u32 sl_path_check(struct sl_meta *m)
{
	struct sl_path_walk w = { .m = m };
	struct sl_obsstate *st;
	struct sl_event *e;
	__u32 zero = 0;

	bpf_loop(SL_PATHPOL_MAX, sl_path_step, &w, 0);
	if (!w.violated)
		return 0;
	if (m->trace & SL_MT_TRACE)
		st = sl_obsstate_get();
	else
		st = bpf_map_lookup_elem(&sl_polstate, &zero);
	if (st)
		st->violations++;
	e = sl_event_begin(m, SL_EVENT_PATH, w.via_slot, 0);
	if (e) {
		e->policy = w.violated - 1;
		bpf_ringbuf_submit(e, 0);
	}
	return w.violated;
}

/* One hop of a traced packet. */
static __noinline int sl_trace_hop(struct sl_meta *m, __u32 slot, int verdict,
				   __u64 now, __u32 violated)
{
	struct sl_obsstate *st = sl_obsstate_get();
	bool end = sl_chain_ends(m, verdict);
	struct sl_hop_rec *h;

	h = bpf_ringbuf_reserve(&sl_obs, sizeof(*h), 0);
	if (!h) {
		if (st)
			st->lost++;
		return 0;
	}
	if (st)
		st->emitted++;
	h->ts_ns = now;
	h->type = SL_OBS_HOP;
	h->hook = m->hook;
	h->end = end;
	h->trace_id = m->trace_id;
	h->slot = slot;
	h->verdict = verdict;
	h->ifindex = m->ifindex;
	h->pkt_len = m->pkt_len;
	h->family = sl_meta_family(m);
	h->ip_proto = m->ip_proto;
	h->pos = m->chain_pos;
	h->pad = 0;
	h->sport = m->sport;
	h->dport = m->dport;
	__builtin_memcpy(h->saddr, m->saddr, sizeof(h->saddr));
	__builtin_memcpy(h->daddr, m->daddr, sizeof(h->daddr));
	h->violated = violated;
	h->pad2 = 0;
	/* Wake the reader once per packet, at its last hop: forced, as the
	 * earlier hops left the reader behind (no adaptive wakeup then). */
	bpf_ringbuf_submit(h, end ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

/* sl_finish of a packet the root marked (meta->trace non-zero). Each piece
 * is out of line, called from here: the hot path of every program stays
 * short, and no piece nests in another, as the stack of an NF's frame and
 * of the deepest call below it must fit in 512 bytes together. */
static __always_inline __u32 sl_observe_path(struct sl_meta *m, int verdict,
					     bool end)
{
	if ((m->trace & (SL_MT_TRACE | SL_MT_POLICY)) && end && verdict >= 0)
		return sl_path_check(m);
	return 0;
}

static __always_inline void sl_observe_xdp(struct xdp_md *ctx,
					   struct sl_meta *m, __u32 slot,
					   int verdict)
{
	__u64 now = bpf_ktime_get_ns(); /* first: the NF's time ends here */
	bool end = sl_chain_ends(m, verdict);
	__u32 violated = sl_observe_path(m, verdict, end);

	if (m->trace & SL_MT_TRACE)
		sl_trace_hop(m, slot, verdict, now, violated);
	if ((m->trace & SL_MT_CAPTURE) && end)
		sl_capture_xdp(ctx, m, slot, verdict);
}

static __always_inline void sl_observe_tc(struct __sk_buff *skb,
					  struct sl_meta *m, __u32 slot,
					  int verdict)
{
	__u64 now = bpf_ktime_get_ns();
	bool end = sl_chain_ends(m, verdict);
	__u32 violated = sl_observe_path(m, verdict, end);

	if (m->trace & SL_MT_TRACE)
		sl_trace_hop(m, slot, verdict, now, violated);
	if ((m->trace & SL_MT_CAPTURE) && end)
		sl_capture_tc(skb, m, slot, verdict);
}

/* A drop: sampled drop events, and the packet for a --drops capture. With
 * both off, one array lookup (inlined) and one branch. */
static __always_inline void sl_on_drop_xdp(struct xdp_md *ctx,
					   struct sl_meta *m, __u32 slot,
					   int verdict)
{
	__u32 zero = 0;
	struct sl_evcfg *cfg = bpf_map_lookup_elem(&sl_evcfg, &zero);

	if (!cfg || !(cfg->drop_sample || (cfg->obs & SL_OBS_CAPTURE_DROPS)))
		return;
	if (cfg->drop_sample)
		sl_event_drop_xdp(ctx, m, slot, verdict, cfg);
	if ((cfg->obs & SL_OBS_CAPTURE_DROPS) && sl_capture_drop_wanted(m))
		sl_capture_xdp(ctx, m, slot, verdict);
}

static __always_inline void sl_on_drop_tc(struct __sk_buff *skb,
					  struct sl_meta *m, __u32 slot,
					  int verdict)
{
	__u32 zero = 0;
	struct sl_evcfg *cfg = bpf_map_lookup_elem(&sl_evcfg, &zero);

	if (!cfg || !(cfg->drop_sample || (cfg->obs & SL_OBS_CAPTURE_DROPS)))
		return;
	if (cfg->drop_sample)
		sl_event_drop_tc(skb, m, slot, verdict, cfg);
	if ((cfg->obs & SL_OBS_CAPTURE_DROPS) && sl_capture_drop_wanted(m))
		sl_capture_tc(skb, m, slot, verdict);
}

/* Runs the next NF of the chain; returns only when there is none (or its
 * slot is empty while a chain is being changed): the packet then leaves the
 * chain as if the last NF said pass. */
static __always_inline void sl_next_xdp(struct xdp_md *ctx, struct sl_meta *m)
{
	__u32 pos = m->chain_pos;

	if (pos < m->chain_len && pos < SL_CHAIN_MAX) {
		m->chain_pos = pos + 1;
		bpf_tail_call(ctx, &sl_progs_xdp, m->slots[pos]);
	}
}

static __always_inline void sl_next_tc(struct __sk_buff *skb,
				       struct sl_meta *m)
{
	__u32 pos = m->chain_pos;

	if (pos < m->chain_len && pos < SL_CHAIN_MAX) {
		m->chain_pos = pos + 1;
		bpf_tail_call(skb, &sl_progs_tc, m->slots[pos]);
	}
}

/* ct_new_slot: the TCP entry existed before this packet (only a tcp-reset
 * answer touches it: sl_ct_close_*). */
#define SL_CT_SLOT_SEEN 0x8000
/* ct_undo_act: close that existing entry instead of deleting one. */
#define SL_CT_UNDO_CLOSE 0x80

/* A dropped packet that created a conntrack entry takes the entry with
 * it, as the kernel confirms an entry only when its packet is accepted:
 * the conntrack instance runs once more to delete it, and ends the packet
 * with act. With close, a tcp-reset answer (the kernel's nf_send_reset ->
 * nf_ct_set_closing), an existing TCP entry moves to CLOSE instead.
 * Returns only when there is nothing to do. */
static __always_inline void sl_ct_end_xdp(struct xdp_md *ctx, struct sl_meta *m,
					  int act, bool close)
{
	__u32 slot = m->ct_new_slot;

	if (!slot || ((slot & SL_CT_SLOT_SEEN) && !close))
		return;
	m->ct_new_slot = 0;
	m->ct_undo_act = (act + 1) | (slot & SL_CT_SLOT_SEEN ? SL_CT_UNDO_CLOSE : 0);
	bpf_tail_call(ctx, &sl_progs_xdp, (slot & ~SL_CT_SLOT_SEEN) - 1);
	m->ct_undo_act = 0;
}

static __always_inline void sl_ct_end_tc(struct __sk_buff *skb,
					 struct sl_meta *m, int act, bool close)
{
	__u32 slot = m->ct_new_slot;

	if (!slot || ((slot & SL_CT_SLOT_SEEN) && !close))
		return;
	m->ct_new_slot = 0;
	m->ct_undo_act = (act + 1) | (slot & SL_CT_SLOT_SEEN ? SL_CT_UNDO_CLOSE : 0);
	bpf_tail_call(skb, &sl_progs_tc, (slot & ~SL_CT_SLOT_SEEN) - 1);
	m->ct_undo_act = 0;
}

static __always_inline void sl_ct_undo_xdp(struct xdp_md *ctx, struct sl_meta *m,
					   int act)
{
	sl_ct_end_xdp(ctx, m, act, false);
}

static __always_inline void sl_ct_undo_tc(struct __sk_buff *skb,
					  struct sl_meta *m, int act)
{
	sl_ct_end_tc(skb, m, act, false);
}

static __always_inline void sl_ct_close_xdp(struct xdp_md *ctx, struct sl_meta *m,
					    int act)
{
	sl_ct_end_xdp(ctx, m, act, true);
}

/* Counts the verdict of the instance in slot; returns its stats. */
static __always_inline struct sl_nf_stats *sl_account(struct sl_meta *m,
						      __u32 slot, int verdict)
{
	struct sl_nf_stats *st = sl_count(slot, m->pkt_len);

	if (verdict < 0)
		sl_count_drop(st, slot, verdict);
	else if (verdict == SL_REDIRECT && st)
		st->redirected++;
	return st;
}

/* Ends an XDP program (root or NF) in slot with the given verdict. */
static __always_inline int sl_finish_xdp(struct xdp_md *ctx, struct sl_meta *m,
					 __u32 slot, int verdict)
{
	struct sl_nf_stats *st = sl_account(m, slot, verdict);

	if (m->trace)
		sl_observe_xdp(ctx, m, slot, verdict);
	if (verdict < 0) {
		sl_on_drop_xdp(ctx, m, slot, verdict);
		sl_ct_undo_xdp(ctx, m, XDP_DROP);
		return XDP_DROP;
	}
	if (verdict == SL_REDIRECT)
		return bpf_redirect(m->redirect_ifindex, 0);
	if (verdict == SL_NEXT)
		sl_next_xdp(ctx, m);
	if (st)
		st->passed++; /* the chain ends here */
	return XDP_PASS;
}

static __always_inline int sl_finish_tc(struct __sk_buff *skb,
					struct sl_meta *m, __u32 slot,
					int verdict)
{
	struct sl_nf_stats *st = sl_account(m, slot, verdict);

	if (m->trace)
		sl_observe_tc(skb, m, slot, verdict);
	if (verdict < 0) {
		sl_on_drop_tc(skb, m, slot, verdict);
		sl_ct_undo_tc(skb, m, SL_TC_ACT_SHOT);
		return SL_TC_ACT_SHOT;
	}
	if (verdict == SL_REDIRECT)
		return bpf_redirect(m->redirect_ifindex, 0);
	if (verdict == SL_NEXT)
		sl_next_tc(skb, m);
	if (st)
		st->passed++;
	return SL_TCX_NEXT;
}

/* TC programs learn which meta entry is theirs from skb->cb[0], set by the
 * root program (TC ingress and egress share the program type). */
static __always_inline struct sl_meta *sl_meta_tc(struct __sk_buff *skb)
{
	return sl_meta_get(skb->cb[0]);
}

#endif
