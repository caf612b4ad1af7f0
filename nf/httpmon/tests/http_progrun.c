// SPDX-License-Identifier: GPL-2.0
/* Golden-packet tests of the HTTP monitor through the real pipeline: an
 * instance loaded and chained by the production control code, TCP segments
 * with HTTP payloads run with BPF_PROG_RUN through the TC roots. Each case
 * is a short exchange (client segments, server segments) and states which
 * counters move, which histogram row counts it, and what the span record
 * says. Every packet must go on (httpmon never drops). A failing packet is
 * printed in hex and appended to build/tests/http_fail.pcap.
 *
 * With --bench, prints the ns/packet of httpmon on a non-HTTP packet, an
 * ACK on the service port, a request, a request with a traceparent and a
 * response (BPF_PROG_RUN, repeat 200000). */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "httpmon.h"
#include "otlp.h"
#include "lb.h"
#include "flowmon.h"
#include "check.h"
#include "pktbuild.h"

#define DEV "slhp0"
#define PEER "slhp1"
#define INST "httptest"
#define CAPPED "httpcap"
#define PORT 8080
#define CAP_PORT 9090
#define ROUTED "httproute"
#define ROUTE_PORT 7070
#define SL_TC_ACT_SHOT_ 2
#define FAIL_PCAP "build/tests/http_fail.pcap"
#define SEG_MAX 3600

static struct sl_ctx *ctx;
static int ifindex;
static int ring_fd = -1;
static struct ring_buffer *ring;
static struct http_span last_span;
static int nspans;

enum dir { C2S, S2C };

struct conn {
	int family;
	const char *client, *server;
	__u16 cport, sport;
};

static const struct conn v4 = { 4, "10.9.0.1", "10.9.0.2", 40001, PORT };

/* Ethernet + IPv4/IPv6 + TCP (ACK|PSH) + payload; checksums are not looked
 * at by the test run. */
static size_t build_seg(const struct conn *c, enum dir d, const void *payload,
			size_t plen, __u8 *buf)
{
	size_t l3len = c->family == 4 ? 20 : 40, off = 14 + l3len;
	const char *src = d == C2S ? c->client : c->server;
	const char *dst = d == C2S ? c->server : c->client;
	__u16 sport = d == C2S ? c->cport : c->sport;
	__u16 dport = d == C2S ? c->sport : c->cport;
	__u8 *ip = buf + 14, *th = buf + off;

	memset(buf, 0, off + 20);
	memcpy(buf, mac_two, 6);
	memcpy(buf + 6, mac_one, 6);
	put16(buf + 12, c->family == 4 ? 0x0800 : 0x86dd);
	if (c->family == 4) {
		ip[0] = 0x45;
		put16(ip + 2, 20 + 20 + plen);
		ip[8] = 64;
		ip[9] = 6;
		inet_pton(AF_INET, src, ip + 12);
		inet_pton(AF_INET, dst, ip + 16);
	} else {
		ip[0] = 0x60;
		put16(ip + 4, 20 + plen);
		ip[6] = 6;
		ip[7] = 64;
		inet_pton(AF_INET6, src, ip + 8);
		inet_pton(AF_INET6, dst, ip + 24);
	}
	put16(th, sport);
	put16(th + 2, dport);
	th[12] = 5 << 4;
	th[13] = 0x18; /* PSH ACK */
	put16(th + 14, 65535);
	memcpy(th + 20, payload, plen);
	return off + 20 + plen;
}

/* Runs one frame through the TC root of hook; returns the retval. */
static int run_frame(int hook, const __u8 *pkt, size_t len, int repeat, __u32 *ns)
{
	struct __sk_buff skb = { .ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = len,
		    .ctx_in = &skb, .ctx_size_in = sizeof(skb), .repeat = repeat);
	int fd = sl_obj_get(sl_base(ctx), hook == SL_HOOK_TC_IN ? "root_tc_in" : "root_tc_out");
	int err;

	if (fd < 0)
		return -1000;
	err = bpf_prog_test_run_opts(fd, &opts);
	close(fd);
	if (err)
		return -1000 - errno;
	if (ns)
		*ns = opts.duration;
	return (int)opts.retval;
}

static bool all_passed = true;

/* Sends a segment; the request direction runs at hook, the other way at
 * the other TC hook (as on one interface). Checks httpmon let it through. */
static void seg_at(const struct conn *c, enum dir d, int req_hook, const char *text,
		   size_t len, const char *name)
{
	static __u8 pkt[SEG_MAX + 100];
	int hook = d == C2S ? req_hook : (req_hook == SL_HOOK_TC_IN ? SL_HOOK_TC_OUT : SL_HOOK_TC_IN);
	size_t n = build_seg(c, d, text, len, pkt);
	int rv = run_frame(hook, pkt, n, 1, NULL);

	if (rv != -1) { /* TCX_NEXT: the packet goes on */
		char what[160];

		snprintf(what, sizeof(what), "%s: segment passes (retval %d)", name, rv);
		check_report(false, what, NULL);
		pkt_hex(stdout, pkt, n);
		pkt_pcap(FAIL_PCAP, pkt, n);
		all_passed = false;
	}
}

static void seg(const struct conn *c, enum dir d, const char *text, const char *name)
{
	seg_at(c, d, SL_HOOK_TC_IN, text, strlen(text), name);
}

static struct httpmon_info info;

static void snapshot(const char *inst)
{
	httpmon_info_free(&info);
	if (httpmon_read(ctx, inst, &info))
		memset(&info, 0, sizeof(info));
}

static __u64 row_count(const char *method, const char *route, int cls)
{
	__u64 n = 0;

	for (size_t i = 0; i < info.nrows; i++) {
		const struct httpmon_row *r = &info.rows[i];

		if (!strcmp(httpmon_method_name(r->method), method) &&
		    !strcmp(r->route, route) && r->status_class == cls)
			n += r->st.count;
	}
	return n;
}

static int on_span(void *arg, void *data, size_t size)
{
	memset(&last_span, 0, sizeof(last_span));
	memcpy(&last_span, data, size < sizeof(last_span) ? size : sizeof(last_span));
	nspans++;
	return 0;
}

static int drain_spans(void)
{
	nspans = 0;
	if (ring)
		ring_buffer__consume(ring);
	return nspans;
}

/* Counter deltas of a case, by field. */
#define CNT(f) ((long long)(after.f - before.f))

struct delta_expect {
	long long requests, responses, partial, bad, pipelined, orphans, informational,
		tp_valid, tp_invalid, tmpl_overflow, spans;
};

static void check_deltas(const char *name, const struct http_counters *b,
			 const struct http_counters *a, const struct delta_expect *e)
{
	struct http_counters before = *b, after = *a;
	char detail[512];
	bool ok = CNT(requests) == e->requests && CNT(responses) == e->responses &&
		  CNT(partial) == e->partial && CNT(bad) == e->bad &&
		  CNT(pipelined) == e->pipelined && CNT(orphans) == e->orphans &&
		  CNT(informational) == e->informational && CNT(tp_valid) == e->tp_valid &&
		  CNT(tp_invalid) == e->tp_invalid && CNT(tmpl_overflow) == e->tmpl_overflow &&
		  CNT(spans) == e->spans;

	snprintf(detail, sizeof(detail),
		 "req %lld resp %lld partial %lld bad %lld pipelined %lld orphans %lld 1xx %lld "
		 "tp %lld/%lld overflow %lld spans %lld (expected %lld %lld %lld %lld %lld %lld "
		 "%lld %lld/%lld %lld %lld)",
		 CNT(requests), CNT(responses), CNT(partial), CNT(bad), CNT(pipelined),
		 CNT(orphans), CNT(informational), CNT(tp_valid), CNT(tp_invalid),
		 CNT(tmpl_overflow), CNT(spans), e->requests, e->responses, e->partial, e->bad,
		 e->pipelined, e->orphans, e->informational, e->tp_valid, e->tp_invalid,
		 e->tmpl_overflow, e->spans);
	check_report(ok, name, ok ? NULL : detail);
}

/* A case: client segments then server segments on one connection. */
struct http_case {
	const char *name;
	const char *c2s[3];
	const char *s2c[3];
	struct delta_expect d;
	const char *method, *route; /* the row that must count it (once) */
	int cls;
};

#define TP_OK "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define GET_TP(tp) "GET /orders/42 HTTP/1.1\r\nHost: x\r\ntraceparent: " tp "\r\n\r\n"

static const struct http_case cases[] = {
	{ "get 200", { "GET /users/123 HTTP/1.1\r\nHost: a\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "/users/{id}", 2 },
	{ "post uuid deep 503",
	  { "POST /api/v1/orders/550e8400-e29b-41d4-a716-446655440000 HTTP/1.1\r\n\r\n" },
	  { "HTTP/1.1 503 Service Unavailable\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "POST", "/api/v1/orders/*", 5 },
	{ "delete uuid 404", { "DELETE /items/550e8400-e29b-41d4-a716-446655440000 HTTP/1.0\r\n\r\n" },
	  { "HTTP/1.0 404 Not Found\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "DELETE", "/items/{id}", 4 },
	{ "hex id and query", { "PUT /blobs/deadbeef0123?x=1&y=/a/b HTTP/1.1\r\n\r\n" },
	  { "HTTP/1.1 204 No Content\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "PUT", "/blobs/{id}", 2 },
	{ "words stay", { "PATCH /static/app.css HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 301 Moved\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "PATCH", "/static/app.css", 3 },
	{ "root path, reason phrase missing", { "HEAD / HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "HEAD", "/", 2 },
	{ "options star", { "OPTIONS * HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "OPTIONS", "other", 2 },
	{ "absolute form", { "GET http://h/x HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "other", 2 },
	{ "request line split", { "GET /users/12345/profi", "le HTTP/1.1\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .partial = 1 }, "GET", "partial", 2 },
	{ "version split", { "GET /a HTTP/1", ".1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .partial = 1 }, "GET", "partial", 2 },
	{ "method only", { "GET " }, { "HTTP/1.1 500 Oops\r\n\r\n" },
	  { .requests = 1, .responses = 1, .partial = 1 }, "GET", "partial", 5 },
	{ "too short to say", { "GE", "T / HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .orphans = 1 } },
	{ "lower-case method", { "get /a HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .orphans = 1 } },
	{ "control byte in target", { "GET /a\x01" "b HTTP/1.1\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n" }, { .bad = 1, .orphans = 1 } },
	{ "not HTTP/1.x", { "GET /a HTTP/2.0\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .bad = 1, .orphans = 1 } },
	{ "binary garbage", { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe" }, { "\x00\x01\x02" },
	  {} },
	{ "bad status line", { "GET /a HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 2OO OK\r\n\r\n", "HTTP/1.1 700 X\r\n\r\n" },
	  { .requests = 1 } },
	{ "100 continue then 200", { "POST /upload HTTP/1.1\r\nExpect: 100-continue\r\n\r\n" },
	  { "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 201 Created\r\n\r\n" },
	  { .requests = 1, .responses = 1, .informational = 1 }, "POST", "/upload", 2 },
	{ "pipelined", { "GET /p1 HTTP/1.1\r\n\r\n", "GET /p2 HTTP/1.1\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .pipelined = 1, .orphans = 1 }, "GET", "/p1", 2 },
	{ "response without request", {}, { "HTTP/1.1 200 OK\r\n\r\n" }, { .orphans = 1 } },
	{ "four segments deep", { "GET /a/b/c/d/e HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "/a/b/c/*", 2 },
	{ "empty segments", { "GET //a//7// HTTP/1.1\r\n\r\n" }, { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "/a/{id}", 2 },
	{ "traceparent valid", { GET_TP(TP_OK) }, { "HTTP/1.1 502 Bad Gateway\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_valid = 1, .spans = 1 }, "GET", "/orders/{id}", 5 },
	{ "traceparent name upper case",
	  { "GET /orders/42 HTTP/1.1\r\nTRACEPARENT:" TP_OK "\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_valid = 1, .spans = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent upper-case hex",
	  { GET_TP("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01") },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent short trace id",
	  { GET_TP("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01") },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent long parent id",
	  { GET_TP("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033311-01") },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent version 01",
	  { GET_TP("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent zero trace id",
	  { GET_TP("00-00000000000000000000000000000000-b7ad6b7169203331-01") },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent cut by the segment",
	  { "GET /orders/42 HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb21" },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1, .tp_invalid = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent after the headers end",
	  { "GET /orders/42 HTTP/1.1\r\n\r\ntraceparent: " TP_OK "\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "/orders/{id}", 2 },
	{ "traceparent-like header name",
	  { "GET /orders/42 HTTP/1.1\r\nx-traceparent: " TP_OK "\r\n\r\n" },
	  { "HTTP/1.1 200 OK\r\n\r\n" },
	  { .requests = 1, .responses = 1 }, "GET", "/orders/{id}", 2 },
};

static void dump_rows(void)
{
	for (size_t i = 0; i < info.nrows; i++)
		printf("  row %s %s %u: %llu\n", httpmon_method_name(info.rows[i].method), info.rows[i].route, info.rows[i].status_class, (unsigned long long)info.rows[i].st.count);
}

static void run_case(const struct http_case *c, __u16 cport)
{
	struct conn cn = v4;
	struct http_counters before;
	__u64 row_before = 0;
	char name[160];

	cn.cport = cport;
	snapshot(INST);
	before = info.cnt;
	if (c->method)
		row_before = row_count(c->method, c->route, c->cls);
	drain_spans();
	for (int i = 0; i < 3 && c->c2s[i]; i++)
		seg(&cn, C2S, c->c2s[i], c->name);
	for (int i = 0; i < 3 && c->s2c[i]; i++)
		seg(&cn, S2C, c->s2c[i], c->name);
	snapshot(INST);
	snprintf(name, sizeof(name), "%s: counters", c->name);
	check_deltas(name, &before, &info.cnt, &c->d);
	if (c->method) {
		__u64 now = row_count(c->method, c->route, c->cls);

		snprintf(name, sizeof(name), "%s: row %s %s %dxx counted once", c->name,
			 c->method, c->route, c->cls);
		if (!check_report(now == row_before + 1, name, NULL))
			dump_rows();
	}
	snprintf(name, sizeof(name), "%s: span records", c->name);
	check_report(drain_spans() == c->d.spans, name, NULL);
}

static void hexs(char *out, const __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* The span of a traced request: ids, addresses, kind, timing, NF path. */
static void run_span(void)
{
	struct conn c6 = { 6, "fd00:9::1", "fd00:9::2", 40500, PORT };
	char trace[33], parent[17], json[4096];
	struct sl_instance inst;
	struct timespec t0, t1;
	__u32 slot = 0;

	sl_instance_get(ctx, INST, &inst);
	slot = inst.slot;
	drain_spans();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	seg(&c6, C2S, GET_TP(TP_OK), "span v6");
	usleep(20000);
	seg(&c6, S2C, "HTTP/1.1 200 OK\r\n\r\n", "span v6");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!check_report(drain_spans() == 1, "span: one record for a traced IPv6 exchange", NULL))
		return;
	hexs(trace, last_span.trace_id, 16);
	hexs(parent, last_span.parent_id, 8);
	CHECK(!strcmp(trace, "0af7651916cd43dd8448eb211c80319c"), "span: trace id");
	CHECK(!strcmp(parent, "b7ad6b7169203331"), "span: parent id");
	CHECK(last_span.trace_flags == 1, "span: trace flags");
	CHECK(last_span.family == 6 && last_span.cport == 40500 && last_span.sport == PORT,
	      "span: family and ports");
	CHECK(ntohl(last_span.client[3]) == 1 && ntohl(last_span.server[3]) == 2,
	      "span: client and server addresses");
	CHECK(last_span.hook == SL_HOOK_TC_IN, "span: request seen at tc-ingress (server side)");
	CHECK(last_span.status == 200 && last_span.method == HTTP_M_GET &&
		      !strcmp(last_span.path, "/orders/{id}"),
	      "span: method, status, route");
	CHECK(last_span.t_start >= (__u64)t0.tv_sec * 1000000000ULL + t0.tv_nsec &&
		      last_span.t_end <= (__u64)t1.tv_sec * 1000000000ULL + t1.tv_nsec &&
		      last_span.t_end - last_span.t_start >= 20000000ULL,
	      "span: start and end inside the exchange, at least the 20 ms slept");
	CHECK(last_span.nslots == 1 && last_span.slots[0] == slot, "span: NF path is [httptest]");
	CHECK(last_span.slot == slot, "span: emitted by httptest");

	/* A request leaving through egress is the client's side. */
	c6.cport = 40501;
	seg_at(&c6, C2S, SL_HOOK_TC_OUT, GET_TP(TP_OK), strlen(GET_TP(TP_OK)), "span client");
	seg_at(&c6, S2C, SL_HOOK_TC_OUT, "HTTP/1.1 404 NF\r\n\r\n", 19, "span client");
	if (check_report(drain_spans() == 1, "span: client side record", NULL)) {
		CHECK(last_span.hook == SL_HOOK_TC_OUT && last_span.status == 404,
		      "span: request seen at egress (client side), status 404");
		/* The OTLP encoding of it: kind CLIENT (3), 4xx is an error there. */
		CHECK(otlp_span_json(&last_span, NULL, json, sizeof(json)) > 0 &&
			      strstr(json, "\"kind\":3") &&
			      strstr(json, "\"parentSpanId\":\"b7ad6b7169203331\"") &&
			      strstr(json, "\"code\":2") &&
			      strstr(json, "{\"key\":\"http.route\",\"value\":{\"stringValue\":\"/orders/{id}\"}}"),
		      "span: OTLP JSON kind CLIENT, parent, error status, route");
	}
}

/* A request line in a big segment, headers running past what is read. */
static void run_huge(void)
{
	static char buf[SEG_MAX];
	struct conn c = v4;
	struct http_counters before;
	size_t n;

	c.cport = 41000;
	snapshot(INST);
	before = info.cnt;
	n = snprintf(buf, sizeof(buf), "GET /big/1 HTTP/1.1\r\nX-Fill: ");
	memset(buf + n, 'f', sizeof(buf) - n);
	/* A traceparent beyond the first 1,024 bytes is not looked for. */
	memcpy(buf + 2000, "\r\ntraceparent: " TP_OK "\r\n", 15 + 55 + 2);
	seg_at(&c, C2S, SL_HOOK_TC_IN, buf, sizeof(buf), "huge header");
	seg(&c, S2C, "HTTP/1.1 200 OK\r\n\r\n", "huge header");
	snapshot(INST);
	CHECK(info.cnt.requests == before.requests + 1 && info.cnt.responses == before.responses + 1 &&
		      info.cnt.tp_valid == before.tp_valid,
	      "huge header: counted, traceparent past the bound ignored");

	/* A target longer than the scan: counted as other. */
	c.cport = 41001;
	n = snprintf(buf, sizeof(buf), "GET /");
	memset(buf + n, 'a', 1000);
	memcpy(buf + n + 1000, " HTTP/1.1\r\n\r\n", 13);
	seg_at(&c, C2S, SL_HOOK_TC_IN, buf, n + 1013, "long target");
	seg(&c, S2C, "HTTP/1.1 414 URI Too Long\r\n\r\n", "long target");
	snapshot(INST);
	CHECK(row_count("GET", "other", 4) == 1, "long target: counted as other");

	/* Random bytes on the port, many shapes: all go on, nothing counted
	 * but the odd accidental match. */
	srand(7);
	for (int i = 0; i < 2000; i++) {
		size_t len = 1 + rand() % 1500;

		for (size_t k = 0; k < len; k++)
			buf[k] = rand();
		c.cport = 42000 + i % 50;
		seg_at(&c, rand() % 2 ? C2S : S2C, SL_HOOK_TC_IN, buf, len, "random bytes");
	}
	CHECK(all_passed, "random bytes: 2,000 segments all went on");
}

/* Non-HTTP traffic: UDP to the port, TCP elsewhere, an empty ACK. */
static void run_other(void)
{
	struct pkt_spec udp = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 17,
				.sport = 5000, .dport = PORT, .payload = 32 };
	struct pkt_spec tcp = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 6,
				.sport = 5000, .dport = 22, .tcp_flags = 0x10, .payload = 20 };
	struct pkt_spec ack = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 6,
				.sport = 5000, .dport = PORT, .tcp_flags = 0x10 };
	struct pkt_spec frag = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 6,
				 .frag_offset = 10, .payload = 40 };
	const struct pkt_spec *specs[] = { &udp, &tcp, &ack, &frag };
	struct http_counters before;
	__u8 pkt[PKT_MAX];
	bool ok = true;

	snapshot(INST);
	before = info.cnt;
	for (size_t i = 0; i < 4; i++) {
		size_t n = pkt_build(specs[i], pkt);

		ok &= run_frame(SL_HOOK_TC_IN, pkt, n, 1, NULL) == -1;
	}
	snapshot(INST);
	CHECK(ok, "other traffic: UDP, other TCP port, empty ACK, fragment go on");
	CHECK(!memcmp(&before, &info.cnt, sizeof(before)), "other traffic: no counter moves");
}

/* Packets httpmon cannot want (not TCP) leave a TC chain of httpmon
 * instances before the root's work: no NF counts them. A malformed one is
 * still dropped by the root; with another NF on the chain, or while a trace
 * session runs, every packet goes through the chain. */
static __u64 slot_packets(const char *inst)
{
	struct sl_nf_stats st = {};
	__u64 drops[SL_DROP_MAX];
	struct sl_instance i;

	if (sl_instance_get(ctx, inst, &i) || sl_slot_stats(ctx, i.slot, &st, drops))
		return ~0ULL;
	return st.packets;
}

static void set_obs(__u32 obs)
{
	char path[512];
	struct sl_evcfg cfg = {};
	__u32 zero = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/sl_evcfg", sl_base(ctx));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	bpf_map_lookup_elem(fd, &zero, &cfg);
	cfg.obs = obs;
	bpf_map_update_elem(fd, &zero, &cfg, BPF_ANY);
	close(fd);
}

static void run_ignore(void)
{
	struct pkt_spec udp = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 17,
				.sport = 5000, .dport = PORT, .payload = 32 };
	struct pkt_spec udp6 = { .family = 6, .src = "fd00::1", .dst = "fd00::2", .proto = 17,
				 .sport = 5000, .dport = PORT, .payload = 32 };
	struct pkt_spec icmp = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 1,
				 .payload = 8 };
	struct pkt_spec ack = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 6,
				.sport = 5000, .dport = PORT, .tcp_flags = 0x10 };
	const struct pkt_spec *ignored[] = { &udp, &udp6, &icmp };
	const char *with_fm[] = { INST, "fmhttp" };
	const char *alone[] = { INST };
	const char *all[] = { INST, CAPPED, ROUTED }; /* as attached */
	const __u32 want = SL_IGN_NONIP | SL_IGN_UDP | SL_IGN_ICMP | SL_IGN_OTHER;
	enum sl_hook fm_hook = SL_HOOK_TC_IN;
	struct sl_chain chain;
	__u8 pkt[PKT_MAX];
	__u64 before;
	size_t n;
	bool ok = true;
	int err;

	err = sl_chain_set(ctx, DEV, SL_HOOK_TC_IN, alone, 1);
	err = err ?: sl_chain_get(ctx, DEV, SL_HOOK_TC_IN, &chain);
	if (!check_report(!err && chain.ignore == want,
			  "ignore: a chain of httpmon ignores all but TCP", err ? sl_errmsg() : NULL))
		goto out;
	before = slot_packets(INST);
	for (size_t i = 0; i < 3; i++) {
		n = pkt_build(ignored[i], pkt);
		ok &= run_frame(SL_HOOK_TC_IN, pkt, n, 1, NULL) == -1;
	}
	CHECK(ok && slot_packets(INST) == before,
	      "ignore: UDP, UDP/IPv6, ICMP go on without reaching httpmon");
	n = pkt_build(&ack, pkt);
	CHECK(run_frame(SL_HOOK_TC_IN, pkt, n, 1, NULL) == -1 && slot_packets(INST) == before + 1,
	      "ignore: TCP reaches httpmon");
	n = pkt_build(&udp, pkt);
	CHECK(run_frame(SL_HOOK_TC_IN, pkt, 14 + 20 + 4, 1, NULL) == SL_TC_ACT_SHOT_ &&
		      slot_packets(INST) == before + 1,
	      "ignore: a truncated UDP header is still dropped by the root");
	set_obs(SL_OBS_TRACE);
	CHECK(run_frame(SL_HOOK_TC_IN, pkt, n, 1, NULL) == -1 && slot_packets(INST) == before + 2,
	      "ignore: while a trace session runs, UDP goes through the chain");
	set_obs(0);
	err = fm_attach(ctx, "fmhttp", DEV, &fm_hook, 1, 0);
	err = err ?: sl_chain_set(ctx, DEV, SL_HOOK_TC_IN, with_fm, 2);
	err = err ?: sl_chain_get(ctx, DEV, SL_HOOK_TC_IN, &chain);
	if (check_report(!err && chain.ignore == 0,
			 "ignore: with flowmon on the chain, nothing is ignored",
			 err ? sl_errmsg() : NULL))
		CHECK(run_frame(SL_HOOK_TC_IN, pkt, n, 1, NULL) == -1 &&
			      slot_packets(INST) == before + 3 && slot_packets("fmhttp") == 1,
		      "ignore: UDP then goes through httpmon and flowmon");
out:
	sl_chain_set(ctx, DEV, SL_HOOK_TC_IN, all, 3);
	sl_instance_delete(ctx, "fmhttp");
}

/* The template cap: 4 templates, then "other". */
static void run_cap(void)
{
	struct conn c = { 4, "10.9.0.1", "10.9.0.2", 43000, CAP_PORT };
	char req[64];

	for (int i = 0; i < 10; i++) {
		snprintf(req, sizeof(req), "GET /page%c HTTP/1.1\r\n\r\n", 'a' + i);
		c.cport = 43000 + i;
		seg(&c, C2S, req, "cap");
		seg(&c, S2C, "HTTP/1.1 200 OK\r\n\r\n", "cap");
	}
	snapshot(CAPPED);
	CHECK(info.ntemplates == 4, "cap: 4 templates kept");
	CHECK(info.cnt.tmpl_overflow == 6 && row_count("GET", "other", 2) == 6,
	      "cap: 6 requests counted as other");
	CHECK(row_count("GET", "/pagea", 2) == 1 && row_count("GET", "/paged", 2) == 1,
	      "cap: the first 4 keep their own rows");
	/* A known template still counts as itself once the cap is reached. */
	c.cport = 43100;
	seg(&c, C2S, "GET /pageb HTTP/1.1\r\n\r\n", "cap");
	seg(&c, S2C, "HTTP/1.1 200 OK\r\n\r\n", "cap");
	snapshot(CAPPED);
	CHECK(row_count("GET", "/pageb", 2) == 2, "cap: a known template after the cap");
}

/* Configured routes: a path with the prefix counts as the route, the
 * longest prefix first; others get templates as usual. */
static void run_routes(void)
{
	static const struct {
		const char *path, *route;
	} cases[] = {
		{ "/static/css/app.css", "/static/*" },
		{ "/static/", "/static/*" },
		{ "/static", "/static" },
		{ "/users/alice", "/users/*" },
		{ "/users/admin/audit/2024", "/users/admin/*" },
		{ "/usersx/1", "/usersx/{id}" },
		{ "/api/v1/search/q?x=/static/", "/api/v1/search/*" },
		{ "/api/v1/searc", "/api/v1/searc" },
		{ "/api/v1/search?q=1", "/api/v1/search" },
	};
	struct conn c = { 4, "10.9.0.1", "10.9.0.2", 46000, ROUTE_PORT };
	char req[160], name[160];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", cases[i].path);
		c.cport = 46000 + i;
		snapshot(ROUTED);
		__u64 before = row_count("GET", cases[i].route, 2);

		seg(&c, C2S, req, "routes");
		seg(&c, S2C, "HTTP/1.1 200 OK\r\n\r\n", "routes");
		snapshot(ROUTED);
		snprintf(name, sizeof(name), "routes: %s counts as %s", cases[i].path, cases[i].route);
		check_report(row_count("GET", cases[i].route, 2) == before + 1, name, NULL);
	}
	{
		struct httpmon_opts o = {};
		char longer[80];

		memset(longer, 'a', sizeof(longer));
		longer[0] = '/';
		longer[50] = '*';
		longer[51] = 0;
		CHECK(httpmon_opts_add_route(&o, "static/*") == -EINVAL &&
			      httpmon_opts_add_route(&o, "/static") == -EINVAL &&
			      httpmon_opts_add_route(&o, "/a b/*") == -EINVAL &&
			      httpmon_opts_add_route(&o, "/a*/*") == -EINVAL &&
			      httpmon_opts_add_route(&o, "/a?/*") == -EINVAL &&
			      httpmon_opts_add_route(&o, longer) == -EINVAL &&
			      httpmon_opts_add_route(&o, "*") == -EINVAL,
		      "routes: malformed ones refused");
		for (int i = 0; i < HTTP_MAX_ROUTES; i++) {
			snprintf(longer, sizeof(longer), "/r%d/*", i);
			httpmon_opts_add_route(&o, longer);
		}
		CHECK(o.nroutes == HTTP_MAX_ROUTES &&
			      httpmon_opts_add_route(&o, "/one-more/*") == -EINVAL &&
			      httpmon_opts_add_route(&o, "/r1/*") == -EINVAL,
		      "routes: 8 at most, none twice");
	}
}

/* A load balancer before httpmon on the chain: the span names both
 * instances and the backend the LB chose for the request. */
static void run_lb(void)
{
	struct lb_service_key svc = { .proto = 6 };
	struct lb_service_conf sc = { .sched = LB_SCHED_RR };
	struct lb_backend_addr be = {};
	struct lb_backend_conf bc = { .fwd = LB_FWD_NAT, .weight = 1 };
	const char *chain[] = { "lbt", INST, CAPPED, ROUTED };
	struct conn vip = { 4, "10.9.0.1", "10.9.0.100", 45000, PORT };
	struct conn real = { 4, "10.9.0.1", "10.9.0.2", 45000, PORT };
	struct sl_instance lbi, hi;
	struct lb_conf conf = {};
	__u32 be_id = 0;
	int err;

	lb_parse_endpoint("10.9.0.100:8080", true, &svc.family, svc.addr, &svc.port);
	lb_parse_endpoint("10.9.0.2:8080", false, &be.family, be.addr, &be.port);
	err = lb_create(ctx, "lbt");
	err = err ?: lb_service_add(ctx, "lbt", &svc, &sc);
	err = err ?: lb_backend_add(ctx, "lbt", &svc, &be, &bc);
	err = err ?: sl_chain_set(ctx, DEV, SL_HOOK_TC_IN, chain, 4);
	err = err ?: lb_list(ctx, "lbt", &conf);
	if (!check_report(!err, "lb: a service with one backend, before httpmon",
			  err ? sl_errmsg() : NULL))
		return;
	if (conf.n == 1 && conf.svcs[0].nbackends == 1)
		be_id = conf.svcs[0].backends[0].id;
	lb_conf_free(&conf);
	sl_instance_get(ctx, "lbt", &lbi);
	sl_instance_get(ctx, INST, &hi);
	drain_spans();
	/* The request to the VIP, NATed to the backend by the LB; the answer
	 * from the backend seen on the way out (TC egress runs httpmon only). */
	seg(&vip, C2S, GET_TP(TP_OK), "lb");
	seg_at(&real, S2C, SL_HOOK_TC_IN, "HTTP/1.1 200 OK\r\n\r\n", 19, "lb");
	if (!check_report(drain_spans() == 1, "lb: one span", NULL))
		return;
	CHECK(be_id && last_span.lb_backend == be_id, "lb: span names the backend chosen");
	CHECK(last_span.nslots == 2 && last_span.slots[0] == lbi.slot &&
		      last_span.slots[1] == hi.slot,
	      "lb: span's NF path is [lbt, httptest]");
	CHECK(ntohl(last_span.server[0]) == 0x0a090002, "lb: server is the backend");
}

/* ns per packet, averaged by the kernel over the repeats. */
static void run_bench(void)
{
	static __u8 pkt[SEG_MAX];
	struct pkt_spec udp = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 17,
				.sport = 5000, .dport = 5001, .payload = 18 };
	struct pkt_spec ack = { .family = 4, .src = "10.9.0.1", .dst = "10.9.0.2", .proto = 6,
				.sport = 5000, .dport = PORT, .tcp_flags = 0x10 };
	const char *req = "GET /api/users/12345 HTTP/1.1\r\nHost: service.example\r\n"
			  "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
	const char *req_tp = "GET /api/users/12345 HTTP/1.1\r\nHost: service.example\r\n"
			     "User-Agent: curl/7.88.1\r\nAccept: */*\r\ntraceparent: " TP_OK "\r\n\r\n";
	struct conn c = v4;
	__u32 ns;
	size_t n;

	n = pkt_build(&udp, pkt);
	run_frame(SL_HOOK_TC_IN, pkt, n, 200000, &ns);
	printf("BENCH: httpmon non-HTTP packet (UDP 64 B): %u ns/packet\n", ns);
	n = pkt_build(&ack, pkt);
	run_frame(SL_HOOK_TC_IN, pkt, n, 200000, &ns);
	printf("BENCH: httpmon empty ACK on the service port: %u ns/packet\n", ns);
	c.cport = 44000;
	n = build_seg(&c, C2S, req, strlen(req), pkt);
	run_frame(SL_HOOK_TC_IN, pkt, n, 200000, &ns);
	printf("BENCH: httpmon request (%zu B, no traceparent): %u ns/packet\n", n, ns);
	c.cport = 44001;
	n = build_seg(&c, C2S, req_tp, strlen(req_tp), pkt);
	run_frame(SL_HOOK_TC_IN, pkt, n, 200000, &ns);
	printf("BENCH: httpmon request (%zu B, traceparent): %u ns/packet\n", n, ns);
	n = build_seg(&c, S2C, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40, pkt);
	run_frame(SL_HOOK_TC_IN, pkt, n, 200000, &ns);
	printf("BENCH: httpmon response (no request outstanding): %u ns/packet\n", ns);
}

int main(int argc, char **argv)
{
	struct httpmon_opts o = {}, capo = { .max_templates = 4 }, ro = {};
	bool bench = argc > 1 && !strcmp(argv[1], "--bench");
	int err;

	if (unshare(CLONE_NEWNET)) {
		printf("FAIL: cannot create a network namespace: %s\n", strerror(errno));
		return 1;
	}
	if (system("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1") ||
	    system("ip link add " DEV " type veth peer name " PEER " && ip link set " DEV
		   " up && ip link set " PEER " up")) {
		printf("FAIL: cannot create the test interfaces\n");
		return 1;
	}
	ifindex = sl_ifindex(DEV);
	unlink(FAIL_PCAP);
	err = sl_open(&ctx, SL_OPEN_WRITE);
	if (!check_report(!err, "open state", err ? sl_errmsg() : NULL))
		return check_exit();
	httpmon_opts_add_port(&o, "8080");
	httpmon_opts_add_port(&capo, "9090");
	err = httpmon_attach(ctx, DEV, INST, &o);
	if (bench) { /* one instance on the chain, as in a deployment */
		if (check_report(!err, "attach " INST, err ? sl_errmsg() : NULL))
			run_bench();
		goto out;
	}
	err = err ?: httpmon_attach(ctx, DEV, CAPPED, &capo);
	httpmon_opts_add_port(&ro, "7070");
	err = err ?: httpmon_opts_add_route(&ro, "/static/*");
	err = err ?: httpmon_opts_add_route(&ro, "/users/*");
	err = err ?: httpmon_opts_add_route(&ro, "/users/admin/*");
	err = err ?: httpmon_opts_add_route(&ro, "/api/v1/search/*");
	err = err ?: httpmon_attach(ctx, DEV, ROUTED, &ro);
	if (!check_report(!err, "attach " INST ", " CAPPED " and " ROUTED " to " DEV,
			  err ? sl_errmsg() : NULL))
		goto out;
	ring_fd = httpmon_spans_fd(ctx);
	ring = ring_fd < 0 ? NULL : ring_buffer__new(ring_fd, on_span, NULL, NULL);
	if (!check_report(ring, "open the span ring", NULL))
		goto out;
	{
		struct httpmon_opts bad = {};

		CHECK(httpmon_opts_add_port(&bad, "0") == -EINVAL &&
			      httpmon_opts_add_port(&bad, "65536") == -EINVAL &&
			      httpmon_opts_add_port(&bad, "80x") == -EINVAL &&
			      !httpmon_opts_add_port(&bad, "80") &&
			      httpmon_opts_add_port(&bad, "80") == -EINVAL,
		      "ports: out of range, not a number, repeated refused");
		bad.nports = 0;
		CHECK(httpmon_load(ctx, "noports2", &bad) == -EINVAL &&
			      sl_instance_get(ctx, "noports2", &(struct sl_instance){}) == -ENOENT,
		      "ports: none refused, no instance left");
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], 40010 + i);
	run_span();
	run_huge();
	run_other();
	run_ignore();
	run_cap();
	run_routes();
	run_lb();
out:
	httpmon_info_free(&info);
	ring_buffer__free(ring);
	if (ring_fd >= 0)
		close(ring_fd);
	sl_reset(ctx);
	sl_close(ctx);
	return check_exit();
}
