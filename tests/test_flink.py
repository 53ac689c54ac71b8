"""BEAM=flink: Beam stages on a real Flink session cluster (a JobManager and two TaskManagers, each its own JVM)
through Beam's Flink job server and the SDK worker pool.

make test: Titanic's CsvExampleGen and StatisticsGen on the cluster give in_memory's examples and statistics,
Flink's REST API lists both jobs FINISHED, no stage tries a download, and nothing outlives the block; each
refusal (Java, the engines, the cluster's version, FLINK_MASTER, the workers' imports) is one line.
make test-full: a wide table's Transform (Flink's 64-output limit, a record over a sort buffer) gives
in_memory's features, Titanic end to end on Flink, a TaskManager killed in the middle of a stage, the other datasets'
Beam stages.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import tensorflow as tf
from google.protobuf import message
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from core.processes import group_alive, listening
from download_trap import DownloadTrap
from kubeflow_helpers import backend, compile_package, fingerprint
from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT
from runners import engines, flink
from test_kubeflow_twin import s3  # noqa: F401 - the module's store
from testing import wide_table


def _engines_or_skip():
    """The fetched engines; only the fast tier may lack them (make test and CI fetch them first)."""
    try:
        engines.flink_home(), engines.job_server_jars()
    except engines.EngineError as exc:
        if os.environ.get("TEST_TIER") == "fast":
            pytest.skip(f"no engines in the fast tier: {exc}")
        raise


@pytest.fixture(scope="module")
def trap():
    found = DownloadTrap()
    saved = {k: os.environ.get(k) for k in found.env()}
    os.environ.update(found.env())  # this process (the stages' drivers) and the services it starts
    yield found
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    # urllib's default opener kept the proxies it read at its first urlopen (the REST calls above): drop it
    urllib.request.install_opener(None)
    found.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, trap):
    _engines_or_skip()
    log_dir = tmp_path_factory.mktemp("flink-logs")
    with flink.flink_services(log_dir, job_port=0, worker_pool_port=0, taskmanagers=2, slots=2) as run:
        yield run
    services = [run.cluster.jobmanager, *run.cluster.taskmanager_services, run.job_server, run.worker_pool]
    assert all(s.exited() is not None and not group_alive(s.pid) for s in services)  # no JVM, no worker left
    assert not listening(run.job_port) and not listening(run.worker_pool_port)
    assert not listening(int(run.cluster.rest_url.rsplit(":", 1)[1]))


def flink_args(run, job_name):
    cfg = config_lib.PipelineConfig(
        beam="flink", beam_job_port=run.job_port, beam_worker_pool_port=run.worker_pool_port, flink_taskmanagers=2
    )
    return cfg.beam_pipeline_args() + [f"--job_name={job_name}"]


def _executor(component, beam_args, tmp_dir):
    return component.executor_spec.executor_class(
        base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=str(tmp_dir))
    )


def _props(component):
    return {
        k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
        for k, v in component.exec_properties.items()
        if v is not None
    }


def example_gen_then_statistics(data_dir, out_dir, beam_args):
    """Titanic's CsvExampleGen then StatisticsGen executors, as TFX calls them, with these Beam arguments;
    returns ({split: sorted serialized examples}, {split: statistics summary})."""
    from tfx.components import StatisticsGen

    from pipelines.titanic.spec import make_example_gen

    gen = make_example_gen(str(data_dir))
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir / "examples")
    args = [a.replace("{stage}", "csvexamplegen") for a in beam_args]
    _executor(gen, args, out_dir / "tmp").Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, _props(gen))
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    found = {}
    for split in ("train", "eval"):
        files = tf.io.gfile.glob(f"{examples.uri}/Split-{split}/*")
        found[split] = sorted(
            tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
        )
    stats_gen = StatisticsGen(examples=_channel())
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(out_dir / "statistics")
    args = [a.replace("{stage}", "statisticsgen") for a in beam_args]
    _executor(stats_gen, args, out_dir / "tmp").Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.STATISTICS_KEY: [statistics]},
        _props(stats_gen),
    )
    return found, {split: _summary(f"{statistics.uri}/Split-{split}/FeatureStats.pb") for split in ("train", "eval")}


def _channel():
    from tfx.types import channel

    return channel.Channel(type=standard_artifacts.Examples)


def _summary(path):
    """What two runners must agree on exactly: per feature, the counts, numeric min/max/mean (to 1e-9) and the
    string features' unique counts and top values. Quantile histograms are sketches merged in bundle order."""
    import tensorflow_data_validation as tfdv

    stats = tfdv.load_stats_binary(path).datasets[0]
    summary = {"num_examples": stats.num_examples}
    for feature in stats.features:
        name = feature.path.step[0]
        if feature.HasField("num_stats"):
            num = feature.num_stats
            summary[name] = (
                num.common_stats.num_non_missing,
                num.common_stats.num_missing,
                num.min,
                num.max,
                round(num.mean, 9),
                num.num_zeros,
            )
        else:
            text = feature.string_stats
            summary[name] = (
                text.common_stats.num_non_missing,
                text.common_stats.num_missing,
                text.unique,
                sorted((v.value, v.frequency) for v in text.top_values),
            )
    return summary


@pytest.mark.pipeline
def test_titanic_example_gen_and_statistics_on_two_taskmanagers_equal_in_memory(cluster, trap, titanic_data, tmp_path):
    in_memory = example_gen_then_statistics(
        titanic_data, tmp_path / "in_memory", config_lib.PipelineConfig().beam_pipeline_args()
    )
    on_flink = example_gen_then_statistics(
        titanic_data, tmp_path / "flink", flink_args(cluster, "test-titanic-{stage}")
    )
    examples, statistics = on_flink
    assert len(examples["train"]) == 712 and len(examples["eval"]) == 179  # the book's split
    assert examples == in_memory[0]
    assert statistics == in_memory[1]
    assert statistics["train"]["num_examples"] == 712
    # Flink ran them: its REST API lists both jobs, FINISHED, each spread over both TaskManagers
    jobs = {j["name"]: j for j in cluster.jobs()}
    assert {"test-titanic-csvexamplegen", "test-titanic-statisticsgen"} <= set(jobs), jobs
    assert all(jobs[n]["state"] == "FINISHED" for n in ("test-titanic-csvexamplegen", "test-titanic-statisticsgen"))
    hosts = set()
    for name in ("test-titanic-csvexamplegen", "test-titanic-statisticsgen"):
        detail = flink.rest(cluster.cluster.rest_url, f"/jobs/{jobs[name]['jid']}")
        for vertex in detail["vertices"]:
            tms = flink.rest(
                cluster.cluster.rest_url, f"/jobs/{jobs[name]['jid']}/vertices/{vertex['id']}/taskmanagers"
            )
            hosts |= {tm["taskmanager-id"] for tm in tms["taskmanagers"]}
    assert hosts == {"taskmanager-1", "taskmanager-2"}
    pool_log = (cluster.log_dir / "beam-worker-pool.log").read_text()
    assert "Starting worker" in pool_log  # Python SDK workers, each set up as sdk_worker_main would
    assert "started with import runners.sdk_worker_setup first" in pool_log
    assert trap.requests == []  # nothing downloaded: no Prism, no job server jar


def run_transform(examples_dir, schema_dir, out_dir, beam_args):
    """The project's Transform executor, as TFX calls it, on the wide table; returns {feature: sorted values}
    of the transformed training examples (sorted: Flink's workers may write the rows in another order)."""
    import numpy as np
    from tfx.types import channel

    from components.fixed_batch_transform import Transform

    component = Transform(
        examples=channel.Channel(type=standard_artifacts.Examples),
        schema=channel.Channel(type=standard_artifacts.Schema),
        preprocessing_fn="testing.wide_table.preprocessing_fn",
        disable_analyzer_cache=True,
        disable_statistics=False,  # TFDV's accumulator through Flink's sort buffers, as a user's Transform may
    )
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_dir)
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    schema = standard_artifacts.Schema()
    schema.uri = str(schema_dir)
    outputs = {}
    for key, spec in component.spec.OUTPUTS.items():
        artifact = spec.type()
        artifact.uri = str(out_dir / key)
        outputs[key] = [artifact]
    args = [a.replace("{stage}", "transform") for a in beam_args]
    _executor(component, args, out_dir / "tmp").Do(
        {"examples": [examples], "schema": [schema]}, outputs, _props(component)
    )
    files = tf.io.gfile.glob(f"{out_dir}/transformed_examples/Split-train/*")
    columns = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        for name, feature in tf.train.Example.FromString(record.numpy()).features.feature.items():
            columns.setdefault(name, []).extend(feature.float_list.value or feature.int64_list.value)
    return {name: np.sort(np.asarray(values)) for name, values in columns.items()}


@pytest.mark.slow  # 190 s; make test keeps the cheap guard (test_feature_columns: one analyzer pair at any width)
def test_a_wide_tables_transform_on_the_cluster_gives_in_memorys_features(cluster, trap, tmp_path):
    import numpy as np

    wide_table.write(tmp_path / "examples", tmp_path / "schema")
    in_memory = run_transform(
        tmp_path / "examples",
        tmp_path / "schema",
        tmp_path / "in_memory",
        config_lib.PipelineConfig().beam_pipeline_args(),
    )
    on_flink = run_transform(
        tmp_path / "examples", tmp_path / "schema", tmp_path / "flink", flink_args(cluster, "test-wide-transform")
    )
    assert len(in_memory) >= 2 * wide_table.NUMBERS + wide_table.CATEGORIES and set(on_flink) == set(in_memory)
    for name, values in in_memory.items():
        assert len(values) == wide_table.ROWS, name
        # the same statistics, merged in another order across the TaskManagers: equal to float32 rounding
        np.testing.assert_allclose(on_flink[name], values, rtol=1e-5, atol=1e-5, err_msg=name)
    assert any(j["name"] == "test-wide-transform" and j["state"] == "FINISHED" for j in cluster.jobs())
    assert trap.requests == []  # nothing downloaded


@pytest.mark.pipeline
def test_the_cluster_names_its_taskmanagers_slots_and_version(cluster):
    assert cluster.cluster.version == engines.flink_pins().flink_version
    assert re.fullmatch(
        r"Flink 1\.19\.\d+ session cluster \(started for this run\) at http://localhost:\d+: "
        r"2 TaskManagers, 4 slots",
        cluster.cluster.describe(),
    )
    overview = flink.rest(cluster.cluster.rest_url, "/overview")
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 4
    for name in ("jobmanager.log", "taskmanager-1.log", "taskmanager-2.log", "job-server.log"):
        assert (cluster.log_dir / name).stat().st_size > 0, name


# ------------------------------------------------------------------------------------------------ refusals
def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_no_java_is_one_line_naming_java_home(tmp_path):
    with pytest.raises(engines.EngineError) as err:
        engines.java({"PATH": str(tmp_path)})
    assert "no `java` on PATH and JAVA_HOME is not set" in _one_line(err)
    with pytest.raises(engines.EngineError) as err:
        engines.java({"JAVA_HOME": str(tmp_path), "PATH": "/usr/bin"})
    assert f"JAVA_HOME={tmp_path} has no bin/java" in _one_line(err)


def test_engines_not_fetched_is_one_line_naming_make_engines(tmp_path):
    with pytest.raises(engines.EngineError) as err:
        with flink.flink_services(tmp_path / "logs", job_port=0, worker_pool_port=0, cache=tmp_path / "empty"):
            pytest.fail("nothing may start")
    assert "run `make engines`" in _one_line(err) and "ENGINES_DIR" in str(err.value)
    assert not (tmp_path / "logs").exists()


def test_a_changed_jar_is_refused_by_name(tmp_path):
    folder, lock = tmp_path / "jars", tmp_path / "jars.sha256"
    folder.mkdir()
    (folder / "a.jar").write_bytes(b"one")
    lock.write_text(f"{engines.sha256_file(folder / 'a.jar')}  a.jar\n")
    engines.verify_jars(folder, lock)
    (folder / "a.jar").write_bytes(b"two")
    with pytest.raises(engines.EngineError, match=r"a\.jar: sha256 [0-9a-f]{64}, but .* pins"):
        engines.verify_jars(folder, lock)
    (folder / "b.jar").write_bytes(b"extra")
    with pytest.raises(engines.EngineError, match=r"not pinned \['b\.jar'\]"):
        engines.verify_jars(folder, lock)


def test_an_engine_folder_in_the_cache_is_complete_or_absent(tmp_path):
    final = tmp_path / "cache" / "engine-1.0"
    with pytest.raises(engines.EngineError, match="half"):
        with engines._new_folder(final, "digest") as partial:
            (partial / "a.jar").write_bytes(b"half")
            raise engines.EngineError("half-way")
    assert not final.exists() and list((tmp_path / "cache").iterdir()) == []
    with engines._new_folder(final, "digest") as partial:
        (partial / "a.jar").write_bytes(b"whole")
    assert (final / "a.jar").read_bytes() == b"whole" and engines._verified(final, "digest")
    assert not engines._verified(final, "other pins")


def test_a_cluster_of_another_flink_version_is_refused_before_any_job(tmp_path):
    pins = engines.flink_pins()
    other = flink.FlinkCluster("http://cluster:8081", "1.20.1", 2, 4, started=False)
    with pytest.raises(flink.FlinkError) as err:
        flink.check_versions(other, pins)
    assert (
        f"runs Flink 1.20.1, but Beam's job server here ({pins.runner_artifact} {pins.beam_java_version}) "
        f"is built for Flink {pins.runner_flink_minor}"
    ) in _one_line(err)
    flink.check_versions(flink.FlinkCluster("http://c:1", pins.flink_version, 1, 1, started=False), pins)


def test_an_unreachable_flink_master_is_one_line_saying_what_to_set():
    from core.processes import free_port

    port = free_port()
    with pytest.raises(flink.FlinkError) as err:
        flink.connect(f"localhost:{port}")
    assert f"FLINK_MASTER=localhost:{port}: no Flink REST API answers at http://localhost:{port}" in _one_line(err)


def test_workers_that_cannot_import_the_project_are_refused_before_a_jvm_starts(tmp_path):
    from test_beam_portable import _python_without_the_project

    _engines_or_skip()
    folder = _python_without_the_project(tmp_path)
    with pytest.raises(flink.BeamServiceError, match=r"Beam SDK workers cannot import the project"):
        with flink.flink_services(tmp_path / "logs", job_port=0, worker_pool_port=0, worker_python_dir=folder):
            pytest.fail("nothing may start")
    assert not list((tmp_path / "logs").glob("*manager*.log"))


@pytest.mark.slow  # 50 s of TFX CLI start-up; flink.connect's own message is checked above in make test
def test_make_run_with_an_unreachable_flink_master_stops_with_that_line_alone(titanic_data, tmp_path):
    from core.processes import free_port

    _engines_or_skip()
    port = free_port()
    env = dict(
        os.environ,
        OUTPUT_DIR=str(tmp_path / "out"),
        DATA_ROOT=str(titanic_data),
        BEAM="flink",
        FLINK_MASTER=f"localhost:{port}",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runners.run", "titanic"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = (proc.stdout + proc.stderr).strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: cannot start the Beam services: FLINK_MASTER=localhost:{port}: no Flink REST "
        rf"API .*unset it to start one for the run",
        last,
    ), last
    assert (proc.stdout + proc.stderr).count(f"FLINK_MASTER=localhost:{port}: no Flink REST API") == 1
    assert "pipeline run failed" not in proc.stderr and "Traceback" not in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------ long tier
def _run_titanic_on_flink(env, timeout_s=1500):
    return subprocess.Popen(
        [sys.executable, "-m", "runners.run", "titanic"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_titanic_end_to_end_on_flink(titanic_run, titanic_data, tmp_path):
    """`make run BEAM=flink`: blessed and pushed, AUC/KS within 0.01/0.05 of in_memory (shards fall in another
    order, so the seeded model meets examples in another order), every Beam stage a FINISHED Flink job, no
    download, nothing left running."""
    from metadata import results

    _engines_or_skip()
    before = _flink_processes()
    trap = DownloadTrap()
    env = dict(os.environ, OUTPUT_DIR=str(tmp_path / "out"), DATA_ROOT=str(titanic_data), BEAM="flink") | trap.env()
    proc = _run_titanic_on_flink(env)
    out, _ = proc.communicate(timeout=1500)
    trap.close()
    assert proc.returncode == 0, out[-4000:]
    on_flink = results.last_run("titanic", config_lib.from_env(env))
    default = results.last_run("titanic", titanic_run)
    assert on_flink.blessed and on_flink.pushed
    assert on_flink.overall("auc") == pytest.approx(default.overall("auc"), abs=0.01)
    assert on_flink.overall("ks") == pytest.approx(default.overall("ks"), abs=0.05)
    record = json.loads((tmp_path / "out" / "titanic" / "logs" / "flink" / "flink-jobs.json").read_text())
    stages = {row["stage"]: row for row in record["jobs"]}
    assert {"CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"} <= set(stages), stages
    assert all(row["state"] == "FINISHED" for row in record["jobs"]) and not record["failed"]
    for stage in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        assert re.search(rf"Flink job {stages[stage]['jid']}\s+{stage}\s+FINISHED", out), stage
    assert "2 TaskManagers, 4 slots" in out and record["cluster"]["taskmanagers"] == 2
    assert trap.requests == []
    _nothing_left(before)


def _flink_processes():
    """{pid: command line} of every Flink JVM, job server and worker pool on this machine."""
    found = subprocess.run(
        ["pgrep", "-af", "flink-run-|worker_pool_main|FlinkJobServerDriver"], capture_output=True, text=True
    ).stdout
    lines = [line for line in found.splitlines() if "pgrep" not in line]
    return {line.split()[0]: line for line in lines if line.split()[0] != str(os.getpid())}


def _nothing_left(before):
    """Nothing the test started is still running; `before` (the module's own cluster, when an earlier test
    started it) may be."""
    left = [line for pid, line in _flink_processes().items() if pid not in before]
    assert not left, left


@pytest.mark.slow
def test_a_taskmanager_killed_mid_stage_recovers_or_fails_naming_it_and_the_rerun_is_cached(titanic_data, tmp_path):
    """The second TaskManager's JVM is killed while Transform's Flink job runs: Flink restarts the job on the
    slots left and the run is blessed, or the run stops with a line naming taskmanager-2. Either way no
    artifact of the killed stage is published half-written, and a rerun picks up from TFX's cache."""
    from metadata import results

    _engines_or_skip()
    before = _flink_processes()
    env = dict(
        os.environ, OUTPUT_DIR=str(tmp_path / "out"), DATA_ROOT=str(titanic_data), BEAM="flink", ENABLE_CACHE="1"
    )
    proc = _run_titanic_on_flink(env)
    lines, killed = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 900
    rest_url = None
    while time.monotonic() < deadline and proc.poll() is None and not killed.is_set():
        text = "".join(lines)
        found = re.search(r"at (http://localhost:\d+): 2 TaskManagers", text)
        rest_url = rest_url or (found and found.group(1))
        if rest_url:
            try:
                running = [j for j in flink.jobs(rest_url) if j["state"] == "RUNNING" and "transform" in j["name"]]
            except OSError:
                running = []
            if running:
                time.sleep(3)  # well into the job
                pids = subprocess.run(
                    ["pgrep", "-f", "taskmanager.resource-id=taskmanager-2"], capture_output=True, text=True
                ).stdout.split()
                assert pids, "taskmanager-2's JVM is not found"
                for pid in pids:
                    os.kill(int(pid), signal.SIGKILL)
                killed.set()
        time.sleep(0.5)
    assert killed.is_set(), "Transform's Flink job was never seen running:\n" + "".join(lines)[-3000:]
    proc.wait(timeout=1500)
    reader.join(10)
    out = "".join(lines)
    store = config_lib.from_env(env)
    record = json.loads((tmp_path / "out" / "titanic" / "logs" / "flink" / "flink-jobs.json").read_text())
    assert record["lost_taskmanagers"] and record["lost_taskmanagers"][0].startswith(
        "Flink's TaskManager taskmanager-2"
    )
    if proc.returncode == 0:  # Flink's restart strategy recovered the job
        assert results.last_run("titanic", store).blessed
        assert not record["failed"] and "Flink: lost TaskManager(s) during the run: " in out
        jobmanager = (tmp_path / "out" / "titanic" / "logs" / "flink" / "jobmanager.log").read_text()
        assert re.search(r"Job titanic-transform \(\w+\) switched from state RUNNING to RESTARTING", jobmanager)
        assert {row["state"] for row in record["jobs"]} == {"FINISHED"}
    else:
        assert "lost TaskManager(s) during the run: Flink's TaskManager taskmanager-2" in out, out[-3000:]
        assert record["failed"]
    _nothing_left(before)
    rerun = _run_titanic_on_flink(env)
    again, _ = rerun.communicate(timeout=1500)
    assert rerun.returncode == 0, again[-4000:]
    assert results.last_run("titanic", store).blessed
    # the stages before the killed one come from the cache: no Flink job of theirs in the rerun
    stages = {
        row["stage"]
        for row in json.loads((tmp_path / "out" / "titanic" / "logs" / "flink" / "flink-jobs.json").read_text())["jobs"]
    }
    assert "CsvExampleGen" not in stages and "StatisticsGen" not in stages, stages
    _nothing_left(before)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["images", "delimited", "windows"])
def test_each_custom_example_gen_gives_the_same_examples_on_flink(kind, cluster, cifar2_subset, imdb_subset, tmp_path):
    """cifar2's, imdb's and covid's ExampleGens (each a Beam stage of its own) on the cluster."""
    from data.fetch import fetch
    from test_beam_portable import _example_gens, run_example_gen

    covid = fetch("covid", tmp_path / "data", log=lambda m: None)
    component = _example_gens(cifar2_subset, imdb_subset, covid)[kind]
    in_memory = run_example_gen(component, tmp_path / "in_memory", config_lib.PipelineConfig().beam_pipeline_args())
    on_flink = run_example_gen(component, tmp_path / "flink", flink_args(cluster, f"test-{kind}"))
    assert in_memory["train"] and on_flink == in_memory
    assert any(j["name"] == f"test-{kind}" and j["state"] == "FINISHED" for j in cluster.jobs())


@pytest.mark.slow
def test_a_kubeflow_package_compiled_for_flink_runs_its_beam_tasks_on_the_cluster(s3, titanic_data, tmp_path):  # noqa: F811
    """A package compiled with a Flink job endpoint and an EXTERNAL worker pool (what docs/kubeflow.md, step 8,
    sets up beside each TaskManager) runs through the backend's twin on S3: every Beam task's stage is a Flink
    job, FINISHED, and the model is blessed and pushed to the store."""
    _engines_or_skip()
    s3.upload(titanic_data, "s3://data/titanic-flink")
    with flink.flink_services(tmp_path / "flink-logs", job_port=0, worker_pool_port=0) as run:
        beam_args = (
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{run.job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{run.worker_pool_port}",
            "--parallelism=2",
            "--environment_cache_millis=60000",
        )
        package = compile_package(
            "titanic", tmp_path / "package", s3, cfg=config_lib.PipelineConfig(beam_args=beam_args)
        )
        parameters = {
            "data-root": "s3://data/titanic-flink",
            "serving-root": "s3://serving/titanic-flink",
            "data-fingerprint": fingerprint("s3://data/titanic-flink"),
        }
        result = backend(s3, tmp_path / "cluster").run(
            package, pipeline_root="s3://kfp/flink-root", parameters=parameters, run_id="on-flink"
        )
        jobs = run.jobs()
    assert {t.state for t in result.tasks.values()} == {"COMPLETE"}, {n: t.state for n, t in result.tasks.items()}
    assert result.metadata("Evaluator", "blessing")["blessed"] == 1
    assert result.metadata("Pusher", "pushed_model")["pushed"] == 1
    names = {j["name"] for j in jobs}
    assert len(jobs) >= 4 and {j["state"] for j in jobs} == {"FINISHED"}, jobs
    assert {"titanic-csvexamplegen", "titanic-statisticsgen", "titanic-transform", "titanic-evaluator"} <= names
