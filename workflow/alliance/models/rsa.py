"""Polynomial regression with response-surface analysis of patient-therapist agreement.

Marmarosh & Kivlighan 2012: does it matter whether patient (P) and therapist (T) rate the
alliance alike? Fit `Y = b0 + b1 P + b2 T + b3 P^2 + b4 PT + b5 T^2 (+ covariates)` by OLS,
with P and T centred at the scale midpoint, and read the surface along two lines:
- line of agreement (P = T): slope a1 = b1 + b2, curvature a2 = b3 + b4 + b5;
- line of disagreement (P = -T): slope a3 = b1 - b2, curvature a4 = b3 - b4 + b5.
a1..a4 are linear combinations of the b's; their SEs come from the coefficient covariance
(L V L'), tested with the same df as the b's.

Spec: `outcome` Y; `fixed[0]` the patient rating (e.g. `agree_p`), `fixed[1]` the therapist
rating (`agree_t`), `fixed[2:]` covariates entered linearly.
Options:
- `midpoint` (WAI-SR 1-5: 3): P = fixed[0] - midpoint, T = fixed[1] - midpoint. None: both
  centred at the pooled mean of the two ratings (fit.json says so).
- `cluster` (e.g. `therapist`): CR1 cluster-robust covariance, G/(G-1) x (N-1)/(N-K) (R
  `sandwich::vcovCL(fit, cluster = ~therapist, type = "HC1")`), t tests with G - 1 df. None
  (default): the plain OLS covariance and residual df, exactly R `lm`.

Coefficients: the b's named as R names the terms of `lm(Y ~ P + T + I(P^2) + P:T + I(T^2))`
(`(Intercept)`, `P`, `T`, `I(P^2)`, `P:T`, `I(T^2)`, covariates), then rows `a1`..`a4`.
Extra `grid`: the fitted surface (covariates at their means) over a 41 x 41 grid of P and T,
both spanning the range of all observed ratings (a square grid, so the agreement line is its
diagonal), on the raw and the centred scale, flagged where P and T lie inside the observed
range of each rating.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.ols import ols
from alliance.engine.tidy import coef_table
from alliance.errors import ConfigError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec, Skipped

B_TERMS = ("P", "T", "I(P^2)", "P:T", "I(T^2)")
SURFACE = {
    "a1": ({"P": 1, "T": 1}, "slope along the line of agreement (P = T), b1 + b2"),
    "a2": (
        {"I(P^2)": 1, "P:T": 1, "I(T^2)": 1},
        "curvature along the line of agreement, b3 + b4 + b5",
    ),
    "a3": ({"P": 1, "T": -1}, "slope along the line of disagreement (P = -T), b1 - b2"),
    "a4": (
        {"I(P^2)": 1, "P:T": -1, "I(T^2)": 1},
        "curvature along the line of disagreement, b3 - b4 + b5",
    ),
}
GRID_SIZE = 41


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """OLS polynomial regression and surface parameters a1..a4 (see module docstring)."""
    if len(spec.fixed) < 2:
        raise ConfigError(
            f"model '{spec.id}', key fixed: rsa needs the patient and the therapist rating "
            f"as the first two terms, got {list(spec.fixed)}"
        )
    p_col, t_col, *covs = spec.fixed
    clash = [c for c in covs if c in ("P", "T")]
    if clash:
        raise ConfigError(f"model '{spec.id}', key fixed: covariate '{clash[0]}' clashes with P/T")
    opts = spec.options
    cluster = opts.get("cluster") or None
    for col in [spec.outcome, p_col, t_col, *covs] + ([cluster] if cluster else []):
        if col not in frame.columns:
            raise ConfigError(
                f"model '{spec.id}': column '{col}' is not in the model frame; name it in the "
                "spec (outcome, fixed or the options key that uses it) so the frame keeps it"
            )
    midpoint = opts.get("midpoint")
    raw_p = frame[p_col].to_numpy(dtype=float)
    raw_t = frame[t_col].to_numpy(dtype=float)
    if midpoint is None:
        centre = float(np.mean(np.r_[raw_p, raw_t]))
        centring = f"pooled mean of {p_col} and {t_col} (no options.midpoint given)"
    else:
        centre = float(midpoint)
        centring = f"scale midpoint {centre:g}"
    data = frame.assign(P=raw_p - centre, T=raw_t - centre)
    terms = ["(Intercept)", *B_TERMS, *covs]
    x = _design(data["P"].to_numpy(), data["T"].to_numpy(), data[covs].to_numpy(dtype=float))
    y = data[spec.outcome].to_numpy(dtype=float)
    n, k = x.shape
    if n <= k:
        raise Skipped(f"{n} rows for {k} coefficients: too few for a response surface")
    if np.linalg.matrix_rank(x) < k:
        raise Skipped(
            f"the polynomial terms of {p_col} and {t_col} are collinear in the model rows "
            "(e.g. the two ratings always agree)"
        )

    if cluster is None:
        res = ols(x, y)
        df = float(res.df_resid)
        se_method = "OLS (R lm)"
        n_clusters = None
    else:
        codes, _ = pd.factorize(data[cluster].astype(str))
        n_clusters = int(codes.max() + 1)
        if n_clusters < 2:
            raise Skipped(f"cluster-robust SEs need at least 2 levels of '{cluster}'")
        res = ols(x, y, codes)
        df = float(n_clusters - 1)
        se_method = (
            f"CR1 cluster-robust by {cluster}: G/(G-1) x (N-1)/(N-K) "
            '(R sandwich::vcovCL(type = "HC1")); t with G - 1 df'
        )
    beta, vcov = res.params, res.vcov
    table = coef_table(terms, beta, np.sqrt(np.diag(vcov)), df)
    lmat = np.array([[w.get(t, 0.0) for t in terms] for w, _ in SURFACE.values()], dtype=float)
    surf = coef_table(list(SURFACE), lmat @ beta, np.sqrt(np.diag(lmat @ vcov @ lmat.T)), df)
    table = pd.concat([table, surf], ignore_index=True).assign(model=spec.id)[COEF_COLUMNS]

    llf = float(res.llf)
    rhs = " + ".join([*B_TERMS, *covs])
    c = repr(centre) if midpoint is None else f"{centre:g}"
    info: dict[str, Any] = {
        "kind": "rsa",
        "engine": "numpy least squares (alliance.engine.ols)",
        "n_obs": n,
        "n_patients": _n_unique(data, "patient"),
        "n_therapists": _n_unique(data, "therapist"),
        "n_clusters": n_clusters,
        # R's logLik(lm) counts sigma as a parameter: df = k + 1
        "logLik": llf,
        "AIC": -2.0 * llf + 2.0 * (k + 1),
        "BIC": -2.0 * llf + math.log(n) * (k + 1),
        "r_squared": float(res.rsquared),
        "adj_r_squared": float(res.rsquared_adj),
        "sigma": math.sqrt(res.scale),
        "df_residual": float(res.df_resid),
        "converged": True,
        "warnings": [],
        "se_method": se_method,
        "test": f"t with {df:g} df",
        "P": p_col,
        "T": t_col,
        "centre": centre,
        "centring": centring,
        "surface_terms": {a: text for a, (_, text) in SURFACE.items()},
        "surface_in": "coefficients rows a1..a4",
        "formula_r": (
            f"lm({spec.outcome} ~ {rhs}, "
            f"data = within(data, {{P <- {p_col} - {c}; T <- {t_col} - {c}}}))"
        ),
    }
    if cluster is not None:
        info["vcov_r"] = f'sandwich::vcovCL(fit, cluster = ~{cluster}, type = "HC1")'
    grid = _grid(beta, data, covs, p_col, t_col, centre)
    return ModelResult(coefficients=table, fit=info, frame=data, extras={"grid": grid})


def _design(p: np.ndarray, t: np.ndarray, covs: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(p)), p, t, p * p, p * t, t * t, covs])


def _grid(
    beta: np.ndarray, data: pd.DataFrame, covs: list[str], p_col: str, t_col: str, centre: float
) -> pd.DataFrame:
    """Fitted Y over a square P x T grid spanning every observed rating; covariates at mean."""
    raw_p = data[p_col].to_numpy(dtype=float)
    raw_t = data[t_col].to_numpy(dtype=float)
    lo = float(min(raw_p.min(), raw_t.min()))
    hi = float(max(raw_p.max(), raw_t.max()))
    axis = np.linspace(lo, hi, GRID_SIZE)
    gp, gt = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    cov_means = np.tile(data[covs].to_numpy(dtype=float).mean(axis=0), (gp.size, 1))
    pred = _design(gp - centre, gt - centre, cov_means) @ beta
    inside = (gp >= raw_p.min()) & (gp <= raw_p.max()) & (gt >= raw_t.min()) & (gt <= raw_t.max())
    return pd.DataFrame(
        {
            p_col: gp,
            t_col: gt,
            "P": gp - centre,
            "T": gt - centre,
            "predicted": pred,
            "in_range": inside.astype(int),
        }
    )


def _n_unique(frame: pd.DataFrame, col: str) -> int | None:
    return int(frame[col].nunique()) if col in frame.columns else None
