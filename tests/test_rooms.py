"""The rooms (docs/layout.md) keep their shape: imports only point down a layer (import-linter's layers contract in
pyproject.toml), no project import hides inside a function unless it is a heavy one and says so, and the code
passes the configured linter and formatter (ruff)."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROOMS = re.findall(
    r'"(\w+)"',
    re.search(r"^root_packages = \[([^\]]*)\]", (PROJECT_ROOT / "pyproject.toml").read_text(), re.M).group(1),
)
# a function-local import of a project module is allowed only with a comment, on it or just above, that says why
# it is heavy
HEAVY = re.compile(r"#.*\bheavy\b")


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: make venv installs the dev extra (setup.py)")
    return str(path)


def test_every_room_imports_only_the_rooms_below_it():
    proc = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_the_rooms_are_the_packages_and_each_is_in_the_layout_doc():
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(ROOMS), "a top-level package that pyproject.toml's contract does not name (or the reverse)"
    layout = (PROJECT_ROOT / "docs" / "layout.md").read_text()
    assert [room for room in ROOMS if f"`{room}/`" not in layout] == []


def local_project_imports(path: Path):
    """(line, statement) of each import of a project module inside a function, without a comment saying why."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0:
                names = [inner.module or ""]
            else:
                continue
            if any(name.split(".")[0] in ROOMS for name in names):
                near = lines[max(inner.lineno - 4, 0) : inner.lineno]
                if not any(HEAVY.search(line) for line in near):
                    found.append((inner.lineno, lines[inner.lineno - 1].strip()))
    return found


def test_no_project_import_hides_in_a_function_unless_it_is_heavy_and_says_so():
    found = {
        str(path.relative_to(PROJECT_ROOT)): hits
        for room in ROOMS
        for path in sorted((PROJECT_ROOT / room).rglob("*.py"))
        if (hits := local_project_imports(path))
    }
    assert found == {}


def test_the_check_finds_a_hidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from core import layout\n    return layout\n\n"
        "def g():\n    from serving import inference  # heavy: TensorFlow\n    return inference\n"
    )
    assert local_project_imports(sample) == [(2, "from core import layout")]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_the_code_passes_ruff(args):
    proc = subprocess.run([_tool("ruff"), *args], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
