"""Each of the book's nine feature-column kinds, through a real tf.Transform analyze-and-transform on Beam,
and the Keras side built from the same spec."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modeling import feature_columns as fc

AGE_BUCKETS = fc.Bucketized("age", boundaries=[18, 40])
CLS = fc.CategoricalIdentity("cls", num_buckets=4)
SPEC = [
    fc.Numeric("age"),
    fc.Numeric("fare", normalize=False, missing_flag=False),
    fc.Indicator(AGE_BUCKETS),
    fc.Indicator(CLS),
    fc.Indicator(fc.VocabularyList("sex", ["male", "female"])),
    fc.Indicator(fc.VocabularyFile("port")),
    fc.Indicator(fc.HashBucket("ticket", hash_bucket_size=5)),
    fc.Embedding(fc.HashBucket("cabin", hash_bucket_size=8), dimension=3),
    fc.Indicator(fc.Crossed([AGE_BUCKETS, CLS], hash_bucket_size=7)),
]
RAW_SPEC = {
    "age": tf.io.VarLenFeature(tf.float32),
    "fare": tf.io.FixedLenFeature([1], tf.float32),
    "cls": tf.io.FixedLenFeature([1], tf.int64),
    "sex": tf.io.FixedLenFeature([1], tf.string),
    "port": tf.io.VarLenFeature(tf.string),
    "ticket": tf.io.FixedLenFeature([1], tf.string),
    "cabin": tf.io.VarLenFeature(tf.string),
}
ROWS = [
    {"age": [10.0], "fare": [7.0], "cls": [1], "sex": [b"male"], "port": [b"S"], "ticket": [b"A1"], "cabin": [b"C8"]},
    {"age": [30.0], "fare": [9.0], "cls": [3], "sex": [b"female"], "port": [b"S"], "ticket": [b"B2"], "cabin": []},
    {"age": [], "fare": [1.0], "cls": [2], "sex": [b"female"], "port": [b"C"], "ticket": [b"A1"], "cabin": [b"E1"]},
    {"age": [50.0], "fare": [3.0], "cls": [7], "sex": [b"unknown"], "port": [], "ticket": [b"Z9"], "cabin": []},
]


def preprocessing_fn(inputs):
    return fc.transform(SPEC, inputs)


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tft")
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    with tft_beam.Context(temp_dir=str(tmp / "tmp"), force_tf_compat_v1=False):
        (rows, _), transform_fn = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn, output_record_batches=False
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "out"))
    return rows, tft.TFTransformOutput(str(tmp / "out"))


def column(transformed, name):
    rows, _ = transformed
    return [np.asarray(r[name]).reshape(-1).tolist()[0] for r in rows]


def test_numeric_is_z_scored_over_present_values_with_a_missing_flag(transformed):
    present = np.array([10.0, 30.0, 50.0])
    expected = ((present - present.mean()) / present.std()).tolist()
    got = column(transformed, "age")
    assert got[0] == pytest.approx(expected[0], rel=1e-5)
    assert got[1] == pytest.approx(expected[1], abs=1e-6)
    assert got[3] == pytest.approx(expected[2], rel=1e-5)
    assert got[2] == 0.0  # missing -> the mean, once scaled
    assert column(transformed, "age_missing") == [0.0, 0.0, 1.0, 0.0]
    assert column(transformed, "fare") == [7.0, 9.0, 1.0, 3.0]  # normalize=False: as is
    assert "fare_missing" not in transformed[0][0]


def test_bucketized_uses_the_fixed_boundaries(transformed):
    # [..18) -> 0, [18..40) -> 1, [40..] -> 2; a missing age is 0, like the book's fillna(0)
    assert column(transformed, "age_bucketized") == [0, 1, 0, 2]


def test_categorical_identity_maps_out_of_range_to_default(transformed):
    assert column(transformed, "cls_identity") == [1, 3, 2, 0]


def test_vocabulary_list_puts_unknown_values_in_the_oov_bucket(transformed):
    assert column(transformed, "sex_vocab") == [0, 1, 1, 2]


def test_vocabulary_file_is_computed_from_the_data(transformed):
    _, tft_output = transformed
    assert tft_output.vocabulary_by_name("vocab_port") == [b"S", b"C"]  # by frequency
    assert column(transformed, "port_vocabfile") == [0, 0, 1, 2]  # missing -> the OOV bucket
    assert fc.num_buckets(fc.VocabularyFile("port"), tft_output) == 3


def test_hash_bucket_is_stable_and_in_range(transformed):
    ids = column(transformed, "ticket_hashed")
    assert all(0 <= i < 5 for i in ids)
    assert ids[0] == ids[2]  # same ticket, same bucket
    assert ids[0] == tf.strings.to_hash_bucket_fast(["A1"], 5).numpy()[0]


def test_crossed_combines_the_bucket_and_the_class(transformed):
    ids = column(transformed, "age_bucketized_x_cls_identity")
    expected = tf.strings.to_hash_bucket_fast(["0_x_1", "1_x_3", "0_x_2", "2_x_0"], 7).numpy().tolist()
    assert ids == expected


def test_keras_side_one_hot_and_embedding(transformed):
    rows, tft_output = transformed
    inputs = fc.keras_inputs(SPEC)
    assert set(inputs) == set(fc.transformed_names(SPEC)) == set(rows[0])
    features = fc.encode(SPEC, inputs, tft_output)
    # age + flag, fare, one-hots 3 + 4 + 3 + 3 (vocab file: 2 + 1 oov) + 5, embedding 3, cross 7
    assert features.shape[-1] == 2 + 1 + 3 + 4 + 3 + 3 + 5 + 3 + 7
    model = tf.keras.Model(inputs, features)
    batch = {k: tf.constant([[r[k]] for r in rows], dtype=inputs[k].dtype) for k in inputs}
    out = model(batch).numpy()
    assert out.shape == (4, 31)
    # the indicator for cls_identity (after age, flag, fare, 3 age buckets) is one-hot of [1, 3, 2, 0]
    np.testing.assert_array_equal(out[:, 6:10], np.eye(4)[[1, 3, 2, 0]])


def test_indicator_of_embedding_kinds_and_raw_keys():
    assert fc.raw_keys(SPEC) == ["age", "fare", "cls", "sex", "port", "ticket", "cabin"]
    with pytest.raises(TypeError, match="wrap categorical columns"):
        fc.transform([fc.HashBucket("x", 3)], {"x": tf.constant([["a"]])})


def test_missing_raw_feature_is_named():
    with pytest.raises(KeyError, match="needs raw feature 'cabin'"):
        fc.transform([fc.Indicator(fc.HashBucket("cabin", 3))], {"x": tf.constant([["a"]])})


def _analyzer_outputs(spec, raw):
    """How many analyzer results tf.Transform's graph for `spec` waits for (each is one Beam output)."""
    from tensorflow_transform import analyzer_nodes

    with tf.compat.v1.Graph().as_default() as graph:
        inputs = {k: tf.compat.v1.placeholder(dtype, [None, 1]) for k, dtype in raw.items()}
        fc.transform(spec, inputs)
        return len(graph.get_collection(analyzer_nodes.TENSOR_REPLACEMENTS))


def test_every_z_scored_series_shares_one_pair_of_analyzers_whatever_the_width():
    """A pair per column fanned out to two Beam outputs each, and Flink's optimizer refuses a node with more
    than 64 (a 20-number table with a date could not run Transform on Flink)."""

    def spec_and_raw(width):
        spec = [fc.Numeric(f"x{i}") for i in range(width)] + [fc.Date("day", "iso")]
        return spec, {**{f"x{i}": tf.float32 for i in range(width)}, "day": tf.string}

    narrow, wide = _analyzer_outputs(*spec_and_raw(1)), _analyzer_outputs(*spec_and_raw(60))
    assert wide == narrow <= 4


def test_each_stacked_series_is_scaled_with_its_own_statistics(tmp_path):
    spec = [fc.Numeric("small"), fc.Numeric("big"), fc.Numeric("sparse"), fc.Date("day", "iso")]
    raw_spec = {
        "small": tf.io.FixedLenFeature([1], tf.float32),
        "big": tf.io.FixedLenFeature([1], tf.float32),
        "sparse": tf.io.VarLenFeature(tf.float32),
        "day": tf.io.FixedLenFeature([1], tf.string),
    }
    small, big = [0.1, 0.2, 0.4, 0.3, 0.5], [1e4, 3e4, 2e4, 5e4, 4e4]
    sparse = [[1.0], [], [7.0], [], [4.0]]
    days = [b"2020-01-01", b"2020-01-11", b"not a date", b"2020-03-01", b"2020-01-31"]
    rows = [{"small": [a], "big": [b], "sparse": s, "day": [d]} for a, b, s, d in zip(small, big, sparse, days)]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (out, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: fc.transform(spec, inputs), output_record_batches=False
        )

    def got(name):
        return [float(np.asarray(r[name]).reshape(-1)[0]) for r in out]

    def z(values):
        values = np.array(values, dtype=np.float64)
        return (values - values.mean()) / values.std()

    np.testing.assert_allclose(got("small"), z(small), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got("big"), z(big), rtol=1e-4, atol=1e-5)
    present = [1.0, 7.0, 4.0]
    np.testing.assert_allclose([got("sparse")[i] for i in (0, 2, 4)], z(present), rtol=1e-4, atol=1e-5)
    assert [got("sparse")[i] for i in (1, 3)] == [0.0, 0.0]  # absent -> the mean, once scaled
    since_1970 = [18262, 18272, 18322, 18292]  # the four dates, the unparseable one left out of the statistics
    np.testing.assert_allclose([got("day_date_days")[i] for i in (0, 1, 3, 4)], z(since_1970), rtol=1e-4, atol=1e-5)
    assert got("day_date_days")[2] == 0.0 and got("day_date_missing") == [0.0, 0.0, 1.0, 0.0, 0.0]
