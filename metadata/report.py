"""A run report: one self-contained HTML page (PNGs embedded) per run, from ML Metadata and the run's artifacts.

    python -m metadata.report titanic        (each local run also writes one and prints its path)

Sections: data (StatisticsGen: counts, missing values, label balance), drift from the previous span (a table
of distances and the distributions of each drifted feature), training (loss and metrics per epoch,
train and validation), evaluation (metrics per slice against the baseline, blessed or not and why), ROC and KS
curves (classifiers, from TFMA's confusion-matrix plot), why the model was trained (new span, drift, what else
changed, the baseline and the metric deltas), example predictions, the dataset's own sections and the
lineage of the pushed model. A dataset shapes its part through `DatasetSpec.report_module`, a module of its own
package with `examples_html(examples, predicted, label_key)` (cifar2 draws images, imdb shows text) and/or
`sections(cfg)` (covid adds the forecast); this module never names a dataset.

Why a post-run step and not a TFX component: the report reads the whole run, including the Pusher's outcome and
the lineage that only exists once the run is over; a component could only see its declared inputs, and a
failed Evaluator would take the report down with it.
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from core import html_report, layout
from core.private_files import private_folder
from metadata import lineage as lineage_lib
from metadata import results
from modeling import drift as drift_lib
from orchestration import config as config_lib
from pipelines import registry

N_EXAMPLES = 8


# ------------------------------------------------------------------------------------------------ sections
def data_section(store, pipeline: str, label_key: str) -> str:
    from tensorflow_data_validation import load_stats_binary

    _, outputs = results.latest_outputs(store, pipeline, "StatisticsGen")
    if not outputs.get("statistics"):
        return "<p>No statistics in this run.</p>"
    artifact = outputs["statistics"][0]
    splits = json.loads(
        results.custom(artifact, "split_names", None) or artifact.properties["split_names"].string_value
    )
    plt = html_report.pyplot()
    rows, missing_by_feature, balance = [], {}, {}
    for split in splits:
        stats = load_stats_binary(os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb")).datasets[0]
        rows.append([split, int(stats.num_examples), len(stats.features)])
        for feature in stats.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            common = (
                feature.num_stats.common_stats
                if feature.HasField("num_stats")
                else (feature.string_stats.common_stats if feature.HasField("string_stats") else None)
            )
            if common is None:
                continue
            total = common.num_non_missing + common.num_missing
            # an empty CSV cell is a present feature with no value: count it as missing too (TFDV keeps the
            # number of values per example as quantiles, so this share is approximate)
            empty = sum(b.sample_count for b in common.num_values_histogram.buckets if b.high_value == 0)
            missing_by_feature.setdefault(name, {})[split] = 100.0 * (common.num_missing + empty) / max(total, 1)
            if name == label_key and feature.HasField("num_stats"):
                balance[split] = feature.num_stats.mean
    parts = ["<h3>Examples</h3>", html_report.table(["split", "examples", "features"], rows)]
    if missing_by_feature:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(missing_by_feature) + 1))
        names = sorted(missing_by_feature)
        for k, split in enumerate(splits):
            ax.barh(
                np.arange(len(names)) + 0.4 * k, [missing_by_feature[n].get(split, 0) for n in names], 0.4, label=split
            )
        ax.set_yticks(np.arange(len(names)) + 0.2, names)
        ax.set_xlabel("% of examples missing a value")
        ax.legend()
        parts += ["<h3>Missing values</h3>", html_report.png(fig)]
    if balance:
        parts += [
            "<h3>Label balance</h3>",
            html_report.table(
                ["split", f"mean of {label_key} (share of positives)"], [[s, v] for s, v in balance.items()]
            ),
        ]
    return "\n".join(parts)


def drift_section(store, pipeline: str) -> str:
    """The new span against the previous one: a row per compared feature, and per drifted feature its two
    distributions side by side."""

    examples = results.latest_examples(store, pipeline)
    found = results.drift_of(store, examples) if examples is not None else None
    if not found or not found.get("compared"):
        why = (
            "the first span: nothing to compare with"
            if found
            else "the data folder holds no spans (span-1/, span-2/, ...), or DRIFT=off"
        )
        return f"<p>No span-to-span comparison in this run: {html.escape(why)}.</p>"
    return distances_html(
        found["features"],
        found["split"],
        drift_lib.load_split(found["statistics"], found["split"]),
        drift_lib.load_split(found["previous_statistics"], found["split"]),
        f"span {found['current_span']}",
        f"span {found['previous_span']}",
        "drifted",
    )


def distances_html(
    features, split: str, current, reference, current_label: str, reference_label: str, word: str
) -> str:
    """A table of per-feature distances and, for each flagged feature, `reference` and `current` side by
    side; used for drift (new span vs previous) and skew (serving traffic vs training data)."""

    rows, attrs = [], []
    for f in features:
        verdict = "not comparable" if f["distance"] is None else (word.upper() if f["flagged"] else "ok")
        rows.append(
            [
                f["feature"],
                f["comparator"],
                "" if f["distance"] is None else float(f["distance"]),
                float(f["threshold"]),
                verdict,
            ]
        )
        attrs.append(
            [f'data-feature="{html.escape(f["feature"])}" data-flagged="{str(f["flagged"]).lower()}"', "", "", "", ""]
        )
    flagged = [f for f in features if f["flagged"]]
    parts = [
        f"<p>{current_label} against {reference_label}, {html.escape(split)} split: "
        f"{len(flagged)} of {len(features)} features {word}.</p>",
        html_report.table(["feature", "distance", "value", "threshold", "verdict"], rows, attrs),
    ]
    plt = html_report.pyplot()
    now, before = drift_lib.feature_stats(current), drift_lib.feature_stats(reference)
    for f in flagged:
        name = f["feature"]
        fig = drift_lib.plot_pair(
            plt,
            name,
            drift_lib.distribution(before.get(name)),
            drift_lib.distribution(now.get(name)),
            reference_label,
            current_label,
            f"{f['comparator']} distance {f['distance'] if f['distance'] is None else round(f['distance'], 4)} "
            f"(threshold {f['threshold']:g})",
        )
        parts.append(f'<h3 data-plot="{html.escape(name)}">{html.escape(name)}</h3>' + html_report.png(fig))
    return "\n".join(parts)


def why_section(pipeline: str, cfg) -> str:
    """What this run's model had that the model it was judged against had not, and how its metrics moved."""
    story = lineage_lib.last_run_lineage(pipeline, cfg)
    return f"<pre>{html.escape(chr(10).join(lineage_lib.format_why(story['why'])))}</pre>"


def training_section(store, pipeline: str) -> str:
    _, outputs = results.latest_outputs(store, pipeline, "Trainer")
    if not outputs.get("model_run"):
        return "<p>No training in this run.</p>"
    path = os.path.join(outputs["model_run"][0].uri, layout.RUN_RECORD)
    if not tf.io.gfile.exists(path):
        return "<p>The Trainer left no training record.</p>"
    record = json.loads(tf.io.gfile.GFile(path).read())
    history = record.get("history", {})
    names = sorted({k[4:] if k.startswith("val_") else k for k in history if k != "lr"})
    plt = html_report.pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend()
    settings = record.get("settings", {})
    info = (
        f"strategy {settings.get('strategy')} ({record.get('strategy', {}).get('num_replicas')} replica(s)), "
        f"seed {settings.get('seed')}, {len(history.get('loss', []))} of at most {settings.get('epochs')} "
        f"epochs, batch {settings.get('batch_size')}"
    )
    return f"<p>{html.escape(info)}</p>" + html_report.png(fig)


def evaluation_section(result: results.RunResult) -> str:
    rows, attrs = [], []
    names = sorted({m for values in result.metrics.values() for m in values})
    for slice_name, values in sorted(result.metrics.items(), key=lambda kv: (kv[0] != "overall", kv[0])):
        rows.append([slice_name] + [values.get(m, "") for m in names])
        attrs.append(
            [""]
            + [
                f'data-slice="{html.escape(slice_name)}" data-metric="{m}" data-value="{values[m]!r}"'
                if m in values
                else ""
                for m in names
            ]
        )
    parts = [html_report.table(["slice"] + names, rows, attrs)]
    changes = result.changes.get("overall")
    if changes:
        parts.append(
            f"<p>Change against the last blessed model (served version {result.baseline_version}, overall): "
            + ", ".join(f"{k} {v:+.4f}" for k, v in sorted(changes.items()))
            + "</p>"
        )
    else:
        parts.append("<p>No baseline: this is the first model to be judged.</p>")
    verdict = "blessed" if result.blessed else "NOT blessed"
    parts.append(
        f'<p class="verdict">{verdict}; '
        + ("pushed to " + html.escape(str(result.pushed_destination)) if result.pushed else "nothing pushed")
        + "</p>"
    )
    if result.failures:
        parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in result.failures) + "</ul>")
    return "\n".join(parts)


def curves_section(result: results.RunResult) -> str:
    eval_result = results.load_eval_result(result.evaluation_uri)
    matrices = None
    for slice_key, plots in eval_result.plots:
        if not slice_key and plots:
            for by_sub_key in plots.values():
                found = by_sub_key.get("", {}).get("confusionMatrixAtThresholds")
                if found:
                    matrices = found["matrices"]
    if not matrices:
        return "<p>No confusion-matrix plot in this evaluation.</p>"
    thresholds = np.array([m.get("threshold", 0.0) for m in matrices])
    tp, fn = (np.array([m.get(k, 0.0) for m in matrices]) for k in ("truePositives", "falseNegatives"))
    fp, tn = (np.array([m.get(k, 0.0) for m in matrices]) for k in ("falsePositives", "trueNegatives"))
    tpr, fpr = tp / np.maximum(tp + fn, 1e-12), fp / np.maximum(fp + tn, 1e-12)
    best = int(np.argmax(tpr - fpr))
    plt = html_report.pyplot()
    fig, (roc, ks) = plt.subplots(1, 2, figsize=(10, 4))
    roc.plot(fpr, tpr)
    roc.plot([0, 1], [0, 1], ls="--", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {result.overall('auc'):.4f})")
    keep = thresholds >= 0
    ks.plot(thresholds[keep], 1 - tpr[keep], label="positives: share scored <= t")
    ks.plot(thresholds[keep], 1 - fpr[keep], label="negatives: share scored <= t")
    ks.vlines(
        thresholds[best],
        1 - tpr[best],
        1 - fpr[best],
        color="red",
        label=f"largest gap {tpr[best] - fpr[best]:.4f} at t={thresholds[best]:.3f}",
    )
    ks.set(xlabel="threshold t", ylabel="cumulative share", title=f"KS (metric {result.overall('ks'):.4f})")
    ks.legend(fontsize=8)
    return html_report.png(fig)


def confusion_section(result: results.RunResult, classes) -> str:
    """A multi-class model's confusion matrix on the eval split (TFMA's MultiClassConfusionMatrixPlot: the predicted
    class is the most probable one), as a table and a heat map, and each class's one-vs-rest AUC."""
    eval_result = results.load_eval_result(result.evaluation_uri)
    entries = None
    for slice_key, plots in eval_result.plots:
        if not slice_key and plots:
            for by_sub_key in plots.values():
                found = by_sub_key.get("", {}).get("multiClassConfusionMatrixAtThresholds")
                if found and found.get("matrices"):
                    entries = found["matrices"][0].get("entries", [])
    if entries is None:
        return "<p>No confusion matrix in this evaluation.</p>"
    k = len(classes)
    matrix = np.zeros((k, k))
    for entry in entries:  # TFMA leaves out zero fields: a missing class id is class 0
        actual, predicted = entry.get("actualClassId", 0), entry.get("predictedClassId", 0)
        if 0 <= actual < k and 0 <= predicted < k:
            matrix[actual, predicted] += entry.get("numWeightedExamples", 0.0)
    names = [html.escape(str(c)) for c in classes]
    actual, predicted = matrix.sum(axis=1), matrix.sum(axis=0)

    def share(part, whole) -> str:
        return f"{part / whole:.3f}" if whole else "-"

    rows = "".join(
        f"<tr><th>{names[i]}</th>"
        + "".join(f"<td>{int(matrix[i, j])}</td>" for j in range(k))
        + f"<td>{result.overall(f'auc_class_{i}') or float('nan'):.4f}</td>"
        + f"<td>{share(matrix[i, i], actual[i])}</td><td>{share(matrix[i, i], predicted[i])}</td>"
        + f"<td>{share(actual[i], actual.sum())}</td></tr>"
        for i in range(k)
    )
    table = (
        f'<table class="confusion"><tr><th>actual \\ predicted</th>{"".join(f"<th>{n}</th>" for n in names)}'
        f"<th>AUC (one vs rest)</th><th>recall</th><th>precision</th><th>share of rows</th></tr>{rows}</table>"
    )
    never = [names[j] for j in range(k) if predicted[j] == 0]
    if never:  # a rare class the model has learned to ignore shows here, not only as a lower AUC
        table += f"<p><strong>The model never predicts:</strong> {', '.join(never)} (on the eval split).</p>"
    plt = html_report.pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * k, 1 + 0.6 * k))
    ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xlabel="predicted",
        ylabel="actual",
        title=f"accuracy {result.overall('sparse_categorical_accuracy') or float('nan'):.4f}, "
        f"macro AUC {result.overall('macro_auc') or float('nan'):.4f}",
    )
    ax.set_xticklabels([str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticklabels([str(c) for c in classes])
    for i in range(k):
        for j in range(k):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8)
    return table + html_report.png(fig)


def examples_section(store, pipeline: str, spec) -> str:
    _, gen_out = results.latest_outputs(store, pipeline, example_gen_node(store, pipeline))
    _, trainer_out = results.latest_outputs(store, pipeline, "Trainer")
    if not gen_out.get("examples") or not trainer_out.get("model"):
        return "<p>No model or examples in this run.</p>"
    files = tf.io.gfile.glob(os.path.join(gen_out["examples"][0].uri, "Split-eval", "*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP").take(N_EXAMPLES)]
    model = tf.saved_model.load(os.path.join(trainer_out["model"][0].uri, "Format-Serving"))
    outputs = model.signatures[layout.EXAMPLES_SIGNATURE](examples=tf.constant(records))
    predicted = next(iter(outputs.values())).numpy()
    examples = [tf.train.Example.FromString(r) for r in records]

    hooks = dataset_hooks(spec)
    if hasattr(hooks, "examples_html"):
        return hooks.examples_html(examples, predicted, spec.label_key)
    label, keys = spec.label_key, list(spec.raw_feature_keys)
    if spec.label_classes:  # classes by name: the label's and the most probable one, with its probability
        classes = list(spec.label_classes)

        def named(value):
            try:
                return classes[int(value)]
            except (TypeError, ValueError, IndexError):
                return value

        def guess(p):
            p = np.ravel(p)
            if len(p) == 1:  # binary: P(second class)
                return f"{classes[int(p[0] >= 0.5)]} ({max(p[0], 1 - p[0]):.3f})"
            return f"{classes[int(np.argmax(p))]} ({float(np.max(p)):.3f})"

        rows = [
            [named(html_report.feature_value(e, label)), guess(p)]
            + [html_report.short(html_report.feature_value(e, k)) for k in keys]
            for e, p in zip(examples, predicted)
        ]
        return html_report.table([label, "predicted (probability)"] + keys, rows)
    rows = [
        [html_report.feature_value(e, label), float(np.ravel(p)[0])]
        + [html_report.short(html_report.feature_value(e, k)) for k in keys]
        for e, p in zip(examples, predicted)
    ]
    return html_report.table([label, "prediction"] + keys, rows)


def dataset_hooks(spec):
    """The dataset's own report module (DatasetSpec.report_module), or None: generic code never names a dataset."""
    return importlib.import_module(spec.report_module) if spec.report_module else None


def example_gen_node(store, pipeline: str) -> str:
    for context in store.get_contexts_by_type("node"):
        if context.name.startswith(f"{pipeline}.") and context.name.endswith("ExampleGen"):
            return context.name.split(".", 1)[1]
    return "CsvExampleGen"


def lineage_section(pipeline: str, cfg) -> str:
    try:
        return f"<pre>{html.escape(lineage_lib.format_report(lineage_lib.lineage(pipeline, cfg)))}</pre>"
    except lineage_lib.LineageError as exc:
        return f"<p>{html.escape(str(exc))}</p>"


# ------------------------------------------------------------------------------------------------ page
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}
th{background:#f3f3f3}img{max-width:100%}.verdict{font-weight:bold}pre{background:#f7f7f7;padding:1em;
overflow-x:auto;font-size:85%}"""


def run_id(store, pipeline: str) -> str:
    """The latest run's id (TFX names runs by their start time); the store holds this pipeline's runs only."""
    runs = store.get_contexts_by_type("pipeline_run")
    name = max(runs, key=lambda c: c.id).name if runs else "run"
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", name).strip("-")


def _guarded(render, *args) -> str:
    """A section, or why it could not be drawn: a failed or partial run (no examples, no model, an evaluation
    on nothing) still gets a report with every section that can be drawn."""
    try:
        return render(*args)
    except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"<p>Not available for this run: {html.escape(reason[:300])}</p>"


def write_report(pipeline: str, cfg: Optional[config_lib.PipelineConfig] = None) -> Path:
    cfg = cfg or config_lib.from_env()
    spec = registry.get_spec(pipeline)
    store = results.open_store(cfg.metadata_path(pipeline))
    try:
        result = results.last_run(pipeline, cfg)
    except Exception as exc:  # noqa: BLE001 - e.g. an evaluation artifact a failed Evaluator left half-written
        result = None
        why = html.escape(str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__)
    evaluated = result is not None and result.evaluation_uri
    sections = [
        ("Data", "data", _guarded(data_section, store, pipeline, spec.label_key)),
        ("Drift from the previous span", "drift", _guarded(drift_section, store, pipeline)),
        ("Training", "training", _guarded(training_section, store, pipeline)),
        (
            "Evaluation",
            "evaluation",
            _guarded(evaluation_section, result)
            if evaluated
            else f"<p>No evaluation in this run{': ' + why if result is None else ''}.</p>",
        ),
    ]
    if evaluated:
        sections.append(("Why this model was trained", "why", _guarded(why_section, pipeline, cfg)))
    if spec.problem == "binary" and evaluated:
        sections.append(("ROC and KS curves", "curves", _guarded(curves_section, result)))
    if spec.problem == "multiclass" and evaluated:
        sections.append(("Confusion matrix", "confusion", _guarded(confusion_section, result, spec.label_classes)))
    sections.append(("Example predictions", "examples", _guarded(examples_section, store, pipeline, spec)))
    hooks = dataset_hooks(spec)
    for title, sid, render_section in hooks.sections(cfg) if hasattr(hooks, "sections") else []:
        sections.append((title, sid, _guarded(render_section, cfg)))
    sections.append(("Lineage of the pushed model", "lineage", _guarded(lineage_section, pipeline, cfg)))
    body = "\n".join(f'<section id="{sid}"><h2>{title}</h2>\n{content}</section>' for title, sid, content in sections)
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{pipeline} run report</title>"
        f"<style>{STYLE}</style></head><body><h1>{pipeline}: run {run_id(store, pipeline)}</h1>\n{body}</body></html>"
    )
    # the page shows rows of the data with their predictions: its owner's only
    folder = private_folder(cfg.pipeline_root(pipeline) / "reports" / run_id(store, pipeline), tighten=True)
    return html_report.write_atomically(folder / "report.html", page, private=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=registry.PIPELINES)
    args = parser.parse_args(argv)
    try:
        path = write_report(args.pipeline)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
