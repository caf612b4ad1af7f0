#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end test of data-plane events: a firewall drops pings, and
# `sluice events` reports each sampled drop as one JSON line naming the
# instance, the reason, the interface and the addresses; sampling N reports
# about one drop in N; off reports none; one reader at a time; a reader's
# --sample is undone when it ends (count, timeout or SIGTERM).
#
# Topology: client ns (CDEV, 10.204.0.1) <-veth-> server ns (SDEV,
# 10.204.0.2); the firewall sits on SDEV (XDP ingress).
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name evc)
SNS=$(sl_name evs)
ENS=$(sl_name eve) # a namespace without sluice state
CDEV=$(sl_name ec)
SDEV=$(sl_name es)
TMP=$(mktemp -d /tmp/sluice-e2eev.XXXXXX)
PY=/usr/bin/python3
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }

sc() { sl_in "$SNS" "$SLUICE" "$@"; } # sluice in the server namespace

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.204.0 fd00:204:: || { fail "setup: veth pair"; exit 1; }
sl_netns_add "$ENS"

# Pings from the client in the background; every one is dropped by the
# firewall. nsenter itself, not a shell function, goes in the background:
# it execs ping, so $! is ping itself and stopping it stops the pings.
ping_bg() { # COUNT INTERVAL
	nsenter --net="/run/netns/$CNS" ping -q -c "$1" -i "$2" -W 1 10.204.0.2 >/dev/null 2>&1 &
	PIDS+=($!)
	PING_PID=$!
}
ping_wait() { wait "$PING_PID" 2>/dev/null; }
ping_stop() { kill "$PING_PID" 2>/dev/null; wait "$PING_PID" 2>/dev/null; }

sample_now() { sc -j events config | $PY -c 'import json,sys; print(json.load(sys.stdin)["drop_sample"])'; }
emitted_now() { sc -j events config | $PY -c 'import json,sys; print(json.load(sys.stdin)["emitted"])'; }
# Reads what is already in the ring, so later counts start from nothing.
drain() { sc -j events --timeout 1 >/dev/null; }

# Validates JSON lines: every line an object with the given fields.
check_lines() { # FILE WANT_LINES
	$PY - "$1" "$2" "fw-$SDEV" "$SDEV" <<'EOF'
import json, sys
path, want, inst, dev = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(path).read().splitlines()
if len(lines) != want:
    sys.exit(f"{len(lines)} lines, expected {want}")
for l in lines:
    e = json.loads(l)
    expect = {"type": "drop", "instance": inst, "reason": "firewall-rule",
              "dev": dev, "hook": "ingress", "family": "ipv4", "proto": "icmp",
              "src": "10.204.0.1", "dst": "10.204.0.2", "icmp_type": 8}
    for k, v in expect.items():
        if e.get(k) != v:
            sys.exit(f"{k} is {e.get(k)!r}, expected {v!r} in {l}")
    if not (e["len"] >= 98 and e["cap_len"] == min(e["len"], 128) and e["slot"] > 0):
        sys.exit(f"lengths or slot wrong in {l}")
    if not e["time"].endswith("Z") or e["ts_ns"] <= 0:
        sys.exit(f"time wrong in {l}")
EOF
}

# ---- no state, bad options ---------------------------------------------

out=$(sl_in "$ENS" "$SLUICE" events --timeout 1 2>&1)
rc=$?
check "events: no state is an error, not a hang" test "$rc" -eq 1 -a -n "$(echo "$out" | grep 'no sluice state')"
sl_in "$SNS" "$SLUICE" events --count x >/dev/null 2>&1
check "events: a bad number is a usage error" test $? -eq 2

# ---- a firewall dropping pings -----------------------------------------

printf 'drop proto icmp\n' >"$TMP/rules"
sc firewall load "$SDEV" "$TMP/rules" >/dev/null || { fail "firewall load"; exit 1; }
check "events: sampling is off by default" test "$(sample_now)" = 0

# Sampling 1 while reading: five JSON lines, then the reader stops.
drain
ping_bg 100 0.05
t0=$(date +%s)
timeout 20 nsenter --net="/run/netns/$SNS" "$SLUICE" events --json --count 5 --timeout 10 --sample 1 >"$TMP/five" 2>"$TMP/err"
rc=$?
t1=$(date +%s)
ping_stop
why=$(check_lines "$TMP/five" 5 2>&1)
check "events: --count 5 --sample 1 gives 5 JSON drop lines (instance, reason, dev, addresses)${why:+: $why}" test "$rc" -eq 0 -a -z "$why"
check "events: --count ends the reader before --timeout" test $((t1 - t0)) -lt 8
check "events: --sample is undone when the reader ends" test "$(sample_now)" = 0

# Text form: one readable line.
drain
ping_bg 40 0.05
line=$(timeout 20 nsenter --net="/run/netns/$SNS" "$SLUICE" events --count 1 --timeout 10 --sample 1)
ping_stop
check "events: text line names instance, reason and addresses" \
	grep -q "drop $SDEV ingress fw-$SDEV firewall-rule icmp 10.204.0.1 -> 10.204.0.2 type 8" <<<"$line"

# Sampling N, set for the namespace: about one drop in N (the counter is per
# CPU, so with 2 CPUs up to one event less per CPU).
N=5
PINGS=50
sc events config --sample $N >/dev/null
check "events config --sample $N" test "$(sample_now)" = $N
drain
e0=$(emitted_now)
ping_bg $PINGS 0.02
ping_wait
sc -j events --timeout 1 >"$TMP/sampled"
n=$(wc -l <"$TMP/sampled")
e1=$(emitted_now)
lo=$((PINGS / N - $(nproc))) hi=$((PINGS / N + 1))
check "events: sampling 1 in $N: $n events for $PINGS drops (want $lo..$hi)" test "$n" -ge "$lo" -a "$n" -le "$hi"
check "events: the written counter agrees ($((e1 - e0)))" test $((e1 - e0)) -eq "$n"
why=$(check_lines "$TMP/sampled" "$n" 2>&1)
check "events: sampled lines are well formed${why:+: $why}" test -z "$why"

# Off: no events at all.
sc events config --sample 0 >/dev/null
drain
e0=$(emitted_now)
ping_bg 20 0.02
ping_wait
sc -j events --timeout 1 >"$TMP/off"
check "events: sampling off: no event for 20 drops" test ! -s "$TMP/off" -a "$(emitted_now)" = "$e0"
drops=$(sc -j nf list | $PY -c '
import json,sys
d = json.load(sys.stdin)
for i in d:
    if i.get("name", "").startswith("fw-"):
        print(i.get("dropped", 0)); break
' 2>/dev/null)
check "events: the firewall counted its drops (${drops:-?})" test "${drops:-0}" -ge 70

# One reader at a time; SIGTERM ends a reader cleanly and undoes --sample.
nsenter --net="/run/netns/$SNS" "$SLUICE" events --sample 2 >/dev/null 2>&1 &
RD=$!
PIDS+=($RD)
for _ in 1 2 3 4 5 6 7 8 9 10; do
	[ "$(sample_now)" = 2 ] && break
	sleep 0.1
done
check "events: --sample applies while reading" test "$(sample_now)" = 2
out=$(sc events --timeout 1 2>&1)
rc=$?
check "events: a second reader is refused" test "$rc" -eq 1 -a -n "$(echo "$out" | grep 'another process is reading')"
kill -TERM "$RD"
wait "$RD"
rc=$?
check "events: SIGTERM ends the reader with status 0 (got $rc)" test "$rc" -eq 0
check "events: SIGTERM undoes --sample" test "$(sample_now)" = 0

sl_exit
