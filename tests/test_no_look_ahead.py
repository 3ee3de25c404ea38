"""No look-ahead: values after session t never change a predictor or model row of sessions <= t.

Every symptom score, suicide item, alliance item, pill count and self-report of attended sessions
after t is replaced by random values (attendance is left alone: when a patient stopped coming is
the dropout outcome, and missed scheduled sessions carry no values); the clean
and score stages and the model frames of every default session-level model are rebuilt, and all
rows of sessions <= t must be identical (docs/estimands.md).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURE_KEY, ROOT, demo_config

from alliance.clean.stage import clean_trial
from alliance.models.base import Skipped
from alliance.models.frames import model_frame
from alliance.models.spec import load_specs
from alliance.score.stage import run_score
from alliance.settings import Settings

CUTS = (2, 4, 7)
SESSION_COLUMNS = (
    "alliance", "alliance_lag1", "alliance_prior_pmean", "alliance_ther_prior",
    "alliance_pat_prior", "alliance_within_prior", "alliance_within_dt_prior", "symptom",
    "symptom_lag1", "symptom_rest", "ideation", "baseline_symptom", "weeks",
    # treatment resistance (docs/estimands.md)
    "missed_before", "missed_prior", "adherence", "self_report_symptom", "self_report_pomp",
    "symptom_pomp", "report_discrepancy",
    # ruptures known before the session (a drop's yardstick uses changes into sessions <= it)
    "rupture_unrepaired_prior", "rupture_repaired_prior",
    # the observer's rating of the session's recording (an outcome-time value like `alliance`)
    "alliance_o",
)  # fmt: skip
# Properties of the instrument, not of a session: the pooled item error variance (estimated from
# every item response, like a published reliability) is used only in model-level corrections (the
# RI-CLPM's fixed error variance, the hazard's regression calibration), never as a row predictor.
MEASUREMENT_CONSTANTS = ("alliance_error_var",)
# Measured during the early window (sessions 1..3 in the demo config), so fixed once t >= 3.
PATIENT_COLUMNS = (
    "alliance_early", "symptom_early", "symptom_early_change", "attended_after_early",
    "alliance_o_early",
)  # fmt: skip


def _perturbed(sessions: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Random symptom, suicide item, alliance items (patient, therapist, observer), pills taken
    and self-report on every attended session after t."""
    rng = np.random.default_rng(seed)
    out = sessions.copy()
    later = (out["visit"] > t) & out["attendance"].eq("attended")
    n = int(later.sum())
    pills = later & out["pills_prescribed"].notna()
    out.loc[pills, "pills_taken"] = rng.integers(0, 1 + out.loc[pills, "pills_prescribed"])
    out.loc[later, "phq9_total"] = rng.integers(0, 28, n)
    hamd = rng.integers(0, 40, n)
    out.loc[later, "hamd"] = hamd
    out.loc[later, "hamd_suicide"] = np.minimum(rng.integers(0, 5, n), hamd)
    for col in [c for c in out.columns if c.startswith(("wai_p_", "wai_t_", "obs_"))]:
        out.loc[later, col] = rng.integers(1, 6, n)
    return out


def _stages(folder, sessions: pd.DataFrame):
    sessions.to_csv(folder / "sessions.csv", index=False)
    cfg = copy.deepcopy(demo_config())
    cfg["data"]["sessions"] = str(folder / "sessions.csv")
    cfg["data"]["patients"] = str(ROOT / "data" / "demo" / "patients.csv")
    cfg["alliance"]["instruments_dir"] = str(ROOT / "config" / "instruments")
    cfg["privacy"]["key"] = FIXTURE_KEY
    settings = Settings.from_config(cfg)
    clean = clean_trial(settings.clean())
    scored = run_score(clean.sessions, clean.patients, settings.score_stage())
    return scored.analysis, scored.patient_analysis, clean.availability, settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    demo = pd.read_csv(ROOT / "data" / "demo" / "sessions.csv")
    out = {}
    for t in (0, *CUTS):
        folder = tmp_path_factory.mktemp(f"cut{t}")
        out[t] = _stages(folder, demo if t == 0 else _perturbed(demo, t, seed=t))
    return out


def _upto(frame: pd.DataFrame, t: int) -> pd.DataFrame:
    rows = frame[frame["session_index"] <= t].sort_values(["patient", "session_index"])
    return rows.reset_index(drop=True)


@pytest.mark.parametrize("t", CUTS)
def test_session_predictors_ignore_later_sessions(runs, t):
    base, cut = _upto(runs[0][0], t), _upto(runs[t][0], t)
    assert len(base) == len(cut) > 0
    cols = [c for c in SESSION_COLUMNS if c in base.columns]
    assert len(cols) == len(SESSION_COLUMNS), set(SESSION_COLUMNS) - set(cols)
    pd.testing.assert_frame_equal(base[cols], cut[cols])
    # the check can fail: the whole-treatment patient mean of these same rows does change
    assert not np.allclose(base["alliance_pat"], cut["alliance_pat"])
    # and the perturbation did reach the later rows
    later = runs[t][0][runs[t][0]["session_index"] > t]
    assert not np.allclose(
        later["symptom"].to_numpy(), runs[0][0].loc[later.index, "symptom"].to_numpy()
    )


@pytest.mark.parametrize("t", [c for c in CUTS if c >= 3])
def test_patient_predictors_fixed_after_the_window(runs, t):
    key = ["patient", *PATIENT_COLUMNS]
    base = runs[0][1][key].sort_values("patient").reset_index(drop=True)
    cut = runs[t][1][key].sort_values("patient").reset_index(drop=True)
    pd.testing.assert_frame_equal(base, cut)


def _frames(run, spec):
    sessions, patients, availability, settings = run
    codings = settings.codings
    try:
        frame, _ = model_frame(
            spec, sessions, patients, availability,
            arms=codings.arm, arm_reference=codings.arm_reference,
        )  # fmt: skip
    except Skipped:
        return None
    return frame


def _indexed(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The frame with each row's session_index (hazard: its period, the last attended session of
    a slot row too; others: by patient x weeks)."""
    if "period" in frame.columns:
        return frame.assign(session_index=frame["period"].astype(int))
    key = table[["patient", "weeks", "session_index"]]
    out = frame.merge(key, on=["patient", "weeks"], how="left", validate="many_to_one")
    assert out["session_index"].notna().all()
    return out


@pytest.mark.parametrize("t", CUTS)
def test_default_model_rows_ignore_later_sessions(runs, t):
    """Every row (outcome and predictors) of sessions <= t in every session-level model frame."""
    specs = load_specs(runs[0][3].models)
    checked = []
    for spec in specs:
        if spec.data != "sessions" or spec.kind not in ("lmm", "glmm", "hazard"):
            continue
        base, cut = _frames(runs[0], spec), _frames(runs[t], spec)
        if base is None:
            continue
        b, c = _upto(_indexed(base, runs[0][0]), t), _upto(_indexed(cut, runs[t][0]), t)
        b, c = (f.drop(columns=list(MEASUREMENT_CONSTANTS), errors="ignore") for f in (b, c))
        assert len(b) == len(c), spec.id
        pd.testing.assert_frame_equal(b, c, obj=spec.id)
        checked.append(spec.id)
    new = {"missed_sessions", "adherence_alliance", "reporting_alliance", "symptoms_by_trd",
           "dropout_hazard_by_trd", "symptoms_by_stage", "dropout_hazard_by_stage",
           "symptoms_after_ruptures", "missed_after_ruptures",
           "dropout_after_ruptures"}  # fmt: skip
    assert {"dropout_hazard", "symptoms_growth", *new} <= set(checked), checked
