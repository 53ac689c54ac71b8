"""Benchmark: a compiled Kubeflow package run as open-source KFP's backend runs it (testing/kfp_twin.py,
KFP 2.5 rules, every root on an object store), beside the same pipeline on TFX's LocalDagRunner with local folders,
measured side by side in one run (this machine is noisy: compare the ratio).

    python bench/kubeflow_bench.py [titanic]      (or: make bench-kubeflow)

The store is a loopback S3 server (moto, as in the tests: what Kubeflow's MinIO speaks). Prints wall time of each,
the ratio (target <= 2.5x), time per task beside the fixed cost of a task's process start (a fresh Python importing
TensorFlow and TFX, what every pod pays too), what the launcher downloaded per task, what KFP's cache saves on an
unchanged rerun (ExampleGen keyed by the data fingerprint) against a rerun with caching off, what computing the
fingerprint costs, and whether the metrics agree.
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

from metadata import results
from orchestration import config as config_lib
from pipelines import registry
from runners import kubeflow as kubeflow_runner
from runners import object_store
from testing import kfp_twin, local_s3

SECRET = "mlpipeline-minio-artifact"


def local_run(name: str, out: Path, data_root: Path) -> float:
    code = textwrap.dedent(f"""
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner
        from orchestration import config
        from pipelines import registry
        from orchestration.factory import create_pipeline
        cfg = config.PipelineConfig(output_dir={str(out)!r}, data_root={str(data_root)!r})
        LocalDagRunner().run(create_pipeline(registry.get_spec({name!r}), cfg))
    """)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"local run failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def import_floor() -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", f"import {kubeflow_runner.kfp_entrypoint.TFX_ENTRYPOINT}"],
        capture_output=True,
        check=True,
    )
    return time.monotonic() - started


def fingerprint(root: str) -> tuple:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "runners.data_fingerprint", root],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip(), time.monotonic() - started


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "titanic"
    spec = registry.get_spec(name)
    from data.fetch import fetch

    data = fetch(spec.dataset, config_lib.from_env().data_dir)
    with tempfile.TemporaryDirectory(prefix=f"bench-kfp-{name}-") as tmp, local_s3.server() as s3:
        tmp = Path(tmp)
        for bucket in ("data", "kfp", "serving"):
            s3.create_bucket(bucket)
        s3.upload(data, f"s3://data/{spec.dataset}")
        os.environ.update(s3.env, **object_store.s3_environment(s3.env))
        print(f"{name}: LocalDagRunner, from scratch, local folders ...", flush=True)
        local_s = local_run(name, tmp / "local", data)
        local = results.last_run(name, config_lib.PipelineConfig(output_dir=tmp / "local"))

        settings = kubeflow_runner.KubeflowSettings(
            image="registry.example.com/eat-tf2-tfx:bench",
            project_root=str(config_lib.PROJECT_ROOT),
            env=(("AWS_ENDPOINT_URL", s3.endpoint), ("AWS_REGION", "us-east-1")),
            s3_secret=SECRET,
        )
        package = kubeflow_runner.compile_pipeline(name, tmp / "package", settings)
        image_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        cluster = kfp_twin.Backend(
            env=image_env,
            work_dir=tmp / "cluster",
            log=lambda line: None,
            secrets={SECRET: {"accesskey": s3.env["AWS_ACCESS_KEY_ID"], "secretkey": s3.env["AWS_SECRET_ACCESS_KEY"]}},
        )
        data_root = f"s3://data/{spec.dataset}"
        fp, fingerprint_s = fingerprint(data_root)
        parameters = {"data-root": data_root, "serving-root": f"s3://serving/{name}", "data-fingerprint": fp}
        print(f"{name}: the package through the KFP 2.5 backend twin, roots on s3:// ({s3.endpoint}) ...", flush=True)
        started = time.monotonic()
        run = cluster.run(package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="bench")
        twin_s = time.monotonic() - started
        print(f"{name}: again, unchanged, with caching on ...", flush=True)
        started = time.monotonic()
        cached = cluster.run(
            package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="cached", enable_caching=True
        )
        cached_s = time.monotonic() - started
        floor = import_floor()
        evaluation = tmp / "evaluation"
        object_store.download_prefix(run.artifact("Evaluator", "evaluation")["uri"], evaluation)
        kfp_metrics = results.load_metrics(str(evaluation))
    print(
        f"\n== {name}: Kubeflow package (KFP 2.5 twin, s3:// on moto) vs LocalDagRunner (local disk), side by side =="
    )
    print(f"  LocalDagRunner           {local_s:7.1f} s")
    print(f"  package via the twin     {twin_s:7.1f} s   ratio {twin_s / local_s:.2f}x (target <= 2.5x)")
    print(
        f"  one task's process start {floor:7.1f} s   (a fresh Python importing TensorFlow + TFX's entrypoint; "
        f"{len(run.tasks)} tasks pay it, as {len(run.tasks)} pods would)"
    )
    for task in run.tasks.values():
        print(f"    {task.name:<18} {task.seconds:6.1f} s   {task.downloaded:3d} object(s) downloaded into the pod")
    hits = sum(t.state == "CACHED" for t in cached.tasks.values())
    print(
        f"  unchanged rerun, cache on {cached_s:6.1f} s   ({hits} of {len(cached.tasks)} tasks from KFP's cache; "
        f"with caching off a rerun costs a whole run, ~{twin_s:.0f} s)"
    )
    print(f"  data fingerprint          {fingerprint_s:6.1f} s   (a listing of {data_root}, at submission)")
    same = True
    for metric in sorted(local.metrics.get("overall", {})):
        a, b = local.metrics["overall"][metric], kfp_metrics.get("overall", {}).get(metric)
        ok = b is not None and abs(a - b) <= 1e-6
        same &= ok
        print(
            f"  {metric:<28} local {a:.6f}   package {b if b is None else f'{b:.6f}'}  {'same' if ok else 'DIFFERENT'}"
        )
    print(f"  metrics {'equal' if same else 'DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
