"""Benchmark: `make new-pipeline` on a big table: a 1,000,000-row, 30-column CSV (numbers, categories, free
text, a date; a binary label whose signal is in three of them), generated here, drafted, timed, and the peak
memory of the drafting process read back.

    python bench/own_data_bench.py [--rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    header = [f"x{i}" for i in range(20)] + [f"c{i}" for i in range(7)] + ["note", "day", "label"]
    start = datetime.date(2015, 1, 1)
    shops = np.array(["north", "south", "east", "west", "centre"])
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for first in range(0, rows, 100_000):
            n = min(100_000, rows - first)
            x = rng.normal(size=(n, 20)).round(3)
            c = rng.integers(0, 5, size=(n, 7))
            days = rng.integers(0, 3000, size=n)
            weekend = np.array([(start + datetime.timedelta(days=int(d))).weekday() >= 5 for d in days])
            score = x[:, 0] + 0.5 * (c[:, 0] == 2) + 1.5 * weekend + rng.normal(scale=0.5, size=n)
            label = np.where(score > 0.8, "yes", "no")
            for i in range(n):
                writer.writerow(
                    [
                        *x[i].tolist(),
                        *shops[c[i]].tolist(),
                        "a short note" if i % 3 else "",
                        (start + datetime.timedelta(days=int(days[i]))).strftime("%Y-%m-%d"),
                        label[i],
                    ]
                )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the table and the draft here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-own-data-"))
    (work / "table").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    write_table(work / "table" / "big.csv", args.rows)
    size = (work / "table" / "big.csv").stat().st_size
    print(
        f"table: {args.rows:,} rows x 30 columns, {size / 1e6:.0f} MB, written in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    from scaffold import new_pipeline

    drafts = work / "drafts"
    shutil.rmtree(drafts, ignore_errors=True)
    drafts.mkdir()
    started = time.monotonic()
    new_pipeline.scaffold("big_table", work / "table", "label", out_root=drafts)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ndrafted in {seconds:.1f} s (target < 60 s); peak memory of this process {peak:.0f} MB")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
