"""Patient-therapist agreement: ICCs by hand and against pingouin, unbalanced pair counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from alliance.errors import InputError
from alliance.score.agreement import agreement, icc_two_raters

# Shrout & Fleiss (1979, Psychol Bull 86:420) Table 2, judges 1 and 2 only: 6 targets x 2 raters.
SF_PATIENT = [9, 6, 8, 7, 10, 6]
SF_THERAPIST = [2, 1, 4, 1, 5, 2]


def long_scores(rows: list[tuple[str, int, str, float]], scale: str = "total") -> pd.DataFrame:
    """Score table from (patient, session, rater, score) tuples."""
    frame = pd.DataFrame(rows, columns=["patient", "session", "rater", "score"])
    frame["instrument"] = np.where(frame["rater"] == "patient", "wai_sr", "wai_sr_t")
    frame["scale"] = scale
    frame["n_items"] = 12
    return frame


def paired(x: list[float], y: list[float], session: int = 1) -> list[tuple[str, int, str, float]]:
    rows = [(f"P{i}", session, "patient", float(v)) for i, v in enumerate(x)]
    return rows + [(f"P{i}", session, "therapist", float(v)) for i, v in enumerate(y)]


def test_icc_matches_hand_computed_anova_mean_squares():
    # By hand: grand mean 61/12; patient mean 46/6, therapist mean 15/6.
    # SS_targets = 2 * sum((row mean - grand)^2) = 23.41667 -> MS_R = 281/60
    # SS_raters = 6 * ((46/6 - 61/12)^2 + (15/6 - 61/12)^2) = 961/12 -> MS_C = 961/12
    # SS_total = 106.91667, SS_error = 3.41667 -> MS_E = 41/60
    # ICC(C,1) = (MS_R - MS_E) / (MS_R + MS_E) = 240/322 = 120/161
    # ICC(A,1) = (MS_R - MS_E) / (MS_R + MS_E + 2/6 (MS_C - MS_E)) = 720/5730 = 24/191
    per_session, _ = agreement(long_scores(paired(SF_PATIENT, SF_THERAPIST)))
    row = per_session.set_index("session").loc["1"]
    assert row["ms_targets"] == pytest.approx(281 / 60, rel=1e-12)
    assert row["ms_raters"] == pytest.approx(961 / 12, rel=1e-12)
    assert row["ms_error"] == pytest.approx(41 / 60, rel=1e-12)
    assert row["icc_c1"] == pytest.approx(120 / 161, rel=1e-12)
    assert row["icc_a1"] == pytest.approx(24 / 191, rel=1e-12)
    # the therapist rates 5.17 points lower: consistent, but far from absolute agreement
    assert row["mean_diff"] == pytest.approx(31 / 6)


# pingouin 0.7 calls a pandas method deprecated in pandas 3.1 (not our code)
@pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")
def test_icc_matches_pingouin_per_session_and_pooled():
    rng = np.random.default_rng(7)
    rows = []
    for session in (1, 2, 3):
        true = rng.normal(3.7, 0.5, 25)
        x = np.round(true + rng.normal(0, 0.3, 25), 3)
        y = np.round(true + 0.2 + rng.normal(0, 0.4, 25), 3)
        rows += [(f"P{i}", session, "patient", x[i]) for i in range(25)]
        rows += [(f"P{i}", session, "therapist", y[i]) for i in range(25)]
    scores = long_scores(rows)
    per_session, _ = agreement(scores)
    wide = scores.pivot_table(index=["patient", "session"], columns="rater", values="score")
    for label, part in [*((str(s), wide.xs(s, level="session")) for s in (1, 2, 3)),
                        ("pooled", wide.reset_index(drop=True))]:  # fmt: skip
        part = part.reset_index(drop=True)
        long = part.reset_index(names="target").melt(
            id_vars="target", var_name="rater", value_name="score"
        )
        ref = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score")
        ref = ref.set_index("Type")["ICC"]
        row = per_session.set_index("session").loc[label]
        assert row["icc_a1"] == pytest.approx(ref["ICC(A,1)"], rel=1e-10)  # pingouin ICC2
        assert row["icc_c1"] == pytest.approx(ref["ICC(C,1)"], rel=1e-10)  # pingouin ICC3
        r = stats.pearsonr(part["patient"], part["therapist"])
        assert row["r"] == pytest.approx(r.statistic, rel=1e-12)
        assert row["r_p_value"] == pytest.approx(r.pvalue, rel=1e-9)
        d = part["patient"] - part["therapist"]
        assert row["sd_diff"] == pytest.approx(d.std(ddof=1), rel=1e-12)
    assert per_session["session"].tolist() == ["1", "2", "3", "pooled"]
    assert per_session["n_pairs"].tolist() == [25, 25, 25, 75]


def test_unbalanced_ratings_are_counted_not_dropped():
    rows = [
        # P1: patient rates sessions 1-4, therapist 1 and 3 -> 2 pairs, 2 patient-only
        ("P1", 1, "patient", 4.0), ("P1", 2, "patient", 3.5), ("P1", 3, "patient", 3.0),
        ("P1", 4, "patient", 4.5), ("P1", 1, "therapist", 3.0), ("P1", 3, "therapist", 3.0),
        # P2: therapist rates session 5 the patient skipped; patient score missing at session 3
        ("P2", 1, "patient", 2.0), ("P2", 1, "therapist", 2.5), ("P2", 3, "patient", np.nan),
        ("P2", 3, "therapist", 4.0), ("P2", 5, "therapist", 4.0),
        # P3: patient only
        ("P3", 1, "patient", 5.0),
    ]  # fmt: skip
    per_session, per_patient = agreement(long_scores(rows))
    s = per_session.set_index("session")
    assert s.loc["1", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [2, 1, 0]
    assert s.loc["3", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [1, 0, 1]
    assert s.loc["5", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [0, 0, 1]
    assert s.loc["pooled", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [3, 3, 2]
    # one pair: no ICC, no SD, no r
    assert np.isnan(s.loc["3", ["icc_a1", "icc_c1", "sd_diff", "r"]].astype(float)).all()
    assert np.isnan(s.loc["5", "mean_diff"])
    p = per_patient.set_index("patient")
    assert p.loc["P1", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [2, 2, 0]
    # means over the paired sessions only: patient (4 + 3) / 2, therapist 3
    assert p.loc["P1", "mean_patient"] == 3.5 and p.loc["P1", "mean_therapist"] == 3.0
    assert p.loc["P1", "mean_diff"] == 0.5
    assert p.loc["P2", ["n_pairs", "n_patient_only", "n_therapist_only"]].tolist() == [1, 0, 2]
    assert p.loc["P2", "mean_diff"] == -0.5
    assert p.loc["P3", "n_pairs"] == 0 and np.isnan(p.loc["P3", "mean_patient"])


def test_direction_shares_count_ties_separately():
    x = [4.0, 3.0, 3.25, 2.0, 5.0]
    y = [3.0, 3.0, 3.25, 2.5, 4.0]
    per_session, _ = agreement(long_scores(paired(x, y)))
    row = per_session.iloc[0]
    assert row["share_patient_higher"] == pytest.approx(2 / 5)
    assert row["share_equal"] == pytest.approx(2 / 5)
    assert row["share_therapist_higher"] == pytest.approx(1 / 5)
    assert row["mean_diff"] == pytest.approx(np.mean(np.subtract(x, y)))


def test_constant_ratings_give_no_correlation_and_icc_function_needs_two_targets():
    per_session, _ = agreement(long_scores(paired([3.0, 3.0, 3.0], [2.0, 4.0, 3.0])))
    assert np.isnan(per_session.iloc[0]["r"])
    assert np.isnan(icc_two_raters(np.array([1.0]), np.array([2.0]))["icc_a1"])


def test_ambiguous_instrument_is_refused():
    scores = long_scores(paired([3.0, 4.0], [3.0, 4.0]))
    extra = scores[scores["rater"] == "patient"].assign(instrument="haq2")
    with pytest.raises(InputError, match="several instruments"):
        agreement(pd.concat([scores, extra]))
    per_session, _ = agreement(pd.concat([scores, extra]), patient_instrument="haq2")
    assert per_session.iloc[-1]["n_pairs"] == 2
