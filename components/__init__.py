"""Parts every pipeline shares: feature columns, trainer plumbing, strategies, the KS metric, custom components."""
import os

# TFX 1.16 / TFMA 0.47 need tf.keras to be tf-keras (Keras 2); TensorFlow reads this at its first import.
# components.keras_env.require_legacy_keras() fails loudly where TensorFlow got imported before this ran.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
