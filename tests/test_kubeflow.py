"""Kubeflow packages compile offline from the same factory, load in kfp, and have the expected DAG; the
Dockerfile installs exactly what `make` installs."""
import re

import pytest
import yaml

from pipelines import kubeflow_runner, registry
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
    assert {"Trainer", gen} <= tasks["Evaluator"] and any("resolver" in t for t in tasks["Evaluator"])
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

    proc = subprocess.run([sys.executable, "-m", "pipelines.kubeflow_runner", "--output-dir", str(tmp_path)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.yaml" for n in registry.PIPELINES)
    bad = subprocess.run([sys.executable, "-m", "pipelines.kubeflow_runner", "nope"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown pipeline 'nope'" in bad.stderr


def test_settings_from_environment():
    settings = kubeflow_runner.KubeflowSettings.from_env({"KFP_IMAGE": "img:1", "KFP_PIPELINE_ROOT": "s3://b/r/"})
    assert (settings.image, settings.pipeline_root, settings.project_root) == ("img:1", "s3://b/r", "/app")


def test_dockerfile_installs_what_make_installs():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for install in ("-m pip install -r requirements.in -c constraints.txt", "-m pip install --no-deps -e ."):
        assert install in dockerfile
        assert install.replace("-m pip install", "-m pip install --quiet --disable-pip-version-check") in makefile
    assert re.search(r"^FROM python:3\.10", dockerfile, re.M)  # the Python the constraints were resolved for
    assert "TF_USE_LEGACY_KERAS=1" in dockerfile
    for folder in ("components", "data", "pipelines", "serving"):
        assert f"COPY {folder} ./{folder}" in dockerfile
