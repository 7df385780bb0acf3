#!/usr/bin/env bash
# Builds and pushes the producer image: ./publish_producer.sh --registry REGISTRY [--tag TAG] [--dry-run]
cd "$(dirname "${BASH_SOURCE[0]}")" && PUBLISH_SCRIPT=$(basename "$0") exec bash scripts/publish-image.sh task-pipeline-producer producer/Dockerfile . "$@"
