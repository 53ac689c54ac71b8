"""The TFX pipelines: one factory for every dataset and runner, plus each dataset's own spec."""
import os

import components  # noqa: F401 - sets TF_USE_LEGACY_KERAS before anything imports TensorFlow, and quiets warnings

# PIPELINES_PATH: more folders whose packages are pipelines too (`pipelines.<name>`), e.g. your own, kept outside this
# checkout; `make new-pipeline` writes into this folder unless told otherwise.
__path__.extend(p for p in os.environ.get("PIPELINES_PATH", "").split(os.pathsep) if p and p not in __path__)
