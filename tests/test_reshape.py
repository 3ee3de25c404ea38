"""Wide (one row per patient, `x_s3` columns) to long (one row per attended session)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alliance.clean.reshape import detect_layout, wide_to_long
from alliance.errors import InputError


def _long_to_wide(long: pd.DataFrame, id_column: str, token: str = "_s{}") -> pd.DataFrame:
    """Test-side inverse: one column per (variable, session), named variable + token."""
    stems = [c for c in long.columns if c not in (id_column, "session")]
    ids = pd.unique(long[id_column])
    wide = pd.DataFrame({id_column: ids})
    for session in sorted(long["session"].unique()):
        at = long[long["session"] == session].set_index(id_column)
        for stem in stems:
            wide[stem + token.format(session)] = wide[id_column].map(at[stem]).to_numpy()
    return wide


LONG = pd.DataFrame(
    {
        "pid": ["007", "007", "007", "012", "012", "100"],
        "session": [1, 2, 4, 1, 3, 2],
        "hamd": [20.0, 18.0, np.nan, 25.0, 22.0, 15.0],
        "wai_p_01": [5.0, 6.0, 6.0, np.nan, 4.0, 7.0],
        "note": ["a", None, "c", "d", None, "f"],
    }
).astype({"note": "str"})


def test_long_wide_long_round_trip():
    wide = _long_to_wide(LONG, "pid")
    wide["age"] = [30, 41, 52]
    assert "wai_p_01_s4" in wide.columns and "hamd_s3" in wide.columns
    long, patient = wide_to_long(wide, id_column="pid")
    pd.testing.assert_frame_equal(long, LONG[["pid", "session", "hamd", "note", "wai_p_01"]])
    assert patient.to_dict("list") == {"pid": ["007", "012", "100"], "age": [30, 41, 52]}


def test_unattended_sessions_dropped_and_rows_sorted():
    wide = pd.DataFrame(
        {
            "pid": [3, 1, 2],
            "x_s2": [1.0, np.nan, np.nan],
            "x_s1": [np.nan, 2.0, np.nan],
            "y_s1": [np.nan, np.nan, np.nan],
            "arm": ["a", "b", "c"],
        }
    )
    long, patient = wide_to_long(wide, id_column="pid")
    assert long[["pid", "session"]].to_numpy().tolist() == [[1, 1], [3, 2]]
    assert list(long.columns) == ["pid", "session", "x", "y"]
    assert long["session"].dtype == "int64"
    assert patient["pid"].tolist() == [1, 2, 3]  # patient 2 attended nothing but is kept here


def test_custom_token_and_leading_token():
    wide = pd.DataFrame({"id": ["a", "b"], "T1.wai": [1.0, 2.0], "T2.wai": [3.0, np.nan]})
    long, _ = wide_to_long(wide, id_column="id", session_token=r"^T(\d+)\.")
    assert long.to_dict("list") == {"id": ["a", "a", "b"], "session": [1, 2, 1], "wai": [1, 3, 2]}


def test_stem_measured_at_some_sessions_only_keeps_its_type():
    wide = pd.DataFrame({"id": [1, 2], "hamd_s1": [10, 12], "wai_s1": [5, 6], "wai_s2": [6, 7]})
    long, _ = wide_to_long(wide, id_column="id")
    assert long["hamd"].dtype == "float64"
    assert long["hamd"].isna().tolist() == [False, True, False, True]


@pytest.mark.parametrize("name", ["wai_p_07_S3", "hamd_s", "hamd_session3", "bdi.s2"])
def test_look_alike_session_columns_are_reported(name):
    wide = pd.DataFrame({"id": [1, 2], "hamd_s1": [10, 12], name: [1, 2]})
    with pytest.raises(InputError, match="look session-indexed") as err:
        wide_to_long(wide, id_column="id", source="trial.csv")
    assert err.value.column == name
    assert err.value.file == "trial.csv"


def test_patient_level_names_that_merely_end_in_s_are_fine():
    wide = pd.DataFrame({"id": [1], "n_sessions": [3], "scores": [2], "wai_s1": [5]})
    _, patient = wide_to_long(wide, id_column="id")
    assert list(patient.columns) == ["id", "n_sessions", "scores"]


def test_no_token_column_is_an_error():
    wide = pd.DataFrame({"id": [1, 2], "hamd": [10, 12]})
    with pytest.raises(InputError, match=r"no column matches the session token") as err:
        wide_to_long(wide, id_column="id", source="t.sav")
    assert err.value.file == "t.sav"


def test_colliding_columns_are_an_error():
    wide = pd.DataFrame({"id": [1, 2], "wai_s1": [1, 2], "wai_s01": [3, 4]})
    with pytest.raises(InputError, match="'wai_s1' and 'wai_s01' both map to variable 'wai'") as e:
        wide_to_long(wide, id_column="id")
    assert e.value.column == "wai_s01"


@pytest.mark.parametrize(
    ("frame", "message", "column"),
    [
        (pd.DataFrame({"pid": [1, 2], "x_s1": [1, 2]}), "id column not found", "id"),
        (pd.DataFrame({"id": [1, 1], "x_s1": [1, 2]}), "duplicated patient id", "id"),
        (pd.DataFrame({"id": [1, None], "x_s1": [1, 2]}), "missing patient id", "id"),
        (pd.DataFrame({"id": [1, 2], "_s1": [1, 2]}), "only a session token", "_s1"),
        (pd.DataFrame({"id": [1, 2], "session_s1": [1, 2]}), "clashes", "session_s1"),
    ],
)
def test_id_and_name_errors(frame, message, column):
    with pytest.raises(InputError, match=message) as err:
        wide_to_long(frame, id_column="id", source="w.csv")
    assert err.value.column == column


def test_duplicate_id_error_gives_row_and_value():
    frame = pd.DataFrame({"id": ["a", "b", "a"], "x_s1": [1, 2, 3]})
    with pytest.raises(InputError) as err:
        wide_to_long(frame, id_column="id")
    assert (err.value.row, err.value.value) == (3, "a")


def test_bad_token():
    frame = pd.DataFrame({"id": [1], "x_s1": [1]})
    with pytest.raises(InputError, match="needs a group"):
        wide_to_long(frame, id_column="id", session_token=r"_s\d+$")
    with pytest.raises(InputError, match="not a valid regular expression"):
        wide_to_long(frame, id_column="id", session_token=r"_s(\d+$")
    with pytest.raises(InputError, match="not a whole number"):
        wide_to_long(frame, id_column="id", session_token=r"_(s)\d+$")


def test_detect_layout():
    long = pd.DataFrame({"id": [1, 1, 2], "visit": [1, 2, 1], "wai": [4, 5, 6]})
    wide = pd.DataFrame({"id": [1, 2], "wai_s1": [4, 6], "wai_s2": [5, None]})
    assert detect_layout(long, id_column="id", session_column="visit") == "long"
    assert detect_layout(wide, id_column="id", session_column="visit") == "wide"
    mixed = long.assign(wai_s1=1)
    with pytest.raises(InputError, match="both a session column 'visit'") as err:
        detect_layout(mixed, id_column="id", session_column="visit", source="m.csv")
    assert err.value.column == "wai_s1" and err.value.file == "m.csv"
    with pytest.raises(InputError, match="ids repeat in a wide table") as err:
        detect_layout(pd.concat([wide, wide]), id_column="id", session_column="visit")
    assert err.value.row == 3
    with pytest.raises(InputError, match="cannot tell the layout"):
        detect_layout(long.drop(columns="visit"), id_column="id", session_column="visit")
    with pytest.raises(InputError, match="id column not found"):
        detect_layout(long, id_column="pid", session_column="visit")


# --- property: wide_to_long inverts a generated long table --------------------------------

_STEM = st.from_regex(r"[a-z]{1,5}(_[a-z0-9]{1,3})?", fullmatch=True).filter(
    lambda s: s not in ("pid", "session") and not s.endswith("_s")
)


@st.composite
def _long_tables(draw):
    ids = draw(
        st.one_of(
            st.lists(st.integers(-50, 10**6), min_size=1, max_size=8, unique=True),
            st.lists(
                st.from_regex(r"[A-Z0-9]{1,6}", fullmatch=True), min_size=1, max_size=8, unique=True
            ),
        )
    )
    stems = draw(st.lists(_STEM, min_size=1, max_size=4, unique=True))
    value = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
    rows = []
    for pid in ids:
        for session in sorted(draw(st.sets(st.integers(0, 30), min_size=1, max_size=6))):
            values = draw(st.lists(value, min_size=len(stems), max_size=len(stems)))
            if all(v is None for v in values):
                values[draw(st.integers(0, len(stems) - 1))] = draw(st.floats(-10, 10))
            rows.append({"pid": pid, "session": session, **dict(zip(stems, values, strict=True))})
    frame = pd.DataFrame(rows)
    frame[stems] = frame[stems].astype("float64")
    return frame


@settings(max_examples=80, deadline=None)
@given(_long_tables())
def test_wide_to_long_inverts_generated_long_tables(long):
    wide = _long_to_wide(long, "pid")
    got, patient = wide_to_long(wide, id_column="pid")
    want = (
        long[["pid", "session", *sorted(long.columns[2:])]]
        .sort_values(["pid", "session"], kind="stable")
        .reset_index(drop=True)
    )
    want["session"] = want["session"].astype("int64")
    pd.testing.assert_frame_equal(got, want)
    assert list(patient.columns) == ["pid"]
    assert sorted(patient["pid"].tolist()) == sorted(set(long["pid"]))
