// SPDX-License-Identifier: GPL-2.0
/* Active health checks of the load balancer's backends (see health.h):
 * the probe engine, the settings, the pinned maps and the checker loop. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include "sluice.h"
#include "lb.h"
#include "health.h"

/* ---- small things ------------------------------------------------------- */

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static __u64 wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const result_names[HC_RES_MAX] = {
	[HC_RES_NONE] = "none",
	[HC_RES_OK] = "ok",
	[HC_RES_TIMEOUT] = "timeout",
	[HC_RES_REFUSED] = "refused",
	[HC_RES_CONNECT] = "connect-error",
	[HC_RES_CLOSED] = "closed",
	[HC_RES_BAD_RESPONSE] = "bad-response",
	[HC_RES_BAD_STATUS] = "bad-status",
};

const char *hc_result_name(enum hc_result r)
{
	return r < HC_RES_MAX ? result_names[r] : "?";
}

bool hc_health_update(struct hc_health *h, bool ok, unsigned int rise,
		      unsigned int fall)
{
	if (ok) {
		h->fall_cnt = 0;
		if (h->up)
			return false;
		if (++h->rise_cnt < rise)
			return false;
		h->rise_cnt = 0;
		h->up = true;
		return true;
	}
	h->rise_cnt = 0;
	if (!h->up)
		return false;
	if (++h->fall_cnt < fall)
		return false;
	h->fall_cnt = 0;
	h->up = false;
	return true;
}

/* ---- the engine --------------------------------------------------------- */

#define HC_RESP_MAX 512 /* enough for any status line worth reading */

enum probe_phase { PH_IDLE, PH_CONNECT, PH_SEND, PH_RECV };

struct hc_slot {
	struct hc_target t;
	struct hc_health h;
	int fd;
	enum probe_phase phase;
	__u64 due_ns; /* next start, when idle */
	__u64 start_ns, deadline_ns;
	char req[HC_PATH_MAX + HC_HOST_MAX + 128];
	size_t req_len, sent;
	char resp[HC_RESP_MAX + 1];
	size_t resp_len;
	bool kept; /* taken over by hc_engine_set_targets() */
};

struct hc_engine {
	int epfd;
	struct hc_slot **slots;
	size_t n;
	hc_result_fn fn;
	void *arg;
};

struct hc_engine *hc_engine_new(hc_result_fn fn, void *arg)
{
	struct hc_engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		free(e);
		return NULL;
	}
	e->fn = fn;
	e->arg = arg;
	return e;
}

static void slot_close(struct hc_engine *e, struct hc_slot *s)
{
	if (s->fd >= 0) {
		/* A reset, not a FIN: no TIME_WAIT piles up at short intervals
		 * (HAProxy ends its checks the same way). */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	s->fd = -1;
	s->phase = PH_IDLE;
}

void hc_engine_free(struct hc_engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		slot_close(e, e->slots[i]);
		free(e->slots[i]);
	}
	free(e->slots);
	close(e->epfd);
	free(e);
}

size_t hc_engine_inflight(const struct hc_engine *e)
{
	size_t n = 0;

	for (size_t i = 0; i < e->n; i++)
		n += e->slots[i]->phase != PH_IDLE;
	return n;
}

const struct hc_health *hc_engine_health(const struct hc_engine *e, size_t i)
{
	return i < e->n ? &e->slots[i]->h : NULL;
}

static int key_cmp(const void *a, const void *b)
{
	const struct hc_slot *x = *(struct hc_slot *const *)a;
	const struct hc_slot *y = *(struct hc_slot *const *)b;

	return memcmp(&x->t.key, &y->t.key, sizeof(x->t.key));
}

static int key_find(const void *k, const void *b)
{
	const struct hc_slot *y = *(struct hc_slot *const *)b;

	return memcmp(k, &y->t.key, sizeof(y->t.key));
}

/* The old slot of key (e->slots sorted), or NULL. */
static struct hc_slot **slot_find(struct hc_engine *e,
				  const struct hc_status_key *key)
{
	return e->n ? bsearch(key, e->slots, e->n, sizeof(*e->slots), key_find)
		    : NULL;
}

static int target_cmp(const void *a, const void *b)
{
	const struct hc_target *x = *(const struct hc_target *const *)a;
	const struct hc_target *y = *(const struct hc_target *const *)b;

	return memcmp(&x->key, &y->key, sizeof(x->key));
}

/* Whether two targets share a key: each key must have one slot. */
static int check_unique(const struct hc_target *t, size_t n)
{
	const struct hc_target **v = calloc(n ? n : 1, sizeof(*v));
	int err = 0;

	if (!v)
		return sl_err(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		v[i] = &t[i];
	qsort(v, n, sizeof(*v), target_cmp);
	for (size_t i = 1; i < n && !err; i++)
		if (!target_cmp(&v[i - 1], &v[i]))
			err = sl_err(-EINVAL, "two targets for one backend of "
				     "one service");
	free(v);
	return err;
}

int hc_engine_set_targets(struct hc_engine *e, const struct hc_target *t,
			  size_t n)
{
	struct hc_slot **slots;
	__u64 now = now_ns();
	size_t i;
	int err = check_unique(t, n);

	if (err)
		return err;
	slots = calloc(n ? n : 1, sizeof(*slots));
	if (!slots)
		return sl_err(-ENOMEM, "out of memory");
	/* Old slots sorted by key, so each new target finds its own; new
	 * slots are all allocated before anything changes. */
	if (e->n)
		qsort(e->slots, e->n, sizeof(*e->slots), key_cmp);
	for (i = 0; i < n; i++) {
		if (slot_find(e, &t[i].key))
			continue;
		slots[i] = calloc(1, sizeof(*slots[i]));
		if (!slots[i]) {
			while (i--)
				free(slots[i]); /* NULL for kept ones */
			free(slots);
			return sl_err(-ENOMEM, "out of memory");
		}
		slots[i]->t = t[i];
		slots[i]->h.up = t[i].up;
		slots[i]->fd = -1;
		slots[i]->due_ns = now;
	}
	for (size_t j = 0; j < e->n; j++)
		e->slots[j]->kept = false;
	for (i = 0; i < n; i++) {
		struct hc_slot *s;

		if (slots[i])
			continue;
		s = *slot_find(e, &t[i].key);
		if (memcmp(&s->t.conf, &t[i].conf, sizeof(t[i].conf))) {
			slot_close(e, s);
			s->h.rise_cnt = s->h.fall_cnt = 0;
			s->due_ns = now;
		}
		s->t = t[i];
		s->t.up = s->h.up;
		s->kept = true;
		slots[i] = s;
	}
	for (size_t j = 0; j < e->n; j++) {
		if (e->slots[j]->kept)
			continue;
		slot_close(e, e->slots[j]);
		free(e->slots[j]);
	}
	free(e->slots);
	e->slots = slots;
	e->n = n;
	return 0;
}

static void probe_sockaddr(const struct hc_target *t,
			   struct sockaddr_storage *ss, socklen_t *len)
{
	__u16 port = t->conf.port ? t->conf.port : t->key.backend.port;

	memset(ss, 0, sizeof(*ss));
	if (t->key.backend.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, t->key.backend.addr, 16);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, t->key.backend.addr, 4);
		*len = sizeof(*s4);
	}
}

static void build_request(struct hc_slot *s)
{
	const struct hc_conf *c = &s->t.conf;
	char host[HC_HOST_MAX + 48];
	int n;

	if (c->host[0]) {
		snprintf(host, sizeof(host), "%s", c->host);
	} else {
		/* What a client of the service sends: the VIP, and its port
		 * unless it is HTTP's own. */
		struct hc_addr vip = s->t.key.svc;

		vip.proto = 0;
		hc_addr_format(&vip, host, sizeof(host));
		if (vip.port == 80)
			*strrchr(host, ':') = '\0';
	}
	n = snprintf(s->req, sizeof(s->req),
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-healthcheck\r\n"
		     "Accept: */*\r\nConnection: close\r\n\r\n",
		     c->path[0] ? c->path : "/", host);
	s->req_len = n < (int)sizeof(s->req) ? (size_t)n : sizeof(s->req) - 1;
	s->sent = 0;
}

static void finish(struct hc_engine *e, struct hc_slot *s,
		   enum hc_result res, int err, int status)
{
	struct hc_probe p = {
		.result = res,
		.err = err,
		.http_status = status,
		.latency_us = (now_ns() - s->start_ns) / 1000,
	};
	bool changed;

	slot_close(e, s);
	changed = hc_health_update(&s->h, res == HC_RES_OK, s->t.conf.rise,
				   s->t.conf.fall);
	s->t.up = s->h.up;
	/* The next probe starts one interval after this one started. */
	s->due_ns = s->start_ns + (__u64)s->t.conf.interval_ms * 1000000;
	if (e->fn)
		e->fn(e->arg, &s->t, &s->h, &p, changed);
}

static int slot_watch(struct hc_engine *e, struct hc_slot *s, __u32 events)
{
	struct epoll_event ev = { .events = events, .data.ptr = s };

	return epoll_ctl(e->epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void probe_start(struct hc_engine *e, struct hc_slot *s, __u64 now)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = s };
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	probe_sockaddr(&s->t, &ss, &len);
	s->start_ns = now;
	s->deadline_ns = now + (__u64)s->t.conf.timeout_ms * 1000000;
	s->resp_len = 0;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		/* Out of descriptors: try again shortly, count nothing. */
		s->due_ns = now + 10000000;
		return;
	}
	s->fd = fd;
	s->phase = PH_CONNECT;
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev)) {
		slot_close(e, s);
		s->due_ns = now + 10000000;
		return;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS) {
		int err = errno;

		finish(e, s, err == ECONNREFUSED ? HC_RES_REFUSED : HC_RES_CONNECT,
		       err, 0);
	}
	/* Connected at once (loopback) or in progress: EPOLLOUT says which. */
}

/* Parses "HTTP/1.x NNN ..." from the start of the response. */
static int status_line(const char *buf, size_t len, bool eof, int *status)
{
	const char *nl = memchr(buf, '\n', len);

	if (!nl)
		return eof || len >= HC_RESP_MAX ? -EINVAL : -EAGAIN;
	if (len < 12 || memcmp(buf, "HTTP/", 5) || buf[5] < '0' || buf[5] > '9' ||
	    buf[6] != '.' || buf[7] < '0' || buf[7] > '9' || buf[8] != ' ')
		return -EINVAL;
	for (int i = 9; i < 12; i++)
		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
	if (nl - buf > 12 && buf[12] != ' ' && buf[12] != '\r')
		return -EINVAL;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return *status >= 100 && *status <= 599 ? 0 : -EINVAL;
}

static void on_recv(struct hc_engine *e, struct hc_slot *s)
{
	bool eof = false;
	ssize_t n;
	int status, err;

	n = recv(s->fd, s->resp + s->resp_len, HC_RESP_MAX - s->resp_len, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		finish(e, s, errno == ECONNRESET ? HC_RES_CLOSED : HC_RES_CONNECT,
		       errno, 0);
		return;
	}
	eof = n == 0;
	s->resp_len += n;
	err = status_line(s->resp, s->resp_len, eof, &status);
	if (err == -EAGAIN)
		return;
	if (err) {
		finish(e, s, s->resp_len ? HC_RES_BAD_RESPONSE : HC_RES_CLOSED,
		       0, 0);
		return;
	}
	finish(e, s, s->t.conf.expect & (1u << (status / 100)) ? HC_RES_OK
								: HC_RES_BAD_STATUS,
	       0, status);
}

static void on_send(struct hc_engine *e, struct hc_slot *s)
{
	ssize_t n = send(s->fd, s->req + s->sent, s->req_len - s->sent,
			 MSG_NOSIGNAL);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			finish(e, s, HC_RES_CLOSED, errno, 0);
		return;
	}
	s->sent += n;
	if (s->sent == s->req_len) {
		s->phase = PH_RECV;
		slot_watch(e, s, EPOLLIN);
	}
}

static void on_event(struct hc_engine *e, struct hc_slot *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	switch (s->phase) {
	case PH_CONNECT:
		getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			finish(e, s, err == ECONNREFUSED ? HC_RES_REFUSED
							 : HC_RES_CONNECT,
			       err, 0);
			return;
		}
		if (s->t.conf.type == HC_TCP) {
			finish(e, s, HC_RES_OK, 0, 0);
			return;
		}
		build_request(s);
		s->phase = PH_SEND;
		on_send(e, s);
		return;
	case PH_SEND:
		on_send(e, s);
		return;
	case PH_RECV:
		on_recv(e, s);
		return;
	case PH_IDLE:
		return;
	}
}

/* Starts what is due and times out what is late; returns the ms until the
 * next of these. */
static int run_timers(struct hc_engine *e)
{
	__u64 now = now_ns(), next = UINT64_MAX;

	for (size_t i = 0; i < e->n; i++) {
		struct hc_slot *s = e->slots[i];

		if (s->phase == PH_IDLE && s->due_ns <= now)
			probe_start(e, s, now);
		else if (s->phase != PH_IDLE && s->deadline_ns <= now)
			finish(e, s, HC_RES_TIMEOUT, 0, 0);
		if (s->phase == PH_IDLE && s->due_ns < next)
			next = s->due_ns;
		if (s->phase != PH_IDLE && s->deadline_ns < next)
			next = s->deadline_ns;
	}
	if (next == UINT64_MAX)
		return INT_MAX;
	return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

int hc_engine_poll(struct hc_engine *e, int max_wait_ms)
{
	struct epoll_event evs[64];
	__u64 end = now_ns() + (__u64)max_wait_ms * 1000000;

	for (;;) {
		int wait = run_timers(e), n;
		__u64 now = now_ns();
		int left = end > now ? (int)((end - now) / 1000000) : 0;

		if (wait > left)
			wait = left;
		n = epoll_wait(e->epfd, evs, 64, wait);
		if (n < 0 && errno != EINTR)
			return sl_err(-errno, "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++)
			on_event(e, evs[i].data.ptr);
		if (now_ns() >= end)
			break;
	}
	run_timers(e);
	return 0;
}

/* ---- settings ----------------------------------------------------------- */

void hc_conf_init(struct hc_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->type = HC_TCP;
	c->rise = 2;
	c->fall = 3;
	c->expect = 1u << 2 | 1u << 3;
	c->interval_ms = 2000;
	c->timeout_ms = 1000;
	snprintf(c->path, sizeof(c->path), "/");
}

int hc_type_parse(const char *s, __u8 *type)
{
	if (!strcmp(s, "tcp"))
		*type = HC_TCP;
	else if (!strcmp(s, "http"))
		*type = HC_HTTP;
	else
		return sl_err(-EINVAL, "type: unknown check type '%s' (tcp or http)", s);
	return 0;
}

const char *hc_type_name(__u8 type)
{
	return type == HC_HTTP ? "http" : type == HC_TCP ? "tcp" : "?";
}

/* "2", "0.5", "250ms": a duration in seconds or milliseconds. */
int hc_seconds_parse(const char *what, const char *s, __u32 *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0 || v != v)
		goto bad;
	if (!strcmp(end, "ms"))
		v /= 1000;
	else if (*end && strcmp(end, "s"))
		goto bad;
	if (v > HC_INTERVAL_MAX_MS / 1000)
		return sl_err(-EINVAL, "%s: '%s' is longer than %u s", what, s,
			      HC_INTERVAL_MAX_MS / 1000);
	*ms = (__u32)(v * 1000 + 0.5);
	return 0;
bad:
	return sl_err(-EINVAL, "%s: '%s' is not a duration (seconds, e.g. 2 or "
		      "0.5, or milliseconds, e.g. 250ms)", what, s);
}

/* "2xx", "2xx,3xx": the status classes an HTTP check accepts. */
int hc_expect_parse(const char *s, __u8 *mask)
{
	const char *p = s;

	*mask = 0;
	for (;;) {
		if (p[0] < '1' || p[0] > '5' || p[1] != 'x' || p[2] != 'x' ||
		    (p[3] && p[3] != ','))
			return sl_err(-EINVAL, "expect: '%s' is not a list of status "
				      "classes (1xx to 5xx, e.g. 2xx,3xx)", s);
		*mask |= 1u << (p[0] - '0');
		if (!p[3])
			return 0;
		p += 4;
	}
}

int hc_expect_format(__u8 mask, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int c = 1; c <= 5; c++)
		if (mask & (1u << c) && off + 5 <= len)
			off += snprintf(buf + off, len - off, "%s%dxx",
					off ? "," : "", c);
	return 0;
}

static int addr_parse(const char *s, size_t n, struct hc_addr *a)
{
	char ip[INET6_ADDRSTRLEN + 1];

	if (n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (inet_pton(AF_INET, ip, a->addr) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, a->addr) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int hc_service_parse(const char *s, __u8 proto, struct hc_addr *svc)
{
	const char *hp = s, *colon;
	char *end;
	unsigned long port;
	int err;

	memset(svc, 0, sizeof(*svc));
	if (!proto) {
		if (!strncmp(s, "tcp ", 4))
			proto = IPPROTO_TCP;
		else if (!strncmp(s, "udp ", 4))
			proto = IPPROTO_UDP;
		else
			goto bad;
		hp = s + 4;
	}
	svc->proto = proto;
	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');

		if (!rb || rb[1] != ':')
			goto bad;
		err = addr_parse(hp + 1, rb - hp - 1, svc);
		if (err || svc->family != AF_INET6)
			goto bad;
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || addr_parse(hp, colon - hp, svc) ||
		    svc->family != AF_INET)
			goto bad;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || !port || port > 65535)
		goto bad;
	svc->port = port;
	return 0;
bad:
	return sl_err(-EINVAL, "service: '%s' is not %sVIP:PORT (e.g. "
		      "10.0.0.1:80 or [fd00::1]:80)", s, proto ? "" : "tcp|udp ");
}

int hc_addr_format(const struct hc_addr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	const char *proto = a->proto == IPPROTO_TCP ? "tcp " :
			    a->proto == IPPROTO_UDP ? "udp " : "";

	inet_ntop(a->family == AF_INET6 ? AF_INET6 : AF_INET, a->addr, ip,
		  sizeof(ip));
	if (a->family == AF_INET6)
		snprintf(buf, len, "%s[%s]:%u", proto, ip, a->port);
	else
		snprintf(buf, len, "%s%s:%u", proto, ip, a->port);
	return 0;
}

static bool text_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strnlen(s, max);

	if (n == max)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || strchr(extra, *s))
			return false;
	return true;
}

int hc_conf_check(const struct hc_conf *c)
{
	if (c->type != HC_TCP && c->type != HC_HTTP)
		return sl_err(-EINVAL, "type: unknown check type %u", c->type);
	if (c->interval_ms < HC_INTERVAL_MIN_MS || c->interval_ms > HC_INTERVAL_MAX_MS)
		return sl_err(-EINVAL, "interval: %u ms is outside %u ms .. %u s",
			      c->interval_ms, HC_INTERVAL_MIN_MS,
			      HC_INTERVAL_MAX_MS / 1000);
	if (c->timeout_ms < HC_TIMEOUT_MIN_MS || c->timeout_ms > c->interval_ms)
		return sl_err(-EINVAL, "timeout: %u ms must be at least %u ms and at "
			      "most the interval (%u ms)", c->timeout_ms,
			      HC_TIMEOUT_MIN_MS, c->interval_ms);
	if (!c->rise || c->rise > HC_THRESH_MAX)
		return sl_err(-EINVAL, "rise: %u is outside 1..%u", c->rise,
			      HC_THRESH_MAX);
	if (!c->fall || c->fall > HC_THRESH_MAX)
		return sl_err(-EINVAL, "fall: %u is outside 1..%u", c->fall,
			      HC_THRESH_MAX);
	if (c->type != HC_HTTP)
		return 0;
	/* Path and Host go into the request line and a header as they are:
	 * printable, no spaces, nothing that could end or split the line. */
	if (c->path[0] != '/' || !text_ok(c->path, sizeof(c->path), "\"\\"))
		return sl_err(-EINVAL, "path: must start with '/' and have at most "
			      "%d printable characters without spaces, quotes or "
			      "backslashes", HC_PATH_MAX - 1);
	if (!text_ok(c->host, sizeof(c->host), "\"\\/?#@"))
		return sl_err(-EINVAL, "host: must be a host name or address "
			      "(at most %d characters)", HC_HOST_MAX - 1);
	if (!(c->expect & 0x3e) || (c->expect & ~0x3e))
		return sl_err(-EINVAL, "expect: no status class (1xx to 5xx)");
	return 0;
}

/* ---- the pinned settings and status ------------------------------------ */

#define CONF_PIN "lb_hc_conf"
#define STATUS_PIN "lb_hc_status"

/* Opens a pinned map of ours, checking its layout; with create, makes it
 * when absent (the caller holds the writer lock). -ENOENT: none yet. */
static int map_open(struct sl_ctx *ctx, const char *name, __u32 key_size,
		    __u32 value_size, __u32 max, bool create)
{
	struct bpf_map_info info = { 0 };
	__u32 len = sizeof(info);
	int fd = sl_obj_get(sl_base(ctx), name), err;

	if (fd == -ENOENT && create) {
		/* Entries are allocated as used: most namespaces check a
		 * handful of backends, not the maximum. */
		LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);

		fd = bpf_map_create(BPF_MAP_TYPE_HASH, name, key_size,
				    value_size, max, &opts);
		if (fd < 0)
			return sl_err(-errno, "cannot create map %s: %s", name,
				      strerror(errno));
		err = sl_pin(sl_base(ctx), name, fd);
		if (err) {
			close(fd);
			return err;
		}
		return fd;
	}
	if (fd < 0)
		return fd;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) ||
	    info.key_size != key_size || info.value_size != value_size) {
		close(fd);
		return sl_err(-EPROTO, "%s/%s has another layout than this sluice "
			      "expects (an older version made it?); remove it "
			      "with `sluice reset`", sl_base(ctx), name);
	}
	return fd;
}

static int conf_map(struct sl_ctx *ctx, bool create)
{
	return map_open(ctx, CONF_PIN, sizeof(struct hc_addr),
			sizeof(struct hc_conf), HC_MAX_SERVICES, create);
}

static int status_map(struct sl_ctx *ctx, bool create)
{
	return map_open(ctx, STATUS_PIN, sizeof(struct hc_status_key),
			sizeof(struct hc_status), HC_MAX_BACKENDS, create);
}

static void to_lb_service(const struct hc_addr *a, struct lb_service_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = a->family == AF_INET6 ? 6 : 4;
	k->proto = a->proto;
	k->port = a->port;
	memcpy(k->addr, a->addr, 16);
}

static void from_lb_addr(struct hc_addr *a, __u8 family, const __u8 *addr,
			 __u16 port, __u8 proto)
{
	memset(a, 0, sizeof(*a));
	a->family = family == 6 ? AF_INET6 : AF_INET;
	a->proto = proto;
	a->port = port;
	memcpy(a->addr, addr, family == 6 ? 16 : 4);
}

static void to_lb_backend(const struct hc_addr *a, struct lb_backend_addr *b)
{
	memset(b, 0, sizeof(*b));
	b->family = a->family == AF_INET6 ? 6 : 4;
	b->port = a->port;
	memcpy(b->addr, a->addr, 16);
}

/* Every LB instance's configuration, one callback per service. */
typedef int (*lb_svc_cb)(const char *inst, const struct lb_service_info *s,
			 void *arg);
struct lb_walk {
	struct sl_ctx *ctx;
	lb_svc_cb cb;
	void *arg;
};

static int lb_walk_inst(const struct sl_instance *inst, void *arg)
{
	struct lb_walk *w = arg;
	struct lb_conf conf = { 0 };
	int err;

	if (strcmp(inst->type, LB_TYPE))
		return 0;
	err = lb_list(w->ctx, inst->name, &conf);
	if (err == -ENOENT)
		return 0; /* deleted meanwhile */
	for (__u32 i = 0; !err && i < conf.n; i++)
		err = w->cb(inst->name, &conf.svcs[i], w->arg);
	lb_conf_free(&conf);
	return err;
}

static int lb_walk(struct sl_ctx *ctx, lb_svc_cb cb, void *arg)
{
	struct lb_walk w = { ctx, cb, arg };

	return sl_instance_foreach(ctx, lb_walk_inst, &w);
}

static bool same_service(const struct hc_addr *a, const struct lb_service_key *k)
{
	struct hc_addr b;

	from_lb_addr(&b, k->family, k->addr, k->port, k->proto);
	return !memcmp(a, &b, sizeof(b));
}

struct svc_find {
	const struct hc_addr *svc;
	int found;
};

static int svc_find_cb(const char *inst, const struct lb_service_info *s,
		       void *arg)
{
	struct svc_find *f = arg;

	f->found += same_service(f->svc, &s->key);
	return 0;
}

int hc_conf_set(struct sl_ctx *ctx, const struct hc_addr *svc,
		const struct hc_conf *c)
{
	struct svc_find f = { svc, 0 };
	char name[64];
	int fd, err;

	err = hc_conf_check(c);
	if (err)
		return err;
	if (svc->proto == IPPROTO_UDP && !c->port)
		return sl_err(-EINVAL, "port: a UDP service is checked over TCP: "
			      "give the TCP port to probe (--port)");
	err = lb_walk(ctx, svc_find_cb, &f);
	if (err)
		return err;
	if (!f.found) {
		hc_addr_format(svc, name, sizeof(name));
		return sl_err(-ENOENT, "service: no LB service %s", name);
	}
	fd = conf_map(ctx, true);
	if (fd < 0)
		return fd;
	/* The status map too, so the checker never creates a pin. */
	err = status_map(ctx, true);
	if (err >= 0) {
		close(err);
		err = 0;
	}
	if (!err && bpf_map_update_elem(fd, svc, c, BPF_ANY))
		err = sl_err(-errno, "cannot store the check: %s%s", strerror(errno),
			     errno == E2BIG ? " (too many services checked)" : "");
	close(fd);
	return err;
}

struct svc_up {
	struct sl_ctx *ctx;
	const struct hc_addr *svc;
	int err;
};

static int svc_up_cb(const char *inst, const struct lb_service_info *s,
		     void *arg)
{
	struct svc_up *u = arg;

	if (!same_service(u->svc, &s->key))
		return 0;
	for (__u32 i = 0; i < s->nbackends; i++) {
		int err;

		if (s->backends[i].up)
			continue;
		err = lb_backend_set_up(u->ctx, inst, &s->key,
					&s->backends[i].addr, true);
		if (err && !u->err)
			u->err = err;
	}
	return 0;
}

/* Deletes the status entries that keep() refuses: keys are read first,
 * so deleting never disturbs the walk. */
static void status_prune(int fd, bool (*keep)(const struct hc_status_key *k,
					      void *arg), void *arg)
{
	struct hc_status_key *keys = NULL, *grown;
	size_t n = 0, cap = 0;

	for (;;) {
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(keys, cap * sizeof(*keys));
			if (!grown)
				break;
			keys = grown;
		}
		if (bpf_map_get_next_key(fd, n ? &keys[n - 1] : NULL, &keys[n]))
			break;
		n++;
	}
	for (size_t i = 0; i < n; i++)
		if (!keep(&keys[i], arg))
			bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
}

static bool other_service(const struct hc_status_key *k, void *arg)
{
	return memcmp(&k->svc, arg, sizeof(k->svc));
}

int hc_conf_del(struct sl_ctx *ctx, const struct hc_addr *svc)
{
	struct svc_up u = { ctx, svc, 0 };
	struct hc_conf c;
	char name[64];
	int fd, err;

	hc_addr_format(svc, name, sizeof(name));
	fd = conf_map(ctx, false);
	if (fd == -ENOENT || (fd >= 0 && bpf_map_lookup_elem(fd, svc, &c))) {
		if (fd >= 0)
			close(fd);
		return sl_err(-ENOENT, "service: no health check for %s", name);
	}
	if (fd < 0)
		return fd;
	/* Backends go back up first: with no check, nothing would ever
	 * bring them back. */
	err = lb_walk(ctx, svc_up_cb, &u);
	err = err ?: u.err;
	if (!err && bpf_map_delete_elem(fd, svc))
		err = sl_err(-errno, "cannot delete the check of %s: %s", name,
			     strerror(errno));
	close(fd);
	if (err)
		return err;
	fd = status_map(ctx, false);
	if (fd >= 0) {
		status_prune(fd, other_service, (void *)svc);
		close(fd);
	}
	return 0;
}

int hc_conf_foreach(struct sl_ctx *ctx, hc_conf_cb cb, void *arg)
{
	struct hc_addr k, next;
	struct hc_conf c;
	void *prev = NULL;
	int fd = conf_map(ctx, false), err = 0;

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	while (!err && !bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &c))
			continue; /* deleted meanwhile */
		err = cb(&k, &c, arg);
	}
	close(fd);
	return err;
}

int hc_status_get(struct sl_ctx *ctx, const struct hc_status_key *k,
		  struct hc_status *st)
{
	int fd = status_map(ctx, false), err = 0;

	if (fd < 0)
		return fd;
	if (bpf_map_lookup_elem(fd, k, st))
		err = -ENOENT;
	close(fd);
	return err;
}

/* ---- one checker per namespace ------------------------------------------ */

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static int lock_path(char *buf, size_t len)
{
	socklen_t sl = sizeof(__u64);
	__u64 cookie;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return sl_err(-errno, "socket: %s", strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &sl))
		err = sl_err(-errno, "cannot identify the network namespace: %s",
			     strerror(errno));
	close(fd);
	snprintf(buf, len, SL_RUN_DIR "/netns-%llu.health.lock",
		 (unsigned long long)cookie);
	return err;
}

/* Reads "PID ROLE" from the lock file. */
static void lock_read(int fd, int *pid, char *role, size_t len)
{
	char buf[64] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char r[32] = "?";
	int p = 0;

	if (n > 0) {
		buf[n] = '\0';
		sscanf(buf, "%d %31s", &p, r);
	}
	if (pid)
		*pid = p;
	if (role)
		snprintf(role, len, "%s", r);
}

/* Opens and locks the lock file; 1: it was unlinked by the holder that
 * just left (try again), 0: locked, or a negative errno. */
static int lock_once(const char *path, int *out)
{
	struct stat a, b;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return sl_err(-errno, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		*out = fd;
		return -errno;
	}
	if (fstat(fd, &a) || stat(path, &b) || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		close(fd);
		return 1;
	}
	*out = fd;
	return 0;
}

int hc_lock_take(const char *role, int *pid, char *holder, size_t len)
{
	char path[PATH_MAX], line[64], r[32];
	int fd = -1, err = lock_path(path, sizeof(path)), p;

	if (err)
		return err;
	if (mkdir(SL_RUN_DIR, 0700) && errno != EEXIST)
		return sl_err(-errno, "cannot create %s: %s", SL_RUN_DIR,
			      strerror(errno));
	for (int tries = 0; tries < 10; tries++) {
		err = lock_once(path, &fd);
		if (err != 1)
			break;
	}
	if (err == -EWOULDBLOCK) {
		lock_read(fd, &p, r, sizeof(r));
		close(fd);
		if (pid)
			*pid = p;
		if (holder)
			snprintf(holder, len, "%s", r);
		return sl_err(-EBUSY, "health checks already run in this network "
			      "namespace (%s, pid %d); only one checker may run",
			      r, p);
	}
	if (err < 0 && fd >= 0) {
		close(fd);
		return sl_err(err, "cannot lock %s: %s", path, strerror(-err));
	}
	if (err)
		return err < 0 ? err : sl_err(-EAGAIN, "cannot lock %s", path);
	snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), role);
	if (ftruncate(fd, 0) || pwrite(fd, line, strlen(line), 0) < 0) {
		err = sl_err(-errno, "cannot write %s: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	return fd;
}

void hc_lock_release(int fd)
{
	char path[PATH_MAX];

	if (fd < 0)
		return;
	/* Unlinked while still held, so no lock file is left behind; a
	 * checker that opened it meanwhile sees it gone and opens anew. */
	if (!lock_path(path, sizeof(path)))
		unlink(path);
	close(fd);
}

bool hc_lock_holder(int *pid, char *role, size_t len)
{
	char path[PATH_MAX];
	int fd;
	bool held;

	if (lock_path(path, sizeof(path)))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;
	if (held)
		lock_read(fd, pid, role, len);
	close(fd); /* drops the shared lock if we got it */
	return held;
}

/* ---- the checker --------------------------------------------------------- */

struct change {
	struct hc_target t;
	struct hc_probe p;
	bool up;
	unsigned int count; /* the run of results that decided it */
};

struct runner {
	const struct hc_run_opts *o;
	struct hc_engine *e;
	int status_fd;
	struct hc_target *targets; /* as last given to the engine */
	size_t n, cap;
	struct change *changes;
	size_t nchanges, cap_changes;
	/* the settings read in this refresh */
	struct hc_addr *svcs;
	struct hc_conf *confs;
	size_t nsvcs, cap_svcs;
};

static void logf_(struct runner *r, enum hc_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(struct runner *r, enum hc_log_level lvl, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!r->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->o->log(r->o->arg, lvl, line);
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	void *q;

	if (n < *cap)
		return p;
	q = realloc(p, (*cap ? 2 * *cap : 16) * size);
	if (q)
		*cap = *cap ? 2 * *cap : 16;
	return q;
}

static int queue_change(struct runner *r, const struct hc_target *t,
			const struct hc_probe *p, bool up, unsigned int count)
{
	struct change *c = grow(r->changes, &r->cap_changes, r->nchanges,
				sizeof(*c));

	if (!c)
		return -ENOMEM;
	r->changes = c;
	r->changes[r->nchanges++] = (struct change){ *t, *p, up, count };
	return 0;
}

/* A probe's outcome in words: "ok: HTTP 200 in 0.4 ms", "refused". */
static void probe_text(const struct hc_probe *p, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s", hc_result_name(p->result));

	if (p->http_status)
		n += snprintf(buf + n, len - n, ": HTTP %u", p->http_status);
	else if (p->result == HC_RES_CONNECT && p->err)
		n += snprintf(buf + n, len - n, ": %s", strerror(p->err));
	if (p->result == HC_RES_OK)
		snprintf(buf + n, len - n, " in %.1f ms", p->latency_us / 1000.0);
}

static void on_probe(void *arg, const struct hc_target *t,
		     const struct hc_health *h, const struct hc_probe *p,
		     bool changed)
{
	struct runner *r = arg;
	struct hc_status st = { 0 };

	bpf_map_lookup_elem(r->status_fd, &t->key, &st);
	st.up = h->up;
	st.rise_cnt = h->rise_cnt;
	st.fall_cnt = h->fall_cnt;
	st.last = *p;
	st.last_probe_ms = wall_ms();
	st.probes++;
	st.failures += p->result != HC_RES_OK;
	if (changed) {
		st.changes++;
		st.last_change_ms = st.last_probe_ms;
		queue_change(r, t, p, h->up, h->up ? t->conf.rise : t->conf.fall);
	}
	if (bpf_map_update_elem(r->status_fd, &t->key, &st, BPF_ANY))
		logf_(r, HC_LOG_WARN, "cannot record a probe result: %s",
		      strerror(errno));
}

/* Applies the queued changes to the LB under one writer lock. */
static void apply_changes(struct runner *r)
{
	struct sl_ctx *ctx;
	int err;

	if (!r->nchanges)
		return;
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (err) {
		logf_(r, HC_LOG_WARN, "cannot open the state to apply %zu health "
		      "changes: %s", r->nchanges, sl_errmsg());
		r->nchanges = 0; /* the next refresh reconciles */
		return;
	}
	for (size_t i = 0; i < r->nchanges; i++) {
		const struct change *c = &r->changes[i];
		struct lb_service_key svc;
		struct lb_backend_addr be;
		char s[64], b[64], res[96];

		to_lb_service(&c->t.key.svc, &svc);
		to_lb_backend(&c->t.key.backend, &be);
		hc_addr_format(&c->t.key.svc, s, sizeof(s));
		hc_addr_format(&c->t.key.backend, b, sizeof(b));
		probe_text(&c->p, res, sizeof(res));
		err = lb_backend_set_up(ctx, c->t.key.inst, &svc, &be, c->up);
		if (err) {
			logf_(r, HC_LOG_WARN, "health: %s %s backend %s: cannot "
			      "set it %s: %s", c->t.key.inst, s, b,
			      c->up ? "up" : "down", sl_errmsg());
			continue;
		}
		if (c->count)
			logf_(r, c->up ? HC_LOG_INFO : HC_LOG_WARN,
			      "health: %s %s backend %s is %s after %u %s in a "
			      "row (last: %s)", c->t.key.inst, s, b,
			      c->up ? "UP" : "DOWN", c->count,
			      c->up ? "successes" : "failures", res);
		else
			logf_(r, HC_LOG_INFO, "health: %s %s backend %s set %s "
			      "again (the LB had it %s)", c->t.key.inst, s, b,
			      c->up ? "up" : "down", c->up ? "down" : "up");
	}
	sl_close(ctx);
	r->nchanges = 0;
}

static int conf_collect(const struct hc_addr *svc, const struct hc_conf *c,
			void *arg)
{
	struct runner *r = arg;
	struct hc_addr *s = grow(r->svcs, &r->cap_svcs, r->nsvcs, sizeof(*s));
	size_t cap = r->cap_svcs;
	struct hc_conf *cc;

	if (!s)
		return -ENOMEM;
	r->svcs = s;
	cc = realloc(r->confs, cap * sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	r->confs = cc;
	r->svcs[r->nsvcs] = *svc;
	r->confs[r->nsvcs++] = *c;
	return 0;
}

static int target_collect(const char *inst, const struct lb_service_info *s,
			  void *arg)
{
	struct runner *r = arg;
	size_t k;

	for (k = 0; k < r->nsvcs; k++)
		if (same_service(&r->svcs[k], &s->key))
			break;
	if (k == r->nsvcs)
		return 0; /* not checked */
	for (__u32 i = 0; i < s->nbackends; i++) {
		const struct lb_backend_info *b = &s->backends[i];
		struct hc_target *t = grow(r->targets, &r->cap, r->n, sizeof(*t));

		if (!t)
			return -ENOMEM;
		r->targets = t;
		t = &r->targets[r->n++];
		memset(t, 0, sizeof(*t));
		snprintf(t->key.inst, sizeof(t->key.inst), "%s", inst);
		t->key.svc = r->svcs[k];
		from_lb_addr(&t->key.backend, b->addr.family, b->addr.addr,
			     b->addr.port, 0);
		t->conf = r->confs[k];
		t->up = b->up; /* the LB's state: where a new target starts */
	}
	return 0;
}

static int target_key_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct hc_target *)a)->key,
		      &((const struct hc_target *)b)->key,
		      sizeof(struct hc_status_key));
}

static bool is_target(const struct hc_status_key *k, void *arg)
{
	struct runner *r = arg;

	return r->n && bsearch(k, r->targets, r->n, sizeof(*r->targets),
			       target_key_cmp);
}

/* Reads the settings and the LB's services again: new backends join with
 * the LB's state, gone ones leave, and an LB state that differs from the
 * checker's (the service was reloaded) is set back. */
static int refresh(struct runner *r)
{
	struct sl_ctx *ctx;
	int err = sl_open(&ctx, 0), fd;

	r->n = r->nsvcs = 0;
	if (err == -ENOENT)
		return hc_engine_set_targets(r->e, NULL, 0);
	if (err)
		return err;
	err = hc_conf_foreach(ctx, conf_collect, r);
	if (!err && r->nsvcs)
		err = lb_walk(ctx, target_collect, r);
	fd = err ? -1 : status_map(ctx, false);
	sl_close(ctx);
	if (err)
		return err;
	if (fd >= 0) {
		if (r->status_fd >= 0)
			close(r->status_fd);
		r->status_fd = fd; /* the pin may be new since `sluice reset` */
	}
	/* Sorted by key: the engine matches by key anyway, and stale status
	 * entries are found by bsearch. */
	if (r->n)
		qsort(r->targets, r->n, sizeof(*r->targets), target_key_cmp);
	err = hc_engine_set_targets(r->e, r->targets, r->n);
	if (err)
		return err;
	for (size_t i = 0; i < r->n; i++) {
		const struct hc_health *h = hc_engine_health(r->e, i);
		struct hc_probe none = { 0 };

		if (h->up != r->targets[i].up)
			queue_change(r, &r->targets[i], &none, h->up, 0);
	}
	if (r->status_fd >= 0)
		status_prune(r->status_fd, is_target, r);
	return 0;
}

int hc_run(const struct hc_run_opts *o)
{
	struct runner r = { .o = o, .status_fd = -1 };
	unsigned int every = o->refresh_ms ? o->refresh_ms : 1000;
	__u64 next = 0;
	int err = 0, last_err = 0;

	r.e = hc_engine_new(on_probe, &r);
	if (!r.e)
		return sl_err(-errno, "cannot start the checker: %s", strerror(errno));
	while (!*o->stop) {
		if (now_ns() >= next) {
			err = refresh(&r);
			/* Log a failing refresh once, not every second. */
			if (err && err != last_err)
				logf_(&r, HC_LOG_WARN, "health: cannot read the "
				      "settings or the LB: %s", sl_errmsg());
			last_err = err;
			next = now_ns() + (__u64)every * 1000000;
		}
		/* Short waits: *stop is seen within 200 ms. */
		err = hc_engine_poll(r.e, every < 200 ? every : 200);
		if (err)
			break;
		apply_changes(&r);
	}
	hc_engine_free(r.e);
	if (r.status_fd >= 0)
		close(r.status_fd);
	free(r.targets);
	free(r.changes);
	free(r.svcs);
	free(r.confs);
	return err;
}

/* ---- what show prints ---------------------------------------------------- */

struct view_build {
	struct hc_view *v;
	size_t cap;
	struct hc_addr *svcs; /* settings, as read */
	struct hc_conf *confs;
	bool *seen; /* some LB instance has the service */
	size_t nsvcs, cap_svcs;
	int status_fd;
};

static int view_conf(const struct hc_addr *svc, const struct hc_conf *c,
		     void *arg)
{
	struct view_build *b = arg;
	size_t cap = b->cap_svcs;
	struct hc_addr *s = grow(b->svcs, &cap, b->nsvcs, sizeof(*s));
	struct hc_conf *cc;
	bool *seen;

	if (!s)
		return sl_err(-ENOMEM, "out of memory");
	b->svcs = s;
	cc = realloc(b->confs, cap * sizeof(*cc));
	if (cc)
		b->confs = cc;
	seen = realloc(b->seen, cap * sizeof(*seen));
	if (seen)
		b->seen = seen;
	if (!cc || !seen)
		return sl_err(-ENOMEM, "out of memory");
	b->cap_svcs = cap;
	b->svcs[b->nsvcs] = *svc;
	b->confs[b->nsvcs] = *c;
	b->seen[b->nsvcs++] = false;
	return 0;
}

static struct hc_view_service *view_add(struct view_build *b)
{
	struct hc_view_service *s = grow(b->v->svcs, &b->cap, b->v->n,
					 sizeof(*s));

	if (!s)
		return NULL;
	b->v->svcs = s;
	s = &b->v->svcs[b->v->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

static int view_service(const char *inst, const struct lb_service_info *si,
			void *arg)
{
	struct view_build *b = arg;
	struct hc_view_service *s;
	size_t k;

	for (k = 0; k < b->nsvcs; k++)
		if (same_service(&b->svcs[k], &si->key))
			break;
	if (k == b->nsvcs)
		return 0;
	b->seen[k] = true;
	s = view_add(b);
	if (!s)
		return sl_err(-ENOMEM, "out of memory");
	snprintf(s->inst, sizeof(s->inst), "%s", inst);
	s->svc = b->svcs[k];
	s->conf = b->confs[k];
	s->backends = calloc(si->nbackends ? si->nbackends : 1,
			     sizeof(*s->backends));
	if (!s->backends)
		return sl_err(-ENOMEM, "out of memory");
	for (__u32 i = 0; i < si->nbackends; i++) {
		struct hc_view_backend *vb = &s->backends[s->n++];
		struct hc_status_key key = { 0 };

		from_lb_addr(&vb->addr, si->backends[i].addr.family,
			     si->backends[i].addr.addr,
			     si->backends[i].addr.port, 0);
		vb->lb_up = si->backends[i].up;
		snprintf(key.inst, sizeof(key.inst), "%s", inst);
		key.svc = s->svc;
		key.backend = vb->addr;
		vb->probed = b->status_fd >= 0 &&
			     !bpf_map_lookup_elem(b->status_fd, &key, &vb->st);
	}
	return 0;
}

int hc_view_read(struct sl_ctx *ctx, struct hc_view *v)
{
	struct view_build b = { .v = v, .status_fd = -1 };
	int err = 0;

	memset(v, 0, sizeof(*v));
	v->running = hc_lock_holder(&v->pid, v->role, sizeof(v->role));
	if (!ctx) {
		v->now_ms = wall_ms();
		return 0;
	}
	err = hc_conf_foreach(ctx, view_conf, &b);
	if (!err && b.nsvcs) {
		b.status_fd = status_map(ctx, false);
		err = lb_walk(ctx, view_service, &b);
	}
	/* Checks of services no LB instance has (deleted since). */
	for (size_t k = 0; !err && k < b.nsvcs; k++) {
		struct hc_view_service *s;

		if (b.seen[k])
			continue;
		s = view_add(&b);
		if (!s) {
			err = sl_err(-ENOMEM, "out of memory");
			break;
		}
		s->svc = b.svcs[k];
		s->conf = b.confs[k];
	}
	if (b.status_fd >= 0)
		close(b.status_fd);
	/* After the reads: a probe recorded meanwhile has no negative age. */
	v->now_ms = wall_ms();
	free(b.svcs);
	free(b.confs);
	free(b.seen);
	if (err)
		hc_view_free(v);
	return err;
}

void hc_view_free(struct hc_view *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->svcs[i].backends);
	free(v->svcs);
	memset(v, 0, sizeof(*v));
}
