# SPDX-License-Identifier: GPL-2.0
# Shared helpers for shell tests: namespaces with unique names, cleanup by
# name, and PASS/FAIL reporting. Source it; call sl_setup first.
set -u

SLUICE=${SLUICE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/sluice}
SL_ID=${SL_ID:-$$}
SL_NETNS=()
SL_FAILS=0

# Unique name for this run: sl_name base -> base<id>, short enough for ifnames.
sl_name() { printf '%s%s' "$1" "$SL_ID" | cut -c1-15; }

sl_netns_add() {
	ip netns add "$1" && SL_NETNS+=("$1")
	nsenter --net="/run/netns/$1" ip link set lo up
}

# Runs a command inside a namespace without hiding bpffs (unlike ip netns exec).
sl_in() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

sl_cleanup() {
	local ns
	for ns in "${SL_NETNS[@]}"; do
		# State is per namespace: remove it before the namespace goes.
		nsenter --net="/run/netns/$ns" "$SLUICE" reset >/dev/null 2>&1
		ip netns del "$ns" 2>/dev/null
	done
	SL_NETNS=()
}

sl_setup() { trap sl_cleanup EXIT; }

# Two namespaces joined by a veth pair, with IPv4 and IPv6 addresses:
# sl_pair NS_A DEV_A NS_B DEV_B   (A gets .1 / ::1, B gets .2 / ::2)
sl_pair() {
	local a=$1 da=$2 b=$3 db=$4 net=${5:-10.201.0} net6=${6:-fd00:201::}
	sl_netns_add "$a"
	sl_netns_add "$b"
	ip link add "$da" netns "$a" type veth peer name "$db" netns "$b"
	sl_in "$a" ip addr add "$net.1/24" dev "$da"
	sl_in "$b" ip addr add "$net.2/24" dev "$db"
	sl_in "$a" ip addr add "${net6}1/64" dev "$da" nodad
	sl_in "$b" ip addr add "${net6}2/64" dev "$db" nodad
	sl_in "$a" ip link set "$da" up
	sl_in "$b" ip link set "$db" up
}

# Client, gateway and server namespaces on two veth links, for forwarding
# tests: sl_routed CNS C GNS G1 G2 SNS S NET NET6 (NET 10.211 gives
# NET.1.0/24 client side, NET.2.0/24 server side; NET6 fd00:211 likewise;
# the gateway is .1 on both). The client routes through the gateway, which
# forwards; the server's routes are the caller's. The end veths get GRO
# (NAPI for XDP redirects into them) and no transmit checksum offload, so
# frames carry finished checksums as from a real wire.
sl_routed() {
	local cns=$1 c=$2 gns=$3 g1=$4 g2=$5 sns=$6 s=$7 net=$8 net6=$9 x
	sl_netns_add "$cns" && sl_netns_add "$gns" && sl_netns_add "$sns" || return
	ip link add "$c" netns "$cns" type veth peer name "$g1" netns "$gns" || return
	ip link add "$g2" netns "$gns" type veth peer name "$s" netns "$sns" || return
	sl_in "$cns" ip addr add "$net.1.2/24" dev "$c"
	sl_in "$cns" ip addr add "$net6:1::2/64" dev "$c" nodad
	sl_in "$gns" ip addr add "$net.1.1/24" dev "$g1"
	sl_in "$gns" ip addr add "$net6:1::1/64" dev "$g1" nodad
	sl_in "$gns" ip addr add "$net.2.1/24" dev "$g2"
	sl_in "$gns" ip addr add "$net6:2::1/64" dev "$g2" nodad
	sl_in "$sns" ip addr add "$net.2.2/24" dev "$s"
	sl_in "$sns" ip addr add "$net6:2::2/64" dev "$s" nodad
	for x in "$cns:$c" "$gns:$g1" "$gns:$g2" "$sns:$s"; do
		sl_in "${x%%:*}" ip link set "${x#*:}" up || return
	done
	sl_in "$cns" ip route add default via "$net.1.1"
	sl_in "$cns" ip -6 route add default via "$net6:1::1"
	sl_in "$gns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	sl_in "$cns" ethtool -K "$c" gro on tx off >/dev/null &&
		sl_in "$sns" ethtool -K "$s" gro on tx off >/dev/null
}

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; SL_FAILS=$((SL_FAILS + 1)); }
# check NAME CMD...: PASS when CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
sl_exit() { [ "$SL_FAILS" -eq 0 ]; exit $?; }
