"""Data as lme4 sees it: formula columns, na.omit, R factor coding, binomial responses."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from alliance.errors import InputError

_CBIND = re.compile(r"^\s*cbind\s*\((?P<succ>[^,]+),(?P<fail>.+)\)\s*~(?P<rhs>.+)$", re.S)
_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
_PROP_COLUMN = "cbind_proportion__"


def _prepare(
    formula: str, data: pd.DataFrame, extra: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, dict[str, list[Any]], np.ndarray]:
    """Keep the formula's columns, drop incomplete rows (R na.omit) and code factors as R does.

    Also returns each kept row's 1-based position in `data`, for error messages.
    """
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame", value=type(data).__name__)
    if "~" not in formula:
        raise InputError("formula needs a '~'", value=formula, check="formula.syntax")
    names = [*_NAME.findall(formula), *extra]
    used = [c for c in dict.fromkeys(names) if c in data.columns]
    complete = data.loc[:, used].notna().all(axis=1).to_numpy()
    rows = np.flatnonzero(complete) + 1
    frame = data.loc[complete, used].reset_index(drop=True)
    if frame.empty:
        raise InputError(
            "no complete rows for the variables in the formula",
            value=formula,
            check="formula.complete_rows",
        )
    levels: dict[str, list[Any]] = {}
    for col in used:
        s = frame[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            frame[col] = s.cat.remove_unused_categories()
            levels[col] = list(frame[col].cat.categories)
        elif pd.api.types.is_bool_dtype(s):
            # R codes a logical as a factor FALSE < TRUE and names the column xTRUE
            frame[col] = pd.Categorical(
                s.map({False: "FALSE", True: "TRUE"}), categories=["FALSE", "TRUE"]
            )
            levels[col] = ["FALSE", "TRUE"]
        elif not pd.api.types.is_numeric_dtype(s):
            cats = sorted(s.astype(str).unique())
            frame[col] = pd.Categorical(s.astype(str), categories=cats)
            levels[col] = cats
    return frame, levels, rows


def _apply_levels(newdata: pd.DataFrame, levels: dict[str, list[Any]]) -> pd.DataFrame:
    """Code `newdata` factors with the levels seen at fit time, so the design columns match."""
    nd = newdata.copy()
    for col, cats in levels.items():
        if col not in nd.columns:
            continue
        values = nd[col]
        if pd.api.types.is_bool_dtype(values):
            values = values.map({False: "FALSE", True: "TRUE"})
        elif not isinstance(values.dtype, pd.CategoricalDtype) and isinstance(cats[0], str):
            values = values.astype(str)
        unknown = set(pd.unique(values.dropna())) - set(cats)
        if unknown:
            raise InputError(
                f"level not seen when the model was fitted: {sorted(unknown)}",
                column=col,
                check="predict.levels",
            )
        nd[col] = pd.Categorical(values, categories=cats)
    return nd


def _binomial_response(
    formula: str, frame: pd.DataFrame, weights: str | None, rows: np.ndarray
) -> tuple[str, np.ndarray | None]:
    """Turn cbind()/weights into the engine's (proportion, trials) form; check 0/1 outcomes."""
    m = _CBIND.match(formula)
    if m is not None:
        succ = _eval_column(m["succ"], frame)
        fail = _eval_column(m["fail"], frame)
        if np.any(succ < 0) or np.any(fail < 0):
            raise InputError(
                "cbind() counts must be non-negative", value=formula, check="glmm.cbind"
            )
        trials = succ + fail
        if np.any(trials <= 0):
            raise InputError(
                "cbind() rows need at least one trial", value=formula, check="glmm.cbind"
            )
        frame[_PROP_COLUMN] = succ / trials
        return f"{_PROP_COLUMN} ~{m['rhs']}", trials
    response = formula.split("~", 1)[0].strip()
    if response not in frame.columns:
        raise InputError(
            "GLMM response must be a column or cbind(successes, failures)",
            value=response,
            check="glmm.response",
        )
    y = frame[response].to_numpy(dtype=float)
    if weights is None:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise InputError(
                "binary outcome must be 0/1 (or give weights= for proportions)",
                column=response,
                row=int(np.argmax(bad)) + 1,
                value=y[np.argmax(bad)],
                check="glmm.binary",
            )
        return formula, None
    if weights not in frame.columns:
        raise InputError("weights column not found", column=weights, check="glmm.weights")
    return formula, frame[weights].to_numpy(dtype=float)


def _eval_column(expr: str, frame: pd.DataFrame) -> np.ndarray:
    """Value of a cbind() argument: a column, or `a - b` / `a + b` of columns and numbers."""
    tokens = re.split(r"\s*([+-])\s*", expr.strip())
    total = np.zeros(len(frame))
    sign = 1.0
    for tok in tokens:
        if tok in ("+", "-"):
            sign = 1.0 if tok == "+" else -1.0
            continue
        if tok in frame.columns:
            total = total + sign * frame[tok].to_numpy(dtype=float)
        else:
            try:
                total = total + sign * float(tok)
            except ValueError:
                raise InputError(
                    "cbind() argument must name columns", value=expr, check="glmm.cbind"
                ) from None
    return total
