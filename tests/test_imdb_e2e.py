"""The IMDB pipeline end to end on a small subset of the real reviews (first 400 train, 100 test lines)."""

import json
import textwrap

import pytest
from tfx import v1 as tfx

from metadata import results
from orchestration.factory import create_pipeline
from pipelines.imdb.spec import SPEC


@pytest.fixture(scope="module")
def subset(imdb_subset):
    return imdb_subset


@pytest.fixture(scope="module")
def cfg(imdb_run):
    """The shared imdb run on the subset (tests/shared_runs.py: bounds off, two epochs: the plumbing is under test
    here, quality in bench/)."""
    return imdb_run


def test_components_ran_and_model_pushed(cfg, assert_every_node_ran_once):
    assert_every_node_ran_once(SPEC, cfg)
    result = results.last_run("imdb", cfg)
    assert result.blessed and result.pushed and result.overall("example_count") == 100


def test_pushed_model_scores_any_raw_text(cfg, subset, run_python):
    result = results.last_run("imdb", cfg)
    reviews = [
        "",
        "An absolutely wonderful film, I loved it!",
        "Terrible. <br /><br />Boring & far too long...",
        "Un film magnifique, très émouvant — 素晴らしい映画 😀",
        " ".join(["word"] * 10000),
    ]
    code = textwrap.dedent(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({result.pushed_destination!r})
        reviews = {reviews!r}
        raw = model.signatures["serving_raw"](text=tf.constant(reviews))["probability"].numpy().ravel()
        examples = [tf.train.Example(features=tf.train.Features(feature={{"text": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[r.encode()]))}})).SerializeToString() for r in reviews]
        by_example = model.signatures["serving_examples"](examples=tf.constant(examples))["probability"].numpy().ravel()
        print(json.dumps({{"raw": raw.tolist(), "example": by_example.tolist()}}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["raw"]) == 5 and all(0.0 <= p <= 1.0 for p in out["raw"])
    assert out["raw"] == pytest.approx(out["example"], abs=1e-6)


def test_malformed_line_stops_the_run_naming_file_and_line(cfg, subset, tmp_path, fork):
    cfg = fork(cfg)
    bad = tmp_path / "imdb"
    bad.mkdir()
    lines = (subset / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[41] = "this line has no tab and no label\n"
    (bad / "train.csv").write_text("".join(lines), encoding="utf-8")
    (bad / "test.csv").write_text((subset / "test.csv").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(Exception, match=r"train.csv:42: expected 2 fields separated by '\\t', found 1"):
        tfx.orchestration.LocalDagRunner().run(create_pipeline(SPEC, cfg, data_root=str(bad)))


def test_report_shows_review_snippets(cfg, subset):
    from metadata import report

    page = report.write_report("imdb", cfg).read_text()
    examples = page.split('<section id="examples">')[1].split("</section>")[0]
    assert "P(positive)" in examples and examples.count("<tr>") == 1 + report.N_EXAMPLES
