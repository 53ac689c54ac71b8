"""The TF Serving-compatible server, started for real on free loopback ports, with real HTTP and gRPC clients."""

import base64
import json
import os
import shutil
import subprocess
import sys
import threading

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
    regression_pb2,
)

from components.atomic_pusher import push_atomically
from metadata import results
from orchestration.config import PROJECT_ROOT
from serving_helpers import Server, grpc_stubs, http, save_linear, wait_until

TITANIC_ROW = {
    "Age": 22.0,
    "Fare": 7.25,
    "Pclass": 3,
    "SibSp": 1,
    "Parch": 0,
    "Sex": "male",
    "Embarked": "S",
    "Ticket": "A/5 21171",
    "Cabin": "",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory, titanic_run):
    root = tmp_path_factory.mktemp("serving_root")
    pushed = results.last_run("titanic", titanic_run).pushed_destination
    shutil.copytree(pushed, root / "titanic" / "1")
    (root / "linear").mkdir()
    for version, bias in ((1, 3.0), (2, 10.0)):
        staging = save_linear(root / "linear" / str(version), bias)
        os.rename(staging, root / "linear" / str(version))
    return root


@pytest.fixture(scope="module")
def server(root):
    # linear serves both versions (TF Serving's `all` policy), titanic its newest (the default)
    config = root / "models.config"
    config.write_text(
        'model_config_list { config { name: "linear" base_path: "linear" '
        'model_version_policy { all {} } } config { name: "titanic" base_path: "titanic" } }'
    )
    server = Server(root, "--model_config_file", str(config))
    yield server
    server.stop()


# ------------------------------------------------------------------------------------------------ REST
def test_the_books_request_works_as_written(server, root):
    # curl -d '{"instances": [[1.0, 2.0], [5.0, 7.0]]}' -X POST http://localhost:8501/v1/models/linear:predict
    status, body, headers = http(
        "POST", f"{server.rest}/v1/models/linear/versions/1:predict", {"instances": [[1.0, 2.0], [5.0, 7.0]]}
    )
    assert (status, body) == (200, {"predictions": [[3.0], [6.0]]})
    status, body, headers = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]]})
    assert (status, body, headers["x-model-version"]) == (200, {"predictions": [[10.0]]}, "2")  # newest by default


def test_model_status_and_metadata(server):
    status, body, _ = http("GET", f"{server.rest}/v1/models/linear")
    assert status == 200
    assert [(s["version"], s["state"], s["status"]["error_code"]) for s in body["model_version_status"]] == [
        ("2", "AVAILABLE", "OK"),
        ("1", "AVAILABLE", "OK"),
    ]
    status, body, _ = http("GET", f"{server.rest}/v1/models/linear/versions/1")
    assert status == 200 and [s["version"] for s in body["model_version_status"]] == ["1"]
    status, body, _ = http("GET", f"{server.rest}/v1/models/titanic/metadata")
    assert status == 200 and body["model_spec"] == {"name": "titanic", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "serving_raw", "serving_examples", "classify", "regress"}
    assert signatures["serving_default"]["inputs"]["Age"]["dtype"] == "DT_FLOAT"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert signatures["serving_examples"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    # what TF Serving's classifier.cc / regressor.cc require of a Classify / Regress signature
    assert signatures["classify"]["method_name"] == "tensorflow/serving/classify"
    assert set(signatures["classify"]["inputs"]) == {"inputs"} and set(signatures["classify"]["outputs"]) == {
        "classes",
        "scores",
    }
    assert signatures["classify"]["outputs"]["classes"]["dtype"] == "DT_STRING"
    assert signatures["regress"]["method_name"] == "tensorflow/serving/regress"
    assert set(signatures["regress"]["inputs"]) == {"inputs"} and set(signatures["regress"]["outputs"]) == {"outputs"}


def test_titanic_row_columnar_and_b64_agree(server):
    url = f"{server.rest}/v1/models/titanic:predict"
    row = http("POST", url, {"signature_name": "serving_raw", "instances": [TITANIC_ROW, TITANIC_ROW]})
    columnar = http(
        "POST", url, {"signature_name": "serving_raw", "inputs": {k: [v, v] for k, v in TITANIC_ROW.items()}}
    )
    b64 = dict(TITANIC_ROW, Sex={"b64": base64.b64encode(b"male").decode()})
    encoded = http("POST", url, {"signature_name": "serving_raw", "instances": [b64]})
    assert row[0] == columnar[0] == encoded[0] == 200
    p = row[1]["predictions"][0][0]
    assert 0.0 < p < 1.0 and row[1]["predictions"] == [[p], [p]]
    assert columnar[1] == {"outputs": [[p], [p]]}
    assert encoded[1]["predictions"][0][0] == pytest.approx(p)


def test_the_books_curl_reaches_the_raw_default_signature(server):
    """Chapter 6-6 posts raw values without naming a signature: serving_default takes them."""
    status, body, _ = http("POST", f"{server.rest}/v1/models/titanic:predict", {"instances": [TITANIC_ROW]})
    named = http(
        "POST",
        f"{server.rest}/v1/models/titanic:predict",
        {"signature_name": "serving_raw", "instances": [TITANIC_ROW]},
    )[1]
    assert status == 200 and body == named and 0.0 < body["predictions"][0][0] < 1.0


def test_classify_and_regress_use_their_own_signatures(server):
    example = {k: v for k, v in TITANIC_ROW.items() if k != "Cabin"}  # a missing value is an absent feature
    status, body, _ = http(
        "POST", f"{server.rest}/v1/models/titanic:classify", {"signature_name": "classify", "examples": [example]}
    )
    assert status == 200
    (label0, p0), (label1, p1) = body["results"][0]
    assert (label0, label1) == ("0", "1") and p0 + p1 == pytest.approx(1.0)
    status, body, _ = http(
        "POST",
        f"{server.rest}/v1/models/titanic:regress",
        {
            "signature_name": "regress",
            "context": {"Embarked": "S"},
            "examples": [{k: v for k, v in example.items() if k != "Embarked"}],
        },
    )
    assert status == 200 and body["results"][0] == pytest.approx(p1, abs=1e-6)
    predicted = http("POST", f"{server.rest}/v1/models/titanic:predict", {"instances": [TITANIC_ROW]})[1]
    assert predicted["predictions"][0][0] == pytest.approx(p1, abs=1e-6)
    # as TF Serving answers it (classifier.cc): the default signature is a predict signature
    status, body, _ = http("POST", f"{server.rest}/v1/models/titanic:classify", {"examples": [example]})
    assert status == 400 and body["error"] == (
        "Expected classification signature method_name to be "
        "tensorflow/serving/classify. Was: tensorflow/serving/predict"
    )
    status, body, _ = http(
        "POST", f"{server.rest}/v1/models/titanic:regress", {"signature_name": "classify", "examples": [example]}
    )
    assert (
        status == 400 and "Expected regression signature method_name to be tensorflow/serving/regress" in body["error"]
    )


@pytest.mark.parametrize(
    "method, path, body, code, message",
    [
        (
            "POST",
            "/v1/models/nope:predict",
            {"instances": [[1, 2]]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        ("POST", "/v1/models/linear/versions/7:predict", {"instances": [[1, 2]]}, 404, "Specific(linear, 7)"),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/linear/versions/x", None, 400, "Malformed request: GET /v1/models/linear/versions/x"),
        ("POST", "/v1/models/linear:explain", {}, 400, "Malformed request: POST /v1/models/linear:explain"),
        ("POST", "/v1/models/linear:predict", {"instances": [[1, 2, 3]]}, 400, "shape [1, 3] does not match"),
        ("POST", "/v1/models/linear:predict", {"instances": [[1, 2], [3]]}, 400, "not a rectangular"),
        (
            "POST",
            "/v1/models/linear:predict",
            {"instances": [["a", "b"]]},
            400,
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        ("POST", "/v1/models/linear:predict", {"instances": []}, 400, "non-empty list"),
        ("POST", "/v1/models/linear:predict", {"rows": [[1, 2]]}, 400, 'exactly one of "instances"'),
        (
            "POST",
            "/v1/models/linear:predict",
            {"signature_name": "nope", "instances": [[1, 2]]},
            400,
            'Serving signature key "nope" not found.',
        ),
        (
            "POST",
            "/v1/models/titanic:predict",
            {"signature_name": "serving_raw", "instances": [{"Age": 3.0}]},
            400,
            "missing ['Cabin', 'Embarked'",
        ),
        (
            "POST",
            "/v1/models/titanic:predict",
            {"signature_name": "serving_raw", "instances": [dict(TITANIC_ROW, Pclass=2.5)]},
            400,
            "input 'Pclass': JSON Value: 2.5 Type: Number is not of expected type: int64",
        ),
        (
            "POST",
            "/v1/models/titanic:predict",
            {"signature_name": "serving_raw", "instances": [dict(TITANIC_ROW, Sex={"b64": "%%%"})]},
            400,
            "not valid base64",
        ),
        (
            "POST",
            "/v1/models/titanic:classify",
            {"signature_name": "classify", "examples": [{"Age": [1, "x"]}]},
            400,
            "Unexpected element type in feature: Age expecting type: int64",
        ),
        ("POST", "/v1/models/titanic:classify", {"instances": []}, 400, 'non-empty "examples" list'),
        (
            "POST",
            "/v1/models/linear:classify",
            {"examples": [{"x": 1.0}]},
            400,
            "Expected classification signature method_name",
        ),
        (
            "POST",
            "/v1/models/titanic:classify",
            {"signature_name": "nope", "examples": [{"x": 1.0}]},
            400,
            "No signature was found with the name: nope",
        ),
    ],
)
def test_errors_as_tf_serving_gives_them(server, method, path, body, code, message):
    status, answer, _ = http(method, server.rest + path, body)
    assert status == code and message in answer["error"], answer


def test_malformed_json_and_oversized_requests(server, root):
    status, body, _ = http("POST", f"{server.rest}/v1/models/linear:predict", raw=b'{"instances": [[1, 2]')
    assert status == 400 and body["error"].startswith("JSON parse error")
    small = Server(root, "--max-request-mb", "0.001")
    try:
        status, body, _ = http("POST", f"{small.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]] * 200})
        assert status == 413 and "limit" in body["error"]
    finally:
        small.stop()


# ------------------------------------------------------------------------------------------------ gRPC
@pytest.fixture(scope="module")
def stub(server):
    with grpc_stubs(server) as stubs:
        yield stubs


def titanic_example():
    example = tf.train.Example()
    for k, v in TITANIC_ROW.items():
        if isinstance(v, float):
            example.features.feature[k].float_list.value.append(v)
        elif isinstance(v, int):
            example.features.feature[k].int64_list.value.append(v)
        elif v:
            example.features.feature[k].bytes_list.value.append(v.encode())
    return example


def test_grpc_predict_matches_rest(server, stub):
    prediction, _ = stub
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "titanic", "serving_raw"
    for k, v in TITANIC_ROW.items():
        dtype = tf.float32 if isinstance(v, float) else tf.int64 if isinstance(v, int) else tf.string
        request.inputs[k].CopyFrom(tf.make_tensor_proto([v], dtype=dtype))
    response = prediction.Predict(request, timeout=30)
    assert response.model_spec.version.value == 1
    p = tf.make_ndarray(response.outputs["probability"])[0][0]
    _, body, _ = http(
        "POST",
        f"{server.rest}/v1/models/titanic:predict",
        {"signature_name": "serving_raw", "instances": [TITANIC_ROW]},
    )
    assert p == pytest.approx(body["predictions"][0][0], abs=1e-6)

    book = predict_pb2.PredictRequest()
    book.model_spec.name = "linear"
    book.model_spec.version.value = 1
    book.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0], [5.0, 7.0]], dtype=tf.float32))
    assert tf.make_ndarray(prediction.Predict(book, timeout=30).outputs["dense"]).tolist() == [[3.0], [6.0]]


def test_grpc_classify_regress_metadata_status(stub):
    prediction, models = stub
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = "titanic", "classify"
    classify.input.example_list.examples.append(titanic_example())
    classes = prediction.Classify(classify, timeout=30).result.classifications[0].classes
    assert [c.label for c in classes] == ["0", "1"] and sum(c.score for c in classes) == pytest.approx(1.0)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = "titanic", "regress"
    regress.input.example_list.examples.append(titanic_example())
    assert prediction.Regress(regress, timeout=30).result.regressions[0].value == pytest.approx(
        classes[1].score, abs=1e-6
    )
    meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta.model_spec.name = "titanic"
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    prediction.GetModelMetadata(meta, timeout=30).metadata["signature_def"].Unpack(signature_map)
    assert set(signature_map.signature_def) == {
        "serving_default",
        "serving_raw",
        "serving_examples",
        "classify",
        "regress",
    }
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "linear"
    versions = models.GetModelStatus(status, timeout=30).model_version_status
    assert [(v.version, get_model_status_pb2.ModelVersionStatus.State.Name(v.state)) for v in versions] == [
        (2, "AVAILABLE"),
        (1, "AVAILABLE"),
    ]


def test_grpc_errors(stub):
    prediction, models = stub
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        prediction.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    request.model_spec.name = "linear"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0, 3.0]], dtype=tf.float32))
    with pytest.raises(grpc.RpcError) as err:
        prediction.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not match" in err.value.details()
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        models.GetModelStatus(status, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------------------------------------------ hot reload
def test_hot_reload_under_a_stream_of_requests(tmp_path):
    root = tmp_path / "root"
    (root / "linear").mkdir(parents=True)
    os.rename(save_linear(root / "linear" / "1", bias=3.0), root / "linear" / "1")
    server = Server(root)
    failures, answers, stop = [], [], threading.Event()

    def stream(client):
        for _ in range(2000):  # bounded: at most 2000 requests per thread, and the test stops them sooner
            if stop.is_set():
                return
            status, body, headers = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]]})
            if status != 200:
                failures.append((status, body))
            else:
                answers.append((client, headers["x-model-version"], body["predictions"][0][0]))

    def state():
        return f"{len(answers)} answers, {len(failures)} failures {failures[:2]}; server: {server.log_lines[-5:]}"

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(answers) >= 20 or failures, 120, "20 answers from version 1", state)
        # A half-written version (no saved_model.pb yet) and a corrupt one: ignored, version 1 keeps serving.
        (root / "linear" / "5" / "variables").mkdir(parents=True)
        (root / "linear" / "6").mkdir()
        (root / "linear" / "6" / "saved_model.pb").write_bytes(b"not a protobuf")
        wait_until(
            lambda: any("linear version 6" in line for line in server.log_lines),
            60,
            "the server to report version 6",
            state,
        )
        assert any("not serving linear version 5" in line and "no saved_model.pb" in line for line in server.log_lines)
        assert any("not serving linear version 6" in line for line in server.log_lines)
        count_before_push = len(answers)
        # A good new version, pushed the way the Pusher does (hidden copy, one rename).
        staging = save_linear(tmp_path / "candidate", bias=100.0)
        push_atomically(str(staging), str(root / "linear"))
        wait_until(
            lambda: any(v != "1" for _, v, _ in answers[count_before_push:]),
            120,
            "an answer from the pushed version",
            state,
        )
        seen_new = len(answers)
        wait_until(lambda: len(answers) >= seen_new + 20, 120, "20 more answers after the switch", state)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server.stop()
    assert failures == []
    versions = [v for _, v, _ in answers]
    new_version = max(versions, key=int)
    assert int(new_version) > 6  # the push took a version past the broken ones
    assert {p for _, v, p in answers if v == "1"} == {3.0} and {p for _, v, p in answers if v == new_version} == {100.0}
    # switched for good: once a client has had an answer from the new version, it never gets version 1 again
    for client in range(4):
        mine = [v for c, v, _ in answers if c == client]
        if new_version in mine:
            assert "1" not in mine[mine.index(new_version) :], (client, mine)
    assert sum(v == new_version for v in versions) >= 20


# ------------------------------------------------------------------------------------------------ client CLI
def test_client_cli_rest_and_grpc(server, root, tmp_path):
    def client(*args):
        return subprocess.run(
            [sys.executable, "-m", "serving.client", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    rest_port, grpc_port = server.rest.rsplit(":", 1)[1], server.grpc.rsplit(":", 1)[1]
    by_rest = client("titanic", "--features", json.dumps(TITANIC_ROW), "--port", rest_port)
    by_grpc = client("titanic", "--features", json.dumps(TITANIC_ROW), "--grpc", "--port", grpc_port)
    assert by_rest.returncode == 0 and by_grpc.returncode == 0, by_rest.stderr + by_grpc.stderr
    p_rest = json.loads(by_rest.stdout)["predictions"][0][0]
    p_grpc = json.loads(by_grpc.stdout)["predictions"][0][0]
    assert p_rest == pytest.approx(p_grpc, abs=1e-6)
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(
        "Age,Fare,Pclass,SibSp,Parch,Sex,Embarked,Ticket,Cabin\n22,7.25,3,1,0,male,S,A/5 21171,\n"
        ",8.05,3,0,0,male,S,373450,\n"
    )
    by_csv = client("titanic", "--csv", str(csv_file), "--port", rest_port)
    assert by_csv.returncode == 0, by_csv.stderr
    assert json.loads(by_csv.stdout)["predictions"][0][0] == pytest.approx(p_rest, abs=1e-6)
    down = client("titanic", "--features", "{}", "--port", "9")
    assert down.returncode == 1 and "cannot reach" in down.stderr


# ------------------------------------------------------------------------------------------------ several workers
def test_workers_share_both_ports_and_stop_together(root):
    """--workers 2: one set of banner lines, once both answer; many fresh connections and a gRPC channel all get
    the same answers from both processes; stopping the server leaves no worker behind."""
    server = Server(root, "--workers", "2")
    try:
        assert sum(line.startswith("REST listening on ") for line in server.log_lines) == 1
        workers = [p for p in _children(server.proc.pid)]
        assert len(workers) == 2
        answers = set()
        for _ in range(40):  # urllib opens a new connection each time: the kernel spreads them over both workers
            status, body, _ = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]]})
            assert status == 200
            answers.add(json.dumps(body))
        assert answers == {json.dumps({"predictions": [[10.0]]})}
        with grpc_stubs(server) as (prediction, _):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "linear"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]], dtype=tf.float32))
            assert tf.make_ndarray(prediction.Predict(request, timeout=30).outputs["dense"]).tolist() == [[10.0]]
    finally:
        server.stop()
    assert server.proc.returncode == 0
    wait_until(
        lambda: not [pid for pid in workers if os.path.exists(f"/proc/{pid}") and _alive(pid)],
        30,
        "both workers to exit after the server stopped",
    )


def _children(pid: int):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
