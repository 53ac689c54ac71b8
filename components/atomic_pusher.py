"""A Pusher whose serving directory never holds a partial model version.

TFX's Pusher copies the SavedModel straight into `<base>/<version>/` (saved_model.pb last), so a model server
polling the folder, or a crash mid-copy, can meet a half-written version. Here the copy goes to a hidden
`<base>/.incoming-<version>-*` folder (TF Serving only loads numeric folder names) and becomes `<base>/<version>`
with one rename. Versions are Unix timestamps as in TFX, bumped past the newest existing one so that two pushes
in the same second, or a clock that went back, still give a new, larger version. A model identical to the
newest version (a rerun re-evaluating the same model against itself as baseline) is not pushed a second time.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import layout


def next_version(base: str) -> int:
    return max([int(time.time())] + [v + 1 for v in layout.version_numbers(base)])


def same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def push_atomically(model_dir: str, base: str) -> str:
    """Copies the SavedModel in `model_dir` to a new version under `base` (unless the newest version already
    holds exactly these files); returns the version's path."""
    os.makedirs(base, exist_ok=True)
    versions = layout.version_numbers(base)
    if versions and same_tree(model_dir, os.path.join(base, str(versions[-1]))):
        logging.info("Model is identical to serving version %s; not pushing it again.", versions[-1])
        return os.path.join(base, str(versions[-1]))
    version = next_version(base)
    staging = tempfile.mkdtemp(prefix=f".incoming-{version}-", dir=base)
    try:
        payload = os.path.join(staging, "model")
        shutil.copytree(model_dir, payload)
        target = os.path.join(base, str(version))
        os.rename(payload, target)  # atomic on one filesystem; fails rather than merges if target exists
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class _PusherInternals:
    """The one seam onto TFX's Pusher executor internals (tfx/components/pusher/executor.py, TFX 1.16): its
    startup log and how it marks the PushedModel artifact pushed or not (the custom properties `pushed`,
    `pushed_destination`, `pushed_version` that ML Metadata readers and the Evaluator's successors rely on).
    They are private API; a TFX upgrade that renames them breaks here, and only here."""

    def __init__(self, executor: "pusher_executor.Executor"):
        self.executor = executor

    def log_startup(self, input_dict, output_dict, exec_properties) -> None:
        self.executor._log_startup(input_dict, output_dict, exec_properties)  # noqa: SLF001

    def mark_pushed(self, model_push, destination: str, version: str) -> None:
        self.executor._MarkPushed(model_push, pushed_destination=destination, pushed_version=version)  # noqa: SLF001

    def mark_not_pushed(self, model_push) -> None:
        self.executor._MarkNotPushed(model_push)  # noqa: SLF001


class Executor(pusher_executor.Executor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        base = destination.filesystem.base_directory
        if destination.WhichOneof("destination") != "filesystem" or "://" in base:
            # Object stores have no atomic rename; TFX's own copy (saved_model.pb last) is the best there is.
            return super().Do(input_dict, output_dict, exec_properties)

        tfx_internals = _PusherInternals(self)
        tfx_internals.log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            tfx_internals.mark_not_pushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        serving_path = push_atomically(model_path, base)
        logging.info("Model written to serving path %s.", serving_path)
        shutil.copytree(model_path, model_push.uri, dirs_exist_ok=True)  # the archive copy TFX keeps too
        tfx_internals.mark_pushed(model_push, serving_path, os.path.basename(serving_path))


class AtomicPusher(pusher_component.Pusher):
    """TFX's Pusher with the executor above; the same interface.

    inputs      model (Model), model_blessing (ModelBlessing, optional), infra_blessing (optional)
    outputs     pushed_model (PushedModel): custom properties pushed (0/1), pushed_destination, pushed_version
    parameters  push_destination (PushDestination): a local filesystem base directory gets the atomic push;
                any other destination TFX's own copy
    """

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
