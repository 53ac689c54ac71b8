"""cifar2 on the local orchestrator; settings from the environment (see orchestration/config.py).

tfx pipeline create --engine local --pipeline_path pipelines/cifar2/local_runner.py
tfx run create --engine local --pipeline_name cifar2
"""

import pipelines  # noqa: F401 - before TensorFlow: tf.keras must be tf-keras (core/layout.py)
from pipelines.cifar2.spec import SPEC  # noqa: E402
from runners.local import run_local  # noqa: E402

if __name__ == "__main__":
    run_local(SPEC)
