/* SPDX-License-Identifier: GPL-2.0 */
/* Conntrack NF: structures shared between its BPF program and control code.
 *
 * One table entry per connection, keyed by the connection's two endpoints
 * in a canonical order (the smaller address/port pair first), so both
 * directions find the entry with one lookup; the entry says which endpoint
 * opened the connection. ICMP query flows (echo, timestamp, ...) are keyed
 * from the requester's side instead, as the kernel keys them by type. */
#ifndef SLUICE_CONNTRACK_ABI_H
#define SLUICE_CONNTRACK_ABI_H

/* TCP states, numbered as the kernel's enum tcp_conntrack. */
enum ct_tcp_state {
	CT_TCP_NONE,
	CT_TCP_SYN_SENT,
	CT_TCP_SYN_RECV,
	CT_TCP_ESTABLISHED,
	CT_TCP_FIN_WAIT,
	CT_TCP_CLOSE_WAIT,
	CT_TCP_LAST_ACK,
	CT_TCP_TIME_WAIT,
	CT_TCP_CLOSE,
	CT_TCP_SYN_SENT2,
	CT_TCP_MAX, /* "sIV": invalid */
	CT_TCP_IGNORE, /* "sIG": let through, change nothing */
};

/* Timeouts, by index in ct_config.timeout_ns: TCP states by their number,
 * then the others. Defaults are the kernel's (nf_conntrack_*_timeout*). */
enum ct_timeout {
	CT_TO_TCP_UNACK = 0, /* replaces NONE: picked-up, unanswered TCP */
	/* 1 .. 9: CT_TCP_SYN_SENT .. CT_TCP_SYN_SENT2 */
	CT_TO_UDP = 10, /* unreplied */
	CT_TO_UDP_STREAM = 11, /* replied and seen again after 2 s */
	CT_TO_ICMP = 12,
	CT_TO_ICMPV6 = 13,
	CT_TO_GENERIC = 14,
	CT_TO_MAX = 16,
};

enum ct_config_flags {
	/* Pick up TCP connections from a mid-stream ACK (the kernel's
	 * nf_conntrack_tcp_loose, on by default). */
	CT_CFG_LOOSE = 1 << 0,
	/* Drop INVALID packets (SL_DROP_CT_INVALID) instead of passing them
	 * on marked SL_CT_INVALID. */
	CT_CFG_DROP_INVALID = 1 << 1,
};

struct ct_config {
	__u64 timeout_ns[CT_TO_MAX];
	__u32 flags; /* enum ct_config_flags */
	__u32 gc_interval_ms; /* period of the in-kernel sweep */
};

/* A connection's endpoints: endpoint 0 sorts before endpoint 1 (address,
 * then port); for ICMP queries endpoint 0 is the requester and port[0] the
 * query id, port[1] the request type | code << 8. Addresses in network order, IPv4 in
 * addr[.][0]; ports in host order. */
struct ct_key {
	__u32 addr[2][4];
	__u16 port[2];
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 pad;
};

/* IPv4 connections live in a table of their own (ct_table; IPv6 ones in
 * ct_table6, keyed by struct ct_key) with this shorter key: a shorter
 * hash and compare per packet, and, with struct ct_entry, a table element
 * of 128 bytes (the kernel's element header is 48): two cache lines, the
 * pair the CPU fetches together, instead of three or four. */
struct ct_key4 {
	__u32 addr[2];
	__u16 port[2];
	__u8 proto;
	__u8 pad[3];
};

static inline void ct_key4_of(const struct ct_key *k, struct ct_key4 *k4)
{
	k4->addr[0] = k->addr[0][0];
	k4->addr[1] = k->addr[1][0];
	k4->port[0] = k->port[0];
	k4->port[1] = k->port[1];
	k4->proto = k->proto;
	k4->pad[0] = k4->pad[1] = k4->pad[2] = 0;
}

static inline void ct_key_of4(const struct ct_key4 *k4, struct ct_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr[0][0] = k4->addr[0];
	k->addr[1][0] = k4->addr[1];
	k->port[0] = k4->port[0];
	k->port[1] = k4->port[1];
	k->proto = k4->proto;
	k->family = 4;
}

/* ct_entry.state: one 64-bit word, changed with compare-and-swap so two
 * CPUs never lose each other's transition. Low 32 bits: the fields below;
 * high 32 bits: the end (seq + len) of the last TCP packet ignored, the
 * kernel's last_end, used to resynchronise on a SYN/ACK. */
#define CT_ST_TCP_MASK 0xfULL /* enum ct_tcp_state */
#define CT_ST_LAST_INDEX_SHIFT 4 /* 3 bits: kernel's last_index */
#define CT_ST_LAST_DIR (1ULL << 7)
#define CT_ST_ORIG_IS_1 (1ULL << 8) /* endpoint 1 opened the connection */
#define CT_ST_SEEN_REPLY (1ULL << 9)
#define CT_ST_ASSURED (1ULL << 10)
#define CT_ST_CLOSE_INIT0 (1ULL << 11) /* original side sent the first FIN */
#define CT_ST_CLOSE_INIT1 (1ULL << 12) /* reply side sent the first FIN */
#define CT_ST_SIMUL_OPEN (1ULL << 13)
#define CT_ST_CHALLENGE (1ULL << 14) /* RFC 5961 challenge ACK expected */
#define CT_ST_LAST_END_SHIFT 32
/* Other protocols keep there the entry's creation time instead, in units
 * of 2^CT_TIME_SHIFT ns (about a millisecond), compared wrap-safely: UDP
 * needs it (a stream is a connection replied to and still active 2 s
 * after its first packet). */
#define CT_ST_CREATED_SHIFT 32
#define CT_TIME_SHIFT 20

/* Room for the NAT NF in a connection's entry: the translation of the
 * packets of one endpoint (sender), so that the entry conntrack has just
 * read hands NAT its translation (sl_meta.ct_nat, struct sl_ct_nat_note in
 * sluice_abi.h, unpacked). Written by NAT only; conntrack zeroes it in a
 * new entry. */
struct ct_nat_slot {
	__u32 addr; /* the new source address; 0: no note */
	__u16 port; /* the new source port, host order */
	/* NAT's nat_epoch when it was checked (always even: its low 16
	 * bits), with the key endpoint whose packets it translates in bit 0 */
	__u16 epoch_sender;
	__u32 ifindex; /* the egress interface the mapping was made for */
	__u32 fresh; /* NAT's fresh_until >> CT_TIME_SHIFT, wrap-safe */
};

struct ct_entry {
	__u64 state;
	__u64 expires_ns; /* CLOCK_MONOTONIC (coarse), ns */
	__u64 packets[2]; /* [0] original direction, [1] reply */
	__u64 bytes[2]; /* L3 bytes (IP header and payload), as the kernel */
	struct ct_nat_slot nat;
};

/* The table element sizes the layout is for (see struct ct_key4). */
_Static_assert(sizeof(struct ct_key4) == 16, "struct ct_key4: 16 bytes");
_Static_assert(sizeof(struct ct_entry) == 64, "struct ct_entry: 64 bytes");

/* Per-CPU counters. */
struct ct_stats {
	__u64 new; /* packets classified SL_CT_NEW */
	__u64 established;
	__u64 related;
	__u64 invalid;
	__u64 untracked;
	__u64 created; /* entries created */
	__u64 expired; /* expired entries found by a packet (lazy expiry) */
	__u64 gc_runs; /* sweeps of the in-kernel garbage collector */
	__u64 gc_deleted; /* expired entries it removed */
	__u64 killed; /* entries removed by TCP (RST as only answer, reopen) */
};

/* Table size by default: the kernel's nf_conntrack_max on a 4 GiB host. */
#define CT_DEFAULT_MAX 262144
#define CT_DEFAULT_GC_MS 5000

#endif
