"""covid's model: the book's LSTM stack (chapter 1-4) with its `Block` output layer."""

from __future__ import annotations

import tensorflow as tf

from modeling.regression_metrics import MSPE
from pipelines.covid.features import COLUMNS, WINDOW_KEY


class Block(tf.keras.layers.Layer):
    """The book's output layer: next day = max((1 + x) * last day, 0), so predictions stay non-negative."""

    def call(self, window, x):
        return tf.maximum((1 + x) * window[:, -1, :], 0.0)


def build_model(tft_output) -> tf.keras.Model:
    del tft_output
    window = tf.keras.Input(shape=(None, len(COLUMNS)), name=WINDOW_KEY, dtype=tf.float32)
    x = tf.keras.layers.LSTM(3, return_sequences=True)(window)
    x = tf.keras.layers.LSTM(3, return_sequences=True)(x)
    x = tf.keras.layers.LSTM(3, return_sequences=True)(x)
    x = tf.keras.layers.LSTM(3)(x)
    x = tf.keras.layers.Dense(len(COLUMNS))(x)
    outputs = Block()(window, x)
    model = tf.keras.Model(inputs={WINDOW_KEY: window}, outputs=outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=0.01),
        loss=MSPE(),
        metrics=[tf.keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model
