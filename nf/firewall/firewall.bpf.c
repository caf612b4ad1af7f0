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
	__type(value, struct fw_snode);
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
	const struct fw_config *cfg; /* the trees' roots (fw_scan_block's copy) */
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
/* Test j of packed node n: 1 when the key goes right. */
static __always_inline __u32 fw_test(const struct fw_scan *s,
				     const struct fw_snode *n, __u32 j)
{
	__u32 d = n->dim[j];

	/* The builder writes dims below FW_DIMS: the bound is for the
	 * verifier. */
	return s->key[d < FW_DIMS ? d : 0] > n->thr[j];
}

static long fw_walk_tree(__u32 t, void *arg)
{
	struct fw_scan *s = arg;
	__u64 tree = t;
	__u32 node, child, k;
	int i;

	/* The bound checked on the register the load uses. */
	asm volatile("" : "+r"(tree));
	if (tree >= FW_MAX_TREES || !s->cfg)
		return 1;
	node = s->cfg->roots[tree];
	for (i = 0; i < FW_MAX_SDEPTH; i++) {
		const struct fw_snode *n = bpf_map_lookup_elem(&fw_nodes, &node);
		__u32 j;

		if (!n)
			break;
		j = 1 + fw_test(s, n, 0);
		j = 2 * j + 1 + fw_test(s, n, j);
		k = (2 * (j - 3) + fw_test(s, n, j)) & (FW_SN_CHILDREN - 1);
		child = n->child[k];
		if (child & FW_SN_LEAF) {
			s->first = child & ~FW_SN_LEAF;
			bpf_loop(n->cnt[k], fw_scan_one, s, 0);
			return 0;
		}
		node = child;
	}
	s->broken = true; /* the builder never makes such a tree */
	return 1;
}

/* One scan of every tree for the first rule of the key's block from
 * s->min on (s->match, or ~0). A global function: the verifier checks it
 * once, not once per round and caller. Its copy of the scan state is made
 * field by field, each as wide as it was written: a word-wide copy of
 * fields just stored in halves or bytes waits on store forwarding.
 * Returns -1 on a broken tree. */
__noinline int fw_scan_block(struct fw_scan *arg)
{
	struct fw_scan s;
	__u32 zero = 0, n;

	if (!arg)
		return -1;
	s.cfg = bpf_map_lookup_elem(&fw_config, &zero);
	if (!s.cfg)
		return -1;
#pragma unroll
	for (int d = 0; d < FW_DIMS; d++)
		s.key[d] = arg->key[d];
	s.first = 0;
	s.min = arg->min;
	s.match = ~0U;
	s.tcp_flags = arg->tcp_flags;
	s.ct_state = arg->ct_state;
	s.icmp_code = arg->icmp_code;
	s.broken = false;
#pragma unroll
	for (int i = 0; i < 6; i++)
		s.mac[i] = arg->mac[i];
	n = s.cfg->ntrees;
	bpf_loop(n < FW_MAX_TREES ? n : FW_MAX_TREES, fw_walk_tree, &s, 0);
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

/* A LOG rule: an event with the rule's prefix (in data[], cap_len 0) and
 * the packet's fields. */
static __always_inline void fw_log(struct sl_meta *m, const struct fw_rule *r)
{
	struct fw_log_prefix *p = bpf_map_lookup_elem(&fw_logs, &r->log);
	struct sl_event *e;

	if (!p)
		return;
	e = sl_event_begin(m, SL_EVENT_LOG, fw_slot, 0);
	if (!e)
		return;
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
	__u32 chain; /* iptables: the built-in chain */
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


/* ---- REJECT: the answer built in place of the frame, sent back ------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FW_MAX_IFINDEX);
	__type(key, __u32);
	__type(value, struct fw_ifaddr);
} fw_ifaddrs SEC(".maps");

#define FW_SCRATCH 1600 /* >= 3 * 512: checksums are summed 512 bytes at a time */

struct fw_scratch {
	__u8 buf[FW_SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fw_scratch);
} fw_scratch SEC(".maps");

static __always_inline __u16 fw_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* The Internet checksum of buf[0, len), len a multiple of 4 up to 1536. */
static __always_inline __u16 fw_csum(__u8 *buf, __u64 len)
{
	__u32 sum = 0;

	for (int k = 0; k < 3; k++) {
		__u64 chunk;

		if (len <= k * 512)
			break;
		chunk = len - k * 512;
		if (chunk > 512)
			chunk = 512;
		asm volatile("" : "+r"(chunk));
		chunk &= 0x3ff; /* a bound the verifier sees: [0, 512] already */
		sum = bpf_csum_diff(NULL, 0, (__be32 *)(buf + k * 512), chunk, sum);
	}
	return fw_fold(sum);
}

/* Zeroes the bytes after buf[0, len) up to the next multiple of 4. */
static __always_inline __u32 fw_pad4(__u8 *buf, __u32 len)
{
	if (len > FW_SCRATCH - 4)
		return 0;
	buf[len] = 0;
	buf[len + 1] = 0;
	buf[len + 2] = 0;
	return (len + 3) & ~3U;
}

static __always_inline int fw_swap_eth(void *data, void *end)
{
	struct ethhdr *eth = data;
	__u8 tmp[6];

	if ((void *)(eth + 1) > end)
		return -1;
	__builtin_memcpy(tmp, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, tmp, 6);
	return 0;
}

static __always_inline bool fw_v4_unicast(__u32 a)
{
	__u32 h = bpf_ntohl(a);

	return h && (h >> 28) != 0xe && h != 0xffffffff;
}

/* ICMP destination unreachable (code) for the IPv4 packet in the frame:
 * the frame grows by 28 bytes in front and keeps the packet's first
 * FW_QUOTE4 bytes. Returns 0 when the frame now holds the answer. */
static __always_inline int fw_icmp4(struct xdp_md *ctx, struct sl_meta *m,
				    __u8 code, __u32 src)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct fw_scratch *sc;
	struct iphdr *ip;
	__u8 *icmp, *buf;
	__u32 zero = 0, dst, len;
	__u64 olen, quote; /* 64 bits: no zero-extended copy for the checks */
	__u16 tot;

	ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > end)
		return -1;
	olen = bpf_ntohs(ip->tot_len);
	if (olen > end - (void *)ip)
		olen = end - (void *)ip;
	quote = olen < FW_QUOTE4 ? olen : FW_QUOTE4;
	/* Two checks the compiler cannot merge into one the verifier
	 * does not follow. */
	asm volatile("" : "+r"(quote));
	if (quote > FW_QUOTE4)
		return -1;
	asm volatile("" : "+r"(quote));
	if (quote < sizeof(*ip))
		return -1;
	dst = ip->saddr;
	sc = bpf_map_lookup_elem(&fw_scratch, &zero);
	if (!sc)
		return -1;
	buf = sc->buf;
	buf[0] = 3; /* destination unreachable */
	buf[1] = code;
	__builtin_memset(buf + 2, 0, 6);
	if (bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr), buf + 8, quote))
		return -1;
	len = fw_pad4(buf, 8 + quote);
	if (!len)
		return -1;
	if (bpf_xdp_adjust_head(ctx, -28))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(struct ethhdr) + 28 + quote) -
				     (int)(end - data)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + 28 > end)
		return -1;
	/* The Ethernet header moved 28 bytes down with the packet. */
	__builtin_memcpy(data, data + 28 + 6, 6);
	__builtin_memcpy(data + 6, data + 28, 6);
	*(__u16 *)(data + 12) = bpf_htons(0x0800);
	ip = data + sizeof(struct ethhdr);
	tot = 28 + quote;
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xc0; /* IPTOS_PREC_INTERNETCONTROL, as icmp_send */
	ip->tot_len = bpf_htons(tot);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = 1;
	ip->check = 0;
	ip->saddr = src;
	ip->daddr = dst;
	ip->check = fw_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
	icmp = (void *)(ip + 1);
	icmp[0] = 3;
	icmp[1] = code;
	*(__u16 *)(icmp + 2) = fw_csum(buf, len);
	*(__u32 *)(icmp + 4) = 0;
	return 0;
}

/* ICMPv6 destination unreachable (code) for the IPv6 packet in the frame:
 * 48 bytes in front, the packet's first FW_QUOTE6 bytes kept. */
static __always_inline int fw_icmp6(struct xdp_md *ctx, __u8 code, const __u8 *src)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct fw_scratch *sc;
	struct ipv6hdr *ip6;
	__u8 *icmp, *buf;
	__u32 zero = 0, len;
	__u64 olen, quote;

	ip6 = data + sizeof(struct ethhdr);
	if ((void *)(ip6 + 1) > end)
		return -1;
	olen = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	if (olen > end - (void *)ip6)
		olen = end - (void *)ip6;
	quote = olen < FW_QUOTE6 ? olen : FW_QUOTE6;
	/* Two checks the compiler cannot merge into one the verifier
	 * does not follow. */
	asm volatile("" : "+r"(quote));
	if (quote > FW_QUOTE6)
		return -1;
	asm volatile("" : "+r"(quote));
	if (quote < sizeof(*ip6))
		return -1;
	sc = bpf_map_lookup_elem(&fw_scratch, &zero);
	if (!sc)
		return -1;
	buf = sc->buf;
	/* Pseudo header: source, destination, length, next header. */
	__builtin_memcpy(buf, src, 16);
	__builtin_memcpy(buf + 16, &ip6->saddr, 16);
	*(__u32 *)(buf + 32) = bpf_htonl(8 + quote);
	*(__u32 *)(buf + 36) = bpf_htonl(58);
	buf[40] = 1; /* destination unreachable */
	buf[41] = code;
	__builtin_memset(buf + 42, 0, 6);
	if (bpf_xdp_load_bytes(ctx, sizeof(struct ethhdr), buf + 48, quote))
		return -1;
	len = fw_pad4(buf, 48 + quote);
	if (!len)
		return -1;
	if (bpf_xdp_adjust_head(ctx, -48))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(struct ethhdr) + 48 + quote) -
				     (int)(end - data)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(struct ethhdr) + 48 > end)
		return -1;
	__builtin_memcpy(data, data + 48 + 6, 6);
	__builtin_memcpy(data + 6, data + 48, 6);
	*(__u16 *)(data + 12) = bpf_htons(0x86DD);
	ip6 = data + sizeof(struct ethhdr);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(8 + quote);
	ip6->nexthdr = 58;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, buf, 16);
	__builtin_memcpy(&ip6->daddr, buf + 16, 16);
	icmp = (void *)(ip6 + 1);
	icmp[0] = 1;
	icmp[1] = code;
	*(__u16 *)(icmp + 2) = fw_csum(buf, len);
	*(__u32 *)(icmp + 4) = 0;
	return 0;
}

/* A TCP reset answering the segment in the frame, as nf_send_reset: the
 * frame becomes Ethernet + IP + a bare TCP header. */
static __always_inline int fw_rst(struct xdp_md *ctx, struct sl_meta *m, bool v6)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, seq, ack, plen, l4 = m->l4_off, iplen, hl;
	__u8 flags, saddr[16], daddr[16], *buf, *th;
	__u16 sport, dport, csum;
	struct fw_scratch *sc;

	if (l4 > 14 + 40 + 8 * 16 || l4 < 14 + 20)
		return -1;
	th = data + l4;
	if ((void *)(th + 20) > end)
		return -1;
	if (th[13] & 0x04)
		return -1; /* never a reset for a reset */
	sport = *(__u16 *)th;
	dport = *(__u16 *)(th + 2);
	seq = bpf_ntohl(*(__u32 *)(th + 4));
	ack = *(__u32 *)(th + 8);
	flags = th[13];
	hl = (th[12] >> 4) * 4;
	if (v6) {
		struct ipv6hdr *ip6 = data + 14;

		if ((void *)(ip6 + 1) > end)
			return -1;
		iplen = 40 + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(saddr, &ip6->daddr, 16);
		__builtin_memcpy(daddr, &ip6->saddr, 16);
	} else {
		struct iphdr *ip = data + 14;

		if ((void *)(ip + 1) > end)
			return -1;
		iplen = bpf_ntohs(ip->tot_len);
		__builtin_memcpy(saddr, &ip->daddr, 4);
		__builtin_memcpy(daddr, &ip->saddr, 4);
	}
	plen = iplen - (l4 - 14) - hl;
	if (iplen < (l4 - 14) + hl)
		return -1;
	sc = bpf_map_lookup_elem(&fw_scratch, &zero);
	if (!sc)
		return -1;
	buf = sc->buf;
	/* Pseudo header then the TCP header, in the scratch buffer. */
	__builtin_memset(buf, 0, 64);
	if (v6) {
		__builtin_memcpy(buf, saddr, 16);
		__builtin_memcpy(buf + 16, daddr, 16);
		*(__u32 *)(buf + 32) = bpf_htonl(20);
		*(__u32 *)(buf + 36) = bpf_htonl(6);
		th = buf + 40;
	} else {
		__builtin_memcpy(buf, saddr, 4);
		__builtin_memcpy(buf + 4, daddr, 4);
		buf[9] = 6;
		buf[11] = 20;
		th = buf + 12;
	}
	*(__u16 *)th = dport;
	*(__u16 *)(th + 2) = sport;
	if (flags & 0x10) { /* ACK: the reset takes its sequence number */
		*(__u32 *)(th + 4) = ack;
		th[13] = 0x04;
	} else {
		*(__u32 *)(th + 8) = bpf_htonl(seq + plen + !!(flags & 0x02) +
					       !!(flags & 0x01));
		th[13] = 0x14;
	}
	th[12] = 5 << 4;
	csum = fw_csum(buf, v6 ? 60 : 32);
	*(__u16 *)(th + 16) = csum;

	if (bpf_xdp_adjust_tail(ctx, (int)(14 + (v6 ? 40 : 20) + 20) - (int)(end - data)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + 14 + 60 > end && v6)
		return -1;
	if (data + 14 + 40 > end)
		return -1;
	if (fw_swap_eth(data, end))
		return -1;
	if (v6) {
		struct ipv6hdr *ip6 = data + 14;

		if (data + 14 + 60 > end)
			return -1;
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(20);
		ip6->nexthdr = 6;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, saddr, 16);
		__builtin_memcpy(&ip6->daddr, daddr, 16);
		__builtin_memcpy(data + 14 + 40, buf + 40, 20);
	} else {
		struct iphdr *ip = data + 14;

		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(40);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000); /* DF, as nf_send_reset */
		ip->ttl = 64;
		ip->protocol = 6;
		ip->check = 0;
		__builtin_memcpy(&ip->saddr, saddr, 4);
		__builtin_memcpy(&ip->daddr, daddr, 4);
		ip->check = fw_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, 20, 0));
		__builtin_memcpy(data + 14 + 20, buf + 12, 20);
	}
	return 0;
}

/* The ICMP code of each IPv4 --reject-with type. */
static __always_inline int fw_icmp4_code(__u32 type)
{
	switch (type) {
	case FW_REJ_ICMP_NET_UNREACH: return 0;
	case FW_REJ_ICMP_HOST_UNREACH: return 1;
	case FW_REJ_ICMP_PROTO_UNREACH: return 2;
	case FW_REJ_ICMP_PORT_UNREACH: return 3;
	case FW_REJ_ICMP_NET_PROHIB: return 9;
	case FW_REJ_ICMP_HOST_PROHIB: return 10;
	case FW_REJ_ICMP_ADMIN_PROHIB: return 13;
	default: return -1;
	}
}

/* Whether the kernel's REJECT answers a packet of this protocol: it first
 * verifies the L4 checksum, which only TCP, UDP and the family's ICMP
 * pass (we assume them valid); it skips the check for protocols with
 * optional or other integrity checks; any other protocol fails it. */
static __always_inline bool fw_answerable(bool v6, __u8 proto)
{
	switch (proto) {
	case 6: case 17: /* TCP, UDP */
		return true;
	case 1:
		return !v6;
	case 58:
		return v6;
	case 47: case 50: case 51: case 132: case 136: case 33:
		return true; /* GRE, ESP, AH, SCTP, UDP-Lite, DCCP: not checked */
	default:
		return false;
	}
}

/* Builds the REJECT answer in place of the frame when the kernel would
 * send one (not for later fragments, ICMP errors, multicast...). Returns
 * 0 when the frame is to go back out (XDP_TX). */
static __noinline int fw_reject(struct xdp_md *ctx, struct sl_meta *m,
				__u32 type, __u32 chain)
{
	struct fw_ifaddr *ia;
	__u32 ifindex = m->ifindex;

	if (m->l3_off != sizeof(struct ethhdr))
		return -1; /* VLAN-tagged: not answered */
	ia = bpf_map_lookup_elem(&fw_ifaddrs, &ifindex);
	if (type == FW_REJ_TCP_RESET) {
		if (m->ip_proto != 6 || !(m->flags & SL_F_L4))
			return -1;
		if (m->flags & SL_F_IPV4) {
			if (!fw_v4_unicast(m->saddr[0]) || !fw_v4_unicast(m->daddr[0]))
				return -1;
			return fw_rst(ctx, m, false);
		}
		if (((__u8 *)m->saddr)[0] == 0xff || ((__u8 *)m->daddr)[0] == 0xff)
			return -1;
		return fw_rst(ctx, m, true);
	}
	if (m->flags & SL_F_IPV4) {
		__u32 src = chain == FW_INPUT ? m->daddr[0] : (ia ? ia->v4 : 0);

		int code = fw_icmp4_code(type);

		if (code < 0 || !src)
			return -1;
		if (!(m->flags & SL_F_L4) || !fw_answerable(false, m->ip_proto))
			return -1; /* only fragment 0 is answered */
		if (!fw_v4_unicast(m->saddr[0]) || !fw_v4_unicast(m->daddr[0]))
			return -1;
		/* No error about an error: the kernel's icmp_pointers[] marks
		 * types 1-7, 11 and 12 as errors and treats unknown ones (> 18)
		 * as errors too; router advertisements and solicitations (9,
		 * 10) get no answer either (seen in the differential soak). */
		if (m->ip_proto == 1 && (m->icmp_type > 18 ||
					 (m->icmp_type >= 1 && m->icmp_type <= 7) ||
					 (m->icmp_type >= 9 && m->icmp_type <= 12)))
			return -1;
		return fw_icmp4(ctx, m, code, src);
	}
	__u8 code;

	switch (type) {
	case FW_REJ_ICMP6_NO_ROUTE: code = 0; break;
	case FW_REJ_ICMP6_ADM_PROHIB: code = 1; break;
	case FW_REJ_ICMP6_ADDR_UNREACH: code = 3; break;
	case FW_REJ_ICMP6_PORT_UNREACH: code = 4; break;
	default: return -1;
	}
	if (((__u8 *)m->daddr)[0] == 0xff || ((__u8 *)m->saddr)[0] == 0xff)
		return -1;
	if (!(m->flags & SL_F_L4) || !fw_answerable(true, m->ip_proto))
		return -1; /* a later fragment: nf_send_unreach6 stays silent */
	if (m->ip_proto == 58 && m->icmp_type < 128)
		return -1; /* no error about an error (or a later fragment) */
	if (chain == FW_INPUT)
		return fw_icmp6(ctx, code, (const __u8 *)m->daddr);
	if (!ia || !(ia->v6[0] | ia->v6[1] | ia->v6[15]))
		return -1;
	return fw_icmp6(ctx, code, ia->v6);
}

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Route decisions of IPv4 packets that went to no chain or to INPUT,
 * cached per CPU by (ingress interface, destination) and tagged with the
 * namespace's rt_genid: the generation the kernel bumps (rt_cache_flush)
 * on every change of routes, rules, addresses, links or the forwarding
 * sysctls, and with which it invalidates its own cached routes. Only
 * decisions the route lookup takes from the destination alone are kept:
 * no policy routing rules (they may look at the source, marks, ports),
 * and no forwarded packet (a multipath route picks its path from the
 * source and ports). */
struct fw_route_slot {
	__u32 dst;
	__u32 ifindex;
	__u32 genid;
	__u32 chain;
};

#define FW_ROUTE_SLOTS 256

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FW_ROUTE_SLOTS);
	__type(key, __u32);
	__type(value, struct fw_route_slot);
} fw_routes SEC(".maps");

static __always_inline struct net *fw_xdp_net(struct xdp_md *ctx)
{
	struct xdp_buff *x = bpf_cast_to_kern_ctx(ctx);

	return x->rxq->dev->nd_net.net;
}

static __always_inline __u32 fw_route_slot_of(__u32 dst, __u32 ifindex)
{
	__u32 h = (dst ^ (ifindex << 16)) * 0x9e3779b1U;

	return h >> 24; /* FW_ROUTE_SLOTS */
}

/* The route lookup of fw_chain_of, out of line; fills slot (when not
 * NULL) with a decision taken from the destination alone. */
static __noinline __u32 fw_route_lookup(void *ctx, struct sl_meta *m, __u64 *oif,
					struct fw_route_slot *slot, __u32 genid)
{
	struct bpf_fib_lookup p = {};
	__u32 chain;
	long rc;

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
	case BPF_FIB_LKUP_RET_UNSUPP_LWT: /* after the multipath choice */
		return FW_NONE;
	case BPF_FIB_LKUP_RET_NOT_FWDED: /* local, broadcast, multicast */
	case BPF_FIB_LKUP_RET_FWD_DISABLED: /* a host: all it takes is local */
		chain = FW_INPUT;
		break;
	default: /* blackhole, unreachable...: dropped before any chain */
		chain = FW_NONE;
	}
	if (slot) {
		slot->dst = m->daddr[0];
		slot->ifindex = m->ifindex;
		slot->genid = genid;
		slot->chain = chain;
	}
	return chain;
}

/* iptables: which built-in chain sees the packet, as netfilter would pick
 * it: at ingress a route lookup tells local delivery (INPUT) from
 * forwarding (FORWARD, to the route's interface); egress sees OUTPUT for
 * locally generated packets only. Returns FW_NONE when no chain applies.
 * net (XDP only, or NULL) lets IPv4 decisions come from fw_routes. */
static __always_inline __u32 fw_chain_of(void *ctx, struct sl_meta *m,
					 __u64 *oif, __u32 ingress_ifindex,
					 struct net *net)
{
	struct fw_route_slot *slot = NULL;
	__u32 genid = 0;

	if (m->hook == SL_HOOK_TC_OUT) {
		if (ingress_ifindex)
			return FW_NONE; /* forwarded: FORWARD saw it at ingress */
		*oif = m->ifindex;
		return FW_OUTPUT;
	}
	if (net && (m->flags & SL_F_IPV4)) {
		__u32 idx = fw_route_slot_of(m->daddr[0], m->ifindex);

		/* Read before the lookup: a change during it bumps it. */
		genid = net->ipv4.rt_genid.counter;
		slot = bpf_map_lookup_elem(&fw_routes, &idx);
		if (slot && slot->genid == genid && slot->dst == m->daddr[0] &&
		    slot->ifindex == m->ifindex)
			return slot->chain == FW_INPUT ? FW_INPUT : FW_NONE;
		if (net->ipv4.fib_has_custom_rules)
			slot = NULL;
	}
	return fw_route_lookup(ctx, m, oif, slot, genid);
}

struct fw_answer {
	__u32 reject; /* enum fw_reject; 0: none */
	__u32 chain;
};

static __always_inline int firewall_run(void *ctx, struct sl_meta *m,
					void *data, void *data_end,
					__u32 ingress_ifindex, struct net *net,
					struct fw_answer *ans)
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
	w.m = m;
	w.len = m->pkt_len;

	if (cfg->mode == FW_MODE_IPTABLES) {
		__u32 chain = fw_chain_of(ctx, m, &s->key[FW_DIM_OIF],
					  ingress_ifindex, net);

		if (chain >= FW_CHAINS)
			return SL_NEXT;
		w.len = m->pkt_len - m->l3_off;
		if (chain == FW_OUTPUT)
			s->key[FW_DIM_IIF] = 0;
		w.chain = chain;
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
	ans->reject = w.reject;
	ans->chain = w.chain;
	return w.verdict;
}

SEC("xdp")
int firewall_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fw_answer ans = {};
	int verdict;

	if (!m)
		return XDP_PASS;
	verdict = firewall_run(ctx, m, data, data_end, 0, fw_xdp_net(ctx), &ans);
	if (verdict == -SL_DROP_REJECT && ans.reject &&
	    !fw_reject(ctx, m, ans.reject, ans.chain)) {
		/* Counted as a drop (rejected); the answer goes back. */
		sl_account(m, fw_slot, verdict);
		if (ans.reject == FW_REJ_TCP_RESET)
			sl_ct_close_xdp(ctx, m, XDP_TX);
		else
			sl_ct_undo_xdp(ctx, m, XDP_TX);
		return XDP_TX;
	}
	return sl_finish_xdp(ctx, m, fw_slot, verdict);
}

SEC("tc")
int firewall_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct fw_answer ans = {};

	if (!m)
		return SL_TCX_NEXT;
	/* REJECT answers are built at XDP only: the importer refuses REJECT
	 * where only TC sees the packet (OUTPUT). */
	return sl_finish_tc(skb, m, fw_slot,
			    firewall_run(skb, m, data, data_end,
					 skb->ingress_ifindex, NULL, &ans));
}
