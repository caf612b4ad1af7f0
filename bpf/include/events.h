/* SPDX-License-Identifier: GPL-2.0 */
/* Events the data plane reports through the pinned ring buffer sl_events,
 * shared between BPF and user space (included by sluice_abi.h). The record
 * layout is part of pinned state: add fields at the end and raise
 * SL_EVENT_VERSION; readers skip records of an unknown type and read only
 * what they know of a longer record (struct sl_event.size). */
#ifndef SLUICE_EVENTS_ABI_H
#define SLUICE_EVENTS_ABI_H

/* Ring buffer bytes: a power of two, a multiple of the page size. One
 * record takes sizeof(struct sl_event) + 8 bytes: about 5,000 records. */
#define SL_EVENTS_RING_SIZE (1 << 20)
/* Leading packet bytes copied into a drop event (for pcap capture). */
#define SL_EVENT_SNAPLEN 128
#define SL_EVENT_VERSION 1

enum sl_event_type {
	SL_EVENT_DROP = 1, /* a packet dropped, with its reason */
	SL_EVENT_LOG = 2, /* reserved: a rule asked to log the packet */
	SL_EVENT_HEALTH = 3, /* reserved */
	SL_EVENT_ANOMALY = 4, /* reserved */
};

struct sl_event {
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u16 type; /* enum sl_event_type */
	__u16 size; /* bytes of this record as written */
	__u32 ifindex; /* interface the packet was seen on */
	__u32 slot; /* instance that decided; 0: the root program */
	__u32 pkt_len; /* packet bytes on the wire */
	__u8 hook; /* enum sl_hook */
	__u8 reason; /* enum sl_drop_reason (DROP) */
	__u8 family; /* 4, 6, or 0 when not IP */
	__u8 ip_proto;
	__u16 sport; /* host order; 0 unless TCP/UDP */
	__u16 dport;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 version; /* SL_EVENT_VERSION */
	__u16 cap_len; /* bytes in data[] */
	__u16 pad;
	__u32 saddr[4]; /* network order; IPv4 in saddr[0] */
	__u32 daddr[4];
	__u8 data[SL_EVENT_SNAPLEN]; /* the first cap_len bytes of the frame */
};

/* The one entry of sl_evcfg (an array), written by user space. */
struct sl_evcfg {
	__u32 drop_sample; /* 0: no drop events; N: one drop event in N drops */
	__u32 pad;
};

/* The one entry of sl_evstats (per-CPU), written by BPF. */
struct sl_evstats {
	__u64 drop_tick; /* drops since the last sampled one (this CPU) */
	__u64 emitted; /* events written to the ring */
	__u64 lost; /* events not written: the ring was full */
};

#endif
