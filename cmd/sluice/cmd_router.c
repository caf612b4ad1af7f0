// SPDX-License-Identifier: GPL-2.0
/* sluice router: the forwarding fast path (nf/router).
 *   sluice router attach DEV [--hook ingress|tc-ingress] [--name NAME]
 *   sluice router show NAME */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "sluice.h"
#include "router.h"
#include "out.h"
#include "client.h"
#include "cli.h"

static int router_attach(int argc, char **argv)
{
	const char *dev = NULL, *name = "router";
	enum sl_hook hook = SL_HOOK_XDP;
	struct sl_ctx *ctx = NULL;
	int err;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--hook") && i + 1 < argc) {
			if (sl_hook_parse(argv[++i], &hook) || hook == SL_HOOK_TC_OUT)
				return cli_bad_usage("--hook: ingress or tc-ingress (a router forwards what arrives)");
		} else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (argv[i][0] == '-' || dev) {
			fprintf(stderr, "sluice: router attach: unexpected '%s'\n", argv[i]);
			return 2;
		} else {
			dev = argv[i];
		}
	}
	if (!dev)
		return cli_bad_usage("router attach: need DEV");
	if (sl_ifindex(dev) < 0)
		return cli_fail(-ENODEV);
	if (cl_daemon()) {
		char path[256] = "/v1/routers/";
		json_t *body = json_pack("{s:s, s:s}", "dev", dev, "hook", sl_hook_name(hook));

		if (!body)
			return cli_bad_usage("out of memory");
		cl_escape(path + strlen(path), sizeof(path) - strlen(path), name);
		err = cl_call("PUT", path, body, NULL);
		json_decref(body);
	} else {
		err = sl_open(&ctx, SL_OPEN_WRITE);
		err = err ?: rt_attach(ctx, name, dev, hook);
		if (ctx)
			sl_close(ctx);
		err = err ? cli_fail(err) : 0;
	}
	if (!err && !out_json())
		printf("%s: forwarding fast path on %s %s\n", name, dev, sl_hook_name(hook));
	return err;
}

static int router_show(int argc, char **argv)
{
	struct rt_stats st;
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return cli_bad_usage("router show: need NAME");
	err = sl_open(&ctx, 0);
	if (err)
		return cli_fail(err);
	err = rt_stats_read(ctx, argv[0], &st);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	out_open_obj(NULL);
	out_str("name", "%s:", argv[0]);
	out_u64("forwarded", " %llu forwarded;", st.forwarded);
	out_u64("local", " left to the kernel: %llu local,", st.local);
	out_u64("no_neigh", " %llu unresolved next hop,", st.no_neigh);
	out_u64("frag_needed", " %llu over the MTU,", st.frag_needed);
	out_u64("ttl_expired", " %llu TTL expiring,", st.ttl_expired);
	out_u64("unroutable", " %llu unroutable,", st.unroutable);
	out_u64("other", " %llu other\n", st.other);
	out_close_obj();
	out_done();
	return 0;
}

static const struct cmd router_cmds[] = {
	{ "attach", router_attach, " DEV [--hook ingress|tc-ingress] [--name NAME]   (appends the fast path to DEV's chain; name 'router')" },
	{ "show", router_show, " NAME   (what it forwarded, and why it left the rest to the kernel)" },
	{},
};

static int do_router(int argc, char **argv)
{
	return cli_dispatch(router_cmds, "router ", argc, argv);
}

CLI_COMMAND(router_cmd, "router", do_router, " attach|show ...", true);
