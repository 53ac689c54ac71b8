"""TF Serving's gRPC API (tensorflow-serving-api stubs) over a Repository: PredictionService (Predict, Classify,
Regress, GetModelMetadata) and ModelService.GetModelStatus, so a standard TF Serving gRPC client works."""
from __future__ import annotations

import concurrent.futures
from typing import Optional

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2, status_pb2)


from serving import inference
from serving.repository import NotFound, Repository

MAX_MESSAGE_BYTES = 64 << 20


def _version(model_spec) -> Optional[int]:
    return model_spec.version.value if model_spec.HasField("version") else None


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


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: Repository):
        self.repository = repository

    def _model(self, model_spec, context):
        try:
            return self.repository.get(model_spec.name, _version(model_spec))
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))

    def Predict(self, request, context):
        model = self._model(request.model_spec, context)
        signature = request.model_spec.signature_name or inference.DEFAULT_SIGNATURE
        try:
            inputs = {k: tf.make_ndarray(v).tolist() if tf.as_dtype(v.dtype) != tf.string
                      else [x for x in tf.make_ndarray(v).tolist()] for k, v in request.inputs.items()}
            outputs = inference.run(model, signature, inputs)
        except inference.BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, model, signature)
        wanted = set(request.output_filter) or set(outputs)
        for key in wanted:
            if key not in outputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown output {key!r}")
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def _example_outputs(self, request, context, interpret):
        """(model, signature, interpret(outputs)) for a Classify/Regress request over the tf.Example signature."""
        model = self._model(request.model_spec, context)
        signature = request.model_spec.signature_name or inference.DEFAULT_SIGNATURE
        try:
            return model, signature, interpret(
                inference.example_signature_outputs(model, signature, _examples(request.input)))
        except inference.BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def Classify(self, request, context):
        model, signature, rows = self._example_outputs(request, context, inference.classify)
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, model, signature)
        for row in rows:
            classification = response.result.classifications.add()
            for label, score in row:
                classification.classes.add(label=label, score=score)
        return response

    def Regress(self, request, context):
        model, signature, values = self._example_outputs(request, context, inference.regress)
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, model, signature)
        for value in values:
            response.result.regressions.add(value=value)
        return response

    def GetModelMetadata(self, request, context):
        model = self._model(request.model_spec, context)
        if list(request.metadata_field) not in ([], ["signature_def"]):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only metadata_field 'signature_def' is available")
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

    def GetModelStatus(self, request, context):
        try:
            entries = self.repository.status(request.model_spec.name, _version(request.model_spec))
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in entries:
            status = response.model_version_status.add()
            status.version = int(entry["version"])
            status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry["state"])
            status.status.CopyFrom(status_pb2.StatusProto(error_code=0 if entry["status"]["error_code"] == "OK" else 2,
                                                          error_message=entry["status"]["error_message"]))
        return response


def create_server(repository: Repository, host: str, port: int, workers: int = 8) -> grpc.Server:
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(repository), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server
