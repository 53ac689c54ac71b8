"""Where the pipeline's Beam stages run (ExampleGens, StatisticsGen, SchemaGen, Transform, Evaluator): `BEAM=`

    in_memory     (default) the DirectRunner in the driver process: fastest for small data, nothing to start
    multiprocess  the DirectRunner's multi-processing mode: BEAM_WORKERS worker processes started with this
                  interpreter; uses every core on one machine
    portable      the topology of Flink and Spark, minus the JVM: Beam's own Python job service and an external
                  pool of SDK worker processes (apache_beam.runners.worker.worker_pool_main); the pipeline is
                  submitted with --runner=PortableRunner --environment_type=EXTERNAL. Every DoFn, every custom
                  TFMA metric is unpickled and run in a worker process that imports the project by name, as on a
                  cluster, so what would break there breaks here.
    flink         a Flink session cluster, Beam's Flink job server and the same worker pool
                  (runners/flink.py)

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
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional

from core.processes import ServiceError, ServiceGroup, hold_free_port, port_free

PROJECT_PACKAGES = ("components", "pipelines")  # what a worker unpickles functions from


class BeamServiceError(ServiceError):
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
        raise BeamServiceError(
            "Beam's worker pool starts SDK workers as `python` from PATH, and there is no `python` on the workers' PATH"
        ) from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BeamServiceError(
            f"Beam SDK workers cannot import the project ({reason}): the workers' `python` "
            f"({_which('python', env)}) must import {', '.join(PROJECT_PACKAGES)} by name to unpickle its "
            "functions. Install the project where the workers run (pip install -c constraints.txt .) or put the "
            "checkout on their PYTHONPATH"
        )


def _which(name: str, env: Dict[str, str]) -> str:
    return shutil.which(name, path=env.get("PATH")) or "not found"


def take_ports(wanted: Dict[str, int]) -> Dict[str, socket.socket]:
    """{variable: port}: a port 0 becomes a free port held for the service (see hold_free_port); a taken port is
    an error naming the variable. Returns the held sockets by variable; `wanted` gets the ports in place."""
    held = {}
    for var, port in wanted.items():
        if port == 0:
            held[var] = hold_free_port()
            wanted[var] = held[var].getsockname()[1]
        elif not port_free(port):
            for sock in held.values():
                sock.close()
            raise BeamServiceError(
                f"port {port} is in use (another run of a Beam mode, or another service): set {var} to a free port"
            )
    return held


def start_worker_pool(group: ServiceGroup, port: int, env: Dict[str, str], cwd: Path):
    """Beam's external SDK worker pool on `port`, its workers started as `python` from env's PATH, each set up as
    sdk_worker_main would (runners/sdk_worker_pool.py)."""
    pool = group.start(
        "Beam's worker pool",
        [sys.executable, "-m", "runners.sdk_worker_pool", "--service_port", str(port)],
        env,
        cwd,
        "beam-worker-pool.log",
    )
    pool.wait_listening(port)
    return pool


@contextlib.contextmanager
def portable_services(
    job_port: int,
    worker_pool_port: int,
    log_dir: Path,
    env: Optional[Dict[str, str]] = None,
    worker_python_dir: Optional[Path] = None,
) -> Iterator[Dict[str, int]]:
    """Beam's Python job service and external worker pool, for the duration of the block.

    Yields {"job_service": pid, "worker_pool": pid, "job_port": port, "worker_pool_port": port} (port 0 given:
    the free port taken). Both leave logs in `log_dir`. SIGTERM (a CI cancelling the run) is turned into the same
    unwinding as Ctrl-C, so the services never outlive the run."""
    ports = {"BEAM_JOB_PORT": job_port, "BEAM_WORKER_POOL_PORT": worker_pool_port}
    held = take_ports(ports)
    try:
        env = worker_env(env, worker_python_dir)
        # The services and workers run in the log folder, not the checkout: `python -c` puts its folder on
        # sys.path, and a worker must find the project because it is installed, as on a cluster, not by accident.
        log_dir.mkdir(parents=True, exist_ok=True)
        check_worker_imports(env, log_dir)
        with ServiceGroup(log_dir) as group:
            job = group.start(
                "Beam's job service",
                [sys.executable, "-m", "runners.beam_job_service", "--port", str(ports["BEAM_JOB_PORT"])],
                env,
                log_dir,
                "beam-job-service.log",
            )
            job.wait_listening(ports["BEAM_JOB_PORT"])
            _release(held, "BEAM_JOB_PORT")  # the service has bound it: ours can go
            pool = start_worker_pool(group, ports["BEAM_WORKER_POOL_PORT"], env, log_dir)
            _release(held, "BEAM_WORKER_POOL_PORT")
            yield {
                "job_service": job.pid,
                "worker_pool": pool.pid,
                "job_port": ports["BEAM_JOB_PORT"],
                "worker_pool_port": ports["BEAM_WORKER_POOL_PORT"],
            }
    finally:
        for sock in held.values():
            sock.close()


def _release(held: Dict[str, socket.socket], var: str) -> None:
    if var in held:
        held.pop(var).close()
