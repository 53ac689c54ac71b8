"""Names and folders every part of the project agrees on, importable without TensorFlow.

The serving folder is TF Serving's: `<serving root>/<model>/<version>/saved_model.pb`, a version being ASCII
digits of an int64 (tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc lists numeric
child folders only). A version is *servable* once its saved_model.pb exists: the AtomicPusher renames a complete
copy into place, so a folder without it is someone else's half-written copy. Hidden `.incoming-*` folders are the
Pusher's staging and never versions.

The Trainer, the Pusher, ServedBaseline, the server, Spark scoring, the forecast, lineage, the report and the
benchmarks all find models through these functions, and the signature and run-record names through these
constants, so a change of layout is a change here.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import IO, Callable, List, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_output_dir(env=None) -> Path:
    env = os.environ if env is None else env
    return Path(env["OUTPUT_DIR"]).expanduser().resolve() if env.get("OUTPUT_DIR") else PROJECT_ROOT / "outputs"


def default_serving_dir(env=None) -> Path:
    """Where pushed models land, `<serving dir>/<model>/<version>/`: SERVING_DIR, else $OUTPUT_DIR/serving. The
    one definition the pipelines' config and the server share."""
    env = os.environ if env is None else env
    if env.get("SERVING_DIR"):
        return Path(env["SERVING_DIR"]).expanduser().resolve()
    return default_output_dir(env) / "serving"


# The served model's signatures (modeling/signatures.py says what each takes and gives)
DEFAULT_SIGNATURE = "serving_default"
RAW_SIGNATURE = "serving_raw"  # the same function as serving_default, under the name older clients used
EXAMPLES_SIGNATURE = "serving_examples"
CLASSIFY_SIGNATURE = "classify"
REGRESS_SIGNATURE = "regress"

# What the Trainer writes beside the model (modeling/trainer.py), read by lineage and the report
RUN_RECORD = "training_run.json"

SAVED_MODEL = "saved_model.pb"
# the requests TF Serving replays against a version before it serves it (servables/tensorflow/
# saved_model_warmup_util.h: kRequestsFileName, under kSavedModelAssetsExtraDirectory): a TFRecord of PredictionLogs
WARMUP_REQUESTS = "assets.extra/tf_serving_warmup_requests"
WARMUP_MAX_RECORDS = 1000  # WarmupConsts::kMaxNumRecords
MAX_VERSION = (1 << 63) - 1  # TF Serving's versions are int64
_VERSION = re.compile(r"[0-9]+")


class NoPushedModel(LookupError):
    """No (such) pushed version under a serving root; the message says where it looked."""


def parse_version(text: str) -> Optional[int]:
    """The version a folder name stands for, or None: ASCII digits of an int64 only ('²' is a digit to Python's
    str.isdigit, not to TF Serving)."""
    if isinstance(text, str) and _VERSION.fullmatch(text.rstrip("/")) and int(text.rstrip("/")) <= MAX_VERSION:
        return int(text.rstrip("/"))
    return None


class LocalFiles:
    """The file operations the layout needs, on the local disk. tfx.dsl.io.fileio (any file system TensorFlow
    reads: gs://, s3://) offers the same three functions, and callers that need it pass it instead."""

    listdir = staticmethod(os.listdir)
    isdir = staticmethod(os.path.isdir)
    exists = staticmethod(os.path.exists)


def version_numbers(root, files=LocalFiles) -> List[int]:
    """Every numeric version folder name under `root`, complete or not, oldest first ([] without a root). A new
    version must be larger than all of them."""
    root = str(root)
    if not root or not files.isdir(root):
        return []
    return sorted(v for v in (parse_version(name) for name in files.listdir(root)) if v is not None)


def servable_versions(root, files=LocalFiles) -> List[int]:
    """Version folders under `root` that hold a complete SavedModel, oldest first."""
    return [v for v in version_numbers(root, files) if files.exists(os.path.join(str(root), str(v), SAVED_MODEL))]


def newest_version(root, files=LocalFiles) -> Optional[int]:
    """The newest servable version under `root`, or None when nothing is served yet."""
    versions = servable_versions(root, files)
    return versions[-1] if versions else None


def version_dir(root, version: Optional[int] = None, files=LocalFiles) -> str:
    """The folder of a servable version under `root` (default: the newest); NoPushedModel otherwise."""
    versions = servable_versions(root, files)
    if version is None:
        if not versions:
            raise NoPushedModel(f"no pushed model under {root}")
        version = versions[-1]
    if int(version) not in versions:
        raise NoPushedModel(
            f"{os.path.join(str(root), str(version))} is not a pushed model (versions there: {versions})"
        )
    return os.path.join(str(root), str(version))


def sha256_file(path, opener: Callable[[str], IO[bytes]] = lambda p: open(p, "rb"), chunk: int = 1 << 20) -> str:
    """The file's sha256, read in chunks (pass tf.io.gfile.GFile-like `opener` for remote files)."""
    digest = hashlib.sha256()
    with opener(str(path)) as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
