"""A TF Serving-compatible model server over the serving directory: REST (uvicorn, a plain ASGI app) and gRPC.

    python -m serving.server [--serving-root outputs/serving] [--rest-port 8501] [--grpc-port 8500]
                             [--host 127.0.0.1] [--poll-seconds 2] [--workers 1]     (or: make serve)
                             [--log-requests DIR [--log-sample-rate R] [--log-max-mb M] [--log-file-mb F]
                              [--log-rotate-seconds S]]            (or: make serve LOG_REQUESTS=DIR)

Design notes: docs/design-notes.md, serving/server.py."""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

from core import tf_serving_config
from core import tf_serving_config as tfs
from core.layout import default_serving_dir
from core.private_files import NotPrivate, private_folder
from core.quiet import quiet_native_startup
from serving import request_log
from serving.batching import BatchScheduler
from serving.metrics import METRICS, model_state_gauge

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_MAX_REQUEST_MB = 64
BANNERS = (
    "serving root ",
    "gRPC listening on ",
    "REST listening on ",
    "logging requests under ",
    "metrics at ",
    "version labels: ",
    "batching: ",
)


def _bind_rest(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"error: cannot bind REST to {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _grpc_port_free(host: str, port: int) -> int:
    """`port` (a free one for 0), after checking that no program holds it: with SO_REUSEPORT, the workers'
    bind would not notice another server on it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(f"error: cannot bind gRPC to {host}:{port}: {exc.strerror}") from None
        return probe.getsockname()[1]


def _stop_with_parent() -> None:
    """In a worker, before it runs: SIGTERM when this process dies, however it dies (Linux prctl
    PR_SET_PDEATHSIG), so a killed server leaves no worker holding the ports."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: workers still stop when told to


def run_workers(args) -> int:
    """Starts --workers copies of this server on one REST socket and one gRPC port; stops them all when one
    stops or this process is told to (SIGTERM, Ctrl-C)."""
    rest_sock = _bind_rest(args.host, args.rest_port)
    grpc_port = _grpc_port_free(args.host, args.grpc_port)
    common = [
        sys.executable,
        "-m",
        "serving.server",
        "--serving-root",
        str(args.serving_root),
        "--host",
        args.host,
        "--grpc-port",
        str(grpc_port),
        "--poll-seconds",
        str(args.poll_seconds),
        "--max-request-mb",
        str(args.max_request_mb),
        "--rest-fd",
        str(rest_sock.fileno()),
        "--workers",
        "1",
        *_log_args(args),
        *_tf_serving_args(args),
    ]
    workers = [
        subprocess.Popen(
            common + ["--worker-name", f"worker {i + 1}/{args.workers}"],
            pass_fds=(rest_sock.fileno(),),
            preexec_fn=_stop_with_parent,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(args.workers)
    ]
    rest_sock.close()  # the workers hold it now
    banners = collections.Counter()
    lock = threading.Lock()

    def relay(worker):  # a banner line once, when every worker has said it: then all of them answer
        for line in worker.stdout:
            if not line.startswith(BANNERS):
                print(line, end="", flush=True)
                continue
            with lock:
                kind = next(b for b in BANNERS if line.startswith(b))
                banners[kind] += 1
                if banners[kind] == len(workers):
                    print(line, end="", flush=True)

    for worker in workers:
        threading.Thread(target=relay, args=(worker,), daemon=True).start()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping and all(w.poll() is None for w in workers):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    codes = [w.wait() for w in workers]
    failed = [(i, c) for i, c in enumerate(codes) if c not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        print(f"error: server worker(s) exited: {failed}", file=sys.stderr, flush=True)
        return 1
    return 0


def _tf_serving_args(args) -> list:
    out = []
    for name in (
        "model_config_file",
        "model_config_file_poll_wait_seconds",
        "monitoring_config_file",
        "batching_parameters_file",
        "num_request_iterations_for_warmup",
    ):
        if getattr(args, name) is not None:
            out += [f"--{name}", str(getattr(args, name))]
    out.append(f"--enable_model_warmup={'true' if args.enable_model_warmup else 'false'}")
    for name in ("allow_version_labels_for_unavailable_models", "enable_batching"):
        if getattr(args, name):
            out.append(f"--{name}")
    return out


def _tf_bool(text: str) -> bool:
    """A bool flag's value as TensorFlow's command-line flags read one (tensorflow/core/util/command_line_flags.cc
    ParseBoolFlag: true/false or 1/0, case-insensitive)."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true, false, 1 or 0")


def _add_tf_serving_flags(parser) -> None:
    tfs = parser.add_argument_group("TF Serving's flags (also with dashes)")

    def flag(name, **kw):
        tfs.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name, **kw)

    flag(
        "model_config_file",
        type=Path,
        default=os.environ.get("MODEL_CONFIG_FILE") or None,
        metavar="FILE",
        help="ModelServerConfig text proto: the models, base paths, version policies and labels to serve",
    )
    flag(
        "model_config_file_poll_wait_seconds",
        type=float,
        default=None,
        metavar="S",
        help="re-read the model config file every S seconds (TF Serving's default 0: never)",
    )
    flag(
        "allow_version_labels_for_unavailable_models",
        action="store_true",
        help="a new label (or one keeping its version) may point at a version not yet loaded",
    )
    flag(
        "monitoring_config_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="MonitoringConfig text proto: prometheus_config { enable: true path: ... }",
    )
    flag("enable_batching", action="store_true", help="merge concurrent requests into one signature call")
    flag(
        "enable_model_warmup",
        type=_tf_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="replay a version's assets.extra/tf_serving_warmup_requests before it serves (TF Serving's default: true)",
    )
    flag(
        "num_request_iterations_for_warmup",
        type=int,
        default=None,
        metavar="N",
        help="times each warm-up request is replayed; used only if > 0 (default once)",
    )
    flag(
        "batching_parameters_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="BatchingParameters text proto (max_batch_size, batch_timeout_micros, num_batch_threads, ...)",
    )


def _log_args(args) -> list:
    if not args.log_requests:
        return []
    return [
        "--log-requests",
        str(args.log_requests),
        "--log-sample-rate",
        str(args.log_sample_rate),
        "--log-max-mb",
        str(args.log_max_mb),
        "--log-file-mb",
        str(args.log_file_mb),
        "--log-rotate-seconds",
        str(args.log_rotate_seconds),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving-root", type=Path, default=default_serving_dir())
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--rest-port", type=int, default=int(os.environ.get("REST_PORT") or DEFAULT_REST_PORT))
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("GRPC_PORT") or DEFAULT_GRPC_PORT))
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--max-request-mb", type=float, default=DEFAULT_MAX_REQUEST_MB)
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("SERVING_WORKERS") or 1),
        help="server processes (one per core uses every core under concurrency)",
    )
    parser.add_argument("--rest-fd", type=int, help=argparse.SUPPRESS)  # a worker: the REST socket it inherited
    parser.add_argument("--worker-name", default="", help=argparse.SUPPRESS)  # a worker: "worker 2/4" in its logs
    logs = parser.add_argument_group("request logging (for `make skew`)")
    logs.add_argument(
        "--log-requests",
        type=Path,
        metavar="DIR",
        default=os.environ.get("LOG_REQUESTS") or None,
        help="log the inputs of answered requests under DIR/<model>/ as TFRecord files of tf.Examples",
    )
    logs.add_argument("--log-sample-rate", type=float, default=1.0, help="share of requests logged, in (0, 1]")
    logs.add_argument("--log-max-mb", type=float, default=512.0, help="per model: oldest files go beyond this")
    logs.add_argument("--log-file-mb", type=float, default=16.0, help="a file is closed at this size")
    logs.add_argument("--log-rotate-seconds", type=float, default=60.0, help="and at this age")
    _add_tf_serving_flags(parser)
    args = parser.parse_args(argv)
    _check_tf_serving_files(parser, args)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if not 0.0 < args.log_sample_rate <= 1.0:
        parser.error(f"--log-sample-rate {args.log_sample_rate} must be in (0, 1]")
    for name in ("log_max_mb", "log_file_mb", "log_rotate_seconds"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be positive")
    if args.log_requests:  # here, before any worker starts: one clear error instead of one per worker
        try:
            private_folder(args.log_requests)
            if not os.access(args.log_requests, os.W_OK):
                raise PermissionError(13, "not writable")
        except NotPrivate as exc:
            parser.error(f"--log-requests {exc}")
        except OSError as exc:
            parser.error(f"--log-requests {args.log_requests}: {exc.strerror or exc}")
    if args.workers > 1:
        return run_workers(args)  # this process only relays: it never imports TensorFlow
    return serve(args)


def _check_tf_serving_files(parser, args) -> None:
    """The files read once here, so that a bad one is one clear error before any worker starts."""

    try:
        if args.model_config_file is not None:
            tfs.read_model_config(args.model_config_file)
        args.metrics_path = (
            tfs.read_monitoring_config(args.monitoring_config_file) if args.monitoring_config_file is not None else None
        )
        if args.batching_parameters_file is not None and not args.enable_batching:
            parser.error("--batching_parameters_file needs --enable_batching (TF Serving ignores it otherwise)")
        args.batching = tfs.read_batching_parameters(args.batching_parameters_file) if args.enable_batching else None
    except tfs.ConfigError as exc:
        parser.error(str(exc))
    if args.model_config_file_poll_wait_seconds is not None and args.model_config_file_poll_wait_seconds < 0:
        parser.error("--model_config_file_poll_wait_seconds must not be negative")


def serve(args) -> int:
    """One server process: the repository, its poller, gRPC and REST."""
    # Only now, once arguments and files are checked: TensorFlow's start-up lines, which look like errors and are
    # not, are held back (VERBOSE=1 shows them)
    with quiet_native_startup():  # heavy: TensorFlow comes with these
        from serving import grpc_service, inference, rest, warmup
        from serving.repository import Poller, Repository

    # with --workers N every worker loads every model: each line says which worker it is
    who = f" [{args.worker_name}]" if args.worker_name else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s{who} %(name)s: %(message)s")

    log = None
    if args.log_requests:
        try:
            log = request_log.RequestLog(
                args.log_requests,
                args.log_sample_rate,
                int(args.log_max_mb * (1 << 20)),
                int(args.log_file_mb * (1 << 20)),
                args.log_rotate_seconds,
            )
        except OSError as exc:
            raise SystemExit(f"error: cannot log requests under {args.log_requests}: {exc.strerror or exc}") from None
        request_log.install(log)
        print(
            f"logging requests under {args.log_requests} (sample rate {args.log_sample_rate:g}, at most "
            f"{args.log_max_mb:g} MB per model)",
            flush=True,
        )

    repository = Repository(args.serving_root, args.model_config_file, args.allow_version_labels_for_unavailable_models)
    repository.on_load = METRICS.load
    if args.enable_model_warmup:
        iterations = args.num_request_iterations_for_warmup or 1

        def warm_up(model) -> None:
            done = warmup.replay(model, iterations)
            if done is not None:
                logging.getLogger("serving").info(
                    "%s version %s: warm-up replayed %d record(s) x %d in %.1f ms",
                    model.name,
                    model.version,
                    done[0],
                    iterations,
                    done[1] * 1000,
                )

        repository.warmup = warm_up
    METRICS.gauges.append(model_state_gauge(repository))
    try:
        repository.start()
    except tf_serving_config.ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    names = repository.model_names()
    where = f"model config {args.model_config_file}" if args.model_config_file else f"serving root {args.serving_root}"
    print(
        f"serving root {args.serving_root}: models {names or 'none yet (waiting for pushes)'} (from {where})",
        flush=True,
    )
    labels = {n: repository.labels(n) for n in names if repository.labels(n)}
    if labels:
        print(f"version labels: {labels}", flush=True)
    # TF Serving re-reads the model config only when --model_config_file_poll_wait_seconds is above 0 (its
    # default 0: never, main.cc); the versions under each base path are polled all the same
    # (--file_system_poll_wait_seconds, here --poll-seconds): one poller does both, at the shorter interval
    poll = args.poll_seconds
    config_wait = args.model_config_file_poll_wait_seconds or 0
    repository.config_poll_seconds = config_wait
    if args.model_config_file is not None and config_wait > 0:
        poll = min(poll, config_wait)
    poller = Poller(repository, poll)
    poller.start()

    batcher = None
    if args.batching is not None:
        batcher = BatchScheduler(args.batching, on_batch=lambda key, size: METRICS.batch(key[0], key[2], size))
        inference.BATCHER = batcher
        print(
            f"batching: max_batch_size {args.batching.max_batch_size}, batch_timeout_micros "
            f"{args.batching.batch_timeout_micros}, num_batch_threads {args.batching.num_batch_threads}",
            flush=True,
        )

    # with batching, a request waits for its batch in a server thread: enough threads for full batches
    threads = max(8, 2 * args.batching.max_batch_size) if args.batching is not None else 8
    threads = min(threads, 256)
    # Both ports are bound before any banner: a taken port stops the server before it says it listens. The REST
    # socket listens before uvicorn starts because uvicorn runs the app's startup hooks (which print the banner)
    # before binding a host/port itself (uvicorn 0.54 server.py, Server.startup: lifespan.startup() first,
    # loop.create_server after): a client that read the banner could have been refused.
    if args.rest_fd is not None:
        sock = socket.socket(fileno=args.rest_fd)  # the family and type come from the socket itself
    else:
        sock = _bind_rest(args.host, args.rest_port)
    rest_port = sock.getsockname()[1]
    sockets = [sock]
    if args.rest_fd is None and args.grpc_port:
        _grpc_port_free(args.host, args.grpc_port)  # a worker's port was checked by the parent
    try:
        grpc_server, grpc_port = grpc_service.create_server(repository, args.host, args.grpc_port, workers=threads)
    except OSError as exc:
        raise SystemExit(f"error: {exc}") from None
    grpc_server.start()
    print(f"gRPC listening on {args.host}:{grpc_port}", flush=True)

    app = rest.create_app(
        repository,
        int(args.max_request_mb * (1 << 20)),
        threads=threads,
        metrics_path=args.metrics_path,
        batching=batcher is not None,
    )
    # httptools and uvloop (the serving extra) parse HTTP and run the loop in C; h11's pure-Python parser would
    # cost more per request than the model. No websockets: not part of TF Serving's API.
    options = dict(log_level="warning", access_log=False, lifespan="on", ws="none")
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # connections made after this line wait in the listening socket's backlog until uvicorn accepts them
    app.on_startup.append(lambda: print(f"REST listening on http://{args.host}:{rest_port}", flush=True))
    if args.metrics_path is not None:
        app.on_startup.append(
            lambda: print(f"metrics at http://{args.host}:{rest_port}{args.metrics_path}", flush=True)
        )

    def stop(*_):
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run(sockets=sockets)
    finally:
        poller.stop()
        grpc_server.stop(grace=2).wait()
        if batcher is not None:
            batcher.stop()
        if log is not None:  # after the last request was answered: every logged request is in a complete file
            log.close()
            request_log.install(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
