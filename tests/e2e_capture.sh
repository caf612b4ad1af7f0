#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end test of `sluice capture`: a firewall drops UDP to ports 9000
# and 9001 (IPv4 and IPv6) and lets the rest through; real traffic from a
# client namespace; the pcapng files are read back with tshark and tcpdump.
# Checks: --drops with a filter writes exactly the dropped packets that
# match (count, addresses, ports, comment naming instance, reason, hook and
# interface), --all with a filter writes passed packets with their
# verdict, --count stops early, --snaplen cuts, --sample N takes one in N,
# the rate limit bounds a flood of 50,000 packets, a second session is
# refused, bad filters are refused naming the word and create no file.
#
# Topology: client ns (CDEV, 10.232.0.1) <-veth-> server ns (SDEV,
# 10.232.0.2); the firewall sits on SDEV (XDP ingress).
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

CNS=$(sl_name capc)
SNS=$(sl_name caps)
CDEV=$(sl_name cpc)
SDEV=$(sl_name cps)
TMP=$(mktemp -d /tmp/sluice-e2ecap.XXXXXX)
PY=/usr/bin/python3
PIDS=()
FW=fw-$SDEV

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
for tool in tshark tcpdump; do
	command -v $tool >/dev/null || { fail "$tool missing (scripts/deps.sh installs it)"; exit 1; }
done

sl_pair "$CNS" "$CDEV" "$SNS" "$SDEV" 10.232.0 fd00:232:: || { fail "setup: veth pair"; exit 1; }
# Neighbours known up front: no ARP/ND packet races the counts below.
smac=$(sl_in "$SNS" ip -br link show "$SDEV" | awk '{print $3}')
sl_in "$CNS" ip neigh replace 10.232.0.2 lladdr "$smac" dev "$CDEV"
sl_in "$CNS" ip neigh replace fd00:232::2 lladdr "$smac" dev "$CDEV"

# send_udp DST PORT COUNT [SIZE]: COUNT datagrams from the client.
send_udp() {
	sl_in "$CNS" $PY - "$@" <<'EOF'
import socket, sys
dst, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 else 32
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"x" * size, (dst, port))
EOF
}

# capture_bg OUT ARGS...: starts a capture, waits until it runs.
capture_bg() {
	local out=$1
	shift
	nsenter --net="/run/netns/$SNS" "$SLUICE" capture -w "$out" "$@" >"$out.out" 2>"$out.err" &
	CAP_PID=$!
	PIDS+=($CAP_PID)
	for _ in $(seq 100); do
		grep -q "capture started" "$out.err" 2>/dev/null && { CAP_P0=$(fw_packets); return 0; }
		kill -0 "$CAP_PID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}
capture_wait() { wait "$CAP_PID"; }
# Packets the firewall has seen so far.
fw_packets() {
	sl_in "$SNS" "$SLUICE" -j nf list | jq "[.[] | select(.name == \"$FW\") | .packets] | add // 0"
}
# settle N: waits (up to 10 s) until the firewall has seen the N packets
# just sent, so stopping the capture cannot race packets still queued for
# the data plane on a loaded machine (a fixed sleep did).
settle() {
	local want=$((CAP_P0 + $1))
	for _ in $(seq 100); do
		[ "$(fw_packets)" -ge "$want" ] && return 0
		sleep 0.1
	done
	echo "settle: the firewall saw $(fw_packets) packets, waiting for $want" >&2
}
nframes() { tshark -r "$1" -T fields -e frame.number 2>/dev/null | wc -l; }
fields() { local f=$1; shift; tshark -r "$f" -T fields "$@" 2>/dev/null; }

printf 'drop proto udp dport 9000\ndrop proto udp dport 9001\n' >"$TMP/rules"
sl_in "$SNS" "$SLUICE" firewall load "$SDEV" "$TMP/rules" >/dev/null || { fail "firewall load"; exit 1; }

# ---- --drops with a filter: exactly the matching drops ------------------

capture_bg "$TMP/d.pcapng" --drops --duration 20 udp and dst port 9000 and host 10.232.0.1 ||
	fail "capture did not start: $(cat "$TMP/d.pcapng.err")"
send_udp 10.232.0.2 9000 20
send_udp 10.232.0.2 9001 10 # dropped, not matching
send_udp 10.232.0.2 9002 10 # passed
send_udp fd00:232::2 9000 3 # dropped, IPv6: not matching host 10.232.0.1
sl_in "$CNS" ping -q -c 3 -i 0.05 -W 1 10.232.0.2 >/dev/null
settle 46
kill -INT "$CAP_PID"
capture_wait
rc=$?
check "capture --drops: ends cleanly on SIGINT" test "$rc" -eq 0
check "capture --drops filter: exactly the 20 matching drops (tshark)" test "$(nframes "$TMP/d.pcapng")" -eq 20
check "capture --drops: tcpdump reads the file" \
	test "$(tcpdump -r "$TMP/d.pcapng" -n 2>/dev/null | grep -c "10.232.0.1.* > 10.232.0.2.9000: UDP")" -eq 20
want="dropped by $FW (firewall-rule) at ingress on $SDEV"
check "capture --drops: every comment names instance, reason, hook, interface" \
	test "$(fields "$TMP/d.pcapng" -e frame.comment | sort -u)" = "$want"
check "capture --drops: addresses and port" \
	test "$(fields "$TMP/d.pcapng" -e ip.src -e ip.dst -e udp.dstport | sort -u | tr '\t' ' ')" = "10.232.0.1 10.232.0.2 9000"
check "capture --drops: interface block names $SDEV" \
	test "$(fields "$TMP/d.pcapng" -e frame.interface_name | sort -u)" = "$SDEV"
check "capture --drops: whole frames (cap_len = len = 74)" \
	test "$(fields "$TMP/d.pcapng" -e frame.cap_len -e frame.len | sort -u | tr '\t' ' ')" = "74 74"
now=$(date +%s)
ts=$(fields "$TMP/d.pcapng" -e frame.time_epoch | head -1 | cut -d. -f1)
check "capture --drops: wall-clock timestamps (within a minute)" test $((now - ts)) -ge 0 -a $((now - ts)) -lt 60
check "capture --drops: summary counts 20 written" grep -q "^20 packets written" "$TMP/d.pcapng.err"

# Without a filter: every drop, IPv4 and IPv6.
capture_bg "$TMP/a.pcapng" --duration 20 || fail "capture did not start"
send_udp 10.232.0.2 9000 4
send_udp 10.232.0.2 9001 5
send_udp 10.232.0.2 9002 6
send_udp fd00:232::2 9001 3
settle 18
kill -INT "$CAP_PID"
capture_wait
check "capture (default --drops), no filter: 12 drops" test "$(nframes "$TMP/a.pcapng")" -eq 12
check "capture: IPv6 drops with their addresses" \
	test "$(fields "$TMP/a.pcapng" -e ipv6.src -e ipv6.dst -Y ipv6 | sort -u | tr '\t' ' ')" = "fd00:232::1 fd00:232::2"

# IPv6 net filter.
capture_bg "$TMP/n6.pcapng" --duration 20 src net fd00:232::/64 || fail "capture did not start"
send_udp 10.232.0.2 9000 4
send_udp fd00:232::2 9000 3
settle 7
kill -INT "$CAP_PID"
capture_wait
check "capture src net fd00:232::/64: the 3 IPv6 drops" test "$(nframes "$TMP/n6.pcapng")" -eq 3

# ---- --all with a filter: passed packets and their verdict ---------------

capture_bg "$TMP/all.pcapng" --all --dev "$SDEV" --duration 20 dport 9002 or icmp || fail "capture --all did not start"
send_udp 10.232.0.2 9002 7
send_udp 10.232.0.2 9000 5 # dropped: matches neither term
sl_in "$CNS" ping -q -c 4 -i 0.05 -W 1 10.232.0.2 >/dev/null
settle 16
kill -INT "$CAP_PID"
capture_wait
check "capture --all 'dport 9002 or icmp': 7 UDP + 4 echo requests" test "$(nframes "$TMP/all.pcapng")" -eq 11
check "capture --all: 4 ICMP echo requests" test "$(fields "$TMP/all.pcapng" -e icmp.type -Y icmp | grep -c '^8$')" -eq 4
check "capture --all: comments give the verdict" \
	test "$(fields "$TMP/all.pcapng" -e frame.comment | sort -u)" = "passed (end of chain) after $FW at ingress on $SDEV"

capture_bg "$TMP/alld.pcapng" --all --duration 20 dport 9000 || fail "capture --all did not start"
send_udp 10.232.0.2 9000 5
settle 5
kill -INT "$CAP_PID"
capture_wait
check "capture --all: a dropped packet's verdict names the reason" \
	test "$(fields "$TMP/alld.pcapng" -e frame.comment | sort | uniq -c | awk '{$1=$1};1')" = "5 $want"

# ---- --count, --snaplen, --sample ---------------------------------------

capture_bg "$TMP/c.pcapng" --count 5 --duration 20 --snaplen 64 dport 9000 || fail "capture --count did not start"
t0=$(date +%s)
send_udp 10.232.0.2 9000 30 300
timeout 15 tail --pid="$CAP_PID" -f /dev/null
t1=$(date +%s)
capture_wait
check "capture --count 5: stops after 5 packets, before --duration" test "$(nframes "$TMP/c.pcapng")" -eq 5 -a $((t1 - t0)) -lt 10
check "capture --snaplen 64: 64 bytes kept of 342" \
	test "$(fields "$TMP/c.pcapng" -e frame.cap_len -e frame.len | sort -u | tr '\t' ' ')" = "64 342"

capture_bg "$TMP/s.pcapng" --sample 5 --duration 20 -j dport 9000 || fail "capture --sample did not start"
send_udp 10.232.0.2 9000 30
settle 30
kill -INT "$CAP_PID"
capture_wait
n=$(nframes "$TMP/s.pcapng")
# One in 5 per CPU: 30 drops give 6, or 5 when they were split over CPUs.
check "capture --sample 5: 30 drops give 5 or 6 packets (got $n)" test "$n" -ge 5 -a "$n" -le 6
check "capture -j: a JSON summary (30 matched, $n written)" \
	test "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["matched"], d["written"])' "$TMP/s.pcapng.out")" = "30 $n"

# ---- the rate limit bounds a flood ---------------------------------------

RATE=1000
BURST=100
capture_bg "$TMP/r.pcapng" --rate $RATE --burst $BURST --duration 30 dport 9001 || fail "capture --rate did not start"
t0=$(date +%s%N)
timeout 60 bash -c "$(declare -f send_udp sl_in); CNS=$CNS PY=$PY send_udp 10.232.0.2 9001 50000"
t1=$(date +%s%N)
kill -INT "$CAP_PID"
capture_wait
n=$(nframes "$TMP/r.pcapng")
ms=$(((t1 - t0) / 1000000 + 300))
ncpu=$(nproc --all)
bound=$((RATE * ms / 1000 + BURST + ncpu))
check "capture --rate $RATE --burst $BURST: 50,000 drops in ${ms} ms give $n <= $bound packets" \
	test "$n" -gt 0 -a "$n" -le "$bound"
check "capture --rate: the summary counts packets over the limit" \
	grep -qE "\(50000 matched, [1-9][0-9]* over the rate limit" "$TMP/r.pcapng.err"

# ---- one session at a time, bad input -------------------------------------

capture_bg "$TMP/one.pcapng" --duration 20 || fail "capture did not start"
out=$(sl_in "$SNS" "$SLUICE" capture -w "$TMP/two.pcapng" --duration 1 2>&1)
rc=$?
check "capture: a second session is refused while one runs" \
	test "$rc" -eq 1 -a -n "$(grep 'another process is reading the capture' <<<"$out")"
check "capture: the refused session created no file" test ! -e "$TMP/two.pcapng"
# The same -w FILE by mistake: the running capture's file is not truncated.
cp "$TMP/one.pcapng" "$TMP/one.before"
sl_in "$SNS" "$SLUICE" capture -w "$TMP/one.pcapng" --duration 1 >/dev/null 2>&1
check "capture: a refused session leaves the running one's file alone" \
	sh -c "[ -s '$TMP/one.pcapng' ] && cmp -s '$TMP/one.pcapng' '$TMP/one.before'"
kill -INT "$CAP_PID"
capture_wait

bad() { # NAME WANT ARGS...
	local name=$1 want=$2
	shift 2
	out=$(sl_in "$SNS" "$SLUICE" capture -w "$TMP/bad.pcapng" --duration 1 "$@" 2>&1)
	rc=$?
	check "bad filter: $name is refused naming '$want'" \
		test "$rc" -eq 2 -a -n "$(grep -F "'$want'" <<<"$out")" -a ! -e "$TMP/bad.pcapng"
}
bad "an address" 10.1.2 host 10.1.2
bad "a CIDR with host bits" 10.0.0.1/8 net 10.0.0.1/8
bad "a port" 70000 port 70000
bad "a protocol" sctp proto sctp
bad "an unknown word" porty host 10.0.0.1 and porty 80
bad "a missing and" port dst 10.0.0.1 port 80
out=$(sl_in "$SNS" "$SLUICE" capture -w "$TMP/bad.pcapng" host 2>&1)
check "bad filter: a missing address says so" test -n "$(grep 'need an address at the end' <<<"$out")"
out=$(sl_in "$SNS" "$SLUICE" capture udp 2>&1)
check "capture without -w is a usage error" test -n "$(grep -- '-w FILE is required' <<<"$out")"
sl_in "$SNS" "$SLUICE" capture -w "$TMP/bad.pcapng" --snaplen 5000 >/dev/null 2>&1
check "capture --snaplen above 2048 is refused" test $? -eq 2

# ---- after the session: nothing is copied any more ------------------------

capture_bg "$TMP/after.pcapng" --duration 20 || fail "capture did not start"
kill -INT "$CAP_PID"
capture_wait
send_udp 10.232.0.2 9000 10
capture_bg "$TMP/after2.pcapng" --duration 20 || fail "capture did not start"
kill -INT "$CAP_PID"
capture_wait
check "capture: drops after a session ended are not left in the ring for the next" \
	test "$(nframes "$TMP/after2.pcapng")" -eq 0

sl_exit
