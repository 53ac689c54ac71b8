"""Benchmark: Titanic's compiled Kubeflow package run by the KFP driver/launcher harness, beside the same pipeline on
TFX's LocalDagRunner, measured side by side in one run (this machine is noisy: compare the ratio).

    python bench/kubeflow_bench.py [titanic]      (or: make bench-kubeflow)

Prints wall time of each, the ratio (target <= 2x), time per task with the fixed cost of a task's process start
(a fresh Python importing TensorFlow and TFX, what every Kubeflow pod pays too), and whether the metrics agree.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from pipelines import config as config_lib  # noqa: E402
from pipelines import registry  # noqa: E402
from pipelines.metadata import results  # noqa: E402
from pipelines.runners import kfp_harness
from pipelines.runners import kubeflow as kubeflow_runner


def local_run(name: str, out: Path, data_dir: Path) -> float:
    code = textwrap.dedent(f"""
        from tfx import v1 as tfx
        from pipelines import config, registry
        from pipelines.factory import create_pipeline
        cfg = config.PipelineConfig(output_dir={str(out)!r}, data_dir={str(data_dir)!r})
        tfx.orchestration.LocalDagRunner().run(create_pipeline(registry.get_spec({name!r}), cfg))
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"local run failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def import_floor() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {kubeflow_runner.kfp_entrypoint.TFX_ENTRYPOINT}"],
                   capture_output=True, check=True)
    return time.monotonic() - started


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "titanic"
    spec = registry.get_spec(name)
    data_dir = config_lib.from_env().data_dir
    from data.fetch import fetch

    fetch(spec.dataset, data_dir)
    with tempfile.TemporaryDirectory(prefix=f"bench-kfp-{name}-") as tmp:
        tmp = Path(tmp)
        print(f"{name}: LocalDagRunner, from scratch ...", flush=True)
        local_s = local_run(name, tmp / "local", data_dir)
        local = results.last_run(name, config_lib.PipelineConfig(output_dir=tmp / "local", data_dir=data_dir))

        settings = kubeflow_runner.KubeflowSettings(
            pipeline_root=str(tmp / "kfp"), data_root=str(data_dir), serving_root=str(tmp / "kfp-serving"),
            project_root=str(config_lib.PROJECT_ROOT))
        package = kubeflow_runner.compile_pipeline(name, tmp / "package", settings)
        print(f"{name}: the compiled package through the KFP driver/launcher harness ...", flush=True)
        started = time.monotonic()
        run = kfp_harness.Harness(package, log=lambda line: None).run(run_id="bench")
        harness_s = time.monotonic() - started
        floor = import_floor()
        kfp_metrics = results.load_metrics(run.artifact("Evaluator", "evaluation")["uri"])
    print(f"\n== {name}: Kubeflow package (harness) vs LocalDagRunner, side by side ==")
    print(f"  LocalDagRunner           {local_s:7.1f} s")
    print(f"  package via harness      {harness_s:7.1f} s   ratio {harness_s / local_s:.2f}x (target <= 2x)")
    print(f"  one task's process start {floor:7.1f} s   (a fresh Python importing TensorFlow + TFX's entrypoint; "
          f"{len(run.tasks)} tasks pay it, as {len(run.tasks)} pods would)")
    for task in run.tasks.values():
        print(f"    {task.name:<18} {task.seconds:6.1f} s")
    same = True
    for metric in sorted(local.metrics.get("overall", {})):
        a, b = local.metrics["overall"][metric], kfp_metrics.get("overall", {}).get(metric)
        ok = b is not None and abs(a - b) <= 1e-6
        same &= ok
        print(f"  {metric:<28} local {a:.6f}   package {b if b is None else f'{b:.6f}'}  {'same' if ok else 'DIFFERENT'}")
    print(f"  metrics {'equal' if same else 'DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
