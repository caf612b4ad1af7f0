/* SPDX-License-Identifier: GPL-2.0 */
/* Active health checks of the load balancer's backends: TCP connect and
 * HTTP GET probes, run in parallel without blocking (one epoll set), with
 * rise/fall thresholds as in keepalived and HAProxy. The engine knows only
 * targets and a callback; the LB glue (hc_run) feeds it the services that
 * have a check configured and turns state changes into lb_backend_set_up().
 *
 * Settings and the last results are kept in two pinned hash maps in the
 * namespace's folder (lb_hc_conf, lb_hc_status): they survive any process,
 * any reader sees them, and `sluice reset` removes them with the rest. */
#ifndef SLUICE_LB_HEALTH_H
#define SLUICE_LB_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "sluice.h"


enum hc_type {
	HC_TCP = 1, /* connect, then reset */
	HC_HTTP = 2, /* GET path; the status class decides */
};

#define HC_PATH_MAX 128
#define HC_HOST_MAX 64
/* Limits: a check every 10 ms at most; thresholds fit the counters. */
#define HC_INTERVAL_MIN_MS 10
#define HC_INTERVAL_MAX_MS 3600000
#define HC_TIMEOUT_MIN_MS 1
#define HC_THRESH_MAX 100
#define HC_MAX_SERVICES 1024
#define HC_MAX_BACKENDS 65536

/* A service's VIP or a backend. For a backend, proto is 0. */
struct hc_addr {
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 port; /* host order */
	__u8 addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
};

/* One service's check: the value of lb_hc_conf (key: struct hc_addr). */
struct hc_conf {
	__u8 type; /* enum hc_type */
	__u8 rise; /* successes to bring a down backend up */
	__u8 fall; /* failures to take an up backend down */
	__u8 expect; /* HTTP: bit n accepts status class nxx */
	__u32 interval_ms; /* from one probe's start to the next */
	__u32 timeout_ms; /* at most interval_ms */
	__u16 port; /* probe this port, not the backend's (0: the backend's) */
	__u16 pad;
	char path[HC_PATH_MAX]; /* HTTP */
	char host[HC_HOST_MAX]; /* HTTP Host header; "": the VIP */
};

/* What a probe found. */
enum hc_result {
	HC_RES_NONE = 0, /* no probe yet */
	HC_RES_OK,
	HC_RES_TIMEOUT, /* no answer within timeout_ms */
	HC_RES_REFUSED, /* connection refused (RST) */
	HC_RES_CONNECT, /* another connect error (err: errno) */
	HC_RES_CLOSED, /* closed before a whole status line */
	HC_RES_BAD_RESPONSE, /* not an HTTP status line */
	HC_RES_BAD_STATUS, /* a status outside the expected classes */
	HC_RES_MAX,
};
const char *hc_result_name(enum hc_result r);

struct hc_probe {
	__u8 result; /* enum hc_result */
	__u16 http_status;
	__s32 err; /* errno for HC_RES_CONNECT */
	__u32 latency_us;
};

/* Health of one backend, kept by the engine. */
struct hc_health {
	bool up;
	__u8 rise_cnt; /* consecutive successes while down */
	__u8 fall_cnt; /* consecutive failures while up */
};
/* Counts one probe against the thresholds; true when up changed. */
bool hc_health_update(struct hc_health *h, bool ok, unsigned int rise,
		      unsigned int fall);

/* The key of lb_hc_status: a backend of a service of an LB instance. */
struct hc_status_key {
	char inst[SL_NAME_MAX];
	struct hc_addr svc;
	struct hc_addr backend;
};

/* The value of lb_hc_status, written by the checker after each probe. */
struct hc_status {
	__u8 up;
	__u8 rise_cnt;
	__u8 fall_cnt;
	__u8 pad;
	struct hc_probe last;
	__u64 last_probe_ms; /* CLOCK_REALTIME, ms */
	__u64 last_change_ms; /* 0: never changed */
	__u64 probes, failures, changes;
};

/* ---- the engine -------------------------------------------------------- */

struct hc_target {
	struct hc_status_key key; /* identity across hc_engine_set_targets() */
	struct hc_conf conf;
	bool up; /* the state a new target starts in */
};

/* Called for every finished probe; changed: h->up has just flipped. */
typedef void (*hc_result_fn)(void *arg, const struct hc_target *t,
			     const struct hc_health *h,
			     const struct hc_probe *p, bool changed);

struct hc_engine;
struct hc_engine *hc_engine_new(hc_result_fn fn, void *arg);
void hc_engine_free(struct hc_engine *e);
/* Replaces the targets. A target whose key and conf are unchanged keeps
 * its health, its schedule and its probe in flight; one whose conf changed
 * keeps its health and is probed at once; a new one starts in t->up and is
 * probed at once. */
int hc_engine_set_targets(struct hc_engine *e, const struct hc_target *t,
			  size_t n);
/* Starts the probes that are due, waits up to max_wait_ms for answers and
 * finishes what answered or timed out (calling fn). */
int hc_engine_poll(struct hc_engine *e, int max_wait_ms);
/* Probes in flight now. */
size_t hc_engine_inflight(const struct hc_engine *e);
/* The health of the i-th target of the last hc_engine_set_targets(). */
const struct hc_health *hc_engine_health(const struct hc_engine *e, size_t i);

/* ---- settings ---------------------------------------------------------- */

/* Defaults: tcp, every 2 s, timeout 1 s, rise 2, fall 3, GET /, 2xx/3xx. */
void hc_conf_init(struct hc_conf *c);
/* Parsers for the CLI and the API: on error -EINVAL, message names what. */
int hc_type_parse(const char *s, __u8 *type);
const char *hc_type_name(__u8 type);
int hc_seconds_parse(const char *what, const char *s, __u32 *ms);
int hc_expect_parse(const char *s, __u8 *mask);
int hc_expect_format(__u8 mask, char *buf, size_t len);
/* "tcp|udp VIP:PORT" or, with proto given, "VIP:PORT" ("[v6]:PORT"). */
int hc_service_parse(const char *s, __u8 proto, struct hc_addr *svc);
/* "1.2.3.4:80", "[fd00::1]:80"; with proto: "tcp 1.2.3.4:80". */
int hc_addr_format(const struct hc_addr *a, char *buf, size_t len);
/* Checks every field (path, host, thresholds, timeout <= interval). */
int hc_conf_check(const struct hc_conf *c);

/* ---- the pinned settings and status ------------------------------------ */

/* Sets svc's check (under the writer lock): svc must be an LB service. */
int hc_conf_set(struct sl_ctx *ctx, const struct hc_addr *svc,
		const struct hc_conf *c);
/* Removes svc's check and status; its backends are all set up again. */
int hc_conf_del(struct sl_ctx *ctx, const struct hc_addr *svc);
typedef int (*hc_conf_cb)(const struct hc_addr *svc, const struct hc_conf *c,
			  void *arg);
int hc_conf_foreach(struct sl_ctx *ctx, hc_conf_cb cb, void *arg);
/* The status of one backend: -ENOENT when no probe has been recorded. */
int hc_status_get(struct sl_ctx *ctx, const struct hc_status_key *k,
		  struct hc_status *st);

/* What `show` and GET /v1/lb/health print: each checked service of each
 * LB instance with its backends, the LB's state and the last probe. */
struct hc_view_backend {
	struct hc_addr addr;
	bool lb_up; /* the LB's state */
	bool probed; /* st holds a recorded probe */
	struct hc_status st;
};
struct hc_view_service {
	char inst[SL_NAME_MAX]; /* "": no LB instance has this service */
	struct hc_addr svc;
	struct hc_conf conf;
	struct hc_view_backend *backends;
	size_t n;
};
struct hc_view {
	struct hc_view_service *svcs;
	size_t n;
	bool running; /* a checker holds the lock */
	int pid;
	char role[32];
	__u64 now_ms; /* CLOCK_REALTIME when read: ages are relative to it */
};
/* How long before v was read t (CLOCK_REALTIME ms) was; never negative. */
static inline __u64 hc_age_ms(const struct hc_view *v, __u64 t)
{
	return v->now_ms > t ? v->now_ms - t : 0;
}
/* ctx may be NULL (no state in this namespace: no services). */
int hc_view_read(struct sl_ctx *ctx, struct hc_view *v);
void hc_view_free(struct hc_view *v);

/* ---- the checker ------------------------------------------------------- */

/* Only one checker per namespace: a lock file held while it runs,
 * /run/sluice/netns-<cookie>.health.lock, holding the checker's pid and
 * role. Returns the fd to keep, or -EBUSY with the holder in the message
 * (and in *pid, *role when not NULL). */
int hc_lock_take(const char *role, int *pid, char *holder, size_t len);
/* Ends the checker's hold: removes the lock file and closes fd. */
void hc_lock_release(int fd);
/* Whether a checker runs now: its pid and role (false: none). */
bool hc_lock_holder(int *pid, char *role, size_t len);

enum hc_log_level { HC_LOG_INFO, HC_LOG_WARN };
struct hc_run_opts {
	volatile int *stop; /* returns within about 200 ms once *stop is set */
	void (*log)(void *arg, enum hc_log_level lvl, const char *line);
	void *arg;
	/* How often the settings and the LB's services are read again. */
	unsigned int refresh_ms;
};
/* Runs the checks of this namespace until *stop (the caller holds the
 * lock). Backends of a checked service start in the LB's state; each
 * change of state calls lb_backend_set_up() and is logged. */
int hc_run(const struct hc_run_opts *o);

/* The CLI command `sluice lb healthcheck ...` (cmd/sluice/cmd_lb_health.c). */
int lb_healthcheck_cmd(int argc, char **argv);

#endif
