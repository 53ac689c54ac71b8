"""tf.keras must be tf-keras (Keras 2) for TFX 1.16 and TFMA 0.47: TensorFlow reads TF_USE_LEGACY_KERAS at its
first import, so `import core` (every project package's __init__ does it) sets it first, and
require_legacy_keras() fails loudly where TensorFlow was imported before that anyway. AutoGraph's rule for
tf_keras is a seam (core/seams.py)."""

import os

LEGACY_KERAS = {"TF_USE_LEGACY_KERAS": "1"}


class KerasVersionError(RuntimeError):
    pass


def use_legacy_keras(env=None) -> dict:
    """Sets TF_USE_LEGACY_KERAS in `env` (default: this process's environment) unless set; returns `env`."""
    env = os.environ if env is None else env
    for key, value in LEGACY_KERAS.items():
        env.setdefault(key, value)
    return env


def require_legacy_keras() -> None:
    import tensorflow as tf  # only once a model is built: importing this module must not import TensorFlow

    name = getattr(tf.keras, "__name__", "")
    if not name.startswith("tf_keras"):
        raise KerasVersionError(
            "tf.keras is Keras 3 here (TF_USE_LEGACY_KERAS="
            f"{os.environ.get('TF_USE_LEGACY_KERAS')!r} when TensorFlow was first imported), but TFX 1.16 needs "
            "tf-keras: export TF_USE_LEGACY_KERAS=1, or import one of the project's packages before tensorflow"
        )
