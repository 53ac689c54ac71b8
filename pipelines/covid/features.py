"""COVID-19 (the book's chapter 1-4): 8 days of new confirmed/cured/dead cases -> the next day's.

Transform only reshapes: the model's "Block" scales its output by the last day of the window, so the raw
counts need no (and get no) scaling, and the forecast feeds predictions back as they come."""

from __future__ import annotations

import tensorflow as tf

from components.window_example_gen import TARGET_KEY, WINDOW_KEY

COLUMNS = ("confirmed_num", "cured_num", "dead_num")
WINDOW_SIZE = 8
EVAL_WINDOWS = 5


def preprocessing_fn(inputs):
    return {
        WINDOW_KEY: tf.reshape(inputs[WINDOW_KEY], [-1, WINDOW_SIZE, len(COLUMNS)]),
        TARGET_KEY: tf.reshape(inputs[TARGET_KEY], [-1, len(COLUMNS)]),
    }
