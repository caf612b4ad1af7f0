#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The daemon's route table (sluiced --routes, the one static table in
# cmd/sluiced/api.c) and docs/api/openapi.yaml describe the same routes:
# every route is documented, every documented path and method is served.
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh

SLUICED=${SLUICED:-build/sluiced}
routes=$(mktemp)
trap 'rm -f "$routes"' EXIT
if ! "$SLUICED" --routes >"$routes" || [ ! -s "$routes" ]; then
	fail "api_routes: sluiced --routes prints the route table"
	sl_exit
fi
pass "api_routes: sluiced --routes prints $(wc -l <"$routes") routes"

/usr/bin/python3 - "$routes" docs/api/openapi.yaml <<'PY'
import re, sys, yaml

routes_file, doc_file = sys.argv[1], sys.argv[2]
fails = 0
def check(name, ok, detail=""):
    global fails
    print(("PASS: " if ok else "FAIL: ") + name + (("  " + detail) if detail and not ok else ""))
    fails += not ok

code = set()
for line in open(routes_file):
    m, p = line.split()
    code.add((m.upper(), p))
doc = yaml.safe_load(open(doc_file))
check("api_routes: openapi.yaml is OpenAPI 3.0", str(doc.get("openapi", "")).startswith("3.0"))
methods = {"get", "put", "post", "delete", "patch", "head", "options"}
documented = set()
for path, item in (doc.get("paths") or {}).items():
    for m in item:
        if m in methods:
            documented.add((m.upper(), path))
missing = sorted(code - documented)
extra = sorted(documented - code)
check("api_routes: every route in the code is in openapi.yaml", not missing,
      "undocumented: " + ", ".join(" ".join(r) for r in missing))
check("api_routes: every route in openapi.yaml is in the code", not extra,
      "not served: " + ", ".join(" ".join(r) for r in extra))

# Path parameters: each {x} of a path is declared, in the path or the operation.
def resolve(p):
    if "$ref" in p:
        node = doc
        for k in p["$ref"].lstrip("#/").split("/"):
            node = node[k]
        return node
    return p
bad = []
for path, item in (doc.get("paths") or {}).items():
    want = set(re.findall(r"{([^}]+)}", path))
    common = [resolve(p) for p in item.get("parameters", [])]
    for m, op in item.items():
        if m not in methods:
            continue
        ps = common + [resolve(p) for p in op.get("parameters", [])]
        have = {p["name"] for p in ps if p.get("in") == "path"}
        if have != want:
            bad.append("%s %s" % (m.upper(), path))
        if not op.get("responses"):
            bad.append("%s %s: no responses" % (m.upper(), path))
check("api_routes: path parameters declared, responses given", not bad, ", ".join(bad))
sys.exit(1 if fails else 0)
PY
[ $? -eq 0 ] || SL_FAILS=$((SL_FAILS + 1))
sl_exit
