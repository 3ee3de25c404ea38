"""The Arrow fast path of the CSV reader gives exactly the frames of the per-cell Python path."""

from __future__ import annotations

import contextlib
import csv
import sys

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alliance.clean import readers
from alliance.clean.readers import text as text_reader
from alliance.errors import InputError


@contextlib.contextmanager
def _python_path_only():
    """Switch the Arrow fast path off (it lives in readers.text), so the reference path runs."""
    original = text_reader._fast_text_frame
    text_reader._fast_text_frame = lambda *args: None
    try:
        yield
    finally:
        text_reader._fast_text_frame = original


def _both(path, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fast, reference) frames of one file; the reference has the fast path switched off."""
    fast = readers.read_table(path, **kwargs).frame
    with _python_path_only():
        reference = readers.read_table(path, **kwargs).frame
    return fast, reference


def test_whitespace_set_is_exactly_what_str_strip_removes():
    expected = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert expected == text_reader._WHITESPACE


def test_fast_path_is_taken_for_a_plain_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,x\n007,1\n010,2\n")
    assert text_reader._fast_text_frame(path.read_text(), str(path), ",", None) is not None


# Cells chosen to sit on every boundary of the typing rules: signs, exponents, leading zeros,
# missing tokens, padding, int64 limits, overflow to inf, Unicode digits and whitespace.
_CELLS = [
    "0", "-0", "+0", "5", "+5", "-12", "007", "-01", "0.5", "00.5", ".5", "5.", "1e3", "1E+05",
    "1.e5", "-.5e-3", "1e999", "inf", "Infinity", "9223372036854775807", "9223372036854775808",
    "-9223372036854775808", "-9223372036854775809", "0.30000000000000004", "5e-324", "",
    " ", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A", ".", " 7 ", "\u00a07\u3000", "x",
    "a b", "1,5", "\u0663", "\u0663.5", "caf\u00e9", "-", "+", "e5", "0x10",
]  # fmt: skip


@st.composite
def _csv_texts(draw):
    n_rows = draw(st.integers(1, 8))
    n_cols = draw(st.integers(2, 5))
    pools = [draw(st.lists(st.sampled_from(_CELLS), min_size=1, max_size=4)) for _ in range(n_cols)]
    rows = [[draw(st.sampled_from(pool)) for pool in pools] for _ in range(n_rows)]
    return [f"c{j}" for j in range(n_cols)], rows, draw(st.sampled_from([",", ";", "\t", "|"]))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_csv_texts())
def test_fast_path_equals_reference(tmp_path, table):
    header, rows, delim = table
    path = tmp_path / "gen.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delim)
        writer.writerow(header)
        writer.writerows(rows)
    _agree(path, delimiter=delim)


def _agree(path, **kwargs) -> None:
    """Both paths give the same frame, or the same InputError (rows of blanks only)."""
    try:
        fast, reference = _both(path, **kwargs)
    except InputError as fast_error:
        with _python_path_only(), pytest.raises(InputError) as ref_error:
            readers.read_table(path, **kwargs)
        assert str(fast_error) == str(ref_error.value)
        return
    pd.testing.assert_frame_equal(fast, reference)


@pytest.mark.parametrize(
    "text",
    [
        "id,x\n1,2\n3\n",  # short row
        "id,x\n1,2\n3,4,5\n",  # long row
        "id,x\n1,2\n   \n3,4\n",  # whitespace-only line
        "id,x,\n1,2,\n3,4,\n",  # trailing delimiter
        "id,,x\n1,2,3\n",  # unnamed column with data
        "id,x,x\n1,2,3\n",  # duplicate name
        'id,"x"\n1,2\n',  # quoted header: the Python path reads it
        'id,note\n1,"a, ""b""\nc"\n2,d\n',  # quoted field with delimiter, quote and newline
        "id,x\r\n1,2\r\n\r\n3,4\r\n",  # CRLF and a blank line
        "id,x\n1,2\n,\n3,4\n,\n",  # rows of delimiters only, inside and at the end
        "id,x\n,\n , NA\n",  # nothing but empty rows
    ],
)
def test_edge_files_agree_or_fail_alike(tmp_path, text):
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    _agree(path)


def test_keep_columns_on_the_fast_path(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,secret,x\n1,s,2.5\n2,t,\n")
    fast, reference = _both(path, keep_columns=["id", "x"])
    assert list(fast.columns) == ["id", "x"]
    pd.testing.assert_frame_equal(fast, reference)
