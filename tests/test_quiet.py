"""Every command the README names shows only the project's own lines: none of TensorFlow's native start-up notices
(CUDA plugin registrations, TensorRT, CPU features) nor Google's Python-version FutureWarning, unless VERBOSE=1."""

import os
import subprocess
import sys

import pytest

from core.quiet import STARTUP_NOISE
from orchestration.config import PROJECT_ROOT

NOISE = STARTUP_NOISE + ("FutureWarning", "non-supported Python version")


def command(args, cfg=None, **env):
    full = dict(os.environ, **env)
    full.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it: unset
    full.pop("VERBOSE", None)
    if cfg is not None:
        full["OUTPUT_DIR"] = str(cfg.output_dir)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=full, capture_output=True, text=True, timeout=600
    )


def noise(proc):
    return [line for line in (proc.stdout + proc.stderr).splitlines() if any(n in line for n in NOISE)]


@pytest.mark.parametrize(
    "args",
    [
        ["metadata.lineage", "titanic"],
        ["metadata.results", "titanic"],
        ["metadata.skew", "titanic", "--logs", "/nonexistent/logs"],
    ],
)
def test_commands_on_a_run_print_no_start_up_noise(titanic_run, args):
    proc = command(args, titanic_run)
    assert proc.stdout.strip() or proc.stderr.strip()  # it did say something
    assert noise(proc) == [], noise(proc)


def test_the_client_and_the_fingerprint_print_no_start_up_noise(tmp_path):
    client = command(["serving.client", "titanic", "--features", "{}", "--port", "9"])
    assert client.returncode == 1 and "cannot reach" in client.stderr
    (tmp_path / "a.csv").write_text("x\n1\n")
    fingerprint = command(["runners.data_fingerprint", str(tmp_path)])
    assert fingerprint.returncode == 0 and fingerprint.stdout.strip().startswith("1-")
    assert noise(client) == [] and noise(fingerprint) == []


def test_verbose_shows_everything(tmp_path):
    (tmp_path / "a.csv").write_text("x\n1\n")
    proc = command(["runners.data_fingerprint", str(tmp_path)], VERBOSE="1")
    assert proc.returncode == 0 and noise(proc)  # the notices are there: the filter is what hid them
