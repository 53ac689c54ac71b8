"""The compiled Kubeflow packages run as open-source KFP's v2 backend runs them (testing/kfp_twin.py: what
the driver and the launcher send and do, KFP's cache, the ML Metadata round trip, 2.4 and 2.5 rules), with every
root on a loopback S3 server (moto; what Kubeflow's MinIO speaks), credentials from a Kubernetes secret mapped by
the package, the endpoint from the package's task environment."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from kubeflow_helpers import SECRET, backend, compile_package, fingerprint, store_in_env
from metadata import results
from orchestration import config as config_lib
from orchestration.config import PROJECT_ROOT
from runners import object_store
from testing import kfp_twin, local_s3

pytestmark = pytest.mark.pipeline  # tasks of compiled packages run here


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with local_s3.server(log=tmp_path_factory.mktemp("s3") / "moto.log") as server, store_in_env(server):
        yield server


def local_copy(uri, where):
    """An artifact downloaded from the store (boto3: no TensorFlow here), to read with local tools."""
    object_store.download_prefix(uri, where)
    return where


@pytest.fixture(scope="module")
def titanic(s3, titanic_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kfp_titanic")
    s3.upload(titanic_data, "s3://data/titanic")
    package = compile_package("titanic", tmp / "package", s3)
    cluster = backend(s3, tmp / "cluster")
    parameters = {
        "data-root": "s3://data/titanic",
        "serving-root": "s3://serving/titanic",
        "data-fingerprint": fingerprint("s3://data/titanic"),
    }
    first = cluster.run(package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="first")
    return package, cluster, parameters, first


def test_titanic_package_on_s3_under_25_rules_runs_to_a_blessed_pushed_model(titanic, titanic_run, s3, tmp_path):
    package, cluster, _, run = titanic
    assert set(run.tasks) == set(kfp_twin.load_package(package)["root"]["dag"]["tasks"])
    assert {t.state for t in run.tasks.values()} == {"COMPLETE"}
    # outputs where the backend puts them: <root>/<pipeline>/<run id>/<task>/<uuid>/<output>
    for task in run.tasks.values():
        for key, artifacts in task.outputs.items():
            parts = artifacts[0]["uri"].split("/")
            assert parts[:7] == ["s3:", "", "kfp", "root", "titanic", "first", task.name] and parts[8] == key
    # what TFX's entrypoint got: the backend's empty input types and its executor-logs output, and ran anyway
    statistics = run.tasks["StatisticsGen"].executor_input
    assert statistics["inputs"]["artifacts"]["examples"]["artifacts"][0]["type"] == {"instanceSchema": ""}
    assert statistics["outputs"]["artifacts"]["executor-logs"]["artifacts"][0]["type"] == {
        "schemaTitle": "system.Artifact"
    }
    assert statistics["outputs"]["outputFile"] == "/tmp/kfp_outputs/output_metadata.json"
    logs = run.artifact("StatisticsGen", "executor-logs")["uri"]
    assert b"type from the package" in object_store.read(logs)  # the launcher uploaded the task's log
    assert run.tasks["Evaluator"].downloaded > 0  # the launcher downloaded the inputs into the pod
    # ServedBaseline ran with the run's id, which 2.5's driver put in place of {{$.pipeline_job_uuid}}
    assert run.tasks["ServedBaseline"].executor_input["inputs"]["parameterValues"]["kfp_run_id"] == "first"
    pushed = run.metadata("Pusher", "pushed_model")
    assert pushed["pushed"] == 1 and pushed["pushed_destination"] == f"s3://serving/titanic/{pushed['pushed_version']}"
    keys = s3.keys("s3://serving/titanic/")
    assert f"titanic/{pushed['pushed_version']}/saved_model.pb" in keys
    assert {k.split("/")[1] for k in keys} == {pushed["pushed_version"]}
    assert (
        run.metadata("Evaluator", "blessing")["blessed"] == 1
        and run.metadata("ServedBaseline", "model")["served_version"] == ""
    )
    # the same data, seed and code as the local run: the same metrics
    evaluation = local_copy(run.artifact("Evaluator", "evaluation")["uri"], tmp_path / "evaluation")
    package_metrics = results.load_metrics(str(evaluation))["overall"]
    local = results.last_run("titanic", titanic_run).metrics["overall"]
    assert set(package_metrics) == set(local)
    for metric, value in local.items():
        assert package_metrics[metric] == pytest.approx(value, abs=1e-6), metric


def test_transform_on_s3_keeps_temporary_files_on_the_tasks_disk_and_writes_no_analyzer_cache(titanic, s3):
    """tf.Transform's temporary SavedModels go to the pod's /tmp, not to <transform_graph>/.temp_path on the store;
    and no analyzer cache is written (nothing reads it): both were small Beam writes, slow on an object store."""
    _, _, _, run = titanic
    log = object_store.read(run.artifact("Transform", "executor-logs")["uri"]).decode(errors="replace")
    assert "/tmp/transform-temp-" in log and "tftransform_tmp" in log  # tf's SavedModel builder names its folder
    assert "updated_analyzer_cache" not in run.tasks["Transform"].outputs
    transform = run.artifact("Transform", "transform_graph")["uri"]
    assert not [k for k in s3.keys(transform.rsplit("/", 1)[0] + "/") if ".temp_path" in k or "analyzer_cache" in k]
    assert any(k.endswith("transform_fn/saved_model.pb") for k in s3.keys(transform + "/"))


def test_a_second_run_with_caching_on_takes_the_first_model_as_baseline_and_re_reads_the_serving_root(titanic, s3):
    """As a submitter may: enable_caching=True for every task. Data, code and image unchanged: ExampleGen ..
    Trainer come from KFP's cache; ServedBaseline runs all the same (its key holds the run's id) and finds the
    first model served; the Evaluator judges against it; the identical model is not pushed twice."""
    package, cluster, parameters, first = titanic
    version = first.metadata("Pusher", "pushed_model")["pushed_version"]
    second = cluster.run(
        package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="second", enable_caching=True
    )
    states = {name: task.state for name, task in second.tasks.items()}
    assert states.pop("ServedBaseline") == "COMPLETE" and states.pop("Evaluator") == "COMPLETE"
    assert states.pop("Pusher") == "COMPLETE" and set(states.values()) == {"CACHED"}
    assert second.artifact("Trainer", "model") == first.artifact("Trainer", "model")  # the cached artifact itself
    assert second.metadata("ServedBaseline", "model")["served_version"] == version
    blessing = second.metadata("Evaluator", "blessing")
    assert blessing["baseline_version"] == version and blessing["blessed"] == 1
    assert second.metadata("Pusher", "pushed_model")["pushed_version"] == version  # identical: not pushed again
    assert {k.split("/")[1] for k in s3.keys("s3://serving/titanic/")} == {version}


def test_changed_data_under_the_same_root_is_never_answered_from_the_cache(titanic, s3, titanic_data, tmp_path):
    package, cluster, parameters, first = titanic
    fewer = tmp_path / "titanic"
    fewer.mkdir()
    (fewer / "test.csv").write_text((titanic_data / "test.csv").read_text())
    lines = (titanic_data / "train.csv").read_text().splitlines(keepends=True)
    (fewer / "train.csv").write_text("".join(lines[:-10]))  # ten passengers fewer
    s3.upload(fewer, "s3://data/titanic")  # same root, new files
    try:
        stale = parameters["data-fingerprint"]
        fresh = fingerprint("s3://data/titanic")
        assert fresh != stale
        rerun = cluster.run(
            package,
            pipeline_root="s3://kfp/root",
            run_id="changed",
            enable_caching=True,
            parameters=dict(parameters, **{"data-fingerprint": fresh}),
            targets=["CsvExampleGen"],
        )
        assert rerun.tasks["CsvExampleGen"].state == "COMPLETE"
        assert rerun.artifact("CsvExampleGen", "examples")["uri"] != first.artifact("CsvExampleGen", "examples")["uri"]
        # a fingerprint that is not the files' is refused when the task runs (with the cache on, KFP would answer
        # a stale one from its cache without running anything: the submission snippet computes it each time)
        with pytest.raises(kfp_twin.TwinError) as info:
            cluster.run(
                package,
                pipeline_root="s3://kfp/root",
                run_id="stale",
                enable_caching=False,
                parameters=parameters,
                targets=["CsvExampleGen"],
            )
        message = str(info.value)
        assert f"data-fingerprint '{stale}' is not the fingerprint of 's3://data/titanic' now ('{fresh}')" in message
        assert "python -m runners.data_fingerprint s3://data/titanic" in message
    finally:  # the book's files back for the tests below, with their (new) fingerprint
        s3.upload(titanic_data, "s3://data/titanic")
        parameters["data-fingerprint"] = fingerprint("s3://data/titanic")


@pytest.mark.slow  # make test-full: 2.5's rules run in make test
def test_the_package_runs_under_24_rules_too(titanic, s3, tmp_path):
    """KFP 2.4: no executor-logs output, no placeholder replaced in constants (kfp_run_id arrives as written)."""
    package, _, parameters, _ = titanic
    cluster = backend(s3, tmp_path, kfp_version="2.4")
    run = cluster.run(package, pipeline_root="s3://kfp/root24", parameters=parameters, targets=["StatisticsGen"])
    assert "executor-logs" not in run.tasks["StatisticsGen"].executor_input["outputs"]["artifacts"]
    assert run.tasks["StatisticsGen"].executor_input["inputs"]["artifacts"]["examples"]["artifacts"][0]["type"] == {
        "instanceSchema": ""
    }
    assert {t.state for t in run.tasks.values()} == {"COMPLETE"}


# ---------------------------------------------------------------------------------------------------- roots
def test_a_run_without_a_pipeline_root_fails_its_first_task_saying_what_to_set(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    with pytest.raises(kfp_twin.TwinError) as info:
        backend(s3, tmp_path).run(package, parameters=parameters, targets=["CsvExampleGen"])
    message = str(info.value)
    assert "task 'CsvExampleGen' failed (exit 2)" in message
    assert "the pipeline root is minio://mlpipeline/v2/artifacts" in message
    assert "pipeline_root='s3://" in message and "defaultPipelineRoot in the kfp-launcher ConfigMap" in message
    assert "Traceback" not in message


def test_the_launcher_configmaps_root_is_used_and_a_local_root_is_refused_as_the_backend_does(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    run = backend(s3, tmp_path / "a", launcher_default_root="s3://kfp/from-configmap").run(
        package, parameters=parameters, targets=["ImportSchemaGen"], run_id="cm"
    )
    assert run.artifact("ImportSchemaGen", "schema")["uri"].startswith("s3://kfp/from-configmap/titanic/cm/")
    with pytest.raises(kfp_twin.TwinError, match="unsupported Cloud bucket: '/tmp/somewhere'"):
        backend(s3, tmp_path / "b").run(package, pipeline_root="/tmp/somewhere", parameters=parameters)


def test_required_run_parameters_have_no_defaults(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    for missing in ("data-root", "serving-root", "data-fingerprint"):
        given = {k: v for k, v in parameters.items() if k != missing}
        with pytest.raises(kfp_twin.TwinError, match=f"pipeline parameter '{missing}' has no value and no default"):
            backend(s3, tmp_path).run(package, pipeline_root="s3://kfp/root", parameters=given)


# ---------------------------------------------------------------------------------------------------- bad input
def test_missing_credentials_fail_the_first_task_naming_the_setting(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    with pytest.raises(kfp_twin.TwinError) as info:  # the secret exists but the package maps none
        backend(s3, tmp_path).run(
            compile_package("titanic", tmp_path / "nosecret", s3, s3_secret=""),
            pipeline_root="s3://kfp/root",
            parameters=parameters,
            targets=["ImportSchemaGen"],
        )
    message = str(info.value)
    assert "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY on the tasks" in message
    assert "KFP_S3_SECRET" in message and "Traceback" not in message
    with pytest.raises(kfp_twin.TwinError, match=f"secret '{SECRET}' does not exist in the namespace"):
        backend(s3, tmp_path, secrets={}).run(
            package, pipeline_root="s3://kfp/root", parameters=parameters, targets=["ImportSchemaGen"]
        )


def test_an_unreachable_endpoint_is_named(titanic, s3, tmp_path):
    _, _, parameters, _ = titanic
    package = compile_package(
        "titanic", tmp_path / "pkg", s3, env=(("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_REGION", "us-east-1"))
    )
    with pytest.raises(kfp_twin.TwinError) as info:
        backend(s3, tmp_path).run(
            package, pipeline_root="s3://kfp/root", parameters=parameters, targets=["ImportSchemaGen"]
        )
    assert "cannot reach the S3 endpoint http://127.0.0.1:9: set AWS_ENDPOINT_URL on the tasks" in str(info.value)


def _python_hiding(tmp_path, hidden_root=None, hidden_module=None):
    """`python` for the tasks: this interpreter with the project (or one module) taken away, as an image without
    them would be."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    hide = bin_dir / "hide.py"
    hide.write_text(
        textwrap.dedent(f"""
        import os, runpy, sys
        if {hidden_root!r}:
            editable = [f for f in sys.meta_path if str(getattr(f, "__module__", "")).startswith("__editable__")]
            sys.meta_path[:] = [f for f in sys.meta_path if f not in editable]
            sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != {hidden_root!r}]
        if {hidden_module!r}:
            sys.modules[{hidden_module!r}] = None  # import fails as if it were not installed
        assert sys.argv[1] == "-m", sys.argv  # the containers run `python -m MODULE ...`
        sys.argv = sys.argv[2:]
        runpy._run_module_as_main(sys.argv[0])
    """)
    )
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I "{hide}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return str(bin_dir)


def test_an_image_without_s3_support_fails_the_first_task_saying_so(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    cluster = backend(s3, tmp_path, python_dir=_python_hiding(tmp_path, hidden_module="tensorflow_io"))
    with pytest.raises(kfp_twin.TwinError) as info:
        cluster.run(package, pipeline_root="s3://kfp/root", parameters=parameters, targets=["ImportSchemaGen"])
    assert "s3:// needs tensorflow-io, which this image lacks" in str(info.value)
    assert "Traceback" not in str(info.value)


def test_an_image_without_the_project_fails_the_first_task_saying_so(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    cluster = backend(s3, tmp_path, python_dir=_python_hiding(tmp_path, hidden_root=str(PROJECT_ROOT.resolve())))
    with pytest.raises(kfp_twin.TwinError) as info:
        cluster.run(package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="no-project")
    message = str(info.value)
    assert "No module named 'runners'" in message  # the task's command, runners.kfp_entrypoint, is the project's
    assert "Traceback" not in message


def test_a_wrong_or_missing_data_root_names_itself(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    with pytest.raises(kfp_twin.TwinError) as info:
        backend(s3, tmp_path).run(
            package,
            pipeline_root="s3://kfp/root",
            targets=["CsvExampleGen"],
            parameters=dict(parameters, **{"data-root": "s3://data/nope"}),
        )
    assert "data root 's3://data/nope' does not exist" in str(info.value) and "data-root" in str(info.value)
    s3.upload(PROJECT_ROOT / "data" / "manifests", "s3://data/manifests")  # files, but not the titanic ones
    with pytest.raises(kfp_twin.TwinError) as info:
        backend(s3, tmp_path).run(
            package,
            pipeline_root="s3://kfp/root",
            targets=["CsvExampleGen"],
            parameters=dict(parameters, **{"data-root": "s3://data/manifests"}),
        )
    assert "split 'train' expects 'train.csv'" in str(info.value) and "eval: test.csv" in str(info.value)


@pytest.mark.slow  # make test-full: runs tasks up to the one that fails (a minute)
def test_an_image_with_an_older_project_names_the_missing_executor(titanic, s3, tmp_path):
    package, _, parameters, _ = titanic
    old = tmp_path / "old.yaml"
    old.write_text(
        package.read_text().replace(
            "components.anomalies_gate.AnomaliesGate_Executor", "components.anomalies_gate_v0.Executor"
        )
    )
    with pytest.raises(kfp_twin.TwinError) as info:
        backend(s3, tmp_path).run(old, pipeline_root="s3://kfp/root", parameters=parameters, targets=["AnomaliesGate"])
    assert "task 'AnomaliesGate' failed" in str(info.value)
    assert "cannot load the executor components.anomalies_gate_v0.Executor" in str(info.value)


def test_the_twin_refuses_what_kfp_refuses(titanic, s3, tmp_path):
    import yaml

    package, _, parameters, _ = titanic
    spec = next(yaml.safe_load_all(package.read_text()))
    spec["deploymentSpec"]["executors"]["ServedBaseline_executor"] = {"resolver": {"outputArtifactQueries": {}}}
    bad = tmp_path / "resolver.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(kfp_twin.TwinError, match="of kind resolver, which open-source Kubeflow Pipelines"):
        backend(s3, tmp_path).run(bad, pipeline_root="s3://kfp/root", parameters=parameters)
    with pytest.raises(kfp_twin.TwinError, match="unknown pipeline parameter"):
        backend(s3, tmp_path).run(package, parameters={"data_root": "/x"})


# ---------------------------------------------------------------------------------------------------- golden input
# What KFP 2.5's launcher logged as StatisticsGen's ExecutorInput in tensorflow/tfx#7768 (TFX 1.16, kfp 2.5.0,
# Kubeflow 1.8; the task that failed there with AttributeError in _retrieve_class_path), in that shape: the input
# artifact with an empty instanceSchema, its name the ML Metadata id, its metadata as the round trip left it
# (display_name, store_session_info, numbers as doubles), the executor-logs output of type system.Artifact, the
# minio:// root of a run submitted without one, and the launcher's fixed outputFile. The part of the report this
# checkout could read ends with the ComponentSpec; the ExecutorInput below is rebuilt from it and from the
# backend's source (client.go:175-190, converter.go:176-214, driver.go:2010-2062), field by field; the report's
# pipeline also passed `stats_options_json`, which ours does not.
GOLDEN = {
    "inputs": {
        "parameterValues": {"exclude_splits": "[]"},
        "artifacts": {
            "examples": {
                "artifacts": [
                    {
                        "name": "2",
                        "type": {"instanceSchema": ""},
                        "uri": "minio://mlpipeline/v2/artifacts/tfx-pipeline/4a0e1f2b-6c9d-4e8a-9b3f-2d7c5e1a0b93/CsvExampleGen/"
                        "8f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b/examples",
                        "metadata": {
                            "display_name": "examples",
                            "file_format": "tfrecords_gzip",
                            "input_fingerprint": "",
                            "payload_format": "FORMAT_TF_EXAMPLE",
                            "span": 0.0,
                            "split_names": '["train", "eval"]',
                            "store_session_info": '{"Provider":"minio","Params":{"accessKeyKey":"accesskey",'
                            '"disableSSL":"true","endpoint":"minio-service.kubeflow:9000",'
                            '"fromEnv":"false","region":"minio","secretKeyKey":'
                            '"secretkey","secretName":"mlpipeline-minio-artifact"}}',
                            "tfx_version": "1.16.0",
                            "version": 0.0,
                        },
                    }
                ]
            }
        },
    },
    "outputs": {
        "artifacts": {
            "statistics": {
                "artifacts": [
                    {
                        "type": {
                            "instanceSchema": "title: tfx.ExampleStatistics\ntype: object\nproperties:\n"
                            "  span:\n    type: "
                            "integer\n    description: Span for an artifact.\n  split_names:\n    type: "
                            "string\n    description: JSON-encoded list of splits for an artifact. "
                            "Empty string means artifact has no split.\n"
                        },
                        "uri": "minio://mlpipeline/v2/artifacts/tfx-pipeline/4a0e1f2b-6c9d-4e8a-9b3f-2d7c5e1a0b93/"
                        "StatisticsGen/3b2a1c0d-9e8f-4a7b-6c5d-4e3f2a1b0c9d/statistics",
                    }
                ]
            },
            "executor-logs": {
                "artifacts": [
                    {
                        "type": {"schemaTitle": "system.Artifact"},
                        "uri": "minio://mlpipeline/v2/artifacts/tfx-pipeline/4a0e1f2b-6c9d-4e8a-9b3f-2d7c5e1a0b93/"
                        "StatisticsGen/3b2a1c0d-9e8f-4a7b-6c5d-4e3f2a1b0c9d/executor-logs",
                    }
                ]
            },
        },
        "outputFile": "/tmp/kfp_outputs/output_metadata.json",
    },
}
GOLDEN_SPEC = {
    "artifacts": {
        "examples": {
            "artifactType": {
                "instanceSchema": (
                    "title: tfx.Examples\ntype: object\nproperties:\n  span:\n    type: integer\n"
                    "    description: Span for an artifact.\n  version:\n    type: integer\n"
                    "    description: Version for an artifact.\n  split_names:\n    type: string\n"
                    "    description: JSON-encoded list of splits for an artifact. "
                    "Empty string means artifact has no split.\n"
                )
            }
        }
    },
    "parameters": {"exclude_splits": {"parameterType": "STRING"}},
}


def _entrypoint(executor_input, tmp_path, env):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.kfp_entrypoint",
            "--executor_class_path",
            "tfx.components.statistics_gen.executor.Executor",
            "--json_serialized_invocation_args",
            json.dumps(executor_input),
            "--json_serialized_inputs_spec_args",
            json.dumps(GOLDEN_SPEC),
            "--direct_running_mode=in_memory",
            "--direct_num_workers=1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_tfx_own_entrypoint_fails_on_the_golden_input_as_reported():
    """The upstream failure, reproduced: TFX's entrypoint reads the type from the empty schema."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

    message = json_format.ParseDict(GOLDEN, pipeline_spec_pb2.ExecutorInput())
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.inputs.artifacts)


def test_the_golden_input_runs_the_task_on_the_store_it_names(titanic, s3, tmp_path):
    """Ours on the same ExecutorInput: as logged (a minio:// root), one line saying what to set; with the root
    TensorFlow can write (the same run on s3://, the examples those of the Titanic run above), StatisticsGen runs
    and writes its statistics; the executor-logs output is left to the launcher."""
    _, _, _, run = titanic
    env = dict(os.environ, **{k: v for k, v in s3.env.items()})
    as_logged = _entrypoint(GOLDEN, tmp_path, env)
    assert as_logged.returncode == 2
    assert (
        as_logged.stderr.strip()
        .splitlines()[-1]
        .startswith("error: the pipeline root is minio://mlpipeline/v2/artifacts..., a minio:// URI")
    )
    on_s3 = json.loads(json.dumps(GOLDEN).replace("minio://mlpipeline/v2/artifacts", "s3://kfp/golden"))
    on_s3["inputs"]["artifacts"]["examples"]["artifacts"][0]["uri"] = run.artifact("CsvExampleGen", "examples")["uri"]
    on_s3["outputs"]["outputFile"] = str(tmp_path / "kfp_outputs" / "output_metadata.json")
    proc = _entrypoint(on_s3, tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "input examples: type from the package" in proc.stdout
    assert "output executor-logs: added by the backend" in proc.stdout
    written = json.loads((tmp_path / "kfp_outputs" / "output_metadata.json").read_text())["artifacts"]
    assert set(written) == {"statistics"}
    statistics = written["statistics"]["artifacts"][0]["uri"]
    assert any(k.endswith("FeatureStats.pb") for k in s3.keys(statistics))


# ---------------------------------------------------------------------------------------------------- objects
def test_directory_markers_break_the_launchers_download_until_the_entrypoint_removes_them(s3, tmp_path):
    """What TensorFlow's GCS file system leaves (a zero-byte "folder/" object per folder) and what KFP's
    DownloadBlob then does with it (kubeflow/pipelines#13476): a file where a folder must go."""
    client = s3.client()
    for key, body in (
        ("markers/model/", b""),
        ("markers/model/Format-Serving/", b""),
        ("markers/model/Format-Serving/saved_model.pb", b"pb"),
        ("markers/model/Format-Serving/variables/variables.index", b"ix"),
        ("markers/model_run/logs.txt", b"run"),
    ):
        client.put_object(Bucket="kfp", Key=key, Body=body)
    with pytest.raises(OSError):
        object_store.download_prefix("s3://kfp/markers/model", tmp_path / "pod1" / "model")
    assert object_store.delete_markers("s3://kfp/markers/model") == 2
    assert object_store.markers("s3://kfp/markers/model") == []
    assert object_store.download_prefix("s3://kfp/markers/model", tmp_path / "pod2" / "model") == 3
    assert (tmp_path / "pod2" / "model" / "Format-Serving" / "saved_model.pb").read_bytes() == b"pb"
    # the prefix match has no trailing slash: the sibling model_run comes along, beside the artifact
    assert (tmp_path / "pod2" / "model_run" / "logs.txt").read_bytes() == b"run"


def test_artifacts_are_read_through_tensorflows_file_systems(titanic, s3, run_python):
    """The gate and the drift check read their inputs on the object store (Python's open() would not)."""
    _, _, _, run = titanic
    proc = run_python(
        textwrap.dedent(f"""
        import json, os, sys
        from runners import object_store
        os.environ.update(object_store.s3_environment())
        import tensorflow_io
        from components import anomalies_gate
        from modeling import drift
        from tfx.types import standard_artifacts
        anomalies = standard_artifacts.ExampleAnomalies()
        anomalies.uri = {run.artifact("ExampleValidator", "anomalies")["uri"]!r}
        anomalies.split_names = '["train", "eval"]'
        schema = drift.load_schema({run.artifact("ImportSchemaGen", "schema")["uri"]!r})
        stats = drift.load_split({run.artifact("StatisticsGen", "statistics")["uri"]!r}, "train")
        print(json.dumps({{"splits": sorted(anomalies_gate.read_anomalies(anomalies)),
                          "features": sorted(f.name for f in schema.feature),
                          "examples": stats.datasets[0].num_examples}}))
        sys.stdout.flush(); os._exit(0)
    """),
        env=s3.env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["splits"] == ["eval", "train"] and {"Age", "Fare", "Sex"} <= set(out["features"])
    assert out["examples"] == 712


def test_a_push_to_an_object_store_is_never_seen_partial_by_a_poller(s3, tmp_path):
    """A model server polling the serving root while the Pusher copies (TF Serving lists versions by key prefix):
    whenever a version's saved_model.pb is listed, every other file of the version is listed too."""
    import threading

    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    for i in range(150):
        (model / "variables" / f"shard-{i:03d}").write_bytes(os.urandom(1024))
    (model / "saved_model.pb").write_bytes(b"graph")
    expected = {p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()}
    seen, stop, partial = [], threading.Event(), []

    def poll():
        client = s3.client()
        while not stop.is_set():
            keys = [o["Key"] for o in client.list_objects_v2(Bucket="serving", Prefix="poll/").get("Contents", [])]
            for version in {k.split("/")[1] for k in keys}:
                files = {k.split("/", 2)[2] for k in keys if k.split("/")[1] == version}
                seen.append(len(files))
                if "saved_model.pb" in files and files != expected:
                    partial.append(sorted(files))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        push = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
            import os, sys
            from runners import object_store
            os.environ.update(object_store.s3_environment())
            import tensorflow_io
            from components.atomic_pusher import push_atomically
            print(push_atomically({str(model)!r}, "s3://serving/poll"))
            sys.stdout.flush(); os._exit(0)
        """),
            ],
            cwd=PROJECT_ROOT,
            env=dict(os.environ, **s3.env),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        stop.set()
        poller.join(timeout=60)
    assert push.returncode == 0, push.stderr[-3000:]
    assert push.stdout.strip().splitlines()[-1].startswith("s3://serving/poll/")
    assert partial == []
    assert any(n < len(expected) for n in seen)  # the poller did look while the copy went on
    assert {k.split("/", 2)[2] for k in s3.keys("s3://serving/poll/")} == expected


# ---------------------------------------------------------------------------------------------------- other packages
@pytest.mark.slow
@pytest.mark.parametrize("name,subset_fixture", [("cifar2", "cifar2_subset"), ("imdb", "imdb_subset")])
def test_cifar2_and_imdb_packages_run_through_transform_on_s3(name, subset_fixture, request, s3, tmp_path):
    subset = request.getfixturevalue(subset_fixture)
    s3.upload(subset, f"s3://data/{name}")
    package = compile_package(name, tmp_path / "package", s3)
    run = backend(s3, tmp_path / "cluster").run(
        package,
        pipeline_root="s3://kfp/root",
        targets=["Transform"],
        parameters={
            "data-root": f"s3://data/{name}",
            "serving-root": f"s3://serving/{name}",
            "data-fingerprint": fingerprint(f"s3://data/{name}"),
        },
    )
    assert "Trainer" not in run.tasks and run.tasks["Transform"].state == "COMPLETE"
    examples = s3.keys(run.artifact("Transform", "transformed_examples")["uri"] + "/")
    assert {k.split("/")[-2] for k in examples if k.endswith(".gz")} == {"Split-train", "Split-eval"}
    assert any(
        k.endswith("transform_fn/saved_model.pb")
        for k in s3.keys(run.artifact("Transform", "transform_graph")["uri"] + "/")
    )


@pytest.mark.slow
def test_covid_package_runs_end_to_end_on_s3(s3, tmp_path):
    from data.fetch import fetch

    data = fetch("covid", tmp_path / "data", log=lambda m: None)
    s3.upload(data, "s3://data/covid")
    cfg = config_lib.PipelineConfig(epochs=30, max_mspe=100.0)  # as the shared covid run: plumbing, not quality
    package = compile_package("covid", tmp_path / "package", s3, cfg=cfg)
    run = backend(s3, tmp_path / "cluster").run(
        package,
        pipeline_root="s3://kfp/root",
        parameters={
            "data-root": "s3://data/covid",
            "serving-root": "s3://serving/covid",
            "data-fingerprint": fingerprint("s3://data/covid"),
        },
    )
    assert run.metadata("Evaluator", "blessing")["blessed"] == 1
    version = run.metadata("Pusher", "pushed_model")["pushed_version"]
    assert f"covid/{version}/saved_model.pb" in s3.keys("s3://serving/covid/")
    evaluation = local_copy(run.artifact("Evaluator", "evaluation")["uri"], tmp_path / "evaluation")
    assert "mean_squared_percentage_error" in results.load_metrics(str(evaluation))["overall"]
