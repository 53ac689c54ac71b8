"""Which component is running, and how long the finished ones took, while a local run goes on.

LocalDagRunner offers no hooks, but every execution is recorded in ML Metadata as it starts and ends; a thread
polls the (SQLite) store and prints one line per change:

    [titanic] CsvExampleGen running
    [titanic] CsvExampleGen done in 3.1 s; StatisticsGen running
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict

from ml_metadata.proto import metadata_store_pb2

from metadata.store import open_store

FINISHED = {"COMPLETE": "done", "CACHED": "cached", "FAILED": "FAILED", "CANCELED": "canceled"}


class Progress(threading.Thread):
    def __init__(
        self,
        pipeline: str,
        sqlite_path: str,
        every_s: float = 1.0,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
    ):
        super().__init__(daemon=True, name=f"progress-{pipeline}")
        self.pipeline, self.sqlite_path, self.every_s, self.say = pipeline, sqlite_path, every_s, say
        self._halt = threading.Event()
        self._seen: Dict[int, str] = {}
        self._started_at = time.time() * 1000

    def _store(self):
        return open_store(self.sqlite_path, must_exist=False)

    def poll(self, store) -> None:
        executions = [e for e in store.get_executions() if e.create_time_since_epoch >= self._started_at]
        types = {t.id: t.name for t in store.get_execution_types()}
        lines = []
        for execution in sorted(executions, key=lambda e: e.id):
            state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
            if self._seen.get(execution.id) == state:
                continue
            node = _node_name(store, execution, self.pipeline) or types.get(execution.type_id, "?").rsplit(".", 1)[-1]
            if state in FINISHED:
                took = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
                lines.append(f"{node} {FINISHED[state]}" + (f" in {took:.1f} s" if state == "COMPLETE" else ""))
            elif self._seen.get(execution.id) is None:
                lines.append(f"{node} running")
            self._seen[execution.id] = state
        if lines:
            self.say(f"[{self.pipeline}] " + "; ".join(lines))

    def run(self) -> None:
        store = None
        while not self._halt.wait(self.every_s):
            try:
                store = store or self._store()
                self.poll(store)
            except Exception:  # the store may not exist yet, or be busy: try again next tick
                store = None

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        try:
            self.poll(self._store())  # the last changes
        except Exception:
            pass


def _node_name(store, execution, pipeline: str):
    for context in store.get_contexts_by_execution(execution.id):
        if context.name.startswith(f"{pipeline}.") and context.name.count(".") == 1:
            return context.name.split(".", 1)[1]
    return None
