"""COVID-19 (the book's chapter 1-4): 8 days of new confirmed/cured/dead cases -> the next day's.

Transform only reshapes: the model's "Block" scales its output by the last day of the window, so the raw
counts need no (and get no) scaling, and the forecast feeds predictions back as they come."""
from __future__ import annotations

import tensorflow as tf

from components.regression_metrics import MSPE
from components.window_example_gen import TARGET_KEY, WINDOW_KEY

COLUMNS = ("confirmed_num", "cured_num", "dead_num")
WINDOW_SIZE = 8
EVAL_WINDOWS = 5


def preprocessing_fn(inputs):
    return {
        WINDOW_KEY: tf.reshape(inputs[WINDOW_KEY], [-1, WINDOW_SIZE, len(COLUMNS)]),
        TARGET_KEY: tf.reshape(inputs[TARGET_KEY], [-1, len(COLUMNS)]),
    }


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
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.01), loss=MSPE(),
                  metrics=[tf.keras.metrics.MeanAbsoluteError(name="mae")])
    return model
