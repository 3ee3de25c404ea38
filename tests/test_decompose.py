"""Three-level decomposition of alliance: hand values, the identity, lags, detrending, variances."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from alliance.errors import InputError
from alliance.models.icc import variance_decomposition
from alliance.score.levels import decompose, score_stem, select_score


def sessions_and_scores(plan: dict[str, tuple[str | None, dict[int, float | None]]]):
    """Session table + long patient-rated scores from {patient: (therapist, {session: score})}.

    A score of None is an attended session without a rating.
    """
    srows, arows = [], []
    for patient, (therapist, series) in plan.items():
        for idx, (session, score) in enumerate(sorted(series.items()), start=1):
            srows.append(
                {"patient": patient, "therapist": therapist, "session": session,
                 "session_index": idx, "weeks": float(session), "symptom": 20.0 - session,
                 "baseline_symptom": 21.0}
            )  # fmt: skip
            if score is not None:
                arows.append(
                    {"patient": patient, "session": session, "rater": "patient",
                     "instrument": "wai_sr", "scale": "total", "score": score, "n_items": 12}
                )  # fmt: skip
    return pd.DataFrame(srows), pd.DataFrame(arows)


# T1 has P1 (4 rated sessions, mean 4) and P2 (2 rated, mean 2); T2 has P3 (mean 3).
PLAN = {
    "P1": ("T1", {1: 3.0, 2: 4.0, 3: 5.0, 4: 4.0}),
    "P2": ("T1", {1: 1.0, 2: 3.0, 3: None}),
    "P3": ("T2", {1: 3.5, 2: 2.5, 4: 3.0, 5: None, 6: 3.0}),
}


def test_parts_match_hand_values_and_add_up_to_the_score():
    s, a = sessions_and_scores(PLAN)
    out = decompose(s, a).set_index(["patient", "session"])
    # therapist T1 = mean of patient means (4 + 2) / 2 = 3, not the session mean 20/6 = 3.33
    assert out.loc[("P1", 1), "a_ther"] == 3.0
    assert out.loc[("P1", 1), "a_pat"] == 1.0
    assert out.loc[("P2", 3), "a_pat"] == -1.0  # patient-level parts fill unrated rows too
    assert np.isnan(out.loc[("P2", 3), "a_within"])
    assert out.loc[("P3", 2), "a_ther"] == 3.0 and out.loc[("P3", 2), "a_pat"] == 0.0
    assert out.loc[("P1", 3), "a_within"] == 1.0
    assert out.loc[("P1", 1), "a_n_rated"] == 4 and out.loc[("P2", 1), "a_n_rated"] == 2
    rated = out["a"].notna()
    total = out.loc[rated, "a_ther"] + out.loc[rated, "a_pat"] + out.loc[rated, "a_within"]
    np.testing.assert_allclose(total, out.loc[rated, "a"], rtol=0, atol=1e-12)
    assert len(out) == len(s)  # every session row, rated or not


def test_identity_holds_on_random_unbalanced_data():
    rng = np.random.default_rng(11)
    plan = {}
    for i in range(60):
        n = int(rng.integers(1, 12))
        sessions = np.sort(rng.choice(np.arange(1, 20), n, replace=False))
        plan[f"P{i:02d}"] = (
            f"T{i % 7}",
            {
                int(k): (None if rng.random() < 0.2 else float(rng.normal(3.7, 0.6)))
                for k in sessions
            },
        )
    s, a = sessions_and_scores(plan)
    out = decompose(s, a)
    rated = out["a"].notna()
    total = out["a_ther"] + out["a_pat"] + out["a_within"]
    np.testing.assert_allclose(total[rated], out.loc[rated, "a"], rtol=0, atol=1e-12)
    # within parts average to zero inside each patient; patient parts to zero inside therapist
    assert out.loc[rated].groupby("patient")["a_within"].sum().abs().max() < 1e-12
    pm = out.loc[rated].groupby("patient").agg(t=("therapist", "first"), pat=("a_pat", "first"))
    assert pm.groupby("t")["pat"].sum().abs().max() < 1e-12


def test_without_therapists_the_patient_part_is_centred_at_the_grand_mean():
    s, a = sessions_and_scores(PLAN)
    out = decompose(s.drop(columns="therapist"), a)
    assert out["a_ther"].isna().all()
    grand = (4.0 + 2.0 + 3.0) / 3
    assert out.attrs["decomposition"]["grand_mean"] == pytest.approx(grand)
    p1 = out[out["patient"] == "P1"].iloc[0]
    assert p1["a_pat"] == pytest.approx(4.0 - grand)
    rated = out["a"].notna()
    np.testing.assert_allclose(
        grand + out.loc[rated, "a_pat"] + out.loc[rated, "a_within"],
        out.loc[rated, "a"],
        atol=1e-12,
    )
    # an all-missing therapist column means the same
    out2 = decompose(s.assign(therapist=pd.NA), a)
    np.testing.assert_allclose(out2["a_pat"], out["a_pat"])


def test_patient_without_therapist_in_a_trial_with_therapists_gets_no_patient_part():
    plan = dict(PLAN) | {"P4": (None, {1: 2.0, 2: 2.0})}
    s, a = sessions_and_scores(plan)
    out = decompose(s, a)
    p4 = out[out["patient"] == "P4"]
    assert p4["a_ther"].isna().all() and p4["a_pat"].isna().all()
    assert (p4["a_within"] == 0).all()
    assert out.attrs["decomposition"]["patients_without_therapist"] == 1


def test_lags_never_bridge_a_missing_or_unrated_session():
    s, a = sessions_and_scores(PLAN)
    out = decompose(s, a).set_index(["patient", "session"])
    assert out.loc[("P1", 2), "a_lag1"] == 3.0
    assert out.loc[("P1", 2), "a_within_lag1"] == -1.0
    assert np.isnan(out.loc[("P1", 1), "a_lag1"])  # first session
    assert np.isnan(out.loc[("P3", 4), "a_lag1"])  # session 3 missing: no bridge from 2
    assert np.isnan(out.loc[("P3", 6), "a_lag1"])  # session 5 attended but not rated
    assert out.loc[("P2", 3), "a_lag1"] == 3.0  # lag exists on an unrated row
    assert out.loc[("P2", 2), "symptom_lag1"] == 19.0
    assert np.isnan(out.loc[("P3", 4), "symptom_lag1"])
    assert out.loc[("P3", 6), "symptom_change"] == (20.0 - 6) - 21.0
    # a wider lag_gap for trials assessed every second session bridges exactly one missing one
    wide = decompose(s, a, lag_gap=2).set_index(["patient", "session"])
    assert wide.loc[("P3", 4), "a_lag1"] == 2.5


def test_detrending_removes_each_patients_line_and_flags_short_series():
    rng = np.random.default_rng(3)
    y = 3.0 + 0.1 * np.arange(1, 9) + rng.normal(0, 0.2, 8)
    plan = {
        "P1": ("T1", {k + 1: float(v) for k, v in enumerate(y)}),
        "P2": ("T1", {1: 3.0, 2: 3.5, 3: 4.0}),  # exactly linear
        "P3": ("T2", {1: 2.0, 2: 3.0}),  # too short to detrend
    }
    s, a = sessions_and_scores(plan)
    out = decompose(s, a).set_index(["patient", "session"])
    x = np.arange(1, 9)
    fitted = np.polyval(np.polyfit(x, y, 1), x)
    np.testing.assert_allclose(out.loc["P1", "a_within_detrended"], y - fitted, atol=1e-12)
    np.testing.assert_allclose(out.loc["P2", "a_within_detrended"], 0.0, atol=1e-12)
    assert not out.loc["P1", "a_detrend_fallback"].any()
    assert out.loc["P3", "a_detrend_fallback"].all()
    np.testing.assert_array_equal(out.loc["P3", "a_within_detrended"], out.loc["P3", "a_within"])
    assert out.loc[("P1", 2), "a_within_detrended_lag1"] == out.loc[("P1", 1), "a_within_detrended"]
    plain = decompose(s, a, detrend=False)
    assert not any("detrend" in c for c in plain.columns)


def test_stem_names_every_column_for_tables_with_several_scores():
    s, a = sessions_and_scores(PLAN)
    stem = score_stem("wai_sr", "patient", "total")
    assert stem == "wai_sr_p_total"
    out = decompose(s, a, stem=stem)
    for suffix in ("", "_ther", "_pat", "_within", "_within_detrended", "_lag1", "_within_lag1"):
        assert f"wai_sr_p_total{suffix}" in out.columns
    assert "a" not in out.columns


def test_bad_inputs_name_the_problem():
    s, a = sessions_and_scores(PLAN)
    with pytest.raises(InputError, match="more than once"):
        decompose(pd.concat([s, s.iloc[[0]]]), a)
    orphan = pd.concat([a, a.iloc[[0]].assign(session=99)])
    with pytest.raises(InputError, match="no row of the session table"):
        decompose(s, orphan)
    with pytest.raises(InputError, match="no therapist-rated"):
        decompose(s, a, rater="therapist")
    with pytest.raises(InputError, match="twice"):
        select_score(pd.concat([a, a.iloc[[0]]]), rater="patient")
    conflict = s.copy()
    conflict.loc[conflict.index[1], "therapist"] = "T9"
    with pytest.raises(InputError, match="more than one therapist"):
        decompose(conflict, a)


# --------------------------------------------------------------------------- variances
def three_level(seed: int, n_ther: int = 30, per_ther: int = 8, n_sess: int = 6) -> pd.DataFrame:
    """Sessions in patients in therapists with known variances 0.04 / 0.16 / 0.09."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_ther), per_ther * n_sess)
    p = np.repeat(np.arange(n_ther * per_ther), n_sess)
    y = (
        3.7
        + rng.normal(0, 0.2, n_ther)[t]
        + rng.normal(0, 0.4, n_ther * per_ther)[p]
        + rng.normal(0, 0.3, len(p))
    )
    return pd.DataFrame(
        {"therapist": [f"T{i}" for i in t], "patient": [f"P{i}" for i in p], "a": y}
    )


def test_three_level_components_match_statsmodels_mixedlm():
    data = three_level(5)
    out = variance_decomposition(data).set_index("level")
    assert out["model"].iloc[0] == "three-level"
    assert bool(out["converged"].iloc[0]) and not bool(out["singular"].iloc[0])
    assert out["n"].to_dict() == {"therapist": 30, "patient": 240, "session": 1440}
    assert out["share"].sum() == pytest.approx(1.0)
    # statsmodels needs the top level as groups with re_formula="1" and the nested level as a
    # variance component, or it silently drops the therapist intercept
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm(
            "a ~ 1", data, groups="therapist", re_formula="1",
            vc_formula={"patient": "0 + C(patient)"},
        ).fit(reml=True)  # fmt: skip
    ref = {"therapist": sm.cov_re.iloc[0, 0], "patient": sm.vcomp[0], "session": sm.scale}
    for level, value in ref.items():
        assert out.loc[level, "variance"] == pytest.approx(value, rel=1e-3)
    total = sum(ref.values())
    for level, value in ref.items():
        assert out.loc[level, "share"] == pytest.approx(value / total, rel=1e-3)
    assert "only" not in out.loc["therapist", "note"]


def test_two_level_fallback_without_therapists_matches_statsmodels():
    data = three_level(9, n_ther=8).drop(columns="therapist")
    out = variance_decomposition(data).set_index("level")
    assert out["model"].iloc[0] == "two-level"
    assert "no therapist IDs" in out["note"].iloc[0]
    assert list(out.index) == ["patient", "session"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = smf.mixedlm("a ~ 1", data, groups="patient").fit(reml=True)
    assert out.loc["patient", "variance"] == pytest.approx(sm.cov_re.iloc[0, 0], rel=1e-3)
    assert out.loc["session", "variance"] == pytest.approx(sm.scale, rel=1e-3)


def test_few_therapists_are_noted_and_missing_scores_left_out():
    data = three_level(2, n_ther=6)
    data.loc[::7, "a"] = np.nan
    out = variance_decomposition(data)
    assert "only 6 therapists" in out["note"].iloc[0]
    assert out.set_index("level").loc["session", "n"] == int(data["a"].notna().sum())


def test_decompose_output_feeds_the_variance_decomposition():
    s, a = sessions_and_scores(PLAN | {"P4": ("T2", {1: 2.0, 2: 4.0, 3: 3.0})})
    out = variance_decomposition(decompose(s, a, stem="wai_sr_p_total"), column="wai_sr_p_total")
    assert out["column"].iloc[0] == "wai_sr_p_total"
    assert out.set_index("level").loc["session", "n"] == 13  # 4 + 2 + 4 + 3 rated sessions


@pytest.mark.slow
def test_decompose_handles_600k_rows_in_seconds():
    rng = np.random.default_rng(1)
    n_pat, n_sess = 40_000, 15
    pid = np.repeat(np.arange(n_pat), n_sess)
    s = pd.DataFrame(
        {
            "patient": pd.Series([f"P{i:05d}" for i in range(n_pat)])[pid].to_numpy(),
            "therapist": pd.Series([f"T{i:04d}" for i in range(2000)])[
                rng.integers(0, 2000, n_pat)[pid]
            ].to_numpy(),
            "session": np.tile(np.arange(1, n_sess + 1), n_pat),
        }
    )
    s["session_index"] = s["session"]
    a = s[["patient", "session"]].assign(
        rater="patient", instrument="wai_sr", scale="total", n_items=12,
        score=rng.normal(3.7, 0.5, len(s)),
    )  # fmt: skip
    start = time.perf_counter()
    out = decompose(s, a)
    assert time.perf_counter() - start < 10.0
    assert len(out) == 600_000
