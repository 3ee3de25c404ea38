"""Kind `hazard`: discrete-time dropout hazard as a binomial GLMM on person-period rows.

Person-period rows (Singer & Willett's discrete-time survival layout): each patient who started
treatment contributes one row per attended session t = 1..T_i (the session index), up to and
including the last one; `event` = 1 on the row of the last session when the patient dropped out
(outcome column, patient-level 0/1), else 0. A row is the question "was session t the last one,
given the patient attended it?", so the model is

    logit P(drop after session t | attended t) = alpha_t + beta' x_t + u_therapist.

alpha_t (options.time): `quadratic` (default: period + period_sq, t and t^2: smooth, 3 parameters,
never separates), `linear`, or `factor` (one parameter per session: most flexible, but a session
with no dropout gives an infinite estimate). Predictors come from the spec's fixed terms; the
default model uses `alliance_lag1`, the alliance at the session before t (A_{t-1} in the
science notes). Rows where a predictor is missing are dropped (na.omit), including each
patient's first session for a lagged predictor; an event on a dropped row is lost, and fit.json
counts events kept and lost.
"""

from __future__ import annotations

import dataclasses

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
    result.fit["hazard"] = {
        "time": time,
        "rows": int(len(frame)),
        "events": int(frame["event"].sum()),
        "patients": int(frame["patient"].nunique()) if "patient" in frame.columns else None,
    }
    return result
