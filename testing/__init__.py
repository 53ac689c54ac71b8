"""Test doubles run from the checkout, never installed: open-source KFP's backend, a local S3 (docs/layout.md)."""

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)
