"""Benchmark: the server's latency and throughput for the Titanic model, beside in-process calls; Spark scoring.

    python bench/serving_bench.py [--requests 300] [--spark-rows 1000000]     (or: make bench-serving)

Needs a pushed Titanic model (`make run`). Starts the real server (--workers processes) on free loopback ports;
for REST and gRPC, batch 1 and 64, concurrency 1 and 8, sends a bounded number of requests and prints p50/p99
latency and requests/s, beside the same SavedModel called in process with ready tensors (goal: <= 2x at batch 1).
Then REST p50 at batch 1 of a server logging every request (--log-requests) beside one that does not, measured
in alternating rounds (goal: <= 1.10x), and whether every request was logged.
REST clients keep their connection alive, as HTTP client pools do. Then batching (--enable_batching,
serving/deploy/batching.config) beside none, each in one server process (TF Serving's topology) and in --workers
processes, with a wrk-like client on a bare socket (http.client's own Python per request would put the ceiling
in the load generator): REST batch-1 requests/s at concurrency 8 (goals: >= 1.5x without batching and >= 60% of
the in-process calls/s at concurrency 8; batch-1 p50 without batching <= 3x in-process), and failed requests
while the model config moves labels under load (goal: 0). Then scores the Titanic test set replicated to
--spark-rows rows with Spark local[2] (after a small first job that starts Spark's Python workers and loads the
model in each), beside one in-process loop over the same rows, and the same Spark job with a model that returns
zeros: Spark's own floor for reading, moving the rows to Python and back, and writing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

ROW = {
    "Age": 22.0,
    "Fare": 7.25,
    "Pclass": 3,
    "SibSp": 1,
    "Parch": 0,
    "Sex": "male",
    "Embarked": "S",
    "Ticket": "A/5 21171",
    "Cabin": "",
}
FLOATS, INTS = ("Age", "Fare"), ("Pclass", "SibSp", "Parch")


def start_server(root: Path, workers: int, *extra: str):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.server",
            "--serving-root",
            str(root),
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--workers",
            str(workers),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports = {}
    for line in proc.stdout:
        if line.startswith("gRPC listening on "):
            ports["grpc"] = line.split()[-1]
        if line.startswith("REST listening on "):
            ports["rest"] = line.split()[-1]
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, ports


def zeros_model(fn, path: Path) -> Path:
    """A SavedModel with `fn`'s raw inputs and output that computes nothing: zeros, one per row."""
    import tensorflow as tf

    from core.layout import RAW_SIGNATURE

    specs = {k: tf.TensorSpec(v.shape, v.dtype, name=k) for k, v in fn.structured_input_signature[1].items()}
    first = sorted(specs)[0]

    @tf.function
    def serve(**inputs):
        return {"probability": tf.zeros([tf.shape(inputs[first])[0], 1], tf.float32)}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={RAW_SIGNATURE: serve.get_concrete_function(**specs)})
    return path


def stats(latencies, wall):
    ms = np.array(latencies) * 1000
    return np.percentile(ms, 50), np.percentile(ms, 99), len(latencies) / wall


def run_load(call, requests: int, concurrency: int):
    latencies = []

    def one(_):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)

    for _ in range(5):
        call()  # warm up
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    return stats(latencies, time.perf_counter() - started)


def light_rest_caller(rest_url: str, body: bytes, path: str = "/v1/models/titanic:predict", method: str = "POST"):
    """A keep-alive HTTP/1.1 client on a bare socket, as wrk is: the request's bytes built once, the answer read by
    its Content-Length. http.client costs about as much Python per request as the server's own handling, and the
    load generator shares this machine's two cores and one GIL per process: with it, a faster server could not
    show (both servers would be measured at the client's ceiling)."""
    import re
    import socket

    host, port = urllib.parse.urlsplit(rest_url).hostname, urllib.parse.urlsplit(rest_url).port
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    length_re = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
    local = threading.local()

    def call():
        sock = getattr(local, "sock", None)
        if sock is None:
            sock = local.sock = socket.create_connection((host, port), timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local.buffer = b""
        sock.sendall(request)
        buffer = local.buffer
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("REST closed the connection")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = int(length_re.search(head).group(1))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("REST closed the connection")
            rest += chunk
        local.buffer = rest[length:]
        if head[9:12] != b"200":
            raise RuntimeError(f"REST answered {head[9:12].decode()}: {rest[:length][:200]!r}")

    return call


def rest_caller(rest_url: str, body: bytes):
    """A REST client that keeps one connection alive per thread, as HTTP client pools do."""
    host, port = urllib.parse.urlsplit(rest_url).hostname, urllib.parse.urlsplit(rest_url).port
    local = threading.local()

    def call():
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.request("POST", "/v1/models/titanic:predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"REST answered {response.status}")

    return call


def logging_overhead(root: Path, workers: int, requests: int, rounds: int = 5) -> dict:
    """REST p50 at batch 1, concurrency 1, of a server logging every request (--log-requests, sample rate 1)
    beside one that does not, both running at once and measured in alternating rounds (the machine's noise
    hits both alike); and what the logging server wrote."""
    from core.layout import RAW_SIGNATURE
    from serving import request_log

    body = json.dumps({"signature_name": RAW_SIGNATURE, "instances": [ROW]}).encode()
    logs = Path(tempfile.mkdtemp(prefix="bench-request-logs-"))  # never an earlier run's files
    plain, plain_ports = start_server(root, workers)
    logging_, logging_ports = start_server(root, workers, "--log-requests", str(logs))
    p50s = {"plain": [], "logging": []}
    sent = []
    try:
        logged_call = rest_caller(logging_ports["rest"], body)

        def counted():
            logged_call()
            sent.append(1)  # list.append is atomic: the concurrency-8 round counts right too

        calls = {"plain": rest_caller(plain_ports["rest"], body), "logging": counted}
        for call in calls.values():
            run_load(call, 50, 1)  # warm: models loaded, connections open
        for _ in range(rounds):
            for name, call in calls.items():
                p50s[name].append(run_load(call, requests, 1)[0])
        rps = {name: run_load(call, requests, 8)[2] for name, call in calls.items()}
    finally:
        for proc in (plain, logging_):
            proc.terminate()
            proc.wait(timeout=30)
    logged = len(request_log.read_examples(logs / "titanic"))
    plain_p50, logging_p50 = float(np.median(p50s["plain"])), float(np.median(p50s["logging"]))
    return {
        "plain p50": plain_p50,
        "logging p50": logging_p50,
        "ratio": logging_p50 / plain_p50,
        "plain req/s conc 8": rps["plain"],
        "logging req/s conc 8": rps["logging"],
        "logged": logged,
        "expected": len(sent),
    }


def batching_throughput(root: Path, workers: int, requests: int, body: bytes) -> dict:
    """REST batch 1, concurrency 8, on two servers of `workers` processes side by side (batching on / off), in
    alternating rounds, with the light client; the median of 3 rounds each."""
    params = PROJECT_ROOT / "serving" / "deploy" / "batching.config"
    plain, plain_ports = start_server(root, workers)
    batched, batched_ports = start_server(root, workers, "--enable_batching", "--batching_parameters_file", str(params))
    rps = {"plain": [], "batching": []}
    try:
        calls = {
            "plain": light_rest_caller(plain_ports["rest"], body),
            "batching": light_rest_caller(batched_ports["rest"], body),
        }
        for call in calls.values():
            run_load(call, 50, 8)
        for _ in range(3):
            for name, call in calls.items():
                rps[name].append(run_load(call, requests * 2, 8)[2])
        batched_p50 = run_load(calls["batching"], requests, 1)[0]
    finally:
        for proc in (plain, batched):
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "plain": float(np.median(rps["plain"])),
        "batching": float(np.median(rps["batching"])),
        "batching p50": batched_p50,
    }


def batching_and_labels(root: Path, workers: int, requests: int, in_process_rps: float) -> dict:
    """Batching's throughput in one server process (TF Serving's topology: every concurrent request reaches one
    scheduler) and in `workers` processes (make serve's), each beside the same server without batching; then
    label changes under load on the model config."""
    from core import promotion
    from core.layout import RAW_SIGNATURE

    body = json.dumps({"signature_name": RAW_SIGNATURE, "instances": [ROW]}).encode()
    one = batching_throughput(root, 1, requests, body)
    many = batching_throughput(root, workers, requests, body) if workers > 1 else one
    plain_rps, batched_rps, batched_p50 = one["plain"], one["batching"], one["batching p50"]

    # labels moving under load: versions 1 and 2 of the model, clients on /labels/stable, stable moved back and forth
    labels_root = Path(tempfile.mkdtemp(prefix="bench-labels-"))
    shutil.copytree(root / "titanic" / "1", labels_root / "titanic" / "1")
    shutil.copytree(root / "titanic" / "1", labels_root / "titanic" / "2")
    promotion.assign(labels_root, "titanic", 1, "stable", server="none", say=lambda _: None)
    config = labels_root / "models.config"
    proc, ports = start_server(
        labels_root,
        workers,
        "--model_config_file",
        str(config),
        "--model_config_file_poll_wait_seconds",
        "0.2",
        "--allow_version_labels_for_unavailable_models",
    )
    answered, failed, stop = [0], [], threading.Event()
    host, port = urllib.parse.urlsplit(ports["rest"]).hostname, urllib.parse.urlsplit(ports["rest"]).port

    def client():
        connection = http.client.HTTPConnection(host, port, timeout=60)
        while not stop.is_set():
            connection.request(
                "POST", "/v1/models/titanic/labels/stable:predict", body, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                answered[0] += 1
            else:
                failed.append(response.status)

    threads = [threading.Thread(target=client) for _ in range(8)]
    moves = 0
    try:
        for t in threads:
            t.start()
        for version in (2, 1, 2, 1, 2, 1):
            promotion.assign(labels_root, "titanic", version, "stable", server=ports["rest"], say=lambda _: None)
            moves += 1
            time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(labels_root, ignore_errors=True)
    return {
        "plain req/s": plain_rps,
        "batching req/s": batched_rps,
        "batching / plain": batched_rps / plain_rps,
        "batching / in-process": batched_rps / in_process_rps,
        "batching p50 batch 1": batched_p50,
        "workers": workers,
        f"plain req/s, {workers} processes": many["plain"],
        f"batching req/s, {workers} processes": many["batching"],
        f"batching / plain, {workers} processes": many["batching"] / many["plain"],
        "label moves": moves,
        "answered during label moves": answered[0],
        "failed during label moves": len(failed),
    }


def _status(rest_url: str, path: str) -> int:
    try:
        with urllib.request.urlopen(rest_url + path, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def first_request_after_roll_forward(model_dir: Path, warm: bool, rounds: int = 3) -> dict:
    """The first REST request to a version just rolled forward (copied in, AVAILABLE), with and without the
    version's warm-up replay (--enable_model_warmup), median of `rounds` roll-forwards, beside the second."""
    root = Path(tempfile.mkdtemp(prefix="bench-warmup-"))
    shutil.copytree(model_dir, root / "titanic" / "1")
    proc, ports = start_server(root, 1, "--poll-seconds", "0.3", f"--enable_model_warmup={'true' if warm else 'false'}")
    body = json.dumps({"instances": [ROW]}).encode()
    firsts, seconds, start = [], [], []
    url = urllib.parse.urlsplit(ports["rest"])

    def two_requests(version: int, into: list) -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for out in into:
            started = time.perf_counter()
            connection.request("POST", f"/v1/models/titanic/versions/{version}:predict", body)
            response = connection.getresponse()
            response.read()
            out.append(time.perf_counter() - started)
        connection.close()

    try:
        deadline = time.monotonic() + 120
        while _status(ports["rest"], "/v1/models/titanic/versions/1") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        two_requests(1, [start, start])  # the server process's first model call, and its second
        for version in range(2, rounds + 2):
            staging = root / "titanic" / f".incoming-{version}"
            shutil.copytree(model_dir, staging)
            os.rename(staging, root / "titanic" / str(version))
            deadline = time.monotonic() + 120
            while _status(ports["rest"], f"/v1/models/titanic/versions/{version}") != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"version {version} never became AVAILABLE")
                time.sleep(0.02)
            two_requests(version, [firsts, seconds])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
    return {
        "first ms": float(np.median(firsts)) * 1000,
        "second ms": float(np.median(seconds)) * 1000,
        "first after start ms": start[0] * 1000,
        "second after start ms": start[1] * 1000,
    }


def latency_floor(root: Path, requests: int, fn, tensors) -> dict:
    """Where REST's and gRPC's batch-1 time goes: the model's run in process; the whole request; the same
    transport with no model at all (the status route: HTTP parse, routing, JSON, the loopback round trip); and
    the server's own account (request vs runtime latency, its Prometheus histograms)."""
    import grpc
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    monitoring = root / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    proc, ports = start_server(root, 1, "--monitoring_config_file", str(monitoring))
    channel = grpc.insecure_channel(ports["grpc"])
    predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "titanic"
    for k, v in tensors.items():
        request.inputs[k].CopyFrom(tf_make_proto(v))
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "titanic"
    body = json.dumps({"instances": [ROW]}).encode()
    try:
        calls = {
            "in-process": lambda: fn(**tensors),
            "REST predict": light_rest_caller(ports["rest"], body),
            "REST status (no model)": light_rest_caller(ports["rest"], b"", "/v1/models/titanic", "GET"),
            "gRPC predict": lambda: predict_stub.Predict(request, timeout=60),
            "gRPC status (no model)": lambda: model_stub.GetModelStatus(status_request, timeout=60),
        }
        p50 = {}
        for _ in range(3):  # interleaved rounds: a noisy machine slows each path alike
            for name, call in calls.items():
                p50.setdefault(name, []).append(run_load(call, requests, 1)[0])
        found = {name: float(np.median(v)) for name, v in p50.items()}
        with urllib.request.urlopen(ports["rest"] + "/metrics", timeout=30) as response:
            text = response.read().decode()
    finally:
        channel.close()
        proc.terminate()
        proc.wait(timeout=30)

    def mean(metric: str, **labels) -> float:
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith(metric) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                if line.split("{")[0].endswith("_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.split("{")[0].endswith("_count"):
                    count += float(line.rsplit(" ", 1)[1])
        return total / count / 1000 if count else float("nan")

    found["server: REST request ms (mean)"] = mean(":tensorflow:serving:request_latency", entrypoint="REST")
    found["server: gRPC request ms (mean)"] = mean(":tensorflow:serving:request_latency", entrypoint="GRPC")
    found["server: runtime ms (mean)"] = mean(":tensorflow:serving:runtime_latency")
    return found


def tf_make_proto(value):
    import tensorflow as tf

    return tf.make_tensor_proto(value.numpy())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--spark-rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="server processes (serving.server --workers)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures (bench/all.py)")
    parser.add_argument(
        "--only",
        choices=("all", "latency-floor", "warmup"),
        default="all",
        help="one section: where batch-1 latency goes; the first request after a roll-forward with/without warm-up",
    )
    args = parser.parse_args()
    figures = {}

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from core.layout import RAW_SIGNATURE, NoPushedModel, version_dir
    from orchestration import config as config_lib

    cfg = config_lib.from_env()
    try:
        model_dir = Path(version_dir(cfg.serving_root("titanic")))
    except NoPushedModel as exc:
        sys.exit(f"{exc}: run `make run` first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    shutil.copytree(model_dir, tmp / "titanic" / "1")
    fn = tf.saved_model.load(str(model_dir)).signatures[RAW_SIGNATURE]
    if args.only in ("all", "warmup"):
        warm = first_request_after_roll_forward(model_dir, True)
        cold = first_request_after_roll_forward(model_dir, False)
        figures.update(
            {
                "first request after roll-forward, warm-up ms": warm["first ms"],
                "first request after roll-forward, no warm-up ms": cold["first ms"],
            }
        )
        figures["first request after start, warm-up ms"] = warm["first after start ms"]
        figures["first request after start, no warm-up ms"] = cold["first after start ms"]
        for what, key in (
            ("the server's first model", "first after start"),
            ("a version just rolled forward", "first"),
        ):
            second = "second after start ms" if key == "first after start" else "second ms"
            print(
                f"first REST request to {what}: {warm[key + ' ms']:.1f} ms with warm-up (the next "
                f"{warm[second]:.1f} ms), {cold[key + ' ms']:.1f} ms without (the next {cold[second]:.1f} ms)",
                flush=True,
            )
    if args.only in ("all", "latency-floor"):
        tensors = {
            k: tf.constant([v], dtype=tf.float32 if k in FLOATS else tf.int64 if k in INTS else tf.string)
            for k, v in ROW.items()
        }
        f = latency_floor(tmp, args.requests, fn, tensors)
        figures.update({f"floor: {k}": v for k, v in f.items()})
        base = f["in-process"]
        print("\nwhere batch-1 latency goes (p50 ms, median of 3 interleaved rounds, one server process):")
        for name in ("in-process", "REST predict", "REST status (no model)", "gRPC predict", "gRPC status (no model)"):
            print(f"  {name:<26}{f[name]:>8.2f} ms  {f[name] / base:>5.1f}x in-process")
        print(
            f"  the server's own account: REST request {f['server: REST request ms (mean)']:.2f} ms, gRPC "
            f"{f['server: gRPC request ms (mean)']:.2f} ms, of which the signature call "
            f"{f['server: runtime ms (mean)']:.2f} ms",
            flush=True,
        )
    if args.only != "all":
        shutil.rmtree(tmp, ignore_errors=True)
        if args.json:
            print(json.dumps(figures))
        return 0
    if args.requests:  # 0: Spark only
        proc, ports = start_server(tmp, args.workers)
        channel = grpc.insecure_channel(ports["grpc"])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        print(f"{'path':<12}{'batch':>6}{'conc':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
        try:
            for batch in (1, 64):
                body = json.dumps({"signature_name": RAW_SIGNATURE, "instances": [ROW] * batch}).encode()
                host, port = urllib.parse.urlsplit(ports["rest"]).hostname, urllib.parse.urlsplit(ports["rest"]).port
                path, local = "/v1/models/titanic:predict", threading.local()
                request = predict_pb2.PredictRequest()
                request.model_spec.name, request.model_spec.signature_name = "titanic", RAW_SIGNATURE
                tensors = {}
                for k, v in ROW.items():
                    dtype = tf.float32 if k in FLOATS else tf.int64 if k in INTS else tf.string
                    request.inputs[k].CopyFrom(tf.make_tensor_proto([v] * batch, dtype=dtype))
                    tensors[k] = tf.constant([v] * batch, dtype=dtype)

                def rest_call():  # one kept-alive connection per client thread, as HTTP clients pool them
                    connection = getattr(local, "connection", None)
                    if connection is None:
                        connection = local.connection = http.client.HTTPConnection(host, port, timeout=60)
                    connection.request("POST", path, body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise RuntimeError(f"REST answered {response.status}")

                calls = {
                    "in-process": lambda: fn(**tensors),
                    "REST": rest_call,
                    "gRPC": lambda: stub.Predict(request, timeout=60),
                }
                base = None
                for concurrency in (1, 8):
                    for name, call in calls.items():
                        p50, p99, rps = run_load(call, args.requests, concurrency)
                        if batch == 1:
                            figures[f"{name} p50 batch 1" if concurrency == 1 else f"{name} req/s concurrency 8"] = (
                                p50 if concurrency == 1 else rps
                            )
                        if name == "in-process" and concurrency == 1:
                            base = p50
                        ratio = (
                            f"   ({p50 / base:.1f}x in-process p50)"
                            if name != "in-process" and concurrency == 1
                            else ""
                        )
                        print(
                            f"{name:<12}{batch:>6}{concurrency:>6}{p50:>10.2f}{p99:>10.2f}{rps:>10.0f}{ratio}",
                            flush=True,
                        )
        finally:
            channel.close()
            proc.terminate()
            proc.wait(timeout=30)
        b = batching_and_labels(tmp, args.workers, args.requests, figures["in-process req/s concurrency 8"])
        figures.update({f"batching: {k}": v for k, v in b.items()})
        w = b["workers"]
        print(
            f"\nbatching (serving/deploy/batching.config), REST batch 1, concurrency 8, light client (wrk-like), "
            f"one server process: {b['batching req/s']:.0f} req/s vs {b['plain req/s']:.0f} without = "
            f"{b['batching / plain']:.2f}x (target >= 1.5x); {b['batching / in-process']:.0%} of in-process "
            f"calls/s (target >= 60%); batch-1 p50 with batching at concurrency 1: "
            f"{b['batching p50 batch 1']:.2f} ms",
            flush=True,
        )
        if w > 1:
            print(
                f"  with {w} server processes (make serve): {b[f'batching req/s, {w} processes']:.0f} req/s vs "
                f"{b[f'plain req/s, {w} processes']:.0f} without = {b[f'batching / plain, {w} processes']:.2f}x "
                f"(the processes already use every core, so merging has less to win)",
                flush=True,
            )
        print(
            f"labels moved {b['label moves']} times under load (8 clients on /labels/stable): "
            f"{b['answered during label moves']} answered, {b['failed during label moves']} failed (target 0)",
            flush=True,
        )
        o = logging_overhead(tmp, args.workers, args.requests)
        figures["REST p50 batch 1 with request logging / without"] = o["ratio"]
        print(
            f"\nrequest logging (--log-requests, every request): REST p50 batch 1 {o['logging p50']:.2f} ms vs "
            f"{o['plain p50']:.2f} ms without = {o['ratio']:.3f}x (target <= 1.10x); concurrency 8: "
            f"{o['logging req/s conc 8']:.0f} vs {o['plain req/s conc 8']:.0f} req/s; "
            f"{o['logged']} of {o['expected']} requests logged",
            flush=True,
        )

    if args.spark_rows:
        import pandas as pd

        from data.fetch import fetch
        from serving import spark_batch

        test = pd.read_csv(fetch("titanic", cfg.data_dir) / "test.csv")
        big = pd.concat([test] * (args.spark_rows // len(test) + 1), ignore_index=True).iloc[: args.spark_rows]
        for k in FLOATS:
            big[k] = big[k].astype("float64")
        for k in ("Embarked", "Cabin"):
            big[k] = big[k].fillna("")
        # row groups of 64k rows, as Spark and most writers make them: Spark splits the file across its cores
        big.to_parquet(tmp / "big.parquet", index=False, row_group_size=65536)
        big.iloc[:20_000].to_parquet(tmp / "warm.parquet", index=False)
        spark = spark_batch.spark_session("local[2]")
        try:
            started = time.perf_counter()  # cold: Spark's Python workers start, import TensorFlow, load the model
            spark_batch.run(
                spark, str(model_dir), str(tmp / "warm.parquet"), str(tmp / "warm-scored.parquet"), batch_size=4096
            )
            cold_s = time.perf_counter() - started
            started = time.perf_counter()  # warm: the same workers, the model already loaded in each
            rows = spark_batch.run(
                spark, str(model_dir), str(tmp / "big.parquet"), str(tmp / "scored.parquet"), batch_size=4096
            )
            spark_s = time.perf_counter() - started
            # the floor: the same job with a model that only returns zeros (read, convert, Arrow both ways, write)
            zeros = str(zeros_model(fn, tmp / "zeros"))
            spark_batch.run(spark, zeros, str(tmp / "warm.parquet"), str(tmp / "warm-zeros.parquet"), batch_size=4096)
            started = time.perf_counter()
            spark_batch.run(spark, zeros, str(tmp / "big.parquet"), str(tmp / "zeros.parquet"), batch_size=4096)
            floor_s = time.perf_counter() - started
        finally:
            spark.stop()
        started = time.perf_counter()
        for start in range(0, len(big), 4096):
            chunk = big.iloc[start : start + 4096]
            fn(
                **{
                    k: tf.constant(chunk[k].to_numpy(np.float32 if k in FLOATS else np.int64))
                    if k in FLOATS + INTS
                    else tf.constant(chunk[k].astype(str).tolist())
                    for k in ROW
                }
            )
        loop_s = time.perf_counter() - started
        print(
            f"\nSpark local[2], {rows:,} rows read, scored and written as Parquet: {rows / spark_s:,.0f} rows/s "
            f"({spark_s:.1f} s; first job of 20,000 rows with worker start-up and model load: {cold_s:.1f} s)\n"
            f"one in-process loop over the same rows (scoring only): {len(big) / loop_s:,.0f} rows/s "
            f"({loop_s:.1f} s)\nSpark / in-process: {loop_s / spark_s:.0%} (target >= 50%)\n"
            f"the same Spark job with a model that returns zeros (Spark's floor: read, Arrow to Python and back, "
            f"write): {floor_s:.1f} s; the model's share {spark_s - floor_s:.1f} s = "
            f"{rows / max(spark_s - floor_s, 1e-9):,.0f} rows/s"
        )
        figures.update(
            {
                "Spark rows/s": rows / spark_s,
                "in-process rows/s": len(big) / loop_s,
                "Spark floor s": floor_s,
                "Spark rows": rows,
            }
        )
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
