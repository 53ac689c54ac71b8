"""The shared kernel: what every other room builds on, importing none of them (docs/layout.md)."""

import warnings

from core import keras_env, quiet

keras_env.use_legacy_keras()  # before anything imports TensorFlow (core/keras_env.py says why)
quiet.quiet_if_command()  # `python -m <command>`: quiet before the command imports TensorFlow (core/quiet.py)

# google-cloud libraries that TFX imports warn at every start that they will stop supporting Python 3.10;
# TFX 1.16 supports nothing newer, so the warning is noise for this project.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)
