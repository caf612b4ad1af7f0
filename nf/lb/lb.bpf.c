// SPDX-License-Identifier: GPL-2.0
/* L4 load balancer NF. A packet to a virtual service gets a backend (the
 * flow's, or a new one from the service's table), then is forwarded by the
 * backend's mode: NAT (destination rewritten; the reply's source rewritten
 * back to the VIP when it crosses the LB), IP-in-IP encapsulation or a MAC
 * rewrite toward the backend on the same L2 (DSR: replies bypass the LB).
 * Everything else goes on untouched. The decision is shared by XDP and TC;
 * each hook has its own packet rewrite (TC through the skb helpers, which
 * keep partial checksums right). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "lb_abi.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 lb_slot = 0;

#define LB_AF_INET 2
#define LB_AF_INET6 10
#define LB_IPPROTO_IPIP 4
#define LB_IPPROTO_IPV6 41
#define LB_ETH_ALEN 6
#define LB_ETH_HLEN 14
#define LB_L2_MAX 22 /* Ethernet and two VLAN tags */
#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_ACK 0x10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_svc);
} lb_svcs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_be);
} lb_backends SEC(".maps");

/* Inner tables differ in size (BPF_F_INNER_MAP): M for Maglev, the
 * sequence length for rr/wrr. */
struct lb_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_TABLES);
	__type(key, __u32);
	__array(values, struct lb_table);
} lb_tables SEC(".maps");

/* Round-robin position per service, per CPU: no atomics on the fast path;
 * each CPU walks the whole sequence, so the spread stays by weight. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
} lb_rr SEC(".maps");

/* Shared (not per-CPU) LRU: a flow's packets may arrive on any CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_FLOWS);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_flow);
} lb_flows SEC(".maps");

/* Real server endpoint -> the NAT backend whose flows' reply entries wait
 * for their first reply (lb_abi.h); written by the control plane. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, struct lb_vip_key);
	__type(value, struct lb_nat_owner);
} lb_nat_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct lb_counters);
} lb_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct lb_counters);
} lb_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_state);
} lb_state SEC(".maps");

enum lb_action {
	LB_NONE, /* not ours: next NF */
	LB_DECAP, /* IP-in-IP to strip (backend side of an IPIP service) */
	LB_FORWARD, /* to backend be */
	LB_REPLY, /* NAT reply: source becomes vip:vport */
};

struct lb_plan {
	__u8 action;
	__u8 family;
	__u16 vport;
	__u32 vip[4];
	struct lb_be *be;
};

static __always_inline void lb_count(void *map, __u32 id, __u32 len, bool in,
				     bool conn)
{
	struct lb_counters *c = bpf_map_lookup_elem(map, &id);

	if (!c)
		return;
	if (in) {
		c->pkts_in++;
		c->bytes_in += len;
	} else {
		c->pkts_out++;
		c->bytes_out += len;
	}
	if (conn)
		c->conns++;
}

/* Picks the table entry for a new flow: hashed for Maglev, next in turn
 * otherwise. Returns the backend id, 0 when none. */
static __always_inline __u32 lb_pick(const struct lb_svc *svc,
				     const struct lb_flow_key *fk)
{
	__u32 tid = svc->table_id, len = svc->table_len, idx, *id;
	void *table;

	if (!len)
		return 0;
	table = bpf_map_lookup_elem(&lb_tables, &tid);
	if (!table)
		return 0;
	if (svc->sched == LB_SCHED_MH) {
		idx = lb_flow_hash(fk) % len;
	} else {
		__u32 sid = svc->id, *pos = bpf_map_lookup_elem(&lb_rr, &sid);

		if (!pos)
			return 0;
		idx = *pos % len;
		*pos = idx + 1;
	}
	id = bpf_map_lookup_elem(table, &idx);
	return id ? *id : 0;
}

/* Records the reply path of a NAT connection (reply tuple rk): its
 * source goes back to vip:vport. */
static __always_inline void lb_remember_reply(const struct lb_flow_key *rk,
					      const __u32 *vip, __u16 vport,
					      __u32 svc_id, __u32 id)
{
	struct lb_flow rn = { .kind = LB_FLOW_REPLY, .vport = vport,
			      .svc_id = svc_id, .backend = id };

	__builtin_memcpy(rn.vip, vip, sizeof(rn.vip));
	bpf_map_update_elem(&lb_flows, rk, &rn, BPF_ANY);
}

/* Records a new flow on backend id. Its NAT reply entry too, unless the
 * backend is lazy: then the first reply records it (lb_lazy_reply), so a
 * new flow costs one LRU insert, not two. */
static __always_inline void lb_remember(const struct lb_flow_key *fk,
					__u32 svc_id, __u32 id,
					const struct lb_be *be)
{
	struct lb_flow f = { .backend = id, .gen = be->gen, .svc_id = svc_id };
	struct lb_flow_key rk = {};

	bpf_map_update_elem(&lb_flows, fk, &f, BPF_ANY);
	if (be->fwd != LB_FWD_NAT || (be->flags & LB_BE_LAZY))
		return;
	__builtin_memcpy(rk.saddr, be->addr, sizeof(rk.saddr));
	__builtin_memcpy(rk.daddr, fk->saddr, sizeof(rk.daddr));
	rk.sport = be->port;
	rk.dport = fk->sport;
	rk.proto = fk->proto;
	rk.family = fk->family;
	lb_remember_reply(&rk, fk->daddr, fk->dport, svc_id, id);
}

/* TCP reusing a 5-tuple (clients closing with RST or quickly after FIN
 * do): a SYN on a flow that was closing or reset is a new connection and
 * is scheduled afresh (as IPVS's conn_reuse_mode). Notes FIN and RST. */
static __always_inline bool lb_tcp_reused(const struct sl_meta *m,
					  struct lb_flow *f)
{
	__u8 fl = m->tcp_flags;

	if (m->ip_proto != IPPROTO_TCP)
		return false;
	if ((fl & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN)
		return f->closing;
	if (fl & (LB_TCP_FIN | LB_TCP_RST))
		f->closing = 1;
	return false;
}

/* The backend of an established flow, or NULL when the flow must be
 * scheduled again: its backend id went to another backend, its service
 * was removed, or TCP opens a new connection on a closed flow's tuple. */
static __always_inline struct lb_be *lb_flow_backend(const struct sl_meta *m,
						     struct lb_flow *f)
{
	__u32 id = f->backend;
	struct lb_be *be = bpf_map_lookup_elem(&lb_backends, &id);

	if (!be || be->gen != f->gen || (be->flags & LB_BE_GONE))
		return NULL;
	if (lb_tcp_reused(m, f))
		return NULL;
	return be;
}

/* A new flow to a service: a backend from its table, remembered. */
static __always_inline struct lb_be *lb_schedule(const struct sl_meta *m,
						 const struct lb_flow_key *fk,
						 __u32 *idp, __u32 *svc_idp)
{
	struct lb_vip_key vk = {};
	struct lb_svc *svc;
	struct lb_be *be;
	__u32 id;

	*svc_idp = 0;
	__builtin_memcpy(vk.addr, fk->daddr, sizeof(vk.addr));
	vk.port = fk->dport;
	vk.proto = fk->proto;
	vk.family = fk->family;
	svc = bpf_map_lookup_elem(&lb_svcs, &vk);
	if (!svc)
		return NULL;
	*svc_idp = svc->id;
	id = lb_pick(svc, fk);
	be = id ? bpf_map_lookup_elem(&lb_backends, &id) : NULL;
	if (!be || !(be->flags & LB_BE_LIVE)) {
		*idp = 0;
		return NULL;
	}
	lb_remember(fk, svc->id, id, be);
	*idp = id;
	return be;
}

/* A NAT reply: its source becomes vip:vport; counted out. */
static __always_inline void lb_reply_plan(struct sl_meta *m, struct lb_plan *p,
					  const __u32 *vip, __u16 vport,
					  __u32 svc_id, __u32 id)
{
	p->action = LB_REPLY;
	__builtin_memcpy(p->vip, vip, sizeof(p->vip));
	p->vport = vport;
	lb_count(&lb_svc_stats, svc_id, m->pkt_len, false, false);
	lb_count(&lb_be_stats, id, m->pkt_len, false, false);
}

/* A packet with no flow entry and no service: the first reply of a lazy
 * backend's flow? Its source is the owner's endpoint and the forward flow
 * it answers (client, VIP:port) is on that backend: then it is planned as
 * a reply and its entry recorded. Returns whether it was one. */
static __always_inline bool lb_lazy_reply(struct sl_meta *m, struct lb_plan *p,
					  const struct lb_flow_key *rk)
{
	struct lb_flow_key fk = {};
	struct lb_vip_key ek = {};
	struct lb_nat_owner *o;
	struct lb_flow *f;
	struct lb_be *be;
	__u32 id, svc_id;

	__builtin_memcpy(ek.addr, rk->saddr, sizeof(ek.addr));
	ek.port = rk->sport;
	ek.proto = rk->proto;
	ek.family = rk->family;
	o = bpf_map_lookup_elem(&lb_nat_owners, &ek);
	if (!o)
		return false;
	__builtin_memcpy(fk.saddr, rk->daddr, sizeof(fk.saddr));
	__builtin_memcpy(fk.daddr, o->vip, sizeof(fk.daddr));
	fk.sport = rk->dport;
	fk.dport = o->vport;
	fk.proto = rk->proto;
	fk.family = rk->family;
	f = bpf_map_lookup_elem(&lb_flows, &fk);
	if (!f || f->kind != LB_FLOW_FWD || f->backend != o->backend ||
	    f->gen != o->gen)
		return false;
	id = f->backend;
	svc_id = f->svc_id;
	be = bpf_map_lookup_elem(&lb_backends, &id);
	if (!be || be->gen != o->gen || (be->flags & LB_BE_GONE))
		return false;
	lb_remember_reply(rk, fk.daddr, fk.dport, svc_id, id);
	lb_reply_plan(m, p, fk.daddr, fk.dport, svc_id, id);
	return true;
}

/* Decides what happens to the packet; returns a negative drop reason or 0
 * with the plan filled. A packet of a known flow (either direction) costs
 * one flow-table lookup; only the first packet of a flow looks for its
 * service (and the first reply of a lazy backend's flow for its owner). */
static __always_inline int lb_decide(struct sl_meta *m, struct lb_plan *p)
{
	struct lb_flow_key fk = {};
	struct lb_be *be = NULL;
	struct lb_flow *f;
	__u32 id = 0, svc_id = 0;
	bool is_new = false;

	p->action = LB_NONE;
	p->be = NULL; /* the verifier follows every action with this slot */
	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6)) || !(m->flags & SL_F_L4) ||
	    (m->flags & SL_F_FRAG))
		return 0;
	fk.family = m->flags & SL_F_IPV4 ? 4 : 6;
	p->family = fk.family;
	if ((fk.family == 4 && m->ip_proto == LB_IPPROTO_IPIP) ||
	    (fk.family == 6 && m->ip_proto == LB_IPPROTO_IPV6)) {
		__u32 zero = 0;
		struct lb_state *st = bpf_map_lookup_elem(&lb_state, &zero);

		if (st && st->decap)
			p->action = LB_DECAP;
		return 0;
	}
	if (m->ip_proto != IPPROTO_TCP && m->ip_proto != IPPROTO_UDP)
		return 0;
	__builtin_memcpy(fk.saddr, m->saddr, sizeof(fk.saddr));
	__builtin_memcpy(fk.daddr, m->daddr, sizeof(fk.daddr));
	fk.sport = m->sport;
	fk.dport = m->dport;
	fk.proto = m->ip_proto;

	f = bpf_map_lookup_elem(&lb_flows, &fk);
	if (f && f->kind == LB_FLOW_REPLY) {
		lb_reply_plan(m, p, f->vip, f->vport, f->svc_id, f->backend);
		return 0;
	}
	if (f) {
		be = lb_flow_backend(m, f);
		id = f->backend;
		svc_id = f->svc_id;
	}
	if (!be) {
		be = lb_schedule(m, &fk, &id, &svc_id);
		if (!be && !svc_id)
			lb_lazy_reply(m, p, &fk);
		if (!be)
			return svc_id ? -SL_DROP_LB_NO_BACKEND : 0;
		is_new = true;
	}
	lb_count(&lb_svc_stats, svc_id, m->pkt_len, true, is_new);
	lb_count(&lb_be_stats, id, m->pkt_len, true, is_new);
	m->lb_backend = id;
	p->action = LB_FORWARD;
	p->be = be;
	return 0;
}

/* ---- checksums --------------------------------------------------------- */

static __always_inline __u16 lb_csum_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* One's-complement sum of the change from -> to (n words), to add to an
 * unfolded checksum (RFC 1624: HC' = ~(~HC + ~m + m')). */
static __always_inline __u64 lb_csum_delta(const __u32 *from, const __u32 *to,
					   int n)
{
	__u64 s = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (i >= n)
			break;
		s += (__u32)~from[i];
		s += to[i];
	}
	return s;
}

static __always_inline void lb_csum_apply(__u16 *csum, __u64 delta)
{
	*csum = ~lb_csum_fold((__u16)~*csum + delta);
}

/* ---- forwarding by the LB itself (lb forward on) ------------------------ */

/* A NAT packet, rewritten, leaves as the router NF would send it: FIB and
 * neighbour lookup, TTL or hop limit lowered, MACs rewritten, redirect;
 * the router's own run is saved. What the FIB cannot finish (local
 * delivery, no neighbour, TTL expiry, MTU, no route, VLAN tags) goes on
 * unchanged to the next NF or the kernel. */
static __always_inline bool lb_forward_on(void)
{
	__u32 zero = 0;
	struct lb_state *st = bpf_map_lookup_elem(&lb_state, &zero);

	return st && st->forward;
}

static __always_inline int lb_route(void *ctx, struct sl_meta *m, void *data,
				    void *data_end)
{
	struct ethhdr *eth = data;
	struct bpf_fib_lookup fib;
	struct ipv6hdr *ip6;
	struct iphdr *ip;
	int rc;

	if (m->l3_off != LB_ETH_HLEN || (void *)(eth + 1) > data_end)
		return SL_NEXT;
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.ifindex = m->ifindex;
	fib.l4_protocol = m->ip_proto;
	fib.sport = bpf_htons(m->sport);
	fib.dport = bpf_htons(m->dport);
	ip = data + LB_ETH_HLEN;
	ip6 = data + LB_ETH_HLEN;
	if (m->flags & SL_F_IPV4) {
		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return SL_NEXT;
		fib.family = LB_AF_INET;
		fib.tos = ip->tos;
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
	} else {
		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return SL_NEXT;
		fib.family = LB_AF_INET6;
		fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		fib.tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return SL_NEXT;
	if (m->flags & SL_F_IPV4) {
		/* RFC 1624: the TTL is the high byte of its 16-bit word. */
		__u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);

		ip->check = (__u16)(sum + (sum >> 16));
		ip->ttl--;
	} else {
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, LB_ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, LB_ETH_ALEN);
	m->redirect_ifindex = fib.ifindex;
	return SL_REDIRECT;
}

static __always_inline int lb_xdp_route(struct xdp_md *ctx, struct sl_meta *m)
{
	if (!lb_forward_on())
		return SL_NEXT;
	return lb_route(ctx, m, (void *)(long)ctx->data,
			(void *)(long)ctx->data_end);
}

static __always_inline int lb_tc_route(struct __sk_buff *skb, struct sl_meta *m)
{
	if (m->hook != SL_HOOK_TC_IN || !lb_forward_on())
		return SL_NEXT;
	return lb_route(skb, m, (void *)(long)skb->data,
			(void *)(long)skb->data_end);
}

/* ---- XDP rewrites ------------------------------------------------------ */

/* Rewrites the source (src) or destination address and port of the
 * packet to addr:port (host-order port), with every checksum updated. */
static __always_inline int lb_xdp_nat(struct xdp_md *ctx, struct sl_meta *m,
				      bool src, const __u32 *addr, __u16 port)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l3 = m->l3_off, l4 = m->l4_off, old[4] = {};
	__u16 *csum = NULL, *portp, oldport, newport = bpf_htons(port);
	__u64 delta;
	__u8 *ports;

	if (l3 > 256 || l4 > 512)
		return -SL_DROP_MALFORMED_L3;
	ports = data + l4;
	if ((void *)(ports + 8) > data_end)
		return -SL_DROP_MALFORMED_L4;
	if (m->ip_proto == IPPROTO_TCP) {
		if ((void *)(ports + 18) > data_end)
			return -SL_DROP_MALFORMED_L4;
		csum = (__u16 *)(ports + 16);
	} else if (*(__u16 *)(ports + 6)) {
		csum = (__u16 *)(ports + 6); /* UDP over IPv4 may carry none */
	}
	portp = (__u16 *)(ports + (src ? 0 : 2));

	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = data + l3;
		__u32 *a;

		if ((void *)(ip + 1) > data_end)
			return -SL_DROP_MALFORMED_L3;
		a = src ? &ip->saddr : &ip->daddr;
		old[0] = *a;
		*a = addr[0];
		delta = lb_csum_delta(old, addr, 1);
		lb_csum_apply(&ip->check, delta);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		__u32 *a;

		if ((void *)(ip6 + 1) > data_end)
			return -SL_DROP_MALFORMED_L3;
		a = src ? (__u32 *)&ip6->saddr : (__u32 *)&ip6->daddr;
		__builtin_memcpy(old, a, 16);
		__builtin_memcpy(a, addr, 16);
		delta = lb_csum_delta(old, addr, 4);
	}
	oldport = *portp;
	*portp = newport;
	if (csum) {
		delta += (__u16)~oldport;
		delta += newport;
		lb_csum_apply(csum, delta);
		if (m->ip_proto == IPPROTO_UDP && !*csum)
			*csum = 0xffff;
	}
	return 0;
}

/* Writes an outer IPv4 header at ip: protocol proto, inner length len. */
static __always_inline void lb_ip4_outer(struct iphdr *ip, const struct lb_be *be,
					 __u8 proto, __u16 len)
{
	__u16 *w = (__u16 *)ip;
	__u32 s = 0;
	int i;

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(len + sizeof(*ip));
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = be->local[0];
	ip->daddr = be->addr[0];
	for (i = 0; i < 10; i++)
		s += w[i];
	ip->check = ~lb_csum_fold(s);
}

static __always_inline void lb_ip6_outer(struct ipv6hdr *ip6,
					 const struct lb_be *be, __u8 proto,
					 __u16 len)
{
	__builtin_memset(ip6, 0, sizeof(*ip6));
	ip6->version = 6;
	ip6->payload_len = bpf_htons(len);
	ip6->nexthdr = proto;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, be->local, 16);
	__builtin_memcpy(&ip6->daddr, be->addr, 16);
}

/* Inner IP packet length from its header. */
static __always_inline int lb_inner_len(void *data, void *data_end,
					struct sl_meta *m)
{
	struct ipv6hdr *ip6 = data + (m->l3_off & 0x1ff);
	struct iphdr *ip = data + (m->l3_off & 0x1ff);

	if (m->flags & SL_F_IPV4) {
		if ((void *)(ip + 1) > data_end)
			return -1;
		return bpf_ntohs(ip->tot_len);
	}
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	return bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
}

/* Same-L2 DSR: the frame goes to the backend's MAC, out of the interface
 * the kernel's FIB and neighbour table name for the backend address
 * (bpf_fib_lookup answers on interfaces with forwarding enabled). */
static __always_inline int lb_fib_fill(struct bpf_fib_lookup *fib,
				       struct sl_meta *m, const struct lb_be *be)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = m->ifindex;
	fib->l4_protocol = m->ip_proto;
	fib->sport = bpf_htons(m->sport);
	fib->dport = bpf_htons(be->port);
	fib->tot_len = m->pkt_len - m->l3_off;
	if (be->family == 4) {
		fib->family = LB_AF_INET;
		fib->ipv4_src = m->saddr[0];
		fib->ipv4_dst = be->addr[0];
	} else {
		fib->family = LB_AF_INET6;
		__builtin_memcpy(fib->ipv6_src, m->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, be->addr, 16);
	}
	return 0;
}

static __always_inline int lb_xdp_mac(struct xdp_md *ctx, struct sl_meta *m,
				      const struct lb_be *be)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib;
	struct ethhdr *eth = data;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return -SL_DROP_MALFORMED_L2;
	lb_fib_fill(&fib, m, be);
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return -SL_DROP_REDIRECT_FAILED;
	__builtin_memcpy(eth->h_dest, fib.dmac, LB_ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, LB_ETH_ALEN);
	m->redirect_ifindex = fib.ifindex;
	return SL_REDIRECT;
}

/* IP-in-IP: room for an outer header in front of the inner one (the L2
 * header moves up), outer destination the backend, protocol 4 or 41, then
 * out to the backend's MAC as in MAC mode (the outer source is one of this
 * host's addresses, which its own stack would take for a martian). */
static __always_inline int lb_xdp_ipip(struct xdp_md *ctx, struct sl_meta *m,
				       const struct lb_be *be)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int olen = m->flags & SL_F_IPV4 ? sizeof(struct iphdr) :
					  sizeof(struct ipv6hdr);
	__u32 l2 = m->l3_off;
	int inner = lb_inner_len(data, data_end, m), i, verdict;
	__u8 *src, *dst, *ohdr;

	if (inner < 0 || l2 > LB_L2_MAX || inner > 0xffff - olen)
		return -SL_DROP_MALFORMED_L3;
	if (bpf_xdp_adjust_head(ctx, -olen))
		return -SL_DROP_ENCAP_FAILED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	dst = data;
	src = data + olen;
	if ((void *)(src + LB_L2_MAX) > data_end)
		return -SL_DROP_ENCAP_FAILED;
	/* Forward copy: dst is below src, so overlapping bytes are safe. */
	for (i = 0; i < LB_L2_MAX; i++)
		if (i < l2)
			dst[i] = src[i];
	ohdr = dst + (l2 & 0x1f);
	if (m->flags & SL_F_IPV4) {
		if ((void *)(ohdr + sizeof(struct iphdr)) > data_end)
			return -SL_DROP_ENCAP_FAILED;
		lb_ip4_outer((void *)ohdr, be, LB_IPPROTO_IPIP, inner);
	} else {
		if ((void *)(ohdr + sizeof(struct ipv6hdr)) > data_end)
			return -SL_DROP_ENCAP_FAILED;
		lb_ip6_outer((void *)ohdr, be, LB_IPPROTO_IPV6, inner);
	}
	m->pkt_len += olen;
	verdict = lb_xdp_mac(ctx, m, be);
	/* meta keeps describing the inner flow, now further in. */
	m->l3_off += olen;
	m->l4_off += olen;
	return verdict;
}

/* Outer header length of an IP-in-IP packet: 20 or 40, or 0 when it
 * carries options or extension headers (not ours to strip). */
static __always_inline __u32 lb_outer_len(const struct sl_meta *m)
{
	__u32 olen = m->l4_off - m->l3_off;

	if (m->flags & SL_F_IPV4)
		return olen == sizeof(struct iphdr) ? sizeof(struct iphdr) : 0;
	return olen == sizeof(struct ipv6hdr) ? sizeof(struct ipv6hdr) : 0;
}

/* Strips the outer header: the L2 header moves down over it and the
 * inner packet goes to the kernel (the chain ends: meta described the
 * outer packet). */
static __always_inline int lb_xdp_decap(struct xdp_md *ctx, struct sl_meta *m)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 olen = lb_outer_len(m), l2 = m->l3_off;
	__u8 *src = data, *dst;
	int i;

	if (!olen || olen > sizeof(struct ipv6hdr) || l2 > LB_L2_MAX)
		return SL_NEXT;
	dst = data + olen;
	if ((void *)(dst + LB_L2_MAX) > data_end)
		return SL_NEXT;
	/* Backward copy: dst is above src. */
	for (i = LB_L2_MAX - 1; i >= 0; i--)
		if (i < l2)
			dst[i] = src[i];
	if (bpf_xdp_adjust_head(ctx, olen))
		return -SL_DROP_ENCAP_FAILED;
	return SL_PASS;
}

static __always_inline int lb_xdp_apply(struct xdp_md *ctx, struct sl_meta *m,
					const struct lb_plan *p)
{
	const struct lb_be *be = p->be;
	int err;

	if (p->action == LB_DECAP)
		return lb_xdp_decap(ctx, m);
	if (p->action == LB_REPLY) {
		err = lb_xdp_nat(ctx, m, true, p->vip, p->vport);
		if (err)
			return err;
		__builtin_memcpy(m->saddr, p->vip, sizeof(m->saddr));
		m->sport = p->vport;
		return lb_xdp_route(ctx, m);
	}
	if (p->action != LB_FORWARD || !be)
		return SL_NEXT;
	if (be->fwd == LB_FWD_IPIP)
		return lb_xdp_ipip(ctx, m, be);
	if (be->fwd == LB_FWD_MAC)
		return lb_xdp_mac(ctx, m, be);
	err = lb_xdp_nat(ctx, m, false, be->addr, be->port);
	if (err)
		return err;
	__builtin_memcpy(m->daddr, be->addr, sizeof(m->daddr));
	m->dport = be->port;
	return lb_xdp_route(ctx, m);
}

SEC("xdp")
int lb_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	struct lb_plan p;
	int verdict;

	if (!m)
		return XDP_PASS;
	verdict = lb_decide(m, &p);
	if (!verdict)
		verdict = lb_xdp_apply(ctx, m, &p);
	return sl_finish_xdp(ctx, m, lb_slot, verdict);
}

/* ---- TC rewrites ------------------------------------------------------- */

#define LB_F_PSEUDO_HDR (1ULL << 4)
#define LB_F_MARK_MANGLED_0 (1ULL << 5)

static __always_inline int lb_tc_nat(struct __sk_buff *skb, struct sl_meta *m,
				     bool src, const __u32 *addr, __u16 port)
{
	__u32 l3 = m->l3_off, l4 = m->l4_off, old[4] = {}, aoff, csum_off;
	__u16 oldport, newport = bpf_htons(port);
	__u64 l4flags = LB_F_PSEUDO_HDR;
	int alen, diff;

	if (m->ip_proto == IPPROTO_TCP) {
		csum_off = l4 + 16;
	} else {
		csum_off = l4 + 6;
		l4flags |= LB_F_MARK_MANGLED_0;
	}
	if (m->flags & SL_F_IPV4) {
		alen = 4;
		aoff = l3 + (src ? 12 : 16);
	} else {
		alen = 16;
		aoff = l3 + (src ? 8 : 24);
	}
	if (bpf_skb_load_bytes(skb, aoff, old, alen & 0x1f) ||
	    bpf_skb_load_bytes(skb, l4 + (src ? 0 : 2), &oldport, 2))
		return -SL_DROP_MALFORMED_L4;
	diff = bpf_csum_diff(old, alen & 0x1f, (__u32 *)addr, alen & 0x1f, 0);
	/* Addresses are in the pseudo-header (a partial checksum covers
	 * them), ports are not: the helpers handle both cases. */
	if (bpf_l4_csum_replace(skb, csum_off, 0, diff, l4flags) ||
	    bpf_l4_csum_replace(skb, csum_off, oldport, newport,
				(l4flags & ~LB_F_PSEUDO_HDR) | 2))
		return -SL_DROP_MALFORMED_L4;
	if (alen == 4 && bpf_l3_csum_replace(skb, l3 + 10, old[0], addr[0], 4))
		return -SL_DROP_MALFORMED_L3;
	if (bpf_skb_store_bytes(skb, aoff, (void *)addr, alen & 0x1f, 0) ||
	    bpf_skb_store_bytes(skb, l4 + (src ? 0 : 2), &newport, 2, 0))
		return -SL_DROP_MALFORMED_L4;
	return 0;
}

static __always_inline int lb_tc_mac(struct __sk_buff *skb, struct sl_meta *m,
				     const struct lb_be *be)
{
	struct bpf_fib_lookup fib;
	int rc;

	lb_fib_fill(&fib, m, be);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return -SL_DROP_REDIRECT_FAILED;
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, LB_ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, LB_ETH_ALEN, fib.smac, LB_ETH_ALEN, 0))
		return -SL_DROP_MALFORMED_L2;
	m->redirect_ifindex = fib.ifindex;
	return SL_REDIRECT;
}

static __always_inline int lb_tc_ipip(struct __sk_buff *skb, struct sl_meta *m,
				      const struct lb_be *be)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	int inner = lb_inner_len(data, data_end, m);
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;
	union {
		struct iphdr ip;
		struct ipv6hdr ip6;
	} outer;
	int olen, verdict;

	if (inner < 0)
		return -SL_DROP_MALFORMED_L3;
	if (m->flags & SL_F_IPV4) {
		olen = sizeof(struct iphdr);
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
		lb_ip4_outer(&outer.ip, be, LB_IPPROTO_IPIP, inner);
	} else {
		olen = sizeof(struct ipv6hdr);
		flags |= BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
		lb_ip6_outer(&outer.ip6, be, LB_IPPROTO_IPV6, inner);
	}
	if (bpf_skb_adjust_room(skb, olen, BPF_ADJ_ROOM_MAC, flags))
		return -SL_DROP_ENCAP_FAILED;
	if (bpf_skb_store_bytes(skb, m->l3_off, &outer, olen, 0))
		return -SL_DROP_ENCAP_FAILED;
	m->pkt_len += olen;
	verdict = lb_tc_mac(skb, m, be);
	m->l3_off += olen;
	m->l4_off += olen;
	return verdict;
}

static __always_inline int lb_tc_apply(struct __sk_buff *skb, struct sl_meta *m,
				       const struct lb_plan *p)
{
	const struct lb_be *be = p->be;
	int err;

	if (p->action == LB_DECAP) {
		__u32 olen = lb_outer_len(m);

		if (!olen)
			return SL_NEXT;
		if (bpf_skb_adjust_room(skb, -(int)olen, BPF_ADJ_ROOM_MAC, 0))
			return -SL_DROP_ENCAP_FAILED;
		return SL_PASS;
	}
	if (p->action == LB_REPLY) {
		err = lb_tc_nat(skb, m, true, p->vip, p->vport);
		if (err)
			return err;
		__builtin_memcpy(m->saddr, p->vip, sizeof(m->saddr));
		m->sport = p->vport;
		return lb_tc_route(skb, m);
	}
	if (p->action != LB_FORWARD || !be)
		return SL_NEXT;
	if (be->fwd == LB_FWD_IPIP)
		return lb_tc_ipip(skb, m, be);
	if (be->fwd == LB_FWD_MAC)
		return lb_tc_mac(skb, m, be);
	err = lb_tc_nat(skb, m, false, be->addr, be->port);
	if (err)
		return err;
	__builtin_memcpy(m->daddr, be->addr, sizeof(m->daddr));
	m->dport = be->port;
	return lb_tc_route(skb, m);
}

SEC("tc")
int lb_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);
	struct lb_plan p;
	int verdict;

	if (!m)
		return SL_TCX_NEXT;
	verdict = lb_decide(m, &p);
	if (!verdict)
		verdict = lb_tc_apply(skb, m, &p);
	return sl_finish_tc(skb, m, lb_slot, verdict);
}
