"""ImageExampleGen: folders of images to tf.Examples, through Beam (TFX ships no ExampleGen for images).

Layout under `input_base`: `<split folder>/<class name>/<image file>`, e.g. the book's cifar2
`train/airplane/0.jpg`. Each image becomes a tf.Example with

    image_raw  the encoded bytes, untouched (decoding happens in Transform, so serving takes the same bytes)
    label      the class's index in `class_names`
    path       the file's path relative to input_base

The split folders map to splits (`train` -> train, `test` -> eval by default). Files are listed in sorted order,
so the same folder always gives the same examples. A file that is not a decodable image is an error naming it,
or with `skip_invalid=True` is skipped, counted (Beam counter `invalid_images_skipped`) and logged. A missing
split folder, a class folder that is missing or empty, or a folder that is not a known class is an error.
"""

from __future__ import annotations

import io
import os
from typing import Any, Dict, List, Sequence, Tuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from PIL import Image, UnidentifiedImageError
from tfx.components.example_gen import component as example_gen_component
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components import example_gen_config
from core.data_errors import DataError

IMAGE_KEY = "image_raw"
LABEL_KEY = "label"
PATH_KEY = "path"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
DEFAULT_SPLITS = (("train", "train"), ("eval", "test"))


class ImageLayoutError(DataError):
    """The input folder is not laid out as <split>/<class>/<images>."""


class InvalidImageError(DataError):
    """A file under the input folder is not a decodable image."""


def read_settings(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    return example_gen_config.unpack(exec_properties, "ImageExampleGen")


def list_split(input_base: str, split_dir: str, class_names: Sequence[str]) -> List[Tuple[str, int]]:
    """(relative path, label) for every file of one split folder, sorted; layout errors name the folder."""
    root = os.path.join(input_base, split_dir)
    if not tf.io.gfile.isdir(root):
        raise ImageLayoutError(
            f"{root}: split folder missing; expected {input_base}/{split_dir}/<class>/<images> "
            f"with classes {list(class_names)}"
        )
    found = sorted(d.rstrip("/") for d in tf.io.gfile.listdir(root) if tf.io.gfile.isdir(os.path.join(root, d)))
    unknown = [d for d in found if d not in class_names]
    if unknown:
        raise ImageLayoutError(f"{root}: folders {unknown} are not among the classes {list(class_names)}")
    stray = sorted(f for f in tf.io.gfile.listdir(root) if not tf.io.gfile.isdir(os.path.join(root, f)))
    if stray:
        raise ImageLayoutError(f"{root}: files {stray[:5]} lie outside any class folder")
    files = []
    split_dir = split_dir.rstrip("/")
    for label, name in enumerate(class_names):
        class_dir = os.path.join(root, name)
        if not tf.io.gfile.isdir(class_dir):
            raise ImageLayoutError(f"{class_dir}: class folder missing (classes: {list(class_names)})")
        names = sorted(f for f in tf.io.gfile.listdir(class_dir) if not tf.io.gfile.isdir(os.path.join(class_dir, f)))
        if not names:
            raise ImageLayoutError(f"{class_dir}: class folder is empty")
        files.extend((f"{split_dir}/{name}/{f}", label) for f in names)
    return files


def check_image(data: bytes, path: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # verify() misses truncated pixel data; a full decode does not
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{path}: not a decodable image ({exc})") from None


def to_example(data: bytes, label: int, rel_path: str) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                PATH_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[rel_path.encode()])),
            }
        )
    )


class _ReadImage(beam.DoFn):
    def __init__(self, input_base: str, skip_invalid: bool):
        self._input_base = input_base
        self._skip_invalid = skip_invalid
        self._skipped = beam.metrics.Metrics.counter("ImageExampleGen", "invalid_images_skipped")

    def process(self, item):
        rel_path, label = item
        path = os.path.join(self._input_base, rel_path)
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
        try:
            check_image(data, path)
        except InvalidImageError as exc:
            if not self._skip_invalid:
                raise
            self._skipped.inc()
            logging.warning("ImageExampleGen: skipping %s", exc)
            return
        yield to_example(data, label, rel_path)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImageToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    """`split_pattern` is `<split folder>/*/*` as ImageExampleGen writes it (with the span already resolved)."""
    settings = read_settings(exec_properties)
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    if not split_pattern.endswith("/*/*"):
        raise ImageLayoutError(f"split pattern {split_pattern!r} is not '<split folder>/*/*'")
    split_dir = split_pattern[: -len("/*/*")]
    files = list_split(input_base, split_dir, settings["class_names"])
    logging.info("ImageExampleGen: %d files in %s/%s", len(files), input_base, split_dir)
    label = split_dir.replace("/", "_")
    return (
        pipeline
        | f"List{label}" >> beam.Create(files, reshuffle=False)
        | f"Read{label}" >> beam.ParDo(_ReadImage(input_base, bool(settings.get("skip_invalid"))))
    )


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImageToExample


class ImageExampleGen(example_gen_component.FileBasedExampleGen):
    """See the module docstring.

    inputs      none (reads `<input_base>/<split folder>/<class>/<file>`)
    outputs     examples (Examples): image_raw (bytes), label (int), path (str) per image, a split per folder
    parameters  input_base (str); class_names (label i is folder class_names[i]); skip_invalid (default
                False: an undecodable file stops the run); splits ((split name, folder) pairs)
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        input_base: str,
        class_names: Sequence[str],
        skip_invalid: bool = False,
        splits: Sequence[Tuple[str, str]] = DEFAULT_SPLITS,
    ):
        """`splits`: (split name, folder) pairs; `class_names[i]` is the folder of label i."""
        if len(set(class_names)) != len(class_names) or not class_names:
            raise ValueError(f"class_names must be distinct and non-empty, got {list(class_names)}")
        custom_config = example_gen_config.pack({"class_names": list(class_names), "skip_invalid": bool(skip_invalid)})
        super().__init__(
            input_base=input_base,
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name=name, pattern=f"{folder}/*/*") for name, folder in splits]
            ),
            custom_config=custom_config,
        )
