"""Distances between two sets of statistics, per feature, with TFDV's comparators: drift (a new span against
the previous one) and skew (logged serving traffic against the served model's training data).

TFDV picks the distance from the comparator a schema feature carries (tensorflow_data_validation
`validate_statistics(previous_statistics=..., serving_statistics=...)`, which records every compared feature's
measurement, over its threshold or not, in `Anomalies.drift_skew_info`). This module sets those comparators
from a dataset's plain `{feature: threshold}` declaration, by what the statistics say the feature is:
- categorical (string values, or an int feature the schema marks categorical): L-infinity distance between
  the two value-frequency vectors, i.e. the largest change in any one value's share;
- numeric: Jensen-Shannon divergence between the two distributions, read from TFDV's quantiles histograms:
  equal-mass buckets keep their resolution where the data is (Titanic's Fare has most of its mass in the first
  tenth of its range, where equal-width buckets would see one bar).
A feature is flagged when its distance is above its threshold, as TFDV flags it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

DRIFT_ACTIONS = ("warn", "block", "off")  # what a drifted span does to the run (DatasetSpec, DRIFT=)
L_INFINITY = "L-infinity"
JENSEN_SHANNON = "Jensen-Shannon"
RESULT_FILE = "drift.json"
STATS_FILE = "FeatureStats.pb"

_MEASUREMENT_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: L_INFINITY,
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: JENSEN_SHANNON,
}


@dataclasses.dataclass(frozen=True)
class FeatureDistance:
    feature: str
    comparator: str  # L_INFINITY or JENSEN_SHANNON
    distance: Optional[float]  # None: the feature is missing from one side and could not be compared
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.distance is None or self.distance > self.threshold

    def as_dict(self) -> dict:
        return dict(dataclasses.asdict(self), flagged=self.flagged)

    def describe(self) -> str:
        if self.distance is None:
            return f"'{self.feature}': not in both sets of statistics, could not be compared"
        relation = ">" if self.flagged else "<="
        return (
            f"'{self.feature}': {self.comparator} distance {self.distance:.4f} {relation} threshold {self.threshold:g}"
        )


def feature_stats(
    stats: statistics_pb2.DatasetFeatureStatisticsList,
) -> Dict[str, statistics_pb2.FeatureNameStatistics]:
    dataset = stats.datasets[0] if stats.datasets else statistics_pb2.DatasetFeatureStatistics()
    return {(f.path.step[0] if f.path.step else f.name): f for f in dataset.features}


def is_categorical(feature: Optional[statistics_pb2.FeatureNameStatistics]) -> bool:
    """TFDV computes string statistics (value frequencies) for strings and for ints the schema marks
    categorical; numeric statistics (histograms) for the rest."""
    return feature is not None and feature.HasField("string_stats")


def with_comparators(
    schema: schema_pb2.Schema,
    thresholds: Mapping[str, float],
    stats: statistics_pb2.DatasetFeatureStatisticsList,
    kind: str,
) -> schema_pb2.Schema:
    """A copy of the schema with a drift (kind="drift") or skew (kind="skew") comparator on each feature of
    `thresholds`; KeyError names a feature the schema lacks."""
    if kind not in ("drift", "skew"):
        raise ValueError(f"kind {kind!r} is not 'drift' or 'skew'")
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    by_name = {f.name: f for f in out.feature}
    described = feature_stats(stats)
    for name, threshold in thresholds.items():
        if name not in by_name:
            raise KeyError(
                f"{kind} threshold for '{name}': the schema has no such feature (it has {', '.join(sorted(by_name))})"
            )
        comparator = getattr(by_name[name], f"{kind}_comparator")
        comparator.Clear()
        if is_categorical(described.get(name)):
            comparator.infinity_norm.threshold = float(threshold)
        else:
            comparator.jensen_shannon_divergence.threshold = float(threshold)
            comparator.jensen_shannon_divergence.source.type = schema_pb2.HistogramSelection.QUANTILES
    return out


def compare(
    current: statistics_pb2.DatasetFeatureStatisticsList,
    reference: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    thresholds: Mapping[str, float],
    kind: str = "drift",
) -> List[FeatureDistance]:
    """One FeatureDistance per feature of `thresholds`, in its order. drift: `current` is the new span,
    `reference` the previous one; skew: `current` the training data, `reference` the serving traffic."""
    import tensorflow_data_validation as tfdv

    schema = with_comparators(schema, thresholds, current, kind)
    # TFDV validates `statistics` against the whole schema too; only the comparators' measurements are read here
    # (ExampleValidator already judged the schema, and serving traffic carries no label)
    if kind == "drift":
        anomalies = tfdv.validate_statistics(current, schema, previous_statistics=reference)
    else:
        anomalies = tfdv.validate_statistics(current, schema, serving_statistics=reference)
    measured: Dict[str, anomalies_pb2.DriftSkewInfo.Measurement] = {}
    for info in anomalies.drift_skew_info:
        for m in info.drift_measurements if kind == "drift" else info.skew_measurements:
            measured[info.path.step[0]] = m
    described = feature_stats(current)
    found = []
    for name, threshold in thresholds.items():
        m = measured.get(name)
        comparator = L_INFINITY if is_categorical(described.get(name)) else JENSEN_SHANNON
        found.append(
            FeatureDistance(
                name,
                _MEASUREMENT_NAMES.get(m.type, comparator) if m else comparator,
                float(m.value) if m else None,
                float(threshold),
            )
        )
    return found


def flagged(distances: Iterable[FeatureDistance]) -> List[FeatureDistance]:
    return [d for d in distances if d.flagged]


# ------------------------------------------------------------------------------------------- statistics I/O
def load_split(statistics_uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    """One split of a StatisticsGen output (its `Split-<name>/FeatureStats.pb`)."""
    from tensorflow_data_validation import load_stats_binary
    from tfx.dsl.io import fileio

    path = os.path.join(statistics_uri, f"Split-{split}", STATS_FILE)
    if not fileio.exists(path):
        raise FileNotFoundError(f"no statistics for split '{split}' at {path}")
    return load_stats_binary(path)


def load_schema(schema_uri: str) -> schema_pb2.Schema:
    """The schema a SchemaGen / ImportSchemaGen artifact holds (its one .pbtxt file)."""
    from tensorflow_data_validation import load_schema_text
    from tfx.dsl.io import fileio

    files = sorted(f for f in fileio.listdir(schema_uri) if f.endswith(".pbtxt"))
    if not files:
        raise FileNotFoundError(f"no schema .pbtxt in {schema_uri}")
    return load_schema_text(os.path.join(schema_uri, files[0]))


def statistics_of(
    serialized_examples: Sequence[bytes], schema: Optional[schema_pb2.Schema] = None
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of serialized tf.Examples, in this process (no Beam): the examples are decoded to an
    Arrow batch by tfx_bsl's C++ decoder, as StatisticsGen's own reader does; with the schema, features are
    typed (and ints marked categorical counted as categories) exactly as in the training statistics."""
    from tensorflow_data_validation import StatsOptions
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.coders import example_coder

    decoder = example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString() if schema else None)
    batch = decoder.DecodeBatch(list(serialized_examples))
    options = StatsOptions(schema=schema) if schema is not None else StatsOptions()
    return stats_impl.generate_statistics_in_memory(batch, options)


# ------------------------------------------------------------------------------------------- distributions
def distribution(feature: Optional[statistics_pb2.FeatureNameStatistics], top: int = 12) -> dict:
    """What a plot of one feature shows: {"kind": "categorical", "values": [...], "shares": [...]} (the most
    frequent values) or {"kind": "numeric", "edges": [...], "shares": [...]} (the quantiles histogram)."""
    if feature is None:
        return {"kind": "missing"}
    if feature.HasField("string_stats"):
        s = feature.string_stats
        total = sum(b.sample_count for b in s.rank_histogram.buckets) or sum(v.frequency for v in s.top_values) or 1
        pairs = [(b.label, b.sample_count) for b in s.rank_histogram.buckets] or [
            (v.value, v.frequency) for v in s.top_values
        ]
        pairs = sorted(pairs, key=lambda p: -p[1])[:top]
        return {"kind": "categorical", "values": [p[0] for p in pairs], "shares": [p[1] / total for p in pairs]}
    hist = next((h for h in feature.num_stats.histograms if h.type == statistics_pb2.Histogram.QUANTILES), None)
    hist = hist or next(iter(feature.num_stats.histograms), None)
    if hist is None or not hist.buckets:
        return {"kind": "numeric", "edges": [], "shares": []}
    total = sum(b.sample_count for b in hist.buckets) or 1
    return {
        "kind": "numeric",
        "edges": [hist.buckets[0].low_value] + [b.high_value for b in hist.buckets],
        "shares": [b.sample_count / total for b in hist.buckets],
    }


def plot_pair(plt, name: str, left: dict, right: dict, left_label: str, right_label: str, title: str):
    """Two distributions of one feature side by side on the same axes (same value order for categories, same
    range for numbers), so that what moved is what differs between the panels; a matplotlib figure."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
    order = list(left.get("values", []))
    order += [v for v in right.get("values", []) if v not in order]
    numeric = [d for d in (left, right) if d.get("kind") == "numeric" and d["shares"]]
    span = (min(d["edges"][0] for d in numeric), max(d["edges"][-1] for d in numeric)) if numeric else None
    for ax, dist, label in ((axes[0], left, left_label), (axes[1], right, right_label)):
        if dist.get("kind") == "categorical":
            share = dict(zip(dist["values"], dist["shares"]))
            ax.bar(range(len(order)), [share.get(v, 0.0) for v in order])
            ax.set_xticks(range(len(order)), [str(v)[:14] for v in order], rotation=30, fontsize=8)
            ax.set_ylabel("share of values")
        elif dist.get("kind") == "numeric" and dist["shares"]:
            edges = dist["edges"]
            widths = [max(b - a, 1e-9) for a, b in zip(edges[:-1], edges[1:])]
            # density: a quantiles histogram has equal shares in unequal widths
            ax.bar(
                edges[:-1],
                [s / w for s, w in zip(dist["shares"], widths)],
                width=widths,
                align="edge",
                edgecolor="white",
            )
            ax.set_xlim(*span)
            ax.set_ylabel("density")
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name}: {label}", fontsize=10)
    fig.suptitle(title, fontsize=10, y=1.02)
    return fig


# ------------------------------------------------------------------------------------------- results as JSON
def to_json(distances: Sequence[FeatureDistance], **context) -> str:
    return json.dumps({**context, "features": [d.as_dict() for d in distances]}, indent=2, sort_keys=True)


def from_json(text: str) -> dict:
    """{..., "features": [FeatureDistance, ...]} as written by to_json."""
    data = json.loads(text)
    data["features"] = [
        FeatureDistance(f["feature"], f["comparator"], f["distance"], f["threshold"]) for f in data.get("features", [])
    ]
    return data
