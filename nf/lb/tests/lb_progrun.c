// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of the load balancer through the real pipeline:
 * services set up by the production control code, packets built with
 * pktbuild.h and run with BPF_PROG_RUN through the XDP root and the TC
 * root. Every expected packet is built from scratch (checksums computed
 * over the whole packet), so a wrong incremental update shows as a byte
 * difference. Also: Maglev table shares and disruption (in user space and
 * through packets), rr/wrr spreads, flow affinity across table changes,
 * drops without a backend, and the cost per packet.
 * A failing packet is printed in hex and appended to build/tests/lb_fail.pcap. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "lb.h"
#include "check.h"
#include "pktbuild.h"

#define DEV "sllb0"
#define PEER "sllb1"
#define FAIL_PCAP "build/tests/lb_fail.pcap"
#define LB "lbtest"
#define OUT_MAX (PKT_MAX + 128)

static struct sl_ctx *ctx;
static int ifindex;
static uint8_t dev_mac[6];
static const uint8_t be_mac[6] = { 0x02, 0, 0, 0, 0, 0x05 };
static const uint8_t be7_mac[6] = { 0x02, 0, 0, 0, 0, 0x07 };

struct run {
	uint8_t out[OUT_MAX];
	__u32 len;
	__u32 retval;
	__u32 duration; /* ns per run */
};

static int prog_fd(int hook)
{
	return sl_obj_get(sl_base(ctx), hook == SL_HOOK_XDP ? "root_xdp" : "root_tc_in");
}

static int run_pkt(int hook, const uint8_t *pkt, size_t len, int repeat, struct run *r)
{
	struct xdp_md xmd = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff skb = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .data_out = r->out, .data_size_out = OUT_MAX, .repeat = repeat);
	int fd = prog_fd(hook), err;

	if (hook == SL_HOOK_XDP) {
		opts.ctx_in = &xmd;
		opts.ctx_size_in = sizeof(xmd);
	} else {
		opts.ctx_in = &skb;
		opts.ctx_size_in = sizeof(skb);
	}
	if (fd < 0)
		return fd;
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	if (err)
		return -errno;
	r->len = opts.data_size_out;
	r->retval = opts.retval;
	r->duration = opts.duration;
	return 0;
}

/* The lb_backend the last packet left in meta (this thread runs on CPU 0). */
static __u32 meta_backend(int hook)
{
	int ncpu = libbpf_num_possible_cpus(), fd = sl_obj_get(sl_base(ctx), "sl_meta");
	struct sl_meta *per = calloc(ncpu, sizeof(*per));
	__u32 key = hook, id = ~0U;

	if (fd >= 0 && per && !bpf_map_lookup_elem(fd, &key, per))
		id = per[0].lb_backend;
	free(per);
	if (fd >= 0)
		close(fd);
	return id;
}

static void svc_key(struct lb_service_key *k, __u8 proto, const char *ep)
{
	memset(k, 0, sizeof(*k));
	lb_parse_endpoint(ep, true, &k->family, k->addr, &k->port);
	k->proto = proto;
}

static void be_addr(struct lb_backend_addr *b, const char *ep)
{
	memset(b, 0, sizeof(*b));
	lb_parse_endpoint(ep, false, &b->family, b->addr, &b->port);
}

static int add_svc(__u8 proto, const char *vip, __u8 sched, __u32 m)
{
	struct lb_service_key k;
	struct lb_service_conf c = { .sched = sched, .mh_size = m };

	svc_key(&k, proto, vip);
	return lb_service_add(ctx, LB, &k, &c);
}

static int add_be(__u8 proto, const char *vip, const char *be, __u8 fwd, __u32 w)
{
	struct lb_service_key k;
	struct lb_backend_addr b;
	struct lb_backend_conf c = { .fwd = fwd, .weight = w };

	svc_key(&k, proto, vip);
	be_addr(&b, be);
	return lb_backend_add(ctx, LB, &k, &b, &c);
}

static const struct lb_service_info *find_service(const struct lb_conf *c, const char *vip,
						  __u8 proto)
{
	struct lb_service_key k;

	svc_key(&k, proto, vip);
	for (__u32 i = 0; i < c->n; i++)
		if (!memcmp(&c->svcs[i].key, &k, sizeof(k)))
			return &c->svcs[i];
	return NULL;
}

/* The id of backend ep in service vip, 0 when absent. */
static __u32 backend_id(const char *vip, __u8 proto, const char *ep)
{
	struct lb_conf c;
	struct lb_backend_addr b;
	const struct lb_service_info *s;
	__u32 id = 0;

	if (lb_list(ctx, LB, &c))
		return 0;
	be_addr(&b, ep);
	s = find_service(&c, vip, proto);
	for (__u32 i = 0; s && i < s->nbackends; i++)
		if (!memcmp(s->backends[i].addr.addr, b.addr, 16) &&
		    (!b.port || b.port == s->backends[i].addr.port))
			id = s->backends[i].id;
	lb_conf_free(&c);
	return id;
}

static bool compare(const char *name, const uint8_t *in, size_t inlen, const struct run *r,
		    const uint8_t *want, size_t wantlen, __u32 want_ret)
{
	char detail[128] = "";

	if (r->retval != want_ret)
		snprintf(detail, sizeof(detail), "return %u, expected %u", r->retval, want_ret);
	else if (r->len != wantlen || memcmp(r->out, want, wantlen))
		snprintf(detail, sizeof(detail), "output differs (%u bytes, expected %zu)",
			 r->len, wantlen);
	if (check_report(!detail[0], name, detail[0] ? detail : NULL))
		return true;
	printf("input:\n");
	pkt_hex(stdout, in, inlen);
	printf("output:\n");
	pkt_hex(stdout, r->out, r->len);
	printf("expected:\n");
	pkt_hex(stdout, want, wantlen);
	pkt_pcap(FAIL_PCAP, in, inlen);
	pkt_pcap(FAIL_PCAP, r->out, r->len);
	return false;
}

#define XDP_PASS_RET 2
#define XDP_DROP_RET 1
#define XDP_REDIRECT_RET 4
#define TC_NEXT_RET ((__u32)-1)
#define TC_SHOT_RET 2
#define TC_REDIRECT_RET 7

static __u32 pass_ret(int hook)
{
	return hook == SL_HOOK_XDP ? XDP_PASS_RET : TC_NEXT_RET;
}

static __u32 redirect_ret(int hook)
{
	return hook == SL_HOOK_XDP ? XDP_REDIRECT_RET : TC_REDIRECT_RET;
}

/* One packet in, one expected packet out (both built by pktbuild). */
static void golden(const char *name, int hook, const struct pkt_spec *in,
		   const struct pkt_spec *want, __u32 want_ret)
{
	uint8_t pin[PKT_MAX], pwant[PKT_MAX];
	size_t lin = pkt_build(in, pin), lwant = pkt_build(want, pwant);
	char full[160];
	struct run r;
	int err;

	snprintf(full, sizeof(full), "%s/%s", sl_hook_name(hook), name);
	err = run_pkt(hook, pin, lin, 1, &r);
	if (!check_report(!err, full, err ? strerror(-err) : NULL))
		return;
	compare(full, pin, lin, &r, pwant, lwant, want_ret);
}

/* ---- NAT ---------------------------------------------------------------- */

static void test_nat(void)
{
	int err = add_svc(IPPROTO_TCP, "10.0.0.100:80", LB_SCHED_MH, 0);

	err = err ?: add_be(IPPROTO_TCP, "10.0.0.100:80", "10.0.0.5:8080", LB_FWD_NAT, 1);
	err = err ?: add_svc(IPPROTO_UDP, "10.0.0.100:53", LB_SCHED_RR, 0);
	err = err ?: add_be(IPPROTO_UDP, "10.0.0.100:53", "10.0.0.6:5353", LB_FWD_NAT, 1);
	err = err ?: add_svc(IPPROTO_TCP, "[fd00::100]:443", LB_SCHED_WRR, 0);
	err = err ?: add_be(IPPROTO_TCP, "[fd00::100]:443", "[fd00::5]:8443", LB_FWD_NAT, 3);
	if (!check_report(!err, "nat/setup", err ? sl_errmsg() : NULL))
		return;

	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
		__u16 cport = 40000 + hook;
		struct pkt_spec in = { .family = 4, .src = "192.0.2.10", .dst = "10.0.0.100",
				       .proto = 6, .sport = cport, .dport = 80,
				       .tcp_flags = 0x02, .payload = 11 };
		struct pkt_spec out = in;

		out.dst = "10.0.0.5";
		out.dport = 8080;
		golden("nat/tcp4 dnat", hook, &in, &out, pass_ret(hook));
		CHECK(meta_backend(hook) == backend_id("10.0.0.100:80", 6, "10.0.0.5:8080"),
		      hook ? "tc/nat/meta lb_backend set" : "xdp/nat/meta lb_backend set");

		struct pkt_spec rin = { .family = 4, .src = "10.0.0.5", .dst = "192.0.2.10",
					.proto = 6, .sport = 8080, .dport = cport,
					.tcp_flags = 0x12, .payload = 5 };
		struct pkt_spec rout = rin;

		rout.src = "10.0.0.100";
		rout.sport = 80;
		golden("nat/tcp4 reply back to the VIP", hook, &rin, &rout, pass_ret(hook));

		struct pkt_spec u = { .family = 4, .src = "192.0.2.11", .dst = "10.0.0.100",
				      .proto = 17, .sport = cport, .dport = 53, .payload = 30 };
		struct pkt_spec uo = u;

		uo.dst = "10.0.0.6";
		uo.dport = 5353;
		golden("nat/udp4 dnat", hook, &u, &uo, pass_ret(hook));
		struct pkt_spec ur = { .family = 4, .src = "10.0.0.6", .dst = "192.0.2.11",
				       .proto = 17, .sport = 5353, .dport = cport, .payload = 7 };
		struct pkt_spec uro = ur;

		uro.src = "10.0.0.100";
		uro.sport = 53;
		golden("nat/udp4 reply", hook, &ur, &uro, pass_ret(hook));

		struct pkt_spec s6 = { .family = 6, .src = "2001:db8::10", .dst = "fd00::100",
				       .proto = 6, .sport = cport, .dport = 443,
				       .tcp_flags = 0x02, .payload = 3 };
		struct pkt_spec s6o = s6;

		s6o.dst = "fd00::5";
		s6o.dport = 8443;
		golden("nat/tcp6 dnat", hook, &s6, &s6o, pass_ret(hook));
		struct pkt_spec r6 = { .family = 6, .src = "fd00::5", .dst = "2001:db8::10",
				       .proto = 6, .sport = 8443, .dport = cport,
				       .tcp_flags = 0x12 };
		struct pkt_spec r6o = r6;

		r6o.src = "fd00::100";
		r6o.sport = 443;
		golden("nat/tcp6 reply", hook, &r6, &r6o, pass_ret(hook));

		struct pkt_spec other = { .family = 4, .src = "192.0.2.10", .dst = "10.0.0.100",
					  .proto = 6, .sport = 1, .dport = 81 };

		golden("nat/other port untouched", hook, &other, &other, pass_ret(hook));
		struct pkt_spec v6hop = s6;

		v6hop.v6_hopopts = true;
		v6hop.sport = cport + 100;
		struct pkt_spec v6hopo = v6hop;

		v6hopo.dst = "fd00::5";
		v6hopo.dport = 8443;
		golden("nat/tcp6 after a hop-by-hop header", hook, &v6hop, &v6hopo, pass_ret(hook));
	}

	struct lb_conf c;

	if (!lb_list(ctx, LB, &c)) {
		const struct lb_service_info *s = find_service(&c, "10.0.0.100:80", 6);

		CHECK(s && s->stats.pkts_in == 2 && s->stats.pkts_out == 2 &&
		      s->stats.conns == 2 && s->nbackends == 1 &&
		      s->backends[0].stats.pkts_in == 2 && s->backends[0].stats.conns == 2,
		      "nat/counters: 2 in, 2 out, 2 connections");
		lb_conf_free(&c);
	}
}

/* ---- direct server return ---------------------------------------------- */

/* Builds eth + outer header + the inner packet's L3 onwards. */
static size_t ipip_expect(const uint8_t *in, size_t len, int family, const char *src,
			  const char *dst, uint8_t *out)
{
	size_t olen = family == 4 ? 20 : 40, inner = len - 14;
	uint8_t *o = out + 14;

	memcpy(out, in, 14);
	memset(o, 0, olen);
	if (family == 4) {
		o[0] = 0x45;
		put16(o + 2, inner + 20);
		o[8] = 64;
		o[9] = 4;
		inet_pton(AF_INET, src, o + 12);
		inet_pton(AF_INET, dst, o + 16);
		memcpy(o + 10, &(uint16_t){ csum_fold(csum_add(0, o, 20)) }, 2);
	} else {
		o[0] = 0x60;
		put16(o + 4, inner);
		o[6] = 41;
		o[7] = 64;
		inet_pton(AF_INET6, src, o + 8);
		inet_pton(AF_INET6, dst, o + 24);
	}
	memcpy(o + olen, in + 14, inner);
	return 14 + olen + inner;
}

static void test_dsr(void)
{
	int err = add_svc(IPPROTO_TCP, "10.0.0.200:80", LB_SCHED_MH, 0);

	err = err ?: add_be(IPPROTO_TCP, "10.0.0.200:80", "10.0.0.7", LB_FWD_IPIP, 1);
	err = err ?: add_svc(IPPROTO_UDP, "[fd00::200]:80", LB_SCHED_MH, 0);
	err = err ?: add_be(IPPROTO_UDP, "[fd00::200]:80", "fd00::7", LB_FWD_IPIP, 1);
	err = err ?: add_svc(IPPROTO_TCP, "10.0.0.201:80", LB_SCHED_RR, 0);
	err = err ?: add_be(IPPROTO_TCP, "10.0.0.201:80", "10.0.0.5", LB_FWD_MAC, 1);
	err = err ?: add_svc(IPPROTO_TCP, "[fd00::201]:80", LB_SCHED_RR, 0);
	err = err ?: add_be(IPPROTO_TCP, "[fd00::201]:80", "fd00::5", LB_FWD_MAC, 1);
	if (!check_report(!err, "dsr/setup", err ? sl_errmsg() : NULL))
		return;
	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
		uint8_t pin[PKT_MAX], want[OUT_MAX];
		size_t lin, lwant;
		char name[128];
		struct run r;

		struct pkt_spec t4 = { .family = 4, .src = "192.0.2.20", .dst = "10.0.0.200",
				       .proto = 6, .sport = 1000 + hook, .dport = 80,
				       .tcp_flags = 0x02, .payload = 9 };
		lin = pkt_build(&t4, pin);
		lwant = ipip_expect(pin, lin, 4, "10.0.0.1", "10.0.0.7", want);
		memcpy(want, be7_mac, 6);
		memcpy(want + 6, dev_mac, 6);
		snprintf(name, sizeof(name), "%s/ipip4: outer header to the backend, protocol 4, its MAC",
			 sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lwant, redirect_ret(hook));

		struct pkt_spec u6 = { .family = 6, .src = "2001:db8::20", .dst = "fd00::200",
				       .proto = 17, .sport = 1000 + hook, .dport = 80, .payload = 20 };
		lin = pkt_build(&u6, pin);
		lwant = ipip_expect(pin, lin, 6, "fd00::1", "fd00::7", want);
		memcpy(want, be7_mac, 6);
		memcpy(want + 6, dev_mac, 6);
		snprintf(name, sizeof(name), "%s/ip6ip6: outer header to the backend, protocol 41, its MAC",
			 sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lwant, redirect_ret(hook));

		struct pkt_spec m4 = { .family = 4, .src = "192.0.2.20", .dst = "10.0.0.201",
				       .proto = 6, .sport = 1000 + hook, .dport = 80,
				       .tcp_flags = 0x02, .payload = 4 };
		lin = pkt_build(&m4, pin);
		memcpy(want, pin, lin);
		memcpy(want, be_mac, 6);
		memcpy(want + 6, dev_mac, 6);
		snprintf(name, sizeof(name), "%s/mac4: backend MAC from the neighbour table, redirected",
			 sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lin,
				hook == SL_HOOK_XDP ? XDP_REDIRECT_RET : TC_REDIRECT_RET);

		struct pkt_spec m6 = { .family = 6, .src = "2001:db8::20", .dst = "fd00::201",
				       .proto = 6, .sport = 1000 + hook, .dport = 80,
				       .tcp_flags = 0x02 };
		lin = pkt_build(&m6, pin);
		memcpy(want, pin, lin);
		memcpy(want, be_mac, 6);
		memcpy(want + 6, dev_mac, 6);
		snprintf(name, sizeof(name), "%s/mac6: backend MAC, redirected", sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lin,
				hook == SL_HOOK_XDP ? XDP_REDIRECT_RET : TC_REDIRECT_RET);
	}
}

/* Backends without tunnel devices: decap on strips 4in4 and 6in6. */
static void test_decap(void)
{
	struct pkt_spec t4 = { .family = 4, .src = "192.0.2.20", .dst = "10.0.0.200",
			       .proto = 6, .sport = 7, .dport = 80, .tcp_flags = 0x02, .payload = 9 };
	struct pkt_spec u6 = { .family = 6, .src = "2001:db8::20", .dst = "fd00::200",
			       .proto = 17, .sport = 7, .dport = 80, .payload = 20 };
	const struct pkt_spec *inner[2] = { &t4, &u6 };
	uint8_t pin[PKT_MAX], enc[OUT_MAX];
	char name[128];
	struct run r;
	bool on = false;
	int err = lb_set_decap(ctx, LB, true);

	err = err ?: lb_get_decap(ctx, LB, &on);
	if (!check_report(!err && on, "decap/on", err ? sl_errmsg() : NULL))
		return;
	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
		for (int k = 0; k < 2; k++) {
			size_t lin = pkt_build(inner[k], pin);
			size_t lenc = ipip_expect(pin, lin, inner[k]->family,
						  k ? "fd00::9" : "10.0.0.9",
						  k ? "fd00::1" : "10.0.0.1", enc);

			snprintf(name, sizeof(name), "%s/decap: %s stripped to the inner packet",
				 sl_hook_name(hook), k ? "6in6" : "4in4");
			if (check_report(!run_pkt(hook, enc, lenc, 1, &r), name, NULL))
				compare(name, enc, lenc, &r, pin, lin, pass_ret(hook));
		}
	}
	size_t lin = pkt_build(&t4, pin);
	size_t lenc = ipip_expect(pin, lin, 4, "10.0.0.9", "10.0.0.1", enc);

	err = lb_set_decap(ctx, LB, false);
	err = err ?: run_pkt(SL_HOOK_XDP, enc, lenc, 1, &r);
	if (check_report(!err, "decap/off: ip-in-ip goes on untouched", NULL))
		compare("decap/off: ip-in-ip goes on untouched", enc, lenc, &r, enc, lenc,
			XDP_PASS_RET);
}

/* ---- no backend ----------------------------------------------------------- */

static __u64 lb_drops(int reason)
{
	struct sl_instance inst;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];

	if (sl_instance_get(ctx, LB, &inst) || sl_slot_stats(ctx, inst.slot, &st, drops))
		return ~0ULL;
	return drops[reason];
}

static void test_no_backend(void)
{
	struct lb_service_key k;
	struct lb_backend_addr b;
	struct pkt_spec p = { .family = 4, .src = "192.0.2.30", .dst = "10.0.0.150",
			      .proto = 6, .sport = 5555, .dport = 80, .tcp_flags = 0x02 };
	uint8_t pin[PKT_MAX];
	size_t len = pkt_build(&p, pin);
	struct run r;
	__u64 before;
	int err = add_svc(IPPROTO_TCP, "10.0.0.150:80", LB_SCHED_MH, 0);

	if (!check_report(!err, "nobackend/setup", err ? sl_errmsg() : NULL))
		return;
	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
		before = lb_drops(SL_DROP_LB_NO_BACKEND);
		err = run_pkt(hook, pin, len, 1, &r);
		CHECK(!err && r.retval == (hook == SL_HOOK_XDP ? XDP_DROP_RET : TC_SHOT_RET) &&
		      lb_drops(SL_DROP_LB_NO_BACKEND) == before + 1,
		      hook == SL_HOOK_XDP ? "xdp/nobackend: empty service drops, lb-no-backend" :
					    "tc/nobackend: empty service drops, lb-no-backend");
	}
	/* Drained (weight 0) and down backends take no new flow either. */
	err = add_be(IPPROTO_TCP, "10.0.0.150:80", "10.0.0.5", LB_FWD_NAT, 0);
	err = err ?: add_be(IPPROTO_TCP, "10.0.0.150:80", "10.0.0.6", LB_FWD_NAT, 5);
	svc_key(&k, IPPROTO_TCP, "10.0.0.150:80");
	be_addr(&b, "10.0.0.6");
	err = err ?: lb_backend_set_up(ctx, LB, &k, &b, false);
	before = lb_drops(SL_DROP_LB_NO_BACKEND);
	err = err ?: run_pkt(SL_HOOK_XDP, pin, len, 1, &r);
	CHECK(!err && r.retval == XDP_DROP_RET && lb_drops(SL_DROP_LB_NO_BACKEND) == before + 1,
	      "nobackend: a drained and a down backend take no new flow");
	/* Back up: the weight was kept. */
	err = lb_backend_set_up(ctx, LB, &k, &b, true);
	err = err ?: run_pkt(SL_HOOK_XDP, pin, len, 1, &r);
	CHECK(!err && r.retval == XDP_PASS_RET &&
	      meta_backend(SL_HOOK_XDP) == backend_id("10.0.0.150:80", 6, "10.0.0.6"),
	      "health: a backend set up again takes flows");
	struct lb_conf c;

	if (!lb_list(ctx, LB, &c)) {
		const struct lb_service_info *s = find_service(&c, "10.0.0.150:80", 6);

		CHECK(s && s->nbackends == 2 && s->backends[1].conf.weight == 5 &&
		      s->backends[1].up, "health: up/down keeps the configured weight");
		lb_conf_free(&c);
	}
	err = lb_backend_set_up(ctx, LB, &k, &(struct lb_backend_addr){ .family = 4, .addr = { 10, 9, 9, 9 } },
				true);
	CHECK(err == -ENOENT, "health: an unknown backend is ENOENT");
}

/* ---- scheduling ------------------------------------------------------------- */

/* Sends nflows new TCP flows (sport from base) through XDP; counts them per
 * backend address index (last byte of the NAT destination - first). */
static int spread(const char *vip, const char *client, int nflows, __u16 base,
		  __u32 *count, int nbe, int first_octet, __u8 *chosen)
{
	struct pkt_spec p = { .family = 4, .src = client, .dst = vip, .proto = 6,
			      .dport = 80, .tcp_flags = 0x02 };
	uint8_t pin[PKT_MAX];
	struct run r;

	for (int i = 0; i < nflows; i++) {
		size_t len;
		int idx;

		p.sport = base + i;
		len = pkt_build(&p, pin);
		if (run_pkt(SL_HOOK_XDP, pin, len, 1, &r) || r.retval != XDP_PASS_RET)
			return -1;
		idx = r.out[14 + 19] - first_octet; /* last byte of the IPv4 destination */
		if (idx < 0 || idx >= nbe)
			return -1;
		count[idx]++;
		if (chosen)
			chosen[i] = idx;
	}
	return 0;
}

static int flows_flush(void)
{
	int n = lb_flush_flows(ctx, LB);

	return n < 0 ? n : 0;
}

static void test_rr_wrr(void)
{
	const char *vip = "10.0.1.1:80";
	__u32 cnt[3] = {};
	char be[32], name[128];
	int err = add_svc(IPPROTO_TCP, vip, LB_SCHED_WRR, 0);

	for (int i = 0; i < 3 && !err; i++) {
		snprintf(be, sizeof(be), "10.0.0.%d:80", 20 + i);
		err = add_be(IPPROTO_TCP, vip, be, LB_FWD_NAT, i + 1);
	}
	err = err ?: spread("10.0.1.1", "192.0.2.40", 600, 10000, cnt, 3, 20, NULL);
	snprintf(name, sizeof(name), "wrr: weights 1:2:3 over 600 new flows give %u/%u/%u",
		 cnt[0], cnt[1], cnt[2]);
	CHECK(!err && cnt[0] == 100 && cnt[1] == 200 && cnt[2] == 300, name);

	struct lb_service_key k;
	struct lb_service_conf sc = { .sched = LB_SCHED_RR };

	svc_key(&k, IPPROTO_TCP, vip);
	memset(cnt, 0, sizeof(cnt));
	err = lb_service_edit(ctx, LB, &k, &sc);
	err = err ?: spread("10.0.1.1", "192.0.2.41", 600, 10000, cnt, 3, 20, NULL);
	snprintf(name, sizeof(name), "rr: 600 new flows give %u/%u/%u", cnt[0], cnt[1], cnt[2]);
	CHECK(!err && cnt[0] == 200 && cnt[1] == 200 && cnt[2] == 200, name);
	/* The same flows again: each keeps its backend although rr moved on. */
	memset(cnt, 0, sizeof(cnt));
	err = spread("10.0.1.1", "192.0.2.41", 600, 10000, cnt, 3, 20, NULL);
	CHECK(!err && cnt[0] == 200 && cnt[1] == 200 && cnt[2] == 200,
	      "rr: established flows keep their backend");
}

/* A TCP 5-tuple used again after RST or FIN is a new connection. */
static void test_reuse(void)
{
	const char *vip = "10.0.1.2:80";
	struct pkt_spec p = { .family = 4, .src = "192.0.2.45", .dst = "10.0.1.2", .proto = 6,
			      .sport = 5000, .dport = 80, .tcp_flags = 0x02 };
	__u32 first, again, after_rst, after_fin;
	uint8_t pin[PKT_MAX];
	struct run r;
	int err = add_svc(IPPROTO_TCP, vip, LB_SCHED_RR, 0);

	err = err ?: add_be(IPPROTO_TCP, vip, "10.0.0.40:80", LB_FWD_NAT, 1);
	err = err ?: add_be(IPPROTO_TCP, vip, "10.0.0.41:80", LB_FWD_NAT, 1);
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	first = meta_backend(SL_HOOK_XDP);
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	again = meta_backend(SL_HOOK_XDP);
	CHECK(!err && first && again == first, "reuse: a retransmitted SYN keeps its backend");
	p.tcp_flags = 0x14; /* RST ACK */
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	p.tcp_flags = 0x02;
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	after_rst = meta_backend(SL_HOOK_XDP);
	CHECK(!err && after_rst && after_rst != first,
	      "reuse: a SYN after RST is scheduled again (rr: the other backend)");
	p.tcp_flags = 0x11; /* FIN ACK */
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	p.tcp_flags = 0x10; /* the last ACK still goes to the same backend */
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	CHECK(!err && meta_backend(SL_HOOK_XDP) == after_rst,
	      "reuse: packets after FIN stay on the backend");
	p.tcp_flags = 0x02;
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
	after_fin = meta_backend(SL_HOOK_XDP);
	CHECK(!err && after_fin && after_fin != after_rst,
	      "reuse: a SYN after FIN is scheduled again");
}

#define MH_BE 10
#define MH_FLOWS 20000

/* Maglev through packets: spread by weight, affinity across a change, and
 * how many new flows a change moves. */
static void test_maglev_packets(void)
{
	const char *vip = "10.0.2.1:80";
	__u8 *before = malloc(MH_FLOWS), *after = malloc(MH_FLOWS);
	__u32 cnt[MH_BE + 1] = {}, moved = 0, moved_other = 0;
	char be[32], name[160];
	int err = add_svc(IPPROTO_TCP, vip, LB_SCHED_MH, 0);

	for (int i = 0; i < MH_BE && !err; i++) {
		snprintf(be, sizeof(be), "10.0.0.%d:80", 30 + i);
		err = add_be(IPPROTO_TCP, vip, be, LB_FWD_NAT, 1);
	}
	err = err ?: spread("10.0.2.1", "192.0.2.50", MH_FLOWS, 20000, cnt, MH_BE + 1, 30, before);
	if (!check_report(!err && before && after, "maglev/packets: setup and first pass",
			  err ? sl_errmsg() : NULL))
		goto out;
	__u32 lo = ~0U, hi = 0;

	for (int i = 0; i < MH_BE; i++) {
		lo = cnt[i] < lo ? cnt[i] : lo;
		hi = cnt[i] > hi ? cnt[i] : hi;
	}
	snprintf(name, sizeof(name), "maglev/packets: %d flows over %d backends, %u to %u each (within 10 %%)",
		 MH_FLOWS, MH_BE, lo, hi);
	CHECK(lo > MH_FLOWS / MH_BE * 0.9 && hi < MH_FLOWS / MH_BE * 1.1, name);

	/* Remove backend 3: established flows stay (even those on it). */
	struct lb_service_key k;
	struct lb_backend_addr b;

	svc_key(&k, IPPROTO_TCP, vip);
	be_addr(&b, "10.0.0.33:80");
	err = lb_backend_del(ctx, LB, &k, &b);
	memset(cnt, 0, sizeof(cnt));
	err = err ?: spread("10.0.2.1", "192.0.2.50", MH_FLOWS, 20000, cnt, MH_BE + 1, 30, after);
	for (int i = 0; i < MH_FLOWS && !err; i++)
		moved += before[i] != after[i];
	snprintf(name, sizeof(name), "maglev/packets: backend removed, %u of %d established flows moved",
		 moved, MH_FLOWS);
	CHECK(!err && moved == 0, name);

	/* The same 5-tuples as new flows: those of the removed backend move,
	 * and only a few others. */
	err = err ?: flows_flush();
	memset(cnt, 0, sizeof(cnt));
	err = err ?: spread("10.0.2.1", "192.0.2.50", MH_FLOWS, 20000, cnt, MH_BE + 1, 30, after);
	moved = 0;
	for (int i = 0; i < MH_FLOWS && !err; i++) {
		moved += before[i] != after[i];
		moved_other += before[i] != after[i] && before[i] != 3;
	}
	snprintf(name, sizeof(name),
		 "maglev/packets: remove 1 of %d: %.2f %% of new flows move (1/N = %.1f %%), %.2f %% besides the removed backend's",
		 MH_BE, 100.0 * moved / MH_FLOWS, 100.0 / MH_BE, 100.0 * moved_other / MH_FLOWS);
	CHECK(!err && cnt[3] == 0 && moved < MH_FLOWS * 0.14 && moved_other < MH_FLOWS * 0.04, name);
	printf("FIGURE: maglev disruption (packets, M=%d, N=%d, remove one): %.2f %% of flows moved, %.2f %% not on the removed backend\n",
	       LB_MH_DEFAULT, MH_BE, 100.0 * moved / MH_FLOWS, 100.0 * moved_other / MH_FLOWS);

	/* Add it back (a new backend to Maglev): ~1/N move, all to it. */
	memcpy(before, after, MH_FLOWS);
	struct lb_backend_conf bc = { .fwd = LB_FWD_NAT, .weight = 1 };

	err = err ?: lb_backend_add(ctx, LB, &k, &b, &bc);
	err = err ?: flows_flush();
	memset(cnt, 0, sizeof(cnt));
	err = err ?: spread("10.0.2.1", "192.0.2.50", MH_FLOWS, 20000, cnt, MH_BE + 1, 30, after);
	moved = moved_other = 0;
	for (int i = 0; i < MH_FLOWS && !err; i++) {
		moved += before[i] != after[i];
		moved_other += before[i] != after[i] && after[i] != 3;
	}
	snprintf(name, sizeof(name),
		 "maglev/packets: add 1 to %d: %.2f %% of new flows move, %.2f %% elsewhere than the new backend",
		 MH_BE - 1, 100.0 * moved / MH_FLOWS, 100.0 * moved_other / MH_FLOWS);
	CHECK(!err && moved < MH_FLOWS * 0.14 && moved_other < MH_FLOWS * 0.04, name);
	printf("FIGURE: maglev disruption (packets, add one to 9): %.2f %% moved, %.2f %% not to the new backend\n",
	       100.0 * moved / MH_FLOWS, 100.0 * moved_other / MH_FLOWS);
out:
	free(before);
	free(after);
}

/* Maglev in user space: shares by weight, disruption on add/remove, for
 * equal weights (plain Maglev) and for weights 1, 2, 3, 1, 2, ... */
static void maglev_table_case(bool weighted, double limit_other)
{
	enum { N = 10, M = LB_MH_DEFAULT };
	static __u32 t1[M], t2[M];
	char bufs[N + 1][32], name[256];
	const char *names[N + 1], *kind = weighted ? "weights 1-3" : "equal weights";
	__u32 w[N + 1], w2[N + 1], cnt[N + 1] = {}, moved = 0, moved_other = 0, wsum = 0;
	double worst = 0;
	int err;

	for (int i = 0; i <= N; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "10.1.0.%d:80", i + 1);
		names[i] = bufs[i];
		w[i] = weighted ? 1 + i % 3 : 1;
	}
	for (int i = 0; i < N; i++)
		wsum += w[i];
	err = lb_maglev_build(names, w, N, M, t1);
	for (int j = 0; j < M && !err; j++)
		cnt[t1[j]]++;
	for (int i = 0; i < N; i++) {
		double share = (double)cnt[i] / M, want = (double)w[i] / wsum;
		double dev = share > want ? share / want - 1 : want / share - 1;

		worst = dev > worst ? dev : worst;
	}
	snprintf(name, sizeof(name), "maglev/table, %s: shares within %.2f %% of the weight shares (limit 5 %%)",
		 kind, 100 * worst);
	CHECK(!err && worst < 0.05, name);

	/* Remove backend 4: its entries move, and a few others. */
	memcpy(w2, w, sizeof(w2));
	w2[4] = 0;
	err = lb_maglev_build(names, w2, N, M, t2);
	for (int j = 0; j < M && !err; j++) {
		moved += t1[j] != t2[j];
		moved_other += t1[j] != t2[j] && t1[j] != 4;
	}
	snprintf(name, sizeof(name), "maglev/table, %s: removing 1 of %d moves %.2f %% of entries (its share %.2f %%), %.2f %% of the others' (limit %.0f %%)",
		 kind, N, 100.0 * moved / M, 100.0 * cnt[4] / M, 100.0 * moved_other / M,
		 100 * limit_other);
	CHECK(!err && moved_other < M * limit_other, name);
	printf("FIGURE: maglev disruption (table, %s, M=%d, N=%d, remove one): %.2f %% of entries, %.2f %% beyond the removed backend's\n",
	       kind, M, N, 100.0 * moved / M, 100.0 * moved_other / M);

	/* Add an 11th backend. */
	w2[4] = w[4];
	w2[N] = weighted ? 2 : 1;
	err = lb_maglev_build(names, w2, N + 1, M, t2);
	moved = moved_other = 0;
	for (int j = 0; j < M && !err; j++) {
		moved += t1[j] != t2[j];
		moved_other += t1[j] != t2[j] && t2[j] != N;
	}
	snprintf(name, sizeof(name), "maglev/table, %s: adding an 11th moves %.2f %% of entries, %.2f %% not to it (limit %.0f %%)",
		 kind, 100.0 * moved / M, 100.0 * moved_other / M, 100 * limit_other);
	CHECK(!err && moved_other < M * limit_other, name);
	printf("FIGURE: maglev disruption (table, %s, add one to N=%d): %.2f %% of entries, %.2f %% not to the new one\n",
	       kind, N, 100.0 * moved / M, 100.0 * moved_other / M);
}

static void test_maglev_table(void)
{
	static __u32 t[LB_MH_DEFAULT];
	const char *names[2] = { "a", "b" };
	__u32 zero[2] = { 0, 0 };

	maglev_table_case(false, 0.03);
	maglev_table_case(true, 0.03);
	CHECK(lb_maglev_build(names, zero, 2, LB_MH_DEFAULT, t) == -EINVAL,
	      "maglev/table: no weight at all is refused");
}

/* ---- forwarding by the LB (forward on) and removed services ---------- */

/* What the router NF would make of frame p: to the backend's MAC from
 * DEV's, TTL or hop limit lowered (IPv4 header checksum recomputed). */
static void routed(uint8_t *p, int family)
{
	uint8_t *ip = p + 14;

	memcpy(p, be_mac, 6);
	memcpy(p + 6, dev_mac, 6);
	if (family == 4) {
		ip[8]--;
		ip[10] = ip[11] = 0;
		memcpy(ip + 10, &(uint16_t){ csum_fold(csum_add(0, ip, 20)) }, 2);
	} else {
		ip[7]--;
	}
}

static void test_forward(void)
{
	bool on = false;
	int err = add_svc(IPPROTO_TCP, "10.0.0.210:80", LB_SCHED_MH, 0);

	err = err ?: add_be(IPPROTO_TCP, "10.0.0.210:80", "10.0.0.5:8080", LB_FWD_NAT, 1);
	err = err ?: add_svc(IPPROTO_UDP, "[fd00::210]:80", LB_SCHED_MH, 0);
	err = err ?: add_be(IPPROTO_UDP, "[fd00::210]:80", "[fd00::5]:8080", LB_FWD_NAT, 1);
	err = err ?: lb_set_forward(ctx, LB, true);
	err = err ?: lb_get_forward(ctx, LB, &on);
	if (!check_report(!err && on, "forward/setup, forward on", err ? sl_errmsg() : NULL))
		return;
	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
		uint8_t pin[PKT_MAX], want[PKT_MAX];
		size_t lin, lwant;
		char name[128];
		struct run r;

		struct pkt_spec t4 = { .family = 4, .src = "192.0.2.40", .dst = "10.0.0.210",
				       .proto = 6, .sport = 3000 + hook, .dport = 80,
				       .tcp_flags = 0x02, .payload = 9 };
		struct pkt_spec t4o = t4;

		t4o.dst = "10.0.0.5";
		t4o.dport = 8080;
		lin = pkt_build(&t4, pin);
		lwant = pkt_build(&t4o, want);
		routed(want, 4);
		snprintf(name, sizeof(name), "%s/forward/tcp4: DNAT, TTL lowered, backend MAC, redirected",
			 sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lwant, redirect_ret(hook));

		/* The reply's client has no route here: translated, then
		 * left to the kernel (which answers what it cannot route). */
		struct pkt_spec rin = { .family = 4, .src = "10.0.0.5", .dst = "192.0.2.40",
					.proto = 6, .sport = 8080, .dport = 3000 + hook,
					.tcp_flags = 0x12, .payload = 5 };
		struct pkt_spec rout = rin;

		rout.src = "10.0.0.210";
		rout.sport = 80;
		golden("forward/tcp4 reply without a route: translated, passed on", hook,
		       &rin, &rout, pass_ret(hook));

		struct pkt_spec u6 = { .family = 6, .src = "2001:db8::40", .dst = "fd00::210",
				       .proto = 17, .sport = 3000 + hook, .dport = 80, .payload = 12 };
		struct pkt_spec u6o = u6;

		u6o.dst = "fd00::5";
		u6o.dport = 8080;
		lin = pkt_build(&u6, pin);
		lwant = pkt_build(&u6o, want);
		routed(want, 6);
		snprintf(name, sizeof(name), "%s/forward/udp6: DNAT, hop limit lowered, backend MAC, redirected",
			 sl_hook_name(hook));
		if (check_report(!run_pkt(hook, pin, lin, 1, &r), name, NULL))
			compare(name, pin, lin, &r, want, lwant, redirect_ret(hook));
	}
	err = lb_set_forward(ctx, LB, false);
	err = err ?: lb_get_forward(ctx, LB, &on);
	CHECK(!err && !on, "forward off again");
	struct pkt_spec t4 = { .family = 4, .src = "192.0.2.40", .dst = "10.0.0.210",
			       .proto = 6, .sport = 3100, .dport = 80, .tcp_flags = 0x02 };
	struct pkt_spec t4o = t4;

	t4o.dst = "10.0.0.5";
	t4o.dport = 8080;
	golden("forward off: DNAT only, passed on", SL_HOOK_XDP, &t4, &t4o, XDP_PASS_RET);
}

/* A removed service's established flows end with it: their next packets
 * are not the LB's any more (and the reply path stops translating). */
static void test_service_removed(void)
{
	struct lb_service_key k;
	struct pkt_spec in = { .family = 4, .src = "192.0.2.50", .dst = "10.0.0.220",
			       .proto = 6, .sport = 5050, .dport = 80, .tcp_flags = 0x10 };
	struct pkt_spec out = in;
	int err = add_svc(IPPROTO_TCP, "10.0.0.220:80", LB_SCHED_MH, 0);

	err = err ?: add_be(IPPROTO_TCP, "10.0.0.220:80", "10.0.0.5:8080", LB_FWD_NAT, 1);
	if (!check_report(!err, "removed/setup", err ? sl_errmsg() : NULL))
		return;
	out.dst = "10.0.0.5";
	out.dport = 8080;
	golden("removed: a flow established", SL_HOOK_XDP, &in, &out, XDP_PASS_RET);
	svc_key(&k, IPPROTO_TCP, "10.0.0.220:80");
	err = lb_service_del(ctx, LB, &k);
	CHECK(!err, "removed: service deleted");
	golden("removed: its flow's next packet goes on untouched", SL_HOOK_XDP, &in, &in,
	       XDP_PASS_RET);
	golden("removed: and through TC", SL_HOOK_TC_IN, &in, &in, TC_NEXT_RET);
}

/* ---- whole configurations --------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* nsvc UDP services 10.96.0.0 + i:80, 10 NAT backends each (10.91.x.y:8080). */
static int bulk_conf(struct lb_conf *c, __u32 nsvc)
{
	c->n = nsvc;
	c->svcs = calloc(nsvc + 1, sizeof(*c->svcs));
	if (!c->svcs)
		return -ENOMEM;
	for (__u32 i = 0; i < nsvc; i++) {
		struct lb_service_info *s = &c->svcs[i];
		char ep[32];

		snprintf(ep, sizeof(ep), "10.96.%u.%u:80", i >> 8, i & 255);
		svc_key(&s->key, IPPROTO_UDP, ep);
		s->nbackends = 10;
		s->backends = calloc(10, sizeof(*s->backends));
		if (!s->backends)
			return -ENOMEM;
		for (__u32 j = 0; j < 10; j++) {
			__u32 n = i * 10 + j;

			snprintf(ep, sizeof(ep), "10.91.%u.%u:8080", n >> 8, n & 255);
			be_addr(&s->backends[j].addr, ep);
			s->backends[j].conf.weight = 1;
			s->backends[j].up = true;
		}
	}
	return 0;
}

/* The backend a new UDP flow to 10.96.0.7:80 gets through XDP (0: none). */
static __u32 bulk_pick(void)
{
	struct pkt_spec p = { .family = 4, .src = "192.0.2.80", .dst = "10.96.0.7",
			      .proto = 17, .sport = 4242, .dport = 80, .payload = 8 };
	uint8_t pin[PKT_MAX];
	struct run r;

	if (run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r) || r.retval != XDP_PASS_RET)
		return 0;
	return meta_backend(SL_HOOK_XDP);
}

/* 1,000 services x 10 backends in one apply (the tables switched together,
 * not one RCU grace period each), a failing apply that changes nothing,
 * and removing them all. */
static void test_bulk(void)
{
	struct lb_conf c = {}, bad = {}, seen = {};
	char name[160];
	__u32 be, be_after;
	double t0, secs;
	int err = bulk_conf(&c, 1000);

	t0 = now_s();
	err = err ?: lb_apply(ctx, LB, &c);
	secs = now_s() - t0;
	snprintf(name, sizeof(name), "bulk: 1,000 services x 10 backends applied in %.2f s (limit 2 s)",
		 secs);
	CHECK(!err && secs < 2, name);
	printf("FIGURE: lb apply of 1,000 services x 10 backends: %.2f s\n", secs);
	be = bulk_pick();
	CHECK(!err && be && !lb_list(ctx, LB, &seen) && seen.n == 1000 &&
	      seen.svcs[7].nbackends == 10, "bulk: listed back, a new flow gets a backend");

	/* The same plus a service whose DSR backend has no route: refused
	 * at preparation, after 1,000 services were prepared. */
	err = err ?: bulk_conf(&bad, 1001);
	if (!err) {
		struct lb_service_info *s = &bad.svcs[1000];

		s->nbackends = 1;
		be_addr(&s->backends[0].addr, "203.0.113.9:80");
		s->backends[0].conf.fwd = LB_FWD_IPIP;
		bad.svcs[3].backends[2].conf.weight = 7; /* a change refused with it */
	}
	err = err ?: (lb_apply(ctx, LB, &bad) == 0 ? -EINVAL : 0);
	lb_conf_free(&seen);
	be_after = bulk_pick();
	CHECK(!err && !lb_list(ctx, LB, &seen) && seen.n == 1000 &&
	      seen.svcs[3].backends[2].conf.weight == 1 && be_after == be,
	      "bulk: a refused apply (no route to a DSR backend) changes nothing");

	lb_conf_free(&c);
	t0 = now_s();
	err = err ?: lb_apply(ctx, LB, &c);
	secs = now_s() - t0;
	lb_conf_free(&seen);
	snprintf(name, sizeof(name), "bulk: 1,000 services removed in %.2f s, a packet to one passes",
		 secs);
	CHECK(!err && secs < 2 && !lb_list(ctx, LB, &seen) && seen.n == 0 && !bulk_pick(),
	      name);
	lb_conf_free(&seen);
	lb_conf_free(&bad);
}

/* ---- cost ---------------------------------------------------------------- */

static void test_cost(void)
{
	const char *vip = "10.0.3.1:80";
	struct pkt_spec p = { .family = 4, .src = "192.0.2.60", .dst = "10.0.3.1", .proto = 6,
			      .dport = 80, .tcp_flags = 0x10 };
	uint8_t pin[PKT_MAX];
	__u64 sum_new = 0, sum_est = 0;
	struct run r;
	enum { FLOWS = 5000, REPEAT = 200000 };
	/* The backend is the VIP itself: the DNAT rewrites every field to
	 * its own value, so repeated runs keep hitting the established path
	 * with the full rewrite cost. */
	int err = add_svc(IPPROTO_TCP, vip, LB_SCHED_MH, 0);

	err = err ?: add_be(IPPROTO_TCP, vip, "10.0.3.1:80", LB_FWD_NAT, 1);
	for (int i = 0; i < FLOWS && !err; i++) {
		p.sport = 1024 + i;
		err = run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
		sum_new += r.duration;
	}
	for (int i = 0; i < FLOWS && !err; i++) {
		p.sport = 1024 + i;
		err = run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
		sum_est += r.duration;
	}
	p.sport = 1024;
	err = err ?: run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), REPEAT, &r);
	if (!check_report(!err, "cost: measured", err ? strerror(-err) : NULL))
		return;
	printf("FIGURE: lb XDP (root + lb, NAT): new flow %llu ns/packet, established %llu ns/packet (single runs, %d flows); established, repeat %d: %u ns/packet\n",
	       (unsigned long long)(sum_new / FLOWS), (unsigned long long)(sum_est / FLOWS), FLOWS,
	       REPEAT, r.duration);
	p.dst = "10.0.3.2"; /* not a service: the root and a miss */
	err = run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), REPEAT, &r);
	if (!err)
		printf("FIGURE: lb XDP, packet to no service (root + lb lookups): %u ns/packet\n",
		       r.duration);
}

/* Entries in the instance's flow table (both kinds), -1 on error. */
static int flow_entries(void)
{
	int dir = sl_instance_open_dir(ctx, LB), fd, n = 0;
	struct lb_flow_key k, next;
	void *prev = NULL;

	if (dir < 0)
		return -1;
	fd = sl_obj_get_at(dir, "lb_flows");
	close(dir);
	if (fd < 0)
		return -1;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	close(fd);
	return n;
}

/* A TCP packet between two endpoints ("addr:port"), as the golden tests. */
static struct pkt_spec tcp_pkt(const char *src, __u16 sport, const char *dst, __u16 dport)
{
	struct pkt_spec p = { .family = 4, .src = src, .dst = dst, .proto = 6, .sport = sport,
			      .dport = dport, .tcp_flags = 0x10, .payload = 4 };

	return p;
}

/* One LRU insert per new NAT flow: the backend that owns its real server's
 * endpoint leaves the reply entry to the first reply. A real server in
 * two services: one record owns the endpoint, the other records reply
 * entries with each flow; replies go back to the right VIP either way,
 * and only for known flows. */
static void test_lazy_reply(void)
{
	const char *va = "10.0.6.1:80", *vb = "10.0.6.2:80", *rs = "10.0.6.9:8080";
	struct pkt_spec in, out, rin, rout;
	int err = flows_flush(), n0;
	char name[128];

	err = err ?: add_svc(IPPROTO_TCP, va, LB_SCHED_MH, 0);
	err = err ?: add_be(IPPROTO_TCP, va, rs, LB_FWD_NAT, 1);
	err = err ?: add_svc(IPPROTO_TCP, vb, LB_SCHED_MH, 0);
	err = err ?: add_be(IPPROTO_TCP, vb, rs, LB_FWD_NAT, 1);
	err = err ?: add_be(IPPROTO_TCP, va, "10.0.6.10:8080", LB_FWD_NAT, 0);
	n0 = flow_entries();
	if (!check_report(!err && n0 >= 0, "lazy/setup", err ? sl_errmsg() : NULL))
		return;

	/* A's record owns the endpoint (added first): one entry per flow. */
	in = tcp_pkt("192.0.2.70", 41000, "10.0.6.1", 80);
	out = in;
	out.dst = "10.0.6.9";
	out.dport = 8080;
	golden("lazy/flow to the owner: dnat", SL_HOOK_XDP, &in, &out, pass_ret(SL_HOOK_XDP));
	snprintf(name, sizeof(name), "lazy/a new flow on the owner takes 1 flow entry (%d)",
		 flow_entries() - n0);
	CHECK(flow_entries() == n0 + 1, name);

	in = tcp_pkt("192.0.2.70", 41001, "10.0.6.2", 80);
	out = in;
	out.dst = "10.0.6.9";
	out.dport = 8080;
	golden("lazy/flow to the other service: dnat", SL_HOOK_XDP, &in, &out, pass_ret(SL_HOOK_XDP));
	CHECK(flow_entries() == n0 + 3,
	      "lazy/a new flow on the same real server in another service takes 2 entries");

	rin = tcp_pkt("10.0.6.9", 8080, "192.0.2.70", 41000);
	rout = rin;
	rout.src = "10.0.6.1";
	rout.sport = 80;
	golden("lazy/first reply: back to service A's VIP", SL_HOOK_TC_IN, &rin, &rout, pass_ret(SL_HOOK_TC_IN));
	CHECK(flow_entries() == n0 + 4, "lazy/the first reply records the reply entry");
	golden("lazy/second reply: back to service A's VIP", SL_HOOK_XDP, &rin, &rout, pass_ret(SL_HOOK_XDP));
	CHECK(flow_entries() == n0 + 4, "lazy/later replies add nothing");

	rin = tcp_pkt("10.0.6.9", 8080, "192.0.2.70", 41001);
	rout = rin;
	rout.src = "10.0.6.2";
	rout.sport = 80;
	golden("lazy/reply of the other service: back to B's VIP", SL_HOOK_XDP, &rin, &rout,
	       pass_ret(SL_HOOK_XDP));

	rin = tcp_pkt("10.0.6.9", 8080, "192.0.2.71", 41000);
	golden("lazy/from the real server to a client without a flow: untouched", SL_HOOK_XDP,
	       &rin, &rin, pass_ret(SL_HOOK_XDP));
	CHECK(flow_entries() == n0 + 4, "lazy/no entry for a packet of no flow");

	/* Removed, the owner's record stays for its flows: a flow opened
	 * before, replied to after, still goes back to A's VIP. */
	in = tcp_pkt("192.0.2.72", 41002, "10.0.6.1", 80);
	out = in;
	out.dst = "10.0.6.9";
	out.dport = 8080;
	golden("lazy/a flow before its backend is removed", SL_HOOK_XDP, &in, &out, pass_ret(SL_HOOK_XDP));

	struct lb_service_key k;
	struct lb_backend_addr b;

	svc_key(&k, IPPROTO_TCP, va);
	be_addr(&b, rs);
	err = lb_backend_del(ctx, LB, &k, &b);
	CHECK(!err, "lazy/owner backend removed from service A");
	rin = tcp_pkt("10.0.6.9", 8080, "192.0.2.72", 41002);
	rout = rin;
	rout.src = "10.0.6.1";
	rout.sport = 80;
	golden("lazy/its first reply after the removal: back to A's VIP", SL_HOOK_XDP, &rin,
	       &rout, pass_ret(SL_HOOK_XDP));
	golden("lazy/its flow still goes to the removed backend", SL_HOOK_XDP, &in, &out,
	       pass_ret(SL_HOOK_XDP));

	/* Service A gone: B's record takes the endpoint over. */
	in = tcp_pkt("192.0.2.73", 41003, "10.0.6.2", 80);
	out = in;
	out.dst = "10.0.6.9";
	out.dport = 8080;
	golden("lazy/a flow to B", SL_HOOK_XDP, &in, &out, pass_ret(SL_HOOK_XDP));
	svc_key(&k, IPPROTO_TCP, va);
	err = lb_service_del(ctx, LB, &k);
	rin = tcp_pkt("10.0.6.9", 8080, "192.0.2.73", 41003);
	rout = rin;
	rout.src = "10.0.6.2";
	rout.sport = 80;
	golden("lazy/service A removed: B's record owns the endpoint, its reply goes back",
	       SL_HOOK_XDP, &rin, &rout, pass_ret(SL_HOOK_XDP));
	CHECK(!err, "lazy/service A removed");
}

/* The bench's cases with the flow table full (LRU eviction on every new
 * flow): UDP to a service of 10 NAT backends, new flows after enough of
 * them to fill the table, then 10,000 established flows in turn. Single
 * runs: each packet meets cold caches, as in the live benchmark. */
static void test_cost_full(void)
{
	const char *vip = "10.0.5.1:80";
	struct pkt_spec p = { .family = 4, .dst = "10.0.5.1", .proto = 17, .dport = 80 };
	enum { FILL = LB_MAX_FLOWS, NEW = 20000, EST = 10000 };
	__u64 sum_new = 0, sum_est = 0;
	char src[32], be[32];
	uint8_t pin[PKT_MAX];
	struct run r;
	int err = add_svc(IPPROTO_UDP, vip, LB_SCHED_MH, 0);

	for (int i = 0; i < 10 && !err; i++) {
		snprintf(be, sizeof(be), "10.0.5.%d:8080", 11 + i);
		err = add_be(IPPROTO_UDP, vip, be, LB_FWD_NAT, 1);
	}
	p.src = src;
	for (int i = 0; i < FILL + NEW && !err; i++) {
		snprintf(src, sizeof(src), "198.18.%d.%d", (i >> 8) & 255, i & 255);
		p.sport = 1024 + (i >> 16);
		err = run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
		if (i >= FILL)
			sum_new += r.duration;
	}
	for (int k = 0; k < 2 * EST && !err; k++) {
		int i = FILL + NEW - EST + k % EST;

		snprintf(src, sizeof(src), "198.18.%d.%d", (i >> 8) & 255, i & 255);
		p.sport = 1024 + (i >> 16);
		err = run_pkt(SL_HOOK_XDP, pin, pkt_build(&p, pin), 1, &r);
		if (k >= EST)
			sum_est += r.duration;
	}
	if (!check_report(!err, "cost, table full: measured", err ? strerror(-err) : NULL))
		return;
	printf("FIGURE: lb XDP (root + lb, NAT, UDP), flow table full: new flow %llu ns/packet (%d), established %llu ns/packet (%d flows in turn)\n",
	       (unsigned long long)(sum_new / NEW), NEW, (unsigned long long)(sum_est / EST), EST);
}

/* ---- setup ---------------------------------------------------------------- */

/* sysfs still shows the parent namespace: ask the kernel by ioctl. */
static int read_mac(const char *dev, uint8_t *mac)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err;

	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	err = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (err)
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

int main(void)
{
	cpu_set_t cpus;
	int err;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus) || unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot pin to CPU 0 or create a network namespace: %s\n",
		       strerror(errno));
		return 1;
	}
	if (system("ip link add " DEV " type veth peer name " PEER " && ip link set " DEV
		   " up && ip link set " PEER " up && ip addr add 10.0.0.1/24 dev " DEV
		   " && ip addr add fd00::1/64 dev " DEV " nodad"
		   " && ip neigh replace 10.0.0.5 lladdr 02:00:00:00:00:05 dev " DEV " nud permanent"
		   " && ip neigh replace fd00::5 lladdr 02:00:00:00:00:05 dev " DEV " nud permanent"
		   " && ip neigh replace 10.0.0.7 lladdr 02:00:00:00:00:07 dev " DEV " nud permanent"
		   " && ip neigh replace fd00::7 lladdr 02:00:00:00:00:07 dev " DEV " nud permanent"
		   " && sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1") ||
	    read_mac(DEV, dev_mac)) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	ifindex = sl_ifindex(DEV);
	unlink(FAIL_PCAP);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	err = lb_attach(ctx, LB, DEV, SL_HOOK_XDP);
	err = err ?: lb_attach(ctx, LB, DEV, SL_HOOK_TC_IN);
	if (check_report(!err, "attach to " DEV " (XDP and TC)", err ? sl_errmsg() : NULL)) {
		test_nat();
		test_dsr();
		test_decap();
		test_no_backend();
		test_rr_wrr();
		test_reuse();
		test_maglev_table();
		test_maglev_packets();
		test_forward();
		test_service_removed();
		test_lazy_reply();
		test_cost();
		test_cost_full();
		test_bulk();
	}
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
