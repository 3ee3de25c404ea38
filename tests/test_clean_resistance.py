"""Treatment-resistance measures in the clean stage (docs/data.md): the schedule of attended and
missed sessions, attendance rates, adherence per interval, the self-clinician discrepancy, the TRD
flag, and the `combination` arm class, on a hand-made trial whose answers are computed by hand."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from conftest import FIXTURE_KEY, ROOT

from alliance.clean.pseudonym import pseudonym
from alliance.clean.stage import clean_trial
from alliance.config import load_config
from alliance.errors import ConfigError
from alliance.settings import Settings

ITEMS = [f"wai_p_{k:02d}" for k in range(1, 13)]


def _row(pid, visit, date, status, hamd=None, phq=None, taken=None, given=None, wai=3):
    row = {"subject": pid, "visit": visit, "visit_date": date, "att": status, "hamd": hamd,
           "phq": phq, "taken": taken, "given": given}  # fmt: skip
    row |= {c: (wai if status == "A" else None) for c in ITEMS}
    return row


def hand_trial(tmp_path) -> dict:
    """Three patients. P1 (combination arm): attended 1, missed 2 (no-show), attended 2
    (rebooked), missed twice (cancelled, no-show), attended 3; P2 (psychotherapy): slots
    numbered 1-4 with 2 missed, then two no-shows after the last attended session; P3 (drug):
    attended 1, 2."""
    rows = [
        _row("P1", 1, "2024-01-08", "A", 20, 18, 6, 7),
        _row("P1", 2, "2024-01-15", "N"),
        _row("P1", 2, "2024-01-18", "A", 16, 9, 10, 10),
        _row("P1", 3, "2024-01-25", "C"),
        _row("P1", 3, "2024-02-01", "N"),
        _row("P1", 3, "2024-02-08", "A", 12, 6, 14, 21),
        _row("P2", 1, "2024-01-09", "A", 22, 20),
        _row("P2", 2, "2024-01-16", "C"),
        _row("P2", 3, "2024-01-23", "A", 18, 15),
        _row("P2", 4, "2024-01-30", "A", 17, 14),
        _row("P2", 5, "2024-02-06", "N"),
        _row("P2", 6, "2024-02-13", "N"),
        _row("P3", 1, "2024-01-10", "A", 24, 26, 7, 7),
        _row("P3", 2, "2024-01-17", None, 21, 22, 0, 7),  # no code: attended
    ]
    patients = pd.DataFrame(
        {"subject": ["P1", "P2", "P3"], "therapist": ["T1", "T1", "T2"],
         "arm": ["SSRI+CBT", "CBT", "SSRI"], "status": ["completed", "dropout", "completed"],
         "failed": [3, 1, 2], "stage": [3, 1, 2], "months": [14.5, 3.0, 8.0]}
    )  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "sessions.csv", index=False)
    patients.to_csv(tmp_path / "patients.csv", index=False)
    cfg = copy.deepcopy(load_config(ROOT / "config" / "config.yaml"))
    cfg["data"] |= {"sessions": str(tmp_path / "sessions.csv"),
                    "patients": str(tmp_path / "patients.csv")}  # fmt: skip
    cfg["columns"] = {
        "patient": "subject", "session": "visit", "date": "visit_date", "therapist": "therapist",
        "arm": "arm", "status": "status", "prior_failed_trials": "failed",
        "staging_score": "stage", "episode_months": "months", "attendance": "att",
        "doses_taken": "taken", "doses_prescribed": "given", "self_report_symptom": "phq",
    }  # fmt: skip
    cfg["codings"] = {
        "arm": {"SSRI+CBT": "combination", "CBT": "psychotherapy", "SSRI": "drug"},
        "arm_reference": "CBT", "modality": {}, "status": {"completed": "completed",
        "dropout": "dropout"}, "attendance": {"A": "attended", "C": "cancelled", "N": "no_show"},
    }  # fmt: skip
    cfg["symptoms"] |= {"column": "hamd", "min": 0, "max": 52}
    cfg["alliance"]["raters"] = {"patient": {"instrument": "wai_sr", "items": r"^wai_p_(\d+)$"}}
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["treatment_resistance"] = {"staging_scale": "thase_rush", "staging_range": [0, 5],
                                   "trd_min_failed": 2}  # fmt: skip
    cfg["self_report"] = {"label": "PHQ-9", "min": 0, "max": 27}
    cfg["privacy"]["key"] = FIXTURE_KEY
    return cfg


def _by(frame: pd.DataFrame, raw: str) -> pd.DataFrame:
    return frame[frame["patient"] == pseudonym(raw, "patient", FIXTURE_KEY.encode())]


@pytest.fixture
def cleaned(tmp_path):
    return clean_trial(Settings.from_config(hand_trial(tmp_path)).clean())


def test_missed_rows_leave_the_session_table(cleaned):
    s = cleaned.sessions
    assert len(s) == 8  # attended rows only
    assert _by(s, "P1")["session_index"].tolist() == [1, 2, 3]
    assert _by(s, "P1")["session"].tolist() == [1, 2, 3]
    assert _by(s, "P2")["session"].tolist() == [1, 3, 4]
    assert _by(s, "P1")["weeks"].tolist() == [0.0, 10 / 7, 31 / 7]
    assert cleaned.validation.query("action == 'error'").empty


def test_schedule_in_order_with_last_attended_index(cleaned):
    sched = _by(cleaned.schedule, "P1")
    assert sched["status"].tolist() == [
        "attended", "no_show", "attended", "cancelled", "no_show", "attended",
    ]  # fmt: skip
    assert sched["slot"].tolist() == [1, 2, 3, 4, 5, 6]
    assert sched["last_attended_index"].tolist() == [0, 1, 1, 2, 2, 2]
    p2 = _by(cleaned.schedule, "P2")
    assert p2["after_last_attended"].tolist() == [0, 0, 0, 0, 1, 1]
    assert p2["last_attended_index"].tolist() == [0, 1, 1, 2, 3, 3]


def test_attendance_rate_runs_to_the_last_attended_session(cleaned):
    p = cleaned.patients
    p1, p2, p3 = (_by(p, k).iloc[0] for k in ("P1", "P2", "P3"))
    assert (p1["n_scheduled"], p1["n_missed"], p1["longest_missed_run"]) == (6, 3, 2)
    assert p1["attendance_rate"] == pytest.approx(3 / 6)
    assert (p2["n_scheduled"], p2["n_missed"], p2["missed_after_last"]) == (4, 1, 2)
    assert p2["attendance_rate"] == pytest.approx(3 / 4)
    assert (p3["attendance_rate"], p3["longest_missed_run"]) == (1.0, 0)
    s = _by(cleaned.sessions, "P1")
    assert s["missed_before"].tolist() == [0, 1, 2] and s["missed_prior"].tolist() == [0, 1, 3]


def test_adherence_discrepancy_trd_and_combination(cleaned):
    s = _by(cleaned.sessions, "P1")
    assert s["adherence"].tolist() == pytest.approx([6 / 7, 1.0, 14 / 21])
    first = s.iloc[0]
    assert first["self_report_pomp"] == pytest.approx(100 * 18 / 27)
    assert first["report_discrepancy"] == pytest.approx(100 * 18 / 27 - 100 * 20 / 52)
    assert _by(cleaned.sessions, "P2")["adherence"].isna().all()
    p = cleaned.patients.set_index("patient")
    key = {k: pseudonym(k, "patient", FIXTURE_KEY.encode()) for k in ("P1", "P2", "P3")}
    assert [p.at[key[k], "trd"] for k in ("P1", "P2", "P3")] == [1, 0, 1]
    assert p.at[key["P1"], "arm_class"] == "combination"
    tr = cleaned.availability["treatment_resistance"]
    assert tr["available"] and tr["staging_scale"] == "thase_rush" and tr["staging_range"] == [0, 5]
    assert cleaned.availability["adherence"]["source"] == "dose counts"
    assert cleaned.availability["attendance"]["form"] == "codes"


def test_count_form_gives_the_same_schedule_up_to_the_last_attended(tmp_path):
    cfg = hand_trial(tmp_path)
    s = pd.read_csv(tmp_path / "sessions.csv")
    att = s[s["att"].fillna("A") == "A"].copy()
    missed = s[s["att"].isin(["C", "N"])].groupby(["subject", "visit"]).size()
    att["missed"] = [missed.get((r.subject, r.visit), 0) for r in att.itertuples()]
    att.loc[(att["subject"] == "P2") & (att["visit"] == 3), "missed"] = 1  # slot 2 before 3
    att.drop(columns="att").to_csv(tmp_path / "sessions.csv", index=False)
    cfg["columns"] |= {"attendance": None, "missed_before": "missed"}
    counted = clean_trial(Settings.from_config(cfg).clean())
    p = counted.patients.set_index("patient")
    p1 = pseudonym("P1", "patient", FIXTURE_KEY.encode())
    assert (p.at[p1, "n_scheduled"], p.at[p1, "longest_missed_run"]) == (6, 2)
    assert counted.availability["attendance"]["form"] == "counts"


def test_without_the_roles_nothing_changes(tmp_path):
    cfg = hand_trial(tmp_path)
    s = pd.read_csv(tmp_path / "sessions.csv")
    s[s["att"].fillna("A") == "A"].drop(columns="att").to_csv(
        tmp_path / "sessions.csv", index=False
    )
    for role in ("attendance", "prior_failed_trials", "staging_score", "episode_months",
                 "doses_taken", "doses_prescribed", "self_report_symptom"):  # fmt: skip
        cfg["columns"][role] = None
    plain = clean_trial(Settings.from_config(cfg).clean())
    assert plain.schedule.empty and not plain.availability["attendance"]["available"]
    assert "trd" not in plain.patients and "adherence" not in plain.sessions


def test_both_attendance_forms_is_a_config_error(tmp_path):
    cfg = hand_trial(tmp_path)
    cfg["columns"]["missed_before"] = "missed"
    with pytest.raises(ConfigError, match="one of the two forms"):
        Settings.from_config(cfg)
