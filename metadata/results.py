"""What the last run of a pipeline did, read from ML Metadata and the artifacts it points to.

python -m metadata.results titanic     # where the pushed model is, its AUC/KS, blessed or why not
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ml_metadata.proto import metadata_store_pb2

from components import drift_check
from metadata.store import open_store
from orchestration import config as config_lib

OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


def node_executions(store, pipeline: str, node_id: str) -> List[metadata_store_pb2.Execution]:
    """Every execution of one pipeline node, oldest first (cached ones included)."""
    context = store.get_context_by_type_and_name("node", f"{pipeline}.{node_id}")
    if context is None:
        return []
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def execution_state(execution) -> str:
    return metadata_store_pb2.Execution.State.Name(execution.last_known_state)


def artifacts_by_key(store, execution, kinds) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    """{input/output key: artifacts} of an execution, for the event types in `kinds`."""
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type in kinds]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    found: Dict[str, List[metadata_store_pb2.Artifact]] = {}
    for event in events:
        # one artifact can fill several inputs (a model that is also its own baseline): one step per key
        for key in [step.key for step in event.path.steps if step.HasField("key")] or [""]:
            found.setdefault(key, []).append(artifacts[event.artifact_id])
    return found


def outputs_of(store, execution) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    return artifacts_by_key(store, execution, OUTPUT_EVENTS)


def inputs_of(store, execution) -> Dict[str, List[metadata_store_pb2.Artifact]]:
    return artifacts_by_key(store, execution, INPUT_EVENTS)


def latest_outputs(store, pipeline: str, node_id: str) -> Tuple[Optional[metadata_store_pb2.Execution], Dict]:
    """The newest execution of the node that finished (ran or was cached), with its outputs."""
    finished = [e for e in node_executions(store, pipeline, node_id) if execution_state(e) in ("COMPLETE", "CACHED")]
    if not finished:
        return None, {}
    return finished[-1], outputs_of(store, finished[-1])


def custom(artifact, key, default=None):
    if key not in artifact.custom_properties:
        return default
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def slice_name(slice_key) -> str:
    return "overall" if not slice_key else ", ".join(f"{k}={v}" for k, v in slice_key)


DIFF_SUFFIX = "_diff"


def load_eval_result(evaluation_uri: str):
    """TFMA's result for the candidate model: with a baseline, the Evaluator names the models candidate and
    baseline, and TFMA would otherwise pick one of them."""
    import tensorflow_model_analysis as tfma

    with open(Path(evaluation_uri) / "eval_config.json") as f:
        names = [m.get("name", "") for m in json.load(f).get("evalConfig", {}).get("modelSpecs", [])]
    return tfma.load_eval_result(evaluation_uri, model_name="candidate" if "candidate" in names else None)


def load_metrics(evaluation_uri: str, diffs: bool = False) -> Dict[str, Dict[str, float]]:
    """{slice name: {metric: value}} for the candidate model; with diffs=True, the candidate-minus-baseline
    changes instead (empty where there was no baseline)."""
    result = load_eval_result(evaluation_uri)
    metrics: Dict[str, Dict[str, float]] = {}
    for slice_key, by_output in result.slicing_metrics:
        values = {}
        for by_sub_key in by_output.values():
            for sub_key, by_name in by_sub_key.items():
                for name, value in by_name.items():
                    if "doubleValue" in value and name.endswith(DIFF_SUFFIX) == diffs:
                        name = name[: -len(DIFF_SUFFIX)] if diffs else name
                        values[metric_name(name, sub_key)] = float(value["doubleValue"])
        metrics[slice_name(slice_key)] = values
    return metrics


def metric_name(name: str, sub_key: str = "") -> str:
    """A readable key for TFMA's: "auc"; a class's one-vs-rest "auc_class_2" (sub key "classId:2"); an aggregate
    ("macro_average: true\n_auc") "macro_auc"."""
    if "\n_" in name:  # TFMA's text form of the aggregation, then "_" and the metric
        aggregation, metric = name.split("\n_", 1)
        name = f"{aggregation.split(':')[0].replace('_average', '')}_{metric}"
    if sub_key.startswith("classId:"):
        name = f"{name}_class_{sub_key.split(':', 1)[1]}"
    elif sub_key:
        name = f"{name}_{sub_key.replace(':', '_')}"
    return name


def validation_failures(evaluation_uri: str) -> List[str]:
    """Why the model was not blessed: one line per failed threshold, e.g. 'overall auc: ...'."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.slicer import slicer_lib

    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for details in result.metric_validations_per_slice:
        where = slice_name(slicer_lib.deserialize_slice_key(details.slice_key))
        for failure in details.failures:
            value = failure.metric_value.double_value.value
            threshold = failure.metric_threshold
            needs = []
            if threshold.HasField("value_threshold"):
                bounds = threshold.value_threshold
                if bounds.HasField("lower_bound"):
                    needs.append(f">= {bounds.lower_bound.value:g}")
                if bounds.HasField("upper_bound"):
                    needs.append(f"<= {bounds.upper_bound.value:g}")
            if threshold.HasField("change_threshold"):
                needs.append(f"change vs baseline >= {threshold.change_threshold.absolute.value:g}")
            what = "the change" if failure.metric_key.is_diff else "the value"
            failures.append(
                f"{where} {failure.metric_key.name}: {what} {value:.4f} misses "
                f"{' and '.join(needs) or 'its threshold'} {failure.message}".rstrip()
            )
    return failures


def consumers(store, artifact, kind: str, key: str) -> List[metadata_store_pb2.Execution]:
    """The executions of a component `kind` (its type name's last part, e.g. "StatisticsGen") that read the
    artifact as their input `key`, newest first."""
    ids = [e.execution_id for e in store.get_events_by_artifact_ids([artifact.id]) if e.type in INPUT_EVENTS]
    found = [
        e
        for e in store.get_executions_by_id(ids)
        if store.get_execution_types_by_id([e.type_id])[0].name.endswith(kind)
        and artifact.id in {a.id for a in inputs_of(store, e).get(key, [])}
    ]
    return sorted(found, key=lambda e: -e.id)


def drift_of(store, raw_examples) -> Optional[dict]:
    """What DriftCheck found for these Examples (the newest check of them), or None: no spans, or drift off."""

    checks = []
    for execution in consumers(store, raw_examples, "DriftCheck", "examples"):  # not a check *against* them
        checks.extend(outputs_of(store, execution).get("drift", []))
    if not checks:
        return None
    artifact = max(checks, key=lambda a: a.id)
    try:
        found = drift_check.read_result(artifact)
    except (OSError, ValueError):
        return None
    found["features"] = [d.as_dict() for d in found["features"]]
    return found


def drift_summary(drift: Optional[dict]) -> Optional[str]:
    """One line: what drifted against which span, or that nothing did; None when there was no comparison."""
    if not drift or not drift.get("compared"):
        return None
    flagged = [f for f in drift["features"] if f["flagged"]]
    if not flagged:
        return f"no feature drifted against span {drift['previous_span']} ({len(drift['features'])} compared)"
    return f"drift against span {drift['previous_span']}: " + ", ".join(
        f"'{f['feature']}' {f['comparator']} {f['distance']:.4f} > {f['threshold']:g}"
        if f["distance"] is not None
        else f"'{f['feature']}' not comparable"
        for f in flagged
    )


@dataclasses.dataclass
class RunResult:
    pipeline: str
    blessed: Optional[bool]
    pushed: bool
    pushed_destination: Optional[str]
    pushed_version: Optional[str]
    metrics: Dict[str, Dict[str, float]]
    changes: Dict[str, Dict[str, float]]  # vs the baseline (last blessed model); empty without one
    evaluation_uri: Optional[str]
    model_uri: Optional[str]
    failures: List[str]
    baseline_version: Optional[str] = None  # the served version the model was judged against; None: no baseline
    drift: Optional[dict] = None  # the ingested span against the previous one (DriftCheck); None: not compared

    def overall(self, name: str) -> Optional[float]:
        return self.metrics.get("overall", {}).get(name)


def last_run(pipeline: str, cfg: Optional[config_lib.PipelineConfig] = None) -> RunResult:
    cfg = cfg or config_lib.from_env()
    store = open_store(cfg.metadata_path(pipeline))
    _, eval_out = latest_outputs(store, pipeline, "Evaluator")
    _, push_out = latest_outputs(store, pipeline, "Pusher")
    _, train_out = latest_outputs(store, pipeline, "Trainer")
    examples = latest_examples(store, pipeline)
    evaluation = (eval_out.get("evaluation") or [None])[0]
    blessing = (eval_out.get("blessing") or [None])[0]
    pushed = (push_out.get("pushed_model") or [None])[0]
    model = (train_out.get("model") or [None])[0]
    is_pushed = bool(pushed is not None and custom(pushed, "pushed", 0))
    return RunResult(
        pipeline=pipeline,
        blessed=None if blessing is None else bool(custom(blessing, "blessed", 0)),
        pushed=is_pushed,
        pushed_destination=custom(pushed, "pushed_destination") if is_pushed else None,
        pushed_version=custom(pushed, "pushed_version") if is_pushed else None,
        metrics=load_metrics(evaluation.uri) if evaluation is not None else {},
        changes=load_metrics(evaluation.uri, diffs=True) if evaluation is not None else {},
        evaluation_uri=evaluation.uri if evaluation is not None else None,
        model_uri=model.uri if model is not None else None,
        failures=validation_failures(evaluation.uri) if evaluation is not None else [],
        baseline_version=(custom(blessing, "baseline_version", "") or None) if blessing is not None else None,
        drift=drift_of(store, examples) if examples is not None else None,
    )


def latest_examples(store, pipeline: str):
    """The newest Examples an ExampleGen of the pipeline wrote (or found cached), or None."""
    for context in store.get_contexts_by_type("node"):
        if context.name.startswith(f"{pipeline}.") and context.name.endswith("ExampleGen"):
            _, outputs = latest_outputs(store, pipeline, context.name.split(".", 1)[1])
            return (outputs.get("examples") or [None])[0]
    return None


def format_result(result: RunResult) -> str:
    lines = [f"== {result.pipeline}: last run =="]
    for metric, label in (
        ("auc", "AUC"),
        ("ks", "KS"),
        ("binary_accuracy", "accuracy"),
        ("sparse_categorical_accuracy", "accuracy"),
        ("macro_auc", "macro AUC"),
        ("mean_squared_percentage_error", "MSPE"),
        ("mean_absolute_error", "MAE"),
        ("mean_squared_error", "MSE"),
        ("r2", "R²"),
        ("example_count", "eval examples"),
    ):
        value = result.overall(metric)
        change = result.changes.get("overall", {}).get(metric)
        if value is None:
            continue
        if metric == "example_count":
            lines.append(f"  {label:<14} {int(value)}")
        else:
            versus = f"   ({change:+.4f} vs the last blessed model)" if change is not None else ""
            lines.append(f"  {label:<14} {value:.4f}{versus}")
    for name, values in sorted(result.metrics.items()):
        if name != "overall" and "auc" in values:
            ks, count = values.get("ks", float("nan")), int(values.get("example_count", 0))
            lines.append(f"  slice {name:<20} AUC {values['auc']:.4f}  KS {ks:.4f}  n={count}")
    if drift_summary(result.drift):
        flagged = any(f["flagged"] for f in result.drift["features"])
        lines.append(
            f"  {'DRIFT' if flagged else 'drift':<14} span {result.drift['current_span']}: "
            + drift_summary(result.drift)
        )
    lines.append(
        "  baseline       "
        + (
            f"served version {result.baseline_version}"
            if result.baseline_version
            else "none (the first model: judged on absolute bounds only)"
        )
    )
    lines.append(f"  blessed        {'yes' if result.blessed else 'no'}")
    for failure in result.failures:
        lines.append(f"    not blessed because: {failure}")
    if result.pushed:
        lines.append(f"  pushed model   {result.pushed_destination}  (version {result.pushed_version})")
    else:
        lines.append("  pushed model   none: the serving directory was left as it was")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        result = last_run(args.pipeline)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(result), indent=2) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
