// SPDX-License-Identifier: GPL-2.0
/* Firewall NF control code.
 *
 * Rule file grammar, one rule a line, '#' starts a comment:
 *   ACTION [MATCH ...]    ACTION: accept | drop
 *   default accept|drop   (at most once; accept when absent)
 * MATCH: src [!]CIDR, dst [!]CIDR, proto tcp|udp|icmp|icmpv6|NUMBER,
 *        sport N[-M], dport N[-M], icmp-type N, tcp-flags FLAGS/MASK, iif DEV
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "firewall.h"
#include "firewall.skel.h"

/* Splitting goes on while a threshold still separates two rules: each
 * candidate left in a leaf costs a packet a rule check (~3-4 ns), more
 * than the deeper tree's extra tests (three levels share one node). */
#define FW_LEAF_SIZE 1
#define FW_TOKENS_MAX 32
#define FW_LINE_MAX 1024

void fw_ruleset_free(struct fw_ruleset *rs)
{
	free(rs->rules);
	memset(rs, 0, sizeof(*rs));
}

int fw_ruleset_add(struct fw_ruleset *rs, const struct fw_rule *rule, __u32 pos)
{
	if (rs->n >= FW_MAX_RULES)
		return sl_err(-E2BIG, "more than %d rules", FW_MAX_RULES);
	if (pos > rs->n)
		return sl_err(-EINVAL, "no position %u (the rule set has %u rules)",
			      pos + 1, rs->n);
	if (rs->n == rs->cap) {
		__u32 cap = rs->cap ? rs->cap * 2 : 64;
		struct fw_rule *r = realloc(rs->rules, cap * sizeof(*r));

		if (!r)
			return sl_err(-ENOMEM, "out of memory");
		rs->rules = r;
		rs->cap = cap;
	}
	memmove(&rs->rules[pos + 1], &rs->rules[pos],
		(rs->n - pos) * sizeof(*rule));
	rs->rules[pos] = *rule;
	rs->n++;
	return 0;
}

/* ---- parsing ---------------------------------------------------------- */

static int parse_u32(const char *s, __u32 max, __u32 *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_cidr(const char *word, const char *s, __u8 *family,
		      __u8 addr[16], __u8 *len)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	__u32 plen, max;
	int bits;

	if (strlen(s) >= sizeof(buf))
		return sl_err(-EINVAL, "%s: '%s' is not an address", word, s);
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		*family = 4;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*family = 6;
	else
		return sl_err(-EINVAL, "%s: '%s' is not an IPv4 or IPv6 address",
			      word, buf);
	max = *family == 4 ? 32 : 128;
	plen = max;
	if (slash && parse_u32(slash + 1, max, &plen))
		return sl_err(-EINVAL, "%s: bad prefix length in '%s' (0 to %u)",
			      word, s, max);
	/* Host bits set is most often a typo: refuse rather than guess. */
	for (bits = plen; bits < (int)max; bits++) {
		if (addr[bits / 8] & (0x80 >> (bits % 8)))
			return sl_err(-EINVAL, "%s: '%s' has host bits set beyond /%u",
				      word, s, plen);
	}
	*len = plen;
	return 0;
}

static int parse_range(const char *word, const char *s, __u16 *lo, __u16 *hi)
{
	char buf[32];
	char *dash;
	__u32 a, b;

	if (strlen(s) >= sizeof(buf))
		return sl_err(-EINVAL, "%s: bad port or range '%s'", word, s);
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	if (parse_u32(buf, 65535, &a) || (dash && parse_u32(dash + 1, 65535, &b)))
		return sl_err(-EINVAL, "%s: bad port or range '%s' (N or N-M, 0 to 65535)",
			      word, s);
	if (!dash)
		b = a;
	if (a > b)
		return sl_err(-EINVAL, "%s: range '%s' is empty (first > last)",
			      word, s);
	*lo = a;
	*hi = b;
	return 0;
}

static const char *const tcp_flag_names[8] = {
	"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr",
};

static int parse_flag_list(const char *s, __u8 *out)
{
	char buf[128];
	char *tok, *save;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	*out = 0;
	if (!strcmp(buf, "none"))
		return 0;
	if (!strcmp(buf, "all")) {
		*out = 0xff;
		return 0;
	}
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		for (i = 0; i < 8; i++)
			if (!strcasecmp(tok, tcp_flag_names[i]))
				break;
		if (i == 8)
			return -EINVAL;
		*out |= 1 << i;
	}
	return 0;
}

static int parse_tcp_flags(const char *s, __u8 *flags, __u8 *mask)
{
	char buf[256];
	char *slash;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return sl_err(-EINVAL, "tcp-flags: '%s' is not FLAGS/MASK (for example syn/syn,ack)",
			      s);
	*slash = '\0';
	if (parse_flag_list(buf, flags) || parse_flag_list(slash + 1, mask))
		return sl_err(-EINVAL, "tcp-flags: unknown flag in '%s' (fin syn rst psh ack urg ece cwr, none, all)",
			      s);
	if (!*mask)
		return sl_err(-EINVAL, "tcp-flags: '%s' has an empty mask", s);
	if (*flags & ~*mask)
		return sl_err(-EINVAL, "tcp-flags: in '%s' the flags are not all in the mask",
			      s);
	return 0;
}

static void box_full(struct fw_rule *r, int d)
{
	r->lo[d] = 0;
	r->hi[d] = UINT64_MAX;
}

static void box_exact(struct fw_rule *r, int d, __u64 v)
{
	r->lo[d] = r->hi[d] = v;
}

static __u64 be64_at(const __u8 *p)
{
	__u64 v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Sets the two 64-bit dimensions of an address prefix. */
static void box_prefix(struct fw_rule *r, int d_hi, __u8 family,
		       const __u8 *addr, __u8 len)
{
	int d_lo = d_hi + 1;

	if (family == 4) {
		__u64 a = ((__u64)addr[0] << 24) | (addr[1] << 16) | (addr[2] << 8) | addr[3];
		__u64 host = len ? (1ULL << (32 - len)) - 1 : 0xffffffffULL;

		box_exact(r, d_hi, 0);
		r->lo[d_lo] = a;
		r->hi[d_lo] = a | host;
		return;
	}
	__u64 hi = be64_at(addr), lo = be64_at(addr + 8);

	if (len <= 64) {
		__u64 host = len ? (len == 64 ? 0 : (~0ULL >> len)) : ~0ULL;

		r->lo[d_hi] = hi;
		r->hi[d_hi] = hi | host;
		box_full(r, d_lo);
	} else {
		__u64 host = len == 128 ? 0 : (~0ULL >> (len - 64));

		box_exact(r, d_hi, hi);
		r->lo[d_lo] = lo;
		r->hi[d_lo] = lo | host;
	}
}

/* Turns the spec into the box the classifier uses. */
static int rule_compile(struct fw_rule *r)
{
	struct fw_spec *s = &r->spec;

	for (int d = 0; d < FW_DIMS; d++)
		box_full(r, d);
	if (s->family)
		box_exact(r, FW_DIM_FAMILY, s->family);
	if (s->has & FW_HAS_SRC)
		box_prefix(r, FW_DIM_SRC_HI, s->family, s->src, s->src_len);
	if (s->has & FW_HAS_DST)
		box_prefix(r, FW_DIM_DST_HI, s->family, s->dst, s->dst_len);
	if (s->has & FW_HAS_PROTO)
		box_exact(r, FW_DIM_PROTO, s->proto);
	if (s->has & (FW_HAS_SPORT | FW_HAS_DPORT | FW_HAS_ICMP_TYPE | FW_HAS_TCP_FLAGS))
		box_exact(r, FW_DIM_L4, 1);
	if (s->has & FW_HAS_SPORT) {
		r->lo[FW_DIM_SPORT] = s->sport_lo;
		r->hi[FW_DIM_SPORT] = s->sport_hi;
	}
	if (s->has & FW_HAS_DPORT) {
		r->lo[FW_DIM_DPORT] = s->dport_lo;
		r->hi[FW_DIM_DPORT] = s->dport_hi;
	}
	if (s->has & FW_HAS_ICMP_TYPE)
		box_exact(r, FW_DIM_ICMP_TYPE, s->icmp_type);
	if (s->has & FW_HAS_IIF)
		box_exact(r, FW_DIM_IIF, s->iif);
	return 0;
}

static int set_family(struct fw_spec *s, __u8 family, const char *why)
{
	if (s->family && s->family != family)
		return sl_err(-EINVAL, "%s is IPv%u but the rule is already IPv%u",
			      why, family, s->family);
	s->family = family;
	return 0;
}

int fw_rule_parse(const char *text, struct fw_rule *rule)
{
	char buf[FW_LINE_MAX];
	char *tok[FW_TOKENS_MAX];
	char *save, *w;
	struct fw_spec *s = &rule->spec;
	int ntok = 0, i, err;

	memset(rule, 0, sizeof(*rule));
	if (strlen(text) >= sizeof(buf))
		return sl_err(-EINVAL, "rule longer than %d characters", FW_LINE_MAX - 1);
	strcpy(buf, text);
	for (w = strtok_r(buf, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		if (ntok == FW_TOKENS_MAX)
			return sl_err(-EINVAL, "more than %d words", FW_TOKENS_MAX);
		tok[ntok++] = w;
	}
	if (!ntok)
		return sl_err(-EINVAL, "empty rule");
	if (!strcmp(tok[0], "accept"))
		rule->action = FW_ACCEPT;
	else if (!strcmp(tok[0], "drop"))
		rule->action = FW_DROP;
	else
		return sl_err(-EINVAL, "unknown action '%s' (accept or drop)", tok[0]);

	for (i = 1; i < ntok; i += 2) {
		const char *m = tok[i], *v = i + 1 < ntok ? tok[i + 1] : NULL;
		__u8 bit, family = 0;
		__u32 num;

		if (!strcmp(m, "src") || !strcmp(m, "dst"))
			bit = m[0] == 's' ? FW_HAS_SRC : FW_HAS_DST;
		else if (!strcmp(m, "proto"))
			bit = FW_HAS_PROTO;
		else if (!strcmp(m, "sport"))
			bit = FW_HAS_SPORT;
		else if (!strcmp(m, "dport"))
			bit = FW_HAS_DPORT;
		else if (!strcmp(m, "icmp-type"))
			bit = FW_HAS_ICMP_TYPE;
		else if (!strcmp(m, "tcp-flags"))
			bit = FW_HAS_TCP_FLAGS;
		else if (!strcmp(m, "iif"))
			bit = FW_HAS_IIF;
		else
			return sl_err(-EINVAL, "unknown match '%s' (src dst proto sport dport icmp-type tcp-flags iif)",
				      m);
		if (!v)
			return sl_err(-EINVAL, "%s: missing value", m);
		if (s->has & bit)
			return sl_err(-EINVAL, "%s given twice", m);
		s->has |= bit;

		switch (bit) {
		case FW_HAS_SRC:
		case FW_HAS_DST: {
			bool neg = v[0] == '!';
			__u8 *addr = bit == FW_HAS_SRC ? s->src : s->dst;
			__u8 *len = bit == FW_HAS_SRC ? &s->src_len : &s->dst_len;

			err = parse_cidr(m, v + neg, &family, addr, len);
			if (!err)
				err = set_family(s, family, m);
			if (err)
				return err;
			if (neg)
				rule->neg |= bit == FW_HAS_SRC ? FW_NEG_SRC : FW_NEG_DST;
			break;
		}
		case FW_HAS_PROTO:
			if (!strcmp(v, "tcp"))
				s->proto = 6;
			else if (!strcmp(v, "udp"))
				s->proto = 17;
			else if (!strcmp(v, "icmp"))
				s->proto = 1;
			else if (!strcmp(v, "icmpv6"))
				s->proto = 58;
			else if (!parse_u32(v, 255, &num))
				s->proto = num;
			else
				return sl_err(-EINVAL, "proto: unknown protocol '%s' (tcp udp icmp icmpv6 or 0-255)",
					      v);
			/* ICMP and ICMPv6 name the family, as iptables and
			 * ip6tables do. */
			if (!strcmp(v, "icmp") && (err = set_family(s, 4, "proto icmp")))
				return err;
			if (!strcmp(v, "icmpv6") && (err = set_family(s, 6, "proto icmpv6")))
				return err;
			break;
		case FW_HAS_SPORT:
			if ((err = parse_range(m, v, &s->sport_lo, &s->sport_hi)))
				return err;
			break;
		case FW_HAS_DPORT:
			if ((err = parse_range(m, v, &s->dport_lo, &s->dport_hi)))
				return err;
			break;
		case FW_HAS_ICMP_TYPE:
			if (parse_u32(v, 255, &num))
				return sl_err(-EINVAL, "icmp-type: '%s' is not 0 to 255", v);
			s->icmp_type = num;
			break;
		case FW_HAS_TCP_FLAGS:
			if ((err = parse_tcp_flags(v, &rule->tcp_flags, &rule->tcp_mask)))
				return err;
			break;
		case FW_HAS_IIF:
			if (strlen(v) >= IF_NAMESIZE)
				return sl_err(-EINVAL, "iif: '%s' is not an interface name", v);
			err = sl_ifindex(v);
			if (err < 0)
				return sl_err(err, "iif: no interface '%s'", v);
			s->iif = err;
			break;
		}
	}

	/* Matches that only mean something for some protocols, as in iptables. */
	bool ports = s->has & (FW_HAS_SPORT | FW_HAS_DPORT);

	if (ports && (!(s->has & FW_HAS_PROTO) || (s->proto != 6 && s->proto != 17)))
		return sl_err(-EINVAL, "sport/dport need 'proto tcp' or 'proto udp'");
	if ((s->has & FW_HAS_ICMP_TYPE) &&
	    (!(s->has & FW_HAS_PROTO) || (s->proto != 1 && s->proto != 58)))
		return sl_err(-EINVAL, "icmp-type needs 'proto icmp' or 'proto icmpv6'");
	if ((s->has & FW_HAS_TCP_FLAGS) && (!(s->has & FW_HAS_PROTO) || s->proto != 6))
		return sl_err(-EINVAL, "tcp-flags needs 'proto tcp'");
	return rule_compile(rule);
}

/* Strips a comment and surrounding blanks; returns the text left. */
static char *strip_line(char *line)
{
	char *hash = strchr(line, '#'), *end;

	if (hash)
		*hash = '\0';
	while (isspace((unsigned char)*line))
		line++;
	end = line + strlen(line);
	while (end > line && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return line;
}

int fw_ruleset_parse_stream(FILE *f, const char *name, struct fw_ruleset *rs)
{
	char line[FW_LINE_MAX + 2];
	struct fw_ruleset out = { .default_action = FW_ACCEPT };
	struct fw_rule rule;
	unsigned int lineno = 0;
	int err = 0;

	while (fgets(line, sizeof(line), f)) {
		char *text;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			err = sl_err(-EINVAL, "%s:%u: line longer than %d characters",
				     name, lineno, FW_LINE_MAX);
			goto fail;
		}
		text = strip_line(line);
		if (!*text)
			continue;
		if (!strncmp(text, "default", 7) && (!text[7] || isspace((unsigned char)text[7]))) {
			char *v = strip_line(text + 7);

			if (out.has_default) {
				err = sl_err(-EINVAL, "%s:%u: a second 'default' line", name, lineno);
				goto fail;
			}
			if (!strcmp(v, "accept"))
				out.default_action = FW_ACCEPT;
			else if (!strcmp(v, "drop"))
				out.default_action = FW_DROP;
			else {
				err = sl_err(-EINVAL, "%s:%u: default: '%s' is not accept or drop",
					     name, lineno, v);
				goto fail;
			}
			out.has_default = true;
			continue;
		}
		err = fw_rule_parse(text, &rule);
		if (!err)
			err = fw_ruleset_add(&out, &rule, out.n);
		if (err) {
			char msg[512];

			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			err = sl_err(err, "%s:%u: %s (in '%s')", name, lineno, msg, text);
			goto fail;
		}
	}
	if (ferror(f)) {
		err = sl_err(-EIO, "%s: read error", name);
		goto fail;
	}
	*rs = out;
	return 0;
fail:
	fw_ruleset_free(&out);
	return err;
}

int fw_ruleset_parse_file(const char *path, struct fw_ruleset *rs)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	int err;

	if (!f)
		return sl_err(-errno, "%s: %s", path, strerror(errno));
	err = fw_ruleset_parse_stream(f, strcmp(path, "-") ? path : "<stdin>", rs);
	if (f != stdin)
		fclose(f);
	return err;
}

static int format_flags(__u8 v, char *buf, size_t len)
{
	size_t off = 0;

	if (!v)
		return snprintf(buf, len, "none");
	buf[0] = '\0';
	for (int i = 0; i < 8; i++)
		if (v & (1 << i))
			off += snprintf(buf + off, len - off, "%s%s", off ? "," : "",
					tcp_flag_names[i]);
	return off;
}

int fw_rule_format(const struct fw_rule *r, char *buf, size_t len)
{
	const struct fw_spec *s = &r->spec;
	char a[INET6_ADDRSTRLEN], f1[64], f2[64], ifname[IF_NAMESIZE];
	size_t off = 0;

#define OUT(...) off += snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__)
	OUT("%s", r->action == FW_DROP ? "drop" : "accept");
	if (s->has & FW_HAS_SRC) {
		inet_ntop(s->family == 4 ? AF_INET : AF_INET6, s->src, a, sizeof(a));
		OUT(" src %s%s/%u", r->neg & FW_NEG_SRC ? "!" : "", a, s->src_len);
	}
	if (s->has & FW_HAS_DST) {
		inet_ntop(s->family == 4 ? AF_INET : AF_INET6, s->dst, a, sizeof(a));
		OUT(" dst %s%s/%u", r->neg & FW_NEG_DST ? "!" : "", a, s->dst_len);
	}
	if (s->has & FW_HAS_PROTO) {
		switch (s->proto) {
		case 6: OUT(" proto tcp"); break;
		case 17: OUT(" proto udp"); break;
		case 1: OUT(" proto %s", s->family == 4 ? "icmp" : "1"); break;
		case 58: OUT(" proto %s", s->family == 6 ? "icmpv6" : "58"); break;
		default: OUT(" proto %u", s->proto);
		}
	}
	if (s->has & FW_HAS_SPORT) {
		OUT(" sport %u", s->sport_lo);
		if (s->sport_hi != s->sport_lo)
			OUT("-%u", s->sport_hi);
	}
	if (s->has & FW_HAS_DPORT) {
		OUT(" dport %u", s->dport_lo);
		if (s->dport_hi != s->dport_lo)
			OUT("-%u", s->dport_hi);
	}
	if (s->has & FW_HAS_ICMP_TYPE)
		OUT(" icmp-type %u", s->icmp_type);
	if (s->has & FW_HAS_TCP_FLAGS) {
		format_flags(r->tcp_flags, f1, sizeof(f1));
		format_flags(r->tcp_mask, f2, sizeof(f2));
		OUT(" tcp-flags %s/%s", f1, f2);
	}
	if (s->has & FW_HAS_IIF) {
		if (!if_indextoname(s->iif, ifname))
			snprintf(ifname, sizeof(ifname), "if%u", s->iif);
		OUT(" iif %s", ifname);
	}
#undef OUT
	return off < len ? 0 : -ENOSPC;
}

/* ---- classification, the reference semantics ------------------------- */

static bool in_dim(const struct fw_rule *r, const __u64 *key, int d)
{
	return key[d] >= r->lo[d] && key[d] <= r->hi[d];
}

static bool rule_matches(const struct fw_rule *r, const __u64 *key, __u8 flags)
{
	static const int plain[] = { FW_DIM_FAMILY, FW_DIM_PROTO, FW_DIM_L4, FW_DIM_SPORT,
				     FW_DIM_DPORT, FW_DIM_ICMP_TYPE, FW_DIM_IIF };
	bool src, dst;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (!in_dim(r, key, plain[i]))
			return false;
	src = in_dim(r, key, FW_DIM_SRC_HI) && in_dim(r, key, FW_DIM_SRC_LO);
	dst = in_dim(r, key, FW_DIM_DST_HI) && in_dim(r, key, FW_DIM_DST_LO);
	if (src == !!(r->neg & FW_NEG_SRC) || dst == !!(r->neg & FW_NEG_DST))
		return false;
	return (flags & r->tcp_mask) == r->tcp_flags;
}

int fw_classify_linear(const struct fw_ruleset *rs, const __u64 *key, __u8 flags)
{
	for (__u32 i = 0; i < rs->n; i++)
		if (rule_matches(&rs->rules[i], key, flags))
			return i;
	return -1;
}

/* The leaf of a packed tree for key: *first and *cnt; false if broken. */
static bool packed_leaf(const struct fw_tree *t, __u32 node, const __u64 *key,
			__u32 *first, __u32 *cnt)
{
	for (int i = 0; i < FW_MAX_SDEPTH && node < t->nsnodes; i++) {
		const struct fw_snode *n = &t->snodes[node];
		__u32 j = 1 + (key[n->dim[0]] > n->thr[0]);
		__u32 k;

		j = 2 * j + 1 + (key[n->dim[j]] > n->thr[j]);
		k = 2 * (j - 3) + (key[n->dim[j]] > n->thr[j]);
		if (n->child[k] & FW_SN_LEAF) {
			*first = n->child[k] & ~FW_SN_LEAF;
			*cnt = n->cnt[k];
			return true;
		}
		node = n->child[k];
	}
	return false;
}

int fw_classify_tree(const struct fw_ruleset *rs, const struct fw_tree *t,
		     const __u64 *key, __u8 flags)
{
	int best = -1;

	for (__u32 tr = 0; tr < t->ntrees; tr++) {
		__u32 first, cnt;

		if (!packed_leaf(t, t->sroots[tr], key, &first, &cnt))
			return -2;
		/* Candidates are in rule order: stop at the first match, or
		 * where an earlier tree already found a better one. */
		for (__u32 i = 0; i < cnt; i++) {
			__u32 idx = t->leaves[first + i];

			if (best >= 0 && idx >= (__u32)best)
				break;
			if (rule_matches(&rs->rules[idx], key, flags)) {
				best = idx;
				break;
			}
		}
	}
	return best;
}

/* ---- the decision tree ------------------------------------------------ */

struct build {
	const struct fw_ruleset *rs;
	struct fw_tree *t;
	__u64 budget; /* leaf entries we allow before we stop splitting */
	__u64 *scratch_lo, *scratch_hi, *scratch_cand;
};

/* The region a rule can match, for placing it in the tree: negated
 * addresses may match almost anywhere, so they span their whole dims. */
static __u64 split_lo(const struct fw_rule *r, int d)
{
	if (((r->neg & FW_NEG_SRC) && (d == FW_DIM_SRC_HI || d == FW_DIM_SRC_LO)) ||
	    ((r->neg & FW_NEG_DST) && (d == FW_DIM_DST_HI || d == FW_DIM_DST_LO)))
		return 0;
	return r->lo[d];
}

static __u64 split_hi(const struct fw_rule *r, int d)
{
	if (((r->neg & FW_NEG_SRC) && (d == FW_DIM_SRC_HI || d == FW_DIM_SRC_LO)) ||
	    ((r->neg & FW_NEG_DST) && (d == FW_DIM_DST_HI || d == FW_DIM_DST_LO)))
		return UINT64_MAX;
	return r->hi[d];
}

/* Whether the rule matches every packet of the region: later rules there
 * can never match. */
static bool covers(const struct fw_rule *r, const __u64 *lo, const __u64 *hi)
{
	/* Only rules that end the block's scan hide the ones behind them:
	 * a jump comes back, a log or limit miss goes on. RETURN and goto
	 * never come back to this block, and all rules of a region share
	 * the block (it is a dimension). */
	bool ends = r->action == FW_ACCEPT || r->action == FW_DROP ||
		    r->action == FW_REJECT || r->action == FW_RETURN ||
		    r->action == FW_GOTO;

	if (!ends || r->neg || r->tcp_mask || r->check)
		return false;
	for (int d = 0; d < FW_DIMS; d++)
		if (r->lo[d] > lo[d] || r->hi[d] < hi[d])
			return false;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* The threshold on dim d that best balances the rules of a node: minimises
 * the larger side. Returns false when no threshold separates anything. */
static bool best_split(struct build *b, const __u32 *ids, __u32 n, int d,
		       const __u64 *lo, const __u64 *hi, __u64 *thr,
		       __u32 *cost, __u32 *total)
{
	const struct fw_rule *rules = b->rs->rules;
	__u64 *los = b->scratch_lo, *his = b->scratch_hi, *cand = b->scratch_cand;
	__u32 il = 0, ih = 0, nc = 0;
	bool found = false;

	for (__u32 i = 0; i < n; i++) {
		const struct fw_rule *r = &rules[ids[i]];

		los[i] = split_lo(r, d) < lo[d] ? lo[d] : split_lo(r, d);
		his[i] = split_hi(r, d) > hi[d] ? hi[d] : split_hi(r, d);
		/* Cutting just below a rule's start or just after its end. */
		if (los[i] > lo[d])
			cand[nc++] = los[i] - 1;
		if (his[i] < hi[d])
			cand[nc++] = his[i];
	}
	if (!nc)
		return false;
	qsort(los, n, sizeof(__u64), cmp_u64);
	qsort(his, n, sizeof(__u64), cmp_u64);
	qsort(cand, nc, sizeof(__u64), cmp_u64);
	for (__u32 c = 0; c < nc; c++) {
		__u64 t = cand[c];
		__u32 left, right, worst;

		if (c && cand[c - 1] == t)
			continue;
		while (il < n && los[il] <= t)
			il++;
		while (ih < n && his[ih] <= t)
			ih++;
		left = il; /* rules starting at or below t */
		right = n - ih; /* rules ending above t */
		worst = left > right ? left : right;
		if (worst < n && (!found || worst < *cost ||
				  (worst == *cost && left + right < *total))) {
			*thr = t;
			*cost = worst;
			*total = left + right;
			found = true;
		}
	}
	return found;
}

static int push_node(struct fw_tree *t, __u32 *idx)
{
	if (t->nnodes == t->cap_nodes) {
		__u32 cap = t->cap_nodes ? t->cap_nodes * 2 : 256;
		struct fw_node *nn = realloc(t->nodes, cap * sizeof(*nn));

		if (!nn)
			return sl_err(-ENOMEM, "out of memory building the rule tree");
		t->nodes = nn;
		t->cap_nodes = cap;
	}
	*idx = t->nnodes++;
	memset(&t->nodes[*idx], 0, sizeof(struct fw_node));
	return 0;
}

static int make_leaf(struct build *b, __u32 idx, const __u32 *ids, __u32 n,
		     __u32 depth)
{
	struct fw_tree *t = b->t;

	if (t->nleaves + n > t->cap_leaves) {
		__u32 cap = t->cap_leaves ? t->cap_leaves : 256;
		__u32 *nl;

		while (cap < t->nleaves + n)
			cap *= 2;
		nl = realloc(t->leaves, cap * sizeof(*nl));
		if (!nl)
			return sl_err(-ENOMEM, "out of memory building the rule tree");
		t->leaves = nl;
		t->cap_leaves = cap;
	}
	if (n) /* an empty rule set has no leaf array at all */
		memcpy(&t->leaves[t->nleaves], ids, n * sizeof(*ids));
	t->nodes[idx].dim = FW_DIMS;
	t->nodes[idx].left = t->nleaves;
	t->nodes[idx].right = n;
	t->nleaves += n;
	if (depth > t->depth)
		t->depth = depth;
	if (n > t->max_leaf)
		t->max_leaf = n;
	return 0;
}

static int build_node(struct build *b, __u32 idx, const __u32 *ids, __u32 n,
		      __u64 *lo, __u64 *hi, __u32 depth)
{
	const struct fw_rule *rules = b->rs->rules;
	__u64 thr = 0, best_thr = 0, save;
	__u32 cost = 0, total = 0, best_cost = n, best_total = 0;
	int best_d = -1, err;
	__u32 *left, *right, nl = 0, nr = 0, child;

	/* Rules after one that covers the whole region never match here. */
	for (__u32 i = 0; i < n; i++) {
		if (covers(&rules[ids[i]], lo, hi)) {
			n = i + 1;
			break;
		}
	}
	if (n <= FW_LEAF_SIZE || depth + 1 >= FW_MAX_DEPTH ||
	    b->t->nleaves > b->budget)
		return make_leaf(b, idx, ids, n, depth);
	for (int d = 0; d < FW_DIMS; d++) {
		if (!best_split(b, ids, n, d, lo, hi, &thr, &cost, &total))
			continue;
		if (best_d < 0 || cost < best_cost ||
		    (cost == best_cost && total < best_total)) {
			best_d = d;
			best_thr = thr;
			best_cost = cost;
			best_total = total;
		}
	}
	if (best_d < 0)
		return make_leaf(b, idx, ids, n, depth);

	left = malloc(n * sizeof(*left));
	right = malloc(n * sizeof(*right));
	if (!left || !right) {
		err = sl_err(-ENOMEM, "out of memory building the rule tree");
		goto out;
	}
	for (__u32 i = 0; i < n; i++) {
		const struct fw_rule *r = &rules[ids[i]];

		if (split_lo(r, best_d) <= best_thr)
			left[nl++] = ids[i];
		if (split_hi(r, best_d) > best_thr)
			right[nr++] = ids[i];
	}
	/* Children are pushed by index: push_node may move the array. */
	err = push_node(b->t, &child);
	if (err)
		goto out;
	b->t->nodes[idx].dim = best_d;
	b->t->nodes[idx].threshold = best_thr;
	b->t->nodes[idx].left = child;
	save = hi[best_d];
	hi[best_d] = best_thr;
	err = build_node(b, child, left, nl, lo, hi, depth + 1);
	hi[best_d] = save;
	if (err)
		goto out;
	err = push_node(b->t, &child);
	if (err)
		goto out;
	b->t->nodes[idx].right = child;
	save = lo[best_d];
	lo[best_d] = best_thr + 1;
	err = build_node(b, child, right, nr, lo, hi, depth + 1);
	lo[best_d] = save;
out:
	free(left);
	free(right);
	return err;
}

static int pack_node(struct fw_tree *t, __u32 bin, __u32 *out);

/* Fills heap position j (tests 0-6, children 7-14) of packed node s from
 * binary node bin. */
static int pack_fill(struct fw_tree *t, __u32 s, int j, __u32 bin)
{
	const struct fw_node *n = &t->nodes[bin];
	__u32 child;
	int err;

	if (j >= FW_SN_TESTS) {
		int k = j - FW_SN_TESTS;

		if (n->dim >= FW_DIMS) {
			t->snodes[s].child[k] = FW_SN_LEAF | n->left;
			t->snodes[s].cnt[k] = n->right;
			return 0;
		}
		err = pack_node(t, bin, &child);
		if (!err) /* pack_node may move the array */
			t->snodes[s].child[k] = child;
		return err;
	}
	if (n->dim >= FW_DIMS) { /* a leaf early: every way leads to it */
		t->snodes[s].dim[j] = FW_DIM_FAMILY;
		t->snodes[s].thr[j] = UINT64_MAX;
		return pack_fill(t, s, 2 * j + 1, bin) ?: pack_fill(t, s, 2 * j + 2, bin);
	}
	t->snodes[s].dim[j] = n->dim;
	t->snodes[s].thr[j] = n->threshold;
	return pack_fill(t, s, 2 * j + 1, n->left) ?: pack_fill(t, s, 2 * j + 2, n->right);
}

static int pack_node(struct fw_tree *t, __u32 bin, __u32 *out)
{
	if (t->nsnodes == t->cap_snodes) {
		__u32 cap = t->cap_snodes ? t->cap_snodes * 2 : 64;
		struct fw_snode *sn = realloc(t->snodes, cap * sizeof(*sn));

		if (!sn)
			return sl_err(-ENOMEM, "out of memory packing the rule tree");
		t->snodes = sn;
		t->cap_snodes = cap;
	}
	*out = t->nsnodes++;
	memset(&t->snodes[*out], 0, sizeof(struct fw_snode));
	return pack_fill(t, *out, 0, bin);
}

void fw_tree_free(struct fw_tree *t)
{
	free(t->nodes);
	free(t->snodes);
	free(t->leaves);
	memset(t, 0, sizeof(*t));
}

/* Whether an address box spans less than half its family's space. */
static bool addr_narrow(const struct fw_rule *r, int d_hi, __u8 negbit)
{
	int d_lo = d_hi + 1;

	if (r->neg & negbit)
		return false;
	if (r->lo[d_hi] != r->hi[d_hi])
		return r->hi[d_hi] - r->lo[d_hi] < (1ULL << 63);
	if (r->lo[FW_DIM_FAMILY] == 4 && r->hi[FW_DIM_FAMILY] == 4)
		return r->hi[d_lo] - r->lo[d_lo] < (1ULL << 31);
	return true;
}

/* Which fields a rule narrows: a bit each for source, destination, source
 * port and destination port. Negated or /0 addresses and wide port ranges
 * count as not narrowed: they span most of the field anyway. */
static unsigned int rule_group_sig(const struct fw_rule *r)
{
	unsigned int sig = 0;

	if (addr_narrow(r, FW_DIM_SRC_HI, FW_NEG_SRC))
		sig |= 1;
	if (addr_narrow(r, FW_DIM_DST_HI, FW_NEG_DST))
		sig |= 2;
	if (r->hi[FW_DIM_SPORT] - r->lo[FW_DIM_SPORT] < 32768)
		sig |= 4;
	if (r->hi[FW_DIM_DPORT] - r->lo[FW_DIM_DPORT] < 32768)
		sig |= 8;
	return sig;
}

#define FW_SIGS 16

/* Assigns each signature a tree: at most FW_MAX_TREES, merging the smallest
 * groups into the group whose fields differ least. */
static __u32 group_trees(const struct fw_ruleset *rs, int tree_of[FW_SIGS])
{
	__u32 count[FW_SIGS] = {}, ngroups = 0;
	int owner[FW_SIGS];

	for (__u32 i = 0; i < rs->n; i++)
		count[rule_group_sig(&rs->rules[i])]++;
	for (int g = 0; g < FW_SIGS; g++) {
		owner[g] = g;
		ngroups += count[g] > 0;
	}
	while (ngroups > FW_MAX_TREES) {
		int small = -1, into = -1, best = -100;

		for (int g = 0; g < FW_SIGS; g++)
			if (owner[g] == g && count[g] && (small < 0 || count[g] < count[small]))
				small = g;
		for (int g = 0; g < FW_SIGS; g++) {
			int score;

			if (g == small || owner[g] != g || !count[g])
				continue;
			score = __builtin_popcount(g & small) - __builtin_popcount(g & ~small);
			if (score > best) {
				best = score;
				into = g;
			}
		}
		for (int g = 0; g < FW_SIGS; g++)
			if (owner[g] == small)
				owner[g] = into;
		count[into] += count[small];
		count[small] = 0;
		ngroups--;
	}
	/* Number the trees; an empty rule set still gets one (empty) tree. */
	__u32 ntrees = 0;
	int num[FW_SIGS];

	for (int g = 0; g < FW_SIGS; g++)
		num[g] = owner[g] == g && count[g] ? (int)ntrees++ : -1;
	for (int g = 0; g < FW_SIGS; g++)
		tree_of[g] = num[owner[g]] >= 0 ? num[owner[g]] : 0;
	return ntrees ? ntrees : 1;
}

int fw_tree_build(const struct fw_ruleset *rs, struct fw_tree *t)
{
	struct build b = { .rs = rs, .t = t };
	__u64 lo[FW_DIMS], hi[FW_DIMS];
	__u32 *ids = malloc((rs->n + 1) * sizeof(*ids));
	int tree_of[FW_SIGS], err = 0;

	memset(t, 0, sizeof(*t));
	/* Replication past this many leaf entries stops further splits: the
	 * tree then degrades towards a linear scan instead of failing. */
	b.budget = 16ULL * rs->n + (1 << 20);
	b.scratch_lo = malloc((rs->n + 1) * sizeof(__u64));
	b.scratch_hi = malloc((rs->n + 1) * sizeof(__u64));
	b.scratch_cand = malloc((rs->n + 1) * 2 * sizeof(__u64));
	if (!ids || !b.scratch_lo || !b.scratch_hi || !b.scratch_cand) {
		err = sl_err(-ENOMEM, "out of memory building the rule tree");
		goto out;
	}
	t->ntrees = group_trees(rs, tree_of);
	for (__u32 tr = 0; tr < t->ntrees && !err; tr++) {
		__u32 n = 0;

		/* The group's rules, in rule order. */
		for (__u32 i = 0; i < rs->n; i++)
			if (tree_of[rule_group_sig(&rs->rules[i])] == (int)tr)
				ids[n++] = i;
		for (int d = 0; d < FW_DIMS; d++) {
			lo[d] = 0;
			hi[d] = UINT64_MAX;
		}
		err = push_node(t, &t->roots[tr]);
		if (!err)
			err = build_node(&b, t->roots[tr], ids, n, lo, hi, 0);
		if (!err)
			err = pack_node(t, t->roots[tr], &t->sroots[tr]);
	}
	if (err)
		fw_tree_free(t);
out:
	free(ids);
	free(b.scratch_lo);
	free(b.scratch_hi);
	free(b.scratch_cand);
	return err;
}

/* ---- loading and reading back ----------------------------------------- */

static int fill_array(int fd, const void *values, __u32 n, size_t size,
		      const char *what)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 *keys, count = n;
	int err = 0;

	if (!n)
		return 0;
	keys = malloc(n * sizeof(*keys));
	if (!keys)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < n; i++)
		keys[i] = i;
	if (bpf_map_update_batch(fd, keys, values, &count, &opts)) {
		/* Older kernels lack batch ops on arrays: one by one. */
		for (__u32 i = 0; i < n && !err; i++)
			if (bpf_map_update_elem(fd, &keys[i],
						(const char *)values + i * size, BPF_ANY))
				err = sl_err(-errno, "cannot fill %s: %s", what,
					     strerror(errno));
	}
	free(keys);
	return err;
}

static const char *const fw_pins[] = { "fw_rules", "fw_nodes", "fw_leaves",
				       "fw_counters", "fw_config", "fw_blocks",
				       "fw_limits", "fw_logs" };
#define FW_NPINS 8

/* Pins a blob (the iptables rule text) as an array of FW_BLOB_CHUNK-byte
 * values: bpffs holds only BPF objects, and the text must outlive us. */
static int pin_blob(const char *dir, const void *blob, size_t len)
{
	__u32 n = (len + FW_BLOB_CHUNK) / FW_BLOB_CHUNK; /* room for a NUL */
	char *buf = calloc(n, FW_BLOB_CHUNK);
	int fd, err = 0;

	if (!buf)
		return sl_err(-ENOMEM, "out of memory");
	memcpy(buf, blob, len);
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fw_blob", sizeof(__u32),
			    FW_BLOB_CHUNK, n, NULL);
	if (fd < 0)
		err = sl_err(-errno, "cannot create the rule text map: %s",
			     strerror(errno));
	for (__u32 i = 0; !err && i < n; i++)
		if (bpf_map_update_elem(fd, &i, buf + (size_t)i * FW_BLOB_CHUNK, BPF_ANY))
			err = sl_err(-errno, "cannot fill the rule text map: %s",
				     strerror(errno));
	err = err ?: sl_pin(dir, "fw_blob", fd);
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

int fw_blob_read(int dir_fd, char **text)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd = sl_obj_get_at(dir_fd, "fw_blob"), err = 0;
	char *buf;

	if (fd < 0)
		return fd;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = sl_err(-errno, "cannot read the rule text map: %s", strerror(errno));
		goto out;
	}
	buf = calloc(info.max_entries + 1, FW_BLOB_CHUNK);
	if (!buf) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	for (__u32 i = 0; i < info.max_entries; i++)
		if (bpf_map_lookup_elem(fd, &i, buf + (size_t)i * FW_BLOB_CHUNK)) {
			free(buf);
			err = sl_err(-errno, "cannot read the rule text map: %s",
				     strerror(errno));
			goto out;
		}
	*text = buf;
out:
	close(fd);
	return err;
}

int fw_load(struct sl_ctx *ctx, const char *name, const struct fw_ruleset *rs,
	    const struct fw_counter *const *carry)
{
	struct fw_block block = { .start = 0, .parent = FW_NONE,
				  .policy = rs->default_action,
				  .policy_cnt = rs->n };
	struct fw_load_opts opts = { .mode = FW_MODE_PLAIN, .blocks = &block,
				     .nblocks = 1, .ncounters = rs->n + 1,
				     .carry = carry };
	struct fw_ruleset copy = *rs;
	int err;

	/* A plain rule set counts rule i at i. */
	copy.rules = malloc((rs->n ? rs->n : 1) * sizeof(*copy.rules));
	if (!copy.rules)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < rs->n; i++) {
		copy.rules[i] = rs->rules[i];
		copy.rules[i].cnt = i;
	}
	err = fw_load_ex(ctx, name, &copy, &opts);
	free(copy.rules);
	return err;
}

static int fill_maps(struct bpf_map **maps, const struct fw_ruleset *rs,
		     const struct fw_tree *tree, const struct fw_load_opts *o,
		     const struct fw_config *cfg)
{
	__u32 zero = 0;
	int err;

	err = fill_array(bpf_map__fd(maps[0]), rs->rules, rs->n,
			 sizeof(struct fw_rule), "fw_rules");
	err = err ?: fill_array(bpf_map__fd(maps[1]), tree->snodes, tree->nsnodes,
				sizeof(struct fw_snode), "fw_nodes");
	err = err ?: fill_array(bpf_map__fd(maps[2]), tree->leaves, tree->nleaves,
				sizeof(__u32), "fw_leaves");
	err = err ?: fill_array(bpf_map__fd(maps[5]), o->blocks, o->nblocks,
				sizeof(struct fw_block), "fw_blocks");
	/* Limits one by one: their values hold a spin lock. */
	for (__u32 i = 0; !err && i < o->nlimits; i++)
		if (bpf_map_update_elem(bpf_map__fd(maps[6]), &i, &o->limits[i], BPF_ANY))
			err = sl_err(-errno, "cannot fill fw_limits: %s", strerror(errno));
	err = err ?: fill_array(bpf_map__fd(maps[7]), o->logs, o->nlogs,
				FW_LOG_PREFIX, "fw_logs");
	err = err ?: fill_array(bpf_map__fd(maps[8]), o->ifaddrs, o->nifaddrs,
				sizeof(struct fw_ifaddr), "fw_ifaddrs");
	if (!err && bpf_map_update_elem(bpf_map__fd(maps[4]), &zero, cfg, BPF_ANY))
		err = sl_err(-errno, "cannot write fw_config: %s", strerror(errno));
	for (__u32 i = 0; o->carry && !err && i < o->ncounters; i++)
		if (o->carry[i] &&
		    bpf_map_update_elem(bpf_map__fd(maps[3]), &i, o->carry[i], BPF_ANY))
			err = sl_err(-errno, "cannot carry counters over: %s",
				     strerror(errno));
	return err;
}

int fw_load_ex(struct sl_ctx *ctx, const char *name, const struct fw_ruleset *rs,
	       const struct fw_load_opts *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct fw_config cfg = { .nrules = rs->n, .default_action = rs->default_action,
				 .mode = o->mode, .ncounters = o->ncounters };
	char stage[PATH_MAX];
	struct fw_tree tree;
	struct sl_instance inst;
	struct firewall_bpf *skel = NULL;
	struct bpf_map *maps[FW_NPINS + 1]; /* + fw_ifaddrs, not pinned */
	int err;

	err = sl_instance_prepare(ctx, name, o->type ? o->type : FW_TYPE, &inst);
	if (err)
		return err;
	err = fw_tree_build(rs, &tree);
	if (err)
		return err;
	cfg.ntrees = tree.ntrees;
	memcpy(cfg.roots, tree.sroots, sizeof(cfg.roots));
	memcpy(cfg.top, o->top, sizeof(cfg.top));
	skel = firewall_bpf__open_opts(&opts);
	if (!skel) {
		err = sl_err(-errno, "cannot open the firewall BPF object: %s",
			     strerror(errno));
		goto out;
	}
	skel->rodata->fw_slot = inst.slot;
	maps[0] = skel->maps.fw_rules;
	maps[1] = skel->maps.fw_nodes;
	maps[2] = skel->maps.fw_leaves;
	maps[3] = skel->maps.fw_counters;
	maps[4] = skel->maps.fw_config;
	maps[5] = skel->maps.fw_blocks;
	maps[6] = skel->maps.fw_limits;
	maps[7] = skel->maps.fw_logs;
	maps[8] = skel->maps.fw_ifaddrs;
	bpf_map__set_max_entries(maps[0], rs->n ? rs->n : 1);
	bpf_map__set_max_entries(maps[1], tree.nsnodes);
	bpf_map__set_max_entries(maps[2], tree.nleaves ? tree.nleaves : 1);
	bpf_map__set_max_entries(maps[3], o->ncounters ? o->ncounters : 1);
	bpf_map__set_max_entries(maps[5], o->nblocks ? o->nblocks : 1);
	bpf_map__set_max_entries(maps[6], o->nlimits ? o->nlimits : 1);
	bpf_map__set_max_entries(maps[7], o->nlogs ? o->nlogs : 1);
	err = firewall_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the firewall BPF program: %s",
			     strerror(-err));
		goto out;
	}
	err = fill_maps(maps, rs, &tree, o, &cfg);
	if (err)
		goto out;

	err = sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	for (int i = 0; i < FW_NPINS && !err; i++)
		err = sl_pin(stage, fw_pins[i], bpf_map__fd(maps[i]));
	if (!err && o->blob)
		err = pin_blob(stage, o->blob, o->blob_len);
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.firewall_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.firewall_tc));
	err = err ?: sl_instance_commit(ctx, &inst,
					bpf_program__fd(skel->progs.firewall_xdp),
					bpf_program__fd(skel->progs.firewall_tc));
	if (err)
		sl_pin_dir_remove(stage);
out:
	firewall_bpf__destroy(skel);
	fw_tree_free(&tree);
	return err;
}

void fw_percpu_free(struct fw_counter **percpu, __u32 n)
{
	if (!percpu)
		return;
	for (__u32 i = 0; i < n; i++)
		free(percpu[i]);
	free(percpu);
}

static int fw_read_once(struct sl_ctx *ctx, const char *name, struct fw_ruleset *rs,
			struct fw_counter **counters, struct fw_counter ***percpu)
{
	struct sl_instance inst;
	struct fw_config cfg;
	struct fw_ruleset out = {};
	struct fw_counter *sum = NULL, **per = NULL;
	int ncpu = libbpf_num_possible_cpus();
	int dir_fd, rules_fd = -1, cnt_fd = -1, cfg_fd = -1, err;
	__u32 zero = 0;

	err = sl_instance_get(ctx, name, &inst);
	if (err)
		return err;
	if (strcmp(inst.type, FW_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a firewall", name,
			      inst.type);
	dir_fd = sl_instance_open_dir(ctx, name);
	rules_fd = dir_fd < 0 ? dir_fd : sl_obj_get_at(dir_fd, "fw_rules");
	cnt_fd = rules_fd < 0 ? -1 : sl_obj_get_at(dir_fd, "fw_counters");
	cfg_fd = cnt_fd < 0 ? -1 : sl_obj_get_at(dir_fd, "fw_config");
	if (dir_fd >= 0)
		close(dir_fd);
	if (cfg_fd < 0) {
		err = rules_fd < 0 ? rules_fd : cnt_fd < 0 ? cnt_fd : cfg_fd;
		goto out;
	}
	if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg)) {
		err = sl_err(-errno, "cannot read fw_config of '%s'", name);
		goto out;
	}
	out.default_action = cfg.default_action;
	out.has_default = true;
	out.rules = calloc(cfg.nrules ? cfg.nrules : 1, sizeof(*out.rules));
	sum = calloc(cfg.nrules + 1, sizeof(*sum));
	per = calloc(cfg.nrules + 1, sizeof(*per));
	if (!out.rules || !sum || !per) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	out.cap = cfg.nrules ? cfg.nrules : 1;
	for (__u32 i = 0; i < cfg.nrules; i++) {
		if (bpf_map_lookup_elem(rules_fd, &i, &out.rules[i])) {
			err = sl_err(-errno, "cannot read rule %u of '%s'", i + 1, name);
			goto out;
		}
		out.n++;
	}
	for (__u32 i = 0; i <= cfg.nrules; i++) {
		per[i] = calloc(ncpu, sizeof(struct fw_counter));
		if (!per[i]) {
			err = sl_err(-ENOMEM, "out of memory");
			goto out;
		}
		if (bpf_map_lookup_elem(cnt_fd, &i, per[i])) {
			err = sl_err(-errno, "cannot read counter %u of '%s'", i, name);
			goto out;
		}
		for (int c = 0; c < ncpu; c++) {
			sum[i].packets += per[i][c].packets;
			sum[i].bytes += per[i][c].bytes;
		}
	}
	*rs = out;
	out.rules = NULL;
	if (counters) {
		*counters = sum;
		sum = NULL;
	}
	if (percpu) {
		*percpu = per;
		per = NULL;
	}
out:
	fw_percpu_free(per, cfg_fd < 0 ? 0 : cfg.nrules + 1);
	free(sum);
	fw_ruleset_free(&out);
	if (rules_fd >= 0)
		close(rules_fd);
	if (cnt_fd >= 0)
		close(cnt_fd);
	if (cfg_fd >= 0)
		close(cfg_fd);
	return err;
}

int fw_read(struct sl_ctx *ctx, const char *name, struct fw_ruleset *rs,
	    struct fw_counter **counters, struct fw_counter ***percpu)
{
	int err = -ENOENT;

	/* Readers take no lock: a reload may remove the generation being
	 * read, which shows as ENOENT; the next try finds the new one. */
	for (int tries = 0; tries < 5 && err == -ENOENT; tries++)
		err = fw_read_once(ctx, name, rs, counters, percpu);
	return err;
}

/* Reloads the rule set with one rule inserted (rule != NULL) or deleted,
 * carrying every other rule's counters over to its new position. */
static int fw_edit(struct sl_ctx *ctx, const char *name, __u32 pos,
		   const struct fw_rule *rule)
{
	struct fw_ruleset rs;
	struct fw_counter **per = NULL;
	const struct fw_counter **carry = NULL;
	__u32 oldn;
	int err = fw_read(ctx, name, &rs, NULL, &per);

	if (err)
		return err;
	oldn = rs.n;
	carry = calloc(oldn + 2, sizeof(*carry));
	if (!carry) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (rule) {
		__u32 at = pos ? pos - 1 : rs.n;

		err = fw_ruleset_add(&rs, rule, at);
		if (err)
			goto out;
		for (__u32 i = 0; i < oldn; i++)
			carry[i < at ? i : i + 1] = per[i];
		carry[rs.n] = per[oldn];
	} else {
		if (!pos || pos > rs.n) {
			err = sl_err(-ENOENT, "no rule %u in '%s' (it has %u rules)",
				     pos, name, rs.n);
			goto out;
		}
		memmove(&rs.rules[pos - 1], &rs.rules[pos],
			(rs.n - pos) * sizeof(*rs.rules));
		rs.n--;
		for (__u32 i = 0, j = 0; i < oldn; i++)
			if (i != pos - 1)
				carry[j++] = per[i];
		carry[rs.n] = per[oldn];
	}
	err = fw_load(ctx, name, &rs, carry);
out:
	free(carry);
	fw_percpu_free(per, oldn + 1);
	fw_ruleset_free(&rs);
	return err;
}

int fw_rule_insert(struct sl_ctx *ctx, const char *name, __u32 pos,
		   const struct fw_rule *rule)
{
	return fw_edit(ctx, name, pos, rule);
}

int fw_rule_delete(struct sl_ctx *ctx, const char *name, __u32 pos)
{
	return fw_edit(ctx, name, pos, NULL);
}
