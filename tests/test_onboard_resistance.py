"""`alliance init` guesses the treatment-resistance roles (docs/data.md) by name and content:
prior failed trials, staging scale, episode, attendance codes, pill counts, a self-report scale
beside the clinician rating, and a combination arm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_onboard import INSTRUMENTS, demo_like, guessed_config, write

from alliance.clean.stage import clean_trial
from alliance.config import validate_config
from alliance.onboard.codings import guess_coding
from alliance.settings import Settings


def resistant_export(staging: str = "MGH_S") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo-like export with foreign names for every resistance measure."""
    s, p = demo_like()
    rng = np.random.default_rng(3)
    p["PRIORTX"] = [i % 4 for i in range(len(p))]
    p[staging] = [float(i % 4) for i in range(len(p))]
    p["episode_months"] = np.round(rng.uniform(2, 30, len(p)), 1)
    s["appt_attendance"] = "attended"
    s["pills_prescribed"] = 7
    s["pills_taken"] = rng.integers(3, 8, len(s))
    s["PHQ9_total"] = rng.integers(2, 25, len(s))
    missed = s.groupby("subject").head(1).assign(visit=2, appt_attendance="no-show")
    missed.loc[missed.index[::2], "appt_attendance"] = "cancelled"
    missed["visit_date"] = (
        pd.to_datetime(missed["visit_date"]) + pd.Timedelta(days=3)
    ).dt.strftime("%Y-%m-%d")
    keep = ["subject", "visit", "visit_date", "appt_attendance"]
    s = pd.concat([s, missed[keep]], ignore_index=True).sort_values(["subject", "visit"])
    return s.reset_index(drop=True), p


def test_resistance_roles_guessed_and_the_config_runs(tmp_path, monkeypatch):
    s, p = resistant_export("thase_rush_stage")
    text, raw = guessed_config(*write(tmp_path, s, p))
    cols = raw["columns"]
    assert (cols["prior_failed_trials"], cols["staging_score"], cols["episode_months"]) == (
        "PRIORTX", "thase_rush_stage", "episode_months",
    )  # fmt: skip
    assert (cols["attendance"], cols["doses_taken"], cols["doses_prescribed"]) == (
        "appt_attendance", "pills_taken", "pills_prescribed",
    )  # fmt: skip
    assert cols["self_report_symptom"] == "PHQ9_total" and raw["symptoms"]["column"] == "hamd"
    assert raw["codings"]["attendance"] == {
        "attended": "attended", "cancelled": "cancelled", "no-show": "no_show",
    }  # fmt: skip
    assert raw["treatment_resistance"]["staging_scale"] == "thase_rush"
    assert raw["treatment_resistance"]["staging_range"] == [0, 5]
    assert raw["self_report"] == {"label": "PHQ-9", "min": 0, "max": 27}
    assert "TODO" not in text
    cfg = validate_config(raw)
    monkeypatch.setenv("ALLIANCE_PSEUDONYM_KEY", "test-key-for-onboard-tests")
    cfg["alliance"]["instruments_dir"] = str(INSTRUMENTS)
    result = clean_trial(Settings.from_config(cfg).clean())
    assert result.schedule["missed"].sum() == 16  # one missed slot per patient
    assert result.availability["attendance"]["available"]
    assert result.availability["treatment_resistance"]["staging_scale"] == "thase_rush"


def test_mgh_staging_without_a_fixed_range_is_a_todo(tmp_path):
    s, p = resistant_export("MGH_S")
    text, raw = guessed_config(*write(tmp_path, s, p))
    assert raw["columns"]["staging_score"] == "MGH_S"
    assert raw["treatment_resistance"]["staging_scale"] == "mgh_s"
    assert str(raw["treatment_resistance"]["staging_range"]).startswith("TODO")


def test_qids_sr_beside_hamd_is_the_self_report(tmp_path):
    s, p = demo_like()
    s["QIDS_SR"] = np.random.default_rng(1).integers(0, 27, len(s))
    _, raw = guessed_config(*write(tmp_path, s, p))
    assert raw["columns"]["self_report_symptom"] == "QIDS_SR"
    assert raw["self_report"]["label"] == "QIDS-SR"


def test_a_phq9_alone_is_the_symptom_not_a_self_report(tmp_path):
    s, p = demo_like()
    s = s.rename(columns={"hamd": "PHQ9_total"}).assign(PHQ9_total=lambda d: d["PHQ9_total"] - 10)
    _, raw = guessed_config(*write(tmp_path, s, p))
    assert raw["symptoms"]["column"] == "PHQ9_total"
    assert "self_report_symptom" not in raw["columns"]


def test_failed_trials_by_name_and_content(tmp_path):
    s, p = demo_like()
    p["n_failed_trials"] = [i % 3 for i in range(len(p))]
    _, raw = guessed_config(*write(tmp_path, s, p))
    assert raw["columns"]["prior_failed_trials"] == "n_failed_trials"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("attended", "attended"), ("Attended", "attended"), ("no-show", "no_show"), ("DNA", "no_show"),
     ("not attended", "no_show"), ("cancelled", "cancelled"), ("Cancelled by patient", "cancelled"),
     ("rescheduled", "cancelled")],
)  # fmt: skip
def test_guess_attendance_coding(code, expected):
    assert guess_coding("attendance", code) == expected


@pytest.mark.parametrize("code", ["CBT+IMI", "SSRI_CBT", "IPT + medication"])
def test_drug_and_psychotherapy_arm_is_combination(code):
    assert guess_coding("arm", code) == "combination"
