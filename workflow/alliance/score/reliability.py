"""Internal consistency of the alliance scales: Cronbach's alpha, McDonald's omega, item-rest r.

Reliability is computed on reverse-keyed items (the same keying as the scores) with listwise
complete cases, per session and pooled over sessions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import f as f_dist

from alliance.instruments.definition import Instrument
from alliance.instruments.items import keyed_items
from alliance.score.scales import rater_item_columns

POOLED = "pooled"
POOLING_NOTE = (
    "all session rows stacked; the same patients contribute several rows, so rows are not "
    "independent and the CI is too narrow"
)
TABLE_COLUMNS = [
    "instrument", "rater", "scale", "session", "n", "n_items", "alpha", "alpha_ci_low",
    "alpha_ci_high", "omega", "min_item_rest", "mean_item_rest", "pooling", "note", "key_status",
]  # fmt: skip


def _complete(items: pd.DataFrame) -> np.ndarray:
    values = items.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return values[~np.isnan(values).any(axis=1)]


def cronbach_alpha(items: pd.DataFrame, ci: float = 0.95) -> tuple[float, float, float, int]:
    """(alpha, ci_low, ci_high, n) from listwise complete cases.

    The CI is Feldt's F-based interval, computed as `pingouin.cronbach_alpha` does (df1 = n - 1,
    df2 = (n - 1)(k - 1)), but unrounded and with n = the complete cases actually used. NaN when
    alpha is undefined (fewer than 2 items or complete cases, or no variance in the total).
    """
    x = _complete(items)
    n, k = x.shape
    if k < 2 or n < 2:
        return np.nan, np.nan, np.nan, int(n)
    cov = np.cov(x, rowvar=False)
    total_var = cov.sum()
    if not total_var > 0:
        return np.nan, np.nan, np.nan, int(n)
    alpha = k / (k - 1) * (1 - np.trace(cov) / total_var)
    tail = (1 - ci) / 2
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * f_dist.isf(tail, df1, df2)
    high = 1 - (1 - alpha) * f_dist.isf(1 - tail, df1, df2)
    return float(alpha), float(low), float(high), int(n)


def _minres_loadings(r: np.ndarray) -> np.ndarray:
    """One-factor minimum-residual loadings: least squares on the off-diagonal correlations."""
    upper = np.triu_indices(r.shape[0], 1)
    vals, vecs = np.linalg.eigh(r)
    start = vecs[:, -1] * np.sqrt(vals[-1])
    start = start if start.sum() >= 0 else -start
    fit = least_squares(lambda lam: (r - np.outer(lam, lam))[upper], start, method="lm")
    lam = fit.x
    return lam if lam.sum() >= 0 else -lam


def _ml_loadings(r: np.ndarray, n: int) -> np.ndarray:
    from statsmodels.multivariate.factor import Factor

    fit = Factor(corr=r, n_factor=1, method="ml", nobs=n).fit()
    lam = np.asarray(fit.loadings).ravel()
    return lam if lam.sum() >= 0 else -lam


def mcdonald_omega(items: pd.DataFrame, method: str = "minres") -> float:
    """Omega total from a one-factor model of the item correlations (listwise complete cases).

    omega = (sum lambda)^2 / ((sum lambda)^2 + sum psi), psi = 1 - lambda^2 (model-implied total
    variance; psych::omega divides by the observed variance instead, equal when the model fits).
    `method="minres"` (psych's default: least squares on off-diagonal correlations, own code) or
    `"ml"` (statsmodels `Factor`, maximum likelihood as R `factanal`). Needs >= 3 items (one factor
    is not identified with 2); NaN otherwise or when an item has no variance. Heywood cases
    (lambda^2 > 1) are clipped to psi = 0.
    """
    x = _complete(items)
    n, k = x.shape
    if k < 3 or n <= k:
        return np.nan
    sd = x.std(axis=0, ddof=1)
    if not np.all(sd > 0):
        return np.nan
    r = np.corrcoef(x, rowvar=False)
    if method == "minres":
        lam = _minres_loadings(r)
    elif method == "ml":
        lam = _ml_loadings(r, n)
    else:
        raise ValueError(f"omega method {method!r} is not one of 'minres', 'ml'")
    psi = np.clip(1 - lam**2, 0, None)
    common = lam.sum() ** 2
    return float(common / (common + psi.sum()))


def item_rest(items: pd.DataFrame) -> pd.Series:
    """Corrected item-total correlations: each item with the sum of the other items (listwise)."""
    x = _complete(items)
    total = x.sum(axis=1)
    out = {}
    for j, name in enumerate(items.columns):
        rest = total - x[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = len(x) >= 2 and x[:, j].std() > 0 and rest.std() > 0
            out[name] = float(np.corrcoef(x[:, j], rest)[0, 1]) if ok else np.nan
    return pd.Series(out, dtype=float, name="item_rest")


def _row(items: pd.DataFrame, min_cases: int) -> dict[str, object]:
    """Reliability statistics of one item block, with a note when they are undefined."""
    k = items.shape[1]
    n = int(items.notna().all(axis=1).sum())
    row: dict[str, object] = {"n": n, "n_items": k, "note": ""}
    nan = dict.fromkeys(
        ["alpha", "alpha_ci_low", "alpha_ci_high", "omega", "min_item_rest", "mean_item_rest"],
        np.nan,
    )
    if k < 2:
        return row | nan | {"note": "fewer than 2 items: no internal consistency"}
    if n < min_cases:
        return row | nan | {"note": f"fewer than {min_cases} complete cases"}
    alpha, low, high, _ = cronbach_alpha(items)
    rest = item_rest(items)
    row |= {
        "alpha": alpha,
        "alpha_ci_low": low,
        "alpha_ci_high": high,
        "omega": mcdonald_omega(items),
        "min_item_rest": rest.min(),
        "mean_item_rest": rest.mean(),
    }
    if k < 3:
        row["note"] = "2 items: omega not identified"
    elif np.isnan(alpha) or rest.isna().any():
        row["note"] = "an item or the total has no variance"
    return row


def reliability_table(
    sessions: pd.DataFrame,
    raters: dict[str, Instrument],
    *,
    by_session: bool = True,
    min_cases: int = 10,
) -> pd.DataFrame:
    """Alpha (Feldt CI), omega (minres) and item-rest r per instrument x rater x scale x session.

    Items are reverse-keyed first. `session` holds the recorded session number as text, plus a
    `pooled` row per scale computed on all session rows stacked (see the `pooling` column: rows of
    one patient are not independent, so its CI is too narrow). Blocks with fewer than 2 items or
    fewer than `min_cases` complete cases get NaN statistics and a `note`. `key_status` says
    whether the instrument's scoring key is confirmed (the report flags an unverified one).
    """
    rows: list[dict[str, object]] = []
    session_no = pd.to_numeric(sessions["session"], errors="coerce")
    nums = sorted(session_no.dropna().unique()) if by_session else []
    for rater, inst in raters.items():
        columns = rater_item_columns(sessions, rater)
        if not columns:
            continue
        keyed = keyed_items(sessions, columns, inst)
        for scale, members in inst.scales():
            absent = [m for m in members if m not in keyed.columns]
            block = keyed[[m for m in members if m in keyed.columns]]
            ident = {"instrument": inst.name, "rater": rater, "scale": scale,
                     "key_status": inst.key_status}  # fmt: skip
            parts = [(f"{v:g}", "per session", block[(session_no == v).to_numpy()]) for v in nums]
            for label, pooling, part in [*parts, (POOLED, POOLING_NOTE, block)]:
                row = ident | {"session": label, "pooling": pooling} | _row(part, min_cases)
                if absent:
                    missing = f"items {', '.join(map(str, absent))} not in the data"
                    row["note"] = "; ".join(filter(None, [missing, str(row["note"])]))
                rows.append(row)
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out["session"] = out["session"].astype("str")
    return out
