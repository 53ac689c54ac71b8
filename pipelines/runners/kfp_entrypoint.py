"""The container command of every Kubeflow task: checks what the task needs, then runs TFX's own entrypoint.

    python -m pipelines.runners.kfp_entrypoint --executor_class_path ... --json_serialized_invocation_args '{{$}}' ...

The arguments are exactly those of `tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor` (which
does the work). Before it, two checks turn the usual deep-in-TFX failures of a mis-configured run into one line:
- the executor class must import: an image built without this project (or an old one) says which module it
  lacks; an image without the project at all fails earlier still, with Python's own one line
  "No module named 'pipelines'", since this module is part of the project;
- an ExampleGen's `input_base` (the `data-root` runtime parameter) must exist and each split's pattern must
  match files there, so a wrong data root names itself and what was expected under it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


class PreflightError(RuntimeError):
    pass


def _parameters(invocation: str) -> dict:
    executor_input = json.loads(invocation)
    inputs = executor_input.get("inputs", {})
    values = dict(inputs.get("parameterValues", {}))
    for name, value in inputs.get("parameters", {}).items():  # pipeline spec 2.0 spelling
        values.setdefault(name, next(iter(value.values()), None))
    return values


def check_executor(class_path: str) -> None:
    from tfx.utils import import_utils

    try:
        import_utils.import_class_by_path(class_path)
    except (ImportError, AttributeError) as exc:
        raise PreflightError(f"this image cannot load the executor {class_path} ({exc}); build the image from "
                             f"this project's Dockerfile so that its code is installed") from None


def check_data(parameters: dict) -> None:
    """ExampleGens only: the data root exists and every split's pattern matches at least one file."""
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
            raise PreflightError(f"data root {input_base!r}: split {split.get('name')!r} expects "
                                 f"{pattern!r} there and finds nothing (expected {expected}); {hint}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument("--json_serialized_invocation_args", required=True)
    known, _ = parser.parse_known_args(argv)
    try:
        check_executor(known.executor_class_path)
        check_data(_parameters(known.json_serialized_invocation_args))
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2

    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    # TFX's own __main__ does exactly this; its flag parser is the one seam here that an upgrade could move.
    app.run(tfx_entrypoint.main, argv=[tfx_entrypoint.__file__] + argv,
            flags_parser=tfx_entrypoint._parse_flags)  # pylint: disable=protected-access
    return 0


if __name__ == "__main__":
    sys.exit(main())
