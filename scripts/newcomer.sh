#!/usr/bin/env bash
# A newcomer's first minutes, as CI checks them: clone the repository into a temporary folder, run the README's
# set-up commands exactly (npm ci, then npm run demo), and read a summary, a page of logs and an export with the
# printed token, as the README's tour does. Exits non-zero on the first thing that does not work.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d -t tally-newcomer-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone -q "$repo" "$work/tally"
cd "$work/tally"
npm ci --no-audit --no-fund >"$work/npm-ci.log" 2>&1 || { tail -20 "$work/npm-ci.log"; exit 1; }

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export PORT="$port"
unset KAFKA_BROKERS CLICKHOUSE_URL AUTH_JWT_SECRET DATA_DIR
npm run demo >"$work/out.log" 2>"$work/err.log" &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 120); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/out.log" "$work/err.log"; echo "newcomer: npm run demo exited"; exit 1; }
  sleep 0.5
done
curl -fsS "$base/readyz" >/dev/null
token=$(grep -o 'eyJ[A-Za-z0-9_.-]*' "$work/out.log" | head -n 1)
[ -n "$token" ] || { cat "$work/out.log"; echo "newcomer: no token printed"; exit 1; }
auth="Authorization: Bearer $token"

start=$(node -e 'console.log(new Date(Date.now()-30*864e5).toISOString().slice(0,10))')
end=$(node -e 'console.log(new Date(Date.now()-864e5).toISOString().slice(0,10))')
summary=$(curl -fsS -H "$auth" "$base/reports/usage-summary?start_date=$start&end_date=$end")
echo "summary: $summary"
node -e 'const s=JSON.parse(process.argv[1]); if (!(s.active_users > 0 && s.total_sessions > 0)) process.exit(1)' "$summary"

logs=$(curl -fsS -H "$auth" "$base/logs/system-events?severity=error&limit=5")
node -e 'const l=JSON.parse(process.argv[1]); if (l.events.length !== 5 || !(l.total_pages > 1)) process.exit(1)' "$logs"
echo "logs: 5 errors on page 1 of $(node -e 'console.log(JSON.parse(process.argv[1]).total_pages)' "$logs")"

job=$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -X POST "$base/reports/export" \
  -d "{\"report_type\":\"usage-summary\",\"format\":\"csv\",\"start_date\":\"$start\",\"end_date\":\"$end\"}")
id=$(node -e 'console.log(JSON.parse(process.argv[1]).job_id)' "$job")
url=
for _ in $(seq 1 120); do
  status=$(curl -fsS -H "$auth" "$base/reports/export/$id")
  url=$(node -e 'const s=JSON.parse(process.argv[1]); console.log(s.status === "completed" ? s.download_url : "")' "$status")
  [ -n "$url" ] && break
  sleep 0.5
done
[ -n "$url" ] || { echo "newcomer: export did not complete: $status"; exit 1; }
rows=$(curl -fsS "$url" | wc -l)
echo "export: $rows lines"
[ "$rows" -gt 30 ]
echo "newcomer: the README's quick start works"
