"""The container command of every Kubeflow task: takes what open-source KFP's backend really sends, makes it what
TFX's entrypoint can read, checks what the task needs, runs TFX's own entrypoint, and leaves outputs the next
task's launcher can download.

    python -m runners.kfp_entrypoint --executor_class_path ... --json_serialized_invocation_args '{{$}}' \\
        --json_serialized_inputs_spec_args '...' [Beam arguments]

Design notes: docs/design-notes.md, runners/kfp_entrypoint.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import List, Optional, Tuple

from core import seams
from runners import data_fingerprint, object_store

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
OWN_PARAMETER_PREFIX = "kfp_"  # parameters the package adds for KFP's cache; never handed to TFX
DATA_FINGERPRINT = "kfp_data_fingerprint"
BACKEND_OUTPUT_TYPES = ("system.",)  # schema titles of outputs the backend adds to every task
WRITABLE_SCHEMES = ("gs", "s3")
ROOT_HINT = (
    "submit the run with pipeline_root='s3://<bucket>/<prefix>' (Kubeflow's MinIO speaks S3: "
    "s3://mlpipeline/v2/artifacts) or 'gs://<bucket>/<prefix>', or set defaultPipelineRoot in the "
    "kfp-launcher ConfigMap of the namespace"
)


class PreflightError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------------ what KFP sent
def _parameters(executor_input: dict) -> dict:
    inputs = executor_input.get("inputs", {})
    values = dict(inputs.get("parameterValues", {}))
    for name, value in inputs.get("parameters", {}).items():  # pipeline spec 2.0 spelling
        values.setdefault(name, next(iter(value.values()), None))
    return values


def _empty_type(type_spec: dict) -> bool:
    return not type_spec or not (
        type_spec.get("instanceSchema") or type_spec.get("schemaTitle") or type_spec.get("schemaUri")
    )


def repair(executor_input: dict, inputs_spec: Optional[dict]) -> Tuple[dict, dict, List[str]]:
    """(ExecutorInput for TFX, own parameters taken out, notes): empty input types from the package's inputs
    spec, backend-added `system.*` outputs and `kfp_` parameters removed."""
    fixed = json.loads(json.dumps(executor_input))
    notes = []
    declared = (inputs_spec or {}).get("artifacts", {})
    for name, artifact_list in fixed.get("inputs", {}).get("artifacts", {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if _empty_type(artifact.get("type", {})):
                if name not in declared:
                    raise PreflightError(
                        f"input artifact {name!r} arrived without a type and the package declares "
                        f"none for it (--json_serialized_inputs_spec_args); recompile with make "
                        f"kubeflow"
                    )
                artifact["type"] = declared[name]["artifactType"]
                notes.append(f"input {name}: type from the package (the backend sent an empty schema)")
    outputs = fixed.get("outputs", {}).get("artifacts", {})
    for name in list(outputs):
        titles = {a.get("type", {}).get("schemaTitle", "") for a in outputs[name].get("artifacts", [])}
        if any(t.startswith(BACKEND_OUTPUT_TYPES) for t in titles):
            del outputs[name]
            notes.append(f"output {name}: added by the backend ({', '.join(sorted(titles))}), left to the launcher")
    own = {}
    values = fixed.get("inputs", {}).get("parameterValues", {})
    for name in [n for n in values if n.startswith(OWN_PARAMETER_PREFIX)]:
        own[name] = values.pop(name)
    return fixed, own, notes


def output_uris(executor_input: dict) -> List[str]:
    return [
        a["uri"]
        for artifacts in executor_input.get("outputs", {}).get("artifacts", {}).values()
        for a in artifacts.get("artifacts", [])
        if a.get("uri")
    ]


def input_uris(executor_input: dict) -> List[str]:
    return [
        a["uri"]
        for artifacts in executor_input.get("inputs", {}).get("artifacts", {}).values()
        for a in artifacts.get("artifacts", [])
        if a.get("uri")
    ]


# ------------------------------------------------------------------------------------------------ checks
def prepare_filesystems(uris: List[str]) -> None:
    """Every URI the task touches must be on a file system TensorFlow (and Beam) can use, with credentials."""

    schemes = {u.split("://", 1)[0] for u in uris if "://" in u}
    for scheme in sorted(schemes):
        if scheme == "minio":
            root = next(u for u in uris if u.startswith("minio://"))
            raise PreflightError(
                f"the pipeline root is {root.split('/v2/artifacts')[0]}/v2/artifacts..., a minio:// "
                f"URI (the backend's default when a run names no root), which no TensorFlow file "
                f"system writes; {ROOT_HINT}"
            )
        if scheme not in WRITABLE_SCHEMES:
            raise PreflightError(
                f"{scheme}:// is not a file system this image writes (gs:// and s3:// are); {ROOT_HINT}"
            )
    if "s3" in schemes:
        os.environ.update(object_store.s3_environment())
        try:
            import tensorflow_io  # noqa: F401 - registers s3:// with TensorFlow 2.16, which has none of its own
        except ImportError:
            raise PreflightError(
                "s3:// needs tensorflow-io, which this image lacks (TensorFlow 2.16 has no S3 file "
                "system of its own): build the image from this project's Dockerfile"
            ) from None
    buckets = {}
    for uri in uris:
        scheme, bucket, _ = object_store.split(uri)
        if scheme in WRITABLE_SCHEMES:
            buckets.setdefault((scheme, bucket), uri)
    try:
        for uri in buckets.values():
            object_store.check_access(uri)
    except object_store.StoreError as exc:
        raise PreflightError(str(exc)) from None


def s3_for_beam_workers(beam_args: List[str], uris: List[str]) -> List[str]:
    """The Beam argument that registers s3:// with TensorFlow in Beam's SDK workers too: a Beam stage on Flink,
    Spark or Dataflow runs its DoFns (tf.Transform's analyzers writing SavedModels, TFMA loading the model) in
    worker processes that never import tensorflow_io themselves (tensorflow/tfx#3601); each worker imports its
    --beam_plugins at start (apache_beam/runners/worker/sdk_worker_main.py, _import_beam_plugins)."""
    if not any(u.startswith("s3://") for u in uris):
        return []
    plugins = [a.split("=", 1)[1] for a in beam_args if a.startswith("--beam_plugins=")]
    return [] if "tensorflow_io" in plugins else ["--beam_plugins=tensorflow_io"]


def check_executor(class_path: str) -> None:
    from tfx.utils import import_utils

    try:
        import_utils.import_class_by_path(class_path)
    except (ImportError, AttributeError) as exc:
        raise PreflightError(
            f"this image cannot load the executor {class_path} ({exc}); build the image from "
            f"this project's Dockerfile so that its code is installed"
        ) from None


def check_data(parameters: dict, own: dict) -> None:
    """ExampleGens only: the data root exists, every split's pattern matches a file, and the data fingerprint the
    run was submitted with is the one of the files there."""
    input_base = parameters.get("input_base")
    if input_base is None:
        return
    from tfx.dsl.io import fileio

    hint = "set the runtime parameter data-root to the folder that holds this dataset's files"
    if not input_base or not fileio.exists(input_base):
        raise PreflightError(f"data root {input_base!r} does not exist; {hint}")
    splits = json.loads(parameters.get("input_config") or "{}").get("splits", [])
    for split in splits:
        pattern = split.get("pattern", "")
        if "{" in pattern:  # a span/version placeholder: the ExampleGen driver resolves it
            continue
        if not fileio.glob(os.path.join(input_base, pattern)):
            expected = ", ".join(f"{s.get('name')}: {s.get('pattern')}" for s in splits)
            raise PreflightError(
                f"data root {input_base!r}: split {split.get('name')!r} expects "
                f"{pattern!r} there and finds nothing (expected {expected}); {hint}"
            )
    if DATA_FINGERPRINT in own:
        given, actual = own[DATA_FINGERPRINT], data_fingerprint.fingerprint(input_base)
        if given != actual:
            raise PreflightError(
                f"data-fingerprint {given!r} is not the fingerprint of {input_base!r} now ({actual!r}): the files "
                f"changed since it was computed, or it was never computed for them. KFP's cache keys ExampleGen "
                f"on it, so a stale one would reuse old examples: submit with the value of "
                f"`python -m runners.data_fingerprint {input_base}`"
            )


# ------------------------------------------------------------------------------------------------ the run
def _replace_arg(argv: List[str], flag: str, value: str) -> List[str]:
    out, i = [], 0
    while i < len(argv):
        if argv[i] == flag and i + 1 < len(argv):
            out += [flag, value]
            i += 2
        elif argv[i].startswith(flag + "="):
            out.append(f"{flag}={value}")
            i += 1
        else:
            out.append(argv[i])
            i += 1
    return out


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # see 6. in the module docstring


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args")
    known, beam_args = parser.parse_known_args(argv)
    try:
        try:
            executor_input = json.loads(known.json_serialized_invocation_args)
            inputs_spec = json.loads(known.json_serialized_inputs_spec_args or "null")
        except ValueError as exc:
            raise PreflightError(f"the task's ExecutorInput is not JSON ({exc})") from None
        fixed, own, notes = repair(executor_input, inputs_spec)
        for note in notes:
            print(f"[kfp] {note}", flush=True)
        prepare_filesystems(
            output_uris(fixed)
            + input_uris(fixed)
            + [v for v in _parameters(fixed).values() if isinstance(v, str) and "://" in v]
        )
        check_executor(known.executor_class_path)
        check_data(_parameters(fixed), own)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _exit(2)
    argv = _replace_arg(argv, "--json_serialized_invocation_args", json.dumps(fixed))

    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    # no tfx_ephemeral sdist built per Beam task where the workers are this image (core/seams.py)
    seams.no_tfx_ephemeral_package(beam_args)
    argv += s3_for_beam_workers(beam_args, output_uris(fixed) + input_uris(fixed))

    def run(parsed):
        try:
            tfx_entrypoint.main(parsed)

            for uri in output_uris(fixed):
                removed = object_store.delete_markers(uri)
                if removed:
                    print(f"[kfp] {uri}: {removed} directory marker(s) deleted", flush=True)
                swept = object_store.sweep_empty_folders(uri)
                if swept:
                    print(f"[kfp] {uri}: {swept} emptied folder(s) the store still listed deleted", flush=True)
        except SystemExit as exc:
            _exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException:  # noqa: BLE001 - printed in full, then the same exit as an uncaught exception
            traceback.print_exc()
            _exit(1)
        _exit(0)

    # TFX's own __main__ does app.run(main, flags_parser=_parse_flags): a seam (core/seams.py)
    app.run(run, argv=[tfx_entrypoint.__file__] + argv, flags_parser=seams.v2_entrypoint_flags())
    return 0


if __name__ == "__main__":
    sys.exit(main())
