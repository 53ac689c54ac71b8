"""The compiled Kubeflow packages executed here, task by task, by a harness playing KFP's v2 driver and launcher
(pipelines/runners/kfp_harness.py): each task's exact container command runs as a subprocess on the ExecutorInput KFP
would build, and its ExecutorOutput feeds the tasks downstream."""
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines import config as config_lib
from pipelines.runners import kfp_harness
from pipelines.runners import kubeflow as kubeflow_runner
from pipelines.metadata import results
from pipelines.config import PROJECT_ROOT


def compile_for_here(name, tmp, data_root, cfg=None):
    """A package as `make kubeflow` builds it, with the roots on this machine and the image's /app = the checkout."""
    settings = kubeflow_runner.KubeflowSettings(
        image="eat-tf2-tfx:test", pipeline_root=str(tmp / "kfp"), data_root=str(data_root),
        serving_root=str(tmp / "serving"), project_root=str(PROJECT_ROOT))
    return kubeflow_runner.compile_pipeline(name, tmp / "package", settings, cfg or config_lib.PipelineConfig())


def versions(root: Path):
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


@pytest.fixture(scope="module")
def titanic(tmp_path_factory, titanic_data):
    tmp = tmp_path_factory.mktemp("kfp_titanic")
    package = compile_for_here("titanic", tmp, titanic_data.parent)
    harness = kfp_harness.Harness(package)
    first = harness.run(run_id="first")
    return tmp, harness, first


def test_titanic_package_runs_to_a_blessed_pushed_model(titanic, titanic_run):
    tmp, _, run = titanic
    assert list(run.tasks) and all(t.seconds > 0 for t in run.tasks.values())
    assert {"CsvExampleGen", "Transform", "Trainer", "ServedBaseline", "Evaluator", "Pusher"} <= set(run.tasks)
    # every artifact lives under the pipeline root, one folder per run and task, as KFP lays them out
    for task in run.tasks.values():
        for artifacts in task.outputs.values():
            assert artifacts[0]["uri"].startswith(f"{tmp / 'kfp' / 'titanic'}/first/{task.name}/")
    pushed = run.metadata("Pusher", "pushed_model")
    assert pushed["pushed"] == 1
    version = pushed["pushed_version"]
    assert versions(tmp / "serving" / "titanic") == [version]
    assert (tmp / "serving" / "titanic" / version / "saved_model.pb").is_file()
    assert run.metadata("ServedBaseline", "model")["served_version"] == ""
    blessing = run.metadata("Evaluator", "blessing")
    assert blessing["blessed"] == 1 and blessing["baseline_version"] == ""
    # the same data, seed and code as the local run: the same metrics
    package_metrics = results.load_metrics(run.artifact("Evaluator", "evaluation")["uri"])["overall"]
    local = results.last_run("titanic", titanic_run).metrics["overall"]
    assert set(package_metrics) == set(local)
    for metric, value in local.items():
        assert package_metrics[metric] == pytest.approx(value, abs=1e-6), metric


def test_a_second_run_of_the_package_judges_against_the_first_model(titanic):
    tmp, harness, first = titanic
    version = first.metadata("Pusher", "pushed_model")["pushed_version"]
    serving = tmp / "serving" / "titanic"
    before = sorted((str(p.relative_to(serving)), p.stat().st_mtime_ns) for p in serving.rglob("*"))
    second = harness.run(run_id="second")
    assert second.metadata("ServedBaseline", "model")["served_version"] == version
    baseline_copy = Path(second.artifact("ServedBaseline", "model")["uri"]) / "Format-Serving" / "saved_model.pb"
    assert baseline_copy.read_bytes() == (serving / version / "saved_model.pb").read_bytes()
    blessing = second.metadata("Evaluator", "blessing")
    assert blessing["baseline_version"] == version and blessing["blessed"] == 1
    evaluation = second.artifact("Evaluator", "evaluation")["uri"]
    assert second.metadata("Evaluator", "evaluation")["baseline_version"] == version
    changes = results.load_metrics(evaluation, diffs=True)["overall"]
    assert changes["auc"] == pytest.approx(0.0, abs=1e-9)  # the same model, retrained bit for bit
    # Every task ran again (the harness has no cache), so the graph names this run's Transform output and a new
    # version is pushed; the weights are the first model's, bit for bit.
    second_version = second.metadata("Pusher", "pushed_model")["pushed_version"]
    assert versions(serving) == sorted([version, second_version]) and int(second_version) > int(version)
    for name in ("variables/variables.index", "variables/variables.data-00000-of-00001"):
        assert (serving / second_version / name).read_bytes() == (serving / version / name).read_bytes()
    after = sorted((str(p.relative_to(serving)), p.stat().st_mtime_ns) for p in serving.rglob("*"))
    assert [e for e in before if e[0].startswith(version)] == [e for e in after if e[0].startswith(version)]


def test_each_task_ran_the_exact_container_command(titanic):
    _, harness, run = titanic
    executors = harness.spec["deploymentSpec"]["executors"]
    commands = {tuple(e["container"]["command"]) for e in executors.values()}
    assert commands == {("python", "-m", "pipelines.runners.kfp_entrypoint")}
    # the launcher's outputFile is where TFX's entrypoint wrote the ExecutorOutput the harness read
    trainer_model = run.artifact("Trainer", "model")
    assert Path(trainer_model["uri"], "Format-Serving", "saved_model.pb").is_file()
    assert trainer_model["name"].isdigit()  # recorded, named by its ML Metadata id, as KFP's driver names it


@pytest.mark.parametrize("name,subset_fixture", [("cifar2", "cifar2_subset"), ("imdb", "imdb_subset")])
def test_cifar2_and_imdb_packages_run_through_transform(name, subset_fixture, request, tmp_path):
    subset = request.getfixturevalue(subset_fixture)
    package = compile_for_here(name, tmp_path, subset.parent)
    run = kfp_harness.Harness(package).run(run_id="subset", targets=["Transform"])
    assert "Trainer" not in run.tasks and "Transform" in run.tasks
    transformed = Path(run.artifact("Transform", "transformed_examples")["uri"])
    files = {p.parent.name: p for p in transformed.rglob("*.gz")}
    assert set(files) == {"Split-train", "Split-eval"} and all(f.stat().st_size > 0 for f in files.values())
    assert Path(run.artifact("Transform", "transform_graph")["uri"], "transform_fn", "saved_model.pb").is_file()


def test_covid_package_runs_end_to_end(tmp_path_factory):
    from data.fetch import fetch

    data = fetch("covid", tmp_path_factory.mktemp("data"), log=lambda m: None)
    tmp = tmp_path_factory.mktemp("kfp_covid")
    cfg = config_lib.PipelineConfig(epochs=30, max_mspe=100.0)  # as tests/test_covid_e2e.py: plumbing, not quality
    run = kfp_harness.Harness(compile_for_here("covid", tmp, data.parent, cfg)).run(run_id="covid")
    assert run.metadata("Evaluator", "blessing")["blessed"] == 1
    version = run.metadata("Pusher", "pushed_model")["pushed_version"]
    assert (tmp / "serving" / "covid" / version / "saved_model.pb").is_file()
    assert "mean_squared_percentage_error" in results.load_metrics(run.artifact("Evaluator", "evaluation")["uri"])[
        "overall"]


# ---- bad input: the first task fails with one line that names what is missing ----

@pytest.fixture(scope="module")
def titanic_package(tmp_path_factory, titanic_data):
    tmp = tmp_path_factory.mktemp("kfp_bad")
    return tmp, compile_for_here("titanic", tmp, titanic_data.parent)


def test_a_missing_data_root_names_itself(titanic_package, tmp_path):
    _, package = titanic_package
    missing = tmp_path / "no-such-folder"
    with pytest.raises(kfp_harness.HarnessError) as info:
        kfp_harness.Harness(package).run(parameters={"data-root": str(missing)}, targets=["CsvExampleGen"])
    message = str(info.value)
    assert "task 'CsvExampleGen' failed" in message
    assert f"data root '{missing}' does not exist" in message and "data-root" in message
    assert "Traceback" not in message


def test_a_wrong_data_root_says_what_it_expected(titanic_package, tmp_path):
    _, package = titanic_package
    wrong = tmp_path / "covid"
    wrong.mkdir()
    (wrong / "covid-19.csv").write_text("date\tconfirmed_num\n")
    with pytest.raises(kfp_harness.HarnessError) as info:
        kfp_harness.Harness(package).run(parameters={"data-root": str(wrong)}, targets=["CsvExampleGen"])
    message = str(info.value)
    assert "split 'train' expects 'train.csv'" in message and "eval: test.csv" in message
    assert "Traceback" not in message


def test_an_image_without_the_project_fails_the_first_task_saying_so(titanic_package, tmp_path):
    """`python` here starts this environment's interpreter with the project's install hidden: an image that has
    TFX but not this project."""
    _, package = titanic_package
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hide = bin_dir / "without_project.py"
    hide.write_text(textwrap.dedent(f"""
        import os, runpy, sys
        sys.meta_path[:] = [f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")]
        sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != {str(PROJECT_ROOT.resolve())!r}]
        assert sys.argv[1] == "-m", sys.argv  # the containers run `python -m MODULE ...`
        sys.argv = sys.argv[2:]  # [MODULE, args...]; runpy puts the module's path in argv[0], as -m does
        runpy._run_module_as_main(sys.argv[0])
    """))
    wrapper = bin_dir / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I "{hide}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    harness = kfp_harness.Harness(package, python_dir=str(bin_dir))
    with pytest.raises(kfp_harness.HarnessError) as info:
        harness.run(run_id="no-project")
    message = str(info.value)
    assert "No module named pipelines" in message or "No module named 'pipelines'" in message
    assert "Traceback" not in message
    assert not (Path(harness.pipeline_root) / "no-project" / "Transform").exists()  # nothing ran past it


def test_an_image_with_an_older_project_names_the_missing_executor(titanic_package, tmp_path):
    _, package = titanic_package
    text = package.read_text().replace("components.anomalies_gate.AnomaliesGate_Executor",
                                       "components.anomalies_gate_v0.Executor")
    old = tmp_path / "old.yaml"
    old.write_text(text)
    with pytest.raises(kfp_harness.HarnessError) as info:
        kfp_harness.Harness(old).run(targets=["AnomaliesGate"])
    message = str(info.value)
    assert "task 'AnomaliesGate' failed" in message
    assert "cannot load the executor components.anomalies_gate_v0.Executor" in message


def test_the_harness_refuses_what_kfp_refuses(titanic_package, tmp_path):
    import yaml

    _, package = titanic_package
    spec = yaml.safe_load(package.read_text())
    spec["deploymentSpec"]["executors"]["ServedBaseline_executor"] = {"resolver": {"outputArtifactQueries": {}}}
    bad = tmp_path / "resolver.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(kfp_harness.HarnessError, match="of kind resolver, which open-source Kubeflow Pipelines"):
        kfp_harness.Harness(bad)
    with pytest.raises(kfp_harness.HarnessError, match="unknown pipeline parameter"):
        kfp_harness.Harness(package).run(parameters={"data_root": "/x"})
