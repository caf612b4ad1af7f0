// SPDX-License-Identifier: GPL-2.0
/* ipvsadm's syntax for the load balancer: one operation from its words
 * (the CLI and `ipvsadm-save -n` lines share this parser), applied to the
 * configuration model in memory; lb_apply() then writes the result. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include "lb.h"

static int parse_u32(const char *s, const char *what, __u32 max, __u32 *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max)
		return sl_err(-EINVAL, "%s: bad value '%s' (0-%u)", what, s, max);
	*out = v;
	return 0;
}

static bool is(const char *a, const char *s, const char *l)
{
	return !strcmp(a, s) || (l && !strcmp(a, l));
}

static int set_cmd(struct lb_op *op, char c, const char *word)
{
	if (op->cmd)
		return sl_err(-EINVAL, "'%s': only one command per line (already -%c)", word, op->cmd);
	op->cmd = c;
	return 0;
}

static int need_value(int i, int argc, const char *opt)
{
	if (i + 1 >= argc)
		return sl_err(-EINVAL, "option '%s' needs a value", opt);
	return 0;
}

/* Which options each command takes, as ipvsadm. */
static int check_op(const struct lb_op *op, bool has_svc, bool has_be)
{
	bool svc_cmd = strchr("AED", op->cmd), be_cmd = strchr("aed", op->cmd);

	if (!op->cmd)
		return sl_err(-EINVAL, "no command: use -A, -E, -D, -a, -e, -d or -C");
	if (op->cmd == 'C')
		return has_svc || has_be ? sl_err(-EINVAL, "-C takes no service") : 0;
	if (!has_svc)
		return sl_err(-EINVAL, "-%c needs a service: -t|-u VIP:PORT", op->cmd);
	if (svc_cmd && (has_be || op->has_fwd || op->has_weight))
		return sl_err(-EINVAL, "-%c: -r, -m, -g, -i and -w belong to -a/-e/-d", op->cmd);
	if (be_cmd && !has_be)
		return sl_err(-EINVAL, "-%c needs a backend: -r RIP[:PORT]", op->cmd);
	if (be_cmd && (op->has_sched || op->has_mh_size))
		return sl_err(-EINVAL, "-%c: -s and --mh-size belong to -A/-E", op->cmd);
	if ((op->cmd == 'D' || op->cmd == 'd') && (op->has_sched || op->has_mh_size ||
						    op->has_fwd || op->has_weight))
		return sl_err(-EINVAL, "-%c takes no other option", op->cmd);
	return 0;
}

int lb_op_parse(int argc, char **argv, struct lb_op *op)
{
	bool has_svc = false, has_be = false;
	int err = 0;

	memset(op, 0, sizeof(*op));
	for (int i = 0; i < argc && !err; i++) {
		const char *a = argv[i];

		if (is(a, "-A", "--add-service"))
			err = set_cmd(op, 'A', a);
		else if (is(a, "-E", "--edit-service"))
			err = set_cmd(op, 'E', a);
		else if (is(a, "-D", "--delete-service"))
			err = set_cmd(op, 'D', a);
		else if (is(a, "-a", "--add-server"))
			err = set_cmd(op, 'a', a);
		else if (is(a, "-e", "--edit-server"))
			err = set_cmd(op, 'e', a);
		else if (is(a, "-d", "--delete-server"))
			err = set_cmd(op, 'd', a);
		else if (is(a, "-C", "--clear"))
			err = set_cmd(op, 'C', a);
		else if (is(a, "-t", "--tcp-service") || is(a, "-u", "--udp-service")) {
			if (has_svc)
				return sl_err(-EINVAL, "'%s': one service only", a);
			err = need_value(i, argc, a) ?:
			      lb_parse_endpoint(argv[++i], true, &op->svc.family,
						op->svc.addr, &op->svc.port);
			op->svc.proto = a[1] == 't' || a[2] == 't' ? IPPROTO_TCP : IPPROTO_UDP;
			has_svc = true;
		} else if (is(a, "-s", "--scheduler")) {
			err = need_value(i, argc, a) ?: lb_sched_parse(argv[++i], &op->sconf.sched);
			op->has_sched = true;
		} else if (is(a, "--mh-size", NULL)) {
			err = need_value(i, argc, a) ?:
			      parse_u32(argv[++i], a, LB_MH_MAX, &op->sconf.mh_size);
			op->has_mh_size = true;
		} else if (is(a, "-r", "--real-server")) {
			if (has_be)
				return sl_err(-EINVAL, "'%s': one backend only", a);
			err = need_value(i, argc, a) ?:
			      lb_parse_endpoint(argv[++i], false, &op->be.family,
						op->be.addr, &op->be.port);
			has_be = true;
		} else if (is(a, "-m", "--masquerading") || is(a, "-g", "--gatewaying") ||
			   is(a, "-i", "--ipip")) {
			if (op->has_fwd)
				return sl_err(-EINVAL, "'%s': one forwarding method only", a);
			op->bconf.fwd = a[1] == 'm' || a[2] == 'm' ? LB_FWD_NAT :
					a[1] == 'i' || a[2] == 'i' ? LB_FWD_IPIP : LB_FWD_MAC;
			op->has_fwd = true;
		} else if (is(a, "-w", "--weight")) {
			err = need_value(i, argc, a) ?:
			      parse_u32(argv[++i], a, 65535, &op->bconf.weight);
			op->has_weight = true;
		} else if (is(a, "-p", "--persistent") || is(a, "-f", "--fwmark-service") ||
			   is(a, "-b", "--sched-flags") || is(a, "-M", "--netmask") ||
			   is(a, "-x", "--u-threshold") || is(a, "-y", "--l-threshold") ||
			   is(a, "--pe", NULL) || is(a, "--tun-type", NULL)) {
			return sl_err(-EOPNOTSUPP, "option '%s' is not supported", a);
		} else {
			return sl_err(-EINVAL, "unknown option '%s'", a);
		}
	}
	return err ?: check_op(op, has_svc, has_be);
}

static struct lb_service_info *find_svc(struct lb_conf *c, const struct lb_service_key *k)
{
	for (__u32 i = 0; i < c->n; i++) {
		const struct lb_service_key *s = &c->svcs[i].key;

		if (s->family == k->family && s->proto == k->proto && s->port == k->port &&
		    !memcmp(s->addr, k->addr, 16))
			return &c->svcs[i];
	}
	return NULL;
}

static int find_be(const struct lb_service_info *s, const struct lb_backend_addr *a)
{
	for (__u32 i = 0; i < s->nbackends; i++) {
		const struct lb_backend_addr *b = &s->backends[i].addr;

		if (b->family == a->family && b->port == a->port && !memcmp(b->addr, a->addr, 16))
			return i;
	}
	return -1;
}

static int op_service(struct lb_conf *conf, const struct lb_op *op, const char *name)
{
	struct lb_service_info *s = find_svc(conf, &op->svc), *ns;

	if (op->cmd == 'A') {
		if (s)
			return sl_err(-EEXIST, "service %s exists", name);
		ns = realloc(conf->svcs, (conf->n + 1) * sizeof(*ns));
		if (!ns)
			return sl_err(-ENOMEM, "out of memory");
		conf->svcs = ns;
		s = &ns[conf->n++];
		memset(s, 0, sizeof(*s));
		s->key = op->svc;
		s->conf.sched = op->has_sched ? op->sconf.sched : LB_SCHED_MH;
		s->conf.mh_size = op->has_mh_size && op->sconf.mh_size ? op->sconf.mh_size :
									  LB_MH_DEFAULT;
		return 0;
	}
	if (!s)
		return sl_err(-ENOENT, "no service %s", name);
	if (op->cmd == 'E') {
		if (op->has_sched)
			s->conf.sched = op->sconf.sched;
		if (op->has_mh_size)
			s->conf.mh_size = op->sconf.mh_size ?: LB_MH_DEFAULT;
		return 0;
	}
	free(s->backends);
	memmove(s, s + 1, (conf->svcs + conf->n - s - 1) * sizeof(*s));
	conf->n--;
	return 0;
}

static int op_backend(struct lb_conf *conf, const struct lb_op *op, const char *name)
{
	struct lb_service_info *s = find_svc(conf, &op->svc);
	struct lb_backend_addr a = op->be;
	struct lb_backend_info *b, *nb;
	char ep[64];
	int at;

	if (!s)
		return sl_err(-ENOENT, "no service %s", name);
	if (!a.port)
		a.port = op->svc.port;
	lb_format_endpoint(a.family, a.addr, a.port, ep, sizeof(ep));
	if (a.family != op->svc.family)
		return sl_err(-EINVAL, "backend %s is not of service %s's address family", ep, name);
	at = find_be(s, &a);
	if (op->cmd == 'a') {
		if (at >= 0)
			return sl_err(-EEXIST, "service %s already has backend %s", name, ep);
		nb = realloc(s->backends, (s->nbackends + 1) * sizeof(*nb));
		if (!nb)
			return sl_err(-ENOMEM, "out of memory");
		s->backends = nb;
		b = &nb[s->nbackends++];
		memset(b, 0, sizeof(*b));
		b->addr = a;
		b->conf.fwd = op->has_fwd ? op->bconf.fwd : LB_FWD_MAC;
		b->conf.weight = op->has_weight ? op->bconf.weight : 1;
		b->up = true;
		return 0;
	}
	if (at < 0)
		return sl_err(-ENOENT, "service %s has no backend %s", name, ep);
	b = &s->backends[at];
	if (op->cmd == 'e') {
		if (op->has_fwd)
			b->conf.fwd = op->bconf.fwd;
		if (op->has_weight)
			b->conf.weight = op->bconf.weight;
		return 0;
	}
	memmove(b, b + 1, (s->nbackends - at - 1) * sizeof(*b));
	s->nbackends--;
	return 0;
}

int lb_op_apply(struct lb_conf *conf, const struct lb_op *op)
{
	char ep[64], name[80];

	if (op->cmd == 'C') {
		lb_conf_free(conf);
		return 0;
	}
	lb_format_endpoint(op->svc.family, op->svc.addr, op->svc.port, ep, sizeof(ep));
	snprintf(name, sizeof(name), "%s %s", op->svc.proto == IPPROTO_UDP ? "udp" : "tcp", ep);
	if (strchr("AED", op->cmd))
		return op_service(conf, op, name);
	return op_backend(conf, op, name);
}

static int conf_copy(const struct lb_conf *src, struct lb_conf *dst)
{
	dst->n = 0;
	dst->svcs = calloc(src->n + 1, sizeof(*dst->svcs));
	if (!dst->svcs)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < src->n; i++) {
		const struct lb_service_info *s = &src->svcs[i];
		struct lb_service_info *d = &dst->svcs[i];

		*d = *s;
		d->backends = calloc(s->nbackends + 1, sizeof(*d->backends));
		if (!d->backends) {
			lb_conf_free(dst);
			return sl_err(-ENOMEM, "out of memory");
		}
		memcpy(d->backends, s->backends, s->nbackends * sizeof(*d->backends));
		dst->n++;
	}
	return 0;
}

#define LB_LINE_WORDS 32

int lb_restore_parse(FILE *f, const char *name, struct lb_conf *conf)
{
	struct lb_conf work;
	char *line = NULL;
	size_t cap = 0;
	unsigned int lineno = 0;
	int err = conf_copy(conf, &work);

	while (!err && getline(&line, &cap, f) >= 0) {
		char *argv[LB_LINE_WORDS], *save = NULL, *w;
		struct lb_op op;
		int argc = 0;

		lineno++;
		if (strchr(line, '#'))
			*strchr(line, '#') = 0;
		for (w = strtok_r(line, " \t\r\n", &save); w && argc < LB_LINE_WORDS;
		     w = strtok_r(NULL, " \t\r\n", &save))
			argv[argc++] = w;
		if (!argc)
			continue;
		if (w)
			err = sl_err(-EINVAL, "too many words");
		err = err ?: lb_op_parse(argc, argv, &op);
		err = err ?: lb_op_apply(&work, &op);
		if (err) {
			char msg[512];

			snprintf(msg, sizeof(msg), "%s", sl_errmsg());
			err = sl_err(err, "%s:%u: %s", name, lineno, msg);
		}
	}
	free(line);
	if (err) {
		lb_conf_free(&work);
		return err;
	}
	lb_conf_free(conf);
	*conf = work;
	return 0;
}
