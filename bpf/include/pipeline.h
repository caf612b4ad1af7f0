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
static __always_inline bool sl_event_drop_sampled(void)
{
	__u32 zero = 0;
	struct sl_evcfg *cfg = bpf_map_lookup_elem(&sl_evcfg, &zero);
	struct sl_evstats *es;
	__u32 every;

	if (!cfg || !cfg->drop_sample)
		return false;
	every = cfg->drop_sample;
	es = bpf_map_lookup_elem(&sl_evstats, &zero);
	if (!es)
		return false;
	if (++es->drop_tick < every)
		return false;
	es->drop_tick = 0;
	return true;
}

/* Reserves a drop event and fills all but the packet bytes. */
static __always_inline struct sl_event *
sl_event_drop_begin(struct sl_meta *m, __u32 slot, int verdict)
{
	__u32 zero = 0, reason = -verdict;
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
	e->type = SL_EVENT_DROP;
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
	__builtin_memcpy(e->saddr, m->saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, m->daddr, sizeof(e->daddr));
	return e;
}

/* Bytes to copy, 1..SL_EVENT_SNAPLEN (len > 0), in a form whose bounds the
 * verifier sees (SL_EVENT_SNAPLEN is a power of two). */
static __always_inline __u32 sl_event_caplen(__u32 len)
{
	__u32 cap = len < SL_EVENT_SNAPLEN ? len : SL_EVENT_SNAPLEN;

	return ((cap - 1) & (SL_EVENT_SNAPLEN - 1)) + 1;
}

static __always_inline void sl_event_drop_xdp(struct xdp_md *ctx,
					      struct sl_meta *m, __u32 slot,
					      int verdict)
{
	struct sl_event *e;
	__u32 cap;

	if (!sl_event_drop_sampled())
		return;
	e = sl_event_drop_begin(m, slot, verdict);
	if (!e)
		return;
	cap = sl_event_caplen(m->pkt_len);
	if (m->pkt_len && !bpf_xdp_load_bytes(ctx, 0, e->data, cap))
		e->cap_len = cap;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void sl_event_drop_tc(struct __sk_buff *skb,
					     struct sl_meta *m, __u32 slot,
					     int verdict)
{
	struct sl_event *e;
	__u32 cap;

	if (!sl_event_drop_sampled())
		return;
	e = sl_event_drop_begin(m, slot, verdict);
	if (!e)
		return;
	cap = sl_event_caplen(skb->len);
	if (skb->len && !bpf_skb_load_bytes(skb, 0, e->data, cap))
		e->cap_len = cap;
	bpf_ringbuf_submit(e, 0);
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

	if (verdict < 0) {
		sl_event_drop_xdp(ctx, m, slot, verdict);
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

	if (verdict < 0) {
		sl_event_drop_tc(skb, m, slot, verdict);
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
