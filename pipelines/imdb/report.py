"""imdb's part of the run report: the example predictions beside the start of each review."""
from __future__ import annotations

from pipelines.imdb.features import TEXT_KEY
from pipelines.metadata import render


def examples_html(examples, predicted, label_key: str) -> str:
    rows = [[render.feature_value(e, label_key), float(p[0]),
             render.feature_value(e, TEXT_KEY).decode("utf-8", "replace")[:300] + "..."]
            for e, p in zip(examples, predicted)]
    return render.table(["label", "P(positive)", "review (first 300 characters)"], rows)
