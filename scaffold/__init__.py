"""Your own table as a pipeline package: make new-pipeline (docs/own-data.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
