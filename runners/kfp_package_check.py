"""What open-source Kubeflow Pipelines would refuse, or fail on, in a compiled package: checked before it leaves.

    problems(spec_dict, forbidden_paths) -> ["task 'X': ...", ...]     (empty: the package is fine)

1. Executor kinds: KFP's v2 backend implements `container` and `importer` executors only; any other kind (a TFX
   `Resolver` compiles to `resolver`, which only Vertex AI runs) fails the whole run at submission
   (kubeflow/pipelines backend/src/v2/compiler/visitor.go: "non-container and non-importer executor not
   implemented").
2. Placeholders: in a container's command and args, KFP's launcher substitutes only `{{$}}` and the input/output
   artifact `.uri`/`.path`, input parameter and output parameter `.output_file` placeholders of the component's
   own inputs and outputs (backend/src/v2/component/launcher_v2.go, getPlaceholders 736-820); in a task's
   constant parameters, KFP 2.5's driver replaces a constant that is exactly one of five job and task
   placeholders (driver/driver.go:1640-1655) and 2.4's none; `{{$.pipeline_root}}` is replaced by neither.
   Anything else reaches the program as literal text. The `kfp_` parameters the package adds for KFP's cache are
   consumed by the entrypoint (runners/kfp_entrypoint.py), where literal text is harmless.
3. References: a task's `componentInputParameter` must be a pipeline parameter (the run's runtime config sets
   it, or its default does), a `taskOutputArtifact` an output of a task that exists.
4. Leaks: no path of the machine that compiled it (the checkout) may appear: it does not exist in the image.
5. KFP 2.17's driver resolves `{{$.inputs.parameters['x']}}` in the command and args itself, before the launcher
   adds the component's defaults (driver/util.go:263-288, called from initPodSpecPatch, driver.go:309-319): a
   placeholder for a parameter the task does not set fails the task there, though 2.4 and 2.5 use the default.
6. The Kubernetes platform spec (a second YAML document, kfp-kubernetes' format) must parse as KFP's PlatformSpec
   and name executors that exist.
"""

from __future__ import annotations

import re
from typing import Iterable, List

PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}|\{\{[^}]*\}\}")
# replaced by KFP's driver in a task's constant parameters, when the constant is exactly one of them
DRIVER_PLACEHOLDERS = {
    "2.4": set(),
    "2.5": {
        "{{$.pipeline_job_name}}",
        "{{$.pipeline_job_resource_name}}",
        "{{$.pipeline_job_uuid}}",
        "{{$.pipeline_task_name}}",
        "{{$.pipeline_task_uuid}}",
    },
    # 2.17.0 driver/resolve.go:433-447
    "2.17": {
        "{{$.pipeline_job_name}}",
        "{{$.pipeline_job_resource_name}}",
        "{{$.pipeline_job_uuid}}",
        "{{$.pipeline_task_name}}",
        "{{$.pipeline_task_uuid}}",
        "{{$.pipeline_job_create_time_utc}}",
        "{{$.pipeline_job_schedule_time_utc}}",
    },
}
KFP_VERSIONS = tuple(DRIVER_PLACEHOLDERS)  # the backends the packages run against (by testing/kfp_twin.py)
# 2.17.0 driver/util.go:45: what its driver resolves in a container's command and args, before the launcher
INPUT_PARAMETER = re.compile(r"\{\{\$\.inputs\.parameters\['(.+?)']}}")
OWN_PARAMETER_PREFIX = "kfp_"
IMPLEMENTED_EXECUTORS = ("container", "importer")


def launcher_placeholders(component: dict) -> set:
    """The placeholders KFP's launcher substitutes in this component's container command and args."""
    inputs, outputs = component.get("inputDefinitions", {}), component.get("outputDefinitions", {})
    allowed = {"{{$}}"}
    for name in inputs.get("artifacts", {}):
        allowed |= {f"{{{{$.inputs.artifacts['{name}'].uri}}}}", f"{{{{$.inputs.artifacts['{name}'].path}}}}"}
    for name in inputs.get("parameters", {}):
        allowed.add(f"{{{{$.inputs.parameters['{name}']}}}}")
    for name in outputs.get("artifacts", {}):
        allowed |= {f"{{{{$.outputs.artifacts['{name}'].uri}}}}", f"{{{{$.outputs.artifacts['{name}'].path}}}}"}
    for name in outputs.get("parameters", {}):
        allowed.add(f"{{{{$.outputs.parameters['{name}'].output_file}}}}")
    return allowed


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def problems(spec: dict, forbidden_paths: Iterable[str] = (), kfp_version: str = "2.5") -> List[str]:
    """Everything the backend of `kfp_version` would refuse or fail on; `spec["_platform"]` is the platform
    spec document, when the package has one."""
    found: List[str] = []
    if kfp_version not in DRIVER_PLACEHOLDERS:
        return [
            f"KFP {kfp_version}: the packages are run against open-source KFP {', '.join(KFP_VERSIONS)} only "
            f"(by the backend's twin, testing/kfp_twin.py); compile for one of them"
        ]
    resolved = DRIVER_PLACEHOLDERS[kfp_version]
    components = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    root = spec.get("root", {})
    tasks = root.get("dag", {}).get("tasks", {})
    pipeline_parameters = root.get("inputDefinitions", {}).get("parameters", {})

    for task_name, task in sorted(tasks.items()):
        ref = task.get("componentRef", {}).get("name")
        component = components.get(ref)
        if component is None:
            found.append(f"task {task_name!r}: component {ref!r} is not defined")
            continue
        label = component.get("executorLabel")
        executor = executors.get(label)
        if executor is None:
            found.append(f"task {task_name!r}: executor {label!r} is not in the deployment spec")
            continue
        kinds = set(executor) - {"lifecycle"}
        unsupported = kinds - set(IMPLEMENTED_EXECUTORS)
        if unsupported:
            found.append(
                f"task {task_name!r}: executor {label!r} is of kind {', '.join(sorted(unsupported))}, "
                f"which open-source Kubeflow Pipelines does not implement (only container and importer)"
            )
        container = executor.get("container", {})
        allowed = launcher_placeholders(component)
        for text in _strings([container.get("command", []), container.get("args", [])]):
            for placeholder in PLACEHOLDER.findall(text):
                if placeholder not in allowed:
                    found.append(
                        f"task {task_name!r}: container argument placeholder {placeholder} is resolved "
                        f"by neither KFP's launcher nor the runtime config"
                    )
        if kfp_version == "2.17":
            set_by_task = set(task.get("inputs", {}).get("parameters", {}))
            for text in _strings([container.get("command", []), container.get("args", [])]):
                if "$.outputs" in text:
                    continue  # left whole for the launcher (util.go:266-271)
                for name in INPUT_PARAMETER.findall(text):
                    if name not in set_by_task:
                        found.append(
                            f"task {task_name!r}: KFP 2.17's driver resolves {{{{$.inputs.parameters['{name}']}}}} "
                            f"in the container's arguments before the component's default is added, and the "
                            f"task does not set {name!r}: the driver fails (driver/util.go:263-288)"
                        )
        inputs = task.get("inputs", {})
        for name, value in sorted(inputs.get("parameters", {}).items()):
            if "componentInputParameter" in value and value["componentInputParameter"] not in pipeline_parameters:
                found.append(
                    f"task {task_name!r}: parameter {name!r} reads pipeline parameter "
                    f"{value['componentInputParameter']!r}, which the pipeline does not declare"
                )
            constant = value.get("runtimeValue", {}).get("constant")
            if name.startswith(OWN_PARAMETER_PREFIX) or constant in resolved:
                continue
            for text in _strings(value.get("runtimeValue", {})):
                for placeholder in PLACEHOLDER.findall(text):
                    found.append(
                        f"task {task_name!r}: parameter {name!r} holds placeholder {placeholder}, "
                        f"which KFP {kfp_version}'s driver does not replace (it replaces only a constant "
                        f"that is exactly one of {sorted(resolved) or 'none'})"
                    )
        for name, value in sorted(inputs.get("artifacts", {}).items()):
            source = value.get("taskOutputArtifact")
            if source is None:
                continue
            producer = tasks.get(source.get("producerTask"))
            outputs = (
                {}
                if producer is None
                else components.get(producer.get("componentRef", {}).get("name"), {})
                .get("outputDefinitions", {})
                .get("artifacts", {})
            )
            if source.get("outputArtifactKey") not in outputs:
                found.append(
                    f"task {task_name!r}: input artifact {name!r} comes from "
                    f"{source.get('producerTask')}.{source.get('outputArtifactKey')}, which does not exist"
                )
    platform = spec.get("_platform") or {}
    if platform:
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2

        try:
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
        except json_format.ParseError as exc:
            found.append(f"the platform spec does not parse as KFP's PlatformSpec: {exc}")
        named = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        for label in sorted(set(named) - set(executors)):
            found.append(f"the platform spec configures executor {label!r}, which the package does not have")
    text = "\n".join(_strings({k: v for k, v in spec.items() if k != "_platform"}))
    for path in forbidden_paths:
        if path and path in text:
            found.append(f"the package holds the path {path!r} of the machine that compiled it")
    return found
