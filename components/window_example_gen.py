"""WindowExampleGen: a daily time-series table to (window -> next day) tf.Examples, split by time.

A row-wise Transform cannot see the rows around one, so windowing happens here: the cumulative counts are
checked (header, dates strictly one day apart, counts present and non-negative), differenced into daily
increments, and cut into windows of `window_size` days whose label is the following day. The last
`eval_windows` windows (the most recent targets) are the eval split; every train target is older than every
eval target, so nothing from the eval period leaks into training.

Each example: `window` (window_size x len(columns) floats, day-major), `target` (the next day's values) and
`target_date` (YYYY-MM-DD). The same parsing serves the forecast (`read_series`, `daily_increments`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import Any, Dict, List, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import example_gen_config
from core.data_errors import DataError

WINDOW_KEY, TARGET_KEY, DATE_KEY = "window", "target", "target_date"


class SeriesError(DataError):
    """The table is not a valid daily series; the message names the file and row."""


@dataclasses.dataclass(frozen=True)
class Series:
    dates: List[dt.date]
    values: np.ndarray  # [days, columns], cumulative
    columns: List[str]


def read_series(path: str, date_column: str, value_columns: Sequence[str], delimiter: str = "\t") -> Series:
    """Parses and checks the table; rows are named by line number (the header is line 1) and date."""
    with tf.io.gfile.GFile(path, "r") as f:
        lines = f.read().splitlines()
    if not lines:
        raise SeriesError(f"{path}: empty file")
    header = lines[0].split(delimiter)
    missing = [c for c in [date_column, *value_columns] if c not in header]
    if missing:
        raise SeriesError(f"{path}: header lacks columns {missing} (has {header})")
    date_at, value_at = header.index(date_column), [header.index(c) for c in value_columns]
    dates, values = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise SeriesError(f"{path}: row {lineno}: empty line")
        fields = line.split(delimiter)
        where = f"{path}: row {lineno}"
        if len(fields) != len(header):
            raise SeriesError(f"{where}: {len(fields)} fields, the header has {len(header)}")
        try:
            date = dt.date.fromisoformat(fields[date_at].strip())
        except ValueError:
            raise SeriesError(f"{where}: date {fields[date_at]!r} is not YYYY-MM-DD") from None
        where = f"{where} ({date})"
        row = []
        for name, at in zip(value_columns, value_at):
            try:
                value = float(fields[at])
            except ValueError:
                raise SeriesError(f"{where}: {name} {fields[at]!r} is not a number") from None
            if not np.isfinite(value) or value < 0:
                raise SeriesError(f"{where}: {name} is {fields[at]}; counts must be finite and non-negative")
            row.append(value)
        if dates:
            gap = (date - dates[-1]).days
            if gap <= 0:
                raise SeriesError(f"{where}: dates must increase; the previous row is {dates[-1]}")
            if gap > 1:
                raise SeriesError(f"{where}: {gap - 1} missing date(s) after {dates[-1]}; one row per day expected")
        dates.append(date)
        values.append(row)
    return Series(dates, np.asarray(values, dtype=np.float64).reshape(-1, len(value_columns)), list(value_columns))


def daily_increments(series: Series) -> Tuple[List[dt.date], np.ndarray]:
    """The book's `diff(periods=1).dropna()`: one row per day from the second date on."""
    return series.dates[1:], np.diff(series.values, axis=0)


def make_windows(dates: Sequence[dt.date], daily: np.ndarray, window_size: int, eval_windows: int, path: str = ""):
    """(train, eval) lists of (window [window_size, k], target [k], target date), oldest first."""
    count = len(daily) - window_size
    needed = window_size + eval_windows + 2  # +1 for differencing, +1 for at least one train window
    if count < eval_windows + 1:
        raise SeriesError(
            f"{path}: {len(daily) + 1} rows make {max(count, 0)} window(s) of {window_size} days; "
            f"at least {needed} rows are needed for {eval_windows} eval window(s) and one to train on"
        )
    windows = [(daily[i : i + window_size], daily[i + window_size], dates[i + window_size]) for i in range(count)]
    return windows[:-eval_windows] if eval_windows else windows, windows[len(windows) - eval_windows :]


def to_example(window: np.ndarray, target: np.ndarray, date: dt.date) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                WINDOW_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=window.astype(np.float32).ravel())),
                TARGET_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=target.astype(np.float32))),
                DATE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[date.isoformat().encode()])),
            }
        )
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("WindowExampleGen splits by time in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]):
        settings = example_gen_config.unpack(exec_properties, "WindowExampleGen")
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits[0].pattern)
        files = sorted(tf.io.gfile.glob(pattern))
        if len(files) != 1:
            raise SeriesError(f"{pattern}: expected exactly one file, found {len(files)}")
        series = read_series(files[0], settings["date_column"], settings["value_columns"], settings["delimiter"])
        train, evaluation = make_windows(
            *daily_increments(series), int(settings["window_size"]), int(settings["eval_windows"]), files[0]
        )
        # A time series is small and ordered: the windows are made here, Beam only writes them.
        return {
            split: pipeline | f"Create[{split}]" >> beam.Create([to_example(*w) for w in windows], reshuffle=False)
            for split, windows in (("train", train), ("eval", evaluation))
        }


class WindowExampleGen(example_gen_component.FileBasedExampleGen):
    """See the module docstring.

    inputs      none (reads the one delimited file `file_pattern` under input_base)
    outputs     examples (Examples): train and eval splits by time (the last `eval_windows` windows are eval),
                features window ([window_size * len(value_columns)] floats), target, target_date
    parameters  input_base, file_pattern, date_column, value_columns, window_size, eval_windows, delimiter
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        file_pattern: str,
        date_column: str,
        value_columns: Sequence[str],
        window_size: int,
        eval_windows: int,
        delimiter: str = "\t",
    ):
        if window_size < 1 or eval_windows < 1:
            raise ValueError(f"window_size ({window_size}) and eval_windows ({eval_windows}) must be >= 1")
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=file_pattern)]),
            # Only names the output splits: the executor assigns windows to them by time, not by hash.
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=1),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                    ]
                )
            ),
            custom_config=example_gen_config.pack(
                {
                    "date_column": date_column,
                    "value_columns": list(value_columns),
                    "window_size": window_size,
                    "eval_windows": eval_windows,
                    "delimiter": delimiter,
                }
            ),
        )
