"""Regression metrics TFMA can compute: mean squared percentage error (the book's COVID loss, also a Keras loss) and R².

Referenced from an EvalConfig as `tfma.MetricConfig(class_name="MeanSquaredPercentageError", module=__name__)`.
"""

import tensorflow as tf

EPSILON = 1e-7  # the book's floor for y_true**2: a zero true value does not divide by zero


def mean_squared_percentage_error(y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    return tf.reduce_mean((y_true - y_pred) ** 2 / tf.maximum(y_true**2, EPSILON), axis=-1)


class MSPE(tf.keras.losses.Loss):
    def __init__(self, name="mspe", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return mean_squared_percentage_error(y_true, y_pred)


class MeanSquaredPercentageError(tf.keras.metrics.MeanMetricWrapper):
    def __init__(self, name="mspe", dtype=None):
        super().__init__(mean_squared_percentage_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class R2Score(tf.keras.metrics.Metric):
    """The coefficient of determination, 1 - sum((y - ŷ)²) / sum((y - ȳ)²), from four running sums: TFMA merges
    a Keras metric's accumulators by adding them, which sums allow (a mean of per-batch R² would be wrong).

    Referenced as `tfma.MetricConfig(class_name="R2Score", module=__name__)`."""

    def __init__(self, name="r2", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.count = self.add_weight(name="count", initializer="zeros", dtype=tf.float64)
        self.sum_y = self.add_weight(name="sum_y", initializer="zeros", dtype=tf.float64)
        self.sum_y2 = self.add_weight(name="sum_y2", initializer="zeros", dtype=tf.float64)
        self.sum_residual2 = self.add_weight(name="sum_residual2", initializer="zeros", dtype=tf.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.reshape(tf.cast(y_true, tf.float64), [-1])
        y_pred = tf.reshape(tf.cast(y_pred, tf.float64), [-1])
        weight = tf.ones_like(y_true) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float64), [-1])
        self.count.assign_add(tf.reduce_sum(weight))
        self.sum_y.assign_add(tf.reduce_sum(weight * y_true))
        self.sum_y2.assign_add(tf.reduce_sum(weight * y_true * y_true))
        self.sum_residual2.assign_add(tf.reduce_sum(weight * (y_true - y_pred) ** 2))

    def result(self):
        total = self.sum_y2 - self.sum_y * self.sum_y / tf.maximum(self.count, 1.0)
        return tf.cast(1.0 - self.sum_residual2 / tf.maximum(total, 1e-12), tf.float32)

    def reset_state(self):
        for weight in (self.count, self.sum_y, self.sum_y2, self.sum_residual2):
            weight.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}
