// SPDX-License-Identifier: GPL-2.0
#include <stdarg.h>
#include <stdio.h>
#include "out.h"

#define OUT_DEPTH 16

static bool json;
static int depth;
static bool need_comma[OUT_DEPTH];

void out_init(bool j)
{
	json = j;
	depth = 0;
	need_comma[0] = false;
}

bool out_json(void)
{
	return json;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_key(const char *key)
{
	if (need_comma[depth])
		putchar(',');
	need_comma[depth] = true;
	if (key && depth > 0) {
		json_string(key);
		putchar(':');
	}
}

static void open_any(const char *key, char c)
{
	if (!json)
		return;
	json_key(key);
	putchar(c);
	if (depth < OUT_DEPTH - 1)
		depth++;
	need_comma[depth] = false;
}

static void close_any(char c)
{
	if (!json)
		return;
	putchar(c);
	if (depth > 0)
		depth--;
}

void out_open_obj(const char *key) { open_any(key, '{'); }
void out_close_obj(void) { close_any('}'); }
void out_open_arr(const char *key) { open_any(key, '['); }
void out_close_arr(void) { close_any(']'); }

void out_str(const char *key, const char *fmt, const char *v)
{
	if (json) {
		json_key(key);
		json_string(v);
	} else if (fmt) {
		printf(fmt, v);
	}
}

void out_u64(const char *key, const char *fmt, __u64 v)
{
	if (json) {
		json_key(key);
		printf("%llu", (unsigned long long)v);
	} else if (fmt) {
		printf(fmt, (unsigned long long)v);
	}
}

void out_bool(const char *key, const char *fmt, bool v)
{
	if (json) {
		json_key(key);
		printf(v ? "true" : "false");
	} else if (fmt) {
		printf(fmt, v ? "yes" : "no");
	}
}

void out_text(const char *fmt, ...)
{
	va_list ap;

	if (json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

void out_done(void)
{
	if (json)
		putchar('\n');
	fflush(stdout);
}
