"""The served model's signatures, and the method names TF Serving's Classify and Regress require. The names are
constants of core/layout.py; modeling/export.py builds the functions.

| signature         | takes                                   | gives                                  | method   |
|-------------------|-----------------------------------------|----------------------------------------|----------|
| serving_default   | one JSON-friendly tensor per raw feature | probability / prediction; multi-class: | predict  |
|                   |                                         | `scores` and `classes` as classify     |          |
| serving_raw       | the same (the name older clients used)  | the same                               | predict  |
| serving_examples  | `examples`: serialized tf.Examples      | probability / probabilities / prediction | predict |
| classify          | `inputs`: serialized tf.Examples        | `classes` (the label names), `scores`  | classify |
| regress           | `inputs`: serialized tf.Examples        | `outputs`: one value each (binary)     | regress  |

`serving_default` is what a request without `signature_name` reaches: raw values, as the book's chapter 6-6 posts
them. The Evaluator reads `serving_examples`. `classify` exists for classifiers (binary: classes "0", "1" or the
declared label names), `regress` for binary ones (a regression signature must give one value per example, which
the covid model's three counts are not).

`tf.saved_model.save` writes every signature with the predict method name, and TF Serving refuses Classify and
Regress on such a signature (tensorflow_serving/servables/tensorflow/classifier.cc, regressor.cc: "Expected
classification signature method_name to be tensorflow/serving/classify"), so `set_method_names` rewrites them in
saved_model.pb (and the fingerprint that hashes it). TensorFlow's own loader ignores method names.
"""

from __future__ import annotations

import os
from typing import Mapping

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
METHOD_INPUT = "inputs"


def set_method_names(export_dir: str, methods: Mapping[str, str]) -> None:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(export_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for name, method in methods.items():
            if name not in meta_graph.signature_def:
                raise KeyError(f"no signature {name!r} to mark as {method}")
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(proto.SerializeToString(deterministic=True))
    _refresh_fingerprint(export_dir)


def _refresh_fingerprint(export_dir: str) -> None:
    """TF 2.16 writes fingerprint.pb with a checksum of saved_model.pb; recompute it for the rewritten file."""
    fingerprint = os.path.join(export_dir, "fingerprint.pb")
    import tensorflow as tf

    if not tf.io.gfile.exists(fingerprint):
        return
    from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting as fingerprinting_pywrap

    with tf.io.gfile.GFile(fingerprint, "wb") as f:
        f.write(fingerprinting_pywrap.CreateFingerprintDef(export_dir))
