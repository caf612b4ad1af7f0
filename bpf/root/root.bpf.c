// SPDX-License-Identifier: GPL-2.0
/* Root programs: one per hook. Each parses the packet once into sl_meta,
 * looks up the chain of the interface and hook, and tail-calls its first NF.
 * With no chain the packet goes on untouched. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "chains.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

/* Bytes of headers made linear at TC: Ethernet, VLANs, IPv6 with options. */
#define SL_TC_PULL 256

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_CHAIN_CACHE_SIZE);
	__type(key, __u32);
	__type(value, struct sl_chain_cached);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_chain_cache SEC(".maps");

_Static_assert(__builtin_offsetof(struct sl_meta, slots) % 8 == 0 &&
	       __builtin_offsetof(struct sl_chain_cached, slots) % 8 == 0 &&
	       sizeof(struct sl_meta) % 8 == 0 &&
	       __builtin_offsetof(struct sl_meta, ct_dir) ==
		       __builtin_offsetof(struct sl_meta, slots) +
			       sizeof(__u32) * SL_CHAIN_MAX,
	       "slots[]: 8-aligned; sl_meta: slots[] followed by ct_dir, whole words");

/* An unaligned u64: slots[] of an sl_chains entry sit at offset 4. */
typedef __u64 __attribute__((aligned(4))) sl_u64_a4;

#define root_barrier() asm volatile("" ::: "memory")

#define ROOT_META_TAIL __builtin_offsetof(struct sl_meta, ct_dir)

/* Zeroes meta but for slots[], which the chain fills, by whole words (a
 * memset of an offset pointer would be compiled to byte stores). Every
 * field after slots[] is zeroed, including any appended later. */
static __always_inline void root_meta_init(struct sl_meta *m, __u32 ifindex,
					   __u32 len, __u32 hook)
{
	__u64 *tail = (__u64 *)((void *)m + ROOT_META_TAIL);

	__builtin_memset(m, 0, __builtin_offsetof(struct sl_meta, slots));
#pragma unroll
	for (int i = 0; i < (sizeof(*m) - ROOT_META_TAIL) / 8; i++)
		tail[i] = 0;
	m->ifindex = ifindex;
	m->pkt_len = len;
	m->hook = hook;
}

/* Copies a chain's slots, two per word; from sl_chains (offset 4) each word
 * is read in two halves. */
static __always_inline void root_copy_slots(struct sl_meta *m,
					    const __u32 *slots)
{
	const sl_u64_a4 *from = (const sl_u64_a4 *)slots;
	__u64 *to = (__u64 *)m->slots;

#pragma unroll
	for (int i = 0; i < SL_CHAIN_MAX / 2; i++)
		to[i] = from[i];
}

/* From sl_chain_cache, where slots[] is 8-aligned: one load a word. */
static __always_inline void
root_copy_cached(struct sl_meta *m, volatile struct sl_chain_cached *c)
{
	volatile __u64 *from = (volatile __u64 *)c->slots;
	__u64 *to = (__u64 *)m->slots;

#pragma unroll
	for (int i = 0; i < SL_CHAIN_MAX / 2; i++)
		to[i] = from[i];
}

/* The chain from sl_chain_cache, read like a seqlock: the entry must carry
 * our tag and the same even seq before and after the reads (user space
 * writes it in three steps, see lib/chain.c; x86-64 keeps loads in order).
 * Returns 1 with meta filled, 0 when the chain ignores this kind of packet
 * (enum sl_ignore), -1 to ask sl_chains. */
static __always_inline int root_chain_cached(struct sl_meta *m, __u32 ifindex,
					     __u32 hook, __u32 pkt_len,
					     __u32 kind)
{
	__u32 idx = SL_CHAIN_CACHE_INDEX(ifindex, hook);
	volatile struct sl_chain_cached *c;
	__u32 seq, len;

	c = bpf_map_lookup_elem(&sl_chain_cache, &idx);
	if (!c)
		return -1;
	seq = c->seq;
	root_barrier();
	if ((seq & 1) || c->tag != ifindex)
		return -1;
	if (kind && (c->ignore & kind)) {
		root_barrier();
		return c->seq == seq ? 0 : -1;
	}
	len = c->len;
	root_copy_cached(m, c);
	root_barrier();
	if (!len || c->seq != seq)
		return -1;
	root_meta_init(m, ifindex, pkt_len, hook);
	m->chain_len = len;
	return 1;
}

/* The chain from sl_chains, when the cache cannot tell: out of line, as
 * it is rare (a chain being changed, two interfaces on one cache entry). */
static __noinline bool root_chain_lookup(struct sl_meta *m, __u32 ifindex,
					 __u32 hook, __u32 len, __u32 kind)
{
	struct sl_chain_key key = { .ifindex = ifindex, .hook = hook };
	struct sl_chain *chain = bpf_map_lookup_elem(&sl_chains, &key);

	if (!chain || (chain->ignore & kind))
		return false;
	root_meta_init(m, ifindex, len, hook);
	m->chain_len = chain->len;
	root_copy_slots(m, chain->slots);
	return true;
}

/* Fills meta for this packet; returns false when the interface and hook
 * have no chain, or when every NF of it ignores packets of this kind (enum
 * sl_ignore; 0: not known). */
static __always_inline bool root_prepare(struct sl_meta *m, __u32 ifindex,
					 __u32 hook, __u32 len, __u32 kind)
{
	int cached = root_chain_cached(m, ifindex, hook, len, kind);

	if (cached >= 0)
		return cached;
	return root_chain_lookup(m, ifindex, hook, len, kind);
}

/* Bytes from the frame's start that hold the headers sl_parse() reads in
 * the common case (Ethernet, IPv6, the ports): at most two cache lines. */
#define ROOT_TOUCH_LEN 58

/* A received frame was just written by another CPU (the sender, or the
 * NIC's DMA): the first read of its headers misses the cache, and live
 * that miss is the largest single cost of the root (~90 ns of a ~370 ns
 * forwarded packet, docs/pipeline.md). Reading both header lines first
 * starts the misses before the chain lookup and meta set-up, which then
 * run while the lines arrive instead of before the loads are issued. */
static __always_inline void root_touch(void *data, void *data_end)
{
	__u8 first, last;

	if (data + ROOT_TOUCH_LEN > data_end)
		return;
	first = *(volatile __u8 *)data;
	last = *(volatile __u8 *)(data + ROOT_TOUCH_LEN - 1);
	asm volatile("" : : "r"(first), "r"(last));
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sl_meta *m;
	int err;

	root_touch(data, data_end);
	m = sl_meta_get(SL_HOOK_XDP);
	if (!m || !root_prepare(m, ctx->ingress_ifindex, SL_HOOK_XDP,
				data_end - data, 0))
		return XDP_PASS;
	err = sl_parse(data, data_end, m);
	sl_observe_root(m);
	return sl_finish_xdp(ctx, m, 0, err < 0 ? err : SL_NEXT);
}

/* The kind of packet the chain may ignore (enum sl_ignore), or 0: none
 * while an observation session (trace, capture of all packets, path
 * policies) may want to see every packet go through the chain. */
static __always_inline __u32 root_tc_kind(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct sl_evcfg *ev = bpf_map_lookup_elem(&sl_evcfg, &zero);

	if (!ev || (ev->obs & (SL_OBS_CAPTURE_ALL | SL_OBS_TRACE |
			       SL_OBS_POLICY_WATCH)))
		return 0;
	return sl_peek_kind((void *)(long)skb->data,
			    (void *)(long)skb->data_end);
}

static __always_inline int root_tc(struct __sk_buff *skb, __u32 hook)
{
	struct sl_meta *m = sl_meta_get(hook);
	void *data, *data_end;
	int err;

	if (!m || !root_prepare(m, skb->ifindex, hook, skb->len,
				root_tc_kind(skb)))
		return SL_TCX_NEXT;
	/* Headers may sit in paged data; bring the first bytes in line. */
	if (skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < SL_TC_PULL ? skb->len : SL_TC_PULL);
	/* Keeps clang from reusing ctx + offset, which the verifier refuses. */
	asm volatile("" : "+r"(skb));
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	skb->cb[0] = hook;
	err = sl_parse(data, data_end, m);
	sl_observe_root(m);
	return sl_finish_tc(skb, m, 0, err < 0 ? err : SL_NEXT);
}

SEC("tc")
int sluice_tc_in(struct __sk_buff *skb)
{
	return root_tc(skb, SL_HOOK_TC_IN);
}

SEC("tc")
int sluice_tc_out(struct __sk_buff *skb)
{
	return root_tc(skb, SL_HOOK_TC_OUT);
}
