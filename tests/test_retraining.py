"""Retraining on new spans: the last blessed model is the baseline; a bad batch changes nothing, a good one is
pushed as a new version whose lineage names both spans."""
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

from pipelines import config as config_lib
from pipelines.metadata import lineage
from pipelines.metadata import results
from pipelines.factory import create_pipeline
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


def listing(cfg):
    root = cfg.serving_root("titanic")
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    base = tmp_path_factory.mktemp("retrain")
    # a training-order change moves AUC by a point or two; this scenario is about the baseline, not noise
    return config_lib.PipelineConfig(output_dir=base / "out", data_dir=base / "data", max_auc_drop=0.05)


def run(cfg):
    tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, cfg))


def test_spans_baseline_bad_batch_then_good_batch(cfg, titanic_data):
    write_span(cfg.data_dir, 1, titanic_data)
    run(cfg)
    first = results.last_run("titanic", cfg)
    assert first.blessed and first.pushed
    report = lineage.lineage("titanic", cfg)
    assert report["data"]["span"] == 1 and report["baseline"] is None

    # span 2 with shuffled labels: trained, judged against the span-1 model, not blessed, nothing pushed
    before = listing(cfg)
    span2 = write_span(cfg.data_dir, 2, titanic_data, shuffled_labels)
    run(cfg)
    bad = results.last_run("titanic", cfg)
    assert bad.blessed is False and bad.pushed is False
    assert bad.overall("auc") < 0.7
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
        "default", 42, SPEC.epochs, 1)
    assert re.fullmatch(r"[0-9a-f]{40}", report["code"]["commit"]) and isinstance(report["code"]["dirty"], bool)
    assert report["packages"]["tfx"] == "1.16.0" and report["packages"]["tensorflow"].startswith("2.16")
    assert report["evaluation"]["blessed"] is True
    assert report["evaluation"]["metrics"]["overall"]["auc"] == pytest.approx(good.overall("auc"))
    text = lineage.format_report(report)
    assert f"version {good.pushed_version}" in text and "span 2" in text and "trained on span 1" in text

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


def test_verify_env_reports_differences(tmp_path):
    from pipelines.tools import verify_env

    pins = verify_env.read_pins(config_lib.PROJECT_ROOT / "constraints.txt")
    assert pins["tfx"] == "1.16.0" and pins["kfp"] == "2.5.0" and pins["protobuf"] == "3.20.3"
    differ, missing, _ = verify_env.compare(pins, {**{k: v for k, v in pins.items() if k != "kfp"}, "tfx": "1.15.0"})
    assert differ == [("tfx", "1.16.0", "1.15.0")] and missing == [("kfp", "2.5.0")]
    assert verify_env.main([]) == 0  # this environment is the pinned one
    bad = tmp_path / "c.txt"
    bad.write_text("tfx==0.0.1\n")
    assert verify_env.main(["--constraints", str(bad)]) == 1
