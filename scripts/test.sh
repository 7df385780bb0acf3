#!/usr/bin/env bash
# The one test command (README, `npm test`, .ci/run): installs, makes sure PostgreSQL and RabbitMQ
# answer, then lint, types and every test tier. Ends with its own line "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RESULTS="$ROOT/.test-results"
rm -rf "$RESULTS" && mkdir -p "$RESULTS"

STAGES_FAILED=0
STAGE_NAMES=()
STAGE_RESULTS=()
stage() {
  local name=$1
  shift
  local start=$SECONDS
  echo "::: $name"
  "$@"
  local rc=$?
  local took=$((SECONDS - start))
  STAGE_NAMES+=("$name")
  if [ $rc -eq 0 ]; then STAGE_RESULTS+=("ok ${took}s"); else STAGE_RESULTS+=("FAILED (exit $rc) ${took}s"); fi
  echo "::: $name: $([ $rc -eq 0 ] && echo ok || echo "failed, exit $rc") in ${took}s"
  return $rc
}

install_deps() {
  if [ "${CI:-}" = "true" ] || [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  else
    echo "node_modules is up to date"
  fi
}

ensure_services() {
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    echo "PostgreSQL is down: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || return 1
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "RabbitMQ is down: starting it"
    rabbitmq-server -detached || return 1
    for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && echo "RabbitMQ answers on 5672"
}

ensure_chromium() {
  # The browser tests (Swagger UI, the operator console) drive Debian's Chromium through playwright-core.
  if command -v chromium >/dev/null; then echo "chromium: $(chromium --version 2>/dev/null)"; return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium"
  else
    echo "chromium is missing and cannot be installed here (needs root and apt-get)"
  fi
  return 0
}

ensure_promtool() {
  # The metrics lint test runs promtool (Debian's prometheus package) on both services' /metrics.
  if command -v promtool >/dev/null; then echo "promtool: $(promtool --version 2>&1 | head -n 1)"; return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) ||
      echo "could not install promtool (apt-get install prometheus failed): the metrics lint test will fail"
  else
    # Only here may the test skip: nothing this script can do installs it.
    export PROMTOOL_UNAVAILABLE="promtool is missing and cannot be installed here (needs root and apt-get: apt-get install prometheus)"
    echo "$PROMTOOL_UNAVAILABLE"
  fi
  return 0
}

run_vitest() {
  local out=$1
  shift
  npx vitest run "$@" --reporter=default --reporter=json --outputFile.json="$out"
}

stage install install_deps || { echo "0 passed, 1 failed"; exit 1; }
stage services ensure_services || { echo "0 passed, 1 failed"; exit 1; }
stage chromium ensure_chromium
stage promtool ensure_promtool
stage build npm run build --silent || STAGES_FAILED=$((STAGES_FAILED + 1))
stage lint npx biome check . || STAGES_FAILED=$((STAGES_FAILED + 1))
stage types npx tsc -p tsconfig.json --noEmit || STAGES_FAILED=$((STAGES_FAILED + 1))
# The tiers (vitest.config.ts), fastest first, each its own stage so its duration is printed.
TIERS=(unit integration resilience system)
REPORTS=()
for tier in "${TIERS[@]}"; do
  REPORTS+=("$RESULTS/$tier.json")
  stage "$tier" run_vitest "$RESULTS/$tier.json" --project "$tier"
done

# The migrated template databases the tiers copied from (testkit's isolation) go with the run; a
# later run builds its own in a second. Test databases and vhosts are dropped by their own files.
drop_templates() {
  local url=${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
  psql "$url" -Atqc "select datname from pg_database where datname like 'tp\_template\_%'" |
    while read -r db; do psql "$url" -qc "drop database if exists \"$db\"" || true; done
}
stage cleanup drop_templates

echo
echo "Stage durations:"
for i in "${!STAGE_NAMES[@]}"; do printf '  %-14s %s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}"; done
npx tsx scripts/src/test-summary.ts --extra-failed "$STAGES_FAILED" "${REPORTS[@]}"
