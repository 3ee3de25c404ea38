"""Kind `hazard`: discrete-time dropout hazard as a binomial GLMM on person-period rows.

Person-period rows (Singer & Willett's discrete-time survival layout, `models.person_period`):
each patient who started treatment contributes one row per attended session t at which leaving
was possible; `event` = 1 on the last attended session of a patient who dropped out (they did
not come to session t+1), 0 otherwise; a completer's final session is not a risk row. A row is
the question "given the patient attended session t, do they fail to come back?", so the model is

    logit P(no session t+1 | attended t) = alpha_t + beta' x_t + u_therapist,

with x_t known at the end of session t. The default model uses `alliance`, the rating of the
session just attended (the simulator's hazard is on that session's latent alliance); a patient who
left after session 1 contributes one row. alpha_t (options.time): `quadratic` (default: period +
period_sq, smooth, 3 parameters, never separates), `linear`, or `factor` (one parameter per
session: a session with no dropout gives an infinite estimate). Rows where a predictor is missing
are dropped (na.omit); an event on a dropped row is lost, and fit.json counts events kept.

Reliability correction (options `x` and `x_error`): the observed score x carries item error, so
its logistic slope is attenuated. Regression calibration (Carroll et al. 2006, ch. 4) replaces x
by E[true score | x, other covariates] = a + lambda (x - ...), lambda = 1 - mean(error variance)
/ residual variance of x given the other fixed terms; the coefficient per point of the true
score is beta / lambda (SE and CI scaled alike; lambda, from thousands of item responses, is
treated as known). It is added as the row `{x}_rc`; the naive row is kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from alliance.models.base import FitContext, ModelResult, ModelSpec
from alliance.models.mixed import fit_mixed


def _derived(time: str):
    def fill(values: dict[str, float]) -> None:
        if time == "quadratic":
            values["period_sq"] = values["period"] ** 2

    return fill


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """Binomial GLMM on the person-period frame; fit.json adds events kept / patients."""
    time = spec.options.get("time", "quadratic")
    opts = dict(spec.options)
    if time == "factor":
        opts.pop("predictions", None)  # a factor time has no continuous grid
    result = fit_mixed(
        dataclasses.replace(spec, options=opts),
        frame,
        family="binomial",
        arms=context.arms,
        derived=_derived(time),
    )
    x, x_error = spec.options.get("x"), spec.options.get("x_error")
    if isinstance(x, str) and isinstance(x_error, str):
        _reliability_corrected(result, frame, spec, x, x_error)
    result.fit["hazard"] = {
        "time": time,
        "rows": int(len(frame)),
        "events": int(frame["event"].sum()),
        "patients": int(frame["patient"].nunique()) if "patient" in frame.columns else None,
    }
    return result


def _reliability_corrected(
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
