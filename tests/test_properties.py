"""Property-based tests (hypothesis) on readers, reshaping, scoring and the clean stage.

Generated tables replace hand-picked ones: whatever the delimiter, encoding, column mix, session
pattern or item values, the pipeline must read back what was written, invert its own pivot, score
by the key's arithmetic, and name the exact place of a bad value. Runs are derandomised (fixed
seed) so CI is reproducible, and bounded to keep the file well under a minute.
"""

from __future__ import annotations

import math
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bad_inputs import BASE

from alliance import files
from alliance.clean import readers, reshape
from alliance.clean.problems import ValidationFailed
from alliance.clean.pseudonym import pseudonym
from alliance.clean.stage import CleanResult, clean_trial, write_clean
from alliance.errors import InputError
from alliance.instruments.definition import parse_instrument
from alliance.instruments.items import keyed_items, reverse_key, score_items
from alliance.settings import Settings

SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
# Text cells: letters (so a cell never looks like a number), inner spaces, and three accented
# letters whose cp1252 bytes can never form valid UTF-8, so the encoding fallback is exercised.
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " éüñ", min_size=1, max_size=8)
TEXT = TEXT.map(str.strip).filter(lambda s: any(c.isalpha() for c in s))
TEXT = TEXT.filter(lambda s: s not in readers.MISSING_TOKENS)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@st.composite
def tables(draw) -> pd.DataFrame:
    """2-5 columns of int64 / float64 (with gaps) / text (with gaps), 1-12 rows.

    The first column is int64 (never missing): a row missing in every cell is a blank line,
    which the readers skip and count by design.
    """
    n = draw(st.integers(1, 12))
    names = draw(st.lists(NAMES, min_size=2, max_size=5, unique=True))
    data = {}
    for position, name in enumerate(names):
        kind = "int" if position == 0 else draw(st.sampled_from(["int", "float", "text"]))
        if kind == "int":
            values = draw(st.lists(st.integers(-(10**12), 10**12), min_size=n, max_size=n))
            data[name] = pd.Series(values, dtype="int64")
        elif kind == "float":
            finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
            values = draw(st.lists(st.one_of(finite, st.none()), min_size=n, max_size=n))
            if all(v is None for v in values) or all(
                v is not None and float(v).is_integer() for v in values
            ):
                values[0] = 0.5  # an all-missing or all-whole column is typed differently
            data[name] = pd.Series([math.nan if v is None else v for v in values], dtype=float)
        else:
            values = draw(st.lists(st.one_of(TEXT, st.none()), min_size=n, max_size=n))
            if all(v is None for v in values):
                values[0] = "x"
            data[name] = pd.Series(values, dtype="str")
    return pd.DataFrame(data)


def _write_text(frame: pd.DataFrame, path: Path, delimiter: str, encoding: str) -> None:
    text = frame.to_csv(
        index=False, sep=delimiter, lineterminator="\n", float_format=lambda x: repr(float(x))
    )
    path.write_bytes(text.encode(encoding))


@settings(max_examples=60, **SETTINGS)
@given(
    frame=tables(),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_text_files_read_back_what_was_written(frame, delimiter, encoding):
    """Any delimiter (sniffed) and encoding (UTF-8, BOM, cp1252 fallback) gives the same table."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        _write_text(frame, path, delimiter, encoding)
        table = readers.read_table(path)
    assert table.delimiter == delimiter
    pd.testing.assert_frame_equal(table.frame, frame, check_dtype=True)


@settings(max_examples=40, **SETTINGS)
@given(
    values=st.lists(st.integers(-3, 12), min_size=1, max_size=20),
    codes=st.lists(st.sampled_from([-1, 9, 99, -99]), min_size=1, max_size=2, unique=True),
)
def test_declared_missing_codes_blank_exactly_their_cells(values, codes):
    frame = pd.DataFrame({"id": [f"p{i}" for i in range(len(values))], "item": values})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        frame.to_csv(path, index=False)
        got = readers.read_table(path, missing_codes={"item": codes}).frame["item"]
    want = pd.Series([math.nan if v in codes else float(v) for v in values], name="item")
    pd.testing.assert_series_equal(got.astype(float), want)


@settings(max_examples=25, **SETTINGS)
@given(frame=tables())
def test_parquet_round_trip_is_exact_and_byte_stable(frame):
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.parquet", Path(tmp) / "b.parquet"
        files.write_parquet(frame, a)
        files.write_parquet(frame.copy(), b)
        assert a.read_bytes() == b.read_bytes()
        pd.testing.assert_frame_equal(readers.read_table(a).frame, frame)


# ------------------------------------------------------------------------------------ reshape
@st.composite
def long_tables(draw) -> pd.DataFrame:
    """Patients x attended sessions with two measures; every attended row has a value."""
    n_patients = draw(st.integers(1, 6))
    rows = []
    for i in range(n_patients):
        sessions = draw(st.lists(st.integers(0, 12), min_size=1, max_size=5, unique=True))
        for s in sorted(sessions):
            a = draw(st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)))
            b = (
                draw(st.floats(0, 5, allow_nan=False))
                if a is None
                else draw(st.one_of(st.none(), st.floats(0, 5, allow_nan=False)))
            )
            rows.append({"pid": f"id{i:02d}", "session": s, "hamd": a, "wai_p_01": b})
    frame = pd.DataFrame(rows).astype({"hamd": float, "wai_p_01": float, "pid": "str"})
    for var in ("hamd", "wai_p_01"):  # a measure never recorded has no wide column at all
        if frame[var].isna().all():
            frame.loc[0, var] = 1.0
    return frame


def _to_wide(long: pd.DataFrame, token: str) -> pd.DataFrame:
    wide = long.pivot(index="pid", columns="session", values=["hamd", "wai_p_01"])
    wide.columns = [f"{var}{token.format(s)}" for var, s in wide.columns]
    wide = wide.dropna(axis=1, how="all").reset_index()
    wide["age"] = np.arange(len(wide)) + 30  # a patient-level column rides along
    return wide


@settings(max_examples=40, **SETTINGS)
@given(
    long=long_tables(),
    token=st.sampled_from(
        [("_s{}", r"_s(\d+)$"), ("_s{:02d}", r"_s(\d+)$"), (".v{}", r"\.v(\d+)$")]
    ),  # fmt: skip
)
def test_wide_to_long_inverts_the_pivot(long, token):
    fmt, pattern = token
    wide = _to_wide(long, fmt)
    got, patients = reshape.wide_to_long(wide, id_column="pid", session_token=pattern)
    want = long.sort_values(["pid", "session"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns.tolist()], want, check_dtype=False)
    assert patients["pid"].tolist() == sorted(long["pid"].unique())
    assert reshape.detect_layout(wide, id_column="pid", session_column="session",
                                 session_token=pattern) == "wide"  # fmt: skip
    assert reshape.detect_layout(long, id_column="pid", session_column="session") == "long"


@settings(max_examples=20, **SETTINGS)
@given(long=long_tables())
def test_a_table_that_is_both_long_and_wide_is_refused(long):
    mixed = long.assign(wai_p_02_s3=1.0)
    with pytest.raises(InputError, match="use one layout"):
        reshape.detect_layout(mixed, id_column="pid", session_column="session")


# ------------------------------------------------------------------------------------ scoring
@st.composite
def instruments(draw):
    n = draw(st.integers(2, 12))
    low = draw(st.integers(0, 2))
    high = low + draw(st.integers(2, 6))
    reverse = draw(st.lists(st.integers(1, n), unique=True, max_size=n))
    spec = {
        "name": "gen", "items": n, "range": [low, high], "subscales": {},
        "reverse": reverse, "scoring": draw(st.sampled_from(["mean", "sum"])),
        "min_answered": draw(st.sampled_from([0.5, 0.75, 1.0])),
    }  # fmt: skip
    return parse_instrument(spec, Path("generated.yaml"))


@st.composite
def responses(draw, inst):
    rows = draw(st.integers(1, 8))
    cells = st.one_of(st.none(), st.integers(int(inst.low), int(inst.high)))
    data = {f"i{k}": draw(st.lists(cells, min_size=rows, max_size=rows)) for k in inst.items}
    return pd.DataFrame(data, dtype=float)


@settings(max_examples=80, **SETTINGS)
@given(data=st.data())
def test_scores_follow_the_key_arithmetic(data):
    inst = data.draw(instruments())
    raw = data.draw(responses(inst))
    columns = {k: f"i{k}" for k in inst.items}
    keyed = keyed_items(raw, columns, inst)
    score, answered = score_items(keyed, inst.items, inst)
    need = math.ceil(inst.min_answered * inst.n_items - 1e-9)
    for r in range(len(raw)):
        values = []
        for k in inst.items:
            x = raw.iloc[r][f"i{k}"]
            if not np.isnan(x):
                values.append(inst.low + inst.high - x if k in inst.reverse else x)
        assert answered.iloc[r] == len(values)
        if len(values) < max(need, 1):
            assert np.isnan(score.iloc[r])
            continue
        mean = sum(values) / len(values)
        expected = mean if inst.scoring == "mean" else mean * inst.n_items
        assert score.iloc[r] == pytest.approx(expected, rel=1e-12)
        assert inst.low <= mean <= inst.high


@settings(max_examples=50, **SETTINGS)
@given(low=st.integers(-3, 3), width=st.integers(1, 9), data=st.data())
def test_reverse_keying_is_an_involution_onto_the_range(low, width, data):
    high = low + width
    x = np.array(data.draw(st.lists(st.integers(low, high), min_size=1, max_size=20)), float)
    once = reverse_key(x, low, high)
    assert ((once >= low) & (once <= high)).all()
    assert np.array_equal(reverse_key(once, low, high), x)


# ------------------------------------------------------------------------------- clean stage
def _base_config(folder: Path) -> dict:
    import yaml

    cfg = yaml.safe_load((BASE / "config.yaml").read_text())
    cfg["data"]["sessions"] = str(folder / "sessions.csv")
    cfg["data"]["patients"] = str(folder / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(BASE.parents[2] / "config" / "instruments")
    return cfg


def _clean(folder: Path) -> CleanResult:
    """The clean stage on the base case's config reading the tables in `folder`."""
    return clean_trial(Settings.from_config(_base_config(folder)).clean())


@pytest.fixture
def no_key_env(monkeypatch):
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)


def _write_base(folder: Path, sessions: pd.DataFrame, patients: pd.DataFrame) -> None:
    sessions.to_csv(folder / "sessions.csv", index=False)
    patients.to_csv(folder / "patients.csv", index=False)


SESSIONS = pd.read_csv(BASE / "sessions.csv", dtype=str, keep_default_na=False)
PATIENTS = pd.read_csv(BASE / "patients.csv", dtype=str, keep_default_na=False)


@settings(max_examples=8, **SETTINGS)
@given(
    patient_order=st.permutations(sorted(SESSIONS["subject"].unique())),
    row_order=st.permutations(range(len(PATIENTS))),
)
def test_clean_output_does_not_depend_on_patient_order(no_key_env, patient_order, row_order):
    """Reordering patient blocks (sessions) and rows (patients) gives byte-identical outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_base(folder, SESSIONS, PATIENTS)
        ref = write_clean(_clean(folder), folder / "a")
        blocks = [SESSIONS[SESSIONS["subject"] == p] for p in patient_order]
        _write_base(folder, pd.concat(blocks), PATIENTS.iloc[list(row_order)])
        got = write_clean(_clean(folder), folder / "b")
        for key in ("sessions", "patients", "availability"):
            assert ref[key].read_bytes() == got[key].read_bytes(), key


@settings(max_examples=15, **SETTINGS)
@given(
    row=st.integers(1, len(SESSIONS)),
    item=st.integers(1, 12),
    value=st.one_of(st.integers(-100, 0), st.integers(6, 100), st.sampled_from(["x", "4,5"])),
)
def test_a_bad_item_is_reported_at_its_exact_place(no_key_env, row, item, value):
    column = f"wai_p_{item:02d}"
    sessions = SESSIONS.copy()
    sessions.loc[row - 1, column] = str(value)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_base(folder, sessions, PATIENTS)
        with pytest.raises(ValidationFailed) as err:
            _clean(folder)
    problems = err.value.problems
    assert len(problems) == 1
    p = problems[0]
    assert (p["row"], p["column"]) == (row, column)
    assert p["check"] == ("non_numeric" if isinstance(value, str) else "out_of_range")
    assert str(p["value"]) in (str(value), f"{float(value)}" if not isinstance(value, str) else "")
    assert f"row {row}, column '{column}'" in str(err.value)


@settings(max_examples=40, **SETTINGS)
@given(ids=st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=50, unique=True),
       key=st.binary(min_size=1, max_size=32))  # fmt: skip
def test_pseudonyms_are_deterministic_and_distinct(ids, key):
    first = [pseudonym(i, "patient", key) for i in ids]
    assert first == [pseudonym(i, "patient", key) for i in ids]
    assert len(set(first)) == len(ids)
    assert all(p.startswith("P-") and len(p) == 12 for p in first)
    assert not any(i in p for i, p in zip(ids, first, strict=True) if len(i) > 2)
