"""TF Serving's REST API (paths, JSON, status codes) over a Repository, as a FastAPI app.

    GET  /v1/models/{m}[/versions/{v}]             model status
    GET  /v1/models/{m}[/versions/{v}]/metadata    signatures
    POST /v1/models/{m}[/versions/{v}]:predict     {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{m}[/versions/{v}]:classify    {"examples": [...]} (the tf.Example signature)
    POST /v1/models/{m}[/versions/{v}]:regress

Errors are `{"error": "..."}` with 404 (unknown model/version), 400 (bad input) or 413 (request too large).
Each response names the version that answered in the `X-Model-Version` header (TF Serving has no such field).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serving import inference
from serving.repository import NotFound, Repository

log = logging.getLogger("serving")
DEFAULT_MAX_REQUEST_BYTES = 64 << 20
_PATH = re.compile(r"^(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>/metadata|:predict|:classify|:regress)?$")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse_path(path: str) -> Tuple[str, Optional[int], str]:
    match = _PATH.match(path)
    if not match:
        raise NotFound(f"Malformed request: {path}")
    version = match.group("version")
    if version is not None and not version.isdigit():
        raise NotFound(f"Malformed request: version {version!r} is not a number")
    return match.group("model"), int(version) if version is not None else None, match.group("rest") or ""


def create_app(repository: Repository, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> FastAPI:
    app = FastAPI(title="TF Serving-compatible REST API", docs_url=None, redoc_url=None)

    @app.get("/v1/models/{path:path}")
    def get_model(path: str):
        try:
            name, version, rest = _parse_path(path)
            if rest == "/metadata":
                model = repository.get(name, version)
                return JSONResponse({
                    "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                    "metadata": {"signature_def": {"signature_def": model.metadata_json()}},
                }, headers={"X-Model-Version": str(model.version)})
            if rest:
                return _error(405, f"{rest} takes POST")
            return {"model_version_status": repository.status(name, version)}
        except NotFound as exc:
            return _error(404, str(exc))

    @app.post("/v1/models/{path:path}")
    async def post_model(path: str, request: Request):
        try:
            name, version, verb = _parse_path(path)
        except NotFound as exc:
            return _error(404, str(exc))
        if verb not in (":predict", ":classify", ":regress"):
            return _error(404, f"Malformed request: POST /v1/models/{path}: expected :predict, :classify or :regress")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            return _error(413, f"request of {declared} bytes is over the {max_request_bytes}-byte limit")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_request_bytes:
                return _error(413, f"request is over the {max_request_bytes}-byte limit")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"JSON parse error: {exc}")
        try:
            model = repository.get(name, version)
        except NotFound as exc:
            return _error(404, str(exc))
        # The model runs in a worker thread: TensorFlow releases the GIL, the event loop keeps accepting.
        from starlette.concurrency import run_in_threadpool

        try:
            payload = await run_in_threadpool(_answer, model, verb, body)
        except inference.BadRequest as exc:
            return _error(400, str(exc))
        return JSONResponse(payload, headers={"X-Model-Version": str(model.version)})

    return app


def _answer(model, verb: str, body) -> dict:
    if not isinstance(body, dict):
        raise inference.BadRequest("request body must be a JSON object")
    signature = body.get("signature_name") or inference.DEFAULT_SIGNATURE
    if verb == ":predict":
        try:
            fn = model.signature(signature)
        except KeyError as exc:
            raise inference.BadRequest(str(exc.args[0])) from None
        inputs, row_format = inference.rest_inputs(body, fn)
        return inference.rest_outputs(inference.run(model, signature, inputs), row_format)
    serialized = inference.examples_from_json(body)
    outputs = inference.example_signature_outputs(model, signature, serialized)
    if verb == ":classify":
        return {"results": [[[label, score] for label, score in row] for row in inference.classify(outputs)]}
    return {"results": inference.regress(outputs)}
