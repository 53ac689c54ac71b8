"""Commands on served models and the environment: promote/rollback, deploy, verify-env (docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
