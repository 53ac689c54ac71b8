"""A Pusher whose serving directory never holds a partial model version where a model server would load it.

Design notes: docs/design-notes.md, components/atomic_pusher.py."""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import proto_utils

from core import layout, promotion
from modeling import warmup_requests

SERVING_ROOT = "serving_root"
EXAMPLES = "examples"  # optional: the examples the warm-up requests are drawn from
PUSH_LABEL = "push_label"


def is_remote(path: str) -> bool:
    return "://" in path


def next_version(base: str) -> int:
    files = fileio if is_remote(base) else layout.LocalFiles
    return max([int(time.time())] + [v + 1 for v in layout.version_numbers(base, files)])


def same_tree(a: str, b: str, ignore=(layout.WARMUP_REQUESTS,)) -> bool:
    """The same files with the same bytes under both folders, the warm-up requests aside (they are drawn from each
    run's examples; the model is what must be the same)."""
    return same_remote_tree(a, b, ignore)


def _files(root: str) -> Dict[str, str]:
    """{path relative to root: full path} of every file under `root`, through TensorFlow's file systems."""
    found = {}
    for folder, _, names in fileio.walk(root):
        for name in names:
            full = posixpath.join(folder, name) if is_remote(root) else os.path.join(folder, name)
            found[os.path.relpath(full, root) if not is_remote(root) else full[len(root.rstrip("/")) + 1 :]] = full
    return found


def same_remote_tree(a: str, b: str, ignore=(layout.WARMUP_REQUESTS,)) -> bool:
    left, right = _files(a), _files(b)
    for rel in ignore:
        left.pop(rel, None), right.pop(rel, None)
    if set(left) != set(right):
        return False
    for rel in left:
        with fileio.open(left[rel], "rb") as f, fileio.open(right[rel], "rb") as g:
            if f.read() != g.read():
                return False
    return True


def push_atomically(model_dir: str, base: str, extra: Optional[Dict[str, bytes]] = None) -> str:
    """Copies the SavedModel in `model_dir` to a new version under `base` (unless the newest version already
    holds exactly these files), with the `extra` files ({relative path: bytes}, the warm-up requests) written into
    it before it appears; returns the version's path."""
    extra = extra or {}
    if is_remote(base) or is_remote(model_dir):
        return _push_to_object_store(model_dir, base, extra)
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
        for rel, data in extra.items():
            os.makedirs(os.path.dirname(os.path.join(payload, rel)), exist_ok=True)
            with open(os.path.join(payload, rel), "wb") as f:
                f.write(data)
        target = os.path.join(base, str(version))
        os.rename(payload, target)  # atomic on one filesystem; fails rather than merges if target exists
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _push_to_object_store(model_dir: str, base: str, extra: Dict[str, bytes]) -> str:
    base = base.rstrip("/")
    newest = layout.newest_version(base, files=fileio)
    if newest is not None and same_remote_tree(model_dir, f"{base}/{newest}"):
        logging.info("Model is identical to serving version %s; not pushing it again.", newest)
        return f"{base}/{newest}"
    version = next_version(base)
    target = f"{base}/{version}"
    files = _files(model_dir)
    for rel, data in extra.items():
        destination = f"{target}/{rel}"
        fileio.makedirs(posixpath.dirname(destination))
        with fileio.open(destination, "wb") as f:
            f.write(data)
    # saved_model.pb last: a reader that waits for it never loads a partial version (module docstring)
    for rel in sorted(files, key=lambda r: (r == layout.SAVED_MODEL, r)):
        destination = f"{target}/{rel.replace(os.sep, '/')}"
        if not is_remote(destination):
            os.makedirs(os.path.dirname(destination), exist_ok=True)
        fileio.copy(files[rel], destination, overwrite=False)
    return target


def mark_pushed(model_push, destination: str, version: str) -> None:
    """The PushedModel's properties as TFX's Pusher writes them (tfx/components/pusher/executor.py, _MarkPushed):
    ML Metadata's readers (results, lineage, the twin) rely on these names."""
    model_push.set_int_custom_property("pushed", 1)
    model_push.set_string_custom_property("pushed_destination", destination)
    model_push.set_string_custom_property("pushed_version", version)


def mark_not_pushed(model_push) -> None:
    model_push.set_int_custom_property("pushed", 0)


def serving_root(exec_properties: Dict[str, Any]) -> str:
    if exec_properties.get(SERVING_ROOT):
        return exec_properties[SERVING_ROOT]
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
    if destination.WhichOneof("destination") != "filesystem":
        raise NotImplementedError(f"push destination {destination.WhichOneof('destination')} is not supported")
    return destination.filesystem.base_directory


def _warmup_files(model_path: str, examples) -> Dict[str, bytes]:
    """{layout.WARMUP_REQUESTS: a TFRecord of PredictionLogs} from a few eval examples, or {} without examples."""
    if not examples:
        return {}
    serialized = warmup_requests.eval_examples(examples[0].uri)
    records = warmup_requests.build(model_path, serialized)
    logging.info("Warm-up requests: %d record(s) from %d eval example(s).", len(records), len(serialized))
    return {layout.WARMUP_REQUESTS: warmup_requests.as_tfrecord(records)} if records else {}


class Executor(pusher_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        base = serving_root(exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            mark_not_pushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        serving_path = push_atomically(model_path, base, _warmup_files(model_path, input_dict.get(EXAMPLES)))
        logging.info("Model written to serving path %s.", serving_path)
        if is_remote(model_push.uri) or is_remote(model_path):
            for rel, path in sorted(_files(model_path).items()):  # the archive copy TFX keeps too
                fileio.makedirs(posixpath.dirname(f"{model_push.uri}/{rel}"))
                fileio.copy(path, f"{model_push.uri}/{rel}", overwrite=True)
        else:
            shutil.copytree(model_path, model_push.uri, dirs_exist_ok=True)
        version = posixpath.basename(serving_path.rstrip("/"))
        mark_pushed(model_push, serving_path, version)
        label = exec_properties.get(PUSH_LABEL) or ""
        if label and not is_remote(base):
            self._label(base, int(version), label, model_push)

    @staticmethod
    def _label(base: str, version: int, label: str, model_push) -> None:

        root, name = os.path.dirname(os.path.abspath(base)), os.path.basename(os.path.abspath(base))
        labels = promotion.labels_of(root, name)
        if label == "stable" and not labels:
            return  # no labels: the newest version serves, as without a config file
        done = promotion.assign(root, name, version, label, say=lambda line: logging.info("%s", line))
        model_push.set_string_custom_property("serving_label", label)
        model_push.set_string_custom_property(
            "serving_previous", "" if done["previous"] is None else str(done["previous"])
        )
        model_push.set_string_custom_property("serving_labels", json.dumps(done["labels"], sort_keys=True))
        print(
            f"[push] {name} version {version} is {label}; labels now "
            + ", ".join(f"{k} -> {v}" for k, v in sorted(done["labels"].items())),
            flush=True,
        )


class AtomicPusherSpec(standard_component_specs.PusherSpec):
    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EXAMPLES: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    PARAMETERS = {
        **standard_component_specs.PusherSpec.PARAMETERS,
        SERVING_ROOT: ExecutionParameter(type=str, optional=True),
        PUSH_LABEL: ExecutionParameter(type=str, optional=True),
    }


class AtomicPusher(pusher_component.Pusher):
    """See the module docstring: TFX's Pusher's interface, plus `serving_root` (a str or a RuntimeParameter, for
    a serving root chosen per run)."""

    SPEC_CLASS = AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        model_blessing: Optional[types.BaseChannel] = None,
        serving_root=None,
        push_destination: Optional[pusher_pb2.PushDestination] = None,
        push_label: Optional[str] = None,
        examples: Optional[types.BaseChannel] = None,
    ):
        if serving_root is None and push_destination is None:
            raise ValueError("AtomicPusher needs serving_root or push_destination")
        spec = AtomicPusherSpec(
            model=model,
            model_blessing=model_blessing,
            push_destination=push_destination,
            serving_root=serving_root,
            push_label=push_label,
            examples=examples,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
