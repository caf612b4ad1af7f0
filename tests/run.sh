#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Runs every test and ends with "N passed, N failed"; exits non-zero on any
# failure. Each test prints "PASS: name" / "FAIL: name" lines; a test that
# exits non-zero without printing a FAIL line counts as one failure.
# Usage: tests/run.sh [PATTERN]   (runs the tests whose path contains PATTERN)
set -u
cd "$(dirname "$0")/.."

TESTS=(
	build/tests/fw_parse_asan
	build/tests/config_unit_asan
	build/tests/fw_progrun
	build/tests/obs_progrun
	build/tests/pipeline_progrun
	tests/e2e_pipeline.sh
	tests/e2e_firewall.sh
	tests/e2e_apply.sh
	tests/e2e_apply_nat_lb.sh
	tests/e2e_state_version.sh
	tests/e2e_gc.sh
	tests/fuzz_smoke.sh
	tests/e2e_events.sh
	tests/e2e_capture.sh
	tests/e2e_trace.sh
	tests/diff_iptables.sh
	tests/diff_iptables_import.sh
	tests/api_routes.sh
	tests/e2e_daemon.sh
	tests/e2e_cli_daemon.sh
	tests/e2e_metrics.sh
	tests/metrics_unit.sh
	tests/bench_smoke.sh
)
# Each NF's own tests: its programs (nf/<name>/tests/<t>.c, built to
# build/tests/<t>) and scripts (nf/<name>/tests/*.sh).
for src in nf/*/tests/*.c; do
	case $src in nf/firewall/tests/*) continue ;; esac
	t=${src##*/}
	TESTS+=("build/tests/${t%.c}")
done
for t in nf/*/tests/*.sh; do
	[ -e "$t" ] && TESTS+=("$t")
done

passed=0
failed=0
failures=()
for t in "${TESTS[@]}"; do
	[ -n "${1:-}" ] && [[ "$t" != *"$1"* ]] && continue
	echo "=== $t"
	if [ ! -x "$t" ]; then
		echo "FAIL: $t is missing or not executable"
		failed=$((failed + 1))
		failures+=("$t")
		continue
	fi
	out=$(mktemp)
	"$t" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^PASS: ' "$out")
	f=$(grep -c '^FAIL: ' "$out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $t exited with status $rc"
		f=1
	fi
	if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL: $t ran no test"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -ne 0 ] && failures+=("$t")
	rm -f "$out"
done
echo
[ ${#failures[@]} -ne 0 ] && echo "failing: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
