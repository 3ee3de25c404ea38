"""Regression calibration of one error-laden predictor: the row `{x}_rc` (options x, x_error).

Why: an observed alliance score carries item error, so its slope is attenuated by the score's
reliability given the other terms. Regression calibration (Carroll et al. 2006, ch. 4) replaces
x by E[true score | x, other covariates]; the coefficient per point of the true score is
beta / lambda, lambda = 1 - mean(error variance) / residual variance of x given the other fixed
terms (SE and CI scaled alike; lambda, from thousands of item responses, is treated as known).
Exact for linear models with a single x; for logistic models it is the usual approximation
(good while the slope times the error SD is small). One helper for the hazard, lmm and glmm kinds.

By group (option `x_by`, a 0/1 moderator in the term `x:by`): x's slope differs between the
groups and so may its reliability (another spread of the true score among the rows at risk), so
each group's slope is calibrated with its own lambda_g (computed on that group's rows):
`{x}_rc` = b_x / lambda_0 (the slope where by = 0) and `{x}_rc:{by}` = (b_x + b_x:by) / lambda_1
- b_x / lambda_0, the difference of the calibrated slopes (SE from the fixed-effect covariance).
One lambda for both groups would leave a difference of reliabilities in the interaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.models import contrasts
from alliance.models.base import ModelResult, ModelSpec

METHOD = (
    "regression calibration: beta / lambda, lambda = 1 - error variance / residual variance of "
    "x given the other fixed terms"
)
LAMBDA_RANGE = (0.2, 1.0)  # (low, high]: outside it the correction is skipped with a warning


def calibrate(result: ModelResult, frame: pd.DataFrame, spec: ModelSpec) -> None:
    """Add `{x}_rc` (and `{x}_rc:{by}` with `options.x_by`) in place when the spec names
    `options.x` and `options.x_error`."""
    x, x_error = spec.options.get("x"), spec.options.get("x_error")
    if not (isinstance(x, str) and isinstance(x_error, str)):
        return
    by = spec.options.get("x_by")
    if isinstance(by, str):
        reliability_corrected_by(result, frame, spec, x, x_error, by)
    else:
        reliability_corrected(result, frame, spec, x, x_error)


def _warn(result: ModelResult, text: str) -> None:
    result.fit.setdefault("warnings", []).append(f"reliability correction skipped: {text}")


def _lambda(rows: pd.DataFrame, spec: ModelSpec, x: str, x_error: str, skip: str = "") -> dict:
    """Error variance, residual variance of x given the other main-effect terms, lambda."""
    others = [t for t in spec.fixed if t not in (x, skip) and ":" not in t and t in rows.columns]
    design = np.column_stack([np.ones(len(rows))] + [rows[t].to_numpy(float) for t in others])
    values = rows[x].to_numpy(float)
    coef, _, rank, _ = np.linalg.lstsq(design, values, rcond=None)
    resid = values - design @ coef
    var_resid = float(resid @ resid / (len(values) - rank))
    error = float(rows[x_error].mean())
    lam = 1.0 - error / var_resid
    return {"error_variance": error, "residual_variance": var_resid, "lambda": lam}


def _usable(lam: float) -> bool:
    return LAMBDA_RANGE[0] < lam <= LAMBDA_RANGE[1]


def _insert_after(coefs: pd.DataFrame, after: str, row: pd.DataFrame) -> pd.DataFrame:
    position = int(np.flatnonzero(coefs["term"].to_numpy() == after)[0]) + 1
    return pd.concat([coefs.iloc[:position], row, coefs.iloc[position:]], ignore_index=True)


def _scaled_row(coefs: pd.DataFrame, x: str, lam: float) -> pd.DataFrame:
    """x's row divided by lambda, named `{x}_rc` (same z and p: a derived row)."""
    row = coefs.loc[coefs["term"] == x].copy()
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        row[col] = row[col] / lam
    row["term"] = f"{x}_rc"
    return row


def _add_derived(result: ModelResult, term: str) -> None:
    # a row that answers another row's question (its calibrated version; `{x}_rc` repeats its
    # naive row's z and p): multiplicity summaries do not count it twice
    result.fit.setdefault("derived_terms", []).append(term)


def reliability_corrected(
    result: ModelResult, frame: pd.DataFrame, spec: ModelSpec, x: str, x_error: str
) -> None:
    """Add the row `{x}_rc` (regression calibration, see the module docstring) in place."""
    coefs = result.coefficients
    if x not in set(coefs["term"]) or x_error not in frame.columns:
        _warn(result, f"'{x}' is not a coefficient or '{x_error}' is not in the frame")
        return
    info: dict[str, Any] = {"term": x, **_lambda(frame, spec, x, x_error), "method": METHOD}
    result.fit["reliability_correction"] = info
    lam = info["lambda"]
    if not _usable(lam):
        _warn(result, f"lambda {lam:.3f} outside (0.2, 1]")
        return
    _add_derived(result, f"{x}_rc")
    result.coefficients = _insert_after(coefs, x, _scaled_row(coefs, x, lam))


def reliability_corrected_by(
    result: ModelResult, frame: pd.DataFrame, spec: ModelSpec, x: str, x_error: str, by: str
) -> None:
    """Add `{x}_rc` and `{x}_rc:{by}`, each group calibrated with its own lambda (docstring)."""
    coefs = result.coefficients
    terms = list(coefs["term"])
    inter = contrasts.interaction_name(x, by, terms)
    if x not in terms or inter is None or x_error not in frame.columns or by not in frame:
        _warn(result, f"needs the coefficients '{x}' and '{x}:{by}' and the columns '{x_error}' "
              f"and '{by}'")  # fmt: skip
        return
    g = frame[by].to_numpy(float)
    if not np.isin(g, (0.0, 1.0)).all() or len(np.unique(g)) < 2:
        _warn(result, f"'{by}' is not a 0/1 column with rows in both groups")
        return
    groups = [{"level": k, "rows": int(np.sum(g == k)), **_lambda(frame[g == k], spec, x,
               x_error, skip=by)} for k in (0, 1)]  # fmt: skip
    lam0, lam1 = (grp["lambda"] for grp in groups)
    result.fit["reliability_correction"] = {
        "term": x, "by": by, "lambda": lam0, "groups": groups,
        "method": METHOD + f"; computed in each group of {by} on its own rows",
    }  # fmt: skip
    if not (_usable(lam0) and _usable(lam1)):
        _warn(result, f"lambda {lam0:.3f} ({by} = 0) or {lam1:.3f} ({by} = 1) outside (0.2, 1]")
        return
    vcov = result.extras["vcov"].set_index("term")
    beta = coefs.set_index("term")["estimate"]
    weights = pd.DataFrame({x: [1 / lam1 - 1 / lam0], inter: [1 / lam1]}, index=[f"{x}_rc:{by}"])
    df = float(coefs.loc[coefs["term"] == inter, "df"].iloc[0])
    table = contrasts.linear_combinations(
        weights, beta, vcov, df=df if np.isfinite(df) and df > 0 else np.inf
    )
    diff = table.drop(columns="test").rename_axis("term").reset_index()
    diff.insert(0, "model", coefs["model"].iloc[0])
    coefs = _insert_after(coefs, x, _scaled_row(coefs, x, lam0))
    result.coefficients = _insert_after(coefs, inter, diff[coefs.columns])
    _add_derived(result, f"{x}_rc")
    _add_derived(result, f"{x}_rc:{by}")
