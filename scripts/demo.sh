#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# sluice demo (make demo): a client and a server in their own network
# namespaces, a firewall on the server's interface, traffic that passes and
# traffic that is dropped, then the counters. Removes everything it made.
# Needs root and a built sluice (make).
set -u
cd "$(dirname "$0")/.." || exit 1
SLUICE=${SLUICE:-$PWD/build/sluice}
ID=$$
CLIENT=sl-client-$ID
SERVER=sl-server-$ID
CDEV=slc$ID
SDEV=sls$ID
TMP=$(mktemp -d /tmp/sluice-demo.XXXXXX)
PIDS=()

cleanup() {
	local p ns
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	for ns in "$SERVER" "$CLIENT"; do
		[ -e "/run/netns/$ns" ] || continue
		nsenter --net="/run/netns/$ns" "$SLUICE" reset >/dev/null 2>&1
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

die() { echo "demo: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run me as root"
[ -x "$SLUICE" ] || die "$SLUICE is missing; run make first"

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
run() { echo "\$ $*"; "$@"; }
in_client() { nsenter --net="/run/netns/$CLIENT" "$@"; }
in_server() { nsenter --net="/run/netns/$SERVER" "$@"; }
# sluice runs inside the server's namespace: its state is per namespace.
sluice() { echo "\$ sluice $*"; in_server "$SLUICE" "$@"; }
# try DESCRIPTION CMD...: runs CMD in the client, says whether it got through
try() {
	local what=$1
	shift
	if in_client "$@" >/dev/null 2>&1; then
		echo "   $what: passed"
	else
		echo "   $what: dropped"
	fi
}

say "Setting up: namespaces $CLIENT and $SERVER joined by a veth pair"
ip netns add "$CLIENT" || die "cannot create namespace $CLIENT"
ip netns add "$SERVER" || die "cannot create namespace $SERVER"
ip link add "$CDEV" netns "$CLIENT" type veth peer name "$SDEV" netns "$SERVER" ||
	die "cannot create the veth pair"
in_client ip link set lo up
in_server ip link set lo up
in_client ip addr add 10.201.0.1/24 dev "$CDEV"
in_client ip addr add 10.201.0.66/24 dev "$CDEV"
in_server ip addr add 10.201.0.2/24 dev "$SDEV"
in_client ip link set "$CDEV" up
in_server ip link set "$SDEV" up
echo "   client $CDEV: 10.201.0.1 (trusted) and 10.201.0.66 (to be blocked)"
# nsenter execs nc, so $! is the listener itself and cleanup can stop it.
echo "   server $SDEV: 10.201.0.2, listening on TCP 8080 (web), 2323 (telnet), 9090"
nsenter --net="/run/netns/$SERVER" nc -lk 10.201.0.2 8080 >/dev/null 2>&1 &
PIDS+=($!)
nsenter --net="/run/netns/$SERVER" nc -lk 10.201.0.2 2323 >/dev/null 2>&1 &
PIDS+=($!)
nsenter --net="/run/netns/$SERVER" nc -lk 10.201.0.2 9090 >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 30); do
	[ "$(in_server ss -ltnH 2>/dev/null | wc -l)" -ge 3 ] && break
	sleep 0.1
done

say "Before any firewall, everything gets through"
try "ping 10.201.0.2                 " ping -c 1 -W 1 10.201.0.2
try "TCP to port 8080                " nc -z -w 2 10.201.0.2 8080
try "TCP to port 2323                " nc -z -w 2 10.201.0.2 2323
try "TCP to port 9090                " nc -z -w 2 10.201.0.2 9090

cat >"$TMP/server.rules" <<'EOF'
# Firewall of the server, first match wins.
drop src 10.201.0.66/32            # a source we do not trust
accept proto icmp icmp-type 8      # ping
accept proto tcp dport 8080        # the web server
drop proto tcp dport 2323          # no telnet
accept proto icmpv6                # IPv6 neighbour discovery
default drop                       # everything else
EOF
say "Loading a firewall on the server's interface (XDP)"
cat "$TMP/server.rules"
sluice firewall load "$SDEV" "$TMP/server.rules" || die "firewall load failed"
echo
echo "   The sluice command has exited; the rules stay in the kernel, pinned:"
sluice chain show

say "Traffic that passes"
try "ping 10.201.0.2 (3 packets)     " ping -c 3 -i 0.2 -W 1 10.201.0.2
try "TCP to port 8080                " nc -z -w 2 10.201.0.2 8080

say "Traffic that is dropped"
try "TCP to port 2323                " nc -z -w 2 10.201.0.2 2323
try "ping from 10.201.0.66           " ping -c 2 -i 0.2 -W 1 -I 10.201.0.66 10.201.0.2
try "TCP to port 9090 (no rule)      " nc -z -w 2 10.201.0.2 9090

say "Per-rule counters (packets, bytes)"
sluice firewall show "$SDEV"

say "Instances with their drop reasons"
echo "   firewall-rule: a drop rule matched; firewall-policy: the default policy"
sluice nf list

say "Cleaning up: removing the firewall, the namespaces and the listeners"
sluice firewall unload "$SDEV"
try "TCP to port 2323 after unload   " nc -z -w 2 10.201.0.2 2323
echo
echo "Done."
exit 0
