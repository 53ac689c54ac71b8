"""DelimitedExampleGen on its own: header-less TSV lines to typed tf.Examples, and bad lines named by file:line."""

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.types import standard_component_specs

from components import delimited_example_gen as deg

COLUMNS = [deg.column("label", "int", allowed=[0, 1]), deg.column("text", "string")]


def run_split(root, pattern, out_dir, skip_invalid=False):
    component = deg.DelimitedExampleGen(
        input_base=str(root), columns=COLUMNS, splits=[("train", pattern)], skip_invalid=skip_invalid
    )
    props = dict(component.exec_properties)
    props[standard_component_specs.INPUT_BASE_KEY] = str(root)
    prefix = str(out_dir / "examples")
    pipeline = beam.Pipeline()
    _ = (
        pipeline
        | deg._DelimitedToExample(props, pattern)
        | beam.io.WriteToTFRecord(prefix, coder=beam.coders.ProtoCoder(tf.train.Example), num_shards=1)
    )
    result = pipeline.run()
    result.wait_until_finish()
    examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(tf.io.gfile.glob(prefix + "*"))]
    rows = [
        (e.features.feature["label"].int64_list.value[0], e.features.feature["text"].bytes_list.value[0].decode())
        for e in examples
    ]
    return rows, result


def test_lines_become_typed_examples_in_order(tmp_path):
    (tmp_path / "train.csv").write_text(
        "1\tGreat film<br />loved it\n0\tdull\twith a tab inside\r\n1\tÉtonnant ✓\n", encoding="utf-8"
    )
    rows, _ = run_split(tmp_path, "train.csv", tmp_path)
    assert rows == [(1, "Great film<br />loved it"), (0, "dull\twith a tab inside"), (1, "Étonnant ✓")]


@pytest.mark.parametrize(
    "content, where, why",
    [
        ("1\tok\n\n0\tfine\n", ":2:", "empty line"),
        ("1\tok\n0 no tab here\n", ":2:", "expected 2 fields separated by '\\t', found 1"),
        ("1\tok\n2\tbad label\n", ":2:", "column 'label': '2' is not one of [0, 1]"),
        ("x\tbad label\n", ":1:", "column 'label': 'x' is not an integer"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, content, where, why):
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(Exception) as err:
        run_split(tmp_path, "train.csv", tmp_path)
    assert f"train.csv{where} {why}" in str(err.value)


def test_not_utf8_is_named(tmp_path):
    (tmp_path / "train.csv").write_bytes(b"1\tok\n0\t\xff\xfe bad bytes\n")
    with pytest.raises(Exception, match=r"train.csv:2: not UTF-8"):
        run_split(tmp_path, "train.csv", tmp_path)


def test_bad_lines_can_be_counted_and_skipped(tmp_path):
    (tmp_path / "train.csv").write_text("1\tok\n\n7\tbad\nno tab\n0\tfine\n")
    rows, result = run_split(tmp_path, "train.csv", tmp_path, skip_invalid=True)
    assert rows == [(1, "ok"), (0, "fine")]
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("invalid_lines_skipped"))["counters"]
    assert sum(c.committed for c in counters) == 3


def test_missing_file_is_named(tmp_path):
    with pytest.raises(Exception, match=r"no file matches .*/train.csv"):
        run_split(tmp_path, "train.csv", tmp_path)


def test_bad_declarations():
    with pytest.raises(ValueError, match="type 'date' is not one of"):
        deg.column("d", "date")
    with pytest.raises(ValueError, match="cannot separate fields"):
        deg.DelimitedExampleGen(input_base="x", columns=COLUMNS, splits=[("train", "a")], delimiter="\n")
