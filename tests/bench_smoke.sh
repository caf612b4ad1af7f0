#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Smoke test of the benchmark harness: runs bench/run.sh at its smallest size
# (one short A/B pair per configuration, N = 1) and checks that it produced
# every result, with the harness's own checks (packets counted, dropped where
# intended, none reaching UDP) passing. No timing is asserted.
set -u
cd "$(dirname "$0")/.."

fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

if [ "$(id -u)" -ne 0 ]; then
	fail "bench_smoke: needs root"
	exit 1
fi
out=$(mktemp -d /tmp/bench-smoke.XXXXXX)
log=$out/run.log
if timeout -k 5 50 env OUT="$out" bench/run.sh smoke >"$log" 2>&1; then
	pass "bench smoke: bench/run.sh smoke finished and its checks passed"
else
	fail "bench smoke: bench/run.sh smoke failed (status $?); last lines:"
	tail -15 "$log" | sed 's/^/    /'
fi

# raw.tsv: one line per pair; every configuration checked ok.
for cfg in "xdp-parse last 1" "sluice last 1" "iptables-raw last 1" "sluice nomatch 1"; do
	set -- $cfg
	line=$(awk -F'\t' -v s="$1" -v c="$2" -v n="$3" \
		'$1 == s && $2 == c && $3 == n' "$out/raw.tsv" 2>/dev/null | head -1)
	if [ -z "$line" ]; then
		fail "bench smoke: no measurement for $cfg"
		continue
	fi
	ok=$(cut -f14 <<<"$line")
	b_ns=$(cut -f6 <<<"$line")
	counted=$(cut -f9 <<<"$line")
	if [ "$ok" = 1 ] && [ "$counted" -gt 0 ] && awk -v x="$b_ns" 'BEGIN { exit !(x > 0) }'; then
		pass "bench smoke: $cfg measured ($counted packets, $b_ns ns/packet)"
	else
		fail "bench smoke: $cfg: ok=$ok counted=$counted ns=$b_ns"
	fi
done

# BPF_PROG_RUN figures of the sluice root + firewall.
if grep -qP '^1\tmatch\tsluice\tDROP\t' "$out/progrun.tsv" 2>/dev/null &&
   grep -qP '^1\tnomatch\tsluice\tPASS\t' "$out/progrun.tsv"; then
	pass "bench smoke: BPF_PROG_RUN of the sluice root gives DROP on the last rule, PASS otherwise"
else
	fail "bench smoke: BPF_PROG_RUN results missing or wrong verdicts"
	cat "$out/progrun.tsv" 2>/dev/null | sed 's/^/    /'
fi

if grep -q '^## Scenario last' "$out/README.md" 2>/dev/null; then
	pass "bench smoke: report written"
else
	fail "bench smoke: no report"
fi

# Nothing of this run left behind (its id is in the log).
id=$(sed -n 's/.*topology sbgen-\([0-9a-f]*\) .*/\1/p' "$log" | head -1)
if [ -z "$id" ]; then
	fail "bench smoke: run id not found in the log"
elif ip netns list | grep -q -- "-$id\b" || [ -e "/sys/fs/bpf/sbench-$id" ]; then
	fail "bench smoke: namespaces or pins of run $id left behind"
else
	pass "bench smoke: namespaces and pins of run $id removed"
fi

rm -rf "$out"
[ "$fails" -eq 0 ]
