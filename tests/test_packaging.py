"""The project as a package: `pip install` into a fresh venv, under constraints.txt, gives modules that import.

This is what the Kubeflow image does (the runtime parts, without the tests' `dev` extra), so a module importing
something setup.py does not declare, or a data file left out of the package, fails here rather than in a
container. It is slow (a full TFX install, a few minutes from the package cache) and it is the only test of it.
"""

import re
import subprocess
import sys

import pytest

from orchestration.config import PROJECT_ROOT

pytestmark = pytest.mark.slow  # the longer tier's: run it when setup.py, constraints.txt or the Dockerfile change

IMPORT_ALL = r"""
import importlib, importlib.util, pkgutil, sys
from pathlib import Path
names = []
for package in ROOMS:
    module = importlib.import_module(package)
    names.append(package)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not only the first
        failed[name] = f"{type(exc).__name__}: {exc}"
import components
print("FROM", Path(components.__file__).resolve().parent.parent)
print("MODULES", len(names))
print("FAILED", failed)
print("TESTING", importlib.util.find_spec("testing") is not None)
"""


def test_a_fresh_venv_installs_the_runtime_parts_and_imports_every_module(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(PROJECT_ROOT / "constraints.txt"),
            f"{PROJECT_ROOT}[serving,spark]",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    # from outside the checkout, so every import comes from the installed package
    rooms = re.search(r"^ROOMS = (\([^)]*\))", (PROJECT_ROOT / "setup.py").read_text(), re.M).group(1)
    proc = subprocess.run(
        [str(python), "-c", f"ROOMS = {rooms}\n" + IMPORT_ALL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(
        line.split(" ", 1)
        for line in proc.stdout.splitlines()
        if line.split(" ", 1)[0] in ("FROM", "MODULES", "FAILED", "TESTING")
    )
    assert out["FAILED"] == "{}", out["FAILED"]
    assert out["TESTING"] == "False"  # the test doubles are not installed
    assert int(out["MODULES"]) >= 50
    installed = out["FROM"]
    assert "site-packages" in installed and str(PROJECT_ROOT) not in installed
    # the package's data files came along
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "data" / "manifests" / "titanic.tsv").is_file()
    assert (site / "pipelines" / "titanic" / "schema.pbtxt").is_file()
    # the tests' tools stay out of the runtime install
    assert subprocess.run([str(python), "-c", "import pytest"], capture_output=True).returncode != 0
