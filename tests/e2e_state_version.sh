#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Pinned state made by another version of sluice: when a map pinned in the
# namespace's folder has another layout than this build's (a root map, or
# the user-space-made instance map), every command that would read or write
# it is refused with one line naming the map and 'sluice reset', nothing
# changes and the data plane keeps running; 'sluice reset' still works and
# a fresh load follows. The old layout is made with bpftool: the map's pin
# is replaced by one with 8 more bytes of value.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
sl_setup

C=$(sl_name svc)
S=$(sl_name svs)
CD=$(sl_name svcd)
SD=$(sl_name svsd)
TMP=$(mktemp -d /tmp/sluice-stver.XXXXXX)
trap 'sl_cleanup; rm -rf "$TMP"' EXIT

[ -x "$SLUICE" ] || { fail "build/sluice missing (run make)"; exit 1; }
sl_pair "$C" "$CD" "$S" "$SD" 10.213.0 fd00:213:: || { fail "setup"; exit 1; }

s() { sl_in "$S" "$SLUICE" "$@"; }
replies() {
	sl_in "$C" ping -n -q -c "$1" -i 0.05 -W 1 10.213.0.2 2>/dev/null |
		awk '/received/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^received/) print $i }'
}
expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (got '$2', want '$3')"; fi
}
# refused NAME MAP CMD...: CMD fails with one line that names MAP, says
# another version made the state, and points at sluice reset.
refused() {
	local name=$1 map=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
		grep -q "another version of sluice (map $map: value size" "$TMP/err" &&
		grep -q "'sluice reset'" "$TMP/err"; then
		pass "$name (rc $rc: $(cat "$TMP/err"))"
	else
		fail "$name (rc $rc, stderr: $(cat "$TMP/err"), stdout: $(cat "$TMP/out"))"
	fi
}
# older MAP: replaces MAP's pin with a map of the same kind whose values are
# 8 bytes larger, as a sluice with another layout would have pinned it.
older() {
	local pin=$PIN/$1 info
	info=$(bpftool -j map show pinned "$pin") || return 1
	read -r type key value entries < <(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print(d["type"], d["bytes_key"], d["bytes_value"], d["max_entries"])' "$info") || return 1
	rm -f "$pin" &&
		bpftool map create "$pin" type "$type" key "$key" value $((value + 8)) \
			entries "$entries" name "$1"
}

printf 'drop proto icmp icmp-type 8\n' >"$TMP/drop.fw"
printf 'accept proto icmp icmp-type 8\n' >"$TMP/accept.fw"
sl_in "$C" ping -c1 -W1 10.213.0.2 >/dev/null 2>&1 # neighbours

for map in sl_drops sl_instances; do
	check "$map: firewall loaded" s firewall load "$SD" "$TMP/drop.fw"
	expect "$map: pings dropped" "$(replies 3)" 0
	PIN=$(s status -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["pin_dir"])')
	check "$map: pinned again with an older layout" older "$map"
	refused "$map: status refused" "$map" s status
	refused "$map: nf list refused" "$map" s nf list
	refused "$map: firewall load refused" "$map" s firewall load "$SD" "$TMP/accept.fw"
	expect "$map: nothing changed, the data plane still drops" "$(replies 3)" 0
	check "$map: reset works on state of another version" s reset
	check "$map: reset removed $PIN" test ! -e "$PIN"
	expect "$map: after reset, pings pass" "$(replies 3)" 3
	check "$map: after reset, a load makes fresh state" s firewall load "$SD" "$TMP/accept.fw"
	expect "$map: and the fresh state runs" "$(replies 3)" 3
	check "$map: status reads the fresh state" s status
	s reset >/dev/null
done

# An NF's own pinned maps are checked before its program loads: NAT's.
rule_absent() { ! s nat show | grep -qw "$1"; }
check "nat: a rule added" s nat add m1 masquerade --out "$SD" --src 10.213.0.0/24
PIN=$(s status -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["pin_dir"])')
check "nat_flags: pinned again with an older layout" older nat_flags
refused "nat_flags: nat add refused" nat_flags \
	s nat add m2 masquerade --out "$SD" --src 10.214.0.0/24
check "nat: the refused rule is not there" rule_absent m2
check "nat: reset works on state of another version" s reset
check "nat: after reset, a rule is added afresh" \
	s nat add m2 masquerade --out "$SD" --src 10.214.0.0/24
s reset >/dev/null
sl_exit
