"""The clean stage on a hand-made trial: derived values by hand, every check on a broken copy."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import FIXTURE_KEY, small_trial

from alliance.clean.problems import ValidationFailed
from alliance.clean.pseudonym import pseudonym
from alliance.clean.stage import clean_trial, write_clean
from alliance.errors import ConfigError, InputError
from alliance.settings import Settings

KEY = FIXTURE_KEY.encode()


def run(cfg: dict):
    return clean_trial(Settings.from_config(cfg).clean())


def write(cfg: dict, sessions: pd.DataFrame | None = None, patients: pd.DataFrame | None = None):
    if sessions is not None:
        sessions.to_csv(cfg["data"]["sessions"], index=False)
    if patients is not None:
        patients.to_csv(cfg["data"]["patients"], index=False)
    return cfg


def by_raw(frame: pd.DataFrame, raw: str) -> pd.Series:
    return frame.set_index("patient").loc[pseudonym(raw, "patient", KEY)]


def test_derived_values_match_hand_computation(trial_config):
    r = run(trial_config)
    p, s = r.patients, r.sessions
    p1 = by_raw(p, "PIT-P001")  # 20 -> 6: 70 % reduction, final 6 <= 7
    assert (p1["n_sessions"], p1["last_session"], p1["final_symptom"]) == (4, 4, 6)
    assert (p1["response"], p1["remission"], p1["dropout"], p1["relapse_followed"]) == (1, 1, 0, 1)
    assert p1["relapse_time"] == 30 and p1["relapse_event"] == 1
    p3 = by_raw(p, "OKL-P003")  # 18 -> 11: 39 % reduction: no response; no relapse follow-up
    assert (p3["response"], p3["remission"]) == (0, 0) and pd.isna(p3["relapse_time"])
    p4 = by_raw(p, "OKL-P004")  # 22 -> 10: 54.5 % reduction, 10 > 7
    assert (p4["response"], p4["remission"]) == (1, 0)
    p2 = by_raw(p, "PIT-P002")
    assert (p2["dropout"], p2["n_sessions"], p2["arm_class"], p2["telehealth"]) == (
        1, 2, "placebo", 1,
    )  # fmt: skip
    p5 = by_raw(p, "GWU-P005")  # screened, never randomised
    assert p5["started"] == 0 and pd.isna(p5["dropout"])
    first = s[s["patient"] == pseudonym("PIT-P001", "patient", KEY)]
    assert first["session_index"].tolist() == [1, 2, 3, 4]
    assert first["weeks"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert first["baseline_symptom"].eq(20).all()
    # the fixture's item is 1 (passive: "life not worth living") when the total is above 20:
    # below the default threshold 2, so no ideation; the >= 1 sensitivity column counts it
    high = s["symptom"] > 20
    assert s.loc[high, "ideation"].eq(0).all() and s.loc[high, "ideation_ge1"].eq(1).all()
    assert (s["symptom_rest"] == s["symptom"] - s["suicidality"]).all()


def test_flow_counts(trial_config):
    flow = run(trial_config).flow
    get = {(r.step, r.arm): r.n for r in flow.itertuples()}
    assert get[("assessed", "all")] == 5
    assert get[("randomised", "all")] == 4
    assert get[("randomised", "CBT")] == 2
    assert get[("dropped out", "all")] == 1
    assert get[("responders", "all")] == 2
    assert get[("followed for relapse", "all")] == 2
    assert get[("session rows analysed", "all")] == 14


def test_raw_ids_are_pseudonymised_everywhere(trial_config, tmp_path):
    r = run(trial_config)
    paths = write_clean(r, tmp_path / "out")
    raw_ids = ["PIT-P001", "PIT-P002", "OKL-P003", "PIT-T01", "OKL-T02"]
    for path in paths.values():
        data = path.read_bytes()
        for raw in raw_ids:
            assert raw.encode() not in data, f"{raw} leaked into {path.name}"
    assert r.patients["therapist"].dropna().str.startswith("T-").all()


def test_pseudonyms_stable_and_keyed(trial_config, monkeypatch):
    a = run(trial_config).patients["patient"].tolist()
    b = run(trial_config).patients["patient"].tolist()
    assert a == b
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", "another-key-of-sixteen-bytes-or-more")
    c = run(trial_config).patients["patient"].tolist()
    assert set(a).isdisjoint(c)


def test_missing_key_is_a_clear_error(trial_config, monkeypatch):
    trial_config["privacy"]["key"] = None
    monkeypatch.delenv("ALLIANCE_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ConfigError, match="ALLIANCE_PSEUDONYM_KEY"):
        run(trial_config)


# ------------------------------------------------------------------------------ broken inputs
def broken(trial_config, edit_sessions=None, edit_patients=None):
    s, p = small_trial()
    if edit_sessions:
        s = edit_sessions(s)
    if edit_patients:
        p = edit_patients(p)
    return write(trial_config, s, p)


def set_cell(frame, row, col, value):
    frame = frame.copy()
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value
    return frame


def expect_problem(cfg, check, *, row, column, value):
    with pytest.raises(ValidationFailed) as err:
        run(cfg)
    problem = err.value.problems[0]
    assert problem["check"] == check
    assert (problem["row"], problem["column"], str(problem["value"])) == (row, column, str(value))
    text = str(err.value)
    assert "sessions.csv" in text or "patients.csv" in text
    assert f"row {row}" in text and f"'{column}'" in text
    return err.value


def test_out_of_range_item_names_place_and_hints_missing_code(trial_config):
    cfg = broken(trial_config, lambda s: set_cell(s, 2, "wai_p_05", 9))
    err = expect_problem(cfg, "out_of_range", row=3, column="wai_p_05", value=9.0)
    assert "data.missing_codes" in str(err)


def test_declared_missing_code_is_not_an_error(trial_config):
    cfg = broken(trial_config, lambda s: set_cell(s, 2, "wai_p_05", -99))
    cfg["data"]["missing_codes"] = [-99]
    s = run(cfg).sessions
    assert s["item_patient_05"].isna().sum() == 1


def test_non_numeric_item(trial_config):
    cfg = broken(trial_config, lambda s: set_cell(s, 4, "wai_t_03", "n/a?"))
    expect_problem(cfg, "non_numeric", row=5, column="wai_t_03", value="n/a?")


def test_duplicate_session(trial_config):
    def dup(s):
        return pd.concat([s, s.iloc[[1]]], ignore_index=True)

    cfg = broken(trial_config, dup)
    expect_problem(cfg, "duplicate_session", row=15, column="visit", value=2)


def test_duplicate_session_drop_row_policy_records_it(trial_config):
    cfg = broken(trial_config, lambda s: pd.concat([s, s.iloc[[1]]], ignore_index=True))
    cfg["checks"] = {"duplicate_session": "drop_row"}
    r = run(cfg)
    assert len(r.sessions) == 14
    assert r.validation["check"].tolist() == ["duplicate_session"]
    assert r.validation["action"].tolist() == ["drop_row"]


def test_sessions_out_of_order(trial_config):
    def swap(s):
        s = s.copy()
        s.loc[[0, 1], "visit"] = [2, 1]
        return s

    cfg = broken(trial_config, swap)
    expect_problem(cfg, "session_order", row=2, column="visit", value=1)


@pytest.mark.parametrize("value", [-1, 2.5])
def test_bad_session_numbers(trial_config, value):
    cfg = broken(trial_config, lambda s: set_cell(s, 3, "visit", value))
    expect_problem(cfg, "bad_session", row=4, column="visit", value=float(value))


def test_future_date(trial_config):
    cfg = broken(trial_config, lambda s: set_cell(s, 3, "visit_date", "2999-01-01"))
    with pytest.raises(ValidationFailed) as err:
        run(cfg)
    assert err.value.problems[0]["check"] == "future_date"
    assert err.value.problems[0]["row"] == 4


def test_date_before_consent(trial_config):
    cfg = broken(trial_config, lambda s: set_cell(s, 0, "visit_date", "2023-12-01"))
    expect_problem(cfg, "before_consent", row=1, column="visit_date", value="2023-12-01")


def test_patient_with_two_therapists(trial_config):
    def two(s):
        s = s.copy()
        s["therapist"] = s["subject"].map({"PIT-P001": "PIT-T01"}).fillna("OKL-T02")
        s.loc[2, "therapist"] = "PIT-T09"
        return s

    cfg = broken(trial_config, two)
    cfg["data"]["patients"] = None
    cfg["columns"].update(
        {k: None for k in ("site", "arm", "modality", "status", "consent_date",
                           "baseline_symptom", "relapse_time", "relapse_event")}
    )  # fmt: skip
    cfg["columns"]["covariates"], cfg["columns"]["personality"] = [], {}
    with pytest.raises(ValidationFailed) as err:
        run(cfg)
    problem = err.value.problems[0]
    assert problem["check"] == "therapist_conflict" and problem["row"] == 3
    assert problem["value"] == "PIT-T09" and problem["column"] == "therapist"


def test_session_of_unknown_patient(trial_config):
    def orphan(s):
        return set_cell(s, 5, "subject", "XXX-P999")

    cfg = broken(trial_config, orphan)
    expect_problem(cfg, "unknown_patient", row=6, column="subject", value="XXX-P999")


def test_unknown_arm_code(trial_config):
    cfg = broken(trial_config, edit_patients=lambda p: set_cell(p, 1, "arm", "PLACEBO"))
    err = expect_problem(cfg, "unknown_arm", row=2, column="arm", value="PLACEBO")
    assert "PLA-CM" in str(err)


def test_relapse_event_without_time(trial_config):
    cfg = broken(trial_config, edit_patients=lambda p: set_cell(p, 0, "relapse_weeks", None))
    expect_problem(cfg, "relapse_time", row=1, column="relapse", value=1.0)


def test_relapse_time_not_positive(trial_config):
    cfg = broken(trial_config, edit_patients=lambda p: set_cell(p, 3, "relapse_weeks", 0))
    expect_problem(cfg, "relapse_time", row=4, column="relapse_weeks", value=0.0)


def test_sessions_after_recorded_dropout_are_dropped_and_counted(trial_config):
    def drop_at(p):
        p = p.copy()
        p["drop_session"] = [None, 1, None, None, None]
        return p

    cfg = broken(trial_config, edit_patients=drop_at)
    cfg["columns"]["dropout_session"] = "drop_session"
    r = run(cfg)
    assert by_raw(r.patients, "PIT-P002")["n_sessions"] == 1
    v = r.validation
    assert v["check"].tolist() == ["after_dropout"] and v["action"].tolist() == ["drop_row"]
    flow = {(x.step, x.arm): x.n for x in r.flow.itertuples()}
    assert flow[("session rows removed by checks", "all")] == 1


def test_missing_required_column(trial_config):
    cfg = broken(trial_config, lambda s: s.drop(columns=["visit"]))
    with pytest.raises(InputError, match=r"sessions.csv.*column 'visit'.*required"):
        run(cfg)


def test_all_alliance_items_missing(trial_config):
    def blank(s):
        s = s.copy()
        for c in [c for c in s.columns if c.startswith(("wai_", "obs_"))]:
            s[c] = None
        return s

    cfg = broken(trial_config, blank)
    with pytest.raises(InputError, match="no alliance item has any response"):
        run(cfg)


def test_optional_measures_absent_are_recorded_as_skipped(trial_config):
    cfg = broken(trial_config, lambda s: s.drop(columns=[f"wai_t_{i:02d}" for i in range(1, 13)]))
    for key in ("therapist", "relapse_time", "relapse_event"):
        cfg["columns"][key] = None
    r = run(cfg)
    a = r.availability
    assert not a["therapist"]["available"] and "therapist" in a["therapist"]["reason"]
    assert not a["relapse"]["available"]
    assert not a["raters"]["therapist"]["available"]
    assert a["raters"]["patient"]["available"]
