#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# End-to-end pipeline test: pinned state outlives the CLI, state is per network
# namespace (two namespaces with a device of the same name), chains of two
# instances in order (chain set/show/del), nf del refuses an instance in a
# chain, reset removes the namespace's pin directory, errors (missing
# interface, malformed rule file changing nothing, unknown command/option),
# and the tc-ingress and egress hooks.
#
# Topology: two independent pairs, each "client ns <-> server ns"; both server
# devices have the SAME name ($SAME) in their own namespace.
#   pair 1: C1 (CD1, 10.201.0.1) <-> S1 ($SAME, 10.201.0.2)
#   pair 2: C2 (CD2, 10.202.0.1) <-> S2 ($SAME, 10.202.0.2)
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

C1=$(sl_name plc1)
S1=$(sl_name pls1)
C2=$(sl_name plc2)
S2=$(sl_name pls2)
CD1=$(sl_name pc1)
CD2=$(sl_name pc2)
SAME=$(sl_name eth9x)
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/sluice-e2epl.XXXXXX)
trap 'sl_cleanup; rm -rf "$TMP"' EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }

sl_pair "$C1" "$CD1" "$S1" "$SAME" 10.201.0 fd00:201:: || { fail "setup: pair 1"; exit 1; }
sl_pair "$C2" "$CD2" "$S2" "$SAME" 10.202.0 fd00:202:: || { fail "setup: pair 2"; exit 1; }

s1() { sl_in "$S1" "$SLUICE" "$@"; }
s2() { sl_in "$S2" "$SLUICE" "$@"; }
# ping_n NS [-6] HOST N: prints how many replies came back
ping_n() {
	local ns=$1 v=-4
	shift
	[ "$1" = -6 ] && { v=-6; shift; }
	sl_in "$ns" ping "$v" -n -q -c "$2" -i 0.05 -W 1 "$1" 2>/dev/null |
		awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }'
}
# jq_py EXPR: evaluates EXPR with d = the JSON document on stdin
jq_py() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}
# fails CMD...: CMD fails (its stderr hidden)
fails() { ! "$@" 2>/dev/null; }
# one_line_error NAME CMD...: CMD fails, prints exactly one line on stderr
# starting with "sluice:", nothing on stdout
one_line_error() {
	local name=$1 rc
	shift
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
		grep -q '^sluice: ' "$TMP/err" && [ ! -s "$TMP/out" ]; then
		pass "$name (rc $rc: $(cat "$TMP/err"))"
	else
		fail "$name (rc $rc, stderr: $(cat "$TMP/err"), stdout: $(cat "$TMP/out"))"
	fi
}

# Warm neighbour caches.
ping_n "$C1" 10.201.0.2 1 >/dev/null
ping_n "$C2" 10.202.0.2 1 >/dev/null
ping_n "$C1" -6 fd00:201::2 1 >/dev/null
ping_n "$C2" -6 fd00:202::2 1 >/dev/null

# ---- 1. state survives the CLI, per-namespace isolation ----------------
echo "  [${SECONDS}s] section 1"

cat >"$TMP/s1.fw" <<'EOF'
drop proto icmp icmp-type 8          # IPv4 echo blocked in namespace 1
accept proto icmpv6 icmp-type 128
EOF
cat >"$TMP/s2.fw" <<'EOF'
accept proto icmp icmp-type 8
drop proto icmpv6 icmp-type 128      # IPv6 echo blocked in namespace 2
EOF
check "load in ns1 on $SAME" s1 firewall load "$SAME" "$TMP/s1.fw"
check "load in ns2 on $SAME (same device name)" s2 firewall load "$SAME" "$TMP/s2.fw"
# No sluice process runs from here on: the CLI has exited.
expect "ns1: ipv4 ping dropped with no sluice process" "$(ping_n "$C1" 10.201.0.2 4)" 0
expect "ns1: ipv6 ping accepted" "$(ping_n "$C1" -6 fd00:201::2 3)" 3
expect "ns2: ipv4 ping accepted" "$(ping_n "$C2" 10.202.0.2 3)" 3
expect "ns2: ipv6 ping dropped" "$(ping_n "$C2" -6 fd00:202::2 4)" 0
expect "ns1: a later CLI finds the counters" \
	"$(s1 firewall show "$SAME" -j | jq_py '[r["packets"] for r in d["rules"]]')" "[4, 3]"
expect "ns2: a later CLI finds its own counters" \
	"$(s2 firewall show "$SAME" -j | jq_py '[r["packets"] for r in d["rules"]]')" "[3, 4]"
expect "ns1 and ns2 keep their own rule text" \
	"$(s1 firewall show "$SAME" -j | jq_py 'd["rules"][0]["rule"]')|$(s2 firewall show "$SAME" -j | jq_py 'd["rules"][0]["rule"]')" \
	"drop proto icmp icmp-type 8|accept proto icmp icmp-type 8"

check "ns1: extra instance iso$$ loaded" s1 firewall load "$SAME" "$TMP/s1.fw" --name "iso$$" --hook tc-ingress
st1=$(s1 status -j)
st2=$(s2 status -j)
PIN1=$(jq_py 'd["pin_dir"]' <<<"$st1")
PIN2=$(jq_py 'd["pin_dir"]' <<<"$st2")
check "status: each namespace has its own pin dir ($PIN1, $PIN2)" \
	test -n "$PIN1" -a -n "$PIN2" -a "$PIN1" != "$PIN2" -a -d "$PIN1" -a -d "$PIN2"
expect "status in ns1 lists its instances" \
	"$(jq_py 'sorted(i["name"] for i in d["instances"])' <<<"$st1")" "['fw-$SAME', 'iso$$']"
expect "status in ns2 does not show ns1's instance" \
	"$(jq_py 'sorted(i["name"] for i in d["instances"])' <<<"$st2")" "['fw-$SAME']"
check "status text in ns2 does not mention iso$$" fails grep -q "iso$$" <(s2 status)
expect "chain show in ns2: only its XDP chain" \
	"$(s2 chain show -j | jq_py '[(c["dev"], c["hook"], c["instances"]) for c in d]')" \
	"[('$SAME', 'ingress', ['fw-$SAME'])]"
expect "nf list in a namespace without state is empty" "$(sl_in "$C1" "$SLUICE" nf list -j)" "[]"
expect "status in a namespace without state: not loaded" \
	"$(sl_in "$C1" "$SLUICE" status -j | jq_py 'd["loaded"]')" False
check "nf del iso$$ refused in ns2 (no such instance there)" fails s2 nf del "iso$$"

# ---- 2. reset removes one namespace's state only ------------------------
echo "  [${SECONDS}s] section 2"

check "reset ns1" s1 reset
check "reset: ns1 pin dir $PIN1 is gone" test ! -e "$PIN1"
check "reset: ns2 pin dir $PIN2 is still there" test -d "$PIN2"
expect "reset: ns1 ipv4 ping flows again" "$(ping_n "$C1" 10.201.0.2 3)" 3
expect "reset: ns2 still drops ipv6 ping" "$(ping_n "$C2" -6 fd00:202::2 2)" 0
expect "reset: ns1 status says not loaded" "$(s1 status -j | jq_py 'd["loaded"]')" False
check "reset: ns1 has no XDP program left on $SAME" \
	fails grep -q 'prog/xdp' <(sl_in "$S1" ip -d link show "$SAME")
check "reset on a namespace without state succeeds" s1 reset

# ---- 3. chain of two instances, in order --------------------------------
echo "  [${SECONDS}s] section 3"

cat >"$TMP/fa.fw" <<'EOF'
drop proto icmpv6 icmp-type 128
accept proto icmp icmp-type 8
EOF
FA=fa$$
FB=fb$$
check "load instance $FA" s1 firewall load "$SAME" "$TMP/fa.fw" --name "$FA"
check "load instance $FB" s1 firewall load "$SAME" "$TMP/fa.fw" --name "$FB"
check "chain set $SAME ingress $FA $FB" s1 chain set "$SAME" ingress "$FA" "$FB"
expect "chain show text" "$(s1 chain show "$SAME")" "$SAME ingress: $FA $FB"
expect "chain show -j" "$(s1 chain show -j | jq_py '[(c["dev"], c["hook"], c["instances"]) for c in d]')" \
	"[('$SAME', 'ingress', ['$FA', '$FB'])]"
expect "chain: ipv4 ping passes both instances" "$(ping_n "$C1" 10.201.0.2 3)" 3
expect "chain: ipv6 ping dropped by the first" "$(ping_n "$C1" -6 fd00:201::2 2)" 0
pk() { s1 firewall show --name "$1" -j | jq_py '[r["packets"] for r in d["rules"]]'; }
expect "chain order: $FA counted 2 drops, 3 accepts" "$(pk "$FA")" "[2, 3]"
expect "chain order: $FB saw only what $FA passed" "$(pk "$FB")" "[0, 3]"
check "chain set reversed: $FB $FA" s1 chain set "$SAME" ingress "$FB" "$FA"
expect "chain show -j reversed" "$(s1 chain show "$SAME" -j | jq_py '[c["instances"] for c in d]')" "[['$FB', '$FA']]"
expect "reversed: ipv6 ping dropped" "$(ping_n "$C1" -6 fd00:201::2 3)" 0
expect "reversed: now $FB drops first" "$(pk "$FB"),$(pk "$FA")" "[3, 3],[2, 3]"
check "chain set refuses an unknown instance" fails s1 chain set "$SAME" ingress "$FA" "nosuch$$"
check "chain set refuses an instance twice" fails s1 chain set "$SAME" ingress "$FA" "$FA"
expect "refused chain set leaves the chain" "$(s1 chain show "$SAME" -j | jq_py '[c["instances"] for c in d]')" "[['$FB', '$FA']]"

one_line_error "nf del refuses an instance in a chain" s1 nf del "$FA"
expect "refused nf del keeps the instance" \
	"$(s1 nf list -j | jq_py "sorted(i['name'] for i in d)")" "['$FA', '$FB']"

check "chain del $SAME ingress" s1 chain del "$SAME" ingress
expect "chain del: chain show is empty" "$(s1 chain show -j)" "[]"
expect "chain del: ipv6 ping flows again" "$(ping_n "$C1" -6 fd00:201::2 3)" 3
expect "chain del: instances no longer count" "$(pk "$FB"),$(pk "$FA")" "[3, 3],[2, 3]"
check "chain del: no XDP program left on $SAME" \
	fails grep -q 'prog/xdp' <(sl_in "$S1" ip -d link show "$SAME")
check "nf del $FA after chain del" s1 nf del "$FA"
expect "nf list after nf del" "$(s1 nf list -j | jq_py "[i['name'] for i in d]")" "['$FB']"
one_line_error "nf del of a missing instance" s1 nf del "$FA"

# ---- 4. errors ---------------------------------------------------------
echo "  [${SECONDS}s] section 4"

one_line_error "firewall load on a missing interface" s1 firewall load nosuch$$ "$TMP/fa.fw"
one_line_error "chain set on a missing interface" s1 chain set nosuch$$ ingress "$FB"
one_line_error "firewall load of a missing file" s1 firewall load "$SAME" "$TMP/nonexistent.fw"
one_line_error "chain set with a bad hook" s1 chain set "$SAME" sideways "$FB"

# Malformed rule file: FILE:LINE, and the loaded rules and counters stay.
cat >"$TMP/good.fw" <<'EOF'
drop proto udp dport 9
accept proto icmp icmp-type 8
default accept
EOF
check "load the rule set to keep" s1 firewall load "$SAME" "$TMP/good.fw"
ping_n "$C1" 10.201.0.2 3 >/dev/null
# The rules with their counters (the default's counter may move meanwhile:
# the interfaces' own IPv6 chatter reaches it).
rules_now() { s1 firewall show "$SAME" -j | jq -c '[.rules, .default.action]'; }
before=$(rules_now)
{
	echo "# a comment"
	echo "accept proto icmp icmp-type 8"
	echo "drop proto udpp dport 22"
	echo "drop proto tcp"
} >"$TMP/bad.fw"
one_line_error "malformed rule file refused" s1 firewall load "$SAME" "$TMP/bad.fw"
check "error names FILE:LINE ($TMP/bad.fw:3:)" grep -q "$TMP/bad.fw:3:" "$TMP/err"
after=$(rules_now)
expect "malformed file: rules and counters exactly as before" "$after" "$before"
expect "malformed file: old rules still filter" "$(ping_n "$C1" 10.201.0.2 2)" 2
expect "malformed file: counter goes on from 3" \
	"$(s1 firewall show "$SAME" -j | jq_py 'd["rules"][1]["packets"]')" 5
printf 'accept proto icmp\nbogus words here\n' >"$TMP/bad2.fw"
one_line_error "firewall check on a malformed file" s1 firewall check "$TMP/bad2.fw"
check "check error names FILE:2" grep -q "$TMP/bad2.fw:2:" "$TMP/err"
printf 'default drop\naccept proto icmp\ndefault accept\n' >"$TMP/bad3.fw"
one_line_error "a second default line refused" s1 firewall load "$SAME" "$TMP/bad3.fw"
check "second default error names FILE:3" grep -q "$TMP/bad3.fw:3:" "$TMP/err"
one_line_error "firewall add with a bad rule" s1 firewall add "$SAME" drop proto tcp dport 99999
expect "bad add changes nothing" "$(s1 firewall show "$SAME" -j | jq_py 'len(d["rules"])')" 2

one_line_error "unknown command" s1 frobnicate
one_line_error "unknown firewall command" s1 firewall frobnicate
one_line_error "unknown chain command" s1 chain frobnicate
one_line_error "unknown option" s1 --frobnicate status
"$SLUICE" >/dev/null 2>&1
check "no arguments: non-zero exit" test $? -ne 0
"$SLUICE" -h >"$TMP/out" 2>&1
check "-h: exit 0" test $? -eq 0
check "-h: prints usage" grep -q Usage "$TMP/out"

# ---- 5. tc-ingress and egress hooks -------------------------------------
echo "  [${SECONDS}s] section 5"

check "back to no state: reset" s1 reset
printf 'drop proto icmp icmp-type 8\n' >"$TMP/noping.fw"
check "firewall on tc-ingress" s1 firewall load "$SAME" "$TMP/noping.fw" --name "tci$$" --hook tc-ingress
expect "tc-ingress: chain show" "$(s1 chain show -j | jq_py '[(c["hook"], c["instances"]) for c in d]')" \
	"[('tc-ingress', ['tci$$'])]"
expect "tc-ingress: ping dropped" "$(ping_n "$C1" 10.201.0.2 4)" 0
expect "tc-ingress: rule counted 4" "$(s1 firewall show --name "tci$$" -j | jq_py 'd["rules"][0]["packets"]')" 4
expect "tc-ingress: drop reason firewall-rule=4" \
	"$(s1 nf list -j | jq_py "[i['drop_reasons'].get('firewall-rule') for i in d if i['name']=='tci$$']")" "[4]"
check "tc-ingress: chain del" s1 chain del "$SAME" tc-ingress
expect "tc-ingress: ping flows after chain del" "$(ping_n "$C1" 10.201.0.2 2)" 2

# Egress on the client's device: the client's own packets never leave.
# (ping retries a send refused with ENOBUFS, so its packets are counted by a
# UDP sender instead, which sends each datagram exactly once.)
c1() { sl_in "$C1" "$SLUICE" "$@"; }
# udp_send N PORT: sends N datagrams from the client, ignoring send errors
udp_send() {
	sl_in "$C1" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    try:
        s.sendto(b"x", ("10.201.0.2", int(sys.argv[2])))
    except OSError:
        pass' "$1" "$2"
}
printf 'drop proto icmp icmp-type 8\ndrop proto udp dport 9999\n' >"$TMP/egress.fw"
check "firewall on egress (client side)" c1 firewall load "$CD1" "$TMP/egress.fw" --name "egr$$" --hook egress
expect "egress: outgoing ping dropped" "$(ping_n "$C1" 10.201.0.2 3)" 0
n=$(c1 firewall show --name "egr$$" -j | jq_py 'd["rules"][0]["packets"]')
check "egress: ping rule counted the attempts ($n >= 3)" test "$n" -ge 3
udp_send 7 9999
udp_send 3 9998
expect "egress: udp rule counted exactly 7" "$(c1 firewall show --name "egr$$" -j | jq_py 'd["rules"][1]["packets"]')" 7
expect "egress: drop reasons in nf list" \
	"$(c1 nf list -j | jq_py "[i['drop_reasons']['firewall-rule'] == $n + 7 for i in d]")" "[True]"
expect "egress: ipv6 ping unaffected" "$(ping_n "$C1" -6 fd00:201::2 2)" 2
expect "egress: chain show" "$(c1 chain show "$CD1" -j | jq_py '[(c["hook"], c["instances"]) for c in d]')" \
	"[('egress', ['egr$$'])]"
# The usage says: unload DEV [--name NAME] [--hook HOOK] (takes it off DEV
# and deletes it).
if c1 firewall unload "$CD1" --name "egr$$" --hook egress 2>"$TMP/err"; then
	pass "egress: firewall unload DEV --name NAME --hook egress"
else
	fail "egress: firewall unload DEV --name NAME --hook egress ($(cat "$TMP/err"))"
	c1 chain del "$CD1" egress
	c1 nf del "egr$$"
fi
expect "egress: ping flows after unload" "$(ping_n "$C1" 10.201.0.2 2)" 2
expect "egress: instance gone after unload" "$(c1 nf list -j)" "[]"
check "egress, default name: load" c1 firewall load "$CD1" "$TMP/egress.fw" --hook egress
expect "egress, default name: ping dropped" "$(ping_n "$C1" 10.201.0.2 1)" 0
check "egress, default name: unload DEV --hook egress" c1 firewall unload "$CD1" --hook egress
expect "egress, default name: ping flows after unload" "$(ping_n "$C1" 10.201.0.2 2)" 2
expect "egress, default name: no chain, no instance" "$(c1 chain show -j)$(c1 nf list -j)" "[][]"
check "reset client namespace" c1 reset

# ---- 6. an interface that goes away ------------------------------------
echo "  [${SECONDS}s] section 6"

# Its chain must not outlive it: chain show must not list it, and its
# instance must be deletable (chain del cannot name a missing interface).
GA=$(sl_name gva)
GB=$(sl_name gvb)
sl_in "$S1" ip link add "$GA" type veth peer name "$GB"
sl_in "$S1" ip link set "$GA" up
sl_in "$S1" ip link set "$GB" up
check "gone: firewall on a temporary interface" s1 firewall load "$GA" "$TMP/noping.fw" --name "gone$$"
sl_in "$S1" ip link del "$GA"
expect "gone: chain show no longer lists the deleted interface" \
	"$(s1 chain show -j | jq_py "[c for c in d if 'gone$$' in c['instances']]")" "[]"
if s1 nf del "gone$$" 2>"$TMP/err"; then
	pass "gone: nf del of an instance whose interface was deleted"
else
	fail "gone: nf del of an instance whose interface was deleted ($(cat "$TMP/err"))"
fi

# ---- 7. a chain of 16 instances, a 17th refused; concurrent writers ------
echo "  [${SECONDS}s] section 7"

printf 'accept proto icmp icmp-type 8\n' >"$TMP/acc.fw"
s1 reset
nload=0
for i in $(seq 1 16); do
	s1 firewall load "$SAME" "$TMP/acc.fw" --name "k$i-$$" >/dev/null && nload=$((nload + 1))
done
expect "16 instances chained on one hook" \
	"$nload $(s1 chain show "$SAME" -j | jq_py 'len(d[0]["instances"])')" "16 16"
expect "16-instance chain: ping passes" "$(ping_n "$C1" 10.201.0.2 3)" 3
expect "16-instance chain: every instance counted 3" \
	"$(for i in 1 8 16; do s1 firewall show --name "k$i-$$" -j | jq_py 'd["rules"][0]["packets"]'; done | tr '\n' ' ')" "3 3 3 "
one_line_error "a 17th instance in the chain is refused" s1 firewall load "$SAME" "$TMP/acc.fw" --name "k17-$$"
expect "refused 17th load leaves no instance behind" \
	"$(s1 nf list -j | jq_py "len(d)")" 16
expect "chain unchanged after the refused load" \
	"$(s1 chain show "$SAME" -j | jq_py 'len(d[0]["instances"])')" 16
s1 reset

# Two CLIs editing the same firewall at once: each edit must survive.
printf 'accept proto icmp icmp-type 8\n' >"$TMP/conc.fw"
s1 firewall load "$SAME" "$TMP/conc.fw" >/dev/null
adder() {
	local i
	for i in $(seq "$1" "$2"); do
		sl_in "$S1" "$SLUICE" firewall add "$SAME" drop proto udp dport "$i" ||
			echo "add $i failed" >>"$TMP/conc.err"
	done
}
adder 20001 20006 &
A1=$!
adder 30001 30006 &
A2=$!
wait "$A1" "$A2"
expect "concurrent adds: no add failed" "$(cat "$TMP/conc.err" 2>/dev/null)" ""
expect "concurrent adds: all 12 rules present" \
	"$(s1 firewall show "$SAME" -j | jq_py 'sorted(r["rule"] for r in d["rules"]) == sorted(["accept proto icmp icmp-type 8"] + ["drop proto udp dport %d" % p for p in list(range(20001, 20007)) + list(range(30001, 30007))])')" True
expect "concurrent adds: ping still passes" "$(ping_n "$C1" 10.201.0.2 2)" 2

sl_exit
