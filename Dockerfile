# The image Kubeflow runs every component in: the same pinned install as `make` (setup.py's parts under
# constraints.txt, then the project itself), with the code baked in so components find their functions by
# dotted path. Build and push:  docker build -t REGISTRY/eat-tf2-tfx:TAG . && docker push REGISTRY/eat-tf2-tfx:TAG
FROM python:3.10-slim

# Java for pyspark (serving/spark_batch.py); nothing else from the OS is needed.
RUN apt-get update && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first (their layer survives code edits): what setup.py declares for the runtime parts, pinned;
# the `dev` extra (the test tools) stays out of the image.
COPY constraints.txt setup.py pyproject.toml ./
RUN mkdir core data modeling serving components orchestration pipelines metadata runners ops scaffold \
    && python -m pip install -c constraints.txt ".[serving,spark,s3]" \
    && python -m pip uninstall -y eat-tf2-tfx && rmdir core data modeling serving components orchestration pipelines metadata runners ops scaffold

# The rooms setup.py installs (docs/layout.md); testing/ (the test doubles) stays out
COPY core ./core
COPY data ./data
COPY modeling ./modeling
COPY serving ./serving
COPY components ./components
COPY orchestration ./orchestration
COPY pipelines ./pipelines
COPY metadata ./metadata
COPY runners ./runners
COPY ops ./ops
COPY scaffold ./scaffold
RUN python -m pip install --no-deps -c constraints.txt -e . --config-settings editable_mode=compat \
    && python -c "import tfx.v1, orchestration.factory, modeling.trainer, serving.server"

# Run as a user without privileges (clusters with the "restricted" Pod Security Standard refuse root pods). The
# code and the installed packages stay root's, read-only to it; it writes only where a task must: its HOME, /tmp
# (Beam's and TensorFlow's temporary files, the launcher's /tmp/kfp_outputs), and the folders KFP's launcher
# downloads input artifacts into (/gcs, /minio, /s3, /oci: backend/src/v2/component/launcher_v2.go LocalPathForURI).
# A numeric USER lets Kubernetes check runAsNonRoot without reading /etc/passwd.
RUN useradd --uid 10001 --user-group --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /gcs /minio /s3 /oci && chown 10001:10001 /gcs /minio /s3 /oci \
    && python -m compileall -q /app/core /app/data /app/modeling /app/serving /app/components /app/orchestration /app/pipelines /app/metadata /app/runners /app/ops /app/scaffold \
    && chmod -R a-w,a+rX /app
ENV HOME=/home/app
USER 10001:10001
