"""Promotion and rollback as commands, each recorded in the pipeline's ML Metadata (serving/promotion.py edits
the serving root's model config; this module is the part that knows pipelines and their metadata).

    python -m pipelines.tools.promote promote titanic 1796195387 canary     (or: make promote PIPELINE= VERSION= LABEL=)
    python -m pipelines.tools.promote rollback titanic                      (or: make rollback PIPELINE=)
    python -m pipelines.tools.promote show titanic                          # the labels and their history

Each promotion and rollback is an Execution (type tfx_book.Promotion) in the pipeline's ML Metadata, attributed to
the pipeline's context, with the pushed model as its input where this pipeline pushed it; a push as `canary` or
`stable` (PUSH_LABEL) is recorded on the Pusher's PushedModel artifact (custom properties serving_label,
serving_previous, serving_labels). `rollback` walks that history.
"""
from __future__ import annotations

if __name__ == "__main__":  # a command: only the project's own lines (components/quiet.py; VERBOSE=1 shows all)
    from components import quiet

    quiet.quiet_command()

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from components import layout
from serving import tf_serving_config as tfs
from serving.promotion import DEFAULT_SERVER, PromotionError, assign, labels_of

PROMOTION_TYPE = "tfx_book.Promotion"


# ---------------------------------------------------------------------------------------------- ML Metadata
def _writable_store(sqlite_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = str(sqlite_path)
    cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(cfg)


def record(sqlite_path, pipeline: str, model: str, label: str, version: int, previous: Optional[int],
           action: str) -> Optional[int]:
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
    for key, value in (("model", model), ("label", label), ("version", str(version)),
                       ("previous", "" if previous is None else str(previous)), ("action", action)):
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
    from pipelines.metadata import results

    for execution in results.node_executions(store, pipeline, "Pusher"):
        for artifact in results.outputs_of(store, execution).get("pushed_model", []):
            if str(results.custom(artifact, "pushed_version", "")) == str(version):
                return artifact
    return None


def history(sqlite_path, pipeline: str, model: str) -> List[Dict]:
    """Every label change of the model, oldest first: pushes with a label (Pusher) and promotions/rollbacks."""
    from pipelines.metadata import results
    from pipelines.metadata.store import open_store

    if not Path(sqlite_path).is_file():
        return []
    store = open_store(sqlite_path)
    found = []
    for execution in results.node_executions(store, pipeline, "Pusher"):
        for artifact in results.outputs_of(store, execution).get("pushed_model", []):
            label = results.custom(artifact, "serving_label", "")
            if label and results.custom(artifact, "pushed", 0):
                found.append({"at": execution.create_time_since_epoch, "order": execution.id, "action": "push",
                              "label": label, "version": str(results.custom(artifact, "pushed_version", "")),
                              "previous": str(results.custom(artifact, "serving_previous", ""))})
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


def promote(pipeline: str, version: int, label: str, cfg=None, server: Optional[str] = None,
            action: str = "promote", say: Callable[[str], None] = print) -> Dict:
    from pipelines import config as config_lib

    cfg = cfg or config_lib.from_env()
    serving_root = Path(cfg.serving_root(pipeline)).parent
    done = assign(serving_root, pipeline, version, label, server=server, say=say)
    record(cfg.metadata_path(pipeline), pipeline, pipeline, label, version, done["previous"], action)
    return done


def rollback(pipeline: str, cfg=None, server: Optional[str] = None, say: Callable[[str], None] = print) -> Dict:
    from pipelines import config as config_lib

    cfg = cfg or config_lib.from_env()
    records = history(cfg.metadata_path(pipeline), pipeline, pipeline)
    target = rollback_target(records)
    if target is None:
        raise PromotionError(f"{pipeline}: no earlier stable version is recorded in ML Metadata "
                             f"({cfg.metadata_path(pipeline)}); point stable at a version with "
                             f"`make promote PIPELINE={pipeline} VERSION=<version> LABEL=stable`")
    return promote(pipeline, target, "stable", cfg, server, action="rollback", say=say)


def describe(pipeline: str, cfg=None) -> str:
    from pipelines import config as config_lib

    cfg = cfg or config_lib.from_env()
    serving_root = Path(cfg.serving_root(pipeline)).parent
    labels = labels_of(serving_root, pipeline)
    lines = [f"{pipeline}: " + (", ".join(f"{k} -> {v}" for k, v in sorted(labels.items())) if labels else
                                "no labels (the newest version serves)")]
    for r in history(cfg.metadata_path(pipeline), pipeline, pipeline):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"] / 1000))
        lines.append(f"  {when}  {r['action']:<8} {r['label']:<7} -> {r['version']}"
                     + (f" (was {r['previous']})" if r.get("previous") else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("promote", help="point a label at a version")
    p.add_argument("pipeline")
    p.add_argument("version")
    p.add_argument("label")
    r = sub.add_parser("rollback", help="point stable back at the version before")
    r.add_argument("pipeline")
    s = sub.add_parser("show", help="the labels and their history")
    s.add_argument("pipeline")
    for q in (p, r):
        q.add_argument("--server", default=None, help=f"the serving REST address to wait for (SERVING_URL, default "
                                                      f"{DEFAULT_SERVER}; 'none': do not wait)")
    args = parser.parse_args(argv)
    from pipelines import registry

    if args.pipeline not in registry.PIPELINES:
        parser.error(f"unknown pipeline {args.pipeline!r}; known: {', '.join(registry.PIPELINES)}")
    try:
        if args.command == "promote":
            version = layout.parse_version(args.version)
            if version is None:
                parser.error(f"VERSION {args.version!r} is not a version number")
            promote(args.pipeline, version, args.label, server=args.server)
        elif args.command == "rollback":
            rollback(args.pipeline, server=args.server)
        print(describe(args.pipeline))
    except (PromotionError, tfs.ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
