"""scripts/find-python: what `make` uses to pick the interpreter for .venv."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "find-python"


def find(env):
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_finds_a_310_or_39_interpreter():
    proc = find(dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    version = subprocess.run(
        [proc.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    assert version in ("(3, 10)", "(3, 9)")


def test_honours_python_and_says_when_it_is_unusable(tmp_path):
    proc = find(dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0 and Path(proc.stdout.strip()).resolve() == Path(sys.executable).resolve()
    proc = find(dict(os.environ, PYTHON=str(tmp_path / "no-python")))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: PYTHON={tmp_path / 'no-python'} is not a working Python 3.10/3.9 (with venv); "
        "unset it or point it at one"
    ]


@pytest.mark.skipif(
    any(
        Path(p).exists()
        for p in ("/usr/bin/python3.10", "/usr/bin/python3.9", "/usr/local/bin/python3.10", "/usr/local/bin/python3.9")
    ),
    reason="this machine has a system Python 3.10/3.9, so 'none found' cannot be staged",
)
def test_none_found_is_one_line_saying_what_to_install(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname"):
        (bin_dir / tool).symlink_to(
            subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        )
    (bin_dir / "python3").symlink_to("/bin/false")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    proc = subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Python 3.10 or 3.9 found") and "install" in lines[0]
