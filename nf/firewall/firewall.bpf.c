// SPDX-License-Identifier: GPL-2.0
/* Firewall NF: ordered accept/drop rules, first match wins, default policy.
 * Walks the decision tree built by firewall.c, then checks the leaf's
 * candidate rules in order. Non-IP packets go on untouched. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "firewall_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* The slot of this instance, set by the loader. */
const volatile __u32 fw_slot = 0;

/* Sizes are set by the loader to fit the rule set. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_rule);
} fw_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_node);
} fw_nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fw_leaves SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_counter);
} fw_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_config);
} fw_config SEC(".maps");

/* Token buckets of -m limit rules and prefixes of LOG rules (iptables). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_block);
} fw_blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_limit);
} fw_limits SEC(".maps");

struct fw_log_prefix {
	char text[FW_LOG_PREFIX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_log_prefix);
} fw_logs SEC(".maps");

struct fw_scan {
	__u64 key[FW_DIMS];
	__u32 first;
	__u32 min; /* resume point: candidates below it are behind us */
	__u32 match; /* lowest matching rule index so far, or ~0 */
	__u8 tcp_flags;
	__u8 ct_state;
	__u8 icmp_code;
	bool broken; /* a tree that does not end in a leaf */
	__u8 mac[6];
	__u32 ntrees;
	__u32 roots[FW_MAX_TREES];
};

static __always_inline int fw_in(const struct fw_rule *r, const __u64 *key,
				 int d)
{
	return key[d] >= r->lo[d] && key[d] <= r->hi[d];
}

/* The checks iptables rules add beyond the box. */
static __always_inline int fw_checks(const struct fw_rule *r,
				     const struct fw_scan *s)
{
	__u16 c = r->check;
	int ok;

	if (c & FW_CHK_CT) {
		ok = !!(s->ct_state & r->ct_mask);
		if (ok == !!(c & FW_CHK_CT_NEG))
			return 0;
	}
	if (c & FW_CHK_MAC) {
		ok = s->mac[0] == r->mac[0] && s->mac[1] == r->mac[1] &&
		     s->mac[2] == r->mac[2] && s->mac[3] == r->mac[3] &&
		     s->mac[4] == r->mac[4] && s->mac[5] == r->mac[5];
		if (ok == !!(c & FW_CHK_MAC_NEG))
			return 0;
	}
	if (c & FW_CHK_ICMP) {
		ok = s->key[FW_DIM_ICMP_TYPE] == r->icmp_type &&
		     s->icmp_code >= r->icmp_code_lo && s->icmp_code <= r->icmp_code_hi;
		if (ok == !!(c & FW_CHK_ICMP_NEG))
			return 0;
	}
	return 1;
}

static __always_inline int fw_rule_matches(const struct fw_rule *r,
					   const struct fw_scan *s)
{
	const __u64 *k = s->key;
	int src, dst;

	if (!fw_in(r, k, FW_DIM_FAMILY) || !fw_in(r, k, FW_DIM_PROTO) ||
	    !fw_in(r, k, FW_DIM_L4) || !fw_in(r, k, FW_DIM_SPORT) ||
	    !fw_in(r, k, FW_DIM_DPORT) || !fw_in(r, k, FW_DIM_ICMP_TYPE) ||
	    !fw_in(r, k, FW_DIM_IIF) || !fw_in(r, k, FW_DIM_BLOCK) ||
	    !fw_in(r, k, FW_DIM_OIF))
		return 0;
	src = fw_in(r, k, FW_DIM_SRC_HI) && fw_in(r, k, FW_DIM_SRC_LO);
	dst = fw_in(r, k, FW_DIM_DST_HI) && fw_in(r, k, FW_DIM_DST_LO);
	if (src == !!(r->neg & FW_NEG_SRC) || dst == !!(r->neg & FW_NEG_DST))
		return 0;
	if (((s->tcp_flags & r->tcp_mask) == r->tcp_flags) ==
	    !!(r->check & FW_CHK_TCP_NEG))
		return 0;
	return r->check ? fw_checks(r, s) : 1;
}

static long fw_scan_one(__u32 i, void *arg)
{
	struct fw_scan *s = arg;
	__u32 pos = s->first + i;
	const struct fw_rule *r;
	__u32 *idx;

	idx = bpf_map_lookup_elem(&fw_leaves, &pos);
	if (!idx || *idx >= s->match)
		return 1; /* candidates are in rule order: nothing better here */
	if (*idx < s->min)
		return 0;
	r = bpf_map_lookup_elem(&fw_rules, idx);
	if (!r)
		return 1;
	if (!fw_rule_matches(r, s))
		return 0;
	s->match = *idx;
	return 1;
}

/* Walks tree t down to its leaf, then scans the leaf's candidates. The
 * walks and scans are bpf_loop callbacks: the verifier checks each once,
 * which keeps loading fast whatever the depth and tree count. */
static long fw_walk_tree(__u32 t, void *arg)
{
	struct fw_scan *s = arg;
	const struct fw_node *n = NULL;
	__u32 node;
	int i;

	if (t >= FW_MAX_TREES)
		return 1;
	node = s->roots[t];
	for (i = 0; i < FW_MAX_DEPTH; i++) {
		__u32 d;

		n = bpf_map_lookup_elem(&fw_nodes, &node);
		if (!n)
			break;
		d = n->dim;
		if (d >= FW_DIMS)
			break;
		node = s->key[d] <= n->threshold ? n->left : n->right;
	}
	if (!n || n->dim < FW_DIMS) {
		s->broken = true; /* the builder never makes such a tree */
		return 1;
	}
	s->first = n->left;
	bpf_loop(n->right, fw_scan_one, s, 0);
	return 0;
}

/* One scan of every tree for the first rule of the key's block from
 * s->min on (s->match, or ~0). A global function: the verifier checks it
 * once, not once per round and caller. Returns -1 on a broken tree. */
__noinline int fw_scan_block(struct fw_scan *arg)
{
	struct fw_scan s;

	if (!arg)
		return -1;
	__builtin_memcpy(&s, arg, sizeof(s));
	s.match = ~0U;
	bpf_loop(s.ntrees < FW_MAX_TREES ? s.ntrees : FW_MAX_TREES,
		 fw_walk_tree, &s, 0);
	arg->match = s.match;
	return s.broken ? -1 : 0;
}

static __always_inline __u64 fw_addr_hi(const __u32 *a)
{
	return ((__u64)bpf_ntohl(a[0]) << 32) | bpf_ntohl(a[1]);
}

static __always_inline __u64 fw_addr_lo(const __u32 *a)
{
	return ((__u64)bpf_ntohl(a[2]) << 32) | bpf_ntohl(a[3]);
}

static __always_inline void fw_count(__u32 idx, __u32 len)
{
	struct fw_counter *c = bpf_map_lookup_elem(&fw_counters, &idx);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}

/* xt_limit's token bucket: credits accrue per elapsed tick up to the cap,
 * a packet takes cost. */
static __always_inline bool fw_limit_take(__u32 id)
{
	struct fw_limit *l = bpf_map_lookup_elem(&fw_limits, &id);
	__u64 now = bpf_ktime_get_ns() / FW_LIMIT_TICK_NS;
	bool ok = false;

	if (!l)
		return false;
	bpf_spin_lock(&l->lock);
	l->credit += (now - l->prev) * FW_LIMIT_CREDITS_PER_TICK;
	if (l->credit > l->credit_cap)
		l->credit = l->credit_cap;
	l->prev = now;
	if (l->credit >= l->cost) {
		l->credit -= l->cost;
		ok = true;
	}
	bpf_spin_unlock(&l->lock);
	return ok;
}

/* A LOG rule: an event with the rule's prefix and the packet's fields. */
static __always_inline void fw_log(struct sl_meta *m, const struct fw_rule *r)
{
	struct fw_log_prefix *p = bpf_map_lookup_elem(&fw_logs, &r->log);
	struct sl_event *e;

	if (!p)
		return;
	e = sl_event_drop_begin(m, fw_slot, 0);
	if (!e)
		return;
	e->type = SL_EVENT_LOG;
	e->reason = 0;
	e->cap_len = 0;
	__builtin_memcpy(e->data, p->text, FW_LOG_PREFIX);
	bpf_ringbuf_submit(e, 0);
}

/* Where the scan of a packet stands: the block and the resume point. */
struct fw_run {
	struct fw_scan s;
	struct sl_meta *m;
	__u32 block;
	__u32 pos;
	int verdict; /* set when the scan ends */
	__u32 len; /* bytes counted: the frame, or from L3 on as iptables does */
	__u32 done; /* 1 when the scan ended (a u32: callbacks return it & 1) */
	__u8 reject;
};

static __always_inline void fw_policy(struct fw_run *w, const struct fw_block *b)
{
	fw_count(b->policy_cnt, w->len);
	w->verdict = b->policy == FW_DROP ? -SL_DROP_FW_POLICY : SL_NEXT;
	w->done = 1;
}

/* Leaves the current block (its end, or RETURN): resume the parent. */
static __always_inline void fw_leave(struct fw_run *w)
{
	const struct fw_block *b = bpf_map_lookup_elem(&fw_blocks, &w->block);

	if (!b) {
		w->verdict = -SL_DROP_NF_STATE;
		w->done = 1;
		return;
	}
	if (b->parent == FW_NONE) {
		fw_policy(w, b);
		return;
	}
	w->pos = b->end;
	w->block = b->parent;
}

static __always_inline void fw_enter(struct fw_run *w, __u32 block)
{
	const struct fw_block *b = bpf_map_lookup_elem(&fw_blocks, &block);

	if (!b) {
		w->verdict = -SL_DROP_NF_STATE;
		w->done = 1;
		return;
	}
	w->block = block;
	w->pos = b->start;
}

/* One round: the first rule of the block from the resume point on. */
static long fw_round(__u32 i, void *arg)
{
	struct fw_run *w = arg;
	struct fw_scan *s = &w->s;
	const struct fw_rule *r;

	s->key[FW_DIM_BLOCK] = w->block;
	s->min = w->pos;
	if (fw_scan_block(s)) {
		s->broken = true;
		w->verdict = -SL_DROP_NF_STATE;
		return 1;
	}
	if (s->match == ~0U) {
		fw_leave(w);
		return w->done & 1;
	}
	r = bpf_map_lookup_elem(&fw_rules, &s->match);
	if (!r) {
		w->verdict = -SL_DROP_NF_STATE;
		w->done = 1;
		return 1;
	}
	if ((r->check & FW_CHK_LIMIT) && !fw_limit_take(r->limit)) {
		w->pos = r->next; /* over the limit: the rule does not match */
		return 0;
	}
	fw_count(r->cnt, w->len);
	switch (r->action) {
	case FW_ACCEPT:
		w->verdict = SL_NEXT;
		w->done = 1;
		break;
	case FW_DROP:
		w->verdict = -SL_DROP_FW_RULE;
		w->done = 1;
		break;
	case FW_REJECT:
		w->verdict = -SL_DROP_REJECT;
		w->reject = r->reject;
		w->done = 1;
		break;
	case FW_JUMP:
	case FW_GOTO:
		fw_enter(w, r->block);
		break;
	case FW_RETURN:
		fw_leave(w);
		break;
	default:
		if (r->check & FW_CHK_LOG)
			fw_log(w->m, r);
		w->pos = r->next;
	}
	return w->done & 1;
}

/* iptables: which built-in chain sees the packet, as netfilter would pick
 * it: at ingress a route lookup tells local delivery (INPUT) from
 * forwarding (FORWARD, to the route's interface); egress sees OUTPUT for
 * locally generated packets only. Returns FW_NONE when no chain applies. */
static __noinline __u32 fw_chain_of(void *ctx, struct sl_meta *m,
				    __u64 *oif, __u32 ingress_ifindex)
{
	struct bpf_fib_lookup p = {};
	long rc;

	if (m->hook == SL_HOOK_TC_OUT) {
		if (ingress_ifindex)
			return FW_NONE; /* forwarded: FORWARD saw it at ingress */
		*oif = m->ifindex;
		return FW_OUTPUT;
	}
	p.ifindex = m->ifindex;
	p.l4_protocol = m->ip_proto;
	p.sport = bpf_htons(m->sport);
	p.dport = bpf_htons(m->dport);
	if (m->flags & SL_F_IPV4) {
		p.family = 2; /* AF_INET */
		p.ipv4_src = m->saddr[0];
		p.ipv4_dst = m->daddr[0];
	} else {
		p.family = 10; /* AF_INET6 */
		__builtin_memcpy(p.ipv6_src, m->saddr, 16);
		__builtin_memcpy(p.ipv6_dst, m->daddr, 16);
	}
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		*oif = p.ifindex;
		return FW_FORWARD;
	case BPF_FIB_LKUP_RET_NOT_FWDED: /* local, broadcast, multicast */
	case BPF_FIB_LKUP_RET_FWD_DISABLED: /* a host: all it takes is local */
		return FW_INPUT;
	default: /* blackhole, unreachable...: dropped before any chain */
		return FW_NONE;
	}
}

static __always_inline int firewall_run(void *ctx, struct sl_meta *m,
					void *data, void *data_end,
					__u32 ingress_ifindex)
{
	struct fw_run w = { .s.match = ~0U };
	struct fw_scan *s = &w.s;
	const struct fw_config *cfg;
	__u32 zero = 0, top = 0;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6)))
		return SL_NEXT;
	cfg = bpf_map_lookup_elem(&fw_config, &zero);
	if (!cfg)
		return -SL_DROP_NF_STATE;

	if (m->flags & SL_F_IPV4) {
		s->key[FW_DIM_FAMILY] = 4;
		s->key[FW_DIM_SRC_LO] = bpf_ntohl(m->saddr[0]);
		s->key[FW_DIM_DST_LO] = bpf_ntohl(m->daddr[0]);
	} else {
		s->key[FW_DIM_FAMILY] = 6;
		s->key[FW_DIM_SRC_HI] = fw_addr_hi(m->saddr);
		s->key[FW_DIM_SRC_LO] = fw_addr_lo(m->saddr);
		s->key[FW_DIM_DST_HI] = fw_addr_hi(m->daddr);
		s->key[FW_DIM_DST_LO] = fw_addr_lo(m->daddr);
	}
	s->key[FW_DIM_PROTO] = m->ip_proto;
	s->key[FW_DIM_L4] = !!(m->flags & SL_F_L4);
	s->key[FW_DIM_SPORT] = m->sport;
	s->key[FW_DIM_DPORT] = m->dport;
	s->key[FW_DIM_ICMP_TYPE] = m->icmp_type;
	s->key[FW_DIM_IIF] = m->ifindex;
	s->tcp_flags = m->tcp_flags;
	s->ct_state = m->ct_state;
	s->icmp_code = m->icmp_code;
	if (data + 12 <= data_end)
		__builtin_memcpy(s->mac, data + 6, 6);
	s->ntrees = cfg->ntrees;
	__builtin_memcpy(s->roots, cfg->roots, sizeof(s->roots));
	w.m = m;
	w.len = m->pkt_len;

	if (cfg->mode == FW_MODE_IPTABLES) {
		__u32 chain = fw_chain_of(ctx, m, &s->key[FW_DIM_OIF],
					  ingress_ifindex);

		if (chain >= FW_CHAINS)
			return SL_NEXT;
		w.len = m->pkt_len - m->l3_off;
		if (chain == FW_OUTPUT)
			s->key[FW_DIM_IIF] = 0;
		top = cfg->top[!!(m->flags & SL_F_IPV6)][chain];
		if (top == FW_NONE)
			return SL_NEXT;
	}
	fw_enter(&w, top);
	if (!w.done)
		bpf_loop(FW_MAX_ROUNDS, fw_round, &w, 0);
	if (!w.done && !s->broken)
		return -SL_DROP_NF_STATE; /* deeper than the importer allows */
	if (s->broken)
		return -SL_DROP_NF_STATE;
	return w.verdict;
}

SEC("xdp")
int firewall_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (!m)
		return XDP_PASS;
	return sl_finish_xdp(ctx, m, fw_slot,
			     firewall_run(ctx, m, data, data_end, 0));
}

SEC("tc")
int firewall_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (!m)
		return SL_TCX_NEXT;
	return sl_finish_tc(skb, m, fw_slot,
			    firewall_run(skb, m, data, data_end,
					 skb->ingress_ifindex));
}
