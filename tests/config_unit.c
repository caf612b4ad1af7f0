// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the declarative configuration parser (lib/config.c): valid
 * documents, every kind of error with its line and field path, and the
 * write -> parse round trip. Built with AddressSanitizer and UBSan; touches
 * no kernel state (chains name "lo", which every namespace has). */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "check.h"

static struct sl_config *parse(const char *doc, int *err)
{
	struct sl_config *cfg = NULL;

	*err = sl_config_parse(doc, strlen(doc), "t.yaml", &cfg);
	return cfg;
}

static char *write_doc(const struct sl_config *cfg, bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	if (sl_config_write(cfg, f, json)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

static const char example[] =
	"# the example of docs/config.md\n"
	"firewalls:\n"
	"  web-in:\n"
	"    default: drop\n"
	"    rules:\n"
	"      - accept proto tcp dport 80-443\n"
	"      - accept proto icmp\n"
	"      - drop src 10.0.0.0/8 proto udp\n"
	"  a-first: {}\n"
	"  empty:\n"
	"chains:\n"
	"  - dev: lo\n"
	"    hook: ingress        # ingress | tc-ingress | egress\n"
	"    instances: [web-in]\n"
	"  - dev: lo\n"
	"    hook: egress\n"
	"    instances:\n"
	"      - a-first\n"
	"      - web-in\n"
	"  - dev: lo\n"
	"    hook: tc-ingress\n"
	"    instances: []\n";

static bool same_config(const struct sl_config *a, const struct sl_config *b)
{
	char x[1024], y[1024];

	if (a->nfws != b->nfws || a->nchains != b->nchains)
		return false;
	for (__u32 i = 0; i < a->nfws; i++) {
		const struct fw_ruleset *p = &a->fws[i].rs, *q = &b->fws[i].rs;

		if (strcmp(a->fws[i].name, b->fws[i].name) || p->n != q->n ||
		    p->default_action != q->default_action)
			return false;
		for (__u32 r = 0; r < p->n; r++) {
			fw_rule_format(&p->rules[r], x, sizeof(x));
			fw_rule_format(&q->rules[r], y, sizeof(y));
			if (strcmp(x, y))
				return false;
		}
	}
	for (__u32 i = 0; i < a->nchains; i++) {
		const struct sl_config_chain *p = &a->chains[i], *q = &b->chains[i];

		if (p->ifindex != q->ifindex || p->hook != q->hook || p->n != q->n)
			return false;
		for (__u32 j = 0; j < p->n; j++)
			if (strcmp(p->names[j], q->names[j]))
				return false;
	}
	return true;
}

static void test_valid(void)
{
	struct sl_config *cfg, *back;
	char *out;
	int err;

	cfg = parse(example, &err);
	if (!check_report(!err && cfg, "example parses", err ? sl_errmsg() : NULL))
		return;
	CHECK(cfg->nfws == 3, "three firewalls");
	CHECK(!strcmp(cfg->fws[0].name, "a-first") && !strcmp(cfg->fws[1].name, "empty") &&
	      !strcmp(cfg->fws[2].name, "web-in"), "firewalls sorted by name");
	CHECK(cfg->fws[2].rs.n == 3 && cfg->fws[2].rs.default_action == FW_DROP,
	      "web-in: 3 rules, default drop");
	CHECK(cfg->fws[2].line == 3, "web-in defined on line 3");
	CHECK(cfg->fws[0].rs.n == 0 && cfg->fws[0].rs.default_action == FW_ACCEPT,
	      "{}: no rules, default accept");
	CHECK(cfg->fws[1].rs.n == 0 && cfg->fws[1].rs.default_action == FW_ACCEPT,
	      "null firewall: no rules, default accept");
	CHECK(cfg->nchains == 3, "three chains");
	CHECK(cfg->chains[0].hook == SL_HOOK_XDP && cfg->chains[0].n == 1 &&
	      cfg->chains[0].ifindex > 0, "chain 0: lo ingress web-in");
	CHECK(cfg->chains[1].hook == SL_HOOK_TC_OUT && cfg->chains[1].n == 2 &&
	      !strcmp(cfg->chains[1].names[0], "a-first"), "chain 1: lo egress, in order");
	CHECK(cfg->chains[2].hook == SL_HOOK_TC_IN && cfg->chains[2].n == 0,
	      "chain 2: empty list");

	for (int json = 0; json < 2; json++) {
		out = write_doc(cfg, json);
		if (!check_report(out != NULL, json ? "write JSON" : "write YAML", sl_errmsg()))
			continue;
		back = parse(out, &err);
		check_report(!err && back && same_config(cfg, back),
			     json ? "JSON round trip" : "YAML round trip", err ? sl_errmsg() : out);
		if (back) {
			char *again = write_doc(back, json);

			CHECK(again && !strcmp(again, out), json ? "JSON written twice is identical"
								: "YAML written twice is identical");
			free(again);
		}
		sl_config_free(back);
		free(out);
	}
	sl_config_free(cfg);

	/* Smaller forms. */
	static const char *const ok[] = {
		"firewalls: {}\n",
		"{}\n",
		"version: 1\nchains: []\nfirewalls:\n",
		"{\"firewalls\": {\"a\": {\"default\": \"drop\", \"rules\": [\"accept proto icmp\"]}},"
		" \"chains\": [{\"dev\": \"lo\", \"hook\": \"egress\", \"instances\": [\"a\"]}]}\n",
		"firewalls:\n  a:\n    rules:\n      - default drop\n      - accept proto icmp\n",
		"chains:\n  - dev: lo\n    instances: [f]\nfirewalls: {f: {rules: [\"drop src !192.168.0.0/16\"]}}\n",
		"firewalls: {a: {rules: ['accept proto tcp dport 22', \"drop\"]}}\n",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char name[128];

		cfg = parse(ok[i], &err);
		snprintf(name, sizeof(name), "valid document %zu", i);
		check_report(!err && cfg, name, err ? sl_errmsg() : NULL);
		sl_config_free(cfg);
	}
	cfg = parse(ok[4], &err);
	CHECK(cfg && cfg->fws[0].rs.default_action == FW_DROP && cfg->fws[0].rs.n == 1,
	      "a 'default drop' line in rules sets the default");
	sl_config_free(cfg);
	cfg = parse(ok[5], &err);
	CHECK(cfg && cfg->chains[0].hook == SL_HOOK_XDP, "hook defaults to ingress");
	CHECK(cfg && cfg->fws[0].rs.rules[0].neg, "negated source kept");
	sl_config_free(cfg);
}

struct bad_case {
	const char *doc;
	const char *msg; /* the whole error, or a prefix of it ending in '*' */
};

static const struct bad_case bad[] = {
	{ "", "t.yaml:1: empty document (write 'firewalls: {}' to remove every instance)" },
	{ "# only a comment\n", "t.yaml:1: empty document*" },
	{ "[1, 2]\n", "t.yaml:1: expected a mapping (version, firewalls, conntrack, flowmon, router, httpmon, lb, nat, chains), found a list" },
	{ "firewall: {}\n", "t.yaml:1: unknown key 'firewall' (version, firewalls, conntrack, flowmon, router, httpmon, lb, nat, chains)" },
	{ "version: 2\n", "t.yaml:1: version: this sluice reads version 1" },
	{ "firewalls: [a]\n", "t.yaml:1: firewalls: expected a mapping of names to firewalls, found a list" },
	{ "firewalls:\n  a: {}\n  b: {}\n  a: {}\n", "t.yaml:4: firewalls: 'a' given twice (first on line 2)" },
	{ "firewalls: {a: {}}\nfirewalls: {}\n", "t.yaml:2: 'firewalls' given twice (first on line 1)" },
	{ "firewalls:\n  a.b: {}\n", "t.yaml:2: firewalls: bad firewall name 'a.b'*" },
	{ "firewalls:\n  abcdefghijabcdefghijabcdefghijab: {}\n", "t.yaml:2: firewalls: bad firewall name*" },
	{ "firewalls:\n  a: [accept]\n", "t.yaml:2: firewalls.a: expected a mapping (default, rules), found a list" },
	{ "firewalls:\n  a:\n    rule: []\n", "t.yaml:3: firewalls.a: unknown key 'rule' (default, rules)" },
	{ "firewalls:\n  a:\n    default: reject\n", "t.yaml:3: firewalls.a.default: 'reject' is not accept or drop" },
	{ "firewalls:\n  a:\n    default: [drop]\n", "t.yaml:3: firewalls.a.default: expected accept or drop, found a list" },
	{ "firewalls:\n  a:\n    rules: accept\n", "t.yaml:3: firewalls.a.rules: expected a list of rules, found a string" },
	{ "firewalls:\n  web-in:\n    rules:\n      - accept proto icmp\n      - accept proto tcp dport 80-x\n",
	  "t.yaml:5: firewalls.web-in.rules[1]: dport: bad port or range '80-x'*" },
	{ "firewalls:\n  a:\n    rules:\n      - {accept: 1}\n",
	  "t.yaml:4: firewalls.a.rules[0]: expected a rule (a rule-file line), found a mapping" },
	{ "firewalls:\n  a:\n    rules:\n      -\n", "t.yaml:4: firewalls.a.rules[0]: expected a rule (a rule-file line), found nothing" },
	{ "firewalls:\n  a:\n    rules:\n      - reject\n", "t.yaml:4: firewalls.a.rules[0]: unknown action 'reject' (accept or drop)" },
	{ "firewalls:\n  a:\n    rules:\n      - drop iif veth-nope9\n", "t.yaml:4: firewalls.a.rules[0]: iif: no interface 'veth-nope9'" },
	{ "firewalls:\n  a:\n    rules:\n      - \"accept\\nproto tcp\"\n", "t.yaml:4: firewalls.a.rules[0]: a rule is one line" },
	{ "firewalls:\n  a:\n    rules:\n      - \"drop\\0 x\"\n", "t.yaml:4: firewalls.a.rules[0]: NUL character in a string" },
	{ "firewalls:\n  a:\n    default: drop\n    rules: [default accept]\n",
	  "t.yaml:4: firewalls.a.rules[0]: a second default (the 'default' key or line)" },
	{ "firewalls:\n  a:\n    rules: [default maybe]\n", "t.yaml:3: firewalls.a.rules[0]: default: not accept or drop" },
	{ "chains: {dev: lo}\n", "t.yaml:1: chains: expected a list of chains, found a mapping" },
	{ "chains:\n  - lo\n", "t.yaml:2: chains[0]: expected a mapping (dev, hook, instances), found a string" },
	{ "chains:\n  - hook: ingress\n    instances: []\n", "t.yaml:2: chains[0]: missing key 'dev'" },
	{ "chains:\n  - dev: lo\n", "t.yaml:2: chains[0]: missing key 'instances' (write [] for no chain)" },
	{ "chains:\n  - dev: veth9\n    instances: []\n", "t.yaml:2: chains[0].dev: no interface 'veth9'" },
	{ "chains:\n  - dev: abcdefghijklmnopq\n    instances: []\n", "t.yaml:2: chains[0].dev: 'abcdefghijklmnopq' is not an interface name" },
	{ "chains:\n  - dev: lo\n    hook: xdp\n    instances: []\n", "t.yaml:3: chains[0].hook: unknown hook 'xdp' (ingress, tc-ingress, egress)" },
	{ "chains:\n  - dev: lo\n    instances: []\n    devs: x\n", "t.yaml:4: chains[0]: unknown key 'devs' (dev, hook, instances)" },
	{ "chains:\n  - dev: lo\n    instances: fw\n", "t.yaml:3: chains[0].instances: expected a list of instance names, found a string" },
	{ "firewalls: {a: {}}\nchains:\n  - dev: lo\n    instances:\n      - a\n      - b\n",
	  "t.yaml:6: chains[0].instances[1]: no instance 'b' in this document (under firewalls, conntrack, flowmon, router, httpmon, lb or nat)" },
	{ "firewalls: {a: {}}\nchains:\n  - dev: lo\n    instances: [a, a]\n",
	  "t.yaml:4: chains[0].instances[1]: 'a' appears twice in the chain" },
	{ "firewalls: {a: {}}\nchains:\n  - dev: lo\n    instances: [a]\n  - dev: lo\n    hook: ingress\n    instances: []\n",
	  "t.yaml:5: chains[1]: a second chain for lo ingress (first on line 3)" },
	{ "firewalls:\n  a: &r {}\n  b: *r\n", "t.yaml:3: firewalls.b: aliases (*name) are not supported; write the value out" },
	{ "firewalls: {a: {}}\nchains:\n  - dev: lo\n    instances: [a, a1, a2, a3, a4, a5, a6, a7, a8, a9, b0, b1, b2, b3, b4, b5, b6]\n",
	  "t.yaml:4: chains[0].instances[1]: no instance 'a1'*" },
	{ "firewalls: {a: {}\n", "t.yaml:2: did not find expected ',' or '}' while parsing a flow mapping" },
	{ "firewalls:\n  a: {}\n---\nchains: []\n", "t.yaml:3: a second document ('---'): write one document" },
	{ "? [a]\n: 1\n", "t.yaml:1: a key must be a string, found a list" },
	{ "firewalls:\n  \"\\x01x\": {}\n", "t.yaml:2: firewalls: bad firewall name '?x'*" },
	/* other NF types */
	{ "conntrack: [ct]\n", "t.yaml:1: conntrack: expected a mapping of names to conntrack instances, found a list" },
	{ "conntrack:\n  ct:\n    sise: 1024\n", "t.yaml:3: conntrack.ct: unknown key 'sise' (size, tcp, drop_invalid, gc_interval_ms, timeouts)" },
	{ "conntrack:\n  ct:\n    size: 100\n", "t.yaml:3: conntrack.ct.size: '100': need a number from 1024 to 16777216" },
	{ "conntrack:\n  ct:\n    size: 0x1000\n", "t.yaml:3: conntrack.ct.size: '0x1000': need a number*" },
	{ "conntrack:\n  ct:\n    tcp: lax\n", "t.yaml:3: conntrack.ct.tcp: 'lax' is not loose or strict" },
	{ "conntrack:\n  ct:\n    drop_invalid: yes\n", "t.yaml:3: conntrack.ct.drop_invalid: 'yes' is not true or false" },
	{ "conntrack:\n  ct:\n    gc_interval_ms: 5\n", "t.yaml:3: conntrack.ct.gc_interval_ms: '5': need a number from 10 to 3600000" },
	{ "conntrack:\n  ct:\n    timeouts:\n      udp: 0\n", "t.yaml:4: conntrack.ct.timeouts.udp: timeout 'udp=0': SECONDS must be 1*" },
	{ "conntrack:\n  ct:\n    timeouts:\n      tcp_est: 10\n", "t.yaml:4: conntrack.ct.timeouts.tcp_est: timeout 'tcp_est': unknown*" },
	{ "conntrack:\n  ct:\n    timeouts: [1]\n", "t.yaml:3: conntrack.ct.timeouts: expected a mapping of timeout names to seconds, found a list" },
	{ "flowmon:\n  fm:\n    max_flows: 10\n", "t.yaml:3: flowmon.fm.max_flows: '10': need a number from 64 to 4194304" },
	{ "flowmon:\n  fm:\n    flows: 100\n", "t.yaml:3: flowmon.fm: unknown key 'flows' (max_flows)" },
	{ "router:\n  r:\n    mode: fast\n", "t.yaml:3: router.r: unknown key 'mode' (a router has no settings: write {})" },
	{ "router:\n  r: fast\n", "t.yaml:2: router.r: expected a mapping (no settings), found a string" },
	{ "httpmon:\n  web: {}\n", "t.yaml:2: httpmon.web: missing key 'ports' (an httpmon watches 1 to 8 ports)" },
	{ "httpmon:\n  web:\n    ports: 80\n", "t.yaml:3: httpmon.web.ports: expected a list of ports, found a string" },
	{ "httpmon:\n  web:\n    ports: [80, 70000]\n", "t.yaml:3: httpmon.web.ports[1]: *" },
	{ "httpmon:\n  web:\n    ports: [80]\n    routes: [static]\n", "t.yaml:4: httpmon.web.routes[0]: --route 'static'*" },
	{ "httpmon:\n  web:\n    ports: [80]\n    max_templates: 2000\n", "t.yaml:4: httpmon.web.max_templates: '2000': need a number from 1 to 1024" },
	{ "httpmon:\n  web:\n    ports: [80]\n    path: x\n", "t.yaml:4: httpmon.web: unknown key 'path' (ports, routes, max_templates)" },
	{ "firewalls: {a: {}}\nrouter:\n  a: {}\n", "t.yaml:3: router.a: the name 'a' is already an instance on line 1" },
	{ "flowmon: {x: {}}\nrouter:\n  x: {}\n", "t.yaml:3: router.x: the name 'x' is already an instance on line 1" },
	{ "conntrack:\n  c.t: {}\n", "t.yaml:2: conntrack: bad conntrack name 'c.t'*" },
	/* nat and lb */
	{ "nat: [x]\n", "t.yaml:1: nat: expected a mapping (rules), found a list" },
	{ "nat:\n  rule: []\n", "t.yaml:2: nat: unknown key 'rule' (rules)" },
	{ "nat:\n  rules: x masquerade --out lo\n", "t.yaml:2: nat.rules: expected a list of rules*" },
	{ "nat:\n  rules:\n    - masquerade\n", "t.yaml:3: nat.rules[0]: expected NAME KIND [--option VALUE]...*" },
	{ "nat:\n  rules:\n    - x snat --out lo\n", "t.yaml:3: nat.rules[0]: nat rule 'x'*" },
	{ "nat:\n  rules:\n    - x snat --out lo --to 10.0.0.300\n", "t.yaml:3: nat.rules[0]: nat rule 'x'*" },
	{ "nat:\n  rules:\n    - x snat --out lo --to 10.0.0.1\n    - x snat --out lo --to 10.0.0.2\n",
	  "t.yaml:4: nat.rules[1]: nat rule 'x' given twice (first on line 3)" },
	{ "nat:\n  rules: [x snat --out lo --to 10.0.0.1]\nchains:\n  - dev: lo\n    hook: egress\n    instances: []\n",
	  "t.yaml:4: chains[0].instances: nat rule 'x' runs on lo egress: name nat in this chain*" },
	{ "nat: {}\nfirewalls: {nat: {}}\n", "t.yaml:1: nat.nat: the name 'nat' is already an instance on line 2" },
	{ "lb: [web]\n", "t.yaml:1: lb: expected a mapping of names to lb instances, found a list" },
	{ "lb:\n  web:\n    service: []\n", "t.yaml:3: lb.web: unknown key 'service' (forward, decap, services)" },
	{ "lb:\n  web:\n    forward: on\n", "t.yaml:3: lb.web.forward: 'on' is not true or false" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        sched: rr\n",
	  "t.yaml:6: lb.web.services[0]: unknown key 'sched' (proto, vip, scheduler, mh_size, backends)" },
	{ "lb:\n  web:\n    services:\n      - proto: sctp\n", "t.yaml:4: lb.web.services[0].proto: 'sctp' is not tcp or udp" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.300:80\n",
	  "t.yaml:5: lb.web.services[0].vip: bad address '10.0.0.300:80'" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1\n",
	  "t.yaml:5: lb.web.services[0].vip: '10.0.0.1' needs a port*" },
	{ "lb:\n  web:\n    services:\n      - {proto: tcp, vip: \"10.0.0.1:80\", scheduler: wlc}\n",
	  "t.yaml:4: lb.web.services[0].scheduler: scheduler 'wlc' is not supported (mh, rr, wrr)" },
	{ "lb:\n  web:\n    services:\n      - {proto: tcp, vip: \"10.0.0.1:80\", scheduler: rr, mh_size: 7}\n",
	  "t.yaml:4: lb.web.services[0].mh_size: only the mh scheduler has a table size" },
	{ "lb:\n  web:\n    services:\n      - {proto: tcp, vip: \"10.0.0.1:80\", mh_size: 4095}\n",
	  "t.yaml:4: lb.web.services[0].mh_size: 4095 is not a prime*" },
	{ "lb:\n  web:\n    services:\n      - {proto: tcp}\n", "t.yaml:4: lb.web.services[0]: missing key 'vip' (VIP:PORT)" },
	{ "lb:\n  web:\n    services:\n      - {vip: \"10.0.0.1:80\"}\n", "t.yaml:4: lb.web.services[0]: missing key 'proto' (tcp or udp)" },
	{ "lb:\n  web:\n    services:\n      - {proto: tcp, vip: \"10.0.0.1:80\"}\n      - {proto: tcp, vip: \"10.0.0.1:80\"}\n",
	  "t.yaml:5: lb.web.services[1].vip: service tcp 10.0.0.1:80 given twice (first on line 4)" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {address: 10.0.1.1, method: tun}\n",
	  "t.yaml:7: lb.web.services[0].backends[0].method: 'tun' is not nat, ipip or mac" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {address: 10.0.1.1, weight: 70000}\n",
	  "t.yaml:7: lb.web.services[0].backends[0].weight: '70000': need a number from 0 to 65535" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {address: \"[fd00::1]:80\", method: nat}\n",
	  "t.yaml:7: lb.web.services[0].backends[0].address: [fd00::1]:80 is IPv6, the service IPv4" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {address: \"10.0.1.1:8080\"}\n",
	  "t.yaml:7: lb.web.services[0].backends[0].address: method mac (direct server return) keeps the service's port 80" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {address: 10.0.1.1}\n          - {address: \"10.0.1.1:80\", weight: 2}\n",
	  "t.yaml:8: lb.web.services[0].backends[1].address: backend 10.0.1.1:80 given twice (first on line 7)" },
	{ "lb:\n  web:\n    services:\n      - proto: tcp\n        vip: 10.0.0.1:80\n        backends:\n          - {method: nat}\n",
	  "t.yaml:7: lb.web.services[0].backends[0]: missing key 'address'" },
	{ "lb: {web: {}}\nchains:\n  - dev: lo\n    hook: egress\n    instances: [web]\n",
	  "t.yaml:5: chains[0].instances[0]: lb 'web' runs on ingress or tc-ingress, not egress" },
};

static bool msg_matches(const char *got, const char *want)
{
	size_t n = strlen(want);

	if (n && want[n - 1] == '*')
		return !strncmp(got, want, n - 1);
	return !strcmp(got, want);
}

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sl_config *cfg = (void *)1;
		char name[160], detail[700];
		int err = sl_config_parse(bad[i].doc, strlen(bad[i].doc), "t.yaml", &cfg);

		snprintf(name, sizeof(name), "refused: %s", bad[i].msg);
		snprintf(detail, sizeof(detail), "err %d, message '%s'", err,
			 err ? sl_errmsg() : "");
		check_report(err == -EINVAL && !cfg && msg_matches(sl_errmsg(), bad[i].msg),
			     name, detail);
	}
	/* A chain longer than SL_CHAIN_MAX. */
	char doc[2048] = "firewalls:\n";
	size_t off = strlen(doc);
	struct sl_config *cfg;
	int err;

	for (int i = 0; i <= SL_CHAIN_MAX; i++)
		off += snprintf(doc + off, sizeof(doc) - off, "  f%d: {}\n", i);
	off += snprintf(doc + off, sizeof(doc) - off, "chains:\n  - dev: lo\n    instances: [");
	for (int i = 0; i <= SL_CHAIN_MAX; i++)
		off += snprintf(doc + off, sizeof(doc) - off, "%sf%d", i ? ", " : "", i);
	snprintf(doc + off, sizeof(doc) - off, "]\n");
	cfg = parse(doc, &err);
	check_report(err == -EINVAL && !cfg &&
		     strstr(sl_errmsg(), "chains[0].instances: a chain holds at most 16 instances"),
		     "refused: a chain of 17 instances", sl_errmsg());
}

static void test_plan_from_nothing(void)
{
	struct sl_config *cfg;
	struct sl_config_plan *plan = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int err;

	cfg = parse(example, &err);
	if (!cfg)
		return;
	err = sl_config_diff(NULL, cfg, &plan);
	if (!check_report(!err && plan, "plan against no state", err ? sl_errmsg() : NULL))
		goto out;
	CHECK(plan->ninsts == 3 && plan->nchains == 2, "3 creates, 2 chains (the empty one is no change)");
	f = open_memstream(&buf, &len);
	sl_config_plan_print(plan, f);
	fclose(f);
	CHECK(strstr(buf, "+ firewall web-in: default drop, 3 rules\n") &&
	      strstr(buf, "+ chain lo egress: a-first web-in\n") && strstr(buf, "5 changes\n"),
	      "plan printed");
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	sl_config_plan_print_json(plan, f);
	fclose(f);
	CHECK(!strncmp(buf, "{\"changes\": 5, ", 15), "plan as JSON");
	free(buf);
	sl_config_plan_free(plan);

	/* No firewalls, no chains, no state: nothing to do. */
	sl_config_free(cfg);
	cfg = parse("firewalls: {}\n", &err);
	err = sl_config_diff(NULL, cfg, &plan);
	CHECK(!err && plan && sl_config_plan_empty(plan), "empty document on no state: no changes");
	buf = NULL;
	f = open_memstream(&buf, &len);
	sl_config_plan_print(plan, f);
	fclose(f);
	CHECK(buf && !strcmp(buf, "no changes\n"), "prints 'no changes'");
	free(buf);
	sl_config_plan_free(plan);
out:
	sl_config_free(cfg);
}


/* The other NF types: defaults, every setting, a chain naming them, and
 * the YAML and JSON round trips (the documents written compare equal). */
static const char nfs_doc[] =
	"conntrack:\n"
	"  ct:\n"
	"    size: 4096\n"
	"    tcp: strict\n"
	"    drop_invalid: true\n"
	"    gc_interval_ms: 250\n"
	"    timeouts: {udp: 60, tcp_established: 3600}\n"
	"  ct2:\n"
	"flowmon:\n"
	"  fm: {max_flows: 1024}\n"
	"router:\n"
	"  r1: {}\n"
	"httpmon:\n"
	"  web:\n"
	"    ports: [8080, 80]\n"
	"    routes: [\"/static/*\", \"/api/*\"]\n"
	"firewalls: {f: {}}\n"
	"chains:\n"
	"  - dev: lo\n"
	"    hook: tc-ingress\n"
	"    instances: [ct, f, fm, web, r1]\n";

static void test_nfs(void)
{
	struct sl_config *cfg, *back;
	char *y, *j, *y2;
	int err;

	cfg = parse(nfs_doc, &err);
	CHECK(!err && cfg, "other NF types parse");
	if (!cfg)
		return;
	CHECK(cfg->nnfs == 5 && cfg->nfws == 1, "five instances of other types, one firewall");
	CHECK(!strcmp(cfg->nfs[0].name, "ct") && !strcmp(cfg->nfs[0].type, CT_TYPE) &&
	      cfg->nfs[0].ct.max_entries == 4096 && cfg->nfs[0].ct.cfg.gc_interval_ms == 250 &&
	      cfg->nfs[0].ct.cfg.flags == CT_CFG_DROP_INVALID &&
	      cfg->nfs[0].ct.cfg.timeout_ns[CT_TO_UDP] == 60ULL * 1000000000 &&
	      cfg->nfs[0].ct.cfg.timeout_ns[CT_TCP_ESTABLISHED] == 3600ULL * 1000000000 &&
	      cfg->nfs[0].ct.cfg.timeout_ns[CT_TO_ICMP] == 30ULL * 1000000000,
	      "conntrack settings read, unset timeouts at the kernel's defaults");
	CHECK(!strcmp(cfg->nfs[1].name, "ct2") && cfg->nfs[1].ct.max_entries == CT_DEFAULT_MAX &&
	      cfg->nfs[1].ct.cfg.flags == CT_CFG_LOOSE &&
	      cfg->nfs[1].ct.cfg.gc_interval_ms == CT_DEFAULT_GC_MS,
	      "an empty conntrack takes sluice conntrack create's defaults");
	CHECK(!strcmp(cfg->nfs[2].name, "fm") && cfg->nfs[2].max_flows == 1024, "flowmon max_flows");
	CHECK(!strcmp(cfg->nfs[3].name, "r1") && !strcmp(cfg->nfs[3].type, RT_TYPE), "router");
	CHECK(!strcmp(cfg->nfs[4].name, "web") && cfg->nfs[4].http.nports == 2 &&
	      cfg->nfs[4].http.ports[0] == 80 && cfg->nfs[4].http.ports[1] == 8080 &&
	      cfg->nfs[4].http.nroutes == 2 && !strcmp(cfg->nfs[4].http.routes[0], "/api/*") &&
	      cfg->nfs[4].http.max_templates == HTTP_TMPL_DEFAULT,
	      "httpmon ports and routes, sorted; max_templates default");
	CHECK(cfg->nchains == 1 && cfg->chains[0].n == 5 && !strcmp(cfg->chains[0].names[3], "web"),
	      "a chain names instances of every type");
	y = write_doc(cfg, false);
	j = write_doc(cfg, true);
	CHECK(y && j, "written as YAML and JSON");
	back = y ? parse(y, &err) : NULL;
	y2 = back ? write_doc(back, false) : NULL;
	CHECK(y2 && !strcmp(y, y2), "YAML round trip gives the same document");
	free(y2);
	sl_config_free(back);
	back = j ? parse(j, &err) : NULL;
	y2 = back ? write_doc(back, false) : NULL;
	CHECK(y2 && y && !strcmp(y, y2), "JSON round trip gives the same document");
	CHECK(y && strstr(y, "router:\n  r1: {}\n") && strstr(y, "    tcp: strict\n") &&
	      strstr(y, "    routes: [\"/api/*\", \"/static/*\"]\n"), "sections as documented");
	free(y2);
	sl_config_free(back);
	free(y);
	free(j);
	sl_config_free(cfg);
}

/* nat and lb: rules in order, the chains nat rules make, services and
 * backends sorted, defaults as the CLI's, YAML and JSON round trips. */
static const char nat_lb_doc[] =
	"nat:\n"
	"  rules:\n"
	"    - out snat --out lo --to 10.9.9.9 --src 10.0.0.0/8\n"
	"    - web   dnat --in lo --dst 127.0.0.2 --proto tcp --dport 80 --to 127.0.0.3:8080\n"
	"lb:\n"
	"  web:\n"
	"    forward: true\n"
	"    services:\n"
	"      - proto: udp\n"
	"        vip: 10.0.0.1:53\n"
	"        scheduler: rr\n"
	"        backends: [{address: 10.0.1.2, method: nat, weight: 0}]\n"
	"      - proto: tcp\n"
	"        vip: \"[fd00::1]:80\"\n"
	"        backends:\n"
	"          - {address: \"[fd00::12]:80\", method: ipip}\n"
	"          - {address: \"[fd00::11]:8080\", method: nat, weight: 3}\n"
	"      - {proto: tcp, vip: \"10.0.0.1:80\", mh_size: 7}\n"
	"  empty: {}\n"
	"chains:\n"
	"  - dev: lo\n"
	"    hook: tc-ingress\n"
	"    instances: [web, nat]\n"
	"  - dev: lo\n"
	"    instances: [nat, empty]\n";

static void test_nat_lb(void)
{
	struct sl_config *cfg, *back;
	const struct sl_config_nf *nat, *lb;
	char *y, *j, *y2;
	int err;

	cfg = parse(nat_lb_doc, &err);
	CHECK(!err && cfg, "nat and lb parse");
	if (!cfg) {
		fprintf(stderr, "%s\n", sl_errmsg());
		return;
	}
	CHECK(cfg->nnfs == 3 && !strcmp(cfg->nfs[0].name, "empty") &&
	      !strcmp(cfg->nfs[1].name, "nat") && !strcmp(cfg->nfs[1].type, NAT_TYPE) &&
	      !strcmp(cfg->nfs[2].name, "web") && !strcmp(cfg->nfs[2].type, LB_TYPE),
	      "the nat instance and two load balancers");
	nat = &cfg->nfs[1];
	lb = &cfg->nfs[2];
	CHECK(nat->nat->n == 2 && !strcmp(nat->nat->spec[0].name, "out") &&
	      !strcmp(nat->nat->spec[1].text, "dnat --in lo --dst 127.0.0.2 --proto tcp --dport 80 --to 127.0.0.3:8080"),
	      "nat rules in order, their text as sluice nat show prints it");
	CHECK(cfg->nchains == 3 && cfg->chains[2].hook == SL_HOOK_TC_OUT && cfg->chains[2].n == 1 &&
	      !strcmp(cfg->chains[2].names[0], "nat") && cfg->chains[2].line == 3,
	      "the egress chain the rules need is made, [nat]");
	CHECK(lb->lb->forward && !lb->lb->decap && lb->lb->conf.n == 3,
	      "lb switches and three services");
	CHECK(lb->lb->conf.svcs[0].key.proto == IPPROTO_TCP && lb->lb->conf.svcs[0].key.family == 4 &&
	      lb->lb->conf.svcs[0].conf.sched == LB_SCHED_MH && lb->lb->conf.svcs[0].conf.mh_size == 7 &&
	      lb->lb->conf.svcs[1].key.family == 6 && lb->lb->conf.svcs[1].conf.mh_size == LB_MH_DEFAULT &&
	      lb->lb->conf.svcs[2].key.proto == IPPROTO_UDP && lb->lb->conf.svcs[2].conf.sched == LB_SCHED_RR &&
	      lb->lb->conf.svcs[2].conf.mh_size == 0,
	      "services sorted, scheduler mh and its table size by default");
	CHECK(lb->lb->conf.svcs[1].nbackends == 2 &&
	      lb->lb->conf.svcs[1].backends[0].addr.port == 8080 &&
	      lb->lb->conf.svcs[1].backends[0].conf.fwd == LB_FWD_NAT &&
	      lb->lb->conf.svcs[1].backends[0].conf.weight == 3 &&
	      lb->lb->conf.svcs[1].backends[1].conf.fwd == LB_FWD_IPIP &&
	      lb->lb->conf.svcs[1].backends[1].conf.weight == 1 &&
	      lb->lb->conf.svcs[2].backends[0].addr.port == 53 &&
	      lb->lb->conf.svcs[2].backends[0].conf.weight == 0,
	      "backends sorted; weight 1 and the service's port by default");
	CHECK(cfg->nfs[0].lb->conf.n == 0 && !cfg->nfs[0].lb->forward, "an empty lb");
	y = write_doc(cfg, false);
	j = write_doc(cfg, true);
	CHECK(y && j, "nat and lb written as YAML and JSON");
	back = y ? parse(y, &err) : NULL;
	y2 = back ? write_doc(back, false) : NULL;
	CHECK(y2 && !strcmp(y, y2), "nat and lb: YAML round trip gives the same document");
	if (!back)
		fprintf(stderr, "%s\n%s\n", sl_errmsg(), y);
	free(y2);
	sl_config_free(back);
	back = j ? parse(j, &err) : NULL;
	y2 = back ? write_doc(back, false) : NULL;
	CHECK(y2 && y && !strcmp(y, y2), "nat and lb: JSON round trip gives the same document");
	if (!back)
		fprintf(stderr, "%s\n%s\n", sl_errmsg(), j);
	CHECK(y && strstr(y, "nat:\n  rules:\n    - out snat --out lo --to 10.9.9.9 --src 10.0.0.0/8\n") &&
	      strstr(y, "          - {address: \"[fd00::11]:8080\", method: nat, weight: 3}\n") &&
	      strstr(y, "  empty:\n    forward: false\n    decap: false\n    services: []\n"),
	      "nat and lb sections as documented");
	free(y2);
	sl_config_free(back);
	free(y);
	free(j);
	sl_config_free(cfg);
}

int main(void)
{
	test_valid();
	test_errors();
	test_plan_from_nothing();
	test_nfs();
	test_nat_lb();
	return check_exit();
}
