"""Population-level predictions from a fitted model's files (coefficients, frame, covariance).

Figures overlay model curves on observed means that pool every arm, so the curve must describe
the same mix: factor 0/1 columns are held at their sample means by default (`factors="mean"`),
not at the reference level. The confidence band needs the fixed-effect covariance
(`vcov.csv`); without it the curve is drawn alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from alliance.render.figures.common import NothingToDraw

INTERCEPT = "(Intercept)"


def dummy_columns(fit: Mapping[str, Any]) -> set[str]:
    """The 0/1 factor columns of the model frame (fit.json `frame.factors`)."""
    factors = ((fit.get("frame") or {}).get("factors")) or {}
    return {c for f in factors.values() for c in (f.get("columns") or {}).values() if c}


def held_values(
    terms: list[str],
    frame: pd.DataFrame | None,
    fit: Mapping[str, Any],
    varying: set[str],
    *,
    factors: str = "mean",
) -> dict[str, float]:
    """Value of each design column not in `varying`: numeric columns at their mean over the
    model frame; factor 0/1 columns at their mean too (`factors="mean"`, the sample's mix) or
    at 0 (`"reference"`). NaN when the frame does not have the column."""
    dummies = dummy_columns(fit)
    parts = {p for t in terms if t != INTERCEPT for p in t.split(":")} - varying
    out = {}
    for part in sorted(parts):
        in_frame = frame is not None and part in frame.columns
        if part in dummies and (factors == "reference" or not in_frame):
            out[part] = 0.0
        elif in_frame:
            out[part] = float(pd.to_numeric(frame[part], errors="coerce").mean())
        else:
            out[part] = np.nan
    return out


def design(terms: list[str], values: Mapping[str, np.ndarray | float], n: int) -> np.ndarray:
    """Fixed-effect design rows: 1 for the intercept, the product of column values per term."""
    cols = []
    for term in terms:
        col = np.ones(n)
        if term != INTERCEPT:
            for part in term.split(":"):
                col = col * np.asarray(values[part], dtype=float)
        cols.append(col)
    return np.column_stack(cols)


def vcov_matrix(vcov: pd.DataFrame | None, terms: list[str]) -> np.ndarray | None:
    """The covariance of `terms` from vcov.csv (first column = row names), or None."""
    if vcov is None or vcov.empty:
        return None
    v = vcov.set_index(vcov.columns[0])
    v.index = v.index.astype(str)
    if not set(terms) <= set(v.index) or not set(terms) <= set(v.columns):
        return None
    return v.loc[terms, terms].to_numpy(dtype=float)


def predict(
    coefficients: pd.DataFrame,
    fit: Mapping[str, Any],
    values: Mapping[str, np.ndarray],
    *,
    frame: pd.DataFrame | None = None,
    vcov: pd.DataFrame | None = None,
    link: str = "identity",
    factors: str = "mean",
    level: float = 0.95,
) -> pd.DataFrame:
    """Predictions at `values` (column -> array, all one length) with everything else held.

    Returns columns fit, ci_low, ci_high on the response scale (logit link: probabilities);
    the CI is NaN without a usable covariance.
    """
    terms = coefficients["term"].astype(str).tolist()
    n = len(next(iter(values.values())))
    held = held_values(terms, frame, fit, set(values), factors=factors)
    unknown = [k for k, v in held.items() if np.isnan(v)]
    if unknown:
        raise NothingToDraw(f"cannot hold {', '.join(unknown)} fixed: not in frame.parquet")
    X = design(terms, {**held, **values}, n)
    eta = X @ coefficients["estimate"].to_numpy(dtype=float)
    lo = hi = np.full(n, np.nan)
    V = vcov_matrix(vcov, terms)
    if V is not None:
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
        z = float(special.ndtri(0.5 + level / 2))
        lo, hi = eta - z * se, eta + z * se
    inverse = (lambda x: 1.0 / (1.0 + np.exp(-x))) if link == "logit" else (lambda x: x)
    return pd.DataFrame({"fit": inverse(eta), "ci_low": inverse(lo), "ci_high": inverse(hi)})
