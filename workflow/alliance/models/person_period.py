"""Person-period rows for the discrete-time dropout hazard (Singer & Willett's layout).

Frame construction only, so `models.frames` can build a hazard frame without importing the fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelSpec

TIME_CODINGS = ("quadratic", "linear", "factor")
ADDED = ("event", "period", "period_sq")


def person_period(
    table: pd.DataFrame, outcome: str = "dropout", time: str = "session_index"
) -> pd.DataFrame:
    """Risk rows of the aligned discrete-time dropout hazard, with `event` and `period` (= time).

    One row per attended session t at which leaving before the next session was possible: every
    session of a patient who dropped out (the event, 1, on the last attended one: they did not
    come to t+1), and every session but the last of a completer (their last session ended
    treatment, so they were not at risk of leaving after it). A patient who left after session 1
    contributes that one row. Predictors on row t are measured at or before t, so the model asks
    "does the alliance of the session just attended predict not coming back?". `event` is NaN
    when the outcome is missing. The outcome must be constant within patient.
    """
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
    at_risk = ~(last & (y == 0))  # a completer's final session is not a risk row
    return out.loc[at_risk].reset_index(drop=True)


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
            "event": (
                f"1 on the last attended session of a patient with {spec.outcome} == 1 "
                "(did not come to the next one); a completer's final session is not at risk"
            ),
            "patients": int(len(patients)),
            "events_in_table": int((patients == 1).sum()),
        }
    }
    return pp, terms, extra
