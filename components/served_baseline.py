"""ServedBaseline: the Evaluator's baseline is the model being served, on every orchestrator.

Design notes: docs/design-notes.md, components/served_baseline.py."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from core import layout, promotion

SERVED_VERSION = "served_version"
SERVING_FORMAT = "Format-Serving"  # tfx.utils.path_utils.serving_model_path's folder for a Model artifact
NODE_ID = "ServedBaseline"


def model_dir(artifact: types.Artifact) -> str:
    return os.path.join(artifact.uri, SERVING_FORMAT)


def holds_model(artifact: types.Artifact) -> bool:
    """False for the empty baseline of a first run."""
    return fileio.exists(os.path.join(model_dir(artifact), "saved_model.pb"))


def served_version(artifact) -> str:
    """The served version a baseline artifact (TFX or ML Metadata proto) was copied from; "" for none."""
    if isinstance(artifact, types.Artifact):  # properties may arrive JSON-encoded from KFP's metadata
        return (
            str(artifact.get_string_custom_property(SERVED_VERSION))
            if artifact.has_custom_property(SERVED_VERSION)
            else ""
        )
    props = artifact.custom_properties  # an ML Metadata Artifact proto
    return props[SERVED_VERSION].string_value if SERVED_VERSION in props else ""


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        root = exec_properties["serving_root"]
        model = artifact_utils.get_single_instance(output_dict["model"])
        # the `stable` version where the serving root's model config labels the model (core/promotion.py: a
        # canary is judged against what takes the traffic, not against another canary); else the newest version,
        # on any file system TF reads
        version = (
            promotion.stable_version(root) if "://" not in str(root) else layout.newest_version(root, files=fileio)
        )
        if version is None:
            model.set_string_custom_property(SERVED_VERSION, "")
            logging.info("No model is served under the serving root yet: no baseline (first model).")
            print("[baseline] no model served yet: this model is judged on absolute bounds only", flush=True)
            return
        expected = exec_properties.get("expected_version") or ""
        if expected and expected != str(version):
            logging.warning(
                "Serving root changed since the pipeline was built (version %s then, %s now); using %s.",
                expected,
                version,
                version,
            )
        io_utils.copy_dir(os.path.join(root, str(version)), model_dir(model))
        model.set_string_custom_property(SERVED_VERSION, str(version))
        print(f"[baseline] the served version {version} is the baseline", flush=True)


class ServedBaselineSpec(types.ComponentSpec):
    PARAMETERS = {
        "serving_root": ExecutionParameter(type=str),
        "expected_version": ExecutionParameter(type=str, optional=True),
    }
    INPUTS: Dict[str, ChannelParameter] = {"candidate": ChannelParameter(type=standard_artifacts.Model, optional=True)}
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}


class ServedBaseline(base_component.BaseComponent):
    """See the module docstring."""

    SPEC_CLASS = ServedBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, serving_root, expected_version: str = "", candidate: Optional[types.BaseChannel] = None):
        super().__init__(
            spec=ServedBaselineSpec(
                serving_root=serving_root,
                expected_version=expected_version,
                candidate=candidate,
                model=types.Channel(type=standard_artifacts.Model),
            )
        )
