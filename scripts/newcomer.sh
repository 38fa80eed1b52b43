#!/usr/bin/env bash
# A newcomer's first minutes, as CI checks them: clone the repository into a temporary folder, run the README's
# set-up commands exactly (npm ci, then npm start, which must answer /readyz within 10 seconds of a first start),
# load generated data with `npm run loadgen` and compare the API with the answers it writes; then npm run demo,
# and read a summary, a page of logs and an export with the printed token, as the README's tour does.
# Exits non-zero on the first thing that does not work.
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
base="http://127.0.0.1:$port"

# npm start, first start: ready within 10 seconds, on its own ./data.
began=$(date +%s%N)
npm start >"$work/start.log" 2>"$work/start-err.log" &
pid=$!
ready=
for _ in $(seq 1 200); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1; then ready=$(( ($(date +%s%N) - began) / 1000000 )); break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$work/start.log" "$work/start-err.log"; echo "newcomer: npm start exited"; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "newcomer: npm start not ready after 20 s"; exit 1; }
echo "npm start: ready in $ready ms (first start)"
[ "$ready" -le 10000 ] || { echo "newcomer: npm start took over 10 s to answer /readyz"; exit 1; }
token=$(grep -o 'eyJ[A-Za-z0-9_.-]*' "$work/start.log" | head -n 1)
[ -n "$token" ] || { cat "$work/start.log"; echo "newcomer: no token printed on first start"; exit 1; }

# Generated events through POST /events, then every expected answer loadgen wrote compared with the API's.
npm run -s loadgen -- --events 20000 --seed 11 --samples 8 --answers "$work/answers.json" \
  --ask "/reports/usage-summary?start_date=2025-01-01&end_date=2025-12-31" >"$work/loadgen.log"
TALLY_BASE="$base" TALLY_TOKEN="$token" node -e '
  const { answers } = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  (async () => {
    let wrong = 0;
    for (const a of answers) {
      const r = await fetch(process.env.TALLY_BASE + a.path, { headers: { authorization: "Bearer " + process.env.TALLY_TOKEN } });
      const body = await r.json();
      delete body.next_cursor;
      if (JSON.stringify(body) !== JSON.stringify(a.expected)) {
        wrong++;
        console.error("differs:", a.path, JSON.stringify(body).slice(0, 300), "expected", JSON.stringify(a.expected).slice(0, 300));
      }
    }
    console.log(`loadgen answers: ${answers.length - wrong} of ${answers.length} equal to the API`);
    process.exit(wrong === 0 ? 0 : 1);
  })();
' "$work/answers.json"
kill -TERM "$pid"
wait "$pid" || true
pid=

npm run demo >"$work/out.log" 2>"$work/err.log" &
pid=$!
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
