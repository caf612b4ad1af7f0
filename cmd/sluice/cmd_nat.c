// SPDX-License-Identifier: GPL-2.0
/* sluice nat: SNAT, masquerade and DNAT rules, their mappings.
 * Writes go straight through libsluice under the writer lock, also when
 * sluiced runs (it holds no state of its own; its /v1/nat routes run the
 * same library calls). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include "sluice.h"
#include "nat.h"
#include "out.h"
#include "cli.h"

static const char *proto_name(__u8 proto, char *buf, size_t len)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
		return "icmp";
	case 58:
		return "icmpv6";
	}
	snprintf(buf, len, "%u", proto);
	return buf;
}

static void addr_str(__u8 family, const __u32 *a, char *buf, size_t len)
{
	inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, len);
}

static int nat_add(int argc, char **argv)
{
	struct nat_spec spec;
	struct sl_ctx *ctx;
	int err;

	if (argc < 2)
		return cli_bad_usage("nat add: need NAME and a kind (snat, masquerade, dnat)");
	/* Check the whole rule before touching any state. */
	err = nat_spec_make(&spec, argv[0], argc - 1, argv + 1);
	if (err)
		return cli_fail(err);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = nat_rule_add(ctx, &spec);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (!out_json())
		printf("nat rule %s added: %s\n", spec.name, spec.text);
	return 0;
}

static int nat_del(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return cli_bad_usage("nat del: need NAME");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = nat_rule_del(ctx, argv[0]);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int nat_reload_cmd(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int err;

	if (argc)
		return cli_bad_usage("nat reload: takes no arguments");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = nat_reload(ctx);
	sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

/* Opens the state for reading; *ctx NULL (and 0) when there is none. */
static int open_read(struct sl_ctx **ctx)
{
	int err = sl_open(ctx, 0);

	if (err == -ENOENT) {
		*ctx = NULL;
		return 0;
	}
	return err;
}

static void print_compiled(const struct nat_rule *r, const struct nat_counter *c)
{
	char dev[IF_NAMESIZE], lo[INET6_ADDRSTRLEN], hi[INET6_ADDRSTRLEN], buf[96];
	__u32 last[4];
	int w = r->family == 4 ? 0 : 3;

	if (!if_indextoname(r->ifindex, dev))
		snprintf(dev, sizeof(dev), "if%u", r->ifindex);
	memcpy(last, r->to_lo, 16);
	last[w] = htonl(ntohl(r->to_lo[w]) + r->naddrs - 1);
	addr_str(r->family, r->to_lo, lo, sizeof(lo));
	addr_str(r->family, last, hi, sizeof(hi));
	out_open_obj(NULL);
	out_str("kind", "    %s", nat_kind_name(r->kind));
	out_str("dev", " %s", dev);
	out_str("hook", " %s", r->kind == NAT_DNAT ? "tc-ingress" : "egress");
	out_u64("family", " ipv%llu", r->family);
	snprintf(buf, sizeof(buf), "%s%s%s", lo, r->naddrs > 1 ? "-" : "",
		 r->naddrs > 1 ? hi : "");
	out_str("to", " -> %s", buf);
	if (r->port_lo) {
		snprintf(buf, sizeof(buf), "%u-%u", r->port_lo, r->port_hi);
		out_str("ports", " ports %s", buf);
	}
	out_u64("flows", "  flows %llu", c->flows);
	out_u64("no_port", " no-port %llu", c->no_port);
	out_text("\n");
	out_close_obj();
}

static int nat_show(int argc, char **argv)
{
	struct nat_specs *specs = calloc(1, sizeof(*specs));
	struct nat_rule *rules = calloc(NAT_MAX_RULES, sizeof(*rules));
	struct nat_counter *cnt = calloc(NAT_MAX_RULES, sizeof(*cnt));
	struct sl_ctx *ctx = NULL;
	__u32 n = 0;
	int err = argc ? cli_bad_usage("nat show: takes no arguments") : 0;

	if (err)
		goto out;
	if (!specs || !rules || !cnt) {
		err = cli_fail(sl_err(-ENOMEM, "out of memory"));
		goto out;
	}
	err = open_read(&ctx);
	if (!err && ctx) {
		err = nat_read_specs(ctx, specs);
		if (err == -ENOENT)
			err = 0;
		else
			err = err ?: nat_read_rules(ctx, rules, cnt, &n);
	}
	if (err) {
		err = cli_fail(err);
		goto out;
	}
	out_open_arr(NULL);
	for (__u32 i = 0; i < specs->n; i++) {
		out_open_obj(NULL);
		out_str("name", "%s", specs->spec[i].name);
		out_str("rule", "  %s\n", specs->spec[i].text);
		out_open_arr("compiled");
		for (__u32 j = 0; j < n; j++)
			if (rules[j].spec == i)
				print_compiled(&rules[j], &cnt[j]);
		out_close_arr();
		out_close_obj();
	}
	out_close_arr();
	out_done();
out:
	if (ctx)
		sl_close(ctx);
	free(specs);
	free(rules);
	free(cnt);
	return err;
}

static void print_tuple(const char *key, const struct nat_key *k)
{
	char a[INET6_ADDRSTRLEN];

	out_open_obj(key);
	addr_str(k->family, k->saddr, a, sizeof(a));
	out_str("src", " %s", a);
	out_u64("sport", ":%llu", k->sport);
	addr_str(k->family, k->daddr, a, sizeof(a));
	out_str("dst", " -> %s", a);
	out_u64("dport", ":%llu", k->dport);
	out_close_obj();
}

static int print_mapping_cb(const struct nat_mapping *m, void *arg)
{
	static const char *const states[] = { "replied", "fin-orig", "fin-reply", "rst" };
	char dev[IF_NAMESIZE], pbuf[8];

	(*(int *)arg)++;
	if (!if_indextoname(m->ifindex, dev))
		snprintf(dev, sizeof(dev), "if%u", m->ifindex);
	out_open_obj(NULL);
	out_str("kind", "%s", m->kind == NAT_DNAT ? "dnat" : "snat");
	out_u64("family", " ipv%llu", m->orig.family);
	out_str("proto", " %s", proto_name(m->orig.proto, pbuf, sizeof(pbuf)));
	print_tuple("orig", &m->orig);
	out_text(" as");
	print_tuple("translated", &m->xlat);
	out_str("dev", " dev %s", dev);
	out_u64("expires", " expires %llus", (m->expires_in_ns + 999999999ULL) / 1000000000ULL);
	out_open_arr("state");
	for (int i = 0; i < 4; i++)
		if (m->state & (1 << i))
			out_str(NULL, " [%s]", states[i]);
	out_close_arr();
	out_text("\n");
	out_close_obj();
	return 0;
}

static int nat_mappings(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int count = 0, err;

	if (argc)
		return cli_bad_usage("nat mappings: takes no arguments");
	err = open_read(&ctx);
	if (err)
		return cli_fail(err);
	out_open_arr(NULL);
	if (ctx)
		err = nat_mappings_foreach(ctx, print_mapping_cb, &count);
	out_close_arr();
	out_done();
	if (ctx)
		sl_close(ctx);
	return err ? cli_fail(err) : 0;
}

static int nat_flush_cmd(int argc, char **argv)
{
	struct sl_ctx *ctx;
	int n, err;

	if (argc)
		return cli_bad_usage("nat flush: takes no arguments");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	n = nat_flush(ctx);
	sl_close(ctx);
	out_open_obj(NULL);
	out_u64("flushed", "%llu mappings flushed\n", n);
	out_close_obj();
	out_done();
	return 0;
}

/* nat attach|detach DEV: the XDP fast path's placement. */
static int nat_xdp_place(int argc, char **argv, bool attach)
{
	struct sl_ctx *ctx;
	int err;

	if (argc != 1)
		return cli_bad_usage(attach ? "nat attach: need DEV" : "nat detach: need DEV");
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err)
		return cli_fail(err);
	err = attach ? nat_attach(ctx, argv[0]) : nat_detach(ctx, argv[0]);
	sl_close(ctx);
	if (err)
		return cli_fail(err);
	if (!out_json())
		printf("nat %s %s ingress (XDP)\n", attach ? "on" : "off", argv[0]);
	return 0;
}

static int nat_attach_cmd(int argc, char **argv)
{
	return nat_xdp_place(argc, argv, true);
}

static int nat_detach_cmd(int argc, char **argv)
{
	return nat_xdp_place(argc, argv, false);
}

static const struct cmd nat_cmds[] = {
	{ "add", nat_add,
	  " NAME snat --out DEV --to ADDR[-ADDR] [--ports LO-HI] [MATCH...]\n"
	  "  sluice nat add NAME masquerade --out DEV [--ports LO-HI] [MATCH...]\n"
	  "  sluice nat add NAME dnat --in DEV --to ADDR[-ADDR][:PORT[-PORT]] [MATCH...]\n"
	  "      MATCH: --src CIDR --dst CIDR --proto tcp|udp|icmp|icmpv6|N --dport P[-P]" },
	{ "del", nat_del, " NAME" },
	{ "attach", nat_attach_cmd, " DEV   (XDP ingress, before the router: the fast path)" },
	{ "detach", nat_detach_cmd, " DEV" },
	{ "show", nat_show, "   (rules, what they translate to, flow counters)" },
	{ "mappings", nat_mappings, "   (live translations, as conntrack -L)" },
	{ "flush", nat_flush_cmd, "   (forget every mapping)" },
	{ "reload", nat_reload_cmd, "   (compile the rules again: new masquerade addresses)" },
	{ NULL },
};

static int do_nat(int argc, char **argv)
{
	return cli_dispatch(nat_cmds, "nat ", argc, argv);
}

CLI_COMMAND(nat_cmd, "nat", do_nat, " add|del|attach|detach|show|mappings|flush|reload ...", true);
