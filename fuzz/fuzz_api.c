// SPDX-License-Identifier: GPL-2.0
/* libFuzzer target for sluiced's REST request handling (cmd/sluiced/api.c):
 * route matching, query arguments, JSON and YAML body parsing and every
 * handler's field validation, through api_dispatch(), the function the HTTP
 * layer calls. No kernel state: api_state_open, the handlers' only way to
 * the namespace's state, is a stub that finds none (-ENOENT), so a handler
 * runs its validation and stops where it would open the state (reads then
 * answer as for a namespace without state, writes 404).
 *
 * Input: "METHOD PATH[?QUERY]\n" "CONTENT-TYPE\n" "ACCEPT\n" then the body;
 * the path and query are percent-decoded as libmicrohttpd does.
 *   make fuzz [FUZZ_TIME=60]   (build/fuzz/fuzz_api, corpus fuzz/corpus/api)
 *
 * Checked for every input: a status from 200 to 599; an error (>= 400) is
 * a JSON object with a string "error"; a 405 names the allowed methods; no
 * stream is ever opened. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sluice.h"
#include "../cmd/sluiced/sluiced.h"

void logm(enum log_level level, const char *fmt, ...)
{
}

static int no_state(struct sl_ctx **ctx, unsigned int flags)
{
	*ctx = NULL;
	return sl_err(-ENOENT, "no sluice state (fuzzing: the state is never opened)");
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* In place, as MHD_http_unescape(); '+' is a space in query arguments. */
static void unescape(char *s, bool plus)
{
	char *w = s;

	for (; *s; s++) {
		int h, l;

		if (*s == '%' && (h = hexval(s[1])) >= 0 && (l = hexval(s[2])) >= 0) {
			*w++ = (char)(h << 4 | l);
			s += 2;
		} else {
			*w++ = plus && *s == '+' ? ' ' : *s;
		}
	}
	*w = 0;
}

/* Cuts the next line off *p (NUL-terminated copy region); NULL at the end. */
static char *next_line(char **p, char *end)
{
	char *s = *p, *nl;

	if (s >= end)
		return NULL;
	nl = memchr(s, '\n', end - s);
	if (!nl)
		nl = end;
	*nl = 0;
	*p = nl < end ? nl + 1 : end;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_req req = {};
	struct api_resp resp = {};
	char *buf, *p, *end, *line, *sp, *q;
	const char *err;

	api_state_open = no_state;
	/* One byte more: each header line ends in a NUL. */
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	p = buf;
	end = buf + size;
	line = next_line(&p, end);
	if (!line || !(sp = strchr(line, ' ')))
		goto out;
	*sp = 0;
	req.method = line;
	req.path = sp + 1;
	q = strchr(sp + 1, '?');
	if (q) {
		*q++ = 0;
		/* key[=value]&...; past API_QUERY_MAX the daemon answers 400 first */
		while (q && *q && req.nquery < API_QUERY_MAX) {
			char *amp = strchr(q, '&'), *eq;

			if (amp)
				*amp++ = 0;
			eq = strchr(q, '=');
			if (eq)
				*eq++ = 0;
			unescape(q, true);
			if (eq)
				unescape(eq, true);
			req.qkey[req.nquery] = q;
			req.qval[req.nquery] = eq ? eq : "";
			req.nquery++;
			q = amp;
		}
	}
	unescape(sp + 1, false);
	req.content_type = next_line(&p, end);
	req.accept = next_line(&p, end);
	if (req.content_type && !*req.content_type)
		req.content_type = NULL;
	if (req.accept && !*req.accept)
		req.accept = NULL;
	req.body = p;
	req.body_len = end - p;

	api_dispatch(&req, &resp);

	if (resp.status < 200 || resp.status > 599) {
		fprintf(stderr, "status %d\n", resp.status);
		abort();
	}
	if (resp.stream) {
		fprintf(stderr, "a stream was opened without state\n");
		abort();
	}
	if (resp.status >= 400) {
		err = json_string_value(json_object_get(resp.body, "error"));
		if (!json_is_object(resp.body) || !err || !*err) {
			fprintf(stderr, "status %d without an error message\n", resp.status);
			abort();
		}
	}
	if (resp.status == 405 && !resp.allow[0])
		abort();
	if (resp.status != 204 && !resp.body && !resp.text) {
		fprintf(stderr, "status %d without a body\n", resp.status);
		abort();
	}
	api_resp_free(&resp);
out:
	free(buf);
	return 0;
}
