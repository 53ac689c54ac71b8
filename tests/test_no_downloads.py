"""No Beam stage downloads anything: Beam 2.74's DirectRunner first tries Prism, whose binary it fetches from
GitHub for each pipeline; the project's Beam arguments keep it from trying (core/seams.py). The positive
control shows the trap catches the download when the flag is missing."""

import subprocess
import sys

import pytest

from download_trap import DownloadTrap
from orchestration import config as config_lib

PIPELINE = """
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
with beam.Pipeline(options=PipelineOptions(sys.argv[1:])) as p:
    _ = p | beam.Create(range(10)) | beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey() | beam.Map(print)
"""


@pytest.fixture()
def trap():
    found = DownloadTrap()
    yield found
    found.close()


def _run(args, trap, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)} | trap.env()
    return subprocess.run(
        [sys.executable, "-c", PIPELINE, *args], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )


@pytest.mark.parametrize("mode", ["in_memory", "multiprocess"])
def test_the_direct_runner_modes_try_no_download(mode, trap, tmp_path):
    args = config_lib.PipelineConfig(beam=mode, beam_workers=2).beam_pipeline_args()
    proc = _run(args, trap, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert trap.requests == []


def test_without_the_flag_the_direct_runner_tries_to_download_prism(trap, tmp_path):
    args = [a for a in config_lib.PipelineConfig().beam_pipeline_args() if a != "--allow_unsafe_triggers"]
    proc = _run(args, trap, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]  # it falls back to the FnApiRunner
    assert any("github.com" in request for request in trap.requests), trap.requests
