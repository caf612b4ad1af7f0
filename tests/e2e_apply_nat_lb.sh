#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Declarative configuration of NAT rules and load balancers, end to end:
# sluice apply / diff / export in namespaces this test creates, with real
# traffic through the gateway.
#
#   client 10.212.1.2 --- c1 [gateway] g2 --- server 10.212.2.2
#                        10.212.1.1  10.212.2.1    HTTP s1 :8080, s2 :8081
#
# The server has no route back to the client's network: a ping or an HTTP
# request only gets its answer through the masquerade rule the document
# gives. Then the server gets that route and the document describes a load
# balancer instead: VIP 10.212.9.1:80 -> the server's two ports (NAT).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

PY=/usr/bin/python3 # not a pyenv shim: $! must be the python process
SLUICED=${SLUICED:-$PWD/build/sluiced}
HTTP=$PWD/nf/lb/tests/lb_http.py
C=$(sl_name apnC)
G=$(sl_name apnG)
S=$(sl_name apnS)
DC=$(sl_name apc)
G1=$(sl_name apg1)
G2=$(sl_name apg2)
DS=$(sl_name aps)
TMP=$(mktemp -d /tmp/sluice-apply-nat-lb.XXXXXX)
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
sl_routed "$C" "$DC" "$G" "$G1" "$G2" "$S" "$DS" 10.212 fd00:212 ||
	{ fail "topology"; exit 1; }
for p in 8080 8081; do
	sl_in "$S" $PY "$HTTP" serve "s$((p - 8079))" "$p" >/dev/null 2>&1 &
	PIDS+=($!)
done

SG() { sl_in "$G" "$SLUICE" "$@"; }
ping_ok() { sl_in "$C" ping -c 1 -W 1 -q 10.212.2.2 >/dev/null 2>&1; }
get() { sl_in "$C" curl -s -m 3 "http://$1/"; }
# The configuration apply manages, counters aside: instances, chains, NAT
# rules, LB services with backends and switches.
config_state() {
	SG -j nf list | $PY -c 'import json,sys; print(sorted((i["name"], i["type"], i["slot"]) for i in json.load(sys.stdin)))'
	SG -j chain show
	SG nat show 2>&1 | grep -v '^    '
	SG lb --name web -L -n 2>&1 | sed 's/  *[0-9]* *up$//; s/  *[0-9]* *down$//'
	SG lb --name web forward 2>&1
}

for _ in $(seq 50); do
	sl_in "$G" curl -s -m 1 http://10.212.2.2:8080/ >/dev/null 2>&1 && sl_in "$G" curl -s -m 1 http://10.212.2.2:8081/ >/dev/null 2>&1 && break
	sleep 0.1
done

# ---- NAT ---------------------------------------------------------------
if ping_ok; then fail "no answer without NAT (the server has no route back)"
else pass "no answer without NAT (the server has no route back)"; fi

cat >"$TMP/nat.yaml" <<EOF
firewalls:
  in:
    rules: [accept proto icmp, accept proto tcp]
nat:
  rules:
    - out4 masquerade --out $G2 --src 10.212.1.0/24
chains:
  - dev: $G1
    hook: tc-ingress
    instances: [in]
EOF
out=$(SG apply -f "$TMP/nat.yaml" 2>&1)
check "apply a masquerade rule from a document" test $? -eq 0 || echo "$out"
check "plan: + nat nat: 1 rule" grep -qx "+ nat nat: 1 rule: out4" <<<"$out" || echo "$out"
check "plan: the chains the rule needs are made" grep -qx "+ chain $G2 egress: nat" <<<"$out"
check "nat show lists the rule" grep -q "^out4  masquerade --out $G2 --src 10.212.1.0/24" <<<"$(SG nat show)"
check "ping answered through the masquerade" ping_ok
check "HTTP answered through the masquerade" test "$(get 10.212.2.2:8080)" = s1
check "the server saw the gateway's address" grep -q "10.212.2.2:8080 as 10.212.2.1:" <<<"$(SG nat mappings)" ||
	SG nat mappings
check "diff after apply: no changes" test "$(SG diff -f "$TMP/nat.yaml")" = "no changes"

SG export >"$TMP/e1.yaml"
check "export describes the nat rules" grep -qx "    - out4 masquerade --out $G2 --src 10.212.1.0/24" "$TMP/e1.yaml"
check "export -> diff: no changes" test "$(SG diff -f "$TMP/e1.yaml")" = "no changes"
SG -j export >"$TMP/e1.json"
check "JSON export -> apply: no changes" test "$(SG apply -f "$TMP/e1.json")" = "no changes"

# A changed rule is one line of the plan; mappings stay across the reload.
sed "s|^    - out4 masquerade.*|    - web dnat --in $G1 --dst 10.212.1.1 --proto tcp --dport 80 --to 10.212.2.2:8081\n&|" \
	"$TMP/nat.yaml" >"$TMP/nat2.yaml"
# A chain the document writes where a rule runs must name nat.
out=$(SG diff -f "$TMP/nat2.yaml" 2>&1)
check "a written chain without nat where a rule runs is refused" \
	grep -qF "nat2.yaml:9: chains[0].instances: nat rule 'web' runs on $G1 tc-ingress: name nat in this chain" <<<"$out" || echo "$out"
sed -i 's/^    instances: \[in\]$/    instances: [in, nat]/' "$TMP/nat2.yaml"
want="~ nat nat: rules reloaded atomically (mappings and counters stay)
    + rule web: dnat --in $G1 --dst 10.212.1.1 --proto tcp --dport 80 --to 10.212.2.2:8081
~ chain $G1 tc-ingress: in nat (was in)
+ chain $G1 egress: nat
3 changes"
check "diff shows the added rule" test "$(SG diff -f "$TMP/nat2.yaml")" = "$want" || SG diff -f "$TMP/nat2.yaml"
SG apply -q -f "$TMP/nat2.yaml"
check "apply the DNAT rule" test $? -eq 0
check "HTTP to the gateway:80 reaches the server's :8081 (DNAT + masquerade)" test "$(get 10.212.1.1:80)" = s2
check "ping still answered" ping_ok

# ---- bad documents: refused, naming the field, nothing changed ----------
before=$(config_state)
bad() { # NAME FILE EXPECTED
	local out
	out=$(SG apply -f "$2" 2>&1)
	check "refused: $1" test $? -eq 1
	check "... naming the field: $3" grep -qF "$3" <<<"$out" || echo "$out"
}
sed 's/^  rules:$/  rule:/' "$TMP/nat2.yaml" >"$TMP/b1.yaml"
bad "unknown nat field" "$TMP/b1.yaml" "b1.yaml:5: nat: unknown key 'rule' (rules)"
sed 's/--to 10.212.2.2:8081/--to 10.212.2.300:8081/' "$TMP/nat2.yaml" >"$TMP/b2.yaml"
bad "bad NAT address" "$TMP/b2.yaml" "b2.yaml:6: nat.rules[0]: nat rule 'web': --to"
cat "$TMP/nat2.yaml" - >"$TMP/b3.yaml" <<EOF
lb:
  web:
    services:
      - proto: tcp
        vip: 10.212.9.1:80
        scheduler: lc
EOF
bad "bad scheduler" "$TMP/b3.yaml" "b3.yaml:17: lb.web.services[0].scheduler: scheduler 'lc' is not supported (mh, rr, wrr)"
sed 's/scheduler: lc/schedular: rr/' "$TMP/b3.yaml" >"$TMP/b4.yaml"
bad "unknown lb field" "$TMP/b4.yaml" "b4.yaml:17: lb.web.services[0]: unknown key 'schedular'"
sed 's/scheduler: lc/backends: [{address: 10.212.2.2.2, method: nat}]/' "$TMP/b3.yaml" >"$TMP/b5.yaml"
bad "bad backend address" "$TMP/b5.yaml" "b5.yaml:17: lb.web.services[0].backends[0].address: bad address '10.212.2.2.2'"
check "state unchanged after the refusals" test "$before" = "$(config_state)"

# ---- all or nothing: the kernel refuses the last step ------------------
# Everything parses and plans; then the load balancer cannot reach its
# IP-in-IP backend (no route): the firewall change and the NAT rule change
# made before it are undone.
cat >"$TMP/fail.yaml" <<EOF
firewalls:
  in:
    default: drop
    rules: [accept proto tcp]
nat:
  rules:
    - out4 masquerade --out $G2 --src 10.212.1.0/24
lb:
  web:
    services:
      - proto: tcp
        vip: 10.212.9.1:80
        backends: [{address: 198.18.7.7, method: ipip}]
chains:
  - dev: $G1
    hook: tc-ingress
    instances: [in, web]
EOF
out=$(SG apply -f "$TMP/fail.yaml" 2>&1)
check "apply that the kernel refuses midway fails" test $? -eq 1
check "... saying nothing was applied" grep -q "^sluice: lb web: .*(nothing applied)$" <<<"$out" || echo "$out"
after=$(config_state)
check "... and nothing changed (firewall, nat rules, no lb)" test "$before" = "$after" ||
	diff <(echo "$before") <(echo "$after")
check "... the DNAT rule still works" test "$(get 10.212.1.1:80)" = s2

# ---- removing the section deletes the NAT --------------------------------
sed '/^nat:$/,/^chains:$/{/^chains:$/!d}; s/\[in, nat\]/[in]/' "$TMP/nat2.yaml" >"$TMP/nonat.yaml"
out=$(SG diff -f "$TMP/nonat.yaml")
check "diff: the nat instance goes" grep -qx -- "- nat nat: not in the document, deleted" <<<"$out" || echo "$out"
check "diff: its chains go" grep -qx -- "- chain $G2 egress: detached (was nat)" <<<"$out" || echo "$out"
SG apply -q -f "$TMP/nonat.yaml"
check "apply without the nat section" test $? -eq 0
check "no nat instance left" test -z "$(SG nf list | grep '^nat ')"
if ping_ok; then fail "no answer once the NAT is gone"; else pass "no answer once the NAT is gone"; fi

# ---- load balancer ---------------------------------------------------------
sl_in "$S" ip route add 10.212.1.0/24 via 10.212.2.1
cat >"$TMP/lb.yaml" <<EOF
lb:
  web:
    services:
      - proto: tcp
        vip: 10.212.9.1:80
        scheduler: rr
        backends:
          - {address: "10.212.2.2:8080", method: nat}
          - {address: "10.212.2.2:8081", method: nat}
chains:
  - dev: $G1
    hook: tc-ingress
    instances: [web]
  - dev: $G2
    hook: tc-ingress
    instances: [web]
EOF
sl_in "$C" ip route add 10.212.9.0/24 via 10.212.1.1
out=$(SG apply -f "$TMP/lb.yaml" 2>&1)
check "apply a load balancer from a document" test $? -eq 0 || echo "$out"
check "plan: + lb web" grep -qx "+ lb web: 1 service, 2 backends, forward off, decap off" <<<"$out" || echo "$out"
check "lb -L lists the service" grep -q "^TCP  10.212.9.1:80 rr" <<<"$(SG lb --name web -L -n)"
names=""
for _ in 1 2 3 4; do names="$names $(get 10.212.9.1:80)"; done
check "requests to the VIP reach both backends ($names)" bash -c "grep -q s1 <<<'$names' && grep -q s2 <<<'$names'"
check "diff after apply: no changes" test "$(SG diff -f "$TMP/lb.yaml")" = "no changes"
SG export >"$TMP/e2.yaml"
check "export -> diff: no changes" test "$(SG diff -f "$TMP/e2.yaml")" = "no changes"
SG -j export >"$TMP/e2.json"
check "JSON export -> apply: no changes" test "$(SG apply -f "$TMP/e2.json")" = "no changes"
check "export is stable" cmp -s "$TMP/e2.yaml" <(SG export)

sed 's/8081", method: nat}/8081", method: nat, weight: 0}/; s/scheduler: rr/scheduler: wrr/' \
	"$TMP/lb.yaml" >"$TMP/lb2.yaml"
sed -i '/^chains:$/i\    forward: true' "$TMP/lb2.yaml"
want="~ lb web: services switched atomically (unchanged backends keep their flows)
    ~ service tcp 10.212.9.1:80: rr, 2 backends -> wrr, 2 backends
    ~ backend tcp 10.212.9.1:80 -> 10.212.2.2:8081: nat, weight 1 -> nat, weight 0
    ~ forward: off -> on
1 change"
check "diff shows the service, backend and switch changes" test "$(SG diff -f "$TMP/lb2.yaml")" = "$want" ||
	SG diff -f "$TMP/lb2.yaml"
check "JSON diff lists the items" bash -c "nsenter --net=/run/netns/$G $SLUICE -j diff -f $TMP/lb2.yaml | $PY -c 'import json,sys; j=json.load(sys.stdin); print(len(j[\"instances\"][0][\"item_changes\"]))' | grep -qx 3"
SG apply -q -f "$TMP/lb2.yaml"
check "apply the change" test $? -eq 0
names=""
for _ in 1 2 3 4; do names="$names $(get 10.212.9.1:80)"; done
check "a drained backend gets no new request ($names)" test "$names" = " s1 s1 s1 s1"
check "lb forward is on" grep -q "on" <<<"$(SG lb --name web forward)"
check "diff after apply: no changes" test "$(SG diff -f "$TMP/lb2.yaml")" = "no changes"

# ---- the same through the daemon: POST /v1/diff and /v1/apply, GET /v1/export
SOCK=/run/sluice/test-apply-nat-lb-$$.sock
nsenter --net="/run/netns/$G" "$SLUICED" --socket "$SOCK" --foreground \
	--log-level warn 2>>"$TMP/sluiced.log" &
DPID=$!
PIDS+=("$DPID")
for _ in $(seq 100); do
	curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
post() { # ROUTE FILE -> HTTP code, body in $TMP/body
	curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/yaml' \
		--data-binary "@$2" -o "$TMP/body" -w '%{http_code}' "http://sluiced/v1/$1"
}
check "sluiced: POST /v1/diff of the first LB document: 200" test "$(post diff "$TMP/lb.yaml")" = 200
check "sluiced: the plan names the backend change" grep -q "10.212.2.2:8081: nat, weight 0 -> nat, weight 1" "$TMP/body" ||
	cat "$TMP/body"
check "sluiced: POST /v1/apply: 200" test "$(post apply "$TMP/lb.yaml")" = 200
check "sluiced: applied (diff: no changes)" test "$(SG diff -f "$TMP/lb.yaml")" = "no changes"
curl -s --unix-socket "$SOCK" -o "$TMP/e3.yaml" http://sluiced/v1/export
check "sluiced: GET /v1/export -> diff: no changes" test "$(SG diff -f "$TMP/e3.yaml")" = "no changes"
check "sluiced: a bad document: 400 naming the field" test "$(post apply "$TMP/b3.yaml")" = 400
check "... body:17: lb.web.services[0].scheduler" grep -qF "body:17: lb.web.services[0].scheduler" "$TMP/body" ||
	cat "$TMP/body"
kill "$DPID"
wait "$DPID" 2>/dev/null

# ---- removing the section deletes the load balancer -----------------------
out=$(echo 'firewalls: {}' | SG apply -f - 2>&1)
check "apply without the lb section" test $? -eq 0
check "plan: - lb web" grep -qx -- "- lb web: not in the document, deleted" <<<"$out" || echo "$out"
check "no instance left" test "$(SG -j nf list)" = "[]"
check "the VIP answers no more" test -z "$(get 10.212.9.1:80)"

sl_exit
