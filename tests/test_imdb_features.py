"""IMDB's Transform: the book's cleaning, the vocabulary over the training split, ids padded/truncated to 200."""

import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from pipelines.imdb import features

RAW_SPEC = {"text": tf.io.FixedLenFeature([1], tf.string), "label": tf.io.FixedLenFeature([1], tf.int64)}


def test_cleaning_as_the_book_does():
    out = features.clean(tf.constant(["A <br />Great, film!!<br /><br />Don't miss it.", "ÉTÉ Ünïcode"]))
    assert [s.decode() for s in out.numpy()] == ["a  great film  dont miss it", "été ünïcode"]
    tokens = features.tokenize(tf.constant(["Hello,   world <br />again"]))
    assert tokens.to_list() == [[b"hello", b"world", b"again"]]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imdb_tft")
    train = [
        {"text": ["good good good film"], "label": [1]},
        {"text": ["bad film<br />bad"], "label": [0]},
        {"text": ["good"], "label": [1]},
    ]
    serve = [
        {"text": ["good unseenword BAD!"], "label": [1]},
        {"text": [""], "label": [0]},
        {"text": [" ".join(["film"] * 250 + ["good"])], "label": [1]},
    ]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=str(tmp / "tmp"), force_tf_compat_v1=False):
        transform_fn = (train, metadata) | tft_beam.AnalyzeDataset(features.preprocessing_fn)
        rows, _ = ((serve, metadata), transform_fn) | tft_beam.TransformDataset(output_record_batches=False)
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "out"))
    return rows, tft.TFTransformOutput(str(tmp / "out"))


def test_vocabulary_is_by_frequency_over_the_training_split(transformed):
    _, tft_output = transformed
    assert tft_output.vocabulary_by_name(features.VOCAB_FILENAME) == [b"good", b"film", b"bad"]


def test_ids_oov_padding_and_truncation(transformed):
    rows, _ = transformed
    ids = [list(r[features.TOKENS_FEATURE]) for r in rows]
    assert all(len(x) == features.MAX_LEN for x in ids)
    # good -> 0 + 2, unseen -> OOV (1), bad -> 2 + 2; then padding
    assert ids[0][:4] == [2, features.OOV_ID, 4, features.PAD_ID] and set(ids[0][3:]) == {0}
    assert set(ids[1]) == {features.PAD_ID}  # empty text: all padding
    assert set(ids[2]) == {3}  # the first 200 of 250 'film' tokens; 'good' at position 251 is cut
