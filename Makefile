# Two commands: `make run` (the Titanic pipeline end to end) and `make test`. Both set up .venv first, once.
SHELL := /bin/bash
PIPELINE ?= titanic
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# TFX 1.16 needs tf.keras = tf-keras, decided when TensorFlow is first imported.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 1

.PHONY: help run test test-fast test-full lint format engines score new-pipeline bench bench-pipeline bench-vs-keras bench-serving bench-drift bench-kubeflow bench-scale forecast serve promote rollback deploy skew kubeflow retrain lineage verify-env data results lock venv clean

.DEFAULT_GOAL := help
help:
	@echo "The two commands:"
	@echo "  make run [PIPELINE=titanic|cifar2|imdb|covid|<yours>]   the pipeline end to end (local Beam, SQLite MLMD)"
	@echo "  make test                                    what CI runs (make test-fast: no pipeline run; make test-full: all)"
	@echo "Your data:     make new-pipeline NAME= DATA= LABEL= [TASK=]    make retrain PIPELINE=  (a new span-N)"
	@echo "Results:       make results | lineage [VERSION=] | forecast | data PIPELINE="
	@echo "Serving:       make serve [BATCHING=1] [LOG_REQUESTS=DIR] | promote PIPELINE= VERSION= LABEL=stable|canary"
	@echo "               make rollback PIPELINE= | skew PIPELINE= | deploy"
	@echo "               make score [PIPELINE=] INPUT= OUTPUT=   (Spark: a standalone cluster, or SPARK_MASTER)"
	@echo "Kubeflow:      make kubeflow [PIPELINE=] KFP_IMAGE=registry/repo:tag   (docs/kubeflow.md)"
	@echo "Benchmarks:    make bench [ONLY=] | bench-pipeline | bench-vs-keras | bench-serving | bench-drift"
	@echo "               make bench-kubeflow | bench-scale"
	@echo "Environment:   make venv | verify-env | lock | clean | engines (BEAM=flink's, fetched and verified)"
	@echo "Code:          make lint | format   (the rooms' layers and the style: docs/layout.md)"
	@echo "Settings are environment variables (README, Configuration), e.g. make run PIPELINE=imdb EPOCHS=2"

run: $(STAMP) $(if $(filter flink,$(BEAM)),engines)
	$(PY) -m runners.run $(PIPELINE)

# Three tiers (README, "Tests"): test-fast (no pipeline run, minutes), test (what CI runs: every guarantee end to
# end), test-full (+ the slow variants: run it when a change touches setup.py, constraints.txt, the Dockerfile,
# runners/ or Beam code). PYTEST_ARGS: more pytest arguments, e.g. PYTEST_ARGS="-k serving -x"
test-fast: $(STAMP)
	TEST_TIER=fast $(PY) -m pytest tests -m "not pipeline and not slow" $(PYTEST_ARGS)

test: $(STAMP) engines
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

test-full: $(STAMP) engines
	$(PY) -m runners.engines fetch seaweedfs
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The rooms' layers (import-linter) and the style (ruff), as make test-fast checks them (tests/test_rooms.py)
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix --select I,F401 .
	$(VENV)/bin/ruff format .

# The engines BEAM=flink starts (Flink from PyPI, Beam's Flink job server from Maven Central), pinned in engines/,
# verified and cached outside the checkout (ENGINES_DIR, default ~/.cache/eat-tf2-tfx/engines); seconds once cached
engines: $(STAMP)
	$(PY) -m runners.engines fetch

# Every figure of the speed and quality targets, side by side on this machine (about 45 min); ONLY=titanic,...
bench: $(STAMP)
	$(PY) bench/all.py $(if $(ONLY),--only $(ONLY))

bench-pipeline: $(STAMP)
	$(PY) bench/pipeline_bench.py $(PIPELINE)

data: $(STAMP)
	$(PY) -m data.fetch $(PIPELINE)

# Your own table as a pipeline: pipelines/$(NAME)/ drafted from the files in DATA, LABEL the column to predict
new-pipeline: $(STAMP)
	@if [ -z "$(NAME)" ] || [ -z "$(DATA)" ] || [ -z "$(LABEL)" ]; then \
	  echo "usage: make new-pipeline NAME=<name> DATA=<folder> LABEL=<column> [TASK=binary|multiclass|regression]" >&2; \
	  exit 2; fi
	$(PY) -m scaffold.new_pipeline "$(NAME)" "$(DATA)" "$(LABEL)" $(if $(TASK),--task $(TASK))

# Bulk scoring on Spark: a standalone cluster of SPARK_WORKERS (default 2) started for the command from the
# pyspark wheel, or SPARK_MASTER=spark://host:port's; INPUT a CSV or Parquet table, OUTPUT a Parquet folder
score: $(STAMP)
	@if [ -z "$(INPUT)" ] || [ -z "$(OUTPUT)" ]; then \
	  echo "usage: make score [PIPELINE=titanic] INPUT=<table.csv|parquet> OUTPUT=<scored.parquet> [VERSION=]" >&2; \
	  exit 2; fi
	$(PY) -m serving.spark_batch --model $(PIPELINE) --input "$(INPUT)" --output "$(OUTPUT)" $(if $(VERSION),--version $(VERSION))

results: $(STAMP)
	$(PY) -m metadata.results $(PIPELINE)

venv: $(STAMP)

# The install is redone only when what it depends on changes. editable_mode=compat: the checkout itself goes on
# sys.path (a .pth line), as a container's /app does, instead of setuptools' import hook, which would keep
# finding the project after a test removed the checkout from sys.path to play an image without it.
$(STAMP): constraints.txt setup.py pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3,10),(3,9)) else 1)' 2>/dev/null; then \
	  interp=$$(scripts/find-python) || exit 1; \
	  echo "==> creating $(VENV) with $$interp"; \
	  rm -rf $(VENV); "$$interp" -m venv $(VENV); \
	fi
	@echo "==> installing pinned dependencies (constraints.txt) into $(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[serving,spark,s3,dev]" \
	  --config-settings editable_mode=compat
	@touch $(STAMP)

# Re-resolve constraints.txt from setup.py's requirements and every extra (needs uv: `pip install uv`).
lock:
	uv pip compile setup.py --all-extras --python-version 3.10 --python-platform x86_64-manylinux_2_36 -o constraints.txt

clean:
	rm -rf outputs build

bench-vs-keras: $(STAMP)
	$(PY) bench/pipeline_vs_keras.py $(PIPELINE)

forecast: $(STAMP)
	$(PY) -m pipelines.covid.forecast

REST_PORT ?= 8501
GRPC_PORT ?= 8500
# One server process per core, at most two by default: under concurrency each process runs one request's Python
# at a time (the GIL), so more cores need more processes; each holds its own copy of the models.
SERVING_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 2 ? n : 2 )))
# LOG_REQUESTS=DIR logs the inputs of answered requests for `make skew` (serving/request_log.py); SERVE_ARGS: more
# serving.server flags, e.g. SERVE_ARGS="--log-sample-rate 0.1 --log-max-mb 100"
# With <serving root>/models.config (written by `make promote` or a PUSH_LABEL=canary run) the server serves what it
# lists, labels included, re-reading it every 2 s; without it, every model folder, newest version. Metrics are
# always on (serving/deploy/monitoring.config); BATCHING=1 merges concurrent requests (serving/deploy/batching.config).
SERVING_ROOT ?= $(or $(SERVING_DIR),$(or $(OUTPUT_DIR),outputs)/serving)
MODEL_CONFIG ?= $(SERVING_ROOT)/models.config
serve: $(STAMP)
	$(PY) -m serving.server --serving-root $(SERVING_ROOT) --rest-port $(REST_PORT) --grpc-port $(GRPC_PORT) \
	  --workers $(SERVING_WORKERS) --monitoring_config_file serving/deploy/monitoring.config \
	  $(if $(wildcard $(MODEL_CONFIG)),--model_config_file $(MODEL_CONFIG) --model_config_file_poll_wait_seconds 2 \
	    --allow_version_labels_for_unavailable_models) \
	  $(if $(filter 1 true yes,$(BATCHING)),--enable_batching --batching_parameters_file serving/deploy/batching.config) \
	  $(if $(LOG_REQUESTS),--log-requests $(LOG_REQUESTS)) $(SERVE_ARGS)

# Labels (core/promotion.py): LABEL=canary serves VERSION beside stable; LABEL=stable gives it the traffic;
# rollback points stable at the version before. Each is recorded in the pipeline's ML Metadata.
promote: $(STAMP)
	@test -n "$(VERSION)" || { echo "usage: make promote PIPELINE=<name> VERSION=<version> LABEL=stable|canary"; exit 2; }
	$(PY) -m ops.promote promote $(PIPELINE) $(VERSION) $(or $(LABEL),stable)

rollback: $(STAMP)
	$(PY) -m ops.promote rollback $(PIPELINE)

# outputs/deploy/: KServe and Kubernetes manifests for every pipeline in the registry (yours too), and an entry for
# each in <serving root>/models.config, the one config file `make serve`, `make promote` and the manifests read
deploy: $(STAMP)
	$(PY) -m ops.deploy

# The logged traffic (LOG_REQUESTS, default outputs/request_logs) against the served model's training data
skew: $(STAMP)
	$(PY) -m metadata.skew $(PIPELINE) $(if $(LOG_REQUESTS),--logs $(LOG_REQUESTS)) $(if $(VERSION),--version $(VERSION))

bench-serving: $(STAMP)
	$(PY) bench/serving_bench.py --workers $(SERVING_WORKERS)

bench-drift: $(STAMP)
	$(PY) bench/drift_bench.py

bench-scale: $(STAMP)
	$(PY) bench/scale_bench.py $(if $(SCALES),--scales $(SCALES)) $(if $(MODES),--modes $(MODES))

bench-kubeflow: $(STAMP)
	$(PY) bench/kubeflow_bench.py $(if $(filter command line environment,$(origin PIPELINE)),$(PIPELINE))

kubeflow: $(STAMP)
	$(PY) -m runners.kubeflow $(if $(filter command line environment,$(origin PIPELINE)),$(PIPELINE))

# A new batch of data goes in DATA_DIR/<dataset>/span-N/ (same files as the dataset has); the run ingests the
# newest span, compares the new model with the last blessed one and pushes only a model that passes.
retrain: $(STAMP)
	$(PY) -m runners.run $(PIPELINE) --retrain

lineage: $(STAMP)
	$(PY) -m metadata.lineage $(PIPELINE) $(if $(VERSION),--version $(VERSION))

verify-env: $(STAMP)
	$(PY) -m ops.verify_env
