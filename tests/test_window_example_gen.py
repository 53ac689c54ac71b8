"""WindowExampleGen's parsing, differencing and windowing; errors name the row."""

import datetime as dt

import numpy as np
import pytest

from components import window_example_gen as weg

COLUMNS = ["confirmed_num", "cured_num", "dead_num"]


def write_table(path, rows, header="date\tconfirmed_num\tcured_num\tdead_num"):
    path.write_text("\n".join([header] + ["\t".join(map(str, r)) for r in rows]) + "\n")
    return str(path)


def daily_rows(n, start=dt.date(2020, 1, 24)):
    """Cumulative counts whose daily increments are (day+1, 2*(day+1), 1)."""
    rows, total = [], np.zeros(3)
    for i in range(n):
        total = total + (np.array([i, 2 * i, 1]) if i else np.array([10.0, 5.0, 1.0]))
        rows.append([(start + dt.timedelta(days=i)).isoformat(), *total])
    return rows


def test_differencing_and_windows_shapes_and_order(tmp_path):
    series = weg.read_series(write_table(tmp_path / "t.csv", daily_rows(20)), "date", COLUMNS)
    dates, daily = weg.daily_increments(series)
    assert len(dates) == 19 and dates[0] == dt.date(2020, 1, 25)
    np.testing.assert_array_equal(daily[:3], [[1, 2, 1], [2, 4, 1], [3, 6, 1]])
    train, evaluation = weg.make_windows(dates, daily, window_size=8, eval_windows=3)
    assert len(train) + len(evaluation) == 19 - 8
    assert [len(evaluation), len(train)] == [3, 8]
    window, target, date = train[0]
    assert window.shape == (8, 3) and target.shape == (3,)
    np.testing.assert_array_equal(window, daily[:8])
    np.testing.assert_array_equal(target, daily[8])  # the day right after the window
    assert date == dates[8]


def test_no_leakage_eval_targets_are_the_newest(tmp_path):
    series = weg.read_series(write_table(tmp_path / "t.csv", daily_rows(30)), "date", COLUMNS)
    train, evaluation = weg.make_windows(*weg.daily_increments(series), window_size=8, eval_windows=5)
    train_dates = [d for _, _, d in train]
    eval_dates = [d for _, _, d in evaluation]
    assert train_dates == sorted(train_dates) and eval_dates == sorted(eval_dates)
    assert max(train_dates) < min(eval_dates)
    assert eval_dates[-1] == series.dates[-1]  # the last day is an eval target, never a train one


def test_examples_carry_window_target_and_date():
    example = weg.to_example(np.arange(24, dtype=float).reshape(8, 3), np.array([1.0, 2.0, 3.0]), dt.date(2020, 2, 1))
    f = example.features.feature
    assert list(f["window"].float_list.value) == list(range(24))
    assert list(f["target"].float_list.value) == [1.0, 2.0, 3.0]
    assert f["target_date"].bytes_list.value == [b"2020-02-01"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda rows: rows.__setitem__(5, [rows[4][0], *rows[5][1:]]), r"row 7 \(2020-01-28\): dates must increase"),
        (lambda rows: rows.pop(5), r"row 7 \(2020-01-30\): 1 missing date\(s\) after 2020-01-28"),
        (lambda rows: rows[3].__setitem__(2, -4.0), r"row 5 \(2020-01-27\): cured_num is -4.0; counts must be"),
        (lambda rows: rows[3].__setitem__(1, "n/a"), r"row 5 \(2020-01-27\): confirmed_num 'n/a' is not a number"),
        (lambda rows: rows[2].__setitem__(0, "24/01/2020"), r"row 4: date '24/01/2020' is not YYYY-MM-DD"),
    ],
)
def test_bad_rows_are_named(tmp_path, mutate, message):
    rows = daily_rows(20)
    mutate(rows)
    with pytest.raises(weg.SeriesError, match=message):
        weg.read_series(write_table(tmp_path / "t.csv", rows), "date", COLUMNS)


def test_missing_column_and_too_few_rows(tmp_path):
    with pytest.raises(weg.SeriesError, match=r"header lacks columns \['dead_num'\]"):
        weg.read_series(write_table(tmp_path / "a.csv", [], header="date\tconfirmed_num\tcured_num"), "date", COLUMNS)
    series = weg.read_series(write_table(tmp_path / "b.csv", daily_rows(12)), "date", COLUMNS)
    with pytest.raises(weg.SeriesError, match=r"12 rows make 3 window\(s\) of 8 days; at least 15 rows are needed"):
        weg.make_windows(*weg.daily_increments(series), window_size=8, eval_windows=5, path="b.csv")


def test_the_real_file_is_valid(tmp_path):
    from data.fetch import fetch

    path = fetch("covid", tmp_path, log=lambda m: None) / "covid-19.csv"
    series = weg.read_series(str(path), "date", COLUMNS)
    assert len(series.dates) == 47 and series.dates[0] == dt.date(2020, 1, 24)
    train, evaluation = weg.make_windows(*weg.daily_increments(series), window_size=8, eval_windows=5)
    assert (len(train), len(evaluation)) == (33, 5)
