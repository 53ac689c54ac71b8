"""Dates and times as features (core/dates.py, modeling/feature_columns.py Date, TableExampleGen): every format's
calendar parts, computed in the TensorFlow graph from the raw string, equal Python's datetime for dates across
four centuries (leap years, month ends, the epoch's two sides); what a column's values are is detected only when
unambiguous; a value that is not a date in new data is an error naming file, row and column."""

import datetime
import random

import pytest
import tensorflow as tf

from components.table_example_gen import TableInputError, column, read_table
from core import dates
from modeling import feature_columns as fc

SPELL = {
    "iso": lambda t: t.strftime("%Y-%m-%d"),
    "ymd_slash": lambda t: t.strftime("%Y/%m/%d"),
    "dmy_dot": lambda t: t.strftime("%d.%m.%Y"),
    "mdy_slash": lambda t: f"{t.month}/{t.day}/{t.year}",
    "dmy_slash": lambda t: t.strftime("%d/%m/%Y"),
    "iso_time": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S") + random.choice(["", "Z", "+02:00", "-0530", ".125"]),
}


def moments(n=400, seed=0):
    rng = random.Random(seed)
    start = datetime.datetime(1890, 1, 1)
    fixed = [
        datetime.datetime(2000, 2, 29, 23),
        datetime.datetime(1970, 1, 1),
        datetime.datetime(1969, 12, 31, 1),
        datetime.datetime(2100, 3, 1),
        datetime.datetime(2024, 12, 31, 12),
    ]
    return fixed + [start + datetime.timedelta(hours=rng.randrange(0, 24 * 365 * 230)) for _ in range(n)]


@pytest.mark.parametrize("fmt", sorted(SPELL))
def test_the_graphs_calendar_equals_pythons(fmt):
    random.seed(1)
    when = moments()
    raw = tf.constant([SPELL[fmt](t) for t in when] + ["", "not a date"])
    parts, present = fc.date_parts(fc.Date("t", fmt), raw)
    assert present.numpy().tolist() == [True] * len(when) + [False, False]
    for i, t in enumerate(when):
        expected = dates.calendar(t if dates.FORMATS[fmt].has_time else t.replace(hour=0))
        got = {k: float(v[i]) for k, v in parts.items()}
        assert got == expected, (SPELL[fmt](t), got, expected)
        assert dates.parse(SPELL[fmt](t), fmt) is not None


def test_unix_seconds_give_the_same_calendar():
    when = moments()
    seconds = [(t - datetime.datetime(1970, 1, 1)).total_seconds() + 59 for t in when]
    parts, present = fc.date_parts(fc.Date("ts", dates.UNIX), tf.constant(seconds, tf.float64))
    assert all(present.numpy())
    for i, t in enumerate(when):
        assert {k: float(v[i]) for k, v in parts.items()} == dates.calendar(t)


@pytest.mark.parametrize(
    "values, found",
    [
        (["2021-03-04", "1999-12-31"], "iso"),
        (["2021/03/04", "2021/11/30"], "ymd_slash"),
        (["04.03.2021", "31.12.1999"], "dmy_dot"),
        (["03/04/2021", "12/31/1999"], "mdy_slash"),  # a second number above 12: month first
        (["04/03/2021", "31/12/1999"], "dmy_slash"),  # a first number above 12: day first
        (["03/04/2021", "11/12/1999"], None),  # every value reads both ways: not guessed
        (["2021-03-04T10:00:00Z", "2021-03-04 23:59"], "iso_time"),
        (["2021-02-30"], None),  # no such day
        (["2021-03-04", "yesterday"], None),
        (["12345", "67890"], None),
    ],
)
def test_a_format_is_detected_only_when_every_value_settles_it(values, found):
    assert dates.detect(values) == found


def test_unix_seconds_only_when_the_name_says_so():
    numbers = [1.6e9, 1.7e9]
    assert dates.is_unix_seconds("created_at", numbers) and dates.is_unix_seconds("timestamp", numbers)
    assert not dates.is_unix_seconds("income", numbers)  # a large number is not a date by itself
    assert not dates.is_unix_seconds("event_ts", [5.0, 7.0])  # out of range


def test_a_value_that_is_not_a_date_names_file_row_and_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("when,y\n2021/03/04,1\n2021/13/01,0\n")
    settings = {"columns": [column("when", "date", "ymd_slash"), column("y", "int")], "delimiter": ","}
    with pytest.raises(TableInputError) as error:
        list(read_table(str(path), settings))
    assert f"{path}:3: column 'when': '2021/13/01' is not a date as YYYY/MM/DD" in str(error.value)
    path.write_text("when,y\n2021/03/04,1\n,0\n")  # a missing date is a missing value, not an error
    examples = list(read_table(str(path), settings))
    assert examples[0].features.feature["when"].bytes_list.value == [b"2021/03/04"]  # the raw string, as served
    assert "when" not in examples[1].features.feature
