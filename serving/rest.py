"""TF Serving's REST API (paths, JSON, status codes) over a Repository, as a FastAPI app.

    GET  /v1/models/{m}[/versions/{v}]             model status
    GET  /v1/models/{m}[/versions/{v}]/metadata    signatures
    POST /v1/models/{m}[/versions/{v}]:predict     {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{m}[/versions/{v}]:classify    {"examples": [...]} (a classify signature)
    POST /v1/models/{m}[/versions/{v}]:regress     {"examples": [...]} (a regress signature)

Every error is `{"error": "..."}`, as TF Serving writes them (model_servers/http_rest_api_handler.cc): 400 for a
malformed path (a version that is not ASCII digits of an int64, an unknown verb) or bad input, 404 for an unknown
model, version or route, 405 for a method a route does not take, 413 for a request too large. Nothing a client
sends makes a 500. Responses are JSON with `NaN`/`Infinity` literals where the model outputs them, as TF Serving
writes them. Each response names the version that answered in `X-Model-Version` (TF Serving has no such field).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from serving import inference
from serving.repository import NotFound, Repository, parse_version, shown

log = logging.getLogger("serving")
DEFAULT_MAX_REQUEST_BYTES = 64 << 20
_PATH = re.compile(r"^(?P<model>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>/metadata|:[A-Za-z]*)?$")
VERBS = (":predict", ":classify", ":regress")


class Malformed(ValueError):
    """A request path TF Serving would not match (400)."""


class TFServingJSON(Response):
    """JSON as TF Serving writes it: NaN and Infinity as literals; ASCII-escaped so that any text, a lone
    surrogate a client sent included, can be written back."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _error(status: int, message: str) -> TFServingJSON:
    return TFServingJSON({"error": message}, status_code=status)


def _parse_path(method: str, path: str) -> Tuple[str, Optional[int], str]:
    match = _PATH.match(path)
    if not match or (match.group("rest") or "").startswith(":") and match.group("rest") not in VERBS:
        raise Malformed(f"Malformed request: {method} /v1/models/{shown(path, 200)}")
    version = match.group("version")
    try:
        number = parse_version(version) if version is not None else None
    except ValueError as exc:
        raise Malformed(f"Malformed request: {exc}") from None
    return match.group("model"), number, match.group("rest") or ""


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read in chunks into a list (linear in its size), refused once past `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise OverflowError(f"request of {declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OverflowError(f"request is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(repository: Repository, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> FastAPI:
    app = FastAPI(title="TF Serving-compatible REST API", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"Malformed request: {request.method} {shown(request.url.path, 200)}: no such route",
                   405: f"{request.method} is not allowed on {shown(request.url.path, 200)}"}.get(
            exc.status_code, str(exc.detail))
        return _error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _error(400, "Malformed request")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):  # a bug, never the client's input
        log.error("internal error on %s %s: %s", request.method, shown(request.url.path, 200),
                  repository.redact(repr(exc)))
        return _error(500, "internal error")

    @app.get("/v1/models/{path:path}")
    async def get_model(path: str):
        try:
            name, version, rest = _parse_path("GET", path)
            if rest in VERBS:
                return _error(405, f"{rest} takes POST")
            if rest == "/metadata":
                model = await run_in_threadpool(repository.get, name, version)
                return TFServingJSON({
                    "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                    "metadata": {"signature_def": {"signature_def": model.metadata_json()}},
                }, headers={"X-Model-Version": str(model.version)})
            return TFServingJSON({"model_version_status": await run_in_threadpool(repository.status, name, version)})
        except Malformed as exc:
            return _error(400, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))

    @app.post("/v1/models/{path:path}")
    async def post_model(path: str, request: Request):
        try:
            name, version, verb = _parse_path("POST", path)
            if verb not in VERBS:
                raise Malformed(f"Malformed request: POST /v1/models/{shown(path, 200)}: expected :predict, "
                                f":classify or :regress")
        except Malformed as exc:
            return _error(400, str(exc))
        try:
            raw = await _read_body(request, max_request_bytes)
        except OverflowError as exc:
            return _error(413, str(exc))
        except ClientDisconnect:
            log.info("client went away before sending the whole request (%s)", shown(path, 100))
            return _error(400, "client disconnected")
        # Loading an older version takes seconds and the model runs for a while: both off the event loop.
        try:
            model = await run_in_threadpool(repository.get, name, version)
        except NotFound as exc:
            return _error(404, str(exc))
        try:
            payload = await run_in_threadpool(_answer, model, verb, raw)
        except inference.BadRequest as exc:
            return _error(400, str(exc))
        return TFServingJSON(payload, headers={"X-Model-Version": str(model.version)})

    return app


def _answer(model, verb: str, raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except RecursionError:
        raise inference.BadRequest("JSON parse error: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise inference.BadRequest(f"JSON parse error: {exc}") from None
    try:
        return _answer_json(model, verb, body)
    except RecursionError:
        raise inference.BadRequest("request is nested too deeply") from None


def _answer_json(model, verb: str, body) -> dict:
    if not isinstance(body, dict):
        raise inference.BadRequest("request body must be a JSON object")
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):
        raise inference.BadRequest(f"\"signature_name\" must be a string, got {type(signature).__name__}")
    signature = signature or inference.DEFAULT_SIGNATURE
    if verb == ":predict":
        try:
            fn = model.signature(signature)
        except KeyError as exc:
            raise inference.BadRequest(str(exc.args[0])) from None
        inputs, row_format = inference.rest_inputs(body, fn)
        return inference.rest_outputs(inference.run(model, signature, inputs), row_format)
    serialized = inference.examples_from_json(body)
    if verb == ":classify":
        rows = inference.classify(inference.method_signature_outputs(model, signature, serialized, "classify"))
        return {"results": [[[label, score] for label, score in row] for row in rows]}
    return {"results": inference.regress(inference.method_signature_outputs(model, signature, serialized, "regress"))}
