"""Exact power of a balanced two-level random-intercept design with a cluster-level predictor,
and the same design simulated through the pipeline's mixed-model engine (the power study's check).

Why: simulated power is only as good as the tests it counts. For J clusters of n members, ICC
rho and total variance 1, a cluster-level predictor's GLS estimate in a balanced design is the
OLS slope on the cluster means, whose variance is (1 + (n - 1) rho) / n per cluster (the design
effect; Raudenbush 1997, Snijders & Bosker 2012 ch. 11). Its t statistic with J - 2 df is then
exactly noncentral t with noncentrality
- binary predictor, J/2 clusters per group, standardised difference delta:
  lambda = delta / sqrt(4 (1 + (n - 1) rho) / (J n));
- continuous predictor with sum of squares J (standardised), slope beta (per SD of x, outcome
  SD units): lambda = beta sqrt(J n / (1 + (n - 1) rho)).
REML with Satterthwaite df (lmerTest) reproduces this test exactly whenever the cluster variance
estimate is positive, so the engine's simulated power must agree within Monte-Carlo error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from alliance.engine.mixed import fit_lmm
from alliance.errors import InputError


def noncentrality(
    clusters: int, size: int, icc: float, effect: float, predictor: str = "binary"
) -> float:
    """lambda of the cluster-level test (see the module docstring)."""
    deff = 1.0 + (size - 1) * icc
    if predictor == "binary":
        return effect / math.sqrt(4.0 * deff / (clusters * size))
    if predictor == "continuous":
        return effect * math.sqrt(clusters * size / deff)
    raise InputError("predictor must be 'binary' or 'continuous'", value=predictor, check="power")


def exact_power(
    clusters: int,
    size: int,
    icc: float,
    effect: float,
    alpha: float = 0.05,
    sides: int = 2,
    predictor: str = "binary",
) -> float:
    """P(reject) of the t test on J - 2 df (noncentral t; one-sided: in the effect's direction)."""
    df = clusters - 2
    lam = noncentrality(clusters, size, icc, effect, predictor)
    if sides == 1:
        return float(stats.nct.sf(stats.t.ppf(1 - alpha, df), df, abs(lam)))
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, lam) + stats.nct.cdf(-crit, df, lam))


def design_x(clusters: int, predictor: str) -> np.ndarray:
    """The fixed cluster-level predictor: 0/1 halves, or centred normal scores with sum x^2 = J."""
    if predictor == "binary":
        if clusters % 2:
            raise InputError("a binary predictor needs an even number of clusters", value=clusters)
        return np.repeat([0.0, 1.0], clusters // 2)
    x = stats.norm.ppf((np.arange(clusters) + 0.5) / clusters)
    x = x - x.mean()
    return x * math.sqrt(clusters / float((x**2).sum()))


def simulate_power(
    clusters: int,
    size: int,
    icc: float,
    effect: float,
    replicates: int,
    seed: int,
    alpha: float = 0.05,
    predictor: str = "binary",
) -> dict[str, float]:
    """Two-sided power of the engine's REML/Satterthwaite test on data drawn from the design:
    y_ij = effect x_j + u_j + e_ij, u ~ N(0, icc), e ~ N(0, 1 - icc). Also coverage of the 95 %
    CI, the singular-fit share and the MC SE of the power."""
    rng = np.random.default_rng(seed)
    x = design_x(clusters, predictor)
    cluster = np.repeat(np.arange(clusters), size)
    frame = pd.DataFrame({"g": [f"c{k:03d}" for k in cluster], "x": x[cluster]})
    hits = covered = singular = 0
    for _ in range(replicates):
        u = rng.normal(0.0, math.sqrt(icc), clusters)[cluster]
        y = effect * frame["x"].to_numpy() + u + rng.normal(0.0, math.sqrt(1 - icc), len(frame))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = fit_lmm("y ~ x + (1 | g)", frame.assign(y=y))
        row = fit.coefficients.set_index("term").loc["x"]
        hits += bool(row["p_value"] < alpha)
        covered += bool(row["ci_low"] <= effect <= row["ci_high"])
        singular += bool(fit.singular)
    power = hits / replicates
    return {
        "power": power,
        "mc_se": math.sqrt(max(power * (1 - power), 1e-12) / replicates),
        "coverage": covered / replicates,
        "singular_rate": singular / replicates,
        "replicates": replicates,
    }
