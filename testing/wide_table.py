"""A table as wide as bench/own_data_bench.py's 1,000,000-row one and wider (40 numbers with absent values,
8 categories, a date), small enough for a test: on Flink, Transform once failed at submission for such a table
(a node with more than 64 outputs) and then at run time (TFDV's accumulator bigger than a sort buffer). Here,
not in tests/, because Beam's workers import the preprocessing_fn by this module's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from modeling import feature_columns as fc

NUMBERS, CATEGORIES, ROWS = 40, 8, 300
SHOPS = ["north", "south", "east", "west"]


def spec() -> list:
    return (
        [fc.Numeric(f"x{i}") for i in range(NUMBERS)]
        + [fc.Indicator(fc.VocabularyFile(f"c{i}")) for i in range(CATEGORIES)]
        + [fc.Date("day", "iso")]
    )


def preprocessing_fn(inputs):
    return fc.transform(spec(), inputs)


def write(examples_dir: Path, schema_dir: Path, seed: int = 0) -> None:
    """Split-train and Split-eval of ROWS gzipped tf.Examples each under examples_dir, schema.pbtxt in schema_dir;
    x<i> is absent on every seventh row (a different one per column)."""
    from tensorflow_transform.tf_metadata import schema_utils

    rng = np.random.default_rng(seed)
    feature_spec = {f"x{i}": tf.io.VarLenFeature(tf.float32) for i in range(NUMBERS)}
    feature_spec.update({f"c{i}": tf.io.FixedLenFeature([], tf.string) for i in range(CATEGORIES)})
    feature_spec["day"] = tf.io.FixedLenFeature([], tf.string)
    schema_dir.mkdir(parents=True)
    (schema_dir / "schema.pbtxt").write_text(str(schema_utils.schema_from_feature_spec(feature_spec)))
    for split in ("train", "eval"):
        (examples_dir / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(examples_dir / f"Split-{split}" / "data.gz"), options="GZIP") as writer:
            for row in range(ROWS):
                writer.write(_example(row, rng).SerializeToString())


def _example(row: int, rng) -> tf.train.Example:
    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def text(value: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

    feature = {f"x{i}": floats([] if row % 7 == i % 7 else [rng.normal(i, 1 + i)]) for i in range(NUMBERS)}
    feature.update({f"c{i}": text(SHOPS[int(rng.integers(0, len(SHOPS)))]) for i in range(CATEGORIES)})
    year, month, day = int(rng.integers(2015, 2023)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    feature["day"] = text(f"{year}-{month:02d}-{day:02d}")
    return tf.train.Example(features=tf.train.Features(feature=feature))
