// SPDX-License-Identifier: GPL-2.0
/* NAT NF: SNAT, masquerade and DNAT with collision-free allocation.
 *
 * Where it runs (TC only: the checksum helpers keep CHECKSUM_PARTIAL and
 * CHECKSUM_COMPLETE skbs right, which a plain rewrite at XDP could not):
 *   TC ingress: replies of SNATed flows are translated back (before
 *               routing, so the kernel routes them to the inside host), then
 *               DNAT rules translate new flows' destinations;
 *   TC egress:  replies of DNATed flows are translated back, then SNAT and
 *               masquerade rules translate new flows' sources (after
 *               routing, so the rule knows the outgoing interface).
 * A packet that is a reply is never translated as a new flow, so a flow is
 * translated at most once each way, as with netfilter's NAT. ICMP errors
 * quoting a translated flow get the outer and the quoted header translated.
 * The per-packet work of a known flow: two hash lookups, the rewrite. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "parse.h"
#include "nat_abi.h"
#include "conntrack_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The slot of this instance, set by the loader. */
const volatile __u32 nat_slot = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct nat_rule);
} nat_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_config);
} nat_config SEC(".maps");

/* The rules as written, for show and reload; the program never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NAT_MAX_SPECS);
	__type(key, __u32);
	__type(value, struct nat_spec);
} nat_specs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NAT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct nat_counter);
} nat_counters SEC(".maps");

/* The mappings, pinned by name: a reload of the rules reuses them. */
#define NAT_MAPPING_MAP(name)                                                  \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LRU_HASH);                           \
		__uint(max_entries, NAT_MAP_SIZE);                             \
		__type(key, struct nat_key);                                   \
		__type(value, VALUE);                                          \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                           \
	} name SEC(".maps")

#define VALUE struct nat_fwd
NAT_MAPPING_MAP(nat_snat_fwd);
NAT_MAPPING_MAP(nat_dnat_fwd);
#undef VALUE
#define VALUE struct nat_rev
NAT_MAPPING_MAP(nat_snat_rev);
NAT_MAPPING_MAP(nat_dnat_rev);
#undef VALUE

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_flags);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_flags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nat_epoch SEC(".maps");

#define NS_PER_SEC 1000000000ULL

/* Offsets in the headers. */
#define IP4_CSUM 10
#define IP4_SADDR 12
#define IP4_DADDR 16
#define IP6_SADDR 8
#define IP6_DADDR 24
#define ICMP_ECHO_ID 4

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define ICMPV6_TIME_EXCEED 3
#define ICMPV6_PARAMPROB 4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* ---- checksums ---------------------------------------------------------- */

/* Offset of the L4 checksum in its header, or -1 when there is none. */
static __always_inline int l4_csum_off(__u8 proto)
{
	switch (proto) {
	case SL_IPPROTO_TCP:
		return 16;
	case SL_IPPROTO_UDP:
		return 6;
	case SL_IPPROTO_ICMP:
	case SL_IPPROTO_ICMPV6:
		return 2;
	}
	return -1;
}

/* UDP's zero checksum means "none": it stays zero (and a result of zero
 * is written as 0xffff). */
static __always_inline __u64 l4_csum_flags(__u8 proto)
{
	return proto == SL_IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Folds a 32-bit one's complement sum to 16 bits. */
static __always_inline __u16 csum_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return s;
}

/* A checksum field (raw, as in the packet) after data changed by diff
 * (a bpf_csum_diff result), RFC 1624: HC' = ~(~HC + diff). */
static __always_inline __u16 csum_apply(__u16 check, __u32 diff)
{
	return ~csum_fold((__u64)(__u16)~check + diff);
}

/* ---- flow tuples -------------------------------------------------------- */

static __always_inline bool is_echo_req(__u8 family, __u8 type)
{
	return family == 4 ? type == ICMP_ECHO : type == ICMPV6_ECHO_REQUEST;
}

static __always_inline bool is_echo_reply(__u8 family, __u8 type)
{
	return family == 4 ? type == ICMP_ECHOREPLY : type == ICMPV6_ECHO_REPLY;
}

static __always_inline bool is_icmp_error(__u8 family, __u8 type)
{
	if (family == 4)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
		       type == ICMP_PARAMETERPROB;
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

static __always_inline __u8 icmp_proto(__u8 family)
{
	return family == 4 ? SL_IPPROTO_ICMP : SL_IPPROTO_ICMPV6;
}

/* Ports of an L4 header (8 bytes at l4): TCP/UDP ports, or the ICMP echo
 * identifier as the source of a request / the destination of a reply. */
static __always_inline void key_ports(struct nat_key *k, const __u8 *l4)
{
	__u16 id;

	if (k->proto == SL_IPPROTO_TCP || k->proto == SL_IPPROTO_UDP) {
		k->sport = (l4[0] << 8) | l4[1];
		k->dport = (l4[2] << 8) | l4[3];
	} else if (k->proto == icmp_proto(k->family)) {
		id = (l4[4] << 8) | l4[5];
		if (is_echo_req(k->family, l4[0]))
			k->sport = id;
		else if (is_echo_reply(k->family, l4[0]))
			k->dport = id;
	}
}

static __always_inline void key_swap(struct nat_key *k)
{
	__u32 a[4];
	__u16 p;

	__builtin_memcpy(a, k->saddr, sizeof(a));
	__builtin_memcpy(k->saddr, k->daddr, sizeof(a));
	__builtin_memcpy(k->daddr, a, sizeof(a));
	p = k->sport;
	k->sport = k->dport;
	k->dport = p;
}

static __always_inline bool addr_eq(const __u32 *a, const __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* ---- rewriting the packet ---------------------------------------------- */

struct nat_pkt {
	struct __sk_buff *skb;
	struct sl_meta *m;
	__u8 family;
	__u8 proto;
	__u8 icmp_type;
	__u32 l3;
	__u32 l4;
};

/* Replaces the source (src) or destination address, fixing the IPv4 header
 * checksum and the L4 checksum over the pseudo-header. */
static __always_inline int rewrite_addr(struct nat_pkt *p, bool src,
					const __u32 *addr)
{
	struct __sk_buff *skb = p->skb;
	int csum = l4_csum_off(p->proto);
	__u64 flags = BPF_F_PSEUDO_HDR | l4_csum_flags(p->proto);
	__u32 old[4] = {};
	__u32 off;

	if (p->family == 4) {
		off = p->l3 + (src ? IP4_SADDR : IP4_DADDR);
		if (bpf_skb_load_bytes(skb, off, old, 4))
			return -1;
		if (old[0] == addr[0])
			return 0;
		if (bpf_skb_store_bytes(skb, off, addr, 4, 0) ||
		    bpf_l3_csum_replace(skb, p->l3 + IP4_CSUM, old[0], addr[0], 4))
			return -1;
		/* ICMPv4's checksum has no pseudo-header. */
		if (csum >= 0 && p->proto != SL_IPPROTO_ICMP &&
		    bpf_l4_csum_replace(skb, p->l4 + csum, old[0], addr[0], flags | 4))
			return -1;
		return 0;
	}
	off = p->l3 + (src ? IP6_SADDR : IP6_DADDR);
	if (bpf_skb_load_bytes(skb, off, old, 16))
		return -1;
	if (addr_eq(old, addr))
		return 0;
	if (bpf_skb_store_bytes(skb, off, addr, 16, 0))
		return -1;
	if (csum >= 0) {
		__s64 diff = bpf_csum_diff(old, 16, (__u32 *)addr, 16, 0);

		if (bpf_l4_csum_replace(skb, p->l4 + csum, 0, diff, flags))
			return -1;
	}
	return 0;
}

/* Replaces a port (or the ICMP echo identifier) from old to new. */
static __always_inline int rewrite_port(struct nat_pkt *p, bool src,
					__u16 old, __u16 new)
{
	int csum = l4_csum_off(p->proto);
	__u16 o = bpf_htons(old), n = bpf_htons(new);
	__u32 off;

	if (old == new || csum < 0)
		return 0;
	if (p->proto == SL_IPPROTO_TCP || p->proto == SL_IPPROTO_UDP)
		off = p->l4 + (src ? 0 : 2);
	else
		off = p->l4 + ICMP_ECHO_ID;
	if (bpf_skb_store_bytes(p->skb, off, &n, 2, 0) ||
	    bpf_l4_csum_replace(p->skb, p->l4 + csum, o, n,
				l4_csum_flags(p->proto) | 2))
		return -1;
	return 0;
}

/* Meta after a translation of the source (src) or the destination. */
static __always_inline void meta_set(struct sl_meta *m, __u8 proto, bool src,
				     const __u32 *addr, __u16 port)
{
	if (src)
		__builtin_memcpy(m->saddr, addr, 16);
	else
		__builtin_memcpy(m->daddr, addr, 16);
	if (proto == SL_IPPROTO_TCP || proto == SL_IPPROTO_UDP) {
		if (src)
			m->sport = port;
		else
			m->dport = port;
	}
}

/* Rewrites the source or destination of the packet whose tuple is k, and
 * keeps meta in step for the NFs after this one. */
static __always_inline int rewrite(struct nat_pkt *p, const struct nat_key *k,
				   bool src, const __u32 *addr, __u16 port)
{
	struct sl_meta *m = p->m;

	if (rewrite_addr(p, src, addr) ||
	    rewrite_port(p, src, src ? k->sport : k->dport, port))
		return -SL_DROP_MALFORMED_L4;
	meta_set(m, p->proto, src, addr, port);
	return 0;
}

/* ---- mapping life ------------------------------------------------------- */

static __always_inline __u64 nat_timeout(__u8 proto, __u8 st)
{
	if (proto == SL_IPPROTO_TCP) {
		if ((st & NAT_ST_RST) ||
		    (st & (NAT_ST_FIN_ORIG | NAT_ST_FIN_REPLY)) ==
			    (NAT_ST_FIN_ORIG | NAT_ST_FIN_REPLY))
			return NAT_TO_TCP_CLOSE;
		if (st & (NAT_ST_FIN_ORIG | NAT_ST_FIN_REPLY))
			return NAT_TO_TCP_FIN;
		return st & NAT_ST_REPLIED ? NAT_TO_TCP_EST : NAT_TO_TCP_SYN;
	}
	if (proto == SL_IPPROTO_UDP)
		return st & NAT_ST_REPLIED ? NAT_TO_UDP_REPLIED : NAT_TO_UDP;
	return NAT_TO_OTHER;
}

/* Refreshes a mapping with a packet of its flow (reply: the way back). */
static __always_inline void nat_touch(struct nat_rev *r, __u8 proto,
				      __u8 tcp_flags, bool reply, __u64 now)
{
	__u8 st = r->state;
	__u64 exp;

	if (reply)
		st |= NAT_ST_REPLIED;
	if (proto == SL_IPPROTO_TCP) {
		/* A new SYN on a closed tuple starts a new connection. */
		if (!reply && (tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
		    (st & (NAT_ST_RST | NAT_ST_FIN_ORIG | NAT_ST_FIN_REPLY)))
			st = 0;
		if (tcp_flags & TCP_RST)
			st |= NAT_ST_RST;
		if (tcp_flags & TCP_FIN)
			st |= reply ? NAT_ST_FIN_REPLY : NAT_ST_FIN_ORIG;
	}
	if (st != r->state)
		r->state = st;
	exp = now + nat_timeout(proto, st) * NS_PER_SEC;
	/* Written when it moves by a second or more (or shrinks): a write
	 * per packet would dirty the entry's cache line for nothing. */
	if (exp >= r->expires + NS_PER_SEC || exp < r->expires)
		r->expires = exp;
}

/* ---- rules -------------------------------------------------------------- */

struct nat_match {
	struct nat_key k;
	__u32 ifindex;
	bool ingress;
	bool has_ports;
	__u32 found; /* rule index, or ~0 */
};

static __always_inline bool prefix_in(const __u32 *a, const __u32 *net,
				      const __u32 *mask)
{
	return (a[0] & mask[0]) == net[0] && (a[1] & mask[1]) == net[1] &&
	       (a[2] & mask[2]) == net[2] && (a[3] & mask[3]) == net[3];
}

/* ---- allocation --------------------------------------------------------- */

struct nat_alloc {
	struct nat_key rk; /* reply tuple of the candidate */
	struct nat_rev val;
	__u32 to_lo[4];
	__u64 start, total;
	__u32 nports;
	__u16 port_lo;
	__u8 word; /* the address word that varies: 0 for IPv4, 3 for IPv6 */
	bool snat;
	bool found;
	__u64 now;
};

/* A new flow's rule search and allocation work here rather than on the
 * stack (512 bytes for all frames); a packet's programs never nest on
 * one CPU (TC egress runs with bottom halves off). */
/* The quoted header of an ICMP error: an IP header without options (IPv6
 * without extension headers) and the first 8 bytes of its L4 header. */
struct quoted4 {
	struct iphdr ip;
	__u8 l4[8];
};

struct quoted6 {
	struct ipv6hdr ip;
	__u8 l4[8];
};

union quoted {
	struct quoted4 v4;
	struct quoted6 v6;
};

struct nat_scratch {
	struct nat_match s;
	struct nat_alloc a;
	union quoted q, old; /* an ICMP error's quote, before and after */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_scratch);
} nat_scratch SEC(".maps");

static __always_inline struct nat_scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nat_scratch, &zero);
}

static long nat_match_one(__u32 i, void *arg)
{
	struct nat_scratch *sc = scratch();
	const struct nat_rule *r = bpf_map_lookup_elem(&nat_rules, &i);
	struct nat_match *s;
	bool dnat;

	if (!r || !sc)
		return 1;
	s = &sc->s;
	dnat = r->kind == NAT_DNAT;
	if (r->ifindex != s->ifindex || dnat != s->ingress ||
	    r->family != s->k.family || (r->proto && r->proto != s->k.proto))
		return 0;
	if (!prefix_in(s->k.saddr, r->src, r->src_mask) ||
	    !prefix_in(s->k.daddr, r->dst, r->dst_mask))
		return 0;
	if (r->dport_lo || r->dport_hi != 0xffff) {
		if (!s->has_ports || s->k.dport < r->dport_lo ||
		    s->k.dport > r->dport_hi)
			return 0;
	}
	s->found = i;
	return 1;
}

/* Tries candidate i; on success the candidate stays in a->rk. */
static __always_inline long nat_try(void *map, __u32 i, struct nat_alloc *a)
{
	__u64 k = (a->start + i) % a->total;
	__u32 aidx = k / a->nports, addr[4];
	__u16 port = a->port_lo + k % a->nports;
	struct nat_rev *cur;

	__builtin_memcpy(addr, a->to_lo, 16);
	if (a->word == 0)
		addr[0] = bpf_htonl(bpf_ntohl(a->to_lo[0]) + aidx);
	else
		addr[3] = bpf_htonl(bpf_ntohl(a->to_lo[3]) + aidx);
	/* Separate stores: a pointer chosen by a condition becomes a variable
	 * stack offset, which the verifier refuses. */
	if (a->snat) {
		__builtin_memcpy(a->rk.daddr, addr, 16);
		a->rk.dport = port;
	} else {
		__builtin_memcpy(a->rk.saddr, addr, 16);
		a->rk.sport = port;
	}
	if (!bpf_map_update_elem(map, &a->rk, &a->val, BPF_NOEXIST)) {
		a->found = true;
		return 1;
	}
	/* Taken: reusable only when it expired, or is this very flow's
	 * (its forward entry was evicted). */
	cur = bpf_map_lookup_elem(map, &a->rk);
	if (cur && (cur->expires < a->now ||
		    (addr_eq(cur->addr, a->val.addr) && cur->port == a->val.port))) {
		*cur = a->val;
		a->found = true;
		return 1;
	}
	return 0;
}

static long nat_try_snat(__u32 i, void *arg)
{
	struct nat_scratch *sc = scratch();

	return sc ? nat_try(&nat_snat_rev, i, &sc->a) : 1;
}

static long nat_try_dnat(__u32 i, void *arg)
{
	struct nat_scratch *sc = scratch();

	return sc ? nat_try(&nat_dnat_rev, i, &sc->a) : 1;
}

static __always_inline __u32 hash_addr(const __u32 *a, __u32 seed)
{
	__u32 h = seed ^ 0x9e3779b9;

	h = (h ^ a[0]) * 0x85ebca6b;
	h = (h ^ a[1]) * 0xc2b2ae35;
	h = (h ^ a[2]) * 0x85ebca6b;
	h = (h ^ a[3]) * 0xc2b2ae35;
	return h ^ (h >> 16);
}

/* Fills the candidate space of rule r for flow k: addresses times ports,
 * starting with the flow's own port when the rule allows it. */
static __always_inline void alloc_prepare(struct nat_alloc *a,
					  const struct nat_rule *r,
					  const struct nat_key *k, bool has_ports)
{
	__u16 orig = a->snat ? k->sport : k->dport;
	__u32 naddrs = r->naddrs ? r->naddrs : 1;
	__u32 aidx0, pidx0;
	__u16 lo = r->port_lo, hi = r->port_hi;

	if (!has_ports) {
		lo = hi = 0; /* nothing to translate but the address */
	} else if (!lo && !hi) { /* the rule names no ports */
		if (!a->snat)
			lo = hi = orig; /* DNAT keeps the port */
		else if (k->proto != SL_IPPROTO_TCP && k->proto != SL_IPPROTO_UDP)
			hi = 0xffff; /* ICMP echo identifiers */
		else if (orig < 1024)
			lo = 1, hi = 1023; /* as netfilter: keep the class */
		else
			lo = 1024, hi = 0xffff;
	}
	a->port_lo = lo;
	a->nports = hi - lo + 1;
	/* A client keeps its address (hash of the inside address). */
	aidx0 = hash_addr(k->saddr, k->proto) % naddrs;
	if (orig >= lo && orig <= hi)
		pidx0 = orig - lo;
	else
		pidx0 = bpf_get_prandom_u32() % a->nports;
	a->start = (__u64)aidx0 * a->nports + pidx0;
	a->total = (__u64)naddrs * a->nports;
	__builtin_memcpy(a->to_lo, r->to_lo, 16);
	a->word = k->family == 4 ? 0 : 3;
}

/* ---- the two directions ------------------------------------------------- */

static __always_inline void count_rule(__u32 rule, bool no_port)
{
	struct nat_counter *c = bpf_map_lookup_elem(&nat_counters, &rule);

	if (!c)
		return;
	if (no_port)
		c->no_port++;
	else
		c->flows++;
}

/* A packet's flow as the lookups below need it, whichever hook runs them. */
struct nat_flow {
	struct nat_key k;
	__u64 now;
	__u32 epoch; /* nat_epoch; odd: check every reverse entry */
	__u32 ifindex; /* the rule's interface: ingress (DNAT), egress (SNAT) */
	__u8 tcp_flags;
	bool has_ports;
};

/* A translation: the new address and port of one side of the packet. */
struct nat_xlat {
	__u32 addr[4];
	__u16 port;
};

/* What nat_known found in the forward entry (struct nat_fwd), for a note
 * in the conntrack entry (fresh_until 0: none to make). */
struct nat_check {
	__u32 ifindex;
	__u32 epoch;
	__u64 fresh_until;
};

static __always_inline struct nat_flags *flags(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nat_flags, &zero);
}

static __always_inline void dnat_mark_used(void)
{
	struct nat_flags *f = flags();

	if (f && !f->dnat_used)
		f->dnat_used = 1;
}

/* Whether the forward entry f, checked less than a second ago, can be
 * used as it is: the packet changes nothing in the reverse entry (no TCP
 * SYN, FIN or RST; its life would move by less than a second, see
 * nat_touch) and no mapping was removed since (nat_epoch). The reverse
 * entry cannot have gone meanwhile: it lives on for at least the shortest
 * timeout (10 s), and nothing takes a live one. */
static __always_inline bool fwd_fresh(const struct nat_fwd *f,
				      const struct nat_flow *fl)
{
	return fl->now < f->fresh_until && f->epoch == fl->epoch &&
	       !(fl->epoch & 1) && !(fl->tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST));
}

/* A packet of a translated flow, original direction: SNAT gives its new
 * source, DNAT its new destination. With same_if, only a mapping made on
 * fl->ifindex applies. Returns 1 when a live mapping applies, 0 when none.
 * The reverse entry (the allocation, and the mapping's life) is checked and
 * refreshed once a second at most: one hash lookup a packet, not two. */
static __noinline int nat_known(const struct nat_flow *fl, bool snat,
				 bool same_if, struct nat_xlat *x,
				 struct nat_check *c)
{
	void *fwd_map = snat ? (void *)&nat_snat_fwd : (void *)&nat_dnat_fwd;
	const struct nat_key *k = &fl->k;
	struct nat_fwd *f = bpf_map_lookup_elem(fwd_map, k);
	struct nat_key rk;
	struct nat_rev *r;

	if (!f)
		return 0;
	if (fwd_fresh(f, fl)) {
		if (same_if && f->ifindex != fl->ifindex)
			return 0;
		goto hit;
	}
	rk = *k;
	if (snat) {
		__builtin_memcpy(rk.saddr, f->addr, 16);
		rk.sport = f->port;
	} else {
		__builtin_memcpy(rk.daddr, f->addr, 16);
		rk.dport = f->port;
	}
	key_swap(&rk);
	r = bpf_map_lookup_elem(snat ? (void *)&nat_snat_rev : (void *)&nat_dnat_rev,
				&rk);
	/* The reverse entry is the allocation: without it (expired, evicted,
	 * flushed or taken by another flow since) this cache entry is stale. */
	if (!r || r->expires < fl->now ||
	    !addr_eq(r->addr, snat ? k->saddr : k->daddr) ||
	    r->port != (snat ? k->sport : k->dport)) {
		bpf_map_delete_elem(fwd_map, k);
		return 0;
	}
	if (same_if && r->ifindex != fl->ifindex)
		return 0;
	nat_touch(r, k->proto, fl->tcp_flags, false, fl->now);
	/* Until a packet would move the life by a second (nat_touch). */
	f->ifindex = r->ifindex;
	f->epoch = fl->epoch;
	f->fresh_until = r->expires + NS_PER_SEC -
			 nat_timeout(k->proto, r->state) * NS_PER_SEC;
hit:
	__builtin_memcpy(x->addr, f->addr, 16);
	x->port = f->port;
	if (c) {
		c->ifindex = f->ifindex;
		c->epoch = f->epoch;
		c->fresh_until = f->fresh_until;
	}
	return 1;
}

/* A flow's first packet: the first matching rule of fl->ifindex translates
 * it. Returns 1 with the translation, 0 when no rule matches, or a drop
 * verdict. Not inlined (nor is ICMP error handling) to keep each frame's
 * stack small. */
static __noinline int nat_new(const struct nat_flow *fl, bool snat,
			      struct nat_xlat *x)
{
	struct nat_scratch *sc = scratch();
	const struct nat_key *k = &fl->k;
	const struct nat_config *cfg;
	const struct nat_rule *rule;
	struct nat_alloc *a;
	struct nat_fwd f = {};
	__u32 zero = 0, tries, found;

	cfg = bpf_map_lookup_elem(&nat_config, &zero);
	if (!cfg || !sc)
		return -SL_DROP_NF_STATE;
	sc->s.k = *k;
	sc->s.ifindex = fl->ifindex;
	sc->s.ingress = !snat;
	sc->s.has_ports = fl->has_ports;
	sc->s.found = ~0U;
	bpf_loop(cfg->nrules < NAT_MAX_RULES ? cfg->nrules : NAT_MAX_RULES,
		 nat_match_one, NULL, 0);
	found = sc->s.found;
	if (found == ~0U)
		return 0;
	rule = bpf_map_lookup_elem(&nat_rules, &found);
	if (!rule)
		return -SL_DROP_NF_STATE;

	a = &sc->a;
	__builtin_memset(a, 0, sizeof(*a));
	a->snat = snat;
	a->now = fl->now;
	alloc_prepare(a, rule, k, fl->has_ports);
	a->rk = *k;
	key_swap(&a->rk);
	a->val.kind = rule->kind;
	a->val.rule = found;
	a->val.ifindex = fl->ifindex;
	__builtin_memcpy(a->val.addr, snat ? k->saddr : k->daddr, 16);
	a->val.port = snat ? k->sport : k->dport;
	nat_touch(&a->val, k->proto, fl->tcp_flags, false, fl->now);
	tries = a->total < NAT_MAX_TRIES ? a->total : NAT_MAX_TRIES;
	bpf_loop(tries, snat ? nat_try_snat : nat_try_dnat, NULL, 0);
	if (!a->found) {
		count_rule(found, true);
		return -SL_DROP_NAT_NO_PORT;
	}
	/* The candidate in a->rk is the reply tuple: its destination (SNAT)
	 * or source (DNAT) is the translation. */
	if (snat) {
		__builtin_memcpy(f.addr, a->rk.daddr, 16);
		f.port = a->rk.dport;
	} else {
		__builtin_memcpy(f.addr, a->rk.saddr, 16);
		f.port = a->rk.sport;
	}
	f.rule = found;
	bpf_map_update_elem(snat ? (void *)&nat_snat_fwd : (void *)&nat_dnat_fwd,
			    k, &f, BPF_ANY);
	if (!snat)
		dnat_mark_used();
	count_rule(found, false);
	__builtin_memcpy(x->addr, f.addr, 16);
	x->port = f.port;
	return 1;
}

/* A reply of a translated flow: its tuple as it arrives is the reverse
 * entry's key. SNAT replies get their destination back, DNAT replies their
 * source. Returns 1 with the translation, 0 when not a reply. */
static __always_inline int nat_reply(const struct nat_flow *fl, bool snat,
				     struct nat_xlat *x)
{
	void *rev_map = snat ? (void *)&nat_snat_rev : (void *)&nat_dnat_rev;
	struct nat_rev *r = bpf_map_lookup_elem(rev_map, &fl->k);

	if (!r)
		return 0;
	if (r->expires < fl->now)
		return 0; /* reused or evicted in time */
	__builtin_memcpy(x->addr, r->addr, 16);
	x->port = r->port;
	nat_touch(r, fl->k.proto, fl->tcp_flags, true, fl->now);
	return 1;
}

/* ---- ICMP errors -------------------------------------------------------- */

/* One's complement difference of a 16-bit field changed from one raw
 * value to another (bpf_csum_diff works on 4-byte words). */
static __always_inline __u32 diff16(__u16 from, __u16 to)
{
	__u32 f = from, t = to;

	return bpf_csum_diff(&f, 4, &t, 4, 0);
}

/* Translates the quoted packet's source (src) or destination address and
 * port: the address in the quoted IP header (and its checksum), the port,
 * and the quoted L4 checksum when it is inside the quote (TCP's is only
 * when more than 8 bytes were quoted). The outer ICMP checksum follows
 * every byte changed. */
static __noinline int icmp_err_inner(struct nat_pkt *p, __u8 qproto, bool src,
				     const __u32 *addr, __u16 port)
{
	struct __sk_buff *skb = p->skb;
	__u32 qoff = p->l4 + 8; /* the quote follows the ICMP header */
	__u32 addr_diff, l4_diff, outer_diff = 0, qlen, l4off;
	__u16 newport = bpf_htons(port), *pport = NULL;
	int csum = l4_csum_off(qproto);
	struct nat_scratch *sc = scratch();
	union quoted *q;
	__u8 *l4;

	if (!sc)
		return -1;
	q = &sc->q;
	qlen = p->family == 4 ? sizeof(struct quoted4) : sizeof(struct quoted6);
	if (bpf_skb_load_bytes(skb, qoff, q, qlen))
		return -1;
	sc->old = *q;
	if (p->family == 4) {
		__u32 *a = src ? &q->v4.ip.saddr : &q->v4.ip.daddr;

		addr_diff = bpf_csum_diff(a, 4, (__u32 *)addr, 4, 0);
		*a = addr[0];
		q->v4.ip.check = csum_apply(q->v4.ip.check, addr_diff);
		l4 = q->v4.l4;
		l4off = qoff + sizeof(struct iphdr);
	} else {
		__u32 *a = (__u32 *)(src ? &q->v6.ip.saddr : &q->v6.ip.daddr);

		addr_diff = bpf_csum_diff(a, 16, (__u32 *)addr, 16, 0);
		__builtin_memcpy(a, addr, 16);
		l4 = q->v6.l4;
		l4off = qoff + sizeof(struct ipv6hdr);
	}
	/* ICMPv4's checksum has no pseudo-header. */
	l4_diff = qproto == SL_IPPROTO_ICMP ? 0 : addr_diff;
	if (qproto == SL_IPPROTO_TCP || qproto == SL_IPPROTO_UDP)
		pport = (__u16 *)(l4 + (src ? 0 : 2));
	else if (qproto == icmp_proto(p->family))
		pport = (__u16 *)(l4 + ICMP_ECHO_ID);
	if (pport && *pport != newport) {
		l4_diff = csum_fold((__u64)l4_diff + diff16(*pport, newport));
		*pport = newport;
	}
	if (qproto == SL_IPPROTO_TCP) {
		__u16 c, nc;

		if (!bpf_skb_load_bytes(skb, l4off + 16, &c, 2)) {
			nc = csum_apply(c, l4_diff);
			outer_diff = diff16(c, nc);
			if (bpf_skb_store_bytes(skb, l4off + 16, &nc, 2, 0))
				return -1;
		}
	} else if (csum == 2 || csum == 6) {
		__u16 *c = (__u16 *)(l4 + csum);

		if (!(qproto == SL_IPPROTO_UDP && !*c)) {
			*c = csum_apply(*c, l4_diff);
			if (qproto == SL_IPPROTO_UDP && !*c)
				*c = 0xffff;
		}
	}
	outer_diff = csum_fold((__u64)outer_diff +
			       bpf_csum_diff((__u32 *)&sc->old, qlen, (__u32 *)q, qlen, 0));
	if (bpf_skb_store_bytes(skb, qoff, q, qlen, 0) ||
	    bpf_l4_csum_replace(skb, p->l4 + 2, 0, outer_diff, 0))
		return -1;
	return 0;
}

/* An ICMP error quoting a translated flow (a packet sent after translation
 * in the original direction): SNAT flows (at ingress) get the outer
 * destination and the quoted source back, DNAT flows (at egress) the outer
 * source (when the translated host itself complains) and the quoted
 * destination. Returns 1 when translated, 0 when unrelated. */
static __noinline int nat_icmp_error(struct nat_pkt *p, bool snat, __u64 now)
{
	struct nat_key qk = { .family = p->family };
	__u32 qoff = p->l4 + 8, outer[4] = {};
	struct nat_scratch *sc = scratch();
	union quoted *q;
	struct nat_rev *r;
	__u32 addr[4];
	__u16 port;

	if (!sc)
		return 0;
	q = &sc->q;
	if (p->family == 4) {
		if (bpf_skb_load_bytes(p->skb, qoff, &q->v4, sizeof(q->v4)) ||
		    q->v4.ip.version != 4 || q->v4.ip.ihl != 5)
			return 0;
		qk.saddr[0] = q->v4.ip.saddr;
		qk.daddr[0] = q->v4.ip.daddr;
		qk.proto = q->v4.ip.protocol;
		key_ports(&qk, q->v4.l4);
	} else {
		if (bpf_skb_load_bytes(p->skb, qoff, &q->v6, sizeof(q->v6)) ||
		    q->v6.ip.version != 6)
			return 0;
		__builtin_memcpy(qk.saddr, &q->v6.ip.saddr, 16);
		__builtin_memcpy(qk.daddr, &q->v6.ip.daddr, 16);
		qk.proto = q->v6.ip.nexthdr;
		key_ports(&qk, q->v6.l4);
	}
	key_swap(&qk); /* the reply tuple: the reverse entry's key */
	r = bpf_map_lookup_elem(snat ? (void *)&nat_snat_rev : (void *)&nat_dnat_rev,
				&qk);
	if (!r || r->expires < now)
		return 0;
	__builtin_memcpy(addr, r->addr, 16);
	port = r->port;
	/* Quoted: SNAT changed its source, DNAT its destination. */
	if (icmp_err_inner(p, qk.proto, snat, addr, port))
		return -SL_DROP_MALFORMED_L4;
	/* Outer: the error went to the SNAT address, or came from the DNAT
	 * target; anything else (a router on the way) keeps its address. */
	if (snat) {
		__builtin_memcpy(outer, p->m->daddr, 16);
		if (addr_eq(outer, qk.daddr) && rewrite_addr(p, false, addr))
			return -SL_DROP_MALFORMED_L4;
		if (addr_eq(outer, qk.daddr))
			__builtin_memcpy(p->m->daddr, addr, 16);
	} else {
		__builtin_memcpy(outer, p->m->saddr, 16);
		if (addr_eq(outer, qk.saddr) && rewrite_addr(p, true, addr))
			return -SL_DROP_MALFORMED_L4;
		if (addr_eq(outer, qk.saddr))
			__builtin_memcpy(p->m->saddr, addr, 16);
	}
	return 1;
}

/* ---- entry ------------------------------------------------------------- */

/* The flow of the packet meta describes; false when NAT cannot apply (not
 * IP, a later fragment, an ICMP header too short). l4 holds the first 8
 * bytes of an ICMP header. */
static __always_inline bool flow_of(struct nat_flow *fl, const struct sl_meta *m,
				    const __u8 *l4, bool l4_ok)
{
	struct nat_key *k = &fl->k;
	__u32 zero = 0, *ep;
	__u8 family;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6)) || !(m->flags & SL_F_L4))
		return false; /* not IP, or a later fragment: no ports */
	family = m->flags & SL_F_IPV4 ? 4 : 6;
	k->family = family;
	k->proto = m->ip_proto;
	__builtin_memcpy(k->saddr, m->saddr, 16);
	__builtin_memcpy(k->daddr, m->daddr, 16);
	if (k->proto == SL_IPPROTO_TCP || k->proto == SL_IPPROTO_UDP) {
		k->sport = m->sport;
		k->dport = m->dport;
	} else if (k->proto == icmp_proto(family)) {
		if (!l4_ok)
			return false; /* shorter than an echo header */
		key_ports(k, l4);
	}
	fl->has_ports = k->proto == SL_IPPROTO_TCP || k->proto == SL_IPPROTO_UDP ||
			(k->proto == icmp_proto(family) &&
			 is_echo_req(family, m->icmp_type));
	fl->tcp_flags = m->tcp_flags;
	/* Lifetimes are in seconds: the tick's clock does (and costs no
	 * clock read per packet). */
	fl->now = bpf_ktime_get_coarse_ns();
	ep = bpf_map_lookup_elem(&nat_epoch, &zero);
	fl->epoch = ep ? *ep : 1;
	return true;
}

static __always_inline int nat_run(struct __sk_buff *skb, struct sl_meta *m)
{
	struct nat_pkt p = { .skb = skb, .m = m, .proto = m->ip_proto,
			     .l3 = m->l3_off, .l4 = m->l4_off };
	bool ingress = m->hook != SL_HOOK_TC_OUT;
	struct nat_flow fl = {};
	struct nat_xlat x;
	__u8 l4[8] = {};
	bool l4_ok;
	int ret;

	l4_ok = m->ip_proto == SL_IPPROTO_ICMP || m->ip_proto == SL_IPPROTO_ICMPV6 ?
		!bpf_skb_load_bytes(skb, p.l4, l4, sizeof(l4)) : true;
	if (!flow_of(&fl, m, l4, l4_ok))
		return SL_NEXT;
	p.family = fl.k.family;
	fl.ifindex = m->ifindex;

	/* Replies first: a reply is never a new flow. */
	ret = nat_reply(&fl, ingress, &x);
	if (ret)
		return rewrite(&p, &fl.k, !ingress, x.addr, x.port) ?: SL_NEXT;
	if (fl.k.proto == icmp_proto(p.family) &&
	    is_icmp_error(p.family, m->icmp_type)) {
		ret = nat_icmp_error(&p, ingress, fl.now);
		if (ret)
			return ret < 0 ? ret : SL_NEXT;
	}
	if (fl.k.proto == icmp_proto(p.family) &&
	    !is_echo_req(p.family, m->icmp_type))
		return SL_NEXT; /* other ICMP starts no flow */
	ret = nat_known(&fl, !ingress, false, &x, NULL);
	if (!ret)
		ret = nat_new(&fl, !ingress, &x);
	if (ret <= 0)
		return ret < 0 ? ret : SL_NEXT;
	return rewrite(&p, &fl.k, !ingress, x.addr, x.port) ?: SL_NEXT;
}

/* ---- XDP: the fast path ------------------------------------------------- */

/*
 * At XDP ingress, before the router NF, for packets the router will forward
 * itself (skipping the TC egress hook where SNAT normally runs):
 *   replies of SNAT and DNAT flows are translated back;
 *   originals get DNAT (a rule of the arriving interface), then, when the
 *   FIB names an egress interface, SNAT by a rule of that interface.
 * Nothing is rewritten unless bpf_fib_lookup succeeds for the translated
 * packet, exactly as the router will ask: what the kernel routes keeps the
 * TC path (a source rewritten to a local address would look spoofed to the
 * kernel's routing). Both paths share the maps, so a flow can move between
 * them. ICMP errors stay on the TC path.
 */

#define NAT_ETH_HLEN 14
#define NAT_AF_INET 2
#define NAT_AF_INET6 10

/* Offsets come from the root's parse; the mask makes their bounds visible
 * to the verifier (headers sit in the first 512 bytes). */
#define NAT_OFF_MASK 0x1ff

static __always_inline void *pkt_ptr(void *data, void *data_end, __u32 off,
				     __u32 len)
{
	void *p = data + (off & NAT_OFF_MASK);

	if (p + len > data_end)
		return NULL;
	return p;
}

/* bpf_fib_lookup for the packet with destination to (address, port),
 * filled as the router NF fills it (same refusals: VLAN tags, fragments,
 * TTL 1). Returns the lookup's result; 0 (success) names fib->ifindex. */
static __noinline int nat_fib(struct xdp_md *ctx, const struct sl_meta *m,
			      const struct nat_flow *fl, const struct nat_xlat *to,
			      struct bpf_fib_lookup *fib)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct nat_key *k = &fl->k;

	__builtin_memset(fib, 0, sizeof(*fib));
	if (m->l3_off != NAT_ETH_HLEN || (m->flags & SL_F_FRAG))
		return -1;
	fib->ifindex = m->ifindex;
	fib->l4_protocol = k->proto;
	fib->sport = bpf_htons(k->sport);
	fib->dport = bpf_htons(to->port);
	if (k->family == 4) {
		struct iphdr *ip = data + NAT_ETH_HLEN;

		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return -1;
		fib->family = NAT_AF_INET;
		fib->tos = ip->tos;
		fib->tot_len = bpf_ntohs(ip->tot_len);
		fib->ipv4_src = k->saddr[0];
		fib->ipv4_dst = to->addr[0];
	} else {
		struct ipv6hdr *ip6 = data + NAT_ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return -1;
		fib->family = NAT_AF_INET6;
		fib->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		fib->tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(fib->ipv6_src, k->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, to->addr, 16);
	}
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
}

/* One's complement sum of n 32-bit words changed from old to new (RFC
 * 1624), folded: what bpf_csum_diff computes, without the helper call. */
static __always_inline __u32 csum_words(const __u32 *old, const __u32 *new,
					int n)
{
	__u64 s = 0;

	for (int i = 0; i < n; i++)
		s += (__u64)(__u32)~old[i] + new[i];
	return csum_fold(s);
}

/* Rewrites the source (src) or destination address and port of the packet
 * whose tuple is k, with incremental checksums (RFC 1624): the IPv4 header's,
 * and the L4 one over the pseudo-header (not ICMPv4's), a zero UDP checksum
 * staying zero. Direct packet access; every header is found in the packet
 * before any byte is written: a short packet fails unchanged. */
static __noinline int xdp_rewrite(struct xdp_md *ctx, const struct sl_meta *m,
				  const struct nat_key *k, bool src,
				  const struct nat_xlat *x)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u16 oport = bpf_htons(src ? k->sport : k->dport);
	__u16 nport = bpf_htons(x->port);
	__u16 *check, *port;
	__u32 *addr, adiff;
	__u64 d;

	if (k->proto == SL_IPPROTO_TCP) {
		struct tcphdr *th = pkt_ptr(data, data_end, m->l4_off, sizeof(*th));

		if (!th)
			return -1;
		check = &th->check;
		port = src ? &th->source : &th->dest;
	} else if (k->proto == SL_IPPROTO_UDP) {
		struct udphdr *uh = pkt_ptr(data, data_end, m->l4_off, sizeof(*uh));

		if (!uh)
			return -1;
		check = &uh->check;
		port = src ? &uh->source : &uh->dest;
	} else if (k->proto == icmp_proto(k->family)) {
		__u8 *ih = pkt_ptr(data, data_end, m->l4_off, 8);

		if (!ih)
			return -1;
		check = (__u16 *)(ih + 2);
		port = (__u16 *)(ih + ICMP_ECHO_ID);
	} else {
		return -1; /* no ports: not a protocol NAT translates */
	}
	if (k->family == 4) {
		struct iphdr *ip = pkt_ptr(data, data_end, m->l3_off, sizeof(*ip));

		if (!ip)
			return -1;
		addr = src ? &ip->saddr : &ip->daddr;
		adiff = csum_words(addr, x->addr, 1);
		*addr = x->addr[0];
		ip->check = csum_apply(ip->check, adiff);
	} else {
		struct ipv6hdr *ip6 = pkt_ptr(data, data_end, m->l3_off, sizeof(*ip6));

		if (!ip6)
			return -1;
		addr = (__u32 *)(src ? &ip6->saddr : &ip6->daddr);
		adiff = csum_words(addr, x->addr, 4);
		__builtin_memcpy(addr, x->addr, 16);
	}
	/* ICMPv4's checksum has no pseudo-header. */
	d = k->proto == SL_IPPROTO_ICMP ? 0 : adiff;
	if (oport != nport) {
		d += (__u16)~oport + (__u32)nport;
		*port = nport;
	}
	if (k->proto == SL_IPPROTO_UDP && !*check)
		return 0; /* no checksum: it stays none */
	*check = csum_apply(*check, csum_fold(d));
	if (k->proto == SL_IPPROTO_UDP && !*check)
		*check = 0xffff;
	return 0;
}

/* Rewrites the packet and keeps meta in step for the NFs after this one
 * (the router reads the ports from meta). */
static __always_inline int xdp_apply(struct xdp_md *ctx, struct sl_meta *m,
				     const struct nat_key *k, bool src,
				     const struct nat_xlat *x)
{
	if (xdp_rewrite(ctx, m, k, src, x))
		return -SL_DROP_MALFORMED_L4;
	meta_set(m, k->proto, src, x->addr, x->port);
	return 0;
}

struct nat_cover {
	__u32 addr[4];
	__u8 family;
	bool hit;
};

/* Whether c->addr is one of the n addresses from lo (the range of a rule
 * or of a struct nat_cover_range). */
static __always_inline bool cover_hit(const __u32 *lo, __u32 n, __u8 family,
				      const struct nat_cover *c)
{
	__u32 a, l;

	if (family != c->family)
		return false;
	if (family == 4) {
		a = bpf_ntohl(c->addr[0]);
		l = bpf_ntohl(lo[0]);
	} else {
		if (c->addr[0] != lo[0] || c->addr[1] != lo[1] || c->addr[2] != lo[2])
			return false;
		a = bpf_ntohl(c->addr[3]);
		l = bpf_ntohl(lo[3]);
	}
	return a - l < (n ? n : 1);
}

static long nat_cover_one(__u32 i, void *arg)
{
	const struct nat_rule *r = bpf_map_lookup_elem(&nat_rules, &i);
	struct nat_cover *c = arg;

	if (!r)
		return 1;
	if (r->kind == NAT_DNAT || !cover_hit(r->to_lo, r->naddrs, r->family, c))
		return 0;
	c->hit = true;
	return 1;
}

/* Whether addr is an address some SNAT/masquerade rule translates to: only
 * then can the packet be an SNAT reply (a reload removes the mappings to
 * addresses no rule gives any more). The ranges of the first rules are in
 * nat_config: with few rules (the usual case) no loop at all; cheaper than
 * a hash lookup that misses the cache either way. */
static __always_inline bool snat_addr(const struct nat_config *cfg,
				      const struct nat_key *k)
{
	struct nat_cover c = { .family = k->family };

	__builtin_memcpy(c.addr, k->daddr, 16);
	if (cfg->ncover <= NAT_COVER_INLINE) {
		for (int i = 0; i < NAT_COVER_INLINE; i++) {
			const struct nat_cover_range *r = &cfg->cover[i];

			if (i < cfg->ncover && cover_hit(r->lo, r->n, r->family, &c))
				return true;
		}
		return false;
	}
	bpf_loop(cfg->nrules < NAT_MAX_RULES ? cfg->nrules : NAT_MAX_RULES,
		 nat_cover_one, &c, 0);
	return c.hit;
}

/* ---- the note in the conntrack entry ------------------------------------ */

/* The IPv4 table of the conntrack instance named "ct", when there is one
 * (the loader reuses it; this small one stands in otherwise): a
 * connection's entry there holds room for NAT (struct ct_nat_slot), so
 * that a packet conntrack has just looked up finds its source translation
 * in a cache line just read, not in a map of NAT's own. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 64);
	__type(key, struct ct_key4);
	__type(value, struct ct_entry);
} nat_ct SEC(".maps");

/* The conntrack key of an IPv4 TCP/UDP flow (conntrack.bpf.c, ct_key_fill:
 * the smaller endpoint first); returns the sender's endpoint. */
static __always_inline __u8 ct_key_of(const struct nat_key *k,
				      struct ct_key4 *ck)
{
	bool swap = k->saddr[0] != k->daddr[0] ? k->saddr[0] > k->daddr[0] :
						  k->sport > k->dport;

	__builtin_memset(ck, 0, sizeof(*ck));
	ck->proto = k->proto;
	if (swap) {
		ck->addr[0] = k->daddr[0];
		ck->addr[1] = k->saddr[0];
		ck->port[0] = k->dport;
		ck->port[1] = k->sport;
		return 1;
	}
	ck->addr[0] = k->saddr[0];
	ck->addr[1] = k->daddr[0];
	ck->port[0] = k->sport;
	ck->port[1] = k->dport;
	return 0;
}

/* The note as conntrack hands it on keeps the low 16 bits of the epoch
 * (struct ct_nat_slot): a note lives a second at most, far less than
 * 32,768 removals of mappings take. */
static __always_inline bool note_fresh(const struct sl_ct_nat_note *n,
				       const struct nat_flow *fl)
{
	return n->addr && n->ifindex == fl->ifindex &&
	       fl->now < n->fresh_until && n->epoch == (fl->epoch & 0xffff) &&
	       !(fl->epoch & 1) && !(fl->tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST));
}

/* SNAT of an original packet at XDP (a mapping of fl->ifindex, or a new
 * one): from the note conntrack handed on (sl_meta.ct_nat, from the
 * connection's entry) while that is fresh, else from NAT's maps, noting
 * the result in the entry. Returns 1 with the translation, 0 when no rule
 * applies, or a drop verdict. */
static __noinline int snat_xdp(const struct nat_flow *fl,
			       const struct sl_meta *m, struct nat_xlat *x)
{
	struct ct_nat_slot *note;
	struct nat_check c = {};
	struct ct_entry *e;
	struct ct_key4 ck;
	__u8 sender;
	int ret;

	if (note_fresh(&m->ct_nat, fl)) {
		__builtin_memset(x, 0, sizeof(*x));
		x->addr[0] = m->ct_nat.addr;
		x->port = m->ct_nat.port;
		return 1;
	}
	ret = nat_known(fl, true, true, x, &c);
	if (!ret)
		ret = nat_new(fl, true, x); /* noted from the next packet on */
	/* The note is made behind a conntrack that found or made the entry
	 * (else the lookup would miss, at the cost of a cache miss): once a
	 * second at most for a flow. */
	if (ret != 1 || !c.fresh_until || (c.epoch & 1) || fl->k.family != 4 ||
	    (fl->k.proto != SL_IPPROTO_TCP && fl->k.proto != SL_IPPROTO_UDP) ||
	    !(m->ct_state & (SL_CT_NEW | SL_CT_ESTABLISHED)))
		return ret;
	sender = ct_key_of(&fl->k, &ck);
	e = bpf_map_lookup_elem(&nat_ct, &ck);
	if (e) {
		note = &e->nat;
		note->addr = x->addr[0];
		note->port = x->port;
		note->epoch_sender = (c.epoch & 0xfffe) | sender;
		note->ifindex = c.ifindex;
		note->fresh = c.fresh_until >> CT_TIME_SHIFT;
	}
	return ret;
}

/* Hands the router after this NF the lookup done for the packet: the
 * route of the packet as the kernel would route it (before SNAT, after
 * DNAT), so the router does not look it up again. */
static __always_inline int fib_share(struct sl_meta *m,
				     const struct bpf_fib_lookup *fib, int ret)
{
	if (ret)
		return ret;
	m->fib_ifindex = fib->ifindex;
	__builtin_memcpy(m->fib_smac, fib->smac, 6);
	__builtin_memcpy(m->fib_dmac, fib->dmac, 6);
	return SL_NEXT;
}

/* The fast path's NAT; see above. */
static __always_inline int nat_xdp_run(struct xdp_md *ctx, struct sl_meta *m)
{
	struct bpf_fib_lookup fib;
	struct nat_flow fl = {};
	struct nat_xlat dx, sx, to;
	const struct nat_config *cfg;
	bool l4_ok, dnat, reply_snat, dnat_used;
	struct nat_flags *fg;
	__u8 l4[8] = {};
	__u32 zero = 0;
	int ret;

	l4_ok = m->ip_proto == SL_IPPROTO_ICMP || m->ip_proto == SL_IPPROTO_ICMPV6 ?
		!bpf_xdp_load_bytes(ctx, m->l4_off, l4, sizeof(l4)) : true;
	if (!flow_of(&fl, m, l4, l4_ok))
		return SL_NEXT;
	fl.ifindex = m->ifindex;
	__builtin_memcpy(to.addr, fl.k.daddr, 16);
	to.port = fl.k.dport;

	cfg = bpf_map_lookup_elem(&nat_config, &zero);
	fg = flags();
	if (!cfg || !fg)
		return -SL_DROP_NF_STATE;
	/* Lookups that would miss are skipped: no DNAT mapping was ever made,
	 * or the destination is no SNAT address. */
	dnat_used = fg->dnat_used;

	/* Replies: an SNAT reply gets its destination back (what TC ingress
	 * would do), a DNAT reply its source (TC egress would). */
	reply_snat = snat_addr(cfg, &fl.k) && nat_reply(&fl, true, &dx);
	if (reply_snat || (dnat_used && nat_reply(&fl, false, &sx))) {
		if (nat_fib(ctx, m, &fl, reply_snat ? &dx : &to, &fib))
			return SL_NEXT; /* the kernel's: the TC path translates */
		if (reply_snat)
			return fib_share(m, &fib, xdp_apply(ctx, m, &fl.k, false, &dx));
		return fib_share(m, &fib, xdp_apply(ctx, m, &fl.k, true, &sx));
	}
	if (fl.k.proto == icmp_proto(fl.k.family) &&
	    !is_echo_req(fl.k.family, m->icmp_type))
		return SL_NEXT; /* errors and other ICMP: the TC path */

	/* Originals: DNAT by a rule of the arriving interface (before
	 * routing, as at TC ingress), then the route, then SNAT. */
	ret = dnat_used ? nat_known(&fl, false, false, &dx, NULL) : 0;
	if (!ret && cfg->ndnat)
		ret = nat_new(&fl, false, &dx);
	if (ret < 0)
		return ret;
	dnat = ret;
	if (nat_fib(ctx, m, &fl, dnat ? &dx : &to, &fib))
		return SL_NEXT; /* TC ingress finds the DNAT mapping made */
	fl.ifindex = fib.ifindex;
	if (dnat) {
		ret = nat_known(&fl, true, true, &sx, NULL);
		if (!ret)
			ret = nat_new(&fl, true, &sx);
	} else {
		ret = snat_xdp(&fl, m, &sx);
	}
	if (ret < 0)
		return ret;
	if (dnat) {
		int err = xdp_apply(ctx, m, &fl.k, false, &dx);

		if (err)
			return err;
		/* SNAT's checksum diff starts from the packet as it is now. */
		__builtin_memcpy(fl.k.daddr, dx.addr, 16);
		fl.k.dport = dx.port;
	}
	if (ret)
		return fib_share(m, &fib, xdp_apply(ctx, m, &fl.k, true, &sx));
	return fib_share(m, &fib, 0);
}

SEC("xdp")
int nat_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);

	if (!m)
		return XDP_PASS;
	return sl_finish_xdp(ctx, m, nat_slot, nat_xdp_run(ctx, m));
}

SEC("tc")
int nat_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);

	if (!m)
		return SL_TCX_NEXT;
	return sl_finish_tc(skb, m, nat_slot, nat_run(skb, m));
}
