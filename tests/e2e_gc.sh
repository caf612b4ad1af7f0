#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# sluice gc: the state of a namespace deleted without `sluice reset` is
# listed by --dry-run (text and JSON) and then removed with its lock files;
# the state of live namespaces stays and keeps working, whether the
# namespace is a bind mount (ip netns) or only a process's; once that
# process exits, its state goes too.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

A=$(sl_name gca)
B=$(sl_name gcb)
D=$(sl_name gcd)
AD=$(sl_name gcad)
BD=$(sl_name gcbd)
TMP=$(mktemp -d /tmp/sluice-gc.XXXXXX)
HOLDER=""
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
sl_pair "$A" "$AD" "$B" "$BD" 10.214.0 fd00:214:: || { fail "setup"; exit 1; }
sl_netns_add "$D" || { fail "setup $D"; exit 1; }

expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}
pin_dir() { "$@" status -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["pin_dir"])'; }
replies() {
	sl_in "$A" ping -n -q -c "$1" -i 0.05 -W 1 10.214.0.2 2>/dev/null |
		awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }'
}
# gc_lists DIR [--dry-run]: whether gc's JSON output names DIR
gc_json() { "$SLUICE" -j gc "$@"; }
listed() { python3 -c 'import json,sys; print(sys.argv[1] in [e["dir"] for e in json.load(sys.stdin)])' "$1"; }

printf 'drop proto icmp icmp-type 8\n' >"$TMP/drop.fw"
sl_in "$A" ping -c1 -W1 10.214.0.2 >/dev/null 2>&1 # neighbours
check "firewall in $B (a mounted namespace)" sl_in "$B" "$SLUICE" firewall load "$BD" "$TMP/drop.fw"
check "firewall on lo in $D" sl_in "$D" "$SLUICE" firewall load lo "$TMP/drop.fw"
unshare -n sleep 120 &
HOLDER=$!
for i in $(seq 50); do
	[ "$(readlink /proc/$HOLDER/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
	sleep 0.1
done
NSP=/proc/$HOLDER/ns/net
check "firewall on lo in a namespace only a process holds" \
	nsenter --net="$NSP" "$SLUICE" firewall load lo "$TMP/drop.fw"
PB=$(pin_dir sl_in "$B" "$SLUICE")
PD=$(pin_dir sl_in "$D" "$SLUICE")
PP=$(pin_dir nsenter --net="$NSP" "$SLUICE")
check "three state folders ($PB $PD $PP)" test -d "$PB" -a -d "$PD" -a -d "$PP"
expect "pings to $B dropped" "$(replies 2)" 0

# D deleted without reset: its folder stays behind.
ip netns del "$D"
SL_NETNS=("$A" "$B")
for i in $(seq 50); do # the kernel tears a namespace down asynchronously
	gc_json --dry-run | listed "$PD" | grep -q True && break
	sleep 0.2
done
expect "gc --dry-run lists $PD" "$(gc_json --dry-run | listed "$PD")" True
check "gc --dry-run text names it" grep -q "would remove $PD " <("$SLUICE" gc --dry-run)
check "gc --dry-run removed nothing" test -d "$PD"
expect "gc --dry-run does not list $B's folder" "$(gc_json --dry-run | listed "$PB")" False
expect "gc --dry-run does not list the process's namespace" "$(gc_json --dry-run | listed "$PP")" False
expect "gc removes $PD" "$(gc_json | listed "$PD")" True
check "its folder is gone" test ! -e "$PD"
check "its lock file is gone" test ! -e "/run/sluice/$(basename "$PD").lock"
check "$B's folder stays" test -d "$PB"
check "the process's namespace's folder stays" test -d "$PP"
expect "pings to $B still dropped" "$(replies 2)" 0
check "$B's state still reads" sl_in "$B" "$SLUICE" status

kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
HOLDER=""
for i in $(seq 50); do
	gc_json --dry-run | listed "$PP" | grep -q True && break
	sleep 0.2
done
expect "once its process is gone, gc removes its folder" "$(gc_json | listed "$PP")" True
check "the process's namespace's folder is gone" test ! -e "$PP"
check "$B's folder still stays" test -d "$PB"
check "gc with an unknown argument is refused" bash -c "! '$SLUICE' gc --all 2>/dev/null"
sl_exit
