"""Readers of ML Metadata and of a run's artifacts: results, lineage, reports, skew; nothing here builds or runs
a pipeline."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
