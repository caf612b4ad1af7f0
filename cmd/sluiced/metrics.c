// SPDX-License-Identifier: GPL-2.0
/* Prometheus text exposition format 0.0.4: the page writer (families,
 * samples, escaping, checks), GET /metrics, and the core collector. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "sluice.h"
#include "firewall.h"
#include "events.h"
#include "sluiced.h"
#include "metrics.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

#define METRICS_NAME_MAX 128

struct metrics_out {
	char *buf;
	size_t len, cap;
	char family[METRICS_NAME_MAX]; /* the family being written */
	enum metrics_type type;
	char (*seen)[METRICS_NAME_MAX]; /* families written so far */
	size_t nseen, capseen;
	char *error; /* set: the page is refused */
};

/* ---- the writer ------------------------------------------------------------ */

void metrics_fail(struct metrics_out *m, const char *fmt, ...)
{
	va_list ap;

	if (m->error)
		return; /* the first error is the one to report */
	va_start(ap, fmt);
	if (vasprintf(&m->error, fmt, ap) < 0)
		m->error = NULL;
	va_end(ap);
	if (!m->error)
		m->error = strdup("out of memory");
}

static void put(struct metrics_out *m, const char *s, size_t n)
{
	if (m->error)
		return;
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap ? m->cap : 16384;
		char *b;

		while (cap < m->len + n + 1)
			cap *= 2;
		b = realloc(m->buf, cap);
		if (!b) {
			metrics_fail(m, "out of memory");
			return;
		}
		m->buf = b;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = 0;
}

static void puts_(struct metrics_out *m, const char *s)
{
	put(m, s, strlen(s));
}

/* Escapes text: backslash and newline always, the double quote in label
 * values (quote true) but not in HELP text, as the format says. */
static void put_escaped(struct metrics_out *m, const char *s, bool quote)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			puts_(m, "\\\\");
		else if (*p == '\n')
			puts_(m, "\\n");
		else if (*p == '"' && quote)
			puts_(m, "\\\"");
		else
			put(m, p, 1);
	}
}

static bool name_ok(const char *s, bool metric)
{
	if (!*s || strlen(s) >= METRICS_NAME_MAX || (*s >= '0' && *s <= '9'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || (metric && *p == ':')))
			return false;
	return true;
}

static const char *const type_names[] = { "counter", "gauge", "histogram" };

void metrics_family(struct metrics_out *m, const char *name,
		    enum metrics_type type, const char *help)
{
	size_t n = strlen(name);

	if (!name_ok(name, true))
		return metrics_fail(m, "metric name '%s' is not valid", name);
	if (type == METRICS_COUNTER && (n < 6 || strcmp(name + n - 6, "_total")))
		return metrics_fail(m, "counter '%s' must end in _total", name);
	for (size_t i = 0; i < m->nseen; i++)
		if (!strcmp(m->seen[i], name))
			return metrics_fail(m, "family '%s' written twice", name);
	if (m->nseen == m->capseen) {
		size_t cap = m->capseen ? 2 * m->capseen : 64;
		void *s = realloc(m->seen, cap * sizeof(*m->seen));

		if (!s)
			return metrics_fail(m, "out of memory");
		m->seen = s;
		m->capseen = cap;
	}
	snprintf(m->seen[m->nseen++], METRICS_NAME_MAX, "%s", name);
	snprintf(m->family, sizeof(m->family), "%s", name);
	m->type = type;
	puts_(m, "# HELP ");
	puts_(m, name);
	puts_(m, " ");
	put_escaped(m, help, false);
	puts_(m, "\n# TYPE ");
	puts_(m, name);
	puts_(m, " ");
	puts_(m, type_names[type]);
	puts_(m, "\n");
}

/* Whether a sample called name belongs to the current family. */
static bool in_family(const struct metrics_out *m, const char *name)
{
	size_t n = strlen(m->family);

	if (!*m->family)
		return false;
	if (m->type != METRICS_HISTOGRAM)
		return !strcmp(name, m->family);
	return !strncmp(name, m->family, n) &&
	       (!strcmp(name + n, "_bucket") || !strcmp(name + n, "_sum") ||
		!strcmp(name + n, "_count"));
}

/* name{l1="v1",...} with an optional extra label (histogram's le). */
static void put_series(struct metrics_out *m, const char *name,
		       const char *const *labels, const char *xkey,
		       const char *xval)
{
	bool first = true;

	if (!in_family(m, name))
		return metrics_fail(m, "sample '%s' outside its family (current: '%s')",
				    name, m->family);
	puts_(m, name);
	for (int i = 0; labels && labels[i]; i += 2) {
		if (!name_ok(labels[i], false) || !strncmp(labels[i], "__", 2))
			return metrics_fail(m, "label name '%s' is not valid", labels[i]);
		if (!labels[i + 1])
			return metrics_fail(m, "label '%s' of '%s' has no value",
					    labels[i], name);
		puts_(m, first ? "{" : ",");
		first = false;
		puts_(m, labels[i]);
		puts_(m, "=\"");
		put_escaped(m, labels[i + 1], true);
		puts_(m, "\"");
	}
	if (xkey) {
		puts_(m, first ? "{" : ",");
		first = false;
		puts_(m, xkey);
		puts_(m, "=\"");
		puts_(m, xval);
		puts_(m, "\"");
	}
	if (!first)
		puts_(m, "}");
}

/* The shortest text that reads back as the same double. */
static void format_double(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
	} else if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(buf, len, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, len, "%.17g", v);
	}
}

void metrics_sample(struct metrics_out *m, const char *name,
		    const char *const *labels, double value)
{
	char num[64] = " ";

	put_series(m, name, labels, NULL, NULL);
	format_double(num + 1, sizeof(num) - 2, value);
	strcat(num, "\n");
	puts_(m, num);
}

void metrics_sample_u64(struct metrics_out *m, const char *name,
			const char *const *labels, __u64 value)
{
	char num[32];

	put_series(m, name, labels, NULL, NULL);
	snprintf(num, sizeof(num), " %llu\n", (unsigned long long)value);
	puts_(m, num);
}

void metrics_histogram(struct metrics_out *m, const char *const *labels,
		       const double *bounds, const __u64 *buckets, int nbuckets,
		       __u64 inf_bucket, double sum)
{
	char name[METRICS_NAME_MAX + 8], le[64], num[32];
	__u64 total = 0;

	if (m->type != METRICS_HISTOGRAM)
		return metrics_fail(m, "'%s' is not a histogram", m->family);
	snprintf(name, sizeof(name), "%s_bucket", m->family);
	for (int i = 0; i < nbuckets; i++) {
		if (i && bounds[i] <= bounds[i - 1])
			return metrics_fail(m, "%s: bucket bounds must increase", m->family);
		total += buckets[i];
		format_double(le, sizeof(le), bounds[i]);
		put_series(m, name, labels, "le", le);
		snprintf(num, sizeof(num), " %llu\n", (unsigned long long)total);
		puts_(m, num);
	}
	total += inf_bucket;
	put_series(m, name, labels, "le", "+Inf");
	snprintf(num, sizeof(num), " %llu\n", (unsigned long long)total);
	puts_(m, num);
	snprintf(name, sizeof(name), "%s_sum", m->family);
	metrics_sample(m, name, labels, sum);
	snprintf(name, sizeof(name), "%s_count", m->family);
	metrics_sample_u64(m, name, labels, total);
}

/* ---- the core collector ------------------------------------------------------ */

/* One instance (or the root, slot 0) and its counters. */
struct inst_stats {
	struct sl_instance inst;
	struct sl_nf_stats st;
	__u64 drops[SL_DROP_MAX];
};

struct inst_list {
	struct sl_ctx *ctx;
	struct inst_stats *v;
	size_t n, cap;
	int err;
};

static int add_instance(struct inst_list *l, const struct sl_instance *inst)
{
	struct inst_stats *s;
	int err;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;

		s = realloc(l->v, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		l->v = s;
		l->cap = cap;
	}
	s = &l->v[l->n];
	s->inst = *inst;
	err = sl_slot_stats(l->ctx, inst->slot, &s->st, s->drops);
	if (err)
		return err;
	l->n++;
	return 0;
}

static int inst_cb(const struct sl_instance *inst, void *arg)
{
	struct inst_list *l = arg;

	l->err = add_instance(l, inst);
	return l->err ? 1 : 0;
}

/* The root programs (slot 0) under the name the event stream uses. */
static int list_instances(struct sl_ctx *ctx, struct inst_list *l)
{
	struct sl_instance root = { .name = "root", .type = "root", .slot = 0 };
	int err;

	l->ctx = ctx;
	err = add_instance(l, &root);
	if (err)
		return err;
	err = sl_instance_foreach(ctx, inst_cb, l);
	return l->err ?: err;
}

enum nf_field { F_PACKETS, F_BYTES, F_PASSED, F_REDIRECTED, F_DROPPED };

static const struct {
	const char *name;
	const char *help;
} nf_families[] = {
	[F_PACKETS] = { "sluice_nf_packets_total", "Packets seen by an NF instance (instance \"root\": the root programs)." },
	[F_BYTES] = { "sluice_nf_bytes_total", "Bytes seen by an NF instance." },
	[F_PASSED] = { "sluice_nf_passed_total", "Packets that left the chain to the kernel at this instance." },
	[F_REDIRECTED] = { "sluice_nf_redirected_total", "Packets this instance redirected to another interface." },
	[F_DROPPED] = { "sluice_nf_dropped_total", "Packets this instance dropped, all reasons." },
};

static __u64 nf_value(const struct sl_nf_stats *st, enum nf_field f)
{
	switch (f) {
	case F_PACKETS: return st->packets;
	case F_BYTES: return st->bytes;
	case F_PASSED: return st->passed;
	case F_REDIRECTED: return st->redirected;
	case F_DROPPED: return st->dropped;
	}
	return 0;
}

static void write_nf(struct metrics_out *m, const struct inst_list *l)
{
	for (size_t f = 0; f < sizeof(nf_families) / sizeof(nf_families[0]); f++) {
		metrics_family(m, nf_families[f].name, METRICS_COUNTER, nf_families[f].help);
		for (size_t i = 0; i < l->n; i++) {
			const struct inst_stats *s = &l->v[i];

			metrics_sample_u64(m, nf_families[f].name,
				(const char *const[]){ "instance", s->inst.name,
						       "type", s->inst.type, NULL },
				nf_value(&s->st, f));
		}
	}
	/* Every named reason, zeros included: rate() needs the series to exist
	 * before the first drop. SL_DROP_MAX bounds the cardinality. */
	metrics_family(m, "sluice_nf_drops_total", METRICS_COUNTER,
		       "Packets an NF instance dropped, by drop reason.");
	for (size_t i = 0; i < l->n; i++) {
		const struct inst_stats *s = &l->v[i];

		for (unsigned int r = 0; r < SL_DROP_MAX; r++) {
			const char *reason = sl_drop_reason_name(r);

			if (!reason)
				continue;
			metrics_sample_u64(m, "sluice_nf_drops_total",
				(const char *const[]){ "instance", s->inst.name,
						       "type", s->inst.type,
						       "reason", reason, NULL },
				s->drops[r]);
		}
	}
}

/* Rule sets and counters of every firewall instance in l (others: NULL). */
struct fw_all {
	struct fw_ruleset *rs;
	struct fw_counter **cnt;
	size_t n;
};

static void fw_all_free(struct fw_all *a)
{
	for (size_t i = 0; a->cnt && i < a->n; i++) {
		if (a->cnt[i])
			fw_ruleset_free(&a->rs[i]);
		free(a->cnt[i]);
	}
	free(a->rs);
	free(a->cnt);
}

static int fw_all_read(struct sl_ctx *ctx, const struct inst_list *l,
		       struct fw_all *a)
{
	int err = 0;

	a->n = l->n;
	a->rs = calloc(l->n + 1, sizeof(*a->rs));
	a->cnt = calloc(l->n + 1, sizeof(*a->cnt));
	if (!a->rs || !a->cnt)
		return sl_err(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n && !err; i++)
		if (!strcmp(l->v[i].inst.type, FW_TYPE))
			err = fw_read(ctx, l->v[i].inst.name, &a->rs[i], &a->cnt[i], NULL);
	return err;
}

/* Per-rule series per firewall instance: rules beyond this many are summed
 * into one series (rule "rest"), so a 65,536-rule set costs 1,026 series
 * per family, not 65,537, and the totals still add up. */
#define FW_METRICS_RULES_MAX 1024

static void fw_rule_sample(struct metrics_out *m, const char *fam, const char *inst,
			   const char *idx, const char *text, __u64 v)
{
	metrics_sample_u64(m, fam, (const char *const[]){ "instance", inst, "rule", idx,
							   "text", text, NULL }, v);
}

/* One per-rule family; rule "default" is the default policy. */
static void write_fw_family(struct metrics_out *m, const struct inst_list *l,
			    const struct fw_all *a, bool bytes)
{
	const char *fam = bytes ? "sluice_fw_rule_bytes_total" : "sluice_fw_rule_packets_total";
	char text[1024], idx[16];

	metrics_family(m, fam, METRICS_COUNTER, bytes ?
		       "Bytes matched by a firewall rule (rule \"default\": the default policy; \"rest\": rules past the 1024th)." :
		       "Packets matched by a firewall rule (rule \"default\": the default policy; \"rest\": rules past the 1024th).");
	for (size_t i = 0; i < a->n; i++) {
		const struct fw_ruleset *rs = &a->rs[i];
		const char *inst = l->v[i].inst.name;
		__u64 rest = 0;

		if (!a->cnt[i])
			continue;
		for (__u32 r = 0; r < rs->n; r++) {
			const struct fw_counter *c = &a->cnt[i][r];

			if (r >= FW_METRICS_RULES_MAX) {
				rest += bytes ? c->bytes : c->packets;
				continue;
			}
			fw_rule_format(&rs->rules[r], text, sizeof(text));
			snprintf(idx, sizeof(idx), "%u", r + 1);
			fw_rule_sample(m, fam, inst, idx, text, bytes ? c->bytes : c->packets);
		}
		if (rs->n > FW_METRICS_RULES_MAX) {
			snprintf(text, sizeof(text), "rules %u to %u", FW_METRICS_RULES_MAX + 1, rs->n);
			fw_rule_sample(m, fam, inst, "rest", text, rest);
		}
		snprintf(text, sizeof(text), "default %s",
			 rs->default_action == FW_DROP ? "drop" : "accept");
		fw_rule_sample(m, fam, inst, "default", text,
			       bytes ? a->cnt[i][rs->n].bytes : a->cnt[i][rs->n].packets);
	}
}

static int core_collect(struct metrics_out *m, struct sl_ctx *ctx)
{
	struct inst_list l = {};
	struct sl_events_stats ev = {};
	struct fw_all fw = {};
	int err = 0;

	metrics_family(m, "sluice_build_info", METRICS_GAUGE,
		       "Always 1: the versions of sluiced and the libbpf it runs with.");
	metrics_sample(m, "sluice_build_info",
		       (const char *const[]){ "version", SLUICE_VERSION, "libbpf",
					      libbpf_version_string(), NULL }, 1);
	metrics_family(m, "sluice_state_loaded", METRICS_GAUGE,
		       "1 when this network namespace has sluice state, 0 otherwise.");
	metrics_sample(m, "sluice_state_loaded", NULL, ctx ? 1 : 0);
	if (ctx) {
		err = list_instances(ctx, &l);
		if (!err)
			err = sl_events_stats(ctx, &ev);
		if (err) {
			metrics_fail(m, "counters: %s", sl_errmsg());
			goto out;
		}
	}
	write_nf(m, &l);
	if (ctx && fw_all_read(ctx, &l, &fw)) {
		err = -EIO;
		metrics_fail(m, "firewall counters: %s", sl_errmsg());
		goto out;
	}
	write_fw_family(m, &l, &fw, false);
	write_fw_family(m, &l, &fw, true);
	metrics_family(m, "sluice_events_emitted_total", METRICS_COUNTER,
		       "Events written to the ring buffer.");
	if (ctx)
		metrics_sample_u64(m, "sluice_events_emitted_total", NULL, ev.emitted);
	metrics_family(m, "sluice_events_lost_total", METRICS_COUNTER,
		       "Events lost because the ring buffer was full.");
	if (ctx)
		metrics_sample_u64(m, "sluice_events_lost_total", NULL, ev.lost);
out:
	fw_all_free(&fw);
	free(l.v);
	return err;
}

/* ---- the page ------------------------------------------------------------------ */

extern const struct metrics_collector *const __start_sl_metrics[] __attribute__((weak));
extern const struct metrics_collector *const __stop_sl_metrics[] __attribute__((weak));

int metrics_render(char **text, size_t *len)
{
	size_t n = __start_sl_metrics ? __stop_sl_metrics - __start_sl_metrics : 0;
	struct metrics_out m = {};
	struct sl_ctx *ctx = NULL;
	int err = api_state_open(&ctx, 0);

	if (err == -ENOENT) {
		ctx = NULL;
		err = 0;
	}
	if (err) {
		metrics_fail(&m, "cannot open the state: %s", sl_errmsg());
		goto out;
	}
	err = core_collect(&m, ctx);
	for (size_t i = 0; i < n && !err && !m.error; i++) {
		*m.family = 0; /* a collector starts with a family */
		err = __start_sl_metrics[i]->fn(&m, ctx);
		if (err && !m.error)
			metrics_fail(&m, "collector %s: %s", __start_sl_metrics[i]->name,
				     strerror(-err));
	}
	if (ctx)
		sl_close(ctx);
out:
	free(m.seen);
	if (m.error) {
		free(m.buf);
		*text = m.error;
		*len = strlen(m.error);
		return err ?: -EINVAL;
	}
	if (!m.buf)
		m.buf = strdup("");
	*text = m.buf;
	*len = m.len;
	return m.buf ? 0 : -ENOMEM;
}

static int h_metrics(struct api_req *req, struct api_resp *resp)
{
	char *text;
	size_t len;
	int err = metrics_render(&text, &len);

	if (err) {
		logm(LOG_LVL_ERROR, "metrics: %s", text ? text : strerror(-err));
		api_error(resp, 500, NULL, "metrics: %s", text ? text : strerror(-err));
		free(text);
		return resp->status;
	}
	resp->text = text;
	resp->text_len = len;
	resp->content_type = METRICS_CONTENT_TYPE;
	resp->status = 200;
	return 200;
}

API_ROUTE(metrics_route, "GET", "/metrics", h_metrics, NULL);
