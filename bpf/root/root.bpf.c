// SPDX-License-Identifier: GPL-2.0
/* Root programs: one per hook. Each parses the packet once into sl_meta,
 * looks up the chain of the interface and hook, and tail-calls its first NF.
 * With no chain the packet goes on untouched. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "parse.h"

char LICENSE[] SEC("license") = "GPL";

/* Bytes of headers made linear at TC: Ethernet, VLANs, IPv6 with options. */
#define SL_TC_PULL 256

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sl_chain_key);
	__type(value, struct sl_chain);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sl_chains SEC(".maps");

/* Fills meta for this packet; returns the chain, or NULL when none or when
 * every NF of it ignores packets of this kind (enum sl_ignore; 0: not
 * known). */
static __always_inline struct sl_chain *
root_prepare(struct sl_meta *m, __u32 ifindex, __u32 hook, __u32 len,
	     __u32 kind)
{
	struct sl_chain_key key = { .ifindex = ifindex, .hook = hook };
	struct sl_chain *chain = bpf_map_lookup_elem(&sl_chains, &key);

	if (!chain || (chain->ignore & kind))
		return NULL;
	__builtin_memset(m, 0, sizeof(*m));
	m->ifindex = ifindex;
	m->pkt_len = len;
	m->hook = hook;
	m->chain_len = chain->len;
	__builtin_memcpy(m->slots, chain->slots, sizeof(m->slots));
	return chain;
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	int err;

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
