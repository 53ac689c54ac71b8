"""The date and time formats a table's column is read in, one definition for the three places that read them: the
draft (which format a column's values are in: scaffold/), TableExampleGen (every value checked, an error naming
file, row and column otherwise) and the transform (the calendar features, computed in the TensorFlow graph from
the raw string, so the served model takes the value as the table had it: modeling/feature_columns.py).

A format is a regular expression both Python's `re` and TensorFlow's RE2 read alike, and the order its groups
give year, month, day and hour in. Unix seconds are a number, read as a date only when the column's name says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Dict, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class DateFormat:
    name: str
    pattern: str  # RE2 and Python alike; its groups in `order`
    order: str  # which group is which: "ymd", "dmy", "mdy", "ymdh"
    shown: str  # how the table choices name it

    @property
    def has_time(self) -> bool:
        return "h" in self.order

    def rewrite(self) -> str:
        """The regex_replace rewrite giving "year month day hour" (hour 0 without a time)."""
        group = {part: f"\\{i + 1}" for i, part in enumerate(self.order)}
        return " ".join([group["y"], group["m"], group["d"], group.get("h", "0")])


_ZONE = r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
FORMATS: Dict[str, DateFormat] = {
    f.name: f
    for f in (
        DateFormat("iso", r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})", "ymd", "YYYY-MM-DD"),
        DateFormat("ymd_slash", r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})", "ymd", "YYYY/MM/DD"),
        DateFormat("dmy_dot", r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})", "dmy", "DD.MM.YYYY"),
        DateFormat("mdy_slash", r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})", "mdy", "MM/DD/YYYY"),
        DateFormat("dmy_slash", r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})", "dmy", "DD/MM/YYYY"),
        DateFormat(
            "iso_time",
            r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})[T ]([0-9]{1,2}):[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?" + _ZONE,
            "ymdh",
            "ISO timestamp",
        ),
    )
}
UNIX = "unix_seconds"
# a number column is Unix seconds only when its name says so, and its values fall in 1973-2096
UNIX_NAME = re.compile(r"(?i)(^|_)(unix|epoch|timestamp|ts)($|_)|(_time|_at)$|^time$")
UNIX_RANGE = (1e8, 4e9)


def parse(text: str, fmt: str) -> Optional[datetime.datetime]:
    """The value as a date (and hour), or None when it is not one in `fmt` (a 31 February included)."""
    found = re.fullmatch(FORMATS[fmt].pattern, text.strip())
    if found is None:
        return None
    parts = dict(zip(FORMATS[fmt].order, (int(g) for g in found.groups())))
    try:
        return datetime.datetime(parts["y"], parts["m"], parts["d"], parts.get("h", 0))
    except ValueError:
        return None


def detect(values: Sequence[str]) -> Optional[str]:
    """The one format every value is in, or None. Day and month order with slashes only where the values settle
    it: a first number above 12 somewhere is DD/MM, a second one is MM/DD; neither, and the column is not read as a
    date (a wrong guess would swap months and days silently)."""
    values = [v.strip() for v in values if v.strip()]
    if not values:
        return None
    candidates = [name for name in FORMATS if all(parse(v, name) is not None for v in values)]
    if "mdy_slash" in candidates and "dmy_slash" in candidates:
        return None  # every value reads both ways
    return candidates[0] if len(candidates) == 1 else None


def is_unix_seconds(name: str, numbers: Sequence[float]) -> bool:
    return bool(UNIX_NAME.search(name)) and bool(numbers) and all(UNIX_RANGE[0] <= n <= UNIX_RANGE[1] for n in numbers)


def from_unix(seconds: float) -> datetime.datetime:
    return datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)


def calendar(when: datetime.datetime) -> Dict[str, float]:
    """The calendar parts the transform computes (modeling/feature_columns.py Date), for the baseline and tests:
    days since 1970-01-01, year, month, day of month, day of week (Monday 0), day of year, hour."""
    return {
        "days": float((when.date() - datetime.date(1970, 1, 1)).days),
        "year": float(when.year),
        "month": float(when.month),
        "dom": float(when.day),
        "dow": float(when.weekday()),
        "doy": float(when.timetuple().tm_yday),
        "hour": float(when.hour),
    }


# the periodic parts and their periods: each also as sin and cos of its phase
PERIODS = {"month": 12.0, "dom": 31.0, "dow": 7.0, "doy": 366.0, "hour": 24.0}
