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

struct fw_scan {
	__u64 key[FW_DIMS];
	const struct fw_config *cfg;
	__u32 first;
	__u32 match; /* lowest matching rule index so far, or ~0 */
	__u8 tcp_flags;
	bool broken; /* a tree that does not end in a leaf */
	const struct fw_rule *rule;
};

static __always_inline int fw_in(const struct fw_rule *r, const __u64 *key,
				 int d)
{
	return key[d] >= r->lo[d] && key[d] <= r->hi[d];
}

static __always_inline int fw_rule_matches(const struct fw_rule *r,
					   const struct fw_scan *s)
{
	const __u64 *k = s->key;
	int src, dst;

	if (!fw_in(r, k, FW_DIM_FAMILY) || !fw_in(r, k, FW_DIM_PROTO) ||
	    !fw_in(r, k, FW_DIM_L4) || !fw_in(r, k, FW_DIM_SPORT) ||
	    !fw_in(r, k, FW_DIM_DPORT) || !fw_in(r, k, FW_DIM_ICMP_TYPE) ||
	    !fw_in(r, k, FW_DIM_IIF))
		return 0;
	src = fw_in(r, k, FW_DIM_SRC_HI) && fw_in(r, k, FW_DIM_SRC_LO);
	dst = fw_in(r, k, FW_DIM_DST_HI) && fw_in(r, k, FW_DIM_DST_LO);
	if (src == !!(r->neg & FW_NEG_SRC) || dst == !!(r->neg & FW_NEG_DST))
		return 0;
	return (s->tcp_flags & r->tcp_mask) == r->tcp_flags;
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
	r = bpf_map_lookup_elem(&fw_rules, idx);
	if (!r)
		return 1;
	if (!fw_rule_matches(r, s))
		return 0;
	s->match = *idx;
	s->rule = r;
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
	node = s->cfg->roots[t];
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

static __always_inline int firewall_run(struct sl_meta *m)
{
	struct fw_scan s = { .match = ~0U };
	const struct fw_config *cfg;
	__u32 zero = 0;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6)))
		return SL_NEXT;
	cfg = bpf_map_lookup_elem(&fw_config, &zero);
	if (!cfg)
		return -SL_DROP_NF_STATE;

	if (m->flags & SL_F_IPV4) {
		s.key[FW_DIM_FAMILY] = 4;
		s.key[FW_DIM_SRC_LO] = bpf_ntohl(m->saddr[0]);
		s.key[FW_DIM_DST_LO] = bpf_ntohl(m->daddr[0]);
	} else {
		s.key[FW_DIM_FAMILY] = 6;
		s.key[FW_DIM_SRC_HI] = fw_addr_hi(m->saddr);
		s.key[FW_DIM_SRC_LO] = fw_addr_lo(m->saddr);
		s.key[FW_DIM_DST_HI] = fw_addr_hi(m->daddr);
		s.key[FW_DIM_DST_LO] = fw_addr_lo(m->daddr);
	}
	s.key[FW_DIM_PROTO] = m->ip_proto;
	s.key[FW_DIM_L4] = !!(m->flags & SL_F_L4);
	s.key[FW_DIM_SPORT] = m->sport;
	s.key[FW_DIM_DPORT] = m->dport;
	s.key[FW_DIM_ICMP_TYPE] = m->icmp_type;
	s.key[FW_DIM_IIF] = m->ifindex;
	s.tcp_flags = m->tcp_flags;

	s.cfg = cfg;
	bpf_loop(cfg->ntrees < FW_MAX_TREES ? cfg->ntrees : FW_MAX_TREES,
		 fw_walk_tree, &s, 0);
	if (s.broken)
		return -SL_DROP_NF_STATE;
	if (s.rule) {
		fw_count(s.match, m->pkt_len);
		return s.rule->action == FW_DROP ? -SL_DROP_FW_RULE : SL_NEXT;
	}
	fw_count(cfg->nrules, m->pkt_len);
	return cfg->default_action == FW_DROP ? -SL_DROP_FW_POLICY : SL_NEXT;
}

SEC("xdp")
int firewall_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);

	if (!m)
		return XDP_PASS;
	return sl_finish_xdp(ctx, m, fw_slot, firewall_run(m));
}

SEC("tc")
int firewall_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);

	if (!m)
		return SL_TCX_NEXT;
	return sl_finish_tc(skb, m, fw_slot, firewall_run(m));
}
