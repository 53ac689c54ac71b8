"""Runs a compiled Kubeflow package here, playing the part of KFP's v2 driver and launcher (not Argo, not Kubernetes).

    python -m pipelines.runners.kfp_harness build/kubeflow/titanic.yaml --pipeline-root /tmp/kfp [--param data-root=...]

For each task of the package's DAG, in dependency order, it does what KFP's v2 backend does for a container task
and runs the container's exact `command` + `args` as a subprocess in this environment (standing in for the
image; `python` is this environment's interpreter, `KFP_PROJECT_ROOT` points at the checkout):

- driver (kubeflow/pipelines backend/src/v2/driver/driver.go): input parameters from the task's constants, from
  the pipeline's parameters (runtime config, else their defaults) and the component's own defaults
  (launcher_v2.go addDefaultParams); input artifacts are the producing tasks' output artifacts as recorded after
  they ran (`name` = the artifact's ML Metadata id, `uri`, `metadata` = its properties: driver's
  toRuntimeArtifact); output artifacts get URIs `<pipeline root>/<run id>/<task>/<output>` (provisionOutputs,
  GenerateOutputURI) and `outputFile` is the pod's /tmp/kfp_outputs/output_metadata.json (here one such folder per
  task, since each task here shares one file system instead of having its own pod).
- launcher (backend/src/v2/component/launcher_v2.go): placeholders in command and args are replaced
  (getPlaceholders: `{{$}}` is the ExecutorInput as protojson, plus the artifact uri/path and parameter
  placeholders), the output artifacts' parent folders are made (prepareOutputFolders), the program runs; then the
  ExecutorOutput file, if any, is read and each output artifact takes its `uri` and `metadata` from it
  (mergeRuntimeArtifacts) before it is recorded and handed downstream.

What it does not do: schedule pods, pull an image, move artifacts through an object store (URIs here are local
paths, which the launcher would leave as they are), run KFP's cache (every task executes), or run the
Vertex-only `lifecycle.preCacheCheck` hooks, which KFP's backend ignores too.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import threading
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import yaml

from pipelines.runners import kfp_package_check
from pipelines.config import PROJECT_ROOT


class HarnessError(RuntimeError):
    """The package cannot be run (KFP would refuse it) or a task failed; the message names the task."""


@dataclasses.dataclass
class TaskRun:
    name: str
    seconds: float
    outputs: Dict[str, List[dict]]  # output key -> RuntimeArtifacts as handed downstream (JSON form)
    log: str


@dataclasses.dataclass
class PipelineRun:
    run_id: str
    root: str
    tasks: Dict[str, TaskRun]

    def artifact(self, task: str, key: str) -> dict:
        return self.tasks[task].outputs[key][0]

    def metadata(self, task: str, key: str) -> dict:
        return self.artifact(task, key).get("metadata", {})


def load_package(path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def task_order(tasks: Mapping[str, dict]) -> List[str]:
    """Dependency order (explicit dependentTasks and artifact producers), ties by name, as one pod after another."""
    needs = {}
    for name, task in tasks.items():
        deps = set(task.get("dependentTasks", []))
        for value in task.get("inputs", {}).get("artifacts", {}).values():
            if "taskOutputArtifact" in value:
                deps.add(value["taskOutputArtifact"]["producerTask"])
        needs[name] = deps
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and needs[n] <= done)
        if not ready:
            raise HarnessError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


def ancestors(tasks: Mapping[str, dict], targets: Iterable[str]) -> set:
    keep, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        if name not in tasks:
            raise HarnessError(f"no task {name!r} in the package (tasks: {', '.join(sorted(tasks))})")
        keep.add(name)
        task = tasks[name]
        todo.extend(task.get("dependentTasks", []))
        todo.extend(v["taskOutputArtifact"]["producerTask"]
                    for v in task.get("inputs", {}).get("artifacts", {}).values() if "taskOutputArtifact" in v)
    return keep


def _runtime_artifact(type_spec: dict, uri: str, metadata: Optional[dict] = None, name: str = "") -> dict:
    artifact = {"type": type_spec, "uri": uri, "metadata": dict(metadata or {})}
    if name:
        artifact["name"] = name
    return artifact


def substitute(arguments: List[str], placeholders: Mapping[str, str]) -> List[str]:
    out = []
    for arg in arguments:
        for key, value in placeholders.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def placeholders_for(executor_input: dict) -> Dict[str, str]:
    """launcher_v2.go getPlaceholders, for local URIs (their .path is the URI itself)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    message = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    values = {"{{$}}": json_format.MessageToJson(message, indent=None)}
    for name, artifacts in executor_input["inputs"].get("artifacts", {}).items():
        if artifacts["artifacts"]:
            uri = artifacts["artifacts"][0]["uri"]
            values[f"{{{{$.inputs.artifacts['{name}'].uri}}}}"] = uri
            values[f"{{{{$.inputs.artifacts['{name}'].path}}}}"] = uri
    for name, artifacts in executor_input["outputs"].get("artifacts", {}).items():
        uri = artifacts["artifacts"][0]["uri"]
        values[f"{{{{$.outputs.artifacts['{name}'].uri}}}}"] = uri
        values[f"{{{{$.outputs.artifacts['{name}'].path}}}}"] = uri
    for name, value in executor_input["inputs"].get("parameterValues", {}).items():
        values[f"{{{{$.inputs.parameters['{name}']}}}}"] = value if isinstance(value, str) else json.dumps(value)
    return values


class Harness:
    def __init__(self, package, pipeline_root: Optional[str] = None, *, env: Optional[Mapping[str, str]] = None,
                 python_dir: Optional[str] = None, log: Callable[[str], None] = print):
        self.spec = load_package(package)
        found = kfp_package_check.problems(self.spec)
        if found:  # KFP refuses such a package at submission; so does the harness
            raise HarnessError("Kubeflow Pipelines would not run this package:\n  " + "\n  ".join(found))
        self.pipeline_root = (pipeline_root or self.spec.get("defaultPipelineRoot", "")).rstrip("/")
        if not self.pipeline_root or "://" in self.pipeline_root:
            raise HarnessError(f"the harness needs a local pipeline root, not {self.pipeline_root!r}")
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("KFP_PROJECT_ROOT", str(PROJECT_ROOT))
        # `python` in the container command is the image's interpreter: here, this environment's
        self.env["PATH"] = os.pathsep.join([python_dir or str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.log = log
        self._next_id = 1
        self._ids = threading.Lock()

    def _parameters(self, overrides: Mapping[str, object]) -> Dict[str, object]:
        declared = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise HarnessError(f"unknown pipeline parameter(s) {', '.join(sorted(unknown))} "
                               f"(the package declares {', '.join(sorted(declared)) or 'none'})")
        values = {}
        for name, definition in declared.items():
            if name in overrides:
                values[name] = overrides[name]
            elif "defaultValue" in definition:
                values[name] = definition["defaultValue"]
            elif not definition.get("isOptional"):
                raise HarnessError(f"pipeline parameter {name!r} has no value and no default")
        return values

    def _executor_input(self, run_root: str, task_name: str, task: dict, component: dict,
                        parameters: Mapping[str, object], done: Mapping[str, TaskRun], scratch: Path) -> dict:
        values = {}
        for name, value in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in value:
                values[name] = value["runtimeValue"]["constant"]
            elif "componentInputParameter" in value:
                values[name] = parameters[value["componentInputParameter"]]
            else:
                raise HarnessError(f"task {task_name!r}: parameter {name!r}: only constants and pipeline "
                                   f"parameters are supported by this harness, not {sorted(value)}")
        for name, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in values and "defaultValue" in definition:
                values[name] = definition["defaultValue"]  # launcher_v2.go addDefaultParams
        artifacts = {}
        for name, value in task.get("inputs", {}).get("artifacts", {}).items():
            source = value["taskOutputArtifact"]
            artifacts[name] = {"artifacts": done[source["producerTask"]].outputs[source["outputArtifactKey"]]}
        outputs = {
            name: {"artifacts": [_runtime_artifact(d["artifactType"], f"{run_root}/{task_name}/{name}",
                                                   d.get("metadata"))]}
            for name, d in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
        output_file = scratch / task_name / "tmp" / "kfp_outputs" / "output_metadata.json"
        return {"inputs": {"parameterValues": values, "artifacts": artifacts},
                "outputs": {"artifacts": outputs, "outputFile": str(output_file)}}

    def run(self, *, run_id: Optional[str] = None, parameters: Optional[Mapping[str, object]] = None,
            targets: Optional[Iterable[str]] = None, timeout: float = 1800, parallel: int = 2) -> PipelineRun:
        """Runs every task (or only those `targets` need), tasks whose inputs are ready side by side as Argo
        does (at most `parallel` at once); raises HarnessError naming the first task that fails."""
        run_id = run_id or time.strftime("run-%Y%m%d-%H%M%S")
        run_root = f"{self.pipeline_root}/{run_id}"
        values = self._parameters(parameters or {})
        tasks = self.spec["root"]["dag"]["tasks"]
        wanted = ancestors(tasks, targets) if targets else set(tasks)
        order = [t for t in task_order(tasks) if t in wanted]
        needs = {t: ancestors(tasks, [t]) - {t} for t in order}
        scratch = Path(self.pipeline_root) / ".harness" / run_id
        done: Dict[str, TaskRun] = {}
        running: Dict[concurrent.futures.Future, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            while len(done) < len(order):
                for task_name in order:
                    if (task_name not in done and task_name not in running.values() and len(running) < parallel
                            and needs[task_name] <= set(done)):
                        running[pool.submit(self._run_task, run_root, task_name, values, dict(done), scratch,
                                            timeout)] = task_name
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    task_name = running.pop(future)
                    try:
                        done[task_name] = future.result()
                    except HarnessError:
                        concurrent.futures.wait(running)  # tasks already started finish, as pods would
                        raise
        return PipelineRun(run_id, run_root, {t: done[t] for t in order})

    def _run_task(self, run_root: str, task_name: str, values: Mapping[str, object], done: Mapping[str, TaskRun],
                  scratch: Path, timeout: float) -> TaskRun:
        task = self.spec["root"]["dag"]["tasks"][task_name]
        if task.get("triggerPolicy", {}).get("condition"):
            raise HarnessError(f"task {task_name!r}: conditions are not supported by this harness")
        component = self.spec["components"][task["componentRef"]["name"]]
        container = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        executor_input = self._executor_input(run_root, task_name, task, component, values, done, scratch)
        for artifacts in executor_input["outputs"]["artifacts"].values():  # prepareOutputFolders
            Path(artifacts["artifacts"][0]["uri"]).parent.mkdir(parents=True, exist_ok=True)
        output_file = Path(executor_input["outputs"]["outputFile"])
        shutil.rmtree(output_file.parent, ignore_errors=True)
        output_file.parent.mkdir(parents=True)
        argv = substitute(container.get("command", []) + container.get("args", []), placeholders_for(executor_input))
        self.log(f"[kfp] {task_name} running")
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, env=self.env, cwd=str(output_file.parent), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"task {task_name!r} ran past {timeout:.0f} s") from None
        seconds = time.monotonic() - started
        log = proc.stdout + proc.stderr
        (scratch / task_name / "log.txt").write_text(log)
        if proc.returncode != 0:
            raise HarnessError(f"task {task_name!r} failed (exit {proc.returncode}); its last lines:\n"
                               + "\n".join(log.strip().splitlines()[-15:]))
        self.log(f"[kfp] {task_name} done in {seconds:.1f} s")
        return TaskRun(task_name, seconds, self._record_outputs(executor_input, output_file), log)

    def _record_outputs(self, executor_input: dict, output_file: Path) -> Dict[str, List[dict]]:
        """mergeRuntimeArtifacts + recording in ML Metadata: uri and metadata from the ExecutorOutput win; the
        recorded artifact's id becomes its name for the tasks downstream."""
        written = json.loads(output_file.read_text()).get("artifacts", {}) if output_file.exists() else {}
        recorded = {}
        for key, artifacts in executor_input["outputs"]["artifacts"].items():
            artifact = json.loads(json.dumps(artifacts["artifacts"][0]))
            updates = (written.get(key, {}).get("artifacts") or [{}])[0]
            if updates.get("uri"):
                artifact["uri"] = updates["uri"]
            artifact["metadata"].update(updates.get("metadata", {}))
            with self._ids:
                artifact["name"] = str(self._next_id)
                self._next_id += 1
            recorded[key] = [artifact]
        return recorded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--pipeline-root", help="local folder for the run's artifacts (default: the package's)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--run-id")
    parser.add_argument("--until", action="append", help="run only what this task needs (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = dict(p.split("=", 1) for p in args.param)
        run = Harness(args.package, args.pipeline_root).run(run_id=args.run_id, parameters=params, targets=args.until)
    except (HarnessError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"run {run.run_id}: {len(run.tasks)} task(s) under {run.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
