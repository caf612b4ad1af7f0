#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end HTTP monitor test with real HTTP between two namespaces:
# counts per method/route/status equal to what the client sent, latency
# against a server that sleeps 50 ms, keep-alive and fresh connections,
# the template cap under 1,000 distinct paths, hostile traffic (binary
# garbage, split request lines, 60 KiB headers) leaving the data plane and
# the counting intact, and spans over OTLP/HTTP JSON to a local receiver,
# from `sluice http spans` and from sluiced --otlp-endpoint (with its
# /metrics families checked by promtool).
#
# Topology: client ns (CDEV, 10.203.0.1) <-veth-> server ns (SDEV,
# 10.203.0.2); httpmon on SDEV (TC ingress and egress), ports 8080 (the
# service) and 8081 (a second instance for the cap test).
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name htc)
SNS=$(sl_name hts)
CDEV=$(sl_name hc)
SDEV=$(sl_name hs)
NET=10.203.0
TMP=$(mktemp -d /tmp/sluice-e2ehttp.XXXXXX)
PY=/usr/bin/python3 # not a pyenv shim: $! must be the python process
SLUICED=${SLUICED:-$(dirname "$SLUICE")/sluiced}
PIDS=()
INST=http-$SDEV
CAP=httpcap

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
[ -x "$SLUICED" ] || { fail "build/sluiced missing (run make)"; exit 1; }
command -v jq >/dev/null || { fail "jq missing (scripts/deps.sh)"; exit 1; }
command -v promtool >/dev/null || { fail "promtool missing (scripts/deps.sh)"; exit 1; }

ss_() { sl_in "$SNS" "$SLUICE" "$@"; } # sluice in the server namespace
sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" "$NET" fd00:203:: || { fail "setup: veth pair"; exit 1; }

# ---- the server: latency and status chosen by the path ------------------
cat >"$TMP/srv.py" <<'EOF'
# /sleep/MS sleeps MS ms, /status/CODE answers CODE, anything else 200
# (201 for POST). HTTP/1.1 keep-alive; bodies read and discarded.
import http.server, socketserver, sys, threading, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True  # headers then body: no 40 ms stalls
    def log_message(self, *a): pass
    def handle_any(self, ok):
        n = int(self.headers.get('Content-Length') or 0)
        if n: self.rfile.read(n)
        parts = self.path.split('?')[0].split('/')
        code = ok
        if len(parts) > 2 and parts[1] == 'sleep': time.sleep(int(parts[2]) / 1000)
        if len(parts) > 2 and parts[1] == 'status': code = int(parts[2])
        body = b'ok\n'
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self): self.handle_any(200)
    def do_DELETE(self): self.handle_any(200)
    def do_PUT(self): self.handle_any(200)
    def do_POST(self): self.handle_any(201)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
for p in (8080, 8081):
    s = S(('0.0.0.0', p), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
open(sys.argv[1], 'w').write('ready\n')
time.sleep(600)  # never outlives a hung test for long
EOF

# ---- the client: requests from a plan, counted as sent ------------------
cat >"$TMP/cli.py" <<'EOF'
# cli.py HOST PORT PLAN: PLAN lines "N METHOD PATH [keep|new] [tp=TRACEPARENT]"
# sends N requests each (keep: one keep-alive connection for the line);
# prints "METHOD PATH STATUS" per answer.
import http.client, sys
host, port = sys.argv[1], int(sys.argv[2])
for line in open(sys.argv[3]):
    w = line.split()
    if not w: continue
    n, method, path = int(w[0]), w[1], w[2]
    keep = 'new' not in w[3:]
    hdr = {}
    for x in w[3:]:
        if x.startswith('tp='): hdr['traceparent'] = x[3:]
    c = None
    for i in range(n):
        if c is None or not keep:
            c = http.client.HTTPConnection(host, port, timeout=10)
        p = path.replace('{i}', str(i)).replace('{a}', ''.join(chr(97 + (i // 26 ** k) % 26) for k in range(3)))
        c.request(method, p, body=b'x' * 10 if method in ('POST', 'PUT') else None, headers=hdr)
        r = c.getresponse(); r.read()
        print(method, p, r.status)
        if not keep: c.close()
    if c: c.close()
EOF

# ---- the OTLP receiver ---------------------------------------------------
cat >"$TMP/otlp.py" <<'EOF'
# A small OTLP/HTTP JSON receiver: POST /v1/traces bodies appended to OUT
# (one JSON document a line) when they are valid JSON of the OTLP shape;
# a body that is not gets a 400 and a line "INVALID: why" in OUT.
import http.server, json, sys
out = sys.argv[2]
def check(d):
    assert isinstance(d['resourceSpans'], list)
    for rs in d['resourceSpans']:
        assert isinstance(rs['resource']['attributes'], list)
        for ss in rs['scopeSpans']:
            assert isinstance(ss['scope']['name'], str)
            for s in ss['spans']:
                for k in ('traceId', 'spanId', 'parentSpanId', 'name', 'kind',
                          'startTimeUnixNano', 'endTimeUnixNano', 'attributes'):
                    assert k in s, k
                assert isinstance(s['startTimeUnixNano'], str), 'times are strings'
                for a in s['attributes']:
                    assert set(a) == {'key', 'value'} and len(a['value']) == 1, a
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        try:
            assert self.path == '/v1/traces', self.path
            assert self.headers['Content-Type'] == 'application/json'
            d = json.loads(body)
            check(d)
            line, code = json.dumps(d), 200
        except Exception as e:
            line, code = 'INVALID: %r' % e, 400
        with open(out, 'a') as f: f.write(line + '\n')
        self.send_response(code)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'{}')
s = http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H)
open(out + '.ready', 'w').write('ready\n')
s.timeout = 1
import time
end = time.time() + 600
while time.time() < end: s.handle_request()
EOF

wait_file() { # wait_file FILE SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}

# nsenter execs the program: $! is its PID, which cleanup stops.
nsenter --net="/run/netns/$SNS" $PY "$TMP/srv.py" "$TMP/srv.ready" &
PIDS+=($!)
nsenter --net="/run/netns/$SNS" $PY "$TMP/otlp.py" 4318 "$TMP/otlp.jsonl" &
PIDS+=($!)
wait_file "$TMP/srv.ready" 10 && wait_file "$TMP/otlp.jsonl.ready" 10 ||
	{ fail "setup: servers did not start"; exit 1; }

check "attach httpmon on $SDEV port 8080, route /assets/*" ss_ httpmon attach "$SDEV" --port 8080 --route '/assets/*'
check "attach a second instance, port 8081" ss_ httpmon attach "$SDEV" --port 8081 --name $CAP
check "refused: port 0" bash -c "! nsenter --net=/run/netns/$SNS $SLUICE httpmon attach $SDEV --port 0 --name bad 2>/dev/null"
check "refused: a route without its star" bash -c "! nsenter --net=/run/netns/$SNS $SLUICE httpmon attach $SDEV --port 80 --route /x --name bad 2>/dev/null"
check "refused: no such device" bash -c "! nsenter --net=/run/netns/$SNS $SLUICE httpmon attach nosuchdev0 --port 80 --name bad 2>/dev/null"
check "refused attaches left no instance" bash -c "! nsenter --net=/run/netns/$SNS $SLUICE http stats --name bad >/dev/null 2>&1"

run_plan() { # run_plan PORT PLANFILE OUT
	sl_in "$CNS" timeout 120 $PY "$TMP/cli.py" "$NET.2" "$1" "$2" >"$3"
}
# stat_of ROUTE METHOD CLASS FIELD [INSTANCE]
stat_of() {
	ss_ http stats --json | jq -r --arg r "$1" --arg m "$2" --arg c "$3" --arg i "${5:-$INST}" \
		"[.instances[] | select(.name == \$i) | .rows[] | select(.route == \$r and .method == \$m and .status == \$c) | .$4] | add // 0"
}
counter() { # counter NAME [INSTANCE]
	ss_ http stats --json | jq -r --arg i "${2:-$INST}" ".instances[] | select(.name == \$i) | .counters.$1"
}

# ---- counts per method, route, status ------------------------------------
cat >"$TMP/plan1" <<'EOF'
20 GET /users/{i} keep
5 GET /users/{i} new
10 POST /orders keep
4 PUT /orders/{i}/items new
6 GET /status/404 keep
3 GET /status/500 new
2 DELETE /status/503 keep
7 GET /static/css/app/{a}.css keep
5 GET /assets/{a}/x.js new
EOF
run_plan 8080 "$TMP/plan1" "$TMP/out1"
check "client: 62 answers" test "$(wc -l <"$TMP/out1")" -eq 62
check "GET /users/{id} 2xx = 25" test "$(stat_of '/users/{id}' GET 2xx requests)" -eq 25
check "POST /orders 2xx = 10" test "$(stat_of /orders POST 2xx requests)" -eq 10
check "PUT /orders/{id}/items 2xx = 4" test "$(stat_of '/orders/{id}/items' PUT 2xx requests)" -eq 4
check "GET /status/{id} 4xx = 6, all errors" \
	test "$(stat_of '/status/{id}' GET 4xx requests)/$(stat_of '/status/{id}' GET 4xx client_errors)" = 6/6
check "GET /status/{id} 5xx = 3" test "$(stat_of '/status/{id}' GET 5xx server_errors)" -eq 3
check "DELETE /status/{id} 5xx = 2" test "$(stat_of '/status/{id}' DELETE 5xx requests)" -eq 2
check "GET /static/css/app/* 2xx = 7 (depth cap)" test "$(stat_of '/static/css/app/*' GET 2xx requests)" -eq 7
check "GET /assets/* 2xx = 5 (configured route)" test "$(stat_of '/assets/*' GET 2xx requests)" -eq 5
check "requests = responses = 62" test "$(counter requests)/$(counter responses)" = 62/62
check "CLI text output has the rows" bash -c "nsenter --net=/run/netns/$SNS $SLUICE http stats | grep -q '/users/{id}'"

# ---- latency against a server sleeping 50 ms -------------------------------
printf '10 GET /sleep/50 keep\n' >"$TMP/plan2"
run_plan 8080 "$TMP/plan2" "$TMP/out2"
p50=$(stat_of '/sleep/{id}' GET 2xx p50_us)
p99=$(stat_of '/sleep/{id}' GET 2xx p99_us)
mean=$(stat_of '/sleep/{id}' GET 2xx mean_us)
fast=$(stat_of /orders POST 2xx mean_us)
echo "latency: /sleep/50 p50 ${p50} us p99 ${p99} us mean ${mean} us; POST /orders mean ${fast} us"
check "sleep 50 ms: mean 50..150 ms" test "$mean" -ge 50000 -a "$mean" -le 150000
check "sleep 50 ms: p50 in the 50-100 ms bucket" test "$p50" -ge 50000 -a "$p50" -le 100000
check "sleep 50 ms: p99 at most 250 ms" test "$p99" -le 250000
check "fast requests: mean under 20 ms" test "$fast" -lt 20000
check "histogram buckets are cumulative, +Inf = count" bash -c \
	"nsenter --net=/run/netns/$SNS $SLUICE http stats --json | jq -e '[.instances[].rows[] | (.buckets | [.[].count] | . == (sort)) and (.buckets[-1].count == .requests)] | all' >/dev/null"

# ---- cardinality cap: 1,000 distinct paths on the second instance ----------
printf '1000 GET /c{a} keep\n' >"$TMP/plan3"
run_plan 8081 "$TMP/plan3" "$TMP/out3"
check "cap: client got 1000 answers" test "$(wc -l <"$TMP/out3")" -eq 1000
tmpl=$(ss_ http stats --json | jq -r ".instances[] | select(.name == \"$CAP\") | .templates")
other=$(stat_of other GET 2xx requests $CAP)
total=$(ss_ http stats --json | jq -r "[.instances[] | select(.name == \"$CAP\") | .rows[].requests] | add")
check "cap: 64 templates kept (got $tmpl)" test "$tmpl" -eq 64
check "cap: 936 requests as other (got $other)" test "$other" -eq 936
check "cap: all 1000 counted (got $total)" test "$total" -eq 1000
check "cap: the first instance did not see port 8081" test "$(counter requests)" -eq 72

# ---- hostile traffic ----------------------------------------------------------
cat >"$TMP/hostile.py" <<'EOF'
import os, socket, sys, time
host = sys.argv[1]
def conn():
    s = socket.create_connection((host, 8080), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
def drain(s):
    try:
        while s.recv(65536): pass
    except OSError: pass
    s.close()
# binary garbage: 256 KiB of random bytes, several writes
s = conn()
try:
    for i in range(16): s.sendall(os.urandom(16384))
    s.shutdown(socket.SHUT_WR)
except OSError: pass
drain(s)
# split request lines: the line in three segments, 100 ms apart
for parts in ([b'GET /spl', b'it/1 HTTP/1', b'.1\r\nHost: x\r\nConnection: close\r\n\r\n'],
              [b'GE', b'T /split/2 HTTP/1.1\r\nConnection: close\r\n\r\n']):
    s = conn()
    for p in parts:
        s.sendall(p); time.sleep(0.1)
    drain(s)
# 60 KiB of headers, in many segments
s = conn()
s.sendall(b'GET /big/1 HTTP/1.1\r\nConnection: close\r\n' +
          b''.join(b'X-Fill-%d: %s\r\n' % (i, b'f' * 750) for i in range(80)) + b'\r\n')
drain(s)
# one 64 KiB header line (over the server's limit: it answers 431 or 400)
s = conn()
s.sendall(b'GET /big/2 HTTP/1.1\r\nConnection: close\r\nX-Huge: ' + b'h' * 65536 + b'\r\n\r\n')
drain(s)
print('done')
EOF
req0=$(counter requests)
part0=$(counter partial)
check "hostile: garbage, split lines, huge headers sent" \
	bash -c "nsenter --net=/run/netns/$CNS timeout 60 $PY $TMP/hostile.py $NET.2 | grep -q done"
check "hostile: split request line counted as partial" test "$(counter partial)" -ge $((part0 + 1))
big=$(ss_ http stats --json | jq "[.instances[].rows[] | select(.route == \"/big/{id}\") | .requests] | add")
check "hostile: 60 KiB headers requests counted as /big/{id} (got $big)" test "${big:-0}" -eq 2
printf '5 GET /users/{i} keep\n3 POST /orders new\n' >"$TMP/plan4"
run_plan 8080 "$TMP/plan4" "$TMP/out4"
check "hostile: later requests answered" test "$(wc -l <"$TMP/out4")" -eq 8
check "hostile: later requests still counted" test "$(stat_of '/users/{id}' GET 2xx requests)" -eq 30
check "hostile: ping still flows" sl_in "$CNS" ping -c 2 -i 0.2 -W 2 -q "$NET.2" >/dev/null
ss_ -j status >"$TMP/status.json"
check "hostile: nothing dropped in the namespace" \
	jq -e '[.. | objects | select(has("dropped")) | .dropped] | (length > 0 and add == 0)' "$TMP/status.json" >/dev/null

# ---- spans: `sluice http spans` to the receiver -----------------------------
TP1=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
TP2=00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-01
nsenter --net="/run/netns/$SNS" timeout 30 "$SLUICE" http spans --otlp-endpoint http://127.0.0.1:4318 \
	--count 3 --timeout 25 >"$TMP/spans.txt" 2>"$TMP/spans.err" &
SPID=$!
PIDS+=($SPID)
sleep 0.5
T0=$(date +%s%N)
printf '1 GET /sleep/50 keep tp=%s\n1 GET /status/502 keep tp=%s\n1 POST /orders new tp=%s\n1 GET /users/9 keep\n' \
	"$TP1" "$TP2" "$TP1" >"$TMP/plan5"
run_plan 8080 "$TMP/plan5" "$TMP/out5"
T1=$(date +%s%N)
wait "$SPID"
src=$?
check "spans: sluice http spans sent 3 and exited 0" test "$src" -eq 0
grep -q "3 spans sent, 0 failed, 0 dropped" "$TMP/spans.err" || { fail "spans: exporter counts"; cat "$TMP/spans.err"; }
cat >"$TMP/verify.py" <<'EOF'
# verify.py OTLP.jsonl T0 T1 INSTANCE SERVER CLIENT EXPECT...: EXPECT is
# "TRACE:PARENT:METHOD:ROUTE:STATUS:MINMS"; checks every expected span is
# there once, with its fields, and that nothing invalid came in.
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
inst, server, client = sys.argv[4], sys.argv[5], sys.argv[6]
bad = [l for l in lines if l.startswith('INVALID')]
assert not bad, bad
spans = []
for l in lines:
    d = json.loads(l)
    for rs in d['resourceSpans']:
        res = {a['key']: a['value'] for a in rs['resource']['attributes']}
        assert res['service.name'] == {'stringValue': 'sluice'}, res
        for ss in rs['scopeSpans']:
            assert ss['scope']['name'] == 'sluice.httpmon'
            spans += ss['spans']
for e in sys.argv[7:]:
    trace, parent, method, route, status, minms = e.split(':')
    m = [s for s in spans if s['traceId'] == trace and s['parentSpanId'] == parent and
         s['name'] == method + ' ' + route]
    assert len(m) == 1, (e, len(m))
    s = m[0]
    a = {x['key']: x['value'] for x in s['attributes']}
    assert re.fullmatch('[0-9a-f]{16}', s['spanId']) and s['spanId'] != parent and \
        s['spanId'] != '0' * 16, s['spanId']
    assert s['kind'] == 2, s['kind']  # SPAN_KIND_SERVER
    assert s['name'] == method + ' ' + route, s['name']
    st, en = int(s['startTimeUnixNano']), int(s['endTimeUnixNano'])
    assert t0 - 10**9 <= st <= en <= t1 + 10**9, (t0, st, en, t1)
    assert en - st >= int(minms) * 10**6, (en - st, minms)
    assert a['http.response.status_code'] == {'intValue': status}, a
    assert a['http.route'] == {'stringValue': route}, a
    assert a['server.address'] == {'stringValue': server}
    assert a['server.port'] == {'intValue': '8080'}
    assert a['client.address'] == {'stringValue': client}
    assert a['network.peer.address'] == {'stringValue': client}
    assert 'client.port' in a and 'network.peer.port' in a
    assert a['sluice.nf.instances']['arrayValue']['values'] == [{'stringValue': inst}], a
    if int(status) >= 500:
        assert s['status']['code'] == 2, s['status']  # STATUS_CODE_ERROR
    else:
        assert s['status'].get('code', 0) == 0, s['status']
print('ok', len(spans))
EOF
S1=${TP1:3:32}:${TP1:36:16}
S2=${TP2:3:32}:${TP2:36:16}
check "spans: OTLP JSON valid; trace and parent ids, span ids, kind, timing, attributes, status" \
	sl_in "$SNS" $PY "$TMP/verify.py" "$TMP/otlp.jsonl" "$T0" "$T1" "$INST" "$NET.2" "$NET.1" \
	"$S1:GET:/sleep/{id}:200:50" "$S2:GET:/status/{id}:502:0" "$S1:POST:/orders:201:0"
check "spans: only the 3 traced requests were sent" \
	test "$(jq -s '[.[].resourceSpans[].scopeSpans[].spans[]] | length' "$TMP/otlp.jsonl")" -eq 3

# ---- spans and metrics through sluiced --otlp-endpoint ------------------------
: >"$TMP/otlp.jsonl"
SOCK=$TMP/sluiced.sock
nsenter --net="/run/netns/$SNS" "$SLUICED" --foreground --socket "$SOCK" --log-level warn \
	--otlp-endpoint http://127.0.0.1:4318/ 2>"$TMP/sluiced.log" &
DPID=$!
PIDS+=($DPID)
wait_sock() { local i; for ((i = 0; i < 50; i++)); do [ -S "$SOCK" ] && return 0; sleep 0.1; done; return 1; }
check "daemon: started with --otlp-endpoint" wait_sock
sleep 1.2 # the job looks for the ring every second
TP3=00-6bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-00
T0=$(date +%s%N)
printf '1 GET /sleep/20 keep tp=%s\n1 GET /status/503 keep tp=%s\n' "$TP3" "$TP3" >"$TMP/plan6"
run_plan 8080 "$TMP/plan6" "$TMP/out6"
T1=$(date +%s%N)
got=0
for ((i = 0; i < 50; i++)); do
	got=$(jq -s '[.[].resourceSpans[].scopeSpans[].spans[]] | length' "$TMP/otlp.jsonl" 2>/dev/null)
	[ "${got:-0}" -ge 2 ] && break
	sleep 0.2
done
S3=${TP3:3:32}:${TP3:36:16}
check "daemon: 2 spans received (got $got)" test "${got:-0}" -eq 2
check "daemon: spans carry ids, timing, attributes" \
	sl_in "$SNS" $PY "$TMP/verify.py" "$TMP/otlp.jsonl" "$T0" "$T1" "$INST" "$NET.2" "$NET.1" \
	"$S3:GET:/sleep/{id}:200:20"
curl -s --unix-socket "$SOCK" http://localhost/metrics >"$TMP/metrics.txt"
if promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool" 2>&1; then
	pass "metrics: promtool check metrics finds no problem"
else
	fail "metrics: promtool check metrics: $(head -5 "$TMP/promtool")"
fi
check "metrics: requests_total for GET /users/{id} 2xx = 31" \
	grep -q "^sluice_http_requests_total{instance=\"$INST\",port=\"8080\",method=\"GET\",route=\"/users/{id}\",status_class=\"2xx\"} 31$" "$TMP/metrics.txt"
check "metrics: duration histogram with le buckets, _sum, _count" bash -c \
	"grep -q '^sluice_http_request_duration_seconds_bucket{.*route=\"/sleep/{id}\".*le=\"0.1\"}' $TMP/metrics.txt &&
	 grep -q '^sluice_http_request_duration_seconds_count{.*route=\"/sleep/{id}\"' $TMP/metrics.txt &&
	 grep -q '^sluice_http_request_duration_seconds_sum{.*route=\"/sleep/{id}\"' $TMP/metrics.txt"
check "metrics: server errors counted" \
	grep -q "^sluice_http_request_errors_total{instance=\"$INST\",port=\"8080\",method=\"GET\",route=\"/status/{id}\",status_class=\"5xx\"} 5$" "$TMP/metrics.txt"
check "metrics: OTLP spans sent" grep -q '^sluice_otlp_spans_total{result="sent"} 2$' "$TMP/metrics.txt"
check "metrics: prometheus_client parses the page" sl_in "$SNS" $PY -c "
import sys
from prometheus_client.parser import text_string_to_metric_families as p
f = {m.name: m for m in p(open('$TMP/metrics.txt').read())}
assert f['sluice_http_request_duration_seconds'].type == 'histogram'
assert f['sluice_http_requests'].type == 'counter'
"
# The REST resource, and the CLI through the daemon.
api() { sl_in "$SNS" curl -s --unix-socket "$SOCK" -o "$TMP/api.json" -w '%{http_code}' "$@"; }
check "api: GET /v1/httpmons/$INST" test "$(api "http://localhost/v1/httpmons/$INST")" = 200
check "api: its rows match the CLI's" \
	jq -e '[.rows[] | select(.route == "/users/{id}" and .method == "GET" and .status == "2xx") | .requests] == [31]' "$TMP/api.json" >/dev/null
check "api: PUT with port 0 is a 400 naming ports" bash -c \
	"[ \"\$(nsenter --net=/run/netns/$SNS curl -s --unix-socket $SOCK -o $TMP/api.json -w '%{http_code}' -X PUT -d '{\"dev\":\"$SDEV\",\"ports\":[0]}' http://localhost/v1/httpmons/viad)\" = 400 ] && jq -e '.field == \"ports\"' $TMP/api.json >/dev/null"
check "api: the refused PUT left no instance" test "$(api http://localhost/v1/httpmons/viad)" = 404
check "cli via daemon: httpmon attach" sl_in "$SNS" env SLUICE_SOCKET="$SOCK" "$SLUICE" httpmon attach "$SDEV" --port 9999 --name viad
check "cli via daemon: the instance has port 9999" bash -c \
	"[ \"\$(nsenter --net=/run/netns/$SNS curl -s --unix-socket $SOCK -o $TMP/api.json -w '%{http_code}' http://localhost/v1/httpmons/viad)\" = 200 ] && jq -e '.ports == [9999]' $TMP/api.json >/dev/null"
check "cli via daemon: httpmon detach" sl_in "$SNS" env SLUICE_SOCKET="$SOCK" "$SLUICE" httpmon detach "$SDEV" --name viad
check "cli via daemon: detached and deleted" test "$(api http://localhost/v1/httpmons/viad)" = 404
t=$(date +%s%N)
kill "$DPID"
wait "$DPID"
drc=$?
t=$((($(date +%s%N) - t) / 1000000))
check "daemon: stops cleanly within 2 s (${t} ms, rc $drc)" test "$drc" -eq 0 -a "$t" -lt 2000

# ---- a collector that is away: spans dropped and counted, traffic flows ----
nsenter --net="/run/netns/$SNS" "$SLUICED" --foreground --socket "$SOCK" --log-level warn \
	--otlp-endpoint http://127.0.0.1:4399 2>>"$TMP/sluiced.log" &
DPID=$!
PIDS+=($DPID)
wait_sock && sleep 1.2
printf '3 GET /users/{i} new tp=%s\n' "$TP3" >"$TMP/plan7"
run_plan 8080 "$TMP/plan7" "$TMP/out7"
check "collector away: requests answered" test "$(wc -l <"$TMP/out7")" -eq 3
failed=0
for ((i = 0; i < 25; i++)); do
	failed=$(curl -s --unix-socket "$SOCK" http://localhost/metrics |
		sed -n 's/^sluice_otlp_spans_total{result="failed"} //p')
	[ "${failed:-0}" -ge 3 ] && break
	sleep 0.2
done
check "collector away: 3 spans counted as failed (got $failed)" test "${failed:-0}" -eq 3
kill "$DPID"
wait "$DPID"
# ---- a collector that never answers: the daemon still stops within ~1 s ---
nsenter --net="/run/netns/$SNS" $PY -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 4398)); s.listen(16); open('$TMP/mute.ready', 'w').write('ready')
conns = []
end = time.time() + 300
while time.time() < end:
    s.settimeout(1)
    try: conns.append(s.accept()[0])
    except OSError: pass
" &
PIDS+=($!)
wait_file "$TMP/mute.ready" 10
nsenter --net="/run/netns/$SNS" "$SLUICED" --foreground --socket "$SOCK" --log-level warn \
	--otlp-endpoint http://127.0.0.1:4398 2>>"$TMP/sluiced.log" &
DPID=$!
PIDS+=($DPID)
wait_sock && sleep 1.2
printf '2 GET /users/{i} new tp=%s\n' "$TP3" >"$TMP/plan9"
run_plan 8080 "$TMP/plan9" "$TMP/out9"
sleep 0.6 # the sender's POST is now waiting for the mute collector
t=$(date +%s%N)
kill "$DPID"
wait "$DPID"
drc=$?
t=$((($(date +%s%N) - t) / 1000000))
check "mute collector: daemon stops within 1.5 s (${t} ms, rc $drc)" test "$drc" -eq 0 -a "$t" -lt 1500
check "refused: sluiced --otlp-endpoint not-a-url" \
	bash -c "! $SLUICED --otlp-endpoint not-a-url --socket $TMP/x.sock 2>/dev/null"

# ---- detach: traffic flows, nothing counted any more ---------------------------
check "detach $INST" ss_ httpmon detach "$SDEV"
check "detach $CAP" ss_ httpmon detach "$SDEV" --name $CAP
run_plan 8080 "$TMP/plan4" "$TMP/out8"
check "after detach: requests answered" test "$(wc -l <"$TMP/out8")" -eq 8
check "after detach: the instance is gone" bash -c "! nsenter --net=/run/netns/$SNS $SLUICE http stats --name $INST >/dev/null 2>&1"

[ "$SL_FAILS" -ne 0 ] && { echo "--- sluiced log"; cat "$TMP/sluiced.log"; }
sl_exit
