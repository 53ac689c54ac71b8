"""What the serving tests share: a real server process on free loopback ports, an HTTP helper, a tiny model."""

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from orchestration.config import PROJECT_ROOT


def save_linear(path: Path, bias: float) -> Path:
    """The book's chapter 6-6 model: y = 2*x1 - x2 + bias, one input of shape [None, 2]."""
    inputs = tf.keras.Input(shape=(2,), name="x")
    dense = tf.keras.layers.Dense(1, name="dense")
    model = tf.keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[2.0], [-1.0]], np.float32), np.array([bias], np.float32)])
    staging = path.parent / f".staging-{path.name}"
    tf.saved_model.save(model, str(staging))
    return staging


def save_typed(path: Path) -> Path:
    """A model whose one signature declares its inputs out of name order and of four dtypes, so a tensor given
    to the wrong input shows in the answer: out = 100*zeta + 10*alpha + len(mid) + flag. Plus a `classify`
    signature (method tensorflow/serving/classify) over tf.Examples with a float feature "x"."""
    from modeling.signatures import CLASSIFY_METHOD, set_method_names

    class Typed(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64, name="zeta"),
                tf.TensorSpec([None], tf.float32, name="alpha"),
                tf.TensorSpec([None], tf.string, name="mid"),
                tf.TensorSpec([None], tf.bool, name="flag"),
            ]
        )
        def predict(self, zeta, alpha, mid, flag):
            out = (
                tf.cast(zeta, tf.float32) * 100.0
                + alpha * 10.0
                + tf.cast(tf.strings.length(mid), tf.float32)
                + tf.cast(flag, tf.float32)
            )
            return {"out": out}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            x = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            p = tf.sigmoid(x)
            scores = tf.concat([1.0 - p, p], axis=1)
            classes = tf.tile(tf.constant([["no", "yes"]]), [tf.shape(x)[0], 1])
            return {"scores": scores, "classes": classes}

    module = Typed()
    staging = path.parent / f".staging-{path.name}"
    tf.saved_model.save(
        module, str(staging), signatures={"serving_default": module.predict, "classify": module.classify}
    )
    set_method_names(str(staging), {"classify": CLASSIFY_METHOD})
    return staging


class Server:
    def __init__(self, root: Path, *extra: str):
        self.log_lines = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.server",
                "--serving-root",
                str(root),
                "--rest-port",
                "0",
                "--grpc-port",
                "0",
                "--poll-seconds",
                "0.3",
                *extra,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.rest = self.grpc = None
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 120
        while (self.rest is None or self.grpc is None) and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + "\n".join(self.log_lines[-30:]))
            time.sleep(0.1)
        if self.rest is None:
            raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines[-30:]))

    def _read(self):
        for line in self.proc.stdout:
            self.log_lines.append(line.rstrip())
            if line.startswith("REST listening on "):
                self.rest = line.split()[-1]
            elif line.startswith("gRPC listening on "):
                self.grpc = line.split()[-1]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_until(condition, timeout_s: float, what: str, context=lambda: "") -> None:
    """Polls `condition` until true; past the deadline the test fails saying what it waited for (and `context()`,
    e.g. the server's last lines): no wait in the suite is without an end."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:.0f} s for {what}; {context()}")
        time.sleep(0.05)


def http(method, url, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


@contextlib.contextmanager
def grpc_stubs(server):
    """(PredictionService, ModelService) stubs on the server's gRPC port."""
    channel = grpc.insecure_channel(server.grpc)
    try:
        yield (
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )
    finally:
        channel.close()
