"""Mean squared percentage error (the book's COVID loss) as a Keras loss and a Keras metric TFMA can compute.

Referenced from an EvalConfig as `tfma.MetricConfig(class_name="MeanSquaredPercentageError", module=__name__)`.
"""
import tensorflow as tf

EPSILON = 1e-7  # the book's floor for y_true**2: a zero true value does not divide by zero


def mean_squared_percentage_error(y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    return tf.reduce_mean((y_true - y_pred) ** 2 / tf.maximum(y_true ** 2, EPSILON), axis=-1)


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
