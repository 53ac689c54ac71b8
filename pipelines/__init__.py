"""The datasets, one package each (spec.py, features.py, model.py, local_runner.py): the book's four and whatever
`make new-pipeline` drafted; registry.py finds them. PIPELINES_PATH: more folders whose packages are pipelines
too (`pipelines.<name>`), e.g. your own kept outside this checkout."""

import os

import core  # noqa: F401 - first: TF_USE_LEGACY_KERAS before TensorFlow (core/keras_env.py)

__path__.extend(p for p in os.environ.get("PIPELINES_PATH", "").split(os.pathsep) if p and p not in __path__)
