"""The server under hostile and careless input: no escape from the serving root, no 500, no gap in service.

Each class of problem is tested with several members of the class, against a real server process."""

import http.client as httpclient
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2

from metadata import results
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


def put_linear(folder: Path, bias: float) -> None:
    os.rename(save_linear(folder, bias), folder)


@pytest.fixture(scope="module")
def world(tmp_path_factory, titanic_run):
    """A serving root with titanic and linear, and outside it: a SavedModel next to the root, one elsewhere."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "root"
    pushed = results.last_run("titanic", titanic_run).pushed_destination
    shutil.copytree(pushed, root / "titanic" / "1")
    (root / "linear").mkdir()
    for version, bias in ((1, 3.0), (2, 10.0)):
        put_linear(root / "linear" / str(version), bias)
    outside = base / "outside"  # a model the server must never run: bias 666
    outside.mkdir()
    put_linear(outside / "1", 666.0)
    put_linear(base / "1", 666.0)  # a SavedModel right next to the root (reached by "..")
    (root / "evil").symlink_to(outside, target_is_directory=True)  # a model folder that leaves the root
    (root / "linear" / "9").symlink_to(outside / "1", target_is_directory=True)  # a version that leaves it
    return base, root, outside


@pytest.fixture(scope="module")
def server(world):
    server = Server(world[1])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stubs(server):
    with grpc_stubs(server) as stubs:
        yield stubs


def raw_request(server, method, path, body=b"", headers=None):
    """A request whose path is sent exactly as written (no client-side normalisation of %2e%2e or ..)."""
    host, port = urlsplit(server.rest).hostname, urlsplit(server.rest).port
    conn = httpclient.HTTPConnection(host, port, timeout=60)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def assert_no_paths(text, world):
    base = world[0]
    for path in {str(base), str(base.resolve())}:
        assert path not in text, text


# ---------------------------------------------------------------- security: names never become paths
@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/%2e%2e/versions/1:predict",
        "/v1/models/../versions/1:predict",
        "/v1/models/%2E%2E:predict",
        "/v1/models/..%2F..%2Foutside/versions/1:predict",
        "/v1/models/evil:predict",
        "/v1/models/evil/versions/1:predict",
        "/v1/models/%2Ftmp:predict",
        "/v1/models/linear/versions/9:predict",
        "/v1/models/.:predict",
    ],
)
def test_rest_never_runs_a_model_outside_the_root(server, world, path):
    status, data = raw_request(server, "POST", path, json.dumps({"instances": [[1.0, 2.0]]}).encode())
    assert status in (400, 404), (status, data)
    body = json.loads(data)
    assert "error" in body and "666" not in data.decode()
    assert_no_paths(data.decode(), world)


@pytest.mark.parametrize(
    "name",
    [
        "OUTSIDE_ABS",
        "../outside",
        "../../../proc",
        "/proc",
        "evil",
        "",
        "linear/../linear",
        "x" * 300,
        "\u00e9\x00",
    ],
)
def test_grpc_never_runs_or_lists_a_model_outside_the_root(stubs, world, name):
    prediction, models = stubs
    name = str(world[2]) if name == "OUTSIDE_ABS" else name
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]], dtype=tf.float32))
    with pytest.raises(grpc.RpcError) as err:
        prediction.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "666" not in err.value.details()
    if name != str(world[2]):  # the name the client sent is echoed, as TF Serving does; nothing else
        assert_no_paths(err.value.details(), world)
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = name
    with pytest.raises(grpc.RpcError) as err:
        models.GetModelStatus(status, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_links_leaving_the_root_are_refused_and_logged(server, world):
    status, body, _ = http("GET", f"{server.rest}/v1/models/linear")
    assert [s["version"] for s in body["model_version_status"]] == ["2"]  # newest (the default policy), never 9
    status, body, headers = http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]]})
    assert (status, headers["x-model-version"], body["predictions"]) == (200, "2", [[10.0]])
    assert any("refusing model 'evil'" in line for line in server.log_lines)
    assert any("refusing linear version 9" in line for line in server.log_lines)
    # after the start-up line that names the root the operator gave, no log line shows a path
    assert_no_paths("\n".join(line for line in server.log_lines if not line.startswith("serving root ")), world)


# ---------------------------------------------------------------- never a 500 for bad input
def titanic(**changes):
    return {"instances": [dict(TITANIC_ROW, **changes)]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [{"Age": Infinity, "Fare": 7.25, "Pclass": 3, "SibSp": 1, "Parch": 0, "Sex": "male", '
        b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
        b'{"instances": [{"Age": -Infinity, "Fare": 3e38, "Pclass": 3, "SibSp": 1, "Parch": 0, "Sex": "male", '
        b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
        b'{"instances": [{"Age": NaN, "Fare": -3e38, "Pclass": 3, "SibSp": 1, "Parch": 0, "Sex": "male", '
        b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
    ],
)
def test_non_finite_numbers_are_answered_with_tf_servings_literals(server, body):
    status, data = raw_request(server, "POST", "/v1/models/titanic:predict", body)
    assert status == 200, data
    prediction = json.loads(data)["predictions"][0][0]  # NaN / Infinity literals parse
    assert prediction != prediction or 0.0 <= prediction <= 1.0


@pytest.mark.parametrize(
    "body, code, message",
    [
        (json.dumps(titanic(Pclass=2**70)).encode(), 400, "input 'Pclass'"),
        (json.dumps(titanic(Pclass=-(2**64))).encode(), 400, "is not of expected type: int64"),
        (json.dumps(titanic(Pclass=True)).encode(), 400, "Type: True is not of expected type: int64"),
        (json.dumps(titanic(Pclass=None)).encode(), 400, "Type: Null is not of expected type: int64"),
        (json.dumps(titanic(Fare=1e39)).encode(), 400, "input 'Fare'"),  # beyond float32: never silently Infinity
        (json.dumps(titanic(Fare=-1e300)).encode(), 400, "input 'Fare'"),
        (
            b'{"instances": [{"Age": 1e400, "Fare": 7.25, "Pclass": 3, "SibSp": 1, "Parch": 0, "Sex": "male", '
            b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
            400,
            "Number too big to be stored in double",
        ),
        (json.dumps(titanic(Sex=None)).encode(), 400, "Type: Null is not of expected type: string"),
        (json.dumps(titanic(SibSp=1e30)).encode(), 400, "input 'SibSp'"),
        (json.dumps(titanic(Parch=10**400)).encode(), 400, "input 'Parch'"),
        (
            b'{"instances": [{"Age": 1.0, "Fare": 7.25, "Pclass": Infinity, "SibSp": 1, "Parch": 0, "Sex": "male", '
            b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
            400,
            "JSON Value: Infinity Type: Number is not of expected",
        ),
        (json.dumps(titanic(Pclass=2.5)).encode(), 400, "JSON Value: 2.5 Type: Number is not of expected type: int64"),
        (b'{"instances": ' + b"[" * 1000 + b"1.0" + b"]" * 1000 + b"}", 400, "nested too deeply"),
        (b"[" * 100000, 400, "JSON parse error"),
        (json.dumps({"signature_name": {"a": 1}, "instances": [[1, 2]]}).encode(), 400, '"signature_name" must be'),
        (json.dumps({"signature_name": ["serving_default"], "instances": [[1, 2]]}).encode(), 400, "must be a string"),
        (json.dumps({"signature_name": 7, "instances": [[1, 2]]}).encode(), 400, "must be a string"),
        (
            b'{"instances": [{"Age": 1.0, "Fare": 7.25, "Pclass": 3, "SibSp": 1, "Parch": 0, "Sex": "\\ud800", '
            b'"Embarked": "S", "Ticket": "t", "Cabin": ""}]}',
            400,
            "lone surrogate",
        ),
        (b'{"instances": [{"\\udfff": 1}]}', 400, "takes inputs"),
        (b"\xff\xfe not json", 400, "JSON parse error"),
        (b"", 400, "JSON parse error"),
        (b"null", 400, "JSON object"),
        (json.dumps({"instances": [None]}).encode(), 400, ""),
        (json.dumps({"instances": [[1, 2]], "inputs": [[1, 2]]}).encode(), 400, "exactly one of"),
    ],
)
def test_bad_predict_bodies_are_400_with_a_reason(server, world, body, code, message):
    for model in ("titanic", "linear"):
        status, data = raw_request(server, "POST", f"/v1/models/{model}:predict", body)
        assert status < 500, (model, status, data[:300])
        answer = json.loads(data)
        assert "error" in answer
        if model == "titanic" and message:
            assert status == code and message in answer["error"], answer
        assert_no_paths(data.decode(), world)


NOT_FOUND_PAGE = "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n</BODY></HTML>\n"


@pytest.mark.parametrize(
    "method, path, code, message",
    [
        ("POST", "/v1/models/" + "m" * 300 + ":predict", 404, "Servable not found"),
        ("GET", "/v1/models/" + "m" * 5000, 404, "Could not find any versions"),
        # TF Serving's REST handler (http_rest_api_handler.cc ProcessRequest): whatever its two patterns
        # (http_rest_api_util.cc:31-35) do not take is "Malformed request: <METHOD> <path as sent>"
        (
            "POST",
            "/v1/models/linear/versions/%C2%B2:predict",
            400,
            "Malformed request: POST /v1/models/linear/versions/%C2%B2:predict",
        ),
        ("GET", "/v1/models/linear/versions/%C2%B2", 400, "Malformed request: GET /v1/models/linear/versions/%C2%B2"),
        ("POST", "/v1/models/linear/versions/-1:predict", 400, "Malformed request"),
        ("POST", "/v1/models/linear/versions/1.0:predict", 400, "Malformed request"),
        ("POST", "/v1/models/linear:explain", 400, "Malformed request: POST /v1/models/linear:explain"),
        ("POST", "/v1/models/linear:", 400, "Malformed request"),
        ("POST", "/v1/models/linear:PREDICT", 400, "Malformed request"),  # the pattern ignores case, the dispatch not
        ("POST", "/v1/models/linear:predict?x=1", 400, "Malformed request: POST /v1/models/linear:predict?x=1"),
        ("GET", "/v1/models/linear:predict", 400, "Malformed request: GET /v1/models/linear:predict"),
        ("GET", "/v1/models/", 400, "Malformed request: GET /v1/models/"),
        ("GET", "/v1/models", 400, "Missing model name in request."),
        ("GET", "/v1/models/metadata", 404, "Could not find any versions of model metadata"),
        ("GET", "/v1/models/versions/1", 400, "Missing model name in request."),
        ("GET", "/V1/MODELS/nope", 404, "Could not find any versions of model nope"),
        ("GET", "/v1/foo", 400, "Malformed request: GET /v1/foo"),
        ("DELETE", "/v1/models/linear", 400, "Malformed request: DELETE /v1/models/linear"),
        ("PUT", "/v1/models/linear:predict", 400, "Malformed request: PUT /v1/models/linear:predict"),
        ("PATCH", "/v1/models/linear", 400, "Malformed request: PATCH /v1/models/linear"),
        ("POST", "/v1/models/linear", 400, "Malformed request: POST /v1/models/linear"),
        ("POST", "/v1/models/%C3%A9%00:predict", 404, "Servable not found"),
    ],
)
def test_paths_and_methods_answer_as_tf_serving_does(server, world, method, path, code, message):
    status, data = raw_request(server, method, path, b'{"instances": [[1.0, 2.0]]}' if method == "POST" else b"")
    answer = json.loads(data)
    assert status == code and message in answer["error"], (status, answer)
    assert set(answer) == {"error"}


@pytest.mark.parametrize("path", ["/v2/models/linear", "/", "/docs", "/openapi.json", "/v1"])
def test_paths_outside_v1_are_libevents_404_page(server, path):
    """http_server.cc dispatches only paths matching (?i)/v1/.* to the handler; libevent 2.1.12 answers the rest
    (http.c evhttp_send_error: its ERR_FORMAT page, Content-Type text/html, Connection: close)."""
    host, port = urlsplit(server.rest).hostname, urlsplit(server.rest).port
    conn = httpclient.HTTPConnection(host, port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    assert (response.status, response.read().decode()) == (404, NOT_FOUND_PAGE)
    assert response.getheader("Content-Type") == "text/html" and response.getheader("Connection") == "close"
    conn.close()


def test_a_version_beyond_int64_is_400_with_no_body(server):
    """ParseModelInfo's "Failed to convert version" returns before the handler writes any JSON."""
    status, data = raw_request(server, "POST", "/v1/models/linear/versions/99999999999999999999:predict", b"{}")
    assert (status, data) == (400, b"")


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND"])
def test_a_method_libevent_does_not_take_is_501(server, method):
    """TF Serving's libevent takes GET, POST, HEAD, PUT, DELETE, OPTIONS and PATCH (evhttp_server.cc:115)."""
    status, data = raw_request(server, method, "/v1/models/linear")
    assert status == 501 and b"<TITLE>501 Not Implemented</TITLE>" in data


@pytest.mark.parametrize("origin, code", [("https://app.example", 200), ("", 400), ("file://x", 400)])
def test_options_is_a_cors_preflight(server, origin, code):
    """http_server.cc ProcessRequest: OPTIONS with an http(s) Origin is OK, without it FAILED_PRECONDITION; the
    handler never runs, so neither has a body."""
    status, data = raw_request(
        server, "OPTIONS", "/v1/models/linear:predict", headers={"Origin": origin} if origin else {}
    )
    assert (status, data) == (code, b"")


# ---------------------------------------------------------------- gRPC: tensors checked before anything is built
def tensor(dtype, dims, **values):
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        ),
    )
    for field, value in values.items():
        if field == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, field).extend(value)
    return proto


@pytest.mark.parametrize(
    "proto, message",
    [
        (tensor(types_pb2.DT_RESOURCE, [1, 2]), "DT_RESOURCE is not supported"),
        (tensor(types_pb2.DT_VARIANT, [1, 2]), "DT_VARIANT is not supported"),
        (tensor(types_pb2.DT_INVALID, [1, 2], float_val=[1, 2]), "DT_INVALID is not supported"),
        (tensor(999, [1, 2]), "dtype 999 is not supported"),
        (tensor(types_pb2.DT_FLOAT, [1, 2], tensor_content=b"\x00" * 7), "tensor_content holds 7 bytes"),
        (tensor(types_pb2.DT_FLOAT, [1, 2], tensor_content=b"\x00" * 12), "needs 8"),
        (tensor(types_pb2.DT_FLOAT, [1, 2], float_val=[1.0, 2.0, 3.0]), "3 values sent for shape [1, 2]"),
        (tensor(types_pb2.DT_FLOAT, [1, -2], float_val=[1.0, 2.0]), "negative dimension"),
        (tensor(types_pb2.DT_FLOAT, [20_000_000], float_val=[1.0]), "1 value(s) sent for shape [20000000]"),
        (tensor(types_pb2.DT_FLOAT, [1 << 40, 1 << 40], tensor_content=b"\x00" * 8), "tensor_content holds 8 bytes"),
        (tensor(types_pb2.DT_STRING, [1, 2], tensor_content=b"ab"), "cannot be sent as tensor_content"),
        (tensor(types_pb2.DT_FLOAT, [1, 2]), "0 value(s) sent"),
        (tensor(types_pb2.DT_STRING, [1, 2], string_val=[b"a"]), ""),
        (tensor(types_pb2.DT_FLOAT, [3, 2], float_val=[1.0, 2.0, 3.0, 4.0]), "4 value(s) sent"),
    ],
)
def test_grpc_malformed_tensors_are_invalid_argument(stubs, proto, message):
    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.inputs["x"].CopyFrom(proto)
    with pytest.raises(grpc.RpcError) as err:
        prediction.Predict(request, timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details()


def test_grpc_a_single_value_may_fill_a_small_tensor(stubs):
    prediction, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.inputs["x"].CopyFrom(tensor(types_pb2.DT_FLOAT, [3, 2], float_val=[1.0]))  # TensorFlow's fill rule
    out = tf.make_ndarray(prediction.Predict(request, timeout=30).outputs["dense"]).ravel().tolist()
    assert out == [11.0, 11.0, 11.0]


def test_grpc_bad_signature_and_wrong_dtypes_are_refused_as_tf_serving_refuses_them(stubs):
    """An unknown signature is FAILED_PRECONDITION (predict_util.cc); a tensor of another dtype than the input's
    is INVALID_ARGUMENT (TF Serving hands the TensorProto to the session as it is, which refuses it)."""
    prediction, _ = stubs
    for signature, proto, code, message in (
        ("nope", tf.make_tensor_proto([[1.0, 2.0]]), "FAILED_PRECONDITION", 'Serving signature key "nope" not found.'),
        ("", tf.make_tensor_proto([["a", "b"]]), "INVALID_ARGUMENT", "input 'x'"),
        (
            "",
            tf.make_tensor_proto([[1, 2]], dtype=tf.int64),
            "INVALID_ARGUMENT",
            "Expects arg to be float but int64 is provided",
        ),
        (
            "",
            tf.make_tensor_proto([[1, 2]], dtype=tf.float64),
            "INVALID_ARGUMENT",
            "Expects arg to be float but double is provided",
        ),
        ("", tf.make_tensor_proto([[1, 2]], dtype=tf.float16), "INVALID_ARGUMENT", "but half is provided"),
    ):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "linear", signature
        request.inputs["x"].CopyFrom(proto)
        with pytest.raises(grpc.RpcError) as err:
            prediction.Predict(request, timeout=30)
        assert err.value.code().name == code and message in err.value.details(), err.value.details()


def test_model_errors_keep_tensorflows_reason(tmp_path, world):
    """A model that fails on the input says why (TensorFlow's reason), not just "Graph execution error"."""
    root = tmp_path / "root"
    (root / "decoder").mkdir(parents=True)

    class Decoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image")])
        def serve(self, image):
            return {
                "pixels": tf.map_fn(
                    lambda b: tf.cast(tf.size(tf.io.decode_jpeg(b)), tf.float32), image, fn_output_signature=tf.float32
                )
            }

    module = Decoder()
    tf.saved_model.save(module, str(root / "decoder" / "1"), signatures={"serving_default": module.serve})
    server = Server(root)
    try:
        status, body, _ = http("POST", f"{server.rest}/v1/models/decoder:predict", {"instances": ["not a jpeg"]})
    finally:
        server.stop()
    assert status == 400
    assert "Graph execution error" not in body["error"] and "JPEG" in body["error"], body


# ---------------------------------------------------------------- availability
def stream_requests(server, failures, answers, stop, client=0, version=None):
    """One client's stream: (client, version that answered) appended per answer, in the order it got them."""
    url = f"{server.rest}/v1/models/linear" + (f"/versions/{version}" if version else "") + ":predict"
    for _ in range(3000):  # bounded
        if stop.is_set():
            return
        status, body, headers = http("POST", url, {"instances": [[1.0, 2.0]]})
        if status != 200:
            failures.append((status, body))
        else:
            answers.append((client, headers["x-model-version"]))


def test_rollback_under_load_fails_no_request(tmp_path):
    root = tmp_path / "root"
    (root / "linear").mkdir(parents=True)
    for version, bias in ((1, 3.0), (2, 10.0), (3, 100.0)):
        put_linear(root / "linear" / str(version), bias)
    server = Server(root)
    failures, answers, stop = [], [], threading.Event()
    threads = [threading.Thread(target=stream_requests, args=(server, failures, answers, stop, i)) for i in range(4)]
    try:
        for t in threads:
            t.start()

        def state():
            return f"answers {answers[-5:]}, failures {failures[:2]}; server: {server.log_lines[-5:]}"

        wait_until(lambda: len(answers) >= 20 or failures, 120, "20 answers from version 3", state)
        shutil.rmtree(root / "linear" / "3")  # roll back to 2 ...
        wait_until(lambda: answers and answers[-1][1] == "2", 120, "answers from version 2 after removing 3", state)
        shutil.rmtree(root / "linear" / "2")  # ... and to 1
        wait_until(lambda: answers and answers[-1][1] == "1", 120, "answers from version 1 after removing 2", state)
        mark = len(answers)
        wait_until(lambda: len(answers) >= mark + 20, 120, "20 more answers after the rollback", state)
        # the deleted version is served no more
        status, body, _ = http(
            "POST", f"{server.rest}/v1/models/linear/versions/2:predict", {"instances": [[1.0, 2.0]]}
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server.stop()
    assert failures == []
    assert {"3", "2", "1"} <= {v for _, v in answers}
    # each client, once answered by version 1 (or 2), is never answered by a removed newer version again (a
    # request already in flight when a version went may still finish on it; the next one may not)
    for client in range(4):
        mine = [v for c, v in answers if c == client]
        for version in ("2", "1"):
            if version in mine:
                assert max(mine[mine.index(version) :], key=int) == version, (client, mine)
    assert len(answers) >= mark + 20
    assert status == 404 and "Specific(linear, 2)" in body["error"]


def test_a_config_change_loads_a_version_while_other_clients_are_answered(world, tmp_path):
    """A model config that adds a version (titanic: seconds to load) while quick requests keep coming on other
    connections: every one is answered, and the version serves once loaded."""
    root = tmp_path / "root"
    shutil.copytree(world[1] / "titanic" / "1", root / "titanic" / "1")
    shutil.copytree(world[1] / "titanic" / "1", root / "titanic" / "2")
    (root / "linear").mkdir()
    put_linear(root / "linear" / "1", 3.0)
    config = root / "models.config"
    body = (
        'model_config_list {{ config {{ name: "linear" base_path: "linear" }} config {{ name: "titanic" '
        'base_path: "titanic" model_version_policy {{ specific {{ {versions} }} }} }} }}'
    )
    config.write_text(body.format(versions="versions: 2"))
    server = Server(root, "--model_config_file", str(config), "--model_config_file_poll_wait_seconds", "0.3")
    quick = []
    try:
        assert http("POST", f"{server.rest}/v1/models/titanic/versions/1:predict", titanic())[0] == 404
        tmp = root / "models.config.tmp"
        tmp.write_text(body.format(versions="versions: 1 versions: 2"))
        os.replace(tmp, config)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            quick.append(http("GET", f"{server.rest}/v1/models/linear")[0])
            if http("POST", f"{server.rest}/v1/models/titanic/versions/1:predict", titanic())[0] == 200:
                break
        else:
            raise AssertionError(f"version 1 never served: {server.log_lines[-5:]}")
    finally:
        server.stop()
    assert quick and set(quick) == {200}


def test_status_never_calls_an_unloadable_version_available(tmp_path):
    root = tmp_path / "root"
    (root / "linear").mkdir(parents=True)
    put_linear(root / "linear" / "2", 10.0)
    (root / "linear" / "1").mkdir()
    (root / "linear" / "1" / "saved_model.pb").write_bytes(b"not a protobuf")
    config = root / "models.config"  # both versions aspired: TF Serving's `all` policy
    config.write_text(
        'model_config_list { config { name: "linear" base_path: "linear" model_version_policy { all {} } } }'
    )
    server = Server(root, "--model_config_file", str(config))
    try:
        listing = http("GET", f"{server.rest}/v1/models/linear")[1]["model_version_status"]
        one = http("GET", f"{server.rest}/v1/models/linear/versions/1")[1]["model_version_status"]
        predict = http("POST", f"{server.rest}/v1/models/linear/versions/1:predict", {"instances": [[1.0, 2.0]]})
    finally:
        server.stop()
    states = {s["version"]: s["state"] for s in listing}
    assert states["2"] == "AVAILABLE" and states["1"] != "AVAILABLE"
    assert one[0]["state"] == "END" and one[0]["status"]["error_code"] != "OK"
    assert "could not be loaded" in one[0]["status"]["error_message"]
    assert str(root) not in json.dumps(one)
    assert predict[0] == 404


def test_a_client_that_disconnects_mid_body_logs_one_line(server):
    host, port = urlsplit(server.rest).hostname, urlsplit(server.rest).port
    before = len(server.log_lines)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"instances": [[1.0,'
        )
        time.sleep(0.3)
    deadline = time.monotonic() + 10
    while not any("client went away" in line for line in server.log_lines[before:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    new = server.log_lines[before:]
    assert sum("client went away" in line for line in new) == 1, new
    assert not any("Traceback" in line for line in new)
    assert http("POST", f"{server.rest}/v1/models/linear:predict", {"instances": [[1.0, 2.0]]})[0] == 200


def test_a_large_body_is_read_and_answered(server):
    body = {"instances": [[1.0, 2.0]] * 200_000}  # ~2.4 MB
    status, answer, _ = http("POST", f"{server.rest}/v1/models/linear:predict", body)
    assert status == 200 and len(answer["predictions"]) == 200_000


# ---------------------------------------------------------------- Predict takes any signature by name
def titanic_example(row=TITANIC_ROW) -> str:
    """A serialized tf.Example of a Titanic row, base64 as TF Serving's JSON carries binary data."""
    import base64

    example = tf.train.Example()
    for key, value in row.items():
        feature = example.features.feature[key]
        if isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        elif isinstance(value, float):
            feature.float_list.value.append(value)
        else:
            feature.int64_list.value.append(value)
    return base64.b64encode(example.SerializeToString()).decode()


def test_predict_runs_the_classify_and_regress_signatures_by_name(server):
    """predict_util.cc RunPredict: any signature named in the request, fed its named inputs; here the classify
    signature's `inputs` (serialized tf.Examples) give the probability the raw signature gives."""
    status, raw, _ = http("POST", f"{server.rest}/v1/models/titanic:predict", titanic())
    assert status == 200
    probability = raw["predictions"][0][0]
    b64 = {"b64": titanic_example()}
    for body in ({"instances": [b64]}, {"instances": [{"inputs": b64}]}, {"inputs": [b64]}):
        status, answer, _ = http(
            "POST", f"{server.rest}/v1/models/titanic:predict", {"signature_name": "classify", **body}
        )
        assert status == 200, answer
        rows = answer["predictions"] if "predictions" in answer else [{k: v[0] for k, v in answer["outputs"].items()}]
        assert rows[0]["classes"] == ["0", "1"] and abs(rows[0]["scores"][1] - probability) < 1e-6
        status, answer, _ = http(
            "POST", f"{server.rest}/v1/models/titanic:predict", {"signature_name": "regress", **body}
        )
        assert status == 200, answer
        value = answer["predictions"][0] if "predictions" in answer else answer["outputs"][0]
        assert abs(value - probability) < 1e-6


def test_no_request_to_any_signature_by_any_verb_is_a_500(server):
    """Every signature the model has, through each verb, with bodies that fit it, fit another one, or fit none:
    each answer is 200 or a 4xx naming why, never a 500 (a 500 is a bug; the client cannot fix it)."""
    status, meta, _ = http("GET", f"{server.rest}/v1/models/titanic/metadata")
    signatures = list(meta["metadata"]["signature_def"]["signature_def"]) + ["", "nope"]
    b64 = {"b64": titanic_example()}
    bodies = [
        {"instances": [TITANIC_ROW]},
        {"inputs": {k: [v] for k, v in TITANIC_ROW.items()}},
        {"instances": [b64]},
        {"instances": [{"examples": b64}]},
        {"inputs": [b64, b64]},
        {"examples": [TITANIC_ROW]},
        {"examples": [{"Age": "x"}]},
        {"instances": [{"b64": "bm90IGFuIGV4YW1wbGU="}]},  # base64 of text that is not a tf.Example
        {"instances": [[]]},
    ]
    seen = set()
    for signature in signatures:
        for verb in ("predict", "classify", "regress"):
            for body in bodies:
                body = dict(body, signature_name=signature) if signature else body
                code, data = raw_request(server, "POST", f"/v1/models/titanic:{verb}", json.dumps(body).encode())
                assert code < 500, (signature, verb, body, data[:300])
                assert "error" in json.loads(data) or code == 200
                seen.add(code)
    assert 200 in seen and 400 in seen  # the bodies reached both outcomes
