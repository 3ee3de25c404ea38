"""Kind `hazard`: discrete-time hazards as binomial GLMMs on person-period rows.

`options.rows: slots` fits the same model on scheduled-session rows (missed appointments after
an attended session, `models.person_period.slot_rows`); what follows describes the default,
`sessions` (dropout). Person-period rows (Singer & Willett's discrete-time survival layout,
`models.person_period`): each patient who started treatment contributes one row per attended
session t at which leaving was possible; `event` = 1 on the last attended session of a patient
who dropped out (they did not come to session t+1), 0 otherwise; a completer's final session
is not a risk row. A row is the question "given the patient attended session t, do they fail to
come back?", so the model is

    logit P(no session t+1 | attended t) = alpha_t + beta' x_t + u_therapist,

with x_t known at the end of session t. The default model uses `alliance`, the rating of the
session just attended (the simulator's hazard is on that session's latent alliance); a patient who
left after session 1 contributes one row. alpha_t (options.time): `quadratic` (default: period +
period_sq, smooth, 3 parameters, never separates), `linear`, or `factor` (one parameter per
session: a session with no dropout gives an infinite estimate). Rows where a predictor is missing
are dropped (na.omit); an event on a dropped row is lost, and fit.json counts events kept.

Reliability correction (options `x` and `x_error`): the observed score x carries item error, so
its logistic slope is attenuated; `alliance.models.calibration` (shared with the lmm / glmm
kinds, called in `fit_mixed` with the fit's GLS metric) adds the regression-calibrated row
`{x}_rc` and keeps the naive row.
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
