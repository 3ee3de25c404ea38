"""alliance.engine.ols against statsmodels' OLS (plain and CR1 cluster-robust), on random data."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.regression.linear_model import OLS

from alliance.engine.ols import ols

TOL = 1e-10


def _data(seed: int, n: int, k: int, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, k)) * rng.uniform(0.1, 10, size=k)])
    groups = rng.integers(0, n_groups, size=n)
    effect = rng.normal(size=n_groups)[groups]  # clustered errors, so CR1 differs from plain
    y = x @ rng.normal(size=k + 1) + effect + rng.normal(size=n) * rng.uniform(0.5, 3)
    return x, y, groups


def _close(a: np.ndarray | float, b: np.ndarray | float) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.all(np.abs(a - b) <= TOL * np.maximum(1.0, np.abs(b))), np.max(np.abs(a - b))


@pytest.mark.parametrize("seed", range(8))
def test_plain_ols_equals_statsmodels(seed: int) -> None:
    x, y, _ = _data(seed, n=50 + 40 * seed, k=1 + seed % 5, n_groups=12)
    ours, ref = ols(x, y), OLS(y, x).fit()
    _close(ours.params, ref.params)
    _close(ours.vcov, ref.cov_params())
    _close(ours.bse, ref.bse)
    assert ours.df_resid == ref.df_resid and ours.nobs == ref.nobs and ours.rank == x.shape[1]
    for name in ("ssr", "scale", "llf", "rsquared", "rsquared_adj"):
        _close(getattr(ours, name), getattr(ref, name))
    assert ours.n_clusters is None


@pytest.mark.parametrize("seed", range(8))
def test_cr1_equals_statsmodels_cluster_with_correction(seed: int) -> None:
    x, y, groups = _data(100 + seed, n=60 + 30 * seed, k=1 + seed % 4, n_groups=5 + 3 * seed)
    ours = ols(x, y, groups)
    kw = {"groups": groups, "use_correction": True, "df_correction": True}
    ref = OLS(y, x).fit(cov_type="cluster", cov_kwds=kw)
    _close(ours.params, ref.params)
    _close(ours.vcov, ref.cov_params())
    _close(ours.bse, ref.bse)
    assert ours.n_clusters == len(np.unique(groups))


def test_cr1_is_the_documented_sandwich() -> None:
    """V = (X'X)^-1 (sum_g X_g'e_g e_g'X_g) (X'X)^-1 G/(G-1) (N-1)/(N-K), written out."""
    x, y, groups = _data(7, n=200, k=3, n_groups=15)
    fit = ols(x, y, groups)
    e = y - x @ fit.params
    bread = np.linalg.inv(x.T @ x)
    meat = sum(np.outer(x[groups == g].T @ e[groups == g], x[groups == g].T @ e[groups == g])
               for g in np.unique(groups))  # fmt: skip
    n, k, g = len(y), x.shape[1], len(np.unique(groups))
    _close(fit.vcov, bread @ meat @ bread * g / (g - 1) * (n - 1) / (n - k))


def test_a_rank_deficient_design_reports_its_rank() -> None:
    x, y, _ = _data(3, n=40, k=2, n_groups=4)
    x = np.column_stack([x, x[:, 1] * 2.0])
    fit = ols(x, y)
    assert fit.rank == 3 and fit.df_resid == 37
