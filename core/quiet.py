"""Quiet commands: what a person sees of a command is the project's own lines; TensorFlow's and Google's start-up
notices (they look like errors and are not) only with VERBOSE=1.

A command is quiet by being named in COMMANDS: `python -m <command>` imports the command's package first, whose
`import core` calls quiet_if_command() before the command's module (and so TensorFlow) is imported. That is
TensorFlow's C++ log level 3 and no FutureWarnings (google.api_core's Python-version notice); the level the caller
had is kept for the runs a command starts (caller_environment). A long-running process whose later native messages
must still show (the server) uses quiet_native_startup around its imports instead.
"""

import contextlib
import os
import sys
import tempfile
import warnings
from typing import Optional


def verbose() -> bool:
    return os.environ.get("VERBOSE", "") not in ("", "0")


# The project's commands (python -m ...), each started quietly; serving.server and runners.kfp_entrypoint are not
# here on purpose (the server filters its start-up itself; a Kubeflow task's log keeps everything).
COMMANDS = (
    "runners.run",
    "runners.kubeflow",
    "runners.data_fingerprint",
    "metadata.results",
    "metadata.lineage",
    "metadata.skew",
    "ops.promote",
    "ops.deploy",
    "scaffold.new_pipeline",
    "serving.client",
    "pipelines.covid.forecast",
    "testing.kfp_twin",
)
_CALLER = {}


def started_as() -> Optional[str]:
    """The module this process was started with (`python [options] -m <module> ...`), or None."""
    argv = list(getattr(sys, "orig_argv", []))
    return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else None


def quiet_if_command() -> None:
    if started_as() in COMMANDS:
        quiet_command()


def caller_environment(env=None) -> dict:
    """`env` (default: a copy of this process's) with TF_CPP_MIN_LOG_LEVEL as the caller had it, for the
    processes a quiet command starts: their own messages stay the caller's choice."""
    env = dict(os.environ if env is None else env)
    if "TF_CPP_MIN_LOG_LEVEL" in _CALLER:
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)
        if _CALLER["TF_CPP_MIN_LOG_LEVEL"] is not None:
            env["TF_CPP_MIN_LOG_LEVEL"] = _CALLER["TF_CPP_MIN_LOG_LEVEL"]
    return env


def quiet_command() -> None:
    if verbose() or _CALLER:
        return
    _CALLER["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", category=FutureWarning)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TF's and TFMA's Python deprecation notices


# What TensorFlow 2.16's C++ side writes to stderr on every start of a CPU-only process, and is not a problem:
# XLA registers its CUDA plugins a second time (tensorflow/tensorflow#62075: "Unable to register cuDNN factory"),
# there is no GPU or TensorRT, and the CPU could use more instructions.
STARTUP_NOISE = (
    "Unable to register cuFFT factory",
    "Unable to register cuDNN factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
    "Could not find cuda drivers",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
)


@contextlib.contextmanager
def quiet_native_startup():
    """Holds back the native stderr lines of TensorFlow's startup (imports inside the block) that are only
    noise (STARTUP_NOISE); every other line is written out after the block. VERBOSE=1 shows everything."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(noise in line for noise in STARTUP_NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
