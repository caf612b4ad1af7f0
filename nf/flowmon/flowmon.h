/* SPDX-License-Identifier: GPL-2.0 */
/* Flow monitor NF control code: load an instance, read its flow table,
 * filter and sort flows. */
#ifndef SLUICE_FLOWMON_H
#define SLUICE_FLOWMON_H

#include <stdbool.h>
#include <stddef.h>
#include "sluice.h"
#include "flowmon_abi.h"

#define FM_TYPE "flowmon"

/* Creates instance name (max_flows entries, 0: FM_FLOWS_DEFAULT) unless it
 * exists; an existing flow monitor is kept as it is, flows and all. */
int fm_load(struct sl_ctx *ctx, const char *name, __u32 max_flows);

/* Loads instance name (as fm_load) and appends it to the chains of dev at
 * each of hooks. Everything is checked before anything changes; a new
 * instance that cannot join its chains is removed again. */
int fm_attach(struct sl_ctx *ctx, const char *name, const char *dev,
	      const enum sl_hook *hooks, int nhooks, __u32 max_flows);

/* One flow as shown: oriented from the end that opened it (the SYN's
 * sender, else the first packet's), forward = from src to dst. */
struct fm_flow_view {
	char instance[SL_NAME_MAX];
	int family; /* 4 or 6 */
	__u8 proto;
	__u8 src[16], dst[16]; /* network order; IPv4 in the first 4 bytes */
	__u16 sport, dport;
	__u64 packets[2]; /* [0] src to dst, [1] dst to src */
	__u64 bytes[2];
	__u8 tcp_flags[2];
	__u32 retrans[2];
	__u64 rtt_ns; /* 0: not measured */
	__u64 first_ns, last_ns; /* CLOCK_MONOTONIC */
	struct fm_key key; /* the map key, to match snapshots */
};

/* Reads the flows of instance name (NULL: every flow monitor). The array
 * is malloc'd; *n may be 0. */
int fm_flows_read(struct sl_ctx *ctx, const char *name,
		  struct fm_flow_view **flows, size_t *n);

/* Table size and counters of an instance (per-CPU counters summed). */
struct fm_info {
	__u32 max_flows;
	__u64 flows; /* entries now */
	struct fm_stats stats;
};
int fm_info_read(struct sl_ctx *ctx, const char *name, struct fm_info *info);

/* Flow filters: words ANDed, e.g. "proto tcp dport 80 src 10.0.0.0/8".
 *   src|dst|host ADDR[/LEN]   sport|dport|port N   proto tcp|udp|icmp|icmpv6|N
 * "and" between terms is allowed; src/sport mean the opening end. */
#define FM_FILTER_MAX 16
struct fm_term {
	int what; /* enum in flowmon.c */
	int family;
	__u8 addr[16];
	int plen;
	__u16 port;
	__u8 proto;
};
struct fm_filter {
	struct fm_term terms[FM_FILTER_MAX];
	int n;
};
/* Parses words; on error -EINVAL and sl_errmsg() names the word. */
int fm_filter_parse(int argc, char *const *argv, struct fm_filter *f);
bool fm_filter_match(const struct fm_filter *f, const struct fm_flow_view *v);

enum fm_sort { FM_SORT_BYTES, FM_SORT_PKTS, FM_SORT_RTT };
int fm_sort_parse(const char *s, enum fm_sort *sort);
/* Largest first (both directions summed); flows without RTT last. */
void fm_flows_sort(struct fm_flow_view *flows, size_t n, enum fm_sort sort);

/* "SYN,ACK,FIN" style names of flags, or "-" for none. */
void fm_flags_format(__u8 flags, char *buf, size_t len);
const char *fm_proto_name(__u8 proto, char buf[8]);

#endif
