"""Linear combinations of fixed effects: simple slopes, slope contrasts, the Baldwin contrast,
population predictions.

Every derived number of the model stage is a row L of weights on the coefficients, so one helper
(`linear_combinations`) gives estimate L'b, SE sqrt(L'VL), the test, p and CI for all of them. V
is the fixed-effect covariance the coefficient table used (lme4's vcov, or the cluster-robust one
when the few-therapists rule applied).

Tests (`test` column, with `df`): LMM rows are t tests with their own Satterthwaite df, as
lmerTest::contest1D computes them (alliance.engine.mixed.contest1d: the fit passes a `df` rule
L -> df); robust (CR1) fits use clusters - 1 df; GLMM rows are Wald z tests as in lme4 (df NaN,
test "z"). Population predictions stay Wald z intervals (figures' bands).

The Baldwin contrast (Baldwin, Wampold & Imel 2007): in a model with both a therapist-level and
a patient-level alliance term of the same suffix (`alliance_ther_prior` / `alliance_pat_prior`,
`alliance_ther` / `alliance_pat`), b_ther - b_pat asks whether the therapist part of the alliance
predicts the outcome more strongly than the patient part. It is the difference of the two
main-effect coefficients, i.e. at zero of any moderator they interact with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.tidy import coef_table

INTERCEPT = "(Intercept)"
ESTIMATE_COLUMNS = [
    "estimate", "std_error", "statistic", "df", "p_value", "ci_low", "ci_high", "test",
]  # fmt: skip
CONTRAST_COLUMNS = ["term", "contrast", "plus", "minus"]
BALDWIN = "baldwin: ther - pat"
_THER = re.compile(r"^alliance_ther(?P<suffix>[A-Za-z0-9_]*)$")
# df of a combination: one number for all rows, or a rule from L (aligned with beta) to its df
DfRule = float | Callable[[np.ndarray], float]


def linear_combinations(
    weights: pd.DataFrame,
    beta: pd.Series,
    vcov: pd.DataFrame,
    *,
    df: DfRule = np.inf,
    level: float = 0.95,
) -> pd.DataFrame:
    """Test table (ESTIMATE_COLUMNS, index = weights.index) of each row of `weights`.

    `weights` has one column per coefficient it uses (others count as 0); a column that is not
    a coefficient is an error, so a misspelt term cannot silently weigh nothing. Infinite df
    give Wald z rows: df NaN, test "z"; other rows are t tests (test "t").
    """
    unknown = [c for c in weights.columns if c not in beta.index]
    if unknown:
        raise KeyError(f"not coefficients of the model: {unknown}; have {list(beta.index)}")
    w = weights.reindex(columns=beta.index, fill_value=0.0).to_numpy(dtype=float)
    v = vcov.loc[beta.index, beta.index].to_numpy(dtype=float)
    est = w @ beta.to_numpy(dtype=float)
    se = np.sqrt(np.einsum("ij,jk,ik->i", w, v, w))
    dfs = np.array([df(row) for row in w], dtype=float) if callable(df) else df
    table = coef_table(list(weights.index), est, se, dfs, level=level)
    z = np.isposinf(table["df"].to_numpy(dtype=float))
    table["test"] = np.where(z, "z", "t")
    table.loc[z, "df"] = np.nan
    return table[ESTIMATE_COLUMNS].set_index(weights.index)


def baldwin_pairs(terms: Sequence[str]) -> list[tuple[str, str]]:
    """(alliance_ther<suffix>, alliance_pat<suffix>) main-effect pairs among `terms`."""
    pairs = []
    for term in terms:
        m = _THER.match(term)
        if m is not None and f"alliance_pat{m['suffix']}" in terms:
            pairs.append((term, f"alliance_pat{m['suffix']}"))
    return pairs


def baldwin_contrasts(beta: pd.Series, vcov: pd.DataFrame, *, df: DfRule = np.inf) -> pd.DataFrame:
    """One row `baldwin: ther - pat` per pair: b_ther - b_pat (CONTRAST_COLUMNS + estimates)."""
    pairs = baldwin_pairs(list(beta.index))
    if not pairs:
        return pd.DataFrame(columns=[*CONTRAST_COLUMNS, *ESTIMATE_COLUMNS])
    weights = pd.DataFrame([{ther: 1.0, pat: -1.0} for ther, pat in pairs]).fillna(0.0)
    table = linear_combinations(weights, beta, vcov, df=df).reset_index(drop=True)
    meta = pd.DataFrame(
        [(f"{ther} - {pat}", BALDWIN, ther, pat) for ther, pat in pairs], columns=CONTRAST_COLUMNS
    )
    return pd.concat([meta, table], axis=1)


def interaction_name(a: str, b: str, terms: Sequence[str]) -> str | None:
    """The coefficient of a:b as the model names it (`a:b` or `b:a`), or None."""
    for name in (f"{a}:{b}", f"{b}:{a}"):
        if name in terms:
            return name
    return None


def slope_weights(
    focal: str, moderator_values: Mapping[str, float], terms: Sequence[str]
) -> dict[str, float]:
    """Weights of d(linear predictor)/d(focal) at the given moderator column values.

    slope = b_focal + sum_c value_c * b_{focal:c}; a moderator column without an interaction
    with `focal` adds nothing (the slope does not depend on it).
    """
    if focal not in terms:
        raise KeyError(f"focal term '{focal}' is not a coefficient; have {list(terms)}")
    w = {focal: 1.0}
    for col, value in moderator_values.items():
        name = interaction_name(focal, col, terms)
        if name is not None and value != 0:
            w[name] = w.get(name, 0.0) + float(value)
    return w


def simple_slopes(
    beta: pd.Series,
    vcov: pd.DataFrame,
    focal_terms: Sequence[str],
    by: str,
    points: Mapping[str, tuple[str, float, Mapping[str, float]]],
    *,
    df: DfRule = np.inf,
) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, float]]]:
    """Slopes of each focal term at each moderator point.

    `points`: label -> (type, value, {moderator column: value}); type is `level` (factor level,
    value NaN), `class` (average of levels, value NaN) or `value` (numeric moderator value).
    Returns the table and the weights per (term, label), which contrasts difference.
    """
    terms = list(beta.index)
    rows, index, weights = [], [], {}
    for focal in focal_terms:
        for label, (kind, value, columns) in points.items():
            w = slope_weights(focal, columns, terms)
            weights[(focal, label)] = w
            rows.append(w)
            index.append((focal, label, kind, value))
    table = linear_combinations(pd.DataFrame(rows).fillna(0.0), beta, vcov, df=df).reset_index(
        drop=True
    )
    meta = pd.DataFrame(index, columns=["term", "level", "type", "value"])
    meta.insert(1, "by", by)
    return pd.concat([meta, table], axis=1), weights


def class_points(
    level_points: Mapping[str, tuple[str, float, Mapping[str, float]]],
    classes: Mapping[str, str],
) -> dict[str, tuple[str, float, dict[str, float]]]:
    """Class rows: each class averages its levels' moderator columns with equal weight."""
    out: dict[str, tuple[str, float, dict[str, float]]] = {}
    members: dict[str, list[str]] = {}
    for level in level_points:
        if level in classes:
            members.setdefault(classes[level], []).append(level)
    for cls in sorted(members):
        levels = members[cls]
        cols: dict[str, float] = {}
        for level in levels:
            for col, v in level_points[level][2].items():
                cols[col] = cols.get(col, 0.0) + v / len(levels)
        out[cls] = ("class", np.nan, cols)
    return out


def slope_contrasts(
    beta: pd.Series,
    vcov: pd.DataFrame,
    weights: Mapping[tuple[str, str], Mapping[str, float]],
    focal_terms: Sequence[str],
    specs: Sequence[Mapping[str, str]],
    *,
    df: DfRule = np.inf,
) -> tuple[pd.DataFrame, list[str]]:
    """Differences of two simple slopes per focal term (`plus` - `minus`).

    Returns the table and notes for contrasts whose levels/classes are not in the slopes.
    """
    rows, index, notes = [], [], []
    for spec in specs:
        for focal in focal_terms:
            plus, minus = weights.get((focal, spec["plus"])), weights.get((focal, spec["minus"]))
            if plus is None or minus is None:
                notes.append(
                    f"contrast {spec['name']}: no slope for "
                    f"{spec['plus'] if plus is None else spec['minus']!r}; not computed"
                )
                break
            keys = set(plus) | set(minus)
            rows.append({k: plus.get(k, 0.0) - minus.get(k, 0.0) for k in keys})
            index.append((focal, spec["name"], spec["plus"], spec["minus"]))
    columns = CONTRAST_COLUMNS
    if not rows:
        return pd.DataFrame(columns=[*columns, *ESTIMATE_COLUMNS]), notes
    table = linear_combinations(pd.DataFrame(rows).fillna(0.0), beta, vcov, df=df).reset_index(
        drop=True
    )
    return pd.concat([pd.DataFrame(index, columns=columns), table], axis=1), notes


def design_row(terms: Sequence[str], values: Mapping[str, float]) -> dict[str, float]:
    """Weights of one prediction: 1 for the intercept, the product of column values per term."""
    row = {}
    for term in terms:
        if term == INTERCEPT:
            row[term] = 1.0
            continue
        row[term] = float(np.prod([values[p] for p in term.split(":")]))
    return row


def prediction_grid(
    frame: pd.DataFrame,
    terms: Sequence[str],
    x: str,
    by: str,
    *,
    step: float = 1.0,
    reference_columns: Sequence[str] = (),
    derived: Callable[[dict[str, float]], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Population-level prediction rows over `x` at mean - 1 SD, mean, mean + 1 SD of `by`.

    `by`'s mean and SD are over patients (one value each) when `by` is constant within
    patient, else over rows. Other design columns: 0/1 factor columns (`reference_columns`) at
    0 (the reference level), everything else at its mean over the model rows. `derived` may
    recompute columns that are functions of x (hazard: t^2). Returns (grid, weights, info).
    """
    pieces = sorted({p for t in terms if t != INTERCEPT for p in t.split(":")})
    for col in (x, by):
        if col not in frame.columns:
            raise KeyError(f"prediction column '{col}' is not in the model frame")
    by_values = frame[by]
    unit = "rows"
    if "patient" in frame.columns:
        per = frame.groupby("patient", sort=True)[by]
        if (per.nunique(dropna=True) <= 1).all():
            by_values, unit = per.first(), "patients"
    centre, sd = float(by_values.mean()), float(by_values.std(ddof=1))
    base = {p: float(frame[p].mean()) for p in pieces if p in frame.columns}
    base.update({c: 0.0 for c in reference_columns if c in pieces})
    lo, hi = float(frame[x].min()), float(frame[x].max())
    # lo, lo + step, ... up to hi (never past it: no extrapolation), as R's seq(lo, hi, step)
    grid_x = lo + step * np.arange(int(np.floor((hi - lo) / step + 1e-9)) + 1)
    grid, rows = [], []
    for label, k in (("-1 SD", -1.0), ("mean", 0.0), ("+1 SD", 1.0)):
        for xv in grid_x:
            values = dict(base)
            values[x], values[by] = float(xv), centre + k * sd
            if derived is not None:
                derived(values)
            grid.append(
                {"x_variable": x, "x": float(xv), "by_variable": by, "by_level": label,
                 "by_value": centre + k * sd}
            )  # fmt: skip
            rows.append(design_row(terms, values))
    info = {"by_mean": centre, "by_sd": sd, "by_sd_over": unit, "held_at": base}
    return pd.DataFrame(grid), pd.DataFrame(rows), info
