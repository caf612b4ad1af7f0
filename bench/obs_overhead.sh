#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# BPF_PROG_RUN ns/packet of the XDP root + a firewall of N rules, with
# capture and tracing off (the cost that observability must not add), and
# optionally with capture on. Prints sbench progrun lines.
# Usage: bench/obs_overhead.sh [RULES] [REPEAT] [RUNS] [on]
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup
N=${1:-10}
REPEAT=${2:-200000}
RUNS=${3:-9}
NS=$(sl_name obsov)
DEV=$(sl_name obo)
PEER=$(sl_name obp)
make -s -f bench/gen/Makefile >/dev/null || exit 1
SB=build/bench/sbench
sl_netns_add "$NS"
sl_in "$NS" ip link add "$DEV" type veth peer name "$PEER"
sl_in "$NS" ip link set "$DEV" up
sl_in "$NS" ip link set "$PEER" up
RULES=$(mktemp /tmp/obsov.XXXXXX)
for i in $(seq 1 $((N - 1))); do
	echo "drop proto udp dport $((20000 + i))"
done >"$RULES"
echo "drop proto udp dport 7777" >>"$RULES"
sl_in "$NS" "$SLUICE" firewall load "$DEV" "$RULES" >/dev/null || exit 1
rm -f "$RULES"
if [ "${4:-}" = on ]; then
	sl_in "$NS" "$SLUICE" capture --drops -w /dev/null --duration 60 >/dev/null 2>&1 &
	CAP=$!
	sleep 1
fi
cookie=$(sl_in "$NS" "$SB" netns-cookie)
for d in 7777 7778; do
	sl_in "$NS" "$SB" progrun -i "$DEV" -P "/sys/fs/bpf/sluice/netns-$cookie/root_xdp" \
		--label "sluice-n$N-dport$d" -n "$REPEAT" -r "$RUNS" -d "$d" | grep sluice
done
[ -n "${CAP:-}" ] && kill "$CAP" && wait "$CAP"
exit 0
