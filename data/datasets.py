"""The book's four datasets: where each comes from and what its files must be.

The per-file checksums live in `manifests/<name>.tsv` (relative path, size, sha256), so a corrupt or
truncated file is caught by name, whichever way it arrived.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Optional

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"

_BOOK_RAW = "https://raw.githubusercontent.com/lyhue1991/eat_tensorflow2_in_30_days/master/data"


@dataclasses.dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the dataset folder, '/'-separated
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    # Public folder the files are downloaded from (file path appended), or None where no byte-identical
    # public copy exists and only a mirror folder can provide the files.
    base_url: Optional[str]
    note: str = ""
    manifest_path: Optional[Path] = None

    def files(self) -> Dict[str, FileEntry]:
        path = self.manifest_path or MANIFEST_DIR / f"{self.name}.tsv"
        return read_manifest(path)


def read_manifest(path: Path) -> Dict[str, FileEntry]:
    entries: Dict[str, FileEntry] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'path<TAB>size<TAB>sha256', got {line!r}")
        rel, size, digest = parts
        entries[rel] = FileEntry(rel, int(size), digest.lower())
    if not entries:
        raise ValueError(f"{path}: manifest lists no files")
    return entries


DATASETS: Dict[str, Dataset] = {
    "titanic": Dataset("titanic", f"{_BOOK_RAW}/titanic"),
    "cifar2": Dataset("cifar2", f"{_BOOK_RAW}/cifar2"),
    "covid": Dataset("covid", _BOOK_RAW),  # the book keeps covid-19.csv at the top of data/
    "imdb": Dataset(
        "imdb",
        None,
        note=(
            "rebuilt from the Large Movie Review Dataset v1.0 (Maas et al., ACL 2011) in the book's split and "
            "line order; no byte-identical public copy exists, so it comes from a mirror folder only "
            "(set DATASETS_MIRROR to a folder holding imdb/train.csv and imdb/test.csv)"
        ),
    ),
}


def get(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
