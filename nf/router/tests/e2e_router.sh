#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The forwarding fast path end to end: client ns <-> router ns <-> server ns,
# `sluice router attach` on both router interfaces (XDP ingress). Checks
# that traffic forwarded by the router NF skips the kernel's forwarding
# (the router namespace's IpForwDatagrams does not move while its counter
# does), that the TTL/hop limit is lowered as the kernel would, that TCP
# data arrives intact, and that what the fast path must not handle reaches
# the kernel, which answers as always: packets for the router itself, TTL
# expiry (ICMP time exceeded), unresolved neighbours, a blackhole route
# added on the fly; a firewall before the router on the chain still drops;
# bad requests change nothing.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name rtc)
RNS=$(sl_name rtr)
SNS=$(sl_name rts)
C=$(sl_name rc) R1=$(sl_name r1) R2=$(sl_name r2) S=$(sl_name rs)
TMP=$(mktemp -d /tmp/sluice-e2ert.XXXXXX)
SRV_PID=
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
command -v ethtool >/dev/null || { fail "ethtool missing"; exit 1; }

sl_routed "$CNS" "$C" "$RNS" "$R1" "$R2" "$SNS" "$S" 10.210 fd00:210 ||
	{ fail "setup: routed topology"; exit 1; }
sl_in "$SNS" ip route add default via 10.210.2.1
sl_in "$SNS" ip -6 route add default via fd00:210:2::1

fwd_count() { sl_in "$RNS" awk '/^Ip:/ && $2 ~ /^[0-9]/ { print $7 }' /proc/net/snmp; }
rstat() { sl_in "$RNS" "$SLUICE" -j router show router | jq -r ".$1"; }

# Baseline through the kernel, which also resolves the neighbours.
check "kernel forwarding works before (ping)" sl_in "$CNS" ping -c 2 -i 0.2 -W 2 10.210.2.2
check "kernel forwarding works before (ping6)" sl_in "$CNS" ping -6 -c 2 -i 0.2 -W 2 fd00:210:2::2

check "router attach $R1" sl_in "$RNS" "$SLUICE" router attach "$R1"
check "router attach $R2" sl_in "$RNS" "$SLUICE" router attach "$R2"
check "one router instance on both chains" sh -c \
	"nsenter --net=/run/netns/$RNS $SLUICE -j chain show | jq -e '[.[] | select(.instances == [\"router\"])] | length == 2' >/dev/null"

f0=$(fwd_count)
out=$(sl_in "$CNS" ping -c 5 -i 0.2 -W 2 10.210.2.2 2>&1)
check "ping through the fast path" grep -q " 0% packet loss" <<<"$out"
check "TTL lowered once on the way back (ttl=63)" grep -q "ttl=63" <<<"$out"
out=$(sl_in "$CNS" ping -6 -c 5 -i 0.2 -W 2 fd00:210:2::2 2>&1)
check "ping6 through the fast path" grep -q " 0% packet loss" <<<"$out"
check "hop limit lowered once (ttl=63)" grep -q "ttl=63" <<<"$out"

# TCP with data: 2 MB, checked by digest on the server side.
head -c 2000000 /dev/urandom >"$TMP/data"
sl_in "$SNS" timeout 20 /usr/bin/python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.210.2.2", 8080)); s.listen(1); c, _ = s.accept(); h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
open(sys.argv[1], "w").write(h.hexdigest())' "$TMP/got" &
SRV_PID=$!
sleep 0.5
sl_in "$CNS" timeout 20 /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("10.210.2.2", 8080), timeout=10)
s.sendall(open(sys.argv[1], "rb").read()); s.close()' "$TMP/data"
wait "$SRV_PID"; SRV_PID=
check "TCP: 2 MB arrive intact through the fast path" \
	test "$(cat "$TMP/got" 2>/dev/null)" = "$(sha256sum <"$TMP/data" | cut -d' ' -f1)"
f1=$(fwd_count)
check "the kernel forwarded none of it (IpForwDatagrams $f0 -> $f1)" test "$f1" = "$f0"
check "the router NF counted it (forwarded $(rstat forwarded))" test "$(rstat forwarded)" -gt 1000

l0=$(rstat local)
check "the router's own address still answers (local)" sl_in "$CNS" ping -c 2 -i 0.2 -W 2 10.210.1.1
check "... counted as left to the kernel" test "$(rstat local)" -gt "$l0"

out=$(sl_in "$CNS" ping -c 1 -t 1 -W 2 10.210.2.2 2>&1)
check "TTL 1: the kernel answers time exceeded" grep -qi "time to live exceeded" <<<"$out"
check "... counted as ttl_expired" test "$(rstat ttl_expired)" -ge 1

sl_in "$RNS" ip neigh flush dev "$R2"
check "unresolved neighbour: the kernel resolves, traffic flows" \
	sl_in "$CNS" ping -c 3 -i 0.2 -W 2 10.210.2.2
check "... counted as no_neigh" test "$(rstat no_neigh)" -ge 1

sl_in "$RNS" ip route add blackhole 10.210.2.2/32
check "a blackhole route added: no traffic" \
	sh -c "! nsenter --net=/run/netns/$CNS ping -c 2 -i 0.2 -W 1 10.210.2.2 >/dev/null"
check "... counted as unroutable" test "$(rstat unroutable)" -ge 1
sl_in "$RNS" ip route del blackhole 10.210.2.2/32
check "route removed: traffic again" sl_in "$CNS" ping -c 2 -i 0.2 -W 2 10.210.2.2

# A firewall before the router: its drops hold.
printf 'drop proto icmp\ndefault accept\n' >"$TMP/fw"
sl_in "$RNS" "$SLUICE" firewall load "$R1" "$TMP/fw" --name rtfw >/dev/null
sl_in "$RNS" "$SLUICE" chain set "$R1" ingress rtfw router >/dev/null
check "firewall before the router drops ICMP" \
	sh -c "! nsenter --net=/run/netns/$CNS ping -c 2 -i 0.2 -W 1 10.210.2.2 >/dev/null"
check "... and the router forwards the rest (TCP connect)" \
	sl_in "$CNS" timeout 5 /usr/bin/python3 -c '
import socket, sys
try:
    socket.create_connection(("10.210.2.2", 9), timeout=3)
except ConnectionRefusedError:
    sys.exit(0)  # the server answered with a RST: the path works
sys.exit(1)'

before=$(sl_in "$RNS" "$SLUICE" -j chain show)
check "refused: attach to a missing interface" \
	sh -c "! nsenter --net=/run/netns/$RNS $SLUICE router attach nosuchdev0 2>/dev/null"
check "refused: hook egress" \
	sh -c "! nsenter --net=/run/netns/$RNS $SLUICE router attach $R1 --hook egress 2>/dev/null"
check "refused: a name taken by another NF type" \
	sh -c "! nsenter --net=/run/netns/$RNS $SLUICE router attach $R2 --name rtfw 2>/dev/null"
check "refused: a bad instance name, with one clean message" \
	sh -c "! nsenter --net=/run/netns/$RNS $SLUICE router attach $R2 --name bad.name 2>$TMP/err && grep -q \"instance name 'bad.name'\" $TMP/err && ! grep -q 'left behind' $TMP/err"
check "refused requests changed no chain" \
	test "$(sl_in "$RNS" "$SLUICE" -j chain show)" = "$before"

sl_exit
