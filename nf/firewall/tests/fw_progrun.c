// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of the firewall through the real pipeline: rule sets
 * loaded by the production control code, packets built with correct
 * checksums and run with BPF_PROG_RUN through the XDP root and the TC root.
 * Each case states the verdict and which rule counts the packet. The test
 * runs in a private network namespace and removes its state at the end.
 * A failing packet is printed in hex and appended to build/tests/fw_fail.pcap. */
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
#include "events.h"
#include "firewall.h"
#include "check.h"
#include "fw_text.h"
#include "pktbuild.h"

#define DEV "sltp0"
#define PEER "sltp1"
#define FW "fwtest"
#define FAIL_PCAP "build/tests/fw_fail.pcap"

enum { V_PASS, V_DROP };
#define DEFAULT 0 /* the rule index that means the default policy */
#define NONE -1 /* no firewall counter moves (not IP, or dropped before) */

struct fw_case {
	const char *name;
	struct pkt_spec pkt;
	int verdict;
	int rule; /* 1-based rule that counts it, DEFAULT or NONE */
	int reason; /* expected drop reason when dropped */
	bool xdp_only; /* the kernel's TC test-run refuses such a packet */
};

static struct sl_ctx *ctx;
static int ifindex;

/* Sums of every rule counter of instance name, n+1 entries. */
static struct fw_counter *read_counters(const char *name, __u32 *n)
{
	struct fw_ruleset rs;
	struct fw_counter *cnt = NULL;

	if (fw_read(ctx, name, &rs, &cnt, NULL))
		return NULL;
	*n = rs.n;
	fw_ruleset_free(&rs);
	return cnt;
}

static __u64 drop_count(const char *name, int reason)
{
	struct sl_instance inst;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
	__u32 slot = 0;

	if (name) {
		if (sl_instance_get(ctx, name, &inst))
			return ~0ULL;
		slot = inst.slot;
	}
	if (sl_slot_stats(ctx, slot, &st, drops))
		return ~0ULL;
	return drops[reason];
}

static int prog_fd(const char *pin)
{
	return sl_obj_get(sl_base(ctx), pin);
}

/* Runs a packet `repeat` times through the root of hook; returns 0 with
 * the verdict of the last run in *verdict. */
static int run_packet(int hook, const uint8_t *pkt, size_t len, int repeat,
		      int *verdict)
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
	if (hook == SL_HOOK_XDP)
		*verdict = opts.retval == XDP_DROP ? V_DROP : opts.retval == XDP_PASS ? V_PASS : -1;
	else
		*verdict = opts.retval == 2 /* TC_ACT_SHOT */ ? V_DROP :
			   (int)opts.retval == -1 /* TCX_NEXT */ ? V_PASS : -1;
	return 0;
}

static void run_case(const char *set, const struct fw_case *c, int hook)
{
	uint8_t pkt[PKT_MAX];
	size_t len = pkt_build(&c->pkt, pkt);
	struct fw_counter *before, *after;
	__u32 n = 0, n2 = 0;
	__u64 drops_before, drops_after;
	const char *owner = c->reason >= SL_DROP_FW_RULE ? FW : NULL;
	char name[256], detail[256] = "";
	int verdict = -1, err;
	bool ok = true;

	snprintf(name, sizeof(name), "%s/%s/%s", set, sl_hook_name(hook), c->name);
	before = read_counters(FW, &n);
	drops_before = drop_count(owner, c->reason);
	err = run_packet(hook, pkt, len, 1, &verdict);
	after = read_counters(FW, &n2);
	drops_after = drop_count(owner, c->reason);
	if (err || !before || !after) {
		snprintf(detail, sizeof(detail), "run failed: %s", err ? strerror(-err) : sl_errmsg());
		ok = false;
		goto report;
	}
	if (verdict != c->verdict) {
		snprintf(detail, sizeof(detail), "verdict %s, expected %s",
			 verdict == V_DROP ? "drop" : verdict == V_PASS ? "pass" : "other",
			 c->verdict == V_DROP ? "drop" : "pass");
		ok = false;
	}
	for (__u32 i = 0; i <= n && ok; i++) {
		/* Counter index i: rule i+1, or the default at index n. */
		int as_rule = i == n ? DEFAULT : (int)i + 1;
		__u64 want = before[i].packets + (c->rule == as_rule);

		if (after[i].packets != want) {
			snprintf(detail, sizeof(detail), "counter of %s%d is %llu, expected %llu",
				 as_rule ? "rule " : "default", as_rule,
				 (unsigned long long)after[i].packets,
				 (unsigned long long)want);
			ok = false;
		}
	}
	if (ok && c->verdict == V_DROP && drops_after != drops_before + 1) {
		snprintf(detail, sizeof(detail), "drop reason %s counted %llu times",
			 sl_drop_reason_name(c->reason),
			 (unsigned long long)(drops_after - drops_before));
		ok = false;
	}
report:
	check_report(ok, name, detail[0] ? detail : NULL);
	if (!ok) {
		printf("packet (%zu bytes):\n", len);
		pkt_hex(stdout, pkt, len);
		pkt_pcap(FAIL_PCAP, pkt, len);
	}
	free(before);
	free(after);
}

#define V4(s, d, ...) { .family = 4, .src = s, .dst = d, __VA_ARGS__ }
#define V6(s, d, ...) { .family = 6, .src = s, .dst = d, __VA_ARGS__ }
#define TCP .proto = 6
#define UDP .proto = 17

static const char rules_main[] =
	"# golden rule set\n"
	"drop src 10.1.0.0/16 proto tcp dport 22\n" /* 1 */
	"accept src 10.1.2.3 proto tcp dport 22\n" /* 2: shadowed by 1 */
	"drop proto udp dport 1000-2000\n" /* 3 */
	"drop src !10.0.0.0/8 proto tcp dport 80\n" /* 4 */
	"accept proto icmp icmp-type 0\n" /* 5 */
	"drop proto icmp\n" /* 6 */
	"drop proto tcp tcp-flags syn/syn,ack dport 443\n" /* 7 */
	"drop dst 2001:db8:1::/48 proto udp\n" /* 8 */
	"drop src 2001:db8::1 proto icmpv6 icmp-type 128\n" /* 9 */
	"drop proto 47\n" /* 10 */
	"drop iif " DEV " proto udp dport 7\n" /* 11 */
	"drop proto tcp sport 5000-5999 dport 8000-8999\n" /* 12 */
	"default accept\n";

static const struct fw_case cases_main[] = {
	{ "tcp22 from 10.1/16", V4("10.1.5.5", "10.9.9.9", TCP, .sport = 1234, .dport = 22, .tcp_flags = 0x02), V_DROP, 1, SL_DROP_FW_RULE },
	{ "first match beats a later accept", V4("10.1.2.3", "10.9.9.9", TCP, .sport = 1, .dport = 22), V_DROP, 1, SL_DROP_FW_RULE },
	{ "tcp22 from elsewhere", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 1, .dport = 22), V_PASS, DEFAULT },
	{ "udp range start", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 1000), V_DROP, 3, SL_DROP_FW_RULE },
	{ "udp range end", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 2000), V_DROP, 3, SL_DROP_FW_RULE },
	{ "udp below range", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 999), V_PASS, DEFAULT },
	{ "udp above range", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 2001), V_PASS, DEFAULT },
	{ "negated source matches outside", V4("192.168.1.1", "10.9.9.9", TCP, .sport = 1, .dport = 80), V_DROP, 4, SL_DROP_FW_RULE },
	{ "negated source skips inside", V4("10.5.5.5", "10.9.9.9", TCP, .sport = 1, .dport = 80), V_PASS, DEFAULT },
	{ "icmp echo reply accepted", V4("10.2.0.1", "10.9.9.9", .proto = 1, .icmp_type = 0), V_PASS, 5 },
	{ "icmp echo request dropped", V4("10.2.0.1", "10.9.9.9", .proto = 1, .icmp_type = 8), V_DROP, 6, SL_DROP_FW_RULE },
	{ "syn to 443", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 1, .dport = 443, .tcp_flags = 0x02), V_DROP, 7, SL_DROP_FW_RULE },
	{ "syn-ack to 443", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 1, .dport = 443, .tcp_flags = 0x12), V_PASS, DEFAULT },
	{ "ack to 443", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 1, .dport = 443, .tcp_flags = 0x10), V_PASS, DEFAULT },
	{ "ipv6 udp into /48", V6("2001:db8:9::1", "2001:db8:1::5", UDP, .sport = 1, .dport = 53), V_DROP, 8, SL_DROP_FW_RULE },
	{ "ipv6 udp outside /48", V6("2001:db8:9::1", "2001:db8:2::5", UDP, .sport = 1, .dport = 53), V_PASS, DEFAULT },
	{ "ipv6 hop-by-hop then udp", V6("2001:db8:9::1", "2001:db8:1::5", UDP, .sport = 1, .dport = 53, .v6_hopopts = true), V_DROP, 8, SL_DROP_FW_RULE },
	{ "ipv6 later fragment, proto udp", V6("2001:db8:9::1", "2001:db8:1::5", UDP, .frag_offset = 100), V_DROP, 8, SL_DROP_FW_RULE },
	{ "icmpv6 echo from the /128", V6("2001:db8::1", "2001:db8:2::5", .proto = 58, .icmp_type = 128), V_DROP, 9, SL_DROP_FW_RULE },
	{ "icmpv6 echo from another host", V6("2001:db8::2", "2001:db8:2::5", .proto = 58, .icmp_type = 128), V_PASS, DEFAULT },
	{ "ipv4 rule ignores ipv6 tcp22", V6("2001:db8::1", "2001:db8:2::5", TCP, .sport = 1, .dport = 22), V_PASS, DEFAULT },
	{ "gre by number", V4("10.2.0.1", "10.9.9.9", .proto = 47), V_DROP, 10, SL_DROP_FW_RULE },
	{ "input interface", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 1, .dport = 7), V_DROP, 11, SL_DROP_FW_RULE },
	{ "two port ranges", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 5500, .dport = 8080), V_DROP, 12, SL_DROP_FW_RULE },
	{ "two port ranges, sport outside", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 6000, .dport = 8080), V_PASS, DEFAULT },
	{ "vlan tagged udp", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 1500, .vlan = 100), V_DROP, 3, SL_DROP_FW_RULE },
	{ "first fragment has ports", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 9, .dport = 1500, .more_frags = true), V_DROP, 3, SL_DROP_FW_RULE },
	{ "later fragment has no ports", V4("10.2.0.1", "10.9.9.9", UDP, .frag_offset = 10), V_PASS, DEFAULT },
	{ "arp is not filtered", { .family = 0 }, V_PASS, NONE },
	{ "truncated tcp header", V4("10.2.0.1", "10.9.9.9", TCP, .dport = 22, .truncate = 14 + 20 + 10), V_DROP, NONE, SL_DROP_MALFORMED_L4 },
	{ "truncated ipv4 header", V4("10.2.0.1", "10.9.9.9", TCP, .dport = 22, .truncate = 14 + 12), V_DROP, NONE, SL_DROP_MALFORMED_L3, true },
	{ "truncated ipv6 header", V6("2001:db8::1", "2001:db8::2", UDP, .truncate = 14 + 30), V_DROP, NONE, SL_DROP_MALFORMED_L3, true },
};

static const char rules_policy[] =
	"default drop\n"
	"accept proto tcp dport 80\n"
	"accept src 10.0.0.0/8 dst 10.0.0.0/8\n";

static const struct fw_case cases_policy[] = {
	{ "web allowed", V4("192.0.2.1", "198.51.100.1", TCP, .sport = 1, .dport = 80), V_PASS, 1 },
	{ "inside allowed", V4("10.0.0.1", "10.200.0.1", UDP, .sport = 1, .dport = 53), V_PASS, 2 },
	{ "rest dropped by policy", V4("192.0.2.1", "10.0.0.1", UDP, .sport = 1, .dport = 53), V_DROP, DEFAULT, SL_DROP_FW_POLICY },
	{ "ipv6 dropped by policy", V6("2001:db8::1", "2001:db8::2", TCP, .sport = 1, .dport = 81), V_DROP, DEFAULT, SL_DROP_FW_POLICY },
	{ "ipv6 web allowed", V6("2001:db8::1", "2001:db8::2", TCP, .sport = 1, .dport = 80), V_PASS, 1 },
};

static void run_set(const char *set, const char *rules, const struct fw_case *cases,
		    size_t n)
{
	int err = fw_load_text(ctx, FW, rules);

	if (!check_report(!err, set, err ? sl_errmsg() : NULL))
		return;
	for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++)
		for (size_t i = 0; i < n; i++)
			if (hook == SL_HOOK_XDP || !cases[i].xdp_only)
				run_case(set, &cases[i], hook);
}

/* 65,536 rules: each drops one /32 source; the last one is hit. */
static void run_large(void)
{
	struct fw_ruleset rs = {};
	struct fw_rule rule;
	char text[128];
	int err = 0;

	for (__u32 i = 0; i < FW_MAX_RULES && !err; i++) {
		snprintf(text, sizeof(text), "drop src 10.%u.%u.%u proto udp dport %u",
			 (i >> 16) & 255, (i >> 8) & 255, i & 255, 1 + i % 1000);
		err = fw_rule_parse(text, &rule);
		err = err ?: fw_ruleset_add(&rs, &rule, rs.n);
	}
	err = err ?: fw_load(ctx, FW, &rs, NULL);
	fw_ruleset_free(&rs);
	if (!check_report(!err, "large/load 65536 rules", err ? sl_errmsg() : NULL))
		return;
	const struct fw_case hit = { "last rule", V4("10.0.255.255", "10.9.9.9", UDP, .sport = 1,
					  .dport = 1 + 65535 % 1000), V_DROP, 65536, SL_DROP_FW_RULE };
	const struct fw_case miss = { "no rule", V4("10.0.255.255", "10.9.9.9", UDP, .sport = 1,
					   .dport = 999), V_PASS, DEFAULT };
	const struct fw_case first = { "first rule", V4("10.0.0.0", "10.9.9.9", UDP, .sport = 1,
					    .dport = 1), V_DROP, 1, SL_DROP_FW_RULE };

	run_case("large", &hit, SL_HOOK_XDP);
	run_case("large", &miss, SL_HOOK_XDP);
	run_case("large", &first, SL_HOOK_XDP);
}

/* Two firewalls chained: the first accepts, the second decides. */
static void run_chain(void)
{
	const char *names[] = { "fwfirst", FW };
	int err = fw_load_text(ctx, "fwfirst", "accept proto udp dport 53\n");

	err = err ?: fw_load_text(ctx, FW, "drop proto udp\n");
	err = err ?: sl_chain_set(ctx, DEV, SL_HOOK_XDP, names, 2);
	if (!check_report(!err, "chain/set two firewalls", err ? sl_errmsg() : NULL))
		return;
	const struct fw_case c = { "second NF sees the packet", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 1,
					 .dport = 53), V_DROP, 1, SL_DROP_FW_RULE };
	run_case("chain", &c, SL_HOOK_XDP);
}

/* ---- drop events through the ring buffer ---------------------------- */

#define EV_MAX 8

struct ev_sink {
	int n;
	struct sl_event ev[EV_MAX];
};

static int ev_collect(const struct sl_event_view *v, void *arg)
{
	struct ev_sink *s = arg;

	if (s->n < EV_MAX)
		s->ev[s->n] = *v->raw;
	s->n++;
	return 0;
}

/* Runs pkt `repeat` times through hook's root; returns the verdict of the
 * last run, or -1. */
static int run_repeat(int hook, const uint8_t *pkt, size_t len, int repeat)
{
	int verdict = -1;

	return run_packet(hook, pkt, len, repeat, &verdict) ? -1 : verdict;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

struct ev_case {
	const char *name;
	struct pkt_spec pkt;
	int hook;
	__u32 sample;
	int verdict;
	int events; /* events expected from one packet */
	int reason;
	bool root; /* dropped by the root program (slot 0) */
};

/* Checks one event against the packet that made it. */
static bool ev_matches(const struct sl_event *e, const struct ev_case *c,
		       const uint8_t *pkt, size_t len, __u32 slot, __u64 t0,
		       __u64 t1, char *why, size_t wlen)
{
	__u8 sa[16] = {}, da[16] = {};
	size_t cap = len < SL_EVENT_SNAPLEN ? len : SL_EVENT_SNAPLEN;
	int alen = c->pkt.family == 6 ? 16 : 4;
	bool l4 = !c->pkt.truncate;

	inet_pton(c->pkt.family == 6 ? AF_INET6 : AF_INET, c->pkt.src, sa);
	inet_pton(c->pkt.family == 6 ? AF_INET6 : AF_INET, c->pkt.dst, da);
#define EV_WANT(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond)) {                                                 \
			snprintf(why, wlen, __VA_ARGS__);                      \
			return false;                                          \
		}                                                              \
	} while (0)
	EV_WANT(e->type == SL_EVENT_DROP, "type %u", e->type);
	EV_WANT(e->size == sizeof(*e) && e->version == SL_EVENT_VERSION,
		"size %u version %u", e->size, e->version);
	EV_WANT(e->ts_ns >= t0 && e->ts_ns <= t1, "timestamp outside the run");
	EV_WANT(e->reason == c->reason, "reason %s, expected %s",
		sl_drop_reason_name(e->reason), sl_drop_reason_name(c->reason));
	EV_WANT(e->slot == slot, "slot %u, expected %u", e->slot, slot);
	EV_WANT(e->hook == c->hook, "hook %u, expected %d", e->hook, c->hook);
	EV_WANT(e->ifindex == (__u32)ifindex, "ifindex %u", e->ifindex);
	EV_WANT(e->pkt_len == len, "pkt_len %u, expected %zu", e->pkt_len, len);
	EV_WANT(e->family == c->pkt.family, "family %u", e->family);
	EV_WANT(e->ip_proto == c->pkt.proto, "proto %u", e->ip_proto);
	EV_WANT(!memcmp(e->saddr, sa, alen) && !memcmp(e->daddr, da, alen),
		"addresses differ");
	EV_WANT(!l4 || (e->sport == c->pkt.sport && e->dport == c->pkt.dport),
		"ports %u -> %u", e->sport, e->dport);
	EV_WANT(e->cap_len == cap, "cap_len %u, expected %zu", e->cap_len, cap);
	EV_WANT(!memcmp(e->data, pkt, cap), "captured bytes differ");
#undef EV_WANT
	return true;
}

static void run_ev_case(struct sl_events *rd, struct ev_sink *sink,
			const struct ev_case *c, __u32 slot)
{
	uint8_t pkt[PKT_MAX];
	size_t len = pkt_build(&c->pkt, pkt);
	char name[256], why[200] = "";
	int err, verdict;
	__u64 t0, t1;
	bool ok;

	snprintf(name, sizeof(name), "events/%s/%s", sl_hook_name(c->hook), c->name);
	err = sl_events_config(ctx, c->sample);
	sl_events_poll(rd, 0); /* drain */
	sink->n = 0;
	t0 = mono_ns();
	verdict = run_repeat(c->hook, pkt, len, 1);
	t1 = mono_ns();
	if (!err)
		err = sl_events_poll(rd, 0);
	ok = err >= 0 && verdict == c->verdict && sink->n == c->events;
	if (err < 0)
		snprintf(why, sizeof(why), "%s", sl_errmsg());
	else if (verdict != c->verdict)
		snprintf(why, sizeof(why), "verdict %d, expected %d", verdict, c->verdict);
	else if (sink->n != c->events)
		snprintf(why, sizeof(why), "%d events, expected %d", sink->n, c->events);
	else if (c->events)
		ok = ev_matches(&sink->ev[0], c, pkt, len, c->root ? 0 : slot, t0,
				t1, why, sizeof(why));
	check_report(ok, name, why[0] ? why : NULL);
	if (!ok) {
		printf("packet (%zu bytes):\n", len);
		pkt_hex(stdout, pkt, len);
	}
}

static const struct ev_case ev_cases[] = {
	{ "sampling off: a drop writes none", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9), SL_HOOK_XDP, 0, V_DROP, 0 },
	{ "a drop writes one event", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9), SL_HOOK_XDP, 1, V_DROP, 1, SL_DROP_FW_RULE },
	{ "a drop writes one event", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9), SL_HOOK_TC_IN, 1, V_DROP, 1, SL_DROP_FW_RULE },
	{ "policy drop", V4("192.0.2.1", "10.9.9.9", TCP, .sport = 40000, .dport = 25), SL_HOOK_XDP, 1, V_DROP, 1, SL_DROP_FW_POLICY },
	{ "ipv6 drop", V6("2001:db8::1", "2001:db8:2::5", UDP, .sport = 7, .dport = 9), SL_HOOK_XDP, 1, V_DROP, 1, SL_DROP_FW_RULE },
	{ "first 128 bytes of a long packet", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9, .payload = 300), SL_HOOK_XDP, 1, V_DROP, 1, SL_DROP_FW_RULE },
	{ "first 128 bytes of a long packet", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9, .payload = 300), SL_HOOK_TC_IN, 1, V_DROP, 1, SL_DROP_FW_RULE },
	{ "a passed packet writes none", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 10), SL_HOOK_XDP, 1, V_PASS, 0 },
	{ "a passed packet writes none", V4("10.2.0.1", "10.9.9.9", TCP, .sport = 7, .dport = 80), SL_HOOK_TC_IN, 1, V_PASS, 0 },
	{ "root parser drop (slot 0)", V4("10.2.0.1", "10.9.9.9", TCP, .dport = 22, .truncate = 14 + 20 + 10), SL_HOOK_XDP, 1, V_DROP, 1, SL_DROP_MALFORMED_L4, true },
	{ "sampling off again", V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9), SL_HOOK_TC_IN, 0, V_DROP, 0 },
};

static void run_events(void)
{
	const char *names[] = { FW };
	struct ev_sink sink = {};
	struct sl_events *rd = NULL, *second = NULL;
	struct sl_events_stats st0, st1;
	struct sl_instance inst;
	cpu_set_t old, one;
	uint8_t pkt[PKT_MAX];
	size_t len;
	int err, v;

	/* One CPU: the sampling counter is per CPU. */
	sched_getaffinity(0, sizeof(old), &old);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);

	err = fw_load_text(ctx, FW, "drop proto udp dport 9\n"
			     "accept proto udp\n"
			     "accept proto tcp dport 80\n"
			     "default drop\n");
	err = err ?: sl_chain_set(ctx, DEV, SL_HOOK_XDP, names, 1);
	err = err ?: sl_instance_get(ctx, FW, &inst);
	err = err ?: sl_events_open(ctx, ev_collect, &sink, &rd);
	if (!check_report(!err, "events/open a reader", err ? sl_errmsg() : NULL))
		goto out;
	err = sl_events_open(ctx, ev_collect, &sink, &second);
	check_report(err == -EBUSY, "events/a second reader is refused",
		     err == -EBUSY ? NULL : "not EBUSY");
	sl_events_close(second);

	for (size_t i = 0; i < sizeof(ev_cases) / sizeof(ev_cases[0]); i++)
		run_ev_case(rd, &sink, &ev_cases[i], inst.slot);

	/* Sampling N: one drop in N on this CPU. */
	const struct pkt_spec drop = V4("10.2.0.1", "10.9.9.9", UDP, .sport = 7, .dport = 9);

	len = pkt_build(&drop, pkt);
	err = sl_events_config(ctx, 3);
	sl_events_poll(rd, 0);
	sink.n = 0;
	v = run_repeat(SL_HOOK_XDP, pkt, len, 9);
	err = err ?: sl_events_poll(rd, 0);
	check_report(err >= 0 && v == V_DROP && sink.n == 3, "events/sampling 3: 9 drops, 3 events",
		     err < 0 ? sl_errmsg() : sink.n != 3 ? "wrong event count" : NULL);
	if (sink.n != 3)
		printf("  %d events\n", sink.n);

	/* A full ring loses events, counted, and never holds a packet up. */
	const int burst = SL_EVENTS_RING_SIZE / sizeof(struct sl_event) + 500;

	err = sl_events_config(ctx, 1);
	sl_events_poll(rd, 0);
	err = err ?: sl_events_stats(ctx, &st0);
	sink.n = 0;
	v = run_repeat(SL_HOOK_XDP, pkt, len, burst);
	err = err ?: sl_events_stats(ctx, &st1);
	err = err ?: sl_events_poll(rd, 0);
	{
		__u64 emitted = st1.emitted - st0.emitted, lost = st1.lost - st0.lost;
		char why[160];

		snprintf(why, sizeof(why), "%d runs: %llu written, %llu lost, %d read",
			 burst, (unsigned long long)emitted, (unsigned long long)lost, sink.n);
		check_report(err >= 0 && v == V_DROP && lost > 0 && emitted + lost == (__u64)burst &&
				     (__u64)sink.n == emitted,
			     "events/a full ring counts lost events", err < 0 ? sl_errmsg() : why);
	}
out:
	sl_events_config(ctx, 0);
	sl_events_close(rd);
	sched_setaffinity(0, sizeof(old), &old);
}

int main(void)
{
	int err;

	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	/* No IPv6 here: router solicitations from the peer would reach the
	 * firewall and move its counters behind the test's back. */
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
	err = fw_load_text(ctx, FW, "default accept\n");
	err = err ?: sl_chain_ensure(ctx, DEV, SL_HOOK_XDP, FW);
	err = err ?: sl_chain_ensure(ctx, DEV, SL_HOOK_TC_IN, FW);
	if (check_report(!err, "attach to " DEV, err ? sl_errmsg() : NULL)) {
		run_set("main", rules_main, cases_main, sizeof(cases_main) / sizeof(cases_main[0]));
		run_set("policy", rules_policy, cases_policy,
			sizeof(cases_policy) / sizeof(cases_policy[0]));
		run_large();
		run_chain();
		run_events();
	}
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
