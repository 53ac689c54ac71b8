"""`make run`: fetch the data, then run a pipeline through the TFX CLI on the local engine, then report.

    python -m pipelines.run [titanic]

Exactly what a user would type by hand (README, "The TFX CLI by hand"):
    tfx pipeline create|update --engine local --pipeline_path pipelines/<name>/local_runner.py
    tfx run create --engine local --pipeline_name <name>
with the CLI's state kept in $LOCAL_HOME (default outputs/tfx_local) instead of ~/tfx/local.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from data.fetch import FetchError, fetch
from pipelines import config as config_lib
from pipelines import registry, results


def _step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.monotonic()


def _done(started: float) -> None:
    print(f"    ({time.monotonic() - started:.1f} s)", flush=True)


def tfx_env(cfg: config_lib.PipelineConfig) -> dict:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # the CLI runs `pip freeze`: this venv's pip
    env.setdefault("LOCAL_HOME", str(Path(cfg.output_dir) / "tfx_local"))
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    return env


def run_via_cli(name: str, cfg: config_lib.PipelineConfig) -> int:
    env = tfx_env(cfg)
    tfx_bin = str(Path(sys.executable).parent / "tfx")
    runner = str(registry.runner_path(name))
    exists = (Path(env["LOCAL_HOME"]) / name).is_dir()
    started = _step(f"tfx pipeline {'update' if exists else 'create'} ({runner})")
    rc = subprocess.call([tfx_bin, "pipeline", "update" if exists else "create", "--engine", "local",
                          "--pipeline_path", runner], env=env)
    if rc != 0:
        return rc
    _done(started)
    started = _step(f"tfx run create --pipeline_name {name}")
    rc = subprocess.call([tfx_bin, "run", "create", "--engine", "local", "--pipeline_name", name], env=env)
    _done(started)
    return rc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default="titanic", choices=registry.PIPELINES)
    args = parser.parse_args(argv)
    try:
        cfg = config_lib.from_env()
    except config_lib.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = registry.get_spec(args.pipeline)
    total = time.monotonic()

    started = _step(f"data: {spec.dataset}")
    try:
        fetch(spec.dataset, cfg.data_dir)
    except (FetchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _done(started)

    rc = run_via_cli(args.pipeline, cfg)
    if rc != 0:
        print(f"\nerror: the {args.pipeline} pipeline run failed (exit {rc}); the cause is printed above. "
              f"Nothing was pushed by the failed run.", file=sys.stderr)
        return rc
    print()
    print(results.format_result(results.last_run(args.pipeline, cfg)))
    print(f"\n(total {time.monotonic() - total:.1f} s; outputs under {cfg.output_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
