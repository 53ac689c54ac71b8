"""`make run`: fetch the data, then run a pipeline through the TFX CLI on the local engine, then report.

    python -m runners.run [titanic]

Exactly what a user would type by hand (README, "The TFX CLI by hand"):
    tfx pipeline create|update --engine local --pipeline_path pipelines/<name>/local_runner.py
    tfx run create --engine local --pipeline_name <name>
with the CLI's state kept in $LOCAL_HOME (default outputs/tfx_local) instead of ~/tfx/local.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

from core import keras_env, promotion, quiet
from core.data_errors import is_data_error
from core.processes import SERVICES_REFUSED
from data.fetch import FetchError, fetch
from metadata import results
from orchestration import config as config_lib
from pipelines import registry

DATA_REJECTED = -1000
SERVICES_NOT_STARTED = -1001  # run_via_cli: BEAM's services were refused before any component ran


def _step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.monotonic()


def _done(started: float) -> None:
    print(f"    ({time.monotonic() - started:.1f} s)", flush=True)


def tfx_env(cfg: config_lib.PipelineConfig) -> dict:
    env = quiet.caller_environment()  # this process is quiet (core/quiet.py); the runs keep the caller's level
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # the CLI runs `pip freeze`: this venv's pip
    env.setdefault("LOCAL_HOME", str(Path(cfg.output_dir) / "tfx_local"))
    keras_env.use_legacy_keras(env)
    return env


# The errors that mean "your data is wrong" (core/data_errors.py, DataError and whatever derives from it), raised
# by the gates and ExampleGens with a message that says what to fix: shown once more, last and alone, after whatever
# TFX printed around them. Found by class, not by a list of names: the last `module.Class: message` line whose class
# is a DataError (asking imports only that module, and only once a run has failed).
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*)\.([A-Za-z_]\w*): (.*)$")


def data_error(output: str) -> Optional[str]:
    """The last data error's message (its first line and the indented lines that continue it), or None."""

    lines = output.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        match = _ERROR_LINE.match(lines[i].strip())
        if match and match.group(2).endswith("Error") and is_data_error(match.group(1), match.group(2)):
            message = [match.group(3)]
            for line in lines[i + 1 :]:
                if not line.startswith("  ") or line.strip().startswith(("File ", "Traceback")):
                    break
                message.append(line.rstrip())
            return "\n".join(message)
    return None


def service_error(output: str) -> Optional[str]:
    """The line the local runner prints when BEAM's services cannot start (Java, an engine, a port, the workers'
    imports, FLINK_MASTER), which says what to set: shown alone, without TFX's traceback."""
    for line in reversed(output.splitlines()):
        head, _, rest = line.partition("] ")
        if line.startswith("[") and rest.startswith(SERVICES_REFUSED):
            return rest[len(SERVICES_REFUSED) :]
    return None


# The project's own lines ("[titanic] Transform done in 14.7 s", "[trainer] epoch 3/10 ...", "[data] ...") are
# what a person follows; TensorFlow's, Beam's and TFX's (CUDA factory registrations, deprecation notices,
# FutureWarnings, INFO logs) go to the run's log file, whose path is printed. VERBOSE=1 shows everything.
OWN_LINE = re.compile(r"^\[[\w.-]+\] ")


def _call_teed(argv, env, log_file: Path, verbose: bool) -> Tuple[int, str]:
    """Runs a command; every line goes to `log_file`, the project's own lines (all, with `verbose`) to the
    console as they come; the last 2000 lines are returned to look into after."""
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1
    )
    kept = collections.deque(maxlen=2000)
    with open(log_file, "a", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(line)
            # a refused service is said once, last, as the error (service_error)
            if verbose or (OWN_LINE.match(line) and SERVICES_REFUSED not in line):
                sys.stdout.write(line)
                sys.stdout.flush()
            kept.append(line)
    return proc.wait(), "".join(kept)


def log_path(name: str, cfg: config_lib.PipelineConfig) -> Path:
    return Path(cfg.pipeline_root(name)) / "logs" / time.strftime("run-%Y%m%d-%H%M%S.log")


def registered_as(local_home: Path, name: str) -> Optional[Tuple[str, str]]:
    """(runner file, pipeline root) the TFX CLI keeps for `name`, or None. For the local engine that is all
    `tfx pipeline create|update` keeps: it runs the file once to check it and writes pipeline_args.json (name,
    root, file path); `tfx run create` then runs the file anew (tfx/tools/cli/handler/beam_handler.py:
    create_pipeline, _save_pipeline, create_run). So when both are unchanged, an update is a second start of
    TensorFlow that changes nothing, and is skipped."""
    try:
        args = json.loads((local_home / name / "pipeline_args.json").read_text())
        return os.path.realpath(args["pipeline_dsl_path"]), os.path.realpath(args["pipeline_root"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_via_cli(
    name: str, cfg: config_lib.PipelineConfig, log_file: Optional[Path] = None, verbose: Optional[bool] = None
) -> int:
    env = tfx_env(cfg)
    verbose = quiet.verbose() if verbose is None else verbose
    log_file = log_file or log_path(name, cfg)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"    (TensorFlow's, Beam's and TFX's own messages: {log_file}; VERBOSE=1 shows them here)", flush=True)
    tfx_bin = str(Path(sys.executable).parent / "tfx")
    runner = str(registry.runner_path(name))
    exists = (Path(env["LOCAL_HOME"]) / name).is_dir()
    if exists and registered_as(Path(env["LOCAL_HOME"]), name) == (
        os.path.realpath(runner),
        os.path.realpath(cfg.pipeline_root(name)),
    ):
        print(
            f"==> tfx pipeline update: skipped, the CLI already has {name} from {runner} with this pipeline "
            f"root (all it keeps; `tfx run create` runs the file anew)",
            flush=True,
        )
    else:
        started = _step(f"tfx pipeline {'update' if exists else 'create'} ({runner})")
        rc, output = _call_teed(
            [tfx_bin, "pipeline", "update" if exists else "create", "--engine", "local", "--pipeline_path", runner],
            env,
            log_file,
            verbose,
        )
        if rc != 0:
            print("".join(output.splitlines(keepends=True)[-30:]), file=sys.stderr)
            return rc
        _done(started)
    started = _step(f"tfx run create --pipeline_name {name}")
    rc, output = _call_teed(
        [tfx_bin, "run", "create", "--engine", "local", "--pipeline_name", name], env, log_file, verbose
    )
    _done(started)
    if rc != 0:
        refused = service_error(output)
        if refused:
            print(f"\nerror: {SERVICES_REFUSED}{refused}", file=sys.stderr, flush=True)
            return SERVICES_NOT_STARTED
        message = data_error(output)
        if message:
            print(
                f"\nerror: the {name} data was not accepted; nothing was trained or pushed:\n{message}",
                file=sys.stderr,
                flush=True,
            )
            return DATA_REJECTED
        if not verbose:  # what went wrong, from the log (all of it is in the file)
            print("".join(output.splitlines(keepends=True)[-40:]), file=sys.stderr)
    return rc


def _labels_line(pipeline: str, cfg) -> str:
    """Which serving label points where (core/promotion.py), or that the newest version serves."""

    root = Path(cfg.serving_root(pipeline)).parent
    try:
        labels = promotion.labels_of(root, pipeline)
    except ValueError as exc:  # a model config the server would refuse too
        return f"  serving labels unreadable: {exc}"
    if not labels:
        return "  serving labels none: the newest pushed version serves (PUSH_LABEL=canary to serve beside it)"
    return (
        "  serving labels "
        + ", ".join(f"{k} -> {v}" for k, v in sorted(labels.items()))
        + f"  ({promotion.config_path(root)}; make promote / make rollback)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default="titanic", choices=registry.PIPELINES)
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="make retrain: the data must hold span-N folders; says which span the run ingests",
    )
    args = parser.parse_args(argv)
    try:
        cfg = config_lib.from_env()
    except config_lib.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = registry.get_spec(args.pipeline)
    total = time.monotonic()

    own_data = cfg.data_root or spec.data_root
    if own_data:
        # the user's own folder: read where it is, never copied or checked against a manifest (lineage records
        # the sha256 of every file the run read)
        where = "DATA_ROOT" if cfg.data_root else f"pipelines/{spec.name}/spec.py"
        print(f"\n==> data: {own_data} ({where}, read as is)", flush=True)
        if not Path(own_data).is_dir():
            print(f"error: the data folder {own_data} (from {where}) is not a folder", file=sys.stderr)
            return 1
    else:
        started = _step(f"data: {spec.dataset}")
        try:
            fetch(spec.dataset, cfg.data_dir)
        except (FetchError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        _done(started)

    if args.retrain:
        folder = Path(own_data) if own_data else cfg.dataset_dir(spec.dataset)
        spans = sorted(
            (int(p.name[5:]) for p in folder.iterdir() if p.is_dir() and p.name[:5] == "span-" and p.name[5:].isdigit())
            if folder.is_dir()
            else []
        )
        if not spans:
            print(
                f"error: nothing to retrain on: {folder} holds no span-N folders; put the new batch of data in "
                f"{folder}/span-N/ with the same files as the dataset (docs/retraining-drift.md)",
                file=sys.stderr,
            )
            return 1
        print(
            f"==> retraining on span {spans[-1]} of {folder} (spans there: {', '.join(map(str, spans))}); the "
            f"model is judged against the served one and pushed only if it passes",
            flush=True,
        )

    log_file = log_path(args.pipeline, cfg)
    rc = run_via_cli(args.pipeline, cfg, log_file)
    if rc == DATA_REJECTED:
        return 1
    if rc == SERVICES_NOT_STARTED:
        return 2  # nothing ran: the line above says what to set
    if rc != 0:
        print(
            f"\nerror: the {args.pipeline} pipeline run failed (exit {rc}); the cause is printed above, the "
            f"whole output is in {log_file}. Nothing was pushed by the failed run.",
            file=sys.stderr,
        )
        return rc
    print()
    print(results.format_result(results.last_run(args.pipeline, cfg)))
    print(_labels_line(args.pipeline, cfg))
    print(f"\n(total {time.monotonic() - total:.1f} s; outputs under {cfg.output_dir}; log {log_file})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
