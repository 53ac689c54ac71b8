"""Score a CSV or Parquet table with a pushed model on Spark; write Parquet with the predictions appended.

    python -m serving.spark_batch --model titanic --input data/raw/titanic/test.csv --output scored.parquet
    python -m serving.spark_batch --model-dir outputs/serving/titanic/1795940502 --input big.parquet \
        --output scored.parquet --master spark://host:7077

The book's chapter 6-7 does this in Scala; here it is Python over the same SavedModel. Each partition loads
the model once (mapInPandas) and scores its rows in batches through the `serving_raw` signature. Columns are
matched to the signature's inputs by name: numbers become the input's dtype (an empty cell becomes NaN,
"missing", for float inputs), text stays text. A one-value output becomes a double column named after the
output; a longer one an array<double> column. Spark writes the output atomically (a failed job leaves no
_SUCCESS and no partial table under the final name).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, Iterator

import numpy as np

from components.layout import RAW_SIGNATURE



class ScoringError(ValueError):
    pass


def signature_io(model_dir: str, signature: str):
    """({input: (dtype name, shape)}, {output: shape}) read from the SavedModel, without loading it."""
    from serving.repository import read_signature_defs
    import tensorflow as tf

    defs = read_signature_defs(Path(model_dir))
    if signature not in defs:
        raise ScoringError(f"{model_dir}: no signature {signature!r} (has {sorted(defs)})")
    sig = defs[signature]
    shape = lambda info: [d.size for d in info.tensor_shape.dim]  # noqa: E731
    inputs = {k: (tf.dtypes.as_dtype(v.dtype).name, shape(v)) for k, v in sig.inputs.items()}
    outputs = {k: shape(v) for k, v in sig.outputs.items()}
    return inputs, outputs


def _column_to_array(series, dtype: str, name: str) -> np.ndarray:
    if dtype == "string":
        return np.array([v if isinstance(v, (bytes, bytearray)) else ("" if v is None or v != v else str(v)).encode()
                         for v in series], dtype=object)
    import pandas as pd

    numbers = pd.to_numeric(series, errors="coerce")
    bad = series[numbers.isna() & series.notna() & (series.astype(str) != "")]
    if len(bad):
        raise ScoringError(f"column '{name}': {bad.iloc[0]!r} is not a number")
    if dtype.startswith("float"):
        return numbers.to_numpy(dtype=np.float32 if dtype == "float32" else np.float64)
    if numbers.isna().any():
        raise ScoringError(f"column '{name}': empty values, but the model needs an integer ({dtype}) there")
    return numbers.to_numpy(dtype=np.int64 if dtype == "int64" else np.int32)


def score_frames(model_dir: str, signature: str, inputs: Dict, outputs: Dict, batch_size: int):
    """The function mapInPandas runs: loads the model once per partition, then scores every batch."""
    def score(frames: Iterator):
        import tensorflow as tf

        fn = tf.saved_model.load(model_dir).signatures[signature]
        for frame in frames:
            for start in range(0, len(frame), batch_size):
                chunk = frame.iloc[start:start + batch_size].copy()
                feed = {k: tf.constant(_column_to_array(chunk[k], dtype, k)) for k, (dtype, _) in inputs.items()}
                result = fn(**feed)
                for name in outputs:
                    values = result[name].numpy().astype(np.float64)
                    per_row = values.reshape(len(chunk), -1)
                    chunk[name] = per_row[:, 0] if per_row.shape[1] == 1 else list(per_row)
                yield chunk
    return score


def latest_model_dir(model: str, version: str = None) -> str:
    from components.layout import NoPushedModel, version_dir
    from pipelines import config as config_lib

    try:
        return version_dir(config_lib.from_env().serving_root(model), version)
    except NoPushedModel as exc:
        raise ScoringError(str(exc)) from None


def run(spark, model_dir: str, input_path: str, output_path: str, signature: str = RAW_SIGNATURE,
        batch_size: int = 1024, overwrite: bool = False) -> int:
    from pyspark.sql import types as T

    inputs, outputs = signature_io(model_dir, signature)
    if input_path.endswith(".parquet") or os.path.isdir(input_path):
        df = spark.read.parquet(input_path)
    else:
        # everything as text: the model's dtypes decide, not Spark's guesses
        df = spark.read.csv(input_path, header=True, inferSchema=False)
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


def spark_session(master: str):
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers need this venv's TensorFlow
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName("tfx-book-batch-scoring")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")
            .config("spark.ui.enabled", "false").getOrCreate())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="pipeline name: its newest pushed version (or --version)")
    which.add_argument("--model-dir", help="a SavedModel folder")
    parser.add_argument("--version")
    parser.add_argument("--input", required=True, help="CSV (with header) or Parquet")
    parser.add_argument("--output", required=True, help="Parquet folder to write")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--signature", default=RAW_SIGNATURE)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        model_dir = args.model_dir or latest_model_dir(args.model, args.version)
        if not Path(args.input).exists():
            raise ScoringError(f"{args.input}: no such file or folder")
        spark = spark_session(args.master)
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
