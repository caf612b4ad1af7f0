// SPDX-License-Identifier: GPL-2.0
/* The health-check engine against real servers: the test unshares a network
 * namespace of its own (gone with the process), starts the servers of
 * health_servers.py in it (HTTP 200/500, garbage, close, slow) and a
 * blackholed address (a veth whose peer drops everything), then checks
 * every probe result, the rise/fall counting and that many probes run in
 * parallel: a slow backend never delays the others. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "check.h"
#include "sluice.h"
#include "health.h"

#define P_HTTP 8200
#define P_GARBAGE 8300
#define P_CLOSE 8400
#define P_SLOW 8500
#define P_CLOSED 8999 /* nothing listens */
#define BLACKHOLE "10.99.0.2"

static pid_t servers = -1;

static __u64 ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int sh(const char *cmd)
{
	int rc = system(cmd);

	if (rc)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

/* The servers' script sits beside this test's source. */
static int start_servers(void)
{
	char exe[PATH_MAX], script[PATH_MAX + 64], line[64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int pfd[2];
	FILE *f;

	if (n < 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* build/tests */
	snprintf(script, sizeof(script), "%s/../../nf/lb/tests/health_servers.py",
		 exe);
	if (pipe(pfd))
		return -1;
	servers = fork();
	if (servers == 0) {
		char a[5][32];

		/* The servers die with this test, even if it crashes. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], 1);
		close(pfd[0]);
		snprintf(a[0], 32, "http@127.0.0.1@%d", P_HTTP);
		snprintf(a[1], 32, "http@::1@%d", P_HTTP);
		snprintf(a[2], 32, "garbage@127.0.0.1@%d", P_GARBAGE);
		snprintf(a[3], 32, "close@127.0.0.1@%d", P_CLOSE);
		snprintf(a[4], 32, "slow@127.0.0.1@%d", P_SLOW);
		execl("/usr/bin/python3", "python3", script, a[0], a[1], a[2],
		      a[3], a[4], (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	/* The script prints "ready" once everything listens (or dies). */
	if (!f || !fgets(line, sizeof(line), f) || strncmp(line, "ready", 5))
		return -1;
	fclose(f);
	return 0;
}

static int setup_netns(void)
{
	if (unshare(CLONE_NEWNET)) {
		perror("unshare");
		return -1;
	}
	/* A static neighbour on a veth whose peer has no address: SYNs go
	 * out and vanish, as towards a dead host. */
	if (sh("ip link set lo up") ||
	    sh("ip link add hcb0 type veth peer name hcb1") ||
	    sh("ip addr add 10.99.0.1/24 dev hcb0") ||
	    sh("ip link set hcb0 up && ip link set hcb1 up") ||
	    sh("ip neigh add " BLACKHOLE " lladdr 02:00:00:00:99:02 dev hcb0 nud permanent"))
		return -1;
	return start_servers();
}

/* ---- targets and results ------------------------------------------------ */

static struct hc_target target(const char *ip, __u16 port, __u8 type,
			       const char *path)
{
	struct hc_target t = { .up = true };

	hc_conf_init(&t.conf);
	t.conf.type = type;
	t.conf.rise = 1;
	t.conf.fall = 1;
	t.conf.interval_ms = 1000;
	t.conf.timeout_ms = 400;
	if (path)
		snprintf(t.conf.path, sizeof(t.conf.path), "%s", path);
	hc_service_parse("10.0.0.10:8080", IPPROTO_TCP, &t.key.svc);
	t.key.backend.family = strchr(ip, ':') ? AF_INET6 : AF_INET;
	inet_pton(t.key.backend.family, ip, t.key.backend.addr);
	t.key.backend.port = port;
	return t;
}

#define MAXR 256
struct rec {
	struct hc_status_key key;
	struct hc_probe p;
	struct hc_health h;
	bool changed;
	__u64 at_ms;
};
static struct rec recs[MAXR];
static int nrecs;

static void on_result(void *arg, const struct hc_target *t,
		      const struct hc_health *h, const struct hc_probe *p,
		      bool changed)
{
	if (nrecs >= MAXR)
		return;
	recs[nrecs++] = (struct rec){ t->key, *p, *h, changed, ms_now() };
}

/* Runs the engine until want results arrived or limit_ms passed. */
static void run_until(struct hc_engine *e, int want, int limit_ms)
{
	__u64 end = ms_now() + limit_ms;

	while (nrecs < want && ms_now() < end)
		hc_engine_poll(e, 20);
}

/* One probe of one target; its result. */
static struct hc_probe probe_once(struct hc_target t)
{
	struct hc_engine *e = hc_engine_new(on_result, NULL);
	struct hc_probe none = { 0 };

	nrecs = 0;
	hc_engine_set_targets(e, &t, 1);
	run_until(e, 1, 3000);
	hc_engine_free(e);
	return nrecs ? recs[0].p : none;
}

static void expect_probe(const char *name, struct hc_target t,
			 enum hc_result want, int status)
{
	struct hc_probe p = probe_once(t);
	char detail[128];

	snprintf(detail, sizeof(detail), "got %s status %u err %d, want %s %d",
		 hc_result_name(p.result), p.http_status, p.err,
		 hc_result_name(want), status);
	check_report(p.result == want && p.http_status == status, name, detail);
}

static void test_probes(void)
{
	struct hc_target t;
	struct hc_probe p;
	__u64 t0;

	expect_probe("tcp: listening port is ok",
		     target("127.0.0.1", P_HTTP, HC_TCP, NULL), HC_RES_OK, 0);
	expect_probe("tcp: closed port is refused",
		     target("127.0.0.1", P_CLOSED, HC_TCP, NULL), HC_RES_REFUSED, 0);
	expect_probe("tcp: IPv6 listening port is ok",
		     target("::1", P_HTTP, HC_TCP, NULL), HC_RES_OK, 0);

	t = target(BLACKHOLE, 80, HC_TCP, NULL);
	t.conf.timeout_ms = 300;
	t0 = ms_now();
	p = probe_once(t);
	check_report(p.result == HC_RES_TIMEOUT, "tcp: blackholed address times out",
		     hc_result_name(p.result));
	check_report(ms_now() - t0 >= 290 && ms_now() - t0 < 800 &&
			     p.latency_us >= 290000,
		     "tcp: timeout fires after timeout_ms (300 ms)", NULL);

	expect_probe("http: 200 is ok",
		     target("127.0.0.1", P_HTTP, HC_HTTP, "/ok"), HC_RES_OK, 200);
	expect_probe("http: IPv6 200 is ok",
		     target("::1", P_HTTP, HC_HTTP, "/ok"), HC_RES_OK, 200);
	expect_probe("http: 500 is a bad status",
		     target("127.0.0.1", P_HTTP, HC_HTTP, "/fail"),
		     HC_RES_BAD_STATUS, 500);
	t = target("127.0.0.1", P_HTTP, HC_HTTP, "/fail");
	t.conf.expect = 1u << 5;
	expect_probe("http: 500 is ok when 5xx is expected", t, HC_RES_OK, 500);
	expect_probe("http: 404 (wrong path) is a bad status",
		     target("127.0.0.1", P_HTTP, HC_HTTP, "/nothing-here"),
		     HC_RES_BAD_STATUS, 404);
	expect_probe("http: Host defaults to the VIP:port",
		     target("127.0.0.1", P_HTTP, HC_HTTP, "/host/10.0.0.10:8080"),
		     HC_RES_OK, 200);
	t = target("127.0.0.1", P_HTTP, HC_HTTP, "/host/svc.example");
	snprintf(t.conf.host, sizeof(t.conf.host), "svc.example");
	expect_probe("http: Host header as configured", t, HC_RES_OK, 200);
	t = target("127.0.0.1", P_CLOSED, HC_HTTP, "/ok");
	t.conf.port = P_HTTP;
	expect_probe("http: --port probes another port than the backend's", t,
		     HC_RES_OK, 200);
	expect_probe("http: garbage answer is a bad response",
		     target("127.0.0.1", P_GARBAGE, HC_HTTP, "/"),
		     HC_RES_BAD_RESPONSE, 0);
	expect_probe("http: closed without an answer",
		     target("127.0.0.1", P_CLOSE, HC_HTTP, "/"), HC_RES_CLOSED, 0);
	expect_probe("http: refused", target("127.0.0.1", P_CLOSED, HC_HTTP, "/"),
		     HC_RES_REFUSED, 0);
	t = target("127.0.0.1", P_SLOW, HC_HTTP, "/");
	t.conf.timeout_ms = 300;
	expect_probe("http: slow answer times out", t, HC_RES_TIMEOUT, 0);
	expect_probe("http: blackholed address times out",
		     target(BLACKHOLE, 80, HC_HTTP, "/"), HC_RES_TIMEOUT, 0);
}

/* ---- rise and fall ----------------------------------------------------- */

static void test_state_machine(void)
{
	/* Table: the probe outcomes and the state after each (rise 2, fall 3,
	 * starting up). */
	const char *seq = "++-+--+---+++-++";
	const char *ups = "1111111110011111";
	struct hc_health h = { .up = true };
	bool ok = true;

	for (int i = 0; seq[i]; i++) {
		hc_health_update(&h, seq[i] == '+', 2, 3);
		if (h.up != (ups[i] == '1')) {
			printf("step %d (%c): up %d, want %c\n", i, seq[i], h.up,
			       ups[i]);
			ok = false;
		}
	}
	check_report(ok, "state: fall after 3 consecutive failures, rise after 2 "
			 "consecutive successes, interrupted runs restart", NULL);
	h = (struct hc_health){ .up = true };
	check_report(hc_health_update(&h, false, 1, 1) && !h.up &&
			     hc_health_update(&h, true, 1, 1) && h.up,
		     "state: rise 1 fall 1 flips on every change", NULL);
}

/* Counts the results of key before (and including) the change. */
static int probes_until_change(const struct hc_target *t, bool *changed)
{
	int n = 0;

	*changed = false;
	for (int i = 0; i < nrecs; i++) {
		if (memcmp(&recs[i].key, &t->key, sizeof(t->key)))
			continue;
		n++;
		if (recs[i].changed) {
			*changed = true;
			return n;
		}
	}
	return n;
}

static void test_rise_fall(void)
{
	struct hc_target t[3];
	struct hc_engine *e = hc_engine_new(on_result, NULL);
	char detail[64];
	int n;
	bool changed;

	/* A dead backend starting up, a live one starting down, and one
	 * whose answers alternate 200/500 (never 3 failures in a row). */
	t[0] = target("127.0.0.1", P_CLOSED, HC_TCP, NULL);
	t[1] = target("127.0.0.1", P_HTTP, HC_HTTP, "/ok");
	t[1].up = false;
	t[2] = target("127.0.0.1", P_HTTP, HC_HTTP, "/flip");
	t[2].key.svc.port = 8081; /* a key of its own */
	for (int i = 0; i < 3; i++) {
		t[i].conf.rise = 2;
		t[i].conf.fall = 3;
		t[i].conf.interval_ms = 100;
		t[i].conf.timeout_ms = 100;
	}
	nrecs = 0;
	t[1].key.svc.port = 8081;
	check_report(hc_engine_set_targets(e, t, 3) == -EINVAL,
		     "targets: two with one key refused", sl_errmsg());
	t[1].key.svc.port = 8080;
	hc_engine_set_targets(e, t, 3);
	run_until(e, 24, 2000);
	n = probes_until_change(&t[0], &changed);
	check_report(changed && n == 3, "rise/fall: a dead backend goes down at "
		     "the 3rd failure (fall 3)", NULL);
	n = probes_until_change(&t[1], &changed);
	snprintf(detail, sizeof(detail), "%d probes, changed %d", n, changed);
	check_report(changed && n == 2, "rise/fall: a live backend comes up at "
		     "the 2nd success (rise 2)", detail);
	n = probes_until_change(&t[2], &changed);
	check_report(!changed && n >= 6, "rise/fall: alternating 200/500 never "
		     "reaches fall 3", NULL);

	/* The same targets again keep their state: no flip back to t.up. */
	nrecs = 0;
	hc_engine_set_targets(e, t, 3);
	run_until(e, 6, 1000);
	n = probes_until_change(&t[0], &changed);
	check_report(!changed && n >= 1 && recs[0].h.up == false,
		     "rise/fall: targets set again keep their health", NULL);
	/* Changing the check restarts the counters but keeps the health. */
	t[0].conf.port = P_HTTP;
	nrecs = 0;
	hc_engine_set_targets(e, t, 3);
	run_until(e, 12, 1000);
	n = probes_until_change(&t[0], &changed);
	check_report(changed && n == 2, "rise/fall: a changed check keeps the "
		     "health and counts rise afresh", NULL);
	hc_engine_free(e);
}

/* ---- many backends at once ---------------------------------------------- */

static void test_parallel(void)
{
	enum { N = 120 };
	struct hc_target t[N];
	struct hc_engine *e = hc_engine_new(on_result, NULL);
	__u64 t0, last_ok = 0, last_to = 0, first_to = UINT64_MAX;
	int ok = 0, to = 0;
	char detail[160];

	/* Half the backends blackholed (HTTP), half answering (TCP, so the
	 * figure is the engine's, not the Python server's): each gets its own
	 * service so the keys differ. */
	for (int i = 0; i < N; i++) {
		t[i] = i % 2 ? target(BLACKHOLE, 80, HC_HTTP, "/ok")
			     : target("127.0.0.1", P_HTTP, HC_TCP, NULL);
		t[i].conf.interval_ms = 1000;
		t[i].conf.timeout_ms = 500;
		t[i].key.svc.port = 1000 + i;
	}
	nrecs = 0;
	t0 = ms_now();
	hc_engine_set_targets(e, t, N);
	check_report(true, "parallel: 120 targets set", NULL);
	hc_engine_poll(e, 0);
	snprintf(detail, sizeof(detail), "%zu in flight", hc_engine_inflight(e));
	check_report(hc_engine_inflight(e) + nrecs == N,
		     "parallel: every due probe starts at once", detail);
	run_until(e, N, 3000);
	for (int i = 0; i < nrecs; i++) {
		__u64 at = recs[i].at_ms - t0;

		if (recs[i].p.result == HC_RES_OK) {
			ok++;
			last_ok = at > last_ok ? at : last_ok;
		} else if (recs[i].p.result == HC_RES_TIMEOUT) {
			to++;
			last_to = at > last_to ? at : last_to;
			first_to = at < first_to ? at : first_to;
		}
	}
	snprintf(detail, sizeof(detail), "%d ok (last at %llu ms), %d timeouts "
		 "(%llu..%llu ms)", ok, (unsigned long long)last_ok, to,
		 (unsigned long long)first_to, (unsigned long long)last_to);
	printf("parallel: %s\n", detail);
	check_report(ok == N / 2 && to == N / 2, "parallel: 60 ok and 60 timeouts",
		     detail);
	check_report(last_ok < 300, "parallel: answering backends are not held "
		     "up by the blackholed ones", detail);
	check_report(first_to >= 490 && last_to < 1000, "parallel: all 120 "
		     "finish within one interval (1 s)", detail);
	/* Second round: one interval after the first started. */
	nrecs = 0;
	run_until(e, N / 2, 1500);
	snprintf(detail, sizeof(detail), "%d results, first at %llu ms", nrecs,
		 nrecs ? (unsigned long long)(recs[0].at_ms - t0) : 0ull);
	check_report(nrecs >= N / 2 && recs[0].at_ms - t0 >= 990 &&
			     recs[0].at_ms - t0 < 1500,
		     "parallel: the next round starts one interval later", detail);
	hc_engine_free(e);
}

/* ---- settings ------------------------------------------------------------ */

static void test_settings(void)
{
	struct hc_conf c;
	struct hc_addr a;
	__u32 ms;
	__u8 m;
	char buf[64];

	hc_conf_init(&c);
	check_report(!hc_conf_check(&c), "settings: defaults are valid", sl_errmsg());
	check_report(!hc_seconds_parse("interval", "0.25", &ms) && ms == 250 &&
			     !hc_seconds_parse("interval", "300ms", &ms) && ms == 300 &&
			     hc_seconds_parse("interval", "fast", &ms) == -EINVAL,
		     "settings: durations in s and ms", NULL);
	check_report(!hc_expect_parse("2xx,3xx", &m) && m == 0x0c &&
			     hc_expect_parse("2xx,6xx", &m) == -EINVAL &&
			     hc_expect_parse("200", &m) == -EINVAL,
		     "settings: expected status classes", NULL);
	hc_expect_format(0x0c, buf, sizeof(buf));
	check_report(!strcmp(buf, "2xx,3xx"), "settings: classes formatted", buf);
	check_report(!hc_service_parse("[fd00::1]:443", IPPROTO_TCP, &a) &&
			     a.family == AF_INET6 && a.port == 443 &&
			     !hc_service_parse("udp 10.1.2.3:53", 0, &a) &&
			     a.proto == IPPROTO_UDP &&
			     hc_service_parse("10.1.2.3", IPPROTO_TCP, &a) == -EINVAL &&
			     hc_service_parse("10.1.2.3:0", IPPROTO_TCP, &a) == -EINVAL &&
			     hc_service_parse("fd00::1:80", IPPROTO_TCP, &a) == -EINVAL,
		     "settings: VIP:PORT parsed, bad ones refused", NULL);
	hc_service_parse("[fd00::1]:443", IPPROTO_TCP, &a);
	hc_addr_format(&a, buf, sizeof(buf));
	check_report(!strcmp(buf, "tcp [fd00::1]:443"), "settings: service formatted",
		     buf);
	c.timeout_ms = 3000;
	check_report(hc_conf_check(&c) == -EINVAL && strstr(sl_errmsg(), "timeout"),
		     "settings: timeout above the interval refused", sl_errmsg());
	hc_conf_init(&c);
	c.type = HC_HTTP;
	snprintf(c.path, sizeof(c.path), "/a b");
	check_report(hc_conf_check(&c) == -EINVAL && strstr(sl_errmsg(), "path"),
		     "settings: a path with a space refused", sl_errmsg());
	snprintf(c.path, sizeof(c.path), "/x\r\nEvil: 1");
	check_report(hc_conf_check(&c) == -EINVAL,
		     "settings: a path that would split the request refused", NULL);
	hc_conf_init(&c);
	c.fall = 0;
	check_report(hc_conf_check(&c) == -EINVAL && strstr(sl_errmsg(), "fall"),
		     "settings: fall 0 refused", sl_errmsg());
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	test_state_machine();
	test_settings();
	if (!check_report(!setup_netns(), "setup: namespace, blackhole and servers",
			  NULL))
		goto out;
	test_probes();
	test_rise_fall();
	test_parallel();
out:
	if (servers > 0) {
		kill(servers, SIGTERM);
		waitpid(servers, NULL, 0);
	}
	return check_exit();
}
