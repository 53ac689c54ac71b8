"""The one Trainer `run_fn` every dataset uses: seeds, strategy, tf.data input, fit, export.

What differs per dataset arrives in `custom_config` (JSON-friendly, so it is recorded in ML Metadata): the
dotted path of its model builder, the label, epochs, batch size, strategy and seed.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import random
import shutil
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import signatures
from components import provenance, strategies
from components.keras_env import require_legacy_keras

RAW_SIGNATURE = signatures.RAW
EXAMPLE_SIGNATURE = signatures.EXAMPLES
TRAINING_RUN_FILE = "training_run.json"


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    model_builder: str  # dotted path: build(tft_output) -> compiled Keras model
    label_key: str
    raw_feature_keys: List[str]  # what the raw serving signature takes
    output_name: str = "probability"
    epochs: int = 10
    batch_size: int = 32
    strategy: str = "default"
    seed: int = 42
    code_fingerprint: str = ""  # recorded only: it makes TFX's cache notice code edits
    # Validation data: every n-th *training* example held out (never the eval split the Evaluator judges), or
    # with 0 the eval split, shown for information as the book does.
    holdout_every: int = 0
    early_stopping_patience: int = 0  # 0: no early stopping
    early_stopping_monitor: str = "val_loss"
    restore_best_weights: bool = True
    reduce_lr_patience: int = 0  # 0: no ReduceLROnPlateau
    reduce_lr_monitor: str = "val_loss"
    reduce_lr_factor: float = 0.5
    warm_start: bool = False  # start from the latest blessed model's weights (fn_args.base_model)
    # Raw features the JSON signature takes in another shape than the schema's, e.g. {"window": [8, 3]}
    raw_shapes: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.early_stopping_monitor.startswith("val_") and self.early_stopping_patience and not self.holdout_every:
            raise ValueError("early stopping on validation data needs holdout_every > 0: the eval split is the "
                             "Evaluator's and must not choose the model")

    @classmethod
    def from_custom_config(cls, config: Optional[Dict[str, Any]]) -> "TrainerSettings":
        if not config:
            raise ValueError("Trainer custom_config is empty: the pipeline factory passes the trainer settings there")
        check_keys(config)
        return cls(**config)


def check_keys(settings: Dict[str, Any], where: str = "Trainer custom_config") -> None:
    """A misspelt setting must not silently do nothing: every key must be a TrainerSettings field."""
    known = {f.name for f in dataclasses.fields(TrainerSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{where}: unknown trainer setting(s) {unknown}; known: {sorted(known)}")


def import_string(dotted: str) -> Callable:
    module, _, attr = dotted.rpartition(".")
    if not module:
        raise ValueError(f"{dotted!r} is not a dotted path 'package.module.function'")
    return getattr(importlib.import_module(module), attr)


def set_seeds(seed: int) -> None:
    """Same seed, same inputs, same code -> same weights on CPU (op determinism costs a little speed)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_dataset(fn_args, file_pattern, tft_output, label_key: str, batch_size: int, seed: int, shuffle: bool):
    dataset = fn_args.data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size, label_key=label_key, num_epochs=1, shuffle=shuffle, shuffle_seed=seed
        ),
        tft_output.transformed_metadata.schema,
    )
    # Transform often writes a single file, which FILE sharding cannot split across workers: shard by element.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def split_holdout(fn_args, tft_output, settings: "TrainerSettings"):
    """(train, validation) datasets: every `holdout_every`-th training example is held out, the rest shuffled
    anew each epoch with the seed. The split is by position in the (deterministic) Transform output."""
    every = settings.holdout_every
    examples = make_dataset(fn_args, fn_args.train_files, tft_output, settings.label_key, 256, settings.seed,
                            shuffle=False).unbatch().enumerate()
    strip = lambda i, example: example  # noqa: E731
    train = (examples.filter(lambda i, _: i % every != 0).map(strip)
             .shuffle(10000, seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size))
    valid = examples.filter(lambda i, _: i % every == 0).map(strip).batch(settings.batch_size)
    return train.prefetch(tf.data.AUTOTUNE), valid.prefetch(tf.data.AUTOTUNE)


class EpochLogger(tf.keras.callbacks.Callback):
    """One line every `every` epochs (and the last), so 500 epochs do not print 500 lines."""

    def __init__(self, epochs: int, lines: int = 20):
        super().__init__()
        self.epochs, self.every = epochs, max(1, epochs // lines)
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs or epoch == 0:
            shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "lr")
            print(f"[trainer] epoch {epoch + 1}/{self.epochs} ({time.monotonic() - self.started:.1f} s) {shown}",
                  flush=True)


def callbacks_for(settings: "TrainerSettings", model_run_dir: str) -> list:
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=os.path.join(model_run_dir, "logs")),
                 EpochLogger(settings.epochs)]
    if settings.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor=settings.early_stopping_monitor, patience=settings.early_stopping_patience,
            restore_best_weights=settings.restore_best_weights, verbose=1))
    if settings.reduce_lr_patience:
        callbacks.append(tf.keras.callbacks.ReduceLROnPlateau(
            monitor=settings.reduce_lr_monitor, factor=settings.reduce_lr_factor, patience=settings.reduce_lr_patience))
    return callbacks


def _raw_to_transform_input(value: tf.Tensor, spec) -> Any:
    """A rank-1 JSON-friendly tensor -> the shape the transform graph was built for. For optional features
    (VarLenFeature) a NaN number or an empty string means 'missing', as an absent tf.Example value does."""
    if isinstance(spec, tf.io.VarLenFeature):
        if value.dtype.is_floating:
            present = tf.logical_not(tf.math.is_nan(value))
        elif value.dtype == tf.string:
            present = tf.strings.length(value) > 0
        else:
            present = tf.ones_like(value, tf.bool)
        rows = tf.where(present)
        indices = tf.concat([rows, tf.zeros_like(rows)], axis=1)
        return tf.SparseTensor(indices, tf.gather_nd(value, rows), tf.stack([tf.shape(value, tf.int64)[0], 1]))
    if list(spec.shape) == [1] and value.shape.rank == 1:
        return tf.expand_dims(value, -1)
    return tf.reshape(value, [-1, *spec.shape])


def export_serving_model(model, tft_output, settings: TrainerSettings, export_dir: str) -> None:
    """The signatures of components/signatures.py over the same transform graph and model: raw features
    (`serving_default`, also named `serving_raw`: one tensor per raw feature, a value per example ([batch]), or
    for features with more values their shape ([batch, *shape], or settings.raw_shapes)); serialized
    tf.Examples (`serving_examples`, for TFMA); and for a binary classifier TF Serving's `classify` and
    `regress`."""
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = tft_output.raw_feature_spec()
    missing = [k for k in settings.raw_feature_keys if k not in raw_spec]
    if missing:
        raise ValueError(f"raw features {missing} are not in the schema (has {sorted(raw_spec)})")
    spec = {k: raw_spec[k] for k in settings.raw_feature_keys}
    output = settings.output_name

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return {output: model(model.tft_layer(parsed))}

    def json_shape(key, feature):
        if key in settings.raw_shapes:
            return [None, *settings.raw_shapes[key]]
        if isinstance(feature, tf.io.FixedLenFeature) and list(feature.shape) not in ([], [1]):
            return [None, *feature.shape]
        return [None]

    @tf.function(input_signature=[{k: tf.TensorSpec(json_shape(k, s), s.dtype, name=k) for k, s in spec.items()}])
    def serve_raw(features):
        raw = {k: _raw_to_transform_input(features[k], spec[k]) for k in spec}
        return {output: model(model.tft_layer(raw))}

    raw_fn = serve_raw.get_concrete_function()
    exported = {signatures.DEFAULT: raw_fn, RAW_SIGNATURE: raw_fn,
                EXAMPLE_SIGNATURE: serve_examples.get_concrete_function()}
    methods = {}
    if output == "probability":  # a binary classifier: P(class 1) per example
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.METHOD_INPUT)])
        def classify(serialized):
            p = tf.reshape(serve_examples(serialized)[output], [-1])
            scores = tf.stack([1.0 - p, p], axis=1)
            classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(p)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.METHOD_INPUT)])
        def regress(serialized):
            return {"outputs": tf.reshape(serve_examples(serialized)[output], [-1])}

        exported[signatures.CLASSIFY] = classify.get_concrete_function()
        exported[signatures.REGRESS] = regress.get_concrete_function()
        methods = {signatures.CLASSIFY: signatures.CLASSIFY_METHOD, signatures.REGRESS: signatures.REGRESS_METHOD}
    tf.saved_model.save(model, export_dir, signatures=exported)
    if methods:
        signatures.set_method_names(export_dir, methods)


def warm_start(model, base_model_dir: Optional[str]) -> Optional[str]:
    """Loads the weights of the exported base model into `model`; every weight must find its value."""
    # ServedBaseline's output is an empty folder when nothing is served yet
    if not base_model_dir or not tf.io.gfile.exists(os.path.join(base_model_dir, "saved_model.pb")):
        print("[trainer] warm start asked, but there is no blessed model yet: training from scratch", flush=True)
        return None
    status = model.load_weights(os.path.join(base_model_dir, "variables", "variables"))
    status.expect_partial()  # the export also holds the Transform layer and optimizer-free extras
    status.assert_existing_objects_matched()
    print(f"[trainer] warm-started from {base_model_dir}", flush=True)
    return base_model_dir


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    require_legacy_keras()
    started = time.monotonic()
    settings = TrainerSettings.from_custom_config(fn_args.custom_config)
    # The strategy first: MultiWorkerMirroredStrategy must configure collectives before other TF work.
    strategy = strategies.get_strategy(settings.strategy)
    task = strategies.task_info(strategy)
    set_seeds(settings.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)

    callbacks = callbacks_for(settings, fn_args.model_run_dir)
    if settings.holdout_every:
        train_ds, valid_ds = split_holdout(fn_args, tft_output, settings)
    else:
        train_ds = make_dataset(fn_args, fn_args.train_files, tft_output, settings.label_key,
                                settings.batch_size, settings.seed, shuffle=True)
        valid_ds = make_dataset(fn_args, fn_args.eval_files, tft_output, settings.label_key,
                                settings.batch_size, settings.seed, shuffle=False)
    with strategy.scope():
        model = import_string(settings.model_builder)(tft_output)
        warm_from = warm_start(model, fn_args.base_model) if settings.warm_start else None
    model.summary(print_fn=lambda line: print(line, flush=True))

    described = strategies.describe(strategy)
    print(f"[trainer] strategy={settings.strategy} ({described['num_replicas']} replica(s) on "
          f"{', '.join(described['devices'])}), seed={settings.seed}, epochs={settings.epochs}", flush=True)
    history = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=settings.epochs,
        verbose=0,  # EpochLogger prints progress
        callbacks=callbacks,
    )
    fitted = time.monotonic()
    print(f"[trainer] trained in {fitted - started:.1f} s; exporting", flush=True)
    # Every worker must take part in saving (it runs collectives); only the chief's copy is kept.
    export_dir = fn_args.serving_model_dir if task["chief"] else tempfile.mkdtemp(prefix="worker-export-")
    export_serving_model(model, tft_output, settings, export_dir)
    if not task["chief"]:
        shutil.rmtree(export_dir, ignore_errors=True)
    print(f"[trainer] exported in {time.monotonic() - fitted:.1f} s to {export_dir}", flush=True)

    record = {
        "settings": dataclasses.asdict(settings),
        "strategy": described,
        "task": task,
        "warm_started_from": warm_from,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
        "tensorflow": tf.__version__,
        "code": provenance.git_version(),
        "packages": provenance.installed_packages(),
    }
    name = TRAINING_RUN_FILE if task["chief"] else TRAINING_RUN_FILE.replace(".json", f".{task['type']}-{task['index']}.json")
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, name), "w") as f:
        f.write(json.dumps(record, indent=2))
