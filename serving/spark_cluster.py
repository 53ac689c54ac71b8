"""A Spark standalone cluster on this machine, from the installed pyspark wheel, for bulk scoring.

The wheel ships Spark's jars and bin/spark-class but not sbin/'s start scripts, so the master and workers are
started as those scripts would start them: `spark-class org.apache.spark.deploy.master.Master` and, for each of
SPARK_WORKERS (default 2), `spark-class org.apache.spark.deploy.worker.Worker spark://...`, each its own JVM in
its own process group, on loopback, on free ports, stopped when the block ends, fails or is interrupted
(core/processes.py). Each worker offers 1 core and SPARK_WORKER_MEMORY (default 2g); the job asks for
one 1-core executor per worker, so its tasks run in as many executor JVMs, each with its own Python workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from core.processes import Service, ServiceError, ServiceGroup, free_port

MASTER_MAIN = "org.apache.spark.deploy.master.Master"
WORKER_MAIN = "org.apache.spark.deploy.worker.Worker"


class SparkClusterError(ServiceError):
    """The cluster cannot start or be reached; the message says what to set."""


@dataclasses.dataclass
class SparkCluster:
    master_url: str  # spark://localhost:PORT
    ui_url: str  # the master's web UI, whose /json/ lists the workers
    workers: int
    cores_per_worker: int
    worker_memory: str
    log_dir: Path
    master: Optional[Service] = None
    worker_services: List[Service] = dataclasses.field(default_factory=list)

    def state(self) -> dict:
        return master_state(self.ui_url)

    def describe(self) -> str:
        return (
            f"Spark standalone cluster at {self.master_url}: {self.workers} workers x {self.cores_per_worker} "
            f"core, {self.worker_memory} each; logs in {self.log_dir}"
        )

    def session_conf(self) -> Dict[str, str]:
        """One executor per worker, sized to fit it."""
        return {
            "spark.executor.cores": str(self.cores_per_worker),
            "spark.driver.host": "localhost",
            "spark.cores.max": str(self.workers * self.cores_per_worker),
            "spark.executor.memory": executor_memory(self.worker_memory),
        }


def spark_home() -> Path:
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").is_file() or not (home / "jars").is_dir():
        raise SparkClusterError(
            f"the pyspark package at {home} has no bin/spark-class or jars/: reinstall it "
            f"(make venv), or set SPARK_MASTER=spark://host:port to use a running cluster"
        )
    return home


def executor_memory(worker_memory: str) -> str:
    """What an executor may ask of a worker offering `worker_memory`: the rest is the Python workers' (TensorFlow
    lives there, outside the JVM's heap)."""
    mb = _megabytes(worker_memory)
    return f"{max(512, mb // 2)}m"


def _megabytes(text: str) -> int:
    text = text.strip().lower()
    units = {"g": 1024, "m": 1, "k": 1 / 1024}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise SparkClusterError(f"SPARK_WORKER_MEMORY={text!r} must be like 2g or 1536m")
    return int(int(text[:-1]) * units[text[-1]])


def master_state(ui_url: str, timeout_s: float = 5) -> dict:
    with urllib.request.urlopen(f"{ui_url}/json/", timeout=timeout_s) as answer:
        return json.loads(answer.read().decode())


def _env(home: Path, log_dir: Path, work_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(log_dir),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOCAL_DIRS=str(work_dir / "local"),
        SPARK_NO_DAEMONIZE="1",
        # the executors' Python workers import the project and TensorFlow from this environment
        PYSPARK_PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
    )
    env.pop("SPARK_MASTER", None)
    return env


@contextlib.contextmanager
def standalone_cluster(
    log_dir: Path, workers: int = 2, worker_memory: str = "2g", timeout_s: float = 120
) -> Iterator[SparkCluster]:
    """A master and `workers` workers for the block, every one of them stopped when it ends."""
    if workers < 1:
        raise SparkClusterError(f"SPARK_WORKERS={workers} must be a positive integer")
    _megabytes(worker_memory)
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        raise SparkClusterError(
            "a Spark cluster needs Java 17 (its master and workers are JVMs): no `java` on "
            "PATH and JAVA_HOME is not set; install a JDK, or set SPARK_MASTER=spark://host:port"
        )
    home = spark_home()
    log_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="spark-cluster-"))
    (work_dir / "local").mkdir()
    env = _env(home, log_dir, work_dir)
    spark_class = str(home / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    master_url, ui_url = f"spark://localhost:{port}", f"http://localhost:{ui_port}"
    try:
        with ServiceGroup(log_dir) as group:
            master = group.start(
                "Spark's master",
                [spark_class, MASTER_MAIN, "--host", "localhost", "--port", str(port), "--webui-port", str(ui_port)],
                env,
                work_dir,
                "spark-master.log",
            )
            master.wait_until(
                lambda: master_state(ui_url, 1).get("status") == "ALIVE", f"answer on {ui_url}", timeout_s
            )
            services = []
            for i in range(1, workers + 1):
                services.append(
                    group.start(
                        f"Spark's worker-{i}",
                        [
                            spark_class,
                            WORKER_MAIN,
                            "--host",
                            "localhost",
                            "--cores",
                            "1",
                            "--memory",
                            worker_memory,
                            "--webui-port",
                            "0",
                            "--work-dir",
                            str(work_dir / f"worker-{i}"),
                            master_url,
                        ],
                        env,
                        work_dir,
                        f"spark-worker-{i}.log",
                    )
                )
            for service in services:
                service.wait_until(
                    lambda: _alive_workers(ui_url) >= workers, f"registering with the master at {master_url}", timeout_s
                )
            yield SparkCluster(master_url, ui_url, workers, 1, worker_memory, log_dir, master, services)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _alive_workers(ui_url: str) -> int:
    return sum(1 for w in master_state(ui_url, 1).get("workers", []) if w.get("state") == "ALIVE")
