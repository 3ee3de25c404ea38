"""Marginal (population-averaged) model by GEE: e.g. dropout ~ early alliance, by therapist.

Where a GLMM gives therapist-specific effects, GEE gives the population-averaged odds ratio with
sandwich SEs that stay valid whatever the within-therapist correlation (a useful check beside
the GLMM when there are few therapists per site or the random-effect model is in doubt).

Spec: `outcome` (0/1 for binomial), `fixed` the predictors (factors already 0/1 columns).
Options:
- `cluster` (default `therapist`): the GEE clusters; required (no cluster column -> Skipped).
- `family`: `binomial` (logit link, default) or `gaussian` (identity).
- `fractional` (binomial only): the outcome is a proportion in [0, 1], not 0/1: the fractional
  logit (Papke & Wooldridge 1996), whose binomial quasi-likelihood needs only a correct mean,
  E[y | x] = expit(x'b); the sandwich SEs do not lean on the binomial variance. R's binomial
  family warns "non-integer #successes" on such y: expected, and harmless for the estimates.
- `corstr`: `exchangeable` (default) or `independence` working correlation.
- `x` with `x_error`: the regression-calibrated row `{x}_rc` (alliance.models.calibration),
  with lambda in the GEE's own metric (`gee_metric`).

Matches R geepack `geeglm(..., id = therapist, corstr = ...)` (1.3.9) to ~1e-12 once both
iterate to convergence, given two settings: `ddof_scale=0` (geepack estimates the scale as
sum(pearson^2) / N and the exchangeable correlation as sum over within-cluster pairs /
(scale x n_pairs); statsmodels' default divides by N - p and n_pairs - p, which moves alpha,
and through it the estimates, by ~1 %) and a tight convergence criterion (`ctol = 1e-10`;
geepack's default epsilon = 1e-4 itself stops up to 5e-5 relative short). SEs are the plain
sandwich (statsmodels cov_type "robust" = geepack std.err "san.se"), no small-sample
correction; tests are Wald z (df = inf). QIC is computed as geepack's `QIC()`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from alliance.engine.tidy import coef_table
from alliance.errors import ConfigError, InputError
from alliance.models.base import COEF_COLUMNS, FitContext, ModelResult, ModelSpec, Skipped
from alliance.models.calibration import Working, calibrate

CTOL = 1e-10
MAXITER = 200
FAMILIES = ("binomial", "gaussian")
CORSTRS = ("exchangeable", "independence")
FRACTIONAL_NOTE = (
    "fractional logit (Papke & Wooldridge 1996): the binomial quasi-likelihood of a proportion "
    "in [0, 1], logit link, sandwich SEs; `scale` is the Pearson dispersion (< 1 when shares "
    "vary less than Bernoulli outcomes would). geepack::geeglm warns 'non-integer #successes in "
    "a binomial glm!' on such an outcome: expected, it does not change the estimates"
)


def fit(spec: ModelSpec, frame: pd.DataFrame, context: FitContext) -> ModelResult:
    """GEE with sandwich SEs, clusters = options.cluster (see module docstring)."""
    # the submodules, not statsmodels.api (which loads every model class, ~0.5 s more per job)
    import statsmodels
    from statsmodels.genmod import cov_struct, families
    from statsmodels.genmod.generalized_estimating_equations import GEE

    opts = spec.options
    cluster = opts.get("cluster", "therapist")
    family = opts.get("family") or "binomial"
    corstr = opts.get("corstr") or "exchangeable"
    if family not in FAMILIES:
        raise ConfigError(f"model '{spec.id}', key options.family: {family!r} not in {FAMILIES}")
    if corstr not in CORSTRS:
        raise ConfigError(f"model '{spec.id}', key options.corstr: {corstr!r} not in {CORSTRS}")
    fractional = bool(opts.get("fractional"))
    if fractional and family != "binomial":
        raise ConfigError(
            f"model '{spec.id}', key options.fractional: a proportion outcome needs family binomial"
        )
    if not cluster:
        raise Skipped("GEE needs a cluster column (options.cluster), and none is available")
    for col in [spec.outcome, *spec.fixed, cluster]:
        if col not in frame.columns:
            raise ConfigError(
                f"model '{spec.id}': column '{col}' is not in the model frame; name it in the "
                "spec (outcome, fixed or the options key that uses it) so the frame keeps it"
            )
    n_clusters = int(frame[cluster].nunique())
    if n_clusters < 2:
        raise Skipped(f"GEE needs at least 2 clusters of '{cluster}', found {n_clusters}")
    _check_outcome(spec, pd.to_numeric(frame[spec.outcome]).to_numpy(dtype=float), family,
                   fractional)  # fmt: skip

    # geeglm needs each cluster's rows together; sorting here makes the written frame R-ready
    data = frame.sort_values(cluster, kind="stable").reset_index(drop=True)
    terms = ["(Intercept)", *spec.fixed]
    x = np.column_stack([np.ones(len(data)), data[list(spec.fixed)].to_numpy(dtype=float)])
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise Skipped("the predictors are collinear in the model rows")
    y = data[spec.outcome].to_numpy(dtype=float)
    groups = data[cluster].astype(str).to_numpy()
    fam = families.Binomial() if family == "binomial" else families.Gaussian()

    def gee(cs: str):
        struct = cov_struct.Exchangeable() if cs == "exchangeable" else cov_struct.Independence()
        model = GEE(y, x, groups=groups, family=fam, cov_struct=struct)
        return model, model.fit(maxiter=MAXITER, ctol=CTOL, ddof_scale=0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, res = gee(corstr)
        _, indep = gee("independence") if corstr != "independence" else (model, res)
    msgs = [str(w.message) for w in caught]
    converged = bool(getattr(res, "converged", True)) and not any(
        "converge" in m.lower() for m in msgs
    )
    beta = np.asarray(res.params, dtype=float)
    se = np.asarray(res.bse, dtype=float)
    table = coef_table(terms, beta, se, np.inf).assign(model=spec.id)[COEF_COLUMNS]
    vcov = pd.DataFrame(np.asarray(res.cov_robust, dtype=float), index=terms, columns=terms)

    mu = np.asarray(res.fittedvalues, dtype=float)
    scale = float(np.sum((y - mu) ** 2 / fam.variance(mu)) / len(y))  # geepack: / N
    qic = _qic(y, mu, family, res, indep)
    alpha = float(np.ravel(model.cov_struct.dep_params)[0]) if corstr == "exchangeable" else None
    sizes = pd.Series(groups).value_counts()
    link = "logit" if family == "binomial" else "identity"
    rhs = " + ".join(spec.fixed) or "1"
    info: dict[str, Any] = {
        "kind": "gee",
        "engine": f"statsmodels {statsmodels.__version__} GEE",
        "n_obs": len(y),
        "n_patients": _n_unique(data, "patient"),
        "n_therapists": _n_unique(data, "therapist"),
        "n_clusters": n_clusters,
        "cluster": cluster,
        "cluster_size": {"min": int(sizes.min()), "max": int(sizes.max())},
        "family": family,
        "fractional": fractional,
        "link": link,
        "corstr": corstr,
        "working_correlation": alpha,
        "scale": scale,
        "QIC": qic,
        "logLik": None,  # GEE has no likelihood; QIC is the comparison criterion
        "converged": converged,
        "warnings": msgs,
        "se_method": "robust sandwich (geepack san.se), no small-sample correction",
        "test": "Wald z (df = inf)",
        "settings": {"ddof_scale": 0, "ctol": CTOL, "maxiter": MAXITER},
        "formula_r": (
            f"geepack::geeglm({spec.outcome} ~ {rhs}, family = {family}, "
            f"data = data[order(data${cluster}), ], id = factor({cluster}), "
            f'corstr = "{corstr}", control = geepack::geese.control(epsilon = 1e-10))'
        ),
    }
    if fractional:
        info["notes"] = [FRACTIONAL_NOTE]
    # the robust covariance used for every SE: figures derive curves and bands from it
    extras = {"vcov": vcov.rename_axis("term").reset_index()}
    result = ModelResult(coefficients=table, fit=info, frame=data, extras=extras)
    calibrate(result, data, spec, gee_metric(data, mu, family, alpha, cluster))
    if family == "binomial":
        info["odds_ratios"] = {
            r.term: {
                "or": float(np.exp(r.estimate)),
                "ci_low": float(np.exp(r.ci_low)),
                "ci_high": float(np.exp(r.ci_high)),
            }
            for r in result.coefficients.itertuples()
            if r.term != "(Intercept)"
        }
    return result


def _check_outcome(spec: ModelSpec, y: np.ndarray, family: str, fractional: bool) -> None:
    """0/1 for a binomial GEE, [0, 1] for a fractional one (InputError naming the column)."""
    if family != "binomial":
        return
    if fractional and not ((y >= 0.0) & (y <= 1.0)).all():
        bad = float(y[(y < 0.0) | (y > 1.0)][0])
        raise InputError(
            f"model '{spec.id}': a fractional-logit GEE needs a proportion in [0, 1], "
            f"found {bad:g}",
            column=spec.outcome,
            check="gee.proportion",
        )
    if not fractional and not np.isin(y, (0.0, 1.0)).all():
        raise InputError(
            f"model '{spec.id}': a binomial GEE needs a 0/1 outcome (a proportion in [0, 1]: "
            "options.fractional: true)",
            column=spec.outcome,
            check="gee.binary",
        )


def _qic(y: np.ndarray, mu: np.ndarray, family: str, res, indep) -> float:
    """geepack QIC: -2 (quasi-likelihood - trace(Omega_I V_r)), Omega_I the inverse of the
    independence model's naive covariance including its estimated scale (sum pearson^2 / N)."""
    if family == "binomial":
        mu = np.clip(mu, 1e-300, 1 - 1e-16)
        quasi = float(np.sum(y * np.log(mu / (1 - mu)) + np.log(1 - mu)))
        mu0 = np.asarray(indep.fittedvalues, dtype=float)
        phi0 = float(np.sum((y - mu0) ** 2 / (mu0 * (1 - mu0))) / len(y))
        naive = np.asarray(indep.cov_naive) * phi0  # statsmodels fixes the binomial scale at 1
    else:
        quasi = float(np.sum((y - mu) ** 2 / -2.0))
        naive = np.asarray(indep.cov_naive)  # gaussian: already scaled by the estimated scale
    trace = float(np.trace(np.linalg.solve(naive, np.asarray(res.cov_robust))))
    return -2.0 * (quasi - trace)


def _n_unique(frame: pd.DataFrame, col: str) -> int | None:
    return int(frame[col].nunique()) if col in frame.columns else None


def gee_metric(
    data: pd.DataFrame, mu: np.ndarray, family: str, alpha: float | None, cluster: str
) -> Working:
    """The GEE's metric for regression calibration: its estimating equations are GLS on the
    linear-predictor scale with V_i = (phi / w) [(1 - alpha) I + alpha J] within each cluster
    (w the mean of mu (1 - mu) for binomial, as the GLMM kinds take it; 1 for gaussian; phi
    cancels in lambda): a residual of weight w / (1 - alpha) and a cluster intercept of
    variance alpha / w. With an exchangeable correlation the fit leans on within-cluster
    differences, where one session's error is a larger share, so the marginal lambda would
    under-correct (as it did for the adherence GLMM, issue #14). A negative alpha has no such
    intercept: the marginal lambda, said so."""
    w = float(np.mean(mu * (1.0 - mu))) if family == "binomial" else 1.0
    a = float(alpha or 0.0)
    weights = pd.Series(w / (1.0 - a), index=data.index)
    if a < 0.0:
        return Working(weights, unusable=f"negative working correlation ({a:.3g})")
    return Working(weights, intercepts=((cluster, a / w),) if a > 0.0 else ())
