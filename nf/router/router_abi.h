/* SPDX-License-Identifier: GPL-2.0 */
/* Router NF: structures shared between its BPF program and control code. */
#ifndef SLUICE_ROUTER_ABI_H
#define SLUICE_ROUTER_ABI_H

/* Per-CPU counters of an instance: what it forwarded itself and why it left
 * the other packets to the kernel. */
struct rt_stats {
	/* FIB hit: MACs rewritten, TTL lowered, redirected. Not counted here
	 * by the BPF side: rt_stats_read() fills it from the instance's
	 * redirected count (struct sl_nf_stats), kept once per packet. */
	__u64 forwarded;
	__u64 local; /* for this host (or forwarding off here): the kernel's */
	__u64 no_neigh; /* next hop not resolved yet: the kernel resolves it */
	__u64 frag_needed; /* larger than the egress MTU: the kernel answers */
	__u64 ttl_expired; /* TTL/hop limit <= 1: the kernel answers */
	__u64 unroutable; /* blackhole, unreachable, prohibit: the kernel's */
	__u64 other; /* not IP, VLAN-tagged, fragments */
};

#endif
