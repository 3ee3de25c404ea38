"""Session scores, prorating counts and patient-level alliance on hand-worked examples."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import demo_config

from alliance.errors import ConfigError
from alliance.instruments.definition import load_instrument
from alliance.score.scales import (
    SCORE_COLUMNS,
    load_raters,
    patient_alliance,
    prorating_counts,
    score_alliance,
)
from alliance.settings import AllianceSettings

ROOT = Path(__file__).resolve().parents[1]
INSTRUMENTS = ROOT / "config" / "instruments"
WAI_SR = load_instrument("wai_sr", INSTRUMENTS)
WAI_SR_T = load_instrument("wai_sr_t", INSTRUMENTS)


def sessions_frame() -> pd.DataFrame:
    """Two patients; patient ratings always, therapist ratings partly missing.

    P-A session 1: patient items all 4 -> every scale 4.0; therapist items 1..12 = 1,2,..,5,1,..
    P-A session 2: patient items 1-2 missing (task has 2 of 4 -> missing; total 10 of 12 -> mean
                   of the other ten 5s = 5.0); therapist answered nothing -> no therapist rows.
    P-B session 3: patient items all 2, therapist items all 3.
    """
    rows = []
    ther_1 = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]
    for patient, session, idx, p_items, t_items in [
        ("P-A", 1, 1, [4] * 12, ther_1),
        ("P-A", 2, 2, [None, None] + [5] * 10, [None] * 12),
        ("P-B", 3, 1, [2] * 12, [3] * 12),
    ]:
        row = {"patient": patient, "session": float(session), "session_index": idx}
        for i in range(12):
            row[f"item_patient_{i + 1:02d}"] = np.nan if p_items[i] is None else p_items[i]
            row[f"item_therapist_{i + 1:02d}"] = np.nan if t_items[i] is None else t_items[i]
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["patient"] = frame["patient"].astype("str")
    return frame


RATERS = {"patient": WAI_SR, "therapist": WAI_SR_T}


def test_score_alliance_hand_values_and_layout():
    s = score_alliance(sessions_frame(), RATERS)
    assert list(s.columns) == SCORE_COLUMNS
    got = {(r.patient, r.session, r.rater, r.scale): (r.score, r.n_items) for r in s.itertuples()}
    assert got[("P-A", 1.0, "patient", "total")] == (4.0, 12)
    # Therapist session 1: goal 4,6,8,11 = 4,1,3,1; task 1,2,10,12 = 1,2,5,2;
    # bond 3,5,7,9 = 3,5,2,4.
    assert got[("P-A", 1.0, "therapist", "goal")] == (2.25, 4)
    assert got[("P-A", 1.0, "therapist", "task")] == (2.5, 4)
    assert got[("P-A", 1.0, "therapist", "bond")] == (3.5, 4)
    assert got[("P-A", 1.0, "therapist", "total")] == (33 / 12, 12)
    score, n = got[("P-A", 2.0, "patient", "task")]
    assert math.isnan(score) and n == 2
    assert got[("P-A", 2.0, "patient", "total")] == (5.0, 10)
    assert got[("P-A", 2.0, "patient", "goal")] == (5.0, 4)
    assert not any(k[:3] == ("P-A", 2.0, "therapist") for k in got)
    assert got[("P-B", 3.0, "therapist", "total")] == (3.0, 12)
    assert len(s) == 4 + 4 + 4 + 4 + 4
    assert s["instrument"].tolist()[:8] == ["wai_sr"] * 4 + ["wai_sr_t"] * 4
    assert s["scale"].tolist()[:4] == ["goal", "task", "bond", "total"]


def test_score_alliance_is_deterministic_under_row_order():
    frame = sessions_frame()
    shuffled = frame.sample(frac=1, random_state=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(score_alliance(frame, RATERS), score_alliance(shuffled, RATERS))


def test_score_alliance_skips_raters_without_columns():
    frame = sessions_frame().drop(columns=[f"item_therapist_{i:02d}" for i in range(1, 13)])
    s = score_alliance(frame, RATERS)
    assert set(s["rater"]) == {"patient"}
    empty = score_alliance(frame[["patient", "session"]], RATERS)
    assert list(empty.columns) == SCORE_COLUMNS and empty.empty


def test_prorating_counts():
    counts = prorating_counts(score_alliance(sessions_frame(), RATERS))
    row = counts.set_index(["rater", "scale"])
    assert row.loc[("patient", "task"), "rated_sessions"] == 3
    assert row.loc[("patient", "task"), "set_missing"] == 1
    assert row.loc[("patient", "task"), "share_missing"] == pytest.approx(1 / 3)
    assert row.loc[("patient", "total"), "set_missing"] == 0
    assert row.loc[("therapist", "total"), "rated_sessions"] == 2


def hand_scores() -> tuple[pd.DataFrame, pd.DataFrame]:
    """P-A: indices 1-5 (sessions 1-5) scores 4, 5, missing, 6, 3. P-B: one score 2 at session 3."""
    sessions = pd.DataFrame(
        {
            "patient": ["P-A"] * 5 + ["P-B"],
            "session": [1.0, 2.0, 3.0, 4.0, 5.0, 3.0],
            "session_index": [1, 2, 3, 4, 5, 1],
        }
    )
    scores = pd.DataFrame(
        {
            "patient": ["P-A"] * 5 + ["P-B"],
            "session": [1.0, 2.0, 3.0, 4.0, 5.0, 3.0],
            "rater": "patient",
            "instrument": "wai_sr",
            "scale": "total",
            "score": [4.0, 5.0, np.nan, 6.0, 3.0, 2.0],
            "n_items": [12, 12, 3, 12, 12, 12],
        }
    )
    return scores, sessions


def test_patient_alliance_hand_example():
    scores, sessions = hand_scores()
    out = patient_alliance(scores, sessions).set_index("patient")
    a = out.loc["P-A"]
    # early: indices 1-3 rated = 4, 5 -> 4.5; mean (4+5+6+3)/4; last = index 5 -> 3.
    # slope: x = 1,2,4,5 (mean 3), y = 4,5,6,3 (mean 4.5): sxy = -1, sxx = 10 -> -0.1.
    assert (a["early"], a["mean"], a["last"], a["n_rated"], a["n_early"]) == (4.5, 4.5, 3.0, 4, 2)
    assert a["slope"] == pytest.approx(-0.1)
    b = out.loc["P-B"]
    assert (b["early"], b["mean"], b["last"], b["n_rated"]) == (2.0, 2.0, 2.0, 1)
    assert math.isnan(b["slope"])


def test_patient_alliance_named_session_uses_the_recorded_session_number():
    scores, sessions = hand_scores()
    out = patient_alliance(scores, sessions, early_session=3).set_index("patient")
    assert math.isnan(out.loc["P-A", "early"]) and out.loc["P-A", "n_early"] == 0  # prorated out
    assert out.loc["P-B", "early"] == 2.0  # session 3 is P-B's first attended session
    two = patient_alliance(scores, sessions, early_session=2).set_index("patient")
    assert two.loc["P-A", "early"] == 5.0 and math.isnan(two.loc["P-B", "early"])


def test_patient_alliance_other_index_and_bad_window():
    scores, sessions = hand_scores()
    sessions["weeks"] = [0.0, 2.0, 4.0, 6.0, 8.0, 0.0]
    out = patient_alliance(scores, sessions, index_column="weeks", early_window=(0, 2))
    a = out.set_index("patient").loc["P-A"]
    assert a["early"] == 4.5 and a["slope"] == pytest.approx(-0.05)  # weeks = 2 x index - 2
    with pytest.raises(ConfigError, match="early window"):
        patient_alliance(scores, sessions, early_window=(3, 1))
    with pytest.raises(ConfigError, match="index column"):
        patient_alliance(scores, sessions, index_column="visit_week")


def test_pipeline_from_items_to_patient_level():
    s = score_alliance(sessions_frame(), RATERS)
    out = patient_alliance(s, sessions_frame())
    task = out.set_index(["patient", "rater", "scale"]).loc[("P-A", "patient", "task")]
    assert (task["mean"], task["n_rated"]) == (4.0, 1)  # session 2's task score was prorated out


def test_load_raters_warns_on_unverified_keys():
    block = copy.deepcopy(demo_config()["alliance"])
    block["instruments_dir"] = str(INSTRUMENTS)
    match = "therapist instrument 'wai_sr_t'.*UNVERIFIED.*allow_unverified_keys lists it"
    with pytest.warns(UserWarning, match=match):
        raters = load_raters(AllianceSettings.from_mapping(block))
    assert set(raters) == {"patient", "therapist", "observer"}
    assert raters["patient"].name == "wai_sr" and raters["observer"].name == "demo_observer"
    block["raters"]["therapist"] = block["raters"]["observer"] = None
    assert set(load_raters(AllianceSettings.from_mapping(block))) == {"patient"}


def test_load_raters_rejects_an_instrument_with_nothing_to_score(tmp_path):
    (tmp_path / "empty.yaml").write_text(
        "name: empty\nitems: 3\nrange: [1, 5]\nsubscales: {}\ntotal: false\n"
    )
    block = {"instruments_dir": str(tmp_path), "instruments": {}, "allow_unverified_keys": [],
             "raters": {"patient": {"instrument": "empty", "items": "^x_(\\d+)$"}}}  # fmt: skip
    with pytest.raises(ConfigError, match="nothing to score"):
        load_raters(AllianceSettings.from_mapping(block))


@pytest.mark.slow
def test_scoring_scales_to_600k_session_rows():
    import time

    rng = np.random.default_rng(20261127)
    n_patients, n_sessions = 30_000, 20
    n = n_patients * n_sessions
    data = {
        "patient": pd.array(np.repeat([f"P-{i:05d}" for i in range(n_patients)], n_sessions)),
        "session": np.tile(np.arange(1.0, n_sessions + 1), n_patients),
        "session_index": np.tile(np.arange(1, n_sessions + 1), n_patients),
    }
    for rater in ("patient", "therapist"):
        for i in range(1, 13):
            v = rng.integers(1, 6, n).astype(float)
            v[rng.random(n) < 0.1] = np.nan
            data[f"item_{rater}_{i:02d}"] = v
    frame = pd.DataFrame(data)
    start = time.perf_counter()
    s = score_alliance(frame, RATERS)
    patient_alliance(s, frame)
    assert time.perf_counter() - start < 30
    assert len(s) > 4_700_000


def _observer_run(cfg: dict):
    """Clean and score stages of `cfg`, and the symptoms_observer_early frame (or why skipped)."""
    from alliance.clean.stage import clean_trial
    from alliance.models.base import Skipped
    from alliance.models.frames import model_frame
    from alliance.models.spec import load_specs
    from alliance.score.stage import run_score
    from alliance.settings import Settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the therapist key's UNVERIFIED notice
        settings = Settings.from_config(cfg)
        clean = clean_trial(settings.clean())
        scored = run_score(clean.sessions, clean.patients, settings.score_stage())
    spec = next(s for s in load_specs(settings.models) if s.id == "symptoms_observer_early")
    try:
        frame, _ = model_frame(spec, scored.analysis, scored.patient_analysis, clean.availability)
    except Skipped as why:
        frame = str(why)
    return clean, scored, frame


def test_observer_ratings_reach_agreement_and_the_analysis_tables(trial_config):
    clean, scored, frame = _observer_run(trial_config)
    assert clean.availability["raters"]["observer"]["available"]
    pairs = scored.agreement[["rater_a", "rater_b"]].drop_duplicates().apply(tuple, axis=1)
    assert pairs.tolist() == [
        ("patient", "therapist"), ("patient", "observer"), ("therapist", "observer")
    ]  # fmt: skip
    rel = scored.reliability
    assert set(rel.loc[rel["rater"] == "observer", "instrument"]) == {"demo_observer"}
    assert "alliance_o" in scored.analysis and "alliance_o_early" in scored.patient_analysis
    o = scored.scores[(scored.scores["rater"] == "observer") & (scored.scores["scale"] == "total")]
    both = scored.analysis.merge(o, on=["patient", "session"])
    np.testing.assert_allclose(both["alliance_o"], both["score"])
    assert isinstance(frame, pd.DataFrame) and "alliance_o_early" in frame


def test_without_observer_ratings_the_observer_model_says_why(trial_config):
    s = pd.read_csv(trial_config["data"]["sessions"])
    s.drop(columns=[c for c in s if c.startswith("obs_")]).to_csv(
        trial_config["data"]["sessions"], index=False
    )
    clean, scored, frame = _observer_run(trial_config)
    reason = "observer-rated alliance: no item responses in the data"
    assert clean.availability["raters"]["observer"] == {"available": False, "reason": reason}
    assert frame == f"needs raters.observer: {reason}"
    assert set(scored.agreement["rater_b"]) == {"therapist"}
    assert not any(c.startswith("alliance_o") for c in scored.patient_analysis.columns)
