"""The object stores a Kubeflow run's roots live on (gs://, s3:// and MinIO, which speaks S3), at the level of
objects: what KFP's launcher sees of them and what TensorFlow's file systems hide.

TensorFlow's `fileio`/`tf.io.gfile` shows an object store as folders and files; KFP's launcher (Go, gocloud.dev
blob) sees a flat list of keys under a prefix, and so does a TF Serving poller. Three things need that view:
- directory markers: zero-byte objects whose key ends in "/" (TensorFlow's GCS file system writes one per folder
  it creates), which the launcher's download turns into files that then block the folder of the same name
  (kubeflow/pipelines#13476): `delete_markers` removes them after a task wrote its outputs;
- the launcher's download of every input artifact into the pod (`download_prefix`, objectstore.DownloadBlob);
- credentials and reachability, checked before a task starts (`check_access`), so a missing key or endpoint is one
  line, not a stack trace from deep in Beam.

Settings for S3 (and MinIO): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL (MinIO's or another
S3-compatible server's URL; unset: AWS), AWS_REGION (default us-east-1). `s3_environment` derives from them what
tensorflow-io's S3 file system reads (S3_ENDPOINT, S3_USE_HTTPS, S3_VERIFY_SSL, AWS_REGION), so one setting serves
TensorFlow, Beam (boto3) and this module. GCS: Application Default Credentials (Workload Identity or
GOOGLE_APPLICATION_CREDENTIALS).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

SCHEMES = ("gs", "s3")


class StoreError(RuntimeError):
    """An object store cannot be used as configured; the message names the setting that fixes it."""


def split(uri: str) -> Tuple[str, str, str]:
    """("s3", "bucket", "key/prefix") for "s3://bucket/key/prefix"; ("", "", path) for a local path."""
    if "://" not in uri:
        return "", "", uri
    scheme, rest = uri.split("://", 1)
    bucket, _, key = rest.partition("/")
    return scheme, bucket, key


def s3_environment(env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The variables tensorflow-io's S3 file system needs, from the boto3 ones (AWS_ENDPOINT_URL, AWS_REGION);
    those already set win."""
    env = os.environ if env is None else env
    derived = {"AWS_REGION": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        derived["S3_ENDPOINT"] = endpoint
        derived["S3_USE_HTTPS"] = "0" if endpoint.startswith("http://") else "1"
        derived["S3_VERIFY_SSL"] = "0" if endpoint.startswith("http://") else "1"
    return {k: v for k, v in derived.items() if not env.get(k)}


class _S3:
    def __init__(self):
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise StoreError(
                "s3:// needs boto3, which this image lacks: install the project with its s3 extra "
                "(pip install '.[s3]', as the Dockerfile does)"
            ) from None
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            config=Config(retries={"max_attempts": 3}, connect_timeout=10, read_timeout=60),
        )
        self.endpoint = endpoint or "AWS S3"

    def list(self, bucket: str, prefix: str) -> List[Tuple[str, int]]:
        keys, token = [], None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            keys.extend((o["Key"], o["Size"]) for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def folders(self, bucket: str, prefix: str) -> List[str]:
        """The "folders" (common prefixes) directly under `prefix` (ending in "/")."""
        found, token = [], None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return found
            token = page["NextContinuationToken"]

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, bucket: str, keys: List[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True}
            )

    def check(self, bucket: str) -> None:
        from botocore import exceptions

        try:
            self.client.head_bucket(Bucket=bucket)
        except exceptions.NoCredentialsError:
            raise StoreError(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY on the tasks "
                "(make kubeflow KFP_S3_SECRET=<secret> maps a Kubernetes secret's keys to them; for "
                "Kubeflow's MinIO: mlpipeline-minio-artifact)"
            ) from None
        except exceptions.EndpointConnectionError:
            raise StoreError(
                f"cannot reach the S3 endpoint {self.endpoint}: set AWS_ENDPOINT_URL on the tasks "
                f"(Kubeflow's MinIO: http://minio-service.kubeflow:9000; make kubeflow "
                f"KFP_ENV=AWS_ENDPOINT_URL=...)"
            ) from None
        except exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StoreError(
                    f"S3 refused the credentials for bucket {bucket!r} ({code}): check "
                    f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY on the tasks"
                ) from None
            if code in ("404", "NoSuchBucket"):
                raise StoreError(
                    f"bucket {bucket!r} does not exist on {self.endpoint}: create it, or point the "
                    f"root at an existing one"
                ) from None
            raise StoreError(f"S3 bucket {bucket!r} on {self.endpoint}: {exc}") from None


class _GCS:
    def __init__(self):
        try:
            from google.cloud import storage
        except ImportError:  # comes with TFX (apache-beam[gcp])
            raise StoreError("gs:// needs google-cloud-storage, which this image lacks") from None
        try:
            self.client = storage.Client()
        except Exception as exc:  # noqa: BLE001 - google.auth raises several kinds
            raise StoreError(
                f"no Google credentials ({type(exc).__name__}): give the pods Workload Identity or "
                f"set GOOGLE_APPLICATION_CREDENTIALS to a key file mounted from a secret"
            ) from None

    def list(self, bucket: str, prefix: str) -> List[Tuple[str, int]]:
        return [(b.name, b.size or 0) for b in self.client.list_blobs(bucket, prefix=prefix)]

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.bucket(bucket).blob(key).download_as_bytes()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.bucket(bucket).blob(key).upload_from_string(data)

    def delete(self, bucket: str, keys: List[str]) -> None:
        for key in keys:
            self.client.bucket(bucket).blob(key).delete()

    def check(self, bucket: str) -> None:
        try:
            self.client.bucket(bucket).exists()
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"GCS bucket {bucket!r}: {type(exc).__name__}: {str(exc)[:200]}") from None


_CLIENTS: Dict[str, object] = {}


def client(scheme: str):
    if scheme not in _CLIENTS:
        if scheme == "s3":
            _CLIENTS[scheme] = _S3()
        elif scheme == "gs":
            _CLIENTS[scheme] = _GCS()
        else:
            raise StoreError(f"no object store client for {scheme}://")
    return _CLIENTS[scheme]


def list_objects(uri: str) -> List[Tuple[str, int]]:
    """(key, size) of every object whose key starts with the URI's key: a plain prefix match, as the launcher's
    bucket.List(Prefix) does (so ".../model" also lists ".../model_run/...")."""
    scheme, bucket, prefix = split(uri)
    return client(scheme).list(bucket, prefix)


def markers(uri: str) -> List[str]:
    """Zero-byte "folder/" objects at or under the folder `uri`."""
    scheme, bucket, prefix = split(uri)
    prefix = prefix.rstrip("/")
    return [
        k
        for k, size in client(scheme).list(bucket, prefix)
        if k.endswith("/") and size == 0 and (k == prefix + "/" or k.startswith(prefix + "/"))
    ]


def delete_markers(uri: str) -> int:
    """Deletes the directory markers at and under the folder `uri` (nothing else); returns how many. TensorFlow
    finds the folders without them: a folder on an object store is a key prefix."""
    scheme, bucket, _ = split(uri)
    if scheme not in SCHEMES:
        return 0
    found = markers(uri)
    if found:
        client(scheme).delete(bucket, found)
    return len(found)


def sweep_empty_folders(uri: str) -> int:
    """Deletes the empty folders under the folder `uri` that the store still lists; returns how many.

    Only a store that is a file system under its S3 gateway has them: SeaweedFS (Kubeflow 2.15+'s store) keeps a
    folder whose last object was deleted as a listed prefix, HEAD folder/ answering 200, until its empty-folder
    cleaner removes it about two minutes later (weed/filer/empty_folder_cleanup/empty_folder_cleaner.go: a
    2-minute queue age, a pass every 30 s). TensorFlow's glob then returns that folder, so Beam's emptied
    beam-temp-* folder inside an ExampleGen split reads as a data file to the next task. Deleting "folder/"
    removes an empty one at once (deepest first: a folder holding an empty folder is not empty). On S3, MinIO
    and GCS a prefix vanishes with its last object and nothing is found: a few listings per output."""
    scheme, bucket, prefix = split(uri)
    if scheme != "s3":
        return 0
    store = client(scheme)
    prefix = prefix.rstrip("/") + "/"
    holding = set()
    for key, _ in store.list(bucket, prefix):
        parts = key.split("/")[:-1]
        holding.update("/".join(parts[: i + 1]) + "/" for i in range(len(parts)))
    ghosts, todo = [], [prefix]
    while todo:
        for folder in store.folders(bucket, todo.pop()):
            if folder not in holding:
                ghosts.append(folder)
            todo.append(folder)
    for folder in sorted(ghosts, key=lambda f: -f.count("/")):
        store.delete(bucket, [folder])
    return len(ghosts)


def check_access(uri: str) -> None:
    scheme, bucket, _ = split(uri)
    if scheme in SCHEMES:
        client(scheme).check(bucket)


def read(uri: str) -> bytes:
    scheme, bucket, key = split(uri)
    return client(scheme).get(bucket, key)


def write(uri: str, data: bytes) -> None:
    scheme, bucket, key = split(uri)
    client(scheme).put(bucket, key, data)


def download_prefix(uri: str, local_dir: Path, under_prefix_only: bool = False) -> int:
    """KFP's objectstore.DownloadBlob (backend/src/v2/objectstore/object_store.go, 2.5.0 lines 123-150): every
    object under the key prefix (no trailing "/": siblings that share the prefix come too) is written to
    `local_dir` joined with its key relative to the prefix (Go's filepath.Rel then filepath.Join, which drop a
    trailing "/": a marker becomes an empty *file*). downloadFile makes the parent folders first (os.MkdirAll,
    which fails where a file stands) and creates the file (os.Create, which fails on a folder). Returns the
    number of objects. Raises OSError where the Go code returns an error.

    `under_prefix_only` is 2.17.0's DownloadBlob (lines 146-205): a key with a ".." part is refused (path
    traversal), and only the prefix itself or keys under `prefix/` are downloaded; siblings that merely share
    the prefix are skipped."""
    scheme, bucket, prefix = split(uri)
    count = 0
    for key, _ in client(scheme).list(bucket, prefix):
        if under_prefix_only:
            if ".." in key.split("/"):
                raise OSError(f"path traversal detected: blob key {key!r} contains '..' component")
            if not (key == prefix.rstrip("/") or key.startswith(prefix.rstrip("/") + "/")):
                continue
        relative = posixpath.relpath(key.rstrip("/") or "/", prefix) if key.rstrip("/") != prefix else "."
        target = Path(os.path.normpath(os.path.join(str(local_dir), relative)))
        target.parent.mkdir(parents=True, exist_ok=True)  # NotADirectoryError / FileExistsError as MkdirAll
        if target.is_dir():
            raise IsADirectoryError(f"open {target}: is a directory")
        target.write_bytes(client(scheme).get(bucket, key))
        count += 1
    return count


def upload_dir(local_dir: Path, uri: str) -> int:
    """KFP's objectstore.UploadBlob: every file under `local_dir` to the key prefix; returns the count."""
    count = 0
    for path in sorted(Path(local_dir).rglob("*")):
        if path.is_file():
            write(f"{uri.rstrip('/')}/{path.relative_to(local_dir).as_posix()}", path.read_bytes())
            count += 1
    return count
