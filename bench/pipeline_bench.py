"""Benchmark: a pipeline from scratch, then rerun with nothing changed; wall time, peak RSS, metrics.

    python bench/pipeline_bench.py [titanic]      (or: make bench)

Each run is a fresh process through the same runner file the TFX CLI uses, in a temporary OUTPUT_DIR.
Targets on 2 cores: Titanic AUC >= 0.85, full run <= 60 s and <= 2 GB peak RSS, rerun <= 15 s (issue #2);
COVID full run <= 90 s, with the forecast's zero days printed beside the book's (issue #5).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from metadata import results
from orchestration import config as config_lib
from pipelines import registry


def timed_run(runner: Path, env: dict) -> tuple:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(runner)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"run failed:\n{proc.stderr[-4000:]}")
    # ru_maxrss of children: the largest resident set of any finished child, in KiB on Linux
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "titanic"
    spec = registry.get_spec(name)
    base_cfg = config_lib.from_env()
    from data.fetch import fetch

    fetch(spec.dataset, base_cfg.data_dir)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out:
        env = dict(os.environ, OUTPUT_DIR=out, DATA_DIR=str(base_cfg.data_dir))
        cfg = base_cfg.replace(output_dir=Path(out))
        runner = registry.runner_path(name)
        print(f"{name}: full run from scratch ...", flush=True)
        full, rss = timed_run(runner, env)
        result = results.last_run(name, cfg)
        if name == "covid":
            forecast = subprocess.run(
                [sys.executable, "-m", "pipelines.covid.forecast"],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
            )
            print(forecast.stdout if forecast.returncode == 0 else forecast.stderr[-2000:])
        print(f"{name}: rerun (first: re-evaluates against the new baseline) ...", flush=True)
        rerun1, _ = timed_run(runner, env)
        print(f"{name}: rerun (steady state: fully cached) ...", flush=True)
        rerun2, _ = timed_run(runner, env)

    print()
    print(f"{'metric':<34}{'value':>12}")
    for metric, value in sorted(result.metrics.get("overall", {}).items()):
        print(f"{'eval ' + metric:<34}{value:>12.4f}")
    for label, value in (
        ("full pipeline wall (s)", f"{full:.1f}"),
        ("peak RSS (MB)", f"{rss:.0f}"),
        ("first rerun wall (s)", f"{rerun1:.1f}"),
        ("cached rerun wall (s)", f"{rerun2:.1f}"),
        ("blessed / pushed", f"{result.blessed} / {result.pushed}"),
    ):
        print(f"{label:<34}{value:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
