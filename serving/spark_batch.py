"""Score a CSV or Parquet table with a pushed model on Spark; write Parquet with the predictions appended.

    python -m serving.spark_batch --model titanic --input data/raw/titanic/test.csv --output scored.parquet
    python -m serving.spark_batch --model-dir outputs/serving/titanic/1795940502 --input big.parquet \
        --output scored.parquet --master spark://host:7077
    make score PIPELINE=titanic INPUT=big.csv OUTPUT=scored.parquet

Where it runs: --master (or SPARK_MASTER=spark://host:port) names a cluster, or `local[N]` Spark in this
process; without either, a Spark standalone cluster of SPARK_WORKERS (default 2) workers is started for the
command from the pyspark wheel and stopped after it (serving/spark_cluster.py).

The book's chapter 6-7 does this in Scala; here it is Python over the same SavedModel. Each executor's Python
worker loads the model once and keeps it for every later task (Spark reuses Python workers:
spark.python.worker.reuse, on by default); every Arrow batch (mapInPandas) is converted column by column, as
whole arrays, and scored through the `serving_raw` signature in slices of --batch-size rows. Columns are
matched to the signature's inputs by name: numbers become the input's dtype (an empty cell becomes NaN,
"missing", for float inputs), text stays text. A one-value output becomes a double column named after the
output; a longer one an array<double> column. Spark writes the output atomically (a failed job leaves no
_SUCCESS and no partial table under the final name).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional

import numpy as np

from core.layout import RAW_SIGNATURE, NoPushedModel, default_output_dir, default_serving_dir, version_dir
from serving.spark_cluster import SparkClusterError, standalone_cluster


class ScoringError(ValueError):
    pass


def signature_io(model_dir: str, signature: str):
    """({input: (dtype name, shape)}, {output: shape}) read from the SavedModel, without loading it."""
    import tensorflow as tf  # heavy: only here, on the driver, not in every Spark executor's import

    from serving.repository import read_signature_defs  # heavy: TensorFlow too

    defs = read_signature_defs(Path(model_dir))
    if signature not in defs:
        raise ScoringError(f"{model_dir}: no signature {signature!r} (has {sorted(defs)})")
    sig = defs[signature]
    shape = lambda info: [d.size for d in info.tensor_shape.dim]  # noqa: E731
    inputs = {k: (tf.dtypes.as_dtype(v.dtype).name, shape(v)) for k, v in sig.inputs.items()}
    outputs = {k: shape(v) for k, v in sig.outputs.items()}
    return inputs, outputs


def _column_to_array(series, dtype: str, name: str) -> np.ndarray:
    """A whole column as the array the signature's input takes; Python touches single values only where a
    column holds something other than what its dtype says (text in a number column, numbers in a text one)."""
    import pandas as pd

    if dtype == "string":
        text = series.where(series.notna(), "")
        if pd.api.types.infer_dtype(text, skipna=False) not in ("string", "bytes", "empty"):
            text = text.map(lambda v: v if isinstance(v, (bytes, bytearray)) else str(v))
        return text.to_numpy(dtype=object)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        bad = series[numbers.isna() & series.notna() & (series.astype(str) != "")]
        if len(bad):
            raise ScoringError(f"column '{name}': {bad.iloc[0]!r} is not a number")
    if dtype.startswith("float"):
        return numbers.to_numpy(dtype=np.float32 if dtype == "float32" else np.float64, na_value=np.nan)
    if numbers.isna().any():
        raise ScoringError(f"column '{name}': empty values, but the model needs an integer ({dtype}) there")
    return numbers.to_numpy(dtype=np.int64 if dtype == "int64" else np.int32)


# (model folder, signature) -> (loaded module, signature function), per Python process: a module-level cache
# reached through a module-level function, so cloudpickle ships a reference to it (not a copy) and an executor's
# reused Python worker loads each model once, however many tasks and partitions it runs.
_LOADED: Dict[tuple, tuple] = {}


def loaded_signature(model_dir: str, signature: str):
    key = (model_dir, signature)
    if key not in _LOADED:
        import tensorflow as tf

        module = tf.saved_model.load(model_dir)
        _LOADED[key] = (module, module.signatures[signature])
    return _LOADED[key][1]


def score_frames(model_dir: str, signature: str, inputs: Dict, outputs: Dict, batch_size: int):
    """The function mapInPandas runs on each partition: every Arrow batch converted as whole columns, scored
    in slices of `batch_size` rows, the outputs appended as columns."""

    def score(frames: Iterator):
        import tensorflow as tf

        fn = loaded_signature(model_dir, signature)
        for frame in frames:
            arrays = {k: _column_to_array(frame[k], dtype, k) for k, (dtype, _) in inputs.items()}
            scored = {name: [] for name in outputs}
            for start in range(0, len(frame), batch_size):
                result = fn(**{k: tf.constant(a[start : start + batch_size]) for k, a in arrays.items()})
                for name in outputs:
                    scored[name].append(result[name].numpy())
            for name in outputs:
                per_row = (np.concatenate(scored[name]) if scored[name] else np.zeros((0, 1))).astype(np.float64)
                per_row = per_row.reshape(len(frame), -1)
                frame[name] = per_row[:, 0] if per_row.shape[1] == 1 else list(per_row)
            yield frame

    return score


def latest_model_dir(model: str, version: str = None) -> str:

    try:
        return version_dir(default_serving_dir() / model, version)
    except NoPushedModel as exc:
        raise ScoringError(str(exc)) from None


def run(
    spark,
    model_dir: str,
    input_path: str,
    output_path: str,
    signature: str = RAW_SIGNATURE,
    batch_size: int = 1024,
    overwrite: bool = False,
) -> int:
    """Scores `input_path` (CSV with a header, or Parquet) with the SavedModel's `signature` into the Parquet
    folder `output_path`; returns the number of rows written. Row order is Spark's: keep a key column."""
    inputs, outputs = signature_io(model_dir, signature)
    cores = spark.sparkContext.defaultParallelism
    conf, saved = spark.conf, {}
    try:
        df = _read(spark, input_path)
        if df.rdd.getNumPartitions() < cores:
            # Spark splits a file only into pieces of at least openCostInBytes (4 MB): a smaller table would be
            # scored by one core. Smaller pieces for this job (Parquet splits at row groups), a shuffle only when
            # the file still cannot be split (one row group, gzip).
            size = _input_bytes(input_path)  # 0 where it cannot be told (a remote file system)
            if size:
                for key, value in (
                    ("spark.sql.files.maxPartitionBytes", max(1 << 16, size // cores + 1)),
                    ("spark.sql.files.openCostInBytes", 0),
                ):
                    saved[key] = conf.get(key, None)
                    conf.set(key, str(value))
                df = _read(spark, input_path)
            if df.rdd.getNumPartitions() < cores:
                df = df.repartition(cores)
        return _score_and_write(
            df, model_dir, input_path, output_path, signature, inputs, outputs, batch_size, overwrite, spark
        )
    finally:
        for key, value in saved.items():
            conf.unset(key) if value is None else conf.set(key, value)


def _read(spark, input_path: str):
    if input_path.endswith(".parquet") or os.path.isdir(input_path):
        return spark.read.parquet(input_path)
    # everything as text: the model's dtypes decide, not Spark's guesses
    return spark.read.csv(input_path, header=True, inferSchema=False)


def _input_bytes(input_path: str) -> int:
    path = Path(input_path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


def _score_and_write(
    df, model_dir, input_path, output_path, signature, inputs, outputs, batch_size, overwrite, spark
) -> int:
    from pyspark.sql import types as T

    missing = sorted(k for k in inputs if k not in df.columns)
    if missing:
        raise ScoringError(f"{input_path}: columns {missing} missing; the model takes {sorted(inputs)}")
    clashing = [k for k in outputs if k in df.columns]
    if clashing:
        raise ScoringError(f"{input_path}: already has columns {clashing}, the names of the model's outputs")
    fields = list(df.schema.fields)
    for name, shape in outputs.items():
        one = len(shape) <= 1 or (len(shape) == 2 and shape[1] == 1)
        fields.append(T.StructField(name, T.DoubleType() if one else T.ArrayType(T.DoubleType())))
    scored = df.mapInPandas(score_frames(model_dir, signature, inputs, outputs, batch_size), T.StructType(fields))
    scored.write.mode("overwrite" if overwrite else "errorifexists").parquet(output_path)
    return spark.read.parquet(output_path).count()


def spark_session(master: str, conf: Optional[Dict[str, str]] = None):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this venv's TensorFlow
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName("tfx-book-batch-scoring")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "32768")  # per-batch costs, amortised
        .config("spark.ui.enabled", "false")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _positive_int(env, name: str, default: int) -> int:
    text = env.get(name, "") or str(default)
    if not text.isdigit() or int(text) < 1:
        raise ScoringError(f"{name}={text!r} must be a positive integer")
    return int(text)


def _check_reachable(master: str) -> None:
    """A standalone master that does not answer is said at once: Spark's client would retry for a minute and
    then fail the session with "All masters are unresponsive"."""
    import socket

    for address in master[len("spark://") :].split(","):
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            raise ScoringError(f"SPARK_MASTER={master!r}: expected spark://host:port")
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                return
        except OSError as exc:
            problem = exc
    raise ScoringError(
        f"SPARK_MASTER={master}: no Spark master answers at {master} ({problem}); start it, fix "
        f"the address, or unset SPARK_MASTER (and --master) to start a cluster for the command"
    )


@contextlib.contextmanager
def where_to_score(master: Optional[str], log_dir: Path, env=None) -> Iterator[tuple]:
    """(master URL, session settings, description): --master, else SPARK_MASTER, else a standalone cluster
    started for the block."""
    env = os.environ if env is None else env
    master = master or env.get("SPARK_MASTER", "").strip()
    if master:
        if not (master.startswith(("spark://", "local", "yarn", "k8s://"))):
            raise ScoringError(
                f"--master / SPARK_MASTER={master!r}: expected spark://host:port, local[N], yarn or k8s://..."
            )
        if master.startswith("spark://"):
            _check_reachable(master)
        yield master, {}, f"Spark at {master}"
        return

    workers = _positive_int(env, "SPARK_WORKERS", 2)
    try:
        with standalone_cluster(log_dir, workers, env.get("SPARK_WORKER_MEMORY", "2g")) as cluster:
            yield cluster.master_url, cluster.session_conf(), cluster.describe()
    except SparkClusterError as exc:
        raise ScoringError(str(exc).partition("\n")[0]) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="pipeline name: its newest pushed version (or --version)")
    which.add_argument("--model-dir", help="a SavedModel folder")
    parser.add_argument("--version")
    parser.add_argument("--input", required=True, help="CSV (with header) or Parquet")
    parser.add_argument("--output", required=True, help="Parquet folder to write")
    parser.add_argument(
        "--master",
        help="spark://host:port or local[N] (default: SPARK_MASTER, else a standalone cluster started for the command)",
    )
    parser.add_argument(
        "--log-dir", default=str(default_output_dir() / "logs" / "spark"), help="where a started cluster's logs go"
    )
    parser.add_argument("--signature", default=RAW_SIGNATURE)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        model_dir = args.model_dir or latest_model_dir(args.model, args.version)
        if not Path(args.input).exists():
            raise ScoringError(f"{args.input}: no such file or folder")
        with where_to_score(args.master, Path(args.log_dir)) as (master, conf, described):
            print(f"scoring on {described}", flush=True)
            spark = spark_session(master, conf)
            try:
                rows = run(spark, model_dir, args.input, args.output, args.signature, args.batch_size, args.overwrite)
            finally:
                spark.stop()
    except ScoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"scored {rows} rows with {model_dir}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
