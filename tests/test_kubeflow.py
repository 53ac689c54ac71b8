"""Kubeflow packages compile offline from the same factory, load in kfp, and have the expected DAG; the
Dockerfile installs exactly what `make` installs."""
import re

import pytest
import yaml

from pipelines import registry
from pipelines.runners import kubeflow as kubeflow_runner
from pipelines.config import PROJECT_ROOT

SETTINGS = kubeflow_runner.KubeflowSettings(image="registry.example/eat-tf2-tfx:1.2.3",
                                            pipeline_root="gs://bucket/tfx", data_root="gs://bucket/data",
                                            serving_root="gs://bucket/serving", project_root="/app")
EXAMPLE_GEN = {"titanic": "CsvExampleGen", "cifar2": "ImageExampleGen", "imdb": "DelimitedExampleGen",
               "covid": "WindowExampleGen"}


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
    assert {gen, "StatisticsGen", schema, "ExampleValidator", "AnomaliesGate", "Transform", "Trainer",
            "Evaluator", "Pusher"} <= set(tasks)
    assert tasks["StatisticsGen"] == {gen}
    assert tasks["AnomaliesGate"] == {"ExampleValidator"}
    assert "AnomaliesGate" in tasks["Transform"]  # no training before the data passed validation
    assert {"Transform"} <= tasks["Trainer"]
    assert {"Trainer", gen, "ServedBaseline"} <= tasks["Evaluator"]
    assert tasks["ServedBaseline"] == {"Trainer"}  # the serving root is read right before the model is judged
    assert tasks["Pusher"] == {"Evaluator", "Trainer"}
    assert spec.root.input_definitions.parameters["data-root"].default_value.string_value == \
        f"gs://bucket/data/{registry.get_spec(name).dataset}"
    from google.protobuf import json_format

    executors = json_format.MessageToDict(spec.deployment_spec)["executors"].values()
    images = {e["container"]["image"] for e in executors if "container" in e}
    assert images == {SETTINGS.image}


def test_package_points_at_the_configured_roots_and_dotted_paths(packages):
    text = packages["titanic"].read_text()
    doc = yaml.safe_load(text)
    assert doc["defaultPipelineRoot"] == "gs://bucket/tfx/titanic"
    assert "gs://bucket/serving/titanic" in text
    assert "/app/pipelines/titanic/schema.pbtxt" in text  # the curated schema, where the image has it
    assert "components.trainer.run_fn" in text and "pipelines.titanic.features.preprocessing_fn" in text
    assert str(PROJECT_ROOT) not in text  # nothing of this checkout's paths leaks into the package


def test_make_kubeflow_compiles_all_quickly(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pipelines.runners.kubeflow", "--output-dir", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.yaml" for n in registry.PIPELINES)
    bad = subprocess.run([sys.executable, "-m", "pipelines.runners.kubeflow", "nope"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown pipeline 'nope'" in bad.stderr


def test_settings_from_environment():
    settings = kubeflow_runner.KubeflowSettings.from_env({"KFP_IMAGE": "img:1", "KFP_PIPELINE_ROOT": "s3://b/r/"})
    assert (settings.image, settings.pipeline_root, settings.project_root) == ("img:1", "s3://b/r", "/app")


def test_dockerfile_installs_what_make_installs():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    # the same declared parts under the same pins, less the tests' `dev` extra
    assert '-m pip install -c constraints.txt ".[serving,spark]"' in dockerfile
    assert '-m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[serving,spark,dev]"' in makefile
    assert "editable_mode=compat" in makefile  # the checkout on sys.path, as /app is in the image
    assert "-m pip install --no-deps -c constraints.txt -e ." in dockerfile and "pytest" not in dockerfile
    assert re.search(r"^FROM python:3\.10", dockerfile, re.M)  # the Python the constraints were resolved for
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    for folder in ("components", "data", "pipelines", "serving"):
        assert f"COPY {folder} ./{folder}" in dockerfile


# ---- the package check: what open-source KFP would refuse or fail on ----

@pytest.mark.parametrize("name", registry.PIPELINES)
def test_every_package_passes_the_open_source_kfp_check(packages, name):
    from pipelines.runners import kfp_package_check

    spec = yaml.safe_load(packages[name].read_text())
    assert kfp_package_check.problems(spec, [str(PROJECT_ROOT), str(PROJECT_ROOT.resolve())]) == []
    executors = spec["deploymentSpec"]["executors"]
    assert {kind for e in executors.values() for kind in e if kind != "lifecycle"} == {"container"}
    assert {tuple(e["container"]["command"]) for e in executors.values()} == {
        ("python", "-m", "pipelines.runners.kfp_entrypoint")}
    caching = {t: task.get("cachingOptions", {}).get("enableCache") for t, task in spec["root"]["dag"]["tasks"].items()}
    assert caching.pop("ServedBaseline") is False and set(caching.values()) == {True}


def _titanic_spec(packages):
    return yaml.safe_load(packages["titanic"].read_text())


def test_the_check_flags_an_executor_kind_kfp_does_not_implement(packages):
    from pipelines.runners import kfp_package_check

    spec = _titanic_spec(packages)
    spec["deploymentSpec"]["executors"]["ServedBaseline_executor"] = {
        "resolver": {"outputArtifactQueries": {"model": {"filter": "schema_title=tfx.Model"}}}}
    found = kfp_package_check.problems(spec)
    assert len(found) == 1 and "'ServedBaseline'" in found[0] and "kind resolver" in found[0]


def test_the_check_flags_placeholders_nothing_resolves(packages):
    from pipelines.runners import kfp_package_check

    spec = _titanic_spec(packages)
    args = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"]
    args += ["{{$.inputs.artifacts['examples'].uri}}", "{{$.inputs.artifacts['nope'].uri}}",
             "--x={{$.outputs.parameters['y'].output_file}}"]
    pusher = spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]
    pusher["custom_config"] = {"runtimeValue": {"constant": "{{pipelineparam:op=;name=data-root}}"}}
    pusher["push_destination"] = {"componentInputParameter": "serving-root"}
    spec["root"]["dag"]["tasks"]["Evaluator"]["inputs"]["parameters"]["example_splits"] = {
        "runtimeValue": {"constant": "{{$.pipeline_job_name}}"}}  # the driver resolves this one
    found = kfp_package_check.problems(spec)
    assert len(found) == 4, found
    assert any("'Trainer'" in f and "['nope']" in f for f in found)
    assert any("'Trainer'" in f and "parameters['y']" in f for f in found)
    assert any("'Pusher'" in f and "pipelineparam" in f for f in found)
    assert any("'Pusher'" in f and "'serving-root', which the pipeline does not declare" in f for f in found)


def test_a_package_naming_this_checkout_is_refused(tmp_path):
    leaky = kubeflow_runner.KubeflowSettings(data_root=str(PROJECT_ROOT / "data" / "raw"))
    with pytest.raises(kubeflow_runner.PackageError, match=f"holds the path '{PROJECT_ROOT}'"):
        kubeflow_runner.compile_pipeline("titanic", tmp_path, leaky)
