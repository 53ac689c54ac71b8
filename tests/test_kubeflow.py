"""Kubeflow packages compile offline from the same factory, load in kfp, and have the expected DAG; the
Dockerfile installs exactly what `make` installs."""

import json
import os
import re

import pytest
import yaml

from orchestration.config import PROJECT_ROOT
from pipelines import registry
from runners import kubeflow as kubeflow_runner

SETTINGS = kubeflow_runner.KubeflowSettings(
    image="registry.example/eat-tf2-tfx:1.2.3",
    project_root="/app",
    env=(("AWS_ENDPOINT_URL", "http://minio-service.kubeflow:9000"),),
    s3_secret="mlpipeline-minio-artifact",
)
EXAMPLE_GEN = {
    "titanic": "CsvExampleGen",
    "cifar2": "ImageExampleGen",
    "imdb": "DelimitedExampleGen",
    "covid": "WindowExampleGen",
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    out = tmp_path_factory.mktemp("kubeflow")
    return {name: kubeflow_runner.compile_pipeline(name, out, SETTINGS) for name in registry.PIPELINES}


@pytest.mark.parametrize("name", registry.PIPELINES)
def test_package_loads_in_kfp_with_the_expected_dag(packages, name):
    from kfp import components

    component = components.load_component_from_file(str(packages[name]))
    spec = component.pipeline_spec
    tasks = {k: set(v.dependent_tasks) for k, v in spec.root.dag.tasks.items()}
    gen = EXAMPLE_GEN[name]
    schema = "ImportSchemaGen" if name == "titanic" else "SchemaGen"
    assert {
        gen,
        "StatisticsGen",
        schema,
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "Evaluator",
        "Pusher",
    } <= set(tasks)
    assert tasks["StatisticsGen"] == {gen}
    assert tasks["AnomaliesGate"] == {"ExampleValidator"}
    assert "AnomaliesGate" in tasks["Transform"]  # no training before the data passed validation
    assert {"Transform"} <= tasks["Trainer"]
    assert {"Trainer", gen, "ServedBaseline"} <= tasks["Evaluator"]
    assert tasks["ServedBaseline"] == {"Trainer"}  # the serving root is read right before the model is judged
    assert tasks["Pusher"] == {"Evaluator", "Trainer", gen}  # gen: the eval examples its warm-up requests come from
    parameters = spec.root.input_definitions.parameters
    assert set(parameters) == {"data-root", "serving-root", "data-fingerprint"}
    assert not any(p.HasField("default_value") or p.is_optional for p in parameters.values())  # all per run
    from google.protobuf import json_format

    executors = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert images == {SETTINGS.image}


def test_roots_are_run_parameters_and_functions_dotted_paths(packages):
    text = packages["titanic"].read_text()
    doc = yaml.safe_load_all(text).__next__()
    assert "defaultPipelineRoot" not in doc  # the backend reads the run's root; none that only looks real
    assert "gs://" not in text and "s3://" not in text and "YOUR_BUCKET" not in text
    tasks = doc["root"]["dag"]["tasks"]
    assert tasks["CsvExampleGen"]["inputs"]["parameters"]["input_base"] == {"componentInputParameter": "data-root"}
    assert tasks["CsvExampleGen"]["inputs"]["parameters"]["kfp_data_fingerprint"] == {
        "componentInputParameter": "data-fingerprint"
    }
    for task in ("ServedBaseline", "Pusher"):
        assert tasks[task]["inputs"]["parameters"]["serving_root"] == {"componentInputParameter": "serving-root"}
    assert tasks["ServedBaseline"]["inputs"]["parameters"]["kfp_run_id"] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }
    assert "/app/pipelines/titanic/schema.pbtxt" in text  # the curated schema, where the image has it
    assert "modeling.trainer.run_fn" in text and "pipelines.titanic.features.preprocessing_fn" in text
    assert str(PROJECT_ROOT) not in text  # nothing of this checkout's paths leaks into the package


def test_task_environment_and_the_s3_secret_go_into_the_package(packages):
    docs = list(yaml.safe_load_all(packages["titanic"].read_text()))
    assert len(docs) == 2  # the pipeline spec, then kfp-kubernetes' platform spec
    executors = docs[0]["deploymentSpec"]["executors"]
    assert {json.dumps(e["container"]["env"]) for e in executors.values()} == {
        json.dumps([{"name": "AWS_ENDPOINT_URL", "value": "http://minio-service.kubeflow:9000"}])
    }
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(platform) == set(executors)
    assert {json.dumps(c["secretAsEnv"]) for c in platform.values()} == {
        json.dumps(
            [
                {
                    "secretName": "mlpipeline-minio-artifact",
                    "keyToEnv": [
                        {"secretKey": "accesskey", "envVar": "AWS_ACCESS_KEY_ID"},
                        {"secretKey": "secretkey", "envVar": "AWS_SECRET_ACCESS_KEY"},
                    ],
                }
            ]
        )
    }
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    # what the kfp SDK sends along at submission (kfp/client/client.py _safe_load_yaml: the second document)
    sent = json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
    assert set(sent.platforms["kubernetes"].deployment_spec.executors) == set(executors)


def test_make_kubeflow_prints_a_ready_submission_and_refuses_an_image_it_cannot_name(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    env = dict(
        os.environ,
        KFP_IMAGE="ghcr.io/team/eat-tf2-tfx:1.0",
        KFP_IMAGE_DIGEST="sha256:" + "a" * 64,
        KFP_PIPELINE_ROOT="s3://mlpipeline/v2/artifacts",
        KFP_DATA_ROOT="s3://data",
        KFP_SERVING_ROOT="s3://serving",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runners.kubeflow", "titanic", "--output-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"compiled titanic -> {tmp_path / 'titanic.yaml'} (image ghcr.io/team/eat-tf2-tfx:1.0@sha256:" in proc.stdout
    assert 'data_root = "s3://data/titanic"' in proc.stdout and '"serving-root": "s3://serving/titanic"' in proc.stdout
    assert 'pipeline_root="s3://mlpipeline/v2/artifacts"' in proc.stdout and "fingerprint(data_root)" in proc.stdout
    assert "not pinned by digest" not in proc.stderr
    snippet = proc.stdout.split("# submit a run of titanic:\n", 1)[1].split("\n\n", 1)[0]
    compile(snippet, "snippet", "exec")  # it is Python as printed
    doc = next(yaml.safe_load_all((tmp_path / "titanic.yaml").read_text()))
    assert doc["defaultPipelineRoot"] == "s3://mlpipeline/v2/artifacts"
    assert {e["container"]["image"] for e in doc["deploymentSpec"]["executors"].values()} == {
        "ghcr.io/team/eat-tf2-tfx:1.0@sha256:" + "a" * 64
    }

    for var in ("KFP_IMAGE", "KFP_IMAGE_DIGEST", "KFP_ENV", "KFP_PIPELINE_ROOT", "KFP_DATA_ROOT", "KFP_SERVING_ROOT"):
        monkeypatch.delenv(var, raising=False)
    for env, message in (
        ({}, "KFP_IMAGE is not set"),
        (
            {"KFP_IMAGE": "eat-tf2-tfx:latest"},
            "names no registry: the cluster would pull docker.io/library/eat-tf2-tfx:latest",
        ),
        ({"KFP_IMAGE": "ghcr.io/t/i:1", "KFP_IMAGE_DIGEST": "sha256:nope"}, "is not sha256:<64"),
        ({"KFP_IMAGE": "ghcr.io/t/i:1", "KFP_ENV": "NOEQUALS"}, "KFP_ENV: 'NOEQUALS' is not NAME=VALUE"),
    ):
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            assert kubeflow_runner.main(["titanic", "--output-dir", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err, env
    monkeypatch.setenv("KFP_IMAGE", "ghcr.io/team/eat-tf2-tfx:1.0")
    assert kubeflow_runner.main(["titanic", "--output-dir", str(tmp_path / "unpinned")]) == 0
    out, err = capsys.readouterr()
    assert "not pinned by digest" in err
    assert "<s3:// or gs:// folder for artifacts>" in out  # no root given: a placeholder, not a bucket


def test_settings_from_environment():
    settings = kubeflow_runner.KubeflowSettings.from_env(
        {
            "KFP_IMAGE": "r.io/img:1",
            "KFP_PIPELINE_ROOT": "s3://b/r/",
            "KFP_ENV": "A=1 'B=two words'",
            "KFP_S3_SECRET": "s:ak:sk",
        }
    )
    assert (settings.image, settings.pipeline_root, settings.project_root) == ("r.io/img:1", "s3://b/r", "/app")
    assert settings.env == (("A", "1"), ("B", "two words")) and settings.secret_keys() == ("s", "ak", "sk")
    assert settings.image_reference() == "r.io/img:1"
    assert kubeflow_runner.KubeflowSettings(image="localhost:5000/img:1").image_reference() == "localhost:5000/img:1"


def test_dockerfile_installs_what_make_installs():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    # the same declared parts under the same pins, less the tests' `dev` extra
    assert '-m pip install -c constraints.txt ".[serving,spark,s3]"' in dockerfile
    assert (
        '-m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[serving,spark,s3,dev]"' in makefile
    )
    assert "editable_mode=compat" in makefile  # the checkout on sys.path, as /app is in the image
    assert "-m pip install --no-deps -c constraints.txt -e ." in dockerfile and "pytest" not in dockerfile
    assert re.search(r"^FROM python:3\.10", dockerfile, re.M)  # the Python the constraints were resolved for
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    rooms = re.search(r"^ROOMS = \(([^)]*)\)", (PROJECT_ROOT / "setup.py").read_text(), re.M).group(1)
    for folder in re.findall(r'"(\w+)"', rooms):  # every room the package installs is in the image
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert "COPY testing" not in dockerfile  # the test doubles are not


# ---- the package check: what open-source KFP would refuse or fail on ----


@pytest.mark.parametrize("name", registry.PIPELINES)
@pytest.mark.parametrize("kfp_version", ["2.4", "2.5"])
def test_every_package_passes_the_open_source_kfp_check(packages, name, kfp_version):
    from runners import kfp_package_check

    docs = list(yaml.safe_load_all(packages[name].read_text()))
    spec = dict(docs[0], _platform=docs[1])
    assert kfp_package_check.problems(spec, [str(PROJECT_ROOT), str(PROJECT_ROOT.resolve())], kfp_version) == []
    executors = spec["deploymentSpec"]["executors"]
    assert {kind for e in executors.values() for kind in e if kind != "lifecycle"} == {"container"}
    assert {tuple(e["container"]["command"]) for e in executors.values()} == {
        ("python", "-m", "runners.kfp_entrypoint")
    }


def _titanic_spec(packages):
    return next(yaml.safe_load_all(packages["titanic"].read_text()))


def test_the_check_flags_an_executor_kind_kfp_does_not_implement(packages):
    from runners import kfp_package_check

    spec = _titanic_spec(packages)
    spec["deploymentSpec"]["executors"]["ServedBaseline_executor"] = {
        "resolver": {"outputArtifactQueries": {"model": {"filter": "schema_title=tfx.Model"}}}
    }
    found = kfp_package_check.problems(spec)
    assert len(found) == 1 and "'ServedBaseline'" in found[0] and "kind resolver" in found[0]


def test_the_check_flags_placeholders_nothing_resolves(packages):
    from runners import kfp_package_check

    spec = _titanic_spec(packages)
    args = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"]
    args += [
        "{{$.inputs.artifacts['examples'].uri}}",
        "{{$.inputs.artifacts['nope'].uri}}",
        "--x={{$.outputs.parameters['y'].output_file}}",
    ]
    pusher = spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]
    pusher["custom_config"] = {"runtimeValue": {"constant": "{{pipelineparam:op=;name=data-root}}"}}
    pusher["push_destination"] = {"componentInputParameter": "serving_root"}  # the pipeline's is serving-root
    spec["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["parameters"]["example_splits"] = {
        "runtimeValue": {"constant": "{{$.pipeline_job_name}}"}
    }  # 2.5's driver replaces this one, 2.4's does not
    spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"] = {
        "runtimeValue": {"constant": "{{$.pipeline_root}}"}
    }  # neither replaces this one
    found = kfp_package_check.problems(spec)
    assert len(found) == 5, found
    assert any("'Trainer'" in f and "{{$.pipeline_root}}" in f for f in found)
    assert len(kfp_package_check.problems(spec, kfp_version="2.4")) == 6
    assert any("'Trainer'" in f and "['nope']" in f for f in found)
    assert any("'Trainer'" in f and "parameters['y']" in f for f in found)
    assert any("'Pusher'" in f and "pipelineparam" in f for f in found)
    assert any("'Pusher'" in f and "'serving_root', which the pipeline does not declare" in f for f in found)


def test_a_package_naming_this_checkout_is_refused(tmp_path):
    leaky = kubeflow_runner.KubeflowSettings(image="r.io/i:1", env=(("DATA", str(PROJECT_ROOT / "data")),))
    with pytest.raises(kubeflow_runner.PackageError, match=f"holds the path '{PROJECT_ROOT}'"):
        kubeflow_runner.compile_pipeline("titanic", tmp_path, leaky)


def test_kfp_names_come_from_package_names():
    from runners import kubeflow as kubeflow_runner

    assert kubeflow_runner.kfp_pipeline_name("wine_quality") == "wine-quality"
    assert kubeflow_runner.kfp_pipeline_name("titanic") == "titanic"
    with pytest.raises(kubeflow_runner.PackageError, match="lowercase letters, digits and '-'"):
        kubeflow_runner.kfp_pipeline_name("_private")
