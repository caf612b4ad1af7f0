// SPDX-License-Identifier: GPL-2.0
/* OTLP/HTTP JSON export of httpmon's span records (see otlp.h). The JSON is
 * written here directly: the shape is fixed and small, and strings from
 * packets (route templates) are escaped. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <curl/curl.h>
#include "httpmon.h"
#include "otlp.h"

struct jbuf {
	char *p;
	size_t len, used;
	bool full;
};

static void jput(struct jbuf *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void jput(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->p + j->used, j->len - j->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= j->len - j->used)
		j->full = true;
	else
		j->used += n;
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void jstr(struct jbuf *j, const char *s)
{
	jput(j, "\"");
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			jput(j, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			jput(j, "\\u%04x", c);
		else
			jput(j, "%c", c);
	}
	jput(j, "\"");
}

static void hex(char *out, const __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void attr_str(struct jbuf *j, const char *key, const char *v)
{
	jput(j, "{\"key\":\"%s\",\"value\":{\"stringValue\":", key);
	jstr(j, v);
	jput(j, "}},");
}

/* OTLP JSON writes 64-bit integers as strings. */
static void attr_int(struct jbuf *j, const char *key, long long v)
{
	jput(j, "{\"key\":\"%s\",\"value\":{\"intValue\":\"%lld\"}},", key, v);
}

static void addr_text(const __u32 *a, int family, char *buf, size_t len)
{
	inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, len);
}

/* CLOCK_MONOTONIC (the kernel's timestamps) to Unix time, both in ns. */
static __u64 mono_to_unix(__u64 mono)
{
	struct timespec rt, mt;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	return mono + (rt.tv_sec - mt.tv_sec) * 1000000000ULL + rt.tv_nsec - mt.tv_nsec;
}

int otlp_span_json(const struct http_span *sp, char (*names)[SL_NAME_MAX],
		   char *buf, size_t len)
{
	struct jbuf j = { buf, len, 0, false };
	bool server = sp->hook == SL_HOOK_TC_IN;
	char trace[33], parent[17], span[17], route[HTTP_TMPL_LEN], name[96];
	char client[INET6_ADDRSTRLEN], srv[INET6_ADDRSTRLEN];
	const char *method = httpmon_method_name(sp->method);
	__u8 id[8];
	__u64 start = mono_to_unix(sp->t_start);
	bool error = sp->status >= 500 || (!server && sp->status >= 400);

	do {
		if (getrandom(id, sizeof(id), 0) != sizeof(id))
			return -errno;
	} while (!memcmp(id, "\0\0\0\0\0\0\0\0", 8));
	hex(trace, sp->trace_id, 16);
	hex(parent, sp->parent_id, 8);
	hex(span, id, 8);
	httpmon_route_name(sp->tmpl, sp->path, route, sizeof(route));
	snprintf(name, sizeof(name), "%s %s", method, route);
	addr_text(sp->client, sp->family, client, sizeof(client));
	addr_text(sp->server, sp->family, srv, sizeof(srv));

	jput(&j, "{\"traceId\":\"%s\",\"spanId\":\"%s\",\"parentSpanId\":\"%s\",", trace,
	     span, parent);
	/* Trace flags, and "the parent is remote" (0x100 | 0x200). */
	jput(&j, "\"flags\":%u,\"name\":", 0x300 | sp->trace_flags);
	jstr(&j, name);
	/* OTLP/JSON writes enums as integers: SERVER 2, CLIENT 3. */
	jput(&j, ",\"kind\":%d,", server ? 2 : 3);
	jput(&j, "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",",
	     (unsigned long long)start,
	     (unsigned long long)(start + (sp->t_end - sp->t_start)));
	jput(&j, "\"attributes\":[");
	attr_str(&j, "http.request.method", method);
	attr_int(&j, "http.response.status_code", sp->status);
	if (sp->tmpl >= 16)
		attr_str(&j, "http.route", route);
	attr_str(&j, "server.address", srv);
	attr_int(&j, "server.port", sp->sport);
	attr_str(&j, "client.address", client);
	attr_int(&j, "client.port", sp->cport);
	/* The peer is the other end: the client for a server span. */
	attr_str(&j, "network.peer.address", server ? client : srv);
	attr_int(&j, "network.peer.port", server ? sp->cport : sp->sport);
	attr_str(&j, "network.transport", "tcp");
	attr_str(&j, "network.type", sp->family == 4 ? "ipv4" : "ipv6");
	attr_str(&j, "network.protocol.name", "http");
	if (sp->lb_backend)
		attr_int(&j, "sluice.lb.backend", sp->lb_backend);
	jput(&j, "{\"key\":\"sluice.nf.instances\",\"value\":{\"arrayValue\":{\"values\":[");
	for (int i = 0; i < sp->nslots && i < SL_CHAIN_MAX; i++) {
		__u32 slot = sp->slots[i];
		char fallback[24];
		const char *n = slot < SL_MAX_SLOTS && names && names[slot][0] ?
					names[slot] : NULL;

		if (!n) {
			snprintf(fallback, sizeof(fallback), "slot-%u", slot);
			n = fallback;
		}
		jput(&j, "%s{\"stringValue\":", i ? "," : "");
		jstr(&j, n);
		jput(&j, "}");
	}
	jput(&j, "]}}}],");
	if (error)
		jput(&j, "\"status\":{\"code\":2,\"message\":\"HTTP %u\"}}", sp->status);
	else
		jput(&j, "\"status\":{}}"); /* STATUS_CODE_UNSET */
	return j.full ? -ENOSPC : (int)j.used;
}

/* ---- exporter -------------------------------------------------------------- */

struct otlp_exporter {
	char url[512];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the sender: work or stop */
	pthread_cond_t idle; /* flushers: the queue went empty */
	char *queue[OTLP_QUEUE_MAX]; /* span JSON objects, a ring */
	size_t head, count;
	bool sending;
	bool stopping;
	long stop_timeout_ms;
	__u64 stop_deadline_ns; /* CLOCK_MONOTONIC; 0: not stopping */
	struct otlp_stats st;
	char host[256];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Whether a stop's deadline has passed. */
static bool past_deadline(struct otlp_exporter *e)
{
	__u64 deadline = __atomic_load_n(&e->stop_deadline_ns, __ATOMIC_RELAXED);

	return deadline && now_ns() > deadline;
}

static char *batch_body(struct otlp_exporter *e, char **spans, size_t n)
{
	size_t total = 512 + strlen(e->host);
	struct jbuf j;

	for (size_t i = 0; i < n; i++)
		total += strlen(spans[i]) + 1;
	j = (struct jbuf){ malloc(total), total, 0, false };
	if (!j.p)
		return NULL;
	jput(&j, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	attr_str(&j, "service.name", "sluice");
	jput(&j, "{\"key\":\"host.name\",\"value\":{\"stringValue\":");
	jstr(&j, e->host);
	jput(&j, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"sluice.httpmon\",\"version\":\"1\"},\"spans\":[");
	for (size_t i = 0; i < n; i++)
		jput(&j, "%s%s", i ? "," : "", spans[i]);
	jput(&j, "]}]}]}");
	if (j.full) {
		free(j.p);
		return NULL;
	}
	return j.p;
}

/* One POST; returns whether the collector took it (2xx). Driven through
 * a multi handle in 100 ms steps, so a stop's deadline ends it in time
 * however slow the collector. */
static bool post(struct otlp_exporter *e, const char *body, long timeout_ms)
{
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	CURLM *multi = curl_multi_init();
	CURL *c = curl_easy_init();
	CURLMsg *msg;
	int running = 1, left;
	long code = 0;
	bool ok = false, added = false;

	if (!c || !hdr || !multi)
		goto out;
	curl_easy_setopt(c, CURLOPT_URL, e->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_multi_add_handle(multi, c) != CURLM_OK)
		goto out;
	added = true;
	while (running && !past_deadline(e)) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			goto out;
		if (running && curl_multi_poll(multi, NULL, 0, 100, NULL) != CURLM_OK)
			goto out;
	}
	while (!running && (msg = curl_multi_info_read(multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK &&
		    !curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code))
			ok = code >= 200 && code < 300;
out:
	if (added)
		curl_multi_remove_handle(multi, c);
	curl_easy_cleanup(c);
	curl_multi_cleanup(multi);
	curl_slist_free_all(hdr);
	return ok;
}

static void *sender(void *arg)
{
	struct otlp_exporter *e = arg;
	char *batch[OTLP_BATCH_MAX];

	pthread_mutex_lock(&e->lock);
	for (;;) {
		size_t n = 0;
		long timeout;
		char *body;
		bool ok;

		while (!e->count && !e->stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L; /* batch what comes in 200 ms */
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&e->wake, &e->lock, &ts);
		}
		if (!e->count && e->stopping)
			break;
		while (n < OTLP_BATCH_MAX && e->count) {
			batch[n++] = e->queue[e->head];
			e->head = (e->head + 1) % OTLP_QUEUE_MAX;
			e->count--;
		}
		e->sending = true;
		timeout = e->stopping ? e->stop_timeout_ms : 5000;
		pthread_mutex_unlock(&e->lock);

		body = batch_body(e, batch, n);
		ok = body && post(e, body, timeout);
		free(body);
		for (size_t i = 0; i < n; i++)
			free(batch[i]);

		pthread_mutex_lock(&e->lock);
		e->sending = false;
		e->st.posts++;
		if (ok)
			e->st.sent += n;
		else
			e->st.failed += n;
		if (!e->count)
			pthread_cond_broadcast(&e->idle);
		if (e->stopping && !ok)
			break; /* the collector is away: do not wait for it again */
	}
	/* What is left when stopping goes unsent: count it. */
	while (e->count) {
		free(e->queue[e->head]);
		e->head = (e->head + 1) % OTLP_QUEUE_MAX;
		e->count--;
		e->st.failed++;
	}
	pthread_cond_broadcast(&e->idle);
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

struct otlp_exporter *otlp_exporter_new(const char *endpoint)
{
	struct otlp_exporter *e;
	size_t n = strlen(endpoint);
	int err;

	if (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) {
		sl_err(-EINVAL, "--otlp-endpoint '%s': need an http:// or https:// URL", endpoint);
		errno = EINVAL;
		return NULL;
	}
	while (n && endpoint[n - 1] == '/')
		n--;
	if (n + sizeof("/v1/traces") > sizeof(e->url)) {
		sl_err(-EINVAL, "--otlp-endpoint: too long");
		errno = EINVAL;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		sl_err(-ENOMEM, "out of memory");
		return NULL;
	}
	pthread_once(&curl_once, curl_init_once);
	snprintf(e->url, sizeof(e->url), "%.*s/v1/traces", (int)n, endpoint);
	if (gethostname(e->host, sizeof(e->host) - 1))
		snprintf(e->host, sizeof(e->host), "unknown");
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->wake, NULL);
	pthread_cond_init(&e->idle, NULL);
	err = pthread_create(&e->thread, NULL, sender, e);
	if (err) {
		sl_err(-err, "cannot start the OTLP sender: %s", strerror(err));
		free(e);
		errno = err;
		return NULL;
	}
	return e;
}

int otlp_exporter_push(struct otlp_exporter *e, const struct http_span *sp,
		       char (*names)[SL_NAME_MAX])
{
	char buf[4096];
	int n = otlp_span_json(sp, names, buf, sizeof(buf));
	char *copy;

	if (n < 0)
		return n;
	copy = strdup(buf);
	pthread_mutex_lock(&e->lock);
	if (!copy || e->count >= OTLP_QUEUE_MAX || e->stopping) {
		e->st.dropped++;
		pthread_mutex_unlock(&e->lock);
		free(copy);
		return -ENOBUFS;
	}
	e->queue[(e->head + e->count) % OTLP_QUEUE_MAX] = copy;
	e->count++;
	e->st.queued++;
	if (e->count >= OTLP_BATCH_MAX)
		pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

void otlp_exporter_stats(struct otlp_exporter *e, struct otlp_stats *st)
{
	pthread_mutex_lock(&e->lock);
	*st = e->st;
	pthread_mutex_unlock(&e->lock);
}

int otlp_exporter_flush(struct otlp_exporter *e, int timeout_ms)
{
	struct timespec ts;
	int busy;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->lock);
	pthread_cond_signal(&e->wake);
	while ((e->count || e->sending) &&
	       pthread_cond_timedwait(&e->idle, &e->lock, &ts) != ETIMEDOUT)
		;
	busy = e->count || e->sending;
	pthread_mutex_unlock(&e->lock);
	return busy ? -ETIMEDOUT : 0;
}

void otlp_exporter_free(struct otlp_exporter *e, int timeout_ms)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	e->stop_timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	__atomic_store_n(&e->stop_deadline_ns, now_ns() + e->stop_timeout_ms * 1000000ULL,
			 __ATOMIC_RELAXED);
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->wake);
	pthread_cond_destroy(&e->idle);
	free(e);
}
