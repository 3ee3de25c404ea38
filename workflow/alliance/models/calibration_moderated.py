"""Regression calibration of an error-laden x whose slope varies with a continuous moderator.

Option `x_mod` (with `x` and `x_error`): the model has the terms x and x:z, z error-free (a
staging score known before treatment), and the rows `{x}_rc` (the calibrated slope at z = 0)
and `{x}_rc:{z}` (its calibrated change per unit of z) are added.

Derivation (the single-x case of `alliance.models.calibration` with two columns). Let
W = [x, x z] and T = [tau, tau z] its error-free version, x = tau + e with e_r of variance s2_r,
independent across rows and of tau, z, y and the other terms, and P the GLS residual maker of
the other fixed terms (z's main effect among them) in the fit's metric V^-1 (the same
`working_metric`, exact for nested random intercepts). The naive b = (W'PW)^-1 W'P y, and
E[W'P y] = T'PT beta, while row r's error in W is e_r [1, z_r], so

    E[W'PW] = T'PT + E,   E = sum_r P_rr s2_r [[1, z_r], [z_r, z_r^2]],
    beta_rc = (W'PW - E)^-1 W'PW b = M b,   cov(beta_rc) = M cov(b) M'

(delta method, M treated as known like lambda: it rests on thousands of item responses). With
z = 0 on every row M[0, 0] = 1 / lambda, the single-x calibration; with a 0/1 z and no other
terms than the intercept and z it is the per-group lambdas of `x_by`. Exact for linear models,
the usual approximation for logistic ones (good while the slope times the error SD is small).
Where the fit's V^-1 is not applied exactly (random slopes, crossed groups, no working model)
P is the OLS residual maker, and fit.json says so (`metric`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from alliance.models.base import ModelResult, ModelSpec
from alliance.models.calibration import (
    Working,
    add_derived,
    combination_row,
    gls_quadratic,
    insert_after,
    interaction_term,
    metric_levels,
    metric_problem,
    usable,
    warn_skipped,
)

METHOD = (
    "regression calibration with a moderator: (b_x, b_x:z)' -> M (b_x, b_x:z)', "
    "M = (W'PW - E)^-1 W'PW, W = [x, x z], E = sum_r P_rr s2_r [1, z_r]'[1, z_r], P the GLS "
    "residual maker of the other fixed terms in the fit's metric V^-1"
)


def moderated_parts(
    others: np.ndarray,
    x: np.ndarray,
    z: np.ndarray,
    error: np.ndarray,
    weights: np.ndarray,
    levels: list[tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """(W'PW, E) of the module docstring for W = [x, x z] (2 x 2 each)."""
    wpw, p_diag = gls_quadratic(others, np.column_stack([x, x * z]), weights, levels)
    share = p_diag * error
    cross = float(share @ z)
    errors = np.array([[float(share.sum()), cross], [cross, float(share @ (z * z))]])
    return wpw, errors


def calibration_matrix(wpw: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """M = (W'PW - E)^-1 W'PW (least squares: a column of W that is all 0, z = 0 on every row,
    keeps M's other block, 1 / lambda)."""
    return np.linalg.lstsq(wpw - errors, wpw, rcond=None)[0]


def _product(frame: pd.DataFrame, term: str) -> np.ndarray:
    return np.prod([frame[v].to_numpy(float) for v in term.split(":")], axis=0)


def _others(frame: pd.DataFrame, spec: ModelSpec, x: str) -> tuple[np.ndarray, list[str]]:
    """Intercept and every fixed term without x (interactions as products of their columns)."""
    terms = [t for t in spec.fixed if x not in t.split(":")]
    cols = [np.ones(len(frame))] + [_product(frame, t) for t in terms]
    return np.column_stack(cols), terms


def moderated_info(
    frame: pd.DataFrame, spec: ModelSpec, x: str, x_error: str, z: str, working: Working | None
) -> dict[str, Any]:
    """M, its parts and the metric used (fit.json `reliability_correction`)."""
    others, names = _others(frame, spec, x)
    why = metric_problem(frame, working)
    if why or working is None:
        weights, levels = np.ones(len(frame)), []
        metric = f"unit weights (P the OLS residual maker of the other fixed terms): {why}"
    else:
        weights = working.weights.loc[frame.index].to_numpy(float)
        levels = metric_levels(frame, working)
        names_var = ", ".join(f"{g} {v:.4g}" for g, v in working.intercepts) or "none"
        metric = f"GLS; random-intercept variances: {names_var}"
    values, mod = frame[x].to_numpy(float), frame[z].to_numpy(float)
    error = frame[x_error].to_numpy(float)
    wpw, errors = moderated_parts(others, values, mod, error, weights, levels)
    m = calibration_matrix(wpw, errors)
    # each column's own reliability given the other terms (not given the other column of W)
    lambdas = 1.0 - np.diag(errors) / np.diag(wpw)
    return {
        "term": x,
        "moderator": z,
        "others": names,
        "error_variance": float(error.mean()),
        "x_sd": float(np.std(values, ddof=1)),
        "matrix": m.tolist(),
        "lambda_x": float(lambdas[0]),
        "lambda_interaction": float(lambdas[1]),
        "metric": metric,
        "method": METHOD,
    }


def reliability_corrected_moderated(
    result: ModelResult,
    frame: pd.DataFrame,
    spec: ModelSpec,
    x: str,
    x_error: str,
    z: str,
    working: Working | None = None,
) -> None:
    """Add `{x}_rc` and `{x}_rc:{z}` (M b, covariance M V M') in place (module docstring)."""
    coefs = result.coefficients
    inter = interaction_term(result, frame, x, x_error, z)
    if inter is None:
        return
    tangled = [t for t in spec.fixed if x in t.split(":") and t not in (x, inter)]
    if tangled:
        warn_skipped(result, f"other terms with '{x}' ({', '.join(tangled)}): W would need them")
        return
    info = moderated_info(frame, spec, x, x_error, z, working)
    result.fit["reliability_correction"] = info
    m = np.asarray(info["matrix"])
    lams = (info["lambda_x"], info["lambda_interaction"])
    if not (np.all(np.isfinite(m)) and all(usable(lam) for lam in lams)):
        warn_skipped(result, f"lambda of '{x}' {lams[0]:.3f} or of '{inter}' {lams[1]:.3f} "
                     "outside (0.2, 1]")  # fmt: skip
        return
    rows = [
        combination_row(result, pd.DataFrame({x: [m[k, 0]], inter: [m[k, 1]]}, index=[name]), like)
        for k, (name, like) in enumerate(((f"{x}_rc", x), (f"{x}_rc:{z}", inter)))
    ]
    coefs = insert_after(coefs, x, rows[0])
    result.coefficients = insert_after(coefs, inter, rows[1])
    add_derived(result, f"{x}_rc")
    add_derived(result, f"{x}_rc:{z}")
