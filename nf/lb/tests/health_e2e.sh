#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End to end: the LB's health checks take a dead backend out and bring it
# back, with real HTTP servers in namespaces this test creates, once with
# the checker in the foreground (`sluice lb healthcheck run`) and once in
# sluiced; only one checker runs at a time; `del` brings every backend back;
# bad settings are refused and change nothing.
#
# Topology: client ns (10.210.0.1) <-> LB ns (10.210.0.2; 10.210.N.1) <->
# backend ns N = 1..3 (10.210.N.2, an HTTP server on port 80 answering
# /id with bN and /ok with 200). VIP tcp 10.210.100.1:80, round robin, NAT,
# the LB on the TC ingress of all four LB interfaces. Checks: HTTP GET /ok
# every 0.25 s, timeout 0.2 s, rise 2, fall 3.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

SLUICED=${SLUICED:-$(pwd)/build/sluiced}
PY=/usr/bin/python3   # not a pyenv shim: $! must be the python process
SERVERS=$(pwd)/nf/lb/tests/health_servers.py
CNS=$(sl_name hcc)
LNS=$(sl_name hcl)
VIP=10.210.100.1
SVC=$VIP:80
INTERVAL=0.25
RISE=2
FALL=3
# Bounds: the thresholds' worth of intervals plus a probe's timeout and
# the polling of this test, with room for a loaded 2-core machine.
DOWN_MS=$((FALL * 250 + 200 + 800))
UP_MS=$((RISE * 250 + 200 + 800))
SOCK=/run/sluice/test-health-$$.sock
TMP=$(mktemp -d /tmp/sluice-health.XXXXXX)
declare -A SRV   # backend number -> its server's pid
RUNNER=          # the foreground checker this test started
DPID=            # the daemon this test started

cleanup() {
	local p
	for p in "${SRV[@]}" $RUNNER $DPID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -f "$SOCK"
	if [ "$SL_FAILS" -ne 0 ]; then
		for f in "$TMP"/*.log; do
			[ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
		done
	fi
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

lb() { sl_in "$LNS" "$SLUICE" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- topology -------------------------------------------------------------

setup() {
	local n ns
	sl_netns_add "$CNS" && sl_netns_add "$LNS" || return 1
	ip link add hcc0 netns "$CNS" type veth peer name hcl0 netns "$LNS" || return 1
	sl_in "$CNS" ip addr add 10.210.0.1/24 dev hcc0
	sl_in "$LNS" ip addr add 10.210.0.2/24 dev hcl0
	sl_in "$CNS" ip link set hcc0 up
	sl_in "$LNS" ip link set hcl0 up
	sl_in "$CNS" ip route add $VIP/32 via 10.210.0.2
	sl_in "$LNS" sysctl -qw net.ipv4.ip_forward=1
	for n in 1 2 3; do
		ns=$(sl_name hcb$n)
		sl_netns_add "$ns" || return 1
		ip link add hcl$n netns "$LNS" type veth peer name hcb0 netns "$ns" || return 1
		sl_in "$LNS" ip addr add 10.210.$n.1/24 dev hcl$n
		sl_in "$ns" ip addr add 10.210.$n.2/24 dev hcb0
		sl_in "$LNS" ip link set hcl$n up
		sl_in "$ns" ip link set hcb0 up
		sl_in "$ns" ip route add default via 10.210.$n.1
		start_server $n || return 1
	done
}

# start_server N: the HTTP server of backend N, waiting until it listens.
start_server() {
	local n=$1 ns line
	ns=$(sl_name hcb$n)
	SERVER_NAME=b$n nsenter --net="/run/netns/$ns" "$PY" "$SERVERS" \
		"http@10.210.$n.2@80" >"$TMP/srv$n.out" 2>>"$TMP/srv$n.log" &
	SRV[$n]=$!
	for _ in $(seq 100); do
		grep -q ready "$TMP/srv$n.out" 2>/dev/null && return 0
		kill -0 "${SRV[$n]}" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

stop_server() {
	kill "${SRV[$1]}" 2>/dev/null && wait "${SRV[$1]}" 2>/dev/null
	unset "SRV[$1]"
}

setup_lb() {
	local n
	lb lb -A -t $SVC -s rr || return 1
	for n in 1 2 3; do
		lb lb -a -t $SVC -r 10.210.$n.2:80 -m || return 1
	done
	lb lb attach hcl0 hcl1 hcl2 hcl3 --tc >/dev/null
}

# ---- observations -----------------------------------------------------------

# health_of N: the checker's view of backend N (up, down, unknown).
health_of() {
	lb -j lb healthcheck show | jq -r --arg b "10.210.$1.2:80" \
		'.services[].backends[] | select(.backend == $b) | .health'
}

# lb_state_of N: the LB's own listing of backend N (up or down).
lb_state_of() {
	lb -j lb list | jq -r --arg a "10.210.$1.2" \
		'.. | objects | select(.address? == $a) | if .up then "up" else "down" end' | head -n1
}

# wait_state N STATE LIMIT_MS: until both the checker and the LB say STATE;
# prints the milliseconds it took.
wait_state() {
	local n=$1 want=$2 limit=$3 t0 t
	t0=$(now_ms)
	while :; do
		t=$(($(now_ms) - t0))
		if [ "$(health_of "$n")" = "$want" ] && [ "$(lb_state_of "$n")" = "$want" ]; then
			echo "$t"
			return 0
		fi
		[ "$t" -gt "$limit" ] && { echo "$t"; return 1; }
		sleep 0.05
	done
}

# served K: the names of the backends that answered K requests to the VIP,
# sorted, one per line with its count.
served() {
	local i
	for i in $(seq "$1"); do
		sl_in "$CNS" curl -s --max-time 2 "http://$SVC/id" || echo "none"
	done | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' '
}

# contains TEXT PART: TEXT has PART in it.
contains() { [[ "$1" == *"$2"* ]]; }

# all_served SERVED: every request answered, by each of the three.
all_served() {
	contains "$1" b1= && contains "$1" b2= && contains "$1" b3= && ! contains "$1" none
}

# others_only SERVED N: every request answered, none by backend N.
others_only() { ! contains "$1" "b$2=" && ! contains "$1" none; }

# show_has JQ: `show -j` satisfies the jq condition.
show_has() { lb -j lb healthcheck show | jq -e "$1" >/dev/null; }

all_up() {
	local n
	for n in 1 2 3; do
		[ "$(health_of $n)" = up ] || return 1
	done
}

wait_all_up() {
	for _ in $(seq 60); do
		all_up && return 0
		sleep 0.05
	done
	return 1
}

# A backend dies and comes back; the checker running (by $1) must take it
# out within fall x interval and bring it back within rise x interval.
# $2 is the log that must say so.
down_and_up() {
	local who=$1 log=$2 n=$3 ms out
	check "$who: every backend checked and up" wait_all_up
	out=$(served 9)
	check "$who: all three backends serve the VIP ($out)" all_served "$out"

	stop_server "$n"
	if ms=$(wait_state "$n" down $DOWN_MS); then
		pass "$who: b$n stopped -> down in the checker and the LB after $ms ms (bound $DOWN_MS)"
	else
		fail "$who: b$n stopped -> down within $DOWN_MS ms (still $(health_of "$n")/$(lb_state_of "$n") after $ms ms)"
	fi
	out=$(served 12)
	check "$who: new requests never reach the down backend ($out)" \
		others_only "$out" "$n"
	check "$who: show says down with the last probe refused" \
		show_has ".services[].backends[] | select(.backend == \"10.210.$n.2:80\") |
			.health == \"down\" and .lb == \"down\" and .last.result == \"refused\""
	check "$who: the change is logged" \
		grep -q "backend 10.210.$n.2:80 is DOWN after $FALL failures in a row" "$log"

	start_server "$n"
	if ms=$(wait_state "$n" up $UP_MS); then
		pass "$who: b$n started -> up again after $ms ms (bound $UP_MS)"
	else
		fail "$who: b$n started -> up within $UP_MS ms (still $(health_of "$n")/$(lb_state_of "$n") after $ms ms)"
	fi
	out=$(served 9)
	check "$who: the backend serves again ($out)" all_served "$out"
}

# ---- the test ---------------------------------------------------------------

[ -x "$SLUICED" ] || { fail "build/sluiced missing (run make)"; exit 1; }
command -v curl >/dev/null && command -v jq >/dev/null ||
	{ fail "curl and jq are needed"; exit 1; }
setup || { fail "setup: namespaces and servers"; exit 1; }
setup_lb || { fail "setup: LB service with 3 backends"; exit 1; }
out=$(served 9)
check "setup: the LB serves all three without checks ($out)" all_served "$out"

# Settings: refused ones change nothing.
lb lb healthcheck set -t $SVC --type http --path /ok --interval $INTERVAL \
	--timeout 0.2 --rise $RISE --fall $FALL
check "set: an HTTP check on the service" [ $? -eq 0 ]
before=$(lb -j lb healthcheck show | jq -c .services)
out=$(lb lb healthcheck set -t $SVC --timeout 1 2>&1)
check "set: a timeout above the interval refused, naming it ($out)" \
	contains "$out" timeout
out=$(lb lb healthcheck set -t 10.210.100.9:80 2>&1)
check "set: a service the LB does not have refused ($out)" \
	contains "$out" "no LB service"
out=$(lb lb healthcheck set -t $SVC --type ping 2>&1)
check "set: an unknown type refused ($out)" contains "$out" type
check "set: refusals changed nothing" \
	[ "$(lb -j lb healthcheck show | jq -c .services)" = "$before" ]
check "show: the settings as set" show_has ".services[0] |
	.service == \"tcp $SVC\" and .check.type == \"http\" and .check.path == \"/ok\" and
	.check.interval_ms == 250 and .check.timeout_ms == 200 and .check.rise == 2 and
	.check.fall == 3 and (.backends | length) == 3"

# 1. The foreground checker.
# nsenter execs the command: $! is the checker's pid.
nsenter --net="/run/netns/$LNS" "$SLUICE" lb healthcheck run --refresh 200 \
	>"$TMP/run.log" 2>&1 &
RUNNER=$!
sleep 0.3
out=$(lb lb healthcheck run 2>&1)
check "run: a second checker refuses, naming the first ($out)" \
	contains "$out" "already run in this network namespace (sluice, pid $RUNNER)"
down_and_up run "$TMP/run.log" 2
t0=$(now_ms)
kill -TERM "$RUNNER"
wait "$RUNNER"
rc=$?
ms=$(($(now_ms) - t0))
RUNNER=
check "run: SIGTERM stops it cleanly (status $rc, $ms ms)" [ "$rc" -eq 0 -a "$ms" -lt 1000 ]
check "run: says it stopped" grep -q "checker stopped" "$TMP/run.log"
check "show: no checker running" show_has ".checker.running == false"

# 2. The checker in sluiced, with the settings left by the first.
nsenter --net="/run/netns/$LNS" "$SLUICED" --socket "$SOCK" --foreground \
	--log-level info 2>>"$TMP/sluiced.log" &
DPID=$!
for _ in $(seq 100); do
	[ "$(curl -s --unix-socket "$SOCK" http://sluiced/v1/lb/health | jq -r .checker.by 2>/dev/null)" = sluiced ] && break
	sleep 0.05
done
check "sluiced: GET /v1/lb/health says the daemon checks" \
	[ "$(curl -s --unix-socket "$SOCK" http://sluiced/v1/lb/health | jq -r '.checker | "\(.by) \(.pid)"')" = "sluiced $DPID" ]
out=$(lb lb healthcheck run 2>&1)
check "sluiced: the foreground checker refuses while it runs ($out)" \
	contains "$out" "already run in this network namespace (sluiced, pid $DPID)"
down_and_up sluiced "$TMP/sluiced.log" 3
curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$TMP/metrics"
labels='instance="lb",service="tcp 10.210.100.1:80",backend="10.210.3.2:80"'
metric_is() { grep -qxF "$1 $2" "$TMP/metrics"; }
check "sluiced: /metrics: a checker runs" metric_is sluice_lb_health_checker_running 1
check "sluiced: /metrics: b3 up" metric_is "sluice_lb_health_up{$labels}" 1
check "sluiced: /metrics: b3 changed twice" \
	metric_is "sluice_lb_health_changes_total{$labels}" 2
view='[.services[] | .service, .instance, .check, (.backends[] | .backend, .health, .lb)]'
api=$(curl -s --unix-socket "$SOCK" http://sluiced/v1/lb/health | jq -c "$view")
cli=$(lb -j lb healthcheck show | jq -c "$view")
check "sluiced: GET /v1/lb/health and show -j say the same" [ -n "$api" -a "$api" = "$cli" ]
# Writes through the daemon: the CLI sends them there when it serves the
# namespace on its socket, and a bad body is refused naming the field.
SLUICE_SOCKET=$SOCK lb -v lb healthcheck set -t $SVC --fall 4 2>"$TMP/set.err"
check "sluiced: set through the daemon" [ $? -eq 0 ]
check "sluiced: set went through PUT /v1/lb/health/tcp/..." \
	grep -q "PUT /v1/lb/health/tcp/10.210.100.1:80 204" "$TMP/sluiced.log"
check "sluiced: set changed only fall" show_has ".services[0].check |
	.fall == 4 and .rise == 2 and .path == \"/ok\" and .interval_ms == 250"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' --unix-socket "$SOCK" -X PUT \
	-d '{"type":"http","interval_ms":100,"timeout_ms":500}' \
	"http://sluiced/v1/lb/health/tcp/$SVC")
check "sluiced: PUT with timeout above interval: 400 naming timeout ($(cat "$TMP/body"))" \
	[ "$code" = 400 -a "$(jq -r .field "$TMP/body")" = timeout ]
code=$(curl -s -o "$TMP/body" -w '%{http_code}' --unix-socket "$SOCK" -X PUT \
	-d '{"kind":"http"}' "http://sluiced/v1/lb/health/tcp/$SVC")
check "sluiced: PUT with an unknown field: 400 ($(cat "$TMP/body"))" \
	[ "$code" = 400 -a "$(jq -r .field "$TMP/body")" = kind ]
code=$(curl -s -o "$TMP/body" -w '%{http_code}' --unix-socket "$SOCK" -X PUT \
	-d '{}' "http://sluiced/v1/lb/health/tcp/10.210.100.9:80")
check "sluiced: PUT for a service the LB lacks: 404 ($(cat "$TMP/body"))" [ "$code" = 404 ]
check "sluiced: refused PUTs changed nothing" show_has ".services[0].check |
	.fall == 4 and .type == \"http\" and .interval_ms == 250"
SLUICE_SOCKET=$SOCK lb lb healthcheck set -t $SVC --fall $FALL
t0=$(now_ms)
kill -TERM "$DPID"
wait "$DPID"
rc=$?
ms=$(($(now_ms) - t0))
DPID=
check "sluiced: SIGTERM stops the daemon and its checker (status $rc, $ms ms)" \
	[ "$rc" -eq 0 -a "$ms" -lt 2000 ]

# 3. A backend left down with no checker, then the check deleted.
nsenter --net="/run/netns/$LNS" "$SLUICE" lb healthcheck run --refresh 200 \
	>"$TMP/run2.log" 2>&1 &
RUNNER=$!
stop_server 1
ms=$(wait_state 1 down $DOWN_MS)
check "del: b1 down ($ms ms)" [ "$(lb_state_of 1)" = down ]
kill -TERM "$RUNNER"
wait "$RUNNER"
RUNNER=
check "del: with no checker the LB keeps b1 down" [ "$(lb_state_of 1)" = down ]
lb lb healthcheck del -t $SVC
check "del: the check deleted" [ $? -eq 0 ]
check "del: every backend is up again in the LB" [ "$(lb_state_of 1)" = up ]
check "del: show lists no check" \
	[ "$(lb -j lb healthcheck show | jq -c .services)" = "[]" ]
out=$(lb lb healthcheck del -t $SVC 2>&1)
check "del: a second del refused ($out)" contains "$out" "no health check"

sl_exit
