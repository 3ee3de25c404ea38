"""Reading a statistician's real export (issue #13): per-column missing codes, dates that are
never guessed, spreadsheet formulas and empty rows, and messages that stay short and on one line.
The bad-input catalogue runs each case through the stage; these pin the rules themselves."""

from __future__ import annotations

import datetime as dt
import re
import zipfile

import openpyxl
import pandas as pd
import pytest
from conftest import small_trial

from alliance.clean.checks import check_sessions, code_hint, parse_dates, yaml_key
from alliance.clean.problems import FILE, MAX_LISTED, ROW, Problems, ValidationFailed, group_lines
from alliance.clean.readers import read_table
from alliance.clean.readers.dates import check_date_format, read_dates
from alliance.clean.readers.table import Clipped, clip, name_text, shown_name
from alliance.clean.sources import configured_codes
from alliance.clean.stage import clean_trial
from alliance.errors import ConfigError, InputError
from alliance.settings import Settings


def run(cfg: dict):
    return clean_trial(Settings.from_config(cfg).clean())


def _frame(values, dtype=None) -> pd.DataFrame:
    return pd.DataFrame(
        {"d": pd.Series(values, dtype=dtype), FILE: "x.csv", ROW: range(1, len(values) + 1)}
    )


def _days(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]


# --- missing codes per column --------------------------------------------------------------


def test_configured_codes_list_mapping_default_and_off():
    header = ["id", "hamd", "wai_p_05", "wai_p_03_s2"]
    assert configured_codes(header, (9,), r"_s(\d+)$")["hamd"] == (False, (9,))
    codes = {"default": (9, -99), "hamd": (), "wai_p_03": (99,)}
    got = configured_codes(header, codes, r"_s(\d+)$")
    assert got["hamd"] == (True, ())  # [] turns codes off for the column
    assert got["wai_p_05"] == (False, (9, -99))  # the default
    assert got["wai_p_03_s2"] == (True, (99,))  # a wide column by its long name
    no_default = configured_codes(header, {"hamd": (99,)}, r"_s(\d+)$")
    assert no_default["wai_p_05"] == (False, ())


def test_an_empty_list_for_an_id_column_is_allowed(trial_config):
    trial_config["data"]["missing_codes"] = {"default": [9], "visit": [], "subject": []}
    assert len(run(trial_config).sessions) == 14


def test_a_global_code_never_blanks_session_patient_or_therapist(trial_config):
    s, p = small_trial()
    s.loc[s["subject"] == "PIT-P001", "visit"] = [1, 2, 9, 10]
    s.to_csv(trial_config["data"]["sessions"], index=False)
    trial_config["data"]["missing_codes"] = [9]
    r = run(trial_config)
    assert 9 in set(r.sessions["session"])  # used to become missing: bad_session
    assert len(r.sessions) == 14


def test_per_column_codes_in_the_stage(trial_config):
    s, _ = small_trial()
    s.loc[0, "wai_p_05"], s.loc[1, "hamd"], s.loc[2, "wai_t_01"] = -99, 999, 9
    s.to_csv(trial_config["data"]["sessions"], index=False)
    trial_config["data"]["missing_codes"] = {"default": [9], "wai_p_05": [-99], "hamd": [999]}
    r = run(trial_config)
    assert r.sessions["item_patient_05"].isna().sum() == 1  # its own code
    assert r.sessions["symptom"].isna().sum() == 1  # 999 listed for hamd
    assert r.sessions["item_therapist_01"].isna().sum() == 1  # the default
    noted = r.validation.loc[r.validation["check"] == "read_note", "message"].str.cat(sep=" ")
    assert "3 value(s) equal to a missing code set to missing" in noted


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        ({"visit": [9]}, "'visit' is the session column"),
        ({"subject": [9]}, "'subject' is the patient column"),
        ({"default": [9], "hmad": [9]}, "no column 'hmad' in the input tables"),
    ],
)
def test_per_column_codes_refused_on_ids_and_absent_columns(trial_config, codes, message):
    trial_config["data"]["missing_codes"] = codes
    with pytest.raises(ConfigError, match=message):
        run(trial_config)


def test_schema_takes_a_list_or_a_mapping_of_lists():
    base = {"data": {"sessions": "x.csv"}, "columns": {"patient": "id"}}
    base["symptoms"] = {"column": "s"}
    for good in ([], [9, -99], {"default": [9], "hamd": []}):
        cfg = {**base, "data": {"sessions": "x.csv", "missing_codes": good}}
        assert Settings.from_config(cfg).to_dict()["data"]["missing_codes"] == good
    for bad in ({"hamd": 9}, {"hamd": ["x"]}, "9"):
        with pytest.raises(ConfigError, match="data.missing_codes"):
            Settings.from_config({**base, "data": {"sessions": "x.csv", "missing_codes": bad}})


def test_code_hints_name_other_columns_or_suggest_a_per_column_entry():
    values = pd.Series([99.0, 7.0])
    other = code_hint(values, "wai_p_03", {"hamd": (99.0,), "wai_p_03": ()})
    assert "99 is a declared missing code of 'hamd' but not of this column" in other
    assert "{default: [...], wai_p_03: [99]}" in other
    likely = code_hint(pd.Series([-9.0]), "wai_p_03", {})
    assert "if -9 means 'missing'" in likely and "{wai_p_03: [-9]}" in likely
    assert code_hint(pd.Series([7.0]), "wai_p_03", {}) == ""
    assert yaml_key("HAM-D\ntotal") == '"HAM-D\\ntotal"' and yaml_key("hamd") == "hamd"


def _sessions(values) -> pd.DataFrame:
    s = pd.DataFrame(
        {"patient": [f"P{i}" for i in range(len(values))], "session": values, ROW: 1, FILE: "s"}
    )
    s[ROW] = range(1, len(s) + 1)
    return s


@pytest.mark.parametrize(
    ("value", "declared", "says"),
    [
        (-99.0, {"hamd": (-99.0,)}, "-99 is a declared missing code"),
        (-9.0, {}, "-9 looks like a missing code"),
        (-2.0, {}, None),
    ],
)
def test_bad_session_says_when_the_value_is_a_code(value, declared, says):
    s = _sessions([1.0, value])
    s.attrs["missing_codes"] = declared
    problems = Problems({})
    cols = Settings.from_config(
        {"data": {"sessions": "x"}, "columns": {"patient": "id", "session": "visit"},
         "symptoms": {"column": "s"}}
    ).columns  # fmt: skip
    check_sessions(s, cols, problems)
    (problem,) = problems.rows
    assert problem["check"] == "bad_session" and problem["row"] == 2
    if says:
        assert says in problem["message"] and "never blanks" in problem["message"]
    else:
        assert problem["message"] == "session number must be a whole number >= 0"


# --- dates ---------------------------------------------------------------------------------


def test_iso_written_months_and_yyyymmdd_are_read():
    got = read_dates(pd.Series(["2024-01-09", "9 Jan 2024", "09JAN2024", "2024/01/09", None]), None)
    assert _days(got.dates) == ["2024-01-09"] * 4 + [None]
    assert not got.bad and got.ambiguous is None
    numbers = read_dates(pd.Series([20240109, 20240110]), None)
    assert _days(numbers.dates) == ["2024-01-09", "2024-01-10"]


@pytest.mark.parametrize(
    ("values", "first", "day_first", "month_first"),
    [
        (["06.05.2019", "07.05.2019"], "06.05.2019", None, None),
        (["16.05.2019", "07.05.2019"], "07.05.2019", "16.05.2019", None),
        (["05/16/19", "05/07/19"], "05/07/19", None, "05/16/19"),
        (["16.05.2019", "05.16.2019"], "16.05.2019", "16.05.2019", "05.16.2019"),
        (["06-05-2019 14:30"], "06-05-2019 14:30", None, None),
    ],
)
def test_day_month_order_is_never_guessed(values, first, day_first, month_first):
    amb = read_dates(pd.Series(values), None).ambiguous
    assert amb is not None and amb.value == first
    assert (amb.day_first or (None, None))[1] == day_first
    assert (amb.month_first or (None, None))[1] == month_first


def test_ambiguous_dates_stop_the_stage_naming_the_fix():
    frame = _frame(["2024-01-09", "16.01.2024", "09.02.2024"])
    with pytest.raises(InputError) as err:
        parse_dates(frame, "d", Problems({}), "visit_date")
    text = str(err.value)
    assert err.value.check == "ambiguous_date" and err.value.row == 3
    assert "'16.01.2024' (row 2) suggests day first" in text
    assert "data.date_format: '%d.%m.%Y'" in text
    mixed = _frame(["16.01.2024", "01.16.2024"])
    with pytest.raises(InputError, match="mixes both"):
        parse_dates(mixed, "d", Problems({}), "visit_date")


def test_a_declared_format_reads_its_dates_iso_and_a_time_of_day():
    values = ["06.05.2019", "6.5.2019", "2019-05-07", "08.05.2019 14:30", "31.02.2019", "x"]
    got = read_dates(pd.Series(values), "%d.%m.%Y")
    assert _days(got.dates) == ["2019-05-06"] * 2 + ["2019-05-07", "2019-05-08", None, None]
    ((message, mask),) = got.bad.items()
    assert message == "not a date in data.date_format '%d.%m.%Y'"
    assert mask.tolist() == [False] * 4 + [True, True]


@pytest.mark.parametrize(
    ("value", "lacks"), [("20 Oct", "no year"), ("Oct 2024", "no day"), ("10:00", "no year")]
)
def test_incomplete_dates_are_refused_not_filled_in(value, lacks):
    problems = Problems({})
    parse_dates(_frame([value]), "d", problems, "visit_date")
    (problem,) = problems.rows
    assert problem["check"] == "bad_date" and lacks in problem["message"]


def test_excel_serials_refused_without_the_format_and_converted_with_it():
    with pytest.raises(InputError) as err:
        parse_dates(_frame([45300, 45301]), "d", Problems({}), "visit_date")
    assert err.value.check == "excel_serial_date" and "45300 would be 2024-01-09" in str(err.value)
    out = parse_dates(_frame([45300, 45301.75, None]), "d", Problems({}), "v", "excel_serial")
    assert _days(out["d"]) == ["2024-01-09", "2024-01-10", None]
    text = parse_dates(
        _frame(["45300", "2024-01-10T00:00:00"]), "d", Problems({}), "v", "excel_serial"
    )
    assert _days(text["d"]) == ["2024-01-09", "2024-01-10"]
    problems = Problems({})
    parse_dates(_frame([123]), "d", problems, "v")  # too small to be a serial: not a date
    assert problems.rows[0]["message"] == "not a date"


@pytest.mark.parametrize("fmt", ["dd.mm.yyyy", "%d %b", "%Y-%m", "%d.%m.%Y %Q"])
def test_a_date_format_must_be_a_full_strftime_date(fmt):
    with pytest.raises(ConfigError, match="config key data.date_format"):
        check_date_format(fmt)
    for ok in (None, "excel_serial", "%d.%m.%Y", "%m/%d/%y", "%Y%j"):
        check_date_format(ok)


# --- spreadsheets and empty rows -----------------------------------------------------------


def _book(path, rows):
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def test_formula_cells_without_a_cached_value_are_recorded(tmp_path):
    rows = [["id", "a", "b", "total"], ["x", 1, 2, "=B2+C2"], ["y", 3, 4, "=B3+C3"]]
    table = read_table(_book(tmp_path / "t.xlsx", rows))
    assert table.formulas == {"total": (1, "=B2+C2", 2)}
    assert table.frame["total"].isna().all()
    assert any("2 formula cell(s) without a cached value" in n for n in table.notes)
    plain = read_table(_book(tmp_path / "p.xlsx", [["id", "a"], ["x", 1]]))
    assert plain.formulas == {}


def test_formulas_with_a_stored_value_are_read(tmp_path):
    """What Excel stores: a result (read), an empty-string result (a real empty cell)."""
    rows = [["id", "a", "total"], ["x", 1, "=B2+1"], ["y", None, '=IF(B3="","",B3)']]
    path = _book(tmp_path / "t.xlsx", rows)
    saved = tmp_path / "saved.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(saved, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                text = re.sub(r'<c r="C2"[^>]*>(<f>.*?</f>)<v ?/>', r'<c r="C2">\1<v>2</v>', text)
                text = re.sub(
                    r'<c r="C3"[^>]*>(<f>.*?</f>)<v ?/>', r'<c r="C3" t="str">\1<v></v>', text
                )
                data = text.encode()
            out.writestr(item, data)
    assert read_table(path).formulas == {"total": (1, "=B2+1", 2)}
    table = read_table(saved)
    assert table.formulas == {} and table.frame["total"].tolist()[0] == 2


def test_a_formula_in_an_unused_column_is_only_noted(trial_config, tmp_path):
    s, _ = small_trial()
    rows = [list(s.columns) + ["check_sum"]]
    rows += [[*r, f"=D{i}+1"] for i, r in enumerate(s.itertuples(index=False), start=2)]
    trial_config["data"]["sessions"] = str(_book(tmp_path / "s.xlsx", rows))
    r = run(trial_config)
    notes = r.validation.loc[r.validation["check"] == "read_note", "message"].tolist()
    assert any("formula cell(s) without a cached value" in n for n in notes), notes


def test_excel_date_cells_blank_rows_and_trailing_formatting(tmp_path):
    rows = [
        ["id", "when"],
        ["x", dt.datetime(2024, 1, 9)],
        [None, None],
        ["y", dt.datetime(2024, 1, 10)],
    ]
    rows += [[None, None], [None, None]]
    table = read_table(_book(tmp_path / "t.xlsx", rows))
    assert table.frame["id"].tolist() == ["x", "y"]
    assert _days(read_dates(table.frame["when"], None).dates) == ["2024-01-09", "2024-01-10"]
    (note,) = [n for n in table.notes if "empty row" in n]
    assert "1 empty row(s) skipped" in note and "sheet row(s) 3;" in note


def test_csv_rows_of_delimiters_are_skipped_and_noted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,x\n1,2\n,\n\n3,4\n NA , \n,\n")
    table = read_table(path)
    assert table.frame.to_dict("list") == {"id": [1, 3], "x": [2, 4]}
    (note,) = [n for n in table.notes if "empty row" in n]
    assert "2 empty row(s) skipped" in note and "line(s) 3, 4;" in note


# --- messages ------------------------------------------------------------------------------


def test_long_values_and_odd_column_names_print_short_and_on_one_line():
    long = "x" * 500
    assert repr(Clipped(long)) == repr("x" * 80 + "…") + " (500 characters)"
    assert Clipped(long) == long and clip(5) == 5
    name = "HAM-D\ntotal"
    err = InputError("bad", file="s.csv", column=shown_name(name), value=clip(long))
    assert "\n" not in str(err) and "column 'HAM-D\\ntotal'" in str(err)
    assert err.column == name and "(500 characters)" in str(err)
    assert name_text("y" * 100).endswith("… (100 characters)")


def _problem(row, check="out_of_range", column="wai_p_05", value=9.0, message="outside"):
    return {"file": "s.csv", "row": row, "column": column, "value": value, "check": check,
            "message": message, "action": "error"}  # fmt: skip


def test_many_rows_of_one_check_give_one_line():
    problems = [_problem(r) for r in range(1, 301)] + [_problem(7, "non_numeric", "hamd", "x")]
    lines = group_lines(problems)
    assert lines == [
        "s.csv, column 'wai_p_05': 300 rows (rows 1, 2, 3, 4, 5, ...; value 9.0): outside "
        "[out_of_range]",
        "s.csv, row 7, column 'hamd', value 'x': outside [non_numeric]",
    ]
    err = ValidationFailed(problems)
    assert str(err).count("\n") == 2 and err.row == 1 and len(err.problems) == 301


def test_a_group_lists_a_few_distinct_values_and_long_ones_clipped():
    values = [9.0, 99.0, "z" * 200, -9.0, 9.0]
    lines = group_lines([_problem(i, value=v) for i, v in enumerate(values, start=1)])
    (line,) = lines
    assert "values 9.0, 99.0, '" in line and "(200 characters), ..." in line


def test_more_kinds_than_listed_are_counted():
    problems = [_problem(1, column=f"c{i}") for i in range(MAX_LISTED + 3)]
    text = str(ValidationFailed(problems))
    assert text.count("\n") == MAX_LISTED + 1 and "... and 3 more kinds" in text
