"""A TF Serving-compatible model server over the serving directory: REST (FastAPI + uvicorn) and gRPC.

    python -m serving.server [--serving-root outputs/serving] [--rest-port 8501] [--grpc-port 8500]
                             [--host 127.0.0.1] [--poll-seconds 2]     (or: make serve)

Serves every model under the root, newest version by default, and picks up newly pushed versions while
running. Binds 127.0.0.1 unless --host says otherwise. Port 0 picks a free port; the chosen ports are printed
as `REST listening on http://HOST:PORT` and `gRPC listening on HOST:PORT`.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from components.keras_env import quiet_native_startup
from pipelines import config as config_lib

with quiet_native_startup():  # TensorFlow's start-up lines look like errors and are not (VERBOSE=1 shows them)
    from serving import grpc_service, rest
    from serving.repository import Poller, Repository

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    cfg = config_lib.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serving-root", type=Path, default=Path(cfg.serving_dir or Path(cfg.output_dir) / "serving"))
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--rest-port", type=int, default=int(os.environ.get("REST_PORT") or DEFAULT_REST_PORT))
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("GRPC_PORT") or DEFAULT_GRPC_PORT))
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--max-request-mb", type=float, default=rest.DEFAULT_MAX_REQUEST_BYTES / (1 << 20))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    repository = Repository(args.serving_root)
    repository.refresh()
    names = repository.model_names()
    print(f"serving root {args.serving_root}: models {names or 'none yet (waiting for pushes)'}", flush=True)
    poller = Poller(repository, args.poll_seconds)
    poller.start()

    grpc_port = args.grpc_port or _free_port(args.host)
    grpc_server = grpc_service.create_server(repository, args.host, grpc_port)
    grpc_server.start()
    print(f"gRPC listening on {args.host}:{grpc_port}", flush=True)

    rest_port = args.rest_port or _free_port(args.host)
    app = rest.create_app(repository, int(args.max_request_mb * (1 << 20)))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=rest_port, log_level="warning",
                                           access_log=False))
    # printed once uvicorn has bound the port, so whoever waits for the line can connect at once
    app.router.on_startup.append(lambda: print(f"REST listening on http://{args.host}:{rest_port}", flush=True))

    def stop(*_):
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    finally:
        poller.stop()
        grpc_server.stop(grace=2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
