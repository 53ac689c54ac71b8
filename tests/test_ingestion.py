"""Broken input files stop the run at ingestion, naming split, file and problem; `make run` prints that message last
and alone; the report survives a failed run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tfx import v1 as tfx

from components.csv_example_gen import BOM, CsvInputError, check_split
from metadata import results
from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT
from orchestration.factory import create_pipeline
from pipelines.titanic.spec import SPEC
from runners.run import data_error

HEADER = b"PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked\n"


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty; expected a header line"),
        (b"\n\n  \n", "is empty"),
        (HEADER, "0 examples in"),
        (HEADER + b"\n\n", "0 examples in"),
        (BOM + HEADER + b"1,0,3,x,male,22,1,0,t,7.25,,S\n", "byte-order mark"),
        (BOM, "byte-order mark"),
    ],
)
def test_csv_files_tfx_would_misread_are_named(tmp_path, data, message):
    path = write(tmp_path / "test.csv", data)
    with pytest.raises(CsvInputError) as info:
        check_split("eval", [path], str(tmp_path / "test.csv"))
    assert str(info.value).startswith("eval split: ") and message in str(info.value)
    assert path in str(info.value)


def test_good_csv_files_pass_and_a_missing_one_is_named(tmp_path):
    check_split("train", [write(tmp_path / "a.csv", HEADER + b"1,0,3,x,male,22,1,0,t,7.25,,S\n")], "a.csv")
    check_split("train", [write(tmp_path / "b.csv", HEADER), write(tmp_path / "c.csv", HEADER + b"1,2\n")], "*.csv")
    with pytest.raises(CsvInputError, match="train split: no file matches .*nope.csv"):
        check_split("train", [], str(tmp_path / "nope.csv"))


@pytest.mark.pipeline
@pytest.mark.parametrize(
    "broken, message",
    [
        ({"test.csv": HEADER}, "eval split: 0 examples in {root}/test.csv"),
        ({"train.csv": b""}, "train split: {root}/train.csv is empty"),
        ({"train.csv": "BOM"}, "train split: {root}/train.csv starts with a UTF-8 byte-order mark"),
    ],
)
def test_the_pipeline_stops_at_ingestion_and_trains_nothing(tmp_path, titanic_data, broken, message):
    root = tmp_path / "data" / "titanic"
    shutil.copytree(titanic_data, root)
    for name, data in broken.items():
        (root / name).write_bytes(BOM + (root / name).read_bytes() if data == "BOM" else data)
    cfg = config_lib.PipelineConfig(output_dir=tmp_path / "out", data_dir=tmp_path / "data")
    with pytest.raises(Exception) as info:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, cfg))
    assert message.format(root=root) in str(info.value)
    store = results.open_store(cfg.metadata_path("titanic"))
    assert results.node_executions(store, "titanic", "Transform") == []
    assert not cfg.serving_root("titanic").exists()


@pytest.mark.pipeline
def test_make_run_prints_the_data_error_last_and_alone_and_still_writes_a_report(tmp_path, titanic_data):
    data = tmp_path / "data"
    shutil.copytree(titanic_data, data / "titanic")
    span = data / "titanic" / "span-1"
    span.mkdir()
    shutil.copy(titanic_data / "train.csv", span / "train.csv")
    (span / "test.csv").write_bytes((titanic_data / "test.csv").read_bytes().splitlines(keepends=True)[0])
    env = dict(os.environ, DATA_DIR=str(data), OUTPUT_DIR=str(tmp_path / "out"), DATASETS_MIRROR="")
    proc = subprocess.run(
        [sys.executable, "-m", "runners.run", "titanic"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()
    assert last[-2] == "error: the titanic data was not accepted; nothing was trained or pushed:"
    assert last[-1] == f"eval split: 0 examples in {span / 'test.csv'} (a header line and no rows)"
    reports = list((tmp_path / "out" / "titanic" / "reports").glob("*/report.html"))
    assert len(reports) == 1 and "No evaluation in this run" in reports[0].read_text()
    # again: the CLI already has this pipeline file and root, so `tfx pipeline update` is skipped; same error
    again = subprocess.run(
        [sys.executable, "-m", "runners.run", "titanic"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "==> tfx pipeline update: skipped" in again.stdout and "tfx pipeline create" not in again.stdout
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == last[-1]


def test_pipeline_update_is_skipped_only_for_the_same_file_and_root(tmp_path):
    from runners.run import registered_as

    assert registered_as(tmp_path, "titanic") is None  # never created
    (tmp_path / "titanic").mkdir()
    (tmp_path / "titanic" / "pipeline_args.json").write_text(
        '{"pipeline_name": "titanic", "pipeline_root": '
        f'"{tmp_path}/out/../out/titanic", "pipeline_dsl_path": '
        f'"{PROJECT_ROOT}/pipelines/titanic/local_runner.py"}}'
    )
    assert registered_as(tmp_path, "titanic") == (
        os.path.realpath(PROJECT_ROOT / "pipelines/titanic/local_runner.py"),
        os.path.realpath(tmp_path / "out" / "titanic"),
    )
    (tmp_path / "titanic" / "pipeline_args.json").write_text("{not json")
    assert registered_as(tmp_path, "titanic") is None  # unreadable: update, as before


def test_data_error_finds_the_message_among_tfx_output():
    output = (
        "I1129 12:00:00 launcher.py] Running CsvExampleGen\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "components.anomalies_gate.DataAnomaliesError: ExampleValidator found anomalies; stopping:\n"
        "  split 'train', feature 'Fare': Column dropped\n"
        "  split 'eval', feature 'Fare': Column dropped\n"
        "I1129 12:00:01 other.py] shutting down\n"
    )
    assert data_error(output) == (
        "ExampleValidator found anomalies; stopping:\n"
        "  split 'train', feature 'Fare': Column dropped\n"
        "  split 'eval', feature 'Fare': Column dropped"
    )
    assert data_error("ValueError: something else\n") is None


@pytest.mark.pipeline
def test_an_empty_review_file_is_named(imdb_subset, tmp_path):
    from pipelines.imdb.spec import SPEC as IMDB

    root = tmp_path / "data" / "imdb"
    shutil.copytree(imdb_subset, root)
    (root / "test.csv").write_bytes(b"")
    cfg = config_lib.PipelineConfig(output_dir=tmp_path / "out", data_dir=tmp_path / "data")
    with pytest.raises(Exception) as info:
        tfx.orchestration.LocalDagRunner().run(create_pipeline(IMDB, cfg))
    assert f"eval split: 0 examples in {root / 'test.csv'}" in str(info.value)
