"""Label changes in a pipeline's ML Metadata: each promotion and rollback is an Execution (type
tfx_book.Promotion) attributed to the pipeline's context, with the pushed model as its input where this pipeline
pushed it; a push as `canary` or `stable` (PUSH_LABEL) is recorded on the Pusher's PushedModel artifact (custom
properties serving_label, serving_previous, serving_labels). ops/promote.py writes them, lineage reads them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

from core.promotion import labels_of
from metadata import results
from metadata.store import open_store
from orchestration import config as config_lib

PROMOTION_TYPE = "tfx_book.Promotion"


def _writable_store(sqlite_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = str(sqlite_path)
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(cfg)


def record(
    sqlite_path, pipeline: str, model: str, label: str, version: int, previous: Optional[int], action: str
) -> Optional[int]:
    """An Execution of type tfx_book.Promotion in the pipeline's ML Metadata (its id), attributed to the
    pipeline's context, with the PushedModel of `version` as input when this pipeline pushed it."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    if not Path(sqlite_path).is_file():
        return None
    store = _writable_store(sqlite_path)
    kind = mlmd.ExecutionType(name=PROMOTION_TYPE)
    for key in ("model", "label", "version", "previous", "action"):
        kind.properties[key] = mlmd.STRING
    type_id = store.put_execution_type(kind, can_add_fields=True)
    execution = mlmd.Execution(type_id=type_id, last_known_state=mlmd.Execution.COMPLETE)
    for key, value in (
        ("model", model),
        ("label", label),
        ("version", str(version)),
        ("previous", "" if previous is None else str(previous)),
        ("action", action),
    ):
        execution.properties[key].string_value = value
    pushed = _pushed_model(store, pipeline, version)
    events = []
    if pushed is not None:
        event = mlmd.Event(artifact_id=pushed.id, type=mlmd.Event.INPUT)
        event.path.steps.add(key="model")
        events.append((pushed, event))
    context = store.get_context_by_type_and_name("pipeline", pipeline)
    execution_id, _, _ = store.put_execution(execution, events, [context] if context is not None else [])
    return execution_id


def _pushed_model(store, pipeline: str, version: int):
    for execution in results.node_executions(store, pipeline, "Pusher"):
        for artifact in results.outputs_of(store, execution).get("pushed_model", []):
            if str(results.custom(artifact, "pushed_version", "")) == str(version):
                return artifact
    return None


def history(sqlite_path, pipeline: str, model: str) -> List[Dict]:
    """Every label change of the model, oldest first: pushes with a label (Pusher) and promotions/rollbacks."""
    if not Path(sqlite_path).is_file():
        return []
    store = open_store(sqlite_path)
    found = []
    for execution in results.node_executions(store, pipeline, "Pusher"):
        for artifact in results.outputs_of(store, execution).get("pushed_model", []):
            label = results.custom(artifact, "serving_label", "")
            if label and results.custom(artifact, "pushed", 0):
                found.append(
                    {
                        "at": execution.create_time_since_epoch,
                        "order": execution.id,
                        "action": "push",
                        "label": label,
                        "version": str(results.custom(artifact, "pushed_version", "")),
                        "previous": str(results.custom(artifact, "serving_previous", "")),
                    }
                )
    try:
        executions = store.get_executions_by_type(PROMOTION_TYPE)
    except Exception:  # noqa: BLE001 - the type does not exist before the first promotion
        executions = []
    for execution in executions:
        props = {k: v.string_value for k, v in execution.properties.items()}
        if props.get("model") == model:
            found.append({"at": execution.create_time_since_epoch, "order": execution.id, **props})
    return sorted(found, key=lambda r: (r["at"], r["order"]))


def rollback_target(records: List[Dict], label: str = "stable") -> Optional[int]:
    """The version `label` pointed at before its current one, undoing earlier rollbacks as it goes."""
    stack: List[str] = []
    for r in records:
        if r.get("label") != label:
            continue
        if r.get("action") == "rollback":
            if stack:
                stack.pop()
        elif not stack or stack[-1] != r["version"]:
            if not stack and r.get("previous"):
                stack.append(r["previous"])
            stack.append(r["version"])
    return int(stack[-2]) if len(stack) >= 2 else None


def describe(pipeline: str, cfg=None) -> str:
    cfg = cfg or config_lib.from_env()
    serving_root = Path(cfg.serving_root(pipeline)).parent
    labels = labels_of(serving_root, pipeline)
    lines = [
        f"{pipeline}: "
        + (
            ", ".join(f"{k} -> {v}" for k, v in sorted(labels.items()))
            if labels
            else "no labels (the newest version serves)"
        )
    ]
    for r in history(cfg.metadata_path(pipeline), pipeline, pipeline):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"] / 1000))
        lines.append(
            f"  {when}  {r['action']:<8} {r['label']:<7} -> {r['version']}"
            + (f" (was {r['previous']})" if r.get("previous") else "")
        )
    return "\n".join(lines)
