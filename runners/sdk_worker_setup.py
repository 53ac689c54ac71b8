"""What each Beam SDK worker of the project's pool does before it runs anything (runners/sdk_worker_pool.py):
Beam's file systems get options (boto3 then reads the AWS_* environment, as in a KFP task), and where the worker
has S3 credentials, tensorflow_io registers s3:// with TensorFlow (TensorFlow 2.16 has none of its own)."""

import os

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

if FileSystems._pipeline_options is None:
    FileSystems.set_options(PipelineOptions([]))

if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_ENDPOINT_URL"):
    from runners.object_store import s3_environment

    os.environ.update(s3_environment())  # tensorflow-io's names for the endpoint boto3 reads (object_store.py)
    try:
        import tensorflow_io  # noqa: F401
    except ImportError:  # an image without it: a task on s3:// says so itself (kfp_entrypoint.prepare_filesystems)
        pass
