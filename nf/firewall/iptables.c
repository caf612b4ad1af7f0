// SPDX-License-Identifier: GPL-2.0
/* iptables-save rule sets on the firewall NF.
 *
 * Design: the chains are compiled into flat rules grouped in blocks. Each
 * built-in chain is a top-level block; each jump (-j CHAIN, -g CHAIN) gets
 * its own inlined copy of the called chain as a child block placed right
 * after the jumping rule. The block is a dimension of the decision tree,
 * so a scan looks only at the rules of the block it is in, from a resume
 * point on: a jump enters the child block at its start, RETURN (or the end
 * of the block) resumes the parent just after the child, a LOG rule or a
 * limit miss resumes just after the rule. Plain ACCEPT/DROP rule sets scan
 * once, as the plain firewall does; every jump, return or log costs one
 * more scan. Rules that match several disjoint things (multiport, address
 * negations and ranges, interface wildcards) become several flat rules
 * sharing the original rule's counter; after a match the scan resumes
 * behind all of them, so a rule counts and acts once.
 *
 * Versus ANDing the jump's match into each rule of the called chain: that
 * needs no blocks but cannot express a negated jump match ANDed with a
 * rule's own match on the same field as one box, and jump counters (which
 * count every packet entering the chain) need a rule of their own anyway.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <ifaddrs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "iptables.h"
#include "conntrack.h"

typedef unsigned __int128 u128;

#define IPT_TOKENS_MAX 128
#define IPT_LINE_MAX 4096
#define IPT_EXPAND_MAX 4096 /* flat rules from one rule */

struct ival {
	u128 lo, hi;
};

struct ivals {
	struct ival *v;
	int n, cap;
};

struct ipt_chain {
	char name[32];
	int policy; /* FW_ACCEPT, FW_DROP; -1 for a user chain */
	int builtin; /* enum fw_chain, or -1 */
};

struct ipt_rule {
	int line;
	int chain;
	char *text; /* the rule after "-A CHAIN ", as iptables-save prints it */
	struct ivals src, dst, proto, iif, oif, sport, dport, ports;
	bool has_src, has_dst, has_proto, has_iif, has_oif, has_sport, has_dport;
	bool has_ports, never, l4;
	__u8 tcp_flags, tcp_mask, ct_mask, icmp_type, code_lo, code_hi;
	__u8 mac[6];
	__u16 check;
	bool limit;
	__u64 limit_avg; /* seconds * FW_LIMIT_SCALE per packet */
	__u32 limit_burst;
	int target; /* enum fw_action */
	int jump; /* chain index for JUMP/GOTO */
	char jump_name[32];
	__u8 reject;
	char prefix[FW_LOG_PREFIX];
};

struct ipt_table {
	int family;
	struct ipt_chain *chains;
	int nchains;
	struct ipt_rule *rules;
	int nrules;
};

static const char *const builtin_names[FW_CHAINS] = { "INPUT", "FORWARD", "OUTPUT" };

/* ---- value lists ------------------------------------------------------ */

static int iv_add(struct ivals *l, u128 lo, u128 hi)
{
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 4;
		struct ival *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return sl_err(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].lo = lo;
	l->v[l->n].hi = hi;
	l->n++;
	return 0;
}

static void iv_free(struct ivals *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int iv_cmp(const void *a, const void *b)
{
	const struct ival *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges overlapping or adjacent intervals. */
static void iv_norm(struct ivals *l)
{
	int k = 0;

	if (!l->n)
		return;
	qsort(l->v, l->n, sizeof(*l->v), iv_cmp);
	for (int i = 1; i < l->n; i++) {
		if (l->v[i].lo <= l->v[k].hi + 1 || l->v[k].hi == (u128)-1) {
			if (l->v[i].hi > l->v[k].hi)
				l->v[k].hi = l->v[i].hi;
		} else {
			l->v[++k] = l->v[i];
		}
	}
	l->n = k + 1;
}

/* Everything in [0, max] not in l. */
static int iv_complement(struct ivals *l, u128 max)
{
	struct ivals out = {};
	u128 next = 0;
	bool done = false;
	int err = 0;

	iv_norm(l);
	for (int i = 0; i < l->n && !err; i++) {
		if (l->v[i].lo > next)
			err = iv_add(&out, next, l->v[i].lo - 1);
		if (l->v[i].hi >= max) {
			done = true;
			break;
		}
		next = l->v[i].hi + 1;
	}
	if (!err && !done && next <= max)
		err = iv_add(&out, next, max);
	iv_free(l);
	*l = out;
	return err;
}

static int iv_intersect(struct ivals *a, const struct ivals *b)
{
	struct ivals out = {};
	int err = 0;

	for (int i = 0; i < a->n && !err; i++)
		for (int j = 0; j < b->n && !err; j++) {
			u128 lo = a->v[i].lo > b->v[j].lo ? a->v[i].lo : b->v[j].lo;
			u128 hi = a->v[i].hi < b->v[j].hi ? a->v[i].hi : b->v[j].hi;

			if (lo <= hi)
				err = iv_add(&out, lo, hi);
		}
	iv_free(a);
	*a = out;
	return err;
}

/* ---- tokens ----------------------------------------------------------- */

/* Splits a line into words; double quotes group words, backslash escapes
 * a quote or a backslash inside them (as iptables-save writes). */
static int tokenize(char *line, char **tok, int *ntok)
{
	char *r = line, *w;
	int n = 0;

	for (;;) {
		while (isspace((unsigned char)*r))
			r++;
		if (!*r)
			break;
		if (n == IPT_TOKENS_MAX)
			return sl_err(-EINVAL, "more than %d words", IPT_TOKENS_MAX);
		tok[n++] = w = r;
		if (*r == '"') {
			r++;
			while (*r && *r != '"') {
				if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
					r++;
				*w++ = *r++;
			}
			if (*r != '"')
				return sl_err(-EINVAL, "unterminated quote");
			r++;
		} else {
			while (*r && !isspace((unsigned char)*r))
				*w++ = *r++;
		}
		if (*r)
			r++;
		*w = '\0';
	}
	*ntok = n;
	return 0;
}

/* Joins words back, quoting those that need it. */
static char *join_words(char **tok, int n)
{
	size_t len = 1;
	char *out, *p;

	for (int i = 0; i < n; i++)
		len += 2 * strlen(tok[i]) + 3;
	out = p = malloc(len);
	if (!out)
		return NULL;
	for (int i = 0; i < n; i++) {
		bool quote = !*tok[i] || strpbrk(tok[i], " \t\"\\'");

		if (i)
			*p++ = ' ';
		if (quote)
			*p++ = '"';
		for (const char *s = tok[i]; *s; s++) {
			if (quote && (*s == '"' || *s == '\\'))
				*p++ = '\\';
			*p++ = *s;
		}
		if (quote)
			*p++ = '"';
	}
	*p = '\0';
	return out;
}

/* ---- matches ---------------------------------------------------------- */

static int parse_u64(const char *s, __u64 max, __u64 *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static u128 addr_value(const __u8 *a, int family)
{
	u128 v = 0;

	for (int i = 0; i < (family == 4 ? 4 : 16); i++)
		v = (v << 8) | a[i];
	return v;
}

static int parse_addr(const char *s, int family, u128 *v)
{
	__u8 a[16];

	if (inet_pton(family == 4 ? AF_INET : AF_INET6, s, a) != 1)
		return sl_err(-EINVAL, "'%s' is not an IPv%d address", s, family);
	*v = addr_value(a, family);
	return 0;
}

/* ADDR[/LEN|/MASK][,...] as -s and -d take it; host bits are ignored, as
 * iptables does. */
static int parse_addrs(const char *arg, int family, struct ivals *out)
{
	int bits = family == 4 ? 32 : 128;
	char buf[IPT_LINE_MAX], *save, *item;
	int err = 0;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (item = strtok_r(buf, ",", &save); item && !err;
	     item = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(item, '/');
		u128 a, mask, host;
		__u64 len = bits;

		if (slash)
			*slash++ = '\0';
		err = parse_addr(item, family, &a);
		if (err)
			return err;
		if (slash && strpbrk(slash, ".:")) {
			u128 m;

			if (parse_addr(slash, family, &m))
				return sl_err(-EINVAL, "bad mask '%s'", slash);
			for (len = 0; len < (__u64)bits && (m >> (bits - 1 - len)) & 1; len++)
				;
			if (len < (__u64)bits && (m << len) << (128 - bits))
				return sl_err(-EINVAL, "mask '%s' is not contiguous (not supported)",
					      slash);
		} else if (slash && parse_u64(slash, bits, &len)) {
			return sl_err(-EINVAL, "bad prefix length '/%s'", slash);
		}
		host = len == (__u64)bits ? 0 :
		       (len == 0 ? (bits == 128 ? (u128)-1 : ((u128)1 << bits) - 1) :
			((u128)1 << (bits - len)) - 1);
		mask = ~host;
		err = iv_add(out, a & mask, (a & mask) | host);
	}
	return err;
}

static int parse_iprange(const char *arg, int family, struct ivals *out)
{
	char buf[128], *dash;
	u128 lo, hi;
	int err;

	snprintf(buf, sizeof(buf), "%s", arg);
	dash = strchr(buf, '-');
	if (dash)
		*dash++ = '\0';
	err = parse_addr(buf, family, &lo);
	if (!err)
		err = dash ? parse_addr(dash, family, &hi) : (hi = lo, 0);
	if (err)
		return err;
	if (lo > hi)
		return sl_err(-EINVAL, "range '%s' is empty", arg);
	return iv_add(out, lo, hi);
}

/* PORT[:PORT][,...] (multiport lists) or one PORT[:PORT]. */
static int parse_ports(const char *arg, bool list, struct ivals *out)
{
	char buf[IPT_LINE_MAX], *save, *item;
	int count = 0;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (item = strtok_r(buf, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		__u64 lo = 0, hi = 65535;
		struct servent *se;

		if (colon)
			*colon++ = '\0';
		if (*item && parse_u64(item, 65535, &lo)) {
			se = getservbyname(item, NULL);
			if (!se)
				return sl_err(-EINVAL, "bad port '%s'", item);
			lo = ntohs(se->s_port);
		}
		if (!colon)
			hi = lo;
		else if (*colon && parse_u64(colon, 65535, &hi))
			return sl_err(-EINVAL, "bad port '%s'", colon);
		if (lo > hi)
			return sl_err(-EINVAL, "port range '%s' is empty", arg);
		if (++count > 15)
			return sl_err(-EINVAL, "more than 15 ports (iptables' multiport limit)");
		if (iv_add(out, lo, hi))
			return -ENOMEM;
		if (!list && count > 1)
			return sl_err(-EINVAL, "one port or range expected, got '%s'", arg);
	}
	if (!count)
		return sl_err(-EINVAL, "no port in '%s'", arg);
	return 0;
}

/* Interfaces matching NAME or NAME+ now, as ifindex values. */
static int parse_iface(const char *arg, struct ivals *out)
{
	size_t len = strlen(arg);
	bool wild = len && arg[len - 1] == '+';
	struct if_nameindex *ifs, *i;

	if (!len || len >= IF_NAMESIZE)
		return sl_err(-EINVAL, "bad interface name '%s'", arg);
	ifs = if_nameindex();
	if (!ifs)
		return sl_err(-errno, "cannot list interfaces: %s", strerror(errno));
	for (i = ifs; i->if_index; i++) {
		bool hit = wild ? !strncmp(i->if_name, arg, len - 1) :
				  !strcmp(i->if_name, arg);

		if (hit && iv_add(out, i->if_index, i->if_index)) {
			if_freenameindex(ifs);
			return -ENOMEM;
		}
	}
	if_freenameindex(ifs);
	return 0;
}

static int parse_proto(const char *arg, int family, struct ivals *out, bool *all)
{
	struct protoent *pe;
	__u64 n;

	*all = false;
	if (!strcasecmp(arg, "all") || !strcmp(arg, "0")) {
		*all = true;
		return 0;
	}
	if (!parse_u64(arg, 255, &n))
		;
	else if (!strcasecmp(arg, "icmpv6") || !strcasecmp(arg, "ipv6-icmp"))
		n = 58;
	else if ((pe = getprotobyname(arg)))
		n = pe->p_proto;
	else
		return sl_err(-EINVAL, "unknown protocol '%s'", arg);
	(void)family;
	return iv_add(out, n, n);
}

static const char *const tcp_flag_names[] = { "FIN", "SYN", "RST", "PSH", "ACK", "URG" };

static int parse_tcp_flag_list(const char *s, __u8 *out)
{
	char buf[128], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", s);
	*out = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int i;

		if (!strcasecmp(tok, "ALL")) {
			*out |= 0x3f; /* iptables' ALL: FIN..URG, not ECE/CWR */
			continue;
		}
		if (!strcasecmp(tok, "NONE"))
			continue;
		for (i = 0; i < 6; i++)
			if (!strcasecmp(tok, tcp_flag_names[i]))
				break;
		if (i == 6)
			return sl_err(-EINVAL, "unknown TCP flag '%s'", tok);
		*out |= 1 << i;
	}
	return 0;
}

static const struct {
	const char *name;
	__u8 type, code_lo, code_hi;
} icmp_names[] = {
	{ "echo-reply", 0, 0, 255 }, { "destination-unreachable", 3, 0, 255 },
	{ "network-unreachable", 3, 0, 0 }, { "host-unreachable", 3, 1, 1 },
	{ "protocol-unreachable", 3, 2, 2 }, { "port-unreachable", 3, 3, 3 },
	{ "source-quench", 4, 0, 255 }, { "redirect", 5, 0, 255 },
	{ "echo-request", 8, 0, 255 }, { "time-exceeded", 11, 0, 255 },
	{ "parameter-problem", 12, 0, 255 }, { "timestamp-request", 13, 0, 255 },
	{ "timestamp-reply", 14, 0, 255 },
};

static const struct {
	const char *name;
	__u8 type, code_lo, code_hi;
} icmp6_names[] = {
	{ "destination-unreachable", 1, 0, 255 }, { "no-route", 1, 0, 0 },
	{ "packet-too-big", 2, 0, 255 }, { "time-exceeded", 3, 0, 255 },
	{ "parameter-problem", 4, 0, 255 }, { "echo-request", 128, 0, 255 },
	{ "echo-reply", 129, 0, 255 }, { "router-solicitation", 133, 0, 255 },
	{ "router-advertisement", 134, 0, 255 }, { "neighbour-solicitation", 135, 0, 255 },
	{ "neighbor-solicitation", 135, 0, 255 }, { "neighbour-advertisement", 136, 0, 255 },
	{ "neighbor-advertisement", 136, 0, 255 },
};

/* TYPE[/CODE] or a name; v4 "any" (255) matches every type. */
static int parse_icmp(const char *arg, int family, struct ipt_rule *r, bool *any)
{
	char buf[64], *slash;
	__u64 t, c;

	*any = false;
	r->code_lo = 0;
	r->code_hi = 255;
	if (family == 4 && !strcasecmp(arg, "any")) {
		*any = true;
		return 0;
	}
	if (family == 4) {
		for (size_t i = 0; i < sizeof(icmp_names) / sizeof(icmp_names[0]); i++)
			if (!strcasecmp(arg, icmp_names[i].name)) {
				r->icmp_type = icmp_names[i].type;
				r->code_lo = icmp_names[i].code_lo;
				r->code_hi = icmp_names[i].code_hi;
				return 0;
			}
	} else {
		for (size_t i = 0; i < sizeof(icmp6_names) / sizeof(icmp6_names[0]); i++)
			if (!strcasecmp(arg, icmp6_names[i].name)) {
				r->icmp_type = icmp6_names[i].type;
				r->code_lo = icmp6_names[i].code_lo;
				r->code_hi = icmp6_names[i].code_hi;
				return 0;
			}
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (parse_u64(buf, 255, &t) || (slash && parse_u64(slash, 255, &c)))
		return sl_err(-EINVAL, "bad ICMP type '%s'", arg);
	if (family == 4 && t == 255) {
		*any = true;
		return 0;
	}
	r->icmp_type = t;
	if (slash)
		r->code_lo = r->code_hi = c;
	return 0;
}

static int parse_states(const char *arg, __u8 *mask)
{
	char buf[128], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	*mask = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcasecmp(tok, "NEW"))
			*mask |= SL_CT_NEW;
		else if (!strcasecmp(tok, "ESTABLISHED"))
			*mask |= SL_CT_ESTABLISHED;
		else if (!strcasecmp(tok, "RELATED"))
			*mask |= SL_CT_RELATED;
		else if (!strcasecmp(tok, "INVALID"))
			*mask |= SL_CT_INVALID;
		else if (!strcasecmp(tok, "UNTRACKED"))
			*mask |= SL_CT_UNTRACKED;
		else
			return sl_err(-EINVAL, "conntrack state '%s' is not supported "
				      "(NEW ESTABLISHED RELATED INVALID UNTRACKED)", tok);
	}
	return 0;
}

/* xt_limit's user2credits(), in its u32 arithmetic: the products wrap
 * there (rate x burst first), and the kernel keeps what they wrap to. */
static __u32 limit_credits(__u32 user)
{
	const __u32 per_sec = FW_LIMIT_HZ * FW_LIMIT_CREDITS_PER_TICK;

	if (user > 0xFFFFFFFFU / per_sec)
		return (user / FW_LIMIT_SCALE) * per_sec;
	return user * per_sec / FW_LIMIT_SCALE;
}

/* N/sec|minute|hour|day as xt_limit stores it: FW_LIMIT_SCALE units of
 * seconds per packet. */
static int parse_rate(const char *arg, __u64 *avg)
{
	char buf[64], *slash;
	__u64 n, per = 1;

	snprintf(buf, sizeof(buf), "%s", arg);
	slash = strchr(buf, '/');
	if (slash) {
		*slash++ = '\0';
		if (!strncasecmp(slash, "second", strlen(slash)) ||
		    !strncasecmp(slash, "sec", 3))
			per = 1;
		else if (!strncasecmp(slash, "minute", strlen(slash)) ||
			 !strncasecmp(slash, "min", 3))
			per = 60;
		else if (!strncasecmp(slash, "hour", strlen(slash)))
			per = 3600;
		else if (!strncasecmp(slash, "day", strlen(slash)))
			per = 86400;
		else
			return sl_err(-EINVAL, "bad rate unit in '%s'", arg);
	}
	if (parse_u64(buf, 10000, &n) || !n)
		return sl_err(-EINVAL, "bad rate '%s'", arg);
	*avg = FW_LIMIT_SCALE * per / n;
	return 0;
}

static int parse_mac(const char *arg, __u8 mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(arg, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5], &tail) != 6)
		return sl_err(-EINVAL, "bad MAC address '%s'", arg);
	for (int i = 0; i < 6; i++) {
		if (b[i] > 255)
			return sl_err(-EINVAL, "bad MAC address '%s'", arg);
		mac[i] = b[i];
	}
	return 0;
}

static const struct {
	const char *name;
	__u8 type;
	int family;
} reject_names[] = {
	{ "icmp-net-unreachable", FW_REJ_ICMP_NET_UNREACH, 4 },
	{ "net-unreach", FW_REJ_ICMP_NET_UNREACH, 4 },
	{ "icmp-host-unreachable", FW_REJ_ICMP_HOST_UNREACH, 4 },
	{ "host-unreach", FW_REJ_ICMP_HOST_UNREACH, 4 },
	{ "icmp-port-unreachable", FW_REJ_ICMP_PORT_UNREACH, 4 },
	{ "port-unreach", FW_REJ_ICMP_PORT_UNREACH, 4 },
	{ "icmp-proto-unreachable", FW_REJ_ICMP_PROTO_UNREACH, 4 },
	{ "proto-unreach", FW_REJ_ICMP_PROTO_UNREACH, 4 },
	{ "icmp-net-prohibited", FW_REJ_ICMP_NET_PROHIB, 4 },
	{ "net-prohib", FW_REJ_ICMP_NET_PROHIB, 4 },
	{ "icmp-host-prohibited", FW_REJ_ICMP_HOST_PROHIB, 4 },
	{ "host-prohib", FW_REJ_ICMP_HOST_PROHIB, 4 },
	{ "icmp-admin-prohibited", FW_REJ_ICMP_ADMIN_PROHIB, 4 },
	{ "admin-prohib", FW_REJ_ICMP_ADMIN_PROHIB, 4 },
	{ "icmp6-no-route", FW_REJ_ICMP6_NO_ROUTE, 6 },
	{ "no-route", FW_REJ_ICMP6_NO_ROUTE, 6 },
	{ "icmp6-adm-prohibited", FW_REJ_ICMP6_ADM_PROHIB, 6 },
	{ "adm-prohibited", FW_REJ_ICMP6_ADM_PROHIB, 6 },
	{ "icmp6-addr-unreachable", FW_REJ_ICMP6_ADDR_UNREACH, 6 },
	{ "addr-unreach", FW_REJ_ICMP6_ADDR_UNREACH, 6 },
	{ "icmp6-port-unreachable", FW_REJ_ICMP6_PORT_UNREACH, 6 },
	{ "port-unreach", FW_REJ_ICMP6_PORT_UNREACH, 6 },
	{ "tcp-reset", FW_REJ_TCP_RESET, 0 },
	{ "tcp-rst", FW_REJ_TCP_RESET, 4 },
};

/* ---- one rule --------------------------------------------------------- */

enum ipt_mod {
	MOD_TCP = 1 << 0, MOD_UDP = 1 << 1, MOD_ICMP = 1 << 2, MOD_ICMP6 = 1 << 3,
	MOD_MULTIPORT = 1 << 4, MOD_IPRANGE = 1 << 5, MOD_COMMENT = 1 << 6,
	MOD_MAC = 1 << 7, MOD_LIMIT = 1 << 8, MOD_CONNTRACK = 1 << 9,
	MOD_STATE = 1 << 10,
};

static const struct {
	const char *name;
	unsigned int bit;
} modules[] = {
	{ "tcp", MOD_TCP }, { "udp", MOD_UDP }, { "icmp", MOD_ICMP },
	{ "icmp6", MOD_ICMP6 }, { "multiport", MOD_MULTIPORT },
	{ "iprange", MOD_IPRANGE }, { "comment", MOD_COMMENT }, { "mac", MOD_MAC },
	{ "limit", MOD_LIMIT }, { "conntrack", MOD_CONNTRACK }, { "state", MOD_STATE },
};

static int chain_find(const struct ipt_table *t, const char *name)
{
	for (int i = 0; i < t->nchains; i++)
		if (!strcmp(t->chains[i].name, name))
			return i;
	return -1;
}

static bool proto_is(const struct ipt_rule *r, __u8 p)
{
	return r->has_proto && r->proto.n == 1 && r->proto.v[0].lo == p &&
	       r->proto.v[0].hi == p;
}

/* Parses the words of one rule after "-A CHAIN". Errors name the part. */
static int rule_parse(struct ipt_table *t, struct ipt_rule *r, char **tok, int n)
{
	int family = t->family;
	u128 amax = family == 4 ? 0xffffffffULL : (u128)-1;
	unsigned int mods = 0;
	struct ivals tmp = {};
	bool neg = false, limit_seen = false, target_seen = false;
	int err = 0;

	r->target = FW_CONTINUE;
	r->jump = -1;
	for (int i = 0; i < n && !err; i++) {
		const char *o = tok[i], *v = i + 1 < n ? tok[i + 1] : NULL;
		bool any;

		if (!strcmp(o, "!")) {
			if (neg)
				return sl_err(-EINVAL, "'! !'");
			neg = true;
			continue;
		}
#define NEEDV() do { if (!v) return sl_err(-EINVAL, "%s: missing value", o); i++; } while (0)
#define NONEG() do { if (neg) return sl_err(-EINVAL, "'! %s' is not supported", o); } while (0)
		if (target_seen && strcmp(o, "--reject-with") && strcmp(o, "--log-prefix"))
			return sl_err(-EINVAL, "'%s' after the target is not supported", o);
		if (limit_seen && (!strcmp(o, "-m") || !strcmp(o, "--match")) && v &&
		    strcmp(v, "comment"))
			return sl_err(-EINVAL, "-m %s after -m limit is not supported "
				      "(limit must be the last match)", v);
		if (!strcmp(o, "-s") || !strcmp(o, "--source") ||
		    !strcmp(o, "-d") || !strcmp(o, "--destination")) {
			bool s = o[1] == 's' || o[2] == 's';
			struct ivals *l = s ? &r->src : &r->dst;
			bool *has = s ? &r->has_src : &r->has_dst;

			NEEDV();
			iv_free(&tmp);
			err = parse_addrs(v, family, &tmp);
			if (!err && neg)
				err = iv_complement(&tmp, amax);
			if (!err && *has)
				err = iv_intersect(&tmp, l);
			if (!err) {
				iv_free(l);
				*l = tmp;
				tmp = (struct ivals){};
				*has = true;
			}
		} else if (!strcmp(o, "-p") || !strcmp(o, "--protocol")) {
			NEEDV();
			err = parse_proto(v, family, &r->proto, &any);
			if (!err && any && neg)
				r->never = true;
			else if (!err && !any) {
				r->has_proto = true;
				if (neg)
					err = iv_complement(&r->proto, 255);
			}
		} else if (!strcmp(o, "-i") || !strcmp(o, "--in-interface") ||
			   !strcmp(o, "-o") || !strcmp(o, "--out-interface")) {
			bool in = o[1] == 'i' || o[2] == 'i';
			struct ivals *l = in ? &r->iif : &r->oif;

			NEEDV();
			if (in && t->chains[r->chain].builtin == FW_OUTPUT)
				return sl_err(-EINVAL, "-i in OUTPUT (iptables refuses it)");
			if (!in && t->chains[r->chain].builtin == FW_INPUT)
				return sl_err(-EINVAL, "-o in INPUT (iptables refuses it)");
			err = parse_iface(v, l);
			if (!err && neg)
				err = iv_complement(l, 0xffffffffULL);
			if (in)
				r->has_iif = true;
			else
				r->has_oif = true;
		} else if (!strcmp(o, "-m") || !strcmp(o, "--match")) {
			size_t k;

			NEEDV();
			NONEG();
			for (k = 0; k < sizeof(modules) / sizeof(modules[0]); k++)
				if (!strcmp(v, modules[k].name))
					break;
			if (k == sizeof(modules) / sizeof(modules[0]))
				return sl_err(-EINVAL, "match '-m %s' is not supported", v);
			if ((modules[k].bit & (MOD_TCP | MOD_MULTIPORT)) &&
			    !proto_is(r, 6) && (modules[k].bit == MOD_TCP || !proto_is(r, 17)))
				return sl_err(-EINVAL, "-m %s needs -p tcp%s", v,
					      modules[k].bit == MOD_TCP ? "" : " or -p udp");
			if (modules[k].bit == MOD_UDP && !proto_is(r, 17))
				return sl_err(-EINVAL, "-m udp needs -p udp");
			if (modules[k].bit == MOD_ICMP && (family != 4 || !proto_is(r, 1)))
				return sl_err(-EINVAL, "-m icmp needs -p icmp (IPv4)");
			if (modules[k].bit == MOD_ICMP6 && (family != 6 || !proto_is(r, 58)))
				return sl_err(-EINVAL, "-m icmp6 needs -p ipv6-icmp (IPv6)");
			mods |= modules[k].bit;
			if (modules[k].bit & (MOD_TCP | MOD_UDP | MOD_ICMP | MOD_ICMP6 | MOD_MULTIPORT))
				r->l4 = true; /* these never match later fragments */
			if (modules[k].bit == MOD_LIMIT) {
				/* iptables' defaults: 3/hour, burst 5 */
				limit_seen = r->limit = true;
				r->limit_avg = FW_LIMIT_SCALE * 3600 / 3;
				r->limit_burst = 5;
			}
		} else if (!strcmp(o, "--sport") || !strcmp(o, "--source-port") ||
			   !strcmp(o, "--dport") || !strcmp(o, "--destination-port")) {
			bool s = strstr(o, "sport") || strstr(o, "source");
			struct ivals *l = s ? &r->sport : &r->dport;
			bool *has = s ? &r->has_sport : &r->has_dport;

			NEEDV();
			if (!(mods & (MOD_TCP | MOD_UDP))) {
				if (!proto_is(r, 6) && !proto_is(r, 17))
					return sl_err(-EINVAL, "%s needs -p tcp or -p udp", o);
				mods |= proto_is(r, 6) ? MOD_TCP : MOD_UDP;
				r->l4 = true;
			}
			iv_free(&tmp);
			err = parse_ports(v, false, &tmp);
			if (!err && neg)
				err = iv_complement(&tmp, 65535);
			if (!err && *has)
				err = iv_intersect(&tmp, l);
			if (!err) {
				iv_free(l);
				*l = tmp;
				tmp = (struct ivals){};
				*has = true;
			}
		} else if (!strcmp(o, "--tcp-flags") || !strcmp(o, "--syn")) {
			if (!(mods & MOD_TCP)) {
				if (!proto_is(r, 6))
					return sl_err(-EINVAL, "%s needs -p tcp", o);
				mods |= MOD_TCP;
				r->l4 = true;
			}
			if (r->tcp_mask)
				return sl_err(-EINVAL, "TCP flags given twice");
			if (o[2] == 's') {
				r->tcp_mask = 0x17; /* FIN,SYN,RST,ACK */
				r->tcp_flags = 0x02;
			} else {
				if (i + 2 >= n)
					return sl_err(-EINVAL, "--tcp-flags needs MASK COMP");
				err = parse_tcp_flag_list(tok[i + 1], &r->tcp_mask);
				err = err ?: parse_tcp_flag_list(tok[i + 2], &r->tcp_flags);
				r->tcp_flags &= r->tcp_mask;
				i += 2;
			}
			if (neg)
				r->check |= FW_CHK_TCP_NEG;
			if (!r->tcp_mask && !neg)
				r->tcp_flags = 0; /* an empty mask matches every packet */
			if (!r->tcp_mask && neg)
				r->never = true;
		} else if (!strcmp(o, "--icmp-type") || !strcmp(o, "--icmpv6-type")) {
			NEEDV();
			if (!(mods & (MOD_ICMP | MOD_ICMP6))) {
				if (!proto_is(r, family == 4 ? 1 : 58))
					return sl_err(-EINVAL, "%s needs -p icmp / ipv6-icmp", o);
				mods |= MOD_ICMP;
				r->l4 = true;
			}
			err = parse_icmp(v, family, r, &any);
			if (!err && any && neg)
				r->never = true;
			else if (!err && !any)
				r->check |= FW_CHK_ICMP | (neg ? FW_CHK_ICMP_NEG : 0);
		} else if (!strcmp(o, "--sports") || !strcmp(o, "--source-ports") ||
			   !strcmp(o, "--dports") || !strcmp(o, "--destination-ports") ||
			   !strcmp(o, "--ports")) {
			NEEDV();
			if (!(mods & MOD_MULTIPORT))
				return sl_err(-EINVAL, "%s needs -m multiport", o);
			iv_free(&tmp);
			err = parse_ports(v, true, &tmp);
			if (err)
				break;
			if (!strcmp(o, "--ports") && !neg) {
				r->ports = tmp;
				tmp = (struct ivals){};
				r->has_ports = true;
				continue;
			}
			/* ! --ports: neither port in the list. */
			for (int side = 0; side < 2 && !err; side++) {
				bool s = side == 0;
				struct ivals c = {};

				if (strcmp(o, "--ports") &&
				    s != (strstr(o, "sports") || strstr(o, "source")))
					continue;
				for (int k = 0; k < tmp.n && !err; k++)
					err = iv_add(&c, tmp.v[k].lo, tmp.v[k].hi);
				if (!err && neg)
					err = iv_complement(&c, 65535);
				if (!err && (s ? r->has_sport : r->has_dport))
					err = iv_intersect(&c, s ? &r->sport : &r->dport);
				if (!err) {
					iv_free(s ? &r->sport : &r->dport);
					*(s ? &r->sport : &r->dport) = c;
					*(s ? &r->has_sport : &r->has_dport) = true;
				} else {
					iv_free(&c);
				}
			}
		} else if (!strcmp(o, "--src-range") || !strcmp(o, "--dst-range")) {
			bool s = o[2] == 's';
			struct ivals *l = s ? &r->src : &r->dst;
			bool *has = s ? &r->has_src : &r->has_dst;

			NEEDV();
			if (!(mods & MOD_IPRANGE))
				return sl_err(-EINVAL, "%s needs -m iprange", o);
			iv_free(&tmp);
			err = parse_iprange(v, family, &tmp);
			if (!err && neg)
				err = iv_complement(&tmp, amax);
			if (!err && *has)
				err = iv_intersect(&tmp, l);
			if (!err) {
				iv_free(l);
				*l = tmp;
				tmp = (struct ivals){};
				*has = true;
			}
		} else if (!strcmp(o, "--comment")) {
			NEEDV();
			NONEG();
			if (!(mods & MOD_COMMENT))
				return sl_err(-EINVAL, "--comment needs -m comment");
		} else if (!strcmp(o, "--mac-source")) {
			NEEDV();
			if (!(mods & MOD_MAC))
				return sl_err(-EINVAL, "--mac-source needs -m mac");
			if (t->chains[r->chain].builtin == FW_OUTPUT)
				return sl_err(-EINVAL, "-m mac in OUTPUT (iptables refuses it)");
			err = parse_mac(v, r->mac);
			r->check |= FW_CHK_MAC | (neg ? FW_CHK_MAC_NEG : 0);
		} else if (!strcmp(o, "--limit") || !strcmp(o, "--limit-burst")) {
			__u64 b;

			NEEDV();
			NONEG();
			if (!(mods & MOD_LIMIT))
				return sl_err(-EINVAL, "%s needs -m limit", o);
			if (o[7] == '-') {
				if (parse_u64(v, 10000, &b) || !b)
					return sl_err(-EINVAL, "bad --limit-burst '%s'", v);
				r->limit_burst = b;
			} else {
				err = parse_rate(v, &r->limit_avg);
			}
		} else if (!strcmp(o, "--ctstate") || !strcmp(o, "--state")) {
			NEEDV();
			if (!(mods & (o[2] == 'c' ? MOD_CONNTRACK : MOD_STATE)))
				return sl_err(-EINVAL, "%s needs -m %s", o,
					      o[2] == 'c' ? "conntrack" : "state");
			err = parse_states(v, &r->ct_mask);
			r->check |= FW_CHK_CT | (neg ? FW_CHK_CT_NEG : 0);
		} else if (!strcmp(o, "-j") || !strcmp(o, "--jump") ||
			   !strcmp(o, "-g") || !strcmp(o, "--goto")) {
			bool go = o[1] == 'g' || o[2] == 'g';

			NEEDV();
			NONEG();
			target_seen = true;
			if (!go && !strcmp(v, "ACCEPT"))
				r->target = FW_ACCEPT;
			else if (!go && !strcmp(v, "DROP"))
				r->target = FW_DROP;
			else if (!go && !strcmp(v, "RETURN"))
				r->target = FW_RETURN;
			else if (!go && !strcmp(v, "REJECT"))
				r->target = FW_REJECT;
			else if (!go && !strcmp(v, "LOG")) {
				r->target = FW_CONTINUE;
				r->check |= FW_CHK_LOG;
			} else if (chain_find(t, v) >= 0 &&
				   t->chains[chain_find(t, v)].builtin < 0) {
				r->target = go ? FW_GOTO : FW_JUMP;
				r->jump = chain_find(t, v);
			} else if (chain_find(t, v) >= 0) {
				return sl_err(-EINVAL, "jump to built-in chain %s", v);
			} else if (isupper((unsigned char)v[0])) {
				return sl_err(-EINVAL, "target '%s' is not supported "
					      "(ACCEPT DROP REJECT RETURN LOG or a user chain)", v);
			} else {
				return sl_err(-EINVAL, "no chain '%s'", v);
			}
		} else if (!strcmp(o, "--reject-with")) {
			size_t k;

			NEEDV();
			if (r->target != FW_REJECT)
				return sl_err(-EINVAL, "--reject-with without -j REJECT");
			for (k = 0; k < sizeof(reject_names) / sizeof(reject_names[0]); k++)
				if (!strcmp(v, reject_names[k].name) &&
				    (!reject_names[k].family || reject_names[k].family == family))
					break;
			if (k == sizeof(reject_names) / sizeof(reject_names[0]))
				return sl_err(-EINVAL, "--reject-with %s is not supported for IPv%d",
					      v, family);
			r->reject = reject_names[k].type;
			if (r->reject == FW_REJ_TCP_RESET && !proto_is(r, 6))
				return sl_err(-EINVAL, "--reject-with tcp-reset needs -p tcp");
		} else if (!strcmp(o, "--log-prefix")) {
			NEEDV();
			if (!(r->check & FW_CHK_LOG))
				return sl_err(-EINVAL, "--log-prefix without -j LOG");
			if (strlen(v) >= 30)
				return sl_err(-EINVAL, "--log-prefix longer than 29 characters");
			snprintf(r->prefix, sizeof(r->prefix), "%s", v);
		} else {
			return sl_err(-EINVAL, "'%s' is not supported", o);
		}
		neg = false;
	}
	iv_free(&tmp);
	if (err)
		return err;
	if (neg)
		return sl_err(-EINVAL, "'!' at the end");
	if (r->target == FW_REJECT && !r->reject)
		r->reject = family == 4 ? FW_REJ_ICMP_PORT_UNREACH : FW_REJ_ICMP6_PORT_UNREACH;
	/* xt_limit's overflow check, its 32-bit wraps included */
	if (r->limit && limit_credits((__u32)r->limit_avg * r->limit_burst) <
	    limit_credits(r->limit_avg))
		return sl_err(-EINVAL, "-m limit: rate too low for its burst (the kernel's "
			      "xt_limit refuses it too)");
	return 0;
}

static void rule_free(struct ipt_rule *r)
{
	struct ivals *l[] = { &r->src, &r->dst, &r->proto, &r->iif, &r->oif,
			      &r->sport, &r->dport, &r->ports };

	for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++)
		iv_free(l[i]);
	free(r->text);
}

void ipt_table_free(struct ipt_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nrules; i++)
		rule_free(&t->rules[i]);
	free(t->rules);
	free(t->chains);
	free(t);
}

int ipt_table_family(const struct ipt_table *t)
{
	return t->family;
}

__u32 ipt_table_rules(const struct ipt_table *t)
{
	return t->nrules;
}

/* ---- the file --------------------------------------------------------- */

static int guess_family(char **lines, int n)
{
	for (int i = 0; i < n; i++) {
		if (strstr(lines[i], "ip6tables-save"))
			return 6;
		if (strstr(lines[i], "iptables-save"))
			return 4;
	}
	for (int i = 0; i < n; i++) {
		const char *s = lines[i];

		if (s[0] == '#' || s[0] == ':' || s[0] == '*')
			continue;
		if (strstr(s, "ipv6-icmp") || strstr(s, "icmp6") || strstr(s, "icmpv6"))
			return 6;
		for (const char *p = s; (p = strpbrk(p, "-")); p++)
			if ((!strncmp(p, "-s ", 3) || !strncmp(p, "-d ", 3))) {
				const char *a = p + 3, *e = strchr(a, ' ');
				size_t len = e ? (size_t)(e - a) : strlen(a);

				if (memchr(a, ':', len))
					return 6;
				if (memchr(a, '.', len))
					return 4;
			}
	}
	return 4;
}

static int add_chain(struct ipt_table *t, const char *name, int policy)
{
	struct ipt_chain *c = realloc(t->chains, (t->nchains + 1) * sizeof(*c));

	if (!c)
		return sl_err(-ENOMEM, "out of memory");
	t->chains = c;
	c = &t->chains[t->nchains++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->policy = policy;
	c->builtin = -1;
	for (int i = 0; i < FW_CHAINS; i++)
		if (!strcmp(name, builtin_names[i]))
			c->builtin = i;
	return 0;
}

static int add_rule(struct ipt_table *t, int line, char **tok, int ntok)
{
	struct ipt_rule *r = realloc(t->rules, (t->nrules + 1) * sizeof(*r));

	if (!r)
		return sl_err(-ENOMEM, "out of memory");
	t->rules = r;
	r = &t->rules[t->nrules++];
	memset(r, 0, sizeof(*r));
	r->line = line;
	r->chain = chain_find(t, tok[1]);
	r->text = join_words(tok + 2, ntok - 2);
	if (!r->text)
		return sl_err(-ENOMEM, "out of memory");
	return rule_parse(t, r, tok + 2, ntok - 2);
}

/* Where the value of -s (src) or -d is in a rule's words (-1: none), and
 * how many comma-separated items it has; they are split in place. The
 * words are "-A CHAIN ...": a "!" before the option is at i - 2 >= 1. */
static int addr_list(char **tok, int ntok, bool src, int *nitems)
{
	*nitems = 1;
	for (int i = 2; i + 1 < ntok; i++) {
		if (!strcmp(tok[i], "--comment") || !strcmp(tok[i], "--log-prefix")) {
			i++;
			continue;
		}
		if (strcmp(tok[i], src ? "-s" : "-d") &&
		    strcmp(tok[i], src ? "--source" : "--destination"))
			continue;
		for (char *c = tok[i + 1]; (c = strchr(c, ',')); *c++ = '\0')
			(*nitems)++;
		return i + 1;
	}
	return -1;
}

/* iptables-restore makes a rule of each source and destination of -s and
 * -d lists (sources outer), each with its own counter, and a packet may
 * match several of them (each counts it, logs it, calls the chain): the
 * import does the same. */
static int add_rules(struct ipt_table *t, int line, char **tok, int ntok)
{
	int ns, nd, si, di, err = 0;
	char *sv, *dv, *d0;

	si = addr_list(tok, ntok, true, &ns);
	di = addr_list(tok, ntok, false, &nd);
	if ((ns > 1 || nd > 1) && ((si >= 0 && !strcmp(tok[si - 2], "!")) ||
				   (di >= 0 && !strcmp(tok[di - 2], "!"))))
		return sl_err(-EINVAL, "! not allowed with multiple source or destination "
			      "addresses (iptables refuses it)");
	d0 = di >= 0 ? tok[di] : NULL;
	sv = si >= 0 ? tok[si] : NULL;
	for (int a = 0; a < ns && !err; a++) {
		dv = d0;
		for (int b = 0; b < nd && !err; b++) {
			if (sv)
				tok[si] = sv;
			if (dv)
				tok[di] = dv;
			err = add_rule(t, line, tok, ntok);
			if (dv)
				dv += strlen(dv) + 1;
		}
		if (sv)
			sv += strlen(sv) + 1;
	}
	return err;
}

/* Reads the lines: chain declarations come first in iptables-save output,
 * but a jump may name a chain declared later: declare all chains first. */
static int parse_lines(struct ipt_table *t, char **lines, int n, const char *name)
{
	char *tok[IPT_TOKENS_MAX];
	int ntok, err = 0, state = 0; /* 0 before *filter, 1 in it, 2 after COMMIT */
	char buf[IPT_LINE_MAX];

#define LERR(i, fmt, ...) sl_err(-EINVAL, "%s:%d: " fmt, name, (i) + 1, ##__VA_ARGS__)
	for (int i = 0; i < n; i++) {
		char *s = lines[i];

		if (!*s || s[0] == '#')
			continue;
		if (s[0] == '*') {
			if (strcmp(s, "*filter"))
				return LERR(i, "table '%s' is not supported (only *filter)", s + 1);
			if (state == 1)
				return LERR(i, "*filter inside *filter (no COMMIT)");
			if (state == 2)
				return LERR(i, "a second *filter table");
			state = 1;
			continue;
		}
		if (state != 1)
			return LERR(i, "'%s' outside a *filter ... COMMIT table", s);
		if (!strcmp(s, "COMMIT")) {
			state = 2;
			continue;
		}
		if (s[0] != ':')
			continue;
		snprintf(buf, sizeof(buf), "%s", s + 1);
		err = tokenize(buf, tok, &ntok);
		if (err || ntok < 2)
			return LERR(i, "bad chain line '%s'", s);
		int policy = !strcmp(tok[1], "ACCEPT") ? FW_ACCEPT :
			     !strcmp(tok[1], "DROP") ? FW_DROP : -1;

		if (chain_find(t, tok[0]) >= 0)
			return LERR(i, "chain %s declared twice", tok[0]);
		if (policy < 0 && strcmp(tok[1], "-"))
			return LERR(i, "policy '%s' is not supported (ACCEPT or DROP)", tok[1]);
		err = add_chain(t, tok[0], policy);
		if (err)
			return err;
		struct ipt_chain *c = &t->chains[t->nchains - 1];

		if (c->builtin < 0 && policy >= 0)
			return LERR(i, "only the chains %s %s %s are built in, not %s",
				    builtin_names[0], builtin_names[1], builtin_names[2], tok[0]);
		if (c->builtin >= 0 && policy < 0)
			return LERR(i, "built-in chain %s needs a policy", tok[0]);
		if (strlen(tok[0]) >= 29)
			return LERR(i, "chain name '%s' too long", tok[0]);
	}
	if (state == 0)
		return sl_err(-EINVAL, "%s: no *filter table", name);
	if (state == 1)
		return sl_err(-EINVAL, "%s: *filter has no COMMIT", name);

	for (int i = 0; i < n; i++) {
		char *s = lines[i], *rest;

		if (s[0] == '[') { /* [packets:bytes] -A ... from iptables-save -c */
			rest = strchr(s, ']');
			if (!rest)
				return LERR(i, "bad counters in '%s'", s);
			s = rest + 1;
			while (isspace((unsigned char)*s))
				s++;
		}
		if (s[0] != '-')
			continue;
		snprintf(buf, sizeof(buf), "%s", s);
		err = tokenize(buf, tok, &ntok);
		if (err)
			return LERR(i, "%s (in '%s')", sl_errmsg(), s);
		if (ntok < 2 || strcmp(tok[0], "-A"))
			return LERR(i, "'%s' is not supported (only -A CHAIN rules)", tok[0]);
		if (chain_find(t, tok[1]) < 0)
			return LERR(i, "no chain '%s' (in '%s')", tok[1], s);
		err = add_rules(t, i + 1, tok, ntok);
		if (err == -ENOMEM)
			return err;
		if (err) {
			char msg[512];

			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			return LERR(i, "%s (in '%s')", msg, s);
		}
	}
#undef LERR
	return 0;
}

/* Puts the rules chain by chain (stable), as the kernel keeps them and
 * iptables-save prints them: rule i counts at i, also after a reload. */
static int group_by_chain(struct ipt_table *t)
{
	struct ipt_rule *out = malloc((t->nrules + 1) * sizeof(*out));
	int k = 0;

	if (!out)
		return sl_err(-ENOMEM, "out of memory");
	for (int c = 0; c < t->nchains; c++)
		for (int i = 0; i < t->nrules; i++)
			if (t->rules[i].chain == c)
				out[k++] = t->rules[i];
	free(t->rules);
	t->rules = out;
	return 0;
}

int ipt_parse(FILE *f, const char *name, int family, struct ipt_table **out)
{
	char **lines = NULL, line[IPT_LINE_MAX + 2];
	int n = 0, cap = 0, err = 0;
	struct ipt_table *t = calloc(1, sizeof(*t));

	if (!t)
		return sl_err(-ENOMEM, "out of memory");
	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);

		if (len && line[len - 1] != '\n' && !feof(f)) {
			err = sl_err(-EINVAL, "%s:%d: line longer than %d characters",
				     name, n + 1, IPT_LINE_MAX);
			goto out;
		}
		while (len && isspace((unsigned char)line[len - 1]))
			line[--len] = '\0';
		if (n == cap) {
			char **nl = realloc(lines, (cap = cap ? cap * 2 : 256) * sizeof(*nl));

			if (!nl) {
				err = sl_err(-ENOMEM, "out of memory");
				goto out;
			}
			lines = nl;
		}
		lines[n] = strdup(line);
		if (!lines[n++]) {
			err = sl_err(-ENOMEM, "out of memory");
			goto out;
		}
	}
	if (ferror(f)) {
		err = sl_err(-EIO, "%s: read error", name);
		goto out;
	}
	t->family = family ? family : guess_family(lines, n);
	err = parse_lines(t, lines, n, name);
	if (!err)
		err = group_by_chain(t);
out:
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	if (err) {
		ipt_table_free(t);
		return err;
	}
	*out = t;
	return 0;
}

/* ---- compiling into blocks of flat rules ------------------------------ */

struct emit {
	struct fw_ruleset rs;
	struct fw_block *blocks;
	int *goto_from; /* a goto block ends where this block ends; or -1 */
	__u32 nblocks, cap_blocks;
	struct fw_limit *limits;
	__u32 nlimits;
	char (*logs)[FW_LOG_PREFIX];
	__u32 nlogs;
	__u32 *limit_of; /* by rule counter: one bucket per rule, however
			  * many times its chain is inlined */
	const struct ipt_table *t;
	__u32 cnt_base; /* counter of the table's first rule */
	int top_chain; /* enum fw_chain of the block being emitted */
	int stack[32]; /* chains being inlined, for loops */
	int depth;
};

static bool dim_and(struct fw_rule *r, int d, __u64 lo, __u64 hi)
{
	if (lo > r->lo[d])
		r->lo[d] = lo;
	if (hi < r->hi[d])
		r->hi[d] = hi;
	return r->lo[d] <= r->hi[d];
}

/* An address range as boxes over the two 64-bit halves (at most 3). */
static int addr_boxes(int family, u128 lo, u128 hi, __u64 box[3][4])
{
	__u64 lh = lo >> 64, ll = (__u64)lo, hh = hi >> 64, hl = (__u64)hi;
	int n = 0;

	if (family == 4 || lh == hh) {
		box[0][0] = box[0][1] = lh;
		box[0][2] = ll;
		box[0][3] = hl;
		return 1;
	}
	/* lh < hh: the tail of lh, the whole halves between, the head of hh */
	box[n][0] = box[n][1] = lh;
	box[n][2] = ll;
	box[n++][3] = UINT64_MAX;
	if (hh - lh > 1) {
		box[n][0] = lh + 1;
		box[n][1] = hh - 1;
		box[n][2] = 0;
		box[n++][3] = UINT64_MAX;
	}
	box[n][0] = box[n][1] = hh;
	box[n][2] = 0;
	box[n++][3] = hl;
	return n;
}

enum { LV_SRC, LV_DST, LV_PROTO, LV_IIF, LV_OIF, LV_SPORT, LV_DPORT, LV_PORTS, LV_END };

static int expand(struct emit *e, const struct ipt_rule *r, const struct fw_rule *cur,
		  int level, __u32 *count)
{
	static const int dims[] = { [LV_PROTO] = FW_DIM_PROTO, [LV_IIF] = FW_DIM_IIF,
				    [LV_OIF] = FW_DIM_OIF, [LV_SPORT] = FW_DIM_SPORT,
				    [LV_DPORT] = FW_DIM_DPORT };
	const struct ivals *l;
	bool has;
	int err = 0;

	if (level == LV_END) {
		if (++*count > IPT_EXPAND_MAX)
			return sl_err(-E2BIG, "expands to more than %d flat rules", IPT_EXPAND_MAX);
		return fw_ruleset_add(&e->rs, cur, e->rs.n);
	}
	switch (level) {
	case LV_SRC: l = &r->src; has = r->has_src; break;
	case LV_DST: l = &r->dst; has = r->has_dst; break;
	case LV_PROTO: l = &r->proto; has = r->has_proto; break;
	case LV_IIF: l = &r->iif; has = r->has_iif; break;
	case LV_OIF: l = &r->oif; has = r->has_oif; break;
	case LV_SPORT: l = &r->sport; has = r->has_sport; break;
	case LV_DPORT: l = &r->dport; has = r->has_dport; break;
	default: l = &r->ports; has = r->has_ports; break;
	}
	if (!has)
		return expand(e, r, cur, level + 1, count);
	for (int i = 0; i < l->n && !err; i++) {
		struct fw_rule x = *cur;

		if (level == LV_SRC || level == LV_DST) {
			int d = level == LV_SRC ? FW_DIM_SRC_HI : FW_DIM_DST_HI;
			__u64 box[3][4];
			int nb = addr_boxes(e->t->family, l->v[i].lo, l->v[i].hi, box);

			for (int b = 0; b < nb && !err; b++) {
				x = *cur;
				if (dim_and(&x, d, box[b][0], box[b][1]) &&
				    dim_and(&x, d + 1, box[b][2], box[b][3]))
					err = expand(e, r, &x, level + 1, count);
			}
			continue;
		}
		if (level == LV_PORTS) {
			/* --ports: the source port or the destination port */
			struct fw_rule y = *cur;

			if (dim_and(&x, FW_DIM_SPORT, l->v[i].lo, l->v[i].hi))
				err = expand(e, r, &x, level + 1, count);
			if (!err && dim_and(&y, FW_DIM_DPORT, l->v[i].lo, l->v[i].hi))
				err = expand(e, r, &y, level + 1, count);
			continue;
		}
		if (dim_and(&x, dims[level], l->v[i].lo, l->v[i].hi))
			err = expand(e, r, &x, level + 1, count);
	}
	return err;
}

static int new_block(struct emit *e, __u32 parent, const struct fw_block *policy_of,
		     __u32 *id)
{
	if (e->nblocks == e->cap_blocks) {
		__u32 cap = e->cap_blocks ? e->cap_blocks * 2 : 16;
		struct fw_block *b = realloc(e->blocks, cap * sizeof(*b));
		int *g;

		if (!b)
			return sl_err(-ENOMEM, "out of memory");
		e->blocks = b;
		g = realloc(e->goto_from, cap * sizeof(*g));
		if (!g)
			return sl_err(-ENOMEM, "out of memory");
		e->goto_from = g;
		e->cap_blocks = cap;
	}
	*id = e->nblocks++;
	memset(&e->blocks[*id], 0, sizeof(struct fw_block));
	e->blocks[*id].parent = parent;
	e->blocks[*id].start = e->rs.n;
	e->blocks[*id].policy = policy_of->policy;
	e->blocks[*id].policy_cnt = policy_of->policy_cnt;
	e->goto_from[*id] = -1;
	return 0;
}

/* The template of the flat rules of r: all but the expanded fields. */
static int rule_template(struct emit *e, const struct ipt_rule *r, __u32 idx,
			 __u32 block, struct fw_rule *x)
{
	memset(x, 0, sizeof(*x));
	for (int d = 0; d < FW_DIMS; d++) {
		x->lo[d] = 0;
		x->hi[d] = UINT64_MAX;
	}
	x->lo[FW_DIM_FAMILY] = x->hi[FW_DIM_FAMILY] = e->t->family;
	x->lo[FW_DIM_BLOCK] = x->hi[FW_DIM_BLOCK] = block;
	if (r->l4)
		x->lo[FW_DIM_L4] = x->hi[FW_DIM_L4] = 1;
	x->action = r->target;
	x->cnt = e->cnt_base + idx;
	x->check = r->check;
	x->tcp_flags = r->tcp_flags;
	x->tcp_mask = r->tcp_mask;
	x->ct_mask = r->ct_mask;
	x->reject = r->reject;
	x->icmp_type = r->icmp_type;
	x->icmp_code_lo = r->code_lo;
	x->icmp_code_hi = r->code_hi;
	memcpy(x->mac, r->mac, 6);
	if ((r->check & FW_CHK_ICMP) && !(r->check & FW_CHK_ICMP_NEG)) {
		x->lo[FW_DIM_ICMP_TYPE] = x->hi[FW_DIM_ICMP_TYPE] = r->icmp_type;
		if (r->code_lo == 0 && r->code_hi == 255)
			x->check &= ~FW_CHK_ICMP;
	}
	if (r->limit && e->limit_of[x->cnt] != FW_NONE) {
		x->check |= FW_CHK_LIMIT;
		x->limit = e->limit_of[x->cnt];
	} else if (r->limit) {
		struct fw_limit *l = realloc(e->limits, (e->nlimits + 1) * sizeof(*l));
		__u32 avg = r->limit_avg;

		if (!l)
			return sl_err(-ENOMEM, "out of memory");
		e->limits = l;
		l = &e->limits[e->nlimits];
		memset(l, 0, sizeof(*l));
		/* as xt_limit: a cap that wrapped is smaller, not refused */
		l->credit = l->credit_cap = limit_credits(avg * r->limit_burst);
		l->cost = limit_credits(avg);
		l->prev = 0; /* set on the first packet: see fw_limit_take */
		x->check |= FW_CHK_LIMIT;
		x->limit = e->nlimits++;
		e->limit_of[x->cnt] = x->limit;
	}
	if (r->check & FW_CHK_LOG) {
		char (*lg)[FW_LOG_PREFIX] = realloc(e->logs, (e->nlogs + 1) * sizeof(*lg));

		if (!lg)
			return sl_err(-ENOMEM, "out of memory");
		e->logs = lg;
		memset(e->logs[e->nlogs], 0, FW_LOG_PREFIX);
		memcpy(e->logs[e->nlogs], r->prefix, strlen(r->prefix));
		x->log = e->nlogs++;
	}
	return 0;
}

/* Emits chain c as block `block`; returns the most scan rounds a packet
 * can take through it in *rounds. */
static int emit_chain(struct emit *e, int c, __u32 block, __u32 *rounds)
{
	const struct ipt_table *t = e->t;
	__u32 total = 1;
	int err = 0;

	for (int i = 0; i < e->depth; i++)
		if (e->stack[i] == c)
			return sl_err(-ELOOP, "chain %s calls itself (through jumps)",
				      t->chains[c].name);
	if (e->depth == (int)(sizeof(e->stack) / sizeof(e->stack[0])))
		return sl_err(-ELOOP, "chains nested deeper than %zu",
			      sizeof(e->stack) / sizeof(e->stack[0]));
	e->stack[e->depth++] = c;
	for (int i = 0; i < t->nrules && !err; i++) {
		const struct ipt_rule *r = &t->rules[i];
		__u32 first = e->rs.n, count = 0, child = FW_NONE, sub = 0;
		struct fw_rule x;

		if (r->chain != c)
			continue;
		if (r->target == FW_REJECT && e->top_chain == FW_OUTPUT) {
			err = sl_err(-EINVAL, "line %d: REJECT reached from OUTPUT is not "
				     "supported (answers are built at XDP, where OUTPUT "
				     "packets never pass): use DROP there", r->line);
			break;
		}
		err = rule_template(e, r, i, block, &x);
		if (err)
			break;
		if (r->target == FW_JUMP || r->target == FW_GOTO) {
			const struct fw_block *me = &e->blocks[block];

			err = new_block(e, r->target == FW_JUMP ? block : me->parent,
					me, &child);
			if (err)
				break;
			if (r->target == FW_GOTO)
				e->goto_from[child] = block;
			x.block = child;
		}
		if (!r->never)
			err = expand(e, r, &x, LV_SRC, &count);
		if (!err && child != FW_NONE) {
			e->blocks[child].start = e->rs.n;
			err = emit_chain(e, r->jump, child, &sub);
			if (!err && r->target == FW_JUMP)
				e->blocks[child].end = e->rs.n;
		}
		/* After a match that goes on (log, limit miss, back from a
		 * jump): behind this rule's flat rules and its inlined chain. */
		for (__u32 k = first; k < e->rs.n; k++)
			if (e->rs.rules[k].cnt == x.cnt && e->rs.rules[k].lo[FW_DIM_BLOCK] == block)
				e->rs.rules[k].next = e->rs.n;
		if (r->target == FW_CONTINUE || r->target == FW_JUMP || r->limit)
			total += 1 + sub;
		else if (r->target == FW_GOTO)
			total += sub;
	}
	e->depth--;
	*rounds = total;
	return err;
}

static void emit_free(struct emit *e)
{
	fw_ruleset_free(&e->rs);
	free(e->blocks);
	free(e->goto_from);
	free(e->limits);
	free(e->logs);
	free(e->limit_of);
}

/* Both families' tables into one rule set: v4 rules count first, then v6,
 * then the policies ([family][chain]). */
static int compile(const struct ipt_table *tabs[2], struct emit *e,
		   struct fw_load_opts *o)
{
	__u32 nrules = (tabs[0] ? tabs[0]->nrules : 0) + (tabs[1] ? tabs[1]->nrules : 0);
	int err = 0;

	memset(o, 0, sizeof(*o));
	o->type = IPT_TYPE;
	o->mode = FW_MODE_IPTABLES;
	o->ncounters = nrules + 2 * FW_CHAINS;
	e->limit_of = malloc((nrules + 1) * sizeof(*e->limit_of));
	if (!e->limit_of)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i <= nrules; i++)
		e->limit_of[i] = FW_NONE;
	for (int f = 0; f < 2; f++)
		for (int c = 0; c < FW_CHAINS; c++)
			o->top[f][c] = FW_NONE;
	for (int f = 0; f < 2 && !err; f++) {
		const struct ipt_table *t = tabs[f];

		if (!t)
			continue;
		e->t = t;
		e->cnt_base = f ? (tabs[0] ? tabs[0]->nrules : 0) : 0;
		for (int c = 0; c < t->nchains && !err; c++) {
			const struct ipt_chain *ch = &t->chains[c];
			struct fw_block pol = { .policy = ch->policy,
						.policy_cnt = nrules + f * FW_CHAINS + ch->builtin };
			__u32 top, rounds = 0;

			if (ch->builtin < 0)
				continue;
			e->top_chain = ch->builtin;
			err = new_block(e, FW_NONE, &pol, &top);
			err = err ?: emit_chain(e, c, top, &rounds);
			if (!err && rounds > FW_MAX_ROUNDS - 1)
				err = sl_err(-E2BIG, "IPv%d %s: a packet may take %u scans "
					     "(jumps, returns, logs, limits); at most %d",
					     t->family, ch->name, rounds, FW_MAX_ROUNDS - 1);
			o->top[f][ch->builtin] = top;
		}
	}
	/* A goto block ends where the block that went there ends. */
	for (__u32 b = 0; b < e->nblocks && !err; b++)
		if (e->goto_from[b] >= 0)
			e->blocks[b].end = e->blocks[e->goto_from[b]].end;
	if (err)
		return err;
	o->blocks = e->blocks;
	o->nblocks = e->nblocks;
	o->limits = e->limits;
	o->nlimits = e->nlimits;
	o->logs = (const char (*)[FW_LOG_PREFIX])e->logs;
	o->nlogs = e->nlogs;
	return 0;
}

/* ---- the loaded state: rule text, counters ---------------------------- */

#define IPT_FAMILY_MARK "# sluice family "

/* The table as iptables-save prints it (without counters): what is kept
 * pinned with the rule set, parsed again by save and by the next import. */
static int table_text(const struct ipt_table *t, FILE *f)
{
	fprintf(f, IPT_FAMILY_MARK "%d\n*filter\n", t->family);
	for (int c = 0; c < t->nchains; c++)
		fprintf(f, ":%s %s\n", t->chains[c].name,
			t->chains[c].policy < 0 ? "-" :
			t->chains[c].policy == FW_DROP ? "DROP" : "ACCEPT");
	for (int c = 0; c < t->nchains; c++)
		for (int i = 0; i < t->nrules; i++)
			if (t->rules[i].chain == c)
				fprintf(f, "-A %s %s\n", t->chains[c].name, t->rules[i].text);
	fprintf(f, "COMMIT\n");
	return ferror(f) ? sl_err(-EIO, "cannot write the rule text") : 0;
}

/* Splits the pinned text into its tables. */
static int blob_tables(char *text, struct ipt_table *tabs[2])
{
	char *sec[2] = {}, *p = text;
	int err = 0;

	while ((p = strstr(p, IPT_FAMILY_MARK))) {
		int fam = atoi(p + strlen(IPT_FAMILY_MARK));

		if (fam == 4 || fam == 6)
			sec[fam == 6] = p;
		*p = '\0'; /* ends the previous section */
		*p++ = '#';
		p = strchr(p, '\n');
		if (!p)
			break;
	}
	for (int f = 0; f < 2 && !err; f++) {
		char *end;
		FILE *mf;

		if (!sec[f])
			continue;
		end = strstr(sec[f] + 1, IPT_FAMILY_MARK);
		mf = fmemopen(sec[f], end ? (size_t)(end - sec[f]) : strlen(sec[f]), "r");
		if (!mf)
			return sl_err(-errno, "fmemopen: %s", strerror(errno));
		err = ipt_parse(mf, "loaded rules", f ? 6 : 4, &tabs[f]);
		fclose(mf);
	}
	return err;
}

struct ipt_state {
	struct ipt_table *tabs[2];
	struct fw_counter **percpu; /* by counter index */
	struct fw_counter *sum;
	__u32 ncounters;
};

static void state_free(struct ipt_state *s)
{
	ipt_table_free(s->tabs[0]);
	ipt_table_free(s->tabs[1]);
	fw_percpu_free(s->percpu, s->ncounters);
	free(s->sum);
	memset(s, 0, sizeof(*s));
}

static int state_read_once(struct sl_ctx *ctx, struct ipt_state *s)
{
	int ncpu = libbpf_num_possible_cpus();
	int dir = sl_instance_open_dir(ctx, IPT_INSTANCE), cfd = -1, kfd = -1, err;
	struct fw_config cfg;
	char *text = NULL;
	__u32 zero = 0;

	memset(s, 0, sizeof(*s));
	if (dir < 0)
		return dir;
	err = fw_blob_read(dir, &text);
	cfd = err ? -1 : sl_obj_get_at(dir, "fw_config");
	kfd = cfd < 0 ? -1 : sl_obj_get_at(dir, "fw_counters");
	close(dir);
	if (!err && (cfd < 0 || kfd < 0))
		err = cfd < 0 ? cfd : kfd;
	if (!err && bpf_map_lookup_elem(cfd, &zero, &cfg))
		err = sl_err(-errno, "cannot read fw_config: %s", strerror(errno));
	if (!err) {
		s->ncounters = cfg.ncounters;
		s->percpu = calloc(cfg.ncounters + 1, sizeof(*s->percpu));
		s->sum = calloc(cfg.ncounters + 1, sizeof(*s->sum));
		if (!s->percpu || !s->sum)
			err = sl_err(-ENOMEM, "out of memory");
	}
	for (__u32 i = 0; !err && i < s->ncounters; i++) {
		s->percpu[i] = calloc(ncpu, sizeof(struct fw_counter));
		if (!s->percpu[i]) {
			err = sl_err(-ENOMEM, "out of memory");
			break;
		}
		if (bpf_map_lookup_elem(kfd, &i, s->percpu[i])) {
			err = sl_err(-errno, "cannot read counter %u: %s", i, strerror(errno));
			break;
		}
		for (int c = 0; c < ncpu; c++) {
			s->sum[i].packets += s->percpu[i][c].packets;
			s->sum[i].bytes += s->percpu[i][c].bytes;
		}
	}
	if (!err)
		err = blob_tables(text, s->tabs);
	free(text);
	if (cfd >= 0)
		close(cfd);
	if (kfd >= 0)
		close(kfd);
	if (err)
		state_free(s);
	return err;
}

/* The loaded tables and counters; -ENOENT when nothing is loaded. */
static int state_read(struct sl_ctx *ctx, struct ipt_state *s)
{
	struct sl_instance inst;
	int err = sl_instance_get(ctx, IPT_INSTANCE, &inst);

	if (err)
		return err;
	if (strcmp(inst.type, IPT_TYPE))
		return sl_err(-EEXIST, "instance '%s' is a %s, not iptables rules",
			      IPT_INSTANCE, inst.type);
	err = -ENOENT;
	for (int tries = 0; tries < 5 && err == -ENOENT; tries++)
		err = state_read_once(ctx, s); /* a reload may swap the folder */
	return err;
}

static __u32 nrules_of(struct ipt_table *tabs[2])
{
	return (tabs[0] ? tabs[0]->nrules : 0) + (tabs[1] ? tabs[1]->nrules : 0);
}

/* ---- load, save, flush ------------------------------------------------ */

struct detach_arg {
	__u32 slot;
	struct sl_ctx *ctx;
	int err;
};

/* Each interface's first IPv4 and IPv6 address (global before link-local):
 * the source of the ICMP errors REJECT sends for forwarded packets, as
 * the kernel would pick it when the route back is that interface. */
static int if_addresses(struct fw_load_opts *o)
{
	struct fw_ifaddr *a = calloc(FW_MAX_IFINDEX, sizeof(*a));
	struct ifaddrs *ifs, *i;

	if (!a)
		return sl_err(-ENOMEM, "out of memory");
	if (getifaddrs(&ifs)) {
		free(a);
		return sl_err(-errno, "cannot list addresses: %s", strerror(errno));
	}
	for (i = ifs; i; i = i->ifa_next) {
		unsigned int idx = i->ifa_name ? if_nametoindex(i->ifa_name) : 0;

		if (!i->ifa_addr || !idx || idx >= FW_MAX_IFINDEX)
			continue;
		if (i->ifa_addr->sa_family == AF_INET && !a[idx].v4) {
			a[idx].v4 = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const __u8 *v6 = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr;
			bool ll = v6[0] == 0xfe && (v6[1] & 0xc0) == 0x80;
			bool none = !memcmp(a[idx].v6, (__u8[16]){}, 16);

			if (none || (!ll && a[idx].pad))
				memcpy(a[idx].v6, v6, 16);
			if (none)
				a[idx].pad = ll; /* a link-local one, to replace */
		}
	}
	freeifaddrs(ifs);
	for (int k = 0; k < FW_MAX_IFINDEX; k++)
		a[k].pad = 0;
	o->ifaddrs = a;
	o->nifaddrs = FW_MAX_IFINDEX;
	return 0;
}

static bool uses_ctstate(const struct fw_ruleset *rs)
{
	for (__u32 i = 0; i < rs->n; i++)
		if (rs->rules[i].check & FW_CHK_CT)
			return true;
	return false;
}

struct ct_arg {
	struct sl_ctx *ctx;
	__u32 slot;
	int err;
};

/* --ctstate reads sl_meta.ct_state: conntrack goes first wherever the
 * iptables instance runs. */
static int ct_first_cb(__u32 ifindex, enum sl_hook hook, const struct sl_chain *chain,
		       void *arg)
{
	struct ct_arg *a = arg;
	char dev[IF_NAMESIZE];
	bool has = false;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++)
		has |= chain->slots[i] == a->slot;
	if (!has || a->err)
		return 0;
	if (!if_indextoname(ifindex, dev))
		a->err = sl_err(-ENODEV, "interface %u is gone", ifindex);
	else
		a->err = ct_chain_first(a->ctx, dev, hook, CT_DEFAULT_NAME);
	return 0;
}

int ipt_load(struct sl_ctx *ctx, const struct ipt_table *t,
	     const char *const *devs, int ndevs, __u32 *nentries)
{
	struct ipt_state old = {};
	const struct ipt_table *tabs[2] = {};
	const struct fw_counter **carry = NULL;
	struct fw_load_opts o = {};
	struct emit e = {};
	struct sl_instance inst;
	char *blob = NULL;
	size_t blob_len = 0;
	int f = t->family == 6, err;
	bool existed = !sl_instance_get(ctx, IPT_INSTANCE, &inst);
	FILE *mf;

	if (existed) {
		err = state_read(ctx, &old);
		if (err)
			return err;
	} else if (!ndevs) {
		return sl_err(-EINVAL, "no iptables rules loaded yet: name the "
			      "interfaces with --dev DEV");
	}
	for (int i = 0; i < ndevs; i++) {
		err = sl_chain_check(ctx, devs[i], SL_HOOK_XDP, IPT_INSTANCE);
		err = err ?: sl_chain_check(ctx, devs[i], SL_HOOK_TC_OUT, IPT_INSTANCE);
		if (err)
			goto out;
	}
	tabs[f] = t;
	tabs[!f] = old.tabs[!f];

	/* The other family keeps its counters, at their new indexes. */
	__u32 n_new = (tabs[0] ? tabs[0]->nrules : 0) + (tabs[1] ? tabs[1]->nrules : 0);
	__u32 n_old = nrules_of(old.tabs);

	carry = calloc(n_new + 2 * FW_CHAINS, sizeof(*carry));
	if (!carry) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	if (tabs[!f]) {
		__u32 old_base = f ? 0 : (old.tabs[0] ? old.tabs[0]->nrules : 0);
		__u32 new_base = f ? 0 : (tabs[0] ? tabs[0]->nrules : 0);

		for (int i = 0; i < tabs[!f]->nrules; i++)
			if (old_base + i < old.ncounters)
				carry[new_base + i] = old.percpu[old_base + i];
		for (int c = 0; c < FW_CHAINS; c++)
			if (n_old + !f * FW_CHAINS + c < old.ncounters)
				carry[n_new + !f * FW_CHAINS + c] =
					old.percpu[n_old + !f * FW_CHAINS + c];
	}
	err = compile(tabs, &e, &o);
	if (err)
		goto out;
	mf = open_memstream(&blob, &blob_len);
	if (!mf) {
		err = sl_err(-errno, "open_memstream: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < 2 && !err; i++)
		if (tabs[i])
			err = table_text(tabs[i], mf);
	fclose(mf);
	if (err)
		goto out;
	err = if_addresses(&o);
	if (err)
		goto out;
	o.blob = blob;
	o.blob_len = blob_len;
	o.carry = carry;
	err = fw_load_ex(ctx, IPT_INSTANCE, &e.rs, &o);
	for (int i = 0; i < ndevs && !err; i++) {
		err = sl_chain_ensure(ctx, devs[i], SL_HOOK_XDP, IPT_INSTANCE);
		err = err ?: sl_chain_ensure(ctx, devs[i], SL_HOOK_TC_OUT, IPT_INSTANCE);
	}
	if (!err && uses_ctstate(&e.rs)) {
		struct ct_arg ca = { .ctx = ctx, .slot = FW_NONE };
		struct sl_instance me;

		err = sl_instance_get(ctx, IPT_INSTANCE, &me);
		ca.slot = me.slot;
		err = err ?: ct_instance_ensure(ctx, CT_DEFAULT_NAME);
		err = err ?: sl_chain_foreach(ctx, ct_first_cb, &ca);
		err = err ?: ca.err;
	}
	if (err && !existed)
		ipt_flush(ctx);
	if (!err && nentries)
		*nentries = e.rs.n;
out:
	free(blob);
	free(carry);
	free((void *)o.ifaddrs);
	emit_free(&e);
	state_free(&old);
	return err;
}

static const char *policy_name(int p)
{
	return p < 0 ? "-" : p == FW_DROP ? "DROP" : "ACCEPT";
}

int ipt_save(struct sl_ctx *ctx, int family, bool counters, FILE *out)
{
	struct ipt_state s;
	struct ipt_table *t;
	int f = family == 6, err = state_read(ctx, &s);
	__u32 base, npol;

	if (err == -ENOENT)
		return sl_err(-ENOENT, "no iptables rules loaded");
	if (err)
		return err;
	t = s.tabs[f];
	base = f ? (s.tabs[0] ? s.tabs[0]->nrules : 0) : 0;
	npol = nrules_of(s.tabs) + f * FW_CHAINS;
	fprintf(out, "# Generated by sluice iptables save\n*filter\n");
	if (!t) {
		/* Nothing loaded for this family: the kernel's empty table. */
		for (int c = 0; c < FW_CHAINS; c++)
			fprintf(out, ":%s ACCEPT [0:0]\n", builtin_names[c]);
	}
	for (int c = 0; t && c < t->nchains; c++) {
		const struct ipt_chain *ch = &t->chains[c];
		__u32 k = npol + (ch->builtin >= 0 ? ch->builtin : 0);

		if (ch->builtin >= 0 && k < s.ncounters)
			fprintf(out, ":%s %s [%llu:%llu]\n", ch->name, policy_name(ch->policy),
				(unsigned long long)s.sum[k].packets,
				(unsigned long long)s.sum[k].bytes);
		else
			fprintf(out, ":%s %s [0:0]\n", ch->name, policy_name(ch->policy));
	}
	/* Chain by chain, as iptables-save prints them. */
	for (int c = 0; t && c < t->nchains; c++) {
		for (int i = 0; i < t->nrules; i++) {
			const struct ipt_rule *r = &t->rules[i];

			if (r->chain != c)
				continue;
			if (counters && base + i < s.ncounters)
				fprintf(out, "[%llu:%llu] ",
					(unsigned long long)s.sum[base + i].packets,
					(unsigned long long)s.sum[base + i].bytes);
			fprintf(out, "-A %s %s\n", t->chains[c].name, r->text);
		}
	}
	fprintf(out, "COMMIT\n# Completed by sluice iptables save\n");
	state_free(&s);
	return 0;
}

static int find_slot(const struct sl_instance *in, void *arg)
{
	struct sl_instance *want = arg;

	if (in->slot == want->slot)
		*want = *in;
	return 0;
}

/* Sets the chain again without the iptables instance. */
static int detach_cb(__u32 ifindex, enum sl_hook hook, const struct sl_chain *chain,
		     void *arg)
{
	struct detach_arg *a = arg;
	char dev[IF_NAMESIZE];
	const char *names[SL_CHAIN_MAX];
	struct sl_instance insts[SL_CHAIN_MAX];
	bool has = false;
	int n = 0;

	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++)
		has |= chain->slots[i] == a->slot;
	if (!has || a->err)
		return 0;
	if (!if_indextoname(ifindex, dev)) {
		a->err = sl_err(-ENODEV, "interface %u is gone", ifindex);
		return 0;
	}
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		if (chain->slots[i] == a->slot)
			continue;
		memset(&insts[n], 0, sizeof(insts[n]));
		insts[n].slot = chain->slots[i];
		sl_instance_foreach(a->ctx, find_slot, &insts[n]);
		names[n] = insts[n].name;
		n++;
	}
	a->err = sl_chain_set(a->ctx, dev, hook, names, n);
	return 0;
}

int ipt_flush(struct sl_ctx *ctx)
{
	struct sl_instance inst;
	struct detach_arg a = { .ctx = ctx };
	int err = sl_instance_get(ctx, IPT_INSTANCE, &inst);

	if (err == -ENOENT)
		return 0; /* nothing loaded: flushed already */
	if (err)
		return err;
	if (strcmp(inst.type, IPT_TYPE))
		return sl_err(-EEXIST, "instance '%s' is a %s, not iptables rules",
			      IPT_INSTANCE, inst.type);
	a.slot = inst.slot;
	err = sl_chain_foreach(ctx, detach_cb, &a);
	err = err ?: a.err;
	return err ?: sl_instance_delete(ctx, IPT_INSTANCE);
}
