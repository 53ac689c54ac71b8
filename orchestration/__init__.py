"""The one pipeline factory, the dataset spec, run settings and the Evaluator's metrics (docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
