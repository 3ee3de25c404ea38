"""Ordinary least squares with plain or CR1 cluster-robust standard errors, in numpy.

Why: the rsa and mediation kinds fitted a handful of small OLS models through statsmodels, whose
import (~0.8 s) was most of those model jobs' time (issue #16). This module does the same
arithmetic in the same order as statsmodels 0.15's `OLS(y, X).fit()` (the SVD pseudo-inverse of
`pinv_extended`, `method="pinv"`) and its `cov_type="cluster"` with `use_correction=True`, so
the numbers agree to rounding (tests/test_engine_ols.py checks against statsmodels):

- plain: V = s^2 (X'X)^-1 with s^2 = e'e / (n - rank(X)) (R `vcov(lm)`);
- CR1: V = (X'X)^-1 (sum_g X_g'e_g e_g'X_g) (X'X)^-1 * G/(G-1) * (n-1)/(n-K) (R
  `sandwich::vcovCL(type = "HC1")`), with G clusters and K columns of X.

X holds the intercept column itself; the statistics that depend on it (R^2) assume it does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RCOND = 1e-15  # singular values below RCOND x the largest count as zero (statsmodels' default)


@dataclass(frozen=True)
class OlsFit:
    """One OLS fit: coefficients, their covariance (plain or CR1) and the fit statistics."""

    params: np.ndarray
    vcov: np.ndarray
    nobs: int
    rank: int
    df_resid: float
    ssr: float
    scale: float  # e'e / df_resid, the residual variance
    llf: float  # the profile (concentrated) Gaussian log-likelihood, R's logLik(lm)
    rsquared: float
    rsquared_adj: float
    n_clusters: int | None = None

    @property
    def bse(self) -> np.ndarray:
        """Standard errors: the square roots of V's diagonal."""
        return np.sqrt(np.diag(self.vcov))


def pinv_extended(x: np.ndarray, rcond: float = RCOND) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-inverse of `x`, its singular values) through the SVD, as statsmodels computes it."""
    u, s, vt = np.linalg.svd(x, False)
    s_orig = np.copy(s)
    cutoff = rcond * np.maximum.reduce(s)
    inv = np.where(s > cutoff, 1.0 / np.where(s > cutoff, s, 1.0), 0.0)
    return np.dot(np.transpose(vt), np.multiply(inv[:, np.newaxis], np.transpose(u))), s_orig


def ols(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> OlsFit:
    """OLS of `y` on the columns of `x` (intercept included by the caller); CR1 cluster-robust V
    when `groups` gives each row's cluster as a code 0..G-1 (e.g. from `pandas.factorize`)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    nobs, k = x.shape
    pinv, singular = pinv_extended(x)
    bread = np.dot(pinv, np.transpose(pinv))  # (X'X)^-1
    rank = int(np.linalg.matrix_rank(np.diag(singular)))
    params = np.dot(pinv, y)
    resid = y - np.dot(x, params)
    ssr = float(np.dot(resid, resid))
    df_resid = float(nobs - rank)
    scale = ssr / df_resid
    n_clusters = None
    if groups is None:
        vcov = bread * scale
    else:
        codes = np.asarray(groups).squeeze()
        scores = x * resid[:, None]
        sums = np.array([np.bincount(codes, weights=scores[:, j]) for j in range(k)]).T
        vcov = np.dot(np.dot(bread, np.dot(sums.T, sums)), bread.T)
        n_clusters = len(np.unique(codes))
        vcov *= n_clusters / (n_clusters - 1.0) * ((nobs - 1.0) / float(nobs - k))
    half = nobs / 2.0
    llf = -half * np.log(2 * np.pi) - half * np.log(np.sum(resid**2) / float(nobs)) - half
    centred = y - y.mean()
    rsquared = 1 - ssr / np.dot(centred, centred)
    return OlsFit(
        params=params,
        vcov=vcov,
        nobs=nobs,
        rank=rank,
        df_resid=df_resid,
        ssr=ssr,
        scale=scale,
        llf=float(llf),
        rsquared=float(rsquared),
        rsquared_adj=float(1 - np.divide(nobs - 1, df_resid) * (1 - rsquared)),
        n_clusters=n_clusters,
    )
