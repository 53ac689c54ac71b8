"""TF Serving's production flags on a real server process: --model_config_file (policies, labels, reload),
label routes over REST and gRPC, promotion under load, --monitoring_config_file, --enable_batching. No pipeline
run: the models are built here."""

import collections
import concurrent.futures
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

from core import promotion, tf_serving_config
from serving_helpers import Server, grpc_stubs, http, save_linear, save_typed, wait_until


def put(folder: Path, saver, *args) -> None:
    os.rename(saver(folder, *args), folder)


def linear_root(tmp_path: Path, versions=(1, 2)) -> Path:
    root = tmp_path / "serving"
    (root / "linear").mkdir(parents=True)
    for v in versions:
        put(root / "linear" / str(v), save_linear, float(v))  # bias = version: an answer names its version
    return root


def write_config(path: Path, body: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)


def answer(server, route: str, x=(1.0, 1.0)) -> tuple:
    """(status, bias of the version that answered or the error)."""
    status, body, _ = http("POST", f"{server.rest}/v1/models/linear{route}:predict", {"instances": [list(x)]})
    if status != 200:
        return status, body["error"]
    return status, round(body["predictions"][0][0] - (2 * x[0] - x[1]))


def metrics(server, path="/monitoring/prometheus/metrics") -> str:
    with urllib.request.urlopen(f"{server.rest}{path}", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def metric_value(text: str, name: str, **labels) -> float:
    """The value of the sample of `name` whose labels include `labels`; 0 when there is none."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line[len(name) : line.rindex("}") + 1]))
        if all(found.get(k) == str(v) for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture()
def config_file(tmp_path):
    return tmp_path / "serving" / "models.config"


def test_labels_and_policies_over_rest_and_grpc(tmp_path, config_file):
    root = linear_root(tmp_path, (1, 2, 3))
    write_config(
        config_file,
        'model_config_list { config { name: "linear" base_path: "linear" '
        "model_version_policy { specific { versions: 1 versions: 2 } } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }',
    )
    server = Server(root, "--model_config_file", str(config_file), "--allow_version_labels_for_unavailable_models")
    try:
        assert answer(server, "/labels/stable") == (200, 1)
        assert answer(server, "/labels/canary") == (200, 2)
        assert answer(server, "") == (200, 2)  # no version: the newest the policy serves
        assert answer(server, "/versions/1") == (200, 1)
        # version 3 is on disk but not in the policy: not served, as TF Serving answers it
        assert answer(server, "/versions/3") == (404, "Servable not found for request: Specific(linear, 3)")
        assert answer(server, "/labels/beta") == (404, "Unrecognized servable version label: beta")
        # no --monitoring_config_file: no metrics route, as TF Serving
        with pytest.raises(urllib.error.HTTPError) as refused:  # libevent's HTML 404: outside /v1/, no handler
            urllib.request.urlopen(f"{server.rest}/monitoring/prometheus/metrics", timeout=30)
        assert refused.value.code == 404
        status, body, _ = http("GET", f"{server.rest}/v1/models/linear/labels/canary")
        assert status == 200 and [e["version"] for e in body["model_version_status"]] == ["2"]
        status, body, _ = http("GET", f"{server.rest}/v1/models/linear/labels/stable/metadata")
        assert status == 200 and body["model_spec"]["version"] == "1"
        status, body, _ = http("GET", f"{server.rest}/v1/models/linear")
        assert sorted(e["version"] for e in body["model_version_status"]) == ["1", "2"]
        with grpc_stubs(server) as (predict, model_service):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "linear"
            request.model_spec.version_label = "stable"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 1.0]], tf.float32))
            response = predict.Predict(request, timeout=30)
            assert response.model_spec.version.value == 1
            request.model_spec.version_label = "beta"
            with pytest.raises(Exception) as error:
                predict.Predict(request, timeout=30)
            assert (
                error.value.code().name == "NOT_FOUND"
                and "Unrecognized servable version label" in error.value.details()
            )
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "linear"
            status_request.model_spec.version_label = "canary"
            versions = model_service.GetModelStatus(status_request, timeout=30).model_version_status
            assert [v.version for v in versions] == [2]
    finally:
        server.stop()


def test_labels_at_start_up_need_the_flag_as_in_tf_serving(tmp_path, config_file):
    root = linear_root(tmp_path, (1,))
    write_config(
        config_file,
        'model_config_list { config { name: "linear" base_path: "linear" version_labels { key: "stable" value: 1 } } }',
    )
    with pytest.raises(RuntimeError) as error:
        Server(root, "--model_config_file", str(config_file))
    assert "Request to assign label to version 1 of model linear" in str(error.value)
    assert "--allow_version_labels_for_unavailable_models" in str(error.value)


def test_a_config_whose_label_points_at_an_unloaded_version_is_refused_whole(tmp_path, config_file):
    root = linear_root(tmp_path, (1, 2))
    write_config(
        config_file,
        'model_config_list { config { name: "linear" base_path: "linear" '
        "model_version_policy { specific { versions: 1 } } } }",
    )
    server = Server(root, "--model_config_file", str(config_file), "--model_config_file_poll_wait_seconds", "0.3")
    try:
        (root / "second").mkdir()
        put(root / "second" / "1", save_linear, 5.0)
        # the new model is fine, the label is not (version 2 is not loaded): TF Serving applies neither
        write_config(
            config_file,
            'model_config_list { config { name: "linear" base_path: "linear" '
            "model_version_policy { specific { versions: 1 versions: 2 } } "
            'version_labels { key: "canary" value: 2 } } '
            'config { name: "second" base_path: "second" } }',
        )
        wait_until(
            lambda: any(
                "failed to ReloadConfig: Request to assign label to version 2" in line for line in server.log_lines
            ),
            60,
            "the refusal in the log",
            lambda: "\n".join(server.log_lines[-10:]),
        )
        assert http("GET", f"{server.rest}/v1/models/second")[0] == 404
        assert answer(server, "/versions/2")[0] == 404
        # the documented way: the version first, the label once it serves
        write_config(
            config_file,
            'model_config_list { config { name: "linear" base_path: "linear" '
            "model_version_policy { specific { versions: 1 versions: 2 } } } "
            'config { name: "second" base_path: "second" } }',
        )
        wait_until(lambda: answer(server, "/versions/2") == (200, 2), 60, "version 2 served")
        write_config(
            config_file,
            'model_config_list { config { name: "linear" base_path: "linear" '
            "model_version_policy { specific { versions: 1 versions: 2 } } "
            'version_labels { key: "canary" value: 2 } } }',
        )
        wait_until(lambda: answer(server, "/labels/canary") == (200, 2), 60, "the canary label")
        wait_until(lambda: http("GET", f"{server.rest}/v1/models/second")[0] == 404, 60, "second removed")
    finally:
        server.stop()


def test_canary_then_promotion_under_load_fails_no_request(tmp_path, config_file):
    """`make promote`'s two writes while clients hammer both labels: every request answered, each by a version
    its label pointed at during the test."""
    root = linear_root(tmp_path, (1,))
    # no config yet: the first promotion writes it from what is under the root (linear, newest version)
    said = []
    promotion.assign(root, "linear", 1, "stable", server="none", say=said.append)
    assert tf_serving_config.read_model_config(config_file)[0].labels == (("stable", 1),)
    server = Server(
        root,
        "--model_config_file",
        str(config_file),
        "--model_config_file_poll_wait_seconds",
        "0.2",
        "--allow_version_labels_for_unavailable_models",
    )
    answers, failures, stop = collections.Counter(), [], threading.Event()

    def client(route):
        while not stop.is_set():
            status, bias = answer(server, route)
            if status == 200:
                answers[(route, bias)] += 1
            elif route != "/labels/canary" or "Unrecognized servable version label" not in bias:
                failures.append((route, status, bias))  # canary does not exist before the first assign

    threads = [threading.Thread(target=client, args=(r,)) for r in ("/labels/stable", "/labels/canary", "")]
    try:
        for t in threads:
            t.start()
        put(root / "linear" / "2", save_linear, 2.0)
        done = promotion.assign(root, "linear", 2, "canary", server=server.rest, say=said.append)
        assert done == {"labels": {"stable": 1, "canary": 2}, "previous": None}
        wait_until(lambda: answers[("/labels/canary", 2)] >= 3, 60, "answers from the canary")
        done = promotion.assign(root, "linear", 2, "stable", server=server.rest, say=said.append)
        assert done == {"labels": {"stable": 2}, "previous": 1}
        wait_until(lambda: answers[("/labels/stable", 2)] >= 3, 60, "answers from the new stable")
        # a rollback target is in the policy no more: assign loads it first, then moves the label
        done = promotion.assign(root, "linear", 1, "stable", server=server.rest, say=said.append)
        assert done == {"labels": {"stable": 1}, "previous": 2}
        wait_until(lambda: answer(server, "/labels/stable") == (200, 1), 60, "stable back on version 1")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server.stop()
    print(f"answers {dict(answers)}, failures {len(failures)}")
    assert not failures, failures[:5]
    assert set(answers) <= {("/labels/stable", 1), ("/labels/stable", 2), ("/labels/canary", 2), ("", 1), ("", 2)}
    assert any("waiting for" in line for line in said)  # the two-phase path, not the one-write one


def test_metrics_in_tf_servings_names_and_labels(tmp_path):
    root = linear_root(tmp_path, (1,))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }')
    server = Server(root, "--monitoring_config_file", str(monitoring))
    try:
        assert any(line.startswith("metrics at http://") for line in server.log_lines)
        for _ in range(3):
            assert answer(server, "")[0] == 200
        assert http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [["a", "b"]]})[0] == 400
        assert http("POST", f"{server.rest}/v1/models/nope:predict", {"instances": [[1, 2]]})[0] == 404
        with grpc_stubs(server) as (predict, _):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "linear"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 1.0]], tf.float32))
            predict.Predict(request, timeout=30)
        text = metrics(server)
    finally:
        server.stop()
    count = ":tensorflow:serving:request_count"
    assert metric_value(text, count, model_name="linear", status="OK") == 4
    assert metric_value(text, count, model_name="linear", status="INVALID_ARGUMENT") == 1
    assert metric_value(text, count, model_name="<unknown>", status="NOT_FOUND") == 1  # no label per made-up name
    latency = ":tensorflow:serving:request_latency"
    assert f"# TYPE {latency} histogram" in text
    assert metric_value(text, latency + "_count", model_name="linear", API="predict", entrypoint="REST") == 3
    assert metric_value(text, latency + "_count", model_name="linear", API="Predict", entrypoint="GRPC") == 1
    assert (
        metric_value(text, latency + "_bucket", model_name="linear", API="predict", entrypoint="REST", le="+Inf") == 3
    )
    assert metric_value(text, ":tensorflow:serving:runtime_latency_count", model_name="linear") >= 4
    assert (
        metric_value(
            text, ":tfx_book:serving:model_version_state", model_name="linear", model_version="1", state="AVAILABLE"
        )
        == 1
    )
    assert (
        metric_value(
            text,
            ":tfx_book:serving:request_count",
            model_name="linear",
            model_version="1",
            signature_name="serving_default",
            status="OK",
        )
        == 3
    )


def test_batching_merges_concurrent_requests_and_answers_each_its_own(tmp_path):
    root = linear_root(tmp_path, (1,))
    params = tmp_path / "batching.config"
    params.write_text(
        "max_batch_size { value: 8 } batch_timeout_micros { value: 50000 } "
        "num_batch_threads { value: 1 } max_enqueued_batches { value: 100 }"
    )
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }")
    server = Server(
        root,
        "--enable_batching",
        "--batching_parameters_file",
        str(params),
        "--monitoring_config_file",
        str(monitoring),
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda i: answer(server, "", (float(i), 0.0)), range(32)))
        assert got == [(200, 1)] * 32  # each request got its own row back (2*i + 1 - 2*i = bias 1)
        status, body, _ = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1, 1]] * 9})
        assert status == 400 and body["error"] == "Task size 9 is larger than maximum input batch size 8"
        text = metrics(server)
    finally:
        server.stop()
    batches = metric_value(text, ":tfx_book:serving:batch_size_count", model_name="linear")
    examples = metric_value(text, ":tfx_book:serving:batch_size_sum", model_name="linear")
    print(f"32 requests ran as {batches:.0f} batches")
    assert examples == 32 and batches < 32


def test_bad_config_files_are_one_clear_error(tmp_path):
    root = linear_root(tmp_path, (1,))
    bad = tmp_path / "bad.config"
    bad.write_text('model_config_list { config { name: "linear" base_pth: "linear" } }')
    with pytest.raises(RuntimeError) as error:
        Server(root, "--model_config_file", str(bad))
    assert "bad.config" in str(error.value) and "base_pth" in str(error.value)
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    with pytest.raises(RuntimeError) as error:
        Server(root, "--enable_batching", "--batching_parameters_file", str(params))
    assert "Last entry in allowed_batch_sizes must match max_batch_size" in str(error.value)


# ---------------------------------------------------------------- in process: the signature call and JSON rules
@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    from serving.repository import Repository

    root = tmp_path_factory.mktemp("typed")
    (root / "typed").mkdir()
    put(root / "typed" / "1", save_typed)
    repository = Repository(root)
    repository.start()
    return repository


ROW = {"zeta": 3, "alpha": 0.5, "mid": "abcd", "flag": True}


def test_inputs_declared_out_of_order_each_reach_their_place(typed):
    from serving import inference

    model = typed.get("typed")
    out = inference.run(model, "serving_default", {k: [v] for k, v in ROW.items()})["out"]
    assert out.tolist() == [300 + 5 + 4 + 1]
    derived = model.derived["serving_default"]
    assert derived.checked and derived.flat_order is not None  # the flat call agreed with the structured one
    # a wrong flat order is caught on the first call of a loaded signature and the structured call takes over
    fresh = inference._Inputs(model.signature("serving_default"), "typed", "serving_default")
    fresh.flat_order = list(reversed(fresh.flat_order))
    tensors = {
        "zeta": tf.constant([3], tf.int64),
        "alpha": tf.constant([0.5]),
        "mid": tf.constant(["abcd"]),
        "flag": tf.constant([True]),
    }
    assert fresh.call(tensors)["out"].numpy().tolist() == [310.0]
    assert fresh.flat_order is None and fresh.call(tensors)["out"].numpy().tolist() == [310.0]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("zeta", 3.0, "JSON Value: 3.0 Type: Number is not of expected type: int64"),
        ("zeta", True, "JSON Value: true Type: True is not of expected type: int64"),
        ("zeta", None, "JSON Value: null Type: Null is not of expected type: int64"),
        ("zeta", 2**63, "is not of expected type: int64"),
        ("zeta", "3", 'JSON Value: "3" Type: String is not of expected type: int64'),
        ("flag", 1, "JSON Value: 1 Type: Number is not of expected type: bool"),
        ("flag", None, "Type: Null is not of expected type: bool"),
        ("alpha", None, "Type: Null is not of expected type: float"),
        ("alpha", False, "Type: False is not of expected type: float"),
        ("alpha", 1e39, "outside float32's range"),
        ("mid", 7, "JSON Value: 7 Type: Number is not of expected type: string"),
        ("mid", {"x": 1}, "Type: Object is not of expected type: string"),
    ],
)
def test_json_values_tf_serving_refuses_are_refused_naming_the_input(typed, field, value, message):
    import json

    from serving import rest

    app = rest.RestApp(typed)
    body = json.dumps({"instances": [dict(ROW, **{field: value})]}).encode()
    status, answer_body, _ = app._predict("typed", None, None, ":predict", body)
    error = json.loads(answer_body)["error"]
    assert status == 400 and message in error and f"input '{field}'" in error, error


@pytest.mark.parametrize(
    "raw, status, message",
    [
        (b'{"instances": [{"zeta": 1, "alpha": 1e400, "mid": "", "flag": false}]}', 400, "Number too big"),
        (b'{"instances": [{"zeta": 1, "alpha": NaN, "mid": "", "flag": false}]}', 200, ""),
        (b'{"instances": [{"zeta": 1, "alpha": -Infinity, "mid": "", "flag": false}]}', 200, ""),
        (b'{"signature_name": "nope", "instances": [1]}', 400, 'Serving signature key "nope" not found.'),
        (b'{"signature_name": "classify", "instances": ["not an example"]}', 400, "the model rejected the input"),
    ],
)
def test_predict_edge_cases(typed, raw, status, message):
    import json

    from serving import rest

    got, body, _ = rest.RestApp(typed)._predict("typed", None, None, ":predict", raw)
    assert got == status, body
    if message:
        assert message in json.loads(body)["error"]


@pytest.mark.parametrize(
    "example, status, message",
    [
        ({"x": 10**30}, 200, ""),  # beyond uint64: a double, as rapidjson parses it
        ({"x": 2**63 + 5}, 400, "Feature: x has uint64_t element. Only int64_t is supported."),
        ({"x": "\ud800"}, 400, "surrogate"),
        ({"\udfff": 1.0}, 400, "surrogate"),
        ({"x": None}, 400, "Feature: x has element with unexpected JSON type: Null"),
        ({"x": [1, 2.5]}, 400, "Unexpected element type in feature: x expecting type: int64"),
        ({"x": [[1.0]]}, 400, "unexpected JSON type: Array"),
        ({"x": 0.5}, 200, ""),
    ],
)
def test_classify_follows_tf_servings_feature_rules(typed, example, status, message):
    import json

    from serving import rest

    raw = json.dumps({"signature_name": "classify", "examples": [example]}).encode()
    got, body, _ = rest.RestApp(typed)._predict("typed", None, None, ":classify", raw)
    assert got == status, body
    if message:
        assert message in json.loads(body)["error"]


def test_grpc_tensor_of_another_dtype_is_invalid_argument(typed):
    from serving import grpc_service, inference

    model = typed.get("typed")
    proto = tf.make_tensor_proto([3.0], tf.float32)  # zeta is int64
    with pytest.raises(inference.BadRequest) as error:
        inference.run(
            model,
            "serving_default",
            {"zeta": grpc_service.tensor_to_value("zeta", proto), "alpha": [0.5], "mid": ["a"], "flag": [True]},
        )
    assert "input 'zeta': Expects arg to be int64 but float is provided" in str(error.value)


# ---------------------------------------------------------------- the batch scheduler alone
def test_scheduler_merges_splits_and_isolates_a_bad_request():
    import numpy as np

    from core.tf_serving_config import BatchingParameters
    from serving.batching import BatchRefused, BatchScheduler

    calls = []

    def runner(batch):
        calls.append(len(batch["x"]))
        if (batch["x"] < 0).any():
            raise ValueError("negative")
        time.sleep(0.05)
        return {"y": batch["x"] * 2}

    scheduler = BatchScheduler(
        BatchingParameters(max_batch_size=4, batch_timeout_micros=20000, num_batch_threads=1, max_enqueued_batches=2)
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(scheduler.run, "k", {"x": np.array([float(i)])}, runner) for i in range(8)]
            assert [f.result()["y"].tolist() for f in futures] == [[2.0 * i] for i in range(8)]
        assert max(calls) > 1 and sum(calls) == 8
        calls.clear()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(scheduler.run, "k", {"x": np.array([v])}, runner) for v in (1.0, -1.0, 2.0, 3.0)]
            outcomes = []
            for f in futures:
                try:
                    outcomes.append(f.result()["y"].tolist())
                except ValueError as exc:
                    outcomes.append(str(exc))
        assert outcomes == [[2.0], "negative", [4.0], [6.0]]  # only the bad request failed
        with pytest.raises(BatchRefused) as refused:
            scheduler.run("k", {"x": np.zeros(5)}, runner)
        assert refused.value.code == "INVALID_ARGUMENT"
    finally:
        scheduler.stop()


@pytest.mark.parametrize("flag", ["--rest-port", "--grpc-port"])
def test_a_port_another_program_holds_is_refused_before_any_banner(tmp_path, flag):
    """Both ports are bound before `... listening on` is printed: a port in use stops the server with one line
    naming it (for gRPC too, whose SO_REUSEPORT would otherwise share the port with the other program)."""
    import socket
    import subprocess
    import sys

    from orchestration.config import PROJECT_ROOT

    root = linear_root(tmp_path, (1,))
    with socket.socket() as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a gRPC server holds its port
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        other = {"--rest-port": "--grpc-port", "--grpc-port": "--rest-port"}[flag]
        done = subprocess.run(
            [sys.executable, "-m", "serving.server", "--serving-root", str(root), flag, str(port), other, "0"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    kind = "REST" if flag == "--rest-port" else "gRPC"
    assert done.returncode != 0
    assert f"cannot bind {kind} to 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
    assert "listening on" not in done.stdout
