"""multi_worker_mirrored really trains across processes: two workers on loopback with TF_CONFIG."""
import json
import os
import socket
import subprocess
import sys
import textwrap

from pipelines.metadata import results
from pipelines.config import PROJECT_ROOT
from pipelines.factory import trainer_settings
from pipelines.titanic.spec import SPEC


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_train_and_the_chief_exports(titanic_run, tmp_path, run_fn_code):
    store = results.open_store(titanic_run.metadata_path("titanic"))
    _, transform = results.latest_outputs(store, "titanic", "Transform")
    settings = trainer_settings(SPEC, titanic_run.replace(strategy="multi_worker_mirrored", epochs=3))
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    code = run_fn_code(transform, settings, tmp_path / "serving_model", tmp_path / "model_run")
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    chief = json.loads((tmp_path / "model_run" / "training_run.json").read_text())
    other = json.loads((tmp_path / "model_run" / "training_run.worker-1.json").read_text())
    for record, index in ((chief, 0), (other, 1)):
        assert record["strategy"]["class"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
        assert record["strategy"]["num_replicas"] == 2  # one replica per worker, in sync
        assert record["task"] == {"type": "worker", "index": index, "chief": index == 0}
        assert len(record["history"]["loss"]) == 3
    assert chief["history"]["loss"] == other["history"]["loss"]  # all-reduced: both saw the same global loss

    check = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import tensorflow as tf
        model = tf.saved_model.load({str(tmp_path / "serving_model")!r})
        out = model.signatures["serving_raw"](Age=tf.constant([30.0]), Fare=tf.constant([20.0]),
            Pclass=tf.constant([1], tf.int64), SibSp=tf.constant([0], tf.int64), Parch=tf.constant([0], tf.int64),
            Sex=tf.constant(["female"]), Embarked=tf.constant(["S"]), Ticket=tf.constant(["X"]),
            Cabin=tf.constant(["C85"]))["probability"].numpy()
        assert 0.0 < out[0][0] < 1.0, out
        print("ok", out[0][0])
    """)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and check.stdout.startswith("ok"), check.stderr[-2000:]
    assert {"saved_model.pb", "variables"} <= set(os.listdir(tmp_path / "serving_model"))
