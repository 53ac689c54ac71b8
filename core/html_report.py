"""HTML pieces the run report is built from, for the report itself and for each dataset's own report section
(`DatasetSpec.report_module`): a table, a matplotlib figure as an embedded PNG, a tf.Example's value."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import List, Optional

from core.private_files import write_private


def write_atomically(path: Path, text: str, private: bool = False) -> Path:
    """Writes under a hidden name, then renames: a reader never sees half a page. `private`: the page shows people's
    data (rows, distributions of logged requests): a 0600 file, for its owner only (core/private_files.py)."""
    if private:
        return write_private(path, text.encode("utf-8"))
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only backend (a report is written where there is no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> str:
    """The figure as an <img> with the PNG inline (the page stays one self-contained file); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def table(header: List[str], rows: List[List], attrs: Optional[List[List[str]]] = None) -> str:
    """An HTML table; floats shown with 4 decimals; `attrs[i][j]`: extra attributes of cell (i, j)."""
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            extra = f" {attrs[i][j]}" if attrs and attrs[i][j] else ""
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            cells.append(f"<td{extra}>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def feature_value(example, key):
    """One feature of a tf.train.Example: its single value, its list of values, or "" when absent or empty."""
    feature = example.features.feature.get(key)
    if feature is None:
        return ""
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    return values[0] if len(values) == 1 else (values or "")  # an empty cell shows empty


def short(value):
    """A value as a table cell shows it: text decoded, floats rounded to 2 decimals."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float):
        return round(value, 2)
    return value
