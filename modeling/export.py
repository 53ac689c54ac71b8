"""The served SavedModel: the signatures modeling/signatures.py describes, each running the Transform graph
and then the model, written with `tf.saved_model.save` (as TFX's penguin example exports).

    export_serving_model(model, tft_output, settings, export_dir)

`settings` is a modeling.training.TrainerSettings (only raw_feature_keys, output_name and raw_shapes are read).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from core import layout
from modeling import signatures


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


def export_serving_model(model, tft_output, settings, export_dir: str) -> None:
    """The signatures of modeling/signatures.py over the same transform graph and model: raw features
    (`serving_default`, also named `serving_raw`: one tensor per raw feature, a value per example ([batch]), or
    for features with more values their shape ([batch, *shape], or settings.raw_shapes)); serialized
    tf.Examples (`serving_examples`, for TFMA); for a classifier TF Serving's `classify` (`scores` per class,
    `classes` their names: settings.label_classes, or "0", "1"), and for a binary one `regress` too. A multi-class
    model's raw signature answers with `scores` and `classes` as classify does."""
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
        # training=False said, not left to Keras: a layer whose call defaults to training=True (RandomFlip and
        # the other random augmentation layers) would otherwise augment every served prediction
        return {output: model(model.tft_layer(parsed), training=False)}

    def json_shape(key, feature):
        if key in settings.raw_shapes:
            return [None, *settings.raw_shapes[key]]
        if isinstance(feature, tf.io.FixedLenFeature) and list(feature.shape) not in ([], [1]):
            return [None, *feature.shape]
        return [None]

    @tf.function(input_signature=[{k: tf.TensorSpec(json_shape(k, s), s.dtype, name=k) for k, s in spec.items()}])
    def serve_raw(features):
        raw = {k: _raw_to_transform_input(features[k], spec[k]) for k in spec}
        return {output: model(model.tft_layer(raw), training=False)}

    classes = [str(c) for c in settings.label_classes] or ["0", "1"]

    def classify_outputs(p):
        """TF Serving's classify convention: `scores` one per class, `classes` their names, for every example."""
        scores = tf.stack([1.0 - tf.reshape(p, [-1]), tf.reshape(p, [-1])], axis=1) if output == "probability" else p
        names = tf.tile(tf.constant([classes]), [tf.shape(scores)[0], 1])
        return {"scores": scores, "classes": names}

    if output == "probabilities":  # multi-class: the raw signature answers as classify does

        @tf.function(input_signature=[{k: tf.TensorSpec(json_shape(k, s), s.dtype, name=k) for k, s in spec.items()}])
        def serve_raw_classes(features):
            return classify_outputs(serve_raw(features)[output])

        raw_fn = serve_raw_classes.get_concrete_function()
    else:
        raw_fn = serve_raw.get_concrete_function()
    exported = {
        layout.DEFAULT_SIGNATURE: raw_fn,
        layout.RAW_SIGNATURE: raw_fn,
        layout.EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
    }
    methods = {}
    if output in ("probability", "probabilities"):  # classifiers: TF Serving's Classify

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.METHOD_INPUT)])
        def classify(serialized):
            return classify_outputs(serve_examples(serialized)[output])

        exported[layout.CLASSIFY_SIGNATURE] = classify.get_concrete_function()
        methods[layout.CLASSIFY_SIGNATURE] = signatures.CLASSIFY_METHOD
    if output == "probability":  # a binary classifier's P(class 1), as TF Serving's Regress gives one value each

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.METHOD_INPUT)])
        def regress(serialized):
            return {"outputs": tf.reshape(serve_examples(serialized)[output], [-1])}

        exported[layout.REGRESS_SIGNATURE] = regress.get_concrete_function()
        methods[layout.REGRESS_SIGNATURE] = signatures.REGRESS_METHOD
    tf.saved_model.save(model, export_dir, signatures=exported)
    if methods:
        signatures.set_method_names(export_dir, methods)
