"""TF Serving's REST and gRPC APIs over the pushed SavedModels, its client, and bulk scoring on Spark
(docs/serving.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
