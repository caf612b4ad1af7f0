/* SPDX-License-Identifier: GPL-2.0 */
/* Packet parsing for the root programs.
 *
 * Contract: sl_parse() reads headers between data and data_end only, checks
 * every access against data_end, and fills struct sl_meta. It returns 0, or
 * -SL_DROP_MALFORMED_* when a header the packet announces is truncated or
 * inconsistent. A packet that is not IP returns 0 with neither SL_F_IPV4 nor
 * SL_F_IPV6 set. */
#ifndef SLUICE_PARSE_H
#define SLUICE_PARSE_H

#include "sluice_abi.h"

#define SL_ETH_P_IP 0x0800
#define SL_ETH_P_IPV6 0x86DD
#define SL_ETH_P_8021Q 0x8100
#define SL_ETH_P_8021AD 0x88A8
#define SL_VLAN_MAX 2
#define SL_IPV6_EXT_MAX 8 /* extension headers followed before giving up */

#define SL_IPPROTO_HOPOPTS 0
#define SL_IPPROTO_ICMP 1
#define SL_IPPROTO_TCP 6
#define SL_IPPROTO_UDP 17
#define SL_IPPROTO_ROUTING 43
#define SL_IPPROTO_FRAGMENT 44
#define SL_IPPROTO_AH 51
#define SL_IPPROTO_ICMPV6 58
#define SL_IPPROTO_DSTOPTS 60

struct sl_cursor {
	void *pos;
	void *end;
};

struct sl_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct sl_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* Returns a pointer to len bytes at the cursor and advances it, or NULL. */
static __always_inline void *sl_pull(struct sl_cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

/* Parses the L4 header at the cursor: ports, TCP flags, ICMP type/code. */
static __always_inline int sl_parse_l4(struct sl_cursor *c, struct sl_meta *m,
				       void *data)
{
	m->l4_off = c->pos - data;
	switch (m->ip_proto) {
	case SL_IPPROTO_TCP: {
		struct tcphdr *th = sl_pull(c, sizeof(*th));

		if (!th || th->doff < 5)
			return -SL_DROP_MALFORMED_L4;
		m->sport = bpf_ntohs(th->source);
		m->dport = bpf_ntohs(th->dest);
		/* The flags byte follows the data-offset byte. */
		m->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case SL_IPPROTO_UDP: {
		struct udphdr *uh = sl_pull(c, sizeof(*uh));

		if (!uh)
			return -SL_DROP_MALFORMED_L4;
		m->sport = bpf_ntohs(uh->source);
		m->dport = bpf_ntohs(uh->dest);
		break;
	}
	case SL_IPPROTO_ICMP:
	case SL_IPPROTO_ICMPV6: {
		__u8 *ih = sl_pull(c, 4);

		if (!ih)
			return -SL_DROP_MALFORMED_L4;
		m->icmp_type = ih[0];
		m->icmp_code = ih[1];
		break;
	}
	default:
		break;
	}
	m->flags |= SL_F_L4;
	return 0;
}

static __always_inline int sl_parse_ipv4(struct sl_cursor *c, struct sl_meta *m,
					 void *data)
{
	struct iphdr *ip = c->pos;
	__u32 hlen;

	if ((void *)(ip + 1) > c->end)
		return -SL_DROP_MALFORMED_L3;
	hlen = ip->ihl * 4;
	if (ip->version != 4 || hlen < sizeof(*ip) || !sl_pull(c, hlen))
		return -SL_DROP_MALFORMED_L3;
	m->flags |= SL_F_IPV4;
	m->l3_off = (void *)ip - data;
	m->ip_proto = ip->protocol;
	m->saddr[0] = ip->saddr;
	m->daddr[0] = ip->daddr;
	/* frag_off: 3 flag bits then the offset; MF or an offset = fragment. */
	if (ip->frag_off & bpf_htons(0x3FFF)) {
		m->flags |= SL_F_FRAG;
		if (ip->frag_off & bpf_htons(0x1FFF))
			return 0; /* non-first fragment: no L4 header */
	}
	return sl_parse_l4(c, m, data);
}

static __always_inline int sl_parse_ipv6(struct sl_cursor *c, struct sl_meta *m,
					 void *data)
{
	struct ipv6hdr *ip6 = sl_pull(c, sizeof(struct ipv6hdr));
	__u8 nexthdr;
	int i;

	if (!ip6 || ip6->version != 6)
		return -SL_DROP_MALFORMED_L3;
	m->flags |= SL_F_IPV6;
	m->l3_off = (void *)ip6 - data;
	__builtin_memcpy(m->saddr, &ip6->saddr, 16);
	__builtin_memcpy(m->daddr, &ip6->daddr, 16);
	nexthdr = ip6->nexthdr;

	for (i = 0; i < SL_IPV6_EXT_MAX; i++) {
		struct sl_ipv6_opt_hdr *oh = c->pos;

		switch (nexthdr) {
		case SL_IPPROTO_HOPOPTS:
		case SL_IPPROTO_ROUTING:
		case SL_IPPROTO_DSTOPTS:
			if (!sl_pull(c, sizeof(*oh)))
				return -SL_DROP_MALFORMED_L3;
			nexthdr = oh->nexthdr;
			if (!sl_pull(c, (oh->hdrlen + 1) * 8 - sizeof(*oh)))
				return -SL_DROP_MALFORMED_L3;
			break;
		case SL_IPPROTO_AH:
			if (!sl_pull(c, sizeof(*oh)))
				return -SL_DROP_MALFORMED_L3;
			nexthdr = oh->nexthdr;
			if (!sl_pull(c, (oh->hdrlen + 2) * 4 - sizeof(*oh)))
				return -SL_DROP_MALFORMED_L3;
			break;
		case SL_IPPROTO_FRAGMENT: {
			struct frag_hdr *fh = sl_pull(c, sizeof(*fh));

			if (!fh)
				return -SL_DROP_MALFORMED_L3;
			m->flags |= SL_F_FRAG;
			m->ip_proto = fh->nexthdr;
			if (fh->frag_off & bpf_htons(0xFFF8))
				return 0; /* non-first fragment */
			nexthdr = fh->nexthdr;
			break;
		}
		default:
			m->ip_proto = nexthdr;
			return sl_parse_l4(c, m, data);
		}
	}
	return -SL_DROP_MALFORMED_L3; /* more extension headers than we follow */
}

static __always_inline int sl_parse(void *data, void *data_end,
				    struct sl_meta *m)
{
	struct sl_cursor c = { .pos = data, .end = data_end };
	struct ethhdr *eth = sl_pull(&c, sizeof(*eth));
	__u16 proto;
	int i;

	if (!eth)
		return -SL_DROP_MALFORMED_L2;
	proto = bpf_ntohs(eth->h_proto);
	for (i = 0; i < SL_VLAN_MAX; i++) {
		struct sl_vlan_hdr *vh;

		if (proto != SL_ETH_P_8021Q && proto != SL_ETH_P_8021AD)
			break;
		vh = sl_pull(&c, sizeof(*vh));
		if (!vh)
			return -SL_DROP_MALFORMED_L2;
		proto = bpf_ntohs(vh->proto);
	}
	m->eth_proto = proto;
	if (proto == SL_ETH_P_IP)
		return sl_parse_ipv4(&c, m, data);
	if (proto == SL_ETH_P_IPV6)
		return sl_parse_ipv6(&c, m, data);
	return 0;
}

/* The kind of packet (enum sl_ignore) when a glance at fixed offsets shows
 * it and sl_parse() would accept it: untagged Ethernet, IPv4 without
 * fragmenting or IPv6 without extension headers, the L4 header whole.
 * 0 when unsure (VLANs, fragments, extension headers, truncated or bad
 * headers): the caller then parses the packet in full. */
static __always_inline __u32 sl_peek_kind(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	__u32 l4_off, proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(SL_ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 ||
		    ip->ihl < 5 || (ip->frag_off & bpf_htons(0x3FFF)))
			return 0;
		l4_off = sizeof(*eth) + ip->ihl * 4;
		proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(SL_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return 0;
		l4_off = sizeof(*eth) + sizeof(*ip6);
		proto = ip6->nexthdr;
	} else if (eth->h_proto == bpf_htons(SL_ETH_P_8021Q) ||
		   eth->h_proto == bpf_htons(SL_ETH_P_8021AD)) {
		return 0;
	} else {
		return SL_IGN_NONIP;
	}
	switch (proto) {
	case SL_IPPROTO_TCP:
		/* data offset >= 5 words is sl_parse_l4's test */
		if (data + l4_off + sizeof(struct tcphdr) > data_end ||
		    ((struct tcphdr *)(data + l4_off))->doff < 5)
			return 0;
		return SL_IGN_TCP;
	case SL_IPPROTO_UDP:
		return data + l4_off + sizeof(struct udphdr) <= data_end ?
			       SL_IGN_UDP : 0;
	case SL_IPPROTO_ICMP:
	case SL_IPPROTO_ICMPV6:
		return data + l4_off + 4 <= data_end ? SL_IGN_ICMP : 0;
	case SL_IPPROTO_HOPOPTS:
	case SL_IPPROTO_ROUTING:
	case SL_IPPROTO_FRAGMENT:
	case SL_IPPROTO_AH:
	case SL_IPPROTO_DSTOPTS:
		return 0;
	default:
		return data + l4_off <= data_end ? SL_IGN_OTHER : 0;
	}
}

#endif
