"""Random-effects pooling of correlations on Fisher's z, as metafor `rma(measure = "ZCOR")`.

Used to pool per-site / per-trial alliance-outcome correlations and set them beside the
published r = .278 (Flückiger et al. 2018). Checked against metafor 3.8-1 in
tests/test_engine_meta.py. Each r becomes z = atanh(r) with sampling variance 1/(n - 3); tau^2
is estimated by REML (Fisher scoring, metafor's default) or DerSimonian-Laird; CIs and the
prediction interval are normal-theory on z (metafor's defaults) and back-transformed with tanh.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special  # norm / chi2 without importing scipy.stats (slow)

from alliance.errors import InputError

METHODS = ("REML", "DL")


@dataclass
class PooledCorrelation:
    """Pooled correlation with heterogeneity; `studies` holds z, variance and weight per study."""

    method: str
    k: int
    z: float
    se: float
    z_ci_low: float
    z_ci_high: float
    z_pi_low: float
    z_pi_high: float
    r: float
    r_ci_low: float
    r_ci_high: float
    r_pi_low: float
    r_pi_high: float
    p_value: float
    tau2: float
    q: float
    q_df: int
    q_p: float
    i2: float
    h2: float
    studies: pd.DataFrame

    def as_dict(self) -> dict[str, float | int | str]:
        """Scalar results only (for tables and JSON)."""
        out = asdict(self)
        out.pop("studies")
        return out


def pool_correlations(
    r: np.ndarray | list[float],
    n: np.ndarray | list[int],
    *,
    method: str = "REML",
    level: float = 0.95,
) -> PooledCorrelation:
    """Random-effects meta-analysis of correlations `r` with sample sizes `n` (k >= 2)."""
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}", value=method, check="meta.method")
    r = np.asarray(r, dtype=float)
    n = np.asarray(n, dtype=float)
    if r.shape != n.shape or r.ndim != 1:
        raise InputError("r and n must be 1-d and of equal length", check="meta.shape")
    if len(r) < 2:
        raise InputError("pooling needs at least two correlations", value=len(r), check="meta.k")
    for i in range(len(r)):
        if not np.isfinite(r[i]) or abs(r[i]) >= 1:
            raise InputError(
                "correlation must lie strictly between -1 and 1",
                row=i + 1,
                column="r",
                value=float(r[i]),
                check="meta.r_range",
            )
        if not np.isfinite(n[i]) or n[i] <= 3:
            raise InputError(
                "sample size must exceed 3 for Fisher's z",
                row=i + 1,
                column="n",
                value=float(n[i]),
                check="meta.n",
            )
    yi = np.arctanh(r)
    vi = 1.0 / (n - 3.0)
    k = len(yi)
    w_fixed = 1.0 / vi
    mu_fixed = np.sum(w_fixed * yi) / w_fixed.sum()
    q = float(np.sum(w_fixed * (yi - mu_fixed) ** 2))
    c = w_fixed.sum() - np.sum(w_fixed**2) / w_fixed.sum()
    tau2 = _tau2_reml(yi, vi) if method == "REML" else max(0.0, (q - (k - 1)) / c)

    w = 1.0 / (vi + tau2)
    mu = float(np.sum(w * yi) / w.sum())
    se = math.sqrt(1.0 / w.sum())
    zq = special.ndtri(0.5 + level / 2.0)  # norm.ppf
    pi_half = zq * math.sqrt(se**2 + tau2)
    # metafor's "typical" within-study variance, so I2 and H2 follow the chosen tau2
    typical = (k - 1) / c
    return PooledCorrelation(
        method=method,
        k=k,
        z=mu,
        se=se,
        z_ci_low=mu - zq * se,
        z_ci_high=mu + zq * se,
        z_pi_low=mu - pi_half,
        z_pi_high=mu + pi_half,
        r=math.tanh(mu),
        r_ci_low=math.tanh(mu - zq * se),
        r_ci_high=math.tanh(mu + zq * se),
        r_pi_low=math.tanh(mu - pi_half),
        r_pi_high=math.tanh(mu + pi_half),
        p_value=float(2.0 * special.ndtr(-abs(mu / se))),  # norm.sf
        tau2=float(tau2),
        q=q,
        q_df=k - 1,
        q_p=float(special.chdtrc(k - 1, q)),  # chi2.sf
        i2=float(100.0 * tau2 / (tau2 + typical)),
        h2=float((tau2 + typical) / typical),
        studies=pd.DataFrame({"r": r, "n": n, "z": yi, "var": vi, "weight": w / w.sum()}),
    )


def _tau2_reml(yi: np.ndarray, vi: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> float:
    """REML tau^2 by Fisher scoring with step halving, truncated at 0 (metafor's algorithm).

    Score and information of the restricted likelihood for an intercept-only model:
    step = (y'PPy - tr P) / tr(PP), P = W - W11'W / sum(W).
    """
    # start from the Hedges (unweighted moment) estimate, as metafor does
    tau2 = max(0.0, float(np.var(yi, ddof=1) - vi.mean()))
    for _ in range(max_iter):
        w = 1.0 / (vi + tau2)
        p = np.diag(w) - np.outer(w, w) / w.sum()
        py = p @ yi
        step = (py @ py - np.trace(p)) / np.trace(p @ p)
        new = tau2 + step
        while new < 0:
            step /= 2.0
            new = tau2 + step
            if abs(step) < tol:
                new = 0.0
                break
        if abs(new - tau2) < tol:
            return new
        tau2 = new
    raise RuntimeError("REML tau^2 did not converge")
