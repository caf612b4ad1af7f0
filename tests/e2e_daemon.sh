#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end test of sluiced, the REST daemon, in namespaces this test
# creates: every route's happy path and error codes through curl on the Unix
# socket; a refused write changes nothing; kill -9 of the daemon in the middle
# of a UDP stream loses no datagram and lets no blocked one through, and the
# restarted daemon finds the same state; concurrent writers (two HTTP clients
# and the CLI) leave exactly one of their rule sets, never a mix; the bearer
# token on the TCP listener; SIGTERM exits cleanly.
#
# Topology: client ns (CDEV, 10.203.0.1) <-veth-> server ns (SDEV,
# 10.203.0.2). sluiced runs in the server namespace; the firewall sits on
# SDEV's XDP ingress.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

SLUICED=${SLUICED:-$(pwd)/build/sluiced}
CNS=$(sl_name dmc)
SNS=$(sl_name dms)
CDEV=$(sl_name dc)
SDEV=$(sl_name ds)
SOCK=/run/sluice/test-$$.sock
TMP=$(mktemp -d /tmp/sluice-e2ed.XXXXXX)
PY=/usr/bin/python3   # not a pyenv shim: $! must be the python process
DPID=       # the daemon this test started
PIDS=()     # other processes this test started
START=$(date +%s)

cleanup() {
	local p
	for p in "${PIDS[@]}" $DPID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -f "$SOCK"
	if [ "$SL_FAILS" -ne 0 ] && [ -s "$TMP/sluiced.log" ]; then
		echo "--- sluiced log (last 30 lines)"
		tail -n 30 "$TMP/sluiced.log"
	fi
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICED" ] || { fail "build/sluiced missing (run make)"; exit 1; }
command -v curl >/dev/null && command -v jq >/dev/null ||
	{ fail "curl and jq are needed"; exit 1; }

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.203.0 fd00:203:: ||
	{ fail "setup: veth pair"; exit 1; }
# No IPv6 chatter (router solicitations, MLD): counters move only with the
# traffic the test sends, so "nothing changed" can compare them exactly.
sl_in "$CNS" sysctl -qw "net.ipv6.conf.$CDEV.disable_ipv6=1"
sl_in "$SNS" sysctl -qw "net.ipv6.conf.$SDEV.disable_ipv6=1"
sc() { sl_in "$SNS" "$SLUICE" "$@"; }  # the CLI in the server namespace

# ---- daemon and client helpers ------------------------------------------

# start_daemon [ARGS...]: starts sluiced in the server namespace and waits
# until it answers. nsenter execs it, so $! is the daemon's PID.
start_daemon() {
	nsenter --net="/run/netns/$SNS" "$SLUICED" --socket "$SOCK" --foreground \
		--log-level warn "$@" 2>>"$TMP/sluiced.log" &
	DPID=$!
	for _ in $(seq 100); do
		curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && return 0
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.05
	done
	return 1
}

# api METHOD PATH [BODY|@FILE]: prints the status code; the body goes to
# $TMP/body.
api() {
	local m=$1 p=$2 data=()
	[ $# -ge 3 ] && data=(-H 'Content-Type: application/json' --data-binary "$3")
	curl -s --unix-socket "$SOCK" -X "$m" -o "$TMP/body" -w '%{http_code}' \
		"${data[@]}" "http://sluiced$p"
}
# expect NAME CODE METHOD PATH [BODY]: PASS when the status is CODE.
expect() {
	local name=$1 want=$2 got
	shift 2
	got=$(api "$@")
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name (HTTP $got, want $want: $(head -c 300 "$TMP/body"))"
	fi
}
# jbody FILTER: jq on the last body.
jbody() { jq -r "$@" "$TMP/body"; }
fw_cli() { sc -j firewall show --name "$1"; }

# ---- basics -------------------------------------------------------------

check "daemon: starts in the namespace" start_daemon
check "daemon: socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
expect "health: 200" 200 GET /v1/health
check "health: ok, no state yet" test "$(jbody '"\(.ok) \(.state_loaded)"')" = "true false"
expect "status: 200" 200 GET /v1/status
check "status: not loaded" test "$(jbody .loaded)" = false
expect "chains: 200" 200 GET /v1/chains
check "chains: empty" test "$(jbody length)" = 0
expect "instances: 200 without state" 200 GET /v1/instances
expect "unknown path: 404" 404 GET /v1/nothing
expect "unknown method: 405" 405 POST /v1/chains
check "405 is JSON with an error" test -n "$(jbody .error)"

# ---- firewalls ------------------------------------------------------------

FW='{"dev":"'$SDEV'","rules":["drop proto udp dport 5002","accept proto udp dport 5001","drop proto tcp dport 22"],"default":"accept"}'
expect "firewall PUT: 201 created" 201 PUT /v1/firewalls/fwd "$FW"
check "firewall PUT: answer has 3 rules on $SDEV ingress" \
	test "$(jbody '"\(.rules | length) \(.chains[0].dev) \(.chains[0].hook)"')" = "3 $SDEV ingress"
expect "firewall PUT again: 200 replaced" 200 PUT /v1/firewalls/fwd "$FW"
expect "firewall GET: 200" 200 GET /v1/firewalls/fwd
# Same shape as `sluice -j firewall show`, plus where it runs.
check "firewall GET: same as sluice -j firewall show" \
	test "$(jq -S 'del(.chains)' "$TMP/body")" = "$(fw_cli fwd | jq -S .)"
expect "firewalls list: 200" 200 GET /v1/firewalls
check "firewalls list: fwd" test "$(jbody '.[].name')" = fwd

# Refused writes: the right code, the field named, nothing changed.
before=$(fw_cli fwd)
refused() { # NAME CODE FIELD METHOD PATH BODY
	local name=$1 code=$2 field=$3
	shift 3
	expect "$name: $code" "$code" "$@"
	if [ -n "$field" ]; then
		check "$name: names field $field" test "$(jbody .field)" = "$field"
	fi
	local now
	now=$(fw_cli fwd)
	check "$name: nothing changed" test "$now" = "$before"
	[ "$now" = "$before" ] || diff <(echo "$before" | jq .) <(echo "$now" | jq .)
}
refused "malformed JSON" 400 "" PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","rules":['
refused "unknown field" 400 bogus PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","rules":[],"bogus":1}'
refused "bad rule" 400 "rules[1]" PUT /v1/firewalls/fwd \
	'{"dev":"'$SDEV'","rules":["accept proto tcp dport 80","drop proto tcp dport 99999"]}'
check "bad rule: message names rules[1] and the reason" \
	grep -q '^rules\[1\]: dport: bad port' <(jbody .error)
refused "rules not an array" 400 rules PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","rules":"accept"}'
refused "rule not a string" 400 "rules[0]" PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","rules":[7]}'
refused "missing dev" 400 dev PUT /v1/firewalls/fwd '{"rules":[]}'
refused "bad default" 400 default PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","rules":[],"default":"maybe"}'
refused "bad hook" 400 hook PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","hook":"sideways","rules":[]}'
refused "unknown interface" 404 dev PUT /v1/firewalls/fwd '{"dev":"nosuchdev0","rules":[]}'
refused "duplicate key" 400 "" PUT /v1/firewalls/fwd '{"dev":"'$SDEV'","dev":"'$SDEV'","rules":[]}'
refused "body not an object" 400 "" PUT /v1/firewalls/fwd '["accept"]'
refused "bad instance name" 400 name PUT '/v1/firewalls/a%20b' '{"dev":"'$SDEV'","rules":[]}'
head -c $((16 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$TMP/big.json"
refused "body over 16 MiB" 413 "" PUT /v1/firewalls/fwd "@$TMP/big.json"
refused "rule pos 0" 400 pos POST /v1/firewalls/fwd/rules '{"rule":"accept","pos":0}'
refused "rule pos past the end" 400 pos POST /v1/firewalls/fwd/rules '{"rule":"accept","pos":9}'
refused "rule pos not an integer" 400 pos POST /v1/firewalls/fwd/rules '{"rule":"accept","pos":"1"}'
refused "bad rule to add" 400 rule POST /v1/firewalls/fwd/rules '{"rule":"reject all"}'
refused "delete missing rule" 404 n DELETE /v1/firewalls/fwd/rules/99
refused "delete rule 0" 400 n DELETE /v1/firewalls/fwd/rules/0
refused "unknown query argument" 400 force DELETE '/v1/firewalls/fwd?force=1'
refused "delete instance in a chain: 409" 409 "" DELETE /v1/instances/fwd
expect "missing firewall: 404" 404 GET /v1/firewalls/nope
expect "missing instance: 404" 404 GET /v1/instances/nope
expect "delete missing instance: 404" 404 DELETE /v1/instances/nope
expect "add rule to missing firewall: 404" 404 POST /v1/firewalls/nope/rules '{"rule":"accept"}'
expect "bad hook in path: 400" 400 GET "/v1/chains/$SDEV/sideways"
expect "chain of unknown interface: 404" 404 GET /v1/chains/nosuchdev0/ingress

# Rule edits keep the others' counters (libsluice does); here: positions.
expect "rule add at pos 1: 201" 201 POST /v1/firewalls/fwd/rules '{"rule":"drop src 203.0.113.7","pos":1}'
check "rule add: first rule, 4 rules" \
	test "$(jbody '"\(.rules | length) \(.rules[0].rule)"')" = "4 drop src 203.0.113.7/32"
expect "rule add appends: 201" 201 POST /v1/firewalls/fwd/rules '{"rule":"accept proto icmp"}'
check "rule add: appended last" test "$(jbody '.rules[4].rule')" = "accept proto icmp"
expect "rule del 1: 200" 200 DELETE /v1/firewalls/fwd/rules/1
expect "rule del 4: 200" 200 DELETE /v1/firewalls/fwd/rules/4
check "rule del: back to the 3 rules" \
	test "$(jq -c '[.rules[].rule]' "$TMP/body")" = "$(fw_cli fwd | jq -c '[.rules[].rule]')"

# Chains and instances.
expect "chains GET: 200" 200 GET /v1/chains
check "chains: fwd on $SDEV ingress" \
	test "$(jbody -c '.[] | [.dev, .hook, .instances]')" = "[\"$SDEV\",\"ingress\",[\"fwd\"]]"
expect "chain PUT tc-ingress: 200" 200 PUT "/v1/chains/$SDEV/tc-ingress" '{"instances":["fwd"]}'
expect "chain GET tc-ingress: 200" 200 GET "/v1/chains/$SDEV/tc-ingress"
check "chain GET: [fwd]" test "$(jbody -c .instances)" = '["fwd"]'
check "chain: the CLI sees it" grep -q tc-ingress <(sc chain show)
expect "chain PUT unknown instance: 404" 404 PUT "/v1/chains/$SDEV/tc-ingress" '{"instances":["fwd","ghost"]}'
check "chain PUT unknown instance: names instances[1]" test "$(jbody .field)" = "instances[1]"
expect "chain PUT not a list: 400" 400 PUT "/v1/chains/$SDEV/tc-ingress" '{"instances":"fwd"}'
expect "chain PUT unknown field: 400" 400 PUT "/v1/chains/$SDEV/tc-ingress" '{"instances":[],"x":1}'
expect "chain DELETE: 204" 204 DELETE "/v1/chains/$SDEV/tc-ingress"
expect "chain GET after DELETE: 404" 404 GET "/v1/chains/$SDEV/tc-ingress"
expect "instances GET: 200" 200 GET /v1/instances
check "instances: fwd with counters and drop reasons" \
	test "$(jbody -c '.[] | select(.name == "fwd") | [.type, (.packets|type), (.drop_reasons|type)]')" = '["firewall","number","object"]'
expect "instance GET: 200" 200 GET /v1/instances/fwd
expect "check firewall: 200" 200 POST /v1/check/firewall '{"rules":["drop src 10.0.0.0/8","accept proto tcp dport 80"]}'
check "check firewall: 2 rules" test "$(jbody .rules)" = 2
expect "check firewall bad rule: 400" 400 POST /v1/check/firewall '{"rules":["drop src 10.0.0.0/99"]}'
expect "status: 200 with state" 200 GET /v1/status
check "status: loaded, 1 instance" test "$(jbody '"\(.loaded) \(.instances | length)"')" = "true 1"

# ---- restart under traffic --------------------------------------------------

# A UDP stream to 5001 (accepted) and 5002 (dropped by rule 1), 1,200
# datagrams each over ~2.5 s; the daemon is killed with SIGKILL a second in
# and started again. The data plane is pinned, so: every datagram to 5001
# arrives, none to 5002 reaches the server's stack, and the rule counters
# equal what was sent.
cat >"$TMP/recv.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(('0.0.0.0', 5001))
open(sys.argv[1], 'w').write('ready\n')
s.settimeout(0.2)
got, last, end = 0, None, time.time() + 30
while time.time() < end:
    try:
        s.recv(2048)
        got += 1
        last = time.time()
    except socket.timeout:
        if last and time.time() - last > 1.5:
            break
print(got)
EOF
cat >"$TMP/send.py" <<'EOF'
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = {5001: 0, 5002: 0}
t0 = time.time()
for i in range(n):
    for port in (5001, 5002):
        s.sendto(b'x%d' % i, (host, port))
        sent[port] += 1
    # paced: datagram pair i leaves at t0 + i * 2 ms
    d = t0 + (i + 1) * 0.002 - time.time()
    if d > 0:
        time.sleep(d)
print(sent[5001], sent[5002])
EOF
noports() { sl_in "$SNS" awk '/^Udp:/ && $2 ~ /^[0-9]/ { print $4 }' /proc/net/snmp; }

sl_in "$CNS" ping -c 1 -W 1 10.203.0.2 >/dev/null  # ARP resolved before the stream
expect "restart: firewall reloaded (counters from 0)" 200 PUT /v1/firewalls/fwd "$FW"
expect "restart: state before" 200 GET /v1/firewalls/fwd
jq -c '{name, default, rules: [.rules[].rule], chains}' "$TMP/body" >"$TMP/state.before"
np0=$(noports)
nsenter --net="/run/netns/$SNS" "$PY" "$TMP/recv.py" "$TMP/rready" >"$TMP/recv.out" &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 50); do [ -s "$TMP/rready" ] && break; sleep 0.05; done
nsenter --net="/run/netns/$CNS" "$PY" "$TMP/send.py" 10.203.0.2 1200 >"$TMP/send.out" &
SPID=$!
PIDS+=("$SPID")
sleep 1
{ kill -9 "$DPID"; wait "$DPID"; } 2>/dev/null
DPID=
check "restart: daemon killed mid-stream (sender still running)" kill -0 "$SPID"
check "restart: the CLI still sees the firewall while no daemon runs" fw_cli fwd >/dev/null
check "restart: daemon starts again over its stale socket" start_daemon
expect "restart: state after" 200 GET /v1/firewalls/fwd
jq -c '{name, default, rules: [.rules[].rule], chains}' "$TMP/body" >"$TMP/state.after"
check "restart: same state as before" cmp -s "$TMP/state.before" "$TMP/state.after"
wait "$SPID"
wait "$RPID"
read -r sent1 sent2 <"$TMP/send.out"
recv1=$(cat "$TMP/recv.out")
np1=$(noports)
echo "restart: sent $sent1 to 5001 and $sent2 to 5002, received $recv1 on 5001, NoPorts +$((np1 - np0))"
check "restart: the stream ran (${sent1:-0} datagrams)" test "${sent1:-0}" -eq 1200
check "restart: received == sent, no loss ($recv1 of $sent1)" test "${recv1:-x}" = "$sent1"
check "restart: no blocked datagram reached the server" test "$np1" -eq "$np0"
expect "restart: counters" 200 GET /v1/firewalls/fwd
check "restart: drop rule counted every blocked datagram" test "$(jbody '.rules[0].packets')" = "$sent2"
check "restart: accept rule counted every allowed datagram" test "$(jbody '.rules[1].packets')" = "$sent1"

# ---- concurrent writers --------------------------------------------------------

# Two HTTP clients PUT different rule sets into fwc, and the CLI loads a
# third, 8 times each at once. Every answer is a success, and the final rule
# set is exactly one of the three.
mkset() { # mkset NAME COUNT PATTERN: the rule strings, one a line
	local i
	for ((i = 0; i < $2; i++)); do printf "$3\n" $((i / 250)) $((i % 250 + 1)) $((1000 + i)); done >"$TMP/$1.txt"
	jq -R . "$TMP/$1.txt" | jq -sc "{dev: \"$SDEV\", hook: \"egress\", rules: ., default: \"accept\"}" >"$TMP/$1.json"
}
mkset A 300 'drop src 10.9.%d.%d/32 proto udp dport %d'
mkset B 200 'drop proto tcp dport %.0s%.0s%d'
mkset C 100 'accept dst 10.8.%d.%d/32 proto tcp dport %d'
writer() { # writer A|B: PUTs the set 8 times, logs the codes
	local i
	for i in $(seq 8); do
		curl -s --unix-socket "$SOCK" -X PUT -o /dev/null -w '%{http_code}\n' \
			--data-binary "@$TMP/$1.json" http://sluiced/v1/firewalls/fwc
	done >"$TMP/codes.$1"
}
api PUT /v1/firewalls/fwc "@$TMP/A.json" >/dev/null
writer A &
WA=$!
PIDS+=("$WA")
writer B &
WB=$!
PIDS+=("$WB")
# A reader meanwhile: every rule set it sees is one writer's, whole.
reader() {
	local n=0 bad=0 err=0 c s hit
	while kill -0 "$WA" 2>/dev/null || kill -0 "$WB" 2>/dev/null; do
		c=$(curl -s --unix-socket "$SOCK" -o "$TMP/rbody" -w '%{http_code}' http://sluiced/v1/firewalls/fwc)
		[ "$c" = 200 ] || { err=$((err + 1)); continue; }
		jq -r '.rules[].rule' "$TMP/rbody" >"$TMP/rseen.txt"
		hit=
		for s in A B C; do cmp -s "$TMP/rseen.txt" "$TMP/$s.txt" && hit=$s; done
		[ -n "$hit" ] || bad=$((bad + 1))
		n=$((n + 1))
	done
	echo "$n $bad $err" >"$TMP/reads"
}
reader &
RD=$!
PIDS+=("$RD")
for i in $(seq 8); do sc firewall load "$SDEV" "$TMP/C.txt" --name fwc --hook egress >/dev/null || echo cli-fail; done >"$TMP/codes.C"
wait "$WA" "$WB" "$RD"
read -r nreads nbad nerr <"$TMP/reads"
echo "concurrent: $nreads reads during the writes, $nbad mixed, $nerr failed"
check "concurrent: reads during the writes saw whole rule sets only ($nreads reads)" \
	test "$nbad" = 0 -a "$nreads" -gt 0
check "concurrent: reads during the writes never failed" test "$nerr" = 0
check "concurrent: every HTTP write succeeded" \
	test "$(sort -u "$TMP/codes.A" "$TMP/codes.B" | tr '\n' ' ')" = "200 "
check "concurrent: every CLI write succeeded" test ! -s "$TMP/codes.C"
expect "concurrent: final state" 200 GET /v1/firewalls/fwc
jbody '.rules[].rule' >"$TMP/final.txt"
which=
for s in A B C; do cmp -s "$TMP/final.txt" "$TMP/$s.txt" && which=$s; done
check "concurrent: final rule set is exactly one writer's (${which:-a mix!}, $(wc -l <"$TMP/final.txt") rules)" test -n "$which"

# ---- deletes -------------------------------------------------------------------

expect "unload with dev: 204" 204 DELETE "/v1/firewalls/fwd?dev=$SDEV&hook=ingress"
expect "unload without dev (every chain): 204" 204 DELETE /v1/firewalls/fwc
expect "unload missing: 404" 404 DELETE /v1/firewalls/fwc
expect "chains after unload: 200" 200 GET /v1/chains
check "chains after unload: empty" test "$(jbody length)" = 0
check "CLI agrees: no instance" test "$(sc -j nf list)" = "[]"
expect "firewall fwe created: 201" 201 PUT /v1/firewalls/fwe '{"dev":"'$SDEV'","rules":[]}'
expect "instance DELETE after chain del: 204" 204 DELETE "/v1/chains/$SDEV/ingress"
expect "instance DELETE: 204" 204 DELETE /v1/instances/fwe
expect "reset: 204" 204 POST /v1/reset
expect "health after reset: 200" 200 GET /v1/health
check "health after reset: no state" test "$(jbody .state_loaded)" = false
# Found by fuzz/fuzz_api.c: edits without state, bytes that are not UTF-8.
expect "rule delete without state: 404" 404 DELETE /v1/firewalls/fwd/rules/1
expect "flush without state: 404" 404 DELETE /v1/firewalls/fwd/rules
expect "a path that is not UTF-8: 400" 400 GET '/v1/firewalls/%C3%28x'
check "a path that is not UTF-8: a JSON error" test -n "$(jbody .error)"

# ---- declarative configuration: apply, diff, export ------------------------------

# apicfg METHOD PATH TYPE FILE [CURL ARGS...]: a document as the body.
apicfg() {
	local m=$1 p=$2 t=$3 f=$4
	shift 4
	curl -s --unix-socket "$SOCK" -X "$m" -o "$TMP/body" -w '%{http_code}' \
		-H "Content-Type: $t" --data-binary "@$f" "$@" "http://sluiced$p"
}
expectcfg() { # NAME CODE METHOD PATH TYPE FILE
	local name=$1 want=$2 got
	shift 2
	got=$(apicfg "$@")
	if [ "$got" = "$want" ]; then
		pass "$name"
	else
		fail "$name (HTTP $got, want $want: $(head -c 300 "$TMP/body"))"
	fi
}
cat >"$TMP/doc.yaml" <<EOF
version: 1
firewalls:
  cfga:
    default: accept
    rules:
      - drop proto udp dport 5002
      - accept proto tcp dport 80-443
  cfgb:
    rules:
      - drop proto tcp dport 22
chains:
  - dev: $SDEV
    hook: ingress
    instances: [cfga]
  - dev: $SDEV
    hook: egress
    instances: [cfgb]
EOF
state_cli() { # the state as the CLI shows it
	sc -j chain show
	sc -j firewall show --name cfga
	sc -j firewall show --name cfgb
}
expectcfg "diff before apply: 200" 200 POST /v1/diff application/yaml "$TMP/doc.yaml"
check "diff before apply: changes, not applied" test "$(jbody '"\(.changes > 0) \(.applied)"')" = "true false"
check "diff before apply: created no state" test "$(api GET /v1/health; jbody .state_loaded)" = "200false"
expectcfg "apply dry_run: 200" 200 'POST' '/v1/apply?dry_run=1' application/yaml "$TMP/doc.yaml"
check "apply dry_run: not applied, no state" test "$(jbody .applied)$(api GET /v1/health; jbody .state_loaded)" = "false200false"
expectcfg "apply: 200" 200 POST /v1/apply application/yaml "$TMP/doc.yaml"
check "apply: applied, changes in the plan" test "$(jbody '"\(.applied) \(.changes > 0)"')" = "true true"
check "apply: the CLI sees cfga on $SDEV ingress" \
	test "$(sc -j chain show | jq -c --arg d "$SDEV" '[.[] | select(.dev == $d) | [.hook, .instances]] | sort')" = '[["egress",["cfgb"]],["ingress",["cfga"]]]'
check "apply: cfga has its 2 rules" test "$(sc -j firewall show --name cfga | jq -c '[.rules[].rule]')" = '["drop proto udp dport 5002","accept proto tcp dport 80-443"]'
expectcfg "diff after apply: 200" 200 POST /v1/diff application/yaml "$TMP/doc.yaml"
check "diff after apply: no changes" test "$(jbody .changes)" = 0
expectcfg "apply again: 200, nothing to do" 200 POST /v1/apply application/yaml "$TMP/doc.yaml"
check "apply again: no changes, not applied" test "$(jbody '"\(.changes) \(.applied)"')" = "0 false"
# Export and apply back: no change, as YAML and as JSON.
curl -s --unix-socket "$SOCK" -o "$TMP/export.yaml" -D "$TMP/hdr" -w '%{http_code}' http://sluiced/v1/export >"$TMP/code"
check "export: 200 YAML" test "$(cat "$TMP/code") $(grep -ci '^content-type: application/yaml' "$TMP/hdr")" = "200 1"
check "export: names both firewalls" grep -q cfgb "$TMP/export.yaml"
expectcfg "export -> apply: 200" 200 POST /v1/apply application/yaml "$TMP/export.yaml"
check "export -> apply: a no-op" test "$(jbody '"\(.changes) \(.applied)"')" = "0 false"
curl -s --unix-socket "$SOCK" -H 'Accept: application/json' -o "$TMP/export.json" http://sluiced/v1/export
check "export as JSON: valid, both firewalls" test "$(jq -c '.firewalls | keys' "$TMP/export.json")" = '["cfga","cfgb"]'
expectcfg "export JSON -> apply: 200" 200 POST /v1/apply application/json "$TMP/export.json"
check "export JSON -> apply: a no-op" test "$(jbody .changes)" = 0
# A document refused deep inside: 400 naming the path and line, nothing applied.
before=$(state_cli)
sed -e 's/dport 80-443/dport 80-443\n      - accept proto tcp dport 70000/' -e 's/cfgb]/cfgb]\n  - dev: '"$SDEV"'\n    hook: tc-ingress\n    instances: [cfgb]/' \
	"$TMP/doc.yaml" >"$TMP/bad.yaml"
sed -i 's/drop proto tcp dport 22/drop proto tcp dport 23/' "$TMP/bad.yaml"
badline=$(grep -n 'dport 70000' "$TMP/bad.yaml" | cut -d: -f1)
expectcfg "apply bad document: 400" 400 POST /v1/apply application/yaml "$TMP/bad.yaml"
check "apply bad document: field firewalls.cfga.rules[2], line $badline" \
	test "$(jbody '"\(.field) \(.line)"')" = "firewalls.cfga.rules[2] $badline"
check "apply bad document: the message names the path" grep -q 'firewalls.cfga.rules\[2\]: dport' <(jbody .error)
check "apply bad document: nothing changed" test "$(state_cli)" = "$before"
expectcfg "diff bad document: 400" 400 POST /v1/diff application/yaml "$TMP/bad.yaml"
printf 'version: 1\nfirewalls:\n  x: [\n' >"$TMP/broken.yaml"
expectcfg "apply malformed YAML: 400" 400 POST /v1/apply application/yaml "$TMP/broken.yaml"
check "apply malformed YAML: line given" test "$(jbody '.line | type')" = number
expectcfg "apply as form data: 415" 415 POST /v1/apply application/x-www-form-urlencoded "$TMP/doc.yaml"
expectcfg "apply bad dry_run: 400" 400 POST '/v1/apply?dry_run=maybe' application/yaml "$TMP/doc.yaml"
expect "apply empty body: 400" 400 POST /v1/apply
check "refused applies: nothing changed" test "$(state_cli)" = "$before"

# ---- events: a stream of JSON lines ----------------------------------------------

# cfga drops pings on $SDEV ingress; the stream reports the drops.
sed 's/      - drop proto udp dport 5002/      - drop proto icmp\n      - drop proto udp dport 5002/' "$TMP/doc.yaml" >"$TMP/ev.yaml"
expectcfg "events: firewall dropping pings applied" 200 POST /v1/apply application/yaml "$TMP/ev.yaml"
sample_now() { sc -j events config | jq -r .drop_sample; }
sample0=$(sample_now)
# sample_is N: waits until drop sampling is N (a stream sets it once it
# holds the ring; a probe with a stream of its own could take the ring first)
sample_is() {
	local i
	for i in $(seq 50); do
		[ "$(sample_now)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
timeout 20 curl -s -N --unix-socket "$SOCK" 'http://sluiced/v1/events?sample=1&count=5' >"$TMP/events.out" 2>/dev/null &
EVP=$!
PIDS+=("$EVP")
check "events: stream open, sampling set while streaming" sample_is 1
expect "events: a second reader gets 409" 409 GET '/v1/events?count=1'
sl_in "$CNS" ping -c 10 -i 0.2 -W 1 10.203.0.2 >/dev/null 2>&1
wait "$EVP"
check "events: the stream ended after count=5 lines" test "$(wc -l <"$TMP/events.out")" = 5
check "events: every line is JSON" jq -e . "$TMP/events.out" >/dev/null
check "events: drops of ICMP by cfga, reason firewall-rule" \
	test "$(jq -r '"\(.type) \(.reason) \(.instance) \(.proto) \(.dst) \(.dev)"' "$TMP/events.out" | sort -u)" = "drop firewall-rule cfga icmp 10.203.0.2 $SDEV"
check "events: the same fields as sluice -j events" \
	test "$(head -1 "$TMP/events.out" | jq -c keys)" = '["cap_len","dev","dst","family","hook","icmp_code","icmp_type","ifindex","instance","len","proto","reason","slot","src","time","ts_ns","type"]'
sleep 0.3
check "events: sampling restored after the stream ($sample0)" test "$(sample_now)" = "$sample0"
# A client that goes away frees the reader.
curl -s -N --unix-socket "$SOCK" 'http://sluiced/v1/events?sample=7' >/dev/null 2>&1 &
EVP=$!
PIDS+=("$EVP")
check "events: endless stream open" sample_is 7
check "events: the CLI is refused while the stream reads" \
	test "$(sc events --count 1 --timeout 1 >/dev/null 2>&1; echo $?)" = 1
kill "$EVP"
wait "$EVP" 2>/dev/null
check "events: sampling restored when the client disconnected" sample_is "$sample0"
freed() {
	local i
	for i in $(seq 30); do
		sc events --count 1 --timeout 1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
sl_in "$CNS" ping -c 30 -i 0.1 -W 1 10.203.0.2 >/dev/null 2>&1 &
PIDS+=($!)
sc events config --sample 1 >/dev/null
check "events: reader freed when the client disconnected" freed
sc events config --sample "$sample0" >/dev/null
# The CLI holds the ring: the API answers 409.
sc events --timeout 3 >/dev/null 2>&1 &
CLP=$!
PIDS+=("$CLP")
sleep 0.5
expect "events: 409 while the CLI reads" 409 GET /v1/events
wait "$CLP"
expect "events: bad count: 400" 400 GET '/v1/events?count=x'
expect "events: bad sample: 400" 400 GET '/v1/events?sample=-1'
expect "reset after config and events: 204" 204 POST /v1/reset

# ---- TCP listener with a bearer token, SIGTERM ----------------------------------

kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "SIGTERM: exit status 0" test "$rc" -eq 0
check "SIGTERM: socket removed" test ! -e "$SOCK"
head -c 24 /dev/urandom | base64 >"$TMP/token"
chmod 600 "$TMP/token"
check "tcp: daemon with --listen starts" start_daemon --listen 127.0.0.1:8791 --token-file "$TMP/token"
tcp() { sl_in "$SNS" curl -s -o /dev/null -w '%{http_code}' "$@" http://127.0.0.1:8791/v1/health; }
check "tcp: no token: 401" test "$(tcp)" = 401
check "tcp: wrong token: 401" test "$(tcp -H 'Authorization: Bearer nope-nope-nope-nope')" = 401
check "tcp: right token: 200" test "$(tcp -H "Authorization: Bearer $(cat "$TMP/token")")" = 200
check "tcp: refuses a non-loopback address" \
	test "$("$SLUICED" --socket "$TMP/x.sock" --foreground --listen 10.0.0.1:80 --token-file "$TMP/token" 2>/dev/null; echo $?)" = 1
check "socket: a second daemon on a live socket is refused" \
	test "$(sl_in "$SNS" "$SLUICED" --socket "$SOCK" --foreground 2>/dev/null; echo $?)" = 1

echo "e2e_daemon: $(($(date +%s) - START)) s"
sl_exit
