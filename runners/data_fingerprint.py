"""A fingerprint of the files under a data root: what a Kubeflow run's ExampleGen is keyed on in KFP's cache.

KFP's cache key is a task's input parameters, input artifact ids, image and command
(kubeflow/pipelines backend/src/v2/cacheutils/cache.go, GenerateCacheKey); an ExampleGen has no input artifacts,
so new files under the same `data-root` would hit the old entry and reuse the old examples (TFX's own span and
fingerprint check, the `preCacheCheck` hook, is Vertex-only: the open-source backend never runs it). The packages
therefore give ExampleGen a `data-fingerprint` parameter, set at submission from this function; ExampleGen's
task checks it against the files it is about to read and refuses a stale one.

    python -m runners.data_fingerprint s3://bucket/data/titanic

The fingerprint covers every file under the root (relative path, size, modification time), through TensorFlow's
file systems, so it reads a listing, not the data: seconds even for cifar2's 12,000 images.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import List, Tuple

from runners import object_store


def listing(root: str) -> List[Tuple[str, int, int]]:
    """(path relative to root, bytes, modification time in ns) of every file under `root`, sorted."""
    from tfx.dsl.io import fileio

    root = root.rstrip("/")
    found = []
    for folder, _, files in fileio.walk(root):
        for name in files:
            path = f"{folder.rstrip('/')}/{name}"
            stat = fileio.stat(path)
            found.append((path[len(root) + 1 :], int(stat.length), int(stat.mtime_nsec)))
    return sorted(found)


def fingerprint(root: str) -> str:
    """sha256 over the listing, prefixed with the file count: "<n>-<first 16 hex digits>"."""
    from tfx.dsl.io import fileio

    if not fileio.exists(root):
        raise FileNotFoundError(f"data root {root!r} does not exist")
    files = listing(root)
    digest = hashlib.sha256("\n".join(f"{p}\t{size}\t{mtime}" for p, size, mtime in files).encode())
    return f"{len(files)}-{digest.hexdigest()[:16]}"


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m runners.data_fingerprint <data-root>", file=sys.stderr)
        return 2

    if args[0].startswith("s3://"):
        os.environ.update(object_store.s3_environment())
        import tensorflow_io  # noqa: F401 - registers s3:// with TensorFlow
    try:
        print(fingerprint(args[0]))
        code = 0
    except (FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    # With tensorflow-io loaded the interpreter's shutdown can abort (kfp_entrypoint's docstring, 6.): done here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
