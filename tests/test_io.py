"""Reading every supported export format, and the atomic, deterministic writers."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance.clean.readers import read_columns, read_table
from alliance.errors import InputError
from alliance.files import atomic_path, write_csv, write_json, write_parquet

# --- helpers ---------------------------------------------------------------------------------


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _sav(path: Path, **kwargs) -> Path:
    frame = pd.DataFrame(
        {
            "id": ["001", "002", "003", "004", "005"],
            "wai": [5.0, 9.0, -99.0, 7.0, 3.0],
            "arm": [1.0, 2.0, 1.0, 2.0, 1.0],
        }
    )
    pyreadstat.write_sav(frame, str(path), **kwargs)
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# --- SPSS / Stata ----------------------------------------------------------------------------


def test_spss_user_missing_codes_become_nan_and_are_reported(tmp_path):
    path = _sav(tmp_path / "trial.sav", missing_ranges={"wai": [-99, 9]})
    table = read_table(path)
    assert table.format == "spss"
    assert table.frame["wai"].tolist()[0] == 5.0
    assert table.frame["wai"].isna().tolist() == [False, True, True, False, False]
    assert table.user_missing == {"wai": [-99, 9]}
    assert any("'wai': 2 value(s) declared user-missing" in n for n in table.notes)
    assert table.n_rows == 5
    # ids stay text with their zeros
    assert table.frame["id"].tolist() == ["001", "002", "003", "004", "005"]


def test_spss_missing_range_reported_as_pair(tmp_path):
    path = _sav(tmp_path / "trial.sav", missing_ranges={"wai": [{"lo": -99, "hi": -90}]})
    table = read_table(path)
    assert table.user_missing == {"wai": [(-99, -90)]}
    assert int(table.frame["wai"].isna().sum()) == 1


def test_spss_value_labels_applied_and_codes_kept_on_request(tmp_path):
    labels = {"arm": {1: "CBT", 2: "IPT"}, "wai": {-99: "not answered"}}
    path = _sav(tmp_path / "trial.sav", variable_value_labels=labels, missing_ranges={"wai": [-99]})
    table = read_table(path)
    assert table.frame["arm"].tolist() == ["CBT", "IPT", "CBT", "IPT", "CBT"]
    assert table.value_labels["arm"] == {1: "CBT", 2: "IPT"}
    # the only labelled wai code is the missing one: wai stays numeric, not categorical
    assert table.frame["wai"].dtype == "float64"
    raw = read_table(path, apply_value_labels=False)
    assert raw.frame["arm"].tolist() == [1, 2, 1, 2, 1]
    assert raw.value_labels["arm"] == {1: "CBT", 2: "IPT"}


def test_spss_unlabelled_codes_kept_next_to_labels(tmp_path):
    path = _sav(tmp_path / "trial.sav", variable_value_labels={"arm": {1: "CBT"}})
    table = read_table(path)
    assert table.frame["arm"].tolist() == ["CBT", 2, "CBT", 2, "CBT"]
    assert any("no value label" in n for n in table.notes)


def test_zsav_round_trip(tmp_path):
    path = _sav(tmp_path / "trial.ZSAV", compress=True)
    table = read_table(path)
    assert table.frame["wai"].tolist() == [5, 9, -99, 7, 3]


def test_spss_with_labels_but_no_rows_is_an_error(tmp_path):
    frame = pd.DataFrame({"id": pd.Series([], dtype=object), "arm": pd.Series([], dtype=float)})
    path = tmp_path / "empty.sav"
    pyreadstat.write_sav(frame, str(path), variable_value_labels={"arm": {1: "CBT"}})
    with pytest.raises(InputError, match="no data rows") as err:
        read_table(path)
    assert err.value.file == str(path)


def test_stata_labels_and_extended_missing(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "arm": [1, 2, 1]})
    frame["hamd"] = pd.Series([12.5, "a", 20.0], dtype=object)
    path = tmp_path / "trial.dta"
    pyreadstat.write_dta(
        frame,
        str(path),
        variable_value_labels={"arm": {1: "CBT", 2: "IPT"}},
        missing_user_values={"hamd": ["a"]},
    )
    table = read_table(path)
    assert table.format == "stata"
    assert table.frame["arm"].tolist() == ["CBT", "IPT", "CBT"]
    assert table.frame["hamd"].dtype == "float64"
    assert table.frame["hamd"].isna().tolist() == [False, True, False]
    assert table.user_missing == {"hamd": [".a"]}


# --- text ----------------------------------------------------------------------------------


def test_latin1_csv_falls_back_with_a_note(tmp_path):
    path = _write(tmp_path / "t.csv", "id,therapist\n1,Jos\u00e9\n2,M\u00fcller\n", "latin-1")
    table = read_table(path)
    assert table.frame["therapist"].tolist() == ["Jos\u00e9", "M\u00fcller"]
    assert table.encoding == "cp1252"
    assert any("not UTF-8" in n for n in table.notes)
    explicit = read_table(path, encoding="latin-1")
    assert explicit.frame["therapist"].tolist() == ["Jos\u00e9", "M\u00fcller"]
    assert explicit.notes == []


def test_wrong_explicit_encoding_names_the_line(tmp_path):
    path = _write(tmp_path / "t.csv", "id,name\n1,ok\n2,Jos\u00e9\n", "latin-1")
    with pytest.raises(InputError, match="line 3 as utf-8"):
        read_table(path, encoding="utf-8")


def test_bom_is_stripped_from_the_first_header(tmp_path):
    path = _write(tmp_path / "t.csv", "\ufeffid,wai\n1,5\n", "utf-8")
    table = read_table(path)
    assert list(table.frame.columns) == ["id", "wai"]
    assert table.encoding == "utf-8-sig"


def test_semicolon_csv_is_detected_and_decimal_commas_stay_text(tmp_path):
    path = _write(tmp_path / "t.csv", "id;wai;note\n1;5,5;a, b\n2;6;c\n")
    table = read_table(path)
    assert table.delimiter == ";"
    assert table.frame["note"].tolist() == ["a, b", "c"]
    assert table.frame["wai"].tolist() == ["5,5", "6"]  # caller decides how to coerce


@pytest.mark.parametrize(("name", "delim"), [("t.tsv", "\t"), ("t.TXT", "\t"), ("t.csv", "|")])
def test_other_delimiters(tmp_path, name, delim):
    path = _write(tmp_path / name, delim.join(["id", "x"]) + "\n" + delim.join(["1", "2"]) + "\n")
    table = read_table(path)
    assert table.delimiter == delim
    assert table.frame.to_dict("list") == {"id": [1], "x": [2]}


def test_wrong_explicit_delimiter_says_which_to_set(tmp_path):
    path = _write(tmp_path / "t.csv", "id;wai\n1;5\n2;6\n")
    with pytest.raises(InputError, match=r"set data.delimiter to ';'"):
        read_table(path, delimiter=",")
    tabbed = _write(tmp_path / "t.tsv", "id\twai\n1\t5\n")
    with pytest.raises(InputError, match=r"set data.delimiter to '\\t'"):
        read_table(tabbed, delimiter=";")
    assert read_table(tabbed, delimiter="tab").frame["wai"].tolist() == [5]


def test_leading_zero_ids_and_types(tmp_path):
    path = _write(tmp_path / "t.csv", "id,n,x,flag\n007,1,0.5,yes\n010,2,,no\n100,3,1e-3,\n")
    frame = read_table(path).frame
    assert frame["id"].tolist() == ["007", "010", "100"]
    assert frame["n"].dtype == "int64"
    assert frame["x"].dtype == "float64"
    assert frame["x"].isna().tolist() == [False, True, False]
    assert frame["flag"].tolist()[:2] == ["yes", "no"] and pd.isna(frame["flag"].iloc[2])


def test_missing_tokens_and_all_empty_columns(tmp_path):
    path = _write(tmp_path / "t.csv", "id,x,empty\n1,NA,\n2,3.5,\n3,.,\n")
    frame = read_table(path).frame
    assert frame["x"].dtype == "float64"
    assert frame["x"].isna().tolist() == [True, False, True]
    assert frame["empty"].dtype == "float64" and frame["empty"].isna().all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no data rows"),
        ("\n\n  \n", "no data rows"),
        ("id,wai\n", "no data rows"),
        ("id,wai\n\n\n", "no data rows"),
    ],
)
def test_empty_and_header_only_files(tmp_path, text, message):
    path = _write(tmp_path / "t.csv", text)
    with pytest.raises(InputError, match=message) as err:
        read_table(path)
    assert err.value.file == str(path)


def test_ragged_row_names_the_line(tmp_path):
    path = _write(tmp_path / "t.csv", "id,x\n1,2\n\n3,4,5\n")
    with pytest.raises(InputError, match="line 4 has 3 fields but the header has 2") as err:
        read_table(path)
    assert err.value.row == 2


def test_trailing_delimiter_column_is_dropped_and_duplicates_rejected(tmp_path):
    path = _write(tmp_path / "t.csv", "id,x,\n1,2,\n3,4,\n")
    assert list(read_table(path).frame.columns) == ["id", "x"]
    dup = _write(tmp_path / "d.csv", "id,x,x\n1,2,3\n")
    with pytest.raises(InputError, match="duplicate column name") as err:
        read_table(dup)
    assert err.value.column == "x"
    unnamed = _write(tmp_path / "u.csv", "id,,x\n1,2,3\n")
    with pytest.raises(InputError, match="column 2 has data but no header"):
        read_table(unnamed)


def test_quoted_fields_with_delimiters_and_newlines(tmp_path):
    path = tmp_path / "t.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "note"], ["1", 'a, "b"\nc'], ["2", "d"]])
    assert read_table(path).frame["note"].tolist() == ['a, "b"\nc', "d"]


# --- missing codes and column selection ---------------------------------------------------


def test_missing_codes_in_numeric_and_text_columns(tmp_path):
    path = _write(tmp_path / "t.csv", "id,wai,hamd,note\n1,-99,9,-99\n2,4.5,10,x\n3,9,-99.0,y\n")
    table = read_table(path, missing_codes=[-99, 9])
    frame = table.frame
    assert frame["wai"].isna().tolist() == [True, False, True]
    assert frame["hamd"].dtype == "float64"  # int column gained missing values
    assert frame["hamd"].isna().tolist() == [True, False, True]
    assert frame["note"].isna().tolist() == [True, False, False]
    assert frame["id"].tolist() == [1, 2, 3]
    per_column = read_table(path, missing_codes={"hamd": [9]}).frame
    assert per_column["hamd"].isna().tolist() == [True, False, False]
    assert per_column["wai"].tolist()[0] == -99


def test_text_missing_codes(tmp_path):
    path = _write(tmp_path / "t.csv", "id,wai,why\n1,-99,refused\n2,4,ok\n")
    frame = read_table(path, missing_codes=["-99", "refused"]).frame
    assert frame["wai"].isna().tolist() == [True, False]
    assert frame["why"].isna().tolist() == [True, False]
    assert read_table(path, missing_codes=None).frame["wai"].tolist() == [-99, 4]


def test_missing_codes_applied_to_spss_before_labels(tmp_path):
    path = _sav(tmp_path / "t.sav", variable_value_labels={"wai": {9: "don't know"}})
    frame = read_table(path, missing_codes=[9, -99]).frame
    assert frame["wai"].isna().tolist() == [False, True, True, False, False]
    assert frame["wai"].dtype == "float64"


def test_keep_columns_drops_the_rest_in_every_format(tmp_path):
    frame = pd.DataFrame({"id": ["01", "02"], "wai": [4.0, 5.0], "free_text": ["secret", "x"]})
    paths = [tmp_path / "t.parquet", tmp_path / "t.sav", tmp_path / "t.csv", tmp_path / "t.xlsx"]
    frame.to_parquet(paths[0])
    pyreadstat.write_sav(frame, str(paths[1]))
    frame.to_csv(paths[2], index=False)
    frame.to_excel(paths[3], index=False)
    for path in paths:
        table = read_table(path, keep_columns=["id", "wai", "not_there"])
        assert list(table.frame.columns) == ["id", "wai"], path
        assert table.frame["id"].tolist() == ["01", "02"], path
        assert any("not_there" in n for n in table.notes)
        assert read_columns(path) == ["id", "wai", "free_text"], path


# --- parquet / excel / unsupported / corrupt -----------------------------------------------


def test_parquet_round_trip_keeps_dtypes(tmp_path):
    frame = pd.DataFrame({"id": ["007", "010"], "x": [0.1, np.nan], "n": [1, 2]})
    path = write_parquet(frame, tmp_path / "out" / "t.PQ")
    table = read_table(path)
    pd.testing.assert_frame_equal(table.frame, frame)
    assert table.format == "parquet"


def test_parquet_named_index_comes_back_as_a_column(tmp_path):
    frame = pd.DataFrame({"pid": ["a", "b"], "x": [1.0, 2.0]}).set_index("pid")
    frame.to_parquet(tmp_path / "t.parquet")
    table = read_table(tmp_path / "t.parquet")
    assert table.frame.to_dict("list") == {"pid": ["a", "b"], "x": [1.0, 2.0]}


def _workbook(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_excel_single_sheet_types_and_text_ids(tmp_path):
    rows = [["id", "wai", "date", "note"], ["007", 5, None, "a"], ["010", 5.5, None, None]]
    rows.append([None, None, None, None])  # blank formatting row
    path = _workbook(tmp_path / "t.xlsx", {"data": rows})
    frame = read_table(path).frame
    assert frame["id"].tolist() == ["007", "010"]
    assert frame["wai"].tolist() == [5.0, 5.5]
    assert frame["date"].isna().all()
    assert len(frame) == 2


def test_excel_several_sheets_needs_a_choice(tmp_path):
    path = _workbook(
        tmp_path / "t.xlsx",
        {"readme": [["about"], ["x"]], "sessions": [["id", "wai"], [1, 5]]},
    )
    with pytest.raises(InputError, match=r"'readme', 'sessions'.*data.sheet"):
        read_table(path)
    assert read_table(path, sheet="sessions").frame.to_dict("list") == {"id": [1], "wai": [5]}
    assert read_table(path, sheet=1).frame["wai"].tolist() == [5]
    with pytest.raises(InputError, match="no sheet named 'visits'.*'sessions'"):
        read_table(path, sheet="visits")
    with pytest.raises(InputError, match="out of range"):
        read_table(path, sheet=5)


def test_legacy_xls_is_refused_clearly(tmp_path):
    path = _write(tmp_path / "t.xls", "whatever")
    with pytest.raises(InputError, match=r"\.xls workbooks are not supported"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("t.sav", "spss"), ("t.parquet", "parquet"), ("t.dta", "stata"), ("t.xlsx", "xlsx")],
)
def test_corrupt_file_is_an_input_error(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(7).bytes(600))
    with pytest.raises(InputError, match=f"cannot read as {kind}: .+") as err:
        read_table(path)
    assert err.value.file == str(path)


def test_unsupported_extension_and_missing_file(tmp_path):
    path = _write(tmp_path / "t.json", "{}")
    with pytest.raises(InputError, match=r"unsupported file type '\.json'.*\.csv.*\.sav") as err:
        read_table(path)
    assert err.value.file == str(path)
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "absent.csv")


# --- hypothesis: generated CSVs read back unchanged ---------------------------------------

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=8,
).map(lambda s: "t" + s)  # a leading letter keeps it text, never a number or NA token


@st.composite
def _tables(draw):
    n = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(0, 999), min_size=n, max_size=n, unique=True))
    columns: dict[str, list] = {"id": [f"{i:04d}" for i in ids]}
    kinds = draw(st.lists(st.sampled_from(["int", "float", "text"]), min_size=1, max_size=5))
    for j, kind in enumerate(kinds):
        if kind == "int":
            values = st.integers(-(10**12), 10**12)
        elif kind == "float":
            values = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
        else:
            values = st.one_of(st.none(), _TEXT)
        columns[f"c{j}_{kind}"] = draw(st.lists(values, min_size=n, max_size=n))
    return columns, draw(st.sampled_from([",", ";", "\t", "|"]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_tables())
def test_read_table_returns_generated_csv_values(tmp_path, table):
    columns, delim = table
    path = tmp_path / "gen.csv"
    rows = zip(*columns.values(), strict=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delim)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if v is None else repr(v) if isinstance(v, float) else v for v in row]
            )
    frame = read_table(path).frame
    assert list(frame.columns) == list(columns)
    assert frame["id"].tolist() == columns["id"]
    for name, values in columns.items():
        got = frame[name].tolist()
        for want, have in zip(values, got, strict=True):
            if want is None:
                assert pd.isna(have), name
            else:
                assert have == want and type(have) is type(want), (name, want, have)


# --- atomic writers --------------------------------------------------------------------------


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_atomic_path_keeps_the_old_file_on_failure_and_replaces_on_success(tmp_path):
    target = tmp_path / "out.json"
    write_json({"a": 1}, target)
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise ValueError
    assert json.loads(target.read_text()) == {"a": 1}
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".json"
        tmp.write_text("{}\n")
    assert target.read_text() == "{}\n"
    assert _leftovers(tmp_path) == []
    # permissions as for any file the user creates (mkstemp would give 0600)
    reference = tmp_path / "reference.txt"
    reference.write_text("")
    assert target.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_atomic_path_errors_if_nothing_was_written(tmp_path):
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x.csv"):
        pass
    assert list(tmp_path.iterdir()) == []


def _result_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", None],
            "est": [0.1 + 0.2, 1 / 3, np.nan],
            "n": np.array([1, 2, 3], dtype="int64"),
            "tiny": [5e-324, 1e300, -0.0],
        }
    )


def test_writes_are_byte_identical(tmp_path):
    frame = _result_frame()
    obj = {"b": np.float64(0.5), "a": [np.int64(3), np.nan, np.bool_(True)], 2: "x"}
    for name, writer, payload in [
        ("t.parquet", write_parquet, frame),
        ("t.csv", write_csv, frame),
        ("t.json", write_json, obj),
    ]:
        first = writer(payload, tmp_path / "1" / name).read_bytes()
        second = writer(payload.copy(), tmp_path / "2" / name).read_bytes()
        assert first == second, name


def test_csv_floats_round_trip_exactly(tmp_path):
    frame = _result_frame()
    path = write_csv(frame, tmp_path / "t.csv")
    text = path.read_text()
    assert "\r" not in text and text.startswith("id,est,n,tiny\n")
    assert "0.30000000000000004" in text and "5e-324" in text
    back = pd.read_csv(path)
    assert back["est"].tolist()[:2] == frame["est"].tolist()[:2]
    assert back["tiny"].tolist() == frame["tiny"].tolist()


def test_parquet_stores_index_only_when_meaningful(tmp_path):
    plain = write_parquet(_result_frame(), tmp_path / "plain.parquet")
    assert pd.read_parquet(plain).index.equals(pd.RangeIndex(3))
    named = _result_frame().set_index("id")
    back = pd.read_parquet(write_parquet(named, tmp_path / "named.parquet"))
    assert back.index.name == "id"


def test_parquet_mixed_object_column_names_the_column(tmp_path):
    frame = pd.DataFrame({"ok": [1, 2], "arm": pd.Series(["CBT", 2], dtype=object)})
    with pytest.raises(TypeError, match="column 'arm'"):
        write_parquet(frame, tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_json_is_sorted_indented_and_plain(tmp_path):
    obj = {"z": np.float64(1.5), "a": {"n": np.int64(2), "x": [np.nan, np.inf]}, "p": Path("r")}
    path = write_json(obj, tmp_path / "deep" / "t.json")
    text = path.read_text()
    assert text.endswith("}\n")
    assert text.index('"a"') < text.index('"p"') < text.index('"z"')
    assert json.loads(text) == {"a": {"n": 2, "x": [None, None]}, "p": "r", "z": 1.5}
    assert '  "a": {' in text
    assert not math.isnan(json.loads(text)["z"])
