"""covid's part of the run report: the eval windows' predictions, and the 100-day forecast of the served model."""

from __future__ import annotations

import base64
import datetime as dt
import html
import tempfile
from pathlib import Path
from typing import List, Tuple

import numpy as np

from components.window_example_gen import daily_increments, read_series
from core import html_report
from pipelines.covid import features
from pipelines.covid import forecast as forecast_lib


def examples_html(examples, predicted, label_key: str) -> str:
    rows = [
        [
            html_report.feature_value(e, "target_date").decode(),
            np.round(html_report.feature_value(e, label_key), 0).tolist(),
            np.round(p, 0).tolist(),
        ]
        for e, p in zip(examples, predicted)
    ]
    return html_report.table(["day", "actual (confirmed, cured, dead)", "predicted"], rows)


def forecast_html(cfg) -> str:

    try:
        path = forecast_lib.model_dir(cfg)
    except forecast_lib.ForecastError as exc:
        return f"<p>{html.escape(str(exc))}</p>"
    data = Path(cfg.dataset_dir("covid")) / forecast_lib.FILE_NAME
    dates, daily = daily_increments(read_series(str(data), "date", features.COLUMNS))
    predicted = forecast_lib.forecast(path, daily, 100)
    forecast_dates = [dates[-1] + dt.timedelta(days=i + 1) for i in range(100)]
    zero_days = forecast_lib.first_zero_days(len(daily), predicted)
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "forecast.png"
        forecast_lib.plot(png, dates, daily, forecast_dates, predicted, zero_days)
        image = base64.b64encode(png.read_bytes()).decode()
    days = ", ".join(
        f"{forecast_lib.LABELS[k]}: day {v}" if v is not None else f"{forecast_lib.LABELS[k]}: not within 100"
        for k, v in zero_days.items()
    )
    return (
        f"<p>First day at zero ({html.escape(days)}); the book: confirmed day 55, dead day 60.</p>"
        f'<img alt="forecast" src="data:image/png;base64,{image}">'
    )


def sections(cfg) -> List[Tuple[str, str, object]]:
    """(title, section id, render(cfg) -> html) for the report's sections after the example predictions."""
    return [("Forecast", "forecast", forecast_html)]
