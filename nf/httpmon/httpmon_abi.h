/* SPDX-License-Identifier: GPL-2.0 */
/* HTTP monitor NF: structures shared between its BPF program and control
 * code.
 *
 * At TC, on configured TCP ports, the first segment of each HTTP/1.x request
 * gives the method, a path template and an optional W3C traceparent; the
 * first segment of the response gives the status. One request per
 * connection is timed at a time (a pipelined request behind it is counted,
 * not timed). Histograms are kept per service port, method, template and
 * status class; a request with a traceparent also yields a span record in
 * the ring http_spans. */
#ifndef SLUICE_HTTPMON_ABI_H
#define SLUICE_HTTPMON_ABI_H

#define HTTP_MAX_PORTS 8
/* Path template bytes with the NUL: longer paths end in a star segment. */
#define HTTP_TMPL_LEN 64
/* Path segments kept in a template; deeper paths end in a star segment. */
#define HTTP_TMPL_SEGS 3
/* Distinct templates per instance (the rest count as "other"). */
#define HTTP_TMPL_DEFAULT 64
#define HTTP_TMPL_MAX 1024
/* Request-target bytes examined for the path (a longer path, query
 * excluded, counts as "other"). */
#define HTTP_TARGET_SCAN 256
/* A traceparent header line must start in the first HTTP_TP_SCAN bytes of
 * the request's first segment; HTTP_LOAD bytes are read so its value fits. */
#define HTTP_TP_SCAN 1024
#define HTTP_LOAD 1152
/* Scratch buffer: a power of two above HTTP_LOAD, so masked indexes stay
 * inside without another check. */
#define HTTP_BUF 2048
/* Connections timed at once (LRU: the oldest idle ones go first). */
#define HTTP_CONNS 65536
/* An outstanding request older than this is given up when the next
 * request of its connection comes (its response was never seen). */
#define HTTP_STALE_NS (60ULL * 1000000000ULL)
/* Span ring bytes (shared by the namespace's httpmon instances). */
#define HTTP_SPANS_RING (1 << 20)

enum http_method {
	HTTP_M_GET = 1,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
	HTTP_M_MAX,
};

/* Template ids below 16 are fixed; others are hashes of the template text
 * with the top bit set (so they never collide with these). */
enum http_tmpl_fixed {
	HTTP_TMPL_OTHER = 1, /* over the cap, too long, or not origin-form */
	HTTP_TMPL_PARTIAL = 2, /* request line not complete in its first segment */
};

/* Latency histogram bounds in microseconds (Prometheus-style "le"); the
 * last bucket is +Inf. */
#define HTTP_NBUCKETS 14
#define HTTP_BUCKET_BOUNDS_US                                                  \
	{ 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,       \
	  1000000, 2500000, 5000000, 10000000 }

/* Configured routes, each a prefix and a final star: a path that starts
 * with the prefix counts as the route, whatever follows, before any
 * template is made of it. The longest prefix is checked first; prefixes
 * are compared 8 bytes at a time under masks. */
#define HTTP_MAX_ROUTES 8
#define HTTP_ROUTE_WORDS 6
#define HTTP_ROUTE_PREFIX_MAX (HTTP_ROUTE_WORDS * 8)

struct http_route {
	__u64 word[HTTP_ROUTE_WORDS]; /* the prefix, zero-padded */
	__u64 mask[HTTP_ROUTE_WORDS]; /* 0xff for each prefix byte */
	__u32 len; /* prefix bytes */
	__u32 name_len;
	char name[HTTP_TMPL_LEN]; /* the route as configured, zero-padded */
};

struct http_config {
	__u16 ports[HTTP_MAX_PORTS]; /* host order */
	__u32 nports;
	__u32 max_templates;
	__u32 nroutes;
	__u32 pad;
	struct http_route routes[HTTP_MAX_ROUTES];
};

struct http_stat_key {
	__u16 port; /* service (server) port */
	__u8 method; /* enum http_method */
	__u8 status_class; /* 1..5 */
	__u32 pad;
	__u64 tmpl; /* template id */
};

/* Per-CPU; buckets are not cumulative (user space sums them). */
struct http_stat {
	__u64 count;
	__u64 sum_ns;
	__u64 buckets[HTTP_NBUCKETS];
};

struct http_tmpl {
	char path[HTTP_TMPL_LEN];
};

/* A connection, seen from the client: addresses in network order (IPv4 in
 * [0]), ports in host order. */
struct http_conn_key {
	__u32 client[4];
	__u32 server[4];
	__u16 cport;
	__u16 sport;
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
};

enum http_conn_flags {
	HTTP_C_TRACE = 1 << 0, /* a valid traceparent came with the request */
};

/* The outstanding request of a connection. */
struct http_conn {
	__u64 t_req; /* bpf_ktime_get_ns() of the request's first segment */
	__u64 tmpl;
	__u8 method;
	__u8 hook; /* where the request was seen: TC ingress = server side */
	__u8 flags; /* enum http_conn_flags */
	__u8 trace_flags;
	__u8 nslots;
	__u8 pad[3];
	__u32 lb_backend;
	__u8 trace_id[16];
	__u8 parent_id[8];
	__u32 slots[SL_CHAIN_MAX]; /* instances the request passed */
};

/* One span record in the ring http_spans. */
#define HTTP_SPAN_VERSION 1
struct http_span {
	__u16 version;
	__u16 size;
	__u32 slot; /* the httpmon instance */
	__u64 t_start; /* CLOCK_MONOTONIC ns: request, response */
	__u64 t_end;
	__u8 trace_id[16];
	__u8 parent_id[8];
	__u32 client[4];
	__u32 server[4];
	__u16 cport;
	__u16 sport;
	__u16 status;
	__u8 family;
	__u8 method;
	__u8 hook; /* of the request */
	__u8 trace_flags;
	__u8 nslots;
	__u8 pad;
	__u32 lb_backend;
	__u32 slots[SL_CHAIN_MAX];
	__u64 tmpl;
	char path[HTTP_TMPL_LEN]; /* the template's text ("" for fixed ids) */
};

/* Per-CPU counters of an instance. */
struct http_counters {
	__u64 requests; /* request first segments tracked */
	__u64 responses; /* responses matched to a request */
	__u64 partial; /* request line not complete in its first segment */
	__u64 bad; /* a method then something that is not HTTP/1.x */
	__u64 pipelined; /* a request while another was outstanding */
	__u64 stale; /* outstanding requests given up */
	__u64 orphans; /* responses without a request */
	__u64 informational; /* 1xx responses (not final) */
	__u64 tp_valid; /* traceparent headers taken */
	__u64 tp_invalid; /* traceparent headers refused */
	__u64 tmpl_overflow; /* requests counted as "other" over the cap */
	__u64 spans; /* span records written */
	__u64 spans_lost; /* span records lost: ring full */
	__u64 stats_full; /* histogram map full */
};

#endif
