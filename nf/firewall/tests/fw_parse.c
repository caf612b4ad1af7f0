// SPDX-License-Identifier: GPL-2.0
/* Unit tests of the rule-file parser and the decision-tree builder, built
 * with AddressSanitizer and UBSan. No BPF, no root needed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "firewall.h"
#include "check.h"

struct good_case {
	const char *in;
	const char *out; /* how `show` prints it back */
};

static const struct good_case good[] = {
	{ "drop src 10.0.0.0/8 proto tcp dport 22", NULL },
	{ "accept", NULL },
	{ "drop dst !192.168.0.0/16", NULL },
	{ "drop src 10.1.2.3", "drop src 10.1.2.3/32" },
	{ "drop src 2001:db8::/32 proto icmpv6 icmp-type 128", NULL },
	{ "drop src ::1", "drop src ::1/128" },
	{ "accept proto udp sport 1000-2000 dport 53", NULL },
	{ "drop proto tcp tcp-flags syn/syn,ack", NULL },
	{ "drop proto tcp tcp-flags none/all", "drop proto tcp tcp-flags none/fin,syn,rst,psh,ack,urg,ece,cwr" },
	{ "drop proto 47", NULL },
	{ "drop   proto\ttcp   dport 80  ", "drop proto tcp dport 80" },
	{ "drop iif lo proto icmp icmp-type 8", "drop proto icmp icmp-type 8 iif lo" },
	{ "drop dport 22 proto tcp", "drop proto tcp dport 22" },
	{ "drop src 0.0.0.0/0", NULL },
	{ "drop src ::/0 dst 2001:db8:0:1::/64", NULL },
	{ "drop src 2001:db8::8000:0:0:0/65", "drop src 2001:db8:0:0:8000::/65" },
};

struct bad_case {
	const char *in;
	const char *msg; /* a part of the error message */
};

static const struct bad_case bad[] = {
	{ "", "empty rule" },
	{ "reject", "unknown action 'reject'" },
	{ "drop src", "src: missing value" },
	{ "drop src 10.0.0.1/8", "host bits" },
	{ "drop src 10.0.0.0/33", "bad prefix length" },
	{ "drop src 300.1.1.1", "not an IPv4 or IPv6 address" },
	{ "drop src 10.0.0.0/8 dst 2001:db8::/32", "IPv6 but the rule is already IPv4" },
	{ "drop proto tcp dport 70000", "bad port or range" },
	{ "drop proto tcp dport 20-10", "range '20-10' is empty" },
	{ "drop proto tcp dport -5", "bad port or range" },
	{ "drop dport 22", "sport/dport need 'proto tcp' or 'proto udp'" },
	{ "drop proto icmp dport 22", "sport/dport need" },
	{ "drop icmp-type 8", "icmp-type needs" },
	{ "drop proto icmp icmp-type 256", "icmp-type: '256'" },
	{ "drop proto udp tcp-flags syn/syn", "tcp-flags needs 'proto tcp'" },
	{ "drop proto tcp tcp-flags syn", "not FLAGS/MASK" },
	{ "drop proto tcp tcp-flags syn,ack/syn", "not all in the mask" },
	{ "drop proto tcp tcp-flags bogus/syn", "unknown flag" },
	{ "drop proto foo", "unknown protocol 'foo'" },
	{ "drop proto 256", "unknown protocol '256'" },
	{ "drop proto tcp proto udp", "proto given twice" },
	{ "drop iif no-such-dev0", "no interface 'no-such-dev0'" },
	{ "drop matchless 1", "unknown match 'matchless'" },
	{ "drop src 2001:db8::/32 proto icmp", "IPv4 but the rule is already IPv6" },
	{ "drop src 10.0.0.0/8 proto icmpv6", "IPv6 but the rule is already IPv4" },
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct fw_rule r;
		char out[512], name[300];
		int err = fw_rule_parse(good[i].in, &r);
		const char *want = good[i].out ? good[i].out : good[i].in;

		snprintf(name, sizeof(name), "parse '%s'", good[i].in);
		if (!check_report(!err, name, err ? sl_errmsg() : NULL))
			continue;
		fw_rule_format(&r, out, sizeof(out));
		snprintf(name, sizeof(name), "print back '%s'", want);
		check_report(!strcmp(out, want), name, out);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fw_rule r;
		char name[300];
		int err = fw_rule_parse(bad[i].in, &r);

		snprintf(name, sizeof(name), "refuse '%s'", bad[i].in);
		check_report(err == -EINVAL || err == -ENODEV, name, "accepted");
		snprintf(name, sizeof(name), "message for '%s' says '%s'", bad[i].in, bad[i].msg);
		check_report(err && strstr(sl_errmsg(), bad[i].msg), name, sl_errmsg());
	}
}

static int parse_text(const char *text, struct fw_ruleset *rs)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int err = fw_ruleset_parse_stream(f, "rules.txt", rs);

	fclose(f);
	return err;
}

static void test_files(void)
{
	struct fw_ruleset rs;
	int err;

	err = parse_text("# comment\n\n  drop proto tcp dport 22 # trailing\ndefault drop\n"
			 "accept src 10.0.0.0/8\n", &rs);
	if (check_report(!err, "file with comments and default", err ? sl_errmsg() : NULL)) {
		CHECK(rs.n == 2, "file: two rules");
		CHECK(rs.default_action == FW_DROP, "file: default drop");
		fw_ruleset_free(&rs);
	}
	err = parse_text("drop proto tcp\naccept\n\ndrop proto tcp dport 99999\n", &rs);
	CHECK(err == -EINVAL, "file: bad line refused");
	CHECK(strstr(sl_errmsg(), "rules.txt:4:") != NULL, "file: error names file and line 4");
	CHECK(strstr(sl_errmsg(), "drop proto tcp dport 99999") != NULL, "file: error quotes the rule");
	err = parse_text("default drop\ndefault accept\n", &rs);
	CHECK(err == -EINVAL && strstr(sl_errmsg(), "rules.txt:2: a second 'default'"),
	      "file: second default refused");
	err = parse_text("default maybe\n", &rs);
	CHECK(err == -EINVAL && strstr(sl_errmsg(), "not accept or drop"), "file: bad default");

	/* A line longer than the limit is an error, not silently split. */
	char *longl = malloc(3000);

	memset(longl, ' ', 2999);
	memcpy(longl, "drop", 4);
	longl[2998] = '\n';
	longl[2999] = '\0';
	err = parse_text(longl, &rs);
	CHECK(err == -EINVAL && strstr(sl_errmsg(), "longer than"), "file: overlong line refused");
	free(longl);
}

/* ---- the tree against the linear reference ----------------------------- */

static unsigned int rnd_state = 12345;

static unsigned int rnd(unsigned int n)
{
	rnd_state = rnd_state * 1103515245 + 12345;
	return ((rnd_state >> 8) & 0xffffff) % n;
}

static void random_rule(char *buf, size_t len)
{
	static const char *v4[] = { "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3",
				    "192.168.0.0/16", "0.0.0.0/0", "10.128.0.0/9" };
	static const char *v6[] = { "2001:db8::/32", "2001:db8:1::/48", "2001:db8::1",
				    "2001:db8:0:0:8000::/65", "::/0" };
	static const char *protos[] = { "tcp", "udp", "icmp", "icmpv6", "47" };
	size_t off = snprintf(buf, len, "%s", rnd(2) ? "drop" : "accept");
	int fam = rnd(3); /* 0 any, 1 v4, 2 v6 */
	const char *proto = NULL;

	if (fam && rnd(2))
		off += snprintf(buf + off, len - off, " src %s%s", rnd(4) ? "" : "!",
				fam == 1 ? v4[rnd(7)] : v6[rnd(5)]);
	if (fam && rnd(2))
		off += snprintf(buf + off, len - off, " dst %s%s", rnd(4) ? "" : "!",
				fam == 1 ? v4[rnd(7)] : v6[rnd(5)]);
	if (rnd(3)) {
		proto = protos[rnd(5)];
		if (!strcmp(proto, "icmp") && fam == 2)
			proto = "icmpv6";
		if (!strcmp(proto, "icmpv6") && fam == 1)
			proto = "icmp";
		off += snprintf(buf + off, len - off, " proto %s", proto);
	}
	if (proto && (!strcmp(proto, "tcp") || !strcmp(proto, "udp"))) {
		if (rnd(2)) {
			unsigned int a = rnd(100);

			off += snprintf(buf + off, len - off, " dport %u-%u", a, a + rnd(50));
		}
		if (rnd(3) == 0)
			off += snprintf(buf + off, len - off, " sport %u", rnd(100));
		if (!strcmp(proto, "tcp") && rnd(3) == 0)
			off += snprintf(buf + off, len - off, " tcp-flags syn/syn,ack");
	}
	if (proto && strstr(proto, "icmp") && rnd(2))
		snprintf(buf + off, len - off, " icmp-type %u", rnd(4) ? 8 : 0);
}

static void random_key(__u64 *key, __u8 *flags)
{
	int v6 = rnd(2);

	memset(key, 0, sizeof(__u64) * FW_DIMS);
	key[FW_DIM_FAMILY] = v6 ? 6 : 4;
	if (v6) {
		key[FW_DIM_SRC_HI] = 0x20010db800000000ULL | (rnd(3) ? 0 : rnd(4)) << 16 | rnd(2) << 15;
		key[FW_DIM_SRC_LO] = rnd(3);
		key[FW_DIM_DST_HI] = 0x20010db800000000ULL | (rnd(3) ? 0 : rnd(4)) << 16;
		key[FW_DIM_DST_LO] = rnd(3);
	} else {
		static const __u32 pool[] = { 0x0a010203, 0x0a010204, 0x0a020000, 0xc0a80101,
					      0x08080808, 0x0a800001 };

		key[FW_DIM_SRC_LO] = pool[rnd(6)];
		key[FW_DIM_DST_LO] = pool[rnd(6)];
	}
	static const __u64 protos[] = { 6, 17, 1, 58, 47 };

	key[FW_DIM_PROTO] = protos[rnd(5)];
	key[FW_DIM_L4] = rnd(8) != 0;
	if (key[FW_DIM_L4] && (key[FW_DIM_PROTO] == 6 || key[FW_DIM_PROTO] == 17)) {
		key[FW_DIM_SPORT] = rnd(120);
		key[FW_DIM_DPORT] = rnd(160);
	}
	if (key[FW_DIM_L4] && (key[FW_DIM_PROTO] == 1 || key[FW_DIM_PROTO] == 58))
		key[FW_DIM_ICMP_TYPE] = rnd(2) ? 8 : 0;
	key[FW_DIM_IIF] = 1;
	*flags = rnd(2) ? 0x02 : 0x12;
}

static void test_tree_vs_linear(void)
{
	int mismatches = 0, sets = 200, probes = 2000;
	__u32 max_depth = 0;

	for (int s = 0; s < sets; s++) {
		struct fw_ruleset rs = {};
		struct fw_tree tree;
		int n = 1 + rnd(s < 100 ? 20 : 300);

		for (int i = 0; i < n; i++) {
			char text[256];
			struct fw_rule r;

			random_rule(text, sizeof(text));
			if (fw_rule_parse(text, &r) || fw_ruleset_add(&rs, &r, rs.n)) {
				printf("FAIL: generated rule refused: %s: %s\n", text, sl_errmsg());
				check_failed++;
				continue;
			}
		}
		if (fw_tree_build(&rs, &tree)) {
			printf("FAIL: tree build: %s\n", sl_errmsg());
			check_failed++;
			fw_ruleset_free(&rs);
			continue;
		}
		if (tree.depth > max_depth)
			max_depth = tree.depth;
		for (int p = 0; p < probes; p++) {
			__u64 key[FW_DIMS];
			__u8 flags;

			random_key(key, &flags);
			int a = fw_classify_linear(&rs, key, flags);
			int b = fw_classify_tree(&rs, &tree, key, flags);

			if (a != b && mismatches++ < 5)
				printf("set %d probe %d: linear %d tree %d\n", s, p, a, b);
		}
		fw_tree_free(&tree);
		fw_ruleset_free(&rs);
	}
	char name[128];

	snprintf(name, sizeof(name), "tree == linear on %d random rule sets x %d packets (depth <= %u)",
		 sets, probes, max_depth);
	CHECK(mismatches == 0, name);
}

/* No rules at all: one tree whose root is an empty leaf (UBSan once caught
 * a memcpy to the NULL leaf array here). */
static void test_tree_empty(void)
{
	struct fw_ruleset rs = {};
	struct fw_tree tree;
	__u64 key[FW_DIMS] = { [FW_DIM_FAMILY] = 4 };

	if (!check_report(!fw_tree_build(&rs, &tree), "empty rule set builds", sl_errmsg()))
		return;
	CHECK(tree.ntrees == 1 && tree.nnodes == 1 && tree.nleaves == 0, "empty rule set: one empty leaf");
	CHECK(fw_classify_tree(&rs, &tree, key, 0) == -1, "empty rule set: nothing matches");
	fw_tree_free(&tree);
}

static void test_tree_scaling(void)
{
	struct fw_ruleset rs = {};
	struct fw_tree tree;
	char text[128];
	struct fw_rule r;
	int err = 0;

	/* Rules distinct by source and port: the tree must stay shallow. */
	for (__u32 i = 0; i < FW_MAX_RULES && !err; i++) {
		snprintf(text, sizeof(text), "drop src 10.%u.%u.%u proto tcp dport %u",
			 i >> 16, (i >> 8) & 255, i & 255, 1 + i % 1000);
		err = fw_rule_parse(text, &r) ?: fw_ruleset_add(&rs, &r, rs.n);
	}
	CHECK(!err && rs.n == FW_MAX_RULES, "65536 rules parsed");
	CHECK(fw_rule_parse("accept", &r) == 0 && fw_ruleset_add(&rs, &r, rs.n) == -E2BIG,
	      "rule 65537 refused");
	err = fw_tree_build(&rs, &tree);
	if (check_report(!err, "tree of 65536 rules built", err ? sl_errmsg() : NULL)) {
		char name[160];

		snprintf(name, sizeof(name), "65536-rule tree: depth %u <= 24, longest leaf %u <= 8",
			 tree.depth, tree.max_leaf);
		check_report(tree.depth <= 24 && tree.max_leaf <= 8, name, NULL);
		fw_tree_free(&tree);
	}
	fw_ruleset_free(&rs);
}

int main(void)
{
	test_good();
	test_bad();
	test_files();
	test_tree_vs_linear();
	test_tree_empty();
	test_tree_scaling();
	return check_exit();
}
