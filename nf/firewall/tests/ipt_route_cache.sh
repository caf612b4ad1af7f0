#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# sluice iptables: the route decision (INPUT or FORWARD) the XDP program
# caches per CPU follows every change the kernel's route lookup sees. The
# same destination turns local, forwarded, blackholed, policy-routed and
# back while traffic flows; the counters of an INPUT and a FORWARD rule on
# it must show which chain each burst went through.
#
# Topology: client ns (CDEV, 10.204.0.1) <-veth-> server ns (SDEV,
# 10.204.0.2, forwarding, a veth DUM for 10.205.1.0/24) with the
# rules on SDEV; the client routes 10.205.0.0/16 through the server.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name rcc)
SNS=$(sl_name rcs)
CDEV=$(sl_name rc)
SDEV=$(sl_name rs)
DUM=$(sl_name rd)
TMP=$(mktemp -d /tmp/sluice-iptrc.XXXXXX)
DST=10.205.1.9
trap 'sl_cleanup; rm -rf "$TMP"' EXIT

sc() { sl_in "$SNS" "$SLUICE" "$@"; }
srv() { sl_in "$SNS" "$@"; }

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.204.0 fd00:204:: || { fail "iptrc setup"; exit 1; }
sl_in "$CNS" ip route add 10.205.0.0/16 via 10.204.0.2 &&
	srv ip link add "$DUM" type veth peer name "${DUM}p" &&
	srv ip link set "$DUM" up && srv ip link set "${DUM}p" up &&
	srv ip addr add 10.205.1.1/24 dev "$DUM" &&
	srv sysctl -qw net.ipv4.ip_forward=1 || { fail "iptrc setup"; exit 1; }

cat > "$TMP/rules.v4" <<EOF
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -d $DST/32 -p udp -m udp --dport 7000 -j DROP
-A FORWARD -d $DST/32 -p udp -m udp --dport 7000 -j DROP
COMMIT
EOF
check "iptrc import" sc iptables import --dev "$SDEV" "$TMP/rules.v4"

# burst: 5 datagrams from the client to DST:7000, from 5 source ports.
burst() {
	sl_in "$CNS" /usr/bin/python3 -c '
import socket, sys
for i in range(5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (sys.argv[1], 7000))
    s.close()' "$DST"
	sleep 0.2
}

# counts: "INPUT FORWARD" packet counters of the two rules.
counts() {
	sc iptables save -c | awk '
		/-A INPUT -d/ { split($1, a, /[\[:]/); i = a[2] }
		/-A FORWARD -d/ { split($1, a, /[\[:]/); f = a[2] }
		END { print i + 0, f + 0 }'
}

# step NAME "INPUT FORWARD": one burst, then the expected totals.
step() {
	local got

	burst
	got=$(counts)
	if [ "$got" = "$2" ]; then
		pass "iptrc $1 (INPUT FORWARD counters $got)"
	else
		fail "iptrc $1: counters INPUT FORWARD $got, expected $2"
	fi
}

srv ip addr add "$DST/32" dev lo
step "local address: INPUT" "5 0"
step "local address again (cached): INPUT" "10 0"
srv ip addr del "$DST/32" dev lo
step "address removed: FORWARD" "10 5"
srv ip addr add "$DST/32" dev lo
step "address back: INPUT" "15 5"
srv ip addr del "$DST/32" dev lo
srv ip route add blackhole "$DST/32"
step "blackhole route: no chain" "15 5"
srv ip route del blackhole "$DST/32"
step "blackhole removed: FORWARD" "15 10"
# Forwarding off: the lookup answers 'forwarding disabled', which sluice
# takes for INPUT (a host); back on, the packets are forwarded again.
srv sysctl -qw net.ipv4.ip_forward=0
step "forwarding off: INPUT" "20 10"
srv sysctl -qw net.ipv4.ip_forward=1
step "forwarding back on: FORWARD" "20 15"
# Policy routing: the local table looked up after a rule that routes the
# client's packets out DUM.
srv ip addr add "$DST/32" dev lo
step "local again: INPUT" "25 15"
srv ip route add "$DST/32" dev "$DUM" table 100 &&
	srv ip rule add pref 100 from 10.204.0.1 lookup 100 &&
	srv ip rule del pref 0 lookup local &&
	srv ip rule add pref 200 lookup local || fail "iptrc policy rules"
step "policy rule before the local table: FORWARD" "25 20"
step "policy rule, again: FORWARD" "25 25"
srv ip rule del pref 100 from 10.204.0.1 lookup 100
step "policy rule removed: INPUT" "30 25"
sl_exit
