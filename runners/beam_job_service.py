"""Beam's own Python job service (apache_beam.runners.portability.local_job_service_main), honouring
--direct_num_workers.

The job service runs each submitted job with an FnApiRunner through `run_via_runner_api`, which leaves the
runner at one worker: only `run_pipeline` reads --direct_num_workers (apache_beam/runners/portability/
fn_api_runner/fn_runner.py, FnApiRunner.__init__ sets `_num_workers = 1`; run_pipeline overrides it from
DirectOptions). So every job would get one SDK worker from the external pool, whatever was asked. This main
applies the same rule to `run_via_runner_api` and then runs Beam's unchanged service.

    python -m runners.beam_job_service --port 8099
"""

from __future__ import annotations

import multiprocessing
import sys

from apache_beam.options import pipeline_options
from apache_beam.runners.portability import local_job_service_main
from apache_beam.runners.portability.fn_api_runner import fn_runner

_run_via_runner_api = fn_runner.FnApiRunner.run_via_runner_api


def _with_workers(self, pipeline_proto, options):
    workers = options.view_as(pipeline_options.DirectOptions).direct_num_workers
    workers = int(workers) if workers not in (None, "") else None  # options arrive through JSON: maybe a string
    self._num_workers = multiprocessing.cpu_count() if workers == 0 else (workers or self._num_workers)
    return _run_via_runner_api(self, pipeline_proto, options)


def main(argv=None) -> None:
    fn_runner.FnApiRunner.run_via_runner_api = _with_workers
    local_job_service_main.run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
