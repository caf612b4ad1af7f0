#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A 5-second run of each fuzz target (make fuzz runs them longer): the YAML
# configuration loader and the daemon's request handling. Builds them if
# needed, starts from the seeds, fails on any crash.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
for target in config api; do
	bin=build/fuzz/fuzz_$target
	if ! make -s --no-print-directory "$bin" >/dev/null 2>&1; then
		echo "FAIL: fuzz_$target: cannot build $bin"
		fails=$((fails + 1))
		continue
	fi
	mkdir -p "$tmp/$target"
	"$bin" -max_total_time=5 -dict=fuzz/$target.dict -artifact_prefix="$tmp/$target/" \
		-print_final_stats=1 "$tmp/$target" fuzz/corpus/$target >"$tmp/$target.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$target.log")
	if [ "$rc" -eq 0 ] && [ -n "$runs" ] &&
		! ls "$tmp/$target"/crash-* "$tmp/$target"/leak-* "$tmp/$target"/timeout-* >/dev/null 2>&1; then
		echo "PASS: fuzz_$target 5 s: $runs inputs, no crash"
	else
		tail -40 "$tmp/$target.log"
		echo "FAIL: fuzz_$target 5 s (exit $rc)"
		fails=$((fails + 1))
	fi
done
[ "$fails" -eq 0 ]
