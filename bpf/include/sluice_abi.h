/* SPDX-License-Identifier: GPL-2.0 */
/* Structures of the pipeline shared between BPF and user space. */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#include "drop_reasons.h"
#include "events.h"

/* Tail-call slots per hook type. Slot 0 is the root program itself (its
 * counters), so NF instances take slots 1..SL_MAX_SLOTS-1. */
#define SL_MAX_SLOTS 1024
/* NFs in one chain: far below the kernel's 33 tail calls. */
#define SL_CHAIN_MAX 16
#define SL_NAME_MAX 32

enum sl_hook {
	SL_HOOK_XDP = 0, /* ingress, XDP */
	SL_HOOK_TC_IN = 1, /* ingress, TC (after GRO, sees the skb) */
	SL_HOOK_TC_OUT = 2, /* egress, TC */
	SL_HOOK_MAX,
};

/* Actions an NF returns; a negative value is -enum sl_drop_reason. */
enum sl_verdict {
	SL_NEXT = 0, /* continue with the next NF of the chain */
	SL_PASS = 1, /* leave the chain, hand the packet to the kernel */
	SL_REDIRECT = 2, /* transmit on meta->redirect_ifindex */
};

struct sl_chain_key {
	__u32 ifindex;
	__u32 hook;
};

/* Kinds of packet (one bit each) that an NF passes on (SL_NEXT) without
 * looking further, whatever its configuration. */
enum sl_ignore {
	SL_IGN_NONIP = 1 << 0, /* neither IPv4 nor IPv6 */
	SL_IGN_TCP = 1 << 1, /* unfragmented IPv4/IPv6 with these L4 headers */
	SL_IGN_UDP = 1 << 2,
	SL_IGN_ICMP = 1 << 3, /* ICMP or ICMPv6 */
	SL_IGN_OTHER = 1 << 4, /* unfragmented IP, another upper protocol */
};

struct sl_chain {
	__u32 len;
	__u32 slots[SL_CHAIN_MAX];
	/* Kinds every NF of the chain ignores (enum sl_ignore; set by
	 * libsluice): a TC root leaves such a packet untouched, before its
	 * own work, while no observation session runs. 0: none. */
	__u32 ignore;
};

/* The root's fast way to a chain: a direct-mapped array of copies of the
 * sl_chains entries (an array lookup is inlined by the verifier, a hash
 * lookup is a call and a hash). Entry SL_CHAIN_CACHE_INDEX(ifindex, hook)
 * holds the chain of that interface and hook when tag == ifindex: the index
 * is a bijection of (ifindex, hook) modulo the size, so the ifindex alone
 * tells two keys of one entry apart. The entry of two colliding interfaces
 * serves the first; the other, and every entry being written (seq odd),
 * leaves the root to sl_chains, which stays the reference. */
#define SL_CHAIN_CACHE_SIZE 1024
#define SL_CHAIN_CACHE_INDEX(ifindex, hook)                                    \
	(((ifindex) * SL_HOOK_MAX + (hook)) & (SL_CHAIN_CACHE_SIZE - 1))

struct sl_chain_cached {
	__u32 seq; /* odd while user space rewrites the entry */
	__u32 tag; /* ifindex; 0: free */
	__u32 slots[SL_CHAIN_MAX]; /* 8-aligned: copied by words */
	__u32 len;
	__u32 ignore; /* as in struct sl_chain */
};

enum sl_meta_flags {
	SL_F_IPV4 = 1 << 0,
	SL_F_IPV6 = 1 << 1,
	SL_F_L4 = 1 << 2, /* L4 header parsed (not a non-first fragment) */
	SL_F_FRAG = 1 << 3, /* a fragment (first or not) */
};

/* Connection-tracking state of a packet (sl_meta.ct_state), set by the
 * conntrack NF for the NFs after it (the firewall's ctstate match);
 * 0: no conntrack NF ran before. One bit each, so a match is a mask. */
enum sl_ct_state {
	SL_CT_NEW = 1 << 0,
	SL_CT_ESTABLISHED = 1 << 1,
	SL_CT_RELATED = 1 << 2,
	SL_CT_INVALID = 1 << 3,
	SL_CT_UNTRACKED = 1 << 4,
};

/* The NAT NF's note on a conntrack entry (nf/conntrack, nf/nat): the
 * source translation of one direction of an IPv4 TCP or UDP connection, a
 * copy of NAT's own mapping that NAT checks and refreshes itself. The entry
 * holds it packed (struct ct_nat_slot, conntrack_abi.h); conntrack zeroes
 * it in a new entry and hands it on, unpacked, in sl_meta.ct_nat. */
struct sl_ct_nat_note {
	__u32 addr; /* the new source address; 0: no note */
	__u16 port; /* the new source port, host order */
	__u8 sender; /* the conntrack key endpoint whose packets it translates */
	__u8 pad;
	__u32 ifindex; /* the egress interface the mapping was made for */
	__u32 epoch; /* NAT's nat_epoch when it was checked */
	__u64 fresh_until; /* NAT's own (nat_abi.h: struct nat_fwd) */
};

/* Per-packet metadata: filled once by the root program, read by every NF.
 * Lives in a per-CPU map; XDP and TC use different entries. The root
 * zeroes it for every packet; NFs fill the fields after slots[] for the
 * NFs behind them. */
struct sl_meta {
	__u32 ifindex;
	__u32 pkt_len;
	__u16 flags;
	__u16 eth_proto; /* host order, after VLAN tags */
	__u16 l3_off;
	__u16 l4_off;
	__u8 ip_proto; /* upper-layer protocol after IPv6 extension headers */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 sport; /* host order; 0 unless TCP/UDP */
	__u16 dport;
	__u32 saddr[4]; /* IPv4 in saddr[0], network order */
	__u32 daddr[4];
	__u8 hook;
	__u8 chain_pos;
	__u8 chain_len;
	__u8 ct_state; /* enum sl_ct_state bit; 0: not tracked */
	__u32 redirect_ifindex;
	__u32 slots[SL_CHAIN_MAX];
	__u8 ct_dir; /* conntrack: 0 original direction, 1 reply */
	__u8 trace; /* non-zero: a path trace follows this packet */
	__u16 pad2;
	__u32 trace_id; /* the trace this packet belongs to */
	__u64 t_start; /* bpf_ktime_get_ns() at the root, when traced */
	__u32 lb_backend; /* load balancer: backend chosen (id), 0 none */
	__u16 ct_new_slot; /* conntrack: slot + 1 of the instance whose entry
			    * this packet created (0 none): undone on a drop;
			    * | SL_CT_SLOT_SEEN: the TCP entry it belongs to,
			    * closed by a tcp-reset answer (pipeline.h) */
	__u8 ct_undo_act; /* conntrack: undo run, XDP/TC action + 1 to end with,
			   * | SL_CT_UNDO_CLOSE: close instead of delete */
	__u8 pad3;
	/* The router's FIB lookup, done already by an NF before it (the NAT
	 * fast path) for the packet as it will leave: non-zero, the egress
	 * interface, and the MACs to write. The router then skips its own
	 * lookup. An NF that changes the packet's addresses after it was set
	 * must clear it. */
	__u32 fib_ifindex;
	__u8 fib_smac[6];
	__u8 fib_dmac[6];
	/* conntrack: the note of the packet's connection entry when it is for
	 * the packet's sender (addr 0: none), for the NAT after it. */
	struct sl_ct_nat_note ct_nat;
};

/* Per-instance counters (per-CPU), indexed by slot. */
struct sl_nf_stats {
	__u64 packets;
	__u64 bytes;
	__u64 passed; /* left the chain to the kernel */
	__u64 redirected;
	__u64 dropped;
};

/* Drop counters (per-CPU), indexed by slot * SL_DROP_MAX + reason. */
#define SL_DROP_INDEX(slot, reason) ((slot) * SL_DROP_MAX + (reason))

#endif
