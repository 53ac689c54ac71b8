#!/usr/bin/env bash
# TensorFlow Serving (the real one) over the serving directory the Pusher writes, on TF Serving's ports:
# gRPC 8500, REST 8501. New versions are picked up as they are pushed (file system polling).
#   bash serving/deploy/docker-run.sh [SERVING_DIR]      (default: outputs/serving)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
serving_dir="$(cd "${1:-$here/../../outputs/serving}" && pwd)"
exec docker run --rm --name tfx-book-serving \
  -p 8500:8500 -p 8501:8501 \
  -v "$serving_dir:/models:ro" \
  -v "$here/models.config:/config/models.config:ro" \
  tensorflow/serving:2.16.1 \
  --model_config_file=/config/models.config \
  --model_config_file_poll_wait_seconds=60 \
  --file_system_poll_wait_seconds=2
