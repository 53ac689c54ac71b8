"""DelimitedExampleGen: header-less delimited text files (e.g. IMDB's `label<TAB>text`) to tf.Examples.

TFX's CsvExampleGen takes column names from a header line and knows no line numbers; the book's IMDB files
have no header, and a bad line should be reported as `file:line`. Each split is one file pattern under
`input_base`; each line is split on the first `len(columns) - 1` delimiters (so the last column may contain the
delimiter) and typed per column. An empty line, too few fields, a value of the wrong type or outside the
column's allowed values is an error naming file and line, or with `skip_invalid=True` is skipped, counted
(Beam counter `invalid_lines_skipped`) and logged per file with the count.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components import example_gen_config
from core.data_errors import DataError

TYPES = ("int", "float", "string")


class InvalidLineError(DataError):
    """A line of an input file does not fit the declared columns; the message is `file:line: why`."""


def column(name: str, kind: str, allowed: Optional[Sequence] = None) -> Dict[str, Any]:
    if kind not in TYPES:
        raise ValueError(f"column {name!r}: type {kind!r} is not one of {TYPES}")
    spec = {"name": name, "type": kind}
    if allowed is not None:
        spec["allowed"] = list(allowed)
    return spec


def read_settings(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    return example_gen_config.unpack(exec_properties, "DelimitedExampleGen")


def _typed(raw: str, spec: Dict[str, Any]):
    kind = spec["type"]
    if kind == "string":
        value = raw
    else:
        try:
            value = int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise ValueError(
                f"column '{spec['name']}': {raw[:40]!r} is not {'an integer' if kind == 'int' else 'a number'}"
            ) from None
    allowed = spec.get("allowed")
    if allowed is not None:
        allowed_typed = [int(a) if kind == "int" else a for a in allowed]
        if value not in allowed_typed:
            raise ValueError(f"column '{spec['name']}': {raw[:40]!r} is not one of {allowed_typed}")
    return value


def parse_line(line: str, columns: List[Dict[str, Any]], delimiter: str) -> tf.train.Example:
    """One line (without its newline) to a tf.Example; ValueError says what is wrong with it."""
    if not line.strip():
        raise ValueError("empty line")
    fields = line.split(delimiter, len(columns) - 1)
    if len(fields) != len(columns):
        raise ValueError(f"expected {len(columns)} fields separated by {delimiter!r}, found {len(fields)}")
    feature = {}
    for raw, spec in zip(fields, columns):
        value = _typed(raw, spec)
        if spec["type"] == "int":
            feature[spec["name"]] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif spec["type"] == "float":
            feature[spec["name"]] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            feature[spec["name"]] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


class _ParseFile(beam.DoFn):
    def __init__(self, settings: Dict[str, Any]):
        self._columns = settings["columns"]
        self._delimiter = settings.get("delimiter", "\t")
        self._skip_invalid = bool(settings.get("skip_invalid"))
        self._skipped = beam.metrics.Metrics.counter("DelimitedExampleGen", "invalid_lines_skipped")

    def process(self, path: str) -> Iterator[tf.train.Example]:
        skipped, first_problem = 0, None
        with tf.io.gfile.GFile(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    try:
                        line = raw.decode("utf-8").rstrip("\r\n")
                    except UnicodeDecodeError as exc:
                        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
                    example = parse_line(line, self._columns, self._delimiter)
                except ValueError as exc:
                    problem = f"{path}:{lineno}: {exc}"
                    if not self._skip_invalid:
                        raise InvalidLineError(problem) from None
                    skipped += 1
                    first_problem = first_problem or problem
                    self._skipped.inc()
                    continue
                yield example
        if skipped:
            logging.warning(
                "DelimitedExampleGen: skipped %d invalid line(s) in %s; the first: %s", skipped, path, first_problem
            )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _DelimitedToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    settings = read_settings(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = sorted(tf.io.gfile.glob(os.path.join(input_base, split_pattern)))
    if not files:
        raise FileNotFoundError(f"no file matches {os.path.join(input_base, split_pattern)}")
    if all(tf.io.gfile.stat(f).length == 0 for f in files):  # a whole split with nothing to learn or judge from
        splits = json.loads(exec_properties[standard_component_specs.INPUT_CONFIG_KEY]).get("splits", [])
        split = next((s.get("name") for s in splits if s.get("pattern") == split_pattern), split_pattern)
        raise InvalidLineError(f"{split} split: 0 examples in {files[0] if len(files) == 1 else files}")
    name = split_pattern.replace("*", "_").replace("/", "_")
    return (
        pipeline
        | f"List{name}" >> beam.Create(files, reshuffle=False)
        | f"Parse{name}" >> beam.ParDo(_ParseFile(settings))
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _DelimitedToExample


class DelimitedExampleGen(example_gen_component.FileBasedExampleGen):
    """See the module docstring.

    inputs      none (reads the files under input_base)
    outputs     examples (Examples): one split per (name, pattern), one tf.Example per line, columns as typed
    parameters  input_base (str); columns (from `column()`, in file order); splits ((name, file pattern) pairs);
                delimiter (default tab); skip_invalid (default False: a bad line stops the run)
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        columns: Sequence[Dict[str, Any]],
        splits: Sequence[Tuple[str, str]],
        delimiter: str = "\t",
        skip_invalid: bool = False,
    ):
        """`columns`: from `column(name, type, allowed)`, in file order; `splits`: (split name, file pattern)."""
        if not columns:
            raise ValueError("columns must not be empty")
        if not delimiter or delimiter in "\r\n":
            raise ValueError(f"delimiter {delimiter!r} cannot separate fields on one line")
        custom_config = example_gen_config.pack(
            {"columns": list(columns), "delimiter": delimiter, "skip_invalid": bool(skip_invalid)}
        )
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in splits]
            ),
            custom_config=custom_config,
        )
