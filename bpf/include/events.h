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
/* 2: path-policy events (trace_id, policy). */
#define SL_EVENT_LOG_PREFIX 32
#define SL_EVENT_VERSION 2

enum sl_event_type {
	SL_EVENT_DROP = 1, /* a packet dropped, with its reason */
	SL_EVENT_LOG = 2, /* a rule asked to log the packet (iptables LOG):
			   * data[] holds its prefix, NUL-terminated, up to
			   * SL_EVENT_LOG_PREFIX bytes; cap_len is 0 */
	SL_EVENT_HEALTH = 3, /* reserved */
	SL_EVENT_ANOMALY = 4, /* reserved */
	/* A traced packet left a chain alive without passing the instance a
	 * path policy requires: slot is that instance, policy its index in
	 * sl_pathpol, reason 0. */
	SL_EVENT_PATH = 5,
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
	/* version 2 */
	__u32 trace_id; /* PATH: the trace of the packet */
	__u32 policy; /* PATH: index of the policy in sl_pathpol */
};

/* The one entry of sl_evcfg (an array), written by user space. */
struct sl_evcfg {
	__u32 drop_sample; /* 0: no drop events; N: one drop event in N drops */
	__u32 obs; /* enum sl_obs_flags: what a capture or trace session wants */
};

/* The one entry of sl_evstats (per-CPU), written by BPF. */
struct sl_evstats {
	__u64 drop_tick; /* drops since the last sampled one (this CPU) */
	__u64 emitted; /* events written to the ring */
	__u64 lost; /* events not written: the ring was full */
};

/* ---- Capture and path tracing ------------------------------------------
 * One observation session (sluice capture or sluice trace) per namespace
 * at a time: it holds the reader lock of the ring sl_obs, sets sl_obscfg,
 * then turns its flag on in sl_evcfg.obs. With sl_evcfg.obs == 0 the data
 * plane pays one load and one branch in the root and one test of
 * sl_meta.trace per NF. */
#define SL_OBS_RING_SIZE (4 << 20)
/* Largest --snaplen: a full 1500-byte MTU frame with VLAN tags fits. The
 * copy mask needs a power of two. */
#define SL_CAPTURE_SNAPLEN_MAX 2048
/* Terms of a filter expression (`host A and port 80 or proto icmp`). */
#define SL_FILTER_TERMS 8
/* Path policies: checked on each traced packet, so a small fixed table. */
#define SL_PATHPOL_MAX 16

enum sl_obs_flags {
	SL_OBS_CAPTURE_DROPS = 1 << 0, /* copy dropped packets at sl_finish */
	SL_OBS_CAPTURE_ALL = 1 << 1, /* mark matching packets at the root */
	SL_OBS_TRACE = 1 << 2, /* trace matching packets from the root */
	/* Check path policies on sampled packets with no session running
	 * (sl_polcfg); lasts until turned off. */
	SL_OBS_POLICY_WATCH = 1 << 3,
};

/* Bits of sl_meta.trace, set by the root for this packet. */
enum sl_meta_trace {
	SL_MT_TRACE = 1 << 0, /* emit a hop record at each sl_finish */
	SL_MT_CAPTURE = 1 << 1, /* copy the packet when its chain ends */
	SL_MT_POLICY = 1 << 2, /* check path policies when its chain ends */
};

enum sl_filter_kind {
	SL_FK_ADDR = 1, /* address in a prefix: host, src, dst, net */
	SL_FK_PORT = 2, /* TCP/UDP port */
	SL_FK_PROTO = 3, /* IP protocol (and family for icmp/icmp6) */
};

enum sl_filter_dir {
	SL_FD_ANY = 0, /* source or destination */
	SL_FD_SRC = 1,
	SL_FD_DST = 2,
};

/* One term. Terms are ANDed; a term with or_before starts a new group, and
 * the filter matches when any group matches (and binds tighter than or).
 * No terms: everything matches. */
struct sl_filter_term {
	__u8 kind; /* enum sl_filter_kind */
	__u8 dir; /* enum sl_filter_dir */
	__u8 family; /* ADDR: 4 or 6; PROTO: 4, 6 or 0 for both */
	__u8 or_before;
	__u8 proto; /* PROTO */
	__u8 pad;
	__u16 port; /* PORT, host order */
	__u32 addr[4]; /* ADDR: network order, already masked */
	__u32 mask[4];
};

struct sl_filter {
	__u32 nterms;
	__u32 pad;
	struct sl_filter_term terms[SL_FILTER_TERMS];
};

/* The one entry of sl_obscfg (an array), written by the session. */
struct sl_obscfg {
	__u32 ifindex; /* 0: every interface */
	__u32 sample; /* take one matching packet in N per CPU (0, 1: all) */
	__u32 snaplen; /* capture: bytes copied, 1..SL_CAPTURE_SNAPLEN_MAX */
	__u32 pad;
	/* Per-CPU token bucket: each packet taken costs cost_ns of credit,
	 * credit grows with time up to burst_ns (rate and burst per CPU). */
	__u64 cost_ns;
	__u64 burst_ns;
	struct sl_filter filter;
};

/* The one entry of sl_polcfg (an array): path-policy watching without a
 * trace session, sampled and rate-limited as a session is. */
struct sl_polcfg {
	__u32 sample; /* one packet in N per CPU (0, 1: all) */
	__u32 rate; /* packets per second, as given (for display) */
	__u32 burst;
	__u32 pad;
	__u64 cost_ns; /* per-CPU token bucket, as in sl_obscfg */
	__u64 burst_ns;
};

/* The one entry of sl_obsstate and of sl_polstate (per-CPU), written by
 * BPF: the session's, and policy watching's. */
struct sl_obsstate {
	__u64 credit_ns;
	__u64 last_ns;
	__u64 sample_tick;
	__u64 matched; /* packets that matched the filter */
	__u64 limited; /* matched but over the rate limit */
	__u64 emitted; /* records written to sl_obs */
	__u64 lost; /* records not written: sl_obs was full */
	__u64 next_trace; /* trace ids of this CPU */
	__u64 violations; /* path-policy events */
};

enum sl_obs_type {
	SL_OBS_CAPTURE = 1, /* struct sl_cap_rec */
	SL_OBS_HOP = 2, /* struct sl_hop_rec */
};

/* A captured packet: header, then cap_len bytes of the frame. */
struct sl_cap_rec {
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u16 type; /* SL_OBS_CAPTURE */
	__u16 cap_len;
	__u32 ifindex;
	__u32 slot; /* instance that decided; 0: the root */
	__s32 verdict; /* enum sl_verdict, or -enum sl_drop_reason */
	__u32 pkt_len;
	__u8 hook;
	__u8 pad[3];
	__u8 data[]; /* SL_CAPTURE_SNAPLEN_MAX at most */
};

/* One hop of a traced packet: written at each sl_finish. The root's hop
 * (slot 0) starts the trace; a hop with end set is the last one of the
 * chain. Time spent in an NF is its ts_ns minus the previous hop's. */
struct sl_hop_rec {
	__u64 ts_ns;
	__u16 type; /* SL_OBS_HOP */
	__u8 hook;
	__u8 end; /* the packet leaves the chain (drop, pass, redirect) */
	__u32 trace_id;
	__u32 slot;
	__s32 verdict;
	__u32 ifindex;
	__u32 pkt_len;
	__u8 family;
	__u8 ip_proto;
	__u8 pos; /* position in the chain; 0 for the root */
	__u8 pad;
	__u16 sport; /* host order */
	__u16 dport;
	__u32 saddr[4];
	__u32 daddr[4];
	__u32 violated; /* end hop: 1 + index of a policy not followed; 0 */
	__u32 pad2;
};

/* A path policy: traffic from src to dst must pass the instance in slot
 * via_slot (checked on traced packets that leave a chain alive). */
struct sl_pathpol {
	__u32 used;
	__u32 via_slot;
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
	__u32 src[4]; /* network order, masked */
	__u32 src_mask[4];
	__u32 dst[4];
	__u32 dst_mask[4];
	char name[32];
	char via[32]; /* the instance's name when the policy was added */
};

#endif
