#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# NAT gateway end to end, sluice against netfilter in the same topology.
#
# Two copies of one topology, "s" with the sluice NAT NF and "i" with
# iptables/ip6tables MASQUERADE and DNAT on the gateway:
#
#   client A 10.70.0.2 fd70::2 ---+
#                                 br0 [gateway] out0 --- server 198.51.100.2
#   client B 10.70.0.3 fd70::3 ---+  10.70.0.1        198.51.100.1  2001:db8:64::2
#                                    fd70::1          2001:db8:64::1
#
# The server has no route to 10.70.0.0/24 or fd70::/64: without NAT no
# answer comes back. The same flows run through both gateways and must give
# the same results, each also checked against what it must be: TCP with
# data (its hash checked), UDP request/response, ping, all over IPv4 and
# IPv6, seen by the server as coming from the gateway; 200 UDP sockets from
# the two clients with the same source ports, which the server must see as
# 200 distinct (address, port) tuples; UDP to a closed port, whose ICMP port
# unreachable must reach the client's socket; DNAT of gateway:8080 to client
# A's web server from the server side; hairpin (client B to gateway:8080);
# a TCP connection that stays up across a rule change.
cd "$(dirname "$0")/../../.." || exit 1
. tests/lib.sh
sl_setup

PY=/usr/bin/python3 # not a pyenv shim: $! must be the python process
PEER=$PWD/nf/nat/tests/nat_peer.py
TMP=$(mktemp -d /tmp/sluice-e2enat.XXXXXX)
PIDS=()
LINKS=0

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
command -v iptables >/dev/null && command -v ip6tables >/dev/null ||
	{ fail "iptables/ip6tables missing (scripts/deps.sh installs them)"; exit 1; }

ns() { sl_name "n$1$2"; } # ns ROLE VARIANT -> namespace name

# link NS_A NAME_A NS_B NAME_B: a veth pair with those names inside.
link() {
	local a b
	LINKS=$((LINKS + 1))
	a=$(sl_name "nt${LINKS}a")
	b=$(sl_name "nt${LINKS}b")
	ip link add "$a" type veth peer name "$b" &&
		ip link set "$a" netns "$1" name "$2" &&
		ip link set "$b" netns "$3" name "$4" &&
		sl_in "$1" ip link set "$2" up && sl_in "$3" ip link set "$4" up
}

host() { # NS ADDR4 ADDR6 [GW4 GW6]
	sl_in "$1" ip addr add "$2" dev eth0 &&
		sl_in "$1" ip addr add "$3" dev eth0 nodad &&
		if [ $# -gt 3 ]; then
			sl_in "$1" ip route add default via "$4" &&
				sl_in "$1" ip -6 route add default via "$5"
		fi
}

topology() { # VARIANT
	local v=$1 gw a b sv
	gw=$(ns gw "$v") a=$(ns ca "$v") b=$(ns cb "$v") sv=$(ns sv "$v")
	for n in "$gw" "$a" "$b" "$sv"; do sl_netns_add "$n" || return 1; done
	sl_in "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 || return 1
	sl_in "$gw" ip link add br0 type bridge mcast_snooping 0 &&
		sl_in "$gw" ip link set br0 up &&
		link "$gw" lan1 "$a" eth0 && link "$gw" lan2 "$b" eth0 &&
		sl_in "$gw" ip link set lan1 master br0 && sl_in "$gw" ip link set lan2 master br0 &&
		link "$gw" out0 "$sv" eth0 || return 1
	sl_in "$gw" ip addr add 10.70.0.1/24 dev br0 &&
		sl_in "$gw" ip addr add fd70::1/64 dev br0 nodad &&
		sl_in "$gw" ip addr add 198.51.100.1/24 dev out0 &&
		sl_in "$gw" ip addr add 2001:db8:64::1/64 dev out0 nodad &&
		host "$a" 10.70.0.2/24 fd70::2/64 10.70.0.1 fd70::1 &&
		host "$b" 10.70.0.3/24 fd70::3/64 10.70.0.1 fd70::1 &&
		host "$sv" 198.51.100.2/24 2001:db8:64::2/64
}

nat_sluice() {
	local gw
	gw=$(ns gw s)
	exec 3>&1 >/dev/null # the "rule added" lines
	sl_in "$gw" "$SLUICE" nat add out4 masquerade --out out0 --src 10.70.0.0/24 &&
		sl_in "$gw" "$SLUICE" nat add out6 masquerade --out out0 --src fd70::/64 &&
		sl_in "$gw" "$SLUICE" nat add web dnat --in out0 --dst 198.51.100.1 \
			--proto tcp --dport 8080 --to 10.70.0.2:80 &&
		sl_in "$gw" "$SLUICE" nat add web-hp dnat --in br0 --dst 198.51.100.1 \
			--proto tcp --dport 8080 --to 10.70.0.2:80 &&
		sl_in "$gw" "$SLUICE" nat add hp masquerade --out br0 --src 10.70.0.0/24 \
			--dst 10.70.0.2 --proto tcp --dport 80
	local rc=$?
	exec 1>&3 3>&-
	return $rc
}

nat_iptables() {
	local gw
	gw=$(ns gw i)
	sl_in "$gw" iptables -t nat -A POSTROUTING -o out0 -s 10.70.0.0/24 -j MASQUERADE &&
		sl_in "$gw" ip6tables -t nat -A POSTROUTING -o out0 -s fd70::/64 -j MASQUERADE &&
		sl_in "$gw" iptables -t nat -A PREROUTING -d 198.51.100.1 -p tcp --dport 8080 \
			-j DNAT --to-destination 10.70.0.2:80 &&
		sl_in "$gw" iptables -t nat -A POSTROUTING -o br0 -s 10.70.0.0/24 -d 10.70.0.2 \
			-p tcp --dport 80 -j MASQUERADE
}

# Starts a peer in the background and waits for it to be ready.
start() { # NS MODE NAME-OR-LOG
	local ready=$TMP/ready.$RANDOM
	# nsenter itself, not the sl_in function: $! must be the python process.
	nsenter --net="/run/netns/$1" "$PY" "$PEER" "$2" "$ready" "$3" &
	PIDS+=($!)
	for _ in $(seq 50); do [ -s "$ready" ] && return 0; sleep 0.1; done
	return 1
}

jqok() { jq -e "$@" >/dev/null; } # FILTER FILE: the filter holds

pingok() { # NS ADDR
	if sl_in "$1" ping -q -c 3 -i 0.2 -W 2 "$2" >/dev/null 2>&1; then echo ok; else echo lost; fi
}

# The flows; one "name: result" line each, in $TMP/result.VARIANT.
flows() { # VARIANT
	local v=$1 a b sv gw log=$TMP/udp.$1 out=$TMP/result.$1
	gw=$(ns gw "$v") a=$(ns ca "$v") b=$(ns cb "$v") sv=$(ns sv "$v")
	: >"$out"
	r() { echo "$1: $2" >>"$out"; }
	r "tcp4 client A" "$(sl_in "$a" "$PY" "$PEER" tcp 198.51.100.2 7000 300000)"
	r "tcp4 client B" "$(sl_in "$b" "$PY" "$PEER" tcp 198.51.100.2 7000 300000)"
	r "udp4 client A" "$(sl_in "$a" "$PY" "$PEER" udp 198.51.100.2 7001)"
	r "udp4 client B" "$(sl_in "$b" "$PY" "$PEER" udp 198.51.100.2 7001)"
	r "ping4 client A" "$(pingok "$a" 198.51.100.2)"
	r "ping4 client B" "$(pingok "$b" 198.51.100.2)"
	r "tcp6 client A" "$(sl_in "$a" "$PY" "$PEER" tcp 2001:db8:64::2 7000 300000)"
	r "udp6 client B" "$(sl_in "$b" "$PY" "$PEER" udp 2001:db8:64::2 7001)"
	r "ping6 client A" "$(pingok "$a" 2001:db8:64::2)"
	r "ping6 client B" "$(pingok "$b" 2001:db8:64::2)"
	r "udp4 to a closed port" "$(sl_in "$a" "$PY" "$PEER" refused 198.51.100.2 7009)"
	r "udp6 to a closed port" "$(sl_in "$b" "$PY" "$PEER" refused 2001:db8:64::2 7009)"
	# 100 sockets on each client, the same 100 source ports on both.
	: >"$log"
	sl_in "$a" "$PY" "$PEER" udpmany 198.51.100.2 7001 30000 100 >"$TMP/many.a" &
	local pa=$!
	sl_in "$b" "$PY" "$PEER" udpmany 198.51.100.2 7001 30000 100 >"$TMP/many.b"
	wait "$pa"
	r "200 udp flows, answers to A" "$(cat "$TMP/many.a")"
	r "200 udp flows, answers to B" "$(cat "$TMP/many.b")"
	r "200 udp flows, distinct outside tuples at the server" "$(sort -u "$log" | wc -l)"
	r "dnat from the server side" "$(sl_in "$sv" "$PY" "$PEER" get 198.51.100.1 8080)"
	r "hairpin from client B" "$(sl_in "$b" "$PY" "$PEER" get 198.51.100.1 8080)"
	# A connection open while the rules change.
	sl_in "$a" "$PY" "$PEER" tcp 198.51.100.2 7000 200000 2 >"$TMP/slow" &
	local ps=$!
	sleep 0.7
	if [ "$v" = s ]; then
		sl_in "$gw" "$SLUICE" nat add extra snat --out out0 --to 198.51.100.99 --src 10.99.0.0/16
	else
		sl_in "$gw" iptables -t nat -A POSTROUTING -o out0 -s 10.99.0.0/16 -j SNAT --to-source 198.51.100.99
	fi
	wait "$ps"
	r "tcp4 across a rule change" "$(cat "$TMP/slow")"
}

# ---- set up -------------------------------------------------------------

for v in s i; do
	topology "$v" || { fail "setup: topology $v"; exit 1; }
	start "$(ns sv "$v")" srv "$TMP/udp.$v" || { fail "setup: server $v"; exit 1; }
	start "$(ns ca "$v")" web "client-A" || { fail "setup: web server $v"; exit 1; }
done
# The server has no route back: without NAT nothing comes back.
for v in s i; do
	check "no nat rules, gateway $v: no answer" \
		test "$(sl_in "$(ns ca "$v")" "$PY" "$PEER" udp 198.51.100.2 7001)" = timeout
done
check "sluice nat rules load" nat_sluice
check "iptables nat rules load" nat_iptables
GWS=$(ns gw s)

for v in s i; do flows "$v"; done

# ---- results --------------------------------------------------------------

declare -A WANT=(
	["tcp4 client A"]="ok 198.51.100.1"
	["tcp4 client B"]="ok 198.51.100.1"
	["udp4 client A"]="198.51.100.1"
	["udp4 client B"]="198.51.100.1"
	["ping4 client A"]="ok"
	["ping4 client B"]="ok"
	["tcp6 client A"]="ok 2001:db8:64::1"
	["udp6 client B"]="2001:db8:64::1"
	["ping6 client A"]="ok"
	["ping6 client B"]="ok"
	["udp4 to a closed port"]="refused"
	["udp6 to a closed port"]="refused"
	["200 udp flows, answers to A"]="100"
	["200 udp flows, answers to B"]="100"
	["200 udp flows, distinct outside tuples at the server"]="200"
	["dnat from the server side"]="client-A 198.51.100.2"
	["hairpin from client B"]="client-A 10.70.0.1"
	["tcp4 across a rule change"]="ok 198.51.100.1"
)

while IFS= read -r line; do
	name=${line%%: *}
	got_s=${line#*: }
	got_i=$(grep -F "$name: " "$TMP/result.i" | head -1)
	got_i=${got_i#*: }
	if [ "$got_s" = "${WANT[$name]}" ] && [ "$got_i" = "$got_s" ]; then
		pass "$name: sluice and iptables both '$got_s'"
	else
		fail "$name: sluice '$got_s', iptables '$got_i', expected '${WANT[$name]}'"
	fi
done <"$TMP/result.s"
check "every flow ran on both gateways" \
	test "$(wc -l <"$TMP/result.s")" -eq "${#WANT[@]}" -a "$(wc -l <"$TMP/result.i")" -eq "${#WANT[@]}"

# ---- sluice's own view ------------------------------------------------------

sl_in "$GWS" "$SLUICE" -j nat mappings >"$TMP/map.json"
check "nat mappings --json is a JSON array" jqok 'type == "array"' "$TMP/map.json"
n=$(jq length "$TMP/map.json")
u=$(jq -r '.[] | [.kind, .proto, .translated.src, .translated.sport, .translated.dst, .translated.dport] | @tsv' \
	"$TMP/map.json" | sort -u | wc -l)
check "mappings: at least the 200 udp flows ($n live)" test "$n" -ge 200
check "mappings: no two share a translated tuple ($u distinct of $n)" test "$u" -eq "$n"
check "mappings: the dnat and hairpin flows are listed" \
	jqok 'map(select(.kind == "dnat" and .orig.dport == 8080)) | length >= 2' "$TMP/map.json"
# Closed TCP flows expire within seconds: compare with counts on both sides.
t=$(sl_in "$GWS" "$SLUICE" nat mappings | wc -l)
n2=$(sl_in "$GWS" "$SLUICE" -j nat mappings | jq length)
check "mappings: text form has one line per mapping ($t; JSON $n then $n2)" \
	test "$t" -eq "$n" -o "$t" -eq "$n2"
sl_in "$GWS" "$SLUICE" -j nat show >"$TMP/show.json"
check "nat show: masquerade compiled to the interface's addresses" \
	jqok '[.[] | select(.name == "out4") | .compiled[0].to] == ["198.51.100.1"]' "$TMP/show.json"
check "nat show: no flow ran out of ports" jqok '[.[].compiled[].no_port] | add == 0' "$TMP/show.json"
check "the NAT runs on out0 and br0, both TC hooks" \
	test "$(sl_in "$GWS" "$SLUICE" chain show | grep -c 'nat')" -eq 4

# Bad input is refused with the reason and changes nothing.
before=$(sl_in "$GWS" "$SLUICE" -j nat show)
err=$(sl_in "$GWS" "$SLUICE" nat add bad dnat --in out0 --to 10.70.0.2:80 2>&1)
check "bad rule refused: ports without --proto ($err)" \
	test $? -ne 0 -a -n "$(echo "$err" | grep -F -- '--to: ports need --proto')"
err=$(sl_in "$GWS" "$SLUICE" nat add out4 masquerade --out out0 2>&1)
check "a second rule of the same name refused" test -n "$(echo "$err" | grep exists)"
check "refusals changed nothing" test "$(sl_in "$GWS" "$SLUICE" -j nat show)" = "$before"

# Flush forgets every mapping: an open UDP "session" gets a new one.
sl_in "$GWS" "$SLUICE" nat flush >/dev/null
check "flush leaves no mapping" test "$(sl_in "$GWS" "$SLUICE" -j nat mappings | jq length)" -lt 3
check "traffic after a flush gets new mappings" \
	test "$(sl_in "$(ns ca s)" "$PY" "$PEER" udp 198.51.100.2 7001)" = 198.51.100.1
check "nat del removes a rule" sl_in "$GWS" "$SLUICE" nat del extra

# ---- the same through sluiced's REST API ------------------------------------

SOCK=$TMP/sluiced.sock
nsenter --net="/run/netns/$GWS" "$PWD/build/sluiced" --socket "$SOCK" --foreground \
	--log-level warn 2>>"$TMP/sluiced.log" &
PIDS+=($!)
for _ in $(seq 100); do
	curl -sf --unix-socket "$SOCK" http://sluiced/v1/health >/dev/null 2>&1 && break
	sleep 0.05
done
api() { # METHOD PATH [BODY]: prints the status; the body goes to $TMP/body
	local data=()
	[ $# -ge 3 ] && data=(-H 'Content-Type: application/json' --data-binary "$3")
	curl -s --unix-socket "$SOCK" -X "$1" -o "$TMP/body" -w '%{http_code}' \
		"${data[@]}" "http://sluiced$2"
}
check "api: PUT /v1/nat/rules/extra adds a rule" \
	test "$(api PUT /v1/nat/rules/extra '{"rule":"snat --out out0 --to 198.51.100.98 --src 10.98.0.0/16"}')" = 201
check "api: GET /v1/nat lists it, as nat show does" \
	jqok '.rules | map(select(.name == "extra")) | .[0].compiled[0].to == "198.51.100.98"' \
	<(api GET /v1/nat >/dev/null; cat "$TMP/body")
check "api: a bad rule is a 400 naming the field" \
	test "$(api PUT /v1/nat/rules/bad '{"rule":"dnat --in out0 --to 10.70.0.2:80"}')" = 400 -a \
	"$(jq -r .field "$TMP/body")" = rule
check "api: an unknown key is refused" test "$(api PUT /v1/nat/rules/bad '{"rules":"x"}')" = 400
sl_in "$(ns ca s)" "$PY" "$PEER" udp 198.51.100.2 7001 >/dev/null
check "api: GET /v1/nat/mappings lists the live mappings" \
	jqok 'map(select(.kind == "snat" and .orig.src == "10.70.0.2")) | length >= 1' \
	<(api GET /v1/nat/mappings >/dev/null; cat "$TMP/body")
check "api: DELETE /v1/nat/rules/extra" test "$(api DELETE /v1/nat/rules/extra)" = 204
check "api: DELETE of a missing rule is a 404" test "$(api DELETE /v1/nat/rules/extra)" = 404
check "api: POST /v1/nat/reload" test "$(api POST /v1/nat/reload)" = 204
check "api: POST /v1/nat/flush" \
	test "$(api POST /v1/nat/flush)" = 200 -a "$(jq '.flushed >= 1' "$TMP/body")" = true
sl_exit
