"""Quiet commands: what a person sees of a command is the project's own lines; TensorFlow's and Google's start-up
notices (they look like errors and are not) only with VERBOSE=1.

    if __name__ == "__main__":      # first thing in a command's module, before anything imports TensorFlow
        from components import quiet
        quiet.quiet_command()

`quiet_command` is what `make run` does for its own process (pipelines/runners/run.py): TensorFlow's C++ log level 3
(no INFO, WARNING or ERROR lines from its native start-up: CUDA plugin registrations, TensorRT, CPU features) and
no FutureWarnings (google.api_core's Python-version notice). `quiet_native_startup` holds back only the known
start-up lines, for a long-running process (the server) whose later native messages must still show.
"""
import contextlib
import os
import sys
import tempfile
import warnings


def verbose() -> bool:
    return os.environ.get("VERBOSE", "") not in ("", "0")


def quiet_command() -> None:
    if verbose():
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", category=FutureWarning)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TF's and TFMA's Python deprecation notices


# What TensorFlow 2.16's C++ side writes to stderr on every start of a CPU-only process, and is not a problem:
# XLA registers its CUDA plugins a second time (tensorflow/tensorflow#62075: "Unable to register cuDNN factory"),
# there is no GPU or TensorRT, and the CPU could use more instructions.
STARTUP_NOISE = ("Unable to register cuFFT factory", "Unable to register cuDNN factory",
                 "Unable to register cuBLAS factory", "TF-TRT Warning: Could not find TensorRT",
                 "Could not find cuda drivers", "cpu_feature_guard.cc", "To enable the following instructions",
                 "rebuild TensorFlow with the appropriate compiler flags")


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
