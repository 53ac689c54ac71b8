"""Your own data in one command: a pipeline drafted from a table, as code you are meant to read and edit.

    python -m scaffold.new_pipeline NAME DATA LABEL [--task auto|binary|multiclass|regression]
    (or: make new-pipeline NAME=churn DATA=~/data/churn LABEL=Exited [TASK=...])

Design notes: docs/design-notes.md, scaffold/new_pipeline.py."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import keyword
import math
import random
import re
import string
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pipelines
from components.table_example_gen import MISSING, header_name, is_missing
from core import dates
from pipelines import registry

PIPELINES_DIR = Path(pipelines.__file__).resolve().parent
TASKS = ("auto", "binary", "multiclass", "regression")
MAX_CLASSES = 50  # a label with more values is not a classification label (TASK=multiclass overrides up to 200)
FEW_VALUES = 20  # a string column with at most this many values is one-hot; more: hashed into an embedding
TEXT_WORDS = 6  # a string column averaging this many words or more is free text
SNIFF_BYTES = 1 << 16
PROFILE_ROWS = 50_000  # rows the draft profiles and fits its baseline on: a uniform sample of a larger file
RESERVED = set(keyword.kwlist) | {"metadata", "runners", "tools", "spec", "registry", "factory", "config"}


class ScaffoldError(ValueError):
    """The table cannot become a pipeline as asked; the message names the file or column and what to do."""


# ------------------------------------------------------------------------------------------------ the data
@dataclasses.dataclass
class Layout:
    root: Path  # DATA
    sample_dir: Path  # the folder the draft reads: DATA, or its newest span
    spans: bool
    splits: List[Tuple[str, str]]  # (split, file name) for train/test; [("single_split", name)] for one file

    @property
    def hash_split(self) -> bool:
        return self.splits[0][0] == "single_split"


def find_layout(root: Path) -> Layout:
    if not root.exists():
        raise ScaffoldError(f"DATA={root} does not exist")
    if not root.is_dir():
        raise ScaffoldError(
            f"DATA={root} is a file; give the folder that holds it (its train.* and test.*, or the one file)"
        )
    spans = sorted(
        (p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"span-\d+", p.name)), key=lambda p: int(p.name[5:])
    )
    sample = spans[-1] if spans else root
    files = sorted(p for p in sample.iterdir() if p.is_file() and not p.name.startswith("."))
    train = [p for p in files if p.stem.lower() == "train"]
    test = [p for p in files if p.stem.lower() in ("test", "eval")]
    if train and test:
        splits = [("train", train[0].name), ("eval", test[0].name)]
    elif len(files) == 1:
        splits = [("single_split", files[0].name)]
    elif not files:
        raise ScaffoldError(f"{sample} holds no file: put the table there (train.csv and test.csv, or one file)")
    else:
        raise ScaffoldError(
            f"{sample} holds {len(files)} files ({', '.join(p.name for p in files[:5])}): expected "
            f"train.* and test.* (the two splits), or a single file (split by hash)"
        )
    return Layout(root.resolve(), sample, bool(spans), splits)


@dataclasses.dataclass
class Dialect:
    delimiter: str
    quoted_header: bool
    quotechar: str = '"'

    def describe(self) -> str:
        name = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}[self.delimiter]
        quotes = {'"': "double", "'": "single"}[self.quotechar]
        return f"{name}-separated, header names {'quoted' if self.quoted_header else 'unquoted'}, {quotes} quotes"


def sniff(path: Path) -> Dialect:
    raw = path.read_bytes()[:SNIFF_BYTES]
    if not raw.strip():
        raise ScaffoldError(f"{path} is empty; expected a header line naming the columns and rows under it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not only a character cut at the end of the sample
            raise ScaffoldError(
                f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
            ) from None
        text = raw[: exc.start].decode("utf-8-sig")
    first = text.splitlines()[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    quotechar = '"'
    try:
        sniffed = csv.Sniffer().sniff(text[: 1 << 14], delimiters=",\t;|")
        delimiter = sniffed.delimiter
        quotechar = sniffed.quotechar if sniffed.quotechar in ('"', "'") else '"'
    except csv.Error:
        delimiter = max(counts, key=counts.get)
    if counts.get(delimiter, 0) == 0:
        delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        raise ScaffoldError(
            f"{path}: the first line has no comma, tab, semicolon or '|': expected a header naming at least two columns"
        )
    cells = first.split(delimiter)
    if quotechar == '"' and cells and all(len(c.strip()) >= 2 and c.strip()[0] == c.strip()[-1] == "'" for c in cells):
        quotechar = "'"  # every header cell in single quotes: the Sniffer saw too few to tell
    return Dialect(delimiter, first.lstrip()[:1] in ('"', "'"), quotechar)


@dataclasses.dataclass
class Table:
    header: List[str]
    rows: List[List[str]]  # every row, or a seeded uniform sample of PROFILE_ROWS of them
    total: int  # the rows the file holds
    labels: set  # the label's distinct values over every row (the classes the pipeline will read)


def read_rows(path: Path, dialect: Dialect, label: Optional[str] = None, limit: int = PROFILE_ROWS) -> Table:
    """The file read once, in bounded memory: every row's label value, and a uniform sample of `limit` rows
    (reservoir sampling, seeded) for the profile and the baseline."""
    sampler = random.Random(0)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quotechar)
        try:
            header = [header_name(h) for h in next(reader)]
        except StopIteration:
            raise ScaffoldError(f"{path} is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ScaffoldError(f"{path}: unreadable header ({exc})") from None
        if len(set(header)) != len(header) or "" in header:
            dup = sorted({h for h in header if header.count(h) > 1 or not h})
            raise ScaffoldError(f"{path}: the header names columns {dup!r} more than once or not at all")
        rows, total, labels = [], 0, set()
        at = header.index(label) if label in header else None
        try:
            for values in reader:
                if not values or not any(v.strip() for v in values):
                    continue
                if at is not None and at < len(values) and len(labels) <= 1000:
                    labels.add(values[at].strip())
                total += 1
                if len(rows) < limit:
                    rows.append((values + [""] * len(header))[: len(header)])
                else:
                    slot = sampler.randrange(total)
                    if slot < limit:
                        rows[slot] = (values + [""] * len(header))[: len(header)]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ScaffoldError(f"{path}:{reader.line_num}: unreadable ({exc})") from None
    if not rows:
        raise ScaffoldError(f"{path}: a header line and no rows")
    labels.discard("")
    return Table(header, rows, total, {v for v in labels if not is_missing(v)})


# ------------------------------------------------------------------------------------------------ columns
@dataclasses.dataclass
class Profile:
    name: str
    kind: str  # int, float or string
    present: List[str]  # the non-missing raw values
    missing: int
    rows: int

    @property
    def distinct(self) -> int:
        return len(set(self.present))

    def numbers(self) -> List[float]:
        return [float(v) for v in self.present]

    @property
    def mean_words(self) -> float:
        return sum(len(v.split()) for v in self.present) / max(len(self.present), 1)


def _kind(values: Sequence[str]) -> str:
    """int when every present value is a whole number (3 or 3.0), float when a finite number, else string."""
    if not values:
        return "string"
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return "string"
    if not all(math.isfinite(n) for n in numbers):
        return "string"
    return "int" if all(n.is_integer() for n in numbers) else "float"


def profile(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Dict[str, Profile]:
    found = {}
    for i, name in enumerate(header):
        column = [r[i] for r in rows]
        present = [v.strip() for v in column if not is_missing(v)]
        found[name] = Profile(name, _kind(present), present, len(column) - len(present), len(column))
    return found


@dataclasses.dataclass
class Choice:
    column: str
    kind: str  # numeric, one-hot, embedding, text, date, label, dropped
    code: str  # the feature_columns expression ("" when dropped)
    why: str
    date_format: str = ""  # a date column's format (core/dates.py)

    @property
    def date_kind(self) -> str:
        """TableExampleGen's type for a date string column ("date:<format>"); "" otherwise (Unix seconds are a
        number as the table has them)."""
        return f"date:{self.date_format}" if self.date_format and self.date_format != dates.UNIX else ""


def choose_task(label: Profile, task: str) -> Tuple[str, List[str], str]:
    """(task, class names in class-index order, why)."""
    values = sorted(set(label.present), key=lambda v: (float(v), v) if label.kind != "string" else (0, v))
    if task == "auto":
        if label.kind == "float" and not all(float(v).is_integer() for v in label.present):
            task = "regression"
            why = "real-valued label"
        elif label.kind != "string" and len(values) > 10:
            task = "regression"
            why = f"a number with {len(values)} values"
        elif len(values) == 2:
            task, why = "binary", f"two values: {values}"
        elif len(values) <= MAX_CLASSES:
            task, why = "multiclass", f"{len(values)} values"
        else:
            raise ScaffoldError(
                f"label {label.name!r} is text with {len(values)} values: too many classes to "
                f"learn; give TASK=multiclass to insist, or another label"
            )
    else:
        why = "TASK=" + task
    if task == "regression":
        if label.kind == "string":
            raise ScaffoldError(f"label {label.name!r} holds text (e.g. {values[0]!r}): not a regression target")
        return task, [], why
    if task == "binary" and len(values) != 2:
        raise ScaffoldError(f"TASK=binary, but label {label.name!r} has {len(values)} values: {values[:10]}")
    if task == "multiclass" and not 3 <= len(values) <= 200:
        raise ScaffoldError(f"TASK=multiclass, but label {label.name!r} has {len(values)} values")
    if task == "binary":
        positives = [v for v in values if v.lower() in ("1", "1.0", "true", "yes", "y", "positive", "pos")]
        if positives:  # the positive class second: the served probability is P(positive)
            values = [v for v in values if v != positives[0]] + [positives[0]]
        why += f"; P({values[1]!r}) is the served probability"
    return task, values, why


def choose_features(profiles: Dict[str, Profile], label: str) -> List[Choice]:
    choices = []
    for name, p in profiles.items():
        if name == label:
            continue
        date_format = _date_format(p)
        if not p.present:
            choices.append(Choice(name, "dropped", "", "always missing"))
        elif date_format:  # before the identifier rule: a date differs on every row and is no identifier
            shown = "Unix seconds" if date_format == dates.UNIX else dates.FORMATS[date_format].shown
            made = fc_date_parts(date_format)
            choices.append(
                Choice(
                    name,
                    "date",
                    f'fc.Date("{name}", "{date_format}")',
                    f"a date ({shown}, e.g. {p.present[0][:25]!r}): {made}",
                    date_format,
                )
            )
        elif p.distinct == 1:
            choices.append(Choice(name, "dropped", "", f"constant ({p.present[0][:20]!r}): nothing to learn"))
        elif p.distinct == len(p.present) == p.rows and (
            p.kind == "string" and p.mean_words < TEXT_WORDS or p.kind == "int" and (_is_counter(p) or _id_name(name))
        ):
            choices.append(Choice(name, "dropped", "", "an identifier: a different value on every row"))
        elif p.kind in ("int", "float"):
            choices.append(
                Choice(
                    name,
                    "numeric",
                    f'fc.Numeric("{name}")',
                    f"{p.kind}, {p.distinct} values"
                    + (f", {p.missing} missing (a 0/1 flag says which)" if p.missing else ""),
                )
            )
        elif p.mean_words >= TEXT_WORDS:
            choices.append(
                Choice(
                    name,
                    "text",
                    f'fc.Text("{name}")',
                    f"free text, {p.mean_words:.0f} words on average: a bag of word embeddings",
                )
            )
        elif p.distinct <= FEW_VALUES:
            choices.append(
                Choice(
                    name,
                    "one-hot",
                    f'fc.Indicator(fc.VocabularyFile("{name}"))',
                    f"text with {p.distinct} values: one-hot over the data's vocabulary",
                )
            )
        else:
            buckets = 1 << max(6, min(12, math.ceil(math.log2(p.distinct * 2))))
            choices.append(
                Choice(
                    name,
                    "embedding",
                    f'fc.Embedding(fc.HashBucket("{name}", {buckets}), 8)',
                    f"text with {p.distinct} values: hashed into {buckets} buckets, an 8-wide embedding",
                )
            )
    if not any(c.kind != "dropped" for c in choices):
        raise ScaffoldError(
            "no column is left to learn from: every column but the label is an identifier, constant or always missing"
        )
    return choices


DATE_SAMPLE = 2000  # values the format is detected on; then every value is checked in it


def _date_format(p: Profile) -> str:
    """The column's date format (core/dates.py), or "" when it is not a date column."""
    if p.kind == "string" and p.present:
        fmt = dates.detect(p.present[:DATE_SAMPLE])
        if fmt and all(dates.parse(v, fmt) is not None for v in p.present):
            return fmt
    if p.kind in ("int", "float") and dates.is_unix_seconds(p.name, p.numbers()):
        return dates.UNIX
    return ""


def fc_date_parts(date_format: str) -> str:
    """What the table of choices says a date column became."""
    from modeling import feature_columns as fc  # heavy: TensorFlow, only once a date column is found

    column = fc.Date("x", date_format)
    periodic = [p for p in dates.PERIODS if p in column.parts]
    return f"days since 1970, year, {', '.join(periodic)}; sin/cos of each periodic one; a missing flag"


def _id_name(name: str) -> bool:
    return bool(re.search(r"(^|_|\b)(id|uuid|key|index|row)$", name, re.I) or re.search(r"[a-z]Id$", name))


def _is_counter(p: Profile) -> bool:
    numbers = sorted(int(float(v)) for v in p.present)
    return numbers[-1] - numbers[0] == len(numbers) - 1  # 1..n, a row number


# ------------------------------------------------------------------------------------------------ baseline
def calendar_matrix(raw: Sequence[str], date_format: str):
    """Per row: the calendar parts, sin/cos of the periodic ones, a missing flag (as modeling/feature_columns.py
    Date makes them), for the baseline."""
    import numpy as np

    rows = []
    for value in raw:
        if is_missing(value):
            rows.append(None)
            continue
        when = dates.from_unix(float(value)) if date_format == dates.UNIX else dates.parse(value, date_format)
        rows.append(dates.calendar(when))
    keys = list(dates.calendar(dates.from_unix(0)))
    out = []
    for row in rows:
        if row is None:
            out.append([0.0] * (len(keys) + 2 * len(dates.PERIODS)) + [1.0])
            continue
        cyclic = []
        for part, period in dates.PERIODS.items():
            start = 0.0 if part in ("dow", "hour") else 1.0
            phase = 2 * np.pi * (row[part] - start) / period
            cyclic += [np.sin(phase), np.cos(phase)]
        out.append([row[k] for k in keys] + cyclic + [0.0])
    return np.array(out, dtype=float)


def _hash_eval(row: Sequence[str]) -> bool:
    """A deterministic 1-in-3 split of a single file for the baseline (the pipeline's own split differs: TFX hashes
    the serialized tf.Example; both are 2:1)."""
    return int(hashlib.sha256("\x1f".join(row).encode()).hexdigest(), 16) % 3 == 0


def baseline(
    header, train_rows, eval_rows, label: str, task: str, classes: List[str], choices: List[Choice]
) -> Dict[str, float]:
    """A plain scikit-learn model on the same columns: standardized numbers (missing: the mean, plus a flag),
    one-hot categories, hashed words for text; logistic regression or ridge. The draft's bounds come from it."""
    import numpy as np
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score, roc_curve
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    index = {h: i for i, h in enumerate(header)}

    def columns(rows, fit=None):
        parts, fitted = [], fit or {}
        for c in choices:
            if c.kind == "dropped":
                continue
            raw = [r[index[c.column]] for r in rows]
            if c.kind == "numeric":
                values = np.array([np.nan if is_missing(v) else float(v) for v in raw])[:, None]
                flag = np.isnan(values).astype(float)
                if c.column not in fitted:
                    fitted[c.column] = StandardScaler().fit(np.where(np.isnan(values), np.nanmean(values), values))
                mean = fitted[c.column].mean_
                parts.append(
                    sparse.csr_matrix(
                        np.hstack([fitted[c.column].transform(np.where(np.isnan(values), mean, values)), flag])
                    )
                )
            elif c.kind == "text":
                parts.append(HashingVectorizer(n_features=1 << 14, alternate_sign=False, norm="l2").transform(raw))
            elif c.kind == "date":  # the same calendar features the transform computes
                values = calendar_matrix(raw, c.date_format)
                if c.column not in fitted:
                    fitted[c.column] = StandardScaler().fit(values)
                parts.append(sparse.csr_matrix(fitted[c.column].transform(values)))
            else:
                cells = np.array([["" if is_missing(v) else v.strip()] for v in raw], dtype=object)
                if c.column not in fitted:
                    fitted[c.column] = OneHotEncoder(handle_unknown="ignore").fit(cells)
                parts.append(fitted[c.column].transform(cells))
        return sparse.hstack(parts).tocsr(), fitted

    x_train, fitted = columns(train_rows)
    x_eval, _ = columns(eval_rows, fitted)
    y_raw = [[r[index[label]].strip() for r in rows] for rows in (train_rows, eval_rows)]
    if task == "regression":
        y_train, y_eval = (np.array([float(v) for v in ys]) for ys in y_raw)
        model = Ridge(alpha=1.0).fit(x_train, y_train)
        predicted = model.predict(x_eval)
        mse = float(mean_squared_error(y_eval, predicted))
        variance = float(np.var(y_eval)) or 1.0
        # what a model predicting the training mean scores: the bounds must refuse it
        constant = float(mean_squared_error(y_eval, np.full(len(y_eval), float(np.mean(y_train)))))
        return {"mse": mse, "r2": 1.0 - mse / variance, "constant_mse": constant}
    keep = [[v in classes for v in ys] for ys in y_raw]
    y_train = np.array([classes.index(v) for v, k in zip(y_raw[0], keep[0]) if k])
    y_eval = np.array([classes.index(v) for v, k in zip(y_raw[1], keep[1]) if k])
    x_train, x_eval = x_train[np.array(keep[0])], x_eval[np.array(keep[1])]
    model = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    probabilities = model.predict_proba(x_eval)
    found = {"accuracy": float(accuracy_score(y_eval, model.classes_[probabilities.argmax(1)]))}
    # a model predicting one class for every row is right this often: the bounds must refuse it
    found["majority_share"] = float(np.bincount(y_eval).max() / len(y_eval)) if len(y_eval) else 0.0
    if task == "binary" and len(set(y_eval)) == 2:
        found["auc"] = float(roc_auc_score(y_eval, probabilities[:, 1]))
        fpr, tpr, _ = roc_curve(y_eval, probabilities[:, 1])
        found["ks"] = float(np.max(tpr - fpr))
    elif task == "multiclass" and len(set(y_eval)) == len(model.classes_) >= 3:
        found["macro_auc"] = float(roc_auc_score(y_eval, probabilities, multi_class="ovr", average="macro"))
    return found


MARGIN = 0.05  # how far under the linear baseline a drafted model may score and still be pushed
KS_MARGIN = 0.10  # KS moves more than AUC between two fits on a few hundred rows
CHANCE = 0.01  # every bound is this much beyond what a model predicting a constant scores


IMBALANCE = 3.0  # the largest class this many times the smallest: classes are weighted


def class_weights(labels: Sequence[str], classes: List[str]) -> Tuple[Dict[str, float], str]:
    """Balanced weights ({class index: n / (classes x count)}, at most 50) when the classes are imbalanced, else
    none; and why, for the table of choices."""
    counts = [sum(1 for v in labels if v == c) for c in classes]
    if not classes or min(counts) == 0:
        return {}, "no class weights: a class has no training row"
    smallest = min(counts) / sum(counts)
    if max(counts) < IMBALANCE * min(counts):
        return {}, f"no class weights: the classes are within {IMBALANCE:g}x of each other"
    weights = {str(i): round(min(50.0, sum(counts) / (len(classes) * n)), 4) for i, n in enumerate(counts)}
    rare = classes[counts.index(min(counts))]
    return weights, f"balanced class weights: {rare!r} is {smallest:.1%} of the training rows"


def draft_bounds(task: str, found: Dict[str, float]) -> Tuple[Dict[str, float], Dict[str, str]]:
    """Bounds a model must meet to be pushed, each with where it comes from: a little under the baseline, and
    never at or below what a model predicting a constant scores (AUC 0.5, KS 0, the majority class's share of the
    rows, the MSE of the training mean), so every bound can fail."""
    bounds, why = {}, {}

    def at_least(name: str, metric: str, margin: float, chance: float, chance_name: str) -> None:
        from_baseline = found[metric] - margin
        value = round(max(chance + CHANCE, from_baseline), 3)
        bounds[name] = value
        if value > round(from_baseline, 3):
            why[name] = f"{chance_name} {chance:.3f} + {CHANCE} (the baseline's {found[metric]:.3f} is no better)"
        else:
            why[name] = f"baseline {metric.replace('_', ' ')} {found[metric]:.3f} - {margin}"

    if task == "binary" and "auc" in found:
        at_least("min_auc", "auc", MARGIN, 0.5, "a constant model's AUC")
        at_least("min_ks", "ks", KS_MARGIN, 0.0, "a constant model's KS")
    elif task == "binary":
        why["bounds"] = "none drafted: the eval rows hold one class (defaults apply)"
    if task == "multiclass":
        at_least("min_accuracy", "accuracy", MARGIN, found["majority_share"], "the majority class's share")
        if "macro_auc" in found:
            at_least("min_macro_auc", "macro_auc", MARGIN, 0.5, "a constant model's macro AUC")
    if task == "regression":
        ceiling = found["constant_mse"] * (1 - CHANCE)
        value = float(f"{min(found['mse'] * 1.25, ceiling):.6g}")
        bounds["max_mse"] = value
        why["max_mse"] = (
            f"1.25 x baseline MSE {found['mse']:.6g} (R² {found['r2']:.3f})"
            if found["mse"] * 1.25 <= ceiling
            else f"under the training mean's MSE {found['constant_mse']:.6g} (the baseline's is no better)"
        )
    return bounds, why


# ------------------------------------------------------------------------------------------------ schema
def infer_schema(
    header, rows, profiles: Dict[str, Profile], label: str, task: str, classes: List[str], choices: List[Choice]
):
    """TFDV's schema of the examples TableExampleGen will write: every kept column typed as drafted, the label
    required (a class index for classification), the features optional (a missing value is allowed anywhere)."""
    import pandas as pd
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    index = {h: i for i, h in enumerate(header)}
    kept = [c.column for c in choices if c.kind != "dropped"]
    frame = {}
    for name in kept:
        p = profiles[name]
        raw = [r[index[name]] for r in rows]
        if p.kind == "string":
            frame[name] = [None if is_missing(v) else v for v in raw]
        else:
            frame[name] = [float("nan") if is_missing(v) else float(v) for v in raw]
            if p.kind == "int" and not p.missing:
                frame[name] = [int(v) for v in frame[name]]
    labels = [r[index[label]].strip() for r in rows]
    frame[label] = [float(v) for v in labels] if task == "regression" else [classes.index(v) for v in labels]
    df = pd.DataFrame(frame)
    stats = tfdv.generate_statistics_from_dataframe(df)
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    for feature in schema.feature:
        if feature.name == label:
            feature.presence.min_fraction = 1.0
            feature.presence.min_count = 1
            feature.ClearField("domain")
            feature.ClearField("int_domain")
            feature.ClearField("float_domain")
            feature.ClearField("string_domain")
            feature.type = schema_pb2.FLOAT if task == "regression" else schema_pb2.INT
            feature.shape.dim.add().size = 1  # a FixedLenFeature: the Trainer's label
            continue
        feature.presence.min_fraction = 0.0  # missing values are allowed: numeric ones get a flag
        feature.presence.min_count = 0
        feature.ClearField("domain")
        feature.ClearField("int_domain")
        feature.ClearField("float_domain")
        if feature.type == schema_pb2.INT and profiles[feature.name].kind == "float":
            feature.type = schema_pb2.FLOAT
        if profiles[feature.name].kind == "int":
            feature.type = schema_pb2.INT
        if profiles[feature.name].kind == "string":
            feature.type = schema_pb2.BYTES
    del schema.string_domain[:]  # unseen categories are expected in new data: the vocabulary has an OOV bucket
    return schema


# ------------------------------------------------------------------------------------------------ the code
TEMPLATES = Path(__file__).resolve().parent / "templates"  # files that look like the Python they become
WIDTH = 100  # no drafted line is longer


def _q(value) -> str:
    """A Python literal as ruff's formatter writes it: strings in double quotes."""
    if isinstance(value, bool) or not isinstance(value, (str, dict, list)):
        return repr(value)
    if isinstance(value, str) and '"' in value and "'" not in value:
        return repr(value)  # as ruff writes it: single quotes rather than an escaped double quote
    return json.dumps(value, ensure_ascii=False)


def _comments(text: str, indent: str) -> List[str]:
    return textwrap.wrap(text, WIDTH - len(indent) - 2, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ")


def _block(items: List[Tuple[List[str], str]], opening: str, closing: str, indent: str = "    ") -> str:
    """A list or dict literal, one item a line with its comment lines above it; {} or [] when empty."""
    if not items:
        return opening + closing
    lines = [opening]
    for comments, item in items:
        lines += comments + [f"{indent}{item},"]
    return "\n".join(lines + [indent[:-4] + closing])


def _string_literal(value: str, indent: str = "") -> str:
    """A string literal that stays within WIDTH, split into adjacent literals when it has to be."""
    literal = _q(value)
    if len(indent) + len(literal) + 14 <= WIDTH:
        return literal
    chunk = WIDTH - len(indent) - 10
    parts = [_q(value[i : i + chunk]) for i in range(0, len(value), chunk)]
    return "(\n" + "".join(f"{indent}    {part}\n" for part in parts) + indent + ")"


def _fill(template: str, **values) -> str:
    return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def render(
    name: str,
    layout: Layout,
    dialect: Dialect,
    label: str,
    task: str,
    classes: List[str],
    choices: List[Choice],
    profiles: Dict[str, Profile],
    bounds: Dict[str, float],
    baseline_found: Dict[str, float],
    drift: Dict[str, float],
    column_kinds: Dict[str, str],
    bounds_why: Dict[str, str],
    trainer_options: Dict[str, object],
    weights_why: str,
) -> Dict[str, str]:
    """The drafted package's files, from the templates in scaffold/templates/."""
    kept = [c for c in choices if c.kind != "dropped"]
    dropped = [c for c in choices if c.kind == "dropped"]
    date = time.strftime("%Y-%m-%d")
    if task == "regression":
        numbers = [float(v) for v in profiles[label].present]
        mean = sum(numbers) / len(numbers)
        std = (sum((v - mean) ** 2 for v in numbers) / len(numbers)) ** 0.5 or 1.0
        label_constants = "\n".join(
            [
                "LABEL_CLASSES = []  # regression: no classes",
                "# the training label's mean and spread when drafted: the network's output is scaled by them",
                f"LABEL_MEAN = {mean!r}",
                f"LABEL_STD = {std!r}",
            ]
        )
        imports = "FEATURES, LABEL_MEAN, LABEL_STD"
    else:
        label_constants = "\n".join(
            _comments(
                "the label's values in class-index order (TableExampleGen maps each to its index; an unknown "
                "value in new data is an error naming file and line)",
                "",
            )
            + [
                "LABEL_CLASSES = " + _block([([], _q(c)) for c in classes], "[", "]")
                if len(_q(classes)) > 70
                else f"LABEL_CLASSES = {json.dumps(classes, ensure_ascii=False)}"
            ]
        )
        imports = "FEATURES, LABEL_CLASSES" if task == "multiclass" else "FEATURES"
    if task == "binary":
        problem_note = f"binary: P({_q(classes[1])}) is served"
    else:
        problem_note = f"multi-class over {len(classes)} classes" if task == "multiclass" else "regression"
    label_train = {
        "binary": "LABEL_CLASSES index (0 or 1)",
        "multiclass": "LABEL_CLASSES index",
        "regression": "the value",
    }[task]
    features = _block([(_comments(c.why, "    "), c.code) for c in kept], "[", "]")
    dropped_lines = "\n".join(line for c in dropped for line in _comments(f"left out: {c.column!r}, {c.why}", ""))
    columns = _block(
        [
            (
                [],
                f'column({_q(n)}, "date", {_q(k.split(":", 1)[1])})'
                if k.startswith("date:")
                else f"column({_q(n)}, {_q(k)})",
            )
            for n, k in column_kinds.items()
        ],
        "[",
        "]",
    )
    split_items = [("single_split", layout.splits[0][1])] if layout.hash_split else layout.splits
    splits = "[" + ", ".join(f"({_q(s)}, prefix + {_q(f)})" for s, f in split_items) + "]"
    options = [
        (_comments(weights_why, "        ") if key == "class_weights" else [], f"{_q(key)}: {_q(value)}")
        for key, value in trainer_options.items()
    ]
    bound_items = [
        (_comments(bounds_why.get(k, "from the baseline"), "        "), f"{_q(k)}: {v!r}") for k, v in bounds.items()
    ]
    baseline = ", ".join(f"{k} {v:.4g}" for k, v in baseline_found.items()) or "none"
    return {
        "__init__.py": _fill("__init__.py.tmpl", name=name),
        "features.py": _fill(
            "features.py.tmpl",
            name=name,
            date=date,
            label=_q(label),
            label_shown=repr(label),
            problem_note=problem_note,
            label_constants=label_constants,
            dropped_lines=(dropped_lines + "\n") if dropped_lines else "",
            features=features,
            label_train=label_train,
        ),
        "model.py": _fill("model.py.tmpl", name=name, imports=imports, head=_fill(f"head_{task}.py.tmpl").rstrip("\n")),
        "spec.py": _fill(
            "spec.py.tmpl",
            name=name,
            name_q=_q(name),
            task=task,
            task_q=_q(task),
            date=date,
            dialect=dialect.describe(),
            spans_note="span-N/ folders" if layout.spans else "one folder",
            baseline="\n".join(textwrap.wrap(baseline, WIDTH)),
            data_root=_string_literal(str(layout.root)),
            columns=columns,
            splits=splits,
            delimiter=_q(dialect.delimiter),
            quotechar=_q(dialect.quotechar),
            hash_split=repr(layout.hash_split),
            trainer_options=_block(options, "{", "}", "        "),
            bounds=_block(bound_items, "{", "}", "        "),
            drift=_block([([], f"{_q(k)}: {v!r}") for k, v in drift.items()], "{", "}", "        "),
        ),
        "local_runner.py": _fill("local_runner.py.tmpl", name=name),
    }


# ------------------------------------------------------------------------------------------------ the command
def scaffold(name: str, data: Path, label: str, task: str = "auto", out_root: Path = PIPELINES_DIR, log=print) -> Path:
    started = time.monotonic()
    if not name.isidentifier() or not name.islower() or name in RESERVED or name.startswith("_") or len(name) > 40:
        raise ScaffoldError(
            f"NAME={name!r}: a pipeline name is a lower-case Python identifier of at most 40 characters "
            f"(e.g. churn, iris_2), not a reserved word"
        )
    target = out_root / name

    if name in registry.discover() and not target.exists():
        raise ScaffoldError(
            f"a pipeline named {name!r} exists already ({registry.package_dir(name)}); pick another NAME"
        )
    if target.exists():
        raise ScaffoldError(f"pipelines/{name} exists already; it is not overwritten (remove it, or pick another NAME)")
    if task not in TASKS:
        raise ScaffoldError(f"TASK={task!r} is not one of {', '.join(TASKS)}")
    layout = find_layout(Path(data).expanduser())
    train_file = layout.sample_dir / layout.splits[0][1]
    dialect = sniff(train_file)
    table = read_rows(train_file, dialect, label)
    header, rows = table.header, table.rows
    if label not in header:
        raise ScaffoldError(
            f"LABEL={label!r} is not a column of {train_file} (its columns: {', '.join(map(repr, header))})"
        )
    if layout.hash_split:
        train_rows = [r for r in rows if not _hash_eval(r)]
        eval_rows = [r for r in rows if _hash_eval(r)]
        where = f"{train_file.name}, split by hash 2:1"
    else:
        eval_file = layout.sample_dir / layout.splits[1][1]
        eval_dialect = sniff(eval_file)
        eval_table = read_rows(eval_file, eval_dialect, label)
        eval_header, eval_rows = eval_table.header, eval_table.rows
        table.labels |= eval_table.labels
        table.total += eval_table.total
        missing = [h for h in header if h not in eval_header]
        if missing or (eval_dialect.delimiter, eval_dialect.quotechar) != (dialect.delimiter, dialect.quotechar):
            raise ScaffoldError(
                f"{eval_file} does not match {train_file}: "
                + (f"no column {missing[0]!r}" if missing else "another delimiter or quote character")
            )
        order = [eval_header.index(h) for h in header]
        eval_rows = [[r[i] for i in order] for r in eval_rows]
        train_rows = rows
        where = f"{layout.splits[0][1]} (train) and {layout.splits[1][1]} (eval)"
    profiles = profile(header, train_rows)
    target_profile = profiles[label]
    if target_profile.missing == target_profile.rows:
        raise ScaffoldError(f"LABEL={label!r} is missing on every row of {train_file}")
    if target_profile.distinct < 2:
        raise ScaffoldError(
            f"LABEL={label!r} is constant ({target_profile.present[0]!r}) in {train_file}: there is nothing to predict"
        )
    unlabeled = target_profile.missing
    if unlabeled:  # rows without a label teach nothing: the pipeline skips them too (TableExampleGen counts them)
        label_index = header.index(label)
        train_rows = [r for r in train_rows if not is_missing(r[label_index])]
        eval_rows = [r for r in eval_rows if not is_missing(r[label_index])]
        profiles = profile(header, train_rows)
        target_profile = profiles[label]
    label_index = header.index(label)
    # the classes of every row, not only the sampled ones: a rare class outside the sample would be an unknown
    # class to TableExampleGen
    every_label = Profile(label, target_profile.kind, sorted(table.labels) or target_profile.present, 0, 0)
    task, classes, task_why = choose_task(every_label, task)  # the classes of every row the pipeline will read
    choices = choose_features(profiles, label)
    found = baseline(header, train_rows, eval_rows, label, task, classes, choices)
    bounds, bounds_why = draft_bounds(task, found)
    kept = [c for c in choices if c.kind != "dropped"]
    drift = {c.column: 0.1 for c in kept if c.kind in ("numeric", "one-hot")}
    column_kinds = {c.column: c.date_kind or profiles[c.column].kind for c in kept}
    column_kinds[label] = "float" if task == "regression" else "string"
    schema = infer_schema(header, train_rows, profiles, label, task, classes, choices)
    trainer_options = {"holdout_every": 5, "early_stopping_patience": 10, "restore_best_weights": True}
    weights, weights_why = (
        ({}, "") if task == "regression" else class_weights([r[label_index].strip() for r in train_rows], classes)
    )
    if weights:
        trainer_options["class_weights"] = weights
    files = render(
        name,
        layout,
        dialect,
        label,
        task,
        classes,
        choices,
        profiles,
        bounds,
        found,
        drift,
        column_kinds,
        bounds_why,
        trainer_options,
        weights_why,
    )

    from google.protobuf import text_format

    staging = out_root / f".{name}.drafting"
    staging.mkdir(parents=True, exist_ok=False)
    try:
        for file_name, text in files.items():
            (staging / file_name).write_text(text, encoding="utf-8")
        (staging / "schema.pbtxt").write_text(text_format.MessageToString(schema), encoding="utf-8")
        staging.rename(target)  # all of it or nothing
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise

    sampled = len(rows) + (0 if layout.hash_split else len(eval_rows))
    log(
        f"[new-pipeline] {name} from {layout.root}: {where}; {dialect.describe()}; missing values read from "
        f"{', '.join(repr(m) for m in MISSING if m)} and empty cells; {len(train_rows)} training rows, "
        f"{len(eval_rows)} eval rows"
        + (f"; {unlabeled} row(s) without a label skipped" if unlabeled else "")
        + (
            f"; profiled and baselined on a uniform sample of {sampled:,} of {table.total:,} rows (every row "
            f"read for the label's classes)"
            if table.total > sampled
            else ""
        )
        + (f"; span folders: the newest, {layout.sample_dir.name}, drafted from" if layout.spans else "")
    )
    width = max(len(c.column) for c in choices + [Choice(label, "", "", "")])
    log(f"[new-pipeline] {'column':<{width}}  {'use':<9}  why")
    log(f"[new-pipeline] {label:<{width}}  {'label':<9}  {task}: {task_why}")
    for c in choices:
        log(f"[new-pipeline] {c.column:<{width}}  {c.kind:<9}  {c.why}")
    log(
        f"[new-pipeline] schema: TFDV's inference on the training rows, {len(schema.feature)} features, "
        f"missing values allowed in features, the label required"
    )
    log(
        f"[new-pipeline] baseline (scikit-learn {'ridge' if task == 'regression' else 'logistic regression'}, "
        f"same split): {', '.join(f'{k} {v:.4f}' for k, v in found.items())}"
    )
    if not bounds:
        log(f"[new-pipeline] Evaluator bounds: defaults ({bounds_why.get('bounds', 'no baseline')})")
    for key, value in bounds.items():
        log(f"[new-pipeline] Evaluator bound {key} {value:g}: {bounds_why[key]}")
    if task != "regression":
        log(f"[new-pipeline] class weights: {weights_why}")
    log(f"[new-pipeline] drift thresholds: 0.1 for {len(drift)} feature(s) (numbers and categories)")
    log(
        f"[new-pipeline] wrote {target}/ ({', '.join(sorted(list(files) + ['schema.pbtxt']))}) in "
        f"{time.monotonic() - started:.1f} s; next: make run PIPELINE={name}"
    )
    return target


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("data", type=Path)
    parser.add_argument("label")
    parser.add_argument("--task", default="auto", choices=TASKS)
    parser.add_argument(
        "--into",
        type=Path,
        default=PIPELINES_DIR,
        help="the folder the package goes in (default pipelines/; another one: add it to PIPELINES_PATH)",
    )
    args = parser.parse_args(argv)
    try:
        scaffold(args.name, args.data, args.label, args.task, out_root=args.into)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
