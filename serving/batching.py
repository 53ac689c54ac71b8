"""Request batching as TF Serving does it (--enable_batching, --batching_parameters_file): concurrent requests to
the same signature of the same model version are merged into one call, their inputs concatenated along the batch
dimension, and the outputs split back.

The rules are TF Serving's (tensorflow/core/kernels/batching_util/shared_batch_scheduler.h and
tensorflow_serving/batching/batching_session.cc): a batch is run when it holds max_batch_size examples, or once
batch_timeout_micros have passed since its first task (0: as soon as a batch thread is free, so requests that
arrive while the threads are busy are merged); num_batch_threads batches run at once; a task larger than
max_batch_size is refused ("Task size ... is larger than maximum input batch size ...") unless
enable_large_batch_splitting; more than max_enqueued_batches full batches waiting is refused as UNAVAILABLE ("The
batch scheduling queue to which this task was submitted is full"); with allowed_batch_sizes a batch is padded up to
the next allowed size with copies of its first example, and the padding's outputs are dropped. Tasks whose inputs
differ in anything but the batch dimension (dtypes, other dimensions) go in separate batches.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from core.tf_serving_config import BatchingParameters


class BatchRefused(RuntimeError):
    """The batch scheduler refused a task; `code` is the gRPC status TF Serving answers with."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _Task:
    __slots__ = ("arrays", "size", "done", "outputs", "error", "enqueued", "callback")

    def __init__(self, arrays: Dict[str, np.ndarray], size: int, callback=None):
        self.arrays, self.size = arrays, size
        self.done = threading.Event()
        self.outputs: Optional[Dict[str, np.ndarray]] = None
        self.error: Optional[BaseException] = None
        self.enqueued = time.monotonic()
        self.callback = callback  # (outputs, error) -> None, called on the batch thread; else `done` is set

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.outputs, self.error)
        else:
            self.done.set()


def _shape_key(arrays: Dict[str, np.ndarray]) -> Tuple:
    return tuple(sorted((k, str(a.dtype), a.shape[1:]) for k, a in arrays.items()))


class BatchScheduler:
    """One per server process, shared by every model and signature (TF Serving's shared batch scheduler)."""

    def __init__(self, params: BatchingParameters, on_batch: Callable[[Tuple, int], None] = lambda key, size: None):
        self.params = params
        self.on_batch = on_batch
        self._queues: Dict[Tuple, collections.deque] = {}
        self._runners: Dict[Tuple, Callable] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True) for i in range(params.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, key: Tuple, arrays: Dict[str, np.ndarray], runner: Callable[[Dict[str, np.ndarray]], Dict]) -> Dict:
        """Runs `runner` on a batch holding these inputs (an example per row of each array); blocks until done.
        `key` names the model version and signature (what may share a batch); BatchRefused when refused."""
        sizes = {a.shape[0] for a in arrays.values() if a.ndim}
        if len(sizes) != 1 or any(a.ndim == 0 for a in arrays.values()):
            return runner(arrays)  # no batch dimension to merge along: run alone, as TF Serving would fail to merge
        size = sizes.pop()
        limit = self.params.max_batch_size
        if size > limit:
            if not self.params.enable_large_batch_splitting:
                raise BatchRefused(
                    "INVALID_ARGUMENT", f"Task size {size} is larger than maximum input batch size {limit}"
                )
            parts = [
                self.run(key, {k: a[i : i + limit] for k, a in arrays.items()}, runner) for i in range(0, size, limit)
            ]
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        task = self._enqueue(key, arrays, size, runner, None)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def submit(self, key: Tuple, arrays: Dict[str, np.ndarray], runner: Callable, callback: Callable) -> bool:
        """The same without blocking: `callback(outputs, error)` is called on a batch thread once the batch ran.
        False when the task cannot be queued as one (no batch dimension, larger than a batch): use `run`."""
        sizes = {a.shape[0] for a in arrays.values() if a.ndim}
        if len(sizes) != 1 or any(a.ndim == 0 for a in arrays.values()):
            return False
        size = sizes.pop()
        if size > self.params.max_batch_size:
            if not self.params.enable_large_batch_splitting:
                raise BatchRefused(
                    "INVALID_ARGUMENT",
                    f"Task size {size} is larger than maximum input batch size {self.params.max_batch_size}",
                )
            return False
        self._enqueue(key, arrays, size, runner, callback)
        return True

    def _enqueue(self, key, arrays, size, runner, callback) -> _Task:
        queue_key = (key, _shape_key(arrays))
        task = _Task(arrays, size, callback)
        with self._cond:
            queue = self._queues.setdefault(queue_key, collections.deque())
            waiting = sum(t.size for t in queue)
            if waiting + size > self.params.max_enqueued_batches * self.params.max_batch_size:
                raise BatchRefused("UNAVAILABLE", "The batch scheduling queue to which this task was submitted is full")
            queue.append(task)
            self._runners[queue_key] = runner
            self._cond.notify()
        return task

    def _next_batch(self):
        """Under the condition: the oldest ready batch (full, or past its timeout, or any with timeout 0)."""
        timeout = self.params.batch_timeout_micros / 1e6
        now = time.monotonic()
        best, wake = None, None
        for queue_key, queue in self._queues.items():
            if not queue:
                continue
            full = sum(t.size for t in queue) >= self.params.max_batch_size
            due = queue[0].enqueued + timeout
            if full or due <= now:
                if best is None or queue[0].enqueued < self._queues[best][0].enqueued:
                    best = queue_key
            else:
                wake = due if wake is None else min(wake, due)
        if best is None:
            return None, (None if wake is None else max(wake - now, 0.0))
        queue, tasks, total = self._queues[best], [], 0
        while queue and total + queue[0].size <= self.params.max_batch_size:
            task = queue.popleft()
            tasks.append(task)
            total += task.size
        return (best, tasks, self._runners[best]), None

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    batch, wait = self._next_batch()
                    if batch is not None:
                        break
                    self._cond.wait(wait)
            self._execute(*batch)

    def _execute(self, queue_key, tasks: List[_Task], runner) -> None:
        total = sum(t.size for t in tasks)
        padded = next((s for s in self.params.allowed_batch_sizes if s >= total), total)
        try:
            if len(tasks) == 1 and padded == total:
                merged = tasks[0].arrays
            else:
                merged = {k: np.concatenate([t.arrays[k] for t in tasks]) for k in tasks[0].arrays}
                if padded > total:  # batching_session.cc pads with copies of the first example
                    merged = {
                        k: np.concatenate([a, np.repeat(a[:1], padded - total, axis=0)]) for k, a in merged.items()
                    }
            outputs = runner(merged)
            self.on_batch(queue_key[0], total)
            start = 0
            for task in tasks:
                task.outputs = {
                    k: (v[start : start + task.size] if getattr(v, "ndim", 0) and v.shape[0] == padded else v)
                    for k, v in outputs.items()
                }
                start += task.size
        except Exception as exc:  # noqa: BLE001
            if len(tasks) == 1:
                tasks[0].error = exc
            else:
                # One request the model rejects (an unparsable tf.Example) would fail every request merged with
                # it, as it does in TF Serving; here each is run alone instead, so only its own request fails.
                for task in tasks:
                    try:
                        task.outputs = runner(task.arrays)
                    except Exception as alone:  # noqa: BLE001
                        task.error = alone
        finally:
            for task in tasks:
                task.finish()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
