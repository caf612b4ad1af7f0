/* SPDX-License-Identifier: GPL-2.0 */
/* sluiced: the REST/JSON daemon over libsluice. */
#ifndef SLUICED_H
#define SLUICED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>

struct sl_ctx;

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
	const char *content_type; /* request headers, or NULL */
	const char *accept;
};

/* A streamed answer (GET /v1/events): lines as they come. */
struct api_stream;

struct api_resp {
	int status;
	json_t *body; /* owned; NULL: no body (204) */
	char allow[64]; /* the Allow header of a 405 */
	/* Instead of body: a text answer (owned, malloc'd) of content_type... */
	char *text;
	size_t text_len;
	const char *content_type;
	/* ...or a stream (status 200), read with api_stream_read() and freed
	 * with api_stream_free() by the caller. */
	struct api_stream *stream;
};

/* Runs the route matching method and path; fills resp (always). */
void api_dispatch(struct api_req *req, struct api_resp *resp);
/* Frees what resp owns (body, text, stream). */
void api_resp_free(struct api_resp *resp);
/* Opens the namespace's state: sl_open() in the daemon; the fuzz harness
 * points it at a stub so requests are only parsed and validated. */
extern int (*api_state_open)(struct sl_ctx **ctx, unsigned int flags);

/* Fills buf with the next lines of the stream, waiting for events; returns
 * the bytes written, 0 at the end (count reached), or -1 when the stream
 * must end in error (the client at client_fd went away, the reader failed,
 * or api_stopping was set). */
ssize_t api_stream_read(struct api_stream *s, int client_fd, char *buf, size_t max);
/* Closes the reader and restores the sampling it changed. */
void api_stream_free(struct api_stream *s);
extern volatile int api_stopping;

/* Routes. The core table lives in api.c; an NF's resources live in their
 * own file (cmd/sluiced/api_<nf>.c) and register with API_ROUTE, which
 * puts a pointer in the section sl_api_routes that api_dispatch() also
 * walks. */
typedef int (*api_handler)(struct api_req *req, struct api_resp *resp);
struct api_route {
	const char *method;
	const char *pattern; /* segments; "{x}" captures one */
	api_handler fn;
	const char *const *query; /* allowed query arguments (NULL: none) */
};
#define API_ROUTE(var, method, pattern, fn, ...)                               \
	static const struct api_route var = { method, pattern, fn, __VA_ARGS__ }; \
	static const struct api_route *const var##_ptr                         \
		__attribute__((used, section("sl_api_routes"))) = &var

/* Long-running jobs of the daemon (health checks, exporters): each runs in
 * its own thread from start-up until api_stopping is set, and must return
 * within about a second of that. Registered like routes. */
struct api_job {
	const char *name;
	void *(*fn)(void *arg);
};
#define API_JOB(var, name, fn)                                                 \
	static const struct api_job var = { name, fn };                        \
	static const struct api_job *const var##_ptr                           \
		__attribute__((used, section("sl_api_jobs"))) = &var
/* Starts every registered job; stops and joins them. */
int api_jobs_start(void);
void api_jobs_stop(void);

/* Helpers for handlers in other files. */
/* Sets resp to status and body (owned); returns status. */
int api_ok(struct api_resp *resp, int status, json_t *body);
/* Answers a failed libsluice call with sl_errmsg() and a status from err. */
int api_lib_error(struct api_resp *resp, int err, const char *field);
/* A query argument's value, or NULL. */
const char *api_query(const struct api_req *req, const char *key);
/* The body as a JSON object whose keys are all in allowed (NULL-terminated);
 * NULL (resp set) otherwise. */
json_t *api_body_object(const struct api_req *req, struct api_resp *resp,
			const char *const *allowed);
/* Opens the state for reading (*ctx NULL when there is none) or writing;
 * non-zero (resp set) on failure. */
int api_open_read(struct sl_ctx **ctx, struct api_resp *resp);
int api_open_write(struct sl_ctx **ctx, struct api_resp *resp);
void api_ctx_close(struct sl_ctx *ctx);
/* The body's required "dev": an existing interface's name; NULL (resp set:
 * 400 when missing, 404 when no such interface) otherwise. */
const char *api_body_dev(json_t *body, struct api_resp *resp);

/* Prints the route table, one "METHOD PATTERN" a line. */
void api_print_routes(void);
/* Sets resp to {"error": msg, "field": field} with status. */
int api_error(struct api_resp *resp, int status, const char *field,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
