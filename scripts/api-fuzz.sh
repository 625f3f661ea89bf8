#!/usr/bin/env bash
# API fuzzing from the OpenAPI documents (schemathesis, PyPI): a live till (demo mode, its
# own data) and a live cloud (SQLite), authenticated, every documented operation, then
# stateful sequences along the documents' links (a sale opened, filled, paid, returned).
# Passes only with no 5xx and every answer matching its documented status, content type and
# schema. ST_PHASES picks schemathesis's phases (default examples,fuzzing,stateful). Not
# checked yet: "schema-valid request rejected" (the documents' request schemas are looser
# than the servers' rules).
#
#     scripts/api-fuzz.sh [target/debug/tillmesh] [examples per operation, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "${1:-target/debug/tillmesh}")"
examples="${2:-30}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x target/st-venv/bin/st ]; then
  python3 -m venv target/st-venv
  target/st-venv/bin/pip install -q schemathesis
fi
st=target/st-venv/bin/st

till_port=7390
cloud_port=8790
"$bin" terminal --demo --config configs/terminal.example.toml --data-dir "$work/till" \
  --listen "127.0.0.1:$till_port" >"$work/till.log" 2>&1 &
pids+=($!)
sed -e "s|path = \"data/cloud/cloud.db\"|path = \"$work/cloud.db\"|" \
  -e "s|listen = \"127.0.0.1:8700\"|listen = \"127.0.0.1:$cloud_port\"|" \
  -e "s|master_seed = \"configs/catalog.example.json\"|master_seed = \"$PWD/configs/catalog.example.json\"|" \
  configs/cloud.example.toml >"$work/cloud.toml"
"$bin" cloud --config "$work/cloud.toml" >"$work/cloud.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if curl -fs "127.0.0.1:$till_port/health" >/dev/null && curl -fs "127.0.0.1:$cloud_port/health" >/dev/null; then
    break
  fi
  sleep 0.2
done
till_token="$(curl -fs -X POST "127.0.0.1:$till_port/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"employee_id":"M001","pin":"9999"}' | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')"
cloud_token="$("$bin" hq --config "$work/cloud.toml" token --admin 2>/dev/null | tail -1)"

run() {
  local name="$1" url="$2" token="$3"
  shift 3
  echo "--- schemathesis: $name"
  "$st" run "$url/openapi.json" -H "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-path /api/v1/auth/login "$@" \
    --max-examples "$examples" --phases "${ST_PHASES:-examples,fuzzing,stateful}" -w 2 --seed 1 >"$work/$name.st" 2>&1 || {
    cat "$work/$name.st"
    echo "api-fuzz: $name failed" >&2
    exit 1
  }
  grep -E "generated|passed" "$work/$name.st" | tail -1
}
# The till's logout would end the session the run uses.
run till "http://127.0.0.1:$till_port" "$till_token" --exclude-path /api/v1/auth/logout
run cloud "http://127.0.0.1:$cloud_port" "$cloud_token"
echo "api-fuzz: no 5xx, every answer as documented"
