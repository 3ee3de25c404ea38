"""Exporting a simulated trial: determinism, round trips in every format, wide layout, codes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from alliance.errors import ConfigError
from alliance.simulate.export import FORMATS, VALUE_CODES, from_wide, to_wide, write_trial
from alliance.simulate.observer import OBSERVER_ITEMS
from alliance.simulate.params import WAI_P, WAI_T
from alliance.simulate.resistance import with_schedule
from alliance.simulate.trial import simulate_trial

SMALL = {"n_patients": 60, "n_therapists": 8, "seed": 7}
TEXT = ("subject", "therapist", "site", "arm", "modality", "sex", "status", "attendance")
DATES = ("visit_date", "consent_date")


@pytest.fixture(scope="module")
def trial():
    return simulate_trial(**SMALL)


def _read(path: Path) -> pd.DataFrame:
    fmt = path.suffix[1:]
    if fmt == "csv":
        return pd.read_csv(path, dtype={c: "str" for c in TEXT})
    if fmt == "tsv":
        return pd.read_csv(path, sep="\t", dtype={c: "str" for c in TEXT})
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "xlsx":
        return pd.read_excel(path, dtype={c: "str" for c in TEXT})
    if fmt == "sav":
        return pyreadstat.read_sav(path, apply_value_formats=True)[0]
    return pyreadstat.read_dta(path, apply_value_formats=True)[0]


def _base(col: str) -> str:
    return col.rsplit("_s", 1)[0] if col[-4:-2] == "_s" else col


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """Comparable values: text/dates as Python str or None, numbers as float64 (NaN)."""
    out = {}
    for col in frame.columns:
        base = _base(col)
        values = frame[col]
        if base in TEXT or base in DATES:
            out[col] = [
                None
                if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))
                or v == ""
                else (v.isoformat()[:10] if isinstance(v, dt.date) else str(v))
                for v in values.astype("object")
            ]  # fmt: skip
        else:
            out[col] = values.astype("float64").to_numpy()
    return pd.DataFrame(out, index=range(len(frame)))


def _assert_same(written: pd.DataFrame, original: pd.DataFrame) -> None:
    assert list(written.columns) == list(original.columns)
    pd.testing.assert_frame_equal(_normalised(written), _normalised(original), check_dtype=False)


def test_same_seed_gives_identical_bytes(tmp_path):
    for fmt in ("csv", "tsv", "parquet"):
        a = write_trial(simulate_trial(**SMALL), tmp_path / f"a_{fmt}", fmt=fmt)
        b = write_trial(simulate_trial(**SMALL), tmp_path / f"b_{fmt}", fmt=fmt)
        for pa, pb in zip(a, b, strict=True):
            assert pa.name == pb.name
            assert pa.read_bytes() == pb.read_bytes(), pa.name
    c = write_trial(simulate_trial(**{**SMALL, "seed": 8}), tmp_path / "c", fmt="csv")
    assert c[0].read_bytes() != (tmp_path / "a_csv" / "sessions.csv").read_bytes()


def test_truth_json_sorted_and_indented(trial, tmp_path):
    paths = write_trial(trial, tmp_path)
    assert [p.name for p in paths] == ["sessions.csv", "patients.csv", "truth.json"]
    text = paths[-1].read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert json.loads(text)["seed"] == SMALL["seed"]


def test_csv_missing_is_empty_cell_by_default(trial, tmp_path):
    sessions = write_trial(trial, tmp_path)[0]
    lines = sessions.read_text().splitlines()
    assert lines[0].startswith("subject,visit,visit_date,hamd,hamd_suicide,wai_p_01")
    assert any(",," in line for line in lines[1:])
    assert "-99" not in sessions.read_text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_round_trip(trial, tmp_path, fmt):
    paths = write_trial(trial, tmp_path, fmt=fmt)
    assert [p.name for p in paths] == [f"sessions.{fmt}", f"patients.{fmt}", "truth.json"]
    _assert_same(_read(paths[0]), with_schedule(trial.sessions, trial.missed))
    _assert_same(_read(paths[1]), trial.patients)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_round_trip_and_reshape(trial, tmp_path, fmt):
    paths = write_trial(trial, tmp_path, fmt=fmt, layout="wide")
    assert [p.name for p in paths] == [f"trial_wide.{fmt}", "truth.json"]
    wide = _read(paths[0])
    expected = to_wide(trial)
    _assert_same(wide, expected)
    long = from_wide(_normalised(wide), list(trial.patients.columns))
    assert (
        long["missed_before"].sum()
        == (trial.missed["visit"] <= long["visit"].max()).sum()
        - (
            trial.missed.merge(trial.sessions[["subject", "visit"]], how="left", indicator=True)[
                "_merge"
            ].eq("left_only")
        ).sum()
    )  # the count form: every missed slot booked as an attended session
    long = long[list(trial.sessions.columns)]
    _assert_same(long, trial.sessions)


def test_wide_column_names(trial):
    wide = to_wide(trial)
    n_patient = len(trial.patients.columns)
    assert list(wide.columns[:n_patient]) == list(trial.patients.columns)
    assert len(wide) == len(trial.patients)
    for name in ("wai_p_07_s03", "hamd_s03", "hamd_suicide_s16", "visit_date_s01", "wai_t_12_s15"):
        assert name in wide.columns
    # therapist items only where the schedule rates them (1, 2, 3, 5, 7, ...)
    assert "wai_t_01_s04" not in wide.columns and "wai_t_01_s05" in wide.columns
    assert "visit_s01" not in wide.columns
    row = wide.set_index("subject")
    s = trial.sessions.iloc[5]
    assert row.loc[s["subject"], f"hamd_s{s['visit']:02d}"] == s["hamd"]


def test_spss_user_missing_and_value_labels(trial, tmp_path):
    path = write_trial(trial, tmp_path, fmt="sav")[0]
    default, meta = pyreadstat.read_sav(path)  # user_missing=False: -99 read as NaN
    raw, meta_raw = pyreadstat.read_sav(path, user_missing=True)
    # missed scheduled sessions (attendance 2 / 3) carry no answers at all
    assert raw.loc[raw["attendance"] != 1, list(WAI_P)].isna().all().all()
    assert meta_raw.variable_value_labels["attendance"] == {1.0: "attended", 2.0: "cancelled",
                                                            3.0: "no_show"}  # fmt: skip
    default = default[raw["attendance"] == 1].reset_index(drop=True)
    raw = raw[raw["attendance"] == 1].reset_index(drop=True)
    items = list(WAI_P + WAI_T)
    nonresponse = trial.sessions[list(WAI_P)].isna().to_numpy()
    assert nonresponse.sum() > 0
    assert ((raw[list(WAI_P)] == -99).to_numpy() == nonresponse).all()
    assert not (default[items] == -99).any().any()
    assert default[list(WAI_P)].isna().to_numpy().sum() == nonresponse.sum()
    assert meta_raw.missing_ranges["wai_p_01"] == [{"lo": -99.0, "hi": -99.0}]
    # therapist items never asked at a session are system-missing, not -99
    unscheduled = ~trial.sessions["visit"].isin(trial.truth["design"]["therapist_rating_sessions"])
    assert raw.loc[unscheduled.to_numpy(), list(WAI_T)].isna().all().all()
    _, pmeta = pyreadstat.read_sav(path.with_name("patients.sav"), metadataonly=True)
    for col, codes in VALUE_CODES.items():
        if col != "attendance":  # a session column
            assert pmeta.variable_value_labels[col] == {float(v): k for k, v in codes.items()}
    assert pmeta.original_variable_types["consent_date"].startswith("DATE")


def test_spss_custom_missing_code(trial, tmp_path):
    path = write_trial(trial, tmp_path, fmt="sav", missing_code=-9)[0]
    raw, meta = pyreadstat.read_sav(path, user_missing=True)
    assert (raw["wai_p_01"] == -9).sum() == trial.sessions["wai_p_01"].isna().sum()
    assert meta.missing_ranges["wai_p_01"] == [{"lo": -9.0, "hi": -9.0}]


def test_stata_value_labels(trial, tmp_path):
    path = write_trial(trial, tmp_path, fmt="dta")[1]
    coded, meta = pyreadstat.read_dta(path)
    for col, codes in VALUE_CODES.items():
        if col == "attendance":  # a session column
            continue
        labels = meta.variable_to_label[col]
        assert meta.value_labels[labels] == {v: k for k, v in codes.items()}
        present = trial.patients[col].dropna().map(codes)
        assert set(coded[col].dropna()) == set(present)


def test_csv_missing_code(trial, tmp_path):
    paths = write_trial(trial, tmp_path, fmt="csv", missing_code=-99)
    raw = pd.read_csv(paths[0])
    raw = raw[raw["attendance"] == "attended"]  # a missed session's cells are all the code
    assert (raw[list(WAI_P)] == -99).to_numpy().sum() == trial.sessions[
        list(WAI_P)
    ].isna().sum().sum()
    back = pd.read_csv(paths[0], na_values=["-99"], dtype={"subject": "str"})
    _assert_same(back, with_schedule(trial.sessions, trial.missed))
    patients = pd.read_csv(paths[1], na_values=["-99", "-99.0"], dtype={c: "str" for c in TEXT})
    _assert_same(patients, trial.patients)


def test_bad_arguments_raise(trial, tmp_path):
    with pytest.raises(ConfigError, match="fmt"):
        write_trial(trial, tmp_path, fmt="json")
    with pytest.raises(ConfigError, match="layout"):
        write_trial(trial, tmp_path, layout="tall")
    with pytest.raises(ConfigError, match="missing_code"):
        write_trial(trial, tmp_path, fmt="parquet", missing_code=-99)


def test_observer_items_in_the_wide_and_spss_exports(trial, tmp_path):
    wide = to_wide(trial)
    schedule = trial.truth["observer"]["rating_sessions"]
    assert [c for c in wide.columns if c.startswith("obs_01_")] == [
        f"obs_01_s{k:02d}" for k in schedule
    ]
    path = write_trial(trial, tmp_path, fmt="sav")[0]
    raw, meta = pyreadstat.read_sav(path, user_missing=True)
    raw = raw[raw["attendance"] == 1].reset_index(drop=True)
    items = trial.sessions[list(OBSERVER_ITEMS)]
    coded = items.notna().any(axis=1).to_numpy()
    # an item left out of a coded recording is user-missing -99; an uncoded recording is empty
    asked_not_answered = items.isna().to_numpy() & coded[:, None]
    assert ((raw[list(OBSERVER_ITEMS)] == -99).to_numpy() == asked_not_answered).all()
    assert raw.loc[~coded, list(OBSERVER_ITEMS)].isna().all().all()
    assert meta.column_names_to_labels["obs_04"] == "Demo observer alliance scale item 4"
