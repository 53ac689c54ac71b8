"""Running a dataset's pipeline on the embedded orchestrator (local Beam + SQLite ML Metadata)."""
from __future__ import annotations

import contextlib

# TFX's modules, not `tfx.v1`: importing tfx.v1 also imports its Google Cloud extensions (Vertex AI's SDK),
# about 7 s of every process start (python -X importtime) for nothing a local or Kubeflow run uses.
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipelines import config as config_lib
from pipelines.factory import create_pipeline
from pipelines.metadata.progress import Progress
from pipelines.runners import beam
from pipelines.spec import DatasetSpec


def run_local(spec: DatasetSpec, config=None) -> None:
    """What each `pipelines/<name>/local_runner.py` calls; the TFX CLI patches this LocalDagRunner.run."""
    config = config or config_lib.from_env()
    pipeline = create_pipeline(spec, config)
    if getattr(LocalDagRunner.run, "__wrapped__", None) is not None:
        # `tfx pipeline create/update` only reads the pipeline: the CLI patched run(), nothing runs
        LocalDagRunner().run(pipeline)
        return
    with contextlib.ExitStack() as services:
        if config.beam == "portable" and not any(a.startswith("--runner") for a in config.beam_args):
            log_dir = config.pipeline_root(spec.name) / "logs" / "beam"
            started = services.enter_context(beam.portable_services(
                config.beam_job_port, config.beam_worker_pool_port, log_dir))
            if (started["job_port"], started["worker_pool_port"]) != (config.beam_job_port,
                                                                     config.beam_worker_pool_port):
                # free ports taken for port 0: the Beam stages must be sent there
                config = config.replace(beam_job_port=started["job_port"],
                                        beam_worker_pool_port=started["worker_pool_port"])
                pipeline = create_pipeline(spec, config)
            print(f"[{spec.name}] Beam: job service (pid {started['job_service']}) on port {config.beam_job_port}, "
                  f"{config.beam_workers} SDK workers from the pool (pid {started['worker_pool']}) on port "
                  f"{config.beam_worker_pool_port}; logs in {log_dir}", flush=True)
        progress = Progress(spec.name, str(config.metadata_path(spec.name)))
        progress.start()
        try:
            LocalDagRunner().run(pipeline)
        except BaseException:
            _report(spec, config)  # what the failed run did get to, before the error goes on up
            raise
        finally:
            progress.stop()
    _report(spec, config)


def _report(spec: DatasetSpec, config) -> None:
    from pipelines.metadata.report import write_report

    try:
        print(f"[{spec.name}] report: {write_report(spec.name, config)}", flush=True)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its report
        print(f"[{spec.name}] no report: {exc}", flush=True)
