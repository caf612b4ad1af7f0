/* SPDX-License-Identifier: GPL-2.0 */
/* libsluice observation: packet capture and path tracing.
 *
 * A session (capture of drops, capture of all matching packets, or a
 * trace) is one per namespace: it holds the reader lock of the ring
 * sl_obs, writes its filter, sampling and rate limit in sl_obscfg, and
 * turns its flag on in sl_evcfg.obs; closing it turns the flag off. The
 * data plane takes a matching packet only within the per-CPU token bucket
 * and never waits for the reader: records that find the ring full are
 * counted as lost.
 *
 * Path policies ("traffic from A to B must pass instance X") are pinned in
 * sl_pathpol and checked on every traced packet that leaves a chain alive;
 * a packet that did not pass X raises an SL_EVENT_PATH event (sl_events,
 * read by `sluice events`) and marks its trace. */
#ifndef SLUICE_OBSERVE_H
#define SLUICE_OBSERVE_H

#include "sluice.h"

/* Parses a filter expression given as words (`host 10.0.0.1 and port 80
 * or proto icmp`): host|src|dst [net] ADDR[/LEN], net CIDR, port|sport|dport
 * N, proto tcp|udp|icmp|icmp6, joined by `and` / `or` (and binds tighter).
 * No words: everything matches. A bad word is named in the error. */
int sl_filter_parse(int argc, char **argv, struct sl_filter *f);

enum sl_obs_mode {
	SL_OBS_MODE_DROPS, /* dropped packets, copied where they are dropped */
	SL_OBS_MODE_ALL, /* every matching packet, copied when its chain ends */
	SL_OBS_MODE_TRACE, /* hop records of matching packets */
};

#define SL_OBS_DEFAULT_RATE 10000 /* packets per second, all CPUs */

struct sl_obs_opts {
	enum sl_obs_mode mode;
	__u32 ifindex; /* 0: every interface */
	__u32 sample; /* one in N matching packets per CPU; 0 or 1: all */
	__u32 snaplen; /* capture; 0: SL_CAPTURE_SNAPLEN_MAX */
	__u32 rate; /* packets per second; 0: SL_OBS_DEFAULT_RATE */
	__u32 burst; /* packets above the rate at once; 0: rate / 10 */
	struct sl_filter filter;
};

/* Called with each record of the ring (struct sl_cap_rec or sl_hop_rec,
 * by its type field); a negative return stops sl_obs_poll(). */
typedef int (*sl_obs_cb)(const void *rec, size_t size, void *arg);

struct sl_obs;
int sl_obs_open(struct sl_ctx *ctx, const struct sl_obs_opts *opts,
		sl_obs_cb cb, void *arg, struct sl_obs **out);
/* Waits up to timeout_ms (0: no wait) and hands over every record. */
int sl_obs_poll(struct sl_obs *obs, int timeout_ms);
/* Turns the data plane's side off; records already written can still be
 * read with sl_obs_poll(). */
int sl_obs_stop(struct sl_obs *obs);
void sl_obs_close(struct sl_obs *obs);

/* Counters of the session, summed over CPUs. */
struct sl_obs_stats {
	__u64 matched; /* matched the interface and filter */
	__u64 limited; /* matched but over the rate limit */
	__u64 emitted; /* records written */
	__u64 lost; /* records lost to a full ring */
	__u64 violations; /* path-policy events */
};
int sl_obs_stats(struct sl_obs *obs, struct sl_obs_stats *st);
/* Offset to add to a record's ts_ns to get wall-clock nanoseconds. */
__s64 sl_obs_realtime_offset(void);

/* Path policies. */
struct sl_path_policy {
	char name[32];
	char from[64]; /* CIDR */
	char to[64];
	char via[32]; /* instance name */
	__u32 via_slot;
	__u32 index; /* in sl_pathpol */
};
int sl_path_policy_add(struct sl_ctx *ctx, const char *name, const char *from,
		       const char *to, const char *via);
int sl_path_policy_del(struct sl_ctx *ctx, const char *name);
typedef int (*sl_path_policy_cb)(const struct sl_path_policy *p, void *arg);
int sl_path_policy_foreach(struct sl_ctx *ctx, sl_path_policy_cb cb, void *arg);
/* The name of the policy at index (for SL_EVENT_PATH); "" when none. */
int sl_path_policy_name(struct sl_ctx *ctx, __u32 index, char name[32]);

/* Policy watching: with no trace running, check the policies on one
 * packet in sample (per CPU), at most rate packets per second plus burst
 * (0: the defaults), until turned off. Violations go to sl_events. */
int sl_path_watch_set(struct sl_ctx *ctx, bool on, __u32 sample, __u32 rate,
		      __u32 burst);
struct sl_path_watch {
	bool on;
	__u32 sample, rate, burst;
	struct sl_obs_stats stats; /* since the state was made */
};
int sl_path_watch_get(struct sl_ctx *ctx, struct sl_path_watch *w);

#endif
