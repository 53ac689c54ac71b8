"""TFX components and their executors: the pipeline's custom steps (docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
