"""Fetch a dataset into the git-ignored data folder, checksum-verified and all-or-nothing.

Files come from a mirror folder laid out like the book's `data/` (DATASETS_MIRROR, default `../shared/datasets`
beside the project when it exists) or from the dataset's public URL. Everything is written into a temporary
folder next to the destination and renamed into place only once every file matched its manifest checksum, so
an interrupted or failed fetch never leaves a partial dataset where the pipelines look.

    python -m data.fetch titanic [cifar2 ...] [--dest DIR] [--mirror DIR]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, Optional

from core.layout import PROJECT_ROOT, sha256_file
from data.datasets import DATASETS, Dataset, FileEntry, get

DEFAULT_DEST = PROJECT_ROOT / "data" / "raw"
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A dataset file could not be obtained or did not match its manifest."""


def default_mirror() -> Optional[Path]:
    env = os.environ.get("DATASETS_MIRROR")
    if env is not None:
        return Path(env) if env else None  # DATASETS_MIRROR= (empty) forces downloads
    candidate = PROJECT_ROOT.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


def default_dest() -> Path:
    return Path(os.environ.get("DATA_DIR", DEFAULT_DEST))


def verify(folder: Path, files: Dict[str, FileEntry]) -> Optional[str]:
    """Returns None when every manifest file is in `folder` with the right bytes, else why not."""
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != entry.size:
            return f"{path} has {path.stat().st_size} bytes, expected {entry.size}"
        got = sha256_file(path)
        if got != entry.sha256:
            return f"{path} has sha256 {got}, expected {entry.sha256}"
    return None


def _copy_checked(src_open: Callable, where: str, dest: Path, entry: FileEntry) -> int:
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src_open() as src, open(dest, "wb") as out:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if digest.hexdigest() != entry.sha256 or size != entry.size:
        raise FetchError(
            f"checksum mismatch for {entry.path} (from {where}): got sha256 {digest.hexdigest()} "
            f"({size} bytes), expected {entry.sha256} ({entry.size} bytes)"
        )
    return size


def _fetch_one(dataset: Dataset, entry: FileEntry, tmp: Path, mirror: Optional[Path], base_url: Optional[str]) -> int:
    dest = tmp / entry.path
    tried = []
    if mirror is not None:
        src = mirror / dataset.name / entry.path
        if src.is_file():
            return _copy_checked(lambda: open(src, "rb"), str(src), dest, entry)
        tried.append(f"not in mirror {mirror / dataset.name}")
    if base_url:
        url = f"{base_url.rstrip('/')}/{entry.path}"
        for attempt in range(3):
            try:
                return _copy_checked(lambda: urllib.request.urlopen(url, timeout=60), url, dest, entry)
            except urllib.error.HTTPError as exc:
                # 4xx will not get better on retry
                if exc.code < 500 or attempt == 2:
                    tried.append(f"{url}: HTTP {exc.code}")
                    break
            except (urllib.error.URLError, OSError) as exc:
                if attempt == 2:
                    tried.append(f"{url}: {exc}")
                    break
            time.sleep(0.5 * (attempt + 1))
    else:
        tried.append(f"no public URL ({dataset.note})" if dataset.note else "no public URL")
    raise FetchError(f"cannot fetch {dataset.name}/{entry.path}: " + "; ".join(tried))


def fetch(
    name: str,
    dest_root: Optional[Path] = None,
    mirror: Optional[Path] = None,
    *,
    use_default_mirror: bool = True,
    dataset: Optional[Dataset] = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> Path:
    """Makes `dest_root/name` hold exactly-verified copies of the dataset's files; returns that folder."""
    dataset = dataset or get(name)
    files = dataset.files()
    dest_root = Path(dest_root or default_dest())
    if mirror is None and use_default_mirror:
        mirror = default_mirror()
    target = dest_root / dataset.name

    if target.is_dir():
        problem = verify(target, files)
        if problem is None:
            log(f"[data] {dataset.name}: {len(files)} files present and verified in {target}")
            return target
        # The folder is the user's too (span-N/ folders, edited files): a file that differs from the manifest is
        # never overwritten, only missing files are fetched, one by one, beside what is there.
        changed = [
            rel
            for rel in files
            if (target / rel).is_file()
            and ((target / rel).stat().st_size != files[rel].size or sha256_file(target / rel) != files[rel].sha256)
        ]
        if changed:
            raise FetchError(
                f"{target / changed[0]} differs from the {dataset.name} dataset's file (sha256 "
                f"{sha256_file(target / changed[0])[:12]}..., expected {files[changed[0]].sha256[:12]}...)"
                + (f" and {len(changed) - 1} more" if len(changed) > 1 else "")
                + ". It is not overwritten. To train on your own data, put it in a new span folder "
                f"({target}/span-N/, laid out as the dataset is; see the README); to go back to the book's "
                f"data, move the changed file(s) away and run again."
            )
        missing = {rel: e for rel, e in files.items() if not (target / rel).is_file()}
        log(f"[data] {dataset.name}: {len(missing)} of {len(files)} files missing in {target}; fetching them")
        _fetch_files(dataset, missing, target, dest_root, mirror, log, merge=True)
        log(f"[data] {dataset.name}: ready in {target}")
        return target

    _fetch_files(dataset, files, target, dest_root, mirror, log, merge=False)
    log(f"[data] {dataset.name}: ready in {target}")
    return target


def _fetch_files(
    dataset: Dataset,
    files: Dict[str, FileEntry],
    target: Path,
    dest_root: Path,
    mirror: Optional[Path],
    log: Callable[[str], None],
    merge: bool,
) -> None:
    """Fetches `files` into a temporary folder, every one checked, then moves them into `target`: the whole folder
    with one rename (a new dataset), or file by file beside what is there (`merge`)."""
    total_bytes = sum(e.size for e in files.values())
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dataset.name}-", dir=dest_root))
    source = f"mirror {mirror}" if mirror is not None else (dataset.base_url or "nowhere")
    log(f"[data] {dataset.name}: fetching {len(files)} files ({total_bytes / 1e6:.1f} MB) from {source}")
    try:
        done_files = done_bytes = 0
        last = time.monotonic()
        workers = 1 if len(files) < 8 else 8
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_fetch_one, dataset, e, tmp, mirror, dataset.base_url) for e in files.values()]
            try:
                for fut in concurrent.futures.as_completed(futures):
                    done_bytes += fut.result()
                    done_files += 1
                    if time.monotonic() - last > 2 or done_files == len(files):
                        last = time.monotonic()
                        log(
                            f"[data] {dataset.name}: {done_files}/{len(files)} files, "
                            f"{done_bytes / 1e6:.1f}/{total_bytes / 1e6:.1f} MB"
                        )
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        # Renames only, once every file matched: nothing half-fetched is ever in `target`.
        if merge:
            for rel in files:
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / rel, target / rel)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="dataset names (titanic, cifar2, imdb, covid) or 'all'")
    parser.add_argument("--dest", type=Path, default=None, help="destination root (default: $DATA_DIR or data/raw)")
    parser.add_argument(
        "--mirror", type=Path, default=None, help="mirror folder (default: $DATASETS_MIRROR or ../shared/datasets)"
    )
    args = parser.parse_args(argv)

    names = sorted(DATASETS) if args.names == ["all"] else args.names
    try:
        for name in names:
            fetch(name, args.dest, args.mirror)
    except (FetchError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
