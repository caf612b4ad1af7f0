// SPDX-License-Identifier: GPL-2.0
/* sluice gc [--dry-run]: removes the pinned state of network namespaces
 * deleted without `sluice reset` (lib/gc.c says how "deleted" is decided).
 * Host-wide, so it runs here and not in a namespace's daemon. */
#include <stdio.h>
#include <string.h>
#include "sluice.h"
#include "out.h"
#include "cli.h"

static int print_dir(const char *dir, unsigned long long cookie, void *arg)
{
	bool dry_run = *(bool *)arg;

	out_open_obj(NULL);
	out_str("dir", dry_run ? "would remove %s" : "removed %s", dir);
	out_u64("netns_cookie", " (namespace cookie %llu)\n", cookie);
	out_close_obj();
	return 0;
}

static int do_gc(int argc, char **argv)
{
	bool dry_run = false;
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n"))
			dry_run = true;
		else
			return cli_bad_usage("gc: unexpected argument (usage: gc [--dry-run])");
	}
	out_open_arr(NULL);
	err = sl_gc(dry_run, print_dir, &dry_run);
	out_close_arr();
	out_done();
	return err ? cli_fail(err) : 0;
}

CLI_COMMAND(gc_cmd, "gc", do_gc,
	    " [--dry-run]   (removes the state of network namespaces that are gone)", false);
