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
	FW_DIM_BLOCK, /* the block (chain) being scanned: see struct fw_block */
	FW_DIM_OIF, /* output interface (iptables FORWARD and OUTPUT) */
	FW_DIMS,
};

/* Terminal actions end the scan; the others resume it (see fw_block). */
enum fw_action {
	FW_ACCEPT = 0,
	FW_DROP = 1,
	FW_REJECT = 2, /* send rule.reject back, drop the packet */
	FW_JUMP = 3, /* scan block rule.block from its start */
	FW_GOTO = 4, /* the same; the block returns where this one would */
	FW_RETURN = 5, /* end the block: resume in its parent */
	FW_CONTINUE = 6, /* count (and log) then resume at rule.next */
};

/* REJECT answers (--reject-with). */
enum fw_reject {
	FW_REJ_ICMP_NET_UNREACH = 1,
	FW_REJ_ICMP_HOST_UNREACH,
	FW_REJ_ICMP_PORT_UNREACH,
	FW_REJ_ICMP_PROTO_UNREACH,
	FW_REJ_ICMP_NET_PROHIB,
	FW_REJ_ICMP_HOST_PROHIB,
	FW_REJ_ICMP_ADMIN_PROHIB,
	FW_REJ_ICMP6_NO_ROUTE,
	FW_REJ_ICMP6_ADM_PROHIB,
	FW_REJ_ICMP6_ADDR_UNREACH,
	FW_REJ_ICMP6_PORT_UNREACH,
	FW_REJ_TCP_RESET,
};

/* Checks beyond the box, in struct fw_rule.check. */
enum fw_check {
	FW_CHK_TCP_NEG = 1 << 0, /* (flags & mask) != tcp_flags */
	FW_CHK_CT = 1 << 1, /* meta ct_state & ct_mask */
	FW_CHK_CT_NEG = 1 << 2,
	FW_CHK_MAC = 1 << 3, /* source MAC == mac */
	FW_CHK_MAC_NEG = 1 << 4,
	FW_CHK_ICMP = 1 << 5, /* icmp type/code as iptables' icmp matches */
	FW_CHK_ICMP_NEG = 1 << 6,
	FW_CHK_LIMIT = 1 << 7, /* token bucket fw_limits[limit] has a token */
	FW_CHK_LOG = 1 << 8, /* log with prefix fw_logs[log] (CONTINUE) */
};

#define FW_NONE 0xffffffffU

/* A block is a run of rules scanned together: a chain, or one inlined
 * call of a user chain. Scanning block b looks for the first rule of
 * block b, at index >= the resume point, that matches. A block that ends
 * without a terminal match resumes its parent at end (just after the
 * calling rule); a top-level block (parent FW_NONE) applies its policy. */
struct fw_block {
	__u32 start; /* first rule index */
	__u32 end; /* where the parent resumes */
	__u32 parent;
	__u32 policy; /* FW_ACCEPT or FW_DROP, for parent == FW_NONE */
	__u32 policy_cnt; /* counter of the policy */
	__u32 pad;
};

/* Token bucket of a -m limit rule, as the kernel's xt_limit keeps it. */
struct fw_limit {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 prev; /* "jiffies" (ns / FW_LIMIT_TICK_NS) of the last packet */
	__u64 credit;
	__u64 credit_cap;
	__u64 cost;
};

/* xt_limit counts in jiffies; we count in ticks of a kernel with HZ=250
 * (Debian's) and its credit scale POW2_BELOW32(0xFFFFFFFF / (HZ*86400)). */
#define FW_LIMIT_HZ 250ULL
#define FW_LIMIT_TICK_NS (1000000000ULL / FW_LIMIT_HZ)
#define FW_LIMIT_CREDITS_PER_TICK 128ULL
#define FW_LIMIT_SCALE 10000ULL
#define FW_LOG_PREFIX 32

/* Addresses of an interface (fw_ifaddrs, by ifindex): the source of the
 * ICMP errors REJECT sends for packets forwarded through it. */
struct fw_ifaddr {
	__u32 v4; /* network order; 0: none */
	__u32 pad;
	__u8 v6[16]; /* all zero: none */
};
#define FW_MAX_IFINDEX 4096

/* Bytes of the offending packet an ICMP error quotes, as Linux: the error
 * fits in 576 bytes (IPv4) or 1280 (IPv6). */
#define FW_QUOTE4 (576 - 28)
#define FW_QUOTE6 (1280 - 48)

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
	__u8 action; /* enum fw_action */
	__u32 cnt; /* counter index (several rules may share one) */
	__u16 check; /* enum fw_check */
	__u8 ct_mask; /* enum sl_ct_state bits */
	__u8 reject; /* enum fw_reject */
	__u8 icmp_type; /* 255: any (ICMPv4) */
	__u8 icmp_code_lo, icmp_code_hi;
	__u8 pad;
	__u8 mac[6];
	__u16 pad2;
	__u32 next; /* CONTINUE, or a failed limit: resume here */
	__u32 block; /* JUMP/GOTO: the called block */
	__u32 limit; /* index in fw_limits */
	__u32 log; /* index in fw_logs */
	struct fw_spec spec;
};

struct fw_node {
	__u64 threshold; /* inner: field <= threshold goes left */
	__u32 left; /* leaf: first index in fw_leaves */
	__u32 right; /* leaf: number of candidate rules */
	__u32 dim; /* FW_DIMS marks a leaf */
	__u32 pad;
};

/* The tree as the BPF program walks it: each packed node holds three
 * levels of the binary tree (7 tests, 8 children), so a packet waits on a
 * third of the dependent lookups. Tests are heap-ordered: 0, then 1 + c0,
 * then 3 + 2 * c0 + c1, where c is 1 when key[dim] > thr (right); the
 * third test's c2 picks child 2 * (test - 3) + c2. A child with
 * FW_SN_LEAF set is a leaf: candidates from fw_leaves[child & ~FW_SN_LEAF],
 * cnt of them; otherwise the packed node to go on with. A leaf above the
 * third level becomes tests that always go left (dim FAMILY <= ~0). */
#define FW_SN_TESTS 7
#define FW_SN_CHILDREN 8
#define FW_SN_LEAF 0x80000000U
#define FW_MAX_SDEPTH ((FW_MAX_DEPTH + 2) / 3)

struct fw_snode {
	__u64 thr[FW_SN_TESTS];
	__u8 dim[FW_SN_TESTS];
	__u8 pad;
	__u32 child[FW_SN_CHILDREN];
	__u32 cnt[FW_SN_CHILDREN];
};

/* Rounds of the scan (one per jump, return, log or limit miss), bounded
 * so the verifier sees an end; the importer refuses deeper rule sets. */
#define FW_MAX_ROUNDS 4096

enum fw_mode {
	FW_MODE_PLAIN = 0, /* one rule list, block 0, on any hook */
	FW_MODE_IPTABLES = 1, /* INPUT/FORWARD/OUTPUT blocks by hook and route */
};

enum fw_chain { FW_INPUT = 0, FW_FORWARD = 1, FW_OUTPUT = 2, FW_CHAINS = 3 };

struct fw_config {
	__u32 nrules;
	__u32 default_action;
	__u32 ntrees;
	__u32 roots[FW_MAX_TREES]; /* node index of each tree's root */
	__u32 mode; /* enum fw_mode */
	__u32 top[2][FW_CHAINS]; /* iptables: block of [IPv6][chain], or FW_NONE */
	__u32 ncounters;
};

/* Per-rule counters (per-CPU), indexed by rule.cnt and block.policy_cnt;
 * a plain rule set counts rule i at i and its default policy at nrules. */
struct fw_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
