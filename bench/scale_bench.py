"""Benchmark: how the Titanic pipeline's cost grows with data, under each BEAM mode.

    python bench/scale_bench.py [--scales 1,10,100] [--modes in_memory,multiprocess,portable,flink] [--epochs 2]
    (or: make bench-scale MODES=in_memory,flink)

Data: Titanic-shaped files at k times the rows, made deterministically from the real rows (the real row, then
k-1 copies with Age and Fare jittered and a new PassengerId; everything the schema constrains kept), written
once under outputs/scale/<k>x/titanic/. Each (scale, mode) is a fresh run of the same runner file `make run`
uses, in its own OUTPUT_DIR, with BEAM_WORKERS=2. Per component: its wall time as ML Metadata recorded it.
Per run: wall time and the peak resident memory of the whole process tree (the runner, Beam's services and
SDK workers, the multiprocess workers, Flink's JVMs and Beam's job server), sampled every 0.2 s. Then a table per
mode, with the growth factor from the smallest to the largest scale per component (linear growth would be the
ratio of the scales).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import component_seconds, run_once

from orchestration import config as config_lib

BEAM_STAGES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def scaled_dataset(real: Path, k: int, out_root: Path) -> Path:
    """`real`'s train.csv and test.csv at k times the rows, written once (the folder is reused when present)."""
    target = out_root / f"{k}x" / "titanic"
    if (target / "train.csv").is_file() and (target / "test.csv").is_file():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".scale-", dir=out_root))
    rng = np.random.default_rng(k)
    next_id = 1
    for name in ("train.csv", "test.csv"):
        with open(real / name, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        with open(tmp / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for copy in range(k):
                for row in rows:
                    row = dict(row, PassengerId=str(next_id))
                    next_id += 1
                    if copy:
                        if row["Age"]:
                            row["Age"] = f"{max(0.42, float(row['Age']) + rng.normal(0, 2)):.2f}"
                        row["Fare"] = f"{max(0.0, float(row['Fare']) * (1 + rng.normal(0, 0.05))):.4f}"
                    writer.writerow(row)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--modes", default="in_memory,multiprocess,portable")
    parser.add_argument("--epochs", type=int, default=2, help="training is not what scales with Beam; keep it short")
    args = parser.parse_args(argv)
    scales = [int(s) for s in args.scales.split(",")]
    modes = args.modes.split(",")
    base = config_lib.from_env()
    from data.fetch import fetch

    real = fetch("titanic", base.data_dir, log=lambda m: None)
    scale_root = Path(base.output_dir) / "scale"
    scale_root.mkdir(parents=True, exist_ok=True)
    figures: Dict[Tuple[str, int], dict] = {}
    for k in scales:
        data = scaled_dataset(real, k, scale_root)
        rows = sum(1 for _ in open(data / "train.csv")) - 1
        for mode in modes:
            out = Path(tempfile.mkdtemp(prefix=f"run-{k}x-{mode}-", dir=scale_root))
            env = dict(
                os.environ,
                OUTPUT_DIR=str(out),
                DATA_DIR=str(data.parent),
                BEAM=mode,
                BEAM_WORKERS="2",
                EPOCHS=str(args.epochs),
                MIN_AUC="0",
                MIN_KS="0",
            )
            print(f"{k}x ({rows} training rows), BEAM={mode} ...", flush=True)
            wall, peak = run_once("titanic", env, out / "run.log")
            per_component = component_seconds("titanic", config_lib.from_env(env))
            figures[(mode, k)] = {"wall": wall, "rss": peak, **per_component}
            print(
                f"    {wall:.1f} s, peak RSS {peak / 2**30:.2f} GB; "
                + ", ".join(f"{n} {s:.1f}" for n, s in per_component.items()),
                flush=True,
            )

    nodes = [
        n
        for n in (
            "CsvExampleGen",
            "StatisticsGen",
            "ImportSchemaGen",
            "ExampleValidator",
            "AnomaliesGate",
            "Transform",
            "Trainer",
            "ServedBaseline",
            "Evaluator",
            "Pusher",
        )
        if any(n in f for f in figures.values())
    ]
    lo, hi = min(scales), max(scales)
    print()
    for mode in modes:
        print(f"BEAM={mode}  (seconds; growth = time at {hi}x / time at {lo}x, linear would be {hi // lo}x)")
        header = f"{'component':<18}" + "".join(f"{str(k) + 'x':>10}" for k in scales) + f"{'growth':>10}"
        print(header)
        for node in nodes + ["wall"]:
            values = [figures[(mode, k)].get(node, float("nan")) for k in scales]
            growth = values[-1] / values[0] if values[0] else float("nan")
            print(f"{node:<18}" + "".join(f"{v:>10.1f}" for v in values) + f"{growth:>9.1f}x")
        print(f"{'peak RSS (GB)':<18}" + "".join(f"{figures[(mode, k)]['rss'] / 2**30:>10.2f}" for k in scales))
        print()
    if len(modes) > 1 and "in_memory" in modes:
        print(f"at {hi}x, time relative to in_memory (below 1: faster)")
        print(f"{'component':<18}" + "".join(f"{m:>14}" for m in modes if m != "in_memory"))
        for node in list(BEAM_STAGES) + ["wall"]:
            ref = figures[("in_memory", hi)].get(node)
            print(
                f"{node:<18}"
                + "".join(f"{figures[(m, hi)].get(node, float('nan')) / ref:>14.2f}" for m in modes if m != "in_memory")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
