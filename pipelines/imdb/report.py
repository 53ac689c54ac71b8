"""imdb's part of the run report: the example predictions beside the start of each review."""

from __future__ import annotations

from core import html_report
from pipelines.imdb.features import TEXT_KEY


def examples_html(examples, predicted, label_key: str) -> str:
    rows = [
        [
            html_report.feature_value(e, label_key),
            float(p[0]),
            html_report.feature_value(e, TEXT_KEY).decode("utf-8", "replace")[:300] + "...",
        ]
        for e, p in zip(examples, predicted)
    ]
    return html_report.table(["label", "P(positive)", "review (first 300 characters)"], rows)
