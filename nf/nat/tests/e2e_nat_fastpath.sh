#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Masquerade on the XDP fast path end to end: client ns <-> gateway ns <->
# server ns. The gateway runs conntrack, nat and router on the XDP ingress
# of both interfaces (docs/nat.md, "NAT with the fast path"), with one
# masquerade rule on the outside. The server has no route back to the
# client's network: every answer comes back only through the translation.
# Checks: the first packet, whose next hop is not resolved yet, goes the
# kernel's way (TC path) and works; then ping, ping6, 2 MB of TCP (digest)
# and UDP request/answer cross while the gateway's IpForwDatagrams does not
# move; the server sees only the gateway's address; `sluice nat mappings`
# lists the flows; a rule added after `nat attach` keeps nat on the inside
# interface's chain; `nat detach` takes it off.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name nfc)
GNS=$(sl_name nfg)
SNS=$(sl_name nfs)
C=$(sl_name nc) G1=$(sl_name ng1) G2=$(sl_name ng2) S=$(sl_name ns)
TMP=$(mktemp -d /tmp/sluice-e2enfp.XXXXXX)
SRV_PID=
cleanup() {
	[ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
for t in ethtool jq python3; do
	command -v "$t" >/dev/null || { fail "$t missing"; exit 1; }
done

# The server knows only its link: replies reach the client only translated.
sl_routed "$CNS" "$C" "$GNS" "$G1" "$G2" "$SNS" "$S" 10.211 fd00:211 ||
	{ fail "setup: routed topology"; exit 1; }

gw() { sl_in "$GNS" "$SLUICE" "$@"; }
fwd_count() { sl_in "$GNS" awk '/^Ip:/ && $2 ~ /^[0-9]/ { print $7 }' /proc/net/snmp; }
fwd6_count() { sl_in "$GNS" awk '$1 == "Ip6OutForwDatagrams" { print $2 }' /proc/net/snmp6; }
jqok() { jq -e "$@" >/dev/null; } # FILTER FILE: the filter holds
rstat() { gw -j router show router | jq -r ".$1"; }
chain_of() { gw -j chain show | jq -c --arg d "$1" '[.[] | select(.dev == $d and .hook == "ingress")][0].instances'; }

# Placement: nat and router attached before the rule exists; the rule's
# reload must keep nat on the inside interface, which no rule names.
check "conntrack attach $G1" gw conntrack attach "$G1"
check "conntrack attach $G2" gw conntrack attach "$G2"
check "nat attach $G1" gw nat attach "$G1"
check "nat attach $G2" gw nat attach "$G2"
check "router attach $G1" gw router attach "$G1"
check "router attach $G2" gw router attach "$G2"
check "nat add masquerade --out $G2" gw nat add m masquerade --out "$G2"
check "chain of $G1 ingress: ct, nat, router ($(chain_of "$G1"))" \
	test "$(chain_of "$G1")" = '["ct","nat","router"]'
check "chain of $G2 ingress: ct, nat, router ($(chain_of "$G2"))" \
	test "$(chain_of "$G2")" = '["ct","nat","router"]'

# First packets: no neighbour resolved on the gateway yet. The router
# leaves them to the kernel, the TC path masquerades them.
f0=$(fwd_count)
check "first ping, next hop unresolved: works" sl_in "$CNS" ping -q -c 1 -W 3 10.211.2.2
check "first ping6, next hop unresolved: works" sl_in "$CNS" ping -q -6 -c 1 -W 3 fd00:211:2::2
f1=$(fwd_count)
check "... the kernel forwarded them (IpForwDatagrams $f0 -> $f1)" test "$f1" -gt "$f0"
check "... the router counted unresolved next hops ($(rstat no_neigh))" test "$(rstat no_neigh)" -ge 1

# From now on the fast path: nothing through the kernel's forwarding.
f0=$(fwd_count)
g0=$(fwd6_count)
n0=$(rstat forwarded)
out=$(sl_in "$CNS" ping -c 5 -i 0.2 -W 2 10.211.2.2 2>&1)
check "ping through the fast path" grep -q " 0% packet loss" <<<"$out"
check "... TTL lowered once on the way back (ttl=63)" grep -q "ttl=63" <<<"$out"
out=$(sl_in "$CNS" ping -6 -c 5 -i 0.2 -W 2 fd00:211:2::2 2>&1)
check "ping6 through the fast path" grep -q " 0% packet loss" <<<"$out"

# TCP: 2 MB, digest and the peer address seen by the server.
head -c 2000000 /dev/urandom >"$TMP/data"
sl_in "$SNS" timeout 20 python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.211.2.2", 8080)); s.listen(1); c, peer = s.accept(); h = hashlib.sha256()
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b)
open(sys.argv[1], "w").write(h.hexdigest() + " " + peer[0])' "$TMP/got" &
SRV_PID=$!
sleep 0.5
sl_in "$CNS" timeout 20 python3 -c '
import socket, sys
s = socket.create_connection(("10.211.2.2", 8080), timeout=10)
s.sendall(open(sys.argv[1], "rb").read()); s.close()' "$TMP/data"
wait "$SRV_PID"; SRV_PID=
read -r digest peer <"$TMP/got" 2>/dev/null
check "TCP: 2 MB arrive intact" test "$digest" = "$(sha256sum <"$TMP/data" | cut -d' ' -f1)"
check "TCP: the server sees the gateway's address ($peer)" test "$peer" = 10.211.2.1

# UDP: 50 requests answered one by one; the server notes who asked.
sl_in "$SNS" timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.211.2.2", 5353))
peers = set()
for i in range(50):
    b, peer = s.recvfrom(2048); peers.add(peer[0]); s.sendto(b[::-1], peer)
open(sys.argv[1], "w").write(" ".join(sorted(peers)))' "$TMP/udp_peers" &
SRV_PID=$!
sleep 0.5
got=$(sl_in "$CNS" timeout 20 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
ok = 0
for i in range(50):
    m = b"req-%d-" % i + bytes(range(64))
    s.sendto(m, ("10.211.2.2", 5353))
    try:
        b, _ = s.recvfrom(2048)
        ok += b == m[::-1]
    except socket.timeout:
        pass
print(ok)')
wait "$SRV_PID"; SRV_PID=
check "UDP: 50 of 50 answers, intact ($got)" test "$got" = 50
check "UDP: the server sees the gateway's address ($(cat "$TMP/udp_peers" 2>/dev/null))" \
	test "$(cat "$TMP/udp_peers" 2>/dev/null)" = 10.211.2.1

f1=$(fwd_count)
check "the kernel forwarded none of it (IpForwDatagrams $f0 -> $f1)" test "$f1" = "$f0"
g1=$(fwd6_count)
check "... nor of the IPv6 (Ip6OutForwDatagrams $g0 -> $g1)" test -n "$g1" -a "$g1" = "$g0"
n1=$(rstat forwarded)
check "the router forwarded it ($n0 -> $n1)" test "$n1" -gt $((n0 + 1000))

gw -j nat mappings >"$TMP/map.json"
for p in tcp udp icmp; do
	check "nat mappings: the client's $p flow, translated to the gateway" \
		jqok --arg p "$p" 'map(select(.proto == $p and .orig.src == "10.211.1.2" and
			.translated.src == "10.211.2.1")) | length >= 1' "$TMP/map.json"
done
check "nat mappings: the client's icmpv6 flow" \
	jqok 'map(select(.proto == "icmpv6" and .orig.src == "fd00:211:1::2" and
		.translated.src == "fd00:211:2::1")) | length >= 1' "$TMP/map.json"

# Refusals change nothing; detach takes nat off the chain, router stays last.
before=$(gw -j chain show)
check "refused: nat attach to a missing interface" \
	sh -c "! nsenter --net=/run/netns/$GNS $SLUICE nat attach nosuchdev0 2>/dev/null"
check "refused: nat detach from a chain without it" \
	sh -c "! nsenter --net=/run/netns/$GNS $SLUICE nat detach lo 2>/dev/null"
check "refused requests changed no chain" test "$(gw -j chain show)" = "$before"
check "nat detach $G1" gw nat detach "$G1"
check "chain of $G1 ingress after detach: ct, router ($(chain_of "$G1"))" \
	test "$(chain_of "$G1")" = '["ct","router"]'

sl_exit
