"""Titanic's model: the book's network (chapter 5-2) on the encoded feature columns of features.py."""

from __future__ import annotations

import tensorflow as tf

from modeling import feature_columns as fc
from pipelines.titanic.features import FEATURES


def build_model(tft_output) -> tf.keras.Model:
    """The book's network (Dense 64-64-1) on the encoded columns."""
    inputs = fc.keras_inputs(FEATURES)
    x = fc.encode(FEATURES, inputs, tft_output)
    x = tf.keras.layers.Dense(64, activation="relu")(x)
    x = tf.keras.layers.Dense(64, activation="relu")(x)
    output = tf.keras.layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=0.001),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.AUC(name="auc"), tf.keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
