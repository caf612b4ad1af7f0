#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end firewall test with real traffic between two network namespaces:
# ping (IPv4, IPv6), TCP and UDP allowed or blocked exactly as the rules say,
# per-rule counters equal to the traffic sent, default policy, negation, port
# ranges, first match wins, tcp-flags, add --pos / del keeping counters,
# atomic replacement under a ping flood, and 10,000 / 65,536-rule files.
#
# Topology: client ns (CDEV, 10.201.0.1, fd00:201::1) <-veth-> server ns
# (SDEV, 10.201.0.2, fd00:201::2). The firewall sits on SDEV (XDP ingress),
# so it sees what the client sends to the server.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name fwc)
SNS=$(sl_name fws)
CDEV=$(sl_name fc)
SDEV=$(sl_name fs)
TMP=$(mktemp -d /tmp/sluice-e2efw.XXXXXX)
SRV_PID=
PY=/usr/bin/python3   # not a pyenv shim: $! must be the python process

cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }

sc() { sl_in "$SNS" "$SLUICE" "$@"; }  # sluice in the server namespace

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" || { fail "setup: veth pair"; exit 1; }
# Second addresses for negation tests: client .11 (source), server .12 (dest).
sl_in "$CNS" ip addr add 10.201.0.11/24 dev "$CDEV"
sl_in "$SNS" ip addr add 10.201.0.12/24 dev "$SDEV"

# ---- traffic helpers ---------------------------------------------------

cat >"$TMP/srv.py" <<'EOF'
# Echo server: TCP ports answer "ok:" + first bytes, UDP ports echo back.
import selectors, socket, sys
tcp = [int(p) for p in sys.argv[2].split(',')]
udp = [int(p) for p in sys.argv[3].split(',')]
sel = selectors.DefaultSelector()
for p in tcp:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', p)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, 'tcp')
for p in udp:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', p)); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, 'udp')
open(sys.argv[1], 'w').write('ready\n')
import time
deadline = time.time() + 300  # never outlives a hung test for long
while time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        try:
            if key.data == 'udp':
                data, addr = s.recvfrom(65536)
                s.sendto(data, addr)
            else:
                c, _ = s.accept()
                c.settimeout(1.5)
                try:
                    d = c.recv(64)
                    if d:
                        c.sendall(b'ok:' + d)
                except OSError:
                    pass
                c.close()
        except (BlockingIOError, OSError):
            pass
EOF

cat >"$TMP/cli.py" <<'EOF'
# cli.py tcp HOST PORT            -> exit 0 when the server answers
# cli.py udp HOST PORT N [SRC] [SPORT] -> prints how many of N datagrams came back
import socket, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
if mode == 'tcp':
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.sendall(b'hello')
        sys.exit(0 if s.recv(64).startswith(b'ok:') else 1)
    except OSError:
        sys.exit(1)
n = int(sys.argv[4])
src = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != '-' else ''
sport = int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] != '-' else 0
# SIZE: payload of that many bytes, each 4-byte word looking like a UDP
# header to port 9001 (probes how non-first fragments are classified)
size = int(sys.argv[7]) if len(sys.argv) > 7 else 0
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if src or sport:
    s.bind((src, sport))
for i in range(n):
    s.sendto(b'\x00\x35\x23\x29' * (size // 4) if size else b'd%d' % i, (host, port))
    time.sleep(0.005)
got = 0
end = time.time() + 1.0
s.settimeout(0.2)
while got < n and time.time() < end:
    try:
        s.recvfrom(65536)
        got += 1
    except socket.timeout:
        pass
print(got)
EOF

TCP_PORTS=8080,8081,8082,8083,8084
UDP_PORTS=9000,9001,9002,9003,9009,9010,9015,9019,9020,9021,9030,9031,9032
# nsenter execs python: $! is the server's PID, which cleanup stops.
nsenter --net="/run/netns/$SNS" "$PY" "$TMP/srv.py" "$TMP/ready" "$TCP_PORTS" "$UDP_PORTS" >"$TMP/srv.log" 2>&1 &
SRV_PID=$!
for _ in $(seq 50); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
[ -s "$TMP/ready" ] || { fail "setup: echo server did not start"; exit 1; }

# tcp_ok HOST PORT: the connection works end to end
tcp_ok() { sl_in "$CNS" "$PY" "$TMP/cli.py" tcp "$@"; }
# udp_n HOST PORT N [SRC] [SPORT]: prints how many datagrams came back
tcp_fails() { ! tcp_ok "$@"; }
udp_n() { sl_in "$CNS" "$PY" "$TMP/cli.py" udp "$@"; }
# ping_n [-6] HOST N: prints how many replies came back
ping_n() {
	local v=-4
	[ "$1" = -6 ] && { v=-6; shift; }
	sl_in "$CNS" ping "$v" -n -q -c "$2" -i 0.05 -W 1 "$1" 2>/dev/null |
		awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }'
}
# cnt IDX [NAME]: packets counted by rule IDX (0: the default policy)
cnt() {
	local sel=(--name "${2:-fw-$SDEV}")
	sc firewall show "${sel[@]}" -j | "$PY" -c '
import json, sys
d = json.load(sys.stdin); i = int(sys.argv[1])
print(d["default_packets"] if i == 0 else d["rules"][i - 1]["packets"])' "$1"
}
# counters [NAME]: "p1 p2 ... | default" for compact comparisons
counters() {
	sc firewall show --name "${1:-fw-$SDEV}" -j | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(str(r["packets"]) for r in d["rules"]), "|", d["default_packets"])'
}
# nrules: how many rules the server's firewall has
nrules() {
	sc firewall show "$SDEV" -j | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["rules"]))'
}
# expect NAME GOT WANT
expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}
load() { sc firewall load "$SDEV" "$@" >/dev/null; }

# Warm up neighbour caches before any firewall, so ARP/ND is out of the way.
ping_n 10.201.0.2 1 >/dev/null
ping_n -6 fd00:201::2 1 >/dev/null

# ---- 1. ping, TCP, UDP allowed or blocked; exact counters ---------------

cat >"$TMP/basic.fw" <<'EOF'
# basic rule set
accept src 10.201.0.1/32 proto icmp icmp-type 8   # 1 IPv4 echo from the client
drop proto icmpv6 icmp-type 128                    # 2 IPv6 echo
accept proto tcp dport 8080                        # 3
drop proto tcp dport 8081                          # 4
accept proto udp dport 9000                        # 5
drop proto udp dport 9001                          # 6
drop src 10.201.0.11/32 proto icmp                 # 7 (the other client address)
default accept
EOF
load "$TMP/basic.fw" && pass "load basic rule set" || fail "load basic rule set"
expect "ipv4 ping accepted (5/5 replies)" "$(ping_n 10.201.0.2 5)" 5
expect "ipv4 accept rule counts exactly 5" "$(cnt 1)" 5
expect "ipv6 ping dropped (0/5 replies)" "$(ping_n -6 fd00:201::2 5)" 0
expect "icmpv6 echo drop rule counts exactly 5" "$(cnt 2)" 5
check "ipv6 tcp to accepted port 8080 connects" tcp_ok fd00:201::2 8080
check "ipv4 tcp to accepted port 8080 connects" tcp_ok 10.201.0.2 8080
c3=$(cnt 3)
check "tcp accept rule counted the connections ($c3 packets)" test "$c3" -ge 6
check "tcp to dropped port 8081 fails" tcp_fails 10.201.0.2 8081
c4=$(cnt 4)
check "tcp drop rule counted the SYNs ($c4 packets)" test "$c4" -ge 1
expect "udp to accepted port 9000: 7/7 echoed" "$(udp_n 10.201.0.2 9000 7)" 7
expect "udp accept rule counts exactly 7" "$(cnt 5)" 7
expect "udp to dropped port 9001: 0/6 echoed" "$(udp_n 10.201.0.2 9001 6)" 0
expect "udp drop rule counts exactly 6" "$(cnt 6)" 6
expect "ipv6 udp to accepted port 9000: 4/4 echoed" "$(udp_n fd00:201::2 9000 4)" 4
expect "udp accept rule counts 7+4" "$(cnt 5)" 11
expect "ping from blocked source 10.201.0.11: 0/3" \
	"$(sl_in "$CNS" ping -4 -n -q -c 3 -i 0.05 -W 1 -I 10.201.0.11 10.201.0.2 2>/dev/null |
		awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }')" 0
expect "source drop rule counts exactly 3" "$(cnt 7)" 3
nfj=$(sc nf list -j)
expect "nf list shows firewall-rule drops" \
	"$("$PY" -c 'import json,sys; d=[x for x in json.loads(sys.argv[1]) if x["name"]==sys.argv[2]][0]; print(d["drop_reasons"].get("firewall-rule",0) >= 5+6+3)' "$nfj" "fw-$SDEV")" True

# ---- 2. default drop, negation, ranges, first match wins ---------------

cat >"$TMP/policy.fw" <<'EOF'
accept proto icmpv6                                 # 1 absorbs ND/MLD strays
accept proto icmp icmp-type 8                       # 2
drop src !10.201.0.1/32 proto udp dport 9002        # 3 only .1 may use 9002
accept proto udp dport 9002                         # 4
drop dst !10.201.0.2/32 proto udp dport 9003        # 5 only .2 serves 9003
accept proto udp dport 9003                         # 6
accept proto udp dport 9020                         # 7 first match wins ...
drop proto udp dport 9020-9029                      # 8 ... over this range
drop proto udp dport 9010-9019                      # 9
accept proto udp dport 9000-9030                    # 10
accept proto udp sport 40000-40099 dport 9031       # 11
accept proto tcp dport 8080                         # 12
default drop
EOF
load "$TMP/policy.fw" && pass "load policy rule set" || fail "load policy rule set"
expect "default drop: udp 9032 0/5" "$(udp_n 10.201.0.2 9032 5)" 0
expect "default drop counts exactly 5" "$(cnt 0)" 5
check "default drop: tcp 8081 fails" tcp_fails 10.201.0.2 8081
check "accept rule before default: tcp 8080 connects" tcp_ok 10.201.0.2 8080
expect "default drop lets accepted ping through" "$(ping_n 10.201.0.2 3)" 3
expect "negated src: from .1 accepted" "$(udp_n 10.201.0.2 9002 4 10.201.0.1)" 4
expect "negated src: from .11 dropped" "$(udp_n 10.201.0.2 9002 3 10.201.0.11)" 0
expect "negated src rule counts only .11 (3)" "$(cnt 3)" 3
expect "accept after negated rule counts .1 (4)" "$(cnt 4)" 4
expect "negated dst: to .2 accepted" "$(udp_n 10.201.0.2 9003 2)" 2
expect "negated dst: to .12 dropped" "$(udp_n 10.201.0.12 9003 5)" 0
expect "negated dst rule counts exactly 5" "$(cnt 5)" 5
expect "first match: 9020 accepted by the single-port rule" "$(udp_n 10.201.0.2 9020 3)" 3
expect "range: 9021 dropped" "$(udp_n 10.201.0.2 9021 2)" 0
expect "first-match rule counts 3, range rule 2" "$(cnt 7),$(cnt 8)" 3,2
got=""
for p in 9009 9010 9015 9019 9030; do got="$got$(udp_n 10.201.0.2 $p 2) "; done
expect "range 9010-9019: edges dropped, outside accepted" "$got" "2 0 0 0 2 "
expect "range drop rule counts exactly 6" "$(cnt 9)" 6
expect "sport range: from 40050 accepted" "$(udp_n 10.201.0.2 9031 3 - 40050)" 3
expect "sport range: from 40100 dropped" "$(udp_n 10.201.0.2 9031 3 - 40100)" 0
expect "sport range rule counts exactly 3" "$(cnt 11)" 3

# ---- 3. tcp-flags -----------------------------------------------------

cat >"$TMP/flags.fw" <<'EOF'
drop proto tcp dport 8082 tcp-flags syn/syn,ack     # 1 new connections to 8082
drop proto tcp dport 8083 tcp-flags ack/syn,ack     # 2 everything after the handshake
drop proto tcp dport 8084 tcp-flags fin,psh,urg/all # 3 xmas only
default accept
EOF
load "$TMP/flags.fw" && pass "load tcp-flags rule set" || fail "load tcp-flags rule set"
check "tcp-flags syn/syn,ack: connection to 8082 fails" tcp_fails 10.201.0.2 8082
c1=$(cnt 1)
check "syn rule counted SYNs only ($c1 in 1..4)" test "$c1" -ge 1 -a "$c1" -le 4
check "tcp-flags ack/syn,ack: 8083 gets no answer" tcp_fails 10.201.0.2 8083
c2=$(cnt 2)
check "ack rule counted the post-handshake packets ($c2)" test "$c2" -ge 1
check "tcp-flags xmas rule: normal connection to 8084 works" tcp_ok 10.201.0.2 8084
expect "xmas rule matched nothing" "$(cnt 3)" 0
check "tcp-flags: other ports unaffected" tcp_ok 10.201.0.2 8080

# ---- 4. add --pos / del keep the other rules' counters -------------------

cat >"$TMP/edit.fw" <<'EOF'
drop proto udp dport 9001
accept proto udp dport 9000
accept proto udp dport 9002
default accept
EOF
load "$TMP/edit.fw" || fail "load edit rule set"
udp_n 10.201.0.2 9001 3 >/dev/null
udp_n 10.201.0.2 9000 4 >/dev/null
udp_n 10.201.0.2 9002 5 >/dev/null
expect "counters before edits" "$(counters | cut -d'|' -f1)" "3 4 5 "
sc firewall add "$SDEV" --pos 2 drop proto udp dport 9003 && pass "add --pos 2" || fail "add --pos 2"
expect "add --pos 2 keeps counters, new rule at 0" "$(counters | cut -d'|' -f1)" "3 0 4 5 "
expect "inserted rule is rule 2" \
	"$(sc firewall show "$SDEV" -j | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rules"][1]["rule"])')" \
	"drop proto udp dport 9003"
expect "inserted rule filters (9003 dropped)" "$(udp_n 10.201.0.2 9003 2)" 0
expect "counters after traffic to the new rule" "$(counters | cut -d'|' -f1)" "3 2 4 5 "
sc firewall add "$SDEV" accept proto udp dport 9010 && pass "add (append)" || fail "add (append)"
expect "append keeps counters" "$(counters | cut -d'|' -f1)" "3 2 4 5 0 "
sc firewall del "$SDEV" 1 && pass "del 1" || fail "del 1"
expect "del 1 keeps the others' counters" "$(counters | cut -d'|' -f1)" "2 4 5 0 "
expect "deleted rule no longer filters (9001 echoed)" "$(udp_n 10.201.0.2 9001 2)" 2
sc firewall del "$SDEV" 9 2>/dev/null && fail "del of a missing rule number is refused" ||
	pass "del of a missing rule number is refused"
expect "refused del changes nothing" "$(counters | cut -d'|' -f1)" "2 4 5 0 "
sc firewall flush "$SDEV" && pass "flush" || fail "flush"
expect "flush leaves no rule, keeps the default" "$(nrules) $(sc firewall show "$SDEV" -j | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["default"])')" "0 accept"
expect "after flush 9003 accepted by default" "$(udp_n 10.201.0.2 9003 2)" 2

# ---- 5. atomic replacement under a ping flood --------------------------

{
	echo "drop proto udp dport 9001"
	echo "accept src 10.201.0.1/32 proto icmp"
	echo "default drop"
} >"$TMP/swap_a.fw"
"$PY" - "$TMP/swap_b.fw" <<'EOF'
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(2000):
        f.write('drop src 172.%d.%d.0/24 proto tcp dport %d\n' % (16 + i % 16, i // 16, 1000 + i))
    f.write('accept proto icmp icmp-type 8\n')
    for i in range(500):
        f.write('drop proto udp dport %d\n' % (20000 + i))
    f.write('default drop\n')
EOF
load "$TMP/swap_a.fw" || fail "load swap rule set A"
sl_in "$CNS" ping -4 -n -q -c 1500 -i 0.002 -W 1 10.201.0.2 >"$TMP/flood.out" 2>&1 &
FLOOD=$!
swaps=0
for i in $(seq 1 16); do
	f=$TMP/swap_a.fw
	[ $((i % 2)) -eq 1 ] && f=$TMP/swap_b.fw
	load "$f" && swaps=$((swaps + 1))
	kill -0 "$FLOOD" 2>/dev/null || break
done
wait "$FLOOD"
rcv=$(awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }' "$TMP/flood.out")
echo "  swap: $swaps rule set replacements during a 1500-ping flood, $rcv replies"
check "atomic swap: at least 3 replacements happened during the flood" test "$swaps" -ge 3
expect "atomic swap: no ping lost" "$rcv" 1500

# ---- 6. fragments, IPv6 prefixes, iif -----------------------------------

sl_in "$CNS" ip addr add fd00:201::11/64 dev "$CDEV" nodad
cat >"$TMP/frag6.fw" <<EOF
drop proto udp dport 9001                           # 1 fragment probe
drop src fd00:201::1/128 proto udp dport 9002       # 2
accept src fd00:201::/64 proto udp dport 9003       # 3
drop src !fd00:201::/64 proto udp                   # 4 never (all from the /64)
drop iif $SDEV proto udp dport 9009                 # 5
default accept
EOF
load "$TMP/frag6.fw" && pass "load fragment/IPv6/iif rule set" || fail "load fragment/IPv6/iif rule set"
expect "ipv4 fragmented udp (3000 bytes) to 9000 accepted" "$(udp_n 10.201.0.2 9000 3 - - 3000)" 3
expect "ipv6 fragmented udp (3000 bytes) to 9000 accepted" "$(udp_n fd00:201::2 9000 3 - - 3000)" 3
expect "non-first fragments never match the dport 9001 rule" "$(cnt 1)" 0
expect "ipv4 fragmented udp to 9001 dropped" "$(udp_n 10.201.0.2 9001 2 - - 3000)" 0
expect "first fragments counted by the 9001 rule" "$(cnt 1)" 2
expect "ipv6 /128 source: from ::1 dropped" "$(udp_n fd00:201::2 9002 4 fd00:201::1)" 0
expect "ipv6 /128 source: from ::11 accepted" "$(udp_n fd00:201::2 9002 3 fd00:201::11)" 3
expect "ipv6 /128 rule counts exactly 4" "$(cnt 2)" 4
expect "ipv6 /64 accept rule" "$(udp_n fd00:201::2 9003 5 fd00:201::11)" 5
expect "ipv6 /64 accept rule counts exactly 5" "$(cnt 3)" 5
expect "negated ipv6 prefix matched nothing" "$(cnt 4)" 0
expect "iif $SDEV: udp 9009 dropped" "$(udp_n 10.201.0.2 9009 3)" 0
expect "iif rule counts exactly 3" "$(cnt 5)" 3

# ---- 7. large rule sets ------------------------------------------------

# gen N FILE: N rules; rule N/2 drops udp 9000 from the client, the last rule
# accepts icmp echo, the rest are noise that our traffic never matches (one
# noise rule is a near miss: right port, privileged source ports only).
gen() {
	"$PY" - "$1" "$2" <<'EOF'
import ipaddress, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
r = random.Random(42)
mid = n // 2
with open(path, 'w') as f:
    f.write('# generated: %d rules\n' % n)
    for i in range(1, n + 1):
        if i == mid:
            f.write('drop src 10.201.0.1/32 proto udp dport 9000\n')
        elif i == mid + 1:
            f.write('drop src 10.201.0.0/24 proto udp sport 1-1023 dport 9001\n')
        elif i == n:
            f.write('accept proto icmp icmp-type 8\n')
        else:
            k = r.randrange(4)
            a = '172.%d.%d.%d' % (16 + r.randrange(16), r.randrange(256), r.randrange(256))
            if k == 0:
                f.write('drop src %s/32 proto udp dport %d\n' % (a, r.randrange(1, 65536)))
            elif k == 1:
                lo = r.randrange(1, 60000)
                net = ipaddress.ip_network('%s/%d' % (a, r.choice([24, 28, 32])), strict=False)
                f.write('accept src %s proto tcp dport %d-%d\n' % (net, lo, lo + r.randrange(100)))
            elif k == 2:
                f.write('drop dst 192.168.%d.%d/32 proto tcp sport %d\n' % (r.randrange(256), r.randrange(256), r.randrange(1, 65536)))
            else:
                f.write('drop src fd%02x:%x::/48 proto udp dport %d\n' % (r.randrange(256), r.randrange(65536), r.randrange(1, 65536)))
    f.write('default accept\n')
EOF
}
gen 10000 "$TMP/r10k.fw"
gen 65536 "$TMP/r64k.fw"
gen 65537 "$TMP/r64k1.fw"

t=$(date +%s%N)
if load "$TMP/r10k.fw"; then
	ms=$((($(date +%s%N) - t) / 1000000))
	echo "  10,000-rule file loaded in ${ms} ms"
	pass "10,000-rule file loads (${ms} ms)"
else
	fail "10,000-rule file loads"
fi
expect "10k: rule count" "$(nrules)" 10000
expect "10k: udp 9000 from the client dropped" "$(udp_n 10.201.0.2 9000 5)" 0
expect "10k: rule 5000 counts exactly 5" "$(cnt 5000)" 5

t=$(date +%s%N)
if load "$TMP/r64k.fw"; then
	ms=$((($(date +%s%N) - t) / 1000000))
	echo "  65,536-rule file loaded in ${ms} ms"
	pass "65,536-rule file loads (${ms} ms)"
else
	fail "65,536-rule file loads"
fi
sc firewall show "$SDEV" -j >"$TMP/64k.json"
expect "64k: rule count" "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rules"]))' "$TMP/64k.json")" 65536
expect "64k: udp 9000 from the client dropped" "$(udp_n 10.201.0.2 9000 6)" 0
expect "64k: udp 9001 (near-miss rule) accepted" "$(udp_n 10.201.0.2 9001 4)" 4
expect "64k: ping accepted by the last rule" "$(ping_n 10.201.0.2 5)" 5
sc firewall show "$SDEV" -j >"$TMP/64k.json"
expect "64k: counters (rule 32768, 32769, 65536)" \
	"$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1]))["rules"]; print(r[32767]["packets"], r[32768]["packets"], r[65535]["packets"], sum(x["packets"] for x in r))' "$TMP/64k.json")" \
	"6 0 5 11"
expect "64k: tcp 8080 still connects" "$(tcp_ok 10.201.0.2 8080 && echo ok)" ok

out=$(sc firewall load "$SDEV" "$TMP/r64k1.fw" 2>&1)
rc=$?
check "65,537-rule file is refused ($out)" test "$rc" -ne 0
expect "refused file leaves the 65,536 rules" "$(cnt 32768)" 6

echo "  e2e_firewall: ${SECONDS}s"
sl_exit
