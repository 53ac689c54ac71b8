"""A loopback S3 server for the tests and benchmarks: moto in server mode (the `dev` extra), which speaks the S3 API
as MinIO, Kubeflow's own store, does.

    with local_s3.server() as s3:       # s3.env: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... for clients
        s3.create_bucket("data")
        s3.upload(local_folder, "s3://data/titanic")

It runs in its own process: TensorFlow's S3 file system (tensorflow-io) holds the GIL while it waits for an answer,
so a server on a thread of the same interpreter would never answer (seen: tf.saved_model.save hangs). The port is
taken by the server itself (port 0) and read back from it, so nothing can take it in between.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Optional

from runners import engines

_SERVE = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes it (or dies)
server.stop()
"""

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "twin-access-key",
    "AWS_SECRET_ACCESS_KEY": "twin-secret-key",
    "AWS_REGION": "us-east-1",
}


class LocalS3:
    def __init__(self, endpoint: str, kind: str = "moto"):
        self.endpoint = endpoint
        self.kind = kind  # "moto" or "seaweedfs"
        self.env: Dict[str, str] = {"AWS_ENDPOINT_URL": endpoint, **CREDENTIALS}

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def upload(self, folder: Path, uri: str) -> int:
        """Every file under `folder` to the s3:// prefix `uri`; returns how many."""
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        count = 0
        client = self.client()
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                key = f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}".lstrip("/")
                client.upload_file(str(path), bucket, key)
                count += 1
        return count

    def keys(self, uri: str) -> Dict[str, int]:
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        found, token = {}, None
        client = self.client()
        while True:
            page = client.list_objects_v2(
                Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
            )
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
            if not page.get("IsTruncated"):
                return found
            token = page["NextContinuationToken"]


def _reap(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Waits for a server asked to stop; kills it when it does not."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def server(timeout_s: float = 60, log: Optional[Path] = None) -> Iterator[LocalS3]:
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        port = proc.stdout.readline().strip() if ready else ""  # the server prints its port once it listens
        if not port.isdigit():
            raise RuntimeError(
                f"the local S3 server (moto) did not start (exit {proc.poll()}); is the dev extra "
                f"installed? (pip install -c constraints.txt '.[dev]')"
            )
        yield LocalS3(f"http://127.0.0.1:{port}")
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()  # the server's signal to stop
        _reap(proc)
        if log:
            out.close()


def _free_port_pair() -> int:
    """A port p with p and p + 10000 free (SeaweedFS serves gRPC on its HTTP port + 10000)."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


@contextlib.contextmanager
def seaweedfs(work: Path, timeout_s: float = 90, log: Optional[Path] = None) -> Iterator[LocalS3]:
    """SeaweedFS as Kubeflow 2.15+'s manifests run it (one `weed server -s3 -filer` process, an admin identity
    holding the mlpipeline-minio-artifact secret's keys: seaweedfs-deployment.yaml's `s3.configure -actions
    Admin`), built by `python -m runners.engines fetch seaweedfs`. More volume slots than the manifests' default
    8, since the tests use several buckets (each bucket takes 7 volumes: one bucket per install in Kubeflow)."""
    weed = engines.seaweedfs_binary()
    (work / "data").mkdir(parents=True, exist_ok=True)
    config = work / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "kubeflow-admin",
                        "credentials": [
                            {
                                "accessKey": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                "secretKey": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {name: _free_port_pair() for name in ("master", "volume", "filer", "s3")}
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            str(weed),
            "server",
            f"-dir={work / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            "-volume.max=64",
            "-master.volumeSizeLimitMB=256",
            "-master.volumePreallocate=false",
            "-filer",
            f"-filer.port={ports['filer']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.config={config}",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/status", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS did not start (exit {proc.poll()}); its log: {log or 'not kept'}"
                    ) from None
                time.sleep(0.5)
        yield LocalS3(endpoint, kind="seaweedfs")
    finally:
        proc.terminate()
        _reap(proc)
        if log:
            out.close()
