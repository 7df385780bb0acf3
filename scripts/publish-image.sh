#!/usr/bin/env bash
# Builds one image of the project and pushes it to a registry. Called by publish_producer.sh,
# publish_consumer.sh and publish_rabbit.sh, which name the image, Dockerfile and build context.
#   scripts/publish-image.sh IMAGE DOCKERFILE CONTEXT [--registry R] [--tag T] [--dry-run] [--help]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=$1 DOCKERFILE=$2 CONTEXT=$3
shift 3
SCRIPT=${PUBLISH_SCRIPT:-publish-image.sh}

usage() {
  cat <<USAGE
Usage: ./$SCRIPT --registry REGISTRY [--tag TAG] [--dry-run]

Builds $DOCKERFILE (context: $CONTEXT) and pushes REGISTRY/$IMAGE:TAG, with docker or podman
(whichever answers; docker first).

  --registry R  registry host and optional namespace, e.g. 127.0.0.1:5000 or ghcr.io/acme
                (default: \$REGISTRY)
  --tag T       image tag (default: \$TAG, else the git short sha of HEAD)
  --dry-run     print the commands instead of running them (needs no engine)
  --help        this text

Flags survive sudo, which drops the environment: sudo ./$SCRIPT --registry R --tag T
USAGE
}

die() {
  printf '%s: %s\n' "$SCRIPT" "$*" >&2
  exit 1
}

registry=${REGISTRY:-} tag=${TAG:-} dry_run=0
while [ $# -gt 0 ]; do
  case $1 in
    --registry) [ $# -ge 2 ] || die "--registry needs a value"; registry=$2; shift 2 ;;
    --registry=*) registry=${1#*=}; shift ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag=$2; shift 2 ;;
    --tag=*) tag=${1#*=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf '%s: unknown option %s\n\n' "$SCRIPT" "$1" >&2; usage >&2; exit 2 ;;
  esac
done

registry=${registry%/}
[ -n "$registry" ] || die "no registry: pass --registry HOST[:PORT][/NAMESPACE] or set REGISTRY"
if [ -z "$tag" ]; then
  tag=$(git rev-parse --short HEAD 2>/dev/null) || die "no tag: pass --tag or set TAG (not a git checkout)"
fi
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag '$tag' (letters, digits, _ . -; at most 128)"
ref="$registry/$IMAGE:$tag"

engine=
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then
    engine=$candidate
    break
  fi
done

if [ "$dry_run" = 1 ]; then
  shown=${engine:-docker}
  echo "$shown build -f $DOCKERFILE -t $ref $CONTEXT"
  echo "$shown push $ref"
  exit 0
fi

[ -n "$engine" ] || die "no container engine answers (tried docker info, podman info): start Docker or Podman"

# Fail before a long build when nothing listens at the registry. docker and podman speak plain HTTP
# only to localhost registries unless configured otherwise, so HTTPS is tried first.
registry_host=${registry%%/*}
if command -v curl >/dev/null 2>&1; then
  code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "https://$registry_host/v2/" || true)
  [[ $code =~ ^(200|401)$ ]] || code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "http://$registry_host/v2/" || true)
  [[ $code =~ ^(200|401)$ ]] || die "no registry answers at $registry_host (GET /v2/ over https and http: '${code:-nothing}')"
fi

echo "$SCRIPT: $engine build -f $DOCKERFILE -t $ref $CONTEXT"
"$engine" build -f "$DOCKERFILE" -t "$ref" "$CONTEXT"
echo "$SCRIPT: $engine push $ref"
"$engine" push "$ref"
digest=$("$engine" image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep -F "$registry/$IMAGE@" | head -n 1 || true)
echo "$SCRIPT: pushed $ref${digest:+ as $digest}"
