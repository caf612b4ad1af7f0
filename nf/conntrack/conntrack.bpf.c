// SPDX-License-Identifier: GPL-2.0
/* Conntrack NF: tracks TCP, UDP, ICMP/ICMPv6 queries and other protocols
 * over IPv4 and IPv6 as the kernel's nf_conntrack does, and marks every
 * packet for the NFs after it: meta->ct_state (one SL_CT_* bit) and
 * meta->ct_dir. It never drops, unless told to drop INVALID packets.
 *
 * The table is an LRU hash (full: the least recently used entry makes
 * room, as the kernel's early drop). Entries expire lazily (a packet that
 * finds an expired entry starts afresh) and an in-kernel sweep driven by a
 * bpf_timer removes them, so nothing depends on a user-space process. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "chains.h"
#include "parse.h"
#include "conntrack_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define CLOCK_MONOTONIC 1
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80

/* The slot of this instance, set by the loader. */
const volatile __u32 ct_slot = 0;

/* IPv4 connections (conntrack_abi.h: struct ct_key4), and IPv6 ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_DEFAULT_MAX); /* set by the loader */
	__type(key, struct ct_key4);
	__type(value, struct ct_entry);
} ct_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_DEFAULT_MAX); /* set by the loader */
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} ct_table6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_config);
} ct_config SEC(".maps");

/* Per CPU and hook, the key of the entry the current packet created (a
 * later drop deletes it, sl_ct_undo_*) or, for TCP, the one it belongs to
 * (a tcp-reset answer closes it, sl_ct_close_*). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct ct_key);
} ct_new SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_stats);
} ct_stats SEC(".maps");

struct ct_gc_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ct_gc_timer);
} ct_gc SEC(".maps");

/* Fragments: what the first fragment of a packet was classified as, for
 * the later fragments, which carry no L4 header. */
struct ct_frag_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u32 id; /* IPv4 identification or IPv6 fragment header id */
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct ct_frag_val {
	__u64 expires_ns;
	__u8 state;
	__u8 dir;
	__u8 pad[6];
};

/* The kernel gives a datagram 30 s to be reassembled (ipfrag_time). */
#define CT_FRAG_TIMEOUT_NS (30ULL * 1000000000ULL)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct ct_frag_key);
	__type(value, struct ct_frag_val);
} ct_frags SEC(".maps");

/* ---- TCP: the kernel's state machine (nf_conntrack_proto_tcp.c) -------- */

/* Which of RST/SYN/FIN/ACK decides the transition (the kernel's
 * enum tcp_bit_set). */
enum ct_tcp_index { CT_I_SYN, CT_I_SYNACK, CT_I_FIN, CT_I_ACK, CT_I_RST, CT_I_NONE };

#define sNO CT_TCP_NONE
#define sSS CT_TCP_SYN_SENT
#define sSR CT_TCP_SYN_RECV
#define sES CT_TCP_ESTABLISHED
#define sFW CT_TCP_FIN_WAIT
#define sCW CT_TCP_CLOSE_WAIT
#define sLA CT_TCP_LAST_ACK
#define sTW CT_TCP_TIME_WAIT
#define sCL CT_TCP_CLOSE
#define sS2 CT_TCP_SYN_SENT2
#define sIV CT_TCP_MAX
#define sIG CT_TCP_IGNORE

/* [direction][index][old state] -> new state, as the kernel's table. */
static const __u8 ct_tcp_table[2][6][CT_TCP_MAX] = {
	{
/*	     sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 */
/*syn*/	   { sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2 },
/*synack*/ { sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR },
/*fin*/    { sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV },
/*ack*/	   { sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV },
/*rst*/    { sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
/*none*/   { sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
	}, {
/*	     sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2 */
/*syn*/	   { sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2 },
/*synack*/ { sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR },
/*fin*/    { sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV },
/*ack*/	   { sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG },
/*rst*/    { sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
/*none*/   { sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
	}
};

/* Flag combinations the kernel accepts (tcp_valid_flags), PSH, ECE and
 * CWR aside: bit n set when flags n are valid. */
#define CT_TCP_VALID_FLAGS                                                     \
	((1ULL << TCPF_SYN) | (1ULL << (TCPF_SYN | TCPF_URG)) |                \
	 (1ULL << (TCPF_SYN | TCPF_ACK)) | (1ULL << TCPF_RST) |                \
	 (1ULL << (TCPF_RST | TCPF_ACK)) | (1ULL << (TCPF_FIN | TCPF_ACK)) |   \
	 (1ULL << (TCPF_FIN | TCPF_ACK | TCPF_URG)) | (1ULL << TCPF_ACK) |     \
	 (1ULL << (TCPF_ACK | TCPF_URG)))

/* What the state machine makes of a packet. */
enum ct_step {
	CT_STEP_OK, /* new state and timeout apply */
	CT_STEP_IGNORE, /* let through; only the bookkeeping bits change */
	CT_STEP_INVALID, /* out of state: nothing changes */
	CT_STEP_KILL, /* RST as the only answer: the entry goes */
	CT_STEP_REOPEN, /* SYN on a closed connection: start a new entry */
};

/* What the tracker needs from one packet. */
struct ct_pkt {
	struct ct_key key;
	__u8 sender; /* key endpoint that sent the packet */
	__u8 index; /* enum ct_tcp_index */
	__u8 query_reply; /* ICMP query: the packet is the reply */
	__u8 untracked;
	__u32 ack;
	__u32 end; /* TCP: seq + payload length + SYN + FIN */
	__u32 l3_len;
	__u32 created; /* this packet created its entry */
};

static __always_inline __u32 ct_last_index(__u64 w)
{
	return (w >> CT_ST_LAST_INDEX_SHIFT) & 7;
}

static __always_inline __u32 ct_last_end(__u64 w)
{
	return w >> CT_ST_LAST_END_SHIFT;
}

static __always_inline __u64 ct_set_last(__u64 w, __u32 index, __u32 dir)
{
	w &= ~((7ULL << CT_ST_LAST_INDEX_SHIFT) | CT_ST_LAST_DIR);
	w |= (__u64)index << CT_ST_LAST_INDEX_SHIFT;
	if (dir)
		w |= CT_ST_LAST_DIR;
	return w;
}

static __always_inline __u32 ct_tcp_index(__u8 flags)
{
	if (flags & TCPF_RST)
		return CT_I_RST;
	if (flags & TCPF_SYN)
		return flags & TCPF_ACK ? CT_I_SYNACK : CT_I_SYN;
	if (flags & TCPF_FIN)
		return CT_I_FIN;
	if (flags & TCPF_ACK)
		return CT_I_ACK;
	return CT_I_NONE;
}

static __always_inline __u64 ct_timeout(const struct ct_config *cfg, __u32 idx)
{
	return idx < CT_TO_MAX ? cfg->timeout_ns[idx] : 0;
}

/* One TCP packet in direction dir against state word old (the kernel's
 * nf_conntrack_tcp_packet without window tracking). Sets *next and the
 * timeout *to (0: keep the current one). */
static __always_inline int ct_tcp_step(const struct ct_config *cfg, __u64 old,
				       __u32 dir, const struct ct_pkt *p,
				       __u64 *next, __u64 *to)
{
	__u32 os = old & CT_ST_TCP_MASK, ns, idx = p->index;
	bool last_dir = !!(old & CT_ST_LAST_DIR);
	__u64 w = old, t;

	*to = 0;
	if (os >= CT_TCP_MAX || idx > CT_I_NONE || dir > 1)
		return CT_STEP_INVALID;
	ns = ct_tcp_table[dir][idx][os];
	switch (ns) {
	case CT_TCP_SYN_SENT:
		if (os < CT_TCP_TIME_WAIT)
			break;
		/* A SYN on a connection closed by FIN, or reset from this
		 * side: a new connection on the same ports (RFC 1122). */
		if ((old & (CT_ST_CLOSE_INIT0 | CT_ST_CLOSE_INIT1)) ||
		    (last_dir == dir && ct_last_index(old) == CT_I_RST))
			return CT_STEP_REOPEN;
		/* fallthrough */
	case CT_TCP_IGNORE:
		if (idx == CT_I_SYNACK && ct_last_index(old) == CT_I_SYN &&
		    last_dir != dir && p->ack == ct_last_end(old)) {
			/* It answers a SYN we ignored: both ends are in
			 * sync and we were not. */
			os = CT_TCP_SYN_SENT;
			ns = CT_TCP_SYN_RECV;
			w &= ~CT_ST_CHALLENGE;
			break;
		}
		w = ct_set_last(w, idx, dir);
		w = (w & 0xffffffffULL) | ((__u64)p->end << CT_ST_LAST_END_SHIFT);
		if (idx == CT_I_SYN && dir == 0) {
			w &= ~(CT_ST_CHALLENGE | CT_ST_SIMUL_OPEN);
			if (os == CT_TCP_LAST_ACK)
				w |= CT_ST_CHALLENGE;
		}
		if (dir)
			w |= CT_ST_SEEN_REPLY;
		*next = w;
		return CT_STEP_IGNORE;
	case CT_TCP_MAX:
		return CT_STEP_INVALID;
	case CT_TCP_TIME_WAIT:
		/* An RFC 5961 challenge ACK does not ack the last FIN. */
		if (os == CT_TCP_LAST_ACK && idx == CT_I_ACK && last_dir != dir &&
		    ct_last_index(old) == CT_I_SYN && (old & CT_ST_CHALLENGE)) {
			w &= ~CT_ST_CHALLENGE;
			if (dir)
				w |= CT_ST_SEEN_REPLY;
			*next = w;
			return CT_STEP_IGNORE;
		}
		break;
	case CT_TCP_SYN_SENT2:
		w |= CT_ST_SIMUL_OPEN;
		break;
	case CT_TCP_SYN_RECV:
		if (dir == 1 && idx == CT_I_ACK && (old & CT_ST_SIMUL_OPEN))
			ns = CT_TCP_ESTABLISHED;
		break;
	default:
		break;
	}

	w = ct_set_last(w, idx, dir);
	w = (w & ~CT_ST_TCP_MASK) | ns;
	if (os != ns && ns == CT_TCP_FIN_WAIT)
		w |= dir ? CT_ST_CLOSE_INIT1 : CT_ST_CLOSE_INIT0;
	t = idx == CT_I_RST ? ct_timeout(cfg, CT_TCP_CLOSE) : ct_timeout(cfg, ns);
	if (!(old & CT_ST_SEEN_REPLY)) {
		if (idx == CT_I_RST)
			return CT_STEP_KILL;
		/* A retransmitted SYN does not extend the entry's life. */
		if (idx == CT_I_SYN && os == CT_TCP_SYN_SENT)
			t = 0;
		/* A picked-up connection gets the short timeout until
		 * answered. */
		if (ns == CT_TCP_ESTABLISHED && t > ct_timeout(cfg, CT_TO_TCP_UNACK))
			t = ct_timeout(cfg, CT_TO_TCP_UNACK);
	} else if (!(old & CT_ST_ASSURED) &&
		   (os == CT_TCP_SYN_RECV || os == CT_TCP_ESTABLISHED) &&
		   ns == CT_TCP_ESTABLISHED) {
		w |= CT_ST_ASSURED;
	}
	if (dir)
		w |= CT_ST_SEEN_REPLY;
	*next = w;
	*to = t;
	return CT_STEP_OK;
}

/* ---- parsing what the root did not ------------------------------------ */

/* Offsets come from the root's parse; masks make the bounds visible to
 * the verifier (headers sit in the first 512 bytes). */
#define CT_OFF_MASK 0x1ff

static __always_inline void *ct_ptr(void *data, void *data_end, __u32 off,
				    __u32 len)
{
	void *p = data + (off & CT_OFF_MASK);

	if (p + len > data_end)
		return NULL;
	return p;
}

/* Length of the IP packet (header and payload), or 0. */
static __always_inline __u32 ct_l3_len(void *data, void *data_end,
				       const struct sl_meta *m)
{
	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = ct_ptr(data, data_end, m->l3_off, sizeof(*ip));

		return ip ? bpf_ntohs(ip->tot_len) : 0;
	} else {
		struct ipv6hdr *ip6 = ct_ptr(data, data_end, m->l3_off, sizeof(*ip6));

		return ip6 ? bpf_ntohs(ip6->payload_len) + sizeof(*ip6) : 0;
	}
}

/* Sorts the packet's two endpoints into the key; records which one sent. */
static __always_inline void ct_key_fill(struct ct_pkt *p, const __u32 *saddr,
					const __u32 *daddr, __u16 sport,
					__u16 dport, __u8 proto, __u8 family)
{
	int cmp = 0, i;

	for (i = 0; i < 4; i++) {
		if (saddr[i] != daddr[i]) {
			cmp = saddr[i] < daddr[i] ? -1 : 1;
			break;
		}
	}
	if (!cmp && sport != dport)
		cmp = sport < dport ? -1 : 1;
	/* Branches, not indexes: the verifier refuses a variable offset
	 * into the stack built by OR-ing. */
	if (cmp > 0) {
		p->sender = 1;
		__builtin_memcpy(p->key.addr[0], daddr, 16);
		__builtin_memcpy(p->key.addr[1], saddr, 16);
		p->key.port[0] = dport;
		p->key.port[1] = sport;
	} else {
		p->sender = 0;
		__builtin_memcpy(p->key.addr[0], saddr, 16);
		__builtin_memcpy(p->key.addr[1], daddr, 16);
		p->key.port[0] = sport;
		p->key.port[1] = dport;
	}
	p->key.proto = proto;
	p->key.family = family;
	p->key.pad = 0;
}

/* ICMP queries: the request type answered by a reply type, or 0. */
static __always_inline __u8 ct_icmp_request_of(__u8 type, bool v6, bool *reply)
{
	*reply = false;
	if (v6) {
		if (type == 128 || type == 139)
			return type;
		*reply = true;
		if (type == 129 || type == 140)
			return type - 1;
	} else {
		if (type == 8 || type == 13 || type == 15 || type == 17)
			return type;
		*reply = true;
		if (type == 0)
			return 8;
		if (type == 14 || type == 16 || type == 18)
			return type - 1;
	}
	*reply = false;
	return 0;
}

static __always_inline bool ct_icmp_is_error(__u8 type, bool v6)
{
	if (v6)
		return type < 128;
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* ICMPv6 messages the kernel leaves untracked: MLD, neighbour discovery
 * and multicast router discovery advertisements and solicitations
 * (nf_conntrack_proto_icmpv6.c, noct_valid_new; 151 and 152 seen with
 * the kernel's OUTPUT counters). */
static __always_inline bool ct_icmpv6_untracked(__u8 type)
{
	return (type >= 130 && type <= 136) || type == 143 || type == 151 ||
	       type == 152;
}

/* Fills p for an ICMP query (request or reply) with the given code and
 * id (the kernel's ICMP tuple holds both: a reply must match them). */
static __always_inline int ct_icmp_key(struct ct_pkt *p, const __u32 *saddr,
				       const __u32 *daddr, __u8 type, __u8 code,
				       __u16 id, bool v6)
{
	bool reply;
	__u8 req = ct_icmp_request_of(type, v6, &reply);

	if (!req)
		return -1;
	p->query_reply = reply;
	p->sender = reply;
	/* Endpoint 0 is the requester, so the reply finds the request's
	 * entry; the request type keeps echo and timestamp apart. */
	__builtin_memcpy(p->key.addr[0], reply ? daddr : saddr, 16);
	__builtin_memcpy(p->key.addr[1], reply ? saddr : daddr, 16);
	p->key.port[0] = id;
	p->key.port[1] = req | code << 8;
	p->key.proto = v6 ? SL_IPPROTO_ICMPV6 : SL_IPPROTO_ICMP;
	p->key.family = v6 ? 6 : 4;
	p->key.pad = 0;
	return 0;
}

/* ---- per-packet tracking ---------------------------------------------- */

static __always_inline struct ct_stats *ct_stats_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ct_stats, &zero);
}

/* The table of the key's family: lookup, update, delete. */
static __always_inline struct ct_entry *ct_tbl_lookup(const struct ct_key *k)
{
	struct ct_key4 k4;

	if (k->family != 4)
		return bpf_map_lookup_elem(&ct_table6, k);
	ct_key4_of(k, &k4);
	return bpf_map_lookup_elem(&ct_table, &k4);
}

static __always_inline long ct_tbl_update(const struct ct_key *k,
					  const struct ct_entry *e, __u64 flags)
{
	struct ct_key4 k4;

	if (k->family != 4)
		return bpf_map_update_elem(&ct_table6, k, e, flags);
	ct_key4_of(k, &k4);
	return bpf_map_update_elem(&ct_table, &k4, e, flags);
}

static __always_inline long ct_tbl_delete(const struct ct_key *k)
{
	struct ct_key4 k4;

	if (k->family != 4)
		return bpf_map_delete_elem(&ct_table6, k);
	ct_key4_of(k, &k4);
	return bpf_map_delete_elem(&ct_table, &k4);
}

/* The clock in CT_TIME_SHIFT units, truncated: compared wrap-safely. */
static __always_inline __u32 ct_time_units(__u64 ns)
{
	return ns >> CT_TIME_SHIFT;
}

/* Direction of a packet on an entry: 0 from the originator. */
static __always_inline __u32 ct_dir_of(const struct ct_pkt *p, __u64 w)
{
	if (p->key.proto == SL_IPPROTO_ICMP || p->key.proto == SL_IPPROTO_ICMPV6)
		return p->query_reply;
	return p->sender != !!(w & CT_ST_ORIG_IS_1);
}

/* First packet of a connection: whether it may open one, and its entry. */
static __always_inline int ct_new_entry(const struct ct_config *cfg,
					const struct ct_pkt *p, __u64 now,
					struct ct_entry *e)
{
	__u64 w = p->sender ? CT_ST_ORIG_IS_1 : 0, to;
	__u32 ns;

	__builtin_memset(e, 0, sizeof(*e));
	switch (p->key.proto) {
	case SL_IPPROTO_TCP:
		if (p->index > CT_I_NONE)
			return -1;
		ns = ct_tcp_table[0][p->index][CT_TCP_NONE];
		if (ns >= CT_TCP_MAX)
			return -1;
		if (ns != CT_TCP_SYN_SENT && !(cfg->flags & CT_CFG_LOOSE))
			return -1;
		w = ct_set_last(w | ns, p->index, 0);
		to = ct_timeout(cfg, ns);
		if (ns == CT_TCP_ESTABLISHED && to > ct_timeout(cfg, CT_TO_TCP_UNACK))
			to = ct_timeout(cfg, CT_TO_TCP_UNACK);
		break;
	case SL_IPPROTO_UDP:
		w |= (__u64)ct_time_units(now) << CT_ST_CREATED_SHIFT;
		to = ct_timeout(cfg, CT_TO_UDP);
		break;
	case SL_IPPROTO_ICMP:
	case SL_IPPROTO_ICMPV6:
		if (p->query_reply)
			return -1; /* a reply opens nothing */
		w = 0;
		to = ct_timeout(cfg, p->key.proto == SL_IPPROTO_ICMP ? CT_TO_ICMP :
								      CT_TO_ICMPV6);
		break;
	default:
		to = ct_timeout(cfg, CT_TO_GENERIC);
		break;
	}
	e->state = w;
	e->expires_ns = now + to;
	e->packets[0] = 1;
	e->bytes[0] = p->l3_len;
	return 0;
}

/* The next state word and timeout of an entry for protocols other than
 * TCP: replies mark it, UDP streams become assured (nf_conntrack_proto_udp:
 * replied and still active 2 s after the first packet). */
static __always_inline __u64 ct_other_step(const struct ct_config *cfg,
					   __u64 old, __u32 dir, __u8 proto,
					   __u64 now, __u64 *to)
{
	__u32 created = old >> CT_ST_CREATED_SHIFT;
	__u64 w = old;

	switch (proto) {
	case SL_IPPROTO_UDP:
		*to = ct_timeout(cfg, CT_TO_UDP);
		if ((old & CT_ST_SEEN_REPLY) &&
		    (__s32)(ct_time_units(now) - created) >
			    (__s32)(2000000000ULL >> CT_TIME_SHIFT)) {
			*to = ct_timeout(cfg, CT_TO_UDP_STREAM);
			w |= CT_ST_ASSURED;
		}
		break;
	case SL_IPPROTO_ICMP:
		*to = ct_timeout(cfg, CT_TO_ICMP);
		break;
	case SL_IPPROTO_ICMPV6:
		*to = ct_timeout(cfg, CT_TO_ICMPV6);
		break;
	default:
		*to = ct_timeout(cfg, CT_TO_GENERIC);
		if (old & CT_ST_SEEN_REPLY)
			w |= CT_ST_ASSURED;
		break;
	}
	if (dir)
		w |= CT_ST_SEEN_REPLY;
	return w;
}

/* Inserts a new entry for p; on a lost race, the caller looks up again. */
static __always_inline int ct_insert(const struct ct_pkt *p,
				     struct ct_entry *e, __u64 flags)
{
	return ct_tbl_update(&p->key, e, flags);
}

/* Classifies a packet with an existing entry e; returns an SL_CT_* bit
 * and sets *dir. */
static __always_inline __u32 ct_track(const struct ct_config *cfg,
				      struct ct_pkt *p, struct ct_entry *e,
				      __u64 now, __u32 *dir,
				      struct ct_stats *st)
{
	struct ct_entry fresh;
	__u64 old, next, to = 0;
	int step = CT_STEP_OK, i;
	__u32 d = 0;

	for (i = 0; i < 4; i++) {
		old = e->state;
		d = ct_dir_of(p, old);
		if (p->key.proto == SL_IPPROTO_TCP)
			step = ct_tcp_step(cfg, old, d, p, &next, &to);
		else
			next = ct_other_step(cfg, old, d, p->key.proto, now, &to);
		if (step == CT_STEP_INVALID || step == CT_STEP_KILL ||
		    step == CT_STEP_REOPEN || next == old)
			break;
		if (__sync_val_compare_and_swap(&e->state, old, next) == old)
			break;
	}
	*dir = d;
	switch (step) {
	case CT_STEP_INVALID:
		return SL_CT_INVALID;
	case CT_STEP_KILL:
		ct_tbl_delete(&p->key);
		if (st)
			st->killed++;
		break;
	case CT_STEP_REOPEN:
		/* The old connection is over: this SYN opens a new one. */
		if (ct_new_entry(cfg, p, now, &fresh))
			return SL_CT_INVALID;
		ct_tbl_update(&p->key, &fresh, BPF_ANY);
		p->created = 1;
		if (st) {
			st->killed++;
			st->created++;
		}
		*dir = 0;
		return SL_CT_NEW;
	case CT_STEP_OK:
		if (to)
			e->expires_ns = now + to;
		__sync_fetch_and_add(&e->packets[d & 1], 1);
		__sync_fetch_and_add(&e->bytes[d & 1], p->l3_len);
		break;
	default: /* ignored: neither refreshed nor counted, as the kernel */
		break;
	}
	if (d || (old & CT_ST_SEEN_REPLY))
		return SL_CT_ESTABLISHED;
	return SL_CT_NEW;
}

/* An entry's NAT note, unpacked for sl_meta.ct_nat: its freshness as a
 * deadline again, rounded down (never later than NAT wrote it). */
static __always_inline void ct_note_hand(const struct ct_nat_slot *n,
					 __u64 now, struct sl_ct_nat_note *note)
{
	__s32 left = n->fresh - ct_time_units(now);

	note->addr = n->addr;
	note->port = n->port;
	note->sender = n->epoch_sender & 1;
	note->ifindex = n->ifindex;
	note->epoch = n->epoch_sender & 0xfffe;
	note->fresh_until = left > 0 ? ((now >> CT_TIME_SHIFT) + left) << CT_TIME_SHIFT : 0;
}

/* Looks the packet's connection up, creating it when the packet may open
 * one; returns an SL_CT_* bit and sets *dir. An existing entry's NAT note
 * for the packet's sender goes to *note (when asked). */
static __always_inline __u32 ct_lookup_track(const struct ct_config *cfg,
					     struct ct_pkt *p, __u32 *dir,
					     struct ct_stats *st,
					     struct sl_ct_nat_note *note)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	__u64 flags = BPF_NOEXIST;
	struct ct_entry *e, fresh;

	*dir = 0;
	e = ct_tbl_lookup(&p->key);
	if (e && e->expires_ns > now) {
		if (note && e->nat.addr && (e->nat.epoch_sender & 1) == p->sender)
			ct_note_hand(&e->nat, now, note);
		return ct_track(cfg, p, e, now, dir, st);
	}
	if (e) {
		flags = BPF_ANY; /* expired: replace it */
		if (st)
			st->expired++;
	}
	if (ct_new_entry(cfg, p, now, &fresh))
		return SL_CT_INVALID;
	if (ct_insert(p, &fresh, flags)) {
		/* Another CPU created it meanwhile. */
		e = ct_tbl_lookup(&p->key);
		if (!e)
			return SL_CT_INVALID;
		return ct_track(cfg, p, e, now, dir, st);
	}
	p->created = 1;
	if (st)
		st->created++;
	return SL_CT_NEW;
}

/* An ICMP error quoting a packet of a tracked connection is RELATED, in
 * the direction opposite to the quoted packet; otherwise INVALID. */
static __always_inline __u32 ct_icmp_error(void *data, void *data_end,
					   const struct sl_meta *m, __u32 *dir)
{
	__u32 off = m->l4_off + 8, saddr[4] = {}, daddr[4] = {};
	bool v6 = m->flags & SL_F_IPV6;
	struct ct_pkt p = {};
	struct ct_entry *e;
	__u8 proto;
	__u8 *l4;

	if (v6) {
		struct ipv6hdr *ip6 = ct_ptr(data, data_end, off, sizeof(*ip6));

		if (!ip6)
			return SL_CT_INVALID;
		__builtin_memcpy(saddr, &ip6->saddr, 16);
		__builtin_memcpy(daddr, &ip6->daddr, 16);
		proto = ip6->nexthdr; /* extension headers: not followed */
		off += sizeof(*ip6);
	} else {
		struct iphdr *ip = ct_ptr(data, data_end, off, sizeof(*ip));

		if (!ip || ip->ihl < 5)
			return SL_CT_INVALID;
		saddr[0] = ip->saddr;
		daddr[0] = ip->daddr;
		proto = ip->protocol;
		off += ip->ihl * 4;
	}
	/* The error quotes at least 8 bytes of L4 header. */
	l4 = ct_ptr(data, data_end, off, 8);
	if (!l4)
		return SL_CT_INVALID;
	if (proto == SL_IPPROTO_TCP || proto == SL_IPPROTO_UDP) {
		ct_key_fill(&p, saddr, daddr, (l4[0] << 8) | l4[1],
			    (l4[2] << 8) | l4[3], proto, v6 ? 6 : 4);
	} else if ((proto == SL_IPPROTO_ICMP && !v6) ||
		   (proto == SL_IPPROTO_ICMPV6 && v6)) {
		if (ct_icmp_key(&p, saddr, daddr, l4[0], l4[1], (l4[4] << 8) | l4[5], v6))
			return SL_CT_INVALID;
	} else {
		ct_key_fill(&p, saddr, daddr, 0, 0, proto, v6 ? 6 : 4);
	}
	/* The error goes to the quoted packet's source, or it is INVALID
	 * (the kernel's nf_conntrack_inet_error: "outer daddr != inner"). */
	if (m->daddr[0] != saddr[0] || (v6 && (m->daddr[1] != saddr[1] ||
						m->daddr[2] != saddr[2] ||
						m->daddr[3] != saddr[3])))
		return SL_CT_INVALID;
	e = ct_tbl_lookup(&p.key);
	if (!e || e->expires_ns <= bpf_ktime_get_coarse_ns())
		return SL_CT_INVALID;
	*dir = !ct_dir_of(&p, e->state);
	return SL_CT_RELATED;
}

/* Builds p from the packet; returns 0, or an SL_CT_* bit when the packet
 * is classified without the table. */
static __always_inline __u32 ct_parse(void *data, void *data_end,
				      const struct sl_meta *m, struct ct_pkt *p,
				      __u32 *dir)
{
	bool v6 = m->flags & SL_F_IPV6;
	__u8 family = v6 ? 6 : 4;
	__u32 l4_hdr;

	p->l3_len = ct_l3_len(data, data_end, m);
	/* The IP layer drops a packet shorter than its header says. */
	if (!p->l3_len && (m->flags & SL_F_IPV4))
		p->l3_len = m->pkt_len - m->l3_off; /* BIG TCP: tot_len 0 */
	if (m->l3_off + p->l3_len > m->pkt_len)
		return SL_CT_INVALID;
	if (!(m->flags & SL_F_L4))
		return SL_CT_UNTRACKED; /* a later fragment: ct_frag() decides */
	switch (m->ip_proto) {
	case SL_IPPROTO_TCP: {
		struct tcphdr *th = ct_ptr(data, data_end, m->l4_off, sizeof(*th));
		__u32 flags = m->tcp_flags & (TCPF_FIN | TCPF_SYN | TCPF_RST |
					      TCPF_ACK | TCPF_URG);
		__s32 len;

		if (!th || !((CT_TCP_VALID_FLAGS >> flags) & 1))
			return SL_CT_INVALID;
		l4_hdr = m->l4_off - m->l3_off + th->doff * 4;
		len = (__s32)p->l3_len - (__s32)l4_hdr;
		if (len < 0 && !(m->flags & SL_F_FRAG))
			return SL_CT_INVALID; /* truncated */
		if (len < 0)
			len = 0;
		p->index = ct_tcp_index(m->tcp_flags);
		p->ack = bpf_ntohl(th->ack_seq);
		p->end = bpf_ntohl(th->seq) + len + !!(m->tcp_flags & TCPF_SYN) +
			 !!(m->tcp_flags & TCPF_FIN);
		ct_key_fill(p, m->saddr, m->daddr, m->sport, m->dport,
			    SL_IPPROTO_TCP, family);
		return 0;
	}
	case SL_IPPROTO_UDP: {
		struct udphdr *uh = ct_ptr(data, data_end, m->l4_off, sizeof(*uh));
		__u32 ulen;

		if (!uh)
			return SL_CT_INVALID;
		ulen = bpf_ntohs(uh->len);
		/* The kernel's udp_error: a length the packet cannot hold.
		 * (A first fragment holds only part of the datagram.) */
		if (!(m->flags & SL_F_FRAG) &&
		    (ulen < sizeof(*uh) || ulen > p->l3_len - (m->l4_off - m->l3_off)))
			return SL_CT_INVALID;
		ct_key_fill(p, m->saddr, m->daddr, m->sport, m->dport,
			    SL_IPPROTO_UDP, family);
		return 0;
	}
	case SL_IPPROTO_ICMP:
	case SL_IPPROTO_ICMPV6: {
		__u8 *ih;

		/* ICMP in IPv6 or ICMPv6 in IPv4: INVALID, as the kernel's
		 * icmp(v6)_packet refuse the other family. */
		if ((m->ip_proto == SL_IPPROTO_ICMPV6) != v6)
			return SL_CT_INVALID;
		if (ct_icmp_is_error(m->icmp_type, v6))
			return ct_icmp_error(data, data_end, m, dir);
		if (v6 && ct_icmpv6_untracked(m->icmp_type))
			return SL_CT_UNTRACKED;
		ih = ct_ptr(data, data_end, m->l4_off, 8);
		if (!ih || ct_icmp_key(p, m->saddr, m->daddr, m->icmp_type,
				       m->icmp_code, (ih[4] << 8) | ih[5], v6))
			return SL_CT_INVALID; /* no query, no error */
		return 0;
	}
	default:
		break;
	}
	ct_key_fill(p, m->saddr, m->daddr, 0, 0, m->ip_proto, family);
	return 0;
}

/* Fills the fragment key; -1 when the fragment header is not found (an
 * IPv6 fragment header after other extension headers). */
static __always_inline int ct_frag_key_fill(void *data, void *data_end,
					    const struct sl_meta *m,
					    struct ct_frag_key *k)
{
	__builtin_memcpy(k->saddr, m->saddr, 16);
	__builtin_memcpy(k->daddr, m->daddr, 16);
	k->proto = m->ip_proto;
	k->pad = 0;
	if (m->flags & SL_F_IPV4) {
		struct iphdr *ip = ct_ptr(data, data_end, m->l3_off, sizeof(*ip));

		if (!ip)
			return -1;
		k->id = ip->id;
		k->family = 4;
	} else {
		struct ipv6hdr *ip6 = ct_ptr(data, data_end, m->l3_off, sizeof(*ip6));
		struct frag_hdr *fh;

		if (!ip6 || ip6->nexthdr != SL_IPPROTO_FRAGMENT)
			return -1;
		fh = ct_ptr(data, data_end, m->l3_off + sizeof(*ip6), sizeof(*fh));
		if (!fh)
			return -1;
		k->id = fh->identification;
		k->family = 6;
	}
	return 0;
}

/* A first fragment records its class; a later one takes it (or is
 * UNTRACKED when its first fragment was not seen). */
static __always_inline __u32 ct_frag(void *data, void *data_end,
				     const struct sl_meta *m, __u32 state,
				     __u32 *dir)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ct_frag_key k = {};
	struct ct_frag_val v = {}, *f;

	if (ct_frag_key_fill(data, data_end, m, &k))
		return state;
	if (m->flags & SL_F_L4) {
		v.expires_ns = now + CT_FRAG_TIMEOUT_NS;
		v.state = state;
		v.dir = *dir;
		bpf_map_update_elem(&ct_frags, &k, &v, BPF_ANY);
		return state;
	}
	f = bpf_map_lookup_elem(&ct_frags, &k);
	if (!f || f->expires_ns <= now)
		return SL_CT_UNTRACKED;
	*dir = f->dir;
	return f->state;
}

static __always_inline void ct_count(struct ct_stats *st, __u32 state)
{
	if (!st)
		return;
	if (state == SL_CT_NEW)
		st->new++;
	else if (state == SL_CT_ESTABLISHED)
		st->established++;
	else if (state == SL_CT_RELATED)
		st->related++;
	else if (state == SL_CT_INVALID)
		st->invalid++;
	else
		st->untracked++;
}

/* Notes the entry this packet created (slot: ct_slot + 1) or, for TCP,
 * the existing one it belongs to (| SL_CT_SLOT_SEEN), for sl_ct_end_*. */
static __always_inline void ct_remember(struct sl_meta *m,
					const struct ct_key *key, __u32 slot)
{
	__u32 hook = m->hook;
	struct ct_key *k = bpf_map_lookup_elem(&ct_new, &hook);

	if (k) {
		*k = *key;
		m->ct_new_slot = slot;
	}
}

static __always_inline int conntrack_run(void *data, void *data_end,
					 struct sl_meta *m)
{
	struct ct_stats *st = ct_stats_get();
	const struct ct_config *cfg;
	struct ct_pkt p = {};
	__u32 zero = 0, dir = 0, state;

	if (!(m->flags & (SL_F_IPV4 | SL_F_IPV6)))
		return SL_NEXT; /* not IP: the kernel does not track it either */
	cfg = bpf_map_lookup_elem(&ct_config, &zero);
	if (!cfg)
		return -SL_DROP_NF_STATE;
	state = ct_parse(data, data_end, m, &p, &dir);
	if (!state)
		state = ct_lookup_track(cfg, &p, &dir, st, &m->ct_nat);
	if ((m->flags & SL_F_FRAG) && state != SL_CT_INVALID)
		state = ct_frag(data, data_end, m, state, &dir);
	ct_count(st, state);
	if (p.created)
		ct_remember(m, &p.key, ct_slot + 1);
	else if (p.key.proto == SL_IPPROTO_TCP && !m->ct_new_slot &&
		 (state & (SL_CT_NEW | SL_CT_ESTABLISHED)))
		ct_remember(m, &p.key, (ct_slot + 1) | SL_CT_SLOT_SEEN);
	m->ct_state = state;
	m->ct_dir = state == SL_CT_INVALID || state == SL_CT_UNTRACKED ? 0 : dir;
	if (state == SL_CT_INVALID && (cfg->flags & CT_CFG_DROP_INVALID))
		return -SL_DROP_CT_INVALID;
	return SL_NEXT;
}

/* A tcp-reset answered a packet of an existing TCP entry: the entry
 * moves to CLOSE with the close timeout, unless it is there already (the
 * kernel's nf_conntrack_tcp_set_closing). */
static __always_inline void ct_close(const struct ct_key *k)
{
	__u64 old, now = bpf_ktime_get_coarse_ns();
	const struct ct_config *cfg;
	struct ct_entry *e;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&ct_config, &zero);
	e = ct_tbl_lookup(k);
	if (!cfg || !e || e->expires_ns <= now)
		return;
	for (int i = 0; i < 4; i++) {
		old = e->state;
		if ((old & CT_ST_TCP_MASK) == CT_TCP_CLOSE)
			return;
		if (__sync_val_compare_and_swap(&e->state, old,
						(old & ~CT_ST_TCP_MASK) |
							CT_TCP_CLOSE) == old)
			break;
	}
	e->expires_ns = now + ct_timeout(cfg, CT_TCP_CLOSE);
}

/* The packet that created an entry was dropped (sl_ct_undo_*): the
 * entry goes; or a tcp-reset answered it (sl_ct_close_*): its existing
 * entry closes. Returns the action the packet ends with. */
static __always_inline int ct_undo(struct sl_meta *m)
{
	__u32 hook = m->hook, act = (m->ct_undo_act & ~SL_CT_UNDO_CLOSE) - 1;
	bool close = m->ct_undo_act & SL_CT_UNDO_CLOSE;
	struct ct_key *k = bpf_map_lookup_elem(&ct_new, &hook);

	m->ct_undo_act = 0;
	if (k && close)
		ct_close(k);
	else if (k)
		ct_tbl_delete(k);
	return act;
}

SEC("xdp")
int conntrack_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (!m)
		return XDP_PASS;
	if (m->ct_undo_act)
		return ct_undo(m);
	return sl_finish_xdp(ctx, m, ct_slot, conntrack_run(data, data_end, m));
}

/* Whether this instance runs in the chain of ifindex at hook. */
static __always_inline bool ct_in_chain(__u32 ifindex, __u32 hook)
{
	struct sl_chain_key key = { .ifindex = ifindex, .hook = hook };
	struct sl_chain *c = bpf_map_lookup_elem(&sl_chains, &key);

	if (!c)
		return false;
	for (int i = 0; i < SL_CHAIN_MAX; i++)
		if (i < c->len && c->slots[i] == ct_slot)
			return true;
	return false;
}

SEC("tc")
int conntrack_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);
	void *data, *data_end;
	__u32 in;

	if (!m)
		return SL_TCX_NEXT;
	if (m->ct_undo_act)
		return ct_undo(m);
	/* A forwarded packet this instance tracked at its ingress: the
	 * kernel's conntrack sees it once (PREROUTING), so must we; a second
	 * pass would run the TCP state machine twice (a FIN seen twice
	 * moves FIN_WAIT on to LAST_ACK). Its ct_state stays unknown here. */
	in = skb->ingress_ifindex;
	if (m->hook == SL_HOOK_TC_OUT && in &&
	    (ct_in_chain(in, SL_HOOK_XDP) || ct_in_chain(in, SL_HOOK_TC_IN)))
		return sl_finish_tc(skb, m, ct_slot, SL_NEXT);
	/* Keeps clang from reusing ctx + offset, which the verifier refuses. */
	asm volatile("" : "+r"(skb));
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	return sl_finish_tc(skb, m, ct_slot, conntrack_run(data, data_end, m));
}

/* ---- garbage collection: a sweep every gc_interval_ms, in the kernel ---- */

struct ct_sweep {
	__u64 now;
	__u64 deleted;
};

static long ct_sweep_one(struct bpf_map *map, void *key, struct ct_entry *e,
			 struct ct_sweep *s)
{
	if (e->expires_ns <= s->now && !bpf_map_delete_elem(map, key))
		s->deleted++;
	return 0;
}

static __always_inline __u64 ct_gc_period(void)
{
	__u32 zero = 0;
	struct ct_config *cfg = bpf_map_lookup_elem(&ct_config, &zero);
	__u32 ms = cfg && cfg->gc_interval_ms ? cfg->gc_interval_ms : CT_DEFAULT_GC_MS;

	return (__u64)ms * 1000000ULL;
}

static int ct_gc_fire(void *map, __u32 *key, struct ct_gc_timer *t)
{
	struct ct_sweep s = { .now = bpf_ktime_get_coarse_ns() };
	struct ct_stats *st = ct_stats_get();

	bpf_for_each_map_elem(&ct_table, ct_sweep_one, &s, 0);
	bpf_for_each_map_elem(&ct_table6, ct_sweep_one, &s, 0);
	if (st) {
		st->gc_runs++;
		st->gc_deleted += s.deleted;
	}
	bpf_timer_start(&t->timer, ct_gc_period(), 0);
	return 0;
}

/* Run once by the loader (BPF_PROG_RUN) to start the sweep; the timer
 * then lives as long as the pinned ct_gc map. Running it again re-arms. */
SEC("tc")
int ct_gc_arm(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct ct_gc_timer *t = bpf_map_lookup_elem(&ct_gc, &zero);
	long err;

	if (!t)
		return 1;
	err = bpf_timer_init(&t->timer, &ct_gc, CLOCK_MONOTONIC);
	if (err && err != -16 /* EBUSY: already initialised */)
		return 2;
	if (bpf_timer_set_callback(&t->timer, ct_gc_fire))
		return 3;
	if (bpf_timer_start(&t->timer, ct_gc_period(), 0))
		return 4;
	return 0;
}

/* ---- measurement only: the kernel's conntrack through kfuncs ------------
 * Not loaded in production ("?": no autoload); ct_progrun loads them to
 * compare a lookup hit in the kernel's table with one in ours. */

struct bpf_ct_opts___local {
	__s32 netns_id;
	__s32 error;
	__u8 l4proto;
	__u8 dir;
	__u16 ct_zone_id;
	__u8 ct_zone_dir;
	__u8 reserved[3];
};

extern struct nf_conn *bpf_xdp_ct_lookup(struct xdp_md *, struct bpf_sock_tuple *, __u32,
					 struct bpf_ct_opts___local *, __u32) __ksym __weak;
extern struct nf_conn___init *bpf_xdp_ct_alloc(struct xdp_md *, struct bpf_sock_tuple *,
					       __u32, struct bpf_ct_opts___local *,
					       __u32) __ksym __weak;
extern struct nf_conn *bpf_ct_insert_entry(struct nf_conn___init *) __ksym __weak;
extern void bpf_ct_set_timeout(struct nf_conn___init *, __u32) __ksym __weak;
extern void bpf_ct_release(struct nf_conn *) __ksym __weak;

__u64 bench_hits = 0;

/* Parses Ethernet/IPv4/TCP into a tuple; returns 0 or -1. */
static __always_inline int bench_tuple(struct xdp_md *ctx, struct bpf_sock_tuple *t,
				       struct sl_meta *m)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);

	if ((void *)(th + 1) > data_end || eth->h_proto != bpf_htons(SL_ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != SL_IPPROTO_TCP)
		return -1;
	t->ipv4.saddr = ip->saddr;
	t->ipv4.daddr = ip->daddr;
	t->ipv4.sport = th->source;
	t->ipv4.dport = th->dest;
	if (m) {
		__builtin_memset(m, 0, sizeof(*m));
		m->flags = SL_F_IPV4 | SL_F_L4;
		m->l3_off = sizeof(*eth);
		m->l4_off = sizeof(*eth) + sizeof(*ip);
		m->ip_proto = SL_IPPROTO_TCP;
		m->tcp_flags = ((__u8 *)th)[13];
		m->saddr[0] = ip->saddr;
		m->daddr[0] = ip->daddr;
		m->sport = bpf_ntohs(th->source);
		m->dport = bpf_ntohs(th->dest);
		m->pkt_len = data_end - data;
	}
	return 0;
}

/* Kernel conntrack: look the tuple up; insert it when missing. */
SEC("?xdp")
int ct_bench_kfunc(struct xdp_md *ctx)
{
	struct bpf_ct_opts___local opts = { .netns_id = -1, .l4proto = SL_IPPROTO_TCP };
	struct bpf_sock_tuple t = {};
	struct nf_conn___init *ni;
	struct nf_conn *ct;

	if (bench_tuple(ctx, &t, NULL))
		return XDP_ABORTED;
	ct = bpf_xdp_ct_lookup(ctx, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (ct) {
		bench_hits++;
		bpf_ct_release(ct);
		return XDP_PASS;
	}
	ni = bpf_xdp_ct_alloc(ctx, &t, sizeof(t.ipv4), &opts, sizeof(opts));
	if (!ni)
		return XDP_ABORTED;
	bpf_ct_set_timeout(ni, 60000);
	ct = bpf_ct_insert_entry(ni);
	if (!ct)
		return XDP_ABORTED;
	bpf_ct_release(ct);
	return XDP_PASS;
}

/* Ours, the same work as the NF's (parse aside): key, lookup, state
 * machine, refresh, counters. */
SEC("?xdp")
int ct_bench_table(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	/* The per-CPU meta, as the NF's: too large for this frame. */
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);
	struct bpf_sock_tuple t = {};
	const struct ct_config *cfg;
	struct ct_pkt p = {};
	__u32 zero = 0, dir = 0, state;

	if (!m || bench_tuple(ctx, &t, m))
		return XDP_ABORTED;
	cfg = bpf_map_lookup_elem(&ct_config, &zero);
	if (!cfg)
		return XDP_ABORTED;
	state = ct_parse(data, data_end, m, &p, &dir);
	if (!state)
		state = ct_lookup_track(cfg, &p, &dir, NULL, NULL);
	if (state == SL_CT_ESTABLISHED || state == SL_CT_NEW)
		bench_hits++;
	return XDP_PASS;
}
