// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of capture and tracing through the real pipeline:
 * packets built with pktbuild.h run with BPF_PROG_RUN through the XDP and
 * TC roots of a private network namespace, with firewalls loaded by the
 * production control code and sessions opened with libsluice. Each filter
 * case states which packets it takes; the records are checked field by
 * field against the input frame; sampling and the token bucket are exact
 * on one CPU; hop records and path events follow a chain of two. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "events.h"
#include "observe.h"
#include "firewall.h"
#include "check.h"
#include "fw_text.h"
#include "pktbuild.h"

#define DEV "slop0"
#define PEER "slop1"
#define FA "oba"
#define FB "obb"

static struct sl_ctx *ctx;
static int ifindex;

/* Records a session handed over, kept for the checks. */
#define MAX_RECS 256
struct recs {
	int n;
	size_t size[MAX_RECS];
	uint8_t data[MAX_RECS][sizeof(struct sl_cap_rec) + SL_CAPTURE_SNAPLEN_MAX];
};
static struct recs recs;

static int keep_rec(const void *rec, size_t size, void *arg)
{
	if (recs.n < MAX_RECS) {
		memcpy(recs.data[recs.n], rec, size < sizeof(recs.data[0]) ?
		       size : sizeof(recs.data[0]));
		recs.size[recs.n++] = size;
	}
	return 0;
}

static __u32 slot_of(const char *name)
{
	struct sl_instance inst;

	return sl_instance_get(ctx, name, &inst) ? 0 : inst.slot;
}

/* Runs pkt repeat times through the root of hook; returns the retval. */
static int run(int hook, const uint8_t *pkt, size_t len, int repeat)
{
	struct xdp_md xmd = { .data_end = len, .ingress_ifindex = ifindex };
	struct __sk_buff skb = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .repeat = repeat);
	int fd, err;

	if (hook == SL_HOOK_XDP) {
		opts.ctx_in = &xmd;
		opts.ctx_size_in = sizeof(xmd);
	} else {
		opts.ctx_in = &skb;
		opts.ctx_size_in = sizeof(skb);
	}
	fd = sl_obj_get(sl_base(ctx), hook == SL_HOOK_XDP ? "root_xdp" : "root_tc_in");
	if (fd < 0)
		return -1000;
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	return err ? -1000 : (int)opts.retval;
}

static struct sl_obs *session(enum sl_obs_mode mode, const char *filter,
			      __u32 sample, __u32 rate, __u32 burst)
{
	struct sl_obs_opts o = { .mode = mode, .sample = sample, .rate = rate,
				 .burst = burst };
	char *words[1] = { (char *)filter }, name[160];
	struct sl_obs *obs = NULL;
	int err;

	err = sl_filter_parse(filter[0] ? 1 : 0, words, &o.filter);
	err = err ?: sl_obs_open(ctx, &o, keep_rec, NULL, &obs);
	snprintf(name, sizeof(name), "session '%s' opens", filter);
	if (err)
		check_report(false, name, sl_errmsg());
	recs.n = 0;
	return obs;
}

/* ---- filters -------------------------------------------------------------- */

struct filter_case {
	const char *filter;
	struct pkt_spec pkt;
	bool taken;
};

#define UDP4(s, d, sp, dp) { .family = 4, .src = s, .dst = d, .proto = 17, .sport = sp, .dport = dp }
#define TCP4(s, d, sp, dp) { .family = 4, .src = s, .dst = d, .proto = 6, .sport = sp, .dport = dp, .tcp_flags = 0x02 }
#define UDP6(s, d, sp, dp) { .family = 6, .src = s, .dst = d, .proto = 17, .sport = sp, .dport = dp }
#define ICMP4(s, d) { .family = 4, .src = s, .dst = d, .proto = 1, .icmp_type = 8 }
#define ICMP6(s, d) { .family = 6, .src = s, .dst = d, .proto = 58, .icmp_type = 128 }

static const struct filter_case filter_cases[] = {
	{ "", UDP4("10.0.0.1", "10.0.0.2", 1, 2), true },
	{ "", ICMP6("fd00::1", "fd00::2"), true },
	{ "host 10.0.0.1", UDP4("10.0.0.1", "10.0.0.2", 1, 2), true },
	{ "host 10.0.0.1", UDP4("10.0.0.3", "10.0.0.1", 1, 2), true },
	{ "host 10.0.0.1", UDP4("10.0.0.3", "10.0.0.4", 1, 2), false },
	{ "host 10.0.0.1", UDP6("fd00::1", "fd00::2", 1, 2), false },
	{ "src 10.0.0.1", UDP4("10.0.0.1", "10.0.0.2", 1, 2), true },
	{ "src 10.0.0.1", UDP4("10.0.0.2", "10.0.0.1", 1, 2), false },
	{ "dst host 10.0.0.1", UDP4("10.0.0.2", "10.0.0.1", 1, 2), true },
	{ "dst net 10.1.0.0/16", UDP4("10.9.0.1", "10.1.200.3", 1, 2), true },
	{ "dst net 10.1.0.0/16", UDP4("10.9.0.1", "10.2.0.1", 1, 2), false },
	{ "dst net 10.1.0.0/16", UDP4("10.1.0.1", "10.9.0.1", 1, 2), false },
	{ "net fd00:1::/32", UDP6("fd00:1:2::1", "fd00:9::1", 1, 2), true },
	{ "net fd00:1::/32", UDP6("fd00:2::1", "fd00:9::1", 1, 2), false },
	{ "net fd00:1::/32", UDP4("10.0.0.1", "10.0.0.2", 1, 2), false },
	{ "host fd00::5", UDP6("fd00::6", "fd00::5", 1, 2), true },
	{ "port 53", UDP4("10.0.0.1", "10.0.0.2", 4000, 53), true },
	{ "port 53", TCP4("10.0.0.1", "10.0.0.2", 53, 4000), true },
	{ "port 53", UDP4("10.0.0.1", "10.0.0.2", 4000, 54), false },
	{ "port 53", ICMP4("10.0.0.1", "10.0.0.2"), false },
	{ "sport 1000", UDP4("10.0.0.1", "10.0.0.2", 1000, 2000), true },
	{ "sport 1000", UDP4("10.0.0.1", "10.0.0.2", 2000, 1000), false },
	{ "dst port 1000", UDP4("10.0.0.1", "10.0.0.2", 2000, 1000), true },
	{ "proto icmp", ICMP4("10.0.0.1", "10.0.0.2"), true },
	{ "proto icmp", ICMP6("fd00::1", "fd00::2"), false },
	{ "icmp6", ICMP6("fd00::1", "fd00::2"), true },
	{ "icmp6", ICMP4("10.0.0.1", "10.0.0.2"), false },
	{ "tcp", TCP4("10.0.0.1", "10.0.0.2", 1, 2), true },
	{ "tcp", UDP4("10.0.0.1", "10.0.0.2", 1, 2), false },
	{ "udp", UDP6("fd00::1", "fd00::2", 1, 2), true },
	{ "tcp and dport 80 or udp and dport 53", TCP4("10.0.0.1", "10.0.0.2", 1, 80), true },
	{ "tcp and dport 80 or udp and dport 53", TCP4("10.0.0.1", "10.0.0.2", 1, 53), false },
	{ "tcp and dport 80 or udp and dport 53", UDP4("10.0.0.1", "10.0.0.2", 1, 53), true },
	{ "tcp and dport 80 or udp and dport 53", UDP4("10.0.0.1", "10.0.0.2", 1, 80), false },
	{ "host 10.0.0.1 and port 80 or icmp", ICMP4("10.9.9.9", "10.8.8.8"), true },
	{ "host 10.0.0.1 and port 80 or icmp", TCP4("10.0.0.1", "10.0.0.2", 5, 80), true },
	{ "host 10.0.0.1 and port 80 or icmp", TCP4("10.0.0.9", "10.0.0.2", 5, 80), false },
	/* A later fragment has no ports: a port term cannot match it. */
	{ "port 80", { .family = 4, .src = "10.0.0.1", .dst = "10.0.0.2", .proto = 17,
		       .sport = 1, .dport = 80, .frag_offset = 10 }, false },
};

/* The record is the packet as dropped by FA's default policy. */
static bool cap_rec_ok(const uint8_t *pkt, size_t len, int hook, int i,
		       char *why, size_t wlen)
{
	const struct sl_cap_rec *r = (const void *)recs.data[i];

	if (recs.size[i] != sizeof(*r) + len)
		snprintf(why, wlen, "record size %zu, expected %zu", recs.size[i],
			 sizeof(*r) + len);
	else if (r->type != SL_OBS_CAPTURE || r->cap_len != len || r->pkt_len != len)
		snprintf(why, wlen, "type %u cap_len %u pkt_len %u", r->type,
			 r->cap_len, r->pkt_len);
	else if (r->slot != slot_of(FA) || r->verdict != -SL_DROP_FW_POLICY ||
		 r->hook != hook || r->ifindex != (__u32)ifindex)
		snprintf(why, wlen, "slot %u verdict %d hook %u ifindex %u", r->slot,
			 r->verdict, r->hook, r->ifindex);
	else if (memcmp(r->data, pkt, len))
		snprintf(why, wlen, "bytes differ from the frame");
	else
		return true;
	return false;
}

static void run_filters(void)
{
	char name[256], why[128];
	uint8_t pkt[PKT_MAX];

	for (size_t c = 0; c < sizeof(filter_cases) / sizeof(filter_cases[0]); c++) {
		const struct filter_case *fc = &filter_cases[c];
		size_t len = pkt_build(&fc->pkt, pkt);

		for (int hook = SL_HOOK_XDP; hook <= SL_HOOK_TC_IN; hook++) {
			struct sl_obs *obs = session(SL_OBS_MODE_DROPS, fc->filter, 0, 0, 0);
			bool ok;

			if (!obs)
				continue;
			run(hook, pkt, len, 1);
			sl_obs_poll(obs, 0);
			sl_obs_close(obs);
			snprintf(name, sizeof(name), "filter '%s' %s %s (%s %s > %s)",
				 fc->filter, fc->taken ? "takes" : "leaves",
				 hook == SL_HOOK_XDP ? "xdp" : "tc", fc->pkt.proto == 17 ? "udp" :
				 fc->pkt.proto == 6 ? "tcp" : "icmp", fc->pkt.src, fc->pkt.dst);
			why[0] = 0;
			ok = recs.n == (fc->taken ? 1 : 0);
			if (!ok)
				snprintf(why, sizeof(why), "%d records", recs.n);
			else if (fc->taken)
				ok = cap_rec_ok(pkt, len, hook, 0, why, sizeof(why));
			if (!check_report(ok, name, why))
				pkt_hex(stdout, pkt, len);
		}
	}
}

/* ---- sampling, rate, off ----------------------------------------------------- */

static void run_bounds(void)
{
	struct pkt_spec spec = UDP4("10.0.0.1", "10.0.0.2", 1, 2);
	int ncpu = libbpf_num_possible_cpus();
	struct sl_obs_stats st = {};
	uint8_t pkt[PKT_MAX];
	size_t len = pkt_build(&spec, pkt);
	struct sl_obs *obs;
	char why[128];

	/* One in 4 of 100 drops on this CPU. */
	obs = session(SL_OBS_MODE_DROPS, "udp", 4, 0, 0);
	if (obs) {
		run(SL_HOOK_XDP, pkt, len, 100);
		sl_obs_poll(obs, 0);
		sl_obs_stats(obs, &st);
		sl_obs_close(obs);
		snprintf(why, sizeof(why), "%d records, %llu matched", recs.n,
			 (unsigned long long)st.matched);
		check_report(recs.n == 25 && st.matched == 100 && st.emitted == 25,
			     "sample 4: 100 drops give 25 records", why);
	}
	/* Rate 2/s and burst 10 over ncpu buckets: this CPU takes its share of
	 * the burst, then nothing for a second. */
	obs = session(SL_OBS_MODE_DROPS, "", 0, 2, 10);
	if (obs) {
		run(SL_HOOK_XDP, pkt, len, 1000);
		sl_obs_poll(obs, 0);
		sl_obs_stats(obs, &st);
		sl_obs_close(obs);
		snprintf(why, sizeof(why), "%d records, %llu limited, ncpu %d", recs.n,
			 (unsigned long long)st.limited, ncpu);
		/* Each CPU keeps at least one packet of burst (make_bucket):
		 * a machine with more than 10 possible CPUs gets 1, not 0. */
		check_report(recs.n == (10 / ncpu ?: 1) &&
			     st.limited == 1000 - (__u64)recs.n,
			     "rate 2 burst 10: 1,000 drops give the CPU's burst, the rest limited",
			     why);
	}
	/* After the session stops, the data plane copies nothing. */
	obs = session(SL_OBS_MODE_DROPS, "", 0, 0, 0);
	if (obs) {
		sl_obs_stop(obs);
		run(SL_HOOK_XDP, pkt, len, 50);
		sl_obs_poll(obs, 0);
		sl_obs_stats(obs, &st);
		sl_obs_close(obs);
		check_report(recs.n == 0 && st.matched == 0,
			     "stopped session: no record, nothing matched", NULL);
	}
}

/* ---- --all, trace, path policies ---------------------------------------------- */

static int count_path(const struct sl_event_view *v, void *arg)
{
	int *n = arg;

	if (!strcmp(v->type, "path"))
		(*n)++;
	return 0;
}

static const struct sl_hop_rec *hop(int i)
{
	const struct sl_hop_rec *h = (const void *)recs.data[i];

	return recs.size[i] >= sizeof(*h) && h->type == SL_OBS_HOP ? h : NULL;
}

static void run_chain(void)
{
	struct pkt_spec pass = TCP4("10.0.0.1", "10.0.0.2", 5, 80);
	struct pkt_spec drop = TCP4("10.0.0.1", "10.0.0.2", 5, 81);
	const char *chain[] = { FA, FB };
	uint8_t p1[PKT_MAX], p2[PKT_MAX];
	size_t l1 = pkt_build(&pass, p1), l2 = pkt_build(&drop, p2);
	__u32 sa = slot_of(FA), sb = slot_of(FB);
	struct sl_events *ev = NULL;
	const struct sl_hop_rec *h0, *h1, *h2;
	struct sl_obs *obs;
	int err, paths = 0;

	err = fw_load_text(ctx, FA, "default accept\n");
	err = err ?: fw_load_text(ctx, FB, "drop proto tcp dport 81\ndefault accept\n");
	err = err ?: sl_chain_set(ctx, DEV, SL_HOOK_XDP, chain, 2);
	if (!check_report(!err, "chain " FA " " FB, err ? sl_errmsg() : NULL))
		return;
	sa = slot_of(FA);
	sb = slot_of(FB);

	obs = session(SL_OBS_MODE_ALL, "tcp", 0, 0, 0);
	if (obs) {
		run(SL_HOOK_XDP, p1, l1, 1);
		run(SL_HOOK_XDP, p2, l2, 1);
		sl_obs_poll(obs, 0);
		sl_obs_close(obs);
		const struct sl_cap_rec *r0 = (const void *)recs.data[0];
		const struct sl_cap_rec *r1 = (const void *)recs.data[1];
		check_report(recs.n == 2 && r0->slot == sb && r0->verdict == SL_NEXT &&
			     !memcmp(r0->data, p1, l1) && r1->slot == sb &&
			     r1->verdict == -SL_DROP_FW_RULE && !memcmp(r1->data, p2, l2),
			     "--all: one record per packet at its chain's end, with the verdict",
			     NULL);
	}

	obs = session(SL_OBS_MODE_TRACE, "tcp", 0, 0, 0);
	if (obs) {
		run(SL_HOOK_XDP, p1, l1, 1);
		sl_obs_poll(obs, 0);
		h0 = hop(0), h1 = hop(1), h2 = hop(2);
		check_report(recs.n == 3 && h0 && h1 && h2 &&
			     h0->slot == 0 && h0->verdict == SL_NEXT && !h0->end &&
			     h1->slot == sa && h1->verdict == SL_NEXT && !h1->end &&
			     h2->slot == sb && h2->verdict == SL_NEXT && h2->end &&
			     h0->trace_id == h1->trace_id && h1->trace_id == h2->trace_id &&
			     h0->ts_ns <= h1->ts_ns && h1->ts_ns <= h2->ts_ns &&
			     h2->dport == 80 && h2->ip_proto == 6 && !h2->violated,
			     "trace: root, " FA ", " FB " hops in order, the last one ends", NULL);
		recs.n = 0;
		run(SL_HOOK_XDP, p2, l2, 1);
		sl_obs_poll(obs, 0);
		h2 = hop(2);
		check_report(recs.n == 3 && h2 && h2->slot == sb &&
			     h2->verdict == -SL_DROP_FW_RULE && h2->end,
			     "trace: a drop ends the trace at " FB " with its reason", NULL);
		sl_obs_close(obs);
	}

	/* Policies: via FB is followed, via a third instance is not. */
	err = fw_load_text(ctx, "obc", "default accept\n");
	err = err ?: sl_path_policy_add(ctx, "via-b", "10.0.0.0/24", "10.0.0.2", FB);
	err = err ?: sl_path_policy_add(ctx, "via-c", "10.0.0.1", "10.0.0.0/8", "obc");
	err = err ?: sl_events_open(ctx, count_path, &paths, &ev);
	if (!check_report(!err, "policies via-b, via-c", err ? sl_errmsg() : NULL))
		return;
	sl_events_poll(ev, 0);
	paths = 0;
	obs = session(SL_OBS_MODE_TRACE, "", 0, 0, 0);
	if (obs) {
		run(SL_HOOK_XDP, p1, l1, 1);
		run(SL_HOOK_XDP, p2, l2, 1); /* dropped: violates nothing */
		sl_obs_poll(obs, 0);
		sl_obs_close(obs);
		sl_events_poll(ev, 0);
		h2 = hop(2);
		check_report(recs.n == 6 && h2 && h2->violated == 2 && !hop(5)->violated &&
			     paths == 1,
			     "policy via-c not followed: one path event, the trace marked", NULL);
	}
	sl_path_policy_del(ctx, "via-c");
	paths = 0;
	obs = session(SL_OBS_MODE_TRACE, "", 0, 0, 0);
	if (obs) {
		run(SL_HOOK_XDP, p1, l1, 1);
		sl_obs_poll(obs, 0);
		sl_obs_close(obs);
		sl_events_poll(ev, 0);
		h2 = hop(2);
		check_report(recs.n == 3 && h2 && !h2->violated && paths == 0,
			     "policy via-b followed: no event", NULL);
	}
	sl_events_close(ev);
}

/* Two processes change their own parts of sl_evcfg at once (drop sampling;
 * policy watching): neither may undo the other's change. */
#define EVCFG_ROUNDS 2000
static void run_evcfg_concurrent(void)
{
	struct sl_path_watch w = {};
	pid_t pid[2];
	__u32 sample = 0;
	int i, status, bad = 0;

	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			cpu_set_t all;
			int err = 0;

			/* Each on a CPU of its own, truly at once. */
			CPU_ZERO(&all);
			CPU_SET(i % sysconf(_SC_NPROCESSORS_ONLN), &all);
			sched_setaffinity(0, sizeof(all), &all);

			/* Each reads its own part back after each write:
			 * only it changes that part, so a different value
			 * means the other writer wrote back a stale copy. */
			for (int r = 1; r <= EVCFG_ROUNDS && !err; r++) {
				struct sl_path_watch pw = {};
				__u32 ds = 0;

				if (i)
					err = sl_path_watch_set(ctx, r % 2, 0, 0, 0) ?:
					      sl_path_watch_get(ctx, &pw) ?:
					      (pw.on != r % 2);
				else
					err = sl_events_config(ctx, r) ?:
					      sl_events_get_config(ctx, &ds) ?:
					      (ds != (__u32)r);
			}
			/* The watcher ends on: rounds is even, turn it on. */
			if (!err && i)
				err = sl_path_watch_set(ctx, true, 0, 0, 0);
			_exit(err ? 1 : 0);
		}
	}
	for (i = 0; i < 2; i++)
		if (pid[i] < 0 || waitpid(pid[i], &status, 0) != pid[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status))
			bad++;
	check_report(!bad, "two writers of sl_evcfg: neither loses its change", NULL);
	check_report(!sl_events_get_config(ctx, &sample) && sample == EVCFG_ROUNDS,
		     "the last drop sampling stays", NULL);
	check_report(!sl_path_watch_get(ctx, &w) && w.on,
		     "policy watching set concurrently stays on", NULL);
	sl_path_watch_set(ctx, false, 0, 0, 0);
	sl_events_config(ctx, 0);
}

int main(void)
{
	cpu_set_t one;
	int err;

	/* Per-CPU sampling and buckets are exact on one CPU. */
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	/* No IPv6 on the links: router solicitations from the peer would be
	 * real drops that sessions with a wide filter take. */
	if (system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1") ||
	    system("ip link add " DEV " type veth peer name " PEER " && ip link set " DEV
		   " up && ip link set " PEER " up")) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	ifindex = sl_ifindex(DEV);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	err = fw_load_text(ctx, FA, "default drop\n");
	err = err ?: sl_chain_ensure(ctx, DEV, SL_HOOK_XDP, FA);
	err = err ?: sl_chain_ensure(ctx, DEV, SL_HOOK_TC_IN, FA);
	if (check_report(!err, "attach to " DEV, err ? sl_errmsg() : NULL)) {
		run_filters();
		run_bounds();
		run_chain();
		run_evcfg_concurrent();
	}
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
