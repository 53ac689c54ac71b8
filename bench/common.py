"""What the benchmarks share: run a pipeline's runner as a fresh process and watch its memory, read each
component's wall time from ML Metadata, run the book's plain Keras script."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from metadata import results
from orchestration import config as config_lib
from pipelines import registry


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_once(pipeline: str, env: dict, log: Path) -> Tuple[float, int]:
    """(wall seconds, peak RSS of the whole process tree in bytes, sampled every 0.2 s) of one run of the
    pipeline's runner file (the one the TFX CLI runs), its output in `log`."""
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(registry.runner_path(pipeline))],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.2)
    if proc.returncode != 0:
        sys.exit(f"{pipeline} run failed (log {log}):\n" + "".join(log.read_text().splitlines(keepends=True)[-30:]))
    return time.monotonic() - started, peak


def component_seconds(pipeline: str, cfg: config_lib.PipelineConfig) -> Dict[str, float]:
    """{node: seconds} of each node's newest execution, as ML Metadata recorded it (create to last update)."""
    store = results.open_store(cfg.metadata_path(pipeline))
    seconds = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".", 1)[1]
        executions = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
        if executions:
            e = executions[-1]
            seconds[node] = (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
    return seconds


def book_script(name: str, data_dir: Path, epochs: int) -> dict:
    """The book's plain Keras script for `name` (bench/keras_baselines.py) as a fresh process: accuracy, auc,
    seconds (Python and TensorFlow start-up included, as the pipeline's are)."""
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "keras_baselines.py"), name, str(data_dir), str(epochs)],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if proc.returncode != 0:
        sys.exit(f"the book's {name} script failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
