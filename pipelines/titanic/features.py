"""Titanic's features, declared with the book's feature columns (chapter 5-2), and its model."""
from __future__ import annotations

import tensorflow as tf

from components import feature_columns as fc

LABEL_KEY = "Survived"

AGE_BUCKETS = fc.Bucketized("Age", boundaries=[18, 25, 30, 35, 40, 45, 50, 55, 60, 65])
PCLASS = fc.CategoricalIdentity("Pclass", num_buckets=4)  # 1..3; 0 stands for anything else

FEATURES = [
    fc.Numeric("Age"),
    fc.Numeric("Fare"),
    fc.Numeric("Parch"),
    fc.Numeric("SibSp"),
    fc.Indicator(AGE_BUCKETS),
    fc.Indicator(fc.VocabularyList("Sex", ["male", "female"])),
    fc.Indicator(fc.VocabularyFile("Embarked")),
    fc.Indicator(PCLASS),
    fc.Indicator(fc.HashBucket("Ticket", hash_bucket_size=3)),
    fc.Embedding(fc.HashBucket("Cabin", hash_bucket_size=32), dimension=2),
    fc.Indicator(fc.Crossed([AGE_BUCKETS, PCLASS], hash_bucket_size=15)),
]

RAW_FEATURE_KEYS = fc.raw_keys(FEATURES)


def preprocessing_fn(inputs):
    outputs = fc.transform(FEATURES, inputs)
    outputs[LABEL_KEY] = inputs[LABEL_KEY]
    return outputs


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
