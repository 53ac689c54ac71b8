"""KS from TFMA (through a real run_model_analysis on Beam) against sklearn's ROC curve."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from sklearn.metrics import roc_curve
from tensorflow_model_analysis.metrics import binary_confusion_matrices

from modeling import ks_metric


def independent_ks(labels, scores) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr - fpr))


def test_value_from_confusion_matrices():
    matrices = binary_confusion_matrices.Matrices(
        thresholds=[0.25, 0.5, 0.75], tp=[9.0, 7.0, 2.0], tn=[2.0, 8.0, 10.0], fp=[8.0, 2.0, 0.0], fn=[1.0, 3.0, 8.0]
    )
    # TPR - FPR at each threshold: 0.9-0.8, 0.7-0.2, 0.2-0.0
    assert ks_metric.KolmogorovSmirnov()._metric_value(None, matrices) == pytest.approx(0.5)


@pytest.mark.parametrize("separation", [0.0, 0.8, 3.0])
def test_tfma_ks_matches_sklearn(tmp_path, separation):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=3000)
    scores = 1 / (1 + np.exp(-(rng.normal(size=labels.size) + separation * labels)))
    path = str(tmp_path / "examples.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for label, score in zip(labels, scores):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                        "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[float(score)])),
                    }
                )
            )
            writer.write(example.SerializeToString())
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="KolmogorovSmirnov", module="modeling.ks_metric"),
                    tfma.MetricConfig(class_name="AUC"),
                ]
            )
        ],
    )
    result = tfma.run_model_analysis(eval_config=eval_config, data_location=path, output_path=str(tmp_path / "out"))
    ((_, metrics),) = result.slicing_metrics
    ks = metrics[""][""]["ks"]["doubleValue"]
    # TFMA buckets scores into 10000 thresholds; the exact KS may sit between two of them
    assert ks == pytest.approx(independent_ks(labels, scores), abs=2e-3)
    assert metrics[""][""]["auc"]["doubleValue"] > 0.5 or separation == 0.0
