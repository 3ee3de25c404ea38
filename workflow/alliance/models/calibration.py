"""Regression calibration of one error-laden predictor: the row `{x}_rc` (options x, x_error).

Why: an observed alliance score carries item error, so its slope is attenuated by the score's
reliability given the other terms. Regression calibration (Carroll et al. 2006, ch. 4) replaces
x by E[true score | x, other covariates]; the coefficient per point of the true score is
beta / lambda (SE and CI scaled alike; lambda, from thousands of item responses, is treated as
known). Exact for linear models with a single x; for logistic models it is the usual
approximation (good while the slope times the error SD is small). One helper for the hazard,
lmm and glmm kinds.

Which reliability: the one of the information the fit uses. A mixed model estimates beta by
GLS, b = x'P y / x'P x with P = V^-1 - V^-1 Z (Z'V^-1 Z)^-1 Z'V^-1 (Z: the other main-effect
terms, V: the fitted marginal covariance). With x = tau + e, e independent of tau, y and Z, of
variance s2_r on row r: x'P y -> beta tau'P tau and x'P x -> tau'P tau + sum_r P_rr s2_r, so

    lambda = 1 - sum_r P_rr s2_r / x'P x.

A patient random intercept (variance sp2, residual s2) makes V^-1 partly demean x within
patients (GLS is OLS after subtracting theta_i times the patient mean, theta_i = 1 - sqrt(s2 /
(s2 + n_i sp2))), and one session's error is a larger share of the within-patient spread than
of the total: with many doses per interval (adherence) or a large patient variance
(reporting), lambda is well below the score's overall reliability (~0.80 against ~0.89 at the
recovery design, which left those slopes ~12 % short). Without random effects and with equal
weights lambda is 1 - mean s2 / residual variance of x given Z (df n - rank): the overall
reliability, which fit.json keeps as `lambda_marginal` beside the one used. A binomial fit's V
has 1 / (m_r w) on its diagonal, m_r the row's trials and w the mean of mu (1 - mu) at the
conditional modes: weights following each row's fitted mu would follow x, and so its error, and
bias the ratio (a steep hazard moved 0.895 to 0.930); only the size of a patient's information
is needed, to set how far the fit demeans. V^-1 is applied exactly for random intercepts whose
groups are nested (patient in therapist): one Sherman-Morrison step per level, innermost first.
Other structures (random slopes, crossed groups) or no working model (the GEE kind): the
marginal lambda, and fit.json says so (`metric`). docs/estimands.md has the recovery figures.

By group (option `x_by`, a 0/1 moderator in the term `x:by`): x's slope differs between the
groups and so may its reliability (another spread of the true score among the rows at risk), so
each group's slope is calibrated with its own lambda_g (computed on that group's rows, V
restricted to them): `{x}_rc` = b_x / lambda_0 (the slope where by = 0) and `{x}_rc:{by}` =
(b_x + b_x:by) / lambda_1 - b_x / lambda_0, the difference of the calibrated slopes (SE from the
fixed-effect covariance). One lambda for both groups would leave a difference of reliabilities
in the interaction.

A continuous moderator (option `x_mod`, the term `x:z`, z error-free, e.g. a staging score
known before treatment) adds `{x}_rc` (the calibrated slope at z = 0) and `{x}_rc:{z}` (its
calibrated change per unit of z). Derivation (the single-x case with two columns). Let
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

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alliance.models import contrasts
from alliance.models.base import ModelResult, ModelSpec

METHOD = (
    "regression calibration: beta / lambda, lambda = 1 - sum_r P_rr s2_r / x'P x, P the GLS "
    "residual maker of the other fixed terms in the fit's metric V^-1"
)
MARGINAL = (
    "marginal lambda (1 - mean error variance / residual variance of x given the other fixed "
    "terms): {why}"
)
LAMBDA_RANGE = (0.2, 1.0)  # (low, high]: outside it the correction is skipped with a warning


@dataclass(frozen=True)
class Working:
    """The fit's GLS metric: per-row weights (1 / residual variance; a binomial fit's trials
    times its mean mu (1 - mu) at the conditional modes), its random intercepts' variances by
    grouping column (innermost first), and why it is not usable (`unusable`, '' if it is)."""

    weights: pd.Series
    intercepts: tuple[tuple[str, float], ...] = ()
    unusable: str = ""


def working_metric(
    frame: pd.DataFrame,
    components: pd.DataFrame,
    *,
    residual_variance: float | None = None,
    eta: np.ndarray | None = None,
    trials: str | None = None,
) -> Working:
    """The GLS metric of a fitted lmm (its `residual_variance`) or binomial glmm / hazard (`eta`,
    the linear predictor at the conditional modes; `trials`, the column of binomial trials)."""
    if residual_variance is not None:
        weights = np.full(len(frame), 1.0 / residual_variance)
    else:
        mu = 1.0 / (1.0 + np.exp(-np.asarray(eta, dtype=float)))
        m = frame[trials].to_numpy(float) if trials else np.ones(len(frame))
        # per trial the fit's mean binomial weight, not mu_r (1 - mu_r): weights that follow
        # the fitted mu, and so x, would correlate with x's error and bias lambda
        weights = m * float(np.sum(m * mu * (1.0 - mu)) / np.sum(m))
    series = pd.Series(weights, index=frame.index)
    random = components[components["group"] != "Residual"]
    if (random["term1"] != "(Intercept)").any() or (random["term2"].fillna("") != "").any():
        return Working(series, unusable="random slopes: V^-1 is not applied exactly here")
    sizes = {str(g): frame[g].nunique() if g in frame.columns else 0 for g in random["group"]}
    ordered = random.assign(n=random["group"].map(sizes)).sort_values("n", ascending=False)
    pairs = tuple((str(g), float(v)) for g, v in zip(ordered["group"], ordered["variance"],
                                                       strict=True))  # fmt: skip
    return Working(series, intercepts=pairs)


def requested(spec: ModelSpec) -> bool:
    """Whether the spec asks for a calibrated row (options x and x_error)."""
    return isinstance(spec.options.get("x"), str) and isinstance(spec.options.get("x_error"), str)


def calibrate(
    result: ModelResult, frame: pd.DataFrame, spec: ModelSpec, working: Working | None = None
) -> None:
    """Add `{x}_rc` (and `{x}_rc:{by}` with `options.x_by`, `{x}_rc:{mod}` with the continuous
    moderator `options.x_mod`) in place when the spec
    names `options.x` and `options.x_error`; `working` is the fit's metric (None: marginal
    lambda, or for x_mod the OLS metric)."""
    if not requested(spec):
        return
    x, x_error = spec.options["x"], spec.options["x_error"]
    by, mod = spec.options.get("x_by"), spec.options.get("x_mod")
    if isinstance(mod, str):
        reliability_corrected_moderated(result, frame, spec, x, x_error, mod, working)
    elif isinstance(by, str):
        reliability_corrected_by(result, frame, spec, x, x_error, by, working)
    else:
        reliability_corrected(result, frame, spec, x, x_error, working)


def warn_skipped(result: ModelResult, text: str) -> None:
    """Record in fit.json `warnings` why no calibrated row was added."""
    result.fit.setdefault("warnings", []).append(f"reliability correction skipped: {text}")


def _lambda(
    rows: pd.DataFrame,
    spec: ModelSpec,
    x: str,
    x_error: str,
    skip: str = "",
    working: Working | None = None,
) -> dict[str, Any]:
    """Error variance, residual variance of x given the other main-effect terms, the marginal
    lambda and the lambda in the fit's metric (module docstring); `lambda` is the one used."""
    others = [t for t in spec.fixed if t not in (x, skip) and ":" not in t and t in rows.columns]
    design = np.column_stack([np.ones(len(rows))] + [rows[t].to_numpy(float) for t in others])
    values = rows[x].to_numpy(float)
    coef, _, rank, _ = np.linalg.lstsq(design, values, rcond=None)
    resid = values - design @ coef
    var_resid = float(resid @ resid / (len(values) - rank))
    error = float(rows[x_error].mean())
    marginal = 1.0 - error / var_resid
    out = {"error_variance": error, "residual_variance": var_resid, "lambda_marginal": marginal}
    why = metric_problem(rows, working)
    if why or working is None:
        return {**out, "lambda": marginal, "metric": MARGINAL.format(why=why)}
    weights = working.weights.loc[rows.index].to_numpy(float)
    levels = metric_levels(rows, working)
    lam = _gls_lambda(design, values, rows[x_error].to_numpy(float), weights, levels)
    names = ", ".join(f"{g} {var:.4g}" for g, var in working.intercepts) or "none"
    return {**out, "lambda": lam, "metric": f"GLS; random-intercept variances: {names}"}


def metric_levels(rows: pd.DataFrame, working: Working) -> list[tuple[np.ndarray, float]]:
    """(integer group codes of `rows`, variance) per random intercept, innermost first."""
    return [(pd.factorize(rows[g], sort=True)[0], var) for g, var in working.intercepts]


def metric_problem(rows: pd.DataFrame, working: Working | None) -> str:
    """Why the fit's metric cannot be applied exactly to `rows` ('' when it can)."""
    if working is None:
        return "no working model of the fit"
    if working.unusable:
        return working.unusable
    if not rows.index.isin(working.weights.index).all():
        return "the working weights do not cover the frame's rows"
    groups = [g for g, _ in working.intercepts]
    missing = [g for g in groups if g not in rows.columns]
    if missing:
        return f"grouping column(s) {missing} not in the frame"
    for inner, outer in zip(groups, groups[1:], strict=False):
        if rows.groupby(inner, observed=True)[outer].nunique().max() > 1:
            return f"'{inner}' is not nested in '{outer}'"
    return ""


def gls_quadratic(
    others: np.ndarray,
    cols: np.ndarray,
    weights: np.ndarray,
    levels: list[tuple[np.ndarray, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """(C'P C, diag P) for the columns `cols` (n x k), P = V^-1 - V^-1 Z (Z'V^-1 Z)^-1 Z'V^-1
    the GLS residual maker of `others` (Z) with V = diag(1 / w) + sum_k var_k Z_k Z_k' (nested
    random-intercept levels, innermost first).

    V^-1 by Sherman-Morrison per level: with A_0 = diag(1 / w), A_k = A_(k-1) + var_k Z_k Z_k'
    and u_k = A_(k-1)^-1 1, A_k^-1 v = A_(k-1)^-1 v - u_k s_g (u_k'v)_g within each group g,
    s_g = var_k / (1 + var_k (u_k'1)_g); diag(A_k^-1) = diag(A_(k-1)^-1) - s_g u_k^2."""
    k = cols.shape[1]
    m = np.column_stack([others, cols])
    applied = weights[:, None] * m  # V^-1 m, built level by level
    diag = weights.copy()
    u = weights.copy()
    for codes, var in levels:
        size = np.bincount(codes, weights=u)
        s = (var / (1.0 + var * size))[codes]
        sums = np.stack([np.bincount(codes, weights=u * col) for col in m.T], axis=1)
        applied -= (u * s)[:, None] * sums[codes]
        diag -= s * u**2
        u = u / (1.0 + var * size[codes])
    r_z, r_c = applied[:, :-k], applied[:, -k:]
    zvz, zvc = others.T @ r_z, others.T @ r_c
    solved = np.linalg.lstsq(zvz, np.column_stack([zvc, r_z.T]), rcond=None)[0]
    cpc = cols.T @ r_c - zvc.T @ solved[:, :k]
    p_diag = diag - np.einsum("ij,ji->i", r_z, solved[:, k:])
    return cpc, p_diag


def _gls_lambda(
    others: np.ndarray,
    x: np.ndarray,
    error: np.ndarray,
    weights: np.ndarray,
    levels: list[tuple[np.ndarray, float]],
) -> float:
    """1 - sum_r P_rr s2_r / x'P x in the metric of `weights` and `levels` (`gls_quadratic`)."""
    xpx, p_diag = gls_quadratic(others, x[:, None], weights, levels)
    return 1.0 - float(p_diag @ error) / float(xpx[0, 0])


def usable(lam: float) -> bool:
    """Whether a lambda is inside LAMBDA_RANGE (else the correction is skipped)."""
    return LAMBDA_RANGE[0] < lam <= LAMBDA_RANGE[1]


def insert_after(coefs: pd.DataFrame, after: str, row: pd.DataFrame) -> pd.DataFrame:
    """`coefs` with `row` (one or more rows) inserted right after the term `after`."""
    position = int(np.flatnonzero(coefs["term"].to_numpy() == after)[0]) + 1
    return pd.concat([coefs.iloc[:position], row, coefs.iloc[position:]], ignore_index=True)


def _scaled_row(coefs: pd.DataFrame, x: str, lam: float) -> pd.DataFrame:
    """x's row divided by lambda, named `{x}_rc` (same z and p: a derived row)."""
    row = coefs.loc[coefs["term"] == x].copy()
    for col in ("estimate", "std_error", "ci_low", "ci_high"):
        row[col] = row[col] / lam
    row["term"] = f"{x}_rc"
    return row


def add_derived(result: ModelResult, term: str) -> None:
    """Mark `term` as a row that answers another row's question (a calibrated or bias-corrected
    version of it; fit.json `derived_terms`): multiplicity summaries do not count it twice."""
    result.fit.setdefault("derived_terms", []).append(term)


def reliability_corrected(
    result: ModelResult,
    frame: pd.DataFrame,
    spec: ModelSpec,
    x: str,
    x_error: str,
    working: Working | None = None,
) -> None:
    """Add the row `{x}_rc` (regression calibration, see the module docstring) in place."""
    coefs = result.coefficients
    if x not in set(coefs["term"]) or x_error not in frame.columns:
        warn_skipped(result, f"'{x}' is not a coefficient or '{x_error}' is not in the frame")
        return
    info: dict[str, Any] = {
        "term": x, **_lambda(frame, spec, x, x_error, working=working), "method": METHOD,
    }  # fmt: skip
    result.fit["reliability_correction"] = info
    lam = info["lambda"]
    if not usable(lam):
        warn_skipped(result, f"lambda {lam:.3f} outside (0.2, 1]")
        return
    add_derived(result, f"{x}_rc")
    result.coefficients = insert_after(coefs, x, _scaled_row(coefs, x, lam))


def reliability_corrected_by(
    result: ModelResult,
    frame: pd.DataFrame,
    spec: ModelSpec,
    x: str,
    x_error: str,
    by: str,
    working: Working | None = None,
) -> None:
    """Add `{x}_rc` and `{x}_rc:{by}`, each group calibrated with its own lambda (docstring)."""
    coefs = result.coefficients
    inter = interaction_term(result, frame, x, x_error, by)
    if inter is None:
        return
    g = frame[by].to_numpy(float)
    if not np.isin(g, (0.0, 1.0)).all() or len(np.unique(g)) < 2:
        warn_skipped(result, f"'{by}' is not a 0/1 column with rows in both groups")
        return
    groups = [{"level": k, "rows": int(np.sum(g == k)), **_lambda(frame[g == k], spec, x,
               x_error, skip=by, working=working)} for k in (0, 1)]  # fmt: skip
    lam0, lam1 = (grp["lambda"] for grp in groups)
    result.fit["reliability_correction"] = {
        "term": x, "by": by, "lambda": lam0, "groups": groups,
        "method": METHOD + f"; computed in each group of {by} on its own rows",
    }  # fmt: skip
    if not (usable(lam0) and usable(lam1)):
        warn_skipped(
            result, f"lambda {lam0:.3f} ({by} = 0) or {lam1:.3f} ({by} = 1) outside (0.2, 1]"
        )
        return
    weights = pd.DataFrame({x: [1 / lam1 - 1 / lam0], inter: [1 / lam1]}, index=[f"{x}_rc:{by}"])
    diff = combination_row(result, weights, inter)
    coefs = insert_after(coefs, x, _scaled_row(coefs, x, lam0))
    result.coefficients = insert_after(coefs, inter, diff)
    add_derived(result, f"{x}_rc")
    add_derived(result, f"{x}_rc:{by}")


def interaction_term(
    result: ModelResult, frame: pd.DataFrame, x: str, x_error: str, mod: str
) -> str | None:
    """The fitted coefficient name of x:mod, or None (and why, in fit.json) when the fit lacks
    x or x:mod or the frame lacks x_error or mod: the moderated calibrations need all four."""
    terms = list(result.coefficients["term"])
    inter = contrasts.interaction_name(x, mod, terms)
    if x not in terms or inter is None or x_error not in frame.columns or mod not in frame:
        warn_skipped(result, f"needs the coefficients '{x}' and '{x}:{mod}' and the columns "
                     f"'{x_error}' and '{mod}'")  # fmt: skip
        return None
    return inter


def combination_row(result: ModelResult, weights: pd.DataFrame, like: str) -> pd.DataFrame:
    """The coefficient row (COEF columns) of the one linear combination in `weights` of the
    fitted coefficients, SE from the fixed-effect covariance, tested with the df of the row
    `like` (a z test, df inf as in the fitted rows, when infinite or missing)."""
    coefs = result.coefficients
    vcov = result.extras["vcov"].set_index("term")
    beta = coefs.set_index("term")["estimate"]
    df = float(coefs.loc[coefs["term"] == like, "df"].iloc[0])
    df = df if np.isfinite(df) and df > 0 else np.inf
    table = contrasts.linear_combinations(weights, beta, vcov, df=df)
    table.loc[table["test"] == "z", "df"] = np.inf
    row = table.drop(columns="test").rename_axis("term").reset_index()
    row.insert(0, "model", coefs["model"].iloc[0])
    return row[coefs.columns]


MODERATED_METHOD = (
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
        "method": MODERATED_METHOD,
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
