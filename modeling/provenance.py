"""Where a model came from, recorded by the Trainer beside the model: the code version and the packages."""

from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Dict

from core.layout import PROJECT_ROOT


def git_version(root: Path = PROJECT_ROOT) -> Dict[str, object]:
    """{"commit", "dirty"} of the checkout the code runs from; GIT_COMMIT (baked into an image) otherwise."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": os.environ.get("GIT_COMMIT", "unknown"), "dirty": None}


def installed_packages() -> Dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        location = str(getattr(dist, "_path", ""))
        # setuptools puts its vendored copies (setuptools/_vendor) on sys.path: they are not installed packages
        if name and "_vendor" not in location:
            found.setdefault(normalize(name), dist.version)  # first on sys.path wins, as for imports
    return dict(sorted(found.items()))


def normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
