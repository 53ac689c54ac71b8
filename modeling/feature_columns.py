"""The book's nine feature-column kinds (chapter 5-2) as one declarative spec, and free text.

A spec is a list of *model columns* (Numeric, Indicator, Embedding); Indicator and Embedding wrap a
*categorical column* (Bucketized, CategoricalIdentity, VocabularyList, VocabularyFile, HashBucket, Crossed), as
`tf.feature_column` does. From the same spec come:

- `transform(spec, raw)`: the tf.Transform ops for `preprocessing_fn`. Analyzers (means, variances, vocabularies)
  run once over the whole training data in Beam; every categorical column becomes int64 ids in
  [0, num_buckets) so the model never sees a string.
- `keras_inputs(spec, tft_output)` and `encode(spec, inputs, tft_output)`: the matching Keras inputs and the
  dense tensor the model consumes (one-hot for Indicator, a trainable lookup for Embedding).

Raw values may arrive dense or sparse (a CSV column with empty cells is a VarLenFeature); a missing value is an
empty cell, a NaN or an empty string, and numeric columns can add a 0/1 "<name>_missing" flag for it as the book
does with its `*_nan` columns.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import tensorflow as tf
import tensorflow_transform as tft

from core import dates

MISSING_SUFFIX = "_missing"


# --------------------------------------------------------------------------- columns
@dataclasses.dataclass(frozen=True)
class Numeric:
    """numeric_column: a float, z-score scaled with statistics of the training data, missing -> the mean."""

    key: str
    normalize: bool = True
    missing_flag: bool = True

    @property
    def name(self) -> str:
        return self.key


@dataclasses.dataclass(frozen=True)
class Bucketized:
    """bucketized_column: a numeric raw feature cut at fixed boundaries (len(boundaries)+1 buckets)."""

    key: str
    boundaries: Sequence[float]

    @property
    def name(self) -> str:
        return f"{self.key}_bucketized"


@dataclasses.dataclass(frozen=True)
class CategoricalIdentity:
    """categorical_column_with_identity: an integer already in [0, num_buckets); others -> default_value."""

    key: str
    num_buckets: int
    default_value: int = 0

    @property
    def name(self) -> str:
        return f"{self.key}_identity"


@dataclasses.dataclass(frozen=True)
class VocabularyList:
    """categorical_column_with_vocabulary_list: a fixed list; anything else (and missing) -> num_oov buckets."""

    key: str
    vocabulary: Sequence[str]
    num_oov_buckets: int = 1

    @property
    def name(self) -> str:
        return f"{self.key}_vocab"


@dataclasses.dataclass(frozen=True)
class VocabularyFile:
    """categorical_column_with_vocabulary_file: the vocabulary file is computed by tft.vocabulary over the data."""

    key: str
    top_k: Optional[int] = None
    frequency_threshold: Optional[int] = None
    num_oov_buckets: int = 1

    @property
    def name(self) -> str:
        return f"{self.key}_vocabfile"

    @property
    def vocab_filename(self) -> str:
        return f"vocab_{self.key}"


@dataclasses.dataclass(frozen=True)
class HashBucket:
    """categorical_column_with_hash_bucket: a string (or integer, as text) hashed into hash_bucket_size buckets."""

    key: str
    hash_bucket_size: int

    @property
    def name(self) -> str:
        return f"{self.key}_hashed"


@dataclasses.dataclass(frozen=True)
class Crossed:
    """crossed_column: the combination of categorical columns, hashed into hash_bucket_size buckets."""

    columns: Sequence["Categorical"]
    hash_bucket_size: int

    @property
    def name(self) -> str:
        return "_x_".join(c.name for c in self.columns)


Categorical = Union[Bucketized, CategoricalIdentity, VocabularyList, VocabularyFile, HashBucket, Crossed]


@dataclasses.dataclass(frozen=True)
class Indicator:
    """indicator_column: the categorical ids as a one-hot vector."""

    categorical: Categorical

    @property
    def name(self) -> str:
        return self.categorical.name


@dataclasses.dataclass(frozen=True)
class Embedding:
    """embedding_column: the categorical ids looked up in a trainable [num_buckets, dimension] table."""

    categorical: Categorical
    dimension: int

    @property
    def name(self) -> str:
        return self.categorical.name


@dataclasses.dataclass(frozen=True)
class Text:
    """Free text: lower-cased, punctuation removed, split on spaces; the `vocab_size` most frequent tokens of the
    training data (one tf.Transform vocabulary) become ids, the first `max_tokens` of each value kept; the model
    averages their trainable `dimension`-wide embeddings (a bag of words)."""

    key: str
    vocab_size: int = 20000
    max_tokens: int = 100
    dimension: int = 16

    @property
    def name(self) -> str:
        return f"{self.key}_tokens"

    @property
    def vocab_filename(self) -> str:
        return f"vocab_{self.key}_tokens"


TEXT_PAD_ID, TEXT_OOV_ID = 0, 1  # vocabulary token i gets id i + 2


@dataclasses.dataclass(frozen=True)
class Date:
    """A date or timestamp in one of core/dates.py's formats (or Unix seconds, `format="unix_seconds"`), read from
    the raw value in the graph: days since 1970 and the year (z-scored, the trend), month, day of month, day of
    week, day of year and, for a timestamp, the hour (z-scored, and each as sin and cos of its phase, so December
    sits next to January), and a 0/1 flag where the value is missing."""

    key: str
    format: str

    @property
    def name(self) -> str:
        return f"{self.key}_date"

    @property
    def parts(self) -> List[str]:
        periodic = [p for p in dates.PERIODS if p != "hour" or self.has_time]
        return ["days", "year", *periodic, *(f"{p}_{f}" for p in periodic for f in ("sin", "cos"))]

    @property
    def has_time(self) -> bool:
        return self.format == dates.UNIX or dates.FORMATS[self.format].has_time

    @property
    def feature_names(self) -> List[str]:
        return [f"{self.name}_{p}" for p in self.parts] + [self.name + MISSING_SUFFIX]


ModelColumn = Union[Numeric, Indicator, Embedding, Text, Date]


def raw_keys(spec: Sequence[ModelColumn]) -> List[str]:
    """The raw feature names the spec reads, in first-use order."""
    keys: List[str] = []

    def visit(col):
        if isinstance(col, (Text, Date)):
            if col.key not in keys:
                keys.append(col.key)
        elif isinstance(col, (Indicator, Embedding)):
            visit(col.categorical)
        elif isinstance(col, Crossed):
            for c in col.columns:
                visit(c)
        elif col.key not in keys:
            keys.append(col.key)

    for column in spec:
        visit(column)
    return keys


def transformed_names(spec: Sequence[ModelColumn]) -> List[str]:
    """The names of the features `transform` writes for these columns (what the model's inputs are called)."""
    names: List[str] = []
    for col in spec:
        if isinstance(col, Date):
            names.extend(col.feature_names)
            continue
        names.append(col.name)
        if isinstance(col, Numeric) and col.missing_flag:
            names.append(col.name + MISSING_SUFFIX)
    return names


# --------------------------------------------------------------------------- tf.Transform side
def _densify(x: Union[tf.Tensor, tf.SparseTensor], default) -> tf.Tensor:
    """A rank-1 dense tensor from a [batch, 1] dense or sparse raw feature; absent values -> default."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(tf.sparse.reset_shape(x, [x.dense_shape[0], 1]), default_value=tf.cast(default, x.dtype))
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def _present(x: Union[tf.Tensor, tf.SparseTensor]) -> tf.Tensor:
    """True where the raw value is present (not an empty cell, NaN or empty string)."""
    if x.dtype == tf.string:
        return tf.strings.length(_densify(x, "")) > 0
    if x.dtype.is_floating:
        return tf.logical_not(tf.math.is_nan(_densify(x, float("nan"))))
    if isinstance(x, tf.SparseTensor):
        return _densify(tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.int8), x.dense_shape), 0) > 0
    return tf.ones_like(_densify(x, 0), tf.bool)


def _as_string(x: Union[tf.Tensor, tf.SparseTensor]) -> tf.Tensor:
    dense = _densify(x, "" if x.dtype == tf.string else 0)
    return dense if dense.dtype == tf.string else tf.strings.as_string(dense)


def _numeric_values(x) -> tf.Tensor:
    return tf.cast(_densify(x, float("nan") if x.dtype.is_floating else 0), tf.float32)


class _ZScores:
    """Every z-scored series of a spec (numeric columns, a date's parts), scaled with one `tft.mean` and one
    `tft.var` over their stack instead of a pair per series.

    tf.Transform packs the combiners of per-series analyzers into one accumulation, but then hands each result
    to the graph as its own Beam output, two per series; on Flink, whose DataSet optimizer refuses any node with
    more than 64 outputs (flink-optimizer OptimizerNode.addOutgoingConnection, apache/beam#28429), a table with
    26 such series (20 numbers and a date) could not run Transform. Stacked, any width is two outputs. The
    statistics are the same per series: `reduce_instance_dims=False` keeps one mean and variance per column,
    and tf.Transform leaves NaN (an absent value) out of both (tf_utils.reduce_batch_count_mean_and_var).

    Used in two passes: `scaled(name, x)` before `analyze()` records x (float32 [batch], NaN where absent) and
    returns it unscaled; after, it returns (x - mean) / std with that series' statistics."""

    def __init__(self):
        self._series: Dict[str, tf.Tensor] = {}
        self._index: Dict[str, int] = {}
        self._mean: Optional[tf.Tensor] = None
        self._std: Optional[tf.Tensor] = None

    def scaled(self, name: str, x: tf.Tensor) -> tf.Tensor:
        if self._mean is None:
            self._series.setdefault(name, x)
            return x
        i = self._index[name]
        return (x - self._mean[i]) / self._std[i]

    def analyze(self) -> None:
        if not self._series:
            self._mean = tf.zeros([0])  # nothing to scale; marks the second pass
            return
        self._index = {name: i for i, name in enumerate(self._series)}
        stacked = tf.stack(list(self._series.values()), axis=1)
        self._mean = tft.mean(stacked, reduce_instance_dims=False)
        std = tf.sqrt(tft.var(stacked, reduce_instance_dims=False))
        self._std = tf.where(std > 0, std, tf.ones_like(std))


class _TransformBuilder:
    """Builds each column's tf.Transform ops once, so a column shared by a cross and an indicator
    (e.g. age buckets) gets one analyzer, not two."""

    def __init__(self, raw: Dict[str, Union[tf.Tensor, tf.SparseTensor]]):
        self._raw = raw
        self._ids: Dict[str, tf.Tensor] = {}
        # transform() visits numeric and date columns twice (_ZScores): the second visit reuses the first's
        # tensors, so the graph parses each raw column once
        self._floats: Dict[str, tf.Tensor] = {}
        self._dates: Dict[str, Tuple[Dict[str, tf.Tensor], tf.Tensor]] = {}

    def raw(self, key: str):
        try:
            return self._raw[key]
        except KeyError:
            raise KeyError(
                f"feature column needs raw feature {key!r}, which the input lacks (has: {sorted(self._raw)})"
            ) from None

    def numeric(self, col: Numeric, z_scores: "_ZScores") -> Dict[str, tf.Tensor]:
        x = self._raw_float(col.key)
        present = tf.logical_not(tf.math.is_nan(x))
        if col.normalize:
            value = tf.where(present, z_scores.scaled(col.name, x), tf.zeros_like(x))  # the mean, once scaled
        else:
            value = tf.where(present, x, tf.zeros_like(x))
        out = {col.name: value}
        if col.missing_flag:
            out[col.name + MISSING_SUFFIX] = tf.cast(tf.logical_not(present), tf.float32)
        return out

    def _raw_float(self, key: str) -> tf.Tensor:
        if key not in self._floats:
            x = self.raw(key)
            values = _numeric_values(x)
            if not x.dtype.is_floating:  # an integer column: absent cells were filled with 0 above
                values = tf.where(_present(x), values, tf.fill(tf.shape(values), float("nan")))
            self._floats[key] = values
        return self._floats[key]

    def date_parts(self, col: Date) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
        if col.name not in self._dates:
            self._dates[col.name] = date_parts(col, self.raw(col.key))
        return self._dates[col.name]

    def ids(self, col: Categorical) -> tf.Tensor:
        if col.name not in self._ids:
            self._ids[col.name] = tf.cast(self._compute_ids(col), tf.int64)
        return self._ids[col.name]

    def _compute_ids(self, col: Categorical) -> tf.Tensor:
        if isinstance(col, Bucketized):
            x = self._raw_float(col.key)
            boundaries = tf.constant([list(col.boundaries)], tf.float32)
            # A missing value falls in the first bucket, as the book's fillna(0) puts it.
            filled = tf.where(tf.math.is_nan(x), tf.zeros_like(x), x)
            return tft.apply_buckets(filled, boundaries)
        if isinstance(col, CategoricalIdentity):
            raw = self.raw(col.key)
            if raw.dtype == tf.string:
                x = tf.strings.to_number(_densify(raw, str(col.default_value)), tf.int64)
            else:
                x = tf.cast(_densify(raw, col.default_value), tf.int64)
            in_range = tf.logical_and(x >= 0, x < col.num_buckets)
            return tf.where(in_range, x, tf.fill(tf.shape(x), tf.constant(col.default_value, tf.int64)))
        if isinstance(col, VocabularyList):
            keys = tf.constant([str(v) for v in col.vocabulary])
            table = tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(col.vocabulary), dtype=tf.int64)),
                num_oov_buckets=col.num_oov_buckets,
            )
            return table.lookup(_as_string(self.raw(col.key)))
        if isinstance(col, VocabularyFile):
            return tft.compute_and_apply_vocabulary(
                _as_string(self.raw(col.key)),
                top_k=col.top_k,
                frequency_threshold=col.frequency_threshold,
                num_oov_buckets=col.num_oov_buckets,
                vocab_filename=col.vocab_filename,
            )
        if isinstance(col, HashBucket):
            return tf.strings.to_hash_bucket_fast(_as_string(self.raw(col.key)), col.hash_bucket_size)
        if isinstance(col, Crossed):
            parts = [tf.strings.as_string(self.ids(c)) for c in col.columns]
            return tf.strings.to_hash_bucket_fast(tf.strings.join(parts, separator="_x_"), col.hash_bucket_size)
        raise TypeError(f"not a categorical column: {col!r}")


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (int64 tensors; H. Hinnant's days_from_civil)."""
    y = y - tf.cast(m <= 2, tf.int64)
    era = tf.math.floordiv(y, 400)
    yoe = y - era * 400
    doy = tf.math.floordiv(153 * tf.math.floormod(m + 9, 12) + 2, 5) + d - 1
    doe = yoe * 365 + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100) + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    """(year, month, day) of days since 1970-01-01 (int64 tensors; H. Hinnant's civil_from_days)."""
    z = z + 719468
    era = tf.math.floordiv(z, 146097)
    doe = z - era * 146097
    yoe = tf.math.floordiv(
        doe - tf.math.floordiv(doe, 1460) + tf.math.floordiv(doe, 36524) - tf.math.floordiv(doe, 146096), 365
    )
    doy = doe - (365 * yoe + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100))
    mp = tf.math.floordiv(5 * doy + 2, 153)
    d = doy - tf.math.floordiv(153 * mp + 2, 5) + 1
    m = tf.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + tf.cast(m <= 2, tf.int64), m, d


def date_parts(col: Date, raw) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
    """({part: float32 [batch]} as core/dates.py calendar() gives them, present [batch] bool) from the raw
    feature: the string as the table had it (its format's pattern), or Unix seconds."""
    if col.format == dates.UNIX:
        seconds = tf.cast(_densify(raw, float("nan") if raw.dtype.is_floating else 0), tf.float64)
        present = tf.logical_and(_present(raw), tf.math.is_finite(seconds))
        seconds = tf.where(present, seconds, tf.zeros_like(seconds))
        days = tf.cast(tf.math.floor(seconds / 86400.0), tf.int64)
        y, m, d = _civil_from_days(days)
        hour = tf.cast(tf.math.floor(tf.math.floormod(seconds, 86400.0) / 3600.0), tf.int64)
    else:
        fmt = dates.FORMATS[col.format]
        text = tf.strings.strip(_densify(raw, "") if raw.dtype == tf.string else _as_string(raw))
        present = tf.strings.regex_full_match(text, fmt.pattern)
        fields = tf.strings.regex_replace(text, "^" + fmt.pattern + "$", fmt.rewrite())
        fields = tf.where(present, fields, tf.fill(tf.shape(fields), "1970 1 1 0"))
        numbers = tf.strings.to_number(tf.strings.split(fields).to_tensor(shape=[None, 4], default_value="0"), tf.int64)
        y, m, d, hour = numbers[:, 0], numbers[:, 1], numbers[:, 2], numbers[:, 3]
        days = _days_from_civil(y, m, d)
    parts = {
        "days": days,
        "year": y,
        "month": m,
        "dom": d,
        "dow": tf.math.floormod(days + 3, 7),  # 1970-01-01 was a Thursday; Monday is 0, as datetime.weekday()
        "doy": days - _days_from_civil(y, tf.ones_like(m), tf.ones_like(d)) + 1,
        "hour": hour,
    }
    return {k: tf.cast(v, tf.float32) for k, v in parts.items()}, present


def _date_features(col: Date, builder: _TransformBuilder, z_scores: "_ZScores") -> Dict[str, tf.Tensor]:
    values, present = builder.date_parts(col)
    out = {}
    for part in ["days", "year", *(p for p in dates.PERIODS if p in col.parts)]:
        x = values[part]
        name = f"{col.name}_{part}"
        out[name] = tf.where(present, z_scores.scaled(name, tf.where(present, x, float("nan"))), tf.zeros_like(x))
        if part in dates.PERIODS:
            start = 0.0 if part in ("dow", "hour") else 1.0
            phase = 2 * math.pi * (x - start) / dates.PERIODS[part]
            out[f"{col.name}_{part}_sin"] = tf.where(present, tf.sin(phase), tf.zeros_like(phase))
            out[f"{col.name}_{part}_cos"] = tf.where(present, tf.cos(phase), tf.zeros_like(phase))
    out[col.name + MISSING_SUFFIX] = tf.cast(tf.logical_not(present), tf.float32)
    return out


def _text_ids(col: Text, raw) -> tf.Tensor:
    """[batch, max_tokens] int64: vocabulary ids shifted past PAD and OOV, unknown tokens -> OOV, then padding."""
    text = tf.strings.lower(_densify(raw, "") if raw.dtype == tf.string else _as_string(raw), encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[^\w\s]", " ")
    tokens = tf.strings.split(text)
    vocabulary = tft.vocabulary(tokens.to_sparse(), top_k=col.vocab_size, vocab_filename=col.vocab_filename)
    kept = tokens[:, : col.max_tokens].to_sparse()
    looked_up = tft.apply_vocabulary(kept, vocabulary, default_value=-1)
    values = tf.where(looked_up.values < 0, tf.constant(TEXT_OOV_ID, tf.int64), looked_up.values + 2)
    sparse = tf.SparseTensor(looked_up.indices, values, looked_up.dense_shape)
    batch = tf.shape(tokens.row_lengths(), out_type=tf.int64)[0]
    padded = tf.sparse.to_dense(
        tf.sparse.reset_shape(sparse, tf.stack([batch, col.max_tokens])), default_value=TEXT_PAD_ID
    )
    return tf.reshape(padded, [-1, col.max_tokens])


def transform(spec: Sequence[ModelColumn], raw: Dict[str, Union[tf.Tensor, tf.SparseTensor]]) -> Dict[str, tf.Tensor]:
    """tf.Transform outputs for the spec: floats for numeric columns, int64 ids for categorical ones, [batch,
    max_tokens] ids for text."""
    builder = _TransformBuilder(raw)
    # first every z-scored series is collected, then scaled with one pair of analyzers (_ZScores)
    z_scores = _ZScores()
    for col in spec:
        if isinstance(col, Numeric):
            builder.numeric(col, z_scores)
        elif isinstance(col, Date):
            _date_features(col, builder, z_scores)
    z_scores.analyze()
    outputs: Dict[str, tf.Tensor] = {}
    texts: Dict[str, tf.Tensor] = {}
    for col in spec:
        if isinstance(col, Text):
            texts[col.name] = _text_ids(col, builder.raw(col.key))
        elif isinstance(col, Numeric):
            outputs.update(builder.numeric(col, z_scores))
        elif isinstance(col, Date):
            outputs.update(_date_features(col, builder, z_scores))
        elif isinstance(col, (Indicator, Embedding)):
            outputs[col.name] = builder.ids(col.categorical)
        else:
            raise TypeError(
                f"{col!r} is not a model column: wrap categorical columns in Indicator(...) or Embedding(...)"
            )
    # [batch, 1] so every transformed feature is a FixedLenFeature of shape [1], what keras_inputs declares.
    return {**{name: tf.expand_dims(t, -1) for name, t in outputs.items()}, **texts}


# --------------------------------------------------------------------------- Keras side
def num_buckets(col: Categorical, tft_output=None) -> int:
    """How many ids a categorical column's transformed feature can take (a vocabulary file's size is read from
    the Transform output, so it needs `tft_output`)."""
    if isinstance(col, Bucketized):
        return len(col.boundaries) + 1
    if isinstance(col, CategoricalIdentity):
        return col.num_buckets
    if isinstance(col, VocabularyList):
        return len(col.vocabulary) + col.num_oov_buckets
    if isinstance(col, VocabularyFile):
        if tft_output is None:
            raise ValueError(f"{col.name}: the vocabulary size is known only from the Transform output")
        return tft_output.vocabulary_size_by_name(col.vocab_filename) + col.num_oov_buckets
    if isinstance(col, (HashBucket, Crossed)):
        return col.hash_bucket_size
    raise TypeError(f"not a categorical column: {col!r}")


def keras_inputs(spec: Sequence[ModelColumn]) -> Dict[str, tf.keras.Input]:
    """One Keras Input per transformed feature, shape (1,): float32 for numeric columns, int64 for ids."""
    inputs = {}
    for col in spec:
        if isinstance(col, Text):
            inputs[col.name] = tf.keras.Input(shape=(col.max_tokens,), name=col.name, dtype=tf.int64)
    for name in transformed_names(spec):
        if name in inputs:
            continue
        is_float = any(
            isinstance(c, Numeric)
            and name in (c.name, c.name + MISSING_SUFFIX)
            or isinstance(c, Date)
            and name in c.feature_names
            for c in spec
        )
        inputs[name] = tf.keras.Input(shape=(1,), name=name, dtype=tf.float32 if is_float else tf.int64)
    return inputs


def encode(spec: Sequence[ModelColumn], inputs: Dict[str, tf.Tensor], tft_output=None) -> tf.Tensor:
    """The concatenated dense features the model's first layer consumes, like DenseFeatures did."""
    parts = []
    for col in spec:
        if isinstance(col, Numeric):
            parts.append(tf.cast(inputs[col.name], tf.float32))
            if col.missing_flag:
                parts.append(tf.cast(inputs[col.name + MISSING_SUFFIX], tf.float32))
        elif isinstance(col, Indicator):
            n = num_buckets(col.categorical, tft_output)
            parts.append(
                tf.keras.layers.CategoryEncoding(num_tokens=n, output_mode="one_hot", name=f"{col.name}_onehot")(
                    inputs[col.name]
                )
            )
        elif isinstance(col, Embedding):
            n = num_buckets(col.categorical, tft_output)
            emb = tf.keras.layers.Embedding(n, col.dimension, name=f"{col.name}_embedding")(inputs[col.name])
            parts.append(tf.keras.layers.Reshape((col.dimension,))(emb))
        elif isinstance(col, Date):
            parts.extend(tf.cast(inputs[name], tf.float32) for name in col.feature_names)
        elif isinstance(col, Text):
            if tft_output is None:
                raise ValueError(f"{col.name}: the vocabulary size is known only from the Transform output")
            n = tft_output.vocabulary_size_by_name(col.vocab_filename) + 2
            emb = tf.keras.layers.Embedding(n, col.dimension, mask_zero=True, name=f"{col.name}_embedding")(
                inputs[col.name]
            )
            parts.append(tf.keras.layers.GlobalAveragePooling1D(name=f"{col.name}_mean")(emb))
        else:
            raise TypeError(f"{col!r} is not a model column")
    return tf.keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
