// SPDX-License-Identifier: GPL-2.0
/* Options and the reading loop shared by `sluice capture` and `sluice
 * trace` (obs_cli.h). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "obs_cli.h"

static volatile sig_atomic_t obs_stop;

static void obs_signal(int sig)
{
	(void)sig;
	obs_stop = 1;
}

int obs_num(const char *opt, const char *s, long max, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	if (errno || *end || end == s || *v < 0 || *v > max) {
		fprintf(stderr, "sluice: %s: need a number from 0 to %ld\n", opt, max);
		return -EINVAL;
	}
	return 0;
}

/* Options with a value common to both commands; 1 when not one of them. */
static int common_opt(int argc, char **argv, int *i, struct obs_args *a)
{
	const char *o = argv[*i];
	long v;

	if (strcmp(o, "--dev") && strcmp(o, "--count") && strcmp(o, "--sample") &&
	    strcmp(o, "--duration") && strcmp(o, "--rate") && strcmp(o, "--burst"))
		return 1;
	if (*i + 1 >= argc) {
		fprintf(stderr, "sluice: %s needs a value\n", o);
		return 2;
	}
	(*i)++;
	if (!strcmp(o, "--dev")) {
		int ifindex = sl_ifindex(argv[*i]);

		if (ifindex < 0) {
			fprintf(stderr, "sluice: --dev %s: %s\n", argv[*i], sl_errmsg());
			return 2;
		}
		a->dev = argv[*i];
		a->opts.ifindex = ifindex;
		return 0;
	}
	if (obs_num(o, argv[*i], !strcmp(o, "--count") ? LONG_MAX :
		    !strcmp(o, "--duration") ? 86400L * 365 : UINT32_MAX, &v))
		return 2;
	if (!strcmp(o, "--count"))
		a->count = v;
	else if (!strcmp(o, "--duration"))
		a->duration = v;
	else if (!strcmp(o, "--sample"))
		a->opts.sample = v;
	else if (!strcmp(o, "--rate") && v)
		a->opts.rate = v;
	else if (!strcmp(o, "--burst") && v)
		a->opts.burst = v;
	else {
		fprintf(stderr, "sluice: %s: need a number above 0\n", o);
		return 2;
	}
	return 0;
}

int obs_parse(int argc, char **argv, struct obs_args *a,
	      int (*extra)(int argc, char **argv, int *i, struct obs_args *a))
{
	char **words = calloc(argc + 1, sizeof(*words));
	int nwords = 0, ret = 0;

	if (!words)
		return cli_bad_usage("out of memory");
	for (int i = 0; i < argc && !ret; i++) {
		if (argv[i][0] != '-') {
			words[nwords++] = argv[i];
			continue;
		}
		ret = common_opt(argc, argv, &i, a);
		if (ret == 1)
			ret = extra(argc, argv, &i, a);
		if (ret == 1) {
			fprintf(stderr, "sluice: unknown option '%s'; try -h\n", argv[i]);
			ret = 2;
		}
	}
	if (!ret && sl_filter_parse(nwords, words, &a->opts.filter)) {
		fprintf(stderr, "sluice: %s\n", sl_errmsg());
		ret = 2;
	}
	free(words);
	return ret;
}

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int obs_run(struct sl_ctx *ctx, struct obs_args *a, sl_obs_cb cb, void *arg,
	    void (*tick)(void *arg, bool last), struct sl_obs_stats *st)
{
	struct sigaction sa = { .sa_handler = obs_signal };
	__u64 deadline = a->duration ? now_ms() + a->duration * 1000 : 0;
	struct sl_obs *obs;
	int err, ret = 0;

	err = sl_obs_open(ctx, &a->opts, cb, arg, &obs);
	if (err)
		return err;
	err = a->start ? a->start(arg) : 0;
	if (err) {
		sl_obs_close(obs);
		return err;
	}
	sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: the wait ends */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A reader of -w - that goes away is a write error, not a death that
	 * would leave the data plane's flag on. */
	signal(SIGPIPE, SIG_IGN);
	/* As tcpdump's "listening on": scripts wait for this line. */
	fprintf(stderr, "sluice: %s started on %s\n",
		a->opts.mode == SL_OBS_MODE_TRACE ? "trace" : "capture",
		a->dev ? a->dev : "every interface");
	while (!obs_stop) {
		int wait = 100;

		if (deadline) {
			__u64 now = now_ms();

			if (now >= deadline)
				break;
			if (deadline - now < (__u64)wait)
				wait = deadline - now;
		}
		err = sl_obs_poll(obs, wait);
		if (tick)
			tick(arg, false);
		if (err == -ECANCELED)
			break; /* --count reached */
		if (err < 0) {
			ret = err;
			break;
		}
	}
	/* Off first, then what the data plane wrote before it saw that. */
	err = sl_obs_stop(obs);
	ret = ret ?: err;
	if (!ret) {
		err = sl_obs_poll(obs, 0);
		if (err < 0 && err != -ECANCELED)
			ret = err;
	}
	if (tick)
		tick(arg, true);
	err = sl_obs_stats(obs, st);
	ret = ret ?: err;
	sl_obs_close(obs);
	return ret;
}
