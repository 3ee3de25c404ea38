"""Cells that used to crash the clean stage (issue #12): dates with time zones, numeric codes,
control characters in IDs and codes. The bad-input catalogue runs each through the stage; these
pin the rules themselves."""

from __future__ import annotations

import pandas as pd
import pytest

from alliance import files
from alliance.clean.checks import code_series, parse_dates, reject_control_characters
from alliance.clean.problems import FILE, ROW, Problems
from alliance.clean.readers.dates import _to_dates
from alliance.errors import InputError


def _frame(values, dtype=None) -> pd.DataFrame:
    return pd.DataFrame(
        {"d": pd.Series(values, dtype=dtype), FILE: "x.csv", ROW: range(1, len(values) + 1)}
    )


def _days(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]


def test_offsets_are_dropped_not_converted():
    """23:30 at UTC-5 is the 17th where it happened (the 18th in UTC); the day recorded wins."""
    values = [
        "2024-01-17T23:30:00-05:00", "2024-01-18T00:30:00+0200", "2024-01-19 08:00Z",
        "2024-01-20 09:15 UTC+1", "2024-01-21",
    ]  # fmt: skip
    problems = Problems({})
    out = parse_dates(_frame(values, "string"), "d", problems, "visit_date")
    assert _days(out["d"]) == ["2024-01-17", "2024-01-18", "2024-01-19", "2024-01-20", "2024-01-21"]
    assert out["d"].dtype.kind == "M" and getattr(out["d"].dtype, "tz", None) is None
    (note,) = problems.rows
    assert note["check"] == "read_note" and note["action"] == "note" and note["value"] == 4
    assert note["column"] == "visit_date" and "not converted to UTC" in note["message"]


def test_dates_are_kept_at_day_precision_and_bad_ones_flagged():
    problems = Problems({"bad_date": "set_missing"})
    out = parse_dates(_frame(["2024-01-17 14:00", "2024-01-35"], "string"), "d", problems, "v")
    assert _days(out["d"]) == ["2024-01-17", None]
    assert out["d"].iloc[0] == pd.Timestamp("2024-01-17")
    assert [r["check"] for r in problems.rows] == ["bad_date"]


def test_a_time_zone_aware_column_gives_its_local_day():
    local = pd.Series(pd.to_datetime(["2024-01-09 20:30", "2024-01-16 20:30"]))
    problems = Problems({})
    frame = _frame(local.dt.tz_localize("America/New_York"))
    out = parse_dates(frame, "d", problems, "visit_date")
    assert _days(out["d"]) == ["2024-01-09", "2024-01-16"]  # UTC: the 10th and the 17th
    assert "time zone America/New_York" in problems.rows[0]["message"]


def test_zones_pandas_cannot_mix_fall_back_to_one_cell_at_a_time():
    text = pd.Series(["2024-01-17T23:30:00-05:00", "2024-01-18T10:00:00+01:00", None, "x"])
    parsed, zoned = _to_dates(text)
    assert _days(parsed) == ["2024-01-17", "2024-01-18", None, None]
    assert zoned.tolist() == [True, True, False, False]


@pytest.mark.parametrize(
    ("values", "codes"),
    [
        ([1, 2, 1], ["1", "2", "1"]),
        ([1.0, float("nan"), 2.0], ["1", None, "2"]),
        (["1", " 2 ", None], ["1", "2", None]),
        ([1, "PLA", 2.5], ["1", "PLA", "2.5"]),  # SPSS codes left next to labels
    ],
)
def test_codes_are_text_whatever_the_export_stored(values, codes):
    out = code_series(pd.Series(values, dtype=object if isinstance(values[1], str) else None))
    assert [None if pd.isna(v) else v for v in out] == codes


@pytest.mark.parametrize(
    ("value", "name"),
    [("BI-P\n04", "line feed"), ("BI-P04\x00x", "NUL"), ("BI\rP04", "carriage return"),
     ("BI\tP04", "tab"), ("BI\x85P04", "U+0085")],
)  # fmt: skip
def test_control_character_inside_an_id_stops_with_its_place(value, name):
    frame = pd.DataFrame({"therapist": ["T1", value], FILE: "p.csv", ROW: [1, 2]})
    with pytest.raises(InputError) as err:
        reject_control_characters(frame, {"therapist": "therapist_id"})
    assert err.value.check == "control_character"
    text = str(err.value)
    assert "\n" not in text and "\r" not in text and "\x00" not in text  # one printable line
    assert f"p.csv, row 2, column 'therapist_id', value {value!r}" in text
    assert f"control character ({name})" in text


def test_surrounding_whitespace_and_numeric_ids_pass():
    ids = {"patient": ["P1\n", " P2\r\n"], "site": [1, 2]}
    frame = pd.DataFrame(ids | {FILE: "s.csv", ROW: [1, 2]})
    reject_control_characters(frame, {"patient": "subject", "site": "site"})


def test_validation_csv_keeps_a_line_break_inside_one_record(tmp_path):
    """A free-text value with a line break (non_numeric under `warn`) stays one CSV record."""
    problems = Problems({"non_numeric": "warn"})
    problems.add("non_numeric", "value is not a number", file="s.csv", row=4, value="3\n4")
    path = files.write_csv(problems.frame(), tmp_path / "validation.csv")
    back = pd.read_csv(path)
    assert len(back) == 1 and back.loc[0, "value"] == "3\n4"
