#!/usr/bin/env bash
# TensorFlow Serving (the real one) over the serving directory the Pusher writes, on TF Serving's ports: gRPC 8500,
# REST 8501, Prometheus metrics at http://localhost:8501/monitoring/prometheus/metrics. The models, their version
# policies and labels come from <serving dir>/models.config (`make deploy` writes it; `make promote` edits it),
# re-read every 60 s; the working directory is the serving dir, so its relative base paths resolve there.
#   bash serving/deploy/docker-run.sh [SERVING_DIR]      (default: outputs/serving)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
serving_dir="$(cd "${1:-$here/../../outputs/serving}" && pwd)"
test -f "$serving_dir/models.config" || { echo "no $serving_dir/models.config: run make deploy first" >&2; exit 2; }
exec docker run --rm --name tfx-book-serving \
  -p 8500:8500 -p 8501:8501 \
  -v "$serving_dir:/models:ro" \
  -v "$here:/config:ro" \
  -w /models \
  tensorflow/serving:2.16.1 \
  --model_config_file=/models/models.config \
  --model_config_file_poll_wait_seconds=60 \
  --allow_version_labels_for_unavailable_models \
  --file_system_poll_wait_seconds=2 \
  --monitoring_config_file=/config/monitoring.config \
  --enable_batching --batching_parameters_file=/config/batching.config
