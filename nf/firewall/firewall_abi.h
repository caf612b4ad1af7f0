/* SPDX-License-Identifier: GPL-2.0 */
/* Firewall NF: structures shared between its BPF program and control code.
 *
 * Classification is a decision tree over the packet's fields (HyperSplit
 * style): inner nodes compare one field with a threshold, leaves hold a short
 * list of candidate rules in rule order, checked one by one. The per-packet
 * cost follows the tree's depth and the leaf size, not the rule count.
 *
 * Rules that constrain different fields (say, sources only and ports only)
 * would be copied into each other's branches, so they are grouped by which
 * fields they constrain (as EffiCuts does) and each group gets its own tree;
 * a packet walks every tree and the lowest-numbered match wins. */
#ifndef SLUICE_FIREWALL_ABI_H
#define SLUICE_FIREWALL_ABI_H

#define FW_MAX_RULES 65536
/* Depth of the tree: the builder stops splitting here; log2(65536) is 16,
 * the rest leaves room for unbalanced rule sets. */
#define FW_MAX_DEPTH 48
/* Trees, one per group of rules constraining the same fields. */
#define FW_MAX_TREES 8

/* The fields a rule constrains, each as an unsigned 64-bit value range.
 * Addresses are split in two 64-bit halves so a prefix is a box; IPv4
 * addresses sit in the low half. */
enum fw_dim {
	FW_DIM_FAMILY, /* 4 or 6 */
	FW_DIM_SRC_HI,
	FW_DIM_SRC_LO,
	FW_DIM_DST_HI,
	FW_DIM_DST_LO,
	FW_DIM_PROTO,
	FW_DIM_L4, /* 1 when the L4 header is there (not a later fragment) */
	FW_DIM_SPORT,
	FW_DIM_DPORT,
	FW_DIM_ICMP_TYPE,
	FW_DIM_IIF,
	FW_DIMS,
};

enum fw_action {
	FW_ACCEPT = 0,
	FW_DROP = 1,
};

enum fw_neg {
	FW_NEG_SRC = 1 << 0,
	FW_NEG_DST = 1 << 1,
};

/* What the rule file said, kept so `show` prints the rule back. */
struct fw_spec {
	__u8 family; /* 0: both, 4, 6 */
	__u8 src_len; /* prefix lengths; meaningful when the address is set */
	__u8 dst_len;
	__u8 has; /* FW_HAS_* */
	__u8 proto;
	__u8 icmp_type;
	__u8 pad[2];
	__u16 sport_lo, sport_hi;
	__u16 dport_lo, dport_hi;
	__u32 iif;
	__u8 src[16];
	__u8 dst[16];
};

enum fw_has {
	FW_HAS_SRC = 1 << 0,
	FW_HAS_DST = 1 << 1,
	FW_HAS_PROTO = 1 << 2,
	FW_HAS_SPORT = 1 << 3,
	FW_HAS_DPORT = 1 << 4,
	FW_HAS_ICMP_TYPE = 1 << 5,
	FW_HAS_TCP_FLAGS = 1 << 6,
	FW_HAS_IIF = 1 << 7,
};

struct fw_rule {
	__u64 lo[FW_DIMS]; /* the rule matches when lo <= field <= hi ... */
	__u64 hi[FW_DIMS];
	__u8 neg; /* ... except for negated addresses: FW_NEG_* */
	__u8 tcp_flags; /* (flags & tcp_mask) == tcp_flags */
	__u8 tcp_mask;
	__u8 action;
	__u32 pad;
	struct fw_spec spec;
};

struct fw_node {
	__u64 threshold; /* inner: field <= threshold goes left */
	__u32 left; /* leaf: first index in fw_leaves */
	__u32 right; /* leaf: number of candidate rules */
	__u32 dim; /* FW_DIMS marks a leaf */
	__u32 pad;
};

struct fw_config {
	__u32 nrules;
	__u32 default_action;
	__u32 ntrees;
	__u32 roots[FW_MAX_TREES]; /* node index of each tree's root */
};

/* Per-rule counters (per-CPU); index nrules counts the default policy. */
struct fw_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
