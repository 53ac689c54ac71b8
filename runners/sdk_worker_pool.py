"""Beam's external SDK worker pool (apache_beam.runners.worker.worker_pool_main), each worker set up first.

The pool starts every worker as `python -c "from apache_beam.runners.worker.sdk_worker import SdkHarness;
SdkHarness(...).run()"` (Beam 2.74 apache_beam/runners/worker/worker_pool_main.py:127-143, StartWorker), not
through sdk_worker_main, so a worker never gets what sdk_worker_main.main gives one: `FileSystems.set_options`
(sdk_worker_main.py:125; without options Beam's S3 file system refuses every s3:// path: "Must provide one of
client or options", apache_beam/io/aws/s3io.py:60) and the imports named in --beam_plugins
(sdk_worker_main.py:172-173; so TensorFlow in the worker has no s3:// file system: tensorflow/tfx#3601).
This module runs the same pool with `import runners.sdk_worker_setup` put before each worker's code; the pool's
flags are Beam's. Run it as the worker-pool sidecar of a TaskManager too (docs/kubeflow.md, step 8):

    python -m runners.sdk_worker_pool --service_port=50000
"""

import subprocess
import sys

from apache_beam.runners.worker import worker_pool_main

SETUP = "import runners.sdk_worker_setup; "
HARNESS = "from apache_beam.runners.worker.sdk_worker import SdkHarness"


class _Subprocess:
    """worker_pool_main's `subprocess`, whose Popen puts SETUP before a worker's `python -c` code."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(command, *args, **kwargs):  # noqa: N802 - subprocess's name
        if len(command) == 3 and command[1] == "-c" and command[2].startswith(HARNESS):
            command = [command[0], "-c", SETUP + command[2]]
            print(f"... started with {SETUP.strip('; ')} first", file=sys.stderr, flush=True)
        return subprocess.Popen(command, *args, **kwargs)


def main(argv=None) -> None:
    import inspect

    source = inspect.getsource(worker_pool_main.BeamFnExternalWorkerPoolServicer.StartWorker)
    if "'from apache_beam.runners.worker.sdk_worker '" not in source or "'import SdkHarness; '" not in source:
        raise SystemExit(
            "runners/sdk_worker_pool.py: Beam's worker pool no longer starts workers with "
            f"{HARNESS!r}; re-audit the seam"
        )
    worker_pool_main.subprocess = _Subprocess()
    sys.argv = [sys.argv[0]] + list(sys.argv[1:] if argv is None else argv)
    worker_pool_main.main()


if __name__ == "__main__":
    main()
