#!/usr/bin/env bash
# Builds and pushes the rabbit image: ./publish_rabbit.sh --registry REGISTRY [--tag TAG] [--dry-run]
cd "$(dirname "${BASH_SOURCE[0]}")" && PUBLISH_SCRIPT=$(basename "$0") exec bash scripts/publish-image.sh task-pipeline-rabbitmq rabbitmq/Dockerfile rabbitmq "$@"
