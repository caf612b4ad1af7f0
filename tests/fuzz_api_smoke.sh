#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A 5-second run of the REST request fuzz target, fuzz/fuzz_api.c (make fuzz runs it
# longer): builds it if needed, starts from the seeds, fails on any crash.
set -u
cd "$(dirname "$0")/.."
bin=build/fuzz/fuzz_api
if ! make -s --no-print-directory "$bin" >/dev/null 2>&1; then
	echo "FAIL: fuzz_api_smoke: cannot build $bin"
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" -max_total_time=5 -dict=fuzz/api.dict -artifact_prefix="$tmp/" \
	-print_final_stats=1 "$tmp" fuzz/corpus/api >"$tmp/log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/log")
if [ "$rc" -eq 0 ] && [ -n "$runs" ] && ! ls "$tmp"/crash-* "$tmp"/leak-* "$tmp"/timeout-* >/dev/null 2>&1; then
	echo "PASS: fuzz_api 5 s: $runs inputs, no crash"
else
	tail -40 "$tmp/log"
	echo "FAIL: fuzz_api 5 s (exit $rc)"
	exit 1
fi
