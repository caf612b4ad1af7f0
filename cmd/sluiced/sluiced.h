/* SPDX-License-Identifier: GPL-2.0 */
/* sluiced: the REST/JSON daemon over libsluice. */
#ifndef SLUICED_H
#define SLUICED_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Logging: to stderr in the foreground, to syslog otherwise. */
enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };
void log_init(enum log_level level, bool use_syslog);
int log_level_parse(const char *s, enum log_level *level);
void logm(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Requests larger than this get 413. */
#define API_BODY_MAX (16u << 20)
#define API_PARAMS_MAX 4
#define API_QUERY_MAX 8

struct api_req {
	const char *method;
	const char *path;
	const char *params[API_PARAMS_MAX]; /* {captures} of the pattern */
	int nparams;
	const char *qkey[API_QUERY_MAX]; /* query arguments */
	const char *qval[API_QUERY_MAX];
	int nquery;
	const char *body;
	size_t body_len;
};

struct api_resp {
	int status;
	json_t *body; /* owned; NULL: no body (204) */
	char allow[64]; /* the Allow header of a 405 */
};

/* Runs the route matching method and path; fills resp (always). */
void api_dispatch(struct api_req *req, struct api_resp *resp);
/* Prints the route table, one "METHOD PATTERN" a line. */
void api_print_routes(void);
/* Sets resp to {"error": msg, "field": field} with status. */
int api_error(struct api_resp *resp, int status, const char *field,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
