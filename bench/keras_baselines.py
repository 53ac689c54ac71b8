"""The book's plain Keras training scripts, as the yardstick for the pipelines' wall time.

python bench/keras_baselines.py titanic|cifar2|imdb DATA_DIR EPOCHS   # a JSON line: accuracy, auc, seconds
"""

import json
import os
import sys
import time

STARTED = time.monotonic()
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import tensorflow as tf


def titanic(data_dir: str, epochs: int) -> dict:
    """Chapter 1-1, as the book writes it: pandas one-hot columns, a 20-10-1 dense network, 30 epochs."""
    import pandas as pd

    def preprocessing(dfdata):
        dfresult = pd.DataFrame()
        dfPclass = pd.get_dummies(dfdata["Pclass"])
        dfPclass.columns = ["Pclass_" + str(x) for x in dfPclass.columns]
        dfresult = pd.concat([dfresult, dfPclass], axis=1)
        dfSex = pd.get_dummies(dfdata["Sex"])
        dfresult = pd.concat([dfresult, dfSex], axis=1)
        dfresult["Age"] = dfdata["Age"].fillna(0)
        dfresult["Age_null"] = pd.isna(dfdata["Age"]).astype("int32")
        dfresult["SibSp"] = dfdata["SibSp"]
        dfresult["Parch"] = dfdata["Parch"]
        dfresult["Fare"] = dfdata["Fare"]
        dfresult["Cabin_null"] = pd.isna(dfdata["Cabin"]).astype("int32")
        dfEmbarked = pd.get_dummies(dfdata["Embarked"], dummy_na=True)
        dfEmbarked.columns = ["Embarked_" + str(x) for x in dfEmbarked.columns]
        dfresult = pd.concat([dfresult, dfEmbarked], axis=1)
        return dfresult.astype("float32")

    dftrain_raw, dftest_raw = pd.read_csv(f"{data_dir}/train.csv"), pd.read_csv(f"{data_dir}/test.csv")
    x_train, y_train = preprocessing(dftrain_raw).values, dftrain_raw["Survived"].values
    x_test, y_test = preprocessing(dftest_raw).values, dftest_raw["Survived"].values
    model = tf.keras.models.Sequential(
        [
            tf.keras.layers.Dense(20, activation="relu", input_shape=(15,)),
            tf.keras.layers.Dense(10, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", tf.keras.metrics.AUC(name="auc")])
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, validation_split=0.2, verbose=2)
    _, accuracy, auc = model.evaluate(x_test, y_test, verbose=0)
    return {"accuracy": accuracy, "auc": auc}


def cifar2(data_dir: str, epochs: int) -> dict:
    """Chapter 1-2, as the book writes it."""

    def load_image(path, size=(32, 32)):
        label = tf.cast(tf.strings.regex_full_match(path, ".*automobile.*"), tf.int8)
        image = tf.image.resize(tf.image.decode_jpeg(tf.io.read_file(path)), size) / 255.0
        return image, label

    auto = tf.data.AUTOTUNE
    train = (
        tf.data.Dataset.list_files(f"{data_dir}/train/*/*.jpg")
        .map(load_image, num_parallel_calls=auto)
        .shuffle(buffer_size=1000)
        .batch(100)
        .prefetch(auto)
    )
    test = (
        tf.data.Dataset.list_files(f"{data_dir}/test/*/*.jpg")
        .map(load_image, num_parallel_calls=auto)
        .batch(100)
        .prefetch(auto)
    )
    inputs = tf.keras.layers.Input(shape=(32, 32, 3))
    x = tf.keras.layers.Conv2D(32, kernel_size=(3, 3))(inputs)
    x = tf.keras.layers.MaxPool2D()(x)
    x = tf.keras.layers.Conv2D(64, kernel_size=(5, 5))(x)
    x = tf.keras.layers.MaxPool2D()(x)
    x = tf.keras.layers.Dropout(rate=0.1)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(32, activation="relu")(x)
    outputs = tf.keras.layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model(inputs, outputs)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.001),
        loss="binary_crossentropy",
        metrics=["accuracy", tf.keras.metrics.AUC(name="auc")],
    )
    model.fit(train, epochs=epochs, validation_data=test, verbose=2)
    _, accuracy, auc = model.evaluate(test, verbose=0)
    return {"accuracy": accuracy, "auc": auc}


def imdb(data_dir: str, epochs: int) -> dict:
    """Chapter 1-3: TextVectorization to 200 ids over a 10000-token vocabulary, the same Conv1D network."""
    import re
    import string

    def split_line(line):
        parts = tf.strings.split(line, "\t", maxsplit=1)
        return parts[1], tf.strings.to_number(parts[0], tf.int32)

    def clean(text):
        text = tf.strings.regex_replace(tf.strings.lower(text), "<br />", " ")
        return tf.strings.regex_replace(text, "[%s]" % re.escape(string.punctuation), "")

    train = tf.data.TextLineDataset(f"{data_dir}/train.csv").map(split_line).shuffle(1000).batch(20)
    test = tf.data.TextLineDataset(f"{data_dir}/test.csv").map(split_line).batch(20)
    vectorize = tf.keras.layers.TextVectorization(
        max_tokens=10000, standardize=clean, split="whitespace", output_mode="int", output_sequence_length=200
    )
    vectorize.adapt(train.map(lambda text, label: text))
    train = train.map(lambda text, label: (vectorize(text), label)).prefetch(tf.data.AUTOTUNE)
    test = test.map(lambda text, label: (vectorize(text), label)).prefetch(tf.data.AUTOTUNE)
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Embedding(10000, 7, input_length=200),
            tf.keras.layers.Conv1D(filters=16, kernel_size=5, activation="relu"),
            tf.keras.layers.MaxPool1D(2),
            tf.keras.layers.Conv1D(filters=128, kernel_size=2, activation="relu"),
            tf.keras.layers.MaxPool1D(2),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="Nadam", loss="binary_crossentropy", metrics=["accuracy", tf.keras.metrics.AUC(name="auc")])
    model.fit(train, epochs=epochs, validation_data=test, verbose=2)
    _, accuracy, auc = model.evaluate(test, verbose=0)
    return {"accuracy": accuracy, "auc": auc}


BASELINES = {"titanic": titanic, "cifar2": cifar2, "imdb": imdb}

if __name__ == "__main__":
    name, data_dir, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = BASELINES[name](data_dir, epochs)
    result["seconds"] = time.monotonic() - STARTED
    print(json.dumps(result))
