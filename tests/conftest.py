"""Tiers, shared runs and the fixtures every test file may use.

Tiers (pytest.ini registers the markers; the Makefile's targets select them; README "Tests"):
    make test-fast   -m "not pipeline and not slow"   unit tests and fast model tests: no pipeline run
    make test        -m "not slow"                    every guarantee end to end (what CI runs)
    make test-full   everything                       + slow variants: packaging, Beam portable, multi-worker, ...
A test is `pipeline` when it needs a pipeline run: marked by hand, or found by the fixtures it asks for
(PIPELINE_FIXTURES); the fast tier refuses to start a run at all (a test that does is a mislabelled test).
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

# Before anything imports TensorFlow: TFX 1.16 needs tf.keras to be tf-keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import pytest  # noqa: E402

import shared_runs  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Fixtures that start or wait for a pipeline run: a test that asks for one is a `pipeline` test.
SHARED_RUN_FIXTURES = {"titanic_run": "titanic", "covid_run": "covid", "cifar2_run": "cifar2", "imdb_run": "imdb"}
PIPELINE_FIXTURES = set(SHARED_RUN_FIXTURES) | {"run_pipeline"}


def pytest_collection_modifyitems(config, items):
    """Marks pipeline tests, then orders the session so the tests that need no run go first while the shared runs
    start in the background, and each file's tests stay together (their module fixtures are set up once)."""
    for item in items:
        if PIPELINE_FIXTURES & set(item.fixturenames) and not item.get_closest_marker("pipeline"):
            item.add_marker(pytest.mark.pipeline)
    rank = {}
    for item in items:
        needs = [
            shared_runs.ORDER.index(SHARED_RUN_FIXTURES[f]) + 1 for f in item.fixturenames if f in SHARED_RUN_FIXTURES
        ]
        own = max(needs) if needs else (len(shared_runs.ORDER) + 1 if item.get_closest_marker("pipeline") else 0)
        own += 10 if item.get_closest_marker("slow") else 0
        rank[item.module.__name__] = max(rank.get(item.module.__name__, 0), own)
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank[item.module.__name__], position[id(item)]))


def _wanted_runs(session) -> list:
    names = {SHARED_RUN_FIXTURES[f] for item in session.items for f in item.fixturenames if f in SHARED_RUN_FIXTURES}
    return [n for n in shared_runs.ORDER if n in names]


_SESSION_RUNS = []


@pytest.fixture(scope="session")
def _shared(request, tmp_path_factory):
    data_root = tmp_path_factory.mktemp("data")
    prepared, lock = {}, threading.Lock()

    def data(name):
        def make():
            with lock:  # the scheduler thread and a test may both ask
                if name not in prepared:
                    prepared[name] = DATA[name](data_root)
                return prepared[name]

        return make

    runs = shared_runs.SharedRuns(tmp_path_factory.mktemp("shared_runs"), {n: data(n) for n in shared_runs.ORDER})
    runs.start(_wanted_runs(request.session))
    _SESSION_RUNS.append(runs)
    yield runs
    runs.stop()


def pytest_terminal_summary(terminalreporter):
    for runs in _SESSION_RUNS:
        for line in runs.summary():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def _start_shared_runs(request):
    """Starts the runs the selected tests need as the session begins (not when the first of them asks)."""
    if _wanted_runs(request.session):
        request.getfixturevalue("_shared")


def _shared_run(request, name):
    if os.environ.get("TEST_TIER") == "fast":
        pytest.fail(
            f"{request.node.nodeid} needs the {name} pipeline run: mark it `pipeline` (the fast tier runs no pipeline)"
        )
    return request.getfixturevalue("_shared").get(name)


@pytest.fixture(scope="session")
def titanic_run(request):
    """The Titanic pipeline run as `make run` runs it (CLI runner, fresh process), on the real files: a
    PipelineConfig pointing at it. Read it; rerun only on a `fork` of it."""
    return _shared_run(request, "titanic")


@pytest.fixture(scope="session")
def covid_run(request):
    return _shared_run(request, "covid")


@pytest.fixture(scope="session")
def cifar2_run(request):
    return _shared_run(request, "cifar2")


@pytest.fixture(scope="session")
def imdb_run(request):
    return _shared_run(request, "imdb")


@pytest.fixture()
def fork(tmp_path):
    """fork(cfg) -> a private copy of a shared run to rerun on (tests/shared_runs.py)."""
    return lambda cfg: shared_runs.fork(cfg, tmp_path / "fork")


# ---------------------------------------------------------------------------------------------------- data
CIFAR2_PER_CLASS = 30
IMDB_LINES = {"train.csv": 400, "test.csv": 100}


def _quiet(message):
    return None


def _fetch_titanic(root: Path) -> Path:
    from data.fetch import fetch

    return fetch("titanic", root / "full", log=_quiet)


def _fetch_covid(root: Path) -> Path:
    from data.fetch import fetch

    return fetch("covid", root / "full", log=_quiet)


def _fetch_cifar2_subset(root: Path) -> Path:
    """30 real images per class and split, laid out as the dataset is: only those are fetched (and verified)."""
    from data import datasets
    from data.fetch import fetch

    full = datasets.get("cifar2")
    chosen = {}
    for rel in sorted(full.files()):
        folder = rel.rsplit("/", 1)[0]
        chosen.setdefault(folder, [])
        if len(chosen[folder]) < CIFAR2_PER_CLASS:
            chosen[folder].append(rel)
    entries = full.files()
    manifest = root / "cifar2-subset.tsv"
    manifest.write_text(
        "".join(f"{rel}\t{entries[rel].size}\t{entries[rel].sha256}\n" for rels in chosen.values() for rel in rels)
    )
    subset = datasets.Dataset("cifar2", full.base_url, manifest_path=manifest)
    return fetch("cifar2", root / "cifar2_subset", dataset=subset, log=_quiet)


def _fetch_imdb_subset(root: Path) -> Path:
    """The first 400 training and 100 test reviews."""
    from data.fetch import fetch

    full = fetch("imdb", root / "full", log=_quiet)
    subset = root / "imdb_subset" / "imdb"
    subset.mkdir(parents=True)
    for name, lines in IMDB_LINES.items():
        with open(full / name, encoding="utf-8") as src:
            (subset / name).write_text("".join(next(src) for _ in range(lines)), encoding="utf-8")
    return subset


DATA = {"titanic": _fetch_titanic, "covid": _fetch_covid, "cifar2": _fetch_cifar2_subset, "imdb": _fetch_imdb_subset}


@pytest.fixture(scope="session")
def _data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("test_data")


@pytest.fixture(scope="session")
def titanic_data(request, _data_root):
    """The real Titanic files (891 rows: small enough for tests), fetched and verified like `make run` does."""
    if _wanted_runs(request.session):
        return request.getfixturevalue("_shared").data["titanic"]()
    return _fetch_titanic(_data_root)


@pytest.fixture(scope="session")
def cifar2_subset(request, _data_root):
    if _wanted_runs(request.session):
        return request.getfixturevalue("_shared").data["cifar2"]()
    return _fetch_cifar2_subset(_data_root)


@pytest.fixture(scope="session")
def imdb_subset(request, _data_root):
    if _wanted_runs(request.session):
        return request.getfixturevalue("_shared").data["imdb"]()
    return _fetch_imdb_subset(_data_root)


# ---------------------------------------------------------------------------------------------------- helpers
def _run_python(code: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture()
def run_python():
    """Runs code in a fresh interpreter (a plain TF process, or one whose devices must be set before TF starts)."""
    return _run_python


def _run_pipeline(spec, cfg, **kwargs):
    """One LocalDagRunner run of the factory's pipeline (kwargs: create_pipeline's, e.g. data_root); returns cfg."""
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from orchestration.factory import create_pipeline

    LocalDagRunner().run(create_pipeline(spec, cfg, **kwargs))
    return cfg


def _node_states(spec, cfg):
    """{node id: [state of each execution, oldest first]} for every node of the spec's pipeline, from ML Metadata."""
    from metadata import results
    from orchestration.factory import create_pipeline

    store = results.open_store(cfg.metadata_path(spec.name))
    return {
        c.id: [results.execution_state(e) for e in results.node_executions(store, spec.name, c.id)]
        for c in create_pipeline(spec, cfg).components
    }


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
            from modeling import trainer
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
