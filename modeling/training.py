"""Training without TFX: `train(...)` takes plain arguments (settings, the Transform output's folder, file
patterns, output folders) and runs seeds, strategy, tf.data input, fit, export and the run record. The Trainer's
`run_fn` (modeling/trainer.py) is a thin call of it; so is the command line, which trains on a Transform
output the pipeline already wrote, e.g. to try a model change without rerunning the pipeline:

    python -m modeling.training --transform-output OUTPUT/Transform/transform_graph/N \
        --examples OUTPUT/Transform/transformed_examples/N --settings '{"model_builder": ..., ...}' --out DIR

`settings` are TrainerSettings: what differs per dataset arrives as JSON-friendly values (recorded in ML
Metadata by TFX): the dotted path of the model builder, the label, epochs, batch size, strategy, seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx_bsl.public import tfxio

from core import layout, seams
from modeling import provenance, strategies
from modeling.export import export_serving_model

# (file pattern(s), TensorFlowDatasetOptions, schema) -> tf.data.Dataset: TFX's DataAccessor.tf_dataset_factory, or
# read_transformed_examples outside TFX
DatasetFactory = Callable[..., tf.data.Dataset]
FilePatterns = Union[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    """Everything a training run depends on besides the data, JSON-friendly (TFX records it in ML Metadata)."""

    model_builder: str  # dotted path: build(tft_output) -> compiled Keras model
    label_key: str
    raw_feature_keys: List[str]  # what the raw serving signature takes
    output_name: str = "probability"  # probability (binary), probabilities (multiclass) or prediction
    label_classes: List[str] = dataclasses.field(default_factory=list)  # classification: the served `classes`
    epochs: int = 10
    batch_size: int = 32
    strategy: str = "default"
    seed: int = 42
    code_fingerprint: str = ""  # recorded only: it makes TFX's cache notice code edits
    # Validation data: every n-th *training* example held out (never the eval split the Evaluator judges), or
    # with 0 the eval split, shown for information as the book does.
    holdout_every: int = 0
    # With holdout_every: keep the parsed training and validation examples in memory after the first epoch
    # instead of reading and parsing the gzipped TFRecords again every epoch (the order is unchanged: the seeded
    # shuffle comes after). For datasets that fit in memory (cifar2: 120 MB of float images).
    cache_examples: bool = False
    early_stopping_patience: int = 0  # 0: no early stopping
    early_stopping_monitor: str = "val_loss"
    restore_best_weights: bool = True
    reduce_lr_patience: int = 0  # 0: no ReduceLROnPlateau
    reduce_lr_monitor: str = "val_loss"
    reduce_lr_factor: float = 0.5
    warm_start: bool = False  # start from the latest blessed model's weights (run_fn passes TFX's base_model)
    # classification: {class index (as text, JSON's keys): weight} in the loss, so a rare class counts (Keras's
    # class_weight); empty: every example weighs 1
    class_weights: Dict[str, float] = dataclasses.field(default_factory=dict)
    # Raw features the JSON signature takes in another shape than the schema's, e.g. {"window": [8, 3]}
    raw_shapes: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.early_stopping_monitor.startswith("val_") and self.early_stopping_patience and not self.holdout_every:
            raise ValueError(
                "early stopping on validation data needs holdout_every > 0: the eval split is the "
                "Evaluator's and must not choose the model"
            )

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
    """The function at a dotted path 'package.module.function'."""
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


def make_dataset(
    dataset_factory: DatasetFactory, file_pattern, tft_output, label_key: str, batch_size: int, seed: int, shuffle: bool
) -> tf.data.Dataset:
    """(features, label) batches of the transformed examples in `file_pattern`, read by `dataset_factory`."""
    dataset = dataset_factory(
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


def split_holdout(dataset_factory: DatasetFactory, train_files, tft_output, settings: "TrainerSettings"):
    """(train, validation) datasets: every `holdout_every`-th training example is held out, the rest shuffled
    anew each epoch with the seed. The split is by position in the (deterministic) Transform output."""
    every = settings.holdout_every
    examples = (
        make_dataset(dataset_factory, train_files, tft_output, settings.label_key, 256, settings.seed, shuffle=False)
        .unbatch()
        .enumerate()
    )
    strip = lambda i, example: example  # noqa: E731
    train = examples.filter(lambda i, _: i % every != 0).map(strip)
    valid = examples.filter(lambda i, _: i % every == 0).map(strip)
    if settings.cache_examples:
        train, valid = train.cache(), valid.cache()
    train = train.shuffle(10000, seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size)
    return train.prefetch(tf.data.AUTOTUNE), valid.batch(settings.batch_size).prefetch(tf.data.AUTOTUNE)


class EpochLogger(tf.keras.callbacks.Callback):
    """One line every `every` epochs (and the last), so 500 epochs do not print 500 lines."""

    def __init__(self, epochs: int, lines: int = 20):
        super().__init__()
        self.epochs, self.every = epochs, max(1, epochs // lines)
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.epochs or epoch == 0:
            shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "lr")
            print(
                f"[trainer] epoch {epoch + 1}/{self.epochs} ({time.monotonic() - self.started:.1f} s) {shown}",
                flush=True,
            )


def callbacks_for(settings: "TrainerSettings", model_run_dir: str) -> list:
    """TensorBoard logs, the epoch lines, and early stopping / learning-rate reduction when the settings ask."""
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir=os.path.join(model_run_dir, "logs")),
        EpochLogger(settings.epochs),
    ]
    if settings.early_stopping_patience:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(
                monitor=settings.early_stopping_monitor,
                patience=settings.early_stopping_patience,
                restore_best_weights=settings.restore_best_weights,
                verbose=1,
            )
        )
    if settings.reduce_lr_patience:
        callbacks.append(
            tf.keras.callbacks.ReduceLROnPlateau(
                monitor=settings.reduce_lr_monitor,
                factor=settings.reduce_lr_factor,
                patience=settings.reduce_lr_patience,
            )
        )
    return callbacks


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


def read_transformed_examples(
    file_pattern: FilePatterns, options: tfxio.TensorFlowDatasetOptions, schema
) -> tf.data.Dataset:
    """A DatasetFactory in plain tf.data: the gzipped tf.Example TFRecords Transform writes, parsed with the
    transformed schema, batched, optionally shuffled, split into (features, label) as TFX's factory does."""
    from tensorflow_transform.tf_metadata import schema_utils

    feature_spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if options.shuffle:
        dataset = dataset.shuffle(options.shuffle_buffer_size or 10000, seed=options.shuffle_seed)
    dataset = dataset.batch(options.batch_size).map(lambda batch: tf.io.parse_example(batch, feature_spec))
    if options.label_key:
        label = options.label_key
        dataset = dataset.map(lambda f: ({k: v for k, v in f.items() if k != label}, f[label]))
    return dataset.repeat(options.num_epochs) if options.num_epochs != 1 else dataset


def train(
    settings: TrainerSettings,
    transform_output: str,
    train_files: FilePatterns,
    eval_files: FilePatterns,
    model_run_dir: str,
    export_dir: str,
    base_model: Optional[str] = None,
    dataset_factory: DatasetFactory = read_transformed_examples,
) -> Dict[str, Any]:
    """Trains `settings.model_builder`'s model on the transformed examples and exports the served SavedModel.

    transform_output: the folder of Transform's `transform_graph` (tft.TFTransformOutput reads it).
    train_files, eval_files: file pattern(s) of transformed examples (the validation data unless
        settings.holdout_every holds out training examples instead).
    model_run_dir: TensorBoard logs and the run record (layout.RUN_RECORD) go here.
    export_dir: the SavedModel (modeling/export.py) goes here; on a non-chief worker it is discarded.
    base_model: an exported model to warm-start from, when settings.warm_start.
    dataset_factory: how examples are read (TFX passes its DataAccessor's).
    Returns the run record it wrote.
    """
    started = time.monotonic()
    seams.autograph_rule_for_tf_keras()
    # The strategy first: MultiWorkerMirroredStrategy must configure collectives before other TF work.
    strategy = strategies.get_strategy(settings.strategy)
    task = strategies.task_info(strategy)
    set_seeds(settings.seed)
    tft_output = tft.TFTransformOutput(transform_output)

    callbacks = callbacks_for(settings, model_run_dir)
    if settings.holdout_every:
        train_ds, valid_ds = split_holdout(dataset_factory, train_files, tft_output, settings)
    else:
        train_ds = make_dataset(
            dataset_factory,
            train_files,
            tft_output,
            settings.label_key,
            settings.batch_size,
            settings.seed,
            shuffle=True,
        )
        valid_ds = make_dataset(
            dataset_factory,
            eval_files,
            tft_output,
            settings.label_key,
            settings.batch_size,
            settings.seed,
            shuffle=False,
        )
    with strategy.scope():
        model = import_string(settings.model_builder)(tft_output)
        warm_from = warm_start(model, base_model) if settings.warm_start else None
    model.summary(print_fn=lambda line: print(line, flush=True))

    described = strategies.describe(strategy)
    print(
        f"[trainer] strategy={settings.strategy} ({described['num_replicas']} replica(s) on "
        f"{', '.join(described['devices'])}), seed={settings.seed}, epochs={settings.epochs}",
        flush=True,
    )
    history = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=settings.epochs,
        verbose=0,  # EpochLogger prints progress
        callbacks=callbacks,
        class_weight={int(k): float(v) for k, v in settings.class_weights.items()} or None,
    )
    fitted = time.monotonic()
    print(f"[trainer] trained in {fitted - started:.1f} s; exporting", flush=True)
    # Every worker must take part in saving (it runs collectives); only the chief's copy is kept.
    target = export_dir if task["chief"] else tempfile.mkdtemp(prefix="worker-export-")
    export_serving_model(model, tft_output, settings, target)
    if not task["chief"]:
        shutil.rmtree(target, ignore_errors=True)
    print(f"[trainer] exported in {time.monotonic() - fitted:.1f} s to {target}", flush=True)

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
    name = (
        layout.RUN_RECORD
        if task["chief"]
        else layout.RUN_RECORD.replace(".json", f".{task['type']}-{task['index']}.json")
    )
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, name), "w") as f:
        f.write(json.dumps(record, indent=2))
    return record


def main(argv: Optional[List[str]] = None) -> int:
    """The command line of the module docstring; 0 when trained, 2 on bad settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transform-output", required=True, help="Transform's transform_graph folder")
    parser.add_argument("--examples", required=True, help="Transform's transformed_examples folder (Split-*/)")
    parser.add_argument("--settings", required=True, help="TrainerSettings as JSON, or @file.json")
    parser.add_argument("--out", required=True, help="where the model (serving/) and the run record (run/) go")
    args = parser.parse_args(argv)
    text = open(args.settings[1:]).read() if args.settings.startswith("@") else args.settings
    try:
        settings = TrainerSettings.from_custom_config(json.loads(text))
    except (ValueError, TypeError) as exc:
        print(f"error: --settings: {exc}", file=sys.stderr)
        return 2
    train(
        settings,
        args.transform_output,
        os.path.join(args.examples, "Split-train", "*"),
        os.path.join(args.examples, "Split-eval", "*"),
        os.path.join(args.out, "run"),
        os.path.join(args.out, "serving"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
