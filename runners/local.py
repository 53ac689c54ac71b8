"""Running a dataset's pipeline on the embedded orchestrator (local Beam + SQLite ML Metadata)."""

from __future__ import annotations

import contextlib
import json
import time

# TFX's modules, not `tfx.v1`: importing tfx.v1 also imports its Google Cloud extensions (Vertex AI's SDK),
# seconds of every process start (python -X importtime shows them) for nothing a local or Kubeflow run uses.
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from core import seams
from core.processes import SERVICES_REFUSED, ServiceError
from metadata.progress import Progress
from orchestration import config as config_lib
from orchestration.factory import create_pipeline, flink_job_name
from orchestration.spec import DatasetSpec
from runners import beam, engines, flink


def run_local(spec: DatasetSpec, config=None) -> None:
    """What each `pipelines/<name>/local_runner.py` calls; the TFX CLI patches this LocalDagRunner.run."""
    config = config or config_lib.from_env()
    pipeline = create_pipeline(spec, config)
    if getattr(LocalDagRunner.run, "__wrapped__", None) is not None:
        # `tfx pipeline create/update` only reads the pipeline: the CLI patched run(), nothing runs
        LocalDagRunner().run(pipeline)
        return
    seams.no_tfx_ephemeral_package(config.beam_pipeline_args())  # where the Beam workers run this environment
    with contextlib.ExitStack() as services:
        on_flink = None
        if config.beam in ("portable", "flink") and not config.user_runner:
            try:
                config, on_flink = _start_services(spec, config, services)
            except (ServiceError, engines.EngineError) as exc:
                # one line the caller shows alone (runners/run.py, SERVICES_REFUSED)
                first, _, more = str(exc).partition("\n")
                print(f"[{spec.name}] {SERVICES_REFUSED}{first}" + (f"\n{more}" if more else ""), flush=True)
                raise SystemExit(2) from None
            pipeline = create_pipeline(spec, config)  # the ports the services got (port 0: free ones)
        progress = Progress(spec.name, str(config.metadata_path(spec.name)))
        progress.start()
        try:
            LocalDagRunner().run(pipeline)
        except BaseException:
            if on_flink is not None:
                _flink_summary(spec, on_flink, pipeline, failed=True)
            _report(spec, config)  # what the failed run did get to, before the error goes on up
            raise
        finally:
            progress.stop()
        if on_flink is not None:
            _flink_summary(spec, on_flink, pipeline)
    _report(spec, config)


def _start_services(spec: DatasetSpec, config, services: contextlib.ExitStack):
    if config.beam == "portable":
        log_dir = config.pipeline_root(spec.name) / "logs" / "beam"
        started = services.enter_context(
            beam.portable_services(config.beam_job_port, config.beam_worker_pool_port, log_dir)
        )
        config = config.replace(beam_job_port=started["job_port"], beam_worker_pool_port=started["worker_pool_port"])
        print(
            f"[{spec.name}] Beam: job service (pid {started['job_service']}) on port {config.beam_job_port}, "
            f"{config.beam_workers} SDK workers from the pool (pid {started['worker_pool']}) on port "
            f"{config.beam_worker_pool_port}; logs in {log_dir}",
            flush=True,
        )
        return config, None
    log_dir = config.pipeline_root(spec.name) / "logs" / "flink"
    if config.flink_master:
        what = f"Beam's job server for FLINK_MASTER={config.flink_master}'s cluster"
    else:
        slots = f"{config.flink_taskmanagers} TaskManagers x {config.flink_slots} slots"
        what = f"a session cluster ({slots}) and Beam's job server"
    print(
        f"[{spec.name}] Beam on Flink: starting {what} and the SDK worker pool",
        flush=True,
    )
    started = time.monotonic()
    run = services.enter_context(
        flink.flink_services(
            log_dir,
            job_port=config.beam_job_port,
            worker_pool_port=config.beam_worker_pool_port,
            taskmanagers=config.flink_taskmanagers,
            slots=config.flink_slots,
            parallelism=config.flink_stage_parallelism,
            master=config.flink_master,
        )
    )
    config = config.replace(beam_job_port=run.job_port, beam_worker_pool_port=run.worker_pool_port)
    print(
        f"[{spec.name}] Beam on Flink ({time.monotonic() - started:.1f} s to start): {run.describe()}; "
        f"each stage at parallelism {config.flink_stage_parallelism}",
        flush=True,
    )
    return config, run


def _flink_summary(spec: DatasetSpec, run: "flink.FlinkRun", pipeline, failed: bool = False) -> None:
    """Each Beam stage's Flink job as the cluster's REST API lists it, printed and kept beside the logs
    (flink-jobs.json) once the cluster is gone; on a failure, the TaskManagers that were lost."""
    names = {flink_job_name(pipeline.pipeline_info.pipeline_name, c.id): c.id for c in pipeline.components}
    try:
        rows = flink.job_table(run, names)
    except OSError as exc:
        print(f"[{spec.name}] Flink: the cluster's job list could not be read ({exc})", flush=True)
        rows = []
    for row in rows:
        print(
            f"[{spec.name}] Flink job {row['jid']}  {row['stage']:<16} {row['state']:<9} {row['seconds']:.1f} s",
            flush=True,
        )
    lost = run.cluster.lost_taskmanagers()
    if lost:  # a run that recovered says so too: its jobs were restarted on the TaskManagers left
        print(
            f"[{spec.name}] Flink: lost TaskManager(s) during the run: {'; '.join(lost)}"
            + ("" if failed else "; Flink restarted the jobs on the slots left"),
            flush=True,
        )
    record = {
        "cluster": {
            "rest_url": run.cluster.rest_url,
            "flink_version": run.cluster.version,
            "taskmanagers": run.cluster.taskmanagers,
            "slots": run.cluster.slots,
            "started_by_run": run.cluster.started,
        },
        "job_server": f"{run.pins.runner_artifact} {run.pins.beam_java_version}",
        "jobs": rows,
        "lost_taskmanagers": lost,
        "failed": failed,
    }
    (run.log_dir / "flink-jobs.json").write_text(json.dumps(record, indent=2))


def _report(spec: DatasetSpec, config) -> None:
    from metadata.report import write_report  # heavy (TFMA, matplotlib): only once the run is over

    try:
        print(f"[{spec.name}] report: {write_report(spec.name, config)}", flush=True)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its report
        print(f"[{spec.name}] no report: {exc}", flush=True)
