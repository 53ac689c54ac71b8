"""Compile every pipeline (or some) to a Kubeflow Pipelines v2 package, from the same factory as the local runs.

    python -m pipelines.runners.kubeflow [titanic cifar2 ...] [--output-dir build/kubeflow]   (or: make kubeflow)

Settings (environment):
    KFP_IMAGE           the image with this project installed (Dockerfile)    default eat-tf2-tfx:latest
    KFP_PIPELINE_ROOT   artifacts: <root>/<pipeline>                         default gs://YOUR_BUCKET/tfx
    KFP_DATA_ROOT       input data: <root>/<dataset> (runtime parameter data-root)  default gs://YOUR_BUCKET/data
    KFP_SERVING_ROOT    pushed models: <root>/<pipeline>/<version>           default gs://YOUR_BUCKET/serving
    KFP_PROJECT_ROOT    where the Dockerfile puts the code in the image      default /app
    BEAM_ARGS, STRATEGY, EPOCHS, MIN_AUC, ... as for local runs (pipelines/config.py)

Functions are referenced by dotted path and the code is baked into the image, so compiling needs neither the
pipeline root nor a module_file upload: it works offline.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from tfx import v1 as tfx

from components.served_baseline import NODE_ID as SERVED_BASELINE_NODE
from pipelines import config as config_lib
from pipelines import registry
from pipelines.runners import kfp_entrypoint
from pipelines.runners import kfp_package_check
from pipelines.factory import create_pipeline

DATA_ROOT_PARAMETER = "data-root"


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    image: str = "eat-tf2-tfx:latest"
    pipeline_root: str = "gs://YOUR_BUCKET/tfx"
    data_root: str = "gs://YOUR_BUCKET/data"
    serving_root: str = "gs://YOUR_BUCKET/serving"
    project_root: str = "/app"

    @classmethod
    def from_env(cls, env=None) -> "KubeflowSettings":
        env = os.environ if env is None else env
        names = {"image": "KFP_IMAGE", "pipeline_root": "KFP_PIPELINE_ROOT", "data_root": "KFP_DATA_ROOT",
                 "serving_root": "KFP_SERVING_ROOT", "project_root": "KFP_PROJECT_ROOT"}
        return cls(**{field: env[var].rstrip("/") for field, var in names.items() if env.get(var)})


def build_pipeline(name: str, settings: KubeflowSettings, cfg: config_lib.PipelineConfig) -> tfx.dsl.Pipeline:
    spec = registry.get_spec(name)
    data_root = tfx.dsl.experimental.RuntimeParameter(
        name=DATA_ROOT_PARAMETER, ptype=str, default=f"{settings.data_root}/{spec.dataset}")
    return create_pipeline(spec, cfg, data_root=data_root, with_local_metadata=False,
                           pipeline_root=f"{settings.pipeline_root}/{name}",
                           serving_root=f"{settings.serving_root}/{name}", project_root=settings.project_root)


def compile_pipeline(name: str, output_dir: Path, settings: Optional[KubeflowSettings] = None,
                     cfg: Optional[config_lib.PipelineConfig] = None) -> Path:
    settings = settings or KubeflowSettings.from_env()
    cfg = cfg or config_lib.from_env()
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        # spec 2.1: typed parameters, what current KFP writes and reads (2.0 trips TFX's YAML writer on
        # runtime parameters)
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=settings.image,
                                                                        use_pipeline_spec_2_1=True),
        output_dir=str(output_dir), output_filename=f"{name}.yaml")
    pipeline = build_pipeline(name, settings, cfg)
    runner.run(pipeline)
    path = output_dir / f"{name}.yaml"
    spec = _complete_package(path, {DATA_ROOT_PARAMETER: f"{settings.data_root}/{registry.get_spec(name).dataset}"},
                             pipeline.pipeline_info.pipeline_root)
    # a package compiled for this checkout (the local harness) may name it; one for an image may not
    leaks = [] if settings.project_root == str(config_lib.PROJECT_ROOT) else [str(config_lib.PROJECT_ROOT)]
    found = kfp_package_check.problems(spec, leaks)
    if found:
        raise PackageError(f"{path}: open-source Kubeflow Pipelines would not run this package:\n  "
                           + "\n  ".join(found))
    return path


class PackageError(RuntimeError):
    pass


def _complete_package(path: Path, defaults: dict, pipeline_root: str) -> dict:
    """What TFX's compiler leaves for a PipelineJob's runtime config or for Vertex, made explicit for KFP:
    - the runtime parameters' defaults and the pipeline root (a run started from KFP's UI needs no typing);
    - every task runs pipelines.runners.kfp_entrypoint, which checks the image and the data root before handing over to
      TFX's own entrypoint with the same arguments;
    - ServedBaseline is never taken from KFP's cache: it reads the serving root, which changes between runs
      without any of its inputs changing."""
    import yaml

    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    spec = yaml.safe_load(text)
    for name, value in defaults.items():
        spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"] = value
        header = [f"#  {name}: str [Default: '{value}']" if line == f"#  {name}: str" else line for line in header]
    spec["defaultPipelineRoot"] = pipeline_root
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if container.get("command") == ["python", "-m", kfp_entrypoint.TFX_ENTRYPOINT]:
            container["command"] = ["python", "-m", kfp_entrypoint.__name__]
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        if task_name == SERVED_BASELINE_NODE:
            task["cachingOptions"] = {"enableCache": False}
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=False, width=120))
    os.replace(tmp, path)
    return spec


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"pipelines (default: all of {', '.join(registry.PIPELINES)})")
    parser.add_argument("--output-dir", type=Path, default=config_lib.PROJECT_ROOT / "build" / "kubeflow")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            registry.get_spec(name)
        settings, cfg = KubeflowSettings.from_env(), config_lib.from_env()
    except (KeyError, config_lib.ConfigError) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    started = time.monotonic()
    for name in args.names or registry.PIPELINES:
        try:
            path = compile_pipeline(name, args.output_dir, settings, cfg)
        except PackageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"compiled {name} -> {path} (image {settings.image})")
    print(f"({time.monotonic() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
