"""TF Serving's request semantics over a loaded SavedModel, shared by the REST and gRPC front ends.

Inputs are checked against the signature (names, dtypes, shapes) before the model runs, so bad input is a
`BadRequest` (HTTP 400 / gRPC INVALID_ARGUMENT) naming the input, never a server error.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import threading
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf

from core import layout, seams
from serving import request_log
from serving.metrics import METRICS

log = logging.getLogger("serving")

DEFAULT_SIGNATURE = "serving_default"
# signatures whose one input is serialized tf.Examples: logged as they came
SERIALIZED_SIGNATURES = frozenset({layout.EXAMPLES_SIGNATURE, layout.CLASSIFY_SIGNATURE, layout.REGRESS_SIGNATURE})


class BadRequest(ValueError):
    """The client's request cannot be answered: HTTP 400; gRPC `code` (INVALID_ARGUMENT unless said otherwise)."""

    code = "INVALID_ARGUMENT"


_CODE_NAMES = dict(
    enumerate(
        (
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        )
    )
)  # absl::StatusCode's numbering, as TensorFlow's


class ModelError(BadRequest):
    """The model's run failed with a status other than INVALID_ARGUMENT (an op that is out of range, unimplemented,
    a resource exhausted): TF Serving answers with that status (http_server.cc ToHTTPStatusCode)."""

    def __init__(self, exc: "tf.errors.OpError", reason: str):
        super().__init__(f"the model failed on the input: {reason}")
        self.code = _CODE_NAMES.get(exc.error_code, "UNKNOWN")


class SignatureNotFound(BadRequest):
    """predict_util.cc: an unknown signature key is FAILED_PRECONDITION (HTTP 400 in http_server.cc)."""

    code = "FAILED_PRECONDITION"


def shown_text(text: str, limit: int = 80) -> str:
    text = str(text)
    text = text if len(text) <= limit else text[:limit] + "..."
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


def input_specs(fn) -> Dict[str, tf.TensorSpec]:
    return dict(fn.structured_input_signature[1])


class _Inputs:
    """A signature's inputs, derived once per loaded model: reading `structured_input_signature` and comparing
    TensorShapes cost more per request than a small model's whole run."""

    def __init__(self, fn, model_name: str = "", signature_name: str = ""):
        self.fn = fn
        self.where = f"{model_name} signature {signature_name}"
        self.specs = input_specs(fn)
        self.names = sorted(self.specs)
        self.dims = {k: _dims(s) for k, s in self.specs.items()}
        # Inputs whose dtype and shape run() has checked can go to the function flat, skipping the binding and
        # re-checking of ConcreteFunction.__call__ (half a millisecond, a third of a batch-1 Titanic call).
        # `_call_flat(tensor_inputs, captured_inputs)` is how __call__ itself ends (tensorflow/python/eager/
        # polymorphic_function/concrete_function.py; a loaded SavedModel's functions override it in tensorflow/
        # python/saved_model/load.py to feed their captures). The flat order is the order of the function's
        # parameters (its function_type, which __call__ binds by), not the order the signature declares nor
        # `structured_input_signature`'s dict order; the first call of each loaded signature runs both ways and
        # keeps the flat path only if they agree.
        args, kwargs = fn.structured_input_signature
        flat = not args and all(isinstance(s, tf.TensorSpec) for s in kwargs.values()) and seams.flat_call_supported(fn)
        order = None
        function_type = getattr(fn, "function_type", None)
        if function_type is not None and set(function_type.parameters) == set(kwargs):
            order = list(function_type.parameters)
        self.flat_order = (order or sorted(kwargs)) if flat else None
        self.checked = False

    def call(self, tensors: Dict[str, tf.Tensor]):
        if self.flat_order is None:
            return self.fn(**tensors)
        if self.checked:
            return seams.call_flat(self.fn, [tensors[k] for k in self.flat_order])
        structured = self.fn(**tensors)  # an error here is the input's, and the client's answer
        try:
            same = _same_outputs(seams.call_flat(self.fn, [tensors[k] for k in self.flat_order]), structured)
        except Exception:  # noqa: BLE001 - a flat call TensorFlow refuses is a disagreement too
            same = False
        if not same:
            log.warning("%s: the flat call disagrees with the structured call; using the structured call", self.where)
            self.flat_order = None
        self.checked = True
        return structured


def _same_outputs(a, b) -> bool:
    if not isinstance(a, dict) or not isinstance(b, dict) or set(a) != set(b):
        return False
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind in "fc":
            if not np.array_equal(x, y, equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def signature_inputs(model, signature_name: str) -> _Inputs:
    derived = model.derived.get(signature_name)
    if derived is None:
        try:
            fn = model.signature(signature_name)
        except KeyError:
            raise SignatureNotFound(f'Serving signature key "{shown_text(signature_name)}" not found.') from None
        derived = model.derived[signature_name] = _Inputs(fn, getattr(model, "name", ""), signature_name)
    return derived


def _dims(spec: tf.TensorSpec):
    """The spec's shape as a tuple (None for an unknown dimension), or None for an unknown rank."""
    return None if spec.shape.rank is None else tuple(spec.shape.as_list())


def _shape_fits(dims, shape) -> bool:
    return dims is None or (len(dims) == len(shape) and all(d is None or d == n for d, n in zip(dims, shape)))


def _small_ints(value, dtype: tf.DType):
    """The common case of an integer input, a flat list of Python ints inside the dtype's range, as an array
    without the general path's checks; None when the value is anything else."""
    if type(value) is not list or not value or not all(type(v) is int for v in value):
        return None
    info = np.iinfo(dtype.as_numpy_dtype)
    if min(value) < info.min or max(value) > info.max:
        return None
    return np.array(value, dtype=dtype.as_numpy_dtype)


def decode_b64(value):
    """TF Serving's JSON convention: {"b64": "..."} is binary data, anywhere in a value."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError):
                raise BadRequest('a {"b64": ...} value is not valid base64') from None
        raise BadRequest(f"unexpected object {sorted(value)} where a value was expected")
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    return value


# What TF Serving's JSON reader accepts for each dtype (tensorflow_serving/util/json_tensor.cc AddValueToTensor):
# floats take any JSON number; int8/16/32 and uint8 only a JSON integer that fits an int32 (rapidjson IsInt: 3.0 is
# a double, true is not a number); int64 only one that fits an int64; bool only true/false; string only text or
# {"b64": ...}. null, and any other kind, is "JSON Value: <v> Type: <kind> is not of expected type: <dtype>".
_INT32 = (-(1 << 31), (1 << 31) - 1)
_JSON_RANGES = {
    tf.int8: _INT32,
    tf.int16: _INT32,
    tf.int32: _INT32,
    tf.uint8: _INT32,
    tf.int64: (-(1 << 63), (1 << 63) - 1),
    tf.uint32: (0, (1 << 32) - 1),
    tf.uint64: (0, (1 << 64) - 1),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _json_kind(value) -> str:
    if value is None:
        return "Null"
    if value is True or value is False:
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def dtype_string(dtype) -> str:
    """TensorFlow's DataTypeString, the name TF Serving's messages use ("float", not "float32")."""
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(tf.as_dtype(dtype).as_datatype_enum)[3:].lower()


def type_error(name: str, value, dtype: tf.DType) -> BadRequest:
    try:
        shown_value = json.dumps(value, allow_nan=True)[:200]
    except (TypeError, ValueError):
        shown_value = repr(value)[:200]
    return BadRequest(
        f"input '{name}': JSON Value: {shown_value} Type: {_json_kind(value)} is not of expected "
        f"type: {dtype_string(dtype)}"
    )


def _leaves(value, out: list) -> list:
    if type(value) is list:
        for v in value:
            _leaves(v, out)
    else:
        out.append(value)
    return out


def check_json_values(name: str, value, dtype: tf.DType) -> None:
    """Refuses, naming the first offending value, what TF Serving's JSON reader refuses for `dtype`."""
    leaves = _leaves(value, [])
    kinds = set(map(type, leaves))
    if dtype.is_floating:
        if kinds <= {float, int}:
            if dtype == tf.float32 or dtype == tf.float16 or dtype == tf.bfloat16:
                limit = _FLOAT32_MAX if dtype == tf.float32 else float(dtype.max)
                for v in leaves:  # a finite number float32 cannot hold would silently become Infinity
                    if v > limit or v < -limit:
                        if not math.isinf(v):
                            raise BadRequest(f"input '{name}': JSON Value: {v!r} is outside {dtype.name}'s range")
            return
        bad = next(v for v in leaves if type(v) not in (float, int))
    elif dtype.is_integer:
        low, high = _JSON_RANGES.get(dtype, (-(1 << 63), (1 << 63) - 1))
        if kinds <= {int}:
            for v in leaves:
                if v < low or v > high:
                    raise type_error(name, v, dtype)
            return
        bad = next(v for v in leaves if type(v) is not int)
    elif dtype == tf.bool:
        if kinds <= {bool}:
            return
        bad = next(v for v in leaves if type(v) is not bool)
    elif dtype == tf.string:
        if kinds <= {str, bytes}:
            return
        bad = next(
            (
                v
                for v in leaves
                if not (type(v) in (str, bytes) or (type(v) is dict and set(v) == {"b64"} and type(v["b64"]) is str))
            ),
            _UNSET,
        )
        if bad is _UNSET:
            return
    else:
        raise BadRequest(f"input '{name}': dtype {dtype.name} is not supported over JSON")
    raise type_error(name, bad, dtype)


def _integers(name: str, value: Any, dtype: tf.DType) -> np.ndarray:
    """JSON integers (check_json_values ran) within the dtype's own range: a uint8 input takes 0..255, though
    TF Serving's reader would take any int32 and wrap it."""
    info = np.iinfo(dtype.as_numpy_dtype)
    try:
        array = np.array(value, dtype=object)
    except ValueError:
        raise BadRequest(f"input '{name}': not a rectangular array (rows of different lengths)") from None
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise BadRequest(f"input '{name}': a value is outside {dtype.name}'s range [{info.min}, {info.max}]")
    return array.astype(dtype.as_numpy_dtype)


_UNSET = object()


def to_array(name: str, value: Any, spec: tf.TensorSpec, dims=_UNSET) -> np.ndarray:
    """`value` (JSON-decoded, or an array from a TensorProto) as an array of the spec's dtype and shape, or a
    BadRequest naming the input. `dims`: _dims(spec), when the caller has it already."""
    if dims is _UNSET:
        dims = _dims(spec)
    if isinstance(value, np.ndarray):
        if value.dtype != (object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype):
            # TF Serving's gRPC Predict hands the TensorProto to the session as it is: a dtype other than the
            # signature's fails there (tensorflow/core/common_runtime/direct_session.cc: "Expects arg[i] to be
            # <dtype> but <dtype> is provided")
            raise BadRequest(
                f"input '{name}': Expects arg to be {dtype_string(spec.dtype)} but "
                f"{dtype_string(value.dtype) if value.dtype != object else 'string'} is provided"
            )
        array = value
    elif spec.dtype.is_integer and (array := _small_ints(value, spec.dtype)) is not None:
        pass
    else:
        array = _general_array(name, value, spec)
    if not _shape_fits(dims, array.shape):
        raise BadRequest(
            f"input '{name}': shape {list(array.shape)} does not match the signature's "
            f"{[d if d is not None else -1 for d in spec.shape.as_list()]}"
        )
    return array


def _general_array(name: str, value: Any, spec: tf.TensorSpec) -> np.ndarray:
    check_json_values(name, value, spec.dtype)
    try:
        if spec.dtype == tf.string:
            array = np.array(_encode_strings(decode_b64(value)), dtype=object)
        elif spec.dtype.is_integer:
            array = _integers(name, value, spec.dtype)
        else:
            array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
    except BadRequest as exc:
        message = str(exc)
        raise BadRequest(message if message.startswith(f"input '{name}'") else f"input '{name}': {message}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # ragged lists
        raise BadRequest(f"input '{name}': not a rectangular {spec.dtype.name} array ({exc})") from None
    if array.dtype == object and array.ndim and any(isinstance(v, (list, np.ndarray)) for v in array.ravel()):
        raise BadRequest(f"input '{name}': not a rectangular array (rows of different lengths)")
    return array


def _encode_strings(value):
    if isinstance(value, list):
        return [_encode_strings(v) for v in value]
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:  # JSON can spell a lone surrogate ("\ud800"); UTF-8 cannot
            raise BadRequest("text is not valid Unicode (a lone surrogate)") from None
    if isinstance(value, bytes):
        return value
    raise BadRequest(f'expected text or {{"b64": ...}}, got {type(value).__name__} {value!r:.40}')


BATCHER = None  # a serving.batching.BatchScheduler when the server runs with --enable_batching


_REPLAY = threading.local()


@contextlib.contextmanager
def replaying():
    """Warm-up's requests (serving/warmup.py) run on this thread inside the block: answered, never logged."""
    _REPLAY.on = True
    try:
        yield
    finally:
        _REPLAY.on = False


class Prepared:
    """A request's checked inputs and the call that answers them: `call(arrays)` runs the signature on them (or on
    a batch holding them, serving/batching.py); `answered()` logs the request once it has its answer."""

    __slots__ = ("model", "signature_name", "arrays", "call", "key")

    def __init__(self, model, signature_name, arrays, call):
        self.model, self.signature_name, self.arrays, self.call = model, signature_name, arrays, call
        self.key = (getattr(model, "name", "model"), getattr(model, "version", 0), signature_name)

    def answered(self) -> None:
        log = request_log.ACTIVE
        # answered requests only, warm-up's never; a queue append, the writing happens on the log's own thread
        if log is not None and not getattr(_REPLAY, "on", False):
            log.record(self.key[0], self.arrays, serialized=self.signature_name in SERIALIZED_SIGNATURES)


def prepare(model, signature_name: str, inputs: Dict[str, Any], api: str = "Predict") -> Prepared:
    """Checks {input name: batch value} against the signature (BadRequest naming the input otherwise)."""
    signature = signature_inputs(model, signature_name)
    specs = signature.specs
    if len(inputs) != len(specs) or any(k not in specs for k in inputs):
        missing, extra = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        raise BadRequest(
            f"signature '{signature_name}' takes inputs {signature.names}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
        )
    arrays = {k: to_array(k, v, specs[k], signature.dims[k]) for k, v in inputs.items()}
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) > 1:
        raise BadRequest(f"inputs have different batch sizes: {sorted(str(s) for s in sizes)}")
    name = getattr(model, "name", "model")

    def call(batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        started = time.perf_counter()
        try:
            outputs = signature.call({k: tf.constant(v, dtype=specs[k].dtype) for k, v in batch.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise BadRequest(f"the model rejected the input: {model_error(exc)}") from None
        except tf.errors.OpError as exc:  # the session's own status, as TF Serving returns it (HTTP by its code)
            raise ModelError(exc, model_error(exc)) from None
        result = {k: v.numpy() for k, v in outputs.items()}
        METRICS.runtime(name, api, (time.perf_counter() - started) * 1e6)
        return result

    return Prepared(model, signature_name, arrays, call)


def run(model, signature_name: str, inputs: Dict[str, Any], api: str = "Predict") -> Dict[str, np.ndarray]:
    """Calls a signature with {input name: batch value}; returns {output name: array}. `api` names the call in
    the runtime latency metric (Predict, Classify, Regress, as TF Serving's). With batching on, the call is merged
    with concurrent requests to the same version and signature (serving/batching.py)."""
    prepared = prepare(model, signature_name, inputs, api)
    batcher = BATCHER
    result = (
        prepared.call(prepared.arrays) if batcher is None else batcher.run(prepared.key, prepared.arrays, prepared.call)
    )
    prepared.answered()
    return result


def model_error(exc: Exception) -> str:
    """TensorFlow's reason, not its preamble: "Graph execution error:" is followed by a trace of the ops that
    ran and, last, the reason itself (e.g. "Expected image (JPEG, PNG, or GIF), got unknown format ...")."""
    message = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    reasons = [
        line
        for line in lines
        if not line.startswith(("Graph execution error", "Detected at node", "File ", "Stack trace", "[[", "Traceback"))
    ]
    reason = reasons[-1] if reasons else (lines[-1] if lines else type(exc).__name__)
    reason = reason.split(" [[", 1)[0]
    return reason[:500]


# ---------------------------------------------------------------- REST request/response shapes
def rest_inputs(body: Any, specs: Dict[str, tf.TensorSpec]) -> Tuple[Dict[str, Any], bool]:
    """(inputs, row format?) from a :predict body, TF Serving's "instances" (row) or "inputs" (columnar), for a
    signature with input `specs`."""
    if not isinstance(body, dict):
        raise BadRequest('request body must be a JSON object with "instances" or "inputs"')
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest('request must have exactly one of "instances" (row format) or "inputs" (columnar)')
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest('"instances" must be a non-empty list')
        named = [isinstance(i, dict) and not set(i) <= {"b64"} for i in instances]
        if all(named):
            keys = set(instances[0])
            for n, instance in enumerate(instances):
                if set(instance) != keys:
                    raise BadRequest(f"instance {n} has inputs {sorted(instance)}, instance 0 has {sorted(keys)}")
            return {k: [i[k] for i in instances] for k in keys}, True
        if any(named):
            raise BadRequest('"instances" mixes named objects and bare values')
        if len(specs) != 1:
            raise BadRequest(f"bare instances need a signature with one input; this one takes {sorted(specs)}")
        return {next(iter(specs)): instances}, True
    inputs = body["inputs"]
    if isinstance(inputs, dict) and not set(inputs) <= {"b64"}:
        return inputs, False
    if len(specs) != 1:
        raise BadRequest(f'a bare "inputs" value needs a signature with one input; this one takes {sorted(specs)}')
    return {next(iter(specs)): inputs}, False


def _jsonable(value):
    """An output (an array, a row of one, or one element of a string array) as JSON values."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_jsonable(a) for a in value] if value.ndim else _jsonable(value.item())
        return value.tolist()
    if isinstance(value, bytes):  # an element of a DT_STRING output (classify's "classes")
        return _bytes_json(value)
    return value.item() if isinstance(value, np.generic) else value


def _bytes_json(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def rest_outputs(outputs: Dict[str, np.ndarray], row_format: bool) -> dict:
    if row_format:
        if len(outputs) == 1:
            return {"predictions": _jsonable(next(iter(outputs.values())))}
        n = len(next(iter(outputs.values())))
        return {"predictions": [{k: _jsonable(v[i]) for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": _jsonable(next(iter(outputs.values())))}
    return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}


# ---------------------------------------------------------------- classify / regress (tf.Example signature)
_KIND_NAMES = {"int64_list": "int64", "float_list": "float", "bytes_list": "bytes"}


def _feature(name: str, value) -> tf.train.Feature:
    """A JSON feature value as TF Serving makes it (json_tensor.cc AddValueToFeature): the first element sets the
    list's kind and every other must agree; true/false are int64 1/0; a JSON integer beyond int64 but within uint64
    is refused, one beyond uint64 is a double (rapidjson parses it so); null, objects other than {"b64": ...} and
    nested lists are refused; a string that is not valid Unicode (a lone surrogate) is a parse error there."""
    values = value if type(value) is list else [value]
    kind, items = None, []
    for v in values:
        if v is True or v is False:
            this, item = "int64_list", int(v)
        elif type(v) is int:
            if -(1 << 63) <= v < (1 << 63):
                this, item = "int64_list", v
            elif 0 < v < (1 << 64):
                raise BadRequest(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
            else:
                this, item = "float_list", float(v)
        elif type(v) is float:
            this, item = "float_list", v
        elif type(v) is str:
            try:
                this, item = "bytes_list", v.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(
                    f"JSON Parse error: The surrogate pair in string is invalid (feature {name})"
                ) from None
        elif type(v) is dict and set(v) == {"b64"} and type(v["b64"]) is str:
            this, item = "bytes_list", decode_b64(v)
        else:
            raise BadRequest(f"Feature: {name} has element with unexpected JSON type: {_json_kind(v)}")
        if kind is not None and this != kind:
            raise BadRequest(f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}")
        kind = this
        items.append(item)
    if kind is None:
        return tf.train.Feature()
    return tf.train.Feature(
        **{
            kind: getattr(
                tf.train, {"int64_list": "Int64List", "float_list": "FloatList", "bytes_list": "BytesList"}[kind]
            )(value=items)
        }
    )


def examples_from_json(body: Any) -> List[bytes]:
    if not isinstance(body, dict) or not isinstance(body.get("examples"), list) or not body["examples"]:
        raise BadRequest('request body must have a non-empty "examples" list')
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise BadRequest('"context" must be an object of features')
    serialized = []
    for n, example in enumerate(body["examples"]):
        if not isinstance(example, dict):
            raise BadRequest(f"example {n} is not an object of features")
        for key in (*context, *example):
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(
                    f"JSON Parse error: The surrogate pair in string is invalid (a feature name of example {n})"
                ) from None
        features = {k: _feature(k, v) for k, v in {**context, **example}.items()}
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return serialized


# TF Serving's Classify and Regress run only signatures made for them (tensorflow_serving/servables/tensorflow/
# classifier.cc GetClassificationSignatureDef / PreProcessClassification, regressor.cc likewise): the method name,
# one input "inputs" of serialized tf.Examples, outputs "classes" and/or "scores" (classify) or "outputs" (regress).
# The same rules here, with the same messages, so a client that works here works against TF Serving itself.
METHOD_NAMES = {
    "classify": "tensorflow/serving/classify",
    "regress": "tensorflow/serving/regress",
    "predict": "tensorflow/serving/predict",
}
METHOD_OUTPUTS = {"classify": ("classes", "scores"), "regress": ("outputs",)}


def method_signature_outputs(model, signature_name: str, serialized: List[bytes], method: str) -> Dict[str, np.ndarray]:
    definition = model.signature_defs.get(signature_name)
    if definition is None:
        raise BadRequest(f"No signature was found with the name: {signature_name}")
    kind = "classification" if method == "classify" else "regression"
    if definition.method_name != METHOD_NAMES[method]:
        raise BadRequest(
            f"Expected {kind} signature method_name to be {METHOD_NAMES[method]}. Was: {definition.method_name}"
        )
    if list(definition.inputs) != ["inputs"]:
        raise BadRequest(
            f"Expected one input Tensor named 'inputs' in {kind} signature {signature_name!r}, "
            f"found {sorted(definition.inputs)}"
        )
    if not set(definition.outputs) or not set(definition.outputs) <= set(METHOD_OUTPUTS[method]):
        raise BadRequest(
            f"{kind} signature {signature_name!r} must have outputs among "
            f"{list(METHOD_OUTPUTS[method])}, found {sorted(definition.outputs)}"
        )
    return run(model, signature_name, {"inputs": serialized}, method.capitalize())


def classify(outputs: Dict[str, np.ndarray]) -> List[List[Tuple[str, float]]]:
    """Per example, (class, score) pairs from a classify signature's "classes" and "scores"."""
    scores, classes = outputs.get("scores"), outputs.get("classes")
    rows = len(scores) if scores is not None else len(classes)
    result = []
    for i in range(rows):
        n = scores.shape[1] if scores is not None else classes.shape[1]
        result.append(
            [
                (
                    classes[i][j].decode("utf-8", "replace") if classes is not None else "",
                    float(scores[i][j]) if scores is not None else 0.0,
                )
                for j in range(n)
            ]
        )
    return result


def regress(outputs: Dict[str, np.ndarray]) -> List[float]:
    values = outputs["outputs"]
    if values.ndim <= 1 or (values.ndim == 2 and values.shape[1] == 1):
        return [float(v) for v in values.reshape(-1)]
    raise BadRequest(f"regress needs one value per example; this signature gives shape {list(values.shape[1:])}")
