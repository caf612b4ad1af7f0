#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The CLI with and without sluiced: the same scripted write commands run in
# namespace A through the daemon (SLUICE_SOCKET) and in namespace B directly
# (--no-daemon) print the same, exit the same and leave the same state.
# Also: -v and the daemon log show which mode was used, a daemon serving
# another namespace is not used, and a killed daemon means direct mode.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

SLUICED=${SLUICED:-$(pwd)/build/sluiced}
NSA=$(sl_name cda)
NSB=$(sl_name cdb)
SOCK=/run/sluice/test-cli-$$.sock
TMP=$(mktemp -d /tmp/sluice-e2ecd.XXXXXX)
DPID=  # the daemon this test started

cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -f "$SOCK"
	if [ "$SL_FAILS" -ne 0 ] && [ -s "$TMP/sluiced.log" ]; then
		echo "--- sluiced log (last 30 lines)"
		tail -n 30 "$TMP/sluiced.log"
	fi
	sl_cleanup
	rm -rf "$TMP"
}
trap cleanup EXIT

[ -x "$SLUICED" ] || { fail "build/sluiced missing (run make)"; exit 1; }

# Each namespace gets the same interface names, so messages naming them
# can be compared byte for byte.
for ns in "$NSA" "$NSB"; do
	sl_netns_add "$ns" || { fail "setup: namespace $ns"; exit 1; }
	sl_in "$ns" ip link add x0 type veth peer name x1 &&
		sl_in "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 &&
		sl_in "$ns" ip link set x0 up && sl_in "$ns" ip link set x1 up ||
		{ fail "setup: veth in $ns"; exit 1; }
done

nsenter --net="/run/netns/$NSA" "$SLUICED" --socket "$SOCK" --foreground \
	--log-level info 2>>"$TMP/sluiced.log" &
DPID=$!
for _ in $(seq 100); do
	[ -S "$SOCK" ] && curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
check "sluiced answers on its test socket" kill -0 "$DPID"

cat >"$TMP/rules.fw" <<'R'
# test rules
default accept
drop proto tcp dport 22
accept src 10.9.0.0/16 proto udp dport 53-54
drop dst fd00:9::/64 proto tcp tcp-flags syn/syn,ack
R
cat >"$TMP/bad.fw" <<'R'
drop proto tcp dport 22
drop proto tcp dport 99999
R

# Declarative documents: a first state, a change of it (rules replaced, a
# default changed, a chain changed, a firewall deleted), one refused deep
# inside, one that is not YAML.
cat >"$TMP/good.yaml" <<'Y'
# test document
firewalls:
  web:
    default: drop
    rules:
      - accept proto tcp dport 80-443
      - accept proto icmp
  "keep-out":
    rules: [drop proto udp dport 9999]
chains:
  - dev: x0
    hook: ingress
    instances: [web]
  - dev: x1
    hook: tc-ingress
    instances: [keep-out, web]
Y
cat >"$TMP/change.yaml" <<'Y'
firewalls:
  web:
    default: accept
    rules:
      - accept proto tcp dport 80-443
      - drop proto tcp dport 22
      - accept proto icmp
chains:
  - dev: x0
    hook: ingress
    instances: [web]
  - dev: x1
    hook: tc-ingress
    instances: [web]
Y
cat >"$TMP/bad.yaml" <<'Y'
firewalls:
  web:
    default: drop
    rules:
      - accept proto tcp dport 80-443
      - accept proto icmp
  other:
    rules:
      - drop proto udp dport 53
      - drop proto tcp dport 22
      - accept proto tcp dport 80-x
chains:
  - dev: x0
    hook: ingress
    instances: [web]
Y
cat >"$TMP/badref.yaml" <<'Y'
firewalls:
  web:
    rules: [accept proto icmp]
chains:
  - dev: x0
    hook: ingress
    instances: [web, nosuch]
Y
printf 'firewalls:\n  web:\n    rules: [accept\n  x: {\n' >"$TMP/syntax.yaml"

# run NS MODE-ARGS...: the scripted sequence; every command's exit code,
# standard output and standard error go to $TMP/NS.out.
run() {
	local ns=$1 o="$TMP/$1.out"
	shift
	local -a mode=("$@")
	: >"$o"
	step() {
		echo "## sluice $*" >>"$o"
		sl_in "$ns" env "${mode[@]}" "$SLUICE" "$@" >>"$o" 2>"$TMP/err"
		echo "rc=$?" >>"$o"
		sed 's/^/stderr: /' "$TMP/err" >>"$o"
	}
	# step_in FILE ARGS...: the same with FILE on standard input
	step_in() {
		local in=$1
		shift
		echo "## sluice $* < $(basename "$in")" >>"$o"
		sl_in "$ns" env "${mode[@]}" "$SLUICE" "$@" <"$in" >>"$o" 2>"$TMP/err"
		echo "rc=$?" >>"$o"
		sed 's/^/stderr: /' "$TMP/err" >>"$o"
	}
	step firewall load x0 "$TMP/rules.fw"
	step firewall add x0 drop proto tcp dport 23
	step firewall add x0 --pos 1 accept proto icmp
	step firewall add x0 --pos 99 drop proto udp
	step firewall add x0 drop proto tcp dport 70000
	step firewall del x0 2
	step firewall del x0 50
	step firewall del x0 zero
	step firewall load x0 "$TMP/bad.fw"
	step firewall load nosuch0 "$TMP/rules.fw"
	step firewall load x0 "$TMP/missing.fw"
	step firewall add --name nofw drop proto udp
	step firewall add x1 drop proto udp dport 53
	step firewall load x0 "$TMP/rules.fw" --name extra --hook tc-ingress
	step chain set x0 tc-ingress extra fw-x1
	step chain set x0 ingress nosuch
	step chain set x0 ingress fw-x0 fw-x0
	step chain set nosuch0 ingress fw-x0
	step chain set x0 bogus fw-x0
	step firewall flush x0
	step nf del extra
	step chain del x0 tc-ingress
	step nf del extra
	step nf del extra
	step firewall unload x1
	step firewall unload x0 --name nosuch
	step firewall add x0 --pos 2 drop proto udp dport 7
	step -j firewall show x0
	step -j chain show
	step -j nf list
	step firewall load x1 "$TMP/rules.fw"
	step -j firewall show x1
	step chain show x0   # (the whole list's order follows ifindex hashes)
	step chain show x1
	# apply: plans, refusals (file and line), no-op, dry run, exit codes
	step apply -f "$TMP/good.yaml" --dry-run
	step -j apply -f "$TMP/good.yaml" --dry-run
	step apply -f "$TMP/good.yaml"
	step apply -f "$TMP/good.yaml"
	step -j apply -f "$TMP/good.yaml"
	step apply -f "$TMP/good.yaml" --exit-code
	step -j chain show x0   # (one at a time: see below)
	step -j chain show x1
	step -j firewall show --name web
	step apply -f "$TMP/bad.yaml"
	step -j apply -f "$TMP/bad.yaml" --dry-run
	step apply -f "$TMP/badref.yaml"
	step apply -f "$TMP/syntax.yaml"
	step apply -f "$TMP/missing.yaml"
	step apply -f /dev/null
	step apply
	step apply -f "$TMP/change.yaml" --dry-run --exit-code
	step -j apply -f "$TMP/change.yaml" --dry-run
	step apply -f "$TMP/change.yaml" -q
	step -j firewall show --name web
	step -j nf list
	step apply -f "$TMP/good.yaml"
	step -j apply -f "$TMP/change.yaml"
	step_in "$TMP/bad.yaml" apply -f -
	step_in "$TMP/good.yaml" apply -f - --dry-run
	step -j chain show x1
	step reset
	step -j nf list
	step -j chain show
}

run "$NSA" SLUICE_SOCKET="$SOCK"
run "$NSB" SLUICE_SOCKET="$SOCK" SLUICE_NO_DAEMON=1
# Packet counters depend on stray traffic, not on the mode: left out.
for ns in "$NSA" "$NSB"; do
	sed -Ei 's/"(packets|bytes|passed|dropped|default_packets|default_bytes)":[0-9]+/"\1":N/g' "$TMP/$ns.out"
done
[ -n "${SL_SHOW:-}" ] && cat "$TMP/$NSA.out"

# The daemon did the writes in A: its log names every write route.
for r in "PUT /v1/firewalls/fw-x0" "POST /v1/firewalls/fw-x0/rules" \
	"DELETE /v1/firewalls/fw-x0/rules/2" "DELETE /v1/firewalls/fw-x0/rules " \
	"PUT /v1/chains/x0/tc-ingress" "DELETE /v1/instances/extra" \
	"DELETE /v1/firewalls/fw-x1" "POST /v1/reset" "POST /v1/apply 200" \
	"POST /v1/apply 400 .*body:11: firewalls.other.rules"; do
	grep -q "$r" "$TMP/sluiced.log" || { fail "daemon log has no '$r'"; continue; }
done
grep -q "PUT /v1/firewalls/fw-x0" "$TMP/sluiced.log" && pass "the daemon log shows A's writes"

if diff -u "$TMP/$NSA.out" "$TMP/$NSB.out" >"$TMP/diff"; then
	pass "daemon and direct mode: same output, exit codes and state ($(grep -c '^## ' "$TMP/$NSA.out") commands)"
else
	fail "daemon and direct mode differ:"
	cat "$TMP/diff"
fi
# The sequence did work: a few expected lines.
grep -q '^fw-x0: 3 rules loaded on x0 ingress$' "$TMP/$NSA.out" &&
	grep -q 'bad.fw:2:' "$TMP/$NSA.out" &&
	grep -q "no interface 'nosuch0' in this network namespace" "$TMP/$NSA.out" &&
	pass "the sequence loads, and refuses the bad file and the missing interface" ||
	{ fail "unexpected sequence output:"; cat "$TMP/$NSA.out"; }
grep -q '^+ firewall web: default drop, 2 rules$' "$TMP/$NSA.out" &&
	grep -q '^applied$' "$TMP/$NSA.out" && grep -q '^no changes$' "$TMP/$NSA.out" &&
	grep -q "^stderr: sluice: $TMP/bad.yaml:11: firewalls.other.rules\[2\]: " "$TMP/$NSA.out" &&
	grep -q '^stderr: sluice: <stdin>:11: firewalls.other.rules\[2\]: ' "$TMP/$NSA.out" &&
	grep -q '^    + rule 2: drop proto tcp dport 22$' "$TMP/$NSA.out" &&
	grep -q '"rule_changes": \[{"op": "add", "index": 2' "$TMP/$NSA.out" &&
	pass "apply: plans, applied, no-op, and the bad document's file, line and field" ||
	{ fail "unexpected apply output:"; grep -A8 '## sluice.*apply' "$TMP/$NSA.out"; }

# -v names the mode.
sl_in "$NSA" env SLUICE_SOCKET="$SOCK" "$SLUICE" -v apply -f "$TMP/good.yaml" --dry-run \
	>/dev/null 2>"$TMP/v"
check "-v apply in A: daemon mode, POST /v1/apply" \
	grep -q "sluiced: POST /v1/apply?dry_run=1" "$TMP/v"
sl_in "$NSA" env SLUICE_SOCKET="$SOCK" "$SLUICE" -v firewall load x0 "$TMP/rules.fw" \
	>/dev/null 2>"$TMP/v"
check "-v in A: daemon mode" grep -q "mode: daemon (sluiced at $SOCK)" "$TMP/v"
sl_in "$NSA" "$SLUICE" -v --socket "$SOCK" --no-daemon firewall flush x0 2>"$TMP/v"
check "--no-daemon: direct mode" grep -q "mode: direct .*--no-daemon" "$TMP/v"
# The daemon serves A only: from B, its socket is not used.
n=$(grep -c . "$TMP/sluiced.log")
sl_in "$NSB" env SLUICE_SOCKET="$SOCK" "$SLUICE" -v firewall load x0 "$TMP/rules.fw" \
	>/dev/null 2>"$TMP/v"
check "B with A's daemon socket: direct mode (another namespace)" \
	grep -q "mode: direct .*another network namespace" "$TMP/v"
sl_in "$NSB" "$SLUICE" -j firewall show x0 | grep -q '"rule"' &&
	[ "$(grep -c 'PUT /v1/firewalls' <(tail -n +$((n + 1)) "$TMP/sluiced.log"))" -eq 0 ] &&
	pass "B's load went to B, not through A's daemon" || fail "B's load went through A's daemon"

# Killed daemon (the socket stays, refusing): direct mode, same result.
kill -9 "$DPID" && wait "$DPID" 2>/dev/null
DPID=
sl_in "$NSA" env SLUICE_SOCKET="$SOCK" "$SLUICE" -v firewall add x0 drop proto udp dport 9 \
	2>"$TMP/v"
rc=$?
[ "$rc" -eq 0 ] && grep -q "mode: direct (sluiced at $SOCK: Connection refused)" "$TMP/v" &&
	pass "killed daemon: the CLI falls back to direct mode" ||
	{ fail "killed daemon: rc=$rc"; cat "$TMP/v"; }
sl_in "$NSA" "$SLUICE" firewall show x0 | grep -q 'drop proto udp dport 9' &&
	pass "the direct write after the kill is in place" || fail "the direct write after the kill is missing"
rm -f "$SOCK"
sl_in "$NSA" env SLUICE_SOCKET="$SOCK" "$SLUICE" -v firewall del x0 1 2>"$TMP/v"
check "no socket: direct mode" grep -q "mode: direct (sluiced at $SOCK: no socket)" "$TMP/v"
sl_exit
