"""Training/serving skew end to end: the real server (two workers) logs what 8 concurrent clients send, and
`python -m metadata.skew` (what `make skew` runs) compares it with the served model's training data."""

import concurrent.futures
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from metadata import results
from orchestration.config import PROJECT_ROOT
from pipelines.titanic.spec import SPEC
from serving import request_log
from serving_helpers import Server, grpc_stubs, http

FEATURES = ("Age", "Fare", "Pclass", "SibSp", "Parch", "Sex", "Embarked", "Ticket", "Cabin")


def instances(titanic_data, fare=lambda f: f):
    """The book's test passengers as the raw signature takes them (NaN: a missing number)."""
    with open(titanic_data / "test.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "Age": float(r["Age"]) if r["Age"] else math.nan,
            "Fare": fare(float(r["Fare"])),
            "Pclass": int(r["Pclass"]),
            "SibSp": int(r["SibSp"]),
            "Parch": int(r["Parch"]),
            "Sex": r["Sex"],
            "Embarked": r["Embarked"],
            "Ticket": r["Ticket"],
            "Cabin": r["Cabin"],
        }
        for r in rows
    ]


def send_concurrently(server, rows):
    """8 clients; each row one request, by REST (most) or gRPC (every 5th); returns the Fares answered."""

    def one(i):
        row = rows[i]
        if i % 5:
            status, body, _ = http("POST", f"{server.rest}/v1/models/titanic:predict", {"instances": [row]})
            assert status == 200, body
        else:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "titanic"
            for k in FEATURES:
                dtype = (
                    tf.float32 if k in ("Age", "Fare") else tf.int64 if k in ("Pclass", "SibSp", "Parch") else tf.string
                )
                request.inputs[k].CopyFrom(tf.make_tensor_proto([row[k]], dtype=dtype))
            with grpc_stubs(server) as (prediction, _):
                prediction.Predict(request, timeout=60)
        return row["Fare"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(len(rows))))


def skew_cli(cfg, logs):
    proc = subprocess.run(
        [sys.executable, "-m", "metadata.skew", "titanic", "--logs", str(logs), "--fail-on-skew"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OUTPUT_DIR=str(cfg.output_dir)),
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def serving_root(titanic_run):
    return titanic_run.serving_root("titanic").parent


def test_logged_traffic_against_training_data(titanic_run, titanic_data, serving_root, tmp_path):
    logs = tmp_path / "plain"
    server = Server(serving_root, "--workers", "2", "--log-requests", str(logs), "--log-rotate-seconds", "0.5")
    try:
        assert sum(line.startswith("logging requests under ") for line in server.log_lines) == 1
        answered = send_concurrently(server, instances(titanic_data))
    finally:
        server.stop()
    assert server.proc.returncode == 0
    folder = logs / "titanic"
    assert [p.name for p in folder.iterdir() if not request_log.FILE_PATTERN.match(p.name)] == []  # no partial file
    logged = [tf.train.Example.FromString(r) for r in request_log.read_examples(folder)]
    assert sorted(e.features.feature["Fare"].float_list.value[0] for e in logged) == pytest.approx(sorted(answered))
    missing_age = sum(not e.features.feature["Age"].float_list.value for e in logged)
    assert missing_age == sum(math.isnan(r["Age"]) for r in instances(titanic_data)) > 0  # NaN logged as missing

    code, out = skew_cli(titanic_run, logs)
    assert code == 0 and "skewed features: none" in out, out
    report = Path(out.split("report: ")[-1].strip())
    found = json.loads((report.parent / "skew.json").read_text())
    assert (
        found["examples"] == len(answered)
        and found["version"] == results.last_run("titanic", titanic_run).pushed_version
    )
    assert {f["feature"] for f in found["features"]} == set(SPEC.skew_thresholds)


def test_shifted_fare_is_flagged_and_only_it(titanic_run, titanic_data, serving_root, tmp_path):
    logs = tmp_path / "shifted"
    server = Server(serving_root, "--log-requests", str(logs))
    try:
        send_concurrently(server, instances(titanic_data, fare=lambda f: f + 30.0))
    finally:
        server.stop()
    code, out = skew_cli(titanic_run, logs)
    assert code == 3 and "skewed features: Fare\n" in out, out
    page = open(out.split("report: ")[-1].strip()).read()
    assert 'data-feature="Fare" data-flagged="true"' in page and 'data-plot="Fare"' in page
    assert 'data-feature="Age" data-flagged="false"' in page


def test_skew_without_logs_says_what_to_do(titanic_run, tmp_path):
    code, out = skew_cli(titanic_run, tmp_path / "none")
    assert code == 1 and "no logged requests in" in out and "LOG_REQUESTS=" in out
