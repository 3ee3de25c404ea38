"""Tests of any linear combination L'beta of a mixed model's fixed effects (lmerTest contest1D).

LMMs: t test with Satterthwaite df computed exactly as lmerTest::contest1D(model, L,
ddf = "Satterthwaite") does, from the pieces `fit_lmm` keeps (inference.Satterthwaite):
df = 2 (L'VL)^2 / (g'Ag), g_i = L' (dV/dvarpar_i) L. For L a unit vector this is the df of the
coefficient table. GLMMs have no Satterthwaite df: Wald z tests (df reported as NaN, test "z").
A covariance other than the model's (a cluster-robust one) needs its own df; see
alliance.models.contrasts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from alliance.engine.mixed.result import MixedFit
from alliance.engine.tidy import coef_table
from alliance.errors import InputError

CONTEST_COLUMNS = [
    "estimate", "std_error", "df", "statistic", "p_value", "ci_low", "ci_high", "test",
]  # fmt: skip


def contrast_vector(fit: MixedFit, weights: Mapping[str, float] | Sequence[float]) -> np.ndarray:
    """L aligned with the fit's coefficients: a sequence in coefficient order, or term -> weight
    (absent terms weigh 0; a name that is not a coefficient is an error)."""
    terms = list(fit.coefficients["term"])
    if isinstance(weights, Mapping):
        unknown = [t for t in weights if t not in terms]
        if unknown:
            raise InputError(
                f"not coefficients of the model: {unknown}; have {terms}", check="contest.terms"
            )
        return np.array([float(weights.get(t, 0.0)) for t in terms])
    vec = np.asarray(weights, dtype=float).ravel()
    if len(vec) != len(terms):
        raise InputError(
            f"L has {len(vec)} weights for {len(terms)} coefficients", check="contest.length"
        )
    return vec


def satterthwaite_df(fit: MixedFit, weights: Mapping[str, float] | Sequence[float]) -> float:
    """Satterthwaite df of L'beta (LMM); Inf for a GLMM (Wald z); NaN when unavailable."""
    if fit.family != "gaussian":
        return np.inf
    if fit._satterthwaite is None:
        return np.nan
    return float(fit._satterthwaite.df(contrast_vector(fit, weights)))


def contest1d(
    fit: MixedFit,
    weights: Mapping[str, float] | Sequence[float],
    *,
    rhs: float = 0.0,
    level: float = 0.95,
) -> pd.Series:
    """lmerTest contest1D of H0: L'beta = rhs: estimate, SE, df, t (or z), p and CI.

    Index CONTEST_COLUMNS; `test` is "t" (LMM, Satterthwaite df) or "z" (GLMM, df NaN).
    """
    vec = contrast_vector(fit, weights)
    beta = fit.coefficients["estimate"].to_numpy(dtype=float)
    v = fit.vcov.to_numpy(dtype=float)
    df = satterthwaite_df(fit, vec)
    estimate = float(vec @ beta)
    se = float(np.sqrt(vec @ v @ vec))
    row = coef_table(["L"], np.array([estimate - rhs]), np.array([se]), df, level=level).iloc[0]
    z = bool(np.isposinf(df))
    return pd.Series(
        {
            "estimate": estimate,
            "std_error": se,
            "df": np.nan if z else df,
            "statistic": row["statistic"],
            "p_value": row["p_value"],
            "ci_low": row["ci_low"] + rhs,
            "ci_high": row["ci_high"] + rhs,
            "test": "z" if z else "t",
        }
    )[CONTEST_COLUMNS]
