"""Finite-difference inference: lmerTest Satterthwaite df and lme4's Hessian-based GLMM vcov.

Both need the deviance at parameter values other than the optimum, through engine internals named
in the package docstring (alliance.engine.mixed) and covered by the lme4 reference tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# lme4's deriv12() step for the GLMM Hessian (lme4/R/deriv.R)
_HESSIAN_DELTA = 1e-4


def _satterthwaite_df(result: Any, reml: bool) -> tuple[np.ndarray, str]:
    """Satterthwaite df per fixed effect, computed as lmerTest 3.1 does.

    lmerTest differentiates the deviance in varpar = (theta, sigma) (sigma not profiled out),
    takes A = 2 H^-1 as the covariance of varpar, differentiates Var(beta) = sigma^2 (RX'RX)^-1
    in varpar (gradient g) and sets df = 2 Var(beta_k)^2 / (g' A g). The engine's own
    `satterthwaite_df` profiles sigma out instead; it matches lmerTest for REML fits but is
    about 1 % off for ML fits, hence this version. Evaluating the deviance pieces (ldL2, ldRX2,
    pwrss, RX'RX) at a given theta needs the engine's internal evaluator.
    """
    from mixedlm.estimation.reml import LMMOptimizer  # engine internal, see docstring

    evaluator = LMMOptimizer(result.matrices, REML=reml)
    n = float(result.matrices.n_obs)
    p = int(result.matrices.n_fixed)
    if p == 0:
        return np.empty(0), ""

    def core(theta: np.ndarray) -> Any:
        c = evaluator._evaluate_core(np.asarray(theta, dtype=float))
        if c is None:
            raise np.linalg.LinAlgError("random-effects system not positive definite")
        return c

    def deviance(vp: np.ndarray) -> float:
        c = core(vp[:-1])
        s2 = vp[-1] ** 2
        dev = c.ldL2 + c.pwrss / s2 + n * math.log(2.0 * math.pi * s2)
        if reml:
            dev += c.ldRX2 - p * math.log(2.0 * math.pi * s2)
        return float(dev)

    def cov_beta(vp: np.ndarray) -> np.ndarray:
        return vp[-1] ** 2 * np.linalg.inv(core(vp[:-1]).fixed_information)

    varpar = np.r_[np.asarray(result.theta, dtype=float), float(result.sigma)]
    try:
        a = 2.0 * np.linalg.inv(_central_hessian(deviance, varpar))
        grads = _central_jacobian(cov_beta, varpar)
        v = cov_beta(varpar)
    except np.linalg.LinAlgError as exc:
        return np.full(p, np.nan), f"Satterthwaite df not available: {exc}"
    df = np.empty(p)
    for k in range(p):
        g = np.array([gk[k, k] for gk in grads])
        denom = float(g @ a @ g)
        df[k] = 2.0 * v[k, k] ** 2 / denom if denom > 0 else np.nan
    note = "" if np.all(np.isfinite(df)) else "Satterthwaite df not finite for some terms"
    return df, note


def _step(x: np.ndarray, rel: float) -> np.ndarray:
    # relative steps, floored so that parameters at or near zero still move
    return rel * np.maximum(np.abs(x), 1e-2)


def _central_hessian(fun: Any, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian with parameter-relative steps."""
    n = len(x)
    h = _step(x, rel)
    f0 = fun(x)
    out = np.empty((n, n))
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = h[i]
        out[i, i] = (fun(x + ei) - 2.0 * f0 + fun(x - ei)) / h[i] ** 2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = h[j]
            out[i, j] = out[j, i] = (
                fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)
            ) / (4.0 * h[i] * h[j])
    return out


def _central_jacobian(fun: Any, x: np.ndarray, rel: float = 1e-5) -> list[np.ndarray]:
    """Derivative of a matrix-valued function along each coordinate."""
    h = _step(x, rel)
    out = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h[i]
        out.append((fun(x + e) - fun(x - e)) / (2.0 * h[i]))
    return out


def _deriv12_hessian(fun: Any, x: np.ndarray, delta: float = _HESSIAN_DELTA) -> np.ndarray:
    """Central-difference Hessian, the same stencil as lme4's deriv12()."""
    n = len(x)
    fx = fun(x)
    h = np.empty((n, n))
    for j in range(n):
        xa = x.copy()
        xa[j] += delta
        xs = x.copy()
        xs[j] -= delta
        h[j, j] = (fun(xa) - 2.0 * fx + fun(xs)) / delta**2
        for i in range(j):
            xaa, xas, xsa, xss = xa.copy(), xa.copy(), xs.copy(), xs.copy()
            xaa[i] += delta
            xas[i] -= delta
            xsa[i] += delta
            xss[i] -= delta
            h[i, j] = h[j, i] = (fun(xaa) - fun(xas) - fun(xsa) + fun(xss)) / (4.0 * delta**2)
    return h


def _laplace_hessian_vcov(
    mixedlm: Any,
    formula: str,
    frame: pd.DataFrame,
    fam: Any,
    trials: np.ndarray | None,
    result: Any,
) -> tuple[np.ndarray | None, str]:
    """lme4's GLMM vcov: 2 * inverse Hessian of the deviance in (theta, beta), beta block."""
    parsed = mixedlm.glFormula(formula, frame, family=fam, weights=trials)
    devfun = mixedlm.mkGlmerDevfun(parsed)
    theta = np.asarray(result.theta, dtype=float)
    beta = np.asarray(result.beta, dtype=float)
    try:
        h = _deriv12_hessian(devfun, np.r_[theta, beta])
        inv = np.linalg.inv(h)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return None, f"Hessian of the Laplace deviance failed ({exc}); RX-based SEs reported"
    v = inv + inv.T  # = 2 H^-1, symmetrised as lme4's calc.vcov.hess
    vb = v[len(theta) :, len(theta) :]
    if not np.all(np.isfinite(vb)):
        # a deviance evaluation near the optimum failed (NaN); seen on 120k-row GLMMs
        return None, "Hessian of the Laplace deviance not finite; RX-based SEs reported"
    if np.any(np.linalg.eigvalsh(vb) <= 0):
        return None, "Hessian of the Laplace deviance not positive definite; RX-based SEs reported"
    return vb, ""
