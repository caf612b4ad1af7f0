/* SPDX-License-Identifier: GPL-2.0 */
/* Flow monitor NF: structures shared between its BPF program and control
 * code. One record per flow (5-tuple), both directions joined: the key puts
 * the lower (address, port) end first, and per-direction fields are indexed
 * by FM_DIR_AB (packets from end a to end b) or FM_DIR_BA. The table is an
 * LRU hash, so memory is bounded and the least recently seen flows go
 * first when it is full. */
#ifndef SLUICE_FLOWMON_ABI_H
#define SLUICE_FLOWMON_ABI_H

/* Flows kept per instance unless the loader asks otherwise: about 9 MB
 * (key 40 + value 88 bytes + hash overhead per entry). */
#define FM_FLOWS_DEFAULT 65536
#define FM_FLOWS_MIN 64
#define FM_FLOWS_MAX (1 << 22)

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

/* Counters are updated with atomic adds (the map is shared by all CPUs);
 * the other fields are written without locks, once or rarely. */
struct fm_flow {
	__u64 first_ns; /* bpf_ktime_get_coarse_ns() of the first packet */
	__u64 last_ns; /* ... of the latest (CLOCK_MONOTONIC, tick precision) */
	__u64 packets[2]; /* by enum fm_dir */
	__u64 bytes[2]; /* frame bytes, as the pipeline counts them */
	__u64 syn_ns; /* bpf_ktime_get_ns() of the first SYN without ACK */
	__u64 rtt_ns; /* SYN to SYN-ACK as seen here; 0: not measured */
	__u32 seq_end[2]; /* highest TCP sequence + payload seen, per dir */
	__u32 retrans[2]; /* TCP data segments not beyond seq_end */
	__u8 tcp_flags[2]; /* OR of the flags seen, per dir */
	__u8 seq_valid[2]; /* seq_end holds a value */
	__u8 init_dir; /* direction of the first packet, or of the SYN */
	__u8 syn_dir; /* direction of the SYN (when syn_ns) */
	__u8 pad[2];
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
