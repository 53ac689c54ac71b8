"""Promotion and rollback (core/promotion.py, ops/promote.py) on a real serving root, model config and ML Metadata
store; the Pusher's PUSH_LABEL=canary; the Evaluator's baseline follows `stable`. No server and no pipeline run here
(tests/test_serving_config.py promotes under load against a real server)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components import atomic_pusher
from core import promotion, tf_serving_config
from metadata import promotions
from ops import promote
from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT


def fake_version(base: Path, version: int) -> None:
    """A complete version folder as far as labels care (saved_model.pb present)."""
    (base / str(version)).mkdir(parents=True)
    (base / str(version) / "saved_model.pb").write_bytes(b"v%d" % version)


@pytest.fixture()
def world(tmp_path):
    cfg = config_lib.from_env({}, output_dir=tmp_path / "outputs")
    base = Path(cfg.serving_root("titanic"))
    for v in (1, 2, 3):
        fake_version(base, v)
    metadata = Path(cfg.metadata_path("titanic"))
    metadata.parent.mkdir(parents=True)
    promotions._writable_store(metadata)  # an empty store, as a first run leaves one (with its own records)
    return cfg, base


def labels(base: Path):
    return promotion.labels_of(base.parent, "titanic")


def test_canary_promote_and_rollback_are_recorded_and_undone_in_order(world):
    cfg, base = world
    said = []
    promote.promote("titanic", 2, "stable", cfg, server="none", say=said.append)
    assert labels(base) == {"stable": 2}
    # with labels the policy names exactly the labelled versions: version 3, newer, is not served
    entry = tf_serving_config.read_model_config(base.parent / "models.config")[0]
    assert entry.policy == ("specific", (2,)) and entry.written_path == "titanic"
    promote.promote("titanic", 3, "canary", cfg, server="none", say=said.append)
    assert labels(base) == {"stable": 2, "canary": 3}
    assert promotion.stable_version(str(base)) == 2  # the Evaluator's baseline: what takes the traffic
    promote.promote("titanic", 3, "stable", cfg, server="none", say=said.append)
    assert labels(base) == {"stable": 3}  # the canary was promoted
    done = promote.rollback("titanic", cfg, server="none", say=said.append)
    assert done["labels"] == {"stable": 2} and labels(base) == {"stable": 2}
    with pytest.raises(promotion.PromotionError, match="no earlier stable version"):
        promote.rollback("titanic", cfg, server="none", say=said.append)
    history = promotions.history(cfg.metadata_path("titanic"), "titanic", "titanic")
    assert [(r["action"], r["label"], r["version"], r["previous"]) for r in history] == [
        ("promote", "stable", "2", ""),
        ("promote", "canary", "3", ""),
        ("promote", "stable", "3", "2"),
        ("rollback", "stable", "2", "3"),
    ]
    assert "rollback stable  -> 2 (was 3)" in promotions.describe("titanic", cfg)


def test_bad_promotions_are_refused_and_change_nothing(world):
    cfg, base = world
    promote.promote("titanic", 1, "stable", cfg, server="none", say=lambda _: None)
    before = (base.parent / "models.config").read_text()
    (base / "9").mkdir()  # a version still being written: no saved_model.pb
    for version, label, message in (
        (9, "stable", "no complete version 9"),
        (7, "canary", "no complete version 7"),
        (2, "can/ary", "label 'can/ary'"),
        (2, "", "label ''"),
    ):
        with pytest.raises(promotion.PromotionError, match=message):
            promote.promote("titanic", version, label, cfg, server="none", say=lambda _: None)
    assert (base.parent / "models.config").read_text() == before
    with pytest.raises(promotion.PromotionError, match="no model 'nope'"):
        promotion.assign(base.parent, "nope", 1, "stable", server="none", say=lambda _: None)


def test_the_first_canary_keeps_the_served_version_as_stable(world):
    _, base = world
    # no config yet: the server serves the newest version (3); a canary of 2 must not take that traffic away
    done = promotion.assign(base.parent, "titanic", 2, "canary", server="none", say=lambda _: None)
    assert done["labels"] == {"stable": 3, "canary": 2}
    entry = tf_serving_config.read_model_config(base.parent / "models.config")[0]
    assert entry.policy == ("specific", (2, 3))


def test_the_first_pushed_canary_keeps_the_version_served_before_it_as_stable(world):
    _, base = world
    fake_version(base, 4)  # just pushed: the newest folder, which the default policy would serve

    class Push:
        def set_string_custom_property(self, key, value):
            pass

    os.environ["SERVING_URL"] = "none"
    try:
        atomic_pusher.Executor._label(str(base), 4, "canary", Push())
    finally:
        del os.environ["SERVING_URL"]
    assert labels(base) == {"stable": 3, "canary": 4}
    assert tf_serving_config.read_model_config(base.parent / "models.config")[0].policy == ("specific", (3, 4))


def test_pusher_with_push_label_canary_serves_beside_stable(world):
    cfg, base = world
    promotion.assign(base.parent, "titanic", 3, "stable", server="none", say=lambda _: None)
    fake_version(base, 4)

    class Push:  # the PushedModel artifact's custom properties, as the executor sets them
        def __init__(self):
            self.props = {}

        def set_string_custom_property(self, key, value):
            self.props[key] = value

    push = Push()
    os.environ["SERVING_URL"] = "none"
    try:
        atomic_pusher.Executor._label(str(base), 4, "canary", push)
    finally:
        del os.environ["SERVING_URL"]
    assert labels(base) == {"stable": 3, "canary": 4}
    assert push.props["serving_label"] == "canary" and push.props["serving_labels"] == '{"canary": 4, "stable": 3}'
    assert promotion.stable_version(str(base)) == 3


def test_pusher_default_label_changes_nothing_without_labels(world):
    _, base = world

    class Push:
        def set_string_custom_property(self, key, value):
            raise AssertionError("no label, nothing to record")

    atomic_pusher.Executor._label(str(base), 3, "stable", Push())
    assert not (base.parent / "models.config").exists()  # the newest version serves, as before labels existed


def test_make_promote_cli(world):
    cfg, base = world
    env = dict(os.environ, OUTPUT_DIR=str(cfg.output_dir), SERVING_URL="none")
    run = subprocess.run(
        [sys.executable, "-m", "ops.promote", "promote", "titanic", "2", "canary"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "titanic: canary -> 2, stable -> 3" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "ops.promote", "promote", "titanic", "x", "canary"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "VERSION 'x' is not a version number" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "ops.promote", "rollback", "titanic"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1 and run.stderr.startswith("error: titanic: no earlier stable version")
