// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of the NAT NF through the real pipeline: rules loaded
 * by the production control code, packets built with correct checksums and
 * run with BPF_PROG_RUN through the TC ingress and egress roots; every
 * output packet is parsed and its checksums recomputed from scratch (IPv4
 * header, TCP, UDP, ICMP, ICMPv6, and the quoted header of ICMP errors).
 * Runs in a private network namespace; a failing packet is printed in hex
 * and appended to build/tests/nat_fail.pcap. Ends with the cost per packet
 * of a translated established flow and of a new flow (BPF_PROG_RUN). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "conntrack.h"
#include "nat.h"
#include "router.h"
#include "check.h"
#include "pktbuild.h"

#define OUT "sltn0" /* the outside interface: 203.0.113.1, 2001:db8:ff::1 */
#define OUTP "sltn1"
#define IN "sltn2" /* the inside interface: 10.0.0.1, fd00::1 */
#define INP "sltn3"
#define FAIL_PCAP "build/tests/nat_fail.pcap"

static struct sl_ctx *ctx;
static int if_out, if_in;
static uint16_t echo_id_b; /* the id host 10.0.0.3's echo 0x4242 got */

enum { V_PASS, V_DROP, V_REDIRECT }; /* V_REDIRECT: the router forwards it */

/* ---- running packets ---------------------------------------------------- */

struct run {
	uint8_t out[PKT_MAX];
	__u32 len;
	int verdict;
	__u32 duration; /* ns per run, from the kernel */
};

static int run_tc(int ifindex, enum sl_hook hook, const uint8_t *pkt, size_t len,
		  int repeat, struct run *r)
{
	struct xdp_md xmd = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff skb = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .data_out = r->out, .data_size_out = sizeof(r->out),
		    .ctx_in = &skb, .ctx_size_in = sizeof(skb), .repeat = repeat);
	static const char *const roots[] = { "root_xdp", "root_tc_in", "root_tc_out" };
	int fd = sl_obj_get(sl_base(ctx), roots[hook]);
	int err;

	if (fd < 0)
		return fd;
	if (hook == SL_HOOK_XDP) {
		opts.ctx_in = &xmd;
		opts.ctx_size_in = sizeof(xmd);
	}
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	if (err)
		return -errno;
	r->len = opts.data_size_out;
	r->duration = opts.duration;
	if (hook == SL_HOOK_XDP)
		r->verdict = opts.retval == XDP_PASS ? V_PASS : opts.retval == XDP_DROP ? V_DROP :
			     opts.retval == XDP_REDIRECT ? V_REDIRECT : -1;
	else
		r->verdict = opts.retval == 2 ? V_DROP : (int)opts.retval == -1 ? V_PASS : -1;
	return 0;
}

/* ---- parsing and checking the output ------------------------------------ */

struct parsed {
	int family;
	uint8_t saddr[16], daddr[16];
	uint8_t proto;
	uint16_t sport, dport; /* TCP/UDP ports */
	uint8_t icmp_type;
	uint16_t icmp_id;
	uint16_t l4_csum;
	size_t l3, l4, end;
};

static uint16_t get16(const uint8_t *p)
{
	return (p[0] << 8) | p[1];
}

/* One's complement sum of the L4 segment with its pseudo-header; a right
 * checksum makes it 0xffff. ICMPv4 has no pseudo-header. */
static uint16_t l4_sum(int family, const uint8_t *sa, const uint8_t *da, uint8_t proto,
		       const uint8_t *l4, size_t len)
{
	uint8_t pseudo[40] = {};
	uint32_t sum = 0;

	if (proto != 1) {
		if (family == 4) {
			memcpy(pseudo, sa, 4);
			memcpy(pseudo + 4, da, 4);
			pseudo[9] = proto;
			put16(pseudo + 10, len);
			sum = csum_add(0, pseudo, 12);
		} else {
			memcpy(pseudo, sa, 16);
			memcpy(pseudo + 16, da, 16);
			put16(pseudo + 34, len);
			pseudo[39] = proto;
			sum = csum_add(0, pseudo, 40);
		}
	}
	sum = csum_add(sum, l4, len);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* Parses an IP packet at l3 (no Ethernet) of len bytes. */
static bool parse_ip(const uint8_t *l3, size_t len, struct parsed *p)
{
	const uint8_t *l4;
	size_t hl;

	memset(p, 0, sizeof(*p));
	if (len < 20)
		return false;
	if ((l3[0] >> 4) == 4) {
		hl = (l3[0] & 15) * 4;
		p->family = 4;
		memcpy(p->saddr, l3 + 12, 4);
		memcpy(p->daddr, l3 + 16, 4);
		p->proto = l3[9];
	} else {
		if (len < 40)
			return false;
		hl = 40;
		p->family = 6;
		memcpy(p->saddr, l3 + 8, 16);
		memcpy(p->daddr, l3 + 24, 16);
		p->proto = l3[6];
	}
	if (len < hl + 8)
		return false;
	l4 = l3 + hl;
	p->l4 = hl;
	p->end = len;
	if (p->proto == 6 || p->proto == 17) {
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		p->l4_csum = get16(l4 + (p->proto == 6 ? 16 : 6));
	} else {
		p->icmp_type = l4[0];
		p->icmp_id = get16(l4 + 4);
		p->l4_csum = get16(l4 + 2);
	}
	return true;
}

/* Checks every checksum of the IP packet at l3 from scratch; quoted: the
 * packet is the quote of an ICMP error (its L4 may be cut short, and its
 * L4 checksum then cannot be checked). */
static bool csums_ok(const uint8_t *l3, size_t len, bool quoted, char *why, size_t wlen)
{
	struct parsed p;
	size_t l4len;

	if (!parse_ip(l3, len, &p)) {
		snprintf(why, wlen, "cannot parse");
		return false;
	}
	if (p.family == 4 && csum_fold(csum_add(0, l3, p.l4)) != 0) {
		snprintf(why, wlen, "%sIPv4 header checksum wrong", quoted ? "quoted " : "");
		return false;
	}
	l4len = p.family == 4 ? get16(l3 + 2) - p.l4 : get16(l3 + 4);
	if (l4len > len - p.l4) {
		if (quoted)
			return true; /* cut short: no L4 checksum to check */
		snprintf(why, wlen, "truncated");
		return false;
	}
	if (p.proto == 17 && p.l4_csum == 0 && p.family == 4)
		return true; /* no checksum */
	if (l4_sum(p.family, p.saddr, p.daddr, p.proto, l3 + p.l4, l4len) != 0xffff) {
		snprintf(why, wlen, "%s%s checksum wrong", quoted ? "quoted " : "",
			 p.proto == 6 ? "TCP" : p.proto == 17 ? "UDP" : "ICMP");
		return false;
	}
	if (!quoted && (p.proto == 1 || p.proto == 58) && p.icmp_type < 128 &&
	    p.icmp_type != 0 && p.icmp_type != 8)
		return csums_ok(l3 + p.l4 + 8, l4len - 8, true, why, wlen);
	return true;
}

static bool addr_is(const uint8_t *a, int family, const char *text)
{
	uint8_t b[16] = {};

	inet_pton(family == 4 ? AF_INET : AF_INET6, text, b);
	return !memcmp(a, b, family == 4 ? 4 : 16);
}

/* ---- cases -------------------------------------------------------------- */

/* What the output packet must be; NULL / 0 fields are not checked (a port
 * of -1 must differ from the input's, for collisions). */
struct want {
	int verdict;
	const char *src, *dst;
	int sport, dport; /* TCP/UDP; ICMP echo: sport is the identifier */
	uint16_t udp_csum_zero; /* 1: the UDP checksum must stay 0 */
};

static void fail_dump(const uint8_t *in, size_t ilen, const struct run *r)
{
	printf("input (%zu bytes):\n", ilen);
	pkt_hex(stdout, in, ilen);
	pkt_pcap(FAIL_PCAP, in, ilen);
	if (r->len) {
		printf("output (%u bytes):\n", r->len);
		pkt_hex(stdout, r->out, r->len);
		pkt_pcap(FAIL_PCAP, r->out, r->len);
	}
}

/* Runs pkt at (ifindex, hook) and checks the result; returns the output's
 * parse in *got. */
static bool run_check(const char *name, int ifindex, enum sl_hook hook,
		      const uint8_t *pkt, size_t len, const struct want *w,
		      struct parsed *got)
{
	struct run r = {};
	struct parsed in, out;
	char why[160] = "";
	bool ok = false;
	int err = run_tc(ifindex, hook, pkt, len, 1, &r);

	parse_ip(pkt + 14, len - 14, &in);
	memset(&out, 0, sizeof(out));
	if (err) {
		snprintf(why, sizeof(why), "test run: %s", strerror(-err));
		goto report;
	}
	if (r.verdict != w->verdict) {
		static const char *const vname[] = { "pass", "drop", "redirect" };

		snprintf(why, sizeof(why), "verdict %s, expected %s",
			 r.verdict >= 0 ? vname[r.verdict] : "other", vname[w->verdict]);
		goto report;
	}
	if (w->verdict == V_DROP) {
		ok = true;
		goto report;
	}
	if (r.len < 14 || !parse_ip(r.out + 14, r.len - 14, &out)) {
		snprintf(why, sizeof(why), "output does not parse");
		goto report;
	}
	if (!csums_ok(r.out + 14, r.len - 14, false, why, sizeof(why)))
		goto report;
	if (w->src && !addr_is(out.saddr, out.family, w->src)) {
		snprintf(why, sizeof(why), "source is not %s", w->src);
		goto report;
	}
	if (w->dst && !addr_is(out.daddr, out.family, w->dst)) {
		snprintf(why, sizeof(why), "destination is not %s", w->dst);
		goto report;
	}
	if (out.proto == 6 || out.proto == 17) {
		if ((w->sport > 0 && out.sport != w->sport) ||
		    (w->sport < 0 && out.sport == in.sport)) {
			snprintf(why, sizeof(why), "source port %u, expected %s%d", out.sport,
				 w->sport < 0 ? "not " : "", w->sport < 0 ? in.sport : w->sport);
			goto report;
		}
		if (w->dport > 0 && out.dport != w->dport) {
			snprintf(why, sizeof(why), "destination port %u, expected %d",
				 out.dport, w->dport);
			goto report;
		}
	} else if (w->sport) {
		if ((w->sport > 0 && out.icmp_id != w->sport) ||
		    (w->sport < 0 && out.icmp_id == in.icmp_id)) {
			snprintf(why, sizeof(why), "ICMP id %u, expected %s%d", out.icmp_id,
				 w->sport < 0 ? "not " : "", w->sport < 0 ? in.icmp_id : w->sport);
			goto report;
		}
	}
	if (w->udp_csum_zero && out.l4_csum != 0) {
		snprintf(why, sizeof(why), "UDP checksum 0x%04x, expected to stay 0", out.l4_csum);
		goto report;
	}
	ok = true;
report:
	check_report(ok, name, why[0] ? why : NULL);
	if (!ok)
		fail_dump(pkt, len, &r);
	if (got)
		*got = out;
	return ok;
}

#define V4(s, d, ...) { .family = 4, .src = s, .dst = d, __VA_ARGS__ }
#define V6(s, d, ...) { .family = 6, .src = s, .dst = d, __VA_ARGS__ }
#define TCP .proto = 6
#define UDP .proto = 17

/* Builds a packet with pktbuild, then sets its ICMP echo identifier (and
 * fixes the ICMP checksum). */
static size_t build(const struct pkt_spec *s, uint16_t echo_id, uint8_t *buf)
{
	size_t len = pkt_build(s, buf);

	if (echo_id && (s->proto == 1 || s->proto == 58)) {
		struct parsed p;
		uint8_t *l4;

		parse_ip(buf + 14, len - 14, &p);
		l4 = buf + 14 + p.l4;
		put16(l4 + 4, echo_id);
		put16(l4 + 2, 0);
		put16(l4 + 2, ~l4_sum(p.family, p.saddr, p.daddr, p.proto, l4, len - 14 - p.l4));
	}
	return len;
}

static bool case_pkt(const char *name, int ifindex, enum sl_hook hook,
		     const struct pkt_spec *s, uint16_t echo_id, const struct want *w,
		     struct parsed *got)
{
	uint8_t pkt[PKT_MAX];
	size_t len = build(s, echo_id, pkt);

	return run_check(name, ifindex, hook, pkt, len, w, got);
}

/* An ICMP error from `from` to `to` quoting the IP packet inner (no
 * Ethernet), the whole of it or its first `quote` bytes. */
static size_t build_icmp_error(int family, const char *from, const char *to,
			       uint8_t type, uint8_t code, const uint8_t *inner,
			       size_t ilen, uint8_t *buf)
{
	struct pkt_spec s = { .family = family, .src = from, .dst = to,
			      .proto = family == 4 ? 1 : 58, .icmp_type = type,
			      .icmp_code = code, .payload = ilen };
	size_t len = pkt_build(&s, buf);
	struct parsed p;
	uint8_t *l4;

	parse_ip(buf + 14, len - 14, &p);
	l4 = buf + 14 + p.l4;
	memset(l4 + 4, 0, 4);
	if (type == 2 && family == 6)
		put16(l4 + 6, 1280); /* packet too big: the MTU */
	memcpy(l4 + 8, inner, ilen);
	put16(l4 + 2, 0);
	put16(l4 + 2, ~l4_sum(family, p.saddr, p.daddr, s.proto, l4, len - 14 - p.l4));
	return len;
}

/* The quoted packet of an ICMP error in an output frame. */
static bool quoted_of(const struct run *r, struct parsed *q)
{
	struct parsed o;

	return parse_ip(r->out + 14, r->len - 14, &o) &&
	       parse_ip(r->out + 14 + o.l4 + 8, r->len - 14 - o.l4 - 8, q);
}

/* ---- rules -------------------------------------------------------------- */

static int add_rule(const char *name, const char *text)
{
	char buf[NAT_TEXT_MAX], *argv[NAT_MAX_SPECS];
	struct nat_spec spec;
	int argc = 0, err;

	snprintf(buf, sizeof(buf), "%s", text);
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
		argv[argc++] = w;
	err = nat_spec_make(&spec, name, argc, argv);
	err = err ?: nat_rule_add(ctx, &spec);
	if (err)
		printf("  rule %s: %s\n", name, sl_errmsg());
	return err;
}

static __u64 drops_of(int reason)
{
	struct sl_instance inst;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];

	if (sl_instance_get(ctx, NAT_INSTANCE, &inst) ||
	    sl_slot_stats(ctx, inst.slot, &st, drops))
		return ~0ULL;
	return drops[reason];
}

/* Flows translated by the rule of that name (its compiled rules summed). */
static __u64 flows_of(const char *name)
{
	static struct nat_rule rules[NAT_MAX_RULES];
	static struct nat_counter cnt[NAT_MAX_RULES];
	static struct nat_specs specs;
	__u64 sum = 0;
	__u32 n;

	if (nat_read_specs(ctx, &specs) || nat_read_rules(ctx, rules, cnt, &n))
		return ~0ULL;
	for (__u32 i = 0; i < n; i++)
		if (rules[i].spec < specs.n && !strcmp(specs.spec[rules[i].spec].name, name))
			sum += cnt[i].flows;
	return sum;
}

struct find_map {
	const char *src;
	uint16_t sport;
	int count;
	struct nat_mapping m;
};

static int find_map_cb(const struct nat_mapping *m, void *arg)
{
	struct find_map *f = arg;

	if (addr_is((const uint8_t *)m->orig.saddr, m->orig.family, f->src) &&
	    m->orig.sport == f->sport) {
		f->count++;
		f->m = *m;
	}
	return 0;
}

/* ---- the tests ---------------------------------------------------------- */

static void test_snat_v4(void)
{
	struct parsed got, got2;
	const struct pkt_spec syn = V4("10.0.0.2", "198.51.100.2", TCP, .sport = 40000, .dport = 80,
				       .tcp_flags = 0x02, .payload = 11);

	/* A new flow keeps its source port when it is free. */
	case_pkt("snat/tcp new flow: source and checksums", if_out, SL_HOOK_TC_OUT, &syn, 0,
		 &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 40000, 80 }, &got);
	case_pkt("snat/tcp same flow again: same translation", if_out, SL_HOOK_TC_OUT, &syn, 0,
		 &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 40000, 80 }, NULL);
	case_pkt("snat/tcp reply translated back", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80, .dport = 40000,
				      .tcp_flags = 0x12, .payload = 5),
		 0, &(struct want){ V_PASS, "198.51.100.2", "10.0.0.2", 80, 40000 }, NULL);
	/* Another inside host, same source port, same server: another port. */
	case_pkt("snat/collision: same source port from another host gets another port",
		 if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", TCP, .sport = 40000, .dport = 80,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", -1, 80 }, &got2);
	if (got2.sport)
		case_pkt("snat/collision: its reply goes to the second host", if_out, SL_HOOK_TC_IN,
			 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80,
					      .dport = got2.sport, .tcp_flags = 0x12),
			 0, &(struct want){ V_PASS, "198.51.100.2", "10.0.0.3", 80, 40000 }, NULL);
	check_report(got2.sport >= 1024, "snat/collision: the new port is in 1024-65535", NULL);
	/* Rules match on --src: other sources pass untouched. */
	case_pkt("snat/source outside --src untouched", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("172.16.0.2", "198.51.100.2", TCP, .sport = 40000, .dport = 80),
		 0, &(struct want){ V_PASS, "172.16.0.2", "198.51.100.2", 40000, 80 }, NULL);
	case_pkt("snat/unrelated packet at ingress untouched", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80, .dport = 40999),
		 0, &(struct want){ V_PASS, "198.51.100.2", "203.0.113.1", 80, 40999 }, NULL);
}

static void test_udp_icmp_v4(void)
{
	struct parsed got;
	uint8_t pkt[PKT_MAX];
	size_t len;

	case_pkt("snat/udp new flow", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", UDP, .sport = 5000, .dport = 53,
				      .payload = 17),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 5000, 53 }, NULL);
	case_pkt("snat/udp reply", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", UDP, .sport = 53, .dport = 5000,
				      .payload = 30),
		 0, &(struct want){ V_PASS, "198.51.100.2", "10.0.0.2", 53, 5000 }, NULL);
	/* UDP without a checksum (IPv4): it stays without one. */
	len = pkt_build(&(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", UDP, .sport = 5000,
					     .dport = 53, .payload = 9), pkt);
	memset(pkt + 14 + 20 + 6, 0, 2);
	run_check("snat/udp zero checksum stays zero (port changed too)", if_out, SL_HOOK_TC_OUT,
		  pkt, len, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", -1, 53, 1 },
		  &got);
	/* ICMP echo: the identifier is translated like a port. */
	case_pkt("snat/icmp echo request", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", .proto = 1, .icmp_type = 8,
				      .payload = 24),
		 0x4242, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 0x4242 }, NULL);
	case_pkt("snat/icmp echo, same id from another host: another id", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", .proto = 1, .icmp_type = 8,
				      .payload = 24),
		 0x4242, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", -1 }, &got);
	echo_id_b = got.icmp_id;
	case_pkt("snat/icmp echo reply back to the second host, id restored", if_out,
		 SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", .proto = 1, .icmp_type = 0,
				      .payload = 24),
		 got.icmp_id, &(struct want){ V_PASS, "198.51.100.2", "10.0.0.3", 0x4242 }, NULL);
}

/* An ICMP error about a translated flow: the quoted packet is the flow as
 * it left (translated source), the outer packet goes to the NAT address. */
static void test_icmp_errors(void)
{
	uint8_t inner[PKT_MAX], pkt[PKT_MAX];
	size_t ilen, len;
	struct parsed got, q;
	struct run r = {};
	char why[160] = "";
	bool ok;

	/* The second host's UDP flow 10.0.0.3:5000 got another port: send
	 * a fresh flow with a checksum, see its port, quote it. */
	case_pkt("icmp error/set-up: udp flow with a translated port", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", UDP, .sport = 5000, .dport = 53,
				      .payload = 17),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", -1, 53 }, &got);
	ilen = pkt_build(&(struct pkt_spec)V4("203.0.113.1", "198.51.100.2", UDP,
					      .sport = got.sport, .dport = 53, .payload = 17),
			 inner);
	len = build_icmp_error(4, "198.51.100.2", "203.0.113.1", 3, 3, inner + 14, ilen - 14, pkt);
	ok = run_check("icmp error/port unreachable: outer to the inside host", if_out,
		       SL_HOOK_TC_IN, pkt, len,
		       &(struct want){ V_PASS, "198.51.100.2", "10.0.0.3" }, NULL);
	if (ok && !run_tc(if_out, SL_HOOK_TC_IN, pkt, len, 1, &r) && quoted_of(&r, &q)) {
		ok = addr_is(q.saddr, 4, "10.0.0.3") && q.sport == 5000 && q.dport == 53 &&
		     csums_ok(r.out + 14 + 20 + 8, r.len - 14 - 28, true, why, sizeof(why));
		check_report(ok, "icmp error/quoted udp header: source 10.0.0.3:5000, checksums",
			     why[0] ? why : "quoted tuple not translated back");
	}
	/* A router on the way (not the server) says time exceeded, quoting
	 * only the first 8 bytes of a TCP header. */
	ilen = pkt_build(&(struct pkt_spec)V4("203.0.113.1", "198.51.100.2", TCP,
					      .sport = 40000, .dport = 80, .tcp_flags = 0x02),
			 inner);
	len = build_icmp_error(4, "192.0.2.254", "203.0.113.1", 11, 0, inner + 14, 28, pkt);
	run_check("icmp error/time exceeded from a router, 8 bytes of tcp quoted", if_out,
		  SL_HOOK_TC_IN, pkt, len,
		  &(struct want){ V_PASS, "192.0.2.254", "10.0.0.2" }, NULL);
	/* Time exceeded for a ping (traceroute), quoting the whole echo
	 * request: the quoted identifier and the quoted ICMP checksum too. */
	ilen = build(&(struct pkt_spec)V4("203.0.113.1", "198.51.100.2", .proto = 1,
					  .icmp_type = 8, .payload = 24),
		     echo_id_b, inner);
	len = build_icmp_error(4, "192.0.2.254", "203.0.113.1", 11, 0, inner + 14, ilen - 14, pkt);
	ok = run_check("icmp error/time exceeded for a ping: outer to the inside host", if_out,
		       SL_HOOK_TC_IN, pkt, len,
		       &(struct want){ V_PASS, "192.0.2.254", "10.0.0.3" }, NULL);
	if (ok && !run_tc(if_out, SL_HOOK_TC_IN, pkt, len, 1, &r) && quoted_of(&r, &q))
		check_report(addr_is(q.saddr, 4, "10.0.0.3") && q.icmp_id == 0x4242,
			     "icmp error/quoted echo request: source and identifier restored",
			     NULL);
	/* Unrelated errors pass untouched. */
	ilen = pkt_build(&(struct pkt_spec)V4("203.0.113.1", "198.51.100.9", UDP, .sport = 1,
					      .dport = 2), inner);
	len = build_icmp_error(4, "198.51.100.9", "203.0.113.1", 3, 3, inner + 14, ilen - 14, pkt);
	run_check("icmp error/unrelated error untouched", if_out, SL_HOOK_TC_IN, pkt, len,
		  &(struct want){ V_PASS, "198.51.100.9", "203.0.113.1" }, NULL);
}

static void test_v6(void)
{
	uint8_t inner[PKT_MAX], pkt[PKT_MAX];
	struct parsed got, q;
	struct run r = {};
	size_t ilen, len;
	char why[160] = "";

	case_pkt("ipv6/tcp new flow", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V6("fd00::2", "2001:db8:1::2", TCP, .sport = 40000, .dport = 443,
				      .tcp_flags = 0x02, .payload = 7),
		 0, &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:1::2", 40000, 443 }, NULL);
	case_pkt("ipv6/tcp reply", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V6("2001:db8:1::2", "2001:db8:ff::1", TCP, .sport = 443,
				      .dport = 40000, .tcp_flags = 0x12),
		 0, &(struct want){ V_PASS, "2001:db8:1::2", "fd00::2", 443, 40000 }, NULL);
	case_pkt("ipv6/udp first flow keeps its port", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V6("fd00::3", "2001:db8:1::2", UDP, .sport = 40000, .dport = 443,
				      .payload = 3),
		 0, &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:1::2", 40000, 443 }, NULL);
	case_pkt("ipv6/udp same port from another host gets another port", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V6("fd00::4", "2001:db8:1::2", UDP, .sport = 40000, .dport = 443,
				      .payload = 3),
		 0, &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:1::2", -1, 443 }, NULL);
	case_pkt("ipv6/icmpv6 echo", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V6("fd00::2", "2001:db8:1::2", .proto = 58, .icmp_type = 128,
				      .payload = 16),
		 0x77, &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:1::2", 0x77 }, NULL);
	case_pkt("ipv6/icmpv6 echo reply", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V6("2001:db8:1::2", "2001:db8:ff::1", .proto = 58,
				      .icmp_type = 129, .payload = 16),
		 0x77, &(struct want){ V_PASS, "2001:db8:1::2", "fd00::2", 0x77 }, NULL);
	/* Packet too big about the TCP flow, quoting the whole packet. */
	ilen = pkt_build(&(struct pkt_spec)V6("2001:db8:ff::1", "2001:db8:1::2", TCP,
					      .sport = 40000, .dport = 443, .payload = 7),
			 inner);
	len = build_icmp_error(6, "2001:db8:1::2", "2001:db8:ff::1", 2, 0, inner + 14,
			       ilen - 14, pkt);
	run_check("ipv6/packet too big: outer to the inside host", if_out, SL_HOOK_TC_IN, pkt,
		  len, &(struct want){ V_PASS, "2001:db8:1::2", "fd00::2" }, &got);
	if (!run_tc(if_out, SL_HOOK_TC_IN, pkt, len, 1, &r) && quoted_of(&r, &q))
		check_report(addr_is(q.saddr, 6, "fd00::2") && q.sport == 40000 &&
				     csums_ok(r.out + 14 + 48, r.len - 14 - 48, true, why,
					      sizeof(why)),
			     "ipv6/packet too big: quoted tcp header translated, checksums",
			     why[0] ? why : "quoted tuple not translated back");
}

/* --ports 20000-20001 over two addresses: four flows fit, the fifth is
 * dropped with nat-no-port; the four get four distinct tuples. */
static void test_exhaustion(void)
{
	uint8_t seen[4][16] = {};
	uint16_t ports[4] = {};
	__u64 before = drops_of(SL_DROP_NAT_NO_PORT);
	bool distinct = true, in_range = true;
	char name[96];

	for (int i = 0; i < 5; i++) {
		char src[32];
		struct parsed got = {};

		snprintf(src, sizeof(src), "10.0.1.%d", 10 + i);
		snprintf(name, sizeof(name), "exhaustion/flow %d of 4 possible", i + 1);
		case_pkt(name, if_out, SL_HOOK_TC_OUT,
			 &(struct pkt_spec)V4(src, "198.51.100.2", UDP, .sport = 7000, .dport = 53),
			 0, &(struct want){ i < 4 ? V_PASS : V_DROP }, &got);
		if (i >= 4)
			continue;
		memcpy(seen[i], got.saddr, 4);
		ports[i] = got.sport;
		if (got.sport < 20000 || got.sport > 20001 ||
		    (!addr_is(got.saddr, 4, "198.51.100.10") && !addr_is(got.saddr, 4, "198.51.100.11")))
			in_range = false;
		for (int j = 0; j < i; j++)
			if (!memcmp(seen[i], seen[j], 4) && ports[i] == ports[j])
				distinct = false;
	}
	check_report(in_range, "exhaustion/addresses and ports within the rule's ranges", NULL);
	check_report(distinct, "exhaustion/four flows, four distinct outside tuples", NULL);
	check_report(drops_of(SL_DROP_NAT_NO_PORT) == before + 1,
		     "exhaustion/the fifth is counted as nat-no-port", NULL);
}

static void test_dnat(void)
{
	uint8_t inner[PKT_MAX], pkt[PKT_MAX];
	struct parsed q;
	struct run r = {};
	size_t ilen, len;
	char why[160] = "";

	case_pkt("dnat/tcp to 203.0.113.1:8080 goes to 10.0.0.80:80", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("192.0.2.7", "203.0.113.1", TCP, .sport = 33333, .dport = 8080,
				      .tcp_flags = 0x02, .payload = 4),
		 0, &(struct want){ V_PASS, "192.0.2.7", "10.0.0.80", 33333, 80 }, NULL);
	case_pkt("dnat/reply leaves as 203.0.113.1:8080", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.80", "192.0.2.7", TCP, .sport = 80, .dport = 33333,
				      .tcp_flags = 0x12, .payload = 4),
		 0, &(struct want){ V_PASS, "203.0.113.1", "192.0.2.7", 8080, 33333 }, NULL);
	case_pkt("dnat/other port untouched", if_out, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("192.0.2.7", "203.0.113.1", TCP, .sport = 33333, .dport = 8081),
		 0, &(struct want){ V_PASS, "192.0.2.7", "203.0.113.1", 33333, 8081 }, NULL);
	case_pkt("dnat/ipv6 udp to [2001:db8:ff::1]:5353 goes to [fd00::53]:53", if_out,
		 SL_HOOK_TC_IN,
		 &(struct pkt_spec)V6("2001:db8:7::7", "2001:db8:ff::1", UDP, .sport = 1111,
				      .dport = 5353, .payload = 12),
		 0, &(struct want){ V_PASS, "2001:db8:7::7", "fd00::53", 1111, 53 }, NULL);
	case_pkt("dnat/ipv6 reply", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V6("fd00::53", "2001:db8:7::7", UDP, .sport = 53, .dport = 1111,
				      .payload = 12),
		 0, &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:7::7", 5353, 1111 }, NULL);
	/* The DNAT target itself answers with an error (port unreachable):
	 * it leaves from the public address, quoting the public port. */
	ilen = pkt_build(&(struct pkt_spec)V6("2001:db8:7::7", "fd00::53", UDP, .sport = 1111,
					      .dport = 53, .payload = 12),
			 inner);
	len = build_icmp_error(6, "fd00::53", "2001:db8:7::7", 1, 4, inner + 14, ilen - 14, pkt);
	run_check("dnat/icmpv6 error from the target leaves from the public address", if_out,
		  SL_HOOK_TC_OUT, pkt, len,
		  &(struct want){ V_PASS, "2001:db8:ff::1", "2001:db8:7::7" }, NULL);
	if (!run_tc(if_out, SL_HOOK_TC_OUT, pkt, len, 1, &r) && quoted_of(&r, &q))
		check_report(addr_is(q.daddr, 6, "2001:db8:ff::1") && q.dport == 5353 &&
				     csums_ok(r.out + 14 + 48, r.len - 14 - 48, true, why, sizeof(why)),
			     "dnat/quoted udp header: destination [2001:db8:ff::1]:5353, checksums",
			     why[0] ? why : "quoted tuple not translated back");
}

/* A client inside reaching the DNATed address of its own gateway: DNAT at
 * the inside ingress, masquerade to the inside address at its egress (so
 * the server answers through the gateway), both undone on the way back. */
static void test_hairpin(void)
{
	case_pkt("hairpin/client to the public address: DNAT at inside ingress", if_in,
		 SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("10.0.0.2", "203.0.113.1", TCP, .sport = 41000, .dport = 8080,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_PASS, "10.0.0.2", "10.0.0.80", 41000, 80 }, NULL);
	case_pkt("hairpin/then masquerade at inside egress", if_in, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "10.0.0.80", TCP, .sport = 41000, .dport = 80,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_PASS, "10.0.0.1", "10.0.0.80", 41000, 80 }, NULL);
	case_pkt("hairpin/server reply: SNAT undone at inside ingress", if_in, SL_HOOK_TC_IN,
		 &(struct pkt_spec)V4("10.0.0.80", "10.0.0.1", TCP, .sport = 80, .dport = 41000,
				      .tcp_flags = 0x12),
		 0, &(struct want){ V_PASS, "10.0.0.80", "10.0.0.2", 80, 41000 }, NULL);
	case_pkt("hairpin/then DNAT undone at inside egress", if_in, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.80", "10.0.0.2", TCP, .sport = 80, .dport = 41000,
				      .tcp_flags = 0x12),
		 0, &(struct want){ V_PASS, "203.0.113.1", "10.0.0.2", 8080, 41000 }, NULL);
}

/* A reload keeps mappings; flush forgets them; mappings list them. */
static void test_state(void)
{
	struct find_map f = { .src = "10.0.0.2", .sport = 40000 };
	const struct pkt_spec reply = V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80,
					 .dport = 40000, .tcp_flags = 0x10);
	int err;

	nat_mappings_foreach(ctx, find_map_cb, &f);
	check_report(f.count == 1 && f.m.kind == NAT_SNAT &&
			     addr_is((uint8_t *)f.m.xlat.saddr, 4, "203.0.113.1") &&
			     f.m.xlat.sport == 40000 && (f.m.state & NAT_ST_REPLIED) &&
			     f.m.expires_in_ns > (NAT_TO_TCP_EST - 60) * 1000000000ULL,
		     "state/mappings list the tcp flow, replied, established timeout", NULL);
	__u64 flows = flows_of("masq4");

	err = add_rule("extra", "snat --out " OUT " --to 198.51.100.99 --src 10.9.0.0/16");
	check_report(!err, "state/add a rule (reload)", err ? sl_errmsg() : NULL);
	check_report(flows > 0 && flows != ~0ULL && flows_of("masq4") == flows,
		     "state/rule counters carried over a reload", NULL);
	case_pkt("state/a reload keeps the mapping", if_out, SL_HOOK_TC_IN, &reply, 0,
		 &(struct want){ V_PASS, NULL, "10.0.0.2", 80, 40000 }, NULL);
	/* RST: the mapping's life shrinks to NAT_TO_TCP_CLOSE. */
	case_pkt("state/rst", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", TCP, .sport = 40000, .dport = 80,
				      .tcp_flags = 0x04),
		 0, &(struct want){ V_PASS, "203.0.113.1" }, NULL);
	f.count = 0;
	nat_mappings_foreach(ctx, find_map_cb, &f);
	check_report(f.count == 1 && f.m.expires_in_ns <= NAT_TO_TCP_CLOSE * 1000000000ULL,
		     "state/a tcp reset shortens the mapping's life", NULL);
	err = nat_flush(ctx);
	check_report(err > 0, "state/flush removes the mappings", NULL);
	case_pkt("state/after flush the reply is not translated", if_out, SL_HOOK_TC_IN, &reply,
		 0, &(struct want){ V_PASS, NULL, "203.0.113.1", 80, 40000 }, NULL);
}

/* A flow's packets look at its reverse entry (the mapping's life) once a
 * second at most: the life still follows the last packet. */
static void test_refresh(void)
{
	const struct pkt_spec udp = V4("10.0.0.2", "198.51.100.2", UDP, .sport = 7100,
				       .dport = 53, .payload = 4);
	struct find_map f = { .src = "10.0.0.2", .sport = 7100 };
	__u64 first;

	case_pkt("refresh/udp new flow", if_out, SL_HOOK_TC_OUT, &udp, 0,
		 &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 7100, 53 }, NULL);
	nat_mappings_foreach(ctx, find_map_cb, &f);
	first = f.m.expires_in_ns;
	check_report(f.count == 1 && first <= NAT_TO_UDP * 1000000000ULL &&
			     first > (NAT_TO_UDP - 1) * 1000000000ULL,
		     "refresh/unreplied udp mapping: 30 s", NULL);
	usleep(1300000);
	case_pkt("refresh/the same flow 1.3 s later", if_out, SL_HOOK_TC_OUT, &udp, 0,
		 &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 7100, 53 }, NULL);
	f.count = 0;
	nat_mappings_foreach(ctx, find_map_cb, &f);
	check_report(f.count == 1 && f.m.expires_in_ns > (NAT_TO_UDP - 1) * 1000000000ULL,
		     "refresh/its life starts again from the last packet", NULL);
	/* After a flush the cached translation is not used: a new mapping. */
	nat_flush(ctx);
	case_pkt("refresh/after flush the flow is translated again", if_out, SL_HOOK_TC_OUT,
		 &udp, 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 7100, 53 }, NULL);
	f.count = 0;
	nat_mappings_foreach(ctx, find_map_cb, &f);
	check_report(f.count == 1, "refresh/and its mapping is made again", NULL);
}

/* Masquerade follows the interface's address on reload; mappings to the
 * old address go, as netfilter's do when the address goes. */
/* ---- the XDP fast path -------------------------------------------------- */

static bool chain_is(const char *dev, const char *first, const char *second)
{
	struct sl_instance a, b;
	struct sl_chain ch;

	return !sl_chain_get(ctx, dev, SL_HOOK_XDP, &ch) && ch.len == 2 &&
	       !sl_instance_get(ctx, first, &a) && !sl_instance_get(ctx, second, &b) &&
	       ch.slots[0] == a.slot && ch.slots[1] == b.slot;
}

static int mappings_of(const char *src, uint16_t sport, struct nat_mapping *m)
{
	struct find_map f = { .src = src, .sport = sport };

	nat_mappings_foreach(ctx, find_map_cb, &f);
	if (m)
		*m = f.m;
	return f.count;
}

/* Routes and neighbours for bpf_fib_lookup: servers beyond 203.0.113.2,
 * inside hosts on IN; 192.0.2.0/24 beyond a next hop never resolved. */
static bool xdp_setup(void)
{
	return !system("sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1"
		       " && ip route add 198.51.100.0/24 via 203.0.113.2"
		       " && ip route add 192.0.2.0/24 via 203.0.113.3"
		       " && ip -6 route add 2001:db8:1::/64 via 2001:db8:ff::2"
		       " && ip neigh add 203.0.113.2 lladdr 02:00:00:00:00:0a dev " OUT " nud permanent"
		       " && ip neigh add 2001:db8:ff::2 lladdr 02:00:00:00:00:0a dev " OUT " nud permanent"
		       " && ip neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev " IN " nud permanent"
		       " && ip neigh add 10.0.0.3 lladdr 02:00:00:00:00:03 dev " IN " nud permanent"
		       " && ip neigh add 10.0.0.80 lladdr 02:00:00:00:00:50 dev " IN " nud permanent"
		       " && ip neigh add fd00::2 lladdr 02:00:00:00:00:02 dev " IN " nud permanent");
}

static void test_xdp_placement(void)
{
	int err;

	/* Router first on OUT: nat attach goes before it. */
	err = rt_attach(ctx, "router", OUT, SL_HOOK_XDP);
	err = err ?: nat_attach(ctx, OUT);
	err = err ?: nat_attach(ctx, IN);
	err = err ?: rt_attach(ctx, "router", IN, SL_HOOK_XDP);
	check_report(!err, "xdp/attach nat and router", err ? sl_errmsg() : NULL);
	check_report(chain_is(OUT, NAT_INSTANCE, "router"),
		     "xdp/nat attach after the router puts nat before it", NULL);
	check_report(chain_is(IN, NAT_INSTANCE, "router"), "xdp/router attach after nat: last",
		     NULL);
	err = nat_attach(ctx, IN);
	check_report(!err && chain_is(IN, NAT_INSTANCE, "router"),
		     "xdp/attaching again changes nothing", NULL);
	err = nat_attach(ctx, "sltn-none");
	check_report(err < 0, "xdp/attach to a missing interface refused", sl_errmsg());
}

static void test_xdp_v4(void)
{
	struct nat_mapping m;
	struct parsed got;
	uint8_t pkt[PKT_MAX];
	size_t len;

	case_pkt("xdp/tcp new flow: source, checksums, forwarded", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", TCP, .sport = 41000, .dport = 80,
				      .tcp_flags = 0x02, .payload = 13),
		 0, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", 41000, 80 }, NULL);
	check_report(mappings_of("10.0.0.2", 41000, &m) == 1 && m.ifindex == (__u32)if_out,
		     "xdp/the mapping is listed, made for the outside interface", NULL);
	case_pkt("xdp/the TC path uses the XDP mapping", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", TCP, .sport = 41000, .dport = 80,
				      .tcp_flags = 0x10),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 41000, 80 }, NULL);
	case_pkt("xdp/tcp reply translated back, forwarded", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80, .dport = 41000,
				      .tcp_flags = 0x12, .payload = 7),
		 0, &(struct want){ V_REDIRECT, "198.51.100.2", "10.0.0.2", 80, 41000 }, NULL);
	/* Made by the TC path (the second one with another port): XDP
	 * translates it the same way. */
	case_pkt("xdp/flow made at TC egress", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", TCP, .sport = 41010, .dport = 80),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", 41010, 80 }, NULL);
	case_pkt("xdp/flow made at TC egress, another port", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", TCP, .sport = 41010, .dport = 80),
		 0, &(struct want){ V_PASS, "203.0.113.1", "198.51.100.2", -1, 80 }, &got);
	if (got.sport)
		case_pkt("xdp/a flow the TC path made keeps its translation", if_in, SL_HOOK_XDP,
			 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", TCP, .sport = 41010,
					      .dport = 80, .payload = 3),
			 0, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", got.sport,
					    80 }, NULL);
	case_pkt("xdp/collision: another port", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", TCP, .sport = 41000, .dport = 80,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", -1, 80 }, &got);
	if (got.sport)
		case_pkt("xdp/collision: its reply goes to the second host", if_out, SL_HOOK_XDP,
			 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80,
					      .dport = got.sport, .tcp_flags = 0x12),
			 0, &(struct want){ V_REDIRECT, "198.51.100.2", "10.0.0.3", 80, 41000 },
			 NULL);
	case_pkt("xdp/udp new flow", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", UDP, .sport = 6000, .dport = 53,
				      .payload = 21),
		 0, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", 6000, 53 }, NULL);
	case_pkt("xdp/udp reply", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", UDP, .sport = 53, .dport = 6000,
				      .payload = 40),
		 0, &(struct want){ V_REDIRECT, "198.51.100.2", "10.0.0.2", 53, 6000 }, NULL);
	len = pkt_build(&(struct pkt_spec)V4("10.0.0.3", "198.51.100.2", UDP, .sport = 6000,
					     .dport = 53, .payload = 9), pkt);
	memset(pkt + 14 + 20 + 6, 0, 2);
	run_check("xdp/udp zero checksum stays zero (port changed too)", if_in, SL_HOOK_XDP,
		  pkt, len, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", -1, 53, 1 },
		  NULL);
	case_pkt("xdp/icmp echo request", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", .proto = 1, .icmp_type = 8,
				      .payload = 32),
		 0x5151, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.2", 0x5151 }, NULL);
	case_pkt("xdp/icmp echo reply", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", .proto = 1, .icmp_type = 0,
				      .payload = 32),
		 0x5151, &(struct want){ V_REDIRECT, "198.51.100.2", "10.0.0.2", 0x5151 }, NULL);
	case_pkt("xdp/source no rule matches: forwarded untouched", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("172.16.0.2", "198.51.100.2", TCP, .sport = 41000, .dport = 80),
		 0, &(struct want){ V_REDIRECT, "172.16.0.2", "198.51.100.2", 41000, 80 }, NULL);
	case_pkt("xdp/for this host, no mapping: untouched, to the kernel", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.1", TCP, .sport = 80, .dport = 40999),
		 0, &(struct want){ V_PASS, "198.51.100.2", "203.0.113.1", 80, 40999 }, NULL);
}

/* The SNAT and masquerade rules' ranges in nat_config (ncover of them). */
static int ncover(void)
{
	int dir = sl_instance_open_dir(ctx, NAT_INSTANCE), fd;
	struct nat_config cfg;
	__u32 zero = 0;

	if (dir < 0)
		return -1;
	fd = sl_obj_get_at(dir, "nat_config");
	close(dir);
	if (fd < 0)
		return -1;
	if (bpf_map_lookup_elem(fd, &zero, &cfg))
		cfg.ncover = -1;
	close(fd);
	return cfg.ncover;
}

/* Whether a packet can be an SNAT reply: with more SNAT and masquerade
 * rules than nat_config holds, the XDP path scans the rules; with fewer it
 * reads them from nat_config. Both find the reply. */
static void test_xdp_cover(void)
{
	const struct pkt_spec reply = V4("198.51.100.2", "203.0.113.1", UDP, .sport = 53,
					 .dport = 6000, .payload = 40);
	const struct want back = { V_REDIRECT, "198.51.100.2", "10.0.0.2", 53, 6000 };
	int n = ncover(), err;

	check_report(n == NAT_COVER_INLINE + 1, "xdp cover/five snat rules: a scan", NULL);
	case_pkt("xdp cover/udp reply found by the scan", if_out, SL_HOOK_XDP, &reply, 0, &back,
		 NULL);
	err = nat_rule_del(ctx, "extra");
	check_report(!err && ncover() == NAT_COVER_INLINE,
		     "xdp cover/four snat rules: their ranges in nat_config", err ? sl_errmsg() : NULL);
	case_pkt("xdp cover/udp reply found in nat_config", if_out, SL_HOOK_XDP, &reply, 0, &back,
		 NULL);
	case_pkt("xdp cover/not a covered address: no reply translation", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.2", "203.0.113.9", UDP, .sport = 53,
				      .dport = 6000, .payload = 40),
		 0, &(struct want){ V_PASS, "198.51.100.2", "203.0.113.9", 53, 6000 }, NULL);
	err = add_rule("extra", "snat --out " OUT " --to 198.51.100.99 --src 10.9.0.0/16");
	check_report(!err && ncover() == NAT_COVER_INLINE + 1, "xdp cover/the fifth rule back",
		     err ? sl_errmsg() : NULL);
}

/* What the kernel routes stays untranslated at XDP: the TC path does it. */
static void test_xdp_kernel(void)
{
	uint8_t pkt[PKT_MAX];
	size_t len;

	case_pkt("xdp/unresolved next hop: untouched, to the kernel", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.2", "192.0.2.5", TCP, .sport = 41001, .dport = 80,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_PASS, "10.0.0.2", "192.0.2.5", 41001, 80 }, NULL);
	check_report(mappings_of("10.0.0.2", 41001, NULL) == 0,
		     "xdp/unresolved next hop: no mapping made", NULL);
	case_pkt("xdp/unresolved next hop: the TC egress path translates it", if_out,
		 SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.2", "192.0.2.5", TCP, .sport = 41001, .dport = 80,
				      .tcp_flags = 0x02),
		 0, &(struct want){ V_PASS, "203.0.113.1", "192.0.2.5", 41001, 80 }, NULL);
	len = pkt_build(&(struct pkt_spec)V4("10.0.0.2", "198.51.100.2", TCP, .sport = 41002,
					     .dport = 80), pkt);
	pkt[14 + 8] = 1; /* TTL 1: the kernel answers time exceeded */
	memset(pkt + 14 + 10, 0, 2);
	memcpy(pkt + 14 + 10, &(uint16_t){ csum_fold(csum_add(0, pkt + 14, 20)) }, 2);
	run_check("xdp/TTL 1: untouched, to the kernel", if_in, SL_HOOK_XDP, pkt, len,
		  &(struct want){ V_PASS, "10.0.0.2", "198.51.100.2", 41002, 80 }, NULL);
	check_report(mappings_of("10.0.0.2", 41002, NULL) == 0, "xdp/TTL 1: no mapping made",
		     NULL);
}

static void test_xdp_v6_dnat(void)
{
	case_pkt("xdp/ipv6 tcp new flow", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V6("fd00::2", "2001:db8:1::2", TCP, .sport = 41000, .dport = 443,
				      .tcp_flags = 0x02, .payload = 9),
		 0, &(struct want){ V_REDIRECT, "2001:db8:ff::1", "2001:db8:1::2", 41000, 443 },
		 NULL);
	case_pkt("xdp/ipv6 tcp reply", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V6("2001:db8:1::2", "2001:db8:ff::1", TCP, .sport = 443,
				      .dport = 41000, .tcp_flags = 0x12, .payload = 3),
		 0, &(struct want){ V_REDIRECT, "2001:db8:1::2", "fd00::2", 443, 41000 }, NULL);
	case_pkt("xdp/ipv6 udp new flow", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V6("fd00::2", "2001:db8:1::2", UDP, .sport = 6000, .dport = 53,
				      .payload = 12),
		 0, &(struct want){ V_REDIRECT, "2001:db8:ff::1", "2001:db8:1::2", 6000, 53 }, NULL);
	case_pkt("xdp/icmpv6 echo request", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V6("fd00::2", "2001:db8:1::2", .proto = 58, .icmp_type = 128,
				      .payload = 16),
		 0x6161, &(struct want){ V_REDIRECT, "2001:db8:ff::1", "2001:db8:1::2", 0x6161 },
		 NULL);
	case_pkt("xdp/icmpv6 echo reply", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V6("2001:db8:1::2", "2001:db8:ff::1", .proto = 58,
				      .icmp_type = 129, .payload = 16),
		 0x6161, &(struct want){ V_REDIRECT, "2001:db8:1::2", "fd00::2", 0x6161 }, NULL);
	/* DNAT before routing, its reply's source back on the way out. */
	case_pkt("xdp/dnat new flow: destination, forwarded inside", if_out, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("198.51.100.77", "203.0.113.1", TCP, .sport = 5555,
				      .dport = 8080, .tcp_flags = 0x02, .payload = 10),
		 0, &(struct want){ V_REDIRECT, "198.51.100.77", "10.0.0.80", 5555, 80 }, NULL);
	case_pkt("xdp/dnat reply: source back", if_in, SL_HOOK_XDP,
		 &(struct pkt_spec)V4("10.0.0.80", "198.51.100.77", TCP, .sport = 80, .dport = 5555,
				      .tcp_flags = 0x12, .payload = 4),
		 0, &(struct want){ V_REDIRECT, "203.0.113.1", "198.51.100.77", 8080, 5555 }, NULL);
}

/* The entry of the UDP connection with port 7200 in the "ct" table. */
struct ct_find {
	int n;
	struct ct_key key;
	struct ct_entry e;
};

static int ct_find_cb(const struct ct_conn *c, void *arg)
{
	struct ct_find *f = arg;

	if (c->key.proto == 17 && (c->key.port[0] == 7200 || c->key.port[1] == 7200)) {
		f->n++;
		f->key = c->key;
		f->e = c->e;
	}
	return 0;
}

static int ct_table_fd(void)
{
	int dir = sl_instance_open_dir(ctx, CT_DEFAULT_NAME), fd;

	if (dir < 0)
		return dir;
	fd = sl_obj_get_at(dir, "ct_table");
	close(dir);
	return fd;
}

/* Behind conntrack, the XDP path keeps a flow's source translation in the
 * connection's conntrack entry and takes it from there while it is fresh;
 * a flush makes it stale. */
static void test_xdp_ct_note(void)
{
	const struct pkt_spec udp = V4("10.0.0.2", "198.51.100.2", UDP, .sport = 7200,
				       .dport = 53, .payload = 6);
	const struct want w = { V_REDIRECT, "203.0.113.1", "198.51.100.2", 7200, 53 };
	struct ct_find f = {};
	struct ct_key4 k4;
	__u32 forged;
	int err, fd;

	err = ct_attach(ctx, IN, SL_HOOK_XDP, CT_DEFAULT_NAME);
	err = err ?: ct_attach(ctx, OUT, SL_HOOK_XDP, CT_DEFAULT_NAME);
	err = err ?: nat_reload(ctx); /* NAT finds the conntrack table on load */
	if (!check_report(!err, "xdp ct note/conntrack attached, nat reloaded",
			  err ? sl_errmsg() : NULL))
		return;
	case_pkt("xdp ct note/new flow", if_in, SL_HOOK_XDP, &udp, 0, &w, NULL);
	case_pkt("xdp ct note/second packet", if_in, SL_HOOK_XDP, &udp, 0, &w, NULL);
	ct_foreach(ctx, CT_DEFAULT_NAME, ct_find_cb, &f);
	inet_pton(AF_INET, "203.0.113.1", &forged);
	check_report(f.n == 1 && f.e.nat.addr == forged && f.e.nat.port == 7200 &&
			     f.e.nat.ifindex == (__u32)if_out,
		     "xdp ct note/the conntrack entry holds the translation", NULL);
	case_pkt("xdp ct note/third packet, from the note", if_in, SL_HOOK_XDP, &udp, 0, &w,
		 NULL);
	/* The note is what translates: one changed by hand is followed... */
	fd = ct_table_fd();
	inet_pton(AF_INET, "203.0.113.99", &forged);
	f.e.nat.addr = forged;
	ct_key4_of(&f.key, &k4);
	err = fd < 0 || f.n != 1 || bpf_map_update_elem(fd, &k4, &f.e, BPF_EXIST);
	check_report(!err, "xdp ct note/note changed by hand", NULL);
	case_pkt("xdp ct note/a fresh note is used", if_in, SL_HOOK_XDP, &udp, 0,
		 &(struct want){ V_REDIRECT, "203.0.113.99", "198.51.100.2", 7200, 53 }, NULL);
	/* ...until a flush: then the flow is translated (and noted) anew. */
	check_report(nat_flush(ctx) > 0, "xdp ct note/flush", NULL);
	case_pkt("xdp ct note/after a flush the note is not trusted", if_in, SL_HOOK_XDP, &udp,
		 0, &w, NULL);
	if (fd >= 0)
		close(fd);
	err = ct_chain_remove(ctx, IN, SL_HOOK_XDP, CT_DEFAULT_NAME);
	err = err ?: ct_chain_remove(ctx, OUT, SL_HOOK_XDP, CT_DEFAULT_NAME);
	check_report(!err, "xdp ct note/conntrack detached", err ? sl_errmsg() : NULL);
}

/* The XDP path's cost per packet (BPF_PROG_RUN, one run at a time: the
 * router lowers the TTL of the packet it is given, so runs cannot repeat
 * on one buffer). */
static unsigned xdp_cost(const struct pkt_spec *s, int n)
{
	uint8_t pkt[PKT_MAX];
	struct run r = {};
	__u64 total = 0;
	size_t len = pkt_build(s, pkt);

	for (int i = 0; i < n; i++) {
		if (run_tc(if_in, SL_HOOK_XDP, pkt, len, 1, &r))
			return 0;
		total += r.duration;
	}
	return total / n;
}

static void test_xdp_perf(void)
{
	const struct pkt_spec est = V4("10.0.0.2", "198.51.100.2", UDP, .sport = 6000, .dport = 53,
				       .payload = 18);
	const struct pkt_spec none = V4("172.16.0.2", "198.51.100.2", UDP, .sport = 6000,
					.dport = 53, .payload = 18);
	unsigned a = xdp_cost(&est, 20000), b = xdp_cost(&none, 20000);

	check_report(a && b, "perf/xdp runs", NULL);
	printf("perf: xdp established flow (nat + router): %u ns/packet\n", a);
	printf("perf: xdp no rule matches (nat lookups + router): %u ns/packet\n", b);
}

/* Where a live forwarding path's cost goes: 10,000 UDP flows behind
 * conntrack (the bench's ctnat scenario in BPF_PROG_RUN), one run a packet,
 * flow after flow, so that each finds its entries as cold as the flows in
 * between leave them. The third pass is measured (the first makes the
 * entries, the second the notes). */
static void test_xdp_perf_flows(void)
{
	enum { HOSTS = 40, PORTS = 250 };
	static uint8_t pkts[HOSTS * PORTS][96];
	static size_t lens[HOSTS * PORTS];
	__u64 total = 0;
	struct run r = {};
	int err, n = 0;

	err = ct_attach(ctx, IN, SL_HOOK_XDP, CT_DEFAULT_NAME);
	err = err ?: ct_attach(ctx, OUT, SL_HOOK_XDP, CT_DEFAULT_NAME);
	if (!check_report(!err, "perf flows/conntrack attached", err ? sl_errmsg() : NULL))
		return;
	for (int h = 0; h < HOSTS; h++) {
		for (int p = 0; p < PORTS; p++, n++) {
			char src[16];
			/* Ports of their own: each keeps its port. */
			struct pkt_spec s = V4(src, "198.51.100.2", UDP, .sport = 30000 + n,
					       .dport = 53, .payload = 18);

			snprintf(src, sizeof(src), "10.0.0.%d", 100 + h);
			lens[n] = pkt_build(&s, pkts[n]);
		}
	}
	for (int pass = 0; pass < 3 && !err; pass++)
		for (int i = 0; i < n && !err; i++) {
			err = run_tc(if_in, SL_HOOK_XDP, pkts[i], lens[i], 1, &r);
			if (!err && r.verdict != V_REDIRECT)
				err = -EPROTO;
			if (pass == 2)
				total += r.duration;
		}
	if (check_report(!err, "perf flows/10,000 flows forwarded", err ? strerror(-err) : NULL))
		printf("perf: xdp 10,000 udp flows behind conntrack (conntrack + nat + router): "
		       "%llu ns/packet\n", (unsigned long long)(total / n));
	ct_flush(ctx, CT_DEFAULT_NAME, NULL);
	nat_flush(ctx);
	err = ct_chain_remove(ctx, IN, SL_HOOK_XDP, CT_DEFAULT_NAME);
	err = err ?: ct_chain_remove(ctx, OUT, SL_HOOK_XDP, CT_DEFAULT_NAME);
	check_report(!err, "perf flows/conntrack detached", err ? sl_errmsg() : NULL);
}

static void test_xdp(void)
{
	if (!check_report(xdp_setup(), "xdp/routes and neighbours", NULL))
		return;
	test_xdp_placement();
	test_xdp_v4();
	test_xdp_cover();
	test_xdp_kernel();
	test_xdp_v6_dnat();
	test_xdp_ct_note();
	test_xdp_perf();
	test_xdp_perf_flows();
}

static void test_masq_address_change(void)
{
	struct find_map f = { .src = "10.0.0.5", .sport = 1234 };
	int err;

	case_pkt("masq change/flow on the old address", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.5", "198.51.100.2", UDP, .sport = 1234, .dport = 53),
		 0, &(struct want){ V_PASS, "203.0.113.1" }, NULL);
	err = system("ip addr flush dev " OUT " && ip addr add 203.0.113.77/24 dev " OUT
		     " && ip addr add 2001:db8:ff::1/64 dev " OUT " nodad");
	err = err ?: nat_reload(ctx);
	check_report(!err, "masq change/reload after the address changed", err ? sl_errmsg() : NULL);
	nat_mappings_foreach(ctx, find_map_cb, &f);
	check_report(f.count == 0, "masq change/the old address's mapping is gone", NULL);
	case_pkt("masq change/the flow now leaves with the new address", if_out, SL_HOOK_TC_OUT,
		 &(struct pkt_spec)V4("10.0.0.5", "198.51.100.2", UDP, .sport = 1234, .dport = 53),
		 0, &(struct want){ V_PASS, "203.0.113.77", "198.51.100.2", 1234, 53 }, NULL);
}

static void test_bad_rules(void)
{
	static const struct {
		const char *text;
		const char *expect; /* in the message */
	} bad[] = {
		{ "snat --out " OUT, "needs --to" },
		{ "snat --out nosuchdev0 --to 1.2.3.4", "no interface" },
		{ "snat --out " OUT " --to 1.2.3.9-1.2.3.4", "empty" },
		{ "snat --out " OUT " --to 10.0.0.0-10.2.0.0", "too large" },
		{ "snat --out " OUT " --to 1.2.3.4 --src fd00::/64", "IPv6 address in an IPv4 rule" },
		{ "snat --out " OUT " --to 1.2.3.4 --ports 10-5", "--ports" },
		{ "dnat --in " OUT " --to 10.0.0.1:80", "ports need --proto" },
		{ "dnat --in " OUT " --proto tcp --dport 80 --to [fd00::1", "bad target" },
		{ "masquerade --out " OUT " --to 1.2.3.4", "masquerade takes" },
		{ "masquerade --out " INP, "no IP address" },
		{ "nat --out " OUT, "unknown kind" },
		{ "snat --out " OUT " --to 1.2.3.4 --bogus 1", "unknown option" },
		{ "snat --out " OUT " --to 1.2.3.4 --to 1.2.3.5", "given twice" },
	};
	struct nat_specs before, after;
	char name[160];

	nat_read_specs(ctx, &before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = add_rule("bad", bad[i].text);

		snprintf(name, sizeof(name), "bad rule/'%s' refused naming the problem", bad[i].text);
		check_report(err && strstr(sl_errmsg(), bad[i].expect), name, sl_errmsg());
	}
	check_report(add_rule("extra", "snat --out " OUT " --to 1.2.3.4") == -EEXIST,
		     "bad rule/a name in use is refused", NULL);
	nat_read_specs(ctx, &after);
	check_report(before.n == after.n && !memcmp(&before, &after, sizeof(before)),
		     "bad rule/refusals change nothing", NULL);
}

/* ns per packet: an established flow (the same packet repeated) and new
 * flows (a new source port each run). */
static void measure(void)
{
	uint8_t pkt[PKT_MAX];
	struct run r = {};
	__u64 total = 0;
	size_t len;
	int n = 2000, err;

	len = pkt_build(&(struct pkt_spec)V4("10.0.0.2", "198.51.100.3", UDP, .sport = 9000,
					     .dport = 53, .payload = 18), pkt);
	err = run_tc(if_out, SL_HOOK_TC_OUT, pkt, len, 1, &r);
	err = err ?: run_tc(if_out, SL_HOOK_TC_OUT, pkt, len, 1000000, &r);
	if (!check_report(!err && r.verdict == V_PASS, "perf/established flow, 1e6 runs", NULL))
		return;
	printf("perf: established flow (SNAT rewrite): %u ns/packet (root + NAT)\n", r.duration);
	for (int i = 0; i < n && !err; i++) {
		len = pkt_build(&(struct pkt_spec)V4("10.0.0.9", "198.51.100.3", UDP,
						     .sport = 10000 + i, .dport = 53, .payload = 18),
				pkt);
		err = run_tc(if_out, SL_HOOK_TC_OUT, pkt, len, 1, &r);
		total += r.duration;
	}
	if (check_report(!err, "perf/2000 new flows", NULL))
		printf("perf: new flow (rule scan + allocation + rewrite): %llu ns/packet\n",
		       (unsigned long long)(total / n));
	/* The same packet through the roots without NAT: what the NF adds. */
	len = pkt_build(&(struct pkt_spec)V4("172.31.0.2", "198.51.100.3", UDP, .sport = 9000,
					     .dport = 53, .payload = 18), pkt);
	if (!run_tc(if_out, SL_HOOK_TC_OUT, pkt, len, 1000000, &r))
		printf("perf: no mapping, no rule matches (lookups and rule scan): %u ns/packet\n",
		       r.duration);
}

int main(void)
{
	int err;

	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	if (system("ip link add " OUT " type veth peer name " OUTP " && ip link add " IN
		   " type veth peer name " INP " && ip link set " OUT " up && ip link set " OUTP
		   " up && ip link set " IN " up && ip link set " INP " up"
		   " && ip addr add 203.0.113.1/24 dev " OUT
		   " && ip addr add 2001:db8:ff::1/64 dev " OUT " nodad"
		   " && ip addr add 10.0.0.1/24 dev " IN " && ip addr add fd00::1/64 dev " IN " nodad")) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	if_out = sl_ifindex(OUT);
	if_in = sl_ifindex(IN);
	unlink(FAIL_PCAP);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	err = add_rule("masq4", "masquerade --out " OUT " --src 10.0.0.0/24");
	err = err ?: add_rule("masq6", "masquerade --out " OUT " --src fd00::/64");
	err = err ?: add_rule("pool", "snat --out " OUT " --to 198.51.100.10-198.51.100.11"
				      " --ports 20000-20001 --src 10.0.1.0/24");
	err = err ?: add_rule("web", "dnat --in " OUT " --dst 203.0.113.1 --proto tcp --dport 8080"
				     " --to 10.0.0.80:80");
	err = err ?: add_rule("dns6", "dnat --in " OUT " --dst 2001:db8:ff::1 --proto udp"
				      " --dport 5353 --to [fd00::53]:53");
	err = err ?: add_rule("hp-dnat", "dnat --in " IN " --dst 203.0.113.1 --proto tcp"
					 " --dport 8080 --to 10.0.0.80:80");
	err = err ?: add_rule("hp-masq", "masquerade --out " IN " --src 10.0.0.0/24"
					 " --dst 10.0.0.80");
	if (check_report(!err, "load the rules", err ? sl_errmsg() : NULL)) {
		test_snat_v4();
		test_udp_icmp_v4();
		test_icmp_errors();
		test_v6();
		test_exhaustion();
		test_dnat();
		test_hairpin();
		test_state();
		test_refresh();
		test_bad_rules();
		test_xdp();
		test_masq_address_change();
		measure();
	}
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
