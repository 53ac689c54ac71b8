"""Each dataset's model in seconds, without a pipeline (as TFX's taxi template tests its model).

A real, tiny Transform output is made from a dozen fake raw rows (tf.Transform's own Beam analysis, in memory),
then each dataset's `model.build_model` is built on it and fitted on one batch of the transformed rows, and
`modeling/export.py` exports it; the export is called through its raw signature. The multi-minute e2e tests
check the same models inside the pipeline; these catch a broken model or feature change first.
"""

import importlib
import json

import numpy as np
import pytest

from pipelines import registry

ROWS = 12


def _png(rng) -> bytes:
    import tensorflow as tf

    return tf.io.encode_png(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).numpy()


def _raw_rows(name: str, rng):
    """(raw feature spec, rows as tf.Transform instance dicts, raw serving inputs for two examples)."""
    import tensorflow as tf

    if name == "titanic":
        from tensorflow_metadata.proto.v0 import schema_pb2
        from tensorflow_transform.tf_metadata import schema_utils
        from tfx.utils import io_utils

        spec = registry.get_spec(name)
        feature_spec = schema_utils.schema_as_feature_spec(
            io_utils.parse_pbtxt_file(str(spec.schema_file), schema_pb2.Schema())
        ).feature_spec
        rows = [
            {
                "PassengerId": [i],
                "Survived": [i % 2],
                "Pclass": [1 + i % 3],
                "Name": [b"A, Mr. B"],
                "Sex": [b"male" if i % 2 else b"female"],
                "Age": [20.0 + i] if i % 4 else [],
                "SibSp": [i % 2],
                "Parch": [0],
                "Ticket": [b"T%d" % i],
                "Fare": [7.5 * i],
                "Cabin": [b"C%d" % i] if i % 3 == 0 else [],
                "Embarked": [b"S" if i % 2 else b"C"],
            }
            for i in range(ROWS)
        ]
        serve = {
            "Age": [30.0, float("nan")],
            "Fare": [10.0, 80.0],
            "Parch": [0, 1],
            "SibSp": [0, 1],
            "Sex": [b"male", b"female"],
            "Embarked": [b"S", b""],
            "Pclass": [3, 1],
            "Ticket": [b"x", b"y"],
            "Cabin": [b"", b"C85"],
        }
        return feature_spec, rows, serve
    if name == "cifar2":
        feature_spec = {"image_raw": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
        rows = [{"image_raw": _png(rng), "label": i % 2} for i in range(ROWS)]
        return feature_spec, rows, {"image_raw": [_png(rng), _png(rng)]}
    if name == "imdb":
        feature_spec = {"text": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
        words = ["good", "bad", "film", "plot", "actor", "boring", "great", "<br />", "Awful!"]
        rows = [{"text": " ".join(rng.choice(words, 20)).encode(), "label": i % 2} for i in range(ROWS)]
        return feature_spec, rows, {"text": [b"A great film", b"never heard of these words"]}
    if name == "covid":
        feature_spec = {
            "window": tf.io.FixedLenFeature([24], tf.float32),
            "target": tf.io.FixedLenFeature([3], tf.float32),
        }
        rows = [
            {"window": rng.uniform(1, 100, 24).astype(np.float32), "target": rng.uniform(1, 100, 3).astype(np.float32)}
            for _ in range(ROWS)
        ]
        return feature_spec, rows, {"window": rng.uniform(1, 100, (2, 8, 3)).astype(np.float32)}
    return _rows_from_schema(registry.get_spec(name), rng)


def _rows_from_schema(spec, rng):
    """Fake rows for any pipeline with a schema (a scaffolded one): each feature as its schema types it, optional
    ones sometimes missing; the label a class index or a value as the problem has it."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx.utils import io_utils

    assert spec.schema_file, f"{spec.name}: no schema to derive fake rows from; add its rows here"
    schema = io_utils.parse_pbtxt_file(str(spec.schema_file), schema_pb2.Schema())
    feature_spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    words = [b"alpha", b"beta", b"gamma", b"delta", b"a longer piece of text with several words"]

    def value(name, dtype, i):
        if name == spec.label_key:
            return [i % max(len(spec.label_classes), 2)] if spec.problem != "regression" else [float(rng.normal())]
        if dtype == tf.string:
            return [words[(i + len(name)) % len(words)]]
        if dtype == tf.int64:
            return [int(rng.integers(0, 5))]
        return [float(rng.normal())]

    rows = []
    for i in range(ROWS):
        row = {}
        for name, feature in feature_spec.items():
            optional = isinstance(feature, tf.io.VarLenFeature)
            row[name] = [] if optional and name != spec.label_key and i % 5 == 4 else value(name, feature.dtype, i)
        rows.append(row)
    serve = {}
    for name in spec.raw_feature_keys:
        dtype = feature_spec[name].dtype
        serve[name] = [b"alpha", b""] if dtype == tf.string else [1, 2] if dtype == tf.int64 else [0.5, float("nan")]
    return feature_spec, rows, serve


def _analyze(spec, feature_spec, rows, out_dir) -> str:
    """tf.Transform's analysis of `rows` with the dataset's preprocessing_fn, written as a transform output."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    module, _, fn = spec.preprocessing_fn.rpartition(".")
    preprocessing_fn = getattr(importlib.import_module(module), fn)
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(feature_spec)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(out_dir / "tmp")):
        transform_fn = (pipeline | beam.Create(rows), metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir / "transform"))
    # the raw schema, which TFX's Transform writes beside (the export reads the raw feature spec from it)
    metadata_io.write_metadata(metadata, str(out_dir / "transform" / "metadata"))
    return str(out_dir / "transform")


def _transformed_batch(tft_output, feature_spec, rows):
    """The rows as tf.Examples, parsed and transformed by the transform graph: what the Trainer reads."""
    import tensorflow as tf

    def feature(value, dtype):
        values = np.asarray(value).ravel().tolist()
        if dtype == tf.string:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        if dtype == tf.int64:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    serialized = [
        tf.train.Example(
            features=tf.train.Features(feature={k: feature(v, feature_spec[k].dtype) for k, v in row.items()})
        ).SerializeToString()
        for row in rows
    ]
    parsed = tf.io.parse_example(tf.constant(serialized), feature_spec)
    return {k: v.numpy() for k, v in tft_output.transform_raw_features(parsed).items()}


def _settings(spec, **changes):
    from modeling.training import TrainerSettings
    from orchestration import config as config_lib
    from orchestration.factory import trainer_settings

    return TrainerSettings.from_custom_config({**trainer_settings(spec, config_lib.PipelineConfig()), **changes})


@pytest.mark.parametrize("name", registry.PIPELINES)
def test_model_builds_and_fits_one_batch(name, tmp_path):
    import tensorflow as tf
    import tensorflow_transform as tft

    from modeling.training import import_string

    spec = registry.get_spec(name)
    feature_spec, rows, _ = _raw_rows(name, np.random.default_rng(0))
    tft_output = tft.TFTransformOutput(_analyze(spec, feature_spec, rows, tmp_path))
    model = import_string(_settings(spec).model_builder)(tft_output)
    assert isinstance(model, tf.keras.Model) and model.optimizer is not None  # compiled, ready to fit

    batch = _transformed_batch(tft_output, feature_spec, rows)
    label = batch.pop(spec.label_key)
    inputs = {k: batch[k] for k in model.input_names}
    model.run_eagerly = True  # one step: tracing the train function would cost more than the step
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(inputs, label, batch_size=ROWS, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the step moved weights
    predicted = model(inputs).numpy()
    assert predicted.shape[0] == ROWS and np.all(np.isfinite(predicted))
    if spec.problem == "binary":
        assert np.all((predicted >= 0) & (predicted <= 1))


def test_training_runs_without_tfx_from_the_command_line(tmp_path, capsys):
    """modeling.training: plain arguments, plain tf.data input, the same export and run record as the Trainer."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from core import layout
    from modeling import training

    spec = registry.get_spec("titanic")
    rng = np.random.default_rng(0)
    feature_spec, rows, serve = _raw_rows("titanic", rng)
    transform_dir = _analyze(spec, feature_spec, rows, tmp_path)
    batch = _transformed_batch(tft.TFTransformOutput(transform_dir), feature_spec, rows)
    for split in ("train", "eval"):  # the layout Transform writes: gzipped tf.Examples per split
        (tmp_path / "examples" / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(tmp_path / "examples" / f"Split-{split}" / "part.gz"), "GZIP") as writer:
            for i in range(ROWS):
                writer.write(
                    tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                k: tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v[i]).tolist()))
                                if v.dtype.kind == "f"
                                else tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(v[i]).tolist()))
                                for k, v in batch.items()
                            }
                        )
                    ).SerializeToString()
                )
    settings = {**_settings(spec, epochs=2, batch_size=4).__dict__}
    settings["raw_feature_keys"] = list(settings["raw_feature_keys"])
    assert (
        training.main(
            [
                "--transform-output",
                transform_dir,
                "--examples",
                str(tmp_path / "examples"),
                "--settings",
                json.dumps(settings),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert "[trainer] epoch 2/2" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "run" / layout.RUN_RECORD).read_text())
    assert len(record["history"]["loss"]) == 2 and record["settings"]["epochs"] == 2
    fn = tf.saved_model.load(str(tmp_path / "out" / "serving")).signatures[layout.DEFAULT_SIGNATURE]
    args = {k: tf.constant(v, dtype=fn.structured_input_signature[1][k].dtype) for k, v in serve.items()}
    out = fn(**args)["probability"].numpy()
    assert out.shape == (2, 1) and np.all((out >= 0) & (out <= 1))


def test_bad_settings_on_the_command_line_are_named(capsys):
    from modeling import training

    assert (
        training.main(
            [
                "--transform-output",
                "t",
                "--examples",
                "e",
                "--out",
                "o",
                "--settings",
                '{"model_builder": "m.f", "label_key": "y", "raw_feature_keys": [], "epoks": 2}',
            ]
        )
        == 2
    )
    assert "unknown trainer setting(s) ['epoks']" in capsys.readouterr().err


def test_autograph_leaves_keras_own_code_alone():
    """Keras 2 is `tf_keras` now, which AutoGraph's rules do not name: without the rule, fitting the Titanic model
    spent 45 s rewriting Keras' train step, optimizer and metrics. Keras' code is plain graph code and must not be
    converted; user code still is."""
    import tensorflow as tf
    from tensorflow.python.autograph.impl import conversion

    from core.seams import autograph_rule_for_tf_keras as keep_autograph_out_of_tf_keras

    keep_autograph_out_of_tf_keras()
    keep_autograph_out_of_tf_keras()  # idempotent
    from tensorflow.python.autograph.core import config

    assert sum(getattr(r, "_prefix", None) == "tf_keras" for r in config.CONVERSION_RULES) == 1
    assert tf.keras.Model.__module__.startswith("tf_keras")
    assert conversion.is_allowlisted(tf.keras.Model.train_step)
    assert conversion.is_allowlisted(tf.keras.metrics.AUC.update_state)

    def user_code(x):
        return x

    assert not conversion.is_allowlisted(user_code)
