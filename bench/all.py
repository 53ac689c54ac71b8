"""Every figure of issue #17 in one command, measured side by side on this machine (or: make bench).

    python bench/all.py [--only titanic,cifar2,imdb,serving] [--seeds 42,1,2]

- titanic: the book's plain Keras Titanic script (30 epochs) beside the pipeline from scratch and rerun with
  nothing changed (cached), each a fresh process; peak RSS; per-component seconds.
- cifar2, imdb: the book's script beside the pipeline from scratch for the same epochs (ratio target <= 1.3x);
  for cifar2 the eval accuracy over --seeds (the other seeds rerun in the same output folder: TFX reuses
  ExampleGen..Transform from its cache, so only the Trainer and Evaluator run again); mean and min.
- serving: bench/serving_bench.py (REST and gRPC against in-process, concurrency, request logging, Spark).
- drift: bench/drift_bench.py (what the span-to-span drift check adds to a Titanic run).
Then one table: figure, measured, target, met. Each run is one sample on a shared, noisy machine: read ratios
measured in the same run, and rerun before believing a small difference.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PROJECT_ROOT, book_script, component_seconds, run_once

from data.fetch import fetch
from metadata import results
from orchestration import config as config_lib
from orchestration.factory import trainer_settings
from pipelines import registry

logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's deprecation notes while reading results
TITANIC_BOOK_EPOCHS = 30  # the book's chapter 1-1
RSS_TARGET_GB = 2.0
rows = []  # (figure, measured, target, met)


def row(figure: str, measured: str, target: str = "", met=None) -> None:
    rows.append((figure, measured, target, "" if met is None else ("yes" if met else "NO")))
    print(f"  {figure}: {measured}" + (f"   (target {target})" if target else ""), flush=True)


def pipeline_run(name: str, out: Path, base: config_lib.PipelineConfig, log: str, **env_extra):
    env = dict(os.environ, OUTPUT_DIR=str(out), DATA_DIR=str(base.data_dir), **env_extra)
    wall, peak = run_once(name, env, out / log)
    cfg = config_lib.from_env(env)
    return wall, peak, results.last_run(name, cfg), component_seconds(name, cfg)


def profile(name: str, seconds: dict, wall: float) -> None:
    shown = ", ".join(f"{n} {s:.1f}" for n, s in seconds.items())
    print(
        f"  {name} per component (s): {shown}; outside components (process start, imports, launcher): "
        f"{wall - sum(seconds.values()):.1f}",
        flush=True,
    )


def titanic(base, scratch: Path) -> None:
    print("titanic: the book's plain Keras script ...", flush=True)
    book = book_script("titanic", fetch("titanic", base.data_dir, log=lambda m: None), TITANIC_BOOK_EPOCHS)
    out = scratch / "titanic"
    out.mkdir()
    print("titanic: pipeline from scratch, then twice with nothing changed ...", flush=True)
    full, peak, result, seconds = pipeline_run("titanic", out, base, "full.log")
    first, _, _, _ = pipeline_run("titanic", out, base, "rerun1.log")  # re-evaluates against the new baseline
    cached, _, _, cached_seconds = pipeline_run("titanic", out, base, "rerun2.log")
    profile("titanic", seconds, full)
    row("titanic book script (s), AUC", f"{book['seconds']:.1f}, {book['auc']:.4f}")
    row("titanic pipeline full run (s), AUC", f"{full:.1f}, {result.overall('auc'):.4f}")
    row("titanic full / book", f"{full / book['seconds']:.2f}x", "<= 2x", full <= 2 * book["seconds"])
    row(
        "titanic cached rerun / book",
        f"{cached:.1f} s = {cached / book['seconds']:.2f}x",
        "<= 1x",
        cached <= book["seconds"],
    )
    row("titanic peak RSS (GB)", f"{peak / 2**30:.2f}", f"<= {RSS_TARGET_GB}", peak / 2**30 <= RSS_TARGET_GB)
    print(f"  (first rerun, which re-evaluates against the new baseline: {first:.1f} s)")


def versus_book(name: str, base, scratch: Path, seeds=()) -> None:
    spec = registry.get_spec(name)
    epochs = trainer_settings(spec, base)["epochs"]
    print(f"{name}: the book's plain Keras script, {epochs} epochs ...", flush=True)
    book = book_script(name, fetch(spec.dataset, base.data_dir, log=lambda m: None), epochs)
    out = scratch / name
    out.mkdir()
    print(f"{name}: pipeline from scratch, {epochs} epochs at most ...", flush=True)
    wall, peak, result, seconds = pipeline_run(name, out, base, "full.log")
    profile(name, seconds, wall)
    row(f"{name} book script (s), accuracy", f"{book['seconds']:.1f}, {book['accuracy']:.4f}")
    row(f"{name} pipeline (s), accuracy", f"{wall:.1f}, {result.overall('binary_accuracy'):.4f}")
    row(f"{name} pipeline / book", f"{wall / book['seconds']:.2f}x", "<= 1.3x", wall <= 1.3 * book["seconds"])
    row(f"{name} peak RSS (GB)", f"{peak / 2**30:.2f}", f"<= {RSS_TARGET_GB}", peak / 2**30 <= RSS_TARGET_GB)
    if seeds:
        accuracies = {trainer_settings(spec, base)["seed"]: result.overall("binary_accuracy")}
        for seed in seeds:
            if seed in accuracies:
                continue
            print(f"{name}: seed {seed} (Trainer and Evaluator; the rest from TFX's cache) ...", flush=True)
            _, _, seeded, _ = pipeline_run(name, out, base, f"seed-{seed}.log", SEED=str(seed))
            accuracies[seed] = seeded.overall("binary_accuracy")
        values = list(accuracies.values())
        shown = ", ".join(f"seed {s}: {a:.4f}" for s, a in accuracies.items())
        row(
            f"{name} accuracy mean / min over {len(values)} seeds",
            f"{statistics.mean(values):.4f} / {min(values):.4f} ({shown})",
            ">= 0.935 / >= 0.930",
            statistics.mean(values) >= 0.935 and min(values) >= 0.930,
        )


def serving() -> None:
    print("serving: bench/serving_bench.py ...", flush=True)
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "serving_bench.py"), "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if proc.returncode != 0:
        sys.exit(f"serving bench failed:\n{proc.stderr[-4000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in ("REST", "gRPC"):
        ratio = figures[f"{path} p50 batch 1"] / figures["in-process p50 batch 1"]
        row(
            f"{path} p50 batch 1 / in-process",
            f"{figures[f'{path} p50 batch 1']:.2f} ms = {ratio:.1f}x "
            f"(in-process {figures['in-process p50 batch 1']:.2f} ms)",
            "<= 2x",
            ratio <= 2,
        )
    share = figures["REST req/s concurrency 8"] / figures["in-process req/s concurrency 8"]
    row(
        "REST req/s at concurrency 8 / in-process",
        f"{figures['REST req/s concurrency 8']:.0f} / {figures['in-process req/s concurrency 8']:.0f} = {share:.0%}",
        ">= 50%",
        share >= 0.5,
    )
    ratio = figures["REST p50 batch 1 with request logging / without"]
    row("REST p50 batch 1 with request logging / without", f"{ratio:.3f}x", "<= 1.10x", ratio <= 1.10)
    share = figures["Spark rows/s"] / figures["in-process rows/s"]
    row(
        "Spark local[2] rows/s / in-process",
        f"{figures['Spark rows/s']:,.0f} / {figures['in-process rows/s']:,.0f}"
        f" = {share:.0%} (Spark's own floor, a model returning zeros: {figures['Spark floor s']:.1f} s "
        f"for {figures['Spark rows']:,} rows)",
        ">= 50%",
        share >= 0.5,
    )


def drift() -> None:
    print("drift: bench/drift_bench.py ...", flush=True)
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "drift_bench.py")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    if proc.returncode != 0:
        sys.exit(f"drift bench failed:\n{proc.stderr[-4000:]}")
    added = float(proc.stdout.split("RESULT drift_seconds=")[1].split()[0])
    row("drift check added to a Titanic run", f"{added:+.2f} s (median of 3 alternating rounds)", "<= 3 s", added <= 3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="titanic,cifar2,imdb,serving,drift")
    parser.add_argument("--seeds", default="42,1,2", help="cifar2's seeds for the accuracy mean and min")
    args = parser.parse_args(argv)
    parts = args.only.split(",")
    base = config_lib.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as scratch:
        if "titanic" in parts:
            titanic(base, Path(scratch))
        if "cifar2" in parts:
            versus_book("cifar2", base, Path(scratch), seeds=[int(s) for s in args.seeds.split(",")])
        if "imdb" in parts:
            versus_book("imdb", base, Path(scratch))
        if "serving" in parts:
            serving()
        if "drift" in parts:
            drift()
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':<60} {'target':<22} met")
    for figure, measured, target, met in rows:
        print(f"{figure:<{width}}  {measured:<60} {target:<22} {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
