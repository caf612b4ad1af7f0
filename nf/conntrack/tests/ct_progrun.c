// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of the conntrack NF through the real pipeline: an
 * instance created by the production control code on a veth's XDP and TC
 * ingress hooks (one shared table), packets built with correct checksums
 * and run with BPF_PROG_RUN. Each step of a flow states the ct_state and
 * ct_dir the NF must hand to the next NF, and the entry it must leave
 * (TCP state, [ASSURED], [UNREPLIED], gone). Runs in a private network
 * namespace. Also measures ns/packet (hit, miss, new connection).
 * A failing packet is printed in hex and appended to
 * build/tests/ct_fail.pcap. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "conntrack.h"
#include "conntrack.skel.h"
#include "check.h"
#include "pktbuild.h"

#define DEV "slct0"
#define PEER "slct1"
#define CT "cttest"
#define FAIL_PCAP "build/tests/ct_fail.pcap"
#define CPU 0

static struct sl_ctx *ctx;
static int ifindex;

/* A packet: pktbuild's spec plus what it does not set. */
struct ct_pkt_spec {
	struct pkt_spec s;
	uint32_t seq, ack;
	uint16_t icmp_id;
	uint16_t udp_len; /* non-zero: a UDP length field that lies */
	const struct ct_pkt_spec *inner; /* ICMP error: the quoted packet */
};

/* Expected entry after a step. */
enum { E_ANY = -1, E_GONE = -2 };
#define F_ASSURED 1
#define F_UNREPLIED 2

struct ct_step {
	const char *name;
	int hook; /* SL_HOOK_XDP or SL_HOOK_TC_IN */
	struct ct_pkt_spec pkt;
	int ct_state; /* SL_CT_* bit, 0 for none */
	int ct_dir;
	int tcp_state; /* enum ct_tcp_state, E_ANY, or E_GONE (no entry) */
	int flags; /* F_* that must be set; others must be clear */
	int timeout; /* seconds left, 0: not checked */
};

static uint16_t get16(const uint8_t *p)
{
	return (p[0] << 8) | p[1];
}

/* Recomputes the L4 checksum of a frame built by pkt_build (no VLAN). */
static void fix_l4_csum(uint8_t *buf, size_t len, int family)
{
	uint8_t *l3 = buf + 14, *l4, pseudo[40] = {};
	size_t l4len;
	uint8_t proto;
	uint32_t sum = 0;
	int off;

	if (family == 4) {
		l4 = l3 + (l3[0] & 15) * 4;
		proto = l3[9];
		l4len = get16(l3 + 2) - (l4 - l3);
	} else {
		l4 = l3 + 40;
		proto = l3[6];
		if (proto == 0) { /* one 8-byte hop-by-hop header */
			proto = l4[0];
			l4 += 8;
		}
		if (proto == 44) { /* a fragment header */
			proto = l4[0];
			l4 += 8;
		}
		l4len = get16(l3 + 4) - (l4 - l3 - 40);
	}
	if (l4 + l4len > buf + len)
		return;
	off = proto == 6 ? 16 : proto == 17 ? 6 : 2;
	memset(l4 + off, 0, 2);
	if (proto != 1) {
		if (family == 4) {
			memcpy(pseudo, l3 + 12, 8);
			pseudo[9] = proto;
			put16(pseudo + 10, l4len);
			sum = csum_add(0, pseudo, 12);
		} else {
			memcpy(pseudo, l3 + 8, 32);
			put16(pseudo + 34, l4len);
			pseudo[39] = proto;
			sum = csum_add(0, pseudo, 40);
		}
	}
	sum = csum_add(sum, l4, l4len);
	memcpy(l4 + off, &(uint16_t){ csum_fold(sum) }, 2);
}

static size_t build(const struct ct_pkt_spec *p, uint8_t *buf)
{
	struct pkt_spec s = p->s;
	uint8_t inner[PKT_MAX];
	size_t ilen = 0, len;
	uint8_t *l4;

	if (p->inner) {
		ilen = build(p->inner, inner) - 14;
		/* The error quotes the IP header and 8 bytes of L4. */
		ilen = ilen > (p->inner->s.family == 4 ? 28u : 48u) ?
			       (p->inner->s.family == 4 ? 28u : 48u) : ilen;
		s.payload = ilen;
	}
	len = pkt_build(&s, buf);
	if (!s.family)
		return len;
	l4 = buf + 14 + (s.family == 4 ? 20 : 40 + (s.v6_hopopts ? 8 : 0) +
					      (s.frag_offset || s.more_frags ? 8 : 0));
	if (s.proto == 6) {
		l4[4] = p->seq >> 24, l4[5] = p->seq >> 16, l4[6] = p->seq >> 8, l4[7] = p->seq;
		l4[8] = p->ack >> 24, l4[9] = p->ack >> 16, l4[10] = p->ack >> 8, l4[11] = p->ack;
	} else if (s.proto == 17 && p->udp_len) {
		put16(l4 + 4, p->udp_len);
	} else if (s.proto == 1 || s.proto == 58) {
		put16(l4 + 4, p->icmp_id);
		if (p->inner)
			memcpy(l4 + 8, inner + 14, ilen);
	}
	if (!s.frag_offset && !s.truncate)
		fix_l4_csum(buf, len, s.family);
	return len;
}

static int prog_fd(const char *pin)
{
	return sl_obj_get(sl_base(ctx), pin);
}

/* Runs a frame `repeat` times through the root of hook; *retval is the
 * program's return value, *ns the mean duration. */
static int run_frame(int hook, const uint8_t *pkt, size_t len, int repeat,
		     __u32 *retval, __u32 *ns)
{
	struct xdp_md xmd = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff skb = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .repeat = repeat);
	int fd, err;

	if (hook == SL_HOOK_XDP) {
		opts.ctx_in = &xmd;
		opts.ctx_size_in = sizeof(xmd);
		fd = prog_fd("root_xdp");
	} else {
		opts.ctx_in = &skb;
		opts.ctx_size_in = sizeof(skb);
		fd = prog_fd("root_tc_in");
	}
	if (fd < 0)
		return fd;
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	if (err)
		return -errno;
	*retval = opts.retval;
	if (ns)
		*ns = opts.duration;
	return 0;
}

/* The metadata the root and the NF left for hook on this CPU. */
static int read_meta(int hook, struct sl_meta *out)
{
	int ncpu = libbpf_num_possible_cpus(), fd = sl_obj_get(sl_base(ctx), "sl_meta"), err = 0;
	struct sl_meta *per = calloc(ncpu, sizeof(*per));
	__u32 key = hook;

	if (fd < 0 || !per) {
		free(per);
		return -ENOMEM;
	}
	if (bpf_map_lookup_elem(fd, &key, per))
		err = -errno;
	else
		*out = per[CPU];
	free(per);
	close(fd);
	return err;
}

struct find {
	const struct ct_pkt_spec *p;
	struct ct_conn c;
	bool found;
};

/* Whether entry c is the connection of packet p (either direction). */
static bool conn_matches(const struct ct_conn *c, const struct ct_pkt_spec *p)
{
	uint8_t s[16] = {}, d[16] = {};
	int af = p->s.family == 6 ? AF_INET6 : AF_INET;
	size_t alen = p->s.family == 6 ? 16 : 4;
	const struct ct_key *k = &c->key;

	if (k->proto != p->s.proto || k->family != p->s.family)
		return false;
	inet_pton(af, p->s.src, s);
	inet_pton(af, p->s.dst, d);
	if (k->proto == 1 || k->proto == 58) {
		if (k->port[0] != p->icmp_id)
			return false;
		return (!memcmp(k->addr[0], s, alen) && !memcmp(k->addr[1], d, alen)) ||
		       (!memcmp(k->addr[0], d, alen) && !memcmp(k->addr[1], s, alen));
	}
	if (!memcmp(k->addr[0], s, alen) && !memcmp(k->addr[1], d, alen))
		return k->port[0] == p->s.sport && k->port[1] == p->s.dport;
	if (!memcmp(k->addr[0], d, alen) && !memcmp(k->addr[1], s, alen))
		return k->port[0] == p->s.dport && k->port[1] == p->s.sport;
	return false;
}

static int find_cb(const struct ct_conn *c, void *arg)
{
	struct find *f = arg;

	if (!conn_matches(c, f->p))
		return 0;
	f->c = *c;
	f->found = true;
	return 1;
}

static bool find_conn(const struct ct_pkt_spec *p, struct ct_conn *c)
{
	struct find f = { .p = p };

	ct_foreach(ctx, CT, find_cb, &f);
	if (f.found)
		*c = f.c;
	return f.found;
}

static const char *state_text(int s)
{
	switch (s) {
	case 0: return "none";
	case SL_CT_NEW: return "NEW";
	case SL_CT_ESTABLISHED: return "ESTABLISHED";
	case SL_CT_RELATED: return "RELATED";
	case SL_CT_INVALID: return "INVALID";
	case SL_CT_UNTRACKED: return "UNTRACKED";
	}
	return "?";
}

/* Runs one step; returns whether it held. */
static bool run_step(const char *flow, const struct ct_step *st, __u32 *retval_out)
{
	uint8_t pkt[PKT_MAX];
	size_t len = build(&st->pkt, pkt);
	struct sl_meta m = {};
	struct ct_conn c;
	char name[256], detail[256] = "";
	__u32 retval = 0;
	bool ok = true, found;
	int err;

	snprintf(name, sizeof(name), "%s/%s", flow, st->name);
	err = run_frame(st->hook, pkt, len, 1, &retval, NULL);
	err = err ?: read_meta(st->hook, &m);
	if (err) {
		snprintf(detail, sizeof(detail), "run failed: %s", strerror(-err));
		ok = false;
		goto report;
	}
	if (retval_out)
		*retval_out = retval;
	if (m.ct_state != st->ct_state || (st->ct_state && m.ct_dir != st->ct_dir)) {
		snprintf(detail, sizeof(detail), "ct_state %s dir %u, expected %s dir %d",
			 state_text(m.ct_state), m.ct_dir, state_text(st->ct_state), st->ct_dir);
		ok = false;
		goto report;
	}
	if (st->tcp_state == E_ANY && !st->flags && !st->timeout)
		goto report;
	/* An ICMP error's entry is the one of the packet it quotes. */
	found = st->pkt.s.family &&
		find_conn(st->pkt.inner ? st->pkt.inner : &st->pkt, &c);
	if (st->tcp_state == E_GONE) {
		if (found) {
			ct_conn_format(&c, detail, sizeof(detail));
			ok = false;
		}
		goto report;
	}
	if (!found) {
		snprintf(detail, sizeof(detail), "no entry");
		ok = false;
		goto report;
	}
	if ((st->tcp_state >= 0 && (int)(c.e.state & CT_ST_TCP_MASK) != st->tcp_state) ||
	    !!(c.e.state & CT_ST_ASSURED) != !!(st->flags & F_ASSURED) ||
	    !(c.e.state & CT_ST_SEEN_REPLY) != !!(st->flags & F_UNREPLIED) ||
	    (st->timeout && (c.remaining_ns / 1000000000ULL + 1 < (__u64)st->timeout - 1 ||
			     c.remaining_ns / 1000000000ULL > (__u64)st->timeout))) {
		char line[200];

		ct_conn_format(&c, line, sizeof(line));
		snprintf(detail, sizeof(detail), "entry is: %s", line);
		ok = false;
	}
report:
	check_report(ok, name, detail[0] ? detail : NULL);
	if (!ok) {
		printf("packet (%zu bytes):\n", len);
		pkt_hex(stdout, pkt, len);
		pkt_pcap(FAIL_PCAP, pkt, len);
	}
	return ok;
}

static void run_flow(const char *flow, const struct ct_step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_step(flow, &steps[i], NULL);
}

#define RUN(flow, steps) run_flow(flow, steps, sizeof(steps) / sizeof(steps[0]))

#define XDP SL_HOOK_XDP
#define TCI SL_HOOK_TC_IN
#define C4 "10.0.0.1"
#define S4 "10.0.0.2"
#define R4 "10.0.9.9"
#define C6 "2001:db8::1"
#define S6 "2001:db8::2"
#define R6 "2001:db8::99"

#define SYN 0x02
#define ACK 0x10
#define FIN 0x01
#define RST 0x04
#define PSH 0x08
#define URG 0x20

#define T4(sa, da, sp, dp, fl, sq, ak, ...)                                   \
	{ .s = { .family = 4, .src = sa, .dst = da, .proto = 6, .sport = sp,  \
		 .dport = dp, .tcp_flags = fl, __VA_ARGS__ }, .seq = sq, .ack = ak }
#define T6(sa, da, sp, dp, fl, sq, ak, ...)                                   \
	{ .s = { .family = 6, .src = sa, .dst = da, .proto = 6, .sport = sp,  \
		 .dport = dp, .tcp_flags = fl, __VA_ARGS__ }, .seq = sq, .ack = ak }
#define U4(sa, da, sp, dp)                                                   \
	{ .s = { .family = 4, .src = sa, .dst = da, .proto = 17, .sport = sp, \
		 .dport = dp, .payload = 10 } }
#define U6(sa, da, sp, dp)                                                   \
	{ .s = { .family = 6, .src = sa, .dst = da, .proto = 17, .sport = sp, \
		 .dport = dp, .payload = 10 } }
#define I4(sa, da, type, id)                                                 \
	{ .s = { .family = 4, .src = sa, .dst = da, .proto = 1,               \
		 .icmp_type = type, .payload = 16 }, .icmp_id = id }
#define I6(sa, da, type, id)                                                 \
	{ .s = { .family = 6, .src = sa, .dst = da, .proto = 58,              \
		 .icmp_type = type, .payload = 16 }, .icmp_id = id }

#define NEW SL_CT_NEW
#define EST SL_CT_ESTABLISHED
#define REL SL_CT_RELATED
#define INV SL_CT_INVALID
#define UNT SL_CT_UNTRACKED

/* A full handshake, data, and a close started by the client; then the
 * same ports opened again from TIME_WAIT. Replies run through TC ingress
 * (the same table, as on a host with both hooks). */
static const struct ct_step tcp_close_client[] = {
	{ "syn", XDP, T4(C4, S4, 40000, 80, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED, 120 },
	{ "syn retransmitted", XDP, T4(C4, S4, 40000, 80, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED, 120 },
	{ "syn-ack", TCI, T4(S4, C4, 80, 40000, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0, 60 },
	{ "ack", XDP, T4(C4, S4, 40000, 80, ACK, 101, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED, 432000 },
	{ "data", XDP, T4(C4, S4, 40000, 80, PSH | ACK, 101, 501, .payload = 20), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "data ack", TCI, T4(S4, C4, 80, 40000, ACK, 501, 121), EST, 1, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "urgent data", XDP, T4(C4, S4, 40000, 80, URG | ACK, 121, 501, .payload = 1), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "client fin", XDP, T4(C4, S4, 40000, 80, FIN | ACK, 122, 501), EST, 0, CT_TCP_FIN_WAIT, F_ASSURED, 120 },
	{ "server acks fin", TCI, T4(S4, C4, 80, 40000, ACK, 501, 123), EST, 1, CT_TCP_CLOSE_WAIT, F_ASSURED, 60 },
	{ "server fin", TCI, T4(S4, C4, 80, 40000, FIN | ACK, 501, 123), EST, 1, CT_TCP_LAST_ACK, F_ASSURED, 30 },
	{ "last ack", XDP, T4(C4, S4, 40000, 80, ACK, 123, 502), EST, 0, CT_TCP_TIME_WAIT, F_ASSURED, 120 },
	{ "retransmitted last ack", XDP, T4(C4, S4, 40000, 80, ACK, 123, 502), EST, 0, CT_TCP_TIME_WAIT, F_ASSURED },
	{ "syn reopens from time_wait", XDP, T4(C4, S4, 40000, 80, SYN, 9000, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED, 120 },
};

/* The server closes first. */
static const struct ct_step tcp_close_server[] = {
	{ "syn", XDP, T4(C4, S4, 40001, 80, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "syn-ack", XDP, T4(S4, C4, 80, 40001, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "ack", XDP, T4(C4, S4, 40001, 80, ACK, 101, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "server fin", XDP, T4(S4, C4, 80, 40001, FIN | ACK, 501, 101), EST, 1, CT_TCP_FIN_WAIT, F_ASSURED },
	{ "client acks", XDP, T4(C4, S4, 40001, 80, ACK, 101, 502), EST, 0, CT_TCP_CLOSE_WAIT, F_ASSURED },
	{ "client fin", XDP, T4(C4, S4, 40001, 80, FIN | ACK, 101, 502), EST, 0, CT_TCP_LAST_ACK, F_ASSURED },
	{ "server last ack", XDP, T4(S4, C4, 80, 40001, ACK, 502, 102), EST, 1, CT_TCP_TIME_WAIT, F_ASSURED },
	{ "data after close is still tracked", XDP, T4(C4, S4, 40001, 80, ACK, 102, 502), EST, 0, CT_TCP_TIME_WAIT, F_ASSURED },
};

/* Resets. */
static const struct ct_step tcp_rst[] = {
	{ "syn", XDP, T4(C4, S4, 40002, 80, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "syn-ack", TCI, T4(S4, C4, 80, 40002, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "ack", XDP, T4(C4, S4, 40002, 80, ACK, 101, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "rst closes", XDP, T4(C4, S4, 40002, 80, RST | ACK, 101, 501), EST, 0, CT_TCP_CLOSE, F_ASSURED, 10 },
	{ "syn right after own rst reopens", XDP, T4(C4, S4, 40002, 80, SYN, 7000, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "syn-ack", XDP, T4(S4, C4, 80, 40002, SYN | ACK, 500, 7001), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "ack", XDP, T4(C4, S4, 40002, 80, ACK, 7001, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "server rst", XDP, T4(S4, C4, 80, 40002, RST, 501, 0), EST, 1, CT_TCP_CLOSE, F_ASSURED, 10 },
	{ "ack after rst stays in close", XDP, T4(C4, S4, 40002, 80, ACK, 7001, 501), EST, 0, CT_TCP_CLOSE, F_ASSURED, 10 },
	/* The kernel reopens only when the SYN's side sent the RST or a FIN
	 * closed the connection; otherwise it lets the SYN through as is. */
	{ "syn after the peer's rst is ignored", XDP, T4(C4, S4, 40002, 80, SYN, 9000, 0), EST, 0, CT_TCP_CLOSE, F_ASSURED, 10 },
	/* The only answer is a reset: the kernel deletes the entry. */
	{ "syn to a closed port", XDP, T4(C4, S4, 40003, 81, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "rst as only answer removes it", TCI, T4(S4, C4, 81, 40003, RST | ACK, 0, 101), EST, 1, E_GONE },
	{ "client rst before any answer", XDP, T4(C4, S4, 40004, 81, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "removes it too", XDP, T4(C4, S4, 40004, 81, RST, 101, 0), NEW, 0, E_GONE },
};

/* Both ends send a SYN (simultaneous open). */
static const struct ct_step tcp_simultaneous[] = {
	{ "syn a->b", XDP, T4(C4, S4, 5000, 6000, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "syn b->a", XDP, T4(S4, C4, 6000, 5000, SYN, 300, 0), EST, 1, CT_TCP_SYN_SENT2, 0 },
	{ "syn-ack a->b", XDP, T4(C4, S4, 5000, 6000, SYN | ACK, 100, 301), EST, 0, CT_TCP_SYN_RECV, 0 },
	{ "ack b->a", XDP, T4(S4, C4, 6000, 5000, ACK, 301, 101), EST, 1, CT_TCP_ESTABLISHED, F_ASSURED },
};

/* Out of state and bad flags: INVALID, nothing created or changed. */
static const struct ct_step tcp_invalid[] = {
	{ "fin without connection", XDP, T4(C4, S4, 41000, 80, FIN | ACK, 1, 1), INV, 0, E_GONE },
	{ "rst without connection", XDP, T4(C4, S4, 41001, 80, RST, 1, 0), INV, 0, E_GONE },
	{ "syn-ack without connection", XDP, T4(C4, S4, 41002, 80, SYN | ACK, 1, 1), INV, 0, E_GONE },
	{ "no flags (null scan)", XDP, T4(C4, S4, 41003, 80, 0, 1, 0), INV, 0, E_GONE },
	{ "syn+fin", XDP, T4(C4, S4, 41004, 80, SYN | FIN, 1, 0), INV, 0, E_GONE },
	{ "syn+rst", XDP, T4(C4, S4, 41005, 80, SYN | RST, 1, 0), INV, 0, E_GONE },
	{ "fin without ack (xmas)", XDP, T4(C4, S4, 41006, 80, FIN | PSH | URG, 1, 0), INV, 0, E_GONE },
	{ "syn", XDP, T4(C4, S4, 41007, 80, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "client ack before syn-ack", XDP, T4(C4, S4, 41007, 80, ACK, 101, 1), INV, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "client fin before syn-ack", XDP, T4(C4, S4, 41007, 80, FIN | ACK, 101, 1), INV, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "client syn-ack", XDP, T4(C4, S4, 41007, 80, SYN | ACK, 101, 1), INV, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "server syn-ack", XDP, T4(S4, C4, 80, 41007, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "server syn in syn_recv", XDP, T4(S4, C4, 80, 41007, SYN, 500, 0), INV, 0, CT_TCP_SYN_RECV, 0 },
	{ "retransmitted syn-ack ignored", XDP, T4(S4, C4, 80, 41007, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "ack", XDP, T4(C4, S4, 41007, 80, ACK, 101, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "client syn-ack when established", XDP, T4(C4, S4, 41007, 80, SYN | ACK, 101, 501), INV, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "syn in established is ignored", XDP, T4(C4, S4, 41007, 80, SYN, 5, 0), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
};

/* A mid-stream ACK picks a connection up (nf_conntrack_tcp_loose=1). */
static const struct ct_step tcp_pickup[] = {
	{ "mid-stream ack", XDP, T4(C4, S4, 42000, 22, ACK, 1000, 2000), NEW, 0, CT_TCP_ESTABLISHED, F_UNREPLIED, 300 },
	/* The kernel marks the reply seen after tracking it: still short. */
	{ "answer", XDP, T4(S4, C4, 22, 42000, ACK, 2000, 1000), EST, 1, CT_TCP_ESTABLISHED, 0, 300 },
	{ "answered: assured", XDP, T4(C4, S4, 42000, 22, ACK, 1000, 2000), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED, 432000 },
};

/* The same with pick-up off (loose=0): a non-SYN opens nothing. */
static const struct ct_step tcp_strict[] = {
	{ "mid-stream ack is invalid", XDP, T4(C4, S4, 42001, 22, ACK, 1000, 2000), INV, 0, E_GONE },
	{ "syn still opens", XDP, T4(C4, S4, 42002, 22, SYN, 1000, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
};

static const struct ct_step tcp6[] = {
	{ "syn", XDP, T6(C6, S6, 40000, 443, SYN, 100, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "syn-ack", TCI, T6(S6, C6, 443, 40000, SYN | ACK, 500, 101), EST, 1, CT_TCP_SYN_RECV, 0 },
	{ "ack", XDP, T6(C6, S6, 40000, 443, ACK, 101, 501), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "hop-by-hop header data", XDP, T6(C6, S6, 40000, 443, PSH | ACK, 101, 501, .v6_hopopts = true, .payload = 8), EST, 0, CT_TCP_ESTABLISHED, F_ASSURED },
	{ "fin", TCI, T6(S6, C6, 443, 40000, FIN | ACK, 501, 109), EST, 1, CT_TCP_FIN_WAIT, F_ASSURED },
	{ "rst", XDP, T6(C6, S6, 40000, 443, RST, 109, 0), EST, 0, CT_TCP_CLOSE, F_ASSURED, 10 },
	{ "fin without connection", XDP, T6(C6, S6, 40001, 443, FIN | ACK, 1, 1), INV, 0, E_GONE },
};

static const struct ct_step udp[] = {
	{ "first datagram", XDP, U4(C4, S4, 5353, 53), NEW, 0, E_ANY, F_UNREPLIED, 30 },
	{ "second, unanswered", XDP, U4(C4, S4, 5353, 53), NEW, 0, E_ANY, F_UNREPLIED, 30 },
	{ "reply", TCI, U4(S4, C4, 53, 5353), EST, 1, E_ANY, 0, 30 },
	{ "after the reply", XDP, U4(C4, S4, 5353, 53), EST, 0, E_ANY, 0, 30 },
	{ "ipv6 first", XDP, U6(C6, S6, 5353, 53), NEW, 0, E_ANY, F_UNREPLIED, 30 },
	{ "ipv6 reply", XDP, U6(S6, C6, 53, 5353), EST, 1, E_ANY, 0, 30 },
	{ "udp length beyond the packet", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 17, .sport = 1, .dport = 2, .payload = 10 }, .udp_len = 100 }, INV, 0, E_GONE },
	{ "udp length below the header", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 17, .sport = 1, .dport = 3, .payload = 10 }, .udp_len = 4 }, INV, 0, E_GONE },
	{ "ip length beyond the frame", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 17, .sport = 1, .dport = 4, .truncate = 14 + 20 + 8 + 2, .payload = 10 } }, INV, 0, E_GONE },
};

/* After 2 s, traffic on a replied UDP flow makes it a stream: assured,
 * 120 s (nf_conntrack_udp_timeout_stream). */
static const struct ct_step udp_stream[] = {
	{ "two seconds later", XDP, U4(C4, S4, 5353, 53), EST, 0, E_ANY, F_ASSURED, 120 },
	{ "ipv6 two seconds later", XDP, U6(S6, C6, 53, 5353), EST, 1, E_ANY, F_ASSURED, 120 },
};

static const struct ct_step icmp[] = {
	{ "echo request", XDP, I4(C4, S4, 8, 77), NEW, 0, E_ANY, F_UNREPLIED, 30 },
	{ "echo reply", TCI, I4(S4, C4, 0, 77), EST, 1, E_ANY, 0, 30 },
	{ "next request", XDP, I4(C4, S4, 8, 77), EST, 0, E_ANY, 0, 30 },
	{ "reply with another id", XDP, I4(S4, C4, 0, 78), INV, 0, E_GONE },
	{ "request from the other side is another flow", XDP, I4(S4, C4, 8, 77), NEW, 0, E_ANY },
	{ "timestamp request", XDP, I4(C4, S4, 13, 5), NEW, 0, E_ANY, F_UNREPLIED },
	{ "timestamp reply", XDP, I4(S4, C4, 14, 5), EST, 1, E_ANY, 0 },
	{ "router advertisement", XDP, I4(R4, C4, 9, 0), INV, 0, E_GONE },
	{ "icmpv6 echo request", XDP, I6(C6, S6, 128, 9), NEW, 0, E_ANY, F_UNREPLIED, 30 },
	{ "icmpv6 echo reply", XDP, I6(S6, C6, 129, 9), EST, 1, E_ANY, 0, 30 },
	{ "icmpv6 reply without request", XDP, I6(S6, C6, 129, 10), INV, 0, E_GONE },
	{ "neighbour solicitation untracked", XDP, I6(C6, S6, 135, 0), UNT, 0, E_GONE },
	{ "router advertisement untracked", XDP, I6(R6, C6, 134, 0), UNT, 0, E_GONE },
};

/* ICMP errors quoting a tracked connection are RELATED. */
static const struct ct_pkt_spec q_udp_out = U4(C4, S4, 6000, 7000);
static const struct ct_pkt_spec q_udp_unknown = U4(C4, S4, 6001, 7000);
static const struct ct_pkt_spec q_tcp_out = T4(C4, S4, 43000, 80, SYN, 1, 0);
static const struct ct_pkt_spec q_tcp_back = T4(S4, C4, 80, 43000, SYN | ACK, 1, 2);
static const struct ct_pkt_spec q_echo = I4(C4, S4, 8, 99);
static const struct ct_pkt_spec q_tcp6 = T6(C6, S6, 43000, 80, SYN, 1, 0);
static const struct ct_pkt_spec q_udp6_unknown = U6(C6, S6, 1, 2);

#define ERR4(sa, da, type, code, q)                                          \
	{ .s = { .family = 4, .src = sa, .dst = da, .proto = 1,               \
		 .icmp_type = type, .icmp_code = code }, .inner = &q }
#define ERR6(sa, da, type, q)                                                \
	{ .s = { .family = 6, .src = sa, .dst = da, .proto = 58,              \
		 .icmp_type = type }, .inner = &q }

static const struct ct_step icmp_errors[] = {
	{ "udp flow", XDP, U4(C4, S4, 6000, 7000), NEW, 0, E_ANY, F_UNREPLIED },
	{ "port unreachable from the server", TCI, ERR4(S4, C4, 3, 3, q_udp_out), REL, 1, E_ANY, F_UNREPLIED },
	{ "from a router on the way", XDP, ERR4(R4, C4, 11, 0, q_udp_out), REL, 1, E_ANY, F_UNREPLIED },
	{ "quoting an unknown flow", XDP, ERR4(S4, C4, 3, 3, q_udp_unknown), INV, 0, E_ANY },
	{ "tcp flow", XDP, T4(C4, S4, 43000, 80, SYN, 1, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "host unreachable for tcp", XDP, ERR4(R4, C4, 3, 1, q_tcp_out), REL, 1, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "error towards the server", XDP, ERR4(R4, S4, 3, 1, q_tcp_back), REL, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "echo flow", XDP, I4(C4, S4, 8, 99), NEW, 0, E_ANY, F_UNREPLIED },
	{ "ttl exceeded for echo", XDP, ERR4(R4, C4, 11, 0, q_echo), REL, 1, E_ANY },
	{ "ipv6 tcp flow", XDP, T6(C6, S6, 43000, 80, SYN, 1, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "packet too big", XDP, ERR6(R6, C6, 2, q_tcp6), REL, 1, CT_TCP_SYN_SENT, F_UNREPLIED },
	{ "icmpv6 error for unknown flow", XDP, ERR6(R6, C6, 1, q_udp6_unknown), INV, 0, E_ANY },
};

static const struct ct_step other[] = {
	{ "gre first", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 47 } }, NEW, 0, E_ANY, F_UNREPLIED, 600 },
	{ "gre back", XDP, { .s = { .family = 4, .src = S4, .dst = C4, .proto = 47 } }, EST, 1, E_ANY, 0, 600 },
	{ "later fragment without its first", XDP, { .s = { .family = 4, .src = R4, .dst = S4, .proto = 17, .frag_offset = 10 } }, UNT, 0, E_ANY },
	{ "first fragment", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 17, .sport = 7777, .dport = 7778, .more_frags = true, .payload = 16 } }, NEW, 0, E_ANY },
	{ "its later fragment takes its class", XDP, { .s = { .family = 4, .src = C4, .dst = S4, .proto = 17, .frag_offset = 3 } }, NEW, 0, E_ANY },
	{ "reply", XDP, U4(S4, C4, 7778, 7777), EST, 1, E_ANY },
	{ "reply's first fragment", XDP, { .s = { .family = 4, .src = S4, .dst = C4, .proto = 17, .sport = 7778, .dport = 7777, .more_frags = true, .payload = 16 } }, EST, 1, E_ANY },
	{ "reply's later fragment", XDP, { .s = { .family = 4, .src = S4, .dst = C4, .proto = 17, .frag_offset = 3 } }, EST, 1, E_ANY },
	{ "ipv6 first fragment", XDP, { .s = { .family = 6, .src = C6, .dst = S6, .proto = 17, .sport = 7777, .dport = 7778, .more_frags = true, .payload = 16 } }, NEW, 0, E_ANY },
	{ "ipv6 later fragment", TCI, { .s = { .family = 6, .src = C6, .dst = S6, .proto = 17, .frag_offset = 3 } }, NEW, 0, E_ANY },
	{ "ipv6 later fragment of another datagram", XDP, { .s = { .family = 6, .src = R6, .dst = S6, .proto = 17, .frag_offset = 3 } }, UNT, 0, E_ANY },
	{ "arp is not tracked", XDP, { .s = { .family = 0 } }, 0, 0, E_ANY },
};

/* ---- options, expiry and the sweep ------------------------------------ */

static int set_config(void (*edit)(struct ct_config *))
{
	struct ct_config cfg;
	int err = ct_config_read(ctx, CT, &cfg);

	if (!err) {
		edit(&cfg);
		err = ct_config_write(ctx, CT, &cfg);
	}
	return err;
}

static void strict_on(struct ct_config *c) { c->flags &= ~CT_CFG_LOOSE; }
static void strict_off(struct ct_config *c) { c->flags |= CT_CFG_LOOSE; }
static void drop_on(struct ct_config *c) { c->flags |= CT_CFG_DROP_INVALID; }
static void drop_off(struct ct_config *c) { c->flags &= ~CT_CFG_DROP_INVALID; }
static void short_udp(struct ct_config *c)
{
	c->timeout_ns[CT_TO_UDP] = 1000000000ULL;
	c->timeout_ns[CT_TCP_SYN_SENT] = 1000000000ULL;
	c->gc_interval_ms = 200;
}

/* Entries in the tables, expired or not (what the sweep removes). */
static long raw_entries(void)
{
	static const char *const tables[] = { "ct_table", "ct_table6" };
	char dir[256];
	struct ct_key k, n; /* large enough for either table's key */
	long cnt = 0;

	sl_instance_dir(ctx, CT, dir, sizeof(dir));
	for (int t = 0; t < 2; t++) {
		void *prev = NULL;
		int fd = sl_obj_get(dir, tables[t]);

		if (fd < 0)
			return -1;
		while (!bpf_map_get_next_key(fd, prev, &n)) {
			k = n;
			prev = &k;
			cnt++;
		}
		close(fd);
	}
	return cnt;
}

static const struct ct_step expiry_before[] = {
	{ "udp opens", XDP, U4(C4, S4, 9000, 9001), NEW, 0, E_ANY, F_UNREPLIED, 1 },
	{ "tcp syn opens", XDP, T4(C4, S4, 9000, 9001, SYN, 1, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED, 1 },
};

static const struct ct_step expiry_after[] = {
	{ "udp is new again", XDP, U4(C4, S4, 9000, 9001), NEW, 0, E_ANY, F_UNREPLIED },
	{ "a reply to the expired syn is invalid", XDP, T4(S4, C4, 9001, 9000, SYN | ACK, 1, 2), INV, 0, E_GONE },
};

static void run_options(void)
{
	struct ct_stats st0, st1;
	struct sl_nf_stats nst;
	__u64 drops0[SL_DROP_MAX], drops1[SL_DROP_MAX];
	struct sl_instance inst;
	__u32 retval = 0;
	long before, after = -1;
	int err;

	err = set_config(strict_on);
	if (check_report(!err, "options/loose off", err ? sl_errmsg() : NULL))
		RUN("tcp strict", tcp_strict);
	set_config(strict_off);

	/* Dropping INVALID when asked: the packet is dropped and counted. */
	err = set_config(drop_on);
	err = err ?: sl_instance_get(ctx, CT, &inst);
	err = err ?: sl_slot_stats(ctx, inst.slot, &nst, drops0);
	if (check_report(!err, "options/drop invalid on", err ? sl_errmsg() : NULL)) {
		const struct ct_step s = { "fin without connection is dropped", XDP,
					   T4(C4, S4, 41100, 80, FIN | ACK, 1, 1), INV, 0, E_GONE };
		const struct ct_step ok = { "syn still passes", XDP,
					    T4(C4, S4, 41101, 80, SYN, 1, 0), NEW, 0, CT_TCP_SYN_SENT, F_UNREPLIED };

		run_step("drop invalid", &s, &retval);
		sl_slot_stats(ctx, inst.slot, &nst, drops1);
		check_report(retval == XDP_DROP &&
				     drops1[SL_DROP_CT_INVALID] == drops0[SL_DROP_CT_INVALID] + 1,
			     "drop invalid/verdict drop, reason conntrack-invalid", NULL);
		run_step("drop invalid", &ok, &retval);
		check_report(retval == XDP_PASS, "drop invalid/new passes", NULL);
	}
	set_config(drop_off);

	/* Expiry: 1 s timeouts; the next packet finds the entry expired. */
	err = set_config(short_udp);
	ct_stats_read(ctx, CT, &st0, NULL);
	if (!check_report(!err, "options/short timeouts", err ? sl_errmsg() : NULL))
		return;
	RUN("expiry", expiry_before);
	usleep(1300 * 1000);
	RUN("expiry", expiry_after);
	ct_stats_read(ctx, CT, &st1, NULL);
	check_report(st1.expired >= st0.expired + 1, "expiry/counted as expired", NULL);

	/* The sweep removes expired entries with nobody looking them up. */
	before = raw_entries();
	for (int i = 0; i < 40; i++) {
		usleep(100 * 1000);
		after = raw_entries();
		ct_stats_read(ctx, CT, &st1, NULL);
		if (after < before && st1.gc_deleted > st0.gc_deleted)
			break;
	}
	{
		char why[128];

		snprintf(why, sizeof(why), "%ld entries before, %ld after; gc runs %llu", before,
			 after, (unsigned long long)st1.gc_runs);
		check_report(after >= 0 && after < before && st1.gc_runs > st0.gc_runs &&
				     st1.gc_deleted > st0.gc_deleted,
			     "gc/the in-kernel sweep removes expired entries", why);
	}
}

/* ns per packet through root + conntrack, BPF_PROG_RUN repeated. */
static void run_bench(void)
{
	const struct ct_pkt_spec hit = T4(C4, S4, 44000, 80, ACK, 1, 1);
	const struct ct_pkt_spec miss = T4(C4, S4, 44001, 80, FIN | ACK, 1, 1);
	uint8_t pkt[PKT_MAX];
	__u32 retval, ns_hit = 0, ns_miss = 0, ns;
	__u64 total = 0;
	size_t len;
	int err, n = 2000;

	set_config(strict_off);
	len = build(&hit, pkt);
	err = run_frame(XDP, pkt, len, 1, &retval, NULL);
	err = err ?: run_frame(XDP, pkt, len, 1000000, &retval, &ns_hit);
	len = build(&miss, pkt);
	err = err ?: run_frame(XDP, pkt, len, 1000000, &retval, &ns_miss);
	/* New connections: a different source port each run. */
	for (int i = 0; i < n && !err; i++) {
		struct ct_pkt_spec syn = T4(C4, S4, 10000 + i, 8080, SYN, 1, 0);

		len = build(&syn, pkt);
		err = run_frame(XDP, pkt, len, 1, &retval, &ns);
		total += ns;
	}
	if (check_report(!err, "bench/runs", err ? strerror(-err) : NULL))
		printf("bench: root+conntrack XDP ns/packet: hit %u, miss (invalid, no entry) %u, "
		       "new connection %llu\n",
		       ns_hit, ns_miss, (unsigned long long)(total / n));
}

/* The design choice, measured: a lookup hit in the kernel's conntrack
 * through kfuncs against the same work in our table, each in a bare XDP
 * program run 1,000,000 times on one established TCP packet. */
static int run_prog_repeat(int fd, const uint8_t *pkt, size_t len, int repeat, __u32 *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .repeat = repeat);

	if (bpf_prog_test_run_opts(fd, &opts))
		return -errno;
	*ns = opts.duration;
	return opts.retval == XDP_PASS ? 0 : -EPROTO;
}

static void run_bench_kfunc(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts, .pin_root_path = sl_base(ctx));
	const struct ct_pkt_spec ack = T4(C4, S4, 45000, 80, ACK, 1, 1);
	struct conntrack_bpf *skel = conntrack_bpf__open_opts(&oopts);
	struct ct_config cfg;
	uint8_t pkt[PKT_MAX];
	__u32 ns_k = 0, ns_t = 0, zero = 0;
	size_t len = build(&ack, pkt);
	int err;

	if (!check_report(skel != NULL, "bench/open", NULL))
		return;
	bpf_program__set_autoload(skel->progs.ct_bench_kfunc, true);
	bpf_program__set_autoload(skel->progs.ct_bench_table, true);
	bpf_map__set_max_entries(skel->maps.ct_table, 1024);
	err = conntrack_bpf__load(skel);
	if (!check_report(!err, "bench/load the kfunc and table programs",
			  err ? strerror(-err) : NULL))
		goto out;
	ct_config_default(&cfg);
	bpf_map_update_elem(bpf_map__fd(skel->maps.ct_config), &zero, &cfg, BPF_ANY);
	/* First run inserts, the others hit. */
	err = run_prog_repeat(bpf_program__fd(skel->progs.ct_bench_kfunc), pkt, len, 1, &ns_k);
	err = err ?: run_prog_repeat(bpf_program__fd(skel->progs.ct_bench_kfunc), pkt, len,
				     1000000, &ns_k);
	check_report(!err && skel->bss->bench_hits == 1000000,
		     "bench/kernel conntrack lookup hits through bpf_xdp_ct_lookup",
		     err ? strerror(-err) : NULL);
	skel->bss->bench_hits = 0;
	err = run_prog_repeat(bpf_program__fd(skel->progs.ct_bench_table), pkt, len, 1, &ns_t);
	err = err ?: run_prog_repeat(bpf_program__fd(skel->progs.ct_bench_table), pkt, len,
				     1000000, &ns_t);
	check_report(!err && skel->bss->bench_hits == 1000001, "bench/own table hits",
		     err ? strerror(-err) : NULL);
	printf("bench: bare XDP program, established TCP packet, ns/packet: kernel conntrack "
	       "lookup+release (bpf_xdp_ct_lookup) %u; own table lookup+TCP state machine+"
	       "refresh+counters %u\n", ns_k, ns_t);
out:
	conntrack_bpf__destroy(skel);
}

static void run_list_format(void)
{
	const struct ct_pkt_spec p = T4(C4, S4, 40000, 80, SYN, 100, 0);
	struct ct_conn c;
	char line[256];

	if (!check_report(find_conn(&p, &c), "list/entry found", NULL))
		return;
	ct_conn_format(&c, line, sizeof(line));
	printf("list: %s\n", line);
	check_report(!strncmp(line, "tcp      6 1", 12) &&
			     strstr(line, " SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 "
					  "packets=1 bytes=40 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 "
					  "sport=80 dport=40000 packets=0 bytes=0"),
		     "list/conntrack -L format", line);
}

int main(void)
{
	cpu_set_t set;
	__u64 n = 0;
	int err;

	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	/* One CPU: the test reads the per-CPU metadata the run left. */
	CPU_ZERO(&set);
	CPU_SET(CPU, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		printf("FAIL: cannot pin to CPU %d\n", CPU);
		return 1;
	}
	if (system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1") ||
	    system("ip link add " DEV " type veth peer name " PEER " && ip link set " DEV
		   " up && ip link set " PEER " up")) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	ifindex = sl_ifindex(DEV);
	unlink(FAIL_PCAP);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	err = ct_create(ctx, CT, NULL);
	err = err ?: ct_chain_first(ctx, DEV, SL_HOOK_XDP, CT);
	err = err ?: ct_chain_first(ctx, DEV, SL_HOOK_TC_IN, CT);
	if (check_report(!err, "create and attach to " DEV, err ? sl_errmsg() : NULL)) {
		check_report(ct_create(ctx, CT, NULL) == -EEXIST, "create twice is refused", NULL);
		check_report(!ct_instance_ensure(ctx, CT), "ensure keeps an existing instance", NULL);
		RUN("tcp close by client", tcp_close_client);
		run_list_format();
		RUN("tcp close by server", tcp_close_server);
		RUN("tcp rst", tcp_rst);
		RUN("tcp simultaneous open", tcp_simultaneous);
		RUN("tcp invalid", tcp_invalid);
		RUN("tcp pickup", tcp_pickup);
		RUN("tcp ipv6", tcp6);
		RUN("udp", udp);
		RUN("icmp", icmp);
		RUN("icmp errors", icmp_errors);
		RUN("other", other);
		sleep(2);
		RUN("udp stream", udp_stream);
		run_options();
		run_bench();
		run_bench_kfunc();
		err = ct_flush(ctx, CT, &n);
		check_report(!err && n > 0 && raw_entries() == 0, "flush empties the table",
			     err ? sl_errmsg() : NULL);
	}
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
