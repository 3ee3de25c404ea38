"""Person-period rows for the discrete-time hazards (Singer & Willett's layout).

Two kinds of risk rows, chosen by a hazard spec's `options.rows`: `sessions` (default), one row
per attended session at which leaving was possible (the dropout hazard), and `slots`, one row
per scheduled session after an attended one (missed appointments). Both carry the predictors
of the last attended session, so one alignment serves every hazard. Frame construction only, so
`models.frames` can build a hazard frame without importing the fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import ConfigError, InputError
from alliance.models.base import ModelSpec

TIME_CODINGS = ("quadratic", "linear", "factor")
ROWS = ("sessions", "slots")
ADDED = ("event", "period", "period_sq", "slot_in_run")


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


def slot_rows(
    table: pd.DataFrame, outcome: str = "missed_before", time: str = "session_index"
) -> pd.DataFrame:
    """Risk rows of missed appointments: one per scheduled session after an attended one.

    After attended session t (not the patient's last), the schedule holds k missed sessions and
    then the attended session t+1, where k = `outcome` (`missed_before`: the misses counted on
    the row of t+1, from results/clean/schedule.parquet's slots with last_attended_index = t).
    Row t is repeated k + 1 times with `event` 1, ..., 1, 0 and `slot_in_run` 1 .. k + 1, so
    every slot carries the predictors of the last attended session t (the dropout hazard's
    alignment). Slots after the last attended session are the dropout itself
    (`after_last_attended`; the dropout hazard's event) and are not risk rows here.
    """
    for col in ("patient", outcome, time):
        if col not in table.columns:
            raise InputError("slot rows need this column", column=col, check="hazard.slots")
    out = table.sort_values(["patient", time], kind="stable").reset_index(drop=True)
    nxt = pd.to_numeric(out.groupby("patient", sort=False)[outcome].shift(-1))
    keep = nxt.notna().to_numpy()
    k = nxt[keep].round().astype("int64").to_numpy()
    if (k < 0).any():
        raise InputError("missed counts must be >= 0", column=outcome, check="hazard.slots")
    rows = out.loc[keep].loc[lambda f: f.index.repeat(k + 1)].reset_index(drop=True)
    runs = np.repeat(k, k + 1)
    starts = np.repeat(np.cumsum(k + 1) - (k + 1), k + 1)
    position = np.arange(len(rows)) - starts + 1
    rows["slot_in_run"] = position
    rows["event"] = (position <= runs).astype(float)
    rows["period"] = pd.to_numeric(rows[time]).to_numpy(dtype=float)
    return rows


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
    rows = spec.options.get("rows") or "sessions"
    if rows not in ROWS:
        raise ConfigError(
            f"model '{spec.id}', key options.rows: {rows!r} is not one of {', '.join(ROWS)}"
        )
    if rows == "slots":
        pp = slot_rows(table, spec.outcome, time_col)
        patients = pp.groupby("patient", sort=False)["event"].max()
        event = (
            f"1 on each scheduled session missed after an attended one ({spec.outcome} of the "
            "next attended session), 0 on the session attended next; slots after the last "
            "attended session are the dropout (dropout_hazard) and not at risk here"
        )
    else:
        pp = person_period(table, spec.outcome, time_col)
        patients = pp.groupby("patient", sort=False)[spec.outcome].first()
        event = (
            f"1 on the last attended session of a patient with {spec.outcome} == 1 "
            "(did not come to the next one); a completer's final session is not at risk"
        )
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
            "rows": rows,
            "event": event,
            "patients": int(len(patients)),
            "patients_with_event": int((patients == 1).sum()),
            "events_in_table": int(pp["event"].sum()),
        }
    }
    return pp, terms, extra
