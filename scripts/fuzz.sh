#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API with Schemathesis (from PyPI, written elsewhere): starts `npm start` on
# a temporary DATA_DIR and a free port, loads a small generated dataset, and lets Schemathesis derive requests
# from GET /openapi.json. Fails on any 5xx, any response that breaks the document (status, content type,
# schema) and any invalid input that is not refused with a 4xx. Used by `npm run test:fuzz` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Generated cases per operation in the fuzzing phase (the examples and coverage phases do not depend on it).
# 50 reaches all 28 operations with the same warnings as 100 (2,602 cases against 3,660; the script took
# 104 s against 148 s side by side on a loaded 2-core machine).
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-50}

if ! command -v schemathesis >/dev/null 2>&1 || ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

data_dir=$(mktemp -d -t tally-fuzz-XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
log="$data_dir/server.log"
export DATA_DIR="$data_dir" PORT="$port" HOST=127.0.0.1 LOG_LEVEL=warn
# The fuzzer sends thousands of requests as one identity: the per-identity limit is not under test here.
export RATE_LIMIT_PER_MINUTE=1000000
# POST /reports/export creates jobs: the daily export quota is not under test here either.
export EXPORT_JOBS_PER_DAY=1000000
# Nor the per-address bound of signed downloads (the fuzzer asks /downloads/* thousands of times from one address).
export DOWNLOAD_RATE_LIMIT_PER_MINUTE=1000000
unset KAFKA_BROKERS CLICKHOUSE_URL AUTH_JWT_SECRET AUTH_ISSUER AUTH_AUDIENCE

server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$data_dir"
}
trap cleanup EXIT

node --import tsx bin/start.ts >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then cat "$log"; echo "fuzz: the service did not start"; exit 1; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

npm run -s loadgen -- --events 5000 --seed 3 >/dev/null
# Every scope, so that no operation is refused before its own validation: the export, key and /clickhouse routes
# too (query:sql and keys:admin are implied by no other scope).
token=$(npm run -s token -- --sub fuzz --scope "read:analytics write:events report_admin query:sql keys:admin")
# The token as the document's "bearer" scheme. Given as a plain Authorization header instead, Schemathesis also
# filled the other scheme an operation allows (X-API-Key) with generated values, and the service refuses a
# request with both (401): the export and key routes were never reached.
printf '[auth.openapi.bearer]\nbearer = "${FUZZ_TOKEN}"\n' >"$data_dir/schemathesis.toml"
export FUZZ_TOKEN="$token"

# Checks: no 5xx; statuses, content types and bodies as documented; invalid input refused with a 4xx;
# auth enforced; unknown methods answered 405 with Allow. Not run: positive_data_acceptance, because some
# schema-valid inputs are refused by rules OpenAPI cannot state (start_date after end_date, dates outside
# 1970..2148, a cursor this API never issued) and that refusal is the contract; the resource-lifecycle checks
# (use_after_free, ensure_resource_availability, object_level_authorization) need routes that create resources.
# From the temporary directory: Schemathesis keeps a cache (.schemathesis/) in its working directory.
# Two workers: one Schemathesis process left a core idle (102 s with one, 93 with two, the same 3,660 cases).
(cd "$data_dir" && schemathesis run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth,unsupported_method,allow_header_conformance \
  --max-examples "$MAX_EXAMPLES" \
  --phases examples,coverage,fuzzing \
  --seed "${FUZZ_SEED:-20251}" \
  --request-timeout 30 \
  --workers "${FUZZ_WORKERS:-2}")
