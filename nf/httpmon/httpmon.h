/* SPDX-License-Identifier: GPL-2.0 */
/* HTTP monitor NF control code: load an instance for some service ports,
 * read its histograms back, and read the span records of the namespace. */
#ifndef SLUICE_HTTPMON_H
#define SLUICE_HTTPMON_H

#include <stdbool.h>
#include <stddef.h>
#include "sluice.h"
#include "httpmon_abi.h"

#define HTTPMON_TYPE "httpmon"

struct httpmon_opts {
	__u16 ports[HTTP_MAX_PORTS];
	__u32 nports;
	__u32 max_templates; /* 0: HTTP_TMPL_DEFAULT */
	__u32 nroutes;
	char routes[HTTP_MAX_ROUTES][HTTP_TMPL_LEN]; /* "/static/" then a star */
};

/* Adds port to o; -EINVAL (message naming it) when out of range, repeated
 * or one too many. */
int httpmon_opts_add_port(struct httpmon_opts *o, const char *text);

/* Adds a route: '/', then up to 47 more printable bytes (no space, '?'
 * or '#'), then '*'. -EINVAL (message naming it) otherwise, or when
 * repeated or one too many. */
int httpmon_opts_add_route(struct httpmon_opts *o, const char *text);

/* Loads instance name (replaced, with fresh counters, when it exists). */
int httpmon_load(struct sl_ctx *ctx, const char *name,
		 const struct httpmon_opts *o);
/* Loads name and puts it on dev's TC ingress and egress chains; a refusal
 * leaves no new instance behind. */
int httpmon_attach(struct sl_ctx *ctx, const char *dev, const char *name,
		   const struct httpmon_opts *o);

/* Takes name off dev's TC chains; deletes it when no chain runs it. */
int httpmon_detach(struct sl_ctx *ctx, const char *dev, const char *name);

/* One histogram row, summed over CPUs. */
struct httpmon_row {
	char instance[SL_NAME_MAX];
	__u16 port;
	__u8 method;
	__u8 status_class;
	__u64 tmpl;
	char route[HTTP_TMPL_LEN];
	struct http_stat st;
};

struct httpmon_info {
	char name[SL_NAME_MAX];
	struct http_config cfg;
	struct http_counters cnt; /* summed over CPUs */
	__u32 ntemplates;
	struct httpmon_row *rows;
	size_t nrows;
};

/* Reads instance name: configuration, counters and rows. */
int httpmon_read(struct sl_ctx *ctx, const char *name, struct httpmon_info *info);
void httpmon_info_free(struct httpmon_info *info);
/* Calls cb for each httpmon instance of the namespace. */
int httpmon_foreach(struct sl_ctx *ctx,
		    int (*cb)(const struct sl_instance *inst, void *arg),
		    void *arg);

const char *httpmon_method_name(unsigned int method);
/* The template's text: the path template, "other" or "partial". */
void httpmon_route_name(__u64 tmpl, const char *path, char *buf, size_t len);
/* The q-quantile (0..1) in seconds, interpolated inside its bucket as
 * Prometheus' histogram_quantile does; the +Inf bucket gives its lower
 * bound. 0 when empty. */
double httpmon_quantile(const struct http_stat *st, double q);
/* Bucket upper bounds in seconds (HTTP_NBUCKETS - 1 of them). */
extern const double httpmon_bucket_le[HTTP_NBUCKETS - 1];

/* The span ring of the namespace (shared by its httpmon instances): one
 * reader at a time, as each record is consumed once. -ENOENT when no
 * httpmon instance was ever loaded here. */
int httpmon_spans_fd(struct sl_ctx *ctx);
/* Instance names by slot, for the span's NF path: names[slot] ("" when
 * free), SL_MAX_SLOTS entries. */
int httpmon_slot_names(struct sl_ctx *ctx, char (*names)[SL_NAME_MAX]);

#endif
