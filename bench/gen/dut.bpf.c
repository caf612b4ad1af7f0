// SPDX-License-Identifier: GPL-2.0
/* Receiving-side programs of the benchmark: the references and the
 * packet counter that gives veth its NAPI for netfilter peers.
 *   dut_drop   count, XDP_DROP                (bare XDP drop: reference A)
 *   dut_parse  parse Ethernet/IP/L4, count and drop when the destination
 *              port is drop_dport, else pass  (XDP parse-and-drop)
 *   dut_pass   count, XDP_PASS                (in front of netfilter peers)
 *   dut_fwd    count, set the sink's MAC addresses, redirect through a
 *              DEVMAP to fwd_tx[0]            (the cost of XDP forwarding
 *              itself here: no parsing, no lookup) */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fwd_tx SEC(".maps");

const volatile __u16 drop_dport = 7777;

static __always_inline void count(void)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&cnt, &zero);

	if (c)
		*c += 1;
}

SEC("xdp")
int dut_drop(struct xdp_md *ctx)
{
	count();
	return XDP_DROP;
}

SEC("xdp")
int dut_pass(struct xdp_md *ctx)
{
	count();
	return XDP_PASS;
}

/* dc -> kc in bench/run.sh's forwarding topology. */
static const __u8 fwd_dmac[ETH_ALEN] = { 2, 0, 0, 0, 0, 4 };
static const __u8 fwd_smac[ETH_ALEN] = { 2, 0, 0, 0, 0, 3 };

SEC("xdp")
int dut_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, fwd_dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fwd_smac, ETH_ALEN);
	count();
	return bpf_redirect_map(&fwd_tx, 0, 0);
}

SEC("xdp")
int dut_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 proto;
	void *l4;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->ihl < 5)
			return XDP_PASS;
		proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_PASS;
		proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		return XDP_PASS;
	}
	if (proto == IPPROTO_UDP || proto == IPPROTO_TCP) {
		struct udphdr *udp = l4; /* ports sit at the same offsets */

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		if (udp->dest == bpf_htons(drop_dport)) {
			count();
			return XDP_DROP;
		}
	}
	return XDP_PASS;
}
