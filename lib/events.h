/* SPDX-License-Identifier: GPL-2.0 */
/* libsluice events: what the data plane reports through the pinned ring
 * buffer sl_events (record layout in bpf/include/events.h), its
 * configuration, and a reader that decodes each record.
 *
 * A BPF ring buffer has one consumer position: two readers would each see
 * part of the events. sl_events_open() therefore takes a per-namespace
 * reader lock and fails with -EBUSY while another process reads. */
#ifndef SLUICE_EVENTS_H
#define SLUICE_EVENTS_H

#include <net/if.h>
#include <netinet/in.h>
#include "sluice.h"

/* Drop sampling: 0 turns drop events off (the default), N reports one drop
 * in N per CPU. Takes effect at once for every program of the namespace. */
int sl_events_config(struct sl_ctx *ctx, __u32 drop_sample);
int sl_events_get_config(struct sl_ctx *ctx, __u32 *drop_sample);

/* Counters summed over CPUs: events written, and lost to a full ring. */
struct sl_events_stats {
	__u64 emitted;
	__u64 lost;
};
int sl_events_stats(struct sl_ctx *ctx, struct sl_events_stats *st);

/* One event decoded: the raw record and its fields as text. */
struct sl_event_view {
	const struct sl_event *raw;
	const char *type; /* "drop", "path" */
	const char *hook; /* "ingress", "tc-ingress", "egress" */
	const char *reason; /* drop reason name, e.g. "firewall-rule" */
	const char *proto; /* "tcp", "udp", "icmp", "icmpv6", a number, "" */
	char instance[SL_NAME_MAX]; /* "root" for slot 0; "slot-N" if gone */
	char dev[IF_NAMESIZE]; /* "ifN" when the interface is gone */
	char src[INET6_ADDRSTRLEN]; /* "" when not IP */
	char dst[INET6_ADDRSTRLEN];
	__u64 realtime_ns; /* ts_ns as wall-clock time (CLOCK_REALTIME) */
	/* "path" events: instance is the one not passed, reason points to
	 * policy, the policy's name. */
	char policy[32];
	__u32 trace_id;
	/* "log" events: reason points to prefix, the LOG rule's prefix. */
	char prefix[SL_EVENT_LOG_PREFIX];
};

/* Called for each event; a negative return stops sl_events_poll(), which
 * then returns it. */
typedef int (*sl_event_cb)(const struct sl_event_view *ev, void *arg);

struct sl_events;
/* Opens a reader on ctx's ring; ctx must stay open while it is used. */
int sl_events_open(struct sl_ctx *ctx, sl_event_cb cb, void *arg,
		   struct sl_events **out);
/* Waits up to timeout_ms (-1: forever; 0: no wait, just consumes what is
 * there) and hands every waiting event to the callback. Returns the number
 * of events handled, or a negative errno / the callback's negative value. */
int sl_events_poll(struct sl_events *ev, int timeout_ms);
/* The ring's epoll descriptor, to wait in one's own event loop. */
int sl_events_fd(struct sl_events *ev);
void sl_events_close(struct sl_events *ev);

/* Fills view from a raw record (for readers with their own ring). */
void sl_event_decode(struct sl_ctx *ctx, const struct sl_event *raw,
		     struct sl_event_view *view);
const char *sl_event_type_name(unsigned int type);

/* Instance names by slot for readers of many records: a cache read again
 * when a slot is unknown or the names are older than a second. */
struct sl_slot_names;
struct sl_slot_names *sl_slot_names_new(struct sl_ctx *ctx); /* NULL: ENOMEM */
/* "root" for slot 0, "slot-N" for a slot no instance holds. */
void sl_slot_name(struct sl_slot_names *n, __u32 slot, char name[SL_NAME_MAX]);
void sl_slot_names_free(struct sl_slot_names *n);

#endif
