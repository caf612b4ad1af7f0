#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Declarative configuration end to end: sluice apply / diff / export in
# namespaces this test creates, with real pings through the firewalls.
set -u
. "$(dirname "$0")/lib.sh"
sl_setup
SLUICED=${SLUICED:-$(pwd)/build/sluiced}

NA=$(sl_name slapA)
NB=$(sl_name slapB)
DA=$(sl_name apa)
DB=$(sl_name apb)
TMP=$(mktemp -d)
trap 'sl_cleanup; rm -rf "$TMP"' EXIT
sl_pair "$NA" "$DA" "$NB" "$DB" 10.207.0 fd00:207::
# No IPv6 chatter (router and multicast listener messages): counters move
# only with the test's own pings, so states compare byte for byte.
sl_in "$NA" sysctl -qw "net.ipv6.conf.$DA.disable_ipv6=1"
sl_in "$NB" sysctl -qw "net.ipv6.conf.$DB.disable_ipv6=1"

S() { sl_in "$NB" "$SLUICE" "$@"; }
ping_ok() { sl_in "$NA" ping -c 1 -W 1 -q 10.207.0.2 >/dev/null 2>&1; }
# fw_field NAME PYEXPR: a value from `sluice -j firewall show --name NAME` (j)
fw_field() {
	S -j firewall show --name "$1" | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print($2)"
}
# The configuration without counters (a daemon's or ARP's packets may move
# them meanwhile): chains, instances and slots, firewall rules.
config_state() {
	S -j chain show
	S -j nf list | /usr/bin/python3 -c 'import json,sys; print(sorted((i["name"], i["type"], i["slot"]) for i in json.load(sys.stdin)))'
	for n in $(S -j nf list | /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(i["name"] for i in json.load(sys.stdin) if i["type"] == "firewall")))'); do
		fw_field "$n" '(j["default"], [r["rule"] for r in j["rules"]])'
	done
}
# The whole observable state, counters included.
# The loaded state, without its counters: stray packets (IPv6 router
# solicitations on the test's veths) may count between two snapshots.
state() {
	{
		S -j chain show
		S -j nf list
		for n in $(S -j nf list | /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(i["name"] for i in json.load(sys.stdin) if i["type"] == "firewall")))'); do
			S -j firewall show --name "$n"
		done
	} | /usr/bin/python3 -c '
import json, sys
COUNTERS = {"packets", "bytes", "passed", "dropped", "redirected", "drop_reasons"}
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in COUNTERS}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
text, dec, pos = sys.stdin.read(), json.JSONDecoder(), 0
while True:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text):
        break
    doc, pos = dec.raw_decode(text, pos)
    print(json.dumps(strip(doc), sort_keys=True))'
}

cat >"$TMP/v1.yaml" <<EOF
# web server: only web and ping in; nothing to UDP 9999 out
firewalls:
  web-in:
    default: drop
    rules:
      - accept proto tcp dport 80-443
      - accept proto icmp
  keep-out:
    rules: [drop proto udp dport 9999]
chains:
  - dev: $DB
    hook: ingress
    instances: [web-in]
  - dev: $DB
    hook: egress
    instances: [keep-out]
EOF

# 0. nothing to do in a namespace without state creates none
check "empty document on no state: no changes" test "$(echo 'firewalls: {}' | S apply -f -)" = "no changes"
check "... and no state created" test "$(S status | head -1)" = "state loaded: no"

# 1. apply from nothing
out=$(S apply -f "$TMP/v1.yaml" 2>&1)
check "apply v1" test $? -eq 0
check "apply v1 prints the plan" grep -q "^+ firewall web-in: default drop, 2 rules" <<<"$out"
check "apply v1: 4 changes" grep -q "^4 changes" <<<"$out"
chains=$(S chain show)
check "chains set" test "$chains" = "$(printf '%s ingress: web-in\n%s egress: keep-out' "$DB" "$DB")" -o \
	"$chains" = "$(printf '%s egress: keep-out\n%s ingress: web-in' "$DB" "$DB")"
check "web-in loaded with its rules" test "$(fw_field web-in '[r["rule"] for r in j["rules"]]')" = \
	"['accept proto tcp dport 80-443', 'accept proto icmp']"
check "web-in default drop" test "$(fw_field web-in 'j["default"]')" = drop
check "ping allowed by web-in" ping_ok
check "ping counted by 'accept proto icmp'" test "$(fw_field web-in 'j["rules"][1]["packets"]')" -ge 1

# 2. nothing to do after apply
out=$(S diff -f "$TMP/v1.yaml")
check "diff after apply: exit 0" test $? -eq 0
check "diff after apply: no changes" test "$out" = "no changes"
S diff --exit-code -f "$TMP/v1.yaml" >/dev/null
check "diff --exit-code after apply: 0" test $? -eq 0
out=$(S apply -f "$TMP/v1.yaml")
check "apply again: no changes" test "$out" = "no changes"

# 3. change one firewall: exactly that in the diff; the other keeps counting
sed 's/^      - accept proto tcp dport 80-443$/      - drop proto icmp icmp-type 8\n&/' "$TMP/v1.yaml" >"$TMP/v2.yaml"
out=$(S diff -f "$TMP/v2.yaml")
want="~ firewall web-in: reloaded, 3 rules
    + rule 1: drop proto icmp icmp-type 8
1 change"
check "diff v2 shows exactly the changed firewall" test "$out" = "$want" || echo "$out"
S diff --exit-code -f "$TMP/v2.yaml" >/dev/null
check "diff --exit-code with changes: 1" test $? -eq 1
sl_in "$NB" ping -c 2 -i 0.2 -W 1 -q 10.207.0.1 >/dev/null 2>&1
keep_before=$(fw_field keep-out 'j["default_packets"]')
icmp_before=$(fw_field web-in 'j["rules"][1]["packets"]')
slot_before=$(S -j nf list | /usr/bin/python3 -c 'import json,sys; print([i["slot"] for i in json.load(sys.stdin) if i["name"]=="keep-out"][0])')
check "keep-out counted egress packets" test "$keep_before" -ge 2
S apply -q -f "$TMP/v2.yaml"
check "apply v2" test $? -eq 0
check "web-in now has 3 rules" test "$(fw_field web-in 'len(j["rules"])')" -eq 3
check "unchanged rule's counter carried to its new position" \
	test "$(fw_field web-in 'j["rules"][2]["packets"]')" -eq "$icmp_before"
keep_after=$(fw_field keep-out 'j["default_packets"]')
check "unchanged keep-out not reloaded (counter kept)" test "$keep_after" -ge "$keep_before"
check "unchanged keep-out kept its slot" test "$(S -j nf list | /usr/bin/python3 -c 'import json,sys; print([i["slot"] for i in json.load(sys.stdin) if i["name"]=="keep-out"][0])')" = "$slot_before"
if ping_ok; then fail "ping blocked by the new rule"; else pass "ping blocked by the new rule"; fi
check "the new rule counted the ping" test "$(fw_field web-in 'j["rules"][0]["packets"]')" -ge 1
sl_in "$NB" ping -c 1 -W 1 -q 10.207.0.1 >/dev/null 2>&1
check "keep-out keeps counting" test "$(fw_field keep-out 'j["default_packets"]')" -gt "$keep_after"

# 4. export -> apply is a no-op; export is stable
S export >"$TMP/e1.yaml"
check "export" test -s "$TMP/e1.yaml"
check "diff of an export: no changes" test "$(S diff -f "$TMP/e1.yaml")" = "no changes"
check "apply of an export (stdin): no changes" test "$(S apply -f - <"$TMP/e1.yaml")" = "no changes"
S export -o "$TMP/e2.yaml"
check "export twice is byte-identical" cmp -s "$TMP/e1.yaml" "$TMP/e2.yaml"
S -j export >"$TMP/e1.json"
check "JSON export is JSON" /usr/bin/python3 -c "import json,sys; json.load(open('$TMP/e1.json'))"
check "diff of a JSON export: no changes" test "$(S diff -f "$TMP/e1.json")" = "no changes"

# 5. one bad rule deep inside: nothing applied, state byte-identical
cat "$TMP/v2.yaml" >"$TMP/bad.yaml"
cat >>"$TMP/bad.yaml" <<EOF
  - dev: $DB
    hook: tc-ingress
    instances: [extra]
EOF
sed -i "s/^firewalls:$/firewalls:\n  extra:\n    default: drop\n    rules:\n      - accept proto tcp dport 22\n      - accept proto udp dport 53\n      - accept src 10.0.0.0\/8 proto udp sport 1000-2000 dport 20-10\n      - accept proto icmp/" "$TMP/bad.yaml"
sed -i 's/^    default: drop$/    default: accept/' "$TMP/bad.yaml" # web-in would change too
before=$(state)
check "the state snapshot names the loaded firewall" grep -q '"web-in"' <<<"$before"
out=$(S apply -f "$TMP/bad.yaml" 2>&1)
rc=$?
check "apply with a bad rule fails" test $rc -eq 1
check "error names file, line and field path" grep -qF "bad.yaml:8: firewalls.extra.rules[2]: dport: range '20-10' is empty" <<<"$out" || echo "$out"
after=$(state)
check "state unchanged after a refused apply" test "$before" = "$after" || diff <(echo "$before") <(echo "$after")
check "no instance 'extra' left" test -z "$(S nf list | grep '^extra ')"
sed "s/^    instances: \[extra\]$/    instances: [extra, nope]/; s/dport 20-10/dport 10-20/" "$TMP/bad.yaml" >"$TMP/bad2.yaml"
out=$(S apply -f "$TMP/bad2.yaml" 2>&1)
check "unknown instance in a chain refused" grep -qF "chains[2].instances[1]: no instance 'nope' in this document" <<<"$out" || echo "$out"
sed "s/^  - dev: $DB$/  - dev: nodev$SL_ID/" "$TMP/v2.yaml" >"$TMP/bad3.yaml"
out=$(S apply -f "$TMP/bad3.yaml" 2>&1)
check "missing interface refused" grep -qF "chains[0].dev: no interface 'nodev$SL_ID'" <<<"$out" || echo "$out"
after=$(state)
check "state unchanged after refused applies" test "$before" = "$after" || diff <(echo "$before") <(echo "$after")

# 6. an instance left out of the document is removed
cat >"$TMP/v3.yaml" <<EOF
firewalls:
  web-in:
    default: drop
    rules:
      - accept proto icmp
chains:
  - dev: $DB
    instances: [web-in]
EOF
out=$(S diff -f "$TMP/v3.yaml")
check "diff says keep-out is deleted" grep -q "^- firewall keep-out: not in the document, deleted" <<<"$out"
check "diff says the egress chain goes" grep -q "^- chain $DB egress: detached (was keep-out)" <<<"$out"
S apply -q -f "$TMP/v3.yaml"
check "apply v3" test $? -eq 0
check "keep-out removed" test -z "$(S nf list | grep '^keep-out ')"
check "egress chain removed" test "$(S chain show)" = "$DB ingress: web-in"
check "ping allowed again" ping_ok
check "v3: no changes after apply" test "$(S diff -f "$TMP/v3.yaml")" = "no changes"

# 6b. an instance of a type the document cannot describe (iptables) is
# never deleted by apply: the whole apply is refused, naming it, nothing
# changes
printf '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 9 -j DROP\nCOMMIT\n' >"$TMP/ipt.rules"
S iptables import --dev "$DB" "$TMP/ipt.rules" >/dev/null
check "iptables instance created" test -n "$(S nf list | grep '^iptables ')"
before=$(config_state)
out=$(S apply -f "$TMP/v1.yaml" 2>&1)
check "apply beside an iptables instance refused" test $? -eq 1
check "... naming the instance and its type" grep -qF "instance 'iptables' is a iptables, which the configuration cannot describe" <<<"$out" || echo "$out"
out=$(S diff -f "$TMP/v1.yaml" 2>&1)
check "diff beside an iptables instance refused too" test $? -eq 1
check "... with the same message" grep -qF "instance 'iptables' is a iptables" <<<"$out" || echo "$out"
out=$(echo 'firewalls: {}' | S apply -f - 2>&1)
check "empty document beside an iptables instance refused" test $? -eq 1
check "export beside an iptables instance refused" grep -qF "instance 'iptables' is a iptables" <<<"$(S export 2>&1)"
check "state unchanged after the refusals (iptables kept)" test "$before" = "$(config_state)"
# The same through the daemon: POST /v1/apply answers 409 and changes nothing.
SOCK=/run/sluice/test-apply-$$.sock
nsenter --net="/run/netns/$NB" "$SLUICED" --socket "$SOCK" --foreground \
	--log-level warn 2>>"$TMP/sluiced.log" &
DPID=$!
for _ in $(seq 100); do
	curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
code=$(curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/yaml' \
	--data-binary "@$TMP/v1.yaml" -o "$TMP/body" -w '%{http_code}' http://sluiced/v1/apply)
check "sluiced: POST /v1/apply beside an iptables instance: 409" test "$code" = 409 || cat "$TMP/body"
check "sluiced: the error names the instance" grep -qF "instance 'iptables' is a iptables" "$TMP/body"
code=$(curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/yaml' \
	--data-binary "@$TMP/v1.yaml" -o "$TMP/body" -w '%{http_code}' http://sluiced/v1/diff)
check "sluiced: POST /v1/diff beside an iptables instance: 409" test "$code" = 409 || cat "$TMP/body"
kill "$DPID"
wait "$DPID" 2>/dev/null
after=$(config_state)
check "state unchanged after the daemon's refusals" test "$before" = "$after" || diff <(echo "$before") <(echo "$after")
S iptables flush
check "iptables instance deleted by hand" test -z "$(S nf list | grep '^iptables ')"

# 7. an empty document removes everything
echo 'firewalls: {}' | S apply -q -f -
check "empty document applied" test $? -eq 0
check "no instances left" test "$(S -j nf list)" = "[]"
check "no chains left" test "$(S -j chain show)" = "[]"
check "export of nothing" test "$(S export | grep -v '^#')" = "$(printf 'version: 1\nfirewalls: {}\nchains: []')"

# 8. the other NF types: conntrack, flowmon, router, httpmon
cat >"$TMP/nfs.yaml" <<EOF
conntrack:
  ct:
    size: 4096
    drop_invalid: true
    timeouts: {udp: 60}
flowmon:
  fm: {max_flows: 1024}
router:
  rt: {}
httpmon:
  web:
    ports: [80, 8080]
    routes: ["/api/*"]
firewalls:
  web-in:
    rules: [accept proto icmp]
chains:
  - dev: $DB
    hook: ingress
    instances: [ct, web-in, fm]
  - dev: $DB
    hook: tc-ingress
    instances: [web]
EOF
ct_conf() { # PYEXPR on c, the options of conntrack ct
	S -j conntrack config --name ct | /usr/bin/python3 -c "import json,sys; c=json.load(sys.stdin)[0]; print($1)"
}
out=$(S apply -f "$TMP/nfs.yaml" 2>&1)
check "apply conntrack, flowmon, router, httpmon" test $? -eq 0 || echo "$out"
check "plan: + conntrack ct with its settings" grep -qx "+ conntrack ct: size 4096, tcp loose, drop_invalid true, gc_interval_ms 5000" <<<"$out"
check "plan: + router rt" grep -qx "+ router rt: created" <<<"$out"
check "plan: + httpmon web" grep -qxF "+ httpmon web: ports 80 8080, routes /api/*, max_templates 64" <<<"$out"
check "types as sluice nf list shows them" test "$(S -j nf list | /usr/bin/python3 -c 'import json,sys; print(sorted((i["name"], i["type"]) for i in json.load(sys.stdin)))')" = \
	"[('ct', 'conntrack'), ('fm', 'flowmon'), ('rt', 'router'), ('web', 'httpmon'), ('web-in', 'firewall')]"
check "conntrack options as sluice conntrack config shows them" \
	test "$(ct_conf 'c["drop_invalid"], c["loose"], c["timeouts"]["udp"]')" = "True True 60"
check "ping through the chain" ping_ok
check "conntrack tracked the ping" grep -q icmp <<<"$(S conntrack list --name ct)"
check "diff after apply: no changes" test "$(S diff -f "$TMP/nfs.yaml")" = "no changes"
S export >"$TMP/nfs-e.yaml"
check "export describes them" grep -q "^  rt: {}$" "$TMP/nfs-e.yaml"
check "diff of the export: no changes" test "$(S diff -f "$TMP/nfs-e.yaml")" = "no changes"
S -j export >"$TMP/nfs-e.json"
check "diff of the JSON export: no changes" test "$(S diff -f "$TMP/nfs-e.json")" = "no changes"
# Options change in place (the table stays), as sluice conntrack config.
sed 's/drop_invalid: true/drop_invalid: false/; s/udp: 60/udp: 90/' "$TMP/nfs.yaml" >"$TMP/nfs2.yaml"
want="~ conntrack ct: options set in place (its connections stay)
    drop_invalid: true -> false
    timeouts.udp: 60 -> 90
1 change"
check "diff: conntrack options, field by field" test "$(S diff -f "$TMP/nfs2.yaml")" = "$want"
S apply -q -f "$TMP/nfs2.yaml"
check "options applied" test "$(ct_conf 'c["drop_invalid"], c["timeouts"]["udp"]')" = "False 90"
check "the connection table kept its entry" grep -q icmp <<<"$(S conntrack list --name ct)"
# A table size cannot change on a live instance: refused, nothing changed.
before=$(config_state)
sed 's/size: 4096/size: 8192/; s/ports: \[80, 8080\]/ports: [80]/' "$TMP/nfs2.yaml" >"$TMP/nfs3.yaml"
out=$(S apply -f "$TMP/nfs3.yaml" 2>&1)
check "size change refused" test $? -eq 1
check "... naming the field" grep -qF "conntrack.ct.size: the table of a live instance cannot be resized (4096 -> 8192 entries)" <<<"$out" || echo "$out"
check "... nothing changed" test "$before" = "$(config_state)"
check "... httpmon kept its 2 ports" test "$(S diff -f "$TMP/nfs2.yaml")" = "no changes"
# httpmon settings reload it, as sluice http attach does.
sed 's/ports: \[80, 8080\]/ports: [80]/' "$TMP/nfs2.yaml" >"$TMP/nfs4.yaml"
out=$(S apply -f "$TMP/nfs4.yaml" 2>&1)
check "httpmon ports changed" grep -qx "    ports: 80 8080 -> 80" <<<"$out"
check "httpmon: no changes after" test "$(S diff -f "$TMP/nfs4.yaml")" = "no changes"
# An unknown field anywhere: refused with line and path.
sed 's/max_flows: 1024/maxflows: 1024/' "$TMP/nfs4.yaml" >"$TMP/nfs5.yaml"
check "unknown field refused" grep -qF "nfs5.yaml:7: flowmon.fm: unknown key 'maxflows' (max_flows)" <<<"$(S apply -f "$TMP/nfs5.yaml" 2>&1)"
echo 'firewalls: {}' | S apply -q -f -
check "empty document removes them all" test "$(S -j nf list)" = "[]"

sl_exit
