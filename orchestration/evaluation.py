"""The Evaluator's TFMA config per problem: which metrics are reported, overall and per slice, and which are
judged, with absolute bounds and change thresholds against the baseline (the latest blessed, served model)."""

from __future__ import annotations

from typing import List, Optional

import tensorflow_model_analysis as tfma

from core import layout
from orchestration.config import PipelineConfig
from orchestration.spec import DatasetSpec

KS_MODULE = "modeling.ks_metric"
MSPE_MODULE = "modeling.regression_metrics"
R2_MODULE = "modeling.regression_metrics"


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
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": _no_worse(change_from_baseline)}
            )
        )
    return _overall_only(threshold)


def _binary_metrics(bound) -> List[tfma.MetricConfig]:
    return [
        tfma.MetricConfig(class_name="BinaryAccuracy"),
        tfma.MetricConfig(class_name="ConfusionMatrixPlot"),  # the report's ROC and KS curves
        tfma.MetricConfig(class_name="AUC", per_slice_thresholds=_at_least(bound("min_auc"), bound("max_auc_drop"))),
        tfma.MetricConfig(
            class_name="KolmogorovSmirnov", module=KS_MODULE, per_slice_thresholds=_at_least(bound("min_ks"))
        ),
    ]


def _multiclass_specs(bound, classes: int) -> List[tfma.MetricsSpec]:
    """Labels are class indices, predictions one probability per class. TFMA applies a metric's thresholds to every
    key the spec makes of it, so the per-class AUCs (binarized, reported) and the macro AUC (aggregated over equal
    class weights, judged) are two specs."""
    ids = list(range(classes))
    return [
        tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(
                    class_name="SparseCategoricalAccuracy", per_slice_thresholds=_at_least(bound("min_accuracy"))
                ),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]
        ),
        tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="AUC")], binarize=tfma.BinarizationOptions(class_ids={"values": ids})
        ),
        tfma.MetricsSpec(
            metrics=[
                tfma.MetricConfig(
                    class_name="AUC", per_slice_thresholds=_at_least(bound("min_macro_auc"), bound("max_auc_drop"))
                )
            ],
            aggregate=tfma.AggregationOptions(macro_average=True, class_weights={i: 1.0 for i in ids}),
        ),
    ]


def _mse_metrics(bound) -> List[tfma.MetricConfig]:
    """Lower is better: MSE may rise at most max_mse_rise (a fraction) above the baseline's, and stay under max_mse
    when one is set; R² at least min_r2 when one is set."""
    mse = tfma.MetricThreshold(
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.LOWER_IS_BETTER, relative={"value": max(bound("max_mse_rise"), 1e-10)}
        )
    )
    if bound("max_mse") is not None:
        mse.value_threshold.CopyFrom(tfma.GenericValueThreshold(upper_bound={"value": bound("max_mse")}))
    r2 = tfma.MetricConfig(class_name="R2Score", module=R2_MODULE)
    if bound("min_r2") is not None:
        r2.per_slice_thresholds.extend(_at_least(bound("min_r2")))
    return [
        tfma.MetricConfig(class_name="MeanAbsoluteError"),
        tfma.MetricConfig(class_name="MeanSquaredError", per_slice_thresholds=_overall_only(mse)),
        r2,
    ]


def _mspe_metrics(bound) -> List[tfma.MetricConfig]:
    """Lower is better: MSPE (covid's training loss) has an upper bound and may rise at most max_mspe_rise."""
    return [
        tfma.MetricConfig(class_name="MeanAbsoluteError"),
        tfma.MetricConfig(class_name="MeanSquaredError"),
        tfma.MetricConfig(
            class_name="MeanSquaredPercentageError",
            module=MSPE_MODULE,
            per_slice_thresholds=_overall_only(
                tfma.MetricThreshold(
                    value_threshold=tfma.GenericValueThreshold(upper_bound={"value": bound("max_mspe")}),
                    change_threshold=tfma.GenericChangeThreshold(
                        direction=tfma.MetricDirection.LOWER_IS_BETTER,
                        absolute={"value": max(bound("max_mspe_rise"), 1e-10)},
                    ),
                )
            ),
        ),
    ]
