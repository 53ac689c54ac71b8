"""`make verify-env`: every installed package against its pin in constraints.txt.

    python -m ops.verify_env [--constraints constraints.txt]

Exit 0 when every pinned package that is installed has its pinned version and nothing pinned is missing;
1 otherwise, listing each difference. Packages installed but not pinned (pip, setuptools, this project) are
listed for information.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, Tuple

from modeling.provenance import installed_packages, normalize
from orchestration.config import PROJECT_ROOT

_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)")
_TOOLING = {"pip", "setuptools", "wheel", "eat-tf2-tfx"}


def read_pins(path: Path) -> Dict[str, str]:
    pins = {}
    for line in Path(path).read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    if not pins:
        raise ValueError(f"{path}: no 'name==version' pins found")
    return pins


def compare(pins: Dict[str, str], installed: Dict[str, str]) -> Tuple[list, list, list]:
    differ = [(n, pins[n], installed[n]) for n in sorted(pins) if n in installed and installed[n] != pins[n]]
    missing = [(n, pins[n]) for n in sorted(pins) if n not in installed]
    unpinned = [(n, installed[n]) for n in sorted(installed) if n not in pins]
    return differ, missing, unpinned


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--constraints", type=Path, default=PROJECT_ROOT / "constraints.txt")
    args = parser.parse_args(argv)
    try:
        pins = read_pins(args.constraints)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    differ, missing, unpinned = compare(pins, installed_packages())
    for name, pinned, found in differ:
        print(f"DIFFERS  {name}: installed {found}, pinned {pinned}")
    for name, pinned in missing:
        print(f"MISSING  {name}: pinned {pinned}, not installed")
    extra = [f"{n} {v}" for n, v in unpinned if n not in _TOOLING]
    if extra:
        print(f"not pinned (installed by hand?): {', '.join(extra)}")
    ok = not differ and not missing
    print(f"{'OK' if ok else 'MISMATCH'}: {len(pins)} pins, {len(differ)} differ, {len(missing)} missing")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
