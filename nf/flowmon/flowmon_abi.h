/* SPDX-License-Identifier: GPL-2.0 */
/* Flow monitor NF: structures shared between its BPF program and control
 * code. One record per flow (5-tuple), both directions joined: the key puts
 * the lower (address, port) end first, and per-direction fields are indexed
 * by FM_DIR_AB (packets from end a to end b) or FM_DIR_BA.
 *
 * The table is an index and a pool. The index is set-associative: a set
 * is one cache line of FM_WAYS words, chosen by a hash of the key; a word
 * holds part of the key's hash and where the flow's entry is in the pool.
 * The pool holds the entries (key and record, 128 bytes each, aligned) in
 * the order flows arrive. A packet reads one index line and its entry: no
 * key hashing helper, no list walk. A new flow takes a free word of its
 * set and the next entry of the pool; in a full set it takes the word and
 * entry of the flow least recently seen there. Memory is bounded, old
 * flows go first. */
#ifndef SLUICE_FLOWMON_ABI_H
#define SLUICE_FLOWMON_ABI_H

/* Flows kept per instance unless the loader asks otherwise: 8 MB (128
 * bytes an entry). */
#define FM_FLOWS_DEFAULT 65536
#define FM_FLOWS_MIN 64
#define FM_FLOWS_MAX (1 << 22)
#define FM_WAYS 8 /* index words a set (one cache line); max_flows % FM_WAYS
		   * entries stay unused */

enum fm_dir {
	FM_DIR_AB = 0,
	FM_DIR_BA = 1,
};

struct fm_key {
	__u32 addr_a[4]; /* network order; IPv4 in [0], the rest 0 */
	__u32 addr_b[4];
	__u16 port_a; /* host order; 0 unless TCP/UDP */
	__u16 port_b;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 pad;
};

enum fm_rtt_state {
	FM_RTT_NONE = 0,
	FM_RTT_SYN, /* syn_rtt_ns: bpf_ktime_get_ns() of the first SYN */
	FM_RTT_DONE, /* syn_rtt_ns: SYN to SYN-ACK as seen here */
};

/* Packets and frame bytes (as the pipeline counts them) one way. */
struct fm_count {
	__u64 packets;
	__u64 bytes;
};

/* Counters are updated with atomic adds (the table is shared by all CPUs);
 * the other fields are written without locks, once or rarely. The fields
 * every packet touches come first: with the key, one direction's are on
 * the entry's first cache line. */
struct fm_flow {
	__u64 last_ns; /* bpf_ktime_get_coarse_ns() of the latest packet
			* (CLOCK_MONOTONIC, tick precision) */
	struct fm_count count[2]; /* by enum fm_dir */
	__u64 first_ns; /* ... of the first packet */
	__u64 syn_rtt_ns; /* by rtt_state */
	__u32 seq_end[2]; /* highest TCP sequence + payload seen, per dir */
	__u32 retrans[2]; /* TCP data segments not beyond seq_end */
	__u8 tcp_flags[2]; /* OR of the flags seen, per dir */
	__u8 seq_valid[2]; /* seq_end holds a value */
	__u8 init_dir; /* direction of the first packet, or of the SYN */
	__u8 syn_dir; /* direction of the SYN (rtt_state not NONE) */
	__u8 rtt_state; /* enum fm_rtt_state */
	__u8 pad;
};

/* Index words: free, being written by one CPU, or in use: bit 63 set, the
 * hash's low 31 bits above the entry's place in the pool (most flows of a
 * set are told apart without reading their entries). */
#define FM_SLOT_FREE 0ULL
#define FM_SLOT_BUSY 1ULL
#define FM_SLOT(hash, idx) ((__u64)((hash) | 0x80000000u) << 32 | (__u32)(idx))
#define FM_SLOT_USED(w) ((w) >> 63)
#define FM_SLOT_IDX(w) ((__u32)(w))

struct fm_set {
	__u64 slot[FM_WAYS];
};

/* An entry of the pool. One being replaced may still take a packet of its
 * old flow from another CPU (as entries of the kernel's LRU hash could):
 * counts are exact for flows that stay in the table. */
struct fm_entry {
	struct fm_key key;
	struct fm_flow flow;
	__u64 pad;
};

_Static_assert(sizeof(struct fm_entry) == 128 && sizeof(struct fm_set) == 64,
	       "fm_entry: two cache lines, fm_set: one (the tables are page-aligned)");

/* Entries of the pool given out so far. */
struct fm_alloc {
	__u64 next;
};

/* Handshake times (SYN to SYN-ACK) are also counted per instance in
 * buckets, so /metrics has a histogram that no eviction shrinks. Upper
 * bounds in microseconds; the last bucket (+Inf) takes the rest. */
#define FM_RTT_BOUNDS_US                                                       \
	{ 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,       \
	  250000, 500000, 1000000, 2500000 }
#define FM_RTT_BUCKETS 15 /* the bounds above and +Inf */

/* Per-CPU counters of an instance. */
struct fm_stats {
	__u64 created; /* flows inserted (evictions follow from the LRU) */
	__u64 insert_failed; /* the table refused an insert */
	__u64 skipped; /* packets that are not IP: no flow */
	__u64 retrans; /* TCP data segments counted as retransmitted */
	__u64 rtt_sum_ns; /* sum of the handshake times measured */
	__u64 rtt_buckets[FM_RTT_BUCKETS]; /* handshakes by time */
};

#endif
