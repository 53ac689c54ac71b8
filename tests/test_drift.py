"""Drift and skew distances on the real Titanic data (TFDV's comparators, no pipeline), and the request log's
promises (every request, whole files only, bounded) under concurrent writers."""

import csv
import math
import os
import random
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from modeling import drift
from orchestration import spec as spec_lib
from orchestration.config import PROJECT_ROOT
from pipelines.titanic.spec import SPEC
from serving import request_log


@pytest.fixture(scope="module")
def schema():
    return text_format.Parse(SPEC.schema_file.read_text(), schema_pb2.Schema())


@pytest.fixture(scope="module")
def train_rows(titanic_data):
    with open(titanic_data / "train.csv", newline="") as f:
        return list(csv.DictReader(f))


def serialize(rows, schema):
    """CSV rows as the pipeline's ExampleGen makes them: typed by the schema, an empty cell a missing value."""
    kinds = {f.name: f.type for f in schema.feature}
    out = []
    for row in rows:
        example = tf.train.Example()
        for name, raw in row.items():
            if name not in kinds or raw == "":
                continue
            feature = example.features.feature[name]
            if kinds[name] == schema_pb2.INT:
                feature.int64_list.value.append(int(raw))
            elif kinds[name] == schema_pb2.FLOAT:
                feature.float_list.value.append(float(raw))
            else:
                feature.bytes_list.value.append(raw.encode())
        out.append(example.SerializeToString())
    return out


def stats(rows, schema):
    return drift.statistics_of(serialize(rows, schema), schema)


def older_and_reversed(row):
    row = dict(row)
    if row["Age"]:
        row["Age"] = str(float(row["Age"]) + 20)
    row["Sex"] = {"male": "female", "female": "male"}[row["Sex"]]
    return row


def test_shifted_age_and_reversed_sex_flag_exactly_those(schema, train_rows):
    before = stats(train_rows, schema)
    after = stats([older_and_reversed(r) for r in train_rows], schema)
    distances = drift.compare(after, before, schema, SPEC.drift_thresholds)
    assert {d.feature for d in drift.flagged(distances)} == {"Age", "Sex"}
    by_name = {d.feature: d for d in distances}
    assert by_name["Age"].comparator == drift.JENSEN_SHANNON and by_name["Sex"].comparator == drift.L_INFINITY
    # the reversed mix moves each value's share by |p - (1 - p)|
    male = sum(r["Sex"] == "male" for r in train_rows) / len(train_rows)
    assert by_name["Sex"].distance == pytest.approx(abs(2 * male - 1), abs=1e-6)
    assert "Age" in by_name["Age"].describe() and "> threshold 0.1" in by_name["Age"].describe()


def test_unchanged_or_resampled_span_is_not_flagged(schema, train_rows, titanic_data):
    before = stats(train_rows, schema)
    same = drift.compare(stats(train_rows[::-1], schema), before, schema, SPEC.drift_thresholds)
    assert all(d.distance == pytest.approx(0.0, abs=1e-9) for d in same) and not drift.flagged(same)
    with open(titanic_data / "test.csv", newline="") as f:
        other_passengers = list(csv.DictReader(f))
    assert not drift.flagged(drift.compare(stats(other_passengers, schema), before, schema, SPEC.drift_thresholds))
    rng = random.Random(0)
    resample = [rng.choice(train_rows) for _ in train_rows]
    assert not drift.flagged(drift.compare(stats(resample, schema), before, schema, SPEC.drift_thresholds))


def test_skew_flags_shifted_fare_only(schema, train_rows):
    training = stats(train_rows, schema)
    rng = random.Random(1)
    traffic = [rng.choice(train_rows) for _ in range(200)]
    assert not drift.flagged(drift.compare(training, stats(traffic, schema), schema, SPEC.skew_thresholds, "skew"))
    shifted = [dict(r, Fare=str(float(r["Fare"]) * 1.5)) for r in traffic]
    flagged = drift.flagged(drift.compare(training, stats(shifted, schema), schema, SPEC.skew_thresholds, "skew"))
    assert [d.feature for d in flagged] == ["Fare"]


def test_thresholds_name_schema_features_and_fit_0_1(schema):
    with pytest.raises(KeyError, match="'Salary': the schema has no such feature"):
        drift.with_comparators(schema, {"Salary": 0.1}, drift.statistics_of([], schema), "drift")
    with pytest.raises(ValueError, match=r"drift thresholds must be numbers in \(0, 1\]"):
        spec_lib.DatasetSpec(**{**SPEC.__dict__, "drift_thresholds": {"Age": 2.0}})
    with pytest.raises(ValueError, match="drift_action 'stop' is not one of"):
        spec_lib.DatasetSpec(**{**SPEC.__dict__, "drift_action": "stop"})


def test_drift_setting_is_checked():
    from orchestration import config as config_lib

    assert config_lib.from_env({"DRIFT": "Block"}).drift == "block"
    with pytest.raises(config_lib.ConfigError, match="DRIFT='stop' is not one of warn, block, off"):
        config_lib.from_env({"DRIFT": "stop"})


# ------------------------------------------------------------------------------------------------ request log
def test_logged_examples_keep_missing_values_missing():
    arrays = {
        "Age": np.array([22.0, math.nan], np.float32),
        "Pclass": np.array([3, 1]),
        "Sex": np.array([b"male", b""], dtype=object),
    }
    first, second = (tf.train.Example.FromString(s) for s in request_log.examples_from_arrays(arrays))
    assert list(first.features.feature["Age"].float_list.value) == [22.0]
    assert list(first.features.feature["Sex"].bytes_list.value) == [b"male"]
    assert list(second.features.feature["Age"].float_list.value) == []  # NaN: the signature's "missing"
    assert list(second.features.feature["Sex"].bytes_list.value) == []
    assert list(second.features.feature["Pclass"].int64_list.value) == [1]


def test_eight_writers_lose_nothing_and_leave_only_whole_files(tmp_path):
    """While eight threads log, a reader keeps reading every file the log calls complete: each one whole (a cut
    record would fail TFRecord's framing), until it has read three of them mid-write; then nothing is lost."""
    log = request_log.RequestLog(tmp_path, file_bytes=4096, rotate_seconds=0.2, poll_seconds=0.01)
    sent, stop = [], threading.Event()

    def client(n):
        for i in range(20000):  # bounded; the reader stops them far sooner
            if stop.is_set():
                return
            fare = float(n * 100000 + i)
            log.record("titanic", {"Fare": np.array([fare, fare + 0.5], np.float32)})
            sent.extend([fare, fare + 0.5])
            time.sleep(0.001)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    read_while_writing = set()
    deadline = time.monotonic() + 120
    try:
        while len(read_while_writing) < 3:
            assert time.monotonic() < deadline, "no three complete log files appeared in 120 s of logging"
            assert all(t.is_alive() for t in threads), "the writers finished before three files were read"
            for path in request_log.complete_files(tmp_path / "titanic"):
                if path not in read_while_writing:
                    with open(path, "rb") as f:
                        framed = f.read()
                    for record in tf.data.TFRecordDataset([str(path)]):  # raises on a cut record
                        tf.train.Example.FromString(record.numpy())
                    assert framed and framed == path.read_bytes()  # renamed into place whole, never appended to
                    read_while_writing.add(path)
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    log.close()
    assert not [p for p in (tmp_path / "titanic").iterdir() if not request_log.FILE_PATTERN.match(p.name)]
    logged = [
        tf.train.Example.FromString(r).features.feature["Fare"].float_list.value[0]
        for r in request_log.read_examples(tmp_path / "titanic")
    ]
    assert sorted(logged) == sorted(sent) and log.logged == len(sent) and log.dropped == 0


def test_log_is_bounded_and_sampled(tmp_path):
    log = request_log.RequestLog(tmp_path, max_bytes=20_000, file_bytes=5_000, poll_seconds=0.01)
    for i in range(2000):
        log.record("m", {"x": np.array([float(i)], np.float32)})
    log.close()
    files = request_log.complete_files(tmp_path / "m")
    assert sum(p.stat().st_size for p in files) <= 20_000 and len(files) >= 3
    kept = [
        tf.train.Example.FromString(r).features.feature["x"].float_list.value[0]
        for r in request_log.read_examples(tmp_path / "m")
    ]
    assert kept == sorted(kept) and kept[-1] == 1999.0  # the oldest files went, the newest stayed

    sampled = request_log.RequestLog(tmp_path / "s", sample_rate=0.25, poll_seconds=0.01)
    random.seed(3)
    for i in range(4000):
        sampled.record("m", {"x": np.array([float(i)], np.float32)})
    sampled.close()
    assert 800 < sampled.logged < 1200
    with pytest.raises(ValueError, match="sample-rate"):
        request_log.RequestLog(tmp_path, sample_rate=0.0)


def test_stale_partial_of_a_killed_server_is_removed(tmp_path):
    folder = tmp_path / "titanic"
    folder.mkdir()
    dead = folder / ".requests-20260101T000000.000000Z-999999999-000001.tfrecord.partial"
    dead.write_bytes(b"half a record")
    mine = folder / f".requests-20260101T000000.000000Z-{os.getpid()}-000001.tfrecord.partial"
    mine.write_bytes(b"being written")
    request_log.RequestLog(tmp_path).close()
    assert not dead.exists() and mine.exists()


def test_reader_takes_whole_records_and_refuses_a_cut_file(tmp_path):
    log = request_log.RequestLog(tmp_path, poll_seconds=0.01)
    for i in range(3):
        log.record("m", {"x": np.array([float(i)], np.float32)})
    log.close()
    (path,) = request_log.complete_files(tmp_path / "m")
    assert [r for r in request_log.read_examples(tmp_path / "m")] == [
        r.numpy() for r in tf.data.TFRecordDataset([str(path)])
    ]  # the same records TensorFlow reads
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated TFRecord file"):
        request_log.read_examples(tmp_path / "m")


def test_a_flood_is_dropped_and_counted_not_held(tmp_path, monkeypatch):
    monkeypatch.setattr(request_log, "MAX_PENDING_BYTES", 1000)
    log = request_log.RequestLog(tmp_path, poll_seconds=3600)  # the writer sleeps: everything stays queued
    big = {"x": np.zeros((1, 150), np.float32)}  # one example of 150 values: 600 bytes
    log.record("m", big)
    log.record("m", big)
    assert log.dropped == 1
    log.close()
    assert log.logged == 1 and len(request_log.read_examples(tmp_path / "m")) == 1


def test_server_refuses_a_log_folder_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.server",
            "--serving-root",
            str(tmp_path),
            "--workers",
            "2",
            "--log-requests",
            str(tmp_path / "file" / "logs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 2 and "--log-requests" in proc.stderr and "Not a directory" in proc.stderr


def test_logged_requests_are_their_owners_only_whatever_the_umask(tmp_path):
    """A logged request is a person's data: folders 0700, files 0600, under the usual umask 022 and a lax 000."""
    for umask in (0o022, 0o000):
        old = os.umask(umask)
        try:
            root = tmp_path / f"umask-{umask:03o}" / "logs"
            log = request_log.RequestLog(root, rotate_seconds=0.05, poll_seconds=0.01)
            log.record("titanic", {"Fare": np.array([7.25], np.float32)})
            deadline = time.monotonic() + 60
            while not request_log.complete_files(root / "titanic"):
                assert time.monotonic() < deadline, "no log file written"
                time.sleep(0.02)
            log.close()
        finally:
            os.umask(old)
        for folder in (root.parent, root, root / "titanic"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, (umask, folder)
        files = list((root / "titanic").iterdir())
        assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}, umask


def test_a_log_folder_others_can_write_is_refused_with_one_line(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    proc = subprocess.run(
        [sys.executable, "-m", "serving.server", "--serving-root", str(tmp_path), "--log-requests", str(shared)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"--log-requests {shared} is writable by others (mode 0777); it would hold personal data: "
            f"use a folder only "
            f"you can write (chmod 700 {shared})"
        )
    )
    readable = tmp_path / "readable"
    readable.mkdir(mode=0o755)
    os.chmod(readable, 0o755)
    request_log.RequestLog(readable).close()  # ours and only readable by others: tightened, not refused
    assert stat.S_IMODE(readable.stat().st_mode) == 0o700
