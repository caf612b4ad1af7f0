#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end conntrack test with real traffic through a router namespace,
# compared with the kernel's own conntrack on the same router:
#
#   client (CDEV 10.202.0.1, fd00:202::1)
#     <-> router (RC 10.202.0.254 | RS 10.203.0.254, forwarding)
#     <-> server (SDEV 10.203.0.1, fd00:203::1)
#
# One conntrack instance sits first on the XDP ingress of both router
# interfaces (one table for both directions); iptables/ip6tables rules with
# ctstate make the kernel track the same flows. TCP (held open, then
# closed), UDP (answered and not), ping over IPv4 and IPv6: every flow must
# be in both tables with the same TCP state, replied-ness and assurance.
# Also: list text and --json, filters, flush, stats, config, and bad
# arguments that fail clearly and change nothing.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name ctc)
RNS=$(sl_name ctr)
SNS=$(sl_name cts)
CDEV=$(sl_name cc)
RC=$(sl_name crc)
RS=$(sl_name crs)
SDEV=$(sl_name cs)
TMP=$(mktemp -d /tmp/sluice-e2ect.XXXXXX)
PY=/usr/bin/python3
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	sl_cleanup
	rm -f "/run/sluice/test-ct-$$.sock"
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
command -v conntrack >/dev/null || { fail "conntrack (package conntrack) missing: scripts/deps.sh"; exit 1; }
command -v jq >/dev/null || { fail "jq missing: scripts/deps.sh"; exit 1; }

rt() { sl_in "$RNS" "$SLUICE" "$@"; }  # sluice in the router namespace
cping() { sl_in "$CNS" ping -W 1 -q "$@" >/dev/null; }
jqe() { jq -e "$@" >/dev/null; }  # a jq condition, silent

# ---- topology ----------------------------------------------------------

sl_netns_add "$CNS" && sl_netns_add "$RNS" && sl_netns_add "$SNS" ||
	{ fail "setup: namespaces"; exit 1; }
ip link add "$CDEV" netns "$CNS" type veth peer name "$RC" netns "$RNS"
ip link add "$SDEV" netns "$SNS" type veth peer name "$RS" netns "$RNS"
sl_in "$CNS" ip addr add 10.202.0.1/24 dev "$CDEV"
sl_in "$CNS" ip addr add fd00:202::1/64 dev "$CDEV" nodad
sl_in "$RNS" ip addr add 10.202.0.254/24 dev "$RC"
sl_in "$RNS" ip addr add fd00:202::fe/64 dev "$RC" nodad
sl_in "$RNS" ip addr add 10.203.0.254/24 dev "$RS"
sl_in "$RNS" ip addr add fd00:203::fe/64 dev "$RS" nodad
sl_in "$SNS" ip addr add 10.203.0.1/24 dev "$SDEV"
sl_in "$SNS" ip addr add fd00:203::1/64 dev "$SDEV" nodad
for l in "$CNS $CDEV" "$RNS $RC" "$RNS $RS" "$SNS $SDEV"; do
	set -- $l
	sl_in "$1" ip link set "$2" up
done
sl_in "$CNS" ip route add default via 10.202.0.254
sl_in "$CNS" ip -6 route add default via fd00:202::fe
sl_in "$SNS" ip route add default via 10.203.0.254
sl_in "$SNS" ip -6 route add default via fd00:203::fe
sl_in "$RNS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The kernel tracks the router's forwarded traffic: a ctstate rule loads
# conntrack in this namespace (it accepts everything).
sl_in "$RNS" iptables -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED -j ACCEPT &&
	sl_in "$RNS" ip6tables -A FORWARD -m conntrack --ctstate NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED -j ACCEPT ||
	{ fail "setup: iptables ctstate rules"; exit 1; }

# ---- servers and clients -----------------------------------------------

cat >"$TMP/srv.py" <<'EOF'
# TCP 8080: answers "ok", then waits for the client to close and closes.
# UDP 5353: echoes. Both families.
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
for fam, addr in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
    t = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET6:
        t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, 8080)); t.listen(16); t.setblocking(False)
    sel.register(t, selectors.EVENT_READ, 'listen')
    u = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    u.bind((addr, 5353)); u.setblocking(False)
    sel.register(u, selectors.EVENT_READ, 'udp')
open(sys.argv[1], 'w').write('ready\n')
deadline = time.time() + 120
while time.time() < deadline:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            if key.data == 'udp':
                d, a = s.recvfrom(2048); s.sendto(d, a)
            elif key.data == 'listen':
                c, _ = s.accept(); c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, 'conn')
            else:
                d = s.recv(2048)
                if d:
                    s.sendall(b'ok')
                else:
                    sel.unregister(s); s.close()
        except OSError:
            pass
EOF

cat >"$TMP/cli.py" <<'EOF'
# cli.py tcp ADDR CLOSE_FILE (closes once CLOSE_FILE exists) | udp ADDR PORT
import socket, sys, time
kind, addr = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
if kind == 'tcp':
    s = socket.create_connection((addr, 8080), timeout=3)
    s.sendall(b'hi'); s.recv(16)
    print('connected', flush=True)
    import os
    deadline = time.time() + 30
    while not os.path.exists(sys.argv[3]) and time.time() < deadline:
        time.sleep(0.05)
    s.close()
else:
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1)
    s.sendto(b'ping', (addr, int(sys.argv[3])))
    try:
        print(s.recv(64).decode())
    except OSError as e:
        print('no answer:', e)
EOF

# Compares the kernel's table (conntrack -L) with ours (list --json) for
# the flows of the test's addresses; prints PASS/FAIL per flow.
cat >"$TMP/cmp.py" <<'EOF'
import json, re, sys
label, kfile, sfile = sys.argv[1], sys.argv[2], sys.argv[3]
ours_only_ok = sys.argv[4] == 'subset' if len(sys.argv) > 4 else False
mine = lambda a: a.startswith(('10.202.', '10.203.', 'fd00:202:', 'fd00:203:'))

def kernel():
    flows = {}
    for line in open(kfile):
        w = line.split()
        if len(w) < 4 or not w[1].isdigit():
            continue
        proto = w[0]
        state = w[3] if proto == 'tcp' else '-'
        kv = [x.split('=', 1) for x in w if '=' in x]
        first = {}
        for k, v in kv:
            if k in first:
                break
            first[k] = v
        if not mine(first.get('src', '')):
            continue
        if proto in ('icmp', 'icmpv6'):
            key = (proto, first['src'], first['dst'], first['type'], first['id'])
        elif proto in ('tcp', 'udp'):
            key = (proto, first['src'], first['dst'], first['sport'], first['dport'])
        else:
            key = (proto, first['src'], first['dst'])
        flows[key] = (state, '[UNREPLIED]' in w, '[ASSURED]' in w)
    return flows

def ours():
    flows = {}
    for e in json.load(open(sfile)):
        o = e['orig']
        if not mine(o['src']):
            continue
        p = e['proto']
        if p in ('icmp', 'icmpv6'):
            key = (p, o['src'], o['dst'], str(o['type']), str(o['id']))
        elif p in ('tcp', 'udp'):
            key = (p, o['src'], o['dst'], str(o['sport']), str(o['dport']))
        else:
            key = (p, o['src'], o['dst'])
        flows[key] = (e.get('state', '-'), e['unreplied'], e['assured'])
    return flows

k, s = kernel(), ours()
bad = 0
if not k:
    print('FAIL: %s: the kernel tracked none of the test flows' % label); bad += 1
for key in sorted(set(k) | set(s)):
    name = '%s: %s %s -> %s %s/%s' % (label, key[0], key[1], key[2], *(key[3:] + ('', ''))[:2])
    if key not in s:
        print('FAIL: %s: in the kernel %s, not in sluice' % (name, k[key])); bad += 1
    elif key not in k:
        print('FAIL: %s: in sluice %s, not in the kernel' % (name, s[key])); bad += 1
    elif k[key] != s[key]:
        print('FAIL: %s: kernel (state, unreplied, assured) %s, sluice %s' % (name, k[key], s[key])); bad += 1
    else:
        print('PASS: %s: both %s%s%s' % (name, k[key][0], ' UNREPLIED' if k[key][1] else '',
                                         ' ASSURED' if k[key][2] else ''))
sys.exit(1 if bad else 0)
EOF

# Background processes run nsenter directly, so $! is theirs to stop.
nsenter --net="/run/netns/$SNS" "$PY" "$TMP/srv.py" "$TMP/ready" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$TMP/ready" ] && break; sleep 0.1; done
[ -s "$TMP/ready" ] || { fail "setup: server did not start"; exit 1; }

# ---- attach: first in the chain ------------------------------------------

echo "default accept" >"$TMP/rules.txt"
rt firewall load "$RC" "$TMP/rules.txt" >/dev/null || fail "setup: firewall on $RC"
check "attach puts conntrack on $RC" rt conntrack attach "$RC"
check "attach puts conntrack on $RS" rt conntrack attach "$RS"
chain=$(rt -j chain show "$RC" | jq -r '.[] | select(.hook=="ingress") | .instances | join(" ")')
check "conntrack runs before the firewall ($chain)" [ "$chain" = "ct fw-$RC" ]
check "attach twice changes nothing" rt conntrack attach "$RC"
chain2=$(rt -j chain show "$RC" | jq -r '.[] | select(.hook=="ingress") | .instances | join(" ")')
check "chain unchanged ($chain2)" [ "$chain2" = "$chain" ]

# ---- traffic, then both tables --------------------------------------------

nsenter --net="/run/netns/$CNS" "$PY" "$TMP/cli.py" tcp 10.203.0.1 "$TMP/close" >"$TMP/tcp4.out" 2>&1 &
PIDS+=($!); TCP4=$!
nsenter --net="/run/netns/$CNS" "$PY" "$TMP/cli.py" tcp fd00:203::1 "$TMP/close" >"$TMP/tcp6.out" 2>&1 &
PIDS+=($!); TCP6=$!
u4=$(sl_in "$CNS" "$PY" "$TMP/cli.py" udp 10.203.0.1 5353)
u6=$(sl_in "$CNS" "$PY" "$TMP/cli.py" udp fd00:203::1 5353)
check "udp answered over the router (v4: $u4, v6: $u6)" [ "$u4" = ping ] && [ "$u6" = ping ]
sl_in "$CNS" "$PY" "$TMP/cli.py" udp 10.203.0.1 5999 >/dev/null  # closed port
check "ping v4" cping -c 2 -i 0.2 10.203.0.1
check "ping v6" cping -6 -c 2 -i 0.2 fd00:203::1
for _ in $(seq 30); do grep -q connected "$TMP/tcp4.out" && grep -q connected "$TMP/tcp6.out" && break; sleep 0.1; done
check "tcp connections up" grep -q connected "$TMP/tcp4.out"
sleep 0.3

sl_in "$RNS" conntrack -L >"$TMP/k1.txt" 2>/dev/null
rt -j conntrack list >"$TMP/s1.json"
"$PY" "$TMP/cmp.py" open "$TMP/k1.txt" "$TMP/s1.json" || SL_FAILS=$((SL_FAILS + 1))

# The clients close; the server closes back: TIME_WAIT on both sides.
touch "$TMP/close"
wait "$TCP4" "$TCP6" 2>/dev/null
sleep 0.5
sl_in "$RNS" conntrack -L -p tcp >"$TMP/k2.txt" 2>/dev/null
rt -j conntrack list -p tcp >"$TMP/s2.json"
"$PY" "$TMP/cmp.py" closed "$TMP/k2.txt" "$TMP/s2.json" || SL_FAILS=$((SL_FAILS + 1))
check "closed tcp is in TIME_WAIT" [ "$(jq '[.[] | select(.state=="TIME_WAIT")] | length' "$TMP/s2.json")" -ge 2 ]

# ---- list formats and filters ------------------------------------------------

rt conntrack list >"$TMP/list.txt" 2>"$TMP/list.err"
check "list: conntrack -L lines" grep -qE '^tcp +6 [0-9]+ TIME_WAIT src=10\.202\.0\.1 dst=10\.203\.0\.1 sport=[0-9]+ dport=8080 packets=[0-9]+ bytes=[0-9]+ src=10\.203\.0\.1 dst=10\.202\.0\.1 sport=8080 dport=[0-9]+ packets=[0-9]+ bytes=[0-9]+ \[ASSURED\]$' "$TMP/list.txt"
check "list: unreplied udp" grep -qE '^udp +17 [0-9]+ src=10\.202\.0\.1 dst=10\.203\.0\.1 sport=[0-9]+ dport=5999 .*\[UNREPLIED\] src=10\.203\.0\.1' "$TMP/list.txt"
check "list: icmpv6 echo" grep -qE '^icmpv6 +58 [0-9]+ src=fd00:202::1 dst=fd00:203::1 type=128 code=0 id=[0-9]+ .* type=129 code=0' "$TMP/list.txt"
check "list: count on stderr" grep -q "flow entries have been shown" "$TMP/list.err"
check "list --json parses, every entry has both tuples" \
	jqe 'length > 0 and all(.[]; .orig.src and .reply.dst and (.timeout > 0))' "$TMP/s1.json"
n_udp=$(rt -j conntrack list -p udp | jq length)
n_all=$(rt -j conntrack list | jq length)
check "list -p udp: only udp ($n_udp of $n_all)" [ "$n_udp" -eq 3 ]
check "list -s/-d filter" [ "$(rt -j conntrack list -s fd00:202::1 -d fd00:203::1 | jq '[.[] | select(.family != "ipv6")] | length')" -eq 0 ]
check "list --state" [ "$(rt -j conntrack list --state TIME_WAIT | jq 'all(.[]; .state == "TIME_WAIT")')" = true ]

# ---- stats, config -------------------------------------------------------------

st=$(rt -j conntrack stats)
check "stats: counts packets" jqe '.[0].name == "ct" and .[0].established > 0 and .[0].new > 0 and .[0].related >= 1 and .[0].entries > 0 and .[0].gc_runs >= 0' <<<"$st"
check "stats: the ICMP port unreachable was RELATED" jqe '.[0].related >= 1' <<<"$st"
cfg=$(rt -j conntrack config)
check "config: kernel default timeouts" jqe '.[0].timeouts.tcp_established == 432000 and .[0].timeouts.tcp_syn_sent == 120 and .[0].timeouts.udp == 30 and .[0].timeouts.udp_stream == 120 and .[0].timeouts.icmp == 30 and .[0].loose == true' <<<"$cfg"
check "config: set a timeout" rt conntrack config --timeout udp=45 --gc-interval 500
check "config: it shows" [ "$(rt -j conntrack config | jq '.[0].timeouts.udp')" -eq 45 ]

# ---- bad arguments: clear errors, nothing changed -----------------------------

before=$(rt -j nf list | jq -c '[.[].name] | sort'); cfg_before=$(rt -j conntrack config)
bad() { # bad NAME EXPECTED-MESSAGE CMD...
	local name=$1 want=$2
	shift 2
	if "$@" >"$TMP/bad.out" 2>&1; then
		fail "$name: accepted"
	elif ! grep -q -- "$want" "$TMP/bad.out"; then
		fail "$name: message '$(cat "$TMP/bad.out")' lacks '$want'"
	else
		pass "$name: $(head -1 "$TMP/bad.out")"
	fi
}
bad "attach to a missing interface" "nosuchdev" rt conntrack attach nosuchdev0 --name ctnew
bad "attach with a bad hook" "hook" rt conntrack attach "$RC" --hook sideways --name ctnew
bad "list with an unknown protocol" "unknown protocol" rt conntrack list -p bogus
bad "list with a bad address" "not an IPv4 or IPv6 address" rt conntrack list -s 10.1.1
bad "list with an unknown state" "unknown TCP state" rt conntrack list --state OPEN
bad "config with an unknown timeout" "unknown" rt conntrack config --timeout tcp_forever=5
bad "config with a zero timeout" "SECONDS must be" rt conntrack config --timeout udp=0
bad "config with a bad gc interval" "gc-interval" rt conntrack config --gc-interval 1
bad "create an existing instance" "exists" rt conntrack create ct
bad "create with a tiny table" "--size" rt conntrack create ctsmall --size 3
bad "delete an instance in use" "chain" rt conntrack delete ct
bad "list a firewall as conntrack" "not a conntrack" rt conntrack list --name "fw-$RC"
bad "attach onto a firewall's name" "not a conntrack" rt conntrack attach "$RC" --name "fw-$RC"
bad "unexpected argument" "unexpected" rt conntrack flush extra
after=$(rt -j nf list | jq -c '[.[].name] | sort')
check "bad arguments created or removed no instance ($after)" [ "$before" = "$after" ]
check "bad arguments changed no option" [ "$(rt -j conntrack config)" = "$cfg_before" ]

# ---- the daemon: GET and DELETE /v1/conntrack -----------------------------------

SLUICED=$(dirname "$SLUICE")/sluiced
SOCK=/run/sluice/test-ct-$$.sock
mkdir -p /run/sluice
nsenter --net="/run/netns/$RNS" "$SLUICED" --socket "$SOCK" --foreground --log-level warn \
	>/dev/null 2>>"$TMP/sluiced.log" &
PIDS+=($!)
for _ in $(seq 50); do curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break; sleep 0.1; done
api() { # api METHOD PATH: prints the status, the body goes to $TMP/body
	curl -s --unix-socket "$SOCK" -X "$1" -o "$TMP/body" -w '%{http_code}' "http://sluiced$2"
}
code=$(api GET /v1/conntrack)
check "api: GET /v1/conntrack ($code)" [ "$code" = 200 ]
check "api: the same entries as the CLI" \
	[ "$(jq -c '[.[] | .orig.src + " " + .proto] | sort' "$TMP/body")" = "$(rt -j conntrack list | jq -c '[.[] | .orig.src + " " + .proto] | sort')" ]
code=$(api GET '/v1/conntrack?proto=tcp')
check "api: ?proto=tcp ($code)" jqe 'length >= 2 and all(.[]; .proto == "tcp" and .state)' "$TMP/body"
code=$(api GET '/v1/conntrack?proto=nope')
check "api: bad proto is a 400 naming it ($code)" jqe '.field == "proto"' "$TMP/body"
code=$(api GET "/v1/conntrack?name=fw-$RC")
check "api: a firewall is not a conntrack ($code)" [ "$code" = 400 ]
code=$(api GET '/v1/conntrack?name=nosuch')
check "api: unknown instance is a 404 ($code)" [ "$code" = 404 ]
code=$(api DELETE '/v1/conntrack?name=nosuch')
check "api: flush of an unknown instance is a 404 ($code)" [ "$code" = 404 ]
n_before=$(rt -j conntrack list | jq length)
code=$(api DELETE '/v1/conntrack?name=ct')
check "api: DELETE flushes ($code, $(cat "$TMP/body"))" jqe ".deleted == $n_before" "$TMP/body"
check "api: table empty" [ "$(rt -j conntrack list | jq length)" -eq 0 ]
cping -c 1 10.203.0.1

# ---- flush, and the table keeps working --------------------------------------------

out=$(rt conntrack flush)
check "flush: $out" grep -qE '^[1-9][0-9]* entries deleted$' <<<"$out"
check "flush: table empty" [ "$(rt -j conntrack list | jq length)" -eq 0 ]
check "ping after flush" cping -c 1 10.203.0.1
check "new entry after flush" [ "$(rt -j conntrack list -p icmp | jq length)" -eq 1 ]

# ---- detach, delete --------------------------------------------------------------

check "detach from $RC" rt conntrack detach "$RC"
check "detach from $RS" rt conntrack detach "$RS"
chain=$(rt -j chain show "$RC" | jq -r '.[] | select(.hook=="ingress") | .instances | join(" ")')
check "the firewall stays ($chain)" [ "$chain" = "fw-$RC" ]
bad "detach twice" "not in the chain" rt conntrack detach "$RC"
check "delete" rt conntrack delete ct
check "gone" [ "$(rt -j nf list | jq '[.[] | select(.type=="conntrack")] | length')" -eq 0 ]

sl_exit
