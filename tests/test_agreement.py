"""Rater agreement: ICCs by hand, against pingouin and against R's psych::ICC on the demo's three
rater pairs (tests/reference/make_agreement_reference.R), unbalanced pair counts, every rater pair
(patient, therapist, observer) on the sessions both rated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats

from alliance.errors import InputError
from alliance.score.agreement import (
    AGREEMENT_COLUMNS,
    PAIR_COLUMNS,
    PT_NAMES,
    SESSION_COLUMNS,
    agreement,
    all_pairs_agreement,
    icc_two_raters,
    pair_agreement,
    rater_pairs,
)

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


def three_rater_scores() -> pd.DataFrame:
    """Patient rates sessions 1-4, therapist 1-3, observer 1, 3 and 4 (P2 misses session 3's
    recording, P3 has no observer rating at all)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(6):
        for s in (1, 2, 3, 4):
            rows.append((f"P{i}", s, "patient", float(rng.normal(3.8, 0.5))))
            if s <= 3:
                rows.append((f"P{i}", s, "therapist", float(rng.normal(3.9, 0.4))))
            if s in (1, 3, 4) and i != 3 and not (i == 2 and s == 3):
                rows.append((f"P{i}", s, "observer", float(rng.normal(3.5, 0.6))))
    frame = long_scores(rows)
    frame.loc[frame["rater"] == "observer", "instrument"] = "demo_observer"
    return frame


def test_every_rater_pair_is_compared_on_the_sessions_both_rated():
    scores = three_rater_scores()
    table = all_pairs_agreement(scores, ["observer", "therapist", "patient"])
    assert list(table.columns) == AGREEMENT_COLUMNS
    pairs = table[["rater_a", "rater_b"]].drop_duplicates().apply(tuple, axis=1).tolist()
    assert pairs == [("patient", "therapist"), ("patient", "observer"), ("therapist", "observer")]
    pooled = table[table["session"] == "pooled"].set_index(["rater_a", "rater_b"])
    # patient-observer: 6 patients x 3 sessions, minus P3 (none) and P2's session 3 = 14 pairs
    po = pooled.loc[("patient", "observer")]
    assert (po["n_pairs"], po["n_a_only"], po["n_b_only"]) == (14, 10, 0)
    assert (po["n_patients"], po["sessions"]) == (5, "1;3;4")
    # therapist-observer: only sessions 1 and 3 are rated by both; session 4 is observer-only
    to = pooled.loc[("therapist", "observer")]
    assert (to["n_pairs"], to["n_patients"], to["sessions"]) == (9, 5, "1;3")
    assert to["n_b_only"] == 5  # the observer's session-4 ratings have no therapist partner
    s4 = table[(table["rater_a"] == "therapist") & (table["session"] == "4")].iloc[0]
    assert s4["n_pairs"] == 0 and s4["sessions"] == "" and np.isnan(s4["icc_a1"])
    # the statistics of a pair are those of the two-rater function on its pairs
    wide = scores.pivot_table(index=["patient", "session"], columns="rater", values="score")
    both = wide[["patient", "observer"]].dropna()
    ref = icc_two_raters(both["patient"].to_numpy(), both["observer"].to_numpy())
    assert po["icc_a1"] == pytest.approx(ref["icc_a1"], rel=1e-12)
    assert po["mean_diff"] == pytest.approx((both["patient"] - both["observer"]).mean())


def test_patient_therapist_rows_are_the_two_rater_agreement_unchanged():
    scores = three_rater_scores()
    table = all_pairs_agreement(scores, ["patient", "therapist", "observer"])
    pt = table[(table["rater_a"] == "patient") & (table["rater_b"] == "therapist")]
    per_session, _ = agreement(scores)
    renamed = pt[PAIR_COLUMNS].rename(columns=PT_NAMES).reset_index(drop=True)
    pd.testing.assert_frame_equal(renamed, per_session.reset_index(drop=True))
    assert list(per_session.columns) == SESSION_COLUMNS


def test_pairs_need_two_raters_and_follow_the_rater_order():
    scores = three_rater_scores()
    empty = all_pairs_agreement(scores, ["patient"])
    assert empty.empty and list(empty.columns) == AGREEMENT_COLUMNS
    assert rater_pairs(["observer", "patient"]) == [("patient", "observer")]
    per_session, per_patient = pair_agreement(scores, "therapist", "observer")
    p3 = per_patient.set_index("patient").loc["P3"]
    assert p3["n_pairs"] == 0 and p3["n_a_only"] == 3 and np.isnan(p3["mean_b"])


# ---- against R (psych 2.2.9): tests/reference/make_agreement_reference.R ---------------------
REF = Path(__file__).resolve().parent / "reference"
R_STATS = ("n_pairs", "icc_a1", "icc_c1", "ms_targets", "ms_raters", "ms_error", "r",
           "mean_diff", "sd_diff")  # fmt: skip


def demo_pairs() -> pd.DataFrame:
    """The demo's total scores per patient x session and rater, every third patient (sorted
    pseudonyms), rows with at least two raters; identifiers dropped (the fixture's input)."""
    import warnings

    from alliance.clean.stage import clean_trial
    from alliance.config import load_config
    from alliance.score.scales import load_raters
    from alliance.score.stage import score_tables
    from alliance.settings import Settings

    root = REF.parents[1]
    cfg = load_config(root / "config" / "config.yaml")
    for key in ("sessions", "patients"):
        cfg["data"][key] = str(root / cfg["data"][key])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the therapist key's UNVERIFIED notice
        settings = Settings.from_config(cfg)
        clean = clean_trial(settings.clean())
        stage = settings.score_stage()
        scores, _ = score_tables(clean.sessions, load_raters(stage.alliance), stage.score)
    total = scores[(scores["scale"] == "total") & scores["score"].notna()]
    total = total.rename(columns={"patient": "who"})
    wide = total.pivot_table(index=["who", "session"], columns="rater", values="score")
    wide = wide.rename_axis(columns=None).reset_index()
    wide = wide[wide["who"].isin(sorted(wide["who"].unique())[::3])]
    raters = ["patient", "therapist", "observer"]
    wide = wide[wide[raters].notna().sum(axis=1) >= 2]
    return wide[["session", *raters]].reset_index(drop=True)


def _r_reference() -> pd.DataFrame:
    ref = pd.read_csv(REF / "agreement_reference.csv", keep_default_na=False)
    return ref.pivot_table(index=["case", "section"], columns="stat", values="value")


def test_every_pair_matches_psych_icc_on_the_demo():
    pairs = pd.read_csv(REF / "agreement_pairs.csv")
    rows = []
    for k, rec in enumerate(pairs.itertuples(index=False)):
        rows += [(f"T{k}", int(rec.session), r, getattr(rec, r))
                 for r in ("patient", "therapist", "observer")]  # fmt: skip
    scores = long_scores(rows).dropna(subset=["score"])
    ours = all_pairs_agreement(scores, ["patient", "therapist", "observer"])
    ours = ours.assign(case=ours["rater_a"] + "-" + ours["rater_b"], section=ours["session"])
    ours = ours.set_index(["case", "section"])
    ref = _r_reference()
    assert set(ref.index.get_level_values("case")) == {
        "patient-therapist", "patient-observer", "therapist-observer"
    }  # fmt: skip
    assert len(ref) > 3  # per-session rows too
    for key, want in ref.iterrows():
        got = ours.loc[key]
        for stat in R_STATS:
            assert got[stat] == pytest.approx(want[stat], rel=1e-10, abs=1e-12), (key, stat)


if __name__ == "__main__":  # write the fixture's input from the demo
    demo_pairs().to_csv(REF / "agreement_pairs.csv", index=False, float_format="%.17g")
    print(REF / "agreement_pairs.csv")
