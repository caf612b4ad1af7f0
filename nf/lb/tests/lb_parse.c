// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the load balancer's parsers, no kernel state: endpoints,
 * ipvsadm operations (accepted and refused, with the message), the model
 * edits, ipvsadm-save parsing (all or nothing, line numbers) and the
 * Maglev builder's limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "sluice.h"
#include "lb.h"
#include "check.h"

static int parse_words(const char *text, struct lb_op *op)
{
	char *copy = strdup(text), *argv[32], *save = NULL;
	int argc = 0, err;

	for (char *w = strtok_r(copy, " ", &save); w && argc < 32; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	err = lb_op_parse(argc, argv, op);
	free(copy);
	return err;
}

static void endpoints(void)
{
	__u8 fam, addr[16];
	__u16 port;
	char buf[64];

	CHECK(!lb_parse_endpoint("10.1.2.3:80", true, &fam, addr, &port) && fam == 4 &&
	      port == 80 && addr[0] == 10 && addr[3] == 3, "endpoint: ipv4 with port");
	CHECK(!lb_parse_endpoint("[2001:db8::1]:443", true, &fam, addr, &port) && fam == 6 &&
	      port == 443 && addr[15] == 1, "endpoint: [ipv6]:port");
	CHECK(!lb_parse_endpoint("2001:db8::1", false, &fam, addr, &port) && fam == 6 && !port,
	      "endpoint: bare ipv6 without a port");
	CHECK(lb_parse_endpoint("10.1.2.3", true, &fam, addr, &port) == -EINVAL &&
	      strstr(sl_errmsg(), "needs a port"), "endpoint: a service needs a port");
	CHECK(lb_parse_endpoint("10.1.2.3:0", true, &fam, addr, &port) == -EINVAL,
	      "endpoint: port 0 refused");
	CHECK(lb_parse_endpoint("10.1.2.3:65536", true, &fam, addr, &port) == -EINVAL,
	      "endpoint: port 65536 refused");
	CHECK(lb_parse_endpoint("host:80", true, &fam, addr, &port) == -EINVAL,
	      "endpoint: names refused");
	CHECK(lb_parse_endpoint("[2001:db8::1:80", true, &fam, addr, &port) == -EINVAL,
	      "endpoint: unclosed bracket refused");
	lb_parse_endpoint("[2001:db8::1]:443", true, &fam, addr, &port);
	lb_format_endpoint(fam, addr, port, buf, sizeof(buf));
	CHECK(!strcmp(buf, "[2001:db8::1]:443"), "endpoint: formatted back");
}

struct refusal {
	const char *words, *msg;
};

static const struct refusal refusals[] = {
	{ "-A -t 10.0.0.1:80 -s wlc", "scheduler 'wlc' is not supported" },
	{ "-A -t 10.0.0.1:80 -p 300", "option '-p' is not supported" },
	{ "-A -t 10.0.0.1:80 --frob", "unknown option '--frob'" },
	{ "-A", "-A needs a service" },
	{ "-A -E -t 10.0.0.1:80", "only one command" },
	{ "-t 10.0.0.1:80", "no command" },
	{ "-a -t 10.0.0.1:80", "-a needs a backend" },
	{ "-a -t 10.0.0.1:80 -r 10.0.0.2 -s rr", "-s and --mh-size belong to -A/-E" },
	{ "-A -t 10.0.0.1:80 -r 10.0.0.2", "belong to -a/-e/-d" },
	{ "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536", "bad value '65536'" },
	{ "-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g", "one forwarding method only" },
	{ "-d -t 10.0.0.1:80 -r 10.0.0.2 -w 3", "-d takes no other option" },
	{ "-C -t 10.0.0.1:80", "-C takes no service" },
	{ "-A -t 10.0.0.1:80 -s", "needs a value" },
};

static void operations(void)
{
	struct lb_op op;
	char name[160];

	CHECK(!parse_words("-A -t 10.0.0.1:80 -s wrr", &op) && op.cmd == 'A' &&
	      op.svc.proto == IPPROTO_TCP && op.sconf.sched == LB_SCHED_WRR && op.has_sched,
	      "op: -A -t -s wrr");
	CHECK(!parse_words("--add-server --udp-service [fd00::1]:53 --real-server [fd00::2]:5353 --ipip --weight 7",
			   &op) && op.cmd == 'a' && op.svc.proto == IPPROTO_UDP &&
	      op.bconf.fwd == LB_FWD_IPIP && op.bconf.weight == 7 && op.be.port == 5353,
	      "op: long options");
	CHECK(!parse_words("-A -t 10.0.0.1:80 -s mh --mh-size 16381", &op) &&
	      op.sconf.mh_size == 16381, "op: --mh-size");
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		int err = parse_words(refusals[i].words, &op);

		snprintf(name, sizeof(name), "op refused: %s (%s)", refusals[i].words,
			 err ? sl_errmsg() : "accepted");
		CHECK(err && strstr(sl_errmsg(), refusals[i].msg), name);
	}
}

static int apply_words(struct lb_conf *c, const char *words)
{
	struct lb_op op;

	return parse_words(words, &op) ?: lb_op_apply(c, &op);
}

static void model(void)
{
	struct lb_conf c = {};

	CHECK(!apply_words(&c, "-A -t 10.0.0.1:80") && c.n == 1 &&
	      c.svcs[0].conf.sched == LB_SCHED_MH && c.svcs[0].conf.mh_size == LB_MH_DEFAULT,
	      "model: -A defaults to mh, M 4093");
	CHECK(!apply_words(&c, "-a -t 10.0.0.1:80 -r 10.0.0.2") && c.svcs[0].nbackends == 1 &&
	      c.svcs[0].backends[0].addr.port == 80 &&
	      c.svcs[0].backends[0].conf.fwd == LB_FWD_MAC &&
	      c.svcs[0].backends[0].conf.weight == 1 && c.svcs[0].backends[0].up,
	      "model: -a defaults as ipvsadm (service port, -g, weight 1, up)");
	CHECK(apply_words(&c, "-a -t 10.0.0.1:80 -r 10.0.0.2:80") == -EEXIST,
	      "model: the same backend twice is refused");
	CHECK(apply_words(&c, "-a -t 10.0.0.1:80 -r [fd00::2]:80") == -EINVAL &&
	      strstr(sl_errmsg(), "address family"), "model: a backend of the other family is refused");
	CHECK(!apply_words(&c, "-e -t 10.0.0.1:80 -r 10.0.0.2 -w 0") &&
	      c.svcs[0].backends[0].conf.weight == 0 && c.svcs[0].backends[0].conf.fwd == LB_FWD_MAC,
	      "model: -e changes the weight, keeps the method");
	CHECK(apply_words(&c, "-e -t 10.0.0.1:80 -r 10.0.0.3 -w 0") == -ENOENT,
	      "model: editing an unknown backend is ENOENT");
	CHECK(!apply_words(&c, "-E -t 10.0.0.1:80 -s rr") && c.svcs[0].conf.sched == LB_SCHED_RR,
	      "model: -E changes the scheduler");
	CHECK(!apply_words(&c, "-d -t 10.0.0.1:80 -r 10.0.0.2") && !c.svcs[0].nbackends,
	      "model: -d removes the backend");
	CHECK(apply_words(&c, "-D -t 10.0.0.9:80") == -ENOENT, "model: -D of no service is ENOENT");
	CHECK(!apply_words(&c, "-D -t 10.0.0.1:80") && !c.n, "model: -D removes the service");
	lb_conf_free(&c);
}

static void restore(void)
{
	static const char good[] =
		"# saved\n"
		"-A -t 10.0.0.1:80 -s rr\n"
		"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 2\n"
		"\n"
		"-A -u [fd00::1]:53 -s mh --mh-size 16381\n"
		"-a -u [fd00::1]:53 -r [fd00::2]:53 -i -w 1   # trailing comment\n";
	static const char bad[] =
		"-C\n"
		"-A -t 10.0.0.7:80 -s rr\n"
		"-a -t 10.0.0.7:80 -r 10.0.1.1 -q\n";
	struct lb_conf c = {};
	FILE *f = fmemopen((void *)good, strlen(good), "r");
	int err = lb_restore_parse(f, "good", &c);

	fclose(f);
	CHECK(!err && c.n == 2 && c.svcs[0].nbackends == 1 && c.svcs[1].conf.mh_size == 16381 &&
	      c.svcs[1].backends[0].conf.fwd == LB_FWD_IPIP, "restore: a saved file parses");
	f = fmemopen((void *)bad, strlen(bad), "r");
	err = lb_restore_parse(f, "bad", &c);
	fclose(f);
	CHECK(err && strstr(sl_errmsg(), "bad:3: unknown option '-q'"),
	      "restore: the error names the file and line 3");
	CHECK(c.n == 2 && c.svcs[0].nbackends == 1, "restore: a refused file leaves the model as it was (even its -C)");
	lb_conf_free(&c);
}

static void maglev_limits(void)
{
	static __u32 t[LB_MH_DEFAULT];
	const char *names[3] = { "a", "b", "c" };
	__u32 w[3] = { 1, 0, 1 }, cnt[3] = {};

	CHECK(!lb_maglev_build(names, w, 3, LB_MH_DEFAULT, t), "maglev: builds");
	for (int j = 0; j < LB_MH_DEFAULT; j++)
		cnt[t[j] < 3 ? t[j] : 1]++;
	CHECK(cnt[1] == 0 && cnt[0] + cnt[2] == LB_MH_DEFAULT,
	      "maglev: a weight-0 backend gets no entry, every entry is filled");
}

int main(void)
{
	endpoints();
	operations();
	model();
	restore();
	maglev_limits();
	return check_exit();
}
