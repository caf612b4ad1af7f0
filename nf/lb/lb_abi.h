/* SPDX-License-Identifier: GPL-2.0 */
/* L4 load balancer NF: structures shared between its BPF program and
 * control code.
 *
 * A virtual service (VIP, port, protocol) points at one lookup table of
 * backend ids: a Maglev table of prime size M for "mh", the weighted
 * sequence for "rr"/"wrr". Tables live in an array of maps, two slots per
 * service; a change builds the new table in the spare slot and switches the
 * service entry to it with one map update. New flows are scheduled through
 * the table and remembered in an LRU flow table, so an established flow
 * keeps its backend whatever the table says later. */
#ifndef SLUICE_LB_ABI_H
#define SLUICE_LB_ABI_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* 1,000 services x 10 backends with room to spare; ids 0 are "none".
 * Half the backend ids at most are live: the rest let removed backends'
 * records (and their flows) live on before their ids are reused. */
#define LB_MAX_SERVICES 4096
#define LB_MAX_BACKENDS 65536
/* Per service: two table slots (the live one and the one being built). */
#define LB_MAX_TABLES (2 * LB_MAX_SERVICES + 2)
/* Flows remembered (LRU), in one table: an entry per connection and,
 * once its backend has answered, another for its NAT replies (131,072
 * NAT connections with replies). Twice the size
 * measured slower per packet, even for a hot flow (BPF_PROG_RUN: 125-155
 * against 72-81 ns, root + lb, established). */
#define LB_MAX_FLOWS 262144
/* Maglev table size: a prime well above 100 x backends keeps each
 * backend's share within ~1 % of its weight (Maglev paper, 5.3) for up to
 * 40 backends, at 16 KiB a service: 1,000 services take 16 MiB. */
#define LB_MH_DEFAULT 4093
#define LB_MH_MAX 65521
/* Longest rr/wrr sequence (sum of weights / their gcd, capped). */
#define LB_SEQ_MAX 65536

enum lb_sched {
	LB_SCHED_MH = 0, /* Maglev consistent hashing of the 5-tuple */
	LB_SCHED_RR = 1, /* round robin */
	LB_SCHED_WRR = 2, /* weighted round robin */
};

enum lb_fwd {
	LB_FWD_NAT = 0, /* DNAT to the backend, replies translated back */
	LB_FWD_IPIP = 1, /* direct server return, IP-in-IP to the backend */
	LB_FWD_MAC = 2, /* direct server return, same L2, MAC rewrite */
};

/* Service lookup key: addresses in network order (IPv4 in addr[0]),
 * port in host order. */
struct lb_vip_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* 4 or 6 */
};

struct lb_svc {
	__u32 id; /* 1..LB_MAX_SERVICES-1: index of counters and rr state */
	__u32 table_id; /* the live table in lb_tables */
	__u32 table_len; /* 0: no backend can take new flows */
	__u32 mh_size; /* Maglev M, kept for listings */
	__u8 sched; /* enum lb_sched */
	__u8 pad[3];
};

enum lb_be_flags {
	LB_BE_LIVE = 1 << 0, /* configured; clear once removed */
	LB_BE_UP = 1 << 1, /* health: up (new flows allowed) */
	LB_BE_GONE = 1 << 2, /* its service was removed: its flows end too */
	LB_BE_LAZY = 1 << 3, /* NAT: lb_nat_owners names it (set only after
			      * that entry), so its flows' reply entries wait
			      * for their first reply */
};

/* A backend, by id. A removed backend keeps its address so flows already
 * on it keep working (as IPVS without expire_nodest_conn); when its id is
 * reused, gen changes and flows recorded with the old gen are rescheduled. */
struct lb_be {
	__u32 addr[4]; /* network order */
	__u32 local[4]; /* IPIP: outer source address (the LB's own) */
	__u16 port; /* host order */
	__u8 family;
	__u8 fwd; /* enum lb_fwd */
	__u32 gen;
	__u32 svc_id;
	__u32 weight;
	__u8 flags; /* enum lb_be_flags */
	__u8 pad[3];
	/* 64 bytes: a record is one cache line, never two (52 bytes were
	 * laid out at an 8-byte stride). */
	__u32 pad2[3];
};

/* A flow by its 5-tuple as seen on the wire (ports host order). */
struct lb_flow_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

enum lb_flow_kind {
	LB_FLOW_FWD = 0, /* client to VIP: goes to backend */
	LB_FLOW_REPLY = 1, /* NAT reply (backend to client): source to vip:vport */
};

/* The one flow table holds both directions, so that any packet of a
 * known connection costs one lookup: keyed by the tuple on the wire. */
struct lb_flow {
	__u32 backend;
	__u32 svc_id;
	__u8 kind; /* enum lb_flow_kind */
	__u8 closing; /* forward: TCP FIN or RST seen; a later SYN is new */
	__u16 vport; /* reply: host order */
	__u32 gen; /* forward: the backend's gen when scheduled */
	__u32 vip[4]; /* reply */
	/* The kernel's LRU element (48-byte header, key, value) is then
	 * 128 bytes at a 128-byte stride: two whole cache lines, fetched as
	 * a pair, instead of 120 bytes straddling three lines most of the
	 * time (one lookup touches all of it: next pointer, hash, key,
	 * value). */
	__u32 pad[2];
};

/* NAT reply paths without an entry per new flow: the one backend record
 * that answers for a real server's endpoint (lb_vip_key: its address, port
 * and protocol), with its service's VIP and port. A reply from there with
 * no flow entry of its own looks for the forward flow it answers (client,
 * VIP:port) and, if that flow is on this backend, is translated and gets
 * its entry. Any other record of the same endpoint (a real server in
 * several services) records its reply entries with each new flow. */
struct lb_nat_owner {
	__u32 backend;
	__u32 gen; /* the backend's gen when it became the owner */
	__u32 vip[4];
	__u16 vport; /* host order */
	__u16 pad;
};

/* Per service and per backend (per-CPU). in: client to VIP; out: NAT
 * replies translated back (DSR replies never cross the LB). */
struct lb_counters {
	__u64 pkts_in;
	__u64 bytes_in;
	__u64 pkts_out;
	__u64 bytes_out;
	__u64 conns; /* flows scheduled */
};

/* Instance settings and bookkeeping (lb_state[0]). */
struct lb_state {
	__u32 next_backend; /* control plane: where the id allocator looks */
	__u32 decap; /* data plane: strip IP-in-IP (4in4, 6in6) headers; for
		      * backends of an IPIP service, where no tunnel device
		      * is available */
	__u32 forward; /* data plane: NAT packets leave by XDP/TC redirect
			* after a FIB lookup (as the router NF) */
};

/* One hash for the flow (BPF and user space share it, so tests can tell
 * which Maglev entry a flow uses): murmur3's finaliser over each word. */
static __always_inline __u32 lb_mix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 lb_flow_hash(const struct lb_flow_key *k)
{
	__u32 h = 0x5ca1ab1e;
	int i;

	for (i = 0; i < 4; i++)
		h = lb_mix(h ^ k->saddr[i]);
	for (i = 0; i < 4; i++)
		h = lb_mix(h ^ k->daddr[i]);
	h = lb_mix(h ^ ((__u32)k->sport << 16 | k->dport));
	return lb_mix(h ^ k->proto);
}

#endif
