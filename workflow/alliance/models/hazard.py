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
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelResult, ModelSpec
from alliance.models.mixed import fit_mixed

TIME_CODINGS = ("quadratic", "linear", "factor")
ADDED = ("event", "period", "period_sq")


def person_period(
    table: pd.DataFrame, outcome: str = "dropout", time: str = "session_index"
) -> pd.DataFrame:
    """Session rows sorted by patient and `time`, with `event` (NaN when the outcome is missing)
    and `period` (= time). The outcome must be constant within patient."""
    for col in ("patient", outcome, time):
        if col not in table.columns:
            raise InputError("person-period rows need this column", column=col, check="hazard")
    out = table.sort_values(["patient", time], kind="stable").reset_index(drop=True)
    if out[time].isna().any():
        raise InputError(
            "time is missing on a session row",
            column=time,
            row=int(np.flatnonzero(out[time].isna().to_numpy())[0]) + 1,
            check="hazard.time",
        )
    varying = out.groupby("patient", sort=False)[outcome].nunique(dropna=False) > 1
    if varying.any():
        raise InputError(
            "the dropout outcome must be the same on every row of a patient",
            column=outcome,
            value=str(varying[varying].index[0]),
            check="hazard.outcome",
        )
    y = pd.to_numeric(out[outcome]).to_numpy(dtype=float, na_value=np.nan)
    last = ~out["patient"].duplicated(keep="last").to_numpy()
    out["event"] = np.where(np.isnan(y), np.nan, (last & (y == 1)).astype(float))
    out["period"] = pd.to_numeric(out[time]).to_numpy(dtype=float)
    return out


def person_period_terms(spec: ModelSpec, terms: Any, table: pd.DataFrame) -> tuple:
    """model_frame hook: person-period table, `event` as outcome, time terms prepended."""
    time = spec.options.get("time", "quadratic")
    time_col = spec.options.get("time_column", "session_index")
    if time not in TIME_CODINGS:
        raise ConfigError(
            f"model '{spec.id}', key options.time: {time!r} is not one of {', '.join(TIME_CODINGS)}"
        )
    if time_col not in table.columns:
        raise ConfigError(
            f"model '{spec.id}', key options.time_column: '{time_col}' is not a column of "
            f"analysis.parquet; columns: {', '.join(map(str, table.columns))}"
        )
    clash = [c for c in ADDED if c in table.columns]
    if clash:
        raise ConfigError(
            f"model '{spec.id}': the session table already has column(s) {clash}, which the "
            "hazard model creates; rename them"
        )
    pp = person_period(table, spec.outcome, time_col)
    patients = pp.groupby("patient", sort=False)[spec.outcome].first()
    if time == "quadratic":
        pp["period_sq"] = pp["period"] ** 2
        time_terms = [("period",), ("period_sq",)]
    elif time == "linear":
        time_terms = [("period",)]
    else:
        levels = sorted(pp["period"].dropna().unique())
        text = [str(int(v)) if float(v).is_integer() else str(v) for v in levels]
        pp["period"] = pd.Categorical(
            pp["period"].map(dict(zip(levels, text, strict=True))), categories=text
        )
        time_terms = [("period",)]
    terms.outcome = "event"
    terms.fixed = [*time_terms, *terms.fixed]
    extra = {
        "person_period": {
            "time": time,
            "time_column": time_col,
            "event": f"1 on the last attended session of a patient with {spec.outcome} == 1",
            "patients": int(len(patients)),
            "events_in_table": int((patients == 1).sum()),
        }
    }
    return pp, terms, extra


def _derived(time: str):
    def fill(values: dict[str, float]) -> None:
        if time == "quadratic":
            values["period_sq"] = values["period"] ** 2

    return fill


def fit(spec: ModelSpec, frame: pd.DataFrame, cfg: Mapping[str, Any]) -> ModelResult:
    """Binomial GLMM on the person-period frame; fit.json adds events kept / patients."""
    time = spec.options.get("time", "quadratic")
    opts = dict(spec.options)
    if time == "factor":
        opts.pop("predictions", None)  # a factor time has no continuous grid
    result = fit_mixed(
        dataclasses.replace(spec, options=opts),
        frame,
        cfg,
        family="binomial",
        derived=_derived(time),
    )
    result.fit["hazard"] = {
        "time": time,
        "rows": int(len(frame)),
        "events": int(frame["event"].sum()),
        "patients": int(frame["patient"].nunique()) if "patient" in frame.columns else None,
    }
    return result
