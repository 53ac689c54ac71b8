"""Retraining on new spans: the last blessed model is the baseline; a bad batch changes nothing, a good one is
pushed as a new version whose lineage names both spans and says why it was retrained; a span that drifted is
flagged on exactly the features that moved, and stopped before training under DRIFT=block."""

import csv
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import pytest
from tfx import v1 as tfx

from metadata import lineage, results
from metadata.report import write_report
from orchestration import config as config_lib
from orchestration.factory import create_pipeline
from pipelines.titanic.spec import SPEC


def write_span(root, span, titanic_data, transform_rows=None):
    folder = root / "titanic" / f"span-{span}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(titanic_data / "test.csv", folder / "test.csv")
    with open(titanic_data / "train.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    rows = transform_rows(rows) if transform_rows else rows
    with open(folder / "train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def shuffled_labels(rows):
    labels = [r["Survived"] for r in rows]
    random.Random(0).shuffle(labels)
    return [dict(r, Survived=label) for r, label in zip(rows, labels)]


def older_and_reversed(rows):
    """Every passenger 20 years older, and the other sex."""
    return [
        dict(r, Age=str(float(r["Age"]) + 20) if r["Age"] else "", Sex={"male": "female", "female": "male"}[r["Sex"]])
        for r in rows
    ]


def flagged(drift):
    return {f["feature"] for f in drift["features"] if f["flagged"]}


def listing(cfg):
    root = cfg.serving_root("titanic")
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def new_cfg(tmp_path_factory, name):
    base = tmp_path_factory.mktemp(name)
    # a training-order change moves AUC by a point or two; this scenario is about the baseline, not noise
    return config_lib.PipelineConfig(output_dir=base / "out", data_dir=base / "data", max_auc_drop=0.05)


def run(cfg):
    tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, cfg))


@pytest.mark.pipeline
def test_span_1_then_span_2_is_judged_against_the_first_model_and_a_drifted_span_3_is_blocked(
    tmp_path_factory, titanic_data
):
    """What `make test` keeps of retraining: a first model, a new span trained, judged against it, pushed, with
    its lineage; then a drifted span stopped before training under DRIFT=block."""
    cfg = new_cfg(tmp_path_factory, "retrain")
    write_span(cfg.data_dir, 1, titanic_data)
    run(cfg)
    first = results.last_run("titanic", cfg)
    assert first.blessed and first.pushed
    assert first.drift["current_span"] == 1 and first.drift["compared"] is False  # nothing before span 1
    report = lineage.lineage("titanic", cfg)
    assert report["data"]["span"] == 1 and report["baseline"] is None
    assert report["why"]["changed"] == ["first model: nothing was serving"]

    span2 = write_span(cfg.data_dir, 2, titanic_data, lambda rows: rows[::-1])
    run(cfg)
    good = results.last_run("titanic", cfg)
    assert good.blessed and good.pushed and good.pushed_version != first.pushed_version
    assert (good.drift["current_span"], good.drift["previous_span"], good.drift["compared"]) == (2, 1, True)
    assert flagged(good.drift) == set() and len(good.drift["features"]) == len(SPEC.drift_thresholds)
    assert sorted(os.listdir(cfg.serving_root("titanic"))) == sorted([first.pushed_version, good.pushed_version])
    assert "auc" in good.changes["overall"]  # it was compared with a baseline
    report = lineage.lineage("titanic", cfg)
    assert report["version"] == good.pushed_version == report["serving_now"]
    assert report["data"]["span"] == 2 and report["baseline"]["span"] == 1
    assert report["baseline"]["served_version"] == first.pushed_version == good.baseline_version
    files = {f["split"]: f for f in report["data"]["files"]}
    assert files["train"]["sha256"] == hashlib.sha256((span2 / "train.csv").read_bytes()).hexdigest()
    assert report["why"]["changed"] == ["new span 2 (the baseline was trained on span 1)"]

    # span 3 drifted (older passengers, the other sex): under DRIFT=block the run stops before Transform,
    # naming exactly those features with distance and threshold; nothing trained, nothing pushed
    store = results.open_store(cfg.metadata_path("titanic"))
    before, trainings = listing(cfg), len(results.node_executions(store, "titanic", "Trainer"))
    write_span(cfg.data_dir, 3, titanic_data, older_and_reversed)
    with pytest.raises(Exception) as err:
        run(cfg.replace(drift="block"))
    message = str(err.value)
    assert type(err.value).__name__ == "DataDriftError" and "span 3 against span 2" in message, message
    assert re.search(r"'Age': Jensen-Shannon distance 0\.\d+ > threshold 0\.1\b", message), message
    assert re.search(r"'Sex': L-infinity distance 0\.\d+ > threshold 0\.1\b", message), message
    assert not [f for f in SPEC.drift_thresholds if f not in ("Age", "Sex") and f"'{f}'" in message], message
    assert listing(cfg) == before and len(results.node_executions(store, "titanic", "Trainer")) == trainings


@pytest.mark.slow
def test_spans_baseline_bad_batch_then_good_batch(tmp_path_factory, titanic_data):
    """The whole story (the longer tier): a bad batch blessed against nothing, its fix re-ingested, warm start,
    drift under warn shown in the summary, the report and the lineage."""
    cfg = new_cfg(tmp_path_factory, "retrain_all")
    write_span(cfg.data_dir, 1, titanic_data)
    run(cfg)
    first = results.last_run("titanic", cfg)
    assert first.blessed and first.pushed
    assert first.drift["current_span"] == 1 and first.drift["compared"] is False  # nothing before span 1
    report = lineage.lineage("titanic", cfg)
    assert report["data"]["span"] == 1 and report["baseline"] is None
    assert report["why"]["changed"] == ["first model: nothing was serving"]

    # span 2 with shuffled labels: trained, judged against the span-1 model, not blessed, nothing pushed
    before = listing(cfg)
    span2 = write_span(cfg.data_dir, 2, titanic_data, shuffled_labels)
    run(cfg)
    bad = results.last_run("titanic", cfg)
    assert bad.blessed is False and bad.pushed is False
    assert bad.overall("auc") < 0.7
    # the features did not move (only the labels did): compared with span 1, nothing flagged
    assert (bad.drift["current_span"], bad.drift["previous_span"], bad.drift["compared"]) == (2, 1, True)
    assert flagged(bad.drift) == set() and len(bad.drift["features"]) == len(SPEC.drift_thresholds)
    assert any("overall auc" in f for f in bad.failures), bad.failures
    assert listing(cfg) == before

    # the batch is fixed (same span, new content): re-ingested, blessed against the span-1 model, pushed
    write_span(cfg.data_dir, 2, titanic_data, lambda rows: rows[::-1])
    run(cfg)
    good = results.last_run("titanic", cfg)
    assert good.blessed and good.pushed and good.pushed_version != first.pushed_version
    assert sorted(os.listdir(cfg.serving_root("titanic"))) == sorted([first.pushed_version, good.pushed_version])
    assert "auc" in good.changes["overall"]  # it was compared with a baseline

    report = lineage.lineage("titanic", cfg)
    assert report["version"] == good.pushed_version == report["serving_now"]
    assert report["data"]["span"] == 2 and report["baseline"]["span"] == 1
    assert report["baseline"]["model"] == first.model_uri
    assert report["baseline"]["served_version"] == first.pushed_version == good.baseline_version
    assert bad.baseline_version == first.pushed_version and first.baseline_version is None
    files = {f["split"]: f for f in report["data"]["files"]}
    assert files["train"]["path"] == str(span2 / "train.csv")
    assert files["train"]["sha256"] == hashlib.sha256((span2 / "train.csv").read_bytes()).hexdigest()
    assert files["eval"]["sha256"] == hashlib.sha256((titanic_data / "test.csv").read_bytes()).hexdigest()
    assert report["data"]["unchanged_since_ingestion"] is True
    assert report["schema"]["sha256"] and report["transform_graph"].endswith(tuple("0123456789"))
    training = report["training"]
    assert (training["strategy"], training["seed"], training["epochs_run"], training["replicas"]) == (
        "default",
        42,
        SPEC.epochs,
        1,
    )
    assert re.fullmatch(r"[0-9a-f]{40}", report["code"]["commit"]) and isinstance(report["code"]["dirty"], bool)
    assert report["packages"]["tfx"] == "1.16.0" and report["packages"]["tensorflow"].startswith("2.16")
    assert report["evaluation"]["blessed"] is True
    assert report["evaluation"]["metrics"]["overall"]["auc"] == pytest.approx(good.overall("auc"))
    text = lineage.format_report(report)
    assert f"version {good.pushed_version}" in text and "span 2" in text and "trained on span 1" in text
    assert report["why"]["changed"] == ["new span 2 (the baseline was trained on span 1)"]
    assert report["why"]["baseline_version"] == first.pushed_version and "auc" in report["why"]["metric_deltas"]
    assert "no feature drifted against span 1" in text and "why retrained  new span 2" in text

    # warm start: the Trainer starts from the latest blessed model's weights and records it
    warm = cfg.replace(warm_start=True)
    run(warm)
    store = results.open_store(cfg.metadata_path("titanic"))
    trainer_run, trainer_out = results.latest_outputs(store, "titanic", "Trainer")
    record = json.loads((Path(trainer_out["model_run"][0].uri) / "training_run.json").read_text())
    base_model = results.inputs_of(store, trainer_run)["base_model"][0]
    assert results.custom(base_model, "served_version") == good.pushed_version
    assert record["warm_started_from"] == str(Path(base_model.uri) / "Format-Serving")

    # asking for the first version gives its own lineage; an unknown version is a clear error
    assert lineage.lineage("titanic", cfg, first.pushed_version)["data"]["span"] == 1
    assert lineage.lineage("titanic", cfg, good.pushed_version)["baseline"]["span"] == 1
    with pytest.raises(lineage.LineageError, match="version 123 was not pushed"):
        lineage.lineage("titanic", cfg, "123")

    # span 3 drifted (older passengers, the other sex): under DRIFT=block the run stops before Transform,
    # naming exactly those features with distance and threshold; nothing trained, nothing pushed
    before, trainings = listing(cfg), len(results.node_executions(store, "titanic", "Trainer"))
    write_span(cfg.data_dir, 3, titanic_data, older_and_reversed)
    with pytest.raises(Exception) as err:
        run(cfg.replace(drift="block"))
    message = str(err.value)
    assert type(err.value).__name__ == "DataDriftError" and "span 3 against span 2" in message, message
    assert re.search(r"'Age': Jensen-Shannon distance 0\.\d+ > threshold 0\.1\b", message), message
    assert re.search(r"'Sex': L-infinity distance 0\.\d+ > threshold 0\.1\b", message), message
    assert not [f for f in SPEC.drift_thresholds if f not in ("Age", "Sex") and f"'{f}'" in message], message
    assert listing(cfg) == before and len(results.node_executions(store, "titanic", "Trainer")) == trainings

    # warn (the default): the run goes on; the summary, the report and the lineage of the pushed model say so
    # (bounds opened so that this model is pushed: the point here is what its lineage tells)
    run(cfg.replace(min_auc=0.0, min_ks=0.0, max_auc_drop=1.0, epochs=2))
    drifted = results.last_run("titanic", cfg)
    assert drifted.pushed and flagged(drifted.drift) == {"Age", "Sex"}
    summary = results.format_result(drifted)
    assert "DRIFT          span 3: drift against span 2: 'Age' Jensen-Shannon" in summary, summary
    page = write_report("titanic", cfg).read_text()
    assert 'data-feature="Age" data-flagged="true"' in page and 'data-feature="Sex" data-flagged="true"' in page
    assert 'data-feature="Fare" data-flagged="false"' in page and "2 of 7 features drifted" in page
    assert re.findall(r'data-plot="(\w+)"', page) == ["Age", "Sex"]  # distributions of the drifted ones only
    assert "why retrained  new span 3 (the baseline was trained on span 2)" in page
    report = lineage.lineage("titanic", cfg)
    assert report["version"] == drifted.pushed_version and flagged(report["data"]["drift"]) == {"Age", "Sex"}
    assert "drift          drift against span 2: 'Age'" in lineage.format_report(report)


def test_verify_env_reports_differences(tmp_path):
    from ops import verify_env

    pins = verify_env.read_pins(config_lib.PROJECT_ROOT / "constraints.txt")
    assert pins["tfx"] == "1.16.0" and pins["kfp"] == "2.5.0" and pins["protobuf"] == "3.20.3"
    differ, missing, _ = verify_env.compare(pins, {**{k: v for k, v in pins.items() if k != "kfp"}, "tfx": "1.15.0"})
    assert differ == [("tfx", "1.16.0", "1.15.0")] and missing == [("kfp", "2.5.0")]
    assert verify_env.main([]) == 0  # this environment is the pinned one
    bad = tmp_path / "c.txt"
    bad.write_text("tfx==0.0.1\n")
    assert verify_env.main(["--constraints", str(bad)]) == 1
