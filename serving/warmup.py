"""Model warm-up as TF Serving does it: before a version is AVAILABLE, the requests it carries in
`assets.extra/tf_serving_warmup_requests` (a TFRecord of PredictionLogs) are replayed against it, each
`--num_request_iterations_for_warmup` times, through the path a gRPC request takes (serving/grpc_service.py), so
the first real request does not pay for tracing and the first kernels' set-up. A version whose replay fails is not
served; the error names the record. Rules and messages from tensorflow_serving/servables/tensorflow/
saved_model_warmup_util.cc (RunSavedModelWarmupUntracked) and saved_model_warmup.cc (RunWarmupRequest)."""

from __future__ import annotations

import logging
import time
from typing import Optional, Tuple

import tensorflow as tf
from google.protobuf import message
from tensorflow_serving.apis import prediction_log_pb2

from core import layout
from serving import grpc_service, inference
from serving.batching import BatchRefused

log = logging.getLogger("serving")
RUNS = {"predict_log": grpc_service.predict, "classify_log": grpc_service.classify, "regress_log": grpc_service.regress}


class WarmupError(RuntimeError):
    """The version's warm-up failed: the version is not served (TF Serving fails its load)."""


def replay(model, iterations: int = 1) -> Optional[Tuple[int, float]]:
    """(records, seconds) replayed against the loaded `model`, or None without a warm-up file."""
    path = model.path / layout.WARMUP_REQUESTS
    if not path.is_file():
        log.info("No warmup data file found at %s", layout.WARMUP_REQUESTS)  # optional, as in TF Serving
        return None
    started, records = time.monotonic(), 0
    where = f"{model.name} version {model.version}, {layout.WARMUP_REQUESTS}"
    try:
        stream = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    except tf.errors.DataLossError as exc:
        raise WarmupError(f"{where}: {exc.message}. Please verify your warmup data is in TFRecord format.") from None
    with inference.replaying():
        for n, record in enumerate(stream):
            if n >= layout.WARMUP_MAX_RECORDS:
                raise WarmupError(
                    f"Number of warmup records exceeds the maximum ({layout.WARMUP_MAX_RECORDS}) at {where}"
                )
            entry = prediction_log_pb2.PredictionLog()
            try:
                entry.ParseFromString(record)
            except message.DecodeError:
                raise WarmupError(f"Failed to parse warmup record {n} from {where}") from None
            kind = entry.WhichOneof("log_type")
            if kind is None:
                continue  # RunWarmupRequest: a record of no known type is skipped
            if kind not in RUNS:
                raise WarmupError(f"{where}: record {n}: Unsupported log_type for warmup: {kind}")
            request = getattr(entry, kind).request
            for _ in range(max(iterations, 1)):
                try:
                    RUNS[kind](model, request)
                except (inference.BadRequest, BatchRefused) as exc:
                    raise WarmupError(f"{where}: record {n} ({kind}) failed: {exc}") from None
            records += 1
    return records, time.monotonic() - started
