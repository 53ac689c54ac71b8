"""The cifar2 pipeline end to end on a small subset of the real images (30 per class and split)."""

import json
import shutil
import textwrap

import pytest
from tfx import v1 as tfx

from metadata import results
from orchestration.factory import create_pipeline
from pipelines.cifar2.spec import SPEC

PER_CLASS = 30  # tests/conftest.py CIFAR2_PER_CLASS


@pytest.fixture(scope="module")
def subset(cifar2_subset):
    return cifar2_subset


@pytest.fixture(scope="module")
def cfg(cifar2_run):
    """The shared cifar2 run on the subset (tests/shared_runs.py: bounds off, two epochs: the plumbing is under test
    here, quality in bench/)."""
    return cifar2_run


def test_components_ran_and_model_pushed(cfg, assert_every_node_ran_once):
    assert_every_node_ran_once(SPEC, cfg)
    result = results.last_run("cifar2", cfg)
    assert result.blessed and result.pushed
    assert result.overall("example_count") == 2 * PER_CLASS
    assert {"auc", "ks", "binary_accuracy"} <= set(result.metrics["overall"])


def test_pushed_model_classifies_jpeg_bytes(cfg, subset, run_python):
    result = results.last_run("cifar2", cfg)
    files = [str(p) for p in sorted((subset / "test").glob("*/*.jpg"))[:: PER_CLASS // 3]]
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({result.pushed_destination!r})
        data = [open(f, "rb").read() for f in {files!r}]
        raw = model.signatures["serving_raw"](image_raw=tf.constant(data))["probability"].numpy().ravel()
        examples = [tf.train.Example(features=tf.train.Features(feature={{"image_raw": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[d]))}})).SerializeToString() for d in data]
        by_example = model.signatures["serving_examples"](examples=tf.constant(examples))["probability"].numpy().ravel()
        print(json.dumps({{"raw": raw.tolist(), "example": by_example.tolist()}}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["raw"]) == len(files) and all(0.0 <= p <= 1.0 for p in out["raw"])
    assert out["raw"] == pytest.approx(out["example"], abs=1e-6)


def test_corrupt_jpeg_stops_the_run_naming_the_file(cfg, subset, tmp_path, fork):
    cfg = fork(cfg)
    bad = tmp_path / "cifar2"
    shutil.copytree(subset, bad)
    (bad / "train" / "automobile" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    before = sorted(p.name for p in cfg.serving_root("cifar2").iterdir())
    with pytest.raises(Exception, match=r"train/automobile/broken.jpg: not a decodable image"):
        tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, cfg, data_root=str(bad)))
    assert sorted(p.name for p in cfg.serving_root("cifar2").iterdir()) == before


def test_report_shows_example_images(cfg):
    from metadata import report

    page = report.write_report("cifar2", cfg).read_text()
    examples = page.split('<section id="examples">')[1].split("</section>")[0]
    assert examples.count("data:image/png;base64,") == 1 and 'id="curves"' in page
