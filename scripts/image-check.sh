#!/usr/bin/env bash
# The image's steps without Docker (CI has no engine): in a clean temporary folder, the Dockerfile's build
# (npm run build into dist/), its production install (npm ci --omit=dev, from npm's cache when it can), then its
# CMD with the image's environment, which must answer /readyz with 200. Exits non-zero on the first thing that
# does not work; removes the folder either way.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d -t tally-image-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
began=$(date +%s)
cd "$repo"

# The image's command, read from the Dockerfile so this check cannot drift from it: a JSON-form CMD.
cmd_json=$(grep -E '^CMD \[' Dockerfile | tail -n 1 | sed -E 's/^CMD //')
mapfile -t cmd < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$cmd_json")
[ "${cmd[0]:-}" = node ] || { echo "image-check: the Dockerfile's CMD must run node, got: $cmd_json"; exit 1; }
grep -q 'npm ci --omit=dev' Dockerfile || { echo "image-check: the Dockerfile's runtime must install with npm ci --omit=dev"; exit 1; }

# The build stage: the repository's files (tracked and new, not ignored), compiled with the repository's dev
# dependencies, into the runtime folder's dist/.
mkdir -p "$work/src" "$work/app"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/src" 2>/dev/null || true
ln -s "$repo/node_modules" "$work/src/node_modules"
(cd "$work/src" && npm run -s build -- --out "$work/app/dist") >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; echo "image-check: npm run build failed"; exit 1; }

# The production install, as the deps stage does it; npm's cache spares chdb's 540 MB download.
cp "$work/src/package.json" "$work/src/package-lock.json" "$work/app/"
(cd "$work/app" && npm ci --omit=dev --prefer-offline --no-audit --no-fund) >"$work/npm-ci.log" 2>&1 ||
  { tail -20 "$work/npm-ci.log"; echo "image-check: npm ci --omit=dev failed"; exit 1; }
[ ! -e "$work/app/node_modules/tsx" ] || { echo "image-check: tsx is installed in production"; exit 1; }
[ ! -e "$work/app/node_modules/typescript" ] || { echo "image-check: typescript is installed in production"; exit 1; }

# The runtime: the image's CMD with its environment (loopback instead of 0.0.0.0 here), a fresh data dir.
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
(
  cd "$work/app"
  exec env -u KAFKA_BROKERS -u CLICKHOUSE_URL -u AUTH_JWT_SECRET -u DATABASE_URL -u RATE_LIMIT_REDIS_URL \
    NODE_ENV=production HOST=127.0.0.1 PORT="$port" DATA_DIR="$work/data" LOG_LEVEL=warn "${cmd[@]}"
) >"$work/run.log" 2>&1 &
pid=$!
status=
for _ in $(seq 1 300); do
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)
  [ "$status" = 200 ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/run.log"; echo "image-check: ${cmd[*]} exited"; exit 1; }
  sleep 0.2
done
[ "$status" = 200 ] || { tail -20 "$work/run.log"; echo "image-check: /readyz answered ${status:-nothing} after 60 s"; exit 1; }
# /docs serves Swagger UI from a production dependency (swagger-ui-dist), not from a CDN.
docs=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/docs/swagger-ui-bundle.js" || true)
[ "$docs" = 200 ] || { echo "image-check: /docs/swagger-ui-bundle.js answered ${docs:-nothing}"; exit 1; }
echo "image-check: ${cmd[*]} answered /readyz 200 (and /docs) from production dependencies only ($(($(date +%s) - began)) s)"
