"""Send raw features, JPEG files or text to a served model, over REST or gRPC, and print the predictions.

    python -m serving.client titanic --features '{"Age": 22, "Fare": 7.25, "Pclass": 3, "SibSp": 1, "Parch": 0,
                                                  "Sex": "male", "Embarked": "S", "Ticket": "A/5 21171", "Cabin": ""}'
    python -m serving.client titanic --csv data/raw/titanic/test.csv
    python -m serving.client cifar2 --image a.jpg b.jpg [--grpc]
    python -m serving.client imdb --text "A wonderful film" "Dreadful"
    python -m serving.client covid --features '{"window": [[...3 numbers...] x 8]}'

Works against this project's server or a real TensorFlow Serving (both speak the same API); uses the models'
`serving_raw` signature (override with --signature).
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import math
import sys
import urllib.error
import urllib.request
from typing import Dict, List

from core.layout import RAW_SIGNATURE


class ClientError(RuntimeError):
    pass


def input_dtypes(args, port: int) -> Dict[str, str]:
    """{input: TF dtype name} of the signature, from the server's model metadata (REST or gRPC)."""
    if args.grpc:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"{args.host}:{port}"))
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = args.model
        try:
            response = stub.GetModelMetadata(request, timeout=60)
        except grpc.RpcError as exc:
            raise ClientError(f"gRPC {exc.code().name}: {exc.details()}") from None
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        sig = signatures.signature_def[args.signature]
        return {k: tf.dtypes.as_dtype(v.dtype).name for k, v in sig.inputs.items()}
    url = f"http://{args.host}:{port}/v1/models/{args.model}/metadata"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            meta = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ClientError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach http://{args.host}:{port}: {exc.reason}") from None
    sig = meta["metadata"]["signature_def"]["signature_def"].get(args.signature)
    if sig is None:
        raise ClientError(f"the {args.model} model has no signature {args.signature!r}")
    return {k: v["dtype"][3:].lower() for k, v in sig["inputs"].items()}  # DT_FLOAT -> float


def instances_from_args(args, port: int) -> List[Dict]:
    if args.features:
        value = json.loads(args.features)
        return value if isinstance(value, list) else [value]
    if args.image:
        return [{"image_raw": {"b64": base64.b64encode(open(p, "rb").read()).decode()}} for p in args.image]
    if args.text:
        return [{"text": t} for t in args.text]
    if args.csv:
        return _csv_instances(args.csv, input_dtypes(args, port))
    raise ClientError("give --features, --csv, --image or --text")


def _csv_instances(path: str, dtypes: Dict[str, str]) -> List[Dict]:
    """Rows of a CSV as raw features, typed as the model's inputs; an empty float cell is NaN (missing)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        absent = sorted(k for k in dtypes if k not in (reader.fieldnames or []))
        if absent:
            raise ClientError(f"{path}: columns {absent} missing (the model takes {sorted(dtypes)})")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            instance = {}
            for k, dtype in dtypes.items():
                text = row[k]
                try:
                    if dtype.startswith("float"):
                        instance[k] = float(text) if text != "" else math.nan
                    elif dtype.startswith("int"):
                        instance[k] = int(text)
                    else:
                        instance[k] = text
                except ValueError:
                    raise ClientError(f"{path}:{lineno}: column {k}: {text!r} is not a {dtype}") from None
            rows.append(instance)
    return rows


def rest_predict(host: str, port: int, model: str, instances: List[Dict], signature: str, version=None) -> dict:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    body = json.dumps({"signature_name": signature, "instances": instances}).encode()
    request = urllib.request.Request(
        f"http://{host}:{port}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ClientError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise ClientError(f"cannot reach http://{host}:{port}: {exc.reason}") from None


def grpc_predict(host: str, port: int, model: str, instances: List[Dict], signature: str, version=None) -> dict:
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"{host}:{port}"))
    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = model
    try:
        meta = stub.GetModelMetadata(meta_request, timeout=60)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        meta.metadata["signature_def"].Unpack(signatures)
        inputs = signatures.signature_def[signature].inputs
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model, signature
        if version:
            request.model_spec.version.value = int(version)
        for name, info in inputs.items():
            values = [_unb64(i[name]) for i in instances]
            dtype = tf.dtypes.as_dtype(info.dtype)
            request.inputs[name].CopyFrom(
                tf.make_tensor_proto(
                    np.array(values, dtype=object if dtype == tf.string else dtype.as_numpy_dtype), dtype=dtype
                )
            )
        response = stub.Predict(request, timeout=60)
    except grpc.RpcError as exc:
        raise ClientError(f"gRPC {exc.code().name}: {exc.details()}") from None
    outputs = {k: tf.make_ndarray(v).tolist() for k, v in response.outputs.items()}
    return {
        "model_version": response.model_spec.version.value,
        "predictions": next(iter(outputs.values())) if len(outputs) == 1 else outputs,
    }


def _unb64(value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    return value.encode() if isinstance(value, str) else value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--features", help="a JSON object (or list of them) of raw features")
    what.add_argument("--csv", help="a CSV file with the raw feature columns")
    what.add_argument("--image", nargs="+", help="image files (cifar2)")
    what.add_argument("--text", nargs="+", help="review texts (imdb)")
    parser.add_argument("--grpc", action="store_true", help="use gRPC (default: REST)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: 8501 (REST) or 8500 (gRPC)")
    parser.add_argument("--version", help="a model version (default: the newest)")
    parser.add_argument("--signature", default=RAW_SIGNATURE)
    args = parser.parse_args(argv)
    try:
        port = args.port or (8500 if args.grpc else 8501)
        instances = instances_from_args(args, port)
        call = grpc_predict if args.grpc else rest_predict
        result = call(args.host, port, args.model, instances, args.signature, args.version)
    except (ClientError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
