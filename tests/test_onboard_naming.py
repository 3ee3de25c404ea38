"""`alliance init` on column names as real exports write them (issue #13): the session number in
any case and at any place, items never confused with per-session totals, and the roles that
names alone do not give away (relapse, status, age, sex, ID, the suicide item) read from content.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from alliance.clean import reshape
from alliance.onboard.content import (
    guess_covariates,
    guess_id_by_content,
    guess_relapse,
    guess_status_by_codes,
    relapse_words,
    sex_like,
)
from alliance.onboard.guess import Tables
from alliance.onboard.inspection import inspect_export
from alliance.onboard.item_groups import classify_groups, find_item_groups
from alliance.onboard.numbering import number_families, session_tokens
from alliance.onboard.profile import profile_columns
from alliance.onboard.vocabulary import tokens


def _names(total: str | None, item: str, sessions: int = 4, items: int = 12) -> list[str]:
    """Column names of a wide export: ID and patient columns, then per session a total and
    the items (`{s}` session, `{i}` item)."""
    names = ["pid", "age", "sex"]
    for s in range(1, sessions + 1):
        if total:
            names.append(total.format(s=s))
        names += [item.format(s=s, i=i) for i in range(1, items + 1)]
    return names


# scheme -> (total name, item name, sessions, expected long names of total and item 7)
SCHEMES = {
    "upper, token at the end": ("HAMD_S{s:02d}", "WAI_P_{i:02d}_S{s:02d}", 4, "HAMD", "WAI_P_07"),
    "lower, short token": ("hamd_s{s}", "wai_p_{i:02d}_s{s}", 4, "hamd", "wai_p_07"),
    "token mid-name, mixed case": ("HAMD_S{s:02d}", "WAIp_s{s:02d}_i{i:02d}", 4, "HAMD",
                                   "WAIp_i07"),
    "token first": ("S{s:02d}_HAMD", "S{s:02d}_WAI_P_{i:02d}", 4, "HAMD", "WAI_P_07"),
    "visit first": ("Visit{s}_HDRS", "Visit{s}_WAI_{i:02d}", 4, "HDRS", "WAI_07"),
    "item before a t token": ("bdi_t{s}", "wai_p_{i:02d}_t{s}", 4, "bdi", "wai_p_07"),
    "dotted visit": ("HAMD.V{s:02d}", "WAI_P.V{s:02d}.Q{i:02d}", 4, "HAMD", "WAI_P.Q07"),
    "wave": ("phq_w{s}", "wai_{i}_w{s}", 4, "phq", "wai_7"),
    "session word": ("hamd_session{s}", "wai{i:02d}_session{s}", 4, "hamd", "wai07"),
    "T1 first": ("T{s}_BDI", "T{s}_WAI{i:02d}", 4, "BDI", "WAI07"),
    "camel case": ("hamdS{s}", "waiS{s}Item{i:02d}", 4, "hamd", "waiItem07"),
    "dashes": ("hamd-v{s}", "wai-{i:02d}-v{s}", 4, "hamd", "wai-07"),
    "bare numbers, session last": ("hamd_{s}", "wai_p_{i:02d}_{s}", 4, "hamd", "wai_p_07"),
    "bare numbers, session first": ("hamd_{s}", "wai_p_{s}_{i:02d}", 4, "hamd", "wai_p_07"),
    "20 sessions, more than items": ("HAMD_S{s:02d}", "WAI_{i:02d}_S{s:02d}", 20, "HAMD",
                                     "WAI_07"),
    "therapist T items, S sessions": ("HAMD_S{s}", "WAI_T{i:02d}_S{s}", 4, "HAMD", "WAI_T07"),
}  # fmt: skip


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_session_token_found_in_any_naming_scheme(scheme):
    total, item, n_sessions, total_long, item_long = SCHEMES[scheme]
    names = _names(total, item, n_sessions)
    fit = session_tokens(names)[0]
    assert fit.sessions == list(range(1, n_sessions + 1)), fit.token
    for s in (1, n_sessions):
        col = item.format(s=s, i=7)
        assert fit.split[col] == (item_long, s), (fit.token, col)
        assert fit.split[total.format(s=s)] == (total_long, s)
    assert {"pid", "age", "sex"}.isdisjoint(fit.split)  # patient-level columns stay so
    # the pipeline's own reshape reads the token the same way
    frame = pd.DataFrame([dict.fromkeys(names, 1.0) | {"pid": "A"}, dict.fromkeys(names, 2.0)
                          | {"pid": "B"}])  # fmt: skip
    long, patients = reshape.wide_to_long(frame, id_column="pid", session_token=fit.token)
    assert sorted(long["session"].unique()) == list(range(1, n_sessions + 1))
    assert {total_long, item_long} <= set(long.columns)
    assert list(patients.columns) == ["pid", "age", "sex"]
    # and the items of the long names form one family, numbered 1..12
    (family,) = [f for f in number_families(sorted(set(long.columns))) if 7 in f.columns]
    assert family.columns[7] == item_long and sorted(family.columns) == list(range(1, 13))
    assert re.search(family.pattern, item_long).group(1) in ("7", "07")


@pytest.mark.parametrize(
    ("names", "token"),
    [
        (_names("HAMD_S{s:02d}", "WAIp_s{s:02d}_i{i:02d}"), r"(?i)_s(\d+)(?=[_]|$)"),
        (_names("hamd_s{s}", "wai_p_{i:02d}_s{s}"), r"_s(\d+)$"),  # the pipeline's default
        (_names("Visit{s}_HDRS", "Visit{s}_WAI_{i:02d}"), r"^Visit(\d+)_"),
        (_names("HAMD.V{s:02d}", "WAI_P.V{s:02d}.Q{i:02d}"), r"\.V(\d+)(?=[\.]|$)"),
        (_names("bdi_t{s}", "wai_p_{i:02d}_t{s}"), r"_t(\d+)$"),
    ],
)
def test_session_token_is_as_narrow_as_the_names_allow(names, token):
    assert session_tokens(names)[0].token == token


def test_marked_token_beats_a_longer_baseline_battery():
    """44 baseline items `big5_01..44` repeat one bare number more often than the session
    columns do; the session word `s` still marks the sessions."""
    names = _names("hamd_s{s}", "wai_{i:02d}_s{s}", 3) + [f"big5_{k:02d}" for k in range(1, 45)]
    fit = session_tokens(names)[0]
    assert fit.token == r"_s(\d+)$" and "big5_07" not in fit.split


def test_two_unmarked_numbers_are_guessed_and_noted(tmp_path):
    """`wai_p_3_07` with no total: nothing tells which number counts sessions; the guess is
    written with a note offering the other reading."""
    names = _names(None, "wai_p_{i:02d}_{s}")
    frame = pd.DataFrame({n: [1 + (i + k) % 5 for i in range(6)] for k, n in enumerate(names)})
    frame["pid"] = [f"P{i}" for i in range(6)]
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    ins = inspect_export(path)
    assert ins.layout == "wide" and ins.session_token == r"_(\d+)$"
    assert any("if that number counts items instead" in n for n in ins.notes)


# ------------------------------------------------------------------------ totals are not items
def test_per_session_totals_are_never_an_item_family():
    totals = [f"HAMD_S{s:02d}" for s in range(1, 13)]
    assert number_families(totals) == []
    assert number_families([f"hamd_visit{s}" for s in range(1, 13)]) == []
    items = [f"HAMD{k:02d}_S01" for k in range(1, 18)] + totals
    (family,) = number_families(items)
    assert family.pattern == r"^HAMD(\d+)_S01$" and len(family.columns) == 17


def test_a_family_with_total_sized_values_is_not_symptom_items():
    """`hamd_t1..t12` (t may be a rater word, so it is a family) holds 5-35: totals, not items."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({f"hamd_t{k}": rng.integers(5, 36, 8) for k in range(1, 13)})
    groups = find_item_groups(frame, profile_columns(frame, "sessions", None))
    classify_groups(groups)
    (group,) = groups
    assert group.use is None and "totals" in group.reason


def test_wide_totals_only_give_no_suicide_item(tmp_path):
    """One HAM-D total per session and nothing else: the total at session 3 is not item 3."""
    frame = pd.DataFrame({"pid": [f"P{i}" for i in range(8)]})
    for s in range(1, 13):
        frame[f"HAMD_S{s:02d}"] = [20 + i - s for i in range(8)]
    path = tmp_path / "totals.csv"
    frame.to_csv(path, index=False)
    ins = inspect_export(path)
    assert ins.layout == "wide" and ins.chosen["symptom"].column == "HAMD"
    assert "suicidality" not in ins.chosen
    assert not [g for g in ins.item_groups if g.use]


# ------------------------------------------------------------------------------ content rules
@pytest.mark.parametrize(
    ("name", "expected"),
    [("RELWEEKS", (True, True, False)), ("rel_wk", (True, True, False)),
     ("time_to_relapse", (True, True, False)), ("RELAPSE_WKS", (True, True, False)),
     ("rel_ev", (True, False, True)), ("RELEVENT", (True, False, True)),
     ("relapse", (True, False, False)), ("reliability", (False, False, False)),
     ("relationship_yrs", (False, False, False))],
)  # fmt: skip
def test_relapse_words(name, expected):
    assert relapse_words(name) == expected


def _tables(patients: pd.DataFrame) -> Tables:
    prof = profile_columns(patients, "patients", "pid")
    t = Tables({}, prof, "pid", len(patients))
    t.frames = {"patients": patients}
    return t


def _patients() -> pd.DataFrame:
    n = 12
    follow = [i % 2 == 0 for i in range(n)]
    return pd.DataFrame({
        "pid": [f"P{i}" for i in range(n)],
        "v07": ["w" if i % 3 else "m" for i in range(n)],
        "AGE_AT_BASELINE": [20 + 3 * i for i in range(n)],
        "age_group": [1 + i % 4 for i in range(n)],
        "Outcome": ["completer" if i % 4 else "early termination" for i in range(n)],
        "RELWEEKS": [10.0 + i if f else np.nan for i, f in enumerate(follow)],
        "EVT": [float(i % 3 == 0) if f else np.nan for i, f in enumerate(follow)],
        "censored": [float(i % 3 != 0) if f else np.nan for i, f in enumerate(follow)],
    })  # fmt: skip


def test_relapse_time_and_the_event_beside_it():
    times, events, notes = guess_relapse(_tables(_patients()))
    assert [g.column for g in times] == ["RELWEEKS"]
    assert [g.column for g in events] == ["EVT"] and "beside" in events[0].reason
    assert not any("censor" in n for n in notes)  # `censored` is no relapse name: left alone


def test_a_flag_beside_the_time_but_present_without_it_is_not_the_event():
    p = _patients()
    p.loc[1, "EVT"] = 0.0  # event recorded where no time is
    _, events, _ = guess_relapse(_tables(p))
    assert events == []


def test_censoring_flag_is_never_the_event():
    p = _patients().rename(columns={"EVT": "rel_censor"})
    _, events, notes = guess_relapse(_tables(p))
    assert events == [] and any("censoring" in n for n in notes)


def test_status_age_and_sex_from_content():
    t = _tables(_patients())
    assert [g.column for g in guess_status_by_codes(t)] == ["Outcome"]
    cov = {g.column: g.reason for g in guess_covariates(t)}
    assert set(cov) == {"AGE_AT_BASELINE", "v07"}  # age_group 1-4 is no age
    assert "codes read as sex" in cov["v07"]


@pytest.mark.parametrize(
    ("codes", "expected"),
    [(["F", "M"], True), (["m", "w"], True), (["female", "male", "diverse"], True),
     (["männlich", "weiblich"], True), (["1", "2"], False), (["yes", "no"], False),
     (["f"], False)],
)  # fmt: skip
def test_sex_like(codes, expected):
    assert sex_like(codes) is expected


def test_id_found_by_unique_values():
    frame = pd.DataFrame({"PATNR": [1001, 1002, 1003], "GRP": [1, 2, 1]})
    (g,) = guess_id_by_content(profile_columns(frame, "sessions", None), len(frame))
    assert g.column == "PATNR"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("WAIp", ["wa", "ip", "wai", "p"]), ("HAMDtot", ["ham", "dtot", "hamd", "tot"]),
     ("PatientID", ["patient", "id"]), ("RELWEEKS", ["relweeks"])],
)  # fmt: skip
def test_caps_glued_to_lower_case_read_both_ways(name, expected):
    assert tokens(name) == expected


def test_long_export_with_upper_case_names_and_a_single_suicide_item(tmp_path):
    """Long file: the total and one item column per session row; the item is the suicide item,
    the total the symptom score (an item never outranks a total)."""
    rows = []
    for i in range(8):
        for visit in (1, 2, 3):
            row = {"CASE_ID": f"C{i}", "VISIT_NO": visit, "HAMD_ITEM3": (i + visit) % 4,
                   "HAMD_TOTAL": 30 - 3 * visit + i}  # fmt: skip
            row |= {f"WAI_P_{k:02d}": 1 + (i + k + visit) % 5 for k in range(1, 13)}
            rows.append(row)
    path = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    ins = inspect_export(path)
    assert ins.layout == "long" and ins.chosen["session"].column == "VISIT_NO"
    assert ins.chosen["symptom"].column == "HAMD_TOTAL"
    assert ins.chosen["suicidality"].column == "HAMD_ITEM3"
    assert [(g.pattern, g.use) for g in ins.item_groups] == [(r"^WAI_P_(\d+)$", "patient")]
