"""Where a pipeline runs: make run (the TFX CLI), the local DAG runner, Beam/Flink, Kubeflow packages
(docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
