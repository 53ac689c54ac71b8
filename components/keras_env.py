"""TensorFlow's environment: the check that tf.keras is tf-keras (Keras 2), which TFX 1.16 and TFMA 0.47 need end to
end, and a quiet start for long-running commands."""
import contextlib
import os
import sys
import tempfile


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


# What TensorFlow 2.16's C++ side writes to stderr on every start of a CPU-only process, and is not a problem:
# XLA registers its CUDA plugins a second time (tensorflow/tensorflow#62075: "Unable to register cuDNN factory"),
# there is no GPU or TensorRT, and the CPU could use more instructions.
STARTUP_NOISE = ("Unable to register cuFFT factory", "Unable to register cuDNN factory",
                 "Unable to register cuBLAS factory", "TF-TRT Warning: Could not find TensorRT",
                 "Could not find cuda drivers", "cpu_feature_guard.cc", "To enable the following instructions",
                 "rebuild TensorFlow with the appropriate compiler flags")


@contextlib.contextmanager
def quiet_native_startup():
    """Holds back the native stderr lines of TensorFlow's startup (imports inside the block) that are only
    noise (STARTUP_NOISE); every other line is written out after the block. VERBOSE=1 shows everything."""
    if os.environ.get("VERBOSE", "") not in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(noise in line for noise in STARTUP_NOISE)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
