"""Compile every pipeline (or some) to a Kubeflow Pipelines v2 package, from the same factory as the local runs.

    KFP_IMAGE=registry.example.com/team/eat-tf2-tfx:1.0 python -m runners.kubeflow [titanic ...]
    (or: make kubeflow PIPELINE=titanic KFP_IMAGE=...)

Design notes: docs/design-notes.md, runners/kubeflow.py."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from components.served_baseline import NODE_ID as SERVED_BASELINE_NODE
from orchestration import config as config_lib
from orchestration.factory import create_pipeline
from pipelines import registry
from runners import kfp_entrypoint, kfp_package_check

DATA_ROOT_PARAMETER = "data-root"
SERVING_ROOT_PARAMETER = "serving-root"
FINGERPRINT_PARAMETER = "data-fingerprint"
RUN_ID_PARAMETER = "kfp_run_id"
# TFX writes a pipeline root into the pipeline it compiles; the backend ignores it (a run's root is the one it is
# submitted with), so none that could be mistaken for a real bucket goes in
COMPILE_ROOT = "unused://the-run's-pipeline_root"
_REGISTRY = re.compile(r"^(localhost(:\d+)?|[^/]*[.:][^/]*)/")  # Docker's rule: a first component with . or :
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class PackageError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class KubeflowSettings:
    image: str = ""
    image_digest: str = ""
    env: Tuple[Tuple[str, str], ...] = ()
    s3_secret: str = ""
    pipeline_root: str = ""
    data_root: str = ""
    serving_root: str = ""
    project_root: str = "/app"
    # the backends the package must run on (KFP_VERSION, comma-separated): each one's rules are checked
    kfp_versions: Tuple[str, ...] = kfp_package_check.KFP_VERSIONS

    @classmethod
    def from_env(cls, env=None) -> "KubeflowSettings":
        env = os.environ if env is None else env
        names = {
            "image": "KFP_IMAGE",
            "image_digest": "KFP_IMAGE_DIGEST",
            "s3_secret": "KFP_S3_SECRET",
            "pipeline_root": "KFP_PIPELINE_ROOT",
            "data_root": "KFP_DATA_ROOT",
            "serving_root": "KFP_SERVING_ROOT",
            "project_root": "KFP_PROJECT_ROOT",
        }
        values = {
            field: env[var].strip().rstrip("/") if field.endswith("root") else env[var].strip()
            for field, var in names.items()
            if env.get(var, "").strip()
        }
        if env.get("KFP_ENV", "").strip():
            pairs = []
            for item in shlex.split(env["KFP_ENV"]):
                if "=" not in item or not item.split("=", 1)[0]:
                    raise config_lib.ConfigError(f"KFP_ENV: {item!r} is not NAME=VALUE")
                pairs.append(tuple(item.split("=", 1)))
            values["env"] = tuple(pairs)
        if env.get("KFP_VERSION", "").strip():
            values["kfp_versions"] = tuple(v.strip() for v in env["KFP_VERSION"].split(",") if v.strip())
        return cls(**values)

    def image_reference(self) -> str:
        """The image as the package names it: with its registry, and its digest when pinned."""
        if not self.image:
            raise config_lib.ConfigError(
                "KFP_IMAGE is not set: build the image from the Dockerfile, push it to a registry the cluster pulls "
                "from, and set KFP_IMAGE=<registry>/<repository>:<tag> (e.g. ghcr.io/you/eat-tf2-tfx:1.0)"
            )
        if not _REGISTRY.match(self.image):
            raise config_lib.ConfigError(
                f"KFP_IMAGE={self.image} names no registry: the cluster would pull docker.io/library/"
                f"{self.image.split('@')[0]}, which is not this image; give the registry you pushed it to"
            )
        if self.image_digest:
            if not _DIGEST.match(self.image_digest):
                raise config_lib.ConfigError(f"KFP_IMAGE_DIGEST={self.image_digest} is not sha256:<64 hex digits>")
            return f"{self.image.split('@')[0]}@{self.image_digest}"
        return self.image

    def secret_keys(self) -> Optional[Tuple[str, str, str]]:
        if not self.s3_secret:
            return None
        parts = self.s3_secret.split(":")
        if len(parts) == 1:
            return parts[0], "accesskey", "secretkey"
        if len(parts) == 3 and all(parts):
            return parts[0], parts[1], parts[2]
        raise config_lib.ConfigError(
            f"KFP_S3_SECRET={self.s3_secret} is not NAME or NAME:ACCESS_KEY_KEY:SECRET_KEY_KEY"
        )


def build_pipeline(name: str, settings: KubeflowSettings, cfg: config_lib.PipelineConfig):
    from tfx.orchestration import data_types

    spec = registry.get_spec(name)
    data_root = data_types.RuntimeParameter(name=DATA_ROOT_PARAMETER, ptype=str)
    serving_root = data_types.RuntimeParameter(name=SERVING_ROOT_PARAMETER, ptype=str)
    return create_pipeline(
        spec,
        cfg,
        data_root=data_root,
        with_local_metadata=False,
        pipeline_root=COMPILE_ROOT,
        serving_root=serving_root,
        project_root=settings.project_root,
        pipeline_name=kfp_pipeline_name(name),
    )


_KFP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # tfx/orchestration/kubeflow/v2/pipeline_builder.py:45-50


def kfp_pipeline_name(name: str) -> str:
    """The pipeline's name as Kubeflow takes it: a pipeline package is a Python identifier (my_table), a KFP
    pipeline name may not hold '_' (TFX's v2 compiler refuses it), so '_' becomes '-'."""
    kfp_name = name.lower().replace("_", "-")
    if not _KFP_NAME.match(kfp_name):
        raise PackageError(
            f"pipeline {name!r}: Kubeflow needs a name of lowercase letters, digits and '-' (at most "
            f"128, not starting with '-'); {kfp_name!r} is not one: rename the package"
        )
    return kfp_name


def compile_pipeline(
    name: str,
    output_dir: Path,
    settings: Optional[KubeflowSettings] = None,
    cfg: Optional[config_lib.PipelineConfig] = None,
) -> Path:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    settings = settings or KubeflowSettings.from_env()
    cfg = cfg or config_lib.from_env()
    image = settings.image_reference()
    settings.secret_keys()
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        # spec 2.1: typed parameters, what current KFP writes and reads (2.0 trips TFX's YAML writer on
        # runtime parameters)
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image, use_pipeline_spec_2_1=True),
        output_dir=str(output_dir),
        output_filename=f"{name}.yaml",
    )
    runner.run(build_pipeline(name, settings, cfg))
    path = output_dir / f"{name}.yaml"
    spec, platform = _complete_package(path, settings)
    # a package compiled for this checkout (the twin) may name it; one for an image may not
    leaks = [] if settings.project_root == str(config_lib.PROJECT_ROOT) else [str(config_lib.PROJECT_ROOT)]
    for version in settings.kfp_versions:
        found = kfp_package_check.problems(dict(spec, _platform=platform), leaks, kfp_version=version)
        if found:
            path.unlink()  # nothing half-right is left to upload
            raise PackageError(
                f"{path}: open-source Kubeflow Pipelines {version} would not run this package:\n  " + "\n  ".join(found)
            )
    return path


def _example_gen_task(tasks: Dict[str, dict]) -> str:
    found = [
        name
        for name, task in tasks.items()
        if task.get("inputs", {}).get("parameters", {}).get("input_base", {}).get("componentInputParameter")
        == DATA_ROOT_PARAMETER
    ]
    if len(found) != 1:
        raise PackageError(f"expected one ExampleGen reading {DATA_ROOT_PARAMETER}, found {found}")
    return found[0]


def _complete_package(path: Path, settings: KubeflowSettings) -> Tuple[dict, dict]:
    """What TFX's compiler leaves out for open-source KFP, made explicit:
    - every task runs runners.kfp_entrypoint (it takes what the backend sends and hands TFX's own
      entrypoint the same arguments), with KFP_ENV set on it;
    - ExampleGen gets the `data-fingerprint` pipeline parameter (`kfp_data_fingerprint`): it enters KFP's cache key
      (cacheutils/cache.go keys inputs, parameters, image and command), so new files under the same data root are
      never answered from the cache, and the task refuses a fingerprint that is not its files';
    - ServedBaseline gets the run's id (`kfp_run_id` = {{$.pipeline_job_uuid}}, which KFP 2.5's driver replaces:
      driver.go:1648): a key no other run has, so it re-reads the serving root whatever the submitter's
      enable_caching (which overrides every task's cachingOptions: kfp/client/client.py _override_caching_options);
      on KFP 2.4 (no replacement) its `candidate` input keys it to the model about to be judged;
    - the package's defaultPipelineRoot is only the UI's prefill (the backend reads the run's): KFP_PIPELINE_ROOT
      or none;
    - with KFP_S3_SECRET, a Kubernetes platform spec (kfp-kubernetes' format, a second YAML document the kfp SDK
      sends along: kfp/client/client.py _safe_load_yaml) maps the secret's keys to the AWS_* variables of every
      task (driver.go:893-920, secretAsEnv)."""
    import yaml

    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    spec = yaml.safe_load(text)
    root_inputs = spec["root"]["inputDefinitions"]["parameters"]
    root_inputs[FINGERPRINT_PARAMETER] = {"parameterType": "STRING"}
    header = [line for line in header if not line.startswith("#  ")]
    header += [f"#  {name}: str (required)" for name in sorted(root_inputs)]
    if settings.pipeline_root:
        spec["defaultPipelineRoot"] = settings.pipeline_root
    else:
        spec.pop("defaultPipelineRoot", None)
    tasks = spec["root"]["dag"]["tasks"]
    for name, extra in (
        (
            _example_gen_task(tasks),
            {kfp_entrypoint.DATA_FINGERPRINT: {"componentInputParameter": FINGERPRINT_PARAMETER}},
        ),
        (SERVED_BASELINE_NODE, {RUN_ID_PARAMETER: {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}}),
    ):
        tasks[name]["inputs"].setdefault("parameters", {}).update(extra)
        component = spec["components"][tasks[name]["componentRef"]["name"]]
        for parameter in extra:
            component.setdefault("inputDefinitions", {}).setdefault("parameters", {})[parameter] = {
                "parameterType": "STRING"
            }
    env = [{"name": k, "value": v} for k, v in settings.env]
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if container.get("command") == ["python", "-m", kfp_entrypoint.TFX_ENTRYPOINT]:
            container["command"] = ["python", "-m", kfp_entrypoint.__name__]
        if env and "image" in container:
            container["env"] = env
    platform = {}
    keys = settings.secret_keys()
    if keys:
        secret, access, secret_key = keys
        platform = {
            "platforms": {
                "kubernetes": {
                    "deploymentSpec": {
                        "executors": {
                            label: {
                                "secretAsEnv": [
                                    {
                                        "secretName": secret,
                                        "keyToEnv": [
                                            {"secretKey": access, "envVar": "AWS_ACCESS_KEY_ID"},
                                            {"secretKey": secret_key, "envVar": "AWS_SECRET_ACCESS_KEY"},
                                        ],
                                    }
                                ]
                            }
                            for label in spec["deploymentSpec"]["executors"]
                        }
                    }
                }
            }
        }
    tmp = path.with_suffix(".yaml.tmp")
    body = "\n".join(header) + "\n" + yaml.safe_dump(spec, sort_keys=False, width=120)
    if platform:
        body += "---\n" + yaml.safe_dump(platform, sort_keys=False, width=120)
    tmp.write_text(body)
    os.replace(tmp, path)
    return spec, platform


def submission_snippet(name: str, path: Path, settings: KubeflowSettings) -> str:
    dataset = registry.get_spec(name).dataset
    data_root = settings.data_root and f"{settings.data_root}/{dataset}"
    serving_root = f"{settings.serving_root}/{name}" if settings.serving_root else "<s3:// or gs:// folder>/" + name
    pipeline_root = settings.pipeline_root or "<s3:// or gs:// folder for artifacts>"
    no_root = "  # none: the backend's minio://, which TF cannot write"
    return f'''import kfp
from runners.data_fingerprint import fingerprint  # with this project installed, and the bucket's
                                                             # credentials (the same AWS_* / Google ones as the tasks)
data_root = "{data_root or f"<s3:// or gs:// folder holding the {dataset} files>"}"
kfp.Client(host="<your KFP endpoint>").create_run_from_pipeline_package(
    "{path}",
    arguments={{"{DATA_ROOT_PARAMETER}": data_root,
               "{SERVING_ROOT_PARAMETER}": "{serving_root}",
               "{FINGERPRINT_PARAMETER}": fingerprint(data_root)}},
    pipeline_root="{pipeline_root}",{no_root}
)'''


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"pipelines (default: all of {', '.join(registry.PIPELINES)})")
    parser.add_argument("--output-dir", type=Path, default=config_lib.PROJECT_ROOT / "build" / "kubeflow")
    parser.add_argument("--quiet", action="store_true", help="no submission snippet")
    args = parser.parse_args(argv)
    try:
        for name in args.names:
            registry.get_spec(name)
        settings, cfg = KubeflowSettings.from_env(), config_lib.from_env()
        settings.image_reference()
        settings.secret_keys()
    except (KeyError, config_lib.ConfigError) as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if not settings.image_digest:
        print(
            f"note: {settings.image} is not pinned by digest; KFP's cache keys the image name, so an image rebuilt "
            f"under this tag would reuse the old one's cached results: set KFP_IMAGE_DIGEST=sha256:... "
            f"(docker inspect --format '{{{{index .RepoDigests 0}}}}' {settings.image})",
            file=sys.stderr,
        )
    started = time.monotonic()
    for name in args.names or registry.PIPELINES:
        try:
            path = compile_pipeline(name, args.output_dir, settings, cfg)
        except PackageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"compiled {name} -> {path} (image {settings.image_reference()})")
        if not args.quiet:
            print(f"\n# submit a run of {name}:\n{submission_snippet(name, path, settings)}\n")
    print(f"({time.monotonic() - started:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
