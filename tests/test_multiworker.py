"""multi_worker_mirrored really trains across processes: two workers on loopback with TF_CONFIG."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from metadata import results
from orchestration.config import PROJECT_ROOT
from orchestration.factory import trainer_settings
from pipelines.titanic.spec import SPEC

pytestmark = pytest.mark.slow  # the longer tier's: two TF processes training together


def free_ports(n):
    """n ports the OS reports free. TensorFlow's gRPC server refuses SO_REUSEPORT (grpc_server_lib.cc sets
    NoReusePortOption, to detect conflicts), so a port cannot be held for it while it starts: a port taken in
    between makes a worker fail to bind, and the test then starts both again on new ports (at most 3 times)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def train_on_two_workers(code):
    for attempt in range(3):
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
        workers = []
        for index in range(2):
            env = dict(
                os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            )
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-c", code],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        try:
            outputs = [w.communicate(timeout=600)[0] for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait()
        lost_port = any("Address already in use" in o or "Failed to add port" in o for o in outputs)
        if not lost_port or attempt == 2:
            return workers, outputs


def test_two_workers_train_and_the_chief_exports(titanic_run, tmp_path, run_fn_code):
    store = results.open_store(titanic_run.metadata_path("titanic"))
    _, transform = results.latest_outputs(store, "titanic", "Transform")
    settings = trainer_settings(SPEC, titanic_run.replace(strategy="multi_worker_mirrored", epochs=3))
    code = run_fn_code(transform, settings, tmp_path / "serving_model", tmp_path / "model_run")
    workers, outputs = train_on_two_workers(code)
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    chief = json.loads((tmp_path / "model_run" / "training_run.json").read_text())
    other = json.loads((tmp_path / "model_run" / "training_run.worker-1.json").read_text())
    for record, index in ((chief, 0), (other, 1)):
        assert record["strategy"]["class"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
        assert record["strategy"]["num_replicas"] == 2  # one replica per worker, in sync
        assert record["task"] == {"type": "worker", "index": index, "chief": index == 0}
        assert len(record["history"]["loss"]) == 3
    assert chief["history"]["loss"] == other["history"]["loss"]  # all-reduced: both saw the same global loss

    check = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import tensorflow as tf
        model = tf.saved_model.load({str(tmp_path / "serving_model")!r})
        out = model.signatures["serving_raw"](Age=tf.constant([30.0]), Fare=tf.constant([20.0]),
            Pclass=tf.constant([1], tf.int64), SibSp=tf.constant([0], tf.int64), Parch=tf.constant([0], tf.int64),
            Sex=tf.constant(["female"]), Embarked=tf.constant(["S"]), Ticket=tf.constant(["X"]),
            Cabin=tf.constant(["C85"]))["probability"].numpy()
        assert 0.0 < out[0][0] < 1.0, out
        print("ok", out[0][0])
    """),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0 and check.stdout.startswith("ok"), check.stderr[-2000:]
    assert {"saved_model.pb", "variables"} <= set(os.listdir(tmp_path / "serving_model"))
