"""The warm-up requests a pushed version carries (`assets.extra/tf_serving_warmup_requests`, TF Serving's
warm-up file): a TFRecord of PredictionLogs, one per signature the model has, predict, classify and regress alike,
each built from a few real eval examples and run once against the model before it is written (a record the model
refuses would keep the version from being served: serving/warmup.py)."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from core import layout

log = logging.getLogger(__name__)
EXAMPLES = 4  # per record: a batch as clients send them, small enough to replay in milliseconds


def _signature_defs(model_dir: str) -> Dict[str, object]:
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, layout.SAVED_MODEL), "rb") as f:
        proto.ParseFromString(f.read())
    return {k: v for k, v in proto.meta_graphs[0].signature_def.items() if not k.startswith("__")}


def _values(example: tf.train.Example, key: str) -> list:
    feature = example.features.feature.get(key)
    if feature is None:
        return []
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _raw_inputs(definition, examples: List[tf.train.Example], serialized: List[bytes]) -> Optional[dict]:
    """{input: array} for a predict signature: serialized examples for its one string input that no example has as
    a feature (serving_examples), else each input from the feature of its name; None when they cannot feed it."""
    inputs = {}
    names = list(definition.inputs)
    for name in names:
        info = definition.inputs[name]
        dtype = tf.as_dtype(info.dtype)
        dims = [d.size for d in info.tensor_shape.dim]
        if len(names) == 1 and dtype == tf.string and not any(name in e.features.feature for e in examples):
            inputs[name] = tf.constant(serialized)
            continue
        missing = float("nan") if dtype.is_floating else ("" if dtype == tf.string else 0)
        rows = []
        for example in examples:
            values = _values(example, name)
            if len(dims) <= 1:
                rows.append(values[0] if values else missing)
            elif len(dims) == 2 and (dims[1] in (-1, len(values))) and values:
                rows.append(values)
            else:
                return None
        try:  # a tf.Example holds bools and small ints as int64, a float32 input may be stored as double
            array = np.array(rows, dtype=object if dtype == tf.string else None)
            inputs[name] = tf.constant(array if dtype == tf.string else array.astype(dtype.as_numpy_dtype), dtype)
        except (TypeError, ValueError):
            return None
    return inputs


def build(model_dir: str, serialized: List[bytes]) -> List[bytes]:
    """Serialized PredictionLogs for every signature of the SavedModel in `model_dir` the examples can feed."""
    if not serialized:
        return []
    serialized = list(serialized[:EXAMPLES])
    examples = [tf.train.Example.FromString(s) for s in serialized]
    loaded = tf.saved_model.load(model_dir)
    records = []
    for name, definition in sorted(_signature_defs(model_dir).items()):
        method = definition.method_name.rsplit("/", 1)[-1]
        entry = prediction_log_pb2.PredictionLog()
        try:
            if method in ("classify", "regress"):
                loaded.signatures[name](**{next(iter(definition.inputs)): tf.constant(serialized)})
                request = (
                    classification_pb2.ClassificationRequest
                    if method == "classify"
                    else regression_pb2.RegressionRequest
                )()
                request.input.example_list.examples.extend(examples)
                getattr(entry, f"{method}_log").request.CopyFrom(request)
            else:
                inputs = _raw_inputs(definition, examples, serialized)
                if inputs is None:
                    log.info("warm-up: no record for signature %s (the examples cannot feed it)", name)
                    continue
                outputs = loaded.signatures[name](**inputs)
                if not all(_finite(v) for v in outputs.values()):
                    log.info("warm-up: no record for signature %s (it answers NaN on these examples)", name)
                    continue
                request = predict_pb2.PredictRequest()
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
                entry.predict_log.request.CopyFrom(request)
        except (tf.errors.OpError, ValueError, TypeError, KeyError) as exc:
            log.info("warm-up: no record for signature %s (%s)", name, str(exc).splitlines()[0][:200])
            continue
        entry.ListFields()[0][1].request.model_spec.signature_name = name
        records.append(entry.SerializeToString())
    return records


def _finite(tensor) -> bool:
    array = tensor.numpy()
    return array.dtype.kind not in "fc" or all(not math.isnan(v) for v in array.ravel().tolist())


def as_tfrecord(records: List[bytes]) -> bytes:
    """The records as the bytes of a TFRecord file (TF Serving reads it with a SequentialRecordReader)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "requests"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for record in records:
                writer.write(record)
        return path.read_bytes()


def eval_examples(examples_uri: str, split: str = "eval", count: int = EXAMPLES) -> List[bytes]:
    """The first `count` serialized tf.Examples of an Examples artifact's split (TFX writes gzipped TFRecords)."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(count)
    return [record.numpy() for record in dataset]
