// SPDX-License-Identifier: GPL-2.0
/* sluiced: libsluice as REST/JSON resources, on a Unix socket (root only)
 * and optionally on a loopback TCP port with a bearer token.
 *
 *   sluiced [--socket PATH] [--foreground] [--log-level LEVEL]
 *           [--listen 127.0.0.1:PORT --token-file FILE]
 *           [--metrics-listen ADDR:PORT] [--otlp-endpoint URL] [--routes]
 *
 * The data plane is pinned in the kernel: starting, stopping or killing the
 * daemon changes nothing there. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <microhttpd.h>
#include "sluice.h"
#include "sluiced.h"
#include "api_otlp.h"

#define DEFAULT_SOCKET SL_RUN_DIR "/sluiced.sock"

/* ---- logging ------------------------------------------------------------- */

static enum log_level log_min = LOG_LVL_INFO;
static bool log_syslog;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(enum log_level level, bool use_syslog)
{
	log_min = level;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("sluiced", LOG_PID, LOG_DAEMON);
}

int log_level_parse(const char *s, enum log_level *level)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, level_names[i])) {
			*level = i;
			return 0;
		}
	}
	return -EINVAL;
}

void logm(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char msg[1024], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	/* One write per line: lines of concurrent requests do not mix. */
	fprintf(stderr, "%s.%03ld sluiced %s: %s\n", ts, now.tv_nsec / 1000000,
		level_names[level], msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = 0;
	logm(LOG_LVL_WARN, "http: %s", msg);
}

/* ---- HTTP ---------------------------------------------------------------- */

struct listener {
	const char *name; /* for logs: the socket path or address */
	const char *token; /* required bearer token, or NULL */
	bool metrics_only; /* --metrics-listen: GET /metrics and nothing else */
	struct MHD_Daemon *mhd;
};

/* One request in progress. */
struct conn_state {
	char *body;
	size_t len, cap;
	bool too_big;
	struct timespec start;
	struct api_req req;
};

static enum MHD_Result send_json(struct MHD_Connection *c, int status,
				 json_t *body, const char *allow,
				 const char *www_auth)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *text = NULL;
	size_t len = 0;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (text) {
			len = strlen(text);
			text[len] = 0;
		}
	}
	if (text) {
		/* A trailing newline keeps curl output readable. */
		char *t = realloc(text, len + 2);

		if (t) {
			text = t;
			text[len++] = '\n';
			text[len] = 0;
		}
		r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	} else {
		r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	}
	if (!r) {
		free(text);
		return MHD_NO;
	}
	if (text)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow && *allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (www_auth)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A text answer (export): resp->text is handed to MHD. */
static enum MHD_Result send_text(struct MHD_Connection *c, struct api_resp *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(resp->text_len, resp->text,
					    MHD_RESPMEM_MUST_FREE);
	if (!r)
		return MHD_NO;
	resp->text = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	ret = MHD_queue_response(c, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A streamed answer (events): chunked, read as events come. */
struct stream_conn {
	struct api_stream *s;
	int fd; /* the client's socket: the stream ends when it closes */
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_conn *sc = cls;
	ssize_t n = api_stream_read(sc->s, sc->fd, buf, max);

	if (n == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void stream_free(void *cls)
{
	struct stream_conn *sc = cls;

	api_stream_free(sc->s);
	free(sc);
	logm(LOG_LVL_DEBUG, "events: stream closed");
}

/* On success the response owns resp->stream (freed by stream_free). */
static enum MHD_Result send_stream(struct MHD_Connection *c, struct api_resp *resp)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct stream_conn *sc = calloc(1, sizeof(*sc));
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!sc)
		return MHD_NO;
	sc->s = resp->stream;
	sc->fd = ci ? ci->connect_fd : -1;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sc,
					      stream_free);
	if (!r) {
		free(sc);
		return MHD_NO;
	}
	resp->stream = NULL;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(c, resp->status, r);
	MHD_destroy_response(r); /* freed, and sc with it, when the connection ends */
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status,
				  const char *msg, const char *www_auth)
{
	json_t *body = json_pack("{s:s}", "error", msg);
	enum MHD_Result ret = send_json(c, status, body, NULL, www_auth);

	json_decref(body);
	return ret;
}

/* Constant-time comparison of the presented token. */
static bool token_ok(const char *want, const char *header)
{
	const char *got;
	size_t wl, gl;
	unsigned char diff = 0;

	if (!header || strncmp(header, "Bearer ", 7))
		return false;
	got = header + 7;
	wl = strlen(want);
	gl = strlen(got);
	for (size_t i = 0; i < wl; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0);
	return !diff && wl == gl;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind,
				     const char *key, const char *value)
{
	struct api_req *req = cls;

	if (req->nquery >= API_QUERY_MAX)
		return MHD_NO;
	req->qkey[req->nquery] = key;
	req->qval[req->nquery] = value ? value : "";
	req->nquery++;
	return MHD_YES;
}

static double ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1e3 + (now.tv_nsec - t->tv_nsec) / 1e6;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct listener *l = cls;
	struct conn_state *st = *con_cls;
	struct api_resp resp = {};
	enum MHD_Result ret;
	const char *cl;

	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return MHD_NO;
		*con_cls = st;
		clock_gettime(CLOCK_MONOTONIC, &st->start);
		if (l->metrics_only && strcmp(url, "/metrics"))
			return send_error(c, 404, "only /metrics is served here", NULL);
		if (l->metrics_only && strcmp(method, "GET"))
			return send_json(c, 405, NULL, "GET", NULL);
		if (l->token &&
		    !token_ok(l->token, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								    MHD_HTTP_HEADER_AUTHORIZATION))) {
			logm(LOG_LVL_WARN, "%s %s 401 (no or wrong bearer token) on %s",
			     method, url, l->name);
			return send_error(c, 401, "a valid 'Authorization: Bearer TOKEN' header is required",
					  "Bearer realm=\"sluiced\"");
		}
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > API_BODY_MAX) {
			logm(LOG_LVL_INFO, "%s %s 413 (Content-Length %s)", method, url, cl);
			return send_error(c, 413, "request body over the 16 MiB limit", NULL);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		/* Chunked bodies have no Content-Length: count as they come. */
		if (!st->too_big && st->len + *upload_size > API_BODY_MAX) {
			st->too_big = true;
			free(st->body);
			st->body = NULL;
			st->len = st->cap = 0;
		}
		if (!st->too_big) {
			if (st->len + *upload_size > st->cap) {
				size_t cap = st->cap ? st->cap : 4096;
				char *b;

				while (cap < st->len + *upload_size)
					cap *= 2;
				b = realloc(st->body, cap);
				if (!b)
					return MHD_NO;
				st->body = b;
				st->cap = cap;
			}
			memcpy(st->body + st->len, upload, *upload_size);
			st->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (st->too_big) {
		logm(LOG_LVL_INFO, "%s %s 413", method, url);
		return send_error(c, 413, "request body over the 16 MiB limit", NULL);
	}
	st->req.method = method;
	st->req.path = url;
	st->req.body = st->body;
	st->req.body_len = st->len;
	st->req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							   MHD_HTTP_HEADER_CONTENT_TYPE);
	st->req.accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_ACCEPT);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_query, &st->req);
	if (st->req.nquery >= API_QUERY_MAX) {
		api_error(&resp, 400, NULL, "too many query arguments");
	} else {
		api_dispatch(&st->req, &resp);
	}
	if (resp.stream)
		ret = send_stream(c, &resp);
	else if (resp.text)
		ret = send_text(c, &resp);
	else
		ret = send_json(c, resp.status, resp.body, resp.allow, NULL);
	if (resp.status >= 500)
		logm(LOG_LVL_ERROR, "%s %s %d %.1fms: %s", method, url, resp.status,
		     ms_since(&st->start),
		     json_string_value(json_object_get(resp.body, "error")));
	else if (resp.status >= 400)
		logm(LOG_LVL_INFO, "%s %s %d %.1fms: %s", method, url, resp.status,
		     ms_since(&st->start),
		     json_string_value(json_object_get(resp.body, "error")));
	else
		logm(LOG_LVL_INFO, "%s %s %d %.1fms", method, url, resp.status,
		     ms_since(&st->start));
	api_resp_free(&resp); /* a stream queued is the response's now */
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_state *st = *con_cls;

	if (!st)
		return;
	free(st->body);
	free(st);
	*con_cls = NULL;
}

static struct MHD_Daemon *start_mhd(int fd, struct listener *l)
{
	return MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, l,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		MHD_OPTION_CONNECTION_LIMIT, 64u,
		MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		MHD_OPTION_END);
}

/* ---- listeners ----------------------------------------------------------- */

static int mkdir_parent(const char *path)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Binds the Unix socket, mode 0600. A socket file nobody listens on (left
 * by a daemon that was killed) is replaced; a live one is refused. */
static int unix_listen(const char *path, struct stat *bound)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		logm(LOG_LVL_ERROR, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	err = mkdir_parent(path);
	if (err) {
		logm(LOG_LVL_ERROR, "cannot create the folder of %s: %s", path, strerror(-err));
		return err;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		logm(LOG_LVL_ERROR, "%s: another daemon is listening there", path);
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED) {
		struct stat s;

		if (!lstat(path, &s) && S_ISSOCK(s.st_mode)) {
			logm(LOG_LVL_INFO, "%s: replacing a stale socket", path);
			unlink(path);
		}
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	old = umask(0177); /* the socket is born 0600 */
	err = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (err || chmod(path, 0600) || listen(fd, 64) || stat(path, bound)) {
		err = -errno;
		logm(LOG_LVL_ERROR, "cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return err;
	}
	return fd;
}

/* Binds ADDR:PORT (opt names the option for messages); loopback addresses
 * only unless any_addr (the metrics page, read-only, may face a scraper). */
static int tcp_listen(const char *spec, const char *opt, bool any_addr)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	unsigned long port;
	char *end;
	int fd, one = 1;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
		goto bad;
	memcpy(host, spec, colon - spec);
	host[colon - spec] = 0;
	port = strtoul(colon + 1, &end, 10);
	/* Port 0 would bind a port nobody is told about. */
	if (*end || !colon[1] || !port || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		goto bad;
	if (!any_addr && (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		logm(LOG_LVL_ERROR, "%s %s: only loopback addresses (127.0.0.0/8)", opt, spec);
		return -EINVAL;
	}
	sa.sin_port = htons(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
		int err = -errno;

		logm(LOG_LVL_ERROR, "cannot listen on %s: %s", spec, strerror(errno));
		close(fd);
		return err;
	}
	return fd;
bad:
	logm(LOG_LVL_ERROR, "%s %s: need %s:PORT", opt, spec, any_addr ? "ADDR" : "127.0.0.1");
	return -EINVAL;
}

static char *read_token(const char *path)
{
	char buf[512];
	struct stat st;
	size_t n;
	FILE *f = fopen(path, "re");

	if (!f) {
		logm(LOG_LVL_ERROR, "--token-file %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!fstat(fileno(f), &st) && (st.st_mode & 077))
		logm(LOG_LVL_WARN, "--token-file %s is readable by others (mode %o)",
		     path, st.st_mode & 0777);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = 0;
	if (n < 16 || strpbrk(buf, " \t\r\n")) {
		logm(LOG_LVL_ERROR, "--token-file %s: need one token of at least 16 characters", path);
		return NULL;
	}
	return strdup(buf);
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sluiced [--socket PATH] [--foreground] [--log-level debug|info|warn|error]\n"
		"               [--listen 127.0.0.1:PORT --token-file FILE]\n"
		"               [--metrics-listen ADDR:PORT] [--otlp-endpoint URL] [--routes]\n"
		"  --socket PATH     Unix socket, mode 0600 (default " DEFAULT_SOCKET ")\n"
		"  --foreground      stay attached, log to stderr (otherwise: detach, log to syslog)\n"
		"  --listen A:P      also serve on loopback TCP, every request needing\n"
		"                    'Authorization: Bearer TOKEN' (TOKEN from --token-file)\n"
		"  --metrics-listen A:P  also serve GET /metrics (Prometheus) on plain\n"
		"                    HTTP at IPv4 ADDR:PORT, no token, nothing else\n"
		"  --otlp-endpoint URL  send httpmon's spans to this OpenTelemetry collector\n"
		"                    (OTLP/HTTP JSON, POST URL/v1/traces)\n"
		"  --routes          print the route table and exit\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "listen", required_argument, NULL, 'L' },
		{ "token-file", required_argument, NULL, 't' },
		{ "metrics-listen", required_argument, NULL, 'M' },
		{ "otlp-endpoint", required_argument, NULL, 'O' },
		{ "routes", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	const char *sock_path = DEFAULT_SOCKET, *listen_spec = NULL, *token_file = NULL;
	const char *metrics_spec = NULL;
	enum log_level level = LOG_LVL_INFO;
	bool foreground = false;
	struct listener lu = {}, lt = {}, lm = { .metrics_only = true };
	struct stat bound;
	sigset_t sigs;
	int c, sig, ufd, tfd = -1, mfd = -1, rc = 1;

	while ((c = getopt_long(argc, argv, "s:fl:L:t:M:O:rh", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock_path = optarg; break;
		case 'f': foreground = true; break;
		case 'l':
			if (log_level_parse(optarg, &level)) {
				fprintf(stderr, "sluiced: --log-level: debug, info, warn or error\n");
				return 2;
			}
			break;
		case 'L': listen_spec = optarg; break;
		case 't': token_file = optarg; break;
		case 'M': metrics_spec = optarg; break;
		case 'O':
			if (api_otlp_set_endpoint(optarg)) {
				fprintf(stderr, "sluiced: --otlp-endpoint '%s': need an http:// or https:// URL\n",
					optarg);
				return 2;
			}
			break;
		case 'r': api_print_routes(); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !!listen_spec != !!token_file) {
		if (optind >= argc)
			fprintf(stderr, "sluiced: --listen and --token-file go together\n");
		usage(stderr);
		return 2;
	}
	log_init(level, false);
	if (geteuid() != 0) {
		logm(LOG_LVL_ERROR, "sluiced needs root (CAP_BPF and CAP_NET_ADMIN)");
		return 1;
	}
	if (token_file && !(lt.token = read_token(token_file)))
		return 1;
	signal(SIGPIPE, SIG_IGN);
	/* Signals are taken by sigwait below; every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	ufd = unix_listen(sock_path, &bound);
	if (ufd < 0)
		return 1;
	if (listen_spec && (tfd = tcp_listen(listen_spec, "--listen", false)) < 0)
		goto out_unlink;
	if (metrics_spec && (mfd = tcp_listen(metrics_spec, "--metrics-listen", true)) < 0)
		goto out_unlink;
	if (!foreground) {
		if (daemon(0, 0)) {
			logm(LOG_LVL_ERROR, "cannot detach: %s", strerror(errno));
			goto out_unlink;
		}
		log_init(level, true);
	}
	lu.name = sock_path;
	lu.mhd = start_mhd(ufd, &lu);
	if (!lu.mhd) {
		logm(LOG_LVL_ERROR, "cannot start the HTTP server on %s", sock_path);
		goto out_unlink;
	}
	if (tfd >= 0) {
		lt.name = listen_spec;
		lt.mhd = start_mhd(tfd, &lt);
		if (!lt.mhd) {
			logm(LOG_LVL_ERROR, "cannot start the HTTP server on %s", listen_spec);
			goto out_stop;
		}
	}
	if (mfd >= 0) {
		lm.name = metrics_spec;
		lm.mhd = start_mhd(mfd, &lm);
		if (!lm.mhd) {
			logm(LOG_LVL_ERROR, "cannot start the HTTP server on %s", metrics_spec);
			goto out_jobs;
		}
	}
	if (api_jobs_start())
		goto out_jobs;
	logm(LOG_LVL_INFO, "listening on %s%s%s%s%s (pid %d)", sock_path,
	     listen_spec ? " and " : "", listen_spec ? listen_spec : "",
	     metrics_spec ? ", metrics on " : "", metrics_spec ? metrics_spec : "",
	     getpid());
	for (;;) {
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP) {
			logm(LOG_LVL_INFO, "SIGHUP: nothing to reload (state is in the kernel)");
			continue;
		}
		break;
	}
	logm(LOG_LVL_INFO, "%s: stopping; the pinned data plane keeps running",
	     strsignal(sig));
	rc = 0;
out_jobs:
	api_stopping = 1; /* streams and jobs end within a poll interval */
	api_jobs_stop();
	if (lm.mhd)
		MHD_stop_daemon(lm.mhd);
	if (lt.mhd)
		MHD_stop_daemon(lt.mhd);
out_stop:
	MHD_stop_daemon(lu.mhd);
	ufd = -1; /* closed by MHD */
out_unlink:
	{
		struct stat now;

		/* Only our own socket: a newer daemon may have taken the path. */
		if (!stat(sock_path, &now) && now.st_ino == bound.st_ino &&
		    now.st_dev == bound.st_dev)
			unlink(sock_path);
	}
	if (ufd >= 0)
		close(ufd);
	if (tfd >= 0 && !lt.mhd)
		close(tfd);
	if (mfd >= 0 && !lm.mhd)
		close(mfd);
	free((char *)lt.token);
	return rc;
}
