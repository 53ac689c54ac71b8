"""Kolmogorov-Smirnov statistic as a TFMA metric: max over thresholds of TPR - FPR.

It rides on the same binary confusion matrices TFMA's AUC computes, so it costs one extra reduction, and it is
referenced from an EvalConfig as `tfma.MetricConfig(class_name="KolmogorovSmirnov", module=__name__)`. The
module must be importable wherever TFMA runs (Beam workers, the container image), hence a package module and
not a module_file.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from tensorflow_model_analysis.metrics import binary_confusion_matrices, confusion_matrix_metrics, metric_types

KS_NAME = "ks"
DEFAULT_NUM_THRESHOLDS = 10000  # what TFMA's AUC uses, so both read one set of matrices


class KolmogorovSmirnov(confusion_matrix_metrics.ConfusionMatrixMetricBase):
    def __init__(self, num_thresholds: Optional[int] = None, name: Optional[str] = None, **kwargs):
        super().__init__(num_thresholds=num_thresholds or DEFAULT_NUM_THRESHOLDS, name=name, **kwargs)

    def _default_name(self) -> str:
        return KS_NAME

    def _metric_value(self, key: metric_types.MetricKey, matrices: binary_confusion_matrices.Matrices) -> float:
        del key
        tp, fn = np.asarray(matrices.tp, dtype=np.float64), np.asarray(matrices.fn, dtype=np.float64)
        fp, tn = np.asarray(matrices.fp, dtype=np.float64), np.asarray(matrices.tn, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            fpr = np.where(fp + tn > 0, fp / (fp + tn), 0.0)
        return float(np.max(tpr - fpr)) if tpr.size else float("nan")


metric_types.register_metric(KolmogorovSmirnov)
