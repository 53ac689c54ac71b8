"""Open-source Kubeflow Pipelines' v2 backend, played here: a compiled package's tasks run as that backend runs them.

    python -m testing.kfp_twin build/kubeflow/titanic.yaml --pipeline-root s3://bucket/root \\
        --param data-root=s3://bucket/data/titanic --param serving-root=s3://bucket/serving/titanic \\
        --param data-fingerprint=$(python -m runners.data_fingerprint s3://bucket/data/titanic) \\
        [--kfp-version 2.4|2.5|2.17] [--enable-caching] [--cache-disabled-globally] [--allow-local-root]

Design notes: docs/design-notes.md, testing/kfp_twin.py."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import yaml

from orchestration.config import PROJECT_ROOT
from runners import kfp_package_check, object_store

# the versions and their driver rules are the package check's (one table): tags read 2.4.0, 2.5.0, 2.17.0
KFP_VERSIONS = kfp_package_check.KFP_VERSIONS
DRIVER_PLACEHOLDERS = kfp_package_check.DRIVER_PLACEHOLDERS
DRIVER_ARG_PARAMETER = kfp_package_check.INPUT_PARAMETER  # 2.17.0 driver/util.go:45 (resolveContainerArgs)
DEFAULT_PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go:37
ROOT_SCHEMES = ("gs://", "s3://", "minio://", "mem://")  # objectstore/config.go:122
LAUNCHER_SCHEMES = {"gs://": "gcs", "minio://": "minio", "s3://": "s3"}  # launcher_v2.go:882-896 (oci: Modelcar)
OUTPUT_METADATA_FILEPATH = "/tmp/kfp_outputs/output_metadata.json"  # launcher_v2.go:458


def _driver_string(value) -> str:
    """2.17.0 driver/util.go pbValueToString."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return go_driver_number(value)
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))


def version_at_least(version: str, oldest: str) -> bool:
    return tuple(int(p) for p in version.split(".")) >= tuple(int(p) for p in oldest.split("."))


def _shortest(value: float):
    """(sign, digits, decimal point position) of the shortest decimal that reads back as `value`, as Go's
    strconv computes it for precision -1 (Python's repr is that shortest decimal)."""
    sign, digits, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    return ("-" if sign else ""), "".join(map(str, digits)), len(digits) + exponent


def go_format_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64), the launcher's number placeholder (launcher_v2.go getPlaceholders,
    the same in 2.4, 2.5 and 2.17): the shortest decimal that reads back the same, never an exponent."""

    if float(value) == int(value):
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")


def go_driver_number(value: float) -> str:
    """2.17.0 driver/util.go pbValueToString: an integral number as %d, any other as Go's %g (shortest digits;
    an exponent when it is below -4 or at least 6, written e+06)."""
    if float(value) == int(value) and abs(value) < 2**63:  # Go's n == float64(int64(n))
        return str(int(value))
    sign, digits, point = _shortest(value)
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    return go_format_float(value)


class TwinError(RuntimeError):
    """The package cannot be run (the backend would refuse it) or a task failed; the message names the task."""


@dataclasses.dataclass
class TaskRun:
    name: str
    state: str  # COMPLETE or CACHED
    seconds: float
    outputs: Dict[str, List[dict]]  # output key -> RuntimeArtifacts as recorded (what downstream tasks get)
    log: str
    executor_input: dict  # what the launcher substituted for {{$}}
    downloaded: int = 0  # objects the launcher downloaded into the pod


@dataclasses.dataclass
class PipelineRun:
    run_id: str
    root: str  # <pipeline root>/<pipeline name>/<run id>
    tasks: Dict[str, TaskRun]

    def artifact(self, task: str, key: str) -> dict:
        return self.tasks[task].outputs[key][0]

    def metadata(self, task: str, key: str) -> dict:
        return self.artifact(task, key).get("metadata", {})


def load_package(path) -> dict:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    spec = docs[0]
    spec["_platform"] = docs[1] if len(docs) > 1 else {}  # kfp-kubernetes' platform spec, when there is one
    return spec


def task_order(tasks: Mapping[str, dict]) -> List[str]:
    """Dependency order (explicit dependentTasks and artifact producers), ties by name."""
    needs = {name: _needs(task) for name, task in tasks.items()}
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and needs[n] <= done)
        if not ready:
            raise TwinError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


def _needs(task: dict) -> set:
    deps = set(task.get("dependentTasks", []))
    for value in task.get("inputs", {}).get("artifacts", {}).values():
        if "taskOutputArtifact" in value:
            deps.add(value["taskOutputArtifact"]["producerTask"])
    return deps


def ancestors(tasks: Mapping[str, dict], targets: Iterable[str]) -> set:
    keep, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in tasks:
            raise TwinError(f"no task {name!r} in the package (tasks: {', '.join(sorted(tasks))})")
        keep.add(name)
        todo.extend(_needs(tasks[name]))
    return keep


# ------------------------------------------------------------------------------------------------ ML Metadata
def to_mlmd_value(value):
    """converter.go StructValueToMLMDValue: (kind, value) as ML Metadata stores it."""
    if isinstance(value, bool):
        return ("int", int(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, (int, float)):
        return ("double", float(value))
    if isinstance(value, list):
        return ("struct", {"list": value})
    if isinstance(value, dict):
        return ("struct", {"struct": value})
    raise TwinError(f"unknown/unsupported value type {type(value).__name__} (converter.go: 'TODO: support null')")


def from_mlmd_value(kind_value):
    """converter.go toRuntimeArtifact: string -> string, double and int -> number, struct -> struct."""
    kind, value = kind_value
    return float(value) if kind in ("int", "double") else value


def session_info(root: str, kfp_version: str = "2.5") -> str:
    """The store_session_info the launcher records (objectstore SessionInfo as Go's json.Marshal writes it), for a
    root with no provider config in the kfp-launcher ConfigMap (config/s3.go:85-91, gcs.go; minio: env.go:164,
    where 2.15 added maxRetries and 2.16 moved the endpoint to SeaweedFS: 2.17.0 env.go:177-191 and
    objectstore/config.go:29)."""
    scheme = root.split("://", 1)[0] if "://" in root else ""
    if scheme == "minio":
        params = {
            "accessKeyKey": "accesskey",
            "disableSSL": "true",
            "endpoint": "minio-service.kubeflow:9000",
            "fromEnv": "false",
            "region": "minio",
            "secretKeyKey": "secretkey",
            "secretName": "mlpipeline-minio-artifact",
        }
        if version_at_least(kfp_version, "2.15"):
            params["maxRetries"] = "5"
        if version_at_least(kfp_version, "2.16"):
            params["endpoint"] = "seaweedfs.kubeflow:9000"
        params = dict(sorted(params.items()))  # Go marshals a map's keys sorted
    else:
        params = {"fromEnv": "true"}
    return json.dumps(
        {"Provider": {"gs": "gs", "s3": "s3", "minio": "minio"}.get(scheme, scheme), "Params": params},
        separators=(",", ":"),
    )


class Metadata:
    """The artifacts ML Metadata holds, with ids, as the launcher records and the driver reads them."""

    def __init__(self, kfp_version: str = "2.5"):
        self._lock = threading.Lock()
        self._artifacts: Dict[int, dict] = {}
        self._next = 1
        self.kfp_version = kfp_version

    def record(self, output_name: str, artifact: dict, root: str) -> int:
        properties = {
            k: to_mlmd_value(v)
            for k, v in (artifact.get("metadata") or {}).items()
            if k != "_kfp_workspace"  # 2.17.0 converter.go:122-126: a runtime flag, not stored
        }
        properties.setdefault("display_name", ("string", output_name))
        properties.setdefault("store_session_info", ("string", session_info(root, self.kfp_version)))
        with self._lock:
            artifact_id, self._next = self._next, self._next + 1
            self._artifacts[artifact_id] = {
                "uri": artifact["uri"],
                "type": artifact.get("type", {}),
                "custom_properties": properties,
            }
        return artifact_id

    def runtime_artifact(self, artifact_id: int) -> dict:
        """OutputArtifact.ToRuntimeArtifact: name = id, metadata from the properties, an empty instance schema."""
        stored = self._artifacts[artifact_id]
        return {
            "name": str(artifact_id),
            "uri": stored["uri"],
            "type": {"instanceSchema": ""},
            "metadata": {k: from_mlmd_value(v) for k, v in stored["custom_properties"].items()},
        }


# ------------------------------------------------------------------------------------------------ the pod
def _unshare_works() -> bool:
    try:
        return (
            subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, timeout=30
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


_POD_SCRIPT = (
    'mkdir -p /tmp/kfp_outputs 2>/dev/null; mount --bind "$0" /tmp/kfp_outputs '
    '|| { echo "twin: cannot mount the pod\'s /tmp/kfp_outputs" >&2; exit 97; }; exec "$@"'
)


def local_path_for_uri(uri: str, pod: Path) -> Optional[Path]:
    """launcher_v2.go LocalPathForURI (882-896), under the pod's folder; None for a scheme it does not know."""
    for prefix, folder in LAUNCHER_SCHEMES.items():
        if uri.startswith(prefix):
            return pod / folder / uri[len(prefix) :]
    return None


# ------------------------------------------------------------------------------------------------ the backend
class Backend:
    """One Kubeflow Pipelines installation: its ML Metadata and cache outlive a run, as a cluster's do."""

    def __init__(
        self,
        *,
        kfp_version: str = "2.5",
        publish_logs: Optional[bool] = None,
        launcher_default_root: Optional[str] = None,
        secrets: Optional[Mapping[str, Mapping[str, str]]] = None,
        env: Optional[Mapping[str, str]] = None,
        python_dir: Optional[str] = None,
        allow_local_root: bool = False,
        cache_enabled: bool = True,
        work_dir: Optional[Path] = None,
        log: Callable[[str], None] = print,
    ):
        if kfp_version not in KFP_VERSIONS:
            raise TwinError(f"kfp_version {kfp_version!r} is not one of {KFP_VERSIONS}")
        self.kfp_version = kfp_version
        # 2.5's and 2.17's manifests set PUBLISH_LOGS=true on the API server (2.17.0 manifests/kustomize/base/
        # pipeline/ml-pipeline-apiserver-deployment.yaml:114), which passes it to every driver; 2.4 has no logs
        self.publish_logs = (kfp_version != "2.4") if publish_logs is None else publish_logs
        # the API server's CacheEnabled (2.14+, #11831; 2.17.0 apiserver/common/config.go:193, default "true"):
        # false compiles every run's drivers with --cache_disabled, so no task reads or writes KFP's cache
        if not cache_enabled and not version_at_least(kfp_version, "2.14"):
            raise TwinError(f"KFP {kfp_version} has no global cache switch (CacheEnabled came with 2.14)")
        self.cache_enabled = cache_enabled
        if self.publish_logs and kfp_version == "2.4":
            raise TwinError("KFP 2.4's driver has no executor-logs output")
        self.launcher_default_root = launcher_default_root
        self.secrets = {k: dict(v) for k, v in (secrets or {}).items()}
        self.env = dict(os.environ if env is None else env)  # the image's environment
        self.env.setdefault("KFP_PROJECT_ROOT", str(PROJECT_ROOT))
        # `python` in the container command is the image's interpreter: here, this environment's
        self.env["PATH"] = os.pathsep.join([python_dir or str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.allow_local_root = allow_local_root
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="kfp-twin-"))
        self.log = log
        self.metadata = Metadata(kfp_version)
        self.cache: Dict[str, Dict[str, List[int]]] = {}  # fingerprint -> output key -> artifact ids
        self._cache_lock = threading.Lock()
        self.private_pods = _unshare_works()

    # ---- submission and the root DAG
    def pipeline_root(self, submitted: Optional[str]) -> str:
        root = (submitted or self.launcher_default_root or DEFAULT_PIPELINE_ROOT).rstrip("/")
        if not root.startswith(ROOT_SCHEMES):
            if self.allow_local_root and "://" not in root:
                return root
            raise TwinError(
                f"driver.RootDAG failed: parse bucket config failed: unsupported Cloud bucket: {root!r} "
                f"(the backend takes gs://, s3://, minio:// roots only)"
            )
        return root

    def run(
        self,
        package,
        *,
        pipeline_root: Optional[str] = None,
        parameters: Optional[Mapping[str, object]] = None,
        enable_caching: Optional[bool] = None,
        run_id: Optional[str] = None,
        targets: Optional[Iterable[str]] = None,
        timeout: float = 1800,
        parallel: int = 2,
    ) -> PipelineRun:
        """Submits and runs the package (or only what `targets` need); raises TwinError naming the first task
        that fails, as the run's first failed node."""
        spec = load_package(package)
        found = kfp_package_check.problems(spec, kfp_version=self.kfp_version)
        if found:  # the backend refuses such a package at submission, or fails it at once
            raise TwinError("Kubeflow Pipelines would not run this package:\n  " + "\n  ".join(found))
        values = self._parameters(spec, parameters or {})
        root = self.pipeline_root(pipeline_root)
        run_id = run_id or str(uuid.uuid4())
        run_root = f"{root}/{spec['pipelineInfo']['name']}/{run_id}"
        tasks = spec["root"]["dag"]["tasks"]
        for task in tasks.values():
            if enable_caching is not None:  # kfp/client/client.py _override_caching_options
                task["cachingOptions"] = {"enableCache": bool(enable_caching)}
            if task.get("triggerPolicy", {}).get("condition") or "iteratorPolicy" in task:
                raise TwinError("conditions and loops are not played by this twin")
        wanted = ancestors(tasks, targets) if targets else set(tasks)
        order = [t for t in task_order(tasks) if t in wanted]
        needs = {t: ancestors(tasks, [t]) - {t} for t in order}
        done: Dict[str, TaskRun] = {}
        running: Dict[concurrent.futures.Future, str] = {}
        parallel = parallel if self.private_pods else 1  # one shared /tmp/kfp_outputs: one task at a time
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            while len(done) < len(order):
                for task_name in order:
                    if (
                        task_name not in done
                        and task_name not in running.values()
                        and len(running) < parallel
                        and needs[task_name] <= set(done)
                    ):
                        running[
                            pool.submit(
                                self._task, spec, run_id, root, run_root, task_name, values, dict(done), timeout
                            )
                        ] = task_name
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    task_name = running.pop(future)
                    try:
                        done[task_name] = future.result()
                    except TwinError:
                        concurrent.futures.wait(running)  # tasks already started finish, as pods would
                        raise
        return PipelineRun(run_id, run_root, {t: done[t] for t in order})

    @staticmethod
    def _parameters(spec: dict, overrides: Mapping[str, object]) -> Dict[str, object]:
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TwinError(
                f"unknown pipeline parameter(s) {', '.join(sorted(unknown))} "
                f"(the package declares {', '.join(sorted(declared)) or 'none'})"
            )
        values = {}
        for name, definition in declared.items():
            if name in overrides:
                values[name] = overrides[name]
            elif "defaultValue" in definition:
                values[name] = definition["defaultValue"]
            elif not definition.get("isOptional"):
                raise TwinError(f"pipeline parameter {name!r} has no value and no default: pass it at submission")
        return values

    # ---- one task: driver, cache, launcher
    def _task(self, spec, run_id, root, run_root, task_name, values, done, timeout) -> TaskRun:
        task = spec["root"]["dag"]["tasks"][task_name]
        component = spec["components"][task["componentRef"]["name"]]
        executor_label = component["executorLabel"]
        container = spec["deploymentSpec"]["executors"][executor_label]["container"]
        inputs = {
            "parameterValues": self._task_parameters(spec, run_id, task_name, task, values),
            "artifacts": self._task_artifacts(task, done),
        }
        outputs_spec = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            outputs_spec["executor-logs"] = {"artifactType": {"schemaTitle": "system.Artifact"}}
        task_root = f"{run_root}/{task_name}/{uuid.uuid4()}"  # provisionOutputs: <run root>/<task>/<salt>
        new_rules = version_at_least(self.kfp_version, "2.14")
        outputs = {
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            # 2.14+ names each output after its key (2.17.0 driver.go:783-787); before, none
                            **({"name": name} if new_rules else {}),
                            "uri": f"{task_root}/{name}",
                            "type": d["artifactType"],
                            **({"metadata": d["metadata"]} if "metadata" in d else {}),
                        }
                    ]
                }
                for name, d in outputs_spec.items()
            },
            # 2.15+ puts the ExecutorOutput file under the task root's local path (2.17.0 driver.go:800-807);
            # before, the fixed /tmp/kfp_outputs/output_metadata.json
            "outputFile": f"{local_path_for_uri(task_root, Path('/'))}/output_metadata.json"
            if version_at_least(self.kfp_version, "2.15") and local_path_for_uri(task_root, Path("/")) is not None
            else OUTPUT_METADATA_FILEPATH,
        }
        fingerprint = None
        # driver/cache.go getFingerPrintsAndID: the task enables the cache and (2.14+) it is not off globally
        if task.get("cachingOptions", {}).get("enableCache") and self.cache_enabled:
            fingerprint = self._fingerprint(inputs, outputs, component, container)
            with self._cache_lock:
                hit = self.cache.get(fingerprint)
            if hit is not None:
                self.log(f"[kfp] {task_name}: cache hit, not run")
                cached = {k: [self.metadata.runtime_artifact(i) for i in ids] for k, ids in hit.items()}
                return TaskRun(task_name, "CACHED", 0.0, cached, "", {})
        if version_at_least(self.kfp_version, "2.17"):
            container = dict(container, **self._driver_resolved_args(task_name, container, inputs))
        executor_input = {"inputs": inputs, "outputs": outputs}
        env = self._pod_env(spec, executor_label, container)
        started = time.monotonic()
        recorded, log, downloaded, substituted = self._launch(
            task_name, component, container, executor_input, env, root, timeout
        )
        run = TaskRun(
            task_name,
            "COMPLETE",
            time.monotonic() - started,
            {k: [self.metadata.runtime_artifact(i) for i in ids] for k, ids in recorded.items()},
            log,
            substituted,
            downloaded,
        )
        if fingerprint is not None:
            with self._cache_lock:
                self.cache[fingerprint] = recorded
        return run

    def _task_parameters(self, spec, run_id, task_name, task, values) -> dict:
        resolved = {}
        for name, value in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in value:
                constant = value["runtimeValue"]["constant"]
                if constant in DRIVER_PLACEHOLDERS[self.kfp_version]:
                    constant = {
                        "{{$.pipeline_job_name}}": spec["pipelineInfo"]["name"],
                        "{{$.pipeline_job_resource_name}}": f"run-{run_id}",
                        "{{$.pipeline_job_uuid}}": run_id,
                        "{{$.pipeline_task_name}}": task_name,
                        "{{$.pipeline_task_uuid}}": str(abs(hash((run_id, task_name))) % 10**6),
                    }[constant]
                resolved[name] = constant
            elif "componentInputParameter" in value:
                source = value["componentInputParameter"]
                if source in values:
                    resolved[name] = values[source]
            else:
                raise TwinError(
                    f"task {task_name!r}: parameter {name!r}: only constants and pipeline parameters "
                    f"are played by this twin, not {sorted(value)}"
                )
        return resolved

    def _task_artifacts(self, task, done) -> dict:
        artifacts = {}
        for name, value in task.get("inputs", {}).get("artifacts", {}).items():
            source = value["taskOutputArtifact"]
            producer = done[source["producerTask"]]
            if source["outputArtifactKey"] not in producer.outputs:
                raise TwinError(
                    f"cannot find output artifact key {source['outputArtifactKey']!r} in producer task "
                    f"{source['producerTask']!r}"
                )
            artifacts[name] = {"artifacts": [dict(a) for a in producer.outputs[source["outputArtifactKey"]]]}
        return artifacts

    def _fingerprint(self, inputs: dict, outputs: dict, component: dict, container: dict) -> str:
        """cacheutils/cache.go GenerateCacheKey + GenerateFingerPrint (2.5.0 30-105, 2.17.0 151-231): sha256 of the
        key as JSON; the output artifacts as provisioned (executor-logs included) with the URI wiped; 2.17 adds
        the sorted PVC names (none here)."""
        key = {
            "inputArtifactNames": {
                k: {"artifactNames": [a["name"] for a in v["artifacts"]]} for k, v in inputs["artifacts"].items()
            },
            "inputParameterValues": inputs["parameterValues"],
            "outputArtifactsSpec": {
                k: {key: value for key, value in v["artifacts"][0].items() if key != "uri"}
                for k, v in outputs["artifacts"].items()
            },
            "outputParametersSpec": {
                k: d.get("parameterType", "")
                for k, d in component.get("outputDefinitions", {}).get("parameters", {}).items()
            },
            "containerSpec": {
                "image": container.get("image", ""),
                "cmdArgs": list(container.get("command", [])) + list(container.get("args", [])),
                **({"pvcNames": []} if version_at_least(self.kfp_version, "2.17") else {}),
            },
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _driver_resolved_args(self, task_name: str, container: dict, inputs: dict) -> dict:
        """2.17.0 driver/util.go:263-288 resolveContainerArgs (from initPodSpecPatch, driver.go:309-319): before
        the launcher runs, the driver replaces {{$.inputs.parameters['x']}} in the command and args with the
        values it resolved, which do not hold the component's defaults (the launcher adds those later,
        addDefaultParams): a placeholder whose value would come only from a default fails the task. An argument
        holding "$.outputs" is left whole for the launcher."""
        values = inputs["parameterValues"]
        resolved = {}
        for field in ("command", "args"):
            out = []
            for arg in container.get(field, []):
                if "$.outputs" in arg:
                    out.append(arg)
                    continue
                if arg.lstrip().startswith('{"IfPresent":'):
                    raise TwinError(f"task {task_name!r}: IfPresent arguments are not played by this twin")
                for name in DRIVER_ARG_PARAMETER.findall(arg):
                    if name not in values:
                        raise TwinError(
                            f"task {task_name!r} failed in its driver: failed to init podSpecPatch: failed to "
                            f"resolve container {field}: failed to resolve input parameters: parameter "
                            f"{name!r} not found in executor input (KFP 2.17's driver resolves it before the "
                            f"launcher adds the component's default)"
                        )
                out.append(DRIVER_ARG_PARAMETER.sub(lambda m: _driver_string(values[m.group(1)]), arg))
            resolved[field] = out
        return resolved

    def _pod_env(self, spec, executor_label, container) -> Dict[str, str]:
        env = dict(self.env)
        for var in container.get("env", []):  # driver.go:465
            env[var["name"]] = var.get("value", "")
        executor_config = (
            spec.get("_platform", {})
            .get("platforms", {})
            .get("kubernetes", {})
            .get("deploymentSpec", {})
            .get("executors", {})
            .get(executor_label, {})
        )
        for secret in executor_config.get("secretAsEnv", []):  # driver.go:893-920
            name = secret.get("secretName")
            if name not in self.secrets:
                raise TwinError(
                    f"the pod cannot start: secret {name!r} does not exist in the namespace "
                    f"(CreateContainerConfigError)"
                )
            for mapping in secret.get("keyToEnv", []):
                if mapping["secretKey"] not in self.secrets[name]:
                    raise TwinError(
                        f"the pod cannot start: secret {name!r} has no key {mapping['secretKey']!r} "
                        f"(CreateContainerConfigError)"
                    )
                env[mapping["envVar"]] = self.secrets[name][mapping["secretKey"]]
        return env

    def _launch(self, task_name, component, container, executor_input, env, root, timeout):
        pod = self.work_dir / f"{task_name}-{uuid.uuid4().hex[:8]}"
        (pod / "kfp_outputs").mkdir(parents=True)
        executor_input = json.loads(json.dumps(executor_input))
        logs = executor_input["outputs"]["artifacts"].get("executor-logs")
        if logs is not None and version_at_least(self.kfp_version, "2.17"):
            # 2.16.1+ qualifyExecutorLogsForRetry (2.17.0 launcher_v2.go:538-604): the retry index (KFP_RETRY_INDEX,
            # 0 on the first attempt) suffixes the logs' URI before any placeholder is compiled
            logs["artifacts"][0]["uri"] += "-" + env.get("KFP_RETRY_INDEX", "0")
        output_file = executor_input["outputs"]["outputFile"]
        if output_file != OUTPUT_METADATA_FILEPATH:  # 2.15+: under the task root's local path, in the pod
            executor_input["outputs"]["outputFile"] = str(pod / output_file.lstrip("/"))
        with_defaults = json.loads(json.dumps(executor_input))  # addDefaultParams
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in with_defaults["inputs"]["parameterValues"] and "defaultValue" in definition:
                with_defaults["inputs"]["parameterValues"][name] = definition["defaultValue"]
        placeholders = {"{{$}}": json.dumps(with_defaults, separators=(",", ":"))}
        for name, value in with_defaults["inputs"]["parameterValues"].items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = go_format_float(value)
            else:
                text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            placeholders[f"{{{{$.inputs.parameters['{name}']}}}}"] = text
        for side in ("inputs", "outputs"):
            for name, artifacts in with_defaults[side].get("artifacts", {}).items():
                uri = artifacts["artifacts"][0]["uri"]
                placeholders[f"{{{{$.{side}.artifacts['{name}'].uri}}}}"] = uri
                local = local_path_for_uri(uri, pod)
                if local is not None:
                    placeholders[f"{{{{$.{side}.artifacts['{name}'].path}}}}"] = str(local)
        downloaded = 0
        for name, artifacts in executor_input["inputs"]["artifacts"].items():  # downloadArtifacts
            uri = artifacts["artifacts"][0]["uri"]
            local = local_path_for_uri(uri, pod)
            if local is None:
                continue  # "does not have a recognized storage URI ... Skipping downloading"
            try:
                downloaded += object_store.download_prefix(
                    uri, local, under_prefix_only=version_at_least(self.kfp_version, "2.17")
                )
            except OSError as exc:
                raise TwinError(
                    f"task {task_name!r} failed before its command ran: failed to execute component: "
                    f"failed to download input artifact {name!r} from remote storage URI {uri!r}: "
                    f"{exc}"
                ) from None
        for name, artifacts in executor_input["outputs"]["artifacts"].items():  # prepareOutputFolders
            uri = artifacts["artifacts"][0]["uri"]
            local = local_path_for_uri(uri, pod)
            if local is None:
                if self.allow_local_root and "://" not in uri:
                    continue
                raise TwinError(
                    f"task {task_name!r} failed before its command ran: failed to generate local storage "
                    f"path for output artifact {name!r}: failed to generate local path for URI {uri}: "
                    f"unsupported storage scheme"
                )
            local.parent.mkdir(parents=True, exist_ok=True)
        argv = []
        for arg in list(container.get("command", [])) + list(container.get("args", [])):
            for key, value in placeholders.items():
                arg = arg.replace(key, value)
            argv.append(arg)
        self.log(f"[kfp] {task_name} running")
        returncode, log = self._execute(task_name, argv, env, pod, timeout)
        logs_artifact = executor_input["outputs"]["artifacts"].get("executor-logs")
        if logs_artifact is not None:  # getLogWriter: the launcher tees the command's output into the artifact
            local = local_path_for_uri(logs_artifact["artifacts"][0]["uri"], pod)
            if local is not None:
                local.write_text(log)
        failed = returncode != 0
        if failed and (logs_artifact is None or not version_at_least(self.kfp_version, "2.17")):
            raise TwinError(self._failure(task_name, returncode, log))
        output_file = (
            pod / "kfp_outputs" / "output_metadata.json"
            if executor_input["outputs"]["outputFile"] == OUTPUT_METADATA_FILEPATH
            else Path(executor_input["outputs"]["outputFile"])
        )
        written = json.loads(output_file.read_text()).get("artifacts", {}) if output_file.exists() else {}
        recorded = {}
        outputs = executor_input["outputs"]["artifacts"]
        if failed:  # 2.16+ (2.17.0 launcher_v2.go:786-790): a failed task still publishes its log, and only that
            outputs = {"executor-logs": logs_artifact}
        for key, artifacts in outputs.items():  # uploadOutputArtifacts
            artifact = json.loads(json.dumps(artifacts["artifacts"][0]))
            update = (written.get(key, {}).get("artifacts") or [{}])[0]  # mergeRuntimeArtifacts
            if key == "executor-logs" and version_at_least(self.kfp_version, "2.17"):
                update = {}  # launcher_v2.go:802-808: the launcher's own location stays
            if update.get("uri"):
                artifact["uri"] = update["uri"]
            if update.get("metadata"):
                artifact.setdefault("metadata", {}).update(update["metadata"])
            local = local_path_for_uri(artifact["uri"], pod)
            # an output the task wrote nothing to is skipped, not an error (launcher_v2.go uploadOutputArtifacts:
            # "We allow components to not produce output files"): Transform's statistics outputs, for one
            if local is not None and local.exists():
                object_store.upload_dir(local, artifact["uri"]) if local.is_dir() else object_store.write(
                    artifact["uri"], local.read_bytes()
                )
            try:
                recorded[key] = [self.metadata.record(key, artifact, root)]
            except TwinError as exc:
                raise TwinError(
                    f"task {task_name!r} failed: failed to publish results to ML Metadata: unable to "
                    f"produce MLMD artifact for output {key!r}: {exc}"
                ) from None
        if failed:
            raise TwinError(
                self._failure(task_name, returncode, log)
                + f"\n(its log was published: {outputs['executor-logs']['artifacts'][0]['uri']})"
            )
        self.log(f"[kfp] {task_name} done")
        shutil.rmtree(pod, ignore_errors=True)
        return recorded, log, downloaded, with_defaults

    def _execute(self, task_name: str, argv: List[str], env: Dict[str, str], pod: Path, timeout: float):
        if self.private_pods:
            argv = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _POD_SCRIPT,
                str(pod / "kfp_outputs"),
                *argv,
            ]
            cwd = pod
        else:  # one task at a time on the shared fixed path, cleared first
            shared = Path(OUTPUT_METADATA_FILEPATH).parent
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir(parents=True)
            cwd = pod
        try:
            proc = subprocess.run(argv, env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TwinError(f"task {task_name!r} ran past {timeout:.0f} s") from None
        log = proc.stdout + proc.stderr
        (self.work_dir / f"{task_name}.log").write_text(log)
        if not self.private_pods and Path(OUTPUT_METADATA_FILEPATH).exists():
            shutil.copy(OUTPUT_METADATA_FILEPATH, pod / "kfp_outputs" / "output_metadata.json")
        return proc.returncode, log

    @staticmethod
    def _failure(task_name: str, returncode: int, log: str) -> str:
        return f"task {task_name!r} failed (exit {returncode}); its last lines:\n" + "\n".join(
            log.strip().splitlines()[-15:]
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--pipeline-root", help="the run's pipeline_root (default: the launcher's, then minio://...)")
    parser.add_argument("--launcher-default-root", help="the kfp-launcher ConfigMap's defaultPipelineRoot")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--kfp-version", choices=KFP_VERSIONS, default="2.5")
    parser.add_argument("--enable-caching", action="store_true", default=None)
    parser.add_argument(
        "--allow-local-root",
        action="store_true",
        help="DEVIATION: accept a local pipeline root, which the backend refuses",
    )
    parser.add_argument(
        "--cache-disabled-globally",
        action="store_true",
        help="the API server's CacheEnabled=false (2.14+): no task reads or writes KFP's cache",
    )
    parser.add_argument("--run-id")
    parser.add_argument("--until", action="append", help="run only what this task needs (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = dict(p.split("=", 1) for p in args.param)
        backend = Backend(
            kfp_version=args.kfp_version,
            launcher_default_root=args.launcher_default_root,
            allow_local_root=args.allow_local_root,
            cache_enabled=not args.cache_disabled_globally,
        )
        run = backend.run(
            args.package,
            pipeline_root=args.pipeline_root,
            parameters=params,
            enable_caching=args.enable_caching,
            run_id=args.run_id,
            targets=args.until,
        )
    except (TwinError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"run {run.run_id}: {len(run.tasks)} task(s) under {run.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
