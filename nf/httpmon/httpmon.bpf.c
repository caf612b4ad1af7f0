// SPDX-License-Identifier: GPL-2.0
/* HTTP monitor NF (TC): on configured TCP ports, parses the first segment of
 * HTTP/1.x requests (method, path template, traceparent) and responses
 * (status), times request to response per connection and counts it in a
 * histogram; requests with a traceparent become span records. It never
 * changes a verdict: every packet goes on (SL_NEXT). Packet bytes are read
 * with bpf_skb_load_bytes into a per-CPU scratch buffer, every index is
 * masked into it, and every scan is a bpf_loop with a fixed bound. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "pipeline.h"
#include "parse.h"
#include "httpmon_abi.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 http_slot = 0;

#define BUF_MASK (HTTP_BUF - 1)
#define TMPL_MASK (HTTP_TMPL_LEN - 1)
#define E2BIG_ 7
#define EEXIST_ 17

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_config);
} http_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, HTTP_CONNS);
	__type(key, struct http_conn_key);
	__type(value, struct http_conn);
} http_conns SEC(".maps");

/* Sized by the loader: max_templates. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HTTP_TMPL_DEFAULT);
	__type(key, __u64);
	__type(value, struct http_tmpl);
} http_tmpls SEC(".maps");

/* Sized by the loader: ports x methods x (templates + fixed) x classes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__type(key, struct http_stat_key);
	__type(value, struct http_stat);
} http_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_counters);
} http_counters SEC(".maps");

/* Shared by every httpmon instance of the namespace: one reader drains
 * them all. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HTTP_SPANS_RING);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} http_spans SEC(".maps");

/* Path template builder state (bpf_loop context). */
enum scan_end {
	SCAN_MORE = 0,
	SCAN_SPACE, /* the space after the target: pos is where */
	SCAN_DATA_END, /* the segment ended inside the target */
	SCAN_BAD, /* a byte no request-target has */
};

struct tmpl_scan {
	__u32 pos; /* buffer index being looked at */
	__u32 len; /* bytes loaded */
	__u32 end; /* enum scan_end */
	__u32 olen; /* template bytes written */
	__u32 seg_start; /* template offset of the current segment's '/' */
	__u32 seg_len;
	__u32 nsegs;
	bool in_seg;
	bool seg_digits; /* only digits so far */
	bool seg_hexish; /* only hex digits and '-' so far */
	bool seg_has_digit;
	bool path_done; /* '?' or '#' seen: only the space is looked for */
	bool truncated; /* segments or bytes left out: ends in a star segment */
	char out[HTTP_TMPL_LEN];
};

/* Finds the line starting with "traceparent:" (any case) among the header
 * lines; pos is where the headers start. */
struct tp_scan {
	__u32 pos;
	__u32 limit; /* a line must start before this */
	__u32 found; /* buffer index after the ':' ; 0: none */
};

/* The scan states live in the map value, not on the stack: the verifier
 * then sees their fields as unknown scalars and checks each bpf_loop
 * callback once, instead of once per combination of known flag values. */
struct http_scratch {
	__u8 buf[HTTP_BUF];
	struct tmpl_scan ts;
	struct tp_scan tp;
};

/* One per hook: TC ingress may interrupt TC egress on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_HOOK_MAX);
	__type(key, __u32);
	__type(value, struct http_scratch);
} http_scratch SEC(".maps");

/* bpf_loop's context must be on the stack: it points to the scratch. */
struct scan_ctx {
	struct http_scratch *sc;
};

static __always_inline bool is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

static __always_inline bool is_hexish(__u8 c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == '-';
}

static __always_inline void tmpl_put(struct tmpl_scan *s, char c)
{
	if (s->olen < HTTP_TMPL_LEN - 1) {
		s->out[s->olen & TMPL_MASK] = c;
		s->olen++;
	}
}

/* Ends the current segment: numbers and long hex/uuid-like words become
 * "{id}", so /users/123 and /users/456 share a template. */
static __always_inline void tmpl_close_seg(struct tmpl_scan *s)
{
	if (!s->in_seg)
		return;
	s->in_seg = false;
	if (s->seg_digits || (s->seg_hexish && s->seg_has_digit && s->seg_len >= 8)) {
		s->olen = s->seg_start + 1;
		tmpl_put(s, '{');
		tmpl_put(s, 'i');
		tmpl_put(s, 'd');
		tmpl_put(s, '}');
	}
	s->nsegs++;
}

/* Room for "/{id}" plus the closing star segment after a segment's start. */
#define TMPL_ROOM 8

static long tmpl_step(__u32 i, void *arg)
{
	struct http_scratch *sc = ((struct scan_ctx *)arg)->sc;
	struct tmpl_scan *s = &sc->ts;
	__u32 pos = s->pos;
	__u8 c;

	if (pos >= s->len) {
		s->end = SCAN_DATA_END;
		return 1;
	}
	c = sc->buf[pos & BUF_MASK];
	s->pos = pos + 1;
	if (c == ' ') {
		tmpl_close_seg(s);
		s->pos = pos;
		s->end = SCAN_SPACE;
		return 1;
	}
	if (c < 0x21 || c >= 0x7f) {
		s->end = SCAN_BAD;
		return 1;
	}
	if (s->path_done || s->truncated)
		return 0;
	if (c == '?' || c == '#') {
		tmpl_close_seg(s);
		s->path_done = true;
		return 0;
	}
	if (c == '/') {
		tmpl_close_seg(s);
		return 0;
	}
	if (!s->in_seg) {
		/* A new segment: is there room for it and the tail? */
		if (s->nsegs >= HTTP_TMPL_SEGS ||
		    s->olen + TMPL_ROOM >= HTTP_TMPL_LEN) {
			s->truncated = true;
			return 0;
		}
		s->in_seg = true;
		s->seg_start = s->olen;
		s->seg_len = 0;
		s->seg_digits = true;
		s->seg_hexish = true;
		s->seg_has_digit = false;
		tmpl_put(s, '/');
	}
	s->seg_len++;
	s->seg_digits = s->seg_digits && is_digit(c);
	s->seg_hexish = s->seg_hexish && is_hexish(c);
	s->seg_has_digit = s->seg_has_digit || is_digit(c);
	if (s->olen + 3 >= HTTP_TMPL_LEN) {
		/* A segment too long to keep whole: drop it, end in a star segment. */
		s->olen = s->seg_start;
		s->in_seg = false;
		s->truncated = true;
		return 0;
	}
	tmpl_put(s, c);
	return 0;
}

/* Hash of the template text (zero-padded): the template's id. */
static __always_inline __u64 tmpl_hash(const char *out)
{
	__u64 h = 0xcbf29ce484222325ULL;
	int i;

#pragma unroll
	for (i = 0; i < HTTP_TMPL_LEN / 8; i++) {
		__u64 w;

		__builtin_memcpy(&w, out + i * 8, 8);
		h ^= w;
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h | (1ULL << 63);
}

static __always_inline __u8 lower(__u8 c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* The method at the start of the segment: its enum and length (with the
 * space), or 0. */
static __always_inline int parse_method(const __u8 *b, __u32 *mlen)
{
	switch (b[0]) {
	case 'G':
		if (b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
			return *mlen = 4, HTTP_M_GET;
		break;
	case 'H':
		if (b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ')
			return *mlen = 5, HTTP_M_HEAD;
		break;
	case 'P':
		if (b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ')
			return *mlen = 5, HTTP_M_POST;
		if (b[1] == 'U' && b[2] == 'T' && b[3] == ' ')
			return *mlen = 4, HTTP_M_PUT;
		if (b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' &&
		    b[5] == ' ')
			return *mlen = 6, HTTP_M_PATCH;
		break;
	case 'D':
		if (b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' &&
		    b[5] == 'E' && b[6] == ' ')
			return *mlen = 7, HTTP_M_DELETE;
		break;
	case 'C':
		if (b[1] == 'O' && b[2] == 'N' && b[3] == 'N' && b[4] == 'E' &&
		    b[5] == 'C' && b[6] == 'T' && b[7] == ' ')
			return *mlen = 8, HTTP_M_CONNECT;
		break;
	case 'O':
		if (b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' &&
		    b[5] == 'N' && b[6] == 'S' && b[7] == ' ')
			return *mlen = 8, HTTP_M_OPTIONS;
		break;
	case 'T':
		if (b[1] == 'R' && b[2] == 'A' && b[3] == 'C' && b[4] == 'E' &&
		    b[5] == ' ')
			return *mlen = 6, HTTP_M_TRACE;
		break;
	}
	return 0;
}

/* "HTTP/1.x NNN": the status, or 0. */
static __always_inline int parse_status(const __u8 *b)
{
	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' ||
	    b[4] != '/' || b[5] != '1' || b[6] != '.' ||
	    (b[7] != '0' && b[7] != '1') || b[8] != ' ')
		return 0;
	if (b[9] < '1' || b[9] > '5' || !is_digit(b[10]) || !is_digit(b[11]))
		return 0;
	if (b[12] != ' ' && b[12] != '\r')
		return 0;
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

static long tp_step(__u32 i, void *arg)
{
	static const char name[] = "traceparent:";
	struct http_scratch *sc = ((struct scan_ctx *)arg)->sc;
	struct tp_scan *s = &sc->tp;
	__u32 p = s->pos + i;
	const __u8 *b = sc->buf;
	int k;

	if (p >= s->limit)
		return 1;
	if (b[(p - 1) & BUF_MASK] != '\n')
		return 0;
	if (b[p & BUF_MASK] == '\r' || b[p & BUF_MASK] == '\n')
		return 1; /* the empty line: end of the headers */
#pragma unroll
	for (k = 0; k < 12; k++)
		if (lower(b[(p + k) & BUF_MASK]) != name[k])
			return 0;
	s->found = p + 12;
	return 1;
}

static __always_inline int hexval(__u8 c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is not valid in a traceparent */
}

/* Reads n bytes of lower-case hex at b[p...]; returns whether all were
 * hex and not all zero. */
static __always_inline bool hex_bytes(const __u8 *b, __u32 p, __u8 *out, int n)
{
	__u8 any = 0;
	int k;

#pragma unroll
	for (k = 0; k < 16; k++) {
		int hi, lo;

		if (k >= n)
			break;
		hi = hexval(b[(p + 2 * k) & BUF_MASK]);
		lo = hexval(b[(p + 2 * k + 1) & BUF_MASK]);
		if (hi < 0 || lo < 0)
			return false;
		out[k] = hi << 4 | lo;
		any |= out[k];
	}
	return any;
}

/* version "00" - 32 hex trace id - 16 hex parent id - 2 hex flags, then
 * the end of the value. v is the first byte after the ':'. */
static __always_inline bool parse_traceparent(const __u8 *b, __u32 v, __u32 len,
					      struct http_conn *c)
{
	__u8 flags[1];
	int k;

#pragma unroll
	for (k = 0; k < 4; k++)
		if (b[v & BUF_MASK] == ' ' || b[v & BUF_MASK] == '\t')
			v++;
	if (v + 56 > len)
		return false; /* cut short by the segment */
	if (b[v & BUF_MASK] != '0' || b[(v + 1) & BUF_MASK] != '0' ||
	    b[(v + 2) & BUF_MASK] != '-' || b[(v + 35) & BUF_MASK] != '-' ||
	    b[(v + 52) & BUF_MASK] != '-')
		return false;
	if (!hex_bytes(b, v + 3, c->trace_id, 16) ||
	    !hex_bytes(b, v + 36, c->parent_id, 8))
		return false;
	if (hexval(b[(v + 53) & BUF_MASK]) < 0 || hexval(b[(v + 54) & BUF_MASK]) < 0)
		return false;
	flags[0] = hexval(b[(v + 53) & BUF_MASK]) << 4 | hexval(b[(v + 54) & BUF_MASK]);
	/* Version 00 ends here: a longer value is not version 00. */
	if (b[(v + 55) & BUF_MASK] != '\r' && b[(v + 55) & BUF_MASK] != ' ' &&
	    b[(v + 55) & BUF_MASK] != '\t')
		return false;
	c->trace_flags = flags[0];
	return true;
}

/* Loads len (1..max) bytes at off; the barrier keeps clang from passing a
 * copy of len whose bounds the verifier has not seen checked. */
static __always_inline int load_bytes(struct __sk_buff *skb, __u32 off,
				      void *buf, __u32 len32, __u32 max)
{
	__u64 len = len32;

	asm volatile("" : "+r"(len));
	if (len > max)
		return -1;
	asm volatile("" : "+r"(len));
	if (len < 1)
		return -1;
	return bpf_skb_load_bytes(skb, off, buf, len);
}

static __always_inline struct http_counters *counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&http_counters, &zero);
}

#define COUNT(cnt, field)                                                      \
	do {                                                                   \
		if (cnt)                                                       \
			cnt->field++;                                          \
	} while (0)

static __always_inline void conn_key(struct http_conn_key *k, struct sl_meta *m,
				     bool request)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->family = m->flags & SL_F_IPV4 ? 4 : 6;
	if (request) {
		__builtin_memcpy(k->client, m->saddr, 16);
		__builtin_memcpy(k->server, m->daddr, 16);
		k->cport = m->sport;
		k->sport = m->dport;
	} else {
		__builtin_memcpy(k->client, m->daddr, 16);
		__builtin_memcpy(k->server, m->saddr, 16);
		k->cport = m->dport;
		k->sport = m->sport;
	}
}

/* The template's id: registered in http_tmpls unless the cap is reached. */
static __always_inline __u64 tmpl_id(struct tmpl_scan *s,
				     struct http_counters *cnt)
{
	struct http_tmpl *t;
	__u64 id;
	long err;

	if (s->olen == 0)
		tmpl_put(s, '/');
	if (s->truncated) {
		tmpl_put(s, '/');
		tmpl_put(s, '*');
	}
	/* A segment replaced by {id} leaves its old bytes behind the end. */
#pragma unroll
	for (int i = 0; i < HTTP_TMPL_LEN; i++)
		if (i >= s->olen)
			s->out[i] = 0;
	id = tmpl_hash(s->out);
	if (bpf_map_lookup_elem(&http_tmpls, &id))
		return id;
	t = (struct http_tmpl *)s->out;
	err = bpf_map_update_elem(&http_tmpls, &id, t, BPF_NOEXIST);
	if (err && err != -EEXIST_) {
		COUNT(cnt, tmpl_overflow);
		return HTTP_TMPL_OTHER;
	}
	return id;
}

/* The first configured route whose prefix the path starts with: its name
 * goes into the template buffer. The target is buf[start, end). */
static __always_inline bool route_match(const struct http_config *cfg,
					struct http_scratch *sc, __u32 start,
					__u32 end)
{
	struct tmpl_scan *s = &sc->ts;
	int r, k;

	for (r = 0; r < HTTP_MAX_ROUTES; r++) {
		const struct http_route *rt = &cfg->routes[r];
		__u64 diff = 0;

		if (r >= cfg->nroutes)
			break;
		if (start + rt->len > end)
			continue;
#pragma unroll
		for (k = 0; k < HTTP_ROUTE_WORDS; k++) {
			__u64 w;

			/* start is at most 8 (a method): index stays under 1 KiB. */
			__builtin_memcpy(&w, &sc->buf[(start + k * 8) & 1023], 8);
			diff |= (w ^ rt->word[k]) & rt->mask[k];
		}
		if (diff)
			continue;
		__builtin_memcpy(s->out, rt->name, HTTP_TMPL_LEN);
		s->out[HTTP_TMPL_LEN - 1] = 0;
		s->olen = rt->name_len < HTTP_TMPL_LEN ? rt->name_len : HTTP_TMPL_LEN - 1;
		s->truncated = false;
		return true;
	}
	return false;
}

static __always_inline void http_request(struct __sk_buff *skb,
					 struct sl_meta *m,
					 const struct http_config *cfg,
					 struct http_scratch *sc, __u32 poff,
					 __u32 plen, int method, __u32 mlen,
					 struct http_counters *cnt)
{
	struct scan_ctx sctx = { .sc = sc };
	struct tmpl_scan *s = &sc->ts;
	struct tp_scan *tp = &sc->tp;
	__u8 *buf = sc->buf;
	struct http_conn_key key;
	struct http_conn c = {}, *old;
	__u32 len = plen < HTTP_LOAD ? plen : HTTP_LOAD;
	__u64 now = bpf_ktime_get_ns();

	/* The whole first part of the segment: target and headers. */
	if (load_bytes(skb, poff, buf, len, HTTP_LOAD))
		return;
	__builtin_memset(s, 0, sizeof(*s));
	__builtin_memset(tp, 0, sizeof(*tp));
	s->pos = mlen;
	s->len = len;
	bpf_loop(HTTP_TARGET_SCAN, tmpl_step, &sctx, 0);

	c.t_req = now;
	c.method = method;
	c.hook = m->hook;
	if (s->end == SCAN_BAD) {
		COUNT(cnt, bad);
		return;
	}
	if (s->end == SCAN_SPACE) {
		__u32 v = s->pos + 1; /* "HTTP/1.x\r\n" */

		if (v + 10 > len) {
			c.tmpl = HTTP_TMPL_PARTIAL;
		} else if (buf[v & BUF_MASK] != 'H' || buf[(v + 1) & BUF_MASK] != 'T' ||
			   buf[(v + 2) & BUF_MASK] != 'T' || buf[(v + 3) & BUF_MASK] != 'P' ||
			   buf[(v + 4) & BUF_MASK] != '/' || buf[(v + 5) & BUF_MASK] != '1' ||
			   buf[(v + 6) & BUF_MASK] != '.' || buf[(v + 8) & BUF_MASK] != '\r' ||
			   buf[(v + 9) & BUF_MASK] != '\n') {
			COUNT(cnt, bad);
			return;
		} else {
			if (buf[mlen & BUF_MASK] != '/') {
				c.tmpl = HTTP_TMPL_OTHER;
			} else {
				if (cfg->nroutes)
					route_match(cfg, sc, mlen, v - 1);
				c.tmpl = tmpl_id(s, cnt);
			}
			tp->pos = v + 10;
		}
	} else if (s->end == SCAN_DATA_END) {
		c.tmpl = HTTP_TMPL_PARTIAL;
	} else {
		c.tmpl = HTTP_TMPL_OTHER; /* a target longer than we look at */
	}
	if (c.tmpl == HTTP_TMPL_PARTIAL)
		COUNT(cnt, partial);

	if (tp->pos) {
		tp->limit = len < HTTP_TP_SCAN ? len : HTTP_TP_SCAN;
		bpf_loop(HTTP_TP_SCAN, tp_step, &sctx, 0);
		if (tp->found) {
			if (parse_traceparent(buf, tp->found, len, &c)) {
				c.flags |= HTTP_C_TRACE;
				COUNT(cnt, tp_valid);
			} else {
				COUNT(cnt, tp_invalid);
			}
		}
	}
	c.lb_backend = m->lb_backend;
	c.nslots = m->chain_pos < SL_CHAIN_MAX ? m->chain_pos : SL_CHAIN_MAX;
	__builtin_memcpy(c.slots, m->slots, sizeof(c.slots));

	conn_key(&key, m, true);
	old = bpf_map_lookup_elem(&http_conns, &key);
	if (old && old->t_req) {
		if (now - old->t_req < HTTP_STALE_NS) {
			COUNT(cnt, pipelined);
			return;
		}
		COUNT(cnt, stale);
	}
	bpf_map_update_elem(&http_conns, &key, &c, BPF_ANY);
	COUNT(cnt, requests);
}

static __always_inline __u32 bucket_of(__u64 ns)
{
	static const __u32 bounds[HTTP_NBUCKETS - 1] = HTTP_BUCKET_BOUNDS_US;
	__u64 us = ns / 1000;
	int i;

#pragma unroll
	for (i = 0; i < HTTP_NBUCKETS - 1; i++)
		if (us <= bounds[i])
			return i;
	return HTTP_NBUCKETS - 1;
}

static __always_inline void record(struct http_stat_key *k, __u64 ns,
				   struct http_counters *cnt)
{
	struct http_stat *st = bpf_map_lookup_elem(&http_stats, k);
	__u32 b = bucket_of(ns);

	if (!st) {
		struct http_stat zero = {};

		if (bpf_map_update_elem(&http_stats, k, &zero, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&http_stats, k)) {
			COUNT(cnt, stats_full);
			return;
		}
		st = bpf_map_lookup_elem(&http_stats, k);
		if (!st)
			return;
	}
	st->count++;
	st->sum_ns += ns;
	if (b < HTTP_NBUCKETS)
		st->buckets[b]++;
}

static __always_inline void emit_span(struct http_conn_key *k,
				      struct http_conn *c, struct sl_meta *m,
				      int status, __u64 now,
				      struct http_counters *cnt)
{
	struct http_span *sp;
	struct http_tmpl *t;

	sp = bpf_ringbuf_reserve(&http_spans, sizeof(*sp), 0);
	if (!sp) {
		COUNT(cnt, spans_lost);
		return;
	}
	sp->version = HTTP_SPAN_VERSION;
	sp->size = sizeof(*sp);
	sp->slot = http_slot;
	sp->t_start = c->t_req;
	sp->t_end = now;
	__builtin_memcpy(sp->trace_id, c->trace_id, 16);
	__builtin_memcpy(sp->parent_id, c->parent_id, 8);
	__builtin_memcpy(sp->client, k->client, 16);
	__builtin_memcpy(sp->server, k->server, 16);
	sp->cport = k->cport;
	sp->sport = k->sport;
	sp->status = status;
	sp->family = k->family;
	sp->method = c->method;
	sp->hook = c->hook;
	sp->trace_flags = c->trace_flags;
	sp->nslots = c->nslots;
	sp->pad = 0;
	sp->lb_backend = c->lb_backend ? c->lb_backend : m->lb_backend;
	__builtin_memcpy(sp->slots, c->slots, sizeof(sp->slots));
	sp->tmpl = c->tmpl;
	t = bpf_map_lookup_elem(&http_tmpls, &c->tmpl);
	if (t)
		__builtin_memcpy(sp->path, t->path, HTTP_TMPL_LEN);
	else
		__builtin_memset(sp->path, 0, HTTP_TMPL_LEN);
	bpf_ringbuf_submit(sp, 0);
	COUNT(cnt, spans);
}

static __always_inline void http_response(struct sl_meta *m, int status,
					  struct http_counters *cnt)
{
	struct http_stat_key sk = {};
	struct http_conn_key key;
	struct http_conn *c;
	__u64 now;

	conn_key(&key, m, false);
	c = bpf_map_lookup_elem(&http_conns, &key);
	if (!c || !c->t_req) {
		COUNT(cnt, orphans);
		return;
	}
	if (status < 200 && status != 101) {
		COUNT(cnt, informational); /* the final response follows */
		return;
	}
	now = bpf_ktime_get_ns();
	sk.port = key.sport;
	sk.method = c->method;
	sk.status_class = status / 100;
	sk.tmpl = c->tmpl;
	record(&sk, now - c->t_req, cnt);
	COUNT(cnt, responses);
	if (c->flags & HTTP_C_TRACE)
		emit_span(&key, c, m, status, now, cnt);
	c->t_req = 0; /* idle until the next request */
}

static __always_inline bool port_in(const struct http_config *cfg, __u16 port)
{
	int i;

#pragma unroll
	for (i = 0; i < HTTP_MAX_PORTS; i++)
		if (i < cfg->nports && cfg->ports[i] == port)
			return true;
	return false;
}

static __always_inline int httpmon_run(struct __sk_buff *skb, struct sl_meta *m)
{
	const struct http_config *cfg;
	struct http_counters *cnt;
	struct http_scratch *sc;
	__u32 zero = 0, hook = m->hook, poff, plen;
	__u8 head[16] = {}, doff;
	bool to_server, from_server;
	int method, status;
	__u32 mlen = 0;

	if (!(m->flags & SL_F_L4) || m->ip_proto != SL_IPPROTO_TCP ||
	    (m->flags & SL_F_FRAG))
		return SL_NEXT;
	cfg = bpf_map_lookup_elem(&http_config, &zero);
	if (!cfg)
		return SL_NEXT;
	to_server = port_in(cfg, m->dport);
	from_server = port_in(cfg, m->sport);
	if (!to_server && !from_server)
		return SL_NEXT;
	if (bpf_skb_load_bytes(skb, m->l4_off + 12, &doff, 1))
		return SL_NEXT;
	poff = m->l4_off + (doff >> 4) * 4;
	if (skb->len <= poff)
		return SL_NEXT; /* no payload */
	plen = skb->len - poff;
	if (plen < 4)
		return SL_NEXT; /* not even a method */
	if (load_bytes(skb, poff, head, plen < 16 ? plen : 16, 16))
		return SL_NEXT;
	cnt = counters();
	if (to_server) {
		method = parse_method(head, &mlen);
		if (method) {
			if (hook >= SL_HOOK_MAX)
				return SL_NEXT;
			sc = bpf_map_lookup_elem(&http_scratch, &hook);
			if (sc)
				http_request(skb, m, cfg, sc, poff, plen, method,
					     mlen, cnt);
			return SL_NEXT;
		}
	}
	if (from_server && plen >= 13) {
		status = parse_status(head);
		if (status)
			http_response(m, status, cnt);
	}
	return SL_NEXT;
}

SEC("tc")
int httpmon_tc(struct __sk_buff *skb)
{
	struct sl_meta *m = sl_meta_tc(skb);

	if (!m)
		return SL_TCX_NEXT;
	return sl_finish_tc(skb, m, http_slot, httpmon_run(skb, m));
}

/* XDP sees no HTTP here (no skb): packets go on, counted. */
SEC("xdp")
int httpmon_xdp(struct xdp_md *ctx)
{
	struct sl_meta *m = sl_meta_get(SL_HOOK_XDP);

	if (!m)
		return XDP_PASS;
	return sl_finish_xdp(ctx, m, http_slot, SL_NEXT);
}
