#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Differential test of the sluice firewall against iptables/ip6tables: the
# same seeded random rule sets and packets through a sluice router and an
# iptables router, every verdict and every rule counter compared.
# Usage: tests/diff_iptables.sh [--seeds N] [--rules N] [--packets N]
#                               [--seed FIRST] [--soak]
# Logic in tests/diff_iptables.py; this wrapper owns cleanup by name.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

ID=$(printf '%s%04x' "$$" "$((RANDOM))" | cut -c1-10)
NAMES=("dtS$ID" "dtA$ID" "dtB$ID" "dtR$ID")
PY_PID=

cleanup() {
	if [ -n "$PY_PID" ] && kill -0 "$PY_PID" 2>/dev/null; then
		kill "$PY_PID" 2>/dev/null
		wait "$PY_PID" 2>/dev/null
	fi
	local ns
	for ns in "${NAMES[@]}"; do
		[ -e "/run/netns/$ns" ] || continue
		nsenter --net="/run/netns/$ns" "$SLUICE" reset >/dev/null 2>&1
		ip netns del "$ns" 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -x "$SLUICE" ]; then
	fail "diff_iptables: $SLUICE not built (run make)"
	exit 1
fi
for t in iptables-legacy-restore ip6tables-legacy-restore iptables-restore ip6tables-restore nsenter; do
	if ! command -v "$t" >/dev/null; then
		fail "diff_iptables: $t not installed"
		exit 1
	fi
done

# Bounded time: the default run takes well under 3 minutes; --soak longer.
LIMIT=600
for a in "$@"; do [ "$a" = --soak ] || [ "$a" = --vary ] && LIMIT=14400; done
SLUICE="$SLUICE" timeout --kill-after=10 "$LIMIT" \
	/usr/bin/python3 "$HERE/diff_iptables.py" --id "$ID" "$@" &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=
if [ "$rc" -eq 124 ]; then
	fail "diff_iptables: timed out after ${LIMIT}s"
fi
exit "$rc"
