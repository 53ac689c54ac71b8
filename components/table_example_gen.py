"""TableExampleGen: a table of the user's (CSV, TSV, semicolon-separated; a header line naming the columns) to
tf.Examples, each column typed as the pipeline declares it.

What TFX's CsvExampleGen does not: any of the three delimiters; header names and values quoted with double or
single quotes (Python's csv module; header names trimmed of quotes and spaces); a UTF-8 byte-order mark; missing-
value markers (`NA`, `NaN`, `null`, `None`, empty, case-insensitive) read as a missing value, not as the string
"NA" that would turn a numeric column into text; columns found by header name, in any order, extra columns ignored;
a classification label mapped to its class index through the declared classes, so that an unknown class is an error
naming file and line, not a silent new class. A value that does not fit its column's type is an error naming file,
line and column (TableInputError, a DataError).

The splits are the file patterns of `input_config`; with a single pattern and an `output_config`, TFX's base
executor splits the examples by hash, as CsvExampleGen does by default (train 2 : eval 1).
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Dict, Iterator, Optional, Sequence

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components import example_gen_config
from core import dates
from core.data_errors import DataError

TYPES = ("int", "float", "string", "date")
MISSING = ("", "na", "n/a", "nan", "null", "none")


class TableInputError(DataError):
    """A table file the pipeline cannot read as declared; the message is `file[:line]: what is wrong`."""


def is_missing(raw: str, markers: Sequence[str] = MISSING) -> bool:
    return raw.strip().lower() in markers


def header_name(raw: str) -> str:
    """A header cell as a column name: trimmed of spaces and of one pair of surrounding quotes, single or double
    (some statistics packages write 'age'<TAB>'income' with a quote character the csv module was not told of)."""
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1].strip()
    return name


def _feature(value, kind: str) -> tf.train.Feature:
    if kind == "int":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))


def typed(raw: str, kind: str, column: str):
    text = raw.strip()
    try:
        if kind == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(
            f"column {column!r}: {raw[:40]!r} is not {'an integer' if kind == 'int' else 'a number'}"
        ) from None
    return raw


def parse_row(row: Dict[str, str], settings: Dict[str, Any]) -> Optional[tf.train.Example]:
    """One csv.DictReader row to a tf.Example (None for a row without a label); ValueError says what is wrong."""
    markers = settings.get("missing", MISSING)
    label = settings.get("label", {})
    feature = {}
    for column in settings["columns"]:
        name, kind = column["name"], column["type"]
        raw = row.get(name)
        if raw is None:
            raise ValueError(f"the row has no value for column {name!r} (fewer fields than the header)")
        if name == label.get("name"):
            if is_missing(raw, markers):
                return None  # nothing to learn from, nothing to judge: the row is skipped and counted
            classes = label.get("classes")
            if classes:
                value = raw.strip()
                if value not in classes:
                    raise ValueError(
                        f"label {name!r}: {value[:40]!r} is not one of the classes {classes} the "
                        f"pipeline declares (its features.py, LABEL_CLASSES)"
                    )
                feature[name] = _feature(classes.index(value), "int")
            else:
                feature[name] = _feature(typed(raw, "float", name), "float")
            continue
        if is_missing(raw, markers):
            continue  # an absent value is what the schema and the transform read as missing
        if kind == "date":
            fmt = dates.FORMATS[column["format"]]
            if dates.parse(raw, fmt.name) is None:
                raise ValueError(f"column {name!r}: {raw[:40]!r} is not a date as {fmt.shown}")
            feature[name] = _feature(raw.strip(), "string")
            continue
        feature[name] = _feature(typed(raw, kind, name), kind)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def read_table(path: str, settings: Dict[str, Any]) -> Iterator[tf.train.Example]:
    """Every row of one file as a tf.Example; TableInputError names file, line and the problem."""
    delimiter = settings.get("delimiter", ",")
    with tf.io.gfile.GFile(path, "rb") as binary:  # any file system TensorFlow reads (gs://, s3://)
        data = binary.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableInputError(f"{path}:{line}: not UTF-8 ({exc.reason} at byte {exc.start})", file=path) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=settings.get("quotechar", '"'))
    try:
        header = next(reader)
    except StopIteration:
        raise TableInputError(f"{path} is empty; expected a header line and at least one row", file=path) from None
    header = [header_name(h) for h in header]
    wanted = [c["name"] for c in settings["columns"]]
    absent = [name for name in wanted if name not in header]
    if absent:
        raise TableInputError(
            f"{path}: no column {absent[0]!r} in the header (it has {header})", file=path, field=absent[0]
        )
    rows = unlabeled = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise TableInputError(f"{path}:{reader.line_num}: {exc}", file=path) from None
        if not values or not any(v.strip() for v in values):
            continue  # a blank line
        try:
            if len(values) > len(header):
                raise ValueError(f"{len(values)} fields, the header names {len(header)}")
            example = parse_row(dict(zip(header, values)), settings)
        except ValueError as exc:
            raise TableInputError(f"{path}:{reader.line_num}: {exc}", file=path) from None
        if example is None:
            unlabeled += 1
            continue
        rows += 1
        yield example
    if unlabeled:
        logging.warning("TableExampleGen: %s: %d row(s) without a label skipped", path, unlabeled)
        beam.metrics.Metrics.counter("TableExampleGen", "unlabeled_rows_skipped").inc(unlabeled)
    if rows == 0:
        raise TableInputError(f"{path}: 0 examples (a header line and no labeled rows)", file=path)


class _ReadFile(beam.DoFn):
    def __init__(self, settings: Dict[str, Any]):
        self._settings = settings

    def process(self, path: str) -> Iterator[tf.train.Example]:
        yield from read_table(path, self._settings)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _TableToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    settings = example_gen_config.unpack(exec_properties, "TableExampleGen")
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = sorted(tf.io.gfile.glob(os.path.join(input_base, split_pattern)))
    if not files:
        raise TableInputError(f"no file matches {os.path.join(input_base, split_pattern)}")
    name = split_pattern.replace("*", "_").replace("/", "_").replace("{", "_").replace("}", "_")
    return (
        pipeline
        | f"List{name}" >> beam.Create(files, reshuffle=False)
        | f"Read{name}" >> beam.ParDo(_ReadFile(settings))
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _TableToExample


def column(name: str, kind: str, date_format: Optional[str] = None) -> Dict[str, str]:
    """A column as TableExampleGen reads it; a "date" column is a string in `date_format` (core/dates.py), kept as
    the table has it, each value checked."""
    if kind not in TYPES:
        raise ValueError(f"column {name!r}: type {kind!r} is not one of {TYPES}")
    if (kind == "date") != (date_format is not None) or (date_format and date_format not in dates.FORMATS):
        raise ValueError(f"column {name!r}: a date column takes one of the formats {sorted(dates.FORMATS)}")
    return {"name": name, "type": kind, **({"format": date_format} if date_format else {})}


class TableExampleGen(example_gen_component.FileBasedExampleGen):
    """See the module docstring.

    inputs      none (reads the files under input_base)
    outputs     examples (Examples): one tf.Example per row
    parameters  input_base (str); columns (from `column()`): what is read, by header name; splits: (name, file
                pattern) pairs, or one pattern and `hash_split` (train 2 : eval 1); delimiter; label (its name)
                and label_classes (classification: the class names, in class-index order)
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base,
        columns: Sequence[Dict[str, str]],
        splits: Sequence,
        delimiter: str = ",",
        quotechar: str = '"',
        label: Optional[str] = None,
        label_classes: Optional[Sequence[str]] = None,
        missing: Sequence[str] = MISSING,
        hash_split: bool = False,
    ):
        if not columns:
            raise ValueError("columns must not be empty")
        if delimiter not in (",", "\t", ";", "|"):
            raise ValueError(f"delimiter {delimiter!r} is not one of ',', tab, ';', '|'")
        if quotechar not in ('"', "'"):
            raise ValueError(f"quotechar {quotechar!r} is not a double or a single quote")
        if hash_split and len(splits) != 1:
            raise ValueError("hash_split takes one file pattern")
        settings = {
            "columns": list(columns),
            "delimiter": delimiter,
            "quotechar": quotechar,
            "missing": [m.lower() for m in missing],
            "label": {"name": label, "classes": list(label_classes) if label_classes else None},
        }
        output_config = None
        if hash_split:
            output_config = example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                    ]
                )
            )
            input_config = example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="single_split", pattern=splits[0][1])]
            )
        else:
            input_config = example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in splits]
            )
        super().__init__(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            custom_config=example_gen_config.pack(settings),
        )
