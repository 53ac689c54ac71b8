"""The model library: feature columns, the training loop and run_fn, export and signatures, metrics (docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
