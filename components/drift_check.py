"""Span-to-span drift: the newest span's statistics against the previous span's, before anything is trained.

    PreviousSpanStatistics (Resolver) -> DriftCheck -> AnomaliesGate (warns, or stops the run: DRIFT=block)

The factory adds these nodes only when the data folder holds spans (span-1/, span-2/, ...): without spans there
is nothing to compare, and a Kubeflow package (whose data root is a runtime parameter) keeps only container
steps, which is all open-source KFP runs (see components/served_baseline.py).

Why a Resolver with its own strategy: a component's input channel from StatisticsGen holds this run's
statistics only (TFX's compiler gives a producer's output channel every context of the producer, the
pipeline run's included: tfx/dsl/compiler/compiler.py `_generate_input_spec_for_outputs`), while an unbound
`Channel(type=ExampleStatistics)` holds every run's. The strategy gets both and picks, from the history, the
newest statistics of the newest span older than the current one, reading each statistics' span from the
Examples it was computed from (see `_input_spans`). A re-ingested span (same span number, new files) is
compared with the span before it, as a first ingestion of it was.
"""

import json
import os
from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, channel, standard_artifacts

from modeling import drift as drift_lib  # not `drift`: the component's output artifact has that name

CURRENT, HISTORY, HISTORY_EXAMPLES = "current", "history", "history_examples"


def _input_spans(store, statistics: List[types.Artifact]) -> Dict[int, tuple]:
    """{statistics artifact id: (producer execution type, span, id of the Examples it was computed from)}.

    The span is read from the Examples: TFX 1.16's ExampleGen keeps it as a custom property, while StatisticsGen
    copies the `span` property (tfx/components/statistics_gen/executor.py: `statistics_artifact.span =
    examples.span`), which is unset there, so every statistics artifact says span 0."""
    from ml_metadata.proto import metadata_store_pb2

    ids = [a.id for a in statistics]
    producer = {
        e.artifact_id: e.execution_id
        for e in store.get_events_by_artifact_ids(ids)
        if e.type == metadata_store_pb2.Event.OUTPUT
    }
    executions = {e.id: e for e in store.get_executions_by_id(list(set(producer.values())))}
    inputs = {}
    for event in store.get_events_by_execution_ids(list(executions)):
        if event.type == metadata_store_pb2.Event.INPUT:
            inputs.setdefault(event.execution_id, []).append(event.artifact_id)
    examples = {a.id: a for a in store.get_artifacts_by_id([i for ids_ in inputs.values() for i in ids_])}
    found = {}
    for stats_id, execution_id in producer.items():
        spans = [
            (examples[i].custom_properties["span"].int_value, i)
            for i in inputs.get(execution_id, [])
            if "span" in examples[i].custom_properties
        ]
        found[stats_id] = (executions[execution_id].type_id, *(spans[0] if spans else (None, None)))
    return found


class PreviousSpanStatistics(resolver.ResolverStrategy):
    """{current: this run's statistics, history: [the previous span's newest statistics] or [],
    history_examples: [the Examples those were computed from] or []}: only statistics written by the same kind
    of step (StatisticsGen, not Transform's) from spanned Examples."""

    def resolve_artifacts(
        self, store, input_dict: Dict[str, List[types.Artifact]]
    ) -> Optional[Dict[str, List[types.Artifact]]]:
        current = input_dict.get(CURRENT) or []
        if not current:
            return None
        history = [a for a in input_dict.get(HISTORY, []) if a.id != current[0].id]
        known = _input_spans(store, [current[0], *history])
        kind, span, _ = known.get(current[0].id, (None, None, None))
        none = {CURRENT: current, HISTORY: [], HISTORY_EXAMPLES: []}
        if span is None:
            return none
        older = [
            (known[a.id][1], a.id, a)
            for a in history
            if a.id in known and known[a.id][0] == kind and known[a.id][1] is not None and known[a.id][1] < span
        ]
        if not older:
            return none
        chosen = max(older, key=lambda t: (t[0], t[1]))[2]
        examples = [a for a in input_dict.get(HISTORY_EXAMPLES, []) if a.id == known[chosen.id][2]]
        return {CURRENT: current, HISTORY: [chosen], HISTORY_EXAMPLES: examples}


def previous_span_resolver(statistics_channel) -> resolver.Resolver:
    return resolver.Resolver(
        strategy_class=PreviousSpanStatistics,
        **{
            CURRENT: statistics_channel,
            HISTORY: channel.Channel(type=standard_artifacts.ExampleStatistics),
            HISTORY_EXAMPLES: channel.Channel(type=standard_artifacts.Examples),
        },
    ).with_id("PreviousSpanStatistics")


def _span(examples) -> Optional[int]:
    if examples is None or not examples.has_custom_property("span"):
        return None
    return int(examples.get_int_custom_property("span"))


def result_path(artifact) -> str:
    return os.path.join(artifact.uri, drift_lib.RESULT_FILE)


def read_result(artifact) -> dict:
    """What DriftCheck wrote: {current_span, previous_span, split, compared, features: [FeatureDistance]}."""
    with fileio.open(result_path(artifact), "r") as f:
        return drift_lib.from_json(f.read())


@component
def DriftCheck(
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    drift: OutputArtifact[standard_artifacts.ExampleAnomalies],
    thresholds: Parameter[str],
    split: Parameter[str] = "train",
    previous_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
    previous_examples: InputArtifact[standard_artifacts.Examples] = None,
):
    """Writes drift.json: per feature of `thresholds` (JSON {feature: threshold}), its distance between
    the `split` statistics of this span and of the previous one. Never fails on drift: AnomaliesGate decides
    (warn or block), so the distances are recorded either way.

    inputs      statistics and examples (this span), previous_statistics and previous_examples (the span before;
                none on the first span), schema
    outputs     drift (ExampleAnomalies: drift.json)
    parameters  thresholds, split
    """

    limits = json.loads(thresholds)
    context = {"current_span": _span(examples), "split": split, "statistics": statistics.uri}
    if previous_statistics is None:
        distances, context["previous_span"], context["compared"] = [], None, False
    else:
        current = drift_lib.load_split(statistics.uri, split)
        previous = drift_lib.load_split(previous_statistics.uri, split)
        distances = drift_lib.compare(current, previous, drift_lib.load_schema(schema.uri), limits, "drift")
        context.update(
            previous_span=_span(previous_examples), previous_statistics=previous_statistics.uri, compared=True
        )
    drift.split_names = artifact_utils.encode_split_names([split])
    fileio.makedirs(drift.uri)
    with fileio.open(result_path(drift), "w") as f:
        f.write(drift_lib.to_json(distances, **context))
    flagged = drift_lib.flagged(distances)
    drift.set_int_custom_property("drifted_features", len(flagged))
    drift.set_string_custom_property("drifted", ",".join(d.feature for d in flagged))
