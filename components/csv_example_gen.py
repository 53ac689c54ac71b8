"""TFX's CsvExampleGen, with its input files checked before Beam reads them.

TFX's CSV reader takes the first line of each file as the header and every other line as a row. Three kinds of
file then go wrong far from their cause: an empty file, a file with only a header (0 examples: the run trains
and evaluates on nothing and fails in Keras or in the report), and a file saved with a UTF-8 byte-order mark
(the invisible U+FEFF becomes part of the first column's name, and the schema check reports one column dropped
and a new one added). Each is stopped here, naming the split, the file and what was expected.

Component
    inputs      none
    outputs     examples (Examples), as TFX's CsvExampleGen
    parameters  as TFX's CsvExampleGen (input_base, input_config, output_config, ...)
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from tfx.components import CsvExampleGen as TfxCsvExampleGen
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from core.data_errors import DataError

BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 1 << 16


class CsvInputError(DataError):
    """A CSV file TFX's reader would misread; the message names split, file and the problem."""


def check_split(split: str, files: List[str], pattern: str) -> None:
    if not files:
        raise CsvInputError(f"{split} split: no file matches {pattern}")
    rows_seen = False
    for path in sorted(files):
        with fileio.open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        if not head.strip():
            raise CsvInputError(f"{split} split: {path} is empty; expected a header line and at least one row")
        if head.startswith(BOM):
            raise CsvInputError(
                f"{split} split: {path} starts with a UTF-8 byte-order mark (U+FEFF, invisible in most editors), "
                f"which would become part of the first column's name; save the file as UTF-8 without a BOM"
            )
        lines = [line for line in head.splitlines() if line.strip()]
        rows_seen = rows_seen or len(lines) > 1 or len(head) == _HEAD_BYTES
    if not rows_seen:
        where = files[0] if len(files) == 1 else f"{len(files)} files matching {pattern}"
        raise CsvInputError(f"{split} split: 0 examples in {where} (a header line and no rows)")


class Executor(csv_executor.Executor):
    def GenerateExamplesByBeam(self, pipeline, exec_properties: Dict[str, Any]):
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        for split in input_config.splits:
            pattern = os.path.join(input_base, split.pattern)
            check_split(split.name, fileio.glob(pattern), pattern)
        return super().GenerateExamplesByBeam(pipeline, exec_properties)


class CsvExampleGen(TfxCsvExampleGen):
    """See the module docstring."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
