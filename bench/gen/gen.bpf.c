// SPDX-License-Identifier: GPL-2.0
/* Traffic generator for BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES.
 *
 * User space hands in one template frame (UDP/IPv4, UDP/IPv6 or TCP SYN/IPv4,
 * with valid checksums for flow 0). For every frame this program picks a flow
 * from a seeded per-CPU counter, rewrites the low 16 bits of the source
 * address and the source port, fixes the checksums incrementally from the
 * template's, counts the frame and redirects it through a DEVMAP into the
 * generator's veth, whose peer (the device under test) receives it. */
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

#define MODE_UDP4 0
#define MODE_UDP6 1
#define MODE_TCP4 2

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tx SEC(".maps");

/* Frames generated, per CPU; also the per-thread sequence number. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} frames SEC(".maps");

const volatile __u32 nflows = 1;
const volatile __u32 seed = 0;
const volatile __u32 mode = MODE_UDP4;
const volatile __u16 sport0 = 1024;	/* template source port (host order) */
const volatile __u16 saddr_lo0 = 0;	/* template low 16 bits of the source */
const volatile __u16 l4_csum0 = 0;	/* template L4 checksum (as in packet) */
/* Destinations: flow f goes to the template's address + f % ndst (IPv4,
 * low 16 bits): traffic spread over ndst services. */
const volatile __u32 ndst = 1;
const volatile __u16 daddr_lo0 = 0;	/* template low 16 bits of the destination */
/* The template's first 60 bytes (Ethernet, IP, L4 headers), written over
 * every frame: live-frame pages are recycled as the DUT left them, and a DUT
 * that forwards or translates rewrites MACs, TTL, addresses and ports in
 * place. */
const volatile __u32 tmpl[15];

static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624: HC' = ~(~HC + ~m + m'), for two 16-bit fields (network order). */
static __always_inline __u16 csum_update2(__u16 hc, __u16 m1, __u16 n1,
					  __u16 m2, __u16 n2)
{
	__u32 s = (__u16)~hc;

	s += (__u16)~m1 + n1 + (__u16)~m2 + n2;
	return ~csum_fold(s);
}

static __always_inline __u16 ip4_csum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 s = 0;
	int i;

	ip->check = 0;
#pragma unroll
	for (i = 0; i < 10; i++)
		s += w[i];
	return ~csum_fold(s);
}

SEC("xdp")
int gen_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0, f, fl = nflows ? nflows : 1;
	__u16 sp, lo, dlo;
	__u64 *cnt;

	cnt = bpf_map_lookup_elem(&frames, &zero);
	if (!cnt)
		return XDP_ABORTED;
	if (data + 60 > data_end)
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < 15; i++) /* volatile reads: set before load */
		((__u32 *)data)[i] = tmpl[i];
	f = (__u32)*cnt * 2654435761u + seed;
	*cnt += 1;
	f %= fl;
	lo = bpf_htons(f & 0xffff);
	sp = bpf_htons(1024 + ((f ^ (f >> 16)) & 0x7fff));
	dlo = bpf_htons(daddr_lo0 + (ndst > 1 ? f % ndst : 0));

	if (mode == MODE_UDP6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip6 + 1);
		__u16 c;

		if ((void *)(udp + 1) > data_end)
			return XDP_ABORTED;
		ip6->saddr.in6_u.u6_addr16[7] = lo;
		udp->source = sp;
		c = csum_update2(l4_csum0, bpf_htons(saddr_lo0), lo,
				 bpf_htons(sport0), sp);
		udp->check = c ? c : 0xffff;
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_ABORTED;
		ip->saddr = (ip->saddr & bpf_htonl(0xffff0000)) |
			    ((__u32)lo << 16);
		ip->daddr = (ip->daddr & bpf_htonl(0xffff0000)) |
			    ((__u32)dlo << 16);
		ip->check = ip4_csum(ip);
		if (mode == MODE_TCP4) {
			struct tcphdr *tcp = (void *)(ip + 1);

			if ((void *)(tcp + 1) > data_end)
				return XDP_ABORTED;
			tcp->source = sp;
			tcp->check = csum_update2(csum_update2(l4_csum0,
						  bpf_htons(saddr_lo0), lo,
						  bpf_htons(sport0), sp),
						  bpf_htons(daddr_lo0), dlo, 0, 0);
		} else {
			if ((void *)(udp + 1) > data_end)
				return XDP_ABORTED;
			udp->source = sp;
			udp->check = 0;
		}
	}
	return bpf_redirect_map(&tx, 0, 0);
}
