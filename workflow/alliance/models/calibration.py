"""Regression calibration of one error-laden predictor: the row `{x}_rc` (options x, x_error).

Why: an observed alliance score carries item error, so its slope is attenuated by the score's
reliability given the other terms. Regression calibration (Carroll et al. 2006, ch. 4) replaces
x by E[true score | x, other covariates]; the coefficient per point of the true score is
beta / lambda, lambda = 1 - mean(error variance) / residual variance of x given the other fixed
terms (SE and CI scaled alike; lambda, from thousands of item responses, is treated as known).
Exact for linear models with a single x; for logistic models it is the usual approximation
(good while the slope times the error SD is small). One helper for the hazard, lmm and glmm kinds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alliance.models.base import ModelResult, ModelSpec


def calibrate(result: ModelResult, frame: pd.DataFrame, spec: ModelSpec) -> None:
    """Add `{x}_rc` in place when the spec names `options.x` and `options.x_error`."""
    x, x_error = spec.options.get("x"), spec.options.get("x_error")
    if isinstance(x, str) and isinstance(x_error, str):
        reliability_corrected(result, frame, spec, x, x_error)


def reliability_corrected(
    result: ModelResult, frame: pd.DataFrame, spec: ModelSpec, x: str, x_error: str
) -> None:
    """Add the row `{x}_rc` (regression calibration, see the module docstring) in place."""
    coefs = result.coefficients
    if x not in set(coefs["term"]) or x_error not in frame.columns:
        result.fit.setdefault("warnings", []).append(
            f"reliability correction skipped: '{x}' is not a coefficient or '{x_error}' is "
            "not in the frame"
        )
        return
    others = [t for t in spec.fixed if t != x and ":" not in t and t in frame.columns]
    design = np.column_stack([np.ones(len(frame))] + [frame[t].to_numpy(float) for t in others])
    values = frame[x].to_numpy(float)
    resid = values - design @ np.linalg.lstsq(design, values, rcond=None)[0]
    var_resid = float(resid @ resid / (len(values) - design.shape[1]))
    error = float(frame[x_error].mean())
    lam = 1.0 - error / var_resid
    info = {
        "term": x,
        "error_variance": error,
        "residual_variance": var_resid,
        "lambda": lam,
        "method": "regression calibration: beta / lambda, lambda = 1 - error variance / "
        "residual variance of x given the other fixed terms",
    }
    result.fit["reliability_correction"] = info
    if not 0.2 < lam <= 1.0:
        result.fit.setdefault("warnings", []).append(
            f"reliability correction skipped: lambda {lam:.3f} outside (0.2, 1]"
        )
        return
    row = coefs.loc[coefs["term"] == x].copy()
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        row[col] = row[col] / lam
    row["term"] = f"{x}_rc"
    # a row that repeats another row's test (same z and p): summaries do not count it twice
    result.fit.setdefault("derived_terms", []).append(f"{x}_rc")
    position = int(np.flatnonzero(coefs["term"].to_numpy() == x)[0]) + 1
    result.coefficients = pd.concat(
        [coefs.iloc[:position], row, coefs.iloc[position:]], ignore_index=True
    )
