"""What the Kubeflow package tests share: a store put in this process's environment (this process is the
launcher and the submitter), a package compiled for a cluster whose store is that one, the cluster (the twin) with
the namespace's secret, and a data root's fingerprint."""

import contextlib
import os
import subprocess
import sys

from orchestration.config import PROJECT_ROOT
from runners import kubeflow as kubeflow_runner
from runners import object_store
from testing import kfp_twin

SECRET = "mlpipeline-minio-artifact"


@contextlib.contextmanager
def store_in_env(server, buckets=("data", "kfp", "serving")):
    """The store's buckets made, its endpoint and credentials in os.environ (boto3 here), restored after."""
    for bucket in buckets:
        server.create_bucket(bucket)
    added = dict(server.env, **object_store.s3_environment(server.env))
    saved = {k: os.environ.get(k) for k in added}
    os.environ.update(added)
    object_store._CLIENTS.clear()
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        object_store._CLIENTS.clear()


def compile_package(name, out, store, cfg=None, **settings):
    """A package as `make kubeflow` builds it for a cluster whose store is `store`: the endpoint in every task's
    environment, the credentials from the namespace's secret; /app = this checkout."""
    base = dict(
        image="registry.example.com/eat-tf2-tfx:test",
        project_root=str(PROJECT_ROOT),
        env=(("AWS_ENDPOINT_URL", store.endpoint), ("AWS_REGION", "us-east-1")),
        s3_secret=SECRET,
    )
    base.update(settings)
    return kubeflow_runner.compile_pipeline(name, out, kubeflow_runner.KubeflowSettings(**base), cfg)


def backend(store, tmp, **kwargs):
    """The cluster: the image's environment has no credentials (they come from the secret), the namespace has
    the store's secret (Kubeflow's mlpipeline-minio-artifact, MinIO's and SeaweedFS's)."""
    image_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    secrets = {SECRET: {"accesskey": store.env["AWS_ACCESS_KEY_ID"], "secretkey": store.env["AWS_SECRET_ACCESS_KEY"]}}
    return kfp_twin.Backend(
        env=image_env, secrets=kwargs.pop("secrets", secrets), work_dir=tmp, log=lambda m: None, **kwargs
    )


# TensorFlow on s3:// (tensorflow-io) stays out of the test process: its shutdown can abort the interpreter
# (kfp_entrypoint's docstring, 6.), which would turn a green session red. What needs it runs in a subprocess.
def fingerprint(root):
    proc = subprocess.run(
        [sys.executable, "-m", "runners.data_fingerprint", root],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()
