/* SPDX-License-Identifier: GPL-2.0 */
/* What `sluice capture` and `sluice trace` share: their options (filter,
 * device, limits) and the loop that reads the ring until a limit. */
#ifndef SLUICE_OBS_CLI_H
#define SLUICE_OBS_CLI_H

#include <stdbool.h>
#include "sluice.h"
#include "observe.h"

struct obs_args {
	struct sl_obs_opts opts;
	long count; /* stop after this many packets; 0: no limit */
	long duration; /* seconds; 0: until interrupted */
	const char *file; /* capture: -w */
	const char *dev;
	/* Called once the session is open, before the first record: what
	 * must not happen when the session is refused (creating -w FILE). */
	int (*start)(void *arg);
};

/* Parses argv (options and filter words) into a; mode is set by the
 * caller for options it does not know (returns 1 then with *i on it).
 * Returns 0, or 2 after printing a usage error. */
int obs_parse(int argc, char **argv, struct obs_args *a,
	      int (*extra)(int argc, char **argv, int *i, struct obs_args *a));
/* Runs the session: polls until count (the callback returns -ECANCELED),
 * duration or a signal, then stops the data plane and reads what is left.
 * finish, if given, is called for each poll round (trace: flush stale). */
int obs_run(struct sl_ctx *ctx, struct obs_args *a, sl_obs_cb cb, void *arg,
	    void (*tick)(void *arg, bool last), struct sl_obs_stats *st);
/* A number option: 0..max. */
int obs_num(const char *opt, const char *s, long max, long *v);

#endif
