"""TensorFlow's Keras: the check that tf.keras is tf-keras (Keras 2), which TFX 1.16 and TFMA 0.47 need end to end,
and AutoGraph's rule for it."""
import os


class KerasVersionError(RuntimeError):
    pass


def require_legacy_keras() -> None:
    import tensorflow as tf

    name = getattr(tf.keras, "__name__", "")
    if not name.startswith("tf_keras"):
        raise KerasVersionError(
            "tf.keras is Keras 3 here (TF_USE_LEGACY_KERAS="
            f"{os.environ.get('TF_USE_LEGACY_KERAS')!r} when TensorFlow was first imported), but TFX 1.16 needs "
            "tf-keras: export TF_USE_LEGACY_KERAS=1, or import `pipelines`/`components` before tensorflow"
        )


def keep_autograph_out_of_tf_keras() -> None:
    """AutoGraph leaves Keras' own code alone: its rules say DoNotConvert('keras') (tensorflow/python/autograph/
    core/config.py), written when Keras 2 lived in the `keras` package. The same code now lives in `tf_keras`,
    which the rules do not name, so AutoGraph rewrote all of it (train step, optimizer, metrics, layers) the first
    time a model was fitted or exported: 45 of the Titanic Trainer's 60 s. The rule Keras had, for its new name."""
    from tensorflow.python.autograph.core import config

    if not any(getattr(rule, "_prefix", None) == "tf_keras" for rule in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(config.CONVERSION_RULES)
