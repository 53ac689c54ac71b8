"""Running a dataset's pipeline on the embedded orchestrator (local Beam + SQLite ML Metadata)."""
from __future__ import annotations

from tfx import v1 as tfx

from pipelines import config as config_lib
from pipelines.factory import create_pipeline
from pipelines.metadata.progress import Progress
from pipelines.spec import DatasetSpec


def run_local(spec: DatasetSpec, config=None) -> None:
    """What each `pipelines/<name>/local_runner.py` calls; the TFX CLI patches this LocalDagRunner.run."""
    config = config or config_lib.from_env()
    pipeline = create_pipeline(spec, config)
    progress = Progress(spec.name, str(config.metadata_path(spec.name)))
    progress.start()
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception:
        if getattr(tfx.orchestration.LocalDagRunner.run, "__wrapped__", None) is None:
            _report(spec, config)  # what the failed run did get to, before the error goes on up
        raise
    finally:
        progress.stop()
    if getattr(tfx.orchestration.LocalDagRunner.run, "__wrapped__", None) is not None:
        return  # `tfx pipeline create/update` only reads the pipeline: the CLI patched run(), nothing ran
    _report(spec, config)


def _report(spec: DatasetSpec, config) -> None:
    from pipelines.metadata.report import write_report

    try:
        print(f"[{spec.name}] report: {write_report(spec.name, config)}", flush=True)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its report
        print(f"[{spec.name}] no report: {exc}", flush=True)
