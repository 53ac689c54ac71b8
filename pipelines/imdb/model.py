"""imdb's model: the book's Conv1D network (chapter 1-3) on the token ids of features.py."""

from __future__ import annotations

import tensorflow as tf

from pipelines.imdb.features import MAX_LEN, TOKENS_FEATURE, VOCAB_FILENAME


def build_model(tft_output) -> tf.keras.Model:
    """The book's Conv1D network over a 7-dimensional embedding."""
    vocab_ids = tft_output.vocabulary_size_by_name(VOCAB_FILENAME) + 2
    inputs = tf.keras.Input(shape=(MAX_LEN,), name=TOKENS_FEATURE, dtype=tf.int64)
    x = tf.keras.layers.Embedding(vocab_ids, 7)(inputs)
    x = tf.keras.layers.Conv1D(filters=16, kernel_size=5, activation="relu")(x)
    x = tf.keras.layers.MaxPool1D()(x)
    x = tf.keras.layers.Conv1D(filters=128, kernel_size=2, activation="relu")(x)
    x = tf.keras.layers.MaxPool1D()(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model(inputs={TOKENS_FEATURE: inputs}, outputs=outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Nadam(learning_rate=0.001),
        loss="binary_crossentropy",
        metrics=[tf.keras.metrics.BinaryAccuracy(name="accuracy"), tf.keras.metrics.AUC(name="auc")],
    )
    return model
