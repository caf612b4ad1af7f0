#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Builds tests/metrics_unit.c with the daemon's page writer
# (cmd/sluiced/metrics.c) under AddressSanitizer and UBSan, runs it, and
# has promtool and prometheus_client read the page it writes: escaping,
# number formats and histograms as the parsers read them.
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh

OUT=build/tests/metrics_unit
PAGE=$(mktemp /tmp/sluice-metrics-unit.XXXXXX)
trap 'rm -f "$PAGE"' EXIT
[ -e build/libsluice.a ] || { fail "metrics_unit: build/libsluice.a missing (run make)"; exit 1; }
mkdir -p build/tests
if ! ${CC:-gcc} -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror \
	-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	-Ibuild -Ibpf/include -Ilib -iquote lib -Inf/firewall -Icmd/sluiced -Itests \
	-o "$OUT" tests/metrics_unit.c cmd/sluiced/metrics.c build/libsluice.a \
	-ljansson -lbpf -lelf -lz -lyaml -lcurl -lpthread -lm; then
	fail "metrics_unit: builds"
	exit 1
fi
"$OUT" "$PAGE" || SL_FAILS=$((SL_FAILS + 1))

if promtool check metrics <"$PAGE" >"$PAGE.err" 2>&1; then
	pass "metrics_unit: promtool reads the page"
else
	fail "metrics_unit: promtool: $(head -3 "$PAGE.err")"
fi
rm -f "$PAGE.err"
/usr/bin/python3 - "$PAGE" <<'PY' || SL_FAILS=$((SL_FAILS + 1))
import math, sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def check(name, ok):
    print(("PASS: " if ok else "FAIL: ") + "metrics_unit: " + name)
    return ok
ok = True
esc = [s for s in fams["t_escape"].samples if s.labels.get("v")]
ok &= check("parser reads the escaped label back", esc and esc[0].labels["v"] == 'a"b\\c\nd')
ok &= check("parser reads HELP back", fams["t_escape"].documentation == 'Help with a \\ backslash,\na newline and "quotes".')
nums = {s.labels["n"]: s.value for s in fams["t_numbers"].samples}
ok &= check("parser reads the numbers back", nums["tenth"] == 0.1 and nums["third"] == 1 / 3 and
            math.isnan(nums["nan"]) and nums["inf"] == math.inf and nums["ninf"] == -math.inf)
h = {(s.name, s.labels.get("le")): s.value for s in fams["t_seconds"].samples if s.labels.get("path") == "/a"}
ok &= check("parser reads the histogram", fams["t_seconds"].type == "histogram" and
            h[("t_seconds_bucket", "+Inf")] == 10 and h[("t_seconds_count", None)] == 10)
sys.exit(0 if ok else 1)
PY
sl_exit
