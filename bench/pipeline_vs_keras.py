"""Benchmark: the whole pipeline against the book's plain Keras script, same data, same epochs, same machine.

    python bench/pipeline_vs_keras.py cifar2       (or: make bench-vs-keras PIPELINE=cifar2)

Both run as fresh processes, one after the other; each wall time includes starting Python and TensorFlow.
Target (issues #3, #4): pipeline <= 1.3x the plain script.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PROJECT_ROOT, book_script

from data.fetch import fetch
from metadata import results
from orchestration import config as config_lib
from orchestration.factory import trainer_settings
from pipelines import registry


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "cifar2"
    spec = registry.get_spec(name)
    cfg = config_lib.from_env()
    data = fetch(spec.dataset, cfg.data_dir)
    epochs = trainer_settings(spec, cfg)["epochs"]

    print(f"{name}: plain Keras script, {epochs} epochs ...", flush=True)
    keras = book_script(name, data, epochs)

    print(f"{name}: whole pipeline from scratch, {epochs} epochs ...", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as out:
        env = dict(os.environ, OUTPUT_DIR=out, DATA_DIR=str(cfg.data_dir))
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, str(registry.runner_path(name))],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        pipeline_s = time.monotonic() - started
        if run.returncode != 0:
            sys.exit(run.stderr[-4000:])
        result = results.last_run(name, cfg.replace(output_dir=Path(out)))

    print()
    print(f"{'':<24}{'plain Keras':>14}{'pipeline':>14}")
    print(f"{'wall time (s)':<24}{keras['seconds']:>14.1f}{pipeline_s:>14.1f}")
    print(f"{'test accuracy':<24}{keras['accuracy']:>14.4f}{result.overall('binary_accuracy'):>14.4f}")
    print(f"{'test AUC':<24}{keras['auc']:>14.4f}{result.overall('auc'):>14.4f}")
    print(f"{'test KS':<24}{'':>14}{result.overall('ks'):>14.4f}")
    print(f"\npipeline / plain Keras wall time: {pipeline_s / keras['seconds']:.2f}x (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
