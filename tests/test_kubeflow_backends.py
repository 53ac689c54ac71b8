"""Kubeflow Pipelines as installed today: 2.17's backend rules (testing/kfp_twin.py, kfp_version="2.17") and the
store its manifests ship, SeaweedFS (built by `python -m runners.engines fetch seaweedfs`), beside 2.4 and 2.5.
Titanic's package end to end twice under each version (2.5's on moto is in test_kubeflow_twin.py, make test);
what SeaweedFS's S3 gateway does differently from MinIO for the calls the tasks make, each on the real server."""

import textwrap

import pytest

from kubeflow_helpers import backend, compile_package, fingerprint, store_in_env
from orchestration.config import PROJECT_ROOT
from runners import kfp_package_check, object_store
from runners import kubeflow as kubeflow_runner
from testing import kfp_twin, local_s3


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    work = tmp_path_factory.mktemp("seaweedfs")
    with local_s3.seaweedfs(work, log=work / "weed.log") as server, store_in_env(server):
        yield server


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    with local_s3.server(log=tmp_path_factory.mktemp("s3") / "moto.log") as server, store_in_env(server):
        yield server


# ------------------------------------------------------------------------------- rules read from 2.17's source
def test_217_driver_and_launcher_numbers_are_written_as_go_writes_them():
    # launcher (FormatFloat 'f', -1): never an exponent; 2.17's driver (pbValueToString): %d, else %g
    assert [kfp_twin.go_format_float(v) for v in (5.0, 0.5, 1e-05, 1234567.5)] == ["5", "0.5", "0.00001", "1234567.5"]
    assert [kfp_twin.go_driver_number(v) for v in (5.0, 0.5, 1e-05, 1234567.5)] == [
        "5",
        "0.5",
        "1e-05",
        "1.2345675e+06",
    ]


def test_217_minio_root_session_info_names_seaweedfs_and_retries():
    info = kfp_twin.session_info("minio://mlpipeline/v2/artifacts", "2.17")
    assert '"endpoint":"seaweedfs.kubeflow:9000"' in info and '"maxRetries":"5"' in info
    assert '"endpoint":"minio-service.kubeflow:9000"' in kfp_twin.session_info("minio://mlpipeline/x", "2.5")
    assert kfp_twin.session_info("s3://mlpipeline/x", "2.17") == '{"Provider":"s3","Params":{"fromEnv":"true"}}'


def test_no_global_cache_switch_before_214():
    with pytest.raises(kfp_twin.TwinError, match="no global cache switch"):
        kfp_twin.Backend(kfp_version="2.5", cache_enabled=False, log=lambda m: None)


def _package_with_default_only_parameter(tmp_path):
    spec = {
        "pipelineInfo": {"name": "p"},
        "components": {
            "comp-a": {
                "executorLabel": "exec-a",
                "inputDefinitions": {"parameters": {"x": {"parameterType": "STRING", "defaultValue": "d"}}},
            }
        },
        "deploymentSpec": {
            "executors": {
                "exec-a": {
                    "container": {
                        "image": "registry.example.com/i:1",
                        "command": ["sh", "-c"],
                        "args": ["echo {{$.inputs.parameters['x']}}"],
                    }
                }
            }
        },
        "root": {"dag": {"tasks": {"a": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": "a"}}}}},
    }
    return spec


def test_a_parameter_placeholder_served_only_by_a_default_is_refused_for_217_alone(tmp_path):
    spec = _package_with_default_only_parameter(tmp_path)
    assert kfp_package_check.problems(spec, kfp_version="2.5") == []
    assert kfp_package_check.problems(spec, kfp_version="2.4") == []
    (found,) = kfp_package_check.problems(spec, kfp_version="2.17")
    assert "KFP 2.17's driver resolves {{$.inputs.parameters['x']}}" in found and "does not set 'x'" in found
    # the twin plays the driver's failure where the task would fail
    import yaml

    package = tmp_path / "p.yaml"
    package.write_text(yaml.safe_dump(spec))
    cluster = kfp_twin.Backend(kfp_version="2.17", allow_local_root=True, work_dir=tmp_path / "c", log=lambda m: None)
    with pytest.raises(kfp_twin.TwinError, match="Kubeflow Pipelines would not run this package"):
        cluster.run(package, pipeline_root=str(tmp_path / "root"))


def test_a_version_the_packages_were_not_run_against_is_refused_in_one_line():
    (found,) = kfp_package_check.problems({}, kfp_version="2.3")
    assert found.startswith("KFP 2.3: the packages are run against open-source KFP 2.4, 2.5, 2.17 only")


@pytest.mark.pipeline
def test_compile_refuses_a_version_it_cannot_run_on(tmp_path):
    settings = kubeflow_runner.KubeflowSettings.from_env(
        {"KFP_IMAGE": "registry.example.com/i:1", "KFP_VERSION": "2.5, 2.3", "KFP_PROJECT_ROOT": str(PROJECT_ROOT)}
    )
    assert settings.kfp_versions == ("2.5", "2.3")
    with pytest.raises(kubeflow_runner.PackageError, match=r"Pipelines 2\.3 would not run this package") as info:
        kubeflow_runner.compile_pipeline("titanic", tmp_path, settings)
    assert "run against open-source KFP 2.4, 2.5, 2.17 only" in str(info.value)
    assert not (tmp_path / "titanic.yaml").exists()  # nothing half-right left to upload


def test_217_downloads_only_keys_under_the_prefix_and_refuses_traversal(moto, tmp_path):
    object_store.write("s3://kfp/dl/examples/Split-train/a.gz", b"a")
    object_store.write("s3://kfp/dl/examples_old/x", b"sibling")
    assert object_store.download_prefix("s3://kfp/dl/examples", tmp_path / "25") == 2  # 2.5: the sibling too
    assert object_store.download_prefix("s3://kfp/dl/examples", tmp_path / "217", under_prefix_only=True) == 1
    assert (tmp_path / "217" / "Split-train" / "a.gz").read_bytes() == b"a"
    object_store.write("s3://kfp/dl/bad/../../etc/x", b"x")
    with pytest.raises(OSError, match="path traversal detected"):
        object_store.download_prefix("s3://kfp/dl/bad", tmp_path / "bad", under_prefix_only=True)


# ---------------------------------------------------------------------- Titanic end to end twice, per backend
@pytest.mark.slow  # make test-full (about 10 minutes each); 2.5 on moto runs in make test (test_kubeflow_twin.py)
@pytest.mark.pipeline
@pytest.mark.parametrize("version,store_fixture", [("2.17", "seaweed"), ("2.4", "moto")])
def test_titanic_end_to_end_twice_the_second_run_judged_against_the_first(
    version, store_fixture, request, titanic_data, tmp_path
):
    store = request.getfixturevalue(store_fixture)
    root = f"s3://data/titanic-{version}"
    store.upload(titanic_data, root)
    package = compile_package("titanic", tmp_path / "package", store)
    cluster = backend(store, tmp_path / "cluster", kfp_version=version)
    parameters = {
        "data-root": root,
        "serving-root": f"s3://serving/titanic-{version}",
        "data-fingerprint": fingerprint(root),
    }
    first = cluster.run(package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="first")
    assert {t.state for t in first.tasks.values()} == {"COMPLETE"}
    pushed = first.metadata("Pusher", "pushed_model")
    assert first.metadata("Evaluator", "blessing")["blessed"] == 1 and pushed["pushed"] == 1
    assert f"titanic-{version}/{pushed['pushed_version']}/saved_model.pb" in store.keys(parameters["serving-root"])
    statistics = first.tasks["StatisticsGen"].executor_input["outputs"]
    if version == "2.17":
        # outputs named after their keys; the ExecutorOutput file under the task root's local path; the logs
        # URI suffixed with the retry index; the run id in place of {{$.pipeline_job_uuid}}
        assert statistics["artifacts"]["statistics"]["artifacts"][0]["name"] == "statistics"
        task_root = statistics["artifacts"]["statistics"]["artifacts"][0]["uri"].rsplit("/", 1)[0]
        assert statistics["outputFile"].endswith("/s3/" + task_root[len("s3://") :] + "/output_metadata.json")
        logs = first.artifact("StatisticsGen", "executor-logs")["uri"]
        assert logs == task_root + "/executor-logs-0" and b"type from the package" in object_store.read(logs)
        assert first.tasks["ServedBaseline"].executor_input["inputs"]["parameterValues"]["kfp_run_id"] == "first"
    else:
        assert "executor-logs" not in statistics["artifacts"]
        assert statistics["outputFile"] == "/tmp/kfp_outputs/output_metadata.json"
    # 2.4 does not replace {{$.pipeline_job_uuid}}: ServedBaseline is keyed on the candidate model, so with the
    # cache on an unchanged second run is all cached (the same model, the same verdict, nothing pushed again);
    # a re-judgement against the served model needs the cache off there
    caching = version != "2.4"
    second = cluster.run(
        package, pipeline_root="s3://kfp/root", parameters=parameters, run_id="second", enable_caching=caching
    )
    states = {name: task.state for name, task in second.tasks.items()}
    if caching:
        assert states["CsvExampleGen"] == states["Trainer"] == "CACHED"
    assert states["ServedBaseline"] == states["Evaluator"] == states["Pusher"] == "COMPLETE"
    blessing = second.metadata("Evaluator", "blessing")
    assert second.metadata("ServedBaseline", "model")["served_version"] == pushed["pushed_version"]
    assert blessing["baseline_version"] == pushed["pushed_version"] and blessing["blessed"] == 1


@pytest.mark.slow
@pytest.mark.pipeline
def test_217_with_the_cache_off_globally_runs_every_task_again(moto, titanic_data, tmp_path):
    root = "s3://data/titanic-nocache"
    moto.upload(titanic_data, root)
    package = compile_package("titanic", tmp_path / "package", moto)
    cluster = backend(moto, tmp_path / "cluster", kfp_version="2.17", cache_enabled=False)
    parameters = {"data-root": root, "serving-root": "s3://serving/nc", "data-fingerprint": fingerprint(root)}
    for run_id in ("one", "two"):
        run = cluster.run(
            package,
            pipeline_root="s3://kfp/nocache",
            parameters=parameters,
            run_id=run_id,
            enable_caching=True,
            targets=["StatisticsGen"],
        )
        assert {t.state for t in run.tasks.values()} == {"COMPLETE"}
    assert cluster.cache == {}


@pytest.mark.pipeline
def test_217_a_failed_task_still_publishes_its_log(moto, tmp_path):
    package = compile_package("titanic", tmp_path / "package", moto)
    cluster = backend(moto, tmp_path / "cluster", kfp_version="2.17")
    parameters = {"data-root": "s3://data/nothing-here", "serving-root": "s3://serving/x", "data-fingerprint": "0"}
    with pytest.raises(kfp_twin.TwinError) as info:
        cluster.run(package, pipeline_root="s3://kfp/failed", parameters=parameters, targets=["CsvExampleGen"])
    message = str(info.value)
    assert "task 'CsvExampleGen' failed" in message and "its log was published: s3://kfp/failed/" in message
    logs = message.rsplit("its log was published: ", 1)[1].rstrip(")")
    assert logs.endswith("/CsvExampleGen/" + logs.split("/CsvExampleGen/")[1]) and logs.endswith("executor-logs-0")
    assert b"nothing-here" in object_store.read(logs)


# ------------------------------------------------------- SeaweedFS's S3 gateway against MinIO's, on the real server
_GHOST = textwrap.dedent(
    """
    import os, tensorflow as tf, tensorflow_io  # noqa: F401
    from runners import object_store
    os.environ.update(object_store.s3_environment())
    prefix = "PREFIX"
    with tf.io.gfile.GFile(prefix + "/Split-train/data_tfrecord-00000-of-00001.gz", "wb") as f:
        f.write(b"x")
    with tf.io.gfile.GFile(prefix + "/Split-train/beam-temp-data_tfrecord-1/part", "wb") as f:
        f.write(b"x")
    tf.io.gfile.remove(prefix + "/Split-train/beam-temp-data_tfrecord-1/part")  # as Beam's finalize leaves it
    print("before", sorted(p.rsplit("/", 1)[1] for p in tf.io.gfile.glob(prefix + "/Split-train/*")))
    print("swept", object_store.sweep_empty_folders(prefix))
    print("after", sorted(p.rsplit("/", 1)[1] for p in tf.io.gfile.glob(prefix + "/Split-train/*")), flush=True)
    os._exit(0)  # tensorflow-io's S3 can abort the interpreter at shutdown (kfp_entrypoint's docstring, 6.)
    """
)


@pytest.mark.slow
def test_seaweedfs_keeps_an_emptied_folder_listed_until_the_entrypoint_sweeps_it(seaweed, run_python):
    """SeaweedFS is a file system under its S3 gateway: a folder emptied by a delete stays a listed prefix (and
    HEAD folder/ answers 200) until its empty-folder cleaner removes it, about two minutes later
    (weed/filer/empty_folder_cleanup, 2-minute queue age, 30 s passes). MinIO and S3 drop the prefix with its
    last object. TensorFlow's glob then returns the ghost: Beam's emptied beam-temp-* folder inside a split is
    "a file" to a reader of Split-train/*. The entrypoint sweeps its outputs' empty folders after each task."""
    proc = run_python(_GHOST.replace("PREFIX", "s3://data/ghost/examples"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "before ['beam-temp-data_tfrecord-1', 'data_tfrecord-00000-of-00001.gz']" in out
    assert "swept 1" in out
    assert "after ['data_tfrecord-00000-of-00001.gz']" in out


@pytest.mark.slow
def test_moto_like_minio_drops_an_emptied_prefix_at_once(moto, run_python):
    proc = run_python(_GHOST.replace("PREFIX", "s3://data/ghost/examples"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "before ['data_tfrecord-00000-of-00001.gz']" in out and "swept 0" in out


@pytest.mark.slow
def test_seaweedfs_folds_double_slashes_in_keys(seaweed):
    """S3 and MinIO keep a key's "//"; SeaweedFS stores a path: `a//b` is written and listed as `a/b`. The
    project's URIs never hold one (roots are stripped of a trailing "/" where they are read: KubeflowSettings,
    the twin's pipeline root, the Pusher), so a listing always finds what was written."""
    client = seaweed.client()
    client.put_object(Bucket="data", Key="fold//x", Body=b"q")
    assert [k for k in seaweed.keys("s3://data/fold")] == ["fold/x"]
    assert client.get_object(Bucket="data", Key="fold//x")["Body"].read() == b"q"  # read back under either


@pytest.mark.slow
def test_seaweedfs_multipart_and_copy_rules_match_minios(seaweed):
    """The calls Beam's and TensorFlow's S3 writers make: multipart parts under 5 MiB are refused but the last
    (EntityTooSmall, as MinIO), a self-copy without new metadata is refused (InvalidRequest, as S3; TensorFlow's
    rename never does one), a copy (rename's first half) keeps the bytes."""
    import botocore

    client = seaweed.client()
    upload = client.create_multipart_upload(Bucket="data", Key="mp/small")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": client.upload_part(Bucket="data", Key="mp/small", UploadId=upload, PartNumber=n, Body=b"x" * 100)[
                "ETag"
            ],
        }
        for n in (1, 2)
    ]
    with pytest.raises(botocore.exceptions.ClientError, match="EntityTooSmall"):
        client.complete_multipart_upload(
            Bucket="data", Key="mp/small", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    client.put_object(Bucket="data", Key="cp/a", Body=b"bytes")
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidRequest"):
        client.copy_object(Bucket="data", Key="cp/a", CopySource={"Bucket": "data", "Key": "cp/a"})
    client.copy_object(Bucket="data", Key="cp/b", CopySource={"Bucket": "data", "Key": "cp/a"})
    assert client.get_object(Bucket="data", Key="cp/b")["Body"].read() == b"bytes"
