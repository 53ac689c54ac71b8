"""The check that tf.keras is tf-keras (Keras 2), which TFX 1.16 and TFMA 0.47 need end to end (AutoGraph's rule
for tf_keras is a seam: components/seams.py; the variable that selects it: components/layout.py)."""
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
