"""ServedBaseline: the Evaluator's baseline is the model being served, on every orchestrator.

Why not TFX's `Resolver` with `LatestBlessedModelStrategy`: it compiles to a `resolver` executor (ML Metadata
artifact queries) that only Vertex AI Pipelines implements. Open-source Kubeflow Pipelines' v2 backend runs only
`container` and `importer` executors and rejects a package holding anything else (kubeflow/pipelines
backend/src/v2/compiler/visitor.go: "non-container and non-importer executor not implemented").

The meaning is kept: the AtomicPusher pushes only blessed models, each as a new, larger version, with one rename,
so the newest complete version under the serving root is by construction the latest model that was blessed and
pushed. This component reads it and copies it into its `model` output (`<uri>/Format-Serving/`, the layout TFX's
Evaluator and Trainer read a Model artifact with), so the baseline is an ordinary artifact with its own lineage,
and a rollback of the serving folder mid-run cannot pull it away from the Evaluator.

Component
    inputs      candidate (Model, optional): the model about to be judged. Not read; it keys the step in the
                orchestrators' caches, so a new candidate always gets a fresh look at the serving root (KFP 2.4
                keys a task on its inputs only: cacheutils/cache.go).
    outputs     model (Model): the served SavedModel, or an empty folder when nothing is served yet (the first
                run); custom property `served_version` ("" when empty). `holds_model()` tells the two apart.
    parameters  serving_root (str): where the Pusher writes, `<root>/<version>/saved_model.pb`; a local path or
                any URI TensorFlow's file system reads (gs://, s3://).
                expected_version (str): the newest version when a local run was built. It is part of TFX's
                cache key, so a local rerun reuses this step (and everything downstream) while the served
                version is unchanged, and re-runs it once it changed; the executor always reads the serving
                root itself. On Kubeflow it is "": the package gives this task the run's id as a parameter
                instead (pipelines/runners/kubeflow.py), so KFP's cache never reuses it.
"""
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

from components import layout
from serving import promotion

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
        return str(artifact.get_string_custom_property(SERVED_VERSION)) if artifact.has_custom_property(
            SERVED_VERSION) else ""
    props = artifact.custom_properties  # an ML Metadata Artifact proto
    return props[SERVED_VERSION].string_value if SERVED_VERSION in props else ""


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        root = exec_properties["serving_root"]
        model = artifact_utils.get_single_instance(output_dict["model"])
        # the `stable` version where the serving root's model config labels the model (serving/promotion.py: a
        # canary is judged against what takes the traffic, not against another canary); else the newest version,
        # on any file system TF reads
        version = (promotion.stable_version(root) if "://" not in str(root)
                   else layout.newest_version(root, files=fileio))
        if version is None:
            model.set_string_custom_property(SERVED_VERSION, "")
            logging.info("No model is served under the serving root yet: no baseline (first model).")
            print("[baseline] no model served yet: this model is judged on absolute bounds only", flush=True)
            return
        expected = exec_properties.get("expected_version") or ""
        if expected and expected != str(version):
            logging.warning("Serving root changed since the pipeline was built (version %s then, %s now); "
                            "using %s.", expected, version, version)
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
        super().__init__(spec=ServedBaselineSpec(
            serving_root=serving_root, expected_version=expected_version, candidate=candidate,
            model=types.Channel(type=standard_artifacts.Model)))
