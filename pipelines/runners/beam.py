"""Where the pipeline's Beam stages run (ExampleGens, StatisticsGen, SchemaGen, Transform, Evaluator): `BEAM=`

    in_memory     (default) the DirectRunner in the driver process: fastest for small data, nothing to start
    multiprocess  the DirectRunner's multi-processing mode: BEAM_WORKERS worker processes started with this
                  interpreter; uses every core on one machine
    portable      the topology of Flink and Spark, minus the JVM: Beam's own Python job service and an external
                  pool of SDK worker processes (apache_beam.runners.worker.worker_pool_main); the pipeline is
                  submitted with --runner=PortableRunner --environment_type=EXTERNAL. Every DoFn, every custom
                  TFMA metric is unpickled and run in a worker process that imports the project by name, as on a
                  cluster, so what would break there breaks here.

BEAM_ARGS are appended; with a `--runner=` of its own (Dataflow, Flink, Spark) they replace the mode's arguments.

Portable mode starts both services for the run and stops them when it ends, on failure and on Ctrl-C too: each
is the leader of its own process group, which holds the workers it starts, and the whole group is terminated
(then killed). Their ports are fixed (BEAM_JOB_PORT 8099, BEAM_WORKER_POOL_PORT 50000, Beam's own defaults)
because TFX's cache key includes the Beam arguments: ports that changed per run would make nothing cacheable.
Port 0 asks for free ports instead (nothing of such a run is reused by the next): each is taken from the OS and
held, with SO_REUSEPORT, until the service has bound it too (Beam's gRPC servers bind with SO_REUSEPORT, gRPC's
default on Linux), so no other program can take it in between.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

PROJECT_PACKAGES = ("components", "pipelines")  # what a worker unpickles functions from


class BeamServiceError(RuntimeError):
    """A Beam service could not start, or its workers cannot run the project's code; the message says which."""


def worker_env(env: Optional[Dict[str, str]] = None, python_dir: Optional[Path] = None) -> Dict[str, str]:
    """The environment the worker pool (and so every SDK worker) gets. The pool starts workers as `python -c ...`
    from PATH (worker_pool_main.py, StartWorker), so the folder of the workers' `python` goes first on PATH:
    `python_dir`, by default this interpreter's."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join([str(python_dir or Path(sys.executable).parent), env.get("PATH", "")])
    return env


def check_worker_imports(env: Dict[str, str], cwd: Path) -> None:
    """Runs what a worker runs first, `python` from the workers' PATH in their folder, and imports the project."""
    code = "; ".join(f"import {p}" for p in PROJECT_PACKAGES)
    try:
        proc = subprocess.run(["python", "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=cwd)
    except FileNotFoundError:
        raise BeamServiceError("Beam's worker pool starts SDK workers as `python` from PATH, and there is no "
                               "`python` on the workers' PATH") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BeamServiceError(
            f"Beam SDK workers cannot import the project ({reason}): the workers' `python` "
            f"({_which('python', env)}) must import {', '.join(PROJECT_PACKAGES)} by name to unpickle its "
            "functions. Install the project where the workers run (pip install -c constraints.txt .) or put the "
            "checkout on their PYTHONPATH")


def _which(name: str, env: Dict[str, str]) -> str:
    return shutil.which(name, path=env.get("PATH")) or "not found"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("localhost", port))
            return True
        except OSError:
            return False


def _wait_listening(port: int, proc: subprocess.Popen, what: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-5:]) if log.exists() else ""
            raise BeamServiceError(f"Beam's {what} exited (code {proc.returncode}) before listening on port {port}; "
                                   f"its log {log}:\n{tail}")
        try:
            socket.create_connection(("localhost", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise BeamServiceError(f"Beam's {what} did not listen on port {port} within {timeout_s:.0f} s (log: {log})")


def stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """Terminates the process group `proc` leads (it and every worker it started); kills what is left."""
    if proc.poll() is None or _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(proc.pid):
            proc.poll()
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def hold_free_port() -> socket.socket:
    """A socket bound to a free loopback port with SO_REUSEPORT and not listening: the port stays ours until the
    socket is closed, and a gRPC server (which binds with SO_REUSEPORT) can bind it meanwhile."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("localhost", 0))
    return sock


@contextlib.contextmanager
def portable_services(job_port: int, worker_pool_port: int, log_dir: Path, env: Optional[Dict[str, str]] = None,
                      worker_python_dir: Optional[Path] = None) -> Iterator[Dict[str, int]]:
    """Beam's Python job service and external worker pool, for the duration of the block.

    Yields {"job_service": pid, "worker_pool": pid, "job_port": port, "worker_pool_port": port} (port 0 given:
    the free port taken). Both leave logs in `log_dir`. SIGTERM (a CI cancelling the run) is turned into the same
    unwinding as Ctrl-C, so the services never outlive the run."""
    held: Dict[int, socket.socket] = {}
    ports = []
    for port, var in ((job_port, "BEAM_JOB_PORT"), (worker_pool_port, "BEAM_WORKER_POOL_PORT")):
        if port == 0:
            sock = hold_free_port()
            port = sock.getsockname()[1]
            held[port] = sock
        elif not _port_free(port):
            raise BeamServiceError(f"port {port} is in use (another portable run, or another service): "
                                   f"set {var} to a free port")
        ports.append(port)
    try:
        with _services(ports[0], ports[1], log_dir, env, worker_python_dir, held) as pids:
            yield {**pids, "job_port": ports[0], "worker_pool_port": ports[1]}
    finally:
        for sock in held.values():
            sock.close()


@contextlib.contextmanager
def _services(job_port: int, worker_pool_port: int, log_dir: Path, env: Optional[Dict[str, str]],
              worker_python_dir: Optional[Path], held: Dict[int, socket.socket]) -> Iterator[Dict[str, int]]:
    env = worker_env(env, worker_python_dir)
    # The services and workers run in the log folder, not the checkout: `python -c` puts its folder on sys.path,
    # and a worker must find the project because it is installed, as on a cluster, not by accident.
    log_dir.mkdir(parents=True, exist_ok=True)
    check_worker_imports(env, log_dir)
    started: List[subprocess.Popen] = []
    previous = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    if _main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for module, args, name, port in (
                ("pipelines.runners.beam_job_service", ["--port", str(job_port)], "job service", job_port),
                ("apache_beam.runners.worker.worker_pool_main", ["--service_port", str(worker_pool_port)],
                 "worker pool", worker_pool_port)):
            log = log_dir / f"beam-{name.replace(' ', '-')}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        cwd=log_dir)
            started.append(proc)
            _wait_listening(port, proc, name, log)
            if port in held:  # the service has bound it: ours can go
                held.pop(port).close()
        yield {"job_service": started[0].pid, "worker_pool": started[1].pid}
    finally:
        for proc in reversed(started):
            stop_group(proc)
        if _main_thread():
            signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
