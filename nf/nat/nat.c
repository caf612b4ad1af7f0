// SPDX-License-Identifier: GPL-2.0
/* NAT NF control code.
 *
 * Rule grammar (the words after the rule's name):
 *   snat       --out DEV --to ADDR[-ADDR] [--ports LO-HI] [MATCH...]
 *   masquerade --out DEV [--ports LO-HI] [MATCH...]
 *   dnat       --in DEV --to ADDR[-ADDR][:PORT[-PORT]] [MATCH...]
 *              (IPv6 with a port: [ADDR[-ADDR]]:PORT[-PORT])
 *   MATCH: --src CIDR, --dst CIDR, --proto tcp|udp|icmp|icmpv6|N,
 *          --dport P[-P] (needs --proto tcp or udp)
 * Masquerade translates to the first address of DEV of each family (IPv6:
 * not link-local), read when the rules are loaded. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "conntrack.h"
#include "nat.h"
#include "nat.skel.h"
#include "router.h"

#define NAT_WORDS_MAX 32

const char *nat_kind_name(__u8 kind)
{
	switch (kind) {
	case NAT_SNAT:
		return "snat";
	case NAT_MASQ:
		return "masquerade";
	case NAT_DNAT:
		return "dnat";
	}
	return "?";
}

/* ---- parsing ------------------------------------------------------------ */

/* What one rule says, before compiling. */
struct nat_parsed {
	__u8 kind;
	__u8 family; /* 0 until an address fixes it */
	__u8 proto;
	bool has_src, has_dst, has_ports, has_dport, has_to_port;
	char dev[IF_NAMESIZE];
	__u32 src[4], src_mask[4], dst[4], dst_mask[4];
	__u32 to_lo[4], naddrs;
	__u16 port_lo, port_hi; /* --ports, or DNAT's :PORT */
	__u16 dport_lo, dport_hi;
};

static int spec_err(const struct nat_spec *s, const char *opt, int err,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int spec_err(const struct nat_spec *s, const char *opt, int err,
		    const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (opt)
		return sl_err(err, "nat rule '%s': %s: %s", s->name, opt, why);
	return sl_err(err, "nat rule '%s': %s", s->name, why);
}

static int parse_port(const char *s, __u16 *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "P" or "LO-HI" with 1 <= LO <= HI (port 0 is no port to translate to). */
static int parse_ports(const char *s, __u16 *lo, __u16 *hi)
{
	char buf[32], *dash;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	dash = strchr(buf, '-');
	if (dash)
		*dash = 0;
	if (parse_port(buf, lo) || (dash ? parse_port(dash + 1, hi) : (*hi = *lo, 0)))
		return -EINVAL;
	return *lo && *lo <= *hi ? 0 : -ERANGE;
}

static int parse_addr(const char *s, __u8 *family, __u32 addr[4])
{
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, s, addr) == 1) {
		*family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, s, addr) == 1) {
		*family = 6;
		return 0;
	}
	return -EINVAL;
}

static int parse_cidr(const char *s, __u8 *family, __u32 net[4], __u32 mask[4])
{
	char buf[INET6_ADDRSTRLEN + 8], *slash;
	__u16 plen;
	int max;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (parse_addr(buf, family, net))
		return -EINVAL;
	max = *family == 4 ? 32 : 128;
	plen = max;
	if (slash && (parse_port(slash + 1, &plen) || plen > max))
		return -EINVAL;
	memset(mask, 0, 16);
	for (int w = 0; w < 4; w++) {
		int bits = plen - 32 * w;

		if (bits >= 32)
			mask[w] = 0xffffffff;
		else if (bits > 0)
			mask[w] = htonl(~0U << (32 - bits));
		net[w] &= mask[w];
	}
	return 0;
}

/* "A" or "A-B": B after A, differing in the last word only (IPv4: the
 * address), at most NAT_MAX_ADDRS addresses. */
static int parse_range(const struct nat_spec *s, const char *opt, const char *v,
		       __u8 *family, __u32 lo[4], __u32 *naddrs)
{
	char buf[2 * INET6_ADDRSTRLEN + 2], *dash;
	__u32 hi[4];
	__u8 f2;
	int w;

	if (strlen(v) >= sizeof(buf))
		return spec_err(s, opt, -EINVAL, "bad address or range '%s'", v);
	strcpy(buf, v);
	dash = strchr(buf, '-');
	if (dash)
		*dash = 0;
	if (parse_addr(buf, family, lo) || (dash && parse_addr(dash + 1, &f2, hi)))
		return spec_err(s, opt, -EINVAL, "bad address or range '%s'", v);
	*naddrs = 1;
	if (!dash)
		return 0;
	if (f2 != *family)
		return spec_err(s, opt, -EINVAL, "range '%s' mixes IPv4 and IPv6", v);
	w = *family == 4 ? 0 : 3;
	for (int i = 0; i < w; i++)
		if (lo[i] != hi[i])
			return spec_err(s, opt, -ERANGE,
					"range '%s' is too large (at most %d addresses)", v,
					NAT_MAX_ADDRS);
	if (ntohl(hi[w]) < ntohl(lo[w]))
		return spec_err(s, opt, -ERANGE, "range '%s' is empty (first > last)", v);
	if ((__u64)ntohl(hi[w]) - ntohl(lo[w]) >= NAT_MAX_ADDRS)
		return spec_err(s, opt, -ERANGE,
				"range '%s' is too large (at most %d addresses)", v,
				NAT_MAX_ADDRS);
	*naddrs = ntohl(hi[w]) - ntohl(lo[w]) + 1;
	return 0;
}

/* DNAT's --to: ADDR[-ADDR][:PORT[-PORT]], IPv6 with a port in brackets. */
static int parse_dnat_to(const struct nat_spec *s, const char *v,
			 struct nat_parsed *p)
{
	char buf[2 * INET6_ADDRSTRLEN + 16], *addr = buf, *ports = NULL;
	char *colon;

	if (strlen(v) >= sizeof(buf))
		return spec_err(s, "--to", -EINVAL, "bad target '%s'", v);
	strcpy(buf, v);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close || (close[1] && close[1] != ':'))
			return spec_err(s, "--to", -EINVAL,
					"bad target '%s' (IPv6 with a port: [ADDR]:PORT)", v);
		*close = 0;
		addr = buf + 1;
		if (close[1])
			ports = close + 2;
	} else {
		colon = strchr(buf, ':');
		/* One colon: IPv4 and a port; more: a bare IPv6 address. */
		if (colon && !strchr(colon + 1, ':')) {
			*colon = 0;
			ports = colon + 1;
		}
	}
	if (ports) {
		if (parse_ports(ports, &p->port_lo, &p->port_hi))
			return spec_err(s, "--to", -EINVAL,
					"bad port or range '%s' (1-65535, first <= last)", ports);
		p->has_to_port = true;
	}
	return parse_range(s, "--to", addr, &p->family, p->to_lo, &p->naddrs);
}

static int parse_proto(const char *v, __u8 *proto)
{
	static const struct {
		const char *name;
		__u8 num;
	} names[] = { { "tcp", 6 }, { "udp", 17 }, { "icmp", 1 }, { "icmpv6", 58 } };
	__u16 n;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(v, names[i].name)) {
			*proto = names[i].num;
			return 0;
		}
	}
	if (parse_port(v, &n) || !n || n > 255)
		return -EINVAL;
	*proto = n;
	return 0;
}

static int parse_option(const struct nat_spec *s, struct nat_parsed *p,
			const char *opt, const char *v)
{
	__u8 f = 0;

	if (!strcmp(opt, "--out") || !strcmp(opt, "--in")) {
		bool want_in = p->kind == NAT_DNAT;

		if (want_in != !strcmp(opt, "--in"))
			return spec_err(s, opt, -EINVAL, "%s rules take %s",
					nat_kind_name(p->kind), want_in ? "--in DEV" : "--out DEV");
		if (strlen(v) >= IF_NAMESIZE || !if_nametoindex(v))
			return spec_err(s, opt, -ENODEV, "no interface '%s'", v);
		strcpy(p->dev, v);
		return 0;
	}
	if (!strcmp(opt, "--to")) {
		if (p->kind == NAT_MASQ)
			return spec_err(s, opt, -EINVAL,
					"masquerade takes the interface's address; use snat --to");
		if (p->kind == NAT_DNAT)
			return parse_dnat_to(s, v, p);
		return parse_range(s, opt, v, &p->family, p->to_lo, &p->naddrs);
	}
	if (!strcmp(opt, "--ports")) {
		if (p->kind == NAT_DNAT)
			return spec_err(s, opt, -EINVAL, "dnat takes its port in --to ADDR:PORT");
		if (parse_ports(v, &p->port_lo, &p->port_hi))
			return spec_err(s, opt, -EINVAL,
					"bad port range '%s' (1-65535, first <= last)", v);
		p->has_ports = true;
		return 0;
	}
	if (!strcmp(opt, "--src") || !strcmp(opt, "--dst")) {
		bool src = opt[2] == 's';

		if (parse_cidr(v, &f, src ? p->src : p->dst, src ? p->src_mask : p->dst_mask))
			return spec_err(s, opt, -EINVAL, "bad address or prefix '%s'", v);
		if (src)
			p->has_src = true;
		else
			p->has_dst = true;
		p->family = f; /* checked against the others by spec_parse */
		return 0;
	}
	if (!strcmp(opt, "--proto")) {
		if (parse_proto(v, &p->proto))
			return spec_err(s, opt, -EINVAL,
					"bad protocol '%s' (tcp, udp, icmp, icmpv6 or 1-255)", v);
		return 0;
	}
	if (!strcmp(opt, "--dport")) {
		if (parse_ports(v, &p->dport_lo, &p->dport_hi))
			return spec_err(s, opt, -EINVAL,
					"bad port or range '%s' (1-65535, first <= last)", v);
		p->has_dport = true;
		return 0;
	}
	return spec_err(s, NULL, -EINVAL,
			"unknown option '%s' (options: --out/--in DEV, --to, --ports, --src, --dst, --proto, --dport)",
			opt);
}

static int split_words(char *text, char **words, int max)
{
	int n = 0;

	for (char *w = strtok(text, " \t"); w; w = strtok(NULL, " \t")) {
		if (n == max)
			return -E2BIG;
		words[n++] = w;
	}
	return n;
}

/* Parses a rule's words; the family of --to must match --src/--dst. */
static int spec_parse(const struct nat_spec *s, struct nat_parsed *p)
{
	char text[NAT_TEXT_MAX], *w[NAT_WORDS_MAX];
	const char *seen[NAT_WORDS_MAX];
	__u8 f = 0;
	int n, err;

	memset(p, 0, sizeof(*p));
	snprintf(text, sizeof(text), "%s", s->text);
	n = split_words(text, w, NAT_WORDS_MAX);
	if (n <= 0)
		return spec_err(s, NULL, -EINVAL,
				n ? "too many words" : "no kind (snat, masquerade or dnat)");
	if (!strcmp(w[0], "snat"))
		p->kind = NAT_SNAT;
	else if (!strcmp(w[0], "masquerade") || !strcmp(w[0], "masq"))
		p->kind = NAT_MASQ;
	else if (!strcmp(w[0], "dnat"))
		p->kind = NAT_DNAT;
	else
		return spec_err(s, NULL, -EINVAL,
				"unknown kind '%s' (snat, masquerade or dnat)", w[0]);
	for (int i = 1; i < n; i += 2) {
		if (strncmp(w[i], "--", 2))
			return spec_err(s, NULL, -EINVAL, "expected an option, found '%s'", w[i]);
		if (i + 1 >= n)
			return spec_err(s, w[i], -EINVAL, "needs a value");
		for (int j = 1; j < i; j += 2)
			if (!strcmp(seen[j], w[i]))
				return spec_err(s, w[i], -EINVAL, "given twice");
		seen[i] = w[i];
		/* --to's family is checked against --src/--dst below. */
		f = p->family;
		p->family = 0;
		err = parse_option(s, p, w[i], w[i + 1]);
		if (err)
			return err;
		if (p->family && f && p->family != f)
			return spec_err(s, w[i], -EINVAL, "IPv%u address in an IPv%u rule",
					p->family, f);
		if (!p->family)
			p->family = f;
	}
	if (!p->dev[0])
		return spec_err(s, NULL, -EINVAL, "%s needs %s", w[0],
				p->kind == NAT_DNAT ? "--in DEV" : "--out DEV");
	if (p->kind != NAT_MASQ && !p->naddrs)
		return spec_err(s, NULL, -EINVAL, "%s needs --to", w[0]);
	if ((p->has_dport || p->has_to_port) && p->proto != 6 && p->proto != 17)
		return spec_err(s, p->has_dport ? "--dport" : "--to", -EINVAL,
				"ports need --proto tcp or --proto udp");
	if (p->proto == 1 && p->family == 6)
		return spec_err(s, "--proto", -EINVAL, "icmp in an IPv6 rule (use icmpv6)");
	if (p->proto == 58 && p->family == 4)
		return spec_err(s, "--proto", -EINVAL, "icmpv6 in an IPv4 rule (use icmp)");
	return 0;
}

/* The first address of dev in family (IPv6: not link-local); 0 or -ENOENT. */
static int dev_addr(const char *dev, __u8 family, __u32 out[4])
{
	struct ifaddrs *ifa, *i;
	int err = -ENOENT;

	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i && err; i = i->ifa_next) {
		if (!i->ifa_addr || strcmp(i->ifa_name, dev))
			continue;
		memset(out, 0, 16);
		if (family == 4 && i->ifa_addr->sa_family == AF_INET) {
			memcpy(out, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
			err = 0;
		} else if (family == 6 && i->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LINKLOCAL(a))
				continue;
			memcpy(out, a, 16);
			err = 0;
		}
	}
	freeifaddrs(ifa);
	return err;
}

static void rule_from(const struct nat_parsed *p, __u8 index, __u8 family,
		      struct nat_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->ifindex = if_nametoindex(p->dev);
	r->kind = p->kind;
	r->family = family;
	r->proto = p->proto;
	r->spec = index;
	memcpy(r->src, p->src, 16);
	memcpy(r->src_mask, p->src_mask, 16);
	memcpy(r->dst, p->dst, 16);
	memcpy(r->dst_mask, p->dst_mask, 16);
	r->dport_lo = p->has_dport ? p->dport_lo : 0;
	r->dport_hi = p->has_dport ? p->dport_hi : 0xffff;
	memcpy(r->to_lo, p->to_lo, 16);
	r->naddrs = p->naddrs;
	r->port_lo = p->port_lo;
	r->port_hi = p->port_hi;
}

int nat_spec_compile(const struct nat_spec *s, __u8 index, struct nat_rule *out,
		     int max)
{
	struct nat_parsed p;
	int n = 0, err = spec_parse(s, &p);

	if (err)
		return err;
	if (p.kind != NAT_MASQ) {
		if (max < 1)
			return sl_err(-E2BIG, "more than %d compiled NAT rules", NAT_MAX_RULES);
		rule_from(&p, index, p.family, out);
		return 1;
	}
	/* Masquerade: one rule per family DEV has an address of. */
	for (__u8 f = 4; f <= 6; f += 2) {
		if (p.family && p.family != f)
			continue;
		if (dev_addr(p.dev, f, p.to_lo))
			continue;
		if (n >= max)
			return sl_err(-E2BIG, "more than %d compiled NAT rules", NAT_MAX_RULES);
		p.naddrs = 1;
		rule_from(&p, index, f, &out[n++]);
	}
	if (!n)
		return spec_err(s, "--out", -EADDRNOTAVAIL, "%s has no %s address to masquerade to",
				p.dev, p.family == 4 ? "IPv4" : p.family == 6 ? "IPv6" : "IP");
	return n;
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (!len || len >= SL_NAME_MAX)
		return sl_err(-EINVAL, "nat rule name '%s' must have 1 to %d characters",
			      name, SL_NAME_MAX - 1);
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return sl_err(-EINVAL, "nat rule name '%s': use letters, digits, '-' and '_'",
				      name);
	return 0;
}

int nat_spec_make(struct nat_spec *s, const char *name, int argc, char *const *argv)
{
	struct nat_rule tmp[2];
	size_t len = 0;
	int err = check_name(name);

	if (err)
		return err;
	memset(s, 0, sizeof(*s));
	strcpy(s->name, name);
	if (argc > NAT_WORDS_MAX)
		return spec_err(s, NULL, -E2BIG, "too many words");
	for (int i = 0; i < argc; i++) {
		size_t l = strlen(argv[i]);

		if (!l || strpbrk(argv[i], " \t\n"))
			return spec_err(s, NULL, -EINVAL, "bad word '%s'", argv[i]);
		if (len + l + 2 > sizeof(s->text))
			return spec_err(s, NULL, -E2BIG, "longer than %d characters",
					NAT_TEXT_MAX - 1);
		if (i)
			s->text[len++] = ' ';
		memcpy(s->text + len, argv[i], l);
		len += l;
	}
	err = nat_spec_compile(s, 0, tmp, 2);
	return err < 0 ? err : 0;
}

/* ---- loading ------------------------------------------------------------ */

struct nat_devs {
	__u32 ifindex[NAT_MAX_RULES];
	int n;
};

static void devs_add(struct nat_devs *d, __u32 ifindex)
{
	for (int i = 0; i < d->n; i++)
		if (d->ifindex[i] == ifindex)
			return;
	d->ifindex[d->n++] = ifindex;
}

static bool devs_has(const struct nat_devs *d, __u32 ifindex)
{
	for (int i = 0; i < d->n; i++)
		if (d->ifindex[i] == ifindex)
			return true;
	return false;
}

static const enum sl_hook nat_hooks[2] = { SL_HOOK_TC_IN, SL_HOOK_TC_OUT };

struct slot_name {
	__u32 slot;
	char name[SL_NAME_MAX];
};

static int slot_name_cb(const struct sl_instance *inst, void *arg)
{
	struct slot_name *q = arg;

	if (inst->slot != q->slot)
		return 0;
	snprintf(q->name, sizeof(q->name), "%s", inst->name);
	return 1;
}

struct chain_off {
	__u32 slot;
	const struct nat_devs *keep;
	__u32 ifindex[64];
	__u8 hook[64];
	int n;
};

static int find_unneeded_cb(__u32 ifindex, enum sl_hook hook,
			    const struct sl_chain *chain, void *arg)
{
	struct chain_off *c = arg;

	/* XDP chains are the operator's (nat attach), not the rules'. */
	if (hook == SL_HOOK_XDP || devs_has(c->keep, ifindex) || c->n == 64)
		return 0;
	for (__u32 i = 0; i < chain->len && i < SL_CHAIN_MAX; i++) {
		if (chain->slots[i] == c->slot) {
			c->ifindex[c->n] = ifindex;
			c->hook[c->n++] = hook;
			break;
		}
	}
	return 0;
}

/* Takes the instance off the chains of interfaces no rule names. */
static int chains_remove_unneeded(struct sl_ctx *ctx, __u32 slot,
				  const struct nat_devs *keep)
{
	struct chain_off c = { .slot = slot, .keep = keep };
	int err = 0;

	sl_chain_foreach(ctx, find_unneeded_cb, &c);
	for (int i = 0; i < c.n && !err; i++) {
		struct slot_name names[SL_CHAIN_MAX];
		const char *list[SL_CHAIN_MAX];
		char dev[IF_NAMESIZE];
		struct sl_chain chain;
		int n = 0;

		if (!if_indextoname(c.ifindex[i], dev) ||
		    sl_chain_get(ctx, dev, c.hook[i], &chain))
			continue;
		for (__u32 j = 0; j < chain.len && j < SL_CHAIN_MAX; j++) {
			if (chain.slots[j] == slot)
				continue;
			names[n].slot = chain.slots[j];
			names[n].name[0] = 0;
			sl_instance_foreach(ctx, slot_name_cb, &names[n]);
			list[n] = names[n].name;
			n++;
		}
		err = sl_chain_set(ctx, dev, c.hook[i], list, n);
	}
	return err;
}

static int fill_maps(struct nat_bpf *skel, const struct nat_specs *specs,
		     const struct nat_rule *rules, __u32 nrules)
{
	struct nat_config cfg = { .nrules = nrules, .nspecs = specs->n };

	for (__u32 i = 0; i < nrules; i++) {
		struct nat_cover_range *c = &cfg.cover[cfg.ncover];

		if (rules[i].kind == NAT_DNAT) {
			cfg.ndnat++;
			continue;
		}
		if (cfg.ncover < NAT_COVER_INLINE) {
			memcpy(c->lo, rules[i].to_lo, sizeof(c->lo));
			c->n = rules[i].naddrs ? rules[i].naddrs : 1;
			c->family = rules[i].family;
		}
		cfg.ncover++;
	}
	int rules_fd = bpf_map__fd(skel->maps.nat_rules);
	int specs_fd = bpf_map__fd(skel->maps.nat_specs);
	__u32 zero = 0;

	for (__u32 i = 0; i < nrules; i++)
		if (bpf_map_update_elem(rules_fd, &i, &rules[i], BPF_ANY))
			return sl_err(-errno, "cannot fill nat_rules: %s", strerror(errno));
	for (__u32 i = 0; i < specs->n; i++)
		if (bpf_map_update_elem(specs_fd, &i, &specs->spec[i], BPF_ANY))
			return sl_err(-errno, "cannot fill nat_specs: %s", strerror(errno));
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.nat_config), &zero, &cfg, BPF_ANY))
		return sl_err(-errno, "cannot write nat_config: %s", strerror(errno));
	return 0;
}

static int compile_all(const struct nat_specs *specs, struct nat_rule *rules,
		       __u32 *nrules, struct nat_devs *devs)
{
	int n = 0, c;

	if (specs->n > NAT_MAX_SPECS)
		return sl_err(-E2BIG, "more than %d nat rules", NAT_MAX_SPECS);
	for (__u32 i = 0; i < specs->n; i++) {
		for (__u32 j = 0; j < i; j++)
			if (!strcmp(specs->spec[i].name, specs->spec[j].name))
				return sl_err(-EEXIST, "nat rule '%s' appears twice",
					      specs->spec[i].name);
		c = nat_spec_compile(&specs->spec[i], i, rules + n, NAT_MAX_RULES - n);
		if (c < 0)
			return c;
		for (int k = 0; k < c; k++)
			devs_add(devs, rules[n + k].ifindex);
		n += c;
	}
	*nrules = n;
	return 0;
}

static bool snat_covers(const struct nat_rule *rules, __u32 n, const struct nat_key *k)
{
	for (__u32 i = 0; i < n; i++) {
		const struct nat_rule *r = &rules[i];
		int w = r->family == 4 ? 0 : 3;
		__u32 a, lo;

		if (r->kind == NAT_DNAT || r->family != k->family)
			continue;
		if (memcmp(r->to_lo, k->daddr, w * 4))
			continue;
		a = ntohl(k->daddr[w]);
		lo = ntohl(r->to_lo[w]);
		if (a >= lo && a - lo < r->naddrs)
			return true;
	}
	return false;
}

static int open_pin(struct sl_ctx *ctx, const char *name)
{
	return sl_obj_get(sl_base(ctx), name);
}

/* nat_epoch around a removal of mappings (nat_abi.h): odd while it runs
 * (begin), the next even value after (end). */
static void epoch_move(struct sl_ctx *ctx, bool begin)
{
	int fd = open_pin(ctx, "nat_epoch");
	__u32 zero = 0, e = 0;

	if (fd < 0)
		return; /* no NAT loaded yet: no mapping either */
	if (!bpf_map_lookup_elem(fd, &zero, &e)) {
		/* A new value each time: the next odd one, then even one. */
		if (begin)
			e += e & 1 ? 2 : 1;
		else
			e += e & 1 ? 1 : 2;
		bpf_map_update_elem(fd, &zero, &e, BPF_ANY);
	}
	close(fd);
}

/* Every key of a mapping map, collected before any is deleted: deleting
 * while walking a hash restarts the walk. Returns the count, or -errno. */
static int collect_keys(int fd, struct nat_key **out)
{
	struct nat_key *keys = NULL, k, *prev = NULL;
	int n = 0, cap = 0;

	while (!bpf_map_get_next_key(fd, prev, &k)) {
		if (n == cap) {
			struct nat_key *more;

			cap = cap ? cap * 2 : 1024;
			more = realloc(keys, cap * sizeof(*keys));
			if (!more) {
				free(keys);
				return sl_err(-ENOMEM, "out of memory");
			}
			keys = more;
		}
		keys[n] = k;
		prev = &keys[n++];
	}
	*out = keys;
	return n;
}

/* Removes SNAT mappings to addresses no SNAT rule gives any more (a
 * deleted rule, a masquerade interface whose address changed), as
 * netfilter forgets masqueraded connections when the address goes. */
static void prune_snat(struct sl_ctx *ctx, const struct nat_rule *rules, __u32 n)
{
	int rev = open_pin(ctx, "nat_snat_rev"), fwd = open_pin(ctx, "nat_snat_fwd");
	struct nat_key *keys = NULL, fk;
	struct nat_rev v;
	int nkeys = rev >= 0 && fwd >= 0 ? collect_keys(rev, &keys) : 0;

	epoch_move(ctx, true);
	for (int i = 0; i < nkeys; i++) {
		const struct nat_key *k = &keys[i];

		if (bpf_map_lookup_elem(rev, k, &v) || snat_covers(rules, n, k))
			continue;
		fk = *k; /* the forward entry's key: the original tuple */
		memcpy(fk.saddr, v.addr, 16);
		memcpy(fk.daddr, k->saddr, 16);
		fk.sport = v.port;
		fk.dport = k->sport;
		bpf_map_delete_elem(fwd, &fk);
		bpf_map_delete_elem(rev, k);
	}
	epoch_move(ctx, false);
	free(keys);
	if (rev >= 0)
		close(rev);
	if (fwd >= 0)
		close(fwd);
}

static int read_specs_once(struct sl_ctx *ctx, struct nat_specs *specs);

/* The counters of the loaded rules, per CPU, to carry over to the same
 * rules (same name, kind, family, interface) in the next generation. */
struct nat_carry {
	struct nat_specs specs;
	struct nat_rule rules[NAT_MAX_RULES];
	struct nat_counter *percpu; /* n * ncpu */
	__u32 n;
	int ncpu;
};

static void carry_read(struct sl_ctx *ctx, struct nat_carry *c)
{
	int dir_fd, rules_fd, cnt_fd;
	__u32 n = 0;

	c->n = 0;
	c->ncpu = libbpf_num_possible_cpus();
	if (c->ncpu <= 0 || read_specs_once(ctx, &c->specs))
		return; /* nothing loaded yet: nothing to carry */
	c->percpu = calloc((size_t)NAT_MAX_RULES * c->ncpu, sizeof(*c->percpu));
	dir_fd = sl_instance_open_dir(ctx, NAT_INSTANCE);
	if (!c->percpu || dir_fd < 0) {
		if (dir_fd >= 0)
			close(dir_fd);
		return;
	}
	rules_fd = sl_obj_get_at(dir_fd, "nat_rules");
	cnt_fd = sl_obj_get_at(dir_fd, "nat_counters");
	close(dir_fd);
	for (__u32 i = 0; rules_fd >= 0 && cnt_fd >= 0 && i < NAT_MAX_RULES; i++) {
		if (bpf_map_lookup_elem(rules_fd, &i, &c->rules[i]) || !c->rules[i].ifindex ||
		    bpf_map_lookup_elem(cnt_fd, &i, c->percpu + (size_t)i * c->ncpu))
			break;
		n = i + 1;
	}
	c->n = n;
	if (rules_fd >= 0)
		close(rules_fd);
	if (cnt_fd >= 0)
		close(cnt_fd);
}

static void carry_apply(const struct nat_carry *c, int cnt_fd, const struct nat_specs *specs,
			const struct nat_rule *rules, __u32 nrules)
{
	for (__u32 j = 0; j < nrules; j++) {
		const struct nat_rule *r = &rules[j];

		for (__u32 i = 0; i < c->n; i++) {
			const struct nat_rule *o = &c->rules[i];

			if (o->kind != r->kind || o->family != r->family ||
			    o->ifindex != r->ifindex || o->spec >= c->specs.n ||
			    strcmp(c->specs.spec[o->spec].name, specs->spec[r->spec].name))
				continue;
			bpf_map_update_elem(cnt_fd, &j, c->percpu + (size_t)i * c->ncpu, BPF_ANY);
			break;
		}
	}
}

/* The IPv4 table of the conntrack instance CT_DEFAULT_NAME, where the XDP
 * path keeps a copy of a flow's translation in its connection's entry
 * (nat_ct in nat.bpf.c); -1 when there is none: the program then keeps the
 * small stand-in it declares, in which nothing is ever found, and works
 * from its own maps alone. A conntrack instance made later is used from
 * NAT's next load on. */
static int ct_table_of(struct sl_ctx *ctx)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	struct sl_instance inst;
	int dir, fd;

	if (sl_instance_get(ctx, CT_DEFAULT_NAME, &inst) || strcmp(inst.type, CT_TYPE))
		return -1;
	dir = sl_instance_open_dir(ctx, CT_DEFAULT_NAME);
	if (dir < 0)
		return -1;
	fd = sl_obj_get_at(dir, "ct_table");
	close(dir);
	if (fd < 0)
		return -1;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_LRU_HASH ||
	    info.key_size != sizeof(struct ct_key4) ||
	    info.value_size != sizeof(struct ct_entry)) {
		close(fd);
		return -1;
	}
	return fd;
}

int nat_load(struct sl_ctx *ctx, const struct nat_specs *specs)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = sl_base(ctx));
	struct nat_rule *rules = calloc(NAT_MAX_RULES, sizeof(*rules));
	struct nat_devs *devs = calloc(1, sizeof(*devs));
	struct nat_carry *carry = calloc(1, sizeof(*carry));
	static const char *const pins[] = { "nat_rules", "nat_config", "nat_counters",
					    "nat_specs" };
	struct nat_bpf *skel = NULL;
	struct sl_instance inst;
	char stage[PATH_MAX], dev[IF_NAMESIZE];
	__u32 nrules = 0;
	int err, ct_fd;

	if (!rules || !devs || !carry) {
		err = sl_err(-ENOMEM, "out of memory");
		goto out;
	}
	err = compile_all(specs, rules, &nrules, devs);
	for (int i = 0; i < devs->n && !err; i++) {
		if (!if_indextoname(devs->ifindex[i], dev))
			err = sl_err(-ENODEV, "interface %u is gone", devs->ifindex[i]);
		for (int h = 0; h < 2 && !err; h++)
			err = sl_chain_check(ctx, dev, nat_hooks[h], NAT_INSTANCE);
	}
	err = err ?: sl_instance_prepare(ctx, NAT_INSTANCE, NAT_TYPE, &inst);
	if (err)
		goto out;
	skel = nat_bpf__open_opts(&opts);
	if (!skel) {
		err = sl_err(-errno, "cannot open the NAT BPF object: %s", strerror(errno));
		goto out;
	}
	skel->rodata->nat_slot = inst.slot;
	ct_fd = ct_table_of(ctx);
	if (ct_fd >= 0) {
		err = bpf_map__reuse_fd(skel->maps.nat_ct, ct_fd);
		close(ct_fd);
		if (err) {
			err = sl_err(err, "cannot use the conntrack table: %s", strerror(-err));
			goto out;
		}
	}
	/* The mapping maps are pinned by name: load reuses them, if they
	 * have this build's layout. */
	err = sl_pins_check(sl_base(ctx), skel->obj);
	if (err)
		goto out;
	err = nat_bpf__load(skel);
	if (err) {
		err = sl_err(err, "cannot load the NAT BPF program: %s", strerror(-err));
		goto out;
	}
	err = fill_maps(skel, specs, rules, nrules);
	if (!err) {
		carry_read(ctx, carry);
		carry_apply(carry, bpf_map__fd(skel->maps.nat_counters), specs, rules, nrules);
	}
	err = err ?: sl_instance_stage_dir(ctx, &inst, stage, sizeof(stage));
	if (err)
		goto out;
	err = sl_pin(stage, pins[0], bpf_map__fd(skel->maps.nat_rules));
	err = err ?: sl_pin(stage, pins[1], bpf_map__fd(skel->maps.nat_config));
	err = err ?: sl_pin(stage, pins[2], bpf_map__fd(skel->maps.nat_counters));
	err = err ?: sl_pin(stage, pins[3], bpf_map__fd(skel->maps.nat_specs));
	err = err ?: sl_pin(stage, "prog_xdp", bpf_program__fd(skel->progs.nat_xdp));
	err = err ?: sl_pin(stage, "prog_tc", bpf_program__fd(skel->progs.nat_tc));
	err = err ?: sl_instance_commit(ctx, &inst, bpf_program__fd(skel->progs.nat_xdp),
					bpf_program__fd(skel->progs.nat_tc));
	if (err) {
		sl_pin_dir_remove(stage);
		goto out;
	}
	/* The new rules are in: now the chains follow them. */
	for (int i = 0; i < devs->n && !err; i++) {
		if_indextoname(devs->ifindex[i], dev);
		for (int h = 0; h < 2 && !err; h++)
			err = sl_chain_ensure(ctx, dev, nat_hooks[h], NAT_INSTANCE);
	}
	err = err ?: chains_remove_unneeded(ctx, inst.slot, devs);
	prune_snat(ctx, rules, nrules);
out:
	nat_bpf__destroy(skel);
	if (carry)
		free(carry->percpu);
	free(carry);
	free(rules);
	free(devs);
	return err;
}

/* ---- reading back ------------------------------------------------------- */

static int read_specs_once(struct sl_ctx *ctx, struct nat_specs *specs)
{
	struct sl_instance inst;
	struct nat_config cfg;
	int dir_fd, cfg_fd = -1, specs_fd = -1, err = 0;
	__u32 zero = 0;

	memset(specs, 0, sizeof(*specs));
	err = sl_instance_get(ctx, NAT_INSTANCE, &inst);
	if (err)
		return err;
	if (strcmp(inst.type, NAT_TYPE))
		return sl_err(-EINVAL, "instance '%s' is a %s, not a nat", NAT_INSTANCE,
			      inst.type);
	dir_fd = sl_instance_open_dir(ctx, NAT_INSTANCE);
	if (dir_fd < 0)
		return dir_fd;
	cfg_fd = sl_obj_get_at(dir_fd, "nat_config");
	specs_fd = cfg_fd < 0 ? -1 : sl_obj_get_at(dir_fd, "nat_specs");
	close(dir_fd);
	if (specs_fd < 0) {
		err = cfg_fd < 0 ? cfg_fd : specs_fd;
		goto out;
	}
	if (bpf_map_lookup_elem(cfg_fd, &zero, &cfg)) {
		err = sl_err(-errno, "cannot read nat_config");
		goto out;
	}
	for (__u32 i = 0; i < cfg.nspecs && i < NAT_MAX_SPECS; i++) {
		if (bpf_map_lookup_elem(specs_fd, &i, &specs->spec[i])) {
			err = sl_err(-errno, "cannot read nat rule %u", i);
			goto out;
		}
		specs->n++;
	}
out:
	if (cfg_fd >= 0)
		close(cfg_fd);
	if (specs_fd >= 0)
		close(specs_fd);
	return err;
}

int nat_read_specs(struct sl_ctx *ctx, struct nat_specs *specs)
{
	int err = -ENOENT;

	/* A reload may remove the generation being read: try again. */
	for (int tries = 0; tries < 5; tries++) {
		err = read_specs_once(ctx, specs);
		if (err != -ENOENT || sl_instance_get(ctx, NAT_INSTANCE, &(struct sl_instance){}))
			break;
	}
	return err;
}

int nat_read_rules(struct sl_ctx *ctx, struct nat_rule *rules,
		   struct nat_counter *counters, __u32 *n)
{
	int ncpu = libbpf_num_possible_cpus();
	struct nat_counter *per = calloc(ncpu > 0 ? ncpu : 1, sizeof(*per));
	int dir_fd, cfg_fd = -1, rules_fd = -1, cnt_fd = -1, err = 0;
	struct nat_config cfg = {};
	__u32 zero = 0;

	*n = 0;
	if (!per)
		return sl_err(-ENOMEM, "out of memory");
	dir_fd = sl_instance_open_dir(ctx, NAT_INSTANCE);
	if (dir_fd < 0) {
		free(per);
		return dir_fd;
	}
	cfg_fd = sl_obj_get_at(dir_fd, "nat_config");
	rules_fd = sl_obj_get_at(dir_fd, "nat_rules");
	cnt_fd = sl_obj_get_at(dir_fd, "nat_counters");
	close(dir_fd);
	if (cfg_fd < 0 || rules_fd < 0 || cnt_fd < 0 ||
	    bpf_map_lookup_elem(cfg_fd, &zero, &cfg)) {
		err = sl_err(-ENOENT, "cannot read the NAT rules");
		goto out;
	}
	for (__u32 i = 0; i < cfg.nrules && i < NAT_MAX_RULES; i++) {
		if (bpf_map_lookup_elem(rules_fd, &i, &rules[i]) ||
		    bpf_map_lookup_elem(cnt_fd, &i, per)) {
			err = sl_err(-errno, "cannot read NAT rule %u", i);
			goto out;
		}
		memset(&counters[i], 0, sizeof(counters[i]));
		for (int c = 0; c < ncpu; c++) {
			counters[i].flows += per[c].flows;
			counters[i].no_port += per[c].no_port;
		}
		(*n)++;
	}
out:
	free(per);
	if (cfg_fd >= 0)
		close(cfg_fd);
	if (rules_fd >= 0)
		close(rules_fd);
	if (cnt_fd >= 0)
		close(cnt_fd);
	return err;
}

static int read_or_empty(struct sl_ctx *ctx, struct nat_specs *specs)
{
	int err = nat_read_specs(ctx, specs);

	if (err == -ENOENT) {
		specs->n = 0;
		return 0;
	}
	return err;
}

int nat_rule_add(struct sl_ctx *ctx, const struct nat_spec *spec)
{
	struct nat_specs *specs = calloc(1, sizeof(*specs));
	int err = specs ? read_or_empty(ctx, specs) : sl_err(-ENOMEM, "out of memory");

	for (__u32 i = 0; !err && i < specs->n; i++)
		if (!strcmp(specs->spec[i].name, spec->name))
			err = sl_err(-EEXIST, "nat rule '%s' exists; delete it first", spec->name);
	if (!err && specs->n >= NAT_MAX_SPECS)
		err = sl_err(-E2BIG, "at most %d nat rules", NAT_MAX_SPECS);
	if (!err) {
		specs->spec[specs->n++] = *spec;
		err = nat_load(ctx, specs);
	}
	free(specs);
	return err;
}

int nat_rule_del(struct sl_ctx *ctx, const char *name)
{
	struct nat_specs *specs = calloc(1, sizeof(*specs));
	int err = specs ? read_or_empty(ctx, specs) : sl_err(-ENOMEM, "out of memory");
	__u32 i;

	if (err)
		goto out;
	for (i = 0; i < specs->n; i++)
		if (!strcmp(specs->spec[i].name, name))
			break;
	if (i == specs->n) {
		err = sl_err(-ENOENT, "no nat rule '%s'", name);
		goto out;
	}
	memmove(&specs->spec[i], &specs->spec[i + 1],
		(specs->n - i - 1) * sizeof(specs->spec[0]));
	specs->n--;
	err = nat_load(ctx, specs);
out:
	free(specs);
	return err;
}

int nat_reload(struct sl_ctx *ctx)
{
	struct nat_specs *specs = calloc(1, sizeof(*specs));
	int err = specs ? nat_read_specs(ctx, specs) : sl_err(-ENOMEM, "out of memory");

	if (err == -ENOENT)
		err = sl_err(-ENOENT, "no nat rules loaded");
	if (!err)
		err = nat_load(ctx, specs);
	free(specs);
	return err;
}

/* ---- mappings ----------------------------------------------------------- */

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void key_swap(struct nat_key *k)
{
	__u32 a[4];
	__u16 p;

	memcpy(a, k->saddr, 16);
	memcpy(k->saddr, k->daddr, 16);
	memcpy(k->daddr, a, 16);
	p = k->sport;
	k->sport = k->dport;
	k->dport = p;
}

/* A reverse entry as a mapping: its key is the translated flow's reply. */
static void mapping_of(struct nat_mapping *m, const struct nat_key *k,
		       const struct nat_rev *v, bool snat, __u64 now)
{
	memset(m, 0, sizeof(*m));
	m->kind = snat ? NAT_SNAT : NAT_DNAT; /* masquerade is SNAT here */
	m->state = v->state;
	m->ifindex = v->ifindex;
	m->expires_in_ns = v->expires - now;
	m->xlat = *k;
	key_swap(&m->xlat);
	m->orig = m->xlat;
	if (snat) {
		memcpy(m->orig.saddr, v->addr, 16);
		m->orig.sport = v->port;
	} else {
		memcpy(m->orig.daddr, v->addr, 16);
		m->orig.dport = v->port;
	}
}

int nat_mappings_foreach(struct sl_ctx *ctx, nat_mapping_cb cb, void *arg)
{
	static const char *const maps[2] = { "nat_snat_rev", "nat_dnat_rev" };
	__u64 now = mono_ns();
	int err = 0;

	for (int i = 0; i < 2 && !err; i++) {
		int fd = open_pin(ctx, maps[i]);
		struct nat_key k, next;
		struct nat_mapping m;
		struct nat_rev v;
		void *prev = NULL;

		if (fd < 0)
			continue; /* no NAT loaded yet */
		while (!err && !bpf_map_get_next_key(fd, prev, &next)) {
			k = next;
			prev = &k;
			if (bpf_map_lookup_elem(fd, &k, &v) || v.expires < now)
				continue;
			mapping_of(&m, &k, &v, i == 0, now);
			err = cb(&m, arg);
		}
		close(fd);
	}
	return err;
}

/* Deletes every entry of a map; returns how many. */
static int map_clear(int fd)
{
	struct nat_key *keys = NULL;
	int n = collect_keys(fd, &keys), done = 0;

	for (int i = 0; i < n; i++)
		done += !bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
	return done;
}

int nat_flush(struct sl_ctx *ctx)
{
	static const char *const maps[4] = { "nat_snat_rev", "nat_dnat_rev",
					     "nat_snat_fwd", "nat_dnat_fwd" };
	int n = 0;

	epoch_move(ctx, true);
	for (int i = 0; i < 4; i++) {
		int fd = open_pin(ctx, maps[i]), c;

		if (fd < 0)
			continue;
		c = map_clear(fd);
		if (i < 2)
			n += c;
		close(fd);
	}
	epoch_move(ctx, false);
	return n;
}

/* ---- the XDP fast path ------------------------------------------------- */

/* The names of the chain of dev's XDP ingress, without the NAT instance;
 * *router: where the first router is (n when there is none). */
static int xdp_chain_names(struct sl_ctx *ctx, const char *dev,
			   struct sl_instance *names, int *n, int *router)
{
	struct sl_chain chain;
	int err = sl_chain_get(ctx, dev, SL_HOOK_XDP, &chain);
	struct slot_name q;

	*n = 0;
	*router = -1;
	if (err == -ENOENT)
		chain.len = 0;
	else if (err)
		return err;
	for (__u32 i = 0; i < chain.len && i < SL_CHAIN_MAX; i++) {
		q.slot = chain.slots[i];
		q.name[0] = 0;
		sl_instance_foreach(ctx, slot_name_cb, &q);
		if (!q.name[0] || sl_instance_get(ctx, q.name, &names[*n]))
			return sl_err(-ENOENT, "slot %u of %s's chain has no instance", q.slot, dev);
		if (!strcmp(q.name, NAT_INSTANCE))
			continue;
		if (*router < 0 && !strcmp(names[*n].type, RT_TYPE))
			*router = *n;
		(*n)++;
	}
	if (*router < 0)
		*router = *n;
	return 0;
}

static int xdp_chain_write(struct sl_ctx *ctx, const char *dev,
			   const struct sl_instance *names, int n, int nat_at)
{
	const char *list[SL_CHAIN_MAX + 1];
	int k = 0;

	for (int i = 0; i <= n; i++) {
		if (i == nat_at)
			list[k++] = NAT_INSTANCE;
		if (i < n)
			list[k++] = names[i].name;
	}
	return sl_chain_set(ctx, dev, SL_HOOK_XDP, list, k);
}

int nat_attach(struct sl_ctx *ctx, const char *dev)
{
	struct sl_instance names[SL_CHAIN_MAX], inst;
	struct nat_specs *specs;
	int n, router, err = sl_ifindex(dev);

	if (err < 0)
		return err;
	err = sl_chain_check(ctx, dev, SL_HOOK_XDP, NAT_INSTANCE);
	err = err ?: xdp_chain_names(ctx, dev, names, &n, &router);
	if (err)
		return err;
	if (sl_instance_get(ctx, NAT_INSTANCE, &inst)) {
		/* No rules yet: an empty rule set makes the instance. */
		specs = calloc(1, sizeof(*specs));
		if (!specs)
			return sl_err(-ENOMEM, "out of memory");
		err = nat_load(ctx, specs);
		free(specs);
		if (err)
			return err;
	} else if (strcmp(inst.type, NAT_TYPE)) {
		return sl_err(-EEXIST, "instance '%s' exists and is a %s, not a nat",
			      NAT_INSTANCE, inst.type);
	}
	return xdp_chain_write(ctx, dev, names, n, router);
}

int nat_detach(struct sl_ctx *ctx, const char *dev)
{
	struct sl_instance names[SL_CHAIN_MAX];
	struct sl_chain chain;
	bool found = false;
	int n, router, err = sl_ifindex(dev);
	struct sl_instance inst;

	if (err < 0)
		return err;
	if (sl_instance_get(ctx, NAT_INSTANCE, &inst) ||
	    sl_chain_get(ctx, dev, SL_HOOK_XDP, &chain))
		return sl_err(-ENOENT, "nat is not on the ingress chain of %s", dev);
	for (__u32 i = 0; i < chain.len && i < SL_CHAIN_MAX; i++)
		found |= chain.slots[i] == inst.slot;
	if (!found)
		return sl_err(-ENOENT, "nat is not on the ingress chain of %s", dev);
	err = xdp_chain_names(ctx, dev, names, &n, &router);
	return err ?: xdp_chain_write(ctx, dev, names, n, -1);
}
