"""Request logging for training/serving skew: the inputs of answered requests, as TFRecord files of tf.Examples.

    python -m serving.server --log-requests DIR [--log-sample-rate 1.0] [--log-max-mb 512]
                             [--log-file-mb 16] [--log-rotate-seconds 60]      (or: make serve LOG_REQUESTS=DIR)

Layout: DIR/<model>/requests-<UTC start>-<pid>-<n>.tfrecord, one tf.Example per example of a request, with the
raw features as the model's raw signature took them (a NaN number or an empty string, which the signature reads
as "missing", is logged as a missing value, as in the training data), or the request's own serialized
tf.Examples for the tf.Example signatures. `make skew` reads them (metadata/skew.py).

- Sampled: a request is logged whole or not at all, with probability --log-sample-rate.
- Never in the request's way: the request thread only appends a reference to the arrays it already built to a
  queue; a writer thread builds the tf.Examples and writes them.
- Atomic: a file is written under a hidden name (`.requests-....partial`) and renamed when complete (rotated
  every --log-file-mb or --log-rotate-seconds, and at shutdown), so a reader never sees half a file.
- Bounded: per model, the oldest complete files are deleted while the folder holds more than --log-max-mb;
  the queue holds at most MAX_PENDING requests and MAX_PENDING_BYTES of their arrays (more are dropped and
  counted, never waited for).
- Private: logged requests are personal data (for Titanic: a person's age, sex, fare, ticket). Folders are made
  0700 and files 0600 whatever the umask, and a log folder others can write is refused
  (core/private_files.py).
"""

from __future__ import annotations

import collections
import datetime
import logging
import math
import os
import random
import re
import struct
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

from core import private_files

LOG = logging.getLogger("serving.request_log")
MAX_PENDING = 100_000
MAX_PENDING_BYTES = 256 << 20  # of array data waiting for the writer: a flood of large requests is dropped, not held
FILE_PATTERN = re.compile(r"^requests-\d{8}T\d{6}\.\d{6}Z-\d+-\d+\.tfrecord$")
_PARTIAL = re.compile(r"^\.requests-.*-(\d+)-\d+\.tfrecord\.partial$")

ACTIVE: Optional["RequestLog"] = None  # the server's log, when --log-requests is given


def _safe(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "_", name) or "_"


class _OpenFile:
    def __init__(self, folder: Path, seq: int):
        import tensorflow as tf

        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        self.final = folder / f"requests-{stamp}-{os.getpid()}-{seq:06d}.tfrecord"
        self.partial = folder / f".{self.final.name}.partial"
        private_files.create_private_file(self.partial)  # 0600 before a byte is in it
        self.writer = tf.io.TFRecordWriter(str(self.partial))
        self.bytes = 0
        self.records = 0
        self.opened = time.monotonic()

    def finish(self) -> Path:
        self.writer.close()
        with open(self.partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.partial, self.final)
        return self.final


def examples_from_arrays(arrays: Dict[str, np.ndarray]) -> List[bytes]:
    """One serialized tf.Example per row of the batch: floats (NaN dropped), ints, or bytes (empty dropped)."""
    import tensorflow as tf

    rows = min((len(a) for a in arrays.values() if a.ndim), default=1)
    out = []
    for i in range(rows):
        feature = {}
        for name, array in arrays.items():
            row = array[i] if array.ndim else array
            values = row.reshape(-1) if isinstance(row, np.ndarray) else np.array([row], dtype=array.dtype)
            if values.dtype.kind == "f":
                values = values[~np.isnan(values)]
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
            elif values.dtype.kind in "iub":
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values.astype(np.int64).tolist()))
            else:
                texts = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values.tolist()]
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[t for t in texts if t]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


class RequestLog:
    """See the module docstring. `record` is what the request path calls; `close` finishes every file."""

    def __init__(
        self,
        directory,
        sample_rate: float = 1.0,
        max_bytes: int = 512 << 20,
        file_bytes: int = 16 << 20,
        rotate_seconds: float = 60.0,
        poll_seconds: float = 0.1,
    ):
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"--log-sample-rate {sample_rate} must be in (0, 1]")
        if max_bytes <= 0 or file_bytes <= 0:
            raise ValueError("--log-max-mb and --log-file-mb must be positive")
        if rotate_seconds <= 0:
            raise ValueError(f"--log-rotate-seconds {rotate_seconds} must be positive")
        self.directory = private_files.private_folder(directory)
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.file_bytes = min(file_bytes, max_bytes)
        self.rotate_seconds = rotate_seconds
        self.poll_seconds = poll_seconds
        self.logged = 0  # examples written
        self.dropped = 0  # requests not logged because the queue was full
        self._pending: collections.deque = collections.deque()
        self._pending_bytes = 0
        self._bytes_lock = threading.Lock()
        self._open: Dict[str, _OpenFile] = {}
        self._seq = 0
        self._stop = threading.Event()
        self._remove_stale_partials()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the request path
    def record(self, model: str, arrays: Dict[str, np.ndarray], serialized: bool = False) -> None:
        """Queues one answered request's inputs: {input name: batch array}; serialized=True: the single input
        holds serialized tf.Examples, logged as they came."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        size = sum(getattr(a, "nbytes", 0) for a in arrays.values())
        with self._bytes_lock:
            if len(self._pending) >= MAX_PENDING or self._pending_bytes + size > MAX_PENDING_BYTES:
                self.dropped += 1
                return
            self._pending_bytes += size
        self._pending.append((model, arrays, serialized, size))

    # ---------------------------------------------------------------- the writer thread
    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._drain()
            self._rotate(lambda f: time.monotonic() - f.opened >= self.rotate_seconds)
        self._drain()
        self._rotate(lambda f: True)

    def _drain(self) -> None:
        while self._pending:
            model, arrays, serialized, size = self._pending.popleft()
            with self._bytes_lock:
                self._pending_bytes -= size
            try:
                records = list(next(iter(arrays.values()))) if serialized else examples_from_arrays(arrays)
                self._write(model, records)
            except Exception:  # noqa: BLE001 - a log must never take the server down
                LOG.exception("request log: could not write a request of model %s", model)

    def _write(self, model: str, records: Iterable[bytes]) -> None:
        current = self._open.get(model)
        if current is None:
            folder = private_files.private_folder(self.directory / _safe(model))
            self._seq += 1
            current = self._open[model] = _OpenFile(folder, self._seq)
        for record in records:
            current.writer.write(record)
            current.bytes += len(record) + 16  # TFRecord framing: length, its CRC, the data's CRC
            current.records += 1
            self.logged += 1
        if current.bytes >= self.file_bytes:
            self._finish(model)

    def _rotate(self, due) -> None:
        for model in [m for m, f in self._open.items() if due(f)]:
            self._finish(model)

    def _finish(self, model: str) -> None:
        done = self._open.pop(model)
        try:
            path = done.finish()
        except OSError:
            LOG.exception("request log: could not finish %s", done.partial)
            return
        self._enforce_limit(path.parent)

    def _enforce_limit(self, folder: Path) -> None:
        files = sorted(complete_files(folder), key=lambda p: p.name)
        sizes = {p: p.stat().st_size for p in files if p.exists()}
        total = sum(sizes.values())
        for path in files:  # oldest first: the timestamp leads the name
            if total <= self.max_bytes:
                break
            try:
                path.unlink()
                total -= sizes.get(path, 0)
            except FileNotFoundError:  # another worker removed it first
                pass

    def _remove_stale_partials(self) -> None:
        """A .partial left by a process that no longer runs (killed hard) is unreadable at its end: removed."""
        for path in self.directory.glob("*/.requests-*.partial"):
            match = _PARTIAL.match(path.name)
            if match and not _alive(int(match.group(1))):
                LOG.warning("request log: removing %s, left by a server that was killed", path)
                path.unlink(missing_ok=True)

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued and renames every open file into place."""
        self._stop.set()
        self._thread.join(timeout)
        if self.dropped:
            LOG.warning("request log: %d requests were not logged (queue full)", self.dropped)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def complete_files(folder) -> List[Path]:
    """The finished log files of one model's folder (never a .partial)."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if FILE_PATTERN.match(p.name)) if folder.is_dir() else []


def read_examples(folder) -> List[bytes]:
    """Every logged serialized tf.Example of one model's folder, oldest file first. TFRecord framing read
    directly (8-byte little-endian length, its 4-byte CRC, the data, its CRC): files are renamed into place only
    when complete, and tf.data would print an OUT_OF_RANGE warning at the end of every file."""
    records = []
    for path in complete_files(folder):
        with open(path, "rb") as f:
            while True:
                header = f.read(12)
                if not header:
                    break
                length = struct.unpack("<Q", header[:8])[0] if len(header) == 12 else -1
                data = f.read(length) if length >= 0 else b""
                if length < 0 or len(data) != length or len(f.read(4)) != 4:
                    raise ValueError(f"{path}: truncated TFRecord file (a complete log file never is)")
                records.append(data)
    return records


def install(log: Optional[RequestLog]) -> None:
    global ACTIVE
    ACTIVE = log


def sample_rate_arg(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0 or math.isnan(value):
        raise ValueError(text)
    return value
