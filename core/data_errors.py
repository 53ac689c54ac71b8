"""One family for "your data was not accepted": every such error derives from DataError and says which file or
split and which field, so `make run` can print it last and alone, whatever component raised it.

    raise TableInputError("train.csv:12: column 'Age': 'abc' is not a number", file="train.csv", field="Age")

runners/run.py finds the last `module.Class: message` line of a failed run whose class is a DataError
(it imports that one module to ask), so a new ExampleGen's error is recognised as soon as it derives from here.
"""

from __future__ import annotations

from typing import Optional


class DataError(ValueError):
    """The data does not fit what the pipeline expects; the message says what to fix."""

    def __init__(
        self, message: str, *, file: Optional[str] = None, split: Optional[str] = None, field: Optional[str] = None
    ):
        super().__init__(message)
        self.file, self.split, self.field = file, split, field

    def __reduce__(self):  # Beam pickles errors raised in its workers: keep the keyword arguments
        return (_rebuild, (type(self), str(self), self.file, self.split, self.field))


def _rebuild(cls, message, file, split, field):
    return cls(message, file=file, split=split, field=field)


def is_data_error(module: str, name: str) -> bool:
    """Whether `module.name` is a DataError class (importing `module` to ask); False for anything else."""
    import importlib

    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - not importable here: not ours
        return False
    return isinstance(cls, type) and issubclass(cls, DataError)
