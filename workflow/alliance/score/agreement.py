"""Agreement between patient- and therapist-rated alliance of the same session.

Pairs are patient x session with both a patient and a therapist score on the chosen scale.
Therapists usually rate fewer sessions than patients, so the sessions rated by one side only are
counted and reported, never silently dropped from the counts.

ICCs follow McGraw & Wong (1996, Psychol Methods 1:30) for n targets (pairs) x k = 2 raters,
from the two-way ANOVA mean squares MS_R (targets), MS_C (raters) and MS_E (residual):

    ICC(C,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E)                          consistency
    ICC(A,1) = (MS_R − MS_E) / (MS_R + (k − 1) MS_E + k/n (MS_C − MS_E))       absolute agreement

(pingouin's ICC3 and ICC2). The pooled row treats every patient x session pair as a target and
ignores that pairs of one patient are not independent: read its p-value as descriptive.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alliance.score.levels import select_score

K_RATERS = 2
# Scores are item means; two ratings closer than this are a tie (float noise, not a difference).
TIE_TOL = 1e-9
SESSION_COLUMNS = [
    "session", "n_pairs", "n_patient_only", "n_therapist_only", "mean_patient", "mean_therapist",
    "mean_diff", "sd_diff", "icc_a1", "icc_c1", "ms_targets", "ms_raters", "ms_error", "r",
    "r_p_value", "share_patient_higher", "share_equal", "share_therapist_higher",
]  # fmt: skip


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
    """Everything reported for one set of pairs (x = patient, y = therapist)."""
    n = len(x)
    d = x - y
    out: dict[str, Any] = {"n_pairs": n}
    out["mean_patient"] = float(x.mean()) if n else np.nan
    out["mean_therapist"] = float(y.mean()) if n else np.nan
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
    out["share_patient_higher"] = float(np.mean((d > 0) & ~tie)) if n else np.nan
    out["share_equal"] = float(np.mean(tie)) if n else np.nan
    out["share_therapist_higher"] = float(np.mean((d < 0) & ~tie)) if n else np.nan
    return out


def agreement(
    scores: pd.DataFrame,
    *,
    scale: str = "total",
    patient_instrument: str | None = None,
    therapist_instrument: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patient-therapist agreement per session and pooled, and per-patient means of the pairs.

    Returns `(per_session, per_patient)`. `per_session` has one row per session number (as text)
    plus `session = "pooled"` last; `n_patient_only` / `n_therapist_only` count ratings without a
    partner from the other side (missing scores are not ratings). `per_patient` gives, over the
    paired sessions only (so both means cover the same sessions), `mean_patient`,
    `mean_therapist`, `mean_diff` (patient − therapist) and `n_pairs`, plus the unpaired counts;
    patients without any pair have NaN means.
    """
    p = select_score(scores, rater="patient", scale=scale, instrument=patient_instrument)
    t = select_score(scores, rater="therapist", scale=scale, instrument=therapist_instrument)
    m = p.merge(t, on=["patient", "session"], how="outer", suffixes=("_p", "_t"))
    both = m["score_p"].notna() & m["score_t"].notna()
    m["patient_only"] = m["score_p"].notna() & m["score_t"].isna()
    m["therapist_only"] = m["score_t"].notna() & m["score_p"].isna()
    pairs = m.loc[both]

    rows = []
    for session, g in m.groupby("session", sort=True):
        g_pairs = g.loc[both.loc[g.index]]
        row = {"session": str(session)}
        row |= _pair_stats(g_pairs["score_p"].to_numpy(), g_pairs["score_t"].to_numpy())
        row["n_patient_only"] = int(g["patient_only"].sum())
        row["n_therapist_only"] = int(g["therapist_only"].sum())
        rows.append(row)
    pooled = {"session": "pooled"}
    pooled |= _pair_stats(pairs["score_p"].to_numpy(), pairs["score_t"].to_numpy())
    pooled["n_patient_only"] = int(m["patient_only"].sum())
    pooled["n_therapist_only"] = int(m["therapist_only"].sum())
    rows.append(pooled)
    per_session = pd.DataFrame(rows)[SESSION_COLUMNS]
    per_session["session"] = per_session["session"].astype("string")

    counts = m.groupby("patient", sort=True)[["patient_only", "therapist_only"]].sum()
    means = (
        pairs.assign(diff=pairs["score_p"] - pairs["score_t"])
        .groupby("patient", sort=True)
        .agg(
            n_pairs=("diff", "size"),
            mean_patient=("score_p", "mean"),
            mean_therapist=("score_t", "mean"),
            mean_diff=("diff", "mean"),
        )
    )
    per_patient = counts.join(means, how="left")
    per_patient["n_pairs"] = per_patient["n_pairs"].fillna(0).astype("int64")
    per_patient = per_patient.rename(
        columns={"patient_only": "n_patient_only", "therapist_only": "n_therapist_only"}
    ).astype({"n_patient_only": "int64", "n_therapist_only": "int64"})
    per_patient = per_patient.reset_index()[
        ["patient", "n_pairs", "mean_patient", "mean_therapist", "mean_diff",
         "n_patient_only", "n_therapist_only"]
    ]  # fmt: skip
    return per_session, per_patient
