"""`make lineage PIPELINE=<name> [VERSION=<v>]`: where a pushed model came from, read from ML Metadata.

    python -m metadata.lineage titanic [--version V] [--json]

For one pushed version (default: the newest): the data span(s) and their files (sha256 now, and whether they
still match what ExampleGen fingerprinted), the schema, the Transform graph, the training run (strategy,
seed, epochs, steps), the evaluation metrics and blessing, the baseline it was compared with (and that
model's span), the code version and the packages it was trained with; which version is serving; the span's
drift against the span before it (DriftCheck), and why it was retrained: what it had that its baseline had not
(a new span, changed files, code, schema or settings) and how its metrics moved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import List, Optional

import tensorflow as tf

from components.served_baseline import served_version
from core import layout
from metadata import promotions, results
from metadata.results import custom
from orchestration import config as config_lib


class LineageError(LookupError):
    pass


def producer(store, artifact):
    """The execution that first wrote the artifact (later cached runs only re-use it)."""
    events = [e for e in store.get_events_by_artifact_ids([artifact.id]) if e.type in results.OUTPUT_EVENTS]
    if not events:
        raise LineageError(f"no execution produced artifact {artifact.uri}")
    return store.get_executions_by_id([min(e.execution_id for e in events)])[0]


def _prop(execution, key, default=None):
    return custom(execution, key, default)


def sha256(path: str) -> str:
    return layout.sha256_file(path, opener=lambda p: tf.io.gfile.GFile(p, "rb"))


def data_lineage(store, raw_examples) -> dict:
    gen = producer(store, raw_examples)
    input_base = _prop(gen, "input_base", "")
    input_config = json.loads(_prop(gen, "input_config", "{}") or "{}")
    span = custom(raw_examples, "span", 0)
    fingerprint = custom(raw_examples, "input_fingerprint", "")
    files = []
    for split in input_config.get("splits", []):
        pattern = split["pattern"].replace("{SPAN}", str(span))
        matched = sorted(tf.io.gfile.glob(os.path.join(input_base, pattern)))
        if len(matched) > 50:  # folders of images: a digest of digests keeps the report readable
            digest = hashlib.sha256("".join(sha256(p) for p in matched).encode()).hexdigest()
            files.append(
                {"split": split["name"], "pattern": pattern, "files": len(matched), "sha256_of_sha256s": digest}
            )
        else:
            files.extend(
                {"split": split["name"], "path": p, "bytes": tf.io.gfile.stat(p).length, "sha256": sha256(p)}
                for p in matched
            )
    total = sum(f.get("bytes", 0) for f in files)
    sizes = [part.split(":")[1] for part in fingerprint.split(",") if part.startswith("total_bytes:")]
    unchanged = None if not sizes or not total else sum(int(s) for s in sizes) == total
    return {
        "span": span,
        "input_base": input_base,
        "examples": raw_examples.uri,
        "ingested_fingerprint": fingerprint,
        "files": files,
        "unchanged_since_ingestion": unchanged,
        "drift": results.drift_of(store, raw_examples),
    }


def model_lineage(store, model) -> dict:
    trainer = producer(store, model)
    trainer_in = results.inputs_of(store, trainer)
    transform_graph = trainer_in["transform_graph"][0]
    transform = producer(store, transform_graph)
    transform_in = results.inputs_of(store, transform)
    schema = transform_in["schema"][0]
    schema_files = [p for p in tf.io.gfile.glob(os.path.join(schema.uri, "*")) if not tf.io.gfile.isdir(p)]
    run_dir = results.outputs_of(store, trainer)["model_run"][0].uri
    record_path = os.path.join(run_dir, layout.RUN_RECORD)
    record = json.loads(tf.io.gfile.GFile(record_path).read()) if tf.io.gfile.exists(record_path) else {}
    settings = record.get("settings", {})
    history = record.get("history", {})
    return {
        "model": model.uri,
        "data": data_lineage(store, transform_in["examples"][0]),
        "schema": {"uri": schema.uri, "sha256": sha256(schema_files[0]) if schema_files else None},
        "transform_graph": transform_graph.uri,
        "training": {
            "strategy": settings.get("strategy"),
            "replicas": record.get("strategy", {}).get("num_replicas"),
            "seed": settings.get("seed"),
            "epochs_run": len(history.get("loss", [])),
            "epochs_max": settings.get("epochs"),
            "batch_size": settings.get("batch_size"),
            "final_loss": (history.get("loss") or [None])[-1],
            "code_fingerprint": settings.get("code_fingerprint"),
            "run_dir": run_dir,
        },
        "code": record.get("code"),
        "packages": record.get("packages", {}),
    }


def training_inputs(store, pipeline: str, version: str):
    """(statistics artifact, schema artifact) of the data a pushed version was trained on: the StatisticsGen
    output for the Examples its Transform read, and the schema Transform used."""
    by_version = _versions(store, pipeline)
    if version not in by_version:
        raise LineageError(
            f"{pipeline}: version {version} was not pushed by this pipeline "
            f"(pushed: {', '.join(sorted(by_version, key=int)) or 'none'})"
        )
    model = results.inputs_of(store, by_version[version][0])["model"][0]
    transform_graph = results.inputs_of(store, producer(store, model))["transform_graph"][0]
    transform_in = results.inputs_of(store, producer(store, transform_graph))
    for execution in results.consumers(store, transform_in["examples"][0], "StatisticsGen", "examples"):
        found = results.outputs_of(store, execution).get("statistics")
        if found:
            return found[0], transform_in["schema"][0]
    raise LineageError(f"{pipeline}: no statistics of the data version {version} was trained on")


def pushes(store, pipeline: str) -> List[tuple]:
    found = []
    for execution in results.node_executions(store, pipeline, "Pusher"):
        for artifact in results.outputs_of(store, execution).get("pushed_model", []):
            if custom(artifact, "pushed", 0):
                found.append((str(custom(artifact, "pushed_version")), execution, artifact))
    return found


def _versions(store, pipeline: str) -> dict:
    by_version = {}
    for v, e, a in pushes(store, pipeline):  # a later run that found the same model serving reports the same version
        by_version.setdefault(v, (e, a))
    return by_version


def lineage(pipeline: str, cfg: config_lib.PipelineConfig, version: Optional[str] = None) -> dict:
    store = results.open_store(cfg.metadata_path(pipeline))
    by_version = _versions(store, pipeline)
    if not by_version:
        raise LineageError(f"{pipeline}: no model has been pushed yet")
    version = version or max(by_version, key=int)
    if version not in by_version:
        raise LineageError(
            f"{pipeline}: version {version} was not pushed by this pipeline "
            f"(pushed: {', '.join(sorted(by_version, key=int))})"
        )
    pusher, pushed_model = by_version[version]
    pusher_in = results.inputs_of(store, pusher)
    model, blessing = pusher_in["model"][0], pusher_in["model_blessing"][0]
    serving_versions = layout.version_numbers(cfg.serving_root(pipeline))
    head = {
        "pipeline": pipeline,
        "version": version,
        "pushed_to": custom(pushed_model, "pushed_destination"),
        "serving_now": str(serving_versions[-1]) if serving_versions else None,
    }
    return {**head, **judged_model_lineage(store, model, blessing, by_version)}


def last_run_lineage(pipeline: str, cfg: config_lib.PipelineConfig) -> dict:
    """The lineage of the model the last run trained and judged, pushed or not (the run report's "why")."""
    store = results.open_store(cfg.metadata_path(pipeline))
    _, outputs = results.latest_outputs(store, pipeline, "Evaluator")
    if not outputs.get("blessing"):
        raise LineageError(f"{pipeline}: no model has been evaluated yet")
    blessing = outputs["blessing"][0]
    model = results.inputs_of(store, producer(store, blessing))["model"][0]
    return {"pipeline": pipeline, **judged_model_lineage(store, model, blessing, _versions(store, pipeline))}


def judged_model_lineage(store, model, blessing, by_version: dict) -> dict:
    """A model's lineage, its evaluation, the baseline it was judged against (followed to the model and span
    behind that served version, when this pipeline pushed it) and why it was retrained."""
    evaluator = producer(store, blessing)
    evaluation = results.outputs_of(store, evaluator)["evaluation"][0]
    evaluator_in = results.inputs_of(store, evaluator)
    baseline = (evaluator_in.get("baseline_model") or [None])[0]
    baseline_version = served_version(baseline) if baseline is not None else ""
    report = {
        **model_lineage(store, model),
        "evaluation": {
            "uri": evaluation.uri,
            "blessed": bool(custom(blessing, "blessed", 0)),
            "metrics": results.load_metrics(evaluation.uri),
            "change_vs_baseline": results.load_metrics(evaluation.uri, diffs=True),
        },
        "baseline": None,
    }
    if baseline_version:
        # ServedBaseline copied a served version: follow it to the Pusher run that pushed it, and on to its model
        report["baseline"] = {"served_version": baseline_version, "copy": baseline.uri, "model": None, "span": None}
        if baseline_version in by_version:
            base_model = results.inputs_of(store, by_version[baseline_version][0])["model"][0]
            base = model_lineage(store, base_model)
            report["baseline"].update(
                model=base_model.uri,
                span=base["data"]["span"],
                data=base["data"],
                training=base["training"],
                schema=base["schema"],
            )
    report["why"] = why_retrained(report)
    return report


def why_retrained(r: dict) -> dict:
    """What this model had that the model it was judged against (the baseline) had not: a new span or changed
    files, the new span's drift, other code, schema or settings; and how its metrics moved."""
    data, base = r["data"], r.get("baseline") or {}
    why = {
        "span": data["span"],
        "drift": results.drift_summary(data.get("drift")),
        "baseline_version": None,
        "baseline_span": None,
        "changed": [],
        "metric_deltas": r["evaluation"]["change_vs_baseline"].get("overall", {}),
    }
    if not base:
        why["changed"].append("first model: nothing was serving")
        return why
    why.update(baseline_version=base["served_version"], baseline_span=base.get("span"))
    if not base.get("data"):
        return why
    if base["span"] != data["span"]:
        why["changed"].append(f"new span {data['span']} (the baseline was trained on span {base['span']})")
    elif {f.get("sha256") or f.get("sha256_of_sha256s") for f in data["files"]} != {
        f.get("sha256") or f.get("sha256_of_sha256s") for f in base["data"]["files"]
    }:
        why["changed"].append(f"span {data['span']} was ingested again with changed files")
    if (r["training"].get("code_fingerprint") or "") != (base["training"].get("code_fingerprint") or ""):
        why["changed"].append(
            f"code (fingerprint {base['training'].get('code_fingerprint')} -> {r['training'].get('code_fingerprint')})"
        )
    if r["schema"].get("sha256") != base["schema"].get("sha256"):
        why["changed"].append("schema")
    settings = [
        f"{k} {base['training'].get(k)} -> {r['training'].get(k)}"
        for k in ("seed", "epochs_max", "batch_size", "strategy")
        if base["training"].get(k) != r["training"].get(k)
    ]
    if settings:
        why["changed"].append("settings (" + ", ".join(settings) + ")")
    if not why["changed"]:
        why["changed"].append("nothing in data, code, schema or settings (a rerun)")
    return why


def format_why(why: dict) -> List[str]:
    lines = ["why retrained  " + "; ".join(why["changed"])]
    if why["drift"]:
        lines.append(f"               {why['drift']}")
    if why["baseline_version"]:
        deltas = ", ".join(f"{k} {v:+.4f}" for k, v in sorted(why["metric_deltas"].items()))
        lines.append(
            f"               judged against served version {why['baseline_version']}"
            + (f" (span {why['baseline_span']})" if why["baseline_span"] is not None else "")
            + (f": {deltas}" if deltas else "")
        )
    return lines


def format_report(r: dict) -> str:
    lines = [
        f"== {r['pipeline']} version {r['version']} ==",
        f"pushed to      {r['pushed_to']}",
        f"serving now    version {r['serving_now']}" + ("  (this one)" if r["serving_now"] == r["version"] else ""),
    ]
    d = r["data"]
    lines.append(
        f"data           span {d['span']} from {d['input_base']}"
        + {True: "  (files unchanged since ingestion)", False: "  (FILES CHANGED since ingestion)", None: ""}[
            d["unchanged_since_ingestion"]
        ]
    )
    if results.drift_summary(d.get("drift")):
        lines.append(f"drift          {results.drift_summary(d['drift'])}")
    for f in d["files"]:
        if "sha256" in f:
            lines.append(f"  {f['split']:<6} {f['path']}  {f['bytes']} bytes  sha256 {f['sha256']}")
        else:
            lines.append(
                f"  {f['split']:<6} {f['pattern']}  {f['files']} files  sha256 of sha256s {f['sha256_of_sha256s']}"
            )
    lines.append(f"schema         {r['schema']['uri']}  sha256 {r['schema']['sha256']}")
    lines.append(f"transform      {r['transform_graph']}")
    t = r["training"]
    lines.append(
        f"training       strategy {t['strategy']} ({t['replicas']} replica(s)), seed {t['seed']}, "
        f"{t['epochs_run']}/{t['epochs_max']} epochs, batch {t['batch_size']}, final loss {t['final_loss']}"
    )
    lines.append(f"               code fingerprint {t['code_fingerprint']}; run dir {t['run_dir']}")
    code = r.get("code") or {}
    lines.append(f"code           git {code.get('commit')}" + (" (dirty)" if code.get("dirty") else ""))
    pk = r.get("packages", {})
    lines.append(
        "packages       "
        + ", ".join(
            f"{n} {pk[n]}"
            for n in (
                "tfx",
                "tensorflow",
                "tf-keras",
                "tensorflow-transform",
                "tensorflow-model-analysis",
                "apache-beam",
                "ml-metadata",
            )
            if n in pk
        )
        + f" ({len(pk)} in all)"
    )
    e = r["evaluation"]
    overall = e["metrics"].get("overall", {})
    changes = e["change_vs_baseline"].get("overall", {})
    lines.append(
        f"evaluation     {'blessed' if e['blessed'] else 'NOT blessed'}: "
        + ", ".join(
            f"{k} {v:.4f}" + (f" ({changes[k]:+.4f})" if k in changes else "") for k, v in sorted(overall.items())
        )
    )
    b = r.get("baseline")
    if not b:
        lines.append("baseline       none (first blessed model)")
    elif b["model"]:
        lines.append(f"baseline       served version {b['served_version']}: {b['model']} trained on span {b['span']}")
    else:
        lines.append(f"baseline       served version {b['served_version']} (not pushed by this pipeline's metadata)")
    if r.get("why"):
        lines.extend(format_why(r["why"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline")
    parser.add_argument("--version")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cfg = config_lib.from_env()
    try:
        report = lineage(args.pipeline, cfg, args.version)
    except (LineageError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report["serving_labels"] = promotions.history(cfg.metadata_path(args.pipeline), args.pipeline, args.pipeline)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_report(report))
        print("\nserving labels (make promote / make rollback / PUSH_LABEL):")
        print("  " + promotions.describe(args.pipeline, cfg).replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
