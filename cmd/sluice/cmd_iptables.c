// SPDX-License-Identifier: GPL-2.0
/* sluice iptables import|save|flush: iptables-save rule sets on the
 * firewall NF (nf/firewall/iptables.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "out.h"
#include "sluice.h"
#include "iptables.h"

/* -4 / -6 anywhere; returns 0 when neither was given. */
static int family_flag(const char *a)
{
	return !strcmp(a, "-4") ? 4 : !strcmp(a, "-6") ? 6 : 0;
}

static int ipt_import_cmd(int argc, char **argv)
{
	const char **devs = calloc(argc + 1, sizeof(*devs));
	const char *path = NULL;
	struct ipt_table *t = NULL;
	struct sl_ctx *ctx;
	int ndevs = 0, family = 0, err;
	__u32 flat = 0;
	FILE *f;

	if (!devs)
		return cli_fail(-ENOMEM);
	for (int i = 0; i < argc; i++) {
		if (family_flag(argv[i])) {
			family = family_flag(argv[i]);
		} else if (!strcmp(argv[i], "--dev") && i + 1 < argc) {
			if (sl_ifindex(argv[i + 1]) < 0) {
				free(devs);
				return cli_fail(-ENODEV);
			}
			devs[ndevs++] = argv[++i];
		} else if (!path && (argv[i][0] != '-' || !strcmp(argv[i], "-"))) {
			path = argv[i];
		} else {
			free(devs);
			return cli_bad_usage("iptables import [-4|-6] [--dev DEV ...] FILE|-");
		}
	}
	if (!path) {
		free(devs);
		return cli_bad_usage("iptables import: need FILE (or - for standard input)");
	}
	f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f) {
		err = cli_fail(sl_err(-errno, "%s: %s", path, strerror(errno)));
		free(devs);
		return err;
	}
	/* Everything is parsed and checked before any state is touched. */
	err = ipt_parse(f, strcmp(path, "-") ? path : "<stdin>", family, &t);
	if (f != stdin)
		fclose(f);
	if (err) {
		free(devs);
		return cli_fail(err);
	}
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!err) {
		err = ipt_load(ctx, t, devs, ndevs, &flat);
		sl_close(ctx);
	}
	if (err) {
		err = cli_fail(err);
	} else {
		out_open_obj(NULL);
		out_u64("family", "IPv%llu:", ipt_table_family(t));
		out_u64("rules", " %llu rules imported", ipt_table_rules(t));
		out_u64("flat_rules", " (%llu flat rules in all families)\n", flat);
		out_close_obj();
		out_done();
	}
	ipt_table_free(t);
	free(devs);
	return err;
}

static int ipt_save_cmd(int argc, char **argv)
{
	bool counters = false;
	int family = 4, err;
	struct sl_ctx *ctx;
	char *text = NULL;
	size_t len = 0;
	FILE *mf;

	for (int i = 0; i < argc; i++) {
		if (family_flag(argv[i]))
			family = family_flag(argv[i]);
		else if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--counters"))
			counters = true;
		else
			return cli_bad_usage("iptables save [-4|-6] [-c]");
	}
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	mf = open_memstream(&text, &len);
	if (!mf) {
		sl_close(ctx);
		return cli_fail(-errno);
	}
	err = ipt_save(ctx, family, counters, mf);
	fclose(mf);
	sl_close(ctx);
	if (err) {
		free(text);
		return cli_fail(err);
	}
	if (out_json()) {
		out_open_obj(NULL);
		out_u64("family", NULL, family);
		out_str("text", NULL, text);
		out_close_obj();
		out_done();
	} else {
		fputs(text, stdout);
	}
	free(text);
	return 0;
}

static int ipt_flush_cmd(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	(void)argv;
	if (argc)
		return cli_bad_usage("iptables flush");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = ipt_flush(ctx);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static const struct cmd ipt_cmds[] = {
	{ "import", ipt_import_cmd, " [-4|-6] [--dev DEV ...] FILE|-", false },
	{ "save", ipt_save_cmd, " [-4|-6] [-c]", false },
	{ "flush", ipt_flush_cmd, "", false },
	{ NULL, NULL, NULL, false },
};

static int do_iptables(int argc, char **argv)
{
	return cli_dispatch(ipt_cmds, "iptables ", argc, argv);
}

CLI_COMMAND(iptables_cmd, "iptables", do_iptables,
	    " import|save|flush ... (iptables-save rule sets)", true);
