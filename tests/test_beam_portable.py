"""Beam beyond the driver process: BEAM=portable (Beam's job service + an external pool of SDK worker processes).

Each custom ExampleGen writes the same examples through two SDK workers as in memory; a worker that cannot
import the project stops the run saying so; the services never outlive their block; and Titanic end to end
gives the same metrics, the KS metric computed by the workers.
"""

import os
import re
import socket
import stat
import subprocess
import sys

import pytest
import tensorflow as tf
from google.protobuf import message
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT
from runners import beam

# Every test here is the longer tier's: the portable topology is checked when a change touches runners or Beam.
pytestmark = pytest.mark.slow


def _listening(port):
    with socket.socket() as s:
        return s.connect_ex(("localhost", port)) == 0


def _group_alive(pid):
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """Both services on free ports (port 0: taken from the OS and held until the services bound them)."""
    log_dir = tmp_path_factory.mktemp("beam-logs")
    with beam.portable_services(0, 0, log_dir) as started:
        yield started, log_dir
    pids = {k: v for k, v in started.items() if not k.endswith("port")}
    assert not any(_group_alive(pid) for pid in pids.values())  # the pool's workers went with it
    assert not _listening(started["job_port"]) and not _listening(started["worker_pool_port"])


def portable_args(started, workers=2):
    cfg = config_lib.PipelineConfig(
        beam="portable",
        beam_workers=workers,
        beam_job_port=started["job_port"],
        beam_worker_pool_port=started["worker_pool_port"],
    )
    return cfg.beam_pipeline_args()


def run_example_gen(component, out_dir, beam_args):
    """The component's executor, as TFX calls it (exec properties serialized), with these Beam arguments;
    returns {split: its examples, serialized deterministically and sorted}."""
    props = {
        k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
        for k, v in component.exec_properties.items()
        if v is not None
    }
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    executor = component.executor_spec.executor_class(
        base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=str(out_dir / ".tmp"))
    )
    executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
    found = {}
    for split in ("train", "eval"):
        files = tf.io.gfile.glob(str(out_dir / f"Split-{split}" / "*"))
        # protobuf map order is not fixed across processes: compare examples, not the bytes each process wrote
        found[split] = sorted(
            tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
        )
    return found


def _example_gens(cifar2_subset, imdb_subset, covid_dir):
    from pipelines.cifar2.spec import make_example_gen as images
    from pipelines.covid.spec import make_example_gen as windows
    from pipelines.imdb.spec import make_example_gen as delimited

    return {
        "images": images(str(cifar2_subset)),
        "delimited": delimited(str(imdb_subset)),
        "windows": windows(str(covid_dir)),
    }


@pytest.mark.parametrize("kind", ["images", "delimited", "windows"])
def test_each_custom_example_gen_gives_the_same_examples_through_sdk_workers(
    kind, services, cifar2_subset, imdb_subset, tmp_path
):
    from data.fetch import fetch

    covid = fetch("covid", tmp_path / "data", log=lambda m: None)
    component = _example_gens(cifar2_subset, imdb_subset, covid)[kind]
    in_memory = run_example_gen(component, tmp_path / "in_memory", config_lib.PipelineConfig().beam_pipeline_args())
    portable = run_example_gen(component, tmp_path / "portable", portable_args(services[0]))
    assert in_memory["train"] and in_memory["eval"]
    assert portable == in_memory
    _, log_dir = services
    assert "Starting worker" in (log_dir / "beam-worker-pool.log").read_text()  # SDK worker processes did it


def _python_without_the_project(folder):
    """A `python` for the workers' PATH that cannot import the project: what a worker image without it has."""
    wrapper = folder / "python"
    strip = (
        f"import os, sys; sys.path[:] = [p for p in sys.path if p and "
        f"os.path.realpath(p) != {str(PROJECT_ROOT.resolve())!r}]; exec(compile(sys.argv[1], '<worker>', 'exec'))"
    )
    wrapper.write_text(
        f'#!/bin/sh\n[ "$1" = "-c" ] && exec {sys.executable} -c "{strip}" "$2"\nexec {sys.executable} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return folder


def test_workers_that_cannot_import_the_project_stop_the_run_saying_so(tmp_path):
    folder = _python_without_the_project(tmp_path)
    assert subprocess.run([str(folder / "python"), "-c", "import components"], cwd=tmp_path).returncode != 0
    with pytest.raises(
        beam.BeamServiceError,
        match=r"Beam SDK workers cannot import the project "
        r"\(ModuleNotFoundError: No module named 'components'\)",
    ):
        with beam.portable_services(0, 0, tmp_path / "logs", worker_python_dir=folder):
            pytest.fail("the services must not start")
    assert not list((tmp_path / "logs").glob("beam-*.log"))  # refused before either service started


def test_a_failing_block_still_stops_both_services(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with beam.portable_services(0, 0, tmp_path) as started:
            assert _listening(started["job_port"]) and _listening(started["worker_pool_port"])
            raise RuntimeError("boom")
    assert not any(_group_alive(started[k]) for k in ("job_service", "worker_pool"))
    assert not _listening(started["job_port"]) and not _listening(started["worker_pool_port"])


def test_a_taken_port_is_named(tmp_path):
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(beam.BeamServiceError, match=f"port {port} is in use .*set BEAM_JOB_PORT"):
            with beam.portable_services(port, 0, tmp_path):
                pass


def test_the_evaluator_on_sdk_workers_gives_exactly_the_default_runs_metrics(titanic_run, services, tmp_path):
    """TFMA with the pipeline's EvalConfig (the custom KS metric included) on the default run's model and eval
    examples, through the two SDK workers: the same numbers, per slice."""
    import tensorflow_model_analysis as tfma
    from apache_beam.options.pipeline_options import PipelineOptions

    from metadata import results
    from orchestration.factory import eval_config
    from pipelines.titanic.spec import SPEC

    store = results.open_store(titanic_run.metadata_path("titanic"))
    model_dir = results.latest_outputs(store, "titanic", "Trainer")[1]["model"][0].uri + "/Format-Serving"
    examples = results.latest_outputs(store, "titanic", "CsvExampleGen")[1]["examples"][0].uri
    config = eval_config(SPEC, titanic_run)
    for metrics_spec in config.metrics_specs:  # no baseline here: metrics only, no validation
        for field in ("thresholds", "per_slice_thresholds", "cross_slice_thresholds"):
            metrics_spec.ClearField(field)
        for metric in metrics_spec.metrics:
            for field in ("threshold", "per_slice_thresholds", "cross_slice_thresholds"):
                metric.ClearField(field)
    tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=config),
        eval_config=config,
        data_location=f"{examples}/Split-eval/*",
        file_format="tfrecords",
        output_path=str(tmp_path),
        pipeline_options=PipelineOptions(portable_args(services[0])),
    )
    on_workers = results.load_metrics(str(tmp_path))
    default = results.last_run("titanic", titanic_run).metrics
    assert set(on_workers) == set(default)  # overall and every slice
    for slice_name, values in default.items():
        for metric in ("auc", "ks", "example_count"):
            assert on_workers[slice_name][metric] == pytest.approx(values[metric], abs=1e-9), (slice_name, metric)


def test_titanic_end_to_end_on_two_sdk_workers(titanic_run, titanic_data, tmp_path):
    """The whole pipeline through `make run`'s runner with BEAM=portable: every Beam stage (ExampleGen,
    statistics, Transform, the Evaluator with its KS metric) runs in the pool's worker processes.

    The examples are the same, but two workers write each split as several shards whose order depends on how
    the bundles fell, so the Trainer meets the examples in another order than after an in-memory run (or a
    previous portable one) and the seeded model differs a little: overall AUC within 0.02 and KS within 0.05
    (slices of 38 to 121 examples move more, by construction of KS). The test above is the exact one."""
    from metadata import results

    env = dict(
        os.environ,
        OUTPUT_DIR=str(tmp_path / "out"),
        DATA_ROOT=str(titanic_data),
        BEAM="portable",
        BEAM_WORKERS="2",
        BEAM_JOB_PORT="0",
        BEAM_WORKER_POOL_PORT="0",
    )
    proc = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "pipelines" / "titanic" / "local_runner.py")],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 SDK workers from the pool" in proc.stdout
    portable = results.last_run("titanic", config_lib.from_env(env))
    default = results.last_run("titanic", titanic_run)
    assert portable.blessed and portable.pushed
    assert set(portable.metrics) == set(default.metrics)  # overall and every slice, KS included
    for slice_name, values in default.metrics.items():
        assert portable.metrics[slice_name]["example_count"] == values["example_count"]
    assert portable.overall("auc") == pytest.approx(default.overall("auc"), abs=0.02)
    assert portable.overall("ks") == pytest.approx(default.overall("ks"), abs=0.05)
    pool_log = (tmp_path / "out" / "titanic" / "logs" / "beam" / "beam-worker-pool.log").read_text()
    assert pool_log.count("Starting worker") >= 2
    ports = [int(p) for p in re.findall(r"on port (\d+)", proc.stdout)[:2]]
    assert len(ports) == 2 and not any(_listening(p) for p in ports)
