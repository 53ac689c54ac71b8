"""TF Serving's gRPC API (tensorflow-serving-api stubs) over a Repository: PredictionService (Predict, Classify,
Regress, GetModelMetadata) and ModelService.GetModelStatus, so a standard TF Serving gRPC client works."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from typing import Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    status_pb2,
)

from serving import inference
from serving.batching import BatchRefused
from serving.metrics import METRICS
from serving.repository import NotFound, Repository

log = logging.getLogger("serving")
MAX_MESSAGE_BYTES = 64 << 20
# A TensorProto may send fewer values than its shape holds (TensorFlow repeats the last one). That turns a few
# bytes into any amount of memory, so only a single value may fill a tensor, and only a small one.
MAX_FILLED_ELEMENTS = 1 << 16
_FIELDS = {  # dtype -> (value field, bytes per element in tensor_content, values per element)
    types_pb2.DT_FLOAT: ("float_val", 4, 1),
    types_pb2.DT_DOUBLE: ("double_val", 8, 1),
    types_pb2.DT_INT32: ("int_val", 4, 1),
    types_pb2.DT_INT16: ("int_val", 2, 1),
    types_pb2.DT_INT8: ("int_val", 1, 1),
    types_pb2.DT_UINT8: ("int_val", 1, 1),
    types_pb2.DT_UINT16: ("int_val", 2, 1),
    types_pb2.DT_INT64: ("int64_val", 8, 1),
    types_pb2.DT_UINT32: ("uint32_val", 4, 1),
    types_pb2.DT_UINT64: ("uint64_val", 8, 1),
    types_pb2.DT_BOOL: ("bool_val", 1, 1),
    types_pb2.DT_HALF: ("half_val", 2, 1),
    types_pb2.DT_BFLOAT16: ("half_val", 2, 1),
    types_pb2.DT_STRING: ("string_val", None, 1),
}

# dtypes whose repeated field holds the values as they are (half/bfloat16 hold bit patterns: tf.make_ndarray)
_PLAIN = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_STRING: object,
}


def tensor_to_value(name: str, proto) -> object:
    """A request's TensorProto as an array, after checking that what it declares (dtype, shape) agrees with the
    bytes it actually carries; nothing is allocated for a size the request did not send."""

    def bad(why):
        return inference.BadRequest(f"input '{name}': {why}")

    dtype_name = (
        types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() else str(proto.dtype)
    )
    if proto.dtype not in _FIELDS:
        raise bad(f"dtype {dtype_name} is not supported")
    if proto.tensor_shape.unknown_rank:
        raise bad("the shape's rank is unknown")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise bad(f"shape {dims} has a negative dimension")
    elements = 1
    for d in dims:
        elements *= d  # Python ints: no overflow
    field, itemsize, per_element = _FIELDS[proto.dtype]
    if proto.tensor_content:
        if itemsize is None:
            raise bad(f"{dtype_name} values cannot be sent as tensor_content")
        if len(proto.tensor_content) != elements * itemsize:
            raise bad(
                f"tensor_content holds {len(proto.tensor_content)} bytes; shape {dims} of {dtype_name} "
                f"needs {elements * itemsize}"
            )
    else:
        sent = len(getattr(proto, field)) // per_element
        if sent > elements:
            raise bad(f"{sent} values sent for shape {dims} ({elements} elements)")
        if sent < elements and not (sent == 1 and elements <= MAX_FILLED_ELEMENTS):
            raise bad(f"{sent} value(s) sent for shape {dims} ({elements} elements)")
    if not proto.tensor_content and sent == elements and proto.dtype in _PLAIN:
        # the common case, one value per element in its repeated field: one array straight from the field
        # (tf.make_ndarray's generic path costs more per input than a small model's run)
        values = getattr(proto, field)
        array = (
            np.array(values, dtype=object)
            if proto.dtype == types_pb2.DT_STRING
            else np.array(values, _PLAIN[proto.dtype])
        )
        return array.reshape(dims)
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise bad(f"not a valid tensor ({inference.model_error(exc)})") from None
    return array.tolist() if proto.dtype == types_pb2.DT_STRING else array


def handles_errors(method):
    """Bad input is INVALID_ARGUMENT, an unknown model, version or label NOT_FOUND, as TF Serving answers them;
    anything else is a bug: logged, and INTERNAL without details (never 'Exception calling application').
    Predict, Classify and Regress are counted and timed as TF Serving does (prediction_service_impl.cc:40-60):
    every request counted by status, latency for answered ones, entrypoint GRPC."""
    counted = method.__name__ in ("Predict", "Classify", "Regress")

    @functools.wraps(method)
    def wrapper(self, request, context):
        started = time.perf_counter()
        code, message = "OK", ""
        try:
            return method(self, request, context)
        except inference.BadRequest as exc:
            code, message = exc.code, str(exc)
        except BatchRefused as exc:
            code, message = exc.code, str(exc)
        except NotFound as exc:
            code, message = "NOT_FOUND", str(exc)
        except RecursionError:
            code, message = "INVALID_ARGUMENT", "request is nested too deeply"
        except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into a clean status
            log.error("internal error in %s: %s", method.__name__, self.repository.redact(repr(exc)))
            code, message = "INTERNAL", "internal error"
        finally:
            if counted:
                spec = request.model_spec
                name = spec.name if self.repository.is_served(spec.name) else "<unknown>"
                METRICS.request(
                    name,
                    method.__name__,
                    "GRPC",
                    code,
                    (time.perf_counter() - started) * 1e6,
                    signature=spec.signature_name or inference.DEFAULT_SIGNATURE,
                )
        context.abort(getattr(grpc.StatusCode, code), message)

    return wrapper


def _version(model_spec) -> Optional[int]:
    return model_spec.version.value if model_spec.WhichOneof("version_choice") == "version" else None


def _label(model_spec) -> Optional[str]:
    return model_spec.version_label if model_spec.WhichOneof("version_choice") == "version_label" else None


def _fill_spec(spec, model, signature_name: str = "") -> None:
    spec.name = model.name
    spec.version.value = model.version
    spec.signature_name = signature_name


def _examples(input_proto) -> list:
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context
        out = []
        for e in input_proto.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(e)
            out.append(merged.SerializeToString())
        return out
    raise inference.BadRequest("input has no examples")


# The answers given a model: the servicer's methods once the model is found, and warm-up's replay of the requests a
# version carries (serving/warmup.py), so both take the same path
def predict(model, request) -> predict_pb2.PredictResponse:
    signature = request.model_spec.signature_name or inference.DEFAULT_SIGNATURE
    inputs = {k: tensor_to_value(k, v) for k, v in request.inputs.items()}
    outputs = inference.run(model, signature, inputs)
    response = predict_pb2.PredictResponse()
    _fill_spec(response.model_spec, model, signature)
    for key in set(request.output_filter) or set(outputs):
        if key not in outputs:
            raise inference.BadRequest(f"output_filter names unknown output {key!r}")
        response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
    return response


def _method_outputs(model, request, method):
    """(signature, outputs) for a Classify/Regress request: a signature made for that method."""
    signature = request.model_spec.signature_name or inference.DEFAULT_SIGNATURE
    return signature, inference.method_signature_outputs(model, signature, _examples(request.input), method)


def classify(model, request) -> classification_pb2.ClassificationResponse:
    signature, outputs = _method_outputs(model, request, "classify")
    response = classification_pb2.ClassificationResponse()
    _fill_spec(response.model_spec, model, signature)
    for row in inference.classify(outputs):
        classification = response.result.classifications.add()
        for label, score in row:
            classification.classes.add(label=label, score=score)
    return response


def regress(model, request) -> regression_pb2.RegressionResponse:
    signature, outputs = _method_outputs(model, request, "regress")
    response = regression_pb2.RegressionResponse()
    _fill_spec(response.model_spec, model, signature)
    for value in inference.regress(outputs):
        response.result.regressions.add(value=value)
    return response


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: Repository):
        self.repository = repository

    def _model(self, model_spec):
        return self.repository.get(model_spec.name, _version(model_spec), _label(model_spec))

    @handles_errors
    def Predict(self, request, context):
        return predict(self._model(request.model_spec), request)

    @handles_errors
    def Classify(self, request, context):
        return classify(self._model(request.model_spec), request)

    @handles_errors
    def Regress(self, request, context):
        return regress(self._model(request.model_spec), request)

    @handles_errors
    def GetModelMetadata(self, request, context):
        model = self._model(request.model_spec)
        if list(request.metadata_field) not in ([], ["signature_def"]):
            raise inference.BadRequest("only metadata_field 'signature_def' is available")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, model)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signature_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: Repository):
        self.repository = repository

    @handles_errors
    def GetModelStatus(self, request, context):
        entries = self.repository.status(
            request.model_spec.name, _version(request.model_spec), _label(request.model_spec)
        )
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in entries:
            status = response.model_version_status.add()
            status.version = int(entry["version"])
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry["state"])
            status.status.CopyFrom(
                status_pb2.StatusProto(
                    error_code=0 if entry["status"]["error_code"] == "OK" else 2,
                    error_message=entry["status"]["error_message"],
                )
            )
        return response


def create_server(repository: Repository, host: str, port: int, workers: int = 8) -> tuple[grpc.Server, int]:
    """The server, not started, and the port it bound (gRPC's own pick for port 0: no window in which another
    program could take a port chosen beforehand)."""
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repository), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server, bound
