"""The COVID pipeline end to end on the real (tiny) file, then `make forecast`'s command on the pushed model."""

import csv
import os
import subprocess
import sys

import pytest
from tfx import v1 as tfx

from metadata import results
from orchestration.config import PROJECT_ROOT
from orchestration.factory import create_pipeline
from pipelines.covid.spec import SPEC


@pytest.fixture(scope="module")
def cfg(covid_run):
    """The shared covid run (tests/shared_runs.py: 30 epochs instead of up to 500 and a loose bound, the plumbing
    is under test here, quality in bench/)."""
    return covid_run


def test_components_ran_and_regression_metrics_were_judged(cfg, assert_every_node_ran_once):
    assert_every_node_ran_once(SPEC, cfg)
    result = results.last_run("covid", cfg)
    assert result.blessed and result.pushed
    assert result.overall("example_count") == 5  # the five most recent windows
    assert {"mean_absolute_error", "mean_squared_error", "mean_squared_percentage_error"} <= set(
        result.metrics["overall"]
    )


def test_a_tight_mspe_bound_blocks_the_push(cfg, fork):
    cfg = fork(cfg)
    before = sorted(os.listdir(cfg.serving_root("covid")))
    strict = cfg.replace(max_mspe=1e-6)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, strict))
    result = results.last_run("covid", strict)
    assert result.blessed is False and result.pushed is False
    assert any("mean_squared_percentage_error" in f and "<= 1e-06" in f for f in result.failures), result.failures
    assert sorted(os.listdir(cfg.serving_root("covid"))) == before


def test_forecast_command_writes_100_non_negative_days(cfg):
    env = dict(os.environ, OUTPUT_DIR=str(cfg.output_dir), DATA_ROOT=str(cfg.data_root))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.covid.forecast"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "first zero day" in proc.stdout and "confirmed" in proc.stdout and "dead" in proc.stdout
    out = cfg.pipeline_root("covid") / "forecast"
    with open(out / "forecast.csv") as f:
        rows = list(csv.DictReader(f))
    history = [r for r in rows if r["kind"] == "history"]
    predicted = [r for r in rows if r["kind"] == "forecast"]
    assert len(history) == 46 and len(predicted) == 100
    assert predicted[0]["date"] == "2020-03-11" and predicted[-1]["date"] == "2020-06-18"
    assert all(int(r[c]) >= 0 for r in predicted for c in ("confirmed_num", "cured_num", "dead_num"))
    assert (out / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forecast_without_a_model_says_what_to_do(tmp_path):
    env = dict(os.environ, OUTPUT_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.covid.forecast"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "no pushed covid model under" in proc.stderr and "make run PIPELINE=covid" in proc.stderr


def test_report_has_the_forecast_plot(cfg):
    from metadata import report

    page = report.write_report("covid", cfg).read_text()
    forecast = page.split('<section id="forecast">')[1].split("</section>")[0]
    assert "data:image/png;base64," in forecast and "the book: confirmed day 55" in forecast
    assert 'id="curves"' not in page  # no ROC for a regression
