"""The pipeline runs the suite shares: one per dataset and session, each started as `make run` starts it (the CLI
runner, `python -m runners.run <name>`, in a fresh process), at most two at a time, in the background
while the tests that need none of them go on.

A test that needs a run asks for its fixture (`titanic_run`, `covid_run`, `cifar2_run`, `imdb_run`); the session
starts every run its selected tests need as soon as collection is done (tests/conftest.py), so a run is usually
finished, or nearly, when its first test asks. A run that fails fails every test that needs it, with the tail of
its output; a run past its deadline is killed and fails the same way. Nothing a test does may change a shared run:
a test that reruns a pipeline works on `fork(cfg)`, a copy of the run's ML Metadata and serving folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT

# One slot per core: each run is one busy Python process (Beam in memory, TF on both cores in short bursts).
SLOTS = 2
RUN_DEADLINE_S = 1500  # a run that takes longer has hung (Titanic takes 1-3 minutes here)

# What each run is: the settings `make run` reads from the environment. cifar2 and imdb run on small real subsets
# and covid on fewer epochs with a loose bound: the plumbing is under test there, quality in bench/.
SETTINGS: Dict[str, Dict[str, str]] = {
    "titanic": {},
    "covid": {"EPOCHS": "30", "MAX_MSPE": "100"},
    "cifar2": {"EPOCHS": "2", "BATCH_SIZE": "20", "MIN_AUC": "0", "MIN_KS": "0"},
    "imdb": {"EPOCHS": "2", "MIN_AUC": "0", "MIN_KS": "0"},
}
ORDER = ("titanic", "covid", "cifar2", "imdb")  # most tests wait on Titanic; covid is seconds


class SharedRunFailed(RuntimeError):
    pass


@dataclasses.dataclass
class SharedRun:
    name: str
    output_dir: Path
    data_root: Path
    env: Dict[str, str]
    proc: Optional[subprocess.Popen] = None
    started: Optional[float] = None
    seconds: Optional[float] = None
    error: Optional[str] = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def log(self) -> Path:
        return self.output_dir.parent / f"{self.name}-make-run.log"

    def config(self) -> config_lib.PipelineConfig:
        """The settings the run was made with, as a PipelineConfig (what results.last_run and fork take)."""
        return config_lib.from_env(dict(self.env, OUTPUT_DIR=str(self.output_dir), DATA_ROOT=str(self.data_root)))

    def start(self) -> None:
        env = dict(os.environ, **self.env, OUTPUT_DIR=str(self.output_dir), DATA_ROOT=str(self.data_root))
        env.pop("VERBOSE", None)
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runners.run", self.name],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def finish(self, deadline_s: float) -> None:
        try:
            rc = self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.seconds = time.monotonic() - self.started
        if rc != 0:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
            why = f"ran past {deadline_s:.0f} s and was killed" if rc is None else f"exited {rc}"
            self.error = f"the shared {self.name} run (`make run PIPELINE={self.name}`) {why}; its last lines:\n{tail}"
        self.done.set()

    def wait(self, timeout_s: float) -> config_lib.PipelineConfig:
        if not self.done.wait(timeout_s):
            raise SharedRunFailed(f"the shared {self.name} run did not finish within {timeout_s:.0f} s")
        if self.error:
            raise SharedRunFailed(self.error)
        return self.config()


class SharedRuns:
    """Starts the wanted runs in ORDER, at most SLOTS at once, on a background thread."""

    def __init__(self, root: Path, data: Dict[str, Callable[[], Path]]):
        self.root, self.data = root, data
        self.runs: Dict[str, SharedRun] = {}
        self._thread: Optional[threading.Thread] = None

    def start(self, names: List[str]) -> None:
        for name in ORDER:
            if name in names:
                out = self.root / name / "outputs"
                out.mkdir(parents=True)
                self.runs[name] = SharedRun(name, out, Path(), dict(SETTINGS[name]))
        self._thread = threading.Thread(target=self._schedule, name="shared-runs", daemon=True)
        self._thread.start()

    def _schedule(self) -> None:
        pending = list(self.runs.values())
        running: List[threading.Thread] = []
        while pending:
            running = [t for t in running if t.is_alive()]
            if len(running) >= SLOTS:
                time.sleep(0.2)
                continue
            run = pending.pop(0)
            try:
                run.data_root = self.data[run.name]()
                run.start()
            except Exception as exc:  # noqa: BLE001 - the tests that need the run say so
                run.error = f"the shared {run.name} run could not start: {exc!r}"
                run.done.set()
                continue
            thread = threading.Thread(target=run.finish, args=(RUN_DEADLINE_S,), daemon=True)
            thread.start()
            running.append(thread)

    def get(self, name: str) -> config_lib.PipelineConfig:
        if name not in self.runs:  # a test asked for a run its markers did not announce: start it now, alone
            self.start_late(name)
        return self.runs[name].wait(RUN_DEADLINE_S * 2)

    def start_late(self, name: str) -> None:
        out = self.root / name / "outputs"
        out.mkdir(parents=True)
        run = SharedRun(name, out, self.data[name](), dict(SETTINGS[name]))
        self.runs[name] = run
        run.start()
        threading.Thread(target=run.finish, args=(RUN_DEADLINE_S,), daemon=True).start()

    def stop(self) -> None:
        for run in self.runs.values():
            if run.proc is not None and run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()

    def summary(self) -> List[str]:
        return [
            f"shared {r.name} run: {r.seconds:.0f} s" if r.seconds is not None else f"shared {r.name} run: not run"
            for r in self.runs.values()
        ]


def fork(cfg: config_lib.PipelineConfig, where: Path) -> config_lib.PipelineConfig:
    """A private copy of a run to rerun on: its ML Metadata store and serving folder copied under `where`, its
    artifacts read where they are (new ones go under `where`). TFX's cache finds the shared run's executions in
    the copied store, so a rerun there behaves as a rerun of the shared run would, and the shared run is untouched."""
    forked = cfg.replace(output_dir=where)
    for pipeline in [p.name for p in Path(cfg.output_dir).iterdir() if (p / "metadata.sqlite").is_file()]:
        Path(forked.metadata_path(pipeline)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cfg.metadata_path(pipeline), forked.metadata_path(pipeline))
    serving = Path(cfg.output_dir) / "serving"
    if serving.is_dir():
        shutil.copytree(serving, Path(where) / "serving", symlinks=True)
    return forked
