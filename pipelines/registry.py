"""Pipelines by name, loaded lazily so asking for one does not import the others' dependencies."""
from __future__ import annotations

import importlib
from pathlib import Path

from pipelines.spec import DatasetSpec

PIPELINES = ("titanic", "cifar2", "imdb", "covid")
_HERE = Path(__file__).resolve().parent


def get_spec(name: str) -> DatasetSpec:
    """The SPEC of pipelines/<name>/spec.py; KeyError listing the known names otherwise."""
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; available: {', '.join(PIPELINES)}")
    return importlib.import_module(f"pipelines.{name}.spec").SPEC


def runner_path(name: str) -> Path:
    """The file `tfx pipeline create --pipeline_path` takes for this pipeline (the local engine)."""
    get_spec(name)
    return _HERE / name / "local_runner.py"
