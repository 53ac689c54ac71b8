"""Titanic's features, declared with the book's feature columns (chapter 5-2); the network is in model.py."""

from __future__ import annotations

from modeling import feature_columns as fc

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
