"""The Titanic pipeline end to end: the session's shared run (started as `make run` starts it: the TFX CLI on the
local engine, real components, real Beam, real ML Metadata), then, on a private fork of it, a rerun (fully cached),
a run with an impossible AUC bound (no push) and a batch with a column missing (stops before training); and two
trainings from scratch in fresh processes on the run's Transform output (the same weights, bit for bit).
"""

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest

import shared_runs
from metadata import results
from orchestration.factory import trainer_settings
from pipelines.titanic.spec import SPEC


@pytest.fixture(scope="module")
def run(run_pipeline):
    return lambda cfg, data_root=None: run_pipeline(SPEC, cfg, data_root=data_root)


@pytest.fixture(scope="module")
def states(node_states):
    return lambda cfg: node_states(SPEC, cfg)


def serving_listing(cfg):
    root = cfg.serving_root("titanic")
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def cfg(titanic_run):
    return titanic_run


@pytest.fixture(scope="module")
def forked(titanic_run, tmp_path_factory):
    """The reruns below go on in order on one private copy of the shared run (its ML Metadata and serving folder),
    so the shared run, which other tests read, never changes."""
    return shared_runs.fork(titanic_run, tmp_path_factory.mktemp("titanic_fork"))


def test_every_component_ran_and_the_model_was_blessed_and_pushed(cfg, states):
    assert sorted(states(cfg)) == sorted(
        [
            "CsvExampleGen",
            "StatisticsGen",
            "ImportSchemaGen",
            "ExampleValidator",
            "AnomaliesGate",
            "Transform",
            "Trainer",
            "ServedBaseline",
            "Evaluator",
            "Pusher",
        ]
    )  # in topological order, which TFX chooses
    assert states(cfg) == {node: ["COMPLETE"] for node in states(cfg)}
    result = results.last_run("titanic", cfg)
    assert result.blessed is True and result.pushed is True
    assert result.overall("auc") >= 0.80 and result.overall("ks") >= 0.40
    assert result.overall("example_count") == 179
    for name in ("Sex=male", "Sex=female", "Pclass=1", "Pclass=2", "Pclass=3"):
        assert "auc" in result.metrics[name] and "ks" in result.metrics[name]
    versions = os.listdir(cfg.serving_root("titanic"))
    assert versions == [result.pushed_version]
    assert (cfg.serving_root("titanic") / result.pushed_version / "saved_model.pb").is_file()


def test_training_left_tensorboard_logs_and_a_record(cfg):
    store = results.open_store(cfg.metadata_path("titanic"))
    _, outputs = results.latest_outputs(store, "titanic", "Trainer")
    run_dir = Path(outputs["model_run"][0].uri)
    record = json.loads((run_dir / "training_run.json").read_text())
    assert record["settings"]["seed"] == 42 and record["strategy"]["num_replicas"] == 1
    assert len(record["history"]["loss"]) == SPEC.epochs
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((run_dir / "logs" / "validation").glob("events.out.tfevents.*"))


def test_pushed_model_serves_both_signatures_alike_in_plain_tensorflow(cfg, titanic_data, run_python):
    result = results.last_run("titanic", cfg)
    code = textwrap.dedent(f"""
        import csv, json, math
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({result.pushed_destination!r})
        rows = list(csv.DictReader(open({str(titanic_data / "test.csv")!r})))
        floats, ints = ("Age", "Fare"), ("Pclass", "SibSp", "Parch")
        def example(row):
            feature = {{}}
            for key in ("Age", "Fare", "Pclass", "SibSp", "Parch", "Sex", "Embarked", "Ticket", "Cabin"):
                if row[key] == "":
                    continue  # a missing value is an absent feature
                if key in floats:
                    feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(row[key])]))
                elif key in ints:
                    feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row[key])]))
                else:
                    feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[row[key].encode()]))
            return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        by_example = model.signatures["serving_examples"](examples=tf.constant([example(r) for r in rows]))
        raw = {{k: tf.constant([float(r[k]) if r[k] else math.nan for r in rows], tf.float32) for k in floats}}
        raw.update({{k: tf.constant([int(r[k]) for r in rows], tf.int64) for k in ints}})
        raw.update({{k: tf.constant([r[k] for r in rows]) for k in ("Sex", "Embarked", "Ticket", "Cabin")}})
        by_raw = model.signatures["serving_raw"](**raw)
        print(json.dumps({{"example": by_example["probability"].numpy().ravel().tolist(),
                          "raw": by_raw["probability"].numpy().ravel().tolist(),
                          "labels": [int(r["Survived"]) for r in rows]}}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    import numpy as np
    from sklearn.metrics import roc_auc_score

    assert len(out["example"]) == len(out["raw"]) == 179
    np.testing.assert_allclose(out["example"], out["raw"], rtol=1e-5, atol=1e-6)
    assert all(0.0 <= p <= 1.0 for p in out["example"])
    # the served model scores the eval split as well as the Evaluator said it would
    assert roc_auc_score(out["labels"], out["example"]) == pytest.approx(result.overall("auc"), abs=0.005)


def test_rerun_with_nothing_changed_is_fully_cached(forked, run, states):
    """The first rerun has one new input: the first model is now served, so ServedBaseline copies it and the
    Evaluator compares the model with itself once (and the Pusher sees it is already serving). From then on all
    is cached."""
    cfg = forked
    before = serving_listing(cfg)
    run(cfg)
    nodes = list(states(cfg))
    upstream = nodes[: nodes.index("ServedBaseline")]
    assert {n: s for n, s in states(cfg).items() if n in upstream} == {n: ["COMPLETE", "CACHED"] for n in upstream}
    assert states(cfg)["ServedBaseline"] == ["COMPLETE", "COMPLETE"]
    rerun = results.last_run("titanic", cfg)
    assert rerun.blessed is True and rerun.baseline_version == rerun.pushed_version
    run(cfg)
    assert [s[-1] for s in states(cfg).values()] == ["CACHED"] * len(states(cfg))
    assert serving_listing(cfg) == before


def test_impossible_threshold_blesses_nothing_and_pushes_nothing(forked, run, states):
    cfg = forked
    before = serving_listing(cfg)
    strict = cfg.replace(min_auc=0.999)
    run(strict)
    after = states(cfg)
    assert after["Trainer"][-1] == "CACHED"  # same data and code: only evaluation reran
    assert after["Evaluator"][-1] == "COMPLETE" and after["Pusher"][-1] == "COMPLETE"
    result = results.last_run("titanic", strict)
    assert result.blessed is False and result.pushed is False
    assert any("overall auc" in f and ">= 0.999" in f for f in result.failures), result.failures
    assert serving_listing(cfg) == before


def test_missing_column_stops_before_training(forked, titanic_data, tmp_path, run, states):
    cfg = forked
    bad = tmp_path / "titanic"
    bad.mkdir()
    for name in ("train.csv", "test.csv"):
        with open(titanic_data / name) as src, open(bad / name, "w", newline="") as dst:
            reader = csv.DictReader(src)
            fields = [f for f in reader.fieldnames if f != "Fare"]
            writer = csv.DictWriter(dst, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(reader)
    trainer_runs = len(states(cfg)["Trainer"])
    before = serving_listing(cfg)
    with pytest.raises(Exception) as err:
        run(cfg, data_root=str(bad))
    message = str(err.value)
    assert "feature 'Fare': Column dropped" in message, message
    after = states(cfg)
    assert after["AnomaliesGate"][-1] == "FAILED"
    assert len(after["Trainer"]) == trainer_runs  # no training happened
    assert serving_listing(cfg) == before


def _trained_weights(model_dir: Path) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(model_dir / "variables" / "variables"))
    weights = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        if name == "_CHECKPOINTABLE_OBJECT_GRAPH":  # the object structure, not a weight
            continue
        value = reader.get_tensor(name)
        weights[name] = value if isinstance(value, bytes) else (value.dtype.str, value.tobytes())
    return weights


def test_same_seed_from_scratch_gives_the_same_weights_bit_for_bit(cfg, tmp_path, run_python, run_fn_code):
    """A training from nothing in a fresh process, with the run's own Trainer settings on its Transform output: the
    same loss curve and bit for bit the same weights as the shared run's model, which `make run` also trained in a
    fresh process (CPU, op determinism on)."""
    store = results.open_store(cfg.metadata_path("titanic"))
    _, transform = results.latest_outputs(store, "titanic", "Transform")
    _, trainer = results.latest_outputs(store, "titanic", "Trainer")
    proc = run_python(run_fn_code(transform, trainer_settings(SPEC, cfg), tmp_path / "model", tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = _trained_weights(tmp_path / "model")
    assert len(weights) > 10
    assert weights == _trained_weights(Path(trainer["model"][0].uri) / "Format-Serving")
    record = json.loads((tmp_path / "run" / "training_run.json").read_text())
    shared = json.loads((Path(trainer["model_run"][0].uri) / "training_run.json").read_text())
    assert record["history"] == shared["history"]


@pytest.mark.slow
def test_trainer_run_fn_trains_on_two_mirrored_replicas(cfg, tmp_path, run_python, run_fn_code):
    """The real run_fn on this pipeline's transformed examples, under `mirrored` with two logical CPUs."""
    store = results.open_store(cfg.metadata_path("titanic"))
    _, transform = results.latest_outputs(store, "titanic", "Transform")
    settings = trainer_settings(SPEC, cfg.replace(strategy="mirrored", epochs=2))
    code = run_fn_code(
        transform,
        settings,
        tmp_path / "serving_model",
        tmp_path / "model_run",
        preamble="""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """,
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "model_run" / "training_run.json").read_text())
    assert record["strategy"]["class"] == "MirroredStrategy"
    assert record["strategy"]["num_replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in record["strategy"]["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert len(record["history"]["loss"]) == 2 and record["history"]["loss"][1] < record["history"]["loss"][0]
    assert (tmp_path / "serving_model" / "saved_model.pb").is_file()
