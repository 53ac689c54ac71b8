"""The one pipeline factory: every dataset, every runner (local, TFX CLI, Kubeflow).

ExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen for a curated schema) -> ExampleValidator ->
AnomaliesGate -> Transform -> Trainer -> ServedBaseline (the latest blessed, pushed model) -> Evaluator -> Pusher
(atomic). Every node compiles to a container step, so the same graph runs locally, on open-source Kubeflow
Pipelines and on Vertex AI Pipelines.
"""
from __future__ import annotations

import hashlib
import json
import importlib.util
from pathlib import Path
from typing import List, Optional

import tensorflow_model_analysis as tfma
# TFX's modules, not `tfx.v1`: importing tfx.v1 also imports its Google Cloud extensions (Vertex AI's SDK),
# about 7 s of every process start (python -X importtime) for nothing a local or Kubeflow run uses.
from tfx.components import ExampleValidator, SchemaGen, StatisticsGen, Trainer
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
from tfx.orchestration import metadata as tfx_metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import trainer_pb2

from components.anomalies_gate import AnomaliesGate
from components.drift_check import DriftCheck, previous_span_resolver
from components.atomic_pusher import AtomicPusher
from components.baseline_evaluator import Evaluator
from components.fixed_batch_transform import Transform
from components import layout
from components.served_baseline import ServedBaseline
from serving import promotion
from components.training import check_keys as check_trainer_keys
from pipelines.config import PROJECT_ROOT, PipelineConfig
from pipelines.spec import DatasetSpec

RUN_FN = "components.trainer.run_fn"
KS_MODULE = "components.ks_metric"
MSPE_MODULE = "components.regression_metrics"
R2_MODULE = "components.regression_metrics"
_COMPONENTS_DIR = Path(__file__).resolve().parent.parent / "components"


SPAN_PREFIX = "span-{SPAN}/"
# what the served model's signatures call their output, per problem (components/export.py)
OUTPUT_NAMES = {"binary": "probability", "multiclass": "probabilities", "regression": "prediction"}


def has_spans(data_root) -> bool:
    """A local data folder laid out as span-1/, span-2/, ...: TFX's ExampleGen then ingests the newest span."""
    if not isinstance(data_root, str) or "://" in data_root:
        return False
    root = Path(data_root)
    return root.is_dir() and any(p.is_dir() and p.name.startswith("span-") and p.name[5:].isdigit()
                                 for p in root.iterdir())


def code_fingerprint(spec: DatasetSpec) -> str:
    """A hash of the code Transform and Trainer run: the shared components and the dataset's own package.

    Functions referenced by dotted path are invisible to TFX's cache (only a module_file's folder is hashed), so
    without this an edited feature or model would silently reuse the old Transform/Trainer outputs."""
    package = Path(importlib.util.find_spec(spec.preprocessing_fn.rsplit(".", 1)[0]).origin).parent
    digest = hashlib.sha256()
    for root in (_COMPONENTS_DIR, package):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".pbtxt") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root.parent).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _overall_only(threshold: tfma.MetricThreshold) -> list:
    """Bounds judge the whole eval set; slices (a few dozen rows each) are reported, not gated."""
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def eval_config(spec: DatasetSpec, config: PipelineConfig) -> tfma.EvalConfig:
    """The Evaluator's TFMA config: the model read through its tf.Example signature, metrics per problem overall and
    per `spec.slice_features`, with absolute bounds and change thresholds against the baseline (config.bound: the
    environment's, else the spec's own, else the defaults):
    binary      AUC (bound, change), KS (bound), accuracy, confusion matrices (the report's ROC and KS curves)
    multiclass  accuracy (bound), macro one-vs-rest AUC (bound, change), AUC per class, the confusion matrix
    regression  mse: MSE (bound, relative change), MAE, R² (bound); mspe (covid): MSPE (bound, change), MSE, MAE
    """
    bound = lambda name: config.bound(name, spec.bounds)  # noqa: E731
    if spec.problem == "binary":
        specs = [tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"), *_binary_metrics(bound)])]
    elif spec.problem == "multiclass":
        specs = _multiclass_specs(bound, len(spec.label_classes))
    else:
        metrics = _mspe_metrics(bound) if spec.regression_metric == "mspe" else _mse_metrics(bound)
        specs = [tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="ExampleCount"), *metrics])]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=layout.EXAMPLES_SIGNATURE, label_key=spec.label_key)],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in spec.slice_features],
        metrics_specs=specs,
    )


def _no_worse(allowed: float) -> float:
    # TFMA compares with the baseline as candidate - baseline >= absolute; a tiny negative value lets an
    # identical retrain (same data, seed and code) through when no drop at all is allowed.
    return -max(allowed, 1e-10)


def _at_least(value: float, change_from_baseline: Optional[float] = None) -> List[tfma.PerSliceMetricThreshold]:
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))
    if change_from_baseline is not None:
        threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": _no_worse(change_from_baseline)}))
    return _overall_only(threshold)


def _binary_metrics(bound) -> List[tfma.MetricConfig]:
    return [
        tfma.MetricConfig(class_name="BinaryAccuracy"),
        tfma.MetricConfig(class_name="ConfusionMatrixPlot"),  # the report's ROC and KS curves
        tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_at_least(bound("min_auc"), bound("max_auc_drop"))),
        tfma.MetricConfig(class_name="KolmogorovSmirnov", module=KS_MODULE,
                          per_slice_thresholds=_at_least(bound("min_ks"))),
    ]


def _multiclass_specs(bound, classes: int) -> List[tfma.MetricsSpec]:
    """Labels are class indices, predictions one probability per class. TFMA applies a metric's thresholds to every
    key the spec makes of it, so the per-class AUCs (binarized, reported) and the macro AUC (aggregated over equal
    class weights, judged) are two specs."""
    ids = list(range(classes))
    return [
        tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              per_slice_thresholds=_at_least(bound("min_accuracy"))),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ]),
        tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="AUC")],
                         binarize=tfma.BinarizationOptions(class_ids={"values": ids})),
        tfma.MetricsSpec(metrics=[tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_at_least(
            bound("min_macro_auc"), bound("max_auc_drop")))],
            aggregate=tfma.AggregationOptions(macro_average=True, class_weights={i: 1.0 for i in ids})),
    ]


def _mse_metrics(bound) -> List[tfma.MetricConfig]:
    """Lower is better: MSE may rise at most max_mse_rise (a fraction) above the baseline's, and stay under max_mse
    when one is set; R² at least min_r2 when one is set."""
    mse = tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.LOWER_IS_BETTER, relative={"value": max(bound("max_mse_rise"), 1e-10)}))
    if bound("max_mse") is not None:
        mse.value_threshold.CopyFrom(tfma.GenericValueThreshold(upper_bound={"value": bound("max_mse")}))
    r2 = tfma.MetricConfig(class_name="R2Score", module=R2_MODULE)
    if bound("min_r2") is not None:
        r2.per_slice_thresholds.extend(_at_least(bound("min_r2")))
    return [tfma.MetricConfig(class_name="MeanAbsoluteError"),
            tfma.MetricConfig(class_name="MeanSquaredError", per_slice_thresholds=_overall_only(mse)), r2]


def _mspe_metrics(bound) -> List[tfma.MetricConfig]:
    """Lower is better: MSPE (covid's training loss) has an upper bound and may rise at most max_mspe_rise."""
    return [
        tfma.MetricConfig(class_name="MeanAbsoluteError"),
        tfma.MetricConfig(class_name="MeanSquaredError"),
        tfma.MetricConfig(
            class_name="MeanSquaredPercentageError",
            module=MSPE_MODULE,
            per_slice_thresholds=_overall_only(tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(upper_bound={"value": bound("max_mspe")}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.LOWER_IS_BETTER,
                    absolute={"value": max(bound("max_mspe_rise"), 1e-10)}),
            )),
        ),
    ]


def trainer_settings(spec: DatasetSpec, config: PipelineConfig) -> dict:
    """The Trainer's custom_config: components.training.TrainerSettings fields as JSON-friendly values, from
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


def create_components(spec: DatasetSpec, config: PipelineConfig, data_root=None, serving_root: Optional[str] = None,
                      project_root: Optional[str] = None) -> List:
    """`data_root`: a path, URI or RuntimeParameter (default: the fetched dataset); `serving_root`: where the
    Pusher writes (default: config); `project_root`: where this checkout's files are when the pipeline runs
    elsewhere (a container image), for files the components read, like a curated schema."""
    if data_root is None:  # DATA_ROOT, else the spec's own folder (a scaffolded pipeline), else the fetched dataset
        data_root = str(config.data_root or spec.data_root or config.dataset_dir(spec.dataset))
    elif isinstance(data_root, Path):
        data_root = str(data_root)
    example_gen = spec.make_example_gen(data_root, SPAN_PREFIX if has_spans(data_root) else "")
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    if spec.schema_file:
        schema_file = str(spec.schema_file)
        if project_root and Path(spec.schema_file).resolve().is_relative_to(PROJECT_ROOT):
            schema_file = f"{project_root.rstrip('/')}/{Path(spec.schema_file).relative_to(PROJECT_ROOT).as_posix()}"
        schema_gen = ImportSchemaGen(schema_file=schema_file)
    else:
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    drift_nodes, drift_inputs = drift_check_nodes(spec, config, data_root, statistics_gen, schema_gen)
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"], **drift_inputs)
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=spec.preprocessing_fn,
        custom_config={"code_fingerprint": code_fingerprint(spec)},
        # TFX writes an analyzer cache for a later Transform to read through its `analyzer_cache` input; nothing
        # here reads it (every run analyzes its own span), and on an object store its dozen small Beam writes
        # are slow (Titanic's Transform task on the twin's S3: 41 s with them, 28 s without; docs/benchmarks.md)
        disable_analyzer_cache=True,
    )
    transform.add_upstream_node(anomalies_gate)
    serving_root = serving_root or str(config.serving_root(spec.name))

    def trainer(base_model=None):
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

    # The baseline is read as late as possible, after training: it is what is served when the model is judged.
    # A warm start needs its weights first, so there it runs before the Trainer.
    if config.warm_start:
        baseline = ServedBaseline(serving_root=serving_root, expected_version=_served_now(serving_root))
        trainer = trainer(base_model=baseline.outputs["model"])
    else:
        trainer = trainer()
        baseline = ServedBaseline(serving_root=serving_root, expected_version=_served_now(serving_root),
                                  candidate=trainer.outputs["model"])
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config(spec, config),
    )
    pusher = AtomicPusher(model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
                          serving_root=serving_root, push_label=config.push_label).with_id("Pusher")
    return [example_gen, statistics_gen, schema_gen, example_validator, *drift_nodes, anomalies_gate, transform,
            trainer, baseline, evaluator, pusher]


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


def create_pipeline(spec: DatasetSpec, config: PipelineConfig, *, data_root=None, with_local_metadata: bool = True,
                    pipeline_root: Optional[str] = None, serving_root: Optional[str] = None,
                    project_root: Optional[str] = None, pipeline_name: Optional[str] = None) -> Pipeline:
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
