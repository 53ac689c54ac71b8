"""BEAM=flink: every Beam stage of a run on a Flink session cluster, through Beam's Flink job server.

For the run (runners/local.py) `flink_services` starts, each in its own process group and stopped when
the run ends, fails or is interrupted:
    a Flink session cluster   one JobManager and FLINK_TASKMANAGERS TaskManagers (default 2), each its own JVM,
                              on loopback, from Flink's own scripts (bin/jobmanager.sh, bin/taskmanager.sh
                              start-foreground) with a configuration written for the run (write_conf); or none,
                              when FLINK_MASTER=host:port names a running cluster's REST endpoint
    Beam's Flink job server   org.apache.beam.runners.flink.FlinkJobServerDriver, once per run (Beam's FlinkRunner
                              would start one per pipeline, so per TFX component: runners/portability/
                              flink_runner.py, FlinkJarJobServer), on BEAM_JOB_PORT
    an SDK worker pool        Beam's worker_pool_main on BEAM_WORKER_POOL_PORT, which the TaskManagers ask for
                              Python SDK workers (--environment_type=EXTERNAL), as BEAM=portable does
Every stage is then submitted with PortableRunner --job_endpoint (config.beam_pipeline_args), so Beam never
starts or downloads a job server itself. The two Beam ports stay fixed (TFX's cache key holds the Beam
arguments); Flink's own ports are free ones chosen by the run. Logs: outputs/<pipeline>/logs/flink/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import yaml

from core.processes import Service, ServiceGroup, free_port
from runners import engines
from runners.beam import BeamServiceError, check_worker_imports, start_worker_pool, take_ports, worker_env

JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"


class FlinkError(BeamServiceError):
    """The Flink cluster or its job server cannot be used; the message says what to set."""


@dataclasses.dataclass
class FlinkCluster:
    rest_url: str  # http://host:port of the JobManager's REST API
    version: str  # what the cluster says it runs
    taskmanagers: int
    slots: int  # in all
    started: bool  # by this run (False: FLINK_MASTER's)
    jobmanager: Optional[Service] = None
    taskmanager_services: List[Service] = dataclasses.field(default_factory=list)

    @property
    def master(self) -> str:
        """host:port, as the job server's --flink-master takes it."""
        return self.rest_url.split("://", 1)[-1].rstrip("/")

    def describe(self) -> str:
        who = "started for this run" if self.started else "FLINK_MASTER's"
        return (
            f"Flink {self.version} session cluster ({who}) at {self.rest_url}: {self.taskmanagers} "
            f"TaskManagers, {self.slots} slots"
        )

    def lost_taskmanagers(self) -> List[str]:
        """The TaskManagers this run started whose JVM is gone: 'taskmanager-2 (pid N, exit -9, log ...)'."""
        return [
            f"{s.name} (pid {s.pid}, exit {s.exited()}, log {s.log})"
            for s in self.taskmanager_services
            if s.exited() is not None
        ]


def rest(rest_url: str, path: str, timeout_s: float = 5) -> dict:
    with urllib.request.urlopen(f"{rest_url.rstrip('/')}{path}", timeout=timeout_s) as answer:
        return json.loads(answer.read().decode())


def jobs(rest_url: str) -> List[dict]:
    """Flink's own list of the cluster's jobs (REST /jobs/overview), oldest first."""
    return sorted(rest(rest_url, "/jobs/overview").get("jobs", []), key=lambda j: j.get("start-time", 0))


def _rest_url(master: str) -> str:
    master = master.strip().rstrip("/")
    return master if "://" in master else f"http://{master}"


# Read where a job's graph is built (JobGraphGenerator, in Beam's job server) and written into each task's
# configuration, so they hold on FLINK_MASTER's cluster too: the job server is given a folder with them.
# A record bigger than the sort buffer Flink gives a grouping (a share of managed memory split among every sort of
# the job, 1.4 MB on this cluster) is spilled with its key instead of failing the job: TFDV's one accumulator for
# ~60 features (Transform's post-transform statistics of a 30-column table) is bigger ("The record exceeds the
# maximum size of a sort buffer (current maximum: 1474560 bytes)")
JOB_GRAPH_SETTINGS = {"taskmanager.runtime.large-record-handler": True}


def write_job_server_conf(conf_dir: Path) -> Path:
    """The job server's Flink configuration for FLINK_MASTER's cluster: JOB_GRAPH_SETTINGS alone."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(JOB_GRAPH_SETTINGS, sort_keys=True))
    return conf_dir


def write_conf(
    conf_dir: Path,
    home: Path,
    *,
    rpc_port: int,
    rest_port: int,
    slots: int,
    parallelism: int,
    tmp_dir: Path,
    taskmanager_memory_mb: int = 4096,
) -> Path:
    """A Flink configuration for a session cluster on this machine (2 cores, 24 GB); returns its folder.

    Memory: 1 GB for the JobManager, 4 GB per TaskManager of which 256 MB network buffers, 1 GB task off-heap
    (direct memory for gRPC's buffers) and a tenth managed memory (Flink's default 0.4 left a 2 GB TaskManager
    570 MB of heap, and the gRPC thread that receives a Beam stage's output ran out of it on a 1,000,000-row
    table: java.lang.OutOfMemoryError in grpc-default-executor, after which the job hung, RUNNING, with no CPU
    used; with more heap, it then ran out of direct memory). An uncaught exception now kills the TaskManager
    (cluster.uncaught-exception-handling: FAIL), so such a failure restarts the task or fails the run instead
    of hanging it. A Beam batch stage is
    a DataSet job with many blocking exchanges at once, and each sort-merge result partition reserves
    taskmanager.network.sort-shuffle.min-buffers (Flink's default 512 x 32 KB) at start, more than a small
    TaskManager has ("Insufficient number of network buffers: required 512" on Titanic's ExampleGen); 64 is
    enough for these partitions. Restarts: up to 4, 1 s then 2, 4, 8 s apart, so a lost TaskManager's tasks are
    retried on the slots left (hence 2 slots per TaskManager by default)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load((home / "conf" / "config.yaml").read_text()) or {}
    java_opts = (((shipped.get("env") or {}).get("java") or {}).get("opts") or {}).get("all", "")
    settings = {
        # Flink's own Java 17 flags (--add-opens ...), as its distribution ships them in conf/config.yaml
        "env.java.opts.all": java_opts,
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": "localhost",
        "jobmanager.memory.process.size": "1024m",
        "jobmanager.execution.failover-strategy": "region",
        "rest.address": "localhost",
        "rest.bind-address": "localhost",
        "rest.port": rest_port,
        "blob.server.port": "0",
        "taskmanager.host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.rpc.port": "0",
        "taskmanager.data.port": 0,
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": f"{taskmanager_memory_mb}m",
        "taskmanager.memory.network.min": "256m",
        "taskmanager.memory.network.max": "256m",
        "taskmanager.memory.managed.fraction": 0.1,
        # gRPC's receive buffers for a stage's output (Beam's data plane, netty) are direct memory, which Flink
        # caps at framework + task off-heap + network (384 MB by default): 1,000,000 rows from one bundle ran out
        # ("Cannot reserve 2097152 bytes of direct buffer memory ... limit: 402653184")
        "taskmanager.memory.task.off-heap.size": "1024m",
        "cluster.uncaught-exception-handling": "FAIL",
        "taskmanager.network.sort-shuffle.min-buffers": 64,
        **JOB_GRAPH_SETTINGS,
        "parallelism.default": parallelism,
        # exponential-delay, not fixed-delay: a lost TaskManager fails every task region it held at once, and
        # fixed-delay counts each as an attempt (3 attempts were spent in 26 ms on Titanic's Transform); since
        # Flink 1.19 (FLIP-364) exponential-delay counts the failures within one backoff as one attempt
        "restart-strategy.type": "exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff": "1 s",
        "restart-strategy.exponential-delay.max-backoff": "10 s",
        "restart-strategy.exponential-delay.backoff-multiplier": 2.0,
        "restart-strategy.exponential-delay.attempts-before-reset-backoff": 4,
        # a TaskManager that stops answering is given up on in 20 s, not Flink's default 50 s
        "heartbeat.interval": 5000,
        "heartbeat.timeout": 20000,
        "slot.request.timeout": 120000,
        "io.tmp.dirs": str(tmp_dir),
        "web.submit.enable": False,
        # both TaskManagers get tasks (Flink fills one TaskManager's slots first otherwise)
        "cluster.evenly-spread-out-slots": True,
        # Beam's classes (and all they use) from the cluster's lib/, where start_cluster puts the runner, not from
        # each job's staged copy: then Beam's Flink runner keeps a job's SDK workers between its stages for
        # --environment_cache_millis (FlinkExecutableStageContextFactory releases a stage's context at once when
        # its class came from the job's own classloader), and the runner's code stays loaded from job to job.
        # Parent-first for all, not only org.apache.beam.: Beam's classes from the parent and joda-time from the
        # job's jar fail ("cannot assign instance of org.joda.time.Duration to field ... of type ...Duration")
        "classloader.resolve-order": "parent-first",
    }
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=True))
    # console only: start-foreground's output goes to the log file this run opens for each JVM
    (conf_dir / "log4j-console.properties").write_text(
        "rootLogger.level = INFO\nrootLogger.appenderRef.console.ref = ConsoleAppender\n"
        "appender.console.name = ConsoleAppender\nappender.console.type = CONSOLE\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n\n"
        "logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline\nlogger.netty.level = OFF\n"
    )
    return conf_dir


def _flink_env(conf_dir: Path, log_dir: Path, java_bin: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(FLINK_CONF_DIR=str(conf_dir), FLINK_LOG_DIR=str(log_dir))
    env.setdefault("JAVA_HOME", str(Path(java_bin).resolve().parent.parent))
    return env


def cluster_lib(home: Path, beam_lib_jar: Path, folder: Path) -> Path:
    """The cluster's lib/: Flink's own jars and Beam's runner (without Flink's classes), linked, not copied."""
    folder.mkdir(parents=True, exist_ok=True)
    for jar in [*sorted((home / "lib").glob("*.jar")), beam_lib_jar]:
        (folder / jar.name).symlink_to(jar)
    return folder


def start_cluster(
    group: ServiceGroup,
    home: Path,
    work_dir: Path,
    taskmanagers: int,
    slots: int,
    parallelism: int,
    java_bin: str,
    beam_lib_jar: Path,
    timeout_s: float = 180,
) -> FlinkCluster:
    """A JobManager and `taskmanagers` TaskManagers, each its own JVM, started from Flink's scripts with Beam's
    runner in their lib/; returns once the REST API lists every TaskManager."""
    rest_port, rpc_port = free_port(), free_port()
    tmp_dir = work_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    conf_dir = write_conf(
        work_dir / "conf",
        home,
        rpc_port=rpc_port,
        rest_port=rest_port,
        slots=slots,
        parallelism=parallelism,
        tmp_dir=tmp_dir,
    )
    env = _flink_env(conf_dir, group.log_dir, java_bin)
    env["FLINK_LIB_DIR"] = str(cluster_lib(home, beam_lib_jar, work_dir / "lib"))  # bin/config.sh reads it
    rest_url = f"http://localhost:{rest_port}"
    jobmanager = group.start(
        "Flink's JobManager", [str(home / "bin" / "jobmanager.sh"), "start-foreground"], env, work_dir, "jobmanager.log"
    )
    jobmanager.wait_until(lambda: bool(rest(rest_url, "/overview", 1)), f"answer on {rest_url}", timeout_s)
    services = []
    for i in range(1, taskmanagers + 1):
        name = f"taskmanager-{i}"
        services.append(
            group.start(
                f"Flink's TaskManager {name}",
                [str(home / "bin" / "taskmanager.sh"), "start-foreground", "-D", f"taskmanager.resource-id={name}"],
                env,
                work_dir,
                f"{name}.log",
            )
        )
    for service in services:
        service.wait_until(
            lambda: rest(rest_url, "/overview", 1).get("taskmanagers", 0) >= taskmanagers,
            f"registering with the JobManager at {rest_url}",
            timeout_s,
        )
    return FlinkCluster(
        rest_url,
        rest(rest_url, "/config")["flink-version"],
        taskmanagers,
        taskmanagers * slots,
        True,
        jobmanager,
        services,
    )


def connect(master: str) -> FlinkCluster:
    """FLINK_MASTER's cluster, as its REST API describes it."""
    url = _rest_url(master)
    try:
        config, overview = rest(url, "/config"), rest(url, "/overview")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FlinkError(
            f"FLINK_MASTER={master}: no Flink REST API answers at {url} ({reason}); start the "
            f"cluster, or set FLINK_MASTER to its JobManager's REST address (host:port, "
            f"rest.port, 8081 by default), or unset it to start one for the run"
        ) from None
    if overview.get("taskmanagers", 0) < 1:
        raise FlinkError(f"FLINK_MASTER={master}: the cluster at {url} has no TaskManager registered; start one")
    return FlinkCluster(
        url, config.get("flink-version", "?"), overview["taskmanagers"], overview.get("slots-total", 0), False
    )


def check_versions(cluster: FlinkCluster, pins: engines.FlinkPins) -> None:
    """The job server's Flink runner is built for one Flink minor version; a cluster of another refuses or
    misreads its jobs, so that is said before anything is submitted."""
    minor = ".".join(cluster.version.split(".")[:2])
    if minor != pins.runner_flink_minor:
        raise FlinkError(
            f"the Flink cluster at {cluster.rest_url} runs Flink {cluster.version}, but Beam's job server here "
            f"({pins.runner_artifact} {pins.beam_java_version}) is built for Flink {pins.runner_flink_minor}: "
            f"point FLINK_MASTER at a Flink {pins.runner_flink_minor} cluster, or unset it to start one"
        )


def start_job_server(
    group: ServiceGroup,
    jar: Path,
    cluster: FlinkCluster,
    job_port: int,
    work_dir: Path,
    java_bin: str,
    conf_dir: Optional[Path] = None,
) -> Service:
    artifacts = work_dir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        java_bin,
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
        "-cp",
        str(jar),
        JOB_SERVER_MAIN,
        "--flink-master",
        cluster.master,
        "--job-host",
        "localhost",
        "--job-port",
        str(job_port),
        "--artifact-port",
        "0",
        "--expansion-port",
        "0",
        "--artifacts-dir",
        str(artifacts),
        "--clean-artifacts-per-job",
    ]
    if conf_dir is not None:
        argv += ["--flink-conf-dir", str(conf_dir)]
    server = group.start("Beam's Flink job server", argv, dict(os.environ), work_dir, "job-server.log")
    server.wait_listening(job_port)
    return server


@dataclasses.dataclass
class FlinkRun:
    cluster: FlinkCluster
    job_port: int
    worker_pool_port: int
    job_server: Service
    worker_pool: Service
    log_dir: Path
    pins: engines.FlinkPins
    started_at_ms: int

    def describe(self) -> str:
        return (
            f"{self.cluster.describe()}; Beam's Flink job server ({self.pins.runner_artifact} "
            f"{self.pins.beam_java_version}) on port {self.job_port}; SDK worker pool on port "
            f"{self.worker_pool_port}; logs in {self.log_dir}"
        )

    def jobs(self) -> List[dict]:
        """The cluster's jobs submitted since this run began."""
        return [j for j in jobs(self.cluster.rest_url) if j.get("start-time", 0) >= self.started_at_ms]


@contextlib.contextmanager
def flink_services(
    log_dir: Path,
    *,
    job_port: int,
    worker_pool_port: int,
    taskmanagers: int = 2,
    slots: int = 2,
    parallelism: Optional[int] = None,
    master: str = "",
    env: Optional[Dict[str, str]] = None,
    worker_python_dir: Optional[Path] = None,
    cache: Optional[Path] = None,
) -> Iterator[FlinkRun]:
    """The cluster (or FLINK_MASTER's), the job server and the worker pool for the block; everything started is
    stopped when it ends. Refused in one line, before anything starts, when Java, the engines or the workers'
    imports are missing."""
    java_bin = engines.java(env)
    pins = engines.flink_pins()
    jar, beam_lib_jar = engines.job_server_jars(cache)
    home = None if master else engines.flink_home(cache)
    ports = {"BEAM_JOB_PORT": job_port, "BEAM_WORKER_POOL_PORT": worker_pool_port}
    held = take_ports(ports)
    for sock in held.values():  # a JVM and Beam's pool bind without SO_REUSEPORT: free ports, not held ones
        sock.close()
    workers = worker_env(env, worker_python_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    check_worker_imports(workers, log_dir)
    work_dir = Path(tempfile.mkdtemp(prefix="flink-run-"))
    started_at_ms = int(time.time() * 1000)
    try:
        with ServiceGroup(log_dir) as group:
            if master:
                cluster = connect(master)
            else:
                cluster = start_cluster(
                    group, home, work_dir, taskmanagers, slots, parallelism or taskmanagers, java_bin, beam_lib_jar
                )
            check_versions(cluster, pins)
            conf = write_job_server_conf(work_dir / "job-server-conf") if master else work_dir / "conf"
            server = start_job_server(group, jar, cluster, ports["BEAM_JOB_PORT"], work_dir, java_bin, conf)
            pool = start_worker_pool(group, ports["BEAM_WORKER_POOL_PORT"], workers, log_dir)
            yield FlinkRun(
                cluster,
                ports["BEAM_JOB_PORT"],
                ports["BEAM_WORKER_POOL_PORT"],
                server,
                pool,
                log_dir,
                pins,
                started_at_ms,
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def job_table(run: FlinkRun, stage_names: Dict[str, str]) -> List[dict]:
    """[{stage, jid, state, seconds}] for the run's Flink jobs; `stage_names`: job name -> TFX component id."""
    rows = []
    for job in run.jobs():
        rows.append(
            {
                "stage": stage_names.get(job.get("name", ""), job.get("name", "")),
                "jid": job["jid"],
                "name": job.get("name", ""),
                "state": job.get("state", "?"),
                "seconds": round(job.get("duration", 0) / 1000, 1),
            }
        )
    return rows
