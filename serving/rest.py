"""TF Serving's REST API (paths, JSON, status codes) over a Repository, as a FastAPI app.

    GET  /v1/models/{m}[/versions/{v}|/labels/{l}]             model status
    GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata    signatures
    POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict     {"instances": [...]} or {"inputs": ...}
    POST /v1/models/{m}[/versions/{v}|/labels/{l}]:classify    {"examples": [...]} (a classify signature)
    POST /v1/models/{m}[/versions/{v}|/labels/{l}]:regress     {"examples": [...]} (a regress signature)
    GET  <monitoring path>                                     Prometheus text (--monitoring_config_file)

Requests are dispatched as TF Serving's HTTP front does, quirks included: libevent 2.1.12 refuses a method
other than GET, POST, HEAD, PUT, DELETE, OPTIONS and PATCH (501, its HTML page; evhttp_server.cc:115, http.c
evhttp_handle_request); the monitoring path is served to any method; a path outside `/v1/` is libevent's HTML
404 (http_server.cc RestApiRequestDispatcher::Dispatch, kHTTPRestApiHandlerPathRegex); OPTIONS is a CORS
preflight (http_server.cc ProcessRequest); everything else is matched by the REST handler's two patterns on the
path with its query (http_rest_api_util.cc:31-35, case-insensitive) and any request neither pattern takes, a method
they do not take included, is 400 `Malformed request: <METHOD> <path>` (http_rest_api_handler.cc ProcessRequest).
Errors are `{"error": "..."}`; nothing a client sends makes a 500. Responses are JSON with `NaN`/`Infinity`
literals where the model outputs them, as TF Serving writes them. Each response names the version that answered
in `X-Model-Version` (TF Serving has no such field).

A plain ASGI app, no web framework: the API is two routes, and a framework's routing, request objects and
threadpool hops cost more per request than the model itself (bench/serving_bench.py). The work of a request
(finding the model, parsing JSON, running the signature, writing JSON) runs in one hop to a thread pool, so the
event loop only moves bytes and TensorFlow's kernels run on every core under concurrency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import math
import re
import time
import urllib.parse
from typing import Callable, List, Optional, Tuple

from serving import inference
from serving.batching import BatchRefused
from serving.metrics import METRICS
from serving.repository import NotFound, Repository, shown

log = logging.getLogger("serving")
DEFAULT_MAX_REQUEST_BYTES = 64 << 20
DEFAULT_THREADS = 8
INLINE_BYTES = 16 << 10  # requests up to this size skip the thread pool (see RestApp._route)
# TF Serving's patterns (util/net_http and model_servers, cited above); RE2's \\d is ASCII, hence [0-9]
EVHTTP_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH")
HANDLER_PATH = re.compile(r"(?i)/v1/.*")
PREDICTION_PATH = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)"
)
STATUS_PATH = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?"
)
INT64_MAX = (1 << 63) - 1
# TF Serving's status code names (error::Code_Name) for the HTTP statuses this server answers with, for metrics
STATUS_NAMES = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# A status code as HTTP (model_servers/http_server.cc ToHTTPStatusCode)
HTTP_STATUS = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
VERBS = (":predict", ":classify", ":regress")
# libevent 2.1.12's error page (http.c evhttp_send_error, ERR_FORMAT; evhttp_send_page_ sets these headers)
LIBEVENT_PAGE = "<HTML><HEAD>\n<TITLE>{code} {reason}</TITLE>\n</HEAD><BODY>\n<H1>{reason}</H1>\n</BODY></HTML>\n"
LIBEVENT_HEADERS = [(b"content-type", b"text/html"), (b"connection", b"close")]
Answer = Tuple[int, bytes, List[Tuple[bytes, bytes]]]  # status, JSON body, extra headers


class Malformed(ValueError):
    """A request TF Serving's REST handler refuses (400). `empty`: it refuses it before writing any JSON (a version
    that does not fit an int64: ParseModelInfo's error returns before MakeJsonFromStatus), so the body is empty."""

    def __init__(self, message: str, empty: bool = False):
        super().__init__(message)
        self.empty = empty


@dataclasses.dataclass
class Route:
    model: str  # percent-decoded, as ParseModelInfo's DecodeArg does; "" when the path names none
    version: Optional[int]
    label: Optional[str]
    api: str  # predict, classify, regress; status or metadata


class ClientGone(ConnectionError):
    """The client disconnected before sending its whole request."""


def render(content) -> bytes:
    """JSON as TF Serving writes it: NaN and Infinity as literals; ASCII-escaped so that any text, a lone
    surrogate a client sent included, can be written back."""
    return json.dumps(content, allow_nan=True, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _json(status: int, content, version: Optional[int] = None) -> Answer:
    headers = [(b"x-model-version", str(version).encode())] if version is not None else []
    return status, render(content), headers


def _error(status: int, message: str) -> Answer:
    return _json(status, {"error": message})


def _libevent_error(code: int, reason: str) -> Answer:
    return code, LIBEVENT_PAGE.format(code=code, reason=reason).encode("latin-1"), list(LIBEVENT_HEADERS)


def uri_path(scope) -> str:
    """The path as TF Serving matches it: as sent, not percent-decoded, with its query (evhttp_request.cc,
    ParsedEvRequest::decode builds path_and_query; uri_path() returns it)."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    query = scope.get("query_string") or b""
    return raw.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _decoded(text: Optional[str]) -> Optional[str]:
    return None if not text else urllib.parse.unquote(text, errors="surrogateescape")


def parse_route(method: str, uri: str) -> Route:
    """What TF Serving's REST handler makes of a request (http_rest_api_util.cc ParseModelInfo and
    http_rest_api_handler.cc ProcessRequest): Malformed for what neither of its patterns takes."""
    malformed = f"Malformed request: {method} {shown(uri, 200)}"
    if method == "POST":
        match = PREDICTION_PATH.fullmatch(uri)
    elif method == "GET":
        match = STATUS_PATH.fullmatch(uri)
    else:  # HEAD, PUT, DELETE, PATCH: ProcessRequest dispatches POST and GET only
        match = None
    if match is None:
        raise Malformed(malformed)
    model, version, label, rest = match.groups()
    if version is not None and int(version) > INT64_MAX:  # absl::SimpleAtoi fails
        raise Malformed(f"Failed to convert version: {version} to numeric.", empty=True)
    number = int(version) if version is not None else None
    if method == "POST":
        if rest not in ("classify", "regress", "predict"):  # the pattern is case-insensitive, the dispatch is not
            raise Malformed(malformed)
        api = rest
    else:
        api = "metadata" if rest == "metadata" else "status"  # /METADATA matches, and is a status request
    return Route(_decoded(model) or "", number, _decoded(label), api)


async def _read_body(scope, receive, limit: int) -> bytes:
    """The body, read in chunks into a list (linear in its size), refused once past `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise OverflowError(f"request of {value.decode()} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise OverflowError(f"request is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RestApp:
    """The ASGI app: `on_startup` callables run once the server listens (uvicorn's lifespan startup).

    `metrics_path`: where Prometheus text is served (None: nowhere, as TF Serving without a monitoring config).
    `batching`: requests go through inference's batch scheduler, so they must wait in pool threads, never on the
    event loop (a loop thread waiting for a batch would keep the batch's other requests from arriving)."""

    def __init__(
        self,
        repository: Repository,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        threads: int = DEFAULT_THREADS,
        metrics_path: Optional[str] = None,
        batching: bool = False,
    ):
        self.repository = repository
        self.max_request_bytes = max_request_bytes
        self.metrics_path = metrics_path
        self.batching = batching
        self.on_startup: List[Callable[[], None]] = []
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rest")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":  # a websocket: not part of the API
            return await send({"type": "websocket.close", "code": 1008})
        started = time.perf_counter()
        try:
            status, body, headers = await self._route(scope, receive)
        except Exception as exc:  # noqa: BLE001 - a bug, never the client's input: logged, and a clean 500
            log.error(
                "internal error on %s %s: %s",
                scope.get("method"),
                shown(scope.get("path", ""), 200),
                self.repository.redact(repr(exc)),
            )
            status, body, headers = _error(500, "internal error")
        model, api = scope.get("tfs.model"), scope.get("tfs.api", "")
        if model is not None:  # TF Serving counts every /v1/models request (http_server.cc:187-201)
            METRICS.request(
                model,
                api,
                "REST",
                STATUS_NAMES.get(status, "UNKNOWN"),
                (time.perf_counter() - started) * 1e6,
                scope.get("tfs.version", ""),
                scope.get("tfs.signature", ""),
            )
        if not scope.get("tfs.bare") and not any(name == b"content-type" for name, _ in headers):
            headers = [(b"content-type", b"application/json"), *headers]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for callback in self.on_startup:
                    callback()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=False)
                return await send({"type": "lifespan.shutdown.complete"})

    def _metric_name(self, name: str) -> str:
        # a label per served model only: a name from a request would let anyone grow the metrics without bound
        return name if self.repository.is_served(name) else "<unknown>"

    async def _route(self, scope, receive) -> Answer:
        method, uri = scope["method"], uri_path(scope)
        if method not in EVHTTP_METHODS:
            return _libevent_error(501, "Not Implemented")
        raw_path = uri.split("?", 1)[0].split("#", 1)[0]
        if self.metrics_path is not None and raw_path == self.metrics_path:  # any method (ProcessPrometheusRequest)
            if uri != self.metrics_path:
                message = f"Unexpected path: {shown(uri, 200)}. Should be {self.metrics_path}"
                return 400, message.encode("utf-8"), [(b"content-type", b"text/plain")]
            return 200, METRICS.render().encode("utf-8"), [(b"content-type", b"text/plain")]
        if not HANDLER_PATH.fullmatch(uri):
            return _libevent_error(404, "Not Found")
        if method == "OPTIONS":  # a CORS preflight: no body, no content type
            scope["tfs.bare"] = True
            origin = dict(scope["headers"]).get(b"origin", b"").decode("latin-1")
            return (200 if re.search(r"https?://", origin) else 400), b"", []
        try:
            found = parse_route(method, uri)
        except Malformed as exc:
            return (400, b"", []) if exc.empty else _error(400, str(exc))
        name, version, label = found.model, found.version, found.label
        if name:
            scope["tfs.model"] = self._metric_name(name)
        scope["tfs.api"] = found.api if method == "POST" else ""
        if method == "GET":
            if not name:  # ProcessModelStatusRequest, ProcessModelMetadataRequest
                return _error(400, "Missing model name in request.")
            rest = "/metadata" if found.api == "metadata" else ""
            return await self._in_pool(self._describe, name, version, label, rest)
        rest = ":" + found.api
        try:
            raw = await _read_body(scope, receive, self.max_request_bytes)
        except OverflowError as exc:
            return _error(413, str(exc))
        except ClientGone:
            log.info("client went away before sending the whole request (%s)", shown(uri, 100))
            return _error(400, "client disconnected")
        if self.batching and rest == ":predict" and len(raw) <= INLINE_BYTES:
            # With batching, a small predict is checked here on the loop and waits for its batch as a future: no
            # pool thread blocked per request, so the batch threads get the cores (bench/serving_bench.py)
            return await self._predict_batched(name, version, label, raw, scope)
        if not self.batching and len(raw) <= INLINE_BYTES and self.repository.loaded(name, version, label) is not None:
            # A small request for a model in memory runs on the loop thread: handing it to a pool thread and back
            # costs more than a batch-1 Titanic prediction (bench/serving_bench.py), and the GIL would keep the
            # threads from running its Python parts at once anyway. Several processes (--workers) use more cores.
            return self._predict(name, version, label, rest, raw, scope)
        return await self._in_pool(self._predict, name, version, label, rest, raw, scope)

    async def _predict_batched(self, name, version, label, raw: bytes, scope) -> Answer:
        try:
            model = self.repository.get(name, version, label)
        except NotFound as exc:
            return _error(404, str(exc))
        scope["tfs.version"] = str(model.version)
        try:
            prepared, row_format = _prepare_predict(model, raw, scope)
        except inference.BadRequest as exc:
            return _error(HTTP_STATUS.get(exc.code, 400), str(exc))
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def resolve(outputs, error):  # on the batch thread
            loop.call_soon_threadsafe(_settle, future, outputs, error)

        try:
            queued = inference.BATCHER.submit(prepared.key, prepared.arrays, prepared.call, resolve)
        except BatchRefused as exc:
            return _error(HTTP_STATUS.get(exc.code, 503), str(exc))
        if not queued:  # no batch dimension, or split across batches: the blocking path
            return await self._in_pool(self._predict, name, version, label, ":predict", raw, scope)
        outputs, error = await future
        if isinstance(error, inference.BadRequest):
            return _error(HTTP_STATUS.get(error.code, 400), str(error))
        if isinstance(error, BatchRefused):
            return _error(HTTP_STATUS.get(error.code, 503), str(error))
        if error is not None:
            raise error
        prepared.answered()
        return _json(200, inference.rest_outputs(outputs, row_format), model.version)

    async def _in_pool(self, fn, *args) -> Answer:
        # Reading a status walks the serving root and the model runs for a while: both off the event loop.
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _describe(self, name: str, version: Optional[int], label: Optional[str], rest: str) -> Answer:
        try:
            if rest == "/metadata":
                model = self.repository.get(name, version, label)
                return _json(
                    200,
                    {
                        "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                        "metadata": {"signature_def": {"signature_def": model.metadata_json()}},
                    },
                    model.version,
                )
            return _json(200, {"model_version_status": self.repository.status(name, version, label)})
        except NotFound as exc:
            return _error(404, str(exc))

    def _predict(
        self,
        name: str,
        version: Optional[int],
        label: Optional[str],
        verb: str,
        raw: bytes,
        scope: Optional[dict] = None,
    ) -> Answer:
        try:
            model = self.repository.get(name, version, label)
        except NotFound as exc:
            return _error(404, str(exc))
        if scope is not None:
            scope["tfs.version"] = str(model.version)
        try:
            return _json(200, _answer(model, verb, raw, scope), model.version)
        except inference.BadRequest as exc:
            return _error(HTTP_STATUS.get(exc.code, 400), str(exc))
        except BatchRefused as exc:
            return _error(HTTP_STATUS.get(exc.code, 503), str(exc))


def create_app(
    repository: Repository,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    threads: int = DEFAULT_THREADS,
    metrics_path: Optional[str] = None,
    batching: bool = False,
) -> RestApp:
    return RestApp(repository, max_request_bytes, threads, metrics_path, batching)


def _settle(future, outputs, error) -> None:
    if not future.done():  # the client may have gone and the request been cancelled
        future.set_result((outputs, error))


class _TooBig(ValueError):
    pass


def _finite(text: str) -> float:
    """A JSON number as rapidjson reads it: one beyond a double's range is a parse error there (TF Serving's
    ParseJson), where Python would make it Infinity; the NaN and Infinity literals stay allowed
    (kParseNanAndInfFlag) and never reach here."""
    value = float(text)
    if value in (math.inf, -math.inf):
        raise _TooBig()
    return value


def parse_json(raw: bytes):
    try:
        return json.loads(raw, parse_float=_finite)
    except _TooBig:
        raise inference.BadRequest("JSON Parse error: Number too big to be stored in double") from None


def _body(raw: bytes):
    try:
        return parse_json(raw)
    except inference.BadRequest:
        raise
    except RecursionError:
        raise inference.BadRequest("JSON parse error: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise inference.BadRequest(f"JSON parse error: {exc}") from None


def _answer(model, verb: str, raw: bytes, scope: Optional[dict] = None) -> dict:
    body = _body(raw)
    try:
        return _answer_json(model, verb, body, scope)
    except RecursionError:
        raise inference.BadRequest("request is nested too deeply") from None


def _signature(model, body, scope: Optional[dict]) -> str:
    if not isinstance(body, dict):
        raise inference.BadRequest("request body must be a JSON object")
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):
        raise inference.BadRequest(f'"signature_name" must be a string, got {type(signature).__name__}')
    signature = signature or inference.DEFAULT_SIGNATURE
    if scope is not None:
        scope["tfs.signature"] = signature if signature in model.signature_defs else "<unknown>"
    return signature


def _prepare_predict(model, raw: bytes, scope: Optional[dict]):
    """(Prepared, row format?) for a :predict body: everything but the signature call."""
    body = _body(raw)
    try:
        signature = _signature(model, body, scope)
        inputs, row_format = inference.rest_inputs(body, inference.signature_inputs(model, signature).specs)
        return inference.prepare(model, signature, inputs), row_format
    except RecursionError:
        raise inference.BadRequest("request is nested too deeply") from None


def _answer_json(model, verb: str, body, scope: Optional[dict] = None) -> dict:
    signature = _signature(model, body, scope)
    if verb == ":predict":
        inputs, row_format = inference.rest_inputs(body, inference.signature_inputs(model, signature).specs)
        return inference.rest_outputs(inference.run(model, signature, inputs), row_format)
    serialized = inference.examples_from_json(body)
    if verb == ":classify":
        rows = inference.classify(inference.method_signature_outputs(model, signature, serialized, "classify"))
        return {"results": [[[label, score] for label, score in row] for row in rows]}
    return {"results": inference.regress(inference.method_signature_outputs(model, signature, serialized, "regress"))}
