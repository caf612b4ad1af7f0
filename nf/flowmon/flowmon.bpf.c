// SPDX-License-Identifier: GPL-2.0
/* Flow monitor NF: counts every IP packet into its flow record (both
 * directions in one record), keeps first/last seen, the OR of TCP flags,
 * the SYN to SYN-ACK time and retransmitted TCP data segments. It never
 * changes a verdict: every packet goes on to the next NF.
 *
 * Per packet: a hash of the key (inline), one index line, the flow's
 * entry, two atomic adds, and for TCP a read of the sequence number. No
 * helper but the coarse clock. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "flowmon_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The slot of this instance, set by the loader. */
const volatile __u32 fm_slot = 0;
/* Index sets (max_flows / FM_WAYS) and pool entries (max_flows), set by
 * the loader. */
const volatile __u32 fm_sets = FM_FLOWS_DEFAULT / FM_WAYS;
const volatile __u32 fm_max = FM_FLOWS_DEFAULT;

/* max_entries of both are set by the loader. Mmapable: their values are
 * then page-aligned (sets on a cache line, entries on a line pair), and
 * user space reads them in place. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FM_FLOWS_DEFAULT / FM_WAYS);
	__type(key, __u32);
	__type(value, struct fm_set);
} fm_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, FM_FLOWS_DEFAULT);
	__type(key, __u32);
	__type(value, struct fm_entry);
} fm_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fm_alloc);
} fm_alloc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fm_stats);
} fm_stats SEC(".maps");

/* This CPU's counters; looked up only when one moves (rare events). */
static __always_inline struct fm_stats *fm_stats_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&fm_stats, &zero);
}

/* Counts a handshake time in its bucket (once per TCP flow). */
static __always_inline void fm_rtt_count(__u64 rtt_ns)
{
	static const __u32 bounds_us[FM_RTT_BUCKETS - 1] = FM_RTT_BOUNDS_US;
	struct fm_stats *st = fm_stats_get();
	__u64 us = rtt_ns / 1000;
	int b = FM_RTT_BUCKETS - 1;

	if (!st)
		return;
	for (int i = FM_RTT_BUCKETS - 2; i >= 0; i--)
		if (us <= bounds_us[i])
			b = i;
	if (b >= 0 && b < FM_RTT_BUCKETS)
		st->rtt_buckets[b]++;
	st->rtt_sum_ns += rtt_ns;
}

/* Whether end (a, pa) sorts before (b, pb): any total order does, it only
 * has to give both directions of a flow the same key. */
static __always_inline bool fm_end_before(const __u32 *a, __u16 pa,
					  const __u32 *b, __u16 pb)
{
	for (int i = 0; i < 4; i++)
		if (a[i] != b[i])
			return a[i] < b[i];
	return pa <= pb;
}

/* Fills the canonical key of the packet; returns its direction. */
static __always_inline int fm_key_of(const struct sl_meta *m, struct fm_key *k)
{
	bool ab = fm_end_before(m->saddr, m->sport, m->daddr, m->dport);

	k->family = m->flags & SL_F_IPV4 ? 4 : 6;
	k->proto = m->ip_proto;
	k->pad = 0;
	if (ab) {
		__builtin_memcpy(k->addr_a, m->saddr, 16);
		__builtin_memcpy(k->addr_b, m->daddr, 16);
		k->port_a = m->sport;
		k->port_b = m->dport;
		return FM_DIR_AB;
	}
	__builtin_memcpy(k->addr_a, m->daddr, 16);
	__builtin_memcpy(k->addr_b, m->saddr, 16);
	k->port_a = m->dport;
	k->port_b = m->sport;
	return FM_DIR_BA;
}

/* A hash of the canonical key (multiply and shift, no helper call). */
static __always_inline __u32 fm_hash(const struct fm_key *k)
{
	__u64 h = ((__u64)k->port_a << 32 | (__u64)k->port_b << 16 |
		   k->proto << 8 | k->family) * 0x9E3779B97F4A7C15ULL;
	int words = k->family == 4 ? 1 : 4;

	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		h ^= (__u64)k->addr_a[i] << 32 | k->addr_b[i];
		h *= 0xC2B2AE3D27D4EB4FULL;
		h ^= h >> 31;
	}
	h *= 0x9E3779B97F4A7C15ULL;
	return h >> 32;
}

static __always_inline struct fm_entry *fm_entry_at(__u32 idx)
{
	return bpf_map_lookup_elem(&fm_flows, &idx);
}

static __always_inline bool fm_key_eq(const struct fm_key *a,
				      const struct fm_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] &&
	       x[4] == y[4];
}

/* The flow's entry, or NULL. The words of a set are taken in order and
 * never freed, so the first free one ends the search. */
static __always_inline struct fm_entry *fm_find(struct fm_set *set,
						const struct fm_key *k,
						__u32 hash)
{
	__u32 tag = hash | 0x80000000u;

#pragma unroll
	for (int i = 0; i < FM_WAYS; i++) {
		__u64 w = set->slot[i];
		struct fm_entry *e;

		if (w == FM_SLOT_FREE)
			return NULL;
		if ((__u32)(w >> 32) != tag)
			continue;
		e = fm_entry_at(FM_SLOT_IDX(w));
		if (e && fm_key_eq(&e->key, k))
			return e;
	}
	return NULL;
}

/* The next entry of the pool, or -1 when it is given out. */
static __always_inline __s64 fm_pool_next(void)
{
	__u32 zero = 0;
	struct fm_alloc *a = bpf_map_lookup_elem(&fm_alloc, &zero);

	if (!a)
		return -1;
	for (int i = 0; i < 8; i++) {
		__u64 n = a->next;

		if (n >= fm_max)
			return -1;
		if (__sync_val_compare_and_swap(&a->next, n, n + 1) == n)
			return n;
	}
	return -1;
}

/* A new flow's word in the set: the first free one with the next pool
 * entry, else the word and entry of the flow least recently seen in the
 * set. Returns the word's index, with its entry in *idx; -1 when other
 * CPUs hold the candidates. */
static __always_inline int fm_claim(struct fm_set *set, __u32 *idx)
{
	__u64 oldest = ~0ULL, victim_w = 0;
	int victim = -1;

	for (int i = 0; i < FM_WAYS; i++) {
		__u64 w = set->slot[i];
		struct fm_entry *e;
		__s64 n;

		if (w == FM_SLOT_FREE) {
			if (__sync_val_compare_and_swap(&set->slot[i], FM_SLOT_FREE,
							FM_SLOT_BUSY) != FM_SLOT_FREE)
				continue;
			n = fm_pool_next();
			if (n < 0) /* cannot be: words and entries match */
				return -1; /* the word stays busy: never used */
			*idx = n;
			return i;
		}
		if (!FM_SLOT_USED(w))
			continue;
		e = fm_entry_at(FM_SLOT_IDX(w));
		if (e && e->flow.last_ns < oldest) {
			oldest = e->flow.last_ns;
			victim = i;
			victim_w = w;
		}
	}
	if (victim < 0 || victim >= FM_WAYS ||
	    __sync_val_compare_and_swap(&set->slot[victim], victim_w,
					FM_SLOT_BUSY) != victim_w)
		return -1;
	*idx = FM_SLOT_IDX(victim_w);
	return victim;
}

/* A new flow: the key and a fresh record in its entry, then the word that
 * makes it visible (the compare-and-swap orders it after the stores). */
static __noinline struct fm_entry *fm_insert(struct fm_set *set,
					     const struct fm_key *k,
					     __u32 hash, __u64 now, int dir)
{
	struct fm_stats *st = fm_stats_get();
	struct fm_entry *e = NULL;
	__u32 idx = 0;
	int way = fm_claim(set, &idx);

	if (way >= 0 && way < FM_WAYS) {
		e = fm_entry_at(idx);
		if (e) {
			__builtin_memcpy(&e->key, k, sizeof(*k));
			__builtin_memset(&e->flow, 0, sizeof(e->flow));
			e->flow.first_ns = now;
			e->flow.last_ns = now;
			e->flow.init_dir = dir;
		}
		__sync_val_compare_and_swap(&set->slot[way], FM_SLOT_BUSY,
					    e ? FM_SLOT(hash, idx) : FM_SLOT_FREE);
	}
	if (st) {
		if (e)
			st->created++;
		else
			st->insert_failed++;
	}
	return e;
}

/* TCP sequence number and payload bytes, from the packet. */
struct fm_tcp {
	__u32 seq;
	__u32 payload;
	bool ok;
};

/* Reads the TCP header at meta's offsets between data and data_end. */
static __always_inline struct fm_tcp fm_tcp_read(const struct sl_meta *m,
						 void *data, void *data_end)
{
	struct fm_tcp t = {};
	__u32 l3 = m->l3_off & 0x3ff, l4 = m->l4_off & 0x3ff, ip_end, hdr;
	struct tcphdr *th = data + l4;

	if ((void *)(th + 1) > data_end)
		return t;
	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > data_end)
			return t;
		ip_end = l3 + bpf_ntohs(ip->tot_len);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return t;
		ip_end = l3 + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	}
	hdr = th->doff * 4;
	t.seq = bpf_ntohl(th->seq);
	/* A length that does not add up (padding, lies): no payload known. */
	t.payload = ip_end > l4 + hdr ? ip_end - l4 - hdr : 0;
	t.ok = true;
	return t;
}

/* The TCP part of a packet's accounting in direction dir. */
static __always_inline void fm_tcp_update(struct fm_flow *f, int dir, __u8 flags,
					  const struct fm_tcp *t)
{
	__u64 rtt;
	__u32 end;

	if ((f->tcp_flags[dir] | flags) != f->tcp_flags[dir])
		f->tcp_flags[dir] |= flags; /* new bits are rare: no atomic needed */
	/* SYN (0x02) without ACK (0x10) opens; SYN-ACK back closes the RTT,
	 * both on the fine clock (read only for SYNs). */
	if ((flags & 0x12) == 0x02 && f->rtt_state == FM_RTT_NONE) {
		f->syn_rtt_ns = bpf_ktime_get_ns();
		f->syn_dir = dir;
		f->init_dir = dir;
		f->rtt_state = FM_RTT_SYN;
	} else if ((flags & 0x12) == 0x12 && f->rtt_state == FM_RTT_SYN &&
		   dir != f->syn_dir) {
		rtt = bpf_ktime_get_ns() - f->syn_rtt_ns;
		f->syn_rtt_ns = rtt;
		f->rtt_state = FM_RTT_DONE;
		fm_rtt_count(rtt);
	}
	if (!t->ok)
		return;
	end = t->seq + t->payload + !!(flags & 0x03); /* SYN, FIN take one */
	if (t->payload && f->seq_valid[dir] && (__s32)(t->seq - f->seq_end[dir]) < 0) {
		struct fm_stats *st = fm_stats_get();

		__sync_fetch_and_add(&f->retrans[dir], 1);
		if (st)
			st->retrans++;
	}
	if (!f->seq_valid[dir] || (__s32)(end - f->seq_end[dir]) > 0) {
		f->seq_end[dir] = end;
		f->seq_valid[dir] = 1;
	}
}

static __always_inline int flowmon_run(struct sl_meta *m, void *data,
				       void *data_end)
{
	struct fm_key k __attribute__((aligned(8)));
	struct fm_stats *st;
	struct fm_set *set;
	struct fm_entry *e;
	struct fm_flow *f;
	__u32 hash, idx;
	__u64 now;
	int dir;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6))) {
		st = fm_stats_get();
		if (st)
			st->skipped++;
		return SL_NEXT;
	}
	dir = fm_key_of(m, &k);
	hash = fm_hash(&k);
	idx = ((__u64)hash * fm_sets) >> 32;
	set = bpf_map_lookup_elem(&fm_index, &idx);
	if (!set)
		return SL_NEXT;
	/* First/last seen need no more than the tick: the coarse clock (same
	 * CLOCK_MONOTONIC base) costs a fraction of the fine one. */
	now = bpf_ktime_get_coarse_ns();
	e = fm_find(set, &k, hash);
	if (!e) {
		e = fm_insert(set, &k, hash, now, dir);
		if (!e)
			return SL_NEXT;
	}
	f = &e->flow;
	__sync_fetch_and_add(&f->count[dir & 1].packets, 1);
	__sync_fetch_and_add(&f->count[dir & 1].bytes, m->pkt_len);
	/* The coarse clock moves once a tick: most packets find it written. */
	if (f->last_ns != now)
		f->last_ns = now;
	if (m->ip_proto == 6 && (m->flags & SL_F_L4)) {
		struct fm_tcp t = fm_tcp_read(m, data, data_end);

		fm_tcp_update(f, dir & 1, m->tcp_flags, &t);
	}
	return SL_NEXT;
}

SEC("xdp")
int flowmon_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);

	if (!m)
		return XDP_PASS;
	return sl_finish_xdp(ctx, m, fm_slot,
			     flowmon_run(m, (void *)(long)ctx->data,
					 (void *)(long)ctx->data_end));
}

SEC("tc")
int flowmon_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);

	if (!m)
		return SL_TCX_NEXT;
	return sl_finish_tc(skb, m, fm_slot,
			    flowmon_run(m, (void *)(long)skb->data,
					(void *)(long)skb->data_end));
}
