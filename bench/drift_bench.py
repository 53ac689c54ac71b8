"""Benchmark: what the span-to-span drift check adds to a Titanic run (target <= 3 s); or: make bench-drift.

    python bench/drift_bench.py [--rounds 3]

The drift check is three nodes before Transform (PreviousSpanStatistics, DriftCheck, and AnomaliesGate reading
its result); nothing after them changes. So the part of the pipeline up to AnomaliesGate runs on span 2 of a
spans folder (span 1 ingested first), with the cache off, with DRIFT=warn and with DRIFT=off, alternating for
--rounds rounds in this one process (the machine's noise hits both alike); the median difference is the cost.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import component_seconds

from data.fetch import fetch
from metadata import results
from orchestration import config as config_lib
from orchestration.factory import create_pipeline
from pipelines.titanic.spec import SPEC


def write_span(root: Path, span: int, source: Path, reverse: bool) -> None:
    folder = root / "titanic" / f"span-{span}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.csv").write_bytes((source / "test.csv").read_bytes())
    with open(source / "train.csv", newline="") as f:
        rows = list(csv.reader(f))
    with open(folder / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows[:1] + (rows[1:][::-1] if reverse else rows[1:]))


def up_to_gate(cfg):
    """The pipeline's nodes up to and including AnomaliesGate (everything the drift check touches)."""
    from tfx.orchestration.pipeline import Pipeline

    full = create_pipeline(SPEC, cfg)
    ids = [c.id for c in full.components]
    kept = full.components[: ids.index("AnomaliesGate") + 1]
    for node in kept:  # the nodes were built for the whole pipeline: forget the ones after the gate
        node._downstream_nodes = {d for d in node._downstream_nodes if d in kept}  # noqa: SLF001
    return Pipeline(
        pipeline_name=full.pipeline_info.pipeline_name,
        pipeline_root=full.pipeline_info.pipeline_root,
        components=kept,
        enable_cache=False,
        metadata_connection_config=full.metadata_connection_config,
        beam_pipeline_args=full.beam_pipeline_args,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    base = config_lib.from_env()
    source = fetch("titanic", base.data_dir)
    seconds = {"warn": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as scratch:
        data = Path(scratch) / "data"
        cfg = config_lib.PipelineConfig(output_dir=Path(scratch) / "out", data_dir=data)
        write_span(data, 1, source, reverse=False)
        LocalDagRunner().run(up_to_gate(cfg.replace(drift="warn")))
        write_span(data, 2, source, reverse=True)  # new files, same distribution: compared, not flagged
        for n in range(args.rounds):
            for mode in ("warn", "off"):
                started = time.perf_counter()
                LocalDagRunner().run(up_to_gate(cfg.replace(drift=mode)))
                seconds[mode].append(time.perf_counter() - started)
                print(f"round {n + 1} DRIFT={mode}: {seconds[mode][-1]:.2f} s", flush=True)
                if mode == "warn":
                    nodes = component_seconds("titanic", cfg)
                    inside = {k: nodes[k] for k in ("PreviousSpanStatistics", "DriftCheck", "AnomaliesGate")}
                    store = results.open_store(cfg.metadata_path("titanic"))
                    drift = results.drift_of(store, results.latest_examples(store, "titanic"))
    added = statistics.median(w - o for w, o in zip(seconds["warn"], seconds["off"]))
    print(
        f"drift check adds {added:.2f} s (median of {args.rounds} rounds; runs up to AnomaliesGate: "
        f"{statistics.median(seconds['warn']):.1f} s with, {statistics.median(seconds['off']):.1f} s without; "
        f"target <= 3 s)"
    )
    print(
        "inside the nodes (ML Metadata, create to last update of the last DRIFT=warn run): "
        + ", ".join(f"{k} {v:.3f} s" for k, v in inside.items())
        + f"; span {drift['current_span']} against span "
        f"{drift['previous_span']}: {sum(f['flagged'] for f in drift['features'])} of {len(drift['features'])} "
        "features flagged"
    )
    print(f"RESULT drift_seconds={added:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
