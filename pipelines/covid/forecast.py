"""`make forecast`: 100 days of new confirmed/cured/dead cases from the pushed COVID model, as the book does it.

The model sees the last 8 days, predicts the next (floored to whole cases, as the book does), and that
prediction becomes part of the next window. Prints the first day each series reaches zero (counted from the
first differenced day, the book's convention) beside the book's, and writes `forecast.csv` and `forecast.png`
under OUTPUT_DIR/covid/forecast/.

    python -m pipelines.covid.forecast [--days 100] [--version V]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from components.window_example_gen import daily_increments, read_series
from core.layout import RAW_SIGNATURE, NoPushedModel, version_dir
from data.fetch import fetch
from orchestration import config as config_lib
from pipelines.covid import features
from pipelines.covid.spec import FILE_NAME, SPEC

BOOK_ZERO_DAYS = {"confirmed_num": 55, "cured_num": None, "dead_num": 60}
LABELS = {"confirmed_num": "confirmed", "cured_num": "cured", "dead_num": "dead"}


class ForecastError(RuntimeError):
    pass


def model_dir(cfg: config_lib.PipelineConfig, version: Optional[str] = None) -> Path:
    try:
        return Path(version_dir(cfg.serving_root(SPEC.name), version))
    except NoPushedModel as exc:
        hint = ": run `make run PIPELINE=covid` first" if version is None else ""
        raise ForecastError(f"{str(exc).replace('pushed model', 'pushed covid model', 1)}{hint}") from None


def forecast(model_path: Path, daily: np.ndarray, days: int) -> np.ndarray:
    """[days, 3] predicted daily increments, each fed back into the next window."""
    import tensorflow as tf

    predict = tf.saved_model.load(str(model_path)).signatures[RAW_SIGNATURE]
    history = [row for row in daily.astype(np.float32)]
    predicted = []
    for _ in range(days):
        window = np.stack(history[-features.WINDOW_SIZE :])[None, ...]
        out = predict(window=tf.constant(window, tf.float32))["prediction"].numpy()[0]
        row = np.floor(out).astype(np.float32)
        predicted.append(row)
        history.append(row)
    return np.stack(predicted)


def first_zero_days(history_len: int, predicted: np.ndarray) -> Dict[str, Optional[int]]:
    days = {}
    for j, name in enumerate(features.COLUMNS):
        zeros = np.flatnonzero(predicted[:, j] == 0)
        days[name] = int(history_len + zeros[0]) if zeros.size else None
    return days


def write_csv(path: Path, dates, daily, forecast_dates, predicted) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["day", "date", "kind", *features.COLUMNS])
        for i, (date, row) in enumerate(zip(list(dates) + list(forecast_dates), list(daily) + list(predicted))):
            writer.writerow([i, date.isoformat(), "history" if i < len(dates) else "forecast", *(int(v) for v in row)])
    os.replace(tmp, path)


def plot(path: Path, dates, daily, forecast_dates, predicted, zero_days) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(features.COLUMNS), 1, figsize=(10, 9), sharex=True)
    for j, (ax, name) in enumerate(zip(axes, features.COLUMNS)):
        ax.plot(dates, daily[:, j], "o-", ms=3, label="history (daily new)")
        ax.plot(forecast_dates, predicted[:, j], "-", color="tab:orange", label="forecast")
        if zero_days[name] is not None:
            ax.axvline(
                forecast_dates[zero_days[name] - len(dates)],
                color="grey",
                ls="--",
                lw=1,
                label=f"first zero: day {zero_days[name]}",
            )
        ax.set_ylabel(LABELS[name])
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title("COVID-19 daily new cases: history and the pushed model's forecast")
    fig.autofmt_xdate()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--version", default=None, help="a pushed version (default: the newest)")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be >= 1")
    try:
        cfg = config_lib.from_env()
        path = model_dir(cfg, args.version)

        data_file = (Path(cfg.data_root) if cfg.data_root else fetch(SPEC.dataset, cfg.data_dir)) / FILE_NAME
        dates, daily = daily_increments(read_series(str(data_file), "date", features.COLUMNS))
    except (ForecastError, config_lib.ConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    predicted = forecast(path, daily, args.days)
    forecast_dates = [dates[-1] + dt.timedelta(days=i + 1) for i in range(args.days)]
    zero_days = first_zero_days(len(daily), predicted)

    out_dir = cfg.pipeline_root(SPEC.name) / "forecast"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "forecast.csv", dates, daily, forecast_dates, predicted)
    plot(out_dir / "forecast.png", dates, daily, forecast_dates, predicted, zero_days)

    print(f"forecast of {args.days} days by {path}")
    print(
        f"{'series':<12}{'first zero day':>16}{'book':>8}   (days counted from the first differenced day, {dates[0]})"
    )
    for name in features.COLUMNS:
        ours = zero_days[name]
        book = BOOK_ZERO_DAYS[name]
        if ours is None:
            when = f"not within {args.days} days"
        else:
            when = f"{ours} ({(dates[0] + dt.timedelta(days=ours)).isoformat()})"
        print(f"{LABELS[name]:<12}{when:>16}{book if book is not None else '-':>8}")
    print(f"wrote {out_dir / 'forecast.csv'} and {out_dir / 'forecast.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
