#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Flow monitor end to end with real traffic between two namespaces:
# `sluice flowmon attach` on the client's veth (XDP ingress + TC egress, so
# both directions), then TCP (100,000 bytes), UDP (50 datagrams) and a TCP
# segment sent twice with scapy. `sluice flows` must show the byte and
# packet counts sent (frame bytes: payload plus known headers), the SYN to
# SYN-ACK time of a handshake whose SYN-ACK scapy sends 20 ms late (this
# kernel has no netem), the retransmission, and obey --sort, --limit, filters and --json; bad filters
# fail with a message naming the word. `sluice top --iterations 2` prints
# two frames with rates. Then through sluiced: attach via PUT
# /v1/flowmons/NAME, and the flowmon families of /metrics.
#
# Topology: client ns (CDEV 10.205.0.1) <-veth-> server ns (SDEV 10.205.0.2).
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

SLUICED=${SLUICED:-$(pwd)/build/sluiced}
CNS=$(sl_name fmc)
SNS=$(sl_name fms)
CDEV=$(sl_name fc)
SDEV=$(sl_name fs)
TMP=$(mktemp -d /tmp/sluice-e2efm.XXXXXX)
SOCK=$TMP/sluiced.sock
PY=/usr/bin/python3
SRV_PID=
DPID=
UDP_PID=

cleanup() {
	for p in $SRV_PID $DPID $UDP_PID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] && [ -x "$SLUICED" ] || { fail "build/sluice, build/sluiced missing (run make)"; exit 1; }
$PY -c 'import scapy.all' 2>/dev/null || { fail "python3-scapy missing"; exit 1; }

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.205.0 fd00:205:: || { fail "setup: veth pair"; exit 1; }
sl_in "$CNS" sysctl -qw "net.ipv6.conf.$CDEV.disable_ipv6=1"
sl_in "$SNS" sysctl -qw "net.ipv6.conf.$SDEV.disable_ipv6=1"
# Resolve neighbours now: ARP must not delay the handshake measured below.
sl_in "$CNS" ping -c 1 -W 1 10.205.0.2 >/dev/null

sc() { sl_in "$CNS" "$SLUICE" "$@"; }

check "flowmon: attach on $CDEV (ingress and egress)" \
	sh -c "SLUICE_NO_DAEMON=1 nsenter --net=/run/netns/$CNS $SLUICE flowmon attach $CDEV --name fm1 >/dev/null"
check "flowmon: on both chains" \
	sh -c "nsenter --net=/run/netns/$CNS $SLUICE -j chain show | jq -e '[.[] | select(.instances | index(\"fm1\"))] | length == 2' >/dev/null"

# ---- traffic --------------------------------------------------------------

cat >"$TMP/srv.py" <<'EOF'
# TCP 8080: reads until EOF and writes the byte count to a file; UDP 9999:
# counts datagrams. Ends by itself after 60 s.
import socket, sys, threading, time
out = sys.argv[1]
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(('10.205.0.2', 8080)); t.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('10.205.0.2', 9999))
def udp():
    while True:
        u.recvfrom(65536)
threading.Thread(target=udp, daemon=True).start()
open(out + '.ready', 'w').write('ok')
t.settimeout(60)
deadline = time.time() + 60
while time.time() < deadline:
    try:
        c, _ = t.accept()
    except OSError:
        break
    n = 0
    c.settimeout(10)
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    c.close()
    open(out, 'a').write('%d\n' % n)
EOF
nsenter --net="/run/netns/$SNS" $PY "$TMP/srv.py" "$TMP/srv" &
SRV_PID=$!
for _ in $(seq 100); do [ -e "$TMP/srv.ready" ] && break; sleep 0.05; done

sl_in "$CNS" $PY - <<'EOF'
import socket
c = socket.create_connection(('10.205.0.2', 8080), timeout=10)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.sendall(b'x' * 100000)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('10.205.0.1', 5353))
for i in range(50):
    u.sendto(b'u' * 200, ('10.205.0.2', 9999))
EOF
for _ in $(seq 100); do [ -s "$TMP/srv" ] && break; sleep 0.05; done
check "flowmon: the server got 100000 bytes" test "$(head -1 "$TMP/srv" 2>/dev/null)" = 100000

# The same data segment twice (scapy), to a port nobody listens on.
sl_in "$CNS" $PY - <<'EOF' >/dev/null 2>&1
from scapy.all import IP, TCP, Raw, send, conf
conf.verb = 0
seg = IP(src='10.205.0.1', dst='10.205.0.2') / TCP(sport=4444, dport=7777, flags='PA', seq=1000, ack=1) / Raw(b'r' * 100)
send(seg)
send(seg)
nxt = IP(src='10.205.0.1', dst='10.205.0.2') / TCP(sport=4444, dport=7777, flags='PA', seq=1100, ack=1) / Raw(b'r' * 100)
send(nxt)
EOF

# A handshake with a SYN-ACK 20 ms late: the client connects to .77, an
# address the server's kernel does not own (so it never answers), through
# a static neighbour entry; scapy on the server answers the SYN after 20 ms.
SMAC=$(sl_in "$SNS" ip -j link show dev "$SDEV" | jq -r '.[0].address')
CMAC=$(sl_in "$CNS" ip -j link show dev "$CDEV" | jq -r '.[0].address')
sl_in "$CNS" ip neigh replace 10.205.0.77 lladdr "$SMAC" dev "$CDEV"
cat >"$TMP/synack.py" <<'EOF'
import sys, time
from scapy.all import Ether, IP, TCP, sniff, sendp, conf
conf.verb = 0
dev, smac, cmac, ready = sys.argv[1:5]
syn = lambda p: TCP in p and p[TCP].dport == 8181 and p[TCP].flags == 'S'
got = sniff(iface=dev, lfilter=syn, count=1, timeout=10,
            started_callback=lambda: open(ready, 'w').write('ok'))
if got:
    p = got[0]
    time.sleep(0.020)
    sendp(Ether(src=smac, dst=cmac) / IP(src='10.205.0.77', dst=p[IP].src) /
          TCP(sport=8181, dport=p[TCP].sport, flags='SA', seq=777, ack=p[TCP].seq + 1),
          iface=dev)
EOF
nsenter --net="/run/netns/$SNS" $PY "$TMP/synack.py" "$SDEV" "$SMAC" "$CMAC" "$TMP/synack.ready" &
SYN_PID=$!
for _ in $(seq 200); do [ -e "$TMP/synack.ready" ] && break; sleep 0.05; done
sl_in "$CNS" $PY -c '
import socket
try:
    socket.create_connection(("10.205.0.77", 8181), timeout=3).close()
except OSError:
    pass
'
wait "$SYN_PID"
sleep 0.3

sc -j flows >"$TMP/flows.json" 2>"$TMP/err"
check "flowmon: sluice -j flows is a JSON array" \
	sh -c "jq -e 'type == \"array\" and length >= 4' '$TMP/flows.json' >/dev/null"

tcpf() { jq -c '[.[] | select(.proto == "tcp" and .dport == 8080)][0]' "$TMP/flows.json"; }
T=$(tcpf)
check "flowmon: the TCP flow is oriented client to server" \
	test "$(echo "$T" | jq -r '"\(.src):\(.sport) \(.dst):\(.dport)"' | cut -d' ' -f2)" = "10.205.0.2:8080"
# Frame bytes of the client's side: the payload plus at most 14+20+60
# bytes of headers per packet (GSO packets carry several segments' worth).
check "flowmon: TCP bytes client to server = 100000 + headers ($(echo "$T" | jq -c '[.bytes_fwd, .packets_fwd]'))" \
	sh -c "echo '$T' | jq -e '.bytes_fwd >= 100000 and .bytes_fwd <= 100000 + .packets_fwd * 94' >/dev/null"
check "flowmon: TCP reverse direction joined (ACKs from the server)" \
	sh -c "echo '$T' | jq -e '.packets_rev >= 2 and .bytes_rev >= .packets_rev * 54' >/dev/null"
check "flowmon: TCP flags: SYN,ACK,FIN both ways" \
	sh -c "echo '$T' | jq -e '(.tcp_flags_fwd | test(\"SYN\") and test(\"FIN\") and test(\"ACK\")) and (.tcp_flags_rev | test(\"SYN\") and test(\"ACK\"))' >/dev/null"
check "flowmon: SYN to SYN-ACK time measured, under 20 ms on a bare veth ($(echo "$T" | jq .rtt_us) us)" \
	sh -c "echo '$T' | jq -e '.rtt_us > 0 and .rtt_us < 20000' >/dev/null"
D=$(jq -c '[.[] | select(.proto == "tcp" and .dport == 8181)][0]' "$TMP/flows.json")
# At least the 20 ms scapy waited; scapy's own sendp can add tens of ms on
# a loaded machine, so the upper bound (1 s) only rules out wrong units.
check "flowmon: SYN to SYN-ACK time >= the 20 ms scapy waited ($(echo "$D" | jq .rtt_us) us)" \
	sh -c "echo '$D' | jq -e '.rtt_us >= 20000 and .rtt_us < 1000000' >/dev/null"
check "flowmon: no retransmission in the clean TCP flow" \
	sh -c "echo '$T' | jq -e '.retrans_fwd == 0' >/dev/null"

U=$(jq -c '[.[] | select(.proto == "udp" and .dport == 9999)][0]' "$TMP/flows.json")
check "flowmon: UDP 50 datagrams, 50 * (200 + 8 + 20 + 14) bytes ($(echo "$U" | jq -c '[.packets_fwd, .bytes_fwd]'))" \
	sh -c "echo '$U' | jq -e '.packets_fwd == 50 and .bytes_fwd == 12100 and .packets_rev == 0' >/dev/null"
R=$(jq -c '[.[] | select(.proto == "tcp" and .dport == 7777)][0]' "$TMP/flows.json")
check "flowmon: scapy's segment sent twice counts one retransmission ($(echo "$R" | jq -c '[.packets_fwd, .retrans_fwd]'))" \
	sh -c "echo '$R' | jq -e '.packets_fwd == 3 and .retrans_fwd == 1' >/dev/null"

# ---- sort, limit, filters ---------------------------------------------------

first() { sc -j flows "$@" | jq -r '.[0] | "\(.proto) \(.dport)"'; }
check "flowmon: --sort bytes puts the 100 kB TCP flow first" test "$(first --sort bytes)" = "tcp 8080"
check "flowmon: --sort rtt puts the slowest handshake first" test "$(first --sort rtt)" = "tcp 8181"
check "flowmon: --sort pkts orders by packets" \
	sh -c "nsenter --net=/run/netns/$CNS $SLUICE -j flows --sort pkts | jq -e '[.[].packets] as \$p | \$p == (\$p | sort | reverse)' >/dev/null"
check "flowmon: --limit 1" test "$(sc -j flows --limit 1 | jq length)" = 1
check "flowmon: filter proto udp" test "$(sc -j flows proto udp | jq -c '[.[].proto] | unique')" = '["udp"]'
check "flowmon: filter dport 8080" test "$(sc -j flows dport 8080 | jq -c '[.[].dport]')" = '[8080]'
check "flowmon: filter src ADDR and proto tcp" \
	test "$(sc -j flows src 10.205.0.1 and proto tcp | jq -c '[.[].dport] | sort')" = '[7777,8080,8181]'
check "flowmon: filter host in a /24, port" \
	test "$(sc -j flows host 10.205.0.0/24 port 9999 | jq length)" = 1
check "flowmon: filter that matches nothing" test "$(sc -j flows host 10.9.9.9 | jq length)" = 0
sc flows >"$TMP/text"
check "flowmon: text output has a header and the flows" \
	sh -c "head -1 '$TMP/text' | grep -q '^PROTO' && grep -q '10.205.0.2:8080' '$TMP/text'"

badf() { # badf WORDS... EXPECTED-MESSAGE
	local msg=${*: -1} out rc
	out=$(sc flows "${@:1:$#-1}" 2>&1)
	rc=$?
	check "flowmon: bad filter '${*:1:$#-1}' fails naming it" \
		sh -c "[ $rc -eq 2 ] && echo \"\$1\" | grep -qF -- \"\$2\"" _ "$out" "$msg"
}
badf dport abc "dport 'abc'"
badf bogus 1 "unknown word 'bogus'"
badf src "'src' needs a value"
badf src 10.1.2.3/40 "src '10.1.2.3/40'"
badf proto tcpx "proto 'tcpx'"
badf --sort size "--sort"

# ---- top --------------------------------------------------------------------

nsenter --net="/run/netns/$CNS" $PY -c '
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 20
while time.time() < end:
    u.sendto(b"t" * 500, ("10.205.0.2", 9998)); time.sleep(0.002)
' &
UDP_PID=$!
# The sender runs until killed below (20 s at most): wait for its flow, not
# a fixed time, so that top sees it on a loaded machine.
for _ in $(seq 100); do
	[ "$(sc -j flows proto udp dport 9998 2>/dev/null | jq length)" = 1 ] && break
	sleep 0.1
done
timeout 20 nsenter --net="/run/netns/$CNS" "$SLUICE" top --iterations 2 --interval 0.5 >"$TMP/top" 2>&1
check "flowmon: top --iterations 2 prints two frames" test "$(grep -c '^sluice top' "$TMP/top")" = 2
check "flowmon: top shows the busy UDP flow first with a rate" \
	sh -c "grep -A2 '^PROTO' '$TMP/top' | sed -n 2p | grep -q ':9998 .*K'"
check "flowmon: top writes no escape codes when not on a terminal" \
	sh -c "! grep -q $'\033' '$TMP/top'"
timeout 20 nsenter --net="/run/netns/$CNS" "$SLUICE" -j top --iterations 2 --interval 0.3 udp 2>/dev/null >"$TMP/topj"
check "flowmon: top -j: bad filter refused" test ! -s "$TMP/topj"
timeout 20 nsenter --net="/run/netns/$CNS" "$SLUICE" -j top --iterations 2 --interval 0.3 proto udp >"$TMP/topj"
check "flowmon: top -j prints one JSON frame a line" \
	sh -c "[ \$(wc -l <'$TMP/topj') -eq 2 ] && jq -e -s 'all(.[]; .top | type == \"array\") and (.[1].top[0].bytes_per_s > 0)' '$TMP/topj' >/dev/null"
kill "$UDP_PID" 2>/dev/null; wait "$UDP_PID" 2>/dev/null; UDP_PID=

# ---- through sluiced: attach and /metrics -----------------------------------

nsenter --net="/run/netns/$SNS" "$SLUICED" --socket "$SOCK" --foreground --log-level warn \
	2>>"$TMP/sluiced.log" &
DPID=$!
for _ in $(seq 100); do
	curl -sf --unix-socket "$SOCK" http://x/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
sd() { SLUICE_SOCKET=$SOCK nsenter --net="/run/netns/$SNS" "$SLUICE" -v "$@"; }
sd flowmon attach "$SDEV" --hook tc-ingress --max-flows 1000 >"$TMP/att" 2>&1
check "flowmon: attach through sluiced" grep -q "fm-$SDEV: flow monitor on $SDEV tc-ingress" "$TMP/att"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' "http://x/v1/flowmons/fm-$SDEV")
check "flowmon: GET /v1/flowmons/NAME" \
	sh -c "[ $code = 200 ] && jq -e '.max_flows == 1000 and .type == \"flowmon\"' '$TMP/body' >/dev/null"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' -X PUT \
	--data '{"dev":"'"$SDEV"'","hooks":["sideways"]}' http://x/v1/flowmons/fmx)
check "flowmon: PUT with a bad hook is 400 naming hooks" \
	sh -c "[ $code = 400 ] && jq -e '.field == \"hooks\"' '$TMP/body' >/dev/null"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' -X PUT \
	--data '{"dev":"nosuchdev0"}' http://x/v1/flowmons/fmx)
check "flowmon: PUT on a missing interface is 404, nothing created" \
	sh -c "[ $code = 404 ] && ! nsenter --net=/run/netns/$SNS $SLUICE nf list | grep -q fmx"
sl_in "$CNS" ping -c 4 -i 0.05 -q 10.205.0.2 >/dev/null 2>&1
curl -s --unix-socket "$SOCK" http://x/metrics >"$TMP/metrics"
check "flowmon: /metrics has the instance's table gauges" \
	grep -q "^sluice_flowmon_max_flows{instance=\"fm-$SDEV\"} 1000\$" "$TMP/metrics"
check "flowmon: /metrics has the top flows (the 4 pings)" \
	grep -q "^sluice_flowmon_top_flow_packets_total{instance=\"fm-$SDEV\",proto=\"icmp\",src=\"10.205.0.1\",sport=\"0\",dst=\"10.205.0.2\",dport=\"0\"} 4\$" "$TMP/metrics"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' -G \
	--data-urlencode 'filter=proto icmp' --data-urlencode sort=pkts http://x/v1/flows)
check "flowmon: GET /v1/flows?filter=proto icmp: the ping flow, as sluice -j flows shows it" \
	sh -c "[ $code = 200 ] && jq -e 'length == 1 and .[0].packets == 4 and .[0].src == \"10.205.0.1\"' '$TMP/body' >/dev/null &&
	       [ \"\$(jq -c '.[0] | keys' '$TMP/body')\" = \"\$(nsenter --net=/run/netns/$SNS $SLUICE -j flows | jq -c '.[0] | keys')\" ]"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' -G \
	--data-urlencode 'filter=dport http' http://x/v1/flows)
check "flowmon: GET /v1/flows with a bad filter is 400 naming the word" \
	sh -c "[ $code = 400 ] && jq -e '.field == \"filter\" and (.error | test(\"dport .http.\"))' '$TMP/body' >/dev/null"
code=$(curl -s --unix-socket "$SOCK" -o "$TMP/body" -w '%{http_code}' 'http://x/v1/flows?sort=size')
check "flowmon: GET /v1/flows?sort=size is 400" test "$code" = 400

# The client side's monitor (fm1) is in the client namespace: its page.
nsenter --net="/run/netns/$CNS" "$SLUICED" --socket "$TMP/c.sock" --foreground --log-level warn \
	2>>"$TMP/sluiced.log" &
CPID=$!
for _ in $(seq 100); do
	curl -sf --unix-socket "$TMP/c.sock" http://x/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
curl -s --unix-socket "$TMP/c.sock" http://x/metrics >"$TMP/cmetrics"
kill "$CPID"; wait "$CPID" 2>/dev/null
check "flowmon: /metrics: 1 retransmission counted for fm1" \
	grep -q '^sluice_flowmon_retransmits_total{instance="fm1"} 1$' "$TMP/cmetrics"
check "flowmon: /metrics: handshake histogram: 2 timed (8080, 8181), 1 under 10 ms" \
	sh -c "grep -q '^sluice_flowmon_handshake_seconds_count{instance=\"fm1\"} 2\$' '$TMP/cmetrics' &&
	       grep -q '^sluice_flowmon_handshake_seconds_bucket{instance=\"fm1\",le=\"0.01\"} 1\$' '$TMP/cmetrics'"
check "flowmon: the client's page passes promtool" sh -c "promtool check metrics <'$TMP/cmetrics' >/dev/null 2>&1"
check "flowmon: the page with flows passes promtool" sh -c "promtool check metrics <'$TMP/metrics' >/dev/null 2>&1"

# ---- a full table under churn ------------------------------------------------

# 64 entries and a flood of new UDP flows: flows are evicted while the
# readers walk the table, which restarts the kernel's walk. Each flow must
# still be listed once, the walk stay bounded (twice the table: flows that
# came in while it ran are in, those gone are not), and /metrics keep
# unique series (Prometheus refuses a whole page with a duplicate).
sd flowmon attach "$SDEV" --hook tc-ingress --name fmchurn --max-flows 64 >"$TMP/att" 2>&1 ||
	fail "flowmon: attach fmchurn: $(cat "$TMP/att")"
sl_in "$CNS" timeout 30 $PY -c '
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 25
while time.time() < end:
    for p in range(1, 4000):
        u.sendto(b"x", ("10.205.0.2", p))' 2>/dev/null &
UDP_PID=$!
dup=0 over=0 bad_page=0 reads=0
for _ in $(seq 40); do
	nsenter --net="/run/netns/$SNS" "$SLUICE" -j flows --name fmchurn >"$TMP/churn" 2>/dev/null || continue
	reads=$((reads + 1))
	jq -e '[.[] | [.proto, .src, .sport, .dst, .dport]] | length == (unique | length)' "$TMP/churn" >/dev/null ||
		dup=$((dup + 1))
	[ "$(jq length "$TMP/churn")" -le 128 ] || over=$((over + 1))
	curl -s --unix-socket "$SOCK" http://x/metrics >"$TMP/churnm"
	promtool check metrics <"$TMP/churnm" >/dev/null 2>&1 || bad_page=$((bad_page + 1))
done
kill "$UDP_PID" 2>/dev/null; wait "$UDP_PID" 2>/dev/null; UDP_PID=
check "flowmon: churn: 40 reads of the table worked ($reads)" test "$reads" = 40
check "flowmon: churn: the table filled up and churned" \
	sh -c "[ \$(curl -s --unix-socket '$SOCK' http://x/v1/flowmons/fmchurn | jq .flows_created) -gt 1000 ]"
check "flowmon: churn: no flow listed twice ($dup reads had duplicates)" test "$dup" = 0
check "flowmon: churn: the walk is bounded by twice the table ($over reads over)" test "$over" = 0
check "flowmon: churn: every /metrics page passes promtool ($bad_page did not)" test "$bad_page" = 0
sl_exit
