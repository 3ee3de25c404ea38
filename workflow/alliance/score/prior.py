"""Prior-only alliance predictors: what is known about the alliance before session t.

Why: a predictor of the symptom score at session t must not use ratings made after t (the
whole-treatment patient mean does; so do within-centring and detrending over all sessions). On
the row of session t (`session_index`, the patient's attended sessions in order) these columns use
only ratings of sessions < t (docs/estimands.md):

- `{stem}_prior_pmean` P̄<t: the patient's mean rating over sessions < t;
- `{stem}_ther_prior` T̄<t − Ḡ<t: mean over the therapist's patients of their P̄<t (patients
  who left before t keep their mean over all their sessions), centred at the mean Ḡ<t of all
  patients' P̄<t; missing without therapist IDs;
- `{stem}_pat_prior` P̄<t − T̄<t (− Ḡ<t without therapist IDs);
- `{stem}_within_prior` A(t−1) − P̄<t: how the last attended session departed from the running
  mean (missing when session t−1 was not rated);
- `{stem}_within_dt_prior` A(t−1) minus the patient's OLS line through the ratings of sessions
  ≤ t−1 at t−1 (at least 3 ratings, else missing).

A(t−1) = Ḡ<t + ther + pat + within. Other patients' ratings enter the therapist mean by session
index, not by calendar date: a therapist's mean at index t uses their patients' sessions 1…t−1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance.score.levels import therapist_codes

MIN_DETREND = 3


def _grid(codes: np.ndarray, t: np.ndarray, values: np.ndarray, n: int, width: int) -> np.ndarray:
    """patients x session_index matrix of `values` (NaN where absent)."""
    out = np.full((n, width), np.nan)
    out[codes, t - 1] = values
    return out


def _prior_sums(x: np.ndarray) -> np.ndarray:
    """Column t holds the sum over columns < t (NaN counted as 0)."""
    cum = np.cumsum(np.nan_to_num(x), axis=1)
    return np.concatenate([np.zeros((x.shape[0], 1)), cum[:, :-1]], axis=1)


def prior_parts(
    table: pd.DataFrame, stem: str = "alliance", time: str = "session_index"
) -> pd.DataFrame:
    """`table` with the prior-only columns added (same rows, same order)."""
    t = pd.to_numeric(table[time]).to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(table["patient"], sort=False)
    n, width = int(codes.max()) + 1 if len(codes) else 0, int(t.max()) if len(t) else 0
    out = table.copy()
    names = ("prior_pmean", "ther_prior", "pat_prior", "within_prior", "within_dt_prior")
    if n == 0:
        for name in names:
            out[f"{stem}_{name}"] = np.array([], dtype=float)
        return out
    a = _grid(codes, t, table[stem].to_numpy(dtype=float), n, width)
    rated = ~np.isnan(a)
    count = _prior_sums(rated.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        pmean = np.where(count > 0, _prior_sums(a) / count, np.nan)
    # Leavers keep their running mean after their last session (they are still the therapist's
    # patients); a patient's own rows never reach those columns.
    pmean = pd.DataFrame(pmean).ffill(axis=1).to_numpy()
    seen = ~np.isnan(pmean)
    with np.errstate(invalid="ignore", divide="ignore"):
        grand = np.where(seen, pmean, 0.0).sum(axis=0, keepdims=True) / seen.sum(axis=0)
    centre, ther = _therapist_centre(table, codes, n, pmean, grand)
    prev = np.concatenate([np.full((n, 1), np.nan), a[:, :-1]], axis=1)
    pick = (codes, t - 1)
    out[f"{stem}_prior_pmean"] = pmean[pick]
    out[f"{stem}_ther_prior"] = ther[pick]
    out[f"{stem}_pat_prior"] = (pmean - centre)[pick]
    out[f"{stem}_within_prior"] = (prev - pmean)[pick]
    out[f"{stem}_within_dt_prior"] = _detrended_prior(a, prev)[pick]
    return out


def _therapist_centre(
    table: pd.DataFrame, codes: np.ndarray, n: int, pmean: np.ndarray, grand: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(centre of the patient part, therapist part), both patients x index matrices."""
    if "therapist" not in table.columns or table["therapist"].isna().all():
        centre = np.broadcast_to(grand, pmean.shape)
        return centre, np.full(pmean.shape, np.nan)
    t_codes = therapist_codes(table, codes, n)
    known = t_codes >= 0
    seen = ~np.isnan(pmean) & known[:, None]
    n_ther = int(t_codes.max()) + 1 if known.any() else 0
    sums = np.zeros((n_ther, pmean.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, t_codes[known], np.where(seen, pmean, 0.0)[known])
    np.add.at(counts, t_codes[known], seen[known].astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        tmean = sums / counts
    centre = np.full(pmean.shape, np.nan)
    centre[known] = tmean[t_codes[known]]
    return centre, centre - grand


def _detrended_prior(a: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """A(t−1) minus the OLS line through ratings of sessions ≤ t−1, evaluated at t−1."""
    x = np.arange(1, a.shape[1] + 1, dtype=float)[None, :]
    rated = ~np.isnan(a)
    y = np.where(rated, a, 0.0)
    w = rated.astype(float)
    # sums over sessions <= t-1 are the prior sums at column t
    s_n, s_x, s_y = _prior_sums(w), _prior_sums(w * x), _prior_sums(y)
    s_xx, s_xy = _prior_sums(w * x * x), _prior_sums(y * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        sxx = s_xx - s_x**2 / s_n
        slope = (s_xy - s_x * s_y / s_n) / sxx
        fitted = s_y / s_n + slope * ((x - 1) - s_x / s_n)
    usable = (s_n >= MIN_DETREND) & (sxx > 1e-12)
    return np.where(usable, prev - fitted, np.nan)


def error_variance(
    keyed: pd.DataFrame, members: list[int], answered: np.ndarray, scoring: str
) -> tuple[np.ndarray, float]:
    """Squared standard error of measurement of each row's scale score, and the item variance.

    The item error variance is the session x item residual mean square of the complete rows
    (two-way ANOVA without replication: item difficulty and the session's level removed), i.e.
    the variance of an item around its session's true level. A mean of k answered items has error
    variance σ²/k; a prorated sum over L items, L²σ²/k. Why: the RI-CLPM fixes the alliance's
    measurement error at this value, so its within-person alliance is the latent state.
    """
    x = keyed[[m for m in members if m in keyed.columns]].to_numpy(dtype=float)
    full = x[~np.isnan(x).any(axis=1)]
    n, k = full.shape
    if n < 2 or k < 2:
        return np.full(len(x), np.nan), float("nan")
    resid = full - full.mean(axis=1, keepdims=True) - full.mean(axis=0, keepdims=True) + full.mean()
    sigma2 = float((resid**2).sum() / ((n - 1) * (k - 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_row = np.where(answered > 0, sigma2 / answered, np.nan)
    if scoring == "sum":
        per_row = per_row * len(members) ** 2
    return per_row, sigma2
