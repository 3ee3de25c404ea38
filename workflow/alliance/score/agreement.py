"""Agreement between two raters' alliance scores of the same session, for every rater pair.

Pairs are patient x session with both raters' scores on the chosen scale (patient-therapist,
patient-observer, therapist-observer: whichever raters the data have). Therapists and observers
usually rate fewer sessions than patients, so the sessions rated by one side only are counted and
reported, never silently dropped from the counts, and each pair's pooled row names the sessions
and patients it rests on.

ICCs follow McGraw & Wong (1996, Psychol Methods 1:30) for n targets (pairs) x k = 2 raters,
from the two-way ANOVA mean squares MS_R (targets), MS_C (raters) and MS_E (residual):

    ICC(C,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E)                          consistency
    ICC(A,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E + k/n (MS_C − MS_E))       absolute agreement

(pingouin's ICC3 and ICC2). The pooled row treats every patient x session pair as a target and
ignores that pairs of one patient are not independent: read its p-value as descriptive.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.score.levels import select_score

K_RATERS = 2
# Scores are item means; two ratings closer than this are a tie (float noise, not a difference).
TIE_TOL = 1e-9
RATER_ORDER = ("patient", "therapist", "observer")
# One pair's statistics; `a` / `b` are the pair's first and second rater in RATER_ORDER.
PAIR_COLUMNS = [
    "session", "n_pairs", "n_a_only", "n_b_only", "mean_a", "mean_b", "mean_diff", "sd_diff",
    "icc_a1", "icc_c1", "ms_targets", "ms_raters", "ms_error", "r", "r_p_value",
    "share_a_higher", "share_equal", "share_b_higher",
]  # fmt: skip
# agreement.csv: every pair's per-session and pooled rows; the pooled row also counts the
# patients and lists the sessions (";"-joined numbers) that have at least one pair.
AGREEMENT_COLUMNS = ["rater_a", "rater_b", *PAIR_COLUMNS, "n_patients", "sessions"]
# The patient-therapist view (`agreement`): the generic names spelled with the raters.
PT_NAMES = {
    "n_a_only": "n_patient_only", "n_b_only": "n_therapist_only", "mean_a": "mean_patient",
    "mean_b": "mean_therapist", "share_a_higher": "share_patient_higher",
    "share_b_higher": "share_therapist_higher",
}  # fmt: skip
SESSION_COLUMNS = [PT_NAMES.get(c, c) for c in PAIR_COLUMNS]


def icc_two_raters(patient: np.ndarray, therapist: np.ndarray) -> dict[str, float]:
    """ICC(A,1), ICC(C,1) and the ANOVA mean squares for n targets rated by two raters."""
    y = np.column_stack([np.asarray(patient, float), np.asarray(therapist, float)])
    n = len(y)
    if n < 2:
        return {"icc_a1": np.nan, "icc_c1": np.nan, "ms_targets": np.nan,
                "ms_raters": np.nan, "ms_error": np.nan}  # fmt: skip
    grand = y.mean()
    ss_targets = K_RATERS * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_raters = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((y - grand) ** 2) - ss_targets - ss_raters
    ms_r = ss_targets / (n - 1)
    ms_c = ss_raters / (K_RATERS - 1)
    ms_e = max(ss_error, 0.0) / ((n - 1) * (K_RATERS - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        icc_c = (ms_r - ms_e) / (ms_r + (K_RATERS - 1) * ms_e)
        icc_a = (ms_r - ms_e) / (ms_r + (K_RATERS - 1) * ms_e + K_RATERS / n * (ms_c - ms_e))
    return {"icc_a1": float(icc_a), "icc_c1": float(icc_c), "ms_targets": float(ms_r),
            "ms_raters": float(ms_c), "ms_error": float(ms_e)}  # fmt: skip


def _pair_stats(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Everything reported for one set of pairs (x = rater a, y = rater b)."""
    n = len(x)
    d = x - y
    out: dict[str, Any] = {"n_pairs": n}
    out["mean_a"] = float(x.mean()) if n else np.nan
    out["mean_b"] = float(y.mean()) if n else np.nan
    out["mean_diff"] = float(d.mean()) if n else np.nan
    out["sd_diff"] = float(d.std(ddof=1)) if n >= 2 else np.nan
    out |= icc_two_raters(x, y)
    # Pearson r needs 3 pairs (2 give r = ±1 with p = 1) and variation on both sides.
    if n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        res = stats.pearsonr(x, y)
        out["r"], out["r_p_value"] = float(res.statistic), float(res.pvalue)
    else:
        out["r"], out["r_p_value"] = np.nan, np.nan
    tie = np.abs(d) <= TIE_TOL
    out["share_a_higher"] = float(np.mean((d > 0) & ~tie)) if n else np.nan
    out["share_equal"] = float(np.mean(tie)) if n else np.nan
    out["share_b_higher"] = float(np.mean((d < 0) & ~tie)) if n else np.nan
    return out


def pair_agreement(
    scores: pd.DataFrame,
    rater_a: str,
    rater_b: str,
    *,
    scale: str = "total",
    instruments: Mapping[str, str | None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement of `rater_a` with `rater_b` per session and pooled, and per-patient pair means.

    Returns `(per_session, per_patient)` with PAIR_COLUMNS plus `n_patients` and `sessions` (the
    pooled row: patients and ";"-joined session numbers with at least one pair; a session row:
    its patients with a pair, its own number when it has a pair). `per_session` has one row per
    session number (as text) plus `session = "pooled"` last; `n_a_only` / `n_b_only` count
    ratings without a partner (missing scores are not ratings). `per_patient` gives, over the
    paired sessions only (so both means cover the same sessions), `mean_a`, `mean_b`,
    `mean_diff` (a − b) and `n_pairs`, plus the unpaired counts; patients without any pair have
    NaN means. `instruments` picks a rater's instrument when it has the scale on several.
    """
    chosen = dict(instruments or {})
    a = select_score(scores, rater=rater_a, scale=scale, instrument=chosen.get(rater_a))
    b = select_score(scores, rater=rater_b, scale=scale, instrument=chosen.get(rater_b))
    m = a.merge(b, on=["patient", "session"], how="outer", suffixes=("_a", "_b"))
    both = m["score_a"].notna() & m["score_b"].notna()
    m["a_only"] = m["score_a"].notna() & m["score_b"].isna()
    m["b_only"] = m["score_b"].notna() & m["score_a"].isna()
    pairs = m.loc[both]

    def row(label: str, g: pd.DataFrame, g_pairs: pd.DataFrame) -> dict[str, Any]:
        out = {"session": label}
        out |= _pair_stats(g_pairs["score_a"].to_numpy(), g_pairs["score_b"].to_numpy())
        out["n_a_only"] = int(g["a_only"].sum())
        out["n_b_only"] = int(g["b_only"].sum())
        out["n_patients"] = int(g_pairs["patient"].nunique())
        rated = pd.to_numeric(g_pairs["session"]).drop_duplicates().sort_values()
        out["sessions"] = ";".join(str(v) for v in rated)
        return out

    rows = [
        row(str(session), g, g.loc[both.loc[g.index]])
        for session, g in m.groupby("session", sort=True)
    ]
    rows.append(row("pooled", m, pairs))
    per_session = pd.DataFrame(rows)[[*PAIR_COLUMNS, "n_patients", "sessions"]]
    per_session["session"] = per_session["session"].astype("string")

    counts = m.groupby("patient", sort=True)[["a_only", "b_only"]].sum()
    means = (
        pairs.assign(diff=pairs["score_a"] - pairs["score_b"])
        .groupby("patient", sort=True)
        .agg(
            n_pairs=("diff", "size"),
            mean_a=("score_a", "mean"),
            mean_b=("score_b", "mean"),
            mean_diff=("diff", "mean"),
        )
    )
    per_patient = counts.join(means, how="left")
    per_patient["n_pairs"] = per_patient["n_pairs"].fillna(0).astype("int64")
    per_patient = per_patient.rename(columns={"a_only": "n_a_only", "b_only": "n_b_only"}).astype(
        {"n_a_only": "int64", "n_b_only": "int64"}
    )
    per_patient = per_patient.reset_index()[
        ["patient", "n_pairs", "mean_a", "mean_b", "mean_diff", "n_a_only", "n_b_only"]
    ]
    return per_session, per_patient


def agreement(
    scores: pd.DataFrame,
    *,
    scale: str = "total",
    patient_instrument: str | None = None,
    therapist_instrument: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient-therapist agreement (`pair_agreement`) with the columns named after the raters:
    `n_patient_only`, `mean_therapist`, `share_patient_higher`, ... (SESSION_COLUMNS)."""
    per_session, per_patient = pair_agreement(
        scores, "patient", "therapist", scale=scale,
        instruments={"patient": patient_instrument, "therapist": therapist_instrument},
    )  # fmt: skip
    return (
        per_session[PAIR_COLUMNS].rename(columns=PT_NAMES),
        per_patient.rename(columns=PT_NAMES),
    )


def rater_pairs(raters: list[str]) -> list[tuple[str, str]]:
    """Every pair of `raters`, each in RATER_ORDER (patient first, observer last)."""
    ordered = sorted(raters, key=lambda r: (RATER_ORDER.index(r) if r in RATER_ORDER else 99, r))
    return list(combinations(ordered, 2))


def all_pairs_agreement(
    scores: pd.DataFrame, raters: list[str], *, scale: str = "total"
) -> pd.DataFrame:
    """agreement.csv: `pair_agreement` of every pair of `raters` stacked (AGREEMENT_COLUMNS),
    pairs in RATER_ORDER; empty with those columns when fewer than two raters are given."""
    blocks = [
        pair_agreement(scores, a, b, scale=scale)[0].assign(rater_a=a, rater_b=b)
        for a, b in rater_pairs(raters)
    ]
    if not blocks:
        return pd.DataFrame(columns=AGREEMENT_COLUMNS)
    return pd.concat(blocks, ignore_index=True)[AGREEMENT_COLUMNS]
