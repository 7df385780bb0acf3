#!/usr/bin/env bash
# One command for the whole pipeline. See ./run.sh --help.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

usage() {
  cat <<'EOF'
Usage: ./run.sh [--docker | --local | --cluster] [--help]

Starts the task pipeline: PostgreSQL, RabbitMQ, the producer (API on PORT, default 3000) and two
consumers.

  (no option)  --docker when a Docker engine answers, --local otherwise
  --docker     docker compose (or docker-compose) up --build, in the background; waits until every
               container is healthy and prints the URLs. Needs nothing else on this machine: the
               tasks CLI runs in a container too (docker-compose run --rm tasks 100). Stop:
               docker-compose down (add -v to also delete the data).
  --cluster    --docker with compose's `cluster` profile instead of the single-node stack: three
               RabbitMQ nodes forming one cluster, two producers behind HAProxy, two consumers
               given all three nodes (README, "The cluster profile", says what it costs). Writes a
               random RABBITMQ_ERLANG_COOKIE to .env when none is set.
               Stop: docker-compose --profile cluster down.
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
CLUSTER=
for arg in "$@"; do
  case $arg in
    --docker) MODE=docker ;;
    --local) MODE=local ;;
    --cluster) CLUSTER=1 ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'run.sh: unknown option %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -n "$CLUSTER" ]; then
  if [ "$MODE" = local ]; then
    printf 'run.sh: --cluster runs containers: it does not go with --local\n\n' >&2
    usage >&2
    exit 2
  fi
  MODE=docker
fi

# The services each stack starts by name (their dependencies come along): the single-node stack is
# compose's default; the cluster profile's services replace rabbitmq, producer, haproxy and consumer.
SINGLE_SERVICES=(rabbitmq producer haproxy consumer)
CLUSTER_SERVICES=(rabbitmq-1 rabbitmq-2 rabbitmq-3 producer-cluster haproxy-cluster consumer-cluster)

# A setting as the services will see it: the shell first, then .env, then the given default.
setting() {
  local name=$1 default=$2 value=${!1:-}
  if [ -z "$value" ] && [ -f .env ]; then
    value=$(sed -n "s/^[[:space:]]*\(export[[:space:]]\{1,\}\)\{0,1\}$name[[:space:]]*=[[:space:]]*//p" .env | tail -n 1)
    value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  fi
  printf '%s' "${value:-$default}"
}

# Writes a random value for the setting NAME into .env unless the shell or .env sets one.
ensure_secret() {
  local name=$1
  [ -n "$(setting "$name" '')" ] && return 0
  local value
  value=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  if [ -f .env ]; then
    grep -v "^[[:space:]]*$name[[:space:]]*=" .env >.env.tmp || true
  else
    printf '# Local settings (git-ignored). Every name and default: .env.example\n' >.env.tmp
  fi
  printf '%s=%s\n' "$name" "$value" >>.env.tmp
  mv .env.tmp .env
  chmod 600 .env
  echo "run.sh: wrote a new $name to .env"
}

ensure_token() { ensure_secret STATUS_API_TOKEN; }

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
  for id in $("${COMPOSE[@]}" ${PROFILE[@]+"${PROFILE[@]}"} ps -q); do
    docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" | sed 's|^/||'
  done
}

# Service names of the other stack that are running now: the two stacks publish the same ports.
other_stack_running() {
  local -a others
  if [ -n "$CLUSTER" ]; then others=("${SINGLE_SERVICES[@]}"); else others=("${CLUSTER_SERVICES[@]}"); fi
  "${COMPOSE[@]}" --profile cluster ps --services --filter status=running 2>/dev/null |
    grep -x -F -f <(printf '%s\n' "${others[@]}") | tr '\n' ' ' || true
}

PROFILE=()
run_docker() {
  engine_answers || die "no Docker engine answers (docker info failed): start one, or use ./run.sh --local"
  find_compose
  local -a up=(up -d --build)
  if [ -n "$CLUSTER" ]; then
    PROFILE=(--profile cluster)
    up+=(haproxy-cluster consumer-cluster)
  fi
  local running
  running=$(other_stack_running)
  if [ -n "$running" ]; then
    if [ -n "$CLUSTER" ]; then
      die "the single-node stack is running (${running% }): stop it first with ${COMPOSE[*]} down (its data stays)"
    fi
    die "the cluster profile is running (${running% }): stop it first with ${COMPOSE[*]} --profile cluster down (its data stays), or use ./run.sh --cluster"
  fi
  ensure_token
  if [ -n "$CLUSTER" ]; then ensure_secret RABBITMQ_ERLANG_COOKIE; fi
  local started=$SECONDS
  echo "run.sh: ${COMPOSE[*]} ${PROFILE[*]:+${PROFILE[*]} }${up[*]}"
  "${COMPOSE[@]}" ${PROFILE[@]+"${PROFILE[@]}"} "${up[@]}"
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
      "${COMPOSE[@]}" ${PROFILE[@]+"${PROFILE[@]}"} logs --tail 30 >&2 || true
      die "the stack did not become healthy (above: states and the last log lines)"
    fi
    sleep 2
  done
  printf '%s\n' "$states" | sed 's/^/  /'
  local port mgmt compose what
  port=$(setting PORT 3000)
  mgmt=$(setting RABBITMQ_MANAGEMENT_PORT 15673)
  compose="${COMPOSE[*]}${PROFILE[*]:+ ${PROFILE[*]}}"
  what="${COMPOSE[*]}"
  if [ -n "$CLUSTER" ]; then what="profile cluster, ${COMPOSE[*]}"; fi
  cat <<EOF

Task pipeline is up ($what, $((SECONDS - started)) s):
  API           http://localhost:$port/api/v1
  Swagger UI    http://localhost:$port/docs
  RabbitMQ UI   http://127.0.0.1:$mgmt  (guest / guest)
  Try it        ${COMPOSE[*]} run --rm tasks 100
  Or with curl  curl -X POST http://localhost:$port/api/v1/create-task -H 'content-type: application/json' -d '{"text":"hi"}'
EOF
  if [ -n "$CLUSTER" ]; then
    echo "  Cluster       $compose exec rabbitmq-1 rabbitmqctl cluster_status"
  fi
  cat <<EOF
  Logs          $compose logs -f
  Stop          $compose down          (data stays; add -v to delete it)
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
