"""Services a run starts (Beam's job services, SDK worker pools, Flink's JVMs, Spark's master and workers) and
never leaves behind.

Each service is the leader of its own process group, so stopping it stops what it started too (a worker pool's
workers, the JVM a Flink script `exec`s). A `ServiceGroup` stops its services in reverse order when its block
ends, fails or is interrupted; SIGTERM (a CI cancelling the run) unwinds like Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

# how a run says, in one line, that the services its BEAM mode needs cannot start (runners/run.py shows it)
SERVICES_REFUSED = "cannot start the Beam services: "


class ServiceError(RuntimeError):
    """A service could not start or stopped early; the message names it, its log and what to set."""


def log_tail(log: Path, lines: int = 5) -> str:
    if not log.exists():
        return ""
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])


def port_free(port: int, host: str = "localhost") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A port free now, for a service that binds it itself moments later (JVMs do not share ports with
    SO_REUSEPORT, so it cannot be held meanwhile); a lost race shows as that service failing to bind."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def hold_free_port() -> socket.socket:
    """A socket bound to a free loopback port with SO_REUSEPORT and not listening: the port stays ours until the
    socket is closed, and a gRPC server (which binds with SO_REUSEPORT) can bind it meanwhile."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("localhost", 0))
    return sock


def listening(port: int, host: str = "localhost") -> bool:
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """Terminates the process group `proc` leads (it and everything it started); kills what is left."""
    if proc.poll() is None or group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and group_alive(proc.pid):
            proc.poll()
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


class Service:
    def __init__(self, name: str, proc: subprocess.Popen, log: Path):
        self.name, self.proc, self.log = name, proc, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> Optional[int]:
        return self.proc.poll()

    def wait_until(self, ready: Callable[[], bool], what: str, timeout_s: float = 120, hint: str = "") -> None:
        """Polls `ready` until it is true; the service exiting first, or the time running out, is an error that
        names the service, its log and the log's last lines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited (code {self.proc.returncode}) before {what}; its log "
                    f"{self.log}:\n{log_tail(self.log)}{hint}"
                )
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.2)
        raise ServiceError(f"{self.name} did not {what} within {timeout_s:.0f} s (log: {self.log}){hint}")

    def wait_listening(self, port: int, timeout_s: float = 120) -> None:
        self.wait_until(lambda: listening(port), f"listening on port {port}", timeout_s)


class ServiceGroup:
    """The services of one block: started with `start`, stopped in reverse order when the block ends."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.services: List[Service] = []
        self._previous_sigterm = None

    def start(self, name: str, argv: Sequence[str], env: Dict[str, str], cwd: Path, log_name: str) -> Service:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / log_name
        with open(log, "w") as out:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=cwd,
            )
        service = Service(name, proc, log)
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            stop_group(service.proc)

    def __enter__(self) -> "ServiceGroup":
        if _main_thread():
            self._previous_sigterm = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            if _main_thread():
                signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
