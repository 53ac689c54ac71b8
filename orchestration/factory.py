"""The one pipeline factory: every dataset, every runner (local, TFX CLI, Kubeflow).

ExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen for a curated schema) -> ExampleValidator ->
AnomaliesGate -> Transform -> Trainer -> ServedBaseline (the latest blessed, pushed model) -> Evaluator -> Pusher
(atomic). Every node compiles to a container step, so the same graph runs locally, on open-source Kubeflow
Pipelines and on Vertex AI Pipelines.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import List, Optional

# TFX's modules, not `tfx.v1`: importing tfx.v1 also imports its Google Cloud extensions (Vertex AI's SDK),
# seconds of every process start (python -X importtime shows them) for nothing a local or Kubeflow run uses.
from tfx.components import ExampleValidator, SchemaGen, StatisticsGen, Trainer
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import trainer_pb2

from components.anomalies_gate import AnomaliesGate
from components.atomic_pusher import AtomicPusher
from components.baseline_evaluator import Evaluator
from components.drift_check import DriftCheck, previous_span_resolver
from components.fixed_batch_transform import Transform
from components.served_baseline import ServedBaseline
from core import promotion
from modeling.training import check_keys as check_trainer_keys
from orchestration.config import PROJECT_ROOT, PipelineConfig
from orchestration.evaluation import eval_config
from orchestration.spec import DatasetSpec

RUN_FN = "modeling.trainer.run_fn"
_CODE_DIRS = tuple(PROJECT_ROOT / room for room in ("core", "modeling", "components"))  # what the steps run


SPAN_PREFIX = "span-{SPAN}/"
# what the served model's signatures call their output, per problem (modeling/export.py)
OUTPUT_NAMES = {"binary": "probability", "multiclass": "probabilities", "regression": "prediction"}


def has_spans(data_root) -> bool:
    """A local data folder laid out as span-1/, span-2/, ...: TFX's ExampleGen then ingests the newest span."""
    if not isinstance(data_root, str) or "://" in data_root:
        return False
    root = Path(data_root)
    return root.is_dir() and any(
        p.is_dir() and p.name.startswith("span-") and p.name[5:].isdigit() for p in root.iterdir()
    )


def code_fingerprint(spec: DatasetSpec) -> str:
    """A hash of the code Transform and Trainer run: the kernel, the model library, the components and the
    dataset's own package.

    Functions referenced by dotted path are invisible to TFX's cache (only a module_file's folder is hashed), so
    without this an edited feature or model would silently reuse the old Transform/Trainer outputs."""
    package = Path(importlib.util.find_spec(spec.preprocessing_fn.rsplit(".", 1)[0]).origin).parent
    digest = hashlib.sha256()
    for root in (*_CODE_DIRS, package):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".pbtxt") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def trainer_settings(spec: DatasetSpec, config: PipelineConfig) -> dict:
    """The Trainer's custom_config: modeling.training.TrainerSettings fields as JSON-friendly values, from
    the spec, the run settings (epochs, batch size, strategy, seed override the spec's) and trainer_options.
    ValueError names a trainer_options key TrainerSettings does not know."""
    check_trainer_keys(spec.trainer_options, f"{spec.name} spec's trainer_options")  # when the pipeline is built
    return {
        "model_builder": spec.model_builder,
        "label_key": spec.label_key,
        "raw_feature_keys": list(spec.raw_feature_keys),
        "output_name": OUTPUT_NAMES[spec.problem],
        "label_classes": list(spec.label_classes),
        "epochs": config.epochs or spec.epochs,
        "batch_size": config.batch_size or spec.batch_size,
        "strategy": config.strategy,
        "seed": spec.seed if config.seed is None else config.seed,
        "code_fingerprint": code_fingerprint(spec),
        "warm_start": config.warm_start,
        **spec.trainer_options,
    }


def _served_now(serving_root) -> str:
    """The newest served version, for a local serving root known when the pipeline is built (see
    components/served_baseline.py: it keys the cache); "" for a remote root or a runtime parameter, read only when
    the step runs."""
    if not isinstance(serving_root, str) or "://" in serving_root:
        return ""
    version = promotion.stable_version(str(serving_root))
    return "" if version is None else str(version)


def create_components(
    spec: DatasetSpec,
    config: PipelineConfig,
    data_root=None,
    serving_root: Optional[str] = None,
    project_root: Optional[str] = None,
) -> List:
    """`data_root`: a path, URI or RuntimeParameter (default: the fetched dataset); `serving_root`: where the
    Pusher writes (default: config); `project_root`: where this checkout's files are when the pipeline runs
    elsewhere (a container image), for files the components read, like a curated schema."""
    data_root = _data_root(spec, config, data_root)
    serving_root = serving_root or str(config.serving_root(spec.name))
    served_now = _served_now(serving_root)

    example_gen = spec.make_example_gen(data_root, SPAN_PREFIX if has_spans(data_root) else "")
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = _schema_gen(spec, statistics_gen, project_root)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    drift_nodes, drift_inputs = drift_check_nodes(spec, config, data_root, statistics_gen, schema_gen)
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"], **drift_inputs)
    transform = _transform(spec, example_gen, schema_gen, after=anomalies_gate)
    # The baseline is read as late as possible, after training: it is what is served when the model is judged.
    # A warm start needs its weights first, so there it runs before the Trainer.
    if config.warm_start:
        baseline = ServedBaseline(serving_root=serving_root, expected_version=served_now)
        trainer = _trainer(spec, config, transform, schema_gen, base_model=baseline.outputs["model"])
    else:
        trainer = _trainer(spec, config, transform, schema_gen)
        baseline = ServedBaseline(
            serving_root=serving_root, expected_version=served_now, candidate=trainer.outputs["model"]
        )
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config(spec, config),
    )
    pusher = AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        serving_root=serving_root,
        push_label=config.push_label,
        examples=example_gen.outputs["examples"],  # the warm-up requests the pushed version carries
    ).with_id("Pusher")
    return [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        *drift_nodes,
        anomalies_gate,
        transform,
        trainer,
        baseline,
        evaluator,
        pusher,
    ]


def _data_root(spec: DatasetSpec, config: PipelineConfig, data_root):
    """DATA_ROOT, else the spec's own folder (a scaffolded pipeline), else the fetched dataset."""
    if data_root is None:
        return str(config.data_root or spec.data_root or config.dataset_dir(spec.dataset))
    return str(data_root) if isinstance(data_root, Path) else data_root


def _schema_gen(spec: DatasetSpec, statistics_gen, project_root: Optional[str]):
    """A curated schema (spec.schema_file, found under project_root in a container) or one inferred."""
    if not spec.schema_file:
        return SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    schema_file = str(spec.schema_file)
    if project_root and Path(spec.schema_file).resolve().is_relative_to(PROJECT_ROOT):
        schema_file = f"{project_root.rstrip('/')}/{Path(spec.schema_file).relative_to(PROJECT_ROOT).as_posix()}"
    return ImportSchemaGen(schema_file=schema_file)


def _transform(spec: DatasetSpec, example_gen, schema_gen, after) -> Transform:
    """Transform runs only once `after` (the AnomaliesGate) has passed the data."""
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=spec.preprocessing_fn,
        custom_config={"code_fingerprint": code_fingerprint(spec)},
        # TFX writes an analyzer cache for a later Transform to read through its `analyzer_cache` input; nothing
        # here reads it (every run analyzes its own span), and on an object store its small Beam writes are slow
        disable_analyzer_cache=True,
        # TFDV's pre- and post-transform statistics: nothing here reads them (StatisticsGen has the raw data's,
        # ExampleValidator checks them), they take a third of Transform's time, and on Flink their one
        # accumulator for a 1,000,000-row, 30-column table outgrew the in-memory sort buffer of the combine
        # Flink chains before its shuffle ("Cannot write record to fresh sort buffer. Record too large.",
        # SynchronousChainedCombineDriver, which has no large-record spilling)
        disable_statistics=True,
    )
    transform.add_upstream_node(after)
    return transform


def _trainer(spec: DatasetSpec, config: PipelineConfig, transform, schema_gen, base_model=None) -> Trainer:
    return Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"]),
        custom_config=trainer_settings(spec, config),
        base_model=base_model,
    )


def drift_action(spec: DatasetSpec, config: PipelineConfig) -> str:
    return config.drift or spec.drift_action


def drift_check_nodes(spec: DatasetSpec, config: PipelineConfig, data_root, statistics_gen, schema_gen):
    """([PreviousSpanStatistics resolver, DriftCheck], AnomaliesGate's drift inputs) when the data folder holds
    spans and the dataset declares drift thresholds; ([], {}) otherwise (components/drift_check.py says why)."""
    action = drift_action(spec, config)
    if not spec.drift_thresholds or action == "off" or not has_spans(data_root):
        return [], {}
    previous = previous_span_resolver(statistics_gen.outputs["statistics"])
    check = DriftCheck(
        statistics=previous.outputs["current"],
        examples=statistics_gen.inputs["examples"],
        previous_statistics=previous.outputs["history"],
        previous_examples=previous.outputs["history_examples"],
        schema=schema_gen.outputs["schema"],
        thresholds=json.dumps(dict(spec.drift_thresholds), sort_keys=True),
        split=spec.drift_split,
    )
    return [previous, check], {"drift": check.outputs["drift"], "drift_action": action}


def flink_job_name(pipeline: str, component_id: str) -> str:
    return f"{pipeline}-{component_id}".lower()


JOB_SERVER_RUNNERS = ("portablerunner", "flinkrunner", "sparkrunner")


def names_its_jobs(config: PipelineConfig) -> bool:
    """Whether each Beam stage gets `--job_name=<pipeline>-<component>`: on BEAM=flink and on a job server runner
    of the user's (a Flink or Spark cluster lists jobs by name), unless BEAM_ARGS name the job themselves."""
    args = config.beam_pipeline_args()
    if any(a == "--job_name" or a.startswith("--job_name=") for a in args):
        return False
    if config.beam == "flink" and not config.user_runner:
        return True
    runners = [a.split("=", 1)[1] for a in args if a.startswith("--runner=")]
    return bool(runners) and runners[-1].lower().removesuffix("runner") + "runner" in JOB_SERVER_RUNNERS


def create_pipeline(
    spec: DatasetSpec,
    config: PipelineConfig,
    *,
    data_root=None,
    with_local_metadata: bool = True,
    pipeline_root: Optional[str] = None,
    serving_root: Optional[str] = None,
    project_root: Optional[str] = None,
    pipeline_name: Optional[str] = None,
) -> Pipeline:
    """`with_local_metadata=False` leaves ML Metadata to the orchestrator (Kubeflow brings its own); the roots
    may be object-store URIs there (see create_components for the rest). `pipeline_name`: the orchestrator's
    name for it when its rules differ from a Python package's (Kubeflow: no underscores)."""
    components = create_components(spec, config, data_root, serving_root, project_root)
    name = pipeline_name or spec.name
    if names_its_jobs(config):
        for component in components:  # Flink lists each stage's job under its component's name
            if isinstance(component, BaseBeamComponent):
                component.with_beam_pipeline_args([f"--job_name={flink_job_name(name, component.id)}"])
    metadata = None
    if with_local_metadata:
        Path(config.metadata_path(spec.name)).parent.mkdir(parents=True, exist_ok=True)
        metadata = tfx_metadata.sqlite_metadata_connection_config(str(config.metadata_path(spec.name)))
    return Pipeline(
        pipeline_name=name,
        pipeline_root=pipeline_root or str(config.pipeline_root(spec.name)),
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=config.beam_pipeline_args(),
    )
