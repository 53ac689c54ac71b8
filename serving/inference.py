"""TF Serving's request semantics over a loaded SavedModel, shared by the REST and gRPC front ends.

Inputs are checked against the signature (names, dtypes, shapes) before the model runs, so bad input is a
`BadRequest` (HTTP 400 / gRPC INVALID_ARGUMENT) naming the input, never a server error.
"""
from __future__ import annotations

import base64
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf

from components import layout
from serving import request_log

DEFAULT_SIGNATURE = "serving_default"
# signatures whose one input is serialized tf.Examples: logged as they came
SERIALIZED_SIGNATURES = frozenset({layout.EXAMPLES_SIGNATURE, layout.CLASSIFY_SIGNATURE, layout.REGRESS_SIGNATURE})


class BadRequest(ValueError):
    pass


def input_specs(fn) -> Dict[str, tf.TensorSpec]:
    return dict(fn.structured_input_signature[1])


class _Inputs:
    """A signature's inputs, derived once per loaded model: reading `structured_input_signature` and comparing
    TensorShapes cost more per request than a small model's whole run."""

    def __init__(self, fn):
        self.fn = fn
        self.specs = input_specs(fn)
        self.names = sorted(self.specs)
        self.dims = {k: _dims(s) for k, s in self.specs.items()}
        # Inputs whose dtype and shape run() has checked can go to the function flat, in the order nest.flatten
        # gives a dict (sorted keys), skipping the binding and re-checking of ConcreteFunction.__call__ (half a
        # millisecond, a third of a batch-1 Titanic call). `_call_flat(tensor_inputs, captured_inputs)` is how
        # __call__ itself ends (tensorflow/python/eager/polymorphic_function/concrete_function.py; a loaded
        # SavedModel's functions override it in tensorflow/python/saved_model/load.py to feed their captures).
        args, kwargs = fn.structured_input_signature
        flat = not args and all(isinstance(s, tf.TensorSpec) for s in kwargs.values()) and hasattr(fn, "_call_flat")
        self.flat_order = sorted(kwargs) if flat else None

    def call(self, tensors: Dict[str, tf.Tensor]):
        if self.flat_order is None:
            return self.fn(**tensors)
        return self.fn._call_flat([tensors[k] for k in self.flat_order], self.fn.captured_inputs)


def signature_inputs(model, signature_name: str) -> _Inputs:
    derived = model.derived.get(signature_name)
    if derived is None:
        try:
            fn = model.signature(signature_name)
        except KeyError as exc:
            raise BadRequest(str(exc.args[0])) from None
        derived = model.derived[signature_name] = _Inputs(fn)
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
                raise BadRequest("a {\"b64\": ...} value is not valid base64") from None
        raise BadRequest(f"unexpected object {sorted(value)} where a value was expected")
    if isinstance(value, list):
        return [decode_b64(v) for v in value]
    return value


def _integers(name: str, value: Any, dtype: tf.DType) -> np.ndarray:
    """Integers within the dtype's range. Python's ints are unbounded and JSON allows 1e30 or Infinity: each is
    refused by name rather than wrapped, rounded or left to overflow. A number with an integral value (3.0) is
    accepted, as TF Serving's JSON reader accepts it for an integer tensor."""
    info = np.iinfo(dtype.as_numpy_dtype)
    out_of_range = BadRequest(f"input '{name}': a value is outside {dtype.name}'s range [{info.min}, {info.max}]")
    try:
        as_float = np.array(value, dtype=np.float64)  # ValueError/TypeError for ragged lists or non-numbers
    except OverflowError:
        raise out_of_range from None
    if not np.all(np.isfinite(as_float)):
        raise BadRequest(f"input '{name}': expected integers ({dtype.name}), got Infinity or NaN")
    if np.any(as_float != np.floor(as_float)):
        raise BadRequest(f"input '{name}': expected integers ({dtype.name}), got fractions")
    exact = [int(v) for v in np.array(value, dtype=object).reshape(as_float.shape).ravel()]
    if any(v < info.min or v > info.max for v in exact):
        raise out_of_range
    return np.array(exact, dtype=dtype.as_numpy_dtype).reshape(as_float.shape)


_UNSET = object()


def to_array(name: str, value: Any, spec: tf.TensorSpec, dims=_UNSET) -> np.ndarray:
    """`value` (JSON-decoded, or an array from a TensorProto) as an array of the spec's dtype and shape, or a
    BadRequest naming the input. `dims`: _dims(spec), when the caller has it already."""
    if dims is _UNSET:
        dims = _dims(spec)
    if isinstance(value, np.ndarray) and (value.dtype == object if spec.dtype == tf.string
                                          else value.dtype == spec.dtype.as_numpy_dtype):
        array = value  # a TensorProto of the input's own dtype (strings: its bytes): nothing to convert or check
    elif spec.dtype.is_integer and (array := _small_ints(value, spec.dtype)) is not None:
        pass
    else:
        array = _general_array(name, decode_b64(value), spec)
    if not _shape_fits(dims, array.shape):
        raise BadRequest(f"input '{name}': shape {list(array.shape)} does not match the signature's "
                         f"{[d if d is not None else -1 for d in spec.shape.as_list()]}")
    return array


def _general_array(name: str, value: Any, spec: tf.TensorSpec) -> np.ndarray:
    try:
        if spec.dtype == tf.string:
            array = np.array(_encode_strings(value), dtype=object)
        elif spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype == tf.bool:
            if _has_strings(value):
                raise BadRequest(f"input '{name}': expected {spec.dtype.name} values, got text")
            if spec.dtype.is_integer:
                array = _integers(name, value, spec.dtype)
            else:
                # beyond float32's range a number becomes +-Infinity, as TF Serving's JSON reader makes it
                with np.errstate(over="ignore"):
                    array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
        else:
            raise BadRequest(f"input '{name}': dtype {spec.dtype.name} is not supported over JSON")
    except BadRequest as exc:
        message = str(exc)
        raise BadRequest(message if message.startswith(f"input '{name}'") else f"input '{name}': {message}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # ragged lists, None, objects
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
    raise BadRequest(f"expected text or {{\"b64\": ...}}, got {type(value).__name__} {value!r:.40}")


def _has_strings(value) -> bool:
    if isinstance(value, list):
        return any(_has_strings(v) for v in value)
    return isinstance(value, (str, bytes))


def run(model, signature_name: str, inputs: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """Calls a signature with {input name: batch value}; returns {output name: array}."""
    signature = signature_inputs(model, signature_name)
    specs = signature.specs
    if len(inputs) != len(specs) or any(k not in specs for k in inputs):
        missing, extra = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        raise BadRequest(f"signature '{signature_name}' takes inputs {signature.names}"
                         + (f"; missing {missing}" if missing else "") + (f"; unknown {extra}" if extra else ""))
    arrays = {k: to_array(k, v, specs[k], signature.dims[k]) for k, v in inputs.items()}
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) > 1:
        raise BadRequest(f"inputs have different batch sizes: {sorted(str(s) for s in sizes)}")
    try:
        outputs = signature.call({k: tf.constant(v, dtype=specs[k].dtype) for k, v in arrays.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
        raise BadRequest(f"the model rejected the input: {model_error(exc)}") from None
    log = request_log.ACTIVE
    if log is not None:  # answered requests only; a queue append, the writing happens on the log's own thread
        log.record(getattr(model, "name", "model"), arrays, serialized=signature_name in SERIALIZED_SIGNATURES)
    return {k: v.numpy() for k, v in outputs.items()}


def model_error(exc: Exception) -> str:
    """TensorFlow's reason, not its preamble: "Graph execution error:" is followed by a trace of the ops that
    ran and, last, the reason itself (e.g. "Expected image (JPEG, PNG, or GIF), got unknown format ...")."""
    message = getattr(exc, "message", None) or str(exc)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "File ",
                                                             "Stack trace", "[[", "Traceback"))]
    reason = reasons[-1] if reasons else (lines[-1] if lines else type(exc).__name__)
    reason = reason.split(" [[", 1)[0]
    return reason[:500]


# ---------------------------------------------------------------- REST request/response shapes
def rest_inputs(body: Any, specs: Dict[str, tf.TensorSpec]) -> Tuple[Dict[str, Any], bool]:
    """(inputs, row format?) from a :predict body, TF Serving's "instances" (row) or "inputs" (columnar), for a
    signature with input `specs`."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object with \"instances\" or \"inputs\"")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("request must have exactly one of \"instances\" (row format) or \"inputs\" (columnar)")
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadRequest("\"instances\" must be a non-empty list")
        named = [isinstance(i, dict) and not set(i) <= {"b64"} for i in instances]
        if all(named):
            keys = set(instances[0])
            for n, instance in enumerate(instances):
                if set(instance) != keys:
                    raise BadRequest(f"instance {n} has inputs {sorted(instance)}, instance 0 has {sorted(keys)}")
            return {k: [i[k] for i in instances] for k in keys}, True
        if any(named):
            raise BadRequest("\"instances\" mixes named objects and bare values")
        if len(specs) != 1:
            raise BadRequest(f"bare instances need a signature with one input; this one takes {sorted(specs)}")
        return {next(iter(specs)): instances}, True
    inputs = body["inputs"]
    if isinstance(inputs, dict) and not set(inputs) <= {"b64"}:
        return inputs, False
    if len(specs) != 1:
        raise BadRequest(f"a bare \"inputs\" value needs a signature with one input; this one takes {sorted(specs)}")
    return {next(iter(specs)): inputs}, False


def _jsonable(array: np.ndarray):
    if array.dtype == object:
        return [_jsonable(a) for a in array] if array.ndim else _bytes_json(array.item())
    return array.tolist()


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
        return {"predictions": [{k: _jsonable(v[i]) if isinstance(v[i], np.ndarray) else _jsonable(np.array(v[i]))
                                 for k, v in outputs.items()} for i in range(n)]}
    if len(outputs) == 1:
        return {"outputs": _jsonable(next(iter(outputs.values())))}
    return {"outputs": {k: _jsonable(v) for k, v in outputs.items()}}


# ---------------------------------------------------------------- classify / regress (tf.Example signature)
def _feature(name: str, value) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    values = [decode_b64(v) for v in values]
    if all(isinstance(v, bool) for v in values) or not values:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if all(isinstance(v, (str, bytes)) for v in values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode("utf-8") if isinstance(v, str) else v for v in values]))
    raise BadRequest(f"feature '{name}': values must be all numbers or all text, got {value!r:.60}")


def examples_from_json(body: Any) -> List[bytes]:
    if not isinstance(body, dict) or not isinstance(body.get("examples"), list) or not body["examples"]:
        raise BadRequest("request body must have a non-empty \"examples\" list")
    context = body.get("context", {})
    if not isinstance(context, dict):
        raise BadRequest("\"context\" must be an object of features")
    serialized = []
    for n, example in enumerate(body["examples"]):
        if not isinstance(example, dict):
            raise BadRequest(f"example {n} is not an object of features")
        features = {k: _feature(k, v) for k, v in {**context, **example}.items()}
        serialized.append(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
    return serialized


# TF Serving's Classify and Regress run only signatures made for them (tensorflow_serving/servables/tensorflow/
# classifier.cc GetClassificationSignatureDef / PreProcessClassification, regressor.cc likewise): the method name,
# one input "inputs" of serialized tf.Examples, outputs "classes" and/or "scores" (classify) or "outputs" (regress).
# The same rules here, with the same messages, so a client that works here works against TF Serving itself.
METHOD_NAMES = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress",
                "predict": "tensorflow/serving/predict"}
METHOD_OUTPUTS = {"classify": ("classes", "scores"), "regress": ("outputs",)}


def method_signature_outputs(model, signature_name: str, serialized: List[bytes], method: str) -> Dict[str, np.ndarray]:
    definition = model.signature_defs.get(signature_name)
    if definition is None:
        raise BadRequest(f"No signature was found with the name: {signature_name}")
    kind = "classification" if method == "classify" else "regression"
    if definition.method_name != METHOD_NAMES[method]:
        raise BadRequest(f"Expected {kind} signature method_name to be {METHOD_NAMES[method]}. "
                         f"Was: {definition.method_name}")
    if list(definition.inputs) != ["inputs"]:
        raise BadRequest(f"Expected one input Tensor named 'inputs' in {kind} signature {signature_name!r}, "
                         f"found {sorted(definition.inputs)}")
    if not set(definition.outputs) or not set(definition.outputs) <= set(METHOD_OUTPUTS[method]):
        raise BadRequest(f"{kind} signature {signature_name!r} must have outputs among "
                         f"{list(METHOD_OUTPUTS[method])}, found {sorted(definition.outputs)}")
    return run(model, signature_name, {"inputs": serialized})


def classify(outputs: Dict[str, np.ndarray]) -> List[List[Tuple[str, float]]]:
    """Per example, (class, score) pairs from a classify signature's "classes" and "scores"."""
    scores, classes = outputs.get("scores"), outputs.get("classes")
    rows = len(scores) if scores is not None else len(classes)
    result = []
    for i in range(rows):
        n = scores.shape[1] if scores is not None else classes.shape[1]
        result.append([(classes[i][j].decode("utf-8", "replace") if classes is not None else "",
                        float(scores[i][j]) if scores is not None else 0.0) for j in range(n)])
    return result


def regress(outputs: Dict[str, np.ndarray]) -> List[float]:
    values = outputs["outputs"]
    if values.ndim <= 1 or (values.ndim == 2 and values.shape[1] == 1):
        return [float(v) for v in values.reshape(-1)]
    raise BadRequest(f"regress needs one value per example; this signature gives shape {list(values.shape[1:])}")
