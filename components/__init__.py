"""Parts every pipeline shares: feature columns, trainer plumbing, strategies, the KS metric, custom components."""
from components.layout import use_legacy_keras

use_legacy_keras()  # before anything imports TensorFlow (components/layout.py says why)

import warnings  # noqa: E402

# google-cloud libraries that TFX imports warn at every start that they will stop supporting Python 3.10;
# TFX 1.16 supports nothing newer, so the warning is noise for this project.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)
