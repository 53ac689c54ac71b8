"""Canary and promotion: which version each label (`stable`, `canary`) of a model points at, kept in the serving
root's TF Serving model config, `<serving root>/models.config`.

    make promote PIPELINE=titanic VERSION=1796195387 LABEL=canary    # serve it beside stable, as `canary`
    make promote PIPELINE=titanic VERSION=1796195387 LABEL=stable    # it takes the stable label (and traffic)
    make rollback PIPELINE=titanic                                   # stable back to the version before
    (ops/promote.py: the commands, and their record in the pipeline's ML Metadata)

A model with labels is served with `model_version_policy { specific { versions: [...] } }`, the versions its labels
point at, and `version_labels { key: "stable" value: ... }`; clients ask `/v1/models/titanic/labels/canary`.
A model without labels keeps TF Serving's default (the newest version), and with no config file at all the server
serves every model folder under the root, newest version (`make serve` uses the file when it exists).

Every change is written the way TF Serving accepts it while it serves (server_core.cc UpdateModelVersionLabelMap:
a label may only move to a version that is already loaded): first the new version joins the policy with the labels
unchanged; once the server reports it AVAILABLE the labels move, and versions no label points at leave the policy.
Each write replaces the file atomically. With no server answering at SERVING_URL (default http://127.0.0.1:8501)
both steps are one write: a server started later gets the labels at start-up (`make serve` passes
--allow_version_labels_for_unavailable_models, which TF Serving needs for labels at start-up).

This module edits the file and knows nothing of pipelines (it is the kernel's, below both the Pusher and the
server); the commands are ops/promote.py's, their history in ML Metadata metadata/promotions.py's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from core import layout
from core import tf_serving_config as tfs
from core.tf_serving_config import ModelConfig

CONFIG_NAME = "models.config"
LABELS = ("stable", "canary")
DEFAULT_SERVER = "http://127.0.0.1:8501"
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # what fits TF Serving's REST path segment ([^/:]+) and reads well


class PromotionError(ValueError):
    """A promotion that cannot be done; the message says why and what to do."""


def config_path(serving_root) -> Path:
    return Path(serving_root) / CONFIG_NAME


def _complete_versions(base: Path) -> List[int]:
    return layout.servable_versions(str(base))


def current_models(serving_root) -> List[ModelConfig]:
    """The config file's models, or, without one, what the server serves without it: every model folder under the
    root, newest version (base paths written relative to the root, so the file means the same in a container)."""
    path = config_path(serving_root)
    if path.is_file():
        return tfs.read_model_config(path)
    root = Path(serving_root)
    found = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.is_dir() and not entry.name.startswith("."):
            found.append(ModelConfig(entry.name, str(entry.resolve()), ("latest", 1), (), entry.name))
    return found


def labels_of(serving_root, model: str) -> Dict[str, int]:
    path = config_path(serving_root)
    if not path.is_file():
        return {}
    for entry in tfs.read_model_config(path):
        if entry.name == model:
            return dict(entry.labels)
    return {}


def stable_version(base: str) -> Optional[int]:
    """The version a model's `stable` label points at (its folder complete), when `<base>/../models.config` gives it
    one; else the newest complete version (what is served without labels). The Evaluator's baseline."""
    base_path = Path(base)
    path = base_path.parent / CONFIG_NAME
    if "://" not in str(base) and path.is_file():
        try:
            models = tfs.read_model_config(path)
        except tfs.ConfigError:
            models = []
        for entry in models:
            if os.path.realpath(entry.base_path) == os.path.realpath(base_path):
                stable = dict(entry.labels).get("stable")
                if stable is not None and stable in layout.servable_versions(str(base_path)):
                    return stable
    return layout.newest_version(str(base))


# ---------------------------------------------------------------------------------------------- the two writes
def _with(models: List[ModelConfig], changed: ModelConfig) -> List[ModelConfig]:
    out = [changed if m.name == changed.name else m for m in models]
    return out if any(m.name == changed.name for m in models) else out + [changed]


def _entry(models: List[ModelConfig], serving_root, model: str) -> ModelConfig:
    for entry in models:
        if entry.name == model:
            return entry
    base = Path(serving_root) / model
    if not base.is_dir():
        raise PromotionError(f"no model {model!r} under {serving_root} (nothing was pushed for it)")
    return ModelConfig(model, str(base.resolve()), ("latest", 1), (), model)


def _served_versions(entry: ModelConfig) -> List[int]:
    on_disk = _complete_versions(Path(entry.base_path))
    return entry.aspired(on_disk)


def plan(
    models: List[ModelConfig], serving_root, model: str, version: int, label: str
) -> Tuple[ModelConfig, ModelConfig, Optional[int]]:
    """(phase 1, phase 2, previous version of the label) for pointing `label` of `model` at `version`."""
    entry = _entry(models, serving_root, model)
    labels = dict(entry.labels)
    previous = labels.get(label)
    if not labels and "stable" != label:
        # the first label of a model that served its newest version: what its policy serves apart from `version`
        # (a canary just pushed is the newest folder already) becomes `stable`, so the traffic stays there
        others = [v for v in _complete_versions(Path(entry.base_path)) if v != version]
        served = entry.aspired(others)
        if served:
            labels["stable"] = served[-1]
    old_targets = set(labels.values()) if labels else set(_served_versions(entry))
    labels[label] = version
    if label == "stable" and labels.get("canary") == version:
        del labels["canary"]  # the canary was promoted
    new_targets = set(labels.values())
    phase1 = dataclasses.replace(entry, policy=("specific", tuple(sorted(old_targets | new_targets))))
    phase2 = dataclasses.replace(
        entry, policy=("specific", tuple(sorted(new_targets))), labels=tuple(sorted(labels.items()))
    )
    return phase1, phase2, previous


def _status(server: str, model: str, version: int, timeout: float = 2.0) -> Optional[str]:
    """The state the server reports for the version (AVAILABLE, LOADING, ...); None when nothing answers."""
    url = f"{server.rstrip('/')}/v1/models/{model}/versions/{version}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return "NOT_FOUND" if exc.code == 404 else f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError):
        return None
    states = [s.get("state") for s in body.get("model_version_status", [])]
    return states[0] if states else "NOT_FOUND"


def assign(
    serving_root,
    model: str,
    version: int,
    label: str,
    server: Optional[str] = None,
    wait_s: float = 180.0,
    say: Callable[[str], None] = print,
) -> Dict:
    """Points `label` of `model` at `version` (module docstring: two writes when a server is serving).
    Returns {"labels": {label: version}, "previous": the label's version before, or None}."""
    if not _LABEL.match(label or ""):
        raise PromotionError(f"label {label!r}: expected letters, digits, '_', '-' or '.' (e.g. stable, canary)")
    base = Path(serving_root) / model
    if not base.is_dir():
        raise PromotionError(f"no model {model!r} under {serving_root} (nothing was pushed for it)")
    if not (base / str(version) / layout.SAVED_MODEL).is_file():
        pushed = _complete_versions(base)
        raise PromotionError(
            f"{model}: no complete version {version} under {base} "
            f"(pushed versions: {', '.join(map(str, pushed)) or 'none'})"
        )
    path = config_path(serving_root)
    models = current_models(serving_root)
    phase1, phase2, previous = plan(models, serving_root, model, version, label)
    server = server or os.environ.get("SERVING_URL") or DEFAULT_SERVER
    state = _status(server, model, version) if server != "none" else None
    if state is None:
        tfs.write_model_config(path, _with(models, phase2))
        say(
            f"{path}: {model} {label} -> {version} (no server answered at {server}; a server started with this "
            f"config serves it)"
        )
    else:
        if phase1 != _entry(models, serving_root, model):
            tfs.write_model_config(path, _with(models, phase1))
        deadline = time.monotonic() + wait_s
        say(f"{path}: {model} version {version} added to the served versions; waiting for {server} to load it")
        while state != "AVAILABLE":
            if time.monotonic() > deadline:
                raise PromotionError(
                    f"{model} version {version} is not AVAILABLE at {server} after {wait_s:.0f}s (last: {state}); "
                    f"the label was not moved. Is that server started with --model_config_file {path} and "
                    f"--model_config_file_poll_wait_seconds? (make serve does both)"
                )
            time.sleep(0.5)
            state = _status(server, model, version)
        tfs.write_model_config(path, _with(tfs.read_model_config(path), phase2))
        say(f"{path}: {model} {label} -> {version} (served by {server})")
    return {"labels": dict(phase2.labels), "previous": previous}
