// SPDX-License-Identifier: GPL-2.0
/* Flow monitor NF: counts every IP packet into its flow record (both
 * directions in one record), keeps first/last seen, the OR of TCP flags,
 * the SYN to SYN-ACK time and retransmitted TCP data segments. It never
 * changes a verdict: every packet goes on to the next NF.
 *
 * Per packet: one hash lookup (an insert for a flow's first packet), two
 * atomic adds, and for TCP a read of the sequence number. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "flowmon_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The slot of this instance, set by the loader. */
const volatile __u32 fm_slot = 0;

/* max_entries is set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FM_FLOWS_DEFAULT);
	__type(key, struct fm_key);
	__type(value, struct fm_flow);
} fm_flows SEC(".maps");

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
	__u64 now;
	__u32 end;

	if ((f->tcp_flags[dir] | flags) != f->tcp_flags[dir])
		f->tcp_flags[dir] |= flags; /* new bits are rare: no atomic needed */
	/* SYN (0x02) without ACK (0x10) opens; SYN-ACK back closes the RTT,
	 * both on the fine clock (read only for SYNs). */
	if ((flags & 0x12) == 0x02 && !f->syn_ns) {
		now = bpf_ktime_get_ns();
		f->syn_ns = now;
		f->syn_dir = dir;
		f->init_dir = dir;
	} else if ((flags & 0x12) == 0x12 && f->syn_ns && !f->rtt_ns &&
		   dir != f->syn_dir) {
		now = bpf_ktime_get_ns();
		f->rtt_ns = now - f->syn_ns;
		fm_rtt_count(f->rtt_ns);
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
	struct fm_stats *st;
	struct fm_key k;
	struct fm_flow *f;
	__u64 now;
	int dir;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6))) {
		st = fm_stats_get();
		if (st)
			st->skipped++;
		return SL_NEXT;
	}
	dir = fm_key_of(m, &k);
	/* First/last seen need no more than the tick: the coarse clock (same
	 * CLOCK_MONOTONIC base) costs a fraction of the fine one. */
	now = bpf_ktime_get_coarse_ns();
	f = bpf_map_lookup_elem(&fm_flows, &k);
	if (!f) {
		struct fm_flow init = { .first_ns = now, .init_dir = dir };

		/* Another CPU may insert it first: then update theirs. */
		bool mine = !bpf_map_update_elem(&fm_flows, &k, &init, BPF_NOEXIST);

		f = bpf_map_lookup_elem(&fm_flows, &k);
		st = fm_stats_get();
		if (st && mine)
			st->created++;
		if (!f) {
			if (st)
				st->insert_failed++;
			return SL_NEXT;
		}
	}
	__sync_fetch_and_add(&f->packets[dir & 1], 1);
	__sync_fetch_and_add(&f->bytes[dir & 1], m->pkt_len);
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
