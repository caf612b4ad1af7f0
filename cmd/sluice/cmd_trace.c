// SPDX-License-Identifier: GPL-2.0
/* sluice trace: hop-by-hop paths of matching packets (which instance
 * handled each, its verdict, the time it took), and path policies:
 *   sluice trace [FILTER] [--dev DEV] [--count N] [--duration SEC] ...
 *   sluice trace policy add NAME --from CIDR --to CIDR --via INSTANCE
 *   sluice trace policy del NAME | list */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <net/if.h>
#include "cli.h"
#include "out.h"
#include "events.h"
#include "obs_cli.h"

/* Packets whose hops are being gathered; a trace not ended within
 * STALE_NS (a tail call that failed, records lost) is printed as
 * incomplete. */
#define PENDING_MAX 256
#define STALE_NS 1000000000ULL

struct pending {
	bool used;
	__u32 id;
	__u64 seen_ns; /* CLOCK_MONOTONIC when the first hop came */
	__u64 root_ts; /* ts_ns of the root's hop (0: not seen) */
	__u64 last_ts;
	struct sl_hop_rec first;
	unsigned int nhops;
	struct {
		__u32 slot;
		__s32 verdict;
		__u64 ns;
	} hops[SL_CHAIN_MAX + 1];
	__s32 verdict;
	__u32 violated;
};

struct tracer {
	struct sl_ctx *ctx;
	struct sl_slot_names *names;
	__s64 rt_offset;
	long count, printed;
	struct pending pend[PENDING_MAX];
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const char *verdict_name(__s32 v, char *buf, size_t len)
{
	const char *r;

	switch (v) {
	case SL_NEXT:
		return "next";
	case SL_PASS:
		return "pass";
	case SL_REDIRECT:
		return "redirect";
	}
	if (v >= 0)
		return "unknown";
	r = sl_drop_reason_name(-v);
	snprintf(buf, len, "drop(%s)", r ? r : "unknown");
	return buf;
}

static const char *proto_str(__u8 family, __u8 proto)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
		return family == 4 ? "icmp" : "1";
	case 58:
		return "icmp6";
	}
	return family ? "ip" : "";
}

static void print_trace(struct tracer *t, struct pending *p, bool complete)
{
	const struct sl_hop_rec *h = &p->first;
	int af = h->family == 6 ? AF_INET6 : AF_INET;
	char src[INET6_ADDRSTRLEN] = "", dst[INET6_ADDRSTRLEN] = "";
	char dev[IF_NAMESIZE], inst[SL_NAME_MAX], vbuf[48], text[64];
	bool ports = h->ip_proto == 6 || h->ip_proto == 17;
	char policy[32] = "";

	if (!if_indextoname(h->ifindex, dev))
		snprintf(dev, sizeof(dev), "if%u", h->ifindex);
	if (h->family) {
		inet_ntop(af, h->saddr, src, sizeof(src));
		inet_ntop(af, h->daddr, dst, sizeof(dst));
	}
	out_init(out_json()); /* one document a line */
	out_open_obj(NULL);
	out_u64("trace_id", "trace %llu", p->id);
	out_str("dev", " %s", dev);
	out_str("hook", " %s", sl_hook_name(h->hook));
	if (h->family) {
		out_str("family", NULL, h->family == 4 ? "ipv4" : "ipv6");
		out_str("src", " %s", src);
		if (ports)
			out_u64("sport", ":%llu", h->sport);
		out_str("dst", " > %s", dst);
		if (ports)
			out_u64("dport", ":%llu", h->dport);
		out_str("proto", " %s", proto_str(h->family, h->ip_proto));
	}
	out_u64("len", NULL, h->pkt_len);
	out_text(":");
	out_open_arr("hops");
	for (unsigned int i = 0; i < p->nhops; i++) {
		sl_slot_name(t->names, p->hops[i].slot, inst);
		out_open_obj(NULL);
		out_text(i ? " ->" : "");
		out_str("instance", " %s", inst);
		out_u64("slot", NULL, p->hops[i].slot);
		out_str("verdict", " %s", verdict_name(p->hops[i].verdict, vbuf,
						       sizeof(vbuf)));
		out_u64("ns", " %lluns", p->hops[i].ns);
		out_close_obj();
	}
	out_close_arr();
	out_bool("complete", NULL, complete);
	if (!complete)
		out_text(" (incomplete: no last hop seen)");
	else if (p->verdict == SL_NEXT)
		out_text(" (end of chain: pass)");
	if (complete)
		out_str("verdict", NULL, verdict_name(p->verdict, vbuf, sizeof(vbuf)));
	out_u64("total_ns", NULL, p->root_ts && p->last_ts > p->root_ts ?
		p->last_ts - p->root_ts : 0);
	if (p->violated) {
		sl_path_policy_name(t->ctx, p->violated - 1, policy);
		snprintf(text, sizeof(text), "%s", policy[0] ? policy : "?");
		out_open_obj("violation");
		out_str("policy", " VIOLATES policy %s", text);
		out_close_obj();
	}
	out_close_obj();
	out_text("\n");
	out_done();
	fflush(stdout);
	p->used = false;
	t->printed++;
}

static struct pending *find_pending(struct tracer *t, __u32 id, bool create)
{
	struct pending *oldest = NULL;

	for (int i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &t->pend[i];

		if (p->used && p->id == id)
			return p;
	}
	if (!create)
		return NULL;
	for (int i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &t->pend[i];

		if (!p->used)
			return p;
		if (!oldest || p->seen_ns < oldest->seen_ns)
			oldest = p;
	}
	print_trace(t, oldest, false); /* make room */
	return oldest;
}

static int trace_record(const void *rec, size_t size, void *arg)
{
	const struct sl_hop_rec *h = rec;
	struct tracer *t = arg;
	struct pending *p;

	if (t->count && t->printed >= t->count)
		return -ECANCELED;
	if (size < sizeof(*h) || h->type != SL_OBS_HOP)
		return 0;
	p = find_pending(t, h->trace_id, true);
	if (!p->used) {
		memset(p, 0, sizeof(*p));
		p->used = true;
		p->id = h->trace_id;
		p->seen_ns = mono_ns();
		p->first = *h;
	}
	if (h->slot == 0 && h->pos == 0) {
		p->root_ts = h->ts_ns; /* the root parsed: NF times start here */
	}
	if (h->slot || h->end) {
		if (p->nhops < SL_CHAIN_MAX + 1) {
			p->hops[p->nhops].slot = h->slot;
			p->hops[p->nhops].verdict = h->verdict;
			p->hops[p->nhops].ns = p->last_ts ? h->ts_ns - p->last_ts : 0;
			p->nhops++;
		}
	}
	p->last_ts = h->ts_ns;
	if (!h->end)
		return 0;
	p->verdict = h->verdict;
	p->violated = h->violated;
	print_trace(t, p, true);
	return t->count && t->printed >= t->count ? -ECANCELED : 0;
}

/* Prints traces whose last hop never came (or all, at the end). */
static void trace_tick(void *arg, bool last)
{
	struct tracer *t = arg;
	__u64 now = mono_ns();

	for (int i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &t->pend[i];

		if (t->count && t->printed >= t->count)
			return;
		if (p->used && (last || now - p->seen_ns > STALE_NS))
			print_trace(t, p, false);
	}
}

static int trace_opt(int argc, char **argv, int *i, struct obs_args *a)
{
	return 1;
}

static int trace_run(int argc, char **argv)
{
	struct obs_args a = { .opts.mode = SL_OBS_MODE_TRACE };
	struct tracer *t;
	struct sl_obs_stats st;
	int err;

	err = obs_parse(argc, argv, &a, trace_opt);
	if (err)
		return err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return cli_fail(sl_err(-ENOMEM, "out of memory"));
	t->count = a.count;
	err = sl_open(&t->ctx, 0);
	if (err) {
		free(t);
		return cli_fail(err);
	}
	t->names = sl_slot_names_new(t->ctx);
	err = t->names ? obs_run(t->ctx, &a, trace_record, t, trace_tick, &st) :
			 sl_err(-ENOMEM, "out of memory");
	sl_slot_names_free(t->names);
	sl_close(t->ctx);
	if (!err)
		fprintf(stderr, "%ld packets traced (%llu matched, %llu over the "
			"rate limit, %llu records lost to a full ring, %llu "
			"path-policy violations)\n", t->printed,
			(unsigned long long)st.matched,
			(unsigned long long)st.limited,
			(unsigned long long)st.lost,
			(unsigned long long)st.violations);
	free(t);
	return err ? cli_fail(err) : 0;
}

/* ---- policies ---------------------------------------------------------- */

static int policy_add(int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *via = NULL;
	struct sl_ctx *ctx;
	int err;

	if (argc < 1 || argv[0][0] == '-')
		return cli_bad_usage("trace policy add: need a NAME");
	for (int i = 1; i < argc; i++) {
		const char **dst = !strcmp(argv[i], "--from") ? &from :
				   !strcmp(argv[i], "--to")   ? &to :
				   !strcmp(argv[i], "--via")  ? &via : NULL;

		if (!dst) {
			fprintf(stderr, "sluice: trace policy add: unknown word '%s'\n",
				argv[i]);
			return 2;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "sluice: trace policy add: %s needs a value\n",
				argv[i]);
			return 2;
		}
		*dst = argv[++i];
	}
	if (!from || !to || !via)
		return cli_bad_usage("trace policy add: need --from CIDR --to CIDR "
				     "--via INSTANCE");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = sl_path_policy_add(ctx, argv[0], from, to, via);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int policy_del(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return cli_bad_usage("trace policy del: need one NAME");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = sl_path_policy_del(ctx, argv[0]);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int policy_print(const struct sl_path_policy *p, void *arg)
{
	out_open_obj(NULL);
	out_str("name", "%s", p->name);
	out_str("from", " from %s", p->from);
	out_str("to", " to %s", p->to);
	out_str("via", " via %s", p->via);
	out_u64("via_slot", NULL, p->via_slot);
	out_close_obj();
	out_text("\n");
	return 0;
}

static int policy_list(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	if (argc)
		return cli_bad_usage("trace policy list: no arguments");
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	out_open_arr(NULL);
	err = sl_path_policy_foreach(ctx, policy_print, NULL);
	out_close_arr();
	out_done();
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int watch_status(void)
{
	struct sl_path_watch w;
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0);

	if (err)
		return cli_fail(err);
	err = sl_path_watch_get(ctx, &w);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	out_open_obj(NULL);
	out_bool("on", NULL, w.on);
	out_text("policy watching %s", w.on ? "on" : "off");
	out_u64("sample", w.on ? ": one packet in %llu" : NULL, w.sample ?: 1);
	out_u64("rate", w.on ? ", at most %llu/s" : NULL, w.rate);
	out_u64("burst", w.on ? " (burst %llu)" : NULL, w.burst);
	out_u64("checked", "; %llu packets checked", w.stats.matched - w.stats.limited);
	out_u64("limited", ", %llu over the rate", w.stats.limited);
	out_u64("violations", ", %llu violations\n", w.stats.violations);
	out_close_obj();
	out_done();
	return 0;
}

/* Parses `on [--sample N] [--rate PPS] [--burst N]`; 0, or 2 (usage). */
static int watch_opts(int argc, char **argv, long *sample, long *rate,
		      long *burst)
{
	for (int i = 1; i < argc; i += 2) {
		long *v = !strcmp(argv[i], "--sample") ? sample :
			  !strcmp(argv[i], "--rate")   ? rate :
			  !strcmp(argv[i], "--burst")  ? burst : NULL;

		if (!v || i + 1 >= argc)
			return cli_bad_usage("trace policy watch on: [--sample N] "
					     "[--rate PPS] [--burst N]");
		if (obs_num(argv[i], argv[i + 1], UINT32_MAX, v))
			return 2;
		/* As capture and trace: 0 is not "the default" in disguise. */
		if (!*v && v != sample) {
			fprintf(stderr, "sluice: %s: need a number above 0\n", argv[i]);
			return 2;
		}
	}
	return 0;
}

static int policy_watch(int argc, char **argv)
{
	long sample = 0, rate = 0, burst = 0;
	struct sl_ctx *ctx;
	bool on;
	int err;

	if (!argc)
		return watch_status();
	on = !strcmp(argv[0], "on");
	if (!on && (strcmp(argv[0], "off") || argc != 1))
		return cli_bad_usage("trace policy watch [on [--sample N] "
				     "[--rate PPS] [--burst N] | off]");
	if (on && watch_opts(argc, argv, &sample, &rate, &burst))
		return 2;
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = sl_path_watch_set(ctx, on, sample, rate, burst);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static const struct cmd policy_cmds[] = {
	{ "add", policy_add, " NAME --from CIDR --to CIDR --via INSTANCE", false },
	{ "del", policy_del, " NAME", false },
	{ "list", policy_list, "", false },
	{ "watch", policy_watch, " [on [--sample N] [--rate PPS] [--burst N] | off]"
	  "   (check policies with no trace running)", false },
	{}
};

static int do_trace(int argc, char **argv)
{
	if (argc && !strcmp(argv[0], "policy"))
		return cli_dispatch(policy_cmds, "trace policy ", argc - 1, argv + 1);
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fprintf(stderr, "Usage: sluice trace [--dev DEV] [--count N] "
				"[--duration SEC] [--sample N] [--rate PPS] "
				"[--burst N] [FILTER]\n"
				"       sluice trace policy add NAME --from CIDR "
				"--to CIDR --via INSTANCE | del NAME | list\n");
			return 0;
		}
	return trace_run(argc, argv);
}

CLI_COMMAND(trace_cmd, "trace", do_trace,
	    " [--dev DEV] [--count N] [--duration SEC] [--sample N] [--rate PPS]"
	    " [--burst N] [FILTER] | policy add|del|list",
	    true);
