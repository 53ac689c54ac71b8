"""`make skew PIPELINE=<name>`: is the traffic the server answered like the data the served model learned from?

    python -m metadata.skew titanic [--logs DIR] [--version V] [--json] [--fail-on-skew]

Reads the requests `make serve LOG_REQUESTS=DIR` logged (serving/request_log.py; default DIR:
$OUTPUT_DIR/request_logs, or $LOG_REQUESTS), computes their TFDV statistics typed by the served model's schema,
and compares them with the statistics of the data that model was trained on (found through ML Metadata:
pushed version -> model -> Transform -> Examples -> StatisticsGen), per feature, with TFDV's skew comparators
(L-infinity for categorical features, Jensen-Shannon for numeric ones) and the dataset's skew thresholds
(DatasetSpec.skew_thresholds). Writes skew.json and report.html (the table and, per skewed feature, the two
distributions side by side) under $OUTPUT_DIR/<name>/skew/<time>/ and prints the table.

Exit status: 0 when it ran (skewed or not), 1 when it could not (no logs, no pushed model), 3 with
--fail-on-skew when a feature is skewed (for a scheduler that alerts on failures).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from core import html_report, layout
from core.private_files import private_folder
from metadata import lineage as lineage_lib
from metadata import results
from metadata.report import STYLE, distances_html
from modeling import drift as drift_lib
from orchestration import config as config_lib
from pipelines import registry
from serving import request_log

FEW_EXAMPLES = 100
SKEWED = 3


class SkewError(LookupError):
    pass


def logs_root(cfg: config_lib.PipelineConfig, logs: Optional[str] = None) -> Path:
    return Path(logs or os.environ.get("LOG_REQUESTS") or Path(cfg.output_dir) / "request_logs")


def skew(
    pipeline: str, cfg: config_lib.PipelineConfig, logs: Optional[str] = None, version: Optional[str] = None
) -> dict:
    """{pipeline, version, logs, examples, training_statistics, features: [FeatureDistance as dict], ...}."""

    spec = registry.get_spec(pipeline)
    thresholds = dict(spec.skew_thresholds or spec.drift_thresholds)
    if not thresholds:
        raise SkewError(f"{pipeline}: the dataset declares no skew or drift thresholds (DatasetSpec)")
    folder = logs_root(cfg, logs) / pipeline
    serialized = request_log.read_examples(folder)
    if not serialized:
        raise SkewError(
            f"no logged requests in {folder}: start the server with `make serve LOG_REQUESTS="
            f"{folder.parent}` (or --log-requests), send requests, and let it rotate or stop it"
        )
    versions = layout.version_numbers(cfg.serving_root(pipeline))
    version = version or (str(versions[-1]) if versions else None)
    if version is None:
        raise SkewError(f"{pipeline}: nothing is served under {cfg.serving_root(pipeline)}")
    store = results.open_store(cfg.metadata_path(pipeline))
    try:
        statistics, schema_artifact = lineage_lib.training_inputs(store, pipeline, version)
    except lineage_lib.LineageError as exc:
        raise SkewError(str(exc)) from None
    schema = drift_lib.load_schema(schema_artifact.uri)
    training = drift_lib.load_split(statistics.uri, spec.drift_split)
    serving = drift_lib.statistics_of(serialized, schema)
    distances = drift_lib.compare(training, serving, schema, thresholds, "skew")
    return {
        "pipeline": pipeline,
        "version": version,
        "logs": str(folder),
        "examples": len(serialized),
        "log_files": len(request_log.complete_files(folder)),
        "training_statistics": statistics.uri,
        "split": spec.drift_split,
        "features": [d.as_dict() for d in distances],
        "_stats": (training, serving),
    }


def write_report(found: dict, cfg: config_lib.PipelineConfig) -> Path:

    training, serving = found.pop("_stats")
    # distributions of logged requests (people's data, the top values of each feature included): owner only
    folder = private_folder(
        Path(cfg.pipeline_root(found["pipeline"])) / "skew" / time.strftime("%Y%m%d-%H%M%S"), tighten=True
    )
    body = distances_html(
        found["features"],
        found["split"],
        serving,
        training,
        f"serving traffic ({found['examples']} examples)",
        "training data",
        "skewed",
    )
    note = (
        f"<p>Only {found['examples']} logged examples: distances between small samples are noisy.</p>"
        if found["examples"] < FEW_EXAMPLES
        else ""
    )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{found['pipeline']} skew</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(found['pipeline'])}: serving traffic against "
        f"the training data of version {html.escape(found['version'])}</h1>"
        f"<p>{found['examples']} logged examples from {found['log_files']} file(s) in "
        f"{html.escape(found['logs'])}; training statistics {html.escape(found['training_statistics'])}.</p>"
        f'{note}<section id="skew">{body}</section></body></html>'
    )
    html_report.write_atomically(folder / "skew.json", json.dumps(found, indent=2, sort_keys=True), private=True)
    return html_report.write_atomically(folder / "report.html", page, private=True)


def format_table(found: dict) -> str:
    lines = [
        f"== {found['pipeline']}: serving traffic ({found['examples']} examples) against the training data "
        f"of version {found['version']} =="
    ]
    for f in found["features"]:
        value = "n/a" if f["distance"] is None else f"{f['distance']:.4f}"
        lines.append(
            f"  {f['feature']:<12} {f['comparator']:<15} {value:>8}  threshold {f['threshold']:<6g}"
            + ("  SKEWED" if f["flagged"] else "")
        )
    flagged = [f["feature"] for f in found["features"] if f["flagged"]]
    lines.append("skewed features: " + (", ".join(flagged) if flagged else "none"))
    if found["examples"] < FEW_EXAMPLES:
        lines.append(f"note: only {found['examples']} logged examples; distances between small samples are noisy")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", choices=registry.PIPELINES)
    parser.add_argument(
        "--logs", help="the folder given to --log-requests (default $LOG_REQUESTS or $OUTPUT_DIR/request_logs)"
    )
    parser.add_argument("--version", help="the served version whose training data to compare with (default newest)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--fail-on-skew", action="store_true", help=f"exit {SKEWED} when a feature is skewed")
    args = parser.parse_args(argv)
    cfg = config_lib.from_env()
    try:
        found = skew(args.pipeline, cfg, args.logs, args.version)
    except (SkewError, FileNotFoundError, ValueError) as exc:  # ValueError: a log file cut short by hand
        print(f"error: {exc}", file=sys.stderr)
        return 1
    path = write_report(found, cfg)
    print(json.dumps(found, indent=2, sort_keys=True) if args.json else format_table(found))
    if not args.json:
        print(f"report: {path}")
    return SKEWED if args.fail_on_skew and any(f["flagged"] for f in found["features"]) else 0


if __name__ == "__main__":
    sys.exit(main())
