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

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; SL_FAILS=$((SL_FAILS + 1)); }
# check NAME CMD...: PASS when CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name"; fi
}
sl_exit() { [ "$SL_FAILS" -eq 0 ]; exit $?; }
