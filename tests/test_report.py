"""The run report (one self-contained HTML page) and the progress lines, on a real Titanic run."""

import base64
import io
import re

import pytest

from metadata import report, results
from metadata.progress import Progress

SECTIONS = ["data", "training", "evaluation", "curves", "examples", "lineage"]


def images(html: str, section: str):
    body = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S).group(1)
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', body)], body


@pytest.fixture(scope="module")
def page(titanic_run):
    path = report.write_report("titanic", titanic_run)
    assert path.parent.parent == titanic_run.pipeline_root("titanic") / "reports"
    return path.read_text(encoding="utf-8")


def test_every_section_is_there_with_valid_pngs(page):
    import matplotlib.image

    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    for section, count in (("data", 1), ("training", 1), ("curves", 1)):
        pngs, _ = images(page, section)
        assert len(pngs) == count, section
        for png in pngs:
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            assert matplotlib.image.imread(io.BytesIO(png)).shape[2] in (3, 4)
    assert "http" not in re.sub(r"data:image/png;base64,[^\"]+", "", page).split("<section")[0]  # self-contained


def test_numbers_equal_the_evaluation_artifact(page, titanic_run):
    result = results.last_run("titanic", titanic_run)
    shown = {
        (s, m): float(v)
        for s, m, v in re.findall(r'data-slice="([^"]+)" data-metric="([^"]+)" data-value="([^"]+)"', page)
    }
    expected = {(s, m): v for s, values in result.metrics.items() for m, v in values.items()}
    assert shown == expected and ("overall", "auc") in shown and ("Sex=male", "ks") in shown


def test_data_training_examples_and_lineage_content(page, titanic_run):
    _, data = images(page, "data")
    assert "<td>train</td><td>712</td>" in data and "<td>eval</td><td>179</td>" in data
    assert "share of positives" in data
    _, training = images(page, "training")
    assert "seed 42" in training and "10 of at most 10 epochs" in training
    _, examples = images(page, "examples")
    assert examples.count("<tr>") == 1 + report.N_EXAMPLES
    _, lineage = images(page, "lineage")
    assert "serving now" in lineage and "sha256" in lineage
    _, evaluation = images(page, "evaluation")
    assert "blessed" in evaluation


def test_progress_names_each_component_and_its_time(titanic_run):
    lines = []
    progress = Progress("titanic", str(titanic_run.metadata_path("titanic")), say=lines.append)
    progress._started_at = 0  # replay the whole store
    progress.poll(progress._store())
    text = " ".join(lines)
    for node in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher"):
        assert re.search(rf"{node} (done in \d+\.\d s|cached)", text), node
