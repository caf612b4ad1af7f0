// SPDX-License-Identifier: GPL-2.0
/* Router NF: the forwarding fast path. For a packet routed through this
 * host it asks the kernel's FIB and neighbour table (bpf_fib_lookup), lowers
 * the TTL or hop limit, rewrites the MAC addresses and sends the frame out
 * of the egress interface itself (redirect): the kernel's receive path,
 * routing and transmit path are skipped. Whatever it cannot finish the
 * kernel's way (local delivery, unresolved neighbours, TTL expiry, MTU,
 * unreachable routes) goes on unchanged, and the kernel does what it always
 * does, including the ICMP answers. It goes last in a chain: NFs before it
 * (load balancer, NAT, conntrack, firewall) see and rewrite the packet first.
 *
 * A redirect into a veth delivers only when the peer has NAPI (an XDP
 * program or GRO on the peer), as for every XDP redirect. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "router_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define RT_AF_INET 2
#define RT_AF_INET6 10
#define RT_ETH_ALEN 6
#define RT_ETH_HLEN 14

/* The slot of this instance, set by the loader. */
const volatile __u32 rt_slot = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rt_stats);
} rt_stats SEC(".maps");

/* Why a packet was left to the kernel. A forwarded packet is not counted
 * here: it is the instance's redirected count (sl_nf_stats), which
 * sl_finish_xdp/tc keeps anyway, so the fast path pays one counter, not
 * two (rt_stats_read reports it as forwarded). */
static __always_inline void rt_count(int rc)
{
	__u32 zero = 0;
	struct rt_stats *st;

	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return;
	st = bpf_map_lookup_elem(&rt_stats, &zero);
	if (!st)
		return;
	switch (rc) {
	case BPF_FIB_LKUP_RET_NOT_FWDED:
	case BPF_FIB_LKUP_RET_FWD_DISABLED: st->local++; break;
	case BPF_FIB_LKUP_RET_NO_NEIGH: st->no_neigh++; break;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED: st->frag_needed++; break;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT: st->unroutable++; break;
	case -1: st->ttl_expired++; break;
	default: st->other++; break;
	}
}

/* RFC 1624 update of the IPv4 header checksum for a TTL lowered by one
 * (the TTL is the high byte of its 16-bit word). */
static __always_inline void rt_ip4_ttl_dec(struct iphdr *ip)
{
	__u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);

	ip->check = (__u16)(sum + (sum >> 16));
	ip->ttl--;
}

/* Fills the lookup for the packet at l3 (untagged Ethernet only); returns
 * 0, -1 when the TTL expires here, or 1 when it is not ours to route. */
static __always_inline int rt_prepare(struct sl_meta *m, void *data,
				      void *data_end,
				      struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	if (m->l3_off != RT_ETH_HLEN || (m->flags & SL_F_FRAG))
		return 1;
	fib->ifindex = m->ifindex;
	fib->l4_protocol = m->ip_proto;
	fib->sport = bpf_htons(m->sport);
	fib->dport = bpf_htons(m->dport);
	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = data + RT_ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return 1;
		if (ip->ttl <= 1)
			return -1;
		fib->family = RT_AF_INET;
		fib->tos = ip->tos;
		fib->tot_len = bpf_ntohs(ip->tot_len);
		fib->ipv4_src = ip->saddr;
		fib->ipv4_dst = ip->daddr;
		return 0;
	}
	if (m->flags & SL_F_IPV6) {
		struct ipv6hdr *ip6 = data + RT_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return 1;
		if (ip6->hop_limit <= 1)
			return -1;
		fib->family = RT_AF_INET6;
		fib->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		fib->tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
		return 0;
	}
	return 1;
}

/* After a FIB hit: lower the TTL, rewrite the MACs, name the egress. */
static __always_inline int rt_rewrite(struct sl_meta *m, void *data,
				      void *data_end,
				      const struct bpf_fib_lookup *fib)
{
	struct ethhdr *eth = data;

	if (fib->family == RT_AF_INET) {
		struct iphdr *ip = data + RT_ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return SL_NEXT;
		rt_ip4_ttl_dec(ip);
	} else {
		struct ipv6hdr *ip6 = data + RT_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return SL_NEXT;
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib->dmac, RT_ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, RT_ETH_ALEN);
	m->redirect_ifindex = fib->ifindex;
	return SL_REDIRECT;
}

/* The lookup an NF before this one did for the packet (meta->fib_*): only
 * the TTL and the MACs are left to do. Returns SL_REDIRECT, or SL_NEXT
 * when the packet is not one to finish this way (then it is looked up). */
static __always_inline int rt_shared(struct sl_meta *m, void *data,
				     void *data_end)
{
	struct ethhdr *eth = data;

	if (m->l3_off != RT_ETH_HLEN || (m->flags & SL_F_FRAG))
		return SL_NEXT;
	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = data + RT_ETH_HLEN;

		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return SL_NEXT;
		rt_ip4_ttl_dec(ip);
	} else if (m->flags & SL_F_IPV6) {
		struct ipv6hdr *ip6 = data + RT_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return SL_NEXT;
		ip6->hop_limit--;
	} else {
		return SL_NEXT;
	}
	__builtin_memcpy(eth->h_dest, m->fib_dmac, RT_ETH_ALEN);
	__builtin_memcpy(eth->h_source, m->fib_smac, RT_ETH_ALEN);
	m->redirect_ifindex = m->fib_ifindex;
	return SL_REDIRECT;
}

SEC("xdp")
int router_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	struct bpf_fib_lookup fib;
	void *data, *data_end;
	int rc, verdict = SL_NEXT;

	if (!m)
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (m->fib_ifindex) {
		verdict = rt_shared(m, data, data_end);
		if (verdict == SL_REDIRECT)
			return sl_finish_xdp(ctx, m, rt_slot, verdict);
	}
	rc = rt_prepare(m, data, data_end, &fib);
	if (!rc) {
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_SUCCESS)
			verdict = rt_rewrite(m, data, data_end, &fib);
	} else if (rc > 0) {
		rc = 0x7fff; /* "other" */
	}
	rt_count(rc);
	return sl_finish_xdp(ctx, m, rt_slot, verdict);
}

SEC("tc")
int router_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);
	struct bpf_fib_lookup fib;
	void *data, *data_end;
	int rc, verdict = SL_NEXT;

	if (!m)
		return SL_TCX_NEXT;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	/* Egress: the packet is leaving already, routed by the kernel. */
	if (m->hook != SL_HOOK_TC_IN)
		return sl_finish_tc(skb, m, rt_slot, SL_NEXT);
	rc = rt_prepare(m, data, data_end, &fib);
	if (!rc) {
		rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_SUCCESS)
			verdict = rt_rewrite(m, data, data_end, &fib);
	} else if (rc > 0) {
		rc = 0x7fff;
	}
	rt_count(rc);
	return sl_finish_tc(skb, m, rt_slot, verdict);
}
