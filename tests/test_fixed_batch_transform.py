"""Transform's numbers do not depend on how busy the machine was.

Beam tunes the size of the batches TFX's Transform analyzes from wall-clock timings, and tf.Transform's
`mean`/`var` change in their last bits with the batch edges, so on a noisy machine two runs of the same data could
scale a feature differently by an ulp and train different weights (a Kubeflow rerun once did, in CI). Here the
real executor runs on the Titanic run's own inputs twice, under two fake clocks that make Beam's estimator see a
quiet and a loaded machine: components/fixed_batch_transform.py gives the same analyzer results and the same
transformed examples; TFX's own executor, on the same two clocks, does not (the check that this test can fail).
"""

import itertools
import random

import pytest
import tensorflow as tf
from apache_beam.transforms import util as beam_util
from google.protobuf import message
from tfx.components.transform import executor as tfx_transform_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import proto_utils

from components import fixed_batch_transform
from metadata import results
from orchestration.factory import create_pipeline
from pipelines.titanic.spec import SPEC

pytestmark = pytest.mark.slow  # the longer tier's: Transform twice under fake clocks (about 3 minutes)


class FakeClock:
    """What `time.time` would read: each call `step(rng)` seconds after the last."""

    def __init__(self, step):
        self.now, self.step, self.rng = 0.0, step, random.Random(0)

    def __call__(self):
        self.now += self.step(self.rng)
        return self.now


QUIET = lambda rng: 1e-4  # noqa: E731  every batch quick: Beam grows them to the cap
LOADED = lambda rng: rng.uniform(0.0, 2.0)  # noqa: E731  timings all over the place: sizes up and down


@pytest.fixture(scope="module")
def transform_run(titanic_run):
    return transform_inputs(titanic_run)


def transform_inputs(cfg):
    """(the factory's Transform node, its input artifacts in the Titanic run of `cfg`, cfg)."""
    node = next(c for c in create_pipeline(SPEC, cfg).components if c.id == "Transform")
    store = results.open_store(cfg.metadata_path("titanic"))
    execution, _ = results.latest_outputs(store, "titanic", "Transform")
    inputs = {}
    for key, protos in results.inputs_of(store, execution).items():
        artifact = node.inputs[key].type()
        artifact.set_mlmd_artifact(protos[0])
        inputs[key] = [artifact]
    return node, inputs, cfg


def run_transform(executor_class, transform_run, out_dir, clock_step, monkeypatch):
    """The executor as TFX calls it, with Beam's batch-size estimator reading `clock_step`'s clock; returns
    (the analyzers' vocabulary files, every transformed example in a canonical serialization)."""
    node, inputs, cfg = transform_run
    original_init = beam_util._BatchSizeEstimator.__init__

    def init_with_clock(self, *args, **kwargs):
        original_init(self, *args, **dict(kwargs, clock=FakeClock(clock_step)))

    monkeypatch.setattr(beam_util._BatchSizeEstimator, "__init__", init_with_clock)
    props = {
        k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
        for k, v in node.exec_properties.items()
        if v is not None
    }
    props["disable_statistics"] = 1  # TFDV's pre/post-transform statistics: a third of the time, no examples
    outputs = {}
    for key, channel in node.outputs.items():
        artifact = channel.type()
        artifact.uri = str(out_dir / key)
        outputs[key] = [artifact]
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=cfg.beam_pipeline_args(), tmp_dir=str(out_dir / ".tmp"), unique_id="test"
    )
    executor_class(context).Do(inputs, outputs, props)
    monkeypatch.undo()

    transformed = outputs["transformed_examples"][0]
    examples = {}
    for split in artifact_utils.decode_split_names(transformed.split_names):
        files = tf.io.gfile.glob(artifact_utils.get_split_uri([transformed], split) + "/*")
        # protobuf map order is not fixed: compare the examples, each serialized with sorted keys
        examples[split] = [
            tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
            for r in tf.data.TFRecordDataset(sorted(files), compression_type="GZIP")
        ]
    graph = outputs["transform_graph"][0].uri
    vocabularies = {
        p.rsplit("/", 1)[-1]: tf.io.gfile.GFile(p).read() for p in tf.io.gfile.glob(f"{graph}/transform_fn/assets/*")
    }
    return vocabularies, examples


def changed_features(a, b):
    """The names of the features whose values differ between two lists of serialized examples."""
    names = set()
    for x, y in itertools.zip_longest(a, b):
        if x != y:
            fx, fy = (tf.train.Example.FromString(s).features.feature for s in (x, y))
            names |= {k for k in set(fx) | set(fy) if fx.get(k) != fy.get(k)}
    return sorted(names)


def test_transform_gives_the_same_examples_on_a_quiet_and_a_loaded_machine(transform_run, tmp_path, monkeypatch):
    runs = [
        run_transform(fixed_batch_transform.Executor, transform_run, tmp_path / name, step, monkeypatch)
        for name, step in (("quiet", QUIET), ("loaded", LOADED))
    ]
    (vocab_a, examples_a), (vocab_b, examples_b) = runs
    assert vocab_a == vocab_b and vocab_a  # Embarked's vocabulary at least
    assert set(examples_a) == {"train", "eval"} and len(examples_a["train"]) == 712  # the book's train.csv
    for split in examples_a:
        assert changed_features(examples_a[split], examples_b[split]) == [], split
        assert examples_a[split] == examples_b[split], split


def test_tfx_transform_itself_differs_between_the_two_clocks(transform_run, tmp_path, monkeypatch):
    """Without the fixed batches the two clocks cut the data differently and a scaled feature moves by an ulp:
    what made the test above necessary, and proof that its two clocks do provoke it."""
    runs = [
        run_transform(tfx_transform_executor.Executor, transform_run, tmp_path / name, step, monkeypatch)
        for name, step in (("quiet", QUIET), ("loaded", LOADED))
    ]
    (_, examples_a), (_, examples_b) = runs
    changed = changed_features(examples_a["train"], examples_b["train"])
    assert changed and set(changed) <= {"Age", "Fare", "Parch", "SibSp"}, changed
