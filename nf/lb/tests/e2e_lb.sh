#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End to end: the load balancer in a namespace of its own, between a client
# (another subnet, NAT services) and three backends on a switch (a Linux
# bridge) running real HTTP servers; a second client on the switch reaches
# the DSR services, which backends answer directly.
#
#   cli (10.77.1.2) --- lbl: lc0 10.77.1.1 | lb0 10.77.2.1 --- sw (bridge)
#                                                  |-- b1 .11, b2 .12, b3 .13
#                                                  `-- cl2 .50
# Checks: wrr and rr spreads over 10,000 and 3,000 requests (±5 %), Maglev
# consistency per 5-tuple, long-lived connections across a backend added and
# one removed, IPIP and MAC DSR, an IPv6 service, and ipvsadm syntax errors
# and a restore with a bad line leaving everything unchanged.
# XDP rewrites expect full checksums: the hosts' veths send without
# checksum offload (a real NIC hands XDP complete checksums).
cd "$(dirname "$0")/../../.."
. tests/lib.sh
sl_setup

PY=/usr/bin/python3
HTTP=$PWD/nf/lb/tests/lb_http.py
TMP=$(mktemp -d)
PIDS=()
C=$(sl_name lbc) C2=$(sl_name lbd) L=$(sl_name lbl) SW=$(sl_name lbs)
B=($(sl_name lbx) $(sl_name lby) $(sl_name lbz))

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$TMP"
	sl_cleanup
}
trap cleanup EXIT

lbl() { sl_in "$L" "$SLUICE" "$@"; }

topology() {
	for ns in "$C" "$C2" "$L" "$SW" "${B[@]}"; do sl_netns_add "$ns"; done
	sl_in "$SW" ip link add br0 type bridge
	sl_in "$SW" ip link set br0 up
	ip link add c0 netns "$C" type veth peer name lc0 netns "$L"
	ip link add lb0 netns "$L" type veth peer name sl netns "$SW"
	ip link add e0 netns "$C2" type veth peer name sc2 netns "$SW"
	for i in 0 1 2; do
		ip link add e0 netns "${B[$i]}" type veth peer name "s$i" netns "$SW"
	done
	for p in sl sc2 s0 s1 s2; do
		sl_in "$SW" ip link set "$p" master br0 up
	done
	# The LB sends frames back out of lb0 by XDP redirect (MAC mode):
	# the peer needs NAPI, which GRO turns on.
	sl_in "$SW" ethtool -K sl gro on >/dev/null
	sl_in "$C" ip addr add 10.77.1.2/24 dev c0
	sl_in "$C" ip addr add fd77:1::2/64 dev c0 nodad
	sl_in "$C" ip link set c0 up
	sl_in "$C" ip route add default via 10.77.1.1
	sl_in "$C" ip -6 route add default via fd77:1::1
	sl_in "$L" ip addr add 10.77.1.1/24 dev lc0
	sl_in "$L" ip addr add fd77:1::1/64 dev lc0 nodad
	sl_in "$L" ip addr add 10.77.2.1/24 dev lb0
	sl_in "$L" ip addr add fd77:2::1/64 dev lb0 nodad
	sl_in "$L" ip link set lc0 up
	sl_in "$L" ip link set lb0 up
	sl_in "$L" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	sl_in "$C2" ip addr add 10.77.2.50/24 dev e0
	sl_in "$C2" ip link set e0 up
	sl_in "$C2" ip route add 10.77.9.0/24 via 10.77.2.1
	sl_in "$C" ethtool -K c0 tx off >/dev/null
	sl_in "$C2" ethtool -K e0 tx off >/dev/null
	for i in 0 1 2; do
		local ns=${B[$i]} n=$((11 + i))
		sl_in "$ns" ip addr add 10.77.2.$n/24 dev e0
		sl_in "$ns" ip addr add fd77:2::$n/64 dev e0 nodad
		sl_in "$ns" ip link set e0 up
		sl_in "$ns" ip route add default via 10.77.2.1
		sl_in "$ns" ip -6 route add default via fd77:2::1
		sl_in "$ns" ethtool -K e0 tx off >/dev/null
		# DSR: the VIPs are the backend's own, never answered for by ARP.
		sl_in "$ns" ip addr add 10.77.9.2/32 dev lo
		sl_in "$ns" ip addr add 10.77.9.3/32 dev lo
		sl_in "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.e0.rp_filter=0
		# No ipip device in this kernel: sluice strips the outer header.
		sl_in "$ns" "$SLUICE" lb --name decap decap on >/dev/null
		sl_in "$ns" "$SLUICE" lb --name decap attach e0 >/dev/null
		# nsenter execs the server: $! is the server's own PID.
		nsenter --net="/run/netns/$ns" $PY "$HTTP" serve "b$((i + 1))" 8080 80 \
			>"$TMP/b$i.log" 2>&1 &
		PIDS+=($!)
	done
}

# Waits (<= 10 s) until every backend answers on both ports.
wait_servers() {
	for _ in $(seq 100); do
		local ok=0
		for n in 11 12 13; do
			sl_in "$C2" curl -s -m 1 "http://10.77.2.$n:8080/" >/dev/null && ok=$((ok + 1))
		done
		[ $ok -eq 3 ] && return 0
		sleep 0.1
	done
	return 1
}

# share NAME JSON BACKEND EXPECTED TOTAL: count within ±5 % of EXPECTED.
within5() {
	local got=$1 want=$2
	[ "$got" -ge $((want * 95 / 100)) ] && [ "$got" -le $((want * 105 / 100)) ]
}

count() { echo "$1" | jq -r ".counts.$2 // 0"; }

topology
check "topology and HTTP servers up" wait_servers
check "lb attach lc0 lb0" lbl lb attach lc0 lb0

# ---- wrr and rr over NAT ----
lbl lb -A -t 10.77.9.1:80 -s wrr
for i in 1 2 3; do lbl lb -a -t 10.77.9.1:80 -r 10.77.2.1$i:8080 -m -w $i; done
check "curl through the VIP gets a backend's name" \
	bash -c "nsenter --net=/run/netns/$C curl -s -m 5 http://10.77.9.1/ | grep -q '^b[123]$'"
start=$(date +%s%N)
out=$(sl_in "$C" timeout 120 $PY "$HTTP" many 10.77.9.1 80 10000 8)
end=$(date +%s%N)
echo "wrr: $out in $(((end - start) / 1000000)) ms"
ok=true
for i in 1 2 3; do within5 "$(count "$out" b$i)" $((10000 * i / 6)) || ok=false; done
check "wrr 1:2:3 over 10,000 requests within ±5 % ($out)" $ok
check "wrr: no request failed" [ "$(echo "$out" | jq .errors)" = 0 ]
conns=$(lbl -j lb -L -n | jq '[.services[] | select(.port == 80 and .address == "10.77.9.1") | .stats.conns][0]')
check "wrr: the listing counts the 10,001 connections ($conns)" [ "$conns" = 10001 ]
outp=$(lbl -j lb -L -n | jq '[.services[] | select(.address == "10.77.9.1") | .stats.out_packets][0]')
check "nat: replies counted on the way back ($outp packets)" [ "$outp" -ge 30000 ]

lbl lb -E -t 10.77.9.1:80 -s rr
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many 10.77.9.1 80 3000 8)
ok=true
for i in 1 2 3; do within5 "$(count "$out" b$i)" 1000 || ok=false; done
check "rr over 3,000 requests within ±5 % ($out)" $ok

# ---- Maglev: the same 5-tuple always lands on the same backend ----
lbl lb -E -t 10.77.9.1:80 -s mh
m1=$(sl_in "$C" timeout 60 $PY "$HTTP" fixed 10.77.9.1 80 30000 1500)
lbl lb flush >/dev/null # forget the flows: the table alone decides
m2=$(sl_in "$C" timeout 60 $PY "$HTTP" fixed 10.77.9.1 80 30000 1500)
check "maglev: 1,500 fixed 5-tuples, no error" [ "$(echo "$m1" | jq .errors)$(echo "$m2" | jq .errors)" = 00 ]
check "maglev: each 5-tuple on the same backend after the flows are forgotten" \
	[ "$(echo "$m1" | jq -S .map)" = "$(echo "$m2" | jq -S .map)" ]
spread=$(echo "$m1" | jq -c '[.map[]] | group_by(.) | map({(.[0]): length}) | add')
ok=true
for i in 1 2 3; do
	n=$(echo "$spread" | jq ".b$i // 0")
	[ "$n" -ge $((1500 * i / 6 * 80 / 100)) ] && [ "$n" -le $((1500 * i / 6 * 120 / 100)) ] || ok=false
done
check "maglev: spread by weight 1:2:3 within ±20 % over 1,500 flows ($spread)" $ok

# ---- long-lived connections across backend changes ----
lbl lb -A -t 10.77.9.4:80 -s rr
lbl lb -a -t 10.77.9.4:80 -r 10.77.2.11:8080 -m
lbl lb -a -t 10.77.9.4:80 -r 10.77.2.12:8080 -m
nsenter --net="/run/netns/$C" timeout 90 $PY "$HTTP" long 10.77.9.4 80 8 \
	"$TMP/ready" "$TMP/go" "$TMP/long" >"$TMP/long.log" 2>&1 &
LONG=$!
PIDS+=($LONG)
for _ in $(seq 200); do [ -s "$TMP/ready" ] && break; sleep 0.05; done
check "long-lived: 8 connections up ($(cat "$TMP/ready" 2>/dev/null))" \
	[ "$(jq -c 'map(select(. == "b1" or . == "b2")) | length' "$TMP/ready" 2>/dev/null)" = 8 ]
lbl lb -a -t 10.77.9.4:80 -r 10.77.2.13:8080 -m
lbl lb -d -t 10.77.9.4:80 -r 10.77.2.11:8080
touch "$TMP/go"
wait $LONG
check "long-lived: every connection keeps its backend and works after b3 added and b1 removed ($(cat "$TMP/long" 2>/dev/null))" \
	[ "$(jq -c '.before == .after' "$TMP/long" 2>/dev/null)" = true ]
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many 10.77.9.4 80 300 4)
check "long-lived: new connections go to b2 and b3 only ($out)" \
	[ "$(echo "$out" | jq '(.counts.b1 // 0) == 0 and .counts.b2 > 100 and .counts.b3 > 100 and .errors == 0')" = true ]

# ---- direct server return ----
lbl lb -A -t 10.77.9.2:80 -s mh
lbl lb -a -t 10.77.9.2:80 -r 10.77.2.11 -i
lbl lb -a -t 10.77.9.2:80 -r 10.77.2.12 -i
out=$(sl_in "$C2" timeout 60 $PY "$HTTP" many 10.77.9.2 80 300 4)
check "dsr ipip: 300 requests answered by b1 and b2 directly ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b1 > 50 and .counts.b2 > 50')" = true ]
st=$(lbl -j lb -L -n | jq -c '.services[] | select(.address == "10.77.9.2") | .stats')
check "dsr ipip: packets in, none back through the LB ($st)" \
	[ "$(echo "$st" | jq '.in_packets >= 900 and .out_packets == 0')" = true ]
lbl lb -A -t 10.77.9.3:80 -s rr
lbl lb -a -t 10.77.9.3:80 -r 10.77.2.12 -g
lbl lb -a -t 10.77.9.3:80 -r 10.77.2.13 -g
out=$(sl_in "$C2" timeout 60 $PY "$HTTP" many 10.77.9.3 80 300 4)
check "dsr mac: 300 requests answered by b2 and b3 directly ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b2 > 120 and .counts.b3 > 120')" = true ]

# ---- IPv6 ----
lbl lb -A -t '[fd77:9::1]:80' -s rr
lbl lb -a -t '[fd77:9::1]:80' -r '[fd77:2::11]:8080' -m
lbl lb -a -t '[fd77:9::1]:80' -r '[fd77:2::13]:8080' -m -w 1
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many fd77:9::1 80 300 4)
check "ipv6 nat: 300 requests over b1 and b3 ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b1 > 120 and .counts.b3 > 120')" = true ]

# ---- refusals change nothing ----
before=$(lbl lb save)
bad() { ! lbl lb "$@" 2>"$TMP/err"; }
check "refused: unsupported scheduler wlc ($(bad -A -t 10.77.9.9:80 -s wlc; cat "$TMP/err"))" \
	grep -q "scheduler 'wlc' is not supported" "$TMP/err"
check "refused: unknown option -Z ($(bad -a -t 10.77.9.1:80 -r 10.77.2.11:8080 -Z; cat "$TMP/err"))" \
	grep -q "unknown option '-Z'" "$TMP/err"
check "refused: persistence -p ($(bad -A -t 10.77.9.8:80 -p 300; cat "$TMP/err"))" \
	grep -q "option '-p' is not supported" "$TMP/err"
check "refused: backend of no service ($(bad -a -t 10.77.9.7:80 -r 10.77.2.11; cat "$TMP/err"))" \
	grep -q "no service tcp 10.77.9.7:80" "$TMP/err"
check "refused: a service twice ($(bad -A -t 10.77.9.1:80; cat "$TMP/err"))" \
	grep -q "exists" "$TMP/err"
check "refused: DSR to another port ($(bad -a -t 10.77.9.2:80 -r 10.77.2.13:81 -i; cat "$TMP/err"))" \
	grep -q "keeps the service's port" "$TMP/err"
check "refused: bad address ($(bad -A -t 10.77.9.300:80; cat "$TMP/err"))" grep -q "bad address" "$TMP/err"
check "refusals left the configuration unchanged" [ "$(lbl lb save)" = "$before" ]

cat >"$TMP/bad.rules" <<EOF
# ipvsadm-save -n
-A -t 10.77.8.1:80 -s rr
-a -t 10.77.8.1:80 -r 10.77.2.11:8080 -m -w 1
-a -t 10.77.8.1:80 -r 10.77.2.12:8080 -m -w 1
-a -t 10.77.8.1:80 -r 10.77.2.13:8080 -m -w 70000
-A -t 10.77.8.2:80 -s rr
EOF
check "restore: a file with a bad line is refused" bad restore "$TMP/bad.rules"
check "restore: the error names line 5 ($(cat "$TMP/err"))" grep -q "bad.rules:5: " "$TMP/err"
check "restore: nothing of the file applied" [ "$(lbl lb save)" = "$before" ]
sed -i 's/-w 70000/-w 7/' "$TMP/bad.rules"
check "restore: the fixed file applies" lbl lb restore "$TMP/bad.rules"
check "restore: its services are listed" bash -c "nsenter --net=/run/netns/$L $SLUICE lb save | grep -q -- '-a -t 10.77.8.1:80 -r 10.77.2.13:8080 -m -w 7'"
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many 10.77.8.1 80 90 2)
check "restore: the restored service answers ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b1 > 0 and .counts.b2 > 0 and .counts.b3 > 0')" = true ]
lbl lb save | sed 's/^/  /'
lbl lb -L -n --stats | sed 's/^/  /'
check "detach lb0" lbl lb detach lb0
check "detach lb0 again is refused" bash -c "! nsenter --net=/run/netns/$L $SLUICE lb detach lb0 2>/dev/null"

# ---- the same at TC, with checksum offload on: the skb helpers keep the
# senders' partial checksums right ----
check "detach lc0" lbl lb detach lc0
check "attach --tc lc0 lb0" lbl lb attach --tc lc0 lb0
sl_in "$C" ethtool -K c0 tx on >/dev/null
sl_in "$C2" ethtool -K e0 tx on >/dev/null
for ns in "${B[@]}"; do
	sl_in "$ns" ethtool -K e0 tx on >/dev/null
	sl_in "$ns" "$SLUICE" lb --name decap detach e0 >/dev/null
	sl_in "$ns" "$SLUICE" lb --name decap attach --tc e0 >/dev/null
done
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many 10.77.9.1 80 300 4)
check "tc nat, checksum offload on: 300 requests ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and ([.counts[]] | add) == 300')" = true ]
out=$(sl_in "$C" timeout 60 $PY "$HTTP" many fd77:9::1 80 100 4)
check "tc nat ipv6: 100 requests ($out)" [ "$(echo "$out" | jq '.errors == 0')" = true ]
out=$(sl_in "$C2" timeout 60 $PY "$HTTP" many 10.77.9.2 80 100 4)
check "tc dsr ipip (decap at TC): 100 requests ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b1 > 0 and .counts.b2 > 0')" = true ]
out=$(sl_in "$C2" timeout 60 $PY "$HTTP" many 10.77.9.3 80 100 4)
check "tc dsr mac: 100 requests ($out)" \
	[ "$(echo "$out" | jq '.errors == 0 and .counts.b2 > 0 and .counts.b3 > 0')" = true ]
sl_exit
