#!/usr/bin/env bash
# One command for the whole pipeline. See ./run.sh --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
  cat <<'EOF'
Usage: ./run.sh [--docker | --local] [--help]

Starts the task pipeline: PostgreSQL, RabbitMQ, the producer (API on PORT, default 3000) and two
consumers.

  (no option)  --docker when a Docker engine answers, --local otherwise
  --docker     docker compose (or docker-compose) up --build, in the background; waits until every
               container is healthy and prints the URLs. Needs nothing else on this machine: the
               tasks CLI runs in a container too (docker-compose run --rm tasks 100). Stop:
               docker-compose down (add -v to also delete the data).
  --local      no containers: installs npm dependencies if needed (npm ci), builds, checks that
               this machine's PostgreSQL and RabbitMQ answer (DATABASE_URL, AMQP_URL), creates the
               database if missing, runs the producer and two consumers as local processes with
               prefixed logs. Ctrl-C stops them all.
  --help       this text

Settings: .env, same names as .env.example (the shell wins over .env). When no STATUS_API_TOKEN
is set, a random one is written to .env (git-ignored).
EOF
}

die() {
  printf 'run.sh: %s\n' "$*" >&2
  exit 1
}

MODE=auto
for arg in "$@"; do
  case $arg in
    --docker) MODE=docker ;;
    --local) MODE=local ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'run.sh: unknown option %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
  esac
done

# A setting as the services will see it: the shell first, then .env, then the given default.
setting() {
  local name=$1 default=$2 value=${!1:-}
  if [ -z "$value" ] && [ -f .env ]; then
    value=$(sed -n "s/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}$name[[:space:]]*=[[:space:]]*//p" .env | tail -n 1)
    value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  fi
  printf '%s' "${value:-$default}"
}

ensure_token() {
  [ -n "$(setting STATUS_API_TOKEN '')" ] && return 0
  local token
  token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  if [ -f .env ]; then
    grep -v '^[[:space:]]*STATUS_API_TOKEN[[:space:]]*=' .env >.env.tmp || true
  else
    printf '# Local settings (git-ignored). Every name and default: .env.example\n' >.env.tmp
  fi
  printf 'STATUS_API_TOKEN=%s\n' "$token" >>.env.tmp
  mv .env.tmp .env
  chmod 600 .env
  echo "run.sh: wrote a new STATUS_API_TOKEN to .env"
}

engine_answers() {
  command -v docker >/dev/null 2>&1 || return 1
  if command -v timeout >/dev/null 2>&1; then timeout 20 docker info >/dev/null 2>&1; else docker info >/dev/null 2>&1; fi
}

COMPOSE=()
find_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' is installed (or use ./run.sh --local)"
  fi
}

# "healthy" for containers with a healthcheck, "running" for the others, else their state.
container_states() {
  local id
  for id in $("${COMPOSE[@]}" ps -q); do
    docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" | sed 's|^/||'
  done
}

run_docker() {
  engine_answers || die "no Docker engine answers (docker info failed): start one, or use ./run.sh --local"
  find_compose
  ensure_token
  local started=$SECONDS
  echo "run.sh: ${COMPOSE[*]} up -d --build"
  "${COMPOSE[@]}" up -d --build
  # The tasks CLI's image (profile tools, never started by up), so that the command printed below
  # starts at once; its layers are the producer image's build stage.
  echo "run.sh: ${COMPOSE[*]} --profile tools build tasks"
  "${COMPOSE[@]}" --profile tools build tasks
  echo "run.sh: waiting for every container to be healthy"
  local deadline=$((SECONDS + 240)) states
  while :; do
    states=$(container_states)
    if [ -n "$states" ] && ! grep -qv -E ' (healthy|running)$' <<<"$states"; then break; fi
    if ((SECONDS > deadline)) || grep -q -E ' (unhealthy|exited|dead)$' <<<"$states"; then
      printf '%s\n' "$states" >&2
      "${COMPOSE[@]}" logs --tail 30 >&2 || true
      die "the stack did not become healthy (above: states and the last log lines)"
    fi
    sleep 2
  done
  printf '%s\n' "$states" | sed 's/^/  /'
  local port mgmt
  port=$(setting PORT 3000)
  mgmt=$(setting RABBITMQ_MANAGEMENT_PORT 15673)
  cat <<EOF

Task pipeline is up (${COMPOSE[*]}, $((SECONDS - started)) s):
  API           http://localhost:$port/api/v1
  Swagger UI    http://localhost:$port/docs
  RabbitMQ UI   http://127.0.0.1:$mgmt  (guest / guest)
  Try it        ${COMPOSE[*]} run --rm tasks 100
  Or with curl  curl -X POST http://localhost:$port/api/v1/create-task -H 'content-type: application/json' -d '{"text":"hi"}'
  Logs          ${COMPOSE[*]} logs -f
  Stop          ${COMPOSE[*]} down          (data stays; add -v to delete it)
EOF
}

run_local() {
  command -v node >/dev/null 2>&1 || die "Node.js >= 20.19 is needed for --local (https://nodejs.org), or start a Docker engine"
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
    die "Node.js >= 20.19 is needed for --local; this is $(node --version)"
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "run.sh: npm ci"
    npm ci --no-audit --no-fund
  fi
  echo "run.sh: npm run build"
  npm run build --silent
  ensure_token
  exec node --conditions=source --import tsx scripts/src/launcher/main.ts
}

case $MODE in
  docker) run_docker ;;
  local) run_local ;;
  auto) if engine_answers; then run_docker; else echo "run.sh: no Docker engine answers: local mode"; run_local; fi ;;
esac
