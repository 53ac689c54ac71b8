"""The TFX pipelines: one factory for every dataset and runner, plus each dataset's own spec."""
import os

# TFX 1.16 / TFMA 0.47 need tf.keras to be tf-keras (Keras 2); TensorFlow reads this at its first import.
# components.keras_env.require_legacy_keras() fails loudly where TensorFlow got imported before this ran.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
