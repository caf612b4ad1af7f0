#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Prometheus metrics of sluiced (GET /metrics) against real traffic: N pings
# dropped by a firewall rule show as N in that rule's counter, in the
# instance's drop-reason counter and in its packet counters; the page passes
# the parser of python3-prometheus-client and `promtool check metrics`, and
# our own stricter checks (HELP/TYPE once per family, before its samples,
# samples of a family together, counters named _total); label values with
# quotes, backslashes (an interface name in a rule's text) read back
# unchanged; the conntrack collector shows a held TCP connection as
# ESTABLISHED and 3 UDP flows as unreplied; the NAT collector counts the 3
# flows an SNAT rule translated; the LB collector counts 5 datagrams to a
# virtual service and its backend; --metrics-listen serves /metrics and
# nothing else, no token.
#
# Topology: client ns (CDEV, 10.204.0.1) <-veth-> server ns (SDEV, 10.204.0.2);
# the firewall and sluiced sit in the server namespace.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

SLUICED=${SLUICED:-$(pwd)/build/sluiced}
CNS=$(sl_name mtc)
SNS=$(sl_name mts)
CDEV=$(sl_name mc)
SDEV=$(sl_name ms)
ODD='q"b\x'  # an interface name with a quote and a backslash
TMP=$(mktemp -d /tmp/sluice-e2emet.XXXXXX)
SOCK=$TMP/sluiced.sock
PORT=$((20000 + SL_ID % 20000))
DPID=
PY=/usr/bin/python3

cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	if [ "$SL_FAILS" -ne 0 ] && [ -s "$TMP/sluiced.log" ]; then
		echo "--- sluiced log"
		tail -n 20 "$TMP/sluiced.log"
	fi
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] && [ -x "$SLUICED" ] || { fail "build/sluice, build/sluiced missing (run make)"; exit 1; }
$PY -c 'import prometheus_client.parser' 2>/dev/null ||
	{ fail "python3-prometheus-client missing (scripts/deps.sh)"; exit 1; }
command -v promtool >/dev/null || { fail "promtool missing (package prometheus; scripts/deps.sh)"; exit 1; }

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.204.0 fd00:204:: || { fail "setup: veth pair"; exit 1; }
sl_in "$CNS" sysctl -qw "net.ipv6.conf.$CDEV.disable_ipv6=1"
sl_in "$SNS" sysctl -qw "net.ipv6.conf.$SDEV.disable_ipv6=1"
sl_in "$SNS" ip link add "$ODD" type veth peer name "$(sl_name mo)" ||
	{ fail "setup: interface $ODD"; exit 1; }
sc() { sl_in "$SNS" "$SLUICE" "$@"; }

# Rule 1 drops pings from the client; rule 2 never matches (its text holds
# the odd name); TCP goes to the default policy (accept).
cat >"$TMP/rules" <<EOF
accept iif $ODD
drop src 10.204.0.1/32 proto icmp
EOF
sc firewall load "$SDEV" "$TMP/rules" --name fwm >"$TMP/out" 2>&1 ||
	{ fail "setup: firewall load: $(cat "$TMP/out")"; exit 1; }

N=7
sl_in "$CNS" ping -c "$N" -i 0.05 -W 0.2 -q 10.204.0.2 >/dev/null 2>&1
check "metrics: pings are dropped by the firewall" \
	test "$(sc -j firewall show --name fwm | jq '.rules[1].packets')" = "$N"

nsenter --net="/run/netns/$SNS" "$SLUICED" --socket "$SOCK" --foreground \
	--log-level warn --metrics-listen "127.0.0.1:$PORT" 2>>"$TMP/sluiced.log" &
DPID=$!
# Up to 20 s: a loaded CI machine starts the daemon slowly.
for _ in $(seq 400); do
	curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done

code=$(curl -s --unix-socket "$SOCK" -D "$TMP/hdr" -o "$TMP/page" -w '%{http_code}' http://sluiced/metrics)
check "metrics: GET /metrics on the socket answers 200" test "$code" = 200
check "metrics: content type is text/plain; version=0.0.4" \
	grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/hdr"

# page_until FILE PATTERN: reads /metrics into FILE until a line matches
# (up to 10 s): traffic just sent may still be queued for the data plane on
# a loaded machine. The checks after it still ask for exact values.
page_until() {
	for _ in $(seq 100); do
		curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$1"
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
}

# ---- the page, read by the parsers ---------------------------------------

cat >"$TMP/check.py" <<'EOF'
# Reads the page with prometheus_client's parser and checks it line by line
# (the parser forgives what Prometheus would not); prints PASS/FAIL lines.
import re, sys
from prometheus_client.parser import text_string_to_metric_families

page, n, odd = open(sys.argv[1]).read(), int(sys.argv[2]), sys.argv[3]
fails = 0
def check(name, ok, detail=""):
    global fails
    print(("PASS: " if ok else "FAIL: ") + "metrics: " + name + ("" if ok else "  " + detail))
    fails += not ok

fams = {}
try:
    for f in text_string_to_metric_families(page):
        fams[f.name] = f
    check("prometheus_client parses the page", True)
except Exception as e:
    check("prometheus_client parses the page", False, repr(e))
    sys.exit(1)

# Line-level rules of the format that the parser does not enforce.
helps, types, current, done, bad = set(), {}, None, set(), []
for ln in page.splitlines():
    m = re.match(r"# (HELP|TYPE) (\S+)", ln)
    if m:
        kind, name = m.groups()
        if kind == "HELP":
            if name in helps: bad.append("HELP twice: " + name)
            helps.add(name)
        else:
            if name in types: bad.append("TYPE twice: " + name)
            if name not in helps: bad.append("TYPE before HELP: " + name)
            types[name] = ln.split()[3]
            if current: done.add(current)
            current = name
        continue
    if not ln or ln.startswith("#"):
        continue
    sname = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", ln).group(0)
    fam = next((t for t in types if sname == t or (types[t] == "histogram" and
                sname in (t + "_bucket", t + "_sum", t + "_count"))), None)
    if fam is None: bad.append("sample without TYPE: " + sname)
    elif fam != current: bad.append("sample away from its family: " + sname)
for t, ty in types.items():
    if ty == "counter" and not t.endswith("_total"): bad.append("counter without _total: " + t)
check("HELP/TYPE once per family, samples together, counters _total", not bad, "; ".join(bad[:5]))

def value(fam, **labels):
    f = fams.get(fam)
    for s in (f.samples if f else []):
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith("_created"):
            return s.value
    return None

check("dropped pings: rule 2's packet counter is %d" % n,
      value("sluice_fw_rule_packets", instance="fwm", rule="2") == n,
      str(value("sluice_fw_rule_packets", instance="fwm", rule="2")))
check("dropped pings: rule 2's bytes are %d * 98" % n,
      value("sluice_fw_rule_bytes", instance="fwm", rule="2") == n * 98,
      str(value("sluice_fw_rule_bytes", instance="fwm", rule="2")))
check("dropped pings: drop reason firewall-rule is %d" % n,
      value("sluice_nf_drops", instance="fwm", type="firewall", reason="firewall-rule") == n,
      str(value("sluice_nf_drops", instance="fwm", reason="firewall-rule")))
check("dropped pings: the instance dropped %d" % n,
      value("sluice_nf_dropped", instance="fwm", type="firewall") == n)
pk = value("sluice_nf_packets", instance="fwm", type="firewall")
check("instance packets >= dropped", pk is not None and pk >= n, str(pk))
check("root packets >= instance packets",
      (value("sluice_nf_packets", instance="root", type="root") or 0) >= (pk or 1))
check("drop reason policy is 0", value("sluice_nf_drops", instance="fwm", reason="firewall-policy") == 0)
check("rule text with a quote and a backslash reads back unchanged",
      value("sluice_fw_rule_packets", instance="fwm", rule="1", text="accept iif " + odd) == 0,
      [s.labels for s in fams["sluice_fw_rule_packets"].samples][:2])
check("escaped in the page as \\\" and \\\\",
      'text="accept iif q\\"b\\\\x"' in page)
check("the default policy is rule \"default\"",
      value("sluice_fw_rule_packets", instance="fwm", rule="default", text="default accept") is not None)
check("build info", value("sluice_build_info") == 1)
check("events counters", value("sluice_events_emitted") is not None and
      value("sluice_events_lost") is not None)
sys.exit(1 if fails else 0)
EOF
$PY "$TMP/check.py" "$TMP/page" "$N" "$ODD" || SL_FAILS=$((SL_FAILS + 1))

if promtool check metrics <"$TMP/page" >"$TMP/promtool" 2>&1; then
	pass "metrics: promtool check metrics finds no problem"
else
	fail "metrics: promtool check metrics: $(head -5 "$TMP/promtool")"
fi

# ---- more traffic moves the counters ------------------------------------

sl_in "$CNS" ping -c 3 -i 0.05 -W 0.2 -q 10.204.0.2 >/dev/null 2>&1
curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$TMP/page2"
check "metrics: 3 more pings: rule 2 counts $((N + 3))" \
	grep -q "^sluice_fw_rule_packets_total{instance=\"fwm\",rule=\"2\",text=\"drop src 10.204.0.1/32 proto icmp\"} $((N + 3))\$" "$TMP/page2"

# ---- conntrack (nf/conntrack): entries by state ---------------------------

sc conntrack attach "$SDEV" --hook tc-ingress >/dev/null 2>"$TMP/err" &&
	sc conntrack attach "$SDEV" --hook egress >/dev/null 2>>"$TMP/err" ||
	fail "metrics: conntrack attach: $(cat "$TMP/err")"
# One TCP connection held open (both ends end by themselves after 20 s, or
# are killed after the checks). No fixed sleeps: on a loaded machine the
# listener and the handshake take what they take, within bounds.
nsenter --net="/run/netns/$SNS" $PY -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.204.0.2", 5555)); s.listen(1); s.settimeout(20)
c, _ = s.accept(); c.recv(10); time.sleep(20)' &
CT_SRV=$!
for _ in $(seq 100); do
	sl_in "$SNS" ss -Hltn 'sport = :5555' | grep -q . && break
	sleep 0.1
done
nsenter --net="/run/netns/$CNS" $PY -c '
import socket, time
c = socket.create_connection(("10.204.0.2", 5555), timeout=10); c.send(b"hi"); time.sleep(20)' &
CT_CLI=$!
for _ in $(seq 100); do
	curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$TMP/pagect"
	grep -q '^sluice_ct_entries{instance="ct",proto="tcp",state="ESTABLISHED"} 1$' "$TMP/pagect" && break
	sleep 0.1
done
check "metrics: conntrack: the open connection is tcp ESTABLISHED" \
	grep -q '^sluice_ct_entries{instance="ct",proto="tcp",state="ESTABLISHED"} 1$' "$TMP/pagect"
check "metrics: conntrack: packets classified new and established" \
	sh -c "grep -q '^sluice_ct_packets_total{instance=\"ct\",ct_state=\"new\"} [1-9]' '$TMP/pagect' &&
	       grep -q '^sluice_ct_packets_total{instance=\"ct\",ct_state=\"established\"} [1-9]' '$TMP/pagect'"
check "metrics: conntrack: the page passes promtool" sh -c "promtool check metrics <'$TMP/pagect' >/dev/null 2>&1"
kill "$CT_SRV" "$CT_CLI" 2>/dev/null
wait "$CT_SRV" "$CT_CLI" 2>/dev/null

# ---- NAT (nf/nat): mappings and per-rule flows ---------------------------

# The server sends 3 UDP datagrams (3 source ports: 3 flows) to the client,
# translated to a second address of its own; nobody answers.
sl_in "$SNS" ip addr add 10.204.0.9/24 dev "$SDEV"
sc nat add m1 snat --out "$SDEV" --to 10.204.0.9 --proto udp >/dev/null 2>"$TMP/err" ||
	fail "metrics: nat add: $(cat "$TMP/err")"
for _ in 1 2 3; do sl_in "$SNS" bash -c 'echo x >/dev/udp/10.204.0.1/9'; done
page_until "$TMP/page4" '^sluice_ct_entries{instance="ct",proto="udp",state="unreplied"} 3$'
check "metrics: nat: rule m1 translated 3 flows" \
	grep -q '^sluice_nat_rule_flows_total{rule="m1",text="snat --out '"$SDEV"' --to 10.204.0.9 --proto udp"} 3$' "$TMP/page4"
check "metrics: nat: 3 unreplied SNAT mappings" \
	grep -q '^sluice_nat_mappings{kind="snat",state="unreplied"} 3$' "$TMP/page4"
check "metrics: conntrack saw the 3 UDP flows, unreplied" \
	grep -q '^sluice_ct_entries{instance="ct",proto="udp",state="unreplied"} 3$' "$TMP/page4"
check "metrics: nat: no port shortage" grep -q '^sluice_nat_rule_no_port_total{rule="m1",.*} 0$' "$TMP/page4"
check "metrics: nat: the page passes promtool" sh -c "promtool check metrics <'$TMP/page4' >/dev/null 2>&1"

# ---- load balancer (nf/lb): per service and backend ----------------------

# A UDP service on 10.204.0.100:53 with one backend, the server itself on
# 5353 (nobody listens: the datagrams only have to arrive).
sl_in "$CNS" ip neigh replace 10.204.0.100 lladdr \
	"$(sl_in "$SNS" ip -j link show dev "$SDEV" | jq -r '.[0].address')" dev "$CDEV"
{ sc lb -A -u 10.204.0.100:53 -s rr &&
  sc lb -a -u 10.204.0.100:53 -r 10.204.0.2:5353 -m -w 3 &&
  sc lb attach "$SDEV"; } >/dev/null 2>"$TMP/err" || fail "metrics: lb setup: $(cat "$TMP/err")"
sl_in "$CNS" $PY -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.204.0.1", 4053))
for i in range(5):
    u.sendto(b"q" * 20, ("10.204.0.100", 53))'
LBL='instance="lb",service="udp/10.204.0.100:53"'
page_until "$TMP/pagelb" "^sluice_lb_backend_packets_total{$LBL,backend=\"10.204.0.2:5353\",direction=\"in\"} 5\$"
check "metrics: lb: 5 packets into the service" \
	grep -q "^sluice_lb_service_packets_total{$LBL,direction=\"in\"} 5\$" "$TMP/pagelb"
check "metrics: lb: the same 5 to the backend, one connection" \
	sh -c "grep -q '^sluice_lb_backend_packets_total{$LBL,backend=\"10.204.0.2:5353\",direction=\"in\"} 5\$' '$TMP/pagelb' &&
	       grep -q '^sluice_lb_backend_connections_total{$LBL,backend=\"10.204.0.2:5353\"} 1\$' '$TMP/pagelb'"
check "metrics: lb: backend up, weight 3" \
	sh -c "grep -q '^sluice_lb_backend_up{$LBL,backend=\"10.204.0.2:5353\"} 1\$' '$TMP/pagelb' &&
	       grep -q '^sluice_lb_backend_weight{$LBL,backend=\"10.204.0.2:5353\"} 3\$' '$TMP/pagelb'"
check "metrics: lb: the page passes promtool" sh -c "promtool check metrics <'$TMP/pagelb' >/dev/null 2>&1"

# ---- a large rule set: per-rule series bounded ---------------------------

# 1,100 rules (never matching) in front of the ping rule: the ping rule is
# number 1,101, past the 1,024 per-rule series, so its drops are in "rest".
{ for i in $(seq 1100); do echo "drop src 192.0.2.1/32 proto udp dport $i"; done
  echo "drop src 10.204.0.1/32 proto icmp"; } >"$TMP/big"
sc firewall load "$SDEV" "$TMP/big" --name fwbig >/dev/null 2>"$TMP/err" ||
	fail "metrics: load 1101 rules: $(cat "$TMP/err")"
sc chain set "$SDEV" ingress fwbig >/dev/null
sl_in "$CNS" ping -c 2 -i 0.05 -W 0.2 -q 10.204.0.2 >/dev/null 2>&1
curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$TMP/pagebig"
check "metrics: 1101 rules: 1024 rule series, rest and default ($(grep -c '^sluice_fw_rule_packets_total{instance="fwbig"' "$TMP/pagebig"))" \
	test "$(grep -c '^sluice_fw_rule_packets_total{instance="fwbig"' "$TMP/pagebig")" = 1026
check "metrics: the 2 dropped pings counted in rule \"rest\"" \
	grep -q '^sluice_fw_rule_packets_total{instance="fwbig",rule="rest",text="rules 1025 to 1101"} 2$' "$TMP/pagebig"

# ---- --metrics-listen: /metrics only, plain HTTP, no token ----------------

mt() { sl_in "$SNS" curl -s -o "$TMP/tbody" -w '%{http_code}' "$@"; }
check "metrics: --metrics-listen serves GET /metrics" test "$(mt "http://127.0.0.1:$PORT/metrics")" = 200
check "metrics: the same families there" \
	test "$(grep -c '^# TYPE' "$TMP/tbody")" = "$(grep -c '^# TYPE' "$TMP/page2")"
check "metrics: --metrics-listen refuses other paths (404)" \
	test "$(mt "http://127.0.0.1:$PORT/v1/status")" = 404
check "metrics: --metrics-listen refuses POST (405)" \
	test "$(mt -X POST "http://127.0.0.1:$PORT/metrics")" = 405
check "metrics: POST /metrics on the socket is 405" \
	test "$(curl -s --unix-socket "$SOCK" -o /dev/null -w '%{http_code}' -X POST http://sluiced/metrics)" = 405
if nsenter --net="/run/netns/$SNS" timeout 5 "$SLUICED" --socket "$TMP/x.sock" --foreground \
	--metrics-listen "nonsense" >"$TMP/bad" 2>&1; then
	fail "metrics: --metrics-listen nonsense is refused"
else
	check "metrics: --metrics-listen nonsense is refused with a message" grep -q "metrics-listen nonsense" "$TMP/bad"
fi

for spec in 127.0.0.1:0 127.0.0.1:65536 127.0.0.1: 127.0.0.1:80x; do
	if nsenter --net="/run/netns/$SNS" timeout 5 "$SLUICED" --socket "$TMP/x.sock" --foreground \
		--metrics-listen "$spec" >"$TMP/bad" 2>&1; then
		fail "metrics: --metrics-listen $spec is refused"
	else
		check "metrics: --metrics-listen $spec is refused naming it" grep -qF "metrics-listen $spec:" "$TMP/bad"
	fi
done

# ---- a namespace without state: headers, no samples, still valid ----------

sc reset >/dev/null
curl -s --unix-socket "$SOCK" http://sluiced/metrics >"$TMP/page3"
check "metrics: without state the page says sluice_state_loaded 0" grep -q '^sluice_state_loaded 0$' "$TMP/page3"
check "metrics: without state promtool accepts the page" sh -c "promtool check metrics <'$TMP/page3' >/dev/null 2>&1"
sl_exit
