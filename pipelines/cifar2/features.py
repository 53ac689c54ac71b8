"""cifar2 (the book's chapter 1-2): JPEG bytes in, P(automobile) out; the decoding lives in the Transform graph,
so the served model takes the same raw bytes a client sends (TF Serving's {"b64": ...} over REST)."""

from __future__ import annotations

import tensorflow as tf

from components.image_example_gen import IMAGE_KEY, LABEL_KEY

CLASS_NAMES = ("airplane", "automobile")  # label 0, label 1
IMAGE_SIZE = (32, 32)
IMAGE_FEATURE = "image"


def decode_image(data: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, IMAGE_SIZE) / 255.0  # resize returns float32 in [0, 255]


def preprocessing_fn(inputs):
    raw = tf.reshape(inputs[IMAGE_KEY], [-1])
    images = tf.map_fn(decode_image, raw, fn_output_signature=tf.TensorSpec([*IMAGE_SIZE, 3], tf.float32))
    return {IMAGE_FEATURE: images, LABEL_KEY: inputs[LABEL_KEY]}
