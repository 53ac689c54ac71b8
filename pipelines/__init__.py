"""The TFX pipelines: one factory for every dataset and runner, plus each dataset's own spec."""
import os

# TFX 1.16 / TFMA 0.47 need tf.keras to be tf-keras (Keras 2); TensorFlow reads this at its first import.
# components.keras_env.require_legacy_keras() fails loudly where TensorFlow got imported before this ran.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import warnings  # noqa: E402

# google-cloud libraries that TFX imports warn at every start that they will stop supporting Python 3.10;
# TFX 1.16 supports nothing newer, so the warning is noise for this project.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)

# PIPELINES_PATH: more folders whose packages are pipelines too (`pipelines.<name>`), e.g. your own, kept outside this
# checkout; `make new-pipeline` writes into this folder unless told otherwise.
__path__.extend(p for p in os.environ.get("PIPELINES_PATH", "").split(os.pathsep) if p and p not in __path__)
