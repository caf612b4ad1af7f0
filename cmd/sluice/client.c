// SPDX-License-Identifier: GPL-2.0
/* sluice: a small HTTP/1.1 client over the daemon's Unix socket, and the
 * choice between the daemon and direct mode. One connection a request
 * ("Connection: close"); answers are read to the end of the stream. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include "sluice.h"
#include "client.h"

#define CL_DEFAULT_SOCKET SL_RUN_DIR "/sluiced.sock"
#define CL_TIMEOUT_S 120 /* a load compiles and verifies BPF programs */

static const char *cl_path;
static bool cl_forced_direct, cl_verbose;
static int cl_mode = -1; /* -1: not decided; 0: direct; 1: daemon */

void cl_setup(const char *socket_path, bool no_daemon, bool verbose)
{
	const char *env = getenv("SLUICE_NO_DAEMON");

	cl_path = socket_path ?: getenv("SLUICE_SOCKET");
	if (!cl_path || !*cl_path)
		cl_path = CL_DEFAULT_SOCKET;
	cl_forced_direct = no_daemon || (env && *env && strcmp(env, "0"));
	cl_verbose = verbose;
}

static int cl_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CL_TIMEOUT_S };
	int fd;

	if (strlen(cl_path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, cl_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

/* Decodes a chunked body in place; returns its length or -1. */
static long dechunk(char *b, size_t n)
{
	char *in = b, *end = b + n, *out = b;

	for (;;) {
		char *eol = memmem(in, end - in, "\r\n", 2), *x;
		unsigned long sz;

		if (!eol)
			return -1;
		sz = strtoul(in, &x, 16);
		if (x == in)
			return -1;
		in = eol + 2;
		if (!sz)
			return out - b;
		if ((size_t)(end - in) < sz)
			return -1;
		memmove(out, in, sz);
		out += sz;
		in += sz;
		if (end - in >= 2 && in[0] == '\r' && in[1] == '\n')
			in += 2;
	}
}

/* One request on a connected fd; *status and the body (NUL-terminated,
 * caller frees) or -1 with errno. Closes fd. */
static int http_on(int fd, const char *method, const char *path, const char *ctype,
		   const char *body, size_t blen, int *status, char **out)
{
	size_t len = 0, cap = 8192;
	char head[1024], *buf = NULL, *sep, *hdr_end;
	bool chunked;
	int n, ret = -1;

	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: sluiced\r\nUser-Agent: sluice\r\n"
		     "Connection: close\r\nAccept: application/json\r\n"
		     "%s%s%sContent-Length: %zu\r\n\r\n",
		     method, path, body ? "Content-Type: " : "", body ? ctype : "",
		     body ? "\r\n" : "", blen);
	if (n < 0 || (size_t)n >= sizeof(head)) {
		errno = ENAMETOOLONG;
		goto out;
	}
	if (write_all(fd, head, n) || (blen && write_all(fd, body, blen)))
		goto out;
	buf = malloc(cap);
	if (!buf)
		goto out;
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb)
				goto out;
			buf = nb;
		}
		r = recv(fd, buf + len, cap - len - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (!r)
			break;
		len += r;
	}
	buf[len] = 0;
	if (sscanf(buf, "HTTP/%*d.%*d %d", status) != 1 ||
	    !(hdr_end = strstr(buf, "\r\n\r\n"))) {
		errno = EPROTO;
		goto out;
	}
	*hdr_end = 0;
	chunked = strcasestr(buf, "\r\nTransfer-Encoding: chunked") != NULL;
	sep = hdr_end + 4;
	len -= sep - buf;
	memmove(buf, sep, len + 1);
	if (chunked) {
		long l = dechunk(buf, len);

		if (l < 0) {
			errno = EPROTO;
			goto out;
		}
		buf[l] = 0;
	}
	ret = 0;
	*out = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return ret;
}

static int http(const char *method, const char *path, const char *ctype,
		const char *body, size_t blen, int *status, char **out)
{
	int fd = cl_connect();

	if (fd < 0)
		return -1;
	return http_on(fd, method, path, ctype, body, blen, status, out);
}

/* The network namespace of the process at the other end of fd, compared
 * with ours: 1 same, 0 other, -1 unknown. */
static int peer_same_netns(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct stat a, b;
	char p[64];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || cr.pid <= 0)
		return -1;
	snprintf(p, sizeof(p), "/proc/%d/ns/net", cr.pid);
	if (stat(p, &a) || stat("/proc/self/ns/net", &b))
		return -1;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Asks the daemon for its pin folder (GET /v1/status): 1 same namespace,
 * 0 other, -1 unknown (no state there). The folder is named after the
 * namespace cookie, computed here as lib/ctx.c does. */
static int status_same_netns(void)
{
	char *body = NULL, mine[128];
	json_t *j, *pin;
	__u64 cookie;
	socklen_t len = sizeof(cookie);
	int status, fd, ret = -1;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len)) {
		close(fd);
		return -1;
	}
	close(fd);
	snprintf(mine, sizeof(mine), SL_PIN_ROOT "/netns-%llu", (unsigned long long)cookie);
	if (http("GET", "/v1/status", NULL, NULL, 0, &status, &body) || status != 200) {
		free(body);
		return -1;
	}
	j = json_loads(body, 0, NULL);
	pin = json_object_get(j, "pin_dir");
	if (json_is_string(pin))
		ret = !strcmp(json_string_value(pin), mine);
	json_decref(j);
	free(body);
	return ret;
}

bool cl_daemon(void)
{
	const char *why = NULL;
	int fd, same;

	if (cl_mode >= 0)
		return cl_mode;
	cl_mode = 0;
	if (!cl_path)
		cl_setup(NULL, false, false);
	if (cl_forced_direct) {
		why = "--no-daemon";
		goto out;
	}
	fd = cl_connect();
	if (fd < 0) {
		why = errno == ENOENT ? "no socket" : strerror(errno);
		goto out;
	}
	same = peer_same_netns(fd);
	close(fd);
	if (same < 0)
		same = status_same_netns();
	if (same == 0) {
		why = "it serves another network namespace";
		goto out;
	}
	if (same < 0) {
		why = "cannot tell which network namespace it serves";
		goto out;
	}
	cl_mode = 1;
out:
	if (cl_verbose) {
		if (cl_mode)
			fprintf(stderr, "sluice: mode: daemon (sluiced at %s)\n", cl_path);
		else
			fprintf(stderr, "sluice: mode: direct (sluiced at %s: %s)\n",
				cl_path, why);
	}
	return cl_mode;
}

int cl_request(const char *method, const char *path, const char *ctype,
	       const char *body, size_t len, int *status, json_t **reply)
{
	char *ans = NULL;

	*reply = NULL;
	*status = 0;
	if (cl_verbose)
		fprintf(stderr, "sluice: sluiced: %s %s\n", method, path);
	if (http(method, path, ctype, body, len, status, &ans)) {
		fprintf(stderr, "sluice: sluiced at %s: %s\n", cl_path, strerror(errno));
		return 1;
	}
	if (*ans)
		*reply = json_loads(ans, 0, NULL);
	free(ans);
	return 0;
}

void cl_print_error(int status, json_t *reply)
{
	const char *err = json_string_value(json_object_get(reply, "error"));
	const char *field = json_string_value(json_object_get(reply, "field"));

	if (!err)
		fprintf(stderr, "sluice: sluiced answered HTTP %d\n", status);
	else if (field && !strstr(err, field))
		fprintf(stderr, "sluice: %s: %s\n", field, err);
	else
		fprintf(stderr, "sluice: %s\n", err);
}

int cl_call(const char *method, const char *path, json_t *body, json_t **reply)
{
	char *text = NULL;
	json_t *j = NULL;
	int status = 0, ret = 1;

	if (reply)
		*reply = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text) {
			fprintf(stderr, "sluice: out of memory\n");
			return 1;
		}
	}
	if (cl_request(method, path, "application/json", text, text ? strlen(text) : 0,
		       &status, &j))
		goto out;
	if (status >= 200 && status < 300) {
		if (reply) {
			*reply = j;
			j = NULL;
		}
		ret = 0;
	} else {
		cl_print_error(status, j);
	}
out:
	json_decref(j);
	free(text);
	return ret;
}

void cl_escape(char *buf, size_t len, const char *s)
{
	size_t off = strlen(buf);

	for (; *s && off + 4 < len; s++) {
		unsigned char c = *s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~')
			buf[off++] = c;
		else
			off += snprintf(buf + off, len - off, "%%%02X", c);
	}
	buf[off] = 0;
}
