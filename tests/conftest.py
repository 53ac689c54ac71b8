import os
import subprocess
import sys
from pathlib import Path

# Before anything imports TensorFlow: TFX 1.16 needs tf.keras to be tf-keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import pytest  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def titanic_data(tmp_path_factory) -> Path:
    """The real Titanic files (891 rows: small enough for tests), fetched and verified like `make run` does."""
    from data.fetch import fetch

    return fetch("titanic", tmp_path_factory.mktemp("data"))


def _run_python(code: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


CIFAR2_PER_CLASS = 30
IMDB_LINES = {"train.csv": 400, "test.csv": 100}


@pytest.fixture(scope="session")
def cifar2_subset(tmp_path_factory) -> Path:
    """30 real images per class and split, laid out as the dataset is."""
    import shutil

    from data.fetch import fetch

    full = fetch("cifar2", tmp_path_factory.mktemp("data"), log=lambda m: None)
    root = tmp_path_factory.mktemp("cifar2_subset") / "cifar2"
    for split in ("train", "test"):
        for name in ("airplane", "automobile"):
            (root / split / name).mkdir(parents=True)
            for f in sorted((full / split / name).iterdir())[:CIFAR2_PER_CLASS]:
                shutil.copy(f, root / split / name / f.name)
    return root


@pytest.fixture(scope="session")
def imdb_subset(tmp_path_factory) -> Path:
    """The first 400 training and 100 test reviews."""
    from data.fetch import fetch

    full = fetch("imdb", tmp_path_factory.mktemp("data"), log=lambda m: None)
    root = tmp_path_factory.mktemp("imdb_subset") / "imdb"
    root.mkdir()
    for name, lines in IMDB_LINES.items():
        with open(full / name, encoding="utf-8") as src:
            (root / name).write_text("".join(next(src) for _ in range(lines)), encoding="utf-8")
    return root


@pytest.fixture()
def run_python():
    """Runs code in a fresh interpreter (a plain TF process, or one whose devices must be set before TF starts)."""
    return _run_python


def _run_pipeline(spec, cfg, **kwargs):
    """One LocalDagRunner run of the factory's pipeline (kwargs: create_pipeline's, e.g. data_root); returns cfg."""
    from tfx import v1 as tfx

    from pipelines.factory import create_pipeline

    tfx.orchestration.LocalDagRunner().run(create_pipeline(spec, cfg, **kwargs))
    return cfg


def _node_states(spec, cfg):
    """{node id: [state of each execution, oldest first]} for every node of the spec's pipeline, from ML Metadata."""
    from pipelines.factory import create_pipeline
    from pipelines.metadata import results

    store = results.open_store(cfg.metadata_path(spec.name))
    return {c.id: [results.execution_state(e) for e in results.node_executions(store, spec.name, c.id)]
            for c in create_pipeline(spec, cfg).components}


def _assert_every_node_ran_once(spec, cfg):
    states = _node_states(spec, cfg)
    assert states == {node: ["COMPLETE"] for node in states}


@pytest.fixture(scope="session")
def run_pipeline():
    return _run_pipeline


@pytest.fixture(scope="session")
def node_states():
    return _node_states


@pytest.fixture(scope="session")
def assert_every_node_ran_once():
    """The e2e tests' first check: every node of the pipeline has exactly one execution, COMPLETE."""
    return _assert_every_node_ran_once


@pytest.fixture(scope="session")
def titanic_run(tmp_path_factory, titanic_data):
    """One real Titanic pipeline run (about a minute) shared by the tests that need a trained, pushed model."""
    from pipelines import config as config_lib
    from pipelines.titanic.spec import SPEC

    cfg = config_lib.PipelineConfig(output_dir=tmp_path_factory.mktemp("titanic_run"), data_dir=titanic_data.parent)
    return _run_pipeline(SPEC, cfg)


@pytest.fixture()
def run_fn_code():
    """Python source that calls the real Trainer run_fn on a pipeline's Transform outputs, in a fresh process
    (so devices or TF_CONFIG can be set first): `preamble` runs before anything else."""
    import json
    import textwrap

    def code(transform_outputs, settings, serving_dir, run_dir, preamble=""):
        return textwrap.dedent(preamble) + textwrap.dedent(f"""
            from tfx.components.trainer import fn_args_utils
            from tfx.types import standard_artifacts
            from components import trainer
            examples = standard_artifacts.Examples()
            examples.uri = {transform_outputs["transformed_examples"][0].uri!r}
            examples.split_names = '["train", "eval"]'
            graph = standard_artifacts.TransformGraph()
            graph.uri = {transform_outputs["transform_graph"][0].uri!r}
            fn_args = fn_args_utils.get_common_fn_args(
                {{"examples": [examples], "transform_graph": [graph]}},
                {{"train_args": '{{"splits": ["train"]}}', "eval_args": '{{"splits": ["eval"]}}',
                 "custom_config": {json.dumps(json.dumps(settings))}}})
            fn_args.serving_model_dir = {str(serving_dir)!r}
            fn_args.model_run_dir = {str(run_dir)!r}
            trainer.run_fn(fn_args)
        """)
    return code
