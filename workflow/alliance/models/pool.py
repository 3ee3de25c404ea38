"""Per-unit alliance-outcome correlations pooled by random-effects meta-analysis.

Each unit (site, trial) gives one Pearson r between alliance and outcome; the r's are pooled on
Fisher's z with DerSimonian-Laird and REML between-unit variance (alliance.engine.meta,
checked against metafor) and set beside the published benchmark, Flückiger et al. 2018
(Psychotherapy 55:316): r = .278 [.256, .299], k = 295 studies.

Direction: the field reports r > 0 when a better alliance goes with a better outcome. With
symptom change (final - baseline) on a scale where higher is worse, improvement is negative, so
the raw r is negative when the alliance helps; each r is multiplied by `sign` before pooling,
and every pooled r (estimate and CI) is reported in that "positive = alliance helps" direction.
`units` keeps the raw r beside the signed one.

Spec: `outcome` is y unless `options.y` names another column. Options:
- `unit` (default `site`): the column whose levels each give one r.
- `x` (default `alliance_mean`): the alliance column.
- `y`: the outcome column (default: the spec outcome).
- `sign`: 1, -1 or `auto` (default): -1 when y is a symptom column (symptom, symptom_change,
  final_symptom, symptom_lag1) and `symptoms.higher_is_worse` (default true), else 1.
- `method`: `REML` (default) or `DL`: the primary estimate (listed first in fit.json); both are
  always in the coefficients table.
- `benchmark`: {r, ci_low, ci_high, source}; default Flückiger et al. 2018.

Units with fewer than 4 rows (Fisher z needs n > 3) or an undefined / perfect r are left out,
with a warning. Fewer than 2 units left -> Skipped; 2-4 units are pooled but flagged: tau^2,
and REML's in particular, is unstable with so few.

Coefficients: rows `pooled_r_DL`, `pooled_r_REML`: estimate = pooled r, CI = the z-scale CI
back-transformed to r; std_error, statistic (z / se) and the p-value are on the Fisher-z scale
(fit.json says so); df = inf. Extras: `units` (per unit: n, raw r, signed r, z, se, variance,
DL and REML weights) and `benchmark` (published value beside the pooled ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.meta import PooledCorrelation, pool_correlations
from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec, Skipped

BENCHMARK = {
    "r": 0.278,
    "ci_low": 0.256,
    "ci_high": 0.299,
    "k": 295,
    "source": "Fluckiger et al. 2018, Psychotherapy 55:316",
}
SYMPTOM_COLUMNS = ("symptom", "symptom_change", "final_symptom", "symptom_lag1")
METHODS = ("DL", "REML")
FEW_UNITS = 5
MIN_N = 4


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """Per-unit r, Fisher z, random-effects pooling (DL and REML), benchmark comparison."""
    opts = spec.options
    unit = opts.get("unit") or "site"
    x = opts.get("x") or "alliance_mean"
    y = opts.get("y") or spec.outcome
    primary = opts.get("method") or "REML"
    if primary not in METHODS:
        raise ConfigError(f"model '{spec.id}', key options.method: {primary!r} is not REML or DL")
    for col in (unit, x, y):
        if col not in frame.columns:
            raise ConfigError(
                f"model '{spec.id}': column '{col}' is not in the model frame; name it in the "
                "spec (outcome, fixed or the options key that uses it) so the frame keeps it"
            )
    sign, sign_reason = _sign(opts.get("sign", "auto"), y, context.higher_is_worse)

    units, warns = unit_correlations(frame, unit, x, y)
    k = len(units)
    if k < 2:
        raise Skipped(
            f"pooling needs at least 2 units of '{unit}' with a correlation; found {k}"
            + (f" ({'; '.join(warns)})" if warns else "")
        )
    if k < FEW_UNITS:
        warns.append(
            f"only {k} units of '{unit}': the between-unit variance (tau^2), REML's especially, "
            "is unstable with fewer than 5"
        )
    units["r"] = sign * units["r_raw"]
    pooled = {m: pool_correlations(units["r"], units["n"], method=m) for m in METHODS}
    units["z"] = np.arctanh(units["r"])
    units["var"] = 1.0 / (units["n"] - 3.0)
    units["se"] = np.sqrt(units["var"])
    for m in METHODS:
        units[f"weight_{m}"] = pooled[m].studies["weight"].to_numpy()

    table = pd.DataFrame([_coef_row(spec.id, m, pooled[m]) for m in METHODS])[COEF_COLUMNS]
    bench = {**BENCHMARK, **(opts.get("benchmark") or {})}
    if any(bench[c] != BENCHMARK[c] for c in ("r", "ci_low", "ci_high", "source")):
        bench["k"] = None  # a custom benchmark: its number of studies is not known here
    bench_rows = [
        {"label": "benchmark", **{c: bench[c] for c in ("r", "ci_low", "ci_high", "k", "source")}}
    ]
    for m in METHODS:
        p = pooled[m]
        bench_rows.append(
            {
                "label": f"pooled ({m})",
                "r": p.r,
                "ci_low": p.r_ci_low,
                "ci_high": p.r_ci_high,
                "k": p.k,
                "source": f"this analysis, {k} units of '{unit}'",
            }
        )
    order = [primary, *[m for m in METHODS if m != primary]]
    info: dict[str, Any] = {
        "kind": "pool",
        "engine": "alliance.engine.meta (metafor rma, measure = ZCOR)",
        "n_obs": int(units["n"].sum()),
        "n_patients": _n_unique(frame, "patient"),
        "n_therapists": _n_unique(frame, "therapist"),
        "k": k,
        "unit": unit,
        "x": x,
        "y": y,
        "sign": sign,
        "sign_reason": sign_reason,
        "direction": "pooled r > 0: better alliance, better outcome (Fluckiger et al. 2018)",
        "primary_method": primary,
        "few_units": k < FEW_UNITS,
        "converged": True,
        "warnings": warns,
        "std_error_scale": "Fisher z (std_error, statistic and p_value); estimate and CI are r",
        "test": "Wald z on Fisher z (df = inf)",
        "methods": {m: _method_info(pooled[m]) for m in order},
        "benchmark": {c: bench[c] for c in ("r", "ci_low", "ci_high", "k", "source")},
        "formula_r": (
            f"metafor::rma(measure = 'ZCOR', ri = {sign} * r, ni = n, data = units, "
            f"method = '{primary}')"
        ),
    }
    extras = {"units": units, "benchmark": pd.DataFrame(bench_rows)}
    return ModelResult(coefficients=table, fit=info, frame=frame, extras=extras)


def unit_correlations(
    frame: pd.DataFrame, unit: str, x: str, y: str
) -> tuple[pd.DataFrame, list[str]]:
    """Pearson r of x and y within each unit (sorted by unit); unusable units -> warnings."""
    rows, warns = [], []
    for label, d in frame.groupby(frame[unit].astype(str), sort=True):
        xv = d[x].to_numpy(dtype=float)
        yv = d[y].to_numpy(dtype=float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        xv, yv = xv[ok], yv[ok]
        n = len(xv)
        if n < MIN_N:
            warns.append(f"{unit} {label}: {n} rows, Fisher z needs at least {MIN_N}; left out")
            continue
        if np.std(xv) == 0 or np.std(yv) == 0:
            warns.append(f"{unit} {label}: {x} or {y} does not vary; left out")
            continue
        r = float(np.corrcoef(xv, yv)[0, 1])
        if abs(r) >= 1.0:
            warns.append(f"{unit} {label}: r = {r:g} (perfect), no Fisher z; left out")
            continue
        rows.append({"unit": label, "n": n, "r_raw": r})
    return pd.DataFrame(rows, columns=["unit", "n", "r_raw"]), warns


def _sign(value: Any, y: str, higher_is_worse: bool) -> tuple[int, str]:
    if value in (1, -1):
        return int(value), "options.sign"
    if value not in ("auto", None):
        raise ConfigError(f"options.sign: {value!r} is not 1, -1 or auto")
    if y in SYMPTOM_COLUMNS and higher_is_worse:
        return -1, f"auto: {y} is a symptom score and higher is worse, so improvement is negative"
    if y in SYMPTOM_COLUMNS:
        return 1, f"auto: {y} is a symptom score and higher is better"
    return 1, f"auto: {y} is not a symptom column; taken as higher = better"


def _coef_row(model: str, method: str, p: PooledCorrelation) -> dict[str, Any]:
    return {
        "model": model,
        "term": f"pooled_r_{method}",
        "estimate": p.r,
        "std_error": p.se,
        "statistic": p.z / p.se,
        "df": np.inf,
        "p_value": p.p_value,
        "ci_low": p.r_ci_low,
        "ci_high": p.r_ci_high,
    }


def _method_info(p: PooledCorrelation) -> dict[str, Any]:
    d = p.as_dict()
    return {key: (float(v) if isinstance(v, np.floating) else v) for key, v in d.items()}


def _n_unique(frame: pd.DataFrame, col: str) -> int | None:
    return int(frame[col].nunique()) if col in frame.columns else None
