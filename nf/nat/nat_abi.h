/* SPDX-License-Identifier: GPL-2.0 */
/* NAT NF: structures shared between its BPF program and control code.
 *
 * A flow is translated once, on its first packet, by the first rule that
 * matches it; the translation is kept in two maps per kind (SNAT, DNAT):
 *   *_rev: reply tuple of the translated flow -> original address and port.
 *          It is the allocation itself (inserted with BPF_NOEXIST, so two
 *          flows can never share a translated tuple), holds the expiry time
 *          and is what `sluice nat mappings` lists.
 *   *_fwd: original tuple -> translated address and port, a cache checked
 *          against *_rev on every packet.
 * Both are LRU hashes pinned by name in the namespace's folder: a reload of
 * the rules finds them again and no flow loses its mapping. */
#ifndef SLUICE_NAT_ABI_H
#define SLUICE_NAT_ABI_H

#define NAT_MAX_RULES 256 /* compiled rules, scanned on a flow's first packet */
#define NAT_MAP_SIZE 65536 /* mappings per map (LRU: the oldest go first) */
/* Candidate (address, port) pairs tried for a new flow before giving up with
 * SL_DROP_NAT_NO_PORT; a range smaller than this is tried whole. */
#define NAT_MAX_TRIES 256
#define NAT_MAX_ADDRS 65536 /* addresses in one --to range */

/* Mapping lifetimes, in seconds, refreshed by every packet of the flow. */
#define NAT_TO_TCP_SYN 120 /* TCP not answered yet */
#define NAT_TO_TCP_EST 7440 /* RFC 5382: at least 2 h 4 min */
#define NAT_TO_TCP_FIN 120 /* a FIN seen */
#define NAT_TO_TCP_CLOSE 10 /* RST, or FINs both ways */
#define NAT_TO_UDP 30 /* not answered yet */
#define NAT_TO_UDP_REPLIED 180 /* RFC 4787: at least 2 min */
#define NAT_TO_OTHER 30 /* ICMP echo, other protocols */

enum nat_kind {
	NAT_SNAT = 1, /* source to an address (range), after routing */
	NAT_MASQ = 2, /* SNAT to the egress interface's address */
	NAT_DNAT = 3, /* destination, before routing */
};

/* Flow tuple, addresses in network order (IPv4 in [0]), ports in host
 * order. ICMP echo: the identifier is the source "port" of a request and
 * the destination "port" of a reply, so a reply's tuple is the request's
 * swapped. Protocols without ports have both at 0. */
struct nat_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 pad;
};

/* *_fwd value: the translated address and port of the flow, and what the
 * last check of its reverse entry found, so that the flow's packets of the
 * next second skip that lookup (nat_known in nat.bpf.c). */
struct nat_fwd {
	__u32 addr[4];
	__u16 port;
	__u16 pad;
	__u32 rule;
	__u32 ifindex; /* the reverse entry's: where the mapping was made */
	__u32 epoch; /* nat_epoch at the check */
	__u64 fresh_until; /* until then a packet leaves the reverse entry as is */
};

enum nat_state {
	NAT_ST_REPLIED = 1 << 0, /* a packet came back */
	NAT_ST_FIN_ORIG = 1 << 1,
	NAT_ST_FIN_REPLY = 1 << 2,
	NAT_ST_RST = 1 << 3,
};

/* *_rev value: the original address and port, and the mapping's life. */
struct nat_rev {
	__u64 expires; /* bpf_ktime_get_ns() deadline */
	__u32 addr[4];
	__u16 port;
	__u8 state; /* enum nat_state */
	__u8 kind; /* enum nat_kind */
	__u32 rule; /* compiled rule index that made it */
	__u32 ifindex; /* where it was made */
};

/* A compiled rule. Matches: hook and interface, family, protocol (0: any),
 * source and destination prefixes, destination ports. Translates to an
 * address range [to_lo, to_hi] (at most NAT_MAX_ADDRS addresses, the
 * difference in the last word) and a port range (0-0: keep the port). */
struct nat_rule {
	__u32 ifindex;
	__u8 kind; /* enum nat_kind */
	__u8 family;
	__u8 proto;
	__u8 spec; /* index of the rule as the user wrote it */
	__u32 src[4], src_mask[4];
	__u32 dst[4], dst_mask[4];
	__u16 dport_lo, dport_hi; /* 0-65535 when not matched */
	__u32 to_lo[4];
	__u32 naddrs; /* addresses in the range, >= 1 */
	__u16 port_lo, port_hi; /* translated ports; 0-0: keep */
};

/* The address range an SNAT or masquerade rule translates to. */
struct nat_cover_range {
	__u32 lo[4];
	__u32 n; /* addresses from lo, >= 1 (the difference in the last word) */
	__u8 family;
	__u8 pad[3];
};

/* Ranges kept in nat_config: with no more SNAT and masquerade rules than
 * this, the XDP path tells whether a packet can be an SNAT reply (its
 * destination is an address some rule translates to) without a loop over
 * the rules. */
#define NAT_COVER_INLINE 4

struct nat_config {
	__u32 nrules;
	__u32 nspecs;
	__u32 ndnat; /* compiled DNAT rules */
	__u32 ncover; /* compiled SNAT and masquerade rules */
	struct nat_cover_range cover[NAT_COVER_INLINE]; /* their first ones */
};

/* nat_flags (pinned by name, with the mappings): set once a DNAT mapping
 * was made, so the XDP path skips DNAT lookups on gateways without any. */
struct nat_flags {
	__u32 dnat_used;
};

/* nat_epoch (pinned by name, written by user space only): odd while
 * mappings are being removed (flush, a reload's pruning), then moved on to
 * the next even value, so that no forward entry checked before (or during)
 * the removal is trusted without looking at its reverse entry again. */

/* A rule as the user wrote it (kept for show and recompiled on reload):
 * its name and its words after the name. */
#define NAT_MAX_SPECS 64
#define NAT_TEXT_MAX 224
struct nat_spec {
	char name[SL_NAME_MAX];
	char text[NAT_TEXT_MAX];
};

/* Per compiled rule (per-CPU): flows it translated, flows it could not. */
struct nat_counter {
	__u64 flows;
	__u64 no_port;
};

#endif
