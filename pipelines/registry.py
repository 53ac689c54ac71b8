"""Pipelines by name, found by themselves: every package `pipelines/<name>/` with a spec.py (the book's four and
whatever `make new-pipeline` drafted). Loaded lazily, so asking for one does not import the others' dependencies."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Tuple

import pipelines
from orchestration.spec import DatasetSpec

BOOK = ("titanic", "cifar2", "imdb", "covid")  # first, in the book's order; others by name


def discover() -> Tuple[str, ...]:
    """Every package with a spec.py under pipelines/ and the PIPELINES_PATH folders (pipelines/__init__.py)."""
    found = sorted(
        {
            p.name
            for root in map(Path, pipelines.__path__)
            if root.is_dir()
            for p in root.iterdir()
            if p.is_dir() and p.name.isidentifier() and (p / "spec.py").is_file() and (p / "__init__.py").is_file()
        }
    )
    return tuple([n for n in BOOK if n in found] + [n for n in found if n not in BOOK])


PIPELINES = discover()


def get_spec(name: str) -> DatasetSpec:
    """The SPEC of pipelines/<name>/spec.py; KeyError listing the known names otherwise."""
    if name not in discover():
        raise KeyError(
            f"unknown pipeline {name!r}; available: {', '.join(discover())} (a new one: "
            f"make new-pipeline NAME=... DATA=... LABEL=...)"
        )
    return importlib.import_module(f"pipelines.{name}.spec").SPEC


def package_dir(name: str) -> Path:
    get_spec(name)
    return Path(importlib.util.find_spec(f"pipelines.{name}").origin).parent


def runner_path(name: str) -> Path:
    """The file `tfx pipeline create --pipeline_path` takes for this pipeline (the local engine)."""
    return package_dir(name) / "local_runner.py"
