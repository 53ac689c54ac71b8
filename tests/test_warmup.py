"""Model warm-up end to end: the Pusher writes TF Serving's warm-up file (assets.extra/tf_serving_warmup_requests,
PredictionLogs built from eval examples and checked against the model); the server replays it before a version is
AVAILABLE, through the path a request takes, honouring --enable_model_warmup and
--num_request_iterations_for_warmup (tensorflow_serving/servables/tensorflow/saved_model_warmup_util.cc), and a
version whose warm-up fails is not served, the error naming the record."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from core import layout
from metadata import results
from modeling import warmup_requests
from serving import warmup
from serving.repository import load
from serving_helpers import Server, http, save_linear, save_typed, wait_until


def predict_record(inputs: dict, signature: str = "serving_default") -> bytes:
    entry = prediction_log_pb2.PredictionLog()
    request = entry.predict_log.request
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return entry.SerializeToString()


def linear_version(folder: Path, bias: float, records=None, raw: bytes = None) -> Path:
    os.rename(save_linear(folder, bias), folder)
    if records is not None or raw is not None:
        target = folder / layout.WARMUP_REQUESTS
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(raw if raw is not None else warmup_requests.as_tfrecord(records))
    return folder


GOOD = [predict_record({"x": np.array([[1.0, 2.0]], np.float32)}), predict_record({"x": np.zeros((3, 2), np.float32)})]


def replayed(server) -> list:
    return [line for line in server.log_lines if "warm-up replayed" in line]


def test_a_version_is_warmed_up_before_it_serves_as_often_as_asked(tmp_path):
    root = tmp_path / "root"
    linear_version(root / "linear" / "1", 1.0, GOOD)
    server = Server(root, "--num_request_iterations_for_warmup", "3")
    try:
        wait_until(lambda: http("GET", f"{server.rest}/v1/models/linear")[0] == 200, 60, "linear served")
        status, body, _ = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 1.0]]})
        assert (status, body["predictions"]) == (200, [[2.0]])
        lines = replayed(server)
        assert len(lines) == 1 and re.search(
            r"linear version 1: warm-up replayed 2 record\(s\) x 3 in [0-9.]+ ms", lines[0]
        )
    finally:
        server.stop()


def test_warm_up_can_be_turned_off(tmp_path):
    root = tmp_path / "root"
    linear_version(root / "linear" / "1", 1.0, GOOD)
    server = Server(root, "--enable_model_warmup=false")
    try:
        wait_until(lambda: http("GET", f"{server.rest}/v1/models/linear")[0] == 200, 60, "linear served")
        assert replayed(server) == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    "records, raw, reason",
    [
        ([GOOD[0], predict_record({"y": np.zeros((1, 2), np.float32)})], None, "record 1 (predict_log) failed"),
        ([predict_record({"x": np.zeros((1, 2), np.float32)}, "nope")], None, "record 0 (predict_log) failed"),
        (None, b"not a TFRecord at all", "Please verify your warmup data is in TFRecord format"),
    ],
    ids=["wrong-input", "unknown-signature", "not-tfrecord"],
)
def test_a_version_whose_warm_up_fails_is_not_served(tmp_path, records, raw, reason):
    """Version 2's warm-up fails: it is not served, its status says why naming the record, version 1 serves on."""
    root = tmp_path / "root"
    linear_version(root / "linear" / "1", 1.0, GOOD)
    linear_version(root / "linear" / "2", 10.0, records, raw)
    server = Server(root)
    try:
        wait_until(lambda: http("GET", f"{server.rest}/v1/models/linear")[0] == 200, 60, "linear served")
        status, body, _ = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 1.0]]})
        assert (status, body["predictions"]) == (200, [[2.0]])  # version 1's bias
        status, body, _ = http("GET", f"{server.rest}/v1/models/linear/versions/2")
        assert reason in str(body) or any(reason in line for line in server.log_lines), (body, server.log_lines[-5:])
    finally:
        server.stop()


def test_the_builder_writes_a_record_per_signature_that_replays(tmp_path):
    """modeling/warmup_requests.py over a model with a predict signature of four dtypes and a classify one."""
    model_dir = tmp_path / "typed" / "1"
    os.rename(save_typed(model_dir), model_dir)
    examples = []
    for i in range(6):
        example = tf.train.Example()
        example.features.feature["zeta"].int64_list.value.append(i)
        example.features.feature["alpha"].float_list.value.append(0.5 * i)
        example.features.feature["mid"].bytes_list.value.append(b"ab" * i)
        example.features.feature["flag"].int64_list.value.append(i % 2)
        example.features.feature["x"].float_list.value.append(0.1 * i)
        examples.append(example.SerializeToString())
    records = warmup_requests.build(str(model_dir), examples)
    kinds = sorted(prediction_log_pb2.PredictionLog.FromString(r).WhichOneof("log_type") for r in records)
    assert kinds == ["classify_log", "predict_log"]
    for record in records:
        entry = prediction_log_pb2.PredictionLog.FromString(record)
        request = getattr(entry, entry.WhichOneof("log_type")).request
        if isinstance(request, predict_pb2.PredictRequest):
            assert sorted(request.inputs) == ["alpha", "flag", "mid", "zeta"]
        else:
            assert isinstance(request, classification_pb2.ClassificationRequest)
            assert len(request.input.example_list.examples) == warmup_requests.EXAMPLES
    (model_dir / layout.WARMUP_REQUESTS).parent.mkdir()
    (model_dir / layout.WARMUP_REQUESTS).write_bytes(warmup_requests.as_tfrecord(records))
    assert warmup.replay(load("typed", 1, model_dir), iterations=2)[0] == 2


@pytest.mark.pipeline
def test_the_pushed_titanic_version_carries_a_warm_up_record_per_signature(titanic_run):
    pushed = Path(results.last_run("titanic", titanic_run).pushed_destination)
    path = pushed / layout.WARMUP_REQUESTS
    assert path.is_file(), sorted(p.name for p in pushed.iterdir())
    found = {}
    for record in tf.data.TFRecordDataset(str(path)):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = entry.WhichOneof("log_type")
        found[getattr(entry, kind).request.model_spec.signature_name] = kind
    assert found == {
        "classify": "classify_log",
        "regress": "regress_log",
        "serving_default": "predict_log",
        "serving_examples": "predict_log",
        "serving_raw": "predict_log",
    }
    assert warmup.replay(load("titanic", 1, pushed))[0] == 5
