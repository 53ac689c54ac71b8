"""ImageExampleGen on its own: labels, splits, paths, determinism, and the errors a bad folder gives."""

import io

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components import image_example_gen as ieg

CLASSES = ["airplane", "automobile"]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_tree(root, layout):
    """layout: {"train/airplane": 3, ...} -> that many JPEGs in each folder."""
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (root / folder / f"{i}.jpg").write_bytes(jpeg(hash((folder, i)) % 1000))
    return root


def exec_properties(root, skip_invalid=False):
    component = ieg.ImageExampleGen(input_base=str(root), class_names=CLASSES, skip_invalid=skip_invalid)
    props = dict(component.exec_properties)
    props[standard_component_specs.INPUT_BASE_KEY] = str(root)
    return props


def run_split(root, split_pattern, out_dir, skip_invalid=False):
    """Runs the ExampleGen's Beam transform for one split into TFRecords; returns (examples, pipeline result)."""
    prefix = str(out_dir / "examples")
    pipeline = beam.Pipeline()
    _ = (
        pipeline
        | ieg._ImageToExample(exec_properties(root, skip_invalid), split_pattern)
        | beam.io.WriteToTFRecord(prefix, coder=beam.coders.ProtoCoder(tf.train.Example), num_shards=1)
    )
    result = pipeline.run()
    result.wait_until_finish()
    files = tf.io.gfile.glob(prefix + "*")
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files)], result


def read(root, split_pattern, skip_invalid=False):
    """The examples of one split as dicts."""
    out_dir = root / ".out" / split_pattern.split("/")[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    found, _ = run_split(root, split_pattern, out_dir, skip_invalid)
    rows = []
    for example in found:
        f = example.features.feature
        rows.append(
            {
                "label": f["label"].int64_list.value[0],
                "path": f["path"].bytes_list.value[0].decode(),
                "image_raw": f["image_raw"].bytes_list.value[0],
            }
        )
    return rows


def test_component_maps_train_and_test_folders_to_splits(tmp_path):
    component = ieg.ImageExampleGen(input_base=str(tmp_path), class_names=CLASSES)
    config = example_gen_pb2.Input()
    from google.protobuf import json_format

    json_format.Parse(component.exec_properties["input_config"], config)
    assert [(s.name, s.pattern) for s in config.splits] == [("train", "train/*/*"), ("eval", "test/*/*")]
    assert ieg.read_settings(component.exec_properties) == {"class_names": CLASSES, "skip_invalid": False}


def test_labels_paths_and_bytes(tmp_path):
    root = make_tree(tmp_path, {"train/airplane": 3, "train/automobile": 2, "test/airplane": 1, "test/automobile": 1})
    rows = sorted(read(root, "train/*/*"), key=lambda r: r["path"])
    assert [(r["path"], r["label"]) for r in rows] == [
        ("train/airplane/0.jpg", 0),
        ("train/airplane/1.jpg", 0),
        ("train/airplane/2.jpg", 0),
        ("train/automobile/0.jpg", 1),
        ("train/automobile/1.jpg", 1),
    ]
    for r in rows:
        assert r["image_raw"] == (root / r["path"]).read_bytes()  # untouched bytes
        assert tf.io.decode_jpeg(r["image_raw"]).shape == (32, 32, 3)
    assert [r["path"] for r in read(root, "test/*/*")] == ["test/airplane/0.jpg", "test/automobile/0.jpg"]


def test_same_folder_same_examples(tmp_path):
    root = make_tree(tmp_path, {"train/airplane": 5, "train/automobile": 5})
    assert read(root, "train/*/*") == read(root, "train/*/*")
    assert ieg.list_split(str(root), "train", CLASSES) == ieg.list_split(str(root), "train", CLASSES)


def test_corrupt_image_is_an_error_naming_the_file(tmp_path):
    root = make_tree(tmp_path, {"train/airplane": 2, "train/automobile": 2})
    (root / "train/automobile/1.jpg").write_bytes(jpeg(1)[:200])  # truncated
    with pytest.raises(Exception, match=r"train/automobile/1.jpg: not a decodable image"):
        read(root, "train/*/*")


def test_corrupt_images_can_be_counted_and_skipped(tmp_path):
    root = make_tree(tmp_path, {"train/airplane": 2, "train/automobile": 2})
    (root / "train/airplane/0.jpg").write_bytes(b"not an image at all")
    (root / "train/automobile/0.jpg").write_bytes(jpeg(3)[:100])
    found, result = run_split(root, "train/*/*", tmp_path / "out_skip", skip_invalid=True)
    assert sorted(e.features.feature["path"].bytes_list.value[0] for e in found) == [
        b"train/airplane/1.jpg",
        b"train/automobile/1.jpg",
    ]
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("invalid_images_skipped"))["counters"]
    assert sum(c.committed for c in counters) == 2


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"train/airplane": 1}, r"train/automobile: class folder missing"),
        ({"train/airplane": 1, "train/automobile": 0}, r"train/automobile: class folder is empty"),
        (
            {"train/airplane": 1, "train/automobile": 1, "train/ship": 1},
            r"folders \['ship'\] are not among the classes",
        ),
        ({"test/airplane": 1, "test/automobile": 1}, r"train: split folder missing"),
    ],
)
def test_layout_errors_name_the_folder(tmp_path, layout, message):
    make_tree(tmp_path, layout)
    with pytest.raises(ieg.ImageLayoutError, match=message):
        ieg.list_split(str(tmp_path), "train", CLASSES)


def test_stray_file_outside_class_folders(tmp_path):
    make_tree(tmp_path, {"train/airplane": 1, "train/automobile": 1})
    (tmp_path / "train" / "notes.txt").write_text("x")
    with pytest.raises(ieg.ImageLayoutError, match=r"files \['notes.txt'\] lie outside any class folder"):
        ieg.list_split(str(tmp_path), "train", CLASSES)


def test_class_names_must_be_distinct(tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        ieg.ImageExampleGen(input_base=str(tmp_path), class_names=["a", "a"])
