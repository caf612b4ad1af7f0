// SPDX-License-Identifier: GPL-2.0
/* sluice capture: packets the data plane drops (or every matching packet
 * with its verdict) written to a pcapng file, one comment per packet
 * naming the instance, its verdict or drop reason, the hook and the
 * interface. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include "cli.h"
#include "out.h"
#include "events.h"
#include "pcapng.h"
#include "obs_cli.h"

struct capture {
	const char *file;
	__u32 snaplen;
	struct sl_pcapng *pcap;
	struct sl_slot_names *names;
	__s64 rt_offset;
	long count, written;
	int err;
};

static void capture_comment(struct capture *c, const struct sl_cap_rec *r,
			    char *buf, size_t len)
{
	char inst[SL_NAME_MAX], dev[IF_NAMESIZE];
	const char *hook = sl_hook_name(r->hook), *reason;

	sl_slot_name(c->names, r->slot, inst);
	if (!if_indextoname(r->ifindex, dev))
		snprintf(dev, sizeof(dev), "if%u", r->ifindex);
	if (r->verdict < 0) {
		reason = sl_drop_reason_name(-r->verdict);
		snprintf(buf, len, "dropped by %s (%s) at %s on %s", inst,
			 reason ? reason : "unknown", hook, dev);
	} else if (r->verdict == SL_PASS) {
		snprintf(buf, len, "passed by %s at %s on %s", inst, hook, dev);
	} else if (r->verdict == SL_REDIRECT) {
		snprintf(buf, len, "redirected by %s at %s on %s", inst, hook, dev);
	} else {
		snprintf(buf, len, "passed (end of chain) after %s at %s on %s",
			 inst, hook, dev);
	}
}

static int capture_record(const void *rec, size_t size, void *arg)
{
	const struct sl_cap_rec *r = rec;
	struct capture *c = arg;
	char comment[160];
	int err;

	if (c->count && c->written >= c->count)
		return -ECANCELED;
	if (size < sizeof(*r) || r->type != SL_OBS_CAPTURE ||
	    size < sizeof(*r) + r->cap_len)
		return 0;
	capture_comment(c, r, comment, sizeof(comment));
	err = sl_pcapng_packet(c->pcap, r->ifindex, r->ts_ns + c->rt_offset,
			       r->data, r->cap_len, r->pkt_len, comment);
	if (err) {
		c->err = err;
		return err;
	}
	c->written++;
	return c->count && c->written >= c->count ? -ECANCELED : 0;
}

/* The file is made only once the session is ours: a refused capture (one
 * already running, perhaps writing this very file) leaves it alone. */
static int capture_start(void *arg)
{
	struct capture *c = arg;

	c->rt_offset = sl_obs_realtime_offset();
	return sl_pcapng_open(c->file, c->snaplen, &c->pcap);
}

static int capture_opt(int argc, char **argv, int *i, struct obs_args *a)
{
	const char *o = argv[*i];
	long v;

	if (!strcmp(o, "--drops")) {
		a->opts.mode = SL_OBS_MODE_DROPS;
		return 0;
	}
	if (!strcmp(o, "--all")) {
		a->opts.mode = SL_OBS_MODE_ALL;
		return 0;
	}
	if (strcmp(o, "-w") && strcmp(o, "--write") && strcmp(o, "--snaplen"))
		return 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "sluice: %s needs a value\n", o);
		return 2;
	}
	(*i)++;
	if (!strcmp(o, "--snaplen")) {
		if (obs_num(o, argv[*i], SL_CAPTURE_SNAPLEN_MAX, &v))
			return 2;
		if (v < 1) {
			fprintf(stderr, "sluice: --snaplen: need 1 to %d\n",
				SL_CAPTURE_SNAPLEN_MAX);
			return 2;
		}
		a->opts.snaplen = v;
		return 0;
	}
	a->file = argv[*i];
	return 0;
}

static void capture_summary(const struct obs_args *a, const struct capture *c,
			    const struct sl_obs_stats *st)
{
	if (!out_json()) {
		fprintf(stderr, "%ld packets written to %s (%llu matched, %llu over "
			"the rate limit, %llu lost to a full ring)\n", c->written,
			a->file, (unsigned long long)st->matched,
			(unsigned long long)st->limited, (unsigned long long)st->lost);
		return;
	}
	out_open_obj(NULL);
	out_str("file", NULL, a->file);
	out_u64("written", NULL, c->written);
	out_u64("matched", NULL, st->matched);
	out_u64("limited", NULL, st->limited);
	out_u64("emitted", NULL, st->emitted);
	out_u64("lost", NULL, st->lost);
	out_close_obj();
	out_done();
}

static int do_capture(int argc, char **argv)
{
	struct obs_args a = { .opts.mode = SL_OBS_MODE_DROPS };
	struct capture c = {};
	struct sl_obs_stats st;
	struct sl_ctx *ctx;
	int err;

	err = obs_parse(argc, argv, &a, capture_opt);
	if (err)
		return err;
	if (!a.file)
		return cli_bad_usage("capture: -w FILE is required (- for stdout)");
	if (out_json() && !strcmp(a.file, "-"))
		return cli_bad_usage("capture: --json and -w - both use stdout");
	c.count = a.count;
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	c.names = sl_slot_names_new(ctx);
	if (!c.names) {
		sl_close(ctx);
		return cli_fail(sl_err(-ENOMEM, "out of memory"));
	}
	c.file = a.file;
	c.snaplen = a.opts.snaplen ?: SL_CAPTURE_SNAPLEN_MAX;
	a.start = capture_start;
	err = obs_run(ctx, &a, capture_record, &c, NULL, &st);
	err = c.err ?: err;
	if (c.pcap && sl_pcapng_close(c.pcap) && !err)
		err = -EIO;
	sl_slot_names_free(c.names);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	capture_summary(&a, &c, &st);
	return 0;
}

CLI_COMMAND(capture_cmd, "capture", do_capture,
	    " [--drops|--all] [--dev DEV] -w FILE.pcapng [--count N] [--sample N]"
	    " [--snaplen N] [--duration SEC] [--rate PPS] [--burst N] [FILTER]\n"
	    "  FILTER: host|src|dst [net] ADDR[/LEN], net CIDR, port|sport|dport N,"
	    " proto tcp|udp|icmp|icmp6, joined by and / or",
	    false);
